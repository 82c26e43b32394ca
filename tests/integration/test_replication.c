/*
 * test_replication.c - replicas against real tkvd processes on loopback:
 * a replica converges to its primary's DIGEST after writes of every kind,
 * refuses writes, resumes after a kill -9 of either side (partial resync
 * when the backlog holds its offset, a full copy when it does not), WAIT
 * counts acknowledgements, and a promoted replica keeps every write its
 * old primary acknowledged with WAIT while the old primary, back as a
 * replica, drops what it alone had.
 *
 * Waits are on conditions (DIGEST equal, a STATS field), never fixed
 * sleeps; each has a deadline so a broken build fails instead of hanging.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "proto.h"
#include "reply.h"

static tkvd p, r, r2;

static void teardown(void)
{
    tkvd_cleanup(&r2);
    tkvd_cleanup(&r);
    tkvd_cleanup(&p);
}

TestSuite(replication, .fini = teardown, .timeout = 120);

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Polls every few milliseconds; the deadline only turns a hang into a
 * failure. */
#define DEADLINE 30.0
static void pause_briefly(void) { usleep(10 * 1000); }

/* One raw request with a raw reply (commands the client library has no
 * call for here): the reply is decoded into rep, its bytes kept in buf. */
static void raw_cmd(const tkvd *d, const tkv_req *q, tkv_rep *rep, uint8_t *buf, size_t cap)
{
    int fd = tkvd_raw(d);
    tkv_buf b;
    tkv_buf_init(&b);
    cr_assert_eq(tkv_req_encode(&b, q), 0);
    raw_send(fd, b.data, b.len);
    long n = raw_frame(fd, buf, cap);
    cr_assert_gt(n, 0, "no reply to %s", tkv_cmd_name(q->cmd));
    cr_assert_eq(tkv_rep_decode(q->cmd, buf, (size_t)n, rep), 0);
    tkv_buf_deinit(&b);
    close(fd);
}

static void replicaof(const tkvd *d, const tkvd *primary)
{
    tkv_req q = {.cmd = TKV_CMD_REPLICAOF};
    if (primary) {
        q.host = (tkv_span){(const uint8_t *)"127.0.0.1", 9};
        q.port = primary->port;
    }
    uint8_t buf[4096];
    tkv_rep rep;
    raw_cmd(d, &q, &rep, buf, sizeof buf);
    cr_assert_eq(rep.status, TKV_ST_OK, "REPLICAOF: %.*s", (int)rep.errmsg.len,
                 (const char *)rep.errmsg.ptr);
}

/* WAIT n timeout_ms on connection c's socket: what it answers. */
static uint64_t wait_replicas(int fd, uint64_t n, uint64_t timeout_ms)
{
    tkv_req q = {.cmd = TKV_CMD_WAIT, .nreplicas = n, .timeout_ms = timeout_ms};
    tkv_buf b;
    tkv_buf_init(&b);
    cr_assert_eq(tkv_req_encode(&b, &q), 0);
    raw_send(fd, b.data, b.len);
    tkv_buf_deinit(&b);
    uint8_t buf[256];
    long len = raw_frame(fd, buf, sizeof buf);
    cr_assert_gt(len, 0);
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(TKV_CMD_WAIT, buf, (size_t)len, &rep), 0);
    cr_assert_eq(rep.status, TKV_ST_OK);
    return rep.u;
}

/* A PUT on a raw socket; asserts it was acknowledged. */
static void raw_put(int fd, const char *key, const char *val, uint64_t ts)
{
    tkv_req q = {.cmd = TKV_CMD_PUT,
                 .key = {(const uint8_t *)key, (uint32_t)strlen(key)},
                 .value = {(const uint8_t *)val, (uint32_t)strlen(val)},
                 .ts = ts,
                 .has_ts = true};
    tkv_buf b;
    tkv_buf_init(&b);
    cr_assert_eq(tkv_req_encode(&b, &q), 0);
    raw_send(fd, b.data, b.len);
    tkv_buf_deinit(&b);
    uint8_t buf[256];
    long len = raw_frame(fd, buf, sizeof buf);
    tkv_rep rep;
    cr_assert(len > 0 && tkv_rep_decode(TKV_CMD_PUT, buf, (size_t)len, &rep) == 0);
    cr_assert_eq(rep.status, TKV_ST_OK);
}

static tkv_digest_info digest_at(tkv_ctx *c, uint64_t at)
{
    tkv_digest_info d;
    cr_assert_eq(tkv_digest(c, at, 1, &d), TKV_OK, "%s", tkv_errstr(c));
    return d;
}

/* Waits until the replica's visible state as of `at` is the primary's. A
 * replica still loading answers BUSY: it is polled again. */
