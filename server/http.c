/*
 * http.c - implements tkvd's HTTP front end (http.h).
 *
 * libmicrohttpd parses HTTP and runs TKV_HTTP_THREADS threads of its own;
 * this file routes a request and carries it to the loop and back as one or
 * two protocol requests; http_kv.c makes the JSON API's requests and
 * responses, http_metrics.c the Prometheus text. It assumes HTTP is the
 * side door - operators' scrapes, health checks, scripts - not the hot
 * path: a request allocates (its body, its JSON) where a TCP request does
 * not.
 *
 * Channels. Each HTTP thread borrows one of TKV_HTTP_THREADS channels for
 * the length of a request. A channel is a blocking socket whose peer is a
 * connection of the loop's; the first request on it (or the first after a
 * failure) makes the pair and queues the server end for the loop, which
 * adopts it in its ev_async callback - the request may be written at once,
 * it waits in the socket until the loop reads it. Any failure on a channel
 * (EOF, a timeout, a malformed reply, a protocol error such as a refused
 * frame, after which the loop reads no more of it) closes it: a reply
 * arriving late would be read as the next request's. A frame above
 * --max-frame is never sent: it is answered 413 here.
 *
 * Keys in URLs are percent-decoded by tkv, not by libmicrohttpd (its
 * unescaper works on C strings and would cut a key at %00): the unescape
 * callback is the identity and every decoding is http_kv.c's pct_decode().
 */
#include "http.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "conn.h"
#include "frame.h"
#include "http_int.h"
#include "proto.h"
#include "reply.h"
#include "units.h"

/* How long an HTTP thread waits for the loop's reply before it gives up on
 * the channel (a loop that slow is stuck, or stopping). */
#define CHAN_TIMEOUT_S 30
/* Server ends made but not adopted yet; more means the loop is not
 * running, and the request fails. */
#define ADOPT_QUEUE 64
/* Idle HTTP connections are closed after this many seconds. */
#define HTTP_IDLE_S 30

typedef struct chan {
    int fd;        /* the client end, blocking; -1: not open */
    bool busy;     /* lent to a request */
    tkv_buf out;   /* the request frame */
    uint8_t *in;   /* the reply payload */
    size_t in_cap; /* allocated size of in */
} chan;

struct tkv_http {
    struct MHD_Daemon *d;
    tkv_http_opts o;
    struct ev_loop *loop;
    ev_async adopt; /* server ends are queued */
    pthread_mutex_t mu;
    pthread_cond_t freed; /* a channel was given back */
    chan ch[TKV_HTTP_THREADS];
    int queue[ADOPT_QUEUE]; /* server ends the loop has not adopted yet */
    size_t nqueue;
    bool stopping;   /* tkv_http_stop() ran: no channel opens again */
    uint64_t opened; /* channels made, for their names in the log */
};

/* ---- the loop's side ----------------------------------------------------- */

static void on_adopt(struct ev_loop *loop, ev_async *w, int revents)
{
    tkv_http *h = w->data;
    int fds[ADOPT_QUEUE];
    pthread_mutex_lock(&h->mu);
    size_t n = h->nqueue;
    memcpy(fds, h->queue, n * sizeof fds[0]);
    h->nqueue = 0;
    uint64_t id = h->opened;
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        char peer[64];
        snprintf(peer, sizeof peer, "http channel %llu", (unsigned long long)(id - n + i + 1));
        /* A stopping server reads no more: the HTTP thread sees EOF and
         * answers 503. */
        if (h->o.hub->stopping || !conn_adopt(h->o.hub, fds[i], peer))
            close(fds[i]);
    }
}

/* ---- channels (HTTP threads) ---------------------------------------------- */

