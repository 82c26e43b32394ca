/*
 * reply.h - tkv's replies, described once: the shape of every command's
 * reply (a table), the encoders tkvd writes them with, and an I/O-free
 * decoder that turns a reply payload into a typed struct for the client
 * library, tkv-bench and the fuzz checks.
 *
 * Requests are symmetric in proto.h (parse and encode); this file makes
 * replies symmetric too. A new command is one entry in tkv_reply_descs[]
 * (reply.c) plus, if its shape is new, one encoder here.
 *
 * Every reply is the array [STATUS, field...]. STATUS 0 (OK) and 1
 * (NOT_FOUND, GET only) are followed by the fields the table lists; any
 * other STATUS is an error followed by a message string.
 *
 * Conventions:
 * - Encoders append one whole frame to a tkv_buf and return 0, or -1 if
 *   out of memory (the buffer is then as it was). The hot ones (GET, the
 *   [0, uint] of PUT/DEL/COUNT) are inline and write the bytes directly
 *   into reserved room: no allocation per reply once the buffer has grown,
 *   no msgpack-c callback per element.
 * - The decoder never allocates. Spans and lists in a tkv_rep point into
 *   the payload it was given and stay valid as long as that payload does.
 *   Lists are checked in full by tkv_rep_decode(), so iterating them
 *   afterwards (tkv_rep_next_*) cannot fail.
 * - Decoding is lenient where compatibility needs it and strict elsewhere:
 *   trailing fields a newer server may append are skipped, fields an older
 *   server did not send yet (tkv_rshape.min) read as absent; every type and
 *   every count is checked against the bytes held.
 */
#ifndef TKV_REPLY_H
#define TKV_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mp.h"
#include "proto.h"

/* ---- the typed reply ---------------------------------------------------- */

/* An optional unsigned integer: nil on the wire when !has. */
typedef struct tkv_rep_opt {
    uint64_t v; /* 0 when !has */
    bool has;
} tkv_rep_opt;

/* GET's answer, and each of MGET's. OK: [0, value, ts, next, expires];
 * NOT_FOUND: [1, reason, next, at]. */
typedef struct tkv_rep_answer {
    uint64_t status;     /* TKV_ST_OK or TKV_ST_NOT_FOUND */
    tkv_span value;      /* OK: the version's bytes */
    uint64_t ts;         /* OK: its timestamp */
    tkv_rep_opt next;    /* the next version after ts (OK) or after the time asked */
    tkv_rep_opt expires; /* OK: when the version expires */
    uint64_t miss;       /* NOT_FOUND: a tkv_miss reason */
    tkv_rep_opt at;      /* NOT_FOUND: the tombstone's ts (DELETED), the horizon
                            (BELOW_HORIZON) */
} tkv_rep_answer;

/* One RANGE version: [ts, value or nil, expires?]. */
typedef struct tkv_rep_entry {
    uint64_t ts;
    tkv_span value;   /* ptr NULL: a tombstone */
    uint64_t expires; /* 0: never (the element is then left out) */
} tkv_rep_entry;

/* One STATS field: a name and a number or a string. */
typedef struct tkv_rep_stat {
    tkv_span name;
    bool is_str;
    uint64_t num; /* !is_str */
    tkv_span str; /* is_str */
} tkv_rep_stat;

/* A str or a bin; PING answers its echo as bin, its default as str. */
typedef struct tkv_rep_text {
    tkv_span s;
    bool is_str;
} tkv_rep_text;

/* A list inside a reply, already checked: n elements starting at m. */
typedef struct tkv_rep_list {
    tkv_mp m;   /* the next element */
    uint32_t n; /* elements in the list */
} tkv_rep_list;

/* One range of CLUSTER SHARDS: [from, to, primary, [replica...]], the
 * addresses "host:port" strings. */
typedef struct tkv_rep_slots {
    uint64_t from, to;     /* slots, inclusive */
    tkv_span primary;      /* the node that serves them */
    tkv_rep_list replicas; /* its replicas' addresses: tkv_rep_next_key() */
} tkv_rep_slots;

