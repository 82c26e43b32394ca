/*
 * recover.c - the engine's store across failures: loading the persistent
 * state when the store opens, and bringing a failed store back.
 *
 * After a failed write the LevelDB handle is never written again (its log
 * writer may be out of step with the file): writes are refused at once
 * (eng_writable) until a synced probe write in the data directory
 * succeeds, then the store is reopened on a fresh log. Recovery runs only
 * with nothing staged or in flight, and forgets everything memory holds: a
 * batch whose write reached the log but whose sync failed may be replayed
 * by the reopen (LevelDB's own rule), so after it only the store knows the
 * truth. Such a batch was reported as failed; its outcome was
 * indeterminate, as with any database whose sync fails. commit.c marks the
 * store broken (eng_set_broken) when a write fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "engine_int.h"

/* Recovery probes the disk at most this often (microseconds). */
#define PROBE_INTERVAL_US 100000
/* The probe write: large enough that a full disk refuses it. */
#define PROBE_BYTES (64 * 1024)

/* The write buffer's default follows the memory budget: it comes on top
 * of it, so a small budget gets a small buffer. */
#define WRITE_BUFFER_MAX (32u << 20)
#define WRITE_BUFFER_MIN (1u << 20)

tkv_store_opts eng_store_opts(const tkv_engine *e)
{
    size_t wb = e->opts.write_buffer;
    if (!wb && e->opts.max_memory) {
        wb = e->opts.max_memory / 4;
        wb = wb < WRITE_BUFFER_MIN   ? WRITE_BUFFER_MIN
             : wb > WRITE_BUFFER_MAX ? WRITE_BUFFER_MAX
                                     : wb;
    }
    return (tkv_store_opts){.dir = e->dir,
                            .block_cache = e->opts.block_cache,
                            .write_buffer = wb,
                            .no_compression = e->opts.no_compression,
                            .create = true};
}

int eng_load_state(tkv_engine *e, bool reopened, char *err, size_t errlen)
{
    if (eng_repl_load(e, reopened, err, errlen) < 0)
        return -1;
    char *v;
    size_t vlen;
    int rc = tkv_store_get(e->store, NULL, ENG_COUNTERS_KEY, sizeof ENG_COUNTERS_KEY - 1, &v, &vlen,
                           err, errlen);
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

void eng_set_broken(tkv_engine *e, const char *why)
{
    e->broken = true;
    e->last_probe_us = tkv_clock_mono_us();
    snprintf(e->fail_msg, sizeof e->fail_msg, "%s", why);
}

/* Drops every resident key: after a reopen, memory may disagree with what
 * LevelDB replayed. Nothing is uncommitted when this runs. */
void eng_forget_all(tkv_engine *e)
{
    for (tkv_kentry *E = tkv_keyindex_first(&e->ix), *next; E; E = next) {
        next = tkv_keyindex_next(E);
        eng_drop_entry(e, E);
    }
    e->hand = NULL;
    e->all_resident = false;
    e->gen++;
    eng_sweep_free(e);
}

/* Brings a failed store back: at most once per PROBE_INTERVAL_US, check
 * that the disk takes writes, then reopen LevelDB on a fresh log. Only
 * with nothing staged or in flight. */
static int recover(tkv_engine *e)
{
    uint64_t now = tkv_clock_mono_us();
    /* Loads in flight read the store: it is not reopened under them. */
    if (tkv_engine_pending(e) || e->loads_out > 0 || now - e->last_probe_us < PROBE_INTERVAL_US)
        return -1;
    e->last_probe_us = now;
    if (probe_disk(e) < 0) {
        snprintf(e->fail_msg, sizeof e->fail_msg, "%s", e->errmsg);
        return -1;
    }
    tkv_store_opts so = eng_store_opts(e);
    char err[256];
    e->store_open = false;
    eng_forget_all(e);
    if (tkv_store_reopen(e->store, &so, err, sizeof err) < 0 ||
        eng_load_state(e, true, err, sizeof err) < 0) {
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

tkv_eng_rc eng_store_closed(tkv_engine *e)
{
    snprintf(e->errmsg, sizeof e->errmsg, "storage failing: %.200s",
             e->fail_msg[0] ? e->fail_msg : "the store is closed");
    return TKV_E_STORAGE;
}

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
