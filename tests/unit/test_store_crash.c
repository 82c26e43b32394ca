/*
 * test_store_crash.c - store.c's promises about processes that end
 * without closing it: every written batch is there after a crash (three
 * in turn), after a repair, after a SIGKILL mid-run (a prefix of whole
 * batches), after a torn log tail; and the log's damage rules - damage
 * before the newest file's end refuses the open until repaired, a flushed
 * file left behind is not replayed. The model and checks: store_check.h.
 */
#include "store_check.h"

/* ---- crashes ------------------------------------------------------------------
 *
 * A child process writes and ends without closing the store; the test's
 * process then opens the directory. The test's process must not have used
 * LevelDB before it forks: LevelDB starts its one background thread once
 * per process, and a child forked after that has the flag but not the
 * thread, so its first compaction waits forever. Hence these tests start
 * from an empty directory (make_dir) and fork before opening anything. */

static void make_dir(void)
{
    wb = SMALL_WB;
    dir = tmpdir_make("store");
    live = calloc(1, sizeof *live);
    replica = calloc(1, sizeof *replica);
    s = NULL;
}

/* One batch of a crash run, generated onto m and, with a store, written
 * to it (every fourth synced). Returns 0, or -1 with the reason in err. */
static int crash_batch(tkv_store *st, test_rng *r, tkv_store_batch *b, model *m, uint64_t *clock,
                       char *err, size_t errlen)
{
    vbatch(r, b, m, clock);
    bool sync = test_rng_below(r, 4) == 0;
    int rc = st ? tkv_store_write(st, b, sync, err, errlen) : 0;
    tkv_store_batch_clear(b);
    return rc;
}

/* The batches of one crash run, from seed onto m and, with a store, into
 * it, with a flush half-way. The parent runs it without a store to build
 * the model of what its child wrote. Returns 0, or the step that failed:
 * this runs in a child, where cr_assert may not. */
static int crash_run(tkv_store *st, uint64_t seed, model *m, uint64_t *clock)
{
    test_rng r = {seed};
    tkv_store_batch *b = tkv_store_batch_new();
    char err[256] = "";
    int rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++) {
        if (crash_batch(st, &r, b, m, clock, err, sizeof err) < 0)
            rc = 3;
        else if (st && i == 100 && tkv_store_flush(st, err, sizeof err) < 0)
            rc = 4;
    }
    if (rc)
        fprintf(stderr, "crash run: %s\n", err);
    tkv_store_batch_free(b);
    return rc;
}

/* Forks a child that opens the store (creating it), writes a crash run
 * and ends without closing it; then builds the same run onto live. */
static void crash_child(uint64_t seed, uint64_t *clock)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        char err[256];
        tkv_store *st;
        tkv_store_opts o = store_opts(true);
        if (tkv_store_open(&o, &st, err, sizeof err) < 0) {
            fprintf(stderr, "crash run: %s\n", err);
            _exit(2);
        }
        _exit(crash_run(st, seed, live, clock)); /* no close: a crash */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed: status %#x",
              status);
    cr_assert_eq(crash_run(NULL, seed, live, clock), 0);
}

/* Writes `batches` more batches after a replay, then reopens and checks
 * that they stayed too. */
static void write_on_and_reopen(test_rng *r, tkv_store_batch *b, uint64_t *clock, int batches)
{
    for (int i = 0; i < batches; i++) {
        vbatch(r, b, live, clock);
        write_ok(b, false);
    }
    close_and_open();
    vcheck(NULL, live, r, true);
}

/* Batches written (synced or not) by processes that end without closing
 * the store - some in LevelDB, most only in the log - are all there when
 * the directory is opened again: three children in turn, each replaying
 * the last one's log and writing on, then this process. */
Test(store_crash, a_process_crash_loses_no_written_batch, .init = make_dir, .fini = close_store)
{
    if (!tkv_store_is_persistent()) {
        close_store();
        cr_skip_test("the memory store does not outlive its process");
    }
    uint64_t seed = test_seed("store crash"), clock = 1000000;
    test_rng r = {seed};
    for (uint64_t gen = 0; gen < 3; gen++)
        crash_child(seed + 1 + gen, &clock);
    close_and_open();
    vcheck(NULL, live, &r, true);
    cr_log_info("%zu records after three crashes", live->n);
    /* And what is written after the replay stays too. */
    tkv_store_batch *b = tkv_store_batch_new();
    write_on_and_reopen(&r, b, &clock, 100);
    tkv_store_batch_free(b);
}

