/*
 * cluster.c - libtkvclient's cluster handle (tkv_cluster in client.h):
 * the map fetched with CLUSTER SHARDS, a tkv_ctx per node, each key's
 * request sent to the node serving its slot, MOVED followed once; during
 * a slot's migration ASK followed (ASKING first) and TRYAGAIN retried.
 *
 * The handle routes by a table of 16384 node numbers, filled from the
 * map's ranges; a node is an address and a connection opened when first
 * needed. Nodes are never dropped while the handle lives (a map without
 * them just stops routing to them), so a node number stays valid across
 * refreshes. Multi-key calls group their keys by slot - the server refuses
 * a request over more than one (CROSSSLOT) - and send the groups all at
 * once, pipelined per node, then read the replies; a group that was MOVED
 * runs again alone (a tkv_mget()/tkv_mput() at the owner). Nothing here
 * parses bytes: the contexts do, through protocol/.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"
#include "grow.h"
#include "slot.h"

#define NO_NODE UINT16_MAX
#define MAX_NODES 4096 /* more than any map names: a bound, not a design */

typedef struct cl_node {
    char *addr;   /* "host:port" as the map gives it */
    tkv_ctx *ctx; /* NULL until first needed, or after it broke */
} cl_node;

struct tkv_cluster {
    int timeout_ms;
    char *secret;
    tkv_errkind err;
    int server_code;
    char errstr[256];
    char **seeds;
    size_t nseeds;
    cl_node *nodes;
    size_t nnodes, nodes_cap;
    uint64_t revision;
    uint16_t slot_node[TKV_SLOTS]; /* NO_NODE: the map gives the slot no node */
    /* Results of the multi-key calls, and their scratch. */
    tkv_version *versions;
    size_t versions_cap;
    tkv_buf values;
    uint64_t *stamps;
    size_t stamps_cap;
    uint64_t *order; /* indices of keys or items, sorted by slot */
    size_t order_cap;
    uint16_t *slots; /* each key's or item's slot */
    size_t slots_cap;
    tkv_bytes *gkeys; /* the keys in the order of cl->order */
    size_t gkeys_cap;
    tkv_item *gitems; /* the items in that order */
    size_t gitems_cap;
    uint32_t *gstate; /* each group's outcome (G_*), by its first index */
    size_t gstate_cap;
    tkv_buf scan_next;             /* tkv_cluster_scan's cursor: "N:KEY" */
    uint16_t scan_prim[TKV_SLOTS]; /* its list of the map's primaries */
};

/* ---- errors ------------------------------------------------------------- */

static int set_err(tkv_cluster *cl, tkv_errkind kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_err(tkv_cluster *cl, tkv_errkind kind, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->errstr, sizeof cl->errstr, fmt, ap);
    va_end(ap);
    cl->err = kind;
    cl->server_code = code;
    return TKV_ERR;
}

/* A node connection's error, as the handle's. */
static int take_err(tkv_cluster *cl, const tkv_ctx *c)
{
    return set_err(cl, tkv_err(c), tkv_server_code(c), "%s", tkv_errstr(c));
}

static void clear_err(tkv_cluster *cl)
{
    cl->err = TKV_EK_NONE;
    cl->server_code = 0;
    cl->errstr[0] = '\0';
}

/* Errors after which a context is of no further use (client.h). */
static bool broken(const tkv_ctx *c)
{
    tkv_errkind k = tkv_err(c);
    return k != TKV_EK_NONE && k != TKV_EK_SERVER && k != TKV_EK_USAGE && k != TKV_EK_READONLY;
}

/* ---- nodes ---------------------------------------------------------------- */

/* "host:port", the last colon splitting (and "[v6]:port" unbracketed). */
static int split_addr(const char *addr, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr)
        return -1;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end || p == 0 || p > 65535 || colon[1] < '0' || colon[1] > '9')
        return -1;
    size_t n = (size_t)(colon - addr);
    if (addr[0] == '[' && n > 2 && addr[n - 1] == ']') {
        addr++;
        n -= 2;
    }
    if (n >= hostlen)
        return -1;
    memcpy(host, addr, n);
    host[n] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* The node with this address, added if new; -1 if out of memory or room. */
