/*
 * tkv/client.h - libtkvclient, the C client library of tkv.
 *
 * tkv is a time-versioned key-value server: every PUT stores a new version
 * of a key at a 64-bit timestamp (by convention microseconds since the Unix
 * epoch), and a GET "as of T" returns the version with the largest
 * timestamp <= T.
 *
 * CONVENTIONS (they hold for every function below)
 *
 *  - One tkv_ctx is one connection. A context is not thread-safe; use one
 *    per thread. The library has no global state.
 *  - Calls that talk to the server return TKV_OK (0), TKV_NOT_FOUND (1) or
 *    TKV_ERR (-1). On TKV_ERR, tkv_err() says what went wrong and
 *    tkv_errstr() says it in words:
 *      TKV_EK_SERVER   the server answered with an error (a bad argument, a
 *                      full disk...). The connection stays usable, except
 *                      after TKV_SC_TOO_LARGE (a request over the server's
 *                      --max-frame): the server answers that and closes, so
 *                      later calls fail with TKV_EK_EOF. The answer is
 *                      reported even when the server closed while the
 *                      request was still being sent.
 *                      tkv_server_code() gives the protocol's status code.
 *      TKV_EK_READONLY the server is a replica and refused a write
 *                      (tkv_server_code() TKV_SC_READONLY); tkv_errstr()
 *                      names its primary: send writes there. A server
 *                      error of its own kind because it is the one a
 *                      program acts on; the connection stays usable.
 *      TKV_EK_USAGE    the library refused an argument before sending it.
 *                      The connection stays usable.
 *      TKV_EK_IO, TKV_EK_EOF, TKV_EK_PROTOCOL, TKV_EK_TIMEOUT, TKV_EK_NOMEM
 *                      the connection is broken; these errors stick, every
 *                      later call fails the same way. Free the context.
 *  - Keys are binary-safe byte strings of 1 byte or more; values are
 *    binary-safe byte strings of 0 bytes or more. The server limits both
 *    (by default 1 KiB keys, 1 MiB values).
 *  - Pointers the library hands out (values, entries, stats) point into
 *    memory owned by the context and stay valid until the next call on the
 *    same context. Copy what you want to keep.
 *  - Nothing in the library exits, aborts or prints.
 *  - Every _free function accepts NULL.
 *
 * The wire protocol is specified in PROTOCOL.md.
 */
#ifndef TKV_CLIENT_H
#define TKV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TKV_API __attribute__((visibility("default")))
#else
#define TKV_API
#endif

/* The library's version; the shared library's soname follows the major. */
#define TKV_CLIENT_VERSION_MAJOR 0
#define TKV_CLIENT_VERSION_MINOR 1
#define TKV_CLIENT_VERSION_PATCH 0

#define TKV_OK 0
#define TKV_NOT_FOUND 1
#define TKV_ERR (-1)

/* The largest timestamp. GET as of TKV_LATEST returns the newest version. */
#define TKV_LATEST UINT64_MAX

typedef enum tkv_errkind {
    TKV_EK_NONE = 0,
    TKV_EK_IO,       /* a system call failed; errstr has the reason */
    TKV_EK_EOF,      /* the server closed the connection */
    TKV_EK_PROTOCOL, /* the server sent something that is not a valid reply */
    TKV_EK_TIMEOUT,  /* no progress within the context's timeout */
    TKV_EK_NOMEM,    /* out of memory */
    TKV_EK_SERVER,   /* the server replied with an error status */
    TKV_EK_USAGE,    /* invalid argument; nothing was sent */
    TKV_EK_READONLY, /* a write refused by a replica (TKV_SC_READONLY) */
} tkv_errkind;

/* Status codes the server sends (TKV_EK_SERVER errors; TKV_SC_READONLY
 * comes as TKV_EK_READONLY). */
#define TKV_SC_BAD_REQUEST 10
#define TKV_SC_UNKNOWN_COMMAND 11
#define TKV_SC_TOO_LARGE 12
#define TKV_SC_OUT_OF_RANGE 13
#define TKV_SC_STORAGE 20
#define TKV_SC_BUSY 21
#define TKV_SC_READONLY 22  /* a write sent to a replica */
#define TKV_SC_MOVED 23     /* cluster: another node serves the key ("SLOT HOST:PORT") */
#define TKV_SC_CROSSSLOT 24 /* cluster: one request's keys are in different slots */
#define TKV_SC_ASK \
    25 /* cluster: the key's slot is migrating and the key is at the
                               target: "SLOT HOST:PORT" (send ASKING, then the request, there) */
#define TKV_SC_TRYAGAIN \
    26 /* cluster: the key is being moved, or the primary does not lead  \
                              right now (a failover, etcd away); send the request again soon */
#define TKV_SC_AUTH_REQUIRED 30
#define TKV_SC_AUTH_FAILED 31
#define TKV_SC_INTERNAL 40

/* Why a GET found nothing (tkv_version.miss). */
#define TKV_MISS_NO_KEY 0       /* the key has no versions at all */
#define TKV_MISS_BEFORE_FIRST 1 /* the key's first version is later than asked */
#define TKV_MISS_DELETED 2      /* a tombstone is current then (at: its ts) */
#define TKV_MISS_BELOW_HORIZON \
    3                              /* retention removed the version current then
                                      (at: the horizon) */
#define TKV_MISS_NO_SUCH_VERSION 4 /* GET by ordinal: the key has fewer versions */

typedef struct tkv_ctx tkv_ctx;

/* The answer of a GET. */
typedef struct tkv_version {
    int status;           /* TKV_OK or TKV_NOT_FOUND (for MGET's answers) */
    uint64_t ts;          /* TKV_OK: the version's timestamp */
    const uint8_t *value; /* TKV_OK: its bytes (valid until the next call) */
    size_t len;
    uint64_t expires; /* TKV_OK: when the version expires (us); 0: never */
    int has_next;     /* 1 if a newer version exists: the answer holds */
    uint64_t next;    /* for every time in [ts, next). On TKV_NOT_FOUND,
                             next is the first version after the time asked,
                             if any. */
    int miss;         /* TKV_NOT_FOUND: a TKV_MISS_* reason */
    uint64_t at;      /* TKV_MISS_DELETED: the tombstone's timestamp;
                             TKV_MISS_BELOW_HORIZON: the horizon */
} tkv_version;

