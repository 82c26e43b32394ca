/*
 * cluster.c - implements cluster.h: the cluster thread and its hand-over
 * to the loop.
 *
 * The thread runs one step every TKV_CLUSTER_POLL seconds (or after a
 * backoff when a step failed): get a lease if it has none, renew it when
 * due, register the node key if not yet registered under this lease, and
 * read the map. Every etcd call blocks (at most TKV_CLUSTER_HTTP_TIMEOUT
 * per endpoint), which is why this is a thread: the loop never waits for
 * etcd. The thread owns its etcd handle and its lease; the loop owns what
 * STATS reports; the two meet only in the slot under mu.
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <jansson.h>
#include <unistd.h>

#include "etcd.h"
#include "log.h"
#include "reply.h"

struct tkv_cluster {
    struct ev_loop *loop;
    ev_async wake; /* the thread has put something in the slot */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the thread early: stopping */
    /* Under mu. */
    bool stopping;
    char *slot_json;   /* a map the loop has not taken yet, or NULL */
    uint64_t slot_rev; /* its mod_revision */
    bool slot_etcd_ok; /* the thread's view of etcd, for STATS */
    /* The loop's own. */
    uint64_t map_revision; /* of the last map handed to on_map; 0: none */
    bool etcd_ok;
    tkv_cluster_map_fn on_map;
    void *ctx;
    /* The thread's own (read-only once started). */
    tkv_etcd *etcd;
    char *name;
    char *node_key; /* /tkv/<name>/nodes/<node-id> */
    char *node_val; /* {"addr":"host:port"} */
    char *map_key;  /* /tkv/<name>/map */
    char node_id[TKV_CLUSTER_NODE_ID_LEN + 1];
};

/* The thread's state between steps. */
typedef struct step_state {
    int64_t lease;         /* 0: none */
    bool registered;       /* the node key is put under this lease */
    double next_keepalive; /* monotonic seconds */
    uint64_t seen_rev;     /* the map revision last handed over */
    char err[512];         /* why the last step failed */
} step_state;

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the node id -------------------------------------------------------- */

static bool valid_id(const char *s)
{
    for (int i = 0; i < TKV_CLUSTER_NODE_ID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[TKV_CLUSTER_NODE_ID_LEN] == '\0' || s[TKV_CLUSTER_NODE_ID_LEN] == '\n';
}

/* Written to a temporary name, synced and renamed: a crash leaves either
 * no file (a new id next time, as if never started) or the whole id. */
static int make_id(const char *path, char *id, char *err, size_t errlen)
{
    unsigned char r[TKV_CLUSTER_NODE_ID_LEN / 2];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        snprintf(err, errlen, "no randomness for a node id: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(id + 2 * i, 3, "%02x", r[i]);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && dprintf(fd, "%s\n", id) == TKV_CLUSTER_NODE_ID_LEN + 1 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int tkv_cluster_load_node_id(const char *dir, char *id, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/node-id", dir);
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            return -1;
        }
        return make_id(path, id, err, errlen);
    }
    char buf[64] = {0};
    bool ok = fgets(buf, sizeof buf, f) && valid_id(buf);
    fclose(f);
    if (!ok) {
        snprintf(err, errlen, "%s does not hold a node id (%d hex digits)", path,
                 TKV_CLUSTER_NODE_ID_LEN);
        return -1;
    }
    memcpy(id, buf, TKV_CLUSTER_NODE_ID_LEN);
    id[TKV_CLUSTER_NODE_ID_LEN] = '\0';
    return 0;
}

/* ---- the thread ------------------------------------------------------------ */

static void publish(tkv_cluster *c, char *json, uint64_t rev, bool etcd_ok)
{
    pthread_mutex_lock(&c->mu);
    if (json) {
        free(c->slot_json); /* not taken yet: the newer map replaces it */
        c->slot_json = json;
        c->slot_rev = rev;
    }
    bool changed = json || c->slot_etcd_ok != etcd_ok;
    c->slot_etcd_ok = etcd_ok;
    pthread_mutex_unlock(&c->mu);
    if (changed)
        ev_async_send(c->loop, &c->wake);
}

