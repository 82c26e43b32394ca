/*
 * test_common.c - the helpers of common/: byte order against written-out
 * bytes, growth's capacities and its refusal to overflow, the clocks'
 * units. (units.c and siphash.c have their own tests: test_units.c and
 * test_keyindex.c.)
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "clock.h"
#include "grow.h"

Test(byteorder, most_significant_byte_first)
{
    uint8_t b[8];
    tkv_store_be16(b, 0x0102);
    cr_assert(memcmp(b, "\x01\x02", 2) == 0);
    cr_assert_eq(tkv_load_be16(b), 0x0102);
    tkv_store_be32(b, 0x01020304u);
    cr_assert(memcmp(b, "\x01\x02\x03\x04", 4) == 0);
    cr_assert_eq(tkv_load_be32(b), 0x01020304u);
    tkv_store_be64(b, 0x0102030405060708ull);
    cr_assert(memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    cr_assert_eq(tkv_load_be64(b), 0x0102030405060708ull);
    tkv_store_be64(b, UINT64_MAX);
    cr_assert_eq(tkv_load_be64(b), UINT64_MAX);
}

Test(grow, doubles_from_first_or_exactly_n)
{
    cr_assert_eq(tkv_grow_cap(0, 1, 64), 64);
    cr_assert_eq(tkv_grow_cap(0, 100, 64), 128);
    cr_assert_eq(tkv_grow_cap(64, 65, 16), 128);
    cr_assert_eq(tkv_grow_cap(64, 64, 16), 64);
    cr_assert_eq(tkv_grow_cap(0, 5, 0), 5);
    cr_assert_eq(tkv_grow_cap(SIZE_MAX / 2 + 1, SIZE_MAX, 1), 0);
}

Test(grow, keeps_elements_and_refuses_overflow)
{
    uint64_t *a = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < 1000; i++) {
        cr_assert_eq(tkv_grow(&a, &cap, i + 1, sizeof *a, 16), 0);
        cr_assert_geq(cap, i + 1);
        a[i] = i;
    }
    for (size_t i = 0; i < 1000; i++)
        cr_assert_eq(a[i], i);
    uint64_t *before = a;
    size_t cap_before = cap;
    cr_assert_eq(tkv_grow(&a, &cap, SIZE_MAX / 4, sizeof *a, 16), -1);
    cr_assert_eq(a, before);
    cr_assert_eq(cap, cap_before);
    free(a);
}

Test(clock, units)
{
    /* 2020-01-01 in microseconds: a realtime clock in seconds or
     * nanoseconds would be far off. */
    uint64_t rt = tkv_clock_realtime_us();
    cr_assert_gt(rt, UINT64_C(1577836800000000));
    cr_assert_lt(rt, UINT64_C(1577836800000000) * 4);
    uint64_t us = tkv_clock_mono_us(), ns = tkv_clock_mono_ns();
    cr_assert_geq(ns / 1000, us);
    cr_assert_leq(tkv_clock_mono_us(), ns / 1000 + 1000000);
    cr_assert_geq(tkv_clock_mono_us(), us);
}
