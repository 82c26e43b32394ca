/*
 * test_server.c - the real tkvd over TCP through libtkvclient: the issue's
 * sequence across a SIGKILL, server-assigned timestamps, binary data,
 * pipelining, truncated ranges, malformed and oversize frames, many
 * connections, shutdown and the data-directory lock, a throttled client
 * and what shutdown does to throttled and lingering connections.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static tkvd d;

static void teardown(void) { tkvd_cleanup(&d); }

static void start_default(void) { tkvd_start(&d, NULL); }

static void expect_value(tkv_ctx *c, const char *key, uint64_t ts, const char *want)
{
    tkv_version v;
    int rc = tkv_get(c, key, strlen(key), ts, &v);
    if (!want) {
        cr_assert_eq(rc, TKV_NOT_FOUND, "get %s@%llu: rc %d (%s)", key, (unsigned long long)ts, rc,
                     tkv_errstr(c));
        return;
    }
    cr_assert_eq(rc, TKV_OK, "get %s@%llu: rc %d (%s)", key, (unsigned long long)ts, rc,
                 tkv_errstr(c));
    cr_assert_eq(v.len, strlen(want));
    cr_assert_eq(memcmp(v.value, want, v.len), 0, "get %s@%llu: wrong value", key,
                 (unsigned long long)ts);
}

Test(server, issue_sequence_survives_sigkill, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    uint64_t ts;
    cr_assert_eq(tkv_put(c, "item1", 5, "iPhone 16", 9, 100, &ts), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(ts, 100);
    cr_assert_eq(tkv_put(c, "item1", 5, "iPhone 17", 9, 101, &ts), TKV_OK);
    for (int round = 0; round < 2; round++) {
        expect_value(c, "item1", 99, NULL);
        expect_value(c, "item1", 100, "iPhone 16");
        expect_value(c, "item1", 102, "iPhone 17");
        expect_value(c, "item1", TKV_LATEST, "iPhone 17");
        tkv_version v;
        cr_assert_eq(tkv_get(c, "item1", 5, 100, &v), TKV_OK);
        cr_assert(v.has_next);
        cr_assert_eq(v.next, 101, "the answer at 100 holds until 101");
        cr_assert_eq(tkv_get(c, "item1", 5, 99, &v), TKV_NOT_FOUND);
        cr_assert_eq(v.miss, TKV_MISS_BEFORE_FIRST);
        cr_assert_eq(v.next, 100);
        tkv_free(c);
        if (round == 0) {
            int st = tkvd_signal(&d, SIGKILL);
            cr_assert(WIFSIGNALED(st));
            tkvd_restart(&d);
        }
        c = tkvd_client(&d);
    }
    tkv_free(c);
}

Test(server, server_timestamps_strictly_increase, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    uint64_t prev = 0, ts;
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(tkv_append_put_now(c, "k", 1, "v", 1), TKV_OK);
    }
    for (int i = 0; i < 2000; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
        cr_assert_gt(r.ts, prev, "server timestamps must strictly increase");
        prev = r.ts;
    }
    /* A version far in the future: the next server timestamp goes past it. */
    uint64_t future = prev + 1000000000000ULL;
    cr_assert_eq(tkv_put(c, "k", 1, "f", 1, future, &ts), TKV_OK);
    cr_assert_eq(tkv_put_now(c, "k", 1, "after", 5, &ts), TKV_OK);
    cr_assert_eq(ts, future + 1);
    /* No timestamp exists after the largest one. */
    cr_assert_eq(tkv_put(c, "m", 1, "max", 3, UINT64_MAX, &ts), TKV_OK);
    cr_assert_eq(tkv_put_now(c, "m", 1, "x", 1, &ts), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_SERVER);
    cr_assert_eq(tkv_server_code(c), TKV_SC_OUT_OF_RANGE);
    cr_assert_eq(tkv_ping(c), TKV_OK, "a server error leaves the connection usable");
    tkv_free(c);
}

Test(server, binary_keys_and_empty_values, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    const char key[] = {'a', 0, 'b', (char)0xff};
    const char val[] = {0, 1, 2, 0, (char)0xc1};
    cr_assert_eq(tkv_put(c, key, 4, val, 5, 7, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, key, 2, "", 0, 7, NULL), TKV_OK, "prefix key, empty value");
    tkv_version v;
    cr_assert_eq(tkv_get(c, key, 4, 7, &v), TKV_OK);
    cr_assert_eq(v.len, 5);
    cr_assert_eq(memcmp(v.value, val, 5), 0);
    cr_assert_eq(tkv_get(c, key, 2, 7, &v), TKV_OK, "an empty value is found");
    cr_assert_eq(v.len, 0);
    cr_assert_eq(tkv_get(c, key, 3, 7, &v), TKV_NOT_FOUND);
    cr_assert_eq(v.miss, TKV_MISS_NO_KEY);
    cr_assert_eq(tkv_put(c, "", 0, "v", 1, 1, NULL), TKV_ERR, "empty keys are refused");
    tkv_free(c);
}

