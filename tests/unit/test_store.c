/*
 * test_store.c - store.h checked against a trivially correct model: a
 * sorted array of (key, value) pairs. Random batches of puts and deletes
 * are written, and after each write every way of reading the store (point
 * gets, forward and backward walks, seeks) must agree with the model; a
 * snapshot must keep agreeing with the model as it was when it was taken;
 * and the observer must see each written batch, record for record, so that
 * replaying what it saw rebuilds the store (what replication will do).
 *
 * Keys are short strings over {0x00, 'a', 'b', 0xff}, so that the empty
 * key, prefixes and bytes above 0x7f (signedness) all come up often.
 *
 * A second part (below "version-shaped records") writes what the engine
 * writes through a write buffer small enough to be flushed every few
 * batches, and checks the same agreement across flushes and reopens, and
 * under readers on other threads. Crashes, kills, torn log tails and the
 * log's damage rules are test_store_crash.c's; the model and the checks
 * both use are in store_check.h.
 *
 * The same file tests both backends: LevelDB's (store.c, unit/store) and
 * the memory store (store_mem.c, unit/store_mem, built with
 * TKV_STORE_MEMORY, which also tests its fault hook).
 */
#include "store_check.h"

Test(store, random_batches_agree_with_a_sorted_array, .init = open_store, .fini = close_store)
{
    test_rng r = {test_seed("store")};
    tkv_store_batch *b = tkv_store_batch_new();
    model *pending = calloc(1, sizeof *pending);
    model *frozen = calloc(1, sizeof *frozen);
    tkv_store_snapshot *snap = NULL;
    tkv_store_iter *old_it = NULL; /* over the current state when snap was taken */
    size_t written = 0, writes = 0;
    for (int round = 0; round < 600; round++) {
        /* A batch of puts and deletes, applied to a copy of the model. */
        m_copy(pending, live);
        size_t ops = test_rng_below(&r, 12), nbytes = 0;
        for (size_t j = 0; j < ops; j++) {
            uint8_t k[MAXK], v[MAXV];
            size_t kn = rand_key(&r, k), vn = test_rng_below(&r, SHORTV + 1);
            for (size_t x = 0; x < vn; x++)
                v[x] = (uint8_t)test_rng_next(&r);
            if (test_rng_below(&r, 3) == 0) {
                tkv_store_batch_delete(b, k, kn);
                m_del(pending, k, kn);
                nbytes += kn;
            } else {
                tkv_store_batch_put(b, k, kn, v, vn);
                m_put(pending, k, kn, v, vn);
                nbytes += kn + vn;
            }
        }
        cr_assert_eq(tkv_store_batch_size(b), ops);
        cr_assert_eq(tkv_store_batch_bytes(b), nbytes);
        /* A staged batch is invisible until written; some are dropped. */
        check_get(NULL, live, &r);
        if (test_rng_below(&r, 8) == 0) {
            tkv_store_batch_clear(b);
            cr_assert_eq(tkv_store_batch_size(b), 0);
            cr_assert_eq(tkv_store_batch_bytes(b), 0);
            continue;
        }
        char err[256];
        bool sync = test_rng_below(&r, 4) == 0;
        cr_assert_eq(tkv_store_write(s, b, sync, err, sizeof err), 0, "%s", err);
        writes++;
        written += ops;
        cr_assert_eq(observed_sync, sync);
        m_copy(live, pending);
        tkv_store_batch_clear(b);
        check_all(NULL, live, &r);
        /* Snapshots: take one now and then; it must keep answering as the
         * model did when it was taken, however the store moves on. */
        if (snap) {
            check_all(snap, frozen, &r);
            /* So must an iterator made then over the current state. */
            check_walk(old_it, frozen, test_rng_below(&r, 2));
            check_seek(old_it, frozen, &r);
        }
        if (test_rng_below(&r, 10) == 0) {
            tkv_store_iter_free(old_it);
            tkv_store_snapshot_free(s, snap);
            snap = tkv_store_snapshot_new(s);
            old_it = tkv_store_iter_new(s, NULL);
            cr_assert_not_null(snap);
            cr_assert_not_null(old_it);
            m_copy(frozen, live);
        }
    }
    tkv_store_iter_free(old_it);
    /* The observer saw every write and nothing else, and what it saw
     * rebuilds the store. */
    cr_assert_eq(observed_batches, writes);
    cr_assert_eq(observed_records, written);
    cr_assert_eq(replica->n, live->n);
    cr_assert(m_equal(replica, live), "the observer's replica differs");
    tkv_store_snapshot_free(s, snap);
    tkv_store_batch_free(b);
    free(pending);
    free(frozen);
}

