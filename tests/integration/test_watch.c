/*
 * test_watch.c - the change feed against the real tkvd: a watcher sees
 * every committed change under its prefix and nothing else, in commit
 * order; one that drops mid-batch and resumes from its last whole batch
 * misses nothing and sees nothing twice while a writer keeps writing; an
 * as-of watch fires for a late write at or before T and not after it; and
 * a watcher that stops reading is dropped while writers go on.
 *
 * No fixed sleeps: every wait is for a change to arrive (the context's
 * timeout turns a hang into a failure) or for a STATS field to move.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static tkvd d, rep;

static void teardown(void)
{
    tkvd_cleanup(&rep);
    tkvd_cleanup(&d);
}

TestSuite(watch, .fini = teardown, .timeout = 120);

#define DEADLINE 30.0

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The next change; asserts one comes within DEADLINE. */
static void next_change(tkv_ctx *w, tkv_change *ch)
{
    double until = mono() + DEADLINE;
    for (;;) {
        int rc = tkv_watch_next(w, ch);
        if (rc == TKV_OK)
            return;
        cr_assert_eq(rc, TKV_NOT_FOUND, "watch: %s", tkv_errstr(w));
        cr_assert_lt(mono(), until, "no change within %.0f s", DEADLINE);
    }
}

static tkv_ctx *watcher_on(const tkvd *s, const char *prefix, const tkv_watch_opts *o,
                           uint64_t *start)
{
    tkv_ctx *w = tkvd_client(s);
    tkv_set_timeout(w, 200); /* short waits: next_change keeps the deadline */
    cr_assert_eq(tkv_watch(w, prefix, strlen(prefix), o, start), TKV_OK, "WATCH: %s",
                 tkv_errstr(w));
    return w;
}

static tkv_ctx *watcher(const char *prefix, const tkv_watch_opts *o, uint64_t *start)
{
    return watcher_on(&d, prefix, o, start);
}

static bool key_is(const tkv_change *ch, const char *k)
{
    return ch->klen == strlen(k) && memcmp(ch->key, k, ch->klen) == 0;
}

typedef struct want {
    int kind;
    const char *key;
    uint64_t ts;
    const char *value; /* NULL: a tombstone (for WRITE) */
} want;

static void expect(tkv_ctx *w, const want *x)
{
    tkv_change ch;
    next_change(w, &ch);
    cr_assert_eq(ch.kind, x->kind, "kind %c, expected %c (key %.*s)", ch.kind, x->kind,
                 (int)ch.klen, (const char *)ch.key);
    cr_assert(key_is(&ch, x->key), "key %.*s, expected %s", (int)ch.klen, (const char *)ch.key,
              x->key);
    if (x->kind != TKV_CHANGE_META)
        cr_assert_eq(ch.ts, x->ts, "%s: ts %llu, expected %llu", x->key, (unsigned long long)ch.ts,
                     (unsigned long long)x->ts);
    if (x->kind == TKV_CHANGE_WRITE) {
        cr_assert_eq(ch.tombstone, x->value == NULL);
        if (x->value)
            cr_assert(ch.len == strlen(x->value) && memcmp(ch.value, x->value, ch.len) == 0);
    }
}

