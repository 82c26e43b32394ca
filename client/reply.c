/*
 * reply.c - turns reply frames into tkv_reply. protocol/reply.c decodes
 * and checks them (every count against the frame's bytes, every field's
 * type, fields a newer server appends skipped); this file only copies the
 * decoded lists into the context's arrays, whose sizes are therefore
 * bounded by the frame, and maps the protocol's types onto the public ones.
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "reply.h"

static int bad_reply(tkv_ctx *c, const tkv_rep *rep)
{
    return cl_set_err(c, TKV_EK_PROTOCOL, "malformed reply to %s: %s", tkv_cmd_name(rep->cmd),
                      rep->what ? rep->what : "?");
}

static void to_version(const tkv_rep_answer *a, tkv_version *v)
{
    memset(v, 0, sizeof *v);
    v->status = a->status == TKV_ST_OK ? TKV_OK : TKV_NOT_FOUND;
    v->value = a->value.ptr;
    v->len = a->value.len;
    v->ts = a->ts;
    v->expires = a->expires.v;
    v->has_next = a->next.has;
    v->next = a->next.v;
    v->miss = (int)(a->miss > 255 ? 255 : a->miss);
    v->at = a->at.v;
}

static int copy_mget(tkv_ctx *c, tkv_rep *rep, tkv_reply *r)
{
    if (cl_grow(c, (void **)&c->versions, &c->versions_cap, rep->list.n, sizeof(tkv_version)) < 0)
        return TKV_ERR;
    r->n = rep->list.n;
    tkv_rep_answer a;
    for (size_t i = 0; tkv_rep_next_answer(&rep->list, &a); i++)
        to_version(&a, &c->versions[i]);
    r->versions = c->versions;
    r->truncated = rep->truncated;
    return 0;
}

static int copy_mput(tkv_ctx *c, tkv_rep *rep, tkv_reply *r)
{
    if (cl_grow(c, (void **)&c->stamps, &c->stamps_cap, rep->list.n, sizeof(uint64_t)) < 0)
        return TKV_ERR;
    r->n = rep->list.n;
    uint64_t ts;
    for (size_t i = 0; tkv_rep_next_uint(&rep->list, &ts); i++)
        c->stamps[i] = ts;
    r->stamps = c->stamps;
    return 0;
}

static int copy_scan(tkv_ctx *c, tkv_rep *rep, tkv_reply *r)
{
    if (cl_grow(c, (void **)&c->keys, &c->keys_cap, rep->list.n, sizeof(tkv_bytes)) < 0)
        return TKV_ERR;
    r->n = rep->list.n;
    tkv_span k;
    for (size_t i = 0; tkv_rep_next_key(&rep->list, &k); i++)
        c->keys[i] = (tkv_bytes){k.ptr, k.len};
    r->keys = c->keys;
    if (rep->cursor.ptr)
        r->cursor = (tkv_bytes){rep->cursor.ptr, rep->cursor.len};
    return 0;
}

static int copy_range(tkv_ctx *c, tkv_rep *rep, tkv_reply *r)
{
    if (cl_grow(c, (void **)&c->entries, &c->entries_cap, rep->list.n, sizeof(tkv_entry)) < 0)
        return TKV_ERR;
    r->n_entries = rep->list.n;
    tkv_rep_entry e;
    for (size_t i = 0; tkv_rep_next_entry(&rep->list, &e); i++)
        c->entries[i] = (tkv_entry){e.ts, e.value.ptr, e.value.len, e.expires};
    r->entries = c->entries;
    r->truncated = rep->truncated;
    return 0;
}

/* Copies a string into strbuf with a NUL; returns its offset or -1. */
static long keep_str(tkv_ctx *c, tkv_span s)
{
    size_t off = c->strbuf.len;
    static const uint8_t nul = 0;
    if (tkv_buf_append(&c->strbuf, s.ptr, s.len) < 0 || tkv_buf_append(&c->strbuf, &nul, 1) < 0)
        return -1;
    return (long)off;
}

