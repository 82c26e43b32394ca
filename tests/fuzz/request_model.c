/*
 * request_model.c - implements the store model of request_model.h with
 * plain arrays and linear search: inputs touch tens of keys and hundreds of
 * versions, and this has to be obviously right rather than fast.
 */
#include "request_model.h"

#include "../common/retention.h"

#include <stdlib.h>
#include <string.h>

static mkey *keys;
static size_t nkeys, keys_cap;

/* Every value ever stored during the input, freed together. */
static uint8_t **vals;
static size_t nvals, vals_cap;

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

mkey *model_find(const uint8_t *key, uint32_t klen, bool create)
{
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].klen == klen && (klen == 0 || memcmp(keys[i].key, key, klen) == 0))
            return &keys[i];
    if (!create)
        return NULL;
    if (nkeys == keys_cap) {
        keys_cap = keys_cap ? 2 * keys_cap : 64;
        keys = xrealloc(keys, keys_cap * sizeof *keys);
    }
    mkey *k = &keys[nkeys++];
    memset(k, 0, sizeof *k);
    k->key = xrealloc(NULL, klen);
    if (klen)
        memcpy(k->key, key, klen);
    k->klen = klen;
    return k;
}

size_t model_nkeys(void) { return nkeys; }
mkey *model_key(size_t i) { return &keys[i]; }

bool model_visible(const mkey *k, const mver *v, uint64_t now)
{
    return v->ts >= k->cur.horizon && (v->expires == 0 || v->expires > now);
}

size_t model_visible_list(const mkey *k, uint64_t now, const mver **out)
{
    size_t n = 0;
    for (size_t i = 0; k && i < k->cur.n; i++)
        if (model_visible(k, &k->cur.v[i], now))
            out[n++] = &k->cur.v[i];
    return n;
}

static const uint8_t *keep_value(const uint8_t *val, uint32_t len)
{
    if (nvals == vals_cap) {
        vals_cap = vals_cap ? 2 * vals_cap : 64;
        vals = xrealloc(vals, vals_cap * sizeof *vals);
    }
    uint8_t *p = xrealloc(NULL, len);
    if (len)
        memcpy(p, val, len);
    vals[nvals++] = p;
    return p;
}

static void reserve(kstate *s, size_t n)
{
    if (n <= s->cap)
        return;
    s->cap = n < 8 ? 8 : 2 * n;
    s->v = xrealloc(s->v, s->cap * sizeof *s->v);
}

void model_put(mkey *k, uint64_t ts, const uint8_t *val, uint32_t len, uint64_t expires)
{
    kstate *s = &k->cur;
    size_t i = 0;
    while (i < s->n && s->v[i].ts < ts)
        i++;
    if (i == s->n || s->v[i].ts != ts) {
        reserve(s, s->n + 1);
        memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
        s->n++;
    }
    s->v[i] = (mver){.ts = ts,
                     .val = val ? keep_value(val, len) : NULL,
                     .len = val ? len : 0,
                     .expires = expires};
    model_touch(k);
}

void model_touch(mkey *k) { k->dirty = k->stage_dirty = true; }

void model_del(mkey *k, uint64_t removed)
{
    if (removed)
        model_touch(k);
    k->cur.n = 0;
    k->cur.horizon = 0;
    k->cur.has_policy = false;
    k->cur.policy = (tkv_policy){0, 0};
    k->cur.unsure = false;
}

static void copy_state(kstate *to, const kstate *from)
{
    reserve(to, from->n);
    if (from->n)
        memcpy(to->v, from->v, from->n * sizeof *from->v);
    to->n = from->n;
    to->horizon = from->horizon;
    to->policy = from->policy;
    to->has_policy = from->has_policy;
    to->unsure = from->unsure;
}

void model_commit_start(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        copy_state(&keys[i].fl, &keys[i].cur);
        keys[i].stage_dirty = false;
    }
}

void model_commit_done(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        copy_state(&keys[i].com, &keys[i].fl);
        keys[i].dirty = keys[i].stage_dirty;
    }
}

void model_rollback(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        copy_state(&keys[i].cur, &keys[i].com);
        copy_state(&keys[i].fl, &keys[i].com);
        keys[i].dirty = keys[i].stage_dirty = false;
    }
}

static bool limbo;

void model_limbo(void)
{
    for (size_t i = 0; i < nkeys; i++)
        copy_state(&keys[i].lim, &keys[i].fl);
    limbo = true;
    model_rollback();
}

bool model_in_limbo(void) { return limbo; }

void model_resurrect(void)
{
    if (!limbo)
        return;
    /* Keys created since hold nothing in the flight: their lim is empty. */
    for (size_t i = 0; i < nkeys; i++) {
        copy_state(&keys[i].com, &keys[i].lim);
        copy_state(&keys[i].fl, &keys[i].lim);
        copy_state(&keys[i].cur, &keys[i].lim);
        keys[i].dirty = keys[i].stage_dirty = false;
    }
    limbo = false;
}

uint64_t model_policy_horizon(const mkey *k, const tkv_policy *p, uint64_t now)
{
    ret_walk w = ret_begin(p->versions, p->age_us, now);
    for (size_t j = k->cur.n; j-- > 0 && !w.cut;)
        if (model_visible(k, &k->cur.v[j], now))
            ret_step(&w, k->cur.v[j].ts);
    return ret_horizon(&w);
}

void model_free(void)
{
    limbo = false;
    for (size_t i = 0; i < nkeys; i++) {
        free(keys[i].cur.v);
        free(keys[i].fl.v);
        free(keys[i].com.v);
        free(keys[i].lim.v);
        free(keys[i].key);
    }
    free(keys);
    keys = NULL;
    nkeys = keys_cap = 0;
    for (size_t i = 0; i < nvals; i++)
        free(vals[i]);
    free(vals);
    vals = NULL;
    nvals = vals_cap = 0;
}
