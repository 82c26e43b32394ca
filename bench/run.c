/*
 * run.c - implements the connection engine of run.h: connecting, the
 * per-connection pipeline, batched writes, reply accounting, progress,
 * deadlines and timeouts.
 *
 * A connection's state is its pipeline ring (the kind and send time of each
 * request in flight, oldest first), its output buffer and its reply reader.
 * All of it is allocated when the connection opens; the steady state
 * allocates nothing. A connection that fails - EOF, a socket error, a
 * malformed reply, no reply within the timeout - fails the whole run: the
 * numbers of a run with a dead connection would not mean much.
 *
 * Pacing (run.h) adds one counter per connection, the requests of its
 * schedule it has sent; whether a request is due is arithmetic on the
 * request's number, so the schedule itself takes no memory.
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "cluster.h"
#include "proto.h"

#define READ_WANT (64 * 1024) /* room offered to each read() */
#define READS_PER_EVENT 4     /* then let other connections have a turn */
#define NS 1000000000u

struct bench_conn {
    ev_io io; /* first member: the watcher leads back to the conn */
    bench_run *run;
    int fd;
    uint32_t id;
    bool writing;   /* EV_WRITE armed: the socket was full */
    tkv_buf out;    /* encoded requests not yet written */
    size_t out_off; /* bytes of out already written */
    bench_reader rd;
    uint8_t *ring_kind;  /* pipeline ring: kind of each request in flight */
    uint64_t *ring_sent; /* ... and its send time */
    uint32_t ring_cap, head, count;
    uint64_t progress_ns; /* last reply, or the start of waiting for one */
    bench_rng rng;
    uint8_t *value; /* PUT payload, re-stamped per request */
    uint64_t seq;   /* PUTs sent, stamped into the value */
    uint64_t paced; /* paced phase: requests of its schedule sent */
    uint32_t node;  /* --cluster: the node it is connected to (cluster.h) */
};

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void fail(bench_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Only the first failure is kept: later ones are usually its echoes. */
static void fail(bench_run *r, const char *fmt, ...)
{
    if (!r->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
        va_end(ap);
        r->failed = true;
    }
    ev_break(r->loop, EVBREAK_ALL);
}

/* ---- connecting -------------------------------------------------------- */

static int connect_one(const struct addrinfo *ai, int timeout_ms, char *err, size_t errlen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int e = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        e = errno;
        if (e == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n = poll(&p, 1, timeout_ms);
            socklen_t len = sizeof e;
            if (n == 0)
                e = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
                e = errno;
        }
    }
    if (e) {
        snprintf(err, errlen, "connect: %s", strerror(e));
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Tries each address in turn ("localhost" may name ::1 first while the
 * server listens on 127.0.0.1 only). */
static int connect_any(const struct addrinfo *res, int timeout_ms, char *err, size_t errlen)
{
    int fd = -1;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = connect_one(ai, timeout_ms, err, errlen);
    return fd;
}

static int resolve(const char *host, uint16_t portnum, struct addrinfo **res, char *err,
                   size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%u", portnum);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(host, port, &hints, res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %.100s: %s", host, gai_strerror(rc));
        return -1;
    }
    return 0;
}

/* With --cluster, connection i's node: the nodes that serve keys of the
 * run, in turn, so each gets conns / nodes connections (give or take one). */
static uint32_t conn_node(const bench_cfg *cfg, uint32_t i)
{
    const bench_topology *t = cfg->topo;
    uint32_t serving = 0;
    for (uint32_t n = 0; n < t->n; n++)
        serving += t->nodes[n].keys > 0;
    if (serving == 0)
        return 0; /* no key: bench_cluster_load() refuses that run */
    uint32_t want = i % serving;
    for (uint32_t n = 0; n < t->n; n++)
        if (t->nodes[n].keys > 0 && want-- == 0)
            return n;
    return 0;
}

static void on_io(struct ev_loop *loop, ev_io *w, int events);
static void on_pace(struct ev_loop *loop, ev_io *w, int events);