static int keep_lease(tkv_cluster *c, step_state *st)
{
    if (st->lease && now_mono() >= st->next_keepalive) {
        int64_t ttl = 0;
        int rc = tkv_etcd_lease_keepalive(c->etcd, st->lease, &ttl, st->err, sizeof st->err);
        /* etcd answers an expired lease either with TTL 0 or, when it
         * has just revoked it, "lease not found": either way it is gone,
         * and only a new one helps. Unreachable is different: the lease
         * may still be alive. */
        if (rc < 0 && rc != TKV_ETCD_ESERVER)
            return -1;
        if (rc < 0 || ttl <= 0) {
            /* Unrenewed for longer than its TTL (etcd away, a stopped
             * process): the node key went with it. */
            tkv_warn("cluster: the lease expired; registering node %s again", c->node_id);
            st->lease = 0;
        }
        st->next_keepalive = now_mono() + TKV_CLUSTER_KEEPALIVE;
    }
    if (!st->lease) {
        st->registered = false;
        if (tkv_etcd_lease_grant(c->etcd, TKV_CLUSTER_TTL, &st->lease, st->err, sizeof st->err) < 0)
            return -1;
        st->next_keepalive = now_mono() + TKV_CLUSTER_KEEPALIVE;
    }
    if (!st->registered) {
        if (tkv_etcd_put(c->etcd, c->node_key, strlen(c->node_key), c->node_val,
                         strlen(c->node_val), st->lease, NULL, st->err, sizeof st->err) < 0)
            return -1;
        st->registered = true;
        tkv_info("cluster: node %s registered in cluster %s as %s", c->node_id, c->name,
                 c->node_val);
    }
    return 0;
}

static int read_map(tkv_cluster *c, step_state *st)
{
    tkv_etcd_kvs kvs;
    if (tkv_etcd_get(c->etcd, c->map_key, strlen(c->map_key), false, &kvs, st->err,
                     sizeof st->err) < 0)
        return -1;
    if (kvs.n == 1 && (uint64_t)kvs.kv[0].mod_revision != st->seen_rev) {
        st->seen_rev = (uint64_t)kvs.kv[0].mod_revision;
        publish(c, kvs.kv[0].value, st->seen_rev, true);
        kvs.kv[0].value = NULL; /* the slot's now */
    }
    tkv_etcd_kvs_free(&kvs);
    return 0;
}

/* Sleeps until `seconds` have passed or the server stops. Returns whether
 * it is stopping. */
static bool nap(tkv_cluster *c, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long ns = (long)((seconds - (double)(long)seconds) * 1e9) + until.tv_nsec;
    until.tv_sec += (time_t)seconds + ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping && pthread_cond_timedwait(&c->cv, &c->mu, &until) != ETIMEDOUT)
        ;
    bool stopping = c->stopping;
    pthread_mutex_unlock(&c->mu);
    return stopping;
}

static void *cluster_main(void *arg)
{
    tkv_cluster *c = arg;
    step_state st = {0};
    int reachable = -1; /* -1: not yet known, so the first answer or failure is logged */
    double backoff = 0;
    do {
        if (keep_lease(c, &st) == 0 && read_map(c, &st) == 0) {
            if (reachable == 0)
                tkv_info("cluster: etcd reachable again (%s)", tkv_etcd_endpoint(c->etcd));
            reachable = 1;
            backoff = 0;
        } else {
            if (reachable != 0)
                tkv_warn("cluster: etcd unreachable or failing, serving on and retrying: %s",
                         st.err);
            reachable = 0;
            backoff = backoff ? backoff * 2 : 0.25;
            if (backoff > TKV_CLUSTER_BACKOFF_MAX)
                backoff = TKV_CLUSTER_BACKOFF_MAX;
        }
        publish(c, NULL, 0, reachable == 1);
    } while (!nap(c, backoff ? backoff : TKV_CLUSTER_POLL));
    /* A clean stop: the node key goes now, not a TTL from now. */
    if (st.lease && tkv_etcd_lease_revoke(c->etcd, st.lease, st.err, sizeof st.err) < 0)
        tkv_warn("cluster: could not revoke the lease (the node key expires in %d s): %s",
                 TKV_CLUSTER_TTL, st.err);
    return NULL;
}

