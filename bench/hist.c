/*
 * hist.c - implements the latency histogram of hist.h: merging and
 * quantiles. Recording is inline in the header because it sits on the
 * per-reply path.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void hist_merge(bench_hist *dst, const bench_hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->max > dst->max)
        dst->max = src->max;
    if (src->min < dst->min)
        dst->min = src->min;
}

/* The inverse of the index computation in hist_record(): the smallest value
 * of bucket idx and the bucket's width. */
static void bucket_bounds(unsigned idx, uint64_t *low, uint64_t *width)
{
    if (idx < 2 * HIST_SUB) {
        *low = idx;
        *width = 1;
        return;
    }
    unsigned shift = idx / HIST_SUB - 1;
    uint64_t sub = idx % HIST_SUB + HIST_SUB;
    *low = sub << shift;
    *width = (uint64_t)1 << shift;
}

uint64_t hist_quantile(const bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    double want = ceil(q * (double)h->count);
    uint64_t rank = want < 1 ? 1 : (uint64_t)want;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen < rank)
            continue;
        uint64_t low, width;
        bucket_bounds(i, &low, &width);
        uint64_t mid = low + (width - 1) / 2;
        if (mid < h->min)
            mid = h->min;
        return mid > h->max ? h->max : mid;
    }
    return h->max;
}
