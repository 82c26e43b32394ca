/*
 * proto.c - implements request parsing and encoding and the reply framing of
 * proto.h. Parsing works on the frame in place: every span it returns points
 * into the caller's buffer, and nothing here allocates except the encoders,
 * which append to a caller-owned tkv_buf.
 */
#include "proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "frame.h"

typedef struct parse_ctx {
    tkv_mp *m;
    const tkv_limits *lim;
    tkv_req *req;
    uint32_t nargs; /* arguments after the name */
    char *err;
    size_t errlen;
} parse_ctx;

typedef tkv_status (*parse_fn)(parse_ctx *c);

static void show_name(char *out, size_t outlen, const uint8_t *p, uint32_t n);

static tkv_status fail(parse_ctx *c, tkv_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static tkv_status fail(parse_ctx *c, tkv_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return st;
}

static tkv_status parse_key(parse_ctx *c)
{
    int rc = tkv_mp_read_bytes(c->m, &c->req->key.ptr, &c->req->key.len);
    if (rc == TKV_MP_ETYPE)
        return fail(c, TKV_ST_BAD_REQUEST, "key must be a string or binary");
    if (rc < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "malformed MessagePack");
    if (c->req->key.len == 0)
        return fail(c, TKV_ST_BAD_REQUEST, "key must not be empty");
    if (c->req->key.len > c->lim->max_key)
        return fail(c, TKV_ST_TOO_LARGE, "key is %u bytes, the limit is %u", c->req->key.len,
                    c->lim->max_key);
    return TKV_ST_OK;
}

/* An optional unsigned argument: nil or absent leaves *has false. */
static tkv_status parse_opt_uint(parse_ctx *c, uint32_t pos, const char *what, uint64_t *out,
                                 bool *has)
{
    *has = false;
    if (pos > c->nargs || tkv_mp_read_nil(c->m))
        return TKV_ST_OK;
    if (tkv_mp_read_uint(c->m, out) == 0) {
        *has = true;
        return TKV_ST_OK;
    }
    tkv_mp_obj o; /* not an unsigned integer: say what it is */
    if (tkv_mp_next(c->m, &o) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "malformed MessagePack");
    if (o.type == TKV_MP_INT)
        return fail(c, TKV_ST_OUT_OF_RANGE, "%s must not be negative", what);
    if (o.type != TKV_MP_UINT)
        return fail(c, TKV_ST_BAD_REQUEST, "%s must be an unsigned integer or nil", what);
    *out = o.v.u;
    *has = true;
    return TKV_ST_OK;
}

static tkv_status parse_ping(parse_ctx *c)
{
    if (c->nargs == 0 || tkv_mp_read_nil(c->m))
        return TKV_ST_OK;
    int rc = tkv_mp_read_bytes(c->m, &c->req->msg.ptr, &c->req->msg.len);
    if (rc < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "PING message must be a string or binary");
    if (c->req->msg.len > c->lim->max_value)
        return fail(c, TKV_ST_TOO_LARGE, "PING message is too long");
    c->req->has_msg = true;
    return TKV_ST_OK;
}

static tkv_status parse_put(parse_ctx *c)
{
    tkv_status st = parse_key(c);
    if (st != TKV_ST_OK)
        return st;
    int rc = tkv_mp_read_bytes(c->m, &c->req->value.ptr, &c->req->value.len);
    if (rc == TKV_MP_ETYPE)
        return fail(c, TKV_ST_BAD_REQUEST, "value must be a string or binary");
    if (rc < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "malformed MessagePack");
    if (c->req->value.len > c->lim->max_value)
        return fail(c, TKV_ST_TOO_LARGE, "value is %u bytes, the limit is %u", c->req->value.len,
                    c->lim->max_value);
    st = parse_opt_uint(c, 3, "ts", &c->req->ts, &c->req->has_ts);
    bool has_ttl;
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 4, "ttl", &c->req->ttl, &has_ttl);
    if (st == TKV_ST_OK && has_ttl && c->req->ttl == 0)
        return fail(c, TKV_ST_OUT_OF_RANGE, "ttl must be positive (omit it for no expiry)");
    return st;
}

static tkv_status parse_get(parse_ctx *c)
{
    tkv_status st = parse_key(c);
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 2, "ts", &c->req->ts, &c->req->has_ts);
    if (st != TKV_ST_OK || c->nargs < 3 || tkv_mp_read_nil(c->m))
        return st;
    if (tkv_mp_read_int(c->m, &c->req->version) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "version must be an integer or nil");
    if (c->req->version == 0)
        return fail(c, TKV_ST_OUT_OF_RANGE, "versions are numbered from 1, or from -1 (newest)");
    if (c->req->has_ts)
        return fail(c, TKV_ST_BAD_REQUEST, "give a ts or a version, not both");
    c->req->has_version = true;
    return TKV_ST_OK;
}

/* Optional [from, to] at argument positions pos and pos + 1. */
static tkv_status parse_time_range(parse_ctx *c, uint32_t pos)
{
    tkv_req *r = c->req;
    bool has;
    tkv_status st = parse_opt_uint(c, pos, "from", &r->from, &has);
    if (st == TKV_ST_OK && !has)
        r->from = 0;
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, pos + 1, "to", &r->to, &has);
    if (st == TKV_ST_OK && !has)
        r->to = TKV_TS_MAX;
    return st;
}

