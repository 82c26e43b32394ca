/*
 * repl.c - libtkvclient's replication calls: REPLICAOF, ROLE and WAIT.
 *
 * ROLE answers a map of name -> uint or str, the shape of STATS, because
 * its fields depend on the role and will grow: reply.c copies it into the
 * context as STATS fields, and this file reads the ones it knows into a
 * tkv_role_info from a table, keeping every field (unknown ones too) for
 * callers that want them. A primary lists its replicas as flat fields,
 * replica<i>_addr, replica<i>_state... for i below "replicas"; that count
 * comes from the server, so it is bounded by the fields actually received
 * before anything is allocated for it.
 */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* A field ROLE may send that the library knows: its name, its type, and
 * where it lands (in tkv_role_info, or tkv_replica_info for the suffix of
 * replica<i>_NAME). */
typedef struct role_field {
    const char *name;
    bool is_str;
    size_t off;
} role_field;

#define R(name, is_str, field)                       \
    {                                                \
        name, is_str, offsetof(tkv_role_info, field) \
    }
static const role_field role_fields[] = {
    R("role", true, role),
    R("replid", true, replid),
    R("offset", false, offset),
    R("primary", true, primary),
    R("link", true, link),
    R("primary_offset", false, primary_offset),
    R("lag_bytes", false, lag_bytes),
    R("last_io_ms", false, last_io_ms),
};
#undef R

#define P(name, is_str, field)                          \
    {                                                   \
        name, is_str, offsetof(tkv_replica_info, field) \
    }
static const role_field replica_fields[] = {
    P("addr", true, addr),      P("state", true, state),
    P("offset", false, offset), P("lag_bytes", false, lag_bytes),
    P("lag_ms", false, lag_ms),
};
#undef P

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Stores s into base if its name is one of table's; a known name with the
 * other type is a malformed reply. Returns 0 or TKV_ERR. */
static int take_field(tkv_ctx *c, const role_field *table, size_t n, const char *name,
                      const tkv_stat *s, void *base)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].name, name) != 0)
            continue;
        if (table[i].is_str != (s->is_str != 0))
            return cl_set_err(c, TKV_EK_PROTOCOL, "malformed reply to ROLE: %s is not a %s",
                              s->name, table[i].is_str ? "string" : "number");
        void *at = (char *)base + table[i].off;
        if (table[i].is_str)
            memcpy(at, &s->str, sizeof s->str);
        else
            memcpy(at, &s->num, sizeof s->num);
        return TKV_OK;
    }
    return TKV_OK; /* unknown: kept in fields only */
}

/* For "replica<i>_<suffix>" sets *i and returns the suffix; else NULL.
 * Digits only, no sign or space, and no index that cannot be a replica's
 * ("replicas" itself does not match). */
static const char *replica_suffix(const char *name, size_t *i)
{
    if (strncmp(name, "replica", 7) != 0)
        return NULL;
    const char *p = name + 7;
    size_t v = 0;
    if (*p < '0' || *p > '9')
        return NULL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (SIZE_MAX - 9) / 10)
            return NULL;
        v = v * 10 + (size_t)(*p - '0');
    }
    if (*p != '_')
        return NULL;
    *i = v;
    return p + 1;
}

/* The replicas of a primary: "replicas" names how many. */
static int take_replicas(tkv_ctx *c, const tkv_stat *f, size_t n, tkv_role_info *out)
{
    uint64_t count = 0;
    size_t described = 0, i;
    for (size_t k = 0; k < n; k++) {
        described += replica_suffix(f[k].name, &i) != NULL;
        if (strcmp(f[k].name, "replicas") != 0)
            continue;
        if (f[k].is_str)
            return cl_set_err(c, TKV_EK_PROTOCOL,
                              "malformed reply to ROLE: replicas is not a number");
        count = f[k].num;
    }
    if (count == 0)
        return TKV_OK;
    /* Each replica comes with fields of its own in the same map: a count
     * beyond them is not believed, nor sized from. */
    if (count > described)
        return cl_set_err(c, TKV_EK_PROTOCOL,
                          "malformed reply to ROLE: %llu replicas, fields for at most %zu",
                          (unsigned long long)count, described);
    if (cl_grow(c, (void **)&c->replicas, &c->replicas_cap, (size_t)count,
                sizeof(tkv_replica_info)) < 0)
        return TKV_ERR;
    memset(c->replicas, 0, (size_t)count * sizeof(tkv_replica_info));
    for (size_t k = 0; k < n; k++) {
        const char *suffix = replica_suffix(f[k].name, &i);
        if (suffix && i < count &&
            take_field(c, replica_fields, N(replica_fields), suffix, &f[k], &c->replicas[i]) < 0)
            return TKV_ERR;
    }
    out->replicas = c->replicas;
    out->n_replicas = (size_t)count;
    return TKV_OK;
}

