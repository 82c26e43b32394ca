/*
 * cmd.c - implements command dispatch (cmd.h): parse, run against the
 * engine, write the reply. One function per command.
 */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"

typedef struct exec_ctx {
    tkv_dispatch *d;
    tkv_session *sess;
    const tkv_req *req;
    tkv_buf *out;
    bool dirty;
} exec_ctx;

static int reply_error(exec_ctx *x, tkv_status st, const char *msg)
{
    x->d->errors++;
    if (tkv_write_error(x->out, st, msg) < 0)
        return -1;
    return (int)st;
}

static int reply_engine_error(exec_ctx *x, tkv_status st)
{
    char msg[320];
    const char *why = tkv_engine_errmsg(x->d->eng);
    snprintf(msg, sizeof msg, "%s: %s",
             st == TKV_ST_STORAGE ? "storage error" : tkv_status_name(st),
             why[0] ? why : "unknown");
    return reply_error(x, st, msg);
}

static int exec_ping(exec_ctx *x)
{
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 2);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    if (x->req->has_msg) {
        tkv_pack_bytes(&w.pk, x->req->msg.ptr, x->req->msg.len);
    } else {
        msgpack_pack_str(&w.pk, 4);
        msgpack_pack_str_body(&w.pk, "PONG", 4);
    }
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

/* [0, v]: the reply of PUT, DEL and COUNT. */
static int reply_u64(exec_ctx *x, uint64_t v)
{
    uint8_t *p = tkv_frame_open(x->out, 11);
    if (!p)
        return -1;
    *p++ = 0x92;
    *p++ = TKV_ST_OK;
    tkv_frame_close(x->out, tkv_mpw_uint(p, v));
    return TKV_ST_OK;
}

static int exec_put(exec_ctx *x)
{
    const tkv_req *r = x->req;
    uint64_t ts;
    tkv_status st = tkv_engine_put(x->d->eng, r->key.ptr, r->key.len, r->value.ptr, r->value.len,
                                   r->ts, r->has_ts, r->ttl, &ts, &x->dirty);
    if (st != TKV_ST_OK)
        return reply_engine_error(x, st);
    return reply_u64(x, ts);
}

static void pack_opt(msgpack_packer *pk, bool has, uint64_t v)
{
    if (has)
        msgpack_pack_uint64(pk, v);
    else
        msgpack_pack_nil(pk);
}

/* [0, value, ts, next, expires] or [1, reason, next, at]: the shape of a
 * GET reply, also used for each key of an MGET. Written directly: this is
 * the reply tkvd sends most. Returns the end, given room from room(). */
static size_t answer_room(const tkv_answer *a) { return 1 + 1 + 5 + (size_t)a->len + 3 * 9; }

static uint8_t *put_answer(uint8_t *p, tkv_status st, const tkv_answer *a)
{
    if (st == TKV_ST_OK) {
        *p++ = 0x95; /* fixarray of 5 */
        *p++ = TKV_ST_OK;
        p = tkv_mpw_bin(p, a->value, a->len);
        p = tkv_mpw_uint(p, a->ts);
        p = tkv_mpw_opt(p, a->has_next, a->next);
        return tkv_mpw_opt(p, a->expires != 0, a->expires);
    }
    *p++ = 0x94; /* fixarray of 4 */
    *p++ = TKV_ST_NOT_FOUND;
    *p++ = (uint8_t)a->miss;
    p = tkv_mpw_opt(p, a->has_next, a->next);
    return tkv_mpw_opt(p, a->miss == TKV_M_DELETED || a->miss == TKV_M_BELOW_HORIZON, a->at);
}

static int exec_get(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_answer a;
    tkv_status st = r->has_version
                        ? tkv_engine_get_nth(x->d->eng, r->key.ptr, r->key.len, r->version, &a)
                        : tkv_engine_get(x->d->eng, r->key.ptr, r->key.len,
                                         r->has_ts ? r->ts : TKV_TS_MAX, &a);
    x->dirty = a.dirty;
    if (st != TKV_ST_OK && st != TKV_ST_NOT_FOUND)
        return reply_engine_error(x, st);
    uint8_t *p = tkv_frame_open(x->out, answer_room(&a));
    if (!p)
        return -1;
    tkv_frame_close(x->out, put_answer(p, st, &a));
    return (int)st;
}

