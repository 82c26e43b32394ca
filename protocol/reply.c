/*
 * reply.c - implements reply.h: the table of reply shapes, the decoder
 * that walks it, and the encoders tkvd writes replies with.
 *
 * The table is the one place a reply's fields are listed. The decoder is
 * generic over it: each field kind has one reader, writing at the field's
 * offset in tkv_rep (or tkv_rep_answer), so adding a command means adding
 * a row, not a decoder. Lists are read once in full at decode time, with
 * the same element readers the iterators use later; a hostile reply is
 * therefore refused as a whole, before a caller has sized anything from it.
 *
 * The encoders write what tkvd has always written, byte for byte (the
 * spec test replays PROTOCOL.md's examples): fixarray headers for the
 * reply itself, a patched array32 for lists whose length is only known at
 * the end, the smallest integer and bin encodings otherwise.
 */
#include "reply.h"

#include <string.h>

#include "frame.h"

/* ---- the table ---------------------------------------------------------- */

#define F(kind, field, name)                                    \
    {                                                           \
        TKV_RF_##kind, (uint16_t)offsetof(tkv_rep, field), name \
    }
#define A(kind, field, name)                                           \
    {                                                                  \
        TKV_RF_##kind, (uint16_t)offsetof(tkv_rep_answer, field), name \
    }
#define SHAPE(fields, min)                                       \
    {                                                            \
        fields, (uint8_t)(sizeof fields / sizeof fields[0]), min \
    }

static const tkv_rfield ping_f[] = {F(TEXT, text, "message")};
static const tkv_rfield put_f[] = {F(UINT, u, "ts")};
static const tkv_rfield del_f[] = {F(UINT, u, "removed")}; /* or a tombstone's ts */
static const tkv_rfield count_f[] = {F(UINT, u, "count")};
static const tkv_rfield range_f[] = {F(ENTRIES, list, "versions"), F(BOOL, truncated, "truncated")};
static const tkv_rfield stats_f[] = {F(STATS, list, "stats")};
static const tkv_rfield mput_f[] = {F(UINTS, list, "timestamps")};
static const tkv_rfield mget_f[] = {F(ANSWERS, list, "answers"), F(BOOL, truncated, "truncated")};
static const tkv_rfield scan_f[] = {F(KEYS, list, "keys"), F(CURSOR, cursor, "cursor")};
static const tkv_rfield retain_f[] = {F(UINT, u, "removable"), F(OPT, horizon, "horizon"),
                                      F(BOOL, flag, "complete")};
static const tkv_rfield policy_f[] = {F(OPT, versions, "versions"), F(OPT, age, "age"),
                                      F(BOOL, flag, "own"), F(OPT, horizon, "horizon")};
static const tkv_rfield digest_f[] = {F(BYTES, data, "digest"), F(UINT, at, "at"),
                                      F(UINT, nkeys, "keys"), F(UINT, nversions, "versions")};
static const tkv_rfield restore_f[] = {F(UINT, u, "written"), F(UINT, skipped, "skipped")};
static const tkv_rfield backup_f[] = {F(BYTES, data, "chunk"), F(BOOL, flag, "last")};
static const tkv_rfield watch_f[] = {F(TEXT, text, "replid"), F(UINT, u, "offset")};
static const tkv_rfield shards_f[] = {F(UINT, u, "revision"), F(SLOTS, list, "ranges")};
static const tkv_rfield slowlog_f[] = {F(UINT, u, "length"), F(SLOWLOG, list, "entries")};
static const tkv_rfield export_f[] = {F(BYTES, data, "records"), F(OPT, horizon, "cursor")};
static const tkv_rfield answer_ok_f[] = {A(BYTES, value, "value"), A(UINT, ts, "ts"),
                                         A(OPT, next, "next"), A(OPT, expires, "expires")};
static const tkv_rfield answer_miss_f[] = {A(UINT, miss, "reason"), A(OPT, next, "next"),
                                           A(OPT, at, "at")};

/* expires and at came later: servers before them sent one field fewer. */
const tkv_rshape tkv_answer_ok = SHAPE(answer_ok_f, 3);
const tkv_rshape tkv_answer_miss = SHAPE(answer_miss_f, 2);

