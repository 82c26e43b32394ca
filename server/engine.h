/*
 * engine.h - tkv's storage engine: versions of keys, in memory and on disk.
 *
 * LevelDB holds every committed version. Memory is a cache of it, organised
 * per key: a resident key has a version page and a watermark `lo`, and the
 * page holds *every* stored version of the key with ts >= lo (lo = 0: every
 * version at all). Reads answer from the page at or above lo and merge with
 * LevelDB below it, so a key whose old versions were evicted still answers
 * exactly. A key that is not resident is loaded on first access: its
 * metadata and its newest versions (up to fill_versions; a write loads
 * only the newest) become resident.
 *
 * Versions: a value, or a tombstone (DEL at a time), optionally with an
 * expiry time. A version is *visible* when it has not expired and lies at or
 * after the key's retention horizon; every read sees visible versions only.
 * Expired versions and versions below the horizon are removed physically by
 * an incremental sweep (tkv_engine_sweep); removing them changes no answer.
 * The sweep also enforces retention policies by count and age: it moves a
 * key's horizon when it finds versions the policy excludes, so those stay
 * readable until the sweep reaches the key (RETAIN moves it at once).
 *
 * Writes are staged: a write changes memory at once - later reads, on any
 * connection, see it - and joins the current write batch. Nothing is
 * durable until tkv_engine_commit() writes the batch to LevelDB in one
 * atomic write. The caller (the server's reactor) commits once per loop
 * iteration and only then releases the replies of that iteration: group
 * commit. If a commit fails, every key the batch touched is dropped from
 * memory, so memory falls back to what LevelDB holds; reads that observed a
 * staged change report it through their `dirty` flag so their replies can be
 * withdrawn too. The failed LevelDB handle is never written again: writes
 * fail at once (STORAGE) until a synced probe write in the data directory
 * succeeds, then LevelDB is reopened, memory is emptied and writes resume.
 * A failed batch's outcome is indeterminate: if its write reached
 * LevelDB's log and only the sync failed, the reopen replays it.
 *
 * Memory is bounded by max_memory: tkv_engine_maintain() evicts keys not
 * used recently (a clock sweep). Eviction only drops copies of committed
 * data.
 *
 * Conventions. The engine knows nothing of the wire: it reports in its own
 * terms and the server maps them (server/wire.h). How each family reports:
 *  - operations on keys (the writes and reads below) return a tkv_eng_rc.
 *    Any of them can give TKV_E_STORAGE (LevelDB failed, or the store is
 *    failing and refuses writes) and TKV_E_NOMEM (memory ran out; a write
 *    that ran out half-way poisons its batch, so none of it commits);
 *    tkv_engine_errmsg() then tells more. Each states the other codes it
 *    can give; a read's miss is TKV_E_NOT_FOUND with tkv_answer.miss.
 *  - tkv_engine_open() and tkv_engine_repair() return 0, or -1 with a
 *    readable reason in their err buffer (there is no engine to ask yet).
 *  - the commit family returns 1/0/-1 as each states, and tkv_engine_commit()
 *    and tkv_engine_sync() 0 or -1; on -1 tkv_engine_errmsg() says why.
 *  - tkv_engine_sweep() returns whether a pass completed, not an error: a
 *    failed sweep commit is a failed commit (tkv_engine_failing() turns
 *    true, errmsg says why). maintain, tick, idle, poison and wait cannot
 *    fail. Booleans are bool.
 * Value pointers handed out stay valid until the next call into the
 * engine. Timestamps and times are microseconds; TKV_ENG_TS_MAX is the
 * latest time.
 */
#ifndef TKV_ENGINE_H
#define TKV_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv_engine tkv_engine;

/* What an operation on keys returns; only these. */
typedef enum tkv_eng_rc {
    TKV_E_OK = 0,
    TKV_E_NOT_FOUND,    /* a read found no visible version: see tkv_answer.miss */
    TKV_E_OUT_OF_RANGE, /* a timestamp or ordinal the key cannot take */
    TKV_E_STORAGE,      /* LevelDB failed, or refuses writes until it recovers */
    TKV_E_NOMEM,        /* memory ran out */
    TKV_E_WOULD_BLOCK,  /* nonblocking mode: the answer needs LevelDB (see "Loads") */
} tkv_eng_rc;

