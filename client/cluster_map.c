/*
 * cluster_map.c - implements cluster_map.h with jansson.
 *
 * Shard ids are "s0", "s1", ...: strings, as the map's object keys must
 * be, and the same strings in "slots", so a reader needs one lookup.
 */
#include "cluster_map.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_id(const void *a, const void *b)
{
    return strcmp(((const cluster_node *)a)->id, ((const cluster_node *)b)->id);
}

/* One shard: its primary and replicas from sorted[first..]. */
static json_t *shard_json(const cluster_node *sorted, size_t first, unsigned replicas)
{
    json_t *reps = json_array();
    for (unsigned r = 0; reps && r < replicas; r++)
        if (json_array_append_new(reps, json_string(sorted[first + 1 + r].id)) < 0)
            break;
    return json_pack("{s:s, s:o}", "primary", sorted[first].id, "replicas", reps);
}

static json_t *build(const cluster_node *sorted, size_t n, unsigned shards, unsigned replicas)
{
    json_t *slots = json_array(), *sh = json_object(), *nodes = json_object();
    json_t *map = json_pack("{s:o, s:o, s:o, s:[]}", "slots", slots, "shards", sh, "nodes", nodes,
                            "migrating");
    if (!map)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (json_object_set_new(nodes, sorted[i].id, json_string(sorted[i].addr)) < 0)
            goto fail;
    for (unsigned k = 0; k < shards; k++) {
        char id[16];
        snprintf(id, sizeof id, "s%u", k);
        /* Widened: k * 16384 overflows nothing, and the division spreads
         * the remainder one slot at a time. */
        unsigned long from = (unsigned long)k * CLUSTER_SLOTS / shards;
        unsigned long to = (unsigned long)(k + 1) * CLUSTER_SLOTS / shards - 1;
        if (json_array_append_new(
                slots, json_pack("[i, i, s]", (json_int_t)from, (json_int_t)to, id)) < 0 ||
            json_object_set_new(sh, id, shard_json(sorted, (size_t)k * (replicas + 1), replicas)) <
                0)
            goto fail;
    }
    return map;
fail:
    json_decref(map);
    return NULL;
}

char *cluster_map_build(const cluster_node *nodes, size_t n, unsigned shards, unsigned replicas,
                        char *err, size_t errlen)
{
    size_t per = (size_t)replicas + 1;
    if (shards == 0)
        shards = (unsigned)(n / per < CLUSTER_SLOTS ? n / per : CLUSTER_SLOTS);
    if (shards == 0 || shards > CLUSTER_SLOTS || (size_t)shards * per > n) {
        snprintf(err, errlen,
                 "%zu node%s registered: %u shard%s with %u replica%s each need%s %zu "
                 "(shards at most %d)",
                 n, n == 1 ? "" : "s", shards ? shards : 1, shards == 1 ? "" : "s", replicas,
                 replicas == 1 ? "" : "s", shards > 1 ? "" : "s",
                 (size_t)(shards ? shards : 1) * per, CLUSTER_SLOTS);
        return NULL;
    }
    cluster_node *sorted = malloc(n * sizeof *sorted);
    json_t *map = NULL;
    if (sorted) {
        memcpy(sorted, nodes, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, by_id);
        map = build(sorted, n, shards, replicas);
    }
    char *text = map ? json_dumps(map, JSON_COMPACT) : NULL;
    json_decref(map);
    free(sorted);
    if (!text)
        snprintf(err, errlen, "out of memory");
    return text;
}
