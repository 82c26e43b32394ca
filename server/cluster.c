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
#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <jansson.h>
#include <unistd.h>

#include "etcd.h"
#include "failover.h"
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
    char *slot_json;             /* a map the loop has not taken yet, or NULL */
    uint64_t slot_rev;           /* its mod_revision */
    bool slot_etcd_ok;           /* the thread's view of etcd, for STATS */
    bool slot_leader;            /* the thread holds its shard's leader key */
    uint64_t slot_failovers;     /* take-overs this node won */
    _Atomic uint64_t lead_until; /* monotonic ns this node leads until; 0: not */
    uint64_t repl_offset;        /* the loop's: this node's replication offset */
    bool repl_eligible;          /* the loop's: a replica in step, who may stand */
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
    char *prefix;   /* /tkv/<name>/ */
    double ttl;     /* the lease's seconds */
    char *map_path; /* <data dir>/cluster-map.json: the last map seen */
    char *saved;    /* its contents at start, or NULL */
    char node_id[TKV_CLUSTER_NODE_ID_LEN + 1];
};

/* The thread's state between steps. */
typedef struct step_state {
    int64_t lease;         /* 0: none */
    bool registered;       /* the node key is put under this lease */
    double next_keepalive; /* monotonic seconds */
    double lease_until;    /* when the lease ends unless renewed (boot-time s) */
    double granted_at;     /* when this lease was granted */
    uint64_t seen_rev;     /* the map revision last handed over */
    char *map;             /* that map's JSON (the thread's copy) */
    char *pending;         /* a new map to hand to the loop at the step's end */
    bool leader;           /* holds leaders/<shard> */
    double elect_since;    /* monotonic seconds the primary was seen gone; 0: not */
    bool standing;         /* a candidacy is published */
    char said[160];        /* the last thing logged about leadership, said once */
    char err[512];         /* why the last step failed */
} step_state;

/* CLOCK_BOOTTIME, not CLOCK_MONOTONIC: it goes on counting while the
 * machine is suspended, as etcd's clock does, so a node that wakes up
 * knows its lease ran out meanwhile (tkv_cluster_leads reads it too). */
static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
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
        /* etcd counts the TTL from when it got the renewal, after this. */
        double sent = now_mono();
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
        } else {
            st->lease_until = sent + (double)ttl;
        }
        st->next_keepalive = now_mono() + c->ttl / 3;
    }
    if (!st->lease) {
        st->registered = false;
        st->leader = false;
        st->standing = false; /* the keys of the old lease went with it */
        double sent = now_mono();
        if (tkv_etcd_lease_grant(c->etcd, (int64_t)c->ttl, &st->lease, st->err, sizeof st->err) < 0)
            return -1;
        st->lease_until = sent + c->ttl;
        st->granted_at = sent;
        st->next_keepalive = now_mono() + c->ttl / 3;
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
        char *copy = strdup(kvs.kv[0].value);
        if (!copy) {
            tkv_etcd_kvs_free(&kvs);
            snprintf(st->err, sizeof st->err, "out of memory");
            return -1;
        }
        free(st->map);
        st->map = copy;
        st->seen_rev = (uint64_t)kvs.kv[0].mod_revision;
        /* Handed to the loop at the end of the step, after lead(): a
         * primary's first map arrives with its lead already taken, so its
         * first writes are not refused for want of it. */
        free(st->pending);
        st->pending = kvs.kv[0].value;
        kvs.kv[0].value = NULL; /* st's now */
    }
    tkv_etcd_kvs_free(&kvs);
    return 0;
}

/* ---- the last map, kept on disk ----------------------------------------- */

/* The last map this node saw, written (temporary name, synced, renamed)
 * by the thread so that a restart begins from it instead of from no map:
 * a node the map made a primary then starts fenced (it leads only once
 * its thread takes the lead), not as a plain server taking writes a
 * failover may already have moved elsewhere. A failure is logged; the
 * node goes on. */
static void save_map(tkv_cluster *c, const char *json)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->map_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(json);
    bool ok = fd >= 0 && write(fd, json, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, c->map_path) != 0) {
        tkv_warn("cluster: cannot keep the map in %s: %s", c->map_path, strerror(errno));
        unlink(tmp);
    }
}