/* Makes ch's socket pair and queues the server end. Under h->mu. */
static int chan_open(tkv_http *h, chan *ch)
{
    int sv[2];
    if (h->stopping || h->nqueue == ADOPT_QUEUE)
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    struct timeval tv = {.tv_sec = CHAN_TIMEOUT_S};
    if (fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0 ||
        setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    ch->fd = sv[0];
    h->queue[h->nqueue++] = sv[1];
    h->opened++;
    ev_async_send(h->loop, &h->adopt);
    return 0;
}

static chan *chan_borrow(tkv_http *h)
{
    pthread_mutex_lock(&h->mu);
    chan *ch = NULL;
    while (!h->stopping) {
        for (size_t i = 0; i < TKV_HTTP_THREADS && !ch; i++)
            if (!h->ch[i].busy)
                ch = &h->ch[i];
        if (ch)
            break;
        pthread_cond_wait(&h->freed, &h->mu);
    }
    if (ch && ch->fd < 0 && chan_open(h, ch) < 0)
        ch = NULL;
    if (ch)
        ch->busy = true;
    pthread_mutex_unlock(&h->mu);
    return ch;
}

/* Gives ch back; `broken` closes it (the next borrower opens a new one). */
static void chan_return(tkv_http *h, chan *ch, bool broken)
{
    pthread_mutex_lock(&h->mu);
    if (broken && ch->fd >= 0) {
        close(ch->fd);
        ch->fd = -1;
    }
    ch->busy = false;
    pthread_cond_signal(&h->freed);
    pthread_mutex_unlock(&h->mu);
}

static int read_full(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = recv(fd, b, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* chan_call(): the request frame is above --max-frame; nothing was sent
 * and the channel is as good as before. */
#define CHAN_TOO_LARGE (-2)

/* One round trip: req out, its reply decoded into *rep (whose spans point
 * into ch until it is returned). Returns 0, CHAN_TOO_LARGE, or -1 if the
 * channel failed (it is then broken: return it so). */
static int chan_call(tkv_http *h, chan *ch, const tkv_req *req, tkv_rep *rep)
{
    uint8_t hdr[TKV_FRAME_HEADER];
    tkv_buf_reset(&ch->out);
    if (tkv_req_encode(&ch->out, req) < 0)
        return -1;
    /* The loop would refuse the frame and then stop reading the channel
     * (a refused length cannot be resynchronised): never send it. */
    if (ch->out.len - TKV_FRAME_HEADER > h->o.max_frame)
        return CHAN_TOO_LARGE;
    if (write_full(ch->fd, ch->out.data, ch->out.len) < 0 || read_full(ch->fd, hdr, sizeof hdr) < 0)
        return -1;
    size_t len = tkv_load_be32(hdr);
    if (len == 0 || len > h->o.max_frame + TKV_REPLY_SLACK)
        return -1; /* never trust a length, not even the loop's */
    if (len > ch->in_cap) {
        uint8_t *p = realloc(ch->in, len);
        if (!p)
            return -1;
        ch->in = p;
        ch->in_cap = len;
    }
    if (read_full(ch->fd, ch->in, len) < 0)
        return -1;
    return tkv_rep_decode(req->cmd, ch->in, len, rep) == 0 ? 0 : -1;
}

/* Whether a reply leaves the channel in doubt: after a refused frame the
 * loop reads no more of the connection, and a protocol error means the two
 * ends disagree on what was sent. A new channel costs one socket pair. */
static bool rep_breaks(const tkv_rep *rep)
{
    switch (rep->status) {
    case TKV_ST_BAD_REQUEST:
    case TKV_ST_UNKNOWN_COMMAND:
    case TKV_ST_TOO_LARGE:
    case TKV_ST_AUTH_REQUIRED:
    case TKV_ST_AUTH_FAILED:
    case TKV_ST_INTERNAL: return true;
    default: return false;
    }
}

/* ---- requests -------------------------------------------------------------- */

/* Queues a response and drops it. Takes ownership of body (malloc'd).
 * hname: an extra header (hval its value), or NULL. */
static enum MHD_Result send_body_hdr(struct MHD_Connection *c, unsigned status, char *body,
                                     size_t len, const char *type, const char *hname,
                                     const char *hval)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (hname)
        MHD_add_response_header(r, hname, hval);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                                 const char *type)
{
    return send_body_hdr(c, status, body, len, type, NULL, NULL);
}

static enum MHD_Result send_json_hdr(struct MHD_Connection *c, unsigned status, json_t *j,
                                     const char *hname, const char *hval)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!s)
        return send_body(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                         strdup("{\"error\":\"out of memory\",\"code\":500}"), 36,
                         "application/json");
    size_t n = strlen(s);
    /* Newline-terminated, as curl users expect on a terminal. */
    char *t = realloc(s, n + 2);
    if (t) {
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    return send_body_hdr(c, status, s, n, "application/json", hname, hval);
}

enum MHD_Result tkv_http_send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    return send_json_hdr(c, status, j, NULL, NULL);
}

