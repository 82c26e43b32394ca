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

Test(units, dates_that_do_not_exist_are_errors)
{
    uint64_t v;
    cr_assert_eq(tkv_parse_time("2026-02-31", 0, &v), -1, "timegm would make it March 3");
    cr_assert_eq(tkv_parse_time("2026-02-29", 0, &v), -1, "2026 is no leap year");
    cr_assert_eq(tkv_parse_time("2028-02-29", 0, &v), 0, "2028 is");
    cr_assert_eq(tkv_parse_time("2026-04-31T00:00:00Z", 0, &v), -1);
    cr_assert_eq(tkv_parse_time("2026-01-00", 0, &v), -1);
    cr_assert_eq(tkv_parse_time("2026-01-31T24:00:00Z", 0, &v), -1);
    cr_assert_eq(tkv_parse_time("2026-01-31T12:60:00Z", 0, &v), -1);
    cr_assert_eq(tkv_parse_time("2026-01-31T23:59:60Z", 0, &v), -1, "no leap seconds");
    cr_assert_eq(tkv_parse_time("2026-01-31T12:00:00+24:00", 0, &v), -1);
    cr_assert_eq(tkv_parse_time("2026-01-31T12:00:00.Z", 0, &v), -1, "a dot needs digits");
    cr_assert_eq(tkv_parse_time("2026-+1-31", 0, &v), -1, "digits only");
    cr_assert_eq(tkv_parse_time("2026-01-31T12:00:00", 0, &v), 0, "no zone: UTC");
    cr_assert_eq(v, 1769860800000000ULL);
}

Test(units, epoch_numbers_with_units_and_ambiguous_bare_ones)
{
    uint64_t v;
    cr_assert_eq(tkv_parse_time("1700000000s", 0, &v), 0);
    cr_assert_eq(v, 1700000000000000ULL);
    cr_assert_eq(tkv_parse_time("1700000000000ms", 0, &v), 0);
    cr_assert_eq(v, 1700000000000000ULL);
    cr_assert_eq(tkv_parse_time("1700000000us", 0, &v), 0);
    cr_assert_eq(v, 1700000000ULL);
    cr_assert_eq(tkv_parse_time("1700000000", 0, &v), TKV_TIME_AMBIGUOUS, "epoch seconds");
    cr_assert_eq(tkv_parse_time("1700000000000", 0, &v), TKV_TIME_AMBIGUOUS, "epoch ms");
    cr_assert_eq(tkv_parse_time("1700000000000000", 0, &v), 0, "16 digits: microseconds");
    cr_assert_eq(v, 1700000000000000ULL);
    cr_assert_eq(tkv_parse_time("10", 0, &v), 0, "small numbers stay microseconds");
    cr_assert_eq(v, 10);
    cr_assert_eq(tkv_parse_time("0", 0, &v), 0);
    cr_assert_eq(tkv_parse_time("18446744073709551615", 0, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(tkv_parse_time("18446744073709552s", 0, &v), -1, "overflow");
    cr_assert_eq(tkv_parse_time("5h", 0, &v), -1, "only s, ms, us after the epoch");
    cr_assert_eq(tkv_parse_time("5 s", 0, &v), -1);
}

Test(units, iso_output)
{
    char buf[TKV_TIME_TEXT_MAX];
    cr_assert_eq(tkv_format_time(1769860800250000ULL, buf, sizeof buf), 1);
    cr_assert_str_eq(buf, "2026-01-31T12:00:00.250000Z");
    cr_assert_eq(tkv_format_time(100, buf, sizeof buf), 1);
    cr_assert_str_eq(buf, "1970-01-01T00:00:00.000100Z");
    cr_assert_eq(tkv_format_time(UINT64_MAX, buf, sizeof buf), 0, "past 9999: a number");
    cr_assert_str_eq(buf, "18446744073709551615");
    uint64_t back;
    cr_assert_eq(tkv_format_time(1769860800123456ULL, buf, sizeof buf), 1);
    cr_assert_eq(tkv_parse_time(buf, 0, &back), 0, "what is printed parses back");
    cr_assert_eq(back, 1769860800123456ULL);
}
