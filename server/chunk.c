/*
 * chunk.c - the chunk record format of chunk.h.
 */
#include "chunk.h"

#include <string.h>

#include "varint.h"

bool tkv_chunk_is_version_prefix(const uint8_t *p, size_t n)
{
    /* 'v', the escaped key, 0x00 0x01; inside the escaped key every 0x00
     * is followed by 0xff. Only a prefix and 8 bytes of ~ts name a chunk:
     * any other key that starts with a version prefix would sort among the
     * chunk's versions, so the engine never writes one (keycodec.h). */
    if (n < 3 || p[0] != 'v' || p[n - 2] != 0x00 || p[n - 1] != 0x01)
        return false;
    const uint8_t *x = p + 1, *end = p + n - 2;
    while (x < end && (x = memchr(x, 0, (size_t)(end - x))) != NULL) {
        if (x + 1 >= end || x[1] != 0xff)
            return false;
        x += 2;
    }
    return true;
}

bool tkv_chunk_is_version(const uint8_t *rec, size_t n)
{
    return n >= 11 && tkv_chunk_is_version_prefix(rec, n - 8);
}

long tkv_chunk_decode(const uint8_t *v, size_t n, uint64_t oldest, tkv_chunk_ent *ents)
{
    if (n == 0 || v[0] != TKV_CHUNK_MAGIC) {
        /* A version record from before chunks: its value is the blob. */
        ents[0] = (tkv_chunk_ent){.ts = oldest, .blob = v, .len = (uint32_t)n};
        return n <= UINT32_MAX ? 1 : -1;
    }
    const uint8_t *p = v + 1, *end = v + n;
    uint64_t count;
    if (!(p = tkv_varint_get(p, end, &count)) || count == 0 || count > TKV_CHUNK_DECODE_MAX)
        return -1;
    uint64_t ts = oldest;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t gap, len;
        if (!(p = tkv_varint_get(p, end, &gap)) || !(p = tkv_varint_get(p, end, &len)))
            return -1;
        if ((i == 0) != (gap == 0) || ts + gap < ts || len > (uint64_t)(end - p))
            return -1;
        ts += gap;
        /* Oldest first in the record, newest first in ents. */
        ents[count - 1 - i] = (tkv_chunk_ent){.ts = ts, .blob = p, .len = (uint32_t)len};
        p += len;
    }
    return p == end ? (long)count : -1;
}

int tkv_chunk_encode(tkv_buf *out, const tkv_chunk_ent *ents, size_t n)
{
    size_t need = 1 + 10;
    for (size_t i = 0; i < n; i++)
        need += 20 + ents[i].len;
    if (tkv_buf_reserve(out, need) < 0)
        return -1;
    uint8_t *p = out->data + out->len;
    size_t o = 0;
    p[o++] = TKV_CHUNK_MAGIC;
    o += tkv_varint_put(p + o, n);
    for (size_t i = n; i-- > 0;) {
        uint64_t gap = i == n - 1 ? 0 : ents[i].ts - ents[i + 1].ts;
        o += tkv_varint_put(p + o, gap);
        o += tkv_varint_put(p + o, ents[i].len);
        if (ents[i].len)
            memcpy(p + o, ents[i].blob, ents[i].len);
        o += ents[i].len;
    }
    out->len += o;
    return 0;
}
