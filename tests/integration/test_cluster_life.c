/*
 * test_cluster_life.c - a cluster's life under one load, end to end (issue
 * 14's test): a private etcd; four tkvd with --cluster made into two
 * shards of a primary and a replica (tkvctl cluster create --replicas 1);
 * a writer going through the cluster client with PUT then WAIT 1 all
 * along; a fifth node added (tkvctl cluster add-node, which rebalances)
 * under that load, leaving every shard within one slot of an even share;
 * then a primary killed with SIGKILL under the load, its replica taking
 * over. At the end every acknowledged write is read back at its own
 * timestamp through a fresh cluster client - the crash test's check,
 * across the cluster: one acknowledged by WAIT 1 must be there; one only
 * PUT acknowledged may be missing only if its slot is the killed
 * primary's.
 *
 * Leases last 2 s (--cluster-timeout). etcd is required (scripts/setup
 * installs etcd-server): without it the test fails rather than skip.
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

#include "etcd.h"
#include "etcd_proc.h"
#include "harness.h"

#define NAME "life"
#define NNODES 5
#define NKEYS 200
#define MAXW 200000

static etcd_proc etcd;
static tkvd nodes[NNODES];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void pause_ms(int ms) { usleep((useconds_t)ms * 1000); }

static void teardown(void)
{
    for (int i = 0; i < NNODES; i++)
        if (nodes[i].dir)
            tkvd_cleanup(&nodes[i]);
    etcd_stop(&etcd);
}

static size_t count_keys(const char *prefix)
{
    char err[256];
    tkv_etcd *e = tkv_etcd_new(etcd.url, 500, err, sizeof err);
    cr_assert_not_null(e, "%s", err);
    tkv_etcd_kvs kvs;
    size_t n = SIZE_MAX;
    if (tkv_etcd_get(e, prefix, strlen(prefix), true, &kvs, err, sizeof err) == 0) {
        n = kvs.n;
        tkv_etcd_kvs_free(&kvs);
    }
    tkv_etcd_free(e);
    return n;
}

static void wait_keys(const char *prefix, size_t want)
{
    double deadline = now_s() + 30;
    while (count_keys(prefix) != want) {
        cr_assert(now_s() < deadline, "%zu keys under %s never came", want, prefix);
        pause_ms(50);
    }
}

/* The node's ROLE; false if it does not answer. */
static bool role_of(int i, bool *replica, bool *online)
{
    tkv_ctx *c = tkv_connect("127.0.0.1", nodes[i].port, 2000);
    tkv_role_info ri;
    bool ok = tkv_err(c) == TKV_EK_NONE && tkv_role(c, &ri) == TKV_OK;
    if (ok) {
        *replica = ri.is_replica;
        *online = ri.is_replica && ri.link && strcmp(ri.link, "online") == 0;
    }
    tkv_free(c);
    return ok;
}

static uint64_t stat_of(int i, const char *name)
{
    tkv_ctx *c = tkvd_client(&nodes[i]);
    uint64_t v = tkvd_stat(c, name);
    tkv_free(c);
    return v;
}

/* ---- the writer ------------------------------------------------------------ */

/* What became of write i: key k<i % NKEYS>, value v<i>, at ts i + 1. */
enum { W_NONE, W_FAILED, W_PUT, W_WAITED };
static _Atomic int wstate[MAXW];
static atomic_bool stop_writer;
static atomic_long written; /* writes tried */

typedef struct put_wait {
    const char *key, *val;
    uint64_t ts;
    bool put_ok;
    uint64_t acked;
} put_wait;

static int put_then_wait(tkv_ctx *c, void *arg)
{
    put_wait *pw = arg;
    if (tkv_put(c, pw->key, strlen(pw->key), pw->val, strlen(pw->val), pw->ts, NULL) != TKV_OK)
        return TKV_ERR;
    pw->put_ok = true;
    /* Short: the added shard has no replica, where WAIT can only time
     * out (the write then counts as acknowledged by PUT alone). */
    return tkv_wait(c, 1, 200, &pw->acked);
}

static char seeds_buf[NNODES][32];

static tkv_cluster *connect_cluster(void)
{
    const char *seeds[NNODES];
    for (int i = 0; i < NNODES; i++) {
        snprintf(seeds_buf[i], sizeof seeds_buf[i], "127.0.0.1:%u", nodes[i].port);
        seeds[i] = seeds_buf[i];
    }
    tkv_cluster *cl = tkv_cluster_connect(seeds, NNODES, 3000, NULL);
    cr_assert_not_null(cl);
    return cl;
}

