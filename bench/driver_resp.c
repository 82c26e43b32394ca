/*
 * driver_resp.c - implements the Redis driver of driver.h: tkv's operations
 * mapped onto sorted sets, RESP2 request encoding, and a small RESP2 reply
 * parser.
 *
 * The mapping keeps one sorted set per key, scored by timestamp:
 *   PUT key ts value   ZADD key ts member, member = 8-byte big-endian ts
 *                      followed by the value, so equal values stored at
 *                      different times stay distinct members
 *   GET key as of ts   ZREVRANGEBYSCORE key ts -inf LIMIT 0 1 (empty: miss)
 *   RANGE key from..to ZRANGEBYSCORE key from to LIMIT 0 n
 * "Latest" is +inf. Scores are doubles, exact for the integer timestamps
 * the generator uses (all below 2^53).
 *
 * The parser works in place on the buffered bytes and restarts from the
 * beginning of a reply that is not complete yet. That costs a re-scan of
 * the reply's headers per read, which is small: a bulk string whose body has
 * not fully arrived is skipped by its declared length without looking at
 * the body. Declared lengths are checked against the reader's maximum, and
 * an incomplete reply that already fills the buffer is an error, so a
 * garbage stream can neither allocate without bound nor stall the run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "grow.h"

#define RESP_MAX_DEPTH 8 /* nesting tkv-bench's commands never exceed */
#define RESP_READ_SLACK (64 * 1024)
#define RESP_MIN_CAP 16384
#define RESP_REQ_OVERHEAD 256 /* command, key, numbers and framing of one request */

/* ---- encoding ---------------------------------------------------------- */