/* Lists of unknown length (RANGE's versions, SCAN's keys) are written
 * straight into the reply behind a fixed-width array32 header, which is
 * patched once the count is known. Returns the header's offset. */
static size_t begin_list(tkv_wr *w)
{
    static const uint8_t arr32[5] = {0xdd, 0, 0, 0, 0};
    size_t at = w->b->len;
    if (tkv_buf_append(w->b, arr32, sizeof arr32) < 0)
        w->failed = true;
    return at;
}

static void end_list(tkv_wr *w, size_t at, uint32_t count)
{
    if (w->failed)
        return;
    uint8_t *p = w->b->data + at + 1;
    p[0] = (uint8_t)(count >> 24);
    p[1] = (uint8_t)(count >> 16);
    p[2] = (uint8_t)(count >> 8);
    p[3] = (uint8_t)count;
}

/* RANGE writes entries straight into the reply; the entry array's header is
 * a fixed-width array32 patched once the count is known. */
typedef struct range_ctx {
    tkv_wr *w;
    size_t limit_end; /* the reply may not grow past this offset */
    uint32_t count;
    bool truncated;
    bool failed;
} range_ctx;

static bool range_entry(void *ctx, const tkv_entry_view *v)
{
    range_ctx *rc = ctx;
    /* fixarray + uint64 + bin32 header + value + expiry: an upper bound. */
    size_t need = 1 + 9 + 5 + (size_t)v->len + 9;
    if (rc->w->b->len + need > rc->limit_end || rc->count == UINT32_MAX) {
        rc->truncated = true;
        return false;
    }
    msgpack_pack_array(&rc->w->pk, v->expires ? 3 : 2);
    msgpack_pack_uint64(&rc->w->pk, v->ts);
    if (v->value)
        tkv_pack_bytes(&rc->w->pk, v->value, v->len);
    else
        msgpack_pack_nil(&rc->w->pk); /* a tombstone */
    if (v->expires)
        msgpack_pack_uint64(&rc->w->pk, v->expires);
    rc->count++;
    if (rc->w->failed) {
        rc->failed = true;
        return false;
    }
    return true;
}

static int exec_range(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 3);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    size_t hdr = begin_list(&w);
    /* Leave room for the trailing boolean. */
    range_ctx rc = {.w = &w, .limit_end = w.start + TKV_FRAME_HEADER + x->d->max_reply - 1};
    tkv_status st = w.failed ? TKV_ST_INTERNAL
                             : tkv_engine_range(x->d->eng, r->key.ptr, r->key.len, r->from,
                                                r->to, r->limit, r->reverse, range_entry, &rc,
                                                &x->dirty);
    if (w.failed || rc.failed) {
        tkv_wr_end(&w);
        return -1;
    }
    if (st != TKV_ST_OK) {
        x->out->len = w.start;
        return reply_engine_error(x, st);
    }
    end_list(&w, hdr, rc.count);
    if (rc.truncated)
        msgpack_pack_true(&w.pk);
    else
        msgpack_pack_false(&w.pk);
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

static int exec_del(exec_ctx *x)
{
    const tkv_req *r = x->req;
    uint64_t v;
    tkv_status st = r->tombstone ? tkv_engine_tombstone(x->d->eng, r->key.ptr, r->key.len, r->ts,
                                                        r->has_ts, &v, &x->dirty)
                                 : tkv_engine_del(x->d->eng, r->key.ptr, r->key.len, &v,
                                                  &x->dirty);
    if (st != TKV_ST_OK)
        return reply_engine_error(x, st);
    return reply_u64(x, v);
}

static int exec_count(exec_ctx *x)
{
    const tkv_req *r = x->req;
    uint64_t n;
    tkv_status st =
        tkv_engine_count(x->d->eng, r->key.ptr, r->key.len, r->from, r->to, &n, &x->dirty);
    if (st != TKV_ST_OK)
        return reply_engine_error(x, st);
    return reply_u64(x, n);
}

static int exec_retain(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_policy p = {.versions = r->keep_versions, .age_us = r->keep_age};
    tkv_retain_result res;
    tkv_status st = tkv_engine_retain(x->d->eng, r->key.ptr, r->key.len, &p, r->dry_run, &res,
                                      &x->dirty);
    if (st != TKV_ST_OK)
        return reply_engine_error(x, st);
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 4);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    msgpack_pack_uint64(&w.pk, res.removable);
    pack_opt(&w.pk, res.horizon != 0, res.horizon);
    res.complete ? msgpack_pack_true(&w.pk) : msgpack_pack_false(&w.pk);
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