/* One SLOWLOG GET entry: [id, time, duration, command, key, key_len,
 * client]. */
typedef struct tkv_rep_slow {
    uint64_t id;          /* increasing from 1 since the server started */
    uint64_t time_us;     /* when the request was answered, Unix microseconds */
    uint64_t duration_us; /* its latency (latency.h's definition) */
    tkv_span cmd;         /* the command's name ("GET") */
    tkv_span key;         /* its first key, at most TKV_SLOWLOG_KEY_MAX bytes;
                             empty if it has none */
    uint64_t key_len;     /* the whole key's length: above key.len if cut */
    tkv_span client;      /* the client's address, "host:port" */
} tkv_rep_slow;

typedef struct tkv_rep {
    tkv_cmd cmd;      /* the command it answers */
    uint64_t status;  /* TKV_ST_OK, TKV_ST_NOT_FOUND (GET) or an error */
    tkv_span errmsg;  /* errors: the message (may be empty) */
    uint32_t nfields; /* elements after the status, as received */
    /* Command fields; which ones a command sets is in tkv_reply_descs[]. */
    uint64_t u;            /* PUT: ts; DEL: removed, or the tombstone's ts;
                              COUNT: versions; RETAIN: removable;
                              RESTORE: versions written; CLUSTER: the map's revision */
    tkv_rep_text text;     /* PING: the echo (bin), or "PONG" (str) */
    tkv_rep_answer answer; /* GET */
    tkv_rep_list list;     /* MPUT: stamps; SCAN: keys; RANGE: entries;
                              MGET: answers; STATS: fields;
                              CLUSTER SHARDS: slot ranges;
                              SLOWLOG GET: entries */
    bool truncated;        /* RANGE, MGET */
    tkv_span cursor;       /* SCAN: the last key listed, more may follow;
                              ptr NULL: nil, the scan is complete */
    tkv_rep_opt horizon;   /* RETAIN, POLICY; EXPORTKEY: the cursor */
    bool flag;             /* RETAIN: complete; POLICY: own; BACKUP: last */
    tkv_rep_opt versions;  /* POLICY */
    tkv_rep_opt age;       /* POLICY: microseconds */
    tkv_span data;         /* DIGEST: the digest; BACKUP: a chunk; EXPORTKEY: records */
    uint64_t at;           /* DIGEST: the clock expiry was judged by */
    uint64_t nkeys;        /* DIGEST: keys hashed */
    uint64_t nversions;    /* DIGEST: versions hashed */
    uint64_t skipped;      /* RESTORE: versions the target kept (merge) */
    const char *what;      /* after a failed decode: the field at fault */
} tkv_rep;

/* ---- the table ---------------------------------------------------------- */

/* What one field of a reply is on the wire. */
typedef enum tkv_rf {
    TKV_RF_UINT, /* unsigned integer */
    TKV_RF_OPT,  /* unsigned integer or nil (tkv_rep_opt) */
    TKV_RF_BOOL,
    TKV_RF_BYTES,   /* str or bin (tkv_span) */
    TKV_RF_TEXT,    /* str or bin, remembering which (tkv_rep_text) */
    TKV_RF_CURSOR,  /* bin or nil: SCAN's cursor */
    TKV_RF_UINTS,   /* array of unsigned integers (tkv_rep_list) */
    TKV_RF_KEYS,    /* array of bin */
    TKV_RF_ENTRIES, /* array of RANGE entries */
    TKV_RF_ANSWERS, /* array of [status, answer fields...] */
    TKV_RF_STATS,   /* map of name -> uint or str */
    TKV_RF_SLOTS,   /* array of CLUSTER SHARDS ranges */
    TKV_RF_SLOWLOG, /* array of SLOWLOG GET entries */
} tkv_rf;

typedef struct tkv_rfield {
    tkv_rf kind;
    uint16_t off;     /* where it lands in the target struct */
    const char *name; /* as PROTOCOL.md calls it */
} tkv_rfield;

