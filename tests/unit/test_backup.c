/*
 * test_backup.c - the backup format (protocol/backup.h): a written backup
 * reads back record for record, fed whole and one byte at a time; its
 * digest is SHA-256 of the records and equals a hash-only writer's; every
 * flipped byte and every truncation is refused, never read as DONE.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"

static void write_sample(tkv_buf *out, uint8_t digest[TKV_SHA256_LEN], bool hash_only)
{
    tkv_bk_writer w;
    tkv_buf *o = hash_only ? NULL : out;
    cr_assert_eq(tkv_bk_write_begin(&w, o, 12345), 0);
    tkv_bk_rec k = {.type = TKV_BK_KEY, .key = (const uint8_t *)"a\0b", .klen = 3};
    cr_assert_eq(tkv_bk_write_rec(&w, o, &k), 0);
    tkv_bk_rec v1 = {.type = TKV_BK_VER, .ts = 200, .value = (const uint8_t *)"xy", .vlen = 2};
    tkv_bk_rec v2 = {.type = TKV_BK_VER, .ts = 100, .tombstone = true};
    cr_assert_eq(tkv_bk_write_rec(&w, o, &v1), 0);
    cr_assert_eq(tkv_bk_write_rec(&w, o, &v2), 0);
    tkv_bk_rec k2 = {.type = TKV_BK_KEY,
                     .key = (const uint8_t *)"z",
                     .klen = 1,
                     .own_policy = true,
                     .policy_versions = 3,
                     .policy_age = 7,
                     .horizon = 50};
    cr_assert_eq(tkv_bk_write_rec(&w, o, &k2), 0);
    tkv_bk_rec v3 = {.type = TKV_BK_VER, .ts = 60, .expires = 999, .value = NULL, .vlen = 0};
    cr_assert_eq(tkv_bk_write_rec(&w, o, &v3), 0);
    cr_assert_eq(tkv_bk_write_end(&w, o, digest), 0);
}

/* Reads p[0..n) fed `step` bytes at a time (0: all at once); returns the
 * final code and the records seen. */
static tkv_bk_rc read_all(const uint8_t *p, size_t n, size_t step, int *recs, tkv_bk_reader *r)
{
    tkv_bk_reader_init(r, 1 << 20);
    size_t at = 0, have = step ? 0 : n;
    *recs = 0;
    for (;;) {
        tkv_bk_rec rec;
        size_t used;
        tkv_bk_rc rc = tkv_bk_read(r, p + at, have - at, &rec, &used);
        at += used;
        if (rc == TKV_BK_ERR)
            return rc;
        if (rc == TKV_BK_REC) {
            (*recs)++;
            continue;
        }
        if (rc == TKV_BK_DONE) {
            /* Anything after the trailer is refused. */
            if (have < n)
                have = n;
            return at == n ? TKV_BK_DONE : tkv_bk_read(r, p + at, n - at, &rec, &used);
        }
        if (have == n)
            return TKV_BK_MORE;
        have = have + step > n ? n : have + step;
    }
}

Test(backup, round_trip_whole_and_bytewise)
{
    tkv_buf b = {0};
    uint8_t d1[TKV_SHA256_LEN], d2[TKV_SHA256_LEN];
    write_sample(&b, d1, false);
    write_sample(NULL, d2, true);
    cr_assert(memcmp(d1, d2, sizeof d1) == 0, "a hash-only writer gives the same digest");
    /* The digest is SHA-256 of the records: header and trailer excluded. */
    tkv_sha256 s;
    uint8_t d3[TKV_SHA256_LEN];
    tkv_sha256_init(&s);
    tkv_sha256_update(&s, b.data + TKV_BK_HEADER_LEN, b.len - TKV_BK_HEADER_LEN - 85);
    tkv_sha256_final(&s, d3);
    cr_assert(memcmp(d1, d3, sizeof d1) == 0);
    for (size_t step = 0; step <= 7; step += 1) {
        tkv_bk_reader r;
        int recs;
        cr_assert_eq(read_all(b.data, b.len, step, &recs, &r), TKV_BK_DONE, "step %zu: %s", step,
                     r.err);
        cr_assert_eq(recs, 5);
        cr_assert_eq(r.at, 12345);
        cr_assert(memcmp(r.digest_out, d1, sizeof d1) == 0);
    }
    tkv_buf_deinit(&b);
}

