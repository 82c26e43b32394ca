/*
 * test_model.c - the engine against a trivially correct model.
 *
 * Thousands of random PUT (with colliding and out-of-order timestamps, and
 * server-assigned ones), GET, RANGE and DEL operations, interleaved with
 * commits and restarts, are run against the engine and against a model that
 * keeps each key's versions in a sorted array. Every answer must agree:
 * values, timestamps, the next-version timestamp, miss reasons, range
 * contents and order, delete counts and the stored key/version counts.
 *
 * Small fill and residency limits make the engine keep only a key's newest
 * versions in memory, so answers constantly merge memory with LevelDB.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/tmpdir.h"
#include "engine.h"

#define NKEYS 7
#define TS_SPAN 60

typedef struct mver {
    uint64_t ts;
    uint8_t v[12];
    uint8_t len;
} mver;

typedef struct mkey {
    mver *v;
    size_t n, cap;
} mkey;

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
    uint64_t reads_disk, reads_mem, fills; /* summed over restarts */
    uint64_t evictions, evictions_seen;
} world;

static uint64_t test_clock(void *ctx) { return ((world *)ctx)->clock; }

static void reopen(world *w)
{
    char err[256];
    if (w->e) {
        cr_assert_eq(tkv_engine_commit(w->e), 0);
        tkv_engine_stats st;
        tkv_engine_stats_get(w->e, &st);
        w->reads_disk += st.reads_disk;
        w->reads_mem += st.reads_mem;
        w->fills += st.fills;
        tkv_engine_close(w->e);
        w->evictions_seen = 0;
    }
    w->o.dir = w->dir;
    cr_assert_eq(tkv_engine_open(&w->o, &w->e, err, sizeof err), 0, "%s", err);
}

static long mfind(const mkey *k, uint64_t ts)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].ts == ts)
            return (long)i;
    return -1;
}

static void mput(mkey *k, uint64_t ts, const uint8_t *v, uint8_t len)
{
    long at = mfind(k, ts);
    if (at < 0) {
        if (k->n == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 8;
            k->v = realloc(k->v, k->cap * sizeof *k->v);
        }
        size_t i = 0;
        while (i < k->n && k->v[i].ts < ts)
            i++;
        memmove(&k->v[i + 1], &k->v[i], (k->n - i) * sizeof *k->v);
        k->n++;
        at = (long)i;
    }
    k->v[at].ts = ts;
    memcpy(k->v[at].v, v, len);
    k->v[at].len = len;
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
    return test_rng_below(&w->r, TS_SPAN);
}

static void op_put(world *w, int k, bool auto_ts)
{
    uint8_t v[12];
    uint8_t len = (uint8_t)test_rng_below(&w->r, 12);
    for (int i = 0; i < len; i++)
        v[i] = (uint8_t)test_rng_next(&w->r);
    mkey *m = &w->m[k];
    uint64_t ts = pick_ts(w), got;
    bool dirty;
    w->clock += test_rng_below(&w->r, 4);
    tkv_status st = tkv_engine_put(w->e, (const uint8_t *)KEYS[k].b, KEYS[k].n, v, len, ts,
                                   !auto_ts, 0, &got, &dirty);
    if (auto_ts) {
        uint64_t newest = m->n ? m->v[m->n - 1].ts : 0;
        if (m->n && newest == UINT64_MAX) {
            cr_assert_eq(st, TKV_ST_OUT_OF_RANGE, "op %ld: auto ts after UINT64_MAX", w->ops);
            return;
        }
        ts = m->n && newest >= w->clock ? newest + 1 : w->clock;
    }
    cr_assert_eq(st, TKV_ST_OK, "op %ld: put failed: %s", w->ops, tkv_engine_errmsg(w->e));
    cr_assert_eq(got, ts, "op %ld: put stored at %llu, want %llu", w->ops,
                 (unsigned long long)got, (unsigned long long)ts);
    cr_assert(dirty);
    mput(m, ts, v, len);
}

