/*
 * test_units.c - the human forms of sizes, durations and times.
 */
#include <criterion/criterion.h>

#include "units.h"

Test(units, sizes)
{
    uint64_t v;
    cr_assert_eq(tkv_parse_size("512", UINT64_MAX, &v), 0);
    cr_assert_eq(v, 512);
    cr_assert_eq(tkv_parse_size("64mb", UINT64_MAX, &v), 0);
    cr_assert_eq(v, 64u << 20);
    cr_assert_eq(tkv_parse_size("1G", UINT64_MAX, &v), 0);
    cr_assert_eq(v, 1u << 30);
    cr_assert_eq(tkv_parse_size("2kb", 1024, &v), -1, "above the maximum");
    cr_assert_eq(tkv_parse_size("17179869184tb", UINT64_MAX, &v), -1, "overflow");
    cr_assert_eq(tkv_parse_size("12 mb", UINT64_MAX, &v), -1);
    cr_assert_eq(tkv_parse_size("-1", UINT64_MAX, &v), -1);
    cr_assert_eq(tkv_parse_size("mb", UINT64_MAX, &v), -1);
}

Test(units, durations)
{
    uint64_t v;
    cr_assert_eq(tkv_parse_duration("90s", &v), 0);
    cr_assert_eq(v, 90000000);
    cr_assert_eq(tkv_parse_duration("1h30m", &v), 0);
    cr_assert_eq(v, 5400000000ULL);
    cr_assert_eq(tkv_parse_duration("7d", &v), 0);
    cr_assert_eq(v, 604800000000ULL);
    cr_assert_eq(tkv_parse_duration("250ms", &v), 0);
    cr_assert_eq(v, 250000);
    cr_assert_eq(tkv_parse_duration("42", &v), 0, "a bare number is microseconds");
    cr_assert_eq(v, 42);
    cr_assert_eq(tkv_parse_duration("1x", &v), -1);
    cr_assert_eq(tkv_parse_duration("1h30", &v), -1, "only a lone number may lack a unit");
    cr_assert_eq(tkv_parse_duration("h", &v), -1);
    cr_assert_eq(tkv_parse_duration("99999999999999999w", &v), -1, "overflow");
}

Test(units, times)
{
    const uint64_t now = 1769860800000000ULL; /* 2026-01-31T12:00:00Z */
    uint64_t v;
    cr_assert_eq(tkv_parse_time("now", now, &v), 0);
    cr_assert_eq(v, now);
    cr_assert_eq(tkv_parse_time("-5m", now, &v), 0);
    cr_assert_eq(v, now - 300000000);
    cr_assert_eq(tkv_parse_time("+2h", now, &v), 0);
    cr_assert_eq(v, now + 7200000000ULL);
    cr_assert_eq(tkv_parse_time("2026-01-31T12:00:00Z", 0, &v), 0);
    cr_assert_eq(v, now);
    cr_assert_eq(tkv_parse_time("2026-01-31T14:00:00+02:00", 0, &v), 0);
    cr_assert_eq(v, now);
    cr_assert_eq(tkv_parse_time("2026-01-31T12:00:00.25Z", 0, &v), 0);
    cr_assert_eq(v, now + 250000);
    cr_assert_eq(tkv_parse_time("2026-01-31", 0, &v), 0);
    cr_assert_eq(v, now - 43200000000ULL);
    cr_assert_eq(tkv_parse_time("123", now, &v), 0);
    cr_assert_eq(v, 123);
    cr_assert_eq(tkv_parse_time("2026-13-01", 0, &v), -1);
    cr_assert_eq(tkv_parse_time("2026-01-31T25:00", 0, &v), -1);
    cr_assert_eq(tkv_parse_time("-5m", 1000, &v), -1, "before the epoch");
    cr_assert_eq(tkv_parse_time("yesterday", now, &v), -1);
    cr_assert_eq(tkv_parse_time("", now, &v), -1);
}
