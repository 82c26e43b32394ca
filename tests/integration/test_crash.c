/*
 * test_crash.c - kill -9 in the middle of writes, in every durability mode.
 *
 * Several writer threads, each on its own connection, write unique versions
 * as fast as they can (pipelined), recording every write they sent and
 * every one the server acknowledged. A driver kills tkvd with SIGKILL at a
 * random moment, restarts it, and checks - as Jepsen's set test does - that
 * every acknowledged write reads back with its exact value (none lost) and
 * that every version present is one a client sent (none unexpected). A
 * write without a reply may or may not exist.
 *
 * One operation in 32 goes to each writer's "doomed" key instead: three
 * PUTs, then a DEL of the whole key, and again. One connection's writes
 * reach the store in order, so what survives a kill is a prefix of what the
 * writer sent in that cycle, at least up to its last acknowledged operation,
 * applied to what survived the kills before: the doomed key must hold
 * exactly what such a prefix leaves - no version a completed DEL removed
 * comes back, none it left is lost.
 *
 * TKV_CRASH_CYCLES sets the number of kill/restart cycles (default 5 per
 * mode, for CI); the figures are printed at the end.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/rng.h"
#include "harness.h"

#define WRITERS 4
#define KEYS_PER_WRITER 16
#define PIPELINE 8
#define MAX_SEQ (1u << 22)
/* A DEL lost in a kill leaves the PUTs before it: a few dozen at most. */
#define DOOMED_MAX 64

typedef struct writer {
    int id;
    uint16_t port;
    atomic_long acked_now; /* acknowledged in this cycle */
    uint64_t next_seq;     /* first sequence number not yet sent */
    uint64_t cycle_start;  /* first sequence number of this cycle */
    uint8_t *acked;        /* acked[seq]: the server said OK */
    /* The doomed key's versions after the last restart: what this cycle's
     * operations apply to. */
    uint64_t doomed[DOOMED_MAX];
    size_t ndoomed;
    pthread_t thread;
} writer;

static tkvd d;
static atomic_bool failed_write_reply; /* a non-I/O error: a bug */

static void teardown(void) { tkvd_cleanup(&d); }

/* Operations on the doomed key: every 32nd; every 4th of those a DEL. */
static bool doomed_op(uint64_t seq) { return seq % 32 == 31; }
static bool doomed_del(uint64_t seq) { return doomed_op(seq) && (seq / 32) % 4 == 3; }

static void key_of(int w, uint64_t seq, char *out, size_t n)
{
    if (doomed_op(seq))
        snprintf(out, n, "w%d-doomed", w);
    else
        snprintf(out, n, "w%d-k%02d", w, (int)(seq % KEYS_PER_WRITER));
}

static size_t value_of(int w, uint64_t seq, char *out, size_t n)
{
    return (size_t)snprintf(out, n, "writer %d wrote sequence number %llu", w,
                            (unsigned long long)seq);
}

static void *write_loop(void *arg)
{
    writer *wr = arg;
    tkv_ctx *c = tkv_connect("127.0.0.1", wr->port, 10000);
    while (c && tkv_err(c) == TKV_EK_NONE && wr->next_seq + PIPELINE < MAX_SEQ) {
        uint64_t first = wr->next_seq;
        for (int i = 0; i < PIPELINE; i++) {
            char k[32], v[64];
            uint64_t seq = first + (uint64_t)i;
            key_of(wr->id, seq, k, sizeof k);
            size_t vl = value_of(wr->id, seq, v, sizeof v);
            if (doomed_del(seq))
                tkv_append_del(c, k, strlen(k));
            else
                tkv_append_put(c, k, strlen(k), v, vl, seq);
        }
        /* Sent from here on: a sequence number is never reused. */
        wr->next_seq = first + PIPELINE;
        if (tkv_flush(c) != TKV_OK)
            break;
        for (int i = 0; i < PIPELINE; i++) {
            tkv_reply r;
            int rc = tkv_read_reply(c, &r);
            if (rc == TKV_OK) {
                if (!doomed_del(first + (uint64_t)i))
                    cr_assert_eq(r.ts, first + (uint64_t)i);
                wr->acked[first + (uint64_t)i] = 1;
                atomic_fetch_add(&wr->acked_now, 1);
                continue;
            }
            if (tkv_err(c) == TKV_EK_SERVER)
                atomic_store(&failed_write_reply, true);
            goto out;
        }
    }
out:
    tkv_free(c);
    return NULL;
}

typedef struct tally {
    uint64_t acked, lost, unexpected, present;
} tally;

