/*
 * sha256.h - SHA-256 (FIPS 180-4), incremental.
 *
 * Used where a hash must be recomputable by anyone, in any language, with
 * the tool at hand (sha256sum, hashlib): DIGEST's state hash and the
 * backup format's checksum. Not on a hot path; a plain, portable
 * implementation is enough.
 */
#ifndef TKV_SHA256_H
#define TKV_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define TKV_SHA256_LEN 32

typedef struct tkv_sha256 {
    uint32_t h[8];
    uint64_t bytes;  /* hashed so far */
    uint8_t buf[64]; /* a partial block */
} tkv_sha256;

void tkv_sha256_init(tkv_sha256 *s);
void tkv_sha256_update(tkv_sha256 *s, const void *p, size_t n);
/* Writes the digest; s must be initialised again before reuse. */
void tkv_sha256_final(tkv_sha256 *s, uint8_t out[TKV_SHA256_LEN]);

#endif
