/*
 * stream.c - implements stream.h: DIGEST and BACKUP driven over a dump.
 *
 * Both are the same walk through protocol/backup.h's writer: BACKUP keeps
 * its bytes and sends them, DIGEST only hashes. That is what makes
 * DIGEST's answer and a backup's trailer digest one definition - SHA-256
 * of the backup records of the visible state - rather than two that could
 * drift apart.
 *
 * The walk reads LevelDB, so its steps run on a helper thread of the
 * stream's own, over the dump's snapshot; the loop only opens and closes
 * the dump (they touch the engine) and turns finished steps into frames.
 * One step at a time: the loop hands a step over, the helper runs it and
 * wakes the loop, the loop frames what it produced and - if the client has
 * room - hands over the next. So a slow reader still stops the walk, and
 * the work in flight is one step. Without a thread (it could not start, or
 * no wake-up was given) the steps run on the loop, as the sweep's do.
 */
#include "stream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "backup.h"
#include "dump.h"
#include "repl.h"
#include "reply.h"
#include "wire.h"

/* Records one step reads at most, and backup bytes it produces at most
 * (beyond one record): well under a millisecond of work, so a stream
 * that is told to stop (its reader is slow, the server stops) stops
 * soon, and what it holds in pend stays small. */
#define STEP_RECORDS 512
#define STEP_BYTES (256 * 1024)

/* What a step left (tkv_stream.result). */
enum { STEP_MORE, STEP_DONE, STEP_FAILED, STEP_NOMEM };

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
    int result;   /* of the last step (STEP_*) */
    uint8_t digest[TKV_SHA256_LEN];
    tkv_eng_repl state; /* PSYNC: the state the snapshot is at */
    uint64_t records;   /* PSYNC: records sent */
    /* The helper thread that runs the steps; while `busy` it owns the
     * dump, the writer, pend, result and digest, otherwise the loop does
     * (mu orders the hand-overs). */
    void (*wake)(void *ctx); /* tells the loop a step is done (any thread) */
    void *wake_ctx;
    bool helper; /* th runs */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy, quit; /* mu */
};

static void stop_helper(tkv_stream *s);

tkv_stream *tkv_stream_new(tkv_engine *e, tkv_cmd cmd, bool has_at, uint64_t at, size_t max_chunk,
                           void (*wake)(void *ctx), void *wake_ctx)
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
    s->wake = wake;
    s->wake_ctx = wake_ctx;
    return s;
}

