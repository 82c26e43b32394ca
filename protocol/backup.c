/*
 * backup.c - implements backup.h: the backup format's writer and its
 * incremental reader.
 *
 * The writer encodes each record's fixed part on the stack and hashes it
 * and the variable part (key or value) where they lie, so a DIGEST (no
 * output buffer) costs hashing only. The reader checks every declared
 * length against the limits before it asks for the bytes, and keeps both
 * hashes as it goes, so a damaged backup is refused at its trailer at the
 * latest - never applied past it by a reader that verifies first.
 */
#include "backup.h"

#include <stdio.h>
#include <string.h>

#include "byteorder.h"

#define REC_HEAD 5 /* type u8 + body length u32 */

/* Appends (if out) and hashes n bytes: into the checksum always, into the
 * digest for records. */
static int emit(tkv_bk_writer *w, tkv_buf *out, const void *p, size_t n, bool record)
{
    if (n == 0)
        return 0; /* an empty value may come as NULL */
    if (out && tkv_buf_append(out, p, n) < 0)
        return -1;
    if (out)
        tkv_sha256_update(&w->sum, p, n);
    if (record)
        tkv_sha256_update(&w->digest, p, n);
    w->bytes += n;
    return 0;
}

int tkv_bk_write_begin(tkv_bk_writer *w, tkv_buf *out, uint64_t at)
{
    memset(w, 0, sizeof *w);
    tkv_sha256_init(&w->sum);
    tkv_sha256_init(&w->digest);
    uint8_t h[TKV_BK_HEADER_LEN];
    memcpy(h, TKV_BK_MAGIC, 8);
    tkv_store_be32(h + 8, TKV_BK_VERSION);
    tkv_store_be32(h + 12, 0);
    tkv_store_be64(h + 16, at);
    return emit(w, out, h, sizeof h, false);
}

int tkv_bk_write_rec(tkv_bk_writer *w, tkv_buf *out, const tkv_bk_rec *r)
{
    uint8_t h[REC_HEAD + TKV_BK_KEY_FIXED];
    size_t fixed;
    const uint8_t *var;
    uint32_t vlen;
    h[0] = r->type;
    if (r->type == TKV_BK_KEY) {
        h[5] = r->own_policy ? TKV_BK_OWN_POLICY : 0;
        tkv_store_be32(h + 6, r->policy_versions);
        tkv_store_be64(h + 10, r->policy_age);
        tkv_store_be64(h + 18, r->horizon);
        fixed = TKV_BK_KEY_FIXED;
        var = r->key;
        vlen = r->klen;
        w->keys++;
    } else {
        tkv_store_be64(h + 5, r->ts);
        h[13] = r->tombstone ? 1 : 0;
        tkv_store_be64(h + 14, r->expires);
        fixed = TKV_BK_VERSION_FIXED;
        var = r->value;
        vlen = r->tombstone ? 0 : r->vlen;
        w->versions++;
    }
    tkv_store_be32(h + 1, (uint32_t)(fixed + vlen));
    size_t mark = out ? out->len : 0;
    if (emit(w, out, h, REC_HEAD + fixed, true) < 0 || emit(w, out, var, vlen, true) < 0) {
        if (out)
            out->len = mark; /* the hashes are spoilt too, but the caller gives up */
        return -1;
    }
    return 0;
}

int tkv_bk_write_end(tkv_bk_writer *w, tkv_buf *out, uint8_t digest[TKV_SHA256_LEN])
{
    uint8_t t[REC_HEAD + TKV_BK_TRAILER_BODY];
    tkv_sha256_final(&w->digest, digest);
    t[0] = TKV_BK_END;
    tkv_store_be32(t + 1, TKV_BK_TRAILER_BODY);
    tkv_store_be64(t + 5, w->keys);
    tkv_store_be64(t + 13, w->versions);
    memcpy(t + 21, digest, TKV_SHA256_LEN);
    if (!out)
        return 0;
    tkv_sha256_update(&w->sum, t, 21 + TKV_SHA256_LEN);
    tkv_sha256_final(&w->sum, t + 21 + TKV_SHA256_LEN);
    w->bytes += sizeof t;
    return tkv_buf_append(out, t, sizeof t);
}

