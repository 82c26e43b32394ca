/*
 * cluster_load.h - what the cluster tests with a private etcd share: a
 * writer thread going through the cluster client (PUT, then WAIT 1) that
 * records what became of every write, so a test can check each answer it
 * was given after a failover or a migration - the crash test's check,
 * across a cluster - and the small waits on etcd and on nodes' roles.
 */
#ifndef TKV_TEST_CLUSTER_LOAD_H
#define TKV_TEST_CLUSTER_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

double now_s(void);
void pause_ms(int ms);

/* Keys under prefix in etcd at url (SIZE_MAX if etcd does not answer), and
 * a wait of at most 30 s until there are want of them. */
size_t etcd_count(const char *url, const char *prefix);
void etcd_wait_count(const char *url, const char *prefix, size_t want);

/* The node's ROLE: false if it does not answer; *online for a replica
 * whose link is online. */
bool node_role(const tkvd *d, bool *replica, bool *online);
/* A numeric STATS field of the node (asserted to be there). */
uint64_t node_stat(const tkvd *d, const char *name);

/* A cluster handle seeded with the n nodes. */
tkv_cluster *cluster_of(const tkvd *nodes, int n);

/* Starts n nodes (n even) with --cluster etcd_url --cluster-name name
 * --cluster-timeout 2, has tkvctl create the cluster with one replica a
 * shard, and waits until every shard has a leader and every replica is
 * online. The nodes' arguments are kept for tkvd_restart(). */
void cluster_start_pairs(const char *etcd_url, const char *name, tkvd *nodes, int n);

/* ---- the writer ------------------------------------------------------------ */

/* Write i: key k<i % LOAD_KEYS>, value v<i>, at ts i + 1. */
#define LOAD_KEYS 200
#define LOAD_MAX 200000
enum { W_NONE, W_FAILED, W_PUT, W_WAITED };

typedef struct cluster_load {
    const tkvd *nodes;
    int n;
    int wait_ms; /* WAIT 1's timeout: past it a write counts as W_PUT */
    pthread_t thread;
    atomic_bool stop;
    atomic_long written; /* writes tried */
    pthread_mutex_t mu;
    char last_err[256];       /* under mu: the writer's last failure, for messages */
    _Atomic int st[LOAD_MAX]; /* what became of each */
} cluster_load;

/* PUT then WAIT 1 on one node, as a tkv_cluster_call() callback. */
typedef struct put_wait {
    const char *key, *val;
    uint64_t ts;
    int wait_ms;
    bool put_ok;
    uint64_t acked;
} put_wait;
int put_then_wait(tkv_ctx *c, void *arg);

/* Starts the writer through a cluster handle of the n nodes; after an
 * error it refreshes the map and goes on. l is large: make it static. */
void load_start(cluster_load *l, const tkvd *nodes, int n, int wait_ms);
void load_stop(cluster_load *l);
/* The writer's last failure (into buf), for an assertion's message. */
const char *load_last_error(cluster_load *l, char *buf, size_t len);
/* Waits (at most 60 s) until want writes have been WAIT acknowledged. */
void load_wait_acked(cluster_load *l, long want);
/* Writes among the first upto that ended in state. */
long load_count(cluster_load *l, long upto, int state);
/* Whether write i is readable at its own timestamp through cl. */
bool load_readable(tkv_cluster *cl, long i);

#endif
