/*
 * fuzz_keycodec.c - libFuzzer target for the LevelDB key encoding
 * (server/keycodec.h).
 *
 * The input is a list of records, each one (key, ts):
 *
 *     [mode][key bytes][ts bytes]
 *
 * mode bits 0-4: key length (0-31); bit 5: reuse the previous record's key
 * (no key bytes follow) so equal keys with different timestamps are common;
 * bits 6-7: how ts is given - 0: 8 raw bytes, 1: one byte (small ts),
 * 2: UINT64_MAX minus one byte, 3: the previous record's ts.
 *
 * For every record: encode/prefix/with_ts agree, the encoding fits
 * tkv_kc_max(), decode and decode_any invert encode and tkv_kc_meta(),
 * and tkv_kc_match() accepts the encoding under its own key's prefix only.
 * For every pair: the bytewise order of the records (memcmp, then length)
 * is key ascending (memcmp, then length), then the key's metadata record,
 * then its versions newest first; and the bound SCAN seeks past a key
 * with (its prefix ending 0x00 0x02) lies above every record of the key
 * and below every record of any greater key (checked on the records
 * sorted by the model, neighbour against neighbour: by transitivity the
 * same verdict as every pair, see check_order()); tkv_kc_match() accepts
 * one record's encoding under another's prefix exactly when the keys are
 * equal. Finally the raw input itself
 * is decoded with both decoders: whatever they accept must be the
 * canonical encoding of what they return (and they never read past it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "keycodec.h"

#define MAX_RECS 64
#define MAX_KEY 31

typedef struct rec {
    uint8_t key[MAX_KEY];
    size_t klen;
    uint64_t ts;
    uint8_t *enc; /* exactly elen bytes */
    size_t elen;
    uint8_t *pfx; /* exactly plen bytes */
    size_t plen;
    uint8_t *meta;  /* the metadata record, plen bytes */
    uint8_t *bound; /* past every record of the key, plen bytes */
    size_t group;   /* equal for equal keys (set by check_order()) */
} rec;

static int sign(int c) { return (c > 0) - (c < 0); }

/* memcmp, then the shorter first: the order LevelDB's bytewise comparator
 * gives, and the order the engine assumes for keys. */
static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return sign(c);
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int model_cmp(const rec *x, const rec *y)
{
    int c = bytes_cmp(x->key, x->klen, y->key, y->klen);
    if (c)
        return c;
    return x->ts > y->ts ? -1 : x->ts < y->ts ? 1 : 0; /* newest first */
}

static size_t zeros(const uint8_t *p, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++)
        z += p[i] == 0;
    return z;
}

static void read_rec(fz *f, rec *r, const rec *prev)
{
    uint8_t mode = fz_u8(f);
    if ((mode & 0x20) && prev) {
        memcpy(r->key, prev->key, prev->klen);
        r->klen = prev->klen;
    } else {
        const uint8_t *p;
        r->klen = fz_bytes(f, mode & 0x1f, &p);
        if (r->klen)
            memcpy(r->key, p, r->klen);
    }
    switch (mode >> 6) {
    case 0: r->ts = fz_u64(f); break;
    case 1: r->ts = fz_u8(f); break;
    case 2: r->ts = UINT64_MAX - fz_u8(f); break;
    default: r->ts = prev ? prev->ts : 0; break;
    }
}

