/*
 * commands.c - the blocking calls of libtkvclient: each appends one request
 * and reads its reply.
 */
#include <string.h>

#include "client_int.h"


/* Runs one appended request to completion. */
static int roundtrip(tkv_ctx *c, int appended, tkv_reply *r)
{
    if (appended < 0)
        return TKV_ERR;
    return tkv_read_reply(c, r);
}

int cl_no_backlog(tkv_ctx *c)
{
    if (cl_begin(c) < 0)
        return TKV_ERR;
    if (c->ops_n > 0)
        return cl_set_err(c, TKV_EK_USAGE, "read the %zu pending pipelined replies first",
                          c->ops_n);
    return TKV_OK;
}

int tkv_ping(tkv_ctx *c)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    return roundtrip(c, tkv_append_ping(c), &r);
}

int tkv_auth(tkv_ctx *c, const void *secret, size_t len)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    if (len > UINT32_MAX)
        return cl_set_err(c, TKV_EK_USAGE, "secret too long");
    tkv_req q = {.cmd = TKV_CMD_AUTH, .msg = cl_span(secret, len), .has_msg = true};
    return roundtrip(c, cl_append_req(c, &q), &r);
}

int tkv_put(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen, uint64_t ts,
            uint64_t *out_ts)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_put(c, key, klen, val, vlen, ts), &r);
    if (rc == TKV_OK && out_ts)
        *out_ts = r.ts;
    return rc;
}

int tkv_put_now(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen,
                uint64_t *out_ts)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_put_now(c, key, klen, val, vlen), &r);
    if (rc == TKV_OK && out_ts)
        *out_ts = r.ts;
    return rc;
}

int tkv_get(tkv_ctx *c, const void *key, size_t klen, uint64_t ts, tkv_version *out)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_get(c, key, klen, ts), &r);
    *out = r.version;
    return rc;
}

int tkv_range(tkv_ctx *c, const void *key, size_t klen, const tkv_range_opts *opts,
              const tkv_entry **entries, size_t *n, int *truncated)
{
    tkv_reply r;
    *entries = NULL;
    *n = 0;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_range(c, key, klen, opts), &r);
    *entries = r.entries;
    *n = r.n_entries;
    if (truncated)
        *truncated = r.truncated;
    return rc;
}

int tkv_del(tkv_ctx *c, const void *key, size_t klen, uint64_t *removed)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_del(c, key, klen), &r);
    if (rc == TKV_OK && removed)
        *removed = r.count;
    return rc;
}

int tkv_stats(tkv_ctx *c, const tkv_stat **stats, size_t *n)
{
    tkv_reply r;
    *stats = NULL;
    *n = 0;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_stats(c), &r);
    *stats = r.stats;
    *n = r.n_stats;
    return rc;
}

int tkv_slowlog_get(tkv_ctx *c, uint32_t n, const tkv_slowlog_entry **entries, size_t *count)
{
    tkv_reply r;
    *entries = NULL;
    *count = 0;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_slowlog_get(c, n), &r);
    if (rc == TKV_OK) {
        *entries = r.slowlog;
        *count = r.n;
    }
    return rc;
}

int tkv_slowlog_len(tkv_ctx *c, uint64_t *len)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_slowlog_len(c), &r);
    if (rc == TKV_OK && len)
        *len = r.count;
    return rc;
}

int tkv_slowlog_reset(tkv_ctx *c, uint64_t *removed)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_slowlog_reset(c), &r);
    if (rc == TKV_OK && removed)
        *removed = r.count;
    return rc;
}

int tkv_put_ex(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen, uint64_t ts,
               int has_ts, uint64_t ttl_us, uint64_t *out_ts)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_put_ex(c, key, klen, val, vlen, ts, has_ts, ttl_us), &r);
    if (rc == TKV_OK && out_ts)
        *out_ts = r.ts;
    return rc;
}

int tkv_get_version(tkv_ctx *c, const void *key, size_t klen, int64_t n, tkv_version *out)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_get_version(c, key, klen, n), &r);
    *out = r.version;
    return rc;
}

int tkv_del_at(tkv_ctx *c, const void *key, size_t klen, uint64_t ts, int has_ts, uint64_t *out_ts)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_del_at(c, key, klen, ts, has_ts), &r);
    if (rc == TKV_OK && out_ts)
        *out_ts = r.ts;
    return rc;
}