/* A repair of a directory a crashed process left (most batches in the log
 * alone) keeps every batch: repair rewrites LevelDB's files, and must not
 * take the write buffer's log for debris. Gets as well as walks: LevelDB's
 * repair leaves every table at level 0, where a get trusts file numbers
 * over sequence numbers, so before the store compacted after repairing,
 * gets returned older values than walks (seed 1796172256 did). */
Test(store_crash, a_repair_after_a_crash_keeps_every_batch, .init = make_dir, .fini = close_store)
{
    if (!tkv_store_is_persistent()) {
        close_store();
        cr_skip_test("the memory store does not outlive its process");
    }
    uint64_t seed = test_seed("store repair"), clock = 1000000;
    char err[256];
    crash_child(seed + 1, &clock);
    cr_assert_eq(tkv_store_repair(dir, err, sizeof err), 0, "%s", err);
    close_and_open();
    tkv_store_iter *it = tkv_store_iter_new(s, NULL);
    check_walk(it, live, true);
    check_walk(it, live, false);
    tkv_store_iter_free(it);
    for (size_t i = 0; i < live->n; i++)
        check_get_at(NULL, live, live->r[i].k, live->r[i].kn);
    char *l0 = tkv_store_property(s, "leveldb.num-files-at-level0");
    cr_assert(l0 && strcmp(l0, "0") == 0, "tables at level 0 after a repair: %s", l0);
    free(l0);
}

/* A child killed (SIGKILL) at a random moment of a run of writes leaves a
 * whole number of batches: the store equals the model after some prefix
 * of the run, at least as long as the batches the child had reported
 * written. */
Test(store_crash, a_kill_mid_run_leaves_a_prefix_of_whole_batches, .init = make_dir,
     .fini = close_store)
{
    if (!tkv_store_is_persistent()) {
        close_store();
        cr_skip_test("the memory store does not outlive its process");
    }
    uint64_t seed = test_seed("store kill"), clock = 1000000;
    test_rng r = {seed};
    enum { RUN = 3000 };
    int acks[2];
    cr_assert_eq(pipe(acks), 0);
    uint32_t want = 50 + (uint32_t)test_rng_below(&r, 400), done = 0;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        char err[256];
        tkv_store_opts o = store_opts(true);
        tkv_store_batch *b = tkv_store_batch_new();
        if (tkv_store_open(&o, &s, err, sizeof err) < 0)
            _exit(2);
        for (uint32_t i = 1; i <= RUN; i++) {
            if (crash_batch(s, &r, b, live, &clock, err, sizeof err) < 0)
                _exit(3);
            if (write(acks[1], &i, sizeof i) != sizeof i)
                _exit(4);
        }
        _exit(0); /* killed first, normally */
    }
    close(acks[1]);
    while (done < want && read(acks[0], &done, sizeof done) == sizeof done)
        ;
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(acks[0]);
    cr_assert_eq(done, want, "the child failed: status %#x", status);
    /* The store's records, read once, against the model batch by batch. */
    model *seen = calloc(1, sizeof *seen);
    close_and_open();
    tkv_store_iter *it = tkv_store_iter_new(s, NULL);
    for (tkv_store_iter_seek_first(it); tkv_store_iter_valid(it); tkv_store_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = tkv_store_iter_key(it, &kn), *v = tkv_store_iter_value(it, &vn);
        cr_assert(kn <= MAXK && vn <= MAXV && seen->n < MAXN, "a record the run never wrote");
        seen->r[seen->n].kn = kn;
        seen->r[seen->n].vn = vn;
        memcpy(seen->r[seen->n].k, k, kn);
        memcpy(seen->r[seen->n++].v, v, vn);
    }
    tkv_store_iter_free(it);
    tkv_store_batch *b = tkv_store_batch_new();
    char err[256];
    uint32_t n = 0;
    for (; n < want || (n < RUN && !m_equal(live, seen)); n++)
        crash_batch(NULL, &r, b, live, &clock, err, sizeof err);
    cr_assert(m_equal(live, seen), "the store is no prefix of the run of %u batches", RUN);
    cr_log_info("killed after %u batches reported, %u found", want, n);
    vcheck(NULL, live, &r, true);
    tkv_store_batch_free(b);
    free(seen);
}

