/*
 * request_model.c - implements the store model of request_model.h: a plain
 * array of keys searched linearly (inputs touch tens of keys), each with
 * its snapshots of the shared key model (tests/common/model.h).
 */
#include "request_model.h"

#include <stdlib.h>
#include <string.h>

static mkey *keys;
static size_t nkeys, keys_cap;

/* Every value ever stored during the input, freed together. */
static mvals vals;

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

const mhist *model_now(const mkey *k) { return k ? &k->cur.h : NULL; }

void model_put(mkey *k, uint64_t ts, const uint8_t *val, uint32_t len, uint64_t expires)
{
    mhist_put(&k->cur.h, ts, val ? mvals_keep(&vals, val, len) : NULL, len, expires);
    model_touch(k);
}

void model_touch(mkey *k) { k->dirty = k->stage_dirty = true; }

void model_del(mkey *k, uint64_t removed)
{
    if (removed)
        model_touch(k);
    mhist_del(&k->cur.h);
    k->cur.unsure = false;
}

static void copy_state(kstate *to, const kstate *from)
{
    mhist_copy(&to->h, &from->h);
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
    return mhist_evaluate(&k->cur.h, p, now, NULL);
}

void model_free(void)
{
    limbo = false;
    for (size_t i = 0; i < nkeys; i++) {
        mhist_free(&keys[i].cur.h);
        mhist_free(&keys[i].fl.h);
        mhist_free(&keys[i].com.h);
        mhist_free(&keys[i].lim.h);
        free(keys[i].key);
    }
    free(keys);
    keys = NULL;
    nkeys = keys_cap = 0;
    mvals_free(&vals);
}
