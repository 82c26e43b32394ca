/*
 * workload.c - implements the request generator of workload.h: seeding,
 * zipf sampling, and the choice of operation, key and timestamp.
 */
#include "workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

#define ZIPF_EXPONENT 0.99

const char *const bench_op_names[OP__COUNT] = {"put", "get", "range"};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_seed(bench_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

/* The helpers below follow Apache Commons RNG's
 * RejectionInversionZipfSampler, which keeps H and its inverse accurate
 * when the exponent is close to 1 (0.99 here) by series expansions. */
static double helper1(double x)
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}

static double helper2(double x)
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3) * (1 + 0.25 * x));
}

/* h(x) = x^-q, and H its antiderivative, shifted so that H stays finite at
 * q = 1. */
static double zh(const bench_zipf *z, double x) { return exp(-z->q * log(x)); }

static double zH(const bench_zipf *z, double x)
{
    double lx = log(x);
    return helper2((1 - z->q) * lx) * lx;
}

static double zH_inv(const bench_zipf *z, double x)
{
    double t = x * (1 - z->q);
    if (t < -1)
        t = -1; /* rounding at the far end of the domain */
    return exp(helper1(t) * x);
}

void zipf_init(bench_zipf *z, uint64_t n, double exponent)
{
    z->n = n;
    z->q = exponent;
    z->h_x1 = zH(z, 1.5) - 1;
    z->h_n = zH(z, (double)n + 0.5);
    z->s = 2 - zH_inv(z, zH(z, 2.5) - zh(z, 2));
}

uint64_t zipf_sample(const bench_zipf *z, bench_rng *r)
{
    for (;;) {
        double u = z->h_n + rng_unit(r) * (z->h_x1 - z->h_n);
        double x = zH_inv(z, u);
        double kd = floor(x + 0.5);
        uint64_t k = kd < 1 ? 1 : kd > (double)z->n ? z->n : (uint64_t)kd;
        if ((double)k - x <= z->s || u >= zH(z, (double)k + 0.5) - zh(z, (double)k))
            return k;
    }
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Zipf's rank 1 is the hottest key. Mapping ranks through an affine
 * permutation r -> (r * mul + add) mod keys scatters the hot keys over the
 * key space, as real hot keys are, instead of packing them at its start
 * where they would share cache lines and index pages. */
static void init_permutation(bench_workload *w)
{
    uint64_t n = w->cfg->keys, seed = w->cfg->seed ^ 0x5eedull;
    w->perm_mul = 1;
    w->perm_add = 0;
    if (n < 3)
        return;
    uint64_t m = splitmix64(&seed) % n;
    while (m < 2 || gcd(m, n) != 1)
        m = (m + 1) % n;
    w->perm_mul = m;
    w->perm_add = splitmix64(&seed) % n;
}

int workload_init(bench_workload *w, const bench_cfg *cfg, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    w->next_ver = malloc(cfg->keys * sizeof *w->next_ver);
    if (!w->next_ver) {
        snprintf(err, errlen, "out of memory for %llu keys", (unsigned long long)cfg->keys);
        return -1;
    }
    for (uint64_t i = 0; i < cfg->keys; i++)
        w->next_ver[i] = cfg->versions + 1;
    uint32_t sum = 0;
    for (int i = 0; i < OP__COUNT; i++)
        w->mix_cum[i] = sum += cfg->mix[i];
    if (cfg->dist == DIST_ZIPF)
        zipf_init(&w->zipf, cfg->keys, ZIPF_EXPONENT);
    init_permutation(w);
    w->preload_total = cfg->keys * cfg->versions;
    if (cfg->topo) {
        w->owner = cfg->topo->owner;
        w->node_next = calloc(cfg->topo->n, sizeof *w->node_next);
        if (!w->node_next) {
            free(w->next_ver);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

void workload_deinit(bench_workload *w)
{
    if (!w)
        return;
    free(w->next_ver);
    free(w->node_next);
    w->next_ver = NULL;
    w->node_next = NULL;
}

static uint64_t pick_key(const bench_workload *w, bench_rng *r)
{
    uint64_t n = w->cfg->keys;
    if (w->cfg->dist == DIST_UNIFORM)
        return rng_below(r, n);
    /* rank < n <= BENCH_KEYS_MAX and mul < n: the product fits 64 bits. */
    uint64_t rank = zipf_sample(&w->zipf, r) - 1;
    return (rank * w->perm_mul + w->perm_add) % n;
}

static bench_opkind pick_kind(const bench_workload *w, bench_rng *r)
{
    uint32_t x = (uint32_t)rng_below(r, w->mix_cum[OP__COUNT - 1]);
    int k = 0;
    while (x >= w->mix_cum[k])
        k++;
    return (bench_opkind)k;
}

/* Uniform in [lo, hi], lo <= hi. */
static uint64_t uniform_in(bench_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

static void next_put(bench_workload *w, bench_rng *r, bench_op *op)
{
    uint32_t *v = &w->next_ver[op->key];
    uint64_t latest = (uint64_t)(*v - 1) * BENCH_TS_SPACING;
    if (w->cfg->ts == TS_RANDOM && latest >= BENCH_TS_SPACING) {
        op->ts = uniform_in(r, BENCH_TS_SPACING, latest);
        return;
    }
    op->ts = (uint64_t)*v * BENCH_TS_SPACING;
    /* 2^32 versions * 1000 us stays far below 2^53; saturating keeps the
     * last timestamp rather than wrapping back into the past. */
    if (*v < UINT32_MAX)
        (*v)++;
}

void workload_next(bench_workload *w, bench_rng *r, bench_op *op, uint32_t node)
{
    const bench_cfg *c = w->cfg;
    memset(op, 0, sizeof *op);
    op->kind = pick_kind(w, r);
    /* Rejection: about as many draws as there are nodes. A connection is
     * only given a node that serves at least one key (run.c). */
    do
        op->key = pick_key(w, r);
    while (w->owner && w->owner[op->key] != node);
    uint64_t latest = (uint64_t)(w->next_ver[op->key] - 1) * BENCH_TS_SPACING;
    switch (op->kind) {
    case OP_PUT: next_put(w, r, op); break;
    case OP_GET:
        op->ts = c->read_at == READ_LATEST || latest < BENCH_TS_SPACING
                     ? BENCH_TS_LATEST
                     : uniform_in(r, BENCH_TS_SPACING, latest);
        break;
    default: {
        /* Start early enough that range_limit versions follow when the
         * history has that many. */
        uint64_t span = (uint64_t)(c->range_limit ? c->range_limit - 1 : 0) * BENCH_TS_SPACING;
        op->ts = uniform_in(r, 0, latest > span ? latest - span : 0);
        op->to = BENCH_TS_LATEST;
        op->limit = c->range_limit;
        break;
    }
    }
}

bool workload_preload_next(bench_workload *w, bench_op *op, uint32_t node)
{
    if (w->preload_next >= w->preload_total)
        return false;
    uint64_t i = w->preload_next;
    if (w->owner) {
        /* This node's next key in the global order: the other nodes' keys
         * in between are theirs to send. */
        i = w->node_next[node];
        while (i < w->preload_total && w->owner[i % w->cfg->keys] != node)
            i++;
        w->node_next[node] = i + 1;
        if (i >= w->preload_total)
            return false;
    }
    w->preload_next++;
    memset(op, 0, sizeof *op);
    op->kind = OP_PUT;
    op->key = i % w->cfg->keys;
    op->ts = (i / w->cfg->keys + 1) * BENCH_TS_SPACING;
    return true;
}

bool workload_preload_done(const bench_workload *w) { return w->preload_next >= w->preload_total; }
