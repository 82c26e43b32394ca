/*
 * tkv-bench.c - the load generator's command line and report: options in,
 * a preload and a measured phase (run.c) run, latency tables or JSON out.
 *
 * The same workload can be driven against tkvd or, with --target redis,
 * against a Redis server using sorted sets (driver_resp.c), so that both
 * are measured by one client with one cost per request.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cluster.h"
#include "driver.h"
#include "hdr.h"
#include "proto.h"
#include "run.h"
#include "workload.h"

#define PRELOAD_DEPTH 64u   /* requests in flight per connection while preloading */
#define RATE_SHORTFALL 0.99 /* below this share of --rate, say it was not sustained */

enum { EXIT_OK = 0, EXIT_ERRORS = 1, EXIT_FAILED = 2 };

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: tkv-bench [OPTION]...\n"
            "Load generator for tkvd (and, to compare, Redis). Opens many connections on one\n"
            "thread, keeps a pipeline of requests in flight on each, and reports throughput and\n"
            "latency percentiles per operation.\n"
            "\n"
            "Target:\n"
            "  -H HOST               server address (default 127.0.0.1)\n"
            "  -p PORT               server port (default 7379 for tkv, 6379 for redis)\n"
            "  --target tkv|redis    protocol to speak (default tkv)\n"
            "  --timeout SECONDS     give up when a connection gets no reply for this long\n"
            "                        (default 10)\n"
            "  --auth SECRET         send AUTH SECRET first on every connection (default\n"
            "                        $TKV_AUTH; prefer the variable: arguments show in ps);\n"
            "                        a refused secret ends the run with status 2\n"
            "\n"
            "Load:\n"
            "  -c CONNECTIONS        connections (default 50)\n"
            "  -P PIPELINE           requests in flight per connection (default 1)\n"
            "  -n REQUESTS           measure this many requests; 0 = none (e.g. preload only)\n"
            "  -d SECONDS            measure for this long (default 5); the last of -n/-d wins\n"
            "  --rate N              open loop: N requests per second in total, paced (the\n"
            "                        preload is not). Request g is due g/N s into the run\n"
            "                        and goes on connection g %% CONNECTIONS; a connection\n"
            "                        sends it once it is due and has room in its pipeline.\n"
            "                        Latency then runs from the due time, so waiting caused\n"
            "                        by a slow server counts. Default: closed loop, each\n"
            "                        connection sends as soon as a reply frees a slot\n"
            "  --mix put=W,get=W,range=W\n"
            "                        relative weights of the operations (default put=1,get=1);\n"
            "                        operations not named get weight 0\n"
            "  --seed N              random seed (default 1): runs are reproducible\n"
            "\n"
            "Data:\n"
            "  --keys N              key space (default 100000). Keys are \"key:\" and the key\n"
            "                        number in 12 zero-padded digits, 16 bytes:\n"
            "                        key:000000000000 ... key:000000099999\n"
            "  --cluster             -H/-p is any node of a tkv cluster: read its map\n"
            "                        (CLUSTER SHARDS), spread the connections over the\n"
            "                        primaries, each sending only its node's keys\n"
            "  --key-offset N        number the keys from N instead of 0 (default 0): with\n"
            "                        --keys 100 --key-offset 900000000, key:000900000000 ...\n"
            "                        key:000900000099, so two tkv-bench processes can use\n"
            "                        disjoint key sets of one server\n"
            "  --versions N          versions per key (default 10). Version v of a key sits at\n"
            "                        timestamp v * %u (microseconds)\n"
            "  --value-size BYTES    bytes per value (default 32); the first 8 change with\n"
            "                        every PUT\n"
            "  --preload             before measuring, store every version of every key,\n"
            "                        %u requests in flight per connection, and report how long\n"
            "                        it took\n"
            "  --dist uniform|zipf   key popularity (default uniform); zipf has exponent 0.99,\n"
            "                        its hot keys scattered over the key space\n"
            "  --ts rising|random    PUT timestamps: rising = versions N+1, N+2, ... of each key\n"
            "                        (N = --versions), strictly increasing per key (default);\n"
            "                        random = uniform within the key's history (writes into\n"
            "                        the past)\n"
            "  --read-at latest|random-past\n"
            "                        GET the newest version (default), or as of a random time\n"
            "                        within the key's history\n"
            "  --range-limit N       RANGE returns at most N versions, from a random start in\n"
            "                        the key's history chosen so that N follow (default 10)\n"
            "\n"
            "With --target redis each key is a sorted set scored by timestamp: PUT is ZADD key\n"
            "ts member (member = 8-byte big-endian ts + value), GET is ZREVRANGEBYSCORE key ts\n"
            "-inf LIMIT 0 1, RANGE is ZRANGEBYSCORE key from to LIMIT 0 N; latest is +inf.\n"
            "\n",
            BENCH_TS_SPACING, PRELOAD_DEPTH);
    /* Two strings: C99 compilers need only take 4095 bytes in one. */
    fprintf(f,
            "Output:\n"
            "  --json                one JSON object per line per operation kind: op, requests,\n"
            "                        seconds, ops_per_sec, p50_us, p90_us, p99_us, p999_us,\n"
            "                        max_us, errors, misses, bench_cpu_pct (tkv-bench's own CPU\n"
            "                        use, %% of one core); plus op \"all\" when the mix has\n"
            "                        several kinds and op \"preload\" with --preload. With\n"
            "                        --rate, the line covering every request (\"all\", or\n"
            "                        the only op) adds target_rate, unsent (due requests\n"
            "                        never sent by the end) and lag_p99_us, lag_max_us (how\n"
            "                        late requests went out: no room in the pipeline, or\n"
            "                        tkv-bench itself behind); its ops_per_sec is the\n"
            "                        achieved rate\n"
            "  --quiet               no progress line and no header\n"
            "  --hdr-out FILE        write the measured requests' latency histogram (every\n"
            "                        kind together) to FILE in HdrHistogram's percentile\n"
            "                        distribution format, in milliseconds; bench/plot-latency\n"
            "                        draws such files\n"
            "  --help                show this help and exit\n"
            "\n"
            "Latency runs from just before the write() carrying a request (with --rate: from\n"
            "the time the request was due) to just after the read() returning its reply\n"
            "(CLOCK_MONOTONIC, one reading per batch and per read). With --rate, an achieved\n"
            "rate more than 1%% below the target prints \"could not sustain\" on stderr: the\n"
            "server (or tkv-bench) fell behind, and requests still due at the end are in no\n"
            "percentile.\n"
            "requests counts every reply, errors and misses included. Errors are replies with an\n"
            "error status; a GET that finds nothing is a miss, not an error. Exit status:\n"
            "0 success, 1 error replies, 2 a connection failed or timed out, or bad usage.\n");
}

