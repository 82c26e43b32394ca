/*
 * test_reply.c - the reply table, encoders and decoder (protocol/reply.h):
 * every shape encoded, decoded back and compared field by field, the
 * encoders' exact bytes, the decoder fed one byte at a time through the
 * frame reader, and truncated or hostile replies refused cleanly.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "frame.h"
#include "reply.h"

static const uint8_t big[70000]; /* zeros: values with bin16 and bin32 headers */

#define SPAN(s) ((tkv_span){(const uint8_t *)(s), (uint32_t)strlen(s)})
#define OPT(x) ((tkv_rep_opt){(x), true})
#define NONE ((tkv_rep_opt){0, false})

static bool span_eq(tkv_span a, tkv_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool opt_eq(tkv_rep_opt a, tkv_rep_opt b) { return a.has == b.has && a.v == b.v; }

static bool answer_eq(const tkv_rep_answer *a, const tkv_rep_answer *b)
{
    if (a->status != b->status || !opt_eq(a->next, b->next))
        return false;
    if (a->status == TKV_ST_OK)
        return span_eq(a->value, b->value) && a->ts == b->ts && opt_eq(a->expires, b->expires);
    return a->miss == b->miss && opt_eq(a->at, b->at);
}

/* ---- a sample of every reply shape ----------------------------------------- */

static const tkv_rep_answer answers[] = {
    {.status = TKV_ST_OK, .value = {(const uint8_t *)"v1", 2}, .ts = 100},
    {.status = TKV_ST_OK,
     .value = {big, 300},
     .ts = 1u << 20,
     .next = {200, true},
     .expires = {UINT64_MAX, true}},
    {.status = TKV_ST_OK, .value = {big, 70000}, .ts = UINT64_MAX - 1},
    {.status = TKV_ST_OK, .value = {big, 0}, .ts = 0, .expires = {128, true}},
    {.status = TKV_ST_NOT_FOUND, .miss = TKV_M_NO_KEY},
    {.status = TKV_ST_NOT_FOUND, .miss = TKV_M_BEFORE_FIRST, .next = {5, true}},
    {.status = TKV_ST_NOT_FOUND, .miss = TKV_M_DELETED, .next = {70000, true}, .at = {300, true}},
    {.status = TKV_ST_NOT_FOUND, .miss = TKV_M_BELOW_HORIZON, .at = {1ull << 40, true}},
};
#define N_ANSWERS (sizeof answers / sizeof answers[0])

static const tkv_rep_entry entries[] = {
    {.ts = 1, .value = {(const uint8_t *)"a", 1}},
    {.ts = 2}, /* a tombstone */
    {.ts = 65536, .value = {big, 256}, .expires = 99},
    {.ts = UINT64_MAX, .value = {big, 0}},
};

static const char *const keys[] = {"k", "key:2", "a longer key than fixstr allows!"};

typedef struct sample {
    tkv_cmd cmd;
    size_t off, len; /* the frame within the sample buffer */
} sample;

static sample samples[64];
static size_t nsamples;
static tkv_buf all; /* every sample's frame, one after the other */

static void add(tkv_cmd cmd, size_t start)
{
    cr_assert_lt(nsamples, sizeof samples / sizeof samples[0]);
    samples[nsamples++] = (sample){cmd, start, all.len - start};
}

#define ADD(cmd, call)           \
    do {                         \
        size_t start_ = all.len; \
        cr_assert_eq((call), 0); \
        add(cmd, start_);        \
    } while (0)

static int range_sample(size_t n, bool truncated)
{
    tkv_rep_wr lw;
    tkv_rep_range_begin(&lw, &all);
    for (size_t i = 0; i < n; i++)
        tkv_rep_range_entry(&lw, entries[i].ts, entries[i].value.ptr, entries[i].value.len,
                            entries[i].expires);
    return tkv_rep_range_end(&lw, truncated);
}

static int mget_sample(size_t n, bool truncated)
{
    tkv_rep_wr lw;
    tkv_rep_mget_begin(&lw, &all);
    for (size_t i = 0; i < n; i++)
        tkv_rep_mget_answer(&lw, &answers[i]);
    return tkv_rep_mget_end(&lw, truncated);
}

static int scan_sample(size_t n, bool more)
{
    tkv_rep_wr lw;
    tkv_rep_scan_begin(&lw, &all);
    for (size_t i = 0; i < n; i++)
        tkv_rep_scan_key(&lw, keys[i], (uint32_t)strlen(keys[i]));
    return tkv_rep_scan_end(&lw, more);
}

static int mput_sample(size_t n)
{
    tkv_rep_wr lw;
    tkv_rep_mput_begin(&lw, &all, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        tkv_rep_mput_ts(&lw, (uint64_t)1 << (i * 9));
    return tkv_rep_mput_end(&lw);
}

static int stats_sample(void)
{
    tkv_rep_wr lw;
    tkv_rep_stats_begin(&lw, &all, 3);
    tkv_rep_stats_uint(&lw, "keys", 4, 12);
    tkv_rep_stats_str(&lw, "version", 7, "0.1.0", 5);
    tkv_rep_stats_uint(&lw, "mem_bytes", 9, 1ull << 33);
    return tkv_rep_stats_end(&lw);
}

static int shards_sample(void)
{
    tkv_rep_wr lw;
    tkv_rep_shards_begin(&lw, &all, 42, 2);
    tkv_rep_shards_range(&lw, 0, 8191, SPAN("127.0.0.1:7001"), 0);
    tkv_rep_shards_range(&lw, 8192, 16383, SPAN("127.0.0.1:7002"), 2);
    tkv_rep_shards_replica(&lw, SPAN("127.0.0.1:7003"));
    tkv_rep_shards_replica(&lw, SPAN("[::1]:7004"));
    return tkv_rep_shards_end(&lw);
}

/* SLOWLOG GET: [0, length, [entry...]]; the second entry's key was cut. */
static int slowlog_sample(uint32_t n)
{
    static const uint8_t key[TKV_SLOWLOG_KEY_MAX] = {'k'};
    tkv_rep_wr lw;
    tkv_rep_slowlog_begin(&lw, &all, 9, n);
    for (uint32_t i = 0; i < n; i++) {
        tkv_rep_slow e = {.id = 9 - i,
                          .time_us = 1700000000000000ull + i,
                          .duration_us = 12000 * (i + 1),
                          .cmd = i ? SPAN("MGET") : SPAN("GET"),
                          .key = i ? (tkv_span){key, sizeof key} : SPAN("user:1"),
                          .key_len = i ? 300 : 6,
                          .client = SPAN("127.0.0.1:51234")};
        tkv_rep_slowlog_entry(&lw, &e);
    }
    return tkv_rep_slowlog_end(&lw);
}

static void build_samples(void)
{
    nsamples = 0;
    tkv_buf_reset(&all);
    tkv_span echo = SPAN("hello");
    ADD(TKV_CMD_PING, tkv_rep_put_ping(&all, NULL));
    ADD(TKV_CMD_PING, tkv_rep_put_ping(&all, &echo));
    ADD(TKV_CMD_PUT, tkv_rep_put_uint(&all, 1700000000000000ull));
    ADD(TKV_CMD_DEL, tkv_rep_put_uint(&all, 0));
    ADD(TKV_CMD_COUNT, tkv_rep_put_uint(&all, 300));
    for (size_t i = 0; i < N_ANSWERS; i++)
        ADD(TKV_CMD_GET, tkv_rep_put_answer(&all, &answers[i]));
    ADD(TKV_CMD_AUTH, tkv_rep_put_empty(&all));
    ADD(TKV_CMD_RETAIN, tkv_rep_put_retain(&all, 3, OPT(1000), true));
    ADD(TKV_CMD_RETAIN, tkv_rep_put_retain(&all, 0, NONE, false));
    ADD(TKV_CMD_POLICY, tkv_rep_put_policy(&all, OPT(5), NONE, true, OPT(77)));
    ADD(TKV_CMD_POLICY, tkv_rep_put_policy(&all, NONE, OPT(86400000000ull), false, NONE));
    ADD(TKV_CMD_RANGE, range_sample(0, false));
    ADD(TKV_CMD_RANGE, range_sample(4, true));
    ADD(TKV_CMD_MGET, mget_sample(0, false));
    ADD(TKV_CMD_MGET, mget_sample(N_ANSWERS, true));
    ADD(TKV_CMD_SCAN, scan_sample(0, false));
    ADD(TKV_CMD_SCAN, scan_sample(3, true));
    ADD(TKV_CMD_SCAN, scan_sample(2, false));
    ADD(TKV_CMD_MPUT, mput_sample(0));
    ADD(TKV_CMD_MPUT, mput_sample(7));
    ADD(TKV_CMD_STATS, stats_sample());
    ADD(TKV_CMD_SLOWLOG, tkv_rep_put_uint(&all, 5)); /* LEN, RESET */
    ADD(TKV_CMD_SLOWLOG, slowlog_sample(0));
    ADD(TKV_CMD_SLOWLOG, slowlog_sample(2));
    ADD(TKV_CMD_CLUSTER, shards_sample());
}

static const uint8_t *payload(const sample *s) { return all.data + s->off + 4; }
static size_t plen(const sample *s) { return s->len - 4; }

/* The frame re-encoded from its decoding is the same frame. */
static void check_roundtrip(const sample *s, const uint8_t *p, size_t n)
{
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(s->cmd, p, n, &rep), 0, "%s: %s", tkv_cmd_name(s->cmd), rep.what);
    tkv_buf again = {0};
    cr_assert_eq(tkv_rep_encode(&again, &rep), 0);
    cr_assert_eq(again.len, n + 4, "%s: %zu bytes re-encoded, %zu sent", tkv_cmd_name(s->cmd),
                 again.len, n + 4);
    cr_assert_eq(memcmp(again.data + 4, p, n), 0, "%s: re-encoding differs", tkv_cmd_name(s->cmd));
    tkv_buf_deinit(&again);
}

Test(reply, every_shape_roundtrips)
{
    build_samples();
    for (size_t i = 0; i < nsamples; i++) {
        const sample *s = &samples[i];
        uint32_t hdr = tkv_load_be32(all.data + s->off);
        cr_assert_eq(hdr, plen(s), "sample %zu: frame header", i);
        check_roundtrip(s, payload(s), plen(s));
    }
    tkv_buf_deinit(&all);
}

/* ---- decoded fields --------------------------------------------------------- */

static tkv_rep decode_ok(tkv_cmd cmd, tkv_buf *b)
{
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(cmd, b->data + 4, b->len - 4, &rep), 0, "%s: %s", tkv_cmd_name(cmd),
                 rep.what);
    return rep;
}

