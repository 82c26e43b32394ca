/*
 * test_readers.c - tkvd with reader threads (--readers): requests that need
 * LevelDB wait for a load while everything else goes on, and every answer
 * is the one an inline read would give.
 *
 * The server runs with a tiny memory budget, so keys are evicted and loaded
 * again all the time, and several clients at once mix writes into the past,
 * reads as of past times, RANGE, COUNT, deletes and tombstones over keys of
 * their own (so each client knows every answer) while the others' loads and
 * writes race theirs through the shared index, eviction and touch table.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/rng.h"
#include "harness.h"

static tkvd d;

/* Under valgrind (tkvd_wrapped) tkvd's threads run one at a time, so the
 * tests whose point is reader threads racing the loop race nothing there;
 * ASan and TSan run them with real threads, and valgrind still checks the
 * load code through every other test. */

static void teardown(void) { tkvd_cleanup(&d); }

/* ---- a client's own keys, modelled ---------------------------------------- */

enum { KEYS = 40, MAXV = 400, ROUNDS = 60, PIPE = 64, CLIENTS = 4 };

typedef struct mkey {
    uint64_t ts[MAXV]; /* ascending */
    uint32_t val[MAXV];
    bool tomb[MAXV];
    int n;
} mkey;

typedef struct client {
    int id;
    mkey keys[KEYS];
    test_rng seed;
    char err[256]; /* the first wrong answer, if any */
    uint64_t checked;
} client;

static void key_name(const client *cl, int k, char *out, size_t cap)
{
    snprintf(out, cap, "c%d:key:%03d", cl->id, k);
}

static void val_text(uint32_t v, char *out, size_t cap)
{
    snprintf(out, cap, "value %u padded to 40 bytes ......", v);
}

/* Writes PREFIX:00000 .. PREFIX:n-1 at ts 10, value val_text(k),
 * pipelined: far more than the 64 KiB budgets below keep in memory. */
static void put_numbered(tkv_ctx *c, const char *prefix, int n)
{
    char key[32], val[64];
    for (int k = 0; k < n; k++) {
        snprintf(key, sizeof key, "%s:%05d", prefix, k);
        val_text((uint32_t)k, val, sizeof val);
        cr_assert_eq(tkv_append_put(c, key, strlen(key), val, strlen(val), 10), TKV_OK);
    }
    tkv_reply r;
    for (int k = 0; k < n; k++)
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
}

static void m_put(mkey *m, uint64_t ts, uint32_t v, bool tomb)
{
    int i = 0;
    while (i < m->n && m->ts[i] < ts)
        i++;
    if (i < m->n && m->ts[i] == ts) {
        m->val[i] = v;
        m->tomb[i] = tomb;
        return;
    }
    memmove(m->ts + i + 1, m->ts + i, (size_t)(m->n - i) * sizeof *m->ts);
    memmove(m->val + i + 1, m->val + i, (size_t)(m->n - i) * sizeof *m->val);
    memmove(m->tomb + i + 1, m->tomb + i, (size_t)(m->n - i) * sizeof *m->tomb);
    m->ts[i] = ts;
    m->val[i] = v;
    m->tomb[i] = tomb;
    m->n++;
}

/* Index of the version current at t, or -1. */
static int m_floor(const mkey *m, uint64_t t)
{
    int f = -1;
    for (int i = 0; i < m->n && m->ts[i] <= t; i++)
        f = i;
    return f;
}

typedef enum { OP_PUT, OP_TOMB, OP_GET, OP_RANGE, OP_COUNT, OP_DEL } opkind;

typedef struct op {
    opkind kind;
    int k;
    uint64_t ts, from, to;
    /* expected */
    int want_status;
    uint64_t want_ts, want_n, want_first;
    uint32_t want_val;
    bool want_next;
    uint64_t next;
} op;

#define FAIL(cl, ...)                                          \
    do {                                                       \
        if (!(cl)->err[0])                                     \
            snprintf((cl)->err, sizeof(cl)->err, __VA_ARGS__); \
    } while (0)

/* Queues one random operation and records what it must answer, applying
 * writes to the model in request order (the server serves a connection's
 * requests in order, loads or not). Client threads report through FAIL:
 * Criterion's assertions belong to the test's own thread. */
