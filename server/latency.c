/*
 * latency.c - implements latency.h: the histograms' lifetime and their
 * STATS fields.
 */
#include "latency.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

tkv_latency *tkv_latency_new(void)
{
    /* Some 1.3 MiB, nearly all of it never touched: calloc's zero pages
     * stay unmapped until a bucket is hit. */
    tkv_latency *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    for (int i = 0; i < TKV_CMD__COUNT; i++)
        l->cmd[i].min = UINT64_MAX; /* tkv_hist_init() without its memset */
    return l;
}

void tkv_latency_free(tkv_latency *l) { free(l); }

uint32_t tkv_latency_nstats(const tkv_latency *l)
{
    uint32_t n = 0;
    for (int i = 0; i < TKV_CMD__COUNT; i++)
        n += l->cmd[i].count ? TKV_LATENCY_FIELDS : 0;
    return n;
}

static void field(tkv_rep_wr *lw, const char *cmd, const char *what, uint64_t v)
{
    char name[64];
    int n = snprintf(name, sizeof name, "latency_%s_%s", cmd, what);
    tkv_rep_stats_uint(lw, name, (size_t)n, v);
}

void tkv_latency_stats(const tkv_latency *l, tkv_rep_wr *lw)
{
    static const double qs[] = {0.50, 0.99, 0.999};
    for (int i = 0; i < TKV_CMD__COUNT; i++) {
        const tkv_hist *h = &l->cmd[i];
        if (!h->count)
            continue;
        char cmd[32];
        snprintf(cmd, sizeof cmd, "%s", tkv_cmd_name((tkv_cmd)i));
        for (char *p = cmd; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        uint64_t q[3];
        tkv_hist_quantiles(h, qs, 3, q);
        field(lw, cmd, "count", h->count);
        field(lw, cmd, "p50_us", q[0]);
        field(lw, cmd, "p99_us", q[1]);
        field(lw, cmd, "p999_us", q[2]);
        field(lw, cmd, "max_us", h->max);
    }
}
