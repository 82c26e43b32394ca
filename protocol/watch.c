/*
 * watch.c - implements watch.h: the change feed's push frames.
 *
 * Written with the direct MessagePack stores (proto.h's tkv_mpw_*): a busy
 * server writes one push per change per watcher, so each costs a few
 * stores into one reserved run of the output buffer.
 */
#include "watch.h"

#include <string.h>

#include "mp.h"
#include "proto.h"

int tkv_watch_put(tkv_buf *b, const tkv_wchange *c)
{
    /* array, tag, 3 integers, key, then at most 3 more integers or a bin */
    size_t max = 1 + 2 + 3 * 9 + 5 + (size_t)c->klen + 9 + 5 + (size_t)c->vlen + 9;
    uint8_t *p = tkv_frame_open(b, max);
    if (!p)
        return -1;
    uint8_t n = c->kind == TKV_WK_DROP ? 4 : c->kind == TKV_WK_REMOVE ? 5 : 7;
    *p++ = (uint8_t)(0x90 | n);
    *p++ = 0xa1;
    *p++ = (uint8_t)c->kind;
    p = tkv_mpw_uint(p, c->offset);
    p = tkv_mpw_uint(p, c->left);
    p = tkv_mpw_bin(p, c->key, c->klen);
    switch (c->kind) {
    case TKV_WK_WRITE:
        p = tkv_mpw_uint(p, c->ts);
        if (c->value)
            p = tkv_mpw_bin(p, c->value, c->vlen);
        else
            *p++ = 0xc0;
        p = tkv_mpw_opt(p, c->expires != 0, c->expires);
        break;
    case TKV_WK_REMOVE: p = tkv_mpw_uint(p, c->ts); break;
    case TKV_WK_DROP: break;
    case TKV_WK_META:
        p = tkv_mpw_uint(p, c->horizon);
        p = tkv_mpw_uint(p, c->keep_versions);
        p = tkv_mpw_uint(p, c->keep_age);
        break;
    }
    tkv_frame_close(b, p);
    return 0;
}

static int decode_write(tkv_mp *m, tkv_wchange *c)
{
    if (tkv_mp_read_uint(m, &c->ts) < 0)
        return -1;
    if (!tkv_mp_read_nil(m) && (tkv_mp_read_bytes(m, &c->value, &c->vlen) < 0 || !c->value))
        return -1;
    if (!tkv_mp_read_nil(m) && (tkv_mp_read_uint(m, &c->expires) < 0 || c->expires == 0))
        return -1;
    return 0;
}

static int decode_meta(tkv_mp *m, tkv_wchange *c)
{
    uint64_t v;
    if (tkv_mp_read_uint(m, &c->horizon) < 0 || tkv_mp_read_uint(m, &v) < 0 || v > UINT32_MAX ||
        tkv_mp_read_uint(m, &c->keep_age) < 0)
        return -1;
    c->keep_versions = (uint32_t)v;
    return 0;
}

int tkv_watch_decode(const uint8_t *p, size_t n, tkv_wchange *c)
{
    tkv_mp m;
    uint32_t count, tlen;
    const uint8_t *tag;
    tkv_mp_type t;
    memset(c, 0, sizeof *c);
    tkv_mp_init(&m, p, n);
    if (tkv_mp_read_array(&m, &count) < 0 || count < 1 || tkv_mp_peek(&m, &t) < 0)
        return -1;
    if (t == TKV_MP_UINT)
        return 1; /* a reply: [status, ...] */
    if (tkv_mp_read_bytes(&m, &tag, &tlen) < 0 || tlen != 1)
        return -1;
    c->kind = (tkv_wkind)tag[0];
    unsigned want = c->kind == TKV_WK_DROP ? 4 : c->kind == TKV_WK_REMOVE ? 5 : 7;
    if ((c->kind != TKV_WK_WRITE && c->kind != TKV_WK_REMOVE && c->kind != TKV_WK_DROP &&
         c->kind != TKV_WK_META) ||
        count != want || tkv_mp_read_uint(&m, &c->offset) < 0 ||
        tkv_mp_read_uint(&m, &c->left) < 0 || tkv_mp_read_bytes(&m, &c->key, &c->klen) < 0)
        return -1;
    int rc = 0;
    switch (c->kind) {
    case TKV_WK_WRITE: rc = decode_write(&m, c); break;
    case TKV_WK_REMOVE: rc = tkv_mp_read_uint(&m, &c->ts); break;
    case TKV_WK_DROP: break;
    case TKV_WK_META: rc = decode_meta(&m, c); break;
    }
    return rc < 0 || tkv_mp_left(&m) != 0 ? -1 : 0;
}
