/*
 * tkvctl_migrate.c - tkvctl cluster migrate | add-node | remove-node |
 * rebalance: moving slots between shards while clients use them
 * (ARCHITECTURE.md, "The cluster").
 *
 * Moving slots S to shard T is three steps, each safe to stop after:
 *   1. the map gets "migrating" entries {slot, from, to} (a compare-and-
 *      swap on its mod_revision), and the admin waits until the source and
 *      target primaries hold that map;
 *   2. every key the sources still hold in S moves: EXPORTKEY (locks it),
 *      IMPORTKEY at the target, DROPKEY; passes of SLOTKEYS until a pass
 *      finds none;
 *   3. the map gives S to T and drops the entries, in one compare-and-swap.
 * A crashed admin leaves the entries in the map: running the same command
 * again (or any that moves those slots to the same shard) goes on from
 * step 2. add-node, remove-node and rebalance only choose which slots go
 * where, then migrate them a target shard at a time.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* jsonout.h and jansson both name json_null (see tkvctl_etcd.c). */
#define json_null tkvctl_json_null_unused
#include "tkvctl.h"
#undef json_null

#include <jansson.h>

#include "etcd.h"

#define SLOTS TKV_CLUSTER_SLOTS
#define SLOTKEYS_PAGE 1000u

/* The map as read from etcd: its JSON and version. */
typedef struct map_rev {
    json_t *map;
    int64_t rev;
} map_rev;

static int etcd_err(int rc, const char *err)
{
    return fail("cluster: %s%s", err,
                rc == TKV_ETCD_EUNREACHABLE ? " (is etcd running at --etcd?)" : "");
}

static int map_key(const cli *c, char *key, size_t n)
{
    return snprintf(key, n, "/tkv/%s/map", c->cluster_name);
}

static int read_map(tkv_etcd *e, const cli *c, map_rev *out)
{
    char key[256], err[512];
    int len = map_key(c, key, sizeof key);
    tkv_etcd_kvs kvs;
    int rc = tkv_etcd_get(e, key, (size_t)len, false, &kvs, err, sizeof err);
    if (rc < 0)
        return etcd_err(rc, err);
    if (kvs.n == 0) {
        tkv_etcd_kvs_free(&kvs);
        return fail("cluster: %s has no map yet (tkvctl cluster create makes one)",
                    c->cluster_name);
    }
    json_error_t je;
    out->map = json_loadb(kvs.kv[0].value, kvs.kv[0].value_len, 0, &je);
    out->rev = kvs.kv[0].mod_revision;
    tkv_etcd_kvs_free(&kvs);
    if (!json_is_object(out->map) || !json_is_array(json_object_get(out->map, "slots")) ||
        !json_is_object(json_object_get(out->map, "shards"))) {
        json_decref(out->map);
        return fail("cluster: the map is not a map (%s)", je.text);
    }
    return 0;
}

/* Writes the map if it is still at m->rev. 1 written (m->rev is the new
 * revision), 0 someone changed it first (read it again), or an error. */
static int write_map(tkv_etcd *e, const cli *c, map_rev *m)
{
    char key[256], err[512];
    int len = map_key(c, key, sizeof key);
    char *json = json_dumps(m->map, JSON_COMPACT);
    if (!json)
        return fail("out of memory");
    bool swapped = false;
    int64_t rev = 0;
    int rc = tkv_etcd_cas(e, key, (size_t)len, m->rev, json, strlen(json), 0, &swapped, &rev, err,
                          sizeof err);
    free(json);
    if (rc < 0)
        return etcd_err(rc, err);
    if (swapped)
        m->rev = rev;
    return swapped ? 1 : 0;
}

/* ---- the map's slot table ---------------------------------------------------- */

