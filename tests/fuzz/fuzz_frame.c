/*
 * fuzz_frame.c - libFuzzer target for the frame reader (protocol/frame.h)
 * and the bounds-checked MessagePack reader (protocol/mp.h).
 *
 * Input layout:
 *
 *     [cfg][L][L schedule bytes][stream unit ...]
 *
 * cfg bits 0-3 pick max_frame from a table, bits 4-7 how many times the
 * stream unit is repeated (1-16) to form the byte stream, so a short input
 * can still fill the reader past its cap. The schedule (L % 64 steps, used
 * cyclically; none: one feed of everything) says how each next chunk
 * reaches the reader - tkv_frame_reader_feed() or the space()/commit() path
 * the server reads sockets with - how big it is, and how many frames are
 * taken out afterwards (all, or a small budget like the server's
 * --max-pipeline, which leaves frames buffered across reads).
 *
 * Invariants, against a trivially correct reference splitter of the same
 * stream:
 *  - next() returns exactly the reference's frames, in order, each as soon
 *    as its last byte has arrived; AGAIN exactly when the reference has no
 *    complete frame; ETOOBIG exactly when a complete header declares more
 *    than max_frame (with bad_len set), and sticky afterwards;
 *  - pending() equals bytes delivered minus bytes returned;
 *  - space() offers at least min(want, room below the cap) bytes and never
 *    grows the buffer past max_frame + 4 + 64 KiB (its documented cap); a
 *    feed never grows it past max(that cap, the bytes it must hold); with
 *    frames drained after every delivery the buffer stays within the cap
 *    plus the largest single feed.
 *
 * Every frame of the first repetition is then copied to an exactly sized
 * heap block (so ASan sees any over-read) and walked with tkv_mp_next(),
 * tkv_mp_skip(), the typed readers and tkv_mp_validate(); the typed
 * readers' inline fast paths must agree exactly with their general
 * (_slow) versions, at the first 64 starting offsets (each suffix fenced
 * by ASan on both sides, see check_offsets()). When validate
 * accepts it, msgpack-c's msgpack_unpack() must accept it too, as exactly
 * one complete value with the same tree; when validate rejects it,
 * msgpack-c is never called (it allocates from declared counts). The frame
 * also goes through tkv_req_parse() and tkv_reply_head(): a request that
 * parses must be one valid MessagePack value.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_common.h"
#include "mp.h"
#include "proto.h"

/* msgpack-c's unpacker keeps nested non-empty containers on a fixed stack
 * and fails with NOMEM_ERROR at this depth (MSGPACK_EMBED_STACK_SIZE). */
#define MSGPACK_C_MAX_DEPTH 32

static const size_t max_frames[16] = {
    0, 1, 2, 5, 6, 16, 64, 255, 300, 1024, 4096, 65535, 65536, 70000, 1u << 20, 8u << 20,
};
static const size_t chunks[8] = {1, 2, 3, 4, 7, 64, 4096, 70000};
#define UNLIMITED SIZE_MAX
static const size_t budgets[8] = {UNLIMITED, UNLIMITED, UNLIMITED, UNLIMITED, 0, 1, 3, 16};

static size_t cap_limit(size_t max_frame) { return max_frame + TKV_FRAME_HEADER + 64 * 1024; }

/* ---- MessagePack checks ------------------------------------------------ */

static void check_obj_bounds(const uint8_t *q, size_t n, const tkv_mp *m, const tkv_mp_obj *o)
{
    FUZZ_CHECK(m->p >= q && m->p <= q + n, "cursor left the input");
    if (o->type == TKV_MP_STR || o->type == TKV_MP_BIN || o->type == TKV_MP_EXT) {
        const uint8_t *p = o->v.bytes.ptr;
        FUZZ_CHECK(p >= q && p <= q + n && o->v.bytes.len <= (size_t)(q + n - p),
                   "byte string outside the input");
        FUZZ_CHECK(p + o->v.bytes.len == m->p, "cursor not right after the byte string");
    }
    if (o->type == TKV_MP_ARRAY)
        FUZZ_CHECK(o->v.count <= tkv_mp_left(m), "array count %u above %zu bytes left", o->v.count,
                   tkv_mp_left(m));
    if (o->type == TKV_MP_MAP)
        FUZZ_CHECK((uint64_t)o->v.count * 2 <= tkv_mp_left(m), "map count %u above %zu bytes left",
                   o->v.count, tkv_mp_left(m));
}

