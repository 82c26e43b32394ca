/*
 * reply.c - decodes reply frames into tkv_reply, according to the command
 * each one answers. Every count is checked against the frame's bytes by the
 * MessagePack reader before anything is sized from it, and elements a
 * newer server appends are skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"


static int bad_reply(tkv_ctx *c, const char *what)
{
    return cl_set_err(c, TKV_EK_PROTOCOL, "malformed reply: %s", what);
}

static int opt_uint(tkv_mp *m, uint64_t *v, int *has)
{
    if (tkv_mp_read_nil(m)) {
        *has = 0;
        *v = 0;
        return 0;
    }
    *has = 1;
    return tkv_mp_read_uint(m, v);
}

/* The fields of a GET answer after its status: [value, ts, next, expires]
 * or [reason, next, at]. Extra elements are skipped. */
static int decode_answer(tkv_ctx *c, tkv_mp *m, uint32_t count, uint64_t st, tkv_version *v)
{
    int has;
    uint32_t used;
    memset(v, 0, sizeof *v);
    v->status = st == TKV_ST_OK ? TKV_OK : TKV_NOT_FOUND;
    if (st == TKV_ST_OK) {
        const uint8_t *p;
        uint32_t len;
        if (count < 4 || tkv_mp_read_bytes(m, &p, &len) < 0 || tkv_mp_read_uint(m, &v->ts) < 0 ||
            opt_uint(m, &v->next, &v->has_next) < 0)
            return bad_reply(c, "GET");
        v->value = p;
        v->len = len;
        used = 4;
        if (count >= 5) {
            if (opt_uint(m, &v->expires, &has) < 0)
                return bad_reply(c, "GET expiry");
            used = 5;
        }
    } else {
        uint64_t reason;
        if (count < 3 || tkv_mp_read_uint(m, &reason) < 0 ||
            opt_uint(m, &v->next, &v->has_next) < 0)
            return bad_reply(c, "GET miss");
        v->miss = (int)(reason > 255 ? 255 : reason);
        used = 3;
        if (count >= 4) {
            if (opt_uint(m, &v->at, &has) < 0)
                return bad_reply(c, "GET miss time");
            used = 4;
        }
    }
    for (; used < count; used++)
        if (tkv_mp_skip(m) < 0)
            return bad_reply(c, "GET");
    return 0;
}

static int decode_get(tkv_ctx *c, tkv_mp *m, uint32_t count, uint64_t st, tkv_reply *r)
{
    return decode_answer(c, m, count, st, &r->version);
}

static int decode_mget(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    uint32_t n;
    if (count < 2 || tkv_mp_read_array(m, &n) < 0)
        return bad_reply(c, "MGET");
    if (cl_grow(c, (void **)&c->versions, &c->versions_cap, n, sizeof(tkv_version)) < 0)
        return TKV_ERR;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t st;
        if (tkv_mp_read_array(m, &k) < 0 || k < 1 || tkv_mp_read_uint(m, &st) < 0 ||
            st > TKV_ST_NOT_FOUND || decode_answer(c, m, k, st, &c->versions[i]) < 0)
            return bad_reply(c, "MGET answer");
    }
    bool trunc = false;
    if (count >= 3 && tkv_mp_read_bool(m, &trunc) < 0)
        return bad_reply(c, "MGET flag");
    r->versions = c->versions;
    r->n = n;
    r->truncated = trunc;
    return 0;
}

static int decode_mput(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    uint32_t n;
    if (count < 2 || tkv_mp_read_array(m, &n) < 0)
        return bad_reply(c, "MPUT");
    if (cl_grow(c, (void **)&c->stamps, &c->stamps_cap, n, sizeof(uint64_t)) < 0)
        return TKV_ERR;
    for (uint32_t i = 0; i < n; i++)
        if (tkv_mp_read_uint(m, &c->stamps[i]) < 0)
            return bad_reply(c, "MPUT timestamp");
    r->stamps = c->stamps;
    r->n = n;
    return 0;
}