static void queue_op(client *cl, tkv_ctx *c, op *o)
{
    char key[32], val[64];
    int k = (int)(test_rng_next(&cl->seed) % KEYS);
    mkey *m = &cl->keys[k];
    key_name(cl, k, key, sizeof key);
    unsigned r = (unsigned)(test_rng_next(&cl->seed) % 100);
    memset(o, 0, sizeof *o);
    o->k = k;
    /* Times 1000..MAXV*1000: writes land anywhere in the past. */
    uint64_t t = 1000 * (1 + test_rng_next(&cl->seed) % (MAXV - 1));
    if (r < 30 && m->n < MAXV - 1) {
        o->kind = OP_PUT;
        uint32_t v = (uint32_t)test_rng_next(&cl->seed);
        val_text(v, val, sizeof val);
        if (tkv_append_put(c, key, strlen(key), val, strlen(val), t) != TKV_OK)
            FAIL(cl, "client %d: queueing a request failed", cl->id);
        m_put(m, t, v, false);
        o->ts = t;
    } else if (r < 34 && m->n < MAXV - 1) {
        o->kind = OP_TOMB;
        if (tkv_append_del_at(c, key, strlen(key), t, 1) != TKV_OK)
            FAIL(cl, "client %d: queueing a request failed", cl->id);
        m_put(m, t, 0, true);
        o->ts = t;
    } else if (r < 36) {
        o->kind = OP_DEL;
        if (tkv_append_del(c, key, strlen(key)) != TKV_OK)
            FAIL(cl, "client %d: queueing a request failed", cl->id);
        o->want_n = (uint64_t)m->n;
        m->n = 0;
    } else if (r < 80) {
        o->kind = OP_GET;
        uint64_t at = t + test_rng_next(&cl->seed) % 1000;
        if (tkv_append_get(c, key, strlen(key), at) != TKV_OK)
            FAIL(cl, "client %d: queueing a request failed", cl->id);
        int f = m_floor(m, at);
        o->ts = at;
        o->want_status = f >= 0 && !m->tomb[f] ? TKV_OK : TKV_NOT_FOUND;
        if (f >= 0) {
            o->want_ts = m->ts[f];
            o->want_val = m->val[f];
        }
        o->want_next = f + 1 < m->n;
        o->next = o->want_next ? m->ts[f + 1] : 0;
    } else if (r < 90) {
        o->kind = OP_COUNT;
        o->from = t;
        o->to = t + 1000 * (test_rng_next(&cl->seed) % 200);
        if (tkv_append_count(c, key, strlen(key), o->from, o->to) != TKV_OK)
            FAIL(cl, "client %d: queueing a request failed", cl->id);
        for (int i = 0; i < m->n; i++)
            o->want_n += m->ts[i] >= o->from && m->ts[i] <= o->to;
    } else {
        o->kind = OP_RANGE;
        o->from = t;
        o->to = t + 1000 * (test_rng_next(&cl->seed) % 50);
        tkv_range_opts ro = {.from = o->from, .to = o->to, .to_set = 1, .limit = 1000};
        if (tkv_append_range(c, key, strlen(key), &ro) != TKV_OK)
            FAIL(cl, "client %d: queueing a request failed", cl->id);
        for (int i = 0; i < m->n; i++) {
            if (m->ts[i] >= o->from && m->ts[i] <= o->to) {
                if (o->want_n++ == 0)
                    o->want_first = m->ts[i];
            }
        }
    }
}

