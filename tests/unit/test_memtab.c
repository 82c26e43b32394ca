/*
 * test_memtab.c - the write buffer (server/memtab.c) against a trivially
 * correct model: every record ever added, (key, seq, put/delete, value),
 * in a flat array. For a reader at sequence number S the model's answer for
 * a key is its record with the largest seq <= S, found by a linear scan;
 * its ordered view is those answers sorted by key.
 *
 * Random records - versions of a few keys (chunk.h's encodings, so they go
 * to groups: appends, rewrites of a timestamp, writes into the past),
 * plain keys, a plain key equal to a version prefix, deletes, drops of a
 * key's versions (a version record is visible only if no drop of its
 * prefix the reader sees came after it) - are added
 * in batches; after each batch, readers at random earlier sequence numbers
 * check gets, full walks both ways and seeks (to records, to prefixes, to
 * arbitrary bytes) followed by random next/prev steps.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "chunk.h"
#include "keycodec.h"
#include "memtab.h"

#define MAXK 24
#define MAXV 16
#define MAXR 6000

typedef struct mrecd {
    uint8_t k[MAXK];
    size_t kn;
    uint64_t seq;
    bool del;
    bool drop; /* a drop of prefix k (no record of its own) */
    uint8_t v[MAXV];
    size_t vn;
} mrecd;

static mrecd recs[MAXR];
static size_t nrecs;

static int kcmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* The sequence number of the newest drop at or before seq of the prefix of
 * version key k; 0 if none (or k is not a version). */
static uint64_t drop_seq(const uint8_t *k, size_t kn, uint64_t seq)
{
    if (!tkv_chunk_is_version(k, kn))
        return 0;
    uint64_t d = 0;
    for (size_t i = 0; i < nrecs; i++)
        if (recs[i].drop && recs[i].seq <= seq && recs[i].kn == kn - 8 &&
            memcmp(recs[i].k, k, kn - 8) == 0 && recs[i].seq > d)
            d = recs[i].seq;
    return d;
}

/* The model's visible record per key at seq: indices into recs, sorted by
 * key. Returns the count. */
static size_t view(uint64_t seq, size_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < nrecs; i++) {
        if (recs[i].seq > seq || recs[i].drop || recs[i].seq < drop_seq(recs[i].k, recs[i].kn, seq))
            continue;
        size_t j;
        for (j = 0; j < n; j++)
            if (kcmp(recs[out[j]].k, recs[out[j]].kn, recs[i].k, recs[i].kn) == 0)
                break;
        if (j == n)
            out[n++] = i;
        else if (recs[i].seq > recs[out[j]].seq)
            out[j] = i;
    }
    for (size_t a = 1; a < n; a++) /* insertion sort by key */
        for (size_t b = a; b > 0 && kcmp(recs[out[b - 1]].k, recs[out[b - 1]].kn, recs[out[b]].k,
                                         recs[out[b]].kn) > 0;
             b--) {
            size_t t = out[b];
            out[b] = out[b - 1];
            out[b - 1] = t;
        }
    return n;
}

static const struct {
    const char *p;
    size_t n;
} ukeys[] = {{"", 0}, {"\0", 1}, {"a", 1}, {"a\0", 2}, {"ab", 2}, {"\xff", 1}};
#define NUK (sizeof ukeys / sizeof ukeys[0])

static size_t rand_key(test_rng *r, uint8_t *k)
{
    size_t u = test_rng_below(r, NUK);
    switch (test_rng_below(r, 8)) {
    case 0: /* a plain key */
        k[0] = 'm';
        k[1] = (uint8_t)('a' + test_rng_below(r, 4));
        return 2;
    case 1: /* metadata */ return tkv_kc_meta(k, (const uint8_t *)ukeys[u].p, ukeys[u].n);
    case 2: /* a version prefix alone, stored as a plain key */
        return tkv_kc_prefix(k, (const uint8_t *)ukeys[u].p, ukeys[u].n);
    default: {
        /* Timestamps from a small range, so rewrites and writes between
         * existing versions are common; sometimes the ends. */
        uint64_t ts = test_rng_below(r, 40);
        if (test_rng_below(r, 20) == 0)
            ts = test_rng_below(r, 2) ? 0 : UINT64_MAX;
        return tkv_kc_encode(k, (const uint8_t *)ukeys[u].p, ukeys[u].n, ts);
    }
    }
}

