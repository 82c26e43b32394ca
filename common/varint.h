/*
 * varint.h - unsigned LEB128 varints (7 bits a byte, low bits first, as
 * LevelDB's and Protocol Buffers'), for the store's log records and chunk
 * records.
 */
#ifndef TKV_VARINT_H
#define TKV_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes a 64-bit varint takes. */
#define TKV_VARINT_MAX 10

/* Writes v at out (room for TKV_VARINT_MAX); returns the bytes written. */
static inline size_t tkv_varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint from [p, end) into *out; returns the byte after it, or
 * NULL if it is cut short or longer than 64 bits allow. */
static inline const uint8_t *tkv_varint_get(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return p;
        }
    }
    return NULL;
}

#endif
