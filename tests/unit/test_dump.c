/*
 * test_dump.c - the engine's dumps (server/dump.h) on a fake clock: what a
 * dump yields is the visible state - versions below a horizon and versions
 * expired by `at` left out, keys with nothing visible left out unless they
 * keep a policy or a horizon - and it does not depend on whether the sweep
 * has removed what is invisible; a dump sees only what was committed when
 * it opened.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../common/tmpdir.h"
#include "dump.h"
#include "engine.h"

static tkv_engine *e;
static char *dir;
static uint64_t now_us = 1000;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return now_us;
}

static void open_engine(void)
{
    char err[256];
    dir = tmpdir_make("dump");
    now_us = 1000;
    tkv_engine_opts o = {.dir = dir, .clock = fake_clock};
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

/* The dump as text: "K key own/versions/age/horizon" and "V ts kind
 * expires value" lines. */
static void dump_text(uint64_t at, char *out, size_t cap)
{
    tkv_eng_dump *d = tkv_engine_dump_open(e, at);
    cr_assert_not_null(d, "%s", tkv_engine_errmsg(e));
    size_t n = 0;
    out[0] = 0;
    tkv_dump_rec r;
    int rc;
    while ((rc = tkv_engine_dump_next(d, &r)) > 0) {
        if (r.is_key)
            n += (size_t)snprintf(out + n, cap - n, "K %.*s %d/%u/%llu/%llu\n", (int)r.klen,
                                  (const char *)r.key, r.own_policy, r.policy.versions,
                                  (unsigned long long)r.policy.age_us,
                                  (unsigned long long)r.horizon);
        else
            n += (size_t)snprintf(out + n, cap - n, "V %llu %c %llu %.*s\n",
                                  (unsigned long long)r.ts, r.tombstone ? 'T' : 'v',
                                  (unsigned long long)r.expires, (int)r.vlen,
                                  r.value ? (const char *)r.value : "");
        cr_assert_lt(n, cap);
    }
    cr_assert_eq(rc, 0, "%s", tkv_engine_dump_error(d));
    tkv_engine_dump_close(e, d);
}

static void load(void)
{
    put("a", "a1", 10, 0);
    put("a", "a2", 20, 0);
    put("b", "gone", 5, 100); /* expires at 1100 */
    put("c", "c1", 1, 0);
    put("c", "c2", 2, 0);
    put("c", "c3", 3, 0);
    tkv_retain_result rr;
    tkv_policy p = {1, 0};
    bool dirty;
    cr_assert_eq(tkv_engine_retain(e, (const uint8_t *)"c", 1, &p, false, &rr, &dirty), TKV_E_OK);
    uint64_t ts;
    cr_assert_eq(tkv_engine_tombstone(e, (const uint8_t *)"d", 1, 7, true, &ts, &dirty), TKV_E_OK);
    put("e", "soon", 9, 50); /* expires at 1050: only what it leaves counts */
    cr_assert_eq(tkv_engine_commit(e), 0);
}

static const char *const want_at_1000 = "K a 0/0/0/0\n"
                                        "V 20 v 0 a2\n"
                                        "V 10 v 0 a1\n"
                                        "K b 0/0/0/0\n"
                                        "V 5 v 1100 gone\n"
                                        "K c 1/1/0/3\n"
                                        "V 3 v 0 c3\n"
                                        "K d 0/0/0/0\n"
                                        "V 7 T 0 \n"
                                        "K e 0/0/0/0\n"
                                        "V 9 v 1050 soon\n";

static const char *const want_at_1100 = "K a 0/0/0/0\n"
                                        "V 20 v 0 a2\n"
                                        "V 10 v 0 a1\n"
                                        "K c 1/1/0/3\n"
                                        "V 3 v 0 c3\n"
                                        "K d 0/0/0/0\n"
                                        "V 7 T 0 \n";

Test(dump, yields_the_visible_state_in_key_order, .init = open_engine, .fini = close_engine)
{
    load();
    char got[2048];
    dump_text(1000, got, sizeof got);
    cr_assert_str_eq(got, want_at_1000);
    /* Judged later: b and e have expired and leave nothing; c keeps its
     * policy and horizon whatever happens to its versions. */
    dump_text(1100, got, sizeof got);
    cr_assert_str_eq(got, want_at_1100);
}

Test(dump, does_not_depend_on_the_sweep, .init = open_engine, .fini = close_engine)
{
    load();
    now_us = 2000;
    char before[2048], after[2048];
    dump_text(1100, before, sizeof before);
    /* The sweep deletes b, e and c's versions below its horizon. */
    for (int i = 0; i < 10 && !tkv_engine_sweep(e, 1000); i++)
        ;
    tkv_engine_stats st;
    tkv_engine_stats_get(e, &st);
    cr_assert_geq(st.swept_expired, 2);
    cr_assert_geq(st.swept_retained, 2);
    dump_text(1100, after, sizeof after);
    cr_assert_str_eq(after, before);
}

Test(dump, sees_the_committed_state_of_its_moment, .init = open_engine, .fini = close_engine)
{
    load();
    tkv_eng_dump *d = tkv_engine_dump_open(e, 1000);
    cr_assert_not_null(d);
    /* Written after the dump opened, and one staged but not committed
     * when it opened: neither is in it. */
    put("a", "later", 30, 0);
    cr_assert_eq(tkv_engine_commit(e), 0);
    put("zz", "later", 1, 0);
    tkv_dump_rec r;
    int rc, n = 0;
    while ((rc = tkv_engine_dump_next(d, &r)) > 0) {
        cr_assert(r.is_key || r.ts != 30);
        cr_assert(!r.is_key || r.klen != 2);
        n++;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(n, 11);
    tkv_engine_dump_close(e, d);
}
