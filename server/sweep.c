/*
 * sweep.c - removes what no read can see any more: expired versions, and
 * versions before a key's retention horizon; and moves horizons forward as
 * policies require (an age policy's horizon moves with the clock).
 *
 * The sweep walks keys in LevelDB order - every key when a server-wide
 * policy is set, otherwise only the keys in the sweep index ('s' records:
 * keys with a policy of their own or with expiring versions). Each call
 * examines at most `budget` records and remembers where it stopped, inside a
 * key if need be, so a huge key or a huge backlog is worked through in small
 * steps across loop iterations.
 *
 * A step runs only when nothing is staged or in flight, and commits its own
 * batch before it returns: no read ever sees half of a step, and a step
 * that fails to commit is rolled back alone (the pass then starts over).
 * A key written between two steps that stopped inside it is swept again
 * from its start, so what the sweep learnt about it is never stale; so is
 * one whose verdict the clock has changed since (a version it counted has
 * expired, an age horizon has passed versions it kept): every horizon the
 * sweep moves is where the policy puts it at the clock of the step that
 * moves it.
 *
 * Expired versions and versions below a horizon are already invisible:
 * deleting them changes no answer. Retention by count or age is enforced
 * here: when the sweep finds versions a policy excludes, it moves the
 * key's horizon (in the same batch as the first delete below it), and from
 * then on they are gone - so until the sweep reaches a key, versions its
 * policy excludes stay readable. RETAIN moves the horizon at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

struct sweep_state {
    tkv_buf resume;  /* where the pass goes on: the next index record or
                           key; empty: start a pass */
    tkv_buf inner;   /* with in_key: the next version of the current key */
    tkv_buf restart; /* where the current key starts (its index record,
                           or its metadata record's position) */
    bool in_key;     /* stopped inside the current key's versions */
    bool changed;    /* the current key was written since then */
    bool active;     /* a step is running: its own writes are no change */
    bool index_mode; /* this pass walks the sweep index */
    tkv_buf key;     /* the key being swept (raw bytes) */
    eng_key k;       /* its context, encoded into keybuf */
    uint8_t *keybuf; /* the sweep's own: its key outlives a call */
    tkv_kmeta meta;  /* its metadata as the sweep found it */
    bool had_meta;
    tkv_policy policy; /* in effect for it */
    uint64_t now;
    uint64_t H; /* the horizon being computed */
    uint64_t n; /* visible versions seen, newest first */
    bool floor; /* the version current at H was seen */
    uint64_t new_horizon;
    uint64_t min_expiry;
    uint64_t low;  /* the oldest version kept for being above H */
    uint64_t kept; /* versions left */
    uint64_t deleted;
    unsigned restarts; /* of this key in this pass, for a moved clock */
    bool skip;         /* leave the key alone (out of memory, or a clock
                          that keeps invalidating its walk) */
};

void eng_sweep_free(tkv_engine *e)
{
    if (!e->sweep)
        return;
    tkv_buf_deinit(&e->sweep->resume);
    tkv_buf_deinit(&e->sweep->inner);
    tkv_buf_deinit(&e->sweep->restart);
    tkv_buf_deinit(&e->sweep->key);
    free(e->sweep->keybuf);
    free(e->sweep);
    e->sweep = NULL;
}

static bool server_policy(const tkv_engine *e)
{
    return e->opts.retain.versions || e->opts.retain.age_us;
}

void eng_sweep_touched(tkv_engine *e, const tkv_kentry *E)
{
    sweep_state *s = e->sweep;
    if (s->in_key && !s->active && E->klen == s->key.len &&
        memcmp(tkv_kentry_key(E), s->key.data, E->klen) == 0)
        s->changed = true;
}

/* Starts sweeping a key: its metadata (memory's if resident, else the
 * record just read), its policy, the horizon's starting point. */
static uint64_t age_horizon(const tkv_policy *p, uint64_t now)
{
    return p->age_us && now > p->age_us ? now - p->age_us : 0;
}

