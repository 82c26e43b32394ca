/*
 * test_hostile.c - hostile clients against the real tkvd while a
 * well-behaved client keeps writing and reading and checks every answer.
 *
 * Attacks: garbage bytes, a huge length prefix, MessagePack bombs, a valid
 * request split at every byte boundary, half a frame then a disconnect,
 * 2000 simultaneous connections, and a client that pipelines thousands of
 * requests and never reads. Afterwards tkvd must still be up and correct,
 * its memory bounded, and the good client must have seen no error.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/rng.h"
#include "harness.h"

static tkvd d;
static atomic_bool stop;
static atomic_long good_ops, good_errors;
static char good_error[256];

static void teardown(void) { tkvd_cleanup(&d); }

static void *good_client(void *arg)
{
    tkv_ctx *c = tkv_connect("127.0.0.1", d.port, 10000);
    char key[32], val[48];
    for (uint64_t i = 1; !atomic_load(&stop); i++) {
        snprintf(key, sizeof key, "good:%llu", (unsigned long long)(i % 500));
        snprintf(val, sizeof val, "good value %llu", (unsigned long long)i);
        tkv_version v;
        if (tkv_put(c, key, strlen(key), val, strlen(val), i, NULL) != TKV_OK ||
            tkv_get(c, key, strlen(key), i, &v) != TKV_OK || v.ts != i || v.len != strlen(val) ||
            memcmp(v.value, val, v.len) != 0) {
            if (atomic_fetch_add(&good_errors, 1) == 0)
                snprintf(good_error, sizeof good_error, "op %llu: %s", (unsigned long long)i,
                         tkv_errstr(c));
            continue;
        }
        atomic_fetch_add(&good_ops, 1);
    }
    tkv_free(c);
    return NULL;
}

static long rss_kb(const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)d.pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = strtol(line + strlen(field) + 1, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static void garbage(test_rng *r)
{
    for (int i = 0; i < 50; i++) {
        int fd = tkvd_raw(&d);
        uint8_t junk[4096];
        size_t n = 1 + test_rng_below(r, sizeof junk);
        for (size_t k = 0; k < n; k++)
            junk[k] = (uint8_t)test_rng_next(r);
        send(fd, junk, n, MSG_NOSIGNAL);
        close(fd);
    }
}

static void huge_length(void)
{
    int fd = tkvd_raw(&d);
    const uint8_t h[] = {0xff, 0xff, 0xff, 0xff, 0x91, 0xc0};
    raw_send(fd, h, sizeof h);
    uint8_t buf[256];
    long n = raw_frame(fd, buf, sizeof buf);
    cr_assert_gt(n, 1);
    cr_assert_eq(buf[1], 12, "TOO_LARGE");
    cr_assert(raw_wait_eof(fd, 5000));
    close(fd);
}

static void bombs(void)
{
    static const uint8_t frames[][12] = {
        {0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff, 0xff},                /* array32 of 2^32-1 */
        {0, 0, 0, 5, 0xdf, 0xff, 0xff, 0xff, 0xff},                /* map32 */
        {0, 0, 0, 7, 0x92, 0xa3, 'P', 'U', 'T', 0xdd, 0xff},       /* nested, truncated */
        {0, 0, 0, 8, 0x93, 0xa3, 'G', 'E', 'T', 0xc6, 0xff, 0xff}, /* bin32 of 4 GiB */
        {0, 0, 0, 6, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f},          /* deep, short */
    };
    int fd = tkvd_raw(&d);
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        raw_send(fd, frames[i], 4 + frames[i][3]);
        uint8_t buf[256];
        long n = raw_frame(fd, buf, sizeof buf);
        cr_assert_gt(n, 1, "bomb %zu: no reply", i);
        cr_assert_eq(buf[1], 10, "bomb %zu: BAD_REQUEST expected, got %u", i, buf[1]);
    }
    close(fd);
}

