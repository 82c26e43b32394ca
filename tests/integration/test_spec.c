/*
 * test_spec.c - PROTOCOL.md against the running tkvd, byte for byte.
 *
 * A client written from the document alone must get exactly what the
 * document says. So this file reads PROTOCOL.md itself: every example
 * frame must be well formed (its length prefix counts its payload, which is
 * one MessagePack value), and the examples, replayed in order against a
 * real server, must get the documented replies. Then it checks, over raw
 * frames built here with a tiny MessagePack writer of its own (as a third-
 * party client would), each answer the document gives for the edge cases:
 * empty keys and lists, zero ttl and retention, limits, answers that must
 * not depend on when the background sweep runs, and MGET's frame bound.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byteorder.h"
#include "harness.h"
#include "mp.h"

static tkvd d;

static void teardown(void) { tkvd_cleanup(&d); }

/* ---- a minimal MessagePack writer ---------------------------------------- */

typedef struct mw {
    uint8_t b[1 << 17];
    size_t n;
} mw;

static void put8(mw *w, uint8_t v) { w->b[w->n++] = v; }

static void put_be(mw *w, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        put8(w, (uint8_t)(v >> (8 * i)));
}

static void w_arr(mw *w, uint32_t n) { put8(w, (uint8_t)(0x90 | n)); } /* n < 16 */
static void w_nil(mw *w) { put8(w, 0xc0); }
static void w_bool(mw *w, bool v) { put8(w, v ? 0xc3 : 0xc2); }
static void w_neg(mw *w, int8_t v) { put8(w, 0xd0), put8(w, (uint8_t)v); }

static void w_uint(mw *w, uint64_t v)
{
    if (v < 128)
        put8(w, (uint8_t)v);
    else if (v < 256)
        put8(w, 0xcc), put_be(w, v, 1);
    else if (v < 65536)
        put8(w, 0xcd), put_be(w, v, 2);
    else if (v <= UINT32_MAX)
        put8(w, 0xce), put_be(w, v, 4);
    else
        put8(w, 0xcf), put_be(w, v, 8);
}

static void w_str(mw *w, const char *s)
{
    size_t n = strlen(s); /* < 32 here */
    put8(w, (uint8_t)(0xa0 | n));
    memcpy(w->b + w->n, s, n);
    w->n += n;
}

static void w_binn(mw *w, const void *p, size_t n)
{
    if (n < 256)
        put8(w, 0xc4), put_be(w, n, 1);
    else if (n < 65536)
        put8(w, 0xc5), put_be(w, n, 2);
    else
        put8(w, 0xc6), put_be(w, n, 4);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void w_bin(mw *w, const char *s) { w_binn(w, s, strlen(s)); }

/* ---- one exchange over a raw socket ------------------------------------- */

static uint8_t reply[1 << 20];
static long reply_len;

static void send_frame(int fd, const mw *w)
{
    uint8_t h[4];
    tkv_store_be32(h, (uint32_t)w->n);
    raw_send(fd, h, 4);
    raw_send(fd, w->b, w->n);
}

static void xchg(int fd, const mw *w)
{
    send_frame(fd, w);
    reply_len = raw_frame(fd, reply, sizeof reply);
    cr_assert_gt(reply_len, 1, "no reply");
}

/* The reply must be exactly the payload in want. */
static void expect_reply(const mw *want, const char *what)
{
    cr_assert(reply_len == (long)want->n && memcmp(reply, want->b, want->n) == 0,
              "%s: reply of %ld bytes differs from the %zu expected (status %u)", what, reply_len,
              want->n, reply[1]);
}

/* The reply must be [status, message] with why somewhere in the message. */
static void expect_error(unsigned status, const char *why, const char *what)
{
    tkv_mp m;
    uint32_t n;
    uint64_t st;
    const uint8_t *msg;
    uint32_t mlen;
    tkv_mp_init(&m, reply, (size_t)reply_len);
    cr_assert(tkv_mp_read_array(&m, &n) == 0 && n == 2 && tkv_mp_read_uint(&m, &st) == 0 &&
                  tkv_mp_read_bytes(&m, &msg, &mlen) == 0,
              "%s: not an error reply", what);
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)mlen, (const char *)msg);
    cr_assert_eq(st, status, "%s: status %llu (%s), want %u", what, (unsigned long long)st, text,
                 status);
    cr_assert(!why || strstr(text, why), "%s: message '%s' lacks '%s'", what, text, why);
}