static int exec_policy(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_policy_info pi;
    tkv_status st = tkv_engine_policy(x->d->eng, r->key.ptr, r->key.len, &pi);
    if (st != TKV_ST_OK)
        return reply_engine_error(x, st);
    x->dirty = pi.dirty;
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 5);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    pack_opt(&w.pk, pi.policy.versions != 0, pi.policy.versions);
    pack_opt(&w.pk, pi.policy.age_us != 0, pi.policy.age_us);
    pi.own ? msgpack_pack_true(&w.pk) : msgpack_pack_false(&w.pk);
    pack_opt(&w.pk, pi.horizon != 0, pi.horizon);
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

/* Every item is checked before any is staged, so a refused item leaves no
 * trace. Staging itself can then only fail for want of memory; should it
 * fail half-way, the whole batch is made to fail: MPUT is all or nothing. */
static int check_mput(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    for (uint32_t i = 0; i < r->nitems; i++) {
        tkv_put_item it;
        tkv_mput_item_next(&m, &it);
        tkv_status st = tkv_engine_check_put(x->d->eng, it.key.ptr, it.key.len, it.ts, it.has_ts);
        if (st != TKV_ST_OK) {
            char why[300];
            snprintf(why, sizeof why, "MPUT item %u: %s; nothing was written", i,
                     tkv_engine_errmsg(x->d->eng));
            return reply_error(x, st, why);
        }
    }
    return TKV_ST_OK;
}

static int exec_mput(exec_ctx *x)
{
    const tkv_req *r = x->req;
    int rc = check_mput(x);
    if (rc != TKV_ST_OK)
        return rc;
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 2);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    msgpack_pack_array(&w.pk, r->nitems);
    for (uint32_t i = 0; i < r->nitems; i++) {
        tkv_put_item it;
        uint64_t ts;
        bool dirty;
        tkv_mput_item_next(&m, &it);
        tkv_status st = tkv_engine_put(x->d->eng, it.key.ptr, it.key.len, it.value.ptr,
                                       it.value.len, it.ts, it.has_ts, it.ttl, &ts, &dirty);
        x->dirty |= dirty;
        if (st != TKV_ST_OK) {
            x->out->len = w.start;
            char why[300];
            snprintf(why, sizeof why, "MPUT item %u: %s", i, tkv_engine_errmsg(x->d->eng));
            if (i > 0)
                tkv_engine_poison(x->d->eng, why);
            /* This reply is already an error: nothing to withdraw. */
            x->dirty = false;
            return reply_error(x, st, why);
        }
        msgpack_pack_uint64(&w.pk, ts);
    }
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

/* MGET answers keys in order until the next answer might not fit the
 * frame, then sets `truncated` and the client asks again for the rest (as
 * RANGE and SCAN do). The first answer always fits - tkvd keeps values 64
 * bytes below the frame size - so every call makes progress. */
static int exec_mget(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 3);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    size_t hdr = begin_list(&w);
    /* Leave room for the trailing boolean. */
    size_t limit_end = w.start + TKV_FRAME_HEADER + x->d->max_reply - 1;
    uint32_t count = 0;
    /* One thread serves every request, so no write lands between two keys:
     * the answers form one consistent snapshot. */
    for (; count < r->nitems && !w.failed; count++) {
        const uint8_t *key;
        uint32_t klen;
        tkv_mp_read_bytes(&m, &key, &klen);
        tkv_answer a;
        tkv_status st = tkv_engine_get(x->d->eng, key, klen, r->has_ts ? r->ts : TKV_TS_MAX, &a);
        x->dirty |= a.dirty;
        if (st != TKV_ST_OK && st != TKV_ST_NOT_FOUND) {
            x->out->len = w.start;
            return reply_engine_error(x, st);
        }
        if (count > 0 && x->out->len + answer_room(&a) > limit_end)
            break;
        if (tkv_buf_reserve(x->out, answer_room(&a)) < 0) {
            w.failed = true;
            break;
        }
        x->out->len = (size_t)(put_answer(x->out->data + x->out->len, st, &a) - x->out->data);
    }
    end_list(&w, hdr, count);
    if (count < r->nitems)
        msgpack_pack_true(&w.pk);
    else
        msgpack_pack_false(&w.pk);
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

