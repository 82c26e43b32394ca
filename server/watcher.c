/*
 * watcher.c - implements watcher.h: a watcher reads the replication backlog.
 *
 * Why the backlog and not a queue of its own: the backlog already holds
 * every committed batch, encoded once, in commit order, with the offsets
 * a client resumes from; a watcher that reconnects resumes exactly as a
 * replica's partial resync does, and one more watcher costs its offset,
 * not a copy of the stream. Each batch is decoded once per watcher (two
 * short walks over bytes in memory, changes.c): a filter is per watcher,
 * so decoding once for all would only save work when many watch alike.
 *
 * "What is committed" is the engine's committed offset, not the backlog's
 * end: a replica appends its primary's frames when it stages them, and a
 * watcher must not be told of a batch its server could still roll back.
 */
#include "watcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "changes.h"
#include "frame.h"
#include "repl.h"
#include "reply.h"

/* Batch bytes one feed call reads at most: well under a millisecond. */
#define WATCH_TURN_BYTES (256 * 1024)

struct tkv_watcher {
    tkv_wfilter f;
    uint8_t *prefix; /* f.prefix's own copy */
    uint64_t next;   /* offset of the next batch to read */
    uint64_t gen;    /* the backlog's generation it started in */
    tkv_buf frame;   /* the batch being decoded */
    tkv_buf scratch; /* decoded keys */
};

/* The offset up to which batches are committed and in the backlog. */
static uint64_t committed_end(const tkv_repl *r, tkv_engine *e, uint64_t *start)
{
    uint64_t end;
    tkv_eng_repl st;
    tkv_repl_backlog_span(r, start, &end);
    tkv_engine_repl_get(e, &st);
    return st.off < end ? st.off : end;
}

/* True if a "B" frame starts at off (below `end`): a client's offset is
 * only good at a batch boundary, and the frame's own header says where it
 * starts. The whole frame is read: MessagePack's counts are checked
 * against the bytes held, so a cut frame would not decode. */
static bool at_boundary(const tkv_repl *r, uint64_t off, uint64_t end)
{
    tkv_buf b = {0};
    tkv_repl_frame fr;
    bool ok = false;
    if (end - off >= TKV_FRAME_HEADER && tkv_repl_backlog_read(r, off, TKV_FRAME_HEADER, &b) == 0) {
        uint32_t len = tkv_load_be32(b.data);
        b.len = 0;
        if (len <= end - off - TKV_FRAME_HEADER &&
            tkv_repl_backlog_read(r, off + TKV_FRAME_HEADER, len, &b) == 0)
            ok = tkv_repl_decode(b.data, b.len, &fr) == 0 && fr.tag == TKV_RF_BATCH &&
                 fr.offset == off;
    }
    tkv_buf_deinit(&b);
    return ok;
}

static int refuse(tkv_buf *out, tkv_status st, const char *msg, tkv_watcher **w)
{
    *w = NULL;
    return tkv_write_error(out, st, msg);
}