/* One version returned by RANGE. */
typedef struct tkv_entry {
    uint64_t ts;
    const uint8_t *value; /* valid until the next call; NULL for a tombstone */
    size_t len;
    uint64_t expires; /* 0: never */
} tkv_entry;

/* A key or any byte string the library reads from you or hands back. */
typedef struct tkv_bytes {
    const void *ptr;
    size_t len;
} tkv_bytes;

/* One version to write with tkv_mput(). */
typedef struct tkv_item {
    tkv_bytes key;
    tkv_bytes value;
    uint64_t ts;  /* used if has_ts */
    int has_ts;   /* 0: the server's clock, after the key's newest version */
    uint64_t ttl; /* microseconds until it expires; 0: never */
} tkv_item;

/* What RETAIN reports. */
typedef struct tkv_retain_info {
    uint64_t removable; /* versions the policy removes */
    uint64_t horizon;   /* the horizon it sets; 0: none */
    int complete;       /* 0: a dry run stopped counting early */
} tkv_retain_info;

/* What POLICY reports. */
typedef struct tkv_policy_info {
    uint32_t versions; /* keep at most this many versions; 0: no limit */
    uint64_t age_us;   /* keep none older than this; 0: no limit */
    int own;           /* 1: set on the key; 0: the server's default */
    uint64_t horizon;  /* answers before it are gone; 0: none */
} tkv_policy_info;

/* RANGE parameters. Zero-initialise, then set what you need: with from = 0
 * and to = 0 the whole history is returned (to = 0 means TKV_LATEST unless
 * to_set is 1); limit = 0 means no limit. */
typedef struct tkv_range_opts {
    uint64_t from;  /* inclusive */
    uint64_t to;    /* inclusive; see to_set */
    int to_set;     /* 1: `to` is meant literally, even 0 */
    uint64_t limit; /* at most this many versions; 0: all */
    int reverse;    /* 1: newest first */
} tkv_range_opts;

/* One STATS field: a number, or a string when is_str is 1. */
typedef struct tkv_stat {
    const char *name;
    int is_str;
    uint64_t num;
    const char *str;
} tkv_stat;

/* A reply read with tkv_read_reply(), decoded according to the request it
 * answers (op is a TKV_OP_* value). */
#define TKV_OP_PING 0
#define TKV_OP_PUT 1
#define TKV_OP_GET 2
#define TKV_OP_RANGE 3
#define TKV_OP_DEL 4
#define TKV_OP_STATS 5
#define TKV_OP_AUTH 6
#define TKV_OP_COUNT 7
#define TKV_OP_MPUT 8
#define TKV_OP_MGET 9
#define TKV_OP_SCAN 10
#define TKV_OP_RETAIN 11
#define TKV_OP_POLICY 12
#define TKV_OP_DIGEST 13 /* BACKUP has no TKV_OP_: its reply is a stream (tkv_backup) */
#define TKV_OP_REPLICAOF 16
#define TKV_OP_ROLE 17
#define TKV_OP_WAIT 18
#define TKV_OP_SLOWLOG 23

/* The length of a digest: SHA-256. */
#define TKV_DIGEST_LEN 32

/* What DIGEST reports, and what tkv_backup() verified a backup to hold. */
typedef struct tkv_digest_info {
    uint8_t digest[TKV_DIGEST_LEN]; /* SHA-256 of the visible state as of `at`
                                       (PROTOCOL.md, DIGEST) */
    uint64_t at;                    /* the clock expiry was judged by */
    uint64_t keys;                  /* keys hashed (or in the backup) */
    uint64_t versions;              /* versions hashed (or in the backup) */
    uint64_t bytes;                 /* tkv_backup(): the backup's size; DIGEST: 0 */
} tkv_digest_info;

/* One entry of the server's slow log (tkv_slowlog_get). */
typedef struct tkv_slowlog_entry {
    uint64_t id;          /* increasing from 1 since the server started */
    uint64_t time_us;     /* when the request was answered, Unix microseconds */
    uint64_t duration_us; /* how long it took, microseconds */
    const char *cmd;      /* the command ("GET"), NUL-terminated */
    const uint8_t *key;   /* its first key as logged: at most 128 bytes; key_len
                             0 if the command has none */
    size_t key_len;
    size_t key_full_len; /* the whole key's length: above key_len if cut */
    const char *client;  /* the client's address, "host:port" */
} tkv_slowlog_entry;

typedef struct tkv_reply {
    int op;                      /* which request this answers (TKV_OP_*) */
    int status;                  /* TKV_OK, TKV_NOT_FOUND, or TKV_ERR for a server
                                 error (code and message in the context) */
    uint64_t ts;                 /* PUT, DEL with a time: the timestamp stored */
    uint64_t count;              /* DEL: versions removed; COUNT: versions;
                                    WAIT: replicas that acknowledged */
    tkv_version version;         /* GET */
    const tkv_version *versions; /* MGET: one answer per key */
    const uint64_t *stamps;      /* MPUT: one timestamp per item */
    size_t n;                    /* MGET, MPUT, SCAN: how many */
    const tkv_bytes *keys;       /* SCAN: the keys of this page */
    tkv_bytes cursor;            /* SCAN: pass to the next call; ptr NULL: done */
    tkv_retain_info retain;      /* RETAIN */
    tkv_policy_info policy;      /* POLICY */
    const tkv_entry *entries;    /* RANGE */
    size_t n_entries;
    int truncated;         /* RANGE: 1 if the reply was cut short by the
                                 server's frame limit; ask again from the
                                 last ts + 1. MGET: 1 if only the first n
                                 keys were answered; ask again for the rest */
    const tkv_stat *stats; /* STATS; ROLE: its fields as sent (tkv_role()
                              reads them into a tkv_role_info) */
    size_t n_stats;
    const uint8_t *text; /* PING: the echoed message or "PONG" */
    size_t text_len;
    tkv_digest_info digest; /* DIGEST */
    uint64_t skipped;       /* RESTORE (tkv_restore): versions kept; count: written */
    /* SLOWLOG: count holds the entries the log holds (RESET: held before);
     * GET also the newest n entries, newest first. */
    const tkv_slowlog_entry *slowlog;
} tkv_reply;

/* ---- connections -------------------------------------------------------- */

/* Connects to host (a name or an address) and port, waiting at most
 * timeout_ms (0: no limit) for the connection and, later, for each reply.
 * Returns a context - check tkv_err(ctx) != TKV_EK_NONE for failure -
 * or NULL only if memory is exhausted. Free it with tkv_free() either way. */
