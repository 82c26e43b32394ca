/*
 * model.h - a trivially correct model of tkv's versioned keys, for the
 * randomized engine test: each key's stored versions in a sorted array,
 * and every rule (visibility, miss reasons, validity intervals, retention,
 * the sweep) written the plainest way, by linear scans.
 */
#ifndef TKV_TEST_MODEL_H
#define TKV_TEST_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/retention.h"

#define M_MAXV 12

typedef struct mver {
    uint64_t ts;
    uint8_t v[M_MAXV];
    uint8_t len;
    bool tomb;
    uint64_t expires; /* 0: never */
} mver;

typedef struct mkey {
    mver *v; /* stored versions, ascending ts */
    size_t n, cap;
    uint64_t horizon;
    bool has_policy;
    uint32_t keep_versions;
    uint64_t keep_age;
    uint64_t min_expiry; /* as the engine keeps it: a lower bound */
    bool below;          /* RETAIN moved the horizon; the sweep has not been */
} mkey;

static inline void mkey_reset_meta(mkey *k)
{
    k->horizon = 0;
    k->has_policy = false;
    k->keep_versions = 0;
    k->keep_age = 0;
    k->min_expiry = UINT64_MAX;
    k->below = false;
}

static inline bool m_visible(const mkey *k, const mver *v, uint64_t now)
{
    return v->ts >= k->horizon && !(v->expires && v->expires <= now);
}

static inline long m_find(const mkey *k, uint64_t ts)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].ts == ts)
            return (long)i;
    return -1;
}

static inline void m_store(mkey *k, const mver *nv)
{
    long at = m_find(k, nv->ts);
    if (at < 0) {
        if (k->n == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 8;
            k->v = realloc(k->v, k->cap * sizeof *k->v);
        }
        size_t i = 0;
        while (i < k->n && k->v[i].ts < nv->ts)
            i++;
        memmove(&k->v[i + 1], &k->v[i], (k->n - i) * sizeof *k->v);
        k->n++;
        at = (long)i;
    }
    k->v[at] = *nv;
    if (nv->expires && nv->expires < k->min_expiry)
        k->min_expiry = nv->expires;
}

static inline void m_remove(mkey *k, size_t i)
{
    memmove(&k->v[i], &k->v[i + 1], (k->n - i - 1) * sizeof *k->v);
    k->n--;
}

/* Index of the largest visible version with ts <= T, or -1. */
static inline long m_floor(const mkey *k, uint64_t T, uint64_t now)
{
    long r = -1;
    for (size_t i = 0; i < k->n && k->v[i].ts <= T; i++)
        if (m_visible(k, &k->v[i], now))
            r = (long)i;
    return r;
}

/* Index of the smallest visible version with ts > T, or -1. */
static inline long m_after(const mkey *k, uint64_t T, uint64_t now)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].ts > T && m_visible(k, &k->v[i], now))
            return (long)i;
    return -1;
}

/* Where a policy puts the horizon (see server/meta.c); *removable gets the
 * visible versions it removes. */
static inline uint64_t m_evaluate(const mkey *k, uint32_t versions, uint64_t age, uint64_t now,
                                  uint64_t *removable)
{
    ret_walk w = ret_begin(versions, age, now);
    for (size_t j = k->n; j-- > 0;)
        if (m_visible(k, &k->v[j], now))
            ret_step(&w, k->v[j].ts);
    *removable = w.cut;
    return ret_horizon(&w);
}

/* One full sweep of a key with policy (versions, age); returns the number
 * of versions deleted. Mirrors server/sweep.c's rule: a key that loses
 * every version keeps its policy and horizon. */
static inline uint64_t m_sweep_key(mkey *k, uint32_t versions, uint64_t age, uint64_t now,
                                   uint64_t *keys_gone)
{
    uint64_t kept = 0, deleted = 0, min_exp = UINT64_MAX;
    ret_walk w = ret_begin(versions, age, now);
    for (size_t j = k->n; j-- > 0;) {
        mver *v = &k->v[j];
        if (v->expires && v->expires <= now) {
            m_remove(k, j);
            deleted++;
            continue;
        }
        if (v->ts < k->horizon || ret_step(&w, v->ts) == RET_CUT) {
            m_remove(k, j);
            deleted++;
            continue;
        }
        kept++;
        if (v->expires && v->expires < min_exp)
            min_exp = v->expires;
    }
    if (kept == 0 && deleted > 0)
        (*keys_gone)++;
    if (ret_horizon(&w) > k->horizon)
        k->horizon = ret_horizon(&w);
    k->min_expiry = min_exp;
    k->below = false;
    return deleted;
}

#endif
