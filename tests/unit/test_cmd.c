/*
 * test_cmd.c - dispatch on a cluster node (server/cmd.c with a shard map):
 * every key command for a slot another primary serves is answered MOVED
 * with "SLOT HOST:PORT" and does nothing; multi-key requests across slots
 * get CROSSSLOT before ownership is looked at; commands without keys are
 * served; CLUSTER SHARDS answers the map; without a map all is as before.
 * And what dispatch reports of itself: STATS's latency fields, SLOWLOG.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../common/tmpdir.h"
#include "cmd.h"
#include "latency.h"
#include "reply.h"
#include "shardmap.h"
#include "slot.h"
#include "slowlog.h"

static tkv_engine *e;
static char *dir;
static tkv_dispatch d;
static tkv_buf out;

/* This node, "a", serves slots 0-8191; "b" the rest. */
static const char map_json[] =
    "{\"slots\": [[0, 8191, \"s1\"], [8192, 16383, \"s2\"]],"
    " \"shards\": {\"s1\": {\"primary\": \"a\"}, \"s2\": {\"primary\": \"b\"}},"
    " \"nodes\": {\"a\": \"127.0.0.1:7001\", \"b\": \"127.0.0.1:7002\"}}";

static void setup(void)
{
    char err[256];
    dir = tmpdir_make("cmd");
    tkv_engine_opts o = {.dir = dir};
    cr_assert_eq(tkv_engine_open(&o, &e, err, sizeof err), 0, "%s", err);
    d = (tkv_dispatch){
        .eng = e, .lim = {.max_key = 64, .max_value = 64, .max_batch = 100}, .max_reply = 1 << 20};
    tkv_shardmap *m = tkv_shardmap_parse(map_json, strlen(map_json), 9, "a", err, sizeof err);
    cr_assert(m, "%s", err);
    tkv_dispatch_set_map(&d, m);
}

static void teardown(void)
{
    tkv_dispatch_set_map(&d, NULL);
    tkv_buf_deinit(&out);
    tkv_engine_close(e);
    tmpdir_remove(dir);
}

/* Runs one request; returns the reply's status, its message in msg. */
static uint64_t run(const tkv_req *q, char *msg, size_t msglen)
{
    tkv_buf req = {0};
    cr_assert_eq(tkv_req_encode(&req, q), 0);
    tkv_buf_reset(&out);
    bool dirty;
    tkv_dispatch_frame(&d, req.data + 4, req.len - 4, &out, &dirty);
    tkv_buf_deinit(&req);
    tkv_mp m;
    uint32_t count;
    uint64_t st;
    tkv_span em = {0};
    cr_assert_eq(tkv_reply_head(out.data + 4, out.len - 4, &m, &count, &st, &em), 0);
    snprintf(msg, msglen, "%.*s", (int)em.len, em.ptr ? (const char *)em.ptr : "");
    return st;
}

/* A key whose slot is in [lo, hi]. */
static const char *key_in(unsigned lo, unsigned hi, char *buf)
{
    for (int i = 0;; i++) {
        sprintf(buf, "k%d", i);
        unsigned s = tkv_slot(buf, strlen(buf));
        if (s >= lo && s <= hi)
            return buf;
    }
}

static tkv_span sp(const char *s) { return (tkv_span){(const uint8_t *)s, (uint32_t)strlen(s)}; }

