/*
 * test_proto.c - request parsing: every command, every rejection, and the
 * encoder and parser agreeing with each other.
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>

#include "byteorder.h"
#include "frame.h"
#include "proto.h"

static const tkv_limits lim = {.max_key = 16, .max_value = 64};

/* Builds a request body with msgpack-c, from a tiny format: s=str, b=bin,
 * u=uint, i=negative int, n=nil, t=true, f=float, a=array header. */
static size_t build(uint8_t *out, const char *fmt, ...)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        switch (*f) {
        case 'a': msgpack_pack_array(&pk, va_arg(ap, unsigned)); break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            msgpack_pack_str(&pk, strlen(s));
            msgpack_pack_str_body(&pk, s, strlen(s));
            break;
        }
        case 'b': {
            const char *s = va_arg(ap, const char *);
            msgpack_pack_bin(&pk, strlen(s));
            msgpack_pack_bin_body(&pk, s, strlen(s));
            break;
        }
        case 'u': msgpack_pack_uint64(&pk, va_arg(ap, uint64_t)); break;
        case 'i': msgpack_pack_int64(&pk, va_arg(ap, int64_t)); break;
        case 'n': msgpack_pack_nil(&pk); break;
        case 't': msgpack_pack_true(&pk); break;
        case 'f': msgpack_pack_double(&pk, 1.5); break;
        }
    }
    va_end(ap);
    memcpy(out, sb.data, sb.size);
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static tkv_status parse(const uint8_t *b, size_t n, tkv_req *r, char *err)
{
    return tkv_req_parse(b, n, &lim, r, err, 160);
}

Test(proto, put_with_and_without_ts)
{
    uint8_t b[256];
    char err[160];
    tkv_req r;
    size_t n = build(b, "asbbu", 4u, "put", "k1", "value", (uint64_t)100);
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert_eq(r.cmd, TKV_CMD_PUT);
    cr_assert_eq(r.key.len, 2);
    cr_assert_eq(memcmp(r.key.ptr, "k1", 2), 0);
    cr_assert_eq(r.value.len, 5);
    cr_assert(r.has_ts);
    cr_assert_eq(r.ts, 100);
    n = build(b, "asss", 3u, "PUT", "k1", "");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert(!r.has_ts);
    cr_assert_eq(r.value.len, 0, "an empty value is a value");
    n = build(b, "asssn", 4u, "Put", "k1", "v");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert(!r.has_ts, "nil ts means absent");
}

Test(proto, get_range_del_ping_stats)
{
    uint8_t b[256];
    char err[160];
    tkv_req r;
    size_t n = build(b, "asbu", 3u, "GET", "k", UINT64_MAX);
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK);
    cr_assert_eq(r.cmd, TKV_CMD_GET);
    cr_assert_eq(r.ts, UINT64_MAX);
    n = build(b, "asbnuut", 6u, "RANGE", "k", (uint64_t)5, (uint64_t)3);
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert_eq(r.from, 0);
    cr_assert_eq(r.to, 5);
    cr_assert_eq(r.limit, 3);
    cr_assert(r.reverse);
    n = build(b, "asb", 2u, "range", "k");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK);
    cr_assert_eq(r.to, UINT64_MAX);
    cr_assert_eq(r.limit, UINT64_MAX);
    cr_assert(!r.reverse);
    n = build(b, "asb", 2u, "DEL", "k");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK);
    cr_assert_eq(r.cmd, TKV_CMD_DEL);
    n = build(b, "as", 1u, "ping");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK);
    cr_assert(!r.has_msg);
    n = build(b, "ass", 2u, "ping", "hello");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK);
    cr_assert(r.has_msg);
    n = build(b, "as", 1u, "STATS");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK);
    cr_assert_eq(r.cmd, TKV_CMD_STATS);
}

struct bad_case {
    const char *what;
    tkv_status want;
    size_t n;
    uint8_t b[256];
};

Test(proto, cluster_subcommands)
{
    uint8_t b[64];
    char err[160];
    tkv_req r;
    size_t n = build(b, "ass", 2u, "cluster", "shards");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert_eq(r.cmd, TKV_CMD_CLUSTER);
    cr_assert_eq(r.sub, TKV_CLUSTER_SHARDS);
    n = build(b, "ass", 2u, "CLUSTER", "NODES");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_BAD_REQUEST);
    cr_assert(strstr(err, "unknown CLUSTER subcommand 'NODES'"), "%s", err);
    n = build(b, "as", 1u, "CLUSTER");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_BAD_REQUEST);
    /* The encoder's request parses back. */
    tkv_buf out = {0};
    tkv_req q = {.cmd = TKV_CMD_CLUSTER, .sub = TKV_CLUSTER_SHARDS};
    cr_assert_eq(tkv_req_encode(&out, &q), 0);
    cr_assert_eq(parse(out.data + 4, out.len - 4, &r, err), TKV_ST_OK, "%s", err);
    cr_assert_eq(r.cmd, TKV_CMD_CLUSTER);
    tkv_buf_deinit(&out);
}