Test(watch, a_watcher_sees_every_change_under_its_prefix_in_commit_order)
{
    tkvd_start(&d, NULL);
    tkv_ctx *c = tkvd_client(&d);
    tkv_ctx *w = watcher("a/", NULL, NULL);
    uint64_t removed;
    cr_assert_eq(tkv_put(c, "a/1", 3, "one", 3, 10, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "b/1", 3, "no", 2, 11, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "a/2", 3, "two", 3, 20, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "a/1", 3, "past", 4, 5, NULL), TKV_OK);
    cr_assert_eq(tkv_del_at(c, "a/2", 3, 30, 1, NULL), TKV_OK);
    tkv_item items[] = {{{"b/2", 3}, {"no", 2}, 40, 1, 0},
                        {{"a/3", 3}, {"three", 5}, 40, 1, 0},
                        {{"a", 1}, {"not under a/", 12}, 40, 1, 0}};
    cr_assert_eq(tkv_mput(c, items, 3, NULL), TKV_OK);
    cr_assert_eq(tkv_del(c, "a/1", 3, &removed), TKV_OK);
    cr_assert_eq(removed, 2);
    cr_assert_eq(tkv_put(c, "b/3", 3, "no", 2, 50, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "a/end", 5, "end", 3, 60, NULL), TKV_OK);
    const want seq[] = {
        {TKV_CHANGE_WRITE, "a/1", 10, "one"},   {TKV_CHANGE_WRITE, "a/2", 20, "two"},
        {TKV_CHANGE_WRITE, "a/1", 5, "past"},   {TKV_CHANGE_WRITE, "a/2", 30, NULL},
        {TKV_CHANGE_WRITE, "a/3", 40, "three"},
    };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        expect(w, &seq[i]);
    /* DEL's removal: both versions at once, one change, its batch whole. */
    tkv_change ch;
    next_change(w, &ch);
    cr_assert(ch.kind == TKV_CHANGE_DROP && key_is(&ch, "a/1"), "DEL is one drop of the key");
    cr_assert(ch.batch_end && ch.ts == 0);
    /* Nothing of b/ or "a" came between, and a/end, written last, comes
     * last. */
    expect(w, &(want){TKV_CHANGE_WRITE, "a/end", 60, "end"});
    cr_assert_eq(tkvd_stat(c, "watchers"), 1);
    /* A watcher that closes is noticed without a write to fail on. */
    tkv_free(w);
    double until = mono() + DEADLINE;
    while (tkvd_stat(c, "watchers") != 0) {
        cr_assert_lt(mono(), until, "the closed watcher is still counted");
        usleep(10 * 1000);
    }
    tkv_free(c);
}

/* ---- resume ---------------------------------------------------------------- */

#define RESUME_N 3000

typedef struct writer_arg {
    const tkvd *d;
    int failed;
} writer_arg;

/* Writes r/00000 ... in pipelined runs, so batches hold many changes. */
static void *write_many(void *p)
{
    writer_arg *a = p;
    tkv_ctx *c = tkv_connect("127.0.0.1", a->d->port, 10000);
    char k[16];
    for (int i = 0; i < RESUME_N && !a->failed;) {
        int run = 0;
        for (; run < 25 && i < RESUME_N; run++, i++) {
            snprintf(k, sizeof k, "r/%05d", i);
            if (tkv_append_put(c, k, strlen(k), k, strlen(k), (uint64_t)i + 1) != TKV_OK)
                a->failed = 1;
        }
        for (; run > 0; run--) {
            tkv_reply r;
            if (tkv_read_reply(c, &r) != TKV_OK)
                a->failed = 1;
        }
    }
    tkv_free(c);
    return NULL;
}