static void check_reply(client *cl, tkv_ctx *c, const op *o)
{
    tkv_reply r;
    int rc = tkv_read_reply(c, &r);
    if (rc == TKV_ERR) {
        FAIL(cl, "client %d: error reply: %s", cl->id, tkv_errstr(c));
        return;
    }
    cl->checked++;
    char val[64];
    switch (o->kind) {
    case OP_PUT:
    case OP_TOMB:
        if (r.ts != o->ts)
            FAIL(cl, "client %d key %d: write stored at %llu, asked %llu", cl->id, o->k,
                 (unsigned long long)r.ts, (unsigned long long)o->ts);
        break;
    case OP_DEL:
        if (r.count != o->want_n)
            FAIL(cl, "client %d key %d: DEL removed %llu, model had %llu", cl->id, o->k,
                 (unsigned long long)r.count, (unsigned long long)o->want_n);
        break;
    case OP_GET:
        if (r.status != o->want_status) {
            FAIL(cl, "client %d key %d: GET as of %llu: status %d, want %d", cl->id, o->k,
                 (unsigned long long)o->ts, r.status, o->want_status);
            break;
        }
        if (r.status == TKV_OK) {
            val_text(o->want_val, val, sizeof val);
            if (r.version.ts != o->want_ts || r.version.len != strlen(val) ||
                memcmp(r.version.value, val, r.version.len) != 0)
                FAIL(cl, "client %d key %d: GET as of %llu: ts %llu, want %llu", cl->id, o->k,
                     (unsigned long long)o->ts, (unsigned long long)r.version.ts,
                     (unsigned long long)o->want_ts);
        }
        if ((bool)r.version.has_next != o->want_next || (o->want_next && r.version.next != o->next))
            FAIL(cl, "client %d key %d: GET as of %llu: next %d/%llu, want %d/%llu", cl->id, o->k,
                 (unsigned long long)o->ts, r.version.has_next, (unsigned long long)r.version.next,
                 o->want_next, (unsigned long long)o->next);
        break;
    case OP_COUNT:
        if (r.count != o->want_n)
            FAIL(cl, "client %d key %d: COUNT [%llu, %llu] = %llu, want %llu", cl->id, o->k,
                 (unsigned long long)o->from, (unsigned long long)o->to,
                 (unsigned long long)r.count, (unsigned long long)o->want_n);
        break;
    case OP_RANGE:
        if (r.n_entries != o->want_n || (o->want_n && r.entries[0].ts != o->want_first))
            FAIL(cl, "client %d key %d: RANGE [%llu, %llu]: %zu entries, want %llu", cl->id, o->k,
                 (unsigned long long)o->from, (unsigned long long)o->to, r.n_entries,
                 (unsigned long long)o->want_n);
        break;
    }
}

static void *client_main(void *arg)
{
    client *cl = arg;
    tkv_ctx *c = tkv_connect("127.0.0.1", d.port, 20000);
    if (!c || tkv_err(c)) {
        FAIL(cl, "client %d cannot connect", cl->id);
        tkv_free(c);
        return NULL;
    }
    op ops[PIPE];
    for (int round = 0; round < ROUNDS && !cl->err[0]; round++) {
        int n = 1 + (int)(test_rng_next(&cl->seed) % PIPE);
        for (int i = 0; i < n; i++)
            queue_op(cl, c, &ops[i]);
        for (int i = 0; i < n; i++)
            check_reply(cl, c, &ops[i]);
    }
    tkv_free(c);
    return NULL;
}

/* Deep histories first, so that reads walk below what memory keeps. */
static void preload(tkv_ctx *c, client *cl)
{
    char key[32], val[64];
    for (int k = 0; k < KEYS; k++) {
        key_name(cl, k, key, sizeof key);
        int nv = k % 4 == 0 ? 300 : 5;
        for (int v = 0; v < nv; v++) {
            uint64_t t = 1000 * (1 + (uint64_t)v * (MAXV - 1) / (uint64_t)nv);
            uint32_t x = (uint32_t)(k * 1000 + v);
            val_text(x, val, sizeof val);
            cr_assert_eq(tkv_append_put(c, key, strlen(key), val, strlen(val), t), TKV_OK);
            m_put(&cl->keys[k], t, x, false);
        }
    }
    tkv_reply r;
    for (int k = 0; k < KEYS; k++)
        for (int v = 0, nv = k % 4 == 0 ? 300 : 5; v < nv; v++)
            cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
}

