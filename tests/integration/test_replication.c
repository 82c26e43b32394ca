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
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* Waits until the replica has committed the primary's offset: it holds
 * the primary's position, not only its data. */
static void caught_up(const tkvd *primary, const tkvd *replica)
{
    double end = mono() + DEADLINE;
    while (stat_of(replica, "repl_offset") != stat_of(primary, "repl_offset")) {
        cr_assert_lt(mono(), end, "the replica's offset never reached the primary's");
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

/* A second writer beside write_everything(): late writes, tombstones and
 * MPUTs on keys the first one also writes (no assertions off the test's
 * thread: it counts failures). */
typedef struct side_writer {
    const tkvd *d;
    int errors;
} side_writer;

static void *side_writes(void *arg)
{
    side_writer *w = arg;
    tkv_ctx *c = tkv_connect("127.0.0.1", w->d->port, 10000);
    if (!c) {
        w->errors++;
        return NULL;
    }
    char key[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", 40 + i % 10);
        w->errors += tkv_put(c, key, strlen(key), "side", 4, 500 + (uint64_t)i, NULL) != TKV_OK;
        w->errors += tkv_del_at(c, key, strlen(key), 0, 0, NULL) != TKV_OK;
        tkv_item it[2] = {{.key = {key, strlen(key)}, .value = {"m", 1}},
                          {.key = {"side", 4}, .value = {"s", 1}, .ttl = 3600000000u}};
        w->errors += tkv_mput(c, it, 2, NULL) != TKV_OK;
    }
    tkv_free(c);
    return NULL;
}

static const char *const *with(const char **args, const tkvd *primary, char *spec, size_t n)
{
    snprintf(spec, n, "127.0.0.1:%u", primary->port);
    args[0] = "--replica-of";
    args[1] = spec;
    return args;
}

/* A primary, and a replica of it started with --replica-of. */
static void start_pair(void)
{
    static char spec[64];
    static const char *args[] = {NULL, NULL, NULL};
    tkvd_start(&p, NULL);
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
}

Test(replication, a_replica_converges_and_refuses_writes)
{
    tkvd_start(&p, NULL);
    write_everything(&p, 0); /* before: comes with the full copy */
    char spec[64];
    const char *args[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    /* after: comes as batches, from two writers at once */
    side_writer sw = {.d = &p};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, side_writes, &sw), 0);
    write_everything(&p, 1);
    pthread_join(th, NULL);
    cr_assert_eq(sw.errors, 0, "the second writer's requests failed");
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
    start_pair();
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

/* Plain writes only: no policy or expiry, so the primary's sweep writes
 * nothing of its own afterwards. */
static void write_plain(const tkvd *d, int round)
{
    tkv_ctx *c = tkvd_client(d);
    for (int i = 0; i < 300; i++) {
        char key[64];
        snprintf(key, sizeof key, "plain%d-%d", round, i % 100);
        cr_assert_eq(tkv_put_now(c, key, strlen(key), "v", 1, NULL), TKV_OK);
    }
    tkv_free(c);
}

Test(replication, a_restarted_primary_is_followed_again)
{
    start_pair();
    write_plain(&p, 0);
    converge(&p, &r, now_us());
    caught_up(&p, &r);
    tkvd_signal(&p, SIGKILL);
    tkvd_restart(&p); /* same id and offset, an empty backlog: the replica continues */
    write_plain(&p, 1);
    converge(&p, &r, now_us());
    cr_assert_eq(stat_of(&p, "repl_full_syncs"), 0, "the replica should have continued");
    cr_assert_eq(stat_of(&p, "repl_partial_syncs"), 1);
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
    /* STATS shows the replica, caught up: WAIT answered on its REPLACK. */
    cr_assert_eq(stat_of(&p, "repl_replica0_lag_bytes"), 0);
    cr_assert_eq(stat_of(&p, "repl_replica0_offset"), stat_of(&p, "repl_offset"));
    cr_assert_geq(stat_of(&r, "repl_last_io_ms"), 0); /* a replica's own fields */
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
    start_pair();
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
    if (tkvd_wrapped())
        cr_skip_test("promotion and partial resync: checked under valgrind by the other tests");
    tkvd_start(&p, NULL);
    char spec[64], spec2[64];
    const char *args[] = {NULL, NULL, NULL}, *args2[] = {NULL, NULL, NULL};
    tkvd_start(&r, with(args, &p, spec, sizeof spec));
    tkvd_start(&r2, with(args2, &p, spec2, sizeof spec2));
    write_everything(&p, 0);
    converge(&p, &r, now_us());
    converge(&p, &r2, now_us());
    /* Both at the primary's offset, not only its data: the primary's sweep
     * writes batches of its own (the TTL'd versions), and a second replica
     * that had taken one more of them than the first could not continue
     * from it (it failed so once). */
    double end = mono() + DEADLINE;
    for (;;) {
        caught_up(&p, &r);
        caught_up(&p, &r2);
        uint64_t off = stat_of(&p, "repl_offset");
        if (stat_of(&r, "repl_offset") == off && stat_of(&r2, "repl_offset") == off)
            break;
        cr_assert_lt(mono(), end, "the replicas never stood at one offset");
    }
    tkvd_stop(&p);
    replicaof(&r, NULL);
    replicaof(&r2, &r); /* it continues from the old primary's id */
    wait_stat(&r, "repl_partial_syncs", 1);
    write_everything(&r, 1);
    converge(&r, &r2, now_us());
    cr_assert_eq(stat_of(&r, "repl_full_syncs"), 0);
}

/* ---- a primary killed under load ------------------------------------------ */

typedef struct acked_log {
    const tkvd *primary;
    int written;  /* PUTs acknowledged by the primary */
    int waited;   /* of them, the first ones also acknowledged by WAIT 1 */
    bool stopped; /* the primary went away */
} acked_log;

/* Writes acked0, acked1, ... each followed by WAIT 1 (no time limit),
 * until the primary dies: records how far each acknowledgement went. */
static void *writer(void *arg)
{
    acked_log *a = arg;
    int fd = tkvd_raw(a->primary);
    tkv_buf b;
    tkv_buf_init(&b);
    uint8_t buf[256];
    for (int i = 0;; i++) {
        char key[32];
        snprintf(key, sizeof key, "acked%d", i);
        tkv_req q = {.cmd = TKV_CMD_PUT,
                     .key = {(const uint8_t *)key, (uint32_t)strlen(key)},
                     .value = {(const uint8_t *)"v", 1},
                     .ts = 7,
                     .has_ts = true};
        tkv_req w = {.cmd = TKV_CMD_WAIT, .nreplicas = 1, .timeout_ms = 0};
        tkv_buf_reset(&b);
        if (tkv_req_encode(&b, &q) < 0 || tkv_req_encode(&b, &w) < 0)
            break;
        if (send(fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len)
            break;
        tkv_rep rep;
        long n = raw_frame(fd, buf, sizeof buf);
        if (n <= 0 || tkv_rep_decode(TKV_CMD_PUT, buf, (size_t)n, &rep) < 0 ||
            rep.status != TKV_ST_OK)
            break;
        a->written = i + 1;
        n = raw_frame(fd, buf, sizeof buf);
        if (n <= 0 || tkv_rep_decode(TKV_CMD_WAIT, buf, (size_t)n, &rep) < 0)
            break;
        if (rep.u >= 1 && a->waited == i)
            a->waited = i + 1;
    }
    tkv_buf_deinit(&b);
    close(fd);
    a->stopped = true;
    return NULL;
}

Test(replication, a_write_acknowledged_with_wait_survives_a_failover)
{
    if (tkvd_wrapped())
        cr_skip_test("promotion after WAIT: checked under valgrind by "
                     "promotion_keeps_what_wait_acknowledged");
    start_pair();
    wait_stat(&p, "repl_replicas", 1);
    acked_log a = {.primary = &p};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, writer, &a), 0);
    double end = mono() + DEADLINE;
    while (__atomic_load_n(&a.waited, __ATOMIC_SEQ_CST) < 50) {
        cr_assert_lt(mono(), end, "the writer made no progress");
        pause_briefly();
    }
    tkvd_signal(&p, SIGKILL); /* mid-stream */
    pthread_join(th, NULL);
    cr_assert_geq(a.written, a.waited);
    /* Every write acknowledged with WAIT 1 is on the replica, promoted. */
    replicaof(&r, NULL);
    tkv_ctx *c = tkvd_client(&r);
    for (int i = 0; i < a.waited; i++) {
        char key[32];
        snprintf(key, sizeof key, "acked%d", i);
        tkv_version v;
        cr_assert_eq(tkv_get(c, key, strlen(key), TKV_LATEST, &v), TKV_OK,
                     "%s was acknowledged with WAIT 1 and lost", key);
    }
    tkv_free(c);
    /* Every write the primary acknowledged is on the primary (fsync always). */
    tkvd_restart(&p);
    c = tkvd_client(&p);
    for (int i = 0; i < a.written; i++) {
        char key[32];
        snprintf(key, sizeof key, "acked%d", i);
        tkv_version v;
        cr_assert_eq(tkv_get(c, key, strlen(key), TKV_LATEST, &v), TKV_OK, "%s was lost", key);
    }
    tkv_free(c);
}

/* ---- a link that stalls, then drops --------------------------------------- */

/* A TCP proxy between a replica and its primary that the test controls:
 * while `stall` is set it forwards nothing (the link goes silent without
 * closing, like a dead route); `cut` closes the connections it carries. */
typedef struct proxy {
    int lfd;
    uint16_t port, to;
    volatile bool stall, cut, quit;
    volatile long budget; /* > 0: bytes primary -> replica before that
                             direction stalls (acknowledgements still go) */
    int conns;            /* connections accepted */
    pthread_t th;
} proxy;

static bool pump(int from, int to, volatile long *budget)
{
    char buf[65536];
    size_t want = sizeof buf;
    if (budget && *budget > 0 && (size_t)*budget < want)
        want = (size_t)*budget;
    ssize_t n = recv(from, buf, want, MSG_DONTWAIT);
    if (budget && *budget > 0 && n > 0)
        *budget = *budget - n > 0 ? *budget - n : -1; /* -1: spent */
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        return false;
    for (ssize_t off = 0; n > 0 && off < n;) {
        ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

static void *proxy_main(void *arg)
{
    proxy *x = arg;
    while (!x->quit) {
        struct pollfd lp = {.fd = x->lfd, .events = POLLIN};
        if (poll(&lp, 1, 50) <= 0)
            continue;
        int a = accept(x->lfd, NULL, NULL);
        if (a < 0)
            continue;
        x->conns++;
        int b = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(x->to)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(b, (struct sockaddr *)&sa, sizeof sa) < 0) {
            close(a);
            close(b);
            continue;
        }
        while (!x->quit && !x->cut) {
            struct pollfd pf[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
            if (poll(pf, 2, 20) <= 0 || x->stall)
                continue;
            if ((pf[0].revents && !pump(a, b, NULL)) ||
                (pf[1].revents && x->budget >= 0 && !pump(b, a, &x->budget)))
                break;
        }
        x->cut = false;
        close(a);
        close(b);
    }
    return NULL;
}

/* How many times the server's log holds s. */
static int count_in_log(const tkvd *d, const char *s)
{
    char *log = tkvd_log(d);
    int n = 0;
    for (const char *q = log; (q = strstr(q, s)) != NULL; q += strlen(s))
        n++;
    free(log);
    return n;
}

static void proxy_start(proxy *x, uint16_t to)
{
    memset(x, 0, sizeof *x);
    x->to = to;
    x->budget = 0;
    x->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(x->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(x->lfd, 8), 0);
    getsockname(x->lfd, (struct sockaddr *)&sa, &len);
    x->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&x->th, NULL, proxy_main, x), 0);
}

static void proxy_stop(proxy *x)
{
    x->quit = true;
    pthread_join(x->th, NULL);
    close(x->lfd);
}

Test(replication, a_link_that_stalls_then_drops_resumes_without_a_full_copy)
{
    tkvd_start(&p, NULL);
    proxy x;
    proxy_start(&x, p.port);
    char spec[64];
    snprintf(spec, sizeof spec, "127.0.0.1:%u", x.port);
    const char *args[] = {"--replica-of", spec, "--repl-timeout", "1", NULL};
    tkvd_start(&r, args);
    write_everything(&p, 0);
    converge(&p, &r, now_us());
    /* (Under valgrind a 1 s timeout may also cut the first copy short.) */
    uint64_t full = stat_of(&p, "repl_full_syncs"), partial = stat_of(&p, "repl_partial_syncs");
    /* Under valgrind the replica may have given up on a slow link once
     * already: what counts is a notice after the stall. */
    static const char notice[] = "nothing from the primary within --repl-timeout";
    int notices = count_in_log(&r, notice);
    x.stall = true; /* silence: neither side hears the other */
    write_everything(&p, 1);
    /* The replica gives up on the silent link (and tries again). */
    double end = mono() + DEADLINE;
    for (;;) {
        if (count_in_log(&r, notice) > notices)
            break;
        cr_assert_lt(mono(), end, "the replica never noticed the stalled link");
        pause_briefly();
    }
    x.cut = true; /* the stalled connection finally drops */
    x.stall = false;
    converge(&p, &r, now_us());
    cr_assert_eq(stat_of(&p, "repl_full_syncs"), full, "the resume took a full copy");
    cr_assert_gt(stat_of(&p, "repl_partial_syncs"), partial);
    cr_assert_geq(x.conns, 2);
    proxy_stop(&x);
}

Test(replication, a_replica_presents_the_shared_secret)
{
    const char *pargs[] = {"--requirepass", "s3cr3t", NULL};
    tkvd_start(&p, pargs);
    char spec[64];
    snprintf(spec, sizeof spec, "127.0.0.1:%u", p.port);
    const char *good[] = {"--replica-of", spec, "--requirepass", "s3cr3t", NULL};
    const char *bad[] = {"--replica-of", spec, "--requirepass", "wrong", NULL};
    tkvd_start(&r, good);
    tkvd_start(&r2, bad);
    tkv_ctx *c = tkvd_client(&p);
    cr_assert_eq(tkv_auth(c, "s3cr3t", 6), TKV_OK);
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 5, NULL), TKV_OK);
    tkv_digest_info want;
    cr_assert_eq(tkv_digest(c, 1000, 1, &want), TKV_OK);
    tkv_free(c);
    /* The replica with the secret converges... */
    double end = mono() + DEADLINE;
    for (;;) {
        c = tkvd_client(&r);
        tkv_digest_info got;
        bool same = tkv_auth(c, "s3cr3t", 6) == TKV_OK && tkv_digest(c, 1000, 1, &got) == TKV_OK &&
                    memcmp(got.digest, want.digest, sizeof got.digest) == 0;
        tkv_free(c);
        if (same)
            break;
        cr_assert_lt(mono(), end, "the replica with the secret did not converge");
        pause_briefly();
    }
    /* ...the one without is refused, says so, and holds nothing. */
    for (;;) {
        char *log = tkvd_log(&r2);
        bool refused = strstr(log, "the primary refused: AUTH_FAILED") != NULL;
        free(log);
        if (refused)
            break;
        cr_assert_lt(mono(), end, "the replica with a wrong secret was not refused");
        pause_briefly();
    }
    c = tkvd_client(&r2);
    cr_assert_eq(tkv_auth(c, "wrong", 5), TKV_OK);
    tkv_version v;
    cr_assert_neq(tkv_get(c, "k", 1, TKV_LATEST, &v), TKV_OK);
    tkv_free(c);
}

