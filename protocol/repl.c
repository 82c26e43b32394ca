/*
 * repl.c - implements repl.h: the replication stream's frames.
 *
 * Frames are written with direct MessagePack stores (proto.h's tkv_mpw_*)
 * rather than msgpack-c's packer: a primary encodes every batch it commits,
 * on its writer thread, and the records are the bulk of it. S and B frames
 * carry their record list as an array 32 whose count is patched in at the
 * end, so a batch is encoded in one pass over its records.
 */
#include "repl.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "proto.h"

/* ---- decoding ----------------------------------------------------------- */

static int read_id(tkv_mp *m, char out[TKV_REPLID_LEN + 1])
{
    const uint8_t *p;
    uint32_t n;
    if (tkv_mp_read_bytes(m, &p, &n) < 0 || n != TKV_REPLID_LEN)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int tkv_repl_decode(const uint8_t *p, size_t n, tkv_repl_frame *f)
{
    tkv_mp m;
    uint32_t count, tlen;
    const uint8_t *tag;
    memset(f, 0, sizeof *f);
    tkv_mp_init(&m, p, n);
    if (tkv_mp_read_array(&m, &count) < 0 || count < 1 || tkv_mp_read_bytes(&m, &tag, &tlen) < 0 ||
        tlen != 1)
        return -1;
    f->tag = (tkv_repl_tag)tag[0];
    uint32_t nrec;
    switch (f->tag) {
    case TKV_RF_FULL:
    case TKV_RF_CONT:
        if (count != 3 || read_id(&m, f->replid) < 0 || tkv_mp_read_uint(&m, &f->offset) < 0)
            return -1;
        break;
    case TKV_RF_END:
        if (count != 2 || tkv_mp_read_uint(&m, &f->count) < 0)
            return -1;
        break;
    case TKV_RF_PING:
        if (count != 2 || tkv_mp_read_uint(&m, &f->offset) < 0)
            return -1;
        break;
    case TKV_RF_SNAP:
        if (count != 2 || tkv_mp_read_array(&m, &nrec) < 0)
            return -1;
        f->count = nrec;
        break;
    case TKV_RF_BATCH:
        if (count != 3 || tkv_mp_read_uint(&m, &f->offset) < 0 || tkv_mp_read_array(&m, &nrec) < 0)
            return -1;
        f->count = nrec;
        break;
    default: return -1;
    }
    f->recs = m;
    return 0;
}

int tkv_repl_next_rec(tkv_repl_frame *f, tkv_repl_rec *r)
{
    if (f->count == 0)
        return tkv_mp_left(&f->recs) == 0 ? 0 : -1;
    uint32_t n;
    memset(r, 0, sizeof *r);
    if (tkv_mp_read_array(&f->recs, &n) < 0 || n < 1 || n > 2 ||
        tkv_mp_read_bytes(&f->recs, &r->key, &r->klen) < 0 || r->klen == 0)
        return -1;
    if (n == 2 && f->tag == TKV_RF_BATCH && tkv_mp_read_nil(&f->recs)) {
        r->drop = true;
    } else if (n == 2) {
        if (tkv_mp_read_bytes(&f->recs, &r->value, &r->vlen) < 0)
            return -1;
        r->has_value = true;
    } else if (f->tag == TKV_RF_SNAP) {
        return -1;
    }
    f->count--;
    return 1;
}

/* ---- encoding ----------------------------------------------------------- */

static int put_small(tkv_buf *b, char tag, const char *replid, bool has_off, uint64_t off)
{
    uint8_t *p = tkv_frame_open(b, 3 + 2 + TKV_REPLID_LEN + 9);
    if (!p)
        return -1;
    *p++ = (uint8_t)(0x90 | (1 + (replid ? 1 : 0) + (has_off ? 1 : 0)));
    *p++ = 0xa1;
    *p++ = (uint8_t)tag;
    if (replid) {
        *p++ = 0xd9; /* str 8 */
        *p++ = TKV_REPLID_LEN;
        memcpy(p, replid, TKV_REPLID_LEN);
        p += TKV_REPLID_LEN;
    }
    if (has_off)
        p = tkv_mpw_uint(p, off);
    tkv_frame_close(b, p);
    return 0;
}

int tkv_repl_put_id(tkv_buf *b, tkv_repl_tag tag, const char *replid, uint64_t offset)
{
    return put_small(b, (char)tag, replid, true, offset);
}

int tkv_repl_put_end(tkv_buf *b, uint64_t records)
{
    return put_small(b, TKV_RF_END, NULL, true, records);
}

int tkv_repl_put_ping(tkv_buf *b, uint64_t offset)
{
    return put_small(b, TKV_RF_PING, NULL, true, offset);
}

void tkv_repl_begin(tkv_repl_wr *w, tkv_buf *b, tkv_repl_tag tag, uint64_t offset)
{
    *w = (tkv_repl_wr){.b = b, .start = b->len};
    uint8_t *p = tkv_frame_open(b, 3 + 9 + 5);
    if (!p) {
        w->failed = true;
        return;
    }
    uint8_t *s = p;
    *p++ = tag == TKV_RF_BATCH ? 0x93 : 0x92;
    *p++ = 0xa1;
    *p++ = (uint8_t)tag;
    if (tag == TKV_RF_BATCH)
        p = tkv_mpw_uint(p, offset);
    w->count_at = b->len + 4 + (size_t)(p - s);
    *p++ = 0xdd;
    p += 4;
    /* The header is patched at the end: only the length so far counts. */
    b->len = (size_t)(p - b->data);
}

void tkv_repl_add(tkv_repl_wr *w, const void *k, size_t klen, const void *v, size_t vlen)
{
    if (w->failed)
        return;
    if (klen > UINT32_MAX || vlen > UINT32_MAX ||
        tkv_buf_reserve(w->b, 1 + 5 + klen + 5 + vlen) < 0) {
        w->failed = true;
        return;
    }
    uint8_t *p = w->b->data + w->b->len;
    *p++ = v ? 0x92 : 0x91;
    p = tkv_mpw_bin(p, k, (uint32_t)klen);
    if (v)
        p = tkv_mpw_bin(p, v, (uint32_t)vlen);
    w->b->len = (size_t)(p - w->b->data);
    w->n++;
}

void tkv_repl_add_drop(tkv_repl_wr *w, const void *p, size_t plen)
{
    if (w->failed)
        return;
    if (plen > UINT32_MAX || tkv_buf_reserve(w->b, 1 + 5 + plen + 1) < 0) {
        w->failed = true;
        return;
    }
    uint8_t *o = w->b->data + w->b->len;
    *o++ = 0x92;
    o = tkv_mpw_bin(o, p, (uint32_t)plen);
    *o++ = 0xc0; /* nil */
    w->b->len = (size_t)(o - w->b->data);
    w->n++;
}

int tkv_repl_end(tkv_repl_wr *w)
{
    size_t payload = w->b->len - w->start - 4;
    if (w->failed || payload > UINT32_MAX) {
        w->b->len = w->start;
        return -1;
    }
    tkv_store_be32(w->b->data + w->start, (uint32_t)payload);
    tkv_store_be32(w->b->data + w->count_at + 1, w->n);
    return 0;
}

int tkv_repl_new_id(char out[TKV_REPLID_LEN + 1])
{
    uint8_t r[TKV_REPLID_LEN / 2];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -1;
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}
