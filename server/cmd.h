/*
 * cmd.h - command dispatch: one request frame in, one reply frame out.
 *
 * The dispatcher sits between the wire (proto.h) and the engine (engine.h)
 * and does no I/O, so the reactor, the unit tests and the fuzzers all drive
 * exactly the same code.
 */
#ifndef TKV_CMD_H
#define TKV_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "engine.h"
#include "proto.h"

/* What the server knows that the dispatcher reports in STATS. */
typedef struct tkv_server_info {
    uint64_t start_us; /* when the server started */
    uint64_t conns_current;
    uint64_t conns_total;    /* accepted since start */
    uint64_t conns_rejected; /* refused: max clients, out of descriptors */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t max_clients;
    const char *fsync; /* durability mode name */
} tkv_server_info;

/* What a connection has established: the dispatcher's per-client state. */
typedef struct tkv_session {
    bool authed; /* AUTH succeeded (or no secret is configured) */
    uint32_t auth_failures;
} tkv_session;

typedef struct tkv_dispatch {
    tkv_engine *eng;
    tkv_limits lim;
    const tkv_auth *auth;           /* NULL: no secret, every client is trusted */
    size_t max_reply;               /* largest reply payload; RANGE stops short of it */
    const tkv_server_info *info;    /* may be NULL */
    uint64_t calls[TKV_CMD__COUNT]; /* requests by command */
    uint64_t errors;                /* replies with an error status */
    uint64_t auth_failures;         /* AUTH attempts with a wrong secret */
} tkv_dispatch;

/* Executes one request frame and appends exactly one reply frame to out.
 * *dirty is set when the reply depends on writes not yet committed (the
 * caller must hold it until tkv_engine_commit() succeeds, and replace it
 * with an error if the commit fails). Returns the reply's status, or -1 if
 * out of memory (nothing appended; the caller should drop the client). */
int tkv_dispatch_frame(tkv_dispatch *d, const uint8_t *frame, size_t len, tkv_buf *out,
                       bool *dirty);

/* The same for a connection's session: until it authenticates (when the
 * dispatcher has a secret), only AUTH and PING are served; anything else
 * gets AUTH_REQUIRED. */
int tkv_dispatch_session(tkv_dispatch *d, tkv_session *s, const uint8_t *frame, size_t len,
                         tkv_buf *out, bool *dirty);

/* tkv_dispatch_try()'s result when the request waits for a load. */
#define TKV_DISPATCH_WAIT (-2)

/* The same, with the engine in nonblocking mode (engine.h, "Loads"): if the
 * request needs LevelDB, nothing is appended or changed, *load is the load
 * it needs and the result is TKV_DISPATCH_WAIT. Run the load (any thread),
 * install it with tkv_engine_load_install(), then call this again with the
 * same frame and attempt + 1. Otherwise as tkv_dispatch_session(). */
int tkv_dispatch_try(tkv_dispatch *d, tkv_session *s, const uint8_t *frame, size_t len,
                     tkv_buf *out, bool *dirty, unsigned attempt, tkv_eng_load **load);

/* A hint before serving a run of request frames read in one go: brings
 * what their single-key commands will touch toward the cache
 * (tkv_engine_prefetch). Changes nothing, replies nothing; frames that do
 * not parse are skipped (serving them reports the error). */
void tkv_dispatch_prefetch(const tkv_dispatch *d, const uint8_t *const *frames, const size_t *lens,
                           size_t n);

#endif