/* Why a read found nothing (with TKV_E_NOT_FOUND). */
typedef enum tkv_eng_miss {
    TKV_EM_NO_KEY,          /* the key has no visible versions at all */
    TKV_EM_BEFORE_FIRST,    /* every visible version is newer than the time asked */
    TKV_EM_DELETED,         /* the version current then is a tombstone */
    TKV_EM_BELOW_HORIZON,   /* retention removed the version current then */
    TKV_EM_NO_SUCH_VERSION, /* an ordinal beyond the key's versions */
} tkv_eng_miss;

/* The latest time: a read "at TKV_ENG_TS_MAX" reads the newest version, and
 * no version can be written after it. */
#define TKV_ENG_TS_MAX UINT64_MAX

/* The longest key the engine takes; its buffers are sized for it. The
 * caller checks: a longer key is a bug, not an error code. */
#define TKV_ENG_KEY_MAX 65535u

typedef uint64_t (*tkv_clock_fn)(void *ctx); /* microseconds since the epoch */

/* When a committed batch reaches stable storage. */
typedef enum tkv_sync_mode {
    TKV_SYNC_ALWAYS,   /* every batch is synced before it counts as written */
    TKV_SYNC_EVERYSEC, /* a write syncs if the last sync is a second old */
    TKV_SYNC_NEVER,    /* the operating system decides */
} tkv_sync_mode;

/* A retention policy: keep at most `versions` versions (0: no limit) and
 * none older than `age_us` before now (0: no limit) - except the version
 * current at the resulting horizon, which is always kept. */
typedef struct tkv_policy {
    uint32_t versions;
    uint64_t age_us;
} tkv_policy;

typedef struct tkv_engine_opts {
    const char *dir;               /* data directory */
    size_t block_cache;            /* LevelDB block cache bytes (0: default) */
    size_t write_buffer;           /* the store's write buffer (0: a quarter of
                                      max_memory, 1-32 MiB; 32 MiB without) */
    bool no_compression;           /* LevelDB tables without Snappy */
    uint32_t fill_versions;        /* newest versions loaded on a miss (0: 256) */
    uint32_t resident_versions;    /* most versions a key keeps in memory (0: no
                                      limit but its share of max_memory) */
    size_t max_memory;             /* budget of the in-memory index (0: none) */
    tkv_policy retain;             /* server-wide retention (zero: keep all) */
    tkv_sync_mode fsync;           /* zero: ALWAYS; tkvd names them (--fsync) */
    bool writer_thread;            /* write batches on a thread of their own */
    void (*on_written)(void *ctx); /* called (from the writer thread) when
                                      the in-flight batch is written */
    void *on_written_ctx;
    bool repl_feed;     /* encode every batch for replicas and keep the frames
                           until tkv_engine_feed_take() (the server does) */
    tkv_clock_fn clock; /* NULL: the real-time clock */
    void *clock_ctx;
} tkv_engine_opts;

/* The answer to a GET. */
typedef struct tkv_answer {
    uint64_t ts;          /* found: the version's timestamp */
    const uint8_t *value; /* found: value bytes (valid until the next call) */
    uint32_t len;
    uint64_t expires;  /* found: when the version expires; 0: never */
    bool has_next;     /* next: the timestamp of the next newer visible */
    uint64_t next;     /* version: the answer holds for [ts, next). On a
                             miss, the first visible version after the time
                             asked. */
    tkv_eng_miss miss; /* NOT_FOUND: why */
    uint64_t at;       /* DELETED: the tombstone's timestamp;
                             BELOW_HORIZON: the horizon */
    bool dirty;        /* the answer depends on uncommitted writes */
} tkv_answer;

/* One version seen by RANGE. */
typedef struct tkv_entry_view {
    uint64_t ts;
    const uint8_t *value; /* NULL for a tombstone */
    uint32_t len;
    uint64_t expires; /* 0: never */
} tkv_entry_view;

/* Called per RANGE entry; return false to stop. */
typedef bool (*tkv_range_cb)(void *ctx, const tkv_entry_view *v);

/* Called per SCAN key; return false to stop. */
typedef bool (*tkv_scan_cb)(void *ctx, const uint8_t *key, size_t klen);

/* What RETAIN reports: versions the policy makes invisible, and the
 * horizon it sets (0: none). */
typedef struct tkv_retain_result {
    uint64_t removable;
    uint64_t horizon;
    bool complete; /* false: a dry run stopped at its scan bound */
} tkv_retain_result;

/* What tkv_engine_policy() reports. (Not the client's tkv_policy_info, which
 * is the wire's view of the same answer.) */
