/*
 * tkvctl_watch.c - `tkvctl watch`: the change feed, one line per change,
 * until interrupted (or until the server ends the watch).
 *
 * Lines are OFFSET<TAB>KIND<TAB>KEY<TAB>..., KEY and VALUE escaped as mget
 * writes them, so any bytes survive a pipe. A batch's lines share its
 * offset and are flushed together: a consumer that stops between batches
 * resumes with --from the last offset it read.
 */
#include <stdio.h>
#include <string.h>

#include "tkvctl.h"

static void print_text(const cli *c, const tkv_change *ch)
{
    char t[TS_TEXT_MAX];
    printf("%llu\t", (unsigned long long)ch->offset);
    switch (ch->kind) {
    case TKV_CHANGE_WRITE: fputs(ch->tombstone ? "del\t" : "put\t", stdout); break;
    case TKV_CHANGE_REMOVE: fputs("removed\t", stdout); break;
    default: fputs("meta\t", stdout); break;
    }
    line_write_bytes(stdout, ch->key, ch->klen);
    if (ch->kind == TKV_CHANGE_META) {
        printf("\thorizon=%s", ch->horizon ? ts_text(c, ch->horizon, false, t) : "none");
        printf("\tversions=%u\tage=%llu\n", ch->keep_versions, (unsigned long long)ch->keep_age_us);
        return;
    }
    printf("\t%s", ts_text(c, ch->ts, false, t));
    if (ch->kind == TKV_CHANGE_WRITE && !ch->tombstone) {
        putchar('\t');
        line_write_bytes(stdout, ch->value, ch->len);
        if (ch->expires)
            printf("\texpires=%s", ts_text(c, ch->expires, false, t));
    }
    putchar('\n');
}

static void print_json(const cli *c, const tkv_change *ch)
{
    json_out j;
    json_begin(&j, stdout);
    json_u64(&j, "offset", ch->offset);
    json_bool(&j, "batch_end", ch->batch_end);
    const char *kind = ch->kind == TKV_CHANGE_WRITE    ? (ch->tombstone ? "del" : "put")
                       : ch->kind == TKV_CHANGE_REMOVE ? "removed"
                                                       : "meta";
    json_str(&j, "kind", kind);
    json_bytes(&j, "key", ch->key, ch->klen);
    if (ch->kind == TKV_CHANGE_META) {
        json_ts(c, &j, "horizon", ch->horizon != 0, ch->horizon);
        json_u64(&j, "versions", ch->keep_versions);
        json_u64(&j, "age_us", ch->keep_age_us);
    } else {
        json_ts(c, &j, "ts", true, ch->ts);
    }
    if (ch->kind == TKV_CHANGE_WRITE) {
        if (ch->tombstone)
            json_null(&j, "value");
        else
            json_bytes(&j, "value", ch->value, ch->len);
        json_ts(c, &j, "expires", ch->expires != 0, ch->expires);
    }
    json_end(&j);
}

int run_watch(cli *c, const args *a)
{
    const char *from = opt(a, "from"), *asof = opt(a, "as-of");
    const char *prefix = a->npos > 0 ? a->pos[0] : "";
    tkv_watch_opts o = {0};
    if (from && parse_count(from, "--from", UINT64_MAX, &o.from))
        return EXIT_ERROR;
    o.has_from = from != NULL;
    if (asof && parse_time(asof, "--as-of", &o.asof))
        return EXIT_ERROR;
    o.has_asof = asof != NULL;
    if (o.has_asof && !*prefix)
        return fail("--as-of watches one KEY");
    if (connect_cli(c))
        return EXIT_ERROR;
    uint64_t start;
    if (tkv_watch(c->ctx, prefix, strlen(prefix), &o, &start) != TKV_OK)
        return server_fail(c);
    fprintf(stderr, "tkvctl: watching from offset %llu\n", (unsigned long long)start);
    for (;;) {
        tkv_change ch;
        int rc = tkv_watch_next(c->ctx, &ch);
        if (rc == TKV_NOT_FOUND)
            continue; /* quiet: the watch goes on */
        if (rc != TKV_OK)
            return server_fail(c);
        if (c->json)
            print_json(c, &ch);
        else
            print_text(c, &ch);
        if (ch.batch_end)
            fflush(stdout);
    }
}
