/*
 * engine_int.h - the engine's private state, shared by its files:
 * engine.c (the write operations PUT, tombstone and DEL; open/close),
 * commit.c (the staging batch and the entries it dirties, the writer
 * thread, rollback and recovery), cache.c (what memory holds: loading keys,
 * trimming and evicting them), read.c (the merged version cursor, GET,
 * RANGE, COUNT), meta.c (per-key metadata, RETAIN, POLICY), sweep.c
 * (removing expired and retained versions) and scan.c (SCAN). LevelDB is
 * reached only through store.h. Nothing outside the engine includes this
 * header.
 */
#ifndef TKV_ENGINE_INT_H
#define TKV_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "byteorder.h"
#include "engine.h"
#include "keycodec.h"
#include "keyindex.h"
#include "store.h"

/* A version's blob: one flags byte, an 8-byte big-endian expiry time if
 * BLOB_EXPIRES, then the value (nothing for a tombstone). The same bytes
 * are stored in LevelDB and in memory. */
#define BLOB_PLAIN 0x00
#define BLOB_TOMBSTONE 0x01
#define BLOB_EXPIRES 0x02

/* A key's metadata: allocated only for keys with a policy, a horizon or
 * expiring versions; persisted at the key's metadata record. */
typedef struct tkv_kmeta {
    uint64_t horizon;    /* versions before it are gone (0: none) */
    uint64_t min_expiry; /* no stored version expires earlier (UINT64_MAX: none) */
    tkv_policy policy;   /* the key's own retention */
    bool has_policy;
    bool below; /* versions below the horizon may still be stored */
} tkv_kmeta;

typedef struct counters {
    uint64_t keys;
    uint64_t versions;
    uint64_t swept_keys; /* keys listed in the sweep index */
} counters;

typedef struct fill_rec {
    uint64_t ts;
    size_t off; /* into fillbuf */
    uint32_t len;
} fill_rec;

typedef struct sweep_state sweep_state;

/* What an operation in nonblocking mode asked to load (load.c): one key,
 * or - when a multi-key request goes on probing its other keys after the
 * first one that must wait - up to ENG_WANT_MAX of them, loaded together. */
#define ENG_WANT_MAX 256

typedef struct eng_want_item {
    bool fill;  /* the key is not resident: metadata + newest versions */
    bool count; /* only count the versions below `below`, and those of
                           them a reader sees by horizon, now, check_expiry */
    uint64_t horizon, now;
    bool check_expiry;
    uint32_t versions;  /* fill: this many newest versions */
    uint64_t below;     /* extend: the key's lo; load versions below it */
    uint64_t down_to;   /* extend: every version at or after down_to ... */
    uint32_t extra;     /* ... and this many older ones */
    const uint8_t *key; /* the operation's key (copied by the take) */
    size_t klen;
} eng_want_item;

/* What a count load found (DEL of a key only partly in memory): how many
 * versions below lo LevelDB holds of the key, and how many of them a
 * reader sees. Good while the key's touch slot has not moved. */
typedef struct eng_counted {
    bool valid;
    uint8_t *key;
    size_t klen, kcap;
    uint64_t lo, touch, all, visible;
    uint64_t horizon;     /* visible counted at this horizon, */
    uint64_t next_expiry; /* and holds until this time (UINT64_MAX: always) */
} eng_counted;

typedef struct eng_want {
    size_t n; /* items asked for since tkv_engine_set_nonblocking() */
    eng_want_item item[ENG_WANT_MAX];
} eng_want;

/* Batches that staged records of a key, by a hash of the key: touch[h] is
 * the newest epoch that changed any key hashing to h. A load that read
 * LevelDB after every batch up to epoch S was written is stale iff the
 * key's slot is above S (collisions only make a load stale needlessly). */
#define ENG_TOUCH_SLOTS 16384

/* A write batch and the entries its writes changed (for rollback); built
 * by the staging functions of commit.c. */
typedef struct eng_batch {
    tkv_store_batch *wb;
    uint64_t ops; /* records staged */
    uint64_t epoch;
    tkv_kentry **dirty; /* entries changed by this batch */
    size_t ndirty, cap;
} eng_batch;