static long node_index(tkv_cluster *cl, const char *addr)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (strcmp(cl->nodes[i].addr, addr) == 0)
            return (long)i;
    if (cl->nnodes >= MAX_NODES ||
        tkv_grow(&cl->nodes, &cl->nodes_cap, cl->nnodes + 1, sizeof(cl_node), 8) < 0)
        return -1;
    char *copy = strdup(addr);
    if (!copy)
        return -1;
    cl->nodes[cl->nnodes] = (cl_node){.addr = copy};
    return (long)cl->nnodes++;
}

/* A working connection to node i, opened (and authenticated) if needed. */
static tkv_ctx *node_ctx(tkv_cluster *cl, size_t i)
{
    cl_node *nd = &cl->nodes[i];
    if (nd->ctx && !broken(nd->ctx))
        return nd->ctx;
    tkv_free(nd->ctx);
    nd->ctx = NULL;
    char host[256];
    uint16_t port;
    if (split_addr(nd->addr, host, sizeof host, &port) < 0) {
        set_err(cl, TKV_EK_PROTOCOL, 0, "the map names a node at '%s', not HOST:PORT", nd->addr);
        return NULL;
    }
    tkv_ctx *c = tkv_connect(host, port, cl->timeout_ms);
    if (!c) {
        set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
        return NULL;
    }
    if (tkv_err(c) == TKV_EK_NONE && cl->secret)
        tkv_auth(c, cl->secret, strlen(cl->secret));
    if (tkv_err(c) != TKV_EK_NONE) {
        set_err(cl, tkv_err(c), tkv_server_code(c), "%s: %s", nd->addr, tkv_errstr(c));
        tkv_free(c);
        return NULL;
    }
    return nd->ctx = c;
}

/* ---- the map ---------------------------------------------------------------- */

/* Takes the map from node i. The table is rebuilt whole: a slot the new
 * map leaves out has no node (a server sends full maps, but the handle
 * does not rely on it). */
static int fetch_map(tkv_cluster *cl, size_t i)
{
    tkv_ctx *c = node_ctx(cl, i);
    if (!c)
        return TKV_ERR;
    const tkv_slot_range *r;
    size_t n;
    uint64_t rev;
    if (tkv_cluster_shards(c, &rev, &r, &n) != TKV_OK)
        return take_err(cl, c);
    uint16_t table[TKV_SLOTS];
    for (size_t s = 0; s < TKV_SLOTS; s++)
        table[s] = NO_NODE;
    for (size_t k = 0; k < n; k++) {
        /* Node numbers are stable: adding one never moves another. */
        long ix = node_index(cl, r[k].primary);
        if (ix < 0)
            return set_err(cl, TKV_EK_NOMEM, 0, "out of memory (or over %d nodes)", MAX_NODES);
        for (unsigned s = r[k].from; s <= r[k].to; s++)
            table[s] = (uint16_t)ix;
    }
    memcpy(cl->slot_node, table, sizeof table);
    cl->revision = rev;
    return TKV_OK;
}

/* Tries node `first` (if >= 0), then every known node, then the seeds. */
static int refresh_from(tkv_cluster *cl, long first)
{
    if (first >= 0 && fetch_map(cl, (size_t)first) == TKV_OK)
        return TKV_OK;
    for (size_t i = 0; i < cl->nnodes; i++)
        if ((long)i != first && fetch_map(cl, i) == TKV_OK)
            return TKV_OK;
    for (size_t k = 0; k < cl->nseeds; k++) {
        long ix = node_index(cl, cl->seeds[k]);
        if (ix < 0)
            return set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
        if (fetch_map(cl, (size_t)ix) == TKV_OK)
            return TKV_OK;
    }
    return TKV_ERR; /* the last failure's error stays */
}

int tkv_cluster_refresh(tkv_cluster *cl)
{
    if (refresh_from(cl, -1) != TKV_OK)
        return TKV_ERR;
    clear_err(cl);
    return TKV_OK;
}

