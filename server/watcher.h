/*
 * watcher.h - one WATCH connection's change feed, private to the server
 * library.
 *
 * A watcher follows the replication backlog (replication.h): it remembers
 * the offset of the next batch it has not read and, each time a batch is
 * committed, reads the backlog's "B" frames from there up to what is
 * committed, turns each into the push frames its filter passes
 * (changes.h) and appends them to the connection's output. It holds no
 * copy of the stream: a watcher the backlog has passed cannot go on, and
 * is told to read again. Nothing here touches a socket; conn.c decides
 * when to feed and what to do with a watcher that stops reading.
 *
 * Every function runs on the loop thread.
 */
#ifndef TKV_WATCH_SERVER_H
#define TKV_WATCH_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cmd.h"
#include "engine.h"
#include "replication.h"

typedef struct tkv_watcher tkv_watcher;

/* Starts the watch q asks for and appends WATCH's reply [0, replid,
 * offset] to out. *w is the watcher then; with an error reply instead (no
 * backlog, or q->from is not a batch boundary the backlog holds) *w is
 * NULL and the connection goes on as before. Returns 0, or -1 if out of
 * memory (nothing appended). */
int tkv_watcher_start(const tkv_watch_req *q, const tkv_repl *r, tkv_engine *e, tkv_buf *out,
                      tkv_watcher **w);

/* Appends the pushes of the batches committed since the last call - whole
 * batches, until about `room` bytes are appended or a bounded amount was
 * read; *more says whether committed batches remain. Returns 0; 1 if the
 * watch ended with an error frame appended (the backlog passed it or
 * started over); -1 if out of memory (out holds whole frames only). */
int tkv_watcher_feed(tkv_watcher *w, const tkv_repl *r, tkv_engine *e, tkv_buf *out, size_t room,
                     bool *more);

/* The offset of the next batch the watcher reads. */
uint64_t tkv_watcher_offset(const tkv_watcher *w);

/* NULL-safe. */
void tkv_watcher_free(tkv_watcher *w);

#endif