struct tkv_engine {
    tkv_engine_opts opts;
    char *dir; /* data directory (owned copy) */
    tkv_store *store;
    bool store_open;        /* false after a failed reopen */
    bool broken;            /* a write failed: no more writes on this handle */
    uint64_t last_probe_us; /* when broken: last check for recovery */
    char fail_msg[256];     /* when failing: why writes are refused */
    char poison[160];       /* non-empty: the current batch must fail */
    tkv_keyindex ix;
    eng_batch stage;  /* where writes go now */
    eng_batch flight; /* being written by the writer, if in_flight */
    bool in_flight;
    uint64_t committed;     /* the last epoch written to LevelDB */
    counters cnt;           /* with every staged write */
    counters cnt_flight;    /* as of the end of the in-flight batch */
    counters cnt_committed; /* as LevelDB has them */
    /* The writer thread; mu guards the fields below it. */
    pthread_t writer;
    bool writer_running, sync_ready;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool writer_go, writer_quit, flight_done;
    int flight_rc;
    char flight_err[256];
    bool unsynced; /* everysec: written but not yet synced */
    uint64_t last_sync_us;
    bool all_resident; /* every key with versions is in the index */
    tkv_kentry *hand;  /* eviction clock hand; NULL: start over */
    uint8_t *keybuf;   /* the running operation's eng_key encoding */
    uint8_t *kbuf;     /* scratch for keys used at once (metadata, sweep) */
    tkv_buf scratch;   /* disk values handed out by reads */
    tkv_buf fillbuf;   /* blobs gathered while loading a key */
    fill_rec *recs;
    size_t nrecs_cap;
    size_t page_bytes; /* allocator bytes of all pages */
    bool touched_disk; /* the current read used LevelDB */
    sweep_state *sweep;
    /* Loads (load.c). disk_epoch is written by the writer thread after each
     * batch it wrote and read by loads on any thread; gen moves whenever
     * memory is rolled back or emptied, which makes older loads stale. */
    bool nonblock;
    unsigned nb_attempt;
    eng_want want;
    eng_counted counted;
    _Atomic uint64_t disk_epoch;
    uint64_t gen;
    uint64_t loads_out; /* taken and not yet installed or freed */
    uint64_t *touch;    /* ENG_TOUCH_SLOTS epochs */
    /* Replication (replog.c): the state of what is committed, of the
     * staging batch and of the in-flight one (the writer's while it
     * writes); a primary's feed: the "B" frame of the batch written. */
    tkv_eng_repl repl, repl_stage, repl_flight;
    bool repl_feed;                         /* a primary: encode every batch */
    bool flight_feed;                       /* the in-flight batch is encoded */
    bool repl_incomplete;                   /* the store holds part of a replica's full copy */
    bool stage_completes, flight_completes; /* the batch ends a full copy */
    uint64_t repl_gen;                      /* moves when a new history starts (replog.c) */
    /* A replica: keys the staging / in-flight batch applied, each as a
     * 2-byte length and the key. A read that filled one of them from
     * LevelDB before the batch was written holds the older state: each is
     * dropped again once its batch is committed. */
    tkv_buf applied_stage, applied_flight;
    tkv_buf feed;     /* the writer's; the loop's once written */
    bool feed_ready;  /* feed holds the frame of the batch written */
    tkv_buf feed_out; /* frames of committed batches not yet taken */
    bool feed_lost;   /* out of memory keeping one: the stream broke */
    tkv_engine_stats st;
    char errmsg[256];
};

/* ---- encoding helpers ---------------------------------------------------- */

/* The key an operation works on, passed to every function that encodes,
 * seeks or matches that key's records (never parked in the engine). Its
 * version prefix is encoded into buf on first use, so an operation that
 * stays in memory never pays for it. buf holds tkv_kc_max() of the longest
 * key; whoever makes the context owns it for the context's life: the
 * engine's keybuf serves the one operation running (the engine serves one
 * call at a time), the sweep - whose key outlives a call - has its own. */
typedef struct eng_key {
    const uint8_t *key;
    size_t klen;
    uint8_t *buf; /* the version prefix, then room for a timestamp */
    size_t plen;  /* 0 until the prefix is encoded */
} eng_key;

static inline eng_key eng_key_make(uint8_t *buf, const uint8_t *key, size_t klen)
{
    return (eng_key){.key = key, .klen = klen, .buf = buf, .plen = 0};
}

