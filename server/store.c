/*
 * store.c - implements store.h: tkv's own log and write buffer in front of
 * LevelDB, which holds versions as chunks; the only file that includes
 * <leveldb/c.h>.
 *
 * Why not hand every write to LevelDB: LevelDB's cost is per record (its
 * memtable, then compaction rewriting each record several times), and a
 * version is a small record. So a write goes to tkv's log (where it becomes
 * durable, in every --fsync mode) and into a write buffer (memtab.h); when
 * the buffer is full it is frozen and a flusher thread writes it to LevelDB
 * in key order, the versions of each key grouped into chunk records
 * (chunk.h) - one LevelDB record for up to 64 versions - then deletes the
 * log files the buffer covered. BENCHMARKS.md ("The write path") has the
 * measurements that chose this.
 *
 * Reads merge three sorted sources, newest first: the live buffer, the
 * frozen one being flushed (if any), and LevelDB with its chunks unfolded
 * into one record per version. A buffer record may be a delete, which hides
 * older sources' record of that key, or a drop of a key's versions, which
 * hides all of them in older sources (and the flush deletes them from
 * LevelDB chunk by chunk). Everything a reader needs is taken
 * under `mu` at once - references to both buffers, the buffer's sequence
 * number and LevelDB's view - so an iterator or snapshot sees one moment:
 * a buffer's records stay visible through the reader's reference even after
 * the flusher has put them in LevelDB and dropped the buffer.
 *
 * Files: db/ holds LevelDB's, wal/ the log (NNNNNNNNNNNNNNNN.log, each
 * record a big-endian u32 length, a u32 CRC-32C and a batch), and
 * tkvd.lock is flock()ed for the life of the process with the owner's pid
 * in it, so a second server on the same directory fails at once and says
 * who has it.
 */
#include "store.h"

#include "byteorder.h"
#include "chunk.h"
#include "crc32c.h"
#include "datadir.h"
#include "grow.h"
#include "memtab.h"
#include "varint.h"

#include <leveldb/c.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_WRITE_BUFFER (32u << 20)
#define LEVELDB_WRITE_BUFFER_MIN (4u << 20)
#define LEVELDB_WRITE_BUFFER_MAX (16u << 20)
/* The flusher hands LevelDB writes of about this size. */
#define FLUSH_BATCH_BYTES (4u << 20)
#define LOG_HEADER 8
#define REC_DEL 0
#define REC_PUT 1
#define REC_NEWEST 2
#define REC_DROP 3

/* ---- batches: the log record's payload as it is built ---------------------------- */

/* The log record's header (length and CRC, filled in by the write), then
 * each record: a type byte (1 put, 0 delete, 2 a put newer than every
 * version of its key, 3 a drop of every version of a prefix), varint key
 * length, key, and for a put varint value length, value. So the batch is written to the log
 * as it is, in one write(). */
struct tkv_store_batch {
    tkv_buf buf;
    size_t records;
    size_t bytes;
};

static void oom(void)
{
    /* As LevelDB: a batch that cannot be built ends the process, which the
     * log makes safe (nothing acknowledged is lost). */
    fprintf(stderr, "tkv store: out of memory\n");
    abort();
}

tkv_store_batch *tkv_store_batch_new(void)
{
    tkv_store_batch *b = calloc(1, sizeof *b);
    if (b && tkv_buf_reserve(&b->buf, 4096) < 0) {
        free(b);
        return NULL;
    }
    if (b)
        b->buf.len = LOG_HEADER;
    return b;
}

void tkv_store_batch_free(tkv_store_batch *b)
{
    if (!b)
        return;
    tkv_buf_deinit(&b->buf);
    free(b);
}

static void batch_add(tkv_store_batch *b, uint8_t type, const void *k, size_t klen, const void *v,
                      size_t vlen)
{
    if (tkv_buf_reserve(&b->buf, 1 + 10 + klen + 10 + vlen) < 0)
        oom();
    uint8_t *p = b->buf.data + b->buf.len;
    size_t o = 0;
    p[o++] = type;
    o += tkv_varint_put(p + o, klen);
    if (klen)
        memcpy(p + o, k, klen);
    o += klen;
    if (type == REC_PUT || type == REC_NEWEST) {
        o += tkv_varint_put(p + o, vlen);
        if (vlen)
            memcpy(p + o, v, vlen);
        o += vlen;
    }
    b->buf.len += o;
    b->records++;
    b->bytes += klen + vlen;
}

void tkv_store_batch_put(tkv_store_batch *b, const void *k, size_t klen, const void *v, size_t vlen)
{
    batch_add(b, REC_PUT, k, klen, v, vlen);
}

void tkv_store_batch_put_newest(tkv_store_batch *b, const void *k, size_t klen, const void *v,
                                size_t vlen)
{
    batch_add(b, REC_NEWEST, k, klen, v, vlen);
}

void tkv_store_batch_delete(tkv_store_batch *b, const void *k, size_t klen)
{
    batch_add(b, REC_DEL, k, klen, NULL, 0);
}

void tkv_store_batch_drop(tkv_store_batch *b, const void *p, size_t plen)
{
    batch_add(b, REC_DROP, p, plen, NULL, 0);
}

void tkv_store_batch_clear(tkv_store_batch *b)
{
    b->buf.len = LOG_HEADER;
    b->records = 0;
    b->bytes = 0;
}

size_t tkv_store_batch_size(const tkv_store_batch *b) { return b->records; }

size_t tkv_store_batch_bytes(const tkv_store_batch *b) { return b->bytes; }

typedef void (*rec_fn)(void *ctx, uint8_t type, const uint8_t *k, size_t klen, const uint8_t *v,
                       size_t vlen);

/* Walks encoded records; -1 if they are malformed (a damaged log record
 * whose checksum happened to match, or a bug). */
static int records_walk(const uint8_t *p, size_t n, void *ctx, rec_fn fn)
{
    const uint8_t *end = p + n;
    while (p < end) {
        uint8_t type = *p++;
        uint64_t klen, vlen = 0;
        if (type > REC_DROP || !(p = tkv_varint_get(p, end, &klen)) || klen > (uint64_t)(end - p))
            return -1;
        const uint8_t *k = p;
        p += klen;
        const uint8_t *v = NULL;
        if (type == REC_DROP && !tkv_chunk_is_version_prefix(k, (size_t)klen))
            return -1;
        if (type == REC_PUT || type == REC_NEWEST) {
            if (!(p = tkv_varint_get(p, end, &vlen)) || vlen > (uint64_t)(end - p))
                return -1;
            v = p;
            p += vlen;
        }
        if (fn)
            fn(ctx, type, k, (size_t)klen, v, (size_t)vlen);
    }
    return 0;
}

typedef struct iterate_ctx {
    void *ctx;
    tkv_store_put_fn put;
    tkv_store_del_fn del;
    tkv_store_del_fn drop;
} iterate_ctx;

static void iterate_one(void *p, uint8_t type, const uint8_t *k, size_t klen, const uint8_t *v,
                        size_t vlen)
{
    iterate_ctx *c = p;
    if (type == REC_DEL)
        c->del(c->ctx, k, klen);
    else if (type == REC_DROP)
        c->drop(c->ctx, k, klen);
    else
        c->put(c->ctx, k, klen, v, vlen);
}

void tkv_store_batch_iterate(const tkv_store_batch *b, void *ctx, tkv_store_put_fn put,
                             tkv_store_del_fn del, tkv_store_del_fn drop)
{
    iterate_ctx c = {ctx, put, del, drop};
    records_walk(b->buf.data + LOG_HEADER, b->buf.len - LOG_HEADER, &c, iterate_one);
}

/* ---- the store -------------------------------------------------------------------- */

struct tkv_store {
    /* LevelDB */
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *bloom;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wsync;
    leveldb_writeoptions_t *wnosync;
    tkv_store_iter *shared;
    tkv_store_observer observer;
    void *observer_ctx;
    int lock_fd;
    char *dir, *dbpath, *waldir;
    size_t write_buffer;
    /* The write side, serialised by wmu: the open log file and the next
     * sequence number. A failed log write or sync leaves the file's end
     * unknown: no write is taken until a reopen replays it. */
    pthread_mutex_t wmu;
    int log_fd;
    uint64_t log_num;
    bool log_unsynced, log_failed;
    uint64_t seq_next;
    /* Shared with readers and the flusher, under mu: the live buffer
     * (covering log files from mem_log on) and the frozen one (imm, from
     * imm_log to mem_log). seq is the last sequence number whose batch is
     * whole in mem. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tkv_memtab *mem, *imm;
    uint64_t mem_log, imm_log;
    _Atomic uint64_t seq;
    pthread_t flusher;
    bool flusher_on;
    /* Written under mu (the condition variable's), read without it on
     * every write and every flushed key: bg_err is written before
     * bg_failed is set. */
    _Atomic bool flusher_quit, bg_failed;
    char bg_err[256];
    uint64_t flushes;
};