int tkv_watcher_start(const tkv_watch_req *q, const tkv_repl *r, tkv_engine *e, tkv_buf *out,
                      tkv_watcher **w)
{
    uint64_t start, end;
    char msg[200];
    if (tkv_repl_backlog_span(r, &start, &end) < 0) /* tkvd always keeps one */
        return refuse(out, TKV_ST_BAD_REQUEST,
                      "WATCH follows the replication backlog: none is kept", w);
    end = committed_end(r, e, &start);
    uint64_t from = q->has_from ? q->from : end;
    if (from < start || from > end || (from < end && !at_boundary(r, from, end))) {
        snprintf(msg, sizeof msg,
                 "offset %llu is not a batch boundary the backlog holds (%llu to %llu): read the "
                 "state again, then WATCH without an offset",
                 (unsigned long long)from, (unsigned long long)start, (unsigned long long)end);
        return refuse(out, TKV_ST_OUT_OF_RANGE, msg, w);
    }
    /* An offset means something only in its history: this server's id,
     * or the id before it up to where that history ended (PSYNC's rule). */
    tkv_eng_repl cur;
    tkv_engine_repl_get(e, &cur);
    const tkv_span *id = &q->replid;
    if (q->has_from && id->ptr &&
        !(id->len == TKV_REPLID_LEN && memcmp(id->ptr, cur.id, TKV_REPLID_LEN) == 0) &&
        !(id->len == TKV_REPLID_LEN && cur.id2[0] &&
          memcmp(id->ptr, cur.id2, TKV_REPLID_LEN) == 0 && from <= cur.off2))
        return refuse(out, TKV_ST_OUT_OF_RANGE,
                      "the offset is of another replication history than this server's: read "
                      "the state again, then WATCH without an offset",
                      w);
    tkv_watcher *n = calloc(1, sizeof *n);
    if (!n || (q->prefix.len && !(n->prefix = malloc(q->prefix.len)))) {
        free(n);
        return -1;
    }
    if (q->prefix.len)
        memcpy(n->prefix, q->prefix.ptr, q->prefix.len);
    n->f = (tkv_wfilter){.prefix = n->prefix, .plen = q->prefix.len, .asof = q->asof, .at = q->at};
    n->next = from;
    n->gen = tkv_repl_backlog_gen(r);
    tkv_eng_repl st;
    tkv_engine_repl_get(e, &st);
    if (tkv_rep_put_watch(out, st.id, from) < 0) {
        tkv_watcher_free(n);
        return -1;
    }
    *w = n;
    return 0;
}

int tkv_watcher_feed(tkv_watcher *w, const tkv_repl *r, tkv_engine *e, tkv_buf *out, size_t room,
                     bool *more)
{
    uint64_t start, end = committed_end(r, e, &start);
    char msg[200];
    *more = false;
    if (w->next < start || w->next > end || w->gen != tkv_repl_backlog_gen(r)) {
        /* Passed by the backlog, or the stream started over (a replica's
         * full copy, a new history): what came between is unknown here,
         * even at an equal offset. */
        snprintf(msg, sizeof msg,
                 "the watch fell behind the backlog at offset %llu (it holds %llu to %llu, or "
                 "started over): read the state again, then WATCH without an offset",
                 (unsigned long long)w->next, (unsigned long long)start, (unsigned long long)end);
        return tkv_write_error(out, TKV_ST_OUT_OF_RANGE, msg) < 0 ? -1 : 1;
    }
    /* Pulled, as a replica link is fed: no more than `room` of pushes and
     * WATCH_TURN_BYTES of batches read per call, so a watcher far behind
     * neither fills memory nor holds the loop; *more brings it back. */
    size_t out_start = out->len, read = 0;
    while (w->next < end && out->len - out_start < room && read < WATCH_TURN_BYTES) {
        w->frame.len = 0;
        if (end - w->next < TKV_FRAME_HEADER ||
            tkv_repl_backlog_read(r, w->next, TKV_FRAME_HEADER, &w->frame) < 0)
            return -1;
        uint32_t len = tkv_load_be32(w->frame.data);
        w->frame.len = 0;
        uint64_t bend;
        long got = -1;
        if (len <= end - w->next - TKV_FRAME_HEADER) {
            if (tkv_repl_backlog_read(r, w->next + TKV_FRAME_HEADER, len, &w->frame) < 0)
                return -1;
            got = tkv_changes_of_batch(w->frame.data, len, &w->f, &w->scratch, out, &bend);
        }
        if (got == -2)
            return -1;
        if (got < 0 || bend != w->next + TKV_FRAME_HEADER + len) {
            snprintf(msg, sizeof msg, "a malformed batch at offset %llu in the backlog",
                     (unsigned long long)w->next);
            return tkv_write_error(out, TKV_ST_INTERNAL, msg) < 0 ? -1 : 1;
        }
        w->next = bend;
        read += TKV_FRAME_HEADER + len;
    }
    *more = w->next < end;
    w->frame.len = 0;
    tkv_buf_shrink(&w->frame, 64 * 1024);
    return 0;
}

uint64_t tkv_watcher_offset(const tkv_watcher *w) { return w->next; }

void tkv_watcher_free(tkv_watcher *w)
{
    if (!w)
        return;
    free(w->prefix);
    tkv_buf_deinit(&w->frame);
    tkv_buf_deinit(&w->scratch);
    free(w);
}
