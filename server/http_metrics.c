/*
 * http_metrics.c - STATS as Prometheus text (exposition format 0.0.4), for
 * GET /metrics.
 *
 * Generic on purpose: every field STATS returns becomes a metric, so a
 * field added to STATS appears here without a change. A numeric field
 * `name` is `tkv_name`, a counter (named `tkv_name_total`) if it is one of
 * the running totals listed below, else a gauge. Fields of the form
 * latency_<cmd>_p50_us/_p99_us/_p999_us/_count make one summary,
 * tkv_command_latency_microseconds{cmd,quantile}. Short string fields
 * (version, role, fsync, ...) become labels of one tkv_info gauge of 1;
 * long or multi-line ones (leveldb_stats) are left out.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "http_int.h"

/* Longest string field kept as an info label. */
#define INFO_MAX 200

/* STATS fields that only ever grow: Prometheus counters. */
static const char *const counters[] = {
    "connections_total",
    "connections_rejected",
    "bytes_in",
    "bytes_out",
    "reads_mem",
    "reads_disk",
    "load_waits",
    "loads",
    "loads_stale",
    "fills",
    "evictions",
    "reopens",
    "commits",
    "commit_writes",
    "commit_errors",
    "swept_expired",
    "swept_retained",
    "sweeps",
    "errors",
    "auth_failures",
    "repl_full_syncs",
    "repl_partial_syncs",
};

static bool is_counter(const tkv_span *n)
{
    if (n->len > 4 && memcmp(n->ptr, "cmd_", 4) == 0)
        return true;
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        if (strlen(counters[i]) == n->len && memcmp(counters[i], n->ptr, n->len) == 0)
            return true;
    return false;
}

static bool has_suffix(const tkv_span *s, const char *suf, size_t *stem)
{
    size_t n = strlen(suf);
    if (s->len <= n || memcmp(s->ptr + s->len - n, suf, n) != 0)
        return false;
    *stem = s->len - n;
    return true;
}

/* latency_<cmd>_<what>: the command's name in cmd, the quantile in q
 * (NULL for _count). */
static bool is_latency(const tkv_span *n, tkv_span *cmd, const char **q)
{
    static const struct {
        const char *suf, *q;
    } parts[] = {{"_p50_us", "0.5"}, {"_p99_us", "0.99"}, {"_p999_us", "0.999"}, {"_count", NULL}};
    if (n->len <= 8 || memcmp(n->ptr, "latency_", 8) != 0)
        return false;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t stem;
        if (has_suffix(n, parts[i].suf, &stem) && stem > 8) {
            *cmd = (tkv_span){n->ptr + 8, (uint32_t)(stem - 8)};
            *q = parts[i].q;
            return true;
        }
    }
    return false;
}

typedef struct out {
    tkv_buf *b;
    bool failed;
} out;

static void put(out *o, const void *p, size_t n)
{
    if (!o->failed && tkv_buf_append(o->b, p, n) < 0)
        o->failed = true;
}

static void put_s(out *o, const char *s) { put(o, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void putf(out *o, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A metric name: [a-zA-Z0-9_] kept, anything else '_'. */
static void put_name(out *o, const tkv_span *s)
{
    for (uint32_t i = 0; i < s->len; i++) {
        uint8_t c = s->ptr[i];
        char x = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                     ? (char)c
                     : '_';
        put(o, &x, 1);
    }
}

/* A label value: backslash, quote and newline escaped. */
static void put_label(out *o, const tkv_span *s)
{
    for (uint32_t i = 0; i < s->len; i++) {
        char c = (char)s->ptr[i];
        if (c == '\\' || c == '"')
            put(o, "\\", 1);
        if (c == '\n')
            put(o, "\\n", 2);
        else
            put(o, &c, 1);
    }
}

static void plain(out *o, const tkv_rep_stat *st)
{
    bool counter = is_counter(&st->name);
    size_t stem;
    const char *total = counter && !has_suffix(&st->name, "_total", &stem) ? "_total" : "";
    for (int i = 0; i < 3; i++) {
        put_s(o, i == 0 ? "# HELP tkv_" : i == 1 ? "# TYPE tkv_" : "tkv_");
        put_name(o, &st->name);
        put(o, total, strlen(total));
        if (i == 0)
            putf(o, " tkvd STATS field %.*s\n", (int)st->name.len, (const char *)st->name.ptr);
        else if (i == 1)
            putf(o, " %s\n", counter ? "counter" : "gauge");
        else
            putf(o, " %llu\n", (unsigned long long)st->num);
    }
}

static void latency(out *o, const tkv_rep_stat *st, bool *head)
{
    tkv_span cmd;
    const char *q;
    if (!is_latency(&st->name, &cmd, &q))
        return;
    if (!*head) {
        put_s(o, "# HELP tkv_command_latency_microseconds time to serve a request, by command\n"
                 "# TYPE tkv_command_latency_microseconds summary\n");
        *head = true;
    }
    put_s(o, q ? "tkv_command_latency_microseconds{cmd=\""
               : "tkv_command_latency_microseconds_count{cmd=\"");
    put_label(o, &cmd);
    if (q)
        putf(o, "\",quantile=\"%s", q);
    putf(o, "\"} %llu\n", (unsigned long long)st->num);
}

int tkv_http_metrics(tkv_buf *b, const tkv_rep *rep)
{
    out o = {.b = b};
    tkv_rep_stat st;
    tkv_span cmd;
    const char *q;
    /* One pass per metric family: Prometheus wants each family's lines
     * together, whatever order STATS lists its fields in. */
    tkv_rep_list l = rep->list;
    while (tkv_rep_next_stat(&l, &st))
        if (!st.is_str && !is_latency(&st.name, &cmd, &q))
            plain(&o, &st);
    bool head = false;
    l = rep->list;
    while (tkv_rep_next_stat(&l, &st))
        if (!st.is_str)
            latency(&o, &st, &head);
    put_s(&o, "# HELP tkv_info tkvd's STATS strings as labels\n# TYPE tkv_info gauge\ntkv_info{");
    bool first = true;
    l = rep->list;
    while (tkv_rep_next_stat(&l, &st)) {
        if (!st.is_str || st.str.len > INFO_MAX || memchr(st.str.ptr, '\n', st.str.len))
            continue;
        put(&o, ",", first ? 0 : 1);
        first = false;
        put_name(&o, &st.name);
        put(&o, "=\"", 2);
        put_label(&o, &st.str);
        put(&o, "\"", 1);
    }
    put(&o, "} 1\n", 4);
    return o.failed ? -1 : 0;
}
