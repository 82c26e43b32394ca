/*
 * commit.c - getting staged writes into LevelDB: the staging batch and the
 * entries its writes dirty, the writer thread and rollback. Writes reach
 * LevelDB only through store.h's batches; a failed write marks the store
 * broken, and recover.c brings it back.
 *
 * Writes join the *staging* batch: each reserves room in its dirty list,
 * stages its records (eng_stage_put/del) and marks what it changed
 * (eng_mark_dirty). tkv_engine_commit_start() hands it to a
 * writer thread as the *in-flight* batch and opens a new staging batch at
 * once, so the reactor goes on serving (and staging) while LevelDB inserts
 * and syncs; tkv_engine_commit_finish() runs on the reactor when the writer
 * reports back. At most one batch is in flight: LevelDB serialises writers
 * anyway, and everything staged meanwhile forms the next, larger batch -
 * group commit that grows with the load.
 *
 * Batches are numbered by epoch. An entry changed by a batch carries its
 * epoch; it is uncommitted while that epoch is above the last committed one,
 * and uncommitted entries are never evicted or swept. If the in-flight
 * batch fails, it and the staging batch (whose changes were made on top of
 * it) are both rolled back: every entry either touched is dropped from
 * memory, to be reloaded from what LevelDB holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_int.h"
#include "grow.h"

#define EVERYSEC_US 1000000

/* ---- batches ---------------------------------------------------------------- */

int eng_batch_init(eng_batch *b, uint64_t epoch)
{
    memset(b, 0, sizeof *b);
    b->wb = tkv_store_batch_new();
    b->epoch = epoch;
    return b->wb ? 0 : -1;
}

void eng_batch_free(eng_batch *b)
{
    tkv_store_batch_free(b->wb);
    free(b->dirty);
    memset(b, 0, sizeof *b);
}

static void batch_reset(eng_batch *b, uint64_t epoch)
{
    tkv_store_batch_clear(b->wb);
    b->ops = 0;
    b->ndirty = 0;
    b->epoch = epoch;
}

/* ---- staging: the records a write adds and the entries it changes ---------- */

void eng_stage_put(tkv_engine *e, const void *k, size_t klen, const void *v, size_t vlen)
{
    tkv_store_batch_put(e->stage.wb, k, klen, v, vlen);
    e->stage.ops++;
    eng_touch_record(e, k, klen);
}

void eng_stage_version(tkv_engine *e, const void *k, size_t klen, const void *v, size_t vlen,
                       bool newest)
{
    if (newest)
        tkv_store_batch_put_newest(e->stage.wb, k, klen, v, vlen);
    else
        tkv_store_batch_put(e->stage.wb, k, klen, v, vlen);
    e->stage.ops++;
    eng_touch_record(e, k, klen);
}

void eng_stage_del(tkv_engine *e, const void *k, size_t klen)
{
    tkv_store_batch_delete(e->stage.wb, k, klen);
    e->stage.ops++;
    eng_touch_record(e, k, klen);
}

void eng_stage_drop(tkv_engine *e, const void *p, size_t plen)
{
    tkv_store_batch_drop(e->stage.wb, p, plen);
    e->stage.ops++;
    eng_touch_record(e, p, plen);
}

/* Makes room to track one more dirty entry before anything is staged, so
 * that recording it afterwards cannot fail. */
int eng_reserve_dirty(tkv_engine *e)
{
    eng_batch *b = &e->stage;
    if (tkv_grow(&b->dirty, &b->cap, b->ndirty + 1, sizeof *b->dirty, 64) < 0) {
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        return -1;
    }
    return 0;
}

void eng_mark_dirty(tkv_engine *e, tkv_kentry *E)
{
    eng_batch *b = &e->stage;
    if (E->dirty_epoch == b->epoch)
        return;
    if (e->sweep)
        eng_sweep_touched(e, E);
    b->dirty[b->ndirty++] = E;
    E->dirty_epoch = b->epoch;
}

bool tkv_engine_pending(const tkv_engine *e) { return e->stage.ops > 0 || e->in_flight; }

uint64_t tkv_engine_epoch(const tkv_engine *e) { return e->stage.epoch; }

