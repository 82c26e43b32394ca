/*
 * test_backups.c - DIGEST, BACKUP and restore against the real tkvd: the
 * digest depends on the visible state only (not on the path that built it,
 * the sweep or the cache) and on every part of it; a backup taken while
 * writers run restores to exactly the state its trailer names and holds
 * every write acknowledged before it began; a damaged backup is refused
 * with nothing written; tkvctl's commands and exit statuses.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "backup.h"
#include "harness.h"

static tkvd a, b;

/* This suite built with a sanitizer: so is the tkvd it starts. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED true
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED true
#endif
#endif
#ifndef SANITIZED
#define SANITIZED false
#endif

static void teardown(void)
{
    tkvd_cleanup(&a);
    tkvd_cleanup(&b);
}

static void put(tkv_ctx *c, const char *key, const char *val, uint64_t ts, uint64_t ttl)
{
    cr_assert_eq(tkv_put_ex(c, key, strlen(key), val, strlen(val), ts, 1, ttl, NULL), TKV_OK, "%s",
                 tkv_errstr(c));
}

static tkv_digest_info digest_at(tkv_ctx *c, uint64_t at)
{
    tkv_digest_info d;
    cr_assert_eq(tkv_digest(c, at, 1, &d), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(d.at, at);
    return d;
}

static bool same(const tkv_digest_info *x, const tkv_digest_info *y)
{
    return memcmp(x->digest, y->digest, TKV_DIGEST_LEN) == 0;
}

/* The data both servers of the path test hold: histories, a tombstone, a
 * key with a policy and a horizon, a binary key. */
static void load_common(tkv_ctx *c, bool reverse)
{
    for (int i = 0; i < 40; i++) {
        int k = reverse ? 39 - i : i;
        char key[16], val[16];
        snprintf(key, sizeof key, "key%02d", k);
        for (int v = 0; v < 3; v++) {
            int vv = reverse ? 2 - v : v;
            snprintf(val, sizeof val, "v%d-%d", k, vv);
            put(c, key, val, 100 + (uint64_t)vv * 10, 0);
        }
    }
    uint64_t ts;
    cr_assert_eq(tkv_del_at(c, "key07", 5, 125, 1, &ts), TKV_OK);
    tkv_retain_info r;
    cr_assert_eq(tkv_retain(c, "key03", 5, 1, 0, 0, &r), TKV_OK);
    cr_assert_eq(r.horizon, 120);
    cr_assert_eq(tkv_put(c, "b\0in", 4, "\0\1", 2, 7, NULL), TKV_OK);
}

/* More than a 64 KiB memory budget holds. */
static void load_padding(tkv_ctx *c)
{
    char val[1000];
    memset(val, 'p', sizeof val - 1);
    val[sizeof val - 1] = 0;
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof key, "pad%03d", i);
        put(c, key, val, 1, 0);
    }
}

static uint64_t now_us(tkv_ctx *c)
{
    tkv_digest_info d;
    cr_assert_eq(tkv_digest(c, 0, 0, &d), TKV_OK);
    return d.at;
}

Test(backups, empty_store_digest_is_sha256_of_nothing, .fini = teardown)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    tkv_digest_info d;
    cr_assert_eq(tkv_digest(c, 0, 0, &d), TKV_OK);
    char hex[65];
    tkv_bk_hex(d.digest, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cr_assert_eq(d.keys, 0);
    cr_assert_eq(d.versions, 0);
    cr_assert_gt(d.at, 0, "the reply names the clock it used");
    tkv_free(c);
}

/* One server evicts (a tiny memory budget), holds versions that have
 * expired and were swept, and wrote in one order; the other wrote the same
 * visible data in the opposite order and never saw the expired versions. */
Test(backups, digest_is_the_same_whatever_the_path, .fini = teardown, .timeout = 60)
{
    if (tkvd_wrapped())
        cr_skip_test("the digest: checked under valgrind by the other digest tests");
    const char *small[] = {"--max-memory", "64kb", NULL};
    tkvd_start(&a, small);
    tkvd_start(&b, NULL);
    tkv_ctx *ca = tkvd_client(&a), *cb = tkvd_client(&b);
    load_common(ca, false);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "key%02d", i);
        put(ca, key, "gone soon", 135, 1); /* expires at once */
        put(ca, "only-expired", "x", 1 + (uint64_t)i, 1);
    }
    load_common(cb, true);
    load_padding(ca);
    load_padding(cb);
    /* Wait for the sweep to delete what expired: then a's store and b's
     * differ, their visible state does not. */
    for (int i = 0; i < 200 && tkvd_stat(ca, "swept_expired") < 21; i++)
        usleep(20000);
    cr_assert_geq(tkvd_stat(ca, "swept_expired"), 21);
    cr_assert_gt(tkvd_stat(ca, "evictions"), 0);
    uint64_t at = now_us(ca);
    tkv_digest_info da = digest_at(ca, at), db = digest_at(cb, at);
    cr_assert(same(&da, &db));
    cr_assert_eq(da.keys, 241);
    cr_assert_eq(da.keys, db.keys);
    cr_assert_eq(da.versions, db.versions);
    tkv_free(ca);
    tkv_free(cb);
}

/* Each single change - a value byte, a timestamp, an expiry time, a
 * horizon, a policy - changes the digest, and undoing it brings the
 * digest back: it is a function of the visible state. */
Test(backups, any_single_change_changes_the_digest, .fini = teardown)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    load_common(c, false);
    put(c, "ttl", "t", 50, 3600000000ull);
    uint64_t at = now_us(c);
    tkv_digest_info d0 = digest_at(c, at), d;

    put(c, "key05", "v5-2", 120, 0); /* the same again: nothing changes */
    d = digest_at(c, at);
    cr_assert(same(&d, &d0));
    put(c, "key05", "v5-3", 120, 0); /* one value byte */
    d = digest_at(c, at);
    cr_assert(!same(&d, &d0));
    put(c, "key05", "v5-2", 120, 0);
    d = digest_at(c, at);
    cr_assert(same(&d, &d0));

    uint64_t removed; /* one timestamp: 120 becomes 121 */
    cr_assert_eq(tkv_del(c, "key05", 5, &removed), TKV_OK);
    put(c, "key05", "v5-0", 100, 0);
    put(c, "key05", "v5-1", 110, 0);
    put(c, "key05", "v5-2", 121, 0);
    d = digest_at(c, at);
    cr_assert(!same(&d, &d0));
    cr_assert_eq(tkv_del(c, "key05", 5, &removed), TKV_OK);
    put(c, "key05", "v5-0", 100, 0);
    put(c, "key05", "v5-1", 110, 0);
    put(c, "key05", "v5-2", 120, 0);
    d = digest_at(c, at);
    cr_assert(same(&d, &d0));

    put(c, "ttl", "t", 50, 7200000000ull); /* one expiry time */
    d = digest_at(c, at);
    cr_assert(!same(&d, &d0));

    tkv_digest_info d1 = d;
    tkv_retain_info r; /* a policy of its own, removing nothing */
    cr_assert_eq(tkv_retain(c, "key10", 5, 100, 0, 0, &r), TKV_OK);
    cr_assert_eq(r.horizon, 0);
    d = digest_at(c, at);
    cr_assert(!same(&d, &d1));
    cr_assert_eq(tkv_retain(c, "key10", 5, 0, 0, 0, &r), TKV_OK); /* back to the default */
    d = digest_at(c, at);
    cr_assert(same(&d, &d1));

    cr_assert_eq(tkv_retain(c, "key11", 5, 2, 0, 0, &r), TKV_OK); /* a horizon */
    cr_assert_eq(tkv_retain(c, "key11", 5, 0, 0, 0, &r), TKV_OK);
    tkv_policy_info p;
    cr_assert_eq(tkv_policy(c, "key11", 5, &p), TKV_OK);
    cr_assert_eq(p.horizon, 110);
    d = digest_at(c, at);
    cr_assert(!same(&d, &d1));
    tkv_free(c);
}

