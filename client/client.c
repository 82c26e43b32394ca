/*
 * client.c - implements libtkvclient (tkv/client.h).
 *
 * Requests are encoded into an output buffer (protocol/proto.h) and a small
 * ring remembers which command each one was, so replies can be decoded in
 * order. Blocking calls are "append one request, read one reply". While
 * waiting to send, the context also reads whatever replies arrive: a client
 * that queues megabytes of requests never deadlocks against a server that
 * stops reading until its replies are read.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "byteorder.h"
#include "grow.h"
#include "reply.h"
#include "sockopt.h"
#include "client_int.h"

#define CLIENT_MAX_FRAME (1u << 30)
#define READ_CHUNK (64 * 1024)

_Static_assert(TKV_OP_PING == TKV_CMD_PING && TKV_OP_PUT == TKV_CMD_PUT &&
                   TKV_OP_GET == TKV_CMD_GET && TKV_OP_RANGE == TKV_CMD_RANGE &&
                   TKV_OP_DEL == TKV_CMD_DEL && TKV_OP_STATS == TKV_CMD_STATS &&
                   TKV_OP_AUTH == TKV_CMD_AUTH && TKV_OP_COUNT == TKV_CMD_COUNT &&
                   TKV_OP_MPUT == TKV_CMD_MPUT && TKV_OP_MGET == TKV_CMD_MGET &&
                   TKV_OP_SCAN == TKV_CMD_SCAN && TKV_OP_RETAIN == TKV_CMD_RETAIN &&
                   TKV_OP_POLICY == TKV_CMD_POLICY && TKV_OP_DIGEST == TKV_CMD_DIGEST &&
                   TKV_OP_REPLICAOF == TKV_CMD_REPLICAOF && TKV_OP_ROLE == TKV_CMD_ROLE &&
                   TKV_OP_WAIT == TKV_CMD_WAIT,
               "public op numbers follow the protocol's command numbers");
_Static_assert(TKV_SC_BAD_REQUEST == TKV_ST_BAD_REQUEST && TKV_SC_STORAGE == TKV_ST_STORAGE &&
                   TKV_SC_AUTH_FAILED == TKV_ST_AUTH_FAILED && TKV_SC_INTERNAL == TKV_ST_INTERNAL &&
                   TKV_SC_READONLY == TKV_ST_READONLY && TKV_SC_MOVED == TKV_ST_MOVED &&
                   TKV_SC_CROSSSLOT == TKV_ST_CROSSSLOT,
               "public status codes are the wire's");
_Static_assert(TKV_MISS_NO_KEY == TKV_M_NO_KEY && TKV_MISS_BEFORE_FIRST == TKV_M_BEFORE_FIRST &&
                   TKV_MISS_DELETED == TKV_M_DELETED &&
                   TKV_MISS_BELOW_HORIZON == TKV_M_BELOW_HORIZON &&
                   TKV_MISS_NO_SUCH_VERSION == TKV_M_NO_SUCH_VERSION,
               "public miss reasons are the wire's");


int cl_set_err(tkv_ctx *c, tkv_errkind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    va_end(ap);
    c->err = kind;
    return TKV_ERR;
}

int cl_server_error(tkv_ctx *c, uint64_t status, tkv_span msg)
{
    c->server_code = (int)(status > 9999 ? 9999 : status);
    /* READONLY has a kind of its own: it is the one server error a program
     * acts on (it sends the write to the primary the message names). */
    tkv_errkind kind = status == TKV_ST_READONLY ? TKV_EK_READONLY : TKV_EK_SERVER;
    return cl_set_err(c, kind, "%s: %.*s", tkv_status_name(status), (int)msg.len,
                      msg.ptr ? (const char *)msg.ptr : "");
}

static bool broken(const tkv_ctx *c)
{
    return c->err != TKV_EK_NONE && c->err != TKV_EK_SERVER && c->err != TKV_EK_USAGE &&
           c->err != TKV_EK_READONLY;
}

int cl_begin(tkv_ctx *c)
{
    if (broken(c))
        return TKV_ERR;
    c->err = TKV_EK_NONE;
    c->errstr[0] = '\0';
    c->server_code = 0;
    return TKV_OK;
}