Test(watch, a_watcher_that_resumes_from_its_last_batch_misses_nothing_and_repeats_nothing)
{
    tkvd_start(&d, NULL);
    uint64_t last_whole;
    tkv_ctx *w = watcher("r/", NULL, &last_whole);
    writer_arg a = {.d = &d};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, write_many, &a), 0);
    int next = 0; /* the next key expected, r/<next> */
    int since_whole = 0, reconnects = 0, mid_batch = 0, reads = 0;
    while (next < RESUME_N) {
        tkv_change ch;
        next_change(w, &ch);
        char k[16];
        snprintf(k, sizeof k, "r/%05d", next);
        cr_assert(key_is(&ch, k), "got %.*s, expected %s", (int)ch.klen, (const char *)ch.key, k);
        next++;
        since_whole++;
        reads++;
        if (ch.batch_end) {
            last_whole = ch.offset;
            since_whole = 0;
        }
        /* Every few hundred changes, drop the connection - mid-batch when
         * possible - and resume from the last whole batch: what came
         * after it must come again, exactly once. */
        if (reads % 400 == 0 || (!ch.batch_end && reads % 97 == 0)) {
            mid_batch += !ch.batch_end;
            tkv_free(w);
            next -= since_whole;
            since_whole = 0;
            tkv_watch_opts o = {.has_from = 1, .from = last_whole};
            uint64_t start;
            w = watcher("r/", &o, &start);
            cr_assert_eq(start, last_whole);
            reconnects++;
        }
    }
    pthread_join(t, NULL);
    cr_assert_not(a.failed, "the writer failed");
    cr_assert_geq(reconnects, 5);
    cr_assert_geq(mid_batch, 1, "no reconnect cut a batch");
    cr_log_info("%d reconnects, %d of them mid-batch", reconnects, mid_batch);
    tkv_free(w);
}