static int decode_scan(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    uint32_t n;
    if (count < 3 || tkv_mp_read_array(m, &n) < 0)
        return bad_reply(c, "SCAN");
    if (cl_grow(c, (void **)&c->keys, &c->keys_cap, n, sizeof(tkv_bytes)) < 0)
        return TKV_ERR;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        uint32_t len;
        if (tkv_mp_read_bytes(m, &p, &len) < 0)
            return bad_reply(c, "SCAN key");
        c->keys[i] = (tkv_bytes){p, len};
    }
    r->keys = c->keys;
    r->n = n;
    if (!tkv_mp_read_nil(m)) {
        const uint8_t *p;
        uint32_t len;
        if (tkv_mp_read_bytes(m, &p, &len) < 0)
            return bad_reply(c, "SCAN cursor");
        r->cursor = (tkv_bytes){p, len};
    }
    return 0;
}

static int decode_retain(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    int has;
    bool complete;
    if (count < 4 || tkv_mp_read_uint(m, &r->retain.removable) < 0 ||
        opt_uint(m, &r->retain.horizon, &has) < 0 || tkv_mp_read_bool(m, &complete) < 0)
        return bad_reply(c, "RETAIN");
    r->retain.complete = complete;
    return 0;
}

static int decode_policy(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    int has;
    uint64_t versions;
    bool own;
    if (count < 5 || opt_uint(m, &versions, &has) < 0 ||
        opt_uint(m, &r->policy.age_us, &has) < 0 || tkv_mp_read_bool(m, &own) < 0 ||
        opt_uint(m, &r->policy.horizon, &has) < 0 || versions > UINT32_MAX)
        return bad_reply(c, "POLICY");
    r->policy.versions = (uint32_t)versions;
    r->policy.own = own;
    return 0;
}

static int decode_range(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    uint32_t n;
    if (count < 2 || tkv_mp_read_array(m, &n) < 0)
        return bad_reply(c, "RANGE");
    /* n was checked against the frame's bytes: the allocation is bounded. */
    if (cl_grow(c, (void **)&c->entries, &c->entries_cap, n, sizeof(tkv_entry)) < 0)
        return TKV_ERR;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t pair, len;
        const uint8_t *p;
        if (tkv_mp_read_array(m, &pair) < 0 || pair < 2 ||
            tkv_mp_read_uint(m, &c->entries[i].ts) < 0)
            return bad_reply(c, "RANGE entry");
        if (tkv_mp_read_nil(m)) {
            p = NULL; /* a tombstone */
            len = 0;
        } else if (tkv_mp_read_bytes(m, &p, &len) < 0) {
            return bad_reply(c, "RANGE entry");
        }
        c->entries[i].expires = 0;
        if (pair >= 3 && tkv_mp_read_uint(m, &c->entries[i].expires) < 0)
            return bad_reply(c, "RANGE expiry");
        for (uint32_t k = 3; k < pair; k++)
            if (tkv_mp_skip(m) < 0)
                return bad_reply(c, "RANGE entry");
        c->entries[i].value = p;
        c->entries[i].len = len;
    }
    bool trunc = false;
    if (count >= 3 && tkv_mp_read_bool(m, &trunc) < 0)
        return bad_reply(c, "RANGE flag");
    r->entries = c->entries;
    r->n_entries = n;
    r->truncated = trunc;
    return 0;
}

/* Copies a string into strbuf with a NUL; returns its offset or -1. */
static long keep_str(tkv_ctx *c, const uint8_t *p, uint32_t n)
{
    size_t off = c->strbuf.len;
    static const uint8_t nul = 0;
    if (tkv_buf_append(&c->strbuf, p, n) < 0 || tkv_buf_append(&c->strbuf, &nul, 1) < 0)
        return -1;
    return (long)off;
}

static int decode_stat(tkv_ctx *c, tkv_mp *m, tkv_stat *s, long *name_off, long *str_off)
{
    const uint8_t *p;
    uint32_t n;
    if (tkv_mp_read_bytes(m, &p, &n) < 0 || (*name_off = keep_str(c, p, n)) < 0)
        return -1;
    *str_off = -1;
    s->is_str = 0;
    if (tkv_mp_read_uint(m, &s->num) == 0)
        return 0;
    if (tkv_mp_read_bytes(m, &p, &n) < 0 || (*str_off = keep_str(c, p, n)) < 0)
        return -1;
    s->is_str = 1;
    return 0;
}

