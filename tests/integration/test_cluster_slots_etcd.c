/*
 * test_cluster_slots_etcd.c - the data path behind the etcd side, end to
 * end: a private etcd, three tkvd with --cluster, `tkvctl cluster create`
 * writes the map; every node installs it (CLUSTER SHARDS answers it, at
 * etcd's mod_revision), and keys written through the cluster client live
 * on the node the map gives their slot - MOVED, naming it, elsewhere.
 *
 * etcd is required (scripts/setup installs etcd-server): without it this
 * test fails rather than skip, as test_cluster_etcd.c does, whose way of
 * starting etcd this copies.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"
#include "etcd_proc.h"
#include "harness.h"

#define NAME "slots"
#define NNODES 3

static etcd_proc etcd;
#define etcd_url (etcd.url)
static tkvd nodes[NNODES];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void pause_ms(int ms) { usleep((useconds_t)ms * 1000); }

static void start_etcd(void) { etcd_start(&etcd); }

/* Polls etcd for the keys under prefix until there are want of them;
 * returns the last one's mod_revision. */
static int64_t wait_keys(const char *prefix, size_t want)
{
    char err[256];
    tkv_etcd *e = tkv_etcd_new(etcd_url, 500, err, sizeof err);
    cr_assert_not_null(e, "%s", err);
    double deadline = now_s() + 30;
    for (;;) {
        tkv_etcd_kvs kvs;
        if (tkv_etcd_get(e, prefix, strlen(prefix), true, &kvs, err, sizeof err) == 0) {
            size_t n = kvs.n;
            int64_t rev = n ? kvs.kv[n - 1].mod_revision : 0;
            tkv_etcd_kvs_free(&kvs);
            if (n == want) {
                tkv_etcd_free(e);
                return rev;
            }
        }
        cr_assert(now_s() < deadline, "%zu keys under %s never came (%s)", want, prefix, err);
        pause_ms(50);
    }
}

static void teardown(void)
{
    for (int i = 0; i < NNODES; i++)
        if (nodes[i].dir)
            tkvd_cleanup(&nodes[i]);
    etcd_stop(&etcd);
}

/* The node whose address is addr ("127.0.0.1:PORT"). */
static int node_at(const char *addr)
{
    for (int i = 0; i < NNODES; i++) {
        char a[32];
        snprintf(a, sizeof a, "127.0.0.1:%u", nodes[i].port);
        if (strcmp(a, addr) == 0)
            return i;
    }
    cr_assert_fail("the map names %s, no node of ours", addr);
    return -1;
}

