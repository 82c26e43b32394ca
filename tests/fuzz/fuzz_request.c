/*
 * fuzz_request.c - libFuzzer target for request parsing and command
 * dispatch (protocol/proto.h, server/cmd.h) against a real engine.
 *
 * One engine is opened per process, in a mkdtemp directory, with tiny
 * fill_versions (2) and resident_versions (3) so that after a few writes
 * per key the memory/LevelDB merge paths run: reads below a key's
 * watermark, writes into the deep past, merged RANGE scans, DEL of
 * versions only on disk. Its clock is a variable the input sets, so PUT
 * without a timestamp is deterministic.
 *
 * The first input byte chooses the mode and the reply size limit:
 *
 *   bit 7 set - raw frames: the rest is [u16 big-endian length][payload]...
 *   bit 7 clear - structured: the rest drives a small grammar that writes
 *     valid-ish MessagePack requests (PUT/GET/RANGE/DEL/PING/STATS with keys
 *     from a tiny alphabet, timestamps such as 0, 2^63 and UINT64_MAX, every
 *     integer/string/array encoding, names in any case, one injected error
 *     now and then) plus COMMIT, SETCLOCK, REOPEN (close and open the engine
 *     on the same directory, so keys load from LevelDB) and mutated frames.
 *
 * Every request frame goes through tkv_dispatch_frame() from an exactly
 * sized heap copy. Checked for every one:
 *  - the reply is exactly one frame: a 4-byte length equal to the payload
 *    size, and one valid MessagePack array whose first element is a known
 *    status; errors are [status, str];
 *  - the status is what tkv_req_parse() says (and, for a frame the grammar
 *    built, what the grammar meant: fields and error status), and a parsed
 *    request survives tkv_req_encode() + tkv_req_parse() unchanged;
 *  - the answer matches a model of every key's versions kept in the
 *    harness: PUT's timestamp (explicit, or max(clock, newest + 1), or
 *    OUT_OF_RANGE after UINT64_MAX), GET's value/ts/next or miss reason,
 *    RANGE's list (order, limit, truncation exactly at the reply size
 *    limit), DEL's count, STATS's keys and versions;
 *  - a read of a key with uncommitted writes is reported dirty;
 *  - the engine's exact key/version counters equal the model's after every
 *    request and after every commit.
 *
 * Each input starts from an empty store: at its end every key it touched
 * is deleted and committed, and the counters must be back at zero. The
 * engine is reopened after an input that reopened it, and moved to a fresh
 * directory once many distinct keys have passed through its index, so
 * state carried between inputs is limited to empty index entries and
 * LevelDB tombstones.
 *
 * A violated invariant aborts with a message naming it.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "engine.h"
#include "frame.h"
#include "fuzz_common.h"
#include "proto.h"

#define MAX_OPS 256
#define MAX_VALUE 70000u
#define AUTO_COMMIT 16 /* requests between forced commits */
#define RECYCLE_KEYS 20000

/* ---- the engine under test -------------------------------------------- */

static char *g_dir;
static tkv_engine *g_eng;
static tkv_dispatch g_d;
static uint64_t g_clock;
static tkv_buf g_out;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return g_clock;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void engine_open(void)
{
    tkv_engine_opts o = {
        .dir = g_dir,
        .block_cache = 64 * 1024,
        .write_buffer = 64 * 1024, /* small memtables: reads hit table files too */
        .fill_versions = 2,
        .resident_versions = 3,
        .sync = false,
        .clock = fake_clock,
    };
    char err[512];
    if (tkv_engine_open(&o, &g_eng, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_request: cannot open the engine in %s: %s\n", g_dir, err);
        abort();
    }
    g_d.eng = g_eng;
}

static void new_dir(void)
{
    const char *base = getenv("TMPDIR");
    size_t n = strlen(base && *base ? base : "/tmp") + 32;
    g_dir = malloc(n);
    snprintf(g_dir, n, "%s/tkv-fuzz-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("fuzz_request: mkdtemp");
        abort();
    }
}

static void remove_dir(void)
{
    nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(g_dir);
    g_dir = NULL;
}

static void at_exit(void)
{
    tkv_engine_close(g_eng);
    g_eng = NULL;
    remove_dir();
    tkv_buf_deinit(&g_out);
}

static void setup_once(void)
{
    if (g_eng)
        return;
    new_dir();
    engine_open();
    g_d.lim.max_key = TKV_DEFAULT_MAX_KEY;
    g_d.lim.max_value = MAX_VALUE;
    g_d.info = NULL;
    atexit(at_exit);
}

static void commit(void)
{
    FUZZ_CHECK(tkv_engine_commit(g_eng) == 0, "commit failed: %s", tkv_engine_errmsg(g_eng));
    FUZZ_CHECK(!tkv_engine_pending(g_eng), "writes pending after a commit");
}

static void reopen(void)
{
    commit();
    tkv_engine_close(g_eng);
    g_eng = NULL;
    engine_open();
}

/* ---- the model -------------------------------------------------------- */

typedef struct mver {
    uint64_t ts;
    uint8_t *val;
    uint32_t len;
} mver;

typedef struct mkey {
    uint8_t *key;
    uint32_t klen;
    mver *v; /* ascending ts */
    size_t n, cap;
    bool dirty; /* changed since the last commit */
} mkey;

static mkey *g_keys;
static size_t g_nkeys, g_keys_cap;

static mkey *model_find(const uint8_t *key, uint32_t klen, bool create)
{
    for (size_t i = 0; i < g_nkeys; i++)
        if (g_keys[i].klen == klen && memcmp(g_keys[i].key, key, klen) == 0)
            return &g_keys[i];
    if (!create)
        return NULL;
    if (g_nkeys == g_keys_cap) {
        g_keys_cap = g_keys_cap ? 2 * g_keys_cap : 64;
        g_keys = realloc(g_keys, g_keys_cap * sizeof *g_keys);
    }
    mkey *k = &g_keys[g_nkeys++];
    memset(k, 0, sizeof *k);
    k->key = fz_dup(key, klen);
    k->klen = klen;
    return k;
}

/* Index of the largest ts <= T, or -1. */
static long model_floor(const mkey *k, uint64_t T)
{
    long i = -1;
    for (size_t j = 0; j < (k ? k->n : 0) && k->v[j].ts <= T; j++)
        i = (long)j;
    return i;
}

static void model_put(mkey *k, uint64_t ts, const uint8_t *val, uint32_t len)
{
    size_t i = 0;
    while (i < k->n && k->v[i].ts < ts)
        i++;
    if (i < k->n && k->v[i].ts == ts) {
        free(k->v[i].val);
    } else {
        if (k->n == k->cap) {
            k->cap = k->cap ? 2 * k->cap : 8;
            k->v = realloc(k->v, k->cap * sizeof *k->v);
        }
        memmove(&k->v[i + 1], &k->v[i], (k->n - i) * sizeof *k->v);
        k->n++;
    }
    k->v[i] = (mver){.ts = ts, .val = fz_dup(val, len), .len = len};
    k->dirty = true;
}

static void model_clear_key(mkey *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i].val);
    k->n = 0;
}

