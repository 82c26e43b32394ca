/*
 * async.c - implements libtkvclient's non-blocking API (tkv/async.h).
 *
 * An async context wraps an ordinary tkv_ctx and uses only the parts of it
 * that do no I/O: the request encoders (tkv_append_*, which queue a frame
 * in its output buffer and the command in its op ring), its frame reader
 * and the reply decoder (cl_decode()), which fills the same tkv_reply the
 * pipelined blocking API returns. This file adds the socket work the event
 * loop drives, and a ring of callbacks parallel to the op ring: the n-th
 * reply goes to the n-th callback.
 *
 * The design is hiredis's async.c. The library never waits: it tells the
 * loop what it wants through hooks (want_events() is the one place that
 * decides) and does what it can when the loop says the socket is ready.
 * A command only encodes and arms the write watcher, so every command
 * issued in one loop iteration leaves in one send().
 *
 * Re-entrancy: user code runs only in call_*() below, with in_cb raised.
 * A callback may issue commands (they only append), ask to disconnect
 * (closing) or to free (free_asked); the library acts on those once the
 * callback has returned, at the points that check after_cb(). teardown()
 * is the only way out, and it frees the context, so every path that may
 * reach it returns at once without touching ac again.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "grow.h"
#include "client_int.h"
#include "sockopt.h"
#include "tkv/async.h"

#define READ_CHUNK (64 * 1024)
/* Reads per readable event: one busy connection must not keep the loop
 * from its other descriptors (level-triggered, it is called again). */
#define READS_PER_EVENT 16

typedef enum as_state {
    AS_CONNECTING, /* connect() issued, the loop has not reported it yet */
    AS_CONNECTED,
    AS_GONE, /* teardown() is running: nothing new starts */
} as_state;

typedef struct as_pending {
    tkv_async_cb cb;
    void *privdata;
} as_pending;

struct tkv_async {
    tkv_ctx *c;                 /* encoders, op ring, frame reader, decoded replies, error */
    as_state state;             /* changes only in finish_connect() and teardown() */
    int connect_errno;          /* a connect that failed at once, reported by the loop */
    struct addrinfo *addrs;     /* the host's addresses, until connected or failed */
    struct addrinfo *addr_next; /* tried if the one being connected to fails */
    bool closing;               /* tkv_async_disconnect(): no new commands, end when idle */
    bool free_asked;            /* tkv_async_free() from a callback: done when it returns */
    int in_cb;                  /* user callbacks running (nesting depth) */
    tkv_async_hooks ev;
    bool hooked;           /* ev set by an adapter */
    bool reading, writing; /* what the hooks were last told */
    as_pending *cbs;       /* ring of callbacks, one per reply awaited */
    size_t cbs_cap, cbs_head, cbs_n;
    tkv_async_conn_cb on_connect, on_disconnect;
    void *data;
};

/* ---- events ---------------------------------------------------------------- */

int tkv_async_wants(const tkv_async *ac)
{
    if (ac->state == AS_GONE || ac->c->fd < 0)
        return 0;
    /* A non-blocking connect completes (or fails) as writability. */
    if (ac->state == AS_CONNECTING)
        return TKV_ASYNC_WRITE;
    int w = TKV_ASYNC_READ;
    if (ac->c->out_sent < ac->c->out.len)
        w |= TKV_ASYNC_WRITE;
    return w;
}

/* Tells the loop about every change in what the context wants. */
static void update_events(tkv_async *ac)
{
    if (!ac->hooked)
        return;
    int w = tkv_async_wants(ac);
    bool r = (w & TKV_ASYNC_READ) != 0, wr = (w & TKV_ASYNC_WRITE) != 0;
    if (r != ac->reading) {
        ac->reading = r;
        if (r ? ac->ev.add_read != NULL : ac->ev.del_read != NULL)
            (r ? ac->ev.add_read : ac->ev.del_read)(ac->ev.data);
    }
    if (wr != ac->writing) {
        ac->writing = wr;
        if (wr ? ac->ev.add_write != NULL : ac->ev.del_write != NULL)
            (wr ? ac->ev.add_write : ac->ev.del_write)(ac->ev.data);
    }
}