/* The fields after one status. */
typedef struct tkv_rshape {
    const tkv_rfield *f;
    uint8_t n;   /* fields a current server sends */
    uint8_t min; /* fewest a reader accepts (older servers sent fewer) */
} tkv_rshape;

typedef struct tkv_reply_desc {
    tkv_rshape ok;
    tkv_rshape miss; /* n == 0: the command never answers NOT_FOUND */
    bool answer;     /* fields land in tkv_rep.answer, not tkv_rep (GET) */
} tkv_reply_desc;

/* Indexed by tkv_cmd. */
extern const tkv_reply_desc tkv_reply_descs[TKV_CMD__COUNT];

/* The shapes of a GET answer (also each MGET element, after its status). */
extern const tkv_rshape tkv_answer_ok, tkv_answer_miss;

/* ---- decoding ----------------------------------------------------------- */

enum {
    TKV_REP_EPROTO = -1, /* not a reply to that command; rep->what says where */
};

/* Decodes one reply payload (a frame without its header) answering cmd.
 * Returns 0 with *rep filled - rep->status tells success, NOT_FOUND or an
 * error (then only errmsg is set) - or TKV_REP_EPROTO if the bytes are not
 * a well-formed reply to cmd: not one MessagePack value, no status,
 * NOT_FOUND to a command that cannot miss, too few fields, a field of the
 * wrong type, a list element out of shape. Never allocates. */
int tkv_rep_decode(tkv_cmd cmd, const uint8_t *p, size_t n, tkv_rep *rep);

/* Iterate a list of a decoded reply; each returns false once the list is
 * exhausted. Call the one matching the list's kind. */
bool tkv_rep_next_uint(tkv_rep_list *l, uint64_t *v);         /* MPUT */
bool tkv_rep_next_key(tkv_rep_list *l, tkv_span *key);        /* SCAN */
bool tkv_rep_next_entry(tkv_rep_list *l, tkv_rep_entry *e);   /* RANGE */
bool tkv_rep_next_answer(tkv_rep_list *l, tkv_rep_answer *a); /* MGET */
bool tkv_rep_next_stat(tkv_rep_list *l, tkv_rep_stat *s);     /* STATS */
bool tkv_rep_next_slots(tkv_rep_list *l, tkv_rep_slots *s);   /* CLUSTER SHARDS */
bool tkv_rep_next_slow(tkv_rep_list *l, tkv_rep_slow *e);     /* SLOWLOG GET */

/* Re-encodes a decoded reply with the encoders below (status OK or
 * NOT_FOUND; errors with tkv_write_error()). A reply tkvd wrote comes out
 * byte for byte the same: the tests and fuzz checks rely on it. */
int tkv_rep_encode(tkv_buf *b, const tkv_rep *rep);

/* ---- encoding ------------------------------------------------------------ */

/* Room a GET answer needs at most (its array, status and fields). */
static inline size_t tkv_rep_answer_room(const tkv_rep_answer *a)
{
    return 1 + 1 + 5 + (size_t)a->value.len + 3 * 9;
}

/* Writes an answer array at p (room from tkv_rep_answer_room()); returns
 * the end. This is the reply tkvd sends most, so it is a few stores. */
static inline uint8_t *tkv_rep_write_answer(uint8_t *p, const tkv_rep_answer *a)
{
    if (a->status == TKV_ST_OK) {
        *p++ = 0x95; /* fixarray of 5 */
        *p++ = TKV_ST_OK;
        p = tkv_mpw_bin(p, a->value.ptr, a->value.len);
        p = tkv_mpw_uint(p, a->ts);
        p = tkv_mpw_opt(p, a->next.has, a->next.v);
        return tkv_mpw_opt(p, a->expires.has, a->expires.v);
    }
    *p++ = 0x94; /* fixarray of 4 */
    *p++ = TKV_ST_NOT_FOUND;
    p = tkv_mpw_uint(p, a->miss);
    p = tkv_mpw_opt(p, a->next.has, a->next.v);
    return tkv_mpw_opt(p, a->at.has, a->at.v);
}

