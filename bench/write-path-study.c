/*
 * write-path-study - measures, outside the server, what it costs LevelDB to
 * take tkv's writes in two shapes, before the write path is rebuilt
 * (issue "The reactor never waits for the disk", part 3):
 *
 *   per-version  what tkvd does today: every batch of PUTs is one LevelDB
 *                write with one record per version (tkv's key encoding,
 *                a 33-byte blob: flag byte + 32-byte value).
 *   log+chunks   the proposed shape: every batch is appended to an own log
 *                file (one write(), as a group commit would); versions
 *                collect in memory, and every FLUSH bytes they go to
 *                LevelDB as chunk records - per key, up to CHUNK versions
 *                in one record, timestamps delta-encoded - in large
 *                writes, after which the log is truncated.
 *
 * Both take the same versions in the same order: uniform random keys of a
 * history shape (KEYS x VERSIONS), timestamps rising per key, batches of
 * BATCH versions (50 connections x 16 in flight make batches of about
 * 800). It reports wall time and the CPU time of the whole process - the
 * writer and LevelDB's compaction thread both - per version, from the
 * first write until the database is closed (closing waits for the
 * compaction under way), plus the bytes LevelDB wrote (its "stats"
 * property). No fsync in either (tkvd --fsync never against Redis
 * appendfsync no is the comparison the targets use).
 *
 *   write-path-study [--shape KEYSxVERSIONS] [--batch N] [--chunk N]
 *                    [--flush BYTES] [--write-buffer BYTES]
 *                    [--max-file-size BYTES] [--dir DIR] [--strategy NAME]
 *
 * --write-buffer and --max-file-size set LevelDB's options of those names
 * (the cheapest alternative to a new write path: a bigger memtable and
 * bigger tables mean fewer, larger compactions).
 */
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "keycodec.h"
#include "varint.h"

#define VALUE_LEN 32
#define BLOB_LEN (1 + VALUE_LEN)
#define KEY_LEN 16

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "write-path-study: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* "key:" and 12 digits: KEY_LEN bytes (and a NUL at out[KEY_LEN]). */
static void key_of(uint64_t i, uint8_t *out)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "key:%012llu", (unsigned long long)(i % 1000000000000ull));
    memcpy(out, tmp, KEY_LEN + 1);
}

typedef struct opts {
    uint64_t keys, versions; /* per key */
    uint32_t batch, chunk;
    size_t flush;
    size_t write_buffer, max_file; /* LevelDB's; 0: its defaults (4 MB, 2 MB) */
    const char *dir;
} opts;

typedef struct result {
    double wall, cpu;
    uint64_t records;
    double written_mb; /* LevelDB's compaction writes */
    uint64_t log_bytes;
} result;

static leveldb_t *open_db(const char *path, const opts *op, leveldb_options_t **o)
{
    char *err = NULL;
    leveldb_options_t *plain = leveldb_options_create();
    leveldb_destroy_db(plain, path, &err); /* a run before this one's */
    leveldb_options_destroy(plain);
    free(err);
    err = NULL;
    *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(*o, 1);
    leveldb_options_set_compression(*o, leveldb_snappy_compression);
    leveldb_options_set_filter_policy(*o, leveldb_filterpolicy_create_bloom(10));
    if (op->write_buffer)
        leveldb_options_set_write_buffer_size(*o, op->write_buffer);
    if (op->max_file)
        leveldb_options_set_max_file_size(*o, op->max_file);
    leveldb_t *db = leveldb_open(*o, path, &err);
    if (!db)
        die("leveldb_open", err);
    return db;
}

/* The megabytes LevelDB's compactions wrote, summed from its stats table. */
static double compaction_mb(leveldb_t *db)
{
    char *s = leveldb_property_value(db, "leveldb.stats");
    double total = 0;
    if (!s)
        return 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        int level;
        double files, size, t, rd, wr;
        if (sscanf(line, " %d %lf %lf %lf %lf %lf", &level, &files, &size, &t, &rd, &wr) == 6)
            total += wr;
    }
    leveldb_free(s);
    return total;
}

/* Writes b (dying on an error) and empties it for the next batch. */
static void write_batch(leveldb_t *db, leveldb_writeoptions_t *wo, leveldb_writebatch_t *b)
{
    char *err = NULL;
    leveldb_write(db, wo, b, &err);
    if (err)
        die("leveldb_write", err);
    leveldb_writebatch_clear(b);
}

/* Closes the database - which waits for the compaction under way - and
 * takes the figures of a run that started at wall time w0, CPU time c0. */
static void finish(leveldb_t *db, result *r, double w0, double c0)
{
    r->written_mb = compaction_mb(db);
    leveldb_close(db);
    r->wall = now_s() - w0;
    r->cpu = cpu_s() - c0;
}

/* The order versions arrive in: a uniform random key, its next timestamp. */
typedef struct gen {
    uint64_t *next_ts; /* per key */
    uint64_t left;
    const opts *o;
} gen;