static void check_entry(tkv_memtab_iter *it, const mrecd *m)
{
    cr_assert(tkv_memtab_iter_valid(it));
    size_t kn, vn;
    const uint8_t *k = tkv_memtab_iter_key(it, &kn);
    cr_assert_eq(kcmp(k, kn, m->k, m->kn), 0, "key differs");
    cr_assert_eq(tkv_memtab_iter_is_del(it), m->del);
    const uint8_t *v = tkv_memtab_iter_value(it, &vn);
    cr_assert_eq(vn, m->vn);
    cr_assert(vn == 0 || memcmp(v, m->v, vn) == 0);
}

/* The index of the first model entry >= k. */
static size_t lower(const size_t *idx, size_t n, const uint8_t *k, size_t kn)
{
    size_t i = 0;
    while (i < n && kcmp(recs[idx[i]].k, recs[idx[i]].kn, k, kn) < 0)
        i++;
    return i;
}

static void check_reader(tkv_memtab *m, uint64_t seq, test_rng *r)
{
    static size_t idx[MAXR];
    size_t n = view(seq, idx);
    tkv_memtab_iter it;
    tkv_memtab_iter_init(&it, m, seq);
    /* Walks. */
    size_t i = 0;
    for (tkv_memtab_iter_seek_first(&it); tkv_memtab_iter_valid(&it); tkv_memtab_iter_next(&it))
        check_entry(&it, &recs[idx[i++]]);
    cr_assert_eq(i, n, "forward walk: %zu of %zu", i, n);
    for (tkv_memtab_iter_seek_last(&it); tkv_memtab_iter_valid(&it); tkv_memtab_iter_prev(&it))
        check_entry(&it, &recs[idx[--i]]);
    cr_assert_eq(i, 0, "backward walk stopped %zu short", i);
    /* Gets. */
    for (int g = 0; g < 20; g++) {
        uint8_t k[MAXK];
        size_t kn = rand_key(r, k);
        size_t j = lower(idx, n, k, kn);
        const uint8_t *v;
        size_t vn;
        int rc = tkv_memtab_get(m, seq, k, kn, &v, &vn);
        if (j < n && kcmp(recs[idx[j]].k, recs[idx[j]].kn, k, kn) == 0) {
            const mrecd *x = &recs[idx[j]];
            cr_assert_eq(rc, x->del ? 2 : 1);
            if (!x->del)
                cr_assert(vn == x->vn && (vn == 0 || memcmp(v, x->v, vn) == 0));
        } else
            cr_assert_eq(rc, drop_seq(k, kn, seq) ? 2 : 0, "get of a key with no record");
        /* The drops the reader sees, per prefix. */
        if (tkv_chunk_is_version(k, kn))
            cr_assert_eq(tkv_memtab_dropped(m, seq, k, kn - 8), drop_seq(k, kn, seq) != 0);
    }
    /* Seeks, then steps both ways. */
    for (int s = 0; s < 30; s++) {
        uint8_t k[MAXK + 2];
        size_t kn = rand_key(r, k);
        if (test_rng_below(r, 4) == 0 && kn > 1)
            kn -= 1 + test_rng_below(r, kn - 1); /* cut short: between records */
        else if (test_rng_below(r, 6) == 0)
            k[kn++] = (uint8_t)test_rng_next(r); /* one byte longer */
        tkv_memtab_iter_seek(&it, k, kn);
        size_t j = lower(idx, n, k, kn);
        for (int step = 0; step < 10; step++) {
            if (j == n) {
                cr_assert(!tkv_memtab_iter_valid(&it), "valid past the end");
                break;
            }
            check_entry(&it, &recs[idx[j]]);
            if (test_rng_below(r, 2)) {
                tkv_memtab_iter_next(&it);
                j++;
            } else {
                tkv_memtab_iter_prev(&it);
                if (j == 0) {
                    cr_assert(!tkv_memtab_iter_valid(&it), "valid before the start");
                    break;
                }
                j--;
            }
        }
    }
    tkv_memtab_iter_deinit(&it);
}

