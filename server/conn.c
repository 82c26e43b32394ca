/*
 * conn.c - implements tkvd's client connections (conn.h).
 *
 * A connection reads pipelined request frames into one buffer, serves them
 * in place through the dispatcher, and appends each reply to one output
 * buffer that goes out in one write per loop iteration (Redis's client
 * struct). A reply that depends on writes still staged in the engine is
 * recorded as a "dep" with the epoch of its batch: output is written up to
 * the first such reply, so no reply to a write leaves before the write is
 * in LevelDB, and replies still leave in request order. Waiting for a
 * batch is a property of some replies, not a state of the connection: it
 * goes on reading and serving meanwhile.
 *
 * What a connection does next is one explicit state, changed only by
 * conn_set_state(), which also starts or stops the read watcher and takes
 * the connection off the backlog when the state forbids serving
 * (memcached's conn_set_state):
 *
 *   from         event                                     to
 *   (accept)                                               READING
 *   READING      input buffer full of unserved frames      BACKLOGGED
 *   BACKLOGGED   its frames served, buffer has room        READING
 *   READING, BACKLOGGED
 *                unread replies above the high water       THROTTLED
 *   THROTTLED    every reply written                       READING
 *   READING      end of input; what arrived is served      CLOSING
 *   READING, BACKLOGGED (CLOSING, STOPPING on the way there)
 *                a request needs LevelDB: a load is queued  WAITING
 *   WAITING      the load is back and the request served   what it was going to
 *                                                          (READING, CLOSING, STOPPING)
 *   READING, BACKLOGGED (CLOSING, STOPPING on the way there)
 *                a DIGEST or BACKUP starts its stream       STREAMING
 *   STREAMING    its last frame is queued                  what it was going to
 *                the server stops: an error frame ends it  STOPPING
 *   READING, BACKLOGGED
 *                WATCH started a change feed                WATCHING
 *   WATCHING     the backlog passed it                      CLOSING
 *                the server stops: an error frame ends it   STOPPING
 *   READING, BACKLOGGED (THROTTLED while stopping)
 *                a frame longer than allowed               REFUSED
 *   REFUSED      its replies written                       LINGERING
 *   READING, BACKLOGGED, THROTTLED, LINGERING
 *                the server stops; buffered frames served  STOPPING
 *   CLOSING      its replies written                       (closed)
 *   REFUSED      its replies written while stopping        (closed)
 *   LINGERING    EOF, LINGER_MAX_BYTES or LINGER_SECONDS   (closed)
 *   STOPPING     the loop ends (conn_close_all)            (closed)
 *   WATCHING     EOF, or unread pushes past --max-output    (closed)
 *   any          error, idle timeout, too much unread output (closed)
 *
 * The write watcher is not a state: it is armed when the socket is full
 * and disarmed when it drains, whatever the state. Lists that remain are
 * work queues (conn.h says what each means), not states.
 *
 * A request that needs LevelDB (engine.h, "Loads") puts its connection in
 * WAITING: the request's frame stays where it is in the input buffer, which
 * is neither read into nor served until a reader thread has run the load
 * and the loop has installed it; then the same frame runs again and the
 * connection goes on where it was going. So its later requests wait for
 * it and replies keep request order, while every other connection is
 * served meanwhile. After MAX_STALE stale loads a request runs inline, so
 * a key that keeps changing under its loads cannot starve it.
 *
 * DIGEST and BACKUP (stream.h) put their connection in STREAMING: their
 * frames come from the stream, a bounded step at a time run by the
 * stream's helper thread and picked up by conn_stream_steps once per loop
 * turn, and only while the connection's unsent output is below the high
 * water - a client that reads slowly slows its backup, it
 * does not grow the server's memory. Its later requests wait, as in
 * WAITING.
 *
 * WATCH (watcher.h) puts its connection in WATCHING for good: fed by
 * commits rather than by frames, it serves nothing more (what the client
 * sends is read and dropped, so a close is noticed at once) and is never
 * idle. A watcher is fed whatever was committed, however slowly it
 * reads: writers never wait for it, and one whose unread output passes
 * --max-output is dropped (it resumes from its last whole batch).
 */
#include "conn.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "frame.h"
#include "grow.h"
#include "latency.h"
#include "log.h"
#include "readers.h"
#include "replication.h"
#include "slowlog.h"
#include "stream.h"
#include "watcher.h"
#include "wire.h"

#define READ_CHUNK (64 * 1024)
#define KEEP_BUF (64 * 1024)
/* A refused connection is half-closed and its input read and dropped for at
 * most this long (or this many bytes) before the close: closing a socket
 * with unread input sends a reset, which can destroy the error reply still
 * on its way to the client (the lingering close of HTTP servers). */
#define LINGER_SECONDS 2.0
#define LINGER_MAX_BYTES (64u * 1024 * 1024)
/* Stale loads one request may wait for before it runs inline (loads that
 * were installed are progress and do not count). */
#define MAX_STALE 4
/* Backup bytes in one BACKUP reply frame (less if --max-frame is lower). */
#define STREAM_CHUNK (256 * 1024)