uint64_t tkv_engine_settled_epoch(const tkv_engine *e)
{
    /* A read that saw the in-flight batch is tagged with the staging epoch;
     * if nothing was staged after it, that epoch is settled as soon as the
     * in-flight batch is. */
    return !e->in_flight && e->stage.ops == 0 ? e->stage.epoch : e->committed;
}

void tkv_engine_poison(tkv_engine *e, const char *why)
{
    snprintf(e->poison, sizeof e->poison, "%s", why);
}

/* Forgets an uncommitted batch's entries (memory falls back to LevelDB). An
 * entry re-dirtied by a later batch is left for that batch's list. */
static void drop_batch(tkv_engine *e, eng_batch *b)
{
    for (size_t i = 0; i < b->ndirty; i++)
        if (b->dirty[i]->dirty_epoch == b->epoch)
            eng_drop_entry(e, b->dirty[i]);
    b->ndirty = 0;
}

/* Rolls back the staging batch alone (nothing in flight) or both batches,
 * and opens a fresh staging batch. */
static void roll_back(tkv_engine *e)
{
    e->st.commit_errors++;
    e->gen++; /* loads read before the failure may see what memory drops */
    if (e->in_flight) {
        drop_batch(e, &e->flight);
        batch_reset(&e->flight, 0);
        e->in_flight = false;
    }
    drop_batch(e, &e->stage);
    batch_reset(&e->stage, e->stage.epoch + 1);
    e->cnt = e->cnt_committed;
    e->cnt_flight = e->cnt_committed;
    eng_repl_rolled_back(e);
    e->all_resident = false;
    e->poison[0] = '\0';
    if (e->store_open)
        tkv_store_iter_release_shared(e->store);
}

/* ---- the writer thread --------------------------------------------------------- */

static bool want_sync(tkv_engine *e)
{
    if (e->opts.fsync == TKV_SYNC_ALWAYS)
        return true;
    if (e->opts.fsync == TKV_SYNC_NEVER)
        return false;
    /* everysec: this write syncs if the last sync is a second old. */
    uint64_t now = tkv_clock_mono_us();
    if (now - e->last_sync_us < EVERYSEC_US)
        return false;
    e->last_sync_us = now;
    return true;
}

/* Writes the in-flight batch; any thread. */
static void write_flight(tkv_engine *e)
{
    char err[256] = "";
    bool sync = want_sync(e);
    int rc = eng_repl_seal(e);
    if (rc < 0)
        snprintf(err, sizeof err, "out of memory encoding the batch for replicas");
    else
        rc = tkv_store_write(e->store, e->flight.wb, sync, err, sizeof err);
    /* Loads that read LevelDB from now on see this batch (load.c). */
    if (rc == 0)
        atomic_store(&e->disk_epoch, e->flight.epoch);
    pthread_mutex_lock(&e->mu);
    e->flight_rc = rc;
    snprintf(e->flight_err, sizeof e->flight_err, "%s", err);
    e->flight_done = true;
    e->unsynced = !sync && rc == 0;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->opts.on_written)
        e->opts.on_written(e->opts.on_written_ctx);
}

static void *writer_main(void *arg)
{
    tkv_engine *e = arg;
    /* Named for top -H and perf: the batch writer. */
    pthread_setname_np(pthread_self(), "tkv-writer");
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->writer_go && !e->writer_quit)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->writer_go) {
            e->writer_go = false;
            pthread_mutex_unlock(&e->mu);
            write_flight(e);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int eng_writer_start(tkv_engine *e)
{
    if (pthread_mutex_init(&e->mu, NULL) != 0 || pthread_cond_init(&e->cv, NULL) != 0)
        return -1;
    e->sync_ready = true;
    if (!e->opts.writer_thread)
        return 0;
    if (pthread_create(&e->writer, NULL, writer_main, e) != 0)
        return -1;
    e->writer_running = true;
    return 0;
}

void eng_writer_stop(tkv_engine *e)
{
    if (e->writer_running) {
        pthread_mutex_lock(&e->mu);
        e->writer_quit = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->writer, NULL);
        e->writer_running = false;
    }
    if (e->sync_ready) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        e->sync_ready = false;
    }
}

/* ---- commit ------------------------------------------------------------------- */

