/*
 * test_http_metrics.c - GET /metrics' rendering of a STATS reply
 * (server/http_metrics.c): a reply built with the encoders tkvd uses,
 * decoded, rendered, and the text compared line by line - counters,
 * gauges, the latency summary grouped whatever the field order, info
 * labels escaped, odd names mapped.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

typedef struct field {
    const char *name;
    const char *str; /* NULL: a number */
    uint64_t num;
} field;

/* Renders fields as tkvd would send them; returns the text (caller frees). */
static char *render(const field *f, uint32_t n)
{
    tkv_buf wire, text;
    tkv_buf_init(&wire);
    tkv_buf_init(&text);
    tkv_rep_wr lw;
    tkv_rep_stats_begin(&lw, &wire, n);
    for (uint32_t i = 0; i < n; i++) {
        if (f[i].str)
            tkv_rep_stats_str(&lw, f[i].name, strlen(f[i].name), f[i].str, strlen(f[i].str));
        else
            tkv_rep_stats_uint(&lw, f[i].name, strlen(f[i].name), f[i].num);
    }
    cr_assert_eq(tkv_rep_stats_end(&lw), 0);
    tkv_rep rep;
    cr_assert_eq(tkv_rep_decode(TKV_CMD_STATS, wire.data + 4, wire.len - 4, &rep), 0);
    cr_assert_eq(tkv_http_metrics(&text, &rep), 0);
    cr_assert_eq(tkv_buf_append(&text, "", 1), 0);
    tkv_buf_deinit(&wire);
    return (char *)text.data;
}

static void has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    cr_assert_fail("no line '%s' in:\n%s", line, text);
}

Test(http_metrics, counters_gauges_and_info)
{
    field f[] = {
        {"version", "0.1.0", 0},        {"cmd_put", NULL, 7},       {"keys", NULL, 3},
        {"connections_total", NULL, 9}, {"role", "pri\"m\\ary", 0}, {"leveldb_stats", "a\nb", 0},
        {"repl_replica0-addr", NULL, 5}};
    char *t = render(f, sizeof f / sizeof f[0]);
    has_line(t, "# TYPE tkv_cmd_put_total counter");
    has_line(t, "# HELP tkv_cmd_put_total tkvd STATS field cmd_put");
    has_line(t, "tkv_cmd_put_total 7");
    has_line(t, "# TYPE tkv_keys gauge");
    has_line(t, "tkv_keys 3");
    /* Already named _total: not twice. */
    has_line(t, "tkv_connections_total 9");
    has_line(t, "tkv_repl_replica0_addr 5");
    /* A multi-line string is left out; quotes and backslashes escaped. */
    has_line(t, "tkv_info{version=\"0.1.0\",role=\"pri\\\"m\\\\ary\"} 1");
    cr_assert_null(strstr(t, "leveldb_stats"));
    free(t);
}

Test(http_metrics, latency_fields_make_one_summary)
{
    field f[] = {{"latency_get_p50_us", NULL, 12},  {"uptime_s", NULL, 1},
                 {"latency_get_p99_us", NULL, 80},  {"latency_put_p50_us", NULL, 30},
                 {"latency_get_p999_us", NULL, 90}, {"latency_get_count", NULL, 1000},
                 {"latency_put_count", NULL, 4}};
    char *t = render(f, sizeof f / sizeof f[0]);
    has_line(t, "# TYPE tkv_command_latency_microseconds summary");
    has_line(t, "tkv_command_latency_microseconds{cmd=\"get\",quantile=\"0.5\"} 12");
    has_line(t, "tkv_command_latency_microseconds{cmd=\"get\",quantile=\"0.99\"} 80");
    has_line(t, "tkv_command_latency_microseconds{cmd=\"get\",quantile=\"0.999\"} 90");
    has_line(t, "tkv_command_latency_microseconds_count{cmd=\"get\"} 1000");
    has_line(t, "tkv_command_latency_microseconds{cmd=\"put\",quantile=\"0.5\"} 30");
    has_line(t, "tkv_command_latency_microseconds_count{cmd=\"put\"} 4");
    has_line(t, "tkv_uptime_s 1");
    cr_assert_null(strstr(t, "tkv_latency_"));
    /* The family is one group: uptime (listed between) comes before it. */
    const char *fam = strstr(t, "# HELP tkv_command_latency");
    cr_assert(fam && strstr(t, "tkv_uptime_s 1") < fam);
    cr_assert_null(strstr(fam, "tkv_uptime_s"));
    cr_assert_null(strstr(fam + 1, "# HELP tkv_command_latency"));
    free(t);
}