TKV_API tkv_ctx *tkv_connect(const char *host, uint16_t port, int timeout_ms);

/* Closes the connection and frees everything the context owns. */
TKV_API void tkv_free(tkv_ctx *ctx);
/* Connects to a server's Unix domain socket (tkvd --unix PATH), as
 * tkv_connect() does otherwise: same timeout, same result. A path longer
 * than the system allows (107 bytes on Linux) is TKV_EK_USAGE. A server
 * whose backlog is full refuses a Unix socket's connect at once, where
 * TCP would wait: it is tried again, with pauses of 1 to 100 ms, until the
 * timeout (TKV_EK_TIMEOUT then; with no timeout, until it is taken). */
TKV_API tkv_ctx *tkv_connect_unix(const char *path, int timeout_ms);

/* Turns on TCP keepalive with `seconds` of idleness before the first
 * probe (then a probe every seconds/3, and 3 unanswered ones end the
 * connection: a dead server or path is noticed in about 2 * seconds
 * instead of never, as TKV_EK_IO/TKV_EK_EOF on the next call). 0 turns it
 * off (the default); at most 32767 (Linux's limit on TCP_KEEPIDLE). Kept
 * across tkv_reconnect(); no effect on a Unix socket. TKV_OK, or TKV_ERR
 * with TKV_EK_USAGE for a value out of range or one the system refuses:
 * then neither the setting nor the connection has changed. */
TKV_API int tkv_set_keepalive(tkv_ctx *ctx, int seconds);

/* RECONNECTING. A context never reconnects by itself: once its connection
 * is broken (TKV_EK_IO, TKV_EK_EOF, TKV_EK_PROTOCOL, TKV_EK_TIMEOUT) every
 * call fails the same way, so a program cannot miss that requests may have
 * been lost. tkv_reconnect() then dials the same address again (host and
 * port, or the Unix socket path), with the same timeout and keepalive: the
 * pipelined requests and replies of the old connection are dropped (those
 * sent may or may not have been carried out), a watch ends, and AUTH must
 * be sent again. It may be called on a healthy context too (it closes
 * first). TKV_OK, or TKV_ERR with the reason (the context stays broken;
 * try again later). The async context (tkv/async.h) does not reconnect
 * either: it reports the disconnect, and the program makes a new one. */
TKV_API int tkv_reconnect(tkv_ctx *ctx);


/* Changes the per-operation timeout (milliseconds, 0: none). */
TKV_API void tkv_set_timeout(tkv_ctx *ctx, int timeout_ms);

/* The last error: its kind, its message, and for TKV_EK_SERVER and
 * TKV_EK_READONLY the status code the server sent (0 otherwise). The
 * message stays valid until the next call. */
TKV_API tkv_errkind tkv_err(const tkv_ctx *ctx);
TKV_API const char *tkv_errstr(const tkv_ctx *ctx);
TKV_API int tkv_server_code(const tkv_ctx *ctx);

/* A fixed description of an error kind ("I/O error"). */
TKV_API const char *tkv_strerror(tkv_errkind kind);

/* Called with every frame sent (dir '>') and received (dir '<'), payload
 * only; for debugging tools. NULL turns tracing off. */
typedef void (*tkv_trace_fn)(void *arg, char dir, const uint8_t *frame, size_t len);
TKV_API void tkv_set_trace(tkv_ctx *ctx, tkv_trace_fn fn, void *arg);

/* ---- blocking commands -------------------------------------------------- */
/* Each sends one request and waits for its reply. Earlier pipelined
 * requests whose replies are unread are an error (TKV_EK_USAGE). */

/* Checks the connection. TKV_OK or TKV_ERR. */
TKV_API int tkv_ping(tkv_ctx *ctx);

/* Presents the server's shared secret. Until it succeeds, a server that has
 * one answers everything but PING with TKV_SC_AUTH_REQUIRED. TKV_OK, or
 * TKV_ERR with tkv_server_code() TKV_SC_AUTH_FAILED for a wrong secret. */
TKV_API int tkv_auth(tkv_ctx *ctx, const void *secret, size_t len);

/* Stores a version of key at ts; a version already at ts is replaced.
 * out_ts (may be NULL) receives ts. TKV_OK or TKV_ERR. */
TKV_API int tkv_put(tkv_ctx *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                    uint64_t ts, uint64_t *out_ts);

/* Stores a version at the server's clock, strictly after the key's newest
 * version. out_ts (may be NULL) receives the timestamp used. */
TKV_API int tkv_put_now(tkv_ctx *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                        uint64_t *out_ts);

/* The version current at ts (largest timestamp <= ts); ts = TKV_LATEST for
 * the newest. TKV_OK (out filled), TKV_NOT_FOUND (out->miss, out->has_next
 * filled) or TKV_ERR. */
TKV_API int tkv_get(tkv_ctx *ctx, const void *key, size_t klen, uint64_t ts, tkv_version *out);

/* Versions of key within opts (NULL: all), oldest first unless reverse.
 * *entries points to *n entries owned by the context; *truncated (may be
 * NULL) is set to 1 if the server stopped at its reply size limit.
 * TKV_OK or TKV_ERR. */
TKV_API int tkv_range(tkv_ctx *ctx, const void *key, size_t klen, const tkv_range_opts *opts,
                      const tkv_entry **entries, size_t *n, int *truncated);

/* Removes every version of key; *removed (may be NULL) gets their number.
 * TKV_OK or TKV_ERR. */
TKV_API int tkv_del(tkv_ctx *ctx, const void *key, size_t klen, uint64_t *removed);

/* Stores a version with options: at ts if has_ts (else the server's clock,
 * after the newest version), expiring ttl_us microseconds from now if
 * ttl_us > 0. An expired version disappears from every read. */
TKV_API int tkv_put_ex(tkv_ctx *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ts, int has_ts, uint64_t ttl_us, uint64_t *out_ts);

/* The n-th version: n >= 1 counts from the oldest, n <= -1 from the newest
 * (-1 is the newest). TKV_NOT_FOUND with miss TKV_MISS_NO_SUCH_VERSION if
 * the key has fewer. */
TKV_API int tkv_get_version(tkv_ctx *ctx, const void *key, size_t klen, int64_t n,
                            tkv_version *out);