/* ---- backups ------------------------------------------------------------- */

typedef struct membuf {
    tkv_buf b;
    int calls;
} membuf;

static int to_mem(void *arg, const uint8_t *p, size_t n)
{
    membuf *m = arg;
    m->calls++;
    return tkv_buf_append(&m->b, p, n);
}

static char *write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
    return path;
}

typedef struct writer {
    const tkvd *d;
    int id;
    atomic_int acked; /* versions acknowledged so far: ts 1..acked */
    atomic_bool stop;
} writer;

/* Besides the numbered versions of its own key, which the test checks one
 * by one, each writer makes every other kind of change as it goes - MPUTs,
 * tombstones, versions that expire, whole-key DELs, a policy that moves a
 * horizon - for the digest to cover. */
static int other_writes(tkv_ctx *c, int id, int i)
{
    char k2[16], k3[16], val[32];
    snprintf(k2, sizeof k2, "m%d-%d", id, i % 50);
    snprintf(k3, sizeof k3, "d%d-%d", id, i % 7);
    snprintf(val, sizeof val, "%d", i);
    tkv_item items[2] = {
        {.key = {(const uint8_t *)k2, strlen(k2)}, .value = {(const uint8_t *)val, strlen(val)}},
        {.key = {(const uint8_t *)k3, strlen(k3)},
         .value = {(const uint8_t *)val, strlen(val)},
         .ts = (uint64_t)i,
         .has_ts = 1,
         .ttl = i % 3 ? 3600000000ull : 0}};
    uint64_t n;
    tkv_retain_info r;
    switch (i % 4) {
    case 0: return tkv_mput(c, items, 2, NULL);
    case 1: return tkv_del_at(c, k3, strlen(k3), (uint64_t)i, 1, &n);
    case 2: return i % 20 == 2 ? tkv_del(c, k2, strlen(k2), &n) : TKV_OK;
    default:
        if (i % 40 != 3)
            return TKV_OK;
        /* A horizon, then no policy: a policy left on the key would be
         * enforced by each server's sweep in its own time, which changes
         * what reads see (PROTOCOL.md, DIGEST) - not what this checks. */
        if (tkv_retain(c, k3, strlen(k3), 2, 0, 0, &r) != TKV_OK)
            return TKV_ERR;
        return tkv_retain(c, k3, strlen(k3), 0, 0, 0, &r);
    }
}

static void *write_loop(void *arg)
{
    writer *w = arg;
    tkv_ctx *c = tkvd_client(w->d);
    char key[16], val[32];
    snprintf(key, sizeof key, "w%d", w->id);
    for (int i = 1; !atomic_load(&w->stop); i++) {
        snprintf(val, sizeof val, "w%d-%d", w->id, i);
        if (tkv_put(c, key, strlen(key), val, strlen(val), (uint64_t)i, NULL) != TKV_OK)
            break;
        atomic_store(&w->acked, i);
        if (other_writes(c, w->id, i) != TKV_OK)
            break;
    }
    tkv_free(c);
    return NULL;
}

/* A backup taken while two clients write restores to exactly the digest
 * in its trailer - the source's state at the backup's moment - holds every
 * version acknowledged before the backup began, and none written after it
 * ended. */
Test(backups, backup_while_writers_run_restores_to_its_digest, .fini = teardown, .timeout = 60)
{
    const char *args[] = {"--max-memory", "256kb", NULL};
    tkvd_start(&a, args);
    tkv_ctx *c = tkvd_client(&a);
    load_common(c, false);
    put(c, "ttl", "t", 50, 3600000000ull);
    /* Enough data for many frames (256 KiB each). */
    char big[4000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    for (int i = 0; i < 400; i++) {
        char key[16];
        snprintf(key, sizeof key, "big%03d", i);
        put(c, key, big, 1, 0);
    }
    writer w[2] = {{.d = &a, .id = 0}, {.d = &a, .id = 1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, write_loop, &w[i]);
    while (atomic_load(&w[0].acked) < 50 || atomic_load(&w[1].acked) < 50)
        usleep(1000);
    int before[2] = {atomic_load(&w[0].acked), atomic_load(&w[1].acked)};
    membuf m = {0};
    tkv_digest_info info;
    cr_assert_eq(tkv_backup(c, to_mem, &m, &info), TKV_OK, "%s", tkv_errstr(c));
    /* Version after[i] + 2 is sent only once after[i] + 1 is acknowledged,
     * which is after this read, after the backup ended: it must not be in
     * the backup. The writers go on until they have written it. */
    int after[2] = {atomic_load(&w[0].acked), atomic_load(&w[1].acked)};
    for (int i = 0; i < 2; i++) {
        while (atomic_load(&w[i].acked) < after[i] + 2)
            usleep(1000);
        atomic_store(&w[i].stop, true);
        pthread_join(th[i], NULL);
    }
    cr_assert_gt(m.calls, 4, "streamed in several frames");
    cr_assert_eq(info.bytes, m.b.len);

    char *dir = tmpdir_make("bk");
    char *file = write_file(dir, "one.tkvbak", m.b.data, m.b.len);
    tkvd_start_restored(&b, NULL, file);
    tkv_ctx *r = tkvd_client(&b);
    tkv_digest_info got = digest_at(r, info.at);
    cr_assert(same(&got, &info), "restored state = the backup's moment");
    cr_assert_eq(got.versions, info.versions);
    for (int i = 0; i < 2; i++) {
        char key[16], val[32];
        snprintf(key, sizeof key, "w%d", i);
        for (int ts = 1; ts <= before[i]; ts++) {
            tkv_version v;
            cr_assert_eq(tkv_get(r, key, strlen(key), (uint64_t)ts, &v), TKV_OK);
            snprintf(val, sizeof val, "w%d-%d", i, ts);
            cr_assert_eq(v.ts, (uint64_t)ts, "%s@%d acknowledged before the backup", key, ts);
            cr_assert(v.len == strlen(val) && memcmp(v.value, val, v.len) == 0);
        }
        tkv_version v;
        int rc = tkv_get(r, key, strlen(key), (uint64_t)after[i] + 2, &v);
        cr_assert(rc == TKV_OK && v.ts < (uint64_t)after[i] + 2,
                  "%s@%d was written after the backup ended, yet it is in it", key, after[i] + 2);
    }
    tkv_version v; /* expiry times come back exactly */
    cr_assert_eq(tkv_get(r, "ttl", 3, TKV_LATEST, &v), TKV_OK);
    tkv_version src;
    cr_assert_eq(tkv_get(c, "ttl", 3, TKV_LATEST, &src), TKV_OK);
    cr_assert_eq(v.expires, src.expires);
    tkv_policy_info p;
    cr_assert_eq(tkv_policy(r, "key03", 5, &p), TKV_OK);
    cr_assert(p.own && p.versions == 1 && p.horizon == 120);
    tkv_free(r);
    tkv_free(c);
    free(file);
    tkvd_cleanup(&b);
    tmpdir_remove(dir);
    tkv_buf_deinit(&m.b);
}

/* With nothing written meanwhile, the backup's digest is the source's
 * DIGEST at the backup's moment. */
Test(backups, quiet_backup_digest_is_the_sources_digest, .fini = teardown)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    load_common(c, false);
    membuf m = {0};
    tkv_digest_info info;
    cr_assert_eq(tkv_backup(c, to_mem, &m, &info), TKV_OK, "%s", tkv_errstr(c));
    tkv_digest_info d = digest_at(c, info.at);
    cr_assert(same(&d, &info));
    cr_assert_eq(d.keys, info.keys);
    /* The connection is in step afterwards. */
    cr_assert_eq(tkv_ping(c), TKV_OK);
    tkv_free(c);
    tkv_buf_deinit(&m.b);
}

/* The server's anonymous resident memory, in KiB: LevelDB reads its
 * tables through mmap, which VmRSS would count. */
static uint64_t rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %" SCNu64, &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* The server's anonymous memory once it stops growing (a server that
 * went on producing for a stalled reader would grow to the whole backup). */
