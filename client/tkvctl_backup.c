/*
 * tkvctl_backup.c - tkvctl's commands over the whole store: digest, backup
 * and verify.
 *
 * backup writes FILE.partial and renames it to FILE only once the stream
 * has passed every check (libtkvclient verifies lengths, counts, digest
 * and checksum as it arrives) and is on disk, so a FILE that exists is a
 * whole backup. A terminal on stderr gets a running byte count.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "clock.h"
#include "tkvctl.h"

static void print_digest(const cli *c, const tkv_digest_info *d, FILE *f, const char *file)
{
    char hex[2 * TKV_DIGEST_LEN + 1], t[TS_TEXT_MAX];
    tkv_bk_hex(d->digest, hex);
    if (c->json) {
        json_out j;
        json_begin(&j, f);
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
    tkv_digest_info d;
    if (tkv_digest(c->ctx, at, t != NULL, &d) != TKV_OK)
        return server_fail(c);
    print_digest(c, &d, stdout, NULL);
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
    print_digest(c, &d, to_stdout ? stderr : stdout, file);
    return 0;
}

/* Reads a backup file through the format's reader: 0 with *d set, or the
 * exit status after saying what is wrong. */
static int read_backup_file(const char *file, tkv_bk_reader *bk, tkv_digest_info *d,
                            int (*rec_fn)(void *arg, const tkv_bk_rec *r), void *arg)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f)
        return fail("cannot open %s: %s", file, strerror(errno));
    tkv_bk_reader_init(bk, UINT32_MAX - TKV_BK_VERSION_FIXED);
    tkv_buf hold = {0};
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
            if (rc == TKV_BK_REC && rec_fn && rec_fn(arg, &r) != 0)
                rc = TKV_BK_ERR;
        } while (rc == TKV_BK_REC);
        tkv_buf_consume(&hold, at);
    }
    bool bad_read = ferror(f);
    if (f != stdin)
        fclose(f);
    tkv_buf_deinit(&hold);
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
    int rc = read_backup_file(a->pos[0], &bk, &d, NULL, NULL);
    if (rc)
        return rc;
    print_digest(c, &d, stdout, a->pos[0]);
    return 0;
}