static void check_one(rec *r)
{
    size_t max = tkv_kc_max(r->klen);
    /* Exactly max bytes: writing past what tkv_kc_max() promises is caught. */
    r->enc = malloc(max);
    r->pfx = malloc(max);
    if (!r->enc || !r->pfx)
        abort();
    r->elen = tkv_kc_encode(r->enc, r->key, r->klen, r->ts);
    size_t want = 1 + r->klen + zeros(r->key, r->klen) + 2 + 8;
    FUZZ_CHECK(r->elen == want, "encoding of a %zu-byte key is %zu bytes, expected %zu", r->klen,
               r->elen, want);
    FUZZ_CHECK(r->elen <= max, "encoding is %zu bytes, tkv_kc_max says %zu", r->elen, max);
    FUZZ_CHECK(r->enc[0] == TKV_KC_VERSION, "encoding starts with 0x%02x", r->enc[0]);

    r->plen = tkv_kc_prefix(r->pfx, r->key, r->klen);
    FUZZ_CHECK(r->plen + 8 == r->elen, "prefix %zu bytes, encoding %zu", r->plen, r->elen);
    FUZZ_CHECK(memcmp(r->pfx, r->enc, r->plen) == 0, "prefix is not a prefix of the encoding");
    FUZZ_CHECK(tkv_kc_with_ts(r->pfx, r->plen, r->ts) == r->elen, "with_ts length");
    FUZZ_CHECK(memcmp(r->pfx, r->enc, r->elen) == 0, "prefix + with_ts differs from encode");
    r->pfx = realloc(r->pfx, r->plen); /* shrink to exact size for the match checks */
    if (!r->pfx)
        abort();
    r->meta = malloc(max);
    FUZZ_CHECK(tkv_kc_meta(r->meta, r->key, r->klen) == r->plen, "meta length differs");
    FUZZ_CHECK(memcmp(r->meta, r->pfx, r->plen - 1) == 0 && r->meta[r->plen - 1] == 0x00,
               "meta record is not the prefix ending 0x00 0x00");
    r->meta = realloc(r->meta, r->plen);
    r->bound = fz_dup(r->pfx, r->plen);
    r->bound[r->plen - 1] = 0x02;

    /* Decode from an exactly sized copy into an exactly sized key buffer
     * (the header promises room for n bytes suffices). */
    uint8_t *enc = fz_dup(r->enc, r->elen);
    uint8_t *key = malloc(r->elen);
    uint64_t ts = ~r->ts;
    long k = tkv_kc_decode(enc, r->elen, key, &ts);
    FUZZ_CHECK(k == (long)r->klen, "decode returned %ld for a %zu-byte key", k, r->klen);
    FUZZ_CHECK(k <= 0 || memcmp(key, r->key, r->klen) == 0, "decoded key differs");
    FUZZ_CHECK(ts == r->ts, "decoded ts %llu, encoded %llu", (unsigned long long)ts,
               (unsigned long long)r->ts);

    bool is_meta = true;
    k = tkv_kc_decode_any(enc, r->elen, key, &is_meta);
    FUZZ_CHECK(k == (long)r->klen && !is_meta && (k <= 0 || !memcmp(key, r->key, r->klen)),
               "decode_any of a version returned %ld (meta %d)", k, is_meta);
    is_meta = false;
    k = tkv_kc_decode_any(r->meta, r->plen, key, &is_meta);
    FUZZ_CHECK(k == (long)r->klen && is_meta && (k <= 0 || !memcmp(key, r->key, r->klen)),
               "decode_any of a metadata record returned %ld (meta %d)", k, is_meta);
    FUZZ_CHECK(tkv_kc_decode_any(r->bound, r->plen, key, &is_meta) < 0,
               "decode_any accepts the scan bound");
    FUZZ_CHECK(bytes_cmp(r->meta, r->plen, r->enc, r->elen) < 0 &&
                   bytes_cmp(r->enc, r->elen, r->bound, r->plen) < 0 &&
                   bytes_cmp(r->meta, r->plen, r->bound, r->plen) < 0,
               "metadata < versions < bound does not hold within a key");

    ts = ~r->ts;
    FUZZ_CHECK(tkv_kc_match(enc, r->elen, r->pfx, r->plen, &ts) && ts == r->ts,
               "match rejects the encoding under its own prefix");
    FUZZ_CHECK(!tkv_kc_match(enc, r->elen - 1, r->pfx, r->plen, &ts),
               "match accepts a truncated encoding");
    FUZZ_CHECK(tkv_kc_decode(enc, r->elen - 1, key, &ts) < 0,
               "decode accepts a truncated encoding");
    free(key);
    free(enc);
}

/* One of a record's three encodings, placed where the model puts it: keys
 * ascending, and within a key its metadata record, then its versions
 * newest first, then SCAN's bound. */
typedef struct item {
    rec *r;
    int kind; /* 0 metadata, 1 version, 2 bound */
} item;

static const char *const kinds[3] = {"metadata record", "version", "scan bound"};

static int item_model_cmp(const item *x, const item *y)
{
    int c = bytes_cmp(x->r->key, x->r->klen, y->r->key, y->r->klen);
    if (c)
        return c;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return x->kind == 1 ? model_cmp(x->r, y->r) : 0;
}

static int item_bytes_cmp(const item *x, const item *y)
{
    const uint8_t *a = x->kind == 0 ? x->r->meta : x->kind == 1 ? x->r->enc : x->r->bound;
    const uint8_t *b = y->kind == 0 ? y->r->meta : y->kind == 1 ? y->r->enc : y->r->bound;
    size_t an = x->kind == 1 ? x->r->elen : x->r->plen;
    size_t bn = y->kind == 1 ? y->r->elen : y->r->plen;
    return bytes_cmp(a, an, b, bn);
}