bool tkv_stream_ready(tkv_stream *s)
{
    if (!s->dump)
        return tkv_engine_settled_epoch(s->e) >= s->need_epoch;
    if (!s->helper)
        return true;
    pthread_mutex_lock(&s->mu);
    bool idle = !s->busy;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

void tkv_stream_free(tkv_stream *s)
{
    if (!s)
        return;
    stop_helper(s); /* waits for a step under way: a bounded one */
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

bool tkv_stream_failed(const tkv_stream *s) { return s->result == STEP_FAILED; }

bool tkv_stream_repl_state(const tkv_stream *s, tkv_eng_repl *out)
{
    if (!s->dump)
        return false;
    *out = s->state;
    return true;
}

int tkv_stream_abort(tkv_stream *s, tkv_buf *out, const char *why)
{
    return end_with_error(out, TKV_ST_BUSY, tkv_cmd_name(s->cmd), why);
}

int tkv_stream_fail(tkv_stream *s, tkv_buf *out, const char *why)
{
    return end_with_error(out, tkv_wire_status(TKV_E_STORAGE), tkv_cmd_name(s->cmd), why);
}

/* Opens the dump and starts the writer: 0, -1 if the dump could not be
 * opened (errmsg says why), -2 if out of memory, -3 if the dump failed
 * (it says why). */
static int open_dump(tkv_stream *s)
{
    if (!s->has_at)
        s->at = tkv_engine_now(s->e);
    if (s->cmd == TKV_CMD_PSYNC)
        s->pend.len = 0;
    s->dump = tkv_engine_dump_open(s->e, s->at);
    if (!s->dump)
        return -1;
    if (s->cmd == TKV_CMD_PSYNC) {
        if (tkv_engine_dump_repl(s->dump, &s->state) < 0)
            return -3;
        if (!s->state.id[0]) { /* nothing written since the id was made */
            tkv_engine_repl_get(s->e, &s->state);
            s->state.off = 0;
        }
        return tkv_repl_put_id(&s->pend, TKV_RF_FULL, s->state.id, s->state.off) < 0 ? -2 : 0;
    }
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

/* PSYNC's step: store records as they are, one "S" frame. */
static void raw_step(tkv_stream *s)
{
    tkv_repl_wr w;
    tkv_repl_begin(&w, &s->pend, TKV_RF_SNAP, 0);
    int rc = 1;
    for (int i = 0; i < STEP_RECORDS && tkv_repl_size(&w) < STEP_BYTES; i++) {
        const uint8_t *k, *v;
        size_t klen, vlen;
        rc = tkv_engine_dump_next_raw(s->dump, &k, &klen, &v, &vlen);
        if (rc <= 0)
            break;
        tkv_repl_add(&w, k, klen, v, vlen);
    }
    uint32_t n = w.n;
    if (tkv_repl_end(&w) < 0) {
        s->result = STEP_NOMEM;
        return;
    }
    if (n == 0) /* an empty frame says nothing */
        s->pend.len = w.start;
    s->records += n;
    if (rc < 0)
        s->result = STEP_FAILED;
    else if (rc == 0)
        s->result = tkv_repl_put_end(&s->pend, s->records) < 0 ? STEP_NOMEM : STEP_DONE;
    else
        s->result = STEP_MORE;
}

/* One bounded piece of the walk, by whichever thread owns the stream's
 * dump and writer now: sets s->result. */
static void walk_step(tkv_stream *s)
{
    if (s->cmd == TKV_CMD_PSYNC) {
        raw_step(s);
        return;
    }
    tkv_buf *keep = s->cmd == TKV_CMD_BACKUP ? &s->pend : NULL;
    uint64_t start = s->w.bytes;
    for (int i = 0; i < STEP_RECORDS && s->w.bytes - start < STEP_BYTES; i++) {
        tkv_dump_rec r;
        int rc = tkv_engine_dump_next(s->dump, &r);
        if (rc < 0) {
            s->result = STEP_FAILED;
            return;
        }
        if (rc == 0) {
            s->result = tkv_bk_write_end(&s->w, keep, s->digest) < 0 ? STEP_NOMEM : STEP_DONE;
            return;
        }
        tkv_bk_rec b = bk_rec(&r);
        if (tkv_bk_write_rec(&s->w, keep, &b) < 0) {
            s->result = STEP_NOMEM;
            return;
        }
    }
    s->result = STEP_MORE;
}

static void *helper_main(void *arg)
{
    tkv_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->busy && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->quit)
            break;
        pthread_mutex_unlock(&s->mu);
        walk_step(s);
        pthread_mutex_lock(&s->mu);
        s->busy = false;
        s->wake(s->wake_ctx);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Hands the next step to the helper, or, without one, runs it now. */
static void kick(tkv_stream *s)
{
    if (!s->helper) {
        walk_step(s);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->busy = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The dump is open: starts the helper thread (without one, the steps run
 * on the loop, as the sweep's do). */
static void start_helper(tkv_stream *s)
{
    if (!s->wake)
        return;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->helper = pthread_create(&s->th, NULL, helper_main, s) == 0;
    if (!s->helper) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
}

static void stop_helper(tkv_stream *s)
{
    if (!s->helper)
        return;
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    s->helper = false;
}

/* What the last step left, as frames: 1 when the stream has ended. */
static int deliver(tkv_stream *s, tkv_buf *out)
{
    const char *name = tkv_cmd_name(s->cmd);
    switch (s->result) {
    case STEP_NOMEM: return -1;
    case STEP_FAILED:
        return end_with_error(out, tkv_wire_status(TKV_E_STORAGE), name,
                              tkv_engine_dump_error(s->dump));
    case STEP_DONE:
        if (s->cmd == TKV_CMD_PSYNC)
            return tkv_buf_append(out, s->pend.data, s->pend.len) < 0 ? -1 : 1;
        if (s->cmd == TKV_CMD_BACKUP)
            return send_chunks(s, out, true) < 0 ? -1 : 1;
        return tkv_rep_put_digest(out, s->digest, sizeof s->digest, s->at, s->w.keys,
                                  s->w.versions) < 0
                   ? -1
                   : 1;
    default:
        if (s->cmd == TKV_CMD_PSYNC) {
            int rc = tkv_buf_append(out, s->pend.data, s->pend.len);
            tkv_buf_reset(&s->pend);
            return rc < 0 ? -1 : 0;
        }
        return s->cmd == TKV_CMD_BACKUP && send_chunks(s, out, false) < 0 ? -1 : 0;
    }
}

int tkv_stream_step(tkv_stream *s, tkv_buf *out)
{
    if (!s->dump) {
        if (!tkv_stream_ready(s))
            return 0;
        int rc = open_dump(s);
        if (rc == -2)
            return -1;
        if (rc == -3)
            return end_with_error(out, tkv_wire_status(TKV_E_STORAGE), tkv_cmd_name(s->cmd),
                                  tkv_engine_dump_error(s->dump));
        if (rc < 0)
            return end_with_error(out, tkv_wire_status(TKV_E_STORAGE), tkv_cmd_name(s->cmd),
                                  tkv_engine_errmsg(s->e));
        start_helper(s);
        s->result = STEP_MORE; /* nothing produced yet */
    } else if (!tkv_stream_ready(s)) {
        return 0; /* the helper is on a step */
    }
    /* The helper is idle: the stream is the loop's until the next kick. */
    int rc = deliver(s, out);
    if (rc == 0)
        kick(s);
    if (rc == 0 && !s->helper)
        rc = deliver(s, out);
    return rc;
}
