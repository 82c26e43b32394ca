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
#include "tkv/client.h"

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
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "mp.h"
#include "proto.h"

#define CLIENT_MAX_FRAME (1u << 30)
#define READ_CHUNK (64 * 1024)

_Static_assert(TKV_OP_PING == TKV_CMD_PING && TKV_OP_PUT == TKV_CMD_PUT &&
                   TKV_OP_GET == TKV_CMD_GET && TKV_OP_RANGE == TKV_CMD_RANGE &&
                   TKV_OP_DEL == TKV_CMD_DEL && TKV_OP_STATS == TKV_CMD_STATS &&
                   TKV_OP_AUTH == TKV_CMD_AUTH,
               "public op numbers follow the protocol's command numbers");
_Static_assert(TKV_SC_BAD_REQUEST == TKV_ST_BAD_REQUEST && TKV_SC_STORAGE == TKV_ST_STORAGE &&
                   TKV_SC_AUTH_FAILED == TKV_ST_AUTH_FAILED && TKV_SC_INTERNAL == TKV_ST_INTERNAL,
               "public status codes are the wire's");
_Static_assert(TKV_MISS_NO_KEY == TKV_M_NO_KEY && TKV_MISS_BEFORE_FIRST == TKV_M_BEFORE_FIRST,
               "public miss reasons are the wire's");

struct tkv_ctx {
    int fd;
    int timeout_ms;
    tkv_errkind err;
    int server_code;
    char errstr[256];
    tkv_frame_reader in;
    tkv_buf out;          /* encoded requests not yet sent */
    size_t out_sent;
    uint8_t *ops;         /* ring of commands awaiting replies */
    size_t ops_cap, ops_head, ops_n;
    tkv_entry *entries;   /* RANGE results */
    size_t entries_cap;
    tkv_stat *stats;      /* STATS results */
    size_t stats_cap;
    tkv_buf strbuf;       /* NUL-terminated copies of STATS strings */
    tkv_trace_fn trace;
    void *trace_arg;
};

static int set_err(tkv_ctx *c, tkv_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(tkv_ctx *c, tkv_errkind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    va_end(ap);
    c->err = kind;
    return TKV_ERR;
}

static bool broken(const tkv_ctx *c)
{
    return c->err != TKV_EK_NONE && c->err != TKV_EK_SERVER && c->err != TKV_EK_USAGE;
}

/* Clears a non-sticky error before a new call. */
static int begin(tkv_ctx *c)
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
            return set_err(c, TKV_EK_TIMEOUT, "no answer from the server within %d ms",
                           c->timeout_ms);
        if (errno != EINTR)
            return set_err(c, TKV_EK_IO, "poll: %s", strerror(errno));
    }
}

static int try_connect(tkv_ctx *c, const struct addrinfo *ai)
{
    c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   ai->ai_protocol);
    if (c->fd < 0)
        return set_err(c, TKV_EK_IO, "socket: %s", strerror(errno));
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS)
            return set_err(c, TKV_EK_IO, "connect: %s", strerror(errno));
        short rev;
        if (wait_fd(c, POLLOUT, &rev) < 0)
            return TKV_ERR;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr)
            return set_err(c, TKV_EK_IO, "connect: %s", strerror(soerr));
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return TKV_OK;
}

tkv_ctx *tkv_connect(const char *host, uint16_t port, int timeout_ms)
{
    tkv_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = -1;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    tkv_frame_reader_init(&c->in, CLIENT_MAX_FRAME);
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        set_err(c, TKV_EK_IO, "cannot resolve %s: %s", host, gai_strerror(rc));
        return c;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (c->fd >= 0)
            close(c->fd);
        c->err = TKV_EK_NONE;
        if (try_connect(c, ai) == TKV_OK)
            break;
    }
    freeaddrinfo(res);
    if (c->err != TKV_EK_NONE) {
        char why[sizeof c->errstr];
        memcpy(why, c->errstr, sizeof why);
        set_err(c, c->err, "cannot connect to %s port %u: %s", host, port, why);
    }
    return c;
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
    free(c->ops);
    free(c->entries);
    free(c->stats);
    free(c);
}