/* Which shard each slot is on, by the shard's id (the map's strings). */
static int slot_table(json_t *map, const char **owner)
{
    size_t i;
    json_t *r;
    for (size_t s = 0; s < SLOTS; s++)
        owner[s] = NULL;
    json_array_foreach(json_object_get(map, "slots"), i, r)
    {
        json_int_t from = json_integer_value(json_array_get(r, 0));
        json_int_t to = json_integer_value(json_array_get(r, 1));
        const char *sh = json_string_value(json_array_get(r, 2));
        if (!sh || from < 0 || to >= SLOTS || from > to)
            return fail("cluster: the map's slots[%zu] is not [from, to, \"shard\"]", i);
        for (json_int_t s = from; s <= to; s++)
            owner[s] = sh;
    }
    for (size_t s = 0; s < SLOTS; s++)
        if (!owner[s])
            return fail("cluster: slot %zu has no shard in the map", s);
    return 0;
}

/* The map's "slots" again from a table, as ranges. */
static int set_slots(json_t *map, const char *const *owner)
{
    json_t *slots = json_array();
    for (size_t s = 0; s < SLOTS;) {
        size_t t = s;
        while (t + 1 < SLOTS && strcmp(owner[t + 1], owner[s]) == 0)
            t++;
        json_array_append_new(slots,
                              json_pack("[I, I, s]", (json_int_t)s, (json_int_t)t, owner[s]));
        s = t + 1;
    }
    return json_object_set_new(map, "slots", slots) < 0 ? fail("out of memory") : 0;
}

static const char *primary_addr(json_t *map, const char *shard)
{
    json_t *sh = json_object_get(json_object_get(map, "shards"), shard);
    const char *id = json_string_value(json_object_get(sh, "primary"));
    return id ? json_string_value(json_object_get(json_object_get(map, "nodes"), id)) : NULL;
}

/* ---- talking to the nodes ------------------------------------------------------ */

static tkv_ctx *node_connect(const cli *c, const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        fail("cluster: a node at '%s', not HOST:PORT", addr);
        return NULL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    tkv_ctx *ctx = tkv_connect(h, (uint16_t)atoi(colon + 1), c->timeout_ms ? c->timeout_ms : 10000);
    if (ctx && tkv_err(ctx) == TKV_EK_NONE && c->secret)
        tkv_auth(ctx, c->secret, strlen(c->secret));
    if (!ctx || tkv_err(ctx) != TKV_EK_NONE) {
        fail("cluster: %s: %s", addr, ctx ? tkv_errstr(ctx) : "out of memory");
        tkv_free(ctx);
        return NULL;
    }
    return ctx;
}

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (up to 30 s) until the node holds the map at rev or later: a
 * source must know a slot migrates before any key of it moves, or it
 * would MOVE clients away from keys it still holds. */
static int wait_map(const cli *c, const char *addr, int64_t rev)
{
    tkv_ctx *ctx = node_connect(c, addr);
    if (!ctx)
        return -1;
    for (int i = 0; i < 3000; i++) {
        const tkv_slot_range *r;
        size_t n;
        uint64_t have = 0;
        if (tkv_cluster_shards(ctx, &have, &r, &n) != TKV_OK) {
            int rc = fail("cluster: %s: %s", addr, tkv_errstr(ctx));
            tkv_free(ctx);
            return rc;
        }
        if ((int64_t)have >= rev) {
            tkv_free(ctx);
            return 0;
        }
        nap_ms(10);
    }
    tkv_free(ctx);
    return fail("cluster: %s did not take map revision %" PRId64 " within 30 s", addr, rev);
}

/* Moves one key's whole history from src to dst (see client.h). */
static int move_key(tkv_ctx *src, tkv_ctx *dst, const tkv_bytes *key, const char *src_addr,
                    const char *dst_addr)
{
    uint64_t cursor = 0;
    int more = 0, first = 1;
    do {
        const uint8_t *rec;
        size_t len;
        if (tkv_export_key(src, key->ptr, key->len, cursor, !first, &rec, &len, &cursor, &more) !=
            TKV_OK)
            return fail("cluster: EXPORTKEY at %s: %s", src_addr, tkv_errstr(src));
        if (len == 0)
            break; /* nothing of it is visible at the source: the target's already */
        if (tkv_import_key(dst, key->ptr, key->len, rec, len, !first, NULL) != TKV_OK)
            return fail("cluster: IMPORTKEY at %s: %s", dst_addr, tkv_errstr(dst));
        first = 0;
    } while (more);
    if (tkv_drop_key(src, key->ptr, key->len, NULL) != TKV_OK)
        return fail("cluster: DROPKEY at %s: %s", src_addr, tkv_errstr(src));
    return 0;
}