static tkv_status parse_range(parse_ctx *c)
{
    tkv_req *r = c->req;
    bool has;
    tkv_status st = parse_key(c);
    if (st == TKV_ST_OK)
        st = parse_time_range(c, 2);
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 4, "limit", &r->limit, &has);
    if (st == TKV_ST_OK && !has)
        r->limit = UINT64_MAX;
    if (st != TKV_ST_OK || c->nargs < 5 || tkv_mp_read_nil(c->m))
        return st;
    if (tkv_mp_read_bool(c->m, &r->reverse) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "reverse must be a boolean or nil");
    return TKV_ST_OK;
}

/* DEL key: remove every version. DEL key ts: a tombstone at ts. DEL key
 * true: a tombstone at the server's clock. */
static tkv_status parse_del(parse_ctx *c)
{
    tkv_status st = parse_key(c);
    if (st != TKV_ST_OK || c->nargs < 2 || tkv_mp_read_nil(c->m))
        return st;
    bool now;
    if (tkv_mp_read_bool(c->m, &now) == 0) {
        if (!now)
            return fail(c, TKV_ST_BAD_REQUEST, "DEL's third element is a ts, true or nil");
        c->req->tombstone = true;
        return TKV_ST_OK;
    }
    st = parse_opt_uint(c, 2, "at", &c->req->ts, &c->req->has_ts);
    c->req->tombstone = st == TKV_ST_OK;
    return st;
}

static tkv_status parse_count(parse_ctx *c)
{
    tkv_status st = parse_key(c);
    return st == TKV_ST_OK ? parse_time_range(c, 2) : st;
}

static tkv_status parse_retain(parse_ctx *c)
{
    tkv_req *r = c->req;
    uint64_t versions = 0;
    bool has = false;
    tkv_status st = parse_key(c);
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 2, "versions", &versions, &has);
    if (st == TKV_ST_OK && versions > UINT32_MAX)
        return fail(c, TKV_ST_OUT_OF_RANGE, "versions must be below 2^32");
    /* 0 would be read as "no limit" by the engine (and "keep nothing" by a
     * reader): refuse it rather than guess; nil says "no limit". */
    if (st == TKV_ST_OK && has && versions == 0)
        return fail(c, TKV_ST_OUT_OF_RANGE, "versions must be at least 1 (nil: no limit)");
    r->keep_versions = (uint32_t)versions;
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 3, "age", &r->keep_age, &has);
    if (st == TKV_ST_OK && has && r->keep_age == 0)
        return fail(c, TKV_ST_OUT_OF_RANGE, "age must be at least 1 microsecond (nil: no limit)");
    if (st != TKV_ST_OK || c->nargs < 4 || tkv_mp_read_nil(c->m))
        return st;
    if (tkv_mp_read_bool(c->m, &r->dry_run) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "dry_run must be a boolean or nil");
    return TKV_ST_OK;
}

static uint32_t max_batch(const parse_ctx *c)
{
    return c->lim->max_batch ? c->lim->max_batch : TKV_DEFAULT_MAX_BATCH;
}

/* Reads an item array header and checks its size against the limit. */
static tkv_status parse_items(parse_ctx *c, const char *what)
{
    uint32_t n;
    if (tkv_mp_read_array(c->m, &n) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "%s takes an array of items", what);
    if (n == 0)
        return fail(c, TKV_ST_BAD_REQUEST, "%s of no items", what);
    if (n > max_batch(c))
        return fail(c, TKV_ST_TOO_LARGE, "%s of %u items, the limit is %u", what, n, max_batch(c));
    c->req->nitems = n;
    c->req->items = c->m->p;
    return TKV_ST_OK;
}

/* Reads one MPUT item, [key, value, ts|nil, ttl|nil], with PUT's own rules
 * (an item is a PUT's arguments in an array), so an item is refused with
 * exactly the status and message the same PUT would get. */
static tkv_status read_item(tkv_mp *m, const tkv_limits *lim, tkv_put_item *it, char *err,
                            size_t errlen)
{
    uint32_t n;
    memset(it, 0, sizeof *it);
    if (tkv_mp_read_array(m, &n) < 0 || n < 2 || n > 4) {
        snprintf(err, errlen, "must be an array [key, value, ts or nil, ttl or nil]");
        return TKV_ST_BAD_REQUEST;
    }
    tkv_req r;
    memset(&r, 0, sizeof r);
    parse_ctx c = {.m = m, .lim = lim, .req = &r, .nargs = n, .err = err, .errlen = errlen};
    tkv_status st = parse_put(&c);
    *it = (tkv_put_item){
        .key = r.key, .value = r.value, .ts = r.ts, .ttl = r.ttl, .has_ts = r.has_ts};
    return st;
}

int tkv_mput_item_next(tkv_mp *m, tkv_put_item *it)
{
    /* Items reach here already checked against the server's limits. */
    static const tkv_limits any = {.max_key = UINT32_MAX, .max_value = UINT32_MAX};
    char err[8];
    return read_item(m, &any, it, err, sizeof err) == TKV_ST_OK ? 0 : -1;
}

static tkv_status parse_mput(parse_ctx *c)
{
    tkv_status st = parse_items(c, "MPUT");
    for (uint32_t i = 0; st == TKV_ST_OK && i < c->req->nitems; i++) {
        tkv_put_item it;
        char why[160];
        st = read_item(c->m, c->lim, &it, why, sizeof why);
        if (st != TKV_ST_OK)
            return fail(c, st, "MPUT item %u: %s", i, why);
    }
    c->req->items_len = (size_t)(c->m->p - c->req->items);
    return st;
}