/* The key's version prefix (every version's key starts with it). */
static inline const uint8_t *eng_key_prefix(eng_key *k, size_t *plen)
{
    if (!k->plen)
        k->plen = tkv_kc_prefix(k->buf, k->key, k->klen);
    *plen = k->plen;
    return k->buf;
}

/* Encodes the key's version at ts into buf; returns its length. The
 * encoding stays valid until the next call on k. */
static inline size_t eng_key_at(eng_key *k, uint64_t ts)
{
    size_t plen;
    eng_key_prefix(k, &plen);
    return tkv_kc_with_ts(k->buf, plen, ts);
}

/* True if the iterator sits on a version of k (its timestamp in *ts). */
static inline bool eng_iter_match(eng_key *k, tkv_store_iter *it, uint64_t *ts)
{
    if (!tkv_store_iter_valid(it))
        return false;
    size_t n, plen;
    const uint8_t *rec = tkv_store_iter_key(it, &n);
    const uint8_t *pfx = eng_key_prefix(k, &plen);
    return tkv_kc_match(rec, n, pfx, plen, ts);
}

/* The expiry time of a blob, 0 if none. */
static inline uint64_t blob_expires(const uint8_t *b, uint32_t len)
{
    return len >= 9 && (b[0] & BLOB_EXPIRES) ? tkv_load_be64(b + 1) : 0;
}

static inline bool blob_tombstone(const uint8_t *b, uint32_t len)
{
    return len >= 1 && (b[0] & BLOB_TOMBSTONE);
}

/* The value bytes of a blob. */
static inline const uint8_t *blob_value(const uint8_t *b, uint32_t len, uint32_t *vlen)
{
    uint32_t h = len >= 1 && (b[0] & BLOB_EXPIRES) ? 9 : 1;
    *vlen = len > h ? len - h : 0;
    return b + (len > h ? h : len);
}

/* ---- visibility -------------------------------------------------------------- */

/* What a read may see of a key: versions at or after the horizon that have
 * not expired. */
typedef struct vis {
    uint64_t horizon;
    uint64_t now;
    bool check_expiry; /* some stored version may have expired */
} vis;

vis eng_vis(tkv_engine *e, const tkv_kentry *E);

static inline bool vis_ok(const vis *v, uint64_t ts, const uint8_t *b, uint32_t len)
{
    if (ts < v->horizon)
        return false;
    if (v->check_expiry) {
        uint64_t x = blob_expires(b, len);
        if (x && x <= v->now)
            return false;
    }
    return true;
}

/* ---- the merged version cursor (read.c) -------------------------------------- */

/* One key's LevelDB versions within [from, to], in ts order. */
typedef struct dcur {
    tkv_engine *e;
    eng_key *k;
    tkv_store_iter *it;
    uint64_t from, to;
    bool asc;
    bool valid;
    uint64_t ts;
} dcur;

/* The visible versions of a resident key within [from, to], in ts order:
 * its page merged with LevelDB below lo (the page wins on equal
 * timestamps: it holds the newer state). LevelDB is read only when the
 * walk goes below lo. The current entry stays valid until vcur_next(). */
typedef struct vcur {
    tkv_engine *e;
    eng_key *k; /* E's key */
    const tkv_kentry *E;
    vis v;
    uint64_t from, to;
    bool asc;
    long pi, pa, pb; /* page: current index, slots [pa, pb) in range */
    bool disk_on;    /* the LevelDB part has been started */
    bool disk_failed;
    dcur dc;
    bool cur_page; /* the current entry came from the page */
    bool valid;
    uint64_t ts;
    const uint8_t *blob;
    uint32_t len;
} vcur;

void vcur_init(vcur *c, tkv_engine *e, eng_key *k, const tkv_kentry *E, const vis *v, bool asc,
               uint64_t from, uint64_t to);
void vcur_next(vcur *c);
/* 0, or -1 if LevelDB failed during the walk (errmsg set). */
int vcur_error(vcur *c);

/* ---- loads (load.c) ------------------------------------------------------------ */

/* Nonblocking mode: asks for a fill of k (versions newest), or for k's
 * versions below `below` down to down_to plus `extra` older ones. Return
 * TKV_E_WOULD_BLOCK for the caller to pass up. */
tkv_eng_rc eng_want_fill(tkv_engine *e, eng_key *k, uint32_t versions);
tkv_eng_rc eng_want_extend(tkv_engine *e, eng_key *k, uint64_t below, uint64_t down_to,
                           uint32_t extra);
