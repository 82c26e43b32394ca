/*
 * test_keyindex.c - the skiplist + hash key index against a sorted array of
 * keys, under random inserts, removals, lookups and ordered seeks.
 */
#include <criterion/criterion.h>
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

Test(keyindex, siphash_depends_on_key_and_input)
{
    uint64_t k1[2] = {1, 2}, k2[2] = {1, 3};
    cr_assert_neq(tkv_siphash(k1, "abc", 3), tkv_siphash(k2, "abc", 3));
    cr_assert_neq(tkv_siphash(k1, "abc", 3), tkv_siphash(k1, "abd", 3));
    cr_assert_eq(tkv_siphash(k1, "abcdefghij", 10), tkv_siphash(k1, "abcdefghij", 10));
}
