/*
 * test_tkvctl_repl.c - tkvctl replicaof, role and wait, and a write a
 * replica refuses, run as the real binary ($TKVCTL) against a scripted
 * server (tests/common/fakesrv.h): the arguments each command takes or
 * refuses (refusals before connecting), what it sends, what it prints
 * (text and --json), and its exit status.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakesrv.h"
#include "harness.h"
#include "reply.h"

static fakesrv f;
static char *out, *err;

static void teardown(void)
{
    fake_free(&f);
    free(out);
    free(err);
}

TestSuite(tkvctl_repl, .fini = teardown);

/* Runs tkvctl against the fake server with the words given (NULL-ended). */
static int tkvctl(const char *const *words)
{
    const char *bin = getenv("TKVCTL");
    cr_assert(bin, "TKVCTL is not set");
    char port[8];
    snprintf(port, sizeof port, "%u", f.port);
    const char *argv[24] = {bin, "-p", port, "-t", "3000"};
    int n = 5;
    for (; *words; words++)
        argv[n++] = *words;
    argv[n] = NULL;
    free(out);
    free(err);
    return run_capture(argv, NULL, &out, &err); /* the exit status */
}

#define RUN(...) tkvctl((const char *const[]){__VA_ARGS__, NULL})

typedef struct fld {
    const char *name;
    const char *str;
    uint64_t num;
} fld;

