/*
 * run.h - tkv-bench's engine: many non-blocking connections on one libev
 * loop, each keeping a pipeline of requests in flight.
 *
 * A run is one set of connections used for consecutive phases (preload,
 * then the measured run). Within a phase each connection, whenever replies
 * free slots in its pipeline, encodes that many new requests into its
 * output buffer and sends them with one write; replies are matched to
 * requests by order, as the protocols require.
 *
 * What the latency of a request measures: from a CLOCK_MONOTONIC reading
 * taken just before the write() that hands its batch to the kernel, to a
 * reading taken just after the read() that returned the last byte of its
 * reply. One clock reading covers every request of a batch and every reply
 * of a read, so the clock costs two calls per batch rather than two per
 * request. Time a reply spends in the socket buffer while the loop serves
 * other connections is included, as it would be in any client.
 *
 * With a rate (--rate, open loop) the measured phase is paced instead:
 * request g of the phase is due at start + g / rate seconds and belongs to
 * connection g % connections, so each connection has its own fixed
 * schedule and the schedules interleave. A connection sends a request once
 * it is due and the pipeline has room; one that is full catches up, in a
 * burst, as replies free slots. The latency of a paced request runs from
 * its due time, not from its write(): time it waited because the server was
 * slow to answer the requests ahead of it counts against the server, as it
 * would for a client that does not wait for the server before it has more
 * to ask (no coordinated omission). A timerfd, not a libev timer, wakes the
 * loop at due times: libev's epoll backend rounds timeouts to milliseconds,
 * and lateness of that size would be charged to the server.
 */
#ifndef TKV_BENCH_RUN_H
#define TKV_BENCH_RUN_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench.h"
#include "driver.h"
#include "hist.h"
#include "workload.h"

typedef struct bench_stats {
    uint64_t replies[OP__COUNT]; /* every reply, errors and misses included */
    uint64_t errors[OP__COUNT];
    uint64_t misses[OP__COUNT];
    tkv_hist hist[OP__COUNT]; /* latency, nanoseconds */
    uint64_t elapsed_ns;      /* phase start to its last reply */
    double cpu_s;             /* tkv-bench's own user + system CPU time */
    /* Paced phases only. */
    uint64_t unsent; /* requests due by the end that were never sent */
    tkv_hist lag;    /* send time minus due time, nanoseconds */
} bench_stats;

typedef enum bench_phase { PHASE_PRELOAD, PHASE_MEASURE } bench_phase;

typedef struct bench_conn bench_conn;

typedef struct bench_run {
    struct ev_loop *loop;
    const bench_cfg *cfg;
    const bench_driver *drv;
    bench_workload *wl;
    bench_conn *conns;
    uint32_t nconns;
    size_t max_reply; /* largest reply accepted */

    /* State of the current phase. */
    bench_phase phase;
    bench_stats *stats;
    uint32_t depth; /* requests in flight per connection */
    uint64_t limit; /* requests to issue, 0 = until stopped */
    uint64_t issued, done, inflight;
    bool exhausted;     /* the generator has nothing more to issue */
    bool stopping;      /* deadline or SIGINT: drain, issue nothing */
    bool interrupted;   /* SIGINT seen */
    bool failed;        /* a connection broke: the phase is over */
    bool show_progress; /* live line on stderr (a terminal, not --quiet) */
    uint64_t start_ns;
    uint64_t rate;       /* requests/s of a paced phase; 0: closed loop */
    uint64_t pace_due;   /* requests due so far (numbers below it) */
    uint64_t pace_woken; /* pace_due when the pacer last woke connections */
    int pace_fd;         /* timerfd woken when a request falls due, or -1 */
    uint64_t pace_armed; /* when pace_fd fires; 0: disarmed */
    uint64_t last_done;  /* `done` at the previous progress tick */
    uint64_t last_tick_ns;

    char errmsg[256];      /* why the run failed */
    char first_error[256]; /* the first error reply, for the report */

    ev_timer tick;     /* progress line and timeouts, every second */
    ev_timer deadline; /* end of a timed phase */
    ev_io pace;        /* pace_fd: a paced request is due */
    ev_signal sigint;
} bench_run;

/* Resolves the target and opens cfg->conns connections, each with room for
 * `max_depth` requests in flight, and authenticates each with cfg->auth if
 * set (a refused secret fails the open). Returns 0, or -1 with r->errmsg
 * set; call run_close() in both cases. */
int run_open(bench_run *r, const bench_cfg *cfg, const bench_driver *drv, bench_workload *wl,
             uint32_t max_depth);

/* Runs one phase to completion: PHASE_PRELOAD until every preload request
 * is answered, PHASE_MEASURE until cfg->requests are answered or
 * cfg->seconds have passed and the requests in flight are answered.
 * PHASE_MEASURE is paced if cfg->rate is set; the preload never is.
 * Results go to *stats. Returns 0, or -1 if a connection failed or timed
 * out (r->errmsg says why; *stats holds what completed). */
int run_phase(bench_run *r, bench_phase phase, uint32_t depth, bench_stats *stats);

/* Closes every connection and frees the run. NULL-safe. */
void run_close(bench_run *r);

#endif
