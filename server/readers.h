/*
 * readers.h - tkvd's reader threads: they run the engine's loads (engine.h,
 * "Loads") so that the loop thread never reads LevelDB itself.
 *
 * The loop submits a load with a cookie (the connection that waits for
 * it); a reader thread runs it; the loop gets it back, in its own thread,
 * through an ev_async watcher and the `done` callback, which installs it
 * and resumes whoever waited. A cookie can be forgotten (its connection
 * closed): the load still comes back, with a NULL cookie, and should still
 * be installed or freed. Every function runs on the loop thread.
 */
#ifndef TKV_READERS_H
#define TKV_READERS_H

#include <ev.h>

#include "engine.h"

typedef struct tkv_readers tkv_readers;
typedef struct tkv_reader_job tkv_reader_job;

/* Called on the loop thread for each finished load; cookie is NULL if it
 * was forgotten. The callee owns l (install or free it). */
typedef void (*tkv_readers_done_fn)(void *ctx, tkv_eng_load *l, void *cookie);

/* Starts n threads running e's loads, each at `nice` more than the
 * process's nice value (0: the same). NULL if n is 0 or they could not
 * start (the caller then runs everything inline). */
tkv_readers *tkv_readers_start(struct ev_loop *loop, tkv_engine *e, unsigned n, int nice,
                               tkv_readers_done_fn done, void *ctx);

/* Queues l; returns the job's handle (for tkv_readers_forget), or NULL if
 * out of memory (l is still the caller's). */
tkv_reader_job *tkv_readers_submit(tkv_readers *r, tkv_eng_load *l, void *cookie);

/* The job's cookie becomes NULL: whoever waited is gone. */
void tkv_readers_forget(tkv_reader_job *j);

/* Loads submitted and not yet handed back. */
unsigned tkv_readers_pending(const tkv_readers *r);

/* Waits for the loads being run, frees every load not handed back (without
 * calling done) and the threads. NULL-safe. */
void tkv_readers_stop(tkv_readers *r);

#endif
