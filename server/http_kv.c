/*
 * http_kv.c - the JSON API of tkvd's HTTP face: /v1/kv/KEY (GET as of a
 * time, PUT, DELETE) and /v1/kv/KEY/history, each one request of the
 * binary protocol (PROTOCOL.md §12 maps them). Turns the URL's key and
 * query into a tkv_req and the decoded reply into JSON; http.c carries the
 * request to the loop and back.
 *
 * Bytes become JSON strings when they are UTF-8 (jansson checks) and
 * base64 otherwise; times leave as JSON integers, so the ones taken in are
 * kept below 2^63.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "etcd.h"
#include "http_int.h"
#include "units.h"

/* ---- the JSON API ------------------------------------------------------------ */

/* Sets obj[name] to the bytes as a string if they are UTF-8 (jansson
 * checks), else obj[name "_b64"] to their base64. */
static int set_bytes(json_t *obj, const char *name, const uint8_t *p, size_t n)
{
    json_t *s = json_stringn((const char *)p, n);
    if (s)
        return json_object_set_new(obj, name, s);
    char *b = tkv_etcd_b64_encode(p, n);
    char k[32];
    snprintf(k, sizeof k, "%s_b64", name);
    int rc = b ? json_object_set_new(obj, k, json_string(b)) : -1;
    free(b);
    return rc;
}

/* An object whose first member is the key; NULL without memory. */
static json_t *keyed(const tkv_span *key)
{
    json_t *j = json_object();
    if (j && set_bytes(j, "key", key->ptr, key->len) < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Sets j[name] = v (consumed); a NULL j or v makes it NULL. */
static json_t *with(json_t *j, const char *name, json_t *v)
{
    if (j && v && json_object_set_new(j, name, v) == 0)
        return j;
    json_decref(j);
    json_decref(v);
    return NULL;
}

static json_t *opt(tkv_rep_opt o) { return o.has ? json_integer((json_int_t)o.v) : json_null(); }

/* JSON has no unsigned 64-bit integers: jansson's are int64, so times
 * above 2^63-1 would wrap. They are refused on the way in (parse_ts), and
 * the server never makes one up, so what comes back fits. */
static const char *miss_reason(uint64_t m)
{
    static const char *const names[] = {"no_key", "before_first", "deleted", "below_horizon",
                                        "no_such_version"};
    return m < 5 ? names[m] : "unknown";
}

static enum MHD_Result got(struct MHD_Connection *c, const tkv_req *req, const tkv_rep *rep,
                           void *raw_flag)
{
    const tkv_rep_answer *a = &rep->answer;
    bool raw = raw_flag != NULL;
    if (a->status == TKV_ST_NOT_FOUND) {
        char msg[160];
        switch (a->miss) {
        case TKV_M_NO_KEY: snprintf(msg, sizeof msg, "no such key"); break;
        case TKV_M_BEFORE_FIRST:
            snprintf(msg, sizeof msg, "no version at or before %llu", (unsigned long long)req->ts);
            break;
        case TKV_M_DELETED:
            snprintf(msg, sizeof msg, "deleted at %llu", (unsigned long long)a->at.v);
            break;
        case TKV_M_BELOW_HORIZON:
            snprintf(msg, sizeof msg, "removed by retention (horizon %llu)",
                     (unsigned long long)a->at.v);
            break;
        default: snprintf(msg, sizeof msg, "not found"); break;
        }
        json_t *j = json_pack("{s:s, s:i, s:s, s:o, s:o}", "error", msg, "code", 404, "reason",
                              miss_reason(a->miss), "next", opt(a->next), "at", opt(a->at));
        return tkv_http_send_json(c, MHD_HTTP_NOT_FOUND, j);
    }
    if (raw) {
        char *b = malloc(a->value.len ? a->value.len : 1);
        if (!b)
            return MHD_NO;
        memcpy(b, a->value.ptr, a->value.len);
        struct MHD_Response *r =
            MHD_create_response_from_buffer(a->value.len, b, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(b);
            return MHD_NO;
        }
        char v[24];
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
        snprintf(v, sizeof v, "%llu", (unsigned long long)a->ts);
        MHD_add_response_header(r, "X-Tkv-Ts", v);
        if (a->next.has) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)a->next.v);
            MHD_add_response_header(r, "X-Tkv-Next", v);
        }
        if (a->expires.has) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)a->expires.v);
            MHD_add_response_header(r, "X-Tkv-Expires", v);
        }
        enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return rc;
    }
    json_t *j = keyed(&req->key);
    if (j && set_bytes(j, "value", a->value.ptr, a->value.len) < 0) {
        json_decref(j);
        j = NULL;
    }
    j = with(j, "ts", json_integer((json_int_t)a->ts));
    j = with(j, "next", opt(a->next));
    return tkv_http_send_json(c, MHD_HTTP_OK, with(j, "expires", opt(a->expires)));
}

