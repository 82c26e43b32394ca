/*
 * client_int.h - libtkvclient's private state, shared by client.c
 * (connections, I/O, queueing requests), reply.c (decoding replies) and
 * commands.c (the blocking calls). Not installed.
 */
#ifndef TKV_CLIENT_INT_H
#define TKV_CLIENT_INT_H

#include <stdbool.h>

#include "buf.h"
#include "frame.h"
#include "mp.h"
#include "proto.h"
#include "tkv/client.h"

struct tkv_ctx {
    int fd;
    int timeout_ms;
    tkv_errkind err;
    int server_code;
    char errstr[256];
    tkv_frame_reader in;
    tkv_buf out; /* encoded requests not yet sent */
    size_t out_sent;
    uint8_t *ops; /* ring of commands awaiting replies */
    size_t ops_cap, ops_head, ops_n;
    tkv_entry *entries; /* RANGE results */
    size_t entries_cap;
    tkv_stat *stats; /* STATS results */
    size_t stats_cap;
    tkv_buf strbuf;             /* NUL-terminated copies of STATS (and ROLE) strings */
    tkv_replica_info *replicas; /* ROLE results */
    size_t replicas_cap;
    tkv_version *versions; /* MGET results */
    size_t versions_cap;
    tkv_version *mget_all; /* MGET results gathered over several replies */
    size_t mget_all_cap;
    tkv_buf mget_values; /* their values, copied out of the reply buffer */
    uint64_t *stamps;    /* MPUT results */
    size_t stamps_cap;
    tkv_bytes *keys; /* SCAN results */
    size_t keys_cap;
    tkv_slot_range *ranges; /* CLUSTER SHARDS results (strings in strbuf) */
    size_t ranges_cap;
    const char **range_addrs; /* their replicas' addresses */
    size_t range_addrs_cap;
    tkv_slowlog_entry *slow; /* SLOWLOG GET results (strings in strbuf) */
    size_t slow_cap;
    uint64_t map_revision;
    tkv_buf scratch;       /* request building */
    bool watching;         /* after tkv_watch(): the connection only receives pushes */
    char watch_replid[65]; /* the history the watch follows */
    tkv_trace_fn trace;
    void *trace_arg;
    char *host;      /* the address dialled, for tkv_reconnect(): a host and */
    uint16_t port;   /* port, or */
    char *unix_path; /* a Unix socket's path */
    int keepalive;   /* TCP keepalive idle seconds to apply on (re)connect; 0: off */
};

int cl_set_err(tkv_ctx *c, tkv_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records an error reply (status >= 10, its message): TKV_EK_SERVER, or
 * TKV_EK_READONLY for READONLY. Returns TKV_ERR. */
int cl_server_error(tkv_ctx *c, uint64_t status, tkv_span msg);
/* Clears a non-sticky error before a new call; TKV_ERR if the connection
 * is broken. */
int cl_begin(tkv_ctx *c);
/* Grows *arr (elements of size sz) to hold n; TKV_ERR if out of memory. */
int cl_grow(tkv_ctx *c, void **arr, size_t *cap, size_t n, size_t sz);
static inline tkv_span cl_span(const void *p, size_t n)
{
    return (tkv_span){.ptr = p, .len = (uint32_t)n};
}

/* cl_begin(), and refuses (TKV_EK_USAGE) while pipelined replies are
 * unread: a blocking call reads only its own reply. */
int cl_no_backlog(tkv_ctx *c);

/* Queues one request; TKV_OK or TKV_ERR. */
int cl_append_req(tkv_ctx *c, const tkv_req *r);

/* client.c's I/O for calls with replies of their own shape (watch.c):
 * sends what is queued; reads the next whole frame (valid until the next
 * read); takes the oldest queued op off. TKV_OK or TKV_ERR. */
int cl_flush(tkv_ctx *c);
int cl_read_frame(tkv_ctx *c, const uint8_t **f, size_t *n);
int cl_pop_op(tkv_ctx *c);

/* A new unconnected context (fd -1), or NULL if memory is exhausted. */
tkv_ctx *cl_new(void);
/* Remembers the address (host and port, or path when host is NULL) for
 * tkv_reconnect(). TKV_OK or TKV_ERR (memory). */
int cl_set_addr(tkv_ctx *c, const char *host, uint16_t port, const char *path);
/* Fills a sockaddr_un for path; TKV_ERR (usage) if it does not fit. */
struct sockaddr_un;
int cl_unix_addr(tkv_ctx *c, const char *path, struct sockaddr_un *sa);
/* Sets c's keepalive to idle seconds (0: off), applied to fd if it is a
 * TCP socket (fd may be -1). Out of 0-TKV_KEEPALIVE_MAX, or refused by the
 * system: TKV_ERR with TKV_EK_USAGE, c->keepalive and the connection as
 * they were. */
int cl_keepalive(tkv_ctx *c, int fd, int seconds);

/* Decodes one reply frame for command op into r; returns r->status. */
int cl_decode(tkv_ctx *c, int op, const uint8_t *f, size_t n, tkv_reply *r);

#endif