/* Keys moved at once: three pipelined round trips (and so three batches,
 * three syncs) for the lot instead of three per key. The source holds at
 * most TKV_MIGRATE_LOCKS (64) keys exported and not dropped. */
#define MOVE_BATCH 32

typedef struct moving {
    tkv_bytes key;
    uint8_t *rec; /* the first piece, copied out of the reply */
    size_t len;
    int more; /* a deep key: moved alone, piece by piece */
} moving;

/* Reads n replies from ctx; the first error is reported (as `what` at
 * addr), the rest only read. For EXPORTKEY the pieces are kept in mv. */
static int read_replies(tkv_ctx *ctx, size_t n, moving *mv, const char *what, const char *addr)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        tkv_reply r;
        if (tkv_read_reply(ctx, &r) != TKV_OK) {
            if (rc == 0)
                rc = fail("cluster: %s at %s: %s", what, addr, tkv_errstr(ctx));
            if (tkv_err(ctx) != TKV_EK_SERVER)
                return rc; /* the connection is gone: nothing more to read */
            continue;
        }
        if (!mv || rc)
            continue;
        mv[i].len = r.text_len;
        mv[i].more = r.truncated;
        if (r.text_len && !(mv[i].rec = malloc(r.text_len)))
            rc = fail("out of memory");
        else if (r.text_len)
            memcpy(mv[i].rec, r.text, r.text_len);
    }
    return rc;
}

/* Moves n keys from src to dst: every EXPORTKEY, then every IMPORTKEY,
 * then every DROPKEY, each set pipelined. A key whose history takes more
 * than one piece is moved alone (move_key); one with nothing visible at
 * the source is only dropped. On an error the keys not dropped stay
 * locked until their locks expire, and a later run moves them again. */
static int move_batch(tkv_ctx *src, tkv_ctx *dst, moving *mv, size_t n, const char *src_addr,
                      const char *dst_addr)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (tkv_append_export_key(src, mv[i].key.ptr, mv[i].key.len, 0, 0) != TKV_OK)
            rc = fail("cluster: EXPORTKEY at %s: %s", src_addr, tkv_errstr(src));
    if (rc == 0)
        rc = read_replies(src, n, mv, "EXPORTKEY", src_addr);
    size_t queued = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (mv[i].len == 0 || mv[i].more)
            continue;
        if (tkv_append_import_key(dst, mv[i].key.ptr, mv[i].key.len, mv[i].rec, mv[i].len, 0) !=
            TKV_OK)
            rc = fail("cluster: IMPORTKEY at %s: %s", dst_addr, tkv_errstr(dst));
        queued++;
    }
    if (rc == 0)
        rc = read_replies(dst, queued, NULL, "IMPORTKEY", dst_addr);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (mv[i].more)
            rc = move_key(src, dst, &mv[i].key, src_addr, dst_addr);
    queued = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (mv[i].more)
            continue;
        if (tkv_append_drop_key(src, mv[i].key.ptr, mv[i].key.len) != TKV_OK)
            rc = fail("cluster: DROPKEY at %s: %s", src_addr, tkv_errstr(src));
        queued++;
    }
    if (rc == 0)
        rc = read_replies(src, queued, NULL, "DROPKEY", src_addr);
    for (size_t i = 0; i < n; i++) {
        free(mv[i].rec);
        mv[i].rec = NULL;
    }
    return rc;
}

/* One pass over the keys a source holds in slots it migrates away, each
 * moved to its slot's target (by the map: the source may be migrating
 * slots of another admin too). *moved counts them. */
