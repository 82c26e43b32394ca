/*
 * shardmap.c - implements shardmap.h: the map's JSON read with jansson,
 * checked rule by rule, and flattened into arrays and one table of 16384
 * shard numbers, so the question every key request asks - does this node
 * serve slot s? - is two array reads.
 *
 * Ids (of shards and nodes) are looked up through jansson objects built
 * for the purpose (id -> index), never by scanning, so a map with
 * thousands of ranges parses in linear time.
 */
#include "shardmap.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More shards or nodes than slots cannot all serve; the cap keeps the
 * slot table at 16 bits a slot. */
#define MAX_MEMBERS TKV_SLOTS
#define MAX_ADDR 300 /* "host:port": a DNS name is at most 253 bytes */

typedef struct node {
    char *id;
    char *addr; /* "host:port" */
} node;

typedef struct shard {
    char *id;
    uint32_t primary;      /* a node index */
    const char **rep_addr; /* the replicas' addresses (the nodes' strings) */
    uint32_t nrep;
} shard;

typedef struct range {
    uint16_t from, to;
    uint16_t shard;
} range;

struct tkv_shardmap {
    uint64_t revision;
    int64_t self; /* this node's index, -1: not in the map */
    node *nodes;
    uint32_t nnodes;
    shard *shards;
    uint32_t nshards;
    range *ranges;
    uint32_t nranges;
    uint16_t slot_shard[TKV_SLOTS];
    uint16_t slot_to[TKV_SLOTS]; /* a migrating slot's target shard + 1; 0: none */
};

typedef struct parse_ctx {
    tkv_shardmap *m;
    json_t *node_ix;  /* node id -> index */
    json_t *shard_ix; /* shard id -> index */
    char *err;
    size_t errlen;
} parse_ctx;