typedef enum conn_state {
    CONN_READING,    /* reads input and serves requests */
    CONN_BACKLOGGED, /* input buffer full of unserved frames: serve them, read nothing */
    CONN_THROTTLED,  /* unread replies above the high water: neither read nor serve */
    CONN_CLOSING,    /* input ended: write the remaining replies, then close */
    CONN_REFUSED,    /* an oversize frame was refused: write the replies, then linger */
    CONN_LINGERING,  /* half-closed after a refusal: drop input until EOF or timeout */
    CONN_STOPPING,   /* the server stops: write the remaining replies, read nothing */
    CONN_WAITING,    /* a request waits for a load: neither read nor serve */
    CONN_STREAMING,  /* a DIGEST or BACKUP streams its reply: neither read nor serve */
    CONN_WATCHING,   /* a WATCH feed: pushes go out; input is read and dropped */
} conn_state;

typedef struct dep {
    size_t off; /* reply frame offset in the output buffer */
    size_t len;
    uint64_t epoch; /* the batch that must be written first */
} dep;

struct conn {
    int fd;
    conn_state state; /* changed only by conn_set_state() */
    ev_io rio, wio;
    conn_hub *hub;
    tkv_frame_reader in;
    tkv_buf out; /* replies not yet written */
    size_t sent; /* bytes of out already written */
    dep *deps;   /* replies that wait on a batch, in output order */
    size_t ndeps, deps_cap;
    conn_link all, pend, back, wait, strm, wch;
    size_t lingered;  /* bytes dropped while LINGERING */
    tkv_session sess; /* authentication state */
    /* WAITING: the request's frame (in the input buffer), its load, and the
     * state it goes to when served. */
    const uint8_t *wait_frame;
    size_t wait_len;
    unsigned waits; /* loads this request waited for (walks load more each time) */
    unsigned stale; /* of them found stale: at MAX_STALE it runs inline */
    tkv_reader_job *job;
    tkv_stream *stream; /* STREAMING: what produces its frames */
    tkv_watcher *watch; /* WATCHING: its change feed */
    bool repl_wait;     /* WAITING: for replicas to acknowledge (WAIT) */
    conn_state after_wait;
    double last_active; /* loop time of the last byte read or written */
    bool internal;      /* the HTTP front end's (conn_adopt): never idle */
    /* Monotonic microseconds when the request being served was taken from
     * the input; kept across its waits (latency.h). 0: none under way. */
    uint64_t req_start;
    uint64_t id;
    char peer[64];
};

/* ---- intrusive lists -------------------------------------------------- */

#define ALL offsetof(conn, all)
#define PEND offsetof(conn, pend)
#define BACK offsetof(conn, back)
#define WAIT offsetof(conn, wait)
#define STRM offsetof(conn, strm)
#define WCH offsetof(conn, wch)

static conn_link *link_of(conn *c, size_t off) { return (conn_link *)((char *)c + off); }

static void list_add(conn_list *l, conn *c, size_t off)
{
    conn_link *k = link_of(c, off);
    if (k->on)
        return;
    k->on = true;
    k->prev = NULL;
    k->next = l->head;
    if (l->head)
        link_of(l->head, off)->prev = c;
    l->head = c;
    l->n++;
}

static void list_del(conn_list *l, conn *c, size_t off)
{
    conn_link *k = link_of(c, off);
    if (!k->on)
        return;
    if (k->prev)
        link_of(k->prev, off)->next = k->next;
    else
        l->head = k->next;
    if (k->next)
        link_of(k->next, off)->prev = k->prev;
    k->on = false;
    l->n--;
}

/* ---- state ------------------------------------------------------------ */

static bool state_reads(conn_state s)
{
    return s == CONN_READING || s == CONN_LINGERING || s == CONN_WATCHING;
}

static bool state_serves(conn_state s) { return s == CONN_READING || s == CONN_BACKLOGGED; }

/* The one place a connection's state changes. */
static void conn_set_state(conn *c, conn_state to)
{
    conn_hub *h = c->hub;
    /* A stopping server reads no more: nothing may go back to serving. */
    if (h->stopping && (state_serves(to) || to == CONN_THROTTLED || to == CONN_WATCHING))
        to = CONN_STOPPING;
    conn_state from = c->state;
    if (to == from)
        return;
    c->state = to;
    if (state_reads(to) && !state_reads(from))
        ev_io_start(h->loop, &c->rio);
    else if (!state_reads(to) && state_reads(from))
        ev_io_stop(h->loop, &c->rio);
    /* READING keeps its place on the backlog: the fairness cap may have
     * left frames there while the buffer still has room. */
    if (to == CONN_BACKLOGGED)
        list_add(&h->back, c, BACK);
    else if (to != CONN_READING)
        list_del(&h->back, c, BACK);
    if (to == CONN_LINGERING) {
        /* Stop sending (the client sees EOF after the last reply) and drop
         * what it still sends until it closes too. */
        shutdown(c->fd, SHUT_WR);
        c->lingered = 0;
        c->last_active = ev_now(h->loop);
    }
}

/* ---- lifecycle -------------------------------------------------------- */

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static int flush_out(conn *c);