int tkv_async_set_hooks(tkv_async *ac, const tkv_async_hooks *hooks)
{
    if (ac->hooked)
        return cl_set_err(ac->c, TKV_EK_USAGE, "the context is attached to a loop already");
    ac->ev = *hooks;
    ac->hooked = true;
    ac->reading = ac->writing = false;
    update_events(ac);
    return TKV_OK;
}

/* ---- the callback ring --------------------------------------------------- */

static int reserve_cb(tkv_async *ac)
{
    if (ac->cbs_n < ac->cbs_cap)
        return TKV_OK;
    /* Copied out in order, as client.c's op ring. */
    size_t cap = tkv_grow_cap(ac->cbs_cap, ac->cbs_n + 1, 64);
    as_pending *r = cap ? malloc(cap * sizeof *r) : NULL;
    if (!r)
        return cl_set_err(ac->c, TKV_EK_NOMEM, "out of memory");
    for (size_t i = 0; i < ac->cbs_n; i++)
        r[i] = ac->cbs[(ac->cbs_head + i) % ac->cbs_cap];
    free(ac->cbs);
    ac->cbs = r;
    ac->cbs_cap = cap;
    ac->cbs_head = 0;
    return TKV_OK;
}

static as_pending pop_cb(tkv_async *ac)
{
    as_pending p = ac->cbs[ac->cbs_head];
    ac->cbs_head = (ac->cbs_head + 1) % ac->cbs_cap;
    ac->cbs_n--;
    return p;
}

static void call_reply(tkv_async *ac, as_pending p, const tkv_reply *r)
{
    if (!p.cb)
        return;
    ac->in_cb++;
    p.cb(ac, r, p.privdata);
    ac->in_cb--;
}

static void call_conn(tkv_async *ac, tkv_async_conn_cb fn, int status)
{
    if (!fn)
        return;
    ac->in_cb++;
    fn(ac, status);
    ac->in_cb--;
}

/* ---- the end --------------------------------------------------------------- */

/* Ends the connection and frees the context: pending callbacks get NULL,
 * then the connect callback (a connect that failed) or the disconnect
 * callback (a connection that was made), then the adapter's cleanup. */
static void teardown(tkv_async *ac, int status)
{
    bool was_connected = ac->state == AS_CONNECTED;
    ac->state = AS_GONE;
    update_events(ac);
    if (ac->c->fd >= 0)
        close(ac->c->fd);
    ac->c->fd = -1;
    if (ac->c->err == TKV_EK_NONE || ac->c->err == TKV_EK_SERVER || ac->c->err == TKV_EK_READONLY ||
        ac->c->err == TKV_EK_USAGE)
        cl_set_err(ac->c, TKV_EK_EOF, "disconnected before the reply came");
    while (ac->cbs_n > 0)
        call_reply(ac, pop_cb(ac), NULL);
    if (was_connected)
        call_conn(ac, ac->on_disconnect, status);
    else if (status == TKV_ERR)
        call_conn(ac, ac->on_connect, TKV_ERR);
    if (ac->hooked && ac->ev.cleanup)
        ac->ev.cleanup(ac->ev.data);
    if (ac->addrs)
        freeaddrinfo(ac->addrs);
    tkv_free(ac->c);
    free(ac->cbs);
    free(ac);
}

/* After user code ran: acts on a free or disconnect it asked for. Returns
 * true if the context is gone. */
static bool after_cb(tkv_async *ac)
{
    if (ac->in_cb > 0)
        return false;
    if (ac->free_asked) {
        teardown(ac, TKV_OK);
        return true;
    }
    if (ac->closing && ac->cbs_n == 0 && ac->state == AS_CONNECTED) {
        teardown(ac, TKV_OK);
        return true;
    }
    return false;
}

void tkv_async_free(tkv_async *ac)
{
    if (!ac)
        return;
    if (ac->in_cb > 0 || ac->state == AS_GONE) {
        ac->free_asked = true;
        return;
    }
    teardown(ac, TKV_OK);
}

void tkv_async_disconnect(tkv_async *ac)
{
    if (ac->state == AS_GONE)
        return;
    ac->closing = true;
    if (ac->in_cb == 0 && ac->cbs_n == 0)
        teardown(ac, TKV_OK);
}