static int fail(parse_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(parse_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* HOST:PORT with a non-empty host and a port 1 to 65535 (the last colon
 * splits, so a bracketed IPv6 literal passes). */
static bool valid_addr(const char *a)
{
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || strlen(a) >= MAX_ADDR)
        return false;
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    return colon[1] >= '0' && colon[1] <= '9' && *end == '\0' && errno == 0 && port >= 1 &&
           port <= 65535;
}

static int parse_nodes(parse_ctx *c, json_t *nodes)
{
    if (!json_is_object(nodes))
        return fail(c, "\"nodes\" must be an object of node id -> \"host:port\"");
    size_t n = json_object_size(nodes);
    if (n == 0 || n > MAX_MEMBERS)
        return fail(c, "\"nodes\" must list 1 to %u nodes", MAX_MEMBERS);
    tkv_shardmap *m = c->m;
    if (!(m->nodes = calloc(n, sizeof *m->nodes)))
        return fail(c, "out of memory");
    const char *id;
    json_t *v;
    json_object_foreach(nodes, id, v)
    {
        const char *addr = json_string_value(v);
        if (!addr || !valid_addr(addr))
            return fail(c, "node \"%.64s\": the address must be a string \"host:port\"", id);
        node *nd = &m->nodes[m->nnodes++]; /* counted first: freed with the map */
        if (!(nd->id = strdup(id)) || !(nd->addr = strdup(addr)) ||
            json_object_set_new(c->node_ix, id, json_integer(m->nnodes - 1)) < 0)
            return fail(c, "out of memory");
    }
    return 0;
}

/* A node id named by a shard, as an index. */
static int node_ref(parse_ctx *c, json_t *v, const char *shard_id, const char *role, uint32_t *ix)
{
    const char *id = json_string_value(v);
    if (!id)
        return fail(c, "shard \"%.64s\": %s must be a node id (a string)", shard_id, role);
    json_t *i = json_object_get(c->node_ix, id);
    if (!i)
        return fail(c, "shard \"%.64s\": %s \"%.64s\" is not in \"nodes\"", shard_id, role, id);
    *ix = (uint32_t)json_integer_value(i);
    return 0;
}

static int parse_shard(parse_ctx *c, const char *id, json_t *v, shard *s)
{
    if (!json_is_object(v))
        return fail(c, "shard \"%.64s\" must be an object with \"primary\"", id);
    if (!(s->id = strdup(id)))
        return fail(c, "out of memory");
    if (node_ref(c, json_object_get(v, "primary"), id, "primary", &s->primary) < 0)
        return -1;
    json_t *reps = json_object_get(v, "replicas");
    if (reps && !json_is_array(reps))
        return fail(c, "shard \"%.64s\": \"replicas\" must be an array of node ids", id);
    size_t n = reps ? json_array_size(reps) : 0;
    if (n > MAX_MEMBERS)
        return fail(c, "shard \"%.64s\": too many replicas", id);
    if (n && !(s->rep_addr = calloc(n, sizeof *s->rep_addr)))
        return fail(c, "out of memory");
    for (size_t i = 0; i < n; i++) {
        uint32_t ix;
        if (node_ref(c, json_array_get(reps, i), id, "a replica", &ix) < 0)
            return -1;
        if (ix == s->primary)
            return fail(c, "shard \"%.64s\": node \"%.64s\" is its primary and a replica", id,
                        c->m->nodes[ix].id);
        s->rep_addr[s->nrep++] = c->m->nodes[ix].addr;
    }
    return 0;
}

static int parse_shards(parse_ctx *c, json_t *shards)
{
    if (!json_is_object(shards))
        return fail(c, "\"shards\" must be an object of shard id -> {\"primary\": node}");
    size_t n = json_object_size(shards);
    if (n == 0 || n > MAX_MEMBERS)
        return fail(c, "\"shards\" must list 1 to %u shards", MAX_MEMBERS);
    tkv_shardmap *m = c->m;
    if (!(m->shards = calloc(n, sizeof *m->shards)))
        return fail(c, "out of memory");
    const char *id;
    json_t *v;
    json_object_foreach(shards, id, v)
    {
        shard *s = &m->shards[m->nshards++]; /* counted first: freed with the map */
        if (parse_shard(c, id, v, s) < 0)
            return -1;
        if (json_object_set_new(c->shard_ix, id, json_integer(m->nshards - 1)) < 0)
            return fail(c, "out of memory");
    }
    return 0;
}

/* A slot number in a range, 0 to 16383. */
static int slot_num(parse_ctx *c, json_t *v, size_t i, const char *what, uint16_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) >= (json_int_t)TKV_SLOTS)
        return fail(c, "slots[%zu]: %s must be a slot number, 0 to %u", i, what, TKV_SLOTS - 1);
    *out = (uint16_t)json_integer_value(v);
    return 0;
}

/* [from, to, shard]; the shard id a string, or an integer read as its
 * decimal digits (a hand-written map may say 1 for "1"). */
static int parse_range(parse_ctx *c, json_t *v, size_t i, range *r)
{
    if (!json_is_array(v) || json_array_size(v) != 3)
        return fail(c, "slots[%zu] must be [from, to, shard]", i);
    if (slot_num(c, json_array_get(v, 0), i, "from", &r->from) < 0 ||
        slot_num(c, json_array_get(v, 1), i, "to", &r->to) < 0)
        return -1;
    if (r->from > r->to)
        return fail(c, "slots[%zu]: from %u is after to %u", i, r->from, r->to);
    json_t *sh = json_array_get(v, 2);
    char num[24];
    const char *id = json_string_value(sh);
    if (json_is_integer(sh)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(sh));
        id = num;
    }
    if (!id)
        return fail(c, "slots[%zu]: the shard must be a shard id", i);
    json_t *ix = json_object_get(c->shard_ix, id);
    if (!ix)
        return fail(c, "slots[%zu]: shard \"%.64s\" is not in \"shards\"", i, id);
    r->shard = (uint16_t)json_integer_value(ix);
    return 0;
}

static int range_cmp(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return (x->from > y->from) - (x->from < y->from);
}

/* Every slot covered exactly once: with the ranges sorted, each must start
 * right after the previous one ends. */