static void model_totals(uint64_t *keys, uint64_t *versions)
{
    *keys = *versions = 0;
    for (size_t i = 0; i < g_nkeys; i++) {
        *keys += g_keys[i].n > 0;
        *versions += g_keys[i].n;
    }
}

static void check_counters(const char *when)
{
    tkv_engine_stats s;
    tkv_engine_stats_get(g_eng, &s);
    uint64_t keys, versions;
    model_totals(&keys, &versions);
    FUZZ_CHECK(s.keys == keys && s.versions == versions,
               "%s: engine counts %llu keys / %llu versions, the model %llu / %llu", when,
               (unsigned long long)s.keys, (unsigned long long)s.versions,
               (unsigned long long)keys, (unsigned long long)versions);
}

static void model_committed(void)
{
    for (size_t i = 0; i < g_nkeys; i++)
        g_keys[i].dirty = false;
}

static void model_free(void)
{
    for (size_t i = 0; i < g_nkeys; i++) {
        model_clear_key(&g_keys[i]);
        free(g_keys[i].v);
        free(g_keys[i].key);
    }
    free(g_keys);
    g_keys = NULL;
    g_nkeys = g_keys_cap = 0;
}

/* ---- MessagePack writer with a choice of encodings ----------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

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

/* mode 0: minimal; 1: always uint64; 2: int64 when it fits; 3: smallest
 * signed encoding. All are valid unsigned integers to tkv. */
static void w_uint(wbuf *w, uint64_t v, int mode)
{
    switch (mode & 3) {
    case 0:
        if (v < 128) w_u8(w, (uint8_t)v);
        else if (v < 256) { w_u8(w, 0xcc); w_be(w, v, 1); }
        else if (v < 65536) { w_u8(w, 0xcd); w_be(w, v, 2); }
        else if (v <= UINT32_MAX) { w_u8(w, 0xce); w_be(w, v, 4); }
        else { w_u8(w, 0xcf); w_be(w, v, 8); }
        break;
    case 1: w_u8(w, 0xcf); w_be(w, v, 8); break;
    case 2:
        w_u8(w, v <= INT64_MAX ? 0xd3 : 0xcf);
        w_be(w, v, 8);
        break;
    default:
        if (v < 128) { w_u8(w, 0xd0); w_be(w, v, 1); }
        else if (v < 32768) { w_u8(w, 0xd1); w_be(w, v, 2); }
        else if (v <= INT32_MAX) { w_u8(w, 0xd2); w_be(w, v, 4); }
        else if (v <= INT64_MAX) { w_u8(w, 0xd3); w_be(w, v, 8); }
        else { w_u8(w, 0xcf); w_be(w, v, 8); }
        break;
    }
}

/* mode 0: bin, minimal; 1: str, minimal; 2: bin32; 3: str32. */
static void w_bytes(wbuf *w, const uint8_t *p, size_t n, int mode)
{
    switch (mode & 3) {
    case 0:
        if (n < 256) { w_u8(w, 0xc4); w_be(w, n, 1); }
        else if (n < 65536) { w_u8(w, 0xc5); w_be(w, n, 2); }
        else { w_u8(w, 0xc6); w_be(w, n, 4); }
        break;
    case 1:
        if (n < 32) w_u8(w, (uint8_t)(0xa0 | n));
        else if (n < 256) { w_u8(w, 0xd9); w_be(w, n, 1); }
        else if (n < 65536) { w_u8(w, 0xda); w_be(w, n, 2); }
        else { w_u8(w, 0xdb); w_be(w, n, 4); }
        break;
    case 2: w_u8(w, 0xc6); w_be(w, n, 4); break;
    default: w_u8(w, 0xdb); w_be(w, n, 4); break;
    }
    w_raw(w, p, n);
}