static int conn_init(bench_run *r, bench_conn *c, uint32_t id, int fd, uint32_t depth)
{
    c->run = r;
    c->fd = fd;
    c->id = id;
    c->ring_cap = depth;
    c->ring_kind = malloc(depth);
    c->ring_sent = malloc(depth * sizeof *c->ring_sent);
    c->value = malloc(r->cfg->value_size ? r->cfg->value_size : 1);
    if (!c->ring_kind || !c->ring_sent || !c->value)
        return -1;
    rng_seed(&c->rng, r->cfg->seed * 1000003u + id);
    /* Printable filler; the first bytes change with every PUT. */
    for (uint32_t i = 0; i < r->cfg->value_size; i++)
        c->value[i] = (uint8_t)('a' + rng_below(&c->rng, 26));
    r->drv->reader_init(&c->rd, r->max_reply);
    ev_io_init(&c->io, on_io, fd, EV_READ);
    ev_io_start(r->loop, &c->io);
    return 0;
}

static void conn_deinit(bench_conn *c)
{
    if (c->fd >= 0) {
        ev_io_stop(c->run->loop, &c->io);
        close(c->fd);
        c->fd = -1;
    }
    c->run->drv->reader_deinit(&c->rd);
    tkv_buf_deinit(&c->out);
    free(c->ring_kind);
    free(c->ring_sent);
    free(c->value);
}

/* Room for GET values and RANGE results of the configured size, and never
 * less than tkvd's default frame limit. */
static size_t max_reply_for(const bench_cfg *cfg)
{
    uint64_t need = 2 * ((uint64_t)cfg->value_size + 64) * ((uint64_t)cfg->range_limit + 1);
    if (need < TKV_DEFAULT_MAX_FRAME)
        need = TKV_DEFAULT_MAX_FRAME;
    return need > UINT32_MAX ? UINT32_MAX : (size_t)need;
}

int run_open(bench_run *r, const bench_cfg *cfg, const bench_driver *drv, bench_workload *wl,
             uint32_t max_depth)
{
    memset(r, 0, sizeof *r);
    r->pace_fd = -1;
    r->cfg = cfg;
    r->drv = drv;
    r->wl = wl;
    r->max_reply = max_reply_for(cfg);
    r->loop = ev_loop_new(EVFLAG_AUTO);
    r->conns = calloc(cfg->conns, sizeof *r->conns);
    if (!r->loop || !r->conns) {
        snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
        return -1;
    }
    if (cfg->rate) {
        r->pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (r->pace_fd < 0) {
            snprintf(r->errmsg, sizeof r->errmsg, "timerfd_create: %s", strerror(errno));
            return -1;
        }
        ev_io_init(&r->pace, on_pace, r->pace_fd, EV_READ);
        ev_set_priority(&r->pace, EV_MAXPRI); /* due requests before replies */
        r->pace.data = r;
    }
    char err[200];
    int rc = 0;
    for (uint32_t i = 0; i < cfg->conns && rc == 0; i++) {
        uint32_t node = cfg->topo ? conn_node(cfg, i) : 0;
        const char *host = cfg->topo ? cfg->topo->nodes[node].host : cfg->host;
        uint16_t port = cfg->topo ? cfg->topo->nodes[node].port : cfg->port;
        struct addrinfo *res;
        if (resolve(host, port, &res, r->errmsg, sizeof r->errmsg) < 0)
            return -1;
        int fd = connect_any(res, (int)(cfg->timeout * 1000), err, sizeof err);
        freeaddrinfo(res);
        if (fd >= 0 && cfg->auth &&
            bench_auth(fd, drv, cfg->auth, r->max_reply, (int)(cfg->timeout * 1000), err,
                       sizeof err) < 0) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            snprintf(r->errmsg, sizeof r->errmsg, "%.100s port %u, connection %u: %.100s", host,
                     port, i + 1, err);
            rc = -1;
            break;
        }
        r->nconns++;
        if (conn_init(r, &r->conns[i], i, fd, max_depth) < 0) {
            snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
            rc = -1;
        }
        r->conns[i].node = node;
    }
    return rc;
}

void run_close(bench_run *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; i < r->nconns; i++)
        conn_deinit(&r->conns[i]);
    free(r->conns);
    r->conns = NULL;
    r->nconns = 0;
    if (r->pace_fd >= 0)
        close(r->pace_fd);
    r->pace_fd = -1;
    if (r->loop)
        ev_loop_destroy(r->loop);
    r->loop = NULL;
}

/* ---- pacing ------------------------------------------------------------ */