typedef struct tkv_eng_policy_info {
    tkv_policy policy; /* in effect for the key */
    bool own;          /* set on the key (true) or the server default */
    uint64_t horizon;  /* answers before it are gone (0: none) */
    bool dirty;        /* the answer depends on uncommitted writes */
} tkv_eng_policy_info;

typedef struct tkv_engine_stats {
    uint64_t keys;           /* keys with at least one stored version (exact) */
    uint64_t versions;       /* versions stored, tombstones included (exact) */
    uint64_t mem_keys;       /* resident keys, including known-empty ones */
    uint64_t mem_versions;   /* resident versions */
    uint64_t mem_bytes;      /* allocator bytes of the in-memory index */
    uint64_t reads_mem;      /* reads answered from memory alone */
    uint64_t reads_disk;     /* reads that loaded a key or merged with LevelDB */
    uint64_t fills;          /* keys loaded from LevelDB */
    uint64_t evictions;      /* keys dropped from memory to hold the budget */
    uint64_t max_memory;     /* the budget (0: none) */
    uint64_t reopens;        /* LevelDB reopened after a failed write */
    uint64_t commits;        /* batches written */
    uint64_t commit_writes;  /* records written or deleted by those batches */
    uint64_t commit_errors;  /* failed batch writes */
    uint64_t swept_expired;  /* expired versions removed by the sweep */
    uint64_t swept_retained; /* versions removed by retention */
    uint64_t sweeps;         /* full passes of the sweep over all keys */
    uint64_t load_waits;     /* times an operation waited for a load */
    uint64_t loads;          /* keys those loads read */
    uint64_t loads_stale;    /* keys not installed: the key changed meanwhile */
} tkv_engine_stats;

/* Opens the engine on o->dir, creating it if missing. Returns 0, or -1 with
 * a readable reason in err. */
int tkv_engine_open(const tkv_engine_opts *o, tkv_engine **out, char *err, size_t errlen);

/* Closes without committing; staged writes are lost. NULL-safe. */
void tkv_engine_close(tkv_engine *e);

/* ---- writes (staged) ---- */

/* Stages a version of key at ts (or, if !has_ts, at the clock but strictly
 * after the key's newest visible version and not below its horizon, so the
 * choice does not depend on what the sweep has deleted). ttl_us > 0 makes it
 * expire that long from now. A version already at ts is replaced. *out_ts
 * gets the timestamp used. TKV_E_OUT_OF_RANGE: ts below the key's
 * retention horizon, or no later timestamp exists. */
tkv_eng_rc tkv_engine_put(tkv_engine *e, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t ts, bool has_ts, uint64_t ttl_us, uint64_t *out_ts,
                          bool *dirty);

/* The same with the expiry time itself (0: never), not a ttl: a restore
 * writes a version back exactly as it was. */
tkv_eng_rc tkv_engine_put_until(tkv_engine *e, const uint8_t *key, size_t klen, const uint8_t *val,
                                size_t vlen, uint64_t ts, bool has_ts, uint64_t expires,
                                uint64_t *out_ts, bool *dirty);

/* Checks that a PUT of key at ts (or at the clock) would be accepted,
 * without staging anything: TKV_E_OK or TKV_E_OUT_OF_RANGE as PUT would
 * give them. */
tkv_eng_rc tkv_engine_check_put(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t ts,
                                bool has_ts);

/* Stages a tombstone at ts (or at the clock, as PUT without ts): as of any
 * time >= ts the key reads as deleted, until a later version. Codes as
 * PUT. */
tkv_eng_rc tkv_engine_tombstone(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t ts,
                                bool has_ts, uint64_t *out_ts, bool *dirty);

/* Stages the removal of every version of key and its metadata; *removed
 * gets the number of visible versions (expired ones and those below the
 * horizon are deleted too but not counted: the sweep may have taken them
 * already). */
tkv_eng_rc tkv_engine_del(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t *removed,
                          bool *dirty);

/* Sets (dry_run false) or evaluates (dry_run true) a per-key retention
 * policy; a zero policy removes the key's own policy (the server default
 * applies again). Setting it moves the key's horizon at once: versions the
 * policy removes become invisible immediately and are deleted by the sweep.
 * A dry run reads at most a bounded number of versions (r->complete). */
tkv_eng_rc tkv_engine_retain(tkv_engine *e, const uint8_t *key, size_t klen, const tkv_policy *p,
                             bool dry_run, tkv_retain_result *r, bool *dirty);