/* [0, n]: the reply of PUT, DEL and COUNT. */
static uint64_t expect_u64(const char *what)
{
    tkv_mp m;
    uint32_t n;
    uint64_t st, v;
    tkv_mp_init(&m, reply, (size_t)reply_len);
    cr_assert(tkv_mp_read_array(&m, &n) == 0 && n == 2 && tkv_mp_read_uint(&m, &st) == 0,
              "%s: malformed reply", what);
    cr_assert_eq(st, 0, "%s: status %llu", what, (unsigned long long)st);
    cr_assert_eq(tkv_mp_read_uint(&m, &v), 0, "%s: no number", what);
    return v;
}

/* ---- PROTOCOL.md's examples -------------------------------------------------- */

typedef struct example {
    bool request; /* '>' (false: '<') */
    uint8_t b[256];
    size_t n;
    int line;
} example;

static int is_hex2(const char *p)
{
    static const char *hex = "0123456789abcdef";
    return p[0] && p[1] && strchr(hex, p[0]) && strchr(hex, p[1]) &&
           (p[2] == ' ' || p[2] == '\n' || p[2] == '\0');
}

/* Appends the hex bytes at the start of p (single or double spaces apart;
 * three spaces or a word that is not a byte start the comment). */
static size_t parse_hex(const char *p, example *ex)
{
    size_t got = 0;
    while (is_hex2(p) && ex->n < sizeof ex->b) {
        ex->b[ex->n++] = (uint8_t)strtoul((char[]){p[0], p[1], 0}, NULL, 16);
        got++;
        p += 2;
        int spaces = 0;
        while (*p == ' ')
            p++, spaces++;
        if (spaces > 2)
            break;
    }
    return got;
}

/* Reads every '>'/'<' frame of PROTOCOL.md, in order. */
static size_t read_examples(example *out, size_t cap)
{
    const char *path = getenv("TKV_PROTOCOL_MD");
    cr_assert(path, "TKV_PROTOCOL_MD is not set");
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char line[512];
    size_t n = 0;
    bool open = false;
    for (int no = 1; fgets(line, sizeof line, f); no++) {
        const char *p = line;
        while (*p == ' ')
            p++;
        if (*p == '>' || *p == '<') {
            cr_assert_lt(n, cap);
            out[n] = (example){.request = *p == '>', .line = no};
            open = parse_hex(p + 2, &out[n++]) > 0;
        } else if (!(open && p != line && parse_hex(p, &out[n - 1]) > 0)) {
            open = false;
        }
    }
    fclose(f);
    return n;
}

Test(spec, every_documented_frame_is_well_formed)
{
    example ex[64];
    size_t n = read_examples(ex, 64);
    cr_assert_geq(n, 30, "only %zu example frames found", n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_geq(ex[i].n, 5, "line %d: a frame without a payload", ex[i].line);
        uint32_t len = tkv_load_be32(ex[i].b);
        cr_assert_eq(len, ex[i].n - 4, "line %d: length prefix %u for a %zu-byte payload",
                     ex[i].line, len, ex[i].n - 4);
        tkv_mp m;
        tkv_mp_init(&m, ex[i].b + 4, ex[i].n - 4);
        cr_assert(tkv_mp_skip(&m) == 0 && tkv_mp_left(&m) == 0,
                  "line %d: the payload is not exactly one MessagePack value", ex[i].line);
        if (i > 0)
            cr_assert(ex[i].request != ex[i - 1].request,
                      "line %d: requests and replies "
                      "must alternate",
                      ex[i].line);
    }
}

