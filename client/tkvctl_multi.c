/*
 * tkvctl_multi.c - tkvctl's commands over many keys (mput, mget, scan) and
 * the server-wide ones (ping, stats).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkvctl.h"
#include "units.h"

/* Triples kept for an MPUT: keys and values point into argv or lines. */
typedef struct triples {
    tkv_item *items;
    size_t n, cap;
    char **lines; /* owned lines read from stdin */
    size_t nlines;
} triples;

static int add_item(triples *t, const char *key, const char *ts, const char *val, size_t vlen)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tkv_item *p = realloc(t->items, cap * sizeof *p);
        if (!p)
            return fail("out of memory");
        t->items = p;
        t->cap = cap;
    }
    tkv_item *it = &t->items[t->n];
    *it = (tkv_item){.key = {key, strlen(key)}, .value = {val, vlen}};
    if (!*key)
        return fail("mput: item %zu has an empty key", t->n + 1);
    if (strcmp(ts, "now") != 0 && strcmp(ts, "-") != 0) {
        if (parse_time(ts, "timestamp", &it->ts))
            return 2;
        it->has_ts = 1;
    }
    t->n++;
    return 0;
}

/* Lines KEY<TAB>TS<TAB>VALUE; the value runs to the end of the line. */
static int read_triples(triples *t)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    for (size_t no = 1; (len = getline(&line, &cap, stdin)) >= 0; no++) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (!tab2) {
            free(line);
            return fail("mput: line %zu is not KEY<TAB>TS<TAB>VALUE", no);
        }
        *tab1 = *tab2 = '\0';
        char **lines = realloc(t->lines, (t->nlines + 1) * sizeof *lines);
        if (!lines) {
            free(line);
            return fail("out of memory");
        }
        t->lines = lines;
        t->lines[t->nlines++] = line;
        if (add_item(t, line, tab1 + 1, tab2 + 1, (size_t)(line + len - (tab2 + 1))))
            return 2;
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

static int send_mput(cli *c, const triples *t)
{
    if (t->n == 0)
        return fail("mput: no KEY TS VALUE triples given");
    uint64_t bytes = 0;
    for (size_t i = 0; i < t->n; i++)
        bytes += t->items[i].key.len + t->items[i].value.len + PUT_OVERHEAD;
    if (check_frame(c, "mput", bytes) || connect_cli(c))
        return 2;
    const uint64_t *stamps;
    if (tkv_mput(c->ctx, t->items, t->n, &stamps) != TKV_OK)
        return server_fail(c);
    json_out j;
    if (c->json) {
        json_begin(&j, stdout);
        json_array_begin(&j, "ts");
    }
    for (size_t i = 0; i < t->n; i++) {
        if (c->json)
            json_value_u64(&j, stamps[i]);
        else
            printf("%" PRIu64 "\n", stamps[i]);
    }
    if (c->json) {
        json_array_end(&j);
        json_end(&j);
    }
    return 0;
}

int run_mput(cli *c, const args *a)
{
    triples t = {0};
    int rc = 0;
    if (a->npos % 3 != 0)
        rc = fail("mput: arguments come in KEY TS VALUE triples");
    for (int i = 0; rc == 0 && i + 2 < a->npos; i += 3)
        rc = add_item(&t, a->pos[i], a->pos[i + 1], a->pos[i + 2], strlen(a->pos[i + 2]));
    if (rc == 0 && a->npos == 0)
        rc = read_triples(&t);
    if (rc == 0)
        rc = send_mput(c, &t);
    free_triples(&t);
    return rc;
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
    int rc = connect_cli(c);
    if (rc == 0 && tkv_mget(c->ctx, ts, keys, (size_t)a->npos, &v) != TKV_OK)
        rc = server_fail(c);
    free(keys);
    if (rc)
        return rc;
    json_out j;
    if (c->json) {
        json_begin(&j, stdout);
        json_opt_u64(&j, "ts", t != NULL, ts);
        json_array_begin(&j, "results");
    }
    for (int i = 0; i < a->npos; i++) {
        const char *key = a->pos[i];
        if (v[i].status != TKV_OK)
            rc = 1;
        if (c->json) {
            json_item_begin(&j);
            json_bytes(&j, "key", key, strlen(key));
            json_answer(&j, &v[i]);
            json_item_end(&j);
        } else if (v[i].status == TKV_OK) {
            printf("%s\t%" PRIu64 "\t", key, v[i].ts);
            fwrite(v[i].value, 1, v[i].len, stdout);
            putchar('\n');
        } else {
            printf("%s\t-\t\n", key);
            explain_miss(key, &v[i]);
        }
    }
    if (c->json) {
        json_array_end(&j);
        json_end(&j);
    }
    return rc;
}

/* One page; returns 0 with the next cursor in *next (ptr NULL at the end). */
static int scan_page(cli *c, const char *prefix, tkv_bytes cursor, uint32_t count,
                     tkv_bytes *next)
{
    const tkv_bytes *keys;
    size_t n;
    if (tkv_scan(c->ctx, prefix, prefix ? strlen(prefix) : 0, cursor, count, &keys, &n, next) !=
        TKV_OK)
        return server_fail(c);
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
    if (connect_cli(c))
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

int run_ping(cli *c, const args *a)
{
    if (connect_cli(c))
        return 2;
    if (tkv_ping(c->ctx) != TKV_OK)
        return server_fail(c);
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

int run_stats(cli *c, const args *a)
{
    if (connect_cli(c))
        return 2;
    const tkv_stat *s;
    size_t n;
    if (tkv_stats(c->ctx, &s, &n) != TKV_OK)
        return server_fail(c);
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
