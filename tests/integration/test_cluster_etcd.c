/*
 * test_cluster_etcd.c - the cluster's etcd side against a real etcd: a
 * private etcd on free loopback ports in a temporary directory, three tkvd
 * with --cluster, and tkvctl's cluster commands. Nodes register under a
 * lease and see the map tkvctl creates; a node killed with SIGKILL leaves
 * the node list when its lease expires, one stopped with SIGTERM at once;
 * a restarted node comes back under the same id.
 *
 * etcd is required: scripts/setup installs it (etcd-server). Without it
 * this test fails, it does not skip - a cluster test that silently tests
 * nothing would pass CI forever.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
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

#define NAME "itest"
#define NNODES 3

static etcd_proc etcd;
#define etcd_url (etcd.url)
static tkvd nodes[NNODES];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void start_etcd(void) { etcd_start(&etcd); }

static void teardown(void)
{
    for (int i = 0; i < NNODES; i++)
        if (nodes[i].dir)
            tkvd_cleanup(&nodes[i]);
    etcd_stop(&etcd);
}

/* tkvctl --etcd URL --cluster-name NAME cluster SUB [ARG]; returns its exit
 * status, *out its standard output (freed by the caller). */
static int ctl(const char *sub, const char *arg, char **out)
{
    const char *argv[] = {
        getenv("TKVCTL"), "--etcd", etcd_url, "--cluster-name", NAME, "cluster", sub, arg, NULL};
    char *o, *e;
    int rc = run_capture(argv, NULL, &o, &e);
    if (rc != 0)
        fprintf(stderr, "tkvctl cluster %s: %s", sub, e);
    free(e);
    if (out)
        *out = o;
    else
        free(o);
    return rc;
}