/* Reads every header in sequence, as a flat token stream. */
static void walk_flat(const uint8_t *q, size_t n)
{
    tkv_mp m;
    tkv_mp_init(&m, q, n);
    while (tkv_mp_left(&m) > 0) {
        const uint8_t *before = m.p;
        tkv_mp_obj o;
        int rc = tkv_mp_next(&m, &o);
        if (rc < 0) {
            FUZZ_CHECK(rc == TKV_MP_ETRUNC || rc == TKV_MP_EINVAL, "next returned %d", rc);
            return;
        }
        FUZZ_CHECK(m.p > before, "next succeeded without consuming a byte");
        check_obj_bounds(q, n, &m, &o);
    }
}

/* The inline fast paths of the typed readers (mp.h) must agree with the
 * general ones exactly: status, value and cursor. */
static void check_fast_paths(const uint8_t *q, size_t n)
{
    tkv_mp a, b;
    uint32_t ca = 0, cb = 0;
    tkv_mp_init(&a, q, n);
    tkv_mp_init(&b, q, n);
    int ra = tkv_mp_read_array(&a, &ca), rb = tkv_mp_read_array_slow(&b, &cb);
    FUZZ_CHECK(ra == rb && a.p == b.p && (ra < 0 || ca == cb),
               "read_array %d/%u, its slow path %d/%u", ra, ca, rb, cb);
    uint64_t ua = 0, ub = 0;
    tkv_mp_init(&a, q, n);
    tkv_mp_init(&b, q, n);
    ra = tkv_mp_read_uint(&a, &ua);
    rb = tkv_mp_read_uint_slow(&b, &ub);
    FUZZ_CHECK(ra == rb && a.p == b.p && (ra < 0 || ua == ub),
               "read_uint %d/%llu, its slow path %d/%llu", ra, (unsigned long long)ua, rb,
               (unsigned long long)ub);
    const uint8_t *pa = NULL, *pb = NULL;
    tkv_mp_init(&a, q, n);
    tkv_mp_init(&b, q, n);
    ra = tkv_mp_read_bytes(&a, &pa, &ca);
    rb = tkv_mp_read_bytes_slow(&b, &pb, &cb);
    FUZZ_CHECK(ra == rb && a.p == b.p && (ra < 0 || (ca == cb && pa == pb)),
               "read_bytes %d/%u, its slow path %d/%u", ra, ca, rb, cb);
}

/* The typed readers: a failure must leave the cursor where it was, and
 * each must agree with peek. */
static void check_typed(const uint8_t *q, size_t n)
{
    tkv_mp m;
    tkv_mp_init(&m, q, n);
    tkv_mp_type t;
    int prc = tkv_mp_peek(&m, &t);
    FUZZ_CHECK(m.p == q, "peek moved the cursor");
    uint32_t cnt;
    uint64_t u;
    int64_t i;
    bool b;
    const uint8_t *p;
    uint32_t len;
    int rc[6];
    tkv_mp c[6];
    for (int k = 0; k < 6; k++)
        c[k] = m;
    rc[0] = tkv_mp_read_array(&c[0], &cnt);
    rc[1] = tkv_mp_read_map(&c[1], &cnt);
    rc[2] = tkv_mp_read_uint(&c[2], &u);
    rc[3] = tkv_mp_read_int(&c[3], &i);
    rc[4] = tkv_mp_read_bool(&c[4], &b);
    rc[5] = tkv_mp_read_bytes(&c[5], &p, &len);
    for (int k = 0; k < 6; k++) {
        if (rc[k] < 0)
            FUZZ_CHECK(c[k].p == q, "typed reader %d moved on failure %d", k, rc[k]);
        if (prc < 0)
            FUZZ_CHECK(rc[k] == prc, "peek failed with %d, typed reader %d gave %d", prc, k, rc[k]);
    }
    if (prc == 0) {
        FUZZ_CHECK((rc[0] == 0) == (t == TKV_MP_ARRAY), "read_array vs peek");
        FUZZ_CHECK((rc[1] == 0) == (t == TKV_MP_MAP), "read_map vs peek");
        FUZZ_CHECK((rc[2] == 0) == (t == TKV_MP_UINT), "read_uint vs peek");
        FUZZ_CHECK((rc[4] == 0) == (t == TKV_MP_BOOL), "read_bool vs peek");
        FUZZ_CHECK((rc[5] == 0) == (t == TKV_MP_STR || t == TKV_MP_BIN), "read_bytes vs peek");
        if (rc[2] == 0)
            FUZZ_CHECK(rc[3] == 0 ? (uint64_t)i == u && u <= INT64_MAX : u > INT64_MAX,
                       "read_int disagrees with read_uint on %llu", (unsigned long long)u);
        if (t == TKV_MP_INT)
            FUZZ_CHECK(rc[3] == 0 && i < 0, "read_int rejects a negative integer");
    }
    tkv_mp nm = m;
    bool nil = tkv_mp_read_nil(&nm);
    FUZZ_CHECK(nil == (prc == 0 && t == TKV_MP_NIL), "read_nil vs peek");
    FUZZ_CHECK(nm.p == q + (nil ? 1 : 0), "read_nil moved wrongly");
}