static bool starts(const example *e, const char *name)
{
    size_t k = strlen(name);
    return e->n > 6 + k && e->b[5] == (0xa0 | k) && memcmp(e->b + 6, name, k) == 0;
}

/* What the examples assume was written before them. */
static void examples_preamble(int fd)
{
    static const struct {
        const char *k, *v;
        uint64_t ts;
    } puts_[] = {{"item1", "iPhone 17", 101}, {"k", "v100", 100}, {"k", "v200", 200}};
    mw w;
    for (size_t i = 0; i < 3; i++) {
        w.n = 0;
        w_arr(&w, 4), w_str(&w, "PUT"), w_bin(&w, puts_[i].k), w_bin(&w, puts_[i].v);
        w_uint(&w, puts_[i].ts);
        xchg(fd, &w);
        expect_u64("preamble PUT");
    }
    w.n = 0;
    w_arr(&w, 3), w_str(&w, "DEL"), w_bin(&w, "k"), w_uint(&w, 250);
    xchg(fd, &w);
    expect_u64("preamble DEL");
}

static void replay(int fd, const example *q, const example *a)
{
    raw_send(fd, q->b, q->n);
    reply_len = raw_frame(fd, reply, sizeof reply);
    cr_assert_gt(reply_len, 0, "line %d: no reply", q->line);
    const uint8_t *want = a->b + 4;
    size_t wn = a->n - 4;
    /* A PUT without ts answers the server's clock: only its shape can match. */
    bool clock = starts(q, "PUT") && q->b[4] == 0x93;
    size_t cmp = clock ? 3 : wn;
    cr_assert(reply_len == (long)wn && memcmp(reply, want, cmp) == 0,
              "line %d: the server's reply (%ld bytes, %02x %02x %02x ...) differs from the "
              "documented one at line %d",
              q->line, reply_len, reply[0], reply[1], reply[2], a->line);
}

Test(spec, the_documented_examples_replay_exactly, .fini = teardown)
{
    /* No slow log: SLOWLOG's example needs a log that no slow machine
     * can have filled. */
    tkvd_start(
        &d, (const char *const[]){"--requirepass", "s3cr3", "--slowlog-slower-than", "-1", NULL});
    example ex[64];
    size_t n = read_examples(ex, 64);
    int fd = tkvd_raw(&d);
    /* AUTH comes last in the document but must go first on this server. */
    for (size_t i = 0; i + 1 < n; i += 2)
        if (starts(&ex[i], "AUTH"))
            replay(fd, &ex[i], &ex[i + 1]);
    examples_preamble(fd);
    size_t done = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        cr_assert(ex[i].request && !ex[i + 1].request, "line %d: not a request", ex[i].line);
        if (!starts(&ex[i], "AUTH"))
            replay(fd, &ex[i], &ex[i + 1]), done++;
    }
    cr_assert_geq(done, 14);
    close(fd);
}

/* ---- what the document says where a client could not guess --------------- */

static int fd;

static void start_plain(void)
{
    tkvd_start(&d, NULL);
    fd = tkvd_raw(&d);
}

static void stop_plain(void)
{
    close(fd);
    tkvd_cleanup(&d);
}

static mw w, want;

/* Begins request [name, ...] of n elements in w. */
static void req(uint32_t n, const char *name)
{
    w.n = 0;
    w_arr(&w, n);
    w_str(&w, name);
}

static uint64_t put(const char *k, const char *v, uint64_t ts, bool has_ts, uint64_t ttl)
{
    req(ttl ? 5 : has_ts ? 4 : 3, "PUT");
    w_bin(&w, k), w_bin(&w, v);
    if (has_ts || ttl)
        has_ts ? w_uint(&w, ts) : w_nil(&w);
    if (ttl)
        w_uint(&w, ttl);
    xchg(fd, &w);
    return expect_u64("PUT");
}

