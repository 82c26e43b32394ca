/*
 * tkvctl_backup.c - tkvctl's commands over the whole store: digest, backup,
 * verify and restore.
 *
 * backup writes FILE.partial and renames it to FILE only once the stream
 * has passed every check (libtkvclient verifies lengths, counts, digest
 * and checksum as it arrives) and is on disk, so a FILE that exists is a
 * whole backup. A terminal on stderr gets a running byte count.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "clock.h"
#include "tkvctl.h"

/* Prints a digest and its counts; r (may be NULL) adds what a restore did. */
static void print_digest(const cli *c, const tkv_digest_info *d, FILE *f, const char *file,
                         const tkv_restore_info *r)
{
    char hex[2 * TKV_DIGEST_LEN + 1], t[TS_TEXT_MAX];
    tkv_bk_hex(d->digest, hex);
    if (c->json) {
        json_out j;
        json_begin(&j, f);
        if (r) {
            json_u64(&j, "written", r->written);
            json_u64(&j, "skipped", r->skipped);
        }
        if (file)
            json_str(&j, "file", file);
        json_str(&j, "digest", hex);
        json_ts(c, &j, "at", true, d->at);
        json_u64(&j, "keys", d->keys);
        json_u64(&j, "versions", d->versions);
        if (file)
            json_u64(&j, "bytes", d->bytes);
        json_end(&j);
        return;
    }
    if (r)
        fprintf(f, "written: %" PRIu64 "\nskipped: %" PRIu64 "\n", r->written, r->skipped);
    fprintf(f, "digest: %s\nat: %s\nkeys: %" PRIu64 "\nversions: %" PRIu64 "\n", hex,
            ts_text(c, d->at, true, t), d->keys, d->versions);
    if (file)
        fprintf(f, "bytes: %" PRIu64 "\n", d->bytes);
}

int run_digest(cli *c, const args *a)
{
    const char *t = opt(a, "at");
    uint64_t at = 0;
    if (t && parse_time(t, "--at", &at))
        return EXIT_ERROR;
    if (connect_cli(c))
        return EXIT_ERROR;
    /* DIGEST answers once, after walking the whole store: a large one
     * takes longer than the default timeout (the server keeps the
     * connection alive meanwhile). -t still bounds it when given. */
    if (!c->timeout_given)
        tkv_set_timeout(c->ctx, 0);
    tkv_digest_info d;
    if (tkv_digest(c->ctx, at, t != NULL, &d) != TKV_OK)
        return server_fail(c);
    print_digest(c, &d, stdout, NULL, NULL);
    return 0;
}

typedef struct sink {
    FILE *f;
    bool progress; /* stderr is a terminal */
    uint64_t bytes;
    uint64_t shown_us; /* when the count was last shown */
} sink;

static int take_chunk(void *arg, const uint8_t *p, size_t n)
{
    sink *s = arg;
    if (fwrite(p, 1, n, s->f) != n)
        return -1;
    s->bytes += n;
    uint64_t now = tkv_clock_mono_us();
    if (s->progress && now - s->shown_us > 200000) {
        fprintf(stderr, "\rbackup: %.1f MiB received", (double)s->bytes / (1024.0 * 1024.0));
        s->shown_us = now;
    }
    return 0;
}

/* Flushes and syncs a finished file; a backup that may not be on disk is
 * not reported as taken. */
static int close_synced(FILE *f, const char *name)
{
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = errno;
        fclose(f);
        return fail("cannot write %s: %s", name, strerror(e));
    }
    if (fclose(f) != 0)
        return fail("cannot write %s: %s", name, strerror(errno));
    return 0;
}

int run_backup(cli *c, const args *a)
{
    const char *file = a->pos[0];
    bool to_stdout = strcmp(file, "-") == 0;
    char part[4096];
    if (!to_stdout && snprintf(part, sizeof part, "%s.partial", file) >= (int)sizeof part)
        return fail("backup: file name too long");
    if (connect_cli(c))
        return EXIT_ERROR;
    sink s = {.f = to_stdout ? stdout : fopen(part, "wb"), .progress = isatty(STDERR_FILENO)};
    if (!s.f)
        return fail("cannot create %s: %s", part, strerror(errno));
    tkv_digest_info d;
    int rc = tkv_backup(c->ctx, take_chunk, &s, &d);
    if (s.progress)
        fputs("\r\033[K", stderr);
    if (rc != TKV_OK) {
        /* A write error stops the stream through take_chunk: say which. */
        const char *why = ferror(s.f) ? strerror(errno) : tkv_errstr(c->ctx);
        fail("backup failed%s: %s", to_stdout ? " (standard output holds no backup)" : "", why);
        if (!to_stdout) {
            fclose(s.f);
            unlink(part);
        }
        return EXIT_ERROR;
    }
    if (to_stdout) {
        if (fflush(stdout) != 0)
            return fail("cannot write standard output: %s", strerror(errno));
    } else if (close_synced(s.f, part) || rename(part, file) != 0) {
        int e = errno;
        unlink(part);
        return fail("cannot create %s: %s", file, strerror(e));
    }
    print_digest(c, &d, to_stdout ? stderr : stdout, file, NULL);
    return 0;
}