Test(readers, answers_stay_exact_while_loads_race_writes_and_eviction, .fini = teardown,
     .timeout = 120)
{
    if (tkvd_wrapped())
        cr_skip_test("valgrind runs one thread at a time: nothing races");
    /* 160 keys x up to 400 versions of ~60 bytes cannot stay in 64 KiB:
     * nearly every request needs a load, and the index evicts constantly. */
    const char *args[] = {"--max-memory", "64kb", "--readers", "3", "--fsync", "never", NULL};
    tkvd_start(&d, args);
    static client cls[CLIENTS];
    tkv_ctx *c = tkvd_client(&d);
    for (int i = 0; i < CLIENTS; i++) {
        memset(&cls[i], 0, sizeof cls[i]);
        cls[i].id = i;
        cls[i].seed.s = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        preload(c, &cls[i]);
    }
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, client_main, &cls[i]), 0);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < CLIENTS; i++) {
        cr_assert_eq(cls[i].err[0], '\0', "%s", cls[i].err);
        cr_assert_gt(cls[i].checked, ROUNDS, "client %d answered too little", i);
    }
    cr_assert_gt(tkvd_stat(c, "loads"), 100, "reads went through the reader threads");
    cr_assert_gt(tkvd_stat(c, "evictions"), 0);
    tkv_free(c);
    tkvd_stop(&d);
}

/* ---- shared keys: a writer and readers racing ------------------------------- */

enum { SHARED = 300, READERS = 3 };

/* The writer's last acknowledged timestamp per key: a read sent after that
 * acknowledgement must see that version or a newer one. */
static _Atomic uint64_t acked[SHARED];
static _Atomic bool writer_done;
static char shared_err[256];
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

static void shared_fail(const char *msg)
{
    pthread_mutex_lock(&err_mu);
    if (!shared_err[0])
        snprintf(shared_err, sizeof shared_err, "%s", msg);
    pthread_mutex_unlock(&err_mu);
}

static void shared_val(int k, uint64_t ts, char *out, size_t cap)
{
    snprintf(out, cap, "shared %d at %llu padded to be longer", k, (unsigned long long)ts);
}

static void *shared_writer(void *arg)
{
    (void)arg;
    tkv_ctx *c = tkv_connect("127.0.0.1", d.port, 20000);
    char key[32], val[64];
    uint64_t next[SHARED];
    for (int k = 0; k < SHARED; k++)
        next[k] = 2000;
    test_rng rng = {.s = 7};
    for (int round = 0; round < 150 && !shared_err[0]; round++) {
        int ks[32];
        for (int i = 0; i < 32; i++) {
            ks[i] = (int)test_rng_below(&rng, SHARED);
            snprintf(key, sizeof key, "shared:%03d", ks[i]);
            shared_val(ks[i], next[ks[i]], val, sizeof val);
            tkv_append_put(c, key, strlen(key), val, strlen(val), next[ks[i]]);
            next[ks[i]] += 10;
        }
        for (int i = 0; i < 32; i++) {
            tkv_reply r;
            if (tkv_read_reply(c, &r) != TKV_OK) {
                shared_fail("writer: PUT failed");
                break;
            }
            if (r.ts > atomic_load(&acked[ks[i]]))
                atomic_store(&acked[ks[i]], r.ts);
        }
    }
    atomic_store(&writer_done, true);
    tkv_free(c);
    return NULL;
}

static void *shared_reader(void *arg)
{
    test_rng rng = {.s = (uint64_t)(uintptr_t)arg};
    tkv_ctx *c = tkv_connect("127.0.0.1", d.port, 20000);
    char key[32], val[64], msg[256];
    while (!atomic_load(&writer_done) && !shared_err[0]) {
        int ks[24];
        uint64_t floor_ts[24];
        for (int i = 0; i < 24; i++) {
            ks[i] = (int)test_rng_below(&rng, SHARED);
            floor_ts[i] = atomic_load(&acked[ks[i]]);
            snprintf(key, sizeof key, "shared:%03d", ks[i]);
            tkv_append_get(c, key, strlen(key), TKV_LATEST);
        }
        for (int i = 0; i < 24; i++) {
            tkv_reply r;
            int rc = tkv_read_reply(c, &r);
            if (rc == TKV_ERR) {
                shared_fail("reader: GET failed");
                break;
            }
            uint64_t got = rc == TKV_OK ? r.version.ts : 0;
            if (got < floor_ts[i]) {
                snprintf(msg, sizeof msg,
                         "key %d: read sent after the write at %llu was acknowledged saw %llu",
                         ks[i], (unsigned long long)floor_ts[i], (unsigned long long)got);
                shared_fail(msg);
            }
            if (rc == TKV_OK) {
                shared_val(ks[i], got, val, sizeof val);
                if (r.version.len != strlen(val) || memcmp(r.version.value, val, r.version.len))
                    shared_fail("a version's value is not the one written at its time");
            }
        }
    }
    tkv_free(c);
    return NULL;
}