const tkv_reply_desc tkv_reply_descs[TKV_CMD__COUNT] = {
    [TKV_CMD_PING] = {.ok = SHAPE(ping_f, 1)},
    [TKV_CMD_PUT] = {.ok = SHAPE(put_f, 1)},
    [TKV_CMD_GET] = {.ok = SHAPE(answer_ok_f, 3), .miss = SHAPE(answer_miss_f, 2), .answer = true},
    /* RANGE's and MGET's truncated flag came later: absent reads false. */
    [TKV_CMD_RANGE] = {.ok = SHAPE(range_f, 1)},
    [TKV_CMD_DEL] = {.ok = SHAPE(del_f, 1)},
    [TKV_CMD_STATS] = {.ok = SHAPE(stats_f, 1)},
    [TKV_CMD_AUTH] = {.ok = {NULL, 0, 0}},
    [TKV_CMD_COUNT] = {.ok = SHAPE(count_f, 1)},
    [TKV_CMD_MPUT] = {.ok = SHAPE(mput_f, 1)},
    [TKV_CMD_MGET] = {.ok = SHAPE(mget_f, 1)},
    [TKV_CMD_SCAN] = {.ok = SHAPE(scan_f, 2)},
    [TKV_CMD_RETAIN] = {.ok = SHAPE(retain_f, 3)},
    [TKV_CMD_POLICY] = {.ok = SHAPE(policy_f, 4)},
    [TKV_CMD_DIGEST] = {.ok = SHAPE(digest_f, 4)},
    [TKV_CMD_BACKUP] = {.ok = SHAPE(backup_f, 2)},
    [TKV_CMD_RESTORE] = {.ok = SHAPE(restore_f, 2)},
    [TKV_CMD_REPLICAOF] = {.ok = {NULL, 0, 0}},
    /* ROLE answers a map, as STATS does: the fields depend on the role. */
    [TKV_CMD_ROLE] = {.ok = SHAPE(stats_f, 1)},
    [TKV_CMD_WAIT] = {.ok = SHAPE(count_f, 1)},
    /* PSYNC's answer is the replication stream (PROTOCOL.md §10). */
    [TKV_CMD_PSYNC] = {.ok = {NULL, 0, 0}},
    [TKV_CMD_REPLACK] = {.ok = {NULL, 0, 0}},
    /* WATCH's answer is followed by push frames (PROTOCOL.md §11). */
    [TKV_CMD_WATCH] = {.ok = SHAPE(watch_f, 2)},
    /* CLUSTER has one subcommand yet, SHARDS. */
    [TKV_CMD_CLUSTER] = {.ok = SHAPE(shards_f, 2)},
    /* GET lists entries; LEN and RESET answer the length alone. */
    [TKV_CMD_SLOWLOG] = {.ok = SHAPE(slowlog_f, 1)},
    [TKV_CMD_ASKING] = {.ok = {NULL, 0, 0}},
    /* Migration: EXPORTKEY answers a piece of records and the cursor of
     * the next (nil: the last piece); IMPORTKEY the versions written,
     * DROPKEY those removed (RESTORE's and DEL's shapes); SLOTKEYS a page
     * as SCAN does. */
    [TKV_CMD_EXPORTKEY] = {.ok = SHAPE(export_f, 2)},
    [TKV_CMD_IMPORTKEY] = {.ok = SHAPE(count_f, 1)},
    [TKV_CMD_DROPKEY] = {.ok = SHAPE(del_f, 1)},
    [TKV_CMD_SLOTKEYS] = {.ok = SHAPE(scan_f, 2)},
};

/* ---- element readers ------------------------------------------------------ */

static int rd_opt(tkv_mp *m, tkv_rep_opt *o)
{
    o->v = 0;
    o->has = !tkv_mp_read_nil(m);
    return o->has ? tkv_mp_read_uint(m, &o->v) : 0;
}

static int rd_key(tkv_mp *m, tkv_span *k) { return tkv_mp_read_bytes(m, &k->ptr, &k->len); }

/* Skips the elements past the `known` a reader understands. */
static int skip_extra(tkv_mp *m, uint32_t have, uint32_t known)
{
    for (; have > known; have--)
        if (tkv_mp_skip(m) < 0)
            return -1;
    return 0;
}

/* [ts, value or nil, expires?]; later elements are skipped. */
static int rd_entry(tkv_mp *m, tkv_rep_entry *e)
{
    uint32_t n;
    memset(e, 0, sizeof *e);
    if (tkv_mp_read_array(m, &n) < 0 || n < 2 || tkv_mp_read_uint(m, &e->ts) < 0)
        return -1;
    if (!tkv_mp_read_nil(m) && rd_key(m, &e->value) < 0)
        return -1;
    if (n >= 3 && tkv_mp_read_uint(m, &e->expires) < 0)
        return -1;
    return skip_extra(m, n, 3);
}