/* For a restore: gives key its own policy (own non-NULL) and raises its
 * horizon to `horizon` (0: leaves it), exactly as a backup recorded them,
 * without evaluating the policy; versions below the new horizon become
 * invisible, as with RETAIN. */
tkv_eng_rc tkv_engine_restore_meta(tkv_engine *e, const uint8_t *key, size_t klen,
                                   const tkv_policy *own, uint64_t horizon, bool *dirty);

/* ---- reads ---- */

/* A key, for tkv_engine_prefetch(). */
typedef struct tkv_eng_kref {
    const uint8_t *key;
    size_t len;
} tkv_eng_kref;

/* A hint before a run of requests on these keys (a pipeline read in one
 * go): brings their index slots, entries and pages toward the cache in
 * stages, so that the misses of n lookups overlap. Changes nothing and
 * reads no disk; at most TKV_ENG_PREFETCH_MAX keys are used. */
#define TKV_ENG_PREFETCH_MAX 32
void tkv_engine_prefetch(const tkv_engine *e, const tkv_eng_kref *keys, size_t n);

/* The visible version current at ts: the largest timestamp <= ts.
 * TKV_E_OK or TKV_E_NOT_FOUND (with out->miss). */
tkv_eng_rc tkv_engine_get(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t ts,
                          tkv_answer *out);

/* The n-th visible version: n >= 1 counts from the oldest, n <= -1 from the
 * newest (-1 is the newest). TKV_E_NOT_FOUND with miss
 * TKV_EM_NO_SUCH_VERSION if there are fewer; a tombstone answers
 * TKV_EM_DELETED. n == 0 is TKV_E_OUT_OF_RANGE. */
tkv_eng_rc tkv_engine_get_nth(tkv_engine *e, const uint8_t *key, size_t klen, int64_t n,
                              tkv_answer *out);

/* Calls cb for the visible versions with from <= ts <= to, oldest first
 * (newest first if reverse), at most limit of them. */
tkv_eng_rc tkv_engine_range(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t from,
                            uint64_t to, uint64_t limit, bool reverse, tkv_range_cb cb, void *ctx,
                            bool *dirty);

/* The number of visible versions with from <= ts <= to. */
tkv_eng_rc tkv_engine_count(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t from,
                            uint64_t to, uint64_t *n, bool *dirty);

/* The retention in effect for key and its horizon. */
tkv_eng_rc tkv_engine_policy(tkv_engine *e, const uint8_t *key, size_t klen,
                             tkv_eng_policy_info *out);

/* Lists keys with at least one stored version, in byte order, starting
 * after `after` (NULL: from the start) and within `prefix` (NULL: all),
 * at most count of them. *more tells whether keys remain; *dirty whether
 * the listing depends on uncommitted writes. Bounded work: at most count
 * keys are examined beyond the cursor. */
tkv_eng_rc tkv_engine_scan(tkv_engine *e, const uint8_t *prefix, size_t plen, const uint8_t *after,
                           size_t alen, uint32_t count, tkv_scan_cb cb, void *ctx, bool *more,
                           bool *dirty);

/* ---- loads: reading LevelDB off the caller's thread ----
 *
 * In nonblocking mode an operation on keys never reads LevelDB itself.
 * Where it would - a key that is not resident, a walk below a resident
 * key's watermark lo, a write into the deep past - it stops before changing
 * anything and returns TKV_E_WOULD_BLOCK, leaving a *load* to take: the
 * key's metadata and newest versions, or the versions below lo that the walk
 * needs. Any thread runs the load (it only reads LevelDB); the engine's
 * thread then installs it into memory and runs the operation again from
 * the start, now answered from memory. So a read that went through a load
 * answers exactly as it would have inline at the moment it is run again:
 * the load only ever adds committed versions to memory, and an install is
 * refused (the load is *stale*) if any batch changed the key after the
 * load read LevelDB, if a batch failed, or if the key's residency moved.
 * A stale load or one larger than a key's memory share makes the caller
 * try again - in blocking mode after a few attempts, so every request ends.
 *
 * Only the operations on keys above block; SCAN, the sweep, maintain and
 * the commit family never do. Loads in flight hold the store open: the
 * recovery of a failed store waits until every taken load is installed or
 * freed. A store that recovery could not reopen is closed, and nothing can
 * be loaded from it: an operation that would need a load fails with
 * TKV_E_STORAGE instead, as it does in blocking mode. */

