/*
 * request_gen.c - implements the request grammar of request_gen.h.
 */
#include "request_gen.h"

#include <stdlib.h>
#include <string.h>

enum { GA_BYTES, GA_UINT, GA_NIL, GA_BOOL, GA_NEG };

/* ---- MessagePack with a choice of encodings --------------------------- */

static void w_raw(wbuf *w, const void *p, size_t n)
{
    if (w->cap - w->n < n) {
        while (w->cap - w->n < n)
            w->cap = w->cap ? 2 * w->cap : 256;
        w->p = realloc(w->p, w->cap);
        if (!w->p)
            abort();
    }
    if (n)
        memcpy(w->p + w->n, p, n);
    w->n += n;
}

static void w_u8(wbuf *w, uint8_t b) { w_raw(w, &b, 1); }

static void w_be(wbuf *w, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        w_u8(w, (uint8_t)(v >> (8 * i)));
}

static void w_tag(wbuf *w, uint8_t tag, uint64_t v, int bytes)
{
    w_u8(w, tag);
    w_be(w, v, bytes);
}

/* mode 0: minimal; 1: always uint64; 2: int64 when it fits; 3: smallest
 * signed encoding. All are valid unsigned integers to tkv. */
static void w_uint(wbuf *w, uint64_t v, int mode)
{
    switch (mode & 3) {
    case 0:
        if (v < 128)
            w_u8(w, (uint8_t)v);
        else if (v < 256)
            w_tag(w, 0xcc, v, 1);
        else if (v < 65536)
            w_tag(w, 0xcd, v, 2);
        else if (v <= UINT32_MAX)
            w_tag(w, 0xce, v, 4);
        else
            w_tag(w, 0xcf, v, 8);
        break;
    case 1: w_tag(w, 0xcf, v, 8); break;
    case 2: w_tag(w, v <= INT64_MAX ? 0xd3 : 0xcf, v, 8); break;
    default:
        if (v < 128)
            w_tag(w, 0xd0, v, 1);
        else if (v < 32768)
            w_tag(w, 0xd1, v, 2);
        else if (v <= INT32_MAX)
            w_tag(w, 0xd2, v, 4);
        else
            w_tag(w, v <= INT64_MAX ? 0xd3 : 0xcf, v, 8);
        break;
    }
}

/* mode 0: bin, minimal; 1: str, minimal; 2: bin32; 3: str32. */
static void w_bytes(wbuf *w, const uint8_t *p, size_t n, int mode)
{
    switch (mode & 3) {
    case 0:
        if (n < 256)
            w_tag(w, 0xc4, n, 1);
        else if (n < 65536)
            w_tag(w, 0xc5, n, 2);
        else
            w_tag(w, 0xc6, n, 4);
        break;
    case 1:
        if (n < 32)
            w_u8(w, (uint8_t)(0xa0 | n));
        else if (n < 256)
            w_tag(w, 0xd9, n, 1);
        else if (n < 65536)
            w_tag(w, 0xda, n, 2);
        else
            w_tag(w, 0xdb, n, 4);
        break;
    case 2: w_tag(w, 0xc6, n, 4); break;
    default: w_tag(w, 0xdb, n, 4); break;
    }
    w_raw(w, p, n);
}

/* mode 0: fixarray when it fits; 1: array16; 2: array32. */
static void w_array(wbuf *w, uint32_t n, int mode)
{
    if (mode == 0 && n < 16)
        w_u8(w, (uint8_t)(0x90 | n));
    else if (mode <= 1 && n < 65536)
        w_tag(w, 0xdc, n, 2);
    else
        w_tag(w, 0xdd, n, 4);
}

void wbuf_free(wbuf *w)
{
    free(w->p);
    w->p = NULL;
    w->n = w->cap = 0;
}

/* ---- the parts of a request -------------------------------------------- */

static const char alpha[4] = {'a', 'b', 0x00, (char)0xff};
static uint8_t keybuf[TKV_DEFAULT_MAX_KEY + 1];
static uint8_t secretbuf[TKV_AUTH_MAX_SECRET + 1];
static uint8_t *valbuf;
static uint32_t serial;

void gen_reset(void) { serial = 0; }

/* A key: mostly one of 20 short keys over {a, b, 0x00, 0xff} so versions
 * pile up; sometimes the longest allowed, one byte longer, or free bytes. */