/* Reads a backup file through the format's reader: 0 with *d set, or the
 * exit status after saying what is wrong. */
/* Reads and checks a whole backup file: the reader's checks, and that its
 * keys come in byte order, each once, as a server writes them (the reader
 * cannot keep a key to compare with; restore refuses other orders). */
static int read_backup_file(const char *file, tkv_bk_reader *bk, tkv_digest_info *d)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f)
        return fail("cannot open %s: %s", file, strerror(errno));
    tkv_bk_reader_init(bk, UINT32_MAX - TKV_BK_VERSION_FIXED);
    tkv_buf hold = {0}, last = {0};
    bool any_key = false;
    uint8_t chunk[64 * 1024];
    tkv_bk_rc rc = TKV_BK_MORE;
    uint64_t bytes = 0;
    size_t n = 1;
    while (rc != TKV_BK_ERR && n > 0) {
        n = fread(chunk, 1, sizeof chunk, f);
        bytes += n;
        if (tkv_buf_append(&hold, chunk, n) < 0) {
            rc = TKV_BK_ERR;
            snprintf(bk->err, sizeof bk->err, "out of memory");
            break;
        }
        size_t at = 0, used;
        tkv_bk_rec r;
        do {
            rc = tkv_bk_read(bk, hold.data + at, hold.len - at, &r, &used);
            at += used;
            if (rc == TKV_BK_REC && r.type == TKV_BK_KEY) {
                size_t m = last.len < r.klen ? last.len : r.klen;
                int cmp = m ? memcmp(last.data, r.key, m) : 0;
                if (any_key && !(cmp < 0 || (cmp == 0 && last.len < r.klen))) {
                    snprintf(bk->err, sizeof bk->err, "its keys are not in byte order, each once");
                    rc = TKV_BK_ERR;
                } else {
                    tkv_buf_reset(&last);
                    if (tkv_buf_append(&last, r.key, r.klen) < 0) {
                        snprintf(bk->err, sizeof bk->err, "out of memory");
                        rc = TKV_BK_ERR;
                    }
                    any_key = true;
                }
            }
        } while (rc == TKV_BK_REC);
        tkv_buf_consume(&hold, at);
    }
    bool bad_read = ferror(f);
    if (f != stdin)
        fclose(f);
    tkv_buf_deinit(&hold);
    tkv_buf_deinit(&last);
    if (bad_read)
        return fail("cannot read %s: %s", file, strerror(errno));
    if (rc == TKV_BK_ERR)
        return fail("%s is not a valid backup: %s", file, bk->err[0] ? bk->err : "refused");
    if (rc != TKV_BK_DONE)
        return fail("%s is not a valid backup: it ends early (truncated at %" PRIu64 " bytes)",
                    file, bytes);
    *d =
        (tkv_digest_info){.at = bk->at, .keys = bk->keys, .versions = bk->versions, .bytes = bytes};
    memcpy(d->digest, bk->digest_out, TKV_DIGEST_LEN);
    return 0;
}

int run_verify(cli *c, const args *a)
{
    tkv_bk_reader bk;
    tkv_digest_info d;
    int rc = read_backup_file(a->pos[0], &bk, &d);
    if (rc)
        return rc;
    print_digest(c, &d, stdout, a->pos[0], NULL);
    return 0;
}

/* The whole backup in memory: FILE mapped, or standard input read. */
typedef struct held {
    uint8_t *p;
    size_t n;
    bool mapped;
} held;

/* Reads fd to its end into h. */
static int hold_stream(int fd, const char *name, held *h)
{
    tkv_buf b = {0};
    uint8_t chunk[64 * 1024];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            tkv_buf_deinit(&b);
            return fail("cannot read %s: %s", name, strerror(e));
        }
        if (tkv_buf_append(&b, chunk, (size_t)n) < 0) {
            tkv_buf_deinit(&b);
            return fail("out of memory reading %s", name);
        }
    }
    *h = (held){b.data, b.len, false};
    return 0;
}