/* Asks for a count of k's versions below `below` (all, and those v lets a
 * reader see) on a reader thread; the install leaves it for
 * eng_counted_take. */
tkv_eng_rc eng_want_count(tkv_engine *e, eng_key *k, uint64_t below, const vis *v);
/* Takes the count a load left for k, if it was of E's lo, nothing touched
 * the key since, and what v lets a reader see is as it was for the count
 * (same horizon, no version expired since): true with *all and *visible
 * set. */
bool eng_counted_take(tkv_engine *e, const eng_key *k, const tkv_kentry *E, const vis *v,
                      uint64_t *all, uint64_t *visible);
/* How many older versions a walk into the past asks for: more each attempt. */
uint32_t eng_want_chunk(const tkv_engine *e);
/* A record key was staged: its key's touch slot takes the staging epoch. */
void eng_touch_record(tkv_engine *e, const uint8_t *rec, size_t n);

/* What a failed read walk returns: WOULD_BLOCK if it stopped for a load,
 * STORAGE if LevelDB failed. */
static inline tkv_eng_rc eng_read_failed(const tkv_engine *e)
{
    return e->want.n > 0 ? TKV_E_WOULD_BLOCK : TKV_E_STORAGE;
}

/* ---- shared internals ------------------------------------------------------- */

/* Changed by a batch that is not yet in LevelDB (staged or in flight). */
static inline bool eng_uncommitted(const tkv_engine *e, const tkv_kentry *E)
{
    return E->dirty_epoch > e->committed;
}

/* commit.c: staging. A write reserves room in the dirty list before it
 * changes anything (so recording the entry cannot fail half-way), stages
 * its LevelDB records, then marks the entries it changed. */
int eng_reserve_dirty(tkv_engine *e);
/* Stages a put/delete of a raw LevelDB record in the staging batch. */
void eng_stage_put(tkv_engine *e, const void *k, size_t klen, const void *v, size_t vlen);
void eng_stage_del(tkv_engine *e, const void *k, size_t klen);
/* Stages the drop of every version of prefix p (store.h's
 * tkv_store_batch_drop). */
void eng_stage_drop(tkv_engine *e, const void *p, size_t plen);
/* Stages a version record; newest: newer than every version of its key
 * stored or staged (store.h's tkv_store_batch_put_newest). */
void eng_stage_version(tkv_engine *e, const void *k, size_t klen, const void *v, size_t vlen,
                       bool newest);
/* E changed in the staging batch: rolled back with it, kept in memory
 * until it commits. Needs a prior eng_reserve_dirty(). */
void eng_mark_dirty(tkv_engine *e, tkv_kentry *E);

/* recover.c: the store's state at open, and recovery after a failure */
/* The record holding the persistent counters. */
#define ENG_COUNTERS_KEY "mcounters"
/* The replication state (replog.c), and the mark of a full copy under way. */
#define ENG_REPL_KEY "mrepl"
#define ENG_SYNCING_KEY "msyncing"
tkv_store_opts eng_store_opts(const tkv_engine *e);
/* Reads the persistent counters (keeping staged changes on top) and
 * whether LevelDB holds any version at all. */
int eng_load_state(tkv_engine *e, bool reopened, char *err, size_t errlen);
/* 0 if writes may be staged; after a failed write, tries to recover
 * (rate-limited) and otherwise returns -1 with errmsg set. */
int eng_writable(tkv_engine *e);
/* A write failed: the store takes no more writes until recovery. */
void eng_set_broken(tkv_engine *e, const char *why);

/* replog.c */
/* Parses a replication state record. 0 or -1 if malformed. */
int eng_repl_decode(const uint8_t *p, size_t n, tkv_eng_repl *r);
/* Reads the replication state at open or after a reopen (reopened). */
int eng_repl_load(tkv_engine *e, bool reopened, char *err, size_t errlen);
/* On the writer, before the in-flight batch is written: encodes it (a
 * primary) and adds the state record. -1 if out of memory. */
int eng_repl_seal(tkv_engine *e);
void eng_repl_committed(tkv_engine *e);
/* At commit_start: the staging batch's replication state goes in flight. */
void eng_repl_start(tkv_engine *e);
void eng_repl_rolled_back(tkv_engine *e);

