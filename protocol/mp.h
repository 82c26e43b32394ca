/*
 * mp.h - an in-place, bounds-checked MessagePack reader.
 *
 * The reader walks a buffer it does not own and never allocates: strings and
 * binaries come back as pointers into that buffer. Every declared length or
 * element count is checked against the bytes that remain before it is
 * reported, so a five-byte array header that claims four billion elements is
 * rejected on the spot instead of driving an allocation (msgpack-c's own
 * unpacker allocates from such counts first; tkv never feeds it unchecked
 * input).
 *
 * Conventions: functions return 0 on success or a negative TKV_MP_E* code.
 * The typed readers (tkv_mp_read_*) never move the cursor when they fail,
 * so a caller may try another type; after tkv_mp_next() or tkv_mp_skip()
 * fail the input is malformed and the cursor is undefined.
 */
#ifndef TKV_MP_H
#define TKV_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TKV_MP_ETYPE = -1,  /* well-formed, but not the type asked for */
    TKV_MP_ETRUNC = -2, /* truncated, or a declared size exceeds the input */
    TKV_MP_EINVAL = -3, /* the never-used byte 0xc1 */
};

typedef enum tkv_mp_type {
    TKV_MP_NIL,
    TKV_MP_BOOL,
    TKV_MP_UINT,  /* non-negative integer, any width */
    TKV_MP_INT,   /* negative integer */
    TKV_MP_FLOAT, /* float 32 or float 64, widened */
    TKV_MP_STR,
    TKV_MP_BIN,
    TKV_MP_ARRAY,
    TKV_MP_MAP,
    TKV_MP_EXT,
} tkv_mp_type;

/* One decoded header. Containers report only their count: their elements
 * follow in the stream and are read with further calls. */
typedef struct tkv_mp_obj {
    tkv_mp_type type;
    union {
        bool b;
        uint64_t u;
        int64_t i;
        double f;
        uint32_t count; /* ARRAY, MAP (pairs) */
        struct {
            const uint8_t *ptr;
            uint32_t len;
        } bytes; /* STR, BIN, EXT */
    } v;
    int8_t ext_type;
} tkv_mp_obj;

typedef struct tkv_mp {
    const uint8_t *p;   /* next byte to read */
    const uint8_t *end; /* one past the last byte */
} tkv_mp;

static inline void tkv_mp_init(tkv_mp *m, const void *p, size_t n)
{
    m->p = (const uint8_t *)p;
    m->end = m->p + n;
}

static inline size_t tkv_mp_left(const tkv_mp *m) { return (size_t)(m->end - m->p); }

/* Reads one header. Array counts are checked against the remaining bytes
 * (each element needs at least one), map counts likewise (two per pair). */
int tkv_mp_next(tkv_mp *m, tkv_mp_obj *o);

/* Peeks at the type of the next value without consuming it. */
int tkv_mp_peek(const tkv_mp *m, tkv_mp_type *t);

/* Skips one complete value, containers included, without recursion. */
int tkv_mp_skip(tkv_mp *m);

/* Returns 0 if [p, p+n) holds exactly one complete, well-formed value. */
int tkv_mp_validate(const void *p, size_t n);

/* Typed readers. Each returns TKV_MP_ETYPE without moving on a type
 * mismatch. The common encodings are decoded inline; the rest goes through
 * tkv_mp_next(). */
int tkv_mp_read_map(tkv_mp *m, uint32_t *pairs);
int tkv_mp_read_int(tkv_mp *m, int64_t *i); /* any integer fitting int64 */
int tkv_mp_read_bool(tkv_mp *m, bool *b);
int tkv_mp_read_array_slow(tkv_mp *m, uint32_t *count);
int tkv_mp_read_uint_slow(tkv_mp *m, uint64_t *u);
int tkv_mp_read_bytes_slow(tkv_mp *m, const uint8_t **p, uint32_t *len);

static inline int tkv_mp_read_array(tkv_mp *m, uint32_t *count)
{
    /* fixarray: its count is at most 15, each element takes a byte */
    if (m->p < m->end && (*m->p & 0xf0) == 0x90 && (size_t)(*m->p & 0x0f) < tkv_mp_left(m)) {
        *count = *m->p++ & 0x0f;
        return 0;
    }
    return tkv_mp_read_array_slow(m, count);
}

static inline int tkv_mp_read_uint(tkv_mp *m, uint64_t *u)
{
    if (m->p < m->end && *m->p <= 0x7f) {
        *u = *m->p++;
        return 0;
    }
    return tkv_mp_read_uint_slow(m, u);
}

/* STR or BIN: both are byte strings to tkv. */
static inline int tkv_mp_read_bytes(tkv_mp *m, const uint8_t **p, uint32_t *len)
{
    size_t left = tkv_mp_left(m);
    if (left >= 1 && (*m->p & 0xe0) == 0xa0 && (size_t)(*m->p & 0x1f) < left) { /* fixstr */
        *len = *m->p & 0x1f;
        *p = m->p + 1;
        m->p += 1 + *len;
        return 0;
    }
    if (left >= 2 && *m->p == 0xc4 && (size_t)m->p[1] <= left - 2) { /* bin 8 */
        *len = m->p[1];
        *p = m->p + 2;
        m->p += 2 + *len;
        return 0;
    }
    return tkv_mp_read_bytes_slow(m, p, len);
}
/* Consumes a nil and returns true, or returns false without moving. */
bool tkv_mp_read_nil(tkv_mp *m);

#endif