/* ---- reading -------------------------------------------------------------- */

void tkv_bk_reader_init(tkv_bk_reader *r, uint32_t max_value)
{
    memset(r, 0, sizeof *r);
    r->max_value = max_value;
    tkv_sha256_init(&r->sum);
    tkv_sha256_init(&r->digest);
}

void tkv_bk_reader_init_records(tkv_bk_reader *r, uint32_t max_value)
{
    tkv_bk_reader_init(r, max_value);
    r->have_header = true;
    r->records_only = true;
}

static tkv_bk_rc fail(tkv_bk_reader *r, const char *what)
{
    if (!r->err[0])
        snprintf(r->err, sizeof r->err, "%s (at byte %llu)", what, (unsigned long long)r->offset);
    return TKV_BK_ERR;
}

static tkv_bk_rc read_header(tkv_bk_reader *r, const uint8_t *p, size_t n, size_t *used)
{
    if (n < TKV_BK_HEADER_LEN) {
        /* A wrong magic is told at once, not after waiting for more (with
         * no bytes p may be NULL, which memcmp must not see). */
        if (n > 0 && memcmp(p, TKV_BK_MAGIC, n < 8 ? n : 8) != 0)
            return fail(r, "not a tkv backup (bad magic)");
        return TKV_BK_MORE;
    }
    if (memcmp(p, TKV_BK_MAGIC, 8) != 0)
        return fail(r, "not a tkv backup (bad magic)");
    r->version = tkv_load_be32(p + 8);
    if (r->version != TKV_BK_VERSION) {
        char why[96];
        snprintf(why, sizeof why, "backup format version %u; this tkv reads version %u", r->version,
                 TKV_BK_VERSION);
        return fail(r, why);
    }
    r->at = tkv_load_be64(p + 16);
    tkv_sha256_update(&r->sum, p, TKV_BK_HEADER_LEN);
    r->have_header = true;
    r->offset += TKV_BK_HEADER_LEN;
    *used = TKV_BK_HEADER_LEN;
    return TKV_BK_MORE;
}

static tkv_bk_rc check_trailer(tkv_bk_reader *r, const uint8_t *b)
{
    uint8_t sum[TKV_SHA256_LEN];
    if (tkv_load_be64(b) != r->keys || tkv_load_be64(b + 8) != r->versions)
        return fail(r, "trailer counts do not match the records (truncated or damaged)");
    tkv_sha256_final(&r->digest, r->digest_out);
    if (memcmp(b + 16, r->digest_out, TKV_SHA256_LEN) != 0)
        return fail(r, "records do not match the digest in the trailer (damaged)");
    tkv_sha256_update(&r->sum, b - REC_HEAD, REC_HEAD + 16 + TKV_SHA256_LEN);
    tkv_sha256_final(&r->sum, sum);
    if (memcmp(b + 16 + TKV_SHA256_LEN, sum, TKV_SHA256_LEN) != 0)
        return fail(r, "checksum mismatch (damaged)");
    r->done = true;
    return TKV_BK_DONE;
}

/* The body's declared length, checked against its type before any byte of
 * it is awaited. */
static tkv_bk_rc check_len(tkv_bk_reader *r, uint8_t type, uint32_t len)
{
    switch (type) {
    case TKV_BK_KEY:
        if (len <= TKV_BK_KEY_FIXED || len - TKV_BK_KEY_FIXED > TKV_BK_KEY_MAX)
            return fail(r, "key record of a bad length");
        return TKV_BK_REC;
    case TKV_BK_VER:
        if (!r->in_key)
            return fail(r, "version record before any key record");
        if (len < TKV_BK_VERSION_FIXED || len - TKV_BK_VERSION_FIXED > r->max_value)
            return fail(r, "version record of a bad length (or a value above the limit)");
        return TKV_BK_REC;
    case TKV_BK_END:
        if (r->records_only)
            return fail(r, "a trailer among bare records");
        if (len != TKV_BK_TRAILER_BODY)
            return fail(r, "trailer of a bad length");
        return TKV_BK_REC;
    default: return fail(r, "unknown record type");
    }
}