const char *tkv_strerror(tkv_errkind kind)
{
    switch (kind) {
    case TKV_EK_NONE: return "no error";
    case TKV_EK_IO: return "I/O error";
    case TKV_EK_EOF: return "connection closed by server";
    case TKV_EK_PROTOCOL: return "protocol error";
    case TKV_EK_TIMEOUT: return "timed out";
    case TKV_EK_NOMEM: return "out of memory";
    case TKV_EK_SERVER: return "server error";
    case TKV_EK_USAGE: return "invalid argument";
    case TKV_EK_READONLY: return "write refused by a read-only replica";
    }
    return "unknown error";
}

tkv_errkind tkv_err(const tkv_ctx *c) { return c ? c->err : TKV_EK_NOMEM; }
const char *tkv_errstr(const tkv_ctx *c) { return c ? c->errstr : "out of memory"; }
int tkv_server_code(const tkv_ctx *c) { return c ? c->server_code : 0; }
void tkv_set_timeout(tkv_ctx *c, int ms) { c->timeout_ms = ms > 0 ? ms : 0; }
size_t tkv_pending(const tkv_ctx *c) { return c->ops_n; }

void tkv_set_trace(tkv_ctx *c, tkv_trace_fn fn, void *arg)
{
    c->trace = fn;
    c->trace_arg = arg;
}

/* ---- connecting --------------------------------------------------------- */

static int wait_fd(tkv_ctx *c, short events, short *revents)
{
    struct pollfd p = {.fd = c->fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, c->timeout_ms > 0 ? c->timeout_ms : -1);
        if (n > 0) {
            *revents = p.revents;
            return 0;
        }
        if (n == 0)
            return cl_set_err(c, TKV_EK_TIMEOUT, "no answer from the server within %d ms",
                              c->timeout_ms);
        if (errno != EINTR)
            return cl_set_err(c, TKV_EK_IO, "poll: %s", strerror(errno));
    }
}

/* TKV_OK, or TKV_ERR with errno still the connect's (dial() retries a
 * Unix socket's EAGAIN). */
static int try_connect(tkv_ctx *c, int family, const struct sockaddr *sa, socklen_t salen)
{
    c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return cl_set_err(c, TKV_EK_IO, "socket: %s", strerror(errno));
    if (connect(c->fd, sa, salen) < 0) {
        int err = errno;
        if (err != EINPROGRESS) {
            cl_set_err(c, TKV_EK_IO, "connect: %s", strerror(err));
            errno = err;
            return TKV_ERR;
        }
        short rev;
        if (wait_fd(c, POLLOUT, &rev) < 0)
            return TKV_ERR;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr)
            return cl_set_err(c, TKV_EK_IO, "connect: %s", strerror(soerr));
    }
    if (family != AF_UNIX) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* The value was checked when it was set: should the system still
         * refuse it, the connection works without keepalive rather than
         * not at all. */
        if (c->keepalive > 0)
            (void)tkv_sock_keepalive(c->fd, c->keepalive);
    }
    return TKV_OK;
}

tkv_ctx *cl_new(void)
{
    tkv_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = -1;
    tkv_frame_reader_init(&c->in, CLIENT_MAX_FRAME);
    return c;
}

int cl_set_addr(tkv_ctx *c, const char *host, uint16_t port, const char *path)
{
    char **slot = host ? &c->host : &c->unix_path;
    char *copy = strdup(host ? host : path);
    if (!copy)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
    free(*slot);
    *slot = copy;
    c->port = port;
    return TKV_OK;
}

int cl_unix_addr(tkv_ctx *c, const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof sa->sun_path)
        return cl_set_err(c, TKV_EK_USAGE, "Unix socket path must be 1 to %zu bytes",
                          sizeof sa->sun_path - 1);
    memcpy(sa->sun_path, path, len);
    return TKV_OK;
}