/* Depth of nested non-empty containers (what msgpack-c stacks), computed
 * without recursion: the input may nest as deep as it is long. Only called
 * on validated input. */
static size_t nesting(const uint8_t *q, size_t n)
{
    /* The harness's own stack, kept between inputs (not under test). */
    static uint64_t *left;
    static size_t left_cap;
    if (n + 1 > left_cap) {
        free(left);
        left_cap = 2 * (n + 1);
        left = malloc(left_cap * sizeof *left);
        if (!left)
            abort();
    }
    size_t top = 0, deepest = 0;
    tkv_mp m;
    tkv_mp_init(&m, q, n);
    left[0] = 1;
    for (;;) {
        while (top > 0 && left[top] == 0)
            top--;
        if (top == 0 && left[0] == 0)
            break;
        tkv_mp_obj o;
        FUZZ_CHECK(tkv_mp_next(&m, &o) == 0, "validated input failed to walk");
        left[top]--;
        uint64_t k = o.type == TKV_MP_ARRAY ? o.v.count
                     : o.type == TKV_MP_MAP ? (uint64_t)o.v.count * 2
                                            : 0;
        if (k > 0) {
            FUZZ_CHECK(top + 1 <= n, "nesting deeper than the input is long");
            left[++top] = k;
            if (top > deepest)
                deepest = top;
        }
    }
    return deepest;
}

/* Compares tkv's reading of the next value with msgpack-c's object tree.
 * Recursion is bounded by MSGPACK_C_MAX_DEPTH. */
static void compare(tkv_mp *m, const msgpack_object *o)
{
    tkv_mp_obj t;
    FUZZ_CHECK(tkv_mp_next(m, &t) == 0, "tkv_mp_next failed where msgpack-c succeeded");
    switch (t.type) {
    case TKV_MP_NIL:
        FUZZ_CHECK(o->type == MSGPACK_OBJECT_NIL, "nil vs msgpack-c type %d", o->type);
        break;
    case TKV_MP_BOOL:
        FUZZ_CHECK(o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean == t.v.b, "bool");
        break;
    case TKV_MP_UINT:
        FUZZ_CHECK(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == t.v.u,
                   "uint %llu vs msgpack-c type %d", (unsigned long long)t.v.u, o->type);
        break;
    case TKV_MP_INT:
        FUZZ_CHECK(o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 == t.v.i,
                   "int %lld vs msgpack-c type %d", (long long)t.v.i, o->type);
        break;
    case TKV_MP_FLOAT:
        FUZZ_CHECK((o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) &&
                       memcmp(&o->via.f64, &t.v.f, sizeof t.v.f) == 0,
                   "float differs");
        break;
    case TKV_MP_STR:
    case TKV_MP_BIN: {
        bool str = t.type == TKV_MP_STR;
        FUZZ_CHECK(o->type == (str ? MSGPACK_OBJECT_STR : MSGPACK_OBJECT_BIN),
                   "%s vs msgpack-c type %d", str ? "str" : "bin", o->type);
        uint32_t len = str ? o->via.str.size : o->via.bin.size;
        const char *p = str ? o->via.str.ptr : o->via.bin.ptr;
        FUZZ_CHECK(len == t.v.bytes.len && (len == 0 || memcmp(p, t.v.bytes.ptr, len) == 0),
                   "byte string differs");
        break;
    }
    case TKV_MP_EXT:
        FUZZ_CHECK(
            o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == t.ext_type &&
                o->via.ext.size == t.v.bytes.len &&
                (t.v.bytes.len == 0 || memcmp(o->via.ext.ptr, t.v.bytes.ptr, t.v.bytes.len) == 0),
            "ext differs");
        break;
    case TKV_MP_ARRAY:
        FUZZ_CHECK(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == t.v.count,
                   "array of %u vs msgpack-c type %d", t.v.count, o->type);
        for (uint32_t k = 0; k < t.v.count; k++)
            compare(m, &o->via.array.ptr[k]);
        break;
    case TKV_MP_MAP:
        FUZZ_CHECK(o->type == MSGPACK_OBJECT_MAP && o->via.map.size == t.v.count,
                   "map of %u vs msgpack-c type %d", t.v.count, o->type);
        for (uint32_t k = 0; k < t.v.count; k++) {
            compare(m, &o->via.map.ptr[k].key);
            compare(m, &o->via.map.ptr[k].val);
        }
        break;
    }
}

