/*
 * request_check.h - fuzz_request's reply checks: what each command must
 * answer, computed from the model (request_model.h), and the model update
 * that follows. The driver (fuzz_request.c) owns the engine and shares its
 * state here through F.
 */
#ifndef TKV_FUZZ_REQUEST_CHECK_H
#define TKV_FUZZ_REQUEST_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "cmd.h"
#include "engine.h"
#include "fuzz_common.h"
#include "mp.h"
#include "proto.h"
#include "reply.h"
#include "request_gen.h"
#include "request_model.h"

typedef struct fuzz_state {
    tkv_engine *eng;
    tkv_dispatch d;
    tkv_session sess;
    bool use_sess;   /* serve the input as one session (else trusted) */
    uint64_t clock;  /* the engine's clock, never going back */
    unsigned faults; /* storage faults that struck during this input */
    bool poisoned;   /* an MPUT failed half-way: the next commit must fail */
    bool swept;      /* the sweep ran during this input */
} fuzz_state;

extern fuzz_state F;

/* One reply, decoded by protocol/reply.c. */
typedef struct reply {
    tkv_rep rep; /* its fields, spans into the payload */
    uint64_t st;
    size_t plen; /* payload bytes */
    bool dirty;  /* as the dispatcher reported it */
} reply;

/* Two parsed requests mean the same thing (MPUT/MGET items included). */
bool req_eq(const tkv_req *a, const tkv_req *b);

/* A parsed MPUT's items or MGET's keys are the ones the grammar built. */
bool gen_items_eq(const tkv_req *r, const gen *g);

/* The request survives encoding and parsing again unchanged. */
void check_roundtrip(const tkv_req *req, const tkv_limits *lim);

/* Whether the request's outcome depends on versions a sweep may have
 * removed (PUT or tombstone without ts on an `unsure` key whose newest
 * stored version is invisible): the driver does not send those. */
bool uncertain(const tkv_req *req);

/* Checks the reply to a request that parsed, for a trusted client, and
 * updates the model. */
void expect_reply(const tkv_req *req, reply *r, uint64_t auth_fails0);

/* Engine counters within what the model allows. */
void check_counters(const char *when);

static inline unsigned long long ull(uint64_t v) { return (unsigned long long)v; }

#define AFTER_FAULT (F.faults ? " (after an injected storage fault)" : "")

#endif