static void conn_close(conn *c, const char *why)
{
    conn_hub *h = c->hub;
    if (why)
        tkv_debug("client %llu (%s) closed: %s", (unsigned long long)c->id, c->peer, why);
    ev_io_stop(h->loop, &c->rio);
    ev_io_stop(h->loop, &c->wio);
    if (c->job)
        tkv_readers_forget(c->job); /* the load still comes back, to no one */
    tkv_stream_free(c->stream);
    tkv_watcher_free(c->watch);
    if (c->repl_wait)
        tkv_repl_wait_cancel(h->repl, c);
    list_del(&h->streams, c, STRM);
    list_del(&h->watchers, c, WCH);
    h->info->watchers = h->watchers.n;
    list_del(&h->all, c, ALL);
    list_del(&h->pend, c, PEND);
    list_del(&h->back, c, BACK);
    list_del(&h->wait, c, WAIT);
    if (c->fd >= 0)
        close(c->fd);
    tkv_frame_reader_deinit(&c->in);
    tkv_buf_deinit(&c->out);
    free(c->deps);
    free(c);
    h->info->conns_current--;
}

static void describe_peer(conn *c, const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_UNIX) {
        snprintf(c->peer, sizeof c->peer, "unix");
        return;
    }
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
    getnameinfo((const struct sockaddr *)sa, sizeof *sa, host, sizeof host, port, sizeof port,
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(c->peer, sizeof c->peer, "%s:%s", host, port);
}