Test(backup, fields_read_back)
{
    tkv_buf b = {0};
    uint8_t d[TKV_SHA256_LEN];
    write_sample(&b, d, false);
    tkv_bk_reader r;
    tkv_bk_reader_init(&r, 100);
    tkv_bk_rec rec;
    size_t used, at = 0;
    cr_assert_eq(tkv_bk_read(&r, b.data, b.len, &rec, &used), TKV_BK_REC);
    at += used;
    cr_assert_eq(rec.type, TKV_BK_KEY);
    cr_assert_eq(rec.klen, 3);
    cr_assert(memcmp(rec.key, "a\0b", 3) == 0);
    cr_assert_eq(tkv_bk_read(&r, b.data + at, b.len - at, &rec, &used), TKV_BK_REC);
    at += used;
    cr_assert_eq(rec.ts, 200);
    cr_assert_eq(rec.vlen, 2);
    cr_assert(!rec.tombstone);
    cr_assert_eq(tkv_bk_read(&r, b.data + at, b.len - at, &rec, &used), TKV_BK_REC);
    at += used;
    cr_assert(rec.tombstone);
    cr_assert_eq(tkv_bk_read(&r, b.data + at, b.len - at, &rec, &used), TKV_BK_REC);
    at += used;
    cr_assert(rec.own_policy);
    cr_assert_eq(rec.policy_versions, 3);
    cr_assert_eq(rec.policy_age, 7);
    cr_assert_eq(rec.horizon, 50);
    cr_assert_eq(tkv_bk_read(&r, b.data + at, b.len - at, &rec, &used), TKV_BK_REC);
    at += used;
    cr_assert_eq(rec.expires, 999);
    cr_assert_eq(tkv_bk_read(&r, b.data + at, b.len - at, &rec, &used), TKV_BK_DONE);
    tkv_buf_deinit(&b);
}

Test(backup, every_flipped_byte_and_truncation_is_refused)
{
    tkv_buf b = {0};
    uint8_t d[TKV_SHA256_LEN];
    write_sample(&b, d, false);
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            b.data[i] ^= (uint8_t)(1u << bit);
            tkv_bk_reader r;
            int recs;
            tkv_bk_rc rc = read_all(b.data, b.len, 0, &recs, &r);
            /* The checksum covers every byte before it, the header too. */
            cr_assert(rc != TKV_BK_DONE, "byte %zu bit %d accepted", i, bit);
            b.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    for (size_t n = 0; n < b.len; n++) {
        tkv_bk_reader r;
        int recs;
        cr_assert(read_all(b.data, n, 0, &recs, &r) != TKV_BK_DONE, "truncated to %zu", n);
    }
    /* A byte after the trailer. */
    tkv_buf_append(&b, "", 1);
    tkv_bk_reader r;
    int recs;
    cr_assert_eq(read_all(b.data, b.len, 0, &recs, &r), TKV_BK_ERR);
    cr_assert(strstr(r.err, "after the trailer"));
    tkv_buf_deinit(&b);
}

Test(backup, lengths_are_checked_before_waiting)
{
    uint8_t h[TKV_BK_HEADER_LEN + 5] = "TKVBACKP\0\0\0\1";
    h[TKV_BK_HEADER_LEN] = 'V';
    tkv_bk_reader r;
    tkv_bk_reader_init(&r, 10);
    tkv_bk_rec rec;
    size_t used;
    /* A version before any key. */
    cr_assert_eq(tkv_bk_read(&r, h, sizeof h, &rec, &used), TKV_BK_ERR);
    /* A key whose declared length is absurd is refused without waiting. */
    tkv_bk_reader_init(&r, 10);
    h[TKV_BK_HEADER_LEN] = 'K';
    memset(h + TKV_BK_HEADER_LEN + 1, 0xff, 4);
    cr_assert_eq(tkv_bk_read(&r, h, sizeof h, &rec, &used), TKV_BK_ERR);
    tkv_bk_reader_init(&r, 10);
    cr_assert_eq(tkv_bk_read(&r, (const uint8_t *)"TKVBAD", 6, &rec, &used), TKV_BK_ERR);
    cr_assert(strstr(r.err, "magic"));
}

/* PROTOCOL.md's example, byte for byte: a stranger's writer must agree. */
Test(backup, the_documented_example)
{
    tkv_buf b = {0};
    tkv_bk_writer w;
    uint8_t d[TKV_SHA256_LEN];
    tkv_bk_write_begin(&w, &b, 1000);
    tkv_bk_rec k = {.type = TKV_BK_KEY, .key = (const uint8_t *)"k", .klen = 1};
    tkv_bk_rec v = {.type = TKV_BK_VER, .ts = 5, .value = (const uint8_t *)"v", .vlen = 1};
    tkv_bk_write_rec(&w, &b, &k);
    tkv_bk_write_rec(&w, &b, &v);
    tkv_bk_write_end(&w, &b, d);
    cr_assert_eq(b.len, 159);
    static const uint8_t head[] = {
        0x54, 0x4b, 0x56, 0x42, 0x41, 0x43, 0x4b, 0x50, 0,    0,    0,    1, 0,    0, 0,    0,
        0,    0,    0,    0,    0,    0,    0x03, 0xe8, 0x4b, 0,    0,    0, 0x16, 0, 0,    0,
        0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0, 0,    0, 0,    0,
        0,    0,    0x6b, 0x56, 0,    0,    0,    0x12, 0,    0,    0,    0, 0,    0, 0,    5,
        0,    0,    0,    0,    0,    0,    0,    0,    0,    0x76, 0x45, 0, 0,    0, 0x50, 0,
        0,    0,    0,    0,    0,    0,    1,    0,    0,    0,    0,    0, 0,    0, 1};
    cr_assert(memcmp(b.data, head, sizeof head) == 0);
    char hex[65];
    tkv_bk_hex(d, hex);
    cr_assert_str_eq(hex, "a6bf1a01df224e7c333e28f75cac872501d44fcd910bccff03d22bae85a66b15");
    cr_assert(memcmp(b.data + sizeof head, d, sizeof d) == 0);
    tkv_buf_deinit(&b);
}