static uint64_t del_all(const char *k)
{
    req(2, "DEL");
    w_bin(&w, k);
    xchg(fd, &w);
    return expect_u64("DEL");
}

static void retain(const char *k, uint64_t versions)
{
    req(3, "RETAIN");
    w_bin(&w, k), w_uint(&w, versions);
    xchg(fd, &w);
    cr_assert_eq(reply[1], 0, "RETAIN: status %u", reply[1]);
}

Test(spec, ping_echoes_its_message_as_bin, .init = start_plain, .fini = stop_plain)
{
    req(2, "PING");
    w_str(&w, "hi");
    xchg(fd, &w);
    want.n = 0;
    w_arr(&want, 2), w_uint(&want, 0), w_bin(&want, "hi");
    expect_reply(&want, "PING with a str message");
    req(2, "PING");
    w_nil(&w);
    xchg(fd, &w);
    want.n = 0;
    w_arr(&want, 2), w_uint(&want, 0), w_str(&want, "PONG");
    expect_reply(&want, "PING nil");
}

Test(spec, get_by_version_of_a_key_without_versions_is_no_such_key, .init = start_plain,
     .fini = stop_plain)
{
    want.n = 0;
    w_arr(&want, 4), w_uint(&want, 1), w_uint(&want, 0), w_nil(&want), w_nil(&want);
    req(4, "GET");
    w_bin(&w, "never"), w_nil(&w), w_neg(&w, -1);
    xchg(fd, &w);
    expect_reply(&want, "GET by version of a key never written");
    put("gone", "v", 5, true, 0);
    del_all("gone");
    req(4, "GET");
    w_bin(&w, "gone"), w_nil(&w), w_uint(&w, 1);
    xchg(fd, &w);
    expect_reply(&want, "GET by version of a deleted key");
}

Test(spec, del_at_a_time_below_the_horizon_is_out_of_range, .init = start_plain, .fini = stop_plain)
{
    for (uint64_t ts = 10; ts <= 30; ts += 10)
        put("h", "v", ts, true, 0);
    retain("h", 1); /* horizon 30 */
    req(3, "DEL");
    w_bin(&w, "h"), w_uint(&w, 20);
    xchg(fd, &w);
    expect_error(13, "horizon", "DEL at 20 below the horizon 30");
}

Test(spec, empty_keys_are_bad_requests, .init = start_plain, .fini = stop_plain)
{
    req(3, "PUT");
    w_bin(&w, ""), w_bin(&w, "v");
    xchg(fd, &w);
    expect_error(10, "empty", "PUT of an empty key");
    req(2, "GET");
    w_bin(&w, "");
    xchg(fd, &w);
    expect_error(10, "empty", "GET of an empty key");
    req(2, "MPUT");
    w_arr(&w, 1), w_arr(&w, 2), w_bin(&w, ""), w_bin(&w, "v");
    xchg(fd, &w);
    expect_error(10, "MPUT item 0: key must not be empty", "MPUT of an empty key");
    req(3, "MGET");
    w_nil(&w), w_arr(&w, 1), w_bin(&w, "");
    xchg(fd, &w);
    expect_error(10, "MGET key 0", "MGET of an empty key");
}