static void begin_key(tkv_engine *e, sweep_state *s, const uint8_t *key, size_t klen,
                      const tkv_kmeta *disk_meta)
{
    if (klen != s->key.len || memcmp(key, s->key.data, klen) != 0)
        s->restarts = 0;
    tkv_buf_reset(&s->key);
    tkv_buf_append(&s->key, key, klen);
    tkv_kentry *E = tkv_keyindex_find(&e->ix, key, klen);
    /* A resident key needs room in the dirty list: the sweep may change its
     * page. (Nothing is uncommitted while the sweep runs.) */
    s->skip = E && eng_reserve_dirty(e) < 0;
    s->changed = false;
    const tkv_kmeta *m = E ? E->meta : disk_meta; /* a resident key's is current */
    s->had_meta = m != NULL;
    s->meta = m ? *m : (tkv_kmeta){.min_expiry = UINT64_MAX};
    s->policy = *eng_policy(e, s->had_meta ? &s->meta : NULL);
    s->now = eng_now(e);
    s->H = age_horizon(&s->policy, s->now);
    s->n = 0;
    s->low = UINT64_MAX;
    s->floor = false;
    s->new_horizon = s->meta.horizon;
    s->min_expiry = UINT64_MAX;
    s->kept = s->deleted = 0;
    s->k = eng_key_make(s->keybuf, s->key.data, s->key.len);
}

/* Stages new metadata for the key being swept, resident or not. */
static int save_meta(tkv_engine *e, sweep_state *s, const tkv_kmeta *m)
{
    bool was = eng_meta_swept(s->had_meta ? &s->meta : NULL);
    tkv_kentry *E = tkv_keyindex_find(&e->ix, s->key.data, s->key.len);
    if (E) {
        tkv_kmeta *em = eng_meta_get(e, E);
        if (!em)
            return -1;
        *em = *m;
        eng_meta_save(e, &s->k, E, was);
    } else {
        eng_meta_stage(e, &s->k, m, was);
    }
    s->meta = *m;
    s->had_meta = true;
    return 0;
}

/* Removes one version from LevelDB (staged) and from the page. */
static void delete_version(tkv_engine *e, sweep_state *s, const uint8_t *k, size_t klen,
                           uint64_t ts)
{
    eng_stage_del(e, k, klen);
    tkv_kentry *E = tkv_keyindex_find(&e->ix, s->key.data, s->key.len);
    long i = E ? tkv_vpage_find(E->page, ts) : -1;
    if (i >= 0) {
        eng_remove_slots(e, E, (uint32_t)i, (uint32_t)i + 1);
        eng_mark_dirty(e, E);
    }
    e->cnt.versions--;
    s->deleted++;
}

/* Decides one version's fate, newest first (see meta.c for the rule). */
static void visit(tkv_engine *e, sweep_state *s, const uint8_t *k, size_t klen, uint64_t ts,
                  const uint8_t *blob, uint32_t len)
{
    uint64_t x = blob_expires(blob, len);
    if (x && x <= s->now) {
        delete_version(e, s, k, klen, ts);
        e->st.swept_expired++;
        return;
    }
    bool keep, policy = false;
    if (ts < s->meta.horizon) {
        keep = false;
    } else {
        policy = true;
        s->n++;
        if (s->policy.versions && s->n == s->policy.versions && ts > s->H)
            s->H = ts;
        keep = ts > s->H || !s->floor;
        if (ts <= s->H && !s->floor) {
            s->floor = true;
            s->new_horizon = ts > s->new_horizon ? ts : s->new_horizon;
        }
    }
    if (!keep) {
        if (policy && s->new_horizon > s->meta.horizon) {
            /* The first version the policy excludes: the horizon moves
             * first, so that no read sees the key without it. */
            tkv_kmeta m = s->meta;
            m.horizon = s->new_horizon;
            if (save_meta(e, s, &m) < 0) {
                s->skip = true;
                return;
            }
        }
        delete_version(e, s, k, klen, ts);
        e->st.swept_retained++;
        return;
    }
    if (policy && ts > s->H)
        s->low = ts;
    s->kept++;
    if (x && x < s->min_expiry)
        s->min_expiry = x;
}

