/*
 * fuzz_backup.c - libFuzzer target for the backup format's reader
 * (protocol/backup.h), which parses untrusted bytes: a backup file handed
 * to tkvctl or tkvd --restore, a backup stream from a server, RESTORE's
 * records from a client.
 *
 * Input layout:
 *
 *     [cfg][bytes]
 *
 * cfg bit 0 picks bare records (tkv_bk_reader_init_records, RESTORE's
 * payload) over a whole backup, bits 1-2 the reader's max_value (1 MiB, 0,
 * 16, 65535), bits 3-7 the chunk size (1-32 bytes) of the second feeding.
 *
 * The bytes, copied to an exactly sized heap block (ASan sees any
 * over-read), are read twice: whole, and fed a chunk at a time through a
 * holding buffer the way tkvd --restore and tkvctl feed a file. Invariants:
 *  - both feedings yield the same records and end the same way (a prefix
 *    is never refused when the whole is not, and vice versa);
 *  - *used never exceeds the bytes given; every record's pointers lie
 *    inside them; keys are 1-65535 bytes, values at most max_value, a
 *    tombstone has none; versions are newest first and at or after their
 *    key's horizon;
 *  - a backup read to TKV_BK_DONE has its digest equal to SHA-256 of the
 *    bytes between header and trailer, and the writer, given its records,
 *    writes a backup that reads back to the same records.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "fuzz_common.h"

static const uint32_t max_values[4] = {1u << 20, 0, 16, 65535};

/* What a reading produced: the records re-encoded by the writer (a
 * canonical form to compare), and how it ended. */
typedef struct outcome {
    tkv_buf recs;
    tkv_bk_writer w;
    tkv_bk_rc end;
    uint64_t at;
    uint8_t digest[TKV_SHA256_LEN];
} outcome;

typedef struct rules {
    uint32_t max_value;
    uint64_t horizon, last_ts;
    bool have_ts;
} rules;

