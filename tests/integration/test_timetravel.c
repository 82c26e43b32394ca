/*
 * test_timetravel.c - the versioned features through libtkvclient against
 * the real tkvd: atomic MPUT, consistent MGET snapshots while others write,
 * SCAN paging while keys come and go, server-wide retention and TTL
 * expiry carried out by the background sweep.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static tkvd d;
static atomic_bool stop;
static atomic_uint_fast64_t rounds_done; /* round_writer's acknowledged rounds */

static void teardown(void) { tkvd_cleanup(&d); }
static void start_default(void) { tkvd_start(&d, NULL); }

Test(timetravel, mput_is_all_or_nothing, .init = start_default, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    for (uint64_t ts = 1; ts <= 5; ts++)
        cr_assert_eq(tkv_put(c, "guarded", 7, "v", 1, ts * 10, NULL), TKV_OK);
    tkv_retain_info ri;
    cr_assert_eq(tkv_retain(c, "guarded", 7, 2, 0, 0, &ri), TKV_OK);
    cr_assert_eq(ri.horizon, 40);
    /* The last item is below guarded's horizon: the whole MPUT fails. */
    tkv_item items[] = {
        {.key = {"m1", 2}, .value = {"a", 1}, .ts = 1, .has_ts = 1},
        {.key = {"m2", 2}, .value = {"b", 1}, .ts = 1, .has_ts = 1},
        {.key = {"guarded", 7}, .value = {"late", 4}, .ts = 5, .has_ts = 1},
    };
    cr_assert_eq(tkv_mput(c, items, 3, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_OUT_OF_RANGE, "%s", tkv_errstr(c));
    tkv_version v;
    cr_assert_eq(tkv_get(c, "m1", 2, TKV_LATEST, &v), TKV_NOT_FOUND, "m1 must not exist");
    cr_assert_eq(tkv_get(c, "m2", 2, TKV_LATEST, &v), TKV_NOT_FOUND, "m2 must not exist");
    items[2].ts = 60;
    const uint64_t *stamps;
    cr_assert_eq(tkv_mput(c, items, 3, &stamps), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(stamps[0], 1);
    cr_assert_eq(stamps[2], 60);
    cr_assert_eq(tkv_get(c, "m2", 2, TKV_LATEST, &v), TKV_OK);
    tkv_free(c);
}

/* Writes rounds r = 1, 2, ...: every key gets value r at timestamp r*10,
 * all keys in one MPUT. */
static void *round_writer(void *arg)
{
    tkv_ctx *c = tkv_connect("127.0.0.1", d.port, 10000);
    char keys[10][8], vals[10][16];
    tkv_item items[10];
    for (uint64_t r = 1; !atomic_load(&stop) && r < 100000; r++) {
        for (int k = 0; k < 10; k++) {
            snprintf(keys[k], sizeof keys[k], "snap%d", k);
            snprintf(vals[k], sizeof vals[k], "%llu", (unsigned long long)r);
            items[k] = (tkv_item){.key = {keys[k], strlen(keys[k])},
                                  .value = {vals[k], strlen(vals[k])},
                                  .ts = r * 10,
                                  .has_ts = 1};
        }
        cr_assert_eq(tkv_mput(c, items, 10, NULL), TKV_OK, "%s", tkv_errstr(c));
        atomic_store(&rounds_done, r);
    }
    tkv_free(c);
    return NULL;
}

Test(timetravel, mget_is_one_snapshot, .init = start_default, .fini = teardown, .timeout = 60)
{
    pthread_t w;
    atomic_store(&stop, false);
    atomic_store(&rounds_done, 0);
    pthread_create(&w, NULL, round_writer, NULL);
    tkv_ctx *c = tkvd_client(&d);
    /* Reads start once a round is in, so that every one of them finds one:
     * a reader that outran the writer's start checked nothing. */
    while (atomic_load(&rounds_done) == 0)
        usleep(1000);
    tkv_bytes keys[10];
    char names[10][8];
    for (int k = 0; k < 10; k++) {
        snprintf(names[k], sizeof names[k], "snap%d", k);
        keys[k] = (tkv_bytes){names[k], strlen(names[k])};
    }
    for (int i = 0; i < 2000; i++) {
        /* Latest, and the time just after a round already written (while
         * later ones are being written): the answers agree across keys. */
        uint64_t done = atomic_load(&rounds_done);
        uint64_t at = i % 2 ? TKV_LATEST : (1 + (uint64_t)i / 2 % done) * 10 + 5;
        const tkv_version *v;
        cr_assert_eq(tkv_mget(c, at, keys, 10, &v), TKV_OK, "%s", tkv_errstr(c));
        cr_assert_eq(v[0].status, TKV_OK, "no round as of %llu after %llu rounds",
                     (unsigned long long)at, (unsigned long long)done);
        for (int k = 1; k < 10; k++) {
            cr_assert_eq(v[k].status, TKV_OK, "key %d missing from a snapshot", k);
            cr_assert_eq(v[k].ts, v[0].ts, "snapshot mixes rounds: %llu and %llu",
                         (unsigned long long)v[k].ts, (unsigned long long)v[0].ts);
            cr_assert_eq(v[k].len, v[0].len);
            cr_assert_eq(memcmp(v[k].value, v[0].value, v[0].len), 0);
        }
    }
    atomic_store(&stop, true);
    pthread_join(w, NULL);
    tkv_free(c);
}

static void *churn(void *arg)
{
    tkv_ctx *c = tkv_connect("127.0.0.1", d.port, 10000);
    char key[32];
    for (int i = 0; !atomic_load(&stop); i++) {
        snprintf(key, sizeof key, "scan:%05d:tmp%d", (i * 7919) % 5000, i % 3);
        if (i % 2)
            tkv_put(c, key, strlen(key), "t", 1, 1, NULL);
        else
            tkv_del(c, key, strlen(key), NULL);
    }
    tkv_free(c);
    return NULL;
}

Test(timetravel, scan_pages_see_every_stable_key_once, .init = start_default, .fini = teardown,
     .timeout = 60)
{
    tkv_ctx *c = tkvd_client(&d);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "scan:%05d", i);
        cr_assert_eq(tkv_append_put(c, key, strlen(key), "v", 1, 1), TKV_OK);
    }
    for (int i = 0; i < 5000; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK);
    }
    cr_assert_eq(tkv_put(c, "other", 5, "x", 1, 1, NULL), TKV_OK);
    pthread_t w;
    atomic_store(&stop, false);
    pthread_create(&w, NULL, churn, NULL);
    int next = 0;
    char cursor[64] = "";
    size_t clen = 0;
    bool first = true;
    for (;;) {
        const tkv_bytes *keys;
        size_t n;
        tkv_bytes nc;
        tkv_bytes cur = {first ? NULL : cursor, clen};
        cr_assert_eq(tkv_scan(c, "scan:", 5, cur, 97, &keys, &n, &nc), TKV_OK);
        first = false;
        for (size_t i = 0; i < n; i++) {
            cr_assert(keys[i].len >= 5 && memcmp(keys[i].ptr, "scan:", 5) == 0);
            if (keys[i].len != 10)
                continue; /* a churning key */
            snprintf(key, sizeof key, "scan:%05d", next);
            cr_assert_eq(memcmp(keys[i].ptr, key, 10), 0, "expected %s", key);
            next++;
        }
        if (!nc.ptr)
            break;
        cr_assert_lt(nc.len, sizeof cursor);
        memcpy(cursor, nc.ptr, nc.len);
        clen = nc.len;
    }
    atomic_store(&stop, true);
    pthread_join(w, NULL);
    cr_assert_eq(next, 5000, "saw %d of 5000 stable keys", next);
    tkv_free(c);
}