/* Reads the fields of a ROLE reply (owned by the context) into *out. */
static int read_role(tkv_ctx *c, const tkv_stat *f, size_t n, tkv_role_info *out)
{
    for (size_t k = 0; k < n; k++)
        if (take_field(c, role_fields, N(role_fields), f[k].name, &f[k], out) < 0)
            return TKV_ERR;
    if (!out->role)
        return cl_set_err(c, TKV_EK_PROTOCOL, "malformed reply to ROLE: no role");
    out->is_replica = strcmp(out->role, "replica") == 0;
    out->fields = f;
    out->n_fields = n;
    return take_replicas(c, f, n, out);
}

int tkv_role(tkv_ctx *c, tkv_role_info *out)
{
    tkv_reply r;
    memset(out, 0, sizeof *out);
    if (cl_no_backlog(c) < 0 || tkv_append_role(c) < 0 || tkv_read_reply(c, &r) != TKV_OK)
        return TKV_ERR;
    if (read_role(c, r.stats, r.n_stats, out) < 0) {
        memset(out, 0, sizeof *out);
        return TKV_ERR;
    }
    return TKV_OK;
}

int tkv_replicaof(tkv_ctx *c, const char *host, uint16_t port)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    size_t len = host ? strlen(host) : 0;
    /* The server's limits (PROTOCOL.md, REPLICAOF), checked here so that a
     * NULL host cannot turn into NO ONE by mistake. */
    if (len == 0 || len > 255)
        return cl_set_err(c, TKV_EK_USAGE, "REPLICAOF takes a host of 1 to 255 bytes");
    if (port == 0)
        return cl_set_err(c, TKV_EK_USAGE, "REPLICAOF takes a port from 1 to 65535");
    tkv_req q = {.cmd = TKV_CMD_REPLICAOF, .host = cl_span(host, len), .port = port};
    if (cl_append_req(c, &q) < 0)
        return TKV_ERR;
    return tkv_read_reply(c, &r);
}

int tkv_replicaof_none(tkv_ctx *c)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0)
        return TKV_ERR;
    tkv_req q = {.cmd = TKV_CMD_REPLICAOF}; /* host.ptr NULL: NO ONE */
    if (cl_append_req(c, &q) < 0)
        return TKV_ERR;
    return tkv_read_reply(c, &r);
}

int tkv_wait(tkv_ctx *c, uint64_t nreplicas, uint64_t timeout_ms, uint64_t *acked)
{
    tkv_reply r;
    if (cl_no_backlog(c) < 0 || tkv_append_wait(c, nreplicas, timeout_ms) < 0)
        return TKV_ERR;
    /* The server may rightly take timeout_ms to answer: the context's
     * timeout, meant for a server that stopped answering, counts from
     * there. */
    int saved = c->timeout_ms;
    if (saved > 0 && timeout_ms > 0)
        c->timeout_ms =
            timeout_ms >= (uint64_t)(INT_MAX - saved) ? INT_MAX : saved + (int)timeout_ms;
    int rc = tkv_read_reply(c, &r);
    c->timeout_ms = saved;
    if (rc == TKV_OK && acked)
        *acked = r.count;
    return rc;
}

int tkv_append_role(tkv_ctx *c)
{
    tkv_req q = {.cmd = TKV_CMD_ROLE};
    return cl_append_req(c, &q);
}

int tkv_append_wait(tkv_ctx *c, uint64_t nreplicas, uint64_t timeout_ms)
{
    tkv_req q = {.cmd = TKV_CMD_WAIT, .nreplicas = nreplicas, .timeout_ms = timeout_ms};
    return cl_append_req(c, &q);
}
