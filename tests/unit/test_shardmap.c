/*
 * test_shardmap.c - the shard map a node holds (server/shardmap.c): a good
 * map answers who serves each slot; every rule a bad map can break is
 * refused with a reason that names it.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "shardmap.h"

#define NODES                                                            \
    "\"nodes\": {\"a\": \"127.0.0.1:7001\", \"b\": \"127.0.0.1:7002\", " \
    "\"c\": \"[::1]:7003\"}"
#define SHARDS                                                           \
    "\"shards\": {\"s1\": {\"primary\": \"a\", \"replicas\": [\"c\"]}, " \
    "\"s2\": {\"primary\": \"b\"}}"

static tkv_shardmap *parse(const char *json, const char *self, char *err)
{
    return tkv_shardmap_parse(json, strlen(json), 7, self, err, 256);
}

Test(shardmap, good_map)
{
    char err[256];
    const char *json = "{\"slots\": [[8192, 16383, \"s2\"], [0, 8191, \"s1\"]], " SHARDS ", " NODES
                       ", \"migrating\": []}";
    tkv_shardmap *m = parse(json, "a", err);
    cr_assert(m, "%s", err);
    cr_assert_eq(tkv_shardmap_revision(m), 7);
    cr_assert(tkv_shardmap_self_known(m));
    const char *addr = NULL;
    cr_assert(tkv_shardmap_serves(m, 0, &addr));
    cr_assert(tkv_shardmap_serves(m, 8191, &addr));
    cr_assert_not(tkv_shardmap_serves(m, 8192, &addr));
    cr_assert_str_eq(addr, "127.0.0.1:7002");
    /* Ranges come back in slot order, whatever order the map gave. */
    cr_assert_eq(tkv_shardmap_nranges(m), 2);
    tkv_shardmap_range r;
    tkv_shardmap_get_range(m, 0, &r);
    cr_assert_eq(r.from, 0);
    cr_assert_eq(r.to, 8191);
    cr_assert_str_eq(r.shard, "s1");
    cr_assert_str_eq(r.primary, "127.0.0.1:7001");
    cr_assert_eq(r.nreplicas, 1);
    cr_assert_str_eq(r.replicas[0], "[::1]:7003");
    tkv_shardmap_get_range(m, 1, &r);
    cr_assert_eq(r.from, 8192);
    cr_assert_eq(r.nreplicas, 0);
    tkv_shardmap_free(m);

    /* A replica of s1 serves nothing as a primary; an unknown node neither. */
    m = parse(json, "c", err);
    cr_assert(m);
    cr_assert_not(tkv_shardmap_serves(m, 0, &addr));
    cr_assert_str_eq(addr, "127.0.0.1:7001");
    tkv_shardmap_free(m);
    m = parse(json, "zz", err);
    cr_assert(m);
    cr_assert_not(tkv_shardmap_self_known(m));
    cr_assert_not(tkv_shardmap_serves(m, 100, &addr));
    tkv_shardmap_free(m);
    tkv_shardmap_free(NULL);
}

Test(shardmap, integer_shard_ids)
{
    char err[256];
    const char *json = "{\"slots\": [[0, 16383, 1]], \"shards\": {\"1\": {\"primary\": \"a\"}}, "
                       "\"nodes\": {\"a\": \"h:1\"}}";
    tkv_shardmap *m = parse(json, NULL, err);
    cr_assert(m, "%s", err);
    tkv_shardmap_free(m);
}

static void refused(const char *json, const char *why)
{
    char err[256];
    tkv_shardmap *m = parse(json, "a", err);
    cr_assert_null(m, "accepted: %s", json);
    cr_assert(strstr(err, why), "reason \"%s\" lacks \"%s\"", err, why);
}