Test(timetravel, server_retention_is_carried_out_by_the_sweep, .fini = teardown, .timeout = 60)
{
    const char *args[] = {"--retain-versions", "3", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    char key[16];
    for (int k = 0; k < 50; k++) {
        snprintf(key, sizeof key, "ret%d", k);
        for (uint64_t ts = 1; ts <= 10; ts++)
            cr_assert_eq(tkv_append_put(c, key, strlen(key), "v", 1, ts * 100), TKV_OK);
    }
    for (int i = 0; i < 500; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK);
    }
    /* The sweep runs in the background: wait for its result, bounded. */
    uint64_t versions = 0;
    for (int i = 0; i < 1000 && (versions = tkvd_stat(c, "versions")) != 150; i++)
        usleep(10000);
    cr_assert_eq(versions, 150, "3 versions of 50 keys should remain, not %llu",
                 (unsigned long long)versions);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "ret7", 4, 750, &v), TKV_NOT_FOUND);
    cr_assert_eq(v.miss, TKV_MISS_BELOW_HORIZON);
    cr_assert_eq(v.at, 800);
    cr_assert_eq(tkv_get(c, "ret7", 4, 850, &v), TKV_OK, "answers at the horizon stay");
    cr_assert_eq(v.ts, 800);
    tkv_policy_info p;
    cr_assert_eq(tkv_policy(c, "ret7", 4, &p), TKV_OK);
    cr_assert_eq(p.versions, 3);
    cr_assert_eq(p.own, 0);
    cr_assert_eq(p.horizon, 800);
    tkv_free(c);
    /* It survives a restart. */
    tkvd_stop(&d);
    tkvd_restart(&d);
    c = tkvd_client(&d);
    int rc = tkv_get(c, "ret7", 4, 750, &v);
    cr_assert_eq(rc, TKV_NOT_FOUND, "after a restart: rc %d ts %llu (%s)", rc,
                 (unsigned long long)v.ts, tkv_errstr(c));
    cr_assert_eq(v.miss, TKV_MISS_BELOW_HORIZON);
    cr_assert_eq(tkvd_stat(c, "versions"), 150);
    tkv_free(c);
}

