/*
 * latency.h - tkvd's per-command latency histograms, reported in STATS.
 *
 * A request's latency runs from its frame being taken from the input
 * buffer to its reply being queued on the connection, so a read that
 * waits for a reader thread's load (readers.h) counts that wait, and a
 * write whose reply is held for its batch does not count the batch's
 * sync (the reply is queued, only not yet released). DIGEST, BACKUP and
 * WATCH are timed to the moment their stream or feed starts. Within a run
 * of pipelined requests served back to back, a request starts when the
 * one before it was queued (conn.c: one clock read per request, not two);
 * what lies between is taking its frame from the buffer.
 *
 * One histogram (common/hist.h) per command, allocated once: recording is
 * O(1) and allocates nothing. Values are microseconds since start; nothing
 * is ever reset. Every function runs on the loop thread.
 */
#ifndef TKV_LATENCY_H
#define TKV_LATENCY_H

#include <stdint.h>

#include "hist.h"
#include "proto.h"

typedef struct tkv_latency {
    tkv_hist cmd[TKV_CMD__COUNT]; /* by command, microseconds */
} tkv_latency;

/* Empty histograms, or NULL if out of memory. tkv_latency_free(NULL) is a
 * no-op. */
tkv_latency *tkv_latency_new(void);
void tkv_latency_free(tkv_latency *l);

/* Counts one request of command c that took us microseconds. */
static inline void tkv_latency_record(tkv_latency *l, tkv_cmd c, uint64_t us)
{
    tkv_hist_record(&l->cmd[c], us);
}

/* STATS fields per command served at least once. */
#define TKV_LATENCY_FIELDS 5

/* The STATS fields: tkv_latency_nstats() of them, TKV_LATENCY_FIELDS for
 * each command served at least once, in command order:
 * latency_<cmd>_count, _p50_us, _p99_us, _p999_us, _max_us. Walks every
 * bucket of those commands (some thousand adds each): cheap next to a
 * STATS reply, too slow for a request path. */
uint32_t tkv_latency_nstats(const tkv_latency *l);
struct tkv_rep_wr;
void tkv_latency_stats(const tkv_latency *l, struct tkv_rep_wr *lw);

#endif