Test(readers, a_read_never_misses_an_acknowledged_write_while_loads_race_it, .fini = teardown,
     .timeout = 120)
{
    if (tkvd_wrapped())
        cr_skip_test("valgrind runs one thread at a time: nothing races");
    const char *args[] = {"--max-memory", "64kb", "--readers", "2", "--fsync", "never", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    char key[32], val[64];
    /* Older history, so keys are worth evicting and loading. */
    for (int k = 0; k < SHARED; k++) {
        snprintf(key, sizeof key, "shared:%03d", k);
        for (uint64_t ts = 1000; ts < 2000; ts += 100) {
            shared_val(k, ts, val, sizeof val);
            cr_assert_eq(tkv_append_put(c, key, strlen(key), val, strlen(val), ts), TKV_OK);
        }
        atomic_store(&acked[k], 1900);
    }
    tkv_reply r;
    for (int i = 0; i < SHARED * 10; i++)
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK);
    pthread_t w, rd[READERS];
    cr_assert_eq(pthread_create(&w, NULL, shared_writer, NULL), 0);
    for (int i = 0; i < READERS; i++)
        cr_assert_eq(pthread_create(&rd[i], NULL, shared_reader, (void *)(uintptr_t)(i + 11)), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < READERS; i++)
        pthread_join(rd[i], NULL);
    cr_assert_eq(shared_err[0], '\0', "%s", shared_err);
    cr_assert_gt(tkvd_stat(c, "loads"), 100);
    cr_assert_gt(tkvd_stat(c, "evictions"), 100);
    tkv_free(c);
    tkvd_stop(&d);
}

Test(readers, a_waiting_request_keeps_its_connections_order, .fini = teardown, .timeout = 60)
{
    const char *args[] = {"--max-memory", "64kb", "--readers", "2", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    enum { N = 3000 };
    char key[32], val[64];
    put_numbered(c, "order", N);
    tkv_reply r;
    /* For cold keys: a read that must wait for a load, then a write and a
     * read of the same key pipelined behind it. The first read must not
     * see the write; the second must. */
    for (int k = 0; k < N; k += 97) {
        snprintf(key, sizeof key, "order:%05d", k);
        val_text((uint32_t)(k + 1000000), val, sizeof val);
        cr_assert_eq(tkv_append_get(c, key, strlen(key), TKV_LATEST), TKV_OK);
        cr_assert_eq(tkv_append_put(c, key, strlen(key), val, strlen(val), 20), TKV_OK);
        cr_assert_eq(tkv_append_get(c, key, strlen(key), TKV_LATEST), TKV_OK);
    }
    for (int k = 0; k < N; k += 97) {
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
        cr_assert_eq(r.version.ts, 10, "key %d: the read before the write saw it", k);
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK);
        cr_assert_eq(r.ts, 20);
        cr_assert_eq(tkv_read_reply(c, &r), TKV_OK);
        cr_assert_eq(r.version.ts, 20, "key %d: the read after the write missed it", k);
    }
    cr_assert_gt(tkvd_stat(c, "loads"), 0);
    tkv_free(c);
    tkvd_stop(&d);
}

