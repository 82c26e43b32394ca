/*
 * tkvctl_slowlog.c - tkvctl slowlog: the server's slow log (SLOWLOG).
 *
 * One request and one reply, so it is a send_ and a show_ half and --pipe
 * keeps it in flight. get prints one line per entry, newest first:
 * ID<TAB>TIME<TAB>DURATION_US<TAB>COMMAND<TAB>KEY<TAB>CLIENT, KEY escaped
 * as mget's lines are, and followed by "...(N bytes)" when the server kept
 * only its first 128 bytes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tkvctl.h"
#include "units.h"

typedef enum { SL_GET, SL_LEN, SL_RESET } slowlog_sub;

/* The subcommand and, for get, how many entries (10 by default). */
static int parse_slowlog(const args *a, slowlog_sub *sub, uint32_t *n)
{
    const char *w = a->pos[0];
    *sub = SL_GET;
    *n = 10;
    if (strcmp(w, "len") == 0 || strcmp(w, "reset") == 0) {
        *sub = w[0] == 'l' ? SL_LEN : SL_RESET;
        return a->npos == 1 ? 0 : fail("slowlog %s takes no argument", w);
    }
    if (strcmp(w, "get") != 0)
        return fail("slowlog: unknown subcommand '%s'; known: get [N], len, reset", w);
    uint64_t v;
    if (a->npos == 2 && tkv_parse_uint(a->pos[1], 0, UINT32_MAX, &v) < 0)
        return fail("slowlog get: N must be a number of entries, not '%s'", a->pos[1]);
    if (a->npos == 2)
        *n = (uint32_t)v;
    return 0;
}

int send_slowlog(cli *c, const args *a)
{
    slowlog_sub sub;
    uint32_t n;
    if (parse_slowlog(a, &sub, &n) || connect_cli(c))
        return EXIT_ERROR;
    int rc = sub == SL_GET   ? tkv_append_slowlog_get(c->ctx, n)
             : sub == SL_LEN ? tkv_append_slowlog_len(c->ctx)
                             : tkv_append_slowlog_reset(c->ctx);
    return rc < 0 ? server_fail(c) : 0;
}

static void show_entry(const cli *c, const tkv_slowlog_entry *e)
{
    char t[TS_TEXT_MAX];
    printf("%" PRIu64 "\t%s\t%" PRIu64 "\t%s\t", e->id, ts_text(c, e->time_us, false, t),
           e->duration_us, e->cmd);
    line_write_bytes(stdout, e->key, e->key_len);
    if (e->key_full_len > e->key_len)
        printf("...(%zu bytes)", e->key_full_len);
    printf("\t%s\n", e->client);
}

static void json_entries(const cli *c, json_out *j, const tkv_reply *r)
{
    json_array_begin(j, "entries");
    for (size_t i = 0; i < r->n; i++) {
        const tkv_slowlog_entry *e = &r->slowlog[i];
        json_item_begin(j);
        json_u64(j, "id", e->id);
        json_ts(c, j, "time", true, e->time_us);
        json_u64(j, "duration_us", e->duration_us);
        json_str(j, "command", e->cmd);
        json_bytes(j, "key", e->key, e->key_len);
        json_u64(j, "key_len", e->key_full_len);
        json_str(j, "client", e->client);
        json_item_end(j);
    }
    json_array_end(j);
}

int show_slowlog(cli *c, const args *a, const tkv_reply *r)
{
    const char *w = a->pos[0];
    bool get = strcmp(w, "get") == 0, reset = strcmp(w, "reset") == 0;
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_u64(&j, reset ? "removed" : "length", r->count);
        if (get)
            json_entries(c, &j, r);
        json_end(&j);
    } else if (get) {
        for (size_t i = 0; i < r->n; i++)
            show_entry(c, &r->slowlog[i]);
    } else if (reset) {
        printf("OK\n");
    } else {
        printf("%" PRIu64 "\n", r->count);
    }
    return 0;
}

int run_slowlog(cli *c, const args *a) { return run_sent(c, a, send_slowlog, show_slowlog); }
