/*
 * test_engine.c - engine behaviour the randomized model does not pin down:
 * the epochs replies wait for, batches in flight, and rollbacks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "engine.h"
#ifdef TKV_STORE_MEMORY
#include "store_mem.h"
#endif

static tkv_engine *e;
static char *dir;

static void open_engine(void)
{
    char err[256];
    dir = tmpdir_make("engine");
    tkv_engine_opts o = {.dir = dir};
    cr_assert_eq(tkv_engine_open(&o, &e, err, sizeof err), 0, "%s", err);
}

static void close_engine(void)
{
    tkv_engine_close(e);
    tmpdir_remove(dir);
}

static void put(const char *k, const char *v, uint64_t ts)
{
    uint64_t got;
    bool dirty;
    cr_assert_eq(tkv_engine_put(e, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v), ts,
                                true, 0, &got, &dirty),
                 TKV_E_OK);
    cr_assert(dirty);
}

Test(engine, a_read_of_the_batch_in_flight_is_settled_with_it, .init = open_engine,
     .fini = close_engine)
{
    uint64_t failed;
    put("k", "v", 1);
    uint64_t write_epoch = tkv_engine_epoch(e);
    cr_assert_lt(tkv_engine_settled_epoch(e), write_epoch, "a staged write is not settled");
    cr_assert_eq(tkv_engine_commit_start(e, &failed), 1);
    /* The batch is in flight; a read sees its write and is tagged with the
     * epoch current now - the new, empty staging batch. */
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, (const uint8_t *)"k", 1, 5, &a), TKV_E_OK);
    cr_assert(a.dirty, "the read depends on the batch in flight");
    uint64_t read_epoch = tkv_engine_epoch(e);
    cr_assert_gt(read_epoch, write_epoch);
    cr_assert_lt(tkv_engine_settled_epoch(e), write_epoch);
    cr_assert_eq(tkv_engine_commit_finish(e, &failed), 1);
    /* Nothing was staged after it: the read's epoch is settled too. */
    cr_assert_geq(tkv_engine_settled_epoch(e), read_epoch,
                  "a reply waiting for an empty batch would wait forever");
}

Test(engine, writes_staged_during_a_flight_wait_for_their_own_batch, .init = open_engine,
     .fini = close_engine)
{
    uint64_t failed;
    put("a", "1", 1);
    cr_assert_eq(tkv_engine_commit_start(e, &failed), 1);
    put("b", "2", 1);
    uint64_t b_epoch = tkv_engine_epoch(e);
    cr_assert_eq(tkv_engine_commit_start(e, &failed), 0, "one batch in flight at a time");
    cr_assert_eq(tkv_engine_commit_finish(e, &failed), 1);
    cr_assert_lt(tkv_engine_settled_epoch(e), b_epoch, "b is still only staged");
    cr_assert_eq(tkv_engine_commit_start(e, &failed), 1);
    cr_assert_eq(tkv_engine_commit_finish(e, &failed), 1);
    cr_assert_geq(tkv_engine_settled_epoch(e), b_epoch);
    cr_assert(!tkv_engine_pending(e));
}

Test(engine, a_poisoned_batch_rolls_back_every_write_in_it, .init = open_engine,
     .fini = close_engine)
{
    uint64_t failed;
    put("kept", "v", 1);
    cr_assert_eq(tkv_engine_commit(e), 0);
    put("lost", "v", 1);
    put("kept", "w", 2);
    uint64_t epoch = tkv_engine_epoch(e);
    tkv_engine_poison(e, "test");
    cr_assert_eq(tkv_engine_commit_start(e, &failed), -1);
    cr_assert_eq(failed, epoch);
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, (const uint8_t *)"lost", 4, 9, &a), TKV_E_NOT_FOUND);
    cr_assert_eq(tkv_engine_get(e, (const uint8_t *)"kept", 4, 9, &a), TKV_E_OK);
    cr_assert_eq(a.ts, 1, "the rolled-back version at 2 is gone");
    tkv_engine_stats st;
    tkv_engine_stats_get(e, &st);
    cr_assert_eq(st.versions, 1);
    cr_assert_eq(st.keys, 1);
    cr_assert_eq(st.commit_errors, 1);
    /* The engine goes on: the next batch commits. */
    put("after", "v", 1);
    cr_assert_eq(tkv_engine_commit(e), 0);
}

/* ---- answers that must not depend on when the sweep runs --------------------
 * The engine below runs on a clock the test moves, and the sweep never runs:
 * each answer must already be what it is after the sweep. */

