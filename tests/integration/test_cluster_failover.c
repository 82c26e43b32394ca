/*
 * test_cluster_failover.c - automatic failover end to end: a private etcd,
 * four tkvd with --cluster (two shards of a primary and a replica), a
 * writer going through the cluster client with PUT then WAIT 1, and one
 * primary killed with SIGKILL under that load. Its replica must take the
 * lead through etcd and the map, writes to the shard must flow again, every
 * write WAIT acknowledged must be readable afterwards, and the old
 * primary, restarted, must rejoin as a replica of the new one and hold
 * what it holds.
 *
 * Leases here last 2 s (--cluster-timeout), the shortest etcd grants, so
 * the test waits seconds, not tens of them. etcd is required (scripts/setup
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
#include "cluster_load.h"
#include "harness.h"

#define NAME "fo"
#define NNODES 4
/* WAIT 1's timeout: after the failover the shard has no replica, and WAIT
 * waits out its timeout there (a write then counts as acknowledged by PUT
 * alone) - short, so the writer keeps a pace. */
#define WAIT_MS 300

static etcd_proc etcd;
static tkvd nodes[NNODES];

static cluster_load load;

static void teardown(void)
{
    for (int i = 0; i < NNODES; i++)
        if (nodes[i].dir)
            tkvd_cleanup(&nodes[i]);
    etcd_stop(&etcd);
}

/* ---- the test ----------------------------------------------------------------- */

Test(cluster_failover, a_killed_primary_is_replaced_and_loses_no_waited_write, .fini = teardown,
     .timeout = 240)
{
    etcd_start(&etcd);
    cluster_start_pairs(etcd.url, NAME, nodes, NNODES);
    load_start(&load, nodes, NNODES, WAIT_MS);
    load_wait_acked(&load, 300);
    double deadline;
    char *out, *err;

    /* The victim: the primary of the shard that serves k0. */
    tkv_cluster *cl = cluster_of(nodes, NNODES);
    tkv_ctx *owner = tkv_cluster_node(cl, "k0", 2);
    cr_assert_not_null(owner);
    tkv_role_info ri;
    cr_assert_eq(tkv_role(owner, &ri), TKV_OK);
    cr_assert(!ri.is_replica);
    int victim = -1;
    uint64_t vport = 0;
    {
        /* The one of ours answering ROLE as that primary: ask each. */
        for (int i = 0; i < NNODES && victim < 0; i++) {
            tkv_ctx *c = tkvd_client(&nodes[i]);
            tkv_role_info r2;
            if (tkv_role(c, &r2) == TKV_OK && !r2.is_replica && strcmp(r2.replid, ri.replid) == 0)
                victim = i;
            tkv_free(c);
        }
    }
    cr_assert_geq(victim, 0);
    vport = nodes[victim].port;
    long before = atomic_load(&load.written);
    double t_kill = now_s();
    tkvd_signal(&nodes[victim], SIGKILL);

    /* Writes to k0's shard flow again: through a cluster client that
     * refreshes its map until the shard has a new primary. */
    deadline = now_s() + 60;
    double t_flow = 0;
    for (;;) {
        put_wait pw = {"k0", "after", (uint64_t)LOAD_MAX + 10, WAIT_MS, false, 0};
        if (tkv_cluster_call(cl, "k0", 2, put_then_wait, &pw) == TKV_OK || pw.put_ok) {
            t_flow = now_s();
            break;
        }
        cr_assert(now_s() < deadline, "no write to the killed primary's shard after 60 s: %s",
                  tkv_cluster_errstr(cl));
        tkv_cluster_refresh(cl);
        pause_ms(50);
    }
    cr_log_info("failover: writes flowed again %.2f s after the SIGKILL (lease 2 s)",
                t_flow - t_kill);
    /* Some more writes after the failover, then stop. */
    deadline = now_s() + 60;
    while (atomic_load(&load.written) < before + 200) {
        char why[256];
        cr_assert(now_s() < deadline,
                  "the writer stalled after the failover: %ld writes, %ld after the kill, %ld of "
                  "them failed, %ld without WAIT's acknowledgement; last failure: %s",
                  atomic_load(&load.written), atomic_load(&load.written) - before,
                  load_count(&load, atomic_load(&load.written), W_FAILED) -
                      load_count(&load, before, W_FAILED),
                  load_count(&load, atomic_load(&load.written), W_PUT) -
                      load_count(&load, before, W_PUT),
                  load_last_error(&load, why, sizeof why));
        pause_ms(20);
    }
    load_stop(&load);
    long n = atomic_load(&load.written);
    cr_log_info("failover: %ld writes after the kill in %.2f s, %ld without WAIT's acknowledgement",
                n - before, now_s() - t_kill,
                load_count(&load, n, W_PUT) - load_count(&load, before, W_PUT));

    /* The new primary: the victim's replica, now leading, with a take-over
     * counted. */
    int promoted = -1;
    for (int i = 0; i < NNODES; i++)
        if (i != victim && node_stat(&nodes[i], "cluster_failovers") >= 1)
            promoted = i;
    cr_assert_geq(promoted, 0, "no node counts a failover");
    cr_assert_eq(node_stat(&nodes[promoted], "cluster_leader"), 1);
    /* tkvctl cluster info names a leader for every shard again. */
    const char *info[] = {getenv("TKVCTL"), "--etcd", etcd.url, "--cluster-name", NAME,
                          "cluster",        "info",   NULL};
    cr_assert_eq(run_capture(info, NULL, &out, &err), 0, "%s", err);
    cr_assert_null(strstr(out, "none ("), "a shard without a leader:\n%s", out);
    cr_assert_eq(etcd_count(etcd.url, "/tkv/" NAME "/leaders/"), 2);
    free(out);
    free(err);

    /* Every write WAIT acknowledged is there, at its own timestamp. */
    tkv_cluster_free(cl);
    cl = cluster_of(nodes, NNODES);
    long waited = 0, lost_put = 0;
    for (long i = 0; i < n; i++) {
        int st = atomic_load(&load.st[i]);
        if (st != W_WAITED && st != W_PUT)
            continue;
        char key[16];
        snprintf(key, sizeof key, "k%ld", i % LOAD_KEYS);
        bool there = load_readable(cl, i);
        if (st == W_WAITED) {
            cr_assert(there, "write %ld (%s at %ld) was acknowledged by WAIT 1 and is lost", i, key,
                      i + 1);
            waited++;
        } else if (!there) {
            lost_put++; /* allowed: acknowledged without WAIT, on the dead primary */
        }
    }
    cr_log_info("failover: %ld writes checked (WAIT acknowledged), %ld PUT-only lost", waited,
                lost_put);

    /* The old primary comes back as a replica of the new one and converges. */
    tkvd_restart(&nodes[victim]);
    cr_assert_eq(nodes[victim].port, vport);
    /* From its first moment it takes no write of its shard's: it starts
     * from the map it last saw, as a primary that does not lead
     * (TRYAGAIN), and the new map makes it a replica (MOVED, READONLY). */
    {
        tkv_ctx *old = tkvd_client(&nodes[victim]);
        int rc = tkv_put(old, "k0", 2, "stale", 5, (uint64_t)LOAD_MAX + 20, NULL);
        cr_assert_eq(rc, TKV_ERR, "the restarted old primary took a write");
        int code = tkv_server_code(old);
        cr_assert(code == TKV_SC_TRYAGAIN || code == TKV_SC_MOVED || code == TKV_SC_READONLY, "%s",
                  tkv_errstr(old));
        tkv_free(old);
    }
    deadline = now_s() + 60;
    for (;;) {
        bool rep = false, on = false;
        if (node_role(&nodes[victim], &rep, &on) && on)
            break;
        cr_assert(now_s() < deadline, "the old primary never rejoined as a replica");
        pause_ms(50);
    }
    tkv_ctx *p = tkvd_client(&nodes[promoted]), *r = tkvd_client(&nodes[victim]);
    tkv_digest_info want, got;
    deadline = now_s() + 60;
    for (;;) {
        cr_assert_eq(tkv_digest(p, LOAD_MAX + 100, 1, &want), TKV_OK, "%s", tkv_errstr(p));
        if (tkv_digest(r, LOAD_MAX + 100, 1, &got) == TKV_OK &&
            memcmp(got.digest, want.digest, sizeof got.digest) == 0)
            break;
        cr_assert(now_s() < deadline, "the rejoined node never held what its primary holds");
        pause_ms(100);
    }
    tkv_free(p);
    tkv_free(r);
    tkv_cluster_free(cl);
}

