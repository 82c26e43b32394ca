/*
 * proto.h - tkv's wire protocol: statuses, commands, request parsing and
 * reply writing. No sockets and no storage live here; the server and the
 * client library both build on this file, and PROTOCOL.md is its prose twin.
 *
 * Every message is a frame (frame.h) whose payload is one MessagePack array.
 * A request is [NAME, arg...] with NAME a string matched case-insensitively.
 * A reply is [STATUS, ...]: STATUS 0 (OK) and 1 (NOT_FOUND) are followed by
 * the command's fields; any other STATUS is an error followed by a readable
 * message string. The fields of each command's reply, their encoders and
 * the reply decoder are in reply.h; this file keeps what requests and
 * replies share (statuses, the frame writer, the direct MessagePack
 * writers reply.h builds on, tkv_reply_head()).
 */
#ifndef TKV_PROTO_H
#define TKV_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "byteorder.h"
#include "mp.h"

#define TKV_PROTO_VERSION 1

/* Statuses, first element of every reply. Values are part of the protocol. */
typedef enum tkv_status {
    TKV_ST_OK = 0,
    TKV_ST_NOT_FOUND = 1,
    TKV_ST_BAD_REQUEST = 10, /* malformed request: arity, types, encoding */
    TKV_ST_UNKNOWN_COMMAND = 11,
    TKV_ST_TOO_LARGE = 12,    /* key, value, frame or reply above a limit */
    TKV_ST_OUT_OF_RANGE = 13, /* an integer outside its allowed range */
    TKV_ST_STORAGE = 20,      /* the storage engine failed; nothing was written */
    TKV_ST_BUSY = 21,         /* server at a limit (clients, memory) */
    TKV_ST_READONLY = 22,     /* a write sent to a replica: the message names the primary */
    TKV_ST_MOVED = 23,        /* cluster: another node serves the key's slot: "SLOT HOST:PORT" */
    TKV_ST_CROSSSLOT = 24,    /* cluster: the keys of one request are in different slots */
    TKV_ST_ASK = 25,          /* cluster: the key's slot is migrating and the key is not here
                                 (any more): ask "HOST:PORT" once, after ASKING ("SLOT HOST:PORT") */
    TKV_ST_TRYAGAIN = 26,     /* cluster: the key is being moved (a write), a request's keys
                                 are split by a migration, or a write reached a primary not
                                 leading now (failover, etcd away): send it again shortly */
    TKV_ST_AUTH_REQUIRED = 30,
    TKV_ST_AUTH_FAILED = 31,
    TKV_ST_INTERNAL = 40,
} tkv_status;

/* Why a GET found nothing; second element of a NOT_FOUND reply. */
typedef enum tkv_miss {
    TKV_M_NO_KEY = 0,          /* the key has no visible versions at all */
    TKV_M_BEFORE_FIRST = 1,    /* every version is newer than the time asked */
    TKV_M_DELETED = 2,         /* the version current then is a tombstone */
    TKV_M_BELOW_HORIZON = 3,   /* retention removed the version current then */
    TKV_M_NO_SUCH_VERSION = 4, /* an ordinal beyond the key's versions */
} tkv_miss;

typedef enum tkv_cmd {
    TKV_CMD_PING,
    TKV_CMD_PUT,
    TKV_CMD_GET,
    TKV_CMD_RANGE,
    TKV_CMD_DEL,
    TKV_CMD_STATS,
    TKV_CMD_AUTH,
    TKV_CMD_COUNT,
    TKV_CMD_MPUT,
    TKV_CMD_MGET,
    TKV_CMD_SCAN,
    TKV_CMD_RETAIN,
    TKV_CMD_POLICY,
    TKV_CMD_DIGEST,
    TKV_CMD_BACKUP,
    TKV_CMD_RESTORE,
    TKV_CMD_REPLICAOF,
    TKV_CMD_ROLE,
    TKV_CMD_WAIT,
    TKV_CMD_PSYNC,
    TKV_CMD_REPLACK,
    TKV_CMD_WATCH,
    TKV_CMD_CLUSTER,
    TKV_CMD_SLOWLOG,
    TKV_CMD_ASKING,    /* the next request may touch a slot this node imports */
    TKV_CMD_EXPORTKEY, /* migration: a key's history as backup records, and lock it */
    TKV_CMD_IMPORTKEY, /* migration: those records replace the key here */
    TKV_CMD_DROPKEY,   /* migration: the moved key deleted here, unlocked */
    TKV_CMD_SLOTKEYS,  /* migration: the keys still here of slots migrating away */
    TKV_CMD__COUNT
} tkv_cmd;

/* Hard ceilings of the encoding; servers configure lower limits. */
#define TKV_KEY_MAX_LIMIT 65535u
#define TKV_FRAME_MAX_LIMIT 0xffffffffu

/* Before a connection authenticates, frames are limited to this size. */
#define TKV_PREAUTH_MAX_FRAME 1024u
#define TKV_AUTH_MAX_SECRET 512u