Test(server, pipelined_replies_come_back_in_order, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    enum { N = 20000 };
    char key[32], val[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key%d", (i / 2) % 100);
        snprintf(val, sizeof val, "v%d", i);
        if (i % 2 == 0)
            cr_assert_eq(tkv_append_put(c, key, strlen(key), val, strlen(val), (uint64_t)i),
                         TKV_OK);
        else
            cr_assert_eq(tkv_append_get(c, key, strlen(key), TKV_LATEST), TKV_OK);
    }
    cr_assert_eq(tkv_pending(c), N);
    for (int i = 0; i < N; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "reply %d: %s", i, tkv_errstr(c));
        if (i % 2 == 0) {
            cr_assert_eq(r.op, TKV_OP_PUT);
            cr_assert_eq(r.ts, (uint64_t)i);
        } else {
            /* The GET sees the PUT pipelined just before it. */
            cr_assert_eq(r.op, TKV_OP_GET);
            snprintf(val, sizeof val, "v%d", i - 1);
            cr_assert_eq(r.version.ts, (uint64_t)(i - 1));
            cr_assert_eq(r.version.len, strlen(val));
            cr_assert_eq(memcmp(r.version.value, val, r.version.len), 0);
        }
    }
    tkv_free(c);
}

Test(server, range_limit_reverse_and_truncation, .fini = teardown)
{
    const char *args[] = {"--max-frame", "4096", "--max-value", "1024", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    char val[200];
    memset(val, 'x', sizeof val);
    for (uint64_t ts = 1; ts <= 100; ts++)
        cr_assert_eq(tkv_append_put(c, "r", 1, val, sizeof val, ts * 10), TKV_OK);
    for (int i = 0; i < 100; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK);
    }
    const tkv_entry *e;
    size_t n;
    int trunc;
    tkv_range_opts o = {.from = 95, .to = 205};
    cr_assert_eq(tkv_range(c, "r", 1, &o, &e, &n, &trunc), TKV_OK);
    cr_assert_eq(n, 11);
    cr_assert_eq(e[0].ts, 100);
    cr_assert_eq(e[10].ts, 200);
    cr_assert_eq(trunc, 0);
    o = (tkv_range_opts){.limit = 3, .reverse = 1};
    cr_assert_eq(tkv_range(c, "r", 1, &o, &e, &n, &trunc), TKV_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(e[0].ts, 1000);
    cr_assert_eq(e[2].ts, 980);
    /* 100 x 200 bytes do not fit in a 4 KiB frame: the reply says so. */
    cr_assert_eq(tkv_range(c, "r", 1, NULL, &e, &n, &trunc), TKV_OK);
    cr_assert_eq(trunc, 1);
    cr_assert_gt(n, 5);
    cr_assert_lt(n, 100);
    uint64_t total = n, from = e[n - 1].ts + 1;
    while (trunc) {
        o = (tkv_range_opts){.from = from};
        cr_assert_eq(tkv_range(c, "r", 1, &o, &e, &n, &trunc), TKV_OK);
        total += n;
        if (n)
            from = e[n - 1].ts + 1;
    }
    cr_assert_eq(total, 100, "paging through a truncated range sees every version");
    uint64_t removed;
    cr_assert_eq(tkv_del(c, "r", 1, &removed), TKV_OK);
    cr_assert_eq(removed, 100);
    cr_assert_eq(tkv_range(c, "r", 1, NULL, &e, &n, &trunc), TKV_OK);
    cr_assert_eq(n, 0);
    tkv_free(c);
}

/* Frames written by hand: [len][msgpack]. */
static const uint8_t PING[] = {0, 0, 0, 6, 0x91, 0xa4, 'P', 'I', 'N', 'G'};

static void expect_status(int fd, unsigned status)
{
    uint8_t buf[512];
    long n = raw_frame(fd, buf, sizeof buf);
    cr_assert_gt(n, 1, "no reply");
    cr_assert(buf[0] >= 0x91 && buf[0] <= 0x9f, "reply is not an array");
    cr_assert_eq(buf[1], status, "status %u, want %u", buf[1], status);
}

Test(server, malformed_requests_get_errors_and_the_connection_lives, .init = start_default,
     .fini = teardown)
{
    int fd = tkvd_raw(&d);
    /* Not MessagePack at all. */
    const uint8_t garbage[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
    raw_send(fd, garbage, sizeof garbage);
    expect_status(fd, 10);
    /* An array header claiming 4 billion elements. */
    const uint8_t bomb[] = {0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff, 0xff};
    raw_send(fd, bomb, sizeof bomb);
    expect_status(fd, 10);
    /* Unknown command. */
    const uint8_t fly[] = {0, 0, 0, 5, 0x91, 0xa3, 'F', 'L', 'Y'};
    raw_send(fd, fly, sizeof fly);
    expect_status(fd, 11);
    /* An empty frame. */
    const uint8_t empty[] = {0, 0, 0, 0};
    raw_send(fd, empty, sizeof empty);
    expect_status(fd, 10);
    /* A valid request, one byte per write. */
    for (size_t i = 0; i < sizeof PING; i++)
        raw_send(fd, PING + i, 1);
    expect_status(fd, 0);
    close(fd);
}

/* A connection that announced a frame far over the limit: refused with
 * TOO_LARGE (12), after which the server closes it. */
static int refused_connection(void)
{
    int fd = tkvd_raw(&d);
    const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 0x91};
    raw_send(fd, huge, sizeof huge);
    expect_status(fd, 12);
    return fd;
}

Test(server, oversize_frame_gets_an_error_and_a_close, .init = start_default, .fini = teardown)
{
    int fd = refused_connection();
    cr_assert(raw_wait_eof(fd, 5000), "the server must close a desynchronised stream");
    close(fd);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_ping(c), TKV_OK, "other clients are unaffected");
    tkv_free(c);
}

