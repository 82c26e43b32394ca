/*
 * test_vpage.c - the slotted version page against a plain sorted array,
 * under random inserts, replacements and removals.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "../common/rng.h"
#include "vpage.h"

#define MAXV 400

typedef struct model {
    uint64_t ts[MAXV];
    uint8_t val[MAXV][48];
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

static void check(const tkv_vpage *p, const model *m, test_rng *r)
{
    cr_assert_eq(tkv_vpage_count(p), m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        cr_assert_eq(p->slot[i].ts, m->ts[i]);
        cr_assert_eq(p->slot[i].len, m->len[i]);
        cr_assert_eq(memcmp(tkv_vpage_blob(p, i), m->val[i], m->len[i]), 0);
    }
    for (int k = 0; k < 20; k++) {
        uint64_t t = test_rng_below(r, 300);
        long want = (long)model_lower(m, t + 1) - 1;
        cr_assert_eq(tkv_vpage_floor(p, t), want, "floor(%llu)", (unsigned long long)t);
        uint32_t lo = model_lower(m, t);
        cr_assert_eq(tkv_vpage_lower(p, t), lo);
        long found = lo < m->n && m->ts[lo] == t ? (long)lo : -1;
        cr_assert_eq(tkv_vpage_find(p, t), found);
    }
    if (p) {
        cr_assert_leq(p->blob_lo, p->cap);
        cr_assert_geq(p->blob_lo, sizeof *p + p->count * sizeof(tkv_vslot));
    }
}

Test(vpage, matches_a_sorted_array_model)
{
    test_rng r = {test_seed("vpage")};
    for (int round = 0; round < 50; round++) {
        model m = {.n = 0};
        tkv_vpage *p = NULL;
        for (int op = 0; op < 2000; op++) {
            uint64_t k = test_rng_below(&r, 10);
            if (k < 6 && m.n < MAXV - 1) {
                uint64_t ts = test_rng_below(&r, 300);
                uint8_t v[40];
                uint32_t len = (uint32_t)test_rng_below(&r, 41);
                for (uint32_t i = 0; i < len; i++)
                    v[i] = (uint8_t)test_rng_next(&r);
                uint8_t hdr = (uint8_t)test_rng_next(&r);
                bool replaced, exists = tkv_vpage_find(p, ts) >= 0;
                uint8_t full[41];
                uint32_t cut = len ? (uint32_t)test_rng_below(&r, len + 1) : 0;
                full[0] = hdr;
                memcpy(full + 1, v, len);
                /* The blob is given in two pieces split anywhere. */
                long d = tkv_vpage_put(&p, ts, full, cut, full + cut, len + 1 - cut, &replaced);
                cr_assert_neq(d, LONG_MIN);
                cr_assert_eq(replaced, exists);
                model_put(&m, ts, full, len + 1);
            } else if (k < 9 && m.n > 0) {
                uint32_t a = (uint32_t)test_rng_below(&r, m.n);
                uint32_t b = a + 1 + (uint32_t)test_rng_below(&r, m.n - a < 5 ? m.n - a : 5);
                tkv_vpage_remove(&p, a, b);
                model_remove(&m, a, b);
                if (m.n == 0)
                    cr_assert_null(p, "an empty page is freed");
            } else {
                tkv_vpage_compact(&p);
                if (p)
                    cr_assert_eq(p->dead, 0);
            }
            check(p, &m, &r);
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
    cr_assert_lt(rebuilds, 60, "%d rebuilds for 10000 appends", rebuilds);
    cr_assert_eq(p->count, 10000);
    tkv_vpage_free(p);
}

Test(vpage, a_reserved_page_takes_its_bulk_load_without_a_rebuild)
{
    tkv_vpage *p = NULL;
    bool replaced;
    uint8_t v[40];
    for (uint64_t ts = 100000; ts < 100010; ts++) {
        memset(v, (int)ts, sizeof v);
        cr_assert_neq(tkv_vpage_put(&p, ts, v, 20, NULL, 0, &replaced), LONG_MIN);
    }
    /* 5000 more, of 1..40 bytes each, below and above what is there. */
    size_t bytes = 0;
    for (uint32_t i = 0; i < 5000; i++)
        bytes += 1 + i % 40;
    long d = tkv_vpage_reserve(&p, 5000, bytes);
    cr_assert_neq(d, LONG_MIN);
    cr_assert_eq(tkv_vpage_reserve(&p, 5000, bytes), 0, "already room: nothing to do");
    const tkv_vpage *kept = p;
    for (uint32_t i = 0; i < 5000; i++) {
        uint64_t ts = i < 2500 ? i : 200000 + i;
        memset(v, (int)i, sizeof v);
        cr_assert_neq(tkv_vpage_put(&p, ts, v, 1 + i % 40, NULL, 0, &replaced), LONG_MIN);
        cr_assert_eq(p, kept, "put %u rebuilt a reserved page", i);
    }
    cr_assert_eq(p->count, 5010);
    /* Everything reads back: the old versions and the bulk ones. */
    for (uint64_t ts = 100000; ts < 100010; ts++) {
        long i = tkv_vpage_find(p, ts);
        cr_assert_geq(i, 0);
        cr_assert_eq(p->slot[i].len, 20);
        cr_assert_eq(tkv_vpage_blob(p, (uint32_t)i)[19], (uint8_t)ts);
    }
    for (uint32_t i = 0; i < 5000; i++) {
        long k = tkv_vpage_find(p, i < 2500 ? i : 200000 + i);
        cr_assert_geq(k, 0);
        cr_assert_eq(p->slot[k].len, 1 + i % 40);
        cr_assert_eq(tkv_vpage_blob(p, (uint32_t)k)[0], (uint8_t)i);
    }
    tkv_vpage_free(p);
}