static void script_role(const fld *fields, uint32_t n)
{
    tkv_rep_wr lw;
    tkv_rep_stats_begin(&lw, fake_reply(&f, 0), n);
    for (uint32_t i = 0; i < n; i++) {
        if (fields[i].str)
            tkv_rep_stats_str(&lw, fields[i].name, strlen(fields[i].name), fields[i].str,
                              strlen(fields[i].str));
        else
            tkv_rep_stats_uint(&lw, fields[i].name, strlen(fields[i].name), fields[i].num);
    }
    cr_assert_eq(tkv_rep_stats_end(&lw), 0);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const fld primary[] = {
    {"role", "primary", 0},
    {"replid", "8f0c6e", 0},
    {"offset", NULL, 4096},
    {"replicas", NULL, 2},
    {"replica0_addr", "10.0.0.2:7379", 0},
    {"replica0_state", "online", 0},
    {"replica0_offset", NULL, 4000},
    {"replica0_lag_bytes", NULL, 96},
    {"replica0_lag_ms", NULL, 3},
    {"replica1_addr", "10.0.0.3:7379", 0},
    {"replica1_state", "sync", 0},
    {"replica1_offset", NULL, 0},
    {"replica1_lag_bytes", NULL, 4096},
    {"replica1_lag_ms", NULL, 900},
    {"future_field", "yes", 0},
};

static const fld replica[] = {
    {"role", "replica", 0},          {"replid", "8f0c6e", 0},   {"offset", NULL, 4000},
    {"primary", "10.0.0.1:7379", 0}, {"link", "online", 0},     {"primary_offset", NULL, 4096},
    {"lag_bytes", NULL, 96},         {"last_io_ms", NULL, 120},
};

Test(tkvctl_repl, role_of_a_primary)
{
    fake_init(&f);
    script_role(primary, N(primary));
    fake_start(&f);
    cr_assert_eq(RUN("role"), 0, "%s", err);
    cr_assert_str_eq(out, "role: primary\n"
                          "replid: 8f0c6e\n"
                          "offset: 4096\n"
                          "replicas: 2\n"
                          "  10.0.0.2:7379 online offset 4000 lag 96 bytes 3 ms\n"
                          "  10.0.0.3:7379 sync offset 0 lag 4096 bytes 900 ms\n"
                          "future_field: yes\n");
    cr_assert_eq(fake_finish(&f), 1);
    tkv_req q;
    fake_request(&f, 0, &q);
    cr_assert_eq(q.cmd, TKV_CMD_ROLE);
}

Test(tkvctl_repl, role_of_a_primary_as_json)
{
    fake_init(&f);
    script_role(primary, N(primary));
    fake_start(&f);
    cr_assert_eq(RUN("role", "--json"), 0, "%s", err);
    cr_assert_str_eq(out, "{\"role\":\"primary\",\"replid\":\"8f0c6e\",\"offset\":4096,"
                          "\"replicas\":[{\"addr\":\"10.0.0.2:7379\",\"state\":\"online\","
                          "\"offset\":4000,\"lag_bytes\":96,\"lag_ms\":3},"
                          "{\"addr\":\"10.0.0.3:7379\",\"state\":\"sync\",\"offset\":0,"
                          "\"lag_bytes\":4096,\"lag_ms\":900}],\"future_field\":\"yes\"}\n");
}

Test(tkvctl_repl, role_of_a_replica)
{
    fake_init(&f);
    script_role(replica, N(replica));
    fake_start(&f);
    cr_assert_eq(RUN("role"), 0, "%s", err);
    cr_assert_str_eq(out, "role: replica\n"
                          "primary: 10.0.0.1:7379\n"
                          "link: online\n"
                          "replid: 8f0c6e\n"
                          "offset: 4000\n"
                          "primary_offset: 4096\n"
                          "lag_bytes: 96\n"
                          "last_io_ms: 120\n");
}

Test(tkvctl_repl, role_of_a_replica_as_json)
{
    fake_init(&f);
    script_role(replica, N(replica));
    fake_start(&f);
    cr_assert_eq(RUN("--json", "role"), 0, "%s", err);
    cr_assert_str_eq(out, "{\"role\":\"replica\",\"replid\":\"8f0c6e\",\"offset\":4000,"
                          "\"primary\":\"10.0.0.1:7379\",\"link\":\"online\","
                          "\"primary_offset\":4096,\"lag_bytes\":96,\"last_io_ms\":120}\n");
}

Test(tkvctl_repl, wait_prints_the_count_and_exits_1_when_short)
{
    fake_init(&f);
    cr_assert_eq(tkv_rep_put_uint(fake_reply(&f, 0), 1), 0);
    fake_start(&f);
    cr_assert_eq(RUN("wait", "2", "1500"), 1, "%s", err);
    cr_assert_str_eq(out, "1\n");
    cr_assert_eq(fake_finish(&f), 1);
    tkv_req q;
    fake_request(&f, 0, &q);
    cr_assert_eq(q.cmd, TKV_CMD_WAIT);
    cr_assert_eq(q.nreplicas, 2);
    cr_assert_eq(q.timeout_ms, 1500);
}

Test(tkvctl_repl, wait_exits_0_when_enough)
{
    fake_init(&f);
    cr_assert_eq(tkv_rep_put_uint(fake_reply(&f, 0), 3), 0);
    cr_assert_eq(tkv_rep_put_uint(fake_reply(&f, 0), 0), 0);
    fake_start(&f);
    cr_assert_eq(RUN("wait", "2", "0", "--json"), 0, "%s", err);
    cr_assert_str_eq(out, "{\"acked\":3,\"wanted\":2}\n");
}

Test(tkvctl_repl, replicaof_host_port_and_no_one)
{
    fake_init(&f);
    cr_assert_eq(tkv_rep_put_empty(fake_reply(&f, 0)), 0);
    fake_start(&f);
    cr_assert_eq(RUN("replicaof", "primary.example", "7380"), 0, "%s", err);
    cr_assert_str_eq(out, "OK\n");
    cr_assert_eq(fake_finish(&f), 1);
    tkv_req q;
    fake_request(&f, 0, &q);
    cr_assert_eq(q.cmd, TKV_CMD_REPLICAOF);
    cr_assert_eq(q.host.len, strlen("primary.example"));
    cr_assert_eq(memcmp(q.host.ptr, "primary.example", q.host.len), 0);
    cr_assert_eq(q.port, 7380);
    fake_free(&f);

    fake_init(&f);
    cr_assert_eq(tkv_rep_put_empty(fake_reply(&f, 0)), 0);
    fake_start(&f);
    cr_assert_eq(RUN("replicaof", "NO", "One"), 0, "%s", err);
    cr_assert_eq(fake_finish(&f), 1);
    fake_request(&f, 0, &q);
    cr_assert_eq(q.cmd, TKV_CMD_REPLICAOF);
    cr_assert_null(q.host.ptr, "NO ONE");
}

#define PRIMARY_MSG "this server is a replica of 10.0.0.1:7379; write to the primary"

/* Every write command goes through server_fail: put stands for them. */
Test(tkvctl_repl, a_write_refused_by_a_replica_exits_2_naming_the_primary)
{
    fake_init(&f);
    cr_assert_eq(tkv_write_error(fake_reply(&f, 0), TKV_ST_READONLY, PRIMARY_MSG), 0);
    fake_start(&f);
    cr_assert_eq(RUN("put", "k", "v"), 2);
    cr_assert_str_eq(out, "");
    cr_assert(strstr(err, "READONLY: " PRIMARY_MSG), "%s", err);
    cr_assert(strstr(err, "read-only replica: send writes to the primary"), "%s", err);
    cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line: %s", err);
}

/* What tkvd answers today: its message, exit status 2. */
Test(tkvctl_repl, a_server_without_replication_is_reported)
{
    fake_init(&f);
    cr_assert_eq(tkv_write_error(fake_reply(&f, 0), TKV_ST_BAD_REQUEST,
                                 "replication is not available on this server"),
                 0);
    fake_start(&f);
    cr_assert_eq(RUN("role"), 2);
    cr_assert_str_eq(err, "tkvctl: BAD_REQUEST: replication is not available on this server\n");
}

/* Refused before connecting: the server (listening, never answering) would
 * make a request that got through time out instead. */
Test(tkvctl_repl, bad_arguments_are_refused_before_connecting)
{
    static const struct {
        const char *words[5]; /* NULL-ended */
        const char *says;
    } cases[] = {
        {{"replicaof", "h", "0"}, "replicaof: invalid port '0'"},
        {{"replicaof", "h", "65536"}, "replicaof: invalid port '65536'"},
        {{"replicaof", "h", "one"}, "replicaof: invalid port 'one'"},
        {{"replicaof", "no", "two"}, "replicaof: invalid port 'two'"},
        {{"replicaof", "", "7379"}, "replicaof: the host must be 1 to 255 bytes"},
        {{"replicaof", "h"}, "replicaof: missing arguments"},
        {{"replicaof", "a", "1", "2"}, "replicaof: too many arguments"},
        {{"role", "x"}, "role: too many arguments"},
        {{"wait", "1"}, "wait: missing arguments"},
        {{"wait", "x", "10"}, "wait: invalid number of replicas 'x'"},
        {{"wait", "-1", "10"}, "wait: invalid number of replicas '-1'"},
        {{"wait", "1", "5s"}, "wait: invalid timeout '5s'"},
        {{"wait", "1", "86400001"}, "wait: invalid timeout '86400001'"},
    };
    fake_init(&f);
    for (size_t i = 0; i < N(cases); i++) {
        cr_assert_eq(tkvctl(cases[i].words), 2, "case %zu", i);
        cr_assert(strstr(err, cases[i].says), "case %zu: %s", i, err);
        cr_assert_str_eq(out, "", "case %zu", i);
    }
}

Test(tkvctl_repl, help_documents_the_commands_and_exit_statuses)
{
    fake_init(&f);
    cr_assert_eq(RUN("--help"), 0);
    cr_assert(strstr(out, "replicaof HOST PORT | no one"), "%s", out);
    cr_assert(strstr(out, "wait      N TIMEOUT_MS"), "%s", out);
    cr_assert(strstr(out, "1 not found (wait: fewer replicas than asked), 2 error"), "%s", out);
    cr_assert_eq(RUN("wait", "--help"), 0);
    cr_assert(strstr(out, "Exit status 1 if fewer than N acknowledged"), "%s", out);
}