static void op_get(world *w, int k)
{
    uint64_t T = pick_ts(w);
    tkv_answer a;
    tkv_status st = tkv_engine_get(w->e, (const uint8_t *)KEYS[k].b, KEYS[k].n, T, &a);
    mkey *m = &w->m[k];
    long i = -1;
    for (size_t j = 0; j < m->n && m->v[j].ts <= T; j++)
        i = (long)j;
    if (i < 0) {
        cr_assert_eq(st, TKV_ST_NOT_FOUND, "op %ld: get key %d at %llu found something", w->ops,
                     k, (unsigned long long)T);
        cr_assert_eq(a.miss, m->n ? TKV_M_BEFORE_FIRST : TKV_M_NO_KEY, "op %ld: miss reason",
                     w->ops);
        cr_assert_eq(a.has_next, m->n > 0, "op %ld: miss next", w->ops);
        if (m->n)
            cr_assert_eq(a.next, m->v[0].ts, "op %ld: first version", w->ops);
        return;
    }
    cr_assert_eq(st, TKV_ST_OK, "op %ld: get key %d at %llu: status %d", w->ops, k,
                 (unsigned long long)T, st);
    cr_assert_eq(a.ts, m->v[i].ts, "op %ld: get key %d at %llu: ts %llu want %llu", w->ops, k,
                 (unsigned long long)T, (unsigned long long)a.ts,
                 (unsigned long long)m->v[i].ts);
    cr_assert_eq(a.len, m->v[i].len, "op %ld: value length", w->ops);
    cr_assert(a.len == 0 || memcmp(a.value, m->v[i].v, a.len) == 0, "op %ld: value", w->ops);
    bool has_next = (size_t)i + 1 < m->n;
    cr_assert_eq(a.has_next, has_next, "op %ld: has_next", w->ops);
    if (has_next)
        cr_assert_eq(a.next, m->v[i + 1].ts, "op %ld: next", w->ops);
}

typedef struct collected {
    mver v[256];
    size_t n;
} collected;

static bool collect(void *ctx, const tkv_entry_view *e)
{
    collected *c = ctx;
    cr_assert_lt(c->n, 256);
    cr_assert_leq(e->len, 12);
    c->v[c->n].ts = e->ts;
    c->v[c->n].len = (uint8_t)e->len;
    memcpy(c->v[c->n].v, e->value, e->len);
    c->n++;
    return true;
}

static void op_range(world *w, int k)
{
    uint64_t a = pick_ts(w), b = pick_ts(w);
    uint64_t from = a < b ? a : b, to = a < b ? b : a;
    uint64_t limit = test_rng_below(&w->r, 3) ? UINT64_MAX : test_rng_below(&w->r, 6);
    bool reverse = test_rng_below(&w->r, 2);
    collected c = {.n = 0};
    bool dirty;
    tkv_status st = tkv_engine_range(w->e, (const uint8_t *)KEYS[k].b, KEYS[k].n, from, to,
                                     limit, reverse, collect, &c, &dirty);
    cr_assert_eq(st, TKV_ST_OK);
    mkey *m = &w->m[k];
    size_t want = 0;
    for (size_t j = 0; j < m->n; j++) {
        size_t idx = reverse ? m->n - 1 - j : j;
        if (m->v[idx].ts < from || m->v[idx].ts > to || want == limit)
            continue;
        cr_assert_lt(want, c.n, "op %ld: range [%llu,%llu] rev %d: too few entries", w->ops,
                     (unsigned long long)from, (unsigned long long)to, reverse);
        cr_assert_eq(c.v[want].ts, m->v[idx].ts, "op %ld: range entry %zu ts", w->ops, want);
        cr_assert_eq(c.v[want].len, m->v[idx].len);
        cr_assert_eq(memcmp(c.v[want].v, m->v[idx].v, m->v[idx].len), 0);
        want++;
    }
    cr_assert_eq(c.n, want, "op %ld: range returned %zu entries, want %zu", w->ops, c.n, want);
}