static size_t listed;

static void count_listed(void *ctx, const uint8_t *p, size_t plen)
{
    (void)ctx;
    (void)p;
    (void)plen;
    listed++;
}

Test(memtab, random_records_agree_with_the_model_at_every_sequence_number, .timeout = 120)
{
    test_rng r = {test_seed("memtab")};
    tkv_memtab *m = tkv_memtab_new();
    cr_assert_not_null(m);
    uint64_t seq = 0;
    nrecs = 0;
    while (nrecs + 40 < MAXR) {
        size_t batch = 1 + test_rng_below(&r, 40);
        for (size_t b = 0; b < batch; b++) {
            mrecd *x = &recs[nrecs++];
            x->kn = rand_key(&r, x->k);
            x->seq = ++seq;
            x->drop = tkv_chunk_is_version(x->k, x->kn) && test_rng_below(&r, 40) == 0;
            if (x->drop) {
                x->kn -= 8;
                x->del = false;
                x->vn = 0;
                cr_assert_eq(tkv_memtab_drop(m, x->seq, x->k, x->kn), 0);
                continue;
            }
            x->del = test_rng_below(&r, 5) == 0;
            x->vn = x->del ? 0 : test_rng_below(&r, MAXV + 1);
            for (size_t i = 0; i < x->vn; i++)
                x->v[i] = (uint8_t)test_rng_next(&r);
            if (test_rng_below(&r, 2) == 0) {
                /* The writer's hint first, for this key and others (known
                 * and new ones): it must change nothing the model sees. */
                uint8_t kb[TKV_MEMTAB_PREFETCH_MAX][MAXK];
                const uint8_t *kp[TKV_MEMTAB_PREFETCH_MAX];
                size_t kl[TKV_MEMTAB_PREFETCH_MAX];
                int nk = 1 + (int)test_rng_below(&r, TKV_MEMTAB_PREFETCH_MAX);
                kp[0] = x->k;
                kl[0] = x->kn;
                for (int i = 1; i < nk; i++) {
                    kl[i] = rand_key(&r, kb[i]);
                    kp[i] = kb[i];
                }
                tkv_memtab_prefetch(m, kp, kl, nk);
            }
            cr_assert_eq(tkv_memtab_add(m, x->seq, x->del, false, x->k, x->kn, x->v, x->vn), 0);
        }
        if (test_rng_below(&r, 4) == 0) {
            check_reader(m, seq, &r);
            check_reader(m, test_rng_below(&r, seq + 1), &r);
        }
    }
    check_reader(m, seq, &r);
    check_reader(m, seq / 2, &r);
    check_reader(m, 0, &r);
    cr_assert_eq(tkv_memtab_count(m), nrecs);
    /* Every dropped prefix is listed once for the flusher. */
    size_t ndrops = 0;
    for (size_t i = 0; i < nrecs; i++) {
        bool first = recs[i].drop;
        for (size_t j = 0; first && j < i; j++)
            first = !(recs[j].drop && recs[j].kn == recs[i].kn &&
                      memcmp(recs[j].k, recs[i].k, recs[i].kn) == 0);
        ndrops += first;
    }
    cr_assert_gt(ndrops, 3, "the run made too few drops to test them");
    listed = 0;
    tkv_memtab_each_dropped(m, NULL, count_listed);
    cr_assert_eq(listed, ndrops);
    tkv_memtab_unref(m);
}