Test(proto, slowlog_subcommands)
{
    uint8_t b[64];
    char err[160];
    tkv_req r;
    size_t n = build(b, "ass", 2u, "slowlog", "get");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert(r.cmd == TKV_CMD_SLOWLOG && r.sub == TKV_SLOWLOG_GET);
    cr_assert_eq(r.limit, TKV_SLOWLOG_GET_DEFAULT);
    n = build(b, "assu", 3u, "SLOWLOG", "GET", (uint64_t)3);
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert_eq(r.limit, 3);
    n = build(b, "ass", 2u, "SLOWLOG", "Len");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert_eq(r.sub, TKV_SLOWLOG_LEN);
    n = build(b, "ass", 2u, "SLOWLOG", "RESET");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK, "%s", err);
    cr_assert_eq(r.sub, TKV_SLOWLOG_RESET);
    n = build(b, "assu", 3u, "SLOWLOG", "RESET", (uint64_t)1);
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_BAD_REQUEST);
    cr_assert(strstr(err, "SLOWLOG RESET takes no argument"), "%s", err);
    n = build(b, "ass", 2u, "SLOWLOG", "DUMP");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_BAD_REQUEST);
    cr_assert(strstr(err, "unknown SLOWLOG subcommand 'DUMP'"), "%s", err);
    n = build(b, "asss", 3u, "SLOWLOG", "GET", "x");
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_BAD_REQUEST);
    /* The encoder's requests parse back. */
    for (uint32_t sub = TKV_SLOWLOG_GET; sub <= TKV_SLOWLOG_RESET; sub++) {
        tkv_buf out = {0};
        tkv_req q = {.cmd = TKV_CMD_SLOWLOG, .sub = sub, .limit = 7};
        cr_assert_eq(tkv_req_encode(&out, &q), 0);
        cr_assert_eq(parse(out.data + 4, out.len - 4, &r, err), TKV_ST_OK, "%s", err);
        cr_assert(r.cmd == TKV_CMD_SLOWLOG && r.sub == sub);
        cr_assert_eq(r.limit, sub == TKV_SLOWLOG_GET ? 7 : 0);
        tkv_buf_deinit(&out);
    }
}

Test(proto, rejections_say_why)
{
    struct bad_case cases[16];
    int k = 0;
#define CASE(w, st, ...)                             \
    do {                                             \
        cases[k].what = w;                           \
        cases[k].want = st;                          \
        cases[k].n = build(cases[k].b, __VA_ARGS__); \
        k++;                                         \
    } while (0)
    CASE("not an array", TKV_ST_BAD_REQUEST, "s", "PUT");
    CASE("empty array", TKV_ST_BAD_REQUEST, "a", 0u);
    CASE("name not a string", TKV_ST_BAD_REQUEST, "au", 1u, (uint64_t)1);
    CASE("unknown command", TKV_ST_UNKNOWN_COMMAND, "as", 1u, "FLY");
    CASE("too few args", TKV_ST_BAD_REQUEST, "asb", 2u, "PUT", "k");
    CASE("too many args", TKV_ST_BAD_REQUEST, "asbbuuu", 6u, "PUT", "k", "v", (uint64_t)1,
         (uint64_t)2, (uint64_t)3);
    CASE("empty key", TKV_ST_BAD_REQUEST, "asb", 2u, "GET", "");
    CASE("key too long", TKV_ST_TOO_LARGE, "asb", 2u, "GET", "0123456789abcdefX");
    CASE("value too long", TKV_ST_TOO_LARGE, "asbb", 3u, "PUT", "k",
         "0123456789012345678901234567890123456789012345678901234567890123X");
    CASE("negative ts", TKV_ST_OUT_OF_RANGE, "asbi", 3u, "GET", "k", (int64_t)-1);
    CASE("float ts", TKV_ST_BAD_REQUEST, "asbf", 3u, "GET", "k");
    CASE("key as integer", TKV_ST_BAD_REQUEST, "asu", 2u, "GET", (uint64_t)7);
    CASE("reverse not bool", TKV_ST_BAD_REQUEST, "asbnnnu", 6u, "RANGE", "k", (uint64_t)1);
    CASE("stats with args", TKV_ST_BAD_REQUEST, "asn", 2u, "STATS");
    /* A valid request followed by a second value in the same frame. */
    CASE("trailing bytes", TKV_ST_BAD_REQUEST, "asbn", 2u, "GET", "k");
#undef CASE
    for (int i = 0; i < k; i++) {
        tkv_req r;
        char err[160];
        tkv_status st = parse(cases[i].b, cases[i].n, &r, err);
        cr_assert_eq(st, cases[i].want, "%s: got %d (%s)", cases[i].what, st, err);
        cr_assert_gt(strlen(err), 5, "%s: no message", cases[i].what);
    }
}