Test(store, the_shared_iterator_sees_the_state_of_its_creation, .init = open_store,
     .fini = close_store)
{
    char err[256];
    tkv_store_batch *b = tkv_store_batch_new();
    tkv_store_batch_put(b, "a", 1, "1", 1);
    cr_assert_eq(tkv_store_write(s, b, false, err, sizeof err), 0, "%s", err);
    tkv_store_iter *it = tkv_store_iter_shared(s);
    cr_assert_eq(tkv_store_iter_shared(s), it, "one shared iterator until released");
    tkv_store_batch_clear(b);
    tkv_store_batch_put(b, "b", 1, "2", 1);
    cr_assert_eq(tkv_store_write(s, b, true, err, sizeof err), 0, "%s", err);
    tkv_store_iter_seek(it, "b", 1);
    cr_assert_not(tkv_store_iter_valid(it), "a write after its creation is not seen");
    tkv_store_iter_release_shared(s);
    it = tkv_store_iter_shared(s);
    tkv_store_iter_seek(it, "b", 1);
    cr_assert(tkv_store_iter_valid(it), "a fresh one sees it");
    tkv_store_batch_free(b);
}

Test(store, reopen_keeps_data_and_observer, .init = open_store, .fini = close_store)
{
    char err[256];
    tkv_store_batch *b = tkv_store_batch_new();
    tkv_store_batch_put(b, "k", 1, "v", 1);
    cr_assert_eq(tkv_store_write(s, b, true, err, sizeof err), 0, "%s", err);
    tkv_store_opts o = {.dir = dir, .create = true};
    cr_assert_eq(tkv_store_reopen(s, &o, err, sizeof err), 0, "%s", err);
    char *v;
    size_t vn;
    cr_assert_eq(tkv_store_get(s, NULL, "k", 1, &v, &vn, err, sizeof err), 1);
    cr_assert_eq(vn, 1);
    cr_assert_eq(v[0], 'v');
    tkv_store_free(v);
    /* An empty synced write is observed too (it syncs earlier writes). */
    tkv_store_batch_clear(b);
    cr_assert_eq(tkv_store_write(s, b, true, err, sizeof err), 0, "%s", err);
    cr_assert_eq(observed_batches, 2);
    cr_assert_eq(observed_records, 1);
    tkv_store_batch_free(b);
}

Test(store, a_second_open_of_the_directory_is_refused, .init = open_store, .fini = close_store)
{
    char err[256];
    tkv_store *other;
    tkv_store_opts o = {.dir = dir, .create = true};
    cr_assert_eq(tkv_store_open(&o, &other, err, sizeof err), -1);
    cr_assert_null(other);
    cr_assert(strstr(err, "in use"), "%s", err);
    tkv_store_close(NULL);
    tkv_store_batch_free(NULL);
    tkv_store_iter_free(NULL);
    tkv_store_snapshot_free(s, NULL);
}

Test(store, close_and_open_again_keep_the_data, .init = open_store, .fini = close_store)
{
    char err[256], *v;
    size_t vn;
    tkv_store_batch *b = tkv_store_batch_new();
    tkv_store_batch_put(b, "k", 1, "v", 1);
    cr_assert_eq(tkv_store_write(s, b, true, err, sizeof err), 0, "%s", err);
    tkv_store_close(s);
    tkv_store_opts o = {.dir = dir, .create = false};
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tkv_store_get(s, NULL, "k", 1, &v, &vn, err, sizeof err), 1);
    tkv_store_free(v);
    /* A directory removed and made again holds nothing. */
    tkv_store_close(s);
    nftw(dir, tmpdir_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    cr_assert_eq(mkdir(dir, 0755), 0);
    s = NULL;
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), -1, "no database, no create");
    cr_assert_null(s);
    o.create = true;
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tkv_store_get(s, NULL, "k", 1, &v, &vn, err, sizeof err), 0);
    cr_assert_null(v);
    tkv_store_batch_free(b);
}