/* ---- connecting -------------------------------------------------------------- */

static tkv_async *new_async(void)
{
    tkv_async *ac = calloc(1, sizeof *ac);
    if (!ac)
        return NULL;
    ac->c = cl_new();
    if (!ac->c) {
        free(ac);
        return NULL;
    }
    return ac;
}

/* Starts a non-blocking connect; 0 if under way (or made), else errno.
 * A new socket takes the old one's descriptor number (dup3): the loop may
 * be watching that number already. */
static int start_connect(tkv_async *ac, int family, const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    if (ac->c->fd >= 0) {
        int err = dup3(fd, ac->c->fd, O_CLOEXEC) < 0 ? errno : 0;
        close(fd);
        if (err)
            return err;
        fd = ac->c->fd;
    }
    ac->c->fd = fd;
    if (connect(fd, sa, len) == 0 || errno == EINPROGRESS)
        return 0;
    return errno;
}

/* Starts a connect to the next of the host's addresses that takes one,
 * as the blocking dial() does; 0 if one is under way, else the last
 * errno (the last socket is kept, for the loop to report its error). */
static int connect_next(tkv_async *ac)
{
    int err = ENOENT;
    while (ac->addr_next) {
        struct addrinfo *ai = ac->addr_next;
        ac->addr_next = ai->ai_next;
        err = start_connect(ac, ai->ai_family, ai->ai_addr, ai->ai_addrlen);
        if (err == 0)
            break;
    }
    ac->connect_errno = err;
    return err;
}

tkv_async *tkv_async_connect(const char *host, uint16_t port)
{
    tkv_async *ac = new_async();
    if (!ac)
        return NULL;
    if (cl_set_addr(ac->c, host, port, NULL) < 0)
        return ac;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        cl_set_err(ac->c, TKV_EK_IO, "cannot resolve %s: %s", host, gai_strerror(rc));
        return ac;
    }
    /* Kept: should this address refuse, finish_connect() tries the next. */
    ac->addrs = ac->addr_next = res;
    int err = connect_next(ac);
    if (ac->c->fd < 0)
        cl_set_err(ac->c, TKV_EK_IO, "socket: %s", strerror(err));
    return ac;
}

tkv_async *tkv_async_connect_unix(const char *path)
{
    tkv_async *ac = new_async();
    if (!ac)
        return NULL;
    struct sockaddr_un sa;
    if (cl_set_addr(ac->c, NULL, 0, path) < 0 || cl_unix_addr(ac->c, path, &sa) < 0)
        return ac;
    int err = start_connect(ac, AF_UNIX, (const struct sockaddr *)&sa, sizeof sa);
    if (ac->c->fd < 0)
        cl_set_err(ac->c, TKV_EK_IO, "socket: %s", strerror(err));
    ac->connect_errno = err;
    return ac;
}

/* The loop reported the connect's outcome. TKV_OK, or TKV_ERR if the
 * context is gone. */
static int finish_connect(tkv_async *ac)
{
    tkv_ctx *c = ac->c;
    int err = ac->connect_errno;
    socklen_t len = sizeof err;
    if (err == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0 && ac->addr_next) {
        /* The watcher stops while the descriptor changes under it and
         * starts again after (an adapter re-arms it on add_write). */
        if (ac->hooked && ac->writing && ac->ev.del_write)
            ac->ev.del_write(ac->ev.data);
        ac->writing = false;
        if (connect_next(ac) == 0) {
            update_events(ac);
            return TKV_OK;
        }
        err = ac->connect_errno;
    }
    if (ac->addrs) {
        freeaddrinfo(ac->addrs);
        ac->addrs = ac->addr_next = NULL;
    }
    if (err != 0) {
        /* A full backlog: the blocking connect retries until its timeout,
         * but this context has no timer to retry from, so it says so and
         * the program, which owns the loop's timers, decides. */
        if (c->unix_path && err == EAGAIN)
            cl_set_err(c, TKV_EK_IO,
                       "cannot connect to %s: the server's backlog is full (%s); try again "
                       "later",
                       c->unix_path, strerror(err));
        else if (c->unix_path)
            cl_set_err(c, TKV_EK_IO, "cannot connect to %s: %s", c->unix_path, strerror(err));
        else
            cl_set_err(c, TKV_EK_IO, "cannot connect to %s port %u: %s", c->host, c->port,
                       strerror(err));
        teardown(ac, TKV_ERR);
        return TKV_ERR;
    }
    ac->state = AS_CONNECTED;
    if (!c->unix_path) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* Set again: a keepalive asked for while connecting went to the
         * socket of an address that may have refused since. A refusal
         * here leaves the connection without it, not broken. */
        if (c->keepalive > 0)
            (void)tkv_sock_keepalive(c->fd, c->keepalive);
    }
    call_conn(ac, ac->on_connect, TKV_OK);
    if (after_cb(ac))
        return TKV_ERR;
    update_events(ac);
    return TKV_OK;
}