Test(reply, fields_decode_as_encoded)
{
    tkv_buf b = {0};
    for (size_t i = 0; i < N_ANSWERS; i++) {
        tkv_buf_reset(&b);
        cr_assert_eq(tkv_rep_put_answer(&b, &answers[i]), 0);
        tkv_rep rep = decode_ok(TKV_CMD_GET, &b);
        cr_assert_eq(rep.status, answers[i].status);
        cr_assert(answer_eq(&rep.answer, &answers[i]), "GET answer %zu", i);
    }

    tkv_buf_reset(&all);
    mget_sample(N_ANSWERS, true);
    tkv_rep rep = decode_ok(TKV_CMD_MGET, &all);
    cr_assert(rep.truncated);
    cr_assert_eq(rep.list.n, N_ANSWERS);
    tkv_rep_answer a;
    for (size_t i = 0; tkv_rep_next_answer(&rep.list, &a); i++)
        cr_assert(answer_eq(&a, &answers[i]), "MGET answer %zu", i);
    cr_assert_eq(rep.list.n, 0);

    tkv_buf_reset(&all);
    range_sample(4, false);
    rep = decode_ok(TKV_CMD_RANGE, &all);
    cr_assert(!rep.truncated);
    tkv_rep_entry e;
    for (size_t i = 0; tkv_rep_next_entry(&rep.list, &e); i++) {
        cr_assert_eq(e.ts, entries[i].ts);
        cr_assert_eq(e.expires, entries[i].expires);
        cr_assert_eq(e.value.ptr == NULL, entries[i].value.ptr == NULL, "tombstone %zu", i);
        cr_assert(span_eq(e.value, entries[i].value));
    }

    tkv_buf_reset(&all);
    scan_sample(3, true);
    rep = decode_ok(TKV_CMD_SCAN, &all);
    cr_assert_eq(rep.list.n, 3);
    cr_assert(span_eq(rep.cursor, SPAN(keys[2])), "the cursor is the last key");
    tkv_buf_reset(&all);
    scan_sample(3, false);
    rep = decode_ok(TKV_CMD_SCAN, &all);
    cr_assert_null(rep.cursor.ptr);

    tkv_buf_reset(&all);
    stats_sample();
    rep = decode_ok(TKV_CMD_STATS, &all);
    tkv_rep_stat st;
    cr_assert(tkv_rep_next_stat(&rep.list, &st) && span_eq(st.name, SPAN("keys")) && !st.is_str &&
              st.num == 12);
    cr_assert(tkv_rep_next_stat(&rep.list, &st) && st.is_str && span_eq(st.str, SPAN("0.1.0")));
    cr_assert(tkv_rep_next_stat(&rep.list, &st) && st.num == 1ull << 33);
    cr_assert(!tkv_rep_next_stat(&rep.list, &st));

    tkv_buf_reset(&b);
    tkv_rep_put_policy(&b, OPT(5), NONE, true, OPT(77));
    rep = decode_ok(TKV_CMD_POLICY, &b);
    cr_assert(opt_eq(rep.versions, OPT(5)) && opt_eq(rep.age, NONE) && rep.flag &&
              opt_eq(rep.horizon, OPT(77)));

    tkv_buf_reset(&b);
    tkv_rep_put_ping(&b, NULL);
    rep = decode_ok(TKV_CMD_PING, &b);
    cr_assert(rep.text.is_str && span_eq(rep.text.s, SPAN("PONG")));
    tkv_buf_deinit(&b);
    tkv_buf_deinit(&all);
}

