/*
 * hdr.c - implements hdr.h: a histogram written in HdrHistogram's
 * percentile distribution text format (tkv-bench --hdr-out).
 */
#include "hdr.h"

#include <math.h>

/* The value a row reports for bucket idx: the highest the bucket holds (as
 * HdrHistogram's highestEquivalentValue), within the recorded extremes. */
static uint64_t bucket_value(const tkv_hist *h, unsigned idx)
{
    uint64_t low, width;
    tkv_hist_bucket_bounds(idx, &low, &width);
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

int hist_write_hdr(const tkv_hist *h, FILE *f, double unit)
{
    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    double sum = 0, sumsq = 0;
    uint64_t cum = 0;
    double target = 0;
    for (unsigned i = 0; i < TKV_HIST_BUCKETS && h->count; i++) {
        if (!h->buckets[i])
            continue;
        uint64_t low, width;
        tkv_hist_bucket_bounds(i, &low, &width);
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
    fprintf(f, "#[Buckets = %12u, SubBuckets     = %12u]\n", TKV_HIST_BUCKETS / TKV_HIST_SUB,
            TKV_HIST_SUB);
    return ferror(f) ? -1 : 0;
}
