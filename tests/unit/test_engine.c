/*
 * test_engine.c - engine behaviour the randomized model does not pin down:
 * the epochs replies wait for, batches in flight, and rollbacks.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../common/tmpdir.h"
#include "engine.h"

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
    cr_assert_eq(tkv_engine_put(e, (const uint8_t *)k, strlen(k), (const uint8_t *)v,
                                strlen(v), ts, true, 0, &got, &dirty),
                 TKV_ST_OK);
    cr_assert(dirty);
}

Test(engine, a_read_of_the_batch_in_flight_is_settled_with_it, .init = open_engine,
     .fini = close_engine)
{
    uint32_t failed;
    put("k", "v", 1);
    uint32_t write_epoch = tkv_engine_epoch(e);
    cr_assert_lt(tkv_engine_settled_epoch(e), write_epoch, "a staged write is not settled");
    cr_assert_eq(tkv_engine_commit_start(e, &failed), 1);
    /* The batch is in flight; a read sees its write and is tagged with the
     * epoch current now - the new, empty staging batch. */
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, (const uint8_t *)"k", 1, 5, &a), TKV_ST_OK);
    cr_assert(a.dirty, "the read depends on the batch in flight");
    uint32_t read_epoch = tkv_engine_epoch(e);
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
    uint32_t failed;
    put("a", "1", 1);
    cr_assert_eq(tkv_engine_commit_start(e, &failed), 1);
    put("b", "2", 1);
    uint32_t b_epoch = tkv_engine_epoch(e);
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
    uint32_t failed;
    put("kept", "v", 1);
    cr_assert_eq(tkv_engine_commit(e), 0);
    put("lost", "v", 1);
    put("kept", "w", 2);
    uint32_t epoch = tkv_engine_epoch(e);
    tkv_engine_poison(e, "test");
    cr_assert_eq(tkv_engine_commit_start(e, &failed), -1);
    cr_assert_eq(failed, epoch);
    tkv_answer a;
    cr_assert_eq(tkv_engine_get(e, (const uint8_t *)"lost", 4, 9, &a), TKV_ST_NOT_FOUND);
    cr_assert_eq(tkv_engine_get(e, (const uint8_t *)"kept", 4, 9, &a), TKV_ST_OK);
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