Test(cmd, key_commands_for_other_slots_are_moved, .init = setup, .fini = teardown)
{
    char mine[16], theirs[16], msg[256], want[64];
    key_in(0, 8191, mine);
    key_in(8192, 16383, theirs);
    snprintf(want, sizeof want, "%u 127.0.0.1:7002", tkv_slot(theirs, strlen(theirs)));
    const tkv_cmd keyed[] = {TKV_CMD_PUT, TKV_CMD_GET,    TKV_CMD_RANGE, TKV_CMD_COUNT,
                             TKV_CMD_DEL, TKV_CMD_RETAIN, TKV_CMD_POLICY};
    for (size_t i = 0; i < sizeof keyed / sizeof keyed[0]; i++) {
        tkv_req q = {.cmd = keyed[i],
                     .key = sp(theirs),
                     .value = sp("v"),
                     .to = TKV_TS_MAX,
                     .limit = UINT64_MAX,
                     .keep_versions = 1};
        cr_assert_eq(run(&q, msg, sizeof msg), TKV_ST_MOVED, "%s", tkv_cmd_name(keyed[i]));
        cr_assert_str_eq(msg, want);
        q.key = sp(mine);
        cr_assert_lt(run(&q, msg, sizeof msg), 10, "%s here: %s", tkv_cmd_name(keyed[i]), msg);
    }
    /* Nothing was written for the MOVED PUT. */
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, (const uint8_t *)theirs, strlen(theirs), TKV_TS_MAX, &a),
                 TKV_E_NOT_FOUND);
    /* Without keys: served here. */
    const tkv_cmd keyless[] = {TKV_CMD_PING, TKV_CMD_STATS, TKV_CMD_SCAN};
    for (size_t i = 0; i < sizeof keyless / sizeof keyless[0]; i++) {
        tkv_req q = {.cmd = keyless[i]};
        cr_assert_eq(run(&q, msg, sizeof msg), TKV_ST_OK, "%s: %s", tkv_cmd_name(keyless[i]), msg);
    }
}

Test(cmd, multi_key_requests_stay_in_one_slot, .init = setup, .fini = teardown)
{
    char a[16], b[16], msg[256];
    key_in(0, 100, a);
    key_in(200, 8191, b); /* both this node's, different slots */
    tkv_put_item two[2] = {{.key = sp(a), .value = sp("1")}, {.key = sp(b), .value = sp("2")}};
    tkv_span keys[2] = {sp(a), sp(b)};
    tkv_buf req = {0};
    bool dirty;
    tkv_mp m;
    uint32_t count;
    uint64_t st;
    tkv_span em;
    cr_assert_eq(tkv_encode_mput(&req, two, 2), 0);
    cr_assert_eq(tkv_encode_mget(&req, 0, false, keys, 2), 0);
    size_t first = 4 + tkv_load_be32(req.data);
    tkv_buf_reset(&out);
    tkv_dispatch_frame(&d, req.data + 4, first - 4, &out, &dirty);
    cr_assert_eq(tkv_reply_head(out.data + 4, out.len - 4, &m, &count, &st, &em), 0);
    cr_assert_eq(st, TKV_ST_CROSSSLOT);
    tkv_buf_reset(&out);
    tkv_dispatch_frame(&d, req.data + first + 4, req.len - first - 4, &out, &dirty);
    cr_assert_eq(tkv_reply_head(out.data + 4, out.len - 4, &m, &count, &st, &em), 0);
    cr_assert_eq(st, TKV_ST_CROSSSLOT);
    tkv_buf_deinit(&req);
    tkv_answer ans;
    cr_assert_eq(tkv_engine_get(e, (const uint8_t *)a, strlen(a), TKV_TS_MAX, &ans),
                 TKV_E_NOT_FOUND, "nothing written");
    /* One tag, one slot: served (here, or MOVED if the tag's slot is b's). */
    const char *t1 = "{x}1", *t2 = "{x}2";
    tkv_put_item tagged[2] = {{.key = sp(t1), .value = sp("1")}, {.key = sp(t2), .value = sp("2")}};
    cr_assert_eq(tkv_encode_mput(&req, tagged, 2), 0);
    tkv_buf_reset(&out);
    tkv_dispatch_frame(&d, req.data + 4, req.len - 4, &out, &dirty);
    cr_assert_eq(tkv_reply_head(out.data + 4, out.len - 4, &m, &count, &st, &em), 0);
    cr_assert_eq(st, tkv_slot("x", 1) <= 8191 ? TKV_ST_OK : TKV_ST_MOVED);
    tkv_buf_deinit(&req);
    (void)msg;
}

