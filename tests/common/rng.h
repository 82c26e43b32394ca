/*
 * rng.h - a small seeded generator for randomized tests. The seed comes
 * from TKV_TEST_SEED when set, so a failing run can be replayed; tests
 * print the seed they used.
 */
#ifndef TKV_TEST_RNG_H
#define TKV_TEST_RNG_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline uint64_t test_rng_next(test_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static inline uint64_t test_rng_below(test_rng *r, uint64_t n)
{
    return n ? test_rng_next(r) % n : 0;
}

static inline uint64_t test_seed(const char *name)
{
    const char *env = getenv("TKV_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    fprintf(stderr, "%s: seed %llu (set TKV_TEST_SEED to replay)\n", name,
            (unsigned long long)seed);
    return seed;
}

#endif
