/*
 * test_changes.c - the change feed's decoding: the engine's own committed
 * batches turned into changes (server/changes.c), the filters of a prefix
 * and an as-of watch, and the push frames (protocol/watch.c) encoded,
 * decoded, and refused when cut short at any byte.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../common/tmpdir.h"
#include "changes.h"
#include "engine.h"
#include "frame.h"
#include "keycodec.h"
#include "watch.h"

static tkv_engine *e;
static char *dir;

static void open_engine(void)
{
    char err[256];
    dir = tmpdir_make("changes");
    tkv_engine_opts o = {.dir = dir, .repl_feed = true}; /* batches become frames */
    cr_assert_eq(tkv_engine_open(&o, &e, err, sizeof err), 0, "%s", err);
}

static void close_engine(void)
{
    tkv_engine_close(e);
    tmpdir_remove(dir);
}

static void put(const char *k, const char *v, uint64_t ts, uint64_t ttl)
{
    uint64_t got;
    bool dirty;
    cr_assert_eq(tkv_engine_put(e, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v), ts,
                                true, ttl, &got, &dirty),
                 TKV_E_OK);
}

/* A decoded push, with its key and value copied out. */
typedef struct seen {
    tkv_wchange c;
    char key[32], value[32];
} seen;

/* Commits what is staged and decodes the pushes its batches give under f
 * into out; returns how many. Checks the offsets and `left` counts. */
static size_t commit_and_decode(const tkv_wfilter *f, seen *out, size_t max)
{
    cr_assert_geq(tkv_engine_commit(e), 0);
    const uint8_t *fr;
    size_t n, k = 0;
    cr_assert_eq(tkv_engine_feed_take(e, &fr, &n), 1);
    tkv_buf scratch = {0}, pushes = {0};
    for (size_t at = 0; at < n;) {
        uint32_t len = tkv_load_be32(fr + at);
        uint64_t end;
        long got = tkv_changes_of_batch(fr + at + 4, len, f, &scratch, &pushes, &end);
        cr_assert_geq(got, 0);
        at += 4 + len;
        uint64_t j = 0;
        for (size_t p = 0; p < pushes.len; k++, j++) {
            uint32_t plen = tkv_load_be32(pushes.data + p);
            cr_assert_lt(k, max);
            seen *s = &out[k];
            cr_assert_eq(tkv_watch_decode(pushes.data + p + 4, plen, &s->c), 0);
            cr_assert_eq(s->c.offset, end);
            cr_assert_eq(s->c.left, (uint64_t)got - 1 - j, "left counts down to 0");
            snprintf(s->key, sizeof s->key, "%.*s", (int)s->c.klen, (const char *)s->c.key);
            if (s->c.value)
                snprintf(s->value, sizeof s->value, "%.*s", (int)s->c.vlen,
                         (const char *)s->c.value);
            p += 4 + plen;
        }
        pushes.len = 0;
    }
    tkv_buf_deinit(&scratch);
    tkv_buf_deinit(&pushes);
    return k;
}

Test(changes, a_batch_becomes_its_changes_in_order_and_other_keys_stay_out, .init = open_engine,
     .fini = close_engine)
{
    put("a1", "one", 10, 0);
    put("b", "other", 11, 0);
    put("a2", "two", 20, 0);
    uint64_t ts;
    bool dirty;
    cr_assert_eq(tkv_engine_tombstone(e, (const uint8_t *)"a1", 2, 30, true, &ts, &dirty),
                 TKV_E_OK);
    tkv_wfilter f = {.prefix = (const uint8_t *)"a", .plen = 1};
    seen s[16];
    size_t n = commit_and_decode(&f, s, 16);
    cr_assert_eq(n, 3);
    cr_assert_eq(s[0].c.kind, TKV_WK_WRITE);
    cr_assert_str_eq(s[0].key, "a1");
    cr_assert_eq(s[0].c.ts, 10);
    cr_assert_str_eq(s[0].value, "one");
    cr_assert_eq(s[0].c.expires, 0);
    cr_assert_str_eq(s[1].key, "a2");
    cr_assert_str_eq(s[1].value, "two");
    cr_assert_eq(s[2].c.kind, TKV_WK_WRITE);
    cr_assert_str_eq(s[2].key, "a1");
    cr_assert_eq(s[2].c.ts, 30);
    cr_assert_null(s[2].c.value, "a tombstone has no value");
    cr_assert_eq(s[0].c.left, 2);
    cr_assert_eq(s[2].c.left, 0);
}