Test(watch, an_offset_outside_the_backlog_is_refused_with_a_reason)
{
    tkvd_start(&d, NULL);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 1, NULL), TKV_OK);
    tkv_watch_opts o = {.has_from = 1, .from = 1u << 30};
    cr_assert_eq(tkv_watch(c, "k", 1, &o, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_OUT_OF_RANGE, "%s", tkv_errstr(c));
    cr_assert(strstr(tkv_errstr(c), "read the state again"), "%s", tkv_errstr(c));
    o.from = 3; /* inside, but no batch starts there */
    cr_assert_eq(tkv_watch(c, "k", 1, &o, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_OUT_OF_RANGE);
    /* refused, the connection goes on as before */
    cr_assert_eq(tkv_put(c, "k", 1, "w", 1, 2, NULL), TKV_OK);
    tkv_free(c);
}

/* An offset is of one history: resumed with the id the watch had, it goes
 * on; with another id (another server, a failover) it is refused, though a
 * batch starts at that offset here too. */
Test(watch, a_resume_names_its_history_and_another_is_refused)
{
    tkvd_start(&d, NULL);
    tkv_ctx *c = tkvd_client(&d);
    uint64_t start;
    tkv_ctx *w = watcher("h/", NULL, &start);
    char id[65];
    snprintf(id, sizeof id, "%s", tkv_watch_replid(w));
    cr_assert_eq(strlen(id), 40, "the watch's history: %s", id);
    cr_assert_eq(tkv_put(c, "h/1", 3, "a", 1, 1, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "h/2", 3, "b", 1, 2, NULL), TKV_OK);
    tkv_change ch;
    next_change(w, &ch);
    uint64_t after_one = ch.offset;
    tkv_free(w);
    tkv_watch_opts o = {.has_from = 1, .from = after_one, .replid = id};
    w = watcher("h/", &o, NULL);
    expect(w, &(want){TKV_CHANGE_WRITE, "h/2", 2, "b"});
    tkv_free(w);
    o.replid = "0123456789012345678901234567890123456789";
    w = tkvd_client(&d);
    cr_assert_eq(tkv_watch(w, "h/", 2, &o, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(w), TKV_SC_OUT_OF_RANGE, "%s", tkv_errstr(w));
    cr_assert(strstr(tkv_errstr(w), "another replication history"), "%s", tkv_errstr(w));
    tkv_free(w);
    tkv_free(c);
}

/* ---- on a replica ------------------------------------------------------------ */

Test(watch, a_watcher_on_a_replica_sees_the_primarys_changes_at_the_primarys_offsets)
{
    tkvd_start(&d, NULL);
    char spec[64];
    snprintf(spec, sizeof spec, "127.0.0.1:%u", d.port);
    const char *args[] = {"--replica-of", spec, NULL};
    tkvd_start(&rep, args);
    /* Once the replica follows its primary and serves: it answers BUSY (to
     * WATCH too) until its full copy is committed. */
    tkv_ctx *rc = tkvd_client(&rep);
    double until = mono() + DEADLINE;
    tkv_version v;
    tkv_role_info ri;
    while (tkv_role(rc, &ri) != TKV_OK || !ri.link || strcmp(ri.link, "online") != 0 ||
           tkv_get(rc, "w/none", 6, TKV_LATEST, &v) != TKV_NOT_FOUND) {
        cr_assert_lt(mono(), until, "the replica never served: %s", tkv_errstr(rc));
        usleep(10 * 1000);
    }
    tkv_free(rc);
    tkv_ctx *c = tkvd_client(&d);
    tkv_ctx *w = watcher_on(&rep, "w/", NULL, NULL);
    cr_assert_eq(tkv_put(c, "w/1", 3, "one", 3, 2, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "w/2", 3, "two", 3, 3, NULL), TKV_OK);
    tkv_change ch;
    next_change(w, &ch);
    cr_assert(key_is(&ch, "w/1") && ch.batch_end);
    uint64_t after_one = ch.offset;
    expect(w, &(want){TKV_CHANGE_WRITE, "w/2", 3, "two"});
    /* One stream: the replica's offset resumes a watch on the primary. */
    tkv_watch_opts o = {.has_from = 1, .from = after_one};
    tkv_ctx *pw = watcher("w/", &o, NULL);
    expect(pw, &(want){TKV_CHANGE_WRITE, "w/2", 3, "two"});
    tkv_free(pw);
    tkv_free(w);
    tkv_free(c);
}

/* ---- as of ------------------------------------------------------------------- */

Test(watch, an_as_of_watch_fires_for_a_late_write_at_or_before_t_and_not_after)
{
    tkvd_start(&d, NULL);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "k", 1, "old", 3, 100, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "k", 1, "new", 3, 300, NULL), TKV_OK);
    tkv_watch_opts o = {.has_asof = 1, .asof = 200};
    tkv_ctx *w = watcher("k", &o, NULL);
    /* After T, another key, a key that only starts with k: nothing. */
    cr_assert_eq(tkv_put(c, "k", 1, "later", 5, 250, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "kk", 2, "other", 5, 150, NULL), TKV_OK);
    /* A late write into the past, before T: fires. */
    cr_assert_eq(tkv_put(c, "k", 1, "late", 4, 150, NULL), TKV_OK);
    expect(w, &(want){TKV_CHANGE_WRITE, "k", 150, "late"});
    /* Exactly at T: fires; a tombstone before T: fires. */
    cr_assert_eq(tkv_put(c, "k", 1, "after", 5, 201, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, "k", 1, "at", 2, 200, NULL), TKV_OK);
    expect(w, &(want){TKV_CHANGE_WRITE, "k", 200, "at"});
    cr_assert_eq(tkv_del_at(c, "k", 1, 120, 1, NULL), TKV_OK);
    expect(w, &(want){TKV_CHANGE_WRITE, "k", 120, NULL});
    /* Retention moving the horizon past T: the metadata change fires. */
    tkv_retain_info ri;
    cr_assert_eq(tkv_retain(c, "k", 1, 1, 0, 0, &ri), TKV_OK);
    tkv_change ch;
    next_change(w, &ch);
    cr_assert_eq(ch.kind, TKV_CHANGE_META);
    cr_assert_eq(ch.keep_versions, 1);
    cr_assert_gt(ch.horizon, 200, "the horizon moved past T");
    tkv_free(w);
    tkv_free(c);
}

/* ---- a watcher that stops reading -------------------------------------------- */

