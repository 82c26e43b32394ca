/*
 * bench.h - what every part of tkv-bench shares: the run's configuration and
 * the description of one request (bench_op), which the workload generator
 * produces and a protocol driver (driver.h) turns into bytes.
 *
 * The data model both targets are driven with: a key space of `keys` keys
 * named key:NNNNNNNNNNNN, each with a history of versions. Preloaded version
 * v (1-based) of every key sits at timestamp v * BENCH_TS_SPACING, so a
 * key's history after preloading spans [BENCH_TS_SPACING, versions *
 * BENCH_TS_SPACING] and the generator knows, without asking the server,
 * which times hold a version.
 */
#ifndef TKV_BENCH_H
#define TKV_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Microseconds between two preloaded versions of a key. */
#define BENCH_TS_SPACING 1000u
/* "As of now": tkv's GET without a timestamp, Redis's +inf. */
#define BENCH_TS_LATEST UINT64_MAX
/* Redis scores are doubles: integers are exact only below 2^53. */
#define BENCH_TS_CEILING ((uint64_t)1 << 53)

/* Keys are "key:" and 12 decimal digits: 16 bytes. */
#define BENCH_KEY_PREFIX "key:"
#define BENCH_KEY_DIGITS 12
#define BENCH_KEY_LEN (sizeof BENCH_KEY_PREFIX - 1 + BENCH_KEY_DIGITS)
#define BENCH_KEYS_MAX 1000000000ull         /* keeps 12 digits and the per-key counters sane */
#define BENCH_KEY_NUMBER_MAX 999999999999ull /* the largest 12-digit key number */
#define BENCH_RATE_MAX 100000000ull          /* keeps the pacing arithmetic within 64 bits */

typedef enum bench_opkind { OP_PUT, OP_GET, OP_RANGE, OP__COUNT } bench_opkind;
typedef enum bench_target { TARGET_TKV, TARGET_REDIS } bench_target;
typedef enum bench_tsmode { TS_RISING, TS_RANDOM } bench_tsmode;
typedef enum bench_readmode { READ_LATEST, READ_RANDOM_PAST } bench_readmode;
typedef enum bench_dist { DIST_UNIFORM, DIST_ZIPF } bench_dist;

typedef struct bench_cfg {
    const char *host;
    uint16_t port;
    uint32_t conns;          /* connections */
    uint32_t pipeline;       /* requests in flight per connection */
    uint64_t requests;       /* measured requests; 0 with seconds == 0: none */
    double seconds;          /* measured duration when requests == 0 */
    uint64_t rate;           /* requests/s in total, paced (open loop); 0: closed loop */
    uint64_t keys;           /* key space */
    uint64_t key_offset;     /* number of the first key on the wire (--key-offset) */
    uint32_t versions;       /* preloaded versions per key */
    uint32_t value_size;     /* bytes per PUT value */
    uint32_t mix[OP__COUNT]; /* relative weights of the operations */
    uint32_t range_limit;    /* versions per RANGE */
    bench_tsmode ts;
    bench_readmode read_at;
    bench_dist dist;
    bool preload;
    uint64_t seed;
    bench_target target;
    const char *auth; /* AUTH secret sent first on every connection, or NULL */
    bool json, quiet;
    const char *hdr_out; /* --hdr-out: the measured latencies' histogram file, or NULL */
    double timeout;      /* seconds without progress before giving up */
    bool cluster;        /* --cluster: -H/-p is any node of a cluster (cluster.h) */
    const struct bench_topology *topo; /* with --cluster: its nodes and key owners */
} bench_cfg;

/* One request, in the generator's terms; the driver encodes it. */
typedef struct bench_op {
    bench_opkind kind;
    uint64_t key;         /* index in [0, keys); run.c adds key_offset to encode it */
    uint64_t ts;          /* PUT: its time; GET: as of (BENCH_TS_LATEST); RANGE: from */
    uint64_t to;          /* RANGE: inclusive upper bound (BENCH_TS_LATEST: none) */
    uint32_t limit;       /* RANGE: most versions returned */
    const uint8_t *value; /* PUT */
    uint32_t value_len;
} bench_op;

extern const char *const bench_op_names[OP__COUNT];

/* Writes key number idx (< BENCH_KEYS_MAX) as BENCH_KEY_LEN bytes, no NUL. */
static inline void bench_key(char out[BENCH_KEY_LEN], uint64_t idx)
{
    static const char prefix[] = BENCH_KEY_PREFIX;
    for (size_t i = 0; i < sizeof prefix - 1; i++)
        out[i] = prefix[i];
    for (size_t i = BENCH_KEY_LEN; i > sizeof prefix - 1; i--) {
        out[i - 1] = (char)('0' + idx % 10);
        idx /= 10;
    }
}

#endif