/* Writers and readers on several threads: each batch gives all NKEYS keys
 * one generation number, and the key "odd" exists in odd generations only,
 * so any view a reader takes - an iterator, a snapshot, gets through it -
 * must show exactly one generation, whole. */
#define NKEYS 16

typedef struct reader_ctx {
    tkv_store *s;
    atomic_bool stop;
    atomic_int torn;  /* views that mixed generations */
    atomic_int views; /* views checked */
} reader_ctx;

/* The generation of the view through it (seeks, then steps), or -1 if torn. */
static long view_generation(tkv_store_iter *it)
{
    long gen = -2;
    int keys = 0;
    bool odd = false;
    for (tkv_store_iter_seek(it, "", 0); tkv_store_iter_valid(it); tkv_store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = tkv_store_iter_key(it, &kn);
        const uint8_t *v = tkv_store_iter_value(it, &vn);
        if (kn == 3 && memcmp(k, "odd", 3) == 0) {
            odd = true;
            continue;
        }
        long g = 0;
        memcpy(&g, v, vn < sizeof g ? vn : sizeof g);
        if (gen != -2 && g != gen)
            return -1;
        gen = g;
        keys++;
    }
    if (gen == -2)
        return 0; /* before the first batch */
    return keys == NKEYS && odd == (gen % 2 == 1) ? gen : -1;
}

static void *reader(void *p)
{
    reader_ctx *c = p;
    while (!atomic_load(&c->stop)) {
        tkv_store_snapshot *snap = tkv_store_snapshot_new(c->s);
        tkv_store_iter *it = tkv_store_iter_new(c->s, NULL);
        tkv_store_iter *sit = tkv_store_iter_new(c->s, snap);
        long g = view_generation(it), sg = view_generation(sit);
        char key[8], *v, err[128];
        size_t vn;
        snprintf(key, sizeof key, "k%02d", (int)(sg % NKEYS));
        int rc = tkv_store_get(c->s, snap, key, 3, &v, &vn, err, sizeof err);
        long got = 0;
        if (rc == 1)
            memcpy(&got, v, vn < sizeof got ? vn : sizeof got);
        tkv_store_free(v);
        if (g < 0 || sg < 0 || (sg > 0 && (rc != 1 || got != sg)) || (sg == 0 && rc != 0))
            atomic_fetch_add(&c->torn, 1);
        atomic_fetch_add(&c->views, 1);
        tkv_store_iter_free(it);
        tkv_store_iter_free(sit);
        tkv_store_snapshot_free(c->s, snap);
    }
    return NULL;
}

/* Writes generations while two readers check views; with flushes, the
 * writer also moves the write buffer into LevelDB every hundred batches
 * (besides the flushes a small write buffer makes by itself). */
static void write_generations_under_readers(bool flushes)
{
    reader_ctx c = {.s = s};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, reader, &c), 0);
    tkv_store_batch *b = tkv_store_batch_new();
    char err[256];
    for (long gen = 1; gen <= 2000 || atomic_load(&c.views) < 50; gen++) {
        tkv_store_batch_clear(b);
        for (int i = 0; i < NKEYS; i++) {
            char key[8];
            snprintf(key, sizeof key, "k%02d", i);
            tkv_store_batch_put(b, key, 3, &gen, sizeof gen);
        }
        if (gen % 2)
            tkv_store_batch_put(b, "odd", 3, "", 0);
        else
            tkv_store_batch_delete(b, "odd", 3);
        cr_assert_eq(tkv_store_write(s, b, false, err, sizeof err), 0, "%s", err);
        if (flushes && gen % 100 == 0)
            cr_assert_eq(tkv_store_flush(s, err, sizeof err), 0, "%s", err);
    }
    atomic_store(&c.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&c.torn), 0, "%d of %d views were torn", atomic_load(&c.torn),
                 atomic_load(&c.views));
    tkv_store_batch_free(b);
}