static tkv_status parse_mget(parse_ctx *c)
{
    tkv_status st = parse_opt_uint(c, 1, "ts", &c->req->ts, &c->req->has_ts);
    if (st == TKV_ST_OK)
        st = parse_items(c, "MGET");
    for (uint32_t i = 0; st == TKV_ST_OK && i < c->req->nitems; i++) {
        const uint8_t *p;
        uint32_t n;
        if (tkv_mp_read_bytes(c->m, &p, &n) < 0)
            return fail(c, TKV_ST_BAD_REQUEST, "MGET key %u must be a string or binary", i);
        if (n == 0 || n > c->lim->max_key)
            return fail(c, n ? TKV_ST_TOO_LARGE : TKV_ST_BAD_REQUEST,
                        "MGET key %u of %u bytes (1 to %u allowed)", i, n, c->lim->max_key);
    }
    c->req->items_len = (size_t)(c->m->p - c->req->items);
    return st;
}

static tkv_status parse_opt_bytes(parse_ctx *c, uint32_t pos, const char *what, tkv_span *out,
                                  bool *has)
{
    *has = false;
    if (pos > c->nargs || tkv_mp_read_nil(c->m))
        return TKV_ST_OK;
    if (tkv_mp_read_bytes(c->m, &out->ptr, &out->len) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "%s must be a string, binary or nil", what);
    if (out->len > c->lim->max_key)
        return fail(c, TKV_ST_TOO_LARGE, "%s of %u bytes, the limit is %u", what, out->len,
                    c->lim->max_key);
    *has = true;
    return TKV_ST_OK;
}

static tkv_status parse_scan(parse_ctx *c)
{
    tkv_req *r = c->req;
    bool has;
    tkv_status st = parse_opt_bytes(c, 1, "prefix", &r->prefix, &r->has_prefix);
    if (st == TKV_ST_OK)
        st = parse_opt_bytes(c, 2, "cursor", &r->cursor, &r->has_cursor);
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 3, "count", &r->limit, &has);
    if (st != TKV_ST_OK)
        return st;
    if (!has)
        r->limit = TKV_SCAN_DEFAULT_COUNT;
    if (r->limit == 0 || r->limit > TKV_SCAN_MAX_COUNT)
        return fail(c, TKV_ST_OUT_OF_RANGE, "count must be 1 to %u", TKV_SCAN_MAX_COUNT);
    return TKV_ST_OK;
}

static tkv_status parse_auth(parse_ctx *c)
{
    if (tkv_mp_read_bytes(c->m, &c->req->msg.ptr, &c->req->msg.len) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "AUTH takes the secret as a string or binary");
    if (c->req->msg.len > TKV_AUTH_MAX_SECRET)
        return fail(c, TKV_ST_TOO_LARGE, "secret longer than %u bytes", TKV_AUTH_MAX_SECRET);
    c->req->has_msg = true;
    return TKV_ST_OK;
}

static tkv_status parse_none(parse_ctx *c) { return TKV_ST_OK; }

static tkv_status parse_key_only(parse_ctx *c) { return parse_key(c); }

/* Optional flag at argument position pos. */
static tkv_status parse_opt_bool(parse_ctx *c, uint32_t pos, const char *what, bool *out)
{
    *out = false;
    if (pos > c->nargs || tkv_mp_read_nil(c->m))
        return TKV_ST_OK;
    if (tkv_mp_read_bool(c->m, out) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "%s must be a boolean or nil", what);
    return TKV_ST_OK;
}

/* The records are a byte string here; the server checks them as backup
 * records (protocol/backup.h) before it writes anything. */
static tkv_status parse_restore(parse_ctx *c)
{
    tkv_req *r = c->req;
    int rc = tkv_mp_read_bytes(c->m, &r->records.ptr, &r->records.len);
    if (rc < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "records must be a binary string");
    if (r->records.len == 0)
        return fail(c, TKV_ST_BAD_REQUEST, "records must not be empty");
    tkv_status st = parse_opt_bool(c, 2, "merge", &r->merge);
    return st == TKV_ST_OK ? parse_opt_bool(c, 3, "continue", &r->cont) : st;
}

static tkv_status parse_digest(parse_ctx *c)
{
    return parse_opt_uint(c, 1, "at", &c->req->ts, &c->req->has_ts);
}

/* REPLICAOF host port, or REPLICAOF NO ONE (host.ptr NULL). */
static tkv_status parse_replicaof(parse_ctx *c)
{
    tkv_req *r = c->req;
    const uint8_t *p;
    uint32_t n;
    if (tkv_mp_read_bytes(c->m, &r->host.ptr, &r->host.len) < 0 || r->host.len == 0 ||
        r->host.len > 255)
        return fail(c, TKV_ST_BAD_REQUEST, "REPLICAOF takes a host name (1 to 255 bytes) or NO");
    if (tkv_mp_read_uint(c->m, &r->port) == 0) {
        if (r->port == 0 || r->port > 65535)
            return fail(c, TKV_ST_OUT_OF_RANGE, "port must be 1 to 65535");
        return TKV_ST_OK;
    }
    if (tkv_mp_read_bytes(c->m, &p, &n) < 0 || n != 3 || r->host.len != 2 ||
        strncasecmp((const char *)p, "ONE", 3) != 0 ||
        strncasecmp((const char *)r->host.ptr, "NO", 2) != 0)
        return fail(c, TKV_ST_BAD_REQUEST, "REPLICAOF takes HOST PORT, or NO ONE");
    r->host.ptr = NULL;
    r->host.len = 0;
    return TKV_ST_OK;
}

