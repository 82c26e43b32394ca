/*
 * tkvctl_repl.c - tkvctl's replication commands: replicaof, role, wait.
 *
 * role prints what libtkvclient read from ROLE (tkv_role_info) in a fixed
 * order, a primary's replicas one per line, then any field this tkvctl
 * does not know as "name: value", so a newer server's fields still show.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tkvctl.h"
#include "units.h"

int parse_replicaof(const args *a, const char **host, uint16_t *port)
{
    if (strcasecmp(a->pos[0], "no") == 0 && strcasecmp(a->pos[1], "one") == 0) {
        *host = NULL;
        *port = 0;
        return 0;
    }
    uint64_t p;
    size_t len = strlen(a->pos[0]);
    if (len == 0 || len > 255)
        return fail("replicaof: the host must be 1 to 255 bytes");
    if (tkv_parse_uint(a->pos[1], 1, 65535, &p) < 0)
        return fail("replicaof: invalid port '%s' (1 to 65535; or 'replicaof no one')", a->pos[1]);
    *host = a->pos[0];
    *port = (uint16_t)p;
    return 0;
}

int parse_wait(const args *a, uint64_t *n, uint64_t *timeout_ms)
{
    if (tkv_parse_uint(a->pos[0], 0, UINT32_MAX, n) < 0)
        return fail("wait: invalid number of replicas '%s'", a->pos[0]);
    if (tkv_parse_uint(a->pos[1], 0, 86400000, timeout_ms) < 0)
        return fail("wait: invalid timeout '%s': milliseconds, at most a day (0: no limit)",
                    a->pos[1]);
    return 0;
}

int run_replicaof(cli *c, const args *a)
{
    const char *host;
    uint16_t port;
    if (parse_replicaof(a, &host, &port) || connect_cli(c))
        return EXIT_ERROR;
    int rc = host ? tkv_replicaof(c->ctx, host, port) : tkv_replicaof_none(c->ctx);
    if (rc != TKV_OK)
        return server_fail(c);
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_bool(&j, "ok", true);
        json_end(&j);
    } else {
        puts("OK");
    }
    return 0;
}

int run_wait(cli *c, const args *a)
{
    uint64_t n, timeout_ms, acked;
    if (parse_wait(a, &n, &timeout_ms) || connect_cli(c))
        return EXIT_ERROR;
    /* 0 is no limit: --timeout, meant for a server that stopped answering,
     * would end it. */
    if (timeout_ms == 0)
        tkv_set_timeout(c->ctx, 0);
    if (tkv_wait(c->ctx, n, timeout_ms, &acked) != TKV_OK)
        return server_fail(c);
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_u64(&j, "acked", acked);
        json_u64(&j, "wanted", n);
        json_end(&j);
    } else {
        printf("%" PRIu64 "\n", acked);
    }
    return acked < n ? EXIT_NOTFOUND : 0;
}

/* Whether role printed f already (and will not list it again). */
static bool shown(const tkv_role_info *r, const char *name)
{
    static const char *const top[] = {"role",      "replid",     "offset",
                                      "primary",   "link",       "primary_offset",
                                      "lag_bytes", "last_io_ms", "replicas"};
    static const char *const per_replica[] = {"addr", "state", "offset", "lag_bytes", "lag_ms"};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (strcmp(name, top[i]) == 0)
            return true;
    unsigned long idx;
    int used = 0;
    if (sscanf(name, "replica%lu_%n", &idx, &used) != 1 || used == 0 || idx >= r->n_replicas ||
        name[7] < '0' || name[7] > '9')
        return false;
    for (size_t i = 0; i < sizeof per_replica / sizeof per_replica[0]; i++)
        if (strcmp(name + used, per_replica[i]) == 0)
            return true;
    return false;
}

static const char *or_dash(const char *s) { return s ? s : "-"; }

static void print_role_text(const tkv_role_info *r)
{
    printf("role: %s\n", r->role);
    if (r->is_replica) {
        printf("primary: %s\n", or_dash(r->primary));
        printf("link: %s\n", or_dash(r->link));
    }
    printf("replid: %s\n", or_dash(r->replid));
    printf("offset: %" PRIu64 "\n", r->offset);
    if (r->is_replica) {
        printf("primary_offset: %" PRIu64 "\n", r->primary_offset);
        printf("lag_bytes: %" PRIu64 "\n", r->lag_bytes);
        printf("last_io_ms: %" PRIu64 "\n", r->last_io_ms);
    } else {
        printf("replicas: %zu\n", r->n_replicas);
    }
    for (size_t i = 0; i < r->n_replicas; i++) {
        const tkv_replica_info *p = &r->replicas[i];
        printf("  %s %s offset %" PRIu64 " lag %" PRIu64 " bytes %" PRIu64 " ms\n",
               or_dash(p->addr), or_dash(p->state), p->offset, p->lag_bytes, p->lag_ms);
    }
    for (size_t i = 0; i < r->n_fields; i++) {
        const tkv_stat *s = &r->fields[i];
        if (shown(r, s->name))
            continue;
        if (s->is_str)
            printf("%s: %s\n", s->name, s->str);
        else
            printf("%s: %" PRIu64 "\n", s->name, s->num);
    }
}

static void json_opt_str(json_out *j, const char *name, const char *s)
{
    if (s)
        json_str(j, name, s);
    else
        json_null(j, name);
}

static void print_role_json(const tkv_role_info *r)
{
    json_out j;
    json_begin(&j, stdout);
    json_str(&j, "role", r->role);
    json_opt_str(&j, "replid", r->replid);
    json_u64(&j, "offset", r->offset);
    if (r->is_replica) {
        json_opt_str(&j, "primary", r->primary);
        json_opt_str(&j, "link", r->link);
        json_u64(&j, "primary_offset", r->primary_offset);
        json_u64(&j, "lag_bytes", r->lag_bytes);
        json_u64(&j, "last_io_ms", r->last_io_ms);
    }
    if (!r->is_replica || r->n_replicas > 0) {
        json_array_begin(&j, "replicas");
        for (size_t i = 0; i < r->n_replicas; i++) {
            const tkv_replica_info *p = &r->replicas[i];
            json_item_begin(&j);
            json_opt_str(&j, "addr", p->addr);
            json_opt_str(&j, "state", p->state);
            json_u64(&j, "offset", p->offset);
            json_u64(&j, "lag_bytes", p->lag_bytes);
            json_u64(&j, "lag_ms", p->lag_ms);
            json_item_end(&j);
        }
        json_array_end(&j);
    }
    for (size_t i = 0; i < r->n_fields; i++) {
        const tkv_stat *s = &r->fields[i];
        if (shown(r, s->name))
            continue;
        if (s->is_str)
            json_str(&j, s->name, s->str);
        else
            json_u64(&j, s->name, s->num);
    }
    json_end(&j);
}

int run_role(cli *c, const args *a)
{
    if (connect_cli(c))
        return EXIT_ERROR;
    tkv_role_info r;
    if (tkv_role(c->ctx, &r) != TKV_OK)
        return server_fail(c);
    if (c->json)
        print_role_json(&r);
    else
        print_role_text(&r);
    return 0;
}