/* GET: one answer as a whole frame. */
static inline int tkv_rep_put_answer(tkv_buf *b, const tkv_rep_answer *a)
{
    uint8_t *p = tkv_frame_open(b, tkv_rep_answer_room(a));
    if (!p)
        return -1;
    tkv_frame_close(b, tkv_rep_write_answer(p, a));
    return 0;
}

/* PUT, DEL, COUNT: [0, v]. */
static inline int tkv_rep_put_uint(tkv_buf *b, uint64_t v)
{
    uint8_t *p = tkv_frame_open(b, 11);
    if (!p)
        return -1;
    *p++ = 0x92; /* fixarray of 2 */
    *p++ = TKV_ST_OK;
    tkv_frame_close(b, tkv_mpw_uint(p, v));
    return 0;
}

/* PING: [0, msg] with msg as bin, or [0, "PONG"] (a str) when msg is NULL. */
int tkv_rep_put_ping(tkv_buf *b, const tkv_span *msg);
/* AUTH: [0]. */
int tkv_rep_put_empty(tkv_buf *b);
/* RETAIN: [0, removable, horizon, complete]. */
int tkv_rep_put_retain(tkv_buf *b, uint64_t removable, tkv_rep_opt horizon, bool complete);
/* POLICY: [0, versions, age, own, horizon]. */
int tkv_rep_put_policy(tkv_buf *b, tkv_rep_opt versions, tkv_rep_opt age, bool own,
                       tkv_rep_opt horizon);

/* RESTORE: [0, written, skipped]. */
int tkv_rep_put_restore(tkv_buf *b, uint64_t written, uint64_t skipped);
/* EXPORTKEY: [0, records, cursor]: a piece of the key's backup records;
 * cursor nil for the last piece, else the timestamp to ask from next. */
int tkv_rep_put_export(tkv_buf *b, tkv_span records, tkv_rep_opt cursor);
/* WATCH: [0, replid, offset] (push frames follow: watch.h). */
int tkv_rep_put_watch(tkv_buf *b, const char *replid, uint64_t offset);

/* DIGEST: [0, digest, at, keys, versions]. */
int tkv_rep_put_digest(tkv_buf *b, const uint8_t *digest, uint32_t len, uint64_t at, uint64_t keys,
                       uint64_t versions);

/* BACKUP: one frame of the stream, [0, chunk, last]: the bytes of the
 * backup that follow the previous frame's; `last` ends the stream. Written
 * in place (the chunk is copied once), like GET's answer. */
static inline int tkv_rep_put_chunk(tkv_buf *b, const uint8_t *p, uint32_t n, bool last)
{
    uint8_t *w = tkv_frame_open(b, 1 + 1 + 5 + (size_t)n + 1);
    if (!w)
        return -1;
    *w++ = 0x93; /* fixarray of 3 */
    *w++ = TKV_ST_OK;
    w = tkv_mpw_bin(w, p, n);
    *w++ = last ? 0xc3 : 0xc2;
    tkv_frame_close(b, w);
    return 0;
}

/*
 * Replies with a list (RANGE, MGET, SCAN, MPUT, STATS) are written
 * element by element into the frame as the engine produces them: begin,
 * one call per element, end. A list whose length is not known up front
 * gets a fixed-width array32 header, patched by end. Out-of-memory errors
 * are sticky in lw->w.failed; end then rolls the buffer back and returns
 * -1. lw->w.b->len is the reply's size so far, for callers that stop at a
 * size limit (the *_room() bounds say what the next element may take).
 */
typedef struct tkv_rep_wr {
    tkv_wr w;        /* the frame */
    size_t list_at;  /* offset of the array32 header, or 0 */
    uint32_t n;      /* elements written */
    size_t last_off; /* SCAN: the last key's bytes, for the cursor */
    uint32_t last_len;
} tkv_rep_wr;

