/*
 * replication.c - implements replication.h: a server's replication, both ends.
 *
 * The backlog is a ring of the stream's last bytes: [start, end) in
 * offsets. A primary appends each committed batch's frame (the engine
 * encoded it on the writer thread); a replica appends each frame it
 * stages, so that once promoted it can serve its old primary's other
 * replicas from where they are, as Redis's PSYNC2 does.
 *
 * A link to a replica (struct rlink) owns the socket the PSYNC came on. In
 * SYNC it sends a full copy through a stream (stream.h, TKV_CMD_PSYNC):
 * "F" with the snapshot's offset, "S" frames, "E". Then, ONLINE, it sends
 * the backlog from its offset on, never more than the output high water
 * ahead of the socket, and a "P" frame when idle so the replica can tell
 * a quiet primary from a dead link. A link whose offset the backlog no
 * longer holds is dropped: the replica comes back for a full copy. It
 * reads REPLACK requests: the replica's committed offset, which WAIT
 * counts and ROLE reports.
 *
 * The link to a primary (struct upstream) connects, sends AUTH and PSYNC
 * with the engine's state, and applies what comes: a full copy empties
 * the store (tkv_engine_wipe) and stages the records as they come; batches
 * are staged through the engine and committed by the server's group
 * commit like any write. While too much is staged it reads no more, so a
 * fast primary cannot fill a replica's memory. After each commit it sends
 * REPLACK with the committed offset. A dropped link reconnects after a
 * short pause and asks again from what is committed.
 */
#include "replication.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "repl.h"
#include "reply.h"
#include "stream.h"

#define PING_PERIOD 1.0
#define RECONNECT_DELAY 0.5
#define RECONNECT_MAX 8.0
#define STAGE_LIMIT (16u * 1024 * 1024) /* staged bytes above which a replica pauses */
#define SEND_CHUNK (256u * 1024)

/* ---- the backlog ------------------------------------------------------------ */

typedef struct backlog {
    uint8_t *buf;
    size_t cap;
    uint64_t start, end; /* offsets held: [start, end) */
    uint64_t gen;        /* moves when the stream starts over (a watcher ends) */
} backlog;

static void bl_reset(backlog *b, uint64_t off)
{
    b->start = b->end = off;
    b->gen++;
}

static void bl_append(backlog *b, const uint8_t *p, size_t n)
{
    if (b->cap == 0)
        return;
    if (n >= b->cap) { /* only the tail fits */
        p += n - b->cap;
        b->end += n - b->cap;
        n = b->cap;
    }
    size_t at = (size_t)(b->end % b->cap);
    size_t first = n < b->cap - at ? n : b->cap - at;
    memcpy(b->buf + at, p, first);
    memcpy(b->buf, p + first, n - first);
    b->end += n;
    if (b->end - b->start > b->cap)
        b->start = b->end - b->cap;
}

/* Copies up to max bytes from offset `from` (start <= from <= end). */
static int bl_copy(const backlog *b, uint64_t from, size_t max, tkv_buf *out)
{
    size_t n = b->end - from < max ? (size_t)(b->end - from) : max;
    if (n == 0)
        return 0;
    if (tkv_buf_reserve(out, n) < 0)
        return -1;
    size_t at = (size_t)(from % b->cap);
    size_t first = n < b->cap - at ? n : b->cap - at;
    memcpy(out->data + out->len, b->buf + at, first);
    memcpy(out->data + out->len + first, b->buf, n - first);
    out->len += n;
    return (int)(n > 0);
}

/* ---- structures ------------------------------------------------------------ */

typedef enum link_state { LINK_SYNC, LINK_ONLINE } link_state;

typedef struct rlink {
    tkv_repl *r;
    struct rlink *next;
    int fd;
    ev_io rio, wio;
    link_state state;
    tkv_stream *stream; /* SYNC: the full copy */
    tkv_frame_reader in;
    tkv_buf out;
    size_t sent;
    uint64_t next_off; /* ONLINE: the next backlog byte to send */
    uint64_t ack;      /* the replica's committed offset */
    bool acked;        /* it has acknowledged anything */
    double last_ack;   /* loop time of its last REPLACK */
    double last_send;
    char peer[64];
} rlink;

typedef enum up_state {
    UP_NONE,
    UP_CONNECTING,
    UP_HANDSHAKE,
    UP_SYNC,
    UP_ONLINE,
    UP_DOWN
} up_state;

typedef struct upstream {
    char host[256];
    uint16_t port;
    up_state state;
    int fd;
    ev_io rio, wio;
    ev_timer retry;
    tkv_frame_reader in;
    tkv_buf out;
    size_t sent;
    bool auth_sent, auth_ok;
    bool wipe_due;                      /* an "F" came: the store is emptied before more is read */
    char id[41];                        /* the stream's id */
    uint64_t off;                       /* offset after the last frame staged */
    uint64_t copy_recs;                 /* records of the full copy staged */
    uint64_t primary_off;               /* the primary's offset, as its last "P" said */
    uint64_t acked;                     /* the last offset acknowledged */
    uint64_t full_syncs, partial_syncs; /* taken from primaries */
    double retry_delay;                 /* before the next connect */
    double last_io;
    char readonly[320];
} upstream;

typedef struct waiter {
    struct waiter *next;
    void *cookie;
    uint64_t n;
    uint64_t epoch;
    uint64_t off; /* resolved once the epoch is committed */
    bool resolved;
    double deadline; /* 0: none */
} waiter;