typedef struct scan_ctx {
    tkv_wr *w;
    size_t limit_end;
    uint32_t count;
    size_t last_off, last_len; /* the last key packed, for the cursor */
    bool full;
} scan_ctx;

static bool scan_key(void *ctx, const uint8_t *key, size_t klen)
{
    scan_ctx *sc = ctx;
    if (sc->w->b->len + 5 + klen > sc->limit_end) {
        sc->full = true;
        return false;
    }
    msgpack_pack_bin(&sc->w->pk, klen);
    sc->last_off = sc->w->b->len;
    sc->last_len = klen;
    msgpack_pack_bin_body(&sc->w->pk, key, klen);
    sc->count++;
    return true;
}

static int exec_scan(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 3);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    size_t hdr = begin_list(&w);
    scan_ctx sc = {.w = &w, .limit_end = w.start + x->d->max_reply - 64 - x->d->lim.max_key};
    bool more;
    tkv_status st = tkv_engine_scan(x->d->eng, r->has_prefix ? r->prefix.ptr : NULL,
                                    r->prefix.len, r->has_cursor ? r->cursor.ptr : NULL,
                                    r->cursor.len, (uint32_t)r->limit, scan_key, &sc, &more,
                                    &x->dirty);
    if (st != TKV_ST_OK) {
        x->out->len = w.start;
        return reply_engine_error(x, st);
    }
    if (w.failed) {
        tkv_wr_end(&w);
        return -1;
    }
    end_list(&w, hdr, sc.count);
    if ((more || sc.full) && sc.count > 0) {
        /* The cursor repeats the last key: copy it out first, as packing
         * may move the buffer. */
        tkv_buf_reset(&x->d->scratch);
        if (tkv_buf_append(&x->d->scratch, x->out->data + sc.last_off, sc.last_len) < 0)
            w.failed = true;
        else
            tkv_pack_bytes(&w.pk, x->d->scratch.data, sc.last_len);
    } else {
        msgpack_pack_nil(&w.pk);
    }
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

static void kv_u64(msgpack_packer *pk, const char *name, uint64_t v)
{
    size_t n = strlen(name);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, name, n);
    msgpack_pack_uint64(pk, v);
}

static void kv_str(msgpack_packer *pk, const char *name, const char *v)
{
    size_t n = strlen(name), m = strlen(v);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, name, n);
    msgpack_pack_str(pk, m);
    msgpack_pack_str_body(pk, v, m);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#define N_SERVER_STATS 9
#define N_ENGINE_STATS 18

static void pack_server_stats(msgpack_packer *pk, const tkv_server_info *in)
{
    kv_str(pk, "version", TKV_VERSION_STRING);
    kv_u64(pk, "uptime_s", (now_us() - in->start_us) / 1000000u);
    kv_u64(pk, "connections", in->conns_current);
    kv_u64(pk, "connections_total", in->conns_total);
    kv_u64(pk, "connections_rejected", in->conns_rejected);
    kv_u64(pk, "max_clients", in->max_clients);
    kv_u64(pk, "bytes_in", in->bytes_in);
    kv_u64(pk, "bytes_out", in->bytes_out);
    kv_str(pk, "fsync", in->fsync ? in->fsync : "");
}

static void pack_engine_stats(msgpack_packer *pk, const tkv_engine_stats *s, bool failing)
{
    kv_u64(pk, "storage_failing", failing);
    kv_u64(pk, "keys", s->keys);
    kv_u64(pk, "versions", s->versions);
    kv_u64(pk, "mem_keys", s->mem_keys);
    kv_u64(pk, "mem_versions", s->mem_versions);
    kv_u64(pk, "mem_bytes", s->mem_bytes);
    kv_u64(pk, "reads_mem", s->reads_mem);
    kv_u64(pk, "reads_disk", s->reads_disk);
    kv_u64(pk, "fills", s->fills);
    kv_u64(pk, "evictions", s->evictions);
    kv_u64(pk, "max_memory", s->max_memory);
    kv_u64(pk, "reopens", s->reopens);
    kv_u64(pk, "commits", s->commits);
    kv_u64(pk, "commit_writes", s->commit_writes);
    kv_u64(pk, "commit_errors", s->commit_errors);
    kv_u64(pk, "swept_expired", s->swept_expired);
    kv_u64(pk, "swept_retained", s->swept_retained);
    kv_u64(pk, "sweeps", s->sweeps);
}

