/*
 * meta.c - per-key metadata (retention policy, horizon, earliest expiry),
 * RETAIN and POLICY.
 *
 * A key's horizon H means: every answer as of a time >= H is exact, and
 * nothing before H can be answered any more. Retention moves H forward:
 *
 *   H starts at now - age (if the policy has an age);
 *   walking the key's visible versions newest first, the versions-th one
 *   raises H to its own timestamp (if the policy counts versions);
 *   versions after H are kept, the first version at or before H - the one
 *   current at H - is kept too and becomes the new horizon, and every
 *   older version is removed.
 *
 * Moving H makes the removed versions invisible at once; the sweep deletes
 * them later. The metadata record (keycodec.h) is written in the same batch
 * as the change that needs it, and the sweep index ('s' records) lists the
 * keys that need the sweep's attention: those with a policy of their own,
 * with versions that expire, or with versions below a horizon RETAIN moved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

#define META_FORMAT 1
#define META_LEN 30
#define META_HAS_POLICY 0x01
#define META_BELOW 0x02
#define DRY_RUN_BOUND 1000000

int eng_meta_decode(const uint8_t *p, size_t n, tkv_kmeta *m)
{
    if (n < META_LEN || p[0] != META_FORMAT)
        return -1;
    m->has_policy = p[1] & META_HAS_POLICY;
    m->below = p[1] & META_BELOW;
    m->horizon = tkv_load_be64(p + 2);
    m->min_expiry = tkv_load_be64(p + 10);
    m->policy.versions = tkv_load_be32(p + 18);
    m->policy.age_us = tkv_load_be64(p + 22);
    return 0;
}

static void meta_encode(const tkv_kmeta *m, uint8_t out[META_LEN])
{
    out[0] = META_FORMAT;
    out[1] = (m->has_policy ? META_HAS_POLICY : 0) | (m->below ? META_BELOW : 0);
    tkv_store_be64(out + 2, m->horizon);
    tkv_store_be64(out + 10, m->min_expiry);
    tkv_store_be32(out + 18, m->policy.versions);
    tkv_store_be64(out + 22, m->policy.age_us);
}

static bool meta_empty(const tkv_kmeta *m)
{
    return !m->has_policy && m->horizon == 0 && m->min_expiry == UINT64_MAX;
}

bool eng_meta_swept(const tkv_kmeta *m)
{
    return m && (m->has_policy || m->min_expiry != UINT64_MAX || m->below);
}

/* k's sweep index record: 's' and the version prefix without its leading
 * 'v'. */
static size_t sweep_key(eng_key *k, uint8_t *out)
{
    size_t plen;
    const uint8_t *pfx = eng_key_prefix(k, &plen);
    out[0] = 's';
    memcpy(out + 1, pfx + 1, plen - 1);
    return plen;
}

tkv_kmeta *eng_meta_get(tkv_engine *e, tkv_kentry *E)
{
    if (E->meta)
        return E->meta;
    E->meta = malloc(sizeof *E->meta);
    if (!E->meta) {
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        return NULL;
    }
    *E->meta = (tkv_kmeta){.min_expiry = UINT64_MAX};
    return E->meta;
}

/* Called with the metadata as it was before the change (was_swept), so the
 * sweep index and its count stay exact. */
static void save_index(tkv_engine *e, eng_key *k, bool was_swept, bool is_swept)
{
    if (was_swept == is_swept)
        return;
    uint8_t *rec = e->kbuf;
    size_t n = sweep_key(k, rec);
    if (is_swept) {
        eng_stage_put(e, rec, n, "", 0);
        e->cnt.swept_keys++;
    } else {
        eng_stage_del(e, rec, n);
        e->cnt.swept_keys--;
    }
}

void eng_meta_stage(tkv_engine *e, eng_key *k, const tkv_kmeta *m, bool was_swept)
{
    uint8_t *rec = e->kbuf;
    size_t n = tkv_kc_meta(rec, k->key, k->klen);
    if (!m || meta_empty(m)) {
        eng_stage_del(e, rec, n);
    } else {
        uint8_t v[META_LEN];
        meta_encode(m, v);
        eng_stage_put(e, rec, n, v, sizeof v);
    }
    save_index(e, k, was_swept, eng_meta_swept(m));
}

int eng_meta_save(tkv_engine *e, eng_key *k, tkv_kentry *E, bool was_swept)
{
    eng_meta_stage(e, k, E->meta, was_swept);
    if (E->meta && meta_empty(E->meta)) {
        free(E->meta);
        E->meta = NULL;
    }
    eng_mark_dirty(e, E);
    return 0;
}