struct tkv_repl {
    struct ev_loop *loop;
    tkv_engine *e;
    tkv_repl_opts o;
    backlog bl;
    rlink *links;
    uint32_t nlinks;
    upstream up;
    bool replica;
    waiter *waiters;
    ev_timer tick;
    ev_timer wait_timer; /* the nearest WAIT deadline */
    ev_async wake;       /* a copy's helper finished a step */
    uint64_t full_syncs, partial_syncs;
    uint64_t gen; /* the engine's history generation the backlog follows */
};

/* ---- links to replicas --------------------------------------------------- */

static void link_free(rlink *l, const char *why)
{
    tkv_repl *r = l->r;
    for (rlink **p = &r->links; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    r->nlinks--;
    if (r->o.conns)
        (*r->o.conns)--;
    if (why)
        tkv_info("replica %s: link closed: %s", l->peer, why);
    ev_io_stop(r->loop, &l->rio);
    ev_io_stop(r->loop, &l->wio);
    tkv_stream_free(l->stream);
    close(l->fd);
    tkv_frame_reader_deinit(&l->in);
    tkv_buf_deinit(&l->out);
    free(l);
}

/* Writes what the socket takes. -1 if the link was closed. */
static int link_flush(rlink *l)
{
    while (l->sent < l->out.len) {
        ssize_t n = send(l->fd, l->out.data + l->sent, l->out.len - l->sent, MSG_NOSIGNAL);
        if (n > 0) {
            l->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(l->r->loop, &l->wio);
            return 0;
        }
        link_free(l, n < 0 ? strerror(errno) : "write failed");
        return -1;
    }
    ev_io_stop(l->r->loop, &l->wio);
    tkv_buf_reset(&l->out);
    l->sent = 0;
    return 0;
}

static size_t link_unsent(const rlink *l) { return l->out.len - l->sent; }

static void check_waiters(tkv_repl *r);
static void take_feed(tkv_repl *r);
static void close_links(tkv_repl *r, const char *why);
static void on_wait_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* Gives an ONLINE link what the backlog holds beyond its offset, up to the
 * high water. -1 if the link was closed. */
static int link_feed(rlink *l)
{
    tkv_repl *r = l->r;
    if (l->state != LINK_ONLINE)
        return 0;
    if (l->next_off < r->bl.start) {
        link_free(l, "it fell behind the backlog (--repl-backlog); it will take a full copy");
        return -1;
    }
    while (l->next_off < r->bl.end && link_unsent(l) < r->o.output_high) {
        size_t before = l->out.len;
        if (bl_copy(&r->bl, l->next_off, SEND_CHUNK, &l->out) < 0) {
            link_free(l, "out of memory");
            return -1;
        }
        l->next_off += l->out.len - before;
    }
    if (link_unsent(l) > 0) {
        l->last_send = ev_now(r->loop);
        return link_flush(l);
    }
    return 0;
}

/* One frame from a replica: REPLACK, or the link goes - a replica sends
 * nothing else. Returns -1 if the link was closed. */
static int link_on_frame(rlink *l, const uint8_t *f, size_t n)
{
    tkv_req q;
    char err[128];
    tkv_limits lim = {.max_key = 1, .max_value = 0};
    if (tkv_req_parse(f, n, &lim, &q, err, sizeof err) != TKV_ST_OK || q.cmd != TKV_CMD_REPLACK) {
        link_free(l, "it sent something other than REPLACK");
        return -1;
    }
    l->last_ack = ev_now(l->r->loop); /* alive, whatever it acknowledges */
    /* WAIT counts an acknowledgement only of what this link sent: not one
     * from before a full copy, nor beyond what it was given. */
    if (l->state != LINK_ONLINE || q.offset > l->next_off || q.offset < l->ack || q.offset == 0)
        return 0;
    l->ack = q.offset;
    l->acked = true;
    return 0;
}

static void link_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    rlink *l = w->data;
    /* One read per wake-up, then every whole frame: the buffer never
     * fills with frames unparsed (libev calls again while data waits). */
    uint8_t *p;
    size_t avail;
    if (tkv_frame_reader_space(&l->in, 4096, &p, &avail) < 0 || avail == 0) {
        link_free(l, "out of memory");
        return;
    }
    ssize_t n = recv(l->fd, p, avail, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
        link_free(l, n == 0 ? "the replica closed it" : strerror(errno));
        return;
    }
    if (n > 0)
        tkv_frame_reader_commit(&l->in, (size_t)n);
    const uint8_t *f;
    size_t len;
    int rc;
    while ((rc = tkv_frame_reader_next(&l->in, &f, &len)) == TKV_FRAME_OK)
        if (link_on_frame(l, f, len) < 0)
            return;
    if (rc < 0 && rc != TKV_FRAME_AGAIN) {
        link_free(l, "a malformed frame");
        return;
    }
    tkv_frame_reader_shrink(&l->in, 4096);
    check_waiters(l->r);
}

static void link_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    rlink *l = w->data;
    if (link_flush(l) == 0)
        link_feed(l);
}

static void on_copy_wake(struct ev_loop *loop, ev_async *w, int revents) {}

static void copy_wake(void *ctx)
{
    tkv_repl *r = ctx;
    ev_async_send(r->loop, &r->wake);
}

/* PSYNC's decision: a partial resync if the id is this stream's (or the
 * one before it, up to where it ended) and the backlog holds the offset. */
