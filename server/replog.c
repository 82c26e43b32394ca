/*
 * replog.c - the engine's side of replication: the replication state every
 * batch carries, the feed a primary's replicas follow, and a replica
 * applying its primary's batches.
 *
 * The state is an id and an offset (PSYNC2's pair: also the previous id and
 * the offset where it ended, so the replicas of a promoted replica's old
 * primary can go on from it). Every batch the writer writes carries the
 * state as of its end in the 'mrepl' record, in the same atomic write: the
 * data and the offset it is at are always persisted together, on a primary
 * and on a replica, so a restarted server knows exactly where it stands.
 *
 * A primary encodes each batch it writes as a "B" frame (protocol/repl.h)
 * on the writer thread, before the write: the frame's size moves the
 * offset, and the state record must hold the moved offset. Once the batch
 * is committed the loop takes the frame (tkv_engine_feed_take) into the
 * server's backlog. A failed write takes its frame with it.
 *
 * A replica stages the primary's records as they are (the store's own
 * records, so its LevelDB holds byte for byte what the primary's does)
 * and drops each key they touch from memory, to be loaded again from
 * LevelDB: a replica makes no writes of its own, so nothing it drops is
 * uncommitted, and the touch table makes loads that read the older state
 * stale. The counters record comes with the batch and becomes the
 * replica's counters.
 */
#include <stdio.h>
#include <string.h>

#include "engine_int.h"
#include "keycodec.h"
#include "repl.h"

#define REPL_FORMAT 1
#define REPL_LEN (1 + 2 * (TKV_REPLID_LEN + 8))

/* ---- the state record ------------------------------------------------------ */

static void state_encode(const tkv_eng_repl *r, uint8_t out[REPL_LEN])
{
    out[0] = REPL_FORMAT;
    memcpy(out + 1, r->id, TKV_REPLID_LEN);
    tkv_store_be64(out + 1 + TKV_REPLID_LEN, r->off);
    memset(out + 9 + TKV_REPLID_LEN, '0', TKV_REPLID_LEN);
    if (r->id2[0])
        memcpy(out + 9 + TKV_REPLID_LEN, r->id2, TKV_REPLID_LEN);
    tkv_store_be64(out + 9 + 2 * TKV_REPLID_LEN, r->off2);
}

int eng_repl_decode(const uint8_t *p, size_t n, tkv_eng_repl *r)
{
    if (n < REPL_LEN || p[0] != REPL_FORMAT)
        return -1;
    memset(r, 0, sizeof *r);
    memcpy(r->id, p + 1, TKV_REPLID_LEN);
    r->off = tkv_load_be64(p + 1 + TKV_REPLID_LEN);
    memcpy(r->id2, p + 9 + TKV_REPLID_LEN, TKV_REPLID_LEN);
    r->off2 = tkv_load_be64(p + 9 + 2 * TKV_REPLID_LEN);
    static const char zeros[TKV_REPLID_LEN + 1] = "0000000000000000000000000000000000000000";
    if (strcmp(r->id2, zeros) == 0)
        r->id2[0] = '\0';
    return 0;
}

static int new_history(tkv_engine *e, uint64_t off)
{
    e->repl_gen++; /* the server's backlog no longer lines up */
    memset(&e->repl, 0, sizeof e->repl);
    if (tkv_repl_new_id(e->repl.id) < 0) {
        snprintf(e->errmsg, sizeof e->errmsg, "no randomness for a replication id");
        return -1;
    }
    e->repl.off = off;
    return 0;
}

int eng_repl_load(tkv_engine *e, bool reopened, char *err, size_t errlen)
{
    char *v;
    size_t vlen;
    int rc;
    e->repl_incomplete = false;
    rc = tkv_store_get(e->store, NULL, ENG_SYNCING_KEY, sizeof ENG_SYNCING_KEY - 1, &v, &vlen, err,
                       errlen);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        tkv_store_free(v);
        e->repl_incomplete = true;
    }
    rc = tkv_store_get(e->store, NULL, ENG_REPL_KEY, sizeof ENG_REPL_KEY - 1, &v, &vlen, err,
                       errlen);
    if (rc < 0)
        return -1;
    tkv_eng_repl disk = {0};
    bool have = rc == 1 && eng_repl_decode((const uint8_t *)v, vlen, &disk) == 0;
    if (rc == 1)
        tkv_store_free(v);
    /* A reopen after a failed write may have replayed a batch whose frame
     * no replica got: a primary starts a new history from what LevelDB
     * holds, and its replicas copy it in full. */
    if (have && !(reopened && e->repl_feed)) {
        e->repl = disk;
    } else if (new_history(e, have ? disk.off : 0) < 0) {
        snprintf(err, errlen, "%s", e->errmsg);
        return -1;
    }
    e->repl_stage = e->repl;
    e->repl_flight = e->repl;
    return 0;
}

/* ---- the writer's part -------------------------------------------------- */

static void feed_put(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    tkv_repl_add(ctx, k, klen, v, vlen);
}

