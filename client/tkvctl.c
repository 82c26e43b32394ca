/*
 * tkvctl.c - the tkv command-line client, a thin layer over libtkvclient.
 *
 * Every command prints text by default and one JSON object per reply with
 * --json (see jsonout.h for how bytes that are not UTF-8 are shown).
 * Timestamps and durations take human forms (units.h). Exit status: 0
 * success, 1 not found (wait: fewer replicas than asked), 2 any error (one
 * line on stderr), a write refused by a replica included.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkvctl.h"
#include "clock.h"
#include "grow.h"
#include "proto.h"
#include "units.h"

int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout); /* the message comes after the output before it, also in a 2>&1 log */
    fputs("tkvctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_ERROR;
}

int server_fail(cli *c)
{
    tkv_errkind k = tkv_err(c->ctx);
    if (c->retry_lost && (k == TKV_EK_EOF || k == TKV_EK_IO)) {
        c->lost = true;
        return EXIT_ERROR;
    }
    /* The server's message names the primary; say what to do with it. */
    if (k == TKV_EK_READONLY && c->socket)
        return fail("%s (%s is a read-only replica: send writes to the primary, "
                    "tkvctl -H HOST -p PORT)",
                    tkv_errstr(c->ctx), c->socket);
    if (k == TKV_EK_READONLY)
        return fail("%s (%s port %u is a read-only replica: send writes to the primary, "
                    "tkvctl -H HOST -p PORT)",
                    tkv_errstr(c->ctx), c->host, c->port);
    return fail("%s", tkv_errstr(c->ctx));
}

int check_frame(const cli *c, const char *what, uint64_t bytes)
{
    if (bytes <= c->max_frame)
        return 0;
    return fail("%s: the request needs at least %" PRIu64 " bytes, more than the server's frame "
                "limit of %" PRIu64 " bytes (tkvd's default; if it runs with a larger "
                "--max-frame, give tkvctl the same --max-frame)",
                what, bytes, c->max_frame);
}

const char *opt(const args *a, const char *name)
{
    for (int i = 0; i < a->nopts; i++)
        if (strcmp(a->names[i], name) == 0)
            return a->values[i];
    return NULL;
}

int parse_time(const char *s, const char *what, uint64_t *out)
{
    int rc = tkv_parse_time(s, tkv_clock_realtime_us(), out);
    if (rc == TKV_TIME_AMBIGUOUS)
        return fail("ambiguous %s '%s': a bare number is microseconds, but this looks like "
                    "epoch seconds or milliseconds; write %ss, %sms or %sus",
                    what, s, s, s, s);
    if (rc < 0)
        return fail("invalid %s '%s': expected now, -5m, 2026-01-31T12:00:00Z (a real date; "
                    "UTC unless a zone is given), 1700000000s, or microseconds",
                    what, s);
    return 0;
}

static int parse_duration(const char *s, const char *what, uint64_t *out)
{
    if (tkv_parse_duration(s, out) < 0 || *out == 0)
        return fail("invalid %s '%s': expected a duration such as 30s, 2h, 7d", what, s);
    return 0;
}

int parse_count(const char *s, const char *what, uint64_t max, uint64_t *out)
{
    if (tkv_parse_uint(s, 0, max, out) < 0)
        return fail("invalid %s '%s': expected a number", what, s);
    return 0;
}