/* Reads the kept map (at start, before the thread runs); NULL if none. */
static char *load_saved(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err || len == 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

const char *tkv_cluster_saved_map(const tkv_cluster *c) { return c->saved; }

/* ---- leadership and failover (failover.h has the rule) ------------------ */

/* What the loop reads to fence writes (tkv_cluster_leads). Leading lasts
 * as long as the lease, not as long as this thread believes: the loop
 * checks the time itself, so a node cut off from etcd stops leading when
 * its lease ends even while this thread waits out a backoff. */
static void tell_lead(tkv_cluster *c, const step_state *st)
{
    /* A margin for the two clocks' rates: 1% of the lease and 50 ms. */
    double until = st->lease_until - c->ttl / 100 - 0.05;
    atomic_store(&c->lead_until, st->leader && until > 0 ? (uint64_t)(until * 1e9) : 0);
}

/* Logs a line about leadership once, not at every step it stays true. */
static void say(step_state *st, bool warn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(step_state *st, bool warn, const char *fmt, ...)
{
    char line[sizeof st->said];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (strcmp(line, st->said) == 0)
        return;
    memcpy(st->said, line, sizeof line);
    if (warn)
        tkv_warn("cluster: %s", line);
    else
        tkv_info("cluster: %s", line);
}

/* The etcd key /tkv/<name>/<a><b><c> in buf. */
static const char *key3(const tkv_cluster *c, char *buf, size_t len, const char *a, const char *b,
                        const char *d)
{
    snprintf(buf, len, "%s%s%s%s", c->prefix, a, b, d);
    return buf;
}

/* The leader key is ours: the map must say so. A compare-and-swap on the
 * map's revision, so an admin's change or another take-over in between
 * is never overwritten (the next step reads the map again and retries). */
static int take_map(tkv_cluster *c, step_state *st, const char *shard)
{
    char *nj = tkv_failover_promote(st->map, strlen(st->map), shard, c->node_id);
    if (!nj) {
        say(st, true, "holding the lead of shard %s, but the map does not list this node in it",
            shard);
        return 0;
    }
    bool swapped = false;
    int64_t rev = 0;
    int rc = tkv_etcd_cas(c->etcd, c->map_key, strlen(c->map_key), (int64_t)st->seen_rev, nj,
                          strlen(nj), 0, &swapped, &rev, st->err, sizeof st->err);
    if (rc < 0 || !swapped) {
        free(nj);
        return rc < 0 ? -1 : 0;
    }
    tkv_info("cluster: node %s is now the primary of shard %s (map revision %lld)", c->node_id,
             shard, (long long)rev);
    free(st->map);
    st->map = nj;
    st->seen_rev = (uint64_t)rev;
    free(st->pending);
    st->pending = strdup(nj); /* handed over at the step's end, as any map */
    return 0;
}

/* Withdraws this node's candidacy, if it stood. */
static void stand_down(tkv_cluster *c, step_state *st, const char *shard)
{
    st->elect_since = 0;
    if (!st->standing)
        return;
    char key[512];
    key3(c, key, sizeof key, "candidates/", shard, "/");
    size_t n = strlen(key);
    snprintf(key + n, sizeof key - n, "%s", c->node_id);
    if (tkv_etcd_delete(c->etcd, key, strlen(key), false, NULL, st->err, sizeof st->err) == 0)
        st->standing = false;
}

/* A replica whose primary is gone: stand, and take the lead if this node
 * is the best candidate once the others have had time to stand. */
static int elect(tkv_cluster *c, step_state *st, const tkv_failover_self *me, const char *lkey)
{
    pthread_mutex_lock(&c->mu);
    uint64_t offset = c->repl_offset;
    bool eligible = c->repl_eligible;
    pthread_mutex_unlock(&c->mu);
    if (!eligible) {
        say(st, true,
            "the primary %s of shard %s is gone, and this replica cannot stand: it is not in "
            "step (offset %llu)",
            me->leader, me->shard, (unsigned long long)offset);
        stand_down(c, st, me->shard); /* a candidacy left up would block the others */
        return 0;
    }
    /* A lease granted less than a lease period ago: every lease may have
     * run out together (etcd away for longer), and the primary may be
     * alive and about to register again - give it that time. */
    if (now_mono() < st->granted_at + c->ttl)
        return 0;
    char ckey[512];
    key3(c, ckey, sizeof ckey, "candidates/", me->shard, "/");
    size_t plen = strlen(ckey);
    if (!st->elect_since) {
        st->elect_since = now_mono();
        tkv_warn("cluster: the primary %s of shard %s is gone; standing for its lead at offset "
                 "%llu",
                 me->leader, me->shard, (unsigned long long)offset);
    }
    /* Put again at every step with the offset as it is now: the ranking
     * reads what each published, this node's own included. */
    {
        char *val = tkv_failover_candidacy(offset);
        snprintf(ckey + plen, sizeof ckey - plen, "%s", c->node_id);
        int rc = val ? tkv_etcd_put(c->etcd, ckey, strlen(ckey), val, strlen(val), st->lease, NULL,
                                    st->err, sizeof st->err)
                     : -1;
        free(val);
        ckey[plen] = '\0';
        if (rc < 0)
            return -1;
        st->standing = true;
    }
    /* The others get time to stand - unless there are none. */
    if (me->nreplicas > 1 && now_mono() < st->elect_since + TKV_CLUSTER_SETTLE)
        return 0;
    tkv_etcd_kvs kvs;
    if (tkv_etcd_get(c->etcd, ckey, plen, true, &kvs, st->err, sizeof st->err) < 0)
        return -1;
    tkv_failover_candidate mine = {c->node_id, offset};
    tkv_failover_candidate *all = calloc(kvs.n ? kvs.n : 1, sizeof *all);
    size_t n = 0;
    for (size_t i = 0; all && i < kvs.n; i++) {
        uint64_t off;
        if (tkv_failover_candidacy_parse(kvs.kv[i].value, kvs.kv[i].value_len, &off) == 0)
            all[n++] = (tkv_failover_candidate){kvs.kv[i].key + plen, off};
    }
    bool best = all && tkv_failover_is_best(&mine, all, n);
    const char *better = NULL;
    for (size_t i = 0; all && !best && i < n && !better; i++)
        if (tkv_failover_is_best(&all[i], all, n))
            better = all[i].node_id;
    if (!best)
        say(st, false, "shard %s: candidate %s holds more (or ties first); waiting for it",
            me->shard, better ? better : "?");
    free(all);
    tkv_etcd_kvs_free(&kvs);
    if (!best)
        return 0;
    bool swapped = false;
    if (tkv_etcd_cas(c->etcd, lkey, strlen(lkey), 0, c->node_id, strlen(c->node_id), st->lease,
                     &swapped, NULL, st->err, sizeof st->err) < 0)
        return -1;
    if (!swapped)
        return 0; /* someone else leads: the map will say who */
    st->leader = true;
    pthread_mutex_lock(&c->mu);
    c->slot_failovers++;
    pthread_mutex_unlock(&c->mu);
    tkv_warn("cluster: node %s takes the lead of shard %s from %s at offset %llu", c->node_id,
             me->shard, me->leader, (unsigned long long)offset);
    stand_down(c, st, me->shard);
    return take_map(c, st, me->shard);
}

/* One step of leadership, after the map is read: the map's primary holds
 * its shard's leader key; a replica whose primary's key and node are both
 * gone runs the election; whoever holds the key makes the map say so. */
static int lead(tkv_cluster *c, step_state *st)
{
    tkv_failover_self me;
    if (!st->map || tkv_failover_locate(st->map, strlen(st->map), c->node_id, &me) < 0 ||
        !me.found) {
        st->leader = false;
        st->elect_since = 0;
        return 0;
    }
    char lkey[512];
    key3(c, lkey, sizeof lkey, "leaders/", me.shard, "");
    tkv_etcd_kvs kvs;
    if (tkv_etcd_get(c->etcd, lkey, strlen(lkey), false, &kvs, st->err, sizeof st->err) < 0)
        return -1;
    char holder[TKV_FAILOVER_ID_MAX + 1] = "";
    if (kvs.n == 1 && kvs.kv[0].value_len <= TKV_FAILOVER_ID_MAX)
        memcpy(holder, kvs.kv[0].value, kvs.kv[0].value_len + 1);
    bool held = kvs.n == 1;
    /* Ours only under the lease this node renews: one taken under a lease
     * it has since given up (renewals refused, a new lease granted) will
     * go when that lease ends, and leading on it meanwhile would outlast
     * it. */
    bool under_ours = held && kvs.kv[0].lease == st->lease;
    tkv_etcd_kvs_free(&kvs);
    int rc = 0;
    if (held && strcmp(holder, c->node_id) == 0 && !under_ours) {
        st->leader = false;
        say(st, true,
            "the lead of shard %s is held under an old lease of this node; waiting for "
            "it to end",
            me.shard);
        return 0;
    }
    if (held && strcmp(holder, c->node_id) == 0) {
        st->leader = true;
        stand_down(c, st, me.shard);
        return me.primary ? 0 : take_map(c, st, me.shard);
    }
    st->leader = false;
    if (held) {
        stand_down(c, st, me.shard);
        if (me.primary)
            say(st, true,
                "shard %s is led by node %s, not by this node the map names; waiting "
                "for the map",
                me.shard, holder);
        return 0;
    }
    if (me.primary) {
        bool swapped = false;
        rc = tkv_etcd_cas(c->etcd, lkey, strlen(lkey), 0, c->node_id, strlen(c->node_id), st->lease,
                          &swapped, NULL, st->err, sizeof st->err);
        if (rc == 0 && swapped) {
            st->leader = true;
            say(st, false, "node %s leads shard %s", c->node_id, me.shard);
        }
        return rc;
    }
    /* A replica, and no one leads: is the primary alive (starting, about
     * to take the key), or gone (its node key expired with its lease)? */
    char nkey[512];
    key3(c, nkey, sizeof nkey, "nodes/", me.leader, "");
    if (tkv_etcd_get(c->etcd, nkey, strlen(nkey), false, &kvs, st->err, sizeof st->err) < 0)
        return -1;
    bool alive = kvs.n == 1;
    tkv_etcd_kvs_free(&kvs);
    if (alive) {
        stand_down(c, st, me.shard);
        return 0;
    }
    return elect(c, st, &me, lkey);
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
    double wait;
    do {
        if (keep_lease(c, &st) == 0 && read_map(c, &st) == 0 && lead(c, &st) == 0) {
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
        pthread_mutex_lock(&c->mu);
        c->slot_leader = st.leader;
        pthread_mutex_unlock(&c->mu);
        tell_lead(c, &st);
        if (st.pending)
            save_map(c, st.pending);
        publish(c, st.pending, st.seen_rev, reachable == 1);
        st.pending = NULL; /* the slot's now */
        /* A backoff never sleeps through a renewal that is due. */
        wait = backoff ? backoff : TKV_CLUSTER_POLL;
        if (st.lease && st.next_keepalive - now_mono() < wait)
            wait = st.next_keepalive - now_mono() > 0.05 ? st.next_keepalive - now_mono() : 0.05;
    } while (!nap(c, wait));
    /* A clean stop: the node key goes now, not a TTL from now. */
    if (st.lease && tkv_etcd_lease_revoke(c->etcd, st.lease, st.err, sizeof st.err) < 0)
        tkv_warn("cluster: could not revoke the lease (the node key expires in %.0f s): %s", c->ttl,
                 st.err);
    free(st.map);
    free(st.pending);
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
    free(c->prefix);
    free(c->map_path);
    free(c->saved);
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
    c->prefix = etcd_key(o->name, "", "");
    if (asprintf(&c->map_path, "%s/cluster-map.json", o->data_dir) < 0)
        c->map_path = NULL;
    c->saved = c->map_path ? load_saved(c->map_path) : NULL;
    c->ttl = o->ttl > 0 ? o->ttl : TKV_CLUSTER_TTL;
    json_t *val = json_pack("{s:s}", "addr", o->announce);
    c->node_val = val ? json_dumps(val, JSON_COMPACT) : NULL;
    json_decref(val);
    if (!c->name || !c->node_key || !c->map_key || !c->prefix || !c->map_path || !c->node_val) {
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

bool tkv_cluster_leads(const tkv_cluster *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return now < atomic_load((_Atomic uint64_t *)&c->lead_until);
}

void tkv_cluster_set_repl(tkv_cluster *c, uint64_t offset, bool eligible)
{
    pthread_mutex_lock(&c->mu);
    c->repl_offset = offset;
    c->repl_eligible = eligible;
    pthread_mutex_unlock(&c->mu);
}

void tkv_cluster_stats(const tkv_cluster *c, struct tkv_rep_wr *lw)
{
    static const char *const names[] = {"cluster_name",         "cluster_node_id",
                                        "cluster_map_revision", "cluster_etcd_ok",
                                        "cluster_leader",       "cluster_failovers"};
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    bool leader = c->slot_leader;
    uint64_t failovers = c->slot_failovers;
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
    tkv_rep_stats_str(lw, names[0], strlen(names[0]), c->name, strlen(c->name));
    tkv_rep_stats_str(lw, names[1], strlen(names[1]), c->node_id, strlen(c->node_id));
    tkv_rep_stats_uint(lw, names[2], strlen(names[2]), c->map_revision);
    tkv_rep_stats_uint(lw, names[3], strlen(names[3]), c->etcd_ok);
    tkv_rep_stats_uint(lw, names[4], strlen(names[4]), leader);
    tkv_rep_stats_uint(lw, names[5], strlen(names[5]), failovers);
}