static void feed_del(void *ctx, const void *k, size_t klen) { tkv_repl_add(ctx, k, klen, NULL, 0); }

static void feed_drop(void *ctx, const void *p, size_t plen) { tkv_repl_add_drop(ctx, p, plen); }

int eng_repl_seal(tkv_engine *e)
{
    tkv_eng_repl *r = &e->repl_flight;
    tkv_buf_reset(&e->feed);
    e->feed_ready = false;
    if (e->flight_feed) {
        tkv_repl_wr w;
        tkv_repl_begin(&w, &e->feed, TKV_RF_BATCH, r->off);
        tkv_store_batch_iterate(e->flight.wb, &w, feed_put, feed_del, feed_drop);
        if (tkv_repl_end(&w) < 0)
            return -1;
        r->off += e->feed.len;
        e->feed_ready = true;
    }
    uint8_t rec[REPL_LEN];
    state_encode(r, rec);
    tkv_store_batch_put(e->flight.wb, ENG_REPL_KEY, sizeof ENG_REPL_KEY - 1, rec, sizeof rec);
    return 0;
}

/* ---- the loop's part ------------------------------------------------------ */

void eng_repl_start(tkv_engine *e)
{
    e->repl_flight = e->repl_stage;
    e->flight_feed = e->repl_feed;
    e->flight_completes = e->stage_completes;
    e->stage_completes = false;
    tkv_buf tmp = e->applied_flight;
    e->applied_flight = e->applied_stage;
    e->applied_stage = tmp;
    tkv_buf_reset(&e->applied_stage);
}

/* Drops the keys the committed batch applied (see applied_stage). */
static void drop_applied(tkv_engine *e)
{
    if (e->applied_flight.len == 0)
        return;
    const uint8_t *p = e->applied_flight.data, *end = p + e->applied_flight.len;
    while (p + 2 <= end) {
        size_t n = tkv_load_be16(p);
        tkv_kentry *E = tkv_keyindex_find(&e->ix, p + 2, n);
        if (E && !eng_uncommitted(e, E)) {
            if (e->sweep)
                eng_sweep_touched(e, E);
            eng_drop_entry(e, E);
        }
        p += 2 + n;
    }
    tkv_buf_reset(&e->applied_flight);
}

void eng_repl_committed(tkv_engine *e)
{
    e->repl = e->repl_flight;
    drop_applied(e);
    if (e->flight_completes) /* the copy's end is on disk now */
        e->repl_incomplete = false;
    /* Whoever collected the commit (the server, the sweep's own commit,
     * a blocking tkv_engine_commit), the frame waits for the server. */
    if (e->feed_ready && tkv_buf_append(&e->feed_out, e->feed.data, e->feed.len) < 0)
        e->feed_lost = true;
    e->feed_ready = false;
    if (e->repl_feed)
        e->repl_stage.off = e->repl.off;
}

void eng_repl_rolled_back(tkv_engine *e)
{
    e->repl_stage = e->repl;
    e->stage_completes = e->flight_completes = false;
    tkv_buf_reset(&e->applied_stage);
    tkv_buf_reset(&e->applied_flight);
    tkv_buf_reset(&e->feed);
    e->feed_ready = false;
}

void tkv_engine_repl_get(const tkv_engine *e, tkv_eng_repl *out) { *out = e->repl; }

int tkv_engine_feed_take(tkv_engine *e, const uint8_t **frames, size_t *len)
{
    if (e->feed_lost) {
        e->feed_lost = false;
        tkv_buf_reset(&e->feed_out);
        return -1;
    }
    *frames = e->feed_out.data;
    *len = e->feed_out.len;
    tkv_buf_reset(&e->feed_out); /* the bytes stay valid until the next commit */
    return *len > 0;
}

int tkv_engine_repl_primary(tkv_engine *e)
{
    if (tkv_engine_pending(e)) {
        snprintf(e->errmsg, sizeof e->errmsg, "writes are under way");
        return -1;
    }
    tkv_eng_repl old = e->repl;
    if (new_history(e, old.off) < 0)
        return -1;
    memcpy(e->repl.id2, old.id, sizeof e->repl.id2);
    e->repl.off2 = old.off;
    e->repl_stage = e->repl;
    e->repl_feed = true;
    /* The new id is persisted at once: a batch with the state alone. */
    e->stage.ops++;
    return 0;
}

void tkv_engine_repl_replica(tkv_engine *e)
{
    e->repl_feed = false;
    /* Frames of the primary it was are no part of the stream it follows. */
    tkv_buf_reset(&e->feed_out);
    e->feed_ready = e->feed_lost = false;
}

uint64_t tkv_engine_repl_gen(const tkv_engine *e) { return e->repl_gen; }

/* A replica: drops key e->kbuf[0, n) (n < 0: none) from memory - a
 * record of its changes what memory held of it - and notes it for the
 * loads in flight. */
