/*
 * hdr.h - tkv-bench --hdr-out: the latency histogram as a file that
 * HdrHistogram's plotters (and bench/plot-latency) read.
 */
#ifndef TKV_BENCH_HDR_H
#define TKV_BENCH_HDR_H

#include <stdio.h>

#include "hist.h"

/* Writes h to f in HdrHistogram's percentile distribution text format
 * (outputPercentileDistribution: "Value Percentile TotalCount
 * 1/(1-Percentile)" rows, 5 reporting ticks per half distance to 100%, then
 * the Mean/StdDeviation, Max/Total count and Buckets footer), values divided
 * by unit (1e6: nanoseconds shown as milliseconds), so that HdrHistogram's
 * plotters and bench/plot-latency read it. Returns 0, or -1 if writing
 * failed. */
int hist_write_hdr(const tkv_hist *h, FILE *f, double unit);

#endif