static uint64_t settled_rss_kb(pid_t pid)
{
    uint64_t last = rss_kb(pid);
    for (int i = 0; i < 100; i++) {
        usleep(100000);
        uint64_t now = rss_kb(pid);
        if (now <= last + 64)
            return now;
        last = now;
    }
    return last;
}

/* The bytes waiting unread on fd once they stop growing: the server has
 * stopped sending to the stalled reader. */
static int settled_unread(int fd)
{
    int last = -1;
    for (int i = 0; i < 400; i++) {
        int now;
        cr_assert_eq(ioctl(fd, FIONREAD, &now), 0);
        if (now == last && now > 0)
            return now;
        last = now;
        usleep(50000);
    }
    cr_assert_fail("the stream never stalled");
    return 0;
}

/* A client that does not read its backup holds up only itself: the
 * server stops producing above the connection's output limit (its memory
 * does not take the 30 MB: about 6 MB here, the whole without the limit),
 * serves others meanwhile, and the backup is
 * whole once read. */
Test(backups, unread_backup_does_not_block_others, .fini = teardown, .timeout = 120)
{
    const char *args[] = {"--block-cache", "1mb", NULL};
    tkvd_start(&a, args);
    tkv_ctx *c = tkvd_client(&a);
    char big[60000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    for (int i = 0; i < 500; i++) { /* 30 MB */
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        put(c, key, big, 1, 0);
    }
    /* Under valgrind, TSan or ASan memory says little (ASan's quarantine
     * alone keeps every block LevelDB read and freed): the rest holds. */
    const char *wrap = getenv("TKVD_WRAPPER"), *other = getenv("TKVD_OVERRIDE");
    bool plain = (!wrap || !*wrap) && (!other || !*other) && !SANITIZED;
    uint64_t rss0 = rss_kb(a.pid);
    int fd = tkvd_raw(&a);
    raw_send(fd,
             "\x00\x00\x00\x08\x91\xa6"
             "BACKUP",
             12);
    int unread = settled_unread(fd);
    /* Other clients are served, and the loop turns for them: each turn
     * would produce more for the stalled reader, were it not held back. */
    for (int i = 0; i < 40; i++)
        put(c, "other", "served", 1000 + (uint64_t)i, 0);
    uint64_t rss1 = plain ? settled_rss_kb(a.pid) : 0;
    int now;
    cr_assert_eq(ioctl(fd, FIONREAD, &now), 0);
    cr_assert_eq(now, unread, "nothing more was sent to the stalled reader");
    cr_assert_lt(unread, 16 << 20, "the stream stalled before its end");
    if (plain)
        cr_assert_lt(rss1 - rss0, 12 * 1024, "the server buffered %" PRIu64 " KiB for it",
                     rss1 - rss0);
    /* Now read it all: frames until `last`, and the bytes form a backup. */
    uint8_t *frame = malloc(1 << 20);
    tkv_bk_reader bk;
    tkv_bk_reader_init(&bk, 1 << 20);
    tkv_buf hold = {0};
    tkv_bk_rc rc = TKV_BK_MORE;
    for (bool last = false; !last;) {
        long n = raw_frame(fd, frame, 1 << 20);
        cr_assert_gt(n, 0);
        cr_assert_eq(frame[0], 0x93);
        cr_assert_eq(frame[1], 0x00);
        cr_assert_eq(frame[2], 0xc6, "bin 32 header");
        uint32_t len = (uint32_t)frame[3] << 24 | (uint32_t)frame[4] << 16 |
                       (uint32_t)frame[5] << 8 | frame[6];
        cr_assert_leq(len, 256 * 1024, "frames are bounded");
        tkv_buf_append(&hold, frame + 7, len);
        last = frame[7 + len] == 0xc3;
        size_t at = 0, used;
        tkv_bk_rec rec;
        while ((rc = tkv_bk_read(&bk, hold.data + at, hold.len - at, &rec, &used)) == TKV_BK_REC)
            at += used;
        at += used;
        tkv_buf_consume(&hold, at);
    }
    cr_assert_eq(rc, TKV_BK_DONE, "%s", bk.err);
    cr_assert_eq(bk.versions, 500);
    close(fd);
    free(frame);
    tkv_buf_deinit(&hold);
    tkv_free(c);
}

/* ---- tkvctl and tkvd --restore -------------------------------------------- */

static int run(char **out, char **err, const char *const *argv)
{
    char *o, *e;
    int rc = run_capture(argv, NULL, &o, &e);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return rc;
}

/* The value of "name: value" in tkvctl's text output. */
static const char *field(const char *out, const char *name, char *buf, size_t cap)
{
    const char *p = strstr(out, name);
    cr_assert_not_null(p, "no %s in %s", name, out);
    p += strlen(name) + 2;
    size_t n = strcspn(p, "\n");
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    return buf;
}

Test(backups, tkvctl_round_trip_and_damaged_files, .fini = teardown, .timeout = 60)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    load_common(c, false);
    char port[8], path[4200], digest[80], at[40], at_us[48];
    snprintf(port, sizeof port, "%u", a.port);
    char *dir = tmpdir_make("bk");
    snprintf(path, sizeof path, "%s/x.tkvbak", dir);
    const char *ctl = getenv("TKVCTL"), *server = getenv("TKVD");
    char *out, *err;
    const char *bk[] = {ctl, "-p", port, "backup", path, NULL};
    cr_assert_eq(run(&out, &err, bk), 0, "%s", err);
    field(out, "digest", digest, sizeof digest);
    field(out, "at", at, sizeof at);
    snprintf(at_us, sizeof at_us, "%sus", at);
    free(out);
    free(err);
    cr_assert_eq(access(path, F_OK), 0);

    const char *ver[] = {ctl, "verify", path, NULL};
    cr_assert_eq(run(&out, NULL, ver), 0);
    char d2[80];
    cr_assert_str_eq(field(out, "digest", d2, sizeof d2), digest);
    free(out);

    /* The same digest from the source, from tkvctl digest --at. */
    const char *dg[] = {ctl, "-p", port, "digest", "--at", at_us, NULL};
    cr_assert_eq(run(&out, NULL, dg), 0);
    cr_assert_str_eq(field(out, "digest", d2, sizeof d2), digest);
    free(out);

    /* Restored, the server answers the same digest. */
    tkvd_start_restored(&b, NULL, path);
    char bport[8];
    snprintf(bport, sizeof bport, "%u", b.port);
    const char *dgb[] = {ctl, "-p", bport, "digest", "--at", at_us, NULL};
    cr_assert_eq(run(&out, NULL, dgb), 0);
    cr_assert_str_eq(field(out, "digest", d2, sizeof d2), digest);
    free(out);

    /* Into a directory that holds anything: refused, nothing touched. */
    const char *busy[] = {server, "--restore", path, "--data-dir", b.dir, NULL};
    cr_assert_eq(run(NULL, &err, busy), 1);
    cr_assert(strstr(err, "not empty"), "%s", err);
    free(err);

    /* One flipped byte anywhere, or a truncation: refused by verify and by
     * restore, and the data directory is not even created. */
    FILE *f = fopen(path, "rb");
    uint8_t data[65536];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    cr_assert_lt(n, sizeof data);
    size_t spots[] = {3, 30, n / 2, n - 40, n - 1};
    for (int i = 0; i < 6; i++) {
        char *bad;
        if (i < 5) {
            data[spots[i]] ^= 0x10;
            bad = write_file(dir, "bad.tkvbak", data, n);
            data[spots[i]] ^= 0x10;
        } else {
            bad = write_file(dir, "bad.tkvbak", data, n - 7);
        }
        const char *v[] = {ctl, "verify", bad, NULL};
        cr_assert_eq(run(NULL, &err, v), 2);
        cr_assert(strstr(err, "not a valid backup"), "%s", err);
        free(err);
        char target[4200];
        snprintf(target, sizeof target, "%s/restored", dir);
        const char *rs[] = {server, "--restore", bad, "--data-dir", target, NULL};
        cr_assert_eq(run(NULL, &err, rs), 1);
        cr_assert(strstr(err, "not a valid backup"), "%s", err);
        cr_assert_neq(access(target, F_OK), 0, "nothing written for a damaged backup");
        free(err);
        free(bad);
    }

    /* Exit statuses: a server that is not there, a file that cannot be made. */
    const char *nowhere[] = {ctl, "-p", port, "backup", "/nonexistent/dir/x", NULL};
    cr_assert_eq(run(NULL, NULL, nowhere), 2);
    const char *none[] = {ctl, "verify", "/nonexistent/x", NULL};
    cr_assert_eq(run(NULL, NULL, none), 2);
    tkv_free(c);
    tmpdir_remove(dir);
}