/* The newest log file under dir/wal, if there is one (store.c keeps its log
 * there; the memory store has none). */
static bool newest_log(char *path, size_t n)
{
    char wal[4200], best[256] = "";
    snprintf(wal, sizeof wal, "%s/wal", dir);
    DIR *d = opendir(wal);
    if (!d)
        return false;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len == 20 && strcmp(e->d_name + 16, ".log") == 0 && strcmp(e->d_name, best) > 0)
            memcpy(best, e->d_name, len + 1);
    }
    closedir(d);
    snprintf(path, n, "%s/%s", wal, best);
    return best[0] != '\0';
}

/* What a write cut short may leave at the end of the log: garbage, a
 * header declaring a huge length (in either byte order), or the log's own
 * first bytes - a real header whose body never came. */
enum tear { TEAR_GARBAGE, TEAR_HUGE_LENGTH, TEAR_HEADER_ONLY };

static void tear_log(enum tear kind, test_rng *r)
{
    char path[4500];
    if (!newest_log(path, sizeof path))
        return;
    int fd = open(path, O_RDWR | O_APPEND);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    uint8_t tail[64] = {0xff, 0xff, 0xff, 0x7f, 0x7f, 0xff, 0xff, 0xff};
    ssize_t n = 8;
    if (kind == TEAR_GARBAGE) {
        n = 1 + (ssize_t)test_rng_below(r, 40);
        for (ssize_t i = 0; i < n; i++)
            tail[i] = (uint8_t)test_rng_next(r);
    } else if (kind == TEAR_HEADER_ONLY) {
        n = pread(fd, tail, 12, 0);
        cr_assert_geq(n, 0);
        if (n == 0) /* an empty log: a huge length it is */
            n = 8;
    }
    cr_assert_eq(write(fd, tail, (size_t)n), n, "%s", strerror(errno));
    cr_assert_eq(close(fd), 0);
}

/* A log ending in a torn write opens: the tail is cut, every batch before
 * it is there, and the cut tail does not come back to spoil later writes.
 * The batches come from a crashed child (so nothing was flushed by a
 * close) and, on the memory store, from this process. */
static void torn_tail(enum tear kind)
{
    uint64_t seed = test_seed("store torn"), clock = 1000000;
    test_rng r = {seed};
    if (tkv_store_is_persistent()) {
        crash_child(seed + 1, &clock);
    } else {
        char err[256];
        tkv_store_opts o = store_opts(true);
        cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), 0, "%s", err);
        cr_assert_eq(crash_run(s, seed + 1, live, &clock), 0);
        tkv_store_close(s);
        s = NULL;
    }
    tear_log(kind, &r);
    close_and_open();
    vcheck(NULL, live, &r, true);
    tkv_store_batch *b = tkv_store_batch_new();
    for (int i = 0; i < 40; i++) {
        vbatch(&r, b, live, &clock);
        write_ok(b, i % 10 == 0);
    }
    vcheck(NULL, live, &r, true);
    close_and_open();
    vcheck(NULL, live, &r, true);
    /* Torn again after a clean close, then written on. */
    tkv_store_close(s);
    s = NULL;
    tear_log(kind, &r);
    close_and_open();
    vcheck(NULL, live, &r, true);
    write_on_and_reopen(&r, b, &clock, 20);
    tkv_store_batch_free(b);
}

Test(store_crash, a_log_torn_into_garbage_opens, .init = make_dir, .fini = close_store)
{
    torn_tail(TEAR_GARBAGE);
}

Test(store_crash, a_log_torn_after_a_huge_length_opens, .init = make_dir, .fini = close_store)
{
    torn_tail(TEAR_HUGE_LENGTH);
}

Test(store_crash, a_log_torn_after_a_header_opens, .init = make_dir, .fini = close_store)
{
    torn_tail(TEAR_HEADER_ONLY);
}

/* ---- the log's own damage rules (LevelDB's store only) ------------------- */

