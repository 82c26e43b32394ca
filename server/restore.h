/*
 * restore.h - loading a backup (protocol/backup.h) into a data directory:
 * tkvd --restore FILE --data-dir DIR.
 *
 * Offline and all-or-nothing in the way that matters: the whole file is
 * read and checked (format, limits, counts, digest, checksum) before the
 * data directory is created or touched, so a damaged or truncated backup
 * is refused with nothing written. The directory must be empty or absent:
 * a restore never merges into data it would then misrepresent.
 */
#ifndef TKV_RESTORE_H
#define TKV_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
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

#endif
