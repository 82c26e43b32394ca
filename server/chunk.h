/*
 * chunk.h - how the store keeps many versions of one key in one LevelDB
 * record.
 *
 * A chunk holds versions of one key (keycodec.h's version encoding: a
 * prefix P naming the key, then ~ts) and is stored under the encoding of
 * its *oldest* version, P | ~oldest. A key's chunks never overlap in time,
 * so the floor lookup "largest ts <= T" is still one seek to P | ~T: it
 * lands on the chunk with the largest oldest <= T, which holds the answer
 * if any chunk does. The record's value:
 *
 *     0xc7 | varint n | n x (varint gap | varint len | len bytes)
 *
 * entries oldest first; gap is the entry's ts minus the previous entry's
 * (the first entry's gap is 0: its ts is in the record's key). A version
 * record written before chunks existed (its value a blob, whose first byte
 * is a flags byte <= 0x03, never 0xc7) reads as a chunk of one.
 */
#ifndef TKV_CHUNK_H
#define TKV_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define TKV_CHUNK_MAGIC 0xc7
/* Versions the store writes into one chunk, at most. */
#define TKV_CHUNK_MAX 64
/* Versions a chunk read from disk may hold: what the store writes; a
 * larger count is corrupt. */
#define TKV_CHUNK_DECODE_MAX TKV_CHUNK_MAX

typedef struct tkv_chunk_ent {
    uint64_t ts;
    const uint8_t *blob;
    uint32_t len;
} tkv_chunk_ent;

/* Whether rec is a version encoding (and so a chunk's name in LevelDB);
 * its prefix is then rec[0 .. n-8). */
bool tkv_chunk_is_version(const uint8_t *rec, size_t n);
/* Whether p is a version prefix: p and 8 bytes would be a version
 * encoding. */
bool tkv_chunk_is_version_prefix(const uint8_t *p, size_t n);

/* Decodes the chunk stored under a version key of timestamp oldest into
 * ents (room for TKV_CHUNK_DECODE_MAX), newest first - the order of the
 * versions' encodings. Blob pointers point into v. Returns the count, or -1
 * if the value is malformed. */
long tkv_chunk_decode(const uint8_t *v, size_t n, uint64_t oldest, tkv_chunk_ent *ents);

/* Appends the chunk of ents[0..n) (newest first, n >= 1, timestamps
 * falling) to out; its key is the version encoding of ents[n-1].ts. -1 if
 * out of memory. */
int tkv_chunk_encode(tkv_buf *out, const tkv_chunk_ent *ents, size_t n);

#endif
