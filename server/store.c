/*
 * store.c - implements store.h on LevelDB's C API; the only file that
 * includes <leveldb/c.h>.
 *
 * The handles are thin: a batch is a LevelDB write batch plus the record
 * and byte counts LevelDB's C API does not report; an iterator is a LevelDB
 * iterator plus the read options that carry its snapshot; a snapshot is a
 * LevelDB snapshot plus read options aimed at it. Every read verifies
 * checksums (paranoid: a damaged block is an error, never wrong data).
 *
 * The data directory holds LevelDB's files under db/ and tkvd.lock, a file
 * locked with flock() for the life of the process and holding the owner's
 * pid, so a second server on the same directory fails at once and says who
 * has it.
 */
#include "store.h"

#include "datadir.h"

#include <leveldb/c.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct tkv_store_iter {
    leveldb_iterator_t *it;
};

struct tkv_store_batch {
    leveldb_writebatch_t *wb;
    size_t records;
    size_t bytes;
};

struct tkv_store_snapshot {
    const leveldb_snapshot_t *snap;
    leveldb_readoptions_t *ropts; /* verify checksums, read at snap */
};

struct tkv_store {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *bloom;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wsync;   /* sync = true */
    leveldb_writeoptions_t *wnosync; /* sync = false */
    tkv_store_iter shared;           /* shared.it NULL when released */
    tkv_store_observer observer;
    void *observer_ctx;
    int lock_fd;
    char *dbpath;
};

static void make_options(tkv_store *s, const tkv_store_opts *o)
{
    s->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(s->opts, o->create);
    leveldb_options_set_paranoid_checks(s->opts, 1);
    /* Each table block records its own compression, so a directory written
     * in either mode opens in the other. */
    leveldb_options_set_compression(s->opts, o->no_compression ? leveldb_no_compression
                                                               : leveldb_snappy_compression);
    if (o->block_cache) {
        s->cache = leveldb_cache_create_lru(o->block_cache);
        leveldb_options_set_cache(s->opts, s->cache);
    }
    if (o->write_buffer)
        leveldb_options_set_write_buffer_size(s->opts, o->write_buffer);
    s->bloom = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_filter_policy(s->opts, s->bloom);
    s->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(s->ropts, 1);
    s->wsync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wsync, 1);
    s->wnosync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wnosync, 0);
}

static int open_db(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    make_options(s, o);
    char *lerr = NULL;
    s->db = leveldb_open(s->opts, s->dbpath, &lerr);
    if (!s->db) {
        char what[600];
        snprintf(what, sizeof what, "cannot open the database in %s", s->dbpath);
        tkv_datadir_err(err, errlen, what, lerr);
        if (strstr(lerr, "Corruption")) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n,
                     ". The data directory is damaged: stop tkvd, back the directory up, "
                     "then run 'tkvd --data-dir DIR --repair' (see README.md)");
        }
        leveldb_free(lerr);
        return -1;
    }
    return 0;
}

/* Releases LevelDB's handles but not the directory lock. */
static void close_db(tkv_store *s)
{
    tkv_store_iter_release_shared(s);
    if (s->db)
        leveldb_close(s->db);
    if (s->opts)
        leveldb_options_destroy(s->opts);
    if (s->cache)
        leveldb_cache_destroy(s->cache);
    if (s->bloom)
        leveldb_filterpolicy_destroy(s->bloom);
    if (s->ropts)
        leveldb_readoptions_destroy(s->ropts);
    if (s->wsync)
        leveldb_writeoptions_destroy(s->wsync);
    if (s->wnosync)
        leveldb_writeoptions_destroy(s->wnosync);
    s->db = NULL;
    s->opts = NULL;
    s->cache = NULL;
    s->bloom = NULL;
    s->ropts = NULL;
    s->wsync = s->wnosync = NULL;
}