static void w_array(wbuf *w, uint32_t n, int mode)
{
    if (mode == 0 && n < 16)
        w_u8(w, (uint8_t)(0x90 | n));
    else if (mode <= 1 && n < 65536) {
        w_u8(w, 0xdc);
        w_be(w, n, 2);
    } else {
        w_u8(w, 0xdd);
        w_be(w, n, 4);
    }
}

/* ---- the grammar ------------------------------------------------------ */

enum { A_BYTES, A_UINT, A_NIL, A_BOOL, A_NEG };

typedef struct arg {
    int kind;
    const uint8_t *p;
    size_t n;
    uint64_t u;
    bool b;
} arg;

#define MAX_ARGS 8

typedef struct gen {
    char name[8];
    size_t name_len;
    bool name_bin;
    arg a[MAX_ARGS];
    uint32_t nargs;
    int uint_mode, bytes_mode, array_mode;
    bool trailing;        /* a byte after the array */
    int count_delta;      /* array header claims this many more elements */
    tkv_status st;        /* what the parser must answer */
    tkv_req req;          /* and, if OK, the request it must return */
} gen;

static const char alpha[4] = {'a', 'b', 0x00, (char)0xff};
static uint8_t g_keybuf[TKV_DEFAULT_MAX_KEY + 1];
static uint8_t *g_valbuf;
static uint32_t g_serial;

/* A key: mostly one of 20 short keys over {a, b, 0x00, 0xff} so versions
 * pile up; sometimes the longest allowed, one byte longer, or free bytes. */
static size_t gen_key(fz *f, const uint8_t **key)
{
    uint8_t k = fz_u8(f);
    *key = g_keybuf;
    if ((k & 0xc0) != 0xc0) {
        g_keybuf[0] = (uint8_t)alpha[k & 3];
        g_keybuf[1] = (uint8_t)alpha[(k >> 2) & 3];
        return 1 + ((k >> 4) & 1);
    }
    switch (k & 3) {
    case 0:
    case 1: {
        size_t n = (k & 1) ? TKV_DEFAULT_MAX_KEY + 1 : TKV_DEFAULT_MAX_KEY;
        memset(g_keybuf, 'k', n);
        g_keybuf[n - 1] = (uint8_t)alpha[(k >> 2) & 3];
        return n;
    }
    default: {
        const uint8_t *p;
        size_t n = fz_bytes(f, 1 + ((k >> 2) & 7), &p);
        if (n == 0) {
            g_keybuf[0] = 'z';
            return 1;
        }
        memcpy(g_keybuf, p, n);
        return n;
    }
    }
}

static const uint64_t special_ts[16] = {
    0, 1, UINT64_MAX, UINT64_MAX - 1, UINT64_C(1) << 63, (UINT64_C(1) << 63) - 1, 127, 128,
    255, 256, 65535, 65536, UINT32_MAX, UINT64_C(1) << 32, 1000, 999,
};

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

/* A value, distinct from earlier ones when at least 4 bytes long. */
static size_t gen_value(fz *f, const uint8_t **val)
{
    uint8_t v = fz_u8(f);
    uint32_t n = v & 0x80 ? special_len[v & 7] : v & 7;
    if (!g_valbuf)
        g_valbuf = calloc(1, MAX_VALUE + 1);
    uint32_t s = ++g_serial;
    for (uint32_t i = 0; i < n; i++)
        g_valbuf[i] = i < 4 ? (uint8_t)(s >> (8 * i)) : (uint8_t)(s * 131 + i * 7);
    *val = g_valbuf;
    return n;
}

static void add(gen *g, arg a) { g->a[g->nargs++] = a; }
static arg a_bytes(const uint8_t *p, size_t n) { return (arg){.kind = A_BYTES, .p = p, .n = n}; }
static arg a_uint(uint64_t u) { return (arg){.kind = A_UINT, .u = u}; }
static arg a_nil(void) { return (arg){.kind = A_NIL}; }

/* An optional uint: absent (only if nothing follows), nil, or a value. */
static void opt_uint(gen *g, bool has, uint64_t v)
{
    add(g, has ? a_uint(v) : a_nil());
}

static void drop_trailing_nils(gen *g, uint32_t keep)
{
    while (g->nargs > keep && g->a[g->nargs - 1].kind == A_NIL)
        g->nargs--;
}

static const uint64_t limits[8] = {0, 1, 2, 3, 5, UINT64_MAX, UINT64_MAX - 1, 1u << 20};

