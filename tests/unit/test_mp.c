/*
 * test_mp.c - the in-place MessagePack reader, checked against msgpack-c on
 * random documents, and against hostile headers that declare more than the
 * input holds.
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void pack_random(msgpack_packer *pk, int depth)
{
    static const char bytes[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    int kind = (int)(rnd() % (depth > 3 ? 9 : 11));
    switch (kind) {
    case 0: msgpack_pack_nil(pk); break;
    case 1: rnd() & 1 ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case 2: msgpack_pack_uint64(pk, rnd() >> (rnd() % 64)); break;
    case 3: msgpack_pack_int64(pk, -(int64_t)(rnd() >> (1 + rnd() % 63)) - 1); break;
    case 4: msgpack_pack_double(pk, (double)(rnd() % 1000) / 7.0); break;
    case 5: msgpack_pack_float(pk, (float)(rnd() % 1000) / 3.0f); break;
    case 6: {
        size_t n = rnd() % 3 == 0 ? 300 + rnd() % 70000 : rnd() % 40;
        char *s = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            s[i] = bytes[rnd() % 36];
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, s, n);
        free(s);
        break;
    }
    case 7: {
        size_t n = rnd() % 300;
        msgpack_pack_bin(pk, n);
        char *b = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            b[i] = (char)rnd();
        msgpack_pack_bin_body(pk, b, n);
        free(b);
        break;
    }
    case 8: {
        size_t n = rnd() % 20;
        char b[20];
        msgpack_pack_ext(pk, n, (int8_t)(rnd() % 100));
        msgpack_pack_ext_body(pk, b, n);
        break;
    }
    case 9: {
        uint32_t n = (uint32_t)(rnd() % (rnd() % 4 == 0 ? 40 : 5));
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++)
            pack_random(pk, depth + 1);
        break;
    }
    default: {
        uint32_t n = (uint32_t)(rnd() % 5);
        msgpack_pack_map(pk, n);
        for (uint32_t i = 0; i < 2 * n; i++)
            pack_random(pk, depth + 1);
        break;
    }
    }
}

/* Walks our reader alongside msgpack-c's object tree. */
static void compare(tkv_mp *m, const msgpack_object *o)
{
    tkv_mp_obj x;
    cr_assert_eq(tkv_mp_next(m, &x), 0);
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: cr_assert_eq(x.type, TKV_MP_NIL); break;
    case MSGPACK_OBJECT_BOOLEAN:
        cr_assert_eq(x.type, TKV_MP_BOOL);
        cr_assert_eq(x.v.b, o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        cr_assert_eq(x.type, TKV_MP_UINT);
        cr_assert_eq(x.v.u, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        cr_assert_eq(x.type, TKV_MP_INT);
        cr_assert_eq(x.v.i, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        cr_assert_eq(x.type, TKV_MP_FLOAT);
        cr_assert_float_eq(x.v.f, o->via.f64, 1e-9);
        break;
    case MSGPACK_OBJECT_STR:
        cr_assert_eq(x.type, TKV_MP_STR);
        cr_assert_eq(x.v.bytes.len, o->via.str.size);
        cr_assert(o->via.str.size == 0 ||
                  memcmp(x.v.bytes.ptr, o->via.str.ptr, o->via.str.size) == 0);
        break;
    case MSGPACK_OBJECT_BIN:
        cr_assert_eq(x.type, TKV_MP_BIN);
        cr_assert_eq(x.v.bytes.len, o->via.bin.size);
        cr_assert(o->via.bin.size == 0 ||
                  memcmp(x.v.bytes.ptr, o->via.bin.ptr, o->via.bin.size) == 0);
        break;
    case MSGPACK_OBJECT_EXT:
        cr_assert_eq(x.type, TKV_MP_EXT);
        cr_assert_eq(x.ext_type, o->via.ext.type);
        cr_assert_eq(x.v.bytes.len, o->via.ext.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        cr_assert_eq(x.type, TKV_MP_ARRAY);
        cr_assert_eq(x.v.count, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            compare(m, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        cr_assert_eq(x.type, TKV_MP_MAP);
        cr_assert_eq(x.v.count, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            compare(m, &o->via.map.ptr[i].key);
            compare(m, &o->via.map.ptr[i].val);
        }
        break;
    }
}

Test(mp, agrees_with_msgpack_c_on_random_documents)
{
    for (int iter = 0; iter < 2000; iter++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_random(&pk, 0);
        cr_assert_eq(tkv_mp_validate(sb.data, sb.size), 0, "document %d rejected", iter);
        msgpack_zone zone;
        msgpack_zone_init(&zone, 4096);
        msgpack_object obj;
        size_t off = 0;
        cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
        tkv_mp m;
        tkv_mp_init(&m, sb.data, sb.size);
        compare(&m, &obj);
        cr_assert_eq(tkv_mp_left(&m), 0);
        /* Every strict prefix is incomplete, and is reported as such. */
        size_t cut = sb.size > 1 ? rnd() % sb.size : 0;
        cr_assert_neq(tkv_mp_validate(sb.data, cut), 0, "prefix of %zu bytes accepted", cut);
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(&sb);
    }
}

Test(mp, declared_counts_beyond_the_input_are_rejected)
{
    static const uint8_t bombs[][9] = {
        {5, 0xdd, 0xff, 0xff, 0xff, 0xff},       /* array32 of 4G elements */
        {5, 0xdf, 0xff, 0xff, 0xff, 0xff},       /* map32 of 4G pairs */
        {5, 0xc6, 0xff, 0xff, 0xff, 0xff},       /* bin32 of 4 GiB */
        {5, 0xdb, 0x7f, 0xff, 0xff, 0xff},       /* str32 */
        {6, 0xc9, 0x00, 0x10, 0x00, 0x00, 0x01}, /* ext32 */
        {3, 0xdc, 0x00, 0x03},                   /* array16 of 3, nothing after */
        {4, 0x92, 0x01, 0xde, 0x00},             /* truncated map16 header */
        {1, 0xc1},                               /* never used */
        {2, 0x9f, 0x01},                         /* fixarray of 15, one element */
    };
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        const uint8_t *b = bombs[i] + 1;
        size_t n = bombs[i][0];
        cr_assert_neq(tkv_mp_validate(b, n), 0, "bomb %zu accepted", i);
        tkv_mp m;
        tkv_mp_init(&m, b, n);
        tkv_mp_obj o;
        int rc = tkv_mp_next(&m, &o);
        if (i < 5)
            cr_assert_eq(rc, TKV_MP_ETRUNC, "bomb %zu header accepted", i);
    }
}

Test(mp, map_count_needs_two_bytes_per_pair)
{
    /* fixmap of 2 pairs with 3 bytes left: one pair cannot be complete. */
    const uint8_t b[] = {0x82, 0x01, 0x02, 0x03};
    tkv_mp m;
    tkv_mp_init(&m, b, sizeof b);
    tkv_mp_obj o;
    cr_assert_eq(tkv_mp_next(&m, &o), TKV_MP_ETRUNC);
}

Test(mp, typed_readers_do_not_move_on_mismatch)
{
    const uint8_t b[] = {0xa3, 'a', 'b', 'c', 0xd0, 0xfe, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xc0};
    tkv_mp m;
    tkv_mp_init(&m, b, sizeof b);
    uint64_t u;
    cr_assert_eq(tkv_mp_read_uint(&m, &u), TKV_MP_ETYPE);
    cr_assert_eq(m.p, b);
    const uint8_t *p;
    uint32_t len;
    cr_assert_eq(tkv_mp_read_bytes(&m, &p, &len), 0);
    cr_assert_eq(len, 3);
    cr_assert_eq(tkv_mp_read_uint(&m, &u), TKV_MP_ETYPE, "negative int read as unsigned");
    int64_t i;
    cr_assert_eq(tkv_mp_read_int(&m, &i), 0);
    cr_assert_eq(i, -2);
    cr_assert_eq(tkv_mp_read_uint(&m, &u), 0);
    cr_assert_eq(u, 5);
    cr_assert(tkv_mp_read_nil(&m));
    cr_assert_eq(tkv_mp_left(&m), 0);
    cr_assert_eq(tkv_mp_next(&m, &(tkv_mp_obj){0}), TKV_MP_ETRUNC);
}

Test(mp, typed_readers_do_not_move_on_truncation)
{
    /* uint64, str8, bin16 and array16 headers, each cut short. */
    static const uint8_t cut[][4] = {
        {3, 0xcf, 0x00, 0x01}, {3, 0xd9, 0x05, 'a'}, {3, 0xc5, 0x00, 0x09}, {2, 0xdc, 0x00}};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        tkv_mp m;
        tkv_mp_init(&m, cut[i] + 1, cut[i][0]);
        uint64_t u;
        const uint8_t *p;
        uint32_t n;
        int64_t s;
        cr_assert_lt(tkv_mp_read_uint(&m, &u), 0);
        cr_assert_eq(m.p, cut[i] + 1, "case %zu: read_uint moved", i);
        cr_assert_lt(tkv_mp_read_bytes(&m, &p, &n), 0);
        cr_assert_eq(m.p, cut[i] + 1, "case %zu: read_bytes moved", i);
        cr_assert_lt(tkv_mp_read_array(&m, &n), 0);
        cr_assert_eq(m.p, cut[i] + 1, "case %zu: read_array moved", i);
        cr_assert_lt(tkv_mp_read_int(&m, &s), 0);
        cr_assert_eq(m.p, cut[i] + 1, "case %zu: read_int moved", i);
    }
}