int cl_keepalive(tkv_ctx *c, int fd, int seconds)
{
    if (seconds < 0 || seconds > TKV_KEEPALIVE_MAX)
        return cl_set_err(c, TKV_EK_USAGE, "keepalive must be 0 (off) to %d seconds, not %d",
                          TKV_KEEPALIVE_MAX, seconds);
    /* Applied first and kept only if it took: a refused option is a usage
     * error (TKV_EK_USAGE leaves the connection usable), never a broken
     * connection, and it is not carried into tkv_reconnect(). */
    if (fd >= 0 && !c->unix_path && tkv_sock_keepalive(fd, seconds) < 0)
        return cl_set_err(c, TKV_EK_USAGE, "TCP keepalive: %s", strerror(errno));
    c->keepalive = seconds;
    return TKV_OK;
}

/* A Unix socket whose server's backlog is full refuses at once (EAGAIN)
 * where TCP would wait: tried again, with a growing pause, until the
 * timeout (or for ever without one, as a blocking connect would wait). */
static int dial_unix(tkv_ctx *c)
{
    struct sockaddr_un sa;
    if (cl_unix_addr(c, c->unix_path, &sa) < 0)
        return TKV_ERR;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int pause_ms = 1;; pause_ms = pause_ms < 64 ? pause_ms * 2 : 100) {
        c->err = TKV_EK_NONE; /* an earlier try's EAGAIN is not this one's */
        if (try_connect(c, AF_UNIX, (const struct sockaddr *)&sa, sizeof sa) == TKV_OK)
            return TKV_OK;
        if (errno != EAGAIN)
            break;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (c->timeout_ms > 0 && waited >= c->timeout_ms) {
            cl_set_err(c, TKV_EK_TIMEOUT, "the server's backlog stayed full for %d ms",
                       c->timeout_ms);
            break;
        }
        if (c->timeout_ms > 0 && waited + pause_ms > c->timeout_ms)
            pause_ms = (int)(c->timeout_ms - waited);
        close(c->fd);
        c->fd = -1;
        poll(NULL, 0, pause_ms);
    }
    char why[sizeof c->errstr];
    memcpy(why, c->errstr, sizeof why);
    return cl_set_err(c, c->err, "cannot connect to %s: %s", c->unix_path, why);
}

/* Dials c->host/c->port or c->unix_path; TKV_OK or TKV_ERR with the reason
 * naming the address. */
static int dial(tkv_ctx *c)
{
    if (c->unix_path)
        return dial_unix(c);
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", c->port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(c->host, portstr, &hints, &res);
    if (rc != 0)
        return cl_set_err(c, TKV_EK_IO, "cannot resolve %s: %s", c->host, gai_strerror(rc));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->err = TKV_EK_NONE;
        if (try_connect(c, ai->ai_family, ai->ai_addr, ai->ai_addrlen) == TKV_OK)
            break;
    }
    freeaddrinfo(res);
    if (c->err == TKV_EK_NONE)
        return TKV_OK;
    char why[sizeof c->errstr];
    memcpy(why, c->errstr, sizeof why);
    return cl_set_err(c, c->err, "cannot connect to %s port %u: %s", c->host, c->port, why);
}

tkv_ctx *tkv_connect(const char *host, uint16_t port, int timeout_ms)
{
    tkv_ctx *c = cl_new();
    if (!c)
        return NULL;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    if (cl_set_addr(c, host, port, NULL) == TKV_OK)
        dial(c);
    return c;
}

tkv_ctx *tkv_connect_unix(const char *path, int timeout_ms)
{
    tkv_ctx *c = cl_new();
    if (!c)
        return NULL;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    if (cl_set_addr(c, NULL, 0, path) == TKV_OK)
        dial(c);
    return c;
}

int tkv_set_keepalive(tkv_ctx *c, int seconds)
{
    if (cl_begin(c) < 0)
        return TKV_ERR;
    /* On a Unix socket only kept: a local peer's death is seen at once. */
    return cl_keepalive(c, c->fd, seconds);
}

int tkv_reconnect(tkv_ctx *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    /* Whatever was queued or awaited belonged to the old connection. */
    tkv_frame_reader_deinit(&c->in);
    tkv_frame_reader_init(&c->in, CLIENT_MAX_FRAME);
    c->out.len = c->out_sent = 0;
    c->ops_head = c->ops_n = 0;
    c->watching = false;
    c->watch_replid[0] = '\0';
    c->err = TKV_EK_NONE;
    c->errstr[0] = '\0';
    c->server_code = 0;
    return dial(c);
}