Test(spec, a_bad_mput_item_gets_the_error_put_would_get, .init = start_plain, .fini = stop_plain)
{
    req(4, "PUT");
    w_bin(&w, "k"), w_bin(&w, "v"), w_neg(&w, -5);
    xchg(fd, &w);
    expect_error(13, "ts must not be negative", "PUT at a negative ts");
    req(2, "MPUT");
    w_arr(&w, 2);
    w_arr(&w, 2), w_bin(&w, "a"), w_bin(&w, "v");
    w_arr(&w, 3), w_bin(&w, "k"), w_bin(&w, "v"), w_neg(&w, -5);
    xchg(fd, &w);
    expect_error(13, "MPUT item 1: ts must not be negative", "MPUT item at a negative ts");

    req(5, "PUT");
    w_bin(&w, "k"), w_bin(&w, "v"), w_nil(&w), w_uint(&w, 0);
    xchg(fd, &w);
    expect_error(13, "ttl must be positive", "PUT with ttl 0");
    req(2, "MPUT");
    w_arr(&w, 1), w_arr(&w, 4), w_bin(&w, "k"), w_bin(&w, "v"), w_nil(&w), w_uint(&w, 0);
    xchg(fd, &w);
    expect_error(13, "MPUT item 0: ttl must be positive", "MPUT item with ttl 0");

    req(2, "MPUT");
    w_arr(&w, 1), w_arr(&w, 1), w_bin(&w, "k");
    xchg(fd, &w);
    expect_error(10, "MPUT item 0: must be an array", "MPUT item without a value");
    req(2, "GET");
    w_bin(&w, "a");
    xchg(fd, &w);
    cr_assert_eq(reply[1], 1, "a refused MPUT wrote nothing");
}

Test(spec, empty_lists_and_over_limit_counts, .init = start_plain, .fini = stop_plain)
{
    req(2, "MPUT");
    w_arr(&w, 0);
    xchg(fd, &w);
    expect_error(10, "no items", "MPUT of no items");
    req(3, "MGET");
    w_nil(&w), w_arr(&w, 0);
    xchg(fd, &w);
    expect_error(10, "no items", "MGET of no keys");

    /* 10001 keys: one over the default --max-batch. */
    req(3, "MGET");
    w_nil(&w), put8(&w, 0xdc), put_be(&w, 10001, 2);
    for (int i = 0; i < 10001; i++)
        w_bin(&w, "k");
    xchg(fd, &w);
    expect_error(12, "limit is 10000", "MGET of 10001 keys");

    for (int bad = 0; bad < 2; bad++) {
        req(4, "SCAN");
        w_nil(&w), w_nil(&w), w_uint(&w, bad ? 10001 : 0);
        xchg(fd, &w);
        expect_error(13, "count must be 1 to 10000", "SCAN count out of range");
    }
}

Test(spec, retain_refuses_zero_and_nil_means_no_limit, .init = start_plain, .fini = stop_plain)
{
    for (uint64_t ts = 1; ts <= 3; ts++)
        put("r", "v", ts, true, 0);
    req(3, "RETAIN");
    w_bin(&w, "r"), w_uint(&w, 0);
    xchg(fd, &w);
    expect_error(13, "versions must be at least 1", "RETAIN versions 0");
    req(4, "RETAIN");
    w_bin(&w, "r"), w_nil(&w), w_uint(&w, 0);
    xchg(fd, &w);
    expect_error(13, "age must be at least 1", "RETAIN age 0");

    retain("r", 2);
    req(2, "POLICY");
    w_bin(&w, "r");
    xchg(fd, &w);
    want.n = 0;
    w_arr(&want, 5), w_uint(&want, 0), w_uint(&want, 2), w_nil(&want), w_bool(&want, true);
    w_uint(&want, 2);
    expect_reply(&want, "POLICY after RETAIN r 2");
    req(4, "RETAIN"); /* nil, nil: back to the server's default */
    w_bin(&w, "r"), w_nil(&w), w_nil(&w);
    xchg(fd, &w);
    cr_assert_eq(reply[1], 0);
    req(2, "POLICY");
    w_bin(&w, "r");
    xchg(fd, &w);
    want.n = 0;
    w_arr(&want, 5), w_uint(&want, 0), w_nil(&want), w_nil(&want), w_bool(&want, false);
    w_uint(&want, 2);
    expect_reply(&want, "POLICY after clearing: the horizon stays");
}

