/*
 * test_model.c - the engine against a trivially correct model
 * (tests/common/model.h, which fuzz_request holds the server to as well).
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
 * Variants shrink the cache (one version per load, a 1 KiB budget) so
 * answers constantly merge memory with LevelDB, and set server-wide
 * retention so the sweep walks every key.
 *
 * The nonblocking variants run every operation as tkvd does with reader
 * threads (engine.h, "Loads"): where it would read LevelDB it stops, its
 * load runs on a thread of its own while other operations - writes to the
 * same key, commits, evictions, sweeps, clock moves - go on (nested up to
 * two deep), then the load is installed and the operation runs again. The
 * model takes each operation when it finally runs, so every answer must
 * still be exactly the model's.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/tmpdir.h"
#include "../common/model.h"
#include "engine.h"

#define NKEYS 7
#define MAXV 12 /* longest value written */

static const struct {
    const char *b;
    size_t n;
} KEYS[NKEYS] = {{"k", 1}, {"k0", 2}, {"k1", 2}, {"\0", 1}, {"\0\0", 2}, {"k\0", 2}, {"z", 1}};

typedef struct world {
    test_rng r;
    mhist m[NKEYS];
    mvals vals; /* every value written */
    tkv_engine *e;
    tkv_engine_opts o;
    char *dir;
    uint64_t clock;
    long ops;
    uint64_t reads_disk, fills, evictions, swept; /* summed over restarts */
    uint64_t evictions_seen;
    bool nonblocking; /* operations wait for loads, as with reader threads */
    int depth;        /* operations nested inside a wait */
    uint64_t loads, stale;
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

/* ---- loads: operations that wait for the disk ----------------------------- */

/* Attempts before an operation runs in blocking mode, as tkvd's conn.c. */
#define MAX_ATTEMPTS 4

typedef struct loader {
    pthread_t th;
    tkv_engine *e;
    tkv_eng_load *l;
} loader;

static void *load_main(void *arg)
{
    loader *x = arg;
    tkv_engine_load_run(x->e, x->l);
    return NULL;
}

static void nb_begin(world *w, unsigned attempt)
{
    tkv_engine_set_nonblocking(w->e, w->nonblocking && attempt < MAX_ATTEMPTS, attempt);
}

static void nb_end(world *w) { tkv_engine_set_nonblocking(w->e, false, 0); }

static void step_nested(world *w);

/* The operation stopped for a load: the load runs on a thread while other
 * operations go on, then is installed. Returns the next attempt. */
static unsigned nb_wait(world *w, unsigned attempt)
{
    tkv_eng_load *l = tkv_engine_load_take(w->e);
    cr_assert_not_null(l, "op %ld: WOULD_BLOCK without a load", w->ops);
    nb_end(w);
    loader x = {.e = w->e, .l = l};
    cr_assert_eq(pthread_create(&x.th, NULL, load_main, &x), 0);
    if (w->depth < 2) {
        w->depth++;
        for (uint64_t n = test_rng_below(&w->r, 4); n > 0; n--)
            step_nested(w);
        w->depth--;
    }
    pthread_join(x.th, NULL);
    /* -1: larger than the key's share of the budget (or failed): the next
     * attempt runs in blocking mode, and would report a failure itself. */
    int rc = tkv_engine_load_install(w->e, l);
    w->loads++;
    w->stale += rc == 0;
    return rc < 0 ? MAX_ATTEMPTS : attempt + 1;
}

/* st = call, waiting for loads as tkvd does; call runs again after each. */
#define NB(w, st, call)                                                                \
    for (unsigned nb_a_ = 0; nb_begin(w, nb_a_), ((st) = (call)) == TKV_E_WOULD_BLOCK; \
         nb_a_ = nb_wait(w, nb_a_))                                                    \
        ;                                                                              \
    nb_end(w)

/* ---- writes -------------------------------------------------------------- */

static void op_write(world *w, int k, bool auto_ts, bool tomb, uint64_t ttl)
{
    mhist *m = &w->m[k];
    uint8_t val[MAXV];
    uint32_t len = tomb ? 0 : (uint32_t)test_rng_below(&w->r, MAXV);
    for (uint32_t i = 0; i < len; i++)
        val[i] = (uint8_t)test_rng_next(&w->r);
    uint64_t ts = pick_ts(w), got, want;
    bool dirty;
    tkv_eng_rc st;
    NB(w, st,
       tomb ? tkv_engine_tombstone(w->e, KEY(k), ts, !auto_ts, &got, &dirty)
            : tkv_engine_put(w->e, KEY(k), val, len, ts, !auto_ts, ttl, &got, &dirty));
    if (!mhist_write_ts(m, !auto_ts, ts, w->clock, &want)) {
        cr_assert_eq(st, TKV_E_OUT_OF_RANGE, "op %ld: %s accepted (horizon %llu)", w->ops,
                     auto_ts ? "auto ts after the largest" : "write below the horizon",
                     (unsigned long long)m->horizon);
        return;
    }
    cr_assert_eq(st, TKV_E_OK, "op %ld: write failed (%d): %s", w->ops, st,
                 tkv_engine_errmsg(w->e));
    cr_assert_eq(got, want, "op %ld: stored at %llu, want %llu", w->ops, (unsigned long long)got,
                 (unsigned long long)want);
    cr_assert(dirty);
    mhist_put(m, want, tomb ? NULL : mvals_keep(&w->vals, val, len), len,
              mhist_expiry(ttl, w->clock));
}

static void op_del(world *w, int k)
{
    uint64_t removed;
    bool dirty;
    tkv_eng_rc st;
    NB(w, st, tkv_engine_del(w->e, KEY(k), &removed, &dirty));
    cr_assert_eq(st, TKV_E_OK);
    /* Only what a reader could see counts, swept or not. */
    size_t want = mhist_visible_count(&w->m[k], w->clock);
    cr_assert_eq(removed, want, "op %ld: del removed %llu, want %zu", w->ops,
                 (unsigned long long)removed, want);
    mhist_del(&w->m[k]);
}

/* ---- reads --------------------------------------------------------------- */

/* The engine's answer is the model's: the version found, or the miss, its
 * reason and time; and the next visible version either way. */
static void expect_answer(world *w, const tkv_answer *a, tkv_eng_rc st, const manswer *m,
                          const char *what)
{
    cr_assert_eq(a->has_next, m->has_next, "op %ld %s: has_next", w->ops, what);
    if (m->has_next)
        cr_assert_eq(a->next, m->next, "op %ld %s: next %llu want %llu", w->ops, what,
                     (unsigned long long)a->next, (unsigned long long)m->next);
    if (!m->v) {
        cr_assert_eq(st, TKV_E_NOT_FOUND, "op %ld %s: status %d, want a miss (%d)", w->ops, what,
                     st, m->miss);
        cr_assert_eq(a->miss, m->miss, "op %ld %s: miss reason %d want %d", w->ops, what, a->miss,
                     m->miss);
        if (m->has_at)
            cr_assert_eq(a->at, m->at, "op %ld %s: at %llu want %llu", w->ops, what,
                         (unsigned long long)a->at, (unsigned long long)m->at);
        return;
    }
    const mver *v = m->v;
    cr_assert_eq(st, TKV_E_OK, "op %ld %s: status %d", w->ops, what, st);
    cr_assert_eq(a->ts, v->ts, "op %ld %s: ts %llu want %llu", w->ops, what,
                 (unsigned long long)a->ts, (unsigned long long)v->ts);
    cr_assert_eq(a->len, v->len, "op %ld %s: value length", w->ops, what);
    cr_assert(a->len == 0 || memcmp(a->value, v->val, a->len) == 0, "op %ld %s: value", w->ops,
              what);
    cr_assert_eq(a->expires, v->expires, "op %ld %s: expiry", w->ops, what);
}

static void op_get(world *w, int k)
{
    uint64_t T = pick_ts(w);
    tkv_answer a;
    tkv_eng_rc st;
    NB(w, st, tkv_engine_get(w->e, KEY(k), T, &a));
    manswer want = mhist_get(&w->m[k], T, w->clock);
    expect_answer(w, &a, st, &want, "get");
}

static void op_get_nth(world *w, int k)
{
    int64_t n = (int64_t)test_rng_below(&w->r, 8) + 1;
    if (test_rng_below(&w->r, 2))
        n = -n;
    tkv_answer a;
    tkv_eng_rc st;
    NB(w, st, tkv_engine_get_nth(w->e, KEY(k), n, &a));
    manswer want = mhist_get_nth(&w->m[k], n, w->clock);
    expect_answer(w, &a, st, &want, "get_nth");
}

/* A RANGE entry as the engine gave it (its view ends with the callback). */
typedef struct gotv {
    uint64_t ts;
    bool tomb;
    uint32_t len;
    uint8_t v[MAXV];
    uint64_t expires;
} gotv;

typedef struct collected {
    gotv v[256];
    size_t n;
} collected;

static bool collect(void *ctx, const tkv_entry_view *e)
{
    collected *c = ctx;
    cr_assert_lt(c->n, 256);
    cr_assert_leq(e->len, MAXV);
    gotv *v = &c->v[c->n++];
    v->ts = e->ts;
    v->tomb = e->value == NULL;
    v->len = e->len;
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
    static collected c; /* large: not on the stack of nested operations */
    tkv_eng_rc st;
    NB(w, st,
       (c.n = 0, tkv_engine_range(w->e, KEY(k), from, to, limit, reverse, collect, &c, &dirty)));
    cr_assert_eq(st, TKV_E_OK);
    const mhist *m = &w->m[k];
    const mver **want = malloc((m->n + 1) * sizeof *want);
    size_t n = mhist_range(m, from, to, limit, reverse, w->clock, want);
    cr_assert_eq(c.n, n, "op %ld: range [%llu,%llu] rev %d returned %zu entries, want %zu", w->ops,
                 (unsigned long long)from, (unsigned long long)to, reverse, c.n, n);
    for (size_t i = 0; i < n; i++) {
        const mver *v = want[i];
        const gotv *g = &c.v[i];
        cr_assert_eq(g->ts, v->ts, "op %ld: range entry %zu ts", w->ops, i);
        cr_assert_eq(g->tomb, v->val == NULL, "op %ld: range entry %zu tombstone", w->ops, i);
        cr_assert_eq(g->len, v->len);
        cr_assert_eq(g->expires, v->expires);
        cr_assert(v->len == 0 || memcmp(g->v, v->val, v->len) == 0);
    }
    free(want);
}

static void op_count(world *w, int k)
{
    uint64_t a = pick_ts(w), b = pick_ts(w), n;
    uint64_t from = a < b ? a : b, to = a < b ? b : a;
    bool dirty;
    tkv_eng_rc st;
    NB(w, st, tkv_engine_count(w->e, KEY(k), from, to, &n, &dirty));
    cr_assert_eq(st, TKV_E_OK);
    uint64_t want = mhist_count(&w->m[k], from, to, w->clock);
    cr_assert_eq(n, want, "op %ld: count %llu, want %llu", w->ops, (unsigned long long)n,
                 (unsigned long long)want);
}

/* ---- retention ----------------------------------------------------------- */

static void op_retain(world *w, int k)
{
    mhist *m = &w->m[k];
    uint64_t kind = test_rng_below(&w->r, 4);
    uint32_t versions = kind == 0 ? 0 : (uint32_t)test_rng_below(&w->r, 5);
    uint64_t age = kind == 1 ? 0 : test_rng_below(&w->r, 3) ? 0 : 10 + test_rng_below(&w->r, 60);
    if (kind == 3)
        versions = 0, age = 0; /* clear the key's own policy */
    bool dry = test_rng_below(&w->r, 3) == 0, dirty;
    tkv_policy p = {versions, age};
    tkv_retain_result r;
    tkv_eng_rc st;
    NB(w, st, tkv_engine_retain(w->e, KEY(k), &p, dry, &r, &dirty));
    cr_assert_eq(st, TKV_E_OK, "op %ld: retain: %s", w->ops, tkv_engine_errmsg(w->e));
    /* Clearing evaluates the server's default, which applies again. */
    mretain want = mhist_retain(m, &p, &w->o.retain, dry, w->clock);
    cr_assert_eq(r.removable, want.removable, "op %ld: retain removable %llu want %llu", w->ops,
                 (unsigned long long)r.removable, (unsigned long long)want.removable);
    cr_assert_eq(r.horizon, want.horizon, "op %ld: retain horizon", w->ops);
    cr_assert(r.complete);
}

static void op_policy(world *w, int k)
{
    const mhist *m = &w->m[k];
    tkv_eng_policy_info pi;
    tkv_eng_rc st;
    NB(w, st, tkv_engine_policy(w->e, KEY(k), &pi));
    cr_assert_eq(st, TKV_E_OK);
    tkv_policy want = mhist_policy(m, &w->o.retain);
    cr_assert_eq(pi.own, m->has_policy, "op %ld: policy own", w->ops);
    cr_assert_eq(pi.policy.versions, want.versions);
    cr_assert_eq(pi.policy.age_us, want.age_us);
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
    bool in_scope[NKEYS];
    for (int k = 0; k < NKEYS; k++)
        in_scope[k] = mhist_sweep_scope(&w->m[k], &w->o.retain);
    for (int guard = 0;; guard++) {
        cr_assert_lt(guard, 100000, "op %ld: the sweep never finished", w->ops);
        bool done = tkv_engine_sweep(w->e, 1 + (uint32_t)test_rng_below(&w->r, 6));
        cr_assert_eq(tkv_engine_commit(w->e), 0);
        if (done)
            break;
    }
    for (int k = 0; k < NKEYS; k++) {
        mhist *m = &w->m[k];
        if (!in_scope[k])
            continue;
        uint64_t d = mhist_sweep(m, &w->o.retain, w->clock);
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

/* One random operation; inside a wait (nested) anything but a restart,
 * which must not close the store under a running load. */
static void step_any(world *w, bool nested)
{
    int k = (int)test_rng_below(&w->r, NKEYS);
    uint64_t x = test_rng_below(&w->r, nested ? 985 : 1000);
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

static void step(world *w) { step_any(w, false); }

static void step_nested(world *w) { step_any(w, true); }

/* The empty index takes 700-800 bytes of it (its sentinel and a 64-slot hash
 * table); what is left holds a couple of keys. */
#define TINY_BUDGET 1024

static void run_opts(uint32_t fill, uint32_t resident, size_t max_memory, tkv_policy retain,
                     bool threaded, bool nonblocking, long nops, const char *name)
{
    world w = {.r = {test_seed(name)}, .clock = 100, .nonblocking = nonblocking};
    w.dir = tmpdir_make("model");
    w.o = (tkv_engine_opts){.fill_versions = fill,
                            .resident_versions = resident,
                            .max_memory = max_memory,
                            .retain = retain,
                            .writer_thread = threaded,
                            /* A write buffer of a few batches: answers
                             * merge it, the one being flushed and LevelDB's
                             * chunks, rewritten as late writes land. */
                            .write_buffer = 8 * 1024,
                            .clock = test_clock,
                            .clock_ctx = &w};
    reopen(&w);
    /* TKV_MODEL_SCALE (a factor, default 1) shortens or lengthens every run:
     * CI's sanitizer stage halves them, a long hunt multiplies them. */
    const char *scale = getenv("TKV_MODEL_SCALE");
    if (scale && atof(scale) > 0)
        nops = (long)((double)nops * atof(scale));
    for (w.ops = 0; w.ops < nops; w.ops++) {
        step(&w);
        if (w.ops % 97 == 0 || getenv("TKV_MODEL_TRACE"))
            check_counts(&w);
    }
    /* The final checks free each key's model as they go: nothing may run
     * nested inside them. */
    w.depth = 2;
    op_sweep(&w);
    reopen(&w);
    check_counts(&w);
    op_scan(&w);
    for (int k = 0; k < NKEYS; k++) {
        for (int i = 0; i < 20; i++)
            op_get(&w, k);
        op_range(&w, k);
        op_policy(&w, k);
        mhist_free(&w.m[k]);
    }
    mvals_free(&w.vals);
    fprintf(stderr,
            "%s: %llu reads needed LevelDB, %llu keys loaded, %llu evicted, %llu versions swept\n",
            name, (unsigned long long)w.reads_disk, (unsigned long long)w.fills,
            (unsigned long long)w.evictions, (unsigned long long)w.swept);
    if (max_memory)
        cr_assert_gt(w.evictions, 100, "the budget must force evictions");
    if (nonblocking) {
        fprintf(stderr, "%s: %llu loads, %llu of them stale\n", name, (unsigned long long)w.loads,
                (unsigned long long)w.stale);
        cr_assert_gt(w.loads, 500, "operations must wait for loads");
        cr_assert_gt(w.stale, 0, "writes must race loads");
    }
    tkv_engine_close(w.e);
    tmpdir_remove(w.dir);
}

static void run(uint32_t fill, uint32_t resident, size_t max_memory, tkv_policy retain, long nops,
                const char *name)
{
    run_opts(fill, resident, max_memory, retain, false, false, nops, name);
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
    /* A few hundred bytes per key: TINY_BUDGET holds a couple of keys, so
     * nearly every access reloads from LevelDB. */
    run(4, 8, TINY_BUDGET, NONE, 8000, "model-budget");
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
    run_opts(2, 4, TINY_BUDGET, NONE, true, false, 8000, "model-threaded");
}

Test(model, loads_race_writes_with_one_version_per_fill, .timeout = 120)
{
    run_opts(1, 2, 0, NONE, false, true, 8000, "model-nb-1-2");
}

Test(model, loads_race_evictions_and_writes_in_flight, .timeout = 120)
{
    run_opts(2, 4, TINY_BUDGET, NONE, true, true, 8000, "model-nb-threaded");
}

Test(model, loads_race_retention_and_the_sweep, .timeout = 120)
{
    run_opts(2, 4, TINY_BUDGET, (tkv_policy){3, 40}, true, true, 8000, "model-nb-retain");
}