static bool same(const tkv_buf *a, const tkv_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void check_rec(rules *ru, const tkv_bk_rec *r, const uint8_t *p, size_t n)
{
    if (r->type == TKV_BK_KEY) {
        FUZZ_CHECK(r->klen >= 1 && r->klen <= TKV_BK_KEY_MAX, "a key of %u bytes", r->klen);
        FUZZ_CHECK(r->key >= p && (size_t)(r->key - p) + r->klen <= n, "key outside the bytes");
        ru->horizon = r->horizon;
        ru->have_ts = false;
        return;
    }
    FUZZ_CHECK(r->type == TKV_BK_VER, "a record of type %d", r->type);
    FUZZ_CHECK(r->vlen <= ru->max_value, "a value of %u bytes above %u", r->vlen, ru->max_value);
    FUZZ_CHECK(!r->tombstone || r->vlen == 0, "a tombstone with a value");
    FUZZ_CHECK(!r->tombstone || r->expires == 0, "a tombstone with an expiry time");
    FUZZ_CHECK(r->vlen == 0 || (r->value >= p && (size_t)(r->value - p) + r->vlen <= n),
               "value outside the bytes");
    FUZZ_CHECK(r->ts >= ru->horizon, "a version below its key's horizon");
    FUZZ_CHECK(!ru->have_ts || r->ts < ru->last_ts, "versions not newest first");
    ru->last_ts = r->ts;
    ru->have_ts = true;
}

static void init(tkv_bk_reader *r, bool bare, uint32_t max_value, outcome *o)
{
    if (bare)
        tkv_bk_reader_init_records(r, max_value);
    else
        tkv_bk_reader_init(r, max_value);
    memset(o, 0, sizeof *o);
    tkv_bk_write_begin(&o->w, NULL, 0);
}

static void finish(tkv_bk_reader *r, tkv_bk_rc end, outcome *o)
{
    o->end = end;
    o->at = r->at;
    if (end == TKV_BK_DONE)
        memcpy(o->digest, r->digest_out, sizeof o->digest);
}

/* Reads everything at once. */
static void read_whole(const uint8_t *p, size_t n, bool bare, uint32_t max_value, outcome *o)
{
    tkv_bk_reader r;
    init(&r, bare, max_value, o);
    rules ru = {.max_value = max_value};
    size_t at = 0;
    tkv_bk_rc rc;
    for (;;) {
        tkv_bk_rec rec;
        size_t used;
        rc = tkv_bk_read(&r, p + at, n - at, &rec, &used);
        FUZZ_CHECK(used <= n - at, "used %zu of %zu bytes", used, n - at);
        if (rc == TKV_BK_REC)
            check_rec(&ru, &rec, p + at, used);
        at += used;
        if (rc == TKV_BK_REC) {
            FUZZ_CHECK(tkv_bk_write_rec(&o->w, &o->recs, &rec) == 0, "out of memory");
            continue;
        }
        if (rc == TKV_BK_DONE && at < n)
            rc = tkv_bk_read(&r, p + at, n - at, &rec, &used); /* bytes after the trailer */
        if (rc == TKV_BK_MORE && used > 0)
            continue; /* the header alone */
        break;
    }
    finish(&r, rc, o);
}

/* Feeds the bytes `step` at a time, holding what a record still lacks. */
static void read_chunked(const uint8_t *p, size_t n, bool bare, uint32_t max_value, size_t step,
                         outcome *o)
{
    tkv_bk_reader r;
    init(&r, bare, max_value, o);
    tkv_buf hold = {0};
    tkv_bk_rc rc = TKV_BK_MORE;
    tkv_bk_rec rec;
    size_t fed = 0, used;
    while (rc != TKV_BK_ERR && fed < n) {
        size_t k = n - fed < step ? n - fed : step;
        FUZZ_CHECK(tkv_buf_append(&hold, p + fed, k) == 0, "out of memory");
        fed += k;
        size_t at = 0;
        do {
            rc = tkv_bk_read(&r, hold.data + at, hold.len - at, &rec, &used);
            FUZZ_CHECK(used <= hold.len - at, "used %zu of %zu bytes", used, hold.len - at);
            at += used;
            if (rc == TKV_BK_REC)
                FUZZ_CHECK(tkv_bk_write_rec(&o->w, &o->recs, &rec) == 0, "out of memory");
        } while (rc == TKV_BK_REC || (rc == TKV_BK_MORE && used > 0));
        tkv_buf_consume(&hold, at);
    }
    if (rc == TKV_BK_DONE && hold.len > 0)
        rc = tkv_bk_read(&r, hold.data, hold.len, &rec, &used); /* bytes after the trailer */
    tkv_buf_deinit(&hold);
    finish(&r, rc, o);
}

/* A backup read to its end: its records, written again by the writer,
 * make a backup that reads back to the same records and digest. */
static void rewrite(const outcome *o)
{
    tkv_bk_reader r;
    tkv_bk_reader_init_records(&r, UINT32_MAX - TKV_BK_VERSION_FIXED);
    tkv_buf b = {0};
    tkv_bk_writer w;
    uint8_t d[TKV_SHA256_LEN];
    FUZZ_CHECK(tkv_bk_write_begin(&w, &b, o->at) == 0, "out of memory");
    size_t at = 0;
    while (at < o->recs.len) {
        tkv_bk_rec rec;
        size_t used;
        tkv_bk_rc rc = tkv_bk_read(&r, o->recs.data + at, o->recs.len - at, &rec, &used);
        FUZZ_CHECK(rc == TKV_BK_REC, "a record the reader passed does not read back (%s)", r.err);
        at += used;
        FUZZ_CHECK(tkv_bk_write_rec(&w, &b, &rec) == 0, "out of memory");
    }
    FUZZ_CHECK(tkv_bk_write_end(&w, &b, d) == 0, "out of memory");
    outcome again;
    read_whole(b.data, b.len, false, UINT32_MAX - TKV_BK_VERSION_FIXED, &again);
    FUZZ_CHECK(again.end == TKV_BK_DONE, "the rewritten backup ends %d", again.end);
    FUZZ_CHECK(same(&again.recs, &o->recs), "the rewritten backup reads back other records");
    FUZZ_CHECK(memcmp(again.digest, d, sizeof d) == 0, "the writer's digest is not the reader's");
    tkv_buf_deinit(&again.recs);
    tkv_buf_deinit(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    bool bare = cfg & 1;
    uint32_t max_value = max_values[(cfg >> 1) & 3];
    size_t step = (size_t)(cfg >> 3) + 1;
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, data + 1, n);

    outcome whole, chunked;
    read_whole(p, n, bare, max_value, &whole);
    read_chunked(p, n, bare, max_value, step, &chunked);
    FUZZ_CHECK(same(&whole.recs, &chunked.recs),
               "the feedings read different records (%zu and %zu bytes of them)", whole.recs.len,
               chunked.recs.len);
    FUZZ_CHECK(whole.end == chunked.end, "whole ended %d, chunked %d", whole.end, chunked.end);
    if (whole.end == TKV_BK_DONE) {
        FUZZ_CHECK(!bare, "bare records ended in a trailer");
        FUZZ_CHECK(n >= TKV_BK_HEADER_LEN + 85, "a backup of %zu bytes", n);
        tkv_sha256 s;
        uint8_t d[TKV_SHA256_LEN];
        tkv_sha256_init(&s);
        tkv_sha256_update(&s, p + TKV_BK_HEADER_LEN, n - TKV_BK_HEADER_LEN - 85);
        tkv_sha256_final(&s, d);
        FUZZ_CHECK(memcmp(d, whole.digest, sizeof d) == 0, "the digest is not the records' hash");
        FUZZ_CHECK(memcmp(whole.digest, chunked.digest, sizeof d) == 0, "the digests differ");
        rewrite(&whole);
    }
    tkv_buf_deinit(&whole.recs);
    tkv_buf_deinit(&chunked.recs);
    free(p);
    return 0;
}
