/*
 * test_vpage.c - the version page against a plain sorted array, under
 * random inserts, replacements, removals and compactions, with timestamps
 * spread so that every delta width is used (and changes), and blobs large
 * enough for 4-byte offsets.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "../common/rng.h"
#include "vpage.h"

#define MAXV 400
#define MAXB 600 /* longest blob: 400 of them need 4-byte offsets */

typedef struct model {
    uint64_t ts[MAXV];
    uint8_t val[MAXV][MAXB];
    uint32_t len[MAXV];
    uint32_t n;
} model;

static uint32_t model_lower(const model *m, uint64_t t)
{
    uint32_t i = 0;
    while (i < m->n && m->ts[i] < t)
        i++;
    return i;
}

static void model_put(model *m, uint64_t ts, const uint8_t *v, uint32_t len)
{
    uint32_t i = model_lower(m, ts);
    if (i == m->n || m->ts[i] != ts) {
        memmove(&m->ts[i + 1], &m->ts[i], (m->n - i) * sizeof m->ts[0]);
        memmove(&m->val[i + 1], &m->val[i], (m->n - i) * sizeof m->val[0]);
        memmove(&m->len[i + 1], &m->len[i], (m->n - i) * sizeof m->len[0]);
        m->n++;
    }
    m->ts[i] = ts;
    memcpy(m->val[i], v, len);
    m->len[i] = len;
}

static void model_remove(model *m, uint32_t a, uint32_t b)
{
    memmove(&m->ts[a], &m->ts[b], (m->n - b) * sizeof m->ts[0]);
    memmove(&m->val[a], &m->val[b], (m->n - b) * sizeof m->val[0]);
    memmove(&m->len[a], &m->len[b], (m->n - b) * sizeof m->len[0]);
    m->n -= b - a;
}

/* Timestamps from k in [0, 300): how far apart depends on the round's
 * scale, so a page needs 2-, 4- or 8-byte deltas, or moves between them. */
static uint64_t ts_of(int scale, uint64_t k)
{
    switch (scale) {
    case 0: return k;
    case 1: return 1700000000000000ull + k * 1000; /* microseconds, 0.3 s */
    case 2: return k * (UINT64_MAX / 299);         /* the whole range */
    default: return k < 150 ? k : 1ull << 40 | k;  /* narrow, then wide */
    }
}

static void check_layout(const tkv_vpage *p)
{
    if (!p)
        return;
    size_t used = sizeof *p + (size_t)p->count * tkv_vpage_slot_size(p);
    if (p->count)
        used +=
            (size_t)(tkv_vpage_blob(p, 0) + tkv_vpage_len(p, 0) - tkv_vpage_blob(p, p->count - 1));
    cr_assert_leq(used, p->end);
    cr_assert_leq(p->end, tkv_vpage_bytes(p));
    cr_assert_lt(p->tsw, 3);
    if (p->count)
        cr_assert_geq(tkv_vpage_ts(p, 0), p->base);
    /* Blobs are packed in timestamp order, oldest at the end. */
    for (uint32_t i = 0; i + 1 < p->count; i++)
        cr_assert_eq(tkv_vpage_blob(p, i + 1) + tkv_vpage_len(p, i + 1), tkv_vpage_blob(p, i));
    if (p->count)
        cr_assert_leq((size_t)(tkv_vpage_blob(p, 0) - (const uint8_t *)p) + tkv_vpage_len(p, 0),
                      p->end);
}

static void check(const tkv_vpage *p, const model *m, test_rng *r, int scale)
{
    cr_assert_eq(tkv_vpage_count(p), m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        cr_assert_eq(tkv_vpage_ts(p, i), m->ts[i]);
        cr_assert_eq(tkv_vpage_len(p, i), m->len[i]);
        cr_assert_eq(memcmp(tkv_vpage_blob(p, i), m->val[i], m->len[i]), 0);
    }
    for (int k = 0; k < 20; k++) {
        uint64_t t = ts_of(scale, test_rng_below(r, 300));
        t += test_rng_below(r, 3) - 1; /* just below, at, just above */
        long want = t == UINT64_MAX ? (long)m->n - 1 : (long)model_lower(m, t + 1) - 1;
        cr_assert_eq(tkv_vpage_floor(p, t), want, "floor(%llu)", (unsigned long long)t);
        uint32_t lo = model_lower(m, t);
        cr_assert_eq(tkv_vpage_lower(p, t), lo);
        long found = lo < m->n && m->ts[lo] == t ? (long)lo : -1;
        cr_assert_eq(tkv_vpage_find(p, t), found);
    }
    check_layout(p);
}

static model m;

