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

/* The value a row reports for bucket idx: the highest the bucket holds (as
 * HdrHistogram's highestEquivalentValue), within the recorded extremes. */
static uint64_t bucket_value(const bench_hist *h, unsigned idx)
{
    uint64_t low, width;
    bucket_bounds(idx, &low, &width);
    uint64_t v = low + (width - 1);
    if (v < h->min)
        v = h->min;
    return v > h->max ? h->max : v;
}

/* HdrHistogram's PercentileIterator step: ticks per half distance to 100%,
 * so rows get denser towards the tail (50%, 75%, 87.5%, ... each split in
 * 5 * 2 steps). */
static double next_percentile(double pct)
{
    double halvings = floor(log2(100.0 / (100.0 - pct))) + 1;
    return pct + 100.0 / (5.0 * pow(2.0, halvings));
}

int hist_write_hdr(const bench_hist *h, FILE *f, double unit)
{
    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    double sum = 0, sumsq = 0;
    uint64_t cum = 0;
    double target = 0;
    for (unsigned i = 0; i < HIST_BUCKETS && h->count; i++) {
        if (!h->buckets[i])
            continue;
        uint64_t low, width;
        bucket_bounds(i, &low, &width);
        double mid = (double)(low + (width - 1) / 2) / unit;
        sum += mid * (double)h->buckets[i];
        sumsq += mid * mid * (double)h->buckets[i];
        cum += h->buckets[i];
        double v = (double)bucket_value(h, i) / unit;
        if (cum == h->count) {
            fprintf(f, "%12.3f %2.12f %10llu\n", (double)h->max / unit, 1.0,
                    (unsigned long long)cum);
            break;
        }
        for (; 100.0 * (double)cum / (double)h->count >= target; target = next_percentile(target))
            fprintf(f, "%12.3f %2.12f %10llu %14.2f\n", v, target / 100, (unsigned long long)cum,
                    1 / (1 - target / 100));
    }
    double n = h->count ? (double)h->count : 1, mean = sum / n;
    double var = sumsq / n - mean * mean;
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", mean, var > 0 ? sqrt(var) : 0);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n",
            h->count ? (double)h->max / unit : 0, (unsigned long long)h->count);
    fprintf(f, "#[Buckets = %12u, SubBuckets     = %12u]\n", HIST_BUCKETS / HIST_SUB, HIST_SUB);
    return ferror(f) ? -1 : 0;
}
