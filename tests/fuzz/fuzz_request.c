/*
 * fuzz_request.c - libFuzzer target for request parsing and command
 * dispatch (protocol/proto.h, server/cmd.h) against a real engine, with
 * storage faults.
 *
 * The engine runs in a mkdtemp directory (on /dev/shm when it can) with
 * tiny fill_versions (2), resident_versions (3) and a small memory budget,
 * so the memory/LevelDB merge paths run all the time: reads below a key's
 * watermark, writes into the deep past, merged RANGE scans, DEL of
 * versions only on disk, keys evicted and loaded again. Its clock is a
 * variable the input sets, so PUT without a timestamp is deterministic.
 *
 * The first input byte chooses the mode: bit 7 set - raw frames, the rest
 * is [u16 big-endian length][payload]...; clear - structured: the rest
 * drives request_gen.c's grammar plus driver operations (COMMIT, SETCLOCK,
 * REOPEN, storage FAULT, time ADVANCE, TICK, SYNC, mutated frames). Bits
 * 0-1 pick the reply size limit (RANGE truncation), bit 2 gives the
 * dispatcher an AUTH secret, bit 3 serves the input as one session (so
 * AUTH_REQUIRED applies) rather than trusted frames.
 *
 * Storage faults: this file defines write(), fdatasync(), fsync() and
 * clock_gettime(), which take precedence over libc's (and ASan's weak
 * interceptors) for LevelDB and the engine. FAULT makes the next sync of
 * the fuzzing thread fail with EIO after the data was written (the engine
 * is opened with sync on, so every commit syncs), or the next write to a
 * LevelDB log fail with ENOSPC before anything is written, or both; ADVANCE
 * moves CLOCK_MONOTONIC past the engine's recovery probe interval.
 *
 * Reported findings can be let through so fuzzing goes on past them, with
 * TKV_FUZZ_KNOWN set to a comma-separated list of:
 *   fault-resurrect  no sync faults (a batch whose sync failed reappears
 *                    when LevelDB is reopened), only write faults;
 *   fault-counters   no counter checks once the engine has recovered from a
 *                    fault in this input (recovery drops the staged counter
 *                    deltas), and a fresh directory afterwards;
 *   storage-faults   no faults at all.
 *
 * Every request frame goes through tkv_dispatch_session() from an exactly
 * sized heap copy, and everything about the reply is checked:
 *  - it is exactly one frame: a 4-byte length equal to the payload size
 *    and one valid MessagePack array starting with a known status; errors
 *    are [status, str]; the error counter moves exactly for errors;
 *  - the status is what tkv_req_parse() says (and, for a frame the grammar
 *    built, what the grammar meant, fields included), and a parsed request
 *    survives tkv_req_encode() + tkv_req_parse() unchanged;
 *  - the answer matches the model (request_model.c): PUT's timestamp
 *    (explicit, max(clock, newest + 1), or OUT_OF_RANGE after UINT64_MAX),
 *    GET's value/ts/next or miss reason, RANGE's list (order, limit,
 *    truncation exactly at the reply size limit), DEL's count, STATS's
 *    keys/versions, AUTH and AUTH_REQUIRED;
 *  - a read of a key with uncommitted writes is reported dirty;
 *  - STORAGE errors and failed commits happen only after a fault, and a
 *    failed commit rolls everything back to the last successful commit;
 *  - the engine's exact key/version counters equal the model's after every
 *    request and commit.
 *
 * Each input starts from an empty store on a freshly opened engine: at its
 * end every key it touched is deleted and committed (the counters must
 * then be zero) and the engine is closed and opened again.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "engine.h"
#include "fuzz_common.h"
#include "proto.h"
#include "request_gen.h"
#include "request_model.h"

#define MAX_OPS 256
#define AUTO_COMMIT 16        /* requests between forced commits */
#define RECYCLE_INPUTS 50000  /* inputs between fresh data directories */
#define DEFAULT_BUDGET (64 * 1024)

/* ---- fault injection ---------------------------------------------------- */

static pthread_t g_main;
static char *g_dir;           /* the data directory */
static int g_skip_syncs;      /* syncs of the fuzzing thread to let through first */
static int g_fail_syncs;      /* then how many to fail */
static int g_fail_writes;     /* writes to a LevelDB log left to fail */
static unsigned g_faults;     /* faults that struck during this input */
static int64_t g_mono_skew_s; /* added to CLOCK_MONOTONIC */

static bool on_fuzz_thread(void) { return pthread_equal(pthread_self(), g_main); }

static int failed_sync(void)
{
    if (g_fail_syncs > 0 && on_fuzz_thread()) {
        if (g_skip_syncs > 0) {
            g_skip_syncs--;
            return 0;
        }
        g_fail_syncs--;
        g_faults++;
        errno = EIO;
        return 1;
    }
    return 0;
}

/* Whether fd is a LevelDB write-ahead log in the data directory. */
static bool is_log(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 4 || !g_dir)
        return false;
    path[n] = '\0';
    return strncmp(path, g_dir, strlen(g_dir)) == 0 && strcmp(path + n - 4, ".log") == 0;
}