/* Fills g with a request for cmd whose parse must succeed. */
static void gen_valid(fz *f, gen *g, tkv_cmd cmd, bool pad_nils)
{
    tkv_req *r = &g->req;
    const uint8_t *key, *val;
    size_t klen, vlen;
    uint8_t opt = fz_u8(f);
    r->cmd = cmd;
    switch (cmd) {
    case TKV_CMD_PUT:
        klen = gen_key(f, &key);
        vlen = gen_value(f, &val);
        add(g, a_bytes(key, klen));
        add(g, a_bytes(val, vlen));
        r->key = (tkv_span){key, (uint32_t)klen};
        r->value = (tkv_span){val, (uint32_t)vlen};
        r->has_ts = opt & 1;
        r->ts = r->has_ts ? gen_ts(f) : 0;
        opt_uint(g, r->has_ts, r->ts);
        if (klen > TKV_DEFAULT_MAX_KEY || vlen > MAX_VALUE)
            g->st = TKV_ST_TOO_LARGE;
        break;
    case TKV_CMD_GET:
        klen = gen_key(f, &key);
        add(g, a_bytes(key, klen));
        r->key = (tkv_span){key, (uint32_t)klen};
        r->has_ts = opt & 1;
        r->ts = r->has_ts ? gen_ts(f) : 0;
        opt_uint(g, r->has_ts, r->ts);
        if (klen > TKV_DEFAULT_MAX_KEY)
            g->st = TKV_ST_TOO_LARGE;
        break;
    case TKV_CMD_RANGE: {
        klen = gen_key(f, &key);
        add(g, a_bytes(key, klen));
        r->key = (tkv_span){key, (uint32_t)klen};
        bool hf = opt & 1, ht = opt & 2, hl = opt & 4;
        r->from = hf ? gen_ts(f) : 0;
        r->to = ht ? gen_ts(f) : TKV_TS_MAX;
        r->limit = hl ? limits[fz_u8(f) & 7] : UINT64_MAX;
        opt_uint(g, hf, r->from);
        opt_uint(g, ht, r->to);
        opt_uint(g, hl, r->limit);
        if (opt & 8) {
            r->reverse = opt & 16;
            add(g, (arg){.kind = A_BOOL, .b = r->reverse});
        } else {
            add(g, a_nil());
        }
        if (klen > TKV_DEFAULT_MAX_KEY)
            g->st = TKV_ST_TOO_LARGE;
        break;
    }
    case TKV_CMD_DEL:
        klen = gen_key(f, &key);
        add(g, a_bytes(key, klen));
        r->key = (tkv_span){key, (uint32_t)klen};
        if (klen > TKV_DEFAULT_MAX_KEY)
            g->st = TKV_ST_TOO_LARGE;
        break;
    case TKV_CMD_PING:
        if (opt & 1) {
            const uint8_t *p;
            size_t n = fz_bytes(f, fz_u8(f) & 15, &p);
            r->has_msg = true;
            r->msg = (tkv_span){p, (uint32_t)n};
            add(g, a_bytes(p, n));
        } else {
            add(g, a_nil());
        }
        break;
    default:
        break;
    }
    if (!pad_nils)
        drop_trailing_nils(g, cmd == TKV_CMD_PUT ? 2 : cmd == TKV_CMD_PING ? 0 : 1);
}

static const uint8_t max_args[TKV_CMD__COUNT] = {1, 3, 2, 5, 1, 0};