static void put_counters(tkv_engine *e)
{
    if (memcmp(&e->cnt, &e->cnt_flight, sizeof e->cnt) == 0)
        return;
    uint8_t v[24];
    tkv_store_be64(v, e->cnt.keys);
    tkv_store_be64(v + 8, e->cnt.versions);
    tkv_store_be64(v + 16, e->cnt.swept_keys);
    tkv_store_batch_put(e->stage.wb, ENG_COUNTERS_KEY, sizeof ENG_COUNTERS_KEY - 1, v, sizeof v);
}

int tkv_engine_commit_start(tkv_engine *e, uint64_t *failed)
{
    if (e->in_flight || e->stage.ops == 0)
        return 0;
    /* Writes staged before a failed sync was noticed were made on a view
     * the recovery may change: they fail with it. */
    if (e->poison[0] || e->broken || !e->store_open) {
        if (e->poison[0])
            snprintf(e->errmsg, sizeof e->errmsg, "%s", e->poison);
        else
            snprintf(e->errmsg, sizeof e->errmsg, "storage failing: %.200s", e->fail_msg);
        *failed = e->stage.epoch;
        roll_back(e);
        return -1;
    }
    put_counters(e);
    eng_batch tmp = e->flight;
    e->flight = e->stage;
    e->stage = tmp;
    batch_reset(&e->stage, e->flight.epoch + 1);
    e->cnt_flight = e->cnt;
    eng_repl_start(e);
    e->in_flight = true;
    e->flight_done = false;
    if (!e->writer_running) {
        write_flight(e);
        return 1;
    }
    pthread_mutex_lock(&e->mu);
    e->writer_go = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 1;
}

/* After a successful commit: the batch's entries become clean; those the
 * staging batch has not touched again are trimmed to the residency limits. */
static void committed(tkv_engine *e)
{
    eng_batch *b = &e->flight;
    e->committed = b->epoch;
    e->cnt_committed = e->cnt_flight;
    eng_repl_committed(e);
    e->st.commits++;
    e->st.commit_writes += b->ops;
    for (size_t i = 0; i < b->ndirty; i++)
        if (b->dirty[i]->dirty_epoch == b->epoch)
            eng_trim(e, b->dirty[i]);
    batch_reset(b, 0);
    e->in_flight = false;
    if (e->store_open)
        tkv_store_iter_release_shared(e->store);
}

int tkv_engine_commit_finish(tkv_engine *e, uint64_t *failed)
{
    if (!e->in_flight)
        return 0;
    pthread_mutex_lock(&e->mu);
    bool done = e->flight_done;
    int rc = e->flight_rc;
    if (done && rc < 0)
        snprintf(e->errmsg, sizeof e->errmsg, "%s", e->flight_err);
    pthread_mutex_unlock(&e->mu);
    if (!done)
        return 0;
    if (rc == 0) {
        committed(e);
        return 1;
    }
    eng_set_broken(e, e->errmsg);
    *failed = e->flight.epoch;
    roll_back(e);
    return -1;
}

void tkv_engine_wait(tkv_engine *e)
{
    pthread_mutex_lock(&e->mu);
    while (e->in_flight && !e->flight_done)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

int tkv_engine_commit(tkv_engine *e)
{
    uint64_t failed;
    int rc = 0;
    while (tkv_engine_pending(e)) {
        tkv_engine_wait(e);
        if (tkv_engine_commit_finish(e, &failed) < 0)
            rc = -1;
        if (tkv_engine_commit_start(e, &failed) < 0)
            rc = -1;
    }
    return rc;
}

int tkv_engine_sync(tkv_engine *e)
{
    if (e->in_flight || !e->unsynced)
        return 0; /* an in-flight write syncs itself if it is due */
    if (e->broken || !e->store_open) {
        snprintf(e->errmsg, sizeof e->errmsg, "storage unavailable after a failed write");
        return -1;
    }
    tkv_store_batch *b = tkv_store_batch_new();
    int rc = b ? tkv_store_write(e->store, b, true, e->errmsg, sizeof e->errmsg) : -1;
    if (!b)
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
    tkv_store_batch_free(b);
    if (rc < 0) {
        eng_set_broken(e, e->errmsg);
        return -1;
    }
    e->unsynced = false;
    e->last_sync_us = tkv_clock_mono_us();
    return 0;
}
