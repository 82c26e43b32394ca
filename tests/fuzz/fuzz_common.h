/*
 * fuzz_common.h - helpers shared by the libFuzzer targets: a checked
 * assertion that names the broken invariant, and a cursor that turns the
 * fuzzer's bytes into choices (in the spirit of LLVM's FuzzedDataProvider).
 *
 * A violated invariant calls abort() so libFuzzer records the input as a
 * crash; the message printed before it says which property failed.
 */
#ifndef TKV_FUZZ_COMMON_H
#define TKV_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "\nINVARIANT VIOLATED at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fprintf(stderr, "\n");                                                               \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

/* Reads choices from the front of the input. Once it runs dry every read
 * returns zeros, so a generator always terminates and short inputs stay
 * meaningful. */
typedef struct fz {
    const uint8_t *p;
    size_t n;
} fz;

static inline bool fz_empty(const fz *f) { return f->n == 0; }

static inline uint8_t fz_u8(fz *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t fz_u16(fz *f)
{
    uint16_t hi = fz_u8(f);
    return (uint16_t)(hi << 8 | fz_u8(f));
}

static inline uint32_t fz_u32(fz *f)
{
    uint32_t hi = fz_u16(f);
    return hi << 16 | fz_u16(f);
}

static inline uint64_t fz_u64(fz *f)
{
    uint64_t hi = fz_u32(f);
    return hi << 32 | fz_u32(f);
}

/* A number in [0, n). n must be at least 1. */
static inline uint32_t fz_below(fz *f, uint32_t n)
{
    return n <= 256 ? fz_u8(f) % n : fz_u32(f) % n;
}

/* Up to want bytes taken straight from the input (fewer if it runs dry). */
static inline size_t fz_bytes(fz *f, size_t want, const uint8_t **p)
{
    size_t k = want < f->n ? want : f->n;
    *p = f->p;
    f->p += k;
    f->n -= k;
    return k;
}

/* A heap copy of exactly n bytes, so ASan flags any read past its end
 * (frames inside a larger buffer would hide an over-read). Free with free(). */
static inline uint8_t *fz_dup(const void *p, size_t n)
{
    uint8_t *q = malloc(n); /* malloc(0) gives a unique, unreadable block */
    if (!q)
        abort();
    if (n)
        memcpy(q, p, n);
    return q;
}

/* Marks [p, p + n) unreadable to ASan (use-after-poison on any access) or
 * readable again; no-ops without ASan. ASan tracks 8-byte granules: a
 * region that does not end on a granule boundary stays readable in its
 * last partial granule, so poison only whole granules from the start of a
 * heap block. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#if !defined(FUZZ_ASAN) && defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#endif
#ifdef FUZZ_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define FUZZ_POISON(p, n) __asan_poison_memory_region((p), (n))
#define FUZZ_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define FUZZ_POISON(p, n) ((void)(p), (void)(n))
#define FUZZ_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static inline uint32_t fz_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
