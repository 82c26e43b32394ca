/*
 * tkv/async.h - libtkvclient inside an event loop: the non-blocking API.
 *
 * The shape is hiredis's async context. The caller's event loop owns the
 * socket: the library says which events it wants through hooks (an
 * adapter, such as tkv/adapters/libev.h, fills them in) and the loop calls
 * tkv_async_handle_read() and tkv_async_handle_write() when the descriptor
 * is ready. Nothing here blocks, except the name lookup of
 * tkv_async_connect() (pass a numeric address to avoid it).
 *
 * CONVENTIONS (beyond those of tkv/client.h, which hold here too)
 *
 *  - A command takes a callback and its privdata, queues the request
 *    (the same encoders as the tkv_append_* calls) and returns TKV_OK, or
 *    TKV_ERR if it was refused (a bad argument, memory, a context that is
 *    disconnecting): the callback is then never called for it. Requests
 *    are sent when the loop next finds the socket writable, so the
 *    commands issued in one loop iteration leave in one write.
 *  - Every accepted command's callback is called exactly once, in the
 *    order the commands were issued: with the decoded reply - the same
 *    tkv_reply tkv_read_reply() gives, r->status TKV_OK, TKV_NOT_FOUND or
 *    TKV_ERR for a server error - or with r NULL if the connection ended
 *    first. During a callback tkv_async_err(), tkv_async_errstr() and
 *    tkv_async_server_code() describe that error; the reply and its
 *    pointers stay valid until the callback returns.
 *  - A callback may issue commands, call tkv_async_disconnect() or
 *    tkv_async_free() on its own context: the library finishes what it was
 *    doing first (hiredis's rule).
 *  - No memory is allocated per command beyond the growth of the context's
 *    buffers and callback ring, which keep their size.
 *  - A context has no timeout: a program that wants one runs a timer in
 *    its loop and calls tkv_async_free() when it fires.
 *
 * LIFETIME
 *
 *  - tkv_async_connect*() start a non-blocking connect. Attach the context
 *    to a loop (an adapter calls tkv_async_set_hooks()); once the
 *    connection is made, or has failed, the connect callback says so. A
 *    context whose connect failed is freed by the library after that
 *    callback returns (commands issued meanwhile get r NULL first).
 *  - The connection ends when the server closes it or breaks the protocol
 *    (status TKV_ERR), after tkv_async_disconnect() once every pending
 *    reply has come (TKV_OK), or at tkv_async_free() (TKV_OK; pending
 *    callbacks get r NULL). Then every pending callback is called with r
 *    NULL, then the disconnect callback, then the hooks' cleanup, and the
 *    library frees the context: do not touch it after the disconnect
 *    callback returns.
 *  - No reconnecting: on disconnect, make a new context (as hiredis).
 */
#ifndef TKV_ASYNC_H
#define TKV_ASYNC_H

#include "tkv/client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tkv_async tkv_async;

/* A command's callback: r is the reply, or NULL if the connection ended
 * before it came. */
typedef void (*tkv_async_cb)(tkv_async *ac, const tkv_reply *r, void *privdata);
/* Connect and disconnect callbacks: status TKV_OK or TKV_ERR (the reason
 * in tkv_async_errstr() during the call). */
typedef void (*tkv_async_conn_cb)(tkv_async *ac, int status);

/* What an event loop adapter provides: start and stop watching the
 * descriptor for reading and for writing (each called only on a change),
 * and cleanup once, when the context goes (stop both watchers, free the
 * adapter's state). Every hook gets `data`. While connecting to a host
 * name with several addresses, a refused address is followed by the next:
 * its socket keeps the descriptor number, between a del_write and an
 * add_write. A loop that caches registrations per descriptor (libev,
 * epoll) must register it afresh in add_write, as adapters/libev.h does. */
typedef struct tkv_async_hooks {
    void *data;
    void (*add_read)(void *data);
    void (*del_read)(void *data);
    void (*add_write)(void *data);
    void (*del_write)(void *data);
    void (*cleanup)(void *data);
} tkv_async_hooks;

/* The events the context wants now (for loops driven by poll()). */
#define TKV_ASYNC_READ 1
#define TKV_ASYNC_WRITE 2

/* Starts connecting to host (a numeric address, or a name resolved here,
 * blocking) and port. Returns a context - check tkv_async_err() !=
 * TKV_EK_NONE: a name that does not resolve or no socket to be had fails
 * here, and such a context is only for tkv_async_free() - or NULL if
 * memory is exhausted. Each of the name's addresses is tried in turn, as
 * tkv_connect() does; if all refuse, the last refusal is reported later,
 * to the connect callback. */
TKV_API tkv_async *tkv_async_connect(const char *host, uint16_t port);
/* The same for a server's Unix socket (tkvd --unix PATH). A server whose
 * backlog is full refuses the connect at once (EAGAIN); unlike
 * tkv_connect_unix(), which retries until its timeout, this context has no
 * timer of its own, so the connect callback gets TKV_ERR with TKV_EK_IO
 * and an errstr saying the backlog is full: retry from a timer of the
 * program's loop with a new context. */
TKV_API tkv_async *tkv_async_connect_unix(const char *path);