static tkv_status parse_wait(parse_ctx *c)
{
    tkv_req *r = c->req;
    if (tkv_mp_read_uint(c->m, &r->nreplicas) < 0 || tkv_mp_read_uint(c->m, &r->timeout_ms) < 0)
        return fail(c, TKV_ST_BAD_REQUEST,
                    "WAIT takes the number of replicas and a timeout in "
                    "milliseconds (0: none)");
    return TKV_ST_OK;
}

/* PSYNC replid|nil offset: a replica asks for the stream from offset. */
static tkv_status parse_psync(parse_ctx *c)
{
    tkv_req *r = c->req;
    if (!tkv_mp_read_nil(c->m) &&
        (tkv_mp_read_bytes(c->m, &r->host.ptr, &r->host.len) < 0 || r->host.len > 64))
        return fail(c, TKV_ST_BAD_REQUEST, "PSYNC takes a replication id (or nil)");
    if (tkv_mp_read_uint(c->m, &r->offset) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "PSYNC takes an offset");
    return TKV_ST_OK;
}

static tkv_status parse_replack(parse_ctx *c)
{
    if (tkv_mp_read_uint(c->m, &c->req->offset) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "REPLACK takes an offset");
    return TKV_ST_OK;
}

/* WATCH prefix|nil [from|nil [T]]: the change feed (PROTOCOL.md §11). With
 * T it is an as-of watch of one key, and the prefix is that key. */
static tkv_status parse_watch(parse_ctx *c)
{
    tkv_req *r = c->req;
    tkv_status st = parse_opt_bytes(c, 1, "prefix", &r->prefix, &r->has_prefix);
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 2, "offset", &r->offset, &r->has_offset);
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 3, "as-of time", &r->ts, &r->has_ts);
    if (st != TKV_ST_OK)
        return st;
    /* The history `offset` is of: a resume is refused in another one. */
    if (c->nargs >= 4 && !tkv_mp_read_nil(c->m) &&
        (tkv_mp_read_bytes(c->m, &r->host.ptr, &r->host.len) < 0 || r->host.len == 0 ||
         r->host.len > 64))
        return fail(c, TKV_ST_BAD_REQUEST, "the replication id must be a string of 1 to 64 bytes");
    if (r->has_ts && (!r->has_prefix || r->prefix.len == 0))
        return fail(c, TKV_ST_BAD_REQUEST, "an as-of WATCH takes one whole key");
    return TKV_ST_OK;
}

/* CLUSTER SUBCOMMAND: one word, matched case-insensitively. A command of
 * its own with subcommands (as Redis's CLUSTER) keeps the cluster's
 * requests under one name well within the 15-byte limit on names. */
static tkv_status parse_cluster(parse_ctx *c)
{
    const uint8_t *p;
    uint32_t n;
    if (tkv_mp_read_bytes(c->m, &p, &n) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "CLUSTER takes a subcommand: SHARDS");
    if (n == 6 && strncasecmp((const char *)p, "SHARDS", 6) == 0) {
        c->req->sub = TKV_CLUSTER_SHARDS;
        return TKV_ST_OK;
    }
    char shown[40];
    show_name(shown, sizeof shown, p, n);
    return fail(c, TKV_ST_BAD_REQUEST, "unknown CLUSTER subcommand '%s'; known: SHARDS", shown);
}

/* SLOWLOG GET [n] | LEN | RESET, the subcommand in any case, as Redis's. */
static tkv_status parse_slowlog(parse_ctx *c)
{
    const uint8_t *p;
    uint32_t n;
    tkv_req *r = c->req;
    if (tkv_mp_read_bytes(c->m, &p, &n) < 0)
        return fail(c, TKV_ST_BAD_REQUEST, "SLOWLOG takes a subcommand: GET, LEN or RESET");
    static const char *const subs[] = {
        [TKV_SLOWLOG_GET] = "GET", [TKV_SLOWLOG_LEN] = "LEN", [TKV_SLOWLOG_RESET] = "RESET"};
    for (uint32_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (n != strlen(subs[i]) || strncasecmp((const char *)p, subs[i], n) != 0)
            continue;
        r->sub = i;
        if (i != TKV_SLOWLOG_GET) {
            if (c->nargs > 1)
                return fail(c, TKV_ST_BAD_REQUEST, "SLOWLOG %s takes no argument", subs[i]);
            return TKV_ST_OK;
        }
        bool has;
        tkv_status st = parse_opt_uint(c, 2, "the number of entries", &r->limit, &has);
        if (!has)
            r->limit = TKV_SLOWLOG_GET_DEFAULT;
        return st;
    }
    char shown[40];
    show_name(shown, sizeof shown, p, n);
    return fail(c, TKV_ST_BAD_REQUEST, "unknown SLOWLOG subcommand '%s'; known: GET, LEN, RESET",
                shown);
}

/* EXPORTKEY key [cursor]: the cursor is the timestamp the last piece
 * ended at (its versions continue below it). */
static tkv_status parse_exportkey(parse_ctx *c)
{
    tkv_status st = parse_key(c);
    return st == TKV_ST_OK ? parse_opt_uint(c, 2, "cursor", &c->req->offset, &c->req->has_offset)
                           : st;
}

