/*
 * cluster-client.c - what libtkvclient's cluster handle costs over a plain
 * connection (issue 14 §5: target at most 5%): the same unpipelined GETs
 * and PUTs, one at a time on one connection, through tkv_get/tkv_put and
 * through tkv_cluster_get/tkv_cluster_put_ex, alternating in rounds
 * against one node that serves every slot (a one-node cluster), so the
 * only difference is the handle's routing. Prints the median of each.
 *
 *   cluster-client HOST PORT [REQUESTS [ROUNDS]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tkv/client.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Requests per second of n GETs (put: PUTs) through one of the two. Each
 * has its own keys, and every PUT of a round a new timestamp (base + i),
 * so both do the same work: new versions, reads of keys they wrote. */
static double run(tkv_ctx *c, tkv_cluster *cl, long n, int put, uint64_t base)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char key[24];
        int klen = snprintf(key, sizeof key, "%s:%ld", c ? "plain" : "clust", i % 1000);
        tkv_version v;
        int rc;
        if (put && c)
            rc = tkv_put_ex(c, key, (size_t)klen, "value", 5, base + (uint64_t)i, 1, 0, NULL);
        else if (put)
            rc = tkv_cluster_put_ex(cl, key, (size_t)klen, "value", 5, base + (uint64_t)i, 1, 0,
                                    NULL);
        else if (c)
            rc = tkv_get(c, key, (size_t)klen, TKV_LATEST, &v);
        else
            rc = tkv_cluster_get(cl, key, (size_t)klen, TKV_LATEST, &v);
        if (rc == TKV_ERR) {
            fprintf(stderr, "cluster-client: %s\n", c ? tkv_errstr(c) : tkv_cluster_errstr(cl));
            exit(1);
        }
    }
    return (double)n / (now_s() - t0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cluster-client HOST PORT [REQUESTS [ROUNDS]]\n");
        return 2;
    }
    long n = argc > 3 ? atol(argv[3]) : 20000;
    int rounds = argc > 4 ? atoi(argv[4]) : 5;
    char seed[300];
    snprintf(seed, sizeof seed, "%s:%s", argv[1], argv[2]);
    const char *seeds[] = {seed};
    tkv_ctx *c = tkv_connect(argv[1], (uint16_t)atoi(argv[2]), 10000);
    tkv_cluster *cl = tkv_cluster_connect(seeds, 1, 10000, NULL);
    if (tkv_err(c) != TKV_EK_NONE || tkv_cluster_err(cl) != TKV_EK_NONE) {
        fprintf(stderr, "cluster-client: cannot connect: %s / %s\n", tkv_errstr(c),
                tkv_cluster_errstr(cl));
        return 1;
    }
    for (int put = 1; put >= 0; put--) {
        double *pl = calloc((size_t)rounds, sizeof *pl), *cs = calloc((size_t)rounds, sizeof *cs);
        /* Alternating, and which goes first alternates too. */
        for (int r = 0; r < rounds; r++) {
            uint64_t base = 1 + (uint64_t)r * (uint64_t)n;
            if (r % 2) {
                cs[r] = run(NULL, cl, n, put, base);
                pl[r] = run(c, NULL, n, put, base);
            } else {
                pl[r] = run(c, NULL, n, put, base);
                cs[r] = run(NULL, cl, n, put, base);
            }
        }
        qsort(pl, (size_t)rounds, sizeof *pl, cmp);
        qsort(cs, (size_t)rounds, sizeof *cs, cmp);
        double p = pl[rounds / 2], q = cs[rounds / 2];
        printf("%s: plain %.0f req/s, cluster handle %.0f req/s, overhead %.1f%% (medians of %d "
               "rounds of %ld)\n",
               put ? "PUT" : "GET", p, q, 100.0 * (p - q) / p, rounds, n);
        free(pl);
        free(cs);
    }
    tkv_cluster_free(cl);
    tkv_free(c);
    return 0;
}