static char *put_lit(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, s) put_lit((p), (s), sizeof(s) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* A bulk string holding a decimal number, or "+inf" for BENCH_TS_LATEST. */
static char *put_score(char *p, uint64_t ts)
{
    if (ts == BENCH_TS_LATEST)
        return PUT_LIT(p, "$4\r\n+inf\r\n");
    char digits[20];
    size_t n = (size_t)(put_u64(digits, ts) - digits);
    *p++ = '$';
    p = put_u64(p, n);
    p = PUT_LIT(p, "\r\n");
    p = put_lit(p, digits, n);
    return PUT_LIT(p, "\r\n");
}

static char *put_key(char *p, uint64_t key)
{
    p = PUT_LIT(p, "$16\r\n");
    bench_key(p, key);
    return PUT_LIT(p + BENCH_KEY_LEN, "\r\n");
}

/* The member: 8-byte big-endian timestamp, then the value. */
static char *put_member(char *p, const bench_op *op)
{
    *p++ = '$';
    p = put_u64(p, 8 + (uint64_t)op->value_len);
    p = PUT_LIT(p, "\r\n");
    for (int i = 7; i >= 0; i--)
        *p++ = (char)(op->ts >> (8 * i));
    if (op->value_len)
        p = put_lit(p, (const char *)op->value, op->value_len);
    return PUT_LIT(p, "\r\n");
}

static char *encode_op(char *p, const bench_op *op)
{
    switch (op->kind) {
    case OP_PUT:
        p = PUT_LIT(p, "*4\r\n$4\r\nZADD\r\n");
        p = put_key(p, op->key);
        p = put_score(p, op->ts);
        return put_member(p, op);
    case OP_GET:
        p = PUT_LIT(p, "*7\r\n$16\r\nZREVRANGEBYSCORE\r\n");
        p = put_key(p, op->key);
        p = put_score(p, op->ts);
        return PUT_LIT(p, "$4\r\n-inf\r\n$5\r\nLIMIT\r\n$1\r\n0\r\n$1\r\n1\r\n");
    default:
        p = PUT_LIT(p, "*7\r\n$13\r\nZRANGEBYSCORE\r\n");
        p = put_key(p, op->key);
        p = put_score(p, op->ts);
        p = put_score(p, op->to);
        p = PUT_LIT(p, "$5\r\nLIMIT\r\n$1\r\n0\r\n");
        return put_score(p, op->limit);
    }
}

static int resp_encode(tkv_buf *out, const bench_op *op)
{
    if (tkv_buf_reserve(out, RESP_REQ_OVERHEAD + (size_t)op->value_len) < 0)
        return -1;
    char *start = (char *)out->data + out->len;
    out->len += (size_t)(encode_op(start, op) - start);
    return 0;
}

/* ---- reader buffer ----------------------------------------------------- */

static void resp_reader_init(bench_reader *r, size_t max_reply)
{
    memset(&r->resp, 0, sizeof r->resp);
    r->resp.max = max_reply;
}

static void resp_reader_deinit(bench_reader *r)
{
    if (!r)
        return;
    free(r->resp.buf);
    memset(&r->resp, 0, sizeof r->resp);
}

static int resp_reader_space(bench_reader *rd, size_t want, uint8_t **p, size_t *avail)
{
    resp_reader *r = &rd->resp;
    size_t limit = r->max + RESP_READ_SLACK;
    if (r->start == r->end)
        r->start = r->end = 0;
    if (r->cap - r->end < want && r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end < want && r->cap < limit) {
        size_t cap = tkv_grow_cap(r->cap, r->end + want, RESP_MIN_CAP);
        if (cap == 0 || cap > limit)
            cap = limit;
        uint8_t *nb = realloc(r->buf, cap);
        if (!nb)
            return -1;
        r->buf = nb;
        r->cap = cap;
    }
    *p = r->buf + r->end;
    *avail = r->cap - r->end;
    return 0;
}

static void resp_reader_commit(bench_reader *r, size_t n) { r->resp.end += n; }

static size_t resp_pending(const bench_reader *r) { return r->resp.end - r->resp.start; }

/* ---- parsing ----------------------------------------------------------- */

/* What a parsed top-level reply was. */
typedef struct resp_val {
    char type;           /* '+', '-', ':', '$' or '*' */
    int64_t n;           /* ':' the integer; '$' and '*' the length, -1 for null */
    const uint8_t *line; /* '+' and '-': the text */
    size_t line_len;
} resp_val;

typedef struct resp_parse {
    const uint8_t *p, *end;
    size_t max;
    const char *why; /* set when the stream is malformed */
} resp_parse;

enum { P_BAD = -1, P_MORE = 0, P_DONE = 1 };

static int bad(resp_parse *ps, const char *why)
{
    ps->why = why;
    return P_BAD;
}

/* One CRLF-terminated line starting at ps->p; ps->p moves past it. */
static int take_line(resp_parse *ps, const uint8_t **line, size_t *len)
{
    size_t left = (size_t)(ps->end - ps->p);
    const uint8_t *cr = memchr(ps->p, '\r', left);
    if (!cr)
        return left > ps->max ? bad(ps, "line without CRLF") : P_MORE;
    if (cr + 1 == ps->end)
        return P_MORE;
    if (cr[1] != '\n')
        return bad(ps, "CR not followed by LF");
    *line = ps->p;
    *len = (size_t)(cr - ps->p);
    ps->p = cr + 2;
    return P_DONE;
}

/* A signed decimal of at most 18 digits: more cannot be a valid length. */
static int parse_int(resp_parse *ps, const uint8_t *s, size_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg ? 1 : 0;
    if (n == i || n - i > 18)
        return bad(ps, "bad integer");
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return bad(ps, "bad integer");
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return P_DONE;
}

static int parse_value(resp_parse *ps, int depth, resp_val *v);

static int parse_bulk(resp_parse *ps, resp_val *v)
{
    if (v->n < -1 || (v->n >= 0 && (uint64_t)v->n > ps->max))
        return bad(ps, "bulk string length out of range");
    if (v->n < 0)
        return P_DONE;
    size_t need = (size_t)v->n + 2;
    if ((size_t)(ps->end - ps->p) < need)
        return P_MORE;
    if (ps->p[v->n] != '\r' || ps->p[v->n + 1] != '\n')
        return bad(ps, "bulk string not followed by CRLF");
    ps->p += need;
    return P_DONE;
}

static int parse_array(resp_parse *ps, int depth, resp_val *v)
{
    /* Each element takes at least 3 bytes ("+\r\n"). */
    if (v->n < -1 || (v->n >= 0 && (uint64_t)v->n > ps->max / 3))
        return bad(ps, "array length out of range");
    if (depth >= RESP_MAX_DEPTH)
        return bad(ps, "arrays nested too deeply");
    for (int64_t i = 0; i < v->n; i++) {
        resp_val e;
        int rc = parse_value(ps, depth + 1, &e);
        if (rc != P_DONE)
            return rc;
    }
    return P_DONE;
}

static int parse_value(resp_parse *ps, int depth, resp_val *v)
{
    const uint8_t *line;
    size_t len;
    int rc = take_line(ps, &line, &len);
    if (rc != P_DONE)
        return rc;
    if (len == 0)
        return bad(ps, "empty line");
    memset(v, 0, sizeof *v);
    v->type = (char)line[0];
    switch (v->type) {
    case '+':
    case '-':
        v->line = line + 1;
        v->line_len = len - 1;
        return P_DONE;
    case ':': return parse_int(ps, line + 1, len - 1, &v->n);
    case '$':
        rc = parse_int(ps, line + 1, len - 1, &v->n);
        return rc == P_DONE ? parse_bulk(ps, v) : rc;
    case '*':
        rc = parse_int(ps, line + 1, len - 1, &v->n);
        return rc == P_DONE ? parse_array(ps, depth, v) : rc;
    default: return bad(ps, "unknown RESP type byte");
    }
}

/* Maps a whole reply onto the operation's outcome. Anything of the wrong
 * shape (a null, an integer where an array belongs) counts as an error
 * reply rather than garbage: the stream itself is still in sync. */
static bench_reply classify(const resp_val *v, bench_opkind kind)
{
    if (v->type == '-')
        return REPLY_ERROR;
    switch (kind) {
    case OP_PUT: return v->type == ':' ? REPLY_OK : REPLY_ERROR;
    case OP_GET:
        if (v->type != '*' || v->n < 0)
            return REPLY_ERROR;
        return v->n == 0 ? REPLY_MISS : REPLY_OK;
    default: return v->type == '*' && v->n >= 0 ? REPLY_OK : REPLY_ERROR;
    }
}

/* Consumes the next whole reply into *v: 1, 0 if more bytes are needed, or
 * -1 with a message naming `what` the reply answers in err. */
static int take_reply(resp_reader *r, resp_val *v, const char *what, char *err, size_t errlen)
{
    resp_parse ps = {r->buf + r->start, r->buf + r->end, r->max, NULL};
    if (r->start == r->end)
        return 0;
    int rc = parse_value(&ps, 0, v);
    if (rc == P_MORE && r->end - r->start > r->max)
        rc = bad(&ps, "reply larger than the limit");
    if (rc == P_BAD) {
        snprintf(err, errlen, "malformed RESP reply to %s: %s", what, ps.why);
        return -1;
    }
    if (rc == P_MORE)
        return 0;
    r->start = (size_t)(ps.p - r->buf);
    return 1;
}

static void error_text(const resp_val *v, bench_text *msg)
{
    static const char wrong[] = "unexpected reply type";
    msg->ptr = v->type == '-' ? v->line : (const uint8_t *)wrong;
    msg->len = v->type == '-' ? v->line_len : sizeof wrong - 1;
}

static int resp_next_reply(bench_reader *rd, bench_opkind kind, bench_reply *cls, bench_text *msg,
                           char *err, size_t errlen)
{
    resp_val v;
    int rc = take_reply(&rd->resp, &v, bench_op_names[kind], err, errlen);
    if (rc != 1)
        return rc;
    *cls = classify(&v, kind);
    if (*cls == REPLY_ERROR)
        error_text(&v, msg);
    return 1;
}

/* AUTH secret: Redis 6's single-argument form, which checks the default
 * user's password (requirepass). */
static int resp_encode_auth(tkv_buf *out, const uint8_t *secret, size_t len)
{
    if (tkv_buf_reserve(out, 64 + len) < 0)
        return -1;
    char *start = (char *)out->data + out->len, *p = start;
    p = PUT_LIT(p, "*2\r\n$4\r\nAUTH\r\n$");
    p = put_u64(p, len);
    p = PUT_LIT(p, "\r\n");
    if (len)
        p = put_lit(p, (const char *)secret, len);
    p = PUT_LIT(p, "\r\n");
    out->len += (size_t)(p - start);
    return 0;
}

/* +OK, or an error such as -WRONGPASS or -ERR ... without any password. */
static int resp_auth_reply(bench_reader *rd, bench_reply *cls, bench_text *msg, char *err,
                           size_t errlen)
{
    resp_val v;
    int rc = take_reply(&rd->resp, &v, "AUTH", err, errlen);
    if (rc != 1)
        return rc;
    *cls = v.type == '+' ? REPLY_OK : REPLY_ERROR;
    if (*cls == REPLY_ERROR)
        error_text(&v, msg);
    return 1;
}

const bench_driver bench_driver_redis = {
    .name = "redis",
    .default_port = 6379,
    .encode = resp_encode,
    .reader_init = resp_reader_init,
    .reader_deinit = resp_reader_deinit,
    .reader_space = resp_reader_space,
    .reader_commit = resp_reader_commit,
    .pending = resp_pending,
    .next_reply = resp_next_reply,
    .encode_auth = resp_encode_auth,
    .auth_reply = resp_auth_reply,
};
