/*
 * request_model.h - fuzz_request's model of the store: every key's versions
 * as the engine must show them, both the current (staged) state and the
 * state as of the last successful commit, so a failed commit can be rolled
 * back exactly as the engine promises.
 *
 * Values are copied into storage that lives until model_free(), so a
 * snapshot never copies value bytes. Keys are never removed during an
 * input: a deleted key keeps its entry (with no versions), which is how the
 * driver finds every key to clean up afterwards.
 */
#ifndef TKV_FUZZ_REQUEST_MODEL_H
#define TKV_FUZZ_REQUEST_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mver {
    uint64_t ts;
    const uint8_t *val;
    uint32_t len;
} mver;

typedef struct mvlist {
    mver *v; /* ascending ts, unique */
    size_t n, cap;
} mvlist;

typedef struct mkey {
    uint8_t *key;
    uint32_t klen;
    mvlist cur;  /* what reads must see now */
    mvlist com;  /* as of the last successful commit */
    bool dirty;  /* changed since the last commit */
} mkey;

/* The key's entry, or NULL if absent and !create. Pointers stay valid
 * until the next model_find(..., true) or model_free(). */
mkey *model_find(const uint8_t *key, uint32_t klen, bool create);
size_t model_nkeys(void);
mkey *model_key(size_t i);

/* Index of the largest ts <= T in k->cur, or -1 (also for k == NULL). */
long model_floor(const mkey *k, uint64_t T);
/* Inserts or replaces the version at ts; marks the key dirty. */
void model_put(mkey *k, uint64_t ts, const uint8_t *val, uint32_t len);
/* Removes every version; marks the key dirty if it had any. */
void model_clear(mkey *k);

/* Keys with at least one version, and versions, in the current state. */
void model_totals(uint64_t *keys, uint64_t *versions);

/* A commit succeeded: the current state becomes the committed one. */
void model_commit(void);
/* A commit failed: back to the committed state. */
void model_rollback(void);

void model_free(void);

#endif
