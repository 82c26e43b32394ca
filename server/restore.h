/*
 * restore.h - loading a backup (protocol/backup.h) into a data directory:
 * tkvd --restore FILE --data-dir DIR.
 *
 * Offline and all-or-nothing in the way that matters: the whole file is
 * read and checked (format, limits, counts, digest, checksum) before the
 * data directory is created or touched, so a damaged or truncated backup
 * is refused with nothing written. The directory must be empty or absent:
 * a restore never merges into data it would then misrepresent.
 *
 * RESTORE (tkvctl restore) brings a backup into a running server, a
 * request at a time: each carries bare records - a key record and its
 * versions, for one or more keys - and is applied as one batch, all or
 * nothing, like MPUT. Without merge a key the server already has refuses
 * the whole request; with merge such a key keeps its policy and horizon
 * and every version it holds, and gains the backup's other versions at or
 * after its horizon.
 */
#ifndef TKV_RESTORE_H
#define TKV_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "proto.h"
#include "sha256.h"

typedef struct tkv_restore_info {
    uint64_t at; /* the backup's moment */
    uint64_t keys, versions, bytes;
    uint8_t digest[TKV_SHA256_LEN]; /* DIGEST at `at` of the restored store */
} tkv_restore_info;

/* Restores `file` into the empty (or absent) directory o->dir, refusing
 * keys longer than max_key and values longer than max_value. Returns 0
 * with *info filled, or -1 with the reason in err: then, if the reason
 * arose after the checks (a failing disk), the directory holds part of
 * the backup and err says so. */
int tkv_restore_offline(const tkv_engine_opts *o, const char *file, uint32_t max_key,
                        uint32_t max_value, tkv_restore_info *info, char *err, size_t errlen);

/* What one RESTORE request asks. */
typedef struct tkv_restore_req {
    const uint8_t *records; /* bare backup records, a key record first */
    size_t len;
    bool merge; /* keys that exist keep what they hold */
    bool cont;  /* the first key continues the previous request's (it may
                   exist: its first part did it) */
    uint32_t max_key, max_value;
    uint32_t max_versions; /* most version records in one request */
} tkv_restore_req;

/* Applies one RESTORE request to e. Returns 0 with *written and *skipped
 * set (the batch then holds its writes), TKV_DISPATCH_WAIT-like -2 if in
 * nonblocking mode a key must be loaded first (nothing changed: take the
 * load and run it again), or -1 with *st and msg telling the refusal or
 * failure (nothing staged, except after a storage failure half-way, which
 * poisons the batch). */
int tkv_restore_records(tkv_engine *e, const tkv_restore_req *q, uint64_t *written,
                        uint64_t *skipped, tkv_status *st, char *msg, size_t msglen);

#endif
