/*
 * test_obs.c - what tkvd tells about itself (issue 15 §4): per-command
 * latency histograms, resident memory and disk usage in STATS, and the
 * slow log (SLOWLOG), against the real server.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static tkvd d;

static void teardown(void) { tkvd_cleanup(&d); }

static void start_default(void) { tkvd_start(&d, NULL); }

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A numeric STATS field, or false if STATS does not have it. */
static bool find_stat(tkv_ctx *c, const char *name, uint64_t *v)
{
    const tkv_stat *s;
    size_t n;
    cr_assert_eq(tkv_stats(c, &s, &n), TKV_OK, "%s", tkv_errstr(c));
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0 && !s[i].is_str) {
            *v = s[i].num;
            return true;
        }
    return false;
}

/* Polls STATS until field `name` passes `min`; fails after 20 s. */
static uint64_t wait_stat_above(tkv_ctx *c, const char *name, uint64_t min)
{
    double deadline = now_s() + 20;
    for (;;) {
        uint64_t v = tkvd_stat(c, name);
        if (v > min)
            return v;
        cr_assert(now_s() < deadline, "%s stayed at %llu, not above %llu", name,
                  (unsigned long long)v, (unsigned long long)min);
        usleep(20 * 1000); /* a poll interval */
    }
}

static void check_latency(tkv_ctx *c, const char *cmd, uint64_t count)
{
    char name[64];
    uint64_t n, p50, p99, p999, max;
    snprintf(name, sizeof name, "latency_%s_count", cmd);
    cr_assert(find_stat(c, name, &n), "no %s", name);
    cr_assert_eq(n, count, "%s: %llu", name, (unsigned long long)n);
    snprintf(name, sizeof name, "latency_%s_p50_us", cmd);
    cr_assert(find_stat(c, name, &p50), "no %s", name);
    snprintf(name, sizeof name, "latency_%s_p99_us", cmd);
    cr_assert(find_stat(c, name, &p99), "no %s", name);
    snprintf(name, sizeof name, "latency_%s_p999_us", cmd);
    cr_assert(find_stat(c, name, &p999), "no %s", name);
    snprintf(name, sizeof name, "latency_%s_max_us", cmd);
    cr_assert(find_stat(c, name, &max), "no %s", name);
    cr_assert(p50 <= p99 && p99 <= p999 && p999 <= max, "%s: p50 %llu p99 %llu p999 %llu max %llu",
              cmd, (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)p999,
              (unsigned long long)max);
    cr_assert_lt(max, 60u * 1000 * 1000, "%s: a max of %llu us is not a latency", cmd,
                 (unsigned long long)max);
}

Test(obs, latency_per_command, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    uint64_t v;
    cr_assert_not(find_stat(c, "latency_put_count", &v), "no PUT served yet: no PUT fields");
    for (int i = 0; i < 50; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "k%d", i % 7);
        uint64_t ts;
        cr_assert_eq(tkv_put(c, key, (size_t)n, "v", 1, 0, &ts), TKV_OK, "%s", tkv_errstr(c));
    }
    for (int i = 0; i < 30; i++) {
        tkv_version ver;
        int rc = tkv_get(c, i % 2 ? "k1" : "missing", i % 2 ? 2 : 7, TKV_LATEST, &ver);
        cr_assert(rc == TKV_OK || rc == TKV_NOT_FOUND, "%s", tkv_errstr(c));
    }
    check_latency(c, "put", 50);
    check_latency(c, "get", 30);
    /* Each STATS counts once its reply is queued, so a STATS sees those
     * before it: the first above and five per check_latency(). */
    check_latency(c, "stats", 1 + 2 * 5);
    cr_assert_not(find_stat(c, "latency_del_count", &v), "DEL was never sent");
    tkv_free(c);
}

Test(obs, rss_and_disk_usage, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_gt(tkvd_stat(c, "rss_bytes"), 1024 * 1024, "a running tkvd holds over a MiB");
    uint64_t before = wait_stat_above(c, "disk_bytes", 0);
    /* 2 MiB that do not compress, so the growth shows in any file LevelDB
     * keeps them in. */
    size_t len = 64 * 1024;
    uint8_t *val = malloc(len);
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        val[i] = (uint8_t)x;
    }
    for (int i = 0; i < 32; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "big%d", i);
        val[0] = (uint8_t)i;
        uint64_t ts;
        cr_assert_eq(tkv_put(c, key, (size_t)n, val, len, 0, &ts), TKV_OK, "%s", tkv_errstr(c));
    }
    free(val);
    wait_stat_above(c, "disk_bytes", before + 1024 * 1024);
    tkv_free(c);
}