/* Defaults a server starts with (see tkvd --help). */
#define TKV_DEFAULT_MAX_KEY 1024u
#define TKV_DEFAULT_MAX_VALUE (1024u * 1024u)
#define TKV_DEFAULT_MAX_FRAME (8u * 1024u * 1024u)
/* Bytes of a reply frame a server keeps for everything around one key or
 * value (array and bin headers, status, timestamps, a SCAN cursor's
 * header): --max-key and --max-value must stay this far below
 * --max-frame, so the first answer of any reply always fits. */
#define TKV_REPLY_SLACK 64u
#define TKV_DEFAULT_MAX_BATCH 10000u
#define TKV_SCAN_DEFAULT_COUNT 100u
#define TKV_SCAN_MAX_COUNT 10000u

#define TKV_TS_MAX UINT64_MAX

typedef struct tkv_span {
    const uint8_t *ptr;
    uint32_t len;
} tkv_span;

/* A parsed request. Spans point into the frame it was parsed from. */
typedef struct tkv_req {
    tkv_cmd cmd;
    tkv_span key;
    tkv_span value;         /* PUT */
    tkv_span msg;           /* PING's optional echo; AUTH's secret */
    uint64_t ts;            /* PUT, GET, MGET: valid if has_ts; DEL: the tombstone's;
                               DIGEST: the clock to judge expiry by; WATCH: as of */
    uint64_t ttl;           /* PUT: microseconds until the version expires; 0: never */
    int64_t version;        /* GET: ordinal, valid if has_version */
    uint64_t from;          /* RANGE, COUNT: inclusive, default 0 */
    uint64_t to;            /* RANGE, COUNT: inclusive, default TKV_TS_MAX */
    uint64_t limit;         /* RANGE: default UINT64_MAX (no limit); SCAN: count;
                               SLOWLOG GET: entries, default TKV_SLOWLOG_GET_DEFAULT */
    uint32_t keep_versions; /* RETAIN: 0 for no limit */
    uint64_t keep_age;      /* RETAIN: microseconds, 0 for no limit */
    tkv_span prefix;        /* SCAN; WATCH: the key prefix (the key if has_ts) */
    tkv_span cursor;        /* SCAN: the last key of the previous page */
    tkv_span records;       /* RESTORE, IMPORTKEY: backup records (checked by the server) */
    tkv_span host;          /* REPLICAOF: the primary's host; ptr NULL: NO ONE;
                               PSYNC, WATCH: the replication id (ptr NULL: none) */
    uint64_t port;          /* REPLICAOF: the primary's port */
    uint64_t offset;        /* PSYNC, REPLACK, WATCH (if has_offset): a replication offset;
                               EXPORTKEY (if has_offset): the cursor, a timestamp */
    uint64_t nreplicas;     /* WAIT: replicas to wait for */
    uint64_t timeout_ms;    /* WAIT: 0 waits for ever */
    uint32_t sub;           /* CLUSTER: the subcommand (tkv_cluster_sub);
                               SLOWLOG: (tkv_slowlog_sub) */
    const uint8_t *items;   /* MPUT, MGET: the elements of the item array */
    size_t items_len;       /* bytes from items to the end of the array */
    uint32_t nitems;
    bool has_ts;
    bool has_version;
    bool has_msg;
    bool has_prefix;
    bool has_cursor;
    bool has_offset; /* WATCH: resume from offset */
    bool tombstone;  /* DEL: write a tombstone (at ts, or the clock if !has_ts) */
    bool reverse;    /* RANGE: newest first */
    bool dry_run;    /* RETAIN */
    bool merge;      /* RESTORE: keep what keys that exist hold, add the rest */
    bool cont;       /* RESTORE: the first key continues the previous request's;
                        IMPORTKEY: a later piece (the first replaces the key) */
} tkv_req;

/* CLUSTER's subcommands, by their wire names. */
typedef enum tkv_cluster_sub {
    TKV_CLUSTER_SHARDS, /* "SHARDS": the slot map */
} tkv_cluster_sub;

/* SLOWLOG's subcommands, by their wire names. */
typedef enum tkv_slowlog_sub {
    TKV_SLOWLOG_GET,   /* "GET" [n]: the newest n entries, newest first */
    TKV_SLOWLOG_LEN,   /* "LEN": how many entries the log holds */
    TKV_SLOWLOG_RESET, /* "RESET": empties the log */
} tkv_slowlog_sub;

/* Entries SLOWLOG GET answers when it names no count (Redis's default). */
#define TKV_SLOWLOG_GET_DEFAULT 10u
/* Bytes of a key a slow log entry keeps (Redis keeps 128 per argument). */
#define TKV_SLOWLOG_KEY_MAX 128u

typedef struct tkv_limits {
    uint32_t max_key;   /* longest key accepted, >= 1 */
    uint32_t max_value; /* longest value accepted */
    uint32_t max_batch; /* most items in one MPUT or MGET (0: the default) */
} tkv_limits;