static void *writer(void *arg)
{
    (void)arg;
    tkv_cluster *cl = connect_cluster();
    for (long i = 0; i < MAXW && !atomic_load(&stop_writer); i++) {
        char key[16], val[24];
        snprintf(key, sizeof key, "k%ld", i % NKEYS);
        snprintf(val, sizeof val, "v%ld", i);
        put_wait pw = {key, val, (uint64_t)i + 1, false, 0};
        int rc = tkv_cluster_call(cl, key, strlen(key), put_then_wait, &pw);
        atomic_store(&wstate[i], rc == TKV_OK && pw.acked >= 1 ? W_WAITED
                                 : pw.put_ok                   ? W_PUT
                                                               : W_FAILED);
        atomic_store(&written, i + 1);
        if (rc != TKV_OK) {
            /* A node gone: ask the others for the map, which changes when
             * the failover is done. */
            tkv_cluster_refresh(cl);
            pause_ms(20);
        }
    }
    tkv_cluster_free(cl);
    return NULL;
}

static long count_state(long upto, int state)
{
    long n = 0;
    for (long i = 0; i < upto; i++)
        n += atomic_load(&wstate[i]) == state;
    return n;
}

/* ---- the test ----------------------------------------------------------------- */

static char *ctl(const char *sub, const char *arg, const char *arg2)
{
    const char *argv[] = {getenv("TKVCTL"),
                          "--etcd",
                          etcd.url,
                          "--cluster-name",
                          NAME,
                          "cluster",
                          sub,
                          arg,
                          arg2,
                          NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_eq(rc, 0, "tkvctl cluster %s %s: %s%s", sub, arg ? arg : "", out, err);
    free(err);
    return out;
}

static int dead = -1; /* the node killed, not asked */

/* The map as a live node holds it: CLUSTER SHARDS over a new connection,
 * from the first node that answers. */
static tkv_ctx *map_of(const tkv_slot_range **r, size_t *nr)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        for (int i = 0; i < NNODES; i++) {
            if (i == dead || !nodes[i].pid)
                continue;
            tkv_ctx *c = tkv_connect("127.0.0.1", nodes[i].port, 2000);
            if (tkv_err(c) == TKV_EK_NONE && tkv_cluster_shards(c, NULL, r, nr) == TKV_OK)
                return c;
            tkv_free(c);
        }
        pause_ms(50);
    }
    cr_assert_fail("no node answers CLUSTER SHARDS");
    return NULL;
}

/* Slots per primary ("host:port"). */
static size_t shard_slots(char addrs[][32], size_t *counts, size_t max)
{
    const tkv_slot_range *r;
    size_t nr, n = 0;
    tkv_ctx *c = map_of(&r, &nr);
    for (size_t k = 0; k < nr; k++) {
        size_t i = 0;
        while (i < n && strcmp(addrs[i], r[k].primary) != 0)
            i++;
        if (i == n) {
            cr_assert_lt(n, max);
            snprintf(addrs[n], 32, "%s", r[k].primary);
            counts[n++] = 0;
        }
        counts[i] += r[k].to - r[k].from + 1;
    }
    tkv_free(c);
    return n;
}

/* The primary ("host:port") serving key's slot, from CLUSTER SHARDS. */
static void owner_of(const char *key, char out[32])
{
    const tkv_slot_range *r;
    size_t nr;
    tkv_ctx *c = map_of(&r, &nr);
    unsigned slot = tkv_key_slot(key, strlen(key));
    out[0] = '\0';
    for (size_t k = 0; k < nr; k++)
        if (slot >= r[k].from && slot <= r[k].to)
            snprintf(out, 32, "%s", r[k].primary);
    tkv_free(c);
}

