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
#include "migrate.h"
#include "proto.h"

/* What the server knows that the dispatcher reports in STATS. */
typedef struct tkv_server_info {
    uint64_t start_us; /* when the server started */
    uint64_t conns_current;
    uint64_t conns_total;    /* accepted since start */
    uint64_t conns_rejected; /* refused: max clients, out of descriptors */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t watchers; /* connections following the change feed (WATCH) */
    uint64_t max_clients;
    const char *fsync; /* durability mode name */
    struct tkv_du *du; /* the data directory's size (usage.h); NULL: 0 */
} tkv_server_info;

/* A request whose reply the connection produces in steps (stream.h). */
typedef struct tkv_stream_req {
    tkv_cmd cmd; /* TKV_CMD_DIGEST or TKV_CMD_BACKUP */
    bool has_at; /* DIGEST: at was given */
    uint64_t at;
} tkv_stream_req;

/* A replication request the connection carries out (replication.h). */
typedef struct tkv_repl_req {
    tkv_span replid;     /* PSYNC (ptr NULL: none) */
    uint64_t offset;     /* PSYNC */
    uint64_t nreplicas;  /* WAIT */
    uint64_t timeout_ms; /* WAIT */
    bool wait_done;      /* WAIT ran: its answer is acked */
    uint64_t acked;
} tkv_repl_req;

/* WATCH: what the connection is to follow (server/watcher.h). prefix points
 * into the request frame: the watcher copies it before the frame goes. */
typedef struct tkv_watch_req {
    tkv_span prefix; /* the key prefix; as-of: the key */
    bool has_from;   /* resume from `from` (else: from now) */
    uint64_t from;
    bool asof; /* an as-of watch of GET prefix as of `at` */
    uint64_t at;
    tkv_span replid; /* the history `from` is of (ptr NULL: not said) */
} tkv_watch_req;

/* What a connection has established: the dispatcher's per-client state. */
typedef struct tkv_session {
    bool authed; /* AUTH succeeded (or no secret is configured) */
    uint32_t auth_failures;
    tkv_stream_req stream; /* set when dispatch returns TKV_DISPATCH_STREAM */
    tkv_repl_req repl;     /* set when it returns TKV_DISPATCH_PSYNC or _REPLWAIT */
    tkv_watch_req watch;   /* set when it returns TKV_DISPATCH_WATCH */
    /* The request dispatched last, for its latency and the slow log: its
     * command (-1: it did not parse) and first key (a prefix for SCAN and
     * WATCH; empty if none), pointing into its frame. */
    int last_cmd;
    tkv_span last_key;
    bool asking; /* ASKING came: the next request may use a slot this
                              node imports (one-shot, as Redis's) ... */
    bool asked;  /* ... and this is that request */
} tkv_session;

struct tkv_repl;
struct tkv_shardmap;
struct tkv_latency;
struct tkv_slowlog;

typedef struct tkv_dispatch {
    tkv_engine *eng;
    tkv_limits lim;
    const tkv_auth *auth;           /* NULL: no secret, every client is trusted */
    size_t max_reply;               /* largest reply payload; RANGE stops short of it */
    const tkv_server_info *info;    /* may be NULL */
    struct tkv_repl *repl;          /* replication (replication.h); NULL: none */
    struct tkv_cluster *cluster;    /* cluster.h; NULL: not in a cluster */
    struct tkv_shardmap *map;       /* the cluster's map (shardmap.h), owned; NULL: no
                                       cluster, every key is served here */
    tkv_migrate mig;                /* keys locked while they move (migrate.h) */
    uint64_t calls[TKV_CMD__COUNT]; /* requests by command */
    uint64_t errors;                /* replies with an error status */
    uint64_t auth_failures;         /* AUTH attempts with a wrong secret */
    struct tkv_latency *lat;        /* per-command latencies (latency.h); NULL: none */
    struct tkv_slowlog *slow;       /* the slow log (slowlog.h); NULL: SLOWLOG is refused */
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

/* The result for DIGEST and BACKUP on a session: nothing is appended; the
 * session's `stream` says what the connection is to stream (stream.h).
 * Without a session (tkv_dispatch_frame) they are refused: their replies
 * need a connection to come in steps. */
#define TKV_DISPATCH_STREAM (-3)

/* PSYNC on a session: nothing is appended; the connection hands its
 * socket to replication (session.repl says from where). */
#define TKV_DISPATCH_PSYNC (-4)

/* WAIT on a session: nothing is appended; the connection waits until
 * replication answers (tkv_repl_wait), sets session.repl.wait_done and
 * runs the frame again, which then replies. */
#define TKV_DISPATCH_REPLWAIT (-5)

/* WATCH on a session: nothing is appended; the connection becomes a
 * watcher (server/watcher.h) of session.watch, which writes the reply. */
#define TKV_DISPATCH_WATCH (-6)

/* The same, with the engine in nonblocking mode (engine.h, "Loads"): if the
 * request needs LevelDB, nothing is appended or changed, *load is the load
 * it needs and the result is TKV_DISPATCH_WAIT. Run the load (any thread),
 * install it with tkv_engine_load_install(), then call this again with the
 * same frame and attempt + 1. Otherwise as tkv_dispatch_session(). */
int tkv_dispatch_try(tkv_dispatch *d, tkv_session *s, const uint8_t *frame, size_t len,
                     tkv_buf *out, bool *dirty, unsigned attempt, tkv_eng_load **load);

/* Installs a new cluster map (or NULL: leave the cluster) and frees the
 * one before. Call it on the loop's thread between requests: the next
 * request is checked against the new map, none against half of it. With a
 * map, key requests for slots whose primary is another node are answered
 * MOVED, multi-key requests across slots CROSSSLOT. */
void tkv_dispatch_set_map(tkv_dispatch *d, struct tkv_shardmap *m);

/* A hint before serving a run of request frames read in one go: brings
 * what their single-key commands will touch toward the cache
 * (tkv_engine_prefetch). Changes nothing, replies nothing; frames that do
 * not parse are skipped (serving them reports the error). */
void tkv_dispatch_prefetch(const tkv_dispatch *d, const uint8_t *const *frames, const size_t *lens,
                           size_t n);

#endif