/* One item of an MPUT, for encoding and as parsed. */
typedef struct tkv_put_item {
    tkv_span key;
    tkv_span value;
    uint64_t ts;  /* valid if has_ts */
    uint64_t ttl; /* 0: never expires */
    bool has_ts;
} tkv_put_item;

/* Name of a command as it travels on the wire ("PUT"). */
const char *tkv_cmd_name(tkv_cmd cmd);

/* Looks a wire name up, case-insensitively. Returns -1 if unknown. */
int tkv_cmd_lookup(const uint8_t *name, size_t len);

/* Parses one request frame. On success returns TKV_ST_OK and fills *req.
 * Otherwise returns the error status for the reply and writes a one-line
 * message into err (always NUL-terminated). Never allocates. */
tkv_status tkv_req_parse(const uint8_t *frame, size_t len, const tkv_limits *lim, tkv_req *req,
                         char *err, size_t errlen);

/* Reads the next MPUT item from m (items validated by tkv_req_parse). */
int tkv_mput_item_next(tkv_mp *m, tkv_put_item *it);

/* Appends a whole MPUT or MGET request frame. Returns 0 or -1 (memory). */
int tkv_encode_mput(tkv_buf *out, const tkv_put_item *items, size_t n);
int tkv_encode_mget(tkv_buf *out, uint64_t ts, bool has_ts, const tkv_span *keys, size_t n);

/* Appends one complete request frame (header included) for req to out.
 * Only fields meaningful for req->cmd are encoded; trailing absent optional
 * arguments are omitted. Returns 0, or -1 if out of memory. */
int tkv_req_encode(tkv_buf *out, const tkv_req *req);

/*
 * Frame writer: begin reserves the 4-byte header in b, the packer appends
 * MessagePack into b, end patches the header. Errors (out of memory) are
 * sticky in w->failed and reported by end, which then rolls b back.
 */
typedef struct tkv_wr {
    tkv_buf *b;
    size_t start;
    bool failed;
    msgpack_packer pk;
} tkv_wr;

void tkv_wr_begin(tkv_wr *w, tkv_buf *b);
int tkv_wr_end(tkv_wr *w);

/* Writes a whole error reply frame [status, message]. */
int tkv_write_error(tkv_buf *b, tkv_status st, const char *msg);

/* Packs a byte string as MessagePack bin. */
static inline void tkv_pack_bytes(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

/*
 * Direct MessagePack writers for the hottest replies: each writes at p and
 * returns the new end. The caller reserves room first (at most 9 bytes for
 * an integer, 5 plus the bytes for a bin). msgpack-c's packer calls back
 * once per element; these are a few stores each.
 */
static inline uint8_t *tkv_mpw_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t)v;
    } else if (v <= 0xff) {
        *p++ = 0xcc;
        *p++ = (uint8_t)v;
    } else if (v <= 0xffff) {
        *p++ = 0xcd;
        tkv_store_be16(p, (uint16_t)v);
        p += 2;
    } else if (v <= 0xffffffffu) {
        *p++ = 0xce;
        tkv_store_be32(p, (uint32_t)v);
        p += 4;
    } else {
        *p++ = 0xcf;
        tkv_store_be64(p, v);
        p += 8;
    }
    return p;
}

static inline uint8_t *tkv_mpw_opt(uint8_t *p, bool has, uint64_t v)
{
    if (!has) {
        *p++ = 0xc0;
        return p;
    }
    return tkv_mpw_uint(p, v);
}

static inline uint8_t *tkv_mpw_bin(uint8_t *p, const void *v, uint32_t n)
{
    if (n <= 0xff) {
        *p++ = 0xc4;
        *p++ = (uint8_t)n;
    } else if (n <= 0xffff) {
        *p++ = 0xc5;
        tkv_store_be16(p, (uint16_t)n);
        p += 2;
    } else {
        *p++ = 0xc6;
        tkv_store_be32(p, n);
        p += 4;
    }
    if (n)
        memcpy(p, v, n);
    return p + n;
}

/* Opens a reply frame with room for `max` payload bytes; returns where the
 * payload starts, or NULL if out of memory. tkv_frame_close() ends it at
 * `end` (which must lie within the room). */
static inline uint8_t *tkv_frame_open(tkv_buf *b, size_t max)
{
    if (tkv_buf_reserve(b, 4 + max) < 0)
        return NULL;
    return b->data + b->len + 4;
}

static inline void tkv_frame_close(tkv_buf *b, uint8_t *end)
{
    uint8_t *start = b->data + b->len;
    uint32_t n = (uint32_t)(end - start - 4);
    tkv_store_be32(start, n);
    b->len = (size_t)(end - b->data);
}

/* A reply's status and, for errors, its message. Reads the first elements of
 * frame: *count is the array length, m is left after the status (or after
 * the message for errors). Returns 0 or -1 if the frame is not a reply. */
int tkv_reply_head(const uint8_t *frame, size_t len, tkv_mp *m, uint32_t *count, uint64_t *status,
                   tkv_span *errmsg);

/* A readable name for a status ("NOT_FOUND", "TOO_LARGE"). */
const char *tkv_status_name(uint64_t st);

#endif
