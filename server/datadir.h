/*
 * datadir.h - what every store.h backend does with its data directory:
 * create it, and hold its tkvd.lock (flock, with the owner's pid written in
 * it) so that two processes never open one directory. store.c (LevelDB) and
 * store_mem.c share these, so both refuse a busy directory alike.
 */
#ifndef TKV_DATADIR_H
#define TKV_DATADIR_H

#include <stddef.h>

/* "what: detail" (or just "what") into err. */
void tkv_datadir_err(char *err, size_t errlen, const char *what, const char *detail);

/* Creates the directory path if missing. 0, or -1 with the reason in err. */
int tkv_datadir_make(const char *path, char *err, size_t errlen);

/* Takes dir/tkvd.lock: 0 with *lock_fd set (close it to release), or -1
 * with the reason in err (a busy directory names the holder's pid; a file
 * given as the directory says so). */
int tkv_datadir_lock(const char *dir, int *lock_fd, char *err, size_t errlen);

#endif