Test(shardmap, bad_maps_refused_with_reasons)
{
    refused("{\"slots\": [", "line 1");
    refused("[]", "must be a JSON object");
    refused("{\"slots\": [[0, 16383, \"s1\"]], " SHARDS "}", "\"nodes\" must be an object");
    refused("{\"slots\": [[0, 16383, \"s1\"]], " NODES "}", "\"shards\" must be an object");
    refused("{" SHARDS ", " NODES "}", "\"slots\" must be a non-empty array");
    /* Coverage: a hole, an overlap, a missing tail. */
    refused("{\"slots\": [[0, 100, \"s1\"], [102, 16383, \"s2\"]], " SHARDS ", " NODES "}",
            "slot 101 has no shard");
    refused("{\"slots\": [[0, 100, \"s1\"], [100, 16383, \"s2\"]], " SHARDS ", " NODES "}",
            "slot 100 is given twice");
    refused("{\"slots\": [[1, 16383, \"s1\"]], " SHARDS ", " NODES "}", "slot 0 has no shard");
    refused("{\"slots\": [[0, 16000, \"s1\"]], " SHARDS ", " NODES "}", "slot 16001 has no shard");
    refused("{\"slots\": [[0, 16384, \"s1\"]], " SHARDS ", " NODES "}",
            "slots[0]: to must be a slot number");
    refused("{\"slots\": [[-1, 5, \"s1\"]], " SHARDS ", " NODES "}", "from must be a slot number");
    refused("{\"slots\": [[9, 5, \"s1\"]], " SHARDS ", " NODES "}", "from 9 is after to 5");
    refused("{\"slots\": [[0, 16383]], " SHARDS ", " NODES "}", "must be [from, to, shard]");
    /* References. */
    refused("{\"slots\": [[0, 16383, \"s9\"]], " SHARDS ", " NODES "}",
            "shard \"s9\" is not in \"shards\"");
    refused("{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": {\"primary\": \"x\"}}, " NODES
            "}",
            "primary \"x\" is not in \"nodes\"");
    refused("{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": {}}, " NODES "}",
            "primary must be a node id");
    refused("{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": {\"primary\": \"a\", "
            "\"replicas\": [\"q\"]}}, " NODES "}",
            "a replica \"q\" is not in \"nodes\"");
    refused("{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": {\"primary\": \"a\", "
            "\"replicas\": [\"a\"]}}, " NODES "}",
            "is its primary and a replica");
    /* Addresses. */
    refused("{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": {\"primary\": \"a\"}}, "
            "\"nodes\": {\"a\": \"localhost\"}}",
            "node \"a\": the address must be");
    refused("{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": {\"primary\": \"a\"}}, "
            "\"nodes\": {\"a\": \"h:70000\"}}",
            "the address must be");
    refused("{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": {\"primary\": \"a\"}}, "
            "\"nodes\": {\"a\": 5}}",
            "the address must be");
    refused("{\"slots\": [[0, 16383, \"s1\"]], " SHARDS ", " NODES ", \"migrating\": 1}",
            "\"migrating\" must be an array");
    /* jansson refuses a repeated key rather than keeping the last. */
    refused("{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": {\"primary\": \"a\"}}, "
            "\"nodes\": {\"a\": \"h:1\", \"a\": \"h:2\"}}",
            "duplicate");
}

/* A slot migrating from s1 (node a) to s2 (node b): a serves it and
 * names b for what it no longer holds, b imports it and names a, c (a
 * replica) is MOVED to a; the other slots route as before. */
Test(shardmap, migrating_slots_route_both_ways)
{
    char err[256];
    const char *json = "{\"slots\": [[0, 8191, \"s1\"], [8192, 16383, \"s2\"]], " SHARDS ", " NODES
                       ", \"migrating\": [{\"slot\": 5, \"from\": \"s1\", "
                       "\"to\": \"s2\"}]}";
    const char *addr = NULL;
    tkv_shardmap *m = parse(json, "a", err);
    cr_assert(m, "%s", err);
    cr_assert_eq(tkv_shardmap_route_slot(m, 5, &addr), TKV_SM_MIGRATING);
    cr_assert_str_eq(addr, "127.0.0.1:7002");
    cr_assert_eq(tkv_shardmap_route_slot(m, 6, &addr), TKV_SM_SERVE);
    cr_assert_eq(tkv_shardmap_route_slot(m, 9000, &addr), TKV_SM_MOVED);
    cr_assert(tkv_shardmap_serves(m, 5, &addr)); /* the source still serves it */
    tkv_shardmap_free(m);
    m = parse(json, "b", err);
    cr_assert_eq(tkv_shardmap_route_slot(m, 5, &addr), TKV_SM_IMPORTING);
    cr_assert_str_eq(addr, "127.0.0.1:7001");
    cr_assert_eq(tkv_shardmap_route_slot(m, 6, &addr), TKV_SM_MOVED);
    tkv_shardmap_free(m);
    m = parse(json, "c", err);
    cr_assert_eq(tkv_shardmap_route_slot(m, 5, &addr), TKV_SM_MOVED);
    cr_assert_str_eq(addr, "127.0.0.1:7001");
    tkv_shardmap_free(m);
}

Test(shardmap, bad_migrating_entries_refused)
{
#define MAP(mig)                                                                 \
    "{\"slots\": [[0, 8191, \"s1\"], [8192, 16383, \"s2\"]], " SHARDS ", " NODES \
    ", \"migrating\": [" mig "]}"
    refused(MAP("5"), "migrating[0] must be");
    refused(MAP("{\"slot\": 16384, \"from\": \"s1\", \"to\": \"s2\"}"), "slot must be a slot");
    refused(MAP("{\"slot\": 5, \"from\": \"s9\", \"to\": \"s2\"}"), "\"from\" must name a shard");
    refused(MAP("{\"slot\": 5, \"from\": \"s1\"}"), "\"to\" must name a shard");
    refused(MAP("{\"slot\": 5, \"from\": \"s2\", \"to\": \"s1\"}"),
            "slot 5 is not served by shard \"s2\"");
    refused(MAP("{\"slot\": 5, \"from\": \"s1\", \"to\": \"s1\"}"), "to the shard it is on");
    refused(MAP("{\"slot\": 5, \"from\": \"s1\", \"to\": \"s2\"}, "
                "{\"slot\": 5, \"from\": \"s1\", \"to\": \"s2\"}"),
            "slot 5 migrates twice");
#undef MAP
}

Test(shardmap, load_names_the_file)
{
    char err[256];
    tkv_shardmap *m = tkv_shardmap_load("/nonexistent/map.json", 0, "a", err, sizeof err);
    cr_assert_null(m);
    cr_assert(strstr(err, "/nonexistent/map.json"), "%s", err);
}
