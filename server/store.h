/*
 * store.h - tkv's ordered byte store: the only door to LevelDB.
 *
 * The engine sees a sorted map of byte strings to byte strings with four
 * handle types: the store itself, write batches applied atomically,
 * iterators, and snapshots (a frozen read view). Nothing outside store.c
 * includes <leveldb/c.h>, so the engine, a future replication sender or a
 * backup streamer can be written against this header alone.
 *
 * Conventions (said once here, as LevelDB's c.h does):
 *
 *  - Status. Functions that can fail return 0 on success and -1 on failure,
 *    with a one-line NUL-terminated reason written into the caller's
 *    (err, errlen) buffer (truncated to fit; errlen 0 writes nothing).
 *    tkv_store_get() returns 1 / 0 / -1 for found / absent / failed.
 *    Nothing here aborts or exits on bad input.
 *  - Ownership. *_new() and tkv_store_open() return heap handles freed by
 *    the matching *_free() / tkv_store_close(); every free is NULL-safe.
 *    Byte arguments (keys, values) are copied before the call returns.
 *  - Lifetimes. Key and value pointers an iterator returns stay valid until
 *    the iterator moves, is released or its store closes. Iterators and
 *    snapshots must be released before the store is closed or reopened.
 *  - Threads. The store handle is safe to use from several threads at once
 *    for tkv_store_get, tkv_store_write, tkv_store_iter_new,
 *    tkv_store_snapshot_new/_free and tkv_store_property (LevelDB's DB
 *    object is thread-safe). A batch, an iterator and the shared iterator
 *    belong to one thread at a time: the caller serialises their use.
 *    tkv_store_open/_reopen/_close and tkv_store_set_observer need the store
 *    to themselves.
 *  - Order. Keys compare as unsigned bytes (memcmp, shorter first on a tie).
 *  - Versions. A key that is a version encoding (keycodec.h: a version
 *    prefix P, then 8 bytes of ~ts) is stored in LevelDB inside a chunk of
 *    its key's versions (chunk.h); any other key is stored as itself. So a
 *    key that starts with a version prefix P must be P itself or a version
 *    encoding: anything else would sort among P's chunked versions. The
 *    engine's keys always are (keycodec.h).
 *
 * The data directory holds LevelDB's files under db/, the store's own log
 * under wal/, and tkvd.lock, locked with flock() while the store is open.
 */
#ifndef TKV_STORE_H
#define TKV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv_store_opts {
    const char *dir;     /* data directory; created if missing */
    size_t block_cache;  /* LevelDB block cache bytes; 0: LevelDB default */
    size_t write_buffer; /* bytes of records kept in the write buffer (the log's
                          * memory table) before they go to LevelDB; 0: 32 MiB */
    bool no_compression; /* write tables uncompressed (reads take either) */
    bool create;         /* create the database if missing */
} tkv_store_opts;

typedef struct tkv_store tkv_store;                   /* an open database */
typedef struct tkv_store_batch tkv_store_batch;       /* writes applied as one */
typedef struct tkv_store_iter tkv_store_iter;         /* a cursor over the keys */
typedef struct tkv_store_snapshot tkv_store_snapshot; /* a frozen read view */

/* ---- the store ------------------------------------------------------------ */

/* Opens (creating it if o->create) the database under o->dir and takes the
 * directory's lock. Returns 0 with *out set, or -1 with *out NULL and the
 * reason in err (another process holding the lock is named by its pid; a
 * corrupt database says how to repair it). */
int tkv_store_open(const tkv_store_opts *o, tkv_store **out, char *err, size_t errlen);

/* Closes and reopens LevelDB on s, keeping the directory lock and the
 * observer: after a failed write LevelDB's log may be out of step with its
 * file, so that handle must not write again. The shared iterator is
 * dropped; no other iterator or snapshot may be live. Returns 0, or -1 with
 * the reason in err: then s is left closed, and only tkv_store_reopen() and
 * tkv_store_close() may be called on it. (Should anything else be, LevelDB's
 * store refuses rather than crash on the missing handle: gets and writes
 * fail, iterators, snapshots and properties are NULL.) */
int tkv_store_reopen(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen);

