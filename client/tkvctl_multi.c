/*
 * tkvctl_multi.c - tkvctl's commands over many keys (mput, mget, scan) and
 * the server-wide ones (ping, stats).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkvctl.h"
#include "grow.h"
#include "units.h"

/* Triples kept for an MPUT: keys and values point into argv or lines. */
typedef struct triples {
    tkv_item *items;
    size_t n, cap;
    char **lines; /* owned lines read from stdin */
    size_t nlines, lines_cap;
} triples;

/* Adds one triple; where says "item N" or "line N" for errors. */
static int add_item(triples *t, tkv_bytes key, const char *ts, tkv_bytes val, const char *where)
{
    if (tkv_grow(&t->items, &t->cap, t->n + 1, sizeof *t->items, 64) < 0)
        return fail("out of memory");
    tkv_item *it = &t->items[t->n];
    *it = (tkv_item){.key = key, .value = val};
    if (key.len == 0)
        return fail("mput: %s has an empty key", where);
    if (strcmp(ts, "-") == 0)
        return fail("mput: %s has TS '-', a key mget did not find: nothing to write "
                    "(--skip-missing skips such lines)",
                    where);
    if (strcmp(ts, "now") != 0) {
        char what[48];
        snprintf(what, sizeof what, "timestamp in %s", where);
        if (parse_time(ts, what, &it->ts))
            return EXIT_ERROR;
        it->has_ts = 1;
    }
    t->n++;
    return 0;
}

/* Keeps line (owned) in t->lines so items may point into it. */
static int keep_line(triples *t, char *line)
{
    if (tkv_grow(&t->lines, &t->lines_cap, t->nlines + 1, sizeof *t->lines, 64) < 0) {
        free(line);
        return fail("out of memory");
    }
    t->lines[t->nlines++] = line;
    return 0;
}

/* One line KEY<TAB>TS<TAB>VALUE of len bytes, escaped (tkvctl_lines.c);
 * unescapes it in place. */
static int add_line(triples *t, char *line, size_t len, size_t no, bool skip_missing)
{
    char *tab1 = memchr(line, '\t', len);
    char *tab2 = tab1 ? memchr(tab1 + 1, '\t', len - (size_t)(tab1 + 1 - line)) : NULL;
    if (!tab2)
        return fail("mput: line %zu is not KEY<TAB>TS<TAB>VALUE", no);
    if (memchr(tab2 + 1, '\t', len - (size_t)(tab2 + 1 - line)))
        return fail("mput: line %zu has more than two tabs: a tab in a value is written \\t", no);
    *tab1 = *tab2 = '\0';
    if (skip_missing && strcmp(tab1 + 1, "-") == 0)
        return 0;
    size_t klen = (size_t)(tab1 - line), vlen = (size_t)(line + len - (tab2 + 1));
    if (line_unescape(line, &klen) || line_unescape(tab2 + 1, &vlen))
        return fail("mput: line %zu: a backslash must start \\\\, \\t, \\n, \\r or \\xHH", no);
    char where[32];
    snprintf(where, sizeof where, "line %zu", no);
    return add_item(t, (tkv_bytes){line, klen}, tab1 + 1, (tkv_bytes){tab2 + 1, vlen}, where);
}

static int read_triples(triples *t, bool skip_missing)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    for (size_t no = 1; (len = getline(&line, &cap, stdin)) >= 0; no++) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (keep_line(t, line))
            return EXIT_ERROR;
        if (add_line(t, line, (size_t)len, no, skip_missing))
            return EXIT_ERROR;
        line = NULL;
        cap = 0;
    }
    free(line);
    return 0;
}

static void free_triples(triples *t)
{
    for (size_t i = 0; i < t->nlines; i++)
        free(t->lines[i]);
    free(t->lines);
    free(t->items);
}

/* MPUT's answer: one timestamp per line, or {"ts":[...]} (and "ts_iso"). */
static void print_stamps(const cli *c, const uint64_t *stamps, size_t n)
{
    char t[TS_TEXT_MAX];
    if (!c->json) {
        for (size_t i = 0; i < n; i++)
            puts(ts_text(c, stamps[i], false, t));
        return;
    }
    json_out j;
    json_begin(&j, stdout);
    json_array_begin(&j, "ts");
    for (size_t i = 0; i < n; i++)
        json_value_u64(&j, stamps[i]);
    json_array_end(&j);
    if (c->iso) {
        json_array_begin(&j, "ts_iso");
        for (size_t i = 0; i < n; i++) {
            if (tkv_format_time(stamps[i], t, sizeof t))
                json_value_bytes(&j, t, strlen(t));
            else
                json_value_null(&j);
        }
        json_array_end(&j);
    }
    json_end(&j);
}

