/*
 * test_cluster.c - a cluster of three real tkvd on loopback, each with the
 * same static map (--cluster-map, its own --node-id): the cluster client
 * writes 1000 keys and every key lives on the node its slot says (a plain
 * client reads it there and gets MOVED, naming that node, everywhere
 * else); MGET and MPUT across nodes are split and merged; a plain MPUT
 * across slots is refused CROSSSLOT and writes nothing; a client holding a
 * stale map follows MOVED; tkvctl -c routes; a bad map stops tkvd at
 * start with its reason.
 *
 * The map names the nodes' addresses, so the ports are chosen before the
 * nodes start: each is bound once by the test to learn a free one, then
 * released and given to tkvd --port (a small window in which another
 * process could take it; the harness's --port 0 cannot be used here).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "harness.h"

#define NODES 3
#define NKEYS 1000

static tkvd node[NODES];
static uint16_t ports[NODES];
static char *mapdir;

static void teardown(void)
{
    for (int i = 0; i < NODES; i++)
        tkvd_cleanup(&node[i]);
    tmpdir_remove(mapdir);
    mapdir = NULL;
}

TestSuite(cluster, .fini = teardown, .timeout = 120);

/* NODES distinct free ports: all bound at once, so none repeats. */
static void pick_ports(void)
{
    int fds[NODES];
    for (int i = 0; i < NODES; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        cr_assert_eq(bind(fds[i], (struct sockaddr *)&a, sizeof a), 0);
        cr_assert_eq(getsockname(fds[i], (struct sockaddr *)&a, &len), 0);
        ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < NODES; i++)
        close(fds[i]);
}

/* The first slot of each node's range: 0, 5461, 10923 (Redis's split). */
static const unsigned first_slot[NODES + 1] = {0, 5461, 10923, 16384};

static int owner(unsigned slot)
{
    int i = 0;
    while (slot >= first_slot[i + 1])
        i++;
    return i;
}

/* Writes a map file giving node i the slots [first_slot[i], first_slot[i+1])
 * - or, with all_to >= 0, every slot to that node. Returns its path. */
static char *write_map(const char *name, int all_to)
{
    if (!mapdir)
        mapdir = tmpdir_make("map");
    char *path = malloc(4200);
    snprintf(path, 4200, "%s/%s", mapdir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "{\"slots\": [");
    if (all_to >= 0)
        fprintf(f, "[0, 16383, \"s%d\"]", all_to + 1);
    else
        for (int i = 0; i < NODES; i++)
            fprintf(f, "%s[%u, %u, \"s%d\"]", i ? ", " : "", first_slot[i], first_slot[i + 1] - 1,
                    i + 1);
    fprintf(f, "],\n \"shards\": {");
    for (int i = 0; i < NODES; i++)
        fprintf(f, "%s\"s%d\": {\"primary\": \"n%d\"}", i ? ", " : "", i + 1, i + 1);
    fprintf(f, "},\n \"nodes\": {");
    for (int i = 0; i < NODES; i++)
        fprintf(f, "%s\"n%d\": \"127.0.0.1:%u\"", i ? ", " : "", i + 1, ports[i]);
    fprintf(f, "},\n \"migrating\": []}\n");
    fclose(f);
    return path;
}

static void start_node(int i, const char *map)
{
    static char id[NODES][16], port[NODES][16];
    snprintf(id[i], sizeof id[i], "n%d", i + 1);
    snprintf(port[i], sizeof port[i], "%u", ports[i]);
    /* Small frames, so that an MGET reply can be cut short (below). */
    const char *args[] = {"--cluster-map", map,    "--node-id",   id[i],  "--port", port[i],
                          "--max-frame",   "64kb", "--max-value", "32kb", NULL};
    tkvd_start(&node[i], args);
    cr_assert_eq(node[i].port, ports[i]);
}

static void start_cluster(void)
{
    pick_ports();
    char *map = write_map("map.json", -1);
    for (int i = 0; i < NODES; i++)
        start_node(i, map);
    free(map);
}

