/*
 * test_hist.c - the latency histogram (common/hist.h) against a trivially
 * correct model: every value kept, sorted, the quantile read off by rank.
 * The histogram may only differ by its bucket's precision.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../common/rng.h"
#include "hist.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The model's quantile: the ceil(q * n)-th smallest value. */
static uint64_t model_quantile(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n);
    if ((double)rank < q * (double)n)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[(rank > n ? n : rank) - 1];
}

/* A bucket holding v is at most v / 128 wide (values below 256 have one
 * each), and the histogram reports a point inside it. */
static void assert_close(uint64_t got, uint64_t want, double q)
{
    uint64_t slack = want / TKV_HIST_SUB;
    uint64_t diff = got > want ? got - want : want - got;
    cr_assert_leq(diff, slack, "q %g: histogram %llu, model %llu", q, (unsigned long long)got,
                  (unsigned long long)want);
}

/* Values spread over many powers of two, as latencies are. */
static uint64_t random_value(test_rng *r)
{
    unsigned bits = (unsigned)test_rng_below(r, 40);
    return test_rng_next(r) >> (63 - bits);
}

Test(hist, quantiles_match_sorted_model)
{
    test_rng r = {test_seed("hist")};
    static const double qs[] = {0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0};
    const unsigned nq = sizeof qs / sizeof qs[0];
    tkv_hist *h = malloc(sizeof *h);
    for (int round = 0; round < 20; round++) {
        size_t n = 1 + test_rng_below(&r, round < 10 ? 50 : 20000);
        uint64_t *v = malloc(n * sizeof *v);
        tkv_hist_init(h);
        for (size_t i = 0; i < n; i++) {
            v[i] = random_value(&r);
            tkv_hist_record(h, v[i]);
        }
        qsort(v, n, sizeof *v, cmp_u64);
        cr_assert_eq(h->count, n);
        cr_assert_eq(h->min, v[0]);
        cr_assert_eq(h->max, v[n - 1]);
        uint64_t all[sizeof qs / sizeof qs[0]];
        tkv_hist_quantiles(h, qs, nq, all);
        for (unsigned k = 0; k < nq; k++) {
            uint64_t want = model_quantile(v, n, qs[k]);
            assert_close(tkv_hist_quantile(h, qs[k]), want, qs[k]);
            cr_assert_eq(all[k], tkv_hist_quantile(h, qs[k]), "one walk and many agree");
            if (k > 0)
                cr_assert_geq(all[k], all[k - 1], "quantiles ascend");
        }
        free(v);
    }
    free(h);
}

Test(hist, small_values_are_exact)
{
    tkv_hist *h = malloc(sizeof *h);
    tkv_hist_init(h);
    for (uint64_t v = 0; v < 2 * TKV_HIST_SUB; v++)
        tkv_hist_record(h, v);
    for (uint64_t v = 1; v <= 2 * TKV_HIST_SUB; v++)
        cr_assert_eq(tkv_hist_quantile(h, (double)v / (2 * TKV_HIST_SUB)), v - 1);
    free(h);
}

Test(hist, empty_and_extremes)
{
    tkv_hist *h = malloc(sizeof *h);
    tkv_hist_init(h);
    cr_assert_eq(tkv_hist_quantile(h, 0.5), 0, "empty: 0");
    tkv_hist_record(h, UINT64_MAX);
    tkv_hist_record(h, 0);
    assert_close(tkv_hist_quantile(h, 1.0), UINT64_MAX, 1.0); /* the top bucket has no overflow */
    cr_assert_eq(tkv_hist_quantile(h, 0.5), 0);
    free(h);
}

Test(hist, merge_is_recording_both)
{
    test_rng r = {test_seed("hist_merge")};
    tkv_hist *a = malloc(sizeof *a), *b = malloc(sizeof *b), *both = malloc(sizeof *both);
    tkv_hist_init(a);
    tkv_hist_init(b);
    tkv_hist_init(both);
    for (int i = 0; i < 5000; i++) {
        uint64_t v = random_value(&r);
        tkv_hist_record(i % 3 ? a : b, v);
        tkv_hist_record(both, v);
    }
    tkv_hist_merge(a, b);
    cr_assert_eq(memcmp(a, both, sizeof *a), 0);
    free(a);
    free(b);
    free(both);
}
