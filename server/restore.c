/*
 * restore.c - implements restore.h: two passes over the backup file, the
 * first only checking it, the second writing it through the engine's own
 * operations (so the metadata, the sweep index and the counters come out
 * exactly as if the versions had been written by clients), committing
 * every few thousand records, each commit synced as --fsync says (the last
 * one decides: with the default, the restore is on disk when it reports
 * success).
 */
#include "restore.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "buf.h"

#define COMMIT_EVERY 4096

typedef struct apply_ctx {
    tkv_engine *e; /* NULL: the checking pass */
    uint32_t max_key, max_value;
    uint8_t *key; /* the current key (TKV_BK_KEY_MAX bytes) */
    uint32_t klen;
    uint64_t staged;
    char *err;
    size_t errlen;
} apply_ctx;

static int dir_empty(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open the data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            snprintf(err, errlen,
                     "the data directory %s is not empty: a restore needs an empty or new one",
                     dir);
            rc = -1;
            break;
        }
    closedir(d);
    return rc;
}

static int engine_failed(apply_ctx *a, const char *what)
{
    snprintf(a->err, a->errlen, "%s failed: %s", what, tkv_engine_errmsg(a->e));
    return -1;
}

static int apply_key(apply_ctx *a, const tkv_bk_rec *r)
{
    if (r->klen > a->max_key) {
        snprintf(a->err, a->errlen, "a key of %u bytes is above --max-key (%u)", r->klen,
                 a->max_key);
        return -1;
    }
    memcpy(a->key, r->key, r->klen);
    a->klen = r->klen;
    if (!a->e || (!r->own_policy && !r->horizon))
        return 0;
    tkv_policy p = {r->policy_versions, r->policy_age};
    bool dirty;
    if (tkv_engine_restore_meta(a->e, a->key, a->klen, r->own_policy ? &p : NULL, r->horizon,
                                &dirty) != TKV_E_OK)
        return engine_failed(a, "restoring a key's policy");
    return 0;
}

static int apply_version(apply_ctx *a, const tkv_bk_rec *r)
{
    if (r->vlen > a->max_value) {
        snprintf(a->err, a->errlen, "a value of %u bytes is above --max-value (%u)", r->vlen,
                 a->max_value);
        return -1;
    }
    if (r->tombstone && r->expires) {
        snprintf(a->err, a->errlen, "a tombstone with an expiry time (tkv writes none)");
        return -1;
    }
    if (!a->e)
        return 0;
    uint64_t ts;
    bool dirty;
    tkv_eng_rc rc = r->tombstone
                        ? tkv_engine_tombstone(a->e, a->key, a->klen, r->ts, true, &ts, &dirty)
                        : tkv_engine_put_until(a->e, a->key, a->klen, r->value, r->vlen, r->ts,
                                               true, r->expires, &ts, &dirty);
    return rc == TKV_E_OK ? 0 : engine_failed(a, "restoring a version");
}

static int apply(apply_ctx *a, const tkv_bk_rec *r)
{
    if ((r->type == TKV_BK_KEY ? apply_key(a, r) : apply_version(a, r)) < 0)
        return -1;
    if (a->e && ++a->staged % COMMIT_EVERY == 0) {
        if (tkv_engine_commit(a->e) < 0)
            return engine_failed(a, "writing");
        tkv_engine_maintain(a->e);
    }
    return 0;
}

/* One pass over the file: checks it, and with a->e applies each record. */
static int pass(apply_ctx *a, const char *file, tkv_restore_info *info)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(a->err, a->errlen, "cannot open %s: %s", file, strerror(errno));
        return -1;
    }
    tkv_bk_reader bk;
    tkv_bk_reader_init(&bk, a->max_value);
    tkv_buf hold = {0};
    uint8_t chunk[64 * 1024];
    tkv_bk_rc rc = TKV_BK_MORE;
    uint64_t bytes = 0;
    int failed = 0;
    size_t n = 1;
    while (!failed && rc != TKV_BK_ERR && n > 0) {
        n = fread(chunk, 1, sizeof chunk, f);
        bytes += n;
        if (tkv_buf_append(&hold, chunk, n) < 0) {
            snprintf(a->err, a->errlen, "out of memory");
            failed = -1;
            break;
        }
        size_t at = 0, used;
        tkv_bk_rec r;
        while (!failed && (rc = tkv_bk_read(&bk, hold.data + at, hold.len - at, &r, &used)) >= 0) {
            at += used;
            if (rc != TKV_BK_REC)
                break;
            failed = apply(a, &r);
        }
        tkv_buf_consume(&hold, at);
    }
    if (!failed && ferror(f)) {
        snprintf(a->err, a->errlen, "cannot read %s: %s", file, strerror(errno));
        failed = -1;
    }
    fclose(f);
    tkv_buf_deinit(&hold);
    if (failed)
        return -1;
    if (rc == TKV_BK_ERR) {
        snprintf(a->err, a->errlen, "%s is not a valid backup: %s", file, bk.err);
        return -1;
    }
    if (rc != TKV_BK_DONE) {
        snprintf(a->err, a->errlen, "%s is not a valid backup: it ends early (truncated)", file);
        return -1;
    }
    *info =
        (tkv_restore_info){.at = bk.at, .keys = bk.keys, .versions = bk.versions, .bytes = bytes};
    memcpy(info->digest, bk.digest_out, sizeof info->digest);
    return 0;
}

int tkv_restore_offline(const tkv_engine_opts *o, const char *file, uint32_t max_key,
                        uint32_t max_value, tkv_restore_info *info, char *err, size_t errlen)
{
    apply_ctx a = {.max_key = max_key, .max_value = max_value, .err = err, .errlen = errlen};
    if (dir_empty(o->dir, err, errlen) < 0)
        return -1;
    if (!(a.key = malloc(TKV_BK_KEY_MAX))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = pass(&a, file, info);
    if (rc == 0) {
        tkv_engine_opts eo = *o;
        eo.writer_thread = false;
        char why[512];
        if (tkv_engine_open(&eo, &a.e, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s", why);
            rc = -1;
        }
    }
    if (rc == 0 && (pass(&a, file, info) < 0 || tkv_engine_commit(a.e) < 0)) {
        if (tkv_engine_failing(a.e) || !err[0])
            engine_failed(&a, "writing");
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, "; %s holds part of the backup: empty it before trying again",
                 o->dir);
        rc = -1;
    }
    tkv_engine_close(a.e);
    free(a.key);
    return rc;
}
