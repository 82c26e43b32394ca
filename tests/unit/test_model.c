/*
 * test_model.c - the engine against a trivially correct model (model.h).
 *
 * Thousands of random operations - PUT (explicit, colliding, out of order,
 * server-assigned, with TTLs), tombstones, GET as of a time and by ordinal,
 * RANGE, COUNT, DEL, RETAIN (set, clear, dry run), POLICY, full sweeps,
 * SCAN - run against the engine and the model, interleaved with commits,
 * evictions, clock movements and restarts. Every answer must agree: values,
 * timestamps, expiry times, validity intervals, miss reasons and their
 * times, range contents and order, counts, retention reports and the stored
 * key and version counts.
 *
 * Variants shrink the cache (one version per load, a 1.5 KiB budget) so
 * answers constantly merge memory with LevelDB, and set server-wide
 * retention so the sweep walks every key.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/tmpdir.h"
#include "engine.h"
#include "model.h"

#define NKEYS 7

static const struct {
    const char *b;
    size_t n;
} KEYS[NKEYS] = {{"k", 1}, {"k0", 2}, {"k1", 2}, {"\0", 1}, {"\0\0", 2}, {"k\0", 2}, {"z", 1}};

typedef struct world {
    test_rng r;
    mkey m[NKEYS];
    tkv_engine *e;
    tkv_engine_opts o;
    char *dir;
    uint64_t clock;
    long ops;
    uint64_t reads_disk, fills, evictions, swept; /* summed over restarts */
    uint64_t evictions_seen;
} world;

#define KEY(k) (const uint8_t *)KEYS[k].b, KEYS[k].n

static uint64_t test_clock(void *ctx) { return ((world *)ctx)->clock; }

static void reopen(world *w)
{
    char err[256];
    if (w->e) {
        cr_assert_eq(tkv_engine_commit(w->e), 0);
        tkv_engine_stats st;
        tkv_engine_stats_get(w->e, &st);
        w->reads_disk += st.reads_disk;
        w->fills += st.fills;
        tkv_engine_close(w->e);
        w->evictions_seen = 0;
    }
    w->o.dir = w->dir;
    cr_assert_eq(tkv_engine_open(&w->o, &w->e, err, sizeof err), 0, "%s", err);
}

static uint64_t pick_ts(world *w)
{
    uint64_t r = test_rng_below(&w->r, 100);
    if (r == 0)
        return 0;
    if (r == 1)
        return UINT64_MAX;
    if (r == 2)
        return UINT64_MAX - 1;
    return test_rng_below(&w->r, w->clock + 50);
}

/* ---- writes -------------------------------------------------------------- */

/* A write without ts: after the newest *visible* version, never below the
 * horizon. False if the newest visible version is at UINT64_MAX. */
static bool auto_ts_of(const mkey *m, uint64_t now, uint64_t *ts)
{
    long f = m_floor(m, UINT64_MAX, now);
    if (f >= 0 && m->v[f].ts == UINT64_MAX)
        return false;
    *ts = f >= 0 && m->v[f].ts >= now ? m->v[f].ts + 1 : now;
    if (*ts < m->horizon)
        *ts = m->horizon;
    return true;
}

static size_t visible_count(const mkey *m, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += m_visible(m, &m->v[i], now);
    return n;
}

static void op_write(world *w, int k, bool auto_ts, bool tomb, uint64_t ttl)
{
    mkey *m = &w->m[k];
    mver nv = {.tomb = tomb};
    nv.len = tomb ? 0 : (uint8_t)test_rng_below(&w->r, M_MAXV);
    for (int i = 0; i < nv.len; i++)
        nv.v[i] = (uint8_t)test_rng_next(&w->r);
    uint64_t ts = pick_ts(w), got;
    bool dirty;
    tkv_eng_rc st =
        tomb ? tkv_engine_tombstone(w->e, KEY(k), ts, !auto_ts, &got, &dirty)
             : tkv_engine_put(w->e, KEY(k), nv.v, nv.len, ts, !auto_ts, ttl, &got, &dirty);
    if (auto_ts && !auto_ts_of(m, w->clock, &ts)) {
        cr_assert_eq(st, TKV_E_OUT_OF_RANGE, "op %ld: auto ts after UINT64_MAX", w->ops);
        return;
    }
    if (ts < m->horizon) {
        cr_assert_eq(st, TKV_E_OUT_OF_RANGE, "op %ld: write below the horizon accepted", w->ops);
        return;
    }
    cr_assert_eq(st, TKV_E_OK, "op %ld: write failed (%d): %s", w->ops, st,
                 tkv_engine_errmsg(w->e));
    cr_assert_eq(got, ts, "op %ld: stored at %llu, want %llu", w->ops, (unsigned long long)got,
                 (unsigned long long)ts);
    cr_assert(dirty);
    nv.ts = ts;
    nv.expires = ttl ? w->clock + ttl : 0;
    m_store(m, &nv);
}

