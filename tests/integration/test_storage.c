/*
 * test_storage.c - storage failures and damaged data directories.
 *
 * A write failure is injected with the faultfs shim (LD_PRELOAD): while a
 * trigger file exists, every write and sync under the data directory fails
 * as on a full disk. PUTs must then get errors - never OK - while reads of
 * committed data keep working, the failure is logged once, and writes work
 * again once the trigger is gone. Nothing acknowledged may be lost.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static tkvd d;
static char trigger[4300];

static void teardown(void)
{
    unlink(trigger);
    tkvd_cleanup(&d);
}

static void start_faulty(const char *fsync_mode)
{
    static char preload[4200];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", getenv("TKV_FAULT_LIB"));
    const char *env[] = {preload, "TKV_FAULT_PATHS={dir}/db:{dir}/wal/:{dir}/write-probe",
                         "TKV_FAULT_TRIGGER={dir}.full", NULL};
    const char *args[] = {"--fsync", fsync_mode, NULL};
    tkvd_start_env(&d, args, env);
    snprintf(trigger, sizeof trigger, "%s.full", d.dir);
}

static void disk_full(bool on)
{
    if (on)
        close(open(trigger, O_CREAT | O_WRONLY, 0644));
    else
        unlink(trigger);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void expect_get(tkv_ctx *c, const char *key, uint64_t ts, const char *want)
{
    tkv_version v;
    int rc = tkv_get(c, key, strlen(key), ts, &v);
    cr_assert_eq(rc, TKV_OK, "get %s: rc %d (%s)", key, rc, tkv_errstr(c));
    cr_assert_eq(v.len, strlen(want));
    cr_assert_eq(memcmp(v.value, want, v.len), 0);
}

static void full_disk_scenario(const char *mode)
{
    start_faulty(mode);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "before", 6, "ok", 2, 1, NULL), TKV_OK, "%s", tkv_errstr(c));
    /* Many keys, so that some are only on disk when the failure starts. */
    for (uint64_t i = 0; i < 300; i++) {
        char k[16];
        snprintf(k, sizeof k, "cold%llu", (unsigned long long)i);
        cr_assert_eq(tkv_append_put(c, k, strlen(k), k, strlen(k), 5), TKV_OK);
    }
    for (int i = 0; i < 300; i++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK);
    }

    disk_full(true);
    int refused = 0;
    for (int i = 0; i < 50; i++) {
        /* Pipelined: a PUT and a GET of the same key in one batch. */
        cr_assert_eq(tkv_append_put(c, "during", 6, "no", 2, (uint64_t)i), TKV_OK);
        cr_assert_eq(tkv_append_get(c, "during", 6, TKV_LATEST), TKV_OK);
        tkv_reply r;
        int rc = tkv_read_reply(c, &r);
        cr_assert_neq(rc, TKV_OK, "a PUT was acknowledged while the disk was full");
        cr_assert_eq(tkv_err(c), TKV_EK_SERVER, "%s", tkv_errstr(c));
        cr_assert_eq(tkv_server_code(c), TKV_SC_STORAGE, "%s", tkv_errstr(c));
        rc = tkv_read_reply(c, &r);
        cr_assert_neq(rc, TKV_OK, "a read saw a write that was refused");
        refused++;
        /* Reads of committed data keep working. */
        expect_get(c, "before", 1, "ok");
        expect_get(c, "cold7", 5, "cold7");
    }
    cr_assert_eq(refused, 50);
    char *log = tkvd_log(&d);
    cr_assert_eq(count(log, "storage write failed"), 1, "logged once, not per request:\n%s", log);
    free(log);

    disk_full(false);
    /* Writes resume once the disk takes writes again (checked at most
     * every 100 ms): wait for that condition, bounded. */
    int rc = TKV_ERR;
    for (int i = 0; i < 500 && rc != TKV_OK; i++) {
        rc = tkv_put(c, "after", 5, "yes", 3, 2, NULL);
        if (rc != TKV_OK)
            usleep(10000);
    }
    cr_assert_eq(rc, TKV_OK, "writes did not resume: %s", tkv_errstr(c));
    log = tkvd_log(&d);
    cr_assert(strstr(log, "storage writes succeed again"), "log:\n%s", log);
    free(log);
    tkv_free(c);

    tkvd_signal(&d, SIGKILL);
    tkvd_restart(&d);
    c = tkvd_client(&d);
    expect_get(c, "before", 1, "ok");
    expect_get(c, "after", 2, "yes");
    for (int i = 0; i < 300; i += 37) {
        char k[16];
        snprintf(k, sizeof k, "cold%d", i);
        expect_get(c, k, 5, k);
    }
    tkv_free(c);
}