static int decode_stats(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    uint32_t n;
    if (count < 2 || tkv_mp_read_map(m, &n) < 0)
        return bad_reply(c, "STATS");
    if (cl_grow(c, (void **)&c->stats, &c->stats_cap, n, sizeof(tkv_stat)) < 0)
        return TKV_ERR;
    tkv_buf_reset(&c->strbuf);
    /* Offsets first: strbuf may move while it grows. */
    for (uint32_t i = 0; i < n; i++) {
        long name_off, str_off;
        if (decode_stat(c, m, &c->stats[i], &name_off, &str_off) < 0)
            return bad_reply(c, "STATS field");
        c->stats[i].name = (const char *)(uintptr_t)name_off;
        c->stats[i].str = (const char *)(uintptr_t)(str_off < 0 ? 0 : str_off);
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *base = (const char *)c->strbuf.data;
        c->stats[i].name = base + (uintptr_t)c->stats[i].name;
        c->stats[i].str = c->stats[i].is_str ? base + (uintptr_t)c->stats[i].str : NULL;
    }
    r->stats = c->stats;
    r->n_stats = n;
    return 0;
}

static int decode_ok(tkv_ctx *c, int op, tkv_mp *m, uint32_t count, uint64_t st, tkv_reply *r)
{
    const uint8_t *p;
    uint32_t n;
    switch (op) {
    case TKV_CMD_PING:
        if (count < 2 || tkv_mp_read_bytes(m, &p, &n) < 0)
            return bad_reply(c, "PING");
        r->text = p;
        r->text_len = n;
        return 0;
    case TKV_CMD_PUT:
        return count < 2 || tkv_mp_read_uint(m, &r->ts) < 0 ? bad_reply(c, "PUT") : 0;
    case TKV_CMD_COUNT:
        return count < 2 || tkv_mp_read_uint(m, &r->count) < 0 ? bad_reply(c, "COUNT") : 0;
    case TKV_CMD_MPUT:
        return decode_mput(c, m, count, r);
    case TKV_CMD_MGET:
        return decode_mget(c, m, count, r);
    case TKV_CMD_SCAN:
        return decode_scan(c, m, count, r);
    case TKV_CMD_RETAIN:
        return decode_retain(c, m, count, r);
    case TKV_CMD_POLICY:
        return decode_policy(c, m, count, r);
    case TKV_CMD_GET:
        return decode_get(c, m, count, st, r);
    case TKV_CMD_RANGE:
        return decode_range(c, m, count, r);
    case TKV_CMD_DEL:
        /* [0, removed] or, for a tombstone, [0, ts]: both are set. */
        if (count < 2 || tkv_mp_read_uint(m, &r->count) < 0)
            return bad_reply(c, "DEL");
        r->ts = r->count;
        return 0;
    case TKV_CMD_STATS:
        return decode_stats(c, m, count, r);
    case TKV_CMD_AUTH:
        return 0;
    default:
        return bad_reply(c, "unexpected command");
    }
}

int cl_decode(tkv_ctx *c, int op, const uint8_t *f, size_t n, tkv_reply *r)
{
    memset(r, 0, sizeof *r);
    r->op = op;
    r->status = TKV_ERR;
    if (tkv_mp_validate(f, n) < 0)
        return bad_reply(c, "not a MessagePack value");
    tkv_mp m;
    uint32_t count;
    uint64_t st;
    tkv_span msg;
    if (tkv_reply_head(f, n, &m, &count, &st, &msg) < 0)
        return bad_reply(c, "no status");
    if (st > TKV_ST_NOT_FOUND) {
        c->server_code = (int)(st > 9999 ? 9999 : st);
        cl_set_err(c, TKV_EK_SERVER, "%s: %.*s", tkv_status_name(st), (int)msg.len,
                msg.ptr ? (const char *)msg.ptr : "");
        return TKV_ERR;
    }
    if (st == TKV_ST_NOT_FOUND && op != TKV_CMD_GET)
        return bad_reply(c, "NOT_FOUND for a command that cannot miss");
    if (decode_ok(c, op, &m, count, st, r) < 0)
        return TKV_ERR;
    r->status = st == TKV_ST_OK ? TKV_OK : TKV_NOT_FOUND;
    return r->status;
}