static uint64_t fake_now;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void open_clocked(void)
{
    char err[256];
    dir = tmpdir_make("engine");
    fake_now = 100;
    tkv_engine_opts o = {.dir = dir, .clock = fake_clock};
    cr_assert_eq(tkv_engine_open(&o, &e, err, sizeof err), 0, "%s", err);
}

#define K(s) (const uint8_t *)(s), strlen(s)

static uint64_t put_at(const char *k, uint64_t ts, bool has_ts, uint64_t ttl)
{
    uint64_t got;
    bool dirty;
    cr_assert_eq(tkv_engine_put(e, K(k), (const uint8_t *)"v", 1, ts, has_ts, ttl, &got, &dirty),
                 TKV_E_OK, "%s", tkv_engine_errmsg(e));
    return got;
}

static uint64_t del_all(const char *k)
{
    uint64_t removed;
    bool dirty;
    cr_assert_eq(tkv_engine_del(e, K(k), &removed, &dirty), TKV_E_OK);
    return removed;
}

Test(engine, del_counts_only_versions_still_visible, .init = open_clocked, .fini = close_engine)
{
    put_at("x", 10, true, 5); /* expires at 105 */
    put_at("x", 20, true, 0);
    cr_assert_eq(tkv_engine_commit(e), 0);
    fake_now = 200;
    cr_assert_eq(del_all("x"), 1, "an expired version is not there to remove");

    put_at("r", 1, true, 0);
    put_at("r", 2, true, 0);
    put_at("r", 3, true, 0);
    tkv_policy p = {.versions = 1};
    tkv_retain_result rr;
    bool dirty;
    cr_assert_eq(tkv_engine_retain(e, K("r"), &p, false, &rr, &dirty), TKV_E_OK);
    cr_assert_eq(rr.removable, 2);
    cr_assert_eq(del_all("r"), 1, "versions RETAIN removed are not there to remove");

    tkv_engine_stats st;
    cr_assert_eq(tkv_engine_commit(e), 0);
    tkv_engine_stats_get(e, &st);
    cr_assert_eq(st.versions, 0, "every stored version was deleted all the same");
    cr_assert_eq(st.keys, 0);
}

Test(engine, put_without_ts_ignores_expired_versions, .init = open_clocked, .fini = close_engine)
{
    put_at("x", 1000, true, 5); /* expires at 105 */
    cr_assert_eq(tkv_engine_commit(e), 0);
    fake_now = 200;
    cr_assert_eq(put_at("x", 0, false, 0), 200,
                 "an expired version in the future must not push the clock's timestamp");
}

Test(engine, put_without_ts_never_lands_below_the_horizon, .init = open_clocked,
     .fini = close_engine)
{
    put_at("x", 400, true, 0);
    put_at("x", 500, true, 50); /* expires at 150 */
    tkv_policy p = {.versions = 1};
    tkv_retain_result rr;
    bool dirty;
    cr_assert_eq(tkv_engine_retain(e, K("x"), &p, false, &rr, &dirty), TKV_E_OK);
    cr_assert_eq(rr.horizon, 500);
    cr_assert_eq(tkv_engine_commit(e), 0);
    fake_now = 200; /* 500 has expired: no visible version is left */
    cr_assert_eq(put_at("x", 0, false, 0), 500, "the clock is below the horizon: use it");
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, K("x"), TKV_ENG_TS_MAX, &a), TKV_E_OK);
    cr_assert_eq(a.ts, 500);
    cr_assert_eq(a.expires, 0, "the new version replaced the expired one");
}

/* ---- a sweep pass that stops inside a key and goes on at a later clock -----
 * Every horizon the sweep moves must be where the policy puts it at the
 * clock of the step that moves it, however the pass was cut into steps. */

static tkv_policy server_retain;

static void open_retaining(void)
{
    char err[256];
    dir = tmpdir_make("engine");
    fake_now = 100;
    tkv_engine_opts o = {.dir = dir, .clock = fake_clock, .retain = server_retain};
    cr_assert_eq(tkv_engine_open(&o, &e, err, sizeof err), 0, "%s", err);
}

static void open_keep_one(void)
{
    server_retain = (tkv_policy){.versions = 1};
    open_retaining();
}

static void open_keep_55us(void)
{
    server_retain = (tkv_policy){.age_us = 55};
    open_retaining();
}

static void sweep_to_the_end(void)
{
    for (int guard = 0; !tkv_engine_sweep(e, 1000); guard++)
        cr_assert_lt(guard, 100, "the pass never ended");
}

static uint64_t horizon_of(const char *k)
{
    tkv_eng_policy_info pi;
    cr_assert_eq(tkv_engine_policy(e, K(k), &pi), TKV_E_OK);
    return pi.horizon;
}

