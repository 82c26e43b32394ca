/*
 * repl.h - the replication stream's frames: encoders and an I/O-free
 * decoder (PROTOCOL.md §10 is the byte-level spec).
 *
 * After a replica's PSYNC the primary sends nothing but these frames on
 * that connection, each a normal frame (4-byte length, one MessagePack
 * array whose first element is a one-letter tag):
 *
 *   ["F", replid, offset]    a full copy follows: the primary's store as of
 *                            offset (the copy replaces all the replica has)
 *   ["S", [[k, v], ...]]     records of the full copy, in key order
 *   ["E", records]           the full copy ended; it held that many records
 *   ["C", replid, offset]    a partial resync: batches follow from offset
 *   ["B", offset, [[k, v] or [k] or [p, nil], ...]]
 *                            one committed batch, starting at offset: puts
 *                            ([k, v]) and deletes ([k]) of store records,
 *                            and drops ([p, nil]: every version record
 *                            under prefix p written before it is
 *                            deleted), applied all or nothing
 *   ["P", offset]            a keepalive carrying the primary's offset
 *
 * and the replica sends ["REPLACK", offset] requests back (no reply).
 *
 * Offsets count the bytes of "B" frames (headers included) since the
 * replication id began: a "B" frame starting at offset o ends at o + its
 * size, and a replica's offset is always at a frame boundary. "P", "F",
 * "S", "E" and "C" frames are not counted.
 *
 * Records are the store's own (server/keycodec.h): a replica applies them
 * as they are, so it holds byte for byte what the primary holds.
 */
#ifndef TKV_REPL_H
#define TKV_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mp.h"

/* A replication id: 40 lower-case hex digits (160 random bits). */
#define TKV_REPLID_LEN 40

typedef enum tkv_repl_tag {
    TKV_RF_FULL = 'F',
    TKV_RF_SNAP = 'S',
    TKV_RF_END = 'E',
    TKV_RF_CONT = 'C',
    TKV_RF_BATCH = 'B',
    TKV_RF_PING = 'P',
} tkv_repl_tag;

/* A decoded frame. For S and B, recs iterates the records
 * (tkv_repl_next_rec). */
typedef struct tkv_repl_frame {
    tkv_repl_tag tag;
    char replid[TKV_REPLID_LEN + 1]; /* F, C */
    uint64_t offset;                 /* F, C, B, P */
    uint64_t count;                  /* E: records; S, B: records in the frame */
    tkv_mp recs;                     /* S, B: at the first record */
} tkv_repl_frame;

/* One record: a put (has_value), a delete, or a drop (drop: key is the
 * prefix). Pointers into the frame. */
typedef struct tkv_repl_rec {
    const uint8_t *key;
    uint32_t klen;
    const uint8_t *value;
    uint32_t vlen;
    bool has_value;
    bool drop;
} tkv_repl_rec;

/* Decodes a frame's payload. Returns 0, or -1 if it is not a well-formed
 * replication frame (the records of S and B are only checked as they are
 * read). */
int tkv_repl_decode(const uint8_t *p, size_t n, tkv_repl_frame *f);

/* The next record of an S or B frame: 1 with *r set, 0 after the last,
 * -1 if malformed (an S record without a value is malformed). */
int tkv_repl_next_rec(tkv_repl_frame *f, tkv_repl_rec *r);

/* Encoders: each appends one whole frame to b; 0, or -1 if out of memory
 * (b is then as it was). */
int tkv_repl_put_id(tkv_buf *b, tkv_repl_tag tag, const char *replid, uint64_t offset); /* F, C */
int tkv_repl_put_end(tkv_buf *b, uint64_t records);
int tkv_repl_put_ping(tkv_buf *b, uint64_t offset);

/* S and B frames are written record by record: begin, then add per record,
 * then end, which patches the count (and the frame's length) in. */
typedef struct tkv_repl_wr {
    tkv_buf *b;
    size_t start; /* the frame's header */
    size_t count_at;
    uint32_t n;
    bool failed;
} tkv_repl_wr;

void tkv_repl_begin(tkv_repl_wr *w, tkv_buf *b, tkv_repl_tag tag, uint64_t offset);
/* value NULL: a delete (B frames only). */
void tkv_repl_add(tkv_repl_wr *w, const void *k, size_t klen, const void *v, size_t vlen);
/* A drop of every version record under prefix p (B frames only). */
void tkv_repl_add_drop(tkv_repl_wr *w, const void *p, size_t plen);
/* Returns 0, or -1 if out of memory (b is then as it was). */
int tkv_repl_end(tkv_repl_wr *w);

/* Bytes written so far by w, header included. */
static inline size_t tkv_repl_size(const tkv_repl_wr *w) { return w->b->len - w->start; }

/* Makes a new random replication id (from the kernel's randomness). 0 or
 * -1 if none is available. */
int tkv_repl_new_id(char out[TKV_REPLID_LEN + 1]);

#endif