int tkv_store_open(const tkv_store_opts *o, tkv_store **out, char *err, size_t errlen)
{
    *out = NULL;
    tkv_store *s = calloc(1, sizeof *s);
    if (!s) {
        tkv_datadir_err(err, errlen, "out of memory", NULL);
        return -1;
    }
    s->lock_fd = -1;
    if ((o->create && tkv_datadir_make(o->dir, err, errlen) < 0) ||
        tkv_datadir_lock(o->dir, &s->lock_fd, err, errlen) < 0) {
        tkv_store_close(s);
        return -1;
    }
    size_t n = strlen(o->dir) + sizeof "/db";
    s->dbpath = malloc(n);
    if (!s->dbpath) {
        tkv_datadir_err(err, errlen, "out of memory", NULL);
        tkv_store_close(s);
        return -1;
    }
    snprintf(s->dbpath, n, "%s/db", o->dir);
    if (open_db(s, o, err, errlen) < 0) {
        tkv_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int tkv_store_reopen(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    close_db(s);
    if (open_db(s, o, err, errlen) < 0) {
        close_db(s);
        return -1;
    }
    return 0;
}

/* LevelDB deletes a database's files faster than a batch could delete its
 * records, and leaves no tombstones for compaction to carry. */
int tkv_store_wipe(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    close_db(s);
    leveldb_options_t *lo = leveldb_options_create();
    char *lerr = NULL;
    leveldb_destroy_db(lo, s->dbpath, &lerr);
    leveldb_options_destroy(lo);
    if (lerr) {
        tkv_datadir_err(err, errlen, "cannot empty the database", lerr);
        leveldb_free(lerr);
    }
    if (lerr || open_db(s, o, err, errlen) < 0) {
        close_db(s);
        return -1;
    }
    return 0;
}

void tkv_store_close(tkv_store *s)
{
    if (!s)
        return;
    close_db(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->dbpath);
    free(s);
}

/* Repair rewrites LevelDB's files wholesale and moves any log it cannot
 * account for into lost/: run against a live server's directory it would
 * take that server's acknowledged writes with it. So it takes the same
 * lock tkvd holds, and refuses while anyone else has it. */
int tkv_store_repair(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/db", dir);
    struct stat st;
    int serr = stat(path, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (serr) {
        char what[4200];
        snprintf(what, sizeof what, "no database to repair in %s", path);
        tkv_datadir_err(err, errlen, what, strerror(serr));
        return -1;
    }
    tkv_store s = {.lock_fd = -1};
    if (tkv_datadir_lock(dir, &s.lock_fd, err, errlen) < 0)
        return -1;
    leveldb_options_t *o = leveldb_options_create();
    char *lerr = NULL;
    leveldb_repair_db(o, path, &lerr);
    leveldb_options_destroy(o);
    close(s.lock_fd);
    if (lerr) {
        tkv_datadir_err(err, errlen, "repair failed", lerr);
        leveldb_free(lerr);
        return -1;
    }
    return 0;
}

bool tkv_store_is_persistent(void) { return true; }

/* store.h allows only reopen and close on a store whose reopen failed, and
 * the engine keeps to that; but LevelDB's C API takes a NULL handle for a
 * crash, so the calls that could still reach it refuse instead. */
static int closed(const tkv_store *s, char *err, size_t errlen)
{
    if (s->db)
        return 0;
    tkv_datadir_err(err, errlen, "the store is closed (a reopen failed)", NULL);
    return -1;
}

/* LevelDB hands out its messages malloc'd; this copies one into err. */
static int take_lerr(char *lerr, char *err, size_t errlen)
{
    if (!lerr)
        return 0;
    tkv_datadir_err(err, errlen, lerr, NULL);
    leveldb_free(lerr);
    return -1;
}

int tkv_store_get(tkv_store *s, const tkv_store_snapshot *snap, const void *k, size_t klen,
                  char **val, size_t *vlen, char *err, size_t errlen)
{
    char *lerr = NULL;
    if (closed(s, err, errlen) < 0) {
        *val = NULL;
        return -1;
    }
    *val = leveldb_get(s->db, snap ? snap->ropts : s->ropts, k, klen, vlen, &lerr);
    if (take_lerr(lerr, err, errlen) < 0) {
        *val = NULL;
        return -1;
    }
    return *val ? 1 : 0;
}

void tkv_store_free(void *p)
{
    if (p)
        leveldb_free(p);
}

char *tkv_store_property(tkv_store *s, const char *name)
{
    /* Copied so that the caller's free() is the right deallocator whatever
     * LevelDB's allocator is. */
    if (!s->db)
        return NULL;
    char *v = leveldb_property_value(s->db, name);
    char *copy = v ? strdup(v) : NULL;
    tkv_store_free(v);
    return copy;
}

/* ---- batches -------------------------------------------------------------- */

tkv_store_batch *tkv_store_batch_new(void)
{
    tkv_store_batch *b = calloc(1, sizeof *b);
    if (b && !(b->wb = leveldb_writebatch_create())) {
        free(b);
        return NULL;
    }
    return b;
}

void tkv_store_batch_free(tkv_store_batch *b)
{
    if (!b)
        return;
    leveldb_writebatch_destroy(b->wb);
    free(b);
}

void tkv_store_batch_put(tkv_store_batch *b, const void *k, size_t klen, const void *v, size_t vlen)
{
    leveldb_writebatch_put(b->wb, k, klen, v, vlen);
    b->records++;
    b->bytes += klen + vlen;
}

void tkv_store_batch_delete(tkv_store_batch *b, const void *k, size_t klen)
{
    leveldb_writebatch_delete(b->wb, k, klen);
    b->records++;
    b->bytes += klen;
}

void tkv_store_batch_clear(tkv_store_batch *b)
{
    leveldb_writebatch_clear(b->wb);
    b->records = 0;
    b->bytes = 0;
}

size_t tkv_store_batch_size(const tkv_store_batch *b) { return b->records; }

size_t tkv_store_batch_bytes(const tkv_store_batch *b) { return b->bytes; }

typedef struct iterate_ctx {
    void *ctx;
    tkv_store_put_fn put;
    tkv_store_del_fn del;
} iterate_ctx;

static void iterate_put(void *p, const char *k, size_t klen, const char *v, size_t vlen)
{
    iterate_ctx *c = p;
    c->put(c->ctx, k, klen, v, vlen);
}

static void iterate_del(void *p, const char *k, size_t klen)
{
    iterate_ctx *c = p;
    c->del(c->ctx, k, klen);
}

void tkv_store_batch_iterate(const tkv_store_batch *b, void *ctx, tkv_store_put_fn put,
                             tkv_store_del_fn del)
{
    iterate_ctx c = {ctx, put, del};
    leveldb_writebatch_iterate(b->wb, &c, iterate_put, iterate_del);
}

int tkv_store_write(tkv_store *s, tkv_store_batch *b, bool sync, char *err, size_t errlen)
{
    char *lerr = NULL;
    if (closed(s, err, errlen) < 0)
        return -1;
    leveldb_write(s->db, sync ? s->wsync : s->wnosync, b->wb, &lerr);
    if (take_lerr(lerr, err, errlen) < 0)
        return -1;
    if (s->observer)
        s->observer(s->observer_ctx, b, sync);
    return 0;
}

int tkv_store_flush(tkv_store *s, char *err, size_t errlen) { return closed(s, err, errlen); }

void tkv_store_set_observer(tkv_store *s, tkv_store_observer fn, void *ctx)
{
    s->observer = fn;
    s->observer_ctx = ctx;
}

/* ---- iterators ------------------------------------------------------------ */

tkv_store_iter *tkv_store_iter_new(tkv_store *s, const tkv_store_snapshot *snap)
{
    /* A snapshot's read options live as long as the snapshot, which the
     * iterator may not outlive. */
    if (!s->db)
        return NULL;
    tkv_store_iter *it = malloc(sizeof *it);
    if (it)
        it->it = leveldb_create_iterator(s->db, snap ? snap->ropts : s->ropts);
    return it;
}

void tkv_store_iter_free(tkv_store_iter *it)
{
    if (!it)
        return;
    leveldb_iter_destroy(it->it);
    free(it);
}

tkv_store_iter *tkv_store_iter_shared(tkv_store *s)
{
    if (!s->db)
        return NULL;
    if (!s->shared.it)
        s->shared.it = leveldb_create_iterator(s->db, s->ropts);
    return &s->shared;
}

void tkv_store_iter_release_shared(tkv_store *s)
{
    if (s->shared.it) {
        leveldb_iter_destroy(s->shared.it);
        s->shared.it = NULL;
    }
}

void tkv_store_iter_seek(tkv_store_iter *it, const void *k, size_t klen)
{
    leveldb_iter_seek(it->it, k, klen);
}

void tkv_store_iter_seek_first(tkv_store_iter *it) { leveldb_iter_seek_to_first(it->it); }

void tkv_store_iter_seek_last(tkv_store_iter *it) { leveldb_iter_seek_to_last(it->it); }

void tkv_store_iter_next(tkv_store_iter *it) { leveldb_iter_next(it->it); }

void tkv_store_iter_prev(tkv_store_iter *it) { leveldb_iter_prev(it->it); }

bool tkv_store_iter_valid(const tkv_store_iter *it) { return leveldb_iter_valid(it->it); }

const uint8_t *tkv_store_iter_key(const tkv_store_iter *it, size_t *klen)
{
    return (const uint8_t *)leveldb_iter_key(it->it, klen);
}

const uint8_t *tkv_store_iter_value(const tkv_store_iter *it, size_t *vlen)
{
    return (const uint8_t *)leveldb_iter_value(it->it, vlen);
}

int tkv_store_iter_status(const tkv_store_iter *it, char *err, size_t errlen)
{
    char *lerr = NULL;
    leveldb_iter_get_error(it->it, &lerr);
    return take_lerr(lerr, err, errlen);
}

/* ---- snapshots ------------------------------------------------------------ */

tkv_store_snapshot *tkv_store_snapshot_new(tkv_store *s)
{
    if (!s->db)
        return NULL;
    tkv_store_snapshot *snap = calloc(1, sizeof *snap);
    if (!snap)
        return NULL;
    snap->snap = leveldb_create_snapshot(s->db);
    snap->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(snap->ropts, 1);
    leveldb_readoptions_set_snapshot(snap->ropts, snap->snap);
    return snap;
}

void tkv_store_snapshot_free(tkv_store *s, tkv_store_snapshot *snap)
{
    if (!snap)
        return;
    leveldb_readoptions_destroy(snap->ropts);
    leveldb_release_snapshot(s->db, snap->snap);
    free(snap);
}
