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
        return fail(c, TKV_ST_TOO_LARGE, "key is %u bytes, the limit is %u",
                    c->req->key.len, c->lim->max_key);
    return TKV_ST_OK;
}

/* An optional unsigned argument: nil or absent leaves *has false. */
static tkv_status parse_opt_uint(parse_ctx *c, uint32_t pos, const char *what,
                                 uint64_t *out, bool *has)
{
    *has = false;
    if (pos > c->nargs || tkv_mp_read_nil(c->m))
        return TKV_ST_OK;
    tkv_mp_obj o;
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
        return fail(c, TKV_ST_TOO_LARGE, "value is %u bytes, the limit is %u",
                    c->req->value.len, c->lim->max_value);
    return parse_opt_uint(c, 3, "ts", &c->req->ts, &c->req->has_ts);
}

static tkv_status parse_get(parse_ctx *c)
{
    tkv_status st = parse_key(c);
    if (st != TKV_ST_OK)
        return st;
    return parse_opt_uint(c, 2, "ts", &c->req->ts, &c->req->has_ts);
}

static tkv_status parse_range(parse_ctx *c)
{
    tkv_req *r = c->req;
    bool has;
    tkv_status st = parse_key(c);
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 2, "from", &r->from, &has);
    if (st == TKV_ST_OK && !has)
        r->from = 0;
    if (st == TKV_ST_OK)
        st = parse_opt_uint(c, 3, "to", &r->to, &has);
    if (st == TKV_ST_OK && !has)
        r->to = TKV_TS_MAX;
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

static tkv_status parse_del(parse_ctx *c) { return parse_key(c); }

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

static const struct cmd_spec {
    const char *name;
    uint8_t min_args, max_args;
    parse_fn parse;
} cmd_specs[TKV_CMD__COUNT] = {
    [TKV_CMD_PING] = {"PING", 0, 1, parse_ping},
    [TKV_CMD_PUT] = {"PUT", 2, 3, parse_put},
    [TKV_CMD_GET] = {"GET", 1, 2, parse_get},
    [TKV_CMD_RANGE] = {"RANGE", 1, 5, parse_range},
    [TKV_CMD_DEL] = {"DEL", 1, 1, parse_del},
    [TKV_CMD_STATS] = {"STATS", 0, 0, parse_none},
    [TKV_CMD_AUTH] = {"AUTH", 1, 1, parse_auth},
};

const char *tkv_cmd_name(tkv_cmd cmd)
{
    return (unsigned)cmd < TKV_CMD__COUNT ? cmd_specs[cmd].name : "?";
}

int tkv_cmd_lookup(const uint8_t *name, size_t len)
{
    for (int i = 0; i < TKV_CMD__COUNT; i++) {
        const char *n = cmd_specs[i].name;
        if (strlen(n) == len && strncasecmp(n, (const char *)name, len) == 0)
            return i;
    }
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

tkv_status tkv_req_parse(const uint8_t *frame, size_t len, const tkv_limits *lim,
                         tkv_req *req, char *err, size_t errlen)
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

static void encode_range(msgpack_packer *pk, const tkv_req *r)
{
    bool has_from = r->from != 0, has_to = r->to != TKV_TS_MAX;
    bool has_limit = r->limit != UINT64_MAX;
    unsigned n = r->reverse ? 6 : has_limit ? 5 : has_to ? 4 : has_from ? 3 : 2;
    msgpack_pack_array(pk, n);
    pack_name(pk, TKV_CMD_RANGE);
    tkv_pack_bytes(pk, r->key.ptr, r->key.len);
    if (n > 2)
        pack_opt_uint(pk, has_from, r->from);
    if (n > 3)
        pack_opt_uint(pk, has_to, r->to);
    if (n > 4)
        pack_opt_uint(pk, has_limit, r->limit);
    if (n > 5)
        msgpack_pack_true(pk);
}

int tkv_req_encode(tkv_buf *out, const tkv_req *r)
{
    tkv_wr w;
    tkv_wr_begin(&w, out);
    msgpack_packer *pk = &w.pk;
    switch (r->cmd) {
    case TKV_CMD_PING:
        msgpack_pack_array(pk, r->has_msg ? 2 : 1);
        pack_name(pk, r->cmd);
        if (r->has_msg)
            tkv_pack_bytes(pk, r->msg.ptr, r->msg.len);
        break;
    case TKV_CMD_PUT:
        msgpack_pack_array(pk, r->has_ts ? 4 : 3);
        pack_name(pk, r->cmd);
        tkv_pack_bytes(pk, r->key.ptr, r->key.len);
        tkv_pack_bytes(pk, r->value.ptr, r->value.len);
        if (r->has_ts)
            msgpack_pack_uint64(pk, r->ts);
        break;
    case TKV_CMD_GET:
        msgpack_pack_array(pk, r->has_ts ? 3 : 2);
        pack_name(pk, r->cmd);
        tkv_pack_bytes(pk, r->key.ptr, r->key.len);
        if (r->has_ts)
            msgpack_pack_uint64(pk, r->ts);
        break;
    case TKV_CMD_RANGE:
        encode_range(pk, r);
        break;
    case TKV_CMD_DEL:
        msgpack_pack_array(pk, 2);
        pack_name(pk, r->cmd);
        tkv_pack_bytes(pk, r->key.ptr, r->key.len);
        break;
    case TKV_CMD_AUTH:
        msgpack_pack_array(pk, 2);
        pack_name(pk, r->cmd);
        tkv_pack_bytes(pk, r->msg.ptr, r->msg.len);
        break;
    default:
        msgpack_pack_array(pk, 1);
        pack_name(pk, r->cmd);
        break;
    }
    return tkv_wr_end(&w);
}

int tkv_reply_head(const uint8_t *frame, size_t len, tkv_mp *m, uint32_t *count,
                   uint64_t *status, tkv_span *errmsg)
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
    case TKV_ST_AUTH_REQUIRED: return "AUTH_REQUIRED";
    case TKV_ST_AUTH_FAILED: return "AUTH_FAILED";
    case TKV_ST_INTERNAL: return "INTERNAL";
    default: return "ERROR";
    }
}