static void trace_frame(void *arg, char dir, const uint8_t *f, size_t n)
{
    fprintf(stderr, "%c %zu bytes:", dir, n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", f[i]);
    fputc('\n', stderr);
}

int connect_cli(cli *c)
{
    if (c->ctx)
        return 0;
    tkv_ctx *ctx = c->socket ? tkv_connect_unix(c->socket, c->timeout_ms)
                             : tkv_connect(c->host, c->port, c->timeout_ms);
    if (!ctx)
        return fail("out of memory");
    int rc = 0;
    if (tkv_err(ctx) != TKV_EK_NONE)
        rc = fail("%s", tkv_errstr(ctx));
    if (rc == 0 && c->trace)
        tkv_set_trace(ctx, trace_frame, NULL);
    if (rc == 0 && c->secret && tkv_auth(ctx, c->secret, strlen(c->secret)) != TKV_OK)
        rc = fail("%s", tkv_errstr(ctx));
    /* A session must not keep a connection that never authenticated. */
    if (rc) {
        tkv_free(ctx);
        return rc;
    }
    c->ctx = ctx;
    return 0;
}

bool conn_broken(const tkv_ctx *ctx)
{
    /* The kinds client.h calls sticky; the others leave it usable. */
    tkv_errkind k = tkv_err(ctx);
    return k == TKV_EK_IO || k == TKV_EK_EOF || k == TKV_EK_PROTOCOL || k == TKV_EK_TIMEOUT ||
           k == TKV_EK_NOMEM;
}

const char *ts_text(const cli *c, uint64_t ts, bool reparse, char *buf)
{
    if (c->iso && tkv_format_time(ts, buf, TS_TEXT_MAX))
        return buf;
    int n = snprintf(buf, TS_TEXT_MAX, "%" PRIu64, ts);
    if (reparse && (n == 10 || n == 13))
        strcpy(buf + n, "us"); /* a bare number this long is refused as input */
    return buf;
}

void json_ts(const cli *c, json_out *j, const char *name, bool has, uint64_t ts)
{
    json_opt_u64(j, name, has, ts);
    if (!c->iso)
        return;
    char field[64], buf[TS_TEXT_MAX];
    snprintf(field, sizeof field, "%s_iso", name);
    if (has && tkv_format_time(ts, buf, sizeof buf))
        json_str(j, field, buf);
    else
        json_null(j, field);
}

int show_reply(cli *c, const args *a, show_fn show)
{
    tkv_reply r;
    if (tkv_read_reply(c->ctx, &r) == TKV_ERR)
        return server_fail(c);
    return show(c, a, &r);
}

int run_sent(cli *c, const args *a, send_fn send, show_fn show)
{
    int rc = send(c, a);
    if (rc == SENT_NOTHING)
        return 0;
    return rc ? rc : show_reply(c, a, show);
}

/* Reads all of standard input, for VALUE "-". */
static int read_stdin(char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
        if (n == cap && tkv_grow(&buf, &cap, cap + 1, 1, 0) < 0) {
            free(buf);
            buf = NULL;
        }
    }
    if (!buf)
        return fail("out of memory reading standard input");
    if (ferror(stdin)) {
        free(buf);
        return fail("cannot read standard input: %s", strerror(errno));
    }
    *out = buf;
    *len = n;
    return 0;
}

/* ---- printing answers ---------------------------------------------------- */

static const char *miss_name(int miss)
{
    switch (miss) {
    case TKV_MISS_NO_KEY: return "no_key";
    case TKV_MISS_BEFORE_FIRST: return "before_first";
    case TKV_MISS_DELETED: return "deleted";
    case TKV_MISS_BELOW_HORIZON: return "below_horizon";
    case TKV_MISS_NO_SUCH_VERSION: return "no_such_version";
    default: return "unknown";
    }
}

void explain_miss(const cli *c, const char *key, const tkv_version *v)
{
    char t[TS_TEXT_MAX];
    switch (v->miss) {
    case TKV_MISS_NO_KEY: fprintf(stderr, "%s: not found (no such key)\n", key); break;
    case TKV_MISS_BEFORE_FIRST:
        fprintf(stderr, "%s: not found (before its first version, at %s)\n", key,
                ts_text(c, v->next, false, t));
        break;
    case TKV_MISS_DELETED:
        fprintf(stderr, "%s: not found (deleted at %s)\n", key, ts_text(c, v->at, false, t));
        break;
    case TKV_MISS_BELOW_HORIZON:
        fprintf(stderr, "%s: not found (before the retention horizon %s)\n", key,
                ts_text(c, v->at, false, t));
        break;
    case TKV_MISS_NO_SUCH_VERSION: fprintf(stderr, "%s: not found (no such version)\n", key); break;
    default: fprintf(stderr, "%s: not found\n", key);
    }
}

