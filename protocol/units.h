/*
 * units.h - the human forms people type, shared by tkvd's flags and
 * tkvctl's arguments: sizes ("512mb"), durations ("1h30m"), points in time
 * ("now", "-5m", "2026-01-31T12:00:00Z") and plain numbers, range-checked.
 */
#ifndef TKV_UNITS_H
#define TKV_UNITS_H

#include <stdint.h>

/* Parses a byte size: digits with an optional unit b, k/kb, m/mb, g/gb,
 * t/tb (powers of 1024, any case). Returns 0, or -1 if malformed or above
 * max. */
int tkv_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Parses a duration into microseconds: one or more <number><unit> parts
 * ("90s", "1h30m"), units us, ms, s, m, h, d, w; a bare number is
 * microseconds. Returns 0, or -1 if malformed or it overflows. */
int tkv_parse_duration(const char *s, uint64_t *us);

/* Parses a point in time into microseconds since the Unix epoch: "now";
 * a signed duration relative to now ("-5m", "+1h"); an ISO-8601 date
 * ("2026-01-31", "2026-01-31T12:00:00Z", "...T12:00:00.25+02:00"); or a
 * bare number of microseconds. now_us is the current time. Returns 0 or -1. */
int tkv_parse_time(const char *s, uint64_t now_us, uint64_t *out);

/* Parses an unsigned decimal integer in [min, max]. Returns 0 or -1. */
int tkv_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
