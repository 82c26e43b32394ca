/*
 * dump.h - the engine's consistent dumps: every key's visible state, read
 * from a frozen view of LevelDB, for DIGEST and BACKUP (stream.h).
 *
 * A dump reads a store snapshot (store.h), so it sees the committed state
 * of one moment however long it runs and whatever is written meanwhile;
 * memory, and so eviction, plays no part. It yields keys in LevelDB order
 * (bytewise), each followed by its visible versions newest first:
 *
 *   - a version is visible as of `at` (the dump's clock) when its ts is at
 *     or after the key's horizon and it has not expired by `at` (expires
 *     == 0 or expires > at) - the rule every read applies at its own clock;
 *   - a key is yielded when it has a visible version, a policy of its own
 *     or a horizon (the state a read can observe: POLICY, reason 3).
 * What the sweep has or has not deleted yet (expired versions, versions
 * below a horizon, its bookkeeping) is invisible by that rule, so two
 * stores holding the same data dump the same records.
 *
 * Open and close on the engine's thread; next may run on any one thread at
 * a time. An open dump holds the store open the way a load does (engine.h,
 * "Loads"): recovery from a failed write waits for it.
 */
#ifndef TKV_DUMP_H
#define TKV_DUMP_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

typedef struct tkv_eng_dump tkv_eng_dump;

/* One record of a dump: a key (is_key) or a version of the last key. The
 * pointers stay valid until the next call on the dump. */
typedef struct tkv_dump_rec {
    bool is_key;
    const uint8_t *key; /* is_key */
    uint32_t klen;
    bool own_policy; /* is_key: the key's own policy (else the default applies) */
    tkv_policy policy;
    uint64_t horizon; /* is_key; 0: none */
    uint64_t ts;      /* !is_key */
    bool tombstone;
    uint64_t expires; /* 0: never */
    const uint8_t *value;
    uint32_t vlen;
} tkv_dump_rec;

/* Starts a dump of everything committed so far, judged at clock `at`.
 * NULL if the store is closed (failing) or memory ran out; errmsg says. */
tkv_eng_dump *tkv_engine_dump_open(tkv_engine *e, uint64_t at);

/* The next record: 1 with *r set, 0 at the end, -1 if LevelDB failed or a
 * record is malformed (tkv_engine_dump_error() says why). */
int tkv_engine_dump_next(tkv_eng_dump *d, tkv_dump_rec *r);

const char *tkv_engine_dump_error(const tkv_eng_dump *d);

/* A replica's full copy reads the same snapshot raw: every record of the
 * store as it is (the server's replication state records excepted), in
 * key order, and the replication state the snapshot is at. Both return as
 * tkv_engine_dump_next(); next_raw's pointers stay valid until the next
 * call. Use either the raw calls or tkv_engine_dump_next() on one dump. */
int tkv_engine_dump_repl(tkv_eng_dump *d, tkv_eng_repl *out);
int tkv_engine_dump_next_raw(tkv_eng_dump *d, const uint8_t **k, size_t *klen, const uint8_t **v,
                             size_t *vlen);

/* Ends a dump (on the engine's thread). NULL-safe. */
void tkv_engine_dump_close(tkv_engine *e, tkv_eng_dump *d);

#endif