static void converge(const tkvd *primary, const tkvd *replica, uint64_t at)
{
    tkv_ctx *cp = tkvd_client(primary);
    tkv_digest_info want = digest_at(cp, at);
    tkv_free(cp);
    double end = mono() + DEADLINE;
    for (;;) {
        tkv_ctx *cr = tkv_connect("127.0.0.1", replica->port, 10000);
        tkv_digest_info got;
        bool same = cr && tkv_digest(cr, at, 1, &got) == TKV_OK &&
                    memcmp(got.digest, want.digest, sizeof want.digest) == 0;
        tkv_free(cr);
        if (same) {
            cr_assert_eq(got.keys, want.keys);
            cr_assert_eq(got.versions, want.versions);
            return;
        }
        cr_assert_lt(mono(), end, "the replica did not converge within %.0f s", DEADLINE);
        pause_briefly();
    }
}

static uint64_t stat_of(const tkvd *d, const char *name)
{
    tkv_ctx *c = tkvd_client(d);
    uint64_t v = tkvd_stat(c, name);
    tkv_free(c);
    return v;
}

/* Waits until a numeric STATS field reaches at least `want`. */
static void wait_stat(const tkvd *d, const char *name, uint64_t want)
{
    double end = mono() + DEADLINE;
    while (stat_of(d, name) < want) {
        cr_assert_lt(mono(), end, "%s stayed below %" PRIu64, name, want);
        pause_briefly();
    }
}

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Writes of every kind: versions now and late into the past, tombstones
 * at a time and without one, whole-key DEL, TTL, RETAIN, MPUT. */
static void write_everything(const tkvd *d, int round)
{
    tkv_ctx *c = tkvd_client(d);
    char key[64], val[64];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i % 50);
        snprintf(val, sizeof val, "v%d-%d", round, i);
        cr_assert_eq(tkv_put_now(c, key, strlen(key), val, strlen(val), NULL), TKV_OK);
        /* a late write into the past (not below the horizon RETAIN moves
         * on k30-k39) */
        if (i % 50 < 30)
            cr_assert_eq(tkv_put(c, key, strlen(key), val, strlen(val), 1000 + (uint64_t)i, NULL),
                         TKV_OK);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(tkv_del_at(c, key, strlen(key), 1500 + (uint64_t)i, 1, NULL), TKV_OK);
        snprintf(key, sizeof key, "k%d", 10 + i);
        cr_assert_eq(tkv_del_at(c, key, strlen(key), 0, 0, NULL), TKV_OK);
        snprintf(key, sizeof key, "k%d", 20 + i);
        cr_assert_eq(tkv_del(c, key, strlen(key), NULL), TKV_OK);
        snprintf(key, sizeof key, "ttl%d-%d", round, i);
        cr_assert_eq(tkv_put_ex(c, key, strlen(key), "t", 1, 0, 0, 3600u * 1000000u, NULL), TKV_OK);
        snprintf(key, sizeof key, "k%d", 30 + i);
        tkv_retain_info ri;
        cr_assert_eq(tkv_retain(c, key, strlen(key), 2, 0, 0, &ri), TKV_OK);
    }
    tkv_item items[20];
    char keys[20][32];
    for (int i = 0; i < 20; i++) {
        snprintf(keys[i], sizeof keys[i], "m%d-%d", round, i);
        items[i] = (tkv_item){.key = {keys[i], strlen(keys[i])}, .value = {"mv", 2}};
    }
    cr_assert_eq(tkv_mput(c, items, 20, NULL), TKV_OK);
    tkv_free(c);
}

static const char *const *with(const char **args, const tkvd *primary, char *spec, size_t n)
{
    snprintf(spec, n, "127.0.0.1:%u", primary->port);
    args[0] = "--replica-of";
    args[1] = spec;
    return args;
}

