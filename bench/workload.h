/*
 * workload.h - tkv-bench's request generator: which operation, which key,
 * which timestamp. Knows nothing about sockets or wire formats.
 *
 * The generator tracks, per key, the version number its next rising PUT
 * takes, so "latest" and "a random time in the key's history" are known
 * client-side and a GET as of a random past time is a hit whenever the key
 * was preloaded. This assumes tkv-bench is the only writer while it runs.
 */
#ifndef TKV_BENCH_WORKLOAD_H
#define TKV_BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"

/* xoshiro256**: fast, 256 bits of state, good enough for load generation. */
typedef struct bench_rng {
    uint64_t s[4];
} bench_rng;

void rng_seed(bench_rng *r, uint64_t seed);

static inline uint64_t rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(bench_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rng_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n), n > 0. The modulo bias is below n / 2^64: negligible
 * for any key space or time span used here. */
static inline uint64_t rng_below(bench_rng *r, uint64_t n) { return rng_next(r) % n; }

/* Uniform in [0, 1). */
static inline double rng_unit(bench_rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Zipf over ranks 1..n by rejection-inversion (Hörmann and Derflinger
 * 1996): O(1) memory and about one logarithm and one exponential per
 * sample, whatever n is. */
typedef struct bench_zipf {
    uint64_t n;
    double q;    /* exponent */
    double h_x1; /* H(1.5) - 1 */
    double h_n;  /* H(n + 0.5) */
    double s;    /* acceptance shortcut */
} bench_zipf;

void zipf_init(bench_zipf *z, uint64_t n, double exponent);
uint64_t zipf_sample(const bench_zipf *z, bench_rng *r);

typedef struct bench_workload {
    const bench_cfg *cfg;
    uint32_t *next_ver; /* per key: version number of its next rising PUT */
    bench_zipf zipf;
    uint64_t perm_mul, perm_add; /* scatters zipf ranks over the key space */
    uint32_t mix_cum[OP__COUNT]; /* cumulative weights */
    uint64_t preload_next;       /* preload requests handed out so far */
    uint64_t preload_total;      /* keys * versions */
    /* --cluster: each key's node (cfg->topo), and per node where its
     * preload has got to (an index into the global preload order). */
    const uint16_t *owner;
    uint64_t *node_next;
} bench_workload;

/* Allocates the per-key counters (4 bytes per key). Returns 0, or -1 with a
 * message in err if out of memory. */
int workload_init(bench_workload *w, const bench_cfg *cfg, char *err, size_t errlen);
/* NULL-safe. */
void workload_deinit(bench_workload *w);

/* Fills op with the next measured request drawn with r. PUT values are the
 * caller's business: op->value is left NULL. With --cluster, only keys of
 * `node` are drawn (the distribution restricted to them); without, node is
 * ignored. */
void workload_next(bench_workload *w, bench_rng *r, bench_op *op, uint32_t node);

/* Fills op with the next preload PUT (with --cluster: of a key of `node`),
 * or returns false once every key (of that node) has all its versions.
 * Preloading goes version by version over all keys, the order in which a
 * time series arrives. */
bool workload_preload_next(bench_workload *w, bench_op *op, uint32_t node);

/* Whether the whole preload has been handed out (every node's part). */
bool workload_preload_done(const bench_workload *w);

#endif