/* What a reader works on: the buffers and the sequence number it sees. */
typedef struct view {
    tkv_memtab *mt[2];
    int nmt;
    uint64_t seq;
} view;

struct tkv_store_snapshot {
    view v;
    const leveldb_snapshot_t *snap;
    leveldb_readoptions_t *ropts; /* verify checksums, read at snap */
};

static void view_take(tkv_store *s, view *v)
{
    v->nmt = 0;
    if (s->mem) {
        tkv_memtab_ref(s->mem);
        v->mt[v->nmt++] = s->mem;
    }
    if (s->imm) {
        tkv_memtab_ref(s->imm);
        v->mt[v->nmt++] = s->imm;
    }
    v->seq = atomic_load_explicit(&s->seq, memory_order_acquire);
}

static void view_drop(view *v)
{
    for (int i = 0; i < v->nmt; i++)
        tkv_memtab_unref(v->mt[i]);
    v->nmt = 0;
}

/* ---- the log ---------------------------------------------------------------------- */

static void log_path(const tkv_store *s, uint64_t num, char *out, size_t n)
{
    snprintf(out, n, "%s/%016" PRIu64 ".log", s->waldir, num);
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Creates log file num and makes its name durable. */
static int log_create(tkv_store *s, uint64_t num, char *err, size_t errlen)
{
    char path[4200];
    log_path(s, num, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || sync_dir(s->waldir) < 0) {
        tkv_datadir_err(err, errlen, "cannot create a log file", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Log file numbers in the directory, sorted; *n of them. NULL with *n 0 if
 * none (or on error, with the reason in err and -1 in *n). */
static uint64_t *log_list(tkv_store *s, long *n, char *err, size_t errlen)
{
    *n = 0;
    DIR *d = opendir(s->waldir);
    if (!d) {
        tkv_datadir_err(err, errlen, "cannot read the log directory", strerror(errno));
        *n = -1;
        return NULL;
    }
    uint64_t *nums = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(de->d_name, &end, 10);
        if (errno || end == de->d_name || strcmp(end, ".log") != 0)
            continue;
        if (tkv_grow(&nums, &cap, (size_t)*n + 1, sizeof *nums, 16) < 0) {
            free(nums);
            closedir(d);
            tkv_datadir_err(err, errlen, "out of memory", NULL);
            *n = -1;
            return NULL;
        }
        nums[(*n)++] = v;
    }
    closedir(d);
    for (long i = 1; i < *n; i++) /* insertion sort: a handful of files */
        for (long j = i; j > 0 && nums[j - 1] > nums[j]; j--) {
            uint64_t t = nums[j];
            nums[j] = nums[j - 1];
            nums[j - 1] = t;
        }
    return nums;
}

/* Adds one record to the live buffer under the next sequence number. */
static void mem_add(tkv_store *s, uint8_t type, const uint8_t *k, size_t klen, const uint8_t *v,
                    size_t vlen)
{
    uint64_t seq = ++s->seq_next;
    int rc = type == REC_DROP ? tkv_memtab_drop(s->mem, seq, k, klen)
                              : tkv_memtab_add(s->mem, seq, type == REC_DEL, type == REC_NEWEST, k,
                                               klen, v, vlen);
    if (rc < 0)
        oom();
}

/* A replayed put loses its "newest" hint: a crash may have left part of
 * an earlier flush of it in LevelDB, cut into other chunks than the next
 * flush would make, and only the merge that the hint skips reconciles
 * them. */
static void replay_one(void *ctx, uint8_t type, const uint8_t *k, size_t klen, const uint8_t *v,
                       size_t vlen)
{
    mem_add(ctx, type == REC_NEWEST ? REC_PUT : type, k, klen, v, vlen);
}

static void log_remove_range(tkv_store *s, uint64_t from, uint64_t to)
{
    char path[4200];
    for (uint64_t i = from; i < to; i++) {
        log_path(s, i, path, sizeof path);
        unlink(path);
    }
}

/* Reads a whole file into a malloc'd buffer (*n bytes; NULL for an empty
 * file). -1 on failure, with the reason in err. */
static int read_file(int fd, uint8_t **data, size_t *n, char *err, size_t errlen)
{
    struct stat st;
    *data = NULL;
    if (fstat(fd, &st) < 0) {
        tkv_datadir_err(err, errlen, "cannot read a log file", strerror(errno));
        return -1;
    }
    *n = (size_t)st.st_size;
    if (*n && !(*data = malloc(*n))) {
        tkv_datadir_err(err, errlen, "out of memory reading the log", NULL);
        return -1;
    }
    for (size_t got = 0; got < *n;) {
        ssize_t r = pread(fd, *data + got, *n - got, (off_t)got);
        if (r <= 0) {
            tkv_datadir_err(err, errlen, "cannot read a log file",
                            r < 0 ? strerror(errno) : "short");
            free(*data);
            *data = NULL;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

/* The length of the valid records at the start of a log file's bytes:
 * each whole, with its checksum, and well formed. With s, replays them
 * into s->mem. */
static size_t log_valid(tkv_store *s, const uint8_t *data, size_t n)
{
    size_t off = 0;
    while (n - off >= LOG_HEADER) {
        uint32_t len = tkv_load_be32(data + off), crc = tkv_load_be32(data + off + 4);
        if (len > n - off - LOG_HEADER)
            break;
        const uint8_t *p = data + off + LOG_HEADER;
        if (tkv_crc32c(0, p, len) != crc || records_walk(p, len, NULL, NULL) < 0)
            break;
        if (s)
            records_walk(p, len, s, replay_one);
        off += LOG_HEADER + len;
    }
    return off;
}

/* Replays one log file into mem. Only the newest file can end in a record
 * cut short (a write the process died in, never acknowledged: every older
 * file was synced when the next was started), so there a bad record ends
 * the replay and the file is cut; anywhere else it is damage, and the
 * store refuses to open rather than go on without acknowledged writes
 * (tkvd --repair moves the damaged tail aside). */
static int log_replay(tkv_store *s, uint64_t num, bool newest, char *err, size_t errlen)
{
    char path[4200];
    log_path(s, num, path, sizeof path);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        tkv_datadir_err(err, errlen, "cannot read a log file", strerror(errno));
        return -1;
    }
    uint8_t *data;
    size_t n;
    if (read_file(fd, &data, &n, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    size_t off = log_valid(s, data, n);
    int rc = 0;
    if (off < n && !newest) {
        char what[4400];
        snprintf(what, sizeof what,
                 "Corruption: the log file %s is damaged at byte %zu of %zu. Stop tkvd, back the "
                 "directory up, then run 'tkvd --data-dir DIR --repair' (see README.md)",
                 path, off, n);
        tkv_datadir_err(err, errlen, what, NULL);
        rc = -1;
    } else if (off < n && ftruncate(fd, (off_t)off) < 0) {
        tkv_datadir_err(err, errlen, "cannot cut a torn log record", strerror(errno));
        rc = -1;
    }
    free(data);
    close(fd);
    return rc;
}

/* wal/FLUSHED holds the number of the first log file not yet in LevelDB:
 * written (atomically, synced) after each flush, so that a log file whose
 * delete failed or was lost in a crash is never replayed over newer data. */
static uint64_t flushed_read(const tkv_store *s)
{
    char path[4200], buf[32];
    snprintf(path, sizeof path, "%s/FLUSHED", s->waldir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0)
        return 0;
    buf[r] = '\0';
    return strtoull(buf, NULL, 10);
}

static int flushed_write(const tkv_store *s, uint64_t num, char *err, size_t errlen)
{
    char tmp[4200], path[4200], buf[32];
    snprintf(tmp, sizeof tmp, "%s/FLUSHED.tmp", s->waldir);
    snprintf(path, sizeof path, "%s/FLUSHED", s->waldir);
    int len = snprintf(buf, sizeof buf, "%" PRIu64 "\n", num);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, buf, (size_t)len) == len && fdatasync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) < 0 || sync_dir(s->waldir) < 0) {
        tkv_datadir_err(err, errlen, "IO error: cannot record a finished flush",
                        strerror(ok ? errno : e));
        return -1;
    }
    return 0;
}

/* Opens the log side: replays every log file not yet flushed into a new
 * buffer and starts a new file for appends. */
static int log_open(tkv_store *s, char *err, size_t errlen)
{
    if (mkdir(s->waldir, 0700) < 0) {
        if (errno != EEXIST) {
            tkv_datadir_err(err, errlen, "cannot create the log directory", strerror(errno));
            return -1;
        }
    } else if (sync_dir(s->dir) < 0) {
        tkv_datadir_err(err, errlen, "cannot sync the data directory", strerror(errno));
        return -1;
    }
    if (!(s->mem = tkv_memtab_new())) {
        tkv_datadir_err(err, errlen, "out of memory", NULL);
        return -1;
    }
    s->seq_next = 0;
    long n;
    uint64_t *nums = log_list(s, &n, err, errlen);
    if (n < 0)
        return -1;
    uint64_t flushed = flushed_read(s);
    long first = 0;
    for (long i = 0; i < n; i++) {
        if (nums[i] < flushed) {
            /* In LevelDB already: a delete the last flush did not finish. */
            log_remove_range(s, nums[i], nums[i] + 1);
            first = i + 1;
        } else if (log_replay(s, nums[i], i == n - 1, err, errlen) < 0) {
            free(nums);
            return -1;
        }
    }
    uint64_t next = n ? nums[n - 1] + 1 : 1;
    if (next < flushed)
        next = flushed;
    s->mem_log = first < n ? nums[first] : next;
    free(nums);
    atomic_store(&s->seq, s->seq_next);
    s->log_num = next;
    s->log_unsynced = s->log_failed = false;
    if ((s->log_fd = log_create(s, next, err, errlen)) < 0)
        return -1;
    return 0;
}

/* For tkvd --repair: cuts every log file at its first damaged record,
 * keeping what is cut in lost/ (as LevelDB's repair keeps what it cannot
 * use), so the store opens with every record before the damage. */
static int log_repair(const char *dir, char *err, size_t errlen)
{
    tkv_store s = {.log_fd = -1};
    char waldir[4200], lost[4200];
    snprintf(waldir, sizeof waldir, "%s/wal", dir);
    snprintf(lost, sizeof lost, "%s/lost", dir);
    s.waldir = waldir;
    struct stat st;
    if (stat(waldir, &st) < 0)
        return 0; /* no log: nothing to repair */
    long n;
    uint64_t *nums = log_list(&s, &n, err, errlen);
    if (n < 0)
        return -1;
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        char path[4300];
        log_path(&s, nums[i], path, sizeof path);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        uint8_t *data = NULL;
        size_t len = 0;
        if (fd < 0 || read_file(fd, &data, &len, err, errlen) < 0) {
            if (fd < 0)
                tkv_datadir_err(err, errlen, "cannot read a log file", strerror(errno));
            rc = -1;
        } else {
            size_t off = log_valid(NULL, data, len);
            if (off < len) {
                char keep[4400];
                snprintf(keep, sizeof keep, "%s/%016" PRIu64 ".log.damaged", lost, nums[i]);
                int kfd = -1;
                bool ok = (mkdir(lost, 0700) == 0 || errno == EEXIST) &&
                          (kfd = open(keep, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0 &&
                          write(kfd, data + off, len - off) == (ssize_t)(len - off) &&
                          fsync(kfd) == 0 && ftruncate(fd, (off_t)off) == 0 && fsync(fd) == 0;
                if (kfd >= 0)
                    close(kfd);
                if (!ok) {
                    tkv_datadir_err(err, errlen, "cannot cut a damaged log file", strerror(errno));
                    rc = -1;
                }
            }
        }
        free(data);
        if (fd >= 0)
            close(fd);
    }
    free(nums);
    return rc;
}

static void log_close(tkv_store *s)
{
    if (s->log_fd >= 0)
        close(s->log_fd);
    s->log_fd = -1;
    tkv_memtab_unref(s->mem);
    tkv_memtab_unref(s->imm);
    s->mem = s->imm = NULL;
}

/* ---- LevelDB ---------------------------------------------------------------------- */

static void make_options(tkv_store *s, const tkv_store_opts *o)
{
    s->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(s->opts, o->create);
    leveldb_options_set_paranoid_checks(s->opts, 1);
    /* Each table block records its own compression, so a directory written
     * in either mode opens in the other. */
    leveldb_options_set_compression(s->opts, o->no_compression ? leveldb_no_compression
                                                               : leveldb_snappy_compression);
    if (o->block_cache) {
        s->cache = leveldb_cache_create_lru(o->block_cache);
        leveldb_options_set_cache(s->opts, s->cache);
    }
    s->write_buffer = o->write_buffer ? o->write_buffer : DEFAULT_WRITE_BUFFER;
    /* LevelDB's own memtable takes a flush's chunk records: at 4 MiB (its
     * default) one flush of 32 MiB would make 8 level-0 files, LevelDB's
     * slowdown mark. Half a flush, 4-16 MiB, makes two or three. */
    size_t lwb = s->write_buffer / 2;
    lwb = lwb < LEVELDB_WRITE_BUFFER_MIN   ? LEVELDB_WRITE_BUFFER_MIN
          : lwb > LEVELDB_WRITE_BUFFER_MAX ? LEVELDB_WRITE_BUFFER_MAX
                                           : lwb;
    leveldb_options_set_write_buffer_size(s->opts, lwb);
    s->bloom = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_filter_policy(s->opts, s->bloom);
    s->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(s->ropts, 1);
    s->wsync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wsync, 1);
    s->wnosync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wnosync, 0);
}

static void *flusher_main(void *arg);

static int open_db(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    make_options(s, o);
    char *lerr = NULL;
    s->db = leveldb_open(s->opts, s->dbpath, &lerr);
    if (!s->db) {
        char what[600];
        snprintf(what, sizeof what, "cannot open the database in %s", s->dbpath);
        tkv_datadir_err(err, errlen, what, lerr);
        if (strstr(lerr, "Corruption")) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n,
                     ". The data directory is damaged: stop tkvd, back the directory up, "
                     "then run 'tkvd --data-dir DIR --repair' (see README.md)");
        }
        leveldb_free(lerr);
        return -1;
    }
    if (log_open(s, err, errlen) < 0)
        return -1;
    s->bg_failed = false;
    s->flusher_quit = false;
    if (pthread_create(&s->flusher, NULL, flusher_main, s) != 0) {
        tkv_datadir_err(err, errlen, "cannot start the flusher thread", NULL);
        return -1;
    }
    s->flusher_on = true;
    return 0;
}

/* Stops the flusher and releases LevelDB's handles and the log, but not the
 * directory lock. */
static void close_db(tkv_store *s)
{
    if (s->flusher_on) {
        pthread_mutex_lock(&s->mu);
        s->flusher_quit = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->flusher, NULL);
        s->flusher_on = false;
    }
    tkv_store_iter_release_shared(s);
    log_close(s);
    if (s->db)
        leveldb_close(s->db);
    if (s->opts)
        leveldb_options_destroy(s->opts);
    if (s->cache)
        leveldb_cache_destroy(s->cache);
    if (s->bloom)
        leveldb_filterpolicy_destroy(s->bloom);
    if (s->ropts)
        leveldb_readoptions_destroy(s->ropts);
    if (s->wsync)
        leveldb_writeoptions_destroy(s->wsync);
    if (s->wnosync)
        leveldb_writeoptions_destroy(s->wnosync);
    s->db = NULL;
    s->opts = NULL;
    s->cache = NULL;
    s->bloom = NULL;
    s->ropts = NULL;
    s->wsync = s->wnosync = NULL;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int tkv_store_open(const tkv_store_opts *o, tkv_store **out, char *err, size_t errlen)
{
    *out = NULL;
    tkv_store *s = calloc(1, sizeof *s);
    if (!s) {
        tkv_datadir_err(err, errlen, "out of memory", NULL);
        return -1;
    }
    s->lock_fd = -1;
    s->log_fd = -1;
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if ((o->create && tkv_datadir_make(o->dir, err, errlen) < 0) ||
        tkv_datadir_lock(o->dir, &s->lock_fd, err, errlen) < 0) {
        tkv_store_close(s);
        return -1;
    }
    s->dir = strdup(o->dir);
    s->dbpath = path_join(o->dir, "db");
    s->waldir = path_join(o->dir, "wal");
    if (!s->dir || !s->dbpath || !s->waldir) {
        tkv_datadir_err(err, errlen, "out of memory", NULL);
        tkv_store_close(s);
        return -1;
    }
    if (open_db(s, o, err, errlen) < 0) {
        tkv_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int tkv_store_reopen(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    close_db(s);
    if (open_db(s, o, err, errlen) < 0) {
        close_db(s);
        return -1;
    }
    return 0;
}

/* LevelDB deletes a database's files faster than a batch could delete its
 * records, and leaves no tombstones for compaction to carry; the log files
 * go with it. */
int tkv_store_wipe(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    close_db(s);
    /* A log file left behind would be replayed over the empty database. */
    long n;
    uint64_t *nums = log_list(s, &n, err, errlen);
    if (n < 0)
        return -1;
    char path[4200];
    for (long i = 0; i < n; i++) {
        log_path(s, nums[i], path, sizeof path);
        if (unlink(path) < 0 && errno != ENOENT) {
            tkv_datadir_err(err, errlen, "cannot remove a log file", strerror(errno));
            free(nums);
            return -1;
        }
    }
    free(nums);
    snprintf(path, sizeof path, "%s/FLUSHED", s->waldir);
    if (unlink(path) < 0 && errno != ENOENT) {
        tkv_datadir_err(err, errlen, "cannot remove the log's flush mark", strerror(errno));
        return -1;
    }
    leveldb_options_t *lo = leveldb_options_create();
    char *lerr = NULL;
    leveldb_destroy_db(lo, s->dbpath, &lerr);
    leveldb_options_destroy(lo);
    if (lerr) {
        tkv_datadir_err(err, errlen, "cannot empty the database", lerr);
        leveldb_free(lerr);
    }
    if (lerr || open_db(s, o, err, errlen) < 0) {
        close_db(s);
        return -1;
    }
    return 0;
}

void tkv_store_close(tkv_store *s)
{
    if (!s)
        return;
    /* A clean close leaves everything in LevelDB: the next open replays
     * nothing, and db/ alone holds the data. A failed store closes as it
     * is; its log keeps what it could not flush. */
    if (s->db && s->flusher_on && !s->log_failed && !atomic_load(&s->bg_failed)) {
        char err[256];
        tkv_store_flush(s, err, sizeof err);
    }
    close_db(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->dir);
    free(s->dbpath);
    free(s->waldir);
    free(s);
}

/* LevelDB's repair leaves every table at level 0, where a point lookup
 * takes the first table holding the key in file-number order - and a table
 * a compaction wrote can be numbered after a newer one, so gets returned a
 * key's older value while iterators, which merge by sequence number,
 * showed the newest (reproduced with LevelDB 1.23: 75 MB of overwrites,
 * then a repair). A full compaction merges by sequence number too, and
 * leaves no table at level 0. It rewrites the database once; a repair is
 * rare and offline. */
static void compact_all(leveldb_options_t *o, const char *path, char **lerr)
{
    leveldb_t *db = leveldb_open(o, path, lerr);
    if (!db)
        return;
    leveldb_compact_range(db, NULL, 0, NULL, 0);
    leveldb_close(db);
}

/* Repair rewrites LevelDB's files wholesale and moves any log it cannot
 * account for into lost/: run against a live server's directory it would
 * take that server's acknowledged writes with it. So it takes the same
 * lock tkvd holds, and refuses while anyone else has it. tkv's own log
 * files are cut at their first damaged record (the rest kept in lost/);
 * the next open replays them on top of the repaired tables. */
int tkv_store_repair(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/db", dir);
    struct stat st;
    int serr = stat(path, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (serr) {
        char what[4200];
        snprintf(what, sizeof what, "no database to repair in %s", path);
        tkv_datadir_err(err, errlen, what, strerror(serr));
        return -1;
    }
    int lock_fd = -1;
    if (tkv_datadir_lock(dir, &lock_fd, err, errlen) < 0)
        return -1;
    leveldb_options_t *o = leveldb_options_create();
    char *lerr = NULL;
    leveldb_repair_db(o, path, &lerr);
    if (!lerr)
        compact_all(o, path, &lerr);
    leveldb_options_destroy(o);
    int lrc = lerr ? 0 : log_repair(dir, err, errlen);
    close(lock_fd);
    if (lrc < 0)
        return -1;
    if (lerr) {
        tkv_datadir_err(err, errlen, "repair failed", lerr);
        leveldb_free(lerr);
        return -1;
    }
    return 0;
}

bool tkv_store_is_persistent(void) { return true; }

/* store.h allows only reopen and close on a store whose reopen failed, and
 * the engine keeps to that; but LevelDB's C API takes a NULL handle for a
 * crash, so the calls that could still reach it refuse instead. */
static int closed(const tkv_store *s, char *err, size_t errlen)
{
    if (s->db)
        return 0;
    tkv_datadir_err(err, errlen, "the store is closed (a reopen failed)", NULL);
    return -1;
}

/* LevelDB hands out its messages malloc'd; this copies one into err. */
static int take_lerr(char *lerr, char *err, size_t errlen)
{
    if (!lerr)
        return 0;
    tkv_datadir_err(err, errlen, lerr, NULL);
    leveldb_free(lerr);
    return -1;
}

void tkv_store_free(void *p) { free(p); }

char *tkv_store_property(tkv_store *s, const char *name)
{
    if (!s->db)
        return NULL;
    if (strcmp(name, "tkv.write-buffer-bytes") == 0) {
        pthread_mutex_lock(&s->mu);
        size_t b =
            (s->mem ? tkv_memtab_bytes(s->mem) : 0) + (s->imm ? tkv_memtab_bytes(s->imm) : 0);
        pthread_mutex_unlock(&s->mu);
        char buf[32];
        snprintf(buf, sizeof buf, "%zu", b);
        return strdup(buf);
    }
    /* Copied so that the caller's free() is the right deallocator whatever
     * LevelDB's allocator is. */
    char *v = leveldb_property_value(s->db, name);
    char *copy = v ? strdup(v) : NULL;
    if (v)
        leveldb_free(v);
    return copy;
}

/* ---- reading LevelDB's chunks as one record per version ---------------------------- */

/* A cursor over LevelDB that unfolds each chunk into its versions. */
typedef struct dcur {
    leveldb_iterator_t *li;
    bool valid, chunk, corrupt;
    tkv_chunk_ent ents[TKV_CHUNK_DECODE_MAX];
    long n, i;
    uint8_t *key; /* the current version's encoding (prefix + ~ts) */
    size_t klen, kcap;
} dcur;

static void dc_compose(dcur *d) { tkv_store_be64(d->key + d->klen - 8, ~d->ents[d->i].ts); }

/* Makes the LevelDB record under li current, at its first (fwd) or last
 * version. */
static void dc_load(dcur *d, bool fwd)
{
    d->valid = leveldb_iter_valid(d->li);
    d->chunk = false;
    if (!d->valid)
        return;
    size_t kn, vn;
    const uint8_t *k = (const uint8_t *)leveldb_iter_key(d->li, &kn);
    if (!tkv_chunk_is_version(k, kn))
        return;
    const uint8_t *v = (const uint8_t *)leveldb_iter_value(d->li, &vn);
    d->n = tkv_chunk_decode(v, vn, ~tkv_load_be64(k + kn - 8), d->ents);
    if (d->n < 0) {
        d->corrupt = true;
        d->valid = false;
        return;
    }
    if (tkv_grow(&d->key, &d->kcap, kn, 1, 64) < 0)
        oom();
    memcpy(d->key, k, kn);
    d->klen = kn;
    d->chunk = true;
    d->i = fwd ? 0 : d->n - 1;
    dc_compose(d);
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0; /* an empty key may come as NULL */
    return c ? c : (an > bn) - (an < bn);
}

static void dc_seek(dcur *d, const uint8_t *x, size_t xn)
{
    leveldb_iter_seek(d->li, (const char *)x, xn);
    dc_load(d, true);
    if (!d->valid || !d->chunk)
        return;
    /* The chunk's versions run up to its key, which is >= x; the first of
     * them >= x is the answer. */
    size_t plen = d->klen - 8;
    if (xn == d->klen && memcmp(x, d->key, plen) == 0) {
        uint64_t t = ~tkv_load_be64(x + plen);
        while (d->i < d->n - 1 && d->ents[d->i].ts > t)
            d->i++;
    } else {
        while (d->i < d->n - 1) {
            dc_compose(d);
            if (key_cmp(d->key, d->klen, x, xn) >= 0)
                break;
            d->i++;
        }
    }
    dc_compose(d);
}

static void dc_first(dcur *d)
{
    leveldb_iter_seek_to_first(d->li);
    dc_load(d, true);
}

static void dc_last(dcur *d)
{
    leveldb_iter_seek_to_last(d->li);
    dc_load(d, false);
}

static void dc_next(dcur *d)
{
    if (d->chunk && d->i + 1 < d->n) {
        d->i++;
        dc_compose(d);
        return;
    }
    leveldb_iter_next(d->li);
    dc_load(d, true);
}

static void dc_prev(dcur *d)
{
    if (d->chunk && d->i > 0) {
        d->i--;
        dc_compose(d);
        return;
    }
    leveldb_iter_prev(d->li);
    dc_load(d, false);
}

static const uint8_t *dc_key(const dcur *d, size_t *n)
{
    if (d->chunk) {
        *n = d->klen;
        return d->key;
    }
    return (const uint8_t *)leveldb_iter_key(d->li, n);
}

static const uint8_t *dc_value(const dcur *d, size_t *n)
{
    if (d->chunk) {
        *n = d->ents[d->i].len;
        return d->ents[d->i].blob;
    }
    return (const uint8_t *)leveldb_iter_value(d->li, n);
}

/* ---- iterators: the buffers merged over LevelDB ----------------------------------- */

/* Children: the view's buffers (0 .. nmt-1, newest first), then LevelDB
 * (nmt). On equal keys the lower index wins; the others' records of that
 * key are older and hidden. Direction changes re-seek the other children,
 * as LevelDB's merging iterator does. */
struct tkv_store_iter {
    tkv_store *s;
    view v;
    bool own_view; /* not a snapshot's */
    tkv_memtab_iter mi[2];
    dcur dc;
    int cur; /* the current child, -1 if not valid */
    bool fwd;
    uint8_t *sk; /* a saved key, while children move */
    size_t skcap;
    /* Drops (tkv_store_batch_drop): whether any buffer of the view holds
     * one, and the last prefix looked up - the first child that drops it
     * (nchildren: none); every later child's records of it are hidden. */
    bool drops;
    uint8_t *dk;
    size_t dkn, dkcap;
    int dlevel;
};

static bool ch_valid(const tkv_store_iter *it, int c)
{
    return c < it->v.nmt ? tkv_memtab_iter_valid(&it->mi[c]) : it->dc.valid;
}

static const uint8_t *ch_key(const tkv_store_iter *it, int c, size_t *n)
{
    return c < it->v.nmt ? tkv_memtab_iter_key(&it->mi[c], n) : dc_key(&it->dc, n);
}

static void ch_seek(tkv_store_iter *it, int c, const uint8_t *k, size_t n)
{
    if (c < it->v.nmt)
        tkv_memtab_iter_seek(&it->mi[c], k, n);
    else
        dc_seek(&it->dc, k, n);
}

static void ch_next(tkv_store_iter *it, int c)
{
    if (c < it->v.nmt)
        tkv_memtab_iter_next(&it->mi[c]);
    else
        dc_next(&it->dc);
}

static void ch_prev(tkv_store_iter *it, int c)
{
    if (c < it->v.nmt)
        tkv_memtab_iter_prev(&it->mi[c]);
    else
        dc_prev(&it->dc);
}

static void ch_last(tkv_store_iter *it, int c)
{
    if (c < it->v.nmt)
        tkv_memtab_iter_seek_last(&it->mi[c]);
    else
        dc_last(&it->dc);
}

static int nchildren(const tkv_store_iter *it) { return it->v.nmt + 1; }

/* The current child: the smallest key (fwd) or the largest, lower index on
 * a tie. */
static void pick(tkv_store_iter *it)
{
    it->cur = -1;
    size_t bn = 0;
    const uint8_t *best = NULL;
    for (int c = 0; c < nchildren(it); c++) {
        if (!ch_valid(it, c))
            continue;
        size_t n;
        const uint8_t *k = ch_key(it, c, &n);
        int cmp = best ? key_cmp(k, n, best, bn) : 0;
        if (!best || (it->fwd ? cmp < 0 : cmp > 0)) {
            best = k;
            bn = n;
            it->cur = c;
        }
    }
}

static bool cur_is_del(const tkv_store_iter *it)
{
    return it->cur >= 0 && it->cur < it->v.nmt && tkv_memtab_iter_is_del(&it->mi[it->cur]);
}

/* Saves the current key (children's keys move with them). */
static size_t save_key(tkv_store_iter *it)
{
    size_t n;
    const uint8_t *k = ch_key(it, it->cur, &n);
    if (tkv_grow(&it->sk, &it->skcap, n, 1, 64) < 0)
        oom();
    if (n) /* the empty key's pointer may be NULL */
        memcpy(it->sk, k, n);
    return n;
}

/* Moves every child on the current key one step in the iterator's
 * direction, then picks again. */
static void step(tkv_store_iter *it)
{
    size_t n = save_key(it);
    for (int c = 0; c < nchildren(it); c++) {
        size_t kn;
        if (!ch_valid(it, c))
            continue;
        const uint8_t *k = ch_key(it, c, &kn);
        if (key_cmp(k, kn, it->sk, n) == 0) {
            if (it->fwd)
                ch_next(it, c);
            else
                ch_prev(it, c);
        }
    }
    pick(it);
}

/* The first child that drops prefix p (nchildren if none), remembered
 * for the next record of the same prefix. */
static int drop_level(tkv_store_iter *it, const uint8_t *p, size_t pn)
{
    if (it->dk && it->dkn == pn && memcmp(it->dk, p, pn) == 0)
        return it->dlevel;
    if (tkv_grow(&it->dk, &it->dkcap, pn, 1, 64) < 0)
        oom();
    memcpy(it->dk, p, pn);
    it->dkn = pn;
    it->dlevel = nchildren(it);
    for (int c = 0; c < it->v.nmt; c++)
        if (tkv_memtab_dropped(it->v.mt[c], it->v.seq, p, pn)) {
            it->dlevel = c;
            break;
        }
    return it->dlevel;
}

/* If the current record is hidden by a drop in a newer buffer, moves every
 * child the drop hides out of the prefix at once - in the iterator's
 * direction, past all of its versions however many LevelDB still holds -
 * and picks again. Returns whether it moved. */
static bool skip_dropped(tkv_store_iter *it)
{
    if (!it->drops || it->cur <= 0)
        return false;
    size_t kn;
    const uint8_t *k = ch_key(it, it->cur, &kn);
    if (!tkv_chunk_is_version(k, kn))
        return false;
    int level = drop_level(it, k, kn - 8);
    if (it->cur <= level)
        return false;
    /* Past P's versions: P | ff*8 | 00 is the first key after them; before
     * them: the last key before P | 00*8. */
    size_t pn = it->dkn, xn = pn + (it->fwd ? 9 : 8);
    if (tkv_grow(&it->dk, &it->dkcap, xn, 1, 64) < 0)
        oom();
    uint8_t *x = it->dk; /* the prefix, then the bound's own bytes */
    memset(x + pn, it->fwd ? 0xff : 0x00, 8);
    if (it->fwd)
        x[pn + 8] = 0x00;
    for (int c = level + 1; c < nchildren(it); c++) {
        if (!ch_valid(it, c))
            continue;
        size_t cn;
        const uint8_t *ck = ch_key(it, c, &cn);
        if (cn != pn + 8 || memcmp(ck, x, pn) != 0)
            continue;
        ch_seek(it, c, x, xn);
        if (!it->fwd) {
            if (ch_valid(it, c))
                ch_prev(it, c);
            else
                ch_last(it, c);
        }
    }
    pick(it);
    return true;
}

/* Moves past deletes and what drops hide: the iterator then rests on a
 * record a reader sees, or is not valid. */
static void skip_deletes(tkv_store_iter *it)
{
    for (;;) {
        if (skip_dropped(it))
            continue;
        if (!cur_is_del(it))
            return;
        step(it);
    }
}

tkv_store_iter *tkv_store_iter_new(tkv_store *s, const tkv_store_snapshot *snap)
{
    if (!s->db)
        return NULL;
    tkv_store_iter *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->s = s;
    it->cur = -1;
    if (snap) {
        it->v = snap->v;
        it->dc.li = leveldb_create_iterator(s->db, snap->ropts);
    } else {
        it->own_view = true;
        pthread_mutex_lock(&s->mu);
        view_take(s, &it->v);
        it->dc.li = leveldb_create_iterator(s->db, s->ropts);
        pthread_mutex_unlock(&s->mu);
    }
    for (int c = 0; c < it->v.nmt; c++) {
        tkv_memtab_iter_init(&it->mi[c], it->v.mt[c], it->v.seq);
        /* A drop the view's sequence number covers was added before it was
         * published, and so was the table's flag. */
        it->drops |= tkv_memtab_has_drops(it->v.mt[c]);
    }
    return it;
}

void tkv_store_iter_free(tkv_store_iter *it)
{
    if (!it)
        return;
    leveldb_iter_destroy(it->dc.li);
    for (int c = 0; c < it->v.nmt; c++)
        tkv_memtab_iter_deinit(&it->mi[c]);
    if (it->own_view)
        view_drop(&it->v);
    free(it->dc.key);
    free(it->sk);
    free(it->dk);
    free(it);
}

tkv_store_iter *tkv_store_iter_shared(tkv_store *s)
{
    if (!s->db)
        return NULL;
    if (!s->shared)
        s->shared = tkv_store_iter_new(s, NULL);
    return s->shared;
}

void tkv_store_iter_release_shared(tkv_store *s)
{
    tkv_store_iter_free(s->shared);
    s->shared = NULL;
}

void tkv_store_iter_seek(tkv_store_iter *it, const void *k, size_t klen)
{
    it->fwd = true;
    for (int c = 0; c < nchildren(it); c++)
        ch_seek(it, c, k, klen);
    pick(it);
    skip_deletes(it);
}

void tkv_store_iter_seek_first(tkv_store_iter *it)
{
    it->fwd = true;
    for (int c = 0; c < it->v.nmt; c++)
        tkv_memtab_iter_seek_first(&it->mi[c]);
    dc_first(&it->dc);
    pick(it);
    skip_deletes(it);
}

void tkv_store_iter_seek_last(tkv_store_iter *it)
{
    it->fwd = false;
    for (int c = 0; c < nchildren(it); c++)
        ch_last(it, c);
    pick(it);
    skip_deletes(it);
}

void tkv_store_iter_next(tkv_store_iter *it)
{
    if (!it->fwd) {
        /* Every other child sits before the current key: bring each to the
         * first key >= it (step() then moves those on it past it). */
        size_t n = save_key(it);
        for (int c = 0; c < nchildren(it); c++)
            if (c != it->cur)
                ch_seek(it, c, it->sk, n);
        it->fwd = true;
    }
    step(it);
    skip_deletes(it);
}

void tkv_store_iter_prev(tkv_store_iter *it)
{
    if (it->fwd) {
        /* Every other child sits at or after the current key: bring each to
         * the last key before it. */
        size_t n = save_key(it);
        for (int c = 0; c < nchildren(it); c++) {
            if (c == it->cur)
                continue;
            ch_seek(it, c, it->sk, n);
            if (ch_valid(it, c))
                ch_prev(it, c);
            else
                ch_last(it, c);
        }
        it->fwd = false;
    }
    step(it);
    skip_deletes(it);
}

bool tkv_store_iter_valid(const tkv_store_iter *it) { return it->cur >= 0; }

const uint8_t *tkv_store_iter_key(const tkv_store_iter *it, size_t *klen)
{
    return ch_key(it, it->cur, klen);
}

const uint8_t *tkv_store_iter_value(const tkv_store_iter *it, size_t *vlen)
{
    if (it->cur < it->v.nmt)
        return tkv_memtab_iter_value(&it->mi[it->cur], vlen);
    return dc_value(&it->dc, vlen);
}

int tkv_store_iter_status(const tkv_store_iter *it, char *err, size_t errlen)
{
    char *lerr = NULL;
    leveldb_iter_get_error(it->dc.li, &lerr);
    if (take_lerr(lerr, err, errlen) < 0)
        return -1;
    if (it->dc.corrupt) {
        tkv_datadir_err(err, errlen, "Corruption: a malformed chunk record", NULL);
        return -1;
    }
    return 0;
}

/* ---- snapshots and point reads -------------------------------------------------- */

tkv_store_snapshot *tkv_store_snapshot_new(tkv_store *s)
{
    if (!s->db)
        return NULL;
    tkv_store_snapshot *snap = calloc(1, sizeof *snap);
    if (!snap)
        return NULL;
    pthread_mutex_lock(&s->mu);
    view_take(s, &snap->v);
    snap->snap = leveldb_create_snapshot(s->db);
    pthread_mutex_unlock(&s->mu);
    snap->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(snap->ropts, 1);
    leveldb_readoptions_set_snapshot(snap->ropts, snap->snap);
    return snap;
}

void tkv_store_snapshot_free(tkv_store *s, tkv_store_snapshot *snap)
{
    if (!snap)
        return;
    leveldb_readoptions_destroy(snap->ropts);
    leveldb_release_snapshot(s->db, snap->snap);
    view_drop(&snap->v);
    free(snap);
}

static int copy_out(const void *v, size_t n, char **val, size_t *vlen, char *err, size_t errlen)
{
    *val = malloc(n ? n : 1);
    if (!*val) {
        tkv_datadir_err(err, errlen, "out of memory", NULL);
        return -1;
    }
    if (n)
        memcpy(*val, v, n);
    *vlen = n;
    return 1;
}

int tkv_store_get(tkv_store *s, const tkv_store_snapshot *snap, const void *k, size_t klen,
                  char **val, size_t *vlen, char *err, size_t errlen)
{
    *val = NULL;
    if (closed(s, err, errlen) < 0)
        return -1;
    if (tkv_chunk_is_version(k, klen)) {
        /* A version is found as an iterator finds it: inside its chunk. */
        tkv_store_iter *it = tkv_store_iter_new(s, snap);
        if (!it) {
            tkv_datadir_err(err, errlen, "out of memory", NULL);
            return -1;
        }
        tkv_store_iter_seek(it, k, klen);
        size_t n;
        int rc = 0;
        if (tkv_store_iter_valid(it)) {
            const uint8_t *fk = tkv_store_iter_key(it, &n);
            if (key_cmp(fk, n, k, klen) == 0) {
                const uint8_t *v = tkv_store_iter_value(it, &n);
                rc = copy_out(v, n, val, vlen, err, errlen);
            }
        } else if (tkv_store_iter_status(it, err, errlen) < 0)
            rc = -1;
        tkv_store_iter_free(it);
        return rc;
    }
    view v;
    if (snap)
        v = snap->v;
    else {
        pthread_mutex_lock(&s->mu);
        view_take(s, &v);
        pthread_mutex_unlock(&s->mu);
    }
    int rc = 0;
    bool found = false;
    for (int i = 0; i < v.nmt && !found; i++) {
        const uint8_t *mv;
        size_t mn;
        int r = tkv_memtab_get(v.mt[i], v.seq, k, klen, &mv, &mn);
        if (r == 1)
            rc = copy_out(mv, mn, val, vlen, err, errlen);
        found = r != 0;
    }
    if (!snap)
        view_drop(&v);
    if (found)
        return rc;
    /* A flush finishing meanwhile puts newer records in LevelDB than the
     * buffers showed: a point read may see them (a later, equally true
     * state). */
    char *lerr = NULL;
    size_t n;
    char *lv = leveldb_get(s->db, snap ? snap->ropts : s->ropts, k, klen, &n, &lerr);
    if (take_lerr(lerr, err, errlen) < 0)
        return -1;
    if (!lv)
        return 0;
    rc = copy_out(lv, n, val, vlen, err, errlen);
    leveldb_free(lv);
    return rc;
}

/* ---- writing ---------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *what, int e)
{
    tkv_datadir_err(err, errlen, what, strerror(e));
    return -1;
}

/* Freezes the live buffer for the flusher and starts a new log file. With
 * wmu held; waits while the previous frozen buffer is still being flushed
 * (the writer's back-pressure, as LevelDB's). */
static int freeze(tkv_store *s, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    while (s->imm && !s->bg_failed)
        pthread_cond_wait(&s->cv, &s->mu);
    if (s->bg_failed) {
        tkv_datadir_err(err, errlen, s->bg_err, NULL);
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    pthread_mutex_unlock(&s->mu);
    /* The old file's unsynced tail is synced now: a later sync (--fsync
     * everysec's) reaches only the new file. */
    if (s->log_unsynced && fdatasync(s->log_fd) < 0) {
        s->log_failed = true;
        return fail(err, errlen, "cannot sync the log", errno);
    }
    s->log_unsynced = false;
    tkv_memtab *fresh = tkv_memtab_new();
    if (!fresh) {
        tkv_datadir_err(err, errlen, "out of memory", NULL);
        return -1;
    }
    int fd = log_create(s, s->log_num + 1, err, errlen);
    if (fd < 0) {
        tkv_memtab_unref(fresh);
        return -1;
    }
    close(s->log_fd);
    s->log_fd = fd;
    s->log_num++;
    pthread_mutex_lock(&s->mu);
    s->imm = s->mem;
    s->imm_log = s->mem_log;
    s->mem = fresh;
    s->mem_log = s->log_num;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Adds a batch's records to the write buffer TKV_MEMTAB_PREFETCH_MAX at a
 * time, each group's cache misses prefetched together first: a batch of
 * new keys spread over a big buffer otherwise waits for memory at nearly
 * every step of every insert, one miss after another. */
typedef struct inserter {
    tkv_store *s;
    int n;
    struct {
        uint8_t type;
        const uint8_t *k, *v;
        size_t klen, vlen;
    } r[TKV_MEMTAB_PREFETCH_MAX];
} inserter;

static void inserter_drain(inserter *in)
{
    const uint8_t *k[TKV_MEMTAB_PREFETCH_MAX];
    size_t kn[TKV_MEMTAB_PREFETCH_MAX];
    int nk = 0;
    for (int i = 0; i < in->n; i++)
        if (in->r[i].type != REC_DROP) {
            k[nk] = in->r[i].k;
            kn[nk++] = in->r[i].klen;
        }
    tkv_memtab_prefetch(in->s->mem, k, kn, nk);
    for (int i = 0; i < in->n; i++)
        mem_add(in->s, in->r[i].type, in->r[i].k, in->r[i].klen, in->r[i].v, in->r[i].vlen);
    in->n = 0;
}

static void insert_one(void *ctx, uint8_t type, const uint8_t *k, size_t klen, const uint8_t *v,
                       size_t vlen)
{
    inserter *in = ctx;
    in->r[in->n].type = type;
    in->r[in->n].k = k;
    in->r[in->n].klen = klen;
    in->r[in->n].v = v;
    in->r[in->n].vlen = vlen;
    if (++in->n == TKV_MEMTAB_PREFETCH_MAX)
        inserter_drain(in);
}

int tkv_store_write(tkv_store *s, tkv_store_batch *b, bool sync, char *err, size_t errlen)
{
    if (closed(s, err, errlen) < 0)
        return -1;
    pthread_mutex_lock(&s->wmu);
    int rc = -1;
    if (s->log_failed) {
        tkv_datadir_err(err, errlen, "IO error: the log failed a write; the store must be reopened",
                        NULL);
        goto out;
    }
    if (atomic_load(&s->bg_failed)) {
        tkv_datadir_err(err, errlen, s->bg_err, NULL);
        goto out;
    }
    if (b->buf.len - LOG_HEADER > UINT32_MAX) {
        /* The log record's length is 32 bits. The engine's batches are
         * bounded far below by --max-frame and the loop's pipeline. */
        tkv_datadir_err(err, errlen, "a batch bigger than 4 GiB cannot be logged", NULL);
        goto out;
    }
    if (b->records && tkv_memtab_bytes(s->mem) >= s->write_buffer && tkv_memtab_count(s->mem) &&
        freeze(s, err, errlen) < 0)
        goto out;
    if (b->records) {
        uint8_t *rec = b->buf.data;
        size_t len = b->buf.len - LOG_HEADER, done = 0;
        tkv_store_be32(rec, (uint32_t)len);
        tkv_store_be32(rec + 4, tkv_crc32c(0, rec + LOG_HEADER, len));
        while (done < b->buf.len) {
            ssize_t w = write(s->log_fd, rec + done, b->buf.len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                /* A short write is followed by another, which says why it
                 * stopped; what reached the file is a torn record that a
                 * replay cuts off. */
                s->log_failed = true;
                fail(err, errlen, "IO error: cannot write the log", w < 0 ? errno : ENOSPC);
                goto out;
            }
            done += (size_t)w;
        }
        s->log_unsynced = true;
    }
    if (sync && s->log_unsynced) {
        if (fdatasync(s->log_fd) < 0) {
            s->log_failed = true;
            fail(err, errlen, "IO error: cannot sync the log", errno);
            goto out;
        }
        s->log_unsynced = false;
    }
    if (b->records) {
        inserter in = {.s = s};
        records_walk(b->buf.data + LOG_HEADER, b->buf.len - LOG_HEADER, &in, insert_one);
        inserter_drain(&in);
        atomic_store_explicit(&s->seq, s->seq_next, memory_order_release);
    }
    if (s->observer)
        s->observer(s->observer_ctx, b, sync);
    rc = 0;
out:
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

void tkv_store_set_observer(tkv_store *s, tkv_store_observer fn, void *ctx)
{
    s->observer = fn;
    s->observer_ctx = ctx;
}

int tkv_store_flush(tkv_store *s, char *err, size_t errlen)
{
    if (closed(s, err, errlen) < 0)
        return -1;
    pthread_mutex_lock(&s->wmu);
    int rc = 0;
    if (s->log_failed) {
        tkv_datadir_err(err, errlen, "IO error: the log failed a write; the store must be reopened",
                        NULL);
        rc = -1;
    } else if (tkv_memtab_count(s->mem))
        rc = freeze(s, err, errlen);
    if (rc == 0) {
        pthread_mutex_lock(&s->mu);
        while (s->imm && !s->bg_failed)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->bg_failed) {
            tkv_datadir_err(err, errlen, s->bg_err, NULL);
            rc = -1;
        }
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* ---- the flusher ------------------------------------------------------------------ */

/* A version of the buffer in a flush (del: a delete). */
typedef struct fver {
    uint64_t ts;
    const uint8_t *blob;
    uint32_t len;
    bool del;
} fver;

typedef struct flush {
    tkv_store *s;
    leveldb_iterator_t *li;
    leveldb_writebatch_t *wb;
    size_t wb_bytes;
    fver *grp;
    size_t ngrp, capgrp;
    tkv_chunk_ent *out;
    size_t capout;
    tkv_buf chunk, prefix;
    tkv_chunk_ent ents[TKV_CHUNK_DECODE_MAX];
    uint8_t *key;
    size_t kcap;
    bool positioned; /* li has been sought (flush_position) */
    int rc;          /* of the drops' pass */
    char err[256];
} flush;

static void fv_push(fver **a, size_t *n, size_t *cap, fver v)
{
    if (tkv_grow(a, cap, *n + 1, sizeof **a, 256) < 0)
        oom();
    (*a)[(*n)++] = v;
}

static int flush_write(flush *f, bool sync)
{
    char *lerr = NULL;
    leveldb_write(f->s->db, sync ? f->s->wsync : f->s->wnosync, f->wb, &lerr);
    leveldb_writebatch_clear(f->wb);
    f->wb_bytes = 0;
    if (lerr) {
        snprintf(f->err, sizeof f->err, "IO error: flushing the write buffer to LevelDB: %s", lerr);
        leveldb_free(lerr);
        return -1;
    }
    return 0;
}

/* Appends the merge of the buffer's versions grp[a0, a1) with a chunk's
 * (ents[0, n), both newest first) to f->out: the buffer wins on equal
 * timestamps and its deletes remove. */
static size_t merge_run(flush *f, size_t a0, size_t a1, const tkv_chunk_ent *ents, size_t n)
{
    size_t need = (a1 - a0) + n, m = 0, a = a0, b = 0;
    if (tkv_grow(&f->out, &f->capout, need, sizeof *f->out, 256) < 0)
        oom();
    if (!ents) {
        /* No chunk: the buffer's versions alone, deletes dropped. */
        for (; a < a1; a++)
            if (!f->grp[a].del)
                f->out[m++] = (tkv_chunk_ent){
                    .ts = f->grp[a].ts, .blob = f->grp[a].blob, .len = f->grp[a].len};
        return m;
    }
    while (a < a1 || b < n) {
        if (b == n || (a < a1 && f->grp[a].ts >= ents[b].ts)) {
            const fver *v = &f->grp[a++];
            if (b < n && ents[b].ts == v->ts)
                b++;
            if (!v->del)
                f->out[m++] = (tkv_chunk_ent){.ts = v->ts, .blob = v->blob, .len = v->len};
        } else
            f->out[m++] = ents[b++];
    }
    return m;
}

/* Puts f->out[0, n) into the batch as chunks of at most TKV_CHUNK_MAX. */
static void write_chunks(flush *f, size_t plen, size_t n)
{
    size_t kn = plen + 8;
    for (size_t i = 0; i < n; i += TKV_CHUNK_MAX) {
        size_t m = n - i < TKV_CHUNK_MAX ? n - i : TKV_CHUNK_MAX;
        tkv_buf_reset(&f->chunk);
        if (tkv_chunk_encode(&f->chunk, f->out + i, m) < 0)
            oom();
        tkv_store_be64(f->key + plen, ~f->out[i + m - 1].ts);
        leveldb_writebatch_put(f->wb, (const char *)f->key, kn, (const char *)f->chunk.data,
                               f->chunk.len);
        f->wb_bytes += kn + f->chunk.len;
    }
}

/* Positions the flush's LevelDB cursor on the first record >= x. The
 * targets of one flush only grow (keys in order, and within a key the runs
 * go newest first, which is ascending in encodings), and the cursor only
 * moves forward, so every record before it is below x: when it is already
 * >= x it is the answer, and when it is a few records short, stepping is
 * far cheaper than a seek (which searches every level and decompresses a
 * block of each) - the flush of many keys with a version or two each
 * touches most of LevelDB's keys in order. */
#define FLUSH_STEPS 8

static void flush_position(flush *f, const uint8_t *x, size_t xn)
{
    if (f->positioned) {
        for (int i = 0; leveldb_iter_valid(f->li); i++) {
            size_t kn;
            const uint8_t *k = (const uint8_t *)leveldb_iter_key(f->li, &kn);
            if (key_cmp(k, kn, x, xn) >= 0)
                return;
            if (i == FLUSH_STEPS)
                break;
            leveldb_iter_next(f->li);
        }
        if (!leveldb_iter_valid(f->li)) {
            char *lerr = NULL;
            leveldb_iter_get_error(f->li, &lerr);
            if (!lerr)
                return; /* past the last record: so is x */
            leveldb_free(lerr);
        }
    }
    leveldb_iter_seek(f->li, (const char *)x, xn);
    f->positioned = true;
}

/* Writes one key's versions from the buffer (f->grp, newest first) into
 * LevelDB, in runs: from the newest version not yet written, one seek finds
 * the chunk with the largest oldest timestamp at or below it. If the
 * version falls inside that chunk, the chunk is merged with every buffered
 * version in its range and written again; otherwise the buffered versions
 * above the chunk (the usual case: time moves forward) become new chunks of
 * their own. So a flush rewrites only the chunks its versions land in - a
 * sweep deleting a key's oldest version rewrites the oldest chunk, not the
 * key's history. */
static int flush_key(flush *f, const uint8_t *prefix, size_t plen, bool newest)
{
    size_t kn = plen + 8;
    if (tkv_grow(&f->key, &f->kcap, kn, 1, 64) < 0)
        oom();
    memcpy(f->key, prefix, plen);
    if (newest) {
        /* Every version newer than all the store held when it was written:
         * nothing in LevelDB to merge with. */
        write_chunks(f, plen, merge_run(f, 0, f->ngrp, NULL, 0));
        return 0;
    }
    for (size_t i = 0; i < f->ngrp;) {
        uint64_t t = f->grp[i].ts;
        tkv_store_be64(f->key + plen, ~t);
        flush_position(f, f->key, kn);
        long n = 0;
        uint64_t oldest = 0;
        if (leveldb_iter_valid(f->li)) {
            size_t lk, lv;
            const uint8_t *k = (const uint8_t *)leveldb_iter_key(f->li, &lk);
            if (lk == kn && memcmp(k, prefix, plen) == 0) {
                const uint8_t *v = (const uint8_t *)leveldb_iter_value(f->li, &lv);
                oldest = ~tkv_load_be64(k + plen);
                if ((n = tkv_chunk_decode(v, lv, oldest, f->ents)) < 0) {
                    char hex[65];
                    for (size_t x = 0; x < plen && x < 32; x++)
                        snprintf(hex + 2 * x, 3, "%02x", prefix[x]);
                    snprintf(f->err, sizeof f->err,
                             "Corruption: a malformed chunk record (key record %s%s, oldest "
                             "version %" PRIu64 ")",
                             hex, plen > 32 ? "..." : "", oldest);
                    return -1;
                }
            }
        } else {
            char *lerr = NULL;
            leveldb_iter_get_error(f->li, &lerr);
            if (lerr) {
                snprintf(f->err, sizeof f->err, "IO error: reading LevelDB during a flush: %s",
                         lerr);
                leveldb_free(lerr);
                return -1;
            }
        }
        size_t j = i, m;
        if (n > 0 && f->ents[0].ts >= t) {
            /* t is inside the chunk [oldest, newest]: rewrite it. */
            while (j < f->ngrp && f->grp[j].ts >= oldest)
                j++;
            tkv_store_be64(f->key + plen, ~oldest);
            leveldb_writebatch_delete(f->wb, (const char *)f->key, kn);
            f->wb_bytes += kn;
            m = merge_run(f, i, j, f->ents, (size_t)n);
        } else {
            /* Above that chunk (or no chunk at or below t): new chunks. */
            while (j < f->ngrp && (n == 0 || f->grp[j].ts > f->ents[0].ts))
                j++;
            m = merge_run(f, i, j, NULL, 0);
        }
        write_chunks(f, plen, m);
        i = j;
    }
    return 0;
}

/* Deletes every chunk of dropped prefix p from LevelDB. It runs before
 * the buffer's records are written, so the chunks the flush writes for p
 * (versions after the drop) come later and stay. */
static void flush_drop(void *ctx, const uint8_t *p, size_t pn)
{
    flush *f = ctx;
    if (f->rc != 0)
        return;
    size_t kn = pn + 8;
    if (tkv_grow(&f->key, &f->kcap, kn, 1, 64) < 0)
        oom();
    memcpy(f->key, p, pn);
    memset(f->key + pn, 0, 8);
    leveldb_iter_seek(f->li, (const char *)f->key, kn);
    for (; leveldb_iter_valid(f->li); leveldb_iter_next(f->li)) {
        size_t lk;
        const char *k = leveldb_iter_key(f->li, &lk);
        if (lk != kn || memcmp(k, p, pn) != 0)
            break;
        leveldb_writebatch_delete(f->wb, k, lk);
        f->wb_bytes += lk;
        if (f->wb_bytes >= FLUSH_BATCH_BYTES && (f->rc = flush_write(f, true)) < 0)
            return;
    }
    char *lerr = NULL;
    leveldb_iter_get_error(f->li, &lerr);
    if (lerr) {
        snprintf(f->err, sizeof f->err, "IO error: reading LevelDB during a flush: %s", lerr);
        leveldb_free(lerr);
        f->rc = -1;
    }
}

static int flush_table(tkv_store *s, tkv_memtab *m, char *err, size_t errlen)
{
    flush f = {.s = s};
    f.li = leveldb_create_iterator(s->db, s->ropts);
    f.wb = leveldb_writebatch_create();
    tkv_memtab_each_dropped(m, &f, flush_drop);
    int rc = f.rc;
    tkv_memtab_iter it;
    tkv_memtab_iter_init(&it, m, UINT64_MAX);
    tkv_memtab_iter_seek_first(&it);
    while (rc == 0 && tkv_memtab_iter_valid(&it)) {
        size_t kn, vn;
        const uint8_t *k = tkv_memtab_iter_key(&it, &kn);
        const uint8_t *v = tkv_memtab_iter_value(&it, &vn);
        if (!tkv_chunk_is_version(k, kn)) {
            if (tkv_memtab_iter_is_del(&it))
                leveldb_writebatch_delete(f.wb, (const char *)k, kn);
            else
                leveldb_writebatch_put(f.wb, (const char *)k, kn, (const char *)v, vn);
            f.wb_bytes += kn + vn;
            tkv_memtab_iter_next(&it);
        } else {
            /* Every version of this key in the buffer: same prefix, same
             * length (so also a version encoding). */
            /* The cursor's key buffer changes as it moves: keep the prefix. */
            size_t plen = kn - 8;
            tkv_buf_reset(&f.prefix);
            if (tkv_buf_append(&f.prefix, k, plen) < 0)
                oom();
            const uint8_t *prefix = f.prefix.data;
            /* After a drop LevelDB holds nothing of the key (the drops'
             * pass deleted it): as if every version were the newest. */
            bool newest = tkv_memtab_iter_group_newest(&it) || tkv_memtab_iter_group_dropped(&it);
            f.ngrp = 0;
            do {
                fver g = {.ts = ~tkv_load_be64(k + plen),
                          .blob = v,
                          .len = (uint32_t)vn,
                          .del = tkv_memtab_iter_is_del(&it)};
                fv_push(&f.grp, &f.ngrp, &f.capgrp, g);
                tkv_memtab_iter_next(&it);
                if (!tkv_memtab_iter_valid(&it))
                    break;
                k = tkv_memtab_iter_key(&it, &kn);
                v = tkv_memtab_iter_value(&it, &vn);
            } while (kn == plen + 8 && memcmp(k, prefix, plen) == 0);
            rc = flush_key(&f, prefix, plen, newest);
        }
        /* Every write synced: LevelDB syncs only the log file it writes
         * to, and closes a full one unsynced; the log files this flush
         * covers are deleted after it. */
        if (rc == 0 && f.wb_bytes >= FLUSH_BATCH_BYTES)
            rc = flush_write(&f, true);
        if (rc == 0) {
            if (atomic_load(&s->flusher_quit)) {
                /* Closing: the log still holds everything; the next open
                 * replays it. */
                snprintf(f.err, sizeof f.err, "closing");
                rc = 1;
            }
        }
    }
    /* Synced before the log files are deleted: the tables must hold what
     * the log did. */
    if (rc == 0)
        rc = flush_write(&f, true);
    if (rc < 0)
        tkv_datadir_err(err, errlen, f.err, NULL);
    tkv_memtab_iter_deinit(&it);
    tkv_buf_deinit(&f.prefix);
    leveldb_iter_destroy(f.li);
    leveldb_writebatch_destroy(f.wb);
    free(f.grp);
    free(f.out);
    free(f.key);
    tkv_buf_deinit(&f.chunk);
    return rc;
}

static void *flusher_main(void *arg)
{
    tkv_store *s = arg;
    pthread_setname_np(pthread_self(), "tkv-flusher");
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->flusher_quit && !(s->imm && !s->bg_failed))
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->flusher_quit)
            break;
        tkv_memtab *m = s->imm;
        uint64_t from = s->imm_log, to = s->mem_log;
        pthread_mutex_unlock(&s->mu);
        char err[256];
        int rc = flush_table(s, m, err, sizeof err);
        if (rc == 0)
            rc = flushed_write(s, to, err, sizeof err);
        if (rc == 0)
            log_remove_range(s, from, to);
        pthread_mutex_lock(&s->mu);
        if (rc == 0) {
            s->imm = NULL;
            tkv_memtab_unref(m);
            s->flushes++;
        } else if (rc < 0) {
            s->bg_failed = true;
            snprintf(s->bg_err, sizeof s->bg_err, "%s", err);
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