static void check_msgpack_c(const uint8_t *q, size_t n)
{
    size_t depth = nesting(q, n);
    /* One zone for every input, cleared after each (its first chunk stays). */
    static msgpack_zone zone;
    static bool zone_ready;
    if (!zone_ready && !msgpack_zone_init(&zone, 2048))
        abort();
    zone_ready = true;
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack((const char *)q, n, &off, &zone, &obj);
    if (depth >= MSGPACK_C_MAX_DEPTH) {
        /* A known limit of msgpack-c, not a disagreement about the bytes. */
        FUZZ_CHECK(rc == MSGPACK_UNPACK_NOMEM_ERROR || rc == MSGPACK_UNPACK_SUCCESS,
                   "msgpack-c returned %d at depth %zu", rc, depth);
    } else {
        FUZZ_CHECK(rc == MSGPACK_UNPACK_SUCCESS && off == n,
                   "tkv_mp_validate accepts %zu bytes (depth %zu), msgpack-c returns %d "
                   "after %zu",
                   n, depth, rc, off);
        tkv_mp m;
        tkv_mp_init(&m, q, n);
        compare(&m, &obj);
        FUZZ_CHECK(m.p == q + n, "tree walk did not end at the end");
    }
    msgpack_zone_clear(&zone);
}

/* The typed readers at offsets 1..63 (the fast paths' bounds checks see
 * every "bytes left" a frame can present), each on a suffix that ASan
 * fences on both sides as it would an exact copy: the suffix ends at the
 * end of a heap block (the redzone right after its last byte) and the
 * bytes of the block before it are poisoned. Poisoning works on 8-byte
 * granules, so the suffix must start on one: one copy of the frame from
 * offset 1 + r serves the offsets 1 + r + 8j (8 allocations per frame
 * rather than 63, and an allocation under ASan costs more than the reads). */
static void check_offsets(const uint8_t *frame, size_t n)
{
    for (size_t r = 0; r < 8 && 1 + r < n; r++) {
        size_t len = n - 1 - r;
        uint8_t *blk = fz_dup(frame + 1 + r, len);
        for (size_t skip = 0; 1 + r + skip < n && 1 + r + skip < 64; skip += 8) {
            FUZZ_POISON(blk, skip);
            check_typed(blk + skip, len - skip);
            check_fast_paths(blk + skip, len - skip);
        }
        FUZZ_UNPOISON(blk, len);
        free(blk);
    }
}

static void check_payload(const uint8_t *frame, size_t n)
{
    uint8_t *q = fz_dup(frame, n);
    walk_flat(q, n);
    check_typed(q, n);
    check_fast_paths(q, n);
    check_offsets(q, n);

    int v = tkv_mp_validate(q, n);
    FUZZ_CHECK(v == 0 || v == TKV_MP_ETRUNC || v == TKV_MP_EINVAL, "validate returned %d", v);
    tkv_mp m;
    tkv_mp_init(&m, q, n);
    int s = tkv_mp_skip(&m);
    if (s == 0)
        FUZZ_CHECK(m.p > q && m.p <= q + n, "skip ended outside the input");
    FUZZ_CHECK((v == 0) == (s == 0 && m.p == q + n), "validate %d disagrees with skip %d", v, s);
    if (v == 0)
        check_msgpack_c(q, n);

    /* The request parser and the client's reply reader on the same bytes. */
    tkv_limits lim = {.max_key = TKV_DEFAULT_MAX_KEY, .max_value = TKV_DEFAULT_MAX_VALUE};
    tkv_req req;
    char err[64];
    tkv_status st = tkv_req_parse(q, n, &lim, &req, err, sizeof err);
    FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL, "error message not terminated");
    if (st == TKV_ST_OK)
        FUZZ_CHECK(v == 0, "a request parses but is not one valid MessagePack value");
    uint32_t count;
    uint64_t status;
    tkv_span msg;
    if (tkv_reply_head(q, n, &m, &count, &status, &msg) == 0) {
        FUZZ_CHECK(count >= 1 && m.p >= q && m.p <= q + n, "reply head");
        FUZZ_CHECK(!msg.ptr || (msg.ptr >= q && msg.len <= (size_t)(q + n - msg.ptr)),
                   "reply message outside the frame");
    }
    free(q);
}

