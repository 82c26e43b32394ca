/*
 * test_etcd.c - etcd.h's I/O-free half: base64, prefix ranges, the JSON
 * bodies the calls send and the reading of etcd's range answers (taken
 * from a real etcd 3.4 gateway). The calls themselves meet a real etcd in
 * tests/integration/test_cluster_etcd.c.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"

static void roundtrip(const char *plain, size_t n, const char *b64)
{
    char *enc = tkv_etcd_b64_encode(plain, n);
    cr_assert_str_eq(enc, b64);
    size_t m;
    unsigned char *dec = tkv_etcd_b64_decode(enc, &m);
    cr_assert_not_null(dec);
    cr_assert_eq(m, n);
    cr_assert_eq(memcmp(dec, plain, n), 0);
    cr_assert_eq(dec[m], 0, "decoded text is NUL-terminated");
    free(enc);
    free(dec);
}

Test(etcd, base64_rfc4648_vectors)
{
    roundtrip("", 0, "");
    roundtrip("f", 1, "Zg==");
    roundtrip("fo", 2, "Zm8=");
    roundtrip("foo", 3, "Zm9v");
    roundtrip("foob", 4, "Zm9vYg==");
    roundtrip("fooba", 5, "Zm9vYmE=");
    roundtrip("foobar", 6, "Zm9vYmFy");
    roundtrip("\0\xff\xfe", 3, "AP/+");
}

Test(etcd, base64_every_byte)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t n = 0; n <= 256; n++) {
        char *enc = tkv_etcd_b64_encode(all, n);
        size_t m;
        unsigned char *dec = tkv_etcd_b64_decode(enc, &m);
        cr_assert_eq(m, n);
        cr_assert_eq(memcmp(dec, all, n), 0);
        free(enc);
        free(dec);
    }
}

Test(etcd, base64_refuses_garbage)
{
    size_t n;
    const char *bad[] = {"Zg", "Zg=", "Z===", "Zm9v!A==", "=Zm9", "Zg==Zg==", "Zm 9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_null(tkv_etcd_b64_decode(bad[i], &n), "%s", bad[i]);
}

Test(etcd, prefix_end)
{
    size_t n;
    unsigned char *e = tkv_etcd_prefix_end("/tkv/a/nodes/", 13, &n);
    cr_assert_eq(n, 13);
    cr_assert_eq(memcmp(e, "/tkv/a/nodes0", 13), 0);
    free(e);
    e = tkv_etcd_prefix_end("a\xff\xff", 3, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(e[0], 'b', "trailing 0xff bytes are dropped");
    free(e);
    e = tkv_etcd_prefix_end("\xff", 1, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(e[0], 0, "no end: to the end of the keyspace");
    free(e);
}

static json_t *load(char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    cr_assert_not_null(j, "%s", s);
    free(s);
    return j;
}

static const char *str(json_t *o, const char *path0, const char *path1)
{
    json_t *v = json_object_get(o, path0);
    if (path1)
        v = json_object_get(v, path1);
    return json_string_value(v);
}

Test(etcd, bodies)
{
    json_t *j = load(tkv_etcd_range_body("foo", 3, false));
    cr_assert_str_eq(str(j, "key", NULL), "Zm9v");
    cr_assert_null(json_object_get(j, "range_end"));
    json_decref(j);

    j = load(tkv_etcd_range_body("foo", 3, true));
    cr_assert_str_eq(str(j, "range_end", NULL), "Zm9w", "foo -> fop");
    json_decref(j);

    j = load(tkv_etcd_put_body("foo", 3, "bar", 3, 0));
    cr_assert_str_eq(str(j, "value", NULL), "YmFy");
    cr_assert_null(json_object_get(j, "lease"), "no lease: no field");
    json_decref(j);

    /* int64 as a string, as the gateway writes them: a double would round
     * a lease id above 2^53. */
    j = load(tkv_etcd_put_body("foo", 3, "", 0, 4111120369548697093LL));
    cr_assert_str_eq(str(j, "lease", NULL), "4111120369548697093");
    cr_assert_str_eq(str(j, "value", NULL), "");
    json_decref(j);
}

Test(etcd, cas_bodies)
{
    json_t *j = load(tkv_etcd_cas_body("m", 1, 0, "v", 1, 0));
    json_t *cmp = json_array_get(json_object_get(j, "compare"), 0);
    cr_assert_str_eq(str(cmp, "target", NULL), "VERSION", "create-if-absent compares version");
    cr_assert_str_eq(str(cmp, "version", NULL), "0");
    cr_assert_str_eq(str(cmp, "result", NULL), "EQUAL");
    json_t *put = json_array_get(json_object_get(j, "success"), 0);
    cr_assert_str_eq(str(put, "request_put", "key"), "bQ==");
    cr_assert_str_eq(str(put, "request_put", "value"), "dg==");
    json_decref(j);

    j = load(tkv_etcd_cas_body("m", 1, 42, "v", 1, 7));
    cmp = json_array_get(json_object_get(j, "compare"), 0);
    cr_assert_str_eq(str(cmp, "target", NULL), "MOD");
    cr_assert_str_eq(str(cmp, "mod_revision", NULL), "42");
    put = json_array_get(json_object_get(j, "success"), 0);
    cr_assert_str_eq(str(put, "request_put", "lease"), "7");
    json_decref(j);
}