/* The fields of one answer inside an open JSON object. */
void json_answer(const cli *c, json_out *j, const tkv_version *v)
{
    json_bool(j, "found", v->status == TKV_OK);
    if (v->status == TKV_OK) {
        json_bytes(j, "value", v->value, v->len);
        json_ts(c, j, "ts", true, v->ts);
        json_ts(c, j, "next", v->has_next, v->next);
        json_ts(c, j, "expires", v->expires != 0, v->expires);
        return;
    }
    json_str(j, "reason", miss_name(v->miss));
    json_ts(c, j, "next", v->has_next, v->next);
    bool at = v->miss == TKV_MISS_DELETED || v->miss == TKV_MISS_BELOW_HORIZON;
    json_ts(c, j, "at", at, v->at);
}

/* ---- commands ------------------------------------------------------------ */

static int send_put(cli *c, const args *a)
{
    uint64_t ts = 0, ttl = 0;
    const char *t = opt(a, "ts"), *d = opt(a, "ttl");
    bool has_ts = t && strcmp(t, "now") != 0;
    if ((has_ts && parse_time(t, "--ts", &ts)) || (d && parse_duration(d, "--ttl", &ttl)))
        return EXIT_ERROR;
    const char *key = a->pos[0];
    char *val = (char *)a->pos[1];
    size_t vlen = strlen(val);
    bool from_stdin = strcmp(val, "-") == 0;
    if (from_stdin && read_stdin(&val, &vlen))
        return EXIT_ERROR;
    int rc = check_frame(c, "put", strlen(key) + vlen + PUT_OVERHEAD);
    if (rc == 0)
        rc = connect_cli(c);
    if (rc == 0 && tkv_append_put_ex(c->ctx, key, strlen(key), val, vlen, ts, has_ts, ttl) < 0)
        rc = server_fail(c);
    if (from_stdin)
        free(val);
    return rc;
}

static int show_put(cli *c, const args *a, const tkv_reply *r)
{
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_ts(c, &j, "ts", true, r->ts);
        json_end(&j);
    } else {
        char tt[TS_TEXT_MAX];
        puts(ts_text(c, r->ts, false, tt));
    }
    return 0;
}

static int print_version(cli *c, const char *key, int rc, const tkv_version *v)
{
    if (rc != TKV_OK && rc != TKV_NOT_FOUND)
        return server_fail(c);
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_bytes(&j, "key", key, strlen(key));
        json_answer(c, &j, v);
        json_end(&j);
    } else if (rc == TKV_OK) {
        fwrite(v->value, 1, v->len, stdout);
        putchar('\n');
    }
    if (rc == TKV_NOT_FOUND) {
        if (!c->json)
            explain_miss(c, key, v);
        return EXIT_NOTFOUND;
    }
    return 0;
}

static int send_get(cli *c, const args *a)
{
    const char *t = opt(a, "ts"), *n = opt(a, "version");
    uint64_t ts = TKV_LATEST;
    int64_t version = 0;
    if (t && n)
        return fail("get: give --ts or --version, not both");
    if (t && parse_time(t, "--ts", &ts))
        return EXIT_ERROR;
    if (n) {
        char *end;
        errno = 0;
        version = strtoll(n, &end, 10);
        if (errno || *end || version == 0 || !*n)
            return fail("invalid --version '%s': 1 is the oldest, -1 the newest", n);
    }
    if (connect_cli(c))
        return EXIT_ERROR;
    const char *key = a->pos[0];
    int rc = n ? tkv_append_get_version(c->ctx, key, strlen(key), version)
               : tkv_append_get(c->ctx, key, strlen(key), ts);
    return rc < 0 ? server_fail(c) : 0;
}

static int show_get(cli *c, const args *a, const tkv_reply *r)
{
    return print_version(c, a->pos[0], r->status, &r->version);
}

static int time_range(const args *a, uint64_t *from, uint64_t *to)
{
    const char *f = opt(a, "from"), *t = opt(a, "to");
    *from = 0;
    *to = TKV_LATEST;
    return (f && parse_time(f, "--from", from)) || (t && parse_time(t, "--to", to));
}

