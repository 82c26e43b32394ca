/*
 * etcd.c - implements etcd.h: etcd's v3 JSON gateway over libcurl, JSON by
 * jansson. One curl easy handle per tkv_etcd (so its connection is reused
 * between calls); the bodies are built and the answers read by the
 * I/O-free functions at the end of the file, which the unit tests drive.
 *
 * The gateway's habits this file relies on (grpc-gateway's proto3 JSON):
 * bytes fields are base64; int64 fields are sent as strings, and a field
 * at its zero value (0, false, empty) is left out of an answer - so a
 * missing "kvs" is an empty range, a missing "succeeded" a failed
 * comparison, a missing "TTL" an expired lease.
 */
#include "etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An answer larger than this is not one tkv asked for (the map is a few
 * KiB): the transfer is cut rather than grown without bound. */
#define MAX_ANSWER (64u * 1024 * 1024)

struct tkv_etcd {
    char *urls[TKV_ETCD_MAX_ENDPOINTS];
    int n;
    int cur;        /* the endpoint tried first: the one that answered last */
    int timeout_ms; /* per endpoint tried */
    CURL *curl;
    char url[512]; /* the request's URL, built per call */
};

typedef struct answer {
    char *data;
    size_t len, cap;
    bool too_big;
} answer;

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* curl_global_init is not thread-safe in every libcurl Debian may ship:
 * once, whichever thread makes the first handle. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

tkv_etcd *tkv_etcd_new(const char *endpoints, int timeout_ms, char *err, size_t errlen)
{
    tkv_etcd *e = calloc(1, sizeof *e);
    if (!e) {
        seterr(err, errlen, 0, "out of memory");
        return NULL;
    }
    e->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    for (const char *p = endpoints ? endpoints : ""; *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (e->n == TKV_ETCD_MAX_ENDPOINTS || len > 400) {
                seterr(err, errlen, 0, "too many or too long etcd endpoints");
                tkv_etcd_free(e);
                return NULL;
            }
            if (!(e->urls[e->n++] = strndup(p, len))) {
                tkv_etcd_free(e);
                return NULL;
            }
        }
        p += len + (p[len] == ',');
    }
    if (e->n == 0) {
        seterr(err, errlen, 0, "no etcd endpoint given");
        tkv_etcd_free(e);
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);
    if (!(e->curl = curl_easy_init())) {
        seterr(err, errlen, 0, "cannot initialise libcurl");
        tkv_etcd_free(e);
        return NULL;
    }
    return e;
}

void tkv_etcd_free(tkv_etcd *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->n; i++)
        free(e->urls[i]);
    if (e->curl)
        curl_easy_cleanup(e->curl);
    free(e);
}

const char *tkv_etcd_endpoint(const tkv_etcd *e) { return e->urls[e->cur]; }

/* ---- HTTP ----------------------------------------------------------------- */

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    answer *a = ud;
    size_t n = size * nmemb;
    if (n > MAX_ANSWER - a->len) {
        a->too_big = true;
        return 0; /* curl ends the transfer with an error */
    }
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + n + 1)
            cap *= 2;
        char *d = realloc(a->data, cap);
        if (!d)
            return 0;
        a->data = d;
        a->cap = cap;
    }
    memcpy(a->data + a->len, p, n);
    a->len += n;
    a->data[a->len] = '\0';
    return n;
}

/* One POST to one endpoint. Returns the HTTP status, or -1 (curl's reason
 * in err) when the endpoint did not answer. */