static int copy_stats(tkv_ctx *c, tkv_rep *rep, tkv_reply *r)
{
    size_t n = rep->list.n;
    if (cl_grow(c, (void **)&c->stats, &c->stats_cap, n, sizeof(tkv_stat)) < 0)
        return TKV_ERR;
    tkv_buf_reset(&c->strbuf);
    /* Offsets first: strbuf may move while it grows. */
    tkv_rep_stat s;
    for (size_t i = 0; tkv_rep_next_stat(&rep->list, &s); i++) {
        long name_off = keep_str(c, s.name), str_off = s.is_str ? keep_str(c, s.str) : 0;
        if (name_off < 0 || str_off < 0)
            return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
        c->stats[i] = (tkv_stat){.name = (const char *)(uintptr_t)name_off,
                                 .num = s.num,
                                 .is_str = s.is_str,
                                 .str = (const char *)(uintptr_t)str_off};
    }
    for (size_t i = 0; i < n; i++) {
        const char *base = (const char *)c->strbuf.data;
        c->stats[i].name = base + (uintptr_t)c->stats[i].name;
        c->stats[i].str = c->stats[i].is_str ? base + (uintptr_t)c->stats[i].str : NULL;
    }
    r->stats = c->stats;
    r->n_stats = n;
    return 0;
}

/* CLUSTER SHARDS into c->ranges: addresses copied into strbuf and the
 * replicas' into one array, each kept as an offset or index until all are
 * in (both may move while they grow). The counts are bounded by the frame:
 * the decoder checked every element. */
static int copy_shards(tkv_ctx *c, tkv_rep *rep)
{
    size_t n = rep->list.n, naddr = 0;
    if (cl_grow(c, (void **)&c->ranges, &c->ranges_cap, n, sizeof(tkv_slot_range)) < 0)
        return TKV_ERR;
    tkv_buf_reset(&c->strbuf);
    tkv_rep_slots s;
    tkv_span a;
    for (size_t i = 0; tkv_rep_next_slots(&rep->list, &s); i++) {
        if (s.from > s.to || s.to >= TKV_CLUSTER_SLOTS) {
            rep->what = "slot range";
            return bad_reply(c, rep);
        }
        long p = keep_str(c, s.primary);
        if (p < 0 || cl_grow(c, (void **)&c->range_addrs, &c->range_addrs_cap, naddr + s.replicas.n,
                             sizeof(char *)) < 0)
            return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
        c->ranges[i] = (tkv_slot_range){.from = (unsigned)s.from,
                                        .to = (unsigned)s.to,
                                        .primary = (const char *)(uintptr_t)p,
                                        .replicas = (const char *const *)(uintptr_t)naddr,
                                        .n_replicas = s.replicas.n};
        while (tkv_rep_next_key(&s.replicas, &a)) {
            long q = keep_str(c, a);
            if (q < 0)
                return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
            c->range_addrs[naddr++] = (const char *)(uintptr_t)q;
        }
    }
    const char *base = (const char *)c->strbuf.data;
    for (size_t i = 0; i < naddr; i++)
        c->range_addrs[i] = base + (uintptr_t)c->range_addrs[i];
    for (size_t i = 0; i < n; i++) {
        c->ranges[i].primary = base + (uintptr_t)c->ranges[i].primary;
        uintptr_t first = (uintptr_t)c->ranges[i].replicas;
        c->ranges[i].replicas = c->ranges[i].n_replicas ? c->range_addrs + first : NULL;
    }
    c->map_revision = rep->u;
    return 0;
}

/* SLOWLOG GET into c->slow: command names and addresses copied into
 * strbuf (kept as offsets until all are in: it may move while it grows),
 * keys pointing into the reply. */
static int copy_slowlog(tkv_ctx *c, tkv_rep *rep, tkv_reply *r)
{
    size_t n = rep->list.n;
    r->count = rep->u;
    r->n = n;
    if (n == 0)
        return 0;
    if (cl_grow(c, (void **)&c->slow, &c->slow_cap, n, sizeof(tkv_slowlog_entry)) < 0)
        return TKV_ERR;
    tkv_buf_reset(&c->strbuf);
    tkv_rep_slow e;
    for (size_t i = 0; tkv_rep_next_slow(&rep->list, &e); i++) {
        long cmd = keep_str(c, e.cmd), client = keep_str(c, e.client);
        if (cmd < 0 || client < 0)
            return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
        c->slow[i] = (tkv_slowlog_entry){.id = e.id,
                                         .time_us = e.time_us,
                                         .duration_us = e.duration_us,
                                         .cmd = (const char *)(uintptr_t)cmd,
                                         .key = e.key.ptr,
                                         .key_len = e.key.len,
                                         .key_full_len = (size_t)e.key_len,
                                         .client = (const char *)(uintptr_t)client};
    }
    const char *base = (const char *)c->strbuf.data;
    for (size_t i = 0; i < n; i++) {
        c->slow[i].cmd = base + (uintptr_t)c->slow[i].cmd;
        c->slow[i].client = base + (uintptr_t)c->slow[i].client;
    }
    r->slowlog = c->slow;
    return 0;
}

