/*
 * config.h - parsing of the human forms operators type: sizes ("512mb")
 * and plain numbers, with range checks and readable errors.
 */
#ifndef TKV_CONFIG_H
#define TKV_CONFIG_H

#include <stdint.h>

/* Parses a byte size: digits with an optional unit b, k/kb, m/mb, g/gb,
 * t/tb (powers of 1024, any case). Returns 0, or -1 if malformed or above
 * max. */
int tkv_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Parses a duration into microseconds: one or more <number><unit> parts
 * ("90s", "1h30m"), units us, ms, s, m, h, d, w; a bare number is
 * microseconds. Returns 0, or -1 if malformed or it overflows. */
int tkv_parse_duration(const char *s, uint64_t *us);

/* Parses an unsigned decimal integer in [min, max]. Returns 0 or -1. */
int tkv_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