/* Bare records for a records-only reader. */
static void bare_key(tkv_buf *b, const char *key, uint64_t horizon)
{
    tkv_bk_writer w = {0};
    tkv_bk_rec k = {.type = TKV_BK_KEY,
                    .key = (const uint8_t *)key,
                    .klen = (uint32_t)strlen(key),
                    .horizon = horizon};
    cr_assert_eq(tkv_bk_write_rec(&w, b, &k), 0);
}

static void bare_version(tkv_buf *b, uint64_t ts)
{
    tkv_bk_writer w = {0};
    tkv_bk_rec v = {.type = TKV_BK_VER, .ts = ts, .value = (const uint8_t *)"x", .vlen = 1};
    cr_assert_eq(tkv_bk_write_rec(&w, b, &v), 0);
}

/* Reads bare records to the end: TKV_BK_REC if all were read, else the
 * failing code. */
static tkv_bk_rc read_bare(const tkv_buf *b, tkv_bk_reader *r)
{
    tkv_bk_reader_init_records(r, 100);
    size_t at = 0, used;
    tkv_bk_rec rec;
    while (at < b->len) {
        tkv_bk_rc rc = tkv_bk_read(r, b->data + at, b->len - at, &rec, &used);
        if (rc != TKV_BK_REC)
            return rc;
        at += used;
    }
    return TKV_BK_REC;
}

/* PROTOCOL.md: a key's versions newest first, none below its horizon. A
 * reader that let others through would have a restore fail half-way
 * (a write below a horizon is refused) after checking the file. */
Test(backup, versions_in_order_and_at_or_after_the_horizon)
{
    tkv_buf b = {0};
    tkv_bk_reader r;
    bare_key(&b, "a", 50);
    bare_version(&b, 60);
    bare_version(&b, 50);
    bare_key(&b, "b", 0);
    bare_version(&b, 70); /* a new key: its versions start afresh */
    cr_assert_eq(read_bare(&b, &r), TKV_BK_REC, "%s", r.err);

    tkv_buf_reset(&b);
    bare_key(&b, "a", 50);
    bare_version(&b, 49);
    cr_assert_eq(read_bare(&b, &r), TKV_BK_ERR);
    cr_assert(strstr(r.err, "horizon"), "%s", r.err);

    tkv_buf_reset(&b);
    bare_key(&b, "a", 0);
    bare_version(&b, 5);
    bare_version(&b, 6);
    cr_assert_eq(read_bare(&b, &r), TKV_BK_ERR);
    cr_assert(strstr(r.err, "newest first"), "%s", r.err);

    tkv_buf_reset(&b);
    bare_key(&b, "a", 0);
    bare_version(&b, 5);
    bare_version(&b, 5);
    cr_assert_eq(read_bare(&b, &r), TKV_BK_ERR);

    /* A tombstone that expires: tkv writes none, a restore cannot. */
    tkv_buf_reset(&b);
    bare_key(&b, "a", 0);
    tkv_bk_writer w = {0};
    tkv_bk_rec t = {.type = TKV_BK_VER, .ts = 5, .tombstone = true, .expires = 9};
    cr_assert_eq(tkv_bk_write_rec(&w, &b, &t), 0);
    cr_assert_eq(read_bare(&b, &r), TKV_BK_ERR);
    cr_assert(strstr(r.err, "tombstone"), "%s", r.err);
    tkv_buf_deinit(&b);
}

/* PROTOCOL.md: the checksum is SHA-256 of every byte before it - the
 * trailer record's type and length included. */
Test(backup, checksum_covers_every_byte_before_it)
{
    tkv_buf b = {0};
    uint8_t d[TKV_SHA256_LEN], sum[TKV_SHA256_LEN];
    write_sample(&b, d, false);
    tkv_sha256 s;
    tkv_sha256_init(&s);
    tkv_sha256_update(&s, b.data, b.len - TKV_SHA256_LEN);
    tkv_sha256_final(&s, sum);
    cr_assert(memcmp(sum, b.data + b.len - TKV_SHA256_LEN, sizeof sum) == 0);
    tkv_buf_deinit(&b);
}

/* An empty file: no bytes at all, perhaps no buffer either (a reader is
 * fed what a caller holds, and an empty tkv_buf holds NULL). */
Test(backup, nothing_yet_is_more)
{
    tkv_bk_reader r;
    tkv_bk_rec rec;
    size_t used;
    tkv_bk_reader_init(&r, 10);
    cr_assert_eq(tkv_bk_read(&r, NULL, 0, &rec, &used), TKV_BK_MORE);
    cr_assert_eq(used, 0);
    tkv_bk_reader_init_records(&r, 10);
    cr_assert_eq(tkv_bk_read(&r, NULL, 0, &rec, &used), TKV_BK_MORE);
}