Test(store, readers_on_other_threads_see_whole_batches, .init = open_store, .fini = close_store)
{
    write_generations_under_readers(false);
}

/* The same while flushes run: a view must not lose a batch on its way
 * from the write buffer to LevelDB, nor see it twice. */
Test(store, readers_see_whole_batches_while_flushes_run, .init = open_small_store,
     .fini = close_store)
{
    write_generations_under_readers(true);
}


Test(store, versions_agree_with_the_model_across_flushes_and_reopens, .init = open_small_store,
     .fini = close_store)
{
    test_rng r = {test_seed("store versions")};
    tkv_store_batch *b = tkv_store_batch_new();
    uint64_t clock = 1000000;
    size_t writes = 0, flushes = 0, reopens = 0;
    for (int round = 0; round < 1000; round++) {
        vbatch(&r, b, live, &clock);
        write_ok(b, test_rng_below(&r, 8) == 0);
        writes++;
        uint64_t what = test_rng_below(&r, 100);
        if (what < 4) {
            flush_ok();
            flushes++;
        } else if (what < 6) {
            char err[256];
            tkv_store_opts o = store_opts(true);
            cr_assert_eq(tkv_store_reopen(s, &o, err, sizeof err), 0, "%s", err);
            reopens++;
        } else if (what < 8) {
            close_and_open();
            reopens++;
        }
        vcheck(NULL, live, &r, what < 8 || round % 8 == 0);
    }
    cr_log_info("%zu batches, %zu flushes, %zu reopens, %zu records", writes, flushes, reopens,
                live->n);
    /* What the observer saw rebuilds the store. */
    cr_assert_eq(observed_batches, writes);
    cr_assert_eq(replica->n, live->n);
    cr_assert(m_equal(replica, live), "the observer's replica differs");
    tkv_store_batch_free(b);
}

/* Overwrites or deletes a random record the frozen model holds. */
static void hit_frozen(test_rng *r, tkv_store_batch *b, const model *frozen)
{
    if (frozen->n == 0)
        return;
    const rec *x = &frozen->r[test_rng_below(r, frozen->n)];
    uint8_t v[MAXV];
    size_t vn = rand_value(r, v);
    if (test_rng_below(r, 2))
        put_both(b, live, x->k, x->kn, v, vn);
    else
        del_both(b, live, x->k, x->kn);
}

/* Snapshots and iterators taken with records in the write buffer (and in
 * LevelDB) keep their view while those records are overwritten, deleted
 * and flushed; freed, the live state is the model's. */
Test(store, snapshots_and_iterators_hold_across_flushes, .init = open_small_store,
     .fini = close_store)
{
    test_rng r = {test_seed("store snapshots")};
    tkv_store_batch *b = tkv_store_batch_new();
    model *frozen = calloc(1, sizeof *frozen), *frozen2 = calloc(1, sizeof *frozen2);
    uint64_t clock = 1000000;
    for (int i = 0; i < 300; i++) {
        vbatch(&r, b, live, &clock);
        write_ok(b, false);
        if (i == 250)
            flush_ok(); /* then 49 batches in the write buffer, maybe */
    }
    m_copy(frozen, live);
    tkv_store_snapshot *snap = tkv_store_snapshot_new(s), *snap2 = NULL;
    tkv_store_iter *old = tkv_store_iter_new(s, NULL), *sold = tkv_store_iter_new(s, snap);
    tkv_store_iter *shared = tkv_store_iter_shared(s); /* the reactor's, held too long */
    cr_assert(snap && old && sold && shared);
    /* The old iterator waits on a record across everything below. */
    uint8_t k[MAXK];
    size_t kn = vprobe(&r, frozen, k);
    tkv_store_iter_seek(old, k, kn);
    for (int phase = 0; phase < 3; phase++) {
        for (int i = 0; i < 150; i++) {
            vbatch(&r, b, live, &clock);
            hit_frozen(&r, b, frozen);
            hit_frozen(&r, b, frozen);
            write_ok(b, false);
        }
        if (phase == 0) { /* a second snapshot, of records in the buffer */
            m_copy(frozen2, live);
            snap2 = tkv_store_snapshot_new(s);
            cr_assert_not_null(snap2);
        } else {
            flush_ok();
        }
        vcheck(NULL, live, &r, true);
        vcheck(snap, frozen, &r, true);
        vcheck(snap2, frozen2, &r, true);
        if (phase == 1) { /* the waiting iterator steps on from where it was */
            size_t i = m_lower(frozen, k, kn);
            cr_assert_eq(tkv_store_iter_valid(old), i < frozen->n);
            if (i < frozen->n) {
                size_t gn;
                const uint8_t *g = tkv_store_iter_key(old, &gn);
                cr_assert_eq(key_cmp(g, gn, frozen->r[i].k, frozen->r[i].kn), 0);
                tkv_store_iter_next(old);
                cr_assert_eq(tkv_store_iter_valid(old), i + 1 < frozen->n);
            }
        }
        check_walk(sold, frozen, phase == 1);
        check_walk(shared, frozen, phase != 1);
        if (phase > 0) {
            check_walk(old, frozen, phase == 2);
            check_moves(old, frozen, k, kn, &r);
        }
    }
    tkv_store_iter_free(old);
    tkv_store_iter_free(sold);
    tkv_store_iter_release_shared(s);
    tkv_store_snapshot_free(s, snap);
    tkv_store_snapshot_free(s, snap2);
    vcheck(NULL, live, &r, true);
    flush_ok();
    flush_ok(); /* with nothing to move */
    vcheck(NULL, live, &r, true);
    tkv_store_batch_free(b);
    free(frozen);
    free(frozen2);
}