/* ---- reading and writing --------------------------------------------------- */

/* Reads what the socket holds. TKV_OK, or TKV_ERR with the reason in
 * *kind and why (not in the context yet: the replies that came before it
 * are still to be decoded). */
static int fill(tkv_async *ac, tkv_errkind *kind, char *why, size_t whylen)
{
    tkv_ctx *c = ac->c;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        uint8_t *p;
        size_t avail;
        if (tkv_frame_reader_space(&c->in, READ_CHUNK, &p, &avail) < 0) {
            *kind = TKV_EK_NOMEM;
            snprintf(why, whylen, "out of memory reading a reply");
            return TKV_ERR;
        }
        if (avail == 0)
            return TKV_OK; /* at the frame limit: its frames are served first */
        ssize_t n = recv(c->fd, p, avail, 0);
        if (n > 0) {
            tkv_frame_reader_commit(&c->in, (size_t)n);
            if ((size_t)n < avail)
                return TKV_OK;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return TKV_OK;
        *kind = n == 0 || errno == ECONNRESET ? TKV_EK_EOF : TKV_EK_IO;
        snprintf(why, whylen, "%s",
                 n == 0                ? "connection closed by the server"
                 : errno == ECONNRESET ? "connection reset by the server"
                                       : strerror(errno));
        return TKV_ERR;
    }
    return TKV_OK;
}

static bool broken_kind(tkv_errkind k)
{
    return k == TKV_EK_IO || k == TKV_EK_EOF || k == TKV_EK_PROTOCOL || k == TKV_EK_TIMEOUT ||
           k == TKV_EK_NOMEM;
}

/* Hands every whole reply held to its callback. TKV_OK, or TKV_ERR if the
 * context is gone. */
static int dispatch(tkv_async *ac)
{
    tkv_ctx *c = ac->c;
    for (;;) {
        const uint8_t *f;
        size_t n;
        int rc = tkv_frame_reader_next(&c->in, &f, &n);
        if (rc == TKV_FRAME_AGAIN)
            break;
        if (rc != TKV_FRAME_OK || ac->cbs_n == 0) {
            if (rc != TKV_FRAME_OK)
                cl_set_err(c, TKV_EK_PROTOCOL, "reply frame of %u bytes is too large",
                           c->in.bad_len);
            else
                cl_set_err(c, TKV_EK_PROTOCOL, "a reply to no request");
            teardown(ac, TKV_ERR);
            return TKV_ERR;
        }
        if (c->trace)
            c->trace(c->trace_arg, '<', f, n);
        c->err = TKV_EK_NONE;
        c->errstr[0] = '\0';
        c->server_code = 0;
        tkv_reply r;
        cl_decode(c, cl_pop_op(c), f, n, &r);
        if (broken_kind(c->err)) {
            teardown(ac, TKV_ERR); /* its callback gets NULL there */
            return TKV_ERR;
        }
        call_reply(ac, pop_cb(ac), &r);
        if (after_cb(ac))
            return TKV_ERR;
    }
    return TKV_OK;
}

