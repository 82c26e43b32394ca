/*
 * request_gen.c - implements the request grammar of request_gen.h.
 */
#include "request_gen.h"

#include <stdlib.h>
#include <string.h>

enum { GA_BYTES, GA_UINT, GA_NIL, GA_BOOL, GA_INT, GA_ARRAY };

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

/* A signed integer: non-negative ones as w_uint; negative ones minimal
 * (mode 0, 3), or always int64. */
static void w_int(wbuf *w, int64_t v, int mode)
{
    if (v >= 0) {
        w_uint(w, (uint64_t)v, mode);
        return;
    }
    uint64_t u = (uint64_t)v;
    if ((mode & 1) == 0 && v >= -32)
        w_u8(w, (uint8_t)u);
    else if ((mode & 1) == 0 && v >= INT8_MIN)
        w_tag(w, 0xd0, u, 1);
    else if ((mode & 1) == 0 && v >= INT16_MIN)
        w_tag(w, 0xd1, u, 2);
    else if ((mode & 1) == 0 && v >= INT32_MIN)
        w_tag(w, 0xd2, u, 4);
    else
        w_tag(w, 0xd3, u, 8);
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

#define NBUF (GEN_MAX_BATCH + 2)

static const char alpha[4] = {'a', 'b', 0x00, (char)0xff};
static tkv_limits lim = {.max_key = TKV_DEFAULT_MAX_KEY, .max_value = GEN_MAX_VALUE};
static uint8_t keybufs[NBUF][TKV_DEFAULT_MAX_KEY + 1];
static uint8_t secretbuf[TKV_AUTH_MAX_SECRET + 1];
static uint8_t *valbufs[NBUF];
static uint32_t serial;

void gen_reset(void) { serial = 0; }

void gen_set_limits(const tkv_limits *l)
{
    lim = *l;
    if (lim.max_key > TKV_DEFAULT_MAX_KEY)
        lim.max_key = TKV_DEFAULT_MAX_KEY;
    if (lim.max_value > GEN_MAX_VALUE)
        lim.max_value = GEN_MAX_VALUE;
}

/* A key into keybufs[slot]: mostly one of 20 short keys over {a, b, 0x00,
 * 0xff} so versions pile up; sometimes the longest allowed, one byte
 * longer, or free bytes. */
static size_t gen_key(fz *f, int slot, const uint8_t **key)
{
    uint8_t k = fz_u8(f), *b = keybufs[slot];
    *key = b;
    if ((k & 0xc0) != 0xc0) {
        b[0] = (uint8_t)alpha[k & 3];
        b[1] = (uint8_t)alpha[(k >> 2) & 3];
        return 1 + ((k >> 4) & 1);
    }
    if ((k & 3) < 2) {
        size_t n = (k & 1) ? lim.max_key + 1 : lim.max_key;
        memset(b, 'k', n);
        b[n - 1] = (uint8_t)alpha[(k >> 2) & 3];
        return n;
    }
    const uint8_t *p;
    size_t n = fz_bytes(f, 1 + ((k >> 2) & 7), &p);
    if (n == 0) {
        b[0] = 'z';
        return 1;
    }
    memcpy(b, p, n);
    return n;
}

static const uint64_t special_ts[16] = {
    0,   1,   UINT64_MAX, UINT64_MAX - 1, UINT64_C(1) << 63, (UINT64_C(1) << 63) - 1, 127,  128,
    255, 256, 65535,      65536,          UINT32_MAX,        UINT64_C(1) << 32,       1000, 999,
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

static const uint64_t ttls[8] = {1, 5, 100, 1000, 1u << 20, UINT64_MAX, UINT64_C(1) << 63, 7};

/* A value into valbufs[slot], distinct from the others of the input when 4
 * bytes or longer. */
static size_t gen_value(fz *f, int slot, const uint8_t **val)
{
    uint8_t v = fz_u8(f);
    static const uint32_t small[4] = {0, 255, 256, 32};
    uint32_t n = !(v & 0x80)    ? v & 7
                 : (v & 4) == 0 ? small[v & 3]
                 : (v & 1)      ? lim.max_value + 1
                                : lim.max_value;
    if (!valbufs[slot] && !(valbufs[slot] = calloc(1, GEN_MAX_VALUE + 1)))
        abort();
    uint8_t *b = valbufs[slot];
    uint32_t s = ++serial;
    /* b[i] = s * 131 + i * 7 (mod 256) after the serial repeats every 256
     * bytes: one period by hand, the rest by doubling copies. A byte loop
     * over 70000 bytes cost a fifth of all the time under coverage
     * instrumentation (a comparison callback per byte). */
    uint32_t head = n < 4 + 256 ? n : 4 + 256;
    for (uint32_t i = 0; i < head; i++)
        b[i] = i < 4 ? (uint8_t)(s >> (8 * i)) : (uint8_t)(s * 131 + i * 7);
    for (uint32_t done = head; done < n;) {
        uint32_t k = done - 4 < n - done ? done - 4 : n - done;
        memcpy(b + done, b + 4, k);
        done += k;
    }
    *val = b;
    return n;
}

/* AUTH's secret: right, wrong, right but in another case, or too long. */
static size_t gen_secret(fz *f, uint8_t opt, const uint8_t **p)
{
    *p = secretbuf;
    switch (opt & 3) {
    case 0: memcpy(secretbuf, GEN_SECRET, sizeof GEN_SECRET - 1); return sizeof GEN_SECRET - 1;
    case 1: {
        const uint8_t *q;
        size_t n = fz_bytes(f, fz_u8(f) & 15, &q);
        memcpy(secretbuf, q, n);
        return n;
    }
    case 2: memcpy(secretbuf, "S3CR3", 5); return 5;
    default: memset(secretbuf, 's', TKV_AUTH_MAX_SECRET + 1); return TKV_AUTH_MAX_SECRET + 1;
    }
}

/* ---- requests ------------------------------------------------------------ */

static void add(gen *g, gen_arg a) { g->a[g->nargs++] = a; }
static gen_arg a_bytes(const uint8_t *p, size_t n)
{
    return (gen_arg){.kind = GA_BYTES, .p = p, .n = n};
}
static gen_arg a_uint(uint64_t u) { return (gen_arg){.kind = GA_UINT, .u = u}; }
static gen_arg a_int(int64_t i) { return (gen_arg){.kind = GA_INT, .i = i}; }
static gen_arg a_bool(bool b) { return (gen_arg){.kind = GA_BOOL, .b = b}; }
static gen_arg a_nil(void) { return (gen_arg){.kind = GA_NIL}; }
static void opt_uint(gen *g, bool has, uint64_t v) { add(g, has ? a_uint(v) : a_nil()); }

static void drop_trailing_nils(gen *g, uint32_t keep)
{
    while (g->nargs > keep && g->a[g->nargs - 1].kind == GA_NIL)
        g->nargs--;
}

/* Pads with nils up to n arguments. */
static void pad(gen *g, uint32_t n)
{
    while (g->nargs < n)
        add(g, a_nil());
}

static void set_st(gen *g, tkv_status st)
{
    if (g->st == TKV_ST_OK)
        g->st = st;
}

static const uint64_t limits[8] = {0, 1, 2, 3, 5, UINT64_MAX, UINT64_MAX - 1, 1u << 20};
static const int64_t ordinals[8] = {1, 2, 3, -1, -2, -3, INT64_MIN, INT64_MAX};

#define NCMD TKV_CMD__COUNT
static const uint8_t min_args[NCMD] = {
    [TKV_CMD_PING] = 0,   [TKV_CMD_PUT] = 2,   [TKV_CMD_GET] = 1,  [TKV_CMD_RANGE] = 1,
    [TKV_CMD_DEL] = 1,    [TKV_CMD_STATS] = 0, [TKV_CMD_AUTH] = 1, [TKV_CMD_COUNT] = 1,
    [TKV_CMD_MPUT] = 1,   [TKV_CMD_MGET] = 2,  [TKV_CMD_SCAN] = 0, [TKV_CMD_RETAIN] = 1,
    [TKV_CMD_POLICY] = 1,
};
static const uint8_t max_args[NCMD] = {
    [TKV_CMD_PING] = 1,   [TKV_CMD_PUT] = 4,   [TKV_CMD_GET] = 3,  [TKV_CMD_RANGE] = 5,
    [TKV_CMD_DEL] = 2,    [TKV_CMD_STATS] = 0, [TKV_CMD_AUTH] = 1, [TKV_CMD_COUNT] = 3,
    [TKV_CMD_MPUT] = 1,   [TKV_CMD_MGET] = 2,  [TKV_CMD_SCAN] = 3, [TKV_CMD_RETAIN] = 4,
    [TKV_CMD_POLICY] = 1,
};

static bool takes_key(tkv_cmd c)
{
    return c == TKV_CMD_PUT || c == TKV_CMD_GET || c == TKV_CMD_RANGE || c == TKV_CMD_DEL ||
           c == TKV_CMD_COUNT || c == TKV_CMD_RETAIN || c == TKV_CMD_POLICY;
}

/* A key argument; keys above the limit make the request TOO_LARGE. */
static void key_arg(fz *f, gen *g)
{
    const uint8_t *key;
    size_t klen = gen_key(f, 0, &key);
    add(g, a_bytes(key, klen));
    g->req.key = (tkv_span){key, (uint32_t)klen};
    if (klen > lim.max_key)
        set_st(g, TKV_ST_TOO_LARGE);
}

static void gen_put(fz *f, gen *g, uint8_t opt)
{
    tkv_req *r = &g->req;
    key_arg(f, g);
    const uint8_t *p;
    size_t n = gen_value(f, 0, &p);
    add(g, a_bytes(p, n));
    r->value = (tkv_span){p, (uint32_t)n};
    if (n > lim.max_value)
        set_st(g, TKV_ST_TOO_LARGE);
    r->has_ts = opt & 1;
    r->ts = r->has_ts ? gen_ts(f) : 0;
    opt_uint(g, r->has_ts, r->ts);
    r->ttl = opt & 2 ? ttls[fz_u8(f) & 7] : 0;
    opt_uint(g, r->ttl != 0, r->ttl);
}

static void gen_get(fz *f, gen *g, uint8_t opt)
{
    tkv_req *r = &g->req;
    key_arg(f, g);
    r->has_ts = (opt & 3) == 1;
    r->ts = r->has_ts ? gen_ts(f) : 0;
    opt_uint(g, r->has_ts, r->ts);
    if ((opt & 3) == 2) {
        r->has_version = true;
        r->version = ordinals[fz_u8(f) & 7];
        add(g, a_int(r->version));
    }
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
    r->reverse = opt & 16;
    add(g, opt & 8 ? a_bool(r->reverse) : a_nil());
    if (!(opt & 8))
        r->reverse = false;
}

static void gen_count(fz *f, gen *g, uint8_t opt)
{
    tkv_req *r = &g->req;
    key_arg(f, g);
    r->from = opt & 1 ? gen_ts(f) : 0;
    r->to = opt & 2 ? gen_ts(f) : TKV_TS_MAX;
    opt_uint(g, opt & 1, r->from);
    opt_uint(g, opt & 2, r->to);
}

/* DEL key; DEL key ts (a tombstone at ts); DEL key true (at the clock). */
static void gen_del(fz *f, gen *g, uint8_t opt)
{
    tkv_req *r = &g->req;
    key_arg(f, g);
    switch (opt & 3) {
    case 1:
        r->tombstone = r->has_ts = true;
        r->ts = gen_ts(f);
        add(g, a_uint(r->ts));
        break;
    case 2:
        r->tombstone = true;
        add(g, a_bool(true));
        break;
    case 3: add(g, a_nil()); break;
    default: break;
    }
}

static const uint64_t ages[4] = {1, 10, 1000, UINT64_C(1) << 40};

static void gen_retain(fz *f, gen *g, uint8_t opt)
{
    tkv_req *r = &g->req;
    key_arg(f, g);
    uint8_t b = fz_u8(f);
    uint64_t versions = (b & 7) < 4 ? (b & 7) : (b & 7) == 7 ? UINT64_C(1) << 32 : 1;
    if (versions > UINT32_MAX)
        set_st(g, TKV_ST_OUT_OF_RANGE);
    r->keep_versions = (uint32_t)versions;
    r->keep_age = opt & 1 ? ages[(b >> 3) & 3] : 0;
    opt_uint(g, versions != 0, versions);
    opt_uint(g, r->keep_age != 0, r->keep_age);
    r->dry_run = opt & 4;
    add(g, opt & 2 ? a_bool(r->dry_run) : a_nil());
    if (!(opt & 2))
        r->dry_run = false;
}

static const uint64_t scan_counts[8] = {1, 2, 3, 0, 10000, 10001, 5, 1};

static void gen_scan(fz *f, gen *g, uint8_t opt)
{
    tkv_req *r = &g->req;
    if (opt & 1) {
        uint8_t k = fz_u8(f);
        size_t n = k & 3 ? (k & 3) - 1 : 0; /* 0 to 2 bytes */
        keybufs[1][0] = (uint8_t)alpha[(k >> 2) & 3];
        keybufs[1][1] = (uint8_t)alpha[(k >> 4) & 3];
        r->has_prefix = true;
        r->prefix = (tkv_span){keybufs[1], (uint32_t)n};
        add(g, a_bytes(keybufs[1], n));
    } else {
        add(g, a_nil());
    }
    if (opt & 2) {
        const uint8_t *key;
        size_t klen = gen_key(f, 2, &key);
        r->has_cursor = true;
        r->cursor = (tkv_span){key, (uint32_t)klen};
        add(g, a_bytes(key, klen));
        if (klen > lim.max_key)
            set_st(g, TKV_ST_TOO_LARGE);
    } else {
        add(g, a_nil());
    }
    if (opt & 4) {
        r->limit = scan_counts[fz_u8(f) & 7];
        add(g, a_uint(r->limit));
        if (r->limit == 0 || r->limit > TKV_SCAN_MAX_COUNT)
            set_st(g, TKV_ST_OUT_OF_RANGE);
    } else {
        r->limit = TKV_SCAN_DEFAULT_COUNT;
    }
}

/* Arrays of items live here while a request is built. */
static gen_arg item_args[NBUF][5];
static gen_arg items[NBUF];

static void gen_mput(fz *f, gen *g, uint8_t opt)
{
    uint32_t n = opt & 4 ? GEN_MAX_BATCH + 1 : 1 + (opt & 3);
    tkv_status item_st = TKV_ST_OK;
    for (uint32_t i = 0; i < n; i++) {
        tkv_put_item *it = &g->items[i];
        uint8_t b = fz_u8(f);
        const uint8_t *p;
        size_t klen = gen_key(f, (int)i, &p), vlen;
        it->key = (tkv_span){p, (uint32_t)klen};
        vlen = gen_value(f, (int)i, &p);
        it->value = (tkv_span){p, (uint32_t)vlen};
        it->has_ts = b & 1;
        it->ts = it->has_ts ? gen_ts(f) : 0;
        it->ttl = b & 2 ? ttls[fz_u8(f) & 7] : 0;
        gen_arg *a = item_args[i];
        a[0] = a_bytes(it->key.ptr, klen);
        a[1] = a_bytes(it->value.ptr, vlen);
        a[2] = it->has_ts ? a_uint(it->ts) : a_nil();
        a[3] = it->ttl ? a_uint(it->ttl) : a_nil();
        uint32_t len = it->ttl ? 4 : it->has_ts || (b & 4) ? 3 : 2;
        items[i] = (gen_arg){.kind = GA_ARRAY, .sub = a, .n = len};
        if (item_st == TKV_ST_OK && (klen > lim.max_key || vlen > lim.max_value))
            item_st = TKV_ST_TOO_LARGE;
    }
    g->nitems = n;
    g->req.nitems = n;
    add(g, (gen_arg){.kind = GA_ARRAY, .sub = items, .n = n});
    set_st(g, n > GEN_MAX_BATCH ? TKV_ST_TOO_LARGE : item_st);
}

static void gen_mget(fz *f, gen *g, uint8_t opt)
{
    tkv_req *r = &g->req;
    uint32_t n = opt & 4 ? GEN_MAX_BATCH + 1 : 1 + (opt & 3);
    r->has_ts = opt & 8;
    r->ts = r->has_ts ? gen_ts(f) : 0;
    opt_uint(g, r->has_ts, r->ts);
    tkv_status key_st = TKV_ST_OK;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        size_t klen = gen_key(f, (int)i, &p);
        g->items[i].key = (tkv_span){p, (uint32_t)klen};
        items[i] = a_bytes(p, klen);
        if (key_st == TKV_ST_OK && klen > lim.max_key)
            key_st = TKV_ST_TOO_LARGE;
    }
    g->nitems = n;
    r->nitems = n;
    add(g, (gen_arg){.kind = GA_ARRAY, .sub = items, .n = n});
    set_st(g, n > GEN_MAX_BATCH ? TKV_ST_TOO_LARGE : key_st);
}

/* Fills g with a request for cmd that parses, or fails by choice of an
 * argument's size or range (g->st says how). */
static void gen_valid(fz *f, gen *g, tkv_cmd cmd, bool pad_nils)
{
    tkv_req *r = &g->req;
    uint8_t opt = fz_u8(f);
    const uint8_t *p;
    size_t n;
    r->cmd = cmd;
    switch (cmd) {
    case TKV_CMD_PUT: gen_put(f, g, opt); break;
    case TKV_CMD_GET: gen_get(f, g, opt); break;
    case TKV_CMD_RANGE: gen_range(f, g, opt); break;
    case TKV_CMD_COUNT: gen_count(f, g, opt); break;
    case TKV_CMD_DEL: gen_del(f, g, opt); break;
    case TKV_CMD_RETAIN: gen_retain(f, g, opt); break;
    case TKV_CMD_POLICY: key_arg(f, g); break;
    case TKV_CMD_SCAN: gen_scan(f, g, opt); break;
    case TKV_CMD_MPUT: gen_mput(f, g, opt); break;
    case TKV_CMD_MGET: gen_mget(f, g, opt); break;
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
            set_st(g, TKV_ST_TOO_LARGE);
        break;
    default: break;
    }
    if (!pad_nils)
        drop_trailing_nils(g, min_args[cmd]);
}

/* A later argument of the wrong type or value. */
static void inject_late(fz *f, gen *g, tkv_cmd cmd)
{
    static const uint8_t empty[1];
    uint8_t b = fz_u8(f);
    switch (cmd) {
    case TKV_CMD_PUT:
        if (b & 1) {
            g->a[1] = a_bytes(valbufs[0], lim.max_value + 1);
            g->st = TKV_ST_TOO_LARGE;
        } else {
            pad(g, 4);
            g->a[3] = a_uint(0); /* ttl 0 */
            g->st = TKV_ST_OUT_OF_RANGE;
        }
        break;
    case TKV_CMD_GET:
        pad(g, 3);
        if (b & 1) {
            g->a[1] = a_uint(5);
            g->a[2] = a_int(-1); /* a ts and a version */
            g->st = TKV_ST_BAD_REQUEST;
        } else {
            g->a[2] = a_int(0);
            g->st = TKV_ST_OUT_OF_RANGE;
        }
        break;
    case TKV_CMD_RANGE:
        pad(g, 5);
        g->a[4] = a_uint(1); /* reverse must be a boolean */
        g->st = TKV_ST_BAD_REQUEST;
        break;
    case TKV_CMD_DEL:
        pad(g, 2);
        g->a[1] = a_bool(false);
        g->st = TKV_ST_BAD_REQUEST;
        break;
    case TKV_CMD_RETAIN:
        pad(g, 4);
        g->a[3] = a_uint(1); /* dry_run must be a boolean */
        g->st = TKV_ST_BAD_REQUEST;
        break;
    case TKV_CMD_MPUT:
        if (b & 1) {
            item_args[0][3] = a_uint(0); /* ttl 0: refused as PUT refuses it */
            items[0].n = 4;
        } else {
            items[0].n = b & 2 ? 1 : 5; /* [key] or five elements */
            item_args[0][4] = a_nil();
        }
        g->st = g->nitems > GEN_MAX_BATCH ? TKV_ST_TOO_LARGE
                : b & 1                   ? TKV_ST_OUT_OF_RANGE
                                          : TKV_ST_BAD_REQUEST;
        break;
    case TKV_CMD_MGET:
        items[0] = a_bytes(empty, 0);
        g->st = g->nitems > GEN_MAX_BATCH ? TKV_ST_TOO_LARGE : TKV_ST_BAD_REQUEST;
        break;
    default: break;
    }
}

/* Turns a valid request into one the parser must refuse, and says with
 * which status. Injections that do not apply to cmd leave it as it was. */
static void inject(fz *f, gen *g, tkv_cmd cmd)
{
    static const uint8_t empty[1];
    switch (fz_u8(f) & 7) {
    case 0:
        memcpy(g->name, "FLY", 3);
        g->name_len = 3;
        g->st = TKV_ST_UNKNOWN_COMMAND;
        break;
    case 1:
        pad(g, max_args[cmd] + 1u);
        g->st = TKV_ST_BAD_REQUEST;
        break;
    case 2: { /* a negative number where the first integer goes */
        int at = cmd == TKV_CMD_PUT                        ? 2
                 : cmd == TKV_CMD_MGET                     ? 0
                 : cmd == TKV_CMD_SCAN                     ? 2
                 : takes_key(cmd) && cmd != TKV_CMD_POLICY ? 1
                                                           : -1;
        if (at < 0)
            break;
        pad(g, (uint32_t)at + 1);
        g->a[at] = a_int(-1 - (int64_t)fz_u8(f) * 1000);
        g->st = TKV_ST_OUT_OF_RANGE;
        break;
    }
    case 3: { /* a number where a byte string or an array goes */
        int at = cmd == TKV_CMD_MGET ? 1 : cmd == TKV_CMD_STATS ? -1 : 0;
        if (at < 0)
            break;
        pad(g, (uint32_t)at + 1);
        g->a[at] = a_uint(fz_u8(f));
        g->st = TKV_ST_BAD_REQUEST;
        break;
    }
    case 4:
        if (takes_key(cmd)) {
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
    default: inject_late(f, g, cmd); break;
    }
}

static void emit_arg(wbuf *w, const gen *g, const gen_arg *a)
{
    switch (a->kind) {
    case GA_BYTES: w_bytes(w, a->p, a->n, g->bytes_mode); break;
    case GA_UINT: w_uint(w, a->u, g->uint_mode); break;
    case GA_INT: w_int(w, a->i, g->uint_mode); break;
    case GA_NIL: w_u8(w, 0xc0); break;
    case GA_BOOL: w_u8(w, a->b ? 0xc3 : 0xc2); break;
    default: /* GA_ARRAY */
        w_array(w, (uint32_t)a->n, g->array_mode);
        for (size_t i = 0; i < a->n; i++)
            emit_arg(w, g, &a->sub[i]);
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
    TKV_CMD_PUT,    TKV_CMD_PUT,    TKV_CMD_PUT,   TKV_CMD_PUT,   TKV_CMD_GET,
    TKV_CMD_GET,    TKV_CMD_GET,    TKV_CMD_RANGE, TKV_CMD_RANGE, TKV_CMD_DEL,
    TKV_CMD_DEL,    TKV_CMD_COUNT,  TKV_CMD_MPUT,  TKV_CMD_MGET,  TKV_CMD_SCAN,
    TKV_CMD_RETAIN, TKV_CMD_POLICY, TKV_CMD_PING,  TKV_CMD_STATS, TKV_CMD_AUTH,
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