static void gen_init(gen *g, const opts *o)
{
    rng_state = 0x9e3779b97f4a7c15ull;
    g->o = o;
    g->left = o->keys * o->versions;
    g->next_ts = calloc(o->keys, sizeof *g->next_ts);
    if (!g->next_ts)
        die("out of memory", NULL);
}

/* Picks a key that still has versions to take (uniform among keys, then
 * the next one up when that key is full: the tail evens out). */
static bool gen_next(gen *g, uint64_t *key, uint64_t *ts)
{
    if (g->left == 0)
        return false;
    uint64_t k = rng() % g->o->keys;
    while (g->next_ts[k] >= g->o->versions)
        k = (k + 1) % g->o->keys;
    *key = k;
    *ts = 1000000 + g->next_ts[k]++;
    g->left--;
    return true;
}

static void blob_of(uint64_t key, uint64_t ts, uint8_t *b)
{
    b[0] = 0; /* flags: a plain version, no expiry */
    for (int i = 0; i < VALUE_LEN; i++)
        b[1 + i] = (uint8_t)(key * 31 + ts * 7 + (uint64_t)i);
}

static result run_per_version(const opts *o)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/per-version", o->dir);
    leveldb_options_t *lo;
    leveldb_t *db = open_db(path, o, &lo);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    gen g;
    gen_init(&g, o);
    uint8_t k[KEY_LEN + 1], enc[64], blob[BLOB_LEN];
    result r = {0};
    double w0 = now_s(), c0 = cpu_s();
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    uint64_t key, ts;
    uint32_t in = 0;
    for (;;) {
        bool more = gen_next(&g, &key, &ts);
        if (more) {
            key_of(key, k);
            size_t n = tkv_kc_encode(enc, k, KEY_LEN, ts);
            blob_of(key, ts, blob);
            leveldb_writebatch_put(b, (const char *)enc, n, (const char *)blob, BLOB_LEN);
            in++;
            r.records++;
        }
        if (in == o->batch || (!more && in > 0)) {
            write_batch(db, wo, b);
            in = 0;
        }
        if (!more)
            break;
    }
    finish(db, &r, w0, c0);
    leveldb_writebatch_destroy(b);
    leveldb_writeoptions_destroy(wo);
    leveldb_options_destroy(lo);
    free(g.next_ts);
    return r;
}

/* log+chunks: the versions waiting for a flush, per key, in arrival order
 * (which is timestamp order per key). */
typedef struct pending {
    uint64_t *ts;
    uint32_t n, cap;
} pending;

/* Writes every pending version as chunk records, keys in order (LevelDB
 * takes sorted input best), in writes of about 1 MB. */
static void flush_chunks(leveldb_t *db, leveldb_writeoptions_t *wo, const opts *o, pending *p,
                         result *r)
{
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    size_t bytes = 0;
    uint8_t k[KEY_LEN + 1], enc[64];
    uint8_t *val = malloc((size_t)o->chunk * (10 + BLOB_LEN) + 16);
    if (!val)
        die("out of memory", NULL);
    for (uint64_t key = 0; key < o->keys; key++) {
        pending *q = &p[key];
        key_of(key, k);
        for (uint32_t at = 0; at < q->n; at += o->chunk) {
            uint32_t m = q->n - at < o->chunk ? q->n - at : o->chunk;
            /* Named by its oldest timestamp: in the ~T order of version
             * records, a floor lookup for T is one seek to (K, T), which
             * lands on the chunk that starts at or before T. */
            size_t kn = tkv_kc_encode(enc, k, KEY_LEN, q->ts[at]);
            size_t vn = tkv_varint_put(val, m);
            uint64_t prev = q->ts[at];
            vn += tkv_varint_put(val + vn, prev);
            for (uint32_t i = 1; i < m; i++) {
                vn += tkv_varint_put(val + vn, q->ts[at + i] - prev);
                prev = q->ts[at + i];
            }
            for (uint32_t i = 0; i < m; i++) {
                blob_of(key, q->ts[at + i], val + vn);
                vn += BLOB_LEN;
            }
            leveldb_writebatch_put(b, (const char *)enc, kn, (const char *)val, vn);
            r->records++;
            bytes += kn + vn;
            if (bytes >= (1u << 20)) {
                write_batch(db, wo, b);
                bytes = 0;
            }
        }
        q->n = 0;
    }
    write_batch(db, wo, b);
    leveldb_writebatch_destroy(b);
    free(val);
}