Test(engine, a_counted_version_that_expires_between_steps_is_counted_no_more, .init = open_keep_one,
     .fini = close_engine)
{
    put_at("k", 10, true, 0);
    put_at("k", 20, true, 50); /* expires at 150 */
    cr_assert_eq(tkv_engine_commit(e), 0);
    cr_assert(!tkv_engine_sweep(e, 1), "a step of one record stops inside the key");
    fake_now = 200; /* 20 has expired: the one version to keep is 10 */
    sweep_to_the_end();
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, K("k"), TKV_ENG_TS_MAX, &a), TKV_E_OK,
                 "the sweep removed the only version its policy keeps now");
    cr_assert_eq(a.ts, 10);
    tkv_engine_stats st;
    tkv_engine_stats_get(e, &st);
    cr_assert_eq(st.versions, 1, "only the expired version is gone");
    cr_assert_eq(st.swept_expired, 1);
}

Test(engine, an_age_horizon_that_passes_kept_versions_between_steps_is_applied_whole,
     .init = open_keep_55us, .fini = close_engine)
{
    put_at("k", 30, true, 0);
    put_at("k", 40, true, 0);
    put_at("k", 50, true, 0);
    cr_assert_eq(tkv_engine_commit(e), 0);
    /* At 100 the age horizon is 45: 50 is kept for being above it. */
    cr_assert(!tkv_engine_sweep(e, 2), "the step stops after the newest version");
    fake_now = 200; /* now it is 145: 50 is the version current at it */
    sweep_to_the_end();
    cr_assert_eq(horizon_of("k"), 50, "the horizon is where the policy puts it at 200");
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, K("k"), 45, &a), TKV_E_NOT_FOUND);
    tkv_engine_stats st;
    tkv_engine_stats_get(e, &st);
    cr_assert_eq(st.versions, 1, "40 and 30 are gone");
}

Test(engine, a_later_clock_that_changes_no_verdict_changes_nothing, .init = open_keep_one,
     .fini = close_engine)
{
    for (uint64_t ts = 1; ts <= 10; ts++)
        put_at("k", ts, true, 0);
    cr_assert_eq(tkv_engine_commit(e), 0);
    cr_assert(!tkv_engine_sweep(e, 3), "the step stops inside the key");
    fake_now = 200; /* no version expires and no age applies: nothing changes */
    sweep_to_the_end();
    cr_assert_eq(horizon_of("k"), 10);
    tkv_engine_stats st;
    tkv_engine_stats_get(e, &st);
    cr_assert_eq(st.versions, 1);
    cr_assert_eq(st.swept_retained, 9);
}

/* ---- the prefetch hint ------------------------------------------------------ */

Test(engine, prefetch_is_only_a_hint, .init = open_engine, .fini = close_engine)
{
    tkv_eng_kref none[] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"b", 1}};
    tkv_engine_prefetch(e, none, 2); /* an empty index */
    char key[TKV_ENG_PREFETCH_MAX + 8][8];
    tkv_eng_kref refs[TKV_ENG_PREFETCH_MAX + 8];
    for (int i = 0; i < TKV_ENG_PREFETCH_MAX + 8; i++) {
        snprintf(key[i], sizeof key[i], "k%d", i);
        refs[i] = (tkv_eng_kref){(const uint8_t *)key[i], strlen(key[i])};
        if (i % 2 == 0)
            put(key[i], "v", 1);
    }
    uint64_t removed;
    bool dirty;
    cr_assert_eq(tkv_engine_del(e, K("k0"), &removed, &dirty), TKV_E_OK);
    /* More keys than it uses, present, absent and just deleted. */
    tkv_engine_prefetch(e, refs, TKV_ENG_PREFETCH_MAX + 8);
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, K("k0"), 5, &a), TKV_E_NOT_FOUND);
    cr_assert_eq(tkv_engine_get(e, K("k1"), 5, &a), TKV_E_NOT_FOUND);
    cr_assert_eq(tkv_engine_get(e, K("k2"), 5, &a), TKV_E_OK);
    tkv_engine_stats st;
    tkv_engine_stats_get(e, &st);
    cr_assert_eq(st.keys, (TKV_ENG_PREFETCH_MAX + 8) / 2 - 1);
}

/* ---- a disk that fills up ----------------------------------------------------
 * While g_full is set, the store's writes and syncs fail as on a full disk
 * (ENOSPC, EIO) while the engine's recovery probe, a file beside db/, still
 * succeeds: a disk with room for the probe's 64 KiB but not for what
 * LevelDB writes to reopen. With LevelDB, this file's write(), fsync() and
 * fdatasync() take precedence over libc's (as in tests/fuzz/fuzz_request.c)
 * and fail for files under db/ and wal/ (the store's log); the memory store asks its fault hook at
 * the same points. */