static void op_del(world *w, int k)
{
    uint64_t removed;
    bool dirty;
    cr_assert_eq(tkv_engine_del(w->e, KEY(k), &removed, &dirty), TKV_E_OK);
    /* Only what a reader could see counts, swept or not. */
    size_t want = visible_count(&w->m[k], w->clock);
    cr_assert_eq(removed, want, "op %ld: del removed %llu, want %zu", w->ops,
                 (unsigned long long)removed, want);
    w->m[k].n = 0;
    mkey_reset_meta(&w->m[k]);
}

/* ---- reads --------------------------------------------------------------- */

static void expect_found(world *w, const tkv_answer *a, tkv_eng_rc st, const mkey *m, long f,
                         const char *what)
{
    const mver *v = &m->v[f];
    long nx = m_after(m, v->ts, w->clock);
    cr_assert_eq(a->ts, v->ts, "op %ld %s: ts %llu want %llu", w->ops, what,
                 (unsigned long long)a->ts, (unsigned long long)v->ts);
    cr_assert_eq(a->has_next, nx >= 0, "op %ld %s: has_next", w->ops, what);
    if (nx >= 0)
        cr_assert_eq(a->next, m->v[nx].ts, "op %ld %s: next", w->ops, what);
    if (v->tomb) {
        cr_assert_eq(st, TKV_E_NOT_FOUND, "op %ld %s: a tombstone answered", w->ops, what);
        cr_assert_eq(a->miss, TKV_EM_DELETED, "op %ld %s: miss reason %d", w->ops, what, a->miss);
        cr_assert_eq(a->at, v->ts);
        return;
    }
    cr_assert_eq(st, TKV_E_OK, "op %ld %s: status %d", w->ops, what, st);
    cr_assert_eq(a->len, v->len, "op %ld %s: value length", w->ops, what);
    cr_assert(a->len == 0 || memcmp(a->value, v->v, a->len) == 0, "op %ld %s: value", w->ops, what);
    cr_assert_eq(a->expires, v->expires, "op %ld %s: expiry", w->ops, what);
}

static void op_get(world *w, int k)
{
    uint64_t T = pick_ts(w);
    tkv_answer a;
    tkv_eng_rc st = tkv_engine_get(w->e, KEY(k), T, &a);
    const mkey *m = &w->m[k];
    if (T < m->horizon) {
        long nx = m_after(m, m->horizon - 1, w->clock);
        cr_assert_eq(st, TKV_E_NOT_FOUND, "op %ld: get below the horizon", w->ops);
        cr_assert_eq(a.miss, TKV_EM_BELOW_HORIZON, "op %ld: miss reason %d", w->ops, a.miss);
        cr_assert_eq(a.at, m->horizon);
        cr_assert_eq(a.has_next, nx >= 0);
        if (nx >= 0)
            cr_assert_eq(a.next, m->v[nx].ts);
        return;
    }
    long f = m_floor(m, T, w->clock);
    if (f >= 0) {
        expect_found(w, &a, st, m, f, "get");
        return;
    }
    long nx = m_after(m, T, w->clock);
    cr_assert_eq(st, TKV_E_NOT_FOUND, "op %ld: get key %d at %llu found %llu", w->ops, k,
                 (unsigned long long)T, (unsigned long long)a.ts);
    cr_assert_eq(a.miss, nx >= 0 ? TKV_EM_BEFORE_FIRST : TKV_EM_NO_KEY, "op %ld: miss %d", w->ops,
                 a.miss);
    cr_assert_eq(a.has_next, nx >= 0);
    if (nx >= 0)
        cr_assert_eq(a.next, m->v[nx].ts, "op %ld: first version", w->ops);
}

