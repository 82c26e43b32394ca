/*
 * cluster_load.c - implements cluster_load.h.
 */
#include "cluster_load.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"

double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void pause_ms(int ms) { usleep((useconds_t)ms * 1000); }

size_t etcd_count(const char *url, const char *prefix)
{
    char err[256];
    tkv_etcd *e = tkv_etcd_new(url, 500, err, sizeof err);
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

void etcd_wait_count(const char *url, const char *prefix, size_t want)
{
    double deadline = now_s() + 30;
    while (etcd_count(url, prefix) != want) {
        cr_assert(now_s() < deadline, "%zu keys under %s never came", want, prefix);
        pause_ms(50);
    }
}

bool node_role(const tkvd *d, bool *replica, bool *online)
{
    tkv_ctx *c = tkv_connect("127.0.0.1", d->port, 2000);
    tkv_role_info ri;
    bool ok = tkv_err(c) == TKV_EK_NONE && tkv_role(c, &ri) == TKV_OK;
    if (ok) {
        *replica = ri.is_replica;
        *online = ri.is_replica && ri.link && strcmp(ri.link, "online") == 0;
    }
    tkv_free(c);
    return ok;
}

uint64_t node_stat(const tkvd *d, const char *name)
{
    tkv_ctx *c = tkvd_client(d);
    uint64_t v = tkvd_stat(c, name);
    tkv_free(c);
    return v;
}

tkv_cluster *cluster_of(const tkvd *nodes, int n)
{
    char addr[16][32];
    const char *seeds[16];
    cr_assert_leq(n, 16);
    for (int i = 0; i < n; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%u", nodes[i].port);
        seeds[i] = addr[i];
    }
    tkv_cluster *cl = tkv_cluster_connect(seeds, (size_t)n, 3000, NULL);
    cr_assert_not_null(cl);
    return cl;
}

void cluster_start_pairs(const char *etcd_url, const char *name, tkvd *nodes, int n)
{
    /* Static: the harness keeps the pointers for restarts. */
    static char url[128], nm[72];
    static const char *args[] = {"--cluster", url, "--cluster-name", nm, "--cluster-timeout",
                                 "2",         NULL};
    snprintf(url, sizeof url, "%s", etcd_url);
    snprintf(nm, sizeof nm, "%s", name);
    for (int i = 0; i < n; i++)
        tkvd_start(&nodes[i], args);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "/tkv/%s/nodes/", name);
    etcd_wait_count(url, prefix, (size_t)n);
    const char *ctl[] = {getenv("TKVCTL"), "--etcd", url, "--cluster-name", nm, "cluster", "create",
                         "--replicas",     "1",      NULL};
    char *out, *err;
    cr_assert_eq(run_capture(ctl, NULL, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    snprintf(prefix, sizeof prefix, "/tkv/%s/leaders/", name);
    etcd_wait_count(url, prefix, (size_t)n / 2);
    double deadline = now_s() + 60;
    for (int online = 0; online < n / 2;) {
        online = 0;
        for (int i = 0; i < n; i++) {
            bool rep = false, on = false;
            online += node_role(&nodes[i], &rep, &on) && on;
        }
        cr_assert(now_s() < deadline, "the replicas never came online");
        pause_ms(50);
    }
}

int put_then_wait(tkv_ctx *c, void *arg)
{
    put_wait *pw = arg;
    if (tkv_put(c, pw->key, strlen(pw->key), pw->val, strlen(pw->val), pw->ts, NULL) != TKV_OK)
        return TKV_ERR;
    pw->put_ok = true;
    return tkv_wait(c, 1, (uint64_t)pw->wait_ms, &pw->acked);
}

static void *writer(void *arg)
{
    cluster_load *l = arg;
    tkv_cluster *cl = cluster_of(l->nodes, l->n);
    for (long i = 0; i < LOAD_MAX && !atomic_load(&l->stop); i++) {
        char key[16], val[24];
        snprintf(key, sizeof key, "k%ld", i % LOAD_KEYS);
        snprintf(val, sizeof val, "v%ld", i);
        put_wait pw = {key, val, (uint64_t)i + 1, l->wait_ms, false, 0};
        int rc = tkv_cluster_call(cl, key, strlen(key), put_then_wait, &pw);
        atomic_store(&l->st[i], rc == TKV_OK && pw.acked >= 1 ? W_WAITED
                                : pw.put_ok                   ? W_PUT
                                                              : W_FAILED);
        atomic_store(&l->written, i + 1);
        if (rc != TKV_OK) {
            pthread_mutex_lock(&l->mu);
            snprintf(l->last_err, sizeof l->last_err, "write %ld: %s", i, tkv_cluster_errstr(cl));
            pthread_mutex_unlock(&l->mu);
            /* A node gone: ask the others for the map, which changes when
             * the failover is done. */
            tkv_cluster_refresh(cl);
            pause_ms(20);
        }
    }
    tkv_cluster_free(cl);
    return NULL;
}

void load_start(cluster_load *l, const tkvd *nodes, int n, int wait_ms)
{
    l->nodes = nodes;
    l->n = n;
    l->wait_ms = wait_ms;
    atomic_store(&l->stop, false);
    atomic_store(&l->written, 0);
    pthread_mutex_init(&l->mu, NULL);
    l->last_err[0] = '\0';
    for (long i = 0; i < LOAD_MAX; i++)
        atomic_store(&l->st[i], W_NONE);
    cr_assert_eq(pthread_create(&l->thread, NULL, writer, l), 0);
}

void load_stop(cluster_load *l)
{
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
}

const char *load_last_error(cluster_load *l, char *buf, size_t len)
{
    pthread_mutex_lock(&l->mu);
    snprintf(buf, len, "%s", l->last_err[0] ? l->last_err : "none");
    pthread_mutex_unlock(&l->mu);
    return buf;
}

void load_wait_acked(cluster_load *l, long want)
{
    double deadline = now_s() + 60;
    while (load_count(l, atomic_load(&l->written), W_WAITED) < want) {
        cr_assert(now_s() < deadline, "the writer never got %ld writes acknowledged", want);
        pause_ms(20);
    }
}

long load_count(cluster_load *l, long upto, int state)
{
    long n = 0;
    for (long i = 0; i < upto; i++)
        n += atomic_load(&l->st[i]) == state;
    return n;
}

bool load_readable(tkv_cluster *cl, long i)
{
    char key[16], val[24];
    snprintf(key, sizeof key, "k%ld", i % LOAD_KEYS);
    snprintf(val, sizeof val, "v%ld", i);
    tkv_version v;
    int rc = tkv_cluster_get(cl, key, strlen(key), (uint64_t)i + 1, &v);
    return rc == TKV_OK && v.ts == (uint64_t)i + 1 && v.len == strlen(val) &&
           memcmp(v.value, val, v.len) == 0;
}
