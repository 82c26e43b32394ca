/*
 * test_cluster_map.c - the first map tkvctl cluster create writes
 * (client/cluster_map.c): every slot covered exactly once, the counts per
 * shard within one of each other, nodes grouped into shards of one primary
 * and R replicas in id order, and too few nodes refused.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_map.h"

static cluster_node NODES[] = {
    {"n5", "127.0.0.1:7005"}, {"n1", "127.0.0.1:7001"}, {"n3", "127.0.0.1:7003"},
    {"n2", "127.0.0.1:7002"}, {"n4", "127.0.0.1:7004"}, {"n6", "127.0.0.1:7006"},
    {"n7", "127.0.0.1:7007"},
};

static json_t *build(size_t n, unsigned shards, unsigned replicas)
{
    char err[256];
    char *s = cluster_map_build(NODES, n, shards, replicas, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    json_t *j = json_loads(s, 0, NULL);
    cr_assert_not_null(j);
    free(s);
    return j;
}

/* Checks coverage and evenness; returns the number of shards. */
static size_t check_slots(json_t *map)
{
    static unsigned owner[CLUSTER_SLOTS];
    memset(owner, 0xff, sizeof owner);
    json_t *shards = json_object_get(map, "shards"), *r;
    size_t nshards = json_object_size(shards), i;
    size_t *count = calloc(nshards, sizeof *count);
    json_array_foreach(json_object_get(map, "slots"), i, r)
    {
        json_int_t from = json_integer_value(json_array_get(r, 0));
        json_int_t to = json_integer_value(json_array_get(r, 1));
        const char *sid = json_string_value(json_array_get(r, 2));
        cr_assert_not_null(json_object_get(shards, sid), "range names a defined shard");
        unsigned k = (unsigned)atoi(sid + 1);
        cr_assert(k < nshards);
        cr_assert(from >= 0 && from <= to && to < CLUSTER_SLOTS);
        for (json_int_t s = from; s <= to; s++) {
            cr_assert_eq(owner[s], 0xffffffffu, "slot %d covered twice", (int)s);
            owner[s] = k;
            count[k]++;
        }
    }
    size_t lo = CLUSTER_SLOTS, hi = 0;
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        cr_assert_neq(owner[s], 0xffffffffu, "slot %d has no shard", s);
    for (size_t k = 0; k < nshards; k++) {
        lo = count[k] < lo ? count[k] : lo;
        hi = count[k] > hi ? count[k] : hi;
    }
    cr_assert_leq(hi - lo, 1, "counts %zu..%zu differ by more than one", lo, hi);
    free(count);
    return nshards;
}

Test(cluster_map, one_shard_per_node)
{
    json_t *m = build(3, 0, 0);
    cr_assert_eq(check_slots(m), 3);
    /* In id order, whatever order the nodes were registered in. */
    json_t *sh = json_object_get(m, "shards");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sh, "s0"), "primary")),
                     "n1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sh, "s2"), "primary")),
                     "n5");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(sh, "s0"), "replicas")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "nodes"), "n3")),
                     "127.0.0.1:7003");
    cr_assert(json_is_array(json_object_get(m, "migrating")));
    json_decref(m);
}

Test(cluster_map, replicas_group_nodes)
{
    json_t *m = build(7, 0, 1); /* 3 shards of 2, n7 spare (the nodes sorted: n1..n7) */
    cr_assert_eq(check_slots(m), 3);
    json_t *s1 = json_object_get(json_object_get(m, "shards"), "s1");
    cr_assert_str_eq(json_string_value(json_object_get(s1, "primary")), "n3");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(s1, "replicas"), 0)), "n4");
    cr_assert_eq(json_object_size(json_object_get(m, "nodes")), 7, "a spare is still listed");
    json_decref(m);
}

Test(cluster_map, even_for_every_shard_count)
{
    for (unsigned s = 1; s <= 7; s++) {
        json_t *m = build(7, s, 0);
        cr_assert_eq(check_slots(m), s);
        json_decref(m);
    }
}

Test(cluster_map, too_few_nodes)
{
    char err[256];
    cr_assert_null(cluster_map_build(NODES, 0, 0, 0, err, sizeof err));
    cr_assert_null(cluster_map_build(NODES, 3, 2, 1, err, sizeof err), "2 x 2 > 3 nodes");
    cr_assert(strstr(err, "3 nodes registered"), "%s", err);
    cr_assert_null(cluster_map_build(NODES, 1, 0, 1, err, sizeof err), "a replica needs 2 nodes");
    cr_assert_null(cluster_map_build(NODES, 7, CLUSTER_SLOTS + 1, 0, err, sizeof err));
}