Test(server, too_large_values_are_refused, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    size_t n = 2u << 20;
    char *big = calloc(1, n);
    cr_assert_eq(tkv_put(c, "big", 3, big, n, 1, NULL), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_SERVER);
    cr_assert_eq(tkv_server_code(c), TKV_SC_TOO_LARGE, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_put(c, "big", 3, big, 1u << 20, 1, NULL), TKV_OK, "%s", tkv_errstr(c));
    tkv_version v;
    cr_assert_eq(tkv_get(c, "big", 3, 1, &v), TKV_OK);
    cr_assert_eq(v.len, 1u << 20);
    free(big);
    tkv_free(c);
}

Test(server, many_clients_at_once, .init = start_default, .fini = teardown, .timeout = 60)
{
    enum { N = 300 };
    tkv_ctx *c[N];
    for (int i = 0; i < N; i++)
        c[i] = tkvd_client(&d);
    char key[16];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "c%d", i);
        cr_assert_eq(tkv_append_put(c[i], key, strlen(key), key, strlen(key), 1), TKV_OK);
        cr_assert_eq(tkv_flush(c[i]), TKV_OK);
    }
    for (int i = 0; i < N; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c[i], &r), TKV_OK);
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "c%d", (i + 7) % N);
        expect_value(c[i], key, 1, key);
        tkv_free(c[i]);
    }
}

Test(server, max_clients_refuses_with_an_error, .fini = teardown)
{
    const char *args[] = {"--max-clients", "2", NULL};
    tkvd_start(&d, args);
    tkv_ctx *a = tkvd_client(&d), *b = tkvd_client(&d);
    cr_assert_eq(tkv_ping(a), TKV_OK);
    cr_assert_eq(tkv_ping(b), TKV_OK);
    int fd = tkvd_raw(&d);
    expect_status(fd, 21);
    cr_assert(raw_wait_eof(fd, 5000));
    close(fd);
    tkv_free(a);
    /* Wait until the server has seen the close: b is then the only client. */
    uint64_t conns = 0;
    for (int i = 0; i < 2000; i++) {
        const tkv_stat *s;
        size_t n;
        cr_assert_eq(tkv_stats(b, &s, &n), TKV_OK);
        for (size_t k = 0; k < n; k++)
            if (strcmp(s[k].name, "connections") == 0)
                conns = s[k].num;
        if (conns == 1)
            break;
        usleep(1000);
    }
    cr_assert_eq(conns, 1);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_ping(c), TKV_OK, "the freed slot is reusable");
    tkv_free(b);
    tkv_free(c);
}

Test(server, clean_shutdown_keeps_everything, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    for (uint64_t i = 0; i < 500; i++)
        cr_assert_eq(tkv_append_put(c, "s", 1, "x", 1, i), TKV_OK);
    for (int i = 0; i < 500; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK);
    }
    tkv_free(c);
    tkvd_stop(&d);
    char *log = tkvd_log(&d);
    cr_assert(strstr(log, "shutdown complete"), "log:\n%s", log);
    free(log);
    tkvd_restart(&d);
    c = tkvd_client(&d);
    const tkv_stat *s;
    size_t n;
    cr_assert_eq(tkv_stats(c, &s, &n), TKV_OK);
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s[i].name, "versions") == 0) {
            cr_assert_eq(s[i].num, 500);
            seen = true;
        }
    }
    cr_assert(seen, "STATS reports versions");
    tkv_free(c);
}