/* Requests due at `now`. Request g is due once g * NS / rate <= now - start;
 * split into whole seconds and the rest, every product stays below 2^57
 * (rate <= BENCH_RATE_MAX, phases shorter than 10^7 s). */
static uint64_t pace_count(const bench_run *r, uint64_t now)
{
    uint64_t el = now > r->start_ns ? now - r->start_ns : 0;
    return el / NS * r->rate + el % NS * r->rate / NS + 1;
}

/* When request g falls due: the first nanosecond at which pace_count()
 * exceeds g. */
static uint64_t pace_time(const bench_run *r, uint64_t g)
{
    return r->start_ns + g / r->rate * NS + (g % r->rate * NS + r->rate - 1) / r->rate;
}

/* Requests of c's schedule (numbers id, id + nconns, id + 2 * nconns, ...)
 * that are due. */
static uint64_t pace_owed(const bench_run *r, const bench_conn *c)
{
    return r->pace_due > c->id ? (r->pace_due - 1 - c->id) / r->nconns + 1 : 0;
}

/* Which of c's requests is due when: its number `paced` in c's schedule. */
static uint64_t pace_due_time(const bench_run *r, const bench_conn *c)
{
    return pace_time(r, c->id + c->paced * r->nconns);
}

/* Arms the timerfd for monotonic time t, or disarms it (t == 0). */
static void pace_arm(bench_run *r, uint64_t t)
{
    if (t == r->pace_armed)
        return;
    struct itimerspec its = {.it_value = {(time_t)(t / NS), (long)(t % NS)}};
    if (timerfd_settime(r->pace_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        fail(r, "timerfd_settime: %s", strerror(errno));
    r->pace_armed = t;
}

/* ---- requests out ------------------------------------------------------ */

static void set_writing(bench_conn *c, bool on)
{
    if (c->writing == on)
        return;
    c->writing = on;
    ev_io_stop(c->run->loop, &c->io);
    ev_io_set(&c->io, c->fd, on ? EV_READ | EV_WRITE : EV_READ);
    ev_io_start(c->run->loop, &c->io);
}

static int flush(bench_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_writing(c, true);
            return 0;
        }
        if (n < 0) {
            fail(c->run, "connection %u: send: %s", c->id + 1, strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out.len = c->out_off = 0;
    set_writing(c, false);
    return 0;
}

/* The next request of the phase, or false if there is none to issue. */
static bool next_op(bench_run *r, bench_conn *c, bench_op *op)
{
    if (r->stopping || r->exhausted)
        return false;
    if (r->phase == PHASE_PRELOAD) {
        if (!workload_preload_next(r->wl, op, c->node)) {
            /* With --cluster this node's part may be done before the
             * others': the connection idles until the phase ends. */
            r->exhausted = workload_preload_done(r->wl);
            return false;
        }
    } else {
        if (r->limit && r->issued >= r->limit) {
            r->exhausted = true;
            return false;
        }
        workload_next(r->wl, &c->rng, op, c->node);
    }
    /* The generator counts keys from 0 (its per-key state is an array);
     * the offset only moves them on the wire, so two tkv-bench processes
     * can drive disjoint key sets of one server. */
    op->key += r->cfg->key_offset;
    if (op->kind == OP_PUT) {
        uint64_t seq = ++c->seq ^ ((uint64_t)c->id << 48);
        uint32_t n = r->cfg->value_size < 8 ? r->cfg->value_size : 8;
        memcpy(c->value, &seq, n);
        op->value = c->value;
        op->value_len = r->cfg->value_size;
    }
    r->issued++;
    return true;
}

/* Fills the free pipeline slots with new requests and sends them; paced,
 * only with requests that are due. */
static void refill(bench_conn *c)
{
    bench_run *r = c->run;
    uint32_t first = c->count;
    uint64_t owed = r->rate ? pace_owed(r, c) : UINT64_MAX;
    while (c->count < r->depth && (!r->rate || c->paced < owed)) {
        bench_op op;
        if (!next_op(r, c, &op))
            break;
        if (r->drv->encode(&c->out, &op) < 0) {
            fail(r, "out of memory encoding requests");
            return;
        }
        uint32_t slot = (c->head + c->count) % c->ring_cap;
        c->ring_kind[slot] = (uint8_t)op.kind;
        if (r->rate) {
            c->ring_sent[slot] = pace_due_time(r, c);
            c->paced++;
        }
        c->count++;
    }
    if (c->count == first)
        return;
    uint64_t now = tkv_clock_mono_ns();
    for (uint32_t i = first; i < c->count; i++) {
        uint64_t *sent = &c->ring_sent[(c->head + i) % c->ring_cap];
        if (r->rate)
            tkv_hist_record(&r->stats->lag, now - *sent); /* latency runs from *sent */
        else
            *sent = now;
    }
    if (first == 0)
        c->progress_ns = now;
    r->inflight += c->count - first;
    flush(c);
}

/* When the pacer must wake next: when the first request falls due on a
 * connection with room for it. A connection whose pipeline is full sends
 * what fell due on it as soon as a reply frees a slot, so it needs no
 * wake, and when every pipeline is full (the server is behind) the pacer
 * sleeps (0) instead of spinning. Looks at the next nconns requests: one
 * per connection. */
static uint64_t pace_next(const bench_run *r)
{
    if (r->stopping || r->exhausted)
        return 0;
    for (uint64_t g = r->pace_due; g < r->pace_due + r->nconns; g++)
        if (r->conns[g % r->nconns].count < r->depth)
            return pace_time(r, g);
    return 0;
}

/* Brings the schedule up to `now`: wakes the connections that requests fell
 * due on since the last wake (each once, however many fell due on it), then
 * sleeps until pace_next(). Every connection with room has then sent all
 * that is due on it. */
static void pace_wake(bench_run *r, uint64_t now)
{
    if (!r->stopping && !r->exhausted) {
        r->pace_due = pace_count(r, now);
        uint64_t fresh = r->pace_due - r->pace_woken;
        uint32_t n = fresh < r->nconns ? (uint32_t)fresh : r->nconns;
        uint32_t first = (uint32_t)(r->pace_woken % r->nconns);
        r->pace_woken = r->pace_due;
        for (uint32_t i = 0; i < n && !r->failed; i++)
            refill(&r->conns[(first + i) % r->nconns]);
    }
    if (!r->failed)
        pace_arm(r, pace_next(r));
}

/* After replies freed room on c and it refilled: if it still has room, the
 * pacer must wake by the time its next request falls due - at once if that
 * time has passed while c was full and the pacer slept. */
static void pace_room(bench_run *r, bench_conn *c, uint64_t now)
{
    if (c->count >= r->depth || r->stopping || r->exhausted)
        return;
    uint64_t t = pace_due_time(r, c);
    if (t <= now)
        pace_wake(r, now);
    else if (r->pace_armed == 0 || t < r->pace_armed)
        pace_arm(r, t);
}

/* ---- replies in -------------------------------------------------------- */

static void finish_if_done(bench_run *r)
{
    if (r->inflight == 0 && (r->exhausted || r->stopping)) {
        r->stats->elapsed_ns = tkv_clock_mono_ns() - r->start_ns;
        ev_break(r->loop, EVBREAK_ALL);
    }
}

static void note_error(bench_run *r, bench_opkind kind, const bench_text *msg)
{
    if (r->first_error[0])
        return;
    int len = msg->len > 200 ? 200 : (int)msg->len;
    snprintf(r->first_error, sizeof r->first_error, "%s: %.*s", bench_op_names[kind], len,
             msg->ptr ? (const char *)msg->ptr : "");
}

static void account(bench_run *r, bench_opkind kind, bench_reply cls, const bench_text *msg,
                    uint64_t latency)
{
    bench_stats *s = r->stats;
    s->replies[kind]++;
    if (cls == REPLY_MISS)
        s->misses[kind]++;
    if (cls == REPLY_ERROR) {
        s->errors[kind]++;
        note_error(r, kind, msg);
    }
    tkv_hist_record(&s->hist[kind], latency);
}

/* Consumes every complete reply in the reader. Returns -1 on failure. */
static int take_replies(bench_conn *c, uint64_t now)
{
    bench_run *r = c->run;
    for (;;) {
        if (c->count == 0) {
            if (r->drv->pending(&c->rd) == 0)
                return 0;
            fail(r, "connection %u: %zu bytes received with no request in flight", c->id + 1,
                 r->drv->pending(&c->rd));
            return -1;
        }
        bench_opkind kind = (bench_opkind)c->ring_kind[c->head];
        bench_reply cls;
        bench_text msg = {NULL, 0};
        char err[200];
        int rc = r->drv->next_reply(&c->rd, kind, &cls, &msg, err, sizeof err);
        if (rc < 0) {
            fail(r, "connection %u: %s", c->id + 1, err);
            return -1;
        }
        if (rc == 0)
            return 0;
        account(r, kind, cls, &msg, now - c->ring_sent[c->head]);
        c->head = (c->head + 1) % c->ring_cap;
        c->count--;
        r->inflight--;
        r->done++;
        c->progress_ns = now;
    }
}

/* Reads what the socket has (a few reads at most) and handles the replies.
 * Returns -1 if the connection failed. */
static int read_replies(bench_conn *c)
{
    bench_run *r = c->run;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        uint8_t *p;
        size_t avail;
        if (r->drv->reader_space(&c->rd, READ_WANT, &p, &avail) < 0 || avail == 0) {
            fail(r, "connection %u: %s", c->id + 1,
                 avail == 0 ? "reply buffer full" : "out of memory");
            return -1;
        }
        ssize_t n = recv(c->fd, p, avail, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {
            fail(r, "connection %u: %s", c->id + 1,
                 n == 0 ? "the server closed the connection" : strerror(errno));
            return -1;
        }
        r->drv->reader_commit(&c->rd, (size_t)n);
        if (take_replies(c, tkv_clock_mono_ns()) < 0)
            return -1;
        if ((size_t)n < avail)
            return 0; /* the socket is most likely drained */
    }
    return 0;
}

static void on_io(struct ev_loop *loop, ev_io *w, int events)
{
    bench_conn *c = (bench_conn *)w;
    bench_run *r = c->run;
    if ((events & EV_WRITE) && flush(c) < 0)
        return;
    if (!(events & EV_READ))
        return;
    if (read_replies(c) < 0)
        return;
    refill(c);
    if (r->rate && !r->failed)
        pace_room(r, c, tkv_clock_mono_ns());
    finish_if_done(r);
}

/* ---- the phase --------------------------------------------------------- */

static void check_timeouts(bench_run *r, uint64_t now)
{
    uint64_t limit = (uint64_t)(r->cfg->timeout * 1e9);
    for (uint32_t i = 0; i < r->nconns; i++) {
        const bench_conn *c = &r->conns[i];
        if (c->count > 0 && now - c->progress_ns > limit) {
            fail(r, "connection %u: no reply for %.0f s with %u requests in flight", c->id + 1,
                 r->cfg->timeout, c->count);
            return;
        }
    }
}

static uint64_t total_errors(const bench_stats *s)
{
    uint64_t n = 0;
    for (int k = 0; k < OP__COUNT; k++)
        n += s->errors[k];
    return n;
}

static void print_progress(bench_run *r, uint64_t now)
{
    double secs = (double)(now - r->start_ns) / 1e9;
    double rate = (double)(r->done - r->last_done) * 1e9 / (double)(now - r->last_tick_ns);
    if (r->phase == PHASE_PRELOAD) {
        double pct =
            100.0 * (double)r->done / (double)(r->wl->preload_total ? r->wl->preload_total : 1);
        fprintf(stderr, "\rpreload %6.1f s %10.0f ops/s %5.1f%%  errors %llu   ", secs, rate, pct,
                (unsigned long long)total_errors(r->stats));
    } else {
        fprintf(stderr, "\rrun     %6.1f s %10.0f ops/s %12llu done  errors %llu   ", secs, rate,
                (unsigned long long)r->done, (unsigned long long)total_errors(r->stats));
    }
    r->last_done = r->done;
    r->last_tick_ns = now;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int events)
{
    bench_run *r = w->data;
    uint64_t now = tkv_clock_mono_ns();
    check_timeouts(r, now);
    if (r->show_progress && !r->failed)
        print_progress(r, now);
}

/* Ends issuing at `end`. A paced phase notes how many requests due by then
 * it never sent: a backlog its latencies do not cover. */
static void stop_issuing(bench_run *r, uint64_t end)
{
    if (r->rate && !r->stopping && !r->exhausted) {
        uint64_t due = pace_count(r, end);
        if (r->limit && due > r->limit)
            due = r->limit;
        r->stats->unsent = due > r->issued ? due - r->issued : 0;
    }
    r->stopping = true;
}

static void on_pace(struct ev_loop *loop, ev_io *w, int events)
{
    bench_run *r = w->data;
    uint64_t expirations;
    /* Only clears the readiness: how many expirations does not matter, the
     * clock says what is due. */
    ssize_t n = read(r->pace_fd, &expirations, sizeof expirations);
    (void)n;
    pace_wake(r, tkv_clock_mono_ns());
    finish_if_done(r);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int events)
{
    bench_run *r = w->data;
    /* libev's timers may run a millisecond late: count what was due at the
     * end the user asked for. */
    uint64_t end = r->start_ns + (uint64_t)(r->cfg->seconds * 1e9);
    uint64_t now = tkv_clock_mono_ns();
    stop_issuing(r, now < end ? now : end);
    finish_if_done(r);
}

/* The first Ctrl-C ends the phase early but still answers what is in flight,
 * so the report covers complete requests; a second one gives up. */
static void on_sigint(struct ev_loop *loop, ev_signal *w, int events)
{
    bench_run *r = w->data;
    if (r->interrupted) {
        fail(r, "interrupted");
        return;
    }
    stop_issuing(r, tkv_clock_mono_ns());
    r->interrupted = true;
    finish_if_done(r);
}

static void reset_phase(bench_run *r, bench_phase phase, uint32_t depth, bench_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    for (int k = 0; k < OP__COUNT; k++)
        tkv_hist_init(&stats->hist[k]);
    tkv_hist_init(&stats->lag);
    r->phase = phase;
    r->stats = stats;
    r->depth = depth < 1 ? 1 : depth;
    for (uint32_t i = 0; i < r->nconns; i++)
        if (r->depth > r->conns[i].ring_cap)
            r->depth = r->conns[i].ring_cap;
    r->limit = phase == PHASE_MEASURE ? r->cfg->requests : 0;
    r->issued = r->done = r->inflight = 0;
    r->exhausted = r->stopping = false;
    r->rate = phase == PHASE_MEASURE ? r->cfg->rate : 0;
    r->pace_due = r->pace_woken = r->pace_armed = 0;
    for (uint32_t i = 0; i < r->nconns; i++)
        r->conns[i].paced = 0;
    r->start_ns = r->last_tick_ns = tkv_clock_mono_ns();
    r->last_done = 0;
}

static void start_watchers(bench_run *r, bench_phase phase)
{
    ev_timer_init(&r->tick, on_tick, 1.0, 1.0);
    ev_timer_init(&r->deadline, on_deadline, r->cfg->seconds, 0.0);
    ev_signal_init(&r->sigint, on_sigint, SIGINT);
    r->tick.data = r->deadline.data = r->sigint.data = r;
    ev_now_update(r->loop);
    ev_timer_start(r->loop, &r->tick);
    if (phase == PHASE_MEASURE && r->limit == 0)
        ev_timer_start(r->loop, &r->deadline);
    ev_signal_start(r->loop, &r->sigint);
    if (r->rate)
        ev_io_start(r->loop, &r->pace);
}

static void stop_watchers(bench_run *r)
{
    ev_timer_stop(r->loop, &r->tick);
    ev_timer_stop(r->loop, &r->deadline);
    ev_signal_stop(r->loop, &r->sigint);
    if (r->pace_fd >= 0) {
        ev_io_stop(r->loop, &r->pace);
        pace_arm(r, 0);
    }
}

int run_phase(bench_run *r, bench_phase phase, uint32_t depth, bench_stats *stats)
{
    reset_phase(r, phase, depth, stats);
    double cpu0 = cpu_seconds();
    start_watchers(r, phase);
    if (r->rate) {
        pace_wake(r, r->start_ns);
    } else {
        for (uint32_t i = 0; i < r->nconns && !r->failed; i++)
            refill(&r->conns[i]);
    }
    /* An ev_break() before ev_run() would be forgotten: only enter the loop
     * if there is something to wait for. */
    bool pacing = r->rate && !r->stopping && !r->exhausted;
    if (!r->failed && (r->inflight > 0 || pacing))
        ev_run(r->loop, 0);
    if (r->failed || stats->elapsed_ns == 0)
        stats->elapsed_ns = tkv_clock_mono_ns() - r->start_ns;
    stop_watchers(r);
    stats->cpu_s = cpu_seconds() - cpu0;
    if (r->show_progress)
        fprintf(stderr, "\r%78s\r", "");
    return r->failed ? -1 : 0;
}
