/*
 * test_frame.c - the incremental frame reader: byte-at-a-time delivery,
 * many frames per feed, the direct-read path, oversize and truncated input.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

static size_t make_frames(uint8_t *out, int count, size_t *sizes)
{
    size_t n = 0;
    for (int i = 0; i < count; i++) {
        tkv_frame_put_header(out + n, (uint32_t)sizes[i]);
        n += 4;
        for (size_t k = 0; k < sizes[i]; k++)
            out[n++] = (uint8_t)(i * 31 + k);
    }
    return n;
}

static void expect_frame(tkv_frame_reader *r, int i, size_t size)
{
    const uint8_t *f;
    size_t len;
    cr_assert_eq(tkv_frame_reader_next(r, &f, &len), TKV_FRAME_OK, "frame %d missing", i);
    cr_assert_eq(len, size, "frame %d has %zu bytes, want %zu", i, len, size);
    for (size_t k = 0; k < size; k++)
        cr_assert_eq(f[k], (uint8_t)(i * 31 + k), "frame %d byte %zu differs", i, k);
}

Test(frame, one_byte_at_a_time)
{
    size_t sizes[] = {0, 1, 5, 300, 70000, 2};
    uint8_t *buf = malloc(80000);
    size_t n = make_frames(buf, 6, sizes);
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, 1 << 20);
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(tkv_frame_reader_feed(&r, buf + i, 1), 0);
        const uint8_t *f;
        size_t len;
        int rc;
        while ((rc = tkv_frame_reader_next(&r, &f, &len)) == TKV_FRAME_OK) {
            cr_assert_eq(len, sizes[got]);
            for (size_t k = 0; k < len; k++)
                cr_assert_eq(f[k], (uint8_t)(got * 31 + k));
            got++;
        }
        cr_assert_eq(rc, TKV_FRAME_AGAIN);
    }
    cr_assert_eq(got, 6);
    cr_assert_eq(tkv_frame_reader_pending(&r), 0);
    tkv_frame_reader_deinit(&r);
    free(buf);
}

Test(frame, many_frames_in_one_feed)
{
    size_t sizes[200];
    for (int i = 0; i < 200; i++)
        sizes[i] = (size_t)(i % 17) * 3;
    uint8_t *buf = malloc(200 * 60);
    size_t n = make_frames(buf, 200, sizes);
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, 1024);
    cr_assert_eq(tkv_frame_reader_feed(&r, buf, n), 0);
    for (int i = 0; i < 200; i++)
        expect_frame(&r, i, sizes[i]);
    const uint8_t *f;
    size_t len;
    cr_assert_eq(tkv_frame_reader_next(&r, &f, &len), TKV_FRAME_AGAIN);
    tkv_frame_reader_deinit(&r);
    free(buf);
}

Test(frame, direct_reads_in_random_chunks)
{
    size_t sizes[64];
    srand(7);
    size_t total = 0;
    for (int i = 0; i < 64; i++) {
        sizes[i] = (size_t)(rand() % 9000);
        total += sizes[i] + 4;
    }
    uint8_t *buf = malloc(total);
    size_t n = make_frames(buf, 64, sizes);
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, 16384);
    size_t at = 0;
    int got = 0;
    while (at < n) {
        uint8_t *p;
        size_t avail;
        cr_assert_eq(tkv_frame_reader_space(&r, 1 + (size_t)(rand() % 5000), &p, &avail), 0);
        cr_assert_gt(avail, 0);
        size_t k = 1 + (size_t)rand() % 7000;
        if (k > avail)
            k = avail;
        if (k > n - at)
            k = n - at;
        memcpy(p, buf + at, k);
        tkv_frame_reader_commit(&r, k);
        at += k;
        const uint8_t *f;
        size_t len;
        while (tkv_frame_reader_next(&r, &f, &len) == TKV_FRAME_OK) {
            cr_assert_eq(len, sizes[got]);
            cr_assert(len == 0 || f[len - 1] == (uint8_t)(got * 31 + len - 1));
            got++;
        }
    }
    cr_assert_eq(got, 64);
    /* The buffer never grew past one frame's limit plus a read's worth. */
    cr_assert_leq(r.cap, 16384 + 4 + 64 * 1024);
    tkv_frame_reader_deinit(&r);
    free(buf);
}

