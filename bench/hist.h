/*
 * hist.h - a log-bucketed latency histogram for tkv-bench.
 *
 * Values (nanoseconds) are counted in buckets in the manner of
 * HdrHistogram: below 256 every value has its own bucket; above, each power
 * of two is split into 128 equal sub-buckets. A bucket is therefore at most
 * 1/128 of its lower bound wide, and reporting its midpoint is within 0.4%
 * of any value it holds. The whole 64-bit range fits in a fixed array, so
 * recording is a few shifts and an increment: no allocation, no branches on
 * the value's magnitude beyond one compare.
 */
#ifndef TKV_BENCH_HIST_H
#define TKV_BENCH_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_SUB_BITS 7 /* 128 sub-buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((63 - HIST_SUB_BITS) * HIST_SUB + 2 * HIST_SUB)

typedef struct bench_hist {
    uint64_t count;    /* values recorded */
    uint64_t min, max; /* exact extremes; min is UINT64_MAX when empty */
    uint64_t buckets[HIST_BUCKETS];
} bench_hist;

/* Embeddable: makes h empty. */
void hist_init(bench_hist *h);

/* Counts one value. */
static inline void hist_record(bench_hist *h, uint64_t v)
{
    unsigned idx;
    if (v < 2 * HIST_SUB) {
        idx = (unsigned)v;
    } else {
        /* The shift keeps the top HIST_SUB_BITS + 1 bits: a value in
         * [HIST_SUB, 2 * HIST_SUB) that names the sub-bucket. */
        unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
        idx = shift * HIST_SUB + (unsigned)(v >> shift);
    }
    h->buckets[idx]++;
    h->count++;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

/* Adds every count of src to dst. */
void hist_merge(bench_hist *dst, const bench_hist *src);

/* The value at quantile q (0 < q <= 1): the midpoint of the bucket holding
 * the ceil(q * count)-th smallest value, clamped to [min, max]. 0 when
 * empty. */
uint64_t hist_quantile(const bench_hist *h, double q);

/* Writes h to f in HdrHistogram's percentile distribution text format
 * (outputPercentileDistribution: "Value Percentile TotalCount
 * 1/(1-Percentile)" rows, 5 reporting ticks per half distance to 100%, then
 * the Mean/StdDeviation, Max/Total count and Buckets footer), values divided
 * by unit (1e6: nanoseconds shown as milliseconds), so that HdrHistogram's
 * plotters and bench/plot-latency read it. Returns 0, or -1 if writing
 * failed. */
int hist_write_hdr(const bench_hist *h, FILE *f, double unit);

#endif
