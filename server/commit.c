/*
 * commit.c - getting staged writes into LevelDB: the staging batch and the
 * entries its writes dirty, the writer thread, rollback, and recovery after
 * a failed write. Writes reach LevelDB only through store.h's batches.
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
 *
 * After a failed write the LevelDB handle is never written again (its log
 * writer may be out of step with the file): writes are refused at once
 * until a synced probe write in the data directory succeeds, then LevelDB
 * is reopened on a fresh log. Recovery runs only with nothing staged or in
 * flight, and forgets everything memory holds: a batch whose write reached
 * the log but whose sync failed may be replayed by the reopen (LevelDB's
 * own rule), so after it only LevelDB knows the truth. Such a batch was
 * reported as failed; its outcome was indeterminate, as with any database
 * whose sync fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "engine_int.h"
#include "grow.h"

#define PROBE_INTERVAL_US 100000
#define PROBE_BYTES (64 * 1024)
#define EVERYSEC_US 1000000

static const char COUNTERS_KEY[] = "mcounters";

tkv_store_opts eng_store_opts(const tkv_engine *e)
{
    return (tkv_store_opts){.dir = e->dir,
                            .block_cache = e->opts.block_cache,
                            .write_buffer = e->opts.write_buffer,
                            .no_compression = e->opts.no_compression,
                            .create = true};
}

int eng_load_state(tkv_engine *e, char *err, size_t errlen)
{
    char *v;
    size_t vlen;
    int rc = tkv_store_get(e->store, NULL, COUNTERS_KEY, sizeof COUNTERS_KEY - 1, &v, &vlen, err,
                           errlen);
    if (rc < 0)
        return -1;
    /* Writes staged but not committed keep their effect on the counters. */
    counters staged = {e->cnt.keys - e->cnt_committed.keys,
                       e->cnt.versions - e->cnt_committed.versions,
                       e->cnt.swept_keys - e->cnt_committed.swept_keys};
    e->cnt_committed = (counters){0, 0, 0};
    if (rc == 1) {
        if (vlen >= 16) {
            e->cnt_committed.keys = tkv_load_be64((const uint8_t *)v);
            e->cnt_committed.versions = tkv_load_be64((const uint8_t *)v + 8);
        }
        if (vlen >= 24)
            e->cnt_committed.swept_keys = tkv_load_be64((const uint8_t *)v + 16);
        tkv_store_free(v);
    }
    e->cnt =
        (counters){e->cnt_committed.keys + staged.keys, e->cnt_committed.versions + staged.versions,
                   e->cnt_committed.swept_keys + staged.swept_keys};
    e->cnt_flight = e->cnt_committed;
    /* An empty database means every key that will ever exist passes through
     * memory first: misses need no disk lookup until something is evicted. */
    tkv_store_iter *it = tkv_store_iter_shared(e->store);
    const char first = TKV_KC_VERSION;
    tkv_store_iter_seek(it, &first, 1);
    size_t n = 0;
    const uint8_t *k = tkv_store_iter_valid(it) ? tkv_store_iter_key(it, &n) : NULL;
    e->all_resident = e->all_resident && !(k && n > 0 && k[0] == TKV_KC_VERSION);
    tkv_store_iter_release_shared(e->store);
    return 0;
}

/* ---- recovery --------------------------------------------------------------- */

/* Whether the data directory takes a synced write again. */
static int probe_disk(tkv_engine *e)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/write-probe.tmp", e->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(e->errmsg, sizeof e->errmsg, "data directory not writable: %s", strerror(errno));
        return -1;
    }
    static const char zeros[PROBE_BYTES];
    ssize_t n = write(fd, zeros, sizeof zeros);
    int err = n == (ssize_t)sizeof zeros ? (fsync(fd) == 0 ? 0 : errno) : (n < 0 ? errno : ENOSPC);
    close(fd);
    unlink(path);
    if (err) {
        snprintf(e->errmsg, sizeof e->errmsg, "data directory still refuses writes: %s",
                 strerror(err));
        return -1;
    }
    return 0;
}

static void set_broken(tkv_engine *e, const char *why)
{
    e->broken = true;
    e->last_probe_us = tkv_clock_mono_us();
    snprintf(e->fail_msg, sizeof e->fail_msg, "%s", why);
}

/* Drops every resident key: after a reopen, memory may disagree with what
 * LevelDB replayed. Nothing is uncommitted when this runs. */
static void forget_all(tkv_engine *e)
{
    for (tkv_kentry *E = tkv_keyindex_first(&e->ix), *next; E; E = next) {
        next = tkv_keyindex_next(E);
        eng_drop_entry(e, E);
    }
    e->hand = NULL;
    e->all_resident = false;
    eng_sweep_free(e);
}

/* Brings a failed store back: at most once per PROBE_INTERVAL_US, check
 * that the disk takes writes, then reopen LevelDB on a fresh log. Only
 * with nothing staged or in flight. */
static int recover(tkv_engine *e)
{
    uint64_t now = tkv_clock_mono_us();
    if (tkv_engine_pending(e) || now - e->last_probe_us < PROBE_INTERVAL_US)
        return -1;
    e->last_probe_us = now;
    if (probe_disk(e) < 0) {
        snprintf(e->fail_msg, sizeof e->fail_msg, "%s", e->errmsg);
        return -1;
    }
    tkv_store_opts so = eng_store_opts(e);
    char err[256];
    e->store_open = false;
    forget_all(e);
    if (tkv_store_reopen(e->store, &so, err, sizeof err) < 0 ||
        eng_load_state(e, err, sizeof err) < 0) {
        snprintf(e->errmsg, sizeof e->errmsg, "%s", err);
        snprintf(e->fail_msg, sizeof e->fail_msg, "reopening the store failed: %.200s", err);
        return -1;
    }
    e->store_open = true;
    e->broken = false;
    e->fail_msg[0] = '\0';
    e->st.reopens++;
    return 0;
}

bool tkv_engine_failing(const tkv_engine *e) { return e->broken || !e->store_open; }

int eng_writable(tkv_engine *e)
{
    if (!e->broken && e->store_open)
        return 0;
    if (recover(e) == 0)
        return 0;
    snprintf(e->errmsg, sizeof e->errmsg, "writes refused until storage recovers (%.200s)",
             e->fail_msg[0] ? e->fail_msg : "a write failed");
    return -1;
}

void tkv_engine_tick(tkv_engine *e)
{
    /* Writes try to recover themselves; this brings reads back too. */
    if (tkv_engine_failing(e))
        recover(e);
}

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
}

void eng_stage_del(tkv_engine *e, const void *k, size_t klen)
{
    tkv_store_batch_delete(e->stage.wb, k, klen);
    e->stage.ops++;
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
    if (e->in_flight) {
        drop_batch(e, &e->flight);
        batch_reset(&e->flight, 0);
        e->in_flight = false;
    }
    drop_batch(e, &e->stage);
    batch_reset(&e->stage, e->stage.epoch + 1);
    e->cnt = e->cnt_committed;
    e->cnt_flight = e->cnt_committed;
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
    int rc = tkv_store_write(e->store, e->flight.wb, sync, err, sizeof err);
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
    tkv_store_batch_put(e->stage.wb, COUNTERS_KEY, sizeof COUNTERS_KEY - 1, v, sizeof v);
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
    set_broken(e, e->errmsg);
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
        set_broken(e, e->errmsg);
        return -1;
    }
    e->unsynced = false;
    e->last_sync_us = tkv_clock_mono_us();
    return 0;
}