static void op_get_nth(world *w, int k)
{
    const mkey *m = &w->m[k];
    long *vis = malloc((m->n + 1) * sizeof *vis);
    size_t nv = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m_visible(m, &m->v[i], w->clock))
            vis[nv++] = (long)i;
    int64_t n = (int64_t)test_rng_below(&w->r, 8) + 1;
    if (test_rng_below(&w->r, 2))
        n = -n;
    tkv_answer a;
    tkv_eng_rc st = tkv_engine_get_nth(w->e, KEY(k), n, &a);
    long idx = n > 0 ? n - 1 : (long)nv + n;
    if (idx < 0 || idx >= (long)nv) {
        cr_assert_eq(st, TKV_E_NOT_FOUND, "op %ld: version %lld of %zu", w->ops, (long long)n, nv);
        cr_assert_eq(a.miss, nv ? TKV_EM_NO_SUCH_VERSION : TKV_EM_NO_KEY);
        free(vis);
        return;
    }
    expect_found(w, &a, st, m, vis[idx], "get_nth");
    free(vis);
}

typedef struct collected {
    mver v[256];
    size_t n;
} collected;

static bool collect(void *ctx, const tkv_entry_view *e)
{
    collected *c = ctx;
    cr_assert_lt(c->n, 256);
    cr_assert_leq(e->len, M_MAXV);
    mver *v = &c->v[c->n++];
    v->ts = e->ts;
    v->tomb = e->value == NULL;
    v->len = (uint8_t)e->len;
    v->expires = e->expires;
    if (e->len)
        memcpy(v->v, e->value, e->len);
    return true;
}

static void op_range(world *w, int k)
{
    uint64_t a = pick_ts(w), b = pick_ts(w);
    uint64_t from = a < b ? a : b, to = a < b ? b : a;
    uint64_t limit = test_rng_below(&w->r, 3) ? UINT64_MAX : test_rng_below(&w->r, 6);
    bool reverse = test_rng_below(&w->r, 2), dirty;
    collected c = {.n = 0};
    cr_assert_eq(tkv_engine_range(w->e, KEY(k), from, to, limit, reverse, collect, &c, &dirty),
                 TKV_E_OK);
    const mkey *m = &w->m[k];
    size_t want = 0;
    for (size_t j = 0; j < m->n; j++) {
        const mver *v = &m->v[reverse ? m->n - 1 - j : j];
        if (v->ts < from || v->ts > to || want == limit || !m_visible(m, v, w->clock))
            continue;
        cr_assert_lt(want, c.n, "op %ld: range [%llu,%llu] rev %d: too few entries", w->ops,
                     (unsigned long long)from, (unsigned long long)to, reverse);
        const mver *g = &c.v[want];
        cr_assert_eq(g->ts, v->ts, "op %ld: range entry %zu ts", w->ops, want);
        cr_assert_eq(g->tomb, v->tomb, "op %ld: range entry %zu tombstone", w->ops, want);
        cr_assert_eq(g->len, v->len);
        cr_assert_eq(g->expires, v->expires);
        cr_assert(v->len == 0 || memcmp(g->v, v->v, v->len) == 0);
        want++;
    }
    cr_assert_eq(c.n, want, "op %ld: range returned %zu entries, want %zu", w->ops, c.n, want);
}

static void op_count(world *w, int k)
{
    uint64_t a = pick_ts(w), b = pick_ts(w), n;
    uint64_t from = a < b ? a : b, to = a < b ? b : a;
    bool dirty;
    cr_assert_eq(tkv_engine_count(w->e, KEY(k), from, to, &n, &dirty), TKV_E_OK);
    const mkey *m = &w->m[k];
    uint64_t want = 0;
    for (size_t j = 0; j < m->n; j++)
        want += m->v[j].ts >= from && m->v[j].ts <= to && m_visible(m, &m->v[j], w->clock);
    cr_assert_eq(n, want, "op %ld: count %llu, want %llu", w->ops, (unsigned long long)n,
                 (unsigned long long)want);
}

/* ---- retention ----------------------------------------------------------- */