Test(readers, shutdown_with_loads_in_flight_is_clean, .fini = teardown, .timeout = 60)
{
    const char *args[] = {"--max-memory", "64kb", "--readers", "2", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    enum { N = 4000 };
    char key[32];
    put_numbered(c, "stop", N);
    tkv_reply r;
    /* Reads of cold keys in flight on several connections, then SIGTERM:
     * the server answers what it received and exits 0. */
    tkv_ctx *cs[4];
    for (int i = 0; i < 4; i++) {
        cs[i] = tkvd_client(&d);
        for (int k = i; k < N; k += 4) {
            snprintf(key, sizeof key, "stop:%05d", k);
            cr_assert_eq(tkv_append_get(cs[i], key, strlen(key), TKV_LATEST), TKV_OK);
        }
        cr_assert_eq(tkv_flush(cs[i]), TKV_OK);
    }
    tkvd_stop(&d);
    for (int i = 0; i < 4; i++) {
        /* Whatever was answered is right; the rest ends at EOF. */
        for (int k = i; k < N; k += 4) {
            if (tkv_read_reply(cs[i], &r) != TKV_OK)
                break;
            cr_assert_eq(r.version.ts, 10);
        }
        tkv_free(cs[i]);
    }
    tkv_free(c);
}

Test(readers, zero_readers_reads_inline_and_bad_counts_are_refused, .fini = teardown)
{
    const char *args[] = {"--max-memory", "64kb", "--readers", "0", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    char key[32];
    put_numbered(c, "inline", 2000);
    for (int k = 0; k < 2000; k += 13) {
        snprintf(key, sizeof key, "inline:%05d", k);
        tkv_version v;
        cr_assert_eq(tkv_get(c, key, strlen(key), TKV_LATEST, &v), TKV_OK);
        cr_assert_eq(v.ts, 10);
    }
    cr_assert_eq(tkvd_stat(c, "loads"), 0, "--readers 0 reads on the loop");
    cr_assert_gt(tkvd_stat(c, "reads_disk"), 0);
    tkv_free(c);
    tkvd_stop(&d);

    const char *argv[] = {getenv("TKVD"), "--readers", "65", "--port", "0", NULL};
    char *out, *err;
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 2);
    cr_assert(strstr(err, "--readers"), "stderr: %s", err);
    free(out);
    free(err);
}

/* The nice value of each of tkvd's threads named `name` (from /proc);
 * returns how many there are. */
static int thread_nices(pid_t pid, const char *name, int *nice, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    cr_assert_not_null(dir, "%s", path);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < max) {
        if (de->d_name[0] == '.')
            continue;
        char f[400], comm[32] = "", stat[1024];
        snprintf(f, sizeof f, "%s/%s/comm", path, de->d_name);
        FILE *fp = fopen(f, "r");
        if (!fp || !fgets(comm, sizeof comm, fp)) {
            if (fp)
                fclose(fp);
            continue;
        }
        fclose(fp);
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, name) != 0)
            continue;
        snprintf(f, sizeof f, "%s/%s/stat", path, de->d_name);
        fp = fopen(f, "r");
        cr_assert(fp && fgets(stat, sizeof stat, fp), "%s", f);
        fclose(fp);
        /* Fields after the command's closing parenthesis: state is the
         * 3rd field, nice the 19th. */
        const char *p = strrchr(stat, ')');
        cr_assert_not_null(p);
        long v = 0;
        for (int field = 3; field <= 19; field++) {
            p += strspn(p + 1, " ") + 1;
            if (field == 19)
                v = strtol(p, NULL, 10);
            p += strcspn(p, " ");
        }
        nice[n++] = (int)v;
    }
    closedir(dir);
    return n;
}

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Waits until tkvd has `want` threads named tkv-reader, all at nice
 * `nice` (a reader names itself and lowers its priority as it starts,
 * which may be after the server answers). */
static void wait_readers(pid_t pid, int want, int nice)
{
    int v[8], n = 0;
    bool ok = false;
    for (double until = mono() + 10.0; !ok && mono() < until;) {
        n = thread_nices(pid, "tkv-reader", v, 8);
        ok = n == want;
        for (int i = 0; ok && i < n; i++)
            ok = v[i] == nice;
        if (!ok)
            usleep(10 * 1000);
    }
    cr_assert(ok, "want %d readers at nice %d; have %d, the first at %d", want, nice, n,
              n ? v[0] : -1);
}