static bool can_continue(const tkv_repl *r, const tkv_span *id, uint64_t off)
{
    tkv_eng_repl st;
    tkv_engine_repl_get(r->e, &st);
    if (!id->ptr || id->len != TKV_REPLID_LEN)
        return false;
    bool ours = memcmp(id->ptr, st.id, TKV_REPLID_LEN) == 0;
    bool before = st.id2[0] && memcmp(id->ptr, st.id2, TKV_REPLID_LEN) == 0 && off <= st.off2;
    return (ours || before) && off >= r->bl.start && off <= r->bl.end;
}

void tkv_repl_attach(tkv_repl *r, int fd, const char *peer, const tkv_span *replid, uint64_t offset,
                     const uint8_t *out, size_t n)
{
    rlink *l = calloc(1, sizeof *l);
    if (!l || (n > 0 && tkv_buf_append(&l->out, out, n) < 0)) {
        free(l);
        close(fd);
        return;
    }
    l->r = r;
    l->fd = fd;
    snprintf(l->peer, sizeof l->peer, "%s", peer);
    tkv_frame_reader_init(&l->in, 4096);
    ev_io_init(&l->rio, link_on_read, fd, EV_READ);
    ev_io_init(&l->wio, link_on_write, fd, EV_WRITE);
    l->rio.data = l->wio.data = l;
    l->last_ack = l->last_send = ev_now(r->loop);
    l->next = r->links;
    r->links = l;
    r->nlinks++;
    if (r->o.conns) /* a link is a connection, under --max-clients like any */
        (*r->o.conns)++;
    ev_io_start(r->loop, &l->rio);
    if (can_continue(r, replid, offset)) {
        tkv_eng_repl st;
        tkv_engine_repl_get(r->e, &st);
        r->partial_syncs++;
        l->state = LINK_ONLINE;
        l->next_off = offset;
        l->ack = offset;
        l->acked = true;
        tkv_info("replica %s: continues from offset %llu", peer, (unsigned long long)offset);
        if (tkv_repl_put_id(&l->out, TKV_RF_CONT, st.id, offset) < 0) {
            link_free(l, "out of memory");
            return;
        }
        link_feed(l);
        return;
    }
    r->full_syncs++;
    l->state = LINK_SYNC;
    l->stream = tkv_stream_new(r->e, TKV_CMD_PSYNC, false, 0, SEND_CHUNK, copy_wake, r);
    if (!l->stream) {
        link_free(l, "out of memory");
        return;
    }
    tkv_info("replica %s: takes a full copy", peer);
}

/* Steps a link's full copy; at its end the link goes ONLINE at the
 * snapshot's offset. Returns true if the copy could go on at once. */
static bool link_copy_step(rlink *l)
{
    tkv_repl *r = l->r;
    if (link_unsent(l) > r->o.output_high || !tkv_stream_ready(l->stream))
        return false;
    int rc = tkv_stream_step(l->stream, &l->out);
    if (rc < 0) {
        link_free(l, "out of memory");
        return false;
    }
    tkv_eng_repl st;
    if (rc == 1) {
        bool ok = tkv_stream_repl_state(l->stream, &st) && !tkv_stream_failed(l->stream);
        tkv_stream_free(l->stream);
        l->stream = NULL;
        if (!ok) { /* it ended with an error frame before the snapshot */
            if (link_flush(l) == 0)
                link_free(l, "the full copy failed");
            return false;
        }
        l->state = LINK_ONLINE;
        l->next_off = st.off;
        l->ack = 0;
        l->acked = false;
        l->last_ack = ev_now(r->loop);
        tkv_info("replica %s: full copy sent, continuing from offset %llu", l->peer,
                 (unsigned long long)st.off);
        /* Batches committed during the copy go at once, not with the next
         * commit or tick. */
        if (link_flush(l) < 0 || link_feed(l) < 0)
            return false;
    }
    l->last_send = ev_now(r->loop);
    if (link_flush(l) < 0)
        return false;
    return rc == 0 && tkv_stream_ready(l->stream);
}

/* ---- the link to a primary ------------------------------------------------- */

static void up_connect(tkv_repl *r);

static void up_drop(tkv_repl *r, const char *why)
{
    upstream *u = &r->up;
    if (u->fd >= 0) {
        ev_io_stop(r->loop, &u->rio);
        ev_io_stop(r->loop, &u->wio);
        close(u->fd);
        u->fd = -1;
        tkv_warn("link to primary %s:%u down: %s", u->host, u->port, why);
    }
    tkv_frame_reader_deinit(&u->in);
    tkv_buf_reset(&u->out);
    u->sent = 0;
    u->wipe_due = false;
    if (u->state != UP_NONE) {
        /* Again soon after a link that worked; less often while it keeps
         * failing (a wrong secret, a primary that is down). */
        u->retry_delay =
            u->state == UP_ONLINE || u->retry_delay == 0
                ? RECONNECT_DELAY
                : (u->retry_delay * 2 < RECONNECT_MAX ? u->retry_delay * 2 : RECONNECT_MAX);
        u->state = UP_DOWN;
        ev_timer_set(&u->retry, u->retry_delay, 0.0);
        ev_timer_start(r->loop, &u->retry);
    }
}

static void up_flush(tkv_repl *r)
{
    upstream *u = &r->up;
    while (u->fd >= 0 && u->sent < u->out.len) {
        ssize_t n = send(u->fd, u->out.data + u->sent, u->out.len - u->sent, MSG_NOSIGNAL);
        if (n > 0) {
            u->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(r->loop, &u->wio);
            return;
        }
        up_drop(r, n < 0 ? strerror(errno) : "write failed");
        return;
    }
    if (u->fd >= 0)
        ev_io_stop(r->loop, &u->wio);
    tkv_buf_reset(&u->out);
    u->sent = 0;
}

