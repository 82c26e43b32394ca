/*
 * changes.h - the change feed's decoder: turns a committed batch's "B"
 * frame (protocol/repl.h) into the changes a watcher is pushed
 * (protocol/watch.h). No I/O: the server's watchers, the unit tests and
 * the fuzzers run exactly this code.
 *
 * It belongs to the engine (it reads the engine's record layout,
 * keycodec.h, and its blobs and metadata records); nothing else in the
 * server needs to know that layout to follow changes.
 */
#ifndef TKV_CHANGES_H
#define TKV_CHANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "repl.h"
#include "watch.h"

/* Which changes a watcher wants. */
typedef struct tkv_wfilter {
    const uint8_t *prefix; /* keys starting with it (plen 0: every key) */
    uint32_t plen;
    bool asof; /* as-of watch: prefix is one whole key, and only changes
                  that could change GET key as of `at` pass */
    uint64_t at;
} tkv_wfilter;

/* One store record as a change: 1 with *c set (key and value point into
 * rec or keybuf, which must hold rec->klen bytes), 0 if the record is
 * server state, not a change, -1 if it is malformed. c->offset and
 * c->left are left 0. */
int tkv_change_of_rec(const tkv_repl_rec *rec, uint8_t *keybuf, tkv_wchange *c);

/* True if the filter lets c through. */
bool tkv_wfilter_match(const tkv_wfilter *f, const tkv_wchange *c);

/* Appends the push frames of one "B" frame's payload (p, n) that pass f,
 * each carrying the offset at the batch's end, which is also stored in
 * *end. scratch is grown as keys need. Returns the number of pushes, -1 if
 * the frame is not a well-formed batch, -2 if out of memory (out is then
 * as it was). */
long tkv_changes_of_batch(const uint8_t *p, size_t n, const tkv_wfilter *f, tkv_buf *scratch,
                          tkv_buf *out, uint64_t *end);

#endif