/* ---- restore into a running server ------------------------------------------ */

static tkv_digest_info backup_to_file(tkv_ctx *c, const char *dir, const char *name, char **path)
{
    membuf m = {0};
    tkv_digest_info info;
    cr_assert_eq(tkv_backup(c, to_mem, &m, &info), TKV_OK, "%s", tkv_errstr(c));
    *path = write_file(dir, name, m.b.data, m.b.len);
    tkv_buf_deinit(&m.b);
    return info;
}

Test(backups, tkvctl_restore_into_a_running_server, .fini = teardown, .timeout = 60)
{
    if (tkvd_wrapped())
        cr_skip_test("restore into a running server: checked under valgrind by "
                     "restore_merge_keeps_what_the_target_has");
    tkvd_start(&a, NULL);
    tkvd_start(&b, NULL);
    tkv_ctx *ca = tkvd_client(&a), *cb = tkvd_client(&b);
    load_common(ca, false);
    put(ca, "ttl", "t", 50, 3600000000ull);
    /* One key with more versions than one RESTORE request carries. */
    tkv_item items[500];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 500; i++)
            items[i] = (tkv_item){.key = {(const uint8_t *)"long", 4},
                                  .value = {(const uint8_t *)"x", 1},
                                  .ts = (uint64_t)(round * 500 + i + 1),
                                  .has_ts = 1};
        cr_assert_eq(tkv_mput(ca, items, 500, NULL), TKV_OK);
    }
    char *dir = tmpdir_make("bk"), *file;
    tkv_digest_info info = backup_to_file(ca, dir, "r.tkvbak", &file);
    char port[8], at_us[48], got[80], want[65];
    snprintf(port, sizeof port, "%u", b.port);
    snprintf(at_us, sizeof at_us, "%lluus", (unsigned long long)info.at);
    tkv_bk_hex(info.digest, want);
    const char *ctl = getenv("TKVCTL");
    char *out, *err;
    const char *rs[] = {ctl, "-p", port, "restore", file, NULL};
    cr_assert_eq(run(&out, &err, rs), 0, "%s", err);
    char all[24];
    snprintf(all, sizeof all, "%llu", (unsigned long long)info.versions);
    cr_assert_eq(info.versions, 2621);
    cr_assert_str_eq(field(out, "written", got, sizeof got), all);
    free(out);
    free(err);
    tkv_digest_info d = digest_at(cb, info.at);
    cr_assert(same(&d, &info), "restored into a running server: the backup's digest");
    tkv_version v, src;
    cr_assert_eq(tkv_get(cb, "ttl", 3, TKV_LATEST, &v), TKV_OK);
    cr_assert_eq(tkv_get(ca, "ttl", 3, TKV_LATEST, &src), TKV_OK);
    cr_assert_eq(v.expires, src.expires);

    /* Again: the server has the keys now. Refused without --merge; with
     * it, nothing is written twice and the state is the same. */
    cr_assert_eq(run(NULL, &err, rs), 2);
    cr_assert(strstr(err, "holds keys"), "%s", err);
    free(err);
    const char *mg[] = {ctl, "-p", port, "restore", file, "--merge", NULL};
    cr_assert_eq(run(&out, NULL, mg), 0);
    cr_assert_str_eq(field(out, "written", got, sizeof got), "0");
    cr_assert_str_eq(field(out, "digest", got, sizeof got), want);
    free(out);
    d = digest_at(cb, info.at);
    cr_assert(same(&d, &info));

    /* A damaged file sends nothing. */
    tkvd_cleanup(&b);
    tkvd_start(&b, NULL);
    snprintf(port, sizeof port, "%u", b.port);
    FILE *f = fopen(file, "r+b");
    fseek(f, 200, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    const char *bad[] = {ctl, "-p", port, "restore", file, NULL};
    cr_assert_eq(run(NULL, &err, bad), 2);
    cr_assert(strstr(err, "not a valid backup"), "%s", err);
    free(err);
    tkv_ctx *cb2 = tkvd_client(&b);
    cr_assert_eq(tkvd_stat(cb2, "keys"), 0, "nothing was written");
    tkv_free(cb2);
    tkv_free(ca);
    tkv_free(cb);
    free(file);
    tmpdir_remove(dir);
}