static size_t gen_key(fz *f, const uint8_t **key)
{
    uint8_t k = fz_u8(f);
    *key = keybuf;
    if ((k & 0xc0) != 0xc0) {
        keybuf[0] = (uint8_t)alpha[k & 3];
        keybuf[1] = (uint8_t)alpha[(k >> 2) & 3];
        return 1 + ((k >> 4) & 1);
    }
    if ((k & 3) < 2) {
        size_t n = (k & 1) ? TKV_DEFAULT_MAX_KEY + 1 : TKV_DEFAULT_MAX_KEY;
        memset(keybuf, 'k', n);
        keybuf[n - 1] = (uint8_t)alpha[(k >> 2) & 3];
        return n;
    }
    const uint8_t *p;
    size_t n = fz_bytes(f, 1 + ((k >> 2) & 7), &p);
    if (n == 0) {
        keybuf[0] = 'z';
        return 1;
    }
    memcpy(keybuf, p, n);
    return n;
}

static const uint64_t special_ts[16] = {
    0, 1, UINT64_MAX, UINT64_MAX - 1, UINT64_C(1) << 63, (UINT64_C(1) << 63) - 1, 127, 128,
    255, 256, 65535, 65536, UINT32_MAX, UINT64_C(1) << 32, 1000, 999,
};

/* Small timestamps collide (replacing versions); special ones probe the
 * edges of the encodings and of the ts arithmetic. */
static uint64_t gen_ts(fz *f)
{
    uint8_t t = fz_u8(f);
    if (t < 0x80)
        return t & 15;
    if (t < 0xc0)
        return special_ts[t & 15];
    return fz_u64(f);
}

static const uint32_t special_len[8] = {0, 255, 256, 65535, 65536, 70000, 70001, 32};

/* A value, distinct from the others of the input when 4 bytes or longer. */
static size_t gen_value(fz *f, const uint8_t **val)
{
    uint8_t v = fz_u8(f);
    uint32_t n = v & 0x80 ? special_len[v & 7] : v & 7;
    if (!valbuf && !(valbuf = calloc(1, GEN_MAX_VALUE + 1)))
        abort();
    uint32_t s = ++serial;
    for (uint32_t i = 0; i < n; i++)
        valbuf[i] = i < 4 ? (uint8_t)(s >> (8 * i)) : (uint8_t)(s * 131 + i * 7);
    *val = valbuf;
    return n;
}

/* AUTH's secret: right, wrong, right but in another case, or too long. */
static size_t gen_secret(fz *f, uint8_t opt, const uint8_t **p)
{
    *p = secretbuf;
    switch (opt & 3) {
    case 0:
        memcpy(secretbuf, GEN_SECRET, sizeof GEN_SECRET - 1);
        return sizeof GEN_SECRET - 1;
    case 1: {
        const uint8_t *q;
        size_t n = fz_bytes(f, fz_u8(f) & 15, &q);
        memcpy(secretbuf, q, n);
        return n;
    }
    case 2:
        memcpy(secretbuf, "S3CR3", 5);
        return 5;
    default:
        memset(secretbuf, 's', TKV_AUTH_MAX_SECRET + 1);
        return TKV_AUTH_MAX_SECRET + 1;
    }
}

/* ---- requests ------------------------------------------------------------ */

static void add(gen *g, gen_arg a) { g->a[g->nargs++] = a; }
static gen_arg a_bytes(const uint8_t *p, size_t n)
{
    return (gen_arg){.kind = GA_BYTES, .p = p, .n = n};
}
static gen_arg a_uint(uint64_t u) { return (gen_arg){.kind = GA_UINT, .u = u}; }
static gen_arg a_nil(void) { return (gen_arg){.kind = GA_NIL}; }
static void opt_uint(gen *g, bool has, uint64_t v) { add(g, has ? a_uint(v) : a_nil()); }

static void drop_trailing_nils(gen *g, uint32_t keep)
{
    while (g->nargs > keep && g->a[g->nargs - 1].kind == GA_NIL)
        g->nargs--;
}

static const uint64_t limits[8] = {0, 1, 2, 3, 5, UINT64_MAX, UINT64_MAX - 1, 1u << 20};
static const uint8_t min_args[TKV_CMD__COUNT] = {
    [TKV_CMD_PING] = 0, [TKV_CMD_PUT] = 2, [TKV_CMD_GET] = 1,   [TKV_CMD_RANGE] = 1,
    [TKV_CMD_DEL] = 1,  [TKV_CMD_STATS] = 0, [TKV_CMD_AUTH] = 1,
};
static const uint8_t max_args[TKV_CMD__COUNT] = {
    [TKV_CMD_PING] = 1, [TKV_CMD_PUT] = 3, [TKV_CMD_GET] = 2,   [TKV_CMD_RANGE] = 5,
    [TKV_CMD_DEL] = 1,  [TKV_CMD_STATS] = 0, [TKV_CMD_AUTH] = 1,
};