void tkv_free(tkv_ctx *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    tkv_frame_reader_deinit(&c->in);
    tkv_buf_deinit(&c->out);
    tkv_buf_deinit(&c->strbuf);
    tkv_buf_deinit(&c->scratch);
    free(c->versions);
    free(c->mget_all);
    tkv_buf_deinit(&c->mget_values);
    free(c->stamps);
    free(c->keys);
    free(c->ops);
    free(c->entries);
    free(c->stats);
    free(c->replicas);
    free(c->ranges);
    free(c->slow);
    free(c->range_addrs);
    free(c->host);
    free(c->unix_path);
    free(c);
}

/* ---- sending and receiving ---------------------------------------------- */

/* Reads whatever is available into the frame reader. Returns 0 or TKV_ERR. */
static int fill_in(tkv_ctx *c)
{
    uint8_t *p;
    size_t avail;
    if (tkv_frame_reader_space(&c->in, READ_CHUNK, &p, &avail) < 0)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory reading a reply");
    if (avail == 0)
        return cl_set_err(c, TKV_EK_PROTOCOL, "reply buffer full");
    ssize_t n = recv(c->fd, p, avail, 0);
    if (n > 0) {
        tkv_frame_reader_commit(&c->in, (size_t)n);
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n == 0)
        return cl_set_err(c, TKV_EK_EOF, "connection closed by the server");
    if (errno == ECONNRESET)
        return cl_set_err(c, TKV_EK_EOF, "connection reset by the server");
    return cl_set_err(c, TKV_EK_IO, "read: %s", strerror(errno));
}

static bool whole_frame_held(const tkv_frame_reader *r)
{
    size_t held = tkv_frame_reader_pending(r);
    if (held < TKV_FRAME_HEADER)
        return false;
    const uint8_t *h = r->buf + r->start;
    uint64_t len = tkv_load_be32(h);
    return held - TKV_FRAME_HEADER >= len;
}

/* A server that refuses a request outright (a frame over its limit) answers
 * and then closes, so a client still sending sees EPIPE or ECONNRESET before
 * it looks for the answer. Takes in what the server said before it closed:
 * if a whole reply arrived, the caller reads it (and reports the server's
 * reason, not "Broken pipe"); the requests not yet sent are dropped, and the
 * replies they wait for end in "connection closed". */
static int write_failed(tkv_ctx *c, int err)
{
    if (err != EPIPE && err != ECONNRESET)
        return cl_set_err(c, TKV_EK_IO, "write: %s", strerror(err));
    c->out.len = c->out_sent = 0;
    for (;;) {
        short rev;
        if (wait_fd(c, POLLIN, &rev) < 0 || fill_in(c) < 0)
            break;
    }
    if (whole_frame_held(&c->in)) {
        c->err = TKV_EK_NONE;
        c->errstr[0] = '\0';
        return 0;
    }
    return cl_set_err(c, TKV_EK_EOF, "write: connection closed by the server (%s)", strerror(err));
}

static int flush_out(tkv_ctx *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return write_failed(c, errno);
        short rev;
        if (wait_fd(c, POLLOUT | POLLIN, &rev) < 0)
            return TKV_ERR;
        /* Take in replies while blocked, so neither side waits on the other.
         * A server that closes while we send may have answered first. */
        if ((rev & (POLLIN | POLLHUP | POLLERR)) && fill_in(c) < 0)
            return c->err == TKV_EK_EOF ? write_failed(c, EPIPE) : TKV_ERR;
    }
    c->out.len = c->out_sent = 0;
    tkv_buf_shrink(&c->out, 1 << 20);
    return 0;
}