Test(spec, an_oversized_auth_secret_is_too_large_and_the_connection_stays, .fini = teardown)
{
    tkvd_start(&d, (const char *const[]){"--requirepass", "s3cr3", NULL});
    fd = tkvd_raw(&d);
    char big[514];
    memset(big, 's', 513);
    big[513] = '\0';
    req(2, "AUTH");
    w_binn(&w, big, 513);
    xchg(fd, &w);
    expect_error(12, "512", "AUTH with a 513-byte secret");
    req(2, "AUTH");
    w_bin(&w, "s3cr3");
    xchg(fd, &w);
    cr_assert(reply_len == 2 && reply[0] == 0x91 && reply[1] == 0, "AUTH after it");
    close(fd);
}

/* ---- answers that must not depend on when the sweep runs ------------------- */

Test(spec, del_counts_only_visible_versions, .init = start_plain, .fini = stop_plain)
{
    put("x", "old", 10, true, 1); /* expired a microsecond after it was written */
    put("x", "new", 20, true, 0);
    usleep(2000);
    cr_assert_eq(del_all("x"), 1, "an expired version is not there to remove");

    for (uint64_t ts = 1; ts <= 3; ts++)
        put("r", "v", ts, true, 0);
    retain("r", 1);
    cr_assert_eq(del_all("r"), 1, "versions RETAIN removed are not there to remove");
}

Test(spec, put_without_ts_ignores_expired_versions, .init = start_plain, .fini = stop_plain)
{
    uint64_t now = put("clock", "v", 0, false, 0);
    uint64_t future = now + 3600000000u;
    put("f", "v", future, true, 1); /* an hour ahead, expired at once */
    usleep(2000);
    uint64_t got = put("f", "v", 0, false, 0);
    cr_assert_lt(got, future, "PUT without ts went after an expired version (%llu)",
                 (unsigned long long)got);
    cr_assert_gt(got, now);
}

/* ---- MGET and the frame bound ------------------------------------------------ */

static void start_small_frames(void)
{
    tkvd_start(&d, (const char *const[]){"--max-frame", "64kb", "--max-value", "32kb", NULL});
    fd = tkvd_raw(&d);
}

Test(spec, mget_stops_at_the_frame_size_and_says_so, .init = start_small_frames, .fini = stop_plain)
{
    static char big[30001];
    char key[16];
    memset(big, 'v', 30000);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "big%d", i);
        put(key, big, 1, true, 0);
    }
    int from = 0, calls = 0;
    while (from < 5) {
        req(3, "MGET");
        w_nil(&w), w_arr(&w, (uint32_t)(5 - from));
        for (int i = from; i < 5; i++)
            snprintf(key, sizeof key, "big%d", i), w_bin(&w, key);
        xchg(fd, &w);
        cr_assert_leq(reply_len, 65536, "an MGET reply above --max-frame");
        tkv_mp m;
        uint32_t n, got;
        uint64_t st;
        bool truncated;
        tkv_mp_init(&m, reply, (size_t)reply_len);
        cr_assert(tkv_mp_read_array(&m, &n) == 0 && n == 3 && tkv_mp_read_uint(&m, &st) == 0 &&
                      st == 0 && tkv_mp_read_array(&m, &got) == 0,
                  "MGET: malformed reply");
        cr_assert(got >= 1 && got <= (uint32_t)(5 - from), "MGET answered %u keys", got);
        for (uint32_t i = 0; i < got; i++)
            cr_assert_eq(tkv_mp_skip(&m), 0);
        cr_assert_eq(tkv_mp_read_bool(&m, &truncated), 0, "MGET: no truncated flag");
        cr_assert_eq(truncated, got < (uint32_t)(5 - from));
        from += (int)got;
        calls++;
    }
    cr_assert_geq(calls, 3, "five 30000-byte answers need at least three 64 KiB replies");
}
