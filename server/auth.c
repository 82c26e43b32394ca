/*
 * auth.c - implements the secret check of auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "siphash.h"

int tkv_auth_init(tkv_auth *a, const void *secret, size_t len)
{
    if (getrandom(a->key, sizeof a->key, 0) != (ssize_t)sizeof a->key)
        return -1;
    a->digest[0] = tkv_siphash(a->key, secret, len);
    a->digest[1] = tkv_siphash(a->key + 2, secret, len);
    return 0;
}

bool tkv_auth_check(const tkv_auth *a, const void *attempt, size_t len)
{
    volatile uint64_t diff = 0;
    diff |= tkv_siphash(a->key, attempt, len) ^ a->digest[0];
    diff |= tkv_siphash(a->key + 2, attempt, len) ^ a->digest[1];
    return diff == 0;
}

char *tkv_auth_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read auth file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n <= 0) {
        free(line);
        snprintf(err, errlen, "auth file %s is empty", path);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0) {
        free(line);
        snprintf(err, errlen, "auth file %s holds an empty secret", path);
        return NULL;
    }
    *len = (size_t)n;
    return line;
}