static void up_send_req(tkv_repl *r, const tkv_req *q)
{
    if (tkv_req_encode(&r->up.out, q) < 0)
        up_drop(r, "out of memory");
}

/* What the primary is asked for: the stream from what is committed here
 * (nothing, while a full copy is incomplete). */
static void up_handshake(tkv_repl *r)
{
    upstream *u = &r->up;
    tkv_eng_repl st;
    tkv_engine_repl_get(r->e, &st);
    if (r->o.secret) {
        tkv_req a = {.cmd = TKV_CMD_AUTH,
                     .msg = {(const uint8_t *)r->o.secret, (uint32_t)r->o.secret_len},
                     .has_msg = true};
        up_send_req(r, &a);
        u->auth_sent = true;
    }
    bool whole = !tkv_engine_repl_incomplete(r->e);
    tkv_req p = {.cmd = TKV_CMD_PSYNC, .offset = whole ? st.off : 0};
    if (whole)
        p.host = (tkv_span){(const uint8_t *)st.id, TKV_REPLID_LEN};
    up_send_req(r, &p);
    u->off = st.off;
    u->state = UP_HANDSHAKE;
    up_flush(r);
}

/* Stages one "S" or "B" frame's records. -1 on a malformed record or a
 * store that refuses writes. */
static int up_stage(tkv_repl *r, tkv_repl_frame *f)
{
    tkv_repl_rec rec;
    int rc;
    while ((rc = tkv_repl_next_rec(f, &rec)) == 1) {
        if (rec.drop ? tkv_engine_apply_drop(r->e, rec.key, rec.klen) < 0
                     : tkv_engine_apply_rec(r->e, rec.key, rec.klen, rec.value, rec.vlen,
                                            rec.has_value) < 0)
            return -1;
        if (f->tag == TKV_RF_SNAP)
            r->up.copy_recs++;
    }
    return rc;
}

/* One frame from the primary. Returns -1 if the link must drop (why set). */
static int up_on_frame(tkv_repl *r, const uint8_t *p, size_t n, const char **why)
{
    upstream *u = &r->up;
    tkv_repl_frame f;
    /* Replies to AUTH, or an error instead of the stream: [status, ...]. */
    if (n > 1 && (p[0] & 0xf0) == 0x90 && p[1] < 0x80) {
        tkv_mp m;
        uint32_t count;
        uint64_t status;
        tkv_span msg;
        if (tkv_reply_head(p, n, &m, &count, &status, &msg) < 0) {
            *why = "a malformed reply";
            return -1;
        }
        if (status == TKV_ST_OK && u->auth_sent && !u->auth_ok) {
            u->auth_ok = true;
            return 0;
        }
        static char buf[300];
        snprintf(buf, sizeof buf, "the primary refused: %s: %.*s", tkv_status_name(status),
                 (int)msg.len, (const char *)msg.ptr);
        *why = buf;
        return -1;
    }
    if (tkv_repl_decode(p, n, &f) < 0) {
        *why = "a malformed replication frame";
        return -1;
    }
    u->last_io = ev_now(r->loop);
    switch (f.tag) {
    case TKV_RF_FULL:
        memcpy(u->id, f.replid, sizeof u->id);
        u->off = u->primary_off = f.offset;
        u->copy_recs = 0;
        u->full_syncs++;
        u->wipe_due = true;
        u->state = UP_SYNC;
        tkv_info("primary %s:%u: taking a full copy (offset %llu)", u->host, u->port,
                 (unsigned long long)f.offset);
        return 1; /* stop reading until the store is emptied */
    case TKV_RF_SNAP:
        if (u->state != UP_SYNC || up_stage(r, &f) < 0) {
            *why = "a bad full-copy frame";
            return -1;
        }
        return 0;
    case TKV_RF_END:
        if (u->state != UP_SYNC || f.count != u->copy_recs) {
            *why = "the full copy ended short";
            return -1;
        }
        tkv_engine_apply_at(r->e, u->id, u->off);
        bl_reset(&r->bl, u->off);
        u->state = UP_ONLINE;
        tkv_info("primary %s:%u: full copy of %llu records staged", u->host, u->port,
                 (unsigned long long)u->copy_recs);
        return 0;
    case TKV_RF_CONT:
        if (f.offset != u->off) {
            *why = "the primary continues from another offset";
            return -1;
        }
        memcpy(u->id, f.replid, sizeof u->id);
        u->state = UP_ONLINE;
        u->partial_syncs++;
        /* Frames staged past what is committed (a rolled-back batch) go;
         * what the backlog holds below stays for the watchers behind. */
        if (u->off >= r->bl.start && u->off <= r->bl.end)
            r->bl.end = u->off;
        else
            bl_reset(&r->bl, u->off);
        tkv_engine_apply_at(r->e, u->id, u->off); /* the id may be new */
        tkv_info("primary %s:%u: continuing from offset %llu", u->host, u->port,
                 (unsigned long long)u->off);
        return 0;
    case TKV_RF_BATCH:
        if (u->state != UP_ONLINE || f.offset != u->off) {
            static char buf[160];
            snprintf(buf, sizeof buf, "a batch at offset %llu, expected %llu",
                     (unsigned long long)f.offset, (unsigned long long)u->off);
            *why = buf;
            return -1;
        }
        if (up_stage(r, &f) < 0) {
            *why = tkv_engine_failing(r->e) ? tkv_engine_errmsg(r->e) : "a malformed batch";
            return -1;
        }
        u->off += TKV_FRAME_HEADER + n;
        bl_append(&r->bl, p - TKV_FRAME_HEADER, TKV_FRAME_HEADER + n);
        tkv_engine_apply_at(r->e, u->id, u->off);
        if (u->primary_off < u->off)
            u->primary_off = u->off;
        return 0;
    case TKV_RF_PING: u->primary_off = f.offset; return 0;
    }
    return 0;
}