/* Checks the versions of one writer's keys with seq >= from. */
static void verify_writer(tkv_ctx *c, writer *wr, uint64_t from, tally *t)
{
    for (int k = 0; k < KEYS_PER_WRITER; k++) {
        char key[32];
        key_of(wr->id, (uint64_t)k, key, sizeof key);
        uint8_t *seen = calloc(MAX_SEQ / KEYS_PER_WRITER + 1, 1);
        uint64_t start = from;
        int truncated = 1;
        while (truncated) {
            tkv_range_opts o = {.from = start};
            const tkv_entry *e;
            size_t n;
            cr_assert_eq(tkv_range(c, key, strlen(key), &o, &e, &n, &truncated), TKV_OK, "%s",
                         tkv_errstr(c));
            for (size_t i = 0; i < n; i++) {
                uint64_t seq = e[i].ts;
                char want[64];
                size_t wl = value_of(wr->id, seq, want, sizeof want);
                bool sent =
                    seq < wr->next_seq && seq % KEYS_PER_WRITER == (uint64_t)k && !doomed_op(seq);
                if (!sent || e[i].len != wl || memcmp(e[i].value, want, wl) != 0) {
                    t->unexpected++;
                    continue;
                }
                seen[seq / KEYS_PER_WRITER] = 1;
                t->present++;
            }
            if (n)
                start = e[n - 1].ts + 1;
        }
        for (uint64_t seq =
                 from + ((uint64_t)k + KEYS_PER_WRITER - from % KEYS_PER_WRITER) % KEYS_PER_WRITER;
             seq < wr->next_seq; seq += KEYS_PER_WRITER) {
            if (!wr->acked[seq] || doomed_op(seq))
                continue;
            t->acked++;
            if (!seen[seq / KEYS_PER_WRITER])
                t->lost++;
        }
        free(seen);
    }
}

/* Checks the doomed key: it must hold what the versions it held after the
 * last restart become under some prefix of this cycle's operations - one
 * that keeps at least the last acknowledged one. A kill can lose operations
 * sent but not acknowledged, and the next cycle's go on from there, so the
 * cut is per cycle, not one over the writer's whole history. */
static void verify_doomed(tkv_ctx *c, writer *wr)
{
    char key[32];
    key_of(wr->id, 31, key, sizeof key);
    tkv_range_opts o = {0};
    const tkv_entry *e;
    size_t n;
    int truncated;
    cr_assert_eq(tkv_range(c, key, strlen(key), &o, &e, &n, &truncated), TKV_OK, "%s",
                 tkv_errstr(c));
    char held[400] = "";
    for (size_t i = 0; i < n && strlen(held) < 360; i++)
        snprintf(held + strlen(held), sizeof held - strlen(held), " %llu",
                 (unsigned long long)e[i].ts);
    cr_assert(!truncated && n <= DOOMED_MAX, "writer %d: the doomed key holds %zu versions:%s",
              wr->id, n, held);
    for (size_t i = 0; i < n; i++) {
        char want[64];
        size_t wl = value_of(wr->id, e[i].ts, want, sizeof want);
        cr_assert(e[i].ts < wr->next_seq && doomed_op(e[i].ts) && !doomed_del(e[i].ts) &&
                      e[i].len == wl && memcmp(e[i].value, want, wl) == 0,
                  "writer %d: the doomed key holds a version nobody wrote (%llu)", wr->id,
                  (unsigned long long)e[i].ts);
    }
    /* keep: how many of this cycle's operations survive. */
    uint64_t sent = wr->next_seq - wr->cycle_start, min_keep = 0;
    for (uint64_t k = sent; k > 0; k--)
        if (wr->acked[wr->cycle_start + k - 1]) {
            min_keep = k;
            break;
        }
    uint64_t want[DOOMED_MAX];
    for (uint64_t keep = min_keep; keep <= sent; keep++) {
        size_t nw = wr->ndoomed;
        memcpy(want, wr->doomed, nw * sizeof want[0]);
        for (uint64_t seq = wr->cycle_start; seq < wr->cycle_start + keep; seq++) {
            if (doomed_del(seq))
                nw = 0;
            else if (doomed_op(seq)) {
                cr_assert_lt(nw, DOOMED_MAX, "writer %d: more doomed versions than the check holds",
                             wr->id);
                want[nw++] = seq;
            }
        }
        bool same = nw == n;
        for (size_t i = 0; same && i < n; i++)
            same = want[i] == e[i].ts;
        if (same) {
            for (size_t i = 0; i < n; i++)
                wr->doomed[i] = e[i].ts;
            wr->ndoomed = n;
            return;
        }
    }
    cr_assert_fail("writer %d: the doomed key's versions (%s ) are no prefix's (this cycle sent "
                   "operations %llu-%llu, acknowledged up to its %llu-th)",
                   wr->id, held, (unsigned long long)wr->cycle_start,
                   (unsigned long long)wr->next_seq - 1, (unsigned long long)min_keep);
}

