/*
 * replication.h - replication in tkvd: the backlog, the links to replicas, the
 * link to a primary, WAIT and the role, private to the server library.
 *
 * Every server keeps a backlog: the last --repl-backlog bytes of its
 * replication stream ("B" frames, protocol/repl.h), a primary's from the
 * batches it commits, a replica's from the frames it applies. A replica
 * asks with PSYNC for the stream from its offset: if the primary's id (or
 * the id before it, up to where it ended) matches and the backlog still
 * holds the offset, the link continues from it (partial resync);
 * otherwise the replica takes a full copy - a raw snapshot of the store,
 * stepped on a helper thread like BACKUP (stream.h) - and continues from
 * the snapshot's offset.
 *
 * Every function runs on the loop thread.
 */
#ifndef TKV_REPL_SERVER_H
#define TKV_REPL_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "engine.h"
#include "proto.h"

typedef struct tkv_repl tkv_repl;

typedef struct tkv_repl_opts {
    size_t backlog;     /* bytes of stream kept for partial resyncs */
    double timeout;     /* seconds without a frame before a link is dropped */
    const char *secret; /* sent as AUTH to a primary; NULL: none */
    size_t secret_len;  /* bytes of secret */
    size_t max_frame;   /* largest frame a replica accepts from its primary */
    size_t output_high; /* unsent bytes above which a link's feed waits */
    void (*wait_done)(void *cookie, uint64_t acked); /* a WAIT ended */
    /* Finishes every batch under way through the server's commit path
     * (replies released, or withdrawn if a batch fails): REPLICAOF runs it
     * before the role changes. It blocks for the writes' syncs. */
    void (*settle)(void *ctx);
    void *ctx;
    uint64_t *conns; /* the server's count of connections: links count too */
} tkv_repl_opts;

/* A primary with an empty backlog at the engine's offset. NULL if out of
 * memory. */
tkv_repl *tkv_repl_new(struct ev_loop *loop, tkv_engine *e, const tkv_repl_opts *o);
/* Closes every link. NULL-safe. */
void tkv_repl_free(tkv_repl *r);

/* Becomes a replica of host:port (host NULL: a primary again - REPLICAOF
 * NO ONE). Writes under way are committed first. Returns 0, or -1 with the
 * reason in err. */
int tkv_repl_replicaof(tkv_repl *r, const char *host, uint16_t port, char *err, size_t errlen);

/* A replica: why writes are refused ("this server is a replica of
 * host:port..."); NULL on a primary. */
const char *tkv_repl_readonly(const tkv_repl *r);
/* False while this server's data is part of a full copy: reads get BUSY. */
bool tkv_repl_serving(const tkv_repl *r);
/* True if this server is a replica of host:port already. */
bool tkv_repl_follows(const tkv_repl *r, const char *host, uint16_t port);

/* True on a replica (the sweep leaves deletion to the primary). */
bool tkv_repl_is_replica(const tkv_repl *r);

/* The server committed a batch (after tkv_engine_commit_finish()
 * returned 1): its frame joins the backlog and the links are fed; a
 * replica acknowledges. */
void tkv_repl_committed(tkv_repl *r);
/* A batch failed: a replica's staged frames are gone, so its link starts
 * over from what is committed. */
void tkv_repl_rolled_back(tkv_repl *r);
/* Once per loop turn: steps full copies and feeds links. Returns true if
 * a copy could go on at once (the loop must not sleep). */
bool tkv_repl_prepare(tkv_repl *r);

/* A connection's PSYNC: the link takes its socket (fd) and the replies it
 * had not yet sent (out, n bytes). Closes fd itself on failure. */
void tkv_repl_attach(tkv_repl *r, int fd, const char *peer, const tkv_span *replid, uint64_t offset,
                     const uint8_t *out, size_t n);

/* WAIT: calls o->wait_done(cookie, acked) once `n` replicas have
 * acknowledged the offset of every batch up to `epoch`, or after
 * timeout_ms (0: never). Returns 0, or -1 if out of memory. */
int tkv_repl_wait(tkv_repl *r, void *cookie, uint64_t n, uint64_t timeout_ms, uint64_t epoch);
/* The waiter for cookie goes away (its connection closed). */
void tkv_repl_wait_cancel(tkv_repl *r, void *cookie);

/* The change feed (watcher.h) reads the backlog: the offsets it holds,
 * [start, end) - on a replica end may be past what is committed - or -1 if
 * there is no backlog (--repl-backlog 0). */
int tkv_repl_backlog_span(const tkv_repl *r, uint64_t *start, uint64_t *end);
/* Appends the n backlog bytes from offset `from` to out. 0, or -1 if the
 * backlog does not hold them all or out of memory. */
int tkv_repl_backlog_read(const tkv_repl *r, uint64_t from, size_t n, tkv_buf *out);
/* Moves whenever the backlog starts over (a full copy, a gap, a new
 * history): a watcher's offset means nothing across it, even if equal. */
uint64_t tkv_repl_backlog_gen(const tkv_repl *r);

/* ROLE's reply. 0 or -1 if out of memory. */
int tkv_repl_role(tkv_repl *r, tkv_buf *out);

/* The STATS fields of replication: tkv_repl_nstats() of them - six, and
 * on a primary four per linked replica (its offset and lag), on a replica
 * its link and lag. */
uint32_t tkv_repl_nstats(const tkv_repl *r);
struct tkv_rep_wr;
void tkv_repl_stats(tkv_repl *r, struct tkv_rep_wr *lw);

#endif
