/*
 * siphash.h - SipHash-1-3, a keyed hash.
 *
 * Keyed with a random secret, an attacker who picks the input cannot
 * predict the output: the key index's hash table uses it so that chosen
 * keys cannot all land in one chain, and auth.c to compare secrets
 * through digests rather than byte by byte. Not a cryptographic MAC for
 * anything else.
 */
#ifndef TKV_SIPHASH_H
#define TKV_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-1-3 of the n bytes at p under the 128-bit key k. */
uint64_t tkv_siphash(const uint64_t k[2], const void *p, size_t n);

#endif
