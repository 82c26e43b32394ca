/*
 * etcd.h - a small blocking client for etcd's v3 API through its JSON
 * gateway (etcd 3.4: POST /v3/kv/range, /v3/kv/put, /v3/kv/deleterange,
 * /v3/kv/txn, /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke),
 * over libcurl, with jansson for the JSON. tkvd's cluster thread and
 * tkvctl's cluster commands use it; nothing else in tkv links curl.
 *
 * Why the gateway and not gRPC: it is plain HTTP/1.1 and JSON, which two
 * well-kept Debian libraries speak, where gRPC from C would mean a C++
 * stack. The cost is base64 keys and values and 64-bit numbers sent as
 * strings, both handled here.
 *
 * Conventions (as LevelDB's c.h):
 *  - Every call blocks for at most the handle's timeout per endpoint
 *    tried. Never call one on tkvd's event loop: they run on threads.
 *  - A handle is not thread-safe: one handle per thread.
 *  - Calls return TKV_ETCD_OK (0) or a negative tkv_etcd_rc; on failure
 *    a NUL-terminated reason is written into the caller's err[errlen]
 *    (err may be NULL). Nothing is written to out-parameters on failure
 *    unless said.
 *  - Keys and values are byte strings {pointer, length}; they may hold any
 *    byte. What a call returns is the caller's, freed with the matching
 *    _free(); every _free() accepts NULL.
 *  - Revisions, lease ids and TTLs are int64_t, as etcd has them.
 *
 * Watching: there is no streaming watch here. A caller that follows a key
 * polls tkv_etcd_get() and compares mod_revision. The keys tkv follows
 * (the shard map, a shard's leader) change rarely and are small, so a
 * range request a second costs little, and a poll cannot half-read a
 * stream or miss its cancellation; what it gives up is only latency (up
 * to one poll period) and intermediate versions, of which tkv needs only
 * the newest.
 */
#ifndef TKV_ETCD_H
#define TKV_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tkv_etcd_rc {
    TKV_ETCD_OK = 0,
    TKV_ETCD_EUNREACHABLE = -1, /* no endpoint answered (connect, timeout) */
    TKV_ETCD_ESERVER = -2,      /* etcd answered with an error (err says which) */
    TKV_ETCD_EPROTO = -3,       /* an answer that is not what the gateway sends */
    TKV_ETCD_ENOMEM = -4,
    TKV_ETCD_EINVAL = -5, /* bad arguments (e.g. an endpoint list with none) */
} tkv_etcd_rc;

typedef struct tkv_etcd tkv_etcd;

/* At most this many endpoints in one list. */
#define TKV_ETCD_MAX_ENDPOINTS 16

/* A handle on endpoints, a comma-separated list of base URLs
 * ("http://127.0.0.1:2379,http://10.0.0.2:2379"). No connection is made
 * here. Each call tries the endpoint that answered last, then the others
 * in order, and gives TKV_ETCD_EUNREACHABLE only when none answered within
 * timeout_ms (per endpoint). An endpoint that answers with an error is
 * not skipped (etcd's errors are the cluster's, not one member's), except
 * HTTP 5xx - a member that cannot serve now (no leader): the next is
 * tried, and TKV_ETCD_ESERVER given if every one answered so.
 * Returns NULL (reason in err) for an empty or too long list or without
 * memory. Free with tkv_etcd_free(). */
tkv_etcd *tkv_etcd_new(const char *endpoints, int timeout_ms, char *err, size_t errlen);
void tkv_etcd_free(tkv_etcd *e);

/* The endpoint the last call reached (or would try first): valid until the
 * next call on e. */
const char *tkv_etcd_endpoint(const tkv_etcd *e);

/* One key-value pair as etcd returns it. key and value are NUL-terminated
 * for convenience (the terminator is not counted in the lengths). */
typedef struct tkv_etcd_kv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision; /* the key's version in the store's history */
    int64_t version;      /* writes since the key was created (1 = new) */
    int64_t lease;        /* 0: none */
} tkv_etcd_kv;