conn *conn_new(conn_hub *h, int fd, const struct sockaddr_storage *sa)
{
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->hub = h;
    c->id = ++h->next_id;
    c->sess.authed = h->disp->auth == NULL;
    c->last_active = ev_now(h->loop);
    /* Until a client authenticates it may only send small frames. */
    size_t max = h->o->max_frame;
    tkv_frame_reader_init(
        &c->in, c->sess.authed || max < TKV_PREAUTH_MAX_FRAME ? max : TKV_PREAUTH_MAX_FRAME);
    if (sa)
        describe_peer(c, sa);
    ev_io_init(&c->rio, on_read, fd, EV_READ);
    ev_io_init(&c->wio, on_write, fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    list_add(&h->all, c, ALL);
    h->info->conns_current++;
    h->info->conns_total++;
    /* calloc left state at READING with the watcher stopped. */
    ev_io_start(h->loop, &c->rio);
    return c;
}

conn *conn_adopt(conn_hub *h, int fd, const char *peer)
{
    conn *c = conn_new(h, fd, NULL);
    if (!c)
        return NULL;
    /* The HTTP front end checked the request's bearer secret itself (or
     * no secret is set), so the connection starts authenticated and takes
     * whole frames; it sits idle between requests by design. */
    c->internal = true;
    c->sess.authed = true;
    c->in.max_frame = h->o->max_frame;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    return c;
}

/* ---- serving requests ------------------------------------------------- */

static size_t unsent(const conn *c) { return c->out.len - c->sent; }

static int add_dep(conn *c, size_t off, size_t len, uint64_t epoch)
{
    if (tkv_grow(&c->deps, &c->deps_cap, c->ndeps + 1, sizeof *c->deps, 16) < 0)
        return -1;
    c->deps[c->ndeps++] = (dep){off, len, epoch};
    list_add(&c->hub->wait, c, WAIT);
    return 0;
}

/* Answers an oversize frame: the stream cannot be resynchronised once a
 * length is refused, so the connection ends after this reply. */
static void refuse_frame(conn *c)
{
    char msg[160];
    snprintf(msg, sizeof msg, "frame of %u bytes exceeds the maximum of %zu", c->in.bad_len,
             c->in.max_frame);
    tkv_write_error(&c->out, TKV_ST_TOO_LARGE, msg);
    conn_set_state(c, CONN_REFUSED);
    list_add(&c->hub->pend, c, PEND);
}

/* A stream's helper finished a step: the loop wakes, and its prepare
 * watcher runs conn_stream_steps(), which picks the step's frames up. */
static void on_stream_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs on a stream's helper thread. */
static void wake_streams(void *ctx)
{
    conn_hub *h = ctx;
    ev_async_send(h->loop, &h->stream_wake);
}

/* The request is a DIGEST or BACKUP: its stream starts (the caller moves
 * the connection to STREAMING). Returns TKV_DISPATCH_WAIT, or -1 if out of
 * memory. */
static int start_stream(conn *c)
{
    conn_hub *h = c->hub;
    const tkv_stream_req *r = &c->sess.stream;
    size_t chunk = h->o->max_frame > STREAM_CHUNK + 64 ? STREAM_CHUNK : h->o->max_frame - 64;
    if (!h->stream_wake_on) {
        ev_async_init(&h->stream_wake, on_stream_wake);
        ev_async_start(h->loop, &h->stream_wake);
        h->stream_wake_on = true;
    }
    c->stream = tkv_stream_new(h->disp->eng, r->cmd, r->has_at, r->at, chunk, wake_streams, h);
    if (!c->stream)
        return -1;
    list_add(&h->streams, c, STRM);
    return TKV_DISPATCH_WAIT;
}

/* WATCH: the connection becomes a watcher (the caller moves it to
 * WATCHING) and is fed from the next loop turn on; or, refused, goes on.
 * Returns TKV_DISPATCH_WAIT when watching, the reply's status when
 * refused, -1 if out of memory. */
static int start_watch(conn *c, bool *dirty)
{
    conn_hub *h = c->hub;
    *dirty = false;
    if (h->stopping) /* a WATCH its drain served: there is nothing to follow */
        return tkv_write_error(&c->out, TKV_ST_BUSY, "the server is shutting down") < 0
                   ? -1
                   : TKV_ST_BUSY;
    if (tkv_watcher_start(&c->sess.watch, h->repl, h->disp->eng, &c->out, &c->watch) < 0)
        return -1;
    if (!c->watch)
        return TKV_ST_BAD_REQUEST;
    list_add(&h->watchers, c, WCH);
    h->info->watchers = h->watchers.n;
    tkv_debug("client %llu (%s) watches from offset %llu", (unsigned long long)c->id, c->peer,
              (unsigned long long)tkv_watcher_offset(c->watch));
    return TKV_DISPATCH_WAIT;
}

/* PSYNC: the socket becomes a replication link (replication.h), with the
 * replies this connection had not sent yet; the connection ends here. A
 * replica waits for each reply before its PSYNC, so none waits for a
 * batch. */
static void hand_over(conn *c)
{
    conn_hub *h = c->hub;
    tkv_info("client %llu (%s) is a replica now", (unsigned long long)c->id, c->peer);
    ev_io_stop(h->loop, &c->rio);
    ev_io_stop(h->loop, &c->wio);
    int fd = c->fd;
    c->fd = -1;
    tkv_repl_attach(h->repl, fd, c->peer, &c->sess.repl.replid, c->sess.repl.offset,
                    c->out.data + c->sent, unsent(c));
    conn_close(c, NULL);
}

/* Runs a request through the dispatcher, or queues the load it waits for.
 * Returns the dispatcher's result, or TKV_DISPATCH_WAIT with c->job set. */
static int dispatch(conn *c, const uint8_t *f, size_t n, bool *dirty)
{
    conn_hub *h = c->hub;
    int rc;
    tkv_eng_load *l = NULL;
    if (!h->readers || c->stale >= MAX_STALE)
        rc = tkv_dispatch_session(h->disp, &c->sess, f, n, &c->out, dirty);
    else
        rc = tkv_dispatch_try(h->disp, &c->sess, f, n, &c->out, dirty, c->waits, &l);
    if (rc == TKV_DISPATCH_STREAM)
        return start_stream(c);
    if (rc == TKV_DISPATCH_WATCH)
        return start_watch(c, dirty);
    if (rc == TKV_DISPATCH_REPLWAIT) {
        const tkv_repl_req *q = &c->sess.repl;
        if (tkv_repl_wait(h->repl, c, q->nreplicas, q->timeout_ms, tkv_engine_epoch(h->disp->eng)) <
            0)
            return -1;
        c->repl_wait = true;
        c->wait_frame = f;
        c->wait_len = n;
        return TKV_DISPATCH_WAIT;
    }
    if (rc != TKV_DISPATCH_WAIT)
        return rc;
    if ((c->job = tkv_readers_submit(h->readers, l, c)) != NULL) {
        c->wait_frame = f;
        c->wait_len = n;
        return rc;
    }
    tkv_engine_load_free(h->disp->eng, l);
    return tkv_dispatch_session(h->disp, &c->sess, f, n, &c->out, dirty);
}

/* The request under way is answered (or its stream or feed has started):
 * its latency is counted. */
static void request_done(conn *c)
{
    tkv_dispatch *d = c->hub->disp;
    uint64_t now = tkv_clock_mono_us(), us = now - c->req_start;
    c->hub->served_at = now;
    c->req_start = 0;
    if (c->sess.last_cmd < 0) /* it did not parse: no command to count it under */
        return;
    tkv_cmd cmd = (tkv_cmd)c->sess.last_cmd;
    if (d->lat)
        tkv_latency_record(d->lat, cmd, us);
    /* SLOWLOG itself is left out: polling the log would fill it. */
    if (d->slow && cmd != TKV_CMD_SLOWLOG && tkv_slowlog_wants(d->slow, us))
        tkv_slowlog_add(d->slow, tkv_clock_realtime_us(), us, cmd, c->sess.last_key, c->peer);
}

/* Runs one request frame and queues its reply. Returns -1 if c was closed,
 * 1 if the request waits for a load (c->job) or streams (c->stream), 0
 * when it was served. */
static int serve_frame(conn *c, const uint8_t *f, size_t n)
{
    conn_hub *h = c->hub;
    size_t off = c->out.len;
    bool dirty, was_authed = c->sess.authed;
    if (c->req_start == 0)
        c->req_start = h->served_at ? h->served_at : tkv_clock_mono_us();
    int rc = dispatch(c, f, n, &dirty);
    if (rc == TKV_DISPATCH_PSYNC && c->ndeps == 0) {
        request_done(c);
        hand_over(c);
        return -1;
    }
    if (rc == TKV_DISPATCH_PSYNC) {
        /* Its replies that wait for a batch would leave unsettled with the
         * socket: a replica sends PSYNC alone. */
        rc = tkv_write_error(&c->out, TKV_ST_BAD_REQUEST,
                             "PSYNC after writes whose replies are not out yet") < 0
                 ? -1
                 : TKV_ST_BAD_REQUEST;
        dirty = false;
    }
    if (rc == TKV_DISPATCH_WAIT) {
        if (c->stream || c->watch) {
            request_done(c);
            list_add(&h->pend, c, PEND); /* replies before it still go */
        }
        return 1;
    }
    request_done(c);
    c->waits = c->stale = 0;
    if (rc < 0 ||
        (dirty && add_dep(c, off, c->out.len - off, tkv_engine_epoch(h->disp->eng)) < 0)) {
        tkv_error("out of memory serving client %llu", (unsigned long long)c->id);
        conn_close(c, NULL);
        return -1;
    }
    if (c->sess.authed && !was_authed)
        c->in.max_frame = h->o->max_frame;
    list_add(&h->pend, c, PEND);
    return 0;
}

/* Why serve() stopped; the caller picks the state that follows. */
typedef enum serve_end {
    SERVED_ALL,     /* no complete frame left in the buffer */
    SERVED_CAP,     /* the budget ran out with frames left */
    SERVED_FULL,    /* unread replies passed the high water */
    SERVED_REFUSED, /* an oversize frame: now REFUSED */
    SERVED_WAITING, /* a request waits for a load or streams: the caller moves
                       to wait_state() */
    SERVED_CLOSED,  /* c was closed and freed */
} serve_end;

/* Frames looked at ahead of serving them. Past about a dozen the core has
 * no more room for misses in flight. */
#define PREFETCH 16

/* Looks at up to PREFETCH buffered frames and has what they will touch
 * brought toward the cache (a pipeline's lookups then miss in parallel,
 * not one after another). Returns how many frames the next look may wait
 * for. */
static uint32_t prefetch_ahead(conn *c)
{
    const uint8_t *f[PREFETCH];
    size_t n[PREFETCH], pos = 0;
    uint32_t k = 0;
    while (k < PREFETCH && tkv_frame_reader_peek(&c->in, &pos, &f[k], &n[k]) == TKV_FRAME_OK)
        k++;
    if (k > 1)
        tkv_dispatch_prefetch(c->hub->disp, f, n, k);
    return k ? k : 1;
}

/* Serves up to `budget` buffered requests; with drain, ignores the output
 * high water (the client has stopped sending or the server is stopping). */
static serve_end serve(conn *c, uint32_t budget, bool drain)
{
    const tkv_server_opts *o = c->hub->o;
    uint32_t ahead = 0;
    c->hub->served_at = 0; /* the run's first request reads the clock */
    while (budget-- > 0) {
        if (unsent(c) > o->max_output) {
            tkv_warn("client %llu (%s) dropped: %zu bytes of unread replies",
                     (unsigned long long)c->id, c->peer, unsent(c));
            conn_close(c, NULL);
            return SERVED_CLOSED;
        }
        if (unsent(c) > o->output_high_water && !drain)
            return SERVED_FULL;
        if (ahead == 0)
            ahead = prefetch_ahead(c);
        ahead--;
        const uint8_t *f;
        size_t n;
        int rc = tkv_frame_reader_next(&c->in, &f, &n);
        if (rc == TKV_FRAME_AGAIN) {
            tkv_frame_reader_shrink(&c->in, KEEP_BUF);
            return SERVED_ALL;
        }
        if (rc < 0) {
            refuse_frame(c);
            return SERVED_REFUSED;
        }
        int served = serve_frame(c, f, n);
        if (served < 0)
            return SERVED_CLOSED;
        if (served > 0)
            return SERVED_WAITING;
    }
    return SERVED_CAP;
}

/* Where a connection whose request could not be answered at once waits. */
static conn_state wait_state(const conn *c)
{
    return c->watch ? CONN_WATCHING : c->stream ? CONN_STREAMING : CONN_WAITING;
}

/* Serves a fair share of a READING or BACKLOGGED connection's requests. */
static void serve_share(conn *c)
{
    switch (serve(c, c->hub->o->max_pipeline, false)) {
    case SERVED_ALL:
        list_del(&c->hub->back, c, BACK);
        conn_set_state(c, CONN_READING);
        break;
    case SERVED_CAP:
        /* Finish next iteration, after the other clients. */
        list_add(&c->hub->back, c, BACK);
        break;
    case SERVED_FULL: conn_set_state(c, CONN_THROTTLED); break;
    case SERVED_WAITING:
        c->after_wait = CONN_READING;
        conn_set_state(c, wait_state(c));
        break;
    case SERVED_REFUSED:
    case SERVED_CLOSED: break;
    }
}

/* Serves everything buffered, then moves to `then` (CLOSING or STOPPING)
 * unless the connection was refused on the way. Returns -1 if c was
 * closed. */
static int serve_all_then(conn *c, conn_state then)
{
    serve_end e = serve(c, UINT32_MAX, true);
    if (e == SERVED_CLOSED)
        return -1;
    if (e == SERVED_WAITING) {
        c->after_wait = then;
        conn_set_state(c, wait_state(c));
    } else if (e != SERVED_REFUSED) {
        conn_set_state(c, then);
    }
    return 0;
}

void conn_serve_backlog(conn_hub *h)
{
    /* Detach the backlog first: serving a connection may put it back. */
    conn *c = h->back.head;
    h->back.head = NULL;
    h->back.n = 0;
    while (c) {
        conn *next = c->back.next;
        c->back.on = false;
        c->back.prev = c->back.next = NULL;
        serve_share(c);
        c = next;
    }
}

/* A WAITING or STREAMING connection's request is answered: it goes where
 * it was going. May close c. */
static void resume(conn *c)
{
    conn_state then = c->hub->stopping ? CONN_STOPPING : c->after_wait;
    if (then == CONN_READING) {
        conn_set_state(c, CONN_READING);
        serve_share(c);
    } else {
        serve_all_then(c, then);
    }
}

void conn_load_done(void *ctx, tkv_eng_load *l, void *cookie)
{
    conn_hub *h = ctx;
    int installed = tkv_engine_load_install(h->disp->eng, l);
    conn *c = cookie;
    if (!c)
        return;
    c->job = NULL;
    c->waits++;
    c->stale = installed < 0 ? MAX_STALE : c->stale + (installed == 0);
    h->served_at = 0;
    int rc = serve_frame(c, c->wait_frame, c->wait_len);
    if (rc != 0)
        return; /* closed, or waiting for another load */
    resume(c);
}

void conn_repl_wait_done(void *cookie, uint64_t acked)
{
    conn *c = cookie;
    c->repl_wait = false;
    c->sess.repl.wait_done = true;
    c->sess.repl.acked = acked;
    c->hub->served_at = 0;
    if (serve_frame(c, c->wait_frame, c->wait_len) != 0)
        return;
    resume(c);
}

/* ---- streams ---------------------------------------------------------- */

static void end_stream(conn *c)
{
    tkv_stream_free(c->stream);
    c->stream = NULL;
    list_del(&c->hub->streams, c, STRM);
}

/* Ends a stream early with an error frame, and the connection goes on.
 * If the store failed: a stream's dump holds a snapshot of it, and
 * recovery reopens the store only once no dump is open (dump.h), so the
 * stream ends with STORAGE - rather than hold recovery back for as long as
 * its reader takes, which for a reader that stopped reading is forever.
 * If the server stops: a stream that began after conn_stop_all (a request
 * its drain served) ends BUSY like the ones it cut. May close c. */
static void cut_stream(conn *c, bool failing)
{
    const char *why = c->hub->stopping ? "the server is shutting down"
                                       : "this replica is loading a full copy from its primary";
    int rc = failing ? tkv_stream_fail(c->stream, &c->out,
                                       "the store failed; try again once it has recovered")
                     : tkv_stream_abort(c->stream, &c->out, why);
    if (rc < 0) {
        conn_close(c, "out of memory");
        return;
    }
    end_stream(c);
    list_add(&c->hub->pend, c, PEND);
    resume(c);
}

bool conn_stream_steps(conn_hub *h)
{
    bool more = false;
    bool failing = tkv_engine_failing(h->disp->eng);
    for (conn *c = h->streams.head, *next; c; c = next) {
        next = c->strm.next;
        /* A replica about to empty its store for a full copy: the dump
         * would hold the store, and the copy replaces what it shows. */
        if (failing || h->stopping || !tkv_repl_serving(h->repl)) {
            cut_stream(c, failing);
            continue;
        }
        if (unsent(c) > h->o->output_high_water || !tkv_stream_ready(c->stream))
            continue; /* flush_out or a commit wakes the loop again */
        int rc = tkv_stream_step(c->stream, &c->out);
        /* The server works for it: not idle (--timeout), however long a
         * DIGEST runs before its one reply. A reader that stops reading
         * stops the steps, and then does count as idle. */
        c->last_active = ev_now(h->loop);
        if (rc < 0) {
            tkv_error("out of memory streaming to client %llu", (unsigned long long)c->id);
            conn_close(c, NULL);
            continue;
        }
        list_add(&h->pend, c, PEND);
        if (rc == 0) {
            /* With a helper the step is under way and will wake the loop;
             * without one the loop must not sleep. */
            more |= unsent(c) <= h->o->output_high_water && tkv_stream_ready(c->stream);
            continue;
        }
        end_stream(c);
        resume(c);
    }
    return more;
}

/* ---- watchers --------------------------------------------------------- */

static void end_watch(conn *c)
{
    tkv_watcher_free(c->watch);
    c->watch = NULL;
    list_del(&c->hub->watchers, c, WCH);
    c->hub->info->watchers = c->hub->watchers.n;
}

/* Unread pushes passed --max-output: the watcher is dropped, with an
 * error frame if the socket still takes it. Its client resumes from the
 * last whole batch it read. */
static void drop_watcher(conn *c)
{
    char msg[200];
    tkv_warn("client %llu (%s) dropped: %zu bytes of unread changes", (unsigned long long)c->id,
             c->peer, unsent(c));
    snprintf(msg, sizeof msg,
             "dropped: unread changes passed --max-output; WATCH again from the last offset read");
    end_watch(c);
    if (tkv_write_error(&c->out, TKV_ST_BUSY, msg) == 0 && flush_out(c) < 0)
        return;
    conn_close(c, NULL);
}

bool conn_watch_feed(conn_hub *h)
{
    bool any_more = false;
    for (conn *c = h->watchers.head, *next; c; c = next) {
        next = c->wch.next;
        /* Fed up to the output high water, as a replica link is: a watcher
         * that reads slowly lags in the backlog, not in memory here. */
        if (unsent(c) >= h->o->output_high_water)
            continue; /* its socket's progress (on_write) brings it back */
        size_t before = c->out.len;
        bool more;
        int rc = tkv_watcher_feed(c->watch, h->repl, h->disp->eng, &c->out,
                                  h->o->output_high_water - unsent(c), &more);
        if (rc < 0) {
            conn_close(c, "out of memory");
            continue;
        }
        if (rc > 0) {
            end_watch(c);
            conn_set_state(c, CONN_CLOSING);
        } else if (unsent(c) > h->o->max_output) {
            /* One batch's pushes can pass the high water; past
             * --max-output even after writing what the socket takes, the
             * watcher goes. */
            if (flush_out(c) < 0)
                continue;
            if (unsent(c) > h->o->max_output) {
                drop_watcher(c);
                continue;
            }
        }
        any_more |= rc == 0 && more && unsent(c) < h->o->output_high_water;
        if (c->out.len != before)
            list_add(&h->pend, c, PEND);
    }
    return any_more;
}

/* ---- reading ---------------------------------------------------------- */

static void read_requests(conn *c)
{
    conn_hub *h = c->hub;
    uint8_t *p;
    size_t avail;
    if (tkv_frame_reader_space(&c->in, READ_CHUNK, &p, &avail) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    if (avail == 0) {
        conn_set_state(c, CONN_BACKLOGGED);
        return;
    }
    ssize_t n = read(c->fd, p, avail);
    if (n > 0) {
        c->last_active = ev_now(h->loop);
        tkv_frame_reader_commit(&c->in, (size_t)n);
        h->info->bytes_in += (uint64_t)n;
        serve_share(c);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        conn_close(c, strerror(errno));
        return;
    }
    /* EOF: answer what already arrived, then close. */
    if (serve_all_then(c, CONN_CLOSING) == 0)
        list_add(&h->pend, c, PEND);
}

/* LINGERING: reads and drops input until EOF, LINGER_MAX_BYTES or
 * LINGER_SECONDS, a bounded amount per event. */
static void drop_input(conn *c)
{
    char sink[READ_CHUNK];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(c->fd, sink, sizeof sink);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) {
            conn_close(c, n == 0 ? "closed after its last reply" : strerror(errno));
            return;
        }
        c->lingered += (size_t)n;
        if (c->lingered > LINGER_MAX_BYTES ||
            ev_now(c->hub->loop) - c->last_active > LINGER_SECONDS) {
            conn_close(c, "closed after its last reply (input dropped)");
            return;
        }
    }
}

