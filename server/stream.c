/*
 * stream.c - implements stream.h: DIGEST and BACKUP driven over a dump.
 *
 * Both are the same walk through protocol/backup.h's writer: BACKUP keeps
 * its bytes and sends them, DIGEST only hashes. That is what makes
 * DIGEST's answer and a backup's trailer digest one definition - SHA-256
 * of the backup records of the visible state - rather than two that could
 * drift apart.
 */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>

#include "backup.h"
#include "dump.h"
#include "reply.h"
#include "wire.h"

/* Records one step reads at most, and backup bytes it produces at most
 * (beyond one record): well under a millisecond of work. 4,096 records
 * took GETs beside back-to-back DIGESTs from 42k to 10k/s (p99 0.4 to
 * 3.4 ms) on the shared 2-core machine; 512 to 17k/s (p99 2.2 ms), and
 * DIGEST and BACKUP as fast as before (BENCHMARKS.md). */
#define STEP_RECORDS 512
#define STEP_BYTES (256 * 1024)

struct tkv_stream {
    tkv_engine *e;
    tkv_cmd cmd;
    bool has_at;
    uint64_t at;
    uint64_t need_epoch; /* the dump opens once this epoch is committed */
    size_t max_chunk;    /* backup bytes per frame */
    tkv_eng_dump *dump;
    tkv_bk_writer w;
    tkv_buf pend; /* BACKUP: bytes produced and not yet framed */
};

tkv_stream *tkv_stream_new(tkv_engine *e, tkv_cmd cmd, bool has_at, uint64_t at, size_t max_chunk)
{
    tkv_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->e = e;
    s->cmd = cmd;
    s->has_at = has_at;
    s->at = at;
    s->need_epoch = tkv_engine_epoch(e);
    s->max_chunk = max_chunk > 0 ? max_chunk : 1;
    return s;
}

bool tkv_stream_ready(const tkv_stream *s)
{
    return s->dump || tkv_engine_settled_epoch(s->e) >= s->need_epoch;
}

void tkv_stream_free(tkv_stream *s)
{
    if (!s)
        return;
    tkv_engine_dump_close(s->e, s->dump);
    tkv_buf_deinit(&s->pend);
    free(s);
}

static int end_with_error(tkv_buf *out, tkv_status st, const char *what, const char *why)
{
    char msg[320];
    snprintf(msg, sizeof msg, "%s: %s", what, why);
    return tkv_write_error(out, st, msg) < 0 ? -1 : 1;
}

int tkv_stream_abort(tkv_stream *s, tkv_buf *out, const char *why)
{
    return end_with_error(out, TKV_ST_BUSY, tkv_cmd_name(s->cmd), why);
}

/* Opens the dump and starts the writer: 0, -1 if the dump could not be
 * opened (errmsg says why), -2 if out of memory. */
static int open_dump(tkv_stream *s)
{
    if (!s->has_at)
        s->at = tkv_engine_now(s->e);
    s->dump = tkv_engine_dump_open(s->e, s->at);
    if (!s->dump)
        return -1;
    return tkv_bk_write_begin(&s->w, s->cmd == TKV_CMD_BACKUP ? &s->pend : NULL, s->at) < 0 ? -2
                                                                                            : 0;
}

/* The dump's record as a backup record. */
static tkv_bk_rec bk_rec(const tkv_dump_rec *r)
{
    if (r->is_key)
        return (tkv_bk_rec){.type = TKV_BK_KEY,
                            .key = r->key,
                            .klen = r->klen,
                            .own_policy = r->own_policy,
                            .policy_versions = r->policy.versions,
                            .policy_age = r->policy.age_us,
                            .horizon = r->horizon};
    return (tkv_bk_rec){.type = TKV_BK_VER,
                        .ts = r->ts,
                        .tombstone = r->tombstone,
                        .expires = r->expires,
                        .value = r->value,
                        .vlen = r->vlen};
}

/* Frames whole chunks of pend (all of it, the last frame marked, at the
 * end). */
static int send_chunks(tkv_stream *s, tkv_buf *out, bool end)
{
    size_t at = 0;
    while (s->pend.len - at >= s->max_chunk || (end && at < s->pend.len)) {
        size_t n = s->pend.len - at < s->max_chunk ? s->pend.len - at : s->max_chunk;
        bool last = end && at + n == s->pend.len;
        if (tkv_rep_put_chunk(out, s->pend.data + at, (uint32_t)n, last) < 0)
            return -1;
        at += n;
    }
    tkv_buf_consume(&s->pend, at);
    return 0;
}

static int finish(tkv_stream *s, tkv_buf *out)
{
    uint8_t digest[TKV_SHA256_LEN];
    bool backup = s->cmd == TKV_CMD_BACKUP;
    if (tkv_bk_write_end(&s->w, backup ? &s->pend : NULL, digest) < 0)
        return -1;
    if (backup)
        return send_chunks(s, out, true) < 0 ? -1 : 1;
    return tkv_rep_put_digest(out, digest, sizeof digest, s->at, s->w.keys, s->w.versions) < 0 ? -1
                                                                                               : 1;
}

int tkv_stream_step(tkv_stream *s, tkv_buf *out)
{
    if (!s->dump) {
        if (!tkv_stream_ready(s))
            return 0;
        int rc = open_dump(s);
        if (rc == -2)
            return -1;
        if (rc < 0)
            return end_with_error(out, tkv_wire_status(TKV_E_STORAGE), tkv_cmd_name(s->cmd),
                                  tkv_engine_errmsg(s->e));
    }
    tkv_buf *keep = s->cmd == TKV_CMD_BACKUP ? &s->pend : NULL;
    uint64_t start = s->w.bytes;
    for (int i = 0; i < STEP_RECORDS && s->w.bytes - start < STEP_BYTES; i++) {
        tkv_dump_rec r;
        int rc = tkv_engine_dump_next(s->dump, &r);
        if (rc < 0)
            return end_with_error(out, tkv_wire_status(TKV_E_STORAGE), tkv_cmd_name(s->cmd),
                                  tkv_engine_dump_error(s->dump));
        if (rc == 0)
            return finish(s, out);
        tkv_bk_rec b = bk_rec(&r);
        if (tkv_bk_write_rec(&s->w, keep, &b) < 0)
            return -1;
    }
    return keep && send_chunks(s, out, false) < 0 ? -1 : 0;
}