Test(cmd, cluster_shards_and_no_map, .init = setup, .fini = teardown)
{
    char msg[256], theirs[16];
    tkv_req q = {.cmd = TKV_CMD_CLUSTER, .sub = TKV_CLUSTER_SHARDS};
    cr_assert_eq(run(&q, msg, sizeof msg), TKV_ST_OK);
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(TKV_CMD_CLUSTER, out.data + 4, out.len - 4, &rep), 0);
    cr_assert_eq(rep.u, 9);
    tkv_rep_slots r;
    cr_assert(tkv_rep_next_slots(&rep.list, &r));
    cr_assert(r.from == 0 && r.to == 8191 && r.primary.len == 14);
    cr_assert(tkv_rep_next_slots(&rep.list, &r));
    cr_assert(r.from == 8192 && r.to == 16383);
    /* Leaving the cluster: every key served, CLUSTER refused. */
    tkv_dispatch_set_map(&d, NULL);
    tkv_req g = {.cmd = TKV_CMD_GET, .key = sp(key_in(8192, 16383, theirs))};
    cr_assert_eq(run(&g, msg, sizeof msg), TKV_ST_NOT_FOUND);
    cr_assert_eq(run(&q, msg, sizeof msg), TKV_ST_BAD_REQUEST);
    cr_assert_str_eq(msg, "this server is not part of a cluster");
}

/* STATS counts the latency fields it sends; SLOWLOG answers from the
 * dispatcher's log, or refuses without one. */
Test(cmd, latency_stats_and_slowlog, .init = setup, .fini = teardown)
{
    char msg[256];
    tkv_req q = {.cmd = TKV_CMD_SLOWLOG, .sub = TKV_SLOWLOG_LEN};
    cr_assert_eq(run(&q, msg, sizeof msg), TKV_ST_BAD_REQUEST);
    cr_assert(strstr(msg, "no slow log"), "%s", msg);
    d.slow = tkv_slowlog_new(0, 4);
    d.lat = tkv_latency_new();
    cr_assert(d.slow && d.lat);
    cr_assert_eq(run(&q, msg, sizeof msg), TKV_ST_OK, "%s", msg);
    for (uint64_t us = 1; us <= 100; us++)
        tkv_latency_record(d.lat, TKV_CMD_GET, us);
    tkv_latency_record(d.lat, TKV_CMD_PING, 7);
    q = (tkv_req){.cmd = TKV_CMD_STATS};
    cr_assert_eq(run(&q, msg, sizeof msg), TKV_ST_OK, "%s", msg);
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(TKV_CMD_STATS, out.data + 4, out.len - 4, &rep), 0);
    tkv_rep_stat s;
    int seen = 0;
    while (tkv_rep_next_stat(&rep.list, &s)) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)s.name.len, (const char *)s.name.ptr);
        if (strncmp(name, "latency_", 8) != 0)
            continue;
        seen++;
        if (strcmp(name, "latency_get_count") == 0)
            cr_assert_eq(s.num, 100);
        else if (strcmp(name, "latency_get_p50_us") == 0)
            cr_assert_eq(s.num, 50);
        else if (strcmp(name, "latency_get_p99_us") == 0)
            cr_assert_eq(s.num, 99);
        else if (strcmp(name, "latency_get_max_us") == 0)
            cr_assert_eq(s.num, 100);
        else if (strcmp(name, "latency_ping_p999_us") == 0)
            cr_assert_eq(s.num, 7);
    }
    cr_assert_eq(seen, 2 * TKV_LATENCY_FIELDS, "only the commands served have fields");
    tkv_slowlog_free(d.slow);
    tkv_latency_free(d.lat);
    d.slow = NULL;
    d.lat = NULL;
}
