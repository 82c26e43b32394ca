/*
 * tkvctl_latency.c - tkvctl --latency: PING after PING on one connection,
 * each round trip timed, as redis-cli --latency does.
 *
 * It prints the minimum, average, maximum and 99th percentile in
 * milliseconds: once at the end (after --latency-count PINGs, or when
 * interrupted by SIGINT or SIGTERM), and, when stdout is a terminal, live
 * on one line as it goes. Round trips go into a log-linear histogram (64
 * buckets per power of two of nanoseconds: the p99 is within 1.6%) rather
 * than a list, so a run of any length uses the same 30 KiB. A pause of
 * --interval ms (10 by default) between PINGs keeps a long run from
 * loading the server; --interval 0 measures back to back.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tkvctl.h"
#include "clock.h"

#define SUB_BITS 6                   /* 2^6 buckets per power of two */
#define EXACT (1u << (SUB_BITS + 1)) /* below 128 ns, one bucket per ns */
#define N_BUCKETS (EXACT + (63 - SUB_BITS) * (1u << SUB_BITS))
#define LIVE_EVERY_NS (100 * 1000 * 1000u) /* the terminal line's refresh */

typedef struct lat_hist {
    uint64_t n, sum, min, max; /* nanoseconds */
    uint64_t count[N_BUCKETS];
} lat_hist;

static volatile sig_atomic_t stop;

static void on_signal(int sig) { stop = 1; }

static size_t bucket_of(uint64_t v)
{
    if (v < EXACT)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v); /* >= SUB_BITS + 1 */
    uint64_t sub = (v >> (e - SUB_BITS)) & ((1u << SUB_BITS) - 1);
    return EXACT + (size_t)(e - SUB_BITS - 1) * (1u << SUB_BITS) + (size_t)sub;
}

/* The largest value bucket b holds (wrapping to UINT64_MAX at the top). */
static uint64_t bucket_top(size_t b)
{
    if (b < EXACT)
        return b;
    size_t k = b - EXACT;
    int e = (int)(k >> SUB_BITS) + SUB_BITS + 1;
    uint64_t sub = k & ((1u << SUB_BITS) - 1);
    return (((1u << SUB_BITS) + sub + 1) << (e - SUB_BITS)) - 1;
}

static void record(lat_hist *h, uint64_t ns)
{
    h->min = h->n == 0 || ns < h->min ? ns : h->min;
    h->max = ns > h->max ? ns : h->max;
    h->n++;
    h->sum += ns;
    h->count[bucket_of(ns)]++;
}

/* The 99th percentile: the top of the bucket that holds it, no more than
 * the maximum seen. */
static uint64_t p99(const lat_hist *h)
{
    uint64_t want = h->n - h->n / 100, seen = 0; /* ceil(0.99 n) for n < 100 */
    for (size_t b = 0; b < N_BUCKETS; b++) {
        seen += h->count[b];
        if (seen >= want) {
            uint64_t top = bucket_top(b);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}

static void print_stats(const cli *c, const lat_hist *h, const char *lead, const char *end)
{
    uint64_t avg = h->n ? h->sum / h->n : 0;
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_u64(&j, "samples", h->n);
        json_u64(&j, "min_us", h->min / 1000);
        json_u64(&j, "avg_us", avg / 1000);
        json_u64(&j, "max_us", h->max / 1000);
        json_u64(&j, "p99_us", h->n ? p99(h) / 1000 : 0);
        json_end(&j);
        return;
    }
    printf("%smin: %.3f, avg: %.3f, max: %.3f, p99: %.3f ms (%" PRIu64 " samples)%s", lead,
           h->min / 1e6, avg / 1e6, h->max / 1e6, h->n ? p99(h) / 1e6 : 0.0, h->n, end);
    fflush(stdout);
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the loop then stops */
}

static void catch_stop(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a PING waiting for its reply ends */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int run_latency(cli *c)
{
    if (connect_cli(c))
        return EXIT_ERROR;
    lat_hist *h = calloc(1, sizeof *h);
    if (!h)
        return fail("out of memory");
    catch_stop();
    bool live = isatty(STDOUT_FILENO) && !c->json;
    uint64_t shown = 0;
    int rc = 0;
    while (!stop && (c->latency_count == 0 || h->n < c->latency_count)) {
        uint64_t t0 = tkv_clock_mono_ns();
        if (tkv_ping(c->ctx) != TKV_OK) {
            if (!stop) /* else the signal cut the wait short */
                rc = server_fail(c);
            break;
        }
        uint64_t now = tkv_clock_mono_ns();
        record(h, now - t0);
        if (live && now - shown >= LIVE_EVERY_NS) {
            print_stats(c, h, "\r\033[K", "");
            shown = now;
        }
        if (c->interval_ms && (c->latency_count == 0 || h->n < c->latency_count))
            pause_ms(c->interval_ms);
    }
    if (rc == 0)
        print_stats(c, h, live ? "\r\033[K" : "", "\n");
    free(h);
    return rc;
}
