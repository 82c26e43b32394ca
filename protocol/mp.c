/*
 * mp.c - implements the bounds-checked MessagePack reader of mp.h.
 *
 * One function decodes a header byte by byte-class; everything else is built
 * on it. The checks that matter: a length must fit in the bytes that remain
 * (checked as `len > left`, never `p + len > end`, which could overflow), and
 * a container count must not exceed what the remaining bytes could possibly
 * encode.
 */
#include "mp.h"

#include <string.h>

#include "byteorder.h"

/* Reads a big-endian length of `width` bytes following the tag. */
static int take_len(tkv_mp *m, unsigned width, uint32_t *len)
{
    if (tkv_mp_left(m) < width)
        return TKV_MP_ETRUNC;
    *len = width == 1 ? m->p[0] : width == 2 ? tkv_load_be16(m->p) : tkv_load_be32(m->p);
    m->p += width;
    return 0;
}

static int take_bytes(tkv_mp *m, tkv_mp_obj *o, tkv_mp_type t, uint32_t len)
{
    if (len > tkv_mp_left(m))
        return TKV_MP_ETRUNC;
    o->type = t;
    o->v.bytes.ptr = m->p;
    o->v.bytes.len = len;
    m->p += len;
    return 0;
}

/* Each element of a container takes at least one byte: a count larger than
 * the remaining input is a lie, whatever the frame size. */
static int take_container(tkv_mp *m, tkv_mp_obj *o, tkv_mp_type t, uint32_t count)
{
    uint64_t min_bytes = t == TKV_MP_MAP ? (uint64_t)count * 2 : count;
    if (min_bytes > tkv_mp_left(m))
        return TKV_MP_ETRUNC;
    o->type = t;
    o->v.count = count;
    return 0;
}

static int take_fixed(tkv_mp *m, unsigned width, uint64_t *u)
{
    if (tkv_mp_left(m) < width)
        return TKV_MP_ETRUNC;
    switch (width) {
    case 1: *u = m->p[0]; break;
    case 2: *u = tkv_load_be16(m->p); break;
    case 4: *u = tkv_load_be32(m->p); break;
    default: *u = tkv_load_be64(m->p); break;
    }
    m->p += width;
    return 0;
}

static int take_uint(tkv_mp *m, tkv_mp_obj *o, unsigned width)
{
    o->type = TKV_MP_UINT;
    return take_fixed(m, width, &o->v.u);
}

static int take_sint(tkv_mp *m, tkv_mp_obj *o, unsigned width)
{
    uint64_t raw;
    int rc = take_fixed(m, width, &raw);
    if (rc < 0)
        return rc;
    int64_t v;
    switch (width) {
    case 1: v = (int8_t)raw; break;
    case 2: v = (int16_t)raw; break;
    case 4: v = (int32_t)raw; break;
    default: v = (int64_t)raw; break;
    }
    /* A signed encoding of a non-negative number is still a UINT to us. */
    if (v >= 0) {
        o->type = TKV_MP_UINT;
        o->v.u = (uint64_t)v;
    } else {
        o->type = TKV_MP_INT;
        o->v.i = v;
    }
    return 0;
}

static int take_float(tkv_mp *m, tkv_mp_obj *o, unsigned width)
{
    uint64_t raw;
    int rc = take_fixed(m, width, &raw);
    if (rc < 0)
        return rc;
    o->type = TKV_MP_FLOAT;
    if (width == 4) {
        uint32_t r32 = (uint32_t)raw;
        float f;
        memcpy(&f, &r32, sizeof f);
        o->v.f = f;
    } else {
        memcpy(&o->v.f, &raw, sizeof o->v.f);
    }
    return 0;
}

static int take_ext(tkv_mp *m, tkv_mp_obj *o, uint32_t len)
{
    if (tkv_mp_left(m) < 1)
        return TKV_MP_ETRUNC;
    o->ext_type = (int8_t)m->p[0];
    m->p++;
    return take_bytes(m, o, TKV_MP_EXT, len);
}

static int take_sized(tkv_mp *m, tkv_mp_obj *o, tkv_mp_type t, unsigned width)
{
    uint32_t n;
    int rc = take_len(m, width, &n);
    if (rc < 0)
        return rc;
    switch (t) {
    case TKV_MP_ARRAY:
    case TKV_MP_MAP: return take_container(m, o, t, n);
    case TKV_MP_EXT: return take_ext(m, o, n);
    default: return take_bytes(m, o, t, n);
    }
}

