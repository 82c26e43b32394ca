/*
 * test_failover.c - failover.h's decisions: where a node stands in a map,
 * who of the candidates takes over (against a brute-force ranking of
 * random candidacies), and the map a take-over writes.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failover.h"

static const char *MAP =
    "{\"slots\": [[0, 8191, \"s1\"], [8192, 16383, \"s2\"]],"
    " \"shards\": {\"s1\": {\"primary\": \"a\", \"replicas\": [\"b\", \"c\"]},"
    "              \"s2\": {\"primary\": \"d\", \"replicas\": []}},"
    " \"nodes\": {\"a\": \"h:1\", \"b\": \"h:2\", \"c\": \"h:3\", \"d\": \"h:4\", \"e\": \"h:5\"},"
    " \"migrating\": [{\"slot\": 5, \"from\": \"s1\", \"to\": \"s2\"}]}";

Test(failover, locate_finds_shard_and_role)
{
    tkv_failover_self me;
    cr_assert_eq(tkv_failover_locate(MAP, strlen(MAP), "a", &me), 0);
    cr_assert(me.found && me.primary);
    cr_assert_str_eq(me.shard, "s1");
    cr_assert_str_eq(me.leader, "a");
    cr_assert_eq(tkv_failover_locate(MAP, strlen(MAP), "c", &me), 0);
    cr_assert(me.found && !me.primary);
    cr_assert_str_eq(me.shard, "s1");
    cr_assert_str_eq(me.leader, "a");
    cr_assert_eq(me.nreplicas, 2);
    cr_assert_eq(tkv_failover_locate(MAP, strlen(MAP), "d", &me), 0);
    cr_assert_eq(me.nreplicas, 0);
    cr_assert_eq(tkv_failover_locate(MAP, strlen(MAP), "e", &me), 0);
    cr_assert(!me.found);
    cr_assert_eq(tkv_failover_locate("[1,2]", 5, "a", &me), -1);
    cr_assert_eq(tkv_failover_locate("{\"shards\": ", 11, "a", &me), -1);
}

Test(failover, promote_swaps_primary_and_keeps_the_rest)
{
    char *out = tkv_failover_promote(MAP, strlen(MAP), "s1", "c");
    cr_assert_not_null(out);
    json_t *m = json_loads(out, 0, NULL), *want = json_loads(MAP, 0, NULL);
    cr_assert_not_null(m);
    json_t *sh = json_object_get(json_object_get(m, "shards"), "s1");
    cr_assert_str_eq(json_string_value(json_object_get(sh, "primary")), "c");
    json_t *reps = json_object_get(sh, "replicas");
    cr_assert_eq(json_array_size(reps), 2);
    cr_assert_str_eq(json_string_value(json_array_get(reps, 0)), "a");
    cr_assert_str_eq(json_string_value(json_array_get(reps, 1)), "b");
    /* Everything else is untouched, including parts failover does not know. */
    json_object_set(json_object_get(want, "shards"), "s1", sh);
    cr_assert(json_equal(m, want), "%s", out);
    json_decref(m);
    json_decref(want);
    free(out);
    /* Only a replica of the shard may be promoted. */
    cr_assert_null(tkv_failover_promote(MAP, strlen(MAP), "s1", "d"));
    cr_assert_null(tkv_failover_promote(MAP, strlen(MAP), "s1", "a"));
    cr_assert_null(tkv_failover_promote(MAP, strlen(MAP), "s9", "b"));
    cr_assert_null(tkv_failover_promote("nope", 4, "s1", "b"));
}

Test(failover, candidacy_round_trips)
{
    char *s = tkv_failover_candidacy(18446744073709551615ULL >> 2);
    uint64_t off = 0;
    cr_assert_eq(tkv_failover_candidacy_parse(s, strlen(s), &off), 0);
    cr_assert_eq(off, 18446744073709551615ULL >> 2);
    free(s);
    cr_assert_eq(tkv_failover_candidacy_parse("{\"offset\": -1}", 14, &off), -1);
    cr_assert_eq(tkv_failover_candidacy_parse("{}", 2, &off), -1);
    cr_assert_eq(tkv_failover_candidacy_parse("x", 1, &off), -1);
}

/* Exactly one candidate is best in any set with distinct ids, and it is
 * the one a sort by (offset desc, id asc) puts first. */
Test(failover, exactly_one_best_matches_a_sort)
{
    srand(42);
    char ids[8][24];
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (size_t)(rand() % 8);
        tkv_failover_candidate c[8];
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "%c%zu", 'a' + rand() % 3, i);
            c[i] = (tkv_failover_candidate){ids[i], (uint64_t)(rand() % 4)};
        }
        size_t want = 0;
        for (size_t i = 1; i < n; i++)
            if (c[i].offset > c[want].offset ||
                (c[i].offset == c[want].offset && strcmp(c[i].node_id, c[want].node_id) < 0))
                want = i;
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            bool b = tkv_failover_is_best(&c[i], c, n);
            cr_assert_eq(b, i == want, "round %d: candidate %zu", round, i);
            best += b;
        }
        cr_assert_eq(best, 1);
    }
}