/* A key argument; keys above the limit make the request TOO_LARGE. */
static void key_arg(fz *f, gen *g)
{
    const uint8_t *key;
    size_t klen = gen_key(f, &key);
    add(g, a_bytes(key, klen));
    g->req.key = (tkv_span){key, (uint32_t)klen};
    if (klen > TKV_DEFAULT_MAX_KEY)
        g->st = TKV_ST_TOO_LARGE;
}

static void gen_range(fz *f, gen *g, uint8_t opt)
{
    tkv_req *r = &g->req;
    key_arg(f, g);
    bool hf = opt & 1, ht = opt & 2, hl = opt & 4;
    r->from = hf ? gen_ts(f) : 0;
    r->to = ht ? gen_ts(f) : TKV_TS_MAX;
    r->limit = hl ? limits[fz_u8(f) & 7] : UINT64_MAX;
    opt_uint(g, hf, r->from);
    opt_uint(g, ht, r->to);
    opt_uint(g, hl, r->limit);
    if (opt & 8) {
        r->reverse = opt & 16;
        add(g, (gen_arg){.kind = GA_BOOL, .b = r->reverse});
    } else {
        add(g, a_nil());
    }
}

/* Fills g with a request for cmd that parses (or is TOO_LARGE by choice of
 * key, value or secret). */
static void gen_valid(fz *f, gen *g, tkv_cmd cmd, bool pad_nils)
{
    tkv_req *r = &g->req;
    uint8_t opt = fz_u8(f);
    const uint8_t *p;
    size_t n;
    r->cmd = cmd;
    switch (cmd) {
    case TKV_CMD_PUT:
        key_arg(f, g);
        n = gen_value(f, &p);
        add(g, a_bytes(p, n));
        r->value = (tkv_span){p, (uint32_t)n};
        if (n > GEN_MAX_VALUE)
            g->st = TKV_ST_TOO_LARGE;
        r->has_ts = opt & 1;
        r->ts = r->has_ts ? gen_ts(f) : 0;
        opt_uint(g, r->has_ts, r->ts);
        break;
    case TKV_CMD_GET:
        key_arg(f, g);
        r->has_ts = opt & 1;
        r->ts = r->has_ts ? gen_ts(f) : 0;
        opt_uint(g, r->has_ts, r->ts);
        break;
    case TKV_CMD_RANGE: gen_range(f, g, opt); break;
    case TKV_CMD_DEL: key_arg(f, g); break;
    case TKV_CMD_PING:
        if (opt & 1) {
            n = fz_bytes(f, fz_u8(f) & 15, &p);
            r->has_msg = true;
            r->msg = (tkv_span){p, (uint32_t)n};
            add(g, a_bytes(p, n));
        } else {
            add(g, a_nil());
        }
        break;
    case TKV_CMD_AUTH:
        n = gen_secret(f, opt, &p);
        r->has_msg = true;
        r->msg = (tkv_span){p, (uint32_t)n};
        add(g, a_bytes(p, n));
        if (n > TKV_AUTH_MAX_SECRET)
            g->st = TKV_ST_TOO_LARGE;
        break;
    default:
        break;
    }
    if (!pad_nils)
        drop_trailing_nils(g, min_args[cmd]);
}

/* Turns a valid request into one the parser must refuse, and says with
 * which status. Injections that do not apply to cmd leave it valid. */
