/*
 * test_client_repl.c - libtkvclient's replication calls against a scripted
 * server (tests/common/fakesrv.h) whose replies are written with tkvd's
 * own encoders: what REPLICAOF, ROLE and WAIT send, how ROLE's map becomes
 * a tkv_role_info (fields in any order, unknown ones kept, hostile counts
 * and wrong types refused), WAIT's count and time limit, pipelining, and
 * READONLY as an error kind of its own that leaves the connection usable.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "fakesrv.h"
#include "reply.h"
#include "tkv/client.h"

static fakesrv f;

static void teardown(void) { fake_free(&f); }

TestSuite(client_repl, .fini = teardown);

/* One ROLE reply field: a number, or a string if str is set. */
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

static void script_error(tkv_status st, const char *msg)
{
    cr_assert_eq(tkv_write_error(fake_reply(&f, 0), st, msg), 0);
}

static tkv_ctx *connect_fake(void)
{
    fake_start(&f);
    tkv_ctx *c = tkv_connect("127.0.0.1", f.port, 5000);
    cr_assert(c && tkv_err(c) == TKV_EK_NONE, "%s", c ? tkv_errstr(c) : "no memory");
    return c;
}

/* Closes the client and waits for the server's thread. */
static int finish(tkv_ctx *c)
{
    tkv_free(c);
    return fake_finish(&f);
}