static int drain_pass(const cli *c, json_t *map, const char *src_addr, uint64_t *moved)
{
    const char *to[SLOTS] = {0};
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(map, "migrating"), i, m)
    {
        json_int_t s = json_integer_value(json_object_get(m, "slot"));
        if (s >= 0 && s < SLOTS)
            to[s] = json_string_value(json_object_get(m, "to"));
    }
    tkv_ctx *src = node_connect(c, src_addr);
    if (!src)
        return -1;
    tkv_ctx *dst = NULL;
    const char *dst_addr = NULL;
    int rc = 0;
    tkv_bytes cursor = {NULL, 0};
    char *cur_copy = NULL;
    do {
        const tkv_bytes *keys;
        size_t n;
        tkv_bytes next;
        if (tkv_slot_keys(src, cursor, SLOTKEYS_PAGE, &keys, &n, &next) != TKV_OK) {
            rc = fail("cluster: SLOTKEYS at %s: %s", src_addr, tkv_errstr(src));
            break;
        }
        /* The page and cursor live in src's buffers, which the moves reuse. */
        size_t total = next.len;
        for (size_t k = 0; k < n; k++)
            total += keys[k].len + sizeof(size_t);
        char *page = malloc(total + 1);
        if (!page) {
            rc = fail("out of memory");
            break;
        }
        char *p = page;
        for (size_t k = 0; k < n; k++) {
            memcpy(p, &keys[k].len, sizeof(size_t));
            memcpy(p + sizeof(size_t), keys[k].ptr, keys[k].len);
            p += sizeof(size_t) + keys[k].len;
        }
        free(cur_copy);
        cur_copy = next.ptr ? malloc(next.len + 1) : NULL;
        if (next.ptr && cur_copy)
            memcpy(cur_copy, next.ptr, next.len);
        cursor = (tkv_bytes){(const uint8_t *)cur_copy, next.ptr ? next.len : 0};
        p = page;
        moving mv[MOVE_BATCH];
        size_t nb = 0;
        for (size_t k = 0; k <= n && rc == 0; k++) {
            const char *addr = NULL;
            tkv_bytes key = {NULL, 0};
            if (k < n) {
                memcpy(&key.len, p, sizeof(size_t));
                key.ptr = (const uint8_t *)p + sizeof(size_t);
                p += sizeof(size_t) + key.len;
                const char *t = to[tkv_key_slot(key.ptr, key.len)];
                if (!t || !(addr = primary_addr(map, t))) {
                    rc = fail("cluster: %s lists a key of a slot the map does not migrate",
                              src_addr);
                    break;
                }
            }
            /* The batch goes when full, at the page's end, or before a key
             * for another target. */
            if (nb && (k == n || nb == MOVE_BATCH || strcmp(addr, dst_addr) != 0)) {
                rc = move_batch(src, dst, mv, nb, src_addr, dst_addr);
                *moved += rc == 0 ? nb : 0;
                nb = 0;
            }
            if (k == n || rc)
                break;
            if (!dst_addr || strcmp(addr, dst_addr) != 0) {
                tkv_free(dst);
                dst_addr = addr;
                if (!(dst = node_connect(c, addr))) {
                    rc = -1;
                    break;
                }
            }
            mv[nb++] = (moving){.key = key};
        }
        free(page);
    } while (rc == 0 && cursor.ptr);
    free(cur_copy);
    tkv_free(dst);
    tkv_free(src);
    return rc;
}

/* ---- migrate --------------------------------------------------------------------- */

/* Step 1: "migrating" entries for the wanted slots not on `to` yet.
 * Returns 1 when the map holds them (m is that map), 0 to read it again
 * (it changed meanwhile), -1 on error. want[] keeps only slots to move. */
static int mark_migrating(tkv_etcd *e, const cli *c, map_rev *m, bool *want, const char *to,
                          size_t *count)
{
    const char *owner[SLOTS];
    if (slot_table(m->map, owner))
        return -1;
    json_t *mig = json_object_get(m->map, "migrating");
    if (!json_is_array(mig)) {
        mig = json_array();
        json_object_set_new(m->map, "migrating", mig);
    }
    bool listed[SLOTS] = {0};
    size_t i;
    json_t *v;
    json_array_foreach(mig, i, v)
    {
        json_int_t s = json_integer_value(json_object_get(v, "slot"));
        const char *t = json_string_value(json_object_get(v, "to"));
        if (s < 0 || s >= SLOTS || !want[s])
            continue;
        if (!t || strcmp(t, to) != 0)
            return fail("cluster: slot %d is migrating to shard %s already (finish that first)",
                        (int)s, t ? t : "?");
        listed[s] = true;
    }
    bool changed = false;
    *count = 0;
    for (size_t s = 0; s < SLOTS; s++) {
        if (want[s] && strcmp(owner[s], to) == 0)
            want[s] = false;
        if (!want[s])
            continue;
        ++*count;
        if (!listed[s]) {
            json_array_append_new(mig, json_pack("{s:I, s:s, s:s}", "slot", (json_int_t)s, "from",
                                                 owner[s], "to", to));
            changed = true;
        }
    }
    return changed ? write_map(e, c, m) : 1;
}

