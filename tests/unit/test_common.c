/*
 * test_common.c - the helpers of common/: byte order against written-out
 * bytes, growth's capacities and its refusal to overflow, the clocks'
 * units. (units.c and siphash.c have their own tests: test_units.c and
 * test_keyindex.c.)
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bigmem.h"
#include "byteorder.h"
#include "clock.h"
#include "grow.h"
#include "sha256.h"

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

/* Big allocations come aligned to a huge page, hold what was asked, and a
 * calloc is zero even where the allocator hands back memory just freed
 * dirty; small ones are plain malloc; an overflowing size is refused. */
Test(bigmem, aligned_usable_zeroed_and_checked)
{
    /* From the heap rather than fresh mappings, so that freed dirty memory
     * comes back (as in a long-running server). glibc's malloc only: under
     * ASan's allocator mallopt fails and the test checks less. */
    (void)mallopt(M_MMAP_THRESHOLD, 64 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
    for (int round = 0; round < 3; round++) {
        size_t n = TKV_BIGMEM_MIN * 3 + 12345;
        uint8_t *p = tkv_bigmem_alloc(n);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % TKV_BIGMEM_MIN, 0, "a big allocation is huge-page aligned");
        cr_assert_geq(malloc_usable_size(p), n);
        memset(p, 0xa5, n);
        __asm__ volatile("" : : "r"(p) : "memory"); /* the store is not dead: it is the test */
        free(p);
        uint32_t *z = tkv_bigmem_calloc(n / 4, 4);
        cr_assert_not_null(z);
        for (size_t i = 0; i < n / 4; i += 997)
            cr_assert_eq(z[i], 0, "slot %zu", i);
        cr_assert_eq(z[n / 4 - 1], 0);
        free(z);
    }
    uint8_t *small = tkv_bigmem_calloc(100, 3);
    cr_assert_not_null(small);
    cr_assert_geq(malloc_usable_size(small), 300);
    cr_assert_eq(small[299], 0);
    free(small);
    cr_assert_null(tkv_bigmem_calloc(SIZE_MAX / 2, 4));
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

static void hex(const uint8_t *d, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The digest of msg, hashed whole and in two parts split at every byte:
 * the partial-block path must agree with the one-call path. */
static void check_sha(const char *msg, size_t n, const char *want)
{
    for (size_t cut = 0; cut <= n; cut++) {
        tkv_sha256 s;
        uint8_t d[TKV_SHA256_LEN];
        char got[65];
        tkv_sha256_init(&s);
        tkv_sha256_update(&s, msg, cut);
        tkv_sha256_update(&s, msg + cut, n - cut);
        tkv_sha256_final(&s, d);
        hex(d, got);
        cr_assert_str_eq(got, want, "split at %zu", cut);
    }
}

Test(sha256, fips_180_4_vectors)
{
    check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_sha(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, a_million_a)
{
    char *m = malloc(1000000);
    cr_assert_not_null(m);
    memset(m, 'a', 1000000);
    tkv_sha256 s;
    uint8_t d[TKV_SHA256_LEN];
    char got[65];
    tkv_sha256_init(&s);
    /* Odd-sized pieces cross block boundaries at every offset. */
    for (size_t at = 0; at < 1000000; at += 997)
        tkv_sha256_update(&s, m + at, 1000000 - at < 997 ? 1000000 - at : 997);
    tkv_sha256_final(&s, d);
    hex(d, got);
    cr_assert_str_eq(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(m);
}