/* The bytes PROTOCOL.md shows, written by the encoders. */
Test(reply, exact_bytes)
{
    tkv_buf b = {0};
    cr_assert_eq(tkv_rep_put_uint(&b, 5), 0);
    cr_assert_eq(b.len, 7);
    cr_assert_eq(memcmp(b.data, "\0\0\0\3\x92\x00\x05", 7), 0);
    tkv_buf_reset(&b);
    tkv_rep_put_answer(&b, &answers[0]);
    cr_assert_eq(memcmp(b.data + 4, "\x95\x00\xc4\x02v1\x64\xc0\xc0", b.len - 4), 0);
    tkv_buf_reset(&b);
    tkv_rep_put_answer(&b, &answers[6]);
    cr_assert_eq(memcmp(b.data + 4, "\x94\x01\x02\xce\x00\x01\x11\x70\xcd\x01\x2c", b.len - 4), 0);
    tkv_buf_reset(&b);
    tkv_rep_put_ping(&b, NULL);
    cr_assert_eq(memcmp(b.data + 4, "\x92\x00\xa4PONG", b.len - 4), 0);
    tkv_buf_reset(&b);
    tkv_rep_wr lw;
    tkv_rep_mget_begin(&lw, &b);
    tkv_rep_mget_answer(&lw, &answers[4]);
    tkv_rep_mget_end(&lw, false);
    cr_assert_eq(b.len - 4, 13);
    cr_assert_eq(memcmp(b.data + 4, "\x93\x00\xdd\0\0\0\1\x94\x01\x00\xc0\xc0\xc2", 13), 0);
    tkv_buf_deinit(&b);
}

