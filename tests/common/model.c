/*
 * model.c - implements the key model of model.h with a sorted array and
 * linear scans: a test touches tens of keys and hundreds of versions, and
 * this has to be obviously right rather than fast. Each rule is written
 * once; the reads are built from two walks (the visible version current at
 * a time, the first visible one after it) and retention from one (ret_*).
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

static size_t stored(const mhist *h) { return h ? h->n : 0; }

/* ---- visibility ---------------------------------------------------------- */

bool mhist_visible(const mhist *h, const mver *v, uint64_t now)
{
    return v->ts >= h->horizon && (v->expires == 0 || v->expires > now);
}

size_t mhist_visible_count(const mhist *h, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < stored(h); i++)
        n += mhist_visible(h, &h->v[i], now);
    return n;
}

size_t mhist_visible_list(const mhist *h, uint64_t now, const mver **out)
{
    size_t n = 0;
    for (size_t i = 0; i < stored(h); i++)
        if (mhist_visible(h, &h->v[i], now))
            out[n++] = &h->v[i];
    return n;
}

/* The newest visible version with ts <= T, or NULL. */
static const mver *current_at(const mhist *h, uint64_t T, uint64_t now)
{
    const mver *r = NULL;
    for (size_t i = 0; i < stored(h) && h->v[i].ts <= T; i++)
        if (mhist_visible(h, &h->v[i], now))
            r = &h->v[i];
    return r;
}

/* The oldest visible version with ts > T, or NULL. */
static const mver *first_after(const mhist *h, uint64_t T, uint64_t now)
{
    for (size_t i = 0; i < stored(h); i++)
        if (h->v[i].ts > T && mhist_visible(h, &h->v[i], now))
            return &h->v[i];
    return NULL;
}

/* ---- reads --------------------------------------------------------------- */

static void set_next(const mhist *h, uint64_t T, uint64_t now, manswer *a)
{
    const mver *nx = first_after(h, T, now);
    a->has_next = nx != NULL;
    a->next = nx ? nx->ts : 0;
}

/* The answer of a visible version: its value, or a tombstone's DELETED. */
static manswer answer_at(const mhist *h, const mver *v, uint64_t now)
{
    manswer a = {.v = v->val ? v : NULL};
    if (!v->val) {
        a.miss = TKV_EM_DELETED;
        a.has_at = true;
        a.at = v->ts;
    }
    set_next(h, v->ts, now, &a);
    return a;
}

manswer mhist_get(const mhist *h, uint64_t T, uint64_t now)
{
    manswer a = {0};
    if (h && T < h->horizon) {
        a.miss = TKV_EM_BELOW_HORIZON;
        a.has_at = true;
        a.at = h->horizon;
        set_next(h, h->horizon - 1, now, &a);
        return a;
    }
    const mver *v = current_at(h, T, now);
    if (v)
        return answer_at(h, v, now);
    set_next(h, T, now, &a);
    a.miss = a.has_next ? TKV_EM_BEFORE_FIRST : TKV_EM_NO_KEY;
    return a;
}

manswer mhist_get_nth(const mhist *h, int64_t n, uint64_t now)
{
    manswer a = {0};
    size_t nvis = mhist_visible_count(h, now);
    uint64_t mag = n > 0 ? (uint64_t)n : (uint64_t)(-(n + 1)) + 1;
    if (mag > nvis) {
        a.miss = nvis ? TKV_EM_NO_SUCH_VERSION : TKV_EM_NO_KEY;
        return a;
    }
    size_t want = n > 0 ? (size_t)mag - 1 : nvis - (size_t)mag, seen = 0;
    for (size_t i = 0; i < stored(h); i++)
        if (mhist_visible(h, &h->v[i], now) && seen++ == want)
            return answer_at(h, &h->v[i], now);
    abort(); /* mag <= nvis: unreachable */
}

size_t mhist_range(const mhist *h, uint64_t from, uint64_t to, uint64_t limit, bool reverse,
                   uint64_t now, const mver **out)
{
    size_t n = 0, all = stored(h);
    for (size_t j = 0; j < all && n < limit; j++) {
        const mver *v = &h->v[reverse ? all - 1 - j : j];
        if (v->ts >= from && v->ts <= to && mhist_visible(h, v, now))
            out[n++] = v;
    }
    return n;
}

uint64_t mhist_count(const mhist *h, uint64_t from, uint64_t to, uint64_t now)
{
    uint64_t n = 0;
    for (size_t i = 0; i < stored(h); i++)
        n += h->v[i].ts >= from && h->v[i].ts <= to && mhist_visible(h, &h->v[i], now);
    return n;
}

/* ---- writes -------------------------------------------------------------- */

bool mhist_write_ts(const mhist *h, bool has_ts, uint64_t ts, uint64_t now, uint64_t *out)
{
    uint64_t horizon = h ? h->horizon : 0;
    if (!has_ts) {
        const mver *newest = current_at(h, TKV_ENG_TS_MAX, now);
        if (newest && newest->ts == TKV_ENG_TS_MAX)
            return false;
        ts = newest && newest->ts >= now ? newest->ts + 1 : now;
        if (ts < horizon)
            ts = horizon;
    }
    if (ts < horizon)
        return false;
    *out = ts;
    return true;
}

uint64_t mhist_expiry(uint64_t ttl, uint64_t now)
{
    return !ttl ? 0 : ttl > UINT64_MAX - now ? UINT64_MAX : now + ttl;
}

static void reserve(mhist *h, size_t n)
{
    if (n <= h->cap)
        return;
    h->cap = n < 8 ? 8 : 2 * n;
    h->v = xrealloc(h->v, h->cap * sizeof *h->v);
}

