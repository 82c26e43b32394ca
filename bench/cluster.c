/*
 * cluster.c - implements cluster.h.
 */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slot.h"
#include "tkv/client.h"

/* The node index of "host:port" in t, added if new; -1 if malformed. */
static int node_of(bench_topology *t, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    size_t hn = colon ? (size_t)(colon - addr) : 0;
    if (!colon || hn == 0 || hn >= sizeof t->nodes[0].host)
        return -1;
    if (addr[0] == '[' && hn > 2 && addr[hn - 1] == ']') {
        addr++;
        hn -= 2;
    }
    unsigned long port = strtoul(colon + 1, NULL, 10);
    if (port == 0 || port > 65535)
        return -1;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->nodes[i].port == port && strlen(t->nodes[i].host) == hn &&
            memcmp(t->nodes[i].host, addr, hn) == 0)
            return (int)i;
    bench_node *nn = realloc(t->nodes, (t->n + 1) * sizeof *nn);
    if (!nn)
        return -1;
    t->nodes = nn;
    memset(&nn[t->n], 0, sizeof nn[t->n]);
    memcpy(nn[t->n].host, addr, hn);
    nn[t->n].port = (uint16_t)port;
    return (int)t->n++;
}

int bench_cluster_load(const bench_cfg *cfg, bench_topology *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    tkv_ctx *c = tkv_connect(cfg->host, cfg->port, (int)(cfg->timeout * 1000));
    const tkv_slot_range *r;
    size_t nr = 0;
    if (!c || tkv_err(c) != TKV_EK_NONE ||
        (cfg->auth && tkv_auth(c, cfg->auth, strlen(cfg->auth)) != TKV_OK) ||
        tkv_cluster_shards(c, NULL, &r, &nr) != TKV_OK) {
        snprintf(err, errlen, "--cluster: no map from %s port %u: %s", cfg->host, cfg->port,
                 c ? tkv_errstr(c) : "out of memory");
        tkv_free(c);
        return -1;
    }
    static uint16_t slot_node[TKV_SLOTS];
    for (size_t s = 0; s < TKV_SLOTS; s++)
        slot_node[s] = UINT16_MAX;
    for (size_t k = 0; k < nr; k++) {
        int ix = node_of(t, r[k].primary);
        if (ix < 0 || r[k].to >= TKV_SLOTS) {
            snprintf(err, errlen, "--cluster: the map names an address that is not HOST:PORT: %s",
                     r[k].primary);
            tkv_free(c);
            bench_cluster_free(t);
            return -1;
        }
        for (unsigned s = r[k].from; s <= r[k].to; s++)
            slot_node[s] = (uint16_t)ix;
    }
    tkv_free(c);
    t->owner = malloc(cfg->keys * sizeof *t->owner);
    if (!t->owner || t->n == 0) {
        snprintf(err, errlen, t->n ? "out of memory" : "--cluster: the map serves no slot");
        bench_cluster_free(t);
        return -1;
    }
    for (uint64_t i = 0; i < cfg->keys; i++) {
        char key[BENCH_KEY_LEN];
        bench_key(key, i + cfg->key_offset);
        uint16_t n = slot_node[tkv_slot(key, sizeof key)];
        if (n == UINT16_MAX) {
            snprintf(err, errlen, "--cluster: slot %u has no node in the map",
                     tkv_slot(key, sizeof key));
            bench_cluster_free(t);
            return -1;
        }
        t->owner[i] = n;
        t->nodes[n].keys++;
    }
    return 0;
}

void bench_cluster_free(bench_topology *t)
{
    if (!t)
        return;
    free(t->nodes);
    free(t->owner);
    memset(t, 0, sizeof *t);
}