static void print_entries(cli *c, const tkv_entry *e, size_t n, json_out *j)
{
    char t[TS_TEXT_MAX];
    for (size_t i = 0; i < n; i++) {
        if (c->json) {
            json_item_begin(j);
            json_ts(c, j, "ts", true, e[i].ts);
            if (e[i].value)
                json_bytes(j, "value", e[i].value, e[i].len);
            else
                json_null(j, "value");
            json_bool(j, "tombstone", e[i].value == NULL);
            json_ts(c, j, "expires", e[i].expires != 0, e[i].expires);
            json_item_end(j);
            continue;
        }
        printf("%s\t", ts_text(c, e[i].ts, false, t));
        if (e[i].value)
            fwrite(e[i].value, 1, e[i].len, stdout);
        else
            fputs("(deleted)", stdout);
        putchar('\n');
    }
}

static int send_range(cli *c, const args *a)
{
    tkv_range_opts o = {.reverse = opt(a, "reverse") != NULL, .to_set = 1};
    const char *l = opt(a, "limit");
    if (time_range(a, &o.from, &o.to) || (l && parse_count(l, "--limit", UINT64_MAX, &o.limit)))
        return EXIT_ERROR;
    if (l && o.limit == 0)
        return SENT_NOTHING;
    if (connect_cli(c))
        return EXIT_ERROR;
    const char *key = a->pos[0];
    return tkv_append_range(c->ctx, key, strlen(key), &o) < 0 ? server_fail(c) : 0;
}

static int show_range(cli *c, const args *a, const tkv_reply *r)
{
    const char *key = a->pos[0];
    const tkv_entry *e = r->entries;
    size_t n = r->n_entries;
    bool reverse = opt(a, "reverse") != NULL;
    json_out j;
    if (c->json) {
        json_begin(&j, stdout);
        json_bytes(&j, "key", key, strlen(key));
        json_array_begin(&j, "versions");
    }
    print_entries(c, e, n, &j);
    if (c->json) {
        json_array_end(&j);
        json_bool(&j, "truncated", r->truncated);
        json_end(&j);
    } else if (r->truncated) {
        uint64_t last = n ? e[n - 1].ts : 0;
        fprintf(stderr,
                "tkvctl: reply cut at the server's frame limit; continue with --%s %" PRIu64 "\n",
                reverse ? "to" : "from", reverse ? last - 1 : last + 1);
    }
    return 0;
}

static int send_count(cli *c, const args *a)
{
    uint64_t from, to;
    if (time_range(a, &from, &to) || connect_cli(c))
        return EXIT_ERROR;
    if (tkv_append_count(c->ctx, a->pos[0], strlen(a->pos[0]), from, to) < 0)
        return server_fail(c);
    return 0;
}

static int show_count(cli *c, const args *a, const tkv_reply *r)
{
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_u64(&j, "count", r->count);
        json_end(&j);
    } else {
        printf("%" PRIu64 "\n", r->count);
    }
    return 0;
}

static int send_del(cli *c, const args *a)
{
    const char *at = opt(a, "at");
    uint64_t ts = 0;
    bool server_clock = at && strcmp(at, "now") == 0;
    if (at && !server_clock && parse_time(at, "--at", &ts))
        return EXIT_ERROR;
    if (connect_cli(c))
        return EXIT_ERROR;
    const char *key = a->pos[0];
    int rc = at ? tkv_append_del_at(c->ctx, key, strlen(key), ts, !server_clock)
                : tkv_append_del(c->ctx, key, strlen(key));
    return rc < 0 ? server_fail(c) : 0;
}

static int show_del(cli *c, const args *a, const tkv_reply *r)
{
    bool at = opt(a, "at") != NULL;
    uint64_t v = at ? r->ts : r->count;
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        if (at)
            json_ts(c, &j, "tombstone", true, v);
        else
            json_u64(&j, "removed", v);
        json_end(&j);
    } else if (at) {
        char t[TS_TEXT_MAX];
        puts(ts_text(c, v, false, t));
    } else {
        printf("%" PRIu64 "\n", v); /* a count, not a time */
    }
    return 0;
}