enum MHD_Result tkv_http_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return tkv_http_send_json(c, status,
                              json_pack("{s:s, s:i}", "error", msg, "code", (int)status));
}

enum MHD_Result tkv_http_not_allowed(struct MHD_Connection *c, const char *allow, const char *msg)
{
    unsigned st = MHD_HTTP_METHOD_NOT_ALLOWED;
    return send_json_hdr(c, st, json_pack("{s:s, s:i}", "error", msg, "code", (int)st),
                         MHD_HTTP_HEADER_ALLOW, allow);
}

static enum MHD_Result unauthorized(struct MHD_Connection *c)
{
    unsigned st = MHD_HTTP_UNAUTHORIZED;
    return send_json_hdr(c, st,
                         json_pack("{s:s, s:i}", "error",
                                   "authentication required: send Authorization: Bearer SECRET",
                                   "code", (int)st),
                         MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
}

/* An error reply from the server, with the HTTP status that fits it. */
static enum MHD_Result server_error(struct MHD_Connection *c, const tkv_rep *rep)
{
    unsigned code;
    switch (rep->status) {
    case TKV_ST_BAD_REQUEST:
    case TKV_ST_UNKNOWN_COMMAND:
    case TKV_ST_OUT_OF_RANGE:
    case TKV_ST_CROSSSLOT: code = MHD_HTTP_BAD_REQUEST; break;
    case TKV_ST_TOO_LARGE: code = MHD_HTTP_CONTENT_TOO_LARGE; break;
    case TKV_ST_BUSY:
    case TKV_ST_READONLY:
    case TKV_ST_STORAGE: code = MHD_HTTP_SERVICE_UNAVAILABLE; break;
    case TKV_ST_MOVED: code = MHD_HTTP_MISDIRECTED_REQUEST; break;
    default: code = MHD_HTTP_INTERNAL_SERVER_ERROR; break;
    }
    json_t *j = json_pack("{s:s%, s:i, s:s}", "error", (const char *)rep->errmsg.ptr,
                          (size_t)rep->errmsg.len, "code", (int)code, "status",
                          tkv_status_name(rep->status));
    if (rep->status != TKV_ST_MOVED)
        return tkv_http_send_json(c, code, j);
    /* "SLOT HOST:PORT": the owner's protocol address goes in a header. */
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    struct MHD_Response *r =
        s ? MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(s);
        return MHD_NO;
    }
    char owner[320];
    const char *sp = memchr(rep->errmsg.ptr, ' ', rep->errmsg.len);
    size_t off = sp ? (size_t)(sp - (const char *)rep->errmsg.ptr) + 1 : 0;
    snprintf(owner, sizeof owner, "%.*s", (int)(rep->errmsg.len - off),
             (const char *)rep->errmsg.ptr + off);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, "X-Tkv-Moved", owner);
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* Runs req on a channel and hands the reply to `then`, or answers 503 if
 * the loop could not be reached, or the server's error. */
enum MHD_Result tkv_http_call(tkv_http *h, struct MHD_Connection *c, const tkv_req *req,
                              tkv_http_on_reply then, void *ctx)
{
    chan *ch = chan_borrow(h);
    if (!ch)
        return tkv_http_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is stopping");
    tkv_rep rep;
    int cr = chan_call(h, ch, req, &rep);
    if (cr == CHAN_TOO_LARGE) {
        chan_return(h, ch, false);
        return tkv_http_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                              "the request (key and value) is above --max-frame");
    }
    if (cr < 0) {
        chan_return(h, ch, true);
        return tkv_http_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                              "the server did not answer (stopping or overloaded)");
    }
    enum MHD_Result rc = rep.status == TKV_ST_OK || rep.status == TKV_ST_NOT_FOUND
                             ? then(c, req, &rep, ctx)
                             : server_error(c, &rep);
    /* rep's spans point into ch: it goes back after the response is made. */
    chan_return(h, ch, rep_breaks(&rep));
    return rc;
}

