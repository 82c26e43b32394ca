/*
 * byteorder.h - big-endian loads and stores of 16, 32 and 64 bits.
 *
 * tkv's wire frames, MessagePack and its on-disk records are all
 * big-endian (most significant byte first), whatever the host. Byte-wise
 * shifts say so without alignment or host-order assumptions; compilers
 * turn them into one load or store plus a byte swap.
 *
 * Not named endian.h: this folder is on the include path, and glibc's own
 * headers include <endian.h>, which this file would then shadow.
 */
#ifndef TKV_BYTEORDER_H
#define TKV_BYTEORDER_H

#include <stdint.h>

static inline uint16_t tkv_load_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t tkv_load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t tkv_load_be64(const uint8_t *p)
{
    return (uint64_t)tkv_load_be32(p) << 32 | tkv_load_be32(p + 4);
}

static inline void tkv_store_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void tkv_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void tkv_store_be64(uint8_t *p, uint64_t v)
{
    tkv_store_be32(p, (uint32_t)(v >> 32));
    tkv_store_be32(p + 4, (uint32_t)v);
}

#endif