static int send_mput(cli *c, const triples *t)
{
    if (t->n == 0)
        return fail("mput: no KEY TS VALUE triples given");
    uint64_t bytes = 0;
    for (size_t i = 0; i < t->n; i++)
        bytes += t->items[i].key.len + t->items[i].value.len + PUT_OVERHEAD;
    if (check_frame(c, "mput", bytes) || (!c->cl && connect_cli(c)))
        return 2;
    const uint64_t *stamps;
    if (c->cl) { /* -c: split by slot (tkvctl_cluster.c) */
        if (tkv_cluster_mput(c->cl, t->items, t->n, &stamps) != TKV_OK)
            return fail("%s", tkv_cluster_errstr(c->cl));
    } else if (tkv_mput(c->ctx, t->items, t->n, &stamps) != TKV_OK) {
        return server_fail(c);
    }
    print_stamps(c, stamps, t->n);
    return 0;
}

int run_mput(cli *c, const args *a)
{
    triples t = {0};
    int rc = 0;
    if (a->npos % 3 != 0)
        rc = fail("mput: arguments come in KEY TS VALUE triples");
    for (int i = 0; rc == 0 && i + 2 < a->npos; i += 3) {
        const char *k = a->pos[i], *v = a->pos[i + 2];
        char where[32];
        snprintf(where, sizeof where, "item %d", i / 3 + 1);
        rc = add_item(&t, (tkv_bytes){k, strlen(k)}, a->pos[i + 1], (tkv_bytes){v, strlen(v)},
                      where);
    }
    if (rc == 0 && a->npos == 0)
        rc = read_triples(&t, opt(a, "skip-missing") != NULL);
    if (rc == 0)
        rc = send_mput(c, &t);
    free_triples(&t);
    return rc;
}

/* One line of mget's output (tkvctl_lines.c); a miss also explained on
 * stderr. */
static void print_line(const cli *c, const char *key, const tkv_version *v)
{
    char ts[TS_TEXT_MAX];
    line_write_bytes(stdout, key, strlen(key));
    if (v->status != TKV_OK) {
        fputs("\t-\t\n", stdout);
        explain_miss(c, key, v);
        return;
    }
    printf("\t%s\t", ts_text(c, v->ts, true, ts));
    line_write_bytes(stdout, v->value, v->len);
    putchar('\n');
}

int run_mget(cli *c, const args *a)
{
    uint64_t ts = TKV_LATEST;
    const char *t = opt(a, "ts");
    if (t && parse_time(t, "--ts", &ts))
        return 2;
    tkv_bytes *keys = malloc((size_t)a->npos * sizeof *keys);
    if (!keys)
        return fail("out of memory");
    for (int i = 0; i < a->npos; i++)
        keys[i] = (tkv_bytes){a->pos[i], strlen(a->pos[i])};
    const tkv_version *v;
    int rc = c->cl ? 0 : connect_cli(c);
    if (rc == 0 && c->cl) { /* -c: split by slot (tkvctl_cluster.c) */
        if (tkv_cluster_mget(c->cl, ts, keys, (size_t)a->npos, &v) != TKV_OK)
            rc = fail("%s", tkv_cluster_errstr(c->cl));
    } else if (rc == 0 && tkv_mget(c->ctx, ts, keys, (size_t)a->npos, &v) != TKV_OK) {
        rc = server_fail(c);
    }
    free(keys);
    if (rc)
        return rc;
    json_out j;
    if (c->json) {
        json_begin(&j, stdout);
        json_ts(c, &j, "ts", t != NULL, ts);
        json_array_begin(&j, "results");
    }
    for (int i = 0; i < a->npos; i++) {
        const char *key = a->pos[i];
        if (v[i].status != TKV_OK)
            rc = 1;
        if (c->json) {
            json_item_begin(&j);
            json_bytes(&j, "key", key, strlen(key));
            json_answer(c, &j, &v[i]);
            json_item_end(&j);
        } else {
            print_line(c, key, &v[i]);
        }
    }
    if (c->json) {
        json_array_end(&j);
        json_end(&j);
    }
    return rc;
}