static int send_retain(cli *c, const args *a)
{
    const char *n = opt(a, "versions"), *age = opt(a, "age");
    bool clear = opt(a, "clear") != NULL, dry = opt(a, "dry-run") != NULL;
    uint64_t versions = 0, age_us = 0;
    if (!n && !age && !clear)
        return fail("retain: give --versions, --age, or --clear");
    if (clear && (n || age))
        return fail("retain: --clear takes no --versions or --age");
    if ((n && (parse_count(n, "--versions", UINT32_MAX, &versions) || versions == 0)) ||
        (age && parse_duration(age, "--age", &age_us)))
        return n && versions == 0 ? fail("retain: --versions must be at least 1") : EXIT_ERROR;
    if (connect_cli(c))
        return EXIT_ERROR;
    const char *key = a->pos[0];
    if (tkv_append_retain(c->ctx, key, strlen(key), (uint32_t)versions, age_us, dry) < 0)
        return server_fail(c);
    return 0;
}

static int show_retain(cli *c, const args *a, const tkv_reply *reply)
{
    bool dry = opt(a, "dry-run") != NULL;
    const tkv_retain_info r = reply->retain;
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_bool(&j, "dry_run", dry);
        json_u64(&j, "removable", r.removable);
        json_ts(c, &j, "horizon", r.horizon != 0, r.horizon);
        json_bool(&j, "complete", r.complete);
        json_end(&j);
        return 0;
    }
    printf("%s %" PRIu64 " version%s%s", dry ? "would remove" : "removes", r.removable,
           r.removable == 1 ? "" : "s", r.complete ? "" : " or more");
    char t[TS_TEXT_MAX];
    if (r.horizon)
        printf("; horizon %s", ts_text(c, r.horizon, false, t));
    putchar('\n');
    return 0;
}

static int send_policy(cli *c, const args *a)
{
    if (connect_cli(c))
        return EXIT_ERROR;
    const char *key = a->pos[0];
    return tkv_append_policy(c->ctx, key, strlen(key)) < 0 ? server_fail(c) : 0;
}

static int show_policy(cli *c, const args *a, const tkv_reply *r)
{
    const tkv_policy_info p = r->policy;
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_opt_u64(&j, "versions", p.versions != 0, p.versions);
        json_opt_u64(&j, "age_us", p.age_us != 0, p.age_us);
        json_str(&j, "source", p.own ? "key" : "server");
        json_ts(c, &j, "horizon", p.horizon != 0, p.horizon);
        json_end(&j);
        return 0;
    }
    printf("source: %s\n", p.own ? "key" : "server");
    if (p.versions)
        printf("versions: %" PRIu32 "\n", p.versions);
    else
        printf("versions: all\n");
    if (p.age_us)
        printf("age_us: %" PRIu64 "\n", p.age_us);
    else
        printf("age: unlimited\n");
    char t[TS_TEXT_MAX];
    if (p.horizon)
        printf("horizon: %s\n", ts_text(c, p.horizon, false, t));
    return 0;
}

/* The one-shot form of each: one request, its reply. */
static int run_put(cli *c, const args *a) { return run_sent(c, a, send_put, show_put); }
static int run_get(cli *c, const args *a) { return run_sent(c, a, send_get, show_get); }
static int run_range(cli *c, const args *a) { return run_sent(c, a, send_range, show_range); }
static int run_count(cli *c, const args *a) { return run_sent(c, a, send_count, show_count); }
static int run_del(cli *c, const args *a) { return run_sent(c, a, send_del, show_del); }
static int run_retain(cli *c, const args *a) { return run_sent(c, a, send_retain, show_retain); }
static int run_policy(cli *c, const args *a) { return run_sent(c, a, send_policy, show_policy); }

/* What --pipe may keep in flight. The other commands stream (backup),
 * loop (scan --all, mget's continuations, restore's batches) or read
 * standard input (mput without triples): --pipe runs them alone. */
static const pipelined halves[] = {
    {run_put, send_put, show_put},          {run_get, send_get, show_get},
    {run_range, send_range, show_range},    {run_count, send_count, show_count},
    {run_del, send_del, show_del},          {run_retain, send_retain, show_retain},
    {run_policy, send_policy, show_policy}, {run_ping, send_ping, show_ping},
    {run_stats, send_stats, show_stats},    {run_slowlog, send_slowlog, show_slowlog},
};

