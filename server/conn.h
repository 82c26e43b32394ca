/*
 * conn.h - tkvd's client connections, private to the server library.
 *
 * server.c owns the loop, the listener, group commit and shutdown; conn.c
 * owns everything about one client: its buffers, reading and serving its
 * requests, its reply queue and the replies that wait for a batch, its
 * back-pressure, and how it closes. The two meet in a conn_hub, which the
 * server embeds and fills in once before accepting anyone; conn.c reads
 * the server's limits through it and keeps its work queues in it.
 *
 * Every function runs on the loop thread. A conn handle is opaque and any
 * function that may close a connection says so: the handle is then freed.
 */
#ifndef TKV_CONN_H
#define TKV_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cmd.h"
#include "server.h"

typedef struct conn conn;

/* One membership of a connection in a conn_list (intrusive, O(1) add/del). */
typedef struct conn_link {
    conn *prev, *next;
    bool on;
} conn_link;

typedef struct conn_list {
    conn *head;
    size_t n;
} conn_list;

/* What connections share with the server. The server sets the first five
 * fields before the first conn_new() and zeroes the rest. */
typedef struct conn_hub {
    struct ev_loop *loop;
    const tkv_server_opts *o;    /* limits: frame, output, high water, pipeline */
    tkv_dispatch *disp;          /* runs requests; disp->eng stages their writes */
    tkv_server_info *info;       /* connection and byte counters */
    struct tkv_readers *readers; /* NULL: requests read LevelDB inline */
    struct tkv_repl *repl;       /* replication (replication.h) */
    bool stopping;               /* conn_stop_all() ran: no connection reads again */
    uint64_t next_id;            /* the last connection's id (for the log) */
    /* Monotonic µs when the last reply of the run of requests being served
     * was queued (0: none yet): the next request of the run starts then,
     * which saves a clock read per pipelined request. */
    uint64_t served_at;
    /* Every open connection (for timeouts and shutdown). */
    conn_list all;
    /* Work queue: replies were added or released since the last flush, to
     * be written by conn_flush_pending() before the loop sleeps. */
    conn_list pend;
    /* Work queue: complete frames are buffered and unserved (the fairness
     * cap stopped serving, or the buffer filled), to be served by
     * conn_serve_backlog() in the next iteration. */
    conn_list back;
    /* Work queue: holds replies that wait for a batch to be written; each
     * commit releases or withdraws them (conn_release, conn_withdraw). */
    conn_list wait;
    /* Work queue: connections streaming a DIGEST or BACKUP (stream.h),
     * stepped by conn_stream_steps() once per iteration. */
    conn_list streams;
    /* Work queue: connections in WATCHING, fed the pushes of committed
     * batches by conn_watch_feed() once per iteration. */
    conn_list watchers;
    ev_async stream_wake; /* a stream's helper finished a step */
    bool stream_wake_on;  /* stream_wake is started (with the first stream) */
} conn_hub;

/* Opens a connection on an accepted, non-blocking socket and starts
 * reading it. Returns NULL if out of memory (the caller still owns fd). */
conn *conn_new(conn_hub *h, int fd, const struct sockaddr_storage *sa);

/* Opens a connection on the server end of an internal socket pair (the
 * HTTP front end's, http.h): authenticated from the start, frames up to
 * --max-frame, never closed as idle. `peer` names it in the log. Returns
 * NULL if out of memory (the caller still owns fd). */
conn *conn_adopt(conn_hub *h, int fd, const char *peer);

/* Serves the connections on h->back, a fair share each (check watcher).
 * May close connections. */
void conn_serve_backlog(conn_hub *h);

/* Writes the output of every connection on h->pend, up to the first reply
 * that waits for a batch. May close connections. */
void conn_flush_pending(conn_hub *h);

/* Batches up to `epoch` are written: their replies may go (queued on
 * h->pend). */
void conn_release(conn_hub *h, uint64_t epoch);

/* The batches under way failed: every waiting reply becomes a STORAGE
 * error carrying `why` (queued on h->pend). May close connections. */
void conn_withdraw(conn_hub *h, const char *why);

/* Closes connections idle longer than the idle timeout, and lingering ones
 * past their time. */
void conn_close_idle(conn_hub *h, double now);

/* Shutdown begins: serves every request already received, stops reading
 * everywhere and sets h->stopping. Replies still go out. */
void conn_stop_all(conn_hub *h);

/* readers.h's done callback (ctx: the hub): installs a finished load and
 * serves the connection that waited for it, if it is still open. May close
 * connections. */
void conn_load_done(void *ctx, tkv_eng_load *l, void *cookie);

/* replication.h's wait_done callback (cookie: the connection): a WAIT is
 * answered and the connection goes on. May close it. */
void conn_repl_wait_done(void *cookie, uint64_t acked);

/* Runs one step of every stream whose connection has room for output;
 * returns true if some stream could go on at once (the loop must not
 * sleep). May close connections. */
bool conn_stream_steps(conn_hub *h);

/* Appends to every watcher the pushes of batches committed since its last
 * feed (watcher.h), up to the output high water and a bounded amount per
 * call; drops a watcher whose unread output passed --max-output. Returns
 * true if a watcher with room has more to read (the loop must not sleep).
 * Cheap when nothing was committed. May close connections. */
bool conn_watch_feed(conn_hub *h);

/* True while any connection has replies not yet written, waits for a
 * load or streams. */
bool conn_any_unsent(const conn_hub *h);

/* Closes every connection, written or not. */
void conn_close_all(conn_hub *h);

#endif
