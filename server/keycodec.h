/*
 * keycodec.h - how tkv lays versions out in LevelDB's key space.
 *
 * A version of key K at timestamp T is stored under
 *
 *     'v' | escape(K) | 0x00 0x01 | big-endian(~T)
 *
 * escape() writes every 0x00 byte of K as 0x00 0xff. The escaped key and its
 * 0x00 0x01 terminator form a prefix no other key's encoding starts with, and
 * bytewise order of encodings follows bytewise order of keys (a key sorts
 * before every key it is a prefix of). So all versions of K are contiguous,
 * keys are in order for scans, and ~T puts each key's versions newest first:
 * the floor lookup "largest T' <= T" is a single seek to (K, T).
 *
 * A key's metadata (retention policy, horizon, earliest expiry) sits at
 *
 *     'v' | escape(K) | 0x00 0x00
 *
 * which sorts immediately before the key's versions, so one seek reads a
 * key's metadata and then its newest version, and a scan meets each key's
 * metadata first. Keys under other leading bytes hold server state ('m').
 */
#ifndef TKV_KEYCODEC_H
#define TKV_KEYCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKV_KC_VERSION 'v'
#define TKV_KC_META 'm'

/* Bytes an encoding of a key of klen bytes may need, at most. */
static inline size_t tkv_kc_max(size_t klen) { return 1 + 2 * klen + 2 + 8; }

/* Writes the prefix shared by every version of key; returns its length. */
size_t tkv_kc_prefix(uint8_t *out, const uint8_t *key, size_t klen);

/* Writes the full encoding of (key, ts); returns its length. */
size_t tkv_kc_encode(uint8_t *out, const uint8_t *key, size_t klen, uint64_t ts);

/* Writes the metadata key of key; returns its length. */
size_t tkv_kc_meta(uint8_t *out, const uint8_t *key, size_t klen);

/* Appends the timestamp part to a prefix of length plen; returns total. */
size_t tkv_kc_with_ts(uint8_t *out, size_t plen, uint64_t ts);

/* If enc is a version of the key whose prefix is given, stores its
 * timestamp and returns true. */
bool tkv_kc_match(const uint8_t *enc, size_t n, const uint8_t *prefix, size_t plen, uint64_t *ts);

/* Decodes any version encoding: the key into keyout (room for n bytes) and
 * the timestamp. Returns the key length, or -1 if enc is not a version. */
long tkv_kc_decode(const uint8_t *enc, size_t n, uint8_t *keyout, uint64_t *ts);

/* Decodes the key of a version or metadata encoding into keyout (room for
 * n bytes); *is_meta tells which. Returns the key length, or -1. */
long tkv_kc_decode_any(const uint8_t *enc, size_t n, uint8_t *keyout, bool *is_meta);

/* Decodes a version prefix (tkv_kc_prefix's output) into keyout (room for
 * n bytes). Returns the key length, or -1 if enc is not one. */
long tkv_kc_decode_prefix(const uint8_t *enc, size_t n, uint8_t *keyout);

#endif