static void split_everywhere(void)
{
    /* ["PUT", "split", "value", 7] */
    const uint8_t f[] = {0,   0,   0,   18,  0x94, 0xa3, 'P', 'U', 'T', 0xa5, 's',
                         'p', 'l', 'i', 't', 0xa5, 'v',  'a', 'l', 'u', 'e',  7};
    for (size_t cut = 1; cut < sizeof f; cut++) {
        int fd = tkvd_raw(&d);
        raw_send(fd, f, cut);
        usleep(200); /* let the first part arrive alone; correctness does not depend on it */
        raw_send(fd, f + cut, sizeof f - cut);
        uint8_t buf[64];
        long n = raw_frame(fd, buf, sizeof buf);
        cr_assert_eq(n, 3, "split at %zu", cut);
        cr_assert_eq(buf[1], 0);
        cr_assert_eq(buf[2], 7);
        close(fd);
    }
}

static void half_frames(void)
{
    for (int i = 0; i < 100; i++) {
        int fd = tkvd_raw(&d);
        const uint8_t f[] = {0, 0, 0, 100, 0x94, 0xa3, 'P', 'U'};
        raw_send(fd, f, sizeof f);
        close(fd);
    }
}

static void many_connections(void)
{
    enum { N = 2000 };
    static int fds[N];
    const uint8_t ping[] = {0, 0, 0, 6, 0x91, 0xa4, 'P', 'I', 'N', 'G'};
    for (int i = 0; i < N; i++) {
        fds[i] = tkvd_raw(&d);
        raw_send(fds[i], ping, sizeof ping);
    }
    for (int i = 0; i < N; i++) {
        uint8_t buf[64];
        cr_assert_eq(raw_frame(fds[i], buf, sizeof buf), 7, "connection %d got no PONG", i);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
}

/* Pipelines GETs of a 64 KiB value as fast as the server takes them and
 * reads none of the replies. Returns tkvd's RSS meanwhile; *requests gets
 * how many GETs were accepted. */
static long never_reads(long *requests)
{
    tkvd_put_zeros(&d, "big", 64 * 1024);
    int fd = tkvd_raw(&d);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* ["GET", "big"] */
    const uint8_t get[] = {0, 0, 0, 9, 0x92, 0xa3, 'G', 'E', 'T', 0xa3, 'b', 'i', 'g'};
    uint8_t burst[sizeof get * 256];
    for (int i = 0; i < 256; i++)
        memcpy(burst + i * sizeof get, get, sizeof get);
    /* The server stops reading once replies pile up: sends then block.
     * Send without blocking until they do. */
    long sent = 0;
    for (int i = 0; i < 64; i++) {
        ssize_t n = send(fd, burst, sizeof burst, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            break;
        sent += n / (long)sizeof get;
    }
    long peak = rss_kb("VmRSS:");
    close(fd);
    *requests = sent;
    return sent > 0 ? peak : -1;
}

Test(hostile, server_survives_and_good_client_is_unaffected, .fini = teardown, .timeout = 120)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    cr_assert_geq(rl.rlim_cur, 2200, "need descriptors for 2000 connections");
    tkvd_start(&d, NULL);
    test_rng r = {test_seed("hostile")};
    long rss_start = rss_kb("VmRSS:");
    pthread_t good;
    pthread_create(&good, NULL, good_client, NULL);
    garbage(&r);
    huge_length();
    bombs();
    split_everywhere();
    half_frames();
    many_connections();
    long unread;
    long rss_flooded = never_reads(&unread);
    atomic_store(&stop, true);
    pthread_join(good, NULL);
    cr_assert_eq(atomic_load(&good_errors), 0, "the good client saw %ld errors, first: %s",
                 atomic_load(&good_errors), good_error);
    cr_assert_gt(atomic_load(&good_ops), 0);
    tkv_ctx *c = tkvd_client(&d);
    tkv_version v;
    cr_assert_eq(tkv_get(c, "split", 5, 7, &v), TKV_OK);
    cr_assert_eq(v.len, 5);
    tkv_free(c);
    long hwm = rss_kb("VmHWM:");
    fprintf(stderr,
            "hostile: tkvd RSS %ld KiB at start, %ld KiB while a client had %ld GETs (%ld MiB "
            "of replies) pipelined unread, peak %ld KiB; good client %ld ops, 0 errors\n",
            rss_start, rss_flooded, unread, unread / 16, hwm, atomic_load(&good_ops));
    cr_assert_gt(rss_flooded, 0);
    cr_assert_lt(hwm, 256 * 1024, "tkvd grew to %ld KiB", hwm);
}
