/*
 * fuzz_reply.c - libFuzzer target for the reply decoder (protocol/reply.h)
 * fed hostile replies: a client must survive a malicious server as the
 * server survives malicious clients.
 *
 * Input layout:
 *
 *     [cfg][stream]
 *
 * cfg bits 0-3 pick the command the first frame answers (the i-th frame
 * answers command cfg + i, modulo the command count), bits 4-5 the reader's
 * max_frame (8 MiB, 64, 1024 or 0). The stream is a byte stream of frames,
 * as a server would send it.
 *
 * The stream goes through two frame readers: one fed everything at once,
 * one fed one byte at a time and drained after every byte, as a client on
 * a slow link would. Invariants:
 *  - both readers return the same frames, in the same order, and agree on
 *    when the stream turns unusable (ETOOBIG);
 *  - every frame, copied to an exactly sized heap block (ASan sees any
 *    over-read), decodes without crashing as a reply to every command; a
 *    refusal names the field at fault;
 *  - after a successful decode every span lies inside the frame, every
 *    list yields exactly its count of elements through its iterator (they
 *    cannot fail once decode accepted the list), and the reply re-encodes;
 *    the re-encoding decodes again to a reply that re-encodes to the same
 *    bytes (re-encoding is canonical: a fixed point after one round).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_common.h"
#include "reply.h"

static const size_t max_frames[4] = {8u << 20, 64, 1024, 0};

static void check_span(tkv_span s, const uint8_t *p, size_t n, const char *what)
{
    if (!s.ptr)
        return;
    FUZZ_CHECK(s.ptr >= p && s.len <= n && (size_t)(s.ptr - p) <= n - s.len,
               "%s span (%u bytes at offset %td) outside the %zu-byte frame", what, s.len,
               s.ptr - p, n);
}

static void check_answer(const tkv_rep_answer *a, const uint8_t *p, size_t n)
{
    FUZZ_CHECK(a->status <= TKV_ST_NOT_FOUND, "an answer with status %llu",
               (unsigned long long)a->status);
    check_span(a->value, p, n, "value");
}

/* Walks every list of a decoded reply with its iterator. */
static void check_lists(const tkv_rep *rep, const uint8_t *p, size_t n)
{
    tkv_rep_list l = rep->list;
    uint32_t want = l.n, got = 0;
    switch (rep->cmd) {
    case TKV_CMD_RANGE: {
        tkv_rep_entry e;
        for (; tkv_rep_next_entry(&l, &e); got++)
            check_span(e.value, p, n, "RANGE value");
        break;
    }
    case TKV_CMD_MGET: {
        tkv_rep_answer a;
        for (; tkv_rep_next_answer(&l, &a); got++)
            check_answer(&a, p, n);
        break;
    }
    case TKV_CMD_SCAN: {
        tkv_span k;
        for (; tkv_rep_next_key(&l, &k); got++)
            check_span(k, p, n, "SCAN key");
        check_span(rep->cursor, p, n, "SCAN cursor");
        break;
    }
    case TKV_CMD_MPUT: {
        uint64_t ts;
        for (; tkv_rep_next_uint(&l, &ts); got++)
            ;
        break;
    }
    case TKV_CMD_STATS: {
        tkv_rep_stat s;
        for (; tkv_rep_next_stat(&l, &s); got++) {
            check_span(s.name, p, n, "STATS name");
            check_span(s.str, p, n, "STATS string");
        }
        break;
    }
    case TKV_CMD_SLOWLOG: {
        tkv_rep_slow e;
        for (; tkv_rep_next_slow(&l, &e); got++) {
            check_span(e.cmd, p, n, "SLOWLOG command");
            check_span(e.key, p, n, "SLOWLOG key");
            check_span(e.client, p, n, "SLOWLOG client");
        }
        break;
    }
    default: return;
    }
    FUZZ_CHECK(got == want, "%s list of %u elements iterated %u times", tkv_cmd_name(rep->cmd),
               want, got);
}