/* A key with only a policy is state a restore would collide with: tkvctl
 * says so before sending anything (SCAN alone lists it not). */
Test(backups, tkvctl_restore_sees_a_policy_only_key, .fini = teardown, .timeout = 60)
{
    tkvd_start(&a, NULL);
    tkvd_start(&b, NULL);
    tkv_ctx *ca = tkvd_client(&a), *cb = tkvd_client(&b);
    put(ca, "k", "v", 5, 0);
    char *dir = tmpdir_make("bk"), *file;
    backup_to_file(ca, dir, "p.tkvbak", &file);
    tkv_retain_info ri;
    cr_assert_eq(tkv_retain(cb, "k", 1, 3, 0, 0, &ri), TKV_OK);
    char port[8], *err;
    snprintf(port, sizeof port, "%u", b.port);
    const char *rs[] = {getenv("TKVCTL"), "-p", port, "restore", file, NULL};
    cr_assert_eq(run(NULL, &err, rs), 2);
    cr_assert(strstr(err, "holds keys"), "%s", err);
    free(err);
    tkv_version v;
    cr_assert_eq(tkv_get(cb, "k", 1, TKV_LATEST, &v), TKV_NOT_FOUND, "something was written");
    tkv_free(ca);
    tkv_free(cb);
    free(file);
    tmpdir_remove(dir);
}

/* A server with small limits still takes a backup: the client sizes its
 * RESTORE requests by the limits STATS reports. */
Test(backups, restore_fits_the_servers_limits, .fini = teardown, .timeout = 60)
{
    tkvd_start(&a, NULL);
    const char *small[] = {"--max-batch", "7",         "--max-frame", "2kb", "--max-value",
                           "512",         "--max-key", "64",          NULL};
    tkvd_start(&b, small);
    tkv_ctx *ca = tkvd_client(&a), *cb = tkvd_client(&b);
    cr_assert_eq(tkvd_stat(cb, "max_batch"), 7);
    cr_assert_eq(tkvd_stat(cb, "max_frame"), 2048);
    char val[300];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(tkv_put(ca, "k", 1, val, sizeof val, (uint64_t)i + 1, NULL), TKV_OK);
    membuf m = {0};
    tkv_digest_info info;
    cr_assert_eq(tkv_backup(ca, to_mem, &m, &info), TKV_OK, "%s", tkv_errstr(ca));
    tkv_restore_info r;
    cr_assert_eq(tkv_restore(cb, m.b.data, m.b.len, 0, &r), TKV_OK, "%s", tkv_errstr(cb));
    /* 2 KiB frames hold 6 versions of 300 bytes: more requests than 7 a
     * time would need. */
    cr_assert_geq(r.requests, 10, "the requests were not cut to the server's frame");
    tkv_digest_info d = digest_at(cb, info.at);
    cr_assert(same(&d, &info));
    tkv_buf_deinit(&m.b);
    tkv_free(ca);
    tkv_free(cb);
}

/* Merge keeps what the target has - its version at a timestamp the backup
 * also has, its horizon - and adds the rest; without merge a key the
 * target has refuses the request whole. */
Test(backups, restore_merge_keeps_what_the_target_has, .fini = teardown)
{
    tkvd_start(&a, NULL);
    tkvd_start(&b, NULL);
    tkv_ctx *ca = tkvd_client(&a), *cb = tkvd_client(&b);
    put(ca, "k", "theirs", 5, 0);
    put(ca, "k", "new", 6, 0);
    put(ca, "x", "only in the backup", 1, 0);
    membuf m = {0};
    tkv_digest_info info;
    cr_assert_eq(tkv_backup(ca, to_mem, &m, &info), TKV_OK);
    put(cb, "k", "mine", 5, 0);
    tkv_restore_info r;
    cr_assert_eq(tkv_restore(cb, m.b.data, m.b.len, 0, &r), TKV_ERR);
    cr_assert_eq(tkv_server_code(cb), TKV_SC_BAD_REQUEST);
    cr_assert(strstr(tkv_errstr(cb), "'k' exists"), "%s", tkv_errstr(cb));
    tkv_version v;
    cr_assert_eq(tkv_get(cb, "x", 1, TKV_LATEST, &v), TKV_NOT_FOUND, "nothing was written");
    cr_assert_eq(tkv_restore(cb, m.b.data, m.b.len, TKV_RESTORE_MERGE, &r), TKV_OK, "%s",
                 tkv_errstr(cb));
    cr_assert_eq(r.written, 2);
    cr_assert_eq(r.skipped, 1);
    cr_assert_eq(tkv_get(cb, "k", 1, 5, &v), TKV_OK);
    cr_assert(v.len == 4 && memcmp(v.value, "mine", 4) == 0);
    cr_assert_eq(tkv_get(cb, "k", 1, 6, &v), TKV_OK);
    cr_assert(v.len == 3 && memcmp(v.value, "new", 3) == 0);
    cr_assert_eq(tkv_get(cb, "x", 1, TKV_LATEST, &v), TKV_OK);
    /* A damaged backup is refused before anything is sent. */
    m.b.data[m.b.len / 2] ^= 1;
    cr_assert_eq(tkv_restore(cb, m.b.data, m.b.len, TKV_RESTORE_MERGE, &r), TKV_ERR);
    cr_assert_eq(tkv_err(cb), TKV_EK_USAGE);
    cr_assert_eq(r.requests, 0);
    cr_assert_eq(tkv_ping(cb), TKV_OK);
    tkv_buf_deinit(&m.b);
    tkv_free(ca);
    tkv_free(cb);
}

/* SIGTERM during a BACKUP: the stream ends with an error frame (what came
 * before it is no backup), the connection then closes, and tkvd exits 0. */
Test(backups, shutdown_ends_a_stream_with_an_error, .fini = teardown, .timeout = 60)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    char big[60000];
    memset(big, 's', sizeof big - 1);
    big[sizeof big - 1] = 0;
    for (int i = 0; i < 100; i++) { /* 6 MB: more than the socket buffers hold */
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        put(c, key, big, 1, 0);
    }
    tkv_free(c);
    int fd = tkvd_raw(&a);
    raw_send(fd,
             "\x00\x00\x00\x08\x91\xa6"
             "BACKUP",
             12);
    settled_unread(fd);
    kill(a.pid, SIGTERM);
    uint8_t *frame = malloc(1 << 20);
    long n;
    int chunks = 0;
    while ((n = raw_frame(fd, frame, 1 << 20)) > 0 && frame[1] == 0x00) {
        cr_assert_eq(frame[0], 0x93);
        chunks++;
    }
    cr_assert_gt(n, 0, "an error frame, not just the end of the connection");
    cr_assert_eq(frame[0], 0x92);
    cr_assert_eq(frame[1], 21, "BUSY");
    cr_assert(memmem(frame, (size_t)n, "shutting down", 13));
    cr_assert_gt(chunks, 0);
    cr_assert(raw_wait_eof(fd, 10000));
    close(fd);
    free(frame);
    int st = tkvd_signal(&a, SIGTERM);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

/* ---- hostile and malformed requests, as raw frames --------------------------- */