/* Writes a tombstone at ts (has_ts 1) or at the server's clock: as of any
 * time >= that, the key reads as deleted (TKV_MISS_DELETED) until a later
 * version; earlier versions still answer. *out_ts gets the tombstone's ts. */
TKV_API int tkv_del_at(tkv_ctx *ctx, const void *key, size_t klen, uint64_t ts, int has_ts,
                       uint64_t *out_ts);

/* The number of versions with from <= ts <= to (tombstones included). */
TKV_API int tkv_count(tkv_ctx *ctx, const void *key, size_t klen, uint64_t from, uint64_t to,
                      uint64_t *n);

/* Sets a key's retention - keep at most `versions` versions (0: no limit),
 * none older than age_us (0: no limit), always the one current at the
 * resulting horizon; both 0 returns the key to the server's default - or,
 * with dry_run 1, only reports what it would remove. */
TKV_API int tkv_retain(tkv_ctx *ctx, const void *key, size_t klen, uint32_t versions,
                       uint64_t age_us, int dry_run, tkv_retain_info *out);

/* The retention in effect for a key and its horizon. */
TKV_API int tkv_policy(tkv_ctx *ctx, const void *key, size_t klen, tkv_policy_info *out);

/* Writes n versions atomically: all or none. *stamps (may be NULL) points
 * to the n timestamps used, owned by the context. */
TKV_API int tkv_mput(tkv_ctx *ctx, const tkv_item *items, size_t n, const uint64_t **stamps);

/* Reads n keys as of ts (TKV_LATEST: newest). *out points to n answers
 * owned by the context, in the order of keys; each has status TKV_OK or
 * TKV_NOT_FOUND. Returns TKV_OK or TKV_ERR.
 * The answers are one consistent snapshot when they fit in one reply frame
 * (the server's --max-frame, 8 MiB by default). When they do not, the
 * server answers the first keys and says so, and tkv_mget asks again for
 * the rest, as of the same ts: each reply is a snapshot of its own, so a
 * write that lands between two of them may be seen by the later one only.
 * Then the values are copied into the context (no copy otherwise). */
TKV_API int tkv_mget(tkv_ctx *ctx, uint64_t ts, const tkv_bytes *keys, size_t n,
                     const tkv_version **out);

/* Lists keys in byte order: those starting with prefix (NULL or empty:
 * all), after cursor (ptr NULL: from the start), at most count (0: 100).
 * *keys points to *n keys owned by the context; *next is the cursor for
 * the next page, with ptr NULL when the scan is complete. */
TKV_API int tkv_scan(tkv_ctx *ctx, const void *prefix, size_t plen, tkv_bytes cursor,
                     uint32_t count, const tkv_bytes **keys, size_t *n, tkv_bytes *next);

/* Server statistics: *stats points to *n fields owned by the context. */
TKV_API int tkv_stats(tkv_ctx *ctx, const tkv_stat **stats, size_t *n);

/* The slow log: the server logs each request that took at least its
 * --slowlog-slower-than microseconds (10000 by default; SLOWLOG requests
 * themselves are never logged), keeping the newest --slowlog-max-len
 * (128). Latency runs from the request being read to its reply being
 * queued, as STATS's latency_* fields measure it.
 *
 * tkv_slowlog_get: the newest n entries (fewer if the log holds fewer, or
 * if they would not fit one reply frame), newest first. *entries points to
 * *count entries owned by the context, valid until its next call; *count
 * is 0 when the log is empty. tkv_slowlog_len: how many entries the log
 * holds. tkv_slowlog_reset: empties the log; *removed (may be NULL) gets
 * how many entries it held. Each returns TKV_OK or TKV_ERR (a server
 * without a slow log answers TKV_SC_BAD_REQUEST). */
TKV_API int tkv_slowlog_get(tkv_ctx *ctx, uint32_t n, const tkv_slowlog_entry **entries,
                            size_t *count);
TKV_API int tkv_slowlog_len(tkv_ctx *ctx, uint64_t *len);
TKV_API int tkv_slowlog_reset(tkv_ctx *ctx, uint64_t *removed);

/* ---- the whole store ------------------------------------------------------ */

/* A hash of the server's whole visible state - every key with its
 * versions (timestamps, values, tombstones, expiry times), its own
 * retention policy and its horizon - as of the server's clock (has_at 0)
 * or of `at`: versions expired by then do not count. Two servers holding
 * the same data give the same digest, whatever their sweeps have removed
 * already or their caches hold (PROTOCOL.md says exactly what is hashed).
 * The server walks its store in the background; the call waits for it
 * (mind the context's timeout on a large store). TKV_OK with *out filled
 * (bytes 0), or TKV_ERR. */
TKV_API int tkv_digest(tkv_ctx *ctx, uint64_t at, int has_at, tkv_digest_info *out);

/* Receives each piece of a backup in order; the pieces concatenated are
 * the backup file. Return 0 to go on, anything else to stop (tkv_backup()
 * then fails with TKV_EK_IO and the connection is closed: the rest of the
 * stream cannot be skipped). */
typedef int (*tkv_backup_fn)(void *arg, const uint8_t *chunk, size_t len);

/* Takes a consistent backup of the whole store - every write acknowledged
 * before the call is in it, and it is the state of one moment even while
 * other clients write - and hands it to fn as it streams in (format:
 * PROTOCOL.md, "The backup format"). The library checks the stream as it
 * goes (lengths, counts, digest, checksum); *out (may be NULL) gets the
 * trailer's digest, counts and `at`, and the bytes received: a server
 * restored from the backup answers tkv_digest(at) with that digest.
 * TKV_OK; or TKV_ERR: a server error (the stream ended early; the
 * connection stays usable), a stream that fails the checks
 * (TKV_EK_PROTOCOL), fn's refusal (TKV_EK_IO) or a broken connection.
 * Whatever fn received before an error is not a backup. */
TKV_API int tkv_backup(tkv_ctx *ctx, tkv_backup_fn fn, void *arg, tkv_digest_info *out);

/* What tkv_restore() did. */
typedef struct tkv_restore_info {
    tkv_digest_info backup; /* what the backup holds (its trailer) */
    uint64_t written;       /* versions written to the server */
    uint64_t skipped;       /* versions the server kept instead (merge) */
    uint64_t requests;      /* RESTORE requests it took */
} tkv_restore_info;