/* ---- sending and receiving ---------------------------------------------- */

/* Reads whatever is available into the frame reader. Returns 0 or TKV_ERR. */
static int fill_in(tkv_ctx *c)
{
    uint8_t *p;
    size_t avail;
    if (tkv_frame_reader_space(&c->in, READ_CHUNK, &p, &avail) < 0)
        return set_err(c, TKV_EK_NOMEM, "out of memory reading a reply");
    if (avail == 0)
        return set_err(c, TKV_EK_PROTOCOL, "reply buffer full");
    ssize_t n = recv(c->fd, p, avail, 0);
    if (n > 0) {
        tkv_frame_reader_commit(&c->in, (size_t)n);
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n == 0)
        return set_err(c, TKV_EK_EOF, "connection closed by the server");
    return set_err(c, TKV_EK_IO, "read: %s", strerror(errno));
}

static int flush_out(tkv_ctx *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return set_err(c, errno == EPIPE || errno == ECONNRESET ? TKV_EK_EOF : TKV_EK_IO,
                           "write: %s", strerror(errno));
        short rev;
        if (wait_fd(c, POLLOUT | POLLIN, &rev) < 0)
            return TKV_ERR;
        /* Take in replies while blocked, so neither side waits on the other. */
        if ((rev & (POLLIN | POLLHUP | POLLERR)) && fill_in(c) < 0)
            return TKV_ERR;
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
            return set_err(c, TKV_EK_PROTOCOL, "reply frame of %u bytes is too large",
                           c->in.bad_len);
        short rev;
        if (wait_fd(c, POLLIN, &rev) < 0 || fill_in(c) < 0)
            return TKV_ERR;
    }
}

static int push_op(tkv_ctx *c, int op)
{
    if (c->ops_n == c->ops_cap) {
        size_t cap = c->ops_cap ? c->ops_cap * 2 : 64;
        uint8_t *r = malloc(cap);
        if (!r)
            return set_err(c, TKV_EK_NOMEM, "out of memory");
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

static int append(tkv_ctx *c, const tkv_req *r)
{
    if (begin(c) < 0)
        return TKV_ERR;
    bool keyed = r->cmd == TKV_CMD_PUT || r->cmd == TKV_CMD_GET || r->cmd == TKV_CMD_RANGE ||
                 r->cmd == TKV_CMD_DEL;
    if (keyed && r->key.len == 0)
        return set_err(c, TKV_EK_USAGE, "key must not be empty");
    size_t before = c->out.len;
    if (tkv_req_encode(&c->out, r) < 0)
        return set_err(c, TKV_EK_NOMEM, "out of memory encoding a request");
    if (push_op(c, r->cmd) < 0) {
        c->out.len = before;
        return TKV_ERR;
    }
    if (c->trace)
        c->trace(c->trace_arg, '>', c->out.data + before + TKV_FRAME_HEADER,
                 c->out.len - before - TKV_FRAME_HEADER);
    return TKV_OK;
}

static int check_len(tkv_ctx *c, size_t klen, size_t vlen)
{
    if (klen > UINT32_MAX || vlen > UINT32_MAX)
        return set_err(c, TKV_EK_USAGE, "key or value longer than 4 GiB");
    return TKV_OK;
}

static tkv_span span(const void *p, size_t n)
{
    return (tkv_span){.ptr = p, .len = (uint32_t)n};
}

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
    tkv_req r = {.cmd = TKV_CMD_PUT, .key = span(key, klen), .value = span(val, vlen),
                 .ts = ts, .has_ts = true};
    return append(c, &r);
}

int tkv_append_put_now(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (check_len(c, klen, vlen) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_PUT, .key = span(key, klen), .value = span(val, vlen)};
    return append(c, &r);
}

int tkv_append_get(tkv_ctx *c, const void *key, size_t klen, uint64_t ts)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_GET, .key = span(key, klen), .ts = ts,
                 .has_ts = ts != TKV_LATEST};
    return append(c, &r);
}

