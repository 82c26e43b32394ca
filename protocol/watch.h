/*
 * watch.h - the change feed's push frames (PROTOCOL.md §11 is the
 * byte-level spec): one encoder and one I/O-free decoder, shared by tkvd
 * and libtkvclient.
 *
 * After WATCH's reply [0, replid, offset] a connection receives only push
 * frames, one per change, in commit order:
 *
 *   ["W", offset, left, key, ts, value|nil, expires|nil]
 *                     a version was written (value nil: a tombstone)
 *   ["X", offset, left, key, ts]
 *                     a version was removed (DEL of the whole key, or the
 *                     sweep removing an expired or retained version)
 *   ["M", offset, left, key, horizon, keep_versions, keep_age]
 *                     the key's metadata record was written (its horizon,
 *                     its own policy; all 0 when the record was removed)
 *
 * `offset` is the replication offset at the end of the batch the change
 * came from; `left` is how many more changes of that batch follow. A
 * batch is whole once a frame with left 0 has arrived: that frame's offset
 * is the one to resume from. A push's first element is a string; a reply's
 * is an integer status, which is how a client tells the one error frame
 * that may end a watch ([status, message]) from the pushes.
 */
#ifndef TKV_WATCH_H
#define TKV_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum tkv_wkind {
    TKV_WK_WRITE = 'W',
    TKV_WK_REMOVE = 'X',
    TKV_WK_DROP = 'D', /* every version of the key removed (DEL) */
    TKV_WK_META = 'M',
} tkv_wkind;

/* One change. Decoded: key and value point into the frame. */
typedef struct tkv_wchange {
    tkv_wkind kind;
    uint64_t offset;
    uint64_t left;
    const uint8_t *key;
    uint32_t klen;
    uint64_t ts;            /* W, X */
    const uint8_t *value;   /* W: NULL for a tombstone */
    uint32_t vlen;          /* W */
    uint64_t expires;       /* W: 0 if the version never expires */
    uint64_t horizon;       /* M */
    uint32_t keep_versions; /* M: the key's own policy (0: no limit) */
    uint64_t keep_age;      /* M: microseconds (0: no limit) */
} tkv_wchange;

/* Appends one whole push frame for c. 0, or -1 if out of memory (b is then
 * as it was). */
int tkv_watch_put(tkv_buf *b, const tkv_wchange *c);

/* Decodes a frame's payload: 0 with *c set for a push; 1 if the frame is
 * a reply instead ([status, ...]: decode it with tkv_reply_head); -1 if it
 * is neither. Pointers in *c stay valid as long as the frame. */
int tkv_watch_decode(const uint8_t *p, size_t n, tkv_wchange *c);

#endif