/* ---- fed one byte at a time ------------------------------------------------------ */

Test(reply, decoded_through_the_frame_reader_byte_by_byte)
{
    build_samples();
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, TKV_DEFAULT_MAX_FRAME);
    size_t next = 0;
    for (size_t i = 0; i < all.len; i++) {
        cr_assert_eq(tkv_frame_reader_feed(&r, all.data + i, 1), 0);
        const uint8_t *f;
        size_t n;
        int rc;
        while ((rc = tkv_frame_reader_next(&r, &f, &n)) == TKV_FRAME_OK) {
            cr_assert_lt(next, nsamples, "more frames than samples");
            const sample *s = &samples[next++];
            cr_assert_eq(i + 1, s->off + s->len, "frame %zu ends early or late", next - 1);
            cr_assert_eq(n, plen(s));
            check_roundtrip(s, f, n);
        }
        cr_assert_eq(rc, TKV_FRAME_AGAIN);
    }
    cr_assert_eq(next, nsamples);
    tkv_frame_reader_deinit(&r);
    tkv_buf_deinit(&all);
}

/* ---- truncated and hostile ------------------------------------------------------- */

Test(reply, every_truncation_is_refused)
{
    build_samples();
    for (size_t i = 0; i < nsamples; i++) {
        const sample *s = &samples[i];
        /* Every cut in the first and last 2 KiB (every field's header and
         * the reply's end), every 7th in between: a cut costs a decode of
         * what is left, so all of a long reply's cuts are quadratic, 9 s
         * under ASan. */
        for (size_t k = 0; k < plen(s); k += k < 2048 || k + 2048 >= plen(s) ? 1 : 7) {
            /* A heap copy of exactly k bytes: ASan sees any read past it. */
            uint8_t *q = malloc(k ? k : 1);
            memcpy(q, payload(s), k);
            tkv_rep rep;
            cr_assert_eq(tkv_rep_decode(s->cmd, q, k, &rep), TKV_REP_EPROTO,
                         "%s reply cut to %zu of %zu bytes accepted", tkv_cmd_name(s->cmd), k,
                         plen(s));
            cr_assert_not_null(rep.what);
            free(q);
        }
    }
    tkv_buf_deinit(&all);
}