static int parse_slots(parse_ctx *c, json_t *slots)
{
    if (!json_is_array(slots) || json_array_size(slots) == 0)
        return fail(c, "\"slots\" must be a non-empty array of [from, to, shard]");
    size_t n = json_array_size(slots);
    if (n > TKV_SLOTS)
        return fail(c, "\"slots\" has more ranges than there are slots");
    tkv_shardmap *m = c->m;
    if (!(m->ranges = calloc(n, sizeof *m->ranges)))
        return fail(c, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (parse_range(c, json_array_get(slots, i), i, &m->ranges[i]) < 0)
            return -1;
    m->nranges = (uint32_t)n;
    qsort(m->ranges, n, sizeof *m->ranges, range_cmp);
    uint32_t next = 0; /* the first slot not yet covered */
    for (size_t i = 0; i < n; i++) {
        const range *r = &m->ranges[i];
        if (r->from < next)
            return fail(c, "slot %u is given twice", r->from);
        if (r->from > next)
            return fail(c, "slot %u has no shard", next);
        for (uint32_t s = r->from; s <= r->to; s++)
            m->slot_shard[s] = r->shard;
        next = (uint32_t)r->to + 1;
    }
    if (next < TKV_SLOTS)
        return fail(c, "slot %u has no shard", next);
    return 0;
}

/* A shard id named by a migrating entry, as an index. */
static int shard_ref(parse_ctx *c, json_t *v, size_t i, const char *what, uint16_t *ix)
{
    const char *id = json_string_value(v);
    json_t *j = id ? json_object_get(c->shard_ix, id) : NULL;
    if (!j)
        return fail(c, "migrating[%zu]: \"%s\" must name a shard in \"shards\"", i, what);
    *ix = (uint16_t)json_integer_value(j);
    return 0;
}

/* [{"slot": S, "from": shard, "to": shard}, ...]: each slot at most once,
 * from the shard that serves it (the map's "slots" say so until the move
 * ends) to another. */
static int parse_migrating(parse_ctx *c, json_t *mig)
{
    if (!mig)
        return 0;
    if (!json_is_array(mig))
        return fail(c, "\"migrating\" must be an array");
    size_t i;
    json_t *v;
    json_array_foreach(mig, i, v)
    {
        uint16_t slot = 0, from = 0, to = 0;
        if (!json_is_object(v))
            return fail(c, "migrating[%zu] must be {\"slot\": S, \"from\": shard, \"to\": shard}",
                        i);
        if (slot_num(c, json_object_get(v, "slot"), i, "slot", &slot) < 0 ||
            shard_ref(c, json_object_get(v, "from"), i, "from", &from) < 0 ||
            shard_ref(c, json_object_get(v, "to"), i, "to", &to) < 0)
            return -1;
        if (from != c->m->slot_shard[slot])
            return fail(c, "migrating[%zu]: slot %u is not served by shard \"%.64s\"", i, slot,
                        c->m->shards[from].id);
        if (to == from)
            return fail(c, "migrating[%zu]: slot %u migrates to the shard it is on", i, slot);
        if (c->m->slot_to[slot])
            return fail(c, "slot %u migrates twice", slot);
        c->m->slot_to[slot] = (uint16_t)(to + 1);
    }
    return 0;
}

static int parse_map(parse_ctx *c, json_t *root, const char *self_id)
{
    if (!json_is_object(root))
        return fail(c, "the map must be a JSON object");
    if (parse_nodes(c, json_object_get(root, "nodes")) < 0 ||
        parse_shards(c, json_object_get(root, "shards")) < 0 ||
        parse_slots(c, json_object_get(root, "slots")) < 0 ||
        parse_migrating(c, json_object_get(root, "migrating")) < 0)
        return -1;
    json_t *self = self_id ? json_object_get(c->node_ix, self_id) : NULL;
    c->m->self = self ? json_integer_value(self) : -1;
    return 0;
}

tkv_shardmap *tkv_shardmap_parse(const char *json, size_t len, uint64_t revision,
                                 const char *self_id, char *err, size_t errlen)
{
    parse_ctx c = {.err = err, .errlen = errlen};
    err[0] = '\0';
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        fail(&c, "line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    c.m = calloc(1, sizeof *c.m);
    c.node_ix = json_object();
    c.shard_ix = json_object();
    int rc = !c.m || !c.node_ix || !c.shard_ix ? fail(&c, "out of memory")
                                               : parse_map(&c, root, self_id);
    json_decref(c.node_ix);
    json_decref(c.shard_ix);
    json_decref(root);
    if (rc < 0) {
        tkv_shardmap_free(c.m);
        return NULL;
    }
    c.m->revision = revision;
    return c.m;
}

tkv_shardmap *tkv_shardmap_load(const char *path, uint64_t revision, const char *self_id, char *err,
                                size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* A map is a few KiB; 16 MiB is far beyond any real one. */
    size_t cap = 16u << 20, n = 0;
    char *buf = malloc(cap);
    if (buf)
        n = fread(buf, 1, cap, f);
    bool bad = !buf || ferror(f) || !feof(f);
    fclose(f);
    tkv_shardmap *m = NULL;
    char why[256];
    if (bad)
        snprintf(why, sizeof why, "%s",
                 buf ? "cannot read it whole (over 16 MiB?)" : "out of memory");
    else
        m = tkv_shardmap_parse(buf, n, revision, self_id, why, sizeof why);
    free(buf);
    if (!m)
        snprintf(err, errlen, "%s: %s", path, why);
    return m;
}

void tkv_shardmap_free(tkv_shardmap *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->nnodes; i++) {
        free(m->nodes[i].id);
        free(m->nodes[i].addr);
    }
    for (uint32_t i = 0; i < m->nshards; i++) {
        free(m->shards[i].id);
        free(m->shards[i].rep_addr);
    }
    free(m->nodes);
    free(m->shards);
    free(m->ranges);
    free(m);
}

uint64_t tkv_shardmap_revision(const tkv_shardmap *m) { return m->revision; }

bool tkv_shardmap_self_known(const tkv_shardmap *m) { return m->self >= 0; }

bool tkv_shardmap_serves(const tkv_shardmap *m, uint16_t slot, const char **addr)
{
    const shard *s = &m->shards[m->slot_shard[slot % TKV_SLOTS]];
    if ((int64_t)s->primary == m->self)
        return true;
    *addr = m->nodes[s->primary].addr;
    return false;
}

tkv_shardmap_route tkv_shardmap_route_slot(const tkv_shardmap *m, uint16_t slot, const char **addr)
{
    slot %= TKV_SLOTS;
    const shard *s = &m->shards[m->slot_shard[slot]];
    const shard *t = m->slot_to[slot] ? &m->shards[m->slot_to[slot] - 1] : NULL;
    if ((int64_t)s->primary == m->self) {
        if (!t)
            return TKV_SM_SERVE;
        *addr = m->nodes[t->primary].addr;
        return TKV_SM_MIGRATING;
    }
    *addr = m->nodes[s->primary].addr;
    return t && (int64_t)t->primary == m->self ? TKV_SM_IMPORTING : TKV_SM_MOVED;
}

tkv_shardmap_role tkv_shardmap_self_role(const tkv_shardmap *m, const char **primary)
{
    if (m->self < 0)
        return TKV_SM_NONE;
    const char *mine = m->nodes[m->self].addr;
    for (uint32_t i = 0; i < m->nshards; i++) {
        const shard *s = &m->shards[i];
        if ((int64_t)s->primary == m->self)
            return TKV_SM_PRIMARY;
        for (uint32_t r = 0; r < s->nrep; r++) {
            if (s->rep_addr[r] == mine || strcmp(s->rep_addr[r], mine) == 0) {
                *primary = m->nodes[s->primary].addr;
                return TKV_SM_REPLICA;
            }
        }
    }
    return TKV_SM_NONE;
}

uint32_t tkv_shardmap_nranges(const tkv_shardmap *m) { return m->nranges; }

void tkv_shardmap_get_range(const tkv_shardmap *m, uint32_t i, tkv_shardmap_range *r)
{
    const range *g = &m->ranges[i];
    const shard *s = &m->shards[g->shard];
    *r = (tkv_shardmap_range){.from = g->from,
                              .to = g->to,
                              .shard = s->id,
                              .primary = m->nodes[s->primary].addr,
                              .replicas = s->rep_addr,
                              .nreplicas = s->nrep};
}