int tkv_append_range(tkv_ctx *c, const void *key, size_t klen, const tkv_range_opts *o)
{
    if (check_len(c, klen, 0) < 0)
        return TKV_ERR;
    tkv_req r = {.cmd = TKV_CMD_RANGE, .key = span(key, klen), .to = TKV_TS_MAX,
                 .limit = UINT64_MAX};
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
    tkv_req r = {.cmd = TKV_CMD_DEL, .key = span(key, klen)};
    return append(c, &r);
}

int tkv_append_stats(tkv_ctx *c)
{
    tkv_req r = {.cmd = TKV_CMD_STATS};
    return append(c, &r);
}

int tkv_flush(tkv_ctx *c)
{
    if (begin(c) < 0)
        return TKV_ERR;
    return flush_out(c) < 0 ? TKV_ERR : TKV_OK;
}

/* ---- decoding replies ----------------------------------------------------- */

static int bad_reply(tkv_ctx *c, const char *what)
{
    return set_err(c, TKV_EK_PROTOCOL, "malformed reply: %s", what);
}

static int opt_uint(tkv_mp *m, uint64_t *v, int *has)
{
    if (tkv_mp_read_nil(m)) {
        *has = 0;
        return 0;
    }
    *has = 1;
    return tkv_mp_read_uint(m, v);
}

static int decode_get(tkv_ctx *c, tkv_mp *m, uint32_t count, uint64_t st, tkv_reply *r)
{
    tkv_version *v = &r->version;
    if (st == TKV_ST_OK) {
        const uint8_t *p;
        uint32_t len;
        if (count < 4 || tkv_mp_read_bytes(m, &p, &len) < 0 || tkv_mp_read_uint(m, &v->ts) < 0 ||
            opt_uint(m, &v->next, &v->has_next) < 0)
            return bad_reply(c, "GET");
        v->value = p;
        v->len = len;
        return 0;
    }
    uint64_t reason;
    if (count < 3 || tkv_mp_read_uint(m, &reason) < 0 || opt_uint(m, &v->next, &v->has_next) < 0)
        return bad_reply(c, "GET miss");
    v->miss = (int)(reason > 255 ? 255 : reason);
    return 0;
}

static int grow_entries(tkv_ctx *c, size_t n)
{
    if (n <= c->entries_cap)
        return 0;
    tkv_entry *e = realloc(c->entries, n * sizeof *e);
    if (!e)
        return set_err(c, TKV_EK_NOMEM, "out of memory");
    c->entries = e;
    c->entries_cap = n;
    return 0;
}

static int decode_range(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    uint32_t n;
    if (count < 2 || tkv_mp_read_array(m, &n) < 0)
        return bad_reply(c, "RANGE");
    /* n was checked against the frame's bytes: the allocation is bounded. */
    if (grow_entries(c, n) < 0)
        return TKV_ERR;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t pair, len;
        const uint8_t *p;
        if (tkv_mp_read_array(m, &pair) < 0 || pair < 2 ||
            tkv_mp_read_uint(m, &c->entries[i].ts) < 0 || tkv_mp_read_bytes(m, &p, &len) < 0)
            return bad_reply(c, "RANGE entry");
        for (uint32_t k = 2; k < pair; k++)
            if (tkv_mp_skip(m) < 0)
                return bad_reply(c, "RANGE entry");
        c->entries[i].value = p;
        c->entries[i].len = len;
    }
    bool trunc = false;
    if (count >= 3 && tkv_mp_read_bool(m, &trunc) < 0)
        return bad_reply(c, "RANGE flag");
    r->entries = c->entries;
    r->n_entries = n;
    r->truncated = trunc;
    return 0;
}

/* Copies a string into strbuf with a NUL; returns its offset or -1. */
static long keep_str(tkv_ctx *c, const uint8_t *p, uint32_t n)
{
    size_t off = c->strbuf.len;
    static const uint8_t nul = 0;
    if (tkv_buf_append(&c->strbuf, p, n) < 0 || tkv_buf_append(&c->strbuf, &nul, 1) < 0)
        return -1;
    return (long)off;
}