/* WATCHING: input is read only to notice the close (a watcher that went
 * away stops costing a feed at once); what it sends is dropped. */
static void watch_input(conn *c)
{
    char sink[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(c->fd, sink, sizeof sink);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) {
            conn_close(c, n == 0 ? "closed its watch" : strerror(errno));
            return;
        }
    }
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    conn *c = w->data;
    if (c->state == CONN_WATCHING)
        watch_input(c);
    else if (c->state == CONN_LINGERING)
        drop_input(c);
    else
        read_requests(c);
}

/* ---- writing ---------------------------------------------------------- */

/* Every reply is written: the state decides what follows. Returns -1 if c
 * was closed. */
static int output_drained(conn *c)
{
    conn_hub *h = c->hub;
    c->out.len = c->sent = 0;
    tkv_buf_shrink(&c->out, KEEP_BUF);
    switch (c->state) {
    case CONN_REFUSED:
        /* A stopping server does not linger. */
        if (!h->stopping) {
            conn_set_state(c, CONN_LINGERING);
            return 0;
        }
        conn_close(c, "closed after its last reply");
        return -1;
    case CONN_CLOSING: conn_close(c, "closed after its last reply"); return -1;
    case CONN_THROTTLED:
        conn_set_state(c, CONN_READING);
        if (tkv_frame_reader_pending(&c->in) > 0)
            list_add(&h->back, c, BACK);
        return 0;
    default: return 0;
    }
}