Test(timetravel, expired_versions_disappear_and_are_swept, .init = start_default, .fini = teardown,
     .timeout = 60)
{
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "cache", 5, "durable", 7, 1, NULL), TKV_OK);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "eph%d", i);
        cr_assert_eq(tkv_put_ex(c, key, strlen(key), "x", 1, 0, 0, 200000, NULL), TKV_OK);
    }
    cr_assert_eq(tkv_put_ex(c, "cache", 5, "fresh", 5, 0, 0, 200000, NULL), TKV_OK);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "cache", 5, TKV_LATEST, &v), TKV_OK);
    cr_assert_eq(v.len, 5, "the fresh version answers while it lives");
    cr_assert_gt(v.expires, 0);
    uint64_t swept = 0;
    for (int i = 0; i < 1000 && (swept = tkvd_stat(c, "swept_expired")) < 21; i++)
        usleep(10000);
    cr_assert_eq(swept, 21, "the sweep removed %llu expired versions", (unsigned long long)swept);
    cr_assert_eq(tkv_get(c, "cache", 5, TKV_LATEST, &v), TKV_OK);
    cr_assert_eq(v.len, 7, "the version before it answers again");
    cr_assert_eq(tkv_get(c, "eph3", 4, TKV_LATEST, &v), TKV_NOT_FOUND);
    cr_assert_eq(tkvd_stat(c, "keys"), 1);
    cr_assert_eq(tkvd_stat(c, "versions"), 1);
    tkv_free(c);
}

/* Keeps the server busy until told to stop: a window of 32 PUTs always in
 * flight, a new one sent for each reply. */
static void *steady_writer(void *arg)
{
    tkv_ctx *c = arg;
    char key[32];
    snprintf(key, sizeof key, "busy%p", arg);
    uint64_t ts = 0;
    for (int i = 0; i < 32; i++)
        cr_assert_eq(tkv_append_put(c, key, strlen(key), "v", 1, ++ts), TKV_OK);
    while (!atomic_load(&stop)) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
        cr_assert_eq(tkv_append_put(c, key, strlen(key), "v", 1, ++ts), TKV_OK);
    }
    for (int i = 0; i < 32; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
    }
    return NULL;
}

/* The sweep runs between write batches; under a steady load that leaves no
 * moment between them it must still get its turn. */
Test(timetravel, the_sweep_progresses_under_a_steady_write_load, .init = start_default,
     .fini = teardown, .timeout = 60)
{
    enum { WRITERS = 4 };
    tkv_ctx *c = tkvd_client(&d), *w[WRITERS];
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "ttl%d", i);
        cr_assert_eq(tkv_put_ex(c, key, strlen(key), "x", 1, 0, 0, 100000, NULL), TKV_OK);
    }
    atomic_store(&stop, false);
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = tkvd_client(&d);
        cr_assert_eq(pthread_create(&t[i], NULL, steady_writer, w[i]), 0);
    }
    /* The load first: every writer past its first window (a slow server,
     * under valgrind, may take a while to get there). */
    uint64_t versions = 0;
    for (int i = 0; i < 3000 && (versions = tkvd_stat(c, "versions")) <= 10 + WRITERS * 32; i++)
        usleep(10000);
    uint64_t swept = 0;
    for (int i = 0; i < 3000 && (swept = tkvd_stat(c, "swept_expired")) < 10; i++)
        usleep(10000);
    atomic_store(&stop, true);
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
        tkv_free(w[i]);
    }
    cr_assert_gt(versions, 10 + WRITERS * 32, "the writers never got going");
    cr_assert_eq(swept, 10, "the sweep removed %llu of 10 expired versions",
                 (unsigned long long)swept);
    tkv_free(c);
}