int fdatasync(int fd);
int fsync(int fd);
ssize_t write(int fd, const void *buf, size_t n);
int clock_gettime(clockid_t clk, struct timespec *tp);

ssize_t write(int fd, const void *buf, size_t n)
{
    if (g_fail_writes > 0 && on_fuzz_thread() && is_log(fd)) {
        g_fail_writes--;
        g_faults++;
        errno = ENOSPC;
        return -1;
    }
    return syscall(SYS_write, fd, buf, n);
}

int fdatasync(int fd) { return failed_sync() ? -1 : (int)syscall(SYS_fdatasync, fd); }

int fsync(int fd) { return failed_sync() ? -1 : (int)syscall(SYS_fsync, fd); }

int clock_gettime(clockid_t clk, struct timespec *tp)
{
    int rc = (int)syscall(SYS_clock_gettime, clk, tp);
    if (rc == 0 && clk == CLOCK_MONOTONIC)
        tp->tv_sec += g_mono_skew_s;
    return rc;
}

/* ---- the engine under test -------------------------------------------- */

static tkv_engine *g_eng;
static tkv_dispatch g_d;
static tkv_auth g_auth;
static tkv_session g_sess;
static bool g_use_sess;
static uint64_t g_clock;
static tkv_buf g_out;
static unsigned long g_inputs;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return g_clock;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void engine_open(size_t budget)
{
    tkv_engine_opts o = {
        .dir = g_dir,
        .block_cache = 64 * 1024,
        .write_buffer = 256 * 1024, /* small memtables: reads hit table files too */
        .fill_versions = 2,
        .resident_versions = 3,
        .max_memory = budget,
        .sync = true, /* a sync per commit, where FAULT strikes */
        .clock = fake_clock,
    };
    char err[512];
    /* Faults are transient: a restart gets a working disk. */
    g_skip_syncs = g_fail_syncs = g_fail_writes = 0;
    if (tkv_engine_open(&o, &g_eng, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_request: cannot open the engine in %s: %s\n", g_dir, err);
        abort();
    }
    g_d.eng = g_eng;
}

static void engine_close(void)
{
    tkv_engine_close(g_eng);
    g_eng = NULL;
}

/* The store lives in $TKV_FUZZ_DIR, else /dev/shm (LevelDB syncs each
 * commit, its manifest and new tables: on a disk that costs milliseconds),
 * else $TMPDIR or /tmp. */
static const char *base_dir(void)
{
    const char *b = getenv("TKV_FUZZ_DIR");
    if (b && *b)
        return b;
    if (access("/dev/shm", W_OK) == 0)
        return "/dev/shm";
    b = getenv("TMPDIR");
    return b && *b ? b : "/tmp";
}

static void new_dir(void)
{
    const char *base = base_dir();
    size_t n = strlen(base) + 32;
    g_dir = malloc(n);
    snprintf(g_dir, n, "%s/tkv-fuzz-XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        perror("fuzz_request: mkdtemp");
        abort();
    }
}

static void remove_dir(void)
{
    nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(g_dir);
    g_dir = NULL;
}

static void at_exit(void)
{
    engine_close();
    remove_dir();
    tkv_buf_deinit(&g_out);
}

static bool known(const char *tag)
{
    const char *k = getenv("TKV_FUZZ_KNOWN");
    size_t n = strlen(tag);
    for (const char *p = k; p && *p; p += strcspn(p, ","), p += *p == ',')
        if (strncmp(p, tag, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static bool g_no_faults, g_no_sync_faults, g_lax_counters;
static bool g_trace; /* TKV_FUZZ_TRACE=1: narrate each step on stderr */

#define TRACE(...)                                                                       \
    do {                                                                                 \
        if (g_trace)                                                                     \
            fprintf(stderr, "trace: " __VA_ARGS__);                                      \
    } while (0)

static void setup_once(void)
{
    if (g_eng)
        return;
    g_main = pthread_self();
    g_no_faults = known("storage-faults");
    g_no_sync_faults = known("fault-resurrect");
    g_lax_counters = known("fault-counters");
    g_trace = getenv("TKV_FUZZ_TRACE") && *getenv("TKV_FUZZ_TRACE") == '1';
    new_dir();
    engine_open(DEFAULT_BUDGET);
    g_d.lim.max_key = TKV_DEFAULT_MAX_KEY;
    g_d.lim.max_value = GEN_MAX_VALUE;
    if (tkv_auth_init(&g_auth, GEN_SECRET, sizeof GEN_SECRET - 1) < 0)
        abort();
    atexit(at_exit);
}

/* Whether the engine recovered from a fault during this input (it is
 * opened afresh for every input). */
static bool recovered(void)
{
    tkv_engine_stats s;
    tkv_engine_stats_get(g_eng, &s);
    return s.reopens > 0;
}

static bool g_counters_off; /* fault-counters: a recovery made them unreliable */

static bool counters_trusted(void)
{
    return !(g_lax_counters && (g_counters_off || (g_counters_off = recovered())));
}

static void check_counters(const char *when)
{
    if (!counters_trusted())
        return;
    tkv_engine_stats s;
    tkv_engine_stats_get(g_eng, &s);
    uint64_t keys, versions;
    model_totals(&keys, &versions);
    FUZZ_CHECK(s.keys == keys && s.versions == versions,
               "%s: the engine counts %llu keys / %llu versions, the model %llu / %llu%s", when,
               (unsigned long long)s.keys, (unsigned long long)s.versions,
               (unsigned long long)keys, (unsigned long long)versions,
               g_faults ? " (after an injected storage fault)" : "");
}

static unsigned g_since_commit;

/* Commits like the server's loop does (then holds the memory budget), and
 * follows the outcome in the model. A commit may fail only when a sync
 * failed under it or the engine was already failing. */
static void do_commit(const char *why)
{
    bool failing = tkv_engine_failing(g_eng);
    unsigned faults = g_faults;
    int rc = tkv_engine_commit(g_eng);
    TRACE("%s: commit -> %d%s%s\n", why, rc, rc ? ": " : "", rc ? tkv_engine_errmsg(g_eng) : "");
    FUZZ_CHECK(!tkv_engine_pending(g_eng), "writes pending after a commit");
    if (rc == 0) {
        model_commit();
    } else {
        FUZZ_CHECK(failing || g_faults != faults, "%s: commit failed without a fault: %s", why,
                   tkv_engine_errmsg(g_eng));
        model_rollback();
    }
    g_since_commit = 0;
    check_counters(rc == 0 ? "after a commit" : "after a failed commit");
    tkv_engine_maintain(g_eng);
    check_counters("after maintain");
}

/* Closes the engine and opens it again on the same directory, as a tkvd
 * restart would: only what LevelDB holds survives. */
static void reopen(size_t budget, const char *why)
{
    TRACE("%s: reopen with a budget of %zu bytes\n", why, budget);
    do_commit(why);
    engine_close();
    engine_open(budget);
    check_counters(why);
}

/* ---- checking replies ------------------------------------------------- */

static bool span_eq(tkv_span a, tkv_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Two parsed requests mean the same thing. */
static bool req_eq(const tkv_req *a, const tkv_req *b)
{
    if (a->cmd != b->cmd)
        return false;
    switch (a->cmd) {
    case TKV_CMD_PING:
        return a->has_msg == b->has_msg && (!a->has_msg || span_eq(a->msg, b->msg));
    case TKV_CMD_AUTH: return span_eq(a->msg, b->msg);
    case TKV_CMD_PUT:
        return span_eq(a->key, b->key) && span_eq(a->value, b->value) &&
               a->has_ts == b->has_ts && (!a->has_ts || a->ts == b->ts);
    case TKV_CMD_GET:
        return span_eq(a->key, b->key) && a->has_ts == b->has_ts &&
               (!a->has_ts || a->ts == b->ts);
    case TKV_CMD_RANGE:
        return span_eq(a->key, b->key) && a->from == b->from && a->to == b->to &&
               a->limit == b->limit && a->reverse == b->reverse;
    case TKV_CMD_DEL: return span_eq(a->key, b->key);
    default: return true;
    }
}

static void check_roundtrip(const tkv_req *req)
{
    tkv_buf b = {0};
    FUZZ_CHECK(tkv_req_encode(&b, req) == 0, "tkv_req_encode failed");
    FUZZ_CHECK(b.len >= 4 && fz_be32(b.data) == b.len - 4, "encoded request is not one frame");
    uint8_t *q = fz_dup(b.data + 4, b.len - 4);
    tkv_req again;
    char err[160];
    tkv_status st = tkv_req_parse(q, b.len - 4, &g_d.lim, &again, err, sizeof err);
    FUZZ_CHECK(st == TKV_ST_OK && req_eq(req, &again),
               "%s request does not survive encode + parse (status %d: %s)",
               tkv_cmd_name(req->cmd), st, err);
    free(q);
    tkv_buf_deinit(&b);
}

static bool known_status(uint64_t st)
{
    switch (st) {
    case TKV_ST_OK: case TKV_ST_NOT_FOUND: case TKV_ST_BAD_REQUEST:
    case TKV_ST_UNKNOWN_COMMAND: case TKV_ST_TOO_LARGE: case TKV_ST_OUT_OF_RANGE:
    case TKV_ST_STORAGE: case TKV_ST_BUSY: case TKV_ST_AUTH_REQUIRED:
    case TKV_ST_AUTH_FAILED: case TKV_ST_INTERNAL:
        return true;
    default:
        return false;
    }
}

static uint64_t rd_uint(tkv_mp *m, const char *what)
{
    uint64_t u = 0;
    FUZZ_CHECK(tkv_mp_read_uint(m, &u) == 0, "reply: %s is not an unsigned integer", what);
    return u;
}

/* A uint or nil; returns whether it was a uint. */
static bool rd_opt_uint(tkv_mp *m, uint64_t *u, const char *what)
{
    if (tkv_mp_read_nil(m))
        return false;
    *u = rd_uint(m, what);
    return true;
}

static tkv_span rd_bin(tkv_mp *m, const char *what)
{
    tkv_mp_obj o;
    FUZZ_CHECK(tkv_mp_next(m, &o) == 0 && o.type == TKV_MP_BIN, "reply: %s is not a bin",
               what);
    return (tkv_span){o.v.bytes.ptr, o.v.bytes.len};
}

static unsigned long long ull(uint64_t v) { return (unsigned long long)v; }

static void expect_found(tkv_mp *m, uint64_t st, uint32_t count, const mkey *k, long i,
                         uint64_t T)
{
    const mver *want = &k->cur.v[i];
    FUZZ_CHECK(st == TKV_ST_OK && count == 4,
               "GET as of %llu: status %llu with %u fields, expected the version at %llu",
               ull(T), ull(st), count, ull(want->ts));
    tkv_span v = rd_bin(m, "GET value");
    uint64_t ts = rd_uint(m, "GET ts"), next = 0;
    bool has_next = rd_opt_uint(m, &next, "GET next");
    FUZZ_CHECK(ts == want->ts, "GET as of %llu: version %llu, the model says %llu%s", ull(T),
               ull(ts), ull(want->ts), g_faults ? " (after an injected storage fault)" : "");
    FUZZ_CHECK(span_eq(v, (tkv_span){want->val, want->len}),
               "GET as of %llu: wrong value for version %llu (%u bytes, want %u)", ull(T),
               ull(ts), v.len, want->len);
    bool want_next = (size_t)i + 1 < k->cur.n;
    uint64_t wnext = want_next ? k->cur.v[i + 1].ts : 0;
    FUZZ_CHECK(has_next == want_next && (!want_next || next == wnext),
               "GET as of %llu: next is %s%llu, the model says %s%llu", ull(T),
               has_next ? "" : "nil/", ull(next), want_next ? "" : "nil/", ull(wnext));
}

static void expect_get(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r)
{
    mkey *k = model_find(r->key.ptr, r->key.len, false);
    uint64_t T = r->has_ts ? r->ts : TKV_TS_MAX;
    long i = model_floor(k, T);
    if (i >= 0) {
        expect_found(m, st, count, k, i, T);
        return;
    }
    bool any = k && k->cur.n > 0;
    FUZZ_CHECK(st == TKV_ST_NOT_FOUND && count == 3,
               "GET as of %llu: status %llu, expected NOT_FOUND (the key has %zu versions)%s",
               ull(T), ull(st), k ? k->cur.n : 0,
               g_faults ? " (after an injected storage fault)" : "");
    uint64_t reason = rd_uint(m, "GET reason"), next = 0;
    bool has_next = rd_opt_uint(m, &next, "GET next");
    FUZZ_CHECK(reason == (any ? TKV_M_BEFORE_FIRST : TKV_M_NO_KEY),
               "GET as of %llu: miss reason %llu, the key has %zu versions", ull(T),
               ull(reason), k ? k->cur.n : 0);
    FUZZ_CHECK(has_next == any && (!any || next == k->cur.v[0].ts),
               "GET miss: next %s%llu, first version %llu", has_next ? "" : "nil/", ull(next),
               any ? ull(k->cur.v[0].ts) : 0ull);
}

static size_t uint_size(uint64_t v)
{
    return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : v <= UINT32_MAX ? 5 : 9;
}

static size_t bin_hdr(size_t n) { return n < 256 ? 2 : n < 65536 ? 3 : 5; }

static void expect_range(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r,
                         size_t payload_len)
{
    FUZZ_CHECK(st == TKV_ST_OK && count == 3, "RANGE: status %llu, %u fields", ull(st), count);
    mkey *k = model_find(r->key.ptr, r->key.len, false);
    /* The model's answer, in reply order. */
    size_t n = 0, all = k ? k->cur.n : 0;
    const mver **want = malloc((all ? all : 1) * sizeof *want);
    for (size_t j = 0; j < all && r->from <= r->to; j++) {
        const mver *v = &k->cur.v[r->reverse ? all - 1 - j : j];
        if (v->ts >= r->from && v->ts <= r->to)
            want[n++] = v;
    }
    if (r->limit < n)
        n = (size_t)r->limit;
    /* Where the reply must stop: cmd.c reserves 15 bytes of headers per
     * entry and one byte for the final boolean, against max_reply. */
    size_t used = 1 + 1 + 5, fit = 0;
    while (fit < n && used + 15 + want[fit]->len <= g_d.max_reply - 1) {
        used += 1 + uint_size(want[fit]->ts) + bin_hdr(want[fit]->len) + want[fit]->len;
        fit++;
    }
    uint32_t got;
    FUZZ_CHECK(tkv_mp_read_array(m, &got) == 0, "RANGE: no list");
    FUZZ_CHECK(got == fit,
               "RANGE [%llu, %llu] limit %llu%s: %u versions, the model %zu (%zu before the "
               "size limit %zu)%s",
               ull(r->from), ull(r->to), ull(r->limit), r->reverse ? " reverse" : "", got, fit,
               n, g_d.max_reply, g_faults ? " (after an injected storage fault)" : "");
    for (uint32_t j = 0; j < got; j++) {
        uint32_t two;
        FUZZ_CHECK(tkv_mp_read_array(m, &two) == 0 && two == 2, "RANGE entry is not a pair");
        uint64_t ts = rd_uint(m, "RANGE ts");
        tkv_span v = rd_bin(m, "RANGE value");
        FUZZ_CHECK(ts == want[j]->ts, "RANGE entry %u: ts %llu, the model %llu", j, ull(ts),
                   ull(want[j]->ts));
        FUZZ_CHECK(span_eq(v, (tkv_span){want[j]->val, want[j]->len}),
                   "RANGE entry %u (ts %llu): wrong value", j, ull(ts));
    }
    bool truncated;
    FUZZ_CHECK(tkv_mp_read_bool(m, &truncated) == 0, "RANGE: no truncated flag");
    FUZZ_CHECK(truncated == (fit < n), "RANGE: truncated is %d with %zu of %zu versions",
               truncated, fit, n);
    FUZZ_CHECK(payload_len <= g_d.max_reply, "RANGE reply of %zu bytes above max_reply %zu",
               payload_len, g_d.max_reply);
    free(want);
}

static void expect_stats(tkv_mp *m, uint64_t st, uint32_t count)
{
    FUZZ_CHECK(st == TKV_ST_OK && count == 2, "STATS: status %llu", ull(st));
    uint32_t pairs;
    FUZZ_CHECK(tkv_mp_read_map(m, &pairs) == 0, "STATS: no map");
    uint64_t keys, versions, seen = 0;
    model_totals(&keys, &versions);
    if (!counters_trusted())
        seen = 3; /* known-wrong after a recovery: only check the shape */
    for (uint32_t i = 0; i < pairs; i++) {
        const uint8_t *name;
        uint32_t nlen;
        tkv_mp_obj o;
        FUZZ_CHECK(tkv_mp_read_bytes(m, &name, &nlen) == 0, "STATS: field name");
        FUZZ_CHECK(tkv_mp_next(m, &o) == 0 && (o.type == TKV_MP_UINT || o.type == TKV_MP_STR),
                   "STATS: field %.*s is not a uint or str", (int)nlen, name);
        if (seen == 3)
            continue;
        if (nlen == 4 && memcmp(name, "keys", 4) == 0) {
            FUZZ_CHECK(o.type == TKV_MP_UINT && o.v.u == keys, "STATS keys %llu, model %llu",
                       ull(o.v.u), ull(keys));
            seen |= 1;
        } else if (nlen == 8 && memcmp(name, "versions", 8) == 0) {
            FUZZ_CHECK(o.type == TKV_MP_UINT && o.v.u == versions,
                       "STATS versions %llu, model %llu", ull(o.v.u), ull(versions));
            seen |= 2;
        }
    }
    FUZZ_CHECK(seen == 3, "STATS without keys or versions");
}

static void expect_put(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r, bool dirty)
{
    mkey *k = model_find(r->key.ptr, r->key.len, true);
    uint64_t ts = r->ts;
    if (!r->has_ts) {
        if (k->cur.n && k->cur.v[k->cur.n - 1].ts == TKV_TS_MAX) {
            FUZZ_CHECK(st == TKV_ST_OUT_OF_RANGE,
                       "PUT without ts after a version at UINT64_MAX: status %llu", ull(st));
            return;
        }
        uint64_t newest1 = k->cur.n ? k->cur.v[k->cur.n - 1].ts + 1 : 0;
        ts = g_clock > newest1 ? g_clock : newest1;
    }
    FUZZ_CHECK(st == TKV_ST_OK && count == 2, "PUT: status %llu", ull(st));
    uint64_t got = rd_uint(m, "PUT ts");
    FUZZ_CHECK(got == ts, "PUT%s stored at %llu, expected %llu (clock %llu)",
               r->has_ts ? "" : " without ts", ull(got), ull(ts), ull(g_clock));
    FUZZ_CHECK(dirty && tkv_engine_pending(g_eng), "PUT not reported dirty/pending");
    model_put(k, ts, r->value.ptr, r->value.len);
}

static void expect_del(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r, bool dirty)
{
    FUZZ_CHECK(st == TKV_ST_OK && count == 2, "DEL: status %llu", ull(st));
    mkey *k = model_find(r->key.ptr, r->key.len, true);
    uint64_t got = rd_uint(m, "DEL count");
    FUZZ_CHECK(got == k->cur.n, "DEL removed %llu versions, the model has %zu%s", ull(got),
               k->cur.n, g_faults ? " (after an injected storage fault)" : "");
    FUZZ_CHECK(!k->cur.n || dirty, "DEL that removed versions not reported dirty");
    model_clear(k);
}

static void expect_auth(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *r,
                        uint64_t fails0)
{
    (void)m;
    if (!g_d.auth) {
        FUZZ_CHECK(st == TKV_ST_BAD_REQUEST, "AUTH without a secret: status %llu", ull(st));
        return;
    }
    bool right = r->msg.len == sizeof GEN_SECRET - 1 &&
                 memcmp(r->msg.ptr, GEN_SECRET, r->msg.len) == 0;
    if (right) {
        FUZZ_CHECK(st == TKV_ST_OK && count == 1, "AUTH with the secret: status %llu", ull(st));
        if (g_use_sess)
            FUZZ_CHECK(g_sess.authed, "AUTH succeeded, session not authenticated");
    } else {
        FUZZ_CHECK(st == TKV_ST_AUTH_FAILED, "AUTH with a wrong secret: status %llu", ull(st));
        FUZZ_CHECK(g_d.auth_failures == fails0 + 1, "auth_failures not counted");
    }
}

/* What a parsed request must get back; the model follows. */
static void expect(tkv_mp *m, uint64_t st, uint32_t count, const tkv_req *req, bool dirty,
                   size_t plen, uint64_t fails0, bool trusted)
{
    if (!trusted && req->cmd != TKV_CMD_AUTH && req->cmd != TKV_CMD_PING) {
        FUZZ_CHECK(st == TKV_ST_AUTH_REQUIRED, "%s before AUTH: status %llu",
                   tkv_cmd_name(req->cmd), ull(st));
        return;
    }
    switch (req->cmd) {
    case TKV_CMD_PING: {
        FUZZ_CHECK(st == TKV_ST_OK && count == 2, "PING: status %llu", ull(st));
        const uint8_t *echo;
        uint32_t elen;
        FUZZ_CHECK(tkv_mp_read_bytes(m, &echo, &elen) == 0, "PING: no message");
        tkv_span want = req->has_msg ? req->msg : (tkv_span){(const uint8_t *)"PONG", 4};
        FUZZ_CHECK(span_eq((tkv_span){echo, elen}, want), "PING echoed something else");
        break;
    }
    case TKV_CMD_PUT: expect_put(m, st, count, req, dirty); break;
    case TKV_CMD_GET: expect_get(m, st, count, req); break;
    case TKV_CMD_RANGE: expect_range(m, st, count, req, plen); break;
    case TKV_CMD_DEL: expect_del(m, st, count, req, dirty); break;
    case TKV_CMD_AUTH: expect_auth(m, st, count, req, fails0); break;
    default: expect_stats(m, st, count); break;
    }
}

/* Parses the reply in g_out; returns a heap copy of its payload with *m
 * after the status. */
static uint8_t *reply_head(tkv_mp *m, uint32_t *count, uint64_t *st, int rc)
{
    FUZZ_CHECK(rc >= 0, "dispatch failed (%d) without running out of memory", rc);
    FUZZ_CHECK(g_out.len >= 4 && fz_be32(g_out.data) == g_out.len - 4,
               "reply is not exactly one frame (%zu bytes, header %u)", g_out.len,
               g_out.len >= 4 ? fz_be32(g_out.data) : 0);
    size_t plen = g_out.len - 4;
    uint8_t *p = fz_dup(g_out.data + 4, plen);
    FUZZ_CHECK(tkv_mp_validate(p, plen) == 0, "reply payload is not one MessagePack value");
    tkv_mp_init(m, p, plen);
    FUZZ_CHECK(tkv_mp_read_array(m, count) == 0 && *count >= 1, "reply is not an array");
    *st = rd_uint(m, "status");
    FUZZ_CHECK(known_status(*st), "unknown status %llu", ull(*st));
    FUZZ_CHECK((uint64_t)rc == *st, "dispatch returned %d for a reply with status %llu", rc,
               ull(*st));
    if (*st >= 10) {
        tkv_mp_obj o;
        tkv_mp save = *m;
        FUZZ_CHECK(*count == 2 && tkv_mp_next(m, &o) == 0 && o.type == TKV_MP_STR,
                   "error reply is not [status, str]");
        *m = save;
    }
    return p;
}

/* Runs one request frame and checks everything about its reply. intent is
 * NULL for frames the grammar did not build (or mutated). */
static void run_frame(const uint8_t *frame, size_t len, const gen *intent)
{
    uint8_t *q = fz_dup(frame, len);
    tkv_req req;
    char err[160];
    tkv_status pst = tkv_req_parse(q, len, &g_d.lim, &req, err, sizeof err);
    if (intent) {
        FUZZ_CHECK(pst == intent->st, "%s request built to get status %d parses to %d (%s)",
                   tkv_cmd_name(intent->req.cmd), intent->st, pst, err);
        FUZZ_CHECK(pst != TKV_ST_OK || req_eq(&req, &intent->req),
                   "%s request parses to different fields", tkv_cmd_name(req.cmd));
    }
    if (pst == TKV_ST_OK)
        check_roundtrip(&req);

    bool trusted = !g_d.auth || !g_use_sess || g_sess.authed;
    bool failing = tkv_engine_failing(g_eng);
    uint64_t errors0 = g_d.errors, fails0 = g_d.auth_failures;
    uint64_t calls0 = pst == TKV_ST_OK ? g_d.calls[req.cmd] : 0;
    mkey *k = pst == TKV_ST_OK && (req.cmd == TKV_CMD_GET || req.cmd == TKV_CMD_RANGE)
                  ? model_find(req.key.ptr, req.key.len, false)
                  : NULL;
    bool reads_dirty = k && k->dirty && trusted &&
                       (req.cmd == TKV_CMD_GET || (req.from <= req.to && req.limit > 0));
    bool dirty = false;
    tkv_buf_reset(&g_out);
    int rc = tkv_dispatch_session(&g_d, g_use_sess ? &g_sess : NULL, q, len, &g_out, &dirty);

    tkv_mp m;
    uint32_t count;
    uint64_t st;
    uint8_t *p = reply_head(&m, &count, &st, rc);
    if (g_trace) {
        TRACE("%s", pst == TKV_ST_OK ? tkv_cmd_name(req.cmd) : "(refused)");
        if (pst == TKV_ST_OK && req.cmd != TKV_CMD_PING && req.cmd != TKV_CMD_STATS &&
            req.cmd != TKV_CMD_AUTH)
            fprintf(stderr, " key %u bytes %02x..%s%llu", req.key.len, req.key.ptr[0],
                    req.cmd == TKV_CMD_RANGE ? " from " : req.has_ts ? " ts " : " ",
                    req.cmd == TKV_CMD_RANGE ? ull(req.from) : req.has_ts ? ull(req.ts) : 0);
        fprintf(stderr, " -> status %llu, %zu reply bytes%s\n", ull(st), g_out.len - 4,
                dirty ? ", dirty" : "");
    }
    FUZZ_CHECK(g_d.errors - errors0 == (st >= 10), "error counter moved by %llu for status %llu",
               ull(g_d.errors - errors0), ull(st));
    if (pst != TKV_ST_OK) {
        FUZZ_CHECK(st == pst, "parser says %d, the reply %llu", pst, ull(st));
    } else if (st == TKV_ST_STORAGE) {
        /* Legitimate only while the store is down after a fault. */
        FUZZ_CHECK(failing && g_faults, "%s: STORAGE error without a fault",
                   tkv_cmd_name(req.cmd));
    } else {
        FUZZ_CHECK(g_d.calls[req.cmd] == calls0 + 1, "calls[%s] not counted",
                   tkv_cmd_name(req.cmd));
        expect(&m, st, count, &req, dirty, g_out.len - 4, fails0, trusted);
        FUZZ_CHECK(!reads_dirty || dirty, "%s of a key with uncommitted writes not reported "
                   "dirty", tkv_cmd_name(req.cmd));
        if (st < 10)
            FUZZ_CHECK(tkv_mp_left(&m) == 0, "reply has fields the model did not expect");
    }
    check_counters(pst == TKV_ST_OK ? tkv_cmd_name(req.cmd) : "a refused request");
    free(p);
    free(q);
}

/* ---- driving an input ------------------------------------------------- */

static const size_t max_replies[4] = {TKV_DEFAULT_MAX_FRAME, 64, 200, 4096};
static const uint64_t clocks[8] = {
    1000, 0, 5, 100, UINT64_MAX - 1, UINT64_MAX, UINT64_C(1795313217177998), 1u << 16,
};
static const size_t budgets[4] = {DEFAULT_BUDGET, 0, 4096, 1u << 20};

static void after_request(void)
{
    if (++g_since_commit >= AUTO_COMMIT)
        do_commit("automatic commit");
}

static void run_raw(fz *f)
{
    for (int i = 0; i < MAX_OPS && !fz_empty(f); i++) {
        const uint8_t *p;
        size_t n = fz_bytes(f, fz_u16(f), &p);
        run_frame(p, n, NULL);
        if (i % 4 == 3)
            do_commit("commit after 4 raw frames");
    }
}

/* A frame the grammar built, then damaged: a flipped or replaced byte, a
 * cut, or another array count. */
static void run_mutated(fz *f, wbuf *w)
{
    gen g;
    gen_request(f, &g, w, gen_cmds[fz_below(f, GEN_NCMDS)]);
    uint8_t how = fz_u8(f);
    size_t at = w->n ? fz_u16(f) % w->n : 0;
    switch (how & 3) {
    case 0:
        if (w->n)
            w->p[at] ^= (uint8_t)(1u << ((how >> 2) & 7));
        break;
    case 1: w->n = at; break;
    case 2:
        if (w->n)
            w->p[at] = fz_u8(f);
        break;
    default:
        if (w->n)
            w->p[0] = (uint8_t)(0x90 | ((how >> 2) & 15));
        break;
    }
    run_frame(w->p, w->n, NULL);
}

/* The operations that are not requests. */
static void run_special(fz *f, wbuf *w)
{
    uint8_t b = fz_u8(f);
    switch (b & 7) {
    case 0:
        reopen(budgets[(b >> 3) & 3], "REOPEN");
        break;
    case 1: {
        const uint8_t *p;
        size_t n = fz_bytes(f, fz_u8(f), &p);
        run_frame(p, n, NULL);
        after_request();
        break;
    }
    case 2:
    case 3:
        run_mutated(f, w);
        after_request();
        break;
    case 4:
        if (g_no_faults)
            break;
        /* 0: a sync fails after the write; 1: a log write fails before
         * anything reaches the file; 2: two syncs (the recovery probe's
         * too); 3: a write, then a sync; 4, 5: a write, then - the probe
         * passing - the syncs of LevelDB's reopen, so the store stays
         * closed; 6, 7: a write. */
        switch ((b >> 3) & 7) {
        case 0: g_fail_syncs = 1; break;
        case 2: g_fail_syncs = 2; break;
        case 3: g_fail_writes = g_fail_syncs = 1; break;
        case 4:
        case 5:
            g_fail_writes = 1;
            g_skip_syncs = 1;
            g_fail_syncs = (b & 0x20) ? 3 : 1;
            break;
        default: g_fail_writes = 1; break;
        }
        /* Sync faults under a commit resurrect its batch (reported). */
        if (g_no_sync_faults && g_fail_syncs && !g_skip_syncs) {
            g_fail_syncs = 0;
            g_fail_writes = 1;
        }
        TRACE("FAULT: the next %d syncs and %d log writes fail\n", g_fail_syncs,
              g_fail_writes);
        break;
    case 5: /* past the recovery probe interval */
        g_mono_skew_s += 1;
        TRACE("ADVANCE: CLOCK_MONOTONIC +%llds\n", (long long)g_mono_skew_s);
        break;
    case 6:
        TRACE("TICK\n");
        tkv_engine_tick(g_eng);
        check_counters("tick");
        break;
    default: {
        bool failing = tkv_engine_failing(g_eng);
        unsigned faults = g_faults;
        int rc = tkv_engine_sync(g_eng);
        TRACE("SYNC -> %d\n", rc);
        FUZZ_CHECK(rc == 0 || failing || g_faults != faults, "sync failed without a fault: %s",
                   tkv_engine_errmsg(g_eng));
        break;
    }
    }
}

static void run_structured(fz *f)
{
    wbuf w = {0};
    for (int i = 0; i < MAX_OPS && !fz_empty(f); i++) {
        uint8_t op = fz_u8(f) % 16;
        if (op < GEN_NCMDS) {
            gen g;
            gen_request(f, &g, &w, gen_cmds[op]);
            run_frame(w.p, w.n, &g);
            after_request();
        } else if (op == 13) {
            do_commit("COMMIT");
        } else if (op == 14) {
            g_clock = clocks[fz_u8(f) & 7];
            TRACE("SETCLOCK %llu\n", ull(g_clock));
        } else {
            run_special(f, &w);
        }
    }
    wbuf_free(&w);
}

/* Deletes everything the input wrote so the next input starts empty, and
 * leaves a freshly opened engine behind. */
static void finish_input(void)
{
    if (g_faults || tkv_engine_failing(g_eng))
        reopen(DEFAULT_BUDGET, "restart after a storage fault");
    for (size_t i = 0; i < model_nkeys(); i++) {
        mkey *k = model_key(i);
        uint64_t removed;
        bool dirty;
        tkv_status st = tkv_engine_del(g_eng, k->key, k->klen, &removed, &dirty);
        FUZZ_CHECK(st == TKV_ST_OK && removed == k->cur.n,
                   "cleanup DEL: status %d, removed %llu versions, the model has %zu%s", st,
                   ull(removed), k->cur.n, g_faults ? " (after an injected storage fault)" : "");
        model_clear(k);
    }
    do_commit("cleanup commit");
    tkv_engine_stats s;
    tkv_engine_stats_get(g_eng, &s);
    FUZZ_CHECK(g_counters_off || (s.keys == 0 && s.versions == 0),
               "after deleting every key the engine still counts %llu keys / %llu versions",
               ull(s.keys), ull(s.versions));
    engine_close();
    /* Wrong counters persist: start the next input in a new directory. */
    if (++g_inputs % RECYCLE_INPUTS == 0 || g_counters_off) {
        remove_dir();
        new_dir();
    }
    engine_open(DEFAULT_BUDGET);
    model_free();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    fz f = {data, size};
    uint8_t mode = fz_u8(&f);
    g_d.max_reply = max_replies[mode & 3];
    g_d.auth = mode & 4 ? &g_auth : NULL;
    g_use_sess = mode & 8;
    memset(&g_sess, 0, sizeof g_sess);
    g_clock = clocks[0];
    g_skip_syncs = g_fail_syncs = g_fail_writes = 0;
    g_faults = 0;
    g_mono_skew_s = 0;
    g_counters_off = false;
    g_since_commit = 0;
    gen_reset();
    if (mode & 0x80)
        run_raw(&f);
    else
        run_structured(&f);
    g_skip_syncs = g_fail_syncs = g_fail_writes = 0;
    finish_input();
    return 0;
}