/* tkv_restore() flags. */
#define TKV_RESTORE_MERGE \
    1 /* keys the server has keep their own policy,
                               horizon and versions; only the backup's other
                               versions (at or after the key's horizon) are
                               added. Without it, a key the server has stops
                               the restore. */

/* Restores a backup (the len bytes at backup, as tkv_backup() produced
 * them) into the running server. The whole backup is checked first
 * (format, counts, digest, checksum): a damaged or truncated one is
 * refused with TKV_EK_USAGE and nothing is sent. Then it goes in RESTORE
 * requests of at most a thousand versions and 1 MiB each (more only for a
 * single larger version, which then goes alone with its key; a server
 * whose --max-frame is below that refuses it with TKV_SC_TOO_LARGE), each
 * applied by the server all or nothing. Without TKV_RESTORE_MERGE a key the server
 * already has is refused (TKV_EK_SERVER, TKV_SC_BAD_REQUEST, naming the
 * key); check that the server is empty first if the restore must be whole
 * or nothing. A failure after the first request leaves the keys before it
 * restored: run again with TKV_RESTORE_MERGE to complete it (a merge
 * never writes a version twice). Into an empty server, a restore leaves
 * it answering tkv_digest(out->backup.at) with out->backup.digest.
 * TKV_OK with *out (may be NULL) filled, or TKV_ERR; out->written and
 * out->skipped count what was done even then. */
TKV_API int tkv_restore(tkv_ctx *ctx, const void *backup, size_t len, int flags,
                        tkv_restore_info *out);

/* ---- replication ---------------------------------------------------------- */
/* A tkvd is a primary, or a replica that copies a primary's writes and
 * refuses writes of its own (TKV_EK_READONLY). Replication is
 * asynchronous: a write is acknowledged by the primary alone, and
 * tkv_wait() tells how many replicas have it. */

/* One replica as its primary sees it. */
typedef struct tkv_replica_info {
    const char *addr;   /* "host:port"; NULL if the server did not say */
    const char *state;  /* "sync" (receiving the primary's data) or "online"
                           (following its writes); NULL if not said */
    uint64_t offset;    /* replication offset the replica acknowledged */
    uint64_t lag_bytes; /* bytes of the stream it has not acknowledged */
    uint64_t lag_ms;    /* how far behind it is, in milliseconds */
} tkv_replica_info;

/* What ROLE reports. Strings are NUL-terminated; a field the server did
 * not send reads as NULL or 0 (another server version may send fewer or
 * more: every field it sent is in fields, known or not). */
typedef struct tkv_role_info {
    const char *role;   /* "primary" or "replica" (never NULL) */
    int is_replica;     /* 1 if role is "replica" */
    const char *replid; /* the replication id of the history it holds */
    uint64_t offset;    /* its replication offset: bytes of the stream */
    /* On a primary: */
    const tkv_replica_info *replicas; /* n_replicas entries */
    size_t n_replicas;
    /* On a replica: */
    const char *primary;     /* "host:port" of its primary */
    const char *link;        /* "connecting", "sync", "online" or "down" */
    uint64_t primary_offset; /* the primary's offset, as last heard */
    uint64_t lag_bytes;      /* primary_offset - offset, as last heard */
    uint64_t last_io_ms;     /* milliseconds since it last heard the primary */
    /* Every field as sent, in the server's order. */
    const tkv_stat *fields;
    size_t n_fields;
} tkv_role_info;

/* Makes the server a replica of the tkvd at host (a name or an address,
 * NUL-terminated, 1 to 255 bytes) and port: it follows that primary's
 * data and refuses writes of its own. The server answers once it has
 * taken the order; the link is made in the background (tkv_role() shows
 * its state). TKV_OK, or TKV_ERR:
 * TKV_EK_USAGE for an empty or longer host or port 0 (nothing is sent),
 * a server error, or a broken connection. */
TKV_API int tkv_replicaof(tkv_ctx *ctx, const char *host, uint16_t port);

/* Makes a replica a primary again (REPLICAOF NO ONE): it accepts writes.
 * TKV_OK or TKV_ERR. */
TKV_API int tkv_replicaof_none(tkv_ctx *ctx);

/* The server's replication role and state, into *out. Its pointers point
 * into memory owned by the context and stay valid until the next call on
 * it. TKV_OK; or TKV_ERR: a server error, a reply whose known fields have
 * the wrong type or that names no role (TKV_EK_PROTOCOL), or a broken
 * connection. */
TKV_API int tkv_role(tkv_ctx *ctx, tkv_role_info *out);

/* Waits until at least nreplicas replicas have acknowledged every write
 * this connection made before the call, or timeout_ms milliseconds have
 * passed (0: no limit), and puts in *acked (may be NULL) how many had -
 * fewer than nreplicas after a timeout (a connection that wrote nothing
 * has nothing to wait for). Fewer is not an error: TKV_OK either
 * way, or TKV_ERR (a server error, such as a replica asked; a broken
 * connection). The context's timeout is lengthened by timeout_ms for this
 * call so that it cannot end the wait first; with timeout_ms 0 it still
 * applies (tkv_set_timeout(ctx, 0) to wait for as long as it takes). */
TKV_API int tkv_wait(tkv_ctx *ctx, uint64_t nreplicas, uint64_t timeout_ms, uint64_t *acked);

/* ---- the change feed ------------------------------------------------------ */
/* WATCH turns a connection into a feed of the server's committed changes
 * to keys under a prefix (PROTOCOL.md §11), in commit order. Each change
 * carries the replication offset at the end of its batch; a program that
 * keeps the offset of the last change with batch_end set can reconnect
 * and resume from it (tkv_watch_opts.from) without missing or repeating a
 * change - as long as the server's replication backlog (--repl-backlog)
 * still holds it; otherwise tkv_watch() fails with TKV_SC_OUT_OF_RANGE,
 * and the program must read the state again and watch from now. */

/* What a change is. */
#define TKV_CHANGE_WRITE 'W' /* a version was written (or a tombstone) */
#define TKV_CHANGE_REMOVE \
    'X' /* a version was removed: the server's sweep of an
                                 expired or retained version */
#define TKV_CHANGE_DROP \
    'D' /* every version of the key was removed at once:
                                 DEL of the whole key (no ts) */
#define TKV_CHANGE_META \
    'M' /* the key's horizon or own policy may have
                                 changed (also sent when only its record of
                                 expiring versions did) */