/* Step 3: the slots to `to`, their entries gone. 1 done, 0 read again. */
static int finish_slots(tkv_etcd *e, const cli *c, map_rev *m, const bool *want, const char *to)
{
    const char *owner[SLOTS];
    if (slot_table(m->map, owner))
        return -1;
    for (size_t s = 0; s < SLOTS; s++)
        if (want[s])
            owner[s] = to;
    json_t *mig = json_object_get(m->map, "migrating");
    json_t *keep = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(mig, i, v)
    {
        json_int_t s = json_integer_value(json_object_get(v, "slot"));
        if (s < 0 || s >= SLOTS || !want[s])
            json_array_append(keep, v);
    }
    /* owner[] points into the map's strings: build the ranges first. */
    int rc = set_slots(m->map, owner);
    json_object_set_new(m->map, "migrating", keep);
    return rc ? -1 : write_map(e, c, m);
}

/* Moves the slots want[] names to shard `to`, live, resuming whatever an
 * earlier run left in the map. */
static int migrate_slots(tkv_etcd *e, const cli *c, bool *want, const char *to)
{
    map_rev m = {0};
    size_t count = 0;
    int rc;
    do {
        json_decref(m.map);
        if (read_map(e, c, &m))
            return -1;
        if (!json_object_get(json_object_get(m.map, "shards"), to)) {
            json_decref(m.map);
            return fail("cluster migrate: no shard '%s' in the map", to);
        }
        rc = mark_migrating(e, c, &m, want, to, &count);
    } while (rc == 0);
    if (rc < 0 || count == 0) {
        if (rc > 0)
            printf("nothing to move: the slots are on shard %s\n", to);
        json_decref(m.map);
        return rc < 0 ? -1 : 0;
    }
    /* The sources, and the target, must hold the map before keys move. */
    const char *owner[SLOTS];
    char sources[64][128]; /* copies: the map's strings go with its next change */
    size_t nsrc = 0;
    slot_table(m.map, owner);
    for (size_t s = 0; s < SLOTS; s++) {
        if (!want[s])
            continue;
        size_t k = 0;
        while (k < nsrc && strcmp(sources[k], owner[s]) != 0)
            k++;
        if (k == nsrc && nsrc < 64)
            snprintf(sources[nsrc++], sizeof sources[0], "%s", owner[s]);
    }
    printf("moving %zu slot%s to shard %s from %zu shard%s (map revision %" PRId64 ")\n", count,
           count == 1 ? "" : "s", to, nsrc, nsrc == 1 ? "" : "s", m.rev);
    rc = wait_map(c, primary_addr(m.map, to), m.rev);
    for (size_t k = 0; k < nsrc && rc == 0; k++)
        rc = wait_map(c, primary_addr(m.map, sources[k]), m.rev);
    /* Step 2: passes until a pass over every source moves nothing. */
    uint64_t total = 0, moved = 1;
    while (rc == 0 && moved > 0) {
        moved = 0;
        for (size_t k = 0; k < nsrc && rc == 0; k++)
            rc = drain_pass(c, m.map, primary_addr(m.map, sources[k]), &moved);
        total += moved;
        if (moved)
            printf("  %" PRIu64 " keys moved\n", total);
    }
    while (rc == 0) {
        rc = finish_slots(e, c, &m, want, to);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc == 0) { /* the map changed: read it, and finish again */
            json_decref(m.map);
            m.map = NULL;
            if (read_map(e, c, &m))
                rc = -1;
        }
    }
    /* Clients are sent between nodes by their maps: done when the nodes
     * involved hold the new one. */
    rc = rc ? rc : wait_map(c, primary_addr(m.map, to), m.rev);
    for (size_t k = 0; k < nsrc && rc == 0; k++)
        rc = wait_map(c, primary_addr(m.map, sources[k]), m.rev);
    if (rc == 0)
        printf("done: %zu slot%s on shard %s, %" PRIu64 " keys moved (map revision %" PRId64 ")\n",
               count, count == 1 ? "" : "s", to, total, m.rev);
    json_decref(m.map);
    return rc;
}