int tkv_mp_next(tkv_mp *m, tkv_mp_obj *o)
{
    if (m->p >= m->end)
        return TKV_MP_ETRUNC;
    uint8_t c = *m->p++;
    if (c <= 0x7f) {
        o->type = TKV_MP_UINT;
        o->v.u = c;
        return 0;
    }
    if (c >= 0xe0) {
        o->type = TKV_MP_INT;
        o->v.i = (int8_t)c;
        return 0;
    }
    if (c <= 0x8f)
        return take_container(m, o, TKV_MP_MAP, c & 0x0f);
    if (c <= 0x9f)
        return take_container(m, o, TKV_MP_ARRAY, c & 0x0f);
    if (c <= 0xbf)
        return take_bytes(m, o, TKV_MP_STR, c & 0x1f);
    switch (c) {
    case 0xc0: o->type = TKV_MP_NIL; return 0;
    case 0xc2:
    case 0xc3:
        o->type = TKV_MP_BOOL;
        o->v.b = c == 0xc3;
        return 0;
    case 0xc4: return take_sized(m, o, TKV_MP_BIN, 1);
    case 0xc5: return take_sized(m, o, TKV_MP_BIN, 2);
    case 0xc6: return take_sized(m, o, TKV_MP_BIN, 4);
    case 0xc7: return take_sized(m, o, TKV_MP_EXT, 1);
    case 0xc8: return take_sized(m, o, TKV_MP_EXT, 2);
    case 0xc9: return take_sized(m, o, TKV_MP_EXT, 4);
    case 0xca: return take_float(m, o, 4);
    case 0xcb: return take_float(m, o, 8);
    case 0xcc: return take_uint(m, o, 1);
    case 0xcd: return take_uint(m, o, 2);
    case 0xce: return take_uint(m, o, 4);
    case 0xcf: return take_uint(m, o, 8);
    case 0xd0: return take_sint(m, o, 1);
    case 0xd1: return take_sint(m, o, 2);
    case 0xd2: return take_sint(m, o, 4);
    case 0xd3: return take_sint(m, o, 8);
    case 0xd4: return take_ext(m, o, 1);
    case 0xd5: return take_ext(m, o, 2);
    case 0xd6: return take_ext(m, o, 4);
    case 0xd7: return take_ext(m, o, 8);
    case 0xd8: return take_ext(m, o, 16);
    case 0xd9: return take_sized(m, o, TKV_MP_STR, 1);
    case 0xda: return take_sized(m, o, TKV_MP_STR, 2);
    case 0xdb: return take_sized(m, o, TKV_MP_STR, 4);
    case 0xdc: return take_sized(m, o, TKV_MP_ARRAY, 2);
    case 0xdd: return take_sized(m, o, TKV_MP_ARRAY, 4);
    case 0xde: return take_sized(m, o, TKV_MP_MAP, 2);
    case 0xdf: return take_sized(m, o, TKV_MP_MAP, 4);
    default: return TKV_MP_EINVAL; /* 0xc1 is never used */
    }
}

int tkv_mp_peek(const tkv_mp *m, tkv_mp_type *t)
{
    tkv_mp copy = *m;
    tkv_mp_obj o;
    int rc = tkv_mp_next(&copy, &o);
    if (rc == 0)
        *t = o.type;
    return rc;
}

int tkv_mp_skip(tkv_mp *m)
{
    /* Elements still to visit. Every count was checked against the bytes
     * left, so this stays below the input size and cannot overflow. */
    uint64_t pending = 1;
    while (pending > 0) {
        tkv_mp_obj o;
        int rc = tkv_mp_next(m, &o);
        if (rc < 0)
            return rc;
        pending--;
        if (o.type == TKV_MP_ARRAY)
            pending += o.v.count;
        else if (o.type == TKV_MP_MAP)
            pending += (uint64_t)o.v.count * 2;
        if (pending > tkv_mp_left(m))
            return TKV_MP_ETRUNC;
    }
    return 0;
}

int tkv_mp_validate(const void *p, size_t n)
{
    tkv_mp m;
    tkv_mp_init(&m, p, n);
    int rc = tkv_mp_skip(&m);
    if (rc < 0)
        return rc;
    return m.p == m.end ? 0 : TKV_MP_ETRUNC;
}

/* Reads the next header and accepts it only if it has type t. On any
 * failure the cursor stays where it was. */
static int read_typed(tkv_mp *m, tkv_mp_obj *o, tkv_mp_type t)
{
    tkv_mp save = *m;
    int rc = tkv_mp_next(m, o);
    if (rc < 0) {
        *m = save;
        return rc;
    }
    if (o->type != t) {
        *m = save;
        return TKV_MP_ETYPE;
    }
    return 0;
}

int tkv_mp_read_array_slow(tkv_mp *m, uint32_t *count)
{
    tkv_mp_obj o;
    int rc = read_typed(m, &o, TKV_MP_ARRAY);
    if (rc == 0)
        *count = o.v.count;
    return rc;
}

int tkv_mp_read_map(tkv_mp *m, uint32_t *pairs)
{
    tkv_mp_obj o;
    int rc = read_typed(m, &o, TKV_MP_MAP);
    if (rc == 0)
        *pairs = o.v.count;
    return rc;
}

int tkv_mp_read_uint_slow(tkv_mp *m, uint64_t *u)
{
    tkv_mp_obj o;
    int rc = read_typed(m, &o, TKV_MP_UINT);
    if (rc == 0)
        *u = o.v.u;
    return rc;
}

int tkv_mp_read_int(tkv_mp *m, int64_t *i)
{
    tkv_mp save = *m;
    tkv_mp_obj o;
    int rc = tkv_mp_next(m, &o);
    if (rc < 0) {
        *m = save;
        return rc;
    }
    if (o.type == TKV_MP_INT) {
        *i = o.v.i;
        return 0;
    }
    if (o.type == TKV_MP_UINT && o.v.u <= INT64_MAX) {
        *i = (int64_t)o.v.u;
        return 0;
    }
    *m = save;
    return TKV_MP_ETYPE;
}

int tkv_mp_read_bool(tkv_mp *m, bool *b)
{
    tkv_mp_obj o;
    int rc = read_typed(m, &o, TKV_MP_BOOL);
    if (rc == 0)
        *b = o.v.b;
    return rc;
}

int tkv_mp_read_bytes_slow(tkv_mp *m, const uint8_t **p, uint32_t *len)
{
    tkv_mp save = *m;
    tkv_mp_obj o;
    int rc = tkv_mp_next(m, &o);
    if (rc < 0) {
        *m = save;
        return rc;
    }
    if (o.type != TKV_MP_STR && o.type != TKV_MP_BIN) {
        *m = save;
        return TKV_MP_ETYPE;
    }
    *p = o.v.bytes.ptr;
    *len = o.v.bytes.len;
    return 0;
}

bool tkv_mp_read_nil(tkv_mp *m)
{
    if (m->p < m->end && *m->p == 0xc0) {
        m->p++;
        return true;
    }
    return false;
}