Test(server, second_server_on_the_same_directory_fails_clearly, .init = start_default,
     .fini = teardown)
{
    const char *argv[] = {getenv("TKVD"), "--data-dir", d.dir, "--port", "0", NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "in use by another tkvd"), "stderr: %s", err);
    free(out);
    free(err);
}

Test(server, memory_budget_holds_and_nothing_is_lost, .fini = teardown, .timeout = 60)
{
    const char *args[] = {"--max-memory", "256kb", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    enum { KEYS = 4000, VERSIONS = 5 };
    char key[32], val[64];
    for (int v = 0; v < VERSIONS; v++) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "budget:%05d", k);
            snprintf(val, sizeof val, "value of %d at %d, padded to be longer", k, v);
            cr_assert_eq(tkv_append_put(c, key, strlen(key), val, strlen(val), (uint64_t)v * 10),
                         TKV_OK);
        }
        for (int k = 0; k < KEYS; k++) {
            tkv_reply r;
            cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
        }
    }
    /* 20000 versions of ~60 bytes cannot fit in 256 KiB of index. */
    cr_assert_gt(tkvd_stat(c, "evictions"), 0);
    cr_assert_leq(tkvd_stat(c, "mem_bytes"), 256 * 1024);
    cr_assert_eq(tkvd_stat(c, "versions"), KEYS * VERSIONS);
    for (int k = 0; k < KEYS; k += 7) {
        snprintf(key, sizeof key, "budget:%05d", k);
        snprintf(val, sizeof val, "value of %d at %d, padded to be longer", k, 2);
        expect_value(c, key, 25, val);
    }
    cr_assert_gt(tkvd_stat(c, "reads_disk"), 0, "evicted keys are read from LevelDB");
    cr_assert_leq(tkvd_stat(c, "mem_bytes"), 256 * 1024 + 64 * 1024);
    tkv_free(c);
}

static uint64_t stat_bytes_in(tkv_ctx *c)
{
    const tkv_stat *st;
    size_t n;
    cr_assert_eq(tkv_stats(c, &st, &n), TKV_OK, "%s", tkv_errstr(c));
    for (size_t i = 0; i < n; i++)
        if (strcmp(st[i].name, "bytes_in") == 0)
            return st[i].num;
    cr_assert_fail("STATS has no bytes_in");
    return 0;
}

/* Pipelines `n` GETs of a 64 KiB value on a raw socket and reads nothing:
 * the replies pass the output high water, so the server stops reading and
 * serving that client (THROTTLED) with requests still buffered. */
static int pipeline_big_gets(int n)
{
    tkvd_put_zeros(&d, "big", 64 * 1024);
    int fd = tkvd_raw(&d);
    /* ["GET", "big"] x n, in one write so that they arrive together and the
     * server reads them all before its replies throttle it. */
    const uint8_t get[] = {0, 0, 0, 9, 0x92, 0xa3, 'G', 'E', 'T', 0xa3, 'b', 'i', 'g'};
    uint8_t *all = malloc((size_t)n * sizeof get);
    cr_assert(all);
    for (int i = 0; i < n; i++)
        memcpy(all + (size_t)i * sizeof get, get, sizeof get);
    tkv_ctx *c = tkvd_client(&d);
    uint64_t before = stat_bytes_in(c);
    raw_send(fd, all, (size_t)n * sizeof get);
    free(all);
    /* Wait until the server has read them (its bytes_in counts them). */
    while (stat_bytes_in(c) < before + (uint64_t)n * sizeof get)
        usleep(1000);
    tkv_free(c);
    return fd;
}

static void expect_big_replies(int fd, int n)
{
    static uint8_t buf[80 * 1024];
    for (int i = 0; i < n; i++) {
        long len = raw_frame(fd, buf, sizeof buf);
        cr_assert_gt(len, 64 * 1024, "reply %d of %d missing or short (%ld bytes)", i, n, len);
        cr_assert_eq(buf[1], 0, "reply %d: status %u", i, buf[1]);
    }
}

Test(server, a_throttled_client_gets_every_reply_once_it_reads, .init = start_default,
     .fini = teardown)
{
    int fd = pipeline_big_gets(200);
    expect_big_replies(fd, 200);
    raw_send(fd, PING, sizeof PING);
    expect_status(fd, 0);
    close(fd);
}

Test(server, shutdown_serves_buffered_requests_and_ends_a_lingering_close, .init = start_default,
     .fini = teardown)
{
    int refused = refused_connection();
    int fd = pipeline_big_gets(200);
    cr_assert_eq(kill(d.pid, SIGTERM), 0);
    expect_big_replies(fd, 200);
    int st = tkvd_signal(&d, SIGTERM);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_assert(raw_wait_eof(refused, 5000));
    close(refused);
    close(fd);
}
