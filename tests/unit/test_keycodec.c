/*
 * test_keycodec.c - the on-disk version encoding: bytewise order of
 * encodings must be (key ascending, ts descending), versions of one key must
 * share a prefix no other key's encoding starts with, and decoding must
 * invert encoding.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "keycodec.h"
#include "keyindex.h"

typedef struct item {
    uint8_t key[6];
    size_t klen;
    uint64_t ts;
    uint8_t enc[32];
    size_t elen;
} item;

static int by_encoding(const void *a, const void *b)
{
    const item *x = a, *y = b;
    return tkv_key_cmp(x->enc, x->elen, y->enc, y->elen);
}

static int by_model(const item *x, const item *y)
{
    int c = tkv_key_cmp(x->key, x->klen, y->key, y->klen);
    if (c)
        return c;
    return x->ts > y->ts ? -1 : x->ts < y->ts ? 1 : 0;
}

Test(keycodec, order_is_key_then_newest_first)
{
    test_rng r = {test_seed("keycodec")};
    static item items[5000];
    static const uint64_t edge[] = {0, 1, 255, 256, UINT64_MAX - 1, UINT64_MAX};
    for (int i = 0; i < 5000; i++) {
        item *it = &items[i];
        it->klen = 1 + test_rng_below(&r, 6);
        for (size_t k = 0; k < it->klen; k++)
            it->key[k] = (uint8_t) "\0\1a\xfe\xff"[test_rng_below(&r, 5)];
        it->ts = test_rng_below(&r, 3) ? edge[test_rng_below(&r, 6)] : test_rng_next(&r);
        it->elen = tkv_kc_encode(it->enc, it->key, it->klen, it->ts);
        cr_assert_leq(it->elen, tkv_kc_max(it->klen));
    }
    qsort(items, 5000, sizeof items[0], by_encoding);
    for (int i = 1; i < 5000; i++)
        cr_assert_leq(by_model(&items[i - 1], &items[i]), 0, "encodings %d and %d out of order",
                      i - 1, i);
}

Test(keycodec, prefix_matches_exactly_one_key)
{
    test_rng r = {test_seed("keycodec-prefix")};
    for (int i = 0; i < 20000; i++) {
        uint8_t a[5], b[5], pa[16], enc[32], out[8];
        size_t alen = 1 + test_rng_below(&r, 5), blen = 1 + test_rng_below(&r, 5);
        for (size_t k = 0; k < 5; k++) {
            a[k] = (uint8_t) "\0\1\xff"[test_rng_below(&r, 3)];
            b[k] = (uint8_t) "\0\1\xff"[test_rng_below(&r, 3)];
        }
        size_t plen = tkv_kc_prefix(pa, a, alen);
        uint64_t ts = test_rng_next(&r), got;
        size_t elen = tkv_kc_encode(enc, b, blen, ts);
        bool same = alen == blen && memcmp(a, b, alen) == 0;
        cr_assert_eq(tkv_kc_match(enc, elen, pa, plen, &got), same);
        if (same)
            cr_assert_eq(got, ts);
        long klen = tkv_kc_decode(enc, elen, out, &got);
        cr_assert_eq(klen, (long)blen);
        cr_assert_eq(memcmp(out, b, blen), 0);
        cr_assert_eq(got, ts);
    }
}

Test(keycodec, rejects_non_version_keys)
{
    uint8_t out[16];
    uint64_t ts;
    cr_assert_eq(tkv_kc_decode((const uint8_t *)"mcounters", 9, out, &ts), -1);
    const uint8_t bad[] = {'v', 'a', 0x00, 0x02, 1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_eq(tkv_kc_decode(bad, sizeof bad, out, &ts), -1);
}
