/*
 * watch.c - libtkvclient's change feed: WATCH, then push frames.
 *
 * WATCH has one reply, [0, replid, offset], and then the connection
 * carries only pushes (protocol/watch.h decodes them, the same decoder
 * the server's tests use) and at most one error frame that ends the
 * watch. A wait that times out is not an error of the connection here: a
 * feed is quiet whenever the server is, and the frame reader keeps any
 * partial frame for the next call.
 */
#include <string.h>

#include "client_int.h"
#include "watch.h"

static int read_start(tkv_ctx *c, uint64_t *offset)
{
    const uint8_t *f, *id;
    size_t n;
    tkv_mp m;
    uint32_t count, idlen;
    uint64_t status, off;
    tkv_span msg;
    if (cl_read_frame(c, &f, &n) < 0)
        return TKV_ERR;
    cl_pop_op(c);
    if (tkv_reply_head(f, n, &m, &count, &status, &msg) < 0)
        return cl_set_err(c, TKV_EK_PROTOCOL, "malformed reply to WATCH");
    if (status >= TKV_ST_BAD_REQUEST)
        return cl_server_error(c, status, msg);
    if (status != TKV_ST_OK || count < 3 || tkv_mp_read_bytes(&m, &id, &idlen) < 0 ||
        tkv_mp_read_uint(&m, &off) < 0)
        return cl_set_err(c, TKV_EK_PROTOCOL, "malformed reply to WATCH");
    if (offset)
        *offset = off;
    size_t keep = idlen < sizeof c->watch_replid ? idlen : sizeof c->watch_replid - 1;
    memcpy(c->watch_replid, id, keep);
    c->watch_replid[keep] = '\0';
    c->watching = true;
    return TKV_OK;
}

const char *tkv_watch_replid(const tkv_ctx *c) { return c->watch_replid; }

int tkv_watch(tkv_ctx *c, const void *prefix, size_t plen, const tkv_watch_opts *o,
              uint64_t *offset)
{
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    if (plen > UINT32_MAX)
        return cl_set_err(c, TKV_EK_USAGE, "prefix longer than 4 GiB");
    if (o && o->has_asof && plen == 0)
        return cl_set_err(c, TKV_EK_USAGE, "an as-of watch takes one whole key");
    tkv_req q = {.cmd = TKV_CMD_WATCH,
                 .prefix = cl_span(prefix, plen),
                 .has_prefix = plen > 0,
                 .has_offset = o && o->has_from,
                 .offset = o ? o->from : 0,
                 .has_ts = o && o->has_asof,
                 .ts = o ? o->asof : 0};
    if (o && o->has_from && o->replid)
        q.host = cl_span(o->replid, strlen(o->replid));
    if (cl_append_req(c, &q) < 0 || cl_flush(c) < 0)
        return TKV_ERR;
    return read_start(c, offset);
}

int tkv_watch_next(tkv_ctx *c, tkv_change *out)
{
    memset(out, 0, sizeof *out);
    if (cl_begin(c) < 0)
        return TKV_ERR;
    if (!c->watching)
        return cl_set_err(c, TKV_EK_USAGE, "no watch: call tkv_watch() first");
    const uint8_t *f;
    size_t n;
    if (cl_read_frame(c, &f, &n) < 0) {
        if (c->err != TKV_EK_TIMEOUT)
            return TKV_ERR;
        cl_set_err(c, TKV_EK_NONE, "%s", "");
        return TKV_NOT_FOUND;
    }
    tkv_wchange w;
    int rc = tkv_watch_decode(f, n, &w);
    if (rc == 1) {
        tkv_mp m;
        uint32_t count;
        uint64_t status;
        tkv_span msg;
        if (tkv_reply_head(f, n, &m, &count, &status, &msg) < 0 || status < TKV_ST_BAD_REQUEST)
            return cl_set_err(c, TKV_EK_PROTOCOL, "a reply where a change was due");
        c->watching = false;
        return cl_server_error(c, status, msg);
    }
    if (rc < 0)
        return cl_set_err(c, TKV_EK_PROTOCOL, "malformed change frame");
    *out = (tkv_change){.kind = (int)w.kind,
                        .offset = w.offset,
                        .batch_end = w.left == 0,
                        .key = w.key,
                        .klen = w.klen,
                        .ts = w.ts,
                        .tombstone = w.kind == TKV_WK_WRITE && !w.value,
                        .value = w.value,
                        .len = w.vlen,
                        .expires = w.expires,
                        .horizon = w.horizon,
                        .keep_versions = w.keep_versions,
                        .keep_age_us = w.keep_age};
    return TKV_OK;
}