/* A MOVED's message is "SLOT HOST:PORT" (client errors read "MOVED: ..."):
 * ask the node it names for the map first - it has the newer one - and if
 * no node answers, at least send this slot there. */
static int follow_moved(tkv_cluster *cl, uint16_t slot, const char *errstr)
{
    const char *msg = strstr(errstr, ": ");
    msg = msg ? msg + 2 : errstr;
    const char *sp = strchr(msg, ' ');
    long ix = sp ? node_index(cl, sp + 1) : -1;
    if (refresh_from(cl, ix) == TKV_OK)
        return TKV_OK;
    if (ix < 0)
        return TKV_ERR;
    cl->slot_node[slot] = (uint16_t)ix;
    return TKV_OK;
}

/* ---- routing ------------------------------------------------------------------ */

static tkv_ctx *slot_ctx(tkv_cluster *cl, uint16_t slot)
{
    uint16_t ix = cl->slot_node[slot];
    if (ix == NO_NODE) {
        set_err(cl, TKV_EK_USAGE, 0, "slot %u has no node in the cluster's map", slot);
        return NULL;
    }
    return node_ctx(cl, ix);
}

/* The connection to the node an ASK names ("SLOT HOST:PORT"). */
static tkv_ctx *ask_ctx(tkv_cluster *cl, const char *errstr)
{
    const char *msg = strstr(errstr, ": ");
    msg = msg ? msg + 2 : errstr;
    const char *sp = strchr(msg, ' ');
    long ix = sp ? node_index(cl, sp + 1) : -1;
    if (ix < 0) {
        set_err(cl, TKV_EK_PROTOCOL, TKV_SC_ASK, "an ASK that names no node: %s", errstr);
        return NULL;
    }
    return node_ctx(cl, (size_t)ix);
}

/* TRYAGAIN's pause before try n: 1 ms doubling to 64 ms (about 2 s over
 * TRYAGAIN_TRIES): a key is locked while it moves, which takes a few
 * round trips, unless its history is deep. */