/* ---- /healthz and /metrics -------------------------------------------------- */

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *s, size_t n,
                            const char *type)
{
    char *b = malloc(n + 1);
    if (!b)
        return MHD_NO;
    memcpy(b, s, n);
    return send_body(c, status, b, n, type ? type : "text/plain; charset=utf-8");
}

/* A PING, then a COUNT: PING proves the loop answers; COUNT needs the data,
 * which a replica loading a full copy answers BUSY. In a cluster the probe
 * key's slot may be another node's: MOVED is an answer from a node that
 * serves, so it counts as healthy. */
static enum MHD_Result healthz(tkv_http *h, struct MHD_Connection *c)
{
    static const uint8_t probe[] = "\xfftkv-healthz";
    tkv_req reqs[2] = {
        {.cmd = TKV_CMD_PING},
        {.cmd = TKV_CMD_COUNT, .key = {probe, sizeof probe - 1}, .from = 1, .to = 0}};
    chan *ch = chan_borrow(h);
    if (!ch)
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping\n", 9, NULL);
    for (int i = 0; i < 2; i++) {
        tkv_rep rep;
        if (chan_call(h, ch, &reqs[i], &rep) != 0) {
            chan_return(h, ch, true);
            return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no answer\n", 10, NULL);
        }
        if (rep.status != TKV_ST_OK && rep.status != TKV_ST_MOVED) {
            char msg[300];
            int n = snprintf(msg, sizeof msg, "%s: %.*s\n", tkv_status_name(rep.status),
                             (int)rep.errmsg.len, (const char *)rep.errmsg.ptr);
            chan_return(h, ch, rep_breaks(&rep));
            return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg,
                        n < (int)sizeof msg ? (size_t)n : sizeof msg - 1, NULL);
        }
    }
    chan_return(h, ch, false);
    return text(c, MHD_HTTP_OK, "ok\n", 3, NULL);
}