/* SLOT or FROM-TO, comma-separated. */
static int parse_slots(const char *spec, bool *want)
{
    const char *p = spec;
    while (*p) {
        char *end;
        unsigned long from = strtoul(p, &end, 10), to = from;
        if (end == p)
            return fail("cluster migrate: '%s' is not SLOT[-SLOT][,...]", spec);
        if (*end == '-') {
            p = end + 1;
            to = strtoul(p, &end, 10);
            if (end == p)
                return fail("cluster migrate: '%s' is not SLOT[-SLOT][,...]", spec);
        }
        if (from > to || to >= SLOTS)
            return fail("cluster migrate: slots are 0 to %d, from <= to", SLOTS - 1);
        for (unsigned long s = from; s <= to; s++)
            want[s] = true;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return fail("cluster migrate: '%s' is not SLOT[-SLOT][,...]", spec);
    }
    return 0;
}

/* ---- rebalance, add-node, remove-node ----------------------------------------- */

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Finishes the moves a map's "migrating" entries show (an admin stopped
 * half-way), a target shard at a time, before new ones are planned. */
static int finish_leftovers(tkv_etcd *e, const cli *c)
{
    for (int round = 0;; round++) {
        if (round == 64) /* each round empties a target's entries: not a loop */
            return fail("cluster: the map's migrating entries do not go away");
        map_rev m;
        if (read_map(e, c, &m))
            return -1;
        json_t *mig = json_object_get(m.map, "migrating");
        const char *to = json_string_value(json_object_get(json_array_get(mig, 0), "to"));
        if (!to) {
            json_decref(m.map);
            return 0;
        }
        bool *want = calloc(SLOTS, sizeof *want);
        char target[128];
        snprintf(target, sizeof target, "%s", to);
        size_t i;
        json_t *v;
        json_array_foreach(mig, i, v)
        {
            json_int_t s = json_integer_value(json_object_get(v, "slot"));
            const char *t = json_string_value(json_object_get(v, "to"));
            if (want && t && strcmp(t, target) == 0 && s >= 0 && s < SLOTS)
                want[s] = true;
        }
        json_decref(m.map);
        if (!want)
            return fail("out of memory");
        printf("finishing a move cut short: slots to shard %s\n", target);
        int rc = migrate_slots(e, c, want, target);
        free(want);
        if (rc)
            return rc;
    }
}

/* Moves slots so that every shard but `leaving` (NULL: none) holds 16384/N
 * slots, the first 16384 mod N of them (in id order) one more: only the
 * slots above a shard's share move, so adding a shard moves about 1/N. */