static int exec_stats(exec_ctx *x)
{
    tkv_dispatch *d = x->d;
    tkv_engine_stats es;
    tkv_engine_stats_get(d->eng, &es);
    char *lstats = tkv_engine_property(d->eng, "leveldb.stats");
    char *lsize = tkv_engine_property(d->eng, "leveldb.approximate-memory-usage");
    uint32_t n = N_ENGINE_STATS + TKV_CMD__COUNT + 3 + (lstats ? 1 : 0) + (lsize ? 1 : 0) +
                 (d->info ? N_SERVER_STATS : 0);
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 2);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    msgpack_pack_map(&w.pk, n);
    if (d->info)
        pack_server_stats(&w.pk, d->info);
    pack_engine_stats(&w.pk, &es, tkv_engine_failing(d->eng));
    for (int i = 0; i < TKV_CMD__COUNT; i++) {
        char name[32];
        snprintf(name, sizeof name, "cmd_%s", tkv_cmd_name((tkv_cmd)i));
        for (char *p = name; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        kv_u64(&w.pk, name, d->calls[i]);
    }
    kv_u64(&w.pk, "errors", d->errors);
    kv_u64(&w.pk, "auth_failures", d->auth_failures);
    kv_u64(&w.pk, "pid", (uint64_t)getpid());
    if (lsize)
        kv_u64(&w.pk, "leveldb_memory_bytes", strtoull(lsize, NULL, 10));
    if (lstats)
        kv_str(&w.pk, "leveldb_stats", lstats);
    free(lstats);
    free(lsize);
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

static int reply_ok_empty(exec_ctx *x)
{
    tkv_wr w;
    tkv_wr_begin(&w, x->out);
    msgpack_pack_array(&w.pk, 1);
    msgpack_pack_uint8(&w.pk, TKV_ST_OK);
    return tkv_wr_end(&w) < 0 ? -1 : TKV_ST_OK;
}

static int exec_auth(exec_ctx *x)
{
    tkv_dispatch *d = x->d;
    if (!d->auth)
        return reply_error(x, TKV_ST_BAD_REQUEST, "AUTH: this server has no secret configured");
    if (!tkv_auth_check(d->auth, x->req->msg.ptr, x->req->msg.len)) {
        d->auth_failures++;
        if (x->sess)
            x->sess->auth_failures++;
        return reply_error(x, TKV_ST_AUTH_FAILED, "invalid secret");
    }
    if (x->sess)
        x->sess->authed = true;
    return reply_ok_empty(x);
}

typedef int (*exec_fn)(exec_ctx *x);

static const exec_fn exec_table[TKV_CMD__COUNT] = {
    [TKV_CMD_PING] = exec_ping,   [TKV_CMD_PUT] = exec_put, [TKV_CMD_GET] = exec_get,
    [TKV_CMD_RANGE] = exec_range, [TKV_CMD_DEL] = exec_del, [TKV_CMD_STATS] = exec_stats,
    [TKV_CMD_AUTH] = exec_auth,   [TKV_CMD_COUNT] = exec_count, [TKV_CMD_MPUT] = exec_mput,
    [TKV_CMD_MGET] = exec_mget,   [TKV_CMD_SCAN] = exec_scan,   [TKV_CMD_RETAIN] = exec_retain,
    [TKV_CMD_POLICY] = exec_policy,
};

int tkv_dispatch_session(tkv_dispatch *d, tkv_session *sess, const uint8_t *frame, size_t len,
                         tkv_buf *out, bool *dirty)
{
    tkv_req req;
    char err[160];
    exec_ctx x = {.d = d, .sess = sess, .req = &req, .out = out};
    *dirty = false;
    tkv_status st = tkv_req_parse(frame, len, &d->lim, &req, err, sizeof err);
    if (st != TKV_ST_OK)
        return reply_error(&x, st, err);
    d->calls[req.cmd]++;
    bool trusted = !d->auth || !sess || sess->authed;
    if (!trusted && req.cmd != TKV_CMD_AUTH && req.cmd != TKV_CMD_PING)
        return reply_error(&x, TKV_ST_AUTH_REQUIRED, "authentication required: send AUTH first");
    int rc = exec_table[req.cmd](&x);
    *dirty = x.dirty;
    return rc;
}

int tkv_dispatch_frame(tkv_dispatch *d, const uint8_t *frame, size_t len, tkv_buf *out,
                       bool *dirty)
{
    return tkv_dispatch_session(d, NULL, frame, len, out, dirty);
}
