/*
 * cluster_map.h - builds a cluster's first shard map (tkvctl cluster
 * create): the 16384 hash slots spread evenly over the registered nodes,
 * as the JSON record ARCHITECTURE.md ("The cluster") describes. I/O-free,
 * so the unit tests check the spread and the shape directly.
 */
#ifndef TKV_CLUSTER_MAP_H
#define TKV_CLUSTER_MAP_H

#include <stddef.h>

#define CLUSTER_SLOTS 16384

typedef struct cluster_node {
    const char *id;   /* the node id (its key under /tkv/<name>/nodes/) */
    const char *addr; /* host:port */
} cluster_node;

/* Builds the map for nodes[0..n) with `shards` shards of one primary and
 * `replicas` replicas each (shards 0: as many as the nodes make, n /
 * (replicas + 1)). Nodes are taken in id order, so the same nodes give the
 * same map: shard sK's primary is the (K*(replicas+1))th, its replicas the
 * ones after it. Shard K serves slots [K*16384/S, (K+1)*16384/S - 1]: the
 * counts differ by at most one. Nodes beyond shards*(replicas+1) are
 * listed under "nodes" but serve nothing (spares).
 *
 * Returns the JSON text (NUL-terminated, the caller frees), or NULL with
 * the reason in err: too few nodes for the shards asked, more shards than
 * slots, or no memory. */
char *cluster_map_build(const cluster_node *nodes, size_t n, unsigned shards, unsigned replicas,
                        char *err, size_t errlen);

#endif