/* A primary cut off from etcd (etcd stopped with SIGSTOP) stops taking
 * writes once its lease has run out - before any replica could take over,
 * which needs the lease gone in etcd too - and still serves reads; when
 * etcd is back, writes flow again through the cluster client (to it, or to
 * its replica if that took over meanwhile). */
Test(cluster_failover, a_primary_cut_off_from_etcd_stops_taking_writes, .fini = teardown,
     .timeout = 180)
{
    etcd_start(&etcd);
    cluster_start_pairs(etcd.url, NAME, nodes, 2);
    bool rep = true, on = false;
    int prim = node_role(&nodes[0], &rep, &on) && !rep ? 0 : 1;
    double deadline;
    tkv_ctx *p = tkvd_client(&nodes[prim]);
    deadline = now_s() + 30;
    while (tkv_put(p, "k", 1, "v1", 2, 1, NULL) != TKV_OK) {
        cr_assert(now_s() < deadline, "the primary never took a write: %s", tkv_errstr(p));
        pause_ms(50);
    }
    cr_assert_eq(tkvd_stat(p, "cluster_leader"), 1);

    kill(etcd.pid, SIGSTOP);
    double t0 = now_s();
    uint64_t ts = 2;
    for (;;) {
        int rc = tkv_put(p, "k", 1, "v", 1, ts++, NULL);
        if (rc == TKV_ERR && tkv_server_code(p) == TKV_SC_TRYAGAIN)
            break;
        cr_assert_eq(rc, TKV_OK, "%s", tkv_errstr(p));
        cr_assert(now_s() - t0 < 15, "writes still taken %.1f s after etcd stopped (lease 2 s)",
                  now_s() - t0);
        pause_ms(20);
    }
    double fenced = now_s() - t0;
    cr_log_info("fencing: writes refused %.2f s after etcd stopped (lease 2 s)", fenced);
    cr_assert_lt(fenced, 4.0, "the lease is 2 s, renewed every 2/3 s");
    tkv_version v;
    cr_assert_eq(tkv_get(p, "k", 1, 1, &v), TKV_OK, "reads go on: %s", tkv_errstr(p));
    cr_assert_eq(v.len, 2);
    tkv_free(p);

    kill(etcd.pid, SIGCONT);
    tkv_cluster *cl = cluster_of(nodes, 2);
    deadline = now_s() + 60;
    for (;;) {
        put_wait pw = {"k", "back", 1000, WAIT_MS, false, 0};
        if (tkv_cluster_call(cl, "k", 1, put_then_wait, &pw) == TKV_OK || pw.put_ok)
            break;
        cr_assert(now_s() < deadline, "writes never flowed again after etcd came back: %s",
                  tkv_cluster_errstr(cl));
        tkv_cluster_refresh(cl);
        pause_ms(50);
    }
    tkv_cluster_free(cl);
}