static tkv_cluster *cluster_client(int seed)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", ports[seed]);
    const char *seeds[] = {"127.0.0.1:1", addr}; /* the first refuses: the next is tried */
    tkv_cluster *cl = tkv_cluster_connect(seeds, 2, 10000, NULL);
    cr_assert(cl);
    cr_assert_eq(tkv_cluster_err(cl), TKV_EK_NONE, "%s", tkv_cluster_errstr(cl));
    return cl;
}

static void key_of(int i, char *k, size_t n) { snprintf(k, n, "key:%d", i); }

Test(cluster, every_key_lives_where_its_slot_says)
{
    start_cluster();
    tkv_cluster *cl = cluster_client(1);
    char k[32], v[32];
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, k, sizeof k);
        snprintf(v, sizeof v, "value %d", i);
        uint64_t ts;
        cr_assert_eq(tkv_cluster_put_ex(cl, k, strlen(k), v, strlen(v), 0, 0, 0, &ts), TKV_OK,
                     "%s: %s", k, tkv_cluster_errstr(cl));
    }
    tkv_ctx *plain[NODES];
    for (int n = 0; n < NODES; n++)
        plain[n] = tkvd_client(&node[n]);
    int per_node[NODES] = {0};
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, k, sizeof k);
        snprintf(v, sizeof v, "value %d", i);
        unsigned slot = tkv_key_slot(k, strlen(k));
        int own = owner(slot);
        per_node[own]++;
        for (int n = 0; n < NODES; n++) {
            tkv_version got;
            int rc = tkv_get(plain[n], k, strlen(k), TKV_LATEST, &got);
            if (n == own) {
                cr_assert_eq(rc, TKV_OK, "%s on its node %d: %s", k, n, tkv_errstr(plain[n]));
                cr_assert(got.len == strlen(v) && memcmp(got.value, v, got.len) == 0);
                continue;
            }
            /* Elsewhere: MOVED, "SLOT HOST:PORT" of the owner. */
            char want[64];
            snprintf(want, sizeof want, "MOVED: %u 127.0.0.1:%u", slot, ports[own]);
            cr_assert_eq(rc, TKV_ERR, "%s answered on node %d", k, n);
            cr_assert_eq(tkv_server_code(plain[n]), TKV_SC_MOVED);
            cr_assert_str_eq(tkv_errstr(plain[n]), want);
        }
        tkv_version got;
        cr_assert_eq(tkv_cluster_get(cl, k, strlen(k), TKV_LATEST, &got), TKV_OK);
    }
    /* 1000 keys over three equal slot ranges: each node has a fair share. */
    for (int n = 0; n < NODES; n++)
        cr_assert(per_node[n] > 250, "node %d holds %d keys", n, per_node[n]);
    /* The map as any node gives it. */
    const tkv_slot_range *r;
    size_t nr;
    uint64_t rev = 99;
    cr_assert_eq(tkv_cluster_shards(plain[2], &rev, &r, &nr), TKV_OK);
    cr_assert_eq(nr, 3);
    cr_assert_eq(rev, 0);
    for (int n = 0; n < NODES; n++) {
        char want[32];
        snprintf(want, sizeof want, "127.0.0.1:%u", ports[n]);
        cr_assert(r[n].from == first_slot[n] && r[n].to == first_slot[n + 1] - 1);
        cr_assert_str_eq(r[n].primary, want);
        cr_assert_eq(r[n].n_replicas, 0);
    }
    for (int n = 0; n < NODES; n++)
        tkv_free(plain[n]);
    tkv_cluster_free(cl);
}

