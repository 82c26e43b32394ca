/*
 * test_cluster_migrate.c - moving slots between shards while clients use
 * them (ARCHITECTURE.md, "The cluster"): a private etcd, two or three tkvd
 * with --cluster, tkvctl cluster migrate / add-node / remove-node.
 *
 * - a slot moves while a writer thread PUTs and GETs through the cluster
 *   client: every acknowledged PUT is read back, no GET misses a version
 *   acknowledged before it, and the keys end on the target;
 * - a deep key (thousands of versions, a tombstone, expiry times, a
 *   retention policy and horizon) arrives with the same RANGE and POLICY;
 * - the wire: ASK from the source for a key not there, MOVED from the
 *   target without ASKING, ASKING one-shot, TRYAGAIN for a locked key's
 *   writes and for a request the move splits, an abandoned lock released
 *   after its timeout (DROPKEY then refused);
 * - add-node then rebalance leaves every shard within one slot of even,
 *   having moved about a third of the slots (and first finishes a move a
 *   stopped admin left in the map); remove-node gives them back;
 * - with a replica per shard, the imports reach the target's replica and
 *   the drops the source's (DIGEST equal to each primary's).
 *
 * etcd is required (scripts/setup installs etcd-server), as for the other
 * cluster tests.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "etcd.h"
#include "etcd_proc.h"
#include "harness.h"

#define NAME "mig"
#define MAXNODES 4

static etcd_proc etcd;
static tkvd nodes[MAXNODES];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void pause_ms(int ms) { usleep((useconds_t)ms * 1000); }

static void teardown(void)
{
    for (int i = 0; i < MAXNODES; i++)
        if (nodes[i].dir)
            tkvd_cleanup(&nodes[i]);
    etcd_stop(&etcd);
}

static tkv_etcd *etcd_client(void)
{
    char err[256];
    tkv_etcd *e = tkv_etcd_new(etcd.url, 2000, err, sizeof err);
    cr_assert_not_null(e, "%s", err);
    return e;
}

/* Waits until `want` nodes are registered. */
static void wait_registered(size_t want)
{
    tkv_etcd *e = etcd_client();
    char err[256];
    double deadline = now_s() + 30;
    for (;;) {
        tkv_etcd_kvs kvs;
        const char *p = "/tkv/" NAME "/nodes/";
        size_t n = 0;
        if (tkv_etcd_get(e, p, strlen(p), true, &kvs, err, sizeof err) == 0) {
            n = kvs.n;
            tkv_etcd_kvs_free(&kvs);
        }
        if (n == want)
            break;
        cr_assert(now_s() < deadline, "%zu nodes never registered", want);
        pause_ms(50);
    }
    tkv_etcd_free(e);
}