static void op_retain(world *w, int k)
{
    mkey *m = &w->m[k];
    uint64_t kind = test_rng_below(&w->r, 4);
    uint32_t versions = kind == 0 ? 0 : (uint32_t)test_rng_below(&w->r, 5);
    uint64_t age = kind == 1 ? 0 : test_rng_below(&w->r, 3) ? 0 : 10 + test_rng_below(&w->r, 60);
    if (kind == 3)
        versions = 0, age = 0; /* clear the key's own policy */
    bool dry = test_rng_below(&w->r, 3) == 0, dirty;
    tkv_policy p = {versions, age};
    tkv_retain_result r;
    tkv_eng_rc st = tkv_engine_retain(w->e, KEY(k), &p, dry, &r, &dirty);
    cr_assert_eq(st, TKV_E_OK, "op %ld: retain: %s", w->ops, tkv_engine_errmsg(w->e));
    bool clearing = !versions && !age;
    uint32_t ev = clearing ? w->o.retain.versions : versions;
    uint64_t ea = clearing ? w->o.retain.age_us : age, removable = 0, horizon = 0;
    if (ev || ea)
        horizon = m_evaluate(m, ev, ea, w->clock, &removable);
    cr_assert_eq(r.removable, removable, "op %ld: retain removable %llu want %llu", w->ops,
                 (unsigned long long)r.removable, (unsigned long long)removable);
    cr_assert_eq(r.horizon, horizon, "op %ld: retain horizon", w->ops);
    cr_assert(r.complete);
    if (dry)
        return;
    m->has_policy = !clearing;
    m->keep_versions = versions;
    m->keep_age = age;
    if (horizon > m->horizon) {
        m->horizon = horizon;
        m->below = true;
    }
}

static void op_policy(world *w, int k)
{
    const mkey *m = &w->m[k];
    tkv_eng_policy_info pi;
    cr_assert_eq(tkv_engine_policy(w->e, KEY(k), &pi), TKV_E_OK);
    cr_assert_eq(pi.own, m->has_policy, "op %ld: policy own", w->ops);
    cr_assert_eq(pi.policy.versions, m->has_policy ? m->keep_versions : w->o.retain.versions);
    cr_assert_eq(pi.policy.age_us, m->has_policy ? m->keep_age : w->o.retain.age_us);
    cr_assert_eq(pi.horizon, m->horizon, "op %ld: policy horizon %llu want %llu", w->ops,
                 (unsigned long long)pi.horizon, (unsigned long long)m->horizon);
}

/* A whole sweep pass, in small steps with commits between, as the server
 * runs it; then the model does the same. */
static void op_sweep(world *w)
{
    cr_assert_eq(tkv_engine_commit(w->e), 0);
    if (getenv("TKV_MODEL_TRACE")) {
        tkv_engine_stats st;
        tkv_engine_stats_get(w->e, &st);
        fprintf(stderr, "  engine before: swept %llu expired, %llu retained\n",
                (unsigned long long)st.swept_expired, (unsigned long long)st.swept_retained);
        for (int k = 0; k < NKEYS; k++)
            for (size_t i = 0; i < w->m[k].n; i++)
                if (w->m[k].v[i].expires)
                    fprintf(stderr, "  model key %d ts %llu expires %llu\n", k,
                            (unsigned long long)w->m[k].v[i].ts,
                            (unsigned long long)w->m[k].v[i].expires);
    }
    bool full = w->o.retain.versions || w->o.retain.age_us;
    bool in_scope[NKEYS];
    for (int k = 0; k < NKEYS; k++)
        in_scope[k] =
            full || w->m[k].has_policy || w->m[k].min_expiry != UINT64_MAX || w->m[k].below;
    for (int guard = 0;; guard++) {
        cr_assert_lt(guard, 100000, "op %ld: the sweep never finished", w->ops);
        bool done = tkv_engine_sweep(w->e, 1 + (uint32_t)test_rng_below(&w->r, 6));
        cr_assert_eq(tkv_engine_commit(w->e), 0);
        if (done)
            break;
    }
    uint64_t gone = 0;
    for (int k = 0; k < NKEYS; k++) {
        mkey *m = &w->m[k];
        if (!in_scope[k])
            continue;
        uint32_t v = m->has_policy ? m->keep_versions : w->o.retain.versions;
        uint64_t a = m->has_policy ? m->keep_age : w->o.retain.age_us;
        uint64_t d = m_sweep_key(m, v, a, w->clock, &gone);
        w->swept += d;
        if (getenv("TKV_MODEL_TRACE"))
            fprintf(stderr, "  model sweep key %d: %llu deleted, %zu left, horizon %llu\n", k,
                    (unsigned long long)d, m->n, (unsigned long long)m->horizon);
    }
    if (getenv("TKV_MODEL_TRACE")) {
        tkv_engine_stats st;
        tkv_engine_stats_get(w->e, &st);
        fprintf(stderr, "  engine: swept %llu expired, %llu retained\n",
                (unsigned long long)st.swept_expired, (unsigned long long)st.swept_retained);
    }
}