/* Answers as etcd 3.4.23's gateway wrote them. */
static const char RANGE_TWO[] =
    "{\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":\"13668033151171901709\","
    "\"revision\":\"9\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\","
    "\"mod_revision\":\"7\",\"version\":\"3\",\"value\":\"YmFy\",\"lease\":"
    "\"4111120369548697093\"},{\"key\":\"Zm9w\",\"create_revision\":\"8\",\"mod_revision\":\"8\","
    "\"version\":\"1\"}],\"count\":\"2\"}";
static const char RANGE_NONE[] = "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\","
                                 "\"revision\":\"2\",\"raft_term\":\"2\"}}";

Test(etcd, parse_range)
{
    tkv_etcd_kvs kvs;
    char err[128];
    cr_assert_eq(tkv_etcd_parse_range(RANGE_TWO, strlen(RANGE_TWO), &kvs, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(kvs.revision, 9);
    cr_assert_eq(kvs.n, 2);
    cr_assert_str_eq(kvs.kv[0].key, "foo");
    cr_assert_str_eq(kvs.kv[0].value, "bar");
    cr_assert_eq(kvs.kv[0].mod_revision, 7);
    cr_assert_eq(kvs.kv[0].create_revision, 2);
    cr_assert_eq(kvs.kv[0].version, 3);
    cr_assert_eq(kvs.kv[0].lease, 4111120369548697093LL);
    cr_assert_str_eq(kvs.kv[1].key, "fop");
    cr_assert_eq(kvs.kv[1].value_len, 0, "an empty value is left out of the answer");
    cr_assert_eq(kvs.kv[1].lease, 0);
    tkv_etcd_kvs_free(&kvs);
    tkv_etcd_kvs_free(&kvs); /* emptied: a second free is harmless */
    tkv_etcd_kvs_free(NULL);

    cr_assert_eq(tkv_etcd_parse_range(RANGE_NONE, strlen(RANGE_NONE), &kvs, err, sizeof err), 0);
    cr_assert_eq(kvs.n, 0, "no kvs: an empty range");
    cr_assert_eq(kvs.revision, 2);
    tkv_etcd_kvs_free(&kvs);
}

Test(etcd, parse_range_refuses)
{
    tkv_etcd_kvs kvs;
    char err[128];
    const char *bad[] = {
        "",
        "[]",
        "{\"kvs\":{}}",
        "{\"header\":{\"revision\":\"x\"}}",
        "{\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"!!\"}]}",
        "{\"kvs\":[{\"value\":\"Zm9v\"}]}",
        "{\"kvs\":[{\"key\":\"Zm9v\"},{\"key\":\"Zm9v\",\"mod_revision\":\"12a\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(tkv_etcd_parse_range(bad[i], strlen(bad[i]), &kvs, err, sizeof err),
                     TKV_ETCD_EPROTO, "%s", bad[i]);
        cr_assert_eq(kvs.n, 0);
        cr_assert_null(kvs.kv);
    }
}

Test(etcd, endpoints)
{
    char err[128];
    cr_assert_null(tkv_etcd_new("", 100, err, sizeof err));
    cr_assert_null(tkv_etcd_new(",,", 100, err, sizeof err));
    tkv_etcd *e = tkv_etcd_new("http://127.0.0.1:1,http://127.0.0.1:2", 100, err, sizeof err);
    cr_assert_not_null(e, "%s", err);
    cr_assert_str_eq(tkv_etcd_endpoint(e), "http://127.0.0.1:1");
    tkv_etcd_free(e);
    tkv_etcd_free(NULL);
}

/* Nothing listens on port 1 of loopback: refused at once, every endpoint
 * tried, the answer says so. */
Test(etcd, unreachable)
{
    char err[256];
    tkv_etcd *e = tkv_etcd_new("http://127.0.0.1:1,http://127.0.0.1:1/", 500, err, sizeof err);
    tkv_etcd_kvs kvs;
    cr_assert_eq(tkv_etcd_get(e, "k", 1, false, &kvs, err, sizeof err), TKV_ETCD_EUNREACHABLE);
    cr_assert(strstr(err, "no etcd endpoint answered"), "%s", err);
    int64_t id;
    cr_assert_eq(tkv_etcd_lease_grant(e, 5, &id, err, sizeof err), TKV_ETCD_EUNREACHABLE);
    tkv_etcd_free(e);
}