/* A wipe empties the write buffer and its log as well as LevelDB: nothing
 * written before it comes back, not even from a log replayed at open. */
Test(store, a_wipe_leaves_nothing_in_the_write_buffer_or_its_log, .init = open_small_store,
     .fini = close_store)
{
    test_rng r = {test_seed("store wipe")};
    tkv_store_batch *b = tkv_store_batch_new();
    uint64_t clock = 1000000;
    char err[256];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 120; i++) {
            vbatch(&r, b, live, &clock);
            write_ok(b, i % 7 == 0);
            if (i == 100)
                flush_ok();
        }
        tkv_store_opts o = store_opts(true);
        cr_assert_eq(tkv_store_wipe(s, &o, err, sizeof err), 0, "%s", err);
        live->n = 0;
        vcheck(NULL, live, &r, true);
        for (int i = 0; i < 10; i++) {
            vbatch(&r, b, live, &clock);
            write_ok(b, false);
        }
        vcheck(NULL, live, &r, true);
        if (round == 0)
            close_and_open();
        else
            cr_assert_eq(tkv_store_reopen(s, &o, err, sizeof err), 0, "%s", err);
        vcheck(NULL, live, &r, true);
    }
    tkv_store_batch_free(b);
}

#ifdef TKV_STORE_MEMORY
/* The memory store's fault hook: the next event of kind fail_ev fails. */
static int fail_ev = -1, fail_errno;

static int fail_hook(void *ctx, tkv_store_mem_event ev)
{
    (void)ctx;
    if ((int)ev != fail_ev)
        return 0;
    fail_ev = -1;
    return fail_errno;
}

static void fail_next(tkv_store_mem_event ev, int e)
{
    fail_ev = (int)ev;
    fail_errno = e;
}

static int get1(const char *k)
{
    char *v, err[256];
    size_t vn;
    int rc = tkv_store_get(s, NULL, k, strlen(k), &v, &vn, err, sizeof err);
    tkv_store_free(v);
    return rc;
}

static int put1(const char *k, bool sync)
{
    char err[256];
    tkv_store_batch *b = tkv_store_batch_new();
    tkv_store_batch_put(b, k, strlen(k), "v", 1);
    int rc = tkv_store_write(s, b, sync, err, sizeof err);
    tkv_store_batch_free(b);
    return rc;
}