static enum MHD_Result metrics_done(struct MHD_Connection *c, const tkv_req *req,
                                    const tkv_rep *rep, void *ctx)
{
    tkv_buf b;
    tkv_buf_init(&b);
    if (tkv_http_metrics(&b, rep) < 0) {
        tkv_buf_deinit(&b);
        return tkv_http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    /* Ownership moves to the response, which frees it. */
    return send_body(c, MHD_HTTP_OK, (char *)b.data, b.len, "text/plain; version=0.0.4");
}

/* ---- libmicrohttpd's callbacks ---------------------------------------------- */

/* Bearer SECRET, checked as AUTH checks it (constant time, hashed). The
 * scheme is case-insensitive (RFC 9110 §11.1), the secret is not. */
static bool authorized(const tkv_http *h, struct MHD_Connection *c)
{
    if (!h->o.auth)
        return true;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    return tkv_auth_check(h->o.auth, v + 7, strlen(v + 7));
}

static bool is_get(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* /healthz, /metrics and /openapi.json: read-only, GET or HEAD. */
static bool fixed_endpoint(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0 ||
           strcmp(url, "/openapi.json") == 0;
}

/* Runs once the body, if any, is in. Methods on the fixed endpoints were
 * checked before it was read (on_request). */
static enum MHD_Result route(tkv_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, tkv_http_req *r)
{
    if (strcmp(url, "/healthz") == 0)
        return healthz(h, c);
    if (strcmp(url, "/metrics") == 0) {
        tkv_req req = {.cmd = TKV_CMD_STATS};
        return tkv_http_call(h, c, &req, metrics_done, NULL);
    }
    if (strcmp(url, "/openapi.json") == 0)
        return text(c, MHD_HTTP_OK, tkv_openapi_json, strlen(tkv_openapi_json), "application/json");
    if (strncmp(url, "/v1/kv/", 7) != 0)
        return tkv_http_error(c, MHD_HTTP_NOT_FOUND,
                              "no such endpoint: see /openapi.json for the ones there are");
    return tkv_http_kv(h, c, method, url + 7, h->o.max_key, r);
}

/* The first call for a request, before any of its body is read: a request
 * that is refused here (wrong method, no secret, too large) never makes
 * the server hold its body - libmicrohttpd discards it. Only a PUT of
 * /v1/kv/KEY from an authorized client keeps one. */
static enum MHD_Result admit(tkv_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, tkv_http_req *r)
{
    if (fixed_endpoint(url) && !is_get(method)) {
        r->answered = true;
        return tkv_http_not_allowed(c, "GET, HEAD", "this endpoint takes GET or HEAD");
    }
    if (strcmp(url, "/healthz") != 0 && !authorized(h, c)) {
        r->answered = true;
        return unauthorized(c);
    }
    r->keep_body =
        strcmp(method, "PUT") == 0 && strncmp(url, "/v1/kv/", 7) == 0 && !strchr(url + 7, '/');
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t len;
    if (r->keep_body && cl && tkv_parse_uint(cl, 0, UINT64_MAX, &len) == 0 &&
        len > h->o.max_value) {
        r->answered = true;
        return tkv_http_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the value is above --max-value");
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    tkv_http *h = cls;
    tkv_http_req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        *con_cls = r;
        return admit(h, c, url, method, r);
    }
    if (*upload_size > 0) {
        /* Only a PUT's body is the value; others' are read and dropped. */
        if (!r->answered && !r->too_big && r->keep_body) {
            if (r->body.len + *upload_size > h->o.max_value)
                r->too_big = true;
            else if (tkv_buf_append(&r->body, upload_data, *upload_size) < 0)
                return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->answered)
        return MHD_YES;
    r->answered = true;
    return route(h, c, url, method, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    tkv_http_req *r = *con_cls;
    if (!r)
        return;
    tkv_buf_deinit(&r->body);
    free(r);
    *con_cls = NULL;
}

/* Keeps the path as sent: http_kv.c decodes it, binary-safe. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) { return strlen(s); }

/* ---- start and stop --------------------------------------------------------- */

tkv_http *tkv_http_start(struct ev_loop *loop, const tkv_http_opts *o, char *err, size_t errlen)
{
    tkv_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        close(o->fd);
        return NULL;
    }
    h->o = *o;
    h->loop = loop;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->freed, NULL);
    for (size_t i = 0; i < TKV_HTTP_THREADS; i++)
        h->ch[i].fd = -1;
    ev_async_init(&h->adopt, on_adopt);
    h->adopt.data = h;
    ev_async_start(loop, &h->adopt);
    /* The request line holds a key percent-encoded: three bytes a byte. */
    size_t mem = 32 * 1024 + 3 * (size_t)o->max_key;
    h->d = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, h,
        MHD_OPTION_LISTEN_SOCKET, o->fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)TKV_HTTP_THREADS,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)TKV_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        mem, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_UNESCAPE_CALLBACK,
        no_unescape, h, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "libmicrohttpd did not start");
        close(o->fd);
        h->stopping = true;
        tkv_http_stop(h);
        return NULL;
    }
    return h;
}

void tkv_http_stop(tkv_http *h)
{
    if (!h)
        return;
    /* Requests waiting on the loop get EOF (and answer 503); none opens a
     * channel again. */
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    for (size_t i = 0; i < TKV_HTTP_THREADS; i++)
        if (h->ch[i].fd >= 0)
            shutdown(h->ch[i].fd, SHUT_RDWR);
    for (size_t i = 0; i < h->nqueue; i++)
        close(h->queue[i]);
    h->nqueue = 0;
    pthread_cond_broadcast(&h->freed);
    pthread_mutex_unlock(&h->mu);
    if (h->d)
        MHD_stop_daemon(h->d); /* joins its threads; closes the listener */
    ev_async_stop(h->loop, &h->adopt);
    for (size_t i = 0; i < TKV_HTTP_THREADS; i++) {
        if (h->ch[i].fd >= 0)
            close(h->ch[i].fd);
        tkv_buf_deinit(&h->ch[i].out);
        free(h->ch[i].in);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->freed);
    free(h);
}