typedef struct tkv_etcd_kvs {
    tkv_etcd_kv *kv; /* n pairs, in key order */
    size_t n;
    int64_t revision; /* the store's revision when the range was read */
} tkv_etcd_kvs;

/* Reads the key, or with prefix every key that starts with key (key_len 0
 * with prefix: the whole store), into *out (tkv_etcd_kvs_free it). A
 * missing key is no error: out->n == 0. */
int tkv_etcd_get(tkv_etcd *e, const void *key, size_t key_len, bool prefix, tkv_etcd_kvs *out,
                 char *err, size_t errlen);
void tkv_etcd_kvs_free(tkv_etcd_kvs *kvs);

/* Writes key = value, attached to lease (0: none; a key put with a lease
 * is deleted when the lease ends). *revision (may be NULL) gets the
 * store's revision after the put, which is the key's new mod_revision. */
int tkv_etcd_put(tkv_etcd *e, const void *key, size_t key_len, const void *value, size_t value_len,
                 int64_t lease, int64_t *revision, char *err, size_t errlen);

/* Deletes the key, or with prefix every key starting with it. *deleted (may
 * be NULL) gets how many went. */
int tkv_etcd_delete(tkv_etcd *e, const void *key, size_t key_len, bool prefix, int64_t *deleted,
                    char *err, size_t errlen);

/* Compare-and-swap in one transaction: puts key = value (with lease, 0:
 * none) only if the key's mod_revision is mod_revision now - or, with
 * mod_revision 0, only if the key does not exist (etcd's version == 0).
 * *swapped tells whether the put happened; a comparison that fails is no
 * error. *revision (may be NULL) gets the store's revision after the
 * transaction: with *swapped, the key's new mod_revision. */
int tkv_etcd_cas(tkv_etcd *e, const void *key, size_t key_len, int64_t mod_revision,
                 const void *value, size_t value_len, int64_t lease, bool *swapped,
                 int64_t *revision, char *err, size_t errlen);

/* Grants a lease of ttl seconds; *id gets its id. */
int tkv_etcd_lease_grant(tkv_etcd *e, int64_t ttl, int64_t *id, char *err, size_t errlen);
/* Renews the lease once. *ttl gets the seconds it now has left: 0 when it
 * has already expired or was revoked (its keys are gone; grant a new one). */
int tkv_etcd_lease_keepalive(tkv_etcd *e, int64_t id, int64_t *ttl, char *err, size_t errlen);
/* Ends the lease now, deleting every key attached to it. A lease that is
 * already gone is TKV_ETCD_ESERVER ("requested lease not found"). */
int tkv_etcd_lease_revoke(tkv_etcd *e, int64_t id, char *err, size_t errlen);

/* ---- the encoding, I/O-free (exposed for the unit tests) ---------------- */

/* Standard base64 (RFC 4648, padded) of p[0..n) as a NUL-terminated string
 * the caller frees, or NULL without memory. */
char *tkv_etcd_b64_encode(const void *p, size_t n);
/* Decodes NUL-terminated s into a new buffer (NUL-terminated, *n bytes
 * without the terminator) the caller frees. Returns NULL for text that is
 * not padded base64, or without memory. */
unsigned char *tkv_etcd_b64_decode(const char *s, size_t *n);

/* The range_end that makes [key, range_end) every key starting with key:
 * key with its last byte below 0xff incremented and what follows dropped;
 * "\0" (all keys) when there is none. *end_len is set; the caller frees. */
unsigned char *tkv_etcd_prefix_end(const void *key, size_t key_len, size_t *end_len);

/* The JSON bodies the calls send, as NUL-terminated strings the caller
 * frees (NULL without memory). */
char *tkv_etcd_range_body(const void *key, size_t key_len, bool prefix);
char *tkv_etcd_put_body(const void *key, size_t key_len, const void *value, size_t value_len,
                        int64_t lease);
char *tkv_etcd_cas_body(const void *key, size_t key_len, int64_t mod_revision, const void *value,
                        size_t value_len, int64_t lease);

/* Parses the answer to a range request (the JSON text, len bytes) into *out. */
int tkv_etcd_parse_range(const char *json, size_t len, tkv_etcd_kvs *out, char *err, size_t errlen);

#endif
