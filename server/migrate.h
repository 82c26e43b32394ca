/*
 * migrate.h - the source side's state while a slot migrates: the keys an
 * admin is moving, locked against writes.
 *
 * Moving one key (ARCHITECTURE.md, "The cluster") is EXPORTKEY here, then
 * IMPORTKEY at the target, then DROPKEY here. From the first EXPORTKEY to
 * DROPKEY the key is locked: its writes get TRYAGAIN, its reads are served
 * (the data does not change), so the copy the target gets is the key's
 * whole state at the moment DROPKEY deletes it here. An admin that dies
 * leaves a lock that expires after TKV_MIGRATE_LOCK_US; DROPKEY after that
 * is refused (a write may have come in since the copy), and the next
 * attempt exports again and overwrites the target's copy.
 *
 * The entry outlives its lock as a *mark* (exported, not dropped) until
 * DROPKEY: the target may hold a copy of the key that is no longer its
 * state, so this node answers for the key even once nothing of it is
 * visible here (a client removed it), and its next export says so (an
 * empty key record, which makes the target's copy go) instead of handing
 * the key over. Marks live in memory: a restart of this node forgets them.
 *
 * An admin moves one key at a time, so the table is a small array searched
 * linearly; it is empty except during a migration, and the hot path asks
 * it only for slots this node is migrating away.
 */
#ifndef TKV_MIGRATE_H
#define TKV_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKV_MIGRATE_LOCKS 64               /* keys exported and not dropped, at most */
#define TKV_MIGRATE_LOCK_US (10 * 1000000) /* a lock no admin renews is released */

typedef struct tkv_migrate_entry {
    uint8_t *key; /* owned; NULL: a free entry */
    size_t klen;
    uint64_t until; /* monotonic µs: locked before, only marked after */
} tkv_migrate_entry;

typedef struct tkv_migrate {
    tkv_migrate_entry locks[TKV_MIGRATE_LOCKS];
    uint32_t n; /* entries in use */
} tkv_migrate;

/* Locks key (or renews its lock) until now + TKV_MIGRATE_LOCK_US, and
 * marks it. Returns 0, or -1 if the table is full or memory is out. */
int tkv_migrate_lock(tkv_migrate *m, const uint8_t *key, size_t klen, uint64_t now);

/* Whether key holds a live lock at now. */
bool tkv_migrate_locked(const tkv_migrate *m, const uint8_t *key, size_t klen, uint64_t now);

/* Whether key is marked: exported and not dropped, locked or not. */
bool tkv_migrate_marked(const tkv_migrate *m, const uint8_t *key, size_t klen);

/* Drops key's entry (lock and mark) if it has one: DROPKEY. */
void tkv_migrate_unlock(tkv_migrate *m, const uint8_t *key, size_t klen);

/* Drops every entry (the node left the cluster, or stops). */
void tkv_migrate_clear(tkv_migrate *m);

/* Drops the entries keep() says no (a new map: slots no longer migrating
 * away from this node). */
void tkv_migrate_retain(tkv_migrate *m, bool (*keep)(void *ctx, const uint8_t *key, size_t klen),
                        void *ctx);

#endif
