/*
 * tkvctl_etcd.c - tkvctl cluster nodes | create | info: the cluster's
 * admin side. These talk to etcd, which holds the cluster (ARCHITECTURE.md,
 * "The cluster"), not to a tkvd: the registered nodes are the keys under
 * /tkv/<name>/nodes/ (alive while their lease is), the map is
 * /tkv/<name>/map. create writes the map with a create-if-absent
 * transaction, so two admins cannot both create one.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* jsonout.h (tkvctl's JSON writer, unused here) and jansson both name a
 * function json_null: tkvctl's is renamed for this file only. */
#define json_null tkvctl_json_null_unused
#include "tkvctl.h"
#undef json_null

#include <jansson.h>

#include "cluster_map.h"
#include "etcd.h"

/* The registered nodes, read once: ids and addresses point into kvs. */
typedef struct node_list {
    tkv_etcd_kvs kvs;
    cluster_node *nodes;
    size_t n;
} node_list;

static void node_list_free(node_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((char *)l->nodes[i].addr);
    free(l->nodes);
    tkv_etcd_kvs_free(&l->kvs);
}

static tkv_etcd *open_etcd(const cli *c)
{
    if (!c->etcd) {
        fail("cluster: which etcd? give --etcd URLS (or set TKV_ETCD)");
        return NULL;
    }
    char err[256];
    tkv_etcd *e = tkv_etcd_new(c->etcd, c->timeout_ms ? c->timeout_ms : 10000, err, sizeof err);
    if (!e)
        fail("cluster: %s", err);
    return e;
}

static int etcd_fail(int rc, const char *err)
{
    return fail("cluster: %s%s", err,
                rc == TKV_ETCD_EUNREACHABLE ? " (is etcd running at --etcd?)" : "");
}

/* A node's value is {"addr": "host:port"}; a value that is not is shown as
 * "?" rather than hiding the node. */
static char *node_addr(const tkv_etcd_kv *kv)
{
    json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
    const char *a = json_string_value(json_object_get(j, "addr"));
    char *s = strdup(a ? a : "?");
    json_decref(j);
    return s;
}

static int read_nodes(tkv_etcd *e, const cli *c, node_list *l)
{
    char prefix[256], err[512];
    int len = snprintf(prefix, sizeof prefix, "/tkv/%s/nodes/", c->cluster_name);
    memset(l, 0, sizeof *l);
    int rc = tkv_etcd_get(e, prefix, (size_t)len, true, &l->kvs, err, sizeof err);
    if (rc < 0)
        return etcd_fail(rc, err);
    if (l->kvs.n && !(l->nodes = calloc(l->kvs.n, sizeof *l->nodes)))
        return fail("out of memory");
    for (; l->n < l->kvs.n; l->n++) {
        l->nodes[l->n].id = l->kvs.kv[l->n].key + len;
        if (!(l->nodes[l->n].addr = node_addr(&l->kvs.kv[l->n])))
            return fail("out of memory");
    }
    return 0;
}

static const char *alive_addr(const node_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->nodes[i].id, id) == 0)
            return l->nodes[i].addr;
    return NULL;
}

static int cmd_nodes(const cli *c, tkv_etcd *e)
{
    node_list l;
    int rc = read_nodes(e, c, &l);
    if (rc == 0 && c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l.n; i++)
            json_array_append_new(
                arr, json_pack("{s:s, s:s}", "id", l.nodes[i].id, "addr", l.nodes[i].addr));
        json_t *o = json_pack("{s:s, s:o}", "cluster", c->cluster_name, "nodes", arr);
        json_dumpf(o, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(o);
    } else if (rc == 0) {
        for (size_t i = 0; i < l.n; i++)
            printf("%s %s\n", l.nodes[i].id, l.nodes[i].addr);
    }
    node_list_free(&l);
    return rc;
}

/* ---- info ----------------------------------------------------------------- */

static void print_node(const char *role, const char *id, json_t *map_nodes, const node_list *l)
{
    const char *addr = json_string_value(json_object_get(map_nodes, id));
    printf("  %-8s %s %s %s\n", role, id, addr ? addr : "?",
           alive_addr(l, id) ? "alive" : "not registered");
}

