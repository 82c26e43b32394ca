/*
 * cluster.h - tkv-bench --cluster: the cluster's map, asked of the node
 * -H/-p name (CLUSTER SHARDS, through libtkvclient), turned into what the
 * load generator needs - the primaries to connect to and, for every key of
 * the run, which of them serves it.
 *
 * Each connection is given one node and only ever sends that node's keys
 * (workload.h draws them so), the way a cluster client's per-node
 * connections carry the load: no request is redirected, and a MOVED is an
 * error (the map must not change during a run).
 */
#ifndef TKV_BENCH_CLUSTER_H
#define TKV_BENCH_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

typedef struct bench_node {
    char host[256];
    uint16_t port;
    uint64_t keys; /* keys of the run it serves */
} bench_node;

typedef struct bench_topology {
    bench_node *nodes; /* the primaries, in map order */
    uint32_t n;
    uint16_t *owner; /* per key index: its node */
} bench_topology;

/* Reads the map from cfg->host:cfg->port and assigns every key of the
 * run (cfg->keys from cfg->key_offset). Returns 0, or -1 with the reason
 * in err. */
int bench_cluster_load(const bench_cfg *cfg, bench_topology *t, char *err, size_t errlen);
void bench_cluster_free(bench_topology *t); /* NULL-safe */

#endif
