/*
 * request_check.c - implements fuzz_request's reply checks (request_check.h).
 *
 * Each command's answer is computed from the model - the shared key model
 * (tests/common/model.h) has every rule of engine.h: visible versions
 * only, tombstones answering DELETED, BELOW_HORIZON before a retention
 * horizon, validity intervals from the next visible version; this file
 * adds what cmd.c does on top - and compared field by field with the reply,
 * which protocol/reply.c has decoded (the driver checked its shape: the
 * table's fields, re-encoded to the same bytes). Sizes that decide where
 * a list stops come from the same encoders and room bounds tkvd uses.
 */
#include "request_check.h"

#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "request_gen.h"

#define MAX_ITEMS (GEN_MAX_BATCH + 1)

/* ---- requests ------------------------------------------------------------ */

static bool span_eq(tkv_span a, tkv_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool items_eq(const tkv_req *a, const tkv_req *b)
{
    if (a->nitems != b->nitems)
        return false;
    if (!a->items || !b->items)
        return true; /* a generated request: gen_items_eq() compares them */
    tkv_mp ma, mb;
    tkv_mp_init(&ma, a->items, a->items_len);
    tkv_mp_init(&mb, b->items, b->items_len);
    for (uint32_t i = 0; i < a->nitems; i++) {
        if (a->cmd == TKV_CMD_MPUT) {
            tkv_put_item x, y;
            if (tkv_mput_item_next(&ma, &x) < 0 || tkv_mput_item_next(&mb, &y) < 0)
                return false;
            if (!span_eq(x.key, y.key) || !span_eq(x.value, y.value) || x.has_ts != y.has_ts ||
                (x.has_ts && x.ts != y.ts) || x.ttl != y.ttl)
                return false;
        } else {
            tkv_span x, y;
            if (tkv_mp_read_bytes(&ma, &x.ptr, &x.len) < 0 ||
                tkv_mp_read_bytes(&mb, &y.ptr, &y.len) < 0 || !span_eq(x, y))
                return false;
        }
    }
    return true;
}

bool req_eq(const tkv_req *a, const tkv_req *b)
{
    if (a->cmd != b->cmd)
        return false;
    bool key = span_eq(a->key, b->key);
    bool ts = a->has_ts == b->has_ts && (!a->has_ts || a->ts == b->ts);
    switch (a->cmd) {
    case TKV_CMD_PING: return a->has_msg == b->has_msg && (!a->has_msg || span_eq(a->msg, b->msg));
    case TKV_CMD_AUTH: return span_eq(a->msg, b->msg);
    case TKV_CMD_PUT: return key && span_eq(a->value, b->value) && ts && a->ttl == b->ttl;
    case TKV_CMD_GET:
        return key && ts && a->has_version == b->has_version &&
               (!a->has_version || a->version == b->version);
    case TKV_CMD_RANGE:
        return key && a->from == b->from && a->to == b->to && a->limit == b->limit &&
               a->reverse == b->reverse;
    case TKV_CMD_COUNT: return key && a->from == b->from && a->to == b->to;
    case TKV_CMD_DEL: return key && a->tombstone == b->tombstone && ts;
    case TKV_CMD_RETAIN:
        return key && a->keep_versions == b->keep_versions && a->keep_age == b->keep_age &&
               a->dry_run == b->dry_run;
    case TKV_CMD_POLICY: return key;
    case TKV_CMD_SCAN:
        return a->has_prefix == b->has_prefix &&
               (!a->has_prefix || span_eq(a->prefix, b->prefix)) &&
               a->has_cursor == b->has_cursor &&
               (!a->has_cursor || span_eq(a->cursor, b->cursor)) && a->limit == b->limit;
    case TKV_CMD_MPUT: return items_eq(a, b);
    case TKV_CMD_MGET: return ts && items_eq(a, b);
    default: return true;
    }
}

bool gen_items_eq(const tkv_req *r, const gen *g)
{
    if (r->nitems != g->nitems)
        return false;
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    for (uint32_t i = 0; i < r->nitems; i++) {
        const tkv_put_item *y = &g->items[i];
        tkv_put_item x;
        if (r->cmd == TKV_CMD_MGET) {
            if (tkv_mp_read_bytes(&m, &x.key.ptr, &x.key.len) < 0 || !span_eq(x.key, y->key))
                return false;
            continue;
        }
        if (tkv_mput_item_next(&m, &x) < 0 || !span_eq(x.key, y->key) ||
            !span_eq(x.value, y->value) || x.has_ts != y->has_ts || (x.has_ts && x.ts != y->ts) ||
            x.ttl != y->ttl)
            return false;
    }
    return true;
}

/* Re-encodes with the library's own encoders: tkv_req_encode(), or the
 * MPUT/MGET ones from the parsed items. */
static int encode(tkv_buf *b, const tkv_req *req)
{
    if (req->cmd != TKV_CMD_MPUT && req->cmd != TKV_CMD_MGET)
        return tkv_req_encode(b, req);
    tkv_put_item it[MAX_ITEMS];
    tkv_span keys[MAX_ITEMS];
    tkv_mp m;
    tkv_mp_init(&m, req->items, req->items_len);
    for (uint32_t i = 0; i < req->nitems; i++) {
        if (req->cmd == TKV_CMD_MPUT)
            FUZZ_CHECK(tkv_mput_item_next(&m, &it[i]) == 0, "parsed MPUT item %u unreadable", i);
        else
            FUZZ_CHECK(tkv_mp_read_bytes(&m, &keys[i].ptr, &keys[i].len) == 0,
                       "parsed MGET key %u unreadable", i);
    }
    return req->cmd == TKV_CMD_MPUT ? tkv_encode_mput(b, it, req->nitems)
                                    : tkv_encode_mget(b, req->ts, req->has_ts, keys, req->nitems);
}

void check_roundtrip(const tkv_req *req, const tkv_limits *lim)
{
    tkv_buf b = {0};
    FUZZ_CHECK(encode(&b, req) == 0, "encoding a parsed %s request failed", tkv_cmd_name(req->cmd));
    FUZZ_CHECK(b.len >= 4 && fz_be32(b.data) == b.len - 4, "encoded request is not one frame");
    uint8_t *q = fz_dup(b.data + 4, b.len - 4);
    tkv_req again;
    char err[160];
    tkv_status st = tkv_req_parse(q, b.len - 4, lim, &again, err, sizeof err);
    FUZZ_CHECK(st == TKV_ST_OK && req_eq(req, &again),
               "%s request does not survive encode + parse (status %d: %s)", tkv_cmd_name(req->cmd),
               st, err);
    free(q);
    tkv_buf_deinit(&b);
}

/* ---- sizes, from the encoders ----------------------------------------------- */

static tkv_buf sizing; /* scratch for measuring encodings */

/* Bytes of a list reply before its first element ([0, array32]). */
static size_t list_head(void)
{
    tkv_rep_wr lw;
    tkv_buf_reset(&sizing);
    tkv_rep_range_begin(&lw, &sizing);
    size_t n = sizing.len - TKV_FRAME_HEADER;
    tkv_rep_abort(&lw);
    return n;
}

/* Bytes of one RANGE entry as tkvd encodes it. */
static size_t entry_size(const mver *v)
{
    tkv_rep_wr lw;
    tkv_buf_reset(&sizing);
    tkv_rep_range_begin(&lw, &sizing);
    size_t at = sizing.len;
    tkv_rep_range_entry(&lw, v->ts, v->val, v->len, v->expires);
    FUZZ_CHECK(!lw.w.failed, "out of memory sizing a RANGE entry");
    size_t n = sizing.len - at;
    tkv_rep_abort(&lw);
    return n;
}

/* ---- the model's answers ---------------------------------------------------- */

/* fuzz_request opens the engine without server-wide retention. */
static const tkv_policy NO_DEFAULT = {0, 0};

static const mver **vbuf;
static size_t vbuf_cap;

/* Room for a list of h's versions (reused between calls). */
static const mver **room(const mhist *h)
{
    size_t need = h ? h->n : 0;
    if (need > vbuf_cap) {
        vbuf_cap = 2 * need;
        vbuf = realloc(vbuf, vbuf_cap * sizeof *vbuf);
        if (!vbuf)
            abort();
    }
    return vbuf;
}

/* PROTOCOL.md's miss reasons, for the engine's. */
static tkv_miss wire_miss(tkv_eng_miss m)
{
    switch (m) {
    case TKV_EM_NO_KEY: return TKV_M_NO_KEY;
    case TKV_EM_BEFORE_FIRST: return TKV_M_BEFORE_FIRST;
    case TKV_EM_DELETED: return TKV_M_DELETED;
    case TKV_EM_BELOW_HORIZON: return TKV_M_BELOW_HORIZON;
    case TKV_EM_NO_SUCH_VERSION: return TKV_M_NO_SUCH_VERSION;
    }
    abort();
}

/* The model's answer as the wire carries it. */
static tkv_rep_answer wire(const manswer *a)
{
    tkv_rep_answer w = {.next = {a->next, a->has_next}};
    if (a->v) {
        w.status = TKV_ST_OK;
        w.value = (tkv_span){a->v->val, a->v->len};
        w.ts = a->v->ts;
        w.expires = (tkv_rep_opt){a->v->expires, a->v->expires != 0};
    } else {
        w.status = TKV_ST_NOT_FOUND;
        w.miss = (uint64_t)wire_miss(a->miss);
        w.at = (tkv_rep_opt){a->at, a->has_at};
    }
    return w;
}

static void expect_answer(const tkv_rep_answer *got, const manswer *a, const char *what)
{
    uint64_t st = got->status, next = got->next.v;
    bool hn = got->next.has;
    if (a->v) {
        FUZZ_CHECK(st == TKV_ST_OK, "%s: status %llu, the model has the version at %llu%s", what,
                   ull(st), ull(a->v->ts), AFTER_FAULT);
        tkv_span v = got->value;
        uint64_t ts = got->ts, x = got->expires.v;
        bool hx = got->expires.has;
        FUZZ_CHECK(ts == a->v->ts, "%s: version %llu, the model %llu%s", what, ull(ts),
                   ull(a->v->ts), AFTER_FAULT);
        FUZZ_CHECK(span_eq(v, (tkv_span){a->v->val, a->v->len}),
                   "%s: wrong value for version %llu (%u bytes, the model %u)", what, ull(ts),
                   v.len, a->v->len);
        FUZZ_CHECK(hx == (a->v->expires != 0) && x == a->v->expires,
                   "%s: expires %s%llu, the model %llu", what, hx ? "" : "nil/", ull(x),
                   ull(a->v->expires));
        FUZZ_CHECK(hn == a->has_next && next == a->next,
                   "%s as of version %llu: next %s%llu, the model %s%llu%s", what, ull(ts),
                   hn ? "" : "nil/", ull(next), a->has_next ? "" : "nil/", ull(a->next),
                   AFTER_FAULT);
    } else {
        tkv_miss miss = wire_miss(a->miss);
        FUZZ_CHECK(st == TKV_ST_NOT_FOUND, "%s: status %llu, the model misses with reason %d%s",
                   what, ull(st), miss, AFTER_FAULT);
        uint64_t reason = got->miss, at = got->at.v;
        bool ha = got->at.has;
        FUZZ_CHECK(reason == miss, "%s: miss reason %llu, the model %d%s", what, ull(reason), miss,
                   AFTER_FAULT);
        FUZZ_CHECK(ha == a->has_at && at == a->at, "%s: at %s%llu, the model %s%llu", what,
                   ha ? "" : "nil/", ull(at), a->has_at ? "" : "nil/", ull(a->at));
        FUZZ_CHECK(hn == a->has_next && next == a->next, "%s: next %s%llu, the model %s%llu", what,
                   hn ? "" : "nil/", ull(next), a->has_next ? "" : "nil/", ull(a->next));
    }
}

/* ---- per command -------------------------------------------------------------- */

static mkey *find(tkv_span key, bool create) { return model_find(key.ptr, key.len, create); }

/* The key's current state; NULL (never written) for a key the model lacks. */
static const mhist *now_of(tkv_span key) { return model_now(find(key, false)); }

static void expect_get(const tkv_req *r, reply *rp)
{
    const mhist *h = now_of(r->key);
    manswer a = r->has_version ? mhist_get_nth(h, r->version, F.clock)
                               : mhist_get(h, r->has_ts ? r->ts : TKV_TS_MAX, F.clock);
    expect_answer(&rp->rep.answer, &a, "GET");
}

static void expect_range(const tkv_req *r, reply *rp)
{
    FUZZ_CHECK(rp->st == TKV_ST_OK, "RANGE: status %llu", ull(rp->st));
    const mhist *h = now_of(r->key);
    const mver **want = room(h);
    size_t n = mhist_range(h, r->from, r->to, r->limit, r->reverse, F.clock, want);
    /* cmd.c stops before an entry's room (tkv_rep_entry_room) would take
     * the reply past max_reply less the final boolean. */
    size_t used = list_head(), fit = 0;
    while (fit < n && used + tkv_rep_entry_room(want[fit]->len) <= F.d.max_reply - 1)
        used += entry_size(want[fit++]);
    tkv_rep_list l = rp->rep.list;
    uint32_t got = l.n;
    FUZZ_CHECK(got == fit,
               "RANGE [%llu, %llu] limit %llu%s: %u versions, the model %zu (%zu before the "
               "size limit %zu)%s",
               ull(r->from), ull(r->to), ull(r->limit), r->reverse ? " reverse" : "", got, fit, n,
               F.d.max_reply, AFTER_FAULT);
    tkv_rep_entry e;
    for (uint32_t j = 0; tkv_rep_next_entry(&l, &e); j++) {
        const mver *w = want[j];
        uint64_t ts = e.ts, x = e.expires;
        FUZZ_CHECK(ts == w->ts, "RANGE entry %u: ts %llu, the model %llu%s", j, ull(ts), ull(w->ts),
                   AFTER_FAULT);
        if (w->val) {
            FUZZ_CHECK(e.value.ptr && span_eq(e.value, (tkv_span){w->val, w->len}),
                       "RANGE entry %u (ts %llu): wrong value", j, ull(ts));
        } else {
            FUZZ_CHECK(!e.value.ptr, "RANGE entry %u (ts %llu): not a tombstone", j, ull(ts));
        }
        FUZZ_CHECK(x == w->expires, "RANGE entry %u: expires %llu, the model %llu", j, ull(x),
                   ull(w->expires));
    }
    bool truncated = rp->rep.truncated;
    FUZZ_CHECK(truncated == (fit < n), "RANGE: truncated is %d with %zu of %zu versions", truncated,
               fit, n);
    FUZZ_CHECK(rp->plen <= F.d.max_reply, "RANGE reply of %zu bytes above max_reply %zu", rp->plen,
               F.d.max_reply);
}

static void expect_count(const tkv_req *r, reply *rp)
{
    uint64_t n = mhist_count(now_of(r->key), r->from, r->to, F.clock);
    FUZZ_CHECK(rp->st == TKV_ST_OK, "COUNT: status %llu", ull(rp->st));
    uint64_t got = rp->rep.u;
    FUZZ_CHECK(got == n, "COUNT [%llu, %llu]: %llu, the model %llu%s", ull(r->from), ull(r->to),
               ull(got), ull(n), AFTER_FAULT);
}

/* No request's answer depends on what the sweep has removed: expired and
 * retained versions are invisible to every answer, DEL's count and PUT's
 * timestamp included. Kept as the one place to say so should that change. */
bool uncertain(const tkv_req *r)
{
    (void)r;
    return false;
}

/* One write (PUT, an MPUT item, a tombstone): its status and timestamp. */
static tkv_status model_write(const mkey *k, bool has_ts, uint64_t ts, uint64_t *out)
{
    return mhist_write_ts(model_now(k), has_ts, ts, F.clock, out) ? TKV_ST_OK : TKV_ST_OUT_OF_RANGE;
}

static uint64_t expiry(uint64_t ttl) { return mhist_expiry(ttl, F.clock); }

static void expect_put(const tkv_req *r, reply *rp)
{
    mkey *k = find(r->key, true);
    uint64_t ts = 0;
    tkv_status st = model_write(k, r->has_ts, r->ts, &ts);
    if (st != TKV_ST_OK) {
        FUZZ_CHECK(rp->st == st, "PUT%s at %llu (horizon %llu): status %llu, the model %d",
                   r->has_ts ? "" : " without ts", ull(r->ts), ull(k->cur.h.horizon), ull(rp->st),
                   st);
        return;
    }
    FUZZ_CHECK(rp->st == TKV_ST_OK, "PUT: status %llu", ull(rp->st));
    uint64_t got = rp->rep.u;
    FUZZ_CHECK(got == ts, "PUT%s stored at %llu, expected %llu (clock %llu)",
               r->has_ts ? "" : " without ts", ull(got), ull(ts), ull(F.clock));
    FUZZ_CHECK(rp->dirty && tkv_engine_pending(F.eng), "PUT not reported dirty/pending");
    model_put(k, ts, r->value.ptr ? r->value.ptr : (const uint8_t *)"", r->value.len,
              expiry(r->ttl));
}

static void expect_del(const tkv_req *r, reply *rp)
{
    mkey *k = find(r->key, true);
    if (r->tombstone) {
        uint64_t ts = 0;
        tkv_status st = model_write(k, r->has_ts, r->ts, &ts);
        FUZZ_CHECK(rp->st == st, "DEL at %llu (tombstone): status %llu, the model %d", ull(r->ts),
                   ull(rp->st), st);
        if (st != TKV_ST_OK)
            return;
        uint64_t got = rp->rep.u;
        FUZZ_CHECK(got == ts, "tombstone stored at %llu, expected %llu", ull(got), ull(ts));
        FUZZ_CHECK(rp->dirty, "tombstone not reported dirty");
        model_put(k, ts, NULL, 0, 0);
        return;
    }
    FUZZ_CHECK(rp->st == TKV_ST_OK, "DEL: status %llu", ull(rp->st));
    uint64_t got = rp->rep.u;
    size_t nvis = mhist_visible_count(&k->cur.h, F.clock);
    FUZZ_CHECK(got == nvis, "DEL removed %llu versions; the model has %zu visible (%zu stored)%s",
               ull(got), nvis, k->cur.h.n, AFTER_FAULT);
    FUZZ_CHECK(!got || rp->dirty, "DEL that removed versions not reported dirty");
    model_del(k, got);
}

/* An item without a timestamp after an earlier item that wrote the same key
 * at the largest timestamp: no time is left for it (cmd.c's check). */
static int after_top(const tkv_put_item *items, uint32_t i)
{
    if (items[i].has_ts)
        return 0;
    for (uint32_t j = 0; j < i; j++)
        if (items[j].has_ts && items[j].ts == TKV_TS_MAX && items[j].key.len == items[i].key.len &&
            memcmp(items[j].key.ptr, items[i].key.ptr, items[i].key.len) == 0)
            return 1;
    return 0;
}

/* MPUT checks every item against the store as it is and against the items
 * before it, and stages nothing if one is refused; then it stages the
 * items in order. Should staging still fail (it should not), the batch is
 * poisoned, and its commit fails as a whole. */
static void expect_mput(const tkv_req *r, reply *rp)
{
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    uint64_t ts[MAX_ITEMS];
    tkv_put_item items[MAX_ITEMS];
    for (uint32_t i = 0; i < r->nitems; i++) {
        tkv_mput_item_next(&m, &items[i]);
        tkv_status st = model_write(find(items[i].key, true), items[i].has_ts, items[i].ts, &ts[i]);
        if (st != TKV_ST_OK) {
            FUZZ_CHECK(rp->st == st, "MPUT item %u refused by the model (%d): status %llu", i, st,
                       ull(rp->st));
            FUZZ_CHECK(!rp->dirty, "a refused MPUT reported dirty");
            return;
        }
    }
    for (uint32_t i = 0; i < r->nitems; i++) {
        if (after_top(items, i)) {
            FUZZ_CHECK(rp->st == TKV_ST_OUT_OF_RANGE,
                       "MPUT item %u after one at the largest ts: status %llu", i, ull(rp->st));
            FUZZ_CHECK(!rp->dirty, "a refused MPUT reported dirty");
            return;
        }
    }
    for (uint32_t i = 0; i < r->nitems; i++) {
        tkv_put_item it = items[i];
        mkey *k = find(it.key, true);
        tkv_status st = model_write(k, it.has_ts, it.ts, &ts[i]);
        if (st != TKV_ST_OK) {
            FUZZ_CHECK(rp->st == st,
                       "MPUT item %u failing while staged: status %llu, the "
                       "model %d",
                       i, ull(rp->st), st);
            FUZZ_CHECK(!rp->dirty, "a failed MPUT reported dirty");
            /* Items before it are staged; the batch is poisoned. */
            F.poisoned |= i > 0;
            return;
        }
        model_put(k, ts[i], it.value.ptr ? it.value.ptr : (const uint8_t *)"", it.value.len,
                  expiry(it.ttl));
    }
    FUZZ_CHECK(rp->st == TKV_ST_OK, "MPUT: status %llu", ull(rp->st));
    tkv_rep_list l = rp->rep.list;
    FUZZ_CHECK(l.n == r->nitems, "MPUT: %u timestamps for %u items", l.n, r->nitems);
    uint64_t got;
    for (uint32_t i = 0; tkv_rep_next_uint(&l, &got); i++) {
        FUZZ_CHECK(got == ts[i], "MPUT item %u stored at %llu, expected %llu", i, ull(got),
                   ull(ts[i]));
    }
    FUZZ_CHECK(rp->dirty, "MPUT not reported dirty");
}

/* The bytes of one GET-shaped answer, as tkvd encodes it. */
static size_t answer_size(const tkv_rep_answer *w)
{
    tkv_buf_reset(&sizing);
    FUZZ_CHECK(tkv_rep_put_answer(&sizing, w) == 0, "out of memory sizing an answer");
    return sizing.len - TKV_FRAME_HEADER;
}

/* MGET answers keys in order while the next answer's upper bound
 * (tkv_rep_answer_room) fits max_reply less the final boolean; the first
 * always goes in. */
static void expect_mget(const tkv_req *r, reply *rp)
{
    FUZZ_CHECK(rp->st == TKV_ST_OK, "MGET: status %llu", ull(rp->st));
    tkv_rep_list l = rp->rep.list;
    uint32_t n = l.n;
    tkv_mp keys;
    tkv_mp_init(&keys, r->items, r->items_len);
    bool any_dirty = false;
    size_t used = list_head();
    uint32_t fit = 0;
    for (; fit < r->nitems; fit++) {
        tkv_span key;
        tkv_mp_read_bytes(&keys, &key.ptr, &key.len);
        const mkey *k = find(key, false);
        manswer a = mhist_get(model_now(k), r->has_ts ? r->ts : TKV_TS_MAX, F.clock);
        tkv_rep_answer w = wire(&a);
        if (fit > 0 && used + tkv_rep_answer_room(&w) > F.d.max_reply - 1)
            break;
        any_dirty |= k && k->dirty;
        used += answer_size(&w);
        tkv_rep_answer got;
        FUZZ_CHECK(tkv_rep_next_answer(&l, &got),
                   "MGET: %u answers for %u keys, the model fits more (%zu of %zu bytes)", n,
                   r->nitems, used, F.d.max_reply);
        expect_answer(&got, &a, "MGET");
    }
    FUZZ_CHECK(n == fit, "MGET: %u answers for %u keys, the model %u", n, r->nitems, fit);
    bool truncated = rp->rep.truncated;
    FUZZ_CHECK(truncated == (fit < r->nitems), "MGET: truncated is %d with %u of %u answers",
               truncated, fit, r->nitems);
    FUZZ_CHECK(rp->plen <= F.d.max_reply, "MGET reply of %zu bytes above max_reply %zu", rp->plen,
               F.d.max_reply);
    FUZZ_CHECK(!any_dirty || rp->dirty, "MGET of a key with uncommitted writes not dirty");
}

static void expect_retain(const tkv_req *r, reply *rp)
{
    mkey *k = find(r->key, true);
    tkv_policy p = {.versions = r->keep_versions, .age_us = r->keep_age};
    /* Sets the policy and moves the horizon in the model unless dry. */
    mretain want = mhist_retain(&k->cur.h, &p, &NO_DEFAULT, r->dry_run, F.clock);
    uint64_t removable = want.removable, hor = want.horizon;
    FUZZ_CHECK(rp->st == TKV_ST_OK, "RETAIN: status %llu", ull(rp->st));
    uint64_t got_rem = rp->rep.u, got_hor = rp->rep.horizon.v;
    bool has_hor = rp->rep.horizon.has;
    bool complete = rp->rep.flag;
    FUZZ_CHECK(got_rem == removable && has_hor == (hor != 0) && got_hor == hor,
               "RETAIN %u versions / %llu us at clock %llu: removable %llu, horizon %llu; the "
               "model %llu, %llu%s",
               p.versions, ull(p.age_us), ull(F.clock), ull(got_rem), ull(got_hor), ull(removable),
               ull(hor), AFTER_FAULT);
    FUZZ_CHECK(complete, "RETAIN: not complete (the dry-run bound is far away)");
    if (r->dry_run)
        return;
    FUZZ_CHECK(rp->dirty, "RETAIN not reported dirty");
    model_touch(k);
}

static void expect_policy(const tkv_req *r, reply *rp)
{
    const mkey *k = find(r->key, false);
    const mhist *m = model_now(k);
    bool own = m && m->has_policy;
    tkv_policy p = mhist_policy(m, &NO_DEFAULT);
    uint64_t horizon = m ? m->horizon : 0;
    FUZZ_CHECK(rp->st == TKV_ST_OK, "POLICY: status %llu", ull(rp->st));
    const tkv_rep *g = &rp->rep;
    uint64_t v = g->versions.v, a = g->age.v, h = g->horizon.v;
    bool hv = g->versions.has, ha = g->age.has, got_own = g->flag, hh = g->horizon.has;
    FUZZ_CHECK(hv == (p.versions != 0) && v == p.versions && ha == (p.age_us != 0) &&
                   a == p.age_us && got_own == own && hh == (horizon != 0) && h == horizon,
               "POLICY: %llu versions, %llu us, own %d, horizon %llu; the model %u, %llu, %d, "
               "%llu%s",
               ull(v), ull(a), got_own, ull(h), p.versions, ull(p.age_us), own, ull(horizon),
               AFTER_FAULT);
    FUZZ_CHECK(!(k && k->dirty) || rp->dirty,
               "POLICY of a key with uncommitted changes not reported dirty");
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : an < bn ? -1 : an > bn ? 1 : 0;
}

/* SCAN lists keys with a stored version: those with a visible one must be
 * there, those with only invisible ones may be gone after a sweep. */
static void expect_scan(const tkv_req *r, reply *rp)
{
    FUZZ_CHECK(rp->st == TKV_ST_OK, "SCAN: status %llu", ull(rp->st));
    tkv_rep_list l = rp->rep.list;
    uint32_t n = l.n;
    FUZZ_CHECK(n <= r->limit, "SCAN returned %u keys for a count of %llu", n, ull(r->limit));
    tkv_span last = {0}, *listed_keys = malloc((n ? n : 1) * sizeof *listed_keys);
    bool dirty = false;
    tkv_span key;
    for (uint32_t i = 0; tkv_rep_next_key(&l, &key); i++) {
        listed_keys[i] = key;
        FUZZ_CHECK(i == 0 || key_cmp(last.ptr, last.len, key.ptr, key.len) < 0,
                   "SCAN keys out of order at %u", i);
        FUZZ_CHECK(!r->has_prefix ||
                       (key.len >= r->prefix.len && !memcmp(key.ptr, r->prefix.ptr, r->prefix.len)),
                   "SCAN key %u outside the prefix", i);
        FUZZ_CHECK(!r->has_cursor || key_cmp(key.ptr, key.len, r->cursor.ptr, r->cursor.len) > 0,
                   "SCAN key %u not after the cursor", i);
        const mkey *k = find(key, false);
        FUZZ_CHECK(k && k->cur.h.n > 0, "SCAN lists key %u (%u bytes) that has no versions%s", i,
                   key.len, AFTER_FAULT);
        dirty |= k->dirty;
        last = key;
    }
    tkv_span cursor = rp->rep.cursor;
    bool has_cursor = cursor.ptr != NULL;
    if (has_cursor)
        FUZZ_CHECK(n > 0 && span_eq(cursor, last), "SCAN cursor is not the last key");
    /* No key that must be listed is skipped: every one in range up to the
     * cursor (all of them without one) is among the keys returned. */
    for (size_t i = 0; i < model_nkeys(); i++) {
        const mkey *k = model_key(i);
        bool must =
            mhist_visible_count(&k->cur.h, F.clock) > 0 || (k->cur.h.n > 0 && !k->cur.unsure);
        if (!must ||
            (r->has_prefix &&
             (k->klen < r->prefix.len || memcmp(k->key, r->prefix.ptr, r->prefix.len))) ||
            (r->has_cursor && key_cmp(k->key, k->klen, r->cursor.ptr, r->cursor.len) <= 0) ||
            (has_cursor && key_cmp(k->key, k->klen, last.ptr, last.len) > 0))
            continue;
        dirty |= k->dirty;
        bool listed = false;
        for (uint32_t j = 0; j < n && !listed; j++)
            listed = span_eq(listed_keys[j], (tkv_span){k->key, k->klen});
        FUZZ_CHECK(listed, "SCAN skipped a key (%u bytes, %zu versions)%s%s", k->klen, k->cur.h.n,
                   has_cursor ? " before its cursor" : " and gave no cursor", AFTER_FAULT);
    }
    FUZZ_CHECK(rp->plen <= F.d.max_reply, "SCAN reply of %zu bytes above max_reply %zu", rp->plen,
               F.d.max_reply);
    FUZZ_CHECK(!dirty || rp->dirty, "SCAN depending on uncommitted writes not reported dirty");
    free(listed_keys);
}

static void expect_auth(const tkv_req *r, reply *rp, uint64_t fails0)
{
    if (!F.d.auth) {
        FUZZ_CHECK(rp->st == TKV_ST_BAD_REQUEST, "AUTH without a secret: status %llu", ull(rp->st));
        return;
    }
    bool right =
        r->msg.len == sizeof GEN_SECRET - 1 && memcmp(r->msg.ptr, GEN_SECRET, r->msg.len) == 0;
    if (right) {
        FUZZ_CHECK(rp->st == TKV_ST_OK, "AUTH with the secret: status %llu", ull(rp->st));
        FUZZ_CHECK(!F.use_sess || F.sess.authed, "AUTH succeeded, session not authenticated");
    } else {
        FUZZ_CHECK(rp->st == TKV_ST_AUTH_FAILED, "AUTH with a wrong secret: status %llu",
                   ull(rp->st));
        FUZZ_CHECK(F.d.auth_failures == fails0 + 1, "auth_failures not counted");
    }
}

/* ---- counters ------------------------------------------------------------------ */

void check_counters(const char *when)
{
    tkv_engine_stats s;
    tkv_engine_stats_get(F.eng, &s);
    uint64_t klo = 0, khi = 0, vlo = 0, vhi = 0;
    for (size_t i = 0; i < model_nkeys(); i++) {
        const mhist *h = &model_key(i)->cur.h;
        bool unsure = model_key(i)->cur.unsure;
        size_t nvis = mhist_visible_count(h, F.clock);
        vhi += h->n;
        vlo += unsure ? nvis : h->n;
        khi += h->n > 0;
        klo += unsure ? nvis > 0 : h->n > 0;
    }
    FUZZ_CHECK(s.keys >= klo && s.keys <= khi && s.versions >= vlo && s.versions <= vhi,
               "%s: the engine counts %llu keys / %llu versions, the model %llu..%llu / "
               "%llu..%llu%s",
               when, ull(s.keys), ull(s.versions), ull(klo), ull(khi), ull(vlo), ull(vhi),
               AFTER_FAULT);
}

static void expect_stats(reply *rp)
{
    FUZZ_CHECK(rp->st == TKV_ST_OK, "STATS: status %llu", ull(rp->st));
    tkv_rep_list l = rp->rep.list;
    tkv_engine_stats s;
    tkv_engine_stats_get(F.eng, &s);
    int seen = 0;
    tkv_rep_stat f;
    while (tkv_rep_next_stat(&l, &f)) {
        const uint8_t *name = f.name.ptr;
        uint32_t nlen = f.name.len;
        /* The same counters check_counters() holds to the model. */
        if (nlen == 4 && !memcmp(name, "keys", 4))
            FUZZ_CHECK(!f.is_str && f.num == s.keys && ++seen, "STATS keys %llu, engine %llu",
                       ull(f.num), ull(s.keys));
        else if (nlen == 8 && !memcmp(name, "versions", 8))
            FUZZ_CHECK(!f.is_str && f.num == s.versions && ++seen,
                       "STATS versions %llu, engine %llu", ull(f.num), ull(s.versions));
    }
    FUZZ_CHECK(seen == 2, "STATS without keys or versions");
}

void expect_reply(const tkv_req *req, reply *rp, uint64_t fails0)
{
    switch (req->cmd) {
    case TKV_CMD_PING: {
        FUZZ_CHECK(rp->st == TKV_ST_OK, "PING: status %llu", ull(rp->st));
        tkv_span want = req->has_msg ? req->msg : (tkv_span){(const uint8_t *)"PONG", 4};
        FUZZ_CHECK(span_eq(rp->rep.text.s, want) && rp->rep.text.is_str == !req->has_msg,
                   "PING echoed something else");
        break;
    }
    case TKV_CMD_PUT: expect_put(req, rp); break;
    case TKV_CMD_GET: expect_get(req, rp); break;
    case TKV_CMD_RANGE: expect_range(req, rp); break;
    case TKV_CMD_COUNT: expect_count(req, rp); break;
    case TKV_CMD_DEL: expect_del(req, rp); break;
    case TKV_CMD_MPUT: expect_mput(req, rp); break;
    case TKV_CMD_MGET: expect_mget(req, rp); break;
    case TKV_CMD_RETAIN: expect_retain(req, rp); break;
    case TKV_CMD_POLICY: expect_policy(req, rp); break;
    case TKV_CMD_SCAN: expect_scan(req, rp); break;
    case TKV_CMD_AUTH: expect_auth(req, rp, fails0); break;
    default: expect_stats(rp); break;
    }
}