Test(cluster, mget_and_mput_across_nodes_split_and_merge)
{
    start_cluster();
    tkv_cluster *cl = cluster_client(0);
    enum { N = 300 };
    static tkv_item items[N];
    static tkv_bytes keys[N + 1];
    static char kbuf[N][32], vbuf[N][32];
    for (int i = 0; i < N; i++) {
        key_of(i, kbuf[i], sizeof kbuf[i]);
        snprintf(vbuf[i], sizeof vbuf[i], "v%d", i);
        items[i] = (tkv_item){.key = {kbuf[i], strlen(kbuf[i])},
                              .value = {vbuf[i], strlen(vbuf[i])},
                              .ts = 1000 + (uint64_t)i,
                              .has_ts = 1};
        keys[i] = items[i].key;
    }
    keys[N] = (tkv_bytes){"never written", 13};
    const uint64_t *stamps;
    cr_assert_eq(tkv_cluster_mput(cl, items, N, &stamps), TKV_OK, "%s", tkv_cluster_errstr(cl));
    for (int i = 0; i < N; i++)
        cr_assert_eq(stamps[i], 1000 + (uint64_t)i, "stamps in the order of items");
    const tkv_version *out;
    cr_assert_eq(tkv_cluster_mget(cl, TKV_LATEST, keys, N + 1, &out), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].status, TKV_OK, "%s", kbuf[i]);
        cr_assert_eq(out[i].ts, 1000 + (uint64_t)i);
        cr_assert(out[i].len == strlen(vbuf[i]) && memcmp(out[i].value, vbuf[i], out[i].len) == 0,
                  "answer %d in its place", i);
    }
    cr_assert_eq(out[N].status, TKV_NOT_FOUND);
    /* As of a time before most writes: each answer as of that time. */
    cr_assert_eq(tkv_cluster_mget(cl, 1000 + N / 2, keys, N, &out), TKV_OK);
    for (int i = 0; i < N; i++)
        cr_assert_eq(out[i].status, i <= N / 2 ? TKV_OK : TKV_NOT_FOUND, "key %d", i);
    tkv_cluster_free(cl);
}

Test(cluster, an_mget_group_above_the_frame_is_continued)
{
    /* 24 keys of one hash tag (one slot, one group) with 16 KiB values:
     * one reply holds at most 3, so the pipelined MGET comes back cut
     * short and the group runs again as tkv_mget(), which continues it. */
    start_cluster();
    tkv_cluster *cl = cluster_client(2);
    enum { N = 24, VLEN = 16 * 1024 };
    static char kb[N][16], val[VLEN];
    tkv_bytes keys[N + 2];
    for (int i = 0; i < N; i++) {
        snprintf(kb[i], sizeof kb[i], "{big}%d", i);
        memset(val, 'a' + i % 26, sizeof val);
        cr_assert_eq(tkv_cluster_put_ex(cl, kb[i], strlen(kb[i]), val, VLEN, 0, 0, 0, NULL), TKV_OK,
                     "%s", tkv_cluster_errstr(cl));
        keys[i] = (tkv_bytes){kb[i], strlen(kb[i])};
    }
    keys[N] = (tkv_bytes){"foo", 3}; /* other groups around it */
    keys[N + 1] = (tkv_bytes){"bar", 3};
    const tkv_version *out;
    cr_assert_eq(tkv_cluster_mget(cl, TKV_LATEST, keys, N + 2, &out), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].status, TKV_OK, "%s", kb[i]);
        cr_assert_eq(out[i].len, VLEN);
        cr_assert(out[i].value[0] == 'a' + i % 26 && out[i].value[VLEN - 1] == 'a' + i % 26,
                  "answer %d in its place", i);
    }
    cr_assert(out[N].status == TKV_NOT_FOUND && out[N + 1].status == TKV_NOT_FOUND);
    tkv_cluster_free(cl);
}