static result run_log_chunks(const opts *o)
{
    char path[4096], logpath[4200];
    snprintf(path, sizeof path, "%s/log-chunks", o->dir);
    snprintf(logpath, sizeof logpath, "%s/log-chunks.log", o->dir);
    leveldb_options_t *lo;
    leveldb_t *db = open_db(path, o, &lo);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0)
        die("open log", strerror(errno));
    pending *p = calloc(o->keys, sizeof *p);
    uint8_t *rec = malloc((size_t)o->batch * (KEY_LEN + 2 + 10 + BLOB_LEN));
    if (!p || !rec)
        die("out of memory", NULL);
    gen g;
    gen_init(&g, o);
    result r = {0};
    double w0 = now_s(), c0 = cpu_s();
    uint8_t blob[BLOB_LEN];
    size_t recn = 0, buffered = 0;
    uint32_t in = 0;
    uint64_t key, ts;
    for (;;) {
        bool more = gen_next(&g, &key, &ts);
        if (more) {
            /* The log record: key length, key, timestamp, blob. */
            rec[recn++] = KEY_LEN;
            key_of(key, rec + recn);
            recn += KEY_LEN;
            recn += tkv_varint_put(rec + recn, ts);
            blob_of(key, ts, blob);
            memcpy(rec + recn, blob, BLOB_LEN);
            recn += BLOB_LEN;
            pending *q = &p[key];
            if (q->n == q->cap) {
                q->cap = q->cap ? q->cap * 2 : 4;
                q->ts = realloc(q->ts, q->cap * sizeof *q->ts);
                if (!q->ts)
                    die("out of memory", NULL);
            }
            q->ts[q->n++] = ts;
            buffered += KEY_LEN + 8 + BLOB_LEN;
            in++;
        }
        if (in == o->batch || (!more && in > 0)) {
            if (write(fd, rec, recn) != (ssize_t)recn)
                die("write log", strerror(errno));
            r.log_bytes += recn;
            recn = 0;
            in = 0;
        }
        if (buffered >= o->flush || (!more && buffered > 0)) {
            flush_chunks(db, wo, o, p, &r);
            if (ftruncate(fd, 0) < 0)
                die("truncate log", strerror(errno));
            buffered = 0;
        }
        if (!more)
            break;
    }
    finish(db, &r, w0, c0);
    close(fd);
    for (uint64_t i = 0; i < o->keys; i++)
        free(p[i].ts);
    free(p);
    free(rec);
    leveldb_writeoptions_destroy(wo);
    leveldb_options_destroy(lo);
    free(g.next_ts);
    return r;
}

static void report(const char *name, const opts *o, const result *r)
{
    double n = (double)(o->keys * o->versions);
    printf("%-12s %7llux%-8llu %10.0f %8.2f %8.2f %10llu %9.1f %9.1f\n", name,
           (unsigned long long)o->keys, (unsigned long long)o->versions, n / r->wall,
           r->wall * 1e6 / n, r->cpu * 1e6 / n, (unsigned long long)r->records, r->written_mb,
           (double)r->log_bytes / 1e6);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    opts o = {.keys = 100000, .versions = 10, .batch = 800, .chunk = 64, .flush = 64u << 20};
    const char *strategy = "both";
    char tmpl[] = "/tmp/write-path-study.XXXXXX";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--shape") && v) {
            unsigned long long k, n;
            if (sscanf(v, "%llux%llu", &k, &n) != 2 || !k || !n)
                die("--shape wants KEYSxVERSIONS", v);
            o.keys = k;
            o.versions = n;
        } else if (!strcmp(a, "--batch") && v) {
            o.batch = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--chunk") && v) {
            o.chunk = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--flush") && v) {
            o.flush = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--write-buffer") && v) {
            o.write_buffer = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--max-file-size") && v) {
            o.max_file = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--dir") && v) {
            o.dir = v;
        } else if (!strcmp(a, "--strategy") && v) {
            strategy = v;
        } else {
            fprintf(stderr, "usage: write-path-study [--shape KEYSxVERSIONS] [--batch N] "
                            "[--chunk N] [--flush BYTES] [--write-buffer BYTES] "
                            "[--max-file-size BYTES] [--dir DIR] [--strategy "
                            "per-version|log+chunks|both]\n");
            return 2;
        }
        i++;
    }
    if (!o.batch || !o.chunk || !o.flush)
        die("--batch, --chunk and --flush must be positive", NULL);
    bool own_dir = !o.dir;
    if (own_dir && !(o.dir = mkdtemp(tmpl)))
        die("mkdtemp", strerror(errno));
    printf("%-12s %16s %10s %8s %8s %10s %9s %9s\n", "strategy", "shape", "versions/s", "wall us",
           "cpu us", "records", "compact MB", "log MB");
    if (!strcmp(strategy, "per-version") || !strcmp(strategy, "both")) {
        result r = run_per_version(&o);
        report("per-version", &o, &r);
    }
    if (!strcmp(strategy, "log+chunks") || !strcmp(strategy, "both")) {
        result r = run_log_chunks(&o);
        report("log+chunks", &o, &r);
    }
    if (own_dir) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", o.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "write-path-study: could not remove %s\n", o.dir);
    }
    return 0;
}