Test(cluster_slots_etcd, a_map_from_etcd_routes_every_key, .fini = teardown, .timeout = 120)
{
    start_etcd();
    wait_keys("/tkv/" NAME "/nodes/", 0);
    const char *args[] = {"--cluster", etcd_url, "--cluster-name", NAME, NULL};
    for (int i = 0; i < NNODES; i++)
        tkvd_start(&nodes[i], args);
    wait_keys("/tkv/" NAME "/nodes/", NNODES);
    const char *ctl[] = {getenv("TKVCTL"), "--etcd", etcd_url, "--cluster-name", NAME,
                         "cluster",        "create", NULL};
    char *out, *err;
    cr_assert_eq(run_capture(ctl, NULL, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    uint64_t rev = (uint64_t)wait_keys("/tkv/" NAME "/map", 1);

    /* Each node installs the map: CLUSTER SHARDS answers it, at etcd's
     * revision, with every slot's range naming one of our nodes. */
    int owner_of[TKV_CLUSTER_SLOTS];
    for (int i = 0; i < NNODES; i++) {
        tkv_ctx *c = tkvd_client(&nodes[i]);
        const tkv_slot_range *r;
        size_t n;
        uint64_t got = 0;
        double deadline = now_s() + 15;
        while (tkv_cluster_shards(c, &got, &r, &n) != TKV_OK || got != rev) {
            cr_assert(now_s() < deadline, "node %d has no map at revision %llu: %s", i,
                      (unsigned long long)rev, tkv_errstr(c));
            pause_ms(50);
        }
        for (size_t k = 0; k < n; k++)
            for (unsigned s = r[k].from; s <= r[k].to; s++)
                owner_of[s] = node_at(r[k].primary);
        tkv_free(c);
    }

    char seed[32];
    snprintf(seed, sizeof seed, "127.0.0.1:%u", nodes[1].port);
    const char *seeds[] = {seed};
    tkv_cluster *cl = tkv_cluster_connect(seeds, 1, 10000, NULL);
    cr_assert_eq(tkv_cluster_err(cl), TKV_EK_NONE, "%s", tkv_cluster_errstr(cl));
    cr_assert_eq(tkv_cluster_revision(cl), rev);
    tkv_ctx *plain[NNODES];
    for (int i = 0; i < NNODES; i++)
        plain[i] = tkvd_client(&nodes[i]);
    for (int k = 0; k < 200; k++) {
        char key[16];
        snprintf(key, sizeof key, "e%d", k);
        cr_assert_eq(tkv_cluster_put_ex(cl, key, strlen(key), key, strlen(key), 0, 0, 0, NULL),
                     TKV_OK, "%s", tkv_cluster_errstr(cl));
        int own = owner_of[tkv_key_slot(key, strlen(key))];
        for (int i = 0; i < NNODES; i++) {
            tkv_version v;
            int rc = tkv_get(plain[i], key, strlen(key), TKV_LATEST, &v);
            if (i == own)
                cr_assert_eq(rc, TKV_OK, "%s at its owner: %s", key, tkv_errstr(plain[i]));
            else
                cr_assert(rc == TKV_ERR && tkv_server_code(plain[i]) == TKV_SC_MOVED,
                          "%s answered by node %d, not its owner %d", key, i, own);
        }
    }
    for (int i = 0; i < NNODES; i++)
        tkv_free(plain[i]);
    tkv_cluster_free(cl);
}

/* A shard of a primary and a replica: the map makes the second node a
 * replica of the first (its replication follows the map), it answers
 * MOVED for the shard's keys, and it holds what the primary holds. */
Test(cluster_slots_etcd, a_shards_replica_follows_its_primary, .fini = teardown, .timeout = 120)
{
    start_etcd();
    wait_keys("/tkv/" NAME "/nodes/", 0);
    const char *args[] = {"--cluster", etcd_url, "--cluster-name", NAME, NULL};
    tkvd_start(&nodes[0], args);
    tkvd_start(&nodes[1], args);
    wait_keys("/tkv/" NAME "/nodes/", 2);
    const char *ctl[] = {
        getenv("TKVCTL"), "--etcd", etcd_url, "--cluster-name", NAME, "cluster", "create",
        "--replicas",     "1",      NULL};
    char *out, *err;
    cr_assert_eq(run_capture(ctl, NULL, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    /* Which node the map made the primary: the one that serves. */
    int prim = -1;
    double deadline = now_s() + 30;
    while (prim < 0) {
        for (int i = 0; i < 2 && prim < 0; i++) {
            tkv_ctx *c = tkvd_client(&nodes[i]);
            tkv_role_info ri;
            if (tkv_role(c, &ri) == TKV_OK && ri.role && strcmp(ri.role, "replica") == 0 &&
                ri.link && strcmp(ri.link, "online") == 0)
                prim = 1 - i;
            tkv_free(c);
        }
        cr_assert(now_s() < deadline, "no node became a replica of the other");
        pause_ms(50);
    }
    int rep = 1 - prim;
    tkv_ctx *p = tkvd_client(&nodes[prim]), *r = tkvd_client(&nodes[rep]);
    for (int k = 0; k < 50; k++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", k);
        cr_assert_eq(tkv_put(p, key, strlen(key), "v", 1, 7, NULL), TKV_OK, "%s", tkv_errstr(p));
    }
    tkv_version v;
    cr_assert_eq(tkv_get(r, "r1", 2, TKV_LATEST, &v), TKV_ERR);
    cr_assert_eq(tkv_server_code(r), TKV_SC_MOVED, "%s", tkv_errstr(r));
    tkv_digest_info want, got;
    cr_assert_eq(tkv_digest(p, 1000, 1, &want), TKV_OK);
    deadline = now_s() + 30;
    for (;;) {
        if (tkv_digest(r, 1000, 1, &got) == TKV_OK &&
            memcmp(got.digest, want.digest, sizeof got.digest) == 0)
            break;
        cr_assert(now_s() < deadline, "the replica never held what its primary holds");
        pause_ms(50);
    }
    cr_assert_eq(want.versions, 50);
    tkv_free(p);
    tkv_free(r);
}