/* ---- the frame reader -------------------------------------------------- */

typedef struct run {
    tkv_frame_reader r;
    const uint8_t *s; /* the whole stream */
    size_t total;
    size_t unit;      /* length of one repetition; frames starting below it are checked */
    size_t fed;       /* bytes handed to the reader */
    size_t pos;       /* reference: start of the next frame */
    size_t max_feed;  /* largest single delivery */
    bool drained_all; /* every delivery so far was followed by a full drain */
    bool dead;        /* ETOOBIG seen */
} run;

/* The reference: what the next frame is, given the bytes delivered so far. */
static int ref_next(const run *x, size_t *len)
{
    if (x->fed - x->pos < TKV_FRAME_HEADER)
        return TKV_FRAME_AGAIN;
    uint32_t n = fz_be32(x->s + x->pos);
    if (n > x->r.max_frame)
        return TKV_FRAME_ETOOBIG;
    if (x->fed - x->pos - TKV_FRAME_HEADER < n)
        return TKV_FRAME_AGAIN;
    *len = n;
    return TKV_FRAME_OK;
}

static void check_shape(const run *x)
{
    const tkv_frame_reader *r = &x->r;
    FUZZ_CHECK(r->start <= r->end && r->end <= r->cap, "start %zu end %zu cap %zu", r->start,
               r->end, r->cap);
    FUZZ_CHECK(tkv_frame_reader_pending(r) == x->fed - x->pos,
               "pending %zu, delivered %zu minus returned %zu", tkv_frame_reader_pending(r), x->fed,
               x->pos);
    size_t lim = cap_limit(r->max_frame);
    if (x->drained_all)
        FUZZ_CHECK(r->cap <= lim + x->max_feed,
                   "buffer of %zu bytes above max_frame + 4 + 64 KiB + largest feed = %zu", r->cap,
                   lim + x->max_feed);
}

/* Takes up to budget frames out, checking each against the reference. */
static void drain(run *x, size_t budget)
{
    for (size_t k = 0; k < budget; k++) {
        size_t want_len = 0;
        int want = x->dead ? TKV_FRAME_ETOOBIG : ref_next(x, &want_len);
        const uint8_t *f;
        size_t len;
        int got = tkv_frame_reader_next(&x->r, &f, &len);
        FUZZ_CHECK(got == want, "next returned %d, the reference %d (at %zu of %zu delivered)", got,
                   want, x->pos, x->fed);
        if (got == TKV_FRAME_AGAIN)
            return;
        if (got == TKV_FRAME_ETOOBIG) {
            FUZZ_CHECK(x->dead || x->r.bad_len == fz_be32(x->s + x->pos), "bad_len %u, declared %u",
                       x->r.bad_len, fz_be32(x->s + x->pos));
            x->dead = true;
            return;
        }
        FUZZ_CHECK(len == want_len, "frame of %zu bytes, the reference %zu", len, want_len);
        FUZZ_CHECK(f >= x->r.buf && f + len <= x->r.buf + x->r.end, "frame outside the buffer");
        FUZZ_CHECK(len == 0 || memcmp(f, x->s + x->pos + TKV_FRAME_HEADER, len) == 0,
                   "frame bytes differ from the stream");
        size_t at = x->pos;
        x->pos += TKV_FRAME_HEADER + len;
        if (at < x->unit)
            check_payload(f, len);
    }
}

static void deliver_feed(run *x, size_t n)
{
    size_t cap0 = x->r.cap;
    int rc = tkv_frame_reader_feed(&x->r, x->s + x->fed, n);
    FUZZ_CHECK(rc == 0, "feed returned %d", rc);
    x->fed += n;
    size_t need = tkv_frame_reader_pending(&x->r), lim = cap_limit(x->r.max_frame);
    size_t bound = cap0 > lim ? cap0 : lim;
    FUZZ_CHECK(x->r.cap <= (bound > need ? bound : need),
               "feed grew the buffer from %zu to %zu to hold %zu bytes (cap %zu)", cap0, x->r.cap,
               need, lim);
}