/* Disconnects at once: pending callbacks get r NULL, the disconnect
 * callback gets TKV_OK (if the connection was made), and the context is
 * freed. NULL-safe; within a callback, takes effect when it returns. */
TKV_API void tkv_async_free(tkv_async *ac);

/* Disconnects gracefully: refuses new commands, waits for the replies
 * pending, then ends as tkv_async_free() does (disconnect status TKV_OK). */
TKV_API void tkv_async_disconnect(tkv_async *ac);

/* The descriptor to watch (-1 if the connect failed at once). */
TKV_API int tkv_async_fd(const tkv_async *ac);
/* TKV_ASYNC_READ and/or TKV_ASYNC_WRITE. */
TKV_API int tkv_async_wants(const tkv_async *ac);

/* Attaches an event loop: copies hooks and calls add_read/add_write for
 * what the context already wants. TKV_OK, or TKV_ERR (TKV_EK_USAGE) if
 * hooks are set already. */
TKV_API int tkv_async_set_hooks(tkv_async *ac, const tkv_async_hooks *hooks);

/* Called by the loop when the descriptor is readable / writable. Either
 * may run callbacks and free the context. */
TKV_API void tkv_async_handle_read(tkv_async *ac);
TKV_API void tkv_async_handle_write(tkv_async *ac);

TKV_API void tkv_async_set_connect_cb(tkv_async *ac, tkv_async_conn_cb fn);
TKV_API void tkv_async_set_disconnect_cb(tkv_async *ac, tkv_async_conn_cb fn);

/* A pointer of the caller's, kept with the context. */
TKV_API void tkv_async_set_data(tkv_async *ac, void *data);
TKV_API void *tkv_async_data(const tkv_async *ac);

/* The last error, as tkv_err(), tkv_errstr() and tkv_server_code(). */
TKV_API tkv_errkind tkv_async_err(const tkv_async *ac);
TKV_API const char *tkv_async_errstr(const tkv_async *ac);
TKV_API int tkv_async_server_code(const tkv_async *ac);

/* Turns on TCP keepalive (tkv_set_keepalive()): 0 to 32767 seconds. A
 * value out of range or refused by the system is TKV_ERR with
 * TKV_EK_USAGE and changes nothing (the connection goes on). */
TKV_API int tkv_async_set_keepalive(tkv_async *ac, int seconds);

/* Callbacks not yet called. */
TKV_API size_t tkv_async_pending(const tkv_async *ac);

/* ---- commands: arguments as the tkv_append_* calls, the reply as
 * tkv_read_reply() gives it ------------------------------------------------ */

TKV_API int tkv_async_ping(tkv_async *ac, tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_auth(tkv_async *ac, const void *secret, size_t len, tkv_async_cb cb,
                           void *privdata);
TKV_API int tkv_async_put(tkv_async *ac, const void *key, size_t klen, const void *val, size_t vlen,
                          uint64_t ts, tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_put_now(tkv_async *ac, const void *key, size_t klen, const void *val,
                              size_t vlen, tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_put_ex(tkv_async *ac, const void *key, size_t klen, const void *val,
                             size_t vlen, uint64_t ts, int has_ts, uint64_t ttl_us, tkv_async_cb cb,
                             void *privdata);
TKV_API int tkv_async_get(tkv_async *ac, const void *key, size_t klen, uint64_t ts, tkv_async_cb cb,
                          void *privdata);
TKV_API int tkv_async_get_version(tkv_async *ac, const void *key, size_t klen, int64_t n,
                                  tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_range(tkv_async *ac, const void *key, size_t klen, const tkv_range_opts *opts,
                            tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_del(tkv_async *ac, const void *key, size_t klen, tkv_async_cb cb,
                          void *privdata);
TKV_API int tkv_async_del_at(tkv_async *ac, const void *key, size_t klen, uint64_t ts, int has_ts,
                             tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_count(tkv_async *ac, const void *key, size_t klen, uint64_t from, uint64_t to,
                            tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_mput(tkv_async *ac, const tkv_item *items, size_t n, tkv_async_cb cb,
                           void *privdata);
/* One MGET request: a reply with truncated set answered only the first
 * r->n keys (ask again for the rest; tkv_mget() does that itself). */
TKV_API int tkv_async_mget(tkv_async *ac, uint64_t ts, const tkv_bytes *keys, size_t n,
                           tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_scan(tkv_async *ac, const void *prefix, size_t plen, tkv_bytes cursor,
                           uint32_t count, tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_retain(tkv_async *ac, const void *key, size_t klen, uint32_t versions,
                             uint64_t age_us, int dry_run, tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_policy(tkv_async *ac, const void *key, size_t klen, tkv_async_cb cb,
                             void *privdata);
TKV_API int tkv_async_stats(tkv_async *ac, tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_digest(tkv_async *ac, uint64_t at, int has_at, tkv_async_cb cb,
                             void *privdata);
TKV_API int tkv_async_role(tkv_async *ac, tkv_async_cb cb, void *privdata);
TKV_API int tkv_async_wait(tkv_async *ac, uint64_t nreplicas, uint64_t timeout_ms, tkv_async_cb cb,
                           void *privdata);

#ifdef __cplusplus
}
#endif

#endif