static const fld primary_fields[] = {
    {"role", "primary", 0},
    {"replid", "8f0c6e", 0},
    {"offset", NULL, 4096},
    /* A replica's fields before the count: a map has no order. */
    {"replica1_addr", "10.0.0.3:7379", 0},
    {"replica1_state", "sync", 0},
    {"replica1_offset", NULL, 0},
    {"replica1_lag_bytes", NULL, 4096},
    {"replica1_lag_ms", NULL, 900},
    {"replicas", NULL, 2},
    {"replica0_addr", "10.0.0.2:7379", 0},
    {"replica0_state", "online", 0},
    {"replica0_offset", NULL, 4000},
    {"replica0_lag_bytes", NULL, 96},
    {"replica0_lag_ms", NULL, 3},
    /* Unknown to this library: kept, not misread. */
    {"replica0_future", "x", 0},
    {"replica7_addr", "beyond the count", 0},
    {"replica_addr", "no index", 0},
    {"future_field", NULL, 7},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(client_repl, role_of_a_primary)
{
    fake_init(&f);
    script_role(primary_fields, N(primary_fields));
    tkv_ctx *c = connect_fake();
    tkv_role_info r;
    cr_assert_eq(tkv_role(c, &r), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_str_eq(r.role, "primary");
    cr_assert_eq(r.is_replica, 0);
    cr_assert_str_eq(r.replid, "8f0c6e");
    cr_assert_eq(r.offset, 4096);
    cr_assert_eq(r.n_replicas, 2);
    cr_assert_str_eq(r.replicas[0].addr, "10.0.0.2:7379");
    cr_assert_str_eq(r.replicas[0].state, "online");
    cr_assert_eq(r.replicas[0].offset, 4000);
    cr_assert_eq(r.replicas[0].lag_bytes, 96);
    cr_assert_eq(r.replicas[0].lag_ms, 3);
    cr_assert_str_eq(r.replicas[1].addr, "10.0.0.3:7379");
    cr_assert_str_eq(r.replicas[1].state, "sync");
    cr_assert_eq(r.replicas[1].lag_bytes, 4096);
    cr_assert_eq(r.replicas[1].lag_ms, 900);
    cr_assert_null(r.primary);
    cr_assert_null(r.link);
    cr_assert_eq(r.n_fields, N(primary_fields));
    for (size_t i = 0; i < r.n_fields; i++) {
        cr_assert_str_eq(r.fields[i].name, primary_fields[i].name);
        cr_assert_eq(r.fields[i].is_str, primary_fields[i].str != NULL);
    }
    cr_assert_eq(r.fields[N(primary_fields) - 1].num, 7);
    cr_assert_eq(finish(c), 1);
    tkv_req q;
    fake_request(&f, 0, &q);
    cr_assert_eq(q.cmd, TKV_CMD_ROLE);
}

Test(client_repl, role_of_a_replica)
{
    static const fld fields[] = {
        {"role", "replica", 0},          {"replid", "8f0c6e", 0},   {"offset", NULL, 4000},
        {"primary", "10.0.0.1:7379", 0}, {"link", "online", 0},     {"primary_offset", NULL, 4096},
        {"lag_bytes", NULL, 96},         {"last_io_ms", NULL, 120},
    };
    fake_init(&f);
    script_role(fields, N(fields));
    tkv_ctx *c = connect_fake();
    tkv_role_info r;
    cr_assert_eq(tkv_role(c, &r), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_str_eq(r.role, "replica");
    cr_assert_eq(r.is_replica, 1);
    cr_assert_eq(r.offset, 4000);
    cr_assert_str_eq(r.primary, "10.0.0.1:7379");
    cr_assert_str_eq(r.link, "online");
    cr_assert_eq(r.primary_offset, 4096);
    cr_assert_eq(r.lag_bytes, 96);
    cr_assert_eq(r.last_io_ms, 120);
    cr_assert_eq(r.n_replicas, 0);
    cr_assert_null(r.replicas);
    finish(c);
}

/* Each of these is not a ROLE reply: refused as a protocol error, with
 * nothing sized from the count. */
Test(client_repl, malformed_roles_are_refused)
{
    static const fld no_role[] = {{"replid", "x", 0}, {"offset", NULL, 1}};
    static const fld role_as_number[] = {{"role", NULL, 1}};
    static const fld offset_as_string[] = {{"role", "primary", 0}, {"offset", "12", 0}};
    static const fld huge_count[] = {{"role", "primary", 0}, {"replicas", NULL, UINT64_MAX}};
    static const fld count_beyond_fields[] = {
        {"role", "primary", 0}, {"replicas", NULL, 3}, {"replica0_addr", "a:1", 0}};
    static const fld replica_field_wrong_type[] = {
        {"role", "primary", 0}, {"replicas", NULL, 1}, {"replica0_lag_ms", "slow", 0}};
    static const struct {
        const fld *f;
        uint32_t n;
        const char *says;
    } cases[] = {
        {no_role, N(no_role), "no role"},
        {role_as_number, N(role_as_number), "role is not a string"},
        {offset_as_string, N(offset_as_string), "offset is not a number"},
        {huge_count, N(huge_count), "replicas, fields for at most 0"},
        {count_beyond_fields, N(count_beyond_fields), "3 replicas, fields for at most 1"},
        {replica_field_wrong_type, N(replica_field_wrong_type), "replica0_lag_ms"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        fake_init(&f);
        script_role(cases[i].f, cases[i].n);
        tkv_ctx *c = connect_fake();
        tkv_role_info r;
        cr_assert_eq(tkv_role(c, &r), TKV_ERR, "case %zu", i);
        cr_assert_eq(tkv_err(c), TKV_EK_PROTOCOL, "case %zu: %s", i, tkv_errstr(c));
        cr_assert(strstr(tkv_errstr(c), cases[i].says), "case %zu: %s", i, tkv_errstr(c));
        cr_assert_null(r.role, "case %zu: *out is cleared", i);
        finish(c);
        fake_free(&f);
    }
}

Test(client_repl, wait_sends_its_arguments_and_returns_the_count)
{
    fake_init(&f);
    cr_assert_eq(tkv_rep_put_uint(fake_reply(&f, 0), 1), 0);
    cr_assert_eq(tkv_rep_put_uint(fake_reply(&f, 0), 3), 0);
    tkv_ctx *c = connect_fake();
    uint64_t acked = 99;
    cr_assert_eq(tkv_wait(c, 2, 500, &acked), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(acked, 1, "fewer than asked is an answer, not an error");
    cr_assert_eq(tkv_wait(c, 3, 0, NULL), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(finish(c), 2);
    tkv_req q;
    fake_request(&f, 0, &q);
    cr_assert_eq(q.cmd, TKV_CMD_WAIT);
    cr_assert_eq(q.nreplicas, 2);
    cr_assert_eq(q.timeout_ms, 500);
    fake_request(&f, 1, &q);
    cr_assert_eq(q.nreplicas, 3);
    cr_assert_eq(q.timeout_ms, 0);
}

/* The server may take WAIT's timeout to answer: the context's own timeout
 * counts from there, and is back as it was afterwards. */
Test(client_repl, wait_outlasts_the_context_timeout)
{
    fake_init(&f);
    cr_assert_eq(tkv_rep_put_uint(fake_reply(&f, 600), 0), 0);
    cr_assert_eq(tkv_rep_put_uint(fake_reply(&f, 600), 0), 0);
    tkv_ctx *c = connect_fake();
    tkv_set_timeout(c, 300);
    uint64_t acked = 99;
    cr_assert_eq(tkv_wait(c, 1, 500, &acked), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(acked, 0);
    /* Without a wait of its own, 600 ms is past the context's 300. */
    cr_assert_eq(tkv_wait(c, 1, 0, &acked), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_TIMEOUT, "%s", tkv_errstr(c));
    finish(c);
}

Test(client_repl, replicaof_sends_host_and_port_or_no_one)
{
    fake_init(&f);
    cr_assert_eq(tkv_rep_put_empty(fake_reply(&f, 0)), 0);
    cr_assert_eq(tkv_rep_put_empty(fake_reply(&f, 0)), 0);
    cr_assert_eq(tkv_rep_put_ping(fake_reply(&f, 0), NULL), 0);
    tkv_ctx *c = connect_fake();
    cr_assert_eq(tkv_replicaof(c, "primary.example", 7380), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_replicaof_none(c), TKV_OK, "%s", tkv_errstr(c));
    /* Refused before sending: the server's next request is the PING. */
    static char long_host[257];
    memset(long_host, 'h', 256);
    cr_assert_eq(tkv_replicaof(c, "", 7380), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_USAGE);
    cr_assert_eq(tkv_replicaof(c, NULL, 7380), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_USAGE);
    cr_assert_eq(tkv_replicaof(c, long_host, 7380), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_USAGE);
    cr_assert_eq(tkv_replicaof(c, "h", 0), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_USAGE);
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(finish(c), 3);
    tkv_req q;
    fake_request(&f, 0, &q);
    cr_assert_eq(q.cmd, TKV_CMD_REPLICAOF);
    cr_assert_eq(q.host.len, strlen("primary.example"));
    cr_assert_eq(memcmp(q.host.ptr, "primary.example", q.host.len), 0);
    cr_assert_eq(q.port, 7380);
    fake_request(&f, 1, &q);
    cr_assert_eq(q.cmd, TKV_CMD_REPLICAOF);
    cr_assert_null(q.host.ptr, "NO ONE");
    fake_request(&f, 2, &q);
    cr_assert_eq(q.cmd, TKV_CMD_PING);
}

#define PRIMARY_MSG "this server is a replica of 10.0.0.1:7379; write to the primary"

Test(client_repl, readonly_is_its_own_kind_and_not_sticky)
{
    fake_init(&f);
    script_error(TKV_ST_READONLY, PRIMARY_MSG);
    script_error(TKV_ST_BUSY, "too many clients");
    cr_assert_eq(tkv_rep_put_ping(fake_reply(&f, 0), NULL), 0);
    tkv_ctx *c = connect_fake();
    cr_assert_eq(tkv_put_now(c, "k", 1, "v", 1, NULL), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_READONLY, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_server_code(c), TKV_SC_READONLY);
    cr_assert_eq(TKV_SC_READONLY, 22);
    cr_assert_str_eq(tkv_errstr(c), "READONLY: " PRIMARY_MSG);
    /* Other statuses stay TKV_EK_SERVER. */
    cr_assert_eq(tkv_del(c, "k", 1, NULL), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_SERVER);
    cr_assert_eq(tkv_server_code(c), TKV_SC_BUSY);
    cr_assert_eq(tkv_ping(c), TKV_OK, "the connection is still usable: %s", tkv_errstr(c));
    cr_assert_eq(tkv_err(c), TKV_EK_NONE);
    finish(c);
}

Test(client_repl, every_error_kind_has_a_name)
{
    for (int k = TKV_EK_NONE; k <= TKV_EK_READONLY; k++)
        cr_assert_str_neq(tkv_strerror((tkv_errkind)k), "unknown error", "kind %d", k);
    cr_assert_str_eq(tkv_strerror(TKV_EK_READONLY), "write refused by a read-only replica");
}

/* Pipelined: a WAIT queued after writes, and a ROLE, read in order; a
 * READONLY answer in the middle leaves the later replies readable. */
Test(client_repl, pipelined_role_and_wait)
{
    static const fld fields[] = {{"role", "primary", 0}, {"replicas", NULL, 0}};
    fake_init(&f);
    script_error(TKV_ST_READONLY, PRIMARY_MSG);
    cr_assert_eq(tkv_rep_put_uint(fake_reply(&f, 0), 2), 0);
    script_role(fields, N(fields));
    tkv_ctx *c = connect_fake();
    cr_assert_eq(tkv_append_put_now(c, "k", 1, "v", 1), TKV_OK);
    cr_assert_eq(tkv_append_wait(c, 2, 100), TKV_OK);
    cr_assert_eq(tkv_append_role(c), TKV_OK);
    tkv_reply r;
    cr_assert_eq(tkv_read_reply(c, &r), TKV_ERR);
    cr_assert_eq(r.op, TKV_OP_PUT);
    cr_assert_eq(tkv_err(c), TKV_EK_READONLY);
    cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(r.op, TKV_OP_WAIT);
    cr_assert_eq(r.count, 2);
    cr_assert_eq(tkv_read_reply(c, &r), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(r.op, TKV_OP_ROLE);
    cr_assert_eq(r.n_stats, 2);
    cr_assert_str_eq(r.stats[0].name, "role");
    cr_assert_str_eq(r.stats[0].str, "primary");
    cr_assert_eq(finish(c), 3);
}

/* What tkvd answers today: the error comes through as it is. */
Test(client_repl, a_server_without_replication_says_so)
{
    fake_init(&f);
    script_error(TKV_ST_BAD_REQUEST, "replication is not available on this server");
    tkv_ctx *c = connect_fake();
    tkv_role_info r;
    cr_assert_eq(tkv_role(c, &r), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_SERVER);
    cr_assert_eq(tkv_server_code(c), TKV_SC_BAD_REQUEST);
    cr_assert_null(r.role);
    finish(c);
}