/* RANGE: [0, [entry...], truncated]. value NULL is a tombstone; expires
 * 0 leaves the element out. */
void tkv_rep_range_begin(tkv_rep_wr *lw, tkv_buf *b);
static inline size_t tkv_rep_entry_room(uint32_t len) { return 1 + 9 + 5 + (size_t)len + 9; }
void tkv_rep_range_entry(tkv_rep_wr *lw, uint64_t ts, const void *value, uint32_t len,
                         uint64_t expires);
int tkv_rep_range_end(tkv_rep_wr *lw, bool truncated);

/* MGET: [0, [answer...], truncated]. */
void tkv_rep_mget_begin(tkv_rep_wr *lw, tkv_buf *b);
void tkv_rep_mget_answer(tkv_rep_wr *lw, const tkv_rep_answer *a);
int tkv_rep_mget_end(tkv_rep_wr *lw, bool truncated);

/* SCAN: [0, [key...], cursor]; with more set (and a key listed) the cursor
 * repeats the last key, else it is nil. */
void tkv_rep_scan_begin(tkv_rep_wr *lw, tkv_buf *b);
static inline size_t tkv_rep_key_room(size_t len) { return 5 + len; }
void tkv_rep_scan_key(tkv_rep_wr *lw, const void *key, uint32_t len);
int tkv_rep_scan_end(tkv_rep_wr *lw, bool more);
/* SLOTKEYS: the same list, ended by the cursor given (ptr NULL: nil), not
 * a key of the list: keys of other slots were examined after it. */
int tkv_rep_scan_end_at(tkv_rep_wr *lw, tkv_span cursor);

/* MPUT: [0, [ts...]] with n stamps, each given by tkv_rep_mput_ts(). */
void tkv_rep_mput_begin(tkv_rep_wr *lw, tkv_buf *b, uint32_t n);
void tkv_rep_mput_ts(tkv_rep_wr *lw, uint64_t ts);
int tkv_rep_mput_end(tkv_rep_wr *lw);

/* STATS: [0, {name: value...}] with n fields. */
void tkv_rep_stats_begin(tkv_rep_wr *lw, tkv_buf *b, uint32_t n);
void tkv_rep_stats_uint(tkv_rep_wr *lw, const char *name, size_t nlen, uint64_t v);
void tkv_rep_stats_str(tkv_rep_wr *lw, const char *name, size_t nlen, const char *v, size_t vlen);
int tkv_rep_stats_end(tkv_rep_wr *lw);

/* CLUSTER SHARDS: [0, revision, [[from, to, primary, [replica...]]...]]
 * with n ranges; each range is one tkv_rep_shards_range() followed by its
 * nrep tkv_rep_shards_replica() calls. Addresses are written as str. */
void tkv_rep_shards_begin(tkv_rep_wr *lw, tkv_buf *b, uint64_t revision, uint32_t n);
void tkv_rep_shards_range(tkv_rep_wr *lw, uint64_t from, uint64_t to, tkv_span primary,
                          uint32_t nrep);
void tkv_rep_shards_replica(tkv_rep_wr *lw, tkv_span addr);
int tkv_rep_shards_end(tkv_rep_wr *lw);

/* SLOWLOG GET: [0, length, [entry...]] with n entries, each written by
 * tkv_rep_slowlog_entry() (command and client as str, key as bin).
 * SLOWLOG LEN and RESET answer [0, length] (tkv_rep_put_uint). */
void tkv_rep_slowlog_begin(tkv_rep_wr *lw, tkv_buf *b, uint64_t length, uint32_t n);
void tkv_rep_slowlog_entry(tkv_rep_wr *lw, const tkv_rep_slow *e);
int tkv_rep_slowlog_end(tkv_rep_wr *lw);

/* Drops a reply begun with one of the *_begin() calls (the engine failed
 * half-way, an error reply replaces it). */
void tkv_rep_abort(tkv_rep_wr *lw);

#endif
