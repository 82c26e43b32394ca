/*
 * migrate.c - libtkvclient's calls for moving keys between a cluster's
 * shards (client.h, "A slot moving between shards"): ASKING, and the
 * admin's EXPORTKEY, IMPORTKEY, DROPKEY and SLOTKEYS. Each is one request
 * and its reply, on one node's connection; the cluster handle's own use
 * of ASKING is in cluster.c.
 */
#include <string.h>

#include "client_int.h"

/* One request, its reply read into *r. */
static int call(tkv_ctx *c, const tkv_req *q, tkv_reply *r)
{
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    if (q->key.len > UINT32_MAX || q->records.len > UINT32_MAX)
        return cl_set_err(c, TKV_EK_USAGE, "key or records longer than 4 GiB");
    if (cl_append_req(c, q) < 0)
        return TKV_ERR;
    return tkv_read_reply(c, r);
}

int tkv_asking(tkv_ctx *c)
{
    tkv_reply r;
    tkv_req q = {.cmd = TKV_CMD_ASKING};
    return call(c, &q, &r);
}

/* The pipelined forms: queued like any tkv_append_*; the replies are read
 * with tkv_read_reply() (EXPORTKEY's records in r.text/r.text_len, its
 * cursor in r.ts and whether more follows in r.truncated; IMPORTKEY's and
 * DROPKEY's count in r.count). */
static int append(tkv_ctx *c, const tkv_req *q)
{
    if (q->key.len > UINT32_MAX || q->records.len > UINT32_MAX)
        return cl_set_err(c, TKV_EK_USAGE, "key or records longer than 4 GiB");
    return cl_append_req(c, q);
}

int tkv_append_export_key(tkv_ctx *c, const void *key, size_t klen, uint64_t cursor, int has_cursor)
{
    tkv_req q = {.cmd = TKV_CMD_EXPORTKEY,
                 .key = cl_span(key, klen),
                 .offset = cursor,
                 .has_offset = has_cursor != 0};
    return append(c, &q);
}

int tkv_append_import_key(tkv_ctx *c, const void *key, size_t klen, const uint8_t *records,
                          size_t len, int cont)
{
    if (len == 0)
        return cl_set_err(c, TKV_EK_USAGE, "no records to import");
    tkv_req q = {.cmd = TKV_CMD_IMPORTKEY,
                 .key = cl_span(key, klen),
                 .records = cl_span(records, len),
                 .cont = cont != 0};
    return append(c, &q);
}

int tkv_append_drop_key(tkv_ctx *c, const void *key, size_t klen)
{
    tkv_req q = {.cmd = TKV_CMD_DROPKEY, .key = cl_span(key, klen)};
    return append(c, &q);
}

int tkv_export_key(tkv_ctx *c, const void *key, size_t klen, uint64_t cursor, int has_cursor,
                   const uint8_t **records, size_t *len, uint64_t *next, int *more)
{
    tkv_reply r;
    *records = NULL;
    *len = 0;
    *more = 0;
    tkv_req q = {.cmd = TKV_CMD_EXPORTKEY,
                 .key = cl_span(key, klen),
                 .offset = cursor,
                 .has_offset = has_cursor != 0};
    int rc = call(c, &q, &r);
    if (rc == TKV_OK) {
        *records = r.text;
        *len = r.text_len;
        *next = r.ts;
        *more = r.truncated;
    }
    return rc;
}

int tkv_import_key(tkv_ctx *c, const void *key, size_t klen, const uint8_t *records, size_t len,
                   int cont, uint64_t *written)
{
    tkv_reply r;
    if (len == 0)
        return cl_set_err(c, TKV_EK_USAGE, "no records to import");
    tkv_req q = {.cmd = TKV_CMD_IMPORTKEY,
                 .key = cl_span(key, klen),
                 .records = cl_span(records, len),
                 .cont = cont != 0};
    int rc = call(c, &q, &r);
    if (rc == TKV_OK && written)
        *written = r.count;
    return rc;
}

int tkv_drop_key(tkv_ctx *c, const void *key, size_t klen, uint64_t *removed)
{
    tkv_reply r;
    tkv_req q = {.cmd = TKV_CMD_DROPKEY, .key = cl_span(key, klen)};
    int rc = call(c, &q, &r);
    if (rc == TKV_OK && removed)
        *removed = r.count;
    return rc;
}

int tkv_slot_keys(tkv_ctx *c, tkv_bytes cursor, uint32_t count, const tkv_bytes **keys, size_t *n,
                  tkv_bytes *next)
{
    tkv_reply r;
    *keys = NULL;
    *n = 0;
    *next = (tkv_bytes){NULL, 0};
    tkv_req q = {.cmd = TKV_CMD_SLOTKEYS,
                 .cursor = cl_span(cursor.ptr, cursor.len),
                 .has_cursor = cursor.ptr != NULL,
                 .limit = count};
    int rc = call(c, &q, &r);
    if (rc == TKV_OK) {
        *keys = r.keys;
        *n = r.n;
        *next = r.cursor;
    }
    return rc;
}