/* Records what the sweep learned about a finished key: its earliest
 * expiry, and that nothing below its horizon is left. A key whose every
 * version went keeps its policy and horizon (only DEL forgets them), so
 * that the sweep's timing does not change what later writes may do. */
static void end_key(tkv_engine *e, sweep_state *s)
{
    if (s->skip)
        return;
    tkv_kmeta m = s->meta;
    m.min_expiry = s->min_expiry;
    m.below = false;
    if (s->kept == 0 && s->deleted > 0) {
        e->cnt.keys--;
        tkv_kentry *E = tkv_keyindex_find(&e->ix, s->key.data, s->key.len);
        if (E)
            E->lo = 0; /* known to have no versions at all */
    }
    if (m.min_expiry != s->meta.min_expiry || m.below != s->meta.below)
        save_meta(e, s, &m);
}

/* Sweeps the key whose prefix is set from the iterator's position; stops
 * early when the budget runs out (then *done is false). */
static int sweep_versions(tkv_engine *e, sweep_state *s, tkv_store_iter *it, uint32_t *budget,
                          bool *done)
{
    uint64_t ts;
    *done = true;
    while (eng_iter_match(&s->k, it, &ts)) {
        if (*budget == 0) {
            size_t n;
            const uint8_t *k = tkv_store_iter_key(it, &n);
            tkv_buf_reset(&s->inner);
            tkv_buf_append(&s->inner, k, n);
            s->in_key = true;
            *done = false;
            return 0;
        }
        (*budget)--;
        if (!s->skip) {
            size_t kn, vn;
            const uint8_t *k = tkv_store_iter_key(it, &kn);
            const uint8_t *v = tkv_store_iter_value(it, &vn);
            visit(e, s, k, kn, ts, (const uint8_t *)v, (uint32_t)vn);
        }
        tkv_store_iter_next(it);
    }
    s->in_key = false;
    return eng_iter_failed(e, it);
}

/* Reads the metadata record under the iterator, if it is one for key. */
static bool take_meta(tkv_engine *e, tkv_store_iter *it, tkv_kmeta *m)
{
    size_t n, vn;
    const uint8_t *k = tkv_store_iter_key(it, &n);
    bool is_meta;
    long klen = tkv_kc_decode_any((const uint8_t *)k, n, e->kbuf, &is_meta);
    if (klen < 0 || !is_meta)
        return false;
    const uint8_t *v = tkv_store_iter_value(it, &vn);
    return eng_meta_decode((const uint8_t *)v, vn, m) == 0;
}

/* One key of a full pass, starting at the iterator (a metadata record or
 * the key's newest version). */
static int sweep_next_key(tkv_engine *e, sweep_state *s, tkv_store_iter *it, uint32_t *budget,
                          bool *done)
{
    size_t n;
    const uint8_t *k = tkv_store_iter_key(it, &n);
    bool is_meta;
    long klen = tkv_kc_decode_any((const uint8_t *)k, n, e->kbuf, &is_meta);
    if (klen < 0) { /* not ours: step over it */
        tkv_store_iter_next(it);
        *done = true;
        return 0;
    }
    tkv_kmeta dm;
    bool has_dm = is_meta && take_meta(e, it, &dm);
    uint8_t *key = malloc((size_t)klen + 1);
    if (!key)
        return -1;
    memcpy(key, e->kbuf, (size_t)klen);
    tkv_buf_reset(&s->restart);
    if (tkv_buf_append(&s->restart, e->kbuf, tkv_kc_meta(e->kbuf, key, (size_t)klen)) < 0) {
        free(key);
        return -1;
    }
    begin_key(e, s, key, (size_t)klen, has_dm ? &dm : NULL);
    free(key);
    if (is_meta)
        tkv_store_iter_next(it);
    (*budget)--;
    int rc = sweep_versions(e, s, it, budget, done);
    if (rc == 0 && *done)
        end_key(e, s);
    return rc;
}