typedef struct tkv_eng_load tkv_eng_load;

/* Turns nonblocking mode on or off. `attempt` counts the times the coming
 * operation already waited for a load: walks into the past load more each
 * time (geometrically). */
void tkv_engine_set_nonblocking(tkv_engine *e, bool on, unsigned attempt);

/* After TKV_E_WOULD_BLOCK a multi-key request may go on with its other
 * keys, only to collect what they need too (their answers are discarded):
 * further operations add to the same load while this is true. */
bool tkv_engine_load_room(const tkv_engine *e);

/* After TKV_E_WOULD_BLOCK: the load the operation (or operations) need,
 * now the caller's; NULL if out of memory (then run the operation in
 * blocking mode). */
tkv_eng_load *tkv_engine_load_take(tkv_engine *e);

/* Reads what l asks for from LevelDB. Any thread, several at once; touches
 * nothing but the store and l. */
void tkv_engine_load_run(tkv_engine *e, tkv_eng_load *l);

/* On the engine's thread: puts what l loaded into memory, key by key,
 * except what is stale, and frees l. Returns 1 if every key was installed,
 * 0 if some was stale (run the operation again), -1 if the load failed or a
 * key's part is larger than its share of memory (run it again in blocking
 * mode: it reads LevelDB inline, and reports a storage failure as such). */
int tkv_engine_load_install(tkv_engine *e, tkv_eng_load *l);

/* Frees a load without installing it (it must not be running). NULL-safe. */
void tkv_engine_load_free(tkv_engine *e, tkv_eng_load *l);

/* ---- replication ----
 *
 * Every batch written carries the engine's replication state - an id and
 * the offset the store is at after it - in the same atomic write, so data
 * and offset are persisted together (server/replog.c). A primary encodes
 * every batch it writes as a replication frame (protocol/repl.h); its
 * offset advances by the frame's size. A replica stages its primary's
 * records as they come, and the primary's offset with them. */

/* A replication id and offset, and the id before it with the offset where
 * it ended (id2 empty: none), as PSYNC decides by them. */
typedef struct tkv_eng_repl {
    char id[41];
    uint64_t off;
    char id2[41];
    uint64_t off2;
} tkv_eng_repl;

/* The state of what is committed. */
void tkv_engine_repl_get(const tkv_engine *e, tkv_eng_repl *out);

/* Makes the engine a primary under a new id that continues at its offset
 * (the old id becomes id2), persisted with the next batch (one is staged).
 * -1 if writes are pending or no randomness is available. */
int tkv_engine_repl_primary(tkv_engine *e);
/* Makes it a replica: batches are no longer encoded, and frames not yet
 * taken are dropped. */
void tkv_engine_repl_replica(tkv_engine *e);
/* Moves whenever the engine starts a new history (a reopen after a failed
 * write): the server's backlog must start over at the engine's offset. */
uint64_t tkv_engine_repl_gen(const tkv_engine *e);

/* A primary: the frames of the batches committed since the last call,
 * however their commits were collected (tkv_engine_commit_finish, the
 * sweep's own commit), in commit order; *frames stays valid until the next
 * commit. Returns 1 with frames, 0 with none, -1 if memory ran out keeping
 * one: the stream has a gap, and its replicas must start over. */
int tkv_engine_feed_take(tkv_engine *e, const uint8_t **frames, size_t *len);

/* A replica: stages one record of its primary's batch as it is (put, or a
 * delete), dropping the key it belongs to from memory. -1 if the store
 * refuses writes (errmsg). */
int tkv_engine_apply_rec(tkv_engine *e, const uint8_t *k, size_t klen, const uint8_t *v,
                         size_t vlen, bool put);
/* A replica: stages its primary's drop of every version under prefix p
 * (store.h's tkv_store_batch_drop), dropping the key from memory. -1 if p
 * is no key's version prefix or the store refuses writes (errmsg). */
int tkv_engine_apply_drop(tkv_engine *e, const uint8_t *p, size_t plen);
/* A replica: what is staged so far brings the store to the primary's
 * offset `off` under id; it also ends a full copy. */
void tkv_engine_apply_at(tkv_engine *e, const char *id, uint64_t off);
/* Bytes staged (a replica reads no more while too many wait). */
size_t tkv_engine_staged_bytes(const tkv_engine *e);
/* A replica's full copy begins: empties the store and memory. Only with
 * nothing pending and no load or dump out; -1 otherwise (errmsg). */