static int decode_shape(tkv_mp *m, uint32_t have, const tkv_rshape *s, void *base,
                        const char **what);

/* [status, answer fields...] */
static int rd_answer(tkv_mp *m, tkv_rep_answer *a)
{
    uint32_t n;
    const char *what;
    memset(a, 0, sizeof *a);
    if (tkv_mp_read_array(m, &n) < 0 || n < 1 || tkv_mp_read_uint(m, &a->status) < 0 ||
        a->status > TKV_ST_NOT_FOUND)
        return -1;
    return decode_shape(m, n - 1, a->status == TKV_ST_OK ? &tkv_answer_ok : &tkv_answer_miss, a,
                        &what);
}

/* name: uint or str (or bin) */
static int rd_stat(tkv_mp *m, tkv_rep_stat *s)
{
    memset(s, 0, sizeof *s);
    if (rd_key(m, &s->name) < 0)
        return -1;
    if (tkv_mp_read_uint(m, &s->num) == 0)
        return 0;
    s->is_str = true;
    return rd_key(m, &s->str);
}

/* [from, to, primary, [replica...]]; later elements are skipped. */
static int rd_slots(tkv_mp *m, tkv_rep_slots *s)
{
    uint32_t n;
    memset(s, 0, sizeof *s);
    if (tkv_mp_read_array(m, &n) < 0 || n < 4 || tkv_mp_read_uint(m, &s->from) < 0 ||
        tkv_mp_read_uint(m, &s->to) < 0 || rd_key(m, &s->primary) < 0 ||
        tkv_mp_read_array(m, &s->replicas.n) < 0)
        return -1;
    s->replicas.m = *m;
    for (uint32_t i = 0; i < s->replicas.n; i++) {
        tkv_span k;
        if (rd_key(m, &k) < 0)
            return -1;
    }
    return skip_extra(m, n, 4);
}

/* [id, time, duration, command, key, key_len, client]; later elements are
 * skipped. */
static int rd_slow(tkv_mp *m, tkv_rep_slow *e)
{
    uint32_t n;
    memset(e, 0, sizeof *e);
    if (tkv_mp_read_array(m, &n) < 0 || n < 7 || tkv_mp_read_uint(m, &e->id) < 0 ||
        tkv_mp_read_uint(m, &e->time_us) < 0 || tkv_mp_read_uint(m, &e->duration_us) < 0 ||
        rd_key(m, &e->cmd) < 0 || rd_key(m, &e->key) < 0 || tkv_mp_read_uint(m, &e->key_len) < 0 ||
        rd_key(m, &e->client) < 0)
        return -1;
    return skip_extra(m, n, 7);
}

