/*
 * backup.h - tkv's backup format: writing and reading it, without I/O.
 *
 * A backup is the whole visible state of a server as of one moment, in a
 * documented byte format (PROTOCOL.md, "The backup format"):
 *
 *     header   "TKVBACKP" | version u32 | flags u32 | at u64      24 bytes
 *     records  'K' key records, each followed by its 'V' versions
 *     trailer  'E' | 80 | keys u64 | versions u64 | digest[32] | checksum[32]
 *
 * Every record is type u8 | body length u32 | body, integers big-endian.
 * The digest is SHA-256 over the records alone - exactly what DIGEST
 * answers for the same state at the same `at` - and the checksum is
 * SHA-256 over every byte before it. So one pass writes both; a reader
 * learns of corruption or truncation only at the trailer, which is why
 * whoever restores verifies a whole backup before applying any of it.
 *
 * Both halves are I/O-free: the writer appends to a tkv_buf (or only
 * hashes, for DIGEST), the reader is fed bytes and hands back records that
 * point into them (hiredis's reader). tkvd, tkvctl and the tests share them.
 */
#ifndef TKV_BACKUP_H
#define TKV_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "sha256.h"

#define TKV_BK_MAGIC "TKVBACKP"
#define TKV_BK_VERSION 1u
#define TKV_BK_HEADER_LEN 24u
#define TKV_BK_KEY_FIXED 21u     /* a key record's body before the key */
#define TKV_BK_VERSION_FIXED 17u /* a version record's body before the value */
#define TKV_BK_TRAILER_BODY 80u
#define TKV_BK_KEY_MAX 65535u

enum {
    TKV_BK_KEY = 'K',
    TKV_BK_VER = 'V',
    TKV_BK_END = 'E',
};

/* A key record's flags. */
#define TKV_BK_OWN_POLICY 0x01u

/* One record, as written or as read. Pointers borrowed: as read, they
 * point into the bytes given to tkv_bk_read(). */
typedef struct tkv_bk_rec {
    uint8_t type; /* TKV_BK_KEY or TKV_BK_VER */
    /* TKV_BK_KEY */
    const uint8_t *key;
    uint32_t klen;
    bool own_policy;          /* the key has a policy of its own ... */
    uint32_t policy_versions; /* ... keeping this many versions (0: any) */
    uint64_t policy_age;      /* ... and none older (µs; 0: any age) */
    uint64_t horizon;         /* 0: none */
    /* TKV_BK_VER */
    uint64_t ts;
    bool tombstone;
    uint64_t expires; /* 0: never */
    const uint8_t *value;
    uint32_t vlen;
} tkv_bk_rec;

/* ---- writing -------------------------------------------------------------- */

typedef struct tkv_bk_writer {
    tkv_sha256 sum;    /* every byte written so far */
    tkv_sha256 digest; /* the records */
    uint64_t keys, versions;
    uint64_t bytes; /* written so far, trailer included */
} tkv_bk_writer;

/* Starts a backup taken as of `at`: the header goes to out. With out NULL
 * nothing is written and only the digest is kept (DIGEST). Returns 0, or
 * -1 if out of memory (out as it was). */
int tkv_bk_write_begin(tkv_bk_writer *w, tkv_buf *out, uint64_t at);

/* Appends one record (a key before its versions). Returns 0 or -1. */
int tkv_bk_write_rec(tkv_bk_writer *w, tkv_buf *out, const tkv_bk_rec *r);

/* Appends the trailer; digest gets the records' SHA-256. Returns 0 or -1.
 * The writer is spent afterwards. */
int tkv_bk_write_end(tkv_bk_writer *w, tkv_buf *out, uint8_t digest[TKV_SHA256_LEN]);

/* ---- reading -------------------------------------------------------------- */

typedef enum tkv_bk_rc {
    TKV_BK_ERR = -1, /* the bytes are not a valid backup: r->err says why */
    TKV_BK_MORE = 0, /* need more bytes (nothing consumed) */
    TKV_BK_REC = 1,  /* *rec holds a record */
    TKV_BK_DONE = 2, /* the trailer is read and every check passed */
} tkv_bk_rc;

typedef struct tkv_bk_reader {
    uint32_t max_value; /* longest value accepted */
    bool have_header, in_key, done;
    bool records_only; /* tkv_bk_reader_init_records() */
    uint64_t at;       /* from the header */
    uint32_t version;  /* from the header */
    tkv_sha256 sum, digest;
    uint64_t keys, versions; /* records read so far */
    uint64_t horizon;        /* the current key's */
    uint64_t last_ts;        /* its last version's, if have_ts */
    bool have_ts;
    uint64_t offset; /* bytes consumed so far */
    uint8_t digest_out[TKV_SHA256_LEN];
    char err[160];
} tkv_bk_reader;

/* Starts reading a backup; values above max_value are refused (a reader
 * never allocates from a declared length it did not check), and so are a
 * key's versions out of order (newest first, each timestamp once) or
 * below its horizon, and tombstones with an expiry time: PROTOCOL.md says
 * a backup holds none, and a restore would refuse them half-way. */
void tkv_bk_reader_init(tkv_bk_reader *r, uint32_t max_value);

/* Starts reading bare records (RESTORE's payload): no header, and a
 * trailer is refused; no hash covers them - the file they came from was
 * checked by whoever read it whole. */
void tkv_bk_reader_init_records(tkv_bk_reader *r, uint32_t max_value);

/* Reads the next item from the n bytes at p, which start where the last
 * call's *used ended. TKV_BK_REC: *rec is the next record (pointing into
 * p) and *used the bytes it took; the header is consumed silently before
 * the first record (r->at is then set). TKV_BK_DONE: the trailer checked
 * out (counts, digest, checksum: r->digest_out holds the digest) and *used
 * covers it; bytes after it are an error on the next call. TKV_BK_MORE:
 * give more bytes (a record may be as long as max_value + 22, or 65561 for
 * a key). TKV_BK_ERR:
 * r->err says what and r->offset where; every later call fails too. In
 * every case the caller drops the first *used bytes before the next call
 * (the header alone may be consumed with TKV_BK_MORE). */
tkv_bk_rc tkv_bk_read(tkv_bk_reader *r, const uint8_t *p, size_t n, tkv_bk_rec *rec, size_t *used);

/* The digest as 64 lowercase hex digits and a NUL. */
void tkv_bk_hex(const uint8_t d[TKV_SHA256_LEN], char out[2 * TKV_SHA256_LEN + 1]);

#endif
