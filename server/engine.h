/*
 * engine.h - tkv's storage engine: versions of keys, in memory and on disk.
 *
 * LevelDB holds every committed version. Memory is a cache of it, organised
 * per key: a resident key has a version page and a watermark `lo`, and the
 * page holds *every* version of the key with ts >= lo (lo = 0: every version
 * at all). Reads answer from the page when the answer lies at or above lo
 * and merge with LevelDB below it, so a key whose old versions were evicted
 * still answers exactly. A key that is not resident is loaded on first
 * access: its newest versions (up to fill_versions) become resident.
 *
 * Writes are staged: a PUT or DEL changes memory at once - later reads, on
 * any connection, see it - and joins the current write batch. Nothing is
 * durable until tkv_engine_commit() writes the batch to LevelDB in one
 * atomic write. The caller (the server's reactor) commits once per loop
 * iteration and only then releases the replies of that iteration: group
 * commit. If a commit fails, every key the batch touched is dropped from
 * memory, so memory falls back to what LevelDB holds; reads that observed a
 * staged change report it through tkv_answer.dirty so their replies can be
 * withdrawn too. The failed LevelDB handle is never written again: later
 * commits fail fast until a synced probe write in the data directory
 * succeeds, then LevelDB is reopened and writes resume.
 *
 * Memory is bounded by max_memory: tkv_engine_maintain() evicts keys not
 * used recently (a clock sweep). Eviction only drops copies of committed
 * data.
 *
 * Versions are stored as blobs: one flags byte (0 for a plain value), then
 * the value bytes. Memory and disk hold identical blobs.
 *
 * Conventions: functions return a tkv_status (proto.h); TKV_ST_STORAGE means
 * LevelDB failed and a message is available from tkv_engine_errmsg(). Value
 * pointers handed out stay valid until the next call into the engine.
 */
#ifndef TKV_ENGINE_H
#define TKV_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

typedef struct tkv_engine tkv_engine;

typedef uint64_t (*tkv_clock_fn)(void *ctx); /* microseconds since the epoch */

typedef struct tkv_engine_opts {
    const char *dir;            /* data directory */
    size_t block_cache;         /* LevelDB block cache bytes (0: default) */
    size_t write_buffer;        /* LevelDB memtable bytes (0: default) */
    uint32_t fill_versions;     /* newest versions loaded on a miss (0: 256) */
    uint32_t resident_versions; /* most versions a key keeps in memory (0: 4096) */
    size_t max_memory;          /* budget of the in-memory index (0: none) */
    bool sync;                  /* fsync every commit */
    tkv_clock_fn clock;         /* NULL: the real-time clock */
    void *clock_ctx;
} tkv_engine_opts;

/* The answer to a GET. */
typedef struct tkv_answer {
    uint64_t ts;          /* found: the version's timestamp */
    uint64_t next;        /* timestamp of the next newer version, if has_next;
                             for a miss, of the key's first version */
    const uint8_t *value; /* found: value bytes (valid until the next call) */
    uint32_t len;
    bool has_next;
    bool dirty;           /* the answer depends on uncommitted writes */
    tkv_miss miss;        /* NOT_FOUND: why */
} tkv_answer;

/* One RANGE entry; return false to stop the scan. */
typedef bool (*tkv_range_cb)(void *ctx, uint64_t ts, const uint8_t *value, uint32_t len);

typedef struct tkv_engine_stats {
    uint64_t keys;           /* keys with at least one version (exact) */
    uint64_t versions;       /* versions stored (exact) */
    uint64_t mem_keys;       /* resident keys, including known-empty ones */
    uint64_t mem_versions;   /* resident versions */
    uint64_t mem_bytes;      /* allocator bytes of the in-memory index */
    uint64_t reads_mem;      /* reads answered from memory alone */
    uint64_t reads_disk;     /* reads that needed LevelDB */
    uint64_t fills;          /* keys loaded from LevelDB */
    uint64_t evictions;      /* keys dropped from memory to hold the budget */
    uint64_t max_memory;     /* the budget (0: none) */
    uint64_t reopens;        /* LevelDB reopened after a failed write */
    uint64_t commits;        /* batches written */
    uint64_t commit_writes;  /* versions written or deleted by those batches */
    uint64_t commit_errors;  /* failed batch writes */
} tkv_engine_stats;

/* Opens the engine on o->dir, creating it if missing. Returns 0, or -1 with
 * a readable reason in err. */
int tkv_engine_open(const tkv_engine_opts *o, tkv_engine **out, char *err, size_t errlen);

/* Closes without committing; staged writes are lost. NULL-safe. */
void tkv_engine_close(tkv_engine *e);

/* Stages a version of key at ts (or, if !has_ts, at the current time but
 * strictly after the key's newest version). A version already at ts is
 * replaced. *out_ts gets the timestamp used. Errors: OUT_OF_RANGE (no later
 * timestamp exists), STORAGE, INTERNAL (out of memory). */
tkv_status tkv_engine_put(tkv_engine *e, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t ts, bool has_ts, uint64_t *out_ts, bool *dirty);

/* The version of key current at ts: the largest timestamp <= ts. OK or
 * NOT_FOUND (with out->miss), or STORAGE. */
tkv_status tkv_engine_get(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t ts,
                          tkv_answer *out);

/* Calls cb for the versions with from <= ts <= to, oldest first (newest
 * first if reverse), at most limit of them. *dirty as in tkv_answer. */
tkv_status tkv_engine_range(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t from,
                            uint64_t to, uint64_t limit, bool reverse, tkv_range_cb cb,
                            void *ctx, bool *dirty);

/* Stages the removal of every version of key; *removed gets their number. */
tkv_status tkv_engine_del(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t *removed,
                          bool *dirty);

/* True if writes are staged and not yet committed. */
bool tkv_engine_pending(const tkv_engine *e);

/* Writes the staged batch to LevelDB (synced if opts.sync). Returns 0; or
 * -1 if LevelDB failed, in which case the staged writes are discarded, every
 * key they touched is dropped from memory, and the reason is in errmsg. */
int tkv_engine_commit(tkv_engine *e);

/* Forces what was committed to stable storage (one synced empty write). */
int tkv_engine_sync(tkv_engine *e);

/* Evicts cold keys while the in-memory index is above max_memory. Call
 * between commits (it does nothing while writes are staged); the work per
 * call is bounded. */
void tkv_engine_maintain(tkv_engine *e);

/* True after a failed write until writes succeed again. */
bool tkv_engine_failing(const tkv_engine *e);

/* Periodic housekeeping (call about once a second): retries opening the
 * store if a recovery left it closed. */
void tkv_engine_tick(tkv_engine *e);

/* Releases resources held between operations (the cached LevelDB iterator).
 * Call when idle. */
void tkv_engine_idle(tkv_engine *e);

/* The message of the last STORAGE error or failed commit. */
const char *tkv_engine_errmsg(const tkv_engine *e);

void tkv_engine_stats_get(const tkv_engine *e, tkv_engine_stats *s);

/* A LevelDB property ("leveldb.stats"); malloc'd, caller frees; or NULL. */
char *tkv_engine_property(tkv_engine *e, const char *name);

/* Runs LevelDB's repair on a data directory that is not open. */
int tkv_engine_repair(const char *dir, char *err, size_t errlen);

#endif