/* IMPORTKEY key records [continue]: records as RESTORE's, every one of
 * them the key's (the server checks). */
static tkv_status parse_importkey(parse_ctx *c)
{
    tkv_req *r = c->req;
    tkv_status st = parse_key(c);
    if (st != TKV_ST_OK)
        return st;
    if (tkv_mp_read_bytes(c->m, &r->records.ptr, &r->records.len) < 0 || r->records.len == 0)
        return fail(c, TKV_ST_BAD_REQUEST, "records must be a non-empty binary string");
    return parse_opt_bool(c, 3, "continue", &r->cont);
}

/* SLOTKEYS [cursor [count]]: SCAN's paging over the keys of the slots
 * this node is migrating away. */
static tkv_status parse_slotkeys(parse_ctx *c)
{
    tkv_req *r = c->req;
    bool has;
    tkv_status st = parse_opt_bytes(c, 1, "cursor", &r->cursor, &r->has_cursor);
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 2, "count", &r->limit, &has);
    if (st != TKV_ST_OK)
        return st;
    if (!has)
        r->limit = TKV_SCAN_DEFAULT_COUNT;
    if (r->limit == 0 || r->limit > TKV_SCAN_MAX_COUNT)
        return fail(c, TKV_ST_OUT_OF_RANGE, "count must be 1 to %u", TKV_SCAN_MAX_COUNT);
    return TKV_ST_OK;
}

static const struct cmd_spec {
    const char *name;
    uint8_t min_args, max_args;
    parse_fn parse;
} cmd_specs[TKV_CMD__COUNT] = {
    [TKV_CMD_PING] = {"PING", 0, 1, parse_ping},
    [TKV_CMD_PUT] = {"PUT", 2, 4, parse_put},
    [TKV_CMD_GET] = {"GET", 1, 3, parse_get},
    [TKV_CMD_RANGE] = {"RANGE", 1, 5, parse_range},
    [TKV_CMD_DEL] = {"DEL", 1, 2, parse_del},
    [TKV_CMD_STATS] = {"STATS", 0, 0, parse_none},
    [TKV_CMD_AUTH] = {"AUTH", 1, 1, parse_auth},
    [TKV_CMD_COUNT] = {"COUNT", 1, 3, parse_count},
    [TKV_CMD_MPUT] = {"MPUT", 1, 1, parse_mput},
    [TKV_CMD_MGET] = {"MGET", 2, 2, parse_mget},
    [TKV_CMD_SCAN] = {"SCAN", 0, 3, parse_scan},
    [TKV_CMD_RETAIN] = {"RETAIN", 1, 4, parse_retain},
    [TKV_CMD_POLICY] = {"POLICY", 1, 1, parse_key_only},
    [TKV_CMD_DIGEST] = {"DIGEST", 0, 1, parse_digest},
    [TKV_CMD_BACKUP] = {"BACKUP", 0, 0, parse_none},
    [TKV_CMD_RESTORE] = {"RESTORE", 1, 3, parse_restore},
    [TKV_CMD_REPLICAOF] = {"REPLICAOF", 2, 2, parse_replicaof},
    [TKV_CMD_ROLE] = {"ROLE", 0, 0, parse_none},
    [TKV_CMD_WAIT] = {"WAIT", 2, 2, parse_wait},
    [TKV_CMD_PSYNC] = {"PSYNC", 2, 2, parse_psync},
    [TKV_CMD_REPLACK] = {"REPLACK", 1, 1, parse_replack},
    [TKV_CMD_WATCH] = {"WATCH", 0, 4, parse_watch},
    [TKV_CMD_CLUSTER] = {"CLUSTER", 1, 1, parse_cluster},
    [TKV_CMD_SLOWLOG] = {"SLOWLOG", 1, 2, parse_slowlog},
    [TKV_CMD_ASKING] = {"ASKING", 0, 0, parse_none},
    [TKV_CMD_EXPORTKEY] = {"EXPORTKEY", 1, 2, parse_exportkey},
    [TKV_CMD_IMPORTKEY] = {"IMPORTKEY", 2, 3, parse_importkey},
    [TKV_CMD_DROPKEY] = {"DROPKEY", 1, 1, parse_key_only},
    [TKV_CMD_SLOTKEYS] = {"SLOTKEYS", 0, 2, parse_slotkeys},
};

const char *tkv_cmd_name(tkv_cmd cmd)
{
    return (unsigned)cmd < TKV_CMD__COUNT ? cmd_specs[cmd].name : "?";
}

/* Every request names its command: fold the name to upper case once and
 * compare fixed-size words, instead of a string compare per table entry.
 * The names are zero-padded to NAME_PAD bytes. */