/* ---- reads on a replica while it applies -------------------------------- */

typedef struct hammer {
    const tkvd *d;
    volatile bool stop;
    int reads;
} hammer;

static void *read_loop(void *arg)
{
    hammer *h = arg;
    tkv_ctx *c = tkv_connect("127.0.0.1", h->d->port, 10000);
    while (c && !h->stop) {
        tkv_version v;
        tkv_get(c, "hot", 3, TKV_LATEST, &v);
        h->reads++;
    }
    tkv_free(c);
    return NULL;
}

/* A read that loaded a key from disk while a batch for it was staged but
 * not yet written holds the older state; once the batch is committed the
 * replica must answer the new one, not keep the old in memory. */
Test(replication, a_replica_read_during_apply_does_not_keep_an_old_value)
{
    tkvd_start(&p, NULL);
    char spec[64];
    const char *args[] = {"--replica-of", spec, "--readers", "0", NULL};
    snprintf(spec, sizeof spec, "127.0.0.1:%u", p.port);
    tkvd_start(&r, args);
    wait_stat(&p, "repl_replicas", 1);
    hammer h = {.d = &r};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, read_loop, &h), 0);
    tkv_ctx *c = tkvd_client(&p);
    char val[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(val, sizeof val, "val%d", i);
        cr_assert_eq(tkv_put_now(c, "hot", 3, val, strlen(val), NULL), TKV_OK);
    }
    tkv_free(c);
    caught_up(&p, &r);
    h.stop = true;
    pthread_join(th, NULL);
    cr_assert_gt(h.reads, 0);
    c = tkvd_client(&r);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "hot", 3, TKV_LATEST, &v), TKV_OK);
    cr_assert_eq(v.len, strlen("val1999"));
    cr_assert(memcmp(v.value, "val1999", v.len) == 0, "the replica answers %.*s", (int)v.len,
              (const char *)v.value);
    tkv_free(c);
}

