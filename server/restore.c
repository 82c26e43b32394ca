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
#include "wire.h"

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

/* ---- RESTORE: records into a running server ------------------------------ */

/* What the server holds of a key: whether it exists for a reader (a
 * visible version, a policy of its own or a horizon) and its horizon. */
static tkv_eng_rc target_key(tkv_engine *e, const uint8_t *key, uint32_t klen, bool *exists,
                             uint64_t *horizon)
{
    tkv_eng_policy_info pi;
    tkv_eng_rc rc = tkv_engine_policy(e, key, klen, &pi);
    uint64_t n = 0;
    bool dirty;
    if (rc == TKV_E_OK)
        rc = tkv_engine_count(e, key, klen, 0, TKV_ENG_TS_MAX, &n, &dirty);
    *exists = n > 0 || pi.own || pi.horizon > 0;
    *horizon = pi.horizon;
    return rc;
}

/* Whether the server has a visible version of key at exactly ts. */
static tkv_eng_rc target_has(tkv_engine *e, const uint8_t *key, uint32_t klen, uint64_t ts,
                             bool *has)
{
    tkv_answer a;
    tkv_eng_rc rc = tkv_engine_get(e, key, klen, ts, &a);
    *has = (rc == TKV_E_OK && a.ts == ts) ||
           (rc == TKV_E_NOT_FOUND && a.miss == TKV_EM_DELETED && a.at == ts);
    return rc == TKV_E_NOT_FOUND ? TKV_E_OK : rc;
}

typedef struct walk {
    tkv_bk_reader bk;
    const tkv_restore_req *q;
    size_t at;
} walk;

static void walk_init(walk *w, const tkv_restore_req *q)
{
    tkv_bk_reader_init_records(&w->bk, q->max_value);
    w->q = q;
    w->at = 0;
}

/* The next record: 1, 0 at the end, -1 if malformed (w->bk.err). */
static int walk_next(walk *w, tkv_bk_rec *r)
{
    if (w->at == w->q->len)
        return 0;
    size_t used;
    tkv_bk_rc rc = tkv_bk_read(&w->bk, w->q->records + w->at, w->q->len - w->at, r, &used);
    w->at += used;
    if (rc == TKV_BK_REC)
        return 1;
    if (rc == TKV_BK_MORE)
        snprintf(w->bk.err, sizeof w->bk.err, "a record is cut short");
    return -1;
}

static int refuse(tkv_status *st, tkv_status s, char *msg, size_t msglen, const char *why)
{
    *st = s;
    snprintf(msg, msglen, "RESTORE: %s; nothing was written", why);
    return -1;
}

/* Whether key b sorts after key a (bytewise, a prefix first). */
static bool key_after(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c < 0 || (c == 0 && alen < blen);
}

/* Checks the records' form and limits, before anything else. The keys
 * must come in byte order, each once (as a backup has them): the check
 * pass reads what the server holds of each key before any write, and a
 * key met again would find the request's own writes and be refused
 * half-way through them. */
static int check_records(const tkv_restore_req *q, tkv_status *st, char *msg, size_t msglen)
{
    walk w;
    tkv_bk_rec r;
    int rc;
    uint32_t versions = 0;
    const uint8_t *prev = NULL;
    uint32_t plen = 0;
    char why[200];
    walk_init(&w, q);
    while ((rc = walk_next(&w, &r)) > 0) {
        if (r.type == TKV_BK_KEY && prev && !key_after(prev, plen, r.key, r.klen))
            return refuse(st, TKV_ST_BAD_REQUEST, msg, msglen,
                          "its keys are not in byte order, each once");
        if (r.type == TKV_BK_KEY) {
            prev = r.key;
            plen = r.klen;
        }
        if (r.type == TKV_BK_KEY && r.klen > q->max_key) {
            snprintf(why, sizeof why, "a key of %u bytes is above the limit of %u", r.klen,
                     q->max_key);
            return refuse(st, TKV_ST_TOO_LARGE, msg, msglen, why);
        }
        if (r.type == TKV_BK_VER && r.tombstone && r.expires)
            return refuse(st, TKV_ST_BAD_REQUEST, msg, msglen, "a tombstone with an expiry time");
        if (r.type == TKV_BK_VER && ++versions > q->max_versions)
            return refuse(st, TKV_ST_TOO_LARGE, msg, msglen, "more versions than --max-batch");
    }
    if (rc < 0)
        return refuse(st, TKV_ST_BAD_REQUEST, msg, msglen, w.bk.err);
    return 0;
}

/* The key a walk is in, and what the server holds of it. */
typedef struct cur_key {
    const uint8_t *key; /* into the request's records */
    uint32_t klen;
    bool exists;      /* for a reader, before this request */
    bool keep;        /* merge into it: its policy, horizon and versions stay */
    uint64_t horizon; /* the server's */
} cur_key;

static int engine_error(tkv_engine *e, tkv_eng_rc rc, tkv_status *st, char *msg, size_t msglen)
{
    *st = tkv_wire_status(rc);
    snprintf(msg, msglen, "RESTORE: %s", tkv_engine_errmsg(e));
    return -1;
}

/* A key record: reads what the server holds of it, and refuses a key that
 * exists unless merging (or continuing it). */