/* ---- whole-state checks ---------------------------------------------------- */

static void check_counts(world *w)
{
    tkv_engine_stats s;
    tkv_engine_stats_get(w->e, &s);
    uint64_t keys = 0, versions = 0;
    for (int k = 0; k < NKEYS; k++) {
        keys += w->m[k].n > 0;
        versions += w->m[k].n;
    }
    cr_assert_eq(s.keys, keys, "op %ld: %llu keys, want %llu", w->ops, (unsigned long long)s.keys,
                 (unsigned long long)keys);
    cr_assert_eq(s.versions, versions, "op %ld: %llu versions, want %llu", w->ops,
                 (unsigned long long)s.versions, (unsigned long long)versions);
}

typedef struct scanned {
    uint8_t key[NKEYS][4];
    size_t len[NKEYS];
    size_t n;
} scanned;

static bool scan_cb(void *ctx, const uint8_t *key, size_t klen)
{
    scanned *s = ctx;
    cr_assert_lt(s->n, NKEYS, "scan listed too many keys");
    cr_assert_leq(klen, 4);
    memcpy(s->key[s->n], key, klen);
    s->len[s->n++] = klen;
    return true;
}

static int key_order(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    size_t n = KEYS[x].n < KEYS[y].n ? KEYS[x].n : KEYS[y].n;
    int c = memcmp(KEYS[x].b, KEYS[y].b, n);
    return c ? c : (int)KEYS[x].n - (int)KEYS[y].n;
}

static void op_scan(world *w)
{
    static const struct {
        const char *p;
        size_t n;
    } prefixes[] = {{"", 0}, {"k", 1}, {"\0", 1}};
    int pi = (int)test_rng_below(&w->r, 3);
    int order[NKEYS], want = 0;
    for (int k = 0; k < NKEYS; k++)
        if (w->m[k].n > 0 && KEYS[k].n >= prefixes[pi].n &&
            memcmp(KEYS[k].b, prefixes[pi].p, prefixes[pi].n) == 0)
            order[want++] = k;
    qsort(order, (size_t)want, sizeof order[0], key_order);
    scanned s = {.n = 0};
    uint8_t cursor[4];
    size_t clen = 0;
    bool more = true, first = true, dirty;
    while (more) {
        size_t before = s.n;
        uint32_t count = 1 + (uint32_t)test_rng_below(&w->r, 3);
        cr_assert_eq(tkv_engine_scan(w->e, (const uint8_t *)prefixes[pi].p, prefixes[pi].n,
                                     first ? NULL : cursor, clen, count, scan_cb, &s, &more,
                                     &dirty),
                     TKV_E_OK);
        first = false;
        cr_assert_leq(s.n - before, count);
        if (s.n > before) {
            clen = s.len[s.n - 1];
            memcpy(cursor, s.key[s.n - 1], clen);
        }
        if (more)
            cr_assert_gt(s.n, before, "op %ld: an empty page that says more", w->ops);
    }
    cr_assert_eq(s.n, (size_t)want, "op %ld: scan listed %zu keys, want %d", w->ops, s.n, want);
    for (int i = 0; i < want; i++) {
        cr_assert_eq(s.len[i], KEYS[order[i]].n, "op %ld: scan key %d", w->ops, i);
        cr_assert_eq(memcmp(s.key[i], KEYS[order[i]].b, s.len[i]), 0);
    }
}

static void op_commit(world *w)
{
    bool async = w->o.writer_thread && test_rng_below(&w->r, 4);
    if (async) {
        /* Hand the batch over and go on while the writer writes it. */
        uint64_t failed;
        cr_assert_geq(tkv_engine_commit_finish(w->e, &failed), 0);
        cr_assert_geq(tkv_engine_commit_start(w->e, &failed), 0);
    } else {
        cr_assert_eq(tkv_engine_commit(w->e), 0);
    }
    tkv_engine_maintain(w->e);
    if (w->o.max_memory) {
        tkv_engine_stats st;
        tkv_engine_stats_get(w->e, &st);
        w->evictions += st.evictions - w->evictions_seen;
        w->evictions_seen = st.evictions;
        /* Entries with writes in flight are pinned; otherwise the budget holds. */
        if (!async)
            cr_assert_leq(st.mem_bytes, w->o.max_memory, "op %ld: budget not held", w->ops);
    }
}