static int decode_stat(tkv_ctx *c, tkv_mp *m, tkv_stat *s, long *name_off, long *str_off)
{
    const uint8_t *p;
    uint32_t n;
    if (tkv_mp_read_bytes(m, &p, &n) < 0 || (*name_off = keep_str(c, p, n)) < 0)
        return -1;
    *str_off = -1;
    s->is_str = 0;
    if (tkv_mp_read_uint(m, &s->num) == 0)
        return 0;
    if (tkv_mp_read_bytes(m, &p, &n) < 0 || (*str_off = keep_str(c, p, n)) < 0)
        return -1;
    s->is_str = 1;
    return 0;
}

static int decode_stats(tkv_ctx *c, tkv_mp *m, uint32_t count, tkv_reply *r)
{
    uint32_t n;
    if (count < 2 || tkv_mp_read_map(m, &n) < 0)
        return bad_reply(c, "STATS");
    if (n > c->stats_cap) {
        tkv_stat *s = realloc(c->stats, n * sizeof *s);
        if (!s)
            return set_err(c, TKV_EK_NOMEM, "out of memory");
        c->stats = s;
        c->stats_cap = n;
    }
    tkv_buf_reset(&c->strbuf);
    /* Offsets first: strbuf may move while it grows. */
    for (uint32_t i = 0; i < n; i++) {
        long name_off, str_off;
        if (decode_stat(c, m, &c->stats[i], &name_off, &str_off) < 0)
            return bad_reply(c, "STATS field");
        c->stats[i].name = (const char *)(uintptr_t)name_off;
        c->stats[i].str = (const char *)(uintptr_t)(str_off < 0 ? 0 : str_off);
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *base = (const char *)c->strbuf.data;
        c->stats[i].name = base + (uintptr_t)c->stats[i].name;
        c->stats[i].str = c->stats[i].is_str ? base + (uintptr_t)c->stats[i].str : NULL;
    }
    r->stats = c->stats;
    r->n_stats = n;
    return 0;
}

static int decode_ok(tkv_ctx *c, int op, tkv_mp *m, uint32_t count, uint64_t st, tkv_reply *r)
{
    const uint8_t *p;
    uint32_t n;
    switch (op) {
    case TKV_CMD_PING:
        if (count < 2 || tkv_mp_read_bytes(m, &p, &n) < 0)
            return bad_reply(c, "PING");
        r->text = p;
        r->text_len = n;
        return 0;
    case TKV_CMD_PUT:
        return count < 2 || tkv_mp_read_uint(m, &r->ts) < 0 ? bad_reply(c, "PUT") : 0;
    case TKV_CMD_GET:
        return decode_get(c, m, count, st, r);
    case TKV_CMD_RANGE:
        return decode_range(c, m, count, r);
    case TKV_CMD_DEL:
        return count < 2 || tkv_mp_read_uint(m, &r->count) < 0 ? bad_reply(c, "DEL") : 0;
    case TKV_CMD_STATS:
        return decode_stats(c, m, count, r);
    case TKV_CMD_AUTH:
        return 0;
    default:
        return bad_reply(c, "unexpected command");
    }
}

static int decode(tkv_ctx *c, int op, const uint8_t *f, size_t n, tkv_reply *r)
{
    memset(r, 0, sizeof *r);
    r->op = op;
    r->status = TKV_ERR;
    if (tkv_mp_validate(f, n) < 0)
        return bad_reply(c, "not a MessagePack value");
    tkv_mp m;
    uint32_t count;
    uint64_t st;
    tkv_span msg;
    if (tkv_reply_head(f, n, &m, &count, &st, &msg) < 0)
        return bad_reply(c, "no status");
    if (st > TKV_ST_NOT_FOUND) {
        c->server_code = (int)(st > 9999 ? 9999 : st);
        set_err(c, TKV_EK_SERVER, "%s: %.*s", tkv_status_name(st), (int)msg.len,
                msg.ptr ? (const char *)msg.ptr : "");
        return TKV_ERR;
    }
    if (st == TKV_ST_NOT_FOUND && op != TKV_CMD_GET)
        return bad_reply(c, "NOT_FOUND for a command that cannot miss");
    if (decode_ok(c, op, &m, count, st, r) < 0)
        return TKV_ERR;
    r->status = st == TKV_ST_OK ? TKV_OK : TKV_NOT_FOUND;
    return r->status;
}