/* wbuf: tkvd's --write-buffer, or NULL for the default. A small one keeps
 * the flusher busy, so kills land in the middle of flushes (chunks half
 * rewritten in LevelDB, log files not yet deleted). */
static void crash_cycles(const char *mode, const char *wbuf)
{
    const char *env = getenv("TKV_CRASH_CYCLES");
    int cycles = env ? atoi(env) : 5;
    test_rng r = {test_seed(mode)};
    const char *args[] = {"--fsync", mode, wbuf ? "--write-buffer" : NULL, wbuf, NULL};
    tkvd_start(&d, args);
    writer w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (writer){.id = i, .acked = calloc(MAX_SEQ, 1)};
    }
    tally total = {0};
    for (int cycle = 0; cycle < cycles; cycle++) {
        for (int i = 0; i < WRITERS; i++) {
            w[i].port = d.port;
            w[i].cycle_start = w[i].next_seq;
            atomic_store(&w[i].acked_now, 0);
            pthread_create(&w[i].thread, NULL, write_loop, &w[i]);
        }
        /* Wait until writes are flowing (a slow server, e.g. under
         * valgrind, takes a while), then let them run a random while: that
         * is the crash moment, not a wait for a condition. */
        for (int waited = 0; waited < 60000 && atomic_load(&w[0].acked_now) == 0; waited++)
            usleep(1000);
        usleep((useconds_t)(20000 + test_rng_below(&r, 180000)));
        tkvd_signal(&d, SIGKILL);
        for (int i = 0; i < WRITERS; i++)
            pthread_join(w[i].thread, NULL);
        cr_assert(!atomic_load(&failed_write_reply), "a write got an error reply");
        tkvd_restart(&d);
        tkv_ctx *c = tkvd_client(&d);
        tally t = {0};
        for (int i = 0; i < WRITERS; i++) {
            verify_writer(c, &w[i], w[i].cycle_start, &t);
            verify_doomed(c, &w[i]);
        }
        tkv_free(c);
        cr_assert_eq(t.lost, 0, "cycle %d: %llu of %llu acknowledged writes lost", cycle,
                     (unsigned long long)t.lost, (unsigned long long)t.acked);
        cr_assert_eq(t.unexpected, 0, "cycle %d: %llu versions nobody wrote", cycle,
                     (unsigned long long)t.unexpected);
        cr_assert_gt(t.acked, 0, "cycle %d: no write was acknowledged", cycle);
        total.acked += t.acked;
    }
    /* Everything again, from the start: earlier cycles must not decay. */
    tkv_ctx *c = tkvd_client(&d);
    tally all = {0};
    for (int i = 0; i < WRITERS; i++)
        verify_writer(c, &w[i], 0, &all);
    tkv_free(c);
    cr_assert_eq(all.lost, 0);
    cr_assert_eq(all.unexpected, 0);
    cr_assert_eq(all.acked, total.acked);
    uint64_t sent = 0;
    for (int i = 0; i < WRITERS; i++) {
        sent += w[i].next_seq;
        free(w[i].acked);
    }
    fprintf(stderr,
            "crash test, fsync %s, write buffer %s: %d kill -9 cycles, %llu writes sent, %llu "
            "acknowledged, "
            "%llu lost, %llu unexpected, %llu present\n",
            mode, wbuf ? wbuf : "default", cycles, (unsigned long long)sent,
            (unsigned long long)all.acked, (unsigned long long)all.lost,
            (unsigned long long)all.unexpected, (unsigned long long)all.present);
}

Test(crash, kill9_fsync_always, .fini = teardown, .timeout = 3600) { crash_cycles("always", NULL); }

Test(crash, kill9_fsync_everysec, .fini = teardown, .timeout = 3600)
{
    crash_cycles("everysec", NULL);
}

Test(crash, kill9_fsync_never, .fini = teardown, .timeout = 3600) { crash_cycles("never", NULL); }

Test(crash, kill9_during_flushes_fsync_always, .fini = teardown, .timeout = 3600)
{
    crash_cycles("always", "64kb");
}

Test(crash, kill9_during_flushes_fsync_never, .fini = teardown, .timeout = 3600)
{
    crash_cycles("never", "64kb");
}