Test(changes, expiry_del_and_retention_are_changes_too, .init = open_engine, .fini = close_engine)
{
    put("k", "v1", 100, 0);
    put("k", "v2", 200, 0);
    tkv_wfilter all = {0};
    seen s[16];
    cr_assert_eq(commit_and_decode(&all, s, 16), 2);

    put("k", "v3", 300, 60000000);
    size_t n = commit_and_decode(&all, s, 16);
    /* the version, and the metadata record now noting an expiring version */
    cr_assert_geq(n, 1);
    cr_assert_eq(s[0].c.kind, TKV_WK_WRITE);
    cr_assert_neq(s[0].c.expires, 0, "the expiry travels with the version");

    tkv_policy p = {.versions = 1};
    tkv_retain_result rr;
    bool dirty;
    cr_assert_eq(tkv_engine_retain(e, (const uint8_t *)"k", 1, &p, false, &rr, &dirty), TKV_E_OK);
    n = commit_and_decode(&all, s, 16);
    cr_assert_geq(n, 1);
    bool meta = false;
    for (size_t i = 0; i < n; i++)
        if (s[i].c.kind == TKV_WK_META) {
            meta = true;
            cr_assert_eq(s[i].c.keep_versions, 1);
            cr_assert_eq(s[i].c.horizon, 300);
        }
    cr_assert(meta, "RETAIN pushes the key's new horizon and policy");

    uint64_t removed;
    cr_assert_eq(tkv_engine_del(e, (const uint8_t *)"k", 1, &removed, &dirty), TKV_E_OK);
    n = commit_and_decode(&all, s, 16);
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(s[i].key, "k");
        cr_assert_neq(s[i].c.kind, TKV_WK_REMOVE, "DEL pushes no version one by one");
        if (s[i].c.kind == TKV_WK_DROP)
            dropped++;
    }
    cr_assert_eq(dropped, 1, "DEL removes every stored version at once: one push");
    cr_assert_eq(removed, 1, "one version was visible (RETAIN kept the newest)");
}

Test(changes, an_as_of_watch_passes_only_what_could_change_its_answer, .init = open_engine,
     .fini = close_engine)
{
    put("k", "past", 50, 0);
    put("k", "future", 150, 0);
    put("kk", "other key", 50, 0);
    tkv_wfilter f = {.prefix = (const uint8_t *)"k", .plen = 1, .asof = true, .at = 100};
    seen s[16];
    size_t n = commit_and_decode(&f, s, 16);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].c.ts, 50);
    cr_assert_str_eq(s[0].key, "k");
    put("k", "exactly at", 100, 0);
    n = commit_and_decode(&f, s, 16);
    cr_assert_eq(n, 1, "a version at T itself is the answer as of T");
}