static bool up_paused(const tkv_repl *r)
{
    return r->up.wipe_due || tkv_engine_staged_bytes(r->e) >= STAGE_LIMIT;
}

static void up_read_frames(tkv_repl *r)
{
    upstream *u = &r->up;
    while (!up_paused(r)) {
        const uint8_t *f;
        size_t n;
        int rc = tkv_frame_reader_next(&u->in, &f, &n);
        if (rc == TKV_FRAME_AGAIN)
            break;
        const char *why = "a frame larger than the limit";
        if (rc < 0 || up_on_frame(r, f, n, &why) < 0) {
            up_drop(r, why);
            return;
        }
    }
    /* Paused (a wipe, or too much staged): a later loop turn resumes it. */
    if (u->fd >= 0 && u->state != UP_CONNECTING) {
        if (up_paused(r))
            ev_io_stop(r->loop, &u->rio);
        else
            ev_io_start(r->loop, &u->rio);
    }
}

static void up_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    tkv_repl *r = w->data;
    upstream *u = &r->up;
    for (int i = 0; i < 16; i++) {
        uint8_t *p;
        size_t avail;
        if (tkv_frame_reader_space(&u->in, 64 * 1024, &p, &avail) < 0) {
            up_drop(r, "out of memory");
            return;
        }
        if (avail == 0)
            break;
        ssize_t n = recv(u->fd, p, avail, 0);
        if (n > 0) {
            tkv_frame_reader_commit(&u->in, (size_t)n);
            u->last_io = ev_now(loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        up_drop(r, n == 0 ? "the primary closed it" : strerror(errno));
        return;
    }
    up_read_frames(r);
}

static void up_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    tkv_repl *r = w->data;
    upstream *u = &r->up;
    if (u->state == UP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            up_drop(r, strerror(err));
            return;
        }
        ev_io_stop(loop, &u->wio);
        ev_io_start(loop, &u->rio);
        up_handshake(r);
        return;
    }
    up_flush(r);
}