Test(frame, oversize_length_is_refused_before_allocation)
{
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, 1000);
    uint8_t hdr[4];
    tkv_frame_put_header(hdr, 1001);
    cr_assert_eq(tkv_frame_reader_feed(&r, hdr, 4), 0);
    const uint8_t *f;
    size_t len;
    cr_assert_eq(tkv_frame_reader_next(&r, &f, &len), TKV_FRAME_ETOOBIG);
    cr_assert_eq(r.bad_len, 1001);
    /* Sticky: the stream cannot be resynchronised. */
    cr_assert_eq(tkv_frame_reader_next(&r, &f, &len), TKV_FRAME_ETOOBIG);
    cr_assert_leq(r.cap, 4096);
    tkv_frame_reader_deinit(&r);
}

Test(frame, huge_declared_length_grows_with_received_bytes_only)
{
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, 64u << 20);
    uint8_t hdr[5];
    tkv_frame_put_header(hdr, 60u << 20);
    hdr[4] = 0x90;
    cr_assert_eq(tkv_frame_reader_feed(&r, hdr, 5), 0);
    const uint8_t *f;
    size_t len;
    cr_assert_eq(tkv_frame_reader_next(&r, &f, &len), TKV_FRAME_AGAIN);
    uint8_t *p;
    size_t avail;
    cr_assert_eq(tkv_frame_reader_space(&r, 4096, &p, &avail), 0);
    cr_assert_lt(r.cap, 1u << 20, "buffer of %zu bytes for 5 received", r.cap);
    tkv_frame_reader_deinit(&r);
}

Test(frame, truncated_frame_stays_pending)
{
    size_t sizes[] = {10};
    uint8_t buf[14];
    make_frames(buf, 1, sizes);
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, 100);
    cr_assert_eq(tkv_frame_reader_feed(&r, buf, 13), 0);
    const uint8_t *f;
    size_t len;
    cr_assert_eq(tkv_frame_reader_next(&r, &f, &len), TKV_FRAME_AGAIN);
    cr_assert_eq(tkv_frame_reader_pending(&r), 13);
    cr_assert_eq(tkv_frame_reader_feed(&r, buf + 13, 1), 0);
    expect_frame(&r, 0, 10);
    tkv_frame_reader_shrink(&r, 0);
    cr_assert_null(r.buf);
    tkv_frame_reader_deinit(&r);
}

Test(frame, peek_looks_ahead_without_consuming)
{
    size_t sizes[] = {3, 0, 40, 7};
    uint8_t buf[128];
    size_t n = make_frames(buf, 4, sizes);
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, 1 << 10);
    /* All but the last byte: three whole frames and a partial one. */
    cr_assert_eq(tkv_frame_reader_feed(&r, buf, n - 1), 0);
    const uint8_t *f;
    size_t len, pos = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tkv_frame_reader_peek(&r, &pos, &f, &len), TKV_FRAME_OK, "frame %d", i);
        cr_assert_eq(len, sizes[i]);
        if (len)
            cr_assert_eq(f[0], (uint8_t)(i * 31));
    }
    cr_assert_eq(tkv_frame_reader_peek(&r, &pos, &f, &len), TKV_FRAME_AGAIN,
                 "the last frame is one byte short");
    /* Peeking consumed nothing: next() returns the same frames, in order. */
    for (int i = 0; i < 3; i++)
        expect_frame(&r, i, sizes[i]);
    cr_assert_eq(tkv_frame_reader_feed(&r, buf + n - 1, 1), 0);
    pos = 0;
    cr_assert_eq(tkv_frame_reader_peek(&r, &pos, &f, &len), TKV_FRAME_OK);
    cr_assert_eq(len, 7);
    expect_frame(&r, 3, 7);
    tkv_frame_reader_deinit(&r);
}

Test(frame, peek_leaves_an_oversize_length_to_next)
{
    uint8_t buf[8];
    tkv_frame_put_header(buf, 1000);
    tkv_frame_reader r;
    tkv_frame_reader_init(&r, 100);
    cr_assert_eq(tkv_frame_reader_feed(&r, buf, 4), 0);
    const uint8_t *f;
    size_t len, pos = 0;
    cr_assert_eq(tkv_frame_reader_peek(&r, &pos, &f, &len), TKV_FRAME_AGAIN);
    cr_assert_eq(pos, 0);
    cr_assert_eq(tkv_frame_reader_next(&r, &f, &len), TKV_FRAME_ETOOBIG);
    cr_assert_eq(tkv_frame_reader_peek(&r, &pos, &f, &len), TKV_FRAME_AGAIN);
    tkv_frame_reader_deinit(&r);
}