Test(vpage, matches_a_sorted_array_model)
{
    test_rng r = {test_seed("vpage")};
    for (int round = 0; round < 80; round++) {
        int scale = round % 4;
        /* Every fifth round long blobs: pages past 64 KiB, 4-byte offsets. */
        uint32_t maxlen = round % 5 == 4 ? MAXB - 1 : 40;
        /* Rounds that mostly append, as the engine does, and rounds that
         * write anywhere. */
        bool appends = round % 2;
        m.n = 0;
        tkv_vpage *p = NULL;
        for (int op = 0; op < 2000; op++) {
            uint64_t k = test_rng_below(&r, 10);
            if (k < 6 && m.n < MAXV - 1) {
                uint64_t kt = test_rng_below(&r, 300);
                if (appends && m.n > 0 && test_rng_below(&r, 4) > 0) {
                    uint64_t top = ts_of(scale, 299);
                    kt = m.ts[m.n - 1] >= top ? 299 : kt;
                    while (kt < 299 && ts_of(scale, kt) <= m.ts[m.n - 1])
                        kt++;
                }
                uint64_t ts = ts_of(scale, kt);
                static uint8_t full[MAXB];
                uint32_t len = (uint32_t)test_rng_below(&r, maxlen + 1);
                for (uint32_t i = 0; i < len + 1; i++)
                    full[i] = (uint8_t)test_rng_next(&r);
                bool replaced, exists = tkv_vpage_find(p, ts) >= 0;
                uint32_t cut = len ? (uint32_t)test_rng_below(&r, len + 1) : 0;
                /* The blob is given in two pieces split anywhere. */
                long d = tkv_vpage_put(&p, ts, full, cut, full + cut, len + 1 - cut, &replaced);
                cr_assert_neq(d, LONG_MIN);
                cr_assert_eq(replaced, exists);
                model_put(&m, ts, full, len + 1);
            } else if (k < 9 && m.n > 0) {
                uint32_t a = test_rng_below(&r, 2) ? 0 : (uint32_t)test_rng_below(&r, m.n);
                uint32_t b = a + 1 + (uint32_t)test_rng_below(&r, m.n - a < 5 ? m.n - a : 5);
                size_t before = tkv_vpage_bytes(p);
                long d = tkv_vpage_remove(&p, a, b);
                cr_assert_eq((long)tkv_vpage_bytes(p) - (long)before, d);
                model_remove(&m, a, b);
                if (m.n == 0)
                    cr_assert_null(p, "an empty page is freed");
            } else {
                tkv_vpage_compact(&p);
                if (p) {
                    /* Compacted: the narrowest widths, no room beyond the
                     * allocator's rounding. */
                    uint64_t span = m.ts[m.n - 1] - m.ts[0];
                    cr_assert_eq(p->tsw, span <= UINT16_MAX ? 0 : span <= UINT32_MAX ? 1 : 2);
                    cr_assert_leq(p->base, m.ts[0]);
                    size_t live = 0;
                    for (uint32_t i = 0; i < m.n; i++)
                        live += m.len[i];
                    size_t need = sizeof *p + m.n * tkv_vpage_slot_size(p) + live;
                    cr_assert_eq(p->ow, need > UINT16_MAX);
                    cr_assert_lt(tkv_vpage_bytes(p), need + 32);
                }
            }
            check(p, &m, &r, scale);
        }
        tkv_vpage_free(p);
    }
}

Test(vpage, appends_in_time_order_do_not_rebuild_every_time)
{
    tkv_vpage *p = NULL;
    int rebuilds = 0;
    for (uint64_t ts = 1; ts <= 10000; ts++) {
        const tkv_vpage *before = p;
        bool replaced;
        uint8_t v[33] = {0};
        cr_assert_neq(tkv_vpage_put(&p, ts, v, 33, NULL, 0, &replaced), LONG_MIN);
        rebuilds += p != before;
    }
    /* A small page is rebuilt to fit on every append (about 27 under
     * 1 KiB); past that an eighth of headroom: about 40 more to 10000. */
    cr_assert_lt(rebuilds, 80, "%d rebuilds for 10000 appends", rebuilds);
    cr_assert_eq(p->count, 10000);
    tkv_vpage_free(p);
}

Test(vpage, a_few_versions_cost_their_bytes_and_a_slot_of_four)
{
    /* The shape of bench/compare-redis's preload: 10 versions of 33-byte
     * blobs, 1000 apart. Header, 4 bytes of slot each, the blobs, and
     * nothing else but the allocator's rounding. */
    tkv_vpage *p = NULL;
    bool replaced;
    uint8_t v[33] = {0};
    for (uint64_t ts = 1000; ts <= 10000; ts += 1000)
        cr_assert_neq(tkv_vpage_put(&p, ts, v, 33, NULL, 0, &replaced), LONG_MIN);
    cr_assert_eq(tkv_vpage_slot_size(p), 4);
    cr_assert_lt(tkv_vpage_bytes(p), sizeof *p + 10 * (4 + 33) + 16);
    tkv_vpage_free(p);
    /* Microsecond timestamps a second apart: 4-byte deltas. */
    p = NULL;
    for (uint64_t ts = 1; ts <= 10; ts++)
        cr_assert_neq(
            tkv_vpage_put(&p, 1700000000000000ull + ts * 1000000, v, 33, NULL, 0, &replaced),
            LONG_MIN);
    cr_assert_eq(tkv_vpage_slot_size(p), 6);
    cr_assert_lt(tkv_vpage_bytes(p), sizeof *p + 10 * (6 + 33) + 16);
    tkv_vpage_free(p);
}

