/*
 * hist.c - implements the latency histogram of hist.h: merging and
 * quantiles. Recording is inline in the header because it sits on the
 * per-reply path.
 */
#include "hist.h"

#include <string.h>

void tkv_hist_init(tkv_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void tkv_hist_merge(tkv_hist *dst, const tkv_hist *src)
{
    for (unsigned i = 0; i < TKV_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->max > dst->max)
        dst->max = src->max;
    if (src->min < dst->min)
        dst->min = src->min;
}

/* The inverse of the index computation in tkv_hist_record(): the smallest
 * value of bucket idx and the bucket's width. */
void tkv_hist_bucket_bounds(unsigned idx, uint64_t *low, uint64_t *width)
{
    if (idx < 2 * TKV_HIST_SUB) {
        *low = idx;
        *width = 1;
        return;
    }
    unsigned shift = idx / TKV_HIST_SUB - 1;
    uint64_t sub = idx % TKV_HIST_SUB + TKV_HIST_SUB;
    *low = sub << shift;
    *width = (uint64_t)1 << shift;
}

/* ceil(q * count) within [1, count], without libm. */
static uint64_t rank_of(const tkv_hist *h, double q)
{
    double want = q * (double)h->count;
    uint64_t rank = want < 1 ? 1 : (uint64_t)want;
    if ((double)rank < want)
        rank++;
    return rank > h->count ? h->count : rank;
}

static uint64_t bucket_value(const tkv_hist *h, unsigned idx)
{
    uint64_t low, width;
    tkv_hist_bucket_bounds(idx, &low, &width);
    uint64_t mid = low + (width - 1) / 2;
    if (mid < h->min)
        mid = h->min;
    return mid > h->max ? h->max : mid;
}

void tkv_hist_quantiles(const tkv_hist *h, const double *qs, unsigned n, uint64_t *out)
{
    unsigned k = 0;
    if (h->count == 0) {
        for (; k < n; k++)
            out[k] = 0;
        return;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < TKV_HIST_BUCKETS && k < n; i++) {
        seen += h->buckets[i];
        while (k < n && seen >= rank_of(h, qs[k]))
            out[k++] = bucket_value(h, i);
    }
    for (; k < n; k++)
        out[k] = h->max;
}

uint64_t tkv_hist_quantile(const tkv_hist *h, double q)
{
    uint64_t v;
    tkv_hist_quantiles(h, &q, 1, &v);
    return v;
}