static int read_frame(tkv_ctx *c, const uint8_t **f, size_t *n)
{
    for (;;) {
        int rc = tkv_frame_reader_next(&c->in, f, n);
        if (rc == TKV_FRAME_OK) {
            if (c->trace)
                c->trace(c->trace_arg, '<', *f, *n);
            return 0;
        }
        if (rc < 0)
            return cl_set_err(c, TKV_EK_PROTOCOL, "reply frame of %u bytes is too large",
                              c->in.bad_len);
        short rev;
        if (wait_fd(c, POLLIN, &rev) < 0 || fill_in(c) < 0)
            return TKV_ERR;
    }
}

static int push_op(tkv_ctx *c, int op)
{
    if (c->ops_n == c->ops_cap) {
        /* A ring: copied out in order rather than realloc'd. */
        size_t cap = tkv_grow_cap(c->ops_cap, c->ops_n + 1, 64);
        uint8_t *r = cap ? malloc(cap) : NULL;
        if (!r)
            return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
        for (size_t i = 0; i < c->ops_n; i++)
            r[i] = c->ops[(c->ops_head + i) % c->ops_cap];
        free(c->ops);
        c->ops = r;
        c->ops_cap = cap;
        c->ops_head = 0;
    }
    c->ops[(c->ops_head + c->ops_n) % c->ops_cap] = (uint8_t)op;
    c->ops_n++;
    return TKV_OK;
}

static int pop_op(tkv_ctx *c)
{
    int op = c->ops[c->ops_head];
    c->ops_head = (c->ops_head + 1) % c->ops_cap;
    c->ops_n--;
    return op;
}

/* Records that the frame appended at `before` awaits a reply to op. */
static int queued(tkv_ctx *c, size_t before, int op)
{
    if (push_op(c, op) < 0) {
        c->out.len = before;
        return TKV_ERR;
    }
    if (c->trace)
        c->trace(c->trace_arg, '>', c->out.data + before + TKV_FRAME_HEADER,
                 c->out.len - before - TKV_FRAME_HEADER);
    return TKV_OK;
}

static bool keyed(tkv_cmd cmd)
{
    return cmd != TKV_CMD_PING && cmd != TKV_CMD_STATS && cmd != TKV_CMD_AUTH &&
           cmd != TKV_CMD_SCAN && cmd != TKV_CMD_MPUT && cmd != TKV_CMD_MGET &&
           cmd != TKV_CMD_DIGEST && cmd != TKV_CMD_BACKUP && cmd != TKV_CMD_RESTORE &&
           cmd != TKV_CMD_REPLICAOF && cmd != TKV_CMD_ROLE && cmd != TKV_CMD_WAIT &&
           cmd != TKV_CMD_WATCH && cmd != TKV_CMD_CLUSTER && cmd != TKV_CMD_SLOWLOG &&
           cmd != TKV_CMD_ASKING && cmd != TKV_CMD_SLOTKEYS;
}

static int append(tkv_ctx *c, const tkv_req *r)
{
    if (cl_begin(c) < 0)
        return TKV_ERR;
    if (c->watching)
        return cl_set_err(c, TKV_EK_USAGE, "the connection is watching: only tkv_watch_next()");
    if (keyed(r->cmd) && r->key.len == 0)
        return cl_set_err(c, TKV_EK_USAGE, "key must not be empty");
    size_t before = c->out.len;
    if (tkv_req_encode(&c->out, r) < 0)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory encoding a request");
    return queued(c, before, r->cmd);
}

static int check_len(tkv_ctx *c, size_t klen, size_t vlen)
{
    if (klen > UINT32_MAX || vlen > UINT32_MAX)
        return cl_set_err(c, TKV_EK_USAGE, "key or value longer than 4 GiB");
    return TKV_OK;
}

int cl_append_req(tkv_ctx *c, const tkv_req *r) { return append(c, r); }

int cl_flush(tkv_ctx *c) { return flush_out(c) < 0 ? TKV_ERR : TKV_OK; }

int cl_read_frame(tkv_ctx *c, const uint8_t **f, size_t *n) { return read_frame(c, f, n); }

int cl_pop_op(tkv_ctx *c) { return pop_op(c); }

int tkv_append_ping(tkv_ctx *c)
{
    tkv_req r = {.cmd = TKV_CMD_PING};
    return append(c, &r);
}

