/*
 * slowlog.h - tkvd's slow log (SLOWLOG), after Redis's: the last requests
 * that took at least --slowlog-slower-than microseconds, newest first.
 *
 * An entry keeps an id (increasing from 1, never reused, so a poller can
 * tell what it has seen), when the request was answered (Unix
 * microseconds), how long it took (latency.h's measure), the command, its
 * first key cut to TKV_SLOWLOG_KEY_MAX bytes with the whole key's length
 * beside it, and the client's address. The ring of --slowlog-max-len
 * entries is allocated once; adding an entry copies into it (no
 * allocation), dropping the oldest when full. Every function runs on the
 * loop thread.
 */
#ifndef TKV_SLOWLOG_H
#define TKV_SLOWLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

/* --slowlog-slower-than's default, microseconds (Redis's). */
#define TKV_SLOWLOG_DEFAULT_SLOWER_THAN 10000
/* --slowlog-max-len's default and its ceiling (about 256 bytes each). */
#define TKV_SLOWLOG_DEFAULT_MAX_LEN 128u
#define TKV_SLOWLOG_MAX_LEN_LIMIT 1000000u

typedef struct tkv_slowlog tkv_slowlog;

/* A log of up to max_len entries of requests taking at least slower_than
 * microseconds; slower_than < 0 logs nothing (SLOWLOG still answers),
 * max_len 0 keeps nothing. NULL if out of memory; tkv_slowlog_free(NULL)
 * is a no-op. */
tkv_slowlog *tkv_slowlog_new(int64_t slower_than, uint32_t max_len);
void tkv_slowlog_free(tkv_slowlog *s);

/* True if a request that took `us` is to be logged. */
bool tkv_slowlog_wants(const tkv_slowlog *s, uint64_t us);

/* Logs one request: answered at time_us (Unix), after duration_us; key is
 * its first key (may be empty), client its "host:port". Copies both. */
void tkv_slowlog_add(tkv_slowlog *s, uint64_t time_us, uint64_t duration_us, tkv_cmd cmd,
                     tkv_span key, const char *client);

/* Entries held now. */
uint32_t tkv_slowlog_len(const tkv_slowlog *s);

/* Empties the log; returns how many entries it held. Ids go on. */
uint32_t tkv_slowlog_reset(tkv_slowlog *s);

/* Appends SLOWLOG GET's reply (reply.h): the newest n entries, newest
 * first, and as many fewer as keep the reply within max_reply bytes.
 * Returns 0, or -1 if out of memory. */
int tkv_slowlog_reply(const tkv_slowlog *s, uint64_t n, size_t max_reply, tkv_buf *out);

#endif
