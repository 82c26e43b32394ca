/*
 * fuzz_request.c - libFuzzer target for request parsing and command
 * dispatch (protocol/proto.h, server/cmd.h) against a real engine, with
 * storage faults and the sweep.
 *
 * The engine runs in a mkdtemp directory (on /dev/shm when it can) with
 * tiny fill_versions (2), resident_versions (3) and a small memory budget,
 * so the memory/LevelDB merge paths run all the time: reads below a key's
 * watermark, writes into the deep past, merged scans, DEL of versions only
 * on disk, keys evicted and loaded again. Its clock is a variable the input
 * moves forward, so timestamps chosen by the server and expiry are
 * deterministic.
 *
 * The first input byte chooses the mode: bit 7 set - raw frames, the rest
 * is [u16 big-endian length][payload]...; clear - structured: the rest
 * drives request_gen.c's grammar (every command, every encoding, one
 * injected error now and then) plus driver operations (COMMIT, or its two
 * halves COMMIT_START and COMMIT_FINISH with requests in between, SETCLOCK,
 * CLOCK+, SWEEP, REOPEN with a memory budget and fsync mode, storage FAULT,
 * time ADVANCE, TICK, SYNC, raw and mutated frames). Bits 0-1 pick the limits (max reply 8 MiB, 4 KiB, 1200
 * or 256 bytes, with keys and values that fit, as tkvd requires), bit 2
 * gives the dispatcher an AUTH secret, bit 3 serves the input as one
 * session (so AUTH_REQUIRED applies) rather than as trusted frames, and
 * bit 4 runs requests as tkvd does with reader threads: through
 * tkv_dispatch_try(), so a request that needs LevelDB waits for a load;
 * the load runs, then the input may commit, start or collect a batch,
 * evict, or make the next commit fail before it is installed, and the
 * request runs again - every answer is still checked against the model,
 * and a waiting request must have changed nothing.
 *
 * Storage faults: this file defines write(), fdatasync(), fsync() and
 * clock_gettime(), which take precedence over libc's (and ASan's weak
 * interceptors) for LevelDB and the engine. FAULT makes the next sync of
 * the fuzzing thread fail with EIO after the data was written (the engine
 * is opened with sync on, so every commit syncs), or the next write to a
 * LevelDB log fail with ENOSPC before anything is written, or both.
 * CLOCK_MONOTONIC stands still during an input (for the fuzzing thread);
 * ADVANCE moves it past the engine's recovery probe interval. Built with
 * the memory store (meson -Dstore=memory, which defines TKV_STORE_MEMORY),
 * the store has no files: its hook (store_mem.h) asks the same counters at
 * the same points - a log write, a log sync, the sync of an open - and
 * fails them the same way, limbo included; write() and fsync() then only
 * see the engine's recovery probe.
 *
 * Every request frame goes through tkv_dispatch_session() from an exactly
 * sized heap copy, and everything about the reply is checked:
 *  - it is exactly one frame: a 4-byte length equal to the payload size
 *    and one valid MessagePack array starting with a known status; errors
 *    are [status, str]; the error counter moves exactly for errors;
 *  - the status is what tkv_req_parse() says (and, for a frame the grammar
 *    built, what the grammar meant, fields included), and a parsed request
 *    survives the library's encoders + tkv_req_parse() unchanged;
 *  - the answer matches the model (request_check.c, request_model.c);
 *  - a read of a key with uncommitted writes is reported dirty;
 *  - STORAGE errors and failed commits happen only after a fault or a
 *    half-failed MPUT, and a failed commit rolls everything back to the
 *    last successful commit - except a batch whose sync failed after its
 *    write reached LevelDB's log: that one is back once LevelDB is
 *    reopened (request_model.h's limbo);
 *  - the engine's exact key/version counters agree with the model after
 *    every request and commit;
 *  - a sweep step does nothing while writes are pending, and otherwise
 *    commits its own batch and changes no answer (engine.h) - except that
 *    it may move the horizon of a key with a retention policy to exactly
 *    where the policy puts it, hiding the versions below.
 *
 * Reported findings can be let through so fuzzing goes on past them, with
 * TKV_FUZZ_KNOWN set to a comma-separated list of tags (none is open now;
 * `storage-faults` turns the injected faults off altogether).
 *
 * Each input starts from an empty store: at its end every key it touched
 * is deleted and committed (the counters must then be zero, nothing
 * pending, the store not failing). The engine is then closed and opened
 * again only if the input left it with other options, a sweep pass under
 * way or after a fault, and every REOPEN_INPUTS inputs; otherwise the next
 * input gets the same engine, as a long-running tkvd's clients do (opening
 * LevelDB cost more than most inputs). TKV_FUZZ_FRESH=1 opens a fresh one
 * for every input, to tell whether a finding needs the inputs before it.
 *
 * TKV_FUZZ_TRACE=1 narrates every step on stderr, for reading reproducers.
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
#include "request_check.h"
#include "request_gen.h"
#include "request_model.h"
#ifdef TKV_STORE_MEMORY
#include "store_mem.h"
#endif

#define MAX_OPS 256
#define AUTO_COMMIT 16       /* requests between forced commits */
#define RECYCLE_INPUTS 50000 /* inputs between fresh data directories */
#define REOPEN_INPUTS 32     /* inputs at most between fresh engines */
#define DEFAULT_BUDGET (64 * 1024)

fuzz_state F;

/* ---- fault injection ---------------------------------------------------- */

static pthread_t g_main;
static char *g_dir;                 /* the data directory */
static int g_skip_syncs;            /* syncs of the fuzzing thread to let through first */
static unsigned g_log_sync_faults;  /* failed syncs of a LevelDB log: its data was written */
static int g_fail_syncs;            /* then how many to fail */
static int g_fail_writes;           /* writes to a LevelDB log left to fail */
static int64_t g_mono_skew_s;       /* added to CLOCK_MONOTONIC */
static struct timespec g_mono_base; /* CLOCK_MONOTONIC stands still here
                                       during an input, so the engine's
                                       recovery interval passes only on
                                       ADVANCE, never because an input ran
                                       slowly */