int tkv_append_put(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t ts)
{
    if (check_len(c, klen, vlen) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_PUT,
                 .key = cl_span(key, klen),
                 .value = cl_span(val, vlen),
                 .ts = ts,
                 .has_ts = true};
    return append(c, &r);
}

int tkv_append_put_now(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (check_len(c, klen, vlen) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_PUT, .key = cl_span(key, klen), .value = cl_span(val, vlen)};
    return append(c, &r);
}

int tkv_append_get(tkv_ctx *c, const void *key, size_t klen, uint64_t ts)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {
        .cmd = TKV_CMD_GET, .key = cl_span(key, klen), .ts = ts, .has_ts = ts != TKV_LATEST};
    return append(c, &r);
}

int tkv_append_range(tkv_ctx *c, const void *key, size_t klen, const tkv_range_opts *o)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {
        .cmd = TKV_CMD_RANGE, .key = cl_span(key, klen), .to = TKV_TS_MAX, .limit = UINT64_MAX};
    if (o) {
        r.from = o->from;
        r.to = o->to_set || o->to ? o->to : TKV_TS_MAX;
        r.limit = o->limit ? o->limit : UINT64_MAX;
        r.reverse = o->reverse != 0;
    }
    return append(c, &r);
}

int tkv_append_del(tkv_ctx *c, const void *key, size_t klen)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_DEL, .key = cl_span(key, klen)};
    return append(c, &r);
}

int tkv_append_stats(tkv_ctx *c)
{
    tkv_req r = {.cmd = TKV_CMD_STATS};
    return append(c, &r);
}

static int append_slowlog(tkv_ctx *c, tkv_slowlog_sub sub, uint32_t n)
{
    tkv_req r = {.cmd = TKV_CMD_SLOWLOG, .sub = sub, .limit = n};
    return append(c, &r);
}

int tkv_append_slowlog_get(tkv_ctx *c, uint32_t n) { return append_slowlog(c, TKV_SLOWLOG_GET, n); }

int tkv_append_slowlog_len(tkv_ctx *c) { return append_slowlog(c, TKV_SLOWLOG_LEN, 0); }

int tkv_append_slowlog_reset(tkv_ctx *c) { return append_slowlog(c, TKV_SLOWLOG_RESET, 0); }

int tkv_append_put_ex(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen,
                      uint64_t ts, int has_ts, uint64_t ttl_us)
{
    if (check_len(c, klen, vlen) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_PUT,
                 .key = cl_span(key, klen),
                 .value = cl_span(val, vlen),
                 .ts = ts,
                 .has_ts = has_ts != 0,
                 .ttl = ttl_us};
    return append(c, &r);
}

int tkv_append_get_version(tkv_ctx *c, const void *key, size_t klen, int64_t n)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    if (n == 0)
        return cl_set_err(c, TKV_EK_USAGE, "versions are numbered from 1, or from -1 (newest)");
    tkv_req r = {.cmd = TKV_CMD_GET, .key = cl_span(key, klen), .version = n, .has_version = true};
    return append(c, &r);
}

int tkv_append_del_at(tkv_ctx *c, const void *key, size_t klen, uint64_t ts, int has_ts)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_DEL,
                 .key = cl_span(key, klen),
                 .ts = ts,
                 .has_ts = has_ts != 0,
                 .tombstone = true};
    return append(c, &r);
}

int tkv_append_count(tkv_ctx *c, const void *key, size_t klen, uint64_t from, uint64_t to)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_COUNT, .key = cl_span(key, klen), .from = from, .to = to};
    return append(c, &r);
}

int tkv_append_retain(tkv_ctx *c, const void *key, size_t klen, uint32_t versions, uint64_t age_us,
                      int dry_run)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_RETAIN,
                 .key = cl_span(key, klen),
                 .keep_versions = versions,
                 .keep_age = age_us,
                 .dry_run = dry_run != 0};
    return append(c, &r);
}

int tkv_append_policy(tkv_ctx *c, const void *key, size_t klen)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_POLICY, .key = cl_span(key, klen)};
    return append(c, &r);
}