/* A server that joins as a replica with a longer history of its own (an
 * old primary coming back) must not count for WAIT while it takes its
 * full copy: it has none of the new primary's writes yet. */
Test(replication, a_replica_in_a_full_copy_does_not_count_for_wait)
{
    tkvd_start(&p, NULL); /* the new primary: a short history */
    tkvd_start(&r, NULL); /* the old one: a longer history */
    write_plain(&p, 0);
    for (int i = 0; i < 5; i++)
        write_plain(&r, i);
    cr_assert_gt(stat_of(&r, "repl_offset"), stat_of(&p, "repl_offset"));
    proxy x;
    proxy_start(&x, p.port);
    x.budget = 100; /* the copy's start and a little of it, then nothing */
    tkv_req q = {
        .cmd = TKV_CMD_REPLICAOF, .host = {(const uint8_t *)"127.0.0.1", 9}, .port = x.port};
    uint8_t buf[4096];
    tkv_rep rep;
    raw_cmd(&r, &q, &rep, buf, sizeof buf);
    cr_assert_eq(rep.status, TKV_ST_OK);
    wait_stat(&p, "repl_replicas", 1);
    while (x.budget >= 0) /* the copy is under way and stalls */
        pause_briefly();
    int fd = tkvd_raw(&p);
    raw_put(fd, "new", "1", 1);
    cr_assert_eq(wait_replicas(fd, 1, 1500), 0, "a replica in its full copy was counted");
    close(fd);
    x.quit = true;
    proxy_stop(&x);
}

/* A replication link carries REPLACK from the replica, nothing else:
 * anything else ends the link, and the primary says why. */
Test(replication, a_link_that_sends_something_else_is_closed)
{
    tkvd_start(&p, NULL);
    int fd = tkvd_raw(&p);
    tkv_buf b;
    tkv_buf_init(&b);
    tkv_req psync = {.cmd = TKV_CMD_PSYNC, .offset = 0};
    tkv_req ping = {.cmd = TKV_CMD_PING};
    cr_assert_eq(tkv_req_encode(&b, &psync), 0);
    raw_send(fd, b.data, b.len);
    uint8_t buf[4096];
    cr_assert_gt(raw_frame(fd, buf, sizeof buf), 0); /* ["F", ...]: the copy starts */
    tkv_buf_reset(&b);
    cr_assert_eq(tkv_req_encode(&b, &ping), 0);
    raw_send(fd, b.data, b.len);
    cr_assert(raw_wait_eof(fd, 10000), "the link stayed open");
    char *log = tkvd_log(&p);
    cr_assert(strstr(log, "it sent something other than REPLACK"), "%s", log);
    free(log);
    tkv_buf_deinit(&b);
    close(fd);
}