Test(replication, a_replica_converges_and_refuses_writes)
{
    tkvd_start(&p, NULL);
    write_everything(&p, 0); /* before: comes with the full copy */
    char spec[64];
    const char *args[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    write_everything(&p, 1); /* after: comes as batches */
    converge(&p, &r, now_us());
    cr_assert_eq(stat_of(&p, "repl_full_syncs"), 1);

    tkv_ctx *c = tkvd_client(&r);
    cr_assert_eq(tkv_put_now(c, "x", 1, "y", 1, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_ST_READONLY);
    cr_assert(strstr(tkv_errstr(c), "replica of 127.0.0.1:"), "%s", tkv_errstr(c));
    tkv_version v;
    cr_assert_eq(tkv_get(c, "k45", 3, TKV_LATEST, &v), TKV_OK); /* reads are served */
    tkv_free(c);
}

Test(replication, a_restarted_replica_resumes_with_a_partial_resync)
{
    tkvd_start(&p, NULL);
    char spec[64];
    const char *args[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    write_everything(&p, 0);
    converge(&p, &r, now_us());
    tkvd_signal(&r, SIGKILL);
    write_everything(&p, 1); /* missed while it was down, kept in the backlog */
    tkvd_restart(&r);
    wait_stat(&p, "repl_partial_syncs", 1);
    converge(&p, &r, now_us());
    cr_assert_eq(stat_of(&p, "repl_full_syncs"), 1, "it took a second full copy");
}

Test(replication, a_replica_behind_the_backlog_takes_a_full_copy)
{
    const char *pargs[] = {"--repl-backlog", "16kb", NULL};
    tkvd_start(&p, pargs);
    char spec[64];
    const char *args[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    write_everything(&p, 0);
    converge(&p, &r, now_us());
    tkvd_signal(&r, SIGKILL);
    write_everything(&p, 1); /* far more than 16 KiB of stream */
    write_everything(&p, 2);
    tkvd_restart(&r);
    wait_stat(&p, "repl_full_syncs", 2);
    converge(&p, &r, now_us());
    cr_assert_eq(stat_of(&p, "repl_partial_syncs"), 0);
}

Test(replication, a_restarted_primary_is_followed_again)
{
    tkvd_start(&p, NULL);
    char spec[64];
    const char *args[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    write_everything(&p, 0);
    converge(&p, &r, now_us());
    tkvd_signal(&p, SIGKILL);
    tkvd_restart(&p); /* same id and offset: the replica continues */
    write_everything(&p, 1);
    converge(&p, &r, now_us());
    cr_assert_eq(stat_of(&p, "repl_full_syncs"), 0, "the replica should have continued");
}

Test(replication, wait_counts_replicas_that_acknowledged)
{
    tkvd_start(&p, NULL);
    int fd = tkvd_raw(&p);
    cr_assert_eq(wait_replicas(fd, 1, 100), 0, "no replica: WAIT times out with 0");
    char spec[64];
    const char *args[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    wait_stat(&p, "repl_replicas", 1);
    raw_put(fd, "w", "1", 5);
    cr_assert_eq(wait_replicas(fd, 1, 0), 1, "WAIT 1 without a timeout");
    /* The write is on the replica once WAIT said so. */
    tkv_ctx *c = tkvd_client(&r);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "w", 1, TKV_LATEST, &v), TKV_OK);
    cr_assert_eq(v.ts, 5);
    tkv_free(c);
    double t0 = mono();
    cr_assert_eq(wait_replicas(fd, 2, 300), 1, "one of two: the timeout answers 1");
    cr_assert_geq(mono() - t0, 0.25, "WAIT returned before its timeout");
    close(fd);
}

Test(replication, promotion_keeps_what_wait_acknowledged)
{
    tkvd_start(&p, NULL);
    char spec[64];
    const char *args[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    wait_stat(&p, "repl_replicas", 1);
    int fd = tkvd_raw(&p);
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "acked%d", i);
        raw_put(fd, key, "v", 10 + (uint64_t)i);
    }
    cr_assert_eq(wait_replicas(fd, 1, 0), 1);
    close(fd);
    /* The primary is cut off: the replica becomes the primary. */
    kill(p.pid, SIGSTOP); /* tkvd_signal would wait for an exit */
    replicaof(&r, NULL);
    tkv_ctx *c = tkvd_client(&r);
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "acked%d", i);
        tkv_version v;
        cr_assert_eq(tkv_get(c, key, strlen(key), TKV_LATEST, &v), TKV_OK, "%s was lost", key);
    }
    cr_assert_eq(tkv_put_now(c, "after", 5, "new", 3, NULL), TKV_OK, "the new primary writes");
    tkv_free(c);
    /* The old primary wrote on alone (no WAIT): that write is discarded
     * when it comes back as a replica of the new primary. */
    kill(p.pid, SIGCONT);
    c = tkvd_client(&p);
    cr_assert_eq(tkv_put_now(c, "orphan", 6, "x", 1, NULL), TKV_OK);
    tkv_free(c);
    replicaof(&p, &r);
    converge(&r, &p, now_us());
    c = tkvd_client(&p);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "orphan", 6, TKV_LATEST, &v), TKV_NOT_FOUND);
    cr_assert_eq(tkv_get(c, "after", 5, TKV_LATEST, &v), TKV_OK);
    tkv_free(c);
}

Test(replication, a_second_replica_follows_a_promoted_one_without_a_full_copy)
{
    tkvd_start(&p, NULL);
    char spec[64], spec2[64];
    const char *args[] = {NULL, NULL, NULL}, *args2[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    tkvd_start(&r2, with(args2, &p, spec2, sizeof spec2));
    write_everything(&p, 0);
    converge(&p, &r, now_us());
    converge(&p, &r2, now_us());
    tkvd_stop(&p);
    replicaof(&r, NULL);
    replicaof(&r2, &r); /* it continues from the old primary's id */
    wait_stat(&r, "repl_partial_syncs", 1);
    write_everything(&r, 1);
    converge(&r, &r2, now_us());
    cr_assert_eq(stat_of(&r, "repl_full_syncs"), 0);
}