void mhist_put(mhist *h, uint64_t ts, const uint8_t *val, uint32_t len, uint64_t expires)
{
    size_t i = 0;
    while (i < h->n && h->v[i].ts < ts)
        i++;
    if (i == h->n || h->v[i].ts != ts) {
        reserve(h, h->n + 1);
        memmove(&h->v[i + 1], &h->v[i], (h->n - i) * sizeof *h->v);
        h->n++;
    }
    h->v[i] = (mver){.ts = ts, .val = val, .len = val ? len : 0, .expires = expires};
    if (expires && (!h->min_expiry || expires < h->min_expiry))
        h->min_expiry = expires;
}

void mhist_del(mhist *h)
{
    mver *v = h->v;
    size_t cap = h->cap;
    *h = (mhist){.v = v, .cap = cap};
}

/* ---- retention ----------------------------------------------------------- */

/* A walk over a key's visible versions, newest first, that says of each
 * whether a policy keeps it (the rule at mhist_evaluate). */
typedef enum ret_verdict {
    RET_KEEP,  /* newer than the cut-off */
    RET_FLOOR, /* the version current at the cut-off: kept */
    RET_CUT,   /* older than the floor: the policy removes it */
} ret_verdict;

typedef struct ret_walk {
    uint32_t versions; /* the policy's count, 0: none */
    uint64_t H;        /* the cut-off so far */
    uint64_t seen;     /* visible versions walked */
    bool has_floor;
    uint64_t floor; /* the floor's ts, once has_floor */
    uint64_t cut;   /* versions cut so far */
} ret_walk;

static ret_walk ret_begin(const tkv_policy *p, uint64_t now)
{
    return (ret_walk){.versions = p->versions,
                      .H = p->age_us && now > p->age_us ? now - p->age_us : 0};
}

/* The verdict on the next visible version (ts), newest first. */
static ret_verdict ret_step(ret_walk *w, uint64_t ts)
{
    w->seen++;
    if (w->versions && w->seen == w->versions && ts > w->H)
        w->H = ts;
    if (ts > w->H)
        return RET_KEEP;
    if (!w->has_floor) {
        w->has_floor = true;
        w->floor = ts;
        return RET_FLOOR;
    }
    w->cut++;
    return RET_CUT;
}

/* Where the walk puts the horizon: the floor if anything was cut, else 0. */
static uint64_t ret_horizon(const ret_walk *w) { return w->cut ? w->floor : 0; }

static bool policy_set(const tkv_policy *p) { return p->versions || p->age_us; }

tkv_policy mhist_policy(const mhist *h, const tkv_policy *dflt)
{
    return h && h->has_policy ? h->policy : *dflt;
}

uint64_t mhist_evaluate(const mhist *h, const tkv_policy *p, uint64_t now, uint64_t *removable)
{
    ret_walk w = ret_begin(p, now);
    for (size_t j = stored(h); policy_set(p) && j-- > 0;)
        if (mhist_visible(h, &h->v[j], now))
            ret_step(&w, h->v[j].ts);
    if (removable)
        *removable = w.cut;
    return ret_horizon(&w);
}

mretain mhist_retain(mhist *h, const tkv_policy *p, const tkv_policy *dflt, bool dry_run,
                     uint64_t now)
{
    bool clearing = !policy_set(p);
    mretain r;
    r.horizon = mhist_evaluate(h, clearing ? dflt : p, now, &r.removable);
    if (dry_run)
        return r;
    h->has_policy = !clearing;
    h->policy = clearing ? (tkv_policy){0, 0} : *p;
    if (r.horizon > h->horizon) {
        h->horizon = r.horizon;
        h->below = true; /* for the sweep, even if the policy goes again */
    }
    return r;
}

bool mhist_sweep_scope(const mhist *h, const tkv_policy *dflt)
{
    return policy_set(dflt) || h->has_policy || h->min_expiry || h->below;
}

uint64_t mhist_sweep(mhist *h, const tkv_policy *dflt, uint64_t now)
{
    tkv_policy p = mhist_policy(h, dflt);
    uint64_t deleted = 0, min_exp = 0;
    ret_walk w = ret_begin(&p, now);
    for (size_t j = h->n; j-- > 0;) {
        const mver *v = &h->v[j];
        /* Invisible versions go first and are not walked: the policy
         * counts what a reader could see. */
        bool gone = !mhist_visible(h, v, now) || ret_step(&w, v->ts) == RET_CUT;
        if (gone) {
            memmove(&h->v[j], &h->v[j + 1], (h->n - j - 1) * sizeof *h->v);
            h->n--;
            deleted++;
        } else if (v->expires && (!min_exp || v->expires < min_exp)) {
            min_exp = v->expires;
        }
    }
    if (ret_horizon(&w) > h->horizon)
        h->horizon = ret_horizon(&w);
    h->min_expiry = min_exp;
    h->below = false;
    return deleted;
}

/* ---- storage ------------------------------------------------------------- */

void mhist_copy(mhist *to, const mhist *from)
{
    mver *v = to->v;
    size_t cap = to->cap;
    *to = *from;
    to->v = v;
    to->cap = cap;
    reserve(to, from->n);
    if (from->n)
        memcpy(to->v, from->v, from->n * sizeof *from->v);
}

void mhist_free(mhist *h)
{
    free(h->v);
    *h = (mhist){0};
}

const uint8_t *mvals_keep(mvals *a, const uint8_t *val, uint32_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->p = xrealloc(a->p, a->cap * sizeof *a->p);
    }
    uint8_t *p = xrealloc(NULL, len);
    if (len)
        memcpy(p, val, len);
    a->p[a->n++] = p;
    return p;
}

void mvals_free(mvals *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->p[i]);
    free(a->p);
    *a = (mvals){0};
}