/* The map in etcd, and its revision. */
static json_t *read_map(int64_t *rev)
{
    tkv_etcd *e = etcd_client();
    char err[256];
    tkv_etcd_kvs kvs;
    const char *k = "/tkv/" NAME "/map";
    cr_assert_eq(tkv_etcd_get(e, k, strlen(k), false, &kvs, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kvs.n, 1);
    json_t *m = json_loadb(kvs.kv[0].value, kvs.kv[0].value_len, 0, NULL);
    *rev = kvs.kv[0].mod_revision;
    tkv_etcd_kvs_free(&kvs);
    tkv_etcd_free(e);
    cr_assert_not_null(m);
    return m;
}

/* Waits until nodes [0, n) hold the map at rev or later. */
static void wait_nodes_at(int n, int64_t rev)
{
    for (int i = 0; i < n; i++) {
        tkv_ctx *c = tkvd_client(&nodes[i]);
        const tkv_slot_range *r;
        size_t nr;
        uint64_t got = 0;
        double deadline = now_s() + 15;
        while (tkv_cluster_shards(c, &got, &r, &nr) != TKV_OK || (int64_t)got < rev) {
            cr_assert(now_s() < deadline, "node %d never took map revision %lld", i,
                      (long long)rev);
            pause_ms(20);
        }
        tkv_free(c);
    }
}

static char *run_ctl(const char *const *extra)
{
    const char *argv[16] = {getenv("TKVCTL"), "--etcd", etcd.url, "--cluster-name", NAME};
    int n = 5;
    for (int i = 0; extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_eq(rc, 0, "tkvctl %s failed: %s%s", extra[0], out, err);
    free(err);
    return out;
}

/* etcd, n nodes, and the map of `cluster create` installed on all. */
static void start_cluster_with(int n, const char *replicas)
{
    etcd_start(&etcd);
    const char *args[] = {"--cluster", etcd.url, "--cluster-name", NAME, NULL};
    for (int i = 0; i < n; i++)
        tkvd_start(&nodes[i], args);
    wait_registered((size_t)n);
    free(run_ctl((const char *[]){"cluster", "create", "--replicas", replicas, NULL}));
    int64_t rev;
    json_decref(read_map(&rev));
    wait_nodes_at(n, rev);
}

static void start_cluster(int n) { start_cluster_with(n, "0"); }

static void addr_of(int i, char *out, size_t n) { snprintf(out, n, "127.0.0.1:%u", nodes[i].port); }

/* The node (index) serving slot, by etcd's map. */
static int node_serving(unsigned slot, char *shard_out, size_t shard_n)
{
    int64_t rev;
    json_t *m = read_map(&rev);
    size_t i;
    json_t *r;
    const char *shard = NULL;
    json_array_foreach(json_object_get(m, "slots"), i, r)
    {
        if ((unsigned)json_integer_value(json_array_get(r, 0)) <= slot &&
            slot <= (unsigned)json_integer_value(json_array_get(r, 1)))
            shard = json_string_value(json_array_get(r, 2));
    }
    cr_assert_not_null(shard);
    const char *prim = json_string_value(
        json_object_get(json_object_get(json_object_get(m, "shards"), shard), "primary"));
    const char *addr = json_string_value(json_object_get(json_object_get(m, "nodes"), prim));
    if (shard_out)
        snprintf(shard_out, shard_n, "%s", shard);
    int found = -1;
    for (int k = 0; k < MAXNODES; k++) {
        char a[32];
        addr_of(k, a, sizeof a);
        if (nodes[k].dir && strcmp(a, addr) == 0)
            found = k;
    }
    json_decref(m);
    cr_assert_geq(found, 0, "the map names %s", addr);
    return found;
}

static tkv_cluster *cluster_client(void)
{
    char seed[32];
    addr_of(0, seed, sizeof seed);
    const char *seeds[] = {seed};
    tkv_cluster *cl = tkv_cluster_connect(seeds, 1, 10000, NULL);
    cr_assert_eq(tkv_cluster_err(cl), TKV_EK_NONE, "%s", tkv_cluster_errstr(cl));
    return cl;
}

/* ---- a slot moved under a writer ------------------------------------------ */

#define WKEYS 40
#define WMAX 200000

typedef struct writer {
    atomic_bool stop;
    uint64_t *acked[WKEYS]; /* every acknowledged timestamp, per key */
    size_t nacked[WKEYS];
    uint64_t writes, reads;
    char error[512]; /* the first thing that went wrong */
} writer;

static void wkey(int k, char *out, size_t n) { snprintf(out, n, "{mv}key%d", k); }

static void *writer_main(void *arg)
{
    writer *w = arg;
    tkv_cluster *cl = cluster_client();
    for (uint64_t i = 0; !atomic_load(&w->stop) && i < WMAX && !w->error[0]; i++) {
        int k = (int)(i % WKEYS);
        char key[32], val[32];
        wkey(k, key, sizeof key);
        snprintf(val, sizeof val, "v%llu", (unsigned long long)i);
        uint64_t ts;
        if (tkv_cluster_put_ex(cl, key, strlen(key), val, strlen(val), 0, 0, 0, &ts) != TKV_OK) {
            snprintf(w->error, sizeof w->error, "PUT %s: %s", key, tkv_cluster_errstr(cl));
            break;
        }
        w->acked[k][w->nacked[k]++] = ts;
        w->writes++;
        /* The newest version is the one just acknowledged: only this
         * thread writes the key. */
        int r = (int)((i * 7) % WKEYS);
        wkey(r, key, sizeof key);
        tkv_version v;
        int rc = tkv_cluster_get(cl, key, strlen(key), TKV_LATEST, &v);
        uint64_t want = w->nacked[r] ? w->acked[r][w->nacked[r] - 1] : 0;
        if (rc == TKV_ERR || (want && (rc != TKV_OK || v.ts != want)))
            snprintf(w->error, sizeof w->error, "GET %s: %s (ts %llu, acknowledged %llu)", key,
                     rc == TKV_ERR ? tkv_cluster_errstr(cl) : "not the newest",
                     (unsigned long long)(rc == TKV_OK ? v.ts : 0), (unsigned long long)want);
        w->reads++;
    }
    tkv_cluster_free(cl);
    return NULL;
}

Test(cluster_migrate, a_slot_moves_under_a_writer, .fini = teardown, .timeout = 120)
{
    start_cluster(2);
    unsigned slot = tkv_key_slot("{mv}", 4);
    char from_shard[32], slot_s[16];
    int src = node_serving(slot, from_shard, sizeof from_shard);
    const char *to_shard = strcmp(from_shard, "s0") == 0 ? "s1" : "s0";
    snprintf(slot_s, sizeof slot_s, "%u", slot);

    writer *w = calloc(1, sizeof *w);
    for (int k = 0; k < WKEYS; k++)
        w->acked[k] = calloc(WMAX / WKEYS + 1, sizeof(uint64_t));
    pthread_t th;
    pthread_create(&th, NULL, writer_main, w);
    while (w->writes < 2000 && !w->error[0])
        pause_ms(5);
    char *out = run_ctl((const char *[]){"cluster", "migrate", slot_s, to_shard, NULL});
    uint64_t at_end = w->writes;
    while (w->writes < at_end + 500 && !w->error[0])
        pause_ms(5);
    atomic_store(&w->stop, true);
    pthread_join(th, NULL);
    cr_assert_eq(w->error[0], '\0', "%s (after %llu writes)\n%s", w->error,
                 (unsigned long long)w->writes, out);
    cr_assert(strstr(out, "done: 1 slot on shard"), "%s", out);
    free(out);

    /* The slot is the target's now: the source MOVEs, the target serves. */
    int dst = node_serving(slot, NULL, 0);
    cr_assert_neq(dst, src);
    tkv_ctx *s = tkvd_client(&nodes[src]), *d = tkvd_client(&nodes[dst]);
    tkv_version v;
    cr_assert_eq(tkv_get(s, "{mv}key1", 8, TKV_LATEST, &v), TKV_ERR);
    cr_assert_eq(tkv_server_code(s), TKV_SC_MOVED, "%s", tkv_errstr(s));
    /* Every acknowledged PUT is there, exactly those. */
    for (int k = 0; k < WKEYS; k++) {
        char key[32];
        wkey(k, key, sizeof key);
        const tkv_entry *e;
        size_t n;
        cr_assert_eq(tkv_range(d, key, strlen(key), NULL, &e, &n, NULL), TKV_OK, "%s",
                     tkv_errstr(d));
        cr_assert_eq(n, w->nacked[k], "%s: %zu versions, %zu acknowledged", key, n, w->nacked[k]);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(e[i].ts, w->acked[k][i], "%s: version %zu", key, i);
    }
    tkv_free(s);
    tkv_free(d);
    for (int k = 0; k < WKEYS; k++)
        free(w->acked[k]);
    free(w);
}

/* ---- a deep key arrives identical ------------------------------------------------ */

typedef struct history {
    tkv_entry *e;
    size_t n;
    char *values; /* copies of the values, back to back */
    tkv_policy_info policy;
} history;

typedef struct policy_call {
    const char *key;
    tkv_policy_info *out;
} policy_call;

static int call_policy(tkv_ctx *c, void *arg)
{
    policy_call *p = arg;
    return tkv_policy(c, p->key, strlen(p->key), p->out);
}

static void read_history(tkv_cluster *cl, const char *key, history *h)
{
    const tkv_entry *e;
    size_t n;
    int truncated = 0;
    cr_assert_eq(tkv_cluster_range(cl, key, strlen(key), NULL, &e, &n, &truncated), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
    cr_assert_eq(truncated, 0);
    h->n = n;
    h->e = calloc(n, sizeof *h->e);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += e[i].len;
    h->values = malloc(bytes + 1);
    char *p = h->values;
    for (size_t i = 0; i < n; i++) {
        h->e[i] = e[i];
        if (e[i].value) {
            memcpy(p, e[i].value, e[i].len);
            h->e[i].value = (const uint8_t *)p;
            p += e[i].len;
        }
    }
    policy_call pc = {key, &h->policy};
    cr_assert_eq(tkv_cluster_call(cl, key, strlen(key), call_policy, &pc), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
}

Test(cluster_migrate, a_deep_key_arrives_identical, .fini = teardown, .timeout = 120)
{
    start_cluster(2);
    const char *key = "{deep}history";
    unsigned slot = tkv_key_slot(key, strlen(key));
    char from_shard[32], slot_s[16];
    node_serving(slot, from_shard, sizeof from_shard);
    const char *to_shard = strcmp(from_shard, "s0") == 0 ? "s1" : "s0";
    snprintf(slot_s, sizeof slot_s, "%u", slot);

    tkv_cluster *cl = cluster_client();
    tkv_ctx *c = tkv_cluster_node(cl, key, strlen(key));
    /* 3000 versions, every tenth with an expiry time an hour away, and
     * values of a few hundred bytes so that the export takes pieces by
     * count and by size; then a tombstone, a later version, a policy. */
    char val[400];
    memset(val, 'x', sizeof val);
    for (int i = 1; i <= 3000; i++) {
        int len = snprintf(val, sizeof val, "v%d-", i);
        val[len] = 'x';
        cr_assert_eq(tkv_put_ex(c, key, strlen(key), val, 50 + (size_t)(i % 300), (uint64_t)i * 10,
                                1, i % 10 == 0 ? 3600ull * 1000000 : 0, NULL),
                     TKV_OK, "%s", tkv_errstr(c));
    }
    uint64_t ts;
    cr_assert_eq(tkv_del_at(c, key, strlen(key), 30005, 1, &ts), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_put_ex(c, key, strlen(key), "after", 5, 30010, 1, 0, NULL), TKV_OK);
    cr_assert_eq(tkv_retain(c, key, strlen(key), 2500, 0, 0, NULL), TKV_OK, "%s", tkv_errstr(c));
    /* And a few neighbours in the slot. */
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof k, "{deep}n%d", i);
        cr_assert_eq(tkv_put_ex(c, k, strlen(k), "n", 1, 5, 1, 0, NULL), TKV_OK);
    }
    history before, after;
    read_history(cl, key, &before);
    cr_assert_geq(before.n, 2000);
    cr_assert(before.policy.own && before.policy.horizon > 0);

    char *out = run_ctl((const char *[]){"cluster", "migrate", slot_s, to_shard, NULL});
    cr_assert(strstr(out, "21 keys moved"), "%s", out);
    free(out);

    read_history(cl, key, &after);
    cr_assert_eq(after.n, before.n);
    for (size_t i = 0; i < before.n; i++) {
        cr_assert_eq(after.e[i].ts, before.e[i].ts, "version %zu", i);
        cr_assert_eq(after.e[i].expires, before.e[i].expires, "version %zu", i);
        cr_assert_eq(!after.e[i].value, !before.e[i].value, "version %zu", i);
        cr_assert_eq(after.e[i].len, before.e[i].len, "version %zu", i);
        if (before.e[i].len)
            cr_assert(memcmp(after.e[i].value, before.e[i].value, before.e[i].len) == 0);
    }
    cr_assert_eq(after.policy.versions, before.policy.versions);
    cr_assert_eq(after.policy.age_us, before.policy.age_us);
    cr_assert_eq(after.policy.own, before.policy.own);
    cr_assert_eq(after.policy.horizon, before.policy.horizon);
    /* The tombstone reads as one. */
    tkv_version v;
    cr_assert_eq(tkv_cluster_get(cl, key, strlen(key), 30007, &v), TKV_NOT_FOUND);
    cr_assert_eq(v.miss, TKV_MISS_DELETED);
    free(before.e);
    free(before.values);
    free(after.e);
    free(after.values);
    tkv_cluster_free(cl);
}

/* ---- the wire: ASK, ASKING, TRYAGAIN, an abandoned lock ------------------------------ */

/* Writes the map with slot migrating from its shard to the other. */
static void mark_migrating(unsigned slot, const char *from, const char *to)
{
    int64_t rev;
    json_t *m = read_map(&rev);
    json_object_set_new(m, "migrating",
                        json_pack("[{s:i, s:s, s:s}]", "slot", (int)slot, "from", from, "to", to));
    char *json = json_dumps(m, JSON_COMPACT);
    tkv_etcd *e = etcd_client();
    char err[256];
    bool swapped = false;
    int64_t now;
    const char *k = "/tkv/" NAME "/map";
    cr_assert_eq(
        tkv_etcd_cas(e, k, strlen(k), rev, json, strlen(json), 0, &swapped, &now, err, sizeof err),
        0, "%s", err);
    cr_assert(swapped);
    free(json);
    json_decref(m);
    tkv_etcd_free(e);
    wait_nodes_at(2, now);
}

static void assert_code(tkv_ctx *c, int rc, int code, const char *what)
{
    cr_assert_eq(rc, TKV_ERR, "%s: not refused", what);
    cr_assert_eq(tkv_server_code(c), code, "%s: %s", what, tkv_errstr(c));
}

Test(cluster_migrate, ask_asking_tryagain_and_a_lock_that_expires, .fini = teardown, .timeout = 120)
{
    start_cluster(2);
    unsigned slot = tkv_key_slot("{w}", 3);
    char from_shard[32], want[128], dst_addr[32], src_addr[32];
    int src = node_serving(slot, from_shard, sizeof from_shard), dst = 1 - src;
    addr_of(dst, dst_addr, sizeof dst_addr);
    addr_of(src, src_addr, sizeof src_addr);
    tkv_ctx *s = tkvd_client(&nodes[src]), *d = tkvd_client(&nodes[dst]);
    cr_assert_eq(tkv_put_ex(s, "{w}here", 7, "old", 3, 100, 1, 0, NULL), TKV_OK);
    mark_migrating(slot, from_shard, strcmp(from_shard, "s0") == 0 ? "s1" : "s0");
    char *info = run_ctl((const char *[]){"cluster", "info", NULL});
    snprintf(want, sizeof want, "migrating: 1 slot\n  slot %u from %s to", slot, from_shard);
    cr_assert(strstr(info, want), "%s", info);
    free(info);

    /* The source serves what it holds and ASKs for the rest. */
    tkv_version v;
    cr_assert_eq(tkv_get(s, "{w}here", 7, TKV_LATEST, &v), TKV_OK, "%s", tkv_errstr(s));
    assert_code(s, tkv_get(s, "{w}gone", 7, TKV_LATEST, &v), TKV_SC_ASK, "GET of a key not here");
    snprintf(want, sizeof want, "%u %s", slot, dst_addr);
    cr_assert(strstr(tkv_errstr(s), want), "%s, not %s", tkv_errstr(s), want);
    /* The target MOVEs back without ASKING; ASKING holds for one request. */
    assert_code(d, tkv_get(d, "{w}gone", 7, TKV_LATEST, &v), TKV_SC_MOVED, "target, no ASKING");
    snprintf(want, sizeof want, "%u %s", slot, src_addr);
    cr_assert(strstr(tkv_errstr(d), want), "%s", tkv_errstr(d));
    cr_assert_eq(tkv_asking(d), TKV_OK, "%s", tkv_errstr(d));
    cr_assert_eq(tkv_put_ex(d, "{w}new", 6, "n", 1, 50, 1, 0, NULL), TKV_OK, "%s", tkv_errstr(d));
    assert_code(d, tkv_get(d, "{w}new", 6, TKV_LATEST, &v), TKV_SC_MOVED, "ASKING is one-shot");
    /* The cluster client follows ASK to the target and stays with the
     * source for what it holds. */
    tkv_cluster *cl = cluster_client();
    cr_assert_eq(tkv_cluster_get(cl, "{w}new", 6, TKV_LATEST, &v), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
    cr_assert(v.len == 1 && memcmp(v.value, "n", 1) == 0);
    cr_assert_eq(tkv_cluster_get(cl, "{w}here", 7, TKV_LATEST, &v), TKV_OK);
    cr_assert(v.len == 3 && memcmp(v.value, "old", 3) == 0);
    /* MGET over both: split by the move. */
    tkv_bytes both[] = {{(const uint8_t *)"{w}here", 7}, {(const uint8_t *)"{w}new", 6}};
    const tkv_version *vs;
    assert_code(s, tkv_mget(s, TKV_LATEST, both, 2, &vs), TKV_SC_TRYAGAIN, "a split MGET");
    /* The migration commands only where the map says. */
    const uint8_t *rec;
    size_t len;
    uint64_t cursor;
    int more;
    assert_code(d, tkv_export_key(d, "{w}here", 7, 0, 0, &rec, &len, &cursor, &more),
                TKV_SC_BAD_REQUEST, "EXPORTKEY at the target");
    assert_code(s, tkv_import_key(s, "{w}here", 7, (const uint8_t *)"K", 1, 0, NULL),
                TKV_SC_BAD_REQUEST, "IMPORTKEY at the source");
    assert_code(s, tkv_drop_key(s, "{w}here", 7, NULL), TKV_SC_BUSY, "DROPKEY before EXPORTKEY");

    /* EXPORTKEY locks the key: writes TRYAGAIN, reads served. The admin
     * "dies" after IMPORTKEY: the lock goes after its 10 s, DROPKEY is
     * refused, and the source still answers for the key (the target's
     * copy is stale) - even once a client has removed it there. */
    cr_assert_eq(tkv_export_key(s, "{w}here", 7, 0, 0, &rec, &len, &cursor, &more), TKV_OK, "%s",
                 tkv_errstr(s));
    cr_assert(len > 0 && !more);
    double locked_at = now_s();
    cr_assert_eq(tkv_import_key(d, "{w}here", 7, rec, len, 0, NULL), TKV_OK, "%s", tkv_errstr(d));
    assert_code(s, tkv_put_ex(s, "{w}here", 7, "x", 1, 200, 1, 0, NULL), TKV_SC_TRYAGAIN,
                "PUT of a locked key");
    cr_assert_eq(tkv_get(s, "{w}here", 7, TKV_LATEST, &v), TKV_OK, "%s", tkv_errstr(s));
    while (tkv_put_ex(s, "{w}here", 7, "newer", 5, 200, 1, 0, NULL) != TKV_OK) {
        cr_assert_eq(tkv_server_code(s), TKV_SC_TRYAGAIN, "%s", tkv_errstr(s));
        cr_assert(now_s() < locked_at + 20, "the lock never expired");
        pause_ms(200);
    }
    cr_assert_geq(now_s() - locked_at, 9.0, "the lock went too early");
    assert_code(s, tkv_drop_key(s, "{w}here", 7, NULL), TKV_SC_BUSY, "DROPKEY after the lock");
    uint64_t removed;
    cr_assert_eq(tkv_del(s, "{w}here", 7, &removed), TKV_OK, "%s", tkv_errstr(s));
    cr_assert_eq(tkv_get(s, "{w}here", 7, TKV_LATEST, &v), TKV_NOT_FOUND, "%s", tkv_errstr(s));
    cr_assert_eq(tkv_cluster_get(cl, "{w}here", 7, TKV_LATEST, &v), TKV_NOT_FOUND,
                 "the target's stale copy answered");

    /* The move again, by hand: the export of the removed key is its empty
     * record, which clears the target's copy; then the source ASKs. */
    cr_assert_eq(tkv_export_key(s, "{w}here", 7, 0, 0, &rec, &len, &cursor, &more), TKV_OK);
    cr_assert_gt(len, 0);
    cr_assert_eq(tkv_import_key(d, "{w}here", 7, rec, len, 0, NULL), TKV_OK, "%s", tkv_errstr(d));
    cr_assert_eq(tkv_drop_key(s, "{w}here", 7, NULL), TKV_OK, "%s", tkv_errstr(s));
    assert_code(s, tkv_get(s, "{w}here", 7, TKV_LATEST, &v), TKV_SC_ASK, "a moved key");
    cr_assert_eq(tkv_cluster_get(cl, "{w}here", 7, TKV_LATEST, &v), TKV_NOT_FOUND);
    /* Written again through the cluster: at the target, by ASK. */
    cr_assert_eq(tkv_cluster_put_ex(cl, "{w}here", 7, "again", 5, 300, 1, 0, NULL), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
    cr_assert_eq(tkv_cluster_get(cl, "{w}here", 7, TKV_LATEST, &v), TKV_OK);
    cr_assert(v.len == 5 && memcmp(v.value, "again", 5) == 0 && v.ts == 300);

    /* The admin's command resumes the move the map still shows and ends
     * it: the slot is the target's. */
    char slot_s[16];
    snprintf(slot_s, sizeof slot_s, "%u", slot);
    char *out = run_ctl((const char *[]){"cluster", "migrate", slot_s,
                                         strcmp(from_shard, "s0") == 0 ? "s1" : "s0", NULL});
    cr_assert(strstr(out, "done: 1 slot"), "%s", out);
    free(out);
    cr_assert_eq(node_serving(slot, NULL, 0), dst);
    cr_assert_eq(tkv_cluster_get(cl, "{w}here", 7, TKV_LATEST, &v), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
    cr_assert(v.len == 5 && v.ts == 300);
    cr_assert_eq(tkv_cluster_get(cl, "{w}new", 6, TKV_LATEST, &v), TKV_OK);
    tkv_cluster_free(cl);
    tkv_free(s);
    tkv_free(d);
}

/* ---- add-node, rebalance, remove-node ------------------------------------------------ */

static void count_slots(size_t *per, size_t *nshards, json_t *m)
{
    json_t *shards = json_object_get(m, "shards");
    *nshards = json_object_size(shards);
    const char *id;
    json_t *v;
    size_t k = 0;
    json_object_foreach(shards, id, v)
    {
        per[k] = 0;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(m, "slots"), i, r)
        {
            if (strcmp(json_string_value(json_array_get(r, 2)), id) == 0)
                per[k] += (size_t)(json_integer_value(json_array_get(r, 1)) -
                                   json_integer_value(json_array_get(r, 0)) + 1);
        }
        k++;
    }
    cr_assert_eq(json_array_size(json_object_get(m, "migrating")), 0);
}

/* The registered id of node i. */
static void node_id(int i, char *out, size_t n)
{
    tkv_etcd *e = etcd_client();
    char err[256], a[32];
    addr_of(i, a, sizeof a);
    tkv_etcd_kvs kvs;
    const char *p = "/tkv/" NAME "/nodes/";
    cr_assert_eq(tkv_etcd_get(e, p, strlen(p), true, &kvs, err, sizeof err), 0, "%s", err);
    out[0] = '\0';
    for (size_t k = 0; k < kvs.n; k++)
        if (memmem(kvs.kv[k].value, kvs.kv[k].value_len, a, strlen(a)))
            snprintf(out, n, "%s", kvs.kv[k].key + strlen(p));
    tkv_etcd_kvs_free(&kvs);
    tkv_etcd_free(e);
    cr_assert(out[0], "node %d is not registered", i);
}

Test(cluster_migrate, add_node_rebalances_and_remove_node_gives_back, .fini = teardown,
     .timeout = 150)
{
    start_cluster(2);
    tkv_cluster *cl = cluster_client();
    for (int k = 0; k < 300; k++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", k);
        cr_assert_eq(tkv_cluster_put_ex(cl, key, strlen(key), key, strlen(key), 7, 1, 0, NULL),
                     TKV_OK, "%s", tkv_cluster_errstr(cl));
    }
    const char *args[] = {"--cluster", etcd.url, "--cluster-name", NAME, NULL};
    tkvd_start(&nodes[2], args);
    wait_registered(3);
    /* An admin stopped half-way left a slot migrating: add-node (its
     * rebalance) finishes that move first. */
    char shard[32];
    unsigned r0 = tkv_key_slot("r0", 2);
    node_serving(r0, shard, sizeof shard);
    mark_migrating(r0, shard, strcmp(shard, "s0") == 0 ? "s1" : "s0");
    char id[128];
    node_id(2, id, sizeof id);
    char *out = run_ctl((const char *[]){"cluster", "add-node", id, NULL});
    cr_assert(strstr(out, "finishing a move cut short"), "%s", out);
    cr_assert(strstr(out, "balanced: 3 shards"), "%s", out);
    free(out);
    int64_t rev;
    json_t *m = read_map(&rev);
    size_t per[8], n;
    count_slots(per, &n, m);
    json_decref(m);
    cr_assert_eq(n, 3);
    for (size_t k = 0; k < n; k++)
        cr_assert(per[k] == 5461 || per[k] == 5462, "shard %zu holds %zu slots", k, per[k]);
    wait_nodes_at(3, rev);
    for (int k = 0; k < 300; k++) {
        char key[16];
        tkv_version v;
        snprintf(key, sizeof key, "r%d", k);
        cr_assert_eq(tkv_cluster_get(cl, key, strlen(key), TKV_LATEST, &v), TKV_OK, "%s: %s", key,
                     tkv_cluster_errstr(cl));
        cr_assert(v.len == strlen(key) && memcmp(v.value, key, v.len) == 0 && v.ts == 7);
    }
    /* The new node holds its share of the keys. */
    tkv_ctx *c = tkvd_client(&nodes[2]);
    cr_assert_gt(tkvd_stat(c, "keys"), 50);
    tkv_free(c);

    out = run_ctl((const char *[]){"cluster", "remove-node", id, NULL});
    cr_assert(strstr(out, "removed from the map"), "%s", out);
    free(out);
    m = read_map(&rev);
    count_slots(per, &n, m);
    json_decref(m);
    cr_assert_eq(n, 2);
    cr_assert(per[0] == 8192 && per[1] == 8192, "%zu and %zu slots", per[0], per[1]);
    for (int k = 0; k < 300; k++) {
        char key[16];
        tkv_version v;
        snprintf(key, sizeof key, "r%d", k);
        cr_assert_eq(tkv_cluster_get(cl, key, strlen(key), TKV_LATEST, &v), TKV_OK, "%s: %s", key,
                     tkv_cluster_errstr(cl));
        cr_assert(v.len == strlen(key) && v.ts == 7);
    }
    tkv_cluster_free(cl);
}

/* ---- a move reaches the shards' replicas ----------------------------------------------- */

/* The node (index) that is shard's replica, by etcd's map. */
static int replica_of(const char *shard)
{
    int64_t rev;
    json_t *m = read_map(&rev);
    const char *id = json_string_value(json_array_get(
        json_object_get(json_object_get(json_object_get(m, "shards"), shard), "replicas"), 0));
    cr_assert_not_null(id, "shard %s has no replica", shard);
    const char *addr = json_string_value(json_object_get(json_object_get(m, "nodes"), id));
    int found = -1;
    for (int k = 0; k < MAXNODES; k++) {
        char a[32];
        addr_of(k, a, sizeof a);
        if (nodes[k].dir && strcmp(a, addr) == 0)
            found = k;
    }
    json_decref(m);
    cr_assert_geq(found, 0);
    return found;
}

/* Waits until replica's DIGEST equals primary's; returns the keys hashed. */
static uint64_t wait_same_digest(int primary, int replica)
{
    tkv_ctx *p = tkvd_client(&nodes[primary]), *r = tkvd_client(&nodes[replica]);
    tkv_digest_info a, b;
    double deadline = now_s() + 20;
    for (;;) {
        cr_assert_eq(tkv_digest(p, 1000, 1, &a), TKV_OK, "%s", tkv_errstr(p));
        if (tkv_digest(r, 1000, 1, &b) == TKV_OK &&
            memcmp(a.digest, b.digest, sizeof a.digest) == 0)
            break;
        cr_assert(now_s() < deadline, "replica %d never matched primary %d", replica, primary);
        pause_ms(50);
    }
    tkv_free(p);
    tkv_free(r);
    return a.keys;
}

Test(cluster_migrate, the_shards_replicas_follow_a_move, .fini = teardown, .timeout = 120)
{
    start_cluster_with(4, "1");
    unsigned slot = tkv_key_slot("{rp}", 4);
    char from_shard[32], slot_s[16];
    int src = node_serving(slot, from_shard, sizeof from_shard);
    const char *to_shard = strcmp(from_shard, "s0") == 0 ? "s1" : "s0";
    snprintf(slot_s, sizeof slot_s, "%u", slot);
    tkv_cluster *cl = cluster_client();
    for (int k = 0; k < 30; k++) {
        char key[32];
        snprintf(key, sizeof key, "{rp}k%d", k);
        for (int t = 1; t <= 5; t++)
            cr_assert_eq(
                tkv_cluster_put_ex(cl, key, strlen(key), key, strlen(key), (uint64_t)t, 1, 0, NULL),
                TKV_OK, "%s", tkv_cluster_errstr(cl));
    }
    cr_assert_eq(wait_same_digest(src, replica_of(from_shard)), 30);
    char *out = run_ctl((const char *[]){"cluster", "migrate", slot_s, to_shard, NULL});
    cr_assert(strstr(out, "30 keys moved"), "%s", out);
    free(out);
    int dst = node_serving(slot, NULL, 0);
    /* The imports reached the target's replica, the drops the source's. */
    cr_assert_eq(wait_same_digest(dst, replica_of(to_shard)), 30);
    cr_assert_eq(wait_same_digest(src, replica_of(from_shard)), 0);
    tkv_cluster_free(cl);
}