void tkv_async_handle_read(tkv_async *ac)
{
    if (ac->state == AS_GONE || ac->in_cb > 0)
        return;
    if (ac->state == AS_CONNECTING && finish_connect(ac) < 0)
        return;
    tkv_errkind kind = TKV_EK_NONE;
    char why[sizeof ac->c->errstr];
    int rc = fill(ac, &kind, why, sizeof why);
    if (dispatch(ac) < 0)
        return;
    if (rc < 0) {
        cl_set_err(ac->c, kind, "%s", why);
        teardown(ac, TKV_ERR);
        return;
    }
    /* A large reply's buffer is not kept for ever. */
    tkv_frame_reader_shrink(&ac->c->in, 1u << 20);
    update_events(ac);
}

/* A server that refuses a request outright (a frame over its limit)
 * answers and closes, so a client still sending sees EPIPE or ECONNRESET:
 * the replies it sent before closing are handed out before the end, as
 * client.c does for the blocking calls. */
static void write_failed(tkv_async *ac, int err)
{
    tkv_errkind kind = TKV_EK_NONE;
    char why[sizeof ac->c->errstr];
    if (err == EPIPE || err == ECONNRESET) {
        fill(ac, &kind, why, sizeof why);
        if (dispatch(ac) < 0)
            return;
        cl_set_err(ac->c, TKV_EK_EOF, "write: connection closed by the server");
    } else {
        cl_set_err(ac->c, TKV_EK_IO, "write: %s", strerror(err));
    }
    teardown(ac, TKV_ERR);
}

void tkv_async_handle_write(tkv_async *ac)
{
    if (ac->state == AS_GONE || ac->in_cb > 0)
        return;
    if (ac->state == AS_CONNECTING && finish_connect(ac) < 0)
        return;
    tkv_ctx *c = ac->c;
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break; /* the write watcher stays armed */
        write_failed(ac, errno);
        return;
    }
    if (c->out_sent == c->out.len) {
        c->out.len = c->out_sent = 0;
        tkv_buf_shrink(&c->out, 1 << 20);
    } else if (c->out_sent > c->out.len / 2) {
        /* A peer that never lets the buffer drain must not make it grow
         * with bytes already sent: moved down once they are the larger
         * half, so each byte is copied at most about once. */
        memmove(c->out.data, c->out.data + c->out_sent, c->out.len - c->out_sent);
        c->out.len -= c->out_sent;
        c->out_sent = 0;
    }
    update_events(ac);
}

/* ---- accessors ------------------------------------------------------------- */

int tkv_async_fd(const tkv_async *ac) { return ac->c->fd; }
void tkv_async_set_connect_cb(tkv_async *ac, tkv_async_conn_cb fn) { ac->on_connect = fn; }
void tkv_async_set_disconnect_cb(tkv_async *ac, tkv_async_conn_cb fn) { ac->on_disconnect = fn; }
void tkv_async_set_data(tkv_async *ac, void *data) { ac->data = data; }
void *tkv_async_data(const tkv_async *ac) { return ac->data; }
tkv_errkind tkv_async_err(const tkv_async *ac) { return ac ? ac->c->err : TKV_EK_NOMEM; }
const char *tkv_async_errstr(const tkv_async *ac) { return ac ? ac->c->errstr : "out of memory"; }
int tkv_async_server_code(const tkv_async *ac) { return ac ? ac->c->server_code : 0; }
size_t tkv_async_pending(const tkv_async *ac) { return ac->cbs_n; }

int tkv_async_set_keepalive(tkv_async *ac, int seconds)
{
    if (ac->state == AS_GONE)
        return TKV_ERR;
    /* Never tears down: a refused value is TKV_EK_USAGE and changes nothing. */
    return cl_keepalive(ac->c, ac->c->fd, seconds);
}

/* ---- commands ---------------------------------------------------------------- */

/* Before encoding: refuses once disconnecting, and makes room for the
 * callback first, so that an encoded request always has one. */
static int begin_cmd(tkv_async *ac)
{
    if (ac->state == AS_GONE)
        return TKV_ERR; /* within teardown: keep its reason for the others */
    if (ac->closing)
        return cl_set_err(ac->c, TKV_EK_USAGE, "the connection is closing");
    return reserve_cb(ac);
}