/* Turns a valid request into one the parser must refuse, with the status it
 * must refuse it with. Some injections do not apply to some commands; the
 * request then stays valid. */
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
            g->a[at] = (arg){.kind = A_NEG, .u = 1 + fz_u8(f)};
            g->st = TKV_ST_OUT_OF_RANGE;
        }
        break;
    case 3: /* a number where the key (or PING's message) goes */
        if (has_key || cmd == TKV_CMD_PING) {
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
    default: /* a too long value, or a wrong-typed later argument */
        if (cmd == TKV_CMD_PUT) {
            g->a[1] = a_bytes(g_valbuf, MAX_VALUE + 1);
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

static void emit(const gen *g, wbuf *w)
{
    w->n = 0;
    w_array(w, 1 + g->nargs + (uint32_t)g->count_delta, g->array_mode);
    if (g->name_bin)
        w_bytes(w, (const uint8_t *)g->name, g->name_len, 0);
    else
        w_bytes(w, (const uint8_t *)g->name, g->name_len, 1);
    for (uint32_t i = 0; i < g->nargs; i++) {
        const arg *a = &g->a[i];
        switch (a->kind) {
        case A_BYTES: w_bytes(w, a->p, a->n, g->bytes_mode); break;
        case A_UINT: w_uint(w, a->u, g->uint_mode); break;
        case A_NIL: w_u8(w, 0xc0); break;
        case A_BOOL: w_u8(w, a->b ? 0xc3 : 0xc2); break;
        default: /* A_NEG: -u */
            if (a->u <= 32) {
                w_u8(w, (uint8_t)(0x100 - a->u));
            } else {
                w_u8(w, 0xd3);
                w_be(w, (uint64_t)-(int64_t)a->u, 8);
            }
            break;
        }
    }
    if (g->trailing)
        w_u8(w, 0xc0);
}

static const tkv_cmd op_cmds[13] = {
    TKV_CMD_PUT, TKV_CMD_PUT, TKV_CMD_PUT, TKV_CMD_PUT, TKV_CMD_PUT, TKV_CMD_GET, TKV_CMD_GET,
    TKV_CMD_GET, TKV_CMD_RANGE, TKV_CMD_RANGE, TKV_CMD_DEL, TKV_CMD_PING, TKV_CMD_STATS,
};

/* Builds one request frame into w and describes in g what it must do. */
static void gen_request(fz *f, gen *g, wbuf *w, tkv_cmd cmd)
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

/* ---- checking replies ------------------------------------------------- */

static bool span_eq(tkv_span a, tkv_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Two parsed requests mean the same thing. */
static bool req_eq(const tkv_req *a, const tkv_req *b)
{
    if (a->cmd != b->cmd)
        return false;
    switch (a->cmd) {
    case TKV_CMD_PING:
        return a->has_msg == b->has_msg && (!a->has_msg || span_eq(a->msg, b->msg));
    case TKV_CMD_PUT:
        return span_eq(a->key, b->key) && span_eq(a->value, b->value) &&
               a->has_ts == b->has_ts && (!a->has_ts || a->ts == b->ts);
    case TKV_CMD_GET:
        return span_eq(a->key, b->key) && a->has_ts == b->has_ts &&
               (!a->has_ts || a->ts == b->ts);
    case TKV_CMD_RANGE:
        return span_eq(a->key, b->key) && a->from == b->from && a->to == b->to &&
               a->limit == b->limit && a->reverse == b->reverse;
    case TKV_CMD_DEL: return span_eq(a->key, b->key);
    default: return true;
    }
}

static void check_roundtrip(const tkv_req *req)
{
    tkv_buf b = {0};
    FUZZ_CHECK(tkv_req_encode(&b, req) == 0, "tkv_req_encode failed");
    FUZZ_CHECK(b.len >= 4 && fz_be32(b.data) == b.len - 4, "encoded request is not one frame");
    uint8_t *q = fz_dup(b.data + 4, b.len - 4);
    tkv_req again;
    char err[160];
    tkv_status st = tkv_req_parse(q, b.len - 4, &g_d.lim, &again, err, sizeof err);
    FUZZ_CHECK(st == TKV_ST_OK && req_eq(req, &again),
               "%s request does not survive encode + parse (status %d: %s)",
               tkv_cmd_name(req->cmd), st, err);
    free(q);
    tkv_buf_deinit(&b);
}

static bool known_status(uint64_t st)
{
    switch (st) {
    case TKV_ST_OK: case TKV_ST_NOT_FOUND: case TKV_ST_BAD_REQUEST:
    case TKV_ST_UNKNOWN_COMMAND: case TKV_ST_TOO_LARGE: case TKV_ST_OUT_OF_RANGE:
    case TKV_ST_STORAGE: case TKV_ST_BUSY: case TKV_ST_AUTH_REQUIRED:
    case TKV_ST_AUTH_FAILED: case TKV_ST_INTERNAL:
        return true;
    default:
        return false;
    }
}

static uint64_t rd_uint(tkv_mp *m, const char *what)
{
    uint64_t u = 0;
    FUZZ_CHECK(tkv_mp_read_uint(m, &u) == 0, "reply: %s is not an unsigned integer", what);
    return u;
}

/* A uint or nil; returns whether it was a uint. */
static bool rd_opt_uint(tkv_mp *m, uint64_t *u, const char *what)
{
    if (tkv_mp_read_nil(m))
        return false;
    *u = rd_uint(m, what);
    return true;
}

static tkv_span rd_bin(tkv_mp *m, const char *what)
{
    tkv_mp_obj o;
    FUZZ_CHECK(tkv_mp_next(m, &o) == 0 && o.type == TKV_MP_BIN, "reply: %s is not a bin",
               what);
    return (tkv_span){o.v.bytes.ptr, o.v.bytes.len};
}

static size_t uint_size(uint64_t v)
{
    return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : v <= UINT32_MAX ? 5 : 9;
}

static size_t bin_hdr(size_t n) { return n < 256 ? 2 : n < 65536 ? 3 : 5; }

static void expect_get(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r)
{
    mkey *k = model_find(r->key.ptr, r->key.len, false);
    uint64_t T = r->has_ts ? r->ts : TKV_TS_MAX;
    long i = model_floor(k, T);
    uint64_t next = 0;
    bool has_next;
    if (i >= 0) {
        FUZZ_CHECK(st == TKV_ST_OK && count == 4, "GET: status %llu with %u fields, expected "
                   "a version at %llu", (unsigned long long)st, count,
                   (unsigned long long)k->v[i].ts);
        tkv_span v = rd_bin(m, "GET value");
        uint64_t ts = rd_uint(m, "GET ts");
        has_next = rd_opt_uint(m, &next, "GET next");
        const mver *want = &k->v[i];
        FUZZ_CHECK(ts == want->ts, "GET as of %llu: version %llu, the model says %llu",
                   (unsigned long long)T, (unsigned long long)ts,
                   (unsigned long long)want->ts);
        FUZZ_CHECK(span_eq(v, (tkv_span){want->val, want->len}),
                   "GET as of %llu: wrong value for version %llu (%u bytes, want %u)",
                   (unsigned long long)T, (unsigned long long)ts, v.len, want->len);
        bool want_next = (size_t)i + 1 < k->n;
        FUZZ_CHECK(has_next == want_next && (!want_next || next == k->v[i + 1].ts),
                   "GET as of %llu: next is %s%llu, the model says %s%llu",
                   (unsigned long long)T, has_next ? "" : "nil/", (unsigned long long)next,
                   want_next ? "" : "nil/",
                   want_next ? (unsigned long long)k->v[i + 1].ts : 0ull);
        return;
    }
    FUZZ_CHECK(st == TKV_ST_NOT_FOUND && count == 3,
               "GET as of %llu: status %llu, expected NOT_FOUND", (unsigned long long)T,
               (unsigned long long)st);
    uint64_t reason = rd_uint(m, "GET reason");
    has_next = rd_opt_uint(m, &next, "GET next");
    bool any = k && k->n > 0;
    FUZZ_CHECK(reason == (any ? TKV_M_BEFORE_FIRST : TKV_M_NO_KEY),
               "GET as of %llu: miss reason %llu, the key has %zu versions",
               (unsigned long long)T, (unsigned long long)reason, k ? k->n : 0);
    FUZZ_CHECK(has_next == any && (!any || next == k->v[0].ts),
               "GET miss: next %s%llu, first version %llu", has_next ? "" : "nil/",
               (unsigned long long)next, any ? (unsigned long long)k->v[0].ts : 0ull);
}

static void expect_range(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r,
                         size_t payload_len)
{
    FUZZ_CHECK(st == TKV_ST_OK && count == 3, "RANGE: status %llu, %u fields",
               (unsigned long long)st, count);
    mkey *k = model_find(r->key.ptr, r->key.len, false);
    /* The model's answer, in reply order. */
    size_t n = 0, cap = k ? k->n : 0;
    const mver **want = malloc((cap ? cap : 1) * sizeof *want);
    for (size_t j = 0; j < cap && r->from <= r->to; j++) {
        const mver *v = &k->v[r->reverse ? cap - 1 - j : j];
        if (v->ts >= r->from && v->ts <= r->to)
            want[n++] = v;
    }
    if (r->limit < n)
        n = (size_t)r->limit;
    /* Where the reply must stop: cmd.c reserves 15 bytes of headers per
     * entry and one byte for the final boolean, against max_reply. */
    size_t used = 1 + 1 + 5, fit = 0;
    while (fit < n && used + 15 + want[fit]->len <= g_d.max_reply - 1) {
        used += 1 + uint_size(want[fit]->ts) + bin_hdr(want[fit]->len) + want[fit]->len;
        fit++;
    }
    uint32_t got;
    FUZZ_CHECK(tkv_mp_read_array(m, &got) == 0, "RANGE: no list");
    FUZZ_CHECK(got == fit, "RANGE [%llu, %llu] limit %llu%s: %u versions, the model %zu "
               "(%zu before the size limit %zu)", (unsigned long long)r->from,
               (unsigned long long)r->to, (unsigned long long)r->limit,
               r->reverse ? " reverse" : "", got, fit, n, g_d.max_reply);
    for (uint32_t j = 0; j < got; j++) {
        uint32_t two;
        FUZZ_CHECK(tkv_mp_read_array(m, &two) == 0 && two == 2, "RANGE entry is not a pair");
        uint64_t ts = rd_uint(m, "RANGE ts");
        tkv_span v = rd_bin(m, "RANGE value");
        FUZZ_CHECK(ts == want[j]->ts, "RANGE entry %u: ts %llu, the model %llu", j,
                   (unsigned long long)ts, (unsigned long long)want[j]->ts);
        FUZZ_CHECK(span_eq(v, (tkv_span){want[j]->val, want[j]->len}),
                   "RANGE entry %u (ts %llu): wrong value", j, (unsigned long long)ts);
    }
    bool truncated;
    FUZZ_CHECK(tkv_mp_read_bool(m, &truncated) == 0, "RANGE: no truncated flag");
    FUZZ_CHECK(truncated == (fit < n), "RANGE: truncated is %d with %zu of %zu versions",
               truncated, fit, n);
    FUZZ_CHECK(payload_len <= g_d.max_reply, "RANGE reply of %zu bytes above max_reply %zu",
               payload_len, g_d.max_reply);
    free(want);
}

static void expect_stats(tkv_mp *m, uint64_t st, uint32_t count)
{
    FUZZ_CHECK(st == TKV_ST_OK && count == 2, "STATS: status %llu", (unsigned long long)st);
    uint32_t pairs;
    FUZZ_CHECK(tkv_mp_read_map(m, &pairs) == 0, "STATS: no map");
    uint64_t keys, versions, seen = 0;
    model_totals(&keys, &versions);
    for (uint32_t i = 0; i < pairs; i++) {
        const uint8_t *name;
        uint32_t nlen;
        tkv_mp_obj o;
        FUZZ_CHECK(tkv_mp_read_bytes(m, &name, &nlen) == 0, "STATS: field name");
        FUZZ_CHECK(tkv_mp_next(m, &o) == 0 && (o.type == TKV_MP_UINT || o.type == TKV_MP_STR),
                   "STATS: field %.*s is not a uint or str", (int)nlen, name);
        if (nlen == 4 && memcmp(name, "keys", 4) == 0) {
            FUZZ_CHECK(o.type == TKV_MP_UINT && o.v.u == keys, "STATS keys %llu, model %llu",
                       (unsigned long long)o.v.u, (unsigned long long)keys);
            seen |= 1;
        } else if (nlen == 8 && memcmp(name, "versions", 8) == 0) {
            FUZZ_CHECK(o.type == TKV_MP_UINT && o.v.u == versions,
                       "STATS versions %llu, model %llu", (unsigned long long)o.v.u,
                       (unsigned long long)versions);
            seen |= 2;
        }
    }
    FUZZ_CHECK(seen == 3, "STATS without keys or versions");
}

/* PUT: the reply and the model update. */
static void expect_put(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r, bool dirty)
{
    mkey *k = model_find(r->key.ptr, r->key.len, true);
    uint64_t ts = r->ts;
    if (!r->has_ts) {
        if (k->n && k->v[k->n - 1].ts == TKV_TS_MAX) {
            FUZZ_CHECK(st == TKV_ST_OUT_OF_RANGE,
                       "PUT without ts after a version at UINT64_MAX: status %llu",
                       (unsigned long long)st);
            return;
        }
        uint64_t newest1 = k->n ? k->v[k->n - 1].ts + 1 : 0;
        ts = g_clock > newest1 ? g_clock : newest1;
    }
    FUZZ_CHECK(st == TKV_ST_OK && count == 2, "PUT: status %llu", (unsigned long long)st);
    uint64_t got = rd_uint(m, "PUT ts");
    FUZZ_CHECK(got == ts, "PUT%s stored at %llu, expected %llu (clock %llu)",
               r->has_ts ? "" : " without ts", (unsigned long long)got,
               (unsigned long long)ts, (unsigned long long)g_clock);
    FUZZ_CHECK(dirty && tkv_engine_pending(g_eng), "PUT not reported dirty/pending");
    model_put(k, ts, r->value.ptr, r->value.len);
}

static void expect_del(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r, bool dirty)
{
    FUZZ_CHECK(st == TKV_ST_OK && count == 2, "DEL: status %llu", (unsigned long long)st);
    mkey *k = model_find(r->key.ptr, r->key.len, true);
    uint64_t got = rd_uint(m, "DEL count");
    FUZZ_CHECK(got == k->n, "DEL removed %llu versions, the model has %zu",
               (unsigned long long)got, k->n);
    if (k->n) {
        FUZZ_CHECK(dirty, "DEL that removed versions not reported dirty");
        k->dirty = true;
    }
    model_clear_key(k);
}

/* Runs one request frame and checks everything about its reply. intent is
 * NULL for frames the grammar did not build (or mutated). */
static void run_frame(const uint8_t *frame, size_t len, const gen *intent)
{
    uint8_t *q = fz_dup(frame, len);
    tkv_req req;
    char err[160];
    tkv_status pst = tkv_req_parse(q, len, &g_d.lim, &req, err, sizeof err);
    if (intent) {
        FUZZ_CHECK(pst == intent->st, "%s request built to get status %d parses to %d (%s)",
                   tkv_cmd_name(intent->req.cmd), intent->st, pst, err);
        if (pst == TKV_ST_OK)
            FUZZ_CHECK(req_eq(&req, &intent->req), "%s request parses to different fields",
                       tkv_cmd_name(req.cmd));
    }
    if (pst == TKV_ST_OK)
        check_roundtrip(&req);

    uint64_t errors0 = g_d.errors, calls0 = pst == TKV_ST_OK ? g_d.calls[req.cmd] : 0;
    bool dirty = false;
    tkv_buf_reset(&g_out);
    int rc = tkv_dispatch_frame(&g_d, q, len, &g_out, &dirty);

    /* Exactly one well-formed reply frame. */
    FUZZ_CHECK(rc >= 0, "dispatch failed (%d) without running out of memory", rc);
    FUZZ_CHECK(g_out.len >= 4 && fz_be32(g_out.data) == g_out.len - 4,
               "reply is not exactly one frame (%zu bytes, header %u)", g_out.len,
               g_out.len >= 4 ? fz_be32(g_out.data) : 0);
    size_t plen = g_out.len - 4;
    uint8_t *p = fz_dup(g_out.data + 4, plen);
    FUZZ_CHECK(tkv_mp_validate(p, plen) == 0, "reply payload is not one MessagePack value");
    tkv_mp m;
    tkv_mp_init(&m, p, plen);
    uint32_t count;
    FUZZ_CHECK(tkv_mp_read_array(&m, &count) == 0 && count >= 1, "reply is not an array");
    uint64_t st = rd_uint(&m, "status");
    FUZZ_CHECK(known_status(st), "unknown status %llu", (unsigned long long)st);
    FUZZ_CHECK((uint64_t)rc == st, "dispatch returned %d for a reply with status %llu", rc,
               (unsigned long long)st);
    FUZZ_CHECK(g_d.errors - errors0 == (st >= 10), "error counter moved by %llu for status %llu",
               (unsigned long long)(g_d.errors - errors0), (unsigned long long)st);
    if (st >= 10) {
        tkv_mp_obj o;
        FUZZ_CHECK(count == 2 && tkv_mp_next(&m, &o) == 0 && o.type == TKV_MP_STR,
                   "error reply is not [status, str]");
    }

    if (pst != TKV_ST_OK) {
        FUZZ_CHECK(st == pst, "parser says %d, the reply %llu", pst, (unsigned long long)st);
        goto out;
    }
    FUZZ_CHECK(g_d.calls[req.cmd] == calls0 + 1, "calls[%s] not counted",
               tkv_cmd_name(req.cmd));
    mkey *k = req.cmd == TKV_CMD_GET || req.cmd == TKV_CMD_RANGE
                  ? model_find(req.key.ptr, req.key.len, false)
                  : NULL;
    bool reads_dirty = k && k->dirty &&
                       (req.cmd == TKV_CMD_GET ||
                        (req.from <= req.to && req.limit > 0));
    switch (req.cmd) {
    case TKV_CMD_PING: {
        FUZZ_CHECK(st == TKV_ST_OK && count == 2, "PING: status %llu", (unsigned long long)st);
        const uint8_t *echo;
        uint32_t elen;
        FUZZ_CHECK(tkv_mp_read_bytes(&m, &echo, &elen) == 0, "PING: no message");
        tkv_span want = req.has_msg ? req.msg : (tkv_span){(const uint8_t *)"PONG", 4};
        FUZZ_CHECK(span_eq((tkv_span){echo, elen}, want), "PING echoed something else");
        break;
    }
    case TKV_CMD_PUT: expect_put(&m, st, count, &req, dirty); break;
    case TKV_CMD_GET: expect_get(&m, st, count, &req); break;
    case TKV_CMD_RANGE: expect_range(&m, st, count, &req, plen); break;
    case TKV_CMD_DEL: expect_del(&m, st, count, &req, dirty); break;
    default: expect_stats(&m, st, count); break;
    }
    if (reads_dirty)
        FUZZ_CHECK(dirty, "%s of a key with uncommitted writes not reported dirty",
                   tkv_cmd_name(req.cmd));
    FUZZ_CHECK(tkv_mp_left(&m) == 0, "reply has fields the model did not expect");
    check_counters(tkv_cmd_name(req.cmd));
out:
    free(p);
    free(q);
}

/* ---- driving an input ------------------------------------------------- */

static const size_t max_replies[4] = {TKV_DEFAULT_MAX_FRAME, 64, 200, 4096};
static const uint64_t clocks[8] = {
    1000, 0, 5, 100, UINT64_MAX - 1, UINT64_MAX, UINT64_C(1795313217177998), 1u << 16,
};

static bool g_reopened;
static unsigned g_since_commit;

static void do_commit(void)
{
    commit();
    model_committed();
    g_since_commit = 0;
    check_counters("commit");
}

static void after_request(void)
{
    if (++g_since_commit >= AUTO_COMMIT)
        do_commit();
}

static void run_raw(fz *f)
{
    for (int i = 0; i < MAX_OPS && !fz_empty(f); i++) {
        const uint8_t *p;
        size_t n = fz_bytes(f, fz_u16(f), &p);
        run_frame(p, n, NULL);
        if (i % 4 == 3)
            do_commit();
    }
}

/* A frame the grammar built, then damaged: a flipped byte, a cut, or a
 * changed array count. */
static void run_mutated(fz *f, wbuf *w)
{
    gen g;
    gen_request(f, &g, w, op_cmds[fz_below(f, 13)]);
    uint8_t how = fz_u8(f);
    size_t at = w->n ? fz_u16(f) % w->n : 0;
    switch (how & 3) {
    case 0:
        if (w->n)
            w->p[at] ^= (uint8_t)(1u << ((how >> 2) & 7));
        break;
    case 1: w->n = at; break;
    case 2:
        if (w->n)
            w->p[at] = fz_u8(f);
        break;
    default:
        if (w->n)
            w->p[0] = (uint8_t)(0x90 | ((how >> 2) & 15));
        break;
    }
    run_frame(w->p, w->n, NULL);
}

static void run_structured(fz *f)
{
    wbuf w = {0};
    for (int i = 0; i < MAX_OPS && !fz_empty(f); i++) {
        uint8_t op = fz_u8(f) % 16;
        if (op < 13) {
            gen g;
            gen_request(f, &g, &w, op_cmds[op]);
            run_frame(w.p, w.n, &g);
            after_request();
            continue;
        }
        switch (op) {
        case 13: do_commit(); break;
        case 14: g_clock = clocks[fz_u8(f) & 7]; break;
        default:
            switch (fz_u8(f) & 3) {
            case 0:
                reopen();
                model_committed();
                g_since_commit = 0;
                g_reopened = true;
                check_counters("reopen");
                break;
            case 1: {
                const uint8_t *p;
                size_t n = fz_bytes(f, fz_u8(f), &p);
                run_frame(p, n, NULL);
                after_request();
                break;
            }
            default:
                run_mutated(f, &w);
                after_request();
                break;
            }
        }
    }
    free(w.p);
}

/* Deletes everything the input wrote so the next input starts empty. */
static void reset_store(void)
{
    for (size_t i = 0; i < g_nkeys; i++) {
        uint64_t removed;
        bool dirty;
        tkv_status st = tkv_engine_del(g_eng, g_keys[i].key, g_keys[i].klen, &removed, &dirty);
        FUZZ_CHECK(st == TKV_ST_OK && removed == g_keys[i].n,
                   "cleanup DEL: status %d, removed %llu of %zu versions", st,
                   (unsigned long long)removed, g_keys[i].n);
        model_clear_key(&g_keys[i]);
    }
    do_commit();
    tkv_engine_stats s;
    tkv_engine_stats_get(g_eng, &s);
    FUZZ_CHECK(s.keys == 0 && s.versions == 0,
               "after deleting every key the engine still counts %llu keys / %llu versions",
               (unsigned long long)s.keys, (unsigned long long)s.versions);
    if (s.mem_keys > RECYCLE_KEYS) {
        tkv_engine_close(g_eng);
        g_eng = NULL;
        remove_dir();
        new_dir();
        engine_open();
    } else if (g_reopened) {
        reopen();
    }
    tkv_engine_idle(g_eng);
    model_free();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    fz f = {data, size};
    uint8_t mode = fz_u8(&f);
    g_d.max_reply = max_replies[mode & 3];
    g_clock = clocks[0];
    g_serial = 0;
    g_reopened = false;
    g_since_commit = 0;
    if (mode & 0x80)
        run_raw(&f);
    else
        run_structured(&f);
    reset_store();
    return 0;
}