const tkv_policy *eng_policy(const tkv_engine *e, const tkv_kmeta *m)
{
    if (m && m->has_policy)
        return &m->policy;
    return &e->opts.retain;
}

/* Walks the visible versions newest first and finds where policy p puts
 * the horizon. */
static tkv_eng_rc evaluate(tkv_engine *e, eng_key *k, tkv_kentry *E, const tkv_policy *p,
                           tkv_retain_result *r)
{
    vis v = eng_vis(e, E);
    uint64_t now = eng_now(e);
    uint64_t H = p->age_us && now > p->age_us ? now - p->age_us : 0;
    bool floor = false;
    uint64_t n = 0, seen = 0;
    vcur c;
    vcur_init(&c, e, k, E, &v, false, 0, TKV_ENG_TS_MAX);
    r->complete = true;
    for (; c.valid; vcur_next(&c), seen++) {
        if (seen == DRY_RUN_BOUND) {
            r->complete = false;
            break;
        }
        n++;
        if (p->versions && n == p->versions && c.ts > H)
            H = c.ts;
        if (c.ts > H)
            continue;
        if (!floor) {
            floor = true;
            r->horizon = c.ts;
            continue;
        }
        r->removable++;
    }
    if (!r->removable)
        r->horizon = 0;
    return vcur_error(&c) < 0 ? eng_read_failed(e) : TKV_E_OK;
}

tkv_eng_rc tkv_engine_retain(tkv_engine *e, const uint8_t *key, size_t klen, const tkv_policy *p,
                             bool dry_run, tkv_retain_result *r, bool *dirty)
{
    memset(r, 0, sizeof *r);
    r->complete = true;
    *dirty = false;
    if (!dry_run && eng_writable(e) < 0)
        return TKV_E_STORAGE;
    if (!dry_run && eng_reserve_dirty(e) < 0)
        return TKV_E_NOMEM;
    tkv_eng_rc st;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_kentry *E = eng_lookup(e, &k, true, &st);
    if (st != TKV_E_OK)
        return st;
    bool clearing = !p->versions && !p->age_us;
    const tkv_policy *eff = clearing ? &e->opts.retain : p;
    if (eff->versions || eff->age_us)
        st = evaluate(e, &k, E, eff, r);
    if (st != TKV_E_OK || dry_run) {
        *dirty = eng_uncommitted(e, E);
        return st;
    }
    bool was_swept = eng_meta_swept(E->meta);
    tkv_kmeta *m = eng_meta_get(e, E);
    if (!m)
        return TKV_E_NOMEM;
    m->has_policy = !clearing;
    m->policy = clearing ? (tkv_policy){0, 0} : *p;
    if (r->horizon > m->horizon) {
        m->horizon = r->horizon;
        m->below = true; /* for the sweep, even if the policy goes again */
    }
    eng_meta_save(e, &k, E, was_swept);
    *dirty = true;
    return TKV_E_OK;
}

tkv_eng_rc tkv_engine_restore_meta(tkv_engine *e, const uint8_t *key, size_t klen,
                                   const tkv_policy *own, uint64_t horizon, bool *dirty)
{
    *dirty = false;
    tkv_eng_rc st;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_kentry *E = eng_write_lookup(e, &k, true, &st);
    if (st != TKV_E_OK)
        return st;
    bool was_swept = eng_meta_swept(E->meta);
    tkv_kmeta *m = eng_meta_get(e, E);
    if (!m)
        return TKV_E_NOMEM;
    if (own) {
        m->has_policy = true;
        m->policy = *own;
    }
    if (horizon > m->horizon) {
        m->horizon = horizon;
        m->below = true; /* for the sweep, as RETAIN does */
    }
    eng_meta_save(e, &k, E, was_swept);
    *dirty = true;
    return TKV_E_OK;
}

tkv_eng_rc tkv_engine_policy(tkv_engine *e, const uint8_t *key, size_t klen,
                             tkv_eng_policy_info *out)
{
    memset(out, 0, sizeof *out);
    tkv_eng_rc st;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_kentry *E = eng_lookup(e, &k, false, &st);
    if (st != TKV_E_OK)
        return st;
    const tkv_kmeta *m = E ? E->meta : NULL;
    out->policy = *eng_policy(e, m);
    out->own = m && m->has_policy;
    out->horizon = m ? m->horizon : 0;
    out->dirty = E && eng_uncommitted(e, E);
    return TKV_E_OK;
}
