/*
 * fuzz_repl.c - libFuzzer target for the replication stream's frames
 * (protocol/repl.h), as a replica reads them from its primary.
 *
 * The input is a frame payload. Invariants:
 *  - decoding never reads outside the payload (it is copied to an exactly
 *    sized heap block, so ASan sees any over-read);
 *  - an "S" or "B" frame's records come out one by one until the end or a
 *    refusal, every key and value inside the payload, never more records
 *    than the frame declared;
 *  - a frame whose records all decode re-encodes (tkv_repl_begin/add/end)
 *    to a frame that decodes to the same tag, offset and records, and
 *    re-encoding that gives the same bytes (the encoding is canonical).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "repl.h"

#define MAX_RECS 4096

typedef struct rec {
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    bool put;
    bool drop;
} rec;

static void inside(const uint8_t *s, uint32_t n, const uint8_t *p, size_t len, const char *what)
{
    FUZZ_CHECK(s >= p && n <= len && (size_t)(s - p) <= len - n, "%s outside the payload", what);
}

/* Reads every record; returns how many, or -1 if one was refused. */
static long read_recs(tkv_repl_frame *f, const uint8_t *p, size_t n, rec *out)
{
    uint64_t declared = f->count;
    long got = 0;
    tkv_repl_rec r;
    int rc;
    while ((rc = tkv_repl_next_rec(f, &r)) == 1) {
        FUZZ_CHECK((uint64_t)got < declared, "more records than the frame declared");
        inside(r.key, r.klen, p, n, "a key");
        if (r.has_value)
            inside(r.value, r.vlen, p, n, "a value");
        if (got < MAX_RECS)
            out[got] = (rec){r.key, r.value, r.klen, r.vlen, r.has_value, r.drop};
        got++;
    }
    return rc < 0 ? -1 : got;
}

static void encode(tkv_buf *b, const tkv_repl_frame *f, const rec *recs, long n)
{
    tkv_repl_wr w;
    tkv_repl_begin(&w, b, f->tag, f->offset);
    for (long i = 0; i < n; i++) {
        if (recs[i].drop)
            tkv_repl_add_drop(&w, recs[i].k, recs[i].klen);
        else
            tkv_repl_add(&w, recs[i].k, recs[i].klen, recs[i].put ? recs[i].v : NULL, recs[i].vlen);
    }
    FUZZ_CHECK(tkv_repl_end(&w) == 0, "re-encoding failed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    tkv_repl_frame f;
    static rec recs[MAX_RECS], again[MAX_RECS];
    if (tkv_repl_decode(p, size, &f) == 0 && (f.tag == TKV_RF_SNAP || f.tag == TKV_RF_BATCH)) {
        tkv_repl_frame keep = f;
        long n = read_recs(&f, p, size, recs);
        if (n >= 0 && n <= MAX_RECS) {
            tkv_buf b1, b2;
            tkv_buf_init(&b1);
            tkv_buf_init(&b2);
            encode(&b1, &keep, recs, n);
            tkv_repl_frame g;
            FUZZ_CHECK(tkv_repl_decode(b1.data + 4, b1.len - 4, &g) == 0,
                       "re-encoding undecodable");
            FUZZ_CHECK(g.tag == keep.tag && g.offset == keep.offset && (long)g.count == n,
                       "re-encoding changed the frame");
            long m = read_recs(&g, b1.data + 4, b1.len - 4, again);
            FUZZ_CHECK(m == n, "re-encoding changed the record count");
            for (long i = 0; i < n; i++)
                FUZZ_CHECK(again[i].put == recs[i].put && again[i].drop == recs[i].drop &&
                               again[i].klen == recs[i].klen &&
                               memcmp(again[i].k, recs[i].k, recs[i].klen) == 0 &&
                               (!recs[i].put || (again[i].vlen == recs[i].vlen &&
                                                 memcmp(again[i].v, recs[i].v, recs[i].vlen) == 0)),
                           "record %ld changed", i);
            encode(&b2, &g, again, m);
            FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0,
                       "the encoding is not canonical");
            tkv_buf_deinit(&b1);
            tkv_buf_deinit(&b2);
        }
    }
    free(p);
    return 0;
}
