/*
 * fuzz_watch.c - libFuzzer target for the change feed's decoding: a
 * committed batch's "B" frame into changes (server/changes.c) and the
 * push frames (protocol/watch.c).
 *
 * The input's first byte picks a filter (bit 0: an as-of watch; bits 1-3:
 * the prefix length, taken from the next bytes; the byte after them: T);
 * the rest is a "B" frame's payload. Whatever tkv_changes_of_batch()
 * accepts must come out as well-formed pushes: each decodes, passes the
 * filter, carries the batch's end offset, and counts `left` down to 0;
 * whatever it refuses leaves the output as it was. Every push, cut at any
 * byte, is refused, and the raw input read as a push decodes only into
 * something that encodes and decodes back the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "changes.h"
#include "watch.h"

static void check_push(const uint8_t *p, size_t n, const tkv_wfilter *f, uint64_t end, long left)
{
    tkv_wchange c;
    if (tkv_watch_decode(p, n, &c) != 0 || !tkv_wfilter_match(f, &c) || c.offset != end ||
        c.left != (uint64_t)left)
        abort();
    for (size_t cut = 0; cut < n; cut += 1 + n / 16)
        if (tkv_watch_decode(p, cut, &c) != -1)
            abort();
}

static void same(const tkv_wchange *a, const tkv_wchange *b)
{
    if (a->kind != b->kind || a->offset != b->offset || a->left != b->left || a->klen != b->klen ||
        memcmp(a->key, b->key, a->klen) != 0 || a->ts != b->ts || a->expires != b->expires ||
        (a->value == NULL) != (b->value == NULL) || a->vlen != b->vlen ||
        (a->vlen && memcmp(a->value, b->value, a->vlen) != 0) || a->horizon != b->horizon ||
        a->keep_versions != b->keep_versions || a->keep_age != b->keep_age)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    tkv_wfilter f = {.asof = data[0] & 1, .plen = (data[0] >> 1) & 7};
    if (size < 2 + f.plen)
        return 0;
    f.prefix = data + 1;
    f.at = data[1 + f.plen];
    if (f.asof && f.plen == 0)
        f.asof = false;
    const uint8_t *p = data + 2 + f.plen;
    size_t n = size - 2 - f.plen;

    tkv_buf scratch = {0}, out = {0};
    uint64_t end = 0;
    long k = tkv_changes_of_batch(p, n, &f, &scratch, &out, &end);
    if (k < 0 && out.len != 0)
        abort();
    size_t at = 0;
    for (long i = 0; i < k; i++) {
        if (out.len - at < 4)
            abort();
        uint32_t len = tkv_load_be32(out.data + at);
        if (len > out.len - at - 4)
            abort();
        check_push(out.data + at + 4, len, &f, end, k - 1 - i);
        at += 4 + len;
    }
    if (at != out.len)
        abort();

    tkv_wchange c, back;
    if (tkv_watch_decode(p, n, &c) == 0) {
        tkv_buf b = {0};
        if (tkv_watch_put(&b, &c) != 0 || tkv_watch_decode(b.data + 4, b.len - 4, &back) != 0)
            abort();
        same(&c, &back);
        tkv_buf_deinit(&b);
    }
    tkv_buf_deinit(&scratch);
    tkv_buf_deinit(&out);
    return 0;
}
