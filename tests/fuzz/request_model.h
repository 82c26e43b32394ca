/*
 * request_model.h - fuzz_request's model of the store: every key's stored
 * versions (values and tombstones, with expiry times), its retention
 * horizon and policy, both as they are now (staged) and as of the last
 * successful commit, so a failed commit can be rolled back exactly as the
 * engine promises.
 *
 * With the engine's pipelined commit there are three states: committed,
 * in flight (handed to the writer, not yet known to be written) and
 * current; a failed flight rolls back everything after the committed one.
 * A flight whose write reached LevelDB's log but whose sync failed is
 * indeterminate: reads go on without it, and when the engine reopens
 * LevelDB the log replays it. The model keeps such a flight in *limbo*
 * until then.
 *
 * Each state of a key is the shared model of its versions and metadata
 * (tests/common/model.h, which test_model holds the engine to as well):
 * every rule of what reads see, what writes get and what retention does is
 * there; this file adds only the snapshots and the `unsure` marks.
 * What is stored but invisible may be removed by the engine's sweep at any
 * time; after a sweep the model marks keys `unsure` (a commit or rollback
 * carries the mark like the rest of the state) and checks that depend on
 * such versions (the counters, SCAN) accept either.
 *
 * Values are copied into storage that lives until model_free(), so a
 * snapshot never copies value bytes. Keys are never removed during an
 * input: a deleted key keeps its entry, which is how the driver finds
 * every key to clean up afterwards.
 */
#ifndef TKV_FUZZ_REQUEST_MODEL_H
#define TKV_FUZZ_REQUEST_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/model.h"
#include "engine.h"

typedef struct kstate {
    mhist h;     /* the key's versions and metadata */
    bool unsure; /* a sweep may have removed invisible versions */
} kstate;

typedef struct mkey {
    uint8_t *key;
    uint32_t klen;
    kstate cur;       /* what reads must see now */
    kstate fl;        /* as handed to the writer (== com when nothing is in flight) */
    kstate com;       /* as of the last successful commit */
    kstate lim;       /* a failed flight's state, while one is in limbo */
    bool dirty;       /* changed since the last successful commit */
    bool stage_dirty; /* changed since the last commit start */
} mkey;

/* The key's entry, or NULL if absent and !create. Pointers stay valid
 * until the next model_find(..., true) or model_free(). */
mkey *model_find(const uint8_t *key, uint32_t klen, bool create);
size_t model_nkeys(void);
mkey *model_key(size_t i);

/* The key's current state (what reads must see now); NULL for NULL, a key
 * the input never named, which reads as never written. */
const mhist *model_now(const mkey *k);

/* Inserts or replaces the version at ts; marks the key dirty. val NULL
 * stores a tombstone. */
void model_put(mkey *k, uint64_t ts, const uint8_t *val, uint32_t len, uint64_t expires);
/* DEL: removes every version and the key's metadata; the key changed if
 * the engine removed any version (after a sweep the model cannot know). */
void model_del(mkey *k, uint64_t removed);

/* The staging batch went to the writer: the current state is in flight. */
void model_commit_start(void);
/* The batch in flight was written: its state is committed. */
void model_commit_done(void);
/* A commit failed: everything after the committed state is undone. */
void model_rollback(void);
/* The flight failed after its write reached the log: it rolls back now and
 * comes back at the next reopen (model_resurrect). */
void model_limbo(void);
bool model_in_limbo(void);
/* LevelDB was reopened: a flight in limbo is committed after all. Nothing
 * is staged or in flight when this happens. */
void model_resurrect(void);
/* Where policy p puts k's horizon at time now (mhist_evaluate): 0 if it
 * removes nothing (the horizon stays). */
uint64_t model_policy_horizon(const mkey *k, const tkv_policy *p, uint64_t now);
/* Marks a key changed (dirty) in the current state. */
void model_touch(mkey *k);

void model_free(void);

#endif