#define TRYAGAIN_TRIES 36
#define MOVED_FOLLOWS 20 /* about 1 s of pauses: a node reads the map every 0.5 s */
static void pause_before(int n)
{
    long ms = n < 6 ? 1L << n : 64;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs fn at the slot's node and follows what a cluster answers: MOVED
 * (a new map; more than once only while nodes disagree, with pauses), ASK (once per answer: ASKING then fn at the target,
 * the map unchanged - the move is not over), TRYAGAIN after a pause, a
 * bounded number of times. A request so answered was not carried out, so
 * running it again is safe. */
static int route(tkv_cluster *cl, uint16_t slot, tkv_cluster_fn fn, void *arg)
{
    int moved = 0, asked = 0, tries = 0;
    tkv_ctx *ask = NULL;
    for (;;) {
        tkv_ctx *c = ask ? ask : slot_ctx(cl, slot);
        if (!c)
            return TKV_ERR;
        int rc = ask && tkv_asking(c) != TKV_OK ? TKV_ERR : fn(c, arg);
        ask = NULL;
        if (rc != TKV_ERR) {
            clear_err(cl);
            return rc;
        }
        take_err(cl, c);
        int code = tkv_err(c) == TKV_EK_SERVER ? tkv_server_code(c) : 0;
        char why[sizeof cl->errstr];
        memcpy(why, cl->errstr, sizeof why);
        if (code == TKV_SC_MOVED && moved < MOVED_FOLLOWS) {
            /* Two nodes may disagree for the moment a new map takes to
             * reach both (the end of a migration): a MOVED back after one
             * followed waits a little. */
            if (moved++ > 0)
                pause_before(moved + 2);
            if (follow_moved(cl, slot, why) != TKV_OK)
                return TKV_ERR;
        } else if (code == TKV_SC_ASK && asked++ < 4) {
            if (!(ask = ask_ctx(cl, why)))
                return TKV_ERR;
        } else if (code == TKV_SC_TRYAGAIN && tries < TRYAGAIN_TRIES) {
            pause_before(tries++);
        } else {
            return TKV_ERR;
        }
    }
}

unsigned tkv_key_slot(const void *key, size_t klen) { return tkv_slot(key, klen); }

tkv_ctx *tkv_cluster_node(tkv_cluster *cl, const void *key, size_t klen)
{
    tkv_ctx *c = slot_ctx(cl, tkv_slot(key, klen));
    if (c)
        clear_err(cl);
    return c;
}

int tkv_cluster_call(tkv_cluster *cl, const void *key, size_t klen, tkv_cluster_fn fn, void *arg)
{
    return route(cl, tkv_slot(key, klen), fn, arg);
}

/* ---- the handle ------------------------------------------------------------------ */

tkv_cluster *tkv_cluster_connect(const char *const *seeds, size_t n, int timeout_ms,
                                 const char *secret)
{
    tkv_cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->timeout_ms = timeout_ms;
    for (size_t s = 0; s < TKV_SLOTS; s++)
        cl->slot_node[s] = NO_NODE;
    if ((secret && !(cl->secret = strdup(secret))) ||
        (n && !(cl->seeds = calloc(n, sizeof(char *))))) {
        tkv_cluster_free(cl);
        return NULL;
    }
    for (size_t k = 0; k < n; k++) {
        if (!(cl->seeds[k] = strdup(seeds[k] ? seeds[k] : ""))) {
            tkv_cluster_free(cl);
            return NULL;
        }
        cl->nseeds++;
    }
    if (n == 0)
        set_err(cl, TKV_EK_USAGE, 0, "no seed address given");
    else if (tkv_cluster_refresh(cl) != TKV_OK && cl->err == TKV_EK_NONE)
        set_err(cl, TKV_EK_IO, 0, "no seed answered");
    return cl;
}

void tkv_cluster_free(tkv_cluster *cl)
{
    if (!cl)
        return;
    for (size_t i = 0; i < cl->nnodes; i++) {
        tkv_free(cl->nodes[i].ctx);
        free(cl->nodes[i].addr);
    }
    for (size_t k = 0; k < cl->nseeds; k++)
        free(cl->seeds[k]);
    free(cl->seeds);
    free(cl->secret);
    free(cl->nodes);
    free(cl->versions);
    tkv_buf_deinit(&cl->values);
    free(cl->stamps);
    free(cl->order);
    free(cl->slots);
    free(cl->gkeys);
    free(cl->gitems);
    free(cl->gstate);
    tkv_buf_deinit(&cl->scan_next);
    free(cl);
}

tkv_errkind tkv_cluster_err(const tkv_cluster *cl) { return cl->err; }
const char *tkv_cluster_errstr(const tkv_cluster *cl) { return cl->errstr; }
int tkv_cluster_server_code(const tkv_cluster *cl) { return cl->server_code; }
uint64_t tkv_cluster_revision(const tkv_cluster *cl) { return cl->revision; }

/* ---- CLUSTER SHARDS on one connection --------------------------------------------- */

int tkv_cluster_shards(tkv_ctx *c, uint64_t *revision, const tkv_slot_range **ranges, size_t *n)
{
    tkv_reply r;
    *ranges = NULL;
    *n = 0;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    tkv_req q = {.cmd = TKV_CMD_CLUSTER, .sub = TKV_CLUSTER_SHARDS};
    if (cl_append_req(c, &q) < 0 || tkv_read_reply(c, &r) != TKV_OK)
        return TKV_ERR;
    *ranges = c->ranges;
    *n = r.n;
    if (revision)
        *revision = c->map_revision;
    return TKV_OK;
}

/* ---- single-key calls ------------------------------------------------------------- */

typedef struct kcall {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    uint64_t ts, ttl, from, to;
    int has_ts;
    uint64_t *out_u;
    tkv_version *out_v;
    const tkv_range_opts *ropts;
    const tkv_entry **entries;
    size_t *n;
    int *truncated;
} kcall;

static int k_put(tkv_ctx *c, void *arg)
{
    kcall *k = arg;
    return tkv_put_ex(c, k->key, k->klen, k->val, k->vlen, k->ts, k->has_ts, k->ttl, k->out_u);
}

static int k_get(tkv_ctx *c, void *arg)
{
    kcall *k = arg;
    return tkv_get(c, k->key, k->klen, k->ts, k->out_v);
}

static int k_del(tkv_ctx *c, void *arg)
{
    kcall *k = arg;
    return tkv_del(c, k->key, k->klen, k->out_u);
}

static int k_count(tkv_ctx *c, void *arg)
{
    kcall *k = arg;
    return tkv_count(c, k->key, k->klen, k->from, k->to, k->out_u);
}

static int k_range(tkv_ctx *c, void *arg)
{
    kcall *k = arg;
    return tkv_range(c, k->key, k->klen, k->ropts, k->entries, k->n, k->truncated);
}

int tkv_cluster_put_ex(tkv_cluster *cl, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ts, int has_ts, uint64_t ttl_us, uint64_t *out_ts)
{
    kcall k = {.key = key,
               .klen = klen,
               .val = val,
               .vlen = vlen,
               .ts = ts,
               .has_ts = has_ts,
               .ttl = ttl_us,
               .out_u = out_ts};
    return tkv_cluster_call(cl, key, klen, k_put, &k);
}

int tkv_cluster_get(tkv_cluster *cl, const void *key, size_t klen, uint64_t ts, tkv_version *out)
{
    kcall k = {.key = key, .klen = klen, .ts = ts, .out_v = out};
    return tkv_cluster_call(cl, key, klen, k_get, &k);
}

int tkv_cluster_del(tkv_cluster *cl, const void *key, size_t klen, uint64_t *removed)
{
    kcall k = {.key = key, .klen = klen, .out_u = removed};
    return tkv_cluster_call(cl, key, klen, k_del, &k);
}

int tkv_cluster_count(tkv_cluster *cl, const void *key, size_t klen, uint64_t from, uint64_t to,
                      uint64_t *n)
{
    kcall k = {.key = key, .klen = klen, .from = from, .to = to, .out_u = n};
    return tkv_cluster_call(cl, key, klen, k_count, &k);
}

int tkv_cluster_range(tkv_cluster *cl, const void *key, size_t klen, const tkv_range_opts *opts,
                      const tkv_entry **entries, size_t *n, int *truncated)
{
    kcall k = {.key = key,
               .klen = klen,
               .ropts = opts,
               .entries = entries,
               .n = n,
               .truncated = truncated};
    return tkv_cluster_call(cl, key, klen, k_range, &k);
}

/* ---- multi-key calls -------------------------------------------------------------- */

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* cl->order: 0..n-1 sorted by slot, within a slot in the caller's order
 * (each sorted as slot << 32 | index: no comparison context needed, and
 * the library keeps no global state); cl->slots: each one's slot. */
static int group_by_slot(tkv_cluster *cl, size_t n, const tkv_bytes *keys, const tkv_item *items)
{
    if (n == 0)
        return TKV_OK; /* nothing to sort: qsort takes no NULL array */
    if (n > UINT32_MAX || tkv_grow(&cl->order, &cl->order_cap, n, sizeof(uint64_t), n) < 0 ||
        tkv_grow(&cl->slots, &cl->slots_cap, n, sizeof(uint16_t), n) < 0)
        return set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
    for (size_t i = 0; i < n; i++) {
        tkv_bytes k = keys ? keys[i] : items[i].key;
        cl->slots[i] = tkv_slot(k.ptr, k.len);
        cl->order[i] = (uint64_t)cl->slots[i] << 32 | i;
    }
    qsort(cl->order, n, sizeof(uint64_t), u64_cmp);
    for (size_t i = 0; i < n; i++)
        cl->order[i] &= UINT32_MAX;
    return TKV_OK;
}

/* The end of the group of equal slots that starts at order[i]. */
static size_t group_end(const tkv_cluster *cl, size_t i, size_t n)
{
    size_t j = i + 1;
    while (j < n && cl->slots[cl->order[j]] == cl->slots[cl->order[i]])
        j++;
    return j;
}

typedef struct mcall {
    uint64_t ts;
    const tkv_bytes *keys;
    const tkv_item *items;
    size_t n;
    const tkv_version *out;
    const uint64_t *stamps;
} mcall;

static int m_get(tkv_ctx *c, void *arg)
{
    mcall *m = arg;
    return tkv_mget(c, m->ts, m->keys, m->n, &m->out);
}

static int m_put(tkv_ctx *c, void *arg)
{
    mcall *m = arg;
    return tkv_mput(c, m->items, m->n, &m->stamps);
}

/* Copies one group's answers to their places; values into cl->values, as
 * offsets until every group is in (the buffer may move as it grows). */
static int keep_answers(tkv_cluster *cl, size_t i, size_t j, const tkv_version *got)
{
    for (size_t g = 0; g < j - i; g++) {
        tkv_version v = got[g];
        size_t off = cl->values.len;
        if (v.status == TKV_OK && tkv_buf_append(&cl->values, v.value, v.len) < 0)
            return set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
        v.value = v.status == TKV_OK ? (const uint8_t *)(uintptr_t)off : NULL;
        cl->versions[cl->order[i + g]] = v;
    }
    return TKV_OK;
}

/* A group's outcome, by its first index in cl->order. */
#define G_SENT_MAX (UINT32_MAX - 2) /* below: sent to that node */
#define G_REDO (UINT32_MAX - 1)     /* to run again alone (MOVED, cut short, not sent) */
#define G_DONE UINT32_MAX

/* The pipelined pass of MGET and MPUT: every group's request appended at
 * its node, every node flushed (so the nodes work at once), then each
 * reply read, in the order appended. A group that cannot be sent, is
 * MOVED or comes back cut short (an MGET above the frame) is marked
 * G_REDO for the blocking pass; any other error is kept (the first) and
 * the rest still read, so no connection is left with replies pending. */
typedef struct mpass {
    bool put;
    uint64_t ts;
    size_t written; /* MPUT: items acknowledged */
    bool failed;
} mpass;

static void send_group(tkv_cluster *cl, mpass *p, size_t i, size_t j)
{
    uint16_t ix = cl->slot_node[cl->slots[cl->order[i]]];
    tkv_ctx *c = ix == NO_NODE ? NULL : node_ctx(cl, ix);
    int rc = !c       ? TKV_ERR
             : p->put ? tkv_append_mput(c, cl->gitems + i, j - i)
                      : tkv_append_mget(c, p->ts, cl->gkeys + i, j - i);
    cl->gstate[i] = rc == TKV_OK ? ix : G_REDO;
}

static void read_group(tkv_cluster *cl, mpass *p, size_t i, size_t j)
{
    tkv_ctx *c = cl->nodes[cl->gstate[i]].ctx;
    tkv_reply r;
    int rc = tkv_read_reply(c, &r);
    cl->gstate[i] = G_DONE;
    if (rc == TKV_ERR) {
        int code = tkv_err(c) == TKV_EK_SERVER ? tkv_server_code(c) : 0;
        if (code == TKV_SC_MOVED || code == TKV_SC_ASK || code == TKV_SC_TRYAGAIN) {
            cl->gstate[i] = G_REDO; /* route() follows it */
        } else if (!p->failed) {
            p->failed = true;
            take_err(cl, c);
        }
        return;
    }
    if (r.n != j - i || (!p->put && r.truncated)) {
        cl->gstate[i] = G_REDO; /* tkv_mget() alone continues a cut reply */
        return;
    }
    if (p->put) {
        for (size_t g = i; g < j; g++)
            cl->stamps[cl->order[g]] = r.stamps[g - i];
        p->written += j - i;
    } else if (keep_answers(cl, i, j, r.versions) < 0) {
        p->failed = true;
    }
}

static int run_groups(tkv_cluster *cl, mpass *p, size_t n)
{
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(cl, i, n);
        send_group(cl, p, i, j);
    }
    for (size_t k = 0; k < cl->nnodes; k++)
        if (cl->nodes[k].ctx && tkv_pending(cl->nodes[k].ctx))
            tkv_flush(cl->nodes[k].ctx); /* an error sticks: read_group sees it */
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(cl, i, n);
        if (cl->gstate[i] <= G_SENT_MAX)
            read_group(cl, p, i, j);
    }
    if (p->failed)
        return TKV_ERR;
    /* Alone now, each with MOVED followed (and an MGET continued). */
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(cl, i, n);
        if (cl->gstate[i] != G_REDO)
            continue;
        mcall m = {.ts = p->ts, .keys = cl->gkeys + i, .items = cl->gitems + i, .n = j - i};
        if (route(cl, cl->slots[cl->order[i]], p->put ? m_put : m_get, &m) != TKV_OK)
            return TKV_ERR;
        if (p->put) {
            for (size_t g = i; g < j; g++)
                cl->stamps[cl->order[g]] = m.stamps[g - i];
            p->written += j - i;
        } else if (keep_answers(cl, i, j, m.out) < 0) {
            return TKV_ERR;
        }
    }
    return TKV_OK;
}