static void op_del(world *w, int k)
{
    uint64_t removed;
    bool dirty;
    cr_assert_eq(tkv_engine_del(w->e, (const uint8_t *)KEYS[k].b, KEYS[k].n, &removed, &dirty),
                 TKV_ST_OK);
    cr_assert_eq(removed, w->m[k].n, "op %ld: del removed %llu, want %zu", w->ops,
                 (unsigned long long)removed, w->m[k].n);
    w->m[k].n = 0;
}

static void check_counts(world *w)
{
    tkv_engine_stats s;
    tkv_engine_stats_get(w->e, &s);
    uint64_t keys = 0, versions = 0;
    for (int k = 0; k < NKEYS; k++) {
        keys += w->m[k].n > 0;
        versions += w->m[k].n;
    }
    cr_assert_eq(s.keys, keys, "op %ld: %llu keys, want %llu", w->ops,
                 (unsigned long long)s.keys, (unsigned long long)keys);
    cr_assert_eq(s.versions, versions, "op %ld: %llu versions, want %llu", w->ops,
                 (unsigned long long)s.versions, (unsigned long long)versions);
}

static void run(uint32_t fill, uint32_t resident, size_t max_memory, long nops,
                const char *name)
{
    world w = {.r = {test_seed(name)}, .clock = 10};
    w.dir = tmpdir_make("model");
    w.o = (tkv_engine_opts){.fill_versions = fill, .resident_versions = resident,
                            .max_memory = max_memory, .clock = test_clock, .clock_ctx = &w};
    reopen(&w);
    for (w.ops = 0; w.ops < nops; w.ops++) {
        int k = (int)test_rng_below(&w.r, NKEYS);
        uint64_t what = test_rng_below(&w.r, 100);
        if (what < 30)
            op_put(&w, k, false);
        else if (what < 38)
            op_put(&w, k, true);
        else if (what < 65)
            op_get(&w, k);
        else if (what < 82)
            op_range(&w, k);
        else if (what < 86)
            op_del(&w, k);
        else if (what < 98) {
            cr_assert_eq(tkv_engine_commit(w.e), 0);
            tkv_engine_maintain(w.e);
            if (max_memory) {
                tkv_engine_stats st;
                tkv_engine_stats_get(w.e, &st);
                w.evictions += st.evictions - w.evictions_seen;
                w.evictions_seen = st.evictions;
                cr_assert_leq(st.mem_bytes, max_memory, "op %ld: budget not held", w.ops);
            }
        }
        else
            reopen(&w);
        if (w.ops % 97 == 0)
            check_counts(&w);
    }
    reopen(&w);
    check_counts(&w);
    fprintf(stderr,
            "%s: %llu reads needed LevelDB, %llu memory alone, %llu keys loaded, %llu evicted\n",
            name, (unsigned long long)w.reads_disk, (unsigned long long)w.reads_mem,
            (unsigned long long)w.fills, (unsigned long long)w.evictions);
    if (max_memory)
        cr_assert_gt(w.evictions, 100, "the budget must force evictions");
    for (int k = 0; k < NKEYS; k++) {
        for (int i = 0; i < 20; i++)
            op_get(&w, k);
        op_range(&w, k);
        free(w.m[k].v);
    }
    tkv_engine_close(w.e);
    tmpdir_remove(w.dir);
}

Test(model, tiny_cache_one_version_per_fill, .timeout = 120)
{
    run(1, 2, 0, 6000, "model-1-2");
}

Test(model, small_cache, .timeout = 120)
{
    run(3, 5, 0, 6000, "model-3-5");
}

Test(model, default_cache, .timeout = 120)
{
    run(0, 0, 0, 6000, "model-default");
}

Test(model, tiny_memory_budget_evicts_constantly, .timeout = 120)
{
    /* Each key's page and entry cost a few hundred bytes: 1.5 KiB holds
     * only a couple of keys, so nearly every access reloads from LevelDB. */
    run(4, 8, 1536, 6000, "model-budget");
}
