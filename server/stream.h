/*
 * stream.h - replies produced in steps: DIGEST and BACKUP.
 *
 * Both walk the whole store, so neither may run to the end inside one turn
 * of the loop. A stream belongs to the connection that asked; the loop
 * calls tkv_stream_step() once per turn while the connection's unsent
 * output is below its limit, and each step does bounded work (the sweep's
 * habit): DIGEST hashes, BACKUP appends reply frames of at most
 * `max_chunk` backup bytes each. Other clients are served in between.
 *
 * The moment. A stream first waits until every batch staged when it was
 * asked for is committed (tkv_engine_settled_epoch), then opens a dump
 * (dump.h) on a store snapshot: so the dump holds every write acknowledged
 * before the request - and every earlier write on the same connection -
 * and it is one atomic moment between two batches, whatever is written
 * while it streams.
 *
 * Every function runs on the loop thread. No I/O: frames go to a tkv_buf.
 * The walk itself, which reads LevelDB, runs a step at a time on a helper
 * thread of the stream's own (stream.c says how they hand over), which
 * calls `wake` when a step is done so the loop comes back for it.
 */
#ifndef TKV_STREAM_H
#define TKV_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "engine.h"
#include "proto.h"

typedef struct tkv_stream tkv_stream;

/* A stream answering cmd (TKV_CMD_DIGEST, TKV_CMD_BACKUP or TKV_CMD_PSYNC); for DIGEST,
 * has_at/at name the clock expiry is judged by (else the engine's clock
 * when the dump opens). wake (any thread; NULL: steps run on the loop) is
 * called with wake_ctx each time the helper finishes a step. NULL if out
 * of memory. */
tkv_stream *tkv_stream_new(tkv_engine *e, tkv_cmd cmd, bool has_at, uint64_t at, size_t max_chunk,
                           void (*wake)(void *ctx), void *wake_ctx);

/* Whether a step can make progress now (false while the stream waits for
 * its batch to commit, or while the helper runs a step). */
bool tkv_stream_ready(tkv_stream *s);

/* Appends the frames the last step produced and hands the next step to
 * the helper (or runs it). Returns 1 when the stream has written its last
 * frame (a final reply, or an error reply that ends it), 0 if more
 * remains, -1 if out of memory (the connection should be dropped). */
int tkv_stream_step(tkv_stream *s, tkv_buf *out);

/* PSYNC (a replica's full copy): once the dump is open, the replication
 * state the copy is at - the stream then sends "F", "S" frames and "E"
 * (protocol/repl.h). False before. */
bool tkv_stream_repl_state(const tkv_stream *s, tkv_eng_repl *out);

/* After the last frame: whether the stream ended with an error frame (the
 * dump failed part-way). */
bool tkv_stream_failed(const tkv_stream *s);

/* Ends the stream early with an error reply (the server stops). */
int tkv_stream_abort(tkv_stream *s, tkv_buf *out, const char *why);

/* Ends the stream early with a STORAGE error reply: the store failed, and
 * its recovery must wait for every open dump to close. Returns as
 * tkv_stream_abort(). */
int tkv_stream_fail(tkv_stream *s, tkv_buf *out, const char *why);

/* Frees the stream and its dump, after the step under way if any (its
 * helper is joined). NULL-safe. */
void tkv_stream_free(tkv_stream *s);

#endif