static bool g_mono_frozen;

static bool on_fuzz_thread(void) { return pthread_equal(pthread_self(), g_main); }

static bool is_log(int fd);

/* Whether this sync of the fuzzing thread fails; log: of a LevelDB log. */
static bool sync_fails(bool log)
{
    if (g_fail_syncs > 0 && on_fuzz_thread()) {
        if (g_skip_syncs > 0) {
            g_skip_syncs--;
            return false;
        }
        g_fail_syncs--;
        F.faults++;
        g_log_sync_faults += log;
        return true;
    }
    return false;
}

static int failed_sync(int fd)
{
    if (g_fail_syncs > 0 && on_fuzz_thread() && sync_fails(is_log(fd))) {
        errno = EIO;
        return 1;
    }
    return 0;
}

#ifdef TKV_STORE_MEMORY
/* The memory store has no files: it asks here where LevelDB would write
 * or sync its log (or sync its manifest on opening), and the same counters
 * answer, so a FAULT means the same with either store. */
static int mem_fault(void *ctx, tkv_store_mem_event ev)
{
    (void)ctx;
    if (ev == TKV_STORE_MEM_LOG_WRITE) {
        if (g_fail_writes <= 0 || !on_fuzz_thread())
            return 0;
        g_fail_writes--;
        F.faults++;
        return ENOSPC;
    }
    return sync_fails(ev == TKV_STORE_MEM_LOG_SYNC) ? EIO : 0;
}
#endif

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
        F.faults++;
        errno = ENOSPC;
        return -1;
    }
    return syscall(SYS_write, fd, buf, n);
}

int fdatasync(int fd) { return failed_sync(fd) ? -1 : (int)syscall(SYS_fdatasync, fd); }

int fsync(int fd) { return failed_sync(fd) ? -1 : (int)syscall(SYS_fsync, fd); }

int clock_gettime(clockid_t clk, struct timespec *tp)
{
    if (clk == CLOCK_MONOTONIC && g_mono_frozen && on_fuzz_thread()) {
        *tp = g_mono_base;
        tp->tv_sec += g_mono_skew_s;
        return 0;
    }
    return (int)syscall(SYS_clock_gettime, clk, tp);
}

/* ---- the engine under test -------------------------------------------- */

static tkv_auth g_auth;
static tkv_buf g_out;
static fz *g_fz;        /* the input being run (between a load and its install) */
static bool g_nonblock; /* mode bit 4: requests wait for loads */
static unsigned g_loads, g_stale;
static unsigned long g_inputs;
static bool g_no_faults, g_trace;
static uint64_t g_reopens;    /* the engine's reopens as last seen */
static bool g_fresh;          /* TKV_FUZZ_FRESH=1: a fresh engine for every input */
static size_t g_budget;       /* the open engine's memory budget */
static tkv_sync_mode g_fsync; /* and its fsync mode */
static bool g_midpass;        /* a sweep pass is under way */

