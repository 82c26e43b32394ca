/*
 * shardmap.h - the cluster's shard map as one node holds it: which shard
 * serves each of the 16384 slots (protocol/slot.h), which node is each
 * shard's primary and which are its replicas, and where each node listens.
 *
 * The map arrives as the JSON record ARCHITECTURE.md describes (etcd's
 * `map` key, or tkvd --cluster-map FILE):
 *
 *   {"slots":  [[from, to, shard], ...],
 *    "shards": {"<shard>": {"primary": "<node>", "replicas": ["<node>", ...]}},
 *    "nodes":  {"<node>": "host:port"},
 *    "migrating": [...]}
 *
 * A map is checked whole before anything uses it, so a node never serves
 * from a map with a hole or an overlap: every slot covered by exactly one
 * range, every shard a range names defined, every node a shard names
 * defined, every address HOST:PORT. "migrating" lists the slots being
 * moved, [{"slot": S, "from": "<shard>", "to": "<shard>"}, ...]: each slot
 * at most once, "from" the shard "slots" gives it, "to" another defined
 * shard (ARCHITECTURE.md, "The cluster": the source keeps serving the
 * keys it still holds and answers ASK for the others).
 *
 * A parsed map is immutable: the reactor swaps the whole map between two
 * requests (tkv_dispatch_set_map in cmd.h), so no request sees half of an
 * old and half of a new one.
 */
#ifndef TKV_SHARDMAP_H
#define TKV_SHARDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slot.h"

typedef struct tkv_shardmap tkv_shardmap;

/* Parses and checks a map of len bytes of JSON. revision is its version
 * (etcd's mod_revision; 0 for a static file), reported by CLUSTER SHARDS.
 * self_id names this node in the map's "nodes"; NULL for a reader that is
 * no node. A self_id the map does not list is accepted (the node then
 * serves no slot: tkv_shardmap_self_known() tells). Returns the map (free
 * with tkv_shardmap_free), or NULL with a one-line reason in err (always
 * NUL-terminated) - the JSON error with its line and column, or the first
 * rule the map breaks ("slot 5461 has no shard"). */
tkv_shardmap *tkv_shardmap_parse(const char *json, size_t len, uint64_t revision,
                                 const char *self_id, char *err, size_t errlen);

/* Reads and parses a map file. As tkv_shardmap_parse; err names the file. */
tkv_shardmap *tkv_shardmap_load(const char *path, uint64_t revision, const char *self_id, char *err,
                                size_t errlen);

void tkv_shardmap_free(tkv_shardmap *m); /* NULL-safe */

uint64_t tkv_shardmap_revision(const tkv_shardmap *m);

/* Whether self_id was one of the map's nodes. */
bool tkv_shardmap_self_known(const tkv_shardmap *m);

/* Whether this node is the primary of the shard serving slot. If not,
 * *addr is that primary's "host:port" (valid as long as the map). */
bool tkv_shardmap_serves(const tkv_shardmap *m, uint16_t slot, const char **addr);

/* How this node answers a key request for slot (cmd.c's cluster check):
 * SERVE - it is the primary of the slot's shard, no migration;
 * MOVED - another shard's primary serves it: *addr;
 * MIGRATING - it serves the slot, which is moving to *addr (the target
 *   shard's primary): keys it holds are served here, the others ASKed;
 * IMPORTING - the slot is moving here from *addr (the source primary):
 *   served only after ASKING, else MOVED to *addr.
 * *addr is valid as long as the map. */
typedef enum tkv_shardmap_route {
    TKV_SM_SERVE,
    TKV_SM_MOVED,
    TKV_SM_MIGRATING,
    TKV_SM_IMPORTING,
} tkv_shardmap_route;
tkv_shardmap_route tkv_shardmap_route_slot(const tkv_shardmap *m, uint16_t slot, const char **addr);

/* This node's part in the map: the primary of a shard, a replica of one
 * (*primary is then that shard's primary's "host:port", valid as long as
 * the map), or neither. */
typedef enum tkv_shardmap_role {
    TKV_SM_NONE,
    TKV_SM_PRIMARY,
    TKV_SM_REPLICA,
} tkv_shardmap_role;
tkv_shardmap_role tkv_shardmap_self_role(const tkv_shardmap *m, const char **primary);

/* One range of slots as CLUSTER SHARDS lists it. Pointers are the map's. */
typedef struct tkv_shardmap_range {
    uint16_t from, to;           /* inclusive */
    const char *shard;           /* the shard's id */
    const char *primary;         /* the primary's "host:port" */
    const char *const *replicas; /* the replicas' "host:port" */
    uint32_t nreplicas;
} tkv_shardmap_range;

/* The ranges in slot order (as many as the map's "slots" lists). */
uint32_t tkv_shardmap_nranges(const tkv_shardmap *m);
void tkv_shardmap_get_range(const tkv_shardmap *m, uint32_t i, tkv_shardmap_range *r);

#endif