static void up_connect(tkv_repl *r)
{
    upstream *u = &r->up;
    char port[8];
    snprintf(port, sizeof port, "%u", u->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(u->host, port, &hints, &res);
    if (rc != 0) {
        u->state = UP_CONNECTING;
        tkv_warn("cannot resolve primary %s: %s", u->host, gai_strerror(rc));
        up_drop(r, gai_strerror(rc));
        return;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    u->state = UP_CONNECTING;
    if (fd < 0) {
        tkv_warn("cannot connect to primary %s:%u: %s", u->host, u->port, strerror(errno));
        up_drop(r, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    u->fd = fd;
    u->auth_sent = u->auth_ok = false;
    u->last_io = ev_now(r->loop);
    tkv_frame_reader_init(&u->in, r->o.max_frame);
    ev_io_set(&u->rio, fd, EV_READ);
    ev_io_set(&u->wio, fd, EV_WRITE);
    ev_io_start(r->loop, &u->wio);
}

static void up_on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    tkv_repl *r = w->data;
    if (r->up.state == UP_DOWN)
        up_connect(r);
}

/* After a commit, or once a second: the committed offset goes back. */
static void up_ack(tkv_repl *r, bool force)
{
    upstream *u = &r->up;
    if (u->fd < 0 || (u->state != UP_ONLINE && u->state != UP_SYNC))
        return;
    tkv_eng_repl st;
    tkv_engine_repl_get(r->e, &st);
    /* Only an offset of the primary's history that is committed here
     * counts; otherwise (a full copy not yet written, the state of a
     * history before it) 0 says only that the replica is alive. */
    uint64_t off = u->state == UP_ONLINE && strcmp(st.id, u->id) == 0 ? st.off : 0;
    if (!force && off == u->acked)
        return;
    u->acked = off;
    tkv_req q = {.cmd = TKV_CMD_REPLACK, .offset = off};
    up_send_req(r, &q);
    up_flush(r);
}

/* ---- the loop's calls ------------------------------------------------------ */

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    tkv_repl *r = w->data;
    double now = ev_now(loop);
    tkv_eng_repl st;
    tkv_engine_repl_get(r->e, &st);
    for (rlink *l = r->links, *next; l; l = next) {
        next = l->next;
        /* A replica acknowledges every second, also while it takes a copy:
         * a silent one (dead, or a client that sent PSYNC and no more) goes,
         * with the snapshot and thread its copy holds. */
        if (now - l->last_ack > r->o.timeout) {
            link_free(l, "no acknowledgement within --repl-timeout");
            continue;
        }
        if (l->state == LINK_ONLINE && link_unsent(l) == 0 && now - l->last_send >= PING_PERIOD) {
            l->last_send = now;
            if (tkv_repl_put_ping(&l->out, r->bl.end) < 0 || link_flush(l) < 0)
                continue;
        }
    }
    upstream *u = &r->up;
    if (u->fd >= 0 && u->state != UP_CONNECTING && up_paused(r))
        u->last_io = now; /* it stopped reading on purpose, not the primary */
    if (u->fd >= 0 && u->state != UP_CONNECTING && now - u->last_io > r->o.timeout) {
        up_drop(r, "nothing from the primary within --repl-timeout");
    } else if (u->fd >= 0 && u->state == UP_CONNECTING && now - u->last_io > r->o.timeout) {
        up_drop(r, "connect timed out");
    }
    up_ack(r, true);
    check_waiters(r);
}

tkv_repl *tkv_repl_new(struct ev_loop *loop, tkv_engine *e, const tkv_repl_opts *o)
{
    tkv_repl *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->loop = loop;
    r->e = e;
    r->o = *o;
    r->bl.cap = o->backlog;
    if (r->bl.cap > 0 && !(r->bl.buf = malloc(r->bl.cap))) {
        free(r);
        return NULL;
    }
    tkv_eng_repl st;
    tkv_engine_repl_get(e, &st);
    bl_reset(&r->bl, st.off);
    r->up.fd = -1;
    ev_io_init(&r->up.rio, up_on_read, -1, EV_READ);
    ev_io_init(&r->up.wio, up_on_write, -1, EV_WRITE);
    ev_timer_init(&r->up.retry, up_on_retry, RECONNECT_DELAY, 0.0);
    r->up.rio.data = r->up.wio.data = r->up.retry.data = r;
    ev_timer_init(&r->tick, on_tick, PING_PERIOD, PING_PERIOD);
    ev_timer_init(&r->wait_timer, on_wait_timer, 1.0, 0.0);
    r->tick.data = r->wait_timer.data = r;
    ev_timer_start(loop, &r->tick);
    ev_async_init(&r->wake, on_copy_wake);
    ev_async_start(loop, &r->wake);
    return r;
}

void tkv_repl_free(tkv_repl *r)
{
    if (!r)
        return;
    while (r->links)
        link_free(r->links, NULL);
    r->up.state = UP_NONE;
    up_drop(r, "the server stops");
    ev_timer_stop(r->loop, &r->up.retry);
    ev_timer_stop(r->loop, &r->tick);
    ev_timer_stop(r->loop, &r->wait_timer);
    ev_async_stop(r->loop, &r->wake);
    while (r->waiters) {
        waiter *w = r->waiters;
        r->waiters = w->next;
        free(w);
    }
    tkv_buf_deinit(&r->up.out);
    free(r->bl.buf);
    free(r);
}

/* Moves the frames of every batch committed since the last call into the
 * backlog, whoever collected the commit (the server, the sweep's own,
 * a blocking commit). A gap - a frame lost, or a new history after the
 * store was reopened - restarts the backlog and every link. */
static void take_feed(tkv_repl *r)
{
    const uint8_t *f;
    size_t n;
    int got = tkv_engine_feed_take(r->e, &f, &n);
    uint64_t gen = tkv_engine_repl_gen(r->e);
    if (got < 0 || gen != r->gen) {
        r->gen = gen;
        tkv_eng_repl st;
        tkv_engine_repl_get(r->e, &st);
        bl_reset(&r->bl, st.off);
        close_links(r, got < 0 ? "out of memory keeping the stream"
                               : "the store was reopened: a new history begins");
        return;
    }
    if (got > 0)
        bl_append(&r->bl, f, n);
}

void tkv_repl_committed(tkv_repl *r)
{
    take_feed(r);
    for (rlink *l = r->links, *next; l; l = next) {
        next = l->next;
        link_feed(l);
    }
    upstream *u = &r->up;
    if (u->fd >= 0 && !u->wipe_due && u->state != UP_CONNECTING)
        up_read_frames(r); /* staged bytes went down: read on */
    up_ack(r, false);
    check_waiters(r);
}

void tkv_repl_rolled_back(tkv_repl *r)
{
    if (r->replica && r->up.fd >= 0)
        up_drop(r, "a batch failed to commit; asking again from what is committed");
}

bool tkv_repl_prepare(tkv_repl *r)
{
    bool more = false;
    take_feed(r);
    for (rlink *l = r->links, *next; l; l = next) {
        next = l->next;
        link_feed(l);
    }
    bool failing = tkv_engine_failing(r->e);
    for (rlink *l = r->links, *next; l; l = next) {
        next = l->next;
        /* A copy's snapshot holds the store: recovery waits for none. */
        if (l->state == LINK_SYNC && failing)
            link_free(l, "the store failed during the full copy");
        else if (l->state == LINK_SYNC)
            more |= link_copy_step(l);
    }
    upstream *u = &r->up;
    if (u->fd >= 0 && u->state != UP_CONNECTING && !up_paused(r) && !ev_is_active(&u->rio))
        up_read_frames(r);
    if (u->wipe_due && !tkv_engine_pending(r->e)) {
        if (tkv_engine_wipe(r->e) == 0) {
            u->wipe_due = false;
            bl_reset(&r->bl, u->off);
            up_read_frames(r);
        } else if (tkv_engine_failing(r->e)) {
            up_drop(r, tkv_engine_errmsg(r->e));
        }
        /* else: a load or a dump is out (streams are being cut, loads end
         * soon); tried again on a later turn - the tick comes at least once
         * a second - without keeping the loop awake. */
    }
    return more;
}

/* ---- role ---------------------------------------------------------------- */

/* Closes every link to a replica (it becomes a replica itself, or stops). */
static void close_links(tkv_repl *r, const char *why)
{
    while (r->links)
        link_free(r->links, why);
}

int tkv_repl_replicaof(tkv_repl *r, const char *host, uint16_t port, char *err, size_t errlen)
{
    upstream *u = &r->up;
    /* Through the server's own commit path, so that replies waiting for
     * these batches are released - or withdrawn if they fail - and their
     * frames reach the backlog before the role changes. */
    r->o.settle(r->o.ctx);
    if (tkv_engine_pending(r->e) || tkv_engine_failing(r->e)) {
        snprintf(err, errlen, "writes under way failed: %s", tkv_engine_errmsg(r->e));
        return -1;
    }
    take_feed(r);
    if (!host) {
        if (!r->replica)
            return 0;
        if (tkv_engine_repl_incomplete(r->e)) {
            snprintf(err, errlen,
                     "this replica holds part of a full copy: it cannot become a "
                     "primary before the copy completes");
            return -1;
        }
        u->state = UP_NONE;
        up_drop(r, "REPLICAOF NO ONE");
        ev_timer_stop(r->loop, &u->retry);
        if (tkv_engine_repl_primary(r->e) < 0) {
            snprintf(err, errlen, "%s", tkv_engine_errmsg(r->e));
            return -1;
        }
        tkv_eng_repl st;
        tkv_engine_repl_get(r->e, &st);
        if (r->bl.end != st.off)
            bl_reset(&r->bl, st.off);
        r->replica = false;
        tkv_info("now a primary (replication id %s, offset %llu)", st.id,
                 (unsigned long long)st.off);
        return 0;
    }
    if (strlen(host) >= sizeof u->host) {
        snprintf(err, errlen, "host name too long");
        return -1;
    }
    close_links(r, "this server became a replica");
    check_waiters(r); /* WAITs under way answer 0 */
    u->state = UP_NONE;
    up_drop(r, "REPLICAOF");
    ev_timer_stop(r->loop, &u->retry);
    snprintf(u->host, sizeof u->host, "%s", host);
    u->port = port;
    snprintf(u->readonly, sizeof u->readonly,
             "this server is a replica of %s:%u; write to the primary", host, port);
    tkv_engine_repl_replica(r->e);
    r->replica = true;
    u->primary_off = 0;
    tkv_info("replicating %s:%u", host, port);
    up_connect(r);
    return 0;
}

const char *tkv_repl_readonly(const tkv_repl *r) { return r && r->replica ? r->up.readonly : NULL; }

bool tkv_repl_serving(const tkv_repl *r)
{
    return !r || !(r->up.wipe_due || r->up.state == UP_SYNC || tkv_engine_repl_incomplete(r->e));
}

bool tkv_repl_is_replica(const tkv_repl *r) { return r && r->replica; }

bool tkv_repl_follows(const tkv_repl *r, const char *host, uint16_t port)
{
    return r && r->replica && r->up.port == port && strcmp(r->up.host, host) == 0;
}

/* ---- WAIT -------------------------------------------------------------------- */

static uint64_t count_acked(const tkv_repl *r, uint64_t off)
{
    uint64_t n = 0;
    for (const rlink *l = r->links; l; l = l->next)
        n += l->state == LINK_ONLINE && l->acked && l->ack >= off;
    return n;
}

/* Waiters are looked at from the wait timer only: answering one runs its
 * connection's request again, which must not happen inside another
 * request (REPLICAOF settles batches) or inside a commit. */
static void check_waiters(tkv_repl *r)
{
    if (!r->waiters)
        return;
    ev_timer_stop(r->loop, &r->wait_timer);
    ev_timer_set(&r->wait_timer, 0.0, 0.0);
    ev_timer_start(r->loop, &r->wait_timer);
}

static void eval_waiters(tkv_repl *r, bool all_zero)
{
    double now = ev_now(r->loop);
    uint64_t settled = tkv_engine_settled_epoch(r->e);
    tkv_eng_repl st;
    tkv_engine_repl_get(r->e, &st);
    for (waiter **p = &r->waiters; *p;) {
        waiter *w = *p;
        if (!w->resolved && w->epoch <= settled) {
            w->resolved = true;
            w->off = st.off;
        }
        uint64_t acked = w->resolved && !all_zero ? count_acked(r, w->off) : 0;
        bool timed_out = w->deadline > 0 && now >= w->deadline;
        if ((w->resolved && acked >= w->n) || timed_out || all_zero) {
            *p = w->next;
            void *cookie = w->cookie;
            free(w);
            r->o.wait_done(cookie, acked);
            continue;
        }
        p = &w->next;
    }
    double next = 0;
    for (waiter *w = r->waiters; w; w = w->next)
        if (w->deadline > 0 && (next == 0 || w->deadline < next))
            next = w->deadline;
    ev_timer_stop(r->loop, &r->wait_timer);
    if (next > 0) {
        ev_timer_set(&r->wait_timer, next > now ? next - now : 0.0, 0.0);
        ev_timer_start(r->loop, &r->wait_timer);
    }
}

static void on_wait_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    tkv_repl *r = w->data;
    eval_waiters(r, r->replica); /* a replica answers every WAIT with 0 */
}

int tkv_repl_wait(tkv_repl *r, void *cookie, uint64_t n, uint64_t timeout_ms, uint64_t epoch)
{
    waiter *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    w->cookie = cookie;
    w->n = n;
    w->epoch = epoch;
    w->deadline = timeout_ms ? ev_now(r->loop) + (double)timeout_ms / 1000.0 : 0;
    w->next = r->waiters;
    r->waiters = w;
    check_waiters(r); /* on the next loop turn, never inside the request */
    return 0;
}

void tkv_repl_wait_cancel(tkv_repl *r, void *cookie)
{
    for (waiter **p = &r->waiters; *p; p = &(*p)->next) {
        if ((*p)->cookie == cookie) {
            waiter *w = *p;
            *p = w->next;
            free(w);
            return;
        }
    }
}

/* ---- ROLE and STATS ---------------------------------------------------------- */

static void kv_u64(tkv_rep_wr *lw, const char *name, uint64_t v)
{
    tkv_rep_stats_uint(lw, name, strlen(name), v);
}

static void kv_str(tkv_rep_wr *lw, const char *name, const char *v)
{
    tkv_rep_stats_str(lw, name, strlen(name), v, strlen(v));
}

static const char *up_state_name(up_state s)
{
    switch (s) {
    case UP_CONNECTING:
    case UP_HANDSHAKE: return "connecting";
    case UP_SYNC: return "sync";
    case UP_ONLINE: return "online";
    default: return "down";
    }
}

int tkv_repl_role(tkv_repl *r, tkv_buf *out)
{
    tkv_eng_repl st;
    tkv_engine_repl_get(r->e, &st);
    double now = ev_now(r->loop);
    tkv_rep_wr lw;
    uint32_t n = r->replica ? 10 : 4 + 5 * r->nlinks;
    tkv_rep_stats_begin(&lw, out, n);
    kv_str(&lw, "role", r->replica ? "replica" : "primary");
    kv_str(&lw, "replid", st.id);
    kv_u64(&lw, "offset", st.off);
    if (r->replica) {
        const upstream *u = &r->up;
        char addr[300];
        snprintf(addr, sizeof addr, "%s:%u", u->host, u->port);
        kv_str(&lw, "primary", addr);
        kv_str(&lw, "link", up_state_name(u->state));
        kv_u64(&lw, "primary_offset", u->primary_off);
        kv_u64(&lw, "lag_bytes", u->primary_off > st.off ? u->primary_off - st.off : 0);
        kv_u64(&lw, "last_io_ms", u->fd >= 0 ? (uint64_t)((now - u->last_io) * 1000) : 0);
        kv_u64(&lw, "full_syncs", u->full_syncs);
        kv_u64(&lw, "partial_syncs", u->partial_syncs);
    } else {
        kv_u64(&lw, "replicas", r->nlinks);
        uint32_t i = 0;
        for (const rlink *l = r->links; l; l = l->next, i++) {
            char name[48];
            uint64_t lag = l->ack < r->bl.end ? r->bl.end - l->ack : 0;
            snprintf(name, sizeof name, "replica%u_addr", i);
            kv_str(&lw, name, l->peer);
            snprintf(name, sizeof name, "replica%u_state", i);
            kv_str(&lw, name, l->state == LINK_SYNC ? "sync" : "online");
            snprintf(name, sizeof name, "replica%u_offset", i);
            kv_u64(&lw, name, l->ack);
            snprintf(name, sizeof name, "replica%u_lag_bytes", i);
            kv_u64(&lw, name, lag);
            snprintf(name, sizeof name, "replica%u_lag_ms", i);
            kv_u64(&lw, name, lag ? (uint64_t)((now - l->last_ack) * 1000) : 0);
        }
    }
    return tkv_rep_stats_end(&lw);
}

uint32_t tkv_repl_nstats(const tkv_repl *r) { return 6 + (r->replica ? 3 : 4 * r->nlinks); }

void tkv_repl_stats(tkv_repl *r, tkv_rep_wr *lw)
{
    tkv_eng_repl st;
    tkv_engine_repl_get(r->e, &st);
    double now = ev_now(r->loop);
    kv_str(lw, "role", r->replica ? "replica" : "primary");
    kv_u64(lw, "repl_offset", st.off);
    kv_u64(lw, "repl_replicas", r->nlinks);
    kv_u64(lw, "repl_full_syncs", r->full_syncs);
    kv_u64(lw, "repl_partial_syncs", r->partial_syncs);
    kv_u64(lw, "repl_backlog_bytes", r->bl.end - r->bl.start);
    if (r->replica) {
        const upstream *u = &r->up;
        kv_str(lw, "repl_link", up_state_name(u->state));
        kv_u64(lw, "repl_lag_bytes", u->primary_off > st.off ? u->primary_off - st.off : 0);
        kv_u64(lw, "repl_last_io_ms", u->fd >= 0 ? (uint64_t)((now - u->last_io) * 1000) : 0);
        return;
    }
    uint32_t i = 0;
    for (const rlink *l = r->links; l; l = l->next, i++) {
        char name[48];
        uint64_t lag = l->ack < r->bl.end ? r->bl.end - l->ack : 0;
        snprintf(name, sizeof name, "repl_replica%u_addr", i);
        kv_str(lw, name, l->peer);
        snprintf(name, sizeof name, "repl_replica%u_offset", i);
        kv_u64(lw, name, l->ack);
        snprintf(name, sizeof name, "repl_replica%u_lag_bytes", i);
        kv_u64(lw, name, lag);
        snprintf(name, sizeof name, "repl_replica%u_lag_ms", i);
        kv_u64(lw, name, lag ? (uint64_t)((now - l->last_ack) * 1000) : 0);
    }
}

/* ---- the change feed's view of the backlog -------------------------------- */

int tkv_repl_backlog_span(const tkv_repl *r, uint64_t *start, uint64_t *end)
{
    if (r->bl.cap == 0)
        return -1;
    *start = r->bl.start;
    *end = r->bl.end;
    return 0;
}

uint64_t tkv_repl_backlog_gen(const tkv_repl *r) { return r->bl.gen; }

int tkv_repl_backlog_read(const tkv_repl *r, uint64_t from, size_t n, tkv_buf *out)
{
    if (r->bl.cap == 0 || from < r->bl.start || from > r->bl.end || n > r->bl.end - from)
        return -1;
    return bl_copy(&r->bl, from, n, out) < 0 ? -1 : 0;
}