/* ---- option parsing ---------------------------------------------------- */

static int parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "tkv-bench: %s wants an integer from %llu to %llu, not '%s'\n", flag,
                (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_u32(const char *flag, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(flag, s, min, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_seconds(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e7) {
        fprintf(stderr, "tkv-bench: %s wants a number of seconds, not '%s'\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* One of `names` (NULL-terminated); returns its index or -1. */
static int parse_choice(const char *flag, const char *s, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    fprintf(stderr, "tkv-bench: %s: unknown value '%s'\n", flag, s);
    return -1;
}

static int parse_mix(const char *s, uint32_t mix[OP__COUNT])
{
    uint32_t m[OP__COUNT] = {0};
    char buf[256];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf)
        return fprintf(stderr, "tkv-bench: --mix is too long\n"), -1;
    for (char *save, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        int k = -1;
        for (int i = 0; eq && i < OP__COUNT; i++)
            if ((size_t)(eq - item) == strlen(bench_op_names[i]) &&
                strncmp(item, bench_op_names[i], (size_t)(eq - item)) == 0)
                k = i;
        if (k < 0)
            return fprintf(stderr, "tkv-bench: --mix: expected put=W, get=W or range=W, not '%s'\n",
                           item),
                   -1;
        if (parse_u32("--mix", eq + 1, 0, 1000000, &m[k]) < 0)
            return -1;
    }
    if (m[OP_PUT] + m[OP_GET] + m[OP_RANGE] == 0)
        return fprintf(stderr, "tkv-bench: --mix: every weight is 0\n"), -1;
    memcpy(mix, m, sizeof m);
    return 0;
}

enum {
    OPT_KEYS = 256,
    OPT_VERSIONS,
    OPT_VALUE_SIZE,
    OPT_MIX,
    OPT_TS,
    OPT_READ_AT,
    OPT_RANGE_LIMIT,
    OPT_DIST,
    OPT_PRELOAD,
    OPT_SEED,
    OPT_TARGET,
    OPT_JSON,
    OPT_QUIET,
    OPT_TIMEOUT,
    OPT_HELP,
    OPT_RATE,
    OPT_AUTH,
    OPT_KEY_OFFSET,
    OPT_CLUSTER,
    OPT_HDR_OUT,
};

static const struct option long_opts[] = {
    {"keys", required_argument, NULL, OPT_KEYS},
    {"versions", required_argument, NULL, OPT_VERSIONS},
    {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
    {"mix", required_argument, NULL, OPT_MIX},
    {"ts", required_argument, NULL, OPT_TS},
    {"read-at", required_argument, NULL, OPT_READ_AT},
    {"range-limit", required_argument, NULL, OPT_RANGE_LIMIT},
    {"dist", required_argument, NULL, OPT_DIST},
    {"preload", no_argument, NULL, OPT_PRELOAD},
    {"seed", required_argument, NULL, OPT_SEED},
    {"target", required_argument, NULL, OPT_TARGET},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, OPT_HELP},
    {"rate", required_argument, NULL, OPT_RATE},
    {"auth", required_argument, NULL, OPT_AUTH},
    {"key-offset", required_argument, NULL, OPT_KEY_OFFSET},
    {"cluster", no_argument, NULL, OPT_CLUSTER},
    {"hdr-out", required_argument, NULL, OPT_HDR_OUT},
    {NULL, 0, NULL, 0},
};

static const char *const ts_names[] = {"rising", "random", NULL};
static const char *const read_names[] = {"latest", "random-past", NULL};
static const char *const dist_names[] = {"uniform", "zipf", NULL};
static const char *const target_names[] = {"tkv", "redis", NULL};

/* Sets an enum from a named choice; -1 if the name is unknown. */
static int set_choice(int *field, const char *flag, const char *arg, const char *const *names)
{
    int v = parse_choice(flag, arg, names);
    if (v >= 0)
        *field = v;
    return v < 0 ? -1 : 0;
}

static int apply_short(bench_cfg *c, int opt, const char *arg, bool *port_set)
{
    uint32_t port;
    switch (opt) {
    case 'H': c->host = arg; return 0;
    case 'p':
        *port_set = true;
        if (parse_u32("-p", arg, 1, 65535, &port) < 0)
            return -1;
        c->port = (uint16_t)port;
        return 0;
    case 'c': return parse_u32("-c", arg, 1, 100000, &c->conns);
    case 'P': return parse_u32("-P", arg, 1, 1000000, &c->pipeline);
    case 'n': c->seconds = 0; return parse_u64("-n", arg, 0, UINT64_MAX / 2, &c->requests);
    case 'd': c->requests = 0; return parse_seconds("-d", arg, &c->seconds);
    default: return -1;
    }
}

static int apply_long(bench_cfg *c, int opt, const char *arg)
{
    int v = 0, rc = 0;
    switch (opt) {
    case OPT_KEYS: return parse_u64("--keys", arg, 1, BENCH_KEYS_MAX, &c->keys);
    case OPT_VERSIONS: return parse_u32("--versions", arg, 1, 1000000, &c->versions);
    case OPT_VALUE_SIZE: return parse_u32("--value-size", arg, 0, 16u << 20, &c->value_size);
    case OPT_RANGE_LIMIT: return parse_u32("--range-limit", arg, 1, 1000000, &c->range_limit);
    case OPT_MIX: return parse_mix(arg, c->mix);
    case OPT_SEED: return parse_u64("--seed", arg, 0, UINT64_MAX, &c->seed);
    case OPT_RATE: return parse_u64("--rate", arg, 1, BENCH_RATE_MAX, &c->rate);
    case OPT_AUTH: c->auth = arg; return 0;
    case OPT_CLUSTER: c->cluster = true; return 0;
    case OPT_HDR_OUT: c->hdr_out = arg; return 0;
    case OPT_KEY_OFFSET:
        return parse_u64("--key-offset", arg, 0, BENCH_KEY_NUMBER_MAX, &c->key_offset);
    case OPT_TIMEOUT:
        rc = parse_seconds("--timeout", arg, &c->timeout);
        return rc < 0 || c->timeout > 0 ? rc : (fprintf(stderr, "tkv-bench: --timeout 0\n"), -1);
    case OPT_PRELOAD: c->preload = true; return 0;
    case OPT_JSON: c->json = true; return 0;
    case OPT_QUIET: c->quiet = true; return 0;
    case OPT_TS:
        rc = set_choice(&v, "--ts", arg, ts_names);
        c->ts = (bench_tsmode)v;
        break;
    case OPT_READ_AT:
        rc = set_choice(&v, "--read-at", arg, read_names);
        c->read_at = (bench_readmode)v;
        break;
    case OPT_DIST:
        rc = set_choice(&v, "--dist", arg, dist_names);
        c->dist = (bench_dist)v;
        break;
    case OPT_TARGET:
        rc = set_choice(&v, "--target", arg, target_names);
        c->target = (bench_target)v;
        break;
    default: return -1;
    }
    return rc;
}

static void cfg_defaults(bench_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->conns = 50;
    c->pipeline = 1;
    c->seconds = 5;
    c->keys = 100000;
    c->versions = 10;
    c->value_size = 32;
    c->mix[OP_PUT] = c->mix[OP_GET] = 1;
    c->range_limit = 10;
    c->seed = 1;
    c->timeout = 10;
}

/* Falls back on $TKV_AUTH, as tkvctl does, and checks the secret fits an
 * AUTH request a server accepts before authenticating. */
static int check_auth(bench_cfg *c)
{
    const char *env = getenv("TKV_AUTH");
    if (!c->auth && env && *env)
        c->auth = env;
    if (c->auth && !*c->auth)
        return fprintf(stderr, "tkv-bench: --auth: empty secret\n"), -1;
    if (c->auth && c->target == TARGET_TKV && strlen(c->auth) > TKV_AUTH_MAX_SECRET)
        return fprintf(stderr, "tkv-bench: --auth: the secret is longer than %u bytes\n",
                       TKV_AUTH_MAX_SECRET),
               -1;
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on bad usage. */
static int parse_args(int argc, char **argv, bench_cfg *c)
{
    bool port_set = false;
    cfg_defaults(c);
    int opt;
    while ((opt = getopt_long(argc, argv, "H:p:c:P:n:d:", long_opts, NULL)) != -1) {
        int rc;
        if (opt == OPT_HELP)
            return usage(stdout), 1;
        if (opt == '?')
            return fprintf(stderr, "Try 'tkv-bench --help'.\n"), -1;
        rc = opt < 256 ? apply_short(c, opt, optarg, &port_set) : apply_long(c, opt, optarg);
        if (rc < 0)
            return -1;
    }
    if (optind < argc)
        return fprintf(stderr, "tkv-bench: unexpected argument '%s'\n", argv[optind]), -1;
    if (c->keys - 1 > BENCH_KEY_NUMBER_MAX - c->key_offset)
        return fprintf(stderr,
                       "tkv-bench: --key-offset %llu + --keys %llu: key numbers must stay "
                       "below 10^12 (12 digits)\n",
                       (unsigned long long)c->key_offset, (unsigned long long)c->keys),
               -1;
    if (!port_set)
        c->port = c->target == TARGET_REDIS ? bench_driver_redis.default_port
                                            : bench_driver_tkv.default_port;
    if (c->cluster && c->target != TARGET_TKV)
        return fprintf(stderr, "tkv-bench: --cluster drives a tkv cluster (--target tkv)\n"), -1;
    return check_auth(c);
}

/* ---- the report -------------------------------------------------------- */

typedef struct op_summary {
    const char *name;
    uint64_t requests, errors, misses;
    double secs, ops, p50, p90, p99, p999, max; /* latencies in microseconds */
    double cpu_pct;          /* tkv-bench's own CPU use during the phase, % of one core */
    bool paced;              /* the line covering every request of a --rate run: */
    uint64_t target;         /*   --rate */
    uint64_t unsent;         /*   requests due by the end and never sent */
    double lag_p99, lag_max; /* how late requests went out, microseconds */
} op_summary;

static void summarize(op_summary *o, const char *name, const tkv_hist *h, uint64_t replies,
                      uint64_t errors, uint64_t misses, const bench_stats *s)
{
    uint64_t elapsed_ns = s->elapsed_ns;
    memset(o, 0, sizeof *o);
    o->name = name;
    o->requests = replies;
    o->errors = errors;
    o->misses = misses;
    o->secs = (double)elapsed_ns / 1e9;
    o->ops = elapsed_ns ? (double)replies * 1e9 / (double)elapsed_ns : 0;
    o->p50 = (double)tkv_hist_quantile(h, 0.50) / 1e3;
    o->p90 = (double)tkv_hist_quantile(h, 0.90) / 1e3;
    o->p99 = (double)tkv_hist_quantile(h, 0.99) / 1e3;
    o->p999 = (double)tkv_hist_quantile(h, 0.999) / 1e3;
    o->max = (double)h->max / 1e3;
    o->cpu_pct = elapsed_ns ? 100 * s->cpu_s * 1e9 / (double)elapsed_ns : 0;
}

/* The pacing figures of a --rate run, on the line that covers every
 * request. */
static void add_rate(op_summary *o, const bench_cfg *cfg, const bench_stats *s)
{
    o->paced = cfg->rate > 0;
    o->target = cfg->rate;
    o->unsent = s->unsent;
    o->lag_p99 = (double)tkv_hist_quantile(&s->lag, 0.99) / 1e3;
    o->lag_max = s->lag.count ? (double)s->lag.max / 1e3 : 0;
}

static void print_json(const op_summary *o, const char *target)
{
    printf("{\"op\":\"%s\",\"target\":\"%s\",\"requests\":%llu,\"seconds\":%.3f,"
           "\"ops_per_sec\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
           "\"p999_us\":%.1f,\"max_us\":%.1f,\"errors\":%llu,\"misses\":%llu,"
           "\"bench_cpu_pct\":%.0f",
           o->name, target, (unsigned long long)o->requests, o->secs, o->ops, o->p50, o->p90,
           o->p99, o->p999, o->max, (unsigned long long)o->errors, (unsigned long long)o->misses,
           o->cpu_pct);
    if (o->paced)
        printf(",\"target_rate\":%llu,\"unsent\":%llu,\"lag_p99_us\":%.1f,\"lag_max_us\":%.1f",
               (unsigned long long)o->target, (unsigned long long)o->unsent, o->lag_p99,
               o->lag_max);
    printf("}\n");
}

static void print_row(const op_summary *o)
{
    printf("%-8s %10llu %11.0f %8.1f %8.1f %8.1f %8.1f %9.1f %8llu %8llu\n", o->name,
           (unsigned long long)o->requests, o->ops, o->p50, o->p90, o->p99, o->p999, o->max,
           (unsigned long long)o->errors, (unsigned long long)o->misses);
}

static void emit(const op_summary *o, const bench_cfg *cfg)
{
    if (cfg->json)
        print_json(o, target_names[cfg->target]);
    else
        print_row(o);
}

/* One line per operation kind in the mix, then their sum if several. */
static uint64_t report_ops(const bench_cfg *cfg, const bench_stats *s)
{
    tkv_hist all;
    tkv_hist_init(&all);
    uint64_t replies = 0, errors = 0, misses = 0;
    int kinds = 0;
    op_summary o;
    for (int k = 0; k < OP__COUNT; k++)
        kinds += cfg->mix[k] > 0;
    for (int k = 0; k < OP__COUNT; k++) {
        if (cfg->mix[k] == 0)
            continue;
        summarize(&o, bench_op_names[k], &s->hist[k], s->replies[k], s->errors[k], s->misses[k], s);
        if (kinds == 1)
            add_rate(&o, cfg, s);
        emit(&o, cfg);
        tkv_hist_merge(&all, &s->hist[k]);
        replies += s->replies[k];
        errors += s->errors[k];
        misses += s->misses[k];
    }
    if (kinds > 1) {
        summarize(&o, "all", &all, replies, errors, misses, s);
        add_rate(&o, cfg, s);
        emit(&o, cfg);
    }
    return errors;
}

static void print_header(const bench_cfg *c)
{
    printf("tkv-bench: %s at %s port %u, %u connections x %u in flight, mix put=%u,get=%u,"
           "range=%u\n",
           target_names[c->target], c->host, c->port, c->conns, c->pipeline, c->mix[OP_PUT],
           c->mix[OP_GET], c->mix[OP_RANGE]);
    printf("  %llu keys (from key number %llu) x %u versions, %u-byte values, ts %s, read-at %s, "
           "dist %s, range-limit %u, seed %llu\n",
           (unsigned long long)c->keys, (unsigned long long)c->key_offset, c->versions,
           c->value_size, ts_names[c->ts], read_names[c->read_at], dist_names[c->dist],
           c->range_limit, (unsigned long long)c->seed);
    if (c->rate)
        printf("  open loop: paced at %llu requests/s in total\n", (unsigned long long)c->rate);
    for (uint32_t n = 0; c->topo && n < c->topo->n; n++) {
        const bench_node *b = &c->topo->nodes[n];
        printf("  cluster node %s port %u: %llu keys (%.1f%%)\n", b->host, b->port,
               (unsigned long long)b->keys, 100.0 * (double)b->keys / (double)c->keys);
    }
    fflush(stdout);
}

static uint64_t report_preload(const bench_cfg *cfg, const bench_stats *s)
{
    op_summary o;
    summarize(&o, "preload", &s->hist[OP_PUT], s->replies[OP_PUT], s->errors[OP_PUT], 0, s);
    if (cfg->json) {
        print_json(&o, target_names[cfg->target]);
    } else {
        printf("preload: %llu versions in %.2f s (%.0f versions/s, p50 %.1f us, p99 %.1f us), "
               "errors %llu\n",
               (unsigned long long)o.requests, o.secs, o.ops, o.p50, o.p99,
               (unsigned long long)o.errors);
    }
    fflush(stdout);
    return o.errors;
}

/* Replies per second over the whole measured phase, every kind together. */
static double achieved_rate(const bench_stats *s)
{
    uint64_t replies = 0;
    for (int k = 0; k < OP__COUNT; k++)
        replies += s->replies[k];
    return s->elapsed_ns ? (double)replies * 1e9 / (double)s->elapsed_ns : 0;
}

static void print_rate(const bench_cfg *cfg, const bench_stats *s)
{
    printf("rate: target %llu ops/s, achieved %.0f ops/s; requests went out behind schedule "
           "by p99 %.1f us, max %.1f us; %llu due requests never sent\n",
           (unsigned long long)cfg->rate, achieved_rate(s),
           (double)tkv_hist_quantile(&s->lag, 0.99) / 1e3,
           s->lag.count ? (double)s->lag.max / 1e3 : 0, (unsigned long long)s->unsent);
}

/* A paced run that fell short: its latencies leave out the requests the
 * server did not get to, so the reader must know. */
static void warn_shortfall(const bench_cfg *cfg, const bench_stats *s)
{
    double achieved = achieved_rate(s);
    if (cfg->rate && achieved < RATE_SHORTFALL * (double)cfg->rate)
        fprintf(stderr, "tkv-bench: warning: could not sustain %llu ops/s: achieved %.0f\n",
                (unsigned long long)cfg->rate, achieved);
}

static uint64_t report_measure(const bench_cfg *cfg, const bench_stats *s)
{
    if (!cfg->json) {
        double secs = (double)s->elapsed_ns / 1e9;
        printf("run: %.2f s; tkv-bench itself used %.2f s of CPU (%.0f%% of one core)\n", secs,
               s->cpu_s, secs > 0 ? 100 * s->cpu_s / secs : 0);
        if (cfg->rate)
            print_rate(cfg, s);
        printf("\n%-8s %10s %11s %8s %8s %8s %8s %9s %8s %8s   (latency in us)\n", "op", "requests",
               "ops/s", "p50", "p90", "p99", "p99.9", "max", "errors", "misses");
    }
    uint64_t errors = report_ops(cfg, s);
    fflush(stdout);
    warn_shortfall(cfg, s);
    return errors;
}

/* ---- main -------------------------------------------------------------- */

/* The measured phase's latencies, every kind in the mix together, as
 * --hdr-out's file. Returns 0, or -1 with errno set. */
static int write_hdr(FILE *f, const bench_cfg *cfg, const bench_stats *s)
{
    static tkv_hist all; /* large: not on the stack */
    tkv_hist_init(&all);
    for (int k = 0; k < OP__COUNT; k++)
        if (cfg->mix[k] > 0)
            tkv_hist_merge(&all, &s->hist[k]);
    int rc = hist_write_hdr(&all, f, 1e6);
    return fflush(f) != 0 ? -1 : rc;
}

/* Runs the preload and measured phases; returns the exit status. */
static int bench(const bench_cfg *cfg, bench_run *run, bench_workload *wl, FILE *hdr)
{
    const bench_driver *drv = cfg->target == TARGET_REDIS ? &bench_driver_redis : &bench_driver_tkv;
    uint32_t depth = cfg->pipeline;
    if (cfg->preload && depth < PRELOAD_DEPTH)
        depth = PRELOAD_DEPTH;
    if (run_open(run, cfg, drv, wl, depth) < 0) {
        fprintf(stderr, "tkv-bench: %s\n", run->errmsg);
        return EXIT_FAILED;
    }
    run->show_progress = !cfg->quiet && isatty(STDERR_FILENO);
    uint64_t errors = 0;
    static bench_stats stats; /* large (histograms): not on the stack */
    if (cfg->preload) {
        int rc = run_phase(run, PHASE_PRELOAD, PRELOAD_DEPTH, &stats);
        errors += report_preload(cfg, &stats);
        if (rc < 0 || run->interrupted)
            goto done;
    }
    if (cfg->requests > 0 || cfg->seconds > 0) {
        run_phase(run, PHASE_MEASURE, cfg->pipeline, &stats);
        errors += report_measure(cfg, &stats);
        if (hdr && write_hdr(hdr, cfg, &stats) < 0) {
            fprintf(stderr, "tkv-bench: --hdr-out %s: %s\n", cfg->hdr_out, strerror(errno));
            return EXIT_FAILED;
        }
    }
done:
    if (run->interrupted && !run->failed)
        fprintf(stderr, "tkv-bench: interrupted: the report covers the requests answered\n");
    if (run->failed)
        fprintf(stderr, "tkv-bench: %s\n", run->errmsg);
    if (run->first_error[0])
        fprintf(stderr, "tkv-bench: first error reply: %s\n", run->first_error);
    return run->failed ? EXIT_FAILED : errors ? EXIT_ERRORS : EXIT_OK;
}

int main(int argc, char **argv)
{
    bench_cfg cfg;
    int rc = parse_args(argc, argv, &cfg);
    if (rc != 0)
        return rc > 0 ? EXIT_OK : EXIT_FAILED;
    bench_workload wl;
    char err[200];
    static bench_topology topo;
    if (cfg.cluster) {
        if (bench_cluster_load(&cfg, &topo, err, sizeof err) < 0) {
            fprintf(stderr, "tkv-bench: %s\n", err);
            return EXIT_FAILED;
        }
        cfg.topo = &topo;
    }
    if (workload_init(&wl, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "tkv-bench: %s\n", err);
        return EXIT_FAILED;
    }
    if (!cfg.quiet && !cfg.json)
        print_header(&cfg);
    /* Opened first: a path that cannot be written fails before the run. */
    FILE *hdr = NULL;
    if (cfg.hdr_out && !(hdr = fopen(cfg.hdr_out, "w"))) {
        fprintf(stderr, "tkv-bench: --hdr-out %s: %s\n", cfg.hdr_out, strerror(errno));
        workload_deinit(&wl);
        return EXIT_FAILED;
    }
    bench_run run;
    rc = bench(&cfg, &run, &wl, hdr);
    run_close(&run);
    workload_deinit(&wl);
    bench_cluster_free(&topo);
    if (hdr && fclose(hdr) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "tkv-bench: --hdr-out %s: %s\n", cfg.hdr_out, strerror(errno));
        rc = EXIT_FAILED;
    }
    return rc;
}