/* Positions the resume point just after `k`: the smallest greater key. */
static void resume_after(sweep_state *s, const void *k, size_t n)
{
    static const uint8_t zero = 0;
    tkv_buf_reset(&s->resume);
    tkv_buf_append(&s->resume, k, n);
    tkv_buf_append(&s->resume, &zero, 1);
}

/* One key of an index pass: the index record under the iterator names it. */
static int sweep_indexed_key(tkv_engine *e, sweep_state *s, tkv_store_iter *it, uint32_t *budget,
                             bool *done)
{
    size_t n;
    const uint8_t *rec = tkv_store_iter_key(it, &n);
    /* The record is the key's version prefix with 's' for 'v'. */
    uint8_t *enc = malloc(n + 8);
    if (!enc)
        return -1;
    enc[0] = TKV_KC_VERSION;
    memcpy(enc + 1, rec + 1, n - 1);
    memset(enc + n, 0, 8);
    tkv_buf_reset(&s->restart);
    if (tkv_buf_append(&s->restart, rec, n) < 0) {
        free(enc);
        return -1;
    }
    resume_after(s, rec, n);
    bool is_meta;
    long klen = tkv_kc_decode_any(enc, n + 8, e->kbuf, &is_meta);
    free(enc);
    (*budget)--;
    *done = true;
    if (klen < 0)
        return 0;
    uint8_t *key = malloc((size_t)klen + 1);
    if (!key)
        return -1;
    memcpy(key, e->kbuf, (size_t)klen);
    size_t mlen = tkv_kc_meta(e->kbuf, key, (size_t)klen);
    tkv_store_iter_seek(it, (const char *)e->kbuf, mlen);
    tkv_kmeta dm;
    bool has_dm = tkv_store_iter_valid(it) && take_meta(e, it, &dm);
    begin_key(e, s, key, (size_t)klen, has_dm ? &dm : NULL);
    free(key);
    if (has_dm)
        tkv_store_iter_next(it);
    int rc = sweep_versions(e, s, it, budget, done);
    if (rc == 0 && *done)
        end_key(e, s);
    return rc;
}

/* Before continuing a key at a later clock: whether what the walk decided
 * so far is what it would decide now. Once the key's new horizon is staged
 * (or known not to move) the rest is deletes below it, right at any clock.
 * Until then the clock matters twice: a version the walk counted as visible
 * may have expired since (the policy's n-th version is then an older one),
 * and an age policy's H may have passed versions kept for being above it.
 * If neither happened, the walk goes on with the new clock and H. */
static bool walk_still_holds(tkv_engine *e, sweep_state *s)
{
    uint64_t now = eng_now(e);
    if (now == s->now)
        return true;
    bool decided = s->floor && s->new_horizon == s->meta.horizon;
    if (!decided) {
        uint64_t H = age_horizon(&s->policy, now);
        if (s->min_expiry <= now || H >= s->low)
            return false;
        if (H > s->H)
            s->H = H;
    }
    s->now = now;
    return true;
}

/* Continues a key the previous call stopped inside. */
static int resume_key(tkv_engine *e, sweep_state *s, tkv_store_iter *it, uint32_t *budget,
                      bool *done)
{
    tkv_kentry *E = tkv_keyindex_find(&e->ix, s->key.data, s->key.len);
    if (E && eng_reserve_dirty(e) < 0)
        s->skip = true;
    tkv_store_iter_seek(it, (const char *)s->inner.data, s->inner.len);
    int rc = sweep_versions(e, s, it, budget, done);
    if (rc == 0 && *done)
        end_key(e, s);
    return rc;
}

static void start_pass(tkv_engine *e, sweep_state *s)
{
    s->index_mode = !server_policy(e);
    s->restarts = 0;
    tkv_buf_reset(&s->resume);
    uint8_t first = s->index_mode ? 's' : TKV_KC_VERSION;
    tkv_buf_append(&s->resume, &first, 1);
    s->in_key = false;
}

