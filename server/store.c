/*
 * store.c - implements the LevelDB handle of store.h.
 *
 * The data directory holds LevelDB's files under db/ and tkvd.lock, a file
 * locked with flock() for the life of the process and holding the owner's
 * pid, so a second server on the same directory fails at once and says who
 * has it.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *what, const char *detail)
{
    snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    char what[600];
    snprintf(what, sizeof what, "cannot create directory %s", path);
    set_err(err, errlen, what, strerror(errno));
    return -1;
}

static int take_lock(tkv_store *s, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tkvd.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        char what[4200];
        snprintf(what, sizeof what, "cannot open lock file %s", path);
        set_err(err, errlen, what,
                errno == ENOTDIR ? "Not a directory (is --data-dir a file?)" : strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen,
                 "data directory %s is in use by another tkvd (pid %s); stop it or "
                 "choose another --data-dir",
                 dir, pid[0] ? pid : "unknown");
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* The pid is only informative; the lock is what counts. */
    }
    s->lock_fd = fd;
    return 0;
}

static void make_options(tkv_store *s, const tkv_store_opts *o)
{
    s->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(s->opts, o->create);
    leveldb_options_set_paranoid_checks(s->opts, 1);
    /* Each table block records its own compression, so a directory written
     * in either mode opens in the other. */
    leveldb_options_set_compression(s->opts, o->no_compression ? leveldb_no_compression
                                                               : leveldb_snappy_compression);
    if (o->block_cache) {
        s->cache = leveldb_cache_create_lru(o->block_cache);
        leveldb_options_set_cache(s->opts, s->cache);
    }
    if (o->write_buffer)
        leveldb_options_set_write_buffer_size(s->opts, o->write_buffer);
    s->bloom = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_filter_policy(s->opts, s->bloom);
    s->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(s->ropts, 1);
    s->wsync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wsync, 1);
    s->wnosync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wnosync, 0);
}

static int open_db(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    make_options(s, o);
    char *lerr = NULL;
    s->db = leveldb_open(s->opts, s->dbpath, &lerr);
    if (!s->db) {
        char what[600];
        snprintf(what, sizeof what, "cannot open the database in %s", s->dbpath);
        set_err(err, errlen, what, lerr);
        if (strstr(lerr, "Corruption")) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n,
                     ". The data directory is damaged: stop tkvd, back the directory up, "
                     "then run 'tkvd --data-dir DIR --repair' (see README.md)");
        }
        leveldb_free(lerr);
        return -1;
    }
    return 0;
}

/* Releases LevelDB's handles but not the directory lock. */
static void close_db(tkv_store *s)
{
    tkv_store_iter_drop(s);
    if (s->db)
        leveldb_close(s->db);
    if (s->opts)
        leveldb_options_destroy(s->opts);
    if (s->cache)
        leveldb_cache_destroy(s->cache);
    if (s->bloom)
        leveldb_filterpolicy_destroy(s->bloom);
    if (s->ropts)
        leveldb_readoptions_destroy(s->ropts);
    if (s->wsync)
        leveldb_writeoptions_destroy(s->wsync);
    if (s->wnosync)
        leveldb_writeoptions_destroy(s->wnosync);
    s->db = NULL;
    s->opts = NULL;
    s->cache = NULL;
    s->bloom = NULL;
    s->ropts = NULL;
    s->wsync = s->wnosync = NULL;
}

int tkv_store_open(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->lock_fd = -1;
    if (o->create && make_dir(o->dir, err, errlen) < 0)
        return -1;
    if (take_lock(s, o->dir, err, errlen) < 0)
        return -1;
    size_t n = strlen(o->dir) + sizeof "/db";
    s->dbpath = malloc(n);
    if (!s->dbpath) {
        set_err(err, errlen, "out of memory", NULL);
        tkv_store_close(s);
        return -1;
    }
    snprintf(s->dbpath, n, "%s/db", o->dir);
    if (open_db(s, o, err, errlen) < 0) {
        tkv_store_close(s);
        return -1;
    }
    return 0;
}

int tkv_store_reopen(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    close_db(s);
    if (open_db(s, o, err, errlen) < 0) {
        close_db(s);
        return -1;
    }
    return 0;
}

void tkv_store_close(tkv_store *s)
{
    if (!s)
        return;
    close_db(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->dbpath);
    memset(s, 0, sizeof *s);
    s->lock_fd = -1;
}

/* Repair rewrites LevelDB's files wholesale and moves any log it cannot
 * account for into lost/: run against a live server's directory it would
 * take that server's acknowledged writes with it. So it takes the same
 * lock tkvd holds, and refuses while anyone else has it. */
int tkv_store_repair(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/db", dir);
    struct stat st;
    int serr = stat(path, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (serr) {
        char what[4200];
        snprintf(what, sizeof what, "no database to repair in %s", path);
        set_err(err, errlen, what, strerror(serr));
        return -1;
    }
    tkv_store s = {.lock_fd = -1};
    if (take_lock(&s, dir, err, errlen) < 0)
        return -1;
    leveldb_options_t *o = leveldb_options_create();
    char *lerr = NULL;
    leveldb_repair_db(o, path, &lerr);
    leveldb_options_destroy(o);
    close(s.lock_fd);
    if (lerr) {
        set_err(err, errlen, "repair failed", lerr);
        leveldb_free(lerr);
        return -1;
    }
    return 0;
}

leveldb_iterator_t *tkv_store_iter(tkv_store *s)
{
    if (!s->iter)
        s->iter = leveldb_create_iterator(s->db, s->ropts);
    return s->iter;
}

void tkv_store_iter_drop(tkv_store *s)
{
    if (s->iter) {
        leveldb_iter_destroy(s->iter);
        s->iter = NULL;
    }
}

int tkv_store_write(tkv_store *s, leveldb_writebatch_t *b, bool sync, char *err, size_t errlen)
{
    char *lerr = NULL;
    leveldb_write(s->db, sync ? s->wsync : s->wnosync, b, &lerr);
    if (lerr) {
        set_err(err, errlen, lerr, NULL);
        leveldb_free(lerr);
        return -1;
    }
    return 0;
}

int tkv_store_get(tkv_store *s, const void *k, size_t klen, char **val, size_t *vlen,
                  char *err, size_t errlen)
{
    char *lerr = NULL;
    *val = leveldb_get(s->db, s->ropts, k, klen, vlen, &lerr);
    if (lerr) {
        set_err(err, errlen, lerr, NULL);
        leveldb_free(lerr);
        return -1;
    }
    return *val ? 1 : 0;
}

char *tkv_store_property(tkv_store *s, const char *name)
{
    return leveldb_property_value(s->db, name);
}