#define TRACE(...)                                  \
    do {                                            \
        if (g_trace)                                \
            fprintf(stderr, "trace: " __VA_ARGS__); \
    } while (0)

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return F.clock;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void engine_open(size_t budget, tkv_sync_mode fsync)
{
    tkv_engine_opts o = {
        .dir = g_dir,
        .block_cache = 64 * 1024,
        .write_buffer = 256 * 1024, /* small memtables: reads hit table files too */
        .fill_versions = 2,
        .resident_versions = 3,
        .max_memory = budget,
        .fsync = fsync,         /* ALWAYS by default: a sync per commit, where FAULT strikes */
        .writer_thread = false, /* batches are written within commit_start() */
        .clock = fake_clock,
    };
    char err[512];
    g_budget = budget;
    g_fsync = fsync;
    g_midpass = false;
    /* Faults are transient: a restart gets a working disk. */
    g_skip_syncs = g_fail_syncs = g_fail_writes = 0;
    if (tkv_engine_open(&o, &F.eng, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_request: cannot open the engine in %s: %s\n", g_dir, err);
        abort();
    }
    F.d.eng = F.eng;
}

static void engine_close(void)
{
    tkv_engine_close(F.eng);
    F.eng = NULL;
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

static void setup_once(void)
{
    if (F.eng)
        return;
    g_main = pthread_self();
    g_no_faults = known("storage-faults");
    g_trace = getenv("TKV_FUZZ_TRACE") && *getenv("TKV_FUZZ_TRACE") == '1';
    g_fresh = getenv("TKV_FUZZ_FRESH") && *getenv("TKV_FUZZ_FRESH") == '1';
#ifdef TKV_STORE_MEMORY
    tkv_store_mem_set_fault_hook(mem_fault, NULL);
#endif
    new_dir();
    engine_open(DEFAULT_BUDGET, TKV_SYNC_ALWAYS);
    if (tkv_auth_init(&g_auth, GEN_SECRET, sizeof GEN_SECRET - 1) < 0)
        abort();
    atexit(at_exit);
}

static unsigned g_since_commit;
static bool g_in_flight;            /* a batch was handed over and not collected */
static unsigned g_flight_faults;    /* F.faults before it was written */
static unsigned g_flight_log_syncs; /* g_log_sync_faults before it was written */

/* If the engine reopened LevelDB since we last looked (recovering from a
 * fault, inside a write, a sweep or a tick), a batch in limbo is back. */
static void settle_limbo(const char *when)
{
    tkv_engine_stats s;
    tkv_engine_stats_get(F.eng, &s);
    if (s.reopens == g_reopens)
        return;
    g_reopens = s.reopens;
    if (model_in_limbo()) {
        TRACE("%s: LevelDB reopened, the batch whose sync failed is back\n", when);
        model_resurrect();
    }
}

/* Collects the batch in flight (without a writer thread it was written by
 * commit_start() already). It may fail only after a fault; then it and the
 * staging batch are rolled back. Returns -1 if it failed. */
static int finish_flight(const char *why)
{
    if (!g_in_flight)
        return 0;
    bool failing = tkv_engine_failing(F.eng);
    uint64_t failed;
    int rc = tkv_engine_commit_finish(F.eng, &failed);
    TRACE("%s: commit_finish -> %d%s%s\n", why, rc, rc < 0 ? ": " : "",
          rc < 0 ? tkv_engine_errmsg(F.eng) : "");
    FUZZ_CHECK(rc != 0, "%s: the batch in flight is not done, without a writer thread", why);
    g_in_flight = false;
    if (rc > 0) {
        model_commit_done();
        return 0;
    }
    FUZZ_CHECK(failing || F.faults != g_flight_faults, "%s: a batch failed without a fault: %s",
               why, tkv_engine_errmsg(F.eng));
    if (g_log_sync_faults != g_flight_log_syncs) {
        TRACE("%s: the batch reached the log before its sync failed: in limbo\n", why);
        model_limbo();
    } else {
        model_rollback();
    }
    F.poisoned = false;
    return -1;
}

/* Hands the staging batch to the writer. Fails (rolling it back) when an
 * MPUT poisoned it, and otherwise only while the store is failing. */
static int start_flight(const char *why)
{
    if (g_in_flight)
        return 0;
    bool failing = tkv_engine_failing(F.eng), poisoned = F.poisoned;
    bool pending = tkv_engine_pending(F.eng);
    unsigned faults = F.faults, log_syncs = g_log_sync_faults;
    uint64_t failed;
    int rc = tkv_engine_commit_start(F.eng, &failed);
    TRACE("%s: commit_start -> %d%s%s\n", why, rc, rc < 0 ? ": " : "",
          rc < 0 ? tkv_engine_errmsg(F.eng) : "");
    if (rc > 0) {
        FUZZ_CHECK(!poisoned, "%s: a batch poisoned by a failed MPUT went to the writer", why);
        model_commit_start();
        g_in_flight = true;
        g_flight_faults = faults;
        g_flight_log_syncs = log_syncs;
        return 0;
    }
    if (rc == 0) {
        FUZZ_CHECK(!pending, "%s: commit_start left staged writes alone", why);
        return 0;
    }
    FUZZ_CHECK(poisoned || failing || F.faults != faults,
               "%s: commit_start failed without a fault: %s", why, tkv_engine_errmsg(F.eng));
    model_rollback();
    F.poisoned = false;
    return -1;
}

/* Commits everything like tkv_engine_commit() (then holds the memory
 * budget, as the server's loop does), following each step in the model. */
static int do_commit(const char *why)
{
    int rc = finish_flight(why);
    if (start_flight(why) < 0)
        rc = -1;
    if (finish_flight(why) < 0)
        rc = -1;
    FUZZ_CHECK(!tkv_engine_pending(F.eng), "writes pending after a commit");
    g_since_commit = 0;
    check_counters(rc == 0 ? "after a commit" : "after a failed commit");
    tkv_engine_maintain(F.eng);
    check_counters("after maintain");
    return rc;
}

/* Closes the engine and opens it again on the same directory, as a tkvd
 * restart would: only what LevelDB holds survives. */
static void reopen(size_t budget, tkv_sync_mode fsync, const char *why)
{
    TRACE("%s: reopen with a budget of %zu bytes, fsync mode %d\n", why, budget, fsync);
    do_commit(why);
    engine_close();
    engine_open(budget, fsync);
    if (model_in_limbo())
        TRACE("%s: the batch whose sync failed is back\n", why);
    model_resurrect();
    check_counters(why);
}

/* ---- one request -------------------------------------------------------- */

static bool known_status(uint64_t st)
{
    switch (st) {
    case TKV_ST_OK:
    case TKV_ST_NOT_FOUND:
    case TKV_ST_BAD_REQUEST:
    case TKV_ST_UNKNOWN_COMMAND:
    case TKV_ST_TOO_LARGE:
    case TKV_ST_OUT_OF_RANGE:
    case TKV_ST_STORAGE:
    case TKV_ST_BUSY:
    case TKV_ST_AUTH_REQUIRED:
    case TKV_ST_AUTH_FAILED:
    case TKV_ST_INTERNAL: return true;
    default: return false;
    }
}

/* Decodes the reply in g_out as an answer to cmd with protocol/reply.c;
 * returns a heap copy of its payload, which r->rep points into. */
static uint8_t *reply_head(reply *r, int rc, tkv_cmd cmd)
{
    FUZZ_CHECK(rc >= 0, "dispatch failed (%d) without running out of memory", rc);
    FUZZ_CHECK(g_out.len >= 4 && fz_be32(g_out.data) == g_out.len - 4,
               "reply is not exactly one frame (%zu bytes, header %u)", g_out.len,
               g_out.len >= 4 ? fz_be32(g_out.data) : 0);
    r->plen = g_out.len - 4;
    uint8_t *p = fz_dup(g_out.data + 4, r->plen);
    FUZZ_CHECK(tkv_rep_decode(cmd, p, r->plen, &r->rep) == 0, "reply to %s does not decode: %s",
               tkv_cmd_name(cmd), r->rep.what);
    r->st = r->rep.status;
    FUZZ_CHECK(known_status(r->st), "reply status %llu unknown", ull(r->st));
    FUZZ_CHECK((uint64_t)rc == r->st, "dispatch returned %d for a reply with status %llu", rc,
               ull(r->st));
    if (r->st >= 10) {
        tkv_mp m;
        uint32_t n;
        tkv_mp_obj o;
        tkv_mp_init(&m, p, r->plen);
        FUZZ_CHECK(tkv_mp_read_array(&m, &n) == 0 && n == 2 && tkv_mp_skip(&m) == 0 &&
                       tkv_mp_next(&m, &o) == 0 && o.type == TKV_MP_STR,
                   "error reply is not [status, str]");
    }
    return p;
}

/* A success has exactly the fields the reply table lists, and re-encodes
 * to the same bytes: tkvd wrote it with the table's encoders. */
static void check_shape(const reply *r, tkv_cmd cmd, const uint8_t *p)
{
    const tkv_reply_desc *d = &tkv_reply_descs[cmd];
    const tkv_rshape *s = r->st == TKV_ST_OK ? &d->ok : &d->miss;
    FUZZ_CHECK(r->rep.nfields == s->n, "%s reply has %u fields, the table %u", tkv_cmd_name(cmd),
               r->rep.nfields, s->n);
    tkv_buf b = {0};
    FUZZ_CHECK(tkv_rep_encode(&b, &r->rep) == 0, "re-encoding a %s reply failed",
               tkv_cmd_name(cmd));
    FUZZ_CHECK(b.len == r->plen + 4 && memcmp(b.data + 4, p, r->plen) == 0,
               "%s reply (%zu bytes) does not re-encode to itself (%zu bytes)", tkv_cmd_name(cmd),
               r->plen, b.len - 4);
    tkv_buf_deinit(&b);
}

static void trace_request(tkv_status pst, const tkv_req *req, const reply *r)
{
    if (!g_trace)
        return;
    TRACE("%s", pst == TKV_ST_OK ? tkv_cmd_name(req->cmd) : "(refused)");
    if (pst == TKV_ST_OK && req->key.len)
        fprintf(stderr, " key %u bytes %02x..", req->key.len, req->key.ptr[0]);
    if (pst == TKV_ST_OK && req->has_ts)
        fprintf(stderr, " ts %llu", ull(req->ts));
    if (pst == TKV_ST_OK && req->cmd == TKV_CMD_RANGE)
        fprintf(stderr, " [%llu, %llu]", ull(req->from), ull(req->to));
    tkv_engine_stats s;
    tkv_engine_stats_get(F.eng, &s);
    fprintf(stderr, " -> status %llu, %zu reply bytes%s [engine: %llu keys, %llu versions]\n",
            ull(r->st), r->plen, r->dirty ? ", dirty" : "", ull(s.keys), ull(s.versions));
}

/* Whether a read's answer depends on the key's uncommitted writes. */
static bool read_depends(const tkv_req *req)
{
    if (req->cmd != TKV_CMD_GET && req->cmd != TKV_CMD_RANGE && req->cmd != TKV_CMD_COUNT)
        return false;
    const mkey *k = model_find(req->key.ptr, req->key.len, false);
    if (!k || !k->dirty)
        return false;
    return req->cmd == TKV_CMD_GET ||
           (req->from <= req->to && (req->cmd == TKV_CMD_COUNT || req->limit > 0));
}

/* Runs one request frame and checks everything about its reply. intent is
 * NULL for frames the grammar did not build (or mutated). */
/* Attempts a request makes before it runs in blocking mode (tkvd's conn.c). */
#define MAX_ATTEMPTS 4

static tkv_eng_load *g_load; /* the load the request waits for */

static void arm_fault(uint8_t b);

static int dispatch_once(const uint8_t *q, size_t len, bool *dirty, unsigned attempt)
{
    tkv_session *sess = F.use_sess ? &F.sess : NULL;
    if (!g_nonblock || attempt >= MAX_ATTEMPTS)
        return tkv_dispatch_session(&F.d, sess, q, len, &g_out, dirty);
    return tkv_dispatch_try(&F.d, sess, q, len, &g_out, dirty, attempt, &g_load);
}

/* Runs the load (as a reader thread would), lets the input change the store
 * before it is installed, and installs it. Returns the install's result. */
static int wait_for_load(void)
{
    tkv_engine_load_run(F.eng, g_load);
    uint8_t b = fz_empty(g_fz) ? 0 : fz_u8(g_fz);
    switch (b & 7) {
    case 1: do_commit("a commit while a load waits"); break;
    case 2: start_flight("a batch handed over while a load waits"); break;
    case 3:
        finish_flight("a batch collected while a load waits");
        check_counters("after COMMIT_FINISH");
        break;
    case 4:
        TRACE("MAINTAIN while a load waits\n");
        tkv_engine_maintain(F.eng);
        break;
    case 5:
        arm_fault(b >> 3);
        do_commit("a commit with a fault while a load waits");
        break;
    default: break;
    }
    int rc = tkv_engine_load_install(F.eng, g_load);
    g_load = NULL;
    g_loads++;
    g_stale += rc == 0;
    TRACE("load installed: %d\n", rc);
    return rc;
}

static void run_frame(const uint8_t *frame, size_t len, const gen *intent)
{
    uint8_t *q = fz_dup(frame, len);
    tkv_req req;
    char err[160];
    tkv_status pst = tkv_req_parse(q, len, &F.d.lim, &req, err, sizeof err);
    if (intent) {
        FUZZ_CHECK(pst == intent->st, "%s request built to get status %d parses to %d (%s)",
                   tkv_cmd_name(intent->req.cmd), intent->st, pst, err);
        FUZZ_CHECK(pst != TKV_ST_OK || (req_eq(&req, &intent->req) &&
                                        ((req.cmd != TKV_CMD_MPUT && req.cmd != TKV_CMD_MGET) ||
                                         gen_items_eq(&req, intent))),
                   "%s request parses to different fields", tkv_cmd_name(req.cmd));
    }
    if (pst == TKV_ST_OK) {
        check_roundtrip(&req, &F.d.lim);
        if (uncertain(&req)) {
            TRACE("%s skipped: its answer depends on what the sweep removed\n",
                  tkv_cmd_name(req.cmd));
            free(q);
            return;
        }
    }
    bool trusted = !F.d.auth || !F.use_sess || F.sess.authed;
    bool failing, depends;
    uint64_t errors0, fails0, calls0;
    reply r = {0};
    int rc;
    /* What a check needs is taken before each attempt: what runs between a
     * load and its install may commit, or fail a commit. */
    for (unsigned attempt = 0;; attempt++) {
        failing = tkv_engine_failing(F.eng);
        depends = pst == TKV_ST_OK && trusted && read_depends(&req);
        errors0 = F.d.errors;
        fails0 = F.d.auth_failures;
        calls0 = pst == TKV_ST_OK ? F.d.calls[req.cmd] : 0;
        tkv_buf_reset(&g_out);
        rc = dispatch_once(q, len, &r.dirty, attempt);
        if (rc != TKV_DISPATCH_WAIT)
            break;
        FUZZ_CHECK(g_out.len == 0 && F.d.errors == errors0 &&
                       (pst != TKV_ST_OK || F.d.calls[req.cmd] == calls0),
                   "%s waiting for a load changed the reply or the counters",
                   tkv_cmd_name(req.cmd));
        /* The attempt may have recovered the store first (a failing
         * engine retries at its next operation): a batch in limbo is back. */
        settle_limbo("a request waiting for a load");
        check_counters("a request waiting for a load");
        if (wait_for_load() < 0)
            attempt = MAX_ATTEMPTS - 1; /* too large for memory: inline next */
    }
    settle_limbo(pst == TKV_ST_OK ? tkv_cmd_name(req.cmd) : "a refused request");
    uint8_t *p = reply_head(&r, rc, pst == TKV_ST_OK ? req.cmd : TKV_CMD_PING);
    trace_request(pst, &req, &r);
    FUZZ_CHECK(F.d.errors - errors0 == (r.st >= 10), "error counter moved by %llu for status %llu",
               ull(F.d.errors - errors0), ull(r.st));
    if (pst != TKV_ST_OK) {
        FUZZ_CHECK(r.st == pst, "parser says %d, the reply %llu", pst, ull(r.st));
    } else if (!trusted && req.cmd != TKV_CMD_AUTH && req.cmd != TKV_CMD_PING) {
        FUZZ_CHECK(r.st == TKV_ST_AUTH_REQUIRED, "%s before AUTH: status %llu",
                   tkv_cmd_name(req.cmd), ull(r.st));
    } else if (r.st == TKV_ST_STORAGE) {
        /* Legitimate only while the store is down after a fault. */
        FUZZ_CHECK(failing && F.faults, "%s: STORAGE error without a fault", tkv_cmd_name(req.cmd));
    } else {
        FUZZ_CHECK(F.d.calls[req.cmd] == calls0 + 1, "calls[%s] not counted",
                   tkv_cmd_name(req.cmd));
        expect_reply(&req, &r, fails0);
        FUZZ_CHECK(!depends || r.dirty, "%s of a key with uncommitted writes not reported dirty",
                   tkv_cmd_name(req.cmd));
        if (r.st < 10)
            check_shape(&r, req.cmd, p);
    }
    check_counters(pst == TKV_ST_OK ? tkv_cmd_name(req.cmd) : "a refused request");
    free(p);
    free(q);
}

/* ---- the sweep -------------------------------------------------------------- */

static bool probe_entry(void *ctx, const tkv_entry_view *v)
{
    tkv_buf *b = ctx;
    uint8_t tomb = v->value == NULL;
    tkv_buf_append(b, &v->ts, sizeof v->ts);
    tkv_buf_append(b, &v->expires, sizeof v->expires);
    tkv_buf_append(b, &tomb, 1);
    tkv_buf_append(b, &v->len, sizeof v->len);
    if (v->len)
        tkv_buf_append(b, v->value, v->len);
    return true;
}

/* What reads can see of one key: its visible versions, and its policy and
 * horizon. Returns false if the store could not be read (after a fault). */
static bool probe_key(const mkey *k, tkv_buf *vers, tkv_eng_policy_info *pi)
{
    bool dirty;
    tkv_buf_reset(vers);
    return tkv_engine_range(F.eng, k->key, k->klen, 0, TKV_ENG_TS_MAX, UINT64_MAX, false,
                            probe_entry, vers, &dirty) == TKV_E_OK &&
           tkv_engine_policy(F.eng, k->key, k->klen, pi) == TKV_E_OK;
}

typedef struct probe {
    tkv_buf *vers;           /* per key */
    tkv_eng_policy_info *pi; /* per key */
    size_t n;
} probe;

static void probe_free(probe *p)
{
    for (size_t i = 0; i < p->n; i++)
        tkv_buf_deinit(&p->vers[i]);
    free(p->vers);
    free(p->pi);
    memset(p, 0, sizeof *p);
}

/* Every key of the input; false if the store could not be read. */
static bool probe_all(probe *p)
{
    p->n = model_nkeys();
    p->vers = calloc(p->n ? p->n : 1, sizeof *p->vers);
    p->pi = calloc(p->n ? p->n : 1, sizeof *p->pi);
    if (!p->vers || !p->pi)
        abort();
    for (size_t i = 0; i < p->n; i++)
        if (!probe_key(model_key(i), &p->vers[i], &p->pi[i]))
            return false;
    return true;
}

/* Prints a probe's versions (TKV_FUZZ_TRACE=1), to see what a sweep changed. */
static void trace_versions(const char *what, size_t key, const tkv_buf *b)
{
    if (!g_trace)
        return;
    TRACE("%s, key %zu:", what, key);
    size_t i = 0;
    while (i + 21 <= b->len) {
        uint64_t ts, x;
        uint32_t len;
        memcpy(&ts, b->data + i, 8);
        memcpy(&x, b->data + i + 8, 8);
        memcpy(&len, b->data + i + 17, 4);
        if (i + 21 + len > b->len)
            break;
        fprintf(stderr, " %llu%s%s", ull(ts), b->data[i + 16] ? "(tomb)" : "",
                x ? "(expires)" : "");
        i += 21 + len;
    }
    fprintf(stderr, " [%zu bytes]\n", b->len);
}

/* The suffix of a probe's version list at or after ts. */
static size_t suffix_at(const tkv_buf *b, uint64_t ts)
{
    size_t i = 0;
    while (i + 21 <= b->len) {
        uint64_t t;
        uint32_t len;
        memcpy(&t, b->data + i, 8);
        memcpy(&len, b->data + i + 17, 4);
        if (t >= ts)
            break;
        i += 21 + len;
    }
    return i;
}

/* After a committed sweep step: each key reads as before, except that a
 * key under a retention policy may have its horizon moved to exactly where
 * the policy puts it (then the versions below it are gone). The model
 * follows the moved horizons. */
static void check_swept(const probe *before, const char *when)
{
    probe after = {0};
    bool ok = probe_all(&after);
    for (size_t i = 0; ok && i < before->n; i++) {
        mkey *k = model_key(i);
        const tkv_eng_policy_info *b = &before->pi[i], *a = &after.pi[i];
        FUZZ_CHECK(a->own == b->own && a->policy.versions == b->policy.versions &&
                       a->policy.age_us == b->policy.age_us,
                   "the sweep changed key %zu's policy (%s)%s", i, when, AFTER_FAULT);
        size_t from = 0;
        if (a->horizon != b->horizon) {
            uint64_t want = model_policy_horizon(k, &b->policy, F.clock);
            FUZZ_CHECK(a->horizon == want && want > b->horizon,
                       "the sweep moved key %zu's horizon from %llu to %llu; its policy "
                       "(%u versions, age %llu) puts it at %llu (%s)%s",
                       i, ull(b->horizon), ull(a->horizon), b->policy.versions,
                       ull(b->policy.age_us), ull(want), when, AFTER_FAULT);
            from = suffix_at(&before->vers[i], a->horizon);
            k->cur.h.horizon = k->fl.h.horizon = k->com.h.horizon = a->horizon;
            TRACE("the sweep moved key %zu's horizon to %llu\n", i, ull(a->horizon));
        }
        const tkv_buf *bv = &before->vers[i], *av = &after.vers[i];
        bool same =
            av->len == bv->len - from && (!av->len || !memcmp(av->data, bv->data + from, av->len));
        if (!same) {
            trace_versions("before the sweep", i, bv);
            trace_versions("after the sweep", i, av);
        }
        FUZZ_CHECK(same, "the sweep changed what reads see of key %zu (%s)%s", i, when,
                   AFTER_FAULT);
    }
    probe_free(&after);
}

/* After a sweep with no probe to compare with: a horizon that moved is
 * where the key's policy puts it by the model, which then follows it. */
static void follow_horizons(const char *when)
{
    probe after = {0};
    bool ok = probe_all(&after);
    for (size_t i = 0; ok && i < after.n; i++) {
        mkey *k = model_key(i);
        const tkv_eng_policy_info *a = &after.pi[i];
        if (a->horizon == k->cur.h.horizon)
            continue;
        uint64_t want = model_policy_horizon(k, &a->policy, F.clock);
        FUZZ_CHECK(a->horizon == want && want > k->cur.h.horizon,
                   "the sweep moved key %zu's horizon from %llu to %llu; its policy "
                   "(%u versions, age %llu) puts it at %llu (%s)%s",
                   i, ull(k->cur.h.horizon), ull(a->horizon), a->policy.versions,
                   ull(a->policy.age_us), ull(want), when, AFTER_FAULT);
        k->cur.h.horizon = k->fl.h.horizon = k->com.h.horizon = a->horizon;
        TRACE("the sweep moved key %zu's horizon to %llu\n", i, ull(a->horizon));
    }
    probe_free(&after);
}

/* Nothing about any key changed (a sweep that did not run, or rolled back). */
static void check_unchanged(const probe *before, const char *when)
{
    probe after = {0};
    bool ok = probe_all(&after);
    for (size_t i = 0; ok && i < before->n; i++) {
        const tkv_eng_policy_info *b = &before->pi[i], *a = &after.pi[i];
        const tkv_buf *bv = &before->vers[i], *av = &after.vers[i];
        bool same = av->len == bv->len && (!av->len || !memcmp(av->data, bv->data, av->len));
        if (!same) {
            trace_versions("before", i, bv);
            trace_versions("after", i, av);
        }
        FUZZ_CHECK(same && a->horizon == b->horizon && a->own == b->own &&
                       a->policy.versions == b->policy.versions &&
                       a->policy.age_us == b->policy.age_us,
                   "key %zu reads differently after a sweep that %s%s", i, when, AFTER_FAULT);
    }
    probe_free(&after);
}

/* SWEEP: a step with a small budget, or (after a commit) whole passes.
 * With writes pending (bit 0 clear, some staged or in flight) a step must
 * do nothing at all. */
static void run_sweep(uint8_t b)
{
    static const uint32_t budgets[4] = {1, 2, 5, 20};
    if (g_fail_syncs > 0 && !g_fail_writes) {
        /* A failed sync under the step's own commit would leave it in limbo
         * with horizons the model cannot know. */
        TRACE("SWEEP skipped (a sync fault is armed)\n");
        return;
    }
    if (b & 1)
        do_commit("before a full sweep");
    bool pending = tkv_engine_pending(F.eng);
    tkv_engine_stats s0, s1;
    tkv_engine_stats_get(F.eng, &s0);
    probe before = {0};
    if (!probe_all(&before)) {
        probe_free(&before);
        return;
    }
    int calls = 0;
    bool done = false;
    if (b & 1) {
        while (!done && calls++ < 100)
            done = tkv_engine_sweep(F.eng, 1000);
        g_midpass = !done;
    } else {
        done = tkv_engine_sweep(F.eng, budgets[(b >> 1) & 3]);
        g_midpass = !done;
    }
    tkv_engine_stats_get(F.eng, &s1);
    TRACE("SWEEP %s: %d calls, pass %s, %llu expired and %llu retained versions swept so far\n",
          b & 1 ? "full" : "step", calls ? calls : 1, done ? "complete" : "in progress",
          ull(s1.swept_expired), ull(s1.swept_retained));
    if (s1.reopens != s0.reopens) {
        /* It recovered the store first (memory reloaded, a batch in limbo
         * back), then swept what it found: the probe from before is no
         * baseline, the model - with the batch back - is. */
        settle_limbo("sweep");
        probe_free(&before);
        follow_horizons("a sweep that recovered the store");
        F.swept = true;
        for (size_t i = 0; i < model_nkeys(); i++)
            model_key(i)->cur.unsure = model_key(i)->fl.unsure = model_key(i)->com.unsure = true;
        check_counters("after a sweep that recovered the store");
        return;
    }
    if (pending) {
        FUZZ_CHECK(tkv_engine_pending(F.eng) && s1.commits == s0.commits &&
                       s1.swept_expired == s0.swept_expired &&
                       s1.swept_retained == s0.swept_retained && s1.sweeps == s0.sweeps,
                   "a sweep ran while writes were pending");
        check_unchanged(&before, "did not run (writes pending)");
        probe_free(&before);
        return;
    }
    FUZZ_CHECK(!tkv_engine_pending(F.eng), "a sweep left writes pending");
    F.swept = true;
    if (s1.commit_errors != s0.commit_errors) {
        FUZZ_CHECK(F.faults, "a sweep's commit failed without a fault");
        check_unchanged(&before, "failed to commit");
    } else {
        check_swept(&before, done ? "a complete pass" : "a step");
    }
    for (size_t i = 0; i < model_nkeys(); i++)
        model_key(i)->cur.unsure = model_key(i)->fl.unsure = model_key(i)->com.unsure = true;
    probe_free(&before);
    check_counters("after a sweep");
}

/* ---- driving an input ------------------------------------------------- */

/* Limits as tkvd allows them: keys and values fit a reply with 64 bytes
 * to spare. Small replies make RANGE and SCAN stop early. */
static const struct {
    size_t max_reply;
    uint32_t max_key, max_value;
} configs[4] = {
    {TKV_DEFAULT_MAX_FRAME, TKV_DEFAULT_MAX_KEY, GEN_MAX_VALUE},
    {4096, TKV_DEFAULT_MAX_KEY, 4096 - 64},
    {1200, 64, 1200 - 64},
    {256, 16, 256 - 64},
};
/* The clock stops short of UINT64_MAX: an expiry that saturates there
 * doubles as min_expiry's "none", so at now == UINT64_MAX whether such a
 * version reads as expired depends on its key's other versions (a quirk no
 * real clock reaches). */
#define CLOCK_MAX (UINT64_MAX - 1)
static const uint64_t clocks[8] = {
    0, 5, 100, 1000, 1u << 16, UINT64_C(1795313217177998), UINT64_MAX - 2, CLOCK_MAX,
};
static const uint64_t steps[4] = {1, 7, 100, 1000};
static const size_t budgets[4] = {DEFAULT_BUDGET, 0, 4096, 1u << 20};

static void after_request(void)
{
    if (++g_since_commit >= AUTO_COMMIT)
        do_commit("automatic commit");
}

static void run_raw(fz *f)
{
    g_fz = f;
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

static void arm_fault(uint8_t b)
{
    if (g_no_faults)
        return;
    /* 0: a sync fails after the write; 1: a log write fails before
     * anything reaches the file; 2: two syncs (the recovery probe's too);
     * 3: a write, then a sync; 4, 5: a write, then - the probe passing - the
     * syncs of LevelDB's reopen, so the store stays closed; 6, 7: a write. */
    switch (b & 7) {
    case 0: g_fail_syncs = 1; break;
    case 2: g_fail_syncs = 2; break;
    case 3: g_fail_writes = g_fail_syncs = 1; break;
    case 4:
    case 5:
        g_fail_writes = 1;
        g_skip_syncs = 1;
        g_fail_syncs = (b & 8) ? 3 : 1;
        break;
    default: g_fail_writes = 1; break;
    }
    TRACE("FAULT: the next %d syncs (after %d) and %d log writes fail\n", g_fail_syncs,
          g_skip_syncs, g_fail_writes);
}

/* The operations that are not requests; op is 20..31. */
static void run_op(fz *f, wbuf *w, unsigned op)
{
    uint8_t b;
    switch (op) {
    case 20: do_commit("COMMIT"); break;
    case 21:
        b = fz_u8(f);
        F.clock = clocks[b & 7] > F.clock ? clocks[b & 7] : F.clock;
        TRACE("SETCLOCK %llu\n", ull(F.clock));
        break;
    case 22:
        b = fz_u8(f);
        F.clock = steps[b & 3] > CLOCK_MAX - F.clock ? CLOCK_MAX : F.clock + steps[b & 3];
        TRACE("CLOCK+ -> %llu\n", ull(F.clock));
        break;
    case 23: run_sweep(fz_u8(f)); break;
    case 24: {
        static const tkv_sync_mode modes[4] = {TKV_SYNC_ALWAYS, TKV_SYNC_EVERYSEC, TKV_SYNC_NEVER,
                                               TKV_SYNC_ALWAYS};
        b = fz_u8(f);
        reopen(budgets[b & 3], modes[(b >> 2) & 3], "REOPEN");
        break;
    }
    case 25: {
        const uint8_t *p;
        size_t n = fz_bytes(f, fz_u8(f), &p);
        run_frame(p, n, NULL);
        after_request();
        break;
    }
    case 26:
    case 27:
        run_mutated(f, w);
        after_request();
        break;
    case 28: arm_fault(fz_u8(f)); break;
    case 29: /* past the recovery probe interval */
        g_mono_skew_s += 1;
        TRACE("ADVANCE: CLOCK_MONOTONIC +%llds\n", (long long)g_mono_skew_s);
        break;
    case 30:
        TRACE("TICK\n");
        tkv_engine_tick(F.eng);
        settle_limbo("tick");
        check_counters("tick");
        break;
    default:
        /* The server's two commit halves, apart: reads and writes go on
         * while a batch is in flight. */
        b = fz_u8(f);
        if ((b & 3) == 1) {
            start_flight("COMMIT_START");
        } else if ((b & 3) == 2) {
            finish_flight("COMMIT_FINISH");
            check_counters("after COMMIT_FINISH");
        } else {
            bool failing = tkv_engine_failing(F.eng);
            unsigned faults = F.faults;
            int rc = tkv_engine_sync(F.eng);
            TRACE("SYNC -> %d\n", rc);
            FUZZ_CHECK(rc == 0 || failing || F.faults != faults, "sync failed without a fault: %s",
                       tkv_engine_errmsg(F.eng));
        }
        break;
    }
}

static void run_structured(fz *f)
{
    g_fz = f;
    wbuf w = {0};
    for (int i = 0; i < MAX_OPS && !fz_empty(f); i++) {
        unsigned op = fz_u8(f) % 32;
        if (op < GEN_NCMDS) {
            gen g;
            gen_request(f, &g, &w, gen_cmds[op]);
            run_frame(w.p, w.n, &g);
            after_request();
        } else {
            run_op(f, &w, op);
        }
    }
    wbuf_free(&w);
}

/* Deletes everything the input wrote so the next input starts empty, and
 * leaves a freshly opened engine behind. */
static void finish_input(void)
{
    g_skip_syncs = g_fail_syncs = g_fail_writes = 0;
    if (F.faults || tkv_engine_failing(F.eng))
        reopen(DEFAULT_BUDGET, TKV_SYNC_ALWAYS, "restart after a storage fault");
    do_commit("last commit"); /* a poisoned batch fails here, not the cleanup */
    for (size_t i = 0; i < model_nkeys(); i++) {
        mkey *k = model_key(i);
        uint64_t removed;
        bool dirty;
        /* DEL counts what a reader could see */
        uint64_t nvis = mhist_visible_count(&k->cur.h, F.clock);
        tkv_eng_rc st = tkv_engine_del(F.eng, k->key, k->klen, &removed, &dirty);
        FUZZ_CHECK(st == TKV_E_OK && removed == nvis,
                   "cleanup DEL: status %d, removed %llu versions, the model has %llu visible "
                   "(%zu stored)%s",
                   st, ull(removed), ull(nvis), k->cur.h.n, AFTER_FAULT);
        model_del(k, removed);
    }
    do_commit("cleanup commit");
    tkv_engine_stats s;
    tkv_engine_stats_get(F.eng, &s);
    FUZZ_CHECK(s.keys == 0 && s.versions == 0,
               "after deleting every key the engine still counts %llu keys / %llu versions",
               ull(s.keys), ull(s.versions));
    FUZZ_CHECK(!tkv_engine_pending(F.eng) && !tkv_engine_failing(F.eng),
               "the engine is not idle after the cleanup commit");
    model_free();
    ++g_inputs;
    /* The engine stays open for the next input when it holds nothing an
     * input could tell from a freshly opened one (the checks above) and
     * carries no state tied to this input: the default options, no sweep
     * pass under way (a step remembers its clock, and the next input's
     * clock starts again at 100). Opening LevelDB costs more than most
     * inputs. What remains - known-empty keys in the index, LevelDB's
     * tombstones, counters - is state any long-running tkvd has; a fresh
     * engine every REOPEN_INPUTS inputs bounds how far back a finding can
     * depend on, and TKV_FUZZ_FRESH=1 opens one for every input (to tell
     * whether a finding needs the inputs before it). */
    bool recycle = g_inputs % RECYCLE_INPUTS == 0;
    if (!recycle && !g_fresh && g_inputs % REOPEN_INPUTS != 0 && g_budget == DEFAULT_BUDGET &&
        g_fsync == TKV_SYNC_ALWAYS && !g_midpass)
        return;
    engine_close();
    /* Wrong counters persist: start the next input in a new directory. */
    if (recycle) {
        remove_dir();
        new_dir();
    }
    engine_open(DEFAULT_BUDGET, TKV_SYNC_ALWAYS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    fz f = {data, size};
    uint8_t mode = fz_u8(&f);
    F.d.max_reply = configs[mode & 3].max_reply;
    F.d.lim = (tkv_limits){.max_key = configs[mode & 3].max_key,
                           .max_value = configs[mode & 3].max_value,
                           .max_batch = GEN_MAX_BATCH};
    gen_set_limits(&F.d.lim);
    F.d.auth = mode & 4 ? &g_auth : NULL;
    F.use_sess = mode & 8;
    g_nonblock = mode & 16;
    memset(&F.sess, 0, sizeof F.sess);
    F.clock = 100;
    F.faults = 0;
    F.poisoned = F.swept = false;
    g_skip_syncs = g_fail_syncs = g_fail_writes = 0;
    g_mono_skew_s = 0;
    g_in_flight = false; /* finish_input() collected every batch */
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &g_mono_base);
    g_mono_frozen = true;
    g_since_commit = 0;
    gen_reset();
    if (mode & 0x80)
        run_raw(&f);
    else
        run_structured(&f);
    finish_input();
    g_mono_frozen = false;
    return 0;
}