static enum MHD_Result put_done(struct MHD_Connection *c, const tkv_req *req, const tkv_rep *rep,
                                void *ctx)
{
    return tkv_http_send_json(c, MHD_HTTP_OK,
                              with(keyed(&req->key), "ts", json_integer((json_int_t)rep->u)));
}

static enum MHD_Result del_done(struct MHD_Connection *c, const tkv_req *req, const tkv_rep *rep,
                                void *ctx)
{
    return tkv_http_send_json(c, MHD_HTTP_OK,
                              with(keyed(&req->key), req->tombstone ? "ts" : "removed",
                                   json_integer((json_int_t)rep->u)));
}

static enum MHD_Result history_done(struct MHD_Connection *c, const tkv_req *req,
                                    const tkv_rep *rep, void *ctx)
{
    json_t *vs = json_array();
    json_t *j = with(keyed(&req->key), "versions", vs);
    j = with(j, "truncated", json_boolean(rep->truncated));
    if (!j)
        return tkv_http_send_json(c, MHD_HTTP_OK, NULL);
    tkv_rep_list l = rep->list;
    tkv_rep_entry e;
    while (tkv_rep_next_entry(&l, &e)) {
        json_t *v = json_pack("{s:I}", "ts", (json_int_t)e.ts);
        if (!v || json_array_append_new(vs, v) < 0) {
            json_decref(j);
            return tkv_http_send_json(c, MHD_HTTP_OK, NULL);
        }
        if (!e.value.ptr)
            json_object_set_new(v, "deleted", json_true());
        else
            set_bytes(v, "value", e.value.ptr, e.value.len);
        if (e.expires)
            json_object_set_new(v, "expires", json_integer((json_int_t)e.expires));
    }
    return tkv_http_send_json(c, MHD_HTTP_OK, j);
}

/* ---- arguments --------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (room for cap bytes). Returns the
 * length, or (size_t)-1 if an escape is malformed or out is too small. */