static int rebalance(tkv_etcd *e, const cli *c, const char *leaving)
{
    map_rev m;
    if (finish_leftovers(e, c) || read_map(e, c, &m))
        return -1;
    json_t *shards = json_object_get(m.map, "shards");
    size_t n = 0, cap = json_object_size(shards);
    const char **ids = calloc(cap ? cap : 1, sizeof *ids);
    char **copies = calloc(cap ? cap : 1, sizeof *copies);
    const char *owner[SLOTS];
    int rc = !ids || !copies ? fail("out of memory") : slot_table(m.map, owner);
    const char *id;
    json_t *v;
    json_object_foreach(shards, id, v)
    {
        if (!leaving || strcmp(id, leaving) != 0)
            ids[n++] = id;
    }
    if (rc == 0 && n == 0)
        rc = fail("cluster: no shard would be left to hold the slots");
    size_t *have = calloc(n ? n : 1, sizeof *have), *share = calloc(n ? n : 1, sizeof *share);
    bool *want = calloc(SLOTS, sizeof *want);
    if (rc == 0 && (!have || !share || !want))
        rc = fail("out of memory");
    if (rc == 0) {
        qsort(ids, n, sizeof *ids, str_cmp);
        for (size_t k = 0; k < n; k++) {
            share[k] = SLOTS / n + (k < SLOTS % n);
            copies[k] = strdup(ids[k]); /* the map is read again by each move */
        }
        for (size_t s = 0; s < SLOTS; s++)
            for (size_t k = 0; k < n; k++)
                have[k] += strcmp(owner[s], ids[k]) == 0;
    }
    /* Slots over a share (and every slot of the leaving shard) are spare,
     * taken from the top of each shard's slots. */
    bool *spare = calloc(SLOTS, sizeof *spare);
    if (rc == 0 && !spare)
        rc = fail("out of memory");
    for (size_t s = SLOTS; rc == 0 && s-- > 0;) {
        size_t k = 0;
        while (k < n && strcmp(owner[s], ids[k]) != 0)
            k++;
        if (k == n) {
            spare[s] = true;
        } else if (have[k] > share[k]) {
            spare[s] = true;
            have[k]--;
        }
    }
    json_decref(m.map);
    size_t next = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (have[k] >= share[k])
            continue;
        memset(want, 0, SLOTS * sizeof *want);
        for (; next < SLOTS && have[k] < share[k]; next++) {
            if (spare[next]) {
                want[next] = true;
                have[k]++;
            }
        }
        rc = migrate_slots(e, c, want, copies[k]);
    }
    if (rc == 0)
        printf("balanced: %zu shard%s\n", n, n == 1 ? "" : "s");
    for (size_t k = 0; copies && k < n; k++)
        free(copies[k]);
    free(copies);
    free(ids);
    free(have);
    free(share);
    free(want);
    free(spare);
    return rc;
}

/* add-node ID: a registered node not in the map becomes the primary of a
 * new shard (the first free id s0, s1, ...), which rebalance then fills. */