#define NAME_PAD 16
static const char padded_names[TKV_CMD__COUNT][NAME_PAD] = {
    [TKV_CMD_PING] = "PING",
    [TKV_CMD_PUT] = "PUT",
    [TKV_CMD_GET] = "GET",
    [TKV_CMD_RANGE] = "RANGE",
    [TKV_CMD_DEL] = "DEL",
    [TKV_CMD_STATS] = "STATS",
    [TKV_CMD_AUTH] = "AUTH",
    [TKV_CMD_COUNT] = "COUNT",
    [TKV_CMD_MPUT] = "MPUT",
    [TKV_CMD_MGET] = "MGET",
    [TKV_CMD_SCAN] = "SCAN",
    [TKV_CMD_RETAIN] = "RETAIN",
    [TKV_CMD_POLICY] = "POLICY",
    [TKV_CMD_DIGEST] = "DIGEST",
    [TKV_CMD_BACKUP] = "BACKUP",
    [TKV_CMD_RESTORE] = "RESTORE",
    [TKV_CMD_REPLICAOF] = "REPLICAOF",
    [TKV_CMD_ROLE] = "ROLE",
    [TKV_CMD_WAIT] = "WAIT",
    [TKV_CMD_PSYNC] = "PSYNC",
    [TKV_CMD_REPLACK] = "REPLACK",
    [TKV_CMD_WATCH] = "WATCH",
    [TKV_CMD_CLUSTER] = "CLUSTER",
    [TKV_CMD_SLOWLOG] = "SLOWLOG",
    [TKV_CMD_ASKING] = "ASKING",
    [TKV_CMD_EXPORTKEY] = "EXPORTKEY",
    [TKV_CMD_IMPORTKEY] = "IMPORTKEY",
    [TKV_CMD_DROPKEY] = "DROPKEY",
    [TKV_CMD_SLOTKEYS] = "SLOTKEYS",
};