/* Reads a list header into l and checks every element. */
static int rd_list(tkv_mp *m, tkv_rf kind, tkv_rep_list *l)
{
    if (kind == TKV_RF_STATS ? tkv_mp_read_map(m, &l->n) < 0 : tkv_mp_read_array(m, &l->n) < 0)
        return -1;
    l->m = *m;
    for (uint32_t i = 0; i < l->n; i++) {
        union {
            uint64_t u;
            tkv_span k;
            tkv_rep_entry e;
            tkv_rep_answer a;
            tkv_rep_stat s;
            tkv_rep_slots r;
            tkv_rep_slow w;
        } x;
        int rc = kind == TKV_RF_UINTS     ? tkv_mp_read_uint(m, &x.u)
                 : kind == TKV_RF_KEYS    ? rd_key(m, &x.k)
                 : kind == TKV_RF_ENTRIES ? rd_entry(m, &x.e)
                 : kind == TKV_RF_ANSWERS ? rd_answer(m, &x.a)
                 : kind == TKV_RF_SLOTS   ? rd_slots(m, &x.r)
                 : kind == TKV_RF_SLOWLOG ? rd_slow(m, &x.w)
                                          : rd_stat(m, &x.s);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int rd_field(tkv_mp *m, const tkv_rfield *f, void *base)
{
    void *at = (char *)base + f->off;
    switch (f->kind) {
    case TKV_RF_UINT: return tkv_mp_read_uint(m, at);
    case TKV_RF_OPT: return rd_opt(m, at);
    case TKV_RF_BOOL: return tkv_mp_read_bool(m, at);
    case TKV_RF_BYTES: return rd_key(m, at);
    case TKV_RF_TEXT: {
        tkv_rep_text *t = at;
        tkv_mp_type ty;
        if (tkv_mp_peek(m, &ty) < 0)
            return -1;
        t->is_str = ty == TKV_MP_STR;
        return rd_key(m, &t->s);
    }
    case TKV_RF_CURSOR: {
        tkv_span *c = at;
        if (tkv_mp_read_nil(m)) {
            *c = (tkv_span){NULL, 0};
            return 0;
        }
        return rd_key(m, c);
    }
    default: return rd_list(m, f->kind, at);
    }
}

/* The `have` elements after a status, read as shape s into base. */
static int decode_shape(tkv_mp *m, uint32_t have, const tkv_rshape *s, void *base,
                        const char **what)
{
    if (have < s->min) {
        *what = s->f[have].name;
        return TKV_REP_EPROTO;
    }
    for (uint32_t i = 0; i < s->n && i < have; i++) {
        if (rd_field(m, &s->f[i], base) < 0) {
            *what = s->f[i].name;
            return TKV_REP_EPROTO;
        }
    }
    if (skip_extra(m, have, s->n) < 0) {
        *what = "trailing fields";
        return TKV_REP_EPROTO;
    }
    return 0;
}

static int fail(tkv_rep *rep, const char *what)
{
    rep->what = what;
    return TKV_REP_EPROTO;
}

int tkv_rep_decode(tkv_cmd cmd, const uint8_t *p, size_t n, tkv_rep *rep)
{
    memset(rep, 0, sizeof *rep);
    rep->cmd = cmd;
    if ((unsigned)cmd >= TKV_CMD__COUNT)
        return fail(rep, "unknown command");
    /* A whole, well-formed value first: the readers below may then skip
     * fields they do not know without re-checking them. */
    if (tkv_mp_validate(p, n) < 0)
        return fail(rep, "not a MessagePack value");
    tkv_mp m;
    uint32_t count;
    if (tkv_reply_head(p, n, &m, &count, &rep->status, &rep->errmsg) < 0)
        return fail(rep, "status");
    rep->nfields = count - 1;
    if (rep->status > TKV_ST_NOT_FOUND)
        return 0;
    const tkv_reply_desc *d = &tkv_reply_descs[cmd];
    if (rep->status == TKV_ST_NOT_FOUND && d->miss.n == 0)
        return fail(rep, "NOT_FOUND for a command that cannot miss");
    void *base = rep;
    if (d->answer) {
        rep->answer.status = rep->status;
        base = &rep->answer;
    }
    return decode_shape(&m, rep->nfields, rep->status == TKV_ST_OK ? &d->ok : &d->miss, base,
                        &rep->what);
}

/* After tkv_rep_decode() every element reads; the checks only guard
 * against a list used with the wrong iterator. */
bool tkv_rep_next_uint(tkv_rep_list *l, uint64_t *v)
{
    return l->n && tkv_mp_read_uint(&l->m, v) == 0 && (l->n--, true);
}

bool tkv_rep_next_key(tkv_rep_list *l, tkv_span *key)
{
    return l->n && rd_key(&l->m, key) == 0 && (l->n--, true);
}

bool tkv_rep_next_entry(tkv_rep_list *l, tkv_rep_entry *e)
{
    return l->n && rd_entry(&l->m, e) == 0 && (l->n--, true);
}

bool tkv_rep_next_answer(tkv_rep_list *l, tkv_rep_answer *a)
{
    return l->n && rd_answer(&l->m, a) == 0 && (l->n--, true);
}

bool tkv_rep_next_stat(tkv_rep_list *l, tkv_rep_stat *s)
{
    return l->n && rd_stat(&l->m, s) == 0 && (l->n--, true);
}

bool tkv_rep_next_slots(tkv_rep_list *l, tkv_rep_slots *s)
{
    return l->n && rd_slots(&l->m, s) == 0 && (l->n--, true);
}

bool tkv_rep_next_slow(tkv_rep_list *l, tkv_rep_slow *e)
{
    return l->n && rd_slow(&l->m, e) == 0 && (l->n--, true);
}

/* ---- encoders --------------------------------------------------------------- */

static void pack_opt(msgpack_packer *pk, tkv_rep_opt o)
{
    if (o.has)
        msgpack_pack_uint64(pk, o.v);
    else
        msgpack_pack_nil(pk);
}

static void pack_bool(msgpack_packer *pk, bool b)
{
    if (b)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* Opens [0, ...] with n elements in all. */
static void begin(tkv_rep_wr *lw, tkv_buf *b, uint32_t n)
{
    memset(lw, 0, sizeof *lw);
    tkv_wr_begin(&lw->w, b);
    msgpack_pack_array(&lw->w.pk, n);
    msgpack_pack_uint8(&lw->w.pk, TKV_ST_OK);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static int put_text(tkv_buf *b, tkv_span s, bool is_str)
{
    tkv_rep_wr lw;
    begin(&lw, b, 2);
    if (is_str)
        pack_str(&lw.w.pk, (const char *)s.ptr, s.len);
    else
        tkv_pack_bytes(&lw.w.pk, s.ptr, s.len);
    return tkv_wr_end(&lw.w);
}

int tkv_rep_put_ping(tkv_buf *b, const tkv_span *msg)
{
    return msg ? put_text(b, *msg, false)
               : put_text(b, (tkv_span){(const uint8_t *)"PONG", 4}, true);
}

int tkv_rep_put_empty(tkv_buf *b)
{
    tkv_rep_wr lw;
    begin(&lw, b, 1);
    return tkv_wr_end(&lw.w);
}

int tkv_rep_put_retain(tkv_buf *b, uint64_t removable, tkv_rep_opt horizon, bool complete)
{
    tkv_rep_wr lw;
    begin(&lw, b, 4);
    msgpack_pack_uint64(&lw.w.pk, removable);
    pack_opt(&lw.w.pk, horizon);
    pack_bool(&lw.w.pk, complete);
    return tkv_wr_end(&lw.w);
}

int tkv_rep_put_policy(tkv_buf *b, tkv_rep_opt versions, tkv_rep_opt age, bool own,
                       tkv_rep_opt horizon)
{
    tkv_rep_wr lw;
    begin(&lw, b, 5);
    pack_opt(&lw.w.pk, versions);
    pack_opt(&lw.w.pk, age);
    pack_bool(&lw.w.pk, own);
    pack_opt(&lw.w.pk, horizon);
    return tkv_wr_end(&lw.w);
}

int tkv_rep_put_restore(tkv_buf *b, uint64_t written, uint64_t skipped)
{
    tkv_rep_wr lw;
    begin(&lw, b, 3);
    msgpack_pack_uint64(&lw.w.pk, written);
    msgpack_pack_uint64(&lw.w.pk, skipped);
    return tkv_wr_end(&lw.w);
}

int tkv_rep_put_export(tkv_buf *b, tkv_span records, tkv_rep_opt cursor)
{
    tkv_rep_wr lw;
    begin(&lw, b, 3);
    tkv_pack_bytes(&lw.w.pk, records.ptr, records.len);
    pack_opt(&lw.w.pk, cursor);
    return tkv_wr_end(&lw.w);
}

int tkv_rep_put_watch(tkv_buf *b, const char *replid, uint64_t offset)
{
    tkv_rep_wr lw;
    size_t n = strlen(replid);
    begin(&lw, b, 3);
    msgpack_pack_str(&lw.w.pk, n);
    msgpack_pack_str_body(&lw.w.pk, replid, n);
    msgpack_pack_uint64(&lw.w.pk, offset);
    return tkv_wr_end(&lw.w);
}

int tkv_rep_put_digest(tkv_buf *b, const uint8_t *digest, uint32_t len, uint64_t at, uint64_t keys,
                       uint64_t versions)
{
    tkv_rep_wr lw;
    begin(&lw, b, 5);
    tkv_pack_bytes(&lw.w.pk, digest, len);
    msgpack_pack_uint64(&lw.w.pk, at);
    msgpack_pack_uint64(&lw.w.pk, keys);
    msgpack_pack_uint64(&lw.w.pk, versions);
    return tkv_wr_end(&lw.w);
}

/* [0, array32 (patched by end_list), ...] */
static void begin_list(tkv_rep_wr *lw, tkv_buf *b, uint32_t n)
{
    static const uint8_t arr32[5] = {0xdd, 0, 0, 0, 0};
    begin(lw, b, n);
    lw->list_at = b->len;
    if (tkv_buf_append(b, arr32, sizeof arr32) < 0)
        lw->w.failed = true;
}

static void end_list(tkv_rep_wr *lw)
{
    if (!lw->w.failed)
        tkv_frame_put_header(lw->w.b->data + lw->list_at + 1, lw->n);
}

/* Room for n more bytes at the end of the frame, or NULL (sticky). */
static uint8_t *room(tkv_rep_wr *lw, size_t n)
{
    if (lw->w.failed || tkv_buf_reserve(lw->w.b, n) < 0) {
        lw->w.failed = true;
        return NULL;
    }
    return lw->w.b->data + lw->w.b->len;
}

static void advance(tkv_rep_wr *lw, const uint8_t *end)
{
    lw->w.b->len = (size_t)(end - lw->w.b->data);
    lw->n++;
}

void tkv_rep_range_begin(tkv_rep_wr *lw, tkv_buf *b) { begin_list(lw, b, 3); }

void tkv_rep_range_entry(tkv_rep_wr *lw, uint64_t ts, const void *value, uint32_t len,
                         uint64_t expires)
{
    uint8_t *p = room(lw, tkv_rep_entry_room(len));
    if (!p)
        return;
    *p++ = expires ? 0x93 : 0x92;
    p = tkv_mpw_uint(p, ts);
    if (value) {
        p = tkv_mpw_bin(p, value, len);
    } else {
        *p++ = 0xc0; /* a tombstone */
    }
    if (expires)
        p = tkv_mpw_uint(p, expires);
    advance(lw, p);
}

static int end_flagged(tkv_rep_wr *lw, bool flag)
{
    end_list(lw);
    pack_bool(&lw->w.pk, flag);
    return tkv_wr_end(&lw->w);
}

int tkv_rep_range_end(tkv_rep_wr *lw, bool truncated) { return end_flagged(lw, truncated); }

void tkv_rep_mget_begin(tkv_rep_wr *lw, tkv_buf *b) { begin_list(lw, b, 3); }

void tkv_rep_mget_answer(tkv_rep_wr *lw, const tkv_rep_answer *a)
{
    uint8_t *p = room(lw, tkv_rep_answer_room(a));
    if (p)
        advance(lw, tkv_rep_write_answer(p, a));
}

int tkv_rep_mget_end(tkv_rep_wr *lw, bool truncated) { return end_flagged(lw, truncated); }

void tkv_rep_scan_begin(tkv_rep_wr *lw, tkv_buf *b) { begin_list(lw, b, 3); }

void tkv_rep_scan_key(tkv_rep_wr *lw, const void *key, uint32_t len)
{
    uint8_t *p = room(lw, tkv_rep_key_room(len));
    if (!p)
        return;
    uint8_t *end = tkv_mpw_bin(p, key, len);
    lw->last_off = (size_t)(end - len - lw->w.b->data);
    lw->last_len = len;
    advance(lw, end);
}

int tkv_rep_scan_end_at(tkv_rep_wr *lw, tkv_span cursor)
{
    end_list(lw);
    if (cursor.ptr)
        tkv_pack_bytes(&lw->w.pk, cursor.ptr, cursor.len);
    else
        msgpack_pack_nil(&lw->w.pk);
    return tkv_wr_end(&lw->w);
}

int tkv_rep_scan_end(tkv_rep_wr *lw, bool more)
{
    end_list(lw);
    if (more && lw->n > 0) {
        /* The cursor repeats the last key. Reserve first: the copy's
         * source is in the same buffer, which reserving may move. */
        uint8_t *p = room(lw, tkv_rep_key_room(lw->last_len));
        if (p) {
            const uint8_t *last = lw->w.b->data + lw->last_off;
            lw->w.b->len = (size_t)(tkv_mpw_bin(p, last, lw->last_len) - lw->w.b->data);
        }
    } else {
        msgpack_pack_nil(&lw->w.pk);
    }
    return tkv_wr_end(&lw->w);
}

void tkv_rep_mput_begin(tkv_rep_wr *lw, tkv_buf *b, uint32_t n)
{
    begin(lw, b, 2);
    msgpack_pack_array(&lw->w.pk, n);
}

void tkv_rep_mput_ts(tkv_rep_wr *lw, uint64_t ts)
{
    msgpack_pack_uint64(&lw->w.pk, ts);
    lw->n++;
}

int tkv_rep_mput_end(tkv_rep_wr *lw) { return tkv_wr_end(&lw->w); }

void tkv_rep_stats_begin(tkv_rep_wr *lw, tkv_buf *b, uint32_t n)
{
    begin(lw, b, 2);
    msgpack_pack_map(&lw->w.pk, n);
}

void tkv_rep_stats_uint(tkv_rep_wr *lw, const char *name, size_t nlen, uint64_t v)
{
    pack_str(&lw->w.pk, name, nlen);
    msgpack_pack_uint64(&lw->w.pk, v);
    lw->n++;
}

void tkv_rep_stats_str(tkv_rep_wr *lw, const char *name, size_t nlen, const char *v, size_t vlen)
{
    pack_str(&lw->w.pk, name, nlen);
    pack_str(&lw->w.pk, v, vlen);
    lw->n++;
}

int tkv_rep_stats_end(tkv_rep_wr *lw) { return tkv_wr_end(&lw->w); }

void tkv_rep_shards_begin(tkv_rep_wr *lw, tkv_buf *b, uint64_t revision, uint32_t n)
{
    begin(lw, b, 3);
    msgpack_pack_uint64(&lw->w.pk, revision);
    msgpack_pack_array(&lw->w.pk, n);
}

void tkv_rep_shards_range(tkv_rep_wr *lw, uint64_t from, uint64_t to, tkv_span primary,
                          uint32_t nrep)
{
    msgpack_pack_array(&lw->w.pk, 4);
    msgpack_pack_uint64(&lw->w.pk, from);
    msgpack_pack_uint64(&lw->w.pk, to);
    pack_str(&lw->w.pk, (const char *)primary.ptr, primary.len);
    msgpack_pack_array(&lw->w.pk, nrep);
    lw->n++;
}

void tkv_rep_shards_replica(tkv_rep_wr *lw, tkv_span addr)
{
    pack_str(&lw->w.pk, (const char *)addr.ptr, addr.len);
}

int tkv_rep_shards_end(tkv_rep_wr *lw) { return tkv_wr_end(&lw->w); }

void tkv_rep_slowlog_begin(tkv_rep_wr *lw, tkv_buf *b, uint64_t length, uint32_t n)
{
    begin(lw, b, 3);
    msgpack_pack_uint64(&lw->w.pk, length);
    msgpack_pack_array(&lw->w.pk, n);
}

void tkv_rep_slowlog_entry(tkv_rep_wr *lw, const tkv_rep_slow *e)
{
    msgpack_packer *pk = &lw->w.pk;
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint64(pk, e->id);
    msgpack_pack_uint64(pk, e->time_us);
    msgpack_pack_uint64(pk, e->duration_us);
    pack_str(pk, (const char *)e->cmd.ptr, e->cmd.len);
    tkv_pack_bytes(pk, e->key.ptr, e->key.len);
    msgpack_pack_uint64(pk, e->key_len);
    pack_str(pk, (const char *)e->client.ptr, e->client.len);
    lw->n++;
}

int tkv_rep_slowlog_end(tkv_rep_wr *lw) { return tkv_wr_end(&lw->w); }

void tkv_rep_abort(tkv_rep_wr *lw) { lw->w.b->len = lw->w.start; }

/* ---- re-encoding a decoded reply ------------------------------------------------ */

static int encode_list(tkv_buf *b, const tkv_rep *rep)
{
    tkv_rep_wr lw;
    tkv_rep_list l = rep->list;
    switch (rep->cmd) {
    case TKV_CMD_RANGE: {
        tkv_rep_entry e;
        tkv_rep_range_begin(&lw, b);
        while (tkv_rep_next_entry(&l, &e))
            tkv_rep_range_entry(&lw, e.ts, e.value.ptr, e.value.len, e.expires);
        return tkv_rep_range_end(&lw, rep->truncated);
    }
    case TKV_CMD_MGET: {
        tkv_rep_answer a;
        tkv_rep_mget_begin(&lw, b);
        while (tkv_rep_next_answer(&l, &a))
            tkv_rep_mget_answer(&lw, &a);
        return tkv_rep_mget_end(&lw, rep->truncated);
    }
    case TKV_CMD_SCAN:
    case TKV_CMD_SLOTKEYS: {
        tkv_span k;
        tkv_rep_scan_begin(&lw, b);
        while (tkv_rep_next_key(&l, &k))
            tkv_rep_scan_key(&lw, k.ptr, k.len);
        /* tkvd's SCAN cursor is always the last key listed; SLOTKEYS's is
         * the last key examined. */
        if (rep->cmd == TKV_CMD_SLOTKEYS)
            return tkv_rep_scan_end_at(&lw, rep->cursor);
        return tkv_rep_scan_end(&lw, rep->cursor.ptr != NULL);
    }
    case TKV_CMD_MPUT: {
        uint64_t ts;
        tkv_rep_mput_begin(&lw, b, l.n);
        while (tkv_rep_next_uint(&l, &ts))
            tkv_rep_mput_ts(&lw, ts);
        return tkv_rep_mput_end(&lw);
    }
    case TKV_CMD_CLUSTER: {
        tkv_rep_slots r;
        tkv_span a;
        tkv_rep_shards_begin(&lw, b, rep->u, l.n);
        while (tkv_rep_next_slots(&l, &r)) {
            tkv_rep_shards_range(&lw, r.from, r.to, r.primary, r.replicas.n);
            while (tkv_rep_next_key(&r.replicas, &a))
                tkv_rep_shards_replica(&lw, a);
        }
        return tkv_rep_shards_end(&lw);
    }
    case TKV_CMD_SLOWLOG: {
        tkv_rep_slow e;
        tkv_rep_slowlog_begin(&lw, b, rep->u, l.n);
        while (tkv_rep_next_slow(&l, &e))
            tkv_rep_slowlog_entry(&lw, &e);
        return tkv_rep_slowlog_end(&lw);
    }
    default: { /* STATS */
        tkv_rep_stat s;
        tkv_rep_stats_begin(&lw, b, l.n);
        while (tkv_rep_next_stat(&l, &s)) {
            if (s.is_str)
                tkv_rep_stats_str(&lw, (const char *)s.name.ptr, s.name.len,
                                  (const char *)s.str.ptr, s.str.len);
            else
                tkv_rep_stats_uint(&lw, (const char *)s.name.ptr, s.name.len, s.num);
        }
        return tkv_rep_stats_end(&lw);
    }
    }
}

/* WATCH's [0, replid, offset] as decoded: the id as it came, str or bin. */
static int put_watch(tkv_buf *b, const tkv_rep *rep)
{
    tkv_rep_wr lw;
    begin(&lw, b, 3);
    if (rep->text.is_str)
        pack_str(&lw.w.pk, (const char *)rep->text.s.ptr, rep->text.s.len);
    else
        tkv_pack_bytes(&lw.w.pk, rep->text.s.ptr, rep->text.s.len);
    msgpack_pack_uint64(&lw.w.pk, rep->u);
    return tkv_wr_end(&lw.w);
}

int tkv_rep_encode(tkv_buf *b, const tkv_rep *rep)
{
    switch (rep->cmd) {
    case TKV_CMD_PING: return put_text(b, rep->text.s, rep->text.is_str);
    case TKV_CMD_PUT:
    case TKV_CMD_DEL:
    case TKV_CMD_IMPORTKEY:
    case TKV_CMD_DROPKEY:
    case TKV_CMD_COUNT: return tkv_rep_put_uint(b, rep->u);
    case TKV_CMD_EXPORTKEY: return tkv_rep_put_export(b, rep->data, rep->horizon);
    case TKV_CMD_GET: return tkv_rep_put_answer(b, &rep->answer);
    case TKV_CMD_AUTH:
    case TKV_CMD_ASKING:
    case TKV_CMD_REPLICAOF:
    case TKV_CMD_PSYNC:
    case TKV_CMD_REPLACK: return tkv_rep_put_empty(b);
    case TKV_CMD_WAIT: return tkv_rep_put_uint(b, rep->u);
    case TKV_CMD_WATCH: return put_watch(b, rep);
    case TKV_CMD_RETAIN: return tkv_rep_put_retain(b, rep->u, rep->horizon, rep->flag);
    case TKV_CMD_POLICY:
        return tkv_rep_put_policy(b, rep->versions, rep->age, rep->flag, rep->horizon);
    case TKV_CMD_DIGEST:
        return tkv_rep_put_digest(b, rep->data.ptr, rep->data.len, rep->at, rep->nkeys,
                                  rep->nversions);
    case TKV_CMD_RESTORE: return tkv_rep_put_restore(b, rep->u, rep->skipped);
    case TKV_CMD_BACKUP: return tkv_rep_put_chunk(b, rep->data.ptr, rep->data.len, rep->flag);
    case TKV_CMD_RANGE:
    case TKV_CMD_MGET:
    case TKV_CMD_SCAN:
    case TKV_CMD_SLOTKEYS:
    case TKV_CMD_MPUT:
    case TKV_CMD_ROLE:
    case TKV_CMD_CLUSTER:
    case TKV_CMD_STATS: return encode_list(b, rep);
    /* LEN and RESET: the length alone. */
    case TKV_CMD_SLOWLOG:
        return rep->nfields < 2 ? tkv_rep_put_uint(b, rep->u) : encode_list(b, rep);
    default: return -1;
    }
}
