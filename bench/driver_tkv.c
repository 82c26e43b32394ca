/*
 * driver_tkv.c - implements the tkv driver of driver.h on top of protocol/:
 * tkv_req_encode() writes requests, tkv_frame_reader splits the reply
 * stream, tkv_rep_decode() reads each reply.
 *
 * Replies go through the same decoder as libtkvclient's, which checks them
 * against the command's shape in protocol/reply.c, so a server that answers
 * with something other than the protocol's replies is caught, not counted
 * as a success.
 */
#include <stdio.h>

#include "driver.h"
#include "proto.h"
#include "reply.h"

static int tkv_encode(tkv_buf *out, const bench_op *op)
{
    char key[BENCH_KEY_LEN];
    bench_key(key, op->key);
    tkv_req req = {.key = {(const uint8_t *)key, BENCH_KEY_LEN}};
    switch (op->kind) {
    case OP_PUT:
        req.cmd = TKV_CMD_PUT;
        req.value = (tkv_span){op->value, op->value_len};
        req.ts = op->ts;
        req.has_ts = true;
        break;
    case OP_GET:
        req.cmd = TKV_CMD_GET;
        req.ts = op->ts;
        req.has_ts = op->ts != BENCH_TS_LATEST;
        break;
    default:
        req.cmd = TKV_CMD_RANGE;
        req.from = op->ts;
        req.to = op->to == BENCH_TS_LATEST ? TKV_TS_MAX : op->to;
        req.limit = op->limit;
        break;
    }
    return tkv_req_encode(out, &req);
}

static void tkv_reader_init(bench_reader *r, size_t max_reply)
{
    tkv_frame_reader_init(&r->tkv, max_reply);
}

static void tkv_reader_deinit(bench_reader *r)
{
    if (r)
        tkv_frame_reader_deinit(&r->tkv);
}

static int tkv_reader_space(bench_reader *r, size_t want, uint8_t **p, size_t *avail)
{
    return tkv_frame_reader_space(&r->tkv, want, p, avail) < 0 ? -1 : 0;
}

static void tkv_reader_commit(bench_reader *r, size_t n) { tkv_frame_reader_commit(&r->tkv, n); }

static size_t tkv_pending(const bench_reader *r) { return tkv_frame_reader_pending(&r->tkv); }

static const tkv_cmd op_cmd[OP__COUNT] = {
    [OP_PUT] = TKV_CMD_PUT, [OP_GET] = TKV_CMD_GET, [OP_RANGE] = TKV_CMD_RANGE};

/* Decodes a reply to cmd (named `what` in messages): OK, a miss (only GET
 * can), or an error status with its message. */
static int classify(const uint8_t *frame, size_t len, tkv_cmd cmd, const char *what,
                    bench_reply *cls, bench_text *msg, char *err, size_t errlen)
{
    tkv_rep rep;
    if (tkv_rep_decode(cmd, frame, len, &rep) < 0) {
        snprintf(err, errlen, "malformed reply (%zu bytes) to %s: %s", len, what, rep.what);
        return -1;
    }
    if (rep.status == TKV_ST_OK) {
        *cls = REPLY_OK;
    } else if (rep.status == TKV_ST_NOT_FOUND) {
        *cls = REPLY_MISS;
    } else if (rep.status >= TKV_ST_BAD_REQUEST) {
        *cls = REPLY_ERROR;
        msg->ptr = rep.errmsg.ptr;
        msg->len = rep.errmsg.len;
    } else {
        snprintf(err, errlen, "reply to %s has the unknown status %llu", what,
                 (unsigned long long)rep.status);
        return -1;
    }
    return 1;
}

/* The next whole reply frame: 1 with *frame and *len set, 0 if more bytes
 * are needed, -1 with a message in err. */
static int next_frame(bench_reader *r, const uint8_t **frame, size_t *len, char *err, size_t errlen)
{
    int rc = tkv_frame_reader_next(&r->tkv, frame, len);
    if (rc == TKV_FRAME_AGAIN)
        return 0;
    if (rc == TKV_FRAME_ETOOBIG) {
        snprintf(err, errlen, "reply frame of %u bytes exceeds the %zu-byte limit", r->tkv.bad_len,
                 r->tkv.max_frame);
        return -1;
    }
    if (rc != TKV_FRAME_OK) {
        snprintf(err, errlen, "out of memory reading replies");
        return -1;
    }
    return 1;
}

static int tkv_next_reply(bench_reader *r, bench_opkind kind, bench_reply *cls, bench_text *msg,
                          char *err, size_t errlen)
{
    const uint8_t *frame;
    size_t len;
    int rc = next_frame(r, &frame, &len, err, errlen);
    return rc == 1 ? classify(frame, len, op_cmd[kind], bench_op_names[kind], cls, msg, err, errlen)
                   : rc;
}

static int tkv_encode_auth(tkv_buf *out, const uint8_t *secret, size_t len)
{
    tkv_req req = {.cmd = TKV_CMD_AUTH, .msg = {secret, (uint32_t)len}, .has_msg = true};
    return tkv_req_encode(out, &req);
}

/* AUTH answers [0], or [status, message]: 31 for a wrong secret, 10 from a
 * server that has no secret. */
static int tkv_auth_reply(bench_reader *r, bench_reply *cls, bench_text *msg, char *err,
                          size_t errlen)
{
    const uint8_t *frame;
    size_t len;
    int rc = next_frame(r, &frame, &len, err, errlen);
    return rc == 1 ? classify(frame, len, TKV_CMD_AUTH, "AUTH", cls, msg, err, errlen) : rc;
}

const bench_driver bench_driver_tkv = {
    .name = "tkv",
    .default_port = 7379,
    .encode = tkv_encode,
    .reader_init = tkv_reader_init,
    .reader_deinit = tkv_reader_deinit,
    .reader_space = tkv_reader_space,
    .reader_commit = tkv_reader_commit,
    .pending = tkv_pending,
    .next_reply = tkv_next_reply,
    .encode_auth = tkv_encode_auth,
    .auth_reply = tkv_auth_reply,
};
