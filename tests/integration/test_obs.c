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