Test(storage, full_disk_fsync_always, .fini = teardown, .timeout = 60)
{
    full_disk_scenario("always");
}

Test(storage, full_disk_fsync_never, .fini = teardown, .timeout = 60)
{
    full_disk_scenario("never");
}

/* The disk has room for recovery's probe (a file beside db/) but not for
 * what LevelDB writes to reopen: the reopen fails and leaves the store
 * closed, memory forgotten, so every read needs the disk. A reader thread
 * once loaded from the closed store - a NULL LevelDB handle - and the
 * server died; reads must get STORAGE errors, and the server go on. */
Test(storage, reads_after_a_failed_reopen_get_errors_and_the_server_goes_on, .fini = teardown,
     .timeout = 60)
{
    static char preload[4200];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", getenv("TKV_FAULT_LIB"));
    const char *env[] = {preload, "TKV_FAULT_PATHS={dir}/db/:{dir}/wal/",
                         "TKV_FAULT_TRIGGER={dir}.full", NULL};
    const char *args[] = {"--readers", "2", NULL};
    tkvd_start_env(&d, args, env);
    snprintf(trigger, sizeof trigger, "%s.full", d.dir);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "before", 6, "ok", 2, 1, NULL), TKV_OK, "%s", tkv_errstr(c));

    disk_full(true);
    /* Each refused write retries recovery (at most every 100 ms): wait,
     * bounded, for one that got as far as the reopen and failed there. */
    bool reopen_failed = false;
    for (int i = 0; i < 500 && !reopen_failed; i++) {
        cr_assert_neq(tkv_put(c, "during", 6, "no", 2, 2, NULL), TKV_OK,
                      "a PUT was acknowledged while the disk was full");
        cr_assert_eq(tkv_server_code(c), TKV_SC_STORAGE, "%s", tkv_errstr(c));
        reopen_failed = strstr(tkv_errstr(c), "reopening the store failed") != NULL;
        if (!reopen_failed)
            usleep(10000);
    }
    cr_assert(reopen_failed, "no failed reopen: %s", tkv_errstr(c));

    for (int i = 0; i < 3; i++) {
        tkv_version v;
        cr_assert_neq(tkv_get(c, "before", 6, 1, &v), TKV_OK, "the store is closed");
        cr_assert_eq(tkv_err(c), TKV_EK_SERVER, "the server must answer: %s", tkv_errstr(c));
        cr_assert_eq(tkv_server_code(c), TKV_SC_STORAGE, "%s", tkv_errstr(c));
    }
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkvd_stat(c, "storage_failing"), 1);

    disk_full(false);
    int rc = TKV_ERR;
    for (int i = 0; i < 500 && rc != TKV_OK; i++) {
        rc = tkv_put(c, "after", 5, "yes", 3, 3, NULL);
        if (rc != TKV_OK)
            usleep(10000);
    }
    cr_assert_eq(rc, TKV_OK, "writes did not resume: %s", tkv_errstr(c));
    expect_get(c, "before", 1, "ok");
    tkv_free(c);

    tkvd_signal(&d, SIGKILL);
    tkvd_restart(&d);
    c = tkvd_client(&d);
    expect_get(c, "before", 1, "ok");
    expect_get(c, "after", 3, "yes");
    tkv_version v;
    cr_assert_neq(tkv_get(c, "during", 6, 2, &v), TKV_OK, "a refused PUT was stored");
    tkv_free(c);
}

Test(storage, corrupted_directory_fails_clearly_and_repair_recovers, .fini = teardown)
{
    tkvd_start(&d, NULL);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 1, NULL), TKV_OK);
    tkv_free(c);
    tkvd_stop(&d);
    /* Destroy the manifest pointer: LevelDB cannot find its state. */
    char path[4300];
    snprintf(path, sizeof path, "%s/db/CURRENT", d.dir);
    FILE *f = fopen(path, "w");
    fputs("MANIFEST-999999\n", f);
    fclose(f);
    const char *argv[] = {getenv("TKVD"), "--data-dir", d.dir, "--port", "0", NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_neq(rc, 0, "tkvd must refuse a damaged directory");
    cr_assert(strstr(err, "cannot open the database"), "stderr: %s", err);
    cr_assert(strstr(err, "--repair"), "the message points to the fix: %s", err);
    free(out);
    free(err);
    const char *repair[] = {getenv("TKVD"), "--data-dir", d.dir, "--repair", NULL};
    rc = run_capture(repair, NULL, &out, &err);
    cr_assert_eq(rc, 0, "repair: %s", err);
    free(out);
    free(err);
    tkvd_restart(&d);
    c = tkvd_client(&d);
    expect_get(c, "k", 1, "v");
    tkv_free(c);
}