/* Sorts n keys (or items) into groups and sizes what the passes use. */
static int prepare(tkv_cluster *cl, size_t n, const tkv_bytes *keys, const tkv_item *items)
{
    if (group_by_slot(cl, n, keys, items) < 0 ||
        tkv_grow(&cl->gstate, &cl->gstate_cap, n, sizeof(uint32_t), n) < 0 ||
        (keys && tkv_grow(&cl->gkeys, &cl->gkeys_cap, n, sizeof(tkv_bytes), n) < 0) ||
        (items && tkv_grow(&cl->gitems, &cl->gitems_cap, n, sizeof(tkv_item), n) < 0))
        return set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
    for (size_t g = 0; g < n; g++) {
        if (keys)
            cl->gkeys[g] = keys[cl->order[g]];
        else
            cl->gitems[g] = items[cl->order[g]];
    }
    return TKV_OK;
}

int tkv_cluster_mget(tkv_cluster *cl, uint64_t ts, const tkv_bytes *keys, size_t n,
                     const tkv_version **out)
{
    *out = NULL;
    if (prepare(cl, n, keys, NULL) < 0 ||
        tkv_grow(&cl->versions, &cl->versions_cap, n, sizeof(tkv_version), n) < 0)
        return set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
    tkv_buf_reset(&cl->values);
    mpass p = {.ts = ts};
    if (run_groups(cl, &p, n) != TKV_OK)
        return TKV_ERR;
    static const uint8_t empty[1];
    for (size_t i = 0; i < n; i++) {
        tkv_version *v = &cl->versions[i];
        if (v->status == TKV_OK)
            v->value = cl->values.data ? cl->values.data + (uintptr_t)v->value : empty;
    }
    *out = cl->versions;
    clear_err(cl);
    return TKV_OK;
}