typedef struct rawreq {
    uint8_t b[1 << 19];
    size_t n;
} rawreq;

static void rr_bytes(rawreq *q, const void *p, size_t n)
{
    memcpy(q->b + q->n, p, n);
    q->n += n;
}

static void rr_be(rawreq *q, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        q->b[q->n++] = (uint8_t)(v >> (8 * i));
}

/* A backup record: type, length, body. */
static void rr_rec(rawreq *q, char type, const void *body, size_t n)
{
    q->b[q->n++] = (uint8_t)type;
    rr_be(q, n, 4);
    rr_bytes(q, body, n);
}

static void rr_key(rawreq *q, size_t klen)
{
    uint8_t body[21 + 4096] = {0};
    memset(body + 21, 'k', klen);
    rr_rec(q, 'K', body, 21 + klen);
}

static void rr_version(rawreq *q, uint64_t ts, uint8_t kind, uint64_t expires)
{
    uint8_t body[17];
    for (int i = 0; i < 8; i++) {
        body[i] = (uint8_t)(ts >> (56 - 8 * i));
        body[9 + i] = (uint8_t)(expires >> (56 - 8 * i));
    }
    body[8] = kind;
    rr_rec(q, 'V', body, sizeof body);
}

/* Appends a whole frame ["RESTORE", bin(records)], or with cont
 * ["RESTORE", bin(records), nil, true] (a key continued from the last
 * request), to f. */
static void rr_restore_frame(rawreq *f, const rawreq *records, bool cont)
{
    size_t len_at = f->n;
    rr_be(f, 0, 4); /* the length, patched below */
    rr_bytes(f, cont ? "\x94\xa7RESTORE\xc6" : "\x92\xa7RESTORE\xc6", 10);
    rr_be(f, records->n, 4);
    rr_bytes(f, records->b, records->n);
    if (cont)
        rr_bytes(f, "\xc0\xc3", 2); /* merge nil, continue true */
    uint32_t len = (uint32_t)(f->n - len_at - 4);
    for (int i = 0; i < 4; i++)
        f->b[len_at + i] = (uint8_t)(len >> (24 - 8 * i));
}

/* A whole frame ["PUT", "p", "v"], to stage a write beside a RESTORE. */
static const uint8_t put_p_frame[] = {0,   0,   0,    0x0a, 0x94, 0xa3, 'P',
                                      'U', 'T', 0xa1, 'p',  0xa1, 'v',  0x05};

/* Sends ["RESTORE", bin(records)] and returns the reply's status; the
 * message goes to msg. */
static int send_restore(int fd, const rawreq *records, char *msg, size_t cap)
{
    static rawreq f;
    f.n = 0;
    rr_restore_frame(&f, records, false);
    raw_send(fd, f.b, f.n);
    uint8_t reply[512];
    long n = raw_frame(fd, reply, sizeof reply);
    cr_assert_gt(n, 2);
    msg[0] = 0;
    if (reply[0] == 0x92 && (reply[2] & 0xe0) == 0xa0) /* [status, fixstr] */
        snprintf(msg, cap, "%.*s", reply[2] & 0x1f, (const char *)reply + 3);
    else if (reply[0] == 0x92 && reply[2] == 0xd9)
        snprintf(msg, cap, "%.*s", reply[3], (const char *)reply + 4);
    return reply[1];
}

Test(backups, malformed_restores_are_refused_whole, .fini = teardown)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    int fd = tkvd_raw(&a);
    char msg[256];
    static rawreq q;

    q.n = 0;
    rr_bytes(&q, "xyzzy", 5);
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 10);
    cr_assert(strstr(msg, "unknown record type"), "%s", msg);
    q.n = 0;
    rr_bytes(&q, "K\0", 2); /* shorter than a record's head */
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 10);
    cr_assert(strstr(msg, "cut short"), "%s", msg);

    q.n = 0;
    rr_version(&q, 1, 0, 0);
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 10);
    cr_assert(strstr(msg, "before any key"), "%s", msg);

    q.n = 0;
    rr_key(&q, 2000); /* above --max-key */
    rr_version(&q, 1, 0, 0);
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 12);

    q.n = 0;
    rr_key(&q, 3);
    rr_version(&q, 1, 0, 0);
    q.n -= 5; /* the last record cut short */
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 10);
    cr_assert(strstr(msg, "cut short"), "%s", msg);

    q.n = 0;
    rr_key(&q, 3);
    uint8_t trailer[80] = {0};
    rr_rec(&q, 'E', trailer, sizeof trailer);
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 10);
    cr_assert(strstr(msg, "trailer"), "%s", msg);

    q.n = 0;
    rr_key(&q, 3);
    rr_version(&q, 1, 1, 99); /* a tombstone that expires */
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 10);

    q.n = 0;
    rr_key(&q, 3);
    rr_version(&q, 1, 2, 0); /* an unknown kind */
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 10);

    q.n = 0; /* more versions than --max-batch, the first ones valid */
    rr_key(&q, 3);
    for (int i = 0; i < 10001; i++)
        rr_version(&q, (uint64_t)(10001 - i), 0, 0); /* newest first */
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 12);

    cr_assert_eq(tkvd_stat(c, "keys"), 0, "nothing was written by any of them");

    /* And a good one, on the same connection: it is still in step. */
    q.n = 0;
    rr_key(&q, 3);
    rr_version(&q, 7, 0, 0);
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 0);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "kkk", 3, TKV_LATEST, &v), TKV_OK);
    cr_assert_eq(v.ts, 7);
    close(fd);
    tkv_free(c);
}

/* Pipelined PUT, BACKUP, GET: the PUT (staged in the same turn) is in the
 * backup, the backup's frames come between the two replies, and the GET
 * is answered after them. DIGEST and BACKUP refuse bad arguments. */
Test(backups, backup_keeps_pipeline_order, .fini = teardown)
{
    tkvd_start(&a, NULL);
    int fd = tkvd_raw(&a);
    static const uint8_t pipeline[] = {
        0, 0, 0, 0x0a, 0x94, 0xa3, 'P', 'U', 'T', 0xa1, 'k', 0xa1, 'v', 0x05, /* PUT k v 5 */
        0, 0, 0, 0x08, 0x91, 0xa6, 'B', 'A', 'C', 'K',  'U', 'P',             /* BACKUP */
        0, 0, 0, 0x07, 0x92, 0xa3, 'G', 'E', 'T', 0xa1, 'k'};                 /* GET k */
    raw_send(fd, pipeline, sizeof pipeline);
    uint8_t f[4096];
    cr_assert_eq(raw_frame(fd, f, sizeof f), 3);
    cr_assert(memcmp(f, "\x92\x00\x05", 3) == 0, "PUT's reply first");
    long n = raw_frame(fd, f, sizeof f);
    cr_assert_gt(n, 0);
    cr_assert_eq(f[0], 0x93);
    cr_assert_eq(f[n - 1], 0xc3, "one frame holds this small backup");
    cr_assert(memmem(f, (size_t)n, "\x56\x00\x00\x00\x12\x00\x00\x00\x00\x00\x00\x00\x05", 13),
              "the PUT's version is in it");
    n = raw_frame(fd, f, sizeof f);
    cr_assert_gt(n, 0);
    cr_assert_eq(f[0], 0x95, "GET's answer last");

    static const uint8_t bad[] = {
        0, 0, 0, 0x09, 0x92, 0xa6, 'D', 'I', 'G', 'E', 'S', 'T', 0xff,  /* at -1 */
        0, 0, 0, 0x09, 0x92, 0xa6, 'B', 'A', 'C', 'K', 'U', 'P', 0x01,  /* an argument */
        0, 0, 0, 0x09, 0x92, 0xa6, 'D', 'I', 'G', 'E', 'S', 'T', 0xc3}; /* at true */
    raw_send(fd, bad, sizeof bad);
    cr_assert_gt(raw_frame(fd, f, sizeof f), 0);
    cr_assert_eq(f[1], 13, "a negative at is OUT_OF_RANGE");
    cr_assert_gt(raw_frame(fd, f, sizeof f), 0);
    cr_assert_eq(f[1], 10);
    cr_assert_gt(raw_frame(fd, f, sizeof f), 0);
    cr_assert_eq(f[1], 10);
    close(fd);
}