static int decode_hex(tkv_cmd cmd, const char *hex, tkv_rep *rep)
{
    uint8_t buf[256];
    size_t n = 0;
    for (const char *p = hex; *p; p++) {
        if (*p == ' ')
            continue;
        unsigned v;
        sscanf(p, "%2x", &v);
        buf[n++] = (uint8_t)v;
        p++;
    }
    /* A heap copy of exactly n bytes, so ASan sees a read past the end;
     * kept until the next call, as rep points into it. */
    static uint8_t *q;
    free(q);
    q = malloc(n ? n : 1);
    memcpy(q, buf, n);
    return tkv_rep_decode(cmd, q, n, rep);
}

#define REFUSED(cmd, hex)                                                         \
    do {                                                                          \
        tkv_rep r_;                                                               \
        cr_assert_eq(decode_hex(cmd, hex, &r_), TKV_REP_EPROTO, "%s accepted %s", \
                     tkv_cmd_name(cmd), hex);                                     \
    } while (0)

Test(reply, hostile_replies_are_refused)
{
    REFUSED(TKV_CMD_PUT, "");                          /* nothing */
    REFUSED(TKV_CMD_PUT, "90");                        /* no status */
    REFUSED(TKV_CMD_PUT, "92 a1 30 05");               /* status is a string */
    REFUSED(TKV_CMD_PUT, "92 00 05 00");               /* trailing bytes */
    REFUSED(TKV_CMD_PUT, "92 00 c1");                  /* the never-used byte */
    REFUSED(TKV_CMD_PUT, "91 00");                     /* too few fields */
    REFUSED(TKV_CMD_PUT, "92 00 ff");                  /* a negative timestamp */
    REFUSED(TKV_CMD_PUT, "92 01 05");                  /* NOT_FOUND to a command that cannot miss */
    REFUSED(TKV_CMD_GET, "95 00 05 05 c0 c0");         /* value is an integer */
    REFUSED(TKV_CMD_GET, "93 00 c4 01 61");            /* no ts/next */
    REFUSED(TKV_CMD_GET, "92 01 00");                  /* miss without next */
    REFUSED(TKV_CMD_GET, "94 01 00 c3 c0");            /* next is a bool */
    REFUSED(TKV_CMD_RANGE, "93 00 dd ff ff ff ff c2"); /* four billion entries claimed */
    REFUSED(TKV_CMD_RANGE, "93 00 91 91 01 c2");       /* an entry of one element */
    REFUSED(TKV_CMD_RANGE, "93 00 91 92 01 01 c2");    /* value is an integer */
    REFUSED(TKV_CMD_RANGE, "93 00 91 93 01 c0 c0 c2"); /* expires is nil */
    REFUSED(TKV_CMD_RANGE, "93 00 90 00");             /* truncated is not a bool */
    REFUSED(TKV_CMD_MGET, "93 00 91 92 05 00 c2");     /* an answer with an error status */
    REFUSED(TKV_CMD_MGET, "93 00 91 90 c2");           /* an empty answer */
    REFUSED(TKV_CMD_MGET, "93 00 91 93 00 c4 00 00 c2"); /* an answer missing next */
    REFUSED(TKV_CMD_MGET, "93 00 dd 00 01 00 00 c2");    /* 65536 answers in 8 bytes */
    REFUSED(TKV_CMD_SCAN, "92 00 90");                   /* no cursor */
    REFUSED(TKV_CMD_SCAN, "93 00 91 01 c0");             /* a key that is a number */
    REFUSED(TKV_CMD_MPUT, "92 00 92 01 c0");             /* a nil timestamp */
    REFUSED(TKV_CMD_STATS, "92 00 81 01 01");            /* a numeric name */
    REFUSED(TKV_CMD_STATS, "92 00 81 a1 61 c3");         /* a bool value */
    REFUSED(TKV_CMD_STATS, "92 00 df ff ff ff ff");      /* a lying map count */
    REFUSED(TKV_CMD_RETAIN, "94 00 01 c0 01");           /* complete is not a bool */
    REFUSED(TKV_CMD_POLICY, "94 00 c0 c0 c2");           /* no horizon */
    REFUSED(TKV_CMD_PING, "91 00");                      /* no echo */
    REFUSED((tkv_cmd)TKV_CMD__COUNT, "91 00");           /* not a command */
    REFUSED(TKV_CMD_GET, "91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 c0");
}