const pipelined *find_pipelined(const command *cmd)
{
    for (size_t i = 0; i < sizeof halves / sizeof halves[0]; i++)
        if (halves[i].run == cmd->run)
            return &halves[i];
    return NULL;
}

static const command commands[] = {
    {"put", "KEY VALUE [--ts T] [--ttl D]",
     "Stores VALUE as a new version of KEY and prints its timestamp. Without --ts (or\n"
     "with --ts now) the server's clock is used, always after the key's newest version.\n"
     "A version already at T is replaced. --ttl makes the version expire D from now.\n"
     "VALUE '-' reads the value from standard input.",
     "ts= ttl=", 2, 2, run_put},
    {"get", "KEY [--ts T | --version N]",
     "Prints the value of KEY as of T: the version with the largest timestamp <= T\n"
     "(the newest without --ts). --version N picks the N-th version instead: 1 is the\n"
     "oldest, -1 the newest. Exit status 1 if there is none; stderr says why.",
     "ts= version=", 1, 1, run_get},
    {"range", "KEY [--from T] [--to T] [--limit N] [--reverse]",
     "Prints the versions of KEY with FROM <= timestamp <= TO, one per line as\n"
     "TIMESTAMP<TAB>VALUE, oldest first (newest first with --reverse), at most N.\n"
     "A tombstone shows as (deleted).",
     "from= to= limit= reverse", 1, 1, run_range},
    {"count", "KEY [--from T] [--to T]", "Prints how many versions KEY has in the range.",
     "from= to=", 1, 1, run_count},
    {"del", "KEY [--at T]",
     "Without --at, removes every version of KEY and prints how many there were.\n"
     "With --at T, writes a tombstone at T (now: the server's clock) and prints its\n"
     "timestamp: as of T and later the key reads as deleted, until a newer version;\n"
     "older versions still answer.",
     "at=", 1, 1, run_del},
    {"retain", "KEY [--versions N] [--age D] [--dry-run] | KEY --clear",
     "Sets KEY's retention: keep at most N versions and none older than D (the\n"
     "version current at the resulting horizon always stays); older versions are\n"
     "removed. --dry-run only reports what would go. --clear returns KEY to the\n"
     "server's default.",
     "versions= age= dry-run clear", 1, 1, run_retain},
    {"policy", "KEY", "Prints the retention in effect for KEY and its horizon.", "", 1, 1,
     run_policy},
    {"mput", "[KEY TS VALUE]... | [--skip-missing] < LINES",
     "Writes many versions atomically: all or none. Triples come from the arguments\n"
     "(taken as they are) or, if there are none, from standard input as lines\n"
     "KEY<TAB>TS<TAB>VALUE in mget's format, KEY and VALUE escaped: \\\\ \\t \\n \\r \\xHH.\n"
     "TS 'now' uses the server's clock. TS '-' (a key mget did not find) is an error,\n"
     "or with --skip-missing the line is skipped. Prints one timestamp per line.",
     "skip-missing", 0, MAX_POS, run_mput},
    {"mget", "--ts T KEY...",
     "Reads many keys as of one time, as one consistent snapshot, and prints one line\n"
     "per key in the order given: KEY<TAB>TS<TAB>VALUE, or KEY<TAB>-<TAB> for a key\n"
     "without a version then (the reason on stderr). Exit status 1 if any is missing.\n"
     "KEY and VALUE are escaped so that any bytes survive: backslash \\\\, tab \\t,\n"
     "newline \\n, carriage return \\r, other control bytes, and bytes 0x80-0xff of\n"
     "a string that is not UTF-8, as \\xHH; everything else as is. mput reads it back.",
     "ts=", 1, MAX_POS, run_mget},
    {"scan", "[--prefix P] [--cursor C] [--count N] [--all]",
     "Lists keys in byte order, one per line, N at a time (default 100). The cursor\n"
     "for the next page goes to stderr (in the JSON with --json); --all follows it to\n"
     "the end.",
     "prefix= cursor= count= all", 0, 0, run_scan},
    {"ping", "", "Checks that the server answers; prints PONG.", "", 0, 0, run_ping},
    {"stats", "", "Prints the server's statistics, one 'name: value' per line.", "", 0, 0,
     run_stats},
    {"digest", "[--at T]",
     "Prints a SHA-256 digest of the server's whole visible state (keys, versions,\n"
     "values, tombstones, expiry times, retention policies and horizons) as of the\n"
     "server's clock, or of T: versions expired by then do not count. Two servers\n"
     "with the same data print the same digest. It waits as long as the walk takes\n"
     "unless -t is given.",
     "at=", 0, 0, run_digest},
    {"backup", "FILE",
     "Writes a consistent backup of the whole store, as of one moment, to FILE (- for\n"
     "standard output) while other clients go on writing, then prints its digest,\n"
     "its moment (at), and its counts. The stream is verified as it arrives; FILE\n"
     "appears only once the backup is whole and on disk. Restore it with\n"
     "tkvd --restore FILE --data-dir DIR.",
     "", 1, 1, run_backup},
    {"verify", "FILE",
     "Checks a backup file (- for standard input) without a server: format, counts,\n"
     "digest and checksum. Prints what backup printed; exit status 2 if damaged.",
     "", 1, 1, run_verify},
    {"restore", "FILE [--merge]",
     "Loads a backup (- for standard input) into the running server. The whole file\n"
     "is checked first: a damaged one sends nothing. Without --merge the server must\n"
     "hold no keys. With --merge, keys it has keep their policy, horizon and\n"
     "versions, and get the backup's other versions. Prints the versions written and\n"
     "skipped, then the backup's digest: into an empty server, digest --at AT then\n"
     "prints the same. Each request may take up to 10 minutes unless -t is given.",
     "merge", 1, 1, run_restore},
    {"replicaof", "HOST PORT | no one",
     "Makes the server a replica of the tkvd at HOST PORT: it follows that primary's\n"
     "data and refuses writes (a write sent to it fails with exit status 2, naming the\n"
     "primary). 'replicaof no one' makes a replica a primary again. Prints OK once the\n"
     "server has taken the order; the link is made in the background (see role).",
     "", 2, 2, run_replicaof},
    {"role", "",
     "Prints the server's replication role (primary or replica), its replication id\n"
     "and offset; on a primary, one line per replica (address, state, acknowledged\n"
     "offset, lag); on a replica, its primary, the link's state and its lag.",
     "", 0, 0, run_role},
    {"wait", "N TIMEOUT_MS",
     "Waits until N replicas have acknowledged every write this connection made, or\n"
     "TIMEOUT_MS milliseconds (0: no limit), and prints how many had. tkvctl's own\n"
     "connection has written nothing, so there is nothing to wait for: this counts\n"
     "the replicas linked to the primary. To wait for writes, call tkv_wait() on the\n"
     "connection that made them. Exit status 1 if fewer than N acknowledged.",
     "", 2, 2, run_wait},
    {"watch", "[PREFIX] [--from OFFSET [--replid ID]] [--as-of T]",
     "Prints every committed change to keys starting with PREFIX (all keys without\n"
     "one), one line each, until interrupted: OFFSET<TAB>KIND<TAB>KEY<TAB>..., KIND\n"
     "put (then TS, VALUE and maybe expires=), del (a tombstone at TS), removed (the\n"
     "version at TS is gone: DEL or the sweep) or meta (the key's horizon and policy).\n"
     "KEY and VALUE are escaped as by mget. A batch's lines share its OFFSET; after a\n"
     "disconnect, --from the last OFFSET read resumes with nothing missed or repeated\n"
     "while the server's --repl-backlog still holds it; with --replid the history\n"
     "printed at the start, the server refuses an OFFSET of another history (after a\n"
     "failover, or on another server). --as-of T watches one KEY and prints only\n"
     "changes that could change its answer as of T (get KEY --ts T).",
     "from= as-of= replid=", 0, 1, run_watch},
    {"cluster",
     "shards | nodes | create [--shards N] [--replicas R] | info | migrate SLOTS SHARD |\n"
     "       add-node NODE | remove-node NODE | rebalance",
     "  shards  asks the node -H/-p names for the map as it holds it: the revision,\n"
     "          then each range of slots with the node serving it (and replicas).\n"
     "The cluster's admin side, through etcd (--etcd URLS, --cluster-name NAME):\n"
     "  nodes   lists the registered nodes (id and address): the tkvd started with\n"
     "          --cluster whose lease is alive.\n"
     "  create  writes the cluster's first map: the 16384 slots spread evenly over N\n"
     "          shards (default: as many as the nodes make) of one primary and R\n"
     "          replicas (default 0) each, from the registered nodes in id order.\n"
     "          Refused if a map exists or there are too few nodes.\n"
     "  info    prints the map: its revision, each shard's slots, primary and replicas\n"
     "          with their addresses, and which nodes are alive (registered).\n"
     "  migrate SLOT[-SLOT][,...] SHARD  moves the slots to the shard while clients use\n"
     "          them: every key's whole history, then the map (see README, \"Growing\n"
     "          and shrinking a cluster\"). Run it again to finish a move cut short.\n"
     "  add-node NODE  makes a registered node not in the map the primary of a new\n"
     "          shard, then rebalances.\n"
     "  remove-node NODE  moves the slots of the shard NODE leads to the others\n"
     "          evenly, then drops the shard and NODE from the map.\n"
     "  rebalance  moves slots so each shard holds 16384/N of them (within one).",
     "shards= replicas=", 1, 3, run_cluster},
    {"slowlog", "get [N] | len | reset",
     "The server's slow log: the requests that took at least its --slowlog-slower-than\n"
     "(10 ms by default), the newest --slowlog-max-len (128) of them.\n"
     "  get    prints the newest N entries (default 10), newest first, one per line:\n"
     "         ID<TAB>TIME<TAB>DURATION_US<TAB>COMMAND<TAB>KEY<TAB>CLIENT, KEY escaped as\n"
     "         by mget and followed by ...(N bytes) if the server kept only 128 bytes.\n"
     "  len    prints how many entries the log holds.\n"
     "  reset  empties the log.",
     "", 1, 2, run_slowlog},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void env_defaults(cli *c)
{
    const char *h = getenv("TKV_HOST"), *p = getenv("TKV_PORT"), *a = getenv("TKV_AUTH");
    uint64_t v;
    c->host = h && *h ? h : "127.0.0.1";
    c->port = p && tkv_parse_uint(p, 1, 65535, &v) == 0 ? (uint16_t)v : DEFAULT_PORT;
    c->timeout_ms = 10000;
    c->max_frame = TKV_DEFAULT_MAX_FRAME;
    c->secret = a && *a ? a : NULL;
    c->interval_ms = 10; /* redis-cli --latency's pace */
    const char *e = getenv("TKV_ETCD");
    c->etcd = e && *e ? e : NULL;
    c->cluster_name = "tkv";
}

/* One command from the line; with -c, at the node serving its key. */
static int run_one(cli *c, const command *cmd, const args *a)
{
    int rc = cluster_route(c, cmd, a);
    return rc ? rc : cmd->run(c, a);
}

int main(int argc, char **argv)
{
    cli c = {0};
    env_defaults(&c);
    const command *cmd = NULL;
    args a;
    int rc = parse_line(&c, commands, N_COMMANDS, argc, argv, &cmd, &a);
    if (rc >= 0)
        return rc;
    if (cmd && c.mode != MODE_PROMPT)
        rc = fail("--pipe and --latency take no command");
    else if (cmd)
        rc = run_one(&c, cmd, &a);
    else if (c.cluster)
        rc = fail("-c routes one command given on the line; the prompt, --pipe and "
                  "--latency do not route yet");
    else if (c.mode == MODE_PIPE)
        rc = run_pipe(&c, commands, N_COMMANDS);
    else if (c.mode == MODE_LATENCY)
        rc = run_latency(&c);
    else
        rc = run_prompt(&c, commands, N_COMMANDS);
    fflush(stdout);
    if (c.cl)
        tkv_cluster_free(c.cl); /* c.ctx is one of its connections */
    else
        tkv_free(c.ctx);
    return rc;
}
