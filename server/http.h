/*
 * http.h - tkvd's HTTP face (--http-port): /metrics, /healthz, a small JSON
 * API over keys (/v1/kv/...) and its OpenAPI document (/openapi.json).
 *
 * libmicrohttpd does HTTP on threads of its own. A request reaches the
 * engine only through the reactor: each HTTP thread borrows a channel, a
 * socket pair whose server end the loop adopts as an ordinary connection
 * (conn_adopt: authenticated, never idle), and speaks the binary protocol
 * on it - proto.h's encoder out, reply.h's decoder in. Ordering, loads,
 * batching and limits are therefore exactly a TCP client's; only the HTTP
 * threads ever block on a channel, never the loop.
 *
 * tkv_http_start() and tkv_http_stop() run on the loop thread.
 */
#ifndef TKV_HTTP_H
#define TKV_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"

struct conn_hub;
struct ev_loop;
typedef struct tkv_http tkv_http;

typedef struct tkv_http_opts {
    int fd;               /* a listening socket, the front end's from the call on */
    struct conn_hub *hub; /* where channels are adopted */
    const tkv_auth *auth; /* NULL: no secret; else requests need "Bearer SECRET" */
    uint32_t max_key;     /* --max-key: sizes the request line MHD accepts */
    uint32_t max_value;   /* --max-value: the largest PUT body */
    size_t max_frame;     /* --max-frame: the largest reply read back */
} tkv_http_opts;

/* HTTP connections served at once, and the threads serving them (each
 * with its channel to the loop). */
#define TKV_HTTP_MAX_CONNECTIONS 256
#define TKV_HTTP_THREADS 4

/* Starts serving on o->fd. Returns NULL with a message in err (o->fd is
 * closed then too). */
tkv_http *tkv_http_start(struct ev_loop *loop, const tkv_http_opts *o, char *err, size_t errlen);

/* Stops the front end: requests waiting on the loop get 503, the threads
 * are joined, the channels closed. Call after the loop has ended and
 * before its connections are closed. NULL-safe. */
void tkv_http_stop(tkv_http *h);

/* The OpenAPI 3.0 document (openapi.json, embedded at build time). */
extern const char tkv_openapi_json[];

#endif