/* One RESTORE whose records repeat a key, pipelined behind another
 * client's... (here: the same connection's) PUT so that both are staged
 * in one batch. The repeated key is refused in the checks, before any
 * write: it must not fail the batch - and so the PUT - half-way. */
Test(backups, restore_repeating_a_key_is_refused_before_writing, .fini = teardown)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    int fd = tkvd_raw(&a);
    static rawreq q, f;
    q.n = 0;
    rr_key(&q, 3);
    rr_version(&q, 2, 0, 0);
    rr_key(&q, 3); /* again */
    rr_version(&q, 1, 0, 0);
    f.n = 0;
    rr_bytes(&f, put_p_frame, sizeof put_p_frame);
    rr_restore_frame(&f, &q, false);
    raw_send(fd, f.b, f.n);
    uint8_t reply[512];
    long n = raw_frame(fd, reply, sizeof reply);
    cr_assert_eq(n, 3);
    cr_assert(memcmp(reply, "\x92\x00\x05", 3) == 0, "the PUT is written (status %d)", reply[1]);
    n = raw_frame(fd, reply, sizeof reply);
    cr_assert_gt(n, 2);
    cr_assert_eq(reply[1], 10, "the RESTORE is a BAD_REQUEST");
    cr_assert_eq(tkvd_stat(c, "commit_errors"), 0);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "p", 1, TKV_LATEST, &v), TKV_OK);
    cr_assert_eq(tkv_get(c, "kkk", 3, TKV_LATEST, &v), TKV_NOT_FOUND, "nothing of the RESTORE");
    close(fd);
    tkv_free(c);
}

/* A key cut across requests, whose horizon moved between them (a RETAIN,
 * or the sweep enforcing the policy the first part restored): the
 * continuing request's versions below the horizon are skipped - they
 * would be invisible - not refused half-way, which failed the batch and
 * with it the PUT staged beside it. */
Test(backups, continued_key_below_a_moved_horizon_is_skipped, .fini = teardown)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    int fd = tkvd_raw(&a);
    char msg[256];
    static rawreq q, f;
    q.n = 0;
    rr_key(&q, 3);
    rr_version(&q, 10, 0, 0);
    rr_version(&q, 9, 0, 0);
    cr_assert_eq(send_restore(fd, &q, msg, sizeof msg), 0, "%s", msg);
    tkv_retain_info ri;
    cr_assert_eq(tkv_retain(c, "kkk", 3, 1, 0, 0, &ri), TKV_OK);
    cr_assert_eq(ri.horizon, 10);

    q.n = 0;
    rr_key(&q, 3);
    rr_version(&q, 8, 0, 0);
    f.n = 0;
    rr_bytes(&f, put_p_frame, sizeof put_p_frame);
    rr_restore_frame(&f, &q, true);
    raw_send(fd, f.b, f.n);
    uint8_t reply[512];
    long n = raw_frame(fd, reply, sizeof reply);
    cr_assert_eq(n, 3);
    cr_assert(memcmp(reply, "\x92\x00\x05", 3) == 0, "the PUT is written (status %d)", reply[1]);
    n = raw_frame(fd, reply, sizeof reply);
    cr_assert_eq(n, 4);
    cr_assert(memcmp(reply, "\x93\x00\x00\x01", 4) == 0, "none written, one skipped");
    cr_assert_eq(tkvd_stat(c, "commit_errors"), 0);
    close(fd);
    tkv_free(c);
}

/* A BACKUP whose reader stopped reading holds a snapshot of the store,
 * which recovery from a failed write must reopen: when the store fails the
 * stream ends with STORAGE (PROTOCOL.md), so writes resume once the disk
 * takes them again instead of waiting for a reader that may never read. */
Test(backups, storage_failure_ends_a_stalled_backup, .fini = teardown, .timeout = 60)
{
    static char preload[4200], trigger[4300];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", getenv("TKV_FAULT_LIB"));
    const char *env[] = {preload, "TKV_FAULT_PATHS={dir}/db:{dir}/wal/:{dir}/write-probe",
                         "TKV_FAULT_TRIGGER={dir}.full", NULL};
    tkvd_start_env(&a, NULL, env);
    snprintf(trigger, sizeof trigger, "%s.full", a.dir);
    tkv_ctx *c = tkvd_client(&a);
    static char big[60000];
    memset(big, 'q', sizeof big - 1);
    for (int i = 0; i < 200; i++) { /* 12 MB: more than the socket and the limit hold */
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        put(c, key, big, 1, 0);
    }
    int fd = tkvd_raw(&a);
    static const uint8_t backup[] = {0, 0, 0, 0x08, 0x91, 0xa6, 'B', 'A', 'C', 'K', 'U', 'P'};
    raw_send(fd, backup, sizeof backup);
    cr_assert_gt(settled_unread(fd), 0, "the backup stalls on its unread output");

    close(open(trigger, O_CREAT | O_WRONLY, 0644));
    cr_assert_neq(tkv_put(c, "x", 1, "y", 1, 1, NULL), TKV_OK, "the disk is full");
    unlink(trigger);
    int rc = TKV_ERR;
    for (int i = 0; i < 300 && rc != TKV_OK; i++) {
        rc = tkv_put(c, "x", 1, "y", 1, 1, NULL);
        if (rc != TKV_OK)
            usleep(10000);
    }
    cr_assert_eq(rc, TKV_OK, "writes did not resume: %s", tkv_errstr(c));

    /* The stream's frames, then an error frame that ends it. */
    static uint8_t f[1 << 20];
    long n;
    while ((n = raw_frame(fd, f, sizeof f)) > 0 && f[1] == 0)
        cr_assert_eq(f[n - 1], 0xc2, "no frame says the backup is complete");
    cr_assert_gt(n, 2);
    cr_assert_eq(f[0], 0x92);
    cr_assert_eq(f[1], TKV_SC_STORAGE);
    close(fd);
    tkv_free(c);
}

/* A backup whose keys are out of order (well-formed and checksummed, but
 * not what a server writes) is refused whole by tkv_restore before it
 * sends anything: the server refuses such records a request at a time,
 * which after a first request would leave half of it restored. */