Test(reply, compatible_replies_are_accepted)
{
    tkv_rep rep;
    /* A server before expires/at: one field fewer. */
    cr_assert_eq(decode_hex(TKV_CMD_GET, "94 00 c4 01 61 05 c0", &rep), 0);
    cr_assert(!rep.answer.expires.has && rep.answer.ts == 5);
    cr_assert_eq(decode_hex(TKV_CMD_GET, "93 01 02 07", &rep), 0);
    cr_assert(rep.answer.miss == 2 && opt_eq(rep.answer.next, OPT(7)) && !rep.answer.at.has);
    /* Before RANGE's and MGET's truncated flag. */
    cr_assert_eq(decode_hex(TKV_CMD_RANGE, "92 00 91 92 01 c0", &rep), 0);
    cr_assert(!rep.truncated && rep.list.n == 1);
    cr_assert_eq(decode_hex(TKV_CMD_MGET, "92 00 90", &rep), 0);
    /* A newer server's extra fields are skipped, at every level. */
    cr_assert_eq(decode_hex(TKV_CMD_GET, "96 00 c4 01 61 05 c0 c0 81 a1 78 90", &rep), 0);
    cr_assert_eq(decode_hex(TKV_CMD_RANGE, "94 00 91 94 01 c0 02 a1 79 c3 c0", &rep), 0);
    tkv_rep_entry e;
    cr_assert(tkv_rep_next_entry(&rep.list, &e) && e.ts == 1 && e.expires == 2 && !e.value.ptr);
    cr_assert(rep.truncated);
    cr_assert_eq(decode_hex(TKV_CMD_PUT, "93 00 05 c0", &rep), 0);
    cr_assert_eq(rep.u, 5);
    cr_assert_eq(rep.nfields, 2);
    /* Keys and values may come as str. */
    cr_assert_eq(decode_hex(TKV_CMD_SCAN, "93 00 91 a1 6b a1 6b", &rep), 0);
    cr_assert(span_eq(rep.cursor, SPAN("k")));
}

Test(reply, errors_carry_their_message)
{
    tkv_buf b = {0};
    cr_assert_eq(tkv_write_error(&b, TKV_ST_TOO_LARGE, "value too large"), 0);
    tkv_rep rep = decode_ok(TKV_CMD_PUT, &b);
    cr_assert_eq(rep.status, TKV_ST_TOO_LARGE);
    cr_assert(span_eq(rep.errmsg, SPAN("value too large")));
    /* Any command: errors have one shape. */
    rep = decode_ok(TKV_CMD_MGET, &b);
    cr_assert_eq(rep.status, TKV_ST_TOO_LARGE);
    cr_assert_eq(decode_hex(TKV_CMD_GET, "91 28", &rep), 0); /* INTERNAL, no message */
    cr_assert_eq(rep.status, TKV_ST_INTERNAL);
    cr_assert_eq(rep.errmsg.len, 0);
    REFUSED(TKV_CMD_GET, "92 28 05"); /* a message that is a number */
    tkv_buf_deinit(&b);
}