Test(vpage, removing_the_oldest_moves_no_blob)
{
    tkv_vpage *p = NULL;
    bool replaced;
    uint8_t v[40];
    for (uint64_t ts = 1; ts <= 100; ts++) {
        memset(v, (int)ts, sizeof v);
        cr_assert_neq(tkv_vpage_put(&p, ts, v, sizeof v, NULL, 0, &replaced), LONG_MIN);
    }
    const uint8_t *newest = tkv_vpage_blob(p, 99);
    const tkv_vpage *kept = p;
    cr_assert_eq(tkv_vpage_remove(&p, 0, 10), 0);
    cr_assert_eq(p, kept);
    cr_assert_eq(tkv_vpage_blob(p, 89), newest);
    cr_assert_eq(tkv_vpage_ts(p, 0), 11);
    cr_assert_eq(tkv_vpage_blob(p, 0)[39], 11);
    /* Past half of the page idle, it is compacted. */
    tkv_vpage_remove(&p, 0, 60);
    cr_assert_eq(tkv_vpage_count(p), 30);
    cr_assert_lt(tkv_vpage_bytes(p), sizeof *p + 30 * (4 + 40) + 16);
    cr_assert_eq(tkv_vpage_blob(p, 29)[0], 100);
    tkv_vpage_free(p);
}

Test(vpage, a_reserved_page_takes_its_bulk_load_without_a_rebuild)
{
    /* As a fill or an extend builds a page: reserve for the versions' count,
     * bytes and timestamps, then put them oldest first. */
    tkv_vpage *p = NULL;
    bool replaced;
    uint8_t v[40];
    size_t bytes = 0;
    for (uint32_t i = 0; i < 5000; i++)
        bytes += 1 + i % 40;
    uint64_t t0 = 1700000000000000ull;
    long d = tkv_vpage_reserve(&p, 5000, bytes, t0, t0 + 4999 * 1000);
    cr_assert_neq(d, LONG_MIN);
    cr_assert_eq((long)tkv_vpage_bytes(p), d);
    cr_assert_eq(tkv_vpage_reserve(&p, 5000, bytes, t0, t0 + 4999 * 1000), 0,
                 "already room: nothing to do");
    const tkv_vpage *kept = p;
    for (uint32_t i = 0; i < 5000; i++) {
        memset(v, (int)i, sizeof v);
        cr_assert_neq(tkv_vpage_put(&p, t0 + i * 1000, v, 1 + i % 40, NULL, 0, &replaced),
                      LONG_MIN);
        cr_assert_eq(p, kept, "put %u rebuilt a reserved page", i);
    }
    cr_assert_eq(p->count, 5000);
    cr_assert_eq(tkv_vpage_slot_size(p), 8, "4-byte deltas, 4-byte offsets");
    /* A reservation around what is there: 10 more below and above. */
    cr_assert_neq(tkv_vpage_reserve(&p, 20, 400, t0 - 10, t0 + 6000 * 1000), LONG_MIN);
    kept = p;
    for (uint32_t i = 0; i < 10; i++) {
        memset(v, 0xA0 + (int)i, sizeof v);
        cr_assert_neq(tkv_vpage_put(&p, t0 - 10 + i, v, 20, NULL, 0, &replaced), LONG_MIN);
        cr_assert_neq(tkv_vpage_put(&p, t0 + 5500 * 1000 + i, v, 20, NULL, 0, &replaced), LONG_MIN);
        cr_assert_eq(p, kept, "put %u rebuilt a reserved page", i);
    }
    /* Everything reads back. */
    for (uint32_t i = 0; i < 5000; i++) {
        long k = tkv_vpage_find(p, t0 + i * 1000);
        cr_assert_eq(k, 10 + i);
        cr_assert_eq(tkv_vpage_len(p, (uint32_t)k), 1 + i % 40);
        cr_assert_eq(tkv_vpage_blob(p, (uint32_t)k)[0], (uint8_t)i);
    }
    for (uint32_t i = 0; i < 10; i++) {
        cr_assert_eq(tkv_vpage_find(p, t0 - 10 + i), i);
        cr_assert_eq(tkv_vpage_blob(p, i)[19], 0xA0 + i);
        cr_assert_eq(tkv_vpage_find(p, t0 + 5500 * 1000 + i), 5010 + i);
    }
    tkv_vpage_free(p);
}