/* Writes as much output as the socket takes, up to the first reply that
 * waits for a batch. Returns -1 if c was closed. */
static int flush_out(conn *c)
{
    conn_hub *h = c->hub;
    size_t limit = c->ndeps > 0 ? c->deps[0].off : c->out.len;
    while (c->sent < limit) {
        ssize_t n = send(c->fd, c->out.data + c->sent, limit - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            h->info->bytes_out += (uint64_t)n;
            c->last_active = ev_now(h->loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(h->loop, &c->wio);
            return 0;
        }
        conn_close(c, n < 0 ? strerror(errno) : "write returned 0");
        return -1;
    }
    ev_io_stop(h->loop, &c->wio);
    if (c->sent < c->out.len)
        return 0; /* the rest waits for a batch to be written */
    return output_drained(c);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents) { flush_out(w->data); }

void conn_flush_pending(conn_hub *h)
{
    for (conn *c = h->pend.head, *next; c; c = next) {
        next = c->pend.next;
        list_del(&h->pend, c, PEND);
        flush_out(c);
    }
}

/* ---- replies that wait for a batch ------------------------------------ */

void conn_release(conn_hub *h, uint64_t epoch)
{
    for (conn *c = h->wait.head, *next; c; c = next) {
        next = c->wait.next;
        size_t k = 0;
        while (k < c->ndeps && c->deps[k].epoch <= epoch)
            k++;
        if (k == 0)
            continue;
        memmove(c->deps, c->deps + k, (c->ndeps - k) * sizeof *c->deps);
        c->ndeps -= k;
        if (c->ndeps == 0)
            list_del(&h->wait, c, WAIT);
        list_add(&h->pend, c, PEND);
    }
}

/* Replaces every reply of c that waits for a batch by an error. All of
 * them depend on the failed batch or on a later one, which failed with it.
 * A failed batch is the engine's storage failure, mapped like any other. */
static int withdraw_deps(conn *c, const char *why)
{
    tkv_buf nb;
    tkv_buf_init(&nb);
    size_t at = 0;
    char msg[320];
    snprintf(msg, sizeof msg, "not written: %s", why);
    for (size_t i = 0; i < c->ndeps; i++) {
        if (tkv_buf_append(&nb, c->out.data + at, c->deps[i].off - at) < 0 ||
            tkv_write_error(&nb, tkv_wire_status(TKV_E_STORAGE), msg) < 0) {
            tkv_buf_deinit(&nb);
            return -1;
        }
        at = c->deps[i].off + c->deps[i].len;
    }
    if (tkv_buf_append(&nb, c->out.data + at, c->out.len - at) < 0) {
        tkv_buf_deinit(&nb);
        return -1;
    }
    tkv_buf_deinit(&c->out);
    c->out = nb;
    c->ndeps = 0;
    list_del(&c->hub->wait, c, WAIT);
    return 0;
}

void conn_withdraw(conn_hub *h, const char *why)
{
    for (conn *c = h->wait.head, *next; c; c = next) {
        next = c->wait.next;
        list_add(&h->pend, c, PEND);
        if (withdraw_deps(c, why) < 0)
            conn_close(c, "out of memory");
    }
}

/* ---- every connection ------------------------------------------------- */

void conn_close_idle(conn_hub *h, double now)
{
    double idle = h->o->idle_timeout;
    for (conn *c = h->all.head, *next; c; c = next) {
        next = c->all.next;
        if (c->state == CONN_LINGERING && now - c->last_active > LINGER_SECONDS)
            conn_close(c, "closed after its last reply (linger timeout)");
        else if (idle > 0 && c->state != CONN_WATCHING && !c->internal &&
                 now - c->last_active > idle)
            conn_close(c, "idle timeout");
    }
}

/* The server stops: a stream under way ends with an error frame (a backup
 * the client could not finish is no backup) and its replies go out. */
static void stop_stream(conn *c)
{
    if (tkv_stream_abort(c->stream, &c->out, "the server is shutting down") < 0) {
        conn_close(c, "out of memory");
        return;
    }
    end_stream(c);
    list_add(&c->hub->pend, c, PEND);
    conn_set_state(c, CONN_STOPPING);
}

/* The server stops: a watch ends with an error frame. */
static void stop_watch(conn *c)
{
    end_watch(c);
    if (tkv_write_error(&c->out, TKV_ST_BUSY, "the server is shutting down") < 0) {
        conn_close(c, "out of memory");
        return;
    }
    list_add(&c->hub->pend, c, PEND);
    conn_set_state(c, CONN_STOPPING);
}

void conn_stop_all(conn_hub *h)
{
    h->stopping = true;
    for (conn *c = h->all.head, *next; c; c = next) {
        next = c->all.next;
        if (state_serves(c->state) || c->state == CONN_THROTTLED)
            serve_all_then(c, CONN_STOPPING);
        else if (c->state == CONN_WAITING)
            c->after_wait = CONN_STOPPING;
        else if (c->state == CONN_STREAMING)
            stop_stream(c);
        else if (c->state == CONN_WATCHING)
            stop_watch(c);
        else if (c->state == CONN_LINGERING)
            conn_set_state(c, CONN_STOPPING);
    }
}

bool conn_any_unsent(const conn_hub *h)
{
    for (const conn *c = h->all.head; c; c = c->all.next)
        if (unsent(c) > 0 || c->state == CONN_WAITING || c->state == CONN_STREAMING)
            return true;
    return false;
}

void conn_close_all(conn_hub *h)
{
    while (h->all.head)
        conn_close(h->all.head, NULL);
    if (h->stream_wake_on) {
        ev_async_stop(h->loop, &h->stream_wake);
        h->stream_wake_on = false;
    }
}
