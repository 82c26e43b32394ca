/*
 * test_keyindex.c - the skiplist + hash key index against a sorted array of
 * keys, under random inserts, removals, lookups and ordered seeks; and the
 * hash table (tagged 8-byte slots, hashes computed again when keys move)
 * through many doublings and removals.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <string.h>

#include "../common/rng.h"
#include "keyindex.h"
#include "siphash.h"

#define MAXK 3000

typedef struct mkey {
    uint8_t b[8];
    size_t n;
} mkey;

static int cmp_mkey(const void *a, const void *b)
{
    const mkey *x = a, *y = b;
    return tkv_key_cmp(x->b, x->n, y->b, y->n);
}

static mkey random_key(test_rng *r)
{
    /* Short keys over a tiny alphabet, with NULs: many prefixes, collisions. */
    mkey k;
    k.n = 1 + test_rng_below(r, 5);
    for (size_t i = 0; i < k.n; i++)
        k.b[i] = (uint8_t) "\0ab\xff"[test_rng_below(r, 4)];
    return k;
}

static long model_find(const mkey *keys, size_t n, const mkey *k)
{
    for (size_t i = 0; i < n; i++)
        if (cmp_mkey(&keys[i], k) == 0)
            return (long)i;
    return -1;
}

Test(keyindex, matches_a_sorted_model)
{
    test_rng r = {test_seed("keyindex")};
    tkv_keyindex ix;
    cr_assert_eq(tkv_keyindex_init(&ix), 0);
    static mkey keys[MAXK];
    size_t n = 0;
    for (int op = 0; op < 30000; op++) {
        mkey k = random_key(&r);
        long at = model_find(keys, n, &k);
        tkv_kentry *e = tkv_keyindex_find(&ix, k.b, k.n);
        cr_assert_eq(e != NULL, at >= 0, "find disagrees with the model");
        if (e) {
            cr_assert_eq(e->klen, k.n);
            cr_assert_eq(memcmp(tkv_kentry_key(e), k.b, k.n), 0);
        }
        uint64_t what = test_rng_below(&r, 3);
        if (what == 0 && !e && n < MAXK) {
            cr_assert_not_null(tkv_keyindex_insert(&ix, k.b, k.n));
            keys[n++] = k;
            qsort(keys, n, sizeof keys[0], cmp_mkey);
        } else if (what == 1 && e) {
            tkv_keyindex_remove(&ix, e);
            keys[at] = keys[--n];
            qsort(keys, n, sizeof keys[0], cmp_mkey);
        } else {
            /* seek: first key >= k */
            tkv_kentry *s = tkv_keyindex_seek(&ix, k.b, k.n);
            size_t i = 0;
            while (i < n && cmp_mkey(&keys[i], &k) < 0)
                i++;
            if (i == n) {
                cr_assert_null(s);
            } else {
                cr_assert_not_null(s);
                cr_assert_eq(tkv_key_cmp(tkv_kentry_key(s), s->klen, keys[i].b, keys[i].n), 0);
            }
        }
        cr_assert_eq(ix.count, n);
        if (op % 1000 == 0) {
            size_t i = 0;
            for (tkv_kentry *x = tkv_keyindex_first(&ix); x; x = tkv_keyindex_next(x), i++)
                cr_assert_eq(tkv_key_cmp(tkv_kentry_key(x), x->klen, keys[i].b, keys[i].n), 0);
            cr_assert_eq(i, n, "ordered walk saw %zu of %zu keys", i, n);
        }
    }
    tkv_keyindex_deinit(&ix);
}

/* What an entry carries, from its key number, to check nothing overwrites
 * another field (the entry packs some of them into bit-fields). */
static void fill_fields(tkv_kentry *e, uint64_t k)
{
    e->page = (tkv_vpage *)(uintptr_t)(k * 16 + 16);
    e->meta = (struct tkv_kmeta *)(uintptr_t)(k * 32 + 32);
    e->lo = k * 0x9E3779B97F4A7C15ULL;
    e->dirty_epoch = k * 7919 % (1ULL << 40);
    e->ref = k & 1;
}

static void check_fields(const tkv_kentry *e, uint64_t k)
{
    cr_assert_eq((uintptr_t)e->page, k * 16 + 16);
    cr_assert_eq((uintptr_t)e->meta, k * 32 + 32);
    cr_assert_eq(e->lo, k * 0x9E3779B97F4A7C15ULL);
    cr_assert_eq(e->dirty_epoch, k * 7919 % (1ULL << 40));
    cr_assert_eq(e->ref, k & 1);
    cr_assert_eq(e->klen, 8 + k % 33);
}

/* Key k: 8..40 bytes, its number spelled at the front. */
static size_t key_of(uint64_t k, uint8_t *b)
{
    size_t n = 8 + k % 33;
    memset(b, 'x', n);
    for (size_t i = 0; i < 8; i++)
        b[i] = (uint8_t)(k >> (8 * i));
    return n;
}