Test(reply, cluster_shards_fields)
{
    build_samples();
    const sample *s = &samples[nsamples - 1];
    cr_assert_eq(s->cmd, TKV_CMD_CLUSTER);
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(TKV_CMD_CLUSTER, payload(s), plen(s), &rep), 0, "%s", rep.what);
    cr_assert_eq(rep.u, 42);
    cr_assert_eq(rep.list.n, 2);
    tkv_rep_slots r;
    tkv_span a;
    cr_assert(tkv_rep_next_slots(&rep.list, &r));
    cr_assert(r.from == 0 && r.to == 8191 && r.replicas.n == 0);
    cr_assert(span_eq(r.primary, SPAN("127.0.0.1:7001")));
    cr_assert(tkv_rep_next_slots(&rep.list, &r));
    cr_assert(r.from == 8192 && r.to == 16383 && r.replicas.n == 2);
    cr_assert(tkv_rep_next_key(&r.replicas, &a) && span_eq(a, SPAN("127.0.0.1:7003")));
    cr_assert(tkv_rep_next_key(&r.replicas, &a) && span_eq(a, SPAN("[::1]:7004")));
    cr_assert_not(tkv_rep_next_key(&r.replicas, &a));
    cr_assert_not(tkv_rep_next_slots(&rep.list, &r));
    /* A range of the wrong shape is refused as a whole. */
    cr_assert_eq(decode_hex(TKV_CMD_CLUSTER, "93 00 01 91 93 00 01 a1 78", &rep), TKV_REP_EPROTO);
    cr_assert_eq(decode_hex(TKV_CMD_CLUSTER, "93 00 01 91 94 00 01 a1 78 91 05", &rep),
                 TKV_REP_EPROTO);
    cr_assert_eq(decode_hex(TKV_CMD_CLUSTER, "93 00 01 91 94 00 01 a1 78 91 a1 79", &rep), 0);
    tkv_buf_deinit(&all);
}

Test(reply, slowlog_fields)
{
    build_samples();
    const sample *s = &samples[nsamples - 2];
    cr_assert_eq(s->cmd, TKV_CMD_SLOWLOG);
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(TKV_CMD_SLOWLOG, payload(s), plen(s), &rep), 0, "%s", rep.what);
    cr_assert_eq(rep.u, 9);
    cr_assert_eq(rep.list.n, 2);
    tkv_rep_slow e;
    cr_assert(tkv_rep_next_slow(&rep.list, &e));
    cr_assert(e.id == 9 && e.time_us == 1700000000000000ull && e.duration_us == 12000);
    cr_assert(span_eq(e.cmd, SPAN("GET")) && span_eq(e.key, SPAN("user:1")) && e.key_len == 6);
    cr_assert(span_eq(e.client, SPAN("127.0.0.1:51234")));
    cr_assert(tkv_rep_next_slow(&rep.list, &e));
    cr_assert(e.id == 8 && e.key.len == TKV_SLOWLOG_KEY_MAX && e.key_len == 300, "a cut key");
    cr_assert_not(tkv_rep_next_slow(&rep.list, &e));
    /* LEN: the length alone. */
    cr_assert_eq(decode_hex(TKV_CMD_SLOWLOG, "92 00 05", &rep), 0);
    cr_assert(rep.u == 5 && rep.nfields == 1 && rep.list.n == 0);
    /* An entry short of a field, or with a key that is a number, is refused. */
    REFUSED(TKV_CMD_SLOWLOG, "93 00 01 91 96 01 02 03 a3 47 45 54 c4 00 00");
    REFUSED(TKV_CMD_SLOWLOG, "93 00 01 91 97 01 02 03 a3 47 45 54 05 00 a1 78");
    cr_assert_eq(
        decode_hex(TKV_CMD_SLOWLOG, "93 00 01 91 97 01 02 03 a3 47 45 54 c4 00 00 a1 78", &rep), 0);
    tkv_buf_deinit(&all);
}

/* The table: every command has a row, and each row is coherent. */
Test(reply, table_is_complete)
{
    for (int c = 0; c < TKV_CMD__COUNT; c++) {
        const tkv_reply_desc *d = &tkv_reply_descs[c];
        cr_assert_leq(d->ok.min, d->ok.n, "%s", tkv_cmd_name((tkv_cmd)c));
        cr_assert(d->ok.n == 0 || d->ok.f != NULL, "%s has no fields", tkv_cmd_name((tkv_cmd)c));
        /* Only these answer a bare [0]; PSYNC's answer is a stream. */
        bool bare = c == TKV_CMD_AUTH || c == TKV_CMD_REPLICAOF || c == TKV_CMD_PSYNC ||
                    c == TKV_CMD_REPLACK || c == TKV_CMD_ASKING;
        cr_assert(bare || d->ok.n > 0, "%s has no row", tkv_cmd_name((tkv_cmd)c));
        size_t size = d->answer ? sizeof(tkv_rep_answer) : sizeof(tkv_rep);
        for (unsigned i = 0; i < d->ok.n; i++)
            cr_assert_lt(d->ok.f[i].off, size);
        cr_assert_eq(d->miss.n > 0, c == TKV_CMD_GET, "only GET answers NOT_FOUND");
    }
}