/* ---- --compression ------------------------------------------------------ */

static tkvd other;

static void teardown_both(void)
{
    tkvd_cleanup(&d);
    tkvd_cleanup(&other);
}

enum { CMP_VERSIONS = 3000, CMP_VALUE = 2000 };

/* A value that compresses well, as neighbouring versions often do. */
static void cmp_value(char *buf, int v)
{
    int n = snprintf(buf, CMP_VALUE + 1, "version %05d:", v);
    for (int i = n; i < CMP_VALUE; i++)
        buf[i] = "time-versioned "[i % 15];
    buf[CMP_VALUE] = '\0';
}

/* 6 MB of versions: more than one LevelDB memtable, so at least one table
 * is written while the server runs. */
static void cmp_fill(tkvd *s)
{
    tkv_ctx *c = tkvd_client(s);
    static char val[CMP_VALUE + 1];
    for (int v = 0; v < CMP_VERSIONS; v++) {
        cmp_value(val, v);
        cr_assert_eq(tkv_append_put(c, "doc", 3, val, CMP_VALUE, (uint64_t)v + 1), TKV_OK);
    }
    for (int v = 0; v < CMP_VERSIONS; v++) {
        tkv_reply r;
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
        cr_assert_eq(r.status, TKV_OK, "PUT %d: %s", v, tkv_errstr(c));
    }
    tkv_free(c);
}

static void cmp_check(tkvd *s)
{
    tkv_ctx *c = tkvd_client(s);
    static char val[CMP_VALUE + 1];
    for (int v = 0; v < CMP_VERSIONS; v += 97) {
        cmp_value(val, v);
        expect_get(c, "doc", (uint64_t)v + 1, val);
    }
    tkv_free(c);
}

/* Bytes in LevelDB's table files. */
static long table_bytes(const tkvd *s)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "cat %s/db/*.ldb 2>/dev/null | wc -c", s->dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    long n = -1;
    cr_assert_eq(fscanf(p, "%ld", &n), 1);
    pclose(p);
    return n;
}

Test(storage, compression_none_stores_raw_tables_and_both_modes_read_each_other,
     .fini = teardown_both, .timeout = 60)
{
    /* A small write buffer: versions reach LevelDB while the test writes. */
    const char *none[] = {"--compression", "none", "--write-buffer", "256kb", NULL};
    const char *snappy_args[] = {"--write-buffer", "256kb", NULL};
    tkvd_start(&d, none);
    tkvd_start(&other, snappy_args);
    cmp_fill(&d);
    cmp_fill(&other);
    /* A clean stop moves the write buffer into LevelDB; a start writes
     * what LevelDB's own log holds to a table, in the server's mode. Then
     * every version is in a table. */
    tkvd_stop(&d);
    tkvd_stop(&other);
    tkvd_restart(&d);
    tkvd_restart(&other);
    tkvd_stop(&d);
    tkvd_stop(&other);
    long raw = table_bytes(&d), snappy = table_bytes(&other);
    /* 6 MB of values in each; Snappy shrinks these many times over. */
    cr_assert_gt(raw, 5L << 20, "uncompressed tables hold %ld bytes", raw);
    cr_assert_gt(snappy, 0, "no compressed table was written");
    cr_assert_lt(snappy * 4, raw, "snappy %ld bytes vs none %ld", snappy, raw);
    /* Swap the modes: every table stays readable. */
    d.args[0] = NULL;
    other.args[0] = "--compression";
    other.args[1] = "none";
    other.args[2] = NULL;
    tkvd_restart(&d);
    tkvd_restart(&other);
    cmp_check(&d);
    cmp_check(&other);
}

Test(storage, unknown_compression_is_refused)
{
    const char *argv[] = {getenv("TKVD"), "--compression", "lz4", "--port", "0", NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_eq(rc, 2, "rc %d, stderr: %s", rc, err);
    cr_assert(strstr(err, "--compression"), "stderr: %s", err);
    free(out);
    free(err);
}