static void start_slowlog_all(void)
{
    static const char *const args[] = {"--slowlog-slower-than", "0", "--slowlog-max-len", "4",
                                       NULL};
    tkvd_start(&d, args);
}

static void expect_entry(const tkv_slowlog_entry *e, const char *cmd, const char *key)
{
    cr_assert_str_eq(e->cmd, cmd);
    cr_assert_eq(e->key_len, strlen(key), "%s: key of %zu bytes", cmd, e->key_len);
    cr_assert_eq(memcmp(e->key, key, e->key_len), 0, "%s: key", cmd);
    cr_assert_eq(e->key_full_len, e->key_len, "%s: not cut", cmd);
    cr_assert(strncmp(e->client, "127.0.0.1:", 10) == 0, "%s: client %s", cmd, e->client);
}

Test(obs, slowlog_records_in_order_and_trims, .init = start_slowlog_all, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    uint64_t n, ts;
    cr_assert_eq(tkv_slowlog_reset(c, NULL), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_slowlog_len(c, &n), TKV_OK);
    cr_assert_eq(n, 0, "RESET empties the log; SLOWLOG itself is not logged");
    uint64_t before = (uint64_t)time(NULL) * 1000000u;
    cr_assert_eq(tkv_put(c, "a", 1, "v", 1, 0, &ts), TKV_OK);
    tkv_version v;
    tkv_get(c, "bb", 2, TKV_LATEST, &v);
    uint64_t removed;
    cr_assert_eq(tkv_del(c, "ccc", 3, &removed), TKV_OK);
    const tkv_version *answers;
    tkv_bytes keys[2] = {{(const uint8_t *)"dddd", 4}, {(const uint8_t *)"e", 1}};
    cr_assert_eq(tkv_mget(c, TKV_LATEST, keys, 2, &answers), TKV_OK);
    const tkv_bytes *page;
    size_t np;
    tkv_bytes next;
    cr_assert_eq(tkv_scan(c, "pre", 3, (tkv_bytes){NULL, 0}, 10, &page, &np, &next), TKV_OK);

    /* Five requests into a log of four: the PUT went. */
    cr_assert_eq(tkv_slowlog_len(c, &n), TKV_OK);
    cr_assert_eq(n, 4);
    const tkv_slowlog_entry *e;
    size_t ne;
    cr_assert_eq(tkv_slowlog_get(c, 10, &e, &ne), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(ne, 4);
    expect_entry(&e[0], "SCAN", "pre");
    expect_entry(&e[1], "MGET", "dddd");
    expect_entry(&e[2], "DEL", "ccc");
    expect_entry(&e[3], "GET", "bb");
    for (size_t i = 0; i < ne; i++) {
        if (i > 0) {
            cr_assert_eq(e[i].id + 1, e[i - 1].id, "ids count up, newest first");
            cr_assert_leq(e[i].time_us, e[i - 1].time_us);
        }
        cr_assert_geq(e[i].time_us, before, "answered after the test began");
        cr_assert_lt(e[i].time_us, before + 60u * 1000000u);
        cr_assert_lt(e[i].duration_us, 60u * 1000000u);
    }
    cr_assert_eq(tkv_slowlog_get(c, 2, &e, &ne), TKV_OK);
    cr_assert_eq(ne, 2, "GET n gives the newest n");
    cr_assert_str_eq(e[0].cmd, "SCAN");
    cr_assert_str_eq(e[1].cmd, "MGET");

    /* A key above 128 bytes is kept cut, with its length. */
    char big[300];
    memset(big, 'k', sizeof big);
    tkv_get(c, big, sizeof big, TKV_LATEST, &v);
    cr_assert_eq(tkv_slowlog_get(c, 1, &e, &ne), TKV_OK);
    cr_assert_eq(ne, 1);
    cr_assert_str_eq(e[0].cmd, "GET");
    cr_assert_eq(e[0].key_len, 128);
    cr_assert_eq(e[0].key_full_len, sizeof big);
    cr_assert_eq(memcmp(e[0].key, big, 128), 0);

    cr_assert_eq(tkv_slowlog_reset(c, &removed), TKV_OK);
    cr_assert_eq(removed, 4);
    cr_assert_eq(tkv_slowlog_len(c, &n), TKV_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(tkv_slowlog_get(c, 10, &e, &ne), TKV_OK);
    cr_assert_eq(ne, 0);
    tkv_free(c);
}

static void start_slowlog_off(void)
{
    static const char *const args[] = {"--slowlog-slower-than", "-1", NULL};
    tkvd_start(&d, args);
}

Test(obs, slowlog_negative_threshold_logs_nothing, .init = start_slowlog_off, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    uint64_t n, ts;
    for (int i = 0; i < 20; i++)
        cr_assert_eq(tkv_put(c, "a", 1, "v", 1, 0, &ts), TKV_OK);
    cr_assert_eq(tkv_slowlog_len(c, &n), TKV_OK);
    cr_assert_eq(n, 0);
    tkv_free(c);
}

Test(obs, slowlog_options_are_checked)
{
    const char *tkvd_bin = getenv("TKVD");
    cr_assert(tkvd_bin);
    const char *bad[][3] = {{"--slowlog-slower-than", "fast", NULL},
                            {"--slowlog-max-len", "-3", NULL},
                            {"--slowlog-max-len", "2000000", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {tkvd_bin, bad[i][0], bad[i][1], NULL};
        char *out, *err;
        int st = run_capture(argv, NULL, &out, &err);
        cr_assert_neq(st, 0, "%s %s was taken", bad[i][0], bad[i][1]);
        cr_assert(strstr(err, bad[i][0] + 2), "%s %s: %s", bad[i][0], bad[i][1], err);
        free(out);
        free(err);
    }
}

/* tkvctl ARGS... against d; asserts the exit status; returns stdout. */
static char *ctl(const char *const *args)
{
    char port[8];
    snprintf(port, sizeof port, "%u", d.port);
    const char *argv[16] = {getenv("TKVCTL"), "-p", port};
    int n = 3;
    for (; args[n - 3] && n < 15; n++)
        argv[n] = args[n - 3];
    argv[n] = NULL;
    char *out, *err;
    int st = run_capture(argv, NULL, &out, &err);
    cr_assert_eq(st, 0, "tkvctl %s %s: %s", args[0], args[1] ? args[1] : "", err);
    free(err);
    return out;
}

Test(obs, tkvctl_slowlog, .init = start_slowlog_all, .fini = teardown)
{
    free(ctl((const char *[]){"slowlog", "reset", NULL}));
    free(ctl((const char *[]){"put", "user:1", "v", NULL}));
    free(ctl((const char *[]){"count", "user:2", NULL}));
    char *out = ctl((const char *[]){"slowlog", "get", NULL});
    /* ID TIME DURATION COMMAND KEY CLIENT, newest first. */
    char *count = strstr(out, "\tCOUNT\tuser:2\t127.0.0.1:");
    char *put = strstr(out, "\tPUT\tuser:1\t127.0.0.1:");
    cr_assert(count && put && count < put, "%s", out);
    free(out);
    out = ctl((const char *[]){"slowlog", "len", NULL});
    cr_assert_str_eq(out, "2\n");
    free(out);
    out = ctl((const char *[]){"--json", "slowlog", "get", "1", NULL});
    cr_assert(strstr(out, "{\"length\":2,\"entries\":[{\"id\":") &&
                  strstr(out, "\"command\":\"COUNT\""),
              "%s", out);
    cr_assert(strstr(out, "\"key\":\"user:2\",\"key_len\":6,\"client\":\"127.0.0.1:"), "%s", out);
    free(out);
    out = ctl((const char *[]){"slowlog", "reset", NULL});
    cr_assert_str_eq(out, "OK\n");
    free(out);
    out = ctl((const char *[]){"--json", "slowlog", "len", NULL});
    cr_assert_str_eq(out, "{\"length\":0}\n");
    free(out);
}