/* One page; returns 0 with the next cursor in *next (ptr NULL at the end). */
static int scan_page(cli *c, const char *prefix, tkv_bytes cursor, uint32_t count, tkv_bytes *next)
{
    const tkv_bytes *keys;
    size_t n;
    if (c->cl) { /* -c: every primary in turn (tkvctl_cluster.c) */
        if (tkv_cluster_scan(c->cl, prefix, prefix ? strlen(prefix) : 0, cursor, count, &keys, &n,
                             next) != TKV_OK)
            return fail("%s", tkv_cluster_errstr(c->cl));
    } else if (tkv_scan(c->ctx, prefix, prefix ? strlen(prefix) : 0, cursor, count, &keys, &n,
                        next) != TKV_OK) {
        return server_fail(c);
    }
    json_out j;
    if (c->json) {
        json_begin(&j, stdout);
        json_array_begin(&j, "keys");
    }
    for (size_t i = 0; i < n; i++) {
        if (c->json) {
            json_value_bytes(&j, keys[i].ptr, keys[i].len);
        } else {
            fwrite(keys[i].ptr, 1, keys[i].len, stdout);
            putchar('\n');
        }
    }
    if (c->json) {
        json_array_end(&j);
        if (next->ptr)
            json_bytes(&j, "cursor", next->ptr, next->len);
        else
            json_null(&j, "cursor");
        json_end(&j);
    }
    return 0;
}

int run_scan(cli *c, const args *a)
{
    const char *prefix = opt(a, "prefix"), *cur = opt(a, "cursor"), *cnt = opt(a, "count");
    bool all = opt(a, "all") != NULL;
    uint64_t count = 100;
    if (cnt && (parse_count(cnt, "--count", 10000, &count) || count == 0))
        return count == 0 ? fail("--count must be 1 to 10000") : 2;
    if (!c->cl && connect_cli(c))
        return 2;
    tkv_bytes cursor = {cur, cur ? strlen(cur) : 0}, next;
    /* Cursors point into the reply buffer: keep a copy across pages. */
    char *held = NULL;
    for (;;) {
        int rc = scan_page(c, prefix, cursor, (uint32_t)count, &next);
        if (rc || !next.ptr || !all) {
            if (rc == 0 && next.ptr && !c->json) {
                fputs("tkvctl: more keys; continue with --cursor '", stderr);
                fwrite(next.ptr, 1, next.len, stderr);
                fputs("'\n", stderr);
            }
            free(held);
            return rc;
        }
        char *copy = malloc(next.len + 1);
        if (!copy) {
            free(held);
            return fail("out of memory");
        }
        memcpy(copy, next.ptr, next.len);
        free(held);
        held = copy;
        cursor = (tkv_bytes){held, next.len};
    }
}

int send_ping(cli *c, const args *a)
{
    if (connect_cli(c))
        return 2;
    return tkv_append_ping(c->ctx) < 0 ? server_fail(c) : 0;
}

int show_ping(cli *c, const args *a, const tkv_reply *r)
{
    if (c->json) {
        json_out j;
        json_begin(&j, stdout);
        json_bool(&j, "pong", true);
        json_end(&j);
    } else {
        puts("PONG");
    }
    return 0;
}

int run_ping(cli *c, const args *a) { return run_sent(c, a, send_ping, show_ping); }

int send_stats(cli *c, const args *a)
{
    if (connect_cli(c))
        return 2;
    return tkv_append_stats(c->ctx) < 0 ? server_fail(c) : 0;
}

int show_stats(cli *c, const args *a, const tkv_reply *r)
{
    const tkv_stat *s = r->stats;
    size_t n = r->n_stats;
    json_out j;
    if (c->json)
        json_begin(&j, stdout);
    for (size_t i = 0; i < n; i++) {
        if (c->json) {
            if (s[i].is_str)
                json_str(&j, s[i].name, s[i].str);
            else
                json_u64(&j, s[i].name, s[i].num);
        } else if (!s[i].is_str) {
            printf("%s: %" PRIu64 "\n", s[i].name, s[i].num);
        } else if (!strchr(s[i].str, '\n')) {
            printf("%s: %s\n", s[i].name, s[i].str);
        } else {
            printf("%s: |\n  %s\n", s[i].name, s[i].str);
        }
    }
    if (c->json)
        json_end(&j);
    return 0;
}

int run_stats(cli *c, const args *a) { return run_sent(c, a, send_stats, show_stats); }