static bool end_pass(tkv_engine *e, sweep_state *s)
{
    tkv_buf_reset(&s->resume);
    s->in_key = false;
    e->st.sweeps++;
    return true;
}

static bool step(tkv_engine *e, sweep_state *s, uint32_t budget)
{
    tkv_store_iter *it = eng_iter(e);
    if (!it)
        return false;
    if (s->resume.len == 0)
        start_pass(e, s);
    if (s->in_key && !s->changed && !s->skip && !walk_still_holds(e, s)) {
        /* A walk invalidated again and again (a huge key under an age
         * policy, a clock that moves between every two steps) leaves the
         * key to the next pass rather than never finishing this one. */
        if (++s->restarts > 3)
            s->skip = true;
        else
            s->changed = true;
    }
    if (s->in_key && s->changed) {
        /* Written since the last step, or walked at a clock whose verdict
         * no longer holds: sweep the key again from its start. */
        tkv_buf_reset(&s->resume);
        if (tkv_buf_append(&s->resume, s->restart.data, s->restart.len) < 0)
            return false;
        s->in_key = s->changed = false;
    }
    while (budget > 0) {
        bool done = true;
        int rc;
        if (s->in_key) {
            rc = resume_key(e, s, it, &budget, &done);
            if (rc == 0 && done && !s->index_mode && tkv_store_iter_valid(it)) {
                size_t n;
                const uint8_t *k = tkv_store_iter_key(it, &n);
                tkv_buf_reset(&s->resume);
                tkv_buf_append(&s->resume, k, n);
            } else if (rc == 0 && done && !s->index_mode) {
                return end_pass(e, s);
            }
        } else {
            tkv_store_iter_seek(it, (const char *)s->resume.data, s->resume.len);
            if (!tkv_store_iter_valid(it))
                return eng_iter_failed(e, it) == 0 && end_pass(e, s);
            size_t n;
            const uint8_t *k = tkv_store_iter_key(it, &n);
            char want = s->index_mode ? 's' : TKV_KC_VERSION;
            if (n == 0 || k[0] != want)
                return end_pass(e, s);
            rc = s->index_mode ? sweep_indexed_key(e, s, it, &budget, &done)
                               : sweep_next_key(e, s, it, &budget, &done);
            if (rc == 0 && done && !s->index_mode) {
                if (!tkv_store_iter_valid(it))
                    return eng_iter_failed(e, it) == 0 && end_pass(e, s);
                k = tkv_store_iter_key(it, &n);
                tkv_buf_reset(&s->resume);
                tkv_buf_append(&s->resume, k, n);
            }
        }
        if (rc < 0)
            return false;
    }
    return false;
}

bool tkv_engine_sweep_needed(const tkv_engine *e)
{
    const sweep_state *s = e->sweep;
    return (s && (s->in_key || s->resume.len > 0)) || server_policy(e) || e->cnt.swept_keys > 0;
}

bool tkv_engine_sweep(tkv_engine *e, uint32_t budget)
{
    if (!tkv_engine_sweep_needed(e))
        return true;
    if (tkv_engine_pending(e) || eng_writable(e) < 0)
        return false;
    if (!e->sweep && !(e->sweep = calloc(1, sizeof *e->sweep)))
        return false;
    if (!e->sweep->keybuf && !(e->sweep->keybuf = malloc(tkv_kc_max(TKV_ENG_KEY_MAX))))
        return false;
    sweep_state *s = e->sweep;
    tkv_engine_stats before = e->st;
    s->active = true;
    bool done = step(e, s, budget);
    s->active = false;
    if (e->stage.ops == 0 || tkv_engine_commit(e) == 0)
        return done;
    /* Rolled back (the store failed): forget the step and start over. */
    e->st.swept_expired = before.swept_expired;
    e->st.swept_retained = before.swept_retained;
    e->st.sweeps = before.sweeps;
    tkv_buf_reset(&s->resume);
    s->in_key = s->changed = false;
    return false;
}