int tkv_engine_wipe(tkv_engine *e);
/* True while the store holds part of a full copy (also after a restart in
 * the middle of one): its data must not be served. */
bool tkv_engine_repl_incomplete(const tkv_engine *e);

/* ---- housekeeping ---- */

/* True if writes are staged or in flight. */
bool tkv_engine_pending(const tkv_engine *e);

/* The epoch writes staged now belong to. A reply that depends on them
 * (a write's, or a read's that saw one: its `dirty` flag) is safe to send
 * once this epoch is committed. */
uint64_t tkv_engine_epoch(const tkv_engine *e);

/* Every epoch up to this one is written: the last committed epoch, or -
 * when nothing is staged or in flight - the current one. A reply tagged
 * with an epoch at or below it may be sent. */
uint64_t tkv_engine_settled_epoch(const tkv_engine *e);

/* Makes the current batch fail at commit: for a multi-write request that
 * failed half-way, so that it is all or nothing. */
void tkv_engine_poison(tkv_engine *e, const char *why);

/* Hands the staging batch to the writer (or, without a writer thread,
 * writes it now) and opens the next one. Returns 1 if a batch was started,
 * 0 if there is nothing to write or a batch is already in flight, -1 if
 * the staging batch failed before it could be written (a poisoned batch,
 * or storage that is still failing): its writes are rolled back and
 * *failed is its epoch. */
int tkv_engine_commit_start(tkv_engine *e, uint64_t *failed);

/* Collects the in-flight batch's result, on the thread that uses the
 * engine. Returns 1 if it was written (every epoch up to it is committed),
 * 0 if it is still in flight or none is, -1 if it failed: it and the
 * staging batch are rolled back (errmsg says why) and every epoch from
 * *failed on failed. */
int tkv_engine_commit_finish(tkv_engine *e, uint64_t *failed);

/* Writes everything staged, waiting for it. Returns 0, or -1 if a batch
 * failed (and was rolled back). */
int tkv_engine_commit(tkv_engine *e);

/* Blocks until the in-flight batch, if any, is written (then collect it
 * with tkv_engine_commit_finish()). */
void tkv_engine_wait(tkv_engine *e);

/* everysec: syncs writes made since the last sync, unless a batch is in
 * flight (it syncs itself when due). Returns 0 or -1. */
int tkv_engine_sync(tkv_engine *e);

/* Evicts cold keys while the in-memory index is above max_memory (never a
 * key with uncommitted changes); the work per call is bounded. */
void tkv_engine_maintain(tkv_engine *e);

/* Runs a step of the sweep over at most `budget` stored records: deletes
 * expired versions and versions below retention horizons, moving horizons
 * as policies require, and commits that at once (waiting for it). Runs
 * only when nothing is pending (tkv_engine_pending() false): otherwise, or
 * while the store is failing, it does nothing. Returns true when a full
 * pass over all keys has just completed, or when no key can need sweeping
 * (tkv_engine_sweep_needed() false). */
bool tkv_engine_sweep(tkv_engine *e, uint32_t budget);

/* Whether some key may need the sweep: a server-wide policy, keys in the
 * sweep index, or a pass under way. */
bool tkv_engine_sweep_needed(const tkv_engine *e);

/* True after a failed write until writes succeed again. */
bool tkv_engine_failing(const tkv_engine *e);

/* Periodic housekeeping (call about once a second): after a failed write,
 * tries to recover the store when nothing is pending. */
void tkv_engine_tick(tkv_engine *e);

/* Releases resources held between operations (the cached LevelDB iterator).
 * Call when idle. */
void tkv_engine_idle(tkv_engine *e);

/* The message of the last STORAGE error or failed commit. */
const char *tkv_engine_errmsg(const tkv_engine *e);

/* The engine's clock (tkv_engine_opts.clock), in microseconds since the
 * epoch: the time versions are stamped with, so the server reads it too. */
uint64_t tkv_engine_now(tkv_engine *e);

void tkv_engine_stats_get(const tkv_engine *e, tkv_engine_stats *s);

/* A LevelDB property ("leveldb.stats"); malloc'd, caller frees; or NULL. */
char *tkv_engine_property(tkv_engine *e, const char *name);

/* Runs LevelDB's repair on a data directory that is not open. */
int tkv_engine_repair(const char *dir, char *err, size_t errlen);

#endif