static int add_node(tkv_etcd *e, const cli *c, const char *node)
{
    char key[320], err[512];
    int len = snprintf(key, sizeof key, "/tkv/%s/nodes/%s", c->cluster_name, node);
    tkv_etcd_kvs kvs;
    int rc = tkv_etcd_get(e, key, (size_t)len, false, &kvs, err, sizeof err);
    if (rc < 0)
        return etcd_err(rc, err);
    json_t *reg = kvs.n ? json_loadb(kvs.kv[0].value, kvs.kv[0].value_len, 0, NULL) : NULL;
    tkv_etcd_kvs_free(&kvs);
    const char *addr = json_string_value(json_object_get(reg, "addr"));
    if (!addr) {
        json_decref(reg);
        return fail("cluster add-node: node %s is not registered (start its tkvd with --cluster)",
                    node);
    }
    for (;;) {
        map_rev m;
        if (read_map(e, c, &m)) {
            rc = -1;
            break;
        }
        json_t *nodes = json_object_get(m.map, "nodes"), *shards = json_object_get(m.map, "shards");
        const char *sid;
        json_t *sv;
        bool placed = false;
        json_object_foreach(shards, sid, sv)
        {
            const char *p = json_string_value(json_object_get(sv, "primary"));
            if (p && strcmp(p, node) == 0)
                placed = true;
        }
        if (placed) { /* an earlier run added it: go on to rebalance */
            printf("node %s is a shard's primary already\n", node);
            json_decref(m.map);
            rc = 0;
            break;
        }
        if (json_object_get(nodes, node)) {
            json_decref(m.map);
            rc = fail("cluster add-node: node %s is in the map already (a replica?)", node);
            break;
        }
        char id[32];
        for (unsigned k = 0;; k++) {
            snprintf(id, sizeof id, "s%u", k);
            if (!json_object_get(shards, id))
                break;
        }
        json_object_set_new(nodes, node, json_string(addr));
        json_object_set_new(shards, id, json_pack("{s:s, s:[]}", "primary", node, "replicas"));
        rc = write_map(e, c, &m);
        json_decref(m.map);
        if (rc == 1) {
            printf("node %s (%s) added as the primary of shard %s (map revision %" PRId64 ")\n",
                   node, addr, id, m.rev);
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
    }
    json_decref(reg);
    return rc ? rc : rebalance(e, c, NULL);
}

/* The shard whose primary is node, or NULL (copied into out). */
static const char *shard_of(json_t *map, const char *node, char *out, size_t n)
{
    const char *sid;
    json_t *sv;
    json_object_foreach(json_object_get(map, "shards"), sid, sv)
    {
        const char *p = json_string_value(json_object_get(sv, "primary"));
        if (p && strcmp(p, node) == 0) {
            snprintf(out, n, "%s", sid);
            return out;
        }
    }
    return NULL;
}

/* remove-node ID: its shard's slots go to the others evenly, then the
 * shard and the node leave the map. Refused for the last shard. */
static int remove_node(tkv_etcd *e, const cli *c, const char *node)
{
    map_rev m;
    if (read_map(e, c, &m))
        return -1;
    char sid[128];
    const char *shard = shard_of(m.map, node, sid, sizeof sid);
    size_t nshards = json_object_size(json_object_get(m.map, "shards"));
    bool known = json_object_get(json_object_get(m.map, "nodes"), node) != NULL;
    json_decref(m.map);
    if (!shard && !known)
        return fail("cluster remove-node: node %s is not in the map", node);
    if (shard && nshards <= 1)
        return fail("cluster remove-node: shard %s is the last: its slots have nowhere to go",
                    shard);
    if (!shard)
        return fail("cluster remove-node: node %s is no shard's primary (replicas are not "
                    "removed here)",
                    node);
    printf("moving shard %s's slots to the other %zu shard%s\n", shard, nshards - 1,
           nshards == 2 ? "" : "s");
    if (rebalance(e, c, shard))
        return -1;
    for (;;) {
        if (read_map(e, c, &m))
            return -1;
        const char *owner[SLOTS];
        if (slot_table(m.map, owner)) {
            json_decref(m.map);
            return -1;
        }
        for (size_t s = 0; s < SLOTS; s++) {
            if (strcmp(owner[s], shard) == 0) {
                json_decref(m.map);
                return fail("cluster remove-node: slot %zu is still on shard %s", s, shard);
            }
        }
        /* The shard's replicas stay in "nodes", as spares. */
        json_object_del(json_object_get(m.map, "shards"), shard);
        json_object_del(json_object_get(m.map, "nodes"), node);
        int rc = write_map(e, c, &m);
        json_decref(m.map);
        if (rc == 1) {
            printf("node %s and shard %s removed from the map (revision %" PRId64 ")\n", node,
                   shard, m.rev);
            return 0;
        }
        if (rc < 0)
            return -1;
    }
}

int run_cluster_move(cli *c, const args *a, tkv_etcd *e)
{
    const char *sub = a->pos[0];
    if (strcmp(sub, "rebalance") == 0) {
        if (a->npos != 1)
            return fail("usage: tkvctl cluster rebalance");
        return rebalance(e, c, NULL) ? EXIT_ERROR : 0;
    }
    if (strcmp(sub, "migrate") == 0) {
        if (a->npos != 3)
            return fail("usage: tkvctl cluster migrate SLOT[-SLOT][,...] TO_SHARD");
        bool *want = calloc(SLOTS, sizeof *want);
        if (!want)
            return fail("out of memory");
        int rc = parse_slots(a->pos[1], want) ? -1 : migrate_slots(e, c, want, a->pos[2]);
        free(want);
        return rc ? EXIT_ERROR : 0;
    }
    if (a->npos != 2)
        return fail("usage: tkvctl cluster %s NODE_ID", sub);
    if (strcmp(sub, "add-node") == 0)
        return add_node(e, c, a->pos[1]) ? EXIT_ERROR : 0;
    return remove_node(e, c, a->pos[1]) ? EXIT_ERROR : 0;
}