int tkv_cluster_mput(tkv_cluster *cl, const tkv_item *items, size_t n, const uint64_t **stamps)
{
    if (stamps)
        *stamps = NULL;
    if (prepare(cl, n, NULL, items) < 0 ||
        tkv_grow(&cl->stamps, &cl->stamps_cap, n, sizeof(uint64_t), n) < 0)
        return set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
    mpass p = {.put = true};
    if (run_groups(cl, &p, n) != TKV_OK) {
        /* Say what is written: a caller cannot tell otherwise. */
        char why[sizeof cl->errstr];
        memcpy(why, cl->errstr, sizeof why);
        return set_err(cl, cl->err, cl->server_code,
                       "%s (%zu of %zu items, in other slots, were written)", why, p.written, n);
    }
    if (stamps)
        *stamps = cl->stamps;
    clear_err(cl);
    return TKV_OK;
}

/* ---- SCAN across nodes ----------------------------------------------------------- */

/* The map's primaries, in slot order of first appearance: node indices
 * into out (at most TKV_SLOTS); returns how many. */
static size_t primaries(const tkv_cluster *cl, uint16_t *out)
{
    size_t n = 0;
    for (size_t s = 0; s < TKV_SLOTS; s++) {
        uint16_t ix = cl->slot_node[s];
        bool seen = ix == NO_NODE;
        for (size_t k = 0; k < n && !seen; k++)
            seen = out[k] == ix;
        if (!seen)
            out[n++] = ix;
    }
    return n;
}

