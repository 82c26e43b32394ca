/*
 * request_gen.h - the request grammar of fuzz_request: turns fuzzer bytes
 * into one MessagePack request frame and says what the parser must make of
 * it.
 *
 * Requests are built from parts - command name (any case, str or bin),
 * keys from a tiny alphabet, timestamps like 0, 2^63 and UINT64_MAX, TTLs,
 * version ordinals, values that differ from each other, optional arguments
 * absent or nil - written with every integer, string and array encoding
 * MessagePack allows. Now and then one error is injected (unknown name,
 * extra argument, negative number, wrong type, empty key, trailing byte,
 * lying array count, oversize value), and the expected status says which.
 */
#ifndef TKV_FUZZ_REQUEST_GEN_H
#define TKV_FUZZ_REQUEST_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "proto.h"

#define GEN_SECRET "s3cr3"   /* the AUTH secret when the dispatcher has one */
#define GEN_MAX_BATCH 8u     /* the dispatcher's max_batch */
#define GEN_MAX_VALUE 70000u /* the largest max_value an input may choose */

/* A growable output buffer for one request payload. */
typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

typedef struct gen_arg {
    int kind; /* private to request_gen.c */
    const uint8_t *p;
    size_t n;
    uint64_t u;
    int64_t i;
    bool b;
    const struct gen_arg *sub; /* an array's elements */
} gen_arg;

#define GEN_MAX_ARGS 8

/* One generated request and what it must parse to. */
typedef struct gen {
    char name[8];
    size_t name_len;
    bool name_bin;
    gen_arg a[GEN_MAX_ARGS];
    uint32_t nargs;
    int uint_mode, bytes_mode, array_mode;
    bool trailing;   /* a byte after the array */
    int count_delta; /* the array header claims this many more elements */
    tkv_status st;   /* what tkv_req_parse() must return */
    tkv_req req;     /* and, when that is OK, the request it must fill in */
    /* MPUT items (key, value, ts, ttl) or MGET keys (key), in order. */
    tkv_put_item items[GEN_MAX_BATCH + 1];
    uint32_t nitems;
} gen;

/* Commands the driver picks from with one byte (weighted towards PUT). */
#define GEN_NCMDS 20
extern const tkv_cmd gen_cmds[GEN_NCMDS];

/* The limits requests are built against (the dispatcher's for the input). */
void gen_set_limits(const tkv_limits *lim);

/* Builds the payload of one request for cmd into w and describes it in g.
 * Spans in g->req point into buffers that stay valid until the next call. */
void gen_request(fz *f, gen *g, wbuf *w, tkv_cmd cmd);

/* Restarts value numbering, so an input means the same thing every run. */
void gen_reset(void);

void wbuf_free(wbuf *w);

#endif