static size_t pct_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++, o++) {
        if (o == cap)
            return (size_t)-1;
        if (s[i] != '%') {
            out[o] = (uint8_t)s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return (size_t)-1;
        out[o] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return o;
}

/* A query argument, percent-decoded into buf (NUL-terminated). Returns 0
 * if absent, 1 if present, -1 if malformed or longer than buf. */
static int arg(struct MHD_Connection *c, const char *name, char *buf, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    if (!v)
        return 0;
    size_t n = strlen(v);
    size_t o = pct_decode(v, n, (uint8_t *)buf, cap - 1);
    if (o == (size_t)-1 || memchr(buf, '\0', o))
        return -1;
    buf[o] = '\0';
    return 1;
}

/* A time argument: microseconds, or any form tkv_parse_time() takes
 * ("now", "-5m", ISO-8601, "1700000000s"). "now" alone is *now, so a write
 * lets the server pick the time. Returns 0 absent, 1 set, -1 bad (err). */
static int arg_time(struct MHD_Connection *c, const char *name, uint64_t *out, bool *now, char *err,
                    size_t errlen)
{
    char v[80];
    int rc = arg(c, name, v, sizeof v);
    if (rc <= 0) {
        if (rc < 0)
            snprintf(err, errlen, "bad %s: not a time", name);
        return rc;
    }
    if (now)
        *now = strcmp(v, "now") == 0;
    int p = tkv_parse_time(v, tkv_clock_realtime_us(), out);
    if (p == TKV_TIME_AMBIGUOUS) {
        snprintf(err, errlen,
                 "bad %s '%.13s': ambiguous, say seconds (%.13ss), milliseconds (%.13sms) or "
                 "microseconds (%.13sus)",
                 name, v, v, v, v);
        return -1;
    }
    if (p < 0 || *out > (uint64_t)INT64_MAX) {
        snprintf(err, errlen,
                 "bad %s '%.40s': expected microseconds since the epoch (below 2^63), "
                 "\"now\", a relative time such as -5m, or an ISO-8601 date",
                 name, v);
        return -1;
    }
    return 1;
}

/* ---- the routes -------------------------------------------------------------------- */

static enum MHD_Result kv(tkv_http *h, struct MHD_Connection *c, const char *method,
                          const tkv_span *key, bool history, const tkv_http_req *r)
{
    char err[320];
    tkv_req req = {.key = *key, .to = TKV_TS_MAX, .limit = UINT64_MAX};
    bool now = false;
    int rc;
    /* HEAD is answered as GET: libmicrohttpd sends the headers only. */
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (history) {
        if (!get)
            return tkv_http_not_allowed(c, "GET, HEAD", "history is read with GET");
        char v[32];
        req.cmd = TKV_CMD_RANGE;
        if (arg_time(c, "from", &req.from, NULL, err, sizeof err) < 0 ||
            arg_time(c, "to", &req.to, NULL, err, sizeof err) < 0)
            return tkv_http_error(c, MHD_HTTP_BAD_REQUEST, err);
        if ((rc = arg(c, "limit", v, sizeof v)) < 0 ||
            (rc > 0 && tkv_parse_uint(v, 0, UINT32_MAX, &req.limit) < 0))
            return tkv_http_error(c, MHD_HTTP_BAD_REQUEST, "bad limit: expected a count");
        return tkv_http_call(h, c, &req, history_done, NULL);
    }
    if (get) {
        char v[8];
        req.cmd = TKV_CMD_GET;
        if ((rc = arg_time(c, "at", &req.ts, NULL, err, sizeof err)) < 0)
            return tkv_http_error(c, MHD_HTTP_BAD_REQUEST, err);
        req.has_ts = rc > 0;
        if (!req.has_ts)
            req.ts = TKV_TS_MAX;
        /* Exactly these spellings: a typo must not silently pick JSON. */
        bool raw = false;
        if ((rc = arg(c, "raw", v, sizeof v)) != 0) {
            if (rc > 0 && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0))
                raw = true;
            else if (rc < 0 || (strcmp(v, "0") != 0 && strcmp(v, "false") != 0))
                return tkv_http_error(c, MHD_HTTP_BAD_REQUEST,
                                      "bad raw: expected 1, true, 0 or false");
        }
        return tkv_http_call(h, c, &req, got, raw ? (void *)1 : NULL);
    }
    if (strcmp(method, "PUT") == 0) {
        char v[80];
        if (r->too_big)
            return tkv_http_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the value is above --max-value");
        req.cmd = TKV_CMD_PUT;
        req.value =
            (tkv_span){r->body.data ? r->body.data : (const uint8_t *)"", (uint32_t)r->body.len};
        if ((rc = arg_time(c, "ts", &req.ts, &now, err, sizeof err)) < 0)
            return tkv_http_error(c, MHD_HTTP_BAD_REQUEST, err);
        req.has_ts = rc > 0 && !now;
        if ((rc = arg(c, "ttl", v, sizeof v)) < 0 ||
            (rc > 0 && (tkv_parse_duration(v, &req.ttl) < 0 || req.ttl == 0)))
            return tkv_http_error(c, MHD_HTTP_BAD_REQUEST,
                                  "bad ttl: expected a duration such as 30s or 1h30m");
        return tkv_http_call(h, c, &req, put_done, NULL);
    }
    if (strcmp(method, "DELETE") == 0) {
        req.cmd = TKV_CMD_DEL;
        if ((rc = arg_time(c, "at", &req.ts, &now, err, sizeof err)) < 0)
            return tkv_http_error(c, MHD_HTTP_BAD_REQUEST, err);
        req.tombstone = rc > 0;
        req.has_ts = rc > 0 && !now;
        return tkv_http_call(h, c, &req, del_done, NULL);
    }
    return tkv_http_not_allowed(c, "GET, HEAD, PUT, DELETE", "a key takes GET, PUT or DELETE");
}

enum MHD_Result tkv_http_kv(tkv_http *h, struct MHD_Connection *c, const char *method,
                            const char *path, uint32_t max_key, const tkv_http_req *r)
{
    const char *slash = strchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : strlen(path);
    bool history = slash && strcmp(slash, "/history") == 0;
    if (slash && !history)
        return tkv_http_error(c, MHD_HTTP_NOT_FOUND,
                              "no such endpoint: a '/' in a key is written %2F");
    if (n == 0)
        return tkv_http_error(c, MHD_HTTP_BAD_REQUEST, "empty key");
    uint8_t kb[TKV_KEY_MAX_LIMIT];
    size_t kl = pct_decode(path, n, kb, max_key < sizeof kb ? max_key : sizeof kb);
    if (kl == (size_t)-1)
        return tkv_http_error(c, MHD_HTTP_BAD_REQUEST,
                              "bad key: malformed percent-encoding, or above --max-key");
    tkv_span key = {kb, (uint32_t)kl};
    return kv(h, c, method, &key, history, r);
}
