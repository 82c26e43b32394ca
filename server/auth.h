/*
 * auth.h - the shared secret clients present with AUTH.
 *
 * The secret is never compared byte by byte: both it and each attempt are
 * hashed with SipHash under a random per-process key, and the 128-bit
 * digests are compared in constant time. How long a check takes says
 * nothing about how much of an attempt was right.
 */
#ifndef TKV_AUTH_H
#define TKV_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv_auth {
    uint64_t key[4];    /* two SipHash keys */
    uint64_t digest[2]; /* of the secret */
} tkv_auth;

/* Returns 0, or -1 if the system has no randomness to key the hash. */
int tkv_auth_init(tkv_auth *a, const void *secret, size_t len);

bool tkv_auth_check(const tkv_auth *a, const void *attempt, size_t len);

/* Reads a secret from the first line of a file (trailing CR/LF dropped).
 * Returns a malloc'd NUL-terminated string and its length, or NULL with a
 * message in err. */
char *tkv_auth_read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