static void node_id(const tkvd *d, char id[17])
{
    char path[4200];
    snprintf(path, sizeof path, "%s/node-id", d->dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no node-id in the data directory");
    cr_assert(fgets(id, 17, f) && strlen(id) == 16, "node-id: %s", id);
    fclose(f);
}

static bool listed(const tkvd *d)
{
    char id[17], *out;
    node_id(d, id);
    cr_assert_eq(ctl("nodes", NULL, &out), 0);
    bool yes = strstr(out, id) != NULL;
    free(out);
    return yes;
}

/* Polls `cluster nodes` until d is listed (or not): the seconds it took. */
static double wait_listed(const tkvd *d, bool want, double limit)
{
    double t0 = now_s();
    while (listed(d) != want) {
        cr_assert(now_s() - t0 < limit, "node %s %s the list within %.0f s", d->dir,
                  want ? "did not join" : "did not leave", limit);
        sleep_ms(50);
    }
    return now_s() - t0;
}

static uint64_t stat_of(const tkvd *d, const char *name)
{
    tkv_ctx *c = tkvd_client(d);
    uint64_t v = tkvd_stat(c, name);
    tkv_free(c);
    return v;
}

Test(cluster_etcd, nodes_register_see_the_map_and_leave, .fini = teardown, .timeout = 120)
{
    start_etcd();
    const char *args[] = {"--cluster", etcd_url, "--cluster-name", NAME, NULL};
    /* The third node's list starts with an endpoint nobody listens on: it
     * must go on to the next. */
    char two[160];
    snprintf(two, sizeof two, "http://127.0.0.1:%d,%s", free_port(), etcd_url);
    const char *args2[] = {"--cluster", two, "--cluster-name", NAME, NULL};
    for (int i = 0; i < NNODES; i++)
        tkvd_start(&nodes[i], i == 2 ? args2 : args);
    for (int i = 0; i < NNODES; i++)
        wait_listed(&nodes[i], true, 15);
    for (int i = 0; i < NNODES; i++)
        cr_assert_eq(stat_of(&nodes[i], "cluster_etcd_ok"), 1);

    char *out;
    cr_assert_eq(ctl("nodes", "--json", &out), 0);
    const char head[] = "{\"cluster\":\"" NAME "\",\"nodes\":[{\"id\":";
    cr_assert(strncmp(out, head, sizeof head - 1) == 0, "%s", out);
    for (int i = 0; i < NNODES; i++) {
        char id[17], want[64];
        node_id(&nodes[i], id);
        snprintf(want, sizeof want, "{\"id\":\"%s\",\"addr\":\"127.0.0.1:%u\"}", id, nodes[i].port);
        cr_assert(strstr(out, want), "%s not in %s", want, out);
    }
    free(out);
    cr_assert_eq(ctl("info", NULL, &out), 1, "no map yet: not found");
    free(out);
    cr_assert_eq(ctl("create", NULL, &out), 0);
    cr_assert(strstr(out, "shard s0 slots 0-5460 (5461)"), "%s", out);
    cr_assert(strstr(out, "shard s2 slots 10922-16383 (5462)"), "%s", out);
    cr_assert(strstr(out, "nodes: 3 in the map, 3 alive"), "%s", out);
    free(out);
    cr_assert_neq(ctl("create", NULL, NULL), 0, "a second create is refused");

    /* The map's revision, straight from etcd. */
    char err[256];
    tkv_etcd *e = tkv_etcd_new(etcd_url, 2000, err, sizeof err);
    tkv_etcd_kvs m;
    cr_assert_eq(tkv_etcd_get(e, "/tkv/" NAME "/map", strlen("/tkv/" NAME "/map"), false, &m, err,
                              sizeof err),
                 0, "%s", err);
    cr_assert_eq(m.n, 1);
    uint64_t rev = (uint64_t)m.kv[0].mod_revision;
    tkv_etcd_kvs_free(&m);
    tkv_etcd_free(e);
    for (int i = 0; i < NNODES; i++) {
        double t0 = now_s();
        while (stat_of(&nodes[i], "cluster_map_revision") != rev) {
            cr_assert(now_s() - t0 < 10, "node %d never saw map revision %llu", i,
                      (unsigned long long)rev);
            sleep_ms(50);
        }
    }

    /* SIGKILL: nobody revokes the lease; the key goes when it expires. */
    tkvd_signal(&nodes[0], SIGKILL);
    cr_assert(listed(&nodes[0]), "a killed node stays listed until its lease expires");
    double took = wait_listed(&nodes[0], false, 15);
    cr_assert_gt(took, 2.0, "gone after %.1f s: sooner than any lease could expire", took);
    cr_assert_eq(ctl("info", NULL, &out), 0);
    cr_assert(strstr(out, "not registered"), "%s", out);
    cr_assert(strstr(out, "nodes: 3 in the map, 2 alive"), "%s", out);
    free(out);

    /* SIGTERM: the lease is revoked before tkvd exits. */
    tkvd_stop(&nodes[1]);
    cr_assert_not(listed(&nodes[1]), "a node stopped cleanly leaves the list at once");

    /* Back under the same id (node-id in its data directory). */
    tkvd_restart(&nodes[1]);
    wait_listed(&nodes[1], true, 15);
    cr_assert_eq(ctl("info", NULL, &out), 0);
    cr_assert(strstr(out, "nodes: 3 in the map, 2 alive"), "%s", out);
    free(out);
}

/* etcd.h's calls against the real gateway, one by one. */
Test(cluster_etcd, etcd_client_calls, .fini = teardown, .timeout = 60)
{
    start_etcd();
    char err[256];
    tkv_etcd *e = tkv_etcd_new(etcd_url, 2000, err, sizeof err);
    int64_t rev1, rev2, n;
    cr_assert_eq(tkv_etcd_put(e, "p/a", 3, "1", 1, 0, &rev1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tkv_etcd_put(e, "p/b\xff", 4, "", 0, 0, &rev2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tkv_etcd_put(e, "q", 1, "x", 1, 0, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_gt(rev2, rev1);

    tkv_etcd_kvs kvs;
    cr_assert_eq(tkv_etcd_get(e, "p/", 2, true, &kvs, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kvs.n, 2, "the prefix, not q");
    cr_assert_str_eq(kvs.kv[0].key, "p/a");
    cr_assert_eq(kvs.kv[0].mod_revision, rev1);
    cr_assert_eq(kvs.kv[1].key_len, 4);
    cr_assert_eq(kvs.kv[1].value_len, 0);
    tkv_etcd_kvs_free(&kvs);

    /* Compare-and-swap: create-if-absent, then on mod_revision. */
    bool swapped;
    int64_t rev;
    cr_assert_eq(tkv_etcd_cas(e, "p/a", 3, 0, "2", 1, 0, &swapped, &rev, err, sizeof err), 0);
    cr_assert_not(swapped, "p/a exists");
    cr_assert_eq(tkv_etcd_cas(e, "p/a", 3, rev1 + 100, "2", 1, 0, &swapped, &rev, err, sizeof err),
                 0);
    cr_assert_not(swapped, "wrong revision");
    cr_assert_eq(tkv_etcd_cas(e, "p/a", 3, rev1, "2", 1, 0, &swapped, &rev, err, sizeof err), 0);
    cr_assert(swapped);
    cr_assert_eq(tkv_etcd_get(e, "p/a", 3, false, &kvs, err, sizeof err), 0);
    cr_assert_str_eq(kvs.kv[0].value, "2");
    cr_assert_eq(kvs.kv[0].mod_revision, rev, "the revision cas reported");
    tkv_etcd_kvs_free(&kvs);
    cr_assert_eq(tkv_etcd_cas(e, "new", 3, 0, "v", 1, 0, &swapped, NULL, err, sizeof err), 0);
    cr_assert(swapped, "created");

    cr_assert_eq(tkv_etcd_delete(e, "p/", 2, true, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_eq(tkv_etcd_delete(e, "q", 1, false, &n, err, sizeof err), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(tkv_etcd_get(e, "p/", 2, true, &kvs, err, sizeof err), 0);
    cr_assert_eq(kvs.n, 0);
    tkv_etcd_kvs_free(&kvs);

    /* Leases: a key put with one goes when it is revoked. */
    int64_t id, ttl;
    cr_assert_eq(tkv_etcd_lease_grant(e, 30, &id, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tkv_etcd_put(e, "l", 1, "v", 1, id, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tkv_etcd_get(e, "l", 1, false, &kvs, err, sizeof err), 0);
    cr_assert_eq(kvs.kv[0].lease, id);
    tkv_etcd_kvs_free(&kvs);
    cr_assert_eq(tkv_etcd_lease_keepalive(e, id, &ttl, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ttl, 30);
    cr_assert_eq(tkv_etcd_lease_revoke(e, id, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tkv_etcd_get(e, "l", 1, false, &kvs, err, sizeof err), 0);
    cr_assert_eq(kvs.n, 0, "revoked with its lease");
    tkv_etcd_kvs_free(&kvs);
    int rc = tkv_etcd_lease_keepalive(e, id, &ttl, err, sizeof err);
    cr_assert(rc == TKV_ETCD_ESERVER || (rc == 0 && ttl == 0), "a revoked lease: rc %d", rc);
    cr_assert_eq(tkv_etcd_lease_revoke(e, id, err, sizeof err), TKV_ETCD_ESERVER);
    cr_assert(strstr(err, "lease not found"), "%s", err);
    cr_assert_eq(tkv_etcd_put(e, "l", 1, "v", 1, id, NULL, err, sizeof err), TKV_ETCD_ESERVER,
                 "a put with a lease that is gone");
    tkv_etcd_free(e);
}

/* etcd stops answering for longer than the lease (SIGSTOP), then returns:
 * the node says so once each way, finds its lease expired, and registers
 * again under a new one. */
Test(cluster_etcd, etcd_away_and_back, .fini = teardown, .timeout = 120)
{
    start_etcd();
    const char *args[] = {"--cluster", etcd_url, "--cluster-name", NAME, NULL};
    tkvd_start(&nodes[0], args);
    wait_listed(&nodes[0], true, 15);
    cr_assert_eq(stat_of(&nodes[0], "cluster_etcd_ok"), 1);
    kill(etcd.pid, SIGSTOP);
    double t0 = now_s();
    while (stat_of(&nodes[0], "cluster_etcd_ok") != 0) {
        cr_assert(now_s() - t0 < 10, "the node did not notice etcd was away");
        sleep_ms(100);
    }
    /* Serving goes on meanwhile. */
    tkv_ctx *c = tkvd_client(&nodes[0]);
    uint64_t ts;
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 1, &ts), TKV_OK, "%s", tkv_errstr(c));
    tkv_free(c);
    while (now_s() - t0 < 7) /* past the 5 s lease */
        sleep_ms(100);
    kill(etcd.pid, SIGCONT);
    wait_listed(&nodes[0], true, 20);
    t0 = now_s();
    while (stat_of(&nodes[0], "cluster_etcd_ok") != 1) {
        cr_assert(now_s() - t0 < 10, "the node did not notice etcd was back");
        sleep_ms(100);
    }
    char *log = tkvd_log(&nodes[0]);
    char *away = strstr(log, "etcd unreachable");
    cr_assert_not_null(away, "%s", log);
    cr_assert_null(strstr(away + 1, "etcd unreachable"), "logged once:\n%s", log);
    cr_assert_not_null(strstr(log, "etcd reachable again"), "%s", log);
    cr_assert_not_null(strstr(log, "the lease expired; registering node"), "%s", log);
    free(log);
    /* Still registered a lease period later: the new lease is kept alive. */
    sleep_ms(6000);
    cr_assert(listed(&nodes[0]));
}

/* etcd away: the node serves, reports it, and retries (no etcd started:
 * nothing listens on the URL). */
Test(cluster_etcd, unreachable_etcd_does_not_stop_serving, .fini = teardown, .timeout = 60)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", free_port());
    const char *args[] = {"--cluster", url, NULL};
    tkvd_start(&nodes[0], args);
    tkv_ctx *c = tkvd_client(&nodes[0]);
    uint64_t ts;
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 1, &ts), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkvd_stat(c, "cluster_etcd_ok"), 0);
    cr_assert_eq(tkvd_stat(c, "cluster_map_revision"), 0);
    tkv_free(c);
    sleep_ms(1500); /* several retries */
    char *log = tkvd_log(&nodes[0]);
    char *first = strstr(log, "etcd unreachable");
    cr_assert_not_null(first, "%s", log);
    cr_assert_null(strstr(first + 1, "etcd unreachable"), "logged once, not per retry:\n%s", log);
    free(log);
}
