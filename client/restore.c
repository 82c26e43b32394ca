/*
 * restore.c - tkv_restore(): a backup into a running server.
 *
 * Two walks over the backup, which the caller holds in memory (tkvctl maps
 * the file): the first only checks it whole, so a damaged or truncated
 * backup sends nothing; the second cuts its records into RESTORE requests
 * of at most REQ_VERSIONS versions and REQ_BYTES bytes, or less when the
 * server's limits (STATS max_batch, max_frame) are smaller. A key whose
 * versions do not fit one request goes on in the next, which repeats the
 * key record and says it continues (the server then does not take the key
 * it created itself for someone else's).
 */
#include <string.h>

#include "backup.h"
#include "client_int.h"

#define REQ_VERSIONS 1000
#define REQ_BYTES (1024 * 1024)

typedef struct batcher {
    tkv_ctx *c;
    int flags;
    uint32_t max_versions; /* per request */
    size_t max_bytes;      /* of records per request */
    tkv_buf req;           /* the records of the request being built */
    uint32_t versions;     /* in req */
    bool cont;             /* req's first key continues the last request's */
    const uint8_t *krec;   /* the current key's record, to repeat */
    size_t krec_len;
    tkv_restore_info *info;
} batcher;

/* Whether key b sorts after key a (bytewise, a prefix first). */
static bool key_after(const tkv_bk_rec *a, const tkv_bk_rec *b)
{
    int d = memcmp(a->key, b->key, a->klen < b->klen ? a->klen : b->klen);
    return d < 0 || (d == 0 && a->klen < b->klen);
}

/* The backup checks out whole - and its keys come in byte order, each
 * once, as a server writes them: the server refuses others a request at a
 * time, which past the first request would leave part of them restored. */
static int check_whole(tkv_ctx *c, const uint8_t *p, size_t n, tkv_restore_info *info)
{
    tkv_bk_reader bk;
    tkv_bk_reader_init(&bk, UINT32_MAX - TKV_BK_VERSION_FIXED);
    size_t at = 0, used;
    tkv_bk_rec r, last = {0};
    tkv_bk_rc rc;
    do {
        rc = tkv_bk_read(&bk, p + at, n - at, &r, &used);
        at += used;
        if (rc == TKV_BK_REC && r.type == TKV_BK_KEY) {
            if (last.key && !key_after(&last, &r))
                return cl_set_err(c, TKV_EK_USAGE,
                                  "not a valid backup: its keys are not in byte order, each once");
            last = r; /* its key points into p, which stays */
        }
    } while (rc == TKV_BK_REC);
    if (rc == TKV_BK_DONE && at < n)
        rc = tkv_bk_read(&bk, p + at, n - at, &r, &used); /* data after the trailer */
    if (rc == TKV_BK_ERR)
        return cl_set_err(c, TKV_EK_USAGE, "not a valid backup: %s", bk.err);
    if (rc != TKV_BK_DONE)
        return cl_set_err(c, TKV_EK_USAGE, "not a valid backup: it ends early (truncated)");
    info->backup =
        (tkv_digest_info){.at = bk.at, .keys = bk.keys, .versions = bk.versions, .bytes = n};
    memcpy(info->backup.digest, bk.digest_out, TKV_DIGEST_LEN);
    return TKV_OK;
}

/* Sends the request built so far and reads its answer. */
static int send_req(batcher *b)
{
    if (b->req.len == 0)
        return TKV_OK;
    tkv_req q = {.cmd = TKV_CMD_RESTORE,
                 .records = cl_span(b->req.data, b->req.len),
                 .merge = (b->flags & TKV_RESTORE_MERGE) != 0,
                 .cont = b->cont};
    tkv_reply r;
    if (cl_append_req(b->c, &q) < 0 || tkv_read_reply(b->c, &r) != TKV_OK)
        return TKV_ERR;
    b->info->written += r.count;
    b->info->skipped += r.skipped;
    b->info->requests++;
    tkv_buf_reset(&b->req);
    b->versions = 0;
    return TKV_OK;
}

static int add(batcher *b, const uint8_t *p, size_t n)
{
    if (tkv_buf_append(&b->req, p, n) < 0)
        return cl_set_err(b->c, TKV_EK_NOMEM, "out of memory");
    return TKV_OK;
}

/* Adds one record (its bytes at p), sending the request first if it is
 * full. */
static int add_record(batcher *b, const tkv_bk_rec *r, const uint8_t *p, size_t n)
{
    if (r->type == TKV_BK_KEY) {
        b->krec = p;
        b->krec_len = n;
        if (b->req.len + n > b->max_bytes && send_req(b) < 0)
            return TKV_ERR;
        if (b->req.len == 0)
            b->cont = false;
        return add(b, p, n);
    }
    if (b->versions == b->max_versions || (b->req.len + n > b->max_bytes && b->versions > 0)) {
        /* This key goes on in the next request. */
        if (send_req(b) < 0)
            return TKV_ERR;
        b->cont = true;
        if (add(b, b->krec, b->krec_len) < 0)
            return TKV_ERR;
    }
    b->versions++;
    return add(b, p, n);
}

/* Fits requests to the server's limits, when it reports them (older
 * servers do not: the defaults fit theirs). */
static void fit_limits(tkv_ctx *c, batcher *b)
{
    b->max_versions = REQ_VERSIONS;
    b->max_bytes = REQ_BYTES;
    const tkv_stat *st;
    size_t n;
    if (tkv_stats(c, &st, &n) != TKV_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (st[i].is_str)
            continue;
        if (strcmp(st[i].name, "max_batch") == 0 && st[i].num > 0 && st[i].num < b->max_versions)
            b->max_versions = (uint32_t)st[i].num;
        /* The request's own framing (name, flags) needs a little room. */
        if (strcmp(st[i].name, "max_frame") == 0 && st[i].num > 256 &&
            st[i].num - 256 < b->max_bytes)
            b->max_bytes = (size_t)(st[i].num - 256);
    }
}

int tkv_restore(tkv_ctx *c, const void *backup, size_t len, int flags, tkv_restore_info *out)
{
    tkv_restore_info info = {0};
    if (out)
        *out = info;
    if (cl_begin(c) < 0)
        return TKV_ERR;
    if (c->ops_n > 0)
        return cl_set_err(c, TKV_EK_USAGE, "read the %zu pending pipelined replies first",
                          c->ops_n);
    const uint8_t *p = backup;
    if (check_whole(c, p, len, &info) < 0)
        return TKV_ERR;
    batcher b = {.c = c, .flags = flags, .info = &info};
    fit_limits(c, &b);
    tkv_bk_reader bk;
    tkv_bk_reader_init(&bk, UINT32_MAX - TKV_BK_VERSION_FIXED);
    size_t at = 0, used;
    tkv_bk_rec r;
    int rc = TKV_OK;
    while (rc == TKV_OK && tkv_bk_read(&bk, p + at, len - at, &r, &used) == TKV_BK_REC) {
        if (at == 0) { /* the header came with the first record */
            at = TKV_BK_HEADER_LEN;
            used -= TKV_BK_HEADER_LEN;
        }
        rc = add_record(&b, &r, p + at, used);
        at += used;
    }
    if (rc == TKV_OK)
        rc = send_req(&b);
    tkv_buf_deinit(&b.req);
    if (out)
        *out = info;
    return rc;
}