int tkv_append_scan(tkv_ctx *c, const void *prefix, size_t plen, tkv_bytes cursor, uint32_t count)
{
    if (check_len(c, plen, cursor.len) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_SCAN,
                 .prefix = cl_span(prefix, plen),
                 .has_prefix = prefix && plen > 0,
                 .cursor = cl_span(cursor.ptr, cursor.len),
                 .has_cursor = cursor.ptr != NULL,
                 .limit = count};
    return append(c, &r);
}

int tkv_append_mput(tkv_ctx *c, const tkv_item *items, size_t n)
{
    if (cl_begin(c) < 0)
        return TKV_ERR;
    if (n == 0)
        return cl_set_err(c, TKV_EK_USAGE, "MPUT needs at least one item");
    tkv_buf_reset(&c->scratch);
    if (tkv_buf_reserve(&c->scratch, n * sizeof(tkv_put_item)) < 0)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
    tkv_put_item *w = (tkv_put_item *)(void *)c->scratch.data;
    for (size_t i = 0; i < n; i++) {
        if (items[i].key.len == 0 || items[i].key.len > UINT32_MAX ||
            items[i].value.len > UINT32_MAX)
            return cl_set_err(c, TKV_EK_USAGE, "item %zu: empty or oversized key or value", i);
        w[i] = (tkv_put_item){.key = cl_span(items[i].key.ptr, items[i].key.len),
                              .value = cl_span(items[i].value.ptr, items[i].value.len),
                              .ts = items[i].ts,
                              .has_ts = items[i].has_ts != 0,
                              .ttl = items[i].ttl};
    }
    size_t before = c->out.len;
    if (tkv_encode_mput(&c->out, w, n) < 0)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory encoding a request");
    return queued(c, before, TKV_CMD_MPUT);
}

int tkv_append_mget(tkv_ctx *c, uint64_t ts, const tkv_bytes *keys, size_t n)
{
    if (cl_begin(c) < 0)
        return TKV_ERR;
    if (n == 0)
        return cl_set_err(c, TKV_EK_USAGE, "MGET needs at least one key");
    tkv_buf_reset(&c->scratch);
    if (tkv_buf_reserve(&c->scratch, n * sizeof(tkv_span)) < 0)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
    tkv_span *k = (tkv_span *)(void *)c->scratch.data;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].len == 0 || keys[i].len > UINT32_MAX)
            return cl_set_err(c, TKV_EK_USAGE, "key %zu is empty or oversized", i);
        k[i] = cl_span(keys[i].ptr, keys[i].len);
    }
    size_t before = c->out.len;
    if (tkv_encode_mget(&c->out, ts, ts != TKV_LATEST, k, n) < 0)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory encoding a request");
    return queued(c, before, TKV_CMD_MGET);
}

int tkv_append_digest(tkv_ctx *c, uint64_t at, int has_at)
{
    tkv_req r = {.cmd = TKV_CMD_DIGEST, .ts = at, .has_ts = has_at != 0};
    return append(c, &r);
}

int cl_grow(tkv_ctx *c, void **arr, size_t *cap, size_t n, size_t sz)
{
    if (tkv_grow(arr, cap, n, sz, n) < 0)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
    return TKV_OK;
}

int tkv_read_reply(tkv_ctx *c, tkv_reply *r)
{
    memset(r, 0, sizeof *r);
    r->status = TKV_ERR;
    if (cl_begin(c) < 0)
        return TKV_ERR;
    if (c->ops_n == 0)
        return cl_set_err(c, TKV_EK_USAGE, "no reply is pending");
    if (flush_out(c) < 0)
        return TKV_ERR;
    const uint8_t *f;
    size_t n;
    if (read_frame(c, &f, &n) < 0)
        return TKV_ERR;
    return cl_decode(c, pop_op(c), f, n, r);
}

int tkv_flush(tkv_ctx *c)
{
    if (cl_begin(c) < 0)
        return TKV_ERR;
    return flush_out(c) < 0 ? TKV_ERR : TKV_OK;
}

/* ---- BACKUP: one request, a stream of replies ----------------------------- */

