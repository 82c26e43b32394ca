/*
 * driver.h - the two wire protocols tkv-bench speaks, behind one interface.
 *
 * A driver encodes a bench_op as one request appended to a byte buffer, and
 * splits the bytes a connection receives into replies, each classified as a
 * success, a miss (a GET that found nothing) or an error. Drivers do no
 * I/O: the connection code (conn.c) reads into the space a driver's reader
 * offers and asks it for replies, in the manner of hiredis's feed/get_reply.
 *
 * Every length a reply declares is checked against max_reply and against
 * the bytes received before it is used; a reply that is malformed, or larger
 * than max_reply, makes next_reply fail, and the connection is given up.
 */
#ifndef TKV_BENCH_DRIVER_H
#define TKV_BENCH_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "buf.h"
#include "frame.h"

typedef enum bench_reply {
    REPLY_OK,
    REPLY_MISS,  /* GET found no version: not an error */
    REPLY_ERROR, /* the server refused or failed the request */
} bench_reply;

/* Unparsed RESP input: bytes in [start, end) of buf. */
typedef struct resp_reader {
    uint8_t *buf;
    size_t cap, start, end;
    size_t max; /* largest reply accepted */
} resp_reader;

typedef union bench_reader {
    tkv_frame_reader tkv;
    resp_reader resp;
} bench_reader;

/* The text of an error reply, pointing into the reader's buffer: valid until
 * the next call on that reader. */
typedef struct bench_text {
    const uint8_t *ptr;
    size_t len;
} bench_text;

typedef struct bench_driver {
    const char *name;
    uint16_t default_port;
    /* Appends one request. Returns 0, or -1 if out of memory. */
    int (*encode)(tkv_buf *out, const bench_op *op);
    void (*reader_init)(bench_reader *r, size_t max_reply);
    void (*reader_deinit)(bench_reader *r); /* NULL-safe */
    /* A writable region of at least `want` bytes (unless a reply at the
     * size limit is pending). Returns 0, or -1 if out of memory. */
    int (*reader_space)(bench_reader *r, size_t want, uint8_t **p, size_t *avail);
    void (*reader_commit)(bench_reader *r, size_t n);
    /* Bytes received and not yet consumed as replies. */
    size_t (*pending)(const bench_reader *r);
    /* Consumes the next whole reply to a request of kind `kind`. Returns 1
     * with *cls set (and *msg for REPLY_ERROR), 0 if more bytes are
     * needed, or -1 with a message in err if the stream is malformed. */
    int (*next_reply)(bench_reader *r, bench_opkind kind, bench_reply *cls, bench_text *msg,
                      char *err, size_t errlen);
    /* Appends an AUTH request carrying the secret. Returns 0, or -1 if out
     * of memory. */
    int (*encode_auth)(tkv_buf *out, const uint8_t *secret, size_t len);
    /* Consumes the reply to AUTH, as next_reply does: REPLY_OK if the server
     * accepted the secret, REPLY_ERROR (with *msg) if it refused it. */
    int (*auth_reply)(bench_reader *r, bench_reply *cls, bench_text *msg, char *err, size_t errlen);
} bench_driver;

extern const bench_driver bench_driver_tkv;
extern const bench_driver bench_driver_redis;

#endif
