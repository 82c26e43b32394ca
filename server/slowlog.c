/*
 * slowlog.c - implements slowlog.h: a ring buffer of fixed-size entries.
 * `head` is where the next entry goes; the newest entry is just before
 * it, and the `len` entries before that, wrapping, are the log.
 */
#include "slowlog.h"

#include <stdlib.h>
#include <string.h>

#include "reply.h"

typedef struct slow_entry {
    uint64_t id, time_us, duration_us;
    uint32_t key_len; /* the whole key's length */
    uint8_t key_kept; /* bytes of it in key[] */
    uint8_t cmd;      /* tkv_cmd */
    uint8_t key[TKV_SLOWLOG_KEY_MAX];
    char client[64]; /* as conn.c's peer: "host:port", NUL-terminated */
} slow_entry;

struct tkv_slowlog {
    int64_t slower_than;
    uint32_t cap, len, head;
    uint64_t next_id;
    slow_entry *ring; /* cap entries */
};

/* A reply entry's bytes at most: its array, three uints and the key's
 * length (9 each), the command name, the key and the client, with their
 * headers. */
#define ENTRY_ROOM (1 + 4 * 9 + (1 + 16) + (2 + TKV_SLOWLOG_KEY_MAX) + (1 + 64))
/* The reply's array, status, length and list header. */
#define REPLY_HEAD 32

tkv_slowlog *tkv_slowlog_new(int64_t slower_than, uint32_t max_len)
{
    tkv_slowlog *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->slower_than = slower_than;
    s->cap = max_len;
    s->next_id = 1;
    if (max_len && !(s->ring = calloc(max_len, sizeof *s->ring))) {
        free(s);
        return NULL;
    }
    return s;
}

void tkv_slowlog_free(tkv_slowlog *s)
{
    if (!s)
        return;
    free(s->ring);
    free(s);
}

bool tkv_slowlog_wants(const tkv_slowlog *s, uint64_t us)
{
    return s->slower_than >= 0 && us >= (uint64_t)s->slower_than;
}

void tkv_slowlog_add(tkv_slowlog *s, uint64_t time_us, uint64_t duration_us, tkv_cmd cmd,
                     tkv_span key, const char *client)
{
    uint64_t id = s->next_id++; /* counted even when nothing is kept */
    if (s->cap == 0)
        return;
    slow_entry *e = &s->ring[s->head];
    e->id = id;
    e->time_us = time_us;
    e->duration_us = duration_us;
    e->cmd = (uint8_t)cmd;
    e->key_len = key.len;
    e->key_kept = (uint8_t)(key.len < TKV_SLOWLOG_KEY_MAX ? key.len : TKV_SLOWLOG_KEY_MAX);
    if (e->key_kept)
        memcpy(e->key, key.ptr, e->key_kept);
    size_t n = strnlen(client, sizeof e->client - 1);
    memcpy(e->client, client, n);
    e->client[n] = '\0';
    s->head = (s->head + 1) % s->cap;
    if (s->len < s->cap)
        s->len++;
}

uint32_t tkv_slowlog_len(const tkv_slowlog *s) { return s->len; }

uint32_t tkv_slowlog_reset(tkv_slowlog *s)
{
    uint32_t n = s->len;
    s->len = 0;
    return n;
}

int tkv_slowlog_reply(const tkv_slowlog *s, uint64_t n, size_t max_reply, tkv_buf *out)
{
    uint64_t fit = max_reply > REPLY_HEAD ? (max_reply - REPLY_HEAD) / ENTRY_ROOM : 0;
    if (n > s->len)
        n = s->len;
    if (n > fit)
        n = fit;
    tkv_rep_wr lw;
    tkv_rep_slowlog_begin(&lw, out, s->len, (uint32_t)n);
    for (uint32_t i = 0; i < n; i++) {
        const slow_entry *e = &s->ring[(s->head + s->cap - 1 - i) % s->cap];
        const char *name = tkv_cmd_name((tkv_cmd)e->cmd);
        tkv_rep_slow w = {.id = e->id,
                          .time_us = e->time_us,
                          .duration_us = e->duration_us,
                          .cmd = {(const uint8_t *)name, (uint32_t)strlen(name)},
                          .key = {e->key, e->key_kept},
                          .key_len = e->key_len,
                          .client = {(const uint8_t *)e->client, (uint32_t)strlen(e->client)}};
        tkv_rep_slowlog_entry(&lw, &w);
    }
    return tkv_rep_slowlog_end(&lw);
}