Test(watch, a_watcher_that_stops_reading_is_dropped_and_writers_go_on)
{
    const char *args[] = {"--max-output", "262144", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    tkv_ctx *w = watcher("", NULL, NULL);
    cr_assert_eq(tkvd_stat(c, "watchers"), 1);
    /* Writes go on, all acknowledged, until the server has dropped the
     * watcher that reads nothing: past --max-output plus what the
     * sockets hold. */
    static char val[4096];
    memset(val, 'x', sizeof val);
    char k[32];
    double until = mono() + DEADLINE;
    int i = 0;
    while (tkvd_stat(c, "watchers") == 1) {
        cr_assert_lt(mono(), until, "the watcher was never dropped");
        for (int run = 0; run < 50; run++, i++) {
            snprintf(k, sizeof k, "big/%d", i);
            cr_assert_eq(tkv_append_put(c, k, strlen(k), val, sizeof val, 1), TKV_OK);
        }
        for (int run = 0; run < 50; run++) {
            tkv_reply r;
            cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
        }
    }
    cr_assert_gt(i, 0);
    /* The writer still writes and reads. */
    cr_assert_eq(tkv_put(c, "after", 5, "ok", 2, 1, NULL), TKV_OK);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "after", 5, TKV_LATEST, &v), TKV_OK);
    /* The watcher finds what the socket held, then the end of its watch. */
    tkv_change ch;
    int rc;
    size_t got = 0;
    while ((rc = tkv_watch_next(w, &ch)) == TKV_OK)
        got++;
    cr_assert_eq(rc, TKV_ERR, "the watch must end, not time out");
    cr_assert_lt(got, (size_t)i, "it was dropped before it had everything");
    char *log = tkvd_log(&d);
    cr_assert(strstr(log, "bytes of unread changes"), "%s", log);
    free(log);
    tkv_free(w);
    tkv_free(c);
}

/* A watcher that reads slowly lags in the backlog, not in the server's
 * memory: it is fed only as far as its socket takes, and once the backlog
 * has passed it, it learns so (OUT_OF_RANGE) after the pushes it had. Its
 * socket here takes little (a small receive buffer), as a slow reader's
 * would. */
Test(watch, a_slow_watcher_lags_in_the_backlog_then_is_told)
{
    const char *args[] = {"--repl-backlog", "1mb", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(d.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    static const uint8_t watch_all[] = {0, 0, 0, 8, 0x92, 0xa5, 'W', 'A', 'T', 'C', 'H', 0xa0};
    raw_send(fd, watch_all, sizeof watch_all);
    uint8_t buf[8192];
    cr_assert_gt(raw_frame(fd, buf, sizeof buf), 0); /* [0, replid, offset] */
    cr_assert_eq(buf[1], 0);
    static char val[2048];
    memset(val, 'y', sizeof val);
    /* 16 MiB: far past the backlog, and more than the sockets between
     * hold. */
    static char keys[16][32];
    tkv_item items[16];
    for (int b = 0; b < 512; b++) {
        for (int i = 0; i < 16; i++) {
            snprintf(keys[i], sizeof keys[i], "slow/%d/%d", b, i);
            items[i] = (tkv_item){.key = {keys[i], strlen(keys[i])}, .value = {val, sizeof val}};
        }
        cr_assert_eq(tkv_mput(c, items, 16, NULL), TKV_OK, "%s", tkv_errstr(c));
    }
    /* The watcher reads: pushes, then the end of its watch. */
    long n;
    size_t pushes = 0;
    while ((n = raw_frame(fd, buf, sizeof buf)) > 0 && (buf[0] & 0xf0) == 0x90 && buf[1] == 0xa1)
        pushes++; /* ["W", ...]: a push starts with a one-letter str */
    cr_assert_gt(n, 1, "the watch ended without saying why (after %zu pushes, %ld)", pushes, n);
    cr_assert_eq(buf[1], TKV_SC_OUT_OF_RANGE, "the watch did not end OUT_OF_RANGE");
    cr_assert_gt(pushes, 0);
    cr_assert_lt(pushes, 512 * 16, "it was fed everything: nothing lagged");
    close(fd);
    tkv_free(c);
}