/* The socket path: ask for room for want bytes, write up to n of them. */
static void deliver_space(run *x, size_t want, size_t n)
{
    size_t cap0 = x->r.cap, pending = tkv_frame_reader_pending(&x->r);
    size_t lim = cap_limit(x->r.max_frame);
    uint8_t *p;
    size_t avail;
    int rc = tkv_frame_reader_space(&x->r, want, &p, &avail);
    FUZZ_CHECK(rc == 0, "space returned %d", rc);
    FUZZ_CHECK(avail == x->r.cap - x->r.end && (avail == 0 || p == x->r.buf + x->r.end),
               "space returned a region that is not the buffer's tail");
    size_t room = pending < lim ? lim - pending : 0;
    FUZZ_CHECK(avail >= (want < room ? want : room),
               "space offers %zu bytes for want %zu with %zu pending (cap %zu)", avail, want,
               pending, lim);
    /* At the cap, space() offers nothing rather than growing the buffer
     * (regressions/fuzz_frame/space-grows-past-cap). */
    FUZZ_CHECK(x->r.cap <= (cap0 > lim ? cap0 : lim),
               "space grew the buffer from %zu to %zu bytes, past its cap of %zu "
               "(max_frame + 4 + 64 KiB) with %zu bytes pending",
               cap0, x->r.cap, lim, pending);
    size_t k = n < avail ? n : avail;
    if (k)
        memcpy(p, x->s + x->fed, k);
    tkv_frame_reader_commit(&x->r, k);
    x->fed += k;
}

static void step(run *x, uint8_t s)
{
    size_t left = x->total - x->fed;
    size_t n = chunks[(s >> 2) & 7];
    if (n > left)
        n = left;
    size_t budget = budgets[s >> 5];
    switch (s & 3) {
    case 0: deliver_feed(x, n); break;
    case 1: deliver_space(x, n, n); break;
    case 2: deliver_space(x, 4096, n); break; /* like a socket read of up to n bytes */
    default: deliver_feed(x, n); break;
    }
    if (n > x->max_feed)
        x->max_feed = n;
    if (budget != UNLIMITED)
        x->drained_all = false;
    drain(x, budget);
    check_shape(x);
    if ((s & 3) == 3 && tkv_frame_reader_pending(&x->r) == 0 && !x->dead) {
        tkv_frame_reader_shrink(&x->r, s & 0x10 ? 0 : 4096);
        check_shape(x);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size};
    uint8_t cfg = fz_u8(&f);
    const uint8_t *sched;
    size_t nsched = fz_bytes(&f, fz_u8(&f) % 64, &sched);
    size_t reps = 1 + (cfg >> 4);
    const uint8_t *unit = f.p;
    size_t ulen = f.n;

    run x = {.unit = ulen, .drained_all = true};
    x.total = ulen * reps;
    uint8_t *stream = malloc(x.total ? x.total : 1);
    for (size_t i = 0; i < reps; i++)
        if (ulen)
            memcpy(stream + i * ulen, unit, ulen);
    x.s = stream;
    tkv_frame_reader_init(&x.r, max_frames[cfg & 15]);

    if (nsched == 0) {
        deliver_feed(&x, x.total);
        x.max_feed = x.total;
        drain(&x, UNLIMITED);
        check_shape(&x);
    }
    /* A pass over the schedule that delivers nothing means the reader is
     * at its cap with frames left in it: serve them all, as the server
     * does, and give up if even that does not make room. */
    int stalls = 0;
    while (nsched && x.fed < x.total && !x.dead && stalls < 2) {
        size_t before = x.fed;
        for (size_t i = 0; i < nsched && x.fed < x.total && !x.dead; i++)
            step(&x, sched[i]);
        if (x.fed == before) {
            stalls++;
            drain(&x, UNLIMITED);
        }
    }
    if (!x.dead)
        drain(&x, UNLIMITED);
    check_shape(&x);
    if (!x.dead) {
        size_t len;
        FUZZ_CHECK(ref_next(&x, &len) != TKV_FRAME_OK, "a complete frame was never returned");
    }
    tkv_frame_reader_deinit(&x.r);
    tkv_frame_reader_deinit(NULL);
    free(stream);
    return 0;
}
