/*
 * hist.h - a log-bucketed latency histogram, for tkv-bench's reports and
 * tkvd's per-command latencies in STATS.
 *
 * Values (any unit: tkv-bench counts nanoseconds, tkvd microseconds) are
 * counted in buckets in the manner of HdrHistogram: below 256 every value
 * has its own bucket; above, each power of two is split into 128 equal
 * sub-buckets. A bucket is therefore at most 1/128 of its lower bound
 * wide, and reporting its midpoint is within 0.4% of any value it holds
 * (better than two significant digits). The whole 64-bit range fits in a
 * fixed array, so recording is a few shifts and an increment: no
 * allocation, no branches on the value's magnitude beyond one compare.
 * The price is the array: about 58 KiB per histogram, of which only the
 * buckets ever hit are touched.
 */
#ifndef TKV_HIST_H
#define TKV_HIST_H

#include <stdint.h>

#define TKV_HIST_SUB_BITS 7 /* 128 sub-buckets per power of two */
#define TKV_HIST_SUB (1u << TKV_HIST_SUB_BITS)
#define TKV_HIST_BUCKETS ((63 - TKV_HIST_SUB_BITS) * TKV_HIST_SUB + 2 * TKV_HIST_SUB)

typedef struct tkv_hist {
    uint64_t count;    /* values recorded */
    uint64_t min, max; /* exact extremes; min is UINT64_MAX when empty */
    uint64_t buckets[TKV_HIST_BUCKETS];
} tkv_hist;

/* Embeddable: makes h empty. */
void tkv_hist_init(tkv_hist *h);

/* Counts one value. */
static inline void tkv_hist_record(tkv_hist *h, uint64_t v)
{
    unsigned idx;
    if (v < 2 * TKV_HIST_SUB) {
        idx = (unsigned)v;
    } else {
        /* The shift keeps the top TKV_HIST_SUB_BITS + 1 bits: a value in
         * [TKV_HIST_SUB, 2 * TKV_HIST_SUB) that names the sub-bucket. */
        unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - TKV_HIST_SUB_BITS;
        idx = shift * TKV_HIST_SUB + (unsigned)(v >> shift);
    }
    h->buckets[idx]++;
    h->count++;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

/* Adds every count of src to dst. */
void tkv_hist_merge(tkv_hist *dst, const tkv_hist *src);

/* The value at quantile q (0 < q <= 1): the midpoint of the bucket holding
 * the ceil(q * count)-th smallest value, clamped to [min, max]. 0 when
 * empty. */
uint64_t tkv_hist_quantile(const tkv_hist *h, double q);

/* Bucket idx's smallest value and its width (the inverse of the index
 * tkv_hist_record computes), for writers of other formats. */
void tkv_hist_bucket_bounds(unsigned idx, uint64_t *low, uint64_t *width);

/* The same for n quantiles at once, in one walk of the buckets: qs must be
 * ascending; out[i] is tkv_hist_quantile(h, qs[i]). */
void tkv_hist_quantiles(const tkv_hist *h, const double *qs, unsigned n, uint64_t *out);

#endif