static int item_qsort_cmp(const void *a, const void *b) { return item_model_cmp(a, b); }

/* The bytewise order of all the records' encodings (metadata, versions,
 * scan bounds) is the model's: sorted by the model, each item compares to
 * the next as the model says (equal or below). Both orders are transitive
 * (bytes_cmp is a total order, the model a total preorder), so this holds
 * for every pair exactly when it holds for neighbours: O(n log n) rather
 * than comparing all pairs, and the same verdict. */
static void check_order(rec *recs, size_t n)
{
    static item items[3 * MAX_RECS];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            items[m++] = (item){&recs[i], k};
    qsort(items, m, sizeof *items, item_qsort_cmp);
    /* Records with equal keys are neighbours now: number the keys. */
    size_t group = 0;
    for (size_t i = 0; i < m; i++) {
        if (i > 0 && bytes_cmp(items[i - 1].r->key, items[i - 1].r->klen, items[i].r->key,
                               items[i].r->klen) != 0)
            group++;
        items[i].r->group = group;
    }
    for (size_t i = 0; i + 1 < m; i++) {
        const item *x = &items[i], *y = &items[i + 1];
        int want = item_model_cmp(x, y), got = item_bytes_cmp(x, y);
        FUZZ_CHECK(got == want,
                   "a %s (key of %zu bytes, ts %llu) compares %d to a %s (key of %zu bytes, ts "
                   "%llu), the model says %d (keys ascending; metadata, versions newest first, "
                   "scan bound)",
                   kinds[x->kind], x->r->klen, (unsigned long long)x->r->ts, got, kinds[y->kind],
                   y->r->klen, (unsigned long long)y->r->ts, want);
    }
}

/* tkv_kc_match() accepts one record's encoding under another's prefix
 * exactly when their keys are equal; checked for every ordered pair. */
static void check_match(const rec *a, const rec *b)
{
    bool same_key = a->group == b->group;
    uint64_t ts;
    bool m = tkv_kc_match(a->enc, a->elen, b->pfx, b->plen, &ts);
    FUZZ_CHECK(m == same_key, "match of one key's encoding under another's prefix: %d", m);
    FUZZ_CHECK(!m || ts == a->ts, "match returned the wrong ts");
}

/* Whatever bytes decode accepts must be the canonical encoding of what it
 * returned. */
static void check_raw(const uint8_t *data, size_t size)
{
    uint8_t *in = fz_dup(data, size);
    uint8_t *key = malloc(size);
    uint64_t ts = 0;
    long k = tkv_kc_decode(in, size, key, &ts);
    if (k >= 0) {
        FUZZ_CHECK((size_t)k <= size, "decode returned %ld for %zu bytes", k, size);
        uint8_t *enc = malloc(tkv_kc_max((size_t)k));
        size_t n = tkv_kc_encode(enc, key, (size_t)k, ts);
        FUZZ_CHECK(n == size && memcmp(enc, in, n) == 0,
                   "decode accepted %zu bytes that are not the encoding of what it returned", size);
        free(enc);
    }
    bool is_meta;
    k = tkv_kc_decode_any(in, size, key, &is_meta);
    if (k >= 0) {
        uint8_t *enc = malloc(tkv_kc_max((size_t)k));
        size_t plen = tkv_kc_prefix(enc, key, (size_t)k);
        if (is_meta)
            FUZZ_CHECK(tkv_kc_meta(enc, key, (size_t)k) == size && !memcmp(enc, in, size),
                       "decode_any accepted %zu bytes that are not a metadata record", size);
        else
            FUZZ_CHECK(size == plen + 8 && !memcmp(enc, in, plen),
                       "decode_any accepted %zu bytes that are not a version", size);
        free(enc);
    }
    free(key);
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rec recs[MAX_RECS];
    fz f = {data, size};
    size_t n = 0;
    while (!fz_empty(&f) && n < MAX_RECS) {
        memset(&recs[n], 0, sizeof recs[n]);
        read_rec(&f, &recs[n], n ? &recs[n - 1] : NULL);
        check_one(&recs[n]);
        n++;
    }
    check_order(recs, n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (i != j)
                check_match(&recs[i], &recs[j]);
    for (size_t i = 0; i < n; i++) {
        free(recs[i].enc);
        free(recs[i].pfx);
        free(recs[i].meta);
        free(recs[i].bound);
    }
    check_raw(data, size);
    return 0;
}