static atomic_bool g_full;

#ifdef TKV_STORE_MEMORY
static int full_hook(void *ctx, tkv_store_mem_event ev)
{
    (void)ctx;
    if (!atomic_load(&g_full))
        return 0;
    return ev == TKV_STORE_MEM_LOG_WRITE ? ENOSPC : EIO;
}
#else
static bool under_db(int fd)
{
    char link[64], path[4096], db[4096];
    if (!atomic_load(&g_full) || !dir)
        return false;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    int dn = snprintf(db, sizeof db, "%s/db/", dir);
    if (strncmp(path, db, (size_t)dn) == 0)
        return true;
    dn = snprintf(db, sizeof db, "%s/wal/", dir);
    return strncmp(path, db, (size_t)dn) == 0;
}

ssize_t write(int fd, const void *buf, size_t n);
int fsync(int fd);
int fdatasync(int fd);

ssize_t write(int fd, const void *buf, size_t n)
{
    if (under_db(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return syscall(SYS_write, fd, buf, n);
}

int fsync(int fd)
{
    if (under_db(fd)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
    if (under_db(fd)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}
#endif

static void open_fillable(void)
{
#ifdef TKV_STORE_MEMORY
    tkv_store_mem_set_fault_hook(full_hook, NULL);
#endif
    open_engine();
}

/* Recovery probes the disk at most every 100 ms (recover.c); each refused
 * write tries. Returns once a try got as far as reopening the store and
 * failed there, which leaves the store closed. */
static void wait_for_failed_reopen(void)
{
    for (int i = 0; i < 400; i++) {
        uint64_t got;
        bool dirty;
        cr_assert_eq(tkv_engine_put(e, K("x"), (const uint8_t *)"w", 1, 2, true, 0, &got, &dirty),
                     TKV_E_STORAGE);
        if (strstr(tkv_engine_errmsg(e), "reopening the store failed"))
            return;
        nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
    }
    cr_assert_fail("no failed reopen in 2 s: %s", tkv_engine_errmsg(e));
}

/* tkvd's reader threads ask for loads in nonblocking mode; a load from a
 * store whose reopen failed once reached LevelDB's NULL handle on a reader
 * thread and killed the server. The read must fail with STORAGE instead, as
 * it does in blocking mode, and nothing committed may be lost. */
Test(engine, a_read_of_a_store_whose_reopen_failed_gets_storage_not_a_load, .init = open_fillable,
     .fini = close_engine)
{
    put("k", "v", 1);
    cr_assert_eq(tkv_engine_commit(e), 0);
    atomic_store(&g_full, true);
    put("x", "lost", 1);
    cr_assert_eq(tkv_engine_commit(e), -1);
    cr_assert(tkv_engine_failing(e));
    wait_for_failed_reopen();

    /* Recovery forgot memory: k is only on disk now. */
    tkv_answer a;
    tkv_engine_set_nonblocking(e, true, 0);
    tkv_eng_rc rc = tkv_engine_get(e, K("k"), 5, &a);
    tkv_eng_load *l = tkv_engine_load_take(e);
    tkv_engine_set_nonblocking(e, false, 0);
    tkv_engine_load_free(e, l); /* not run: before the fix, running it crashed */
    cr_assert_eq(rc, TKV_E_STORAGE, "rc %d: %s", rc, tkv_engine_errmsg(e));
    cr_assert_null(l, "a load was asked of a closed store");
    cr_assert(strstr(tkv_engine_errmsg(e), "storage failing"), "%s", tkv_engine_errmsg(e));
    cr_assert_eq(tkv_engine_get(e, K("k"), 5, &a), TKV_E_STORAGE, "blocking mode: the same");

    /* Once the disk takes writes again the store reopens on its own. */
    atomic_store(&g_full, false);
    for (int i = 0; i < 400 && tkv_engine_failing(e); i++) {
        tkv_engine_tick(e);
        if (tkv_engine_failing(e))
            nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
    }
    cr_assert(!tkv_engine_failing(e), "%s", tkv_engine_errmsg(e));
    cr_assert_eq(tkv_engine_get(e, K("k"), 5, &a), TKV_E_OK, "%s", tkv_engine_errmsg(e));
    cr_assert_eq(a.len, 1);
    cr_assert_eq(a.value[0], 'v');
    cr_assert_eq(tkv_engine_get(e, K("x"), 5, &a), TKV_E_NOT_FOUND, "the failed batch stays lost");
}
