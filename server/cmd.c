/*
 * cmd.c - implements command dispatch (cmd.h): parse, run against the
 * engine, write the reply. One function per command. Replies are written
 * with protocol/reply.h's encoders, which hold their shapes; this file only
 * maps the engine's results onto them and decides where a list stops.
 */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "clock.h"
#include "cluster.h"
#include "frame.h"
#include "latency.h"
#include "replication.h"
#include "reply.h"
#include "restore.h"
#include "shardmap.h"
#include "slot.h"
#include "slowlog.h"
#include "usage.h"
#include "wire.h"

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

/* The message is the engine's alone: the reply's status already names the
 * kind of error, and clients print that name in front of the message. */
static int reply_engine_error(exec_ctx *x, tkv_eng_rc rc)
{
    if (rc == TKV_E_WOULD_BLOCK)
        return TKV_DISPATCH_WAIT; /* no reply: the request runs again after a load */
    const char *why = tkv_engine_errmsg(x->d->eng);
    return reply_error(x, tkv_wire_status(rc), why[0] ? why : "no detail");
}

/* An encoder's 0 or -1 (out of memory) as a dispatch result. */
static int sent(int rc) { return rc < 0 ? -1 : TKV_ST_OK; }

static int exec_ping(exec_ctx *x)
{
    return sent(tkv_rep_put_ping(x->out, x->req->has_msg ? &x->req->msg : NULL));
}

/* [0, v]: the reply of PUT, DEL and COUNT. */
static int reply_u64(exec_ctx *x, uint64_t v) { return sent(tkv_rep_put_uint(x->out, v)); }

static tkv_rep_opt opt(bool has, uint64_t v) { return (tkv_rep_opt){.v = has ? v : 0, .has = has}; }

static int exec_put(exec_ctx *x)
{
    const tkv_req *r = x->req;
    uint64_t ts;
    tkv_eng_rc rc = tkv_engine_put(x->d->eng, r->key.ptr, r->key.len, r->value.ptr, r->value.len,
                                   r->ts, r->has_ts, r->ttl, &ts, &x->dirty);
    if (rc != TKV_E_OK)
        return reply_engine_error(x, rc);
    return reply_u64(x, ts);
}

/* The engine's answer to a GET (or one MGET key) in the wire's terms:
 * expires 0 means never, and a miss has a time only when it is DELETED
 * (the tombstone) or BELOW_HORIZON (the horizon). */
static tkv_rep_answer wire_answer(tkv_eng_rc rc, const tkv_answer *a)
{
    tkv_rep_answer w = {.status = tkv_wire_status(rc), .next = opt(a->has_next, a->next)};
    if (rc == TKV_E_OK) {
        w.value = (tkv_span){a->value, a->len};
        w.ts = a->ts;
        w.expires = opt(a->expires != 0, a->expires);
    } else {
        w.miss = (uint64_t)tkv_wire_miss(a->miss);
        w.at = opt(a->miss == TKV_EM_DELETED || a->miss == TKV_EM_BELOW_HORIZON, a->at);
    }
    return w;
}

static int exec_get(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_answer a;
    tkv_eng_rc rc =
        r->has_version
            ? tkv_engine_get_nth(x->d->eng, r->key.ptr, r->key.len, r->version, &a)
            : tkv_engine_get(x->d->eng, r->key.ptr, r->key.len, r->has_ts ? r->ts : TKV_TS_MAX, &a);
    x->dirty = a.dirty;
    if (rc != TKV_E_OK && rc != TKV_E_NOT_FOUND)
        return reply_engine_error(x, rc);
    tkv_rep_answer w = wire_answer(rc, &a);
    return tkv_rep_put_answer(x->out, &w) < 0 ? -1 : (int)w.status;
}

/* RANGE writes entries straight into the reply as the engine visits
 * them, and stops before one might take the reply past max_reply. */
typedef struct range_ctx {
    tkv_rep_wr *lw;
    size_t limit_end; /* the reply may not grow past this offset */
    bool truncated;
} range_ctx;

static bool range_entry(void *ctx, const tkv_entry_view *v)
{
    range_ctx *rc = ctx;
    tkv_rep_wr *lw = rc->lw;
    if (lw->w.b->len + tkv_rep_entry_room(v->len) > rc->limit_end || lw->n == UINT32_MAX) {
        rc->truncated = true;
        return false;
    }
    tkv_rep_range_entry(lw, v->ts, v->value, v->len, v->expires);
    return !lw->w.failed;
}

static int exec_range(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_rep_wr lw;
    tkv_rep_range_begin(&lw, x->out);
    /* Leave room for the trailing boolean. */
    range_ctx rc = {.lw = &lw, .limit_end = lw.w.start + TKV_FRAME_HEADER + x->d->max_reply - 1};
    tkv_eng_rc st = lw.w.failed
                        ? TKV_E_NOMEM
                        : tkv_engine_range(x->d->eng, r->key.ptr, r->key.len, r->from, r->to,
                                           r->limit, r->reverse, range_entry, &rc, &x->dirty);
    if (lw.w.failed) {
        tkv_rep_abort(&lw);
        return -1;
    }
    if (st != TKV_E_OK) {
        tkv_rep_abort(&lw);
        return reply_engine_error(x, st);
    }
    return sent(tkv_rep_range_end(&lw, rc.truncated));
}

static int exec_del(exec_ctx *x)
{
    const tkv_req *r = x->req;
    uint64_t v;
    tkv_eng_rc st = r->tombstone ? tkv_engine_tombstone(x->d->eng, r->key.ptr, r->key.len, r->ts,
                                                        r->has_ts, &v, &x->dirty)
                                 : tkv_engine_del(x->d->eng, r->key.ptr, r->key.len, &v, &x->dirty);
    if (st != TKV_E_OK)
        return reply_engine_error(x, st);
    return reply_u64(x, v);
}

static int exec_count(exec_ctx *x)
{
    const tkv_req *r = x->req;
    uint64_t n;
    tkv_eng_rc st =
        tkv_engine_count(x->d->eng, r->key.ptr, r->key.len, r->from, r->to, &n, &x->dirty);
    if (st != TKV_E_OK)
        return reply_engine_error(x, st);
    return reply_u64(x, n);
}

static int exec_retain(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_policy p = {.versions = r->keep_versions, .age_us = r->keep_age};
    tkv_retain_result res;
    tkv_eng_rc st =
        tkv_engine_retain(x->d->eng, r->key.ptr, r->key.len, &p, r->dry_run, &res, &x->dirty);
    if (st != TKV_E_OK)
        return reply_engine_error(x, st);
    return sent(tkv_rep_put_retain(x->out, res.removable, opt(res.horizon != 0, res.horizon),
                                   res.complete));
}

static int exec_policy(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_eng_policy_info pi;
    tkv_eng_rc st = tkv_engine_policy(x->d->eng, r->key.ptr, r->key.len, &pi);
    if (st != TKV_E_OK)
        return reply_engine_error(x, st);
    x->dirty = pi.dirty;
    return sent(tkv_rep_put_policy(x->out, opt(pi.policy.versions != 0, pi.policy.versions),
                                   opt(pi.policy.age_us != 0, pi.policy.age_us), pi.own,
                                   opt(pi.horizon != 0, pi.horizon)));
}