static int put_or_del(const char *k, const char *v, bool sync)
{
    char err[256];
    tkv_store_batch *b = tkv_store_batch_new();
    if (v)
        tkv_store_batch_put(b, k, strlen(k), v, strlen(v));
    else
        tkv_store_batch_delete(b, k, strlen(k));
    int rc = tkv_store_write(s, b, sync, err, sizeof err);
    tkv_store_batch_free(b);
    return rc;
}

static int get_value(const char *k, char *out, size_t cap)
{
    char *v, err[256];
    size_t vn;
    int rc = tkv_store_get(s, NULL, k, strlen(k), &v, &vn, err, sizeof err);
    if (rc == 1) {
        size_t n = vn < cap - 1 ? vn : cap - 1;
        memcpy(out, v, n);
        out[n] = '\0';
    }
    tkv_store_free(v);
    return rc;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    cr_assert(in && out, "copy %s -> %s", from, to);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* Only the newest log file may end in a torn record. Damage in an older
 * one (its records were all acknowledged and synced) must not be skipped
 * silently - later files would then apply over a hole - so the store
 * refuses to open and says to repair; the repair keeps every record before
 * the damage and moves the rest to lost/. */
Test(store_crash, damage_in_an_older_log_file_refuses_to_open_until_repaired, .init = make_dir,
     .fini = close_store)
{
    char err[512], first[4300], v[16];
    /* A process that dies with two log files (a clean close would move
     * them into LevelDB): a reopen starts the second. The default write
     * buffer, so that neither is flushed. */
    wb = 0;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        tkv_store_opts o = store_opts(true);
        if (tkv_store_open(&o, &s, err, sizeof err) < 0 || put_or_del("a", "1", true) < 0 ||
            put_or_del("b", "1", true) < 0 || tkv_store_reopen(s, &o, err, sizeof err) < 0 ||
            put_or_del("c", "1", true) < 0)
            _exit(1);
        _exit(0); /* no close: a crash */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed");
    char wal[4200];
    snprintf(wal, sizeof wal, "%s/wal", dir);
    snprintf(first, sizeof first, "%s/%016d.log", wal, 1);
    /* Flip a byte inside the second record of the first file. */
    FILE *f = fopen(first, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, -2, SEEK_END), 0);
    int c = fgetc(f);
    cr_assert_eq(fseek(f, -2, SEEK_END), 0);
    fputc(c ^ 0x55, f);
    fclose(f);
    tkv_store_opts o = store_opts(false);
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), -1, "a damaged older log file opened");
    cr_assert(strstr(err, "Corruption") && strstr(err, "--repair"), "%s", err);
    cr_assert_eq(tkv_store_repair(dir, err, sizeof err), 0, "%s", err);
    char lost[4300];
    snprintf(lost, sizeof lost, "%s/lost", dir);
    struct stat st;
    cr_assert_eq(stat(lost, &st), 0, "the damaged tail is kept in lost/");
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), 0, "%s", err);
    cr_assert_eq(get_value("a", v, sizeof v), 1, "a record before the damage survives");
    cr_assert_eq(get_value("b", v, sizeof v), 0, "the damaged record is gone");
    cr_assert_eq(get_value("c", v, sizeof v), 1);
}

/* A log file that a flush put into LevelDB is deleted after the flush; if
 * that delete fails (or a crash loses it), the file must not be replayed
 * over what came later: here it holds a put of a key deleted afterwards. */
Test(store_crash, a_flushed_log_file_left_behind_is_not_replayed, .init = open_store,
     .fini = close_store)
{
    char err[256], log[4300], saved[4400], v[16];
    cr_assert_eq(put_or_del("k", "old", true), 0);
    cr_assert(newest_log(log, sizeof log));
    snprintf(saved, sizeof saved, "%s.saved", dir);
    copy_file(log, saved); /* the file as a failed delete would leave it */
    cr_assert_eq(put_or_del("k", NULL, true), 0);
    cr_assert_eq(tkv_store_flush(s, err, sizeof err), 0, "%s", err);
    tkv_store_close(s);
    s = NULL;
    copy_file(saved, log);
    unlink(saved);
    tkv_store_opts o = store_opts(false);
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), 0, "%s", err);
    cr_assert_eq(get_value("k", v, sizeof v), 0, "a deleted key came back from an old log: %s", v);
    tkv_store_set_observer(s, observe, &observed_batches);
}
