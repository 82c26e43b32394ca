/*
 * units.h - the human forms people type, shared by tkvd's flags and
 * tkvctl's arguments: sizes ("512mb"), durations ("1h30m"), points in time
 * ("now", "-5m", "2026-01-31T12:00:00Z") and plain numbers, range-checked.
 */
#ifndef TKV_UNITS_H
#define TKV_UNITS_H

#include <stddef.h>
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
 * ("2026-01-31", "2026-01-31T12:00:00Z", "...T12:00:00.25+02:00"; no zone
 * means UTC) that must exist (no 2026-02-31, no 24:00, no leap second); a
 * number of seconds, milliseconds or microseconds since the epoch with its
 * unit ("1700000000s", "1700000000000ms", "5us"); or a bare number of
 * microseconds. now_us is the current time. Returns 0; -1 if malformed or
 * out of range; TKV_TIME_AMBIGUOUS for a bare number of 10 or 13 digits,
 * the length of epoch seconds or milliseconds of dates in 2001-2286, which
 * is refused rather than taken as microseconds in January 1970. */
#define TKV_TIME_AMBIGUOUS (-2)
int tkv_parse_time(const char *s, uint64_t now_us, uint64_t *out);

/* Writes us (microseconds since the epoch) as ISO-8601 UTC with
 * microseconds, "2026-01-31T12:00:00.000000Z", into buf (cap >= 32 is
 * enough). Times past the year 9999 are written as the plain number.
 * Returns 1 if written as ISO-8601, 0 if as a number. */
#define TKV_TIME_TEXT_MAX 32
int tkv_format_time(uint64_t us, char *buf, size_t cap);

/* Parses an unsigned decimal integer in [min, max]. Returns 0 or -1. */
int tkv_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