/* An item that wrote its key at the largest timestamp, for the check below. */
typedef struct top_item {
    tkv_span key;
    uint32_t index;
} top_item;

static int top_cmp(const void *a, const void *b)
{
    const top_item *x = a, *y = b;
    if (x->key.len != y->key.len)
        return x->key.len < y->key.len ? -1 : 1;
    int c = memcmp(x->key.ptr, y->key.ptr, x->key.len);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The one way an item can pass the check against the stored state and then
 * fail when staged: an earlier item of the same MPUT wrote its key at the
 * largest timestamp, so this one, without a timestamp, has none left. The
 * items that do so are few (usually none): sorted, they are looked up in
 * O(log n) each. ntop counts them (check_mput's first pass). Returns the
 * index of the first such item, or -1 (also if out of memory: staging then
 * fails and poisons the batch as before). */
static long late_after_top(const tkv_req *r, uint32_t ntop)
{
    tkv_mp m;
    tkv_put_item it;
    top_item *top = malloc(ntop * sizeof *top);
    if (!top)
        return -1;
    uint32_t n = 0;
    tkv_mp_init(&m, r->items, r->items_len);
    for (uint32_t i = 0; i < r->nitems; i++) {
        tkv_mput_item_next(&m, &it);
        if (it.has_ts && it.ts == TKV_ENG_TS_MAX)
            top[n++] = (top_item){it.key, i};
    }
    qsort(top, n, sizeof *top, top_cmp);
    long bad = -1;
    tkv_mp_init(&m, r->items, r->items_len);
    for (uint32_t i = 0; i < r->nitems && bad < 0; i++) {
        tkv_mput_item_next(&m, &it);
        if (it.has_ts)
            continue;
        /* The first entry of this key has its smallest index. */
        top_item want = {it.key, 0};
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (top_cmp(&top[mid], &want) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && top[lo].key.len == it.key.len &&
            memcmp(top[lo].key.ptr, it.key.ptr, it.key.len) == 0 && top[lo].index < i)
            bad = i;
    }
    free(top);
    return bad;
}

/* An item had to wait for a load: the items after it are checked only to
 * add what they need to the same load, so the request waits once, not
 * once per cold key. */
static int probe_mput(exec_ctx *x, tkv_mp *m, uint32_t from)
{
    const tkv_req *r = x->req;
    for (uint32_t i = from; i < r->nitems && tkv_engine_load_room(x->d->eng); i++) {
        tkv_put_item it;
        tkv_mput_item_next(m, &it);
        tkv_engine_check_put(x->d->eng, it.key.ptr, it.key.len, it.ts, it.has_ts);
    }
    return TKV_DISPATCH_WAIT;
}

/* Every item is checked before any is staged - against the stored state and
 * against the items before it - so a refused item leaves no trace. Staging
 * itself can then only fail for want of memory or storage; should it fail
 * half-way, the whole batch is made to fail: MPUT is all or nothing. */
static int check_mput(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_mp m;
    uint32_t ntop = 0;
    tkv_mp_init(&m, r->items, r->items_len);
    for (uint32_t i = 0; i < r->nitems; i++) {
        tkv_put_item it;
        tkv_mput_item_next(&m, &it);
        ntop += it.has_ts && it.ts == TKV_ENG_TS_MAX;
        tkv_eng_rc st = tkv_engine_check_put(x->d->eng, it.key.ptr, it.key.len, it.ts, it.has_ts);
        if (st == TKV_E_WOULD_BLOCK)
            return probe_mput(x, &m, i + 1);
        if (st != TKV_E_OK) {
            char why[300];
            snprintf(why, sizeof why, "MPUT item %u: %s; nothing was written", i,
                     tkv_engine_errmsg(x->d->eng));
            return reply_error(x, tkv_wire_status(st), why);
        }
    }
    long late = ntop ? late_after_top(r, ntop) : -1;
    if (late >= 0) {
        char why[300];
        snprintf(why, sizeof why,
                 "MPUT item %ld: an earlier item has the key's version at the largest "
                 "timestamp; no later one exists; nothing was written",
                 late);
        return reply_error(x, tkv_wire_status(TKV_E_OUT_OF_RANGE), why);
    }
    return TKV_ST_OK;
}

static int exec_mput(exec_ctx *x)
{
    const tkv_req *r = x->req;
    int rc = check_mput(x);
    if (rc != TKV_ST_OK)
        return rc;
    /* The checks loaded every key the items need; nothing below may stop
     * for a load half-way through the batch (a read it still needed would
     * run inline). */
    tkv_engine_set_nonblocking(x->d->eng, false, 0);
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    tkv_rep_wr lw;
    tkv_rep_mput_begin(&lw, x->out, r->nitems);
    for (uint32_t i = 0; i < r->nitems; i++) {
        tkv_put_item it;
        uint64_t ts;
        bool dirty;
        tkv_mput_item_next(&m, &it);
        tkv_eng_rc st = tkv_engine_put(x->d->eng, it.key.ptr, it.key.len, it.value.ptr,
                                       it.value.len, it.ts, it.has_ts, it.ttl, &ts, &dirty);
        x->dirty |= dirty;
        if (st != TKV_E_OK) {
            tkv_rep_abort(&lw);
            char why[300];
            snprintf(why, sizeof why, "MPUT item %u: %s", i, tkv_engine_errmsg(x->d->eng));
            if (i > 0)
                tkv_engine_poison(x->d->eng, why);
            /* This reply is already an error: nothing to withdraw. */
            x->dirty = false;
            return reply_error(x, tkv_wire_status(st), why);
        }
        tkv_rep_mput_ts(&lw, ts);
    }
    return sent(tkv_rep_mput_end(&lw));
}

/* MGET answers keys in order until the next answer might not fit the
 * frame, then sets `truncated` and the client asks again for the rest (as
 * RANGE and SCAN do). The first answer always fits - tkvd keeps values
 * TKV_REPLY_SLACK bytes below the frame size - so every call makes progress. */
/* Reads up to 16 more MGET keys from `ahead` and prefetches them; returns
 * how many it read. */
static uint32_t prefetch_mget(tkv_engine *e, tkv_mp *ahead, uint32_t left)
{
    tkv_eng_kref k[16];
    uint32_t n = 0;
    for (; n < left && n < 16; n++) {
        uint32_t klen;
        tkv_mp_read_bytes(ahead, &k[n].key, &klen);
        k[n].len = klen;
    }
    if (n > 1)
        tkv_engine_prefetch(e, k, n);
    return n;
}

static int exec_mget(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    tkv_mp ahead = m; /* keys whose lookups are prefetched run ahead */
    uint32_t fetched = 0;
    tkv_rep_wr lw;
    tkv_rep_mget_begin(&lw, x->out);
    /* Leave room for the trailing boolean. */
    size_t limit_end = lw.w.start + TKV_FRAME_HEADER + x->d->max_reply - 1;
    /* One thread serves every request, so no write lands between two keys:
     * the answers form one consistent snapshot. */
    while (lw.n < r->nitems && !lw.w.failed) {
        if (fetched == lw.n)
            fetched += prefetch_mget(x->d->eng, &ahead, r->nitems - fetched);
        const uint8_t *key;
        uint32_t klen;
        tkv_mp_read_bytes(&m, &key, &klen);
        tkv_answer a;
        tkv_eng_rc st = tkv_engine_get(x->d->eng, key, klen, r->has_ts ? r->ts : TKV_TS_MAX, &a);
        x->dirty |= a.dirty;
        if (st == TKV_E_WOULD_BLOCK) {
            /* The keys after it join the same load (answers discarded). */
            for (uint32_t i = lw.n + 1; i < r->nitems && tkv_engine_load_room(x->d->eng); i++) {
                tkv_mp_read_bytes(&m, &key, &klen);
                tkv_engine_get(x->d->eng, key, klen, r->has_ts ? r->ts : TKV_TS_MAX, &a);
            }
            tkv_rep_abort(&lw);
            return TKV_DISPATCH_WAIT;
        }
        if (st != TKV_E_OK && st != TKV_E_NOT_FOUND) {
            tkv_rep_abort(&lw);
            return reply_engine_error(x, st);
        }
        tkv_rep_answer w = wire_answer(st, &a);
        if (lw.n > 0 && x->out->len + tkv_rep_answer_room(&w) > limit_end)
            break;
        tkv_rep_mget_answer(&lw, &w);
    }
    return sent(tkv_rep_mget_end(&lw, lw.n < r->nitems));
}

typedef struct scan_ctx {
    tkv_rep_wr *lw;
    size_t limit_end;
    bool full;
} scan_ctx;

static bool scan_key(void *ctx, const uint8_t *key, size_t klen)
{
    scan_ctx *sc = ctx;
    /* The first key always goes in (tkvd checks that two fit a frame), so
     * a page is never empty while keys remain. */
    if (sc->lw->n > 0 && sc->lw->w.b->len + tkv_rep_key_room(klen) > sc->limit_end) {
        sc->full = true;
        return false;
    }
    tkv_rep_scan_key(sc->lw, key, (uint32_t)klen);
    return true;
}

static int exec_scan(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_rep_wr lw;
    tkv_rep_scan_begin(&lw, x->out);
    /* Room for the cursor, which repeats a key. */
    scan_ctx sc = {.lw = &lw,
                   .limit_end = lw.w.start + x->d->max_reply - TKV_REPLY_SLACK - x->d->lim.max_key};
    bool more;
    tkv_eng_rc st = tkv_engine_scan(x->d->eng, r->has_prefix ? r->prefix.ptr : NULL, r->prefix.len,
                                    r->has_cursor ? r->cursor.ptr : NULL, r->cursor.len,
                                    (uint32_t)r->limit, scan_key, &sc, &more, &x->dirty);
    if (st != TKV_E_OK) {
        tkv_rep_abort(&lw);
        return reply_engine_error(x, st);
    }
    return sent(tkv_rep_scan_end(&lw, more || sc.full));
}

static void kv_u64(tkv_rep_wr *lw, const char *name, uint64_t v)
{
    tkv_rep_stats_uint(lw, name, strlen(name), v);
}

static void kv_str(tkv_rep_wr *lw, const char *name, const char *v)
{
    tkv_rep_stats_str(lw, name, strlen(name), v, strlen(v));
}

#define N_SERVER_STATS 12
#define N_ENGINE_STATS 21
#define N_LIMIT_STATS 4

static void pack_server_stats(tkv_rep_wr *pk, const tkv_server_info *in, uint64_t now_us)
{
    kv_str(pk, "version", TKV_VERSION_STRING);
    kv_u64(pk, "uptime_s", (now_us - in->start_us) / 1000000u);
    kv_u64(pk, "connections", in->conns_current);
    kv_u64(pk, "connections_total", in->conns_total);
    kv_u64(pk, "connections_rejected", in->conns_rejected);
    kv_u64(pk, "max_clients", in->max_clients);
    kv_u64(pk, "bytes_in", in->bytes_in);
    kv_u64(pk, "bytes_out", in->bytes_out);
    kv_u64(pk, "watchers", in->watchers);
    kv_str(pk, "fsync", in->fsync ? in->fsync : "");
    kv_u64(pk, "rss_bytes", tkv_usage_rss());
    kv_u64(pk, "disk_bytes", in->du ? tkv_du_bytes(in->du) : 0);
}

static void pack_engine_stats(tkv_rep_wr *pk, const tkv_engine_stats *s, bool failing)
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
    kv_u64(pk, "load_waits", s->load_waits);
    kv_u64(pk, "loads", s->loads);
    kv_u64(pk, "loads_stale", s->loads_stale);
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
    char *wbuf = tkv_engine_property(d->eng, "tkv.write-buffer-bytes");
    uint32_t n = N_ENGINE_STATS + TKV_CMD__COUNT + 3 + N_LIMIT_STATS + (lstats ? 1 : 0) +
                 (lsize ? 1 : 0) + (wbuf ? 1 : 0) + (d->info ? N_SERVER_STATS : 0) +
                 (d->repl ? tkv_repl_nstats(d->repl) : 0) + (d->cluster ? TKV_CLUSTER_NSTATS : 0) +
                 (d->lat ? tkv_latency_nstats(d->lat) : 0);
    tkv_rep_wr lw;
    tkv_rep_stats_begin(&lw, x->out, n);
    if (d->info)
        pack_server_stats(&lw, d->info, tkv_engine_now(d->eng));
    pack_engine_stats(&lw, &es, tkv_engine_failing(d->eng));
    /* What a request may carry: tools size what they send by it (tkvctl
     * restore cuts a backup into requests that fit). */
    kv_u64(&lw, "max_frame", d->max_reply);
    kv_u64(&lw, "max_key", d->lim.max_key);
    kv_u64(&lw, "max_value", d->lim.max_value);
    kv_u64(&lw, "max_batch", d->lim.max_batch ? d->lim.max_batch : TKV_DEFAULT_MAX_BATCH);
    if (d->repl)
        tkv_repl_stats(d->repl, &lw);
    if (d->cluster)
        tkv_cluster_stats(d->cluster, &lw);
    for (int i = 0; i < TKV_CMD__COUNT; i++) {
        char name[32];
        snprintf(name, sizeof name, "cmd_%s", tkv_cmd_name((tkv_cmd)i));
        for (char *p = name; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        kv_u64(&lw, name, d->calls[i]);
    }
    if (d->lat)
        tkv_latency_stats(d->lat, &lw);
    kv_u64(&lw, "errors", d->errors);
    kv_u64(&lw, "auth_failures", d->auth_failures);
    kv_u64(&lw, "pid", (uint64_t)getpid());
    if (lsize)
        kv_u64(&lw, "leveldb_memory_bytes", strtoull(lsize, NULL, 10));
    if (wbuf)
        kv_u64(&lw, "write_buffer_bytes", strtoull(wbuf, NULL, 10));
    if (lstats)
        kv_str(&lw, "leveldb_stats", lstats);
    free(lstats);
    free(lsize);
    free(wbuf);
    /* The count was promised up front: a field missed here would shift
     * every name and value after it. */
    if (lw.n != n) {
        tkv_rep_abort(&lw);
        return reply_error(x, TKV_ST_INTERNAL, "STATS: field count mismatch");
    }
    return sent(tkv_rep_stats_end(&lw));
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
    return sent(tkv_rep_put_empty(x->out));
}

/* RESTORE: backup records into this server (restore.h), all or nothing
 * like MPUT. */
static int exec_restore(exec_ctx *x)
{
    const tkv_req *r = x->req;
    tkv_restore_req q = {.records = r->records.ptr,
                         .len = r->records.len,
                         .merge = r->merge,
                         .cont = r->cont,
                         .max_key = x->d->lim.max_key,
                         .max_value = x->d->lim.max_value,
                         .max_versions =
                             x->d->lim.max_batch ? x->d->lim.max_batch : TKV_DEFAULT_MAX_BATCH};
    uint64_t written, skipped;
    tkv_status st;
    char msg[320];
    int rc = tkv_restore_records(x->d->eng, &q, &written, &skipped, &st, msg, sizeof msg);
    if (rc == -2)
        return TKV_DISPATCH_WAIT;
    if (rc < 0)
        return reply_error(x, st, msg);
    x->dirty = true; /* its writes, or the reads of a merge, are in the batch */
    return sent(tkv_rep_put_restore(x->out, written, skipped));
}

/* DIGEST and BACKUP walk the whole store: the connection streams their
 * replies in steps (stream.h), so the dispatcher only says what to
 * stream. */
static int exec_stream(exec_ctx *x)
{
    if (!x->sess)
        return reply_error(x, TKV_ST_BAD_REQUEST, "this command needs a connection of its own");
    x->sess->stream =
        (tkv_stream_req){.cmd = x->req->cmd, .has_at = x->req->has_ts, .at = x->req->ts};
    return TKV_DISPATCH_STREAM;
}

/* Replication (replication.h): the dispatcher only decides; the server's
 * replication carries out. */
static int no_repl(exec_ctx *x)
{
    return reply_error(x, TKV_ST_BAD_REQUEST, "replication is not available here");
}

static int exec_replicaof(exec_ctx *x)
{
    if (!x->d->repl)
        return no_repl(x);
    char host[256] = "", err[300];
    const tkv_req *r = x->req;
    if (r->host.ptr && memchr(r->host.ptr, 0, r->host.len))
        return reply_error(x, TKV_ST_BAD_REQUEST, "the host name holds a NUL byte");
    if (r->host.ptr)
        snprintf(host, sizeof host, "%.*s", (int)r->host.len, (const char *)r->host.ptr);
    if (tkv_repl_replicaof(x->d->repl, r->host.ptr ? host : NULL, (uint16_t)r->port, err,
                           sizeof err) < 0)
        return reply_error(x, TKV_ST_BUSY, err);
    return sent(tkv_rep_put_empty(x->out));
}

static int exec_role(exec_ctx *x)
{
    return x->d->repl ? sent(tkv_repl_role(x->d->repl, x->out)) : no_repl(x);
}

static int exec_wait(exec_ctx *x)
{
    tkv_session *s = x->sess;
    if (!s)
        return reply_error(x, TKV_ST_BAD_REQUEST, "this command needs a connection of its own");
    if (s->repl.wait_done) {
        s->repl.wait_done = false;
        return reply_u64(x, s->repl.acked);
    }
    if (!x->d->repl || tkv_repl_is_replica(x->d->repl) || x->req->nreplicas == 0)
        return reply_u64(x, 0);
    s->repl.nreplicas = x->req->nreplicas;
    s->repl.timeout_ms = x->req->timeout_ms;
    return TKV_DISPATCH_REPLWAIT;
}

static int exec_psync(exec_ctx *x)
{
    if (!x->sess || !x->d->repl)
        return no_repl(x);
    x->sess->repl.replid = x->req->host;
    x->sess->repl.offset = x->req->offset;
    return TKV_DISPATCH_PSYNC;
}

static int exec_replack(exec_ctx *x)
{
    return reply_error(x, TKV_ST_BAD_REQUEST, "REPLACK is sent on a replication link only");
}

static int exec_watch(exec_ctx *x)
{
    if (!x->sess || !x->d->repl)
        return reply_error(x, TKV_ST_BAD_REQUEST, "WATCH needs a connection of its own");
    const tkv_req *r = x->req;
    x->sess->watch = (tkv_watch_req){.prefix = r->prefix,
                                     .has_from = r->has_offset,
                                     .from = r->offset,
                                     .asof = r->has_ts,
                                     .at = r->ts,
                                     .replid = r->host};
    return TKV_DISPATCH_WATCH;
}

/* CLUSTER SHARDS: the map as clients route by it, in slot order. Any
 * node answers, so a client needs one reachable node to start. */
static int exec_cluster(exec_ctx *x)
{
    const tkv_shardmap *m = x->d->map;
    if (!m)
        return reply_error(x, TKV_ST_BAD_REQUEST, "this server is not part of a cluster");
    tkv_rep_wr lw;
    uint32_t n = tkv_shardmap_nranges(m);
    tkv_rep_shards_begin(&lw, x->out, tkv_shardmap_revision(m), n);
    for (uint32_t i = 0; i < n; i++) {
        tkv_shardmap_range r;
        tkv_shardmap_get_range(m, i, &r);
        tkv_rep_shards_range(&lw, r.from, r.to,
                             (tkv_span){(const uint8_t *)r.primary, (uint32_t)strlen(r.primary)},
                             r.nreplicas);
        for (uint32_t j = 0; j < r.nreplicas; j++)
            tkv_rep_shards_replica(
                &lw, (tkv_span){(const uint8_t *)r.replicas[j], (uint32_t)strlen(r.replicas[j])});
    }
    return sent(tkv_rep_shards_end(&lw));
}

/* SLOWLOG GET [n] | LEN | RESET (slowlog.h). */
static int exec_slowlog(exec_ctx *x)
{
    tkv_slowlog *s = x->d->slow;
    if (!s)
        return reply_error(x, TKV_ST_BAD_REQUEST, "this server keeps no slow log");
    switch (x->req->sub) {
    case TKV_SLOWLOG_GET: return sent(tkv_slowlog_reply(s, x->req->limit, x->d->max_reply, x->out));
    case TKV_SLOWLOG_LEN: return reply_u64(x, tkv_slowlog_len(s));
    default: return reply_u64(x, tkv_slowlog_reset(s));
    }
}

/* The one slot all of a request's keys are in, Redis's rule: -1 if the
 * request names no key, -2 if its keys are in more than one slot. */
static int32_t request_slot(const tkv_req *r)
{
    switch (r->cmd) {
    case TKV_CMD_PUT:
    case TKV_CMD_GET:
    case TKV_CMD_RANGE:
    case TKV_CMD_COUNT:
    case TKV_CMD_DEL:
    case TKV_CMD_RETAIN:
    case TKV_CMD_POLICY: return tkv_slot(r->key.ptr, r->key.len);
    case TKV_CMD_MPUT:
    case TKV_CMD_MGET: break;
    default: return -1;
    }
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    int32_t slot = -1;
    for (uint32_t i = 0; i < r->nitems; i++) {
        tkv_span k;
        if (r->cmd == TKV_CMD_MPUT) {
            tkv_put_item it;
            tkv_mput_item_next(&m, &it);
            k = it.key;
        } else {
            tkv_mp_read_bytes(&m, &k.ptr, &k.len);
        }
        int32_t s = tkv_slot(k.ptr, k.len);
        if (slot >= 0 && s != slot)
            return -2;
        slot = s;
    }
    return slot;
}

/* The request's first key, for the slow log: the key of a one-key command,
 * the first item's of MPUT and MGET, the prefix of SCAN and WATCH. */
static tkv_span first_key(const tkv_req *r)
{
    tkv_span k = {NULL, 0};
    switch (r->cmd) {
    case TKV_CMD_MPUT:
    case TKV_CMD_MGET: {
        if (r->nitems == 0)
            return k;
        tkv_mp m;
        tkv_mp_init(&m, r->items, r->items_len);
        if (r->cmd == TKV_CMD_MGET) {
            tkv_mp_read_bytes(&m, &k.ptr, &k.len);
            return k;
        }
        tkv_put_item it;
        tkv_mput_item_next(&m, &it);
        return it.key;
    }
    case TKV_CMD_SCAN:
    case TKV_CMD_WATCH: return r->prefix;
    case TKV_CMD_PUT:
    case TKV_CMD_GET:
    case TKV_CMD_RANGE:
    case TKV_CMD_COUNT:
    case TKV_CMD_DEL:
    case TKV_CMD_RETAIN:
    case TKV_CMD_POLICY: return r->key;
    default: return k;
    }
}

/* A replica takes no writes of its own; while its data is part of a full
 * copy it answers nothing from it. */
static bool is_write(const tkv_req *r)
{
    switch (r->cmd) {
    case TKV_CMD_PUT:
    case TKV_CMD_DEL:
    case TKV_CMD_MPUT:
    case TKV_CMD_RESTORE: return true;
    case TKV_CMD_RETAIN: return !r->dry_run;
    default: return false;
    }
}

/* A cluster primary takes writes - its own or a migration's - only while
 * it holds its shard's lead (cluster.h): not once its lease has run out
 * unrenewed, when a replica may be taking over, nor while a failover's
 * new primary leads and this node's map is behind. Reads are still
 * served. A node the map makes no primary (or no map yet) is not fenced. */
static bool leading(const tkv_dispatch *d, const tkv_req *r)
{
    const char *primary;
    if (!is_write(r) && r->cmd != TKV_CMD_IMPORTKEY && r->cmd != TKV_CMD_DROPKEY)
        return true;
    if (!d->map || tkv_shardmap_self_role(d->map, &primary) != TKV_SM_PRIMARY)
        return true;
    return tkv_cluster_leads(d->cluster);
}

static bool needs_data(tkv_cmd c)
{
    switch (c) {
    case TKV_CMD_PING:
    case TKV_CMD_AUTH:
    case TKV_CMD_STATS:
    case TKV_CMD_ROLE:
    case TKV_CMD_REPLICAOF:
    case TKV_CMD_WAIT:
    case TKV_CMD_CLUSTER:
    case TKV_CMD_SLOWLOG:
    case TKV_CMD_REPLACK: return false;
    default: return true;
    }
}

/* ---- the cluster: redirects and migration ------------------------------------ */

static int redirect(exec_ctx *x, tkv_status st, int32_t slot, const char *addr)
{
    char msg[320];
    snprintf(msg, sizeof msg, "%d %s", (int)slot, addr);
    return reply_error(x, st, msg);
}

/* Whether a read could see anything of key here: a visible version
 * (a tombstone counts), a policy of its own or a horizon. What reads
 * cannot see (expired versions the sweep has not removed) does not count:
 * the target answers for such a key exactly as this node would. 1 or 0;
 * TKV_DISPATCH_WAIT once a load is asked for (nothing changed). An engine
 * failure counts as here: the request then meets it itself. */
static int key_here(exec_ctx *x, const uint8_t *key, size_t klen)
{
    /* Exported and not dropped: the target's copy may be stale, so the
     * key is answered here whatever is left of it (migrate.h). */
    if (tkv_migrate_marked(&x->d->mig, key, klen))
        return 1;
    tkv_answer a;
    tkv_eng_rc rc = tkv_engine_get(x->d->eng, key, klen, TKV_TS_MAX, &a);
    if (rc == TKV_E_WOULD_BLOCK)
        return TKV_DISPATCH_WAIT;
    if (rc != TKV_E_NOT_FOUND || a.miss != TKV_EM_NO_KEY)
        return 1;
    tkv_eng_policy_info p;
    rc = tkv_engine_policy(x->d->eng, key, klen, &p);
    if (rc == TKV_E_WOULD_BLOCK)
        return TKV_DISPATCH_WAIT;
    return rc != TKV_E_OK || p.own || p.horizon ? 1 : 0;
}

/* The i-th key of a key request (MPUT and MGET walk their items with m). */
static tkv_span request_key(const tkv_req *r, tkv_mp *m)
{
    tkv_span k = r->key;
    if (r->cmd == TKV_CMD_MPUT) {
        tkv_put_item it;
        tkv_mput_item_next(m, &it);
        k = it.key;
    } else if (r->cmd == TKV_CMD_MGET) {
        tkv_mp_read_bytes(m, &k.ptr, &k.len);
    }
    return k;
}

/* The source of a migrating slot serves a request whose keys are all
 * still here, sends one whose keys are all gone to the target (ASK), and
 * has one with some of each sent again later (TRYAGAIN, as Redis), when
 * the move has gone further. A write to a key being moved (locked by
 * EXPORTKEY) waits the same way: the copy at the target must stay whole. */
static int migrating_check(exec_ctx *x, int32_t slot, const char *target)
{
    const tkv_req *r = x->req;
    bool multi = r->cmd == TKV_CMD_MPUT || r->cmd == TKV_CMD_MGET;
    uint32_t n = multi ? r->nitems : 1, here = 0;
    bool write = is_write(r);
    uint64_t now = tkv_clock_mono_us();
    tkv_mp m;
    tkv_mp_init(&m, r->items, r->items_len);
    for (uint32_t i = 0; i < n; i++) {
        tkv_span k = request_key(r, &m);
        if (write && tkv_migrate_locked(&x->d->mig, k.ptr, k.len, now))
            return reply_error(x, TKV_ST_TRYAGAIN,
                               "a key of this request is being moved to another node; "
                               "send it again shortly");
        int h = key_here(x, k.ptr, k.len);
        if (h == TKV_DISPATCH_WAIT)
            return h;
        here += (uint32_t)h;
    }
    if (here == n)
        return 0;
    if (here == 0)
        return redirect(x, TKV_ST_ASK, slot, target);
    return reply_error(x, TKV_ST_TRYAGAIN,
                       "the request's keys are split by a slot migration; send it again shortly");
}

/* On a cluster node: 0 if this node serves the request's keys, else the
 * MOVED, ASK, TRYAGAIN or CROSSSLOT reply's result (or TKV_DISPATCH_WAIT
 * while the source of a migration loads a key to learn whether it is
 * here). CROSSSLOT comes first, as in Redis: the request is wrong
 * wherever it is sent. */
static int cluster_check(exec_ctx *x)
{
    int32_t slot = request_slot(x->req);
    if (slot == -2)
        return reply_error(x, TKV_ST_CROSSSLOT,
                           "the request's keys are in different slots; use one hash tag "
                           "({tag}) for keys written or read together");
    if (slot < 0)
        return 0;
    const char *addr = NULL;
    switch (tkv_shardmap_route_slot(x->d->map, (uint16_t)slot, &addr)) {
    case TKV_SM_SERVE: return 0;
    case TKV_SM_MIGRATING: return migrating_check(x, slot, addr);
    case TKV_SM_IMPORTING:
        if (x->sess && x->sess->asked)
            return 0;
        return redirect(x, TKV_ST_MOVED, slot, addr);
    default: return redirect(x, TKV_ST_MOVED, slot, addr);
    }
}

static int exec_asking(exec_ctx *x)
{
    if (!x->d->map)
        return reply_error(x, TKV_ST_BAD_REQUEST, "this server is not part of a cluster");
    if (!x->sess)
        return reply_error(x, TKV_ST_BAD_REQUEST, "ASKING needs a connection of its own");
    x->sess->asking = true;
    return sent(tkv_rep_put_empty(x->out));
}

/* The migration commands name a key whose slot must be moving the way
 * they serve: EXPORTKEY and DROPKEY on the source, IMPORTKEY on the
 * target. */
static int migration_role(exec_ctx *x, tkv_shardmap_route want)
{
    const char *addr;
    if (!x->d->map)
        return reply_error(x, TKV_ST_BAD_REQUEST, "this server is not part of a cluster");
    int32_t slot = tkv_slot(x->req->key.ptr, x->req->key.len);
    if (tkv_shardmap_route_slot(x->d->map, (uint16_t)slot, &addr) == want)
        return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: slot %d is not migrating %s this node per the map",
             tkv_cmd_name(x->req->cmd), (int)slot, want == TKV_SM_MIGRATING ? "from" : "to");
    return reply_error(x, TKV_ST_BAD_REQUEST, msg);
}

/* Versions in one EXPORTKEY piece: IMPORTKEY applies a piece as one
 * batch, within RESTORE's --max-batch default. */
#define EXPORT_VERSIONS 1000u

typedef struct export_ctx {
    tkv_bk_writer w;
    tkv_buf *buf;
    size_t limit; /* bytes of records a piece stops short of */
    uint32_t n;
    uint64_t last_ts;
    bool full, failed;
} export_ctx;

static bool export_version(void *ctx, const tkv_entry_view *v)
{
    export_ctx *ec = ctx;
    if (ec->n > 0 && ec->buf->len + 32 + (size_t)v->len > ec->limit) {
        ec->full = true;
        return false;
    }
    tkv_bk_rec r = {.type = TKV_BK_VER,
                    .ts = v->ts,
                    .tombstone = v->value == NULL,
                    .expires = v->value ? v->expires : 0,
                    .value = v->value,
                    .vlen = v->len};
    if (tkv_bk_write_rec(&ec->w, ec->buf, &r) < 0) {
        ec->failed = true;
        return false;
    }
    ec->n++;
    ec->last_ts = v->ts;
    return true;
}

/* The key's record (policy, horizon) and then its versions newest first,
 * below the cursor, in backup records (protocol/backup.h): the visible
 * state, which answers every read exactly as the raw records would. */
static tkv_eng_rc export_piece(exec_ctx *x, export_ctx *ec, bool *more)
{
    const tkv_req *r = x->req;
    tkv_eng_policy_info p;
    tkv_eng_rc rc = tkv_engine_policy(x->d->eng, r->key.ptr, r->key.len, &p);
    if (rc != TKV_E_OK)
        return rc;
    tkv_bk_rec k = {.type = TKV_BK_KEY,
                    .key = r->key.ptr,
                    .klen = r->key.len,
                    .own_policy = p.own,
                    .policy_versions = p.own ? p.policy.versions : 0,
                    .policy_age = p.own ? p.policy.age_us : 0,
                    .horizon = p.horizon};
    if (tkv_bk_write_rec(&ec->w, ec->buf, &k) < 0)
        return TKV_E_NOMEM;
    *more = false;
    if (r->has_offset && r->offset == 0)
        return TKV_E_OK; /* nothing is below timestamp 0 */
    uint64_t to = r->has_offset ? r->offset - 1 : TKV_TS_MAX;
    rc = tkv_engine_range(x->d->eng, r->key.ptr, r->key.len, 0, to, EXPORT_VERSIONS, true,
                          export_version, ec, &x->dirty);
    if (rc != TKV_E_OK)
        return rc;
    if (ec->failed)
        return TKV_E_NOMEM;
    *more = (ec->full || ec->n == EXPORT_VERSIONS) && ec->last_ts > 0;
    return TKV_E_OK;
}

/* EXPORTKEY key [cursor]: a piece of the key's history, and the key
 * locked against writes (renewed by each piece) until DROPKEY. A key
 * nothing of which is visible here answers no records: it is the
 * target's already (requests for it are ASKed) - unless an earlier export
 * of it was not dropped: then its (empty) key record goes, so that the
 * target drops the copy it may hold. The reply waits for the
 * commit of what it read, so the target never gets a write that could
 * still be rolled back. */
static int exec_exportkey(exec_ctx *x)
{
    const tkv_req *r = x->req;
    int rc = migration_role(x, TKV_SM_MIGRATING);
    if (rc != 0)
        return rc;
    int here = key_here(x, r->key.ptr, r->key.len);
    if (here == TKV_DISPATCH_WAIT)
        return here;
    tkv_buf buf;
    tkv_buf_init(&buf);
    export_ctx ec = {.buf = &buf, .limit = x->d->max_reply / 2};
    tkv_bk_write_begin(&ec.w, NULL, 0); /* no header: bare records, hashed only */
    bool more = false;
    tkv_eng_rc erc = here ? export_piece(x, &ec, &more) : TKV_E_OK;
    if (erc == TKV_E_OK &&
        tkv_migrate_lock(&x->d->mig, r->key.ptr, r->key.len, tkv_clock_mono_us()) < 0) {
        tkv_buf_deinit(&buf);
        return reply_error(x, TKV_ST_BUSY, "EXPORTKEY: too many keys are being moved at once");
    }
    if (erc != TKV_E_OK) {
        tkv_buf_deinit(&buf);
        return reply_engine_error(x, erc);
    }
    x->dirty = true; /* held until what it read is committed */
    rc = tkv_rep_put_export(x->out, (tkv_span){buf.data, (uint32_t)buf.len}, opt(more, ec.last_ts));
    tkv_buf_deinit(&buf);
    return sent(rc);
}

/* Every record of an IMPORTKEY must be the named key's. */
static bool records_of_key(const tkv_req *r, const tkv_limits *lim)
{
    tkv_bk_reader rd;
    tkv_bk_reader_init_records(&rd, lim->max_value);
    const uint8_t *p = r->records.ptr;
    size_t left = r->records.len, used;
    tkv_bk_rec rec;
    while (left > 0) {
        if (tkv_bk_read(&rd, p, left, &rec, &used) != TKV_BK_REC)
            return false;
        if (rec.type == TKV_BK_KEY &&
            (rec.klen != r->key.len || memcmp(rec.key, r->key.ptr, rec.klen) != 0))
            return false;
        p += used;
        left -= used;
    }
    return true;
}

/* IMPORTKEY key records [continue]: the records (an EXPORTKEY piece) into
 * this node, the target; the first piece replaces whatever the key held
 * here (a copy left by an attempt that did not finish), in the same batch.
 * The key is served here only after the source drops it, so a copy in
 * pieces is never seen half-made. */
static int exec_importkey(exec_ctx *x)
{
    const tkv_req *r = x->req;
    int rc = migration_role(x, TKV_SM_IMPORTING);
    if (rc != 0)
        return rc;
    if (!records_of_key(r, &x->d->lim))
        return reply_error(x, TKV_ST_BAD_REQUEST,
                           "IMPORTKEY: the records must be whole backup records of the key named");
    if (!r->cont) {
        uint64_t removed;
        tkv_eng_rc erc = tkv_engine_del(x->d->eng, r->key.ptr, r->key.len, &removed, &x->dirty);
        if (erc != TKV_E_OK)
            return reply_engine_error(x, erc);
    }
    /* The key is known here now (deleted, or continued): no load follows. */
    tkv_restore_req q = {.records = r->records.ptr,
                         .len = r->records.len,
                         .cont = true,
                         .max_key = x->d->lim.max_key,
                         .max_value = x->d->lim.max_value,
                         .max_versions = EXPORT_VERSIONS};
    uint64_t written, skipped;
    tkv_status st;
    char msg[320];
    rc = tkv_restore_records(x->d->eng, &q, &written, &skipped, &st, msg, sizeof msg);
    if (rc == -2)
        return TKV_DISPATCH_WAIT;
    if (rc < 0)
        return reply_error(x, st, msg);
    x->dirty = true;
    return reply_u64(x, written);
}

/* DROPKEY key: the moved key deleted here in one batch, and unlocked;
 * from then on its requests are ASKed to the target. Refused unless the
 * key is still locked: after the lock expired a write may have changed it
 * since the copy, and the copy must be made again. */
static int exec_dropkey(exec_ctx *x)
{
    const tkv_req *r = x->req;
    int rc = migration_role(x, TKV_SM_MIGRATING);
    if (rc != 0)
        return rc;
    if (!tkv_migrate_locked(&x->d->mig, r->key.ptr, r->key.len, tkv_clock_mono_us()))
        return reply_error(x, TKV_ST_BUSY,
                           "DROPKEY: the key is not locked (its lock expired, or no EXPORTKEY "
                           "came first): export it again");
    uint64_t removed;
    tkv_eng_rc erc = tkv_engine_del(x->d->eng, r->key.ptr, r->key.len, &removed, &x->dirty);
    if (erc != TKV_E_OK)
        return reply_engine_error(x, erc);
    tkv_migrate_unlock(&x->d->mig, r->key.ptr, r->key.len);
    return reply_u64(x, removed);
}

/* SLOTKEYS [cursor [count]]: SCAN over every key here, listing those of
 * the slots migrating away; the cursor is the last key examined, so a
 * page may list none and still go on. */
typedef struct slotkeys_ctx {
    scan_ctx sc;
    const tkv_shardmap *map;
    tkv_buf *last;
    bool failed;
} slotkeys_ctx;

static bool slot_key(void *ctx, const uint8_t *key, size_t klen)
{
    slotkeys_ctx *s = ctx;
    const char *addr;
    if (tkv_shardmap_route_slot(s->map, tkv_slot(key, klen), &addr) == TKV_SM_MIGRATING &&
        !scan_key(&s->sc, key, klen))
        return false;
    tkv_buf_reset(s->last);
    if (tkv_buf_append(s->last, key, klen) < 0) {
        s->failed = true;
        return false;
    }
    return true;
}

static int exec_slotkeys(exec_ctx *x)
{
    const tkv_req *r = x->req;
    if (!x->d->map)
        return reply_error(x, TKV_ST_BAD_REQUEST, "this server is not part of a cluster");
    tkv_buf last;
    tkv_buf_init(&last);
    tkv_rep_wr lw;
    tkv_rep_scan_begin(&lw, x->out);
    slotkeys_ctx s = {
        .sc = {.lw = &lw,
               .limit_end = lw.w.start + x->d->max_reply - TKV_REPLY_SLACK - x->d->lim.max_key},
        .map = x->d->map,
        .last = &last};
    bool more;
    tkv_eng_rc st =
        tkv_engine_scan(x->d->eng, NULL, 0, r->has_cursor ? r->cursor.ptr : NULL, r->cursor.len,
                        (uint32_t)r->limit, slot_key, &s, &more, &x->dirty);
    if (st == TKV_E_OK && s.failed)
        st = TKV_E_NOMEM;
    if (st != TKV_E_OK) {
        tkv_rep_abort(&lw);
        tkv_buf_deinit(&last);
        return reply_engine_error(x, st);
    }
    bool go_on = (more || s.sc.full) && last.len > 0;
    int rc = tkv_rep_scan_end_at(&lw, go_on ? (tkv_span){last.data, (uint32_t)last.len}
                                            : (tkv_span){NULL, 0});
    tkv_buf_deinit(&last);
    return sent(rc);
}

typedef int (*exec_fn)(exec_ctx *x);

static const exec_fn exec_table[TKV_CMD__COUNT] = {
    [TKV_CMD_PING] = exec_ping,
    [TKV_CMD_PUT] = exec_put,
    [TKV_CMD_GET] = exec_get,
    [TKV_CMD_RANGE] = exec_range,
    [TKV_CMD_DEL] = exec_del,
    [TKV_CMD_STATS] = exec_stats,
    [TKV_CMD_AUTH] = exec_auth,
    [TKV_CMD_COUNT] = exec_count,
    [TKV_CMD_MPUT] = exec_mput,
    [TKV_CMD_MGET] = exec_mget,
    [TKV_CMD_SCAN] = exec_scan,
    [TKV_CMD_RETAIN] = exec_retain,
    [TKV_CMD_POLICY] = exec_policy,
    [TKV_CMD_DIGEST] = exec_stream,
    [TKV_CMD_BACKUP] = exec_stream,
    [TKV_CMD_RESTORE] = exec_restore,
    [TKV_CMD_REPLICAOF] = exec_replicaof,
    [TKV_CMD_ROLE] = exec_role,
    [TKV_CMD_WAIT] = exec_wait,
    [TKV_CMD_PSYNC] = exec_psync,
    [TKV_CMD_REPLACK] = exec_replack,
    [TKV_CMD_WATCH] = exec_watch,
    [TKV_CMD_CLUSTER] = exec_cluster,
    [TKV_CMD_SLOWLOG] = exec_slowlog,
    [TKV_CMD_ASKING] = exec_asking,
    [TKV_CMD_EXPORTKEY] = exec_exportkey,
    [TKV_CMD_IMPORTKEY] = exec_importkey,
    [TKV_CMD_DROPKEY] = exec_dropkey,
    [TKV_CMD_SLOTKEYS] = exec_slotkeys,
};

static int dispatch(tkv_dispatch *d, tkv_session *sess, const uint8_t *frame, size_t len,
                    tkv_buf *out, bool *dirty)
{
    tkv_req req;
    char err[160];
    exec_ctx x = {.d = d, .sess = sess, .req = &req, .out = out};
    *dirty = false;
    tkv_status st = tkv_req_parse(frame, len, &d->lim, &req, err, sizeof err);
    if (sess)
        sess->last_cmd = st == TKV_ST_OK ? (int)req.cmd : -1;
    if (st != TKV_ST_OK)
        return reply_error(&x, st, err);
    if (sess)
        sess->last_key = first_key(&req);
    d->calls[req.cmd]++;
    bool trusted = !d->auth || !sess || sess->authed;
    if (!trusted && req.cmd != TKV_CMD_AUTH && req.cmd != TKV_CMD_PING)
        return reply_error(&x, TKV_ST_AUTH_REQUIRED, "authentication required: send AUTH first");
    /* Before READONLY: a write for a slot another shard serves goes there,
     * whatever this node's role. */
    int moved = d->map ? cluster_check(&x) : 0;
    if (moved == TKV_DISPATCH_WAIT)
        d->calls[req.cmd]--; /* counted when it runs to the end */
    if (moved != 0)
        return moved;
    if (d->repl && is_write(&req) && tkv_repl_readonly(d->repl))
        return reply_error(&x, TKV_ST_READONLY, tkv_repl_readonly(d->repl));
    if (d->cluster && !leading(d, &req))
        return reply_error(&x, TKV_ST_TRYAGAIN,
                           "this node does not hold its shard's lead now (a failover under way, "
                           "or etcd out of reach for longer than the lease); try again soon");
    if (d->repl && needs_data(req.cmd) && !tkv_repl_serving(d->repl))
        return reply_error(&x, TKV_ST_BUSY,
                           "this replica is loading a full copy from its primary; try again soon");
    size_t start = out->len;
    int rc = exec_table[req.cmd](&x);
    if (rc == TKV_DISPATCH_WAIT) {
        d->calls[req.cmd]--; /* counted when it runs to the end */
        out->len = start;    /* whatever a list reply began goes */
        return rc;
    }
    *dirty = x.dirty;
    return rc;
}

/* ASKING holds for the one request after it (a request that waits for a
 * load is the same request when it runs again). */
static int dispatch_asking(tkv_dispatch *d, tkv_session *sess, const uint8_t *frame, size_t len,
                           tkv_buf *out, bool *dirty)
{
    if (!sess)
        return dispatch(d, sess, frame, len, out, dirty);
    sess->asked = sess->asking;
    sess->asking = false; /* ASKING (again) sets it for the request after */
    int rc = dispatch(d, sess, frame, len, out, dirty);
    if (rc == TKV_DISPATCH_WAIT)
        sess->asking = sess->asked;
    return rc;
}

int tkv_dispatch_session(tkv_dispatch *d, tkv_session *sess, const uint8_t *frame, size_t len,
                         tkv_buf *out, bool *dirty)
{
    return dispatch_asking(d, sess, frame, len, out, dirty);
}

int tkv_dispatch_try(tkv_dispatch *d, tkv_session *sess, const uint8_t *frame, size_t len,
                     tkv_buf *out, bool *dirty, unsigned attempt, tkv_eng_load **load)
{
    *load = NULL;
    tkv_engine_set_nonblocking(d->eng, true, attempt);
    int rc = dispatch_asking(d, sess, frame, len, out, dirty);
    if (rc == TKV_DISPATCH_WAIT)
        *load = tkv_engine_load_take(d->eng);
    tkv_engine_set_nonblocking(d->eng, false, 0);
    if (rc == TKV_DISPATCH_WAIT && !*load)
        rc = dispatch_asking(d, sess, frame, len, out, dirty); /* out of memory: run it inline */
    return rc;
}

int tkv_dispatch_frame(tkv_dispatch *d, const uint8_t *frame, size_t len, tkv_buf *out, bool *dirty)
{
    return tkv_dispatch_session(d, NULL, frame, len, out, dirty);
}

/* A moved key's mark stays while its slot migrates away from here. */
static bool still_migrating(void *ctx, const uint8_t *key, size_t klen)
{
    const char *addr;
    return tkv_shardmap_route_slot(ctx, tkv_slot(key, klen), &addr) == TKV_SM_MIGRATING;
}

void tkv_dispatch_set_map(tkv_dispatch *d, tkv_shardmap *m)
{
    tkv_shardmap_free(d->map);
    d->map = m;
    if (!m)
        tkv_migrate_clear(&d->mig); /* out of the cluster: nothing moves from here */
    else
        tkv_migrate_retain(&d->mig, still_migrating, m);
}

void tkv_dispatch_prefetch(const tkv_dispatch *d, const uint8_t *const *frames, const size_t *lens,
                           size_t n)
{
    tkv_eng_kref k[TKV_ENG_PREFETCH_MAX];
    size_t m = 0;
    for (size_t i = 0; i < n && m < TKV_ENG_PREFETCH_MAX; i++) {
        tkv_req r;
        char err[8];
        if (tkv_req_parse(frames[i], lens[i], &d->lim, &r, err, sizeof err) != TKV_ST_OK)
            continue;
        switch (r.cmd) {
        case TKV_CMD_GET:
        case TKV_CMD_PUT:
        case TKV_CMD_DEL:
        case TKV_CMD_RANGE:
        case TKV_CMD_COUNT: k[m++] = (tkv_eng_kref){r.key.ptr, r.key.len}; break;
        default: break;
        }
    }
    if (m > 1)
        tkv_engine_prefetch(d->eng, k, m);
}