/* Checks one chunk with the backup reader: bytes a record still lacks wait
 * in hold (at most one record). */
static int check_chunk(tkv_ctx *c, tkv_bk_reader *bk, tkv_buf *hold, const uint8_t *p, size_t n,
                       bool *done)
{
    if (tkv_buf_append(hold, p, n) < 0)
        return cl_set_err(c, TKV_EK_NOMEM, "out of memory");
    size_t at = 0;
    for (;;) {
        tkv_bk_rec rec;
        size_t used;
        tkv_bk_rc rc = tkv_bk_read(bk, hold->data + at, hold->len - at, &rec, &used);
        at += used;
        if (rc == TKV_BK_ERR)
            return cl_set_err(c, TKV_EK_PROTOCOL, "backup stream: %s", bk->err);
        if (rc == TKV_BK_DONE)
            *done = true;
        if (rc != TKV_BK_REC)
            break;
    }
    tkv_buf_consume(hold, at);
    return TKV_OK;
}

/* Reads the stream's frames until the last; 1 when it ended, 0 on an error
 * reply (the connection is still in step), TKV_ERR otherwise. */
static int read_stream(tkv_ctx *c, tkv_backup_fn fn, void *arg, tkv_bk_reader *bk, tkv_buf *hold,
                       uint64_t *bytes)
{
    bool done = false;
    for (;;) {
        const uint8_t *f;
        size_t n;
        tkv_rep rep;
        if (read_frame(c, &f, &n) < 0)
            return TKV_ERR;
        if (tkv_rep_decode(TKV_CMD_BACKUP, f, n, &rep) < 0)
            return cl_set_err(c, TKV_EK_PROTOCOL, "malformed BACKUP reply (%s)",
                              rep.what ? rep.what : "?");
        if (rep.status != TKV_ST_OK) {
            cl_server_error(c, rep.status, rep.errmsg);
            return 0;
        }
        if (done && rep.data.len > 0)
            return cl_set_err(c, TKV_EK_PROTOCOL, "backup stream: data after the trailer");
        if (check_chunk(c, bk, hold, rep.data.ptr, rep.data.len, &done) < 0)
            return TKV_ERR;
        *bytes += rep.data.len;
        if (fn && rep.data.len > 0 && fn(arg, rep.data.ptr, rep.data.len) != 0)
            return cl_set_err(c, TKV_EK_USAGE, "stopped by the caller");
        if (rep.flag && !done)
            return cl_set_err(c, TKV_EK_PROTOCOL, "backup stream ended before its trailer");
        if (rep.flag)
            return 1;
    }
}

int tkv_backup(tkv_ctx *c, tkv_backup_fn fn, void *arg, tkv_digest_info *out)
{
    if (cl_begin(c) < 0)
        return TKV_ERR;
    if (c->ops_n > 0)
        return cl_set_err(c, TKV_EK_USAGE, "read the %zu pending pipelined replies first",
                          c->ops_n);
    tkv_req r = {.cmd = TKV_CMD_BACKUP};
    if (append(c, &r) < 0 || flush_out(c) < 0)
        return TKV_ERR;
    tkv_bk_reader bk;
    tkv_bk_reader_init(&bk, CLIENT_MAX_FRAME);
    tkv_buf hold;
    tkv_buf_init(&hold);
    uint64_t bytes = 0;
    int rc = read_stream(c, fn, arg, &bk, &hold, &bytes);
    tkv_buf_deinit(&hold);
    if (rc < 0 && c->err == TKV_EK_USAGE) {
        /* The rest of the stream is still coming: the connection is out of
         * step for good. */
        close(c->fd);
        c->fd = -1;
        cl_set_err(c, TKV_EK_IO, "backup stopped by the caller; connection closed");
    }
    if (rc < 0)
        return TKV_ERR;
    pop_op(c);
    if (rc == 0)
        return TKV_ERR;
    if (out) {
        *out = (tkv_digest_info){
            .at = bk.at, .keys = bk.keys, .versions = bk.versions, .bytes = bytes};
        memcpy(out->digest, bk.digest_out, TKV_DIGEST_LEN);
    }
    return TKV_OK;
}