/* Empties the database: afterwards it holds no record (a replica's full
 * copy starts so). As tkv_store_reopen() for what may be live, what
 * survives and how it fails. */
int tkv_store_wipe(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen);

/* Closes the database, releases the lock and frees s. NULL-safe. */
void tkv_store_close(tkv_store *s);

/* Runs LevelDB's repair on the database under dir (which must not be open),
 * holding the directory's lock for the duration. Returns 0, or -1 with the
 * reason in err (a running tkvd on dir: the message names its pid, and
 * nothing is touched). */
int tkv_store_repair(const char *dir, char *err, size_t errlen);

/* Whether what the store holds outlives the process: false only for the
 * memory backend (store_mem.c, meson -Dstore=memory), built for fuzzing
 * and tests. */
bool tkv_store_is_persistent(void);

/* Point lookup of k, in the current state (snap NULL) or as of snap.
 * Returns 1 with *val a malloc'd copy of the value (*vlen bytes; free it
 * with tkv_store_free()), 0 if k is absent (*val NULL), or -1 with the
 * reason in err. */
int tkv_store_get(tkv_store *s, const tkv_store_snapshot *snap, const void *k, size_t klen,
                  char **val, size_t *vlen, char *err, size_t errlen);

/* Frees a value returned by tkv_store_get(). NULL-safe. */
void tkv_store_free(void *p);

/* A LevelDB property such as "leveldb.stats", as a malloc'd string the
 * caller frees with free(); NULL if the property is unknown. */
char *tkv_store_property(tkv_store *s, const char *name);

/* ---- batches -------------------------------------------------------------- */

/* A new, empty batch; NULL if out of memory. A batch is independent of any
 * store and may be reused after tkv_store_batch_clear(). */
tkv_store_batch *tkv_store_batch_new(void);
void tkv_store_batch_free(tkv_store_batch *b);

/* Record a put or a delete; within a batch the later record for a key wins.
 * Neither can fail short of running out of memory, which LevelDB does not
 * report (it throws and the process ends). */
void tkv_store_batch_put(tkv_store_batch *b, const void *k, size_t klen, const void *v,
                         size_t vlen);
void tkv_store_batch_delete(tkv_store_batch *b, const void *k, size_t klen);
/* A put of a version encoding (keycodec.h) that the caller knows is newer
 * than every version of its key the store holds, written or staged: the
 * store may then skip looking for older versions to merge it with. Read
 * back (tkv_store_batch_iterate, the observer) it is a plain put. Getting
 * it wrong breaks reads of that key, so claim it only when sure. */
void tkv_store_batch_put_newest(tkv_store_batch *b, const void *k, size_t klen, const void *v,
                                size_t vlen);

/* Records a drop of prefix p, a version prefix (keycodec.h's
 * tkv_kc_prefix): every version of p written before it - in earlier
 * batches or earlier in this one - is deleted, at the cost of one record
 * however many there are. Versions added after it are kept. The store
 * deletes the dropped records from LevelDB in the background (the flush);
 * readers never see them again. A p that is not a version prefix makes
 * the batch's log record malformed: only the engine's keys may be
 * dropped. */
void tkv_store_batch_drop(tkv_store_batch *b, const void *p, size_t plen);

/* Empties the batch for reuse. */
void tkv_store_batch_clear(tkv_store_batch *b);

/* Records (puts and deletes) in the batch, and their key and value bytes. */
size_t tkv_store_batch_size(const tkv_store_batch *b);
size_t tkv_store_batch_bytes(const tkv_store_batch *b);

/* Calls put, del or drop (with the prefix) for each record in the order
 * they were added. The pointers are valid during the call only. */
typedef void (*tkv_store_put_fn)(void *ctx, const void *k, size_t klen, const void *v, size_t vlen);
typedef void (*tkv_store_del_fn)(void *ctx, const void *k, size_t klen);
void tkv_store_batch_iterate(const tkv_store_batch *b, void *ctx, tkv_store_put_fn put,
                             tkv_store_del_fn del, tkv_store_del_fn drop);