static void step(world *w)
{
    int k = (int)test_rng_below(&w->r, NKEYS);
    uint64_t x = test_rng_below(&w->r, 1000);
    if (getenv("TKV_MODEL_TRACE"))
        fprintf(stderr, "op %ld: key %d action %llu clock %llu\n", w->ops, k, (unsigned long long)x,
                (unsigned long long)w->clock);
    if (x < 230)
        op_write(w, k, false, false, 0);
    else if (x < 290)
        op_write(w, k, true, false, 0);
    else if (x < 350)
        op_write(w, k, test_rng_below(&w->r, 2), false, 1 + test_rng_below(&w->r, 40));
    else if (x < 390)
        op_write(w, k, test_rng_below(&w->r, 2), true, 0);
    else if (x < 570)
        op_get(w, k);
    else if (x < 620)
        op_get_nth(w, k);
    else if (x < 720)
        op_range(w, k);
    else if (x < 760)
        op_count(w, k);
    else if (x < 780)
        op_del(w, k);
    else if (x < 810)
        op_retain(w, k);
    else if (x < 830)
        op_policy(w, k);
    else if (x < 900)
        op_commit(w);
    else if (x < 950)
        w->clock += test_rng_below(&w->r, 30);
    else if (x < 970)
        op_sweep(w);
    else if (x < 985)
        op_scan(w);
    else
        reopen(w);
}

static void run_opts(uint32_t fill, uint32_t resident, size_t max_memory, tkv_policy retain,
                     bool threaded, long nops, const char *name)
{
    world w = {.r = {test_seed(name)}, .clock = 100};
    for (int k = 0; k < NKEYS; k++)
        mkey_reset_meta(&w.m[k]);
    w.dir = tmpdir_make("model");
    w.o = (tkv_engine_opts){.fill_versions = fill,
                            .resident_versions = resident,
                            .max_memory = max_memory,
                            .retain = retain,
                            .writer_thread = threaded,
                            .clock = test_clock,
                            .clock_ctx = &w};
    reopen(&w);
    for (w.ops = 0; w.ops < nops; w.ops++) {
        step(&w);
        if (w.ops % 97 == 0 || getenv("TKV_MODEL_TRACE"))
            check_counts(&w);
    }
    op_sweep(&w);
    reopen(&w);
    check_counts(&w);
    op_scan(&w);
    for (int k = 0; k < NKEYS; k++) {
        for (int i = 0; i < 20; i++)
            op_get(&w, k);
        op_range(&w, k);
        op_policy(&w, k);
        free(w.m[k].v);
    }
    fprintf(stderr,
            "%s: %llu reads needed LevelDB, %llu keys loaded, %llu evicted, %llu versions swept\n",
            name, (unsigned long long)w.reads_disk, (unsigned long long)w.fills,
            (unsigned long long)w.evictions, (unsigned long long)w.swept);
    if (max_memory)
        cr_assert_gt(w.evictions, 100, "the budget must force evictions");
    tkv_engine_close(w.e);
    tmpdir_remove(w.dir);
}

static void run(uint32_t fill, uint32_t resident, size_t max_memory, tkv_policy retain, long nops,
                const char *name)
{
    run_opts(fill, resident, max_memory, retain, false, nops, name);
}

static const tkv_policy NONE = {0, 0};

Test(model, tiny_cache_one_version_per_fill, .timeout = 120)
{
    run(1, 2, 0, NONE, 8000, "model-1-2");
}

Test(model, small_cache, .timeout = 120) { run(3, 5, 0, NONE, 8000, "model-3-5"); }

Test(model, default_cache, .timeout = 120) { run(0, 0, 0, NONE, 8000, "model-default"); }

Test(model, tiny_memory_budget_evicts_constantly, .timeout = 120)
{
    /* A few hundred bytes per key: 1.5 KiB holds a couple of keys, so
     * nearly every access reloads from LevelDB. */
    run(4, 8, 1536, NONE, 8000, "model-budget");
}

Test(model, server_keeps_three_versions, .timeout = 120)
{
    run(2, 4, 0, (tkv_policy){3, 0}, 8000, "model-retain-3");
}

Test(model, server_keeps_forty_microseconds, .timeout = 120)
{
    run(2, 4, 0, (tkv_policy){0, 40}, 8000, "model-retain-age");
}

Test(model, writer_thread_with_a_batch_in_flight, .timeout = 120)
{
    /* Commits return at once; reads, writes and evictions go on while the
     * writer thread writes the previous batch. */
    run_opts(2, 4, 1536, NONE, true, 8000, "model-threaded");
}