static void print_shard(const char *sid, json_t *map, const node_list *l, json_t *leaders)
{
    json_t *slots = json_object_get(map, "slots"), *r;
    json_t *sh = json_object_get(json_object_get(map, "shards"), sid);
    json_t *nodes = json_object_get(map, "nodes");
    size_t i, count = 0;
    printf("shard %s slots", sid);
    json_array_foreach(slots, i, r)
    {
        if (json_is_string(json_array_get(r, 2)) &&
            strcmp(json_string_value(json_array_get(r, 2)), sid) == 0) {
            json_int_t from = json_integer_value(json_array_get(r, 0));
            json_int_t to = json_integer_value(json_array_get(r, 1));
            printf(" %" JSON_INTEGER_FORMAT "-%" JSON_INTEGER_FORMAT, from, to);
            count += (size_t)(to - from + 1);
        }
    }
    printf(" (%zu)\n", count);
    const char *primary = json_string_value(json_object_get(sh, "primary"));
    print_node("primary", primary ? primary : "?", nodes, l);
    /* The leader key is who really leads: it differs from the map's
     * primary only while a failover is under way. */
    const char *leader = json_string_value(json_object_get(leaders, sid));
    printf("  %-8s %s\n", "leader", leader ? leader : "none (the primary is gone or starting)");
    json_t *rep;
    json_array_foreach(json_object_get(sh, "replicas"), i, rep)
    {
        if (json_is_string(rep))
            print_node("replica", json_string_value(rep), nodes, l);
    }
}