static int copy_ok(tkv_ctx *c, tkv_rep *rep, tkv_reply *r)
{
    switch (rep->cmd) {
    case TKV_CMD_PING:
        r->text = rep->text.s.ptr;
        r->text_len = rep->text.s.len;
        return 0;
    case TKV_CMD_PUT: r->ts = rep->u; return 0;
    case TKV_CMD_COUNT:
    case TKV_CMD_WAIT: r->count = rep->u; return 0;
    case TKV_CMD_DEL:
        /* [0, removed] or, for a tombstone, [0, ts]: both are set. */
        r->count = r->ts = rep->u;
        return 0;
    case TKV_CMD_GET: to_version(&rep->answer, &r->version); return 0;
    case TKV_CMD_MGET: return copy_mget(c, rep, r);
    case TKV_CMD_MPUT: return copy_mput(c, rep, r);
    case TKV_CMD_SCAN:
    case TKV_CMD_SLOTKEYS: return copy_scan(c, rep, r);
    case TKV_CMD_EXPORTKEY:
        r->text = rep->data.ptr;
        r->text_len = rep->data.len;
        r->ts = rep->horizon.v;          /* the cursor ... */
        r->truncated = rep->horizon.has; /* ... if more pieces follow */
        return 0;
    case TKV_CMD_IMPORTKEY:
    case TKV_CMD_DROPKEY: r->count = rep->u; return 0;
    case TKV_CMD_RANGE: return copy_range(c, rep, r);
    case TKV_CMD_STATS:
    case TKV_CMD_ROLE: return copy_stats(c, rep, r);
    case TKV_CMD_CLUSTER:
        r->n = rep->list.n;
        return copy_shards(c, rep); /* ROLE's map is STATS's shape */
    case TKV_CMD_SLOWLOG: return copy_slowlog(c, rep, r);
    case TKV_CMD_RETAIN: r->retain = (tkv_retain_info){rep->u, rep->horizon.v, rep->flag}; return 0;
    case TKV_CMD_POLICY:
        if (rep->versions.v > UINT32_MAX) {
            rep->what = "versions";
            return bad_reply(c, rep);
        }
        r->policy =
            (tkv_policy_info){(uint32_t)rep->versions.v, rep->age.v, rep->flag, rep->horizon.v};
        return 0;
    case TKV_CMD_RESTORE:
        r->count = rep->u;
        r->skipped = rep->skipped;
        return 0;
    case TKV_CMD_DIGEST:
        if (rep->data.len != TKV_DIGEST_LEN) {
            rep->what = "digest";
            return bad_reply(c, rep);
        }
        memcpy(r->digest.digest, rep->data.ptr, TKV_DIGEST_LEN);
        r->digest.at = rep->at;
        r->digest.keys = rep->nkeys;
        r->digest.versions = rep->nversions;
        return 0;
    default: return 0; /* AUTH, REPLICAOF: [0] */
    }
}

int cl_decode(tkv_ctx *c, int op, const uint8_t *f, size_t n, tkv_reply *r)
{
    memset(r, 0, sizeof *r);
    r->op = op;
    r->status = TKV_ERR;
    tkv_rep rep;
    if (tkv_rep_decode((tkv_cmd)op, f, n, &rep) < 0)
        return bad_reply(c, &rep);
    if (rep.status > TKV_ST_NOT_FOUND)
        return cl_server_error(c, rep.status, rep.errmsg);
    if (copy_ok(c, &rep, r) < 0)
        return TKV_ERR;
    r->status = rep.status == TKV_ST_OK ? TKV_OK : TKV_NOT_FOUND;
    return r->status;
}