Test(backups, restore_refuses_keys_out_of_order_before_sending, .fini = teardown)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    tkv_buf bk = {0};
    tkv_bk_writer w;
    uint8_t d[TKV_SHA256_LEN];
    cr_assert_eq(tkv_bk_write_begin(&w, &bk, 1000), 0);
    tkv_bk_rec k = {.type = TKV_BK_KEY, .key = (const uint8_t *)"b", .klen = 1};
    cr_assert_eq(tkv_bk_write_rec(&w, &bk, &k), 0);
    for (uint64_t ts = 1200; ts > 0; ts--) { /* more than one request carries */
        tkv_bk_rec v = {.type = TKV_BK_VER, .ts = ts, .value = (const uint8_t *)"x", .vlen = 1};
        cr_assert_eq(tkv_bk_write_rec(&w, &bk, &v), 0);
    }
    k.key = (const uint8_t *)"a";
    cr_assert_eq(tkv_bk_write_rec(&w, &bk, &k), 0);
    tkv_bk_rec v = {.type = TKV_BK_VER, .ts = 1, .value = (const uint8_t *)"y", .vlen = 1};
    cr_assert_eq(tkv_bk_write_rec(&w, &bk, &v), 0);
    cr_assert_eq(tkv_bk_write_end(&w, &bk, d), 0);

    tkv_restore_info info;
    cr_assert_eq(tkv_restore(c, bk.data, bk.len, 0, &info), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_USAGE, "%s", tkv_errstr(c));
    cr_assert(strstr(tkv_errstr(c), "order"), "%s", tkv_errstr(c));
    cr_assert_eq(info.requests, 0);
    cr_assert_eq(tkvd_stat(c, "keys"), 0, "nothing was written");
    tkv_buf_deinit(&bk);
    tkv_free(c);
}

/* A BACKUP that the server reaches only while stopping - pipelined behind
 * replies the client had not read yet, served by the shutdown's drain - is
 * answered BUSY at once, like one under way when the stop began: not a
 * whole store streamed during the shutdown grace. */
Test(backups, backup_reached_while_stopping_is_busy, .fini = teardown, .timeout = 60)
{
    tkvd_start(&a, NULL);
    tkv_ctx *c = tkvd_client(&a);
    static char big[60000];
    memset(big, 's', sizeof big - 1);
    put(c, "big", big, 1, 0);
    tkv_free(c);
    int fd = tkvd_raw(&a);
    static uint8_t pipeline[100 * 13 + 12];
    size_t n = 0;
    for (int i = 0; i < 100; i++) { /* 6 MB of replies: the connection is throttled */
        memcpy(pipeline + n,
               "\x00\x00\x00\x09\x92\xa3GET\xa3"
               "big",
               13);
        n += 13;
    }
    memcpy(pipeline + n,
           "\x00\x00\x00\x08\x91\xa6"
           "BACKUP",
           12);
    n += 12;
    raw_send(fd, pipeline, n);
    settled_unread(fd);
    kill(a.pid, SIGTERM);
    uint8_t *frame = malloc(1 << 20);
    long len;
    for (int i = 0; i < 100; i++) {
        len = raw_frame(fd, frame, 1 << 20);
        cr_assert_gt(len, 0);
        cr_assert_eq(frame[1], 0, "GET %d answered", i);
    }
    while ((len = raw_frame(fd, frame, 1 << 20)) > 0 && frame[1] == 0x00)
        cr_assert_eq(frame[len - 1], 0xc2, "no frame says the backup is complete");
    cr_assert_gt(len, 0, "an error frame, not just the end of the connection");
    cr_assert_eq(frame[0], 0x92);
    cr_assert_eq(frame[1], 21, "BUSY");
    free(frame);
    close(fd);
    int st = tkvd_signal(&a, SIGTERM);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

/* tkvctl restore from a pipe given by name (a FIFO, or bash's <(...)):
 * read whole like standard input, not mapped as a file of st_size bytes
 * - which a pipe reports as 0, "truncated at 0 bytes". */
Test(backups, tkvctl_restore_from_a_named_pipe, .fini = teardown, .timeout = 60)
{
    tkvd_start(&a, NULL);
    tkvd_start(&b, NULL);
    tkv_ctx *ca = tkvd_client(&a), *cb = tkvd_client(&b);
    load_common(ca, false);
    char *dir = tmpdir_make("bk"), *file, fifo[4200], port[8];
    tkv_digest_info info = backup_to_file(ca, dir, "p.tkvbak", &file);
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* the writer: the backup into the pipe */
        FILE *in = fopen(file, "rb"), *out = fopen(fifo, "wb");
        char buf[4096];
        size_t n;
        while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0)
            fwrite(buf, 1, n, out);
        _exit(in && out && fclose(out) == 0 ? 0 : 1);
    }
    snprintf(port, sizeof port, "%u", b.port);
    const char *rs[] = {getenv("TKVCTL"), "-p", port, "restore", fifo, NULL};
    char *err;
    int rc = run(NULL, &err, rs);
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(rc, 0, "%s", err);
    free(err);
    tkv_digest_info d = digest_at(cb, info.at);
    cr_assert(same(&d, &info), "restored from the pipe: the backup's digest");
    free(file);
    tmpdir_remove(dir);
    tkv_free(ca);
    tkv_free(cb);
}

/* tkvctl verify reads a file no server wrote: keys out of order (or one
 * twice) are refused there, before a restore would stop part-way on them. */
Test(backups, verify_refuses_keys_out_of_order)
{
    const char *ctl = getenv("TKVCTL");
    cr_assert_not_null(ctl);
    char *dir = tmpdir_make("bk");
    const char *orders[][2] = {{"b", "a"}, {"a", "a"}, {"ab", "a"}, {"a", "ab"}};
    for (int i = 0; i < 4; i++) {
        tkv_buf bk = {0};
        tkv_bk_writer w;
        uint8_t d[TKV_SHA256_LEN];
        cr_assert_eq(tkv_bk_write_begin(&w, &bk, 1000), 0);
        for (int j = 0; j < 2; j++) {
            tkv_bk_rec k = {.type = TKV_BK_KEY,
                            .key = (const uint8_t *)orders[i][j],
                            .klen = (uint32_t)strlen(orders[i][j])};
            cr_assert_eq(tkv_bk_write_rec(&w, &bk, &k), 0);
            tkv_bk_rec v = {.type = TKV_BK_VER, .ts = 1, .value = (const uint8_t *)"x", .vlen = 1};
            cr_assert_eq(tkv_bk_write_rec(&w, &bk, &v), 0);
        }
        cr_assert_eq(tkv_bk_write_end(&w, &bk, d), 0);
        char *path = write_file(dir, "order.tkvbak", bk.data, bk.len);
        const char *v[] = {ctl, "verify", path, NULL};
        char *err = NULL;
        int rc = run(NULL, &err, v);
        if (i < 3) {
            cr_assert_eq(rc, 2, "keys %s then %s", orders[i][0], orders[i][1]);
            cr_assert(strstr(err, "not in byte order"), "%s", err);
        } else {
            cr_assert_eq(rc, 0, "a key before a longer one it is a prefix of is in order: %s", err);
        }
        free(err);
        free(path);
        tkv_buf_deinit(&bk);
    }
    tmpdir_remove(dir);
}