typedef struct tkv_change {
    int kind;           /* TKV_CHANGE_* */
    uint64_t offset;    /* replication offset at the end of its batch */
    int batch_end;      /* 1: the last change of its batch - offset is a
                            point to resume from */
    const uint8_t *key; /* valid until the next call on the context */
    size_t klen;
    uint64_t ts;          /* WRITE, REMOVE: the version's timestamp (DROP: 0) */
    int tombstone;        /* WRITE: 1 for a tombstone (no value) */
    const uint8_t *value; /* WRITE: the value (valid until the next call) */
    size_t len;
    uint64_t expires;       /* WRITE: when the version expires (us); 0: never */
    uint64_t horizon;       /* META: the key's horizon (0: none) */
    uint32_t keep_versions; /* META: the key's own policy (0: none/no limit) */
    uint64_t keep_age_us;
} tkv_change;

typedef struct tkv_watch_opts {
    int has_from;  /* 1: resume from `from` (a batch_end offset seen before) */
    uint64_t from; /* else: changes committed from now on */
    int has_asof;  /* 1: an as-of watch: prefix is one whole key, and only
                      changes that could change GET key as of `asof` are
                      sent - writes and removals at ts <= asof, and every
                      META change. It notifies; read the answer again with
                      tkv_get(). Time passing alone sends nothing: a
                      version expiring, or an age policy moving the
                      horizon, shows only once the sweep removes what it
                      hid (a REMOVE) - the WRITE's expires says when. */
    uint64_t asof;
    const char *replid; /* with has_from: the replication id the watch that
                           gave `from` had (tkv_watch_replid()); the server
                           then refuses a `from` of another history, as
                           after a failover or on another server. NULL: not
                           checked. */
} tkv_watch_opts;

/* Starts a watch of keys starting with prefix (plen 0: every key) with
 * opts (NULL: from now). *offset (may be NULL) gets the offset the feed
 * starts at. From then on the connection only receives changes: every
 * call but tkv_watch_next() fails with TKV_EK_USAGE. TKV_OK; or TKV_ERR:
 * TKV_EK_USAGE (pipelined replies unread, an as-of watch without a key),
 * a server error (TKV_SC_OUT_OF_RANGE: `from` is not a batch boundary
 * the backlog holds) - the connection is then as before - or a broken
 * connection. */
TKV_API int tkv_watch(tkv_ctx *ctx, const void *prefix, size_t plen, const tkv_watch_opts *opts,
                      uint64_t *offset);

/* The replication id of the history the current watch follows (as the
 * server answered tkv_watch()), for resuming it with tkv_watch_opts.replid;
 * "" without a watch. Valid until the next tkv_watch() on ctx. */
TKV_API const char *tkv_watch_replid(const tkv_ctx *ctx);

/* Waits for the next change, at most the context's timeout. TKV_OK with
 * *out filled (its pointers valid until the next call); TKV_NOT_FOUND if
 * none came in time (the watch goes on: call again); or TKV_ERR: the
 * server ended the watch (TKV_EK_SERVER: TKV_SC_OUT_OF_RANGE, it fell
 * behind the backlog; TKV_SC_BUSY, it did not read fast enough or the
 * server stops - resume from the last batch_end offset on a new
 * connection), a broken connection, or TKV_EK_USAGE without a watch. */
TKV_API int tkv_watch_next(tkv_ctx *ctx, tkv_change *out);

/* ---- clusters ------------------------------------------------------------- */
/* A tkv cluster spreads keys over nodes by hash slot: slot(key) is
 * CRC16-XMODEM of the key (or of its hash tag, the part between the first
 * '{' and the next '}' when not empty) mod 16384, as in Redis Cluster; keys
 * with one tag, "{user:42}:cart" and "{user:42}:orders", share a slot. Each
 * slot is served by one node (its shard's primary). A node asked for a key
 * it does not serve answers TKV_SC_MOVED; a request whose keys are in
 * different slots gets TKV_SC_CROSSSLOT, so that MPUT stays atomic and MGET
 * one snapshot - within a slot.
 *
 * A tkv_cluster is a handle on a whole cluster: it learns the map from any
 * node (CLUSTER SHARDS), keeps a connection per node (opened when first
 * needed) and sends each key's request to the node serving its slot. On
 * TKV_SC_MOVED it refreshes the map and retries (once; again, after short
 * pauses for about 1 s, only while two nodes' maps disagree, as at the end
 * of a slot's move). Like a tkv_ctx it is
 * not thread-safe; its errors follow the same kinds (tkv_cluster_err()),
 * taken from the node connection that failed, and a broken node
 * connection is reopened on the next call that needs it. Results point
 * into memory the handle owns, valid until the next call on the handle. */

#define TKV_CLUSTER_SLOTS 16384

/* The slot of a key: 0 to TKV_CLUSTER_SLOTS - 1 (the server's function). */
TKV_API unsigned tkv_key_slot(const void *key, size_t klen);

/* One range of slots of a cluster's map. */
typedef struct tkv_slot_range {
    unsigned from, to;           /* slots, inclusive */
    const char *primary;         /* "host:port" of the node that serves them */
    const char *const *replicas; /* "host:port" of its replicas */
    size_t n_replicas;
} tkv_slot_range;

/* Asks the server (any node of a cluster) for the cluster's map: *ranges
 * points to *n ranges in slot order, owned by the context (valid until the
 * next call on it); *revision (may be NULL) gets the map's version, which
 * grows with every change. TKV_OK, or TKV_ERR (TKV_EK_SERVER with
 * TKV_SC_BAD_REQUEST from a server that is not a cluster node). */
TKV_API int tkv_cluster_shards(tkv_ctx *ctx, uint64_t *revision, const tkv_slot_range **ranges,
                               size_t *n);

typedef struct tkv_cluster tkv_cluster;

/* Connects to a cluster: asks the seeds ("host:port" strings; a bracketed
 * IPv6 literal works) in turn for the map until one answers. secret (NULL:
 * none) is presented to every node. timeout_ms as for tkv_connect(). Returns
 * a handle - check tkv_cluster_err() != TKV_EK_NONE for failure (no seed
 * answered: the message says why the last one failed) - or NULL only if
 * memory is exhausted. Free it with tkv_cluster_free() either way. */
TKV_API tkv_cluster *tkv_cluster_connect(const char *const *seeds, size_t n, int timeout_ms,
                                         const char *secret);

/* Closes every node connection and frees the handle. */
TKV_API void tkv_cluster_free(tkv_cluster *cl);