Test(readers, reader_threads_run_below_the_loop, .fini = teardown)
{
    if (tkvd_wrapped())
        cr_skip_test("the wrapper (valgrind) runs the threads under its own names");
    tkvd_start(&d, NULL);
    wait_readers(d.pid, 2, 10); /* the default: 2 readers, 10 below */
    /* The loop and the process's other unnamed threads. */
    int nice[8], n = thread_nices(d.pid, "tkvd", nice, 8);
    cr_assert_geq(n, 1, "the loop thread");
    for (int i = 0; i < n; i++)
        cr_assert_eq(nice[i], 0, "the loop keeps its priority");
    tkvd_cleanup(&d); /* stopped, and its directory gone: d starts afresh */
    const char *args[] = {"--readers", "3", "--reader-nice", "0", NULL};
    tkvd_start(&d, args);
    wait_readers(d.pid, 3, 0);
    tkvd_stop(&d);
    const char *argv[] = {getenv("TKVD"), "--reader-nice", "20", "--port", "0", NULL};
    char *out, *err;
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 2);
    cr_assert(strstr(err, "--reader-nice"), "stderr: %s", err);
    free(out);
    free(err);
}

Test(readers, mget_and_mput_of_cold_keys_wait_once_and_answer_exactly, .fini = teardown,
     .timeout = 60)
{
    const char *args[] = {"--max-memory", "64kb", "--readers", "2", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    enum { N = 4000, BATCH = 200 };
    char val[64];
    put_numbered(c, "multi", N);
    /* MGET of 200 keys at a time, nearly all cold (64 KiB holds few). */
    static char names[BATCH][32];
    tkv_bytes keys[BATCH];
    uint64_t waits0 = tkvd_stat(c, "load_waits");
    int rounds = 0;
    for (int base = 0; base + BATCH <= N; base += 5 * BATCH, rounds++) {
        for (int i = 0; i < BATCH; i++) {
            snprintf(names[i], sizeof names[i], "multi:%05d", base + i);
            keys[i] = (tkv_bytes){.ptr = (const uint8_t *)names[i], .len = strlen(names[i])};
        }
        const tkv_version *v;
        cr_assert_eq(tkv_mget(c, TKV_LATEST, keys, BATCH, &v), TKV_OK, "%s", tkv_errstr(c));
        for (int i = 0; i < BATCH; i++) {
            val_text((uint32_t)(base + i), val, sizeof val);
            cr_assert_eq(v[i].status, TKV_OK);
            cr_assert_eq(v[i].ts, 10);
            cr_assert(v[i].len == strlen(val) && memcmp(v[i].value, val, v[i].len) == 0, "key %d",
                      base + i);
        }
    }
    uint64_t waits = tkvd_stat(c, "load_waits") - waits0;
    /* One wait per MGET, give or take a stale load: not one per key. */
    cr_assert_leq(waits, (uint64_t)rounds * 3, "%llu waits for %d MGETs", (unsigned long long)waits,
                  rounds);
    /* MPUT over cold keys: one wait, every item written once. */
    tkv_item items[BATCH];
    static char vals[BATCH][64];
    for (int i = 0; i < BATCH; i++) {
        snprintf(names[i], sizeof names[i], "multi:%05d", 2 * N / 3 + i);
        snprintf(vals[i], sizeof vals[i], "new value %d", i);
        items[i] = (tkv_item){.key = {.ptr = (const uint8_t *)names[i], .len = strlen(names[i])},
                              .value = {.ptr = (const uint8_t *)vals[i], .len = strlen(vals[i])},
                              .ts = 20,
                              .has_ts = 1};
    }
    waits0 = tkvd_stat(c, "load_waits");
    cr_assert_eq(tkv_mput(c, items, BATCH, NULL), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_leq(tkvd_stat(c, "load_waits") - waits0, 3);
    for (int i = 0; i < BATCH; i += 7) {
        tkv_version v;
        cr_assert_eq(tkv_get(c, names[i], strlen(names[i]), 15, &v), TKV_OK);
        cr_assert_eq(v.ts, 10, "the old version stays readable in the past");
        cr_assert_eq(tkv_get(c, names[i], strlen(names[i]), TKV_LATEST, &v), TKV_OK);
        cr_assert_eq(v.ts, 20);
        cr_assert(v.len == strlen(vals[i]) && memcmp(v.value, vals[i], v.len) == 0);
    }
    tkv_free(c);
    tkvd_stop(&d);
}