static tkv_eng_rc enter_key(tkv_engine *e, const tkv_restore_req *q, const tkv_bk_rec *r,
                            bool first, cur_key *k, char *why, size_t whylen)
{
    *k = (cur_key){.key = r->key, .klen = r->klen};
    tkv_eng_rc rc = target_key(e, r->key, r->klen, &k->exists, &k->horizon);
    if (rc != TKV_E_OK)
        return rc;
    /* A continued key exists because the request before made it: it is
     * not refused, and with merge it is merged into like any other. */
    bool continued = q->cont && first;
    k->keep = k->exists && q->merge;
    if (k->exists && !q->merge && !continued) {
        snprintf(why, whylen,
                 "key '%.*s' exists on this server (restore into an empty server, or merge)",
                 (int)(r->klen > 64 ? 64 : r->klen), (const char *)r->key);
        return TKV_E_OUT_OF_RANGE;
    }
    return TKV_E_OK;
}

/* The check pass: every read the request needs, before any write. Returns
 * 0; -2 if a load is wanted (later keys are probed too, to join the same
 * load); or -1 with a refusal or a storage failure. */
static int check_target(tkv_engine *e, const tkv_restore_req *q, tkv_status *st, char *msg,
                        size_t msglen)
{
    walk w;
    tkv_bk_rec r;
    cur_key k = {0};
    bool blocked = false, first = true;
    walk_init(&w, q);
    while (walk_next(&w, &r) > 0 && (!blocked || tkv_engine_load_room(e))) {
        tkv_eng_rc rc = TKV_E_OK;
        bool has;
        char why[200];
        if (r.type == TKV_BK_KEY) {
            rc = enter_key(e, q, &r, first, &k, why, sizeof why);
            first = false;
            if (rc == TKV_E_OUT_OF_RANGE && !blocked)
                return refuse(st, TKV_ST_BAD_REQUEST, msg, msglen, why);
            if (rc == TKV_E_OUT_OF_RANGE)
                rc = TKV_E_OK;
        } else if (k.keep && r.ts >= k.horizon) {
            rc = target_has(e, k.key, k.klen, r.ts, &has);
        }
        if (rc == TKV_E_WOULD_BLOCK)
            blocked = true;
        else if (rc != TKV_E_OK)
            return engine_error(e, rc, st, msg, msglen);
    }
    return blocked ? -2 : 0;
}

/* Stages one version record of k, unless the server keeps its own. A
 * version below the server's horizon is skipped, merging or not: a key
 * continued from the request before may have had its horizon moved since
 * (a RETAIN, the sweep enforcing the policy the first part restored), and
 * the write would be refused half-way through the batch. */
static tkv_eng_rc apply_one(tkv_engine *e, const cur_key *k, const tkv_bk_rec *r, bool *wrote)
{
    *wrote = false;
    bool has = false, dirty;
    uint64_t ts;
    if (r->ts < k->horizon)
        return TKV_E_OK;
    tkv_eng_rc rc = k->keep ? target_has(e, k->key, k->klen, r->ts, &has) : TKV_E_OK;
    if (rc != TKV_E_OK || has)
        return rc;
    *wrote = true;
    if (r->tombstone)
        return tkv_engine_tombstone(e, k->key, k->klen, r->ts, true, &ts, &dirty);
    return tkv_engine_put_until(e, k->key, k->klen, r->value, r->vlen, r->ts, true, r->expires, &ts,
                                &dirty);
}

/* A key record in the apply pass: a key that is not kept gets the
 * backup's policy and horizon. */
static tkv_eng_rc apply_key_meta(tkv_engine *e, const cur_key *k, const tkv_bk_rec *r)
{
    if (k->keep || (!r->own_policy && !r->horizon))
        return TKV_E_OK;
    tkv_policy p = {r->policy_versions, r->policy_age};
    bool dirty;
    return tkv_engine_restore_meta(e, k->key, k->klen, r->own_policy ? &p : NULL, r->horizon,
                                   &dirty);
}

int tkv_restore_records(tkv_engine *e, const tkv_restore_req *q, uint64_t *written,
                        uint64_t *skipped, tkv_status *st, char *msg, size_t msglen)
{
    *written = *skipped = 0;
    int rc = check_records(q, st, msg, msglen);
    if (rc == 0)
        rc = check_target(e, q, st, msg, msglen);
    if (rc != 0)
        return rc;
    /* Every read is done (and resident): the writes run in blocking mode,
     * so they cannot stop half-way for a load (as MPUT's). */
    tkv_engine_set_nonblocking(e, false, 0);
    walk w;
    tkv_bk_rec r;
    cur_key k = {0};
    bool first = true, staged = false;
    char why[200];
    walk_init(&w, q);
    while (walk_next(&w, &r) > 0) {
        tkv_eng_rc erc;
        bool wrote = false;
        if (r.type == TKV_BK_KEY) {
            erc = enter_key(e, q, &r, first, &k, why, sizeof why);
            if (erc == TKV_E_OK)
                erc = apply_key_meta(e, &k, &r);
            staged |= erc == TKV_E_OK && !k.keep && (r.own_policy || r.horizon);
            first = false;
        } else {
            erc = apply_one(e, &k, &r, &wrote);
            *written += wrote;
            *skipped += !wrote;
        }
        staged |= wrote;
        if (erc != TKV_E_OK) {
            engine_error(e, erc, st, msg, msglen);
            /* All or nothing: the writes staged so far must not commit. */
            if (staged)
                tkv_engine_poison(e, msg);
            return -1;
        }
    }
    return 0;
}