/* The last call's error, as tkv_err(), tkv_errstr() and tkv_server_code()
 * report a context's. TKV_EK_USAGE also covers a slot the map gives no
 * node. */
TKV_API tkv_errkind tkv_cluster_err(const tkv_cluster *cl);
TKV_API const char *tkv_cluster_errstr(const tkv_cluster *cl);
TKV_API int tkv_cluster_server_code(const tkv_cluster *cl);

/* Fetches the map again (from the nodes it knows, then the seeds). TKV_OK
 * or TKV_ERR; the map held before stays on failure. */
TKV_API int tkv_cluster_refresh(tkv_cluster *cl);

/* The map's revision, as last fetched. */
TKV_API uint64_t tkv_cluster_revision(const tkv_cluster *cl);

/* The connection to the node serving key's slot (connecting if needed),
 * owned by the handle: use any call on it, but free it never. Such calls
 * are not redirected: a TKV_SC_MOVED is theirs to handle (refresh, then
 * ask again). NULL on failure (tkv_cluster_err() says why). */
TKV_API tkv_ctx *tkv_cluster_node(tkv_cluster *cl, const void *key, size_t klen);

/* Runs fn(ctx, arg) on the connection serving key's slot and returns its
 * result; if that is TKV_ERR with TKV_SC_MOVED, refreshes the map and runs
 * it once more at the new owner. fn is any blocking single-key call on
 * that key (a retried fn must be safe to run twice: a MOVED request was not
 * carried out). On TKV_ERR the error is copied to the handle. */
typedef int (*tkv_cluster_fn)(tkv_ctx *ctx, void *arg);
TKV_API int tkv_cluster_call(tkv_cluster *cl, const void *key, size_t klen, tkv_cluster_fn fn,
                             void *arg);

/* The single-key calls, routed as tkv_cluster_call() does; arguments and
 * results as in tkv_put_ex(), tkv_get(), tkv_del(), tkv_count() and
 * tkv_range() (results owned by the handle). */
TKV_API int tkv_cluster_put_ex(tkv_cluster *cl, const void *key, size_t klen, const void *val,
                               size_t vlen, uint64_t ts, int has_ts, uint64_t ttl_us,
                               uint64_t *out_ts);
TKV_API int tkv_cluster_get(tkv_cluster *cl, const void *key, size_t klen, uint64_t ts,
                            tkv_version *out);
TKV_API int tkv_cluster_del(tkv_cluster *cl, const void *key, size_t klen, uint64_t *removed);
TKV_API int tkv_cluster_count(tkv_cluster *cl, const void *key, size_t klen, uint64_t from,
                              uint64_t to, uint64_t *n);
TKV_API int tkv_cluster_range(tkv_cluster *cl, const void *key, size_t klen,
                              const tkv_range_opts *opts, const tkv_entry **entries, size_t *n,
                              int *truncated);

/* Reads n keys as of ts, any slots. The keys are grouped by slot, and
 * each group is one MGET at the node serving it; the groups are pipelined
 * (all sent, every node working at once, then the replies read). A group
 * that is MOVED, or that its node answers only in part (replies above the
 * frame limit), runs again alone as tkv_mget() at the owner. *out points to
 * n answers in the order of keys, owned by the handle. Each slot's answers
 * are one snapshot (as tkv_mget() says); the answers of different slots
 * are NOT: a write may land between two groups. TKV_OK, or TKV_ERR (the
 * first error any group met): no answer is returned then. */
TKV_API int tkv_cluster_mget(tkv_cluster *cl, uint64_t ts, const tkv_bytes *keys, size_t n,
                             const tkv_version **out);

/* Writes n items, any slots: grouped by slot, each group one MPUT at the
 * node serving it, pipelined as tkv_cluster_mget() does (a MOVED group
 * runs again at the owner). *stamps (may be NULL) points to the n
 * timestamps in the order of items. Each slot's items are written all or
 * none; ACROSS SLOTS THERE IS NO ATOMICITY: on TKV_ERR every group whose
 * node acknowledged it is written, the failing one is not, and the others
 * may or may not be (a broken connection); the message says how many
 * items were acknowledged. Give keys written together one hash tag to
 * make them one group. */
TKV_API int tkv_cluster_mput(tkv_cluster *cl, const tkv_item *items, size_t n,
                             const uint64_t **stamps);

/* SCAN across the cluster: the keys starting with prefix on every primary
 * of the map, one node after the other (in byte order within a node, not
 * across nodes), at most count (0: 100) a page; arguments and results as
 * tkv_scan(). The cursor is text, "N:KEY" (N the node's place in the map,
 * KEY that node's own cursor; "N:" its start), so it can be printed and
 * given back; *next.ptr is NULL when every node has been listed. A node
 * lists only keys of the slots the handle's map gives it, so a key held
 * twice while its slot moves is listed once; a key moved (or a map
 * changed) between two pages may be missed or listed twice, as with
 * Redis Cluster's per-node SCAN. A cursor that is not "N:KEY", or names a
 * node past the map's last, is TKV_EK_USAGE. */
TKV_API int tkv_cluster_scan(tkv_cluster *cl, const void *prefix, size_t plen, tkv_bytes cursor,
                             uint32_t count, const tkv_bytes **keys, size_t *n, tkv_bytes *next);

/* A slot moving between shards (ARCHITECTURE.md, "The cluster") is
 * served by its source for the keys still there; a key already moved is
 * answered TKV_SC_ASK ("SLOT HOST:PORT" of the target), and the request
 * goes there once, preceded by ASKING, without changing the map; a write
 * to a key being moved, or a request whose keys the move has split, is
 * answered TKV_SC_TRYAGAIN. The cluster handle does all of that itself:
 * ASK followed once, TRYAGAIN retried with a growing pause (1 ms to 64 ms,
 * about 2 s in all) before it gives up with that error.
 *
 * The calls below are the admin's (tkvctl cluster migrate), on one node's
 * connection. Moving one key: tkv_export_key() at the source until no more
 * pieces (the key is then locked against writes for 10 s, renewed by each
 * piece), tkv_import_key() of each piece at the target (the first replaces
 * whatever the target held of the key), tkv_drop_key() at the source. */

/* Makes the next request on this connection (only that one) be served for
 * a slot the node imports. TKV_OK or TKV_ERR. */
TKV_API int tkv_asking(tkv_ctx *ctx);

