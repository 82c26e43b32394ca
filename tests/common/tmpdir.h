/*
 * tmpdir.h - temporary directories for tests, removed with their contents.
 */
#ifndef TKV_TEST_TMPDIR_H
#define TKV_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int tmpdir_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Creates a fresh directory; returns a malloc'd path. */
static inline char *tmpdir_make(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/tkv-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static inline void tmpdir_remove(char *p)
{
    if (!p)
        return;
    nftw(p, tmpdir_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(p);
}

#endif