/* ---- the loop's side ------------------------------------------------------- */

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    tkv_cluster *c = w->data;
    pthread_mutex_lock(&c->mu);
    char *json = c->slot_json;
    uint64_t rev = c->slot_rev;
    c->slot_json = NULL;
    c->etcd_ok = c->slot_etcd_ok;
    pthread_mutex_unlock(&c->mu);
    if (!json)
        return;
    c->map_revision = rev;
    c->on_map(c->ctx, json, rev);
    free(json);
}

static void cluster_free(tkv_cluster *c)
{
    tkv_etcd_free(c->etcd);
    free(c->name);
    free(c->node_key);
    free(c->node_val);
    free(c->map_key);
    free(c->slot_json);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* /tkv/<name>/<what><id>. */
static char *etcd_key(const char *name, const char *what, const char *id)
{
    char *s = NULL;
    return asprintf(&s, "/tkv/%s/%s%s", name, what, id) < 0 ? NULL : s;
}

tkv_cluster *tkv_cluster_start(struct ev_loop *loop, const tkv_cluster_opts *o, char *err,
                               size_t errlen)
{
    tkv_cluster *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);
    c->loop = loop;
    c->on_map = o->on_map;
    c->ctx = o->ctx;
    if (tkv_cluster_load_node_id(o->data_dir, c->node_id, err, errlen) < 0 ||
        !(c->etcd = tkv_etcd_new(o->endpoints, TKV_CLUSTER_HTTP_TIMEOUT, err, errlen)))
        goto fail;
    c->name = strdup(o->name);
    c->node_key = etcd_key(o->name, "nodes/", c->node_id);
    c->map_key = etcd_key(o->name, "map", "");
    json_t *val = json_pack("{s:s}", "addr", o->announce);
    c->node_val = val ? json_dumps(val, JSON_COMPACT) : NULL;
    json_decref(val);
    if (!c->name || !c->node_key || !c->map_key || !c->node_val) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Before the thread starts, so the log reads in order. */
    tkv_info("cluster: node %s joins cluster %s at %s through etcd %s", c->node_id, c->name,
             o->announce, o->endpoints);
    ev_async_init(&c->wake, on_wake);
    c->wake.data = c;
    ev_async_start(loop, &c->wake);
    int rc = pthread_create(&c->thread, NULL, cluster_main, c);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the cluster thread: %s", strerror(rc));
        ev_async_stop(loop, &c->wake);
        goto fail;
    }
    c->started = true;
    return c;
fail:
    cluster_free(c);
    return NULL;
}

void tkv_cluster_stop(tkv_cluster *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->started)
        pthread_join(c->thread, NULL);
    ev_async_stop(c->loop, &c->wake);
    cluster_free(c);
}

const char *tkv_cluster_node_id(const tkv_cluster *c) { return c->node_id; }

void tkv_cluster_stats(const tkv_cluster *c, struct tkv_rep_wr *lw)
{
    static const char *const names[] = {"cluster_name", "cluster_node_id", "cluster_map_revision",
                                        "cluster_etcd_ok"};
    tkv_rep_stats_str(lw, names[0], strlen(names[0]), c->name, strlen(c->name));
    tkv_rep_stats_str(lw, names[1], strlen(names[1]), c->node_id, strlen(c->node_id));
    tkv_rep_stats_uint(lw, names[2], strlen(names[2]), c->map_revision);
    tkv_rep_stats_uint(lw, names[3], strlen(names[3]), c->etcd_ok);
}