int tkv_count(tkv_ctx *c, const void *key, size_t klen, uint64_t from, uint64_t to, uint64_t *n)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_count(c, key, klen, from, to), &r);
    if (rc == TKV_OK && n)
        *n = r.count;
    return rc;
}

int tkv_retain(tkv_ctx *c, const void *key, size_t klen, uint32_t versions, uint64_t age_us,
               int dry_run, tkv_retain_info *out)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_retain(c, key, klen, versions, age_us, dry_run), &r);
    if (rc == TKV_OK && out)
        *out = r.retain;
    return rc;
}

int tkv_policy(tkv_ctx *c, const void *key, size_t klen, tkv_policy_info *out)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_policy(c, key, klen), &r);
    if (rc == TKV_OK && out)
        *out = r.policy;
    return rc;
}

int tkv_mput(tkv_ctx *c, const tkv_item *items, size_t n, const uint64_t **stamps)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_mput(c, items, n), &r);
    if (stamps)
        *stamps = rc == TKV_OK ? r.stamps : NULL;
    return rc;
}

/* Keeps the answers of one MGET reply past the next read: the values point
 * into the reply buffer, so they are copied, and pointed at once all are
 * in (the copy buffer may move while it grows). */
static int gather_mget(tkv_ctx *c, const tkv_reply *r, size_t done)
{
    if (cl_grow(c, (void **)&c->mget_all, &c->mget_all_cap, done + r->n, sizeof(tkv_version)) < 0)
        return TKV_ERR;
    for (size_t i = 0; i < r->n; i++) {
        tkv_version v = r->versions[i];
        size_t off = c->mget_values.len;
        if (v.status == TKV_OK && tkv_buf_append(&c->mget_values, v.value, v.len) < 0)
            return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
        /* An offset until every answer is in; a miss has no value. */
        v.value = v.status == TKV_OK ? (const uint8_t *)(uintptr_t)off : NULL;
        c->mget_all[done + i] = v;
    }
    return TKV_OK;
}

int tkv_mget(tkv_ctx *c, uint64_t ts, const tkv_bytes *keys, size_t n, const tkv_version **out)
{
    tkv_reply r;
    *out = NULL;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_mget(c, ts, keys, n), &r);
    if (rc != TKV_OK)
        return rc;
    if (!r.truncated && r.n == n) {
        *out = r.versions;
        return TKV_OK;
    }
    tkv_buf_reset(&c->mget_values);
    size_t done = 0;
    for (;;) {
        /* The server answers at least one key per reply (a value always fits
         * a frame); a reply with none would never finish. */
        if (r.n == 0 || r.n > n - done || (!r.truncated && done + r.n != n))
            return cl_set_err(c, TKV_EK_PROTOCOL, "MGET: %zu answers for %zu keys", done + r.n, n);
        if (gather_mget(c, &r, done) < 0)
            return TKV_ERR;
        done += r.n;
        if (done == n)
            break;
        rc = roundtrip(c, tkv_append_mget(c, ts, keys + done, n - done), &r);
        if (rc != TKV_OK)
            return rc;
    }
    static const uint8_t empty[1];
    for (size_t i = 0; i < n; i++) {
        tkv_version *v = &c->mget_all[i];
        if (v->status == TKV_OK)
            v->value = c->mget_values.data ? c->mget_values.data + (uintptr_t)v->value : empty;
    }
    *out = c->mget_all;
    return TKV_OK;
}

int tkv_scan(tkv_ctx *c, const void *prefix, size_t plen, tkv_bytes cursor, uint32_t count,
             const tkv_bytes **keys, size_t *n, tkv_bytes *next)
{
    tkv_reply r;
    *keys = NULL;
    *n = 0;
    *next = (tkv_bytes){NULL, 0};
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_scan(c, prefix, plen, cursor, count), &r);
    if (rc == TKV_OK) {
        *keys = r.keys;
        *n = r.n;
        *next = r.cursor;
    }
    return rc;
}

int tkv_digest(tkv_ctx *c, uint64_t at, int has_at, tkv_digest_info *out)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_digest(c, at, has_at), &r);
    if (rc == TKV_OK && out)
        *out = r.digest;
    return rc;
}