/* Applies the batch atomically: after a crash either all of it or none of
 * it is there. With sync the write reaches stable storage (fsync) before
 * the call returns; without it, a machine crash may lose it (a process
 * crash does not). The batch is not changed. Returns 0, or -1 with
 * LevelDB's message in err; after a failure the store must not be written
 * again until tkv_store_reopen() succeeds. An empty batch with sync syncs
 * earlier unsynced writes. */
int tkv_store_write(tkv_store *s, tkv_store_batch *b, bool sync, char *err, size_t errlen);

/* Moves everything written before the call from the write buffer into
 * LevelDB (synced) and waits for it. Nothing needs it for correctness -
 * reads see written records wherever they are - but tests use it to reach
 * LevelDB's records on purpose. Returns 0, or -1 with the reason in err. */
int tkv_store_flush(tkv_store *s, char *err, size_t errlen);

/* Called after each successful tkv_store_write() - empty batches included -
 * on the thread that wrote, before tkv_store_write() returns. `b` is the
 * batch just written (read it with tkv_store_batch_iterate(); valid during
 * the call only) and `sync` whether it was synced. The observer must not
 * write to the store, and it delays the writer: it should copy and return.
 * Failed writes are not observed. */
typedef void (*tkv_store_observer)(void *ctx, const tkv_store_batch *b, bool sync);

/* Installs fn (NULL: none) with its ctx; at most one observer. Set it while
 * no write is running; it survives tkv_store_reopen(). */
void tkv_store_set_observer(tkv_store *s, tkv_store_observer fn, void *ctx);

/* ---- iterators ------------------------------------------------------------ */

/* A new iterator over the current state (snap NULL) or over snap; it starts
 * unpositioned (not valid). It sees the state as of its creation: later
 * writes are invisible to it, and it pins the files it reads (memory and
 * disk) until freed, so long-lived iterators should be avoided. NULL if out
 * of memory. */
tkv_store_iter *tkv_store_iter_new(tkv_store *s, const tkv_store_snapshot *snap);
void tkv_store_iter_free(tkv_store_iter *it);

/* The store's shared iterator for the thread that owns the store's reads
 * (the reactor), created on first use: creating one costs about a
 * microsecond. It sees the state as of its creation, so the owner releases
 * it after each write (and when idle, to unpin files). The pointer stays
 * valid until tkv_store_iter_release_shared(), tkv_store_reopen() or
 * tkv_store_close(); never tkv_store_iter_free() it. */
tkv_store_iter *tkv_store_iter_shared(tkv_store *s);
void tkv_store_iter_release_shared(tkv_store *s);

/* Positioning: at the first key >= k; at the first / last key; one step. */
void tkv_store_iter_seek(tkv_store_iter *it, const void *k, size_t klen);
void tkv_store_iter_seek_first(tkv_store_iter *it);
void tkv_store_iter_seek_last(tkv_store_iter *it);
/* next/prev require a valid iterator; past either end it becomes invalid. */
void tkv_store_iter_next(tkv_store_iter *it);
void tkv_store_iter_prev(tkv_store_iter *it);

/* Whether the iterator is on a record. An invalid iterator may be at an end
 * or have failed: tkv_store_iter_status() tells which. */
bool tkv_store_iter_valid(const tkv_store_iter *it);

/* The current record's key and value (valid iterator only); the pointers
 * stay valid until the iterator moves or is released. */
const uint8_t *tkv_store_iter_key(const tkv_store_iter *it, size_t *klen);
const uint8_t *tkv_store_iter_value(const tkv_store_iter *it, size_t *vlen);

/* 0, or -1 with the reason in err if reading failed (corruption, I/O). */
int tkv_store_iter_status(const tkv_store_iter *it, char *err, size_t errlen);

/* ---- snapshots ------------------------------------------------------------ */

/* A read view of the store's current state: reads through it (get or
 * iterators) see neither later writes nor compactions' effects, which makes
 * it the unit of a consistent backup or full sync. It holds back the
 * removal of overwritten data until freed. NULL if out of memory. */
tkv_store_snapshot *tkv_store_snapshot_new(tkv_store *s);
/* Releases snap, which must come from s; iterators made from it must be
 * freed first. NULL-safe. */
void tkv_store_snapshot_free(tkv_store *s, tkv_store_snapshot *snap);

#endif