static int print_info(const cli *c, const tkv_etcd_kv *kv, const node_list *l, json_t *leaders)
{
    json_error_t je;
    json_t *map = json_loadb(kv->value, kv->value_len, 0, &je);
    if (!json_is_object(map)) {
        json_decref(map);
        return fail("cluster: the map at revision %" PRId64 " is not a JSON object: %s",
                    kv->mod_revision, je.text);
    }
    if (c->json) {
        json_t *alive = json_array();
        for (size_t i = 0; i < l->n; i++)
            json_array_append_new(alive, json_string(l->nodes[i].id));
        json_t *o =
            json_pack("{s:s, s:I, s:O, s:o, s:O}", "cluster", c->cluster_name, "revision",
                      (json_int_t)kv->mod_revision, "map", map, "alive", alive, "leaders", leaders);
        json_dumpf(o, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(o);
        json_decref(map);
        return 0;
    }
    printf("cluster %s, map revision %" PRId64 "\n", c->cluster_name, kv->mod_revision);
    const char *sid;
    json_t *v;
    json_t *shards = json_object_get(map, "shards");
    json_object_foreach(shards, sid, v) { print_shard(sid, map, l, leaders); }
    json_t *nodes = json_object_get(map, "nodes");
    size_t in_map = json_object_size(nodes), alive = 0;
    json_object_foreach(nodes, sid, v) { alive += alive_addr(l, sid) != NULL; }
    printf("nodes: %zu in the map, %zu alive", in_map, alive);
    size_t extra = 0;
    for (size_t i = 0; i < l->n; i++)
        extra += json_object_get(nodes, l->nodes[i].id) == NULL;
    printf("; %zu registered but not in the map\n", extra);
    /* A move in flight (or cut short: tkvctl cluster migrate finishes it). */
    json_t *mig = json_object_get(map, "migrating");
    size_t i, nmig = json_array_size(mig);
    if (nmig)
        printf("migrating: %zu slot%s\n", nmig, nmig == 1 ? "" : "s");
    json_array_foreach(mig, i, v)
    {
        if (i == 8) {
            printf("  ...\n");
            break;
        }
        printf("  slot %" JSON_INTEGER_FORMAT " from %s to %s\n",
               json_integer_value(json_object_get(v, "slot")),
               json_string_value(json_object_get(v, "from"))
                   ? json_string_value(json_object_get(v, "from"))
                   : "?",
               json_string_value(json_object_get(v, "to"))
                   ? json_string_value(json_object_get(v, "to"))
                   : "?");
    }
    json_decref(map);
    return 0;
}

static int read_map(tkv_etcd *e, const cli *c, tkv_etcd_kvs *out)
{
    char key[256], err[512];
    int len = snprintf(key, sizeof key, "/tkv/%s/map", c->cluster_name);
    int rc = tkv_etcd_get(e, key, (size_t)len, false, out, err, sizeof err);
    return rc < 0 ? etcd_fail(rc, err) : 0;
}

/* leaders/<shard> = node id, for every shard that has a leader now. */
static int read_leaders(tkv_etcd *e, const cli *c, json_t **out)
{
    char key[256], err[512];
    int len = snprintf(key, sizeof key, "/tkv/%s/leaders/", c->cluster_name);
    tkv_etcd_kvs kvs;
    int rc = tkv_etcd_get(e, key, (size_t)len, true, &kvs, err, sizeof err);
    if (rc < 0)
        return etcd_fail(rc, err);
    *out = json_object();
    for (size_t i = 0; i < kvs.n; i++)
        json_object_set_new(*out, kvs.kv[i].key + len, json_string(kvs.kv[i].value));
    tkv_etcd_kvs_free(&kvs);
    return 0;
}

static int cmd_info(const cli *c, tkv_etcd *e)
{
    tkv_etcd_kvs m;
    node_list l;
    json_t *leaders = NULL;
    if (read_map(e, c, &m))
        return EXIT_ERROR;
    if (read_leaders(e, c, &leaders)) {
        tkv_etcd_kvs_free(&m);
        return EXIT_ERROR;
    }
    int rc = read_nodes(e, c, &l);
    if (rc == 0 && m.n == 0) {
        fprintf(stderr, "tkvctl: cluster %s has no map yet (tkvctl cluster create makes one)\n",
                c->cluster_name);
        rc = EXIT_NOTFOUND;
    } else if (rc == 0) {
        rc = print_info(c, &m.kv[0], &l, leaders);
    }
    json_decref(leaders);
    node_list_free(&l);
    tkv_etcd_kvs_free(&m);
    return rc;
}

/* ---- create --------------------------------------------------------------- */

static int cmd_create(const cli *c, const args *a, tkv_etcd *e)
{
    uint64_t shards = 0, replicas = 0;
    const char *s = opt(a, "shards"), *r = opt(a, "replicas");
    if ((s && parse_count(s, "--shards", CLUSTER_SLOTS, &shards)) ||
        (r && parse_count(r, "--replicas", 64, &replicas)))
        return EXIT_ERROR;
    if (s && shards == 0)
        return fail("cluster create: --shards must be at least 1");
    node_list l;
    if (read_nodes(e, c, &l)) {
        node_list_free(&l);
        return EXIT_ERROR;
    }
    char err[512];
    char *json =
        cluster_map_build(l.nodes, l.n, (unsigned)shards, (unsigned)replicas, err, sizeof err);
    int rc = 0;
    if (!json) {
        rc = fail("cluster create: %s", err);
    } else {
        char key[256];
        int len = snprintf(key, sizeof key, "/tkv/%s/map", c->cluster_name);
        bool created = false;
        int64_t rev = 0;
        int erc = tkv_etcd_cas(e, key, (size_t)len, 0, json, strlen(json), 0, &created, &rev, err,
                               sizeof err);
        if (erc < 0)
            rc = etcd_fail(erc, err);
        else if (!created)
            rc = fail("cluster create: cluster %s already has a map (see tkvctl cluster info)",
                      c->cluster_name);
    }
    free(json);
    node_list_free(&l);
    return rc ? rc : cmd_info(c, e);
}

int run_cluster_admin(cli *c, const args *a)
{
    const char *sub = a->pos[0];
    bool move = strcmp(sub, "migrate") == 0 || strcmp(sub, "add-node") == 0 ||
                strcmp(sub, "remove-node") == 0 || strcmp(sub, "rebalance") == 0;
    if (!move && strcmp(sub, "nodes") != 0 && strcmp(sub, "create") != 0 &&
        strcmp(sub, "info") != 0)
        return fail("cluster: unknown subcommand '%s' (nodes, create, info, migrate, add-node, "
                    "remove-node or rebalance)",
                    sub);
    if (!move && a->npos > 1)
        return fail("cluster %s takes no more arguments", sub);
    if (strcmp(sub, "create") != 0 && (opt(a, "shards") || opt(a, "replicas")))
        return fail("cluster %s: --shards and --replicas go with create", sub);
    /* As tkvd checks it: the name is part of etcd keys, and a '/' would
     * reach another cluster's (or nobody's) keys. */
    size_t n = strlen(c->cluster_name);
    if (n == 0 || n > 64 ||
        strspn(c->cluster_name,
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
        return fail("invalid --cluster-name '%s': expected 1-64 letters, digits, '-', '_' or '.'",
                    c->cluster_name);
    tkv_etcd *e = open_etcd(c);
    if (!e)
        return EXIT_ERROR;
    int rc = move                         ? run_cluster_move(c, a, e)
             : strcmp(sub, "nodes") == 0  ? cmd_nodes(c, e)
             : strcmp(sub, "create") == 0 ? cmd_create(c, a, e)
                                          : cmd_info(c, e);
    tkv_etcd_free(e);
    return rc;
}
