/*
 * test_client.c - libtkvclient against the real tkvd where the library, not
 * the server, decides what the caller sees: a request over the server's
 * frame limit is answered (TOO_LARGE) and then the server closes, usually
 * while the client is still sending; the caller must get that answer, not
 * "Broken pipe".
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static tkvd d;

static void teardown(void) { tkvd_cleanup(&d); }

static void start_small_frames(void)
{
    const char *args[] = {"--max-frame", "64kb", "--max-value", "60kb", NULL};
    tkvd_start(&d, args);
}

/* Far more than socket buffers hold, so the server closes mid-send. */
enum { BIG = 20 * 1024 * 1024 };

Test(client, oversize_request_reports_the_servers_answer, .init = start_small_frames,
     .fini = teardown)
{
    char *big = calloc(1, BIG);
    cr_assert(big);
    /* Whether the client is still sending when the server closes depends on
     * timing: try enough times that both orders occur. */
    for (int i = 0; i < 8; i++) {
        tkv_ctx *c = tkvd_client(&d);
        int rc = tkv_put(c, "k", 1, big, BIG, 1, NULL);
        cr_assert_eq(rc, TKV_ERR);
        cr_assert_eq(tkv_err(c), TKV_EK_SERVER, "round %d: %s", i, tkv_errstr(c));
        cr_assert_eq(tkv_server_code(c), TKV_SC_TOO_LARGE);
        cr_assert(strstr(tkv_errstr(c), "exceeds the maximum of 65536"), "errstr: %s",
                  tkv_errstr(c));
        /* The server has closed: the next call says so. */
        cr_assert_eq(tkv_ping(c), TKV_ERR);
        cr_assert(tkv_err(c) == TKV_EK_EOF || tkv_err(c) == TKV_EK_IO, "%s", tkv_errstr(c));
        tkv_free(c);
    }
    free(big);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "k", 1, "small", 5, 1, NULL), TKV_OK, "%s", tkv_errstr(c));
    tkv_free(c);
}

Test(client, pipelined_replies_before_an_oversize_request_still_arrive, .init = start_small_frames,
     .fini = teardown)
{
    char *big = calloc(1, BIG);
    cr_assert(big);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_append_put(c, "a", 1, "1", 1, 1), TKV_OK);
    cr_assert_eq(tkv_append_put(c, "b", 1, big, BIG, 1), TKV_OK);
    cr_assert_eq(tkv_append_put(c, "c", 1, "3", 1, 1), TKV_OK);
    tkv_reply r;
    cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_read_reply(c, &r), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_TOO_LARGE, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_read_reply(c, &r), TKV_ERR, "nothing after the refusal was served");
    cr_assert(tkv_err(c) == TKV_EK_EOF || tkv_err(c) == TKV_EK_IO, "%s", tkv_errstr(c));
    tkv_free(c);
    free(big);
    c = tkvd_client(&d);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "a", 1, TKV_LATEST, &v), TKV_OK, "the first PUT was applied");
    cr_assert_eq(tkv_get(c, "c", 1, TKV_LATEST, &v), TKV_NOT_FOUND, "the third was not");
    tkv_free(c);
}

/* An MGET whose answers do not fit one frame: the server answers the first
 * keys and says so; tkv_mget asks again for the rest and returns them all,
 * values intact, misses in place. */
Test(client, mget_over_the_frame_limit_returns_every_answer, .init = start_small_frames,
     .fini = teardown)
{
    enum { KEYS = 12, VAL = 50 * 1000 };
    static char vals[KEYS][VAL];
    char names[KEYS][16];
    tkv_bytes keys[KEYS];
    tkv_ctx *c = tkvd_client(&d);
    for (int i = 0; i < KEYS; i++) {
        snprintf(names[i], sizeof names[i], "big%02d", i);
        keys[i] = (tkv_bytes){names[i], strlen(names[i])};
        memset(vals[i], 'a' + i, VAL);
        if (i == 5)
            continue;                  /* a miss in the middle */
        size_t len = i == 7 ? 0 : VAL; /* and an empty value */
        cr_assert_eq(tkv_put(c, names[i], strlen(names[i]), vals[i], len, 10 + (uint64_t)i, NULL),
                     TKV_OK, "%s", tkv_errstr(c));
    }
    /* The server cuts the reply short... */
    tkv_reply r;
    cr_assert_eq(tkv_append_mget(c, TKV_LATEST, keys, KEYS), TKV_OK);
    cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
    cr_assert(r.truncated, "12 x 50 kB cannot fit a 64 kB frame");
    cr_assert(r.n >= 1 && r.n < KEYS, "answered %zu", r.n);
    /* ... and tkv_mget completes it. */
    const tkv_version *v;
    cr_assert_eq(tkv_mget(c, TKV_LATEST, keys, KEYS, &v), TKV_OK, "%s", tkv_errstr(c));
    for (int i = 0; i < KEYS; i++) {
        if (i == 5) {
            cr_assert_eq(v[i].status, TKV_NOT_FOUND);
            cr_assert_eq(v[i].miss, TKV_MISS_NO_KEY);
            continue;
        }
        cr_assert_eq(v[i].status, TKV_OK, "key %d", i);
        cr_assert_eq(v[i].ts, 10 + (uint64_t)i);
        size_t len = i == 7 ? 0 : VAL;
        cr_assert_eq(v[i].len, len, "key %d: %zu bytes", i, v[i].len);
        cr_assert_eq(memcmp(v[i].value, vals[i], len), 0, "key %d: wrong bytes", i);
    }
    tkv_free(c);

    /* tkvctl prints one line per key. */
    char port[16];
    snprintf(port, sizeof port, "%u", d.port);
    const char *argv[] = {getenv("TKVCTL"), "-p",    port,    "--max-frame", "64kb",
                          "mget",           "big00", "big05", "big11",       NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_eq(rc, 1, "a miss exits 1: %s", err);
    int lines = 0;
    for (char *p = out; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 3, "three lines:\n%s", out);
    cr_assert(strstr(out, "big11\t21\t"), "%s", out);
    free(out);
    free(err);
}

/* An MPUT whose second item cannot be staged after its first (the first
 * wrote the key at the largest timestamp; the second has no timestamp) is
 * refused before anything is staged: the other writes of the same batch -
 * here a PUT pipelined just before it - are not rolled back with it. */
Test(client, a_refused_mput_does_not_fail_the_writes_beside_it, .init = start_small_frames,
     .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    tkv_item items[2] = {
        {.key = {"k", 1}, .value = {"a", 1}, .ts = UINT64_MAX, .has_ts = 1},
        {.key = {"k", 1}, .value = {"b", 1}},
    };
    for (int round = 0; round < 20; round++) {
        char key[16];
        int kn = snprintf(key, sizeof key, "x%d", round);
        /* One write: both frames are served in the same loop turn. */
        cr_assert_eq(tkv_append_put(c, key, (size_t)kn, "v", 1, 5), TKV_OK);
        cr_assert_eq(tkv_append_mput(c, items, 2), TKV_OK);
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "round %d: the PUT beside it: %s", round,
                     tkv_errstr(c));
        cr_assert_eq(tkv_read_reply(c, &r), TKV_ERR);
        cr_assert_eq(tkv_server_code(c), TKV_SC_OUT_OF_RANGE, "%s", tkv_errstr(c));
        tkv_version v;
        cr_assert_eq(tkv_get(c, key, (size_t)kn, TKV_LATEST, &v), TKV_OK);
        cr_assert_eq(tkv_get(c, "k", 1, TKV_LATEST, &v), TKV_NOT_FOUND, "nothing was written");
    }
    tkv_free(c);
}
