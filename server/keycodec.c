/*
 * keycodec.c - implements the order-preserving version encoding of
 * keycodec.h.
 */
#include "keycodec.h"

#include <string.h>

#include "byteorder.h"

size_t tkv_kc_prefix(uint8_t *out, const uint8_t *key, size_t klen)
{
    size_t n = 0;
    out[n++] = TKV_KC_VERSION;
    const uint8_t *zero;
    while (klen > 0 && (zero = memchr(key, 0, klen)) != NULL) {
        size_t run = (size_t)(zero - key);
        memcpy(out + n, key, run);
        n += run;
        out[n++] = 0x00;
        out[n++] = 0xff;
        key += run + 1;
        klen -= run + 1;
    }
    if (klen) /* the empty key may come as NULL */
        memcpy(out + n, key, klen);
    n += klen;
    out[n++] = 0x00;
    out[n++] = 0x01;
    return n;
}

size_t tkv_kc_meta(uint8_t *out, const uint8_t *key, size_t klen)
{
    size_t n = tkv_kc_prefix(out, key, klen);
    out[n - 1] = 0x00; /* the 0x00 0x01 terminator becomes 0x00 0x00 */
    return n;
}

size_t tkv_kc_with_ts(uint8_t *out, size_t plen, uint64_t ts)
{
    tkv_store_be64(out + plen, ~ts);
    return plen + 8;
}

size_t tkv_kc_encode(uint8_t *out, const uint8_t *key, size_t klen, uint64_t ts)
{
    return tkv_kc_with_ts(out, tkv_kc_prefix(out, key, klen), ts);
}

bool tkv_kc_match(const uint8_t *enc, size_t n, const uint8_t *prefix, size_t plen, uint64_t *ts)
{
    if (n != plen + 8 || memcmp(enc, prefix, plen) != 0)
        return false;
    *ts = ~tkv_load_be64(enc + plen);
    return true;
}

long tkv_kc_decode(const uint8_t *enc, size_t n, uint8_t *keyout, uint64_t *ts)
{
    if (n < 1 + 2 + 8 || enc[0] != TKV_KC_VERSION)
        return -1;
    size_t end = n - 8, k = 0;
    for (size_t i = 1; i < end; i++) {
        if (enc[i] != 0x00) {
            keyout[k++] = enc[i];
            continue;
        }
        if (i + 1 >= end)
            return -1;
        if (enc[i + 1] == 0xff) {
            keyout[k++] = 0x00;
            i++;
        } else if (enc[i + 1] == 0x01 && i + 2 == end) {
            *ts = ~tkv_load_be64(enc + end);
            return (long)k;
        } else {
            return -1;
        }
    }
    return -1;
}

long tkv_kc_decode_any(const uint8_t *enc, size_t n, uint8_t *keyout, bool *is_meta)
{
    if (n < 3 || enc[0] != TKV_KC_VERSION)
        return -1;
    size_t k = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (enc[i] != 0x00) {
            keyout[k++] = enc[i];
            continue;
        }
        uint8_t t = enc[i + 1];
        if (t == 0xff) {
            keyout[k++] = 0x00;
            i++;
        } else if (t == 0x00 && i + 2 == n) {
            *is_meta = true;
            return (long)k;
        } else if (t == 0x01 && i + 2 + 8 == n) {
            *is_meta = false;
            return (long)k;
        } else {
            return -1;
        }
    }
    return -1;
}

long tkv_kc_decode_prefix(const uint8_t *enc, size_t n, uint8_t *keyout)
{
    if (n < 3 || enc[0] != TKV_KC_VERSION || enc[n - 2] != 0x00 || enc[n - 1] != 0x01)
        return -1;
    size_t k = 0;
    for (size_t i = 1; i < n - 2; i++) {
        if (enc[i] != 0x00) {
            keyout[k++] = enc[i];
            continue;
        }
        if (i + 1 >= n - 2 || enc[i + 1] != 0xff)
            return -1;
        keyout[k++] = 0x00;
        i++;
    }
    return (long)k;
}