Test(cluster, a_plain_mput_across_slots_is_crossslot_and_writes_nothing)
{
    start_cluster();
    /* Two keys of node 0's slots, in different slots: no node takes them. */
    const char *a = NULL, *b = NULL;
    static char cand[64][16];
    for (int i = 0; i < 64 && !b; i++) {
        snprintf(cand[i], sizeof cand[i], "x%d", i);
        if (owner(tkv_key_slot(cand[i], strlen(cand[i]))) != 0)
            continue;
        if (!a)
            a = cand[i];
        else if (tkv_key_slot(cand[i], strlen(cand[i])) != tkv_key_slot(a, strlen(a)))
            b = cand[i];
    }
    cr_assert(a && b);
    tkv_ctx *c = tkvd_client(&node[0]);
    tkv_item two[2] = {{.key = {a, strlen(a)}, .value = {"1", 1}},
                       {.key = {b, strlen(b)}, .value = {"2", 1}}};
    cr_assert_eq(tkv_mput(c, two, 2, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_CROSSSLOT, "%s", tkv_errstr(c));
    tkv_version v;
    cr_assert_eq(tkv_get(c, a, strlen(a), TKV_LATEST, &v), TKV_NOT_FOUND);
    cr_assert_eq(tkv_get(c, b, strlen(b), TKV_LATEST, &v), TKV_NOT_FOUND);
    /* MGET too; the rule holds even before ownership is looked at. */
    tkv_bytes ks[2] = {two[0].key, two[1].key};
    const tkv_version *out;
    cr_assert_eq(tkv_mget(c, TKV_LATEST, ks, 2, &out), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_CROSSSLOT);
    /* One hash tag: one slot, one atomic MPUT at the node serving it. */
    const char *t1 = "{user:42}:cart", *t2 = "{user:42}:orders";
    int own = owner(tkv_key_slot(t1, strlen(t1)));
    tkv_ctx *o = tkvd_client(&node[own]);
    tkv_item tagged[2] = {{.key = {t1, strlen(t1)}, .value = {"c", 1}},
                          {.key = {t2, strlen(t2)}, .value = {"o", 1}}};
    cr_assert_eq(tkv_mput(o, tagged, 2, NULL), TKV_OK, "%s", tkv_errstr(o));
    /* The same MPUT at another node: MOVED, not CROSSSLOT. */
    tkv_ctx *other = tkvd_client(&node[(own + 1) % NODES]);
    cr_assert_eq(tkv_mput(other, tagged, 2, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(other), TKV_SC_MOVED);
    tkv_free(other);
    tkv_free(o);
    tkv_free(c);
}

Test(cluster, a_client_with_a_stale_map_follows_moved)
{
    /* Node 0 holds an old map that gives every slot to node 1; nodes 1
     * and 2 hold the current one. A client seeded with node 0 only sends
     * everything to node 1, which redirects keys of node 2's slots. */
    pick_ports();
    char *stale = write_map("stale.json", 1), *current = write_map("map.json", -1);
    start_node(0, stale);
    start_node(1, current);
    start_node(2, current);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", ports[0]);
    const char *seeds[] = {addr};
    tkv_cluster *cl = tkv_cluster_connect(seeds, 1, 10000, NULL);
    cr_assert_eq(tkv_cluster_err(cl), TKV_EK_NONE, "%s", tkv_cluster_errstr(cl));
    const char *k = "foo"; /* slot 12182: node 2's */
    cr_assert_eq(owner(tkv_key_slot(k, 3)), 2);
    cr_assert_eq(tkv_cluster_put_ex(cl, k, 3, "bar", 3, 0, 0, 0, NULL), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
    tkv_ctx *c2 = tkvd_client(&node[2]);
    tkv_version v;
    cr_assert_eq(tkv_get(c2, k, 3, TKV_LATEST, &v), TKV_OK, "written at the owner");
    /* The handle now holds the current map: node 1's keys go straight there. */
    tkv_ctx *direct = tkv_cluster_node(cl, "a", 1);
    cr_assert(direct);
    cr_assert_eq(tkv_get(direct, "a", 1, TKV_LATEST, &v), TKV_NOT_FOUND, "%s", tkv_errstr(direct));
    tkv_free(c2);
    tkv_cluster_free(cl);

    /* MPUT and MGET through a fresh stale handle: the pipelined pass sends
     * every group to node 1, which redirects node 2's; those run again
     * at node 2 after a refresh, and the answers still come in order. */
    cl = tkv_cluster_connect(seeds, 1, 10000, NULL);
    cr_assert_eq(tkv_cluster_err(cl), TKV_EK_NONE);
    enum { N = 40 };
    static char kb[N][16];
    tkv_item items[N];
    tkv_bytes keys[N];
    int on2 = 0;
    /* Only keys of nodes 1 and 2: node 0's own slots have no server here
     * (node 0 sends them to node 1, which sends them back). */
    for (int i = 0, seq = 0; i < N; seq++) {
        snprintf(kb[i], sizeof kb[i], "s%d", seq);
        int own = owner(tkv_key_slot(kb[i], strlen(kb[i])));
        if (own == 0)
            continue;
        on2 += own == 2;
        items[i] = (tkv_item){.key = {kb[i], strlen(kb[i])}, .value = {kb[i], strlen(kb[i])}};
        keys[i] = items[i].key;
        i++;
    }
    cr_assert(on2 > 0 && on2 < N, "keys on both nodes");
    cr_assert_eq(tkv_cluster_mput(cl, items, N, NULL), TKV_OK, "%s", tkv_cluster_errstr(cl));
    tkv_cluster_free(cl);
    cl = tkv_cluster_connect(seeds, 1, 10000, NULL);
    const tkv_version *out;
    cr_assert_eq(tkv_cluster_mget(cl, TKV_LATEST, keys, N, &out), TKV_OK, "%s",
                 tkv_cluster_errstr(cl));
    for (int i = 0; i < N; i++)
        cr_assert(out[i].status == TKV_OK && out[i].len == strlen(kb[i]) &&
                      memcmp(out[i].value, kb[i], out[i].len) == 0,
                  "answer %d", i);
    tkv_cluster_free(cl);
    free(stale);
    free(current);
}

static int tkvctl(const char *const *argv, char **out)
{
    char *err;
    int rc = run_capture(argv, NULL, out, &err);
    free(err);
    return rc;
}

Test(cluster, tkvctl_c_routes_and_shows_the_map)
{
    start_cluster();
    char port[8];
    snprintf(port, sizeof port, "%u", ports[0]);
    const char *tk = getenv("TKVCTL");
    char *out;
    /* "foo" lives on node 2, asked through node 0. */
    const char *put[] = {tk, "-c", "-p", port, "put", "foo", "bar", NULL};
    cr_assert_eq(tkvctl(put, &out), 0);
    free(out);
    const char *get[] = {tk, "-c", "-p", port, "get", "foo", NULL};
    cr_assert_eq(tkvctl(get, &out), 0);
    cr_assert_str_eq(out, "bar\n");
    free(out);
    /* mget and mput with -c: split by slot over the nodes (b: node 0's,
     * c: node 1's, foo: node 2's), merged in order. */
    const char *mput[] = {tk,  "-c", "-p", port, "mput", "foo", "5", "x",
                          "b", "5",  "y",  "c",  "5",    "z",   NULL};
    cr_assert_eq(tkvctl(mput, &out), 0);
    free(out);
    const char *mget[] = {tk, "-c", "-p", port, "mget", "--ts", "5", "c", "foo", "b", NULL};
    cr_assert_eq(tkvctl(mget, &out), 0);
    cr_assert_str_eq(out, "c\t5\tz\nfoo\t5\tx\nb\t5\ty\n");
    free(out);
    const char *mget_plain[] = {tk, "-p", port, "mget", "b", "c", NULL};
    cr_assert_eq(tkvctl(mget_plain, &out), 2, "CROSSSLOT without -c");
    free(out);
    /* Without -c the node asked answers for itself. */
    const char *plain[] = {tk, "-p", port, "get", "foo", NULL};
    cr_assert_eq(tkvctl(plain, &out), 2);
    free(out);
    tkv_ctx *c2 = tkvd_client(&node[2]);
    tkv_version v;
    cr_assert_eq(tkv_get(c2, "foo", 3, TKV_LATEST, &v), TKV_OK);
    tkv_free(c2);
    const char *shards[] = {tk, "-p", port, "cluster", "shards", NULL};
    cr_assert_eq(tkvctl(shards, &out), 0);
    char want[256];
    snprintf(want, sizeof want,
             "revision 0\n0-5460 127.0.0.1:%u\n5461-10922 127.0.0.1:%u\n10923-16383 "
             "127.0.0.1:%u\n",
             ports[0], ports[1], ports[2]);
    cr_assert_str_eq(out, want);
    free(out);
}

/* SCAN across the cluster: every key written, each once, page after page
 * (small pages, so pages end inside nodes and between them), a prefix
 * filtering on every node, a bad cursor refused; tkvctl -c scan --all the
 * same. */
Test(cluster, scan_lists_every_node_s_keys_once)
{
    start_cluster();
    tkv_cluster *cl = cluster_client(1);
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char k[16];
        key_of(i, k, sizeof k);
        cr_assert_eq(tkv_cluster_put_ex(cl, k, strlen(k), "v", 1, 5, 1, 0, NULL), TKV_OK, "%s",
                     tkv_cluster_errstr(cl));
    }
    cr_assert_eq(tkv_cluster_put_ex(cl, "other", 5, "v", 1, 5, 1, 0, NULL), TKV_OK);
    static char seen[N];
    memset(seen, 0, sizeof seen);
    tkv_bytes cursor = {NULL, 0};
    char held[128];
    int pages = 0, total = 0;
    do {
        const tkv_bytes *keys;
        size_t n;
        tkv_bytes next;
        cr_assert_eq(tkv_cluster_scan(cl, "key:", 4, cursor, 7, &keys, &n, &next), TKV_OK, "%s",
                     tkv_cluster_errstr(cl));
        cr_assert_leq(n, 7);
        for (size_t i = 0; i < n; i++) {
            int v = -1;
            cr_assert_eq(sscanf(keys[i].ptr, "key:%d", &v), 1);
            cr_assert(v >= 0 && v < N && !seen[v], "key:%d listed twice or unknown", v);
            seen[v] = 1;
            total++;
        }
        cr_assert_lt(next.len, sizeof held);
        if (next.ptr)
            memcpy(held, next.ptr, next.len);
        cursor = (tkv_bytes){next.ptr ? held : NULL, next.len};
        pages++;
    } while (cursor.ptr);
    cr_assert_eq(total, N, "%d of %d keys listed", total, N);
    cr_assert_geq(pages, N / 7);
    const tkv_bytes *keys;
    size_t n;
    tkv_bytes next;
    cr_assert_eq(tkv_cluster_scan(cl, NULL, 0, (tkv_bytes){"nonsense", 8}, 7, &keys, &n, &next),
                 TKV_ERR);
    cr_assert_eq(tkv_cluster_err(cl), TKV_EK_USAGE);
    /* A cursor past the map's last node is refused, not an empty end. */
    cr_assert_eq(tkv_cluster_scan(cl, NULL, 0, (tkv_bytes){"9:", 2}, 7, &keys, &n, &next), TKV_ERR);
    cr_assert_eq(tkv_cluster_err(cl), TKV_EK_USAGE);
    tkv_cluster_free(cl);

    char port[8];
    snprintf(port, sizeof port, "%u", ports[2]);
    const char *scan[] = {getenv("TKVCTL"), "-c",      "-p", port, "scan",
                          "--all",          "--count", "11", NULL};
    char *out;
    cr_assert_eq(tkvctl(scan, &out), 0);
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, N + 1, "tkvctl -c scan --all listed %d keys", lines);
    cr_assert_not_null(strstr(out, "other\n"));
    free(out);
}

Test(cluster, a_bad_map_stops_tkvd_with_its_reason)
{
    mapdir = tmpdir_make("map");
    char path[4200], dir[4200];
    snprintf(path, sizeof path, "%s/bad.json", mapdir);
    snprintf(dir, sizeof dir, "%s/data", mapdir);
    FILE *f = fopen(path, "w");
    fputs("{\"slots\": [[0, 100, \"s\"]], \"shards\": {\"s\": {\"primary\": \"n\"}}, "
          "\"nodes\": {\"n\": \"127.0.0.1:1\"}}",
          f);
    fclose(f);
    const char *argv[] = {getenv("TKVD"),
                          "--cluster-map",
                          path,
                          "--node-id",
                          "n",
                          "--port",
                          "0",
                          "--data-dir",
                          dir,
                          NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(out, "slot 101 has no shard") || strstr(err, "slot 101 has no shard"), "%s%s",
              out, err);
    free(out);
    free(err);
    /* A node id the map does not list is refused too. */
    argv[4] = "zz";
    rc = run_capture(argv, NULL, &out, &err);
    cr_assert_neq(rc, 0);
    free(out);
    free(err);
}

Test(cluster, a_server_without_a_map_is_not_a_cluster)
{
    tkvd_start(&node[0], NULL);
    tkv_ctx *c = tkvd_client(&node[0]);
    const tkv_slot_range *r;
    size_t n;
    cr_assert_eq(tkv_cluster_shards(c, NULL, &r, &n), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_BAD_REQUEST);
    /* Every key is served, MPUT over any slots too. */
    tkv_item two[2] = {{.key = {"a", 1}, .value = {"1", 1}}, {.key = {"b", 1}, .value = {"2", 1}}};
    cr_assert_eq(tkv_mput(c, two, 2, NULL), TKV_OK);
    tkv_free(c);
}