Test(changes, pushes_round_trip_and_every_cut_is_refused)
{
    tkv_wchange in[4] = {
        {.kind = TKV_WK_WRITE,
         .offset = 1234567,
         .left = 2,
         .key = (const uint8_t *)"key",
         .klen = 3,
         .ts = UINT64_MAX - 1,
         .value = (const uint8_t *)"",
         .vlen = 0,
         .expires = 99},
        {.kind = TKV_WK_REMOVE,
         .offset = 1234567,
         .left = 1,
         .key = (const uint8_t *)"\0k",
         .klen = 2,
         .ts = 7},
        {.kind = TKV_WK_DROP, .offset = 1234567, .key = (const uint8_t *)"gone", .klen = 4},
        {.kind = TKV_WK_META,
         .offset = 1234567,
         .key = (const uint8_t *)"m",
         .klen = 1,
         .horizon = 5,
         .keep_versions = 3,
         .keep_age = 1000000},
    };
    for (int i = 0; i < 4; i++) {
        tkv_buf b = {0};
        cr_assert_eq(tkv_watch_put(&b, &in[i]), 0);
        uint32_t len = tkv_load_be32(b.data);
        cr_assert_eq(len + 4, b.len);
        tkv_wchange out;
        cr_assert_eq(tkv_watch_decode(b.data + 4, len, &out), 0);
        cr_assert_eq(out.kind, in[i].kind);
        cr_assert_eq(out.offset, in[i].offset);
        cr_assert_eq(out.left, in[i].left);
        cr_assert_eq(out.klen, in[i].klen);
        cr_assert_eq(memcmp(out.key, in[i].key, out.klen), 0);
        cr_assert_eq(out.ts, in[i].ts);
        cr_assert_eq(out.expires, in[i].expires);
        cr_assert_eq(out.horizon, in[i].horizon);
        cr_assert_eq(out.keep_versions, in[i].keep_versions);
        cr_assert_eq(out.keep_age, in[i].keep_age);
        cr_assert_eq(out.value == NULL, in[i].value == NULL, "an empty value is no tombstone");
        for (uint32_t cut = 0; cut < len; cut++)
            cr_assert_eq(tkv_watch_decode(b.data + 4, cut, &out), -1, "cut at %u", cut);
        tkv_buf_deinit(&b);
    }
    /* An error reply ends a watch; the decoder says so instead of failing. */
    const uint8_t err[] = {0x92, 21, 0xa1, 'x'};
    tkv_wchange out;
    cr_assert_eq(tkv_watch_decode(err, sizeof err, &out), 1);
}

Test(changes, a_malformed_batch_is_refused_not_half_pushed)
{
    tkv_buf b = {0}, scratch = {0}, out = {0};
    tkv_repl_wr w;
    uint8_t enc[64];
    const uint8_t blob[] = {0x00, 'v'};
    tkv_repl_begin(&w, &b, TKV_RF_BATCH, 40);
    size_t n = tkv_kc_encode(enc, (const uint8_t *)"good", 4, 1);
    tkv_repl_add(&w, enc, n, blob, sizeof blob);
    enc[2] = 0x00; /* an escape that is neither 0xff nor a terminator */
    enc[3] = 0x07;
    tkv_repl_add(&w, enc, n, blob, sizeof blob);
    cr_assert_eq(tkv_repl_end(&w), 0);
    uint64_t end;
    tkv_wfilter all = {0};
    cr_assert_eq(tkv_changes_of_batch(b.data + 4, b.len - 4, &all, &scratch, &out, &end), -1);
    cr_assert_eq(out.len, 0, "nothing of a malformed batch is pushed");
    cr_assert_eq(end, 40 + b.len, "the batch ends where its bytes do");
    /* Server state ('m', 's' records) is no change. */
    b.len = 0;
    tkv_repl_begin(&w, &b, TKV_RF_BATCH, 0);
    tkv_repl_add(&w, "mstate", 6, "x", 1);
    tkv_repl_add(&w, "sindex", 6, NULL, 0);
    cr_assert_eq(tkv_repl_end(&w), 0);
    cr_assert_eq(tkv_changes_of_batch(b.data + 4, b.len - 4, &all, &scratch, &out, &end), 0);
    /* Every cut of a batch is refused. */
    for (size_t cut = 0; cut < b.len - 4; cut++)
        cr_assert_eq(tkv_changes_of_batch(b.data + 4, cut, &all, &scratch, &out, &end), -1);
    tkv_buf_deinit(&b);
    tkv_buf_deinit(&scratch);
    tkv_buf_deinit(&out);
}