/* recover.c: drops every resident key (nothing may be uncommitted). */
void eng_forget_all(tkv_engine *e);
/* recover.c: what a read of a closed store (!store_open: its reopen failed)
 * gets instead - errmsg says why, and TKV_E_STORAGE. store.h allows only
 * reopen and close on such a store: LevelDB's handle is gone. */
tkv_eng_rc eng_store_closed(tkv_engine *e);

/* commit.c: batches and the writer thread */
int eng_batch_init(eng_batch *b, uint64_t epoch);
void eng_batch_free(eng_batch *b);
int eng_writer_start(tkv_engine *e);
void eng_writer_stop(tkv_engine *e);

/* engine.c */
int eng_iter_failed(tkv_engine *e, tkv_store_iter *it);
/* The store's iterator, or NULL (with errmsg set) if the store is closed. */
tkv_store_iter *eng_iter(tkv_engine *e);
uint64_t eng_now(tkv_engine *e);

/* cache.c */
size_t eng_mem_bytes(const tkv_engine *e);
void eng_account_page(tkv_engine *e, long delta);
void eng_drop_entry(tkv_engine *e, tkv_kentry *E);
void eng_remove_slots(tkv_engine *e, tkv_kentry *E, uint32_t from, uint32_t to);
/* The key's entry, loaded if need be: a reader's (create false) with up to
 * fill_versions versions, a writer's (create true, made if the key does not
 * exist) with its newest version only. */
tkv_kentry *eng_lookup(tkv_engine *e, eng_key *k, bool create, tkv_eng_rc *st);
/* How every write starts: the store writable, room in the dirty list, then
 * eng_lookup(). NULL with *st set on failure (or, without create, with
 * TKV_E_OK for a key that does not exist). */
tkv_kentry *eng_write_lookup(tkv_engine *e, eng_key *k, bool create, tkv_eng_rc *st);
void eng_trim(tkv_engine *e, tkv_kentry *E);
/* Reads k's metadata record through it (kbuf: room for k's encoding) and
 * leaves it on k's newest version. -1 if the record is malformed. */
int eng_read_meta(tkv_store_iter *it, uint8_t *kbuf, const uint8_t *key, size_t klen, tkv_kmeta *m,
                  bool *found);
/* Gathers up to `want` of k's versions from the iterator's position on,
 * newest first, into recs (growing it) and data. Returns 0, 1 if they would
 * pass max_bytes, -1 if out of memory. *exhausted: no more versions of k. */
int eng_gather(eng_key *k, tkv_store_iter *it, uint32_t want, size_t max_bytes, fill_rec **recs,
               size_t *cap, tkv_buf *data, size_t *n, bool *exhausted);
/* Makes k resident from gathered records (newest first, blobs in data):
 * the metadata m (NULL: none), and lo from whether older versions remain. */
tkv_kentry *eng_fill_from(tkv_engine *e, eng_key *k, const tkv_kmeta *m, const fill_rec *recs,
                          size_t n, const uint8_t *data, bool exhausted, tkv_eng_rc *st);
/* The most page bytes one key may keep. */
size_t eng_key_budget(const tkv_engine *e);

/* meta.c */
/* Parses a metadata record into m. Returns 0 or -1 if malformed. */
int eng_meta_decode(const uint8_t *p, size_t n, tkv_kmeta *m);
/* Whether metadata puts its key in the sweep index (a policy of its own, or
 * versions that expire). */
bool eng_meta_swept(const tkv_kmeta *m);
/* Stages E's metadata record (or its removal, if nothing is left in it)
 * and the key's entry in the sweep index, given whether the key was in the
 * index before the change; k is E's key. */
int eng_meta_save(tkv_engine *e, eng_key *k, tkv_kentry *E, bool was_swept);
/* The same for a key that is not resident: stages metadata m (NULL: none). */
void eng_meta_stage(tkv_engine *e, eng_key *k, const tkv_kmeta *m, bool was_swept);
/* E's metadata, allocated if missing; NULL if out of memory. */
tkv_kmeta *eng_meta_get(tkv_engine *e, tkv_kentry *E);
const tkv_policy *eng_policy(const tkv_engine *e, const tkv_kmeta *m);

/* sweep.c */
void eng_sweep_free(tkv_engine *e);
/* E is about to change: if the sweep stopped inside it, it starts it over. */
void eng_sweep_touched(tkv_engine *e, const tkv_kentry *E);

#endif
