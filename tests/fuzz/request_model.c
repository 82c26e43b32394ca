/*
 * request_model.c - implements the store model of request_model.h with
 * plain arrays and linear search: inputs touch tens of keys and hundreds of
 * versions, and this has to be obviously right rather than fast.
 */
#include "request_model.h"

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

long model_floor(const mkey *k, uint64_t T)
{
    long i = -1;
    for (size_t j = 0; k && j < k->cur.n && k->cur.v[j].ts <= T; j++)
        i = (long)j;
    return i;
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

static void reserve(mvlist *l, size_t n)
{
    if (n <= l->cap)
        return;
    l->cap = n < 8 ? 8 : 2 * n;
    l->v = xrealloc(l->v, l->cap * sizeof *l->v);
}

void model_put(mkey *k, uint64_t ts, const uint8_t *val, uint32_t len)
{
    mvlist *l = &k->cur;
    size_t i = 0;
    while (i < l->n && l->v[i].ts < ts)
        i++;
    if (i == l->n || l->v[i].ts != ts) {
        reserve(l, l->n + 1);
        memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof *l->v);
        l->n++;
    }
    l->v[i] = (mver){.ts = ts, .val = keep_value(val, len), .len = len};
    k->dirty = true;
}

void model_clear(mkey *k)
{
    if (k->cur.n)
        k->dirty = true;
    k->cur.n = 0;
}

void model_totals(uint64_t *nk, uint64_t *nv)
{
    *nk = *nv = 0;
    for (size_t i = 0; i < nkeys; i++) {
        *nk += keys[i].cur.n > 0;
        *nv += keys[i].cur.n;
    }
}

static void copy_list(mvlist *to, const mvlist *from)
{
    reserve(to, from->n);
    if (from->n)
        memcpy(to->v, from->v, from->n * sizeof *from->v);
    to->n = from->n;
}

void model_commit(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].dirty)
            copy_list(&keys[i].com, &keys[i].cur);
        keys[i].dirty = false;
    }
}

void model_rollback(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].dirty)
            copy_list(&keys[i].cur, &keys[i].com);
        keys[i].dirty = false;
    }
}

void model_free(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        free(keys[i].cur.v);
        free(keys[i].com.v);
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
