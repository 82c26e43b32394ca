/*
 * test_slowlog.c - the slow log's ring (server/slowlog.h) against a model:
 * every entry ever added, in order; the log must answer the newest
 * max_len of them, newest first, through the reply the client decodes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "reply.h"
#include "slowlog.h"

static tkv_rep decode_get(const tkv_buf *b)
{
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(TKV_CMD_SLOWLOG, b->data + 4, b->len - 4, &rep), 0, "%s", rep.what);
    return rep;
}

Test(slowlog, keeps_the_newest_in_order_across_wraps)
{
    const uint32_t cap = 5;
    tkv_slowlog *s = tkv_slowlog_new(0, cap);
    cr_assert(s);
    for (uint64_t i = 1; i <= 23; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "key%llu", (unsigned long long)i);
        tkv_slowlog_add(s, 1000 + i, i * 10, i % 2 ? TKV_CMD_GET : TKV_CMD_PUT,
                        (tkv_span){(const uint8_t *)key, (uint32_t)n}, "127.0.0.1:1");
        uint32_t want = i < cap ? (uint32_t)i : cap;
        cr_assert_eq(tkv_slowlog_len(s), want);
        tkv_buf b = {0};
        cr_assert_eq(tkv_slowlog_reply(s, 100, 1u << 20, &b), 0);
        tkv_rep rep = decode_get(&b);
        cr_assert_eq(rep.u, want);
        cr_assert_eq(rep.list.n, want);
        tkv_rep_slow e;
        for (uint64_t id = i; tkv_rep_next_slow(&rep.list, &e); id--) {
            n = snprintf(key, sizeof key, "key%llu", (unsigned long long)id);
            cr_assert_eq(e.id, id);
            cr_assert_eq(e.time_us, 1000 + id);
            cr_assert_eq(e.duration_us, id * 10);
            cr_assert(e.cmd.len == 3 && memcmp(e.cmd.ptr, id % 2 ? "GET" : "PUT", 3) == 0);
            cr_assert(e.key.len == (uint32_t)n && memcmp(e.key.ptr, key, (size_t)n) == 0);
            cr_assert_eq(e.key_len, (uint64_t)n);
        }
        tkv_buf_deinit(&b);
    }
    cr_assert_eq(tkv_slowlog_reset(s), cap);
    cr_assert_eq(tkv_slowlog_len(s), 0);
    tkv_slowlog_add(s, 1, 1, TKV_CMD_DEL, (tkv_span){NULL, 0}, "c");
    tkv_buf b = {0};
    cr_assert_eq(tkv_slowlog_reply(s, 10, 1u << 20, &b), 0);
    tkv_rep rep = decode_get(&b);
    tkv_rep_slow e;
    cr_assert(tkv_rep_next_slow(&rep.list, &e));
    cr_assert_eq(e.id, 24, "ids go on after a reset");
    cr_assert_eq(e.key.len, 0, "DEL without a key: empty");
    tkv_buf_deinit(&b);
    tkv_slowlog_free(s);
}

Test(slowlog, cuts_long_keys_and_fits_the_frame)
{
    tkv_slowlog *s = tkv_slowlog_new(0, 1000);
    uint8_t key[500];
    memset(key, 'x', sizeof key);
    char client[100];
    memset(client, 'c', sizeof client - 1);
    client[sizeof client - 1] = '\0';
    for (int i = 0; i < 1000; i++)
        tkv_slowlog_add(s, 1, 1, TKV_CMD_MGET, (tkv_span){key, sizeof key}, client);
    tkv_buf b = {0};
    cr_assert_eq(tkv_slowlog_reply(s, UINT64_MAX, 4096, &b), 0);
    cr_assert_leq(b.len - 4, 4096, "the reply stays within max_reply");
    tkv_rep rep = decode_get(&b);
    cr_assert_eq(rep.u, 1000);
    cr_assert(rep.list.n > 0 && rep.list.n < 1000, "%u entries", rep.list.n);
    tkv_rep_slow e;
    cr_assert(tkv_rep_next_slow(&rep.list, &e));
    cr_assert_eq(e.key.len, TKV_SLOWLOG_KEY_MAX);
    cr_assert_eq(e.key_len, sizeof key);
    cr_assert_eq(e.client.len, 63, "the address as the connection keeps it, at most 63 bytes");
    tkv_buf_deinit(&b);
    tkv_slowlog_free(s);
}

Test(slowlog, thresholds_and_an_empty_ring)
{
    tkv_slowlog *off = tkv_slowlog_new(-1, 4), *all = tkv_slowlog_new(0, 4),
                *slow = tkv_slowlog_new(100, 4), *none = tkv_slowlog_new(0, 0);
    cr_assert(!tkv_slowlog_wants(off, UINT64_MAX));
    cr_assert(tkv_slowlog_wants(all, 0));
    cr_assert(!tkv_slowlog_wants(slow, 99) && tkv_slowlog_wants(slow, 100));
    tkv_slowlog_add(none, 1, 1, TKV_CMD_GET, (tkv_span){(const uint8_t *)"k", 1}, "c");
    cr_assert_eq(tkv_slowlog_len(none), 0, "max-len 0 keeps nothing");
    tkv_buf b = {0};
    cr_assert_eq(tkv_slowlog_reply(none, 10, 1u << 20, &b), 0);
    tkv_rep rep = decode_get(&b);
    cr_assert(rep.u == 0 && rep.list.n == 0);
    tkv_buf_deinit(&b);
    tkv_slowlog_free(off);
    tkv_slowlog_free(all);
    tkv_slowlog_free(slow);
    tkv_slowlog_free(none);
    tkv_slowlog_free(NULL);
}
