/*
 * store.h - tkv's handle on LevelDB: opening a data directory (with an
 * exclusive lock and a clear message when another process holds it), the
 * read and write options tkv uses, and one cached iterator.
 *
 * Creating a LevelDB iterator costs about a microsecond and pins the current
 * memtable and files, so the store keeps one and drops it whenever the
 * database changes (after each commit) or the reactor goes idle.
 */
#ifndef TKV_STORE_H
#define TKV_STORE_H

#include <leveldb/c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv_store_opts {
    const char *dir;         /* data directory; created if missing */
    size_t block_cache;      /* LevelDB block cache bytes; 0: LevelDB default */
    size_t write_buffer;     /* LevelDB memtable bytes; 0: LevelDB default */
    bool no_compression;     /* write tables uncompressed (reads take either) */
    bool create;             /* create the database if missing */
} tkv_store_opts;

typedef struct tkv_store {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *bloom;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wsync;   /* sync = true */
    leveldb_writeoptions_t *wnosync; /* sync = false */
    leveldb_iterator_t *iter;        /* cached; NULL when dropped */
    int lock_fd;
    char *dbpath;
} tkv_store;

/* Opens (creating if allowed) the database under o->dir. Returns 0, or -1
 * with a one-line explanation in err. */
int tkv_store_open(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen);
/* Closes and reopens LevelDB, keeping the directory lock: after a failed
 * write LevelDB's log may be out of step with its file, so the handle must
 * not write again. On failure the store is left closed (db == NULL). */
int tkv_store_reopen(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen);

/* Closes the database and releases the lock. NULL-safe, idempotent. */
void tkv_store_close(tkv_store *s);

/* Runs LevelDB's repair on the database under dir, holding the directory's
 * lock for the duration. Returns 0, or -1 with a one-line explanation in err
 * (a running tkvd on dir: the message names its pid; nothing is touched). */
int tkv_store_repair(const char *dir, char *err, size_t errlen);

/* The cached iterator, created on first use after a drop. */
leveldb_iterator_t *tkv_store_iter(tkv_store *s);
void tkv_store_iter_drop(tkv_store *s);

/* Writes a batch. Returns 0, or -1 with LevelDB's message in err. */
int tkv_store_write(tkv_store *s, leveldb_writebatch_t *b, bool sync, char *err, size_t errlen);

/* Point lookup. Returns 1 (found; *val is malloc'd, free with leveldb_free),
 * 0 (absent) or -1 (error, message in err). */
int tkv_store_get(tkv_store *s, const void *k, size_t klen, char **val, size_t *vlen,
                  char *err, size_t errlen);

/* LevelDB property (e.g. "leveldb.stats"); malloc'd string or NULL. */
char *tkv_store_property(tkv_store *s, const char *name);

#endif