Test(store_mem, faults_fail_like_leveldb_files, .init = open_store, .fini = close_store)
{
    char err[256];
    tkv_store_opts o = {.dir = dir, .create = true};
    tkv_store_mem_set_fault_hook(fail_hook, NULL);
    cr_assert_eq(put1("a", true), 0);
    /* A failed log write: nothing changes, nothing is observed, and the
     * handle writes no more until reopened. */
    fail_next(TKV_STORE_MEM_LOG_WRITE, ENOSPC);
    cr_assert_eq(put1("b", false), -1);
    cr_assert_eq(get1("b"), 0);
    cr_assert_eq(observed_batches, 1);
    cr_assert_eq(put1("c", false), -1, "writes are refused after a failure");
    cr_assert_eq(tkv_store_reopen(s, &o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(get1("b"), 0, "a batch that never reached the log stays lost");
    cr_assert_eq(put1("c", false), 0);
    /* A failed log sync: the batch is in limbo - invisible now, replayed
     * by the next successful open, however many fail before. */
    fail_next(TKV_STORE_MEM_LOG_SYNC, EIO);
    cr_assert_eq(put1("d", false), 0, "an unsynced write does not sync");
    fail_next(TKV_STORE_MEM_LOG_SYNC, EIO);
    cr_assert_eq(put1("e", true), -1);
    cr_assert_eq(get1("e"), 0);
    fail_next(TKV_STORE_MEM_OPEN_SYNC, EIO);
    cr_assert_eq(tkv_store_reopen(s, &o, err, sizeof err), -1);
    cr_assert(strstr(err, "Input/output error"), "%s", err);
    cr_assert_eq(get1("a"), -1, "a store whose reopen failed is closed");
    tkv_store_iter *it = tkv_store_iter_new(s, NULL);
    cr_assert_eq(tkv_store_iter_status(it, NULL, 0), -1);
    tkv_store_iter_free(it);
    cr_assert_eq(tkv_store_reopen(s, &o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(get1("e"), 1, "the batch in limbo is back");
    cr_assert_eq(get1("d"), 1);
    /* Limbo survives a close too (the directory's data is the process's). */
    fail_next(TKV_STORE_MEM_LOG_SYNC, EIO);
    cr_assert_eq(put1("f", true), -1);
    tkv_store_close(s);
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), 0, "%s", err);
    cr_assert_eq(get1("f"), 1);
    cr_assert_eq(observed_batches, 3, "only successful writes are observed");
    tkv_store_mem_set_fault_hook(NULL, NULL);
}
#else
/* A reopen fails here when CURRENT names a manifest that does not exist.
 * store.h allows only reopen and close on the store then; the engine once
 * broke that (a reader thread's load), and LevelDB took the NULL handle
 * for a crash. The store must refuse instead. */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

Test(store, a_store_whose_reopen_failed_refuses_reads_and_writes, .init = open_store,
     .fini = close_store)
{
    char err[256], *v, current[4200], manifest[256];
    size_t vn;
    tkv_store_batch *b = tkv_store_batch_new();
    tkv_store_batch_put(b, "k", 1, "v", 1);
    cr_assert_eq(tkv_store_write(s, b, true, err, sizeof err), 0, "%s", err);
    snprintf(current, sizeof current, "%s/db/CURRENT", dir);
    FILE *f = fopen(current, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(manifest, sizeof manifest, f));
    fclose(f);
    write_file(current, "MANIFEST-999999\n");
    tkv_store_opts o = {.dir = dir, .create = true};
    cr_assert_eq(tkv_store_reopen(s, &o, err, sizeof err), -1);
    err[0] = '\0';
    cr_assert_eq(tkv_store_get(s, NULL, "k", 1, &v, &vn, err, sizeof err), -1);
    cr_assert_null(v);
    cr_assert(strstr(err, "closed"), "%s", err);
    cr_assert_eq(tkv_store_write(s, b, true, err, sizeof err), -1);
    cr_assert_null(tkv_store_iter_new(s, NULL));
    cr_assert_null(tkv_store_iter_shared(s));
    cr_assert_null(tkv_store_snapshot_new(s));
    cr_assert_null(tkv_store_property(s, "leveldb.stats"));
    /* Reopened, it holds what was written before. */
    write_file(current, manifest);
    cr_assert_eq(tkv_store_reopen(s, &o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tkv_store_get(s, NULL, "k", 1, &v, &vn, err, sizeof err), 1, "%s", err);
    tkv_store_free(v);
    tkv_store_batch_free(b);
}

#endif
