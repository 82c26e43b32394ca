/*
 * clock.h - the two clocks tkv reads.
 *
 * Real time (CLOCK_REALTIME) is what versions are stamped with and what
 * people read in logs; it can jump. Monotonic time (CLOCK_MONOTONIC) only
 * measures intervals - fsync cadence, benchmark latencies - and never
 * steps back. The engine takes its real-time clock as an injectable
 * function (tkv_engine_opts.clock) so tests can set the time; code that
 * stamps or compares versions reads the engine's clock, not these.
 */
#ifndef TKV_CLOCK_H
#define TKV_CLOCK_H

#include <stdint.h>

/* Microseconds since the Unix epoch. */
uint64_t tkv_clock_realtime_us(void);

/* Microseconds on the monotonic clock (arbitrary origin). */
uint64_t tkv_clock_mono_us(void);

/* Nanoseconds on the monotonic clock, for latencies below a microsecond. */
uint64_t tkv_clock_mono_ns(void);

#endif