Test(cluster_life, grow_under_load_then_lose_a_primary, .fini = teardown, .timeout = 300)
{
    etcd_start(&etcd);
    const char *args[] = {"--cluster", etcd.url, "--cluster-name", NAME, "--cluster-timeout",
                          "2",         NULL};
    for (int i = 0; i < 4; i++)
        tkvd_start(&nodes[i], args);
    wait_keys("/tkv/" NAME "/nodes/", 4);
    free(ctl("create", "--replicas", "1"));
    wait_keys("/tkv/" NAME "/leaders/", 2);
    double deadline = now_s() + 60;
    for (int online = 0; online < 2;) {
        online = 0;
        for (int i = 0; i < 4; i++) {
            bool rep = false, on = false;
            online += role_of(i, &rep, &on) && on;
        }
        cr_assert(now_s() < deadline, "the replicas never came online");
        pause_ms(50);
    }

    pthread_t w;
    cr_assert_eq(pthread_create(&w, NULL, writer, NULL), 0);
    deadline = now_s() + 60;
    while (count_state(atomic_load(&written), W_WAITED) < 300) {
        cr_assert(now_s() < deadline, "the writer never got 300 writes acknowledged");
        pause_ms(20);
    }

    /* Grow: a fifth node, added as the primary of a third shard. */
    tkvd_start(&nodes[4], args);
    wait_keys("/tkv/" NAME "/nodes/", 5);
    char id[64];
    {
        tkv_ctx *c = tkvd_client(&nodes[4]);
        const tkv_stat *st;
        size_t ns;
        cr_assert_eq(tkv_stats(c, &st, &ns), TKV_OK);
        id[0] = '\0';
        for (size_t i = 0; i < ns; i++)
            if (strcmp(st[i].name, "cluster_node_id") == 0)
                snprintf(id, sizeof id, "%s", st[i].str);
        tkv_free(c);
    }
    cr_assert(id[0], "the new node has no cluster_node_id");
    long before_add = atomic_load(&written);
    double t0 = now_s();
    free(ctl("add-node", id, NULL));
    cr_log_info("life: add-node and rebalance took %.2f s under load", now_s() - t0);
    cr_assert_gt(atomic_load(&written), before_add, "no write went on while slots moved");

    tkv_cluster *cl = connect_cluster();
    char addrs[8][32];
    size_t counts[8];
    size_t nsh = shard_slots(addrs, counts, 8);
    cr_assert_eq(nsh, 3, "%zu shards serve slots after add-node", nsh);
    for (size_t i = 0; i < nsh; i++)
        cr_assert(counts[i] >= 16384 / 3 && counts[i] <= 16384 / 3 + 1,
                  "shard of %s holds %zu slots, not an even third", addrs[i], counts[i]);

    /* Lose a primary that has a replica: the one serving k0, unless that
     * is the new shard's (no replica), then any other primary. */
    int victim = -1;
    for (int i = 0; i < 4 && victim < 0; i++) {
        bool rep = true, on = false;
        if (role_of(i, &rep, &on) && !rep)
            victim = i;
    }
    cr_assert_geq(victim, 0);
    char vaddr[32];
    snprintf(vaddr, sizeof vaddr, "127.0.0.1:%u", nodes[victim].port);
    long before_kill = atomic_load(&written);
    double t_kill = now_s();
    tkvd_signal(&nodes[victim], SIGKILL);
    dead = victim;
    /* Writes flow again once the map has a new primary for its slots. */
    deadline = now_s() + 60;
    for (;;) {
        tkv_cluster_refresh(cl);
        nsh = shard_slots(addrs, counts, 8);
        bool gone = true;
        for (size_t i = 0; i < nsh; i++)
            gone = gone && strcmp(addrs[i], vaddr) != 0;
        if (gone && atomic_load(&written) > before_kill + 100)
            break;
        cr_assert(now_s() < deadline, "the killed primary's slots never moved to its replica");
        pause_ms(50);
    }
    cr_log_info(
        "life: the map without the killed primary and 100 more writes %.2f s after the SIGKILL",
        now_s() - t_kill);
    atomic_store(&stop_writer, true);
    pthread_join(w, NULL);
    long n = atomic_load(&written);

    /* Every acknowledged write, at its own timestamp. The killed shard's
     * slots are now its new primary's: a PUT acknowledged there without
     * WAIT may be missing, nothing else. */
    tkv_cluster_free(cl);
    cl = connect_cluster();
    char victim_now[32] = "";
    long waited = 0, put_only = 0, lost_put = 0;
    for (long i = 0; i < n; i++) {
        int st = atomic_load(&wstate[i]);
        if (st != W_WAITED && st != W_PUT)
            continue;
        char key[16], val[24];
        snprintf(key, sizeof key, "k%ld", i % NKEYS);
        snprintf(val, sizeof val, "v%ld", i);
        tkv_version v;
        int rc = tkv_cluster_get(cl, key, strlen(key), (uint64_t)i + 1, &v);
        bool there = rc == TKV_OK && v.ts == (uint64_t)i + 1 && v.len == strlen(val) &&
                     memcmp(v.value, val, v.len) == 0;
        if (st == W_WAITED) {
            cr_assert(there, "write %ld (%s at %ld) was acknowledged by WAIT 1 and is lost", i, key,
                      i + 1);
            waited++;
            continue;
        }
        put_only++;
        if (there)
            continue;
        /* Only on the shard whose primary died. */
        if (!victim_now[0]) {
            bool rep = true, on = false;
            for (int j = 0; j < NNODES && !victim_now[0]; j++)
                if (j != victim && role_of(j, &rep, &on) && !rep &&
                    stat_of(j, "cluster_failovers") >= 1)
                    snprintf(victim_now, sizeof victim_now, "127.0.0.1:%u", nodes[j].port);
        }
        char oaddr[32];
        owner_of(key, oaddr);
        cr_assert_str_eq(oaddr, victim_now,
                         "write %ld (%s at %ld), PUT acknowledged, lost on a shard that lost "
                         "no primary",
                         i, key, i + 1);
        lost_put++;
    }
    cr_log_info("life: %ld writes WAIT acknowledged and %ld only PUT acknowledged checked; %ld "
                "of the latter lost with the killed primary",
                waited, put_only, lost_put);
    tkv_cluster_free(cl);
}