/* "N:KEY" -> node place N and KEY (ptr NULL if empty: the node's start).
 * -1 if it is not such a cursor. */
static int parse_cursor(tkv_bytes c, size_t *place, tkv_bytes *sub)
{
    const char *p = c.ptr, *colon = c.ptr ? memchr(c.ptr, ':', c.len) : NULL;
    if (!colon || colon == p || colon - p > 5)
        return -1;
    size_t v = 0;
    for (const char *q = p; q < colon; q++) {
        if (*q < '0' || *q > '9')
            return -1;
        v = v * 10 + (size_t)(*q - '0');
    }
    *place = v;
    size_t rest = c.len - (size_t)(colon + 1 - p);
    *sub = rest ? (tkv_bytes){colon + 1, rest} : (tkv_bytes){NULL, 0};
    return 0;
}

static int set_next(tkv_cluster *cl, size_t place, tkv_bytes sub, tkv_bytes *next)
{
    char head[16];
    int hn = snprintf(head, sizeof head, "%zu:", place);
    cl->scan_next.len = 0;
    if (tkv_buf_append(&cl->scan_next, head, (size_t)hn) < 0 ||
        (sub.len && tkv_buf_append(&cl->scan_next, sub.ptr, sub.len) < 0))
        return set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
    *next = (tkv_bytes){(const char *)cl->scan_next.data, cl->scan_next.len};
    return TKV_OK;
}