int tkv_cmd_lookup(const uint8_t *name, size_t len)
{
    if (len == 0 || len >= NAME_PAD || memchr(name, 0, len))
        return -1;
    char up[NAME_PAD] = {0};
    for (size_t i = 0; i < len; i++)
        up[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    for (int i = 0; i < TKV_CMD__COUNT; i++)
        if (memcmp(up, padded_names[i], NAME_PAD) == 0)
            return i;
    return -1;
}

/* Shows a bad command name safely: printable bytes only, truncated. */
static void show_name(char *out, size_t outlen, const uint8_t *p, uint32_t n)
{
    size_t j = 0;
    for (uint32_t i = 0; i < n && j + 1 < outlen && i < 32; i++)
        out[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    out[j] = '\0';
}

tkv_status tkv_req_parse(const uint8_t *frame, size_t len, const tkv_limits *lim, tkv_req *req,
                         char *err, size_t errlen)
{
    tkv_mp m;
    tkv_mp_init(&m, frame, len);
    memset(req, 0, sizeof *req);
    parse_ctx c = {.m = &m, .lim = lim, .req = req, .err = err, .errlen = errlen};
    err[0] = '\0';

    uint32_t n;
    int rc = tkv_mp_read_array(&m, &n);
    if (rc < 0 || n == 0)
        return fail(&c, TKV_ST_BAD_REQUEST,
                    rc == TKV_MP_ETYPE || rc == 0 ? "request must be a non-empty array"
                                                  : "malformed MessagePack");
    const uint8_t *name;
    uint32_t name_len;
    if (tkv_mp_read_bytes(&m, &name, &name_len) < 0)
        return fail(&c, TKV_ST_BAD_REQUEST, "command name must be a string");
    int cmd = tkv_cmd_lookup(name, name_len);
    if (cmd < 0) {
        char shown[40];
        show_name(shown, sizeof shown, name, name_len);
        return fail(&c, TKV_ST_UNKNOWN_COMMAND, "unknown command '%s'", shown);
    }
    const struct cmd_spec *spec = &cmd_specs[cmd];
    c.nargs = n - 1;
    if (c.nargs < spec->min_args || c.nargs > spec->max_args)
        return fail(&c, TKV_ST_BAD_REQUEST, "%s takes %u to %u arguments, got %u", spec->name,
                    spec->min_args, spec->max_args, c.nargs);
    req->cmd = (tkv_cmd)cmd;
    tkv_status st = spec->parse(&c);
    if (st != TKV_ST_OK)
        return st;
    /* Each parser consumes exactly its arguments, so anything left is
     * outside the request array. */
    if (tkv_mp_left(&m) != 0)
        return fail(&c, TKV_ST_BAD_REQUEST, "trailing bytes after the request");
    return TKV_ST_OK;
}

static int buf_write_cb(void *data, const char *p, size_t n)
{
    tkv_wr *w = data;
    if (w->failed)
        return -1;
    if (tkv_buf_append_fast(w->b, p, n) < 0) {
        w->failed = true;
        return -1;
    }
    return 0;
}

void tkv_wr_begin(tkv_wr *w, tkv_buf *b)
{
    static const uint8_t zero[TKV_FRAME_HEADER];
    w->b = b;
    w->start = b->len;
    w->failed = tkv_buf_append(b, zero, sizeof zero) < 0;
    msgpack_packer_init(&w->pk, w, buf_write_cb);
}

int tkv_wr_end(tkv_wr *w)
{
    size_t n = w->b->len - w->start - TKV_FRAME_HEADER;
    if (w->failed || n > TKV_FRAME_MAX_LIMIT) {
        if (w->b->len >= w->start)
            w->b->len = w->start;
        return -1;
    }
    tkv_frame_put_header(w->b->data + w->start, (uint32_t)n);
    return 0;
}

int tkv_write_error(tkv_buf *b, tkv_status st, const char *msg)
{
    tkv_wr w;
    tkv_wr_begin(&w, b);
    size_t n = strlen(msg);
    msgpack_pack_array(&w.pk, 2);
    msgpack_pack_unsigned_int(&w.pk, st);
    msgpack_pack_str(&w.pk, n);
    msgpack_pack_str_body(&w.pk, msg, n);
    return tkv_wr_end(&w);
}

static void pack_opt_uint(msgpack_packer *pk, bool has, uint64_t v)
{
    if (has)
        msgpack_pack_uint64(pk, v);
    else
        msgpack_pack_nil(pk);
}

static void pack_name(msgpack_packer *pk, tkv_cmd cmd)
{
    const char *name = tkv_cmd_name(cmd);
    size_t n = strlen(name);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, name, n);
}

/* Encoders build requests from a list of arguments; trailing absent ones
 * are left out, absent ones in between are sent as nil. */
typedef enum arg_kind { A_NONE, A_BYTES, A_UINT, A_INT, A_BOOL } arg_kind;

typedef struct arg {
    arg_kind kind;
    tkv_span bytes;
    uint64_t u;
    int64_t i;
    bool b;
} arg;

static arg a_bytes(tkv_span s) { return (arg){.kind = A_BYTES, .bytes = s}; }
static arg a_uint(bool has, uint64_t u) { return (arg){.kind = has ? A_UINT : A_NONE, .u = u}; }

static void encode_args(msgpack_packer *pk, tkv_cmd cmd, const arg *args, unsigned n)
{
    while (n > 0 && args[n - 1].kind == A_NONE)
        n--;
    msgpack_pack_array(pk, n + 1);
    pack_name(pk, cmd);
    for (unsigned i = 0; i < n; i++) {
        switch (args[i].kind) {
        case A_NONE: msgpack_pack_nil(pk); break;
        case A_BYTES: tkv_pack_bytes(pk, args[i].bytes.ptr, args[i].bytes.len); break;
        case A_UINT: msgpack_pack_uint64(pk, args[i].u); break;
        case A_INT: msgpack_pack_int64(pk, args[i].i); break;
        case A_BOOL: args[i].b ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
        }
    }
}

static unsigned request_args(const tkv_req *r, arg *a)
{
    switch (r->cmd) {
    case TKV_CMD_PING: a[0] = r->has_msg ? a_bytes(r->msg) : (arg){0}; return 1;
    case TKV_CMD_AUTH: a[0] = a_bytes(r->msg); return 1;
    case TKV_CMD_PUT:
        a[0] = a_bytes(r->key);
        a[1] = a_bytes(r->value);
        a[2] = a_uint(r->has_ts, r->ts);
        a[3] = a_uint(r->ttl > 0, r->ttl);
        return 4;
    case TKV_CMD_GET:
        a[0] = a_bytes(r->key);
        a[1] = a_uint(r->has_ts, r->ts);
        a[2] = r->has_version ? (arg){.kind = A_INT, .i = r->version} : (arg){0};
        return 3;
    case TKV_CMD_RANGE:
        a[0] = a_bytes(r->key);
        a[1] = a_uint(r->from != 0, r->from);
        a[2] = a_uint(r->to != TKV_TS_MAX, r->to);
        a[3] = a_uint(r->limit != UINT64_MAX, r->limit);
        a[4] = r->reverse ? (arg){.kind = A_BOOL, .b = true} : (arg){0};
        return 5;
    case TKV_CMD_COUNT:
        a[0] = a_bytes(r->key);
        a[1] = a_uint(r->from != 0, r->from);
        a[2] = a_uint(r->to != TKV_TS_MAX, r->to);
        return 3;
    case TKV_CMD_DEL:
        a[0] = a_bytes(r->key);
        if (!r->tombstone)
            a[1] = (arg){0};
        else if (r->has_ts)
            a[1] = a_uint(true, r->ts);
        else
            a[1] = (arg){.kind = A_BOOL, .b = true};
        return 2;
    case TKV_CMD_RETAIN:
        a[0] = a_bytes(r->key);
        a[1] = a_uint(r->keep_versions > 0, r->keep_versions);
        a[2] = a_uint(r->keep_age > 0, r->keep_age);
        a[3] = r->dry_run ? (arg){.kind = A_BOOL, .b = true} : (arg){0};
        return 4;
    case TKV_CMD_POLICY: a[0] = a_bytes(r->key); return 1;
    case TKV_CMD_DIGEST: a[0] = a_uint(r->has_ts, r->ts); return 1;
    case TKV_CMD_RESTORE:
        a[0] = a_bytes(r->records);
        a[1] = r->merge ? (arg){.kind = A_BOOL, .b = true} : (arg){0};
        a[2] = r->cont ? (arg){.kind = A_BOOL, .b = true} : (arg){0};
        return 3;
    case TKV_CMD_REPLICAOF:
        if (!r->host.ptr) {
            a[0] = a_bytes((tkv_span){(const uint8_t *)"NO", 2});
            a[1] = a_bytes((tkv_span){(const uint8_t *)"ONE", 3});
        } else {
            a[0] = a_bytes(r->host);
            a[1] = a_uint(true, r->port);
        }
        return 2;
    case TKV_CMD_WAIT:
        a[0] = a_uint(true, r->nreplicas);
        a[1] = a_uint(true, r->timeout_ms);
        return 2;
    case TKV_CMD_PSYNC:
        a[0] = r->host.ptr ? a_bytes(r->host) : (arg){0};
        a[1] = a_uint(true, r->offset);
        return 2;
    case TKV_CMD_REPLACK: a[0] = a_uint(true, r->offset); return 1;
    case TKV_CMD_WATCH:
        a[0] = r->has_prefix ? a_bytes(r->prefix) : (arg){0};
        a[1] = a_uint(r->has_offset, r->offset);
        a[2] = a_uint(r->has_ts, r->ts);
        a[3] = r->host.ptr ? a_bytes(r->host) : (arg){0};
        return 4;
    case TKV_CMD_CLUSTER: a[0] = a_bytes((tkv_span){(const uint8_t *)"SHARDS", 6}); return 1;
    case TKV_CMD_SLOWLOG: {
        static const char *const subs[] = {"GET", "LEN", "RESET"};
        const char *sub = subs[r->sub < 3 ? r->sub : 0];
        a[0] = a_bytes((tkv_span){(const uint8_t *)sub, (uint32_t)strlen(sub)});
        a[1] = a_uint(r->sub == TKV_SLOWLOG_GET, r->limit);
        return 2;
    }
    case TKV_CMD_EXPORTKEY:
        a[0] = a_bytes(r->key);
        a[1] = a_uint(r->has_offset, r->offset);
        return 2;
    case TKV_CMD_IMPORTKEY:
        a[0] = a_bytes(r->key);
        a[1] = a_bytes(r->records);
        a[2] = r->cont ? (arg){.kind = A_BOOL, .b = true} : (arg){0};
        return 3;
    case TKV_CMD_DROPKEY: a[0] = a_bytes(r->key); return 1;
    case TKV_CMD_SLOTKEYS:
        a[0] = r->has_cursor ? a_bytes(r->cursor) : (arg){0};
        a[1] = a_uint(r->limit != 0, r->limit);
        return 2;
    case TKV_CMD_SCAN:
        a[0] = r->has_prefix ? a_bytes(r->prefix) : (arg){0};
        a[1] = r->has_cursor ? a_bytes(r->cursor) : (arg){0};
        a[2] = a_uint(r->limit != 0 && r->limit != UINT64_MAX, r->limit);
        return 3;
    default: return 0;
    }
}

int tkv_req_encode(tkv_buf *out, const tkv_req *r)
{
    tkv_wr w;
    tkv_wr_begin(&w, out);
    arg a[6];
    unsigned n = request_args(r, a);
    encode_args(&w.pk, r->cmd, a, n);
    return tkv_wr_end(&w);
}

int tkv_encode_mput(tkv_buf *out, const tkv_put_item *items, size_t n)
{
    tkv_wr w;
    tkv_wr_begin(&w, out);
    msgpack_pack_array(&w.pk, 2);
    pack_name(&w.pk, TKV_CMD_MPUT);
    msgpack_pack_array(&w.pk, n);
    for (size_t i = 0; i < n; i++) {
        const tkv_put_item *it = &items[i];
        unsigned k = it->ttl ? 4 : it->has_ts ? 3 : 2;
        msgpack_pack_array(&w.pk, k);
        tkv_pack_bytes(&w.pk, it->key.ptr, it->key.len);
        tkv_pack_bytes(&w.pk, it->value.ptr, it->value.len);
        if (k > 2)
            pack_opt_uint(&w.pk, it->has_ts, it->ts);
        if (k > 3)
            msgpack_pack_uint64(&w.pk, it->ttl);
    }
    return tkv_wr_end(&w);
}

int tkv_encode_mget(tkv_buf *out, uint64_t ts, bool has_ts, const tkv_span *keys, size_t n)
{
    tkv_wr w;
    tkv_wr_begin(&w, out);
    msgpack_pack_array(&w.pk, 3);
    pack_name(&w.pk, TKV_CMD_MGET);
    pack_opt_uint(&w.pk, has_ts, ts);
    msgpack_pack_array(&w.pk, n);
    for (size_t i = 0; i < n; i++)
        tkv_pack_bytes(&w.pk, keys[i].ptr, keys[i].len);
    return tkv_wr_end(&w);
}

int tkv_reply_head(const uint8_t *frame, size_t len, tkv_mp *m, uint32_t *count, uint64_t *status,
                   tkv_span *errmsg)
{
    tkv_mp_init(m, frame, len);
    errmsg->ptr = NULL;
    errmsg->len = 0;
    if (tkv_mp_read_array(m, count) < 0 || *count == 0)
        return -1;
    if (tkv_mp_read_uint(m, status) < 0)
        return -1;
    if (*status > TKV_ST_NOT_FOUND && *count >= 2 &&
        tkv_mp_read_bytes(m, &errmsg->ptr, &errmsg->len) < 0)
        return -1;
    return 0;
}

const char *tkv_status_name(uint64_t st)
{
    switch (st) {
    case TKV_ST_OK: return "OK";
    case TKV_ST_NOT_FOUND: return "NOT_FOUND";
    case TKV_ST_BAD_REQUEST: return "BAD_REQUEST";
    case TKV_ST_UNKNOWN_COMMAND: return "UNKNOWN_COMMAND";
    case TKV_ST_TOO_LARGE: return "TOO_LARGE";
    case TKV_ST_OUT_OF_RANGE: return "OUT_OF_RANGE";
    case TKV_ST_STORAGE: return "STORAGE";
    case TKV_ST_BUSY: return "BUSY";
    case TKV_ST_READONLY: return "READONLY";
    case TKV_ST_MOVED: return "MOVED";
    case TKV_ST_CROSSSLOT: return "CROSSSLOT";
    case TKV_ST_ASK: return "ASK";
    case TKV_ST_TRYAGAIN: return "TRYAGAIN";
    case TKV_ST_AUTH_REQUIRED: return "AUTH_REQUIRED";
    case TKV_ST_AUTH_FAILED: return "AUTH_FAILED";
    case TKV_ST_INTERNAL: return "INTERNAL";
    default: return "ERROR";
    }
}
