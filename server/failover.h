/*
 * failover.h - the decisions of a shard's automatic failover, without I/O:
 * what the map says of this node, who among a dead primary's replicas
 * should take over, and the map that records the take-over. The cluster
 * thread (cluster.c) does the talking to etcd around them; ARCHITECTURE.md
 * ("The cluster", failover) gives the whole sequence.
 *
 * The rule they implement, as Redis Cluster ranks replicas by offset:
 *  - a shard's leader is whoever holds the etcd key leaders/<shard>, put
 *    with that node's lease, so it goes when the node dies;
 *  - when it is gone and so is the primary's node key, each replica that
 *    is in step (not in the middle of a full copy) publishes its
 *    replication offset as a candidate (again with its lease);
 *  - after a settle time, the candidate with the highest offset (ties: the
 *    smallest node id) - and only it - creates the leader key, then
 *    rewrites the map so that it is the primary and the old primary one
 *    of its replicas (so a returning old primary rejoins as a replica).
 * A candidate that is not the best never takes over while the best one's
 * candidacy is alive: a write acknowledged with WAIT 1 is on at least one
 * replica, and the best offset is at least that replica's.
 */
#ifndef TKV_FAILOVER_H
#define TKV_FAILOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKV_FAILOVER_ID_MAX 64

/* This node's place in a map. */
typedef struct tkv_failover_self {
    bool found;                           /* the node is in a shard */
    bool primary;                         /* it is that shard's primary */
    char shard[TKV_FAILOVER_ID_MAX + 1];  /* the shard's id */
    char leader[TKV_FAILOVER_ID_MAX + 1]; /* the shard's primary's node id */
    unsigned nreplicas;                   /* how many replicas the shard has */
} tkv_failover_self;

/* Reads the map's "shards" (the JSON of shardmap.h) for node_id. Returns 0
 * (self->found false if the node is in no shard), or -1 for JSON that is
 * not a map of that shape. */
int tkv_failover_locate(const char *json, size_t len, const char *node_id, tkv_failover_self *self);

/* A replica's candidacy. */
typedef struct tkv_failover_candidate {
    const char *node_id;
    uint64_t offset;
} tkv_failover_candidate;

/* Whether candidate `me` is the best of the n candidates (me among them or
 * not): no other has a higher offset, or the same offset and a smaller
 * node id. */
bool tkv_failover_is_best(const tkv_failover_candidate *me, const tkv_failover_candidate *all,
                          size_t n);

/* The candidacy value ({"offset":N}) as a NUL-terminated string the caller
 * frees, and its reading (-1: not one). */
char *tkv_failover_candidacy(uint64_t offset);
int tkv_failover_candidacy_parse(const char *json, size_t len, uint64_t *offset);

/* The map with node_id as the primary of shard and the old primary moved
 * to the head of its replicas (node_id taken out of them), as a new
 * NUL-terminated JSON string the caller frees; every other part of the
 * map is kept as it is. NULL if the JSON is not a map, the shard is not
 * in it, or node_id is not one of its replicas. */
char *tkv_failover_promote(const char *json, size_t len, const char *shard, const char *node_id);

#endif