static long post_one(tkv_etcd *e, int i, const char *path, const char *body, answer *a, char *err,
                     size_t errlen)
{
    CURL *c = e->curl;
    snprintf(e->url, sizeof e->url, "%s%s", e->urls[i], path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, e->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
    /* Threads: curl must not use signals for its timeouts. */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    a->len = 0;
    a->too_big = false;
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        seterr(err, errlen, 0, "%s: %s", e->urls[i],
               a->too_big ? "answer too large" : curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* etcd's error answer: {"error": "...", "message": "...", "code": N}. */
static int server_error(const answer *a, long status, char *err, size_t errlen)
{
    json_t *j = a->data ? json_loadb(a->data, a->len, 0, NULL) : NULL;
    const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
    if (!msg && j)
        msg = json_string_value(json_object_get(j, "error"));
    int rc = seterr(err, errlen, TKV_ETCD_ESERVER, "etcd: %s (HTTP %ld)",
                    msg ? msg : "an error without a message", status);
    json_decref(j);
    return rc;
}

/* POSTs body to path, trying every endpoint from the current one, and
 * parses the answer into *out (the caller decrefs it). body is consumed. */
static int call(tkv_etcd *e, const char *path, char *body, json_t **out, char *err, size_t errlen)
{
    if (!body)
        return seterr(err, errlen, TKV_ETCD_ENOMEM, "out of memory");
    answer a = {0};
    int rc = TKV_ETCD_EUNREACHABLE;
    char unreached[256] = ""; /* the last endpoint that did not answer, and why */
    for (int k = 0; k < e->n; k++) {
        int i = (e->cur + k) % e->n;
        long status = post_one(e, i, path, body, &a, unreached, sizeof unreached);
        if (status < 0)
            continue;
        e->cur = i;
        if (status >= 500) {
            /* This member cannot serve now (no leader, no quorum: gRPC's
             * Unavailable): another may. */
            rc = server_error(&a, status, err, errlen);
            continue;
        }
        if (status != 200) {
            rc = server_error(&a, status, err, errlen);
            break;
        }
        json_error_t je;
        *out = json_loadb(a.data ? a.data : "", a.len, 0, &je);
        rc = *out && json_is_object(*out) ? TKV_ETCD_OK
                                          : seterr(err, errlen, TKV_ETCD_EPROTO,
                                                   "etcd answered no JSON object: %s", je.text);
        break;
    }
    if (rc == TKV_ETCD_EUNREACHABLE)
        seterr(err, errlen, rc, e->n > 1 ? "no etcd endpoint answered (last: %s)" : "%s",
               unreached);
    free(body);
    free(a.data);
    return rc;
}

/* ---- JSON helpers ---------------------------------------------------------- */

/* An int64 field: the gateway sends a string, tolerates a number; absent
 * is 0 (proto3's zero value). Returns -1 for anything else. */
static int get_i64(const json_t *obj, const char *name, int64_t *out)
{
    json_t *v = json_object_get(obj, name);
    *out = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = n;
    return 0;
}

static json_t *i64_str(int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return json_string(buf);
}

/* Sets obj[name] to the base64 of p[0..n). Returns -1 without memory. */
static int set_b64(json_t *obj, const char *name, const void *p, size_t n)
{
    char *s = tkv_etcd_b64_encode(p, n);
    if (!s)
        return -1;
    int rc = json_object_set_new(obj, name, json_string(s));
    free(s);
    return rc;
}

/* The text of obj, which is consumed; NULL without memory. */
static char *dump(json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return s;
}

static int parse_range(json_t *j, tkv_etcd_kvs *out, char *err, size_t errlen);

/* ---- the calls --------------------------------------------------------------- */

int tkv_etcd_get(tkv_etcd *e, const void *key, size_t key_len, bool prefix, tkv_etcd_kvs *out,
                 char *err, size_t errlen)
{
    json_t *j = NULL;
    int rc = call(e, "/v3/kv/range", tkv_etcd_range_body(key, key_len, prefix), &j, err, errlen);
    if (rc == TKV_ETCD_OK)
        rc = parse_range(j, out, err, errlen);
    json_decref(j);
    return rc;
}

static int header_revision(const json_t *j, int64_t *revision, char *err, size_t errlen)
{
    int64_t r;
    if (get_i64(json_object_get(j, "header"), "revision", &r) < 0)
        return seterr(err, errlen, TKV_ETCD_EPROTO, "etcd answered a bad header revision");
    if (revision)
        *revision = r;
    return TKV_ETCD_OK;
}

int tkv_etcd_put(tkv_etcd *e, const void *key, size_t key_len, const void *value, size_t value_len,
                 int64_t lease, int64_t *revision, char *err, size_t errlen)
{
    json_t *j = NULL;
    int rc = call(e, "/v3/kv/put", tkv_etcd_put_body(key, key_len, value, value_len, lease), &j,
                  err, errlen);
    if (rc == TKV_ETCD_OK)
        rc = header_revision(j, revision, err, errlen);
    json_decref(j);
    return rc;
}

int tkv_etcd_delete(tkv_etcd *e, const void *key, size_t key_len, bool prefix, int64_t *deleted,
                    char *err, size_t errlen)
{
    json_t *j = NULL;
    /* deleterange takes range's key and range_end. */
    int rc =
        call(e, "/v3/kv/deleterange", tkv_etcd_range_body(key, key_len, prefix), &j, err, errlen);
    int64_t n = 0;
    if (rc == TKV_ETCD_OK && get_i64(j, "deleted", &n) < 0)
        rc = seterr(err, errlen, TKV_ETCD_EPROTO, "etcd answered a bad deleted count");
    if (rc == TKV_ETCD_OK && deleted)
        *deleted = n;
    json_decref(j);
    return rc;
}

int tkv_etcd_cas(tkv_etcd *e, const void *key, size_t key_len, int64_t mod_revision,
                 const void *value, size_t value_len, int64_t lease, bool *swapped,
                 int64_t *revision, char *err, size_t errlen)
{
    json_t *j = NULL;
    int rc = call(e, "/v3/kv/txn",
                  tkv_etcd_cas_body(key, key_len, mod_revision, value, value_len, lease), &j, err,
                  errlen);
    if (rc == TKV_ETCD_OK)
        rc = header_revision(j, revision, err, errlen);
    if (rc == TKV_ETCD_OK)
        *swapped = json_is_true(json_object_get(j, "succeeded"));
    json_decref(j);
    return rc;
}

static char *lease_body(const char *name, int64_t v)
{
    json_t *o = json_object();
    if (o && json_object_set_new(o, name, i64_str(v)) < 0) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

int tkv_etcd_lease_grant(tkv_etcd *e, int64_t ttl, int64_t *id, char *err, size_t errlen)
{
    json_t *j = NULL;
    int rc = call(e, "/v3/lease/grant", lease_body("TTL", ttl), &j, err, errlen);
    if (rc == TKV_ETCD_OK) {
        const char *why = json_string_value(json_object_get(j, "error"));
        int64_t v;
        if (why)
            rc = seterr(err, errlen, TKV_ETCD_ESERVER, "etcd: %s", why);
        else if (get_i64(j, "ID", &v) < 0 || v == 0)
            rc = seterr(err, errlen, TKV_ETCD_EPROTO, "etcd granted no lease id");
        else
            *id = v;
    }
    json_decref(j);
    return rc;
}

int tkv_etcd_lease_keepalive(tkv_etcd *e, int64_t id, int64_t *ttl, char *err, size_t errlen)
{
    json_t *j = NULL;
    /* A streaming call in gRPC; over the gateway one request in, one
     * {"result": {...}} out. */
    int rc = call(e, "/v3/lease/keepalive", lease_body("ID", id), &j, err, errlen);
    if (rc == TKV_ETCD_OK) {
        json_t *res = json_object_get(j, "result");
        const char *why =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        int64_t v;
        if (!res)
            rc = seterr(err, errlen, TKV_ETCD_ESERVER, "etcd: %s",
                        why ? why : "keepalive answered no result");
        else if (get_i64(res, "TTL", &v) < 0)
            rc = seterr(err, errlen, TKV_ETCD_EPROTO, "etcd answered a bad TTL");
        else
            *ttl = v;
    }
    json_decref(j);
    return rc;
}

int tkv_etcd_lease_revoke(tkv_etcd *e, int64_t id, char *err, size_t errlen)
{
    json_t *j = NULL;
    int rc = call(e, "/v3/lease/revoke", lease_body("ID", id), &j, err, errlen);
    json_decref(j);
    return rc;
}

/* ---- the encoding ---------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *tkv_etcd_b64_encode(const void *p, size_t n)
{
    const unsigned char *s = p;
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < n ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? B64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int b64_val(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

unsigned char *tkv_etcd_b64_decode(const char *s, size_t *n)
{
    size_t len = strlen(s);
    if (len % 4)
        return NULL;
    unsigned char *out = malloc(len / 4 * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=') : 0;
        int a = b64_val(s[i]), b = b64_val(s[i + 1]);
        int c = pad >= 2 ? 0 : b64_val(s[i + 2]), d = pad >= 1 ? 0 : b64_val(s[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0 || (pad == 1 && s[i + 2] == '=')) {
            free(out);
            return NULL;
        }
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        *o++ = (unsigned char)(v >> 16);
        if (pad < 2)
            *o++ = (unsigned char)(v >> 8);
        if (pad < 1)
            *o++ = (unsigned char)v;
    }
    *o = '\0';
    *n = (size_t)(o - out);
    return out;
}

unsigned char *tkv_etcd_prefix_end(const void *key, size_t key_len, size_t *end_len)
{
    unsigned char *end = malloc(key_len ? key_len : 1);
    if (!end)
        return NULL;
    memcpy(end, key, key_len);
    for (size_t i = key_len; i-- > 0;) {
        if (end[i] < 0xff) {
            end[i]++;
            *end_len = i + 1;
            return end;
        }
    }
    /* Empty, or all 0xff: etcd's "\0" means to the end of the keyspace. */
    end[0] = 0;
    *end_len = 1;
    return end;
}

char *tkv_etcd_range_body(const void *key, size_t key_len, bool prefix)
{
    json_t *o = json_object();
    if (!o || set_b64(o, "key", key_len ? key : "\0", key_len ? key_len : 1) < 0)
        goto fail;
    if (prefix) {
        size_t n;
        unsigned char *end = tkv_etcd_prefix_end(key, key_len, &n);
        int rc = end ? set_b64(o, "range_end", end, n) : -1;
        free(end);
        if (rc < 0)
            goto fail;
    }
    return dump(o);
fail:
    json_decref(o);
    return NULL;
}

/* The put request's fields, for /v3/kv/put and inside a transaction. */
static json_t *put_req(const void *key, size_t key_len, const void *value, size_t value_len,
                       int64_t lease)
{
    json_t *o = json_object();
    if (!o || set_b64(o, "key", key, key_len) < 0 || set_b64(o, "value", value, value_len) < 0 ||
        (lease && json_object_set_new(o, "lease", i64_str(lease)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *tkv_etcd_put_body(const void *key, size_t key_len, const void *value, size_t value_len,
                        int64_t lease)
{
    return dump(put_req(key, key_len, value, value_len, lease));
}

char *tkv_etcd_cas_body(const void *key, size_t key_len, int64_t mod_revision, const void *value,
                        size_t value_len, int64_t lease)
{
    json_t *cmp = json_object(), *put = put_req(key, key_len, value, value_len, lease);
    if (!cmp || !put || set_b64(cmp, "key", key, key_len) < 0)
        goto fail;
    /* Absent is "version 0": a key that exists has version >= 1. */
    json_object_set_new(cmp, "result", json_string("EQUAL"));
    json_object_set_new(cmp, "target", json_string(mod_revision ? "MOD" : "VERSION"));
    json_object_set_new(cmp, mod_revision ? "mod_revision" : "version", i64_str(mod_revision));
    json_t *body = json_pack("{s:[o], s:[{s:o}]}", "compare", cmp, "success", "request_put", put);
    return dump(body);
fail:
    json_decref(cmp);
    json_decref(put);
    return NULL;
}

static int parse_kv(json_t *o, tkv_etcd_kv *kv)
{
    const char *k = json_string_value(json_object_get(o, "key"));
    json_t *vj = json_object_get(o, "value");
    const char *v = vj ? json_string_value(vj) : ""; /* an empty value is left out */
    if (!k || !v || get_i64(o, "create_revision", &kv->create_revision) < 0 ||
        get_i64(o, "mod_revision", &kv->mod_revision) < 0 ||
        get_i64(o, "version", &kv->version) < 0 || get_i64(o, "lease", &kv->lease) < 0)
        return -1;
    if (!(kv->key = (char *)tkv_etcd_b64_decode(k, &kv->key_len)))
        return -1;
    if (!(kv->value = (char *)tkv_etcd_b64_decode(v, &kv->value_len)))
        return -1;
    return 0;
}

static int parse_range(json_t *j, tkv_etcd_kvs *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *kvs = json_object_get(j, "kvs");
    int rc = TKV_ETCD_OK;
    if (!json_is_object(j) || (kvs && !json_is_array(kvs)) ||
        get_i64(json_object_get(j, "header"), "revision", &out->revision) < 0) {
        rc = seterr(err, errlen, TKV_ETCD_EPROTO, "etcd answered a range that does not parse");
        goto done;
    }
    size_t n = json_array_size(kvs);
    if (n && !(out->kv = calloc(n, sizeof *out->kv))) {
        rc = seterr(err, errlen, TKV_ETCD_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++, out->n++) {
        if (parse_kv(json_array_get(kvs, i), &out->kv[i]) < 0) {
            out->n++; /* free what it holds */
            rc = seterr(err, errlen, TKV_ETCD_EPROTO, "etcd answered a key that does not parse");
            break;
        }
    }
done:
    if (rc != TKV_ETCD_OK)
        tkv_etcd_kvs_free(out);
    return rc;
}

int tkv_etcd_parse_range(const char *json, size_t len, tkv_etcd_kvs *out, char *err, size_t errlen)
{
    json_t *j = json_loadb(json, len, 0, NULL);
    int rc = parse_range(j, out, err, errlen);
    json_decref(j);
    return rc;
}

void tkv_etcd_kvs_free(tkv_etcd_kvs *kvs)
{
    if (!kvs)
        return;
    for (size_t i = 0; i < kvs->n; i++) {
        free(kvs->kv[i].key);
        free(kvs->kv[i].value);
    }
    free(kvs->kv);
    memset(kvs, 0, sizeof *kvs);
}