static int end_cmd(tkv_async *ac, int appended, tkv_async_cb cb, void *privdata)
{
    if (appended < 0)
        return TKV_ERR;
    ac->cbs[(ac->cbs_head + ac->cbs_n) % ac->cbs_cap] = (as_pending){cb, privdata};
    ac->cbs_n++;
    update_events(ac);
    return TKV_OK;
}

#define ISSUE(append_call) (begin_cmd(ac) < 0 ? TKV_ERR : end_cmd(ac, (append_call), cb, privdata))

int tkv_async_ping(tkv_async *ac, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_ping(ac->c));
}

int tkv_async_auth(tkv_async *ac, const void *secret, size_t len, tkv_async_cb cb, void *privdata)
{
    if (len > UINT32_MAX)
        return cl_set_err(ac->c, TKV_EK_USAGE, "secret too long");
    tkv_req q = {.cmd = TKV_CMD_AUTH, .msg = cl_span(secret, len), .has_msg = true};
    return ISSUE(cl_append_req(ac->c, &q));
}

int tkv_async_put(tkv_async *ac, const void *key, size_t klen, const void *val, size_t vlen,
                  uint64_t ts, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_put(ac->c, key, klen, val, vlen, ts));
}

int tkv_async_put_now(tkv_async *ac, const void *key, size_t klen, const void *val, size_t vlen,
                      tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_put_now(ac->c, key, klen, val, vlen));
}

int tkv_async_put_ex(tkv_async *ac, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t ts, int has_ts, uint64_t ttl_us, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_put_ex(ac->c, key, klen, val, vlen, ts, has_ts, ttl_us));
}

int tkv_async_get(tkv_async *ac, const void *key, size_t klen, uint64_t ts, tkv_async_cb cb,
                  void *privdata)
{
    return ISSUE(tkv_append_get(ac->c, key, klen, ts));
}

int tkv_async_get_version(tkv_async *ac, const void *key, size_t klen, int64_t n, tkv_async_cb cb,
                          void *privdata)
{
    return ISSUE(tkv_append_get_version(ac->c, key, klen, n));
}

int tkv_async_range(tkv_async *ac, const void *key, size_t klen, const tkv_range_opts *opts,
                    tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_range(ac->c, key, klen, opts));
}

int tkv_async_del(tkv_async *ac, const void *key, size_t klen, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_del(ac->c, key, klen));
}

int tkv_async_del_at(tkv_async *ac, const void *key, size_t klen, uint64_t ts, int has_ts,
                     tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_del_at(ac->c, key, klen, ts, has_ts));
}

int tkv_async_count(tkv_async *ac, const void *key, size_t klen, uint64_t from, uint64_t to,
                    tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_count(ac->c, key, klen, from, to));
}

int tkv_async_mput(tkv_async *ac, const tkv_item *items, size_t n, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_mput(ac->c, items, n));
}

int tkv_async_mget(tkv_async *ac, uint64_t ts, const tkv_bytes *keys, size_t n, tkv_async_cb cb,
                   void *privdata)
{
    return ISSUE(tkv_append_mget(ac->c, ts, keys, n));
}

int tkv_async_scan(tkv_async *ac, const void *prefix, size_t plen, tkv_bytes cursor, uint32_t count,
                   tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_scan(ac->c, prefix, plen, cursor, count));
}

int tkv_async_retain(tkv_async *ac, const void *key, size_t klen, uint32_t versions,
                     uint64_t age_us, int dry_run, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_retain(ac->c, key, klen, versions, age_us, dry_run));
}

int tkv_async_policy(tkv_async *ac, const void *key, size_t klen, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_policy(ac->c, key, klen));
}

int tkv_async_stats(tkv_async *ac, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_stats(ac->c));
}

int tkv_async_digest(tkv_async *ac, uint64_t at, int has_at, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_digest(ac->c, at, has_at));
}

int tkv_async_role(tkv_async *ac, tkv_async_cb cb, void *privdata)
{
    return ISSUE(tkv_append_role(ac->c));
}

int tkv_async_wait(tkv_async *ac, uint64_t nreplicas, uint64_t timeout_ms, tkv_async_cb cb,
                   void *privdata)
{
    return ISSUE(tkv_append_wait(ac->c, nreplicas, timeout_ms));
}