int tkv_read_reply(tkv_ctx *c, tkv_reply *r)
{
    memset(r, 0, sizeof *r);
    r->status = TKV_ERR;
    if (begin(c) < 0)
        return TKV_ERR;
    if (c->ops_n == 0)
        return set_err(c, TKV_EK_USAGE, "no reply is pending");
    if (flush_out(c) < 0)
        return TKV_ERR;
    const uint8_t *f;
    size_t n;
    if (read_frame(c, &f, &n) < 0)
        return TKV_ERR;
    return decode(c, pop_op(c), f, n, r);
}

/* ---- blocking commands ---------------------------------------------------- */

/* Runs one appended request to completion. */
static int roundtrip(tkv_ctx *c, int appended, tkv_reply *r)
{
    if (appended < 0)
        return TKV_ERR;
    return tkv_read_reply(c, r);
}

static int no_backlog(tkv_ctx *c)
{
    if (begin(c) < 0)
        return TKV_ERR;
    if (c->ops_n > 0)
        return set_err(c, TKV_EK_USAGE, "read the %zu pending pipelined replies first",
                       c->ops_n);
    return TKV_OK;
}

int tkv_ping(tkv_ctx *c)
{
    tkv_reply r;
    if (no_backlog(c) < 0)
        return TKV_ERR;
    return roundtrip(c, tkv_append_ping(c), &r);
}

int tkv_auth(tkv_ctx *c, const void *secret, size_t len)
{
    tkv_reply r;
    if (no_backlog(c) < 0)
        return TKV_ERR;
    if (len > UINT32_MAX)
        return set_err(c, TKV_EK_USAGE, "secret too long");
    tkv_req q = {.cmd = TKV_CMD_AUTH, .msg = span(secret, len), .has_msg = true};
    return roundtrip(c, append(c, &q), &r);
}

int tkv_put(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen, uint64_t ts,
            uint64_t *out_ts)
{
    tkv_reply r;
    if (no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_put(c, key, klen, val, vlen, ts), &r);
    if (rc == TKV_OK && out_ts)
        *out_ts = r.ts;
    return rc;
}

int tkv_put_now(tkv_ctx *c, const void *key, size_t klen, const void *val, size_t vlen,
                uint64_t *out_ts)
{
    tkv_reply r;
    if (no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_put_now(c, key, klen, val, vlen), &r);
    if (rc == TKV_OK && out_ts)
        *out_ts = r.ts;
    return rc;
}

int tkv_get(tkv_ctx *c, const void *key, size_t klen, uint64_t ts, tkv_version *out)
{
    tkv_reply r;
    if (no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_get(c, key, klen, ts), &r);
    *out = r.version;
    return rc;
}

int tkv_range(tkv_ctx *c, const void *key, size_t klen, const tkv_range_opts *opts,
              const tkv_entry **entries, size_t *n, int *truncated)
{
    tkv_reply r;
    *entries = NULL;
    *n = 0;
    if (no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_range(c, key, klen, opts), &r);
    *entries = r.entries;
    *n = r.n_entries;
    if (truncated)
        *truncated = r.truncated;
    return rc;
}

int tkv_del(tkv_ctx *c, const void *key, size_t klen, uint64_t *removed)
{
    tkv_reply r;
    if (no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_del(c, key, klen), &r);
    if (rc == TKV_OK && removed)
        *removed = r.count;
    return rc;
}

int tkv_stats(tkv_ctx *c, const tkv_stat **stats, size_t *n)
{
    tkv_reply r;
    *stats = NULL;
    *n = 0;
    if (no_backlog(c) < 0)
        return TKV_ERR;
    int rc = roundtrip(c, tkv_append_stats(c), &r);
    *stats = r.stats;
    *n = r.n_stats;
    return rc;
}
