/*
 * tkvctl_cluster.c - tkvctl's cluster mode (-c) and `cluster shards` (the
 * admin subcommands, which talk to etcd, are tkvctl_etcd.c's).
 *
 * In cluster mode tkvctl asks the node -H/-p names for the map, connects
 * to the node serving the command's key and runs the command there
 * unchanged: the single-key commands need not know about clusters. mget
 * and mput go through the cluster handle (tkv_cluster_mget/mput: split by
 * slot, one snapshot and all-or-nothing per slot only), and so does scan
 * (tkv_cluster_scan: every primary in turn, its cursor "N:KEY"). The other
 * commands go to the node named. tkvctl routes by the map it fetched at start, so a MOVED during
 * the command (the map changed in between) is reported, not followed.
 */
#include <stdio.h>
#include <string.h>

#include "tkvctl.h"

/* The commands whose first argument is their one key. */
static bool single_key(const command *cmd)
{
    static const char *const names[] = {"put", "get", "range", "count", "del", "retain", "policy"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(cmd->name, names[i]) == 0)
            return true;
    return false;
}

int cluster_route(cli *c, const command *cmd, const args *a)
{
    bool multi = strcmp(cmd->name, "mget") == 0 || strcmp(cmd->name, "mput") == 0 ||
                 strcmp(cmd->name, "scan") == 0;
    if (!c->cluster || !(multi || (single_key(cmd) && a->npos >= 1)))
        return 0;
    char seed[300];
    /* An IPv6 literal needs brackets to be one "host:port". */
    snprintf(seed, sizeof seed, strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host, c->port);
    const char *seeds[] = {seed};
    c->cl = tkv_cluster_connect(seeds, 1, c->timeout_ms, c->secret);
    if (!c->cl)
        return fail("out of memory");
    if (tkv_cluster_err(c->cl) != TKV_EK_NONE)
        return fail("cluster at %s: %s", seed, tkv_cluster_errstr(c->cl));
    if (multi)
        return 0; /* they go through c->cl */
    const char *key = a->pos[0];
    c->ctx = tkv_cluster_node(c->cl, key, strlen(key));
    if (!c->ctx)
        return fail("%s", tkv_cluster_errstr(c->cl));
    return 0;
}

static void print_json(uint64_t rev, const tkv_slot_range *r, size_t n)
{
    json_out j;
    json_begin(&j, stdout);
    json_u64(&j, "revision", rev);
    json_array_begin(&j, "ranges");
    for (size_t i = 0; i < n; i++) {
        json_item_begin(&j);
        json_u64(&j, "from", r[i].from);
        json_u64(&j, "to", r[i].to);
        json_str(&j, "primary", r[i].primary);
        json_array_begin(&j, "replicas");
        for (size_t k = 0; k < r[i].n_replicas; k++)
            json_value_bytes(&j, r[i].replicas[k], strlen(r[i].replicas[k]));
        json_array_end(&j);
        json_item_end(&j);
    }
    json_array_end(&j);
    json_end(&j);
}

/* cluster shards asks a node; the other subcommands ask etcd
 * (tkvctl_etcd.c). */
int run_cluster(cli *c, const args *a)
{
    if (strcmp(a->pos[0], "shards") != 0)
        return run_cluster_admin(c, a);
    if (opt(a, "shards") || opt(a, "replicas"))
        return fail("cluster shards: --shards and --replicas go with create");
    if (connect_cli(c))
        return EXIT_ERROR;
    const tkv_slot_range *r;
    size_t n;
    uint64_t rev;
    if (tkv_cluster_shards(c->ctx, &rev, &r, &n) != TKV_OK)
        return server_fail(c);
    if (c->json) {
        print_json(rev, r, n);
        return 0;
    }
    printf("revision %llu\n", (unsigned long long)rev);
    for (size_t i = 0; i < n; i++) {
        printf("%u-%u %s", r[i].from, r[i].to, r[i].primary);
        for (size_t k = 0; k < r[i].n_replicas; k++)
            printf("%s%s", k ? " " : " replicas ", r[i].replicas[k]);
        putchar('\n');
    }
    return 0;
}
