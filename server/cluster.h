/*
 * cluster.h - tkvd's cluster thread: the node's side of the etcd layout
 * ARCHITECTURE.md describes ("The cluster"), under /tkv/<name>/.
 *
 * The thread, never the loop, talks to etcd (etcd.h blocks):
 *  - it grants a lease (--cluster-timeout seconds, TKV_CLUSTER_TTL by
 *    default) and renews it three times a lease period;
 *  - it registers nodes/<node-id> = {"addr": "host:port"} with that lease,
 *    so the key disappears when the node stops renewing it (dies), and
 *    at once when it stops cleanly (the lease is revoked);
 *  - it follows the key map (by polling: etcd.h says why) and hands each
 *    new value, with its mod_revision, to the loop;
 *  - it holds its shard's leader key (leaders/<shard>, with the lease) if
 *    the map makes it the shard's primary, and, as a replica, stands for
 *    the lead when the primary is gone and takes it if it holds the most
 *    (failover.h has the rule), then rewrites the map to say so. The
 *    node's role follows the map, as for any other change of it.
 * If etcd cannot be reached the node goes on serving; the thread retries
 * with a backoff up to TKV_CLUSTER_BACKOFF_MAX seconds and logs once per
 * change (reachable / unreachable), not once per attempt. A lease that
 * expired meanwhile is replaced and the node registered again.
 *
 * The node id is stable across restarts: a file node-id in the data
 * directory, made at the first start (16 random hex digits).
 *
 * Handing over: the thread puts the newest map in a slot under a mutex
 * and wakes the loop (ev_async); the loop takes it and calls the map
 * callback there. Maps the loop has not taken yet are replaced by newer
 * ones: only the newest matters.
 */
#ifndef TKV_CLUSTER_H
#define TKV_CLUSTER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKV_CLUSTER_TTL 5             /* default seconds a node's lease lasts unrenewed */
#define TKV_CLUSTER_SETTLE 1.0        /* seconds candidates are given to stand */
#define TKV_CLUSTER_POLL 0.5          /* seconds between reads of the map */
#define TKV_CLUSTER_BACKOFF_MAX 5.0   /* longest wait between failed attempts */
#define TKV_CLUSTER_HTTP_TIMEOUT 1000 /* ms per etcd endpoint per request */
#define TKV_CLUSTER_NODE_ID_LEN 16

typedef struct tkv_cluster tkv_cluster;

/* Called on the loop with each new map: json (NUL-terminated, valid only
 * during the call) and its etcd mod_revision. */
typedef void (*tkv_cluster_map_fn)(void *ctx, const char *json, uint64_t revision);

typedef struct tkv_cluster_opts {
    const char *endpoints; /* --cluster: comma-separated etcd URLs */
    const char *name;      /* --cluster-name */
    const char *announce;  /* host:port other nodes and clients reach this one at */
    const char *data_dir;  /* where node-id is kept */
    double ttl;            /* the lease's seconds (whole); 0: TKV_CLUSTER_TTL */
    tkv_cluster_map_fn on_map;
    void *ctx;
} tkv_cluster_opts;

/* Reads or makes the node id, then starts the thread (which reaches etcd
 * in its own time: start does not wait for it). Returns NULL with a
 * reason in err if the node id cannot be read or made, or the thread
 * cannot start. The strings in o are copied. */
tkv_cluster *tkv_cluster_start(struct ev_loop *loop, const tkv_cluster_opts *o, char *err,
                               size_t errlen);

/* Stops the thread: revokes the lease (the node key goes at once) if etcd
 * answers within TKV_CLUSTER_HTTP_TIMEOUT per endpoint, then joins and
 * frees. Call on the loop's thread. NULL-safe. */
void tkv_cluster_stop(tkv_cluster *c);

/* The map this node last saw (kept in the data directory as
 * cluster-map.json by the thread), as read at start; NULL if none. The
 * server installs it before the thread's first map arrives, so a node
 * that was a cluster's starts as what the map made it - a primary fenced
 * until it leads again, or a replica - never as a plain server. */
const char *tkv_cluster_saved_map(const tkv_cluster *c);

/* Whether this node holds its shard's lead now: the leader key is its,
 * and its lease has not run out (judged by the clock, so a node cut off
 * from etcd stops leading when its lease ends). Any thread; cheap (a
 * clock read). A primary that does not lead refuses writes (cmd.c). */
bool tkv_cluster_leads(const tkv_cluster *c);

/* The loop tells the thread, now and then, this node's replication offset
 * and whether it may stand for a lead (a replica not in the middle of a
 * full copy, with something received). */
void tkv_cluster_set_repl(tkv_cluster *c, uint64_t offset, bool eligible);

/* The STATS fields (TKV_CLUSTER_NSTATS of them): cluster_name,
 * cluster_node_id, cluster_map_revision (0: no map seen yet),
 * cluster_etcd_ok (1 if the last request to etcd was answered),
 * cluster_leader (1 if this node holds its shard's leader key) and
 * cluster_failovers (take-overs this node won since it started). */
#define TKV_CLUSTER_NSTATS 6
struct tkv_rep_wr;
void tkv_cluster_stats(const tkv_cluster *c, struct tkv_rep_wr *lw);

/* For tests and logs: the node id (NUL-terminated, lives as long as c). */
const char *tkv_cluster_node_id(const tkv_cluster *c);

/* Reads dir/node-id, or makes it with a new random id if it does not
 * exist. id gets TKV_CLUSTER_NODE_ID_LEN + 1 bytes. Returns 0, or -1 with
 * a reason in err. */
int tkv_cluster_load_node_id(const char *dir, char *id, char *err, size_t errlen);

#endif