Test(keyindex, many_keys_through_growth_and_removal)
{
    enum { N = 40000 };
    test_rng r = {test_seed("keyindex growth")};
    tkv_keyindex ix;
    cr_assert_eq(tkv_keyindex_init(&ix), 0);
    static bool in[N];
    memset(in, 0, sizeof in);
    uint8_t kb[40];
    for (int round = 0; round < 4; round++) {
        for (uint64_t k = 0; k < N; k++) {
            if (in[k] || test_rng_below(&r, 4) == 0)
                continue;
            size_t n = key_of(k, kb);
            tkv_kentry *e = tkv_keyindex_insert(&ix, kb, n);
            cr_assert_not_null(e);
            fill_fields(e, k);
            in[k] = true;
        }
        /* Remove about half: backward shifts everywhere in the table. */
        for (uint64_t k = 0; k < N; k++) {
            if (!in[k] || test_rng_below(&r, 2) == 0)
                continue;
            size_t n = key_of(k, kb);
            tkv_kentry *e = tkv_keyindex_find(&ix, kb, n);
            cr_assert_not_null(e);
            e->page = NULL;
            e->meta = NULL;
            tkv_keyindex_remove(&ix, e);
            in[k] = false;
        }
        size_t count = 0, bytes = malloc_usable_size(ix.head) + malloc_usable_size(ix.tab);
        for (uint64_t k = 0; k < N; k++) {
            size_t n = key_of(k, kb);
            tkv_kentry *e = tkv_keyindex_find(&ix, kb, n);
            cr_assert_eq(e != NULL, in[k], "key %llu", (unsigned long long)k);
            if (e) {
                check_fields(e, k);
                cr_assert_eq(memcmp(tkv_kentry_key(e), kb, n), 0);
                count++;
                bytes += malloc_usable_size(e);
            }
        }
        cr_assert_eq(ix.count, count);
        cr_assert_eq(ix.bytes, bytes, "the index accounts for exactly its allocations");
        /* The ordered walk sees each key once, in order. */
        size_t walked = 0;
        const tkv_kentry *prev = NULL;
        for (tkv_kentry *x = tkv_keyindex_first(&ix); x; x = tkv_keyindex_next(x), walked++) {
            if (prev)
                cr_assert_lt(
                    tkv_key_cmp(tkv_kentry_key(prev), prev->klen, tkv_kentry_key(x), x->klen), 0);
            prev = x;
        }
        cr_assert_eq(walked, count);
    }
    /* deinit frees pages and metadata: clear the fake pointers first. */
    for (tkv_kentry *x = tkv_keyindex_first(&ix); x; x = tkv_keyindex_next(x)) {
        x->page = NULL;
        x->meta = NULL;
    }
    tkv_keyindex_deinit(&ix);
}

Test(keyindex, an_entry_is_32_bytes_and_its_packed_fields_hold_their_ranges)
{
    cr_assert_leq(sizeof(tkv_kentry), 32);
    tkv_keyindex ix;
    cr_assert_eq(tkv_keyindex_init(&ix), 0);
    /* Enough keys for towers of several heights. */
    uint8_t kb[40];
    for (uint64_t k = 0; k < 2000; k++)
        cr_assert_not_null(tkv_keyindex_insert(&ix, kb, key_of(k, kb)));
    unsigned tallest = 0;
    for (tkv_kentry *x = tkv_keyindex_first(&ix); x; x = tkv_keyindex_next(x)) {
        x->dirty_epoch = (1ULL << 47) - 1;
        x->ref = 0;
        x->lo = UINT64_MAX;
        uint64_t k = 0;
        memcpy(&k, tkv_kentry_key(x), 8);
        cr_assert_eq(x->klen, 8 + k % 33);
        cr_assert_eq(x->dirty_epoch, (1ULL << 47) - 1);
        x->ref = 1;
        x->dirty_epoch = 0;
        cr_assert_eq(x->klen, 8 + k % 33);
        cr_assert_eq(x->ref, 1);
        cr_assert_eq(x->lo, UINT64_MAX);
        unsigned h = tkv_kentry_height(x);
        cr_assert(h >= 1 && h <= TKV_SKIPLIST_MAXLEVEL);
        tallest = h > tallest ? h : tallest;
    }
    cr_assert_geq(tallest, 3, "2000 keys at p = 1/4 reach level 3");
    tkv_keyindex_deinit(&ix);
}

Test(keyindex, siphash_depends_on_key_and_input)
{
    uint64_t k1[2] = {1, 2}, k2[2] = {1, 3};
    cr_assert_neq(tkv_siphash(k1, "abc", 3), tkv_siphash(k2, "abc", 3));
    cr_assert_neq(tkv_siphash(k1, "abc", 3), tkv_siphash(k1, "abd", 3));
    cr_assert_eq(tkv_siphash(k1, "abcdefghij", 10), tkv_siphash(k1, "abcdefghij", 10));
}