/* FILE is mapped if it is a regular file; anything else (standard input,
 * a pipe given by name as bash's <(...) gives one) is read to its end: a
 * pipe's size says nothing of what it holds. */
static int hold_file(const char *file, held *h)
{
    if (strcmp(file, "-") == 0)
        return hold_stream(STDIN_FILENO, "standard input", h);
    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail("cannot open %s: %s", file, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        int rc = hold_stream(fd, file, h);
        close(fd);
        return rc;
    }
    *h = (held){NULL, (size_t)st.st_size, true};
    if (h->n > 0) {
        void *m = mmap(NULL, h->n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return fail("cannot map %s: %s", file, strerror(errno));
        }
        h->p = m;
    }
    close(fd);
    return 0;
}

static void release(held *h)
{
    if (h->mapped && h->p)
        munmap(h->p, h->n);
    else if (!h->mapped)
        free(h->p);
}

/* The whole backup checks out (tkv_restore checks again; this is to say
 * so before asking the server anything). */
static int verify_held(const char *file, const held *h)
{
    tkv_bk_reader bk;
    tkv_bk_reader_init(&bk, UINT32_MAX - TKV_BK_VERSION_FIXED);
    size_t at = 0, used;
    tkv_bk_rec r;
    tkv_bk_rc rc;
    do {
        rc = tkv_bk_read(&bk, h->p + at, h->n - at, &r, &used);
        at += used;
    } while (rc == TKV_BK_REC);
    if (rc == TKV_BK_DONE && at < h->n)
        rc = tkv_bk_read(&bk, h->p + at, h->n - at, &r, &used);
    if (rc == TKV_BK_ERR)
        return fail("%s is not a valid backup: %s", file, bk.err);
    if (rc != TKV_BK_DONE)
        return fail("%s is not a valid backup: it ends early (truncated at %zu bytes)", file, h->n);
    return 0;
}

/* Without --merge a restore goes into an empty server only: said before
 * anything is sent, rather than after the first keys went in. */
static int server_empty(cli *c, bool *empty)
{
    const tkv_bytes *keys;
    size_t n;
    tkv_bytes next;
    if (tkv_scan(c->ctx, NULL, 0, (tkv_bytes){0}, 1, &keys, &n, &next) != TKV_OK)
        return server_fail(c);
    *empty = n == 0;
    if (!*empty)
        return 0;
    /* SCAN lists keys with versions; a key with only a policy or a horizon
     * is state too. DIGEST counts every key a backup would hold - and on a
     * server SCAN found empty it has little to walk. */
    tkv_digest_info d;
    if (tkv_digest(c->ctx, 0, 0, &d) != TKV_OK)
        return server_fail(c);
    *empty = d.keys == 0;
    return 0;
}

int run_restore(cli *c, const args *a)
{
    const char *file = a->pos[0];
    bool merge = opt(a, "merge") != NULL;
    held h;
    if (hold_file(file, &h))
        return EXIT_ERROR;
    bool empty = true;
    int rc = verify_held(file, &h);
    if (rc == 0)
        rc = connect_cli(c);
    /* Each RESTORE request is bounded, but a server busy compacting may
     * take a while with one: a timeout cut half-way leaves part of the
     * backup written. Longer by default; -t still decides when given. */
    if (rc == 0 && !c->timeout_given)
        tkv_set_timeout(c->ctx, 600000);
    if (rc == 0 && !merge)
        rc = server_empty(c, &empty);
    if (rc == 0 && !empty)
        rc = fail("restore: the server holds keys; restore into an empty server, or give "
                  "--merge to keep what it has and add the rest");
    tkv_restore_info r;
    if (rc == 0 && tkv_restore(c->ctx, h.p, h.n, merge ? TKV_RESTORE_MERGE : 0, &r) != TKV_OK) {
        if (tkv_err(c->ctx) == TKV_EK_USAGE)
            rc = fail("%s: %s", file, tkv_errstr(c->ctx));
        else if (r.requests > 0)
            rc = fail("restore stopped after %" PRIu64 " versions: %s (run it again with "
                      "--merge to complete it)",
                      r.written, tkv_errstr(c->ctx));
        else
            rc = server_fail(c);
    }
    release(&h);
    if (rc)
        return rc;
    print_digest(c, &r.backup, stdout, file, &r);
    return 0;
}