/* A piece of key's history at a migration's source, as backup records
 * (PROTOCOL.md "The backup format", without header and trailer): *records
 * and *len (valid until the next call on ctx); empty if nothing of the key
 * is visible there (it is the target's already: drop it, import nothing).
 * cursor (has_cursor 0 for the first piece) is the *next the piece before
 * gave; *more is 1 if another piece follows. TKV_OK or TKV_ERR
 * (TKV_SC_BAD_REQUEST: the slot is not migrating away from that node). */
TKV_API int tkv_export_key(tkv_ctx *ctx, const void *key, size_t klen, uint64_t cursor,
                           int has_cursor, const uint8_t **records, size_t *len, uint64_t *next,
                           int *more);

/* Writes a piece tkv_export_key() gave at a migration's target; cont 0 for
 * the first piece, which replaces whatever the target held of the key.
 * *written (may be NULL) gets the versions written. TKV_OK or TKV_ERR. */
TKV_API int tkv_import_key(tkv_ctx *ctx, const void *key, size_t klen, const uint8_t *records,
                           size_t len, int cont, uint64_t *written);

/* Deletes the moved key at the source and unlocks it. TKV_OK, or TKV_ERR
 * (TKV_SC_BUSY: the lock expired - export and import it again). */
TKV_API int tkv_drop_key(tkv_ctx *ctx, const void *key, size_t klen, uint64_t *removed);

/* The same three, pipelined (tkvctl moves keys in batches): queued like
 * the tkv_append_* calls below, each reply read with tkv_read_reply() -
 * EXPORTKEY's records in r.text and r.text_len (valid until the next
 * read), its cursor in r.ts and r.truncated 1 if more pieces follow;
 * IMPORTKEY's versions written and DROPKEY's versions removed in r.count.
 * TKV_OK or TKV_ERR. */
TKV_API int tkv_append_export_key(tkv_ctx *ctx, const void *key, size_t klen, uint64_t cursor,
                                  int has_cursor);
TKV_API int tkv_append_import_key(tkv_ctx *ctx, const void *key, size_t klen,
                                  const uint8_t *records, size_t len, int cont);
TKV_API int tkv_append_drop_key(tkv_ctx *ctx, const void *key, size_t klen);

/* A page of the keys the node still holds in the slots it is migrating
 * away, as tkv_scan() pages (at most count keys examined; *keys and *next
 * valid until the next call; next.ptr NULL: done). */
TKV_API int tkv_slot_keys(tkv_ctx *ctx, tkv_bytes cursor, uint32_t count, const tkv_bytes **keys,
                          size_t *n, tkv_bytes *next);

/* ---- pipelining ---------------------------------------------------------- */
/* tkv_append_* queue requests without waiting; tkv_read_reply() returns the
 * replies one by one in the order the requests were queued (sending any
 * still queued first). Appends return TKV_OK or TKV_ERR (usage, memory or a
 * broken connection). */

TKV_API int tkv_append_ping(tkv_ctx *ctx);
TKV_API int tkv_append_put(tkv_ctx *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                           uint64_t ts);
TKV_API int tkv_append_put_now(tkv_ctx *ctx, const void *key, size_t klen, const void *val,
                               size_t vlen);
TKV_API int tkv_append_get(tkv_ctx *ctx, const void *key, size_t klen, uint64_t ts);
TKV_API int tkv_append_range(tkv_ctx *ctx, const void *key, size_t klen,
                             const tkv_range_opts *opts);
TKV_API int tkv_append_del(tkv_ctx *ctx, const void *key, size_t klen);
TKV_API int tkv_append_stats(tkv_ctx *ctx);
TKV_API int tkv_append_put_ex(tkv_ctx *ctx, const void *key, size_t klen, const void *val,
                              size_t vlen, uint64_t ts, int has_ts, uint64_t ttl_us);
TKV_API int tkv_append_get_version(tkv_ctx *ctx, const void *key, size_t klen, int64_t n);
TKV_API int tkv_append_del_at(tkv_ctx *ctx, const void *key, size_t klen, uint64_t ts, int has_ts);
TKV_API int tkv_append_count(tkv_ctx *ctx, const void *key, size_t klen, uint64_t from,
                             uint64_t to);
TKV_API int tkv_append_mput(tkv_ctx *ctx, const tkv_item *items, size_t n);
TKV_API int tkv_append_retain(tkv_ctx *ctx, const void *key, size_t klen, uint32_t versions,
                              uint64_t age_us, int dry_run);
TKV_API int tkv_append_policy(tkv_ctx *ctx, const void *key, size_t klen);
TKV_API int tkv_append_scan(tkv_ctx *ctx, const void *prefix, size_t plen, tkv_bytes cursor,
                            uint32_t count);
TKV_API int tkv_append_mget(tkv_ctx *ctx, uint64_t ts, const tkv_bytes *keys, size_t n);
TKV_API int tkv_append_digest(tkv_ctx *ctx, uint64_t at, int has_at);
/* ROLE: the reply's stats hold its fields as sent. WAIT: count holds the
 * replicas that acknowledged; queued after writes, it waits for them. */
TKV_API int tkv_append_role(tkv_ctx *ctx);
TKV_API int tkv_append_wait(tkv_ctx *ctx, uint64_t nreplicas, uint64_t timeout_ms);
/* SLOWLOG GET, LEN and RESET: see tkv_slowlog_get(); the reply's count is
 * the log's length, its slowlog and n the entries (GET). */
TKV_API int tkv_append_slowlog_get(tkv_ctx *ctx, uint32_t n);
TKV_API int tkv_append_slowlog_len(tkv_ctx *ctx);
TKV_API int tkv_append_slowlog_reset(tkv_ctx *ctx);

/* Sends every queued request without waiting for replies. TKV_OK or
 * TKV_ERR. */
TKV_API int tkv_flush(tkv_ctx *ctx);

/* Replies still to be read. */
TKV_API size_t tkv_pending(const tkv_ctx *ctx);

/* Reads the next reply into *r. Returns r->status: TKV_OK, TKV_NOT_FOUND,
 * or TKV_ERR - a server error for this request (the connection stays usable
 * and later replies can be read) or a broken connection (tkv_err()
 * tells which). With nothing pending: TKV_ERR, TKV_EK_USAGE. */
TKV_API int tkv_read_reply(tkv_ctx *ctx, tkv_reply *r);

#ifdef __cplusplus
}
#endif

#endif