static int forget_key(tkv_engine *e, long n)
{
    tkv_kentry *E = n > 0 ? tkv_keyindex_find(&e->ix, e->kbuf, (size_t)n) : NULL;
    if (E) {
        if (e->sweep)
            eng_sweep_touched(e, E);
        eng_drop_entry(e, E);
    }
    if (n > 0) {
        uint8_t len[2];
        tkv_store_be16(len, (uint16_t)n);
        if (tkv_buf_append(&e->applied_stage, len, 2) < 0 ||
            tkv_buf_append(&e->applied_stage, e->kbuf, (size_t)n) < 0) {
            snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
            return -1;
        }
    }
    return 0;
}

int tkv_engine_apply_rec(tkv_engine *e, const uint8_t *k, size_t klen, const uint8_t *v,
                         size_t vlen, bool put)
{
    if (eng_writable(e) < 0)
        return -1;
    /* The primary's own state: this server writes its own. */
    if ((klen == sizeof ENG_REPL_KEY - 1 && memcmp(k, ENG_REPL_KEY, klen) == 0) ||
        (klen == sizeof ENG_SYNCING_KEY - 1 && memcmp(k, ENG_SYNCING_KEY, klen) == 0))
        return 0;
    bool is_meta;
    if (klen > 0 && k[0] == TKV_KC_VERSION && klen <= tkv_kc_max(TKV_ENG_KEY_MAX) &&
        forget_key(e, tkv_kc_decode_any(k, klen, e->kbuf, &is_meta)) < 0)
        return -1;
    if (put && klen == sizeof ENG_COUNTERS_KEY - 1 && memcmp(k, ENG_COUNTERS_KEY, klen) == 0 &&
        vlen >= 24) {
        e->cnt.keys = tkv_load_be64(v);
        e->cnt.versions = tkv_load_be64(v + 8);
        e->cnt.swept_keys = tkv_load_be64(v + 16);
    }
    e->all_resident = false;
    if (put)
        eng_stage_put(e, k, klen, v, vlen);
    else
        eng_stage_del(e, k, klen);
    return 0;
}

int tkv_engine_apply_drop(tkv_engine *e, const uint8_t *p, size_t plen)
{
    if (eng_writable(e) < 0)
        return -1;
    long n = plen + 8 <= tkv_kc_max(TKV_ENG_KEY_MAX) ? tkv_kc_decode_prefix(p, plen, e->kbuf) : -1;
    if (n < 0) {
        snprintf(e->errmsg, sizeof e->errmsg, "a drop of a record that is no key's versions");
        return -1;
    }
    if (forget_key(e, n) < 0)
        return -1;
    e->all_resident = false;
    eng_stage_drop(e, p, plen);
    return 0;
}

void tkv_engine_apply_at(tkv_engine *e, const char *id, uint64_t off)
{
    if (e->repl_incomplete) {
        /* Still incomplete until this batch is committed. */
        eng_stage_del(e, ENG_SYNCING_KEY, sizeof ENG_SYNCING_KEY - 1);
        e->stage_completes = true;
    }
    memcpy(e->repl_stage.id, id, TKV_REPLID_LEN);
    e->repl_stage.id[TKV_REPLID_LEN] = '\0';
    e->repl_stage.off = off;
    e->repl_stage.id2[0] = '\0';
    e->repl_stage.off2 = 0;
    e->stage.ops++; /* the state alone is worth a batch */
}

size_t tkv_engine_staged_bytes(const tkv_engine *e) { return tkv_store_batch_bytes(e->stage.wb); }

int tkv_engine_wipe(tkv_engine *e)
{
    if (tkv_engine_pending(e) || e->loads_out > 0) {
        snprintf(e->errmsg, sizeof e->errmsg, "the store is in use");
        return -1;
    }
    if (eng_writable(e) < 0)
        return -1;
    eng_forget_all(e);
    tkv_store_opts so = eng_store_opts(e);
    char err[256];
    if (tkv_store_wipe(e->store, &so, err, sizeof err) < 0) {
        e->store_open = false;
        snprintf(e->errmsg, sizeof e->errmsg, "%s", err);
        eng_set_broken(e, err);
        return -1;
    }
    e->cnt = e->cnt_flight = e->cnt_committed = (counters){0, 0, 0};
    e->all_resident = false; /* the copy arrives through LevelDB, not memory */
    /* Until the copy's last batch is written the data is part of a copy: a
     * replica restarted meanwhile must not serve it. The mark is synced at
     * once, before anything of the copy: an empty store without it would
     * pass for a complete one. */
    e->repl_incomplete = true;
    tkv_store_batch *b = tkv_store_batch_new();
    int rc = b ? 0 : -1;
    if (b) {
        tkv_store_batch_put(b, ENG_SYNCING_KEY, sizeof ENG_SYNCING_KEY - 1, "", 0);
        rc = tkv_store_write(e->store, b, true, err, sizeof err);
        tkv_store_batch_free(b);
    } else {
        snprintf(err, sizeof err, "out of memory");
    }
    if (rc < 0) {
        snprintf(e->errmsg, sizeof e->errmsg, "%s", err);
        eng_set_broken(e, err);
        return -1;
    }
    return 0;
}

bool tkv_engine_repl_incomplete(const tkv_engine *e) { return e->repl_incomplete; }