int tkv_cluster_scan(tkv_cluster *cl, const void *prefix, size_t plen, tkv_bytes cursor,
                     uint32_t count, const tkv_bytes **keys, size_t *n, tkv_bytes *next)
{
    uint16_t *prim = cl->scan_prim;
    size_t np = primaries(cl, prim), place = 0;
    tkv_bytes sub = {NULL, 0};
    *keys = NULL;
    *n = 0;
    *next = (tkv_bytes){NULL, 0};
    if (cursor.ptr && parse_cursor(cursor, &place, &sub) < 0)
        return set_err(cl, TKV_EK_USAGE, 0, "not a cluster SCAN cursor (\"N:KEY\")");
    if (place >= np && np > 0)
        return set_err(cl, TKV_EK_USAGE, 0,
                       "cluster SCAN cursor names node %zu, but the map has %zu primaries (it "
                       "changed since the cursor was given: start again)",
                       place, np);
    for (; place < np; place++, sub = (tkv_bytes){NULL, 0}) {
        tkv_ctx *c = node_ctx(cl, prim[place]);
        if (!c)
            return TKV_ERR;
        const tkv_bytes *k;
        size_t kn;
        tkv_bytes nx;
        if (tkv_scan(c, prefix, plen, sub, count, &k, &kn, &nx) != TKV_OK)
            return take_err(cl, c);
        /* Only the keys this node serves by the map: a slot on the move
         * has copies at both ends for a moment. */
        if (kn && tkv_grow(&cl->gkeys, &cl->gkeys_cap, kn, sizeof(tkv_bytes), kn) < 0)
            return set_err(cl, TKV_EK_NOMEM, 0, "out of memory");
        size_t kept = 0;
        for (size_t i = 0; i < kn; i++)
            if (cl->slot_node[tkv_slot(k[i].ptr, k[i].len)] == prim[place])
                cl->gkeys[kept++] = k[i];
        int rc = TKV_OK;
        if (nx.ptr)
            rc = set_next(cl, place, nx, next);
        else if (place + 1 < np)
            rc = set_next(cl, place + 1, (tkv_bytes){NULL, 0}, next);
        if (rc != TKV_OK)
            return rc;
        if (kept || nx.ptr || place + 1 == np) {
            *keys = cl->gkeys;
            *n = kept;
            clear_err(cl);
            return TKV_OK;
        }
    }
    clear_err(cl);
    return TKV_OK; /* past the last node: nothing more */
}