static void inject(fz *f, gen *g, tkv_cmd cmd)
{
    bool has_key = cmd == TKV_CMD_PUT || cmd == TKV_CMD_GET || cmd == TKV_CMD_RANGE ||
                   cmd == TKV_CMD_DEL;
    static const uint8_t empty[1];
    switch (fz_u8(f) & 7) {
    case 0:
        memcpy(g->name, "FLY", 3);
        g->name_len = 3;
        g->st = TKV_ST_UNKNOWN_COMMAND;
        break;
    case 1:
        while (g->nargs <= max_args[cmd])
            add(g, a_nil());
        g->st = TKV_ST_BAD_REQUEST;
        break;
    case 2: /* a negative timestamp where the first integer goes */
        if (cmd == TKV_CMD_PUT || cmd == TKV_CMD_GET || cmd == TKV_CMD_RANGE) {
            uint32_t at = cmd == TKV_CMD_PUT ? 2 : 1;
            while (g->nargs <= at)
                add(g, a_nil());
            g->a[at] = (gen_arg){.kind = GA_NEG, .u = 1 + (uint64_t)fz_u8(f) * 1000};
            g->st = TKV_ST_OUT_OF_RANGE;
        }
        break;
    case 3: /* a number where a byte string goes */
        if (has_key || cmd == TKV_CMD_PING || cmd == TKV_CMD_AUTH) {
            if (g->nargs == 0)
                add(g, a_nil());
            g->a[0] = a_uint(fz_u8(f));
            g->st = TKV_ST_BAD_REQUEST;
        }
        break;
    case 4:
        if (has_key) {
            g->a[0] = a_bytes(empty, 0);
            g->st = TKV_ST_BAD_REQUEST;
        }
        break;
    case 5:
        g->trailing = true;
        g->st = TKV_ST_BAD_REQUEST;
        break;
    case 6:
        g->count_delta = 1;
        g->st = TKV_ST_BAD_REQUEST;
        break;
    default: /* a value too long, or a wrong-typed later argument */
        if (cmd == TKV_CMD_PUT) {
            g->a[1] = a_bytes(valbuf, GEN_MAX_VALUE + 1);
            g->st = TKV_ST_TOO_LARGE;
        } else if (cmd == TKV_CMD_RANGE) {
            while (g->nargs < 5)
                add(g, a_nil());
            g->a[4] = a_uint(1); /* reverse must be a boolean */
            g->st = TKV_ST_BAD_REQUEST;
        }
        break;
    }
}

static void emit_arg(wbuf *w, const gen *g, const gen_arg *a)
{
    switch (a->kind) {
    case GA_BYTES: w_bytes(w, a->p, a->n, g->bytes_mode); break;
    case GA_UINT: w_uint(w, a->u, g->uint_mode); break;
    case GA_NIL: w_u8(w, 0xc0); break;
    case GA_BOOL: w_u8(w, a->b ? 0xc3 : 0xc2); break;
    default: /* GA_NEG: -u */
        if (a->u <= 32)
            w_u8(w, (uint8_t)(0x100 - a->u));
        else
            w_tag(w, 0xd3, (uint64_t)-(int64_t)a->u, 8);
        break;
    }
}

static void emit(const gen *g, wbuf *w)
{
    w->n = 0;
    w_array(w, 1 + g->nargs + (uint32_t)g->count_delta, g->array_mode);
    w_bytes(w, (const uint8_t *)g->name, g->name_len, g->name_bin ? 0 : 1);
    for (uint32_t i = 0; i < g->nargs; i++)
        emit_arg(w, g, &g->a[i]);
    if (g->trailing)
        w_u8(w, 0xc0);
}

const tkv_cmd gen_cmds[GEN_NCMDS] = {
    TKV_CMD_PUT,   TKV_CMD_PUT,   TKV_CMD_PUT, TKV_CMD_PUT,  TKV_CMD_GET,
    TKV_CMD_GET,   TKV_CMD_GET,   TKV_CMD_RANGE, TKV_CMD_RANGE, TKV_CMD_DEL,
    TKV_CMD_PING,  TKV_CMD_STATS, TKV_CMD_AUTH,
};

void gen_request(fz *f, gen *g, wbuf *w, tkv_cmd cmd)
{
    memset(g, 0, sizeof *g);
    uint8_t enc = fz_u8(f), flags = fz_u8(f);
    const char *name = tkv_cmd_name(cmd);
    g->name_len = strlen(name);
    for (size_t i = 0; i < g->name_len; i++)
        g->name[i] = (char)((enc & 1) && (i & 1) ? name[i] + 32 : name[i]);
    g->name_bin = enc & 2;
    g->uint_mode = (enc >> 2) & 3;
    g->bytes_mode = (enc >> 4) & 3;
    g->array_mode = (enc >> 6) % 3;
    g->st = TKV_ST_OK;
    gen_valid(f, g, cmd, flags & 1);
    if ((flags & 0x0e) == 0x0e && g->st == TKV_ST_OK)
        inject(f, g, cmd);
    emit(g, w);
}