/* A version's timestamp against its key's horizon and the version
 * before it: a restore writes what the reader passed, and a write below a
 * horizon is refused, so a reader that let one through would have a
 * checked backup fail half-way. */
static tkv_bk_rc check_order(tkv_bk_reader *r, uint64_t ts)
{
    if (ts < r->horizon)
        return fail(r, "a version below its key's horizon");
    if (r->have_ts && ts >= r->last_ts)
        return fail(r, "a key's versions not newest first (or a timestamp twice)");
    r->last_ts = ts;
    r->have_ts = true;
    return TKV_BK_REC;
}

static void decode(const uint8_t *b, uint8_t type, uint32_t len, tkv_bk_rec *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->type = type;
    if (type == TKV_BK_KEY) {
        rec->own_policy = b[0] & TKV_BK_OWN_POLICY;
        rec->policy_versions = tkv_load_be32(b + 1);
        rec->policy_age = tkv_load_be64(b + 5);
        rec->horizon = tkv_load_be64(b + 13);
        rec->key = b + TKV_BK_KEY_FIXED;
        rec->klen = len - TKV_BK_KEY_FIXED;
    } else {
        rec->ts = tkv_load_be64(b);
        rec->tombstone = b[8] == 1;
        rec->expires = tkv_load_be64(b + 9);
        rec->value = b + TKV_BK_VERSION_FIXED;
        rec->vlen = len - TKV_BK_VERSION_FIXED;
    }
}

tkv_bk_rc tkv_bk_read(tkv_bk_reader *r, const uint8_t *p, size_t n, tkv_bk_rec *rec, size_t *used)
{
    *used = 0;
    if (r->err[0])
        return TKV_BK_ERR;
    if (r->done)
        return n ? fail(r, "data after the trailer") : TKV_BK_DONE;
    if (!r->have_header) {
        tkv_bk_rc rc = read_header(r, p, n, used);
        if (rc != TKV_BK_MORE || *used == 0)
            return rc;
        size_t more;
        rc = tkv_bk_read(r, p + *used, n - *used, rec, &more);
        *used += more;
        return rc;
    }
    if (n < REC_HEAD)
        return TKV_BK_MORE;
    uint8_t type = p[0];
    uint32_t len = tkv_load_be32(p + 1);
    if (check_len(r, type, len) < 0)
        return TKV_BK_ERR;
    if (n - REC_HEAD < len)
        return TKV_BK_MORE;
    const uint8_t *b = p + REC_HEAD;
    if (type == TKV_BK_END) {
        tkv_bk_rc rc = check_trailer(r, b);
        if (rc == TKV_BK_DONE) {
            *used = REC_HEAD + len;
            r->offset += *used;
        }
        return rc;
    }
    if (type == TKV_BK_VER && (b[8] > 1 || (b[8] == 1 && len > TKV_BK_VERSION_FIXED)))
        return fail(r, "version record of an unknown kind");
    /* tkv writes none, and a restore could not write it back. */
    if (type == TKV_BK_VER && b[8] == 1 && tkv_load_be64(b + 9) != 0)
        return fail(r, "a tombstone with an expiry time");
    if (type == TKV_BK_VER && check_order(r, tkv_load_be64(b)) < 0)
        return TKV_BK_ERR;
    decode(b, type, len, rec);
    r->in_key = true;
    if (type == TKV_BK_KEY) {
        r->horizon = rec->horizon;
        r->have_ts = false;
    }
    r->keys += type == TKV_BK_KEY;
    r->versions += type == TKV_BK_VER;
    tkv_sha256_update(&r->sum, p, REC_HEAD + len);
    tkv_sha256_update(&r->digest, p, REC_HEAD + len);
    *used = REC_HEAD + len;
    r->offset += *used;
    return TKV_BK_REC;
}

void tkv_bk_hex(const uint8_t d[TKV_SHA256_LEN], char out[2 * TKV_SHA256_LEN + 1])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < TKV_SHA256_LEN; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * TKV_SHA256_LEN] = 0;
}