/* Re-encodes rep; the result must decode and re-encode to itself. */
static void check_reencode(const tkv_rep *rep)
{
    tkv_buf a = {0}, b = {0};
    FUZZ_CHECK(tkv_rep_encode(&a, rep) == 0, "re-encoding a %s reply failed",
               tkv_cmd_name(rep->cmd));
    FUZZ_CHECK(a.len >= 4 && fz_be32(a.data) == a.len - 4, "re-encoding is not one frame");
    uint8_t *q = fz_dup(a.data + 4, a.len - 4);
    tkv_rep again;
    FUZZ_CHECK(tkv_rep_decode(rep->cmd, q, a.len - 4, &again) == 0,
               "the re-encoded %s reply does not decode: %s", tkv_cmd_name(rep->cmd), again.what);
    FUZZ_CHECK(again.status == rep->status, "status %llu re-encoded as %llu",
               (unsigned long long)rep->status, (unsigned long long)again.status);
    FUZZ_CHECK(tkv_rep_encode(&b, &again) == 0 && b.len == a.len &&
                   memcmp(a.data, b.data, a.len) == 0,
               "%s reply re-encoding is not a fixed point (%zu then %zu bytes)",
               tkv_cmd_name(rep->cmd), a.len, b.len);
    free(q);
    tkv_buf_deinit(&a);
    tkv_buf_deinit(&b);
}

static void check_frame(const uint8_t *frame, size_t len, tkv_cmd first)
{
    uint8_t *p = fz_dup(frame, len);
    for (int k = 0; k < TKV_CMD__COUNT; k++) {
        tkv_cmd cmd = (tkv_cmd)((first + k) % TKV_CMD__COUNT);
        tkv_rep rep;
        if (tkv_rep_decode(cmd, p, len, &rep) < 0) {
            FUZZ_CHECK(rep.what != NULL, "a refusal without a reason");
            continue;
        }
        FUZZ_CHECK(rep.cmd == cmd, "decoded as the wrong command");
        check_span(rep.errmsg, p, len, "error message");
        if (rep.status > TKV_ST_NOT_FOUND)
            continue;
        FUZZ_CHECK(rep.status == TKV_ST_OK || cmd == TKV_CMD_GET, "NOT_FOUND accepted for %s",
                   tkv_cmd_name(cmd));
        check_span(rep.text.s, p, len, "PING text");
        if (cmd == TKV_CMD_GET)
            check_answer(&rep.answer, p, len);
        check_lists(&rep, p, len);
        /* Once per frame is enough for the costlier round trip. */
        if (k == 0)
            check_reencode(&rep);
    }
    free(p);
}

/* The frames of the whole-stream reader, kept to compare with the other. */
typedef struct whole {
    const uint8_t **f;
    size_t *len;
    size_t n;
    int end; /* how next() ended: AGAIN or ETOOBIG */
} whole;

static void read_whole(tkv_frame_reader *r, const uint8_t *s, size_t n, whole *w)
{
    FUZZ_CHECK(tkv_frame_reader_feed(r, s, n) == 0, "feed failed");
    size_t cap = n / TKV_FRAME_HEADER + 1;
    w->f = malloc(cap * sizeof *w->f);
    w->len = malloc(cap * sizeof *w->len);
    w->n = 0;
    const uint8_t *f;
    size_t len;
    while ((w->end = tkv_frame_reader_next(r, &f, &len)) == TKV_FRAME_OK) {
        FUZZ_CHECK(w->n < cap, "more frames than the stream can hold");
        w->f[w->n] = f;
        w->len[w->n++] = len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tkv_cmd first = (tkv_cmd)((data[0] & 0x0f) % TKV_CMD__COUNT);
    size_t max_frame = max_frames[(data[0] >> 4) & 3];
    const uint8_t *s = data + 1;
    size_t n = size - 1;

    tkv_frame_reader all, one;
    tkv_frame_reader_init(&all, max_frame);
    tkv_frame_reader_init(&one, max_frame);
    whole w;
    read_whole(&all, s, n, &w);

    size_t got = 0;
    int rc = TKV_FRAME_AGAIN;
    for (size_t i = 0; i < n && rc != TKV_FRAME_ETOOBIG; i++) {
        FUZZ_CHECK(tkv_frame_reader_feed(&one, s + i, 1) == 0, "feed failed");
        const uint8_t *f;
        size_t len;
        while ((rc = tkv_frame_reader_next(&one, &f, &len)) == TKV_FRAME_OK) {
            FUZZ_CHECK(got < w.n, "byte by byte: frame %zu, fed whole: %zu frames", got, w.n);
            FUZZ_CHECK(len == w.len[got] && (len == 0 || memcmp(f, w.f[got], len) == 0),
                       "frame %zu differs between the two readers", got);
            check_frame(f, len, (tkv_cmd)((first + got) % TKV_CMD__COUNT));
            got++;
        }
    }
    FUZZ_CHECK(got == w.n, "byte by byte: %zu frames, fed whole: %zu", got, w.n);
    FUZZ_CHECK(rc == w.end, "the readers end differently: %d byte by byte, %d whole", rc, w.end);

    free(w.f);
    free(w.len);
    tkv_frame_reader_deinit(&all);
    tkv_frame_reader_deinit(&one);
    return 0;
}