Test(proto, truncated_frames_never_parse)
{
    uint8_t b[256];
    char err[160];
    tkv_req r;
    size_t n = build(b, "asbbu", 4u, "PUT", "key", "value", (uint64_t)1 << 40);
    for (size_t cut = 0; cut < n; cut++)
        cr_assert_neq(parse(b, cut, &r, err), TKV_ST_OK, "prefix of %zu bytes parsed", cut);
    cr_assert_eq(parse(b, n, &r, err), TKV_ST_OK);
}

Test(proto, encoder_and_parser_agree)
{
    tkv_req in[] = {
        {.cmd = TKV_CMD_PING},
        {.cmd = TKV_CMD_PING, .msg = {(const uint8_t *)"hi", 2}, .has_msg = true},
        {.cmd = TKV_CMD_PUT, .key = {(const uint8_t *)"a\0b", 3}, .value = {NULL, 0}},
        {.cmd = TKV_CMD_PUT,
         .key = {(const uint8_t *)"k", 1},
         .value = {(const uint8_t *)"v", 1},
         .ts = 0,
         .has_ts = true},
        {.cmd = TKV_CMD_GET, .key = {(const uint8_t *)"k", 1}, .ts = 42, .has_ts = true},
        {.cmd = TKV_CMD_RANGE,
         .key = {(const uint8_t *)"k", 1},
         .from = 0,
         .to = UINT64_MAX,
         .limit = 7},
        {.cmd = TKV_CMD_RANGE,
         .key = {(const uint8_t *)"k", 1},
         .from = 3,
         .to = 9,
         .limit = UINT64_MAX,
         .reverse = true},
        {.cmd = TKV_CMD_DEL, .key = {(const uint8_t *)"k", 1}},
        {.cmd = TKV_CMD_STATS},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        tkv_buf b;
        tkv_buf_init(&b);
        cr_assert_eq(tkv_req_encode(&b, &in[i]), 0);
        uint32_t len = tkv_load_be32(b.data);
        cr_assert_eq(len + 4, b.len);
        tkv_req out;
        char err[160];
        cr_assert_eq(parse(b.data + 4, len, &out, err), TKV_ST_OK, "case %zu: %s", i, err);
        cr_assert_eq(out.cmd, in[i].cmd);
        cr_assert_eq(out.key.len, in[i].key.len);
        cr_assert(in[i].key.len == 0 || memcmp(out.key.ptr, in[i].key.ptr, in[i].key.len) == 0);
        cr_assert_eq(out.value.len, in[i].value.len);
        cr_assert_eq(out.has_ts, in[i].has_ts);
        cr_assert_eq(out.ts, in[i].ts);
        if (in[i].cmd == TKV_CMD_RANGE) {
            cr_assert_eq(out.from, in[i].from);
            cr_assert_eq(out.to, in[i].to);
            cr_assert_eq(out.limit, in[i].limit);
            cr_assert_eq(out.reverse, in[i].reverse);
        }
        tkv_buf_deinit(&b);
    }
}

Test(proto, error_reply_round_trip)
{
    tkv_buf b;
    tkv_buf_init(&b);
    cr_assert_eq(tkv_write_error(&b, TKV_ST_TOO_LARGE, "value too large"), 0);
    tkv_mp m;
    uint32_t count;
    uint64_t st;
    tkv_span msg;
    cr_assert_eq(tkv_reply_head(b.data + 4, b.len - 4, &m, &count, &st, &msg), 0);
    cr_assert_eq(count, 2);
    cr_assert_eq(st, TKV_ST_TOO_LARGE);
    cr_assert_eq(msg.len, strlen("value too large"));
    cr_assert_str_eq(tkv_status_name(st), "TOO_LARGE");
    tkv_buf_deinit(&b);
}
