/*
 * tkvctl_watch.c - `tkvctl watch`: the change feed, one line per change,
 * until interrupted (or until the server ends the watch).
 *
 * Lines are OFFSET<TAB>KIND<TAB>KEY<TAB>..., KEY and VALUE escaped as mget
 * writes them, so any bytes survive a pipe. A batch's lines share its
 * offset and are written together once the batch is whole: a consumer
 * resumes with --from the last offset it read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkvctl.h"

static void print_text(const cli *c, const tkv_change *ch, FILE *f)
{
    char t[TS_TEXT_MAX];
    fprintf(f, "%llu\t", (unsigned long long)ch->offset);
    switch (ch->kind) {
    case TKV_CHANGE_WRITE: fputs(ch->tombstone ? "del\t" : "put\t", f); break;
    case TKV_CHANGE_REMOVE: fputs("removed\t", f); break;
    case TKV_CHANGE_DROP: fputs("dropped\t", f); break;
    default: fputs("meta\t", f); break;
    }
    line_write_bytes(f, ch->key, ch->klen);
    if (ch->kind == TKV_CHANGE_DROP) {
        fputc('\n', f);
        return;
    }
    if (ch->kind == TKV_CHANGE_META) {
        fprintf(f, "\thorizon=%s", ch->horizon ? ts_text(c, ch->horizon, false, t) : "none");
        fprintf(f, "\tversions=%u\tage=%llu\n", ch->keep_versions,
                (unsigned long long)ch->keep_age_us);
        return;
    }
    fprintf(f, "\t%s", ts_text(c, ch->ts, false, t));
    if (ch->kind == TKV_CHANGE_WRITE && !ch->tombstone) {
        fputc('\t', f);
        line_write_bytes(f, ch->value, ch->len);
        if (ch->expires)
            fprintf(f, "\texpires=%s", ts_text(c, ch->expires, false, t));
    }
    fputc('\n', f);
}

static void print_json(const cli *c, const tkv_change *ch, FILE *f)
{
    json_out j;
    json_begin(&j, f);
    json_u64(&j, "offset", ch->offset);
    json_bool(&j, "batch_end", ch->batch_end);
    const char *kind = ch->kind == TKV_CHANGE_WRITE    ? (ch->tombstone ? "del" : "put")
                       : ch->kind == TKV_CHANGE_REMOVE ? "removed"
                       : ch->kind == TKV_CHANGE_DROP   ? "dropped"
                                                       : "meta";
    json_str(&j, "kind", kind);
    json_bytes(&j, "key", ch->key, ch->klen);
    if (ch->kind == TKV_CHANGE_META) {
        json_ts(c, &j, "horizon", ch->horizon != 0, ch->horizon);
        json_u64(&j, "versions", ch->keep_versions);
        json_u64(&j, "age_us", ch->keep_age_us);
    } else if (ch->kind != TKV_CHANGE_DROP) {
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
    const char *from = opt(a, "from"), *asof = opt(a, "as-of"), *replid = opt(a, "replid");
    const char *prefix = a->npos > 0 ? a->pos[0] : "";
    tkv_watch_opts o = {0};
    if (from && parse_count(from, "--from", UINT64_MAX, &o.from))
        return EXIT_ERROR;
    o.has_from = from != NULL;
    if (asof && parse_time(asof, "--as-of", &o.asof))
        return EXIT_ERROR;
    o.has_asof = asof != NULL;
    if (replid && !from)
        return fail("--replid goes with --from");
    o.replid = replid;
    if (o.has_asof && !*prefix)
        return fail("--as-of watches one KEY");
    if (connect_cli(c))
        return EXIT_ERROR;
    uint64_t start;
    if (tkv_watch(c->ctx, prefix, strlen(prefix), &o, &start) != TKV_OK)
        return server_fail(c);
    fprintf(stderr, "tkvctl: watching from offset %llu (history %s)\n", (unsigned long long)start,
            tkv_watch_replid(c->ctx));
    /* A batch's lines are held until its last change has come, then
     * written at once: a consumer never sees part of a batch, so resuming
     * --from the last offset it read misses nothing (the rest of a batch
     * cut off by an error is dropped with it). */
    char *held = NULL;
    size_t held_len = 0;
    FILE *batch = open_memstream(&held, &held_len);
    if (!batch)
        return fail("out of memory");
    int status = 0;
    for (;;) {
        tkv_change ch;
        int rc = tkv_watch_next(c->ctx, &ch);
        if (rc == TKV_NOT_FOUND)
            continue; /* quiet: the watch goes on */
        if (rc != TKV_OK) {
            status = server_fail(c);
            break;
        }
        if (c->json)
            print_json(c, &ch, batch);
        else
            print_text(c, &ch, batch);
        if (ch.batch_end) {
            fflush(batch);
            fwrite(held, 1, held_len, stdout);
            fflush(stdout);
            rewind(batch);
            held_len = 0;
        }
    }
    fclose(batch);
    free(held);
    return status;
}
