/*
 * test_tkvctl.c - the tkvctl binary against a real tkvd: outputs, exit
 * statuses, stdin values, help and usage errors.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/rng.h"
#include "harness.h"

static tkvd d;
static char port[8];

static void setup(void)
{
    tkvd_start(&d, NULL);
    snprintf(port, sizeof port, "%u", d.port);
}

static void teardown(void) { tkvd_cleanup(&d); }

/* Runs tkvctl -p PORT ARGS... (NULL-terminated), feeding input on stdin;
 * checks the exit status and, unless want_out is NULL, stdout. Returns
 * stderr (caller frees). */
static char *ctl(int want_rc, const char *want_out, const char *input, ...)
{
    const char *argv[16] = {getenv("TKVCTL"), "-p", port};
    int n = 3;
    va_list ap;
    va_start(ap, input);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char *out, *err;
    int rc = run_capture(argv, input, &out, &err);
    cr_assert_eq(rc, want_rc, "tkvctl %s %s: exit %d, want %d; stderr: %s", argv[3],
                 n > 4 ? argv[4] : "", rc, want_rc, err);
    if (want_out)
        cr_assert_str_eq(out, want_out, "tkvctl %s %s", argv[3], n > 4 ? argv[4] : "");
    free(out);
    return err;
}

#define CTL(rc, out, ...) free(ctl(rc, out, NULL, __VA_ARGS__, NULL))

Test(tkvctl, issue_sequence_and_restart, .init = setup, .fini = teardown)
{
    CTL(0, "100\n", "put", "item1", "iPhone 16", "--ts", "100");
    CTL(0, "101\n", "put", "item1", "iPhone 17", "--ts", "101");
    for (int round = 0; round < 2; round++) {
        CTL(1, "", "get", "item1", "--ts", "99");
        CTL(0, "iPhone 16\n", "get", "item1", "--ts", "100");
        CTL(0, "iPhone 17\n", "get", "item1", "--ts", "102");
        CTL(0, "iPhone 17\n", "get", "item1");
        if (round == 0) {
            tkvd_signal(&d, SIGKILL);
            tkvd_restart(&d);
        }
    }
}

Test(tkvctl, range_del_ping_stats, .init = setup, .fini = teardown)
{
    CTL(0, "5\n", "put", "k", "five", "--ts", "5");
    CTL(0, "7\n", "put", "k", "seven", "--ts", "7");
    CTL(0, "9\n", "put", "k", "nine", "--ts", "9");
    CTL(0, "5\tfive\n7\tseven\n9\tnine\n", "range", "k");
    CTL(0, "9\tnine\n7\tseven\n", "range", "k", "--reverse", "--limit", "2");
    CTL(0, "7\tseven\n", "range", "k", "--from", "6", "--to", "8");
    CTL(0, "PONG\n", "ping");
    char *err = ctl(0, NULL, NULL, "stats", NULL);
    free(err);
    CTL(0, "3\n", "del", "k");
    CTL(0, "", "range", "k");
    err = ctl(1, "", NULL, "get", "k", NULL);
    cr_assert(strstr(err, "not found"), "stderr explains the miss: %s", err);
    free(err);
}

Test(tkvctl, value_from_stdin_and_server_clock, .init = setup, .fini = teardown)
{
    free(ctl(0, "42\n", "line one\nline two", "put", "doc", "-", "--ts", "42", NULL));
    CTL(0, "line one\nline two\n", "get", "doc");
    char *out, *err;
    const char *argv[] = {getenv("TKVCTL"), "-p", port, "put", "doc", "now", NULL};
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 0);
    cr_assert_gt(strtoull(out, NULL, 10), 1700000000000000ULL, "server clock in microseconds");
    free(out);
    free(err);
}

Test(tkvctl, usage_errors_exit_2, .init = setup, .fini = teardown)
{
    free(ctl(2, "", NULL, "get", NULL));
    free(ctl(2, "", NULL, "get", "k", "--ts", "yesterday", NULL));
    free(ctl(2, "", NULL, "get", "k", "--ts", "5", "--version", "1", NULL));
    free(ctl(2, "", NULL, "put", "k", "v", "--ttl", "0", NULL));
    free(ctl(2, "", NULL, "get", "k", "--bogus", "1", NULL));
    free(ctl(2, "", NULL, "frobnicate", NULL));
    char *err = ctl(2, "", NULL, "put", "", "v", NULL);
    cr_assert(strstr(err, "key"), "stderr: %s", err);
    free(err);
    free(ctl(0, NULL, NULL, "get", "--help", NULL));
    free(ctl(0, NULL, NULL, "--help", NULL));
}

Test(tkvctl, unreachable_server_exits_2, .init = setup, .fini = teardown)
{
    tkvd_signal(&d, SIGKILL);
    char *err = ctl(2, "", NULL, "ping", NULL);
    cr_assert(strstr(err, "cannot connect"), "stderr: %s", err);
    free(err);
}

Test(tkvctl, tombstones_versions_and_counts, .init = setup, .fini = teardown)
{
    CTL(0, "100\n", "put", "k", "one", "--ts", "100");
    CTL(0, "200\n", "put", "k", "two", "--ts", "200");
    CTL(0, "300\n", "del", "k", "--at", "300");
    CTL(0, "400\n", "put", "k", "four", "--ts", "400");
    char *err = ctl(1, "", NULL, "get", "k", "--ts", "350", NULL);
    cr_assert(strstr(err, "deleted at 300"), "stderr: %s", err);
    free(err);
    CTL(0, "two\n", "get", "k", "--ts", "299");
    CTL(0, "four\n", "get", "k");
    CTL(0, "100\tone\n200\ttwo\n300\t(deleted)\n400\tfour\n", "range", "k");
    CTL(0, "4\n", "count", "k");
    CTL(0, "2\n", "count", "k", "--from", "150", "--to", "300");
    CTL(0, "one\n", "get", "k", "--version", "1");
    CTL(0, "four\n", "get", "k", "--version", "-1");
    free(ctl(1, "", NULL, "get", "k", "--version", "-2", NULL));
    free(ctl(1, "", NULL, "get", "k", "--version", "9", NULL));
    free(ctl(1, "{\"key\":\"k\",\"found\":false,\"reason\":\"deleted\",\"next\":400,\"at\":300}\n",
             NULL, "--json", "get", "k", "--ts", "350", NULL));
    CTL(0,
        "{\"key\":\"k\",\"found\":true,\"value\":\"two\",\"ts\":200,\"next\":300,"
        "\"expires\":null}\n",
        "--json", "get", "k", "--ts", "250");
    CTL(0, "{\"count\":4}\n", "--json", "count", "k");
    free(ctl(1,
             "{\"key\":\"k\",\"found\":false,\"reason\":\"before_first\",\"next\":100,"
             "\"at\":null}\n",
             NULL, "--json", "get", "k", "--ts", "50", NULL));
}

Test(tkvctl, human_times, .init = setup, .fini = teardown)
{
    CTL(0, "1769860800000000\n", "put", "t", "noon", "--ts", "2026-01-31T12:00:00Z");
    CTL(0, "noon\n", "get", "t", "--ts", "2026-01-31T13:00:00+01:00");
    free(ctl(1, "", NULL, "get", "t", "--ts", "2026-01-31T11:59:59Z", NULL));
    CTL(0, "noon\n", "get", "t", "--ts", "now");
    CTL(0, "noon\n", "get", "t", "--ts", "-1h");
}

Test(tkvctl, impossible_dates_and_bare_epoch_seconds_are_refused, .init = setup, .fini = teardown)
{
    char *err = ctl(2, "", NULL, "put", "t", "v", "--ts", "2026-02-31", NULL);
    cr_assert(strstr(err, "invalid --ts"), "stderr: %s", err);
    free(err);
    err = ctl(2, "", NULL, "put", "t", "v", "--ts", "1700000000", NULL);
    cr_assert(strstr(err, "1700000000s"), "suggests the unit: %s", err);
    free(err);
    free(ctl(2, "", NULL, "get", "t", "--ts", "1700000000000", NULL));
    free(ctl(2, "", "t\t1700000000\tv\n", "mput", NULL));
    CTL(0, "1700000000000000\n", "put", "t", "v", "--ts", "1700000000s");
    CTL(0, "v\n", "get", "t", "--ts", "1700000000000ms");
    CTL(0, "v\n", "get", "t", "--ts", "2023-11-14T22:13:20");
    CTL(0, "1\n", "count", "t", "--to", "1700000000000000");
    CTL(0, "10\n", "put", "small", "v", "--ts", "10");
}

Test(tkvctl, ttl_versions_expire, .init = setup, .fini = teardown, .timeout = 30)
{
    CTL(0, "5\n", "put", "session", "old", "--ts", "5");
    char *err = ctl(0, NULL, NULL, "put", "session", "token", "--ttl", "1s", NULL);
    free(err);
    CTL(0, "token\n", "get", "session");
    /* Wait for the expiry, bounded: the version then disappears and the one
     * before it answers again. */
    bool expired = false;
    for (int i = 0; i < 400 && !expired; i++) {
        const char *argv[] = {getenv("TKVCTL"), "-p", port, "get", "session", NULL};
        char *out, *e;
        run_capture(argv, NULL, &out, &e);
        expired = strcmp(out, "old\n") == 0;
        free(out);
        free(e);
        if (!expired)
            usleep(10000);
    }
    cr_assert(expired, "the version with a TTL never expired");
    CTL(0, "5\told\n", "range", "session");
    CTL(0, "1\n", "count", "session");
}

Test(tkvctl, retention_and_policy, .init = setup, .fini = teardown)
{
    for (int ts = 1; ts <= 6; ts++) {
        char t[8], v[8];
        snprintf(t, sizeof t, "%d", ts * 10);
        snprintf(v, sizeof v, "v%d", ts);
        free(ctl(0, NULL, NULL, "put", "r", v, "--ts", t, NULL));
    }
    CTL(0, "would remove 2 versions; horizon 30\n", "retain", "r", "--versions", "4", "--dry-run");
    CTL(0, "6\n", "count", "r", "--from", "0");
    CTL(0, "{\"dry_run\":false,\"removable\":2,\"horizon\":30,\"complete\":true}\n", "--json",
        "retain", "r", "--versions", "4");
    CTL(0, "30\tv3\n40\tv4\n50\tv5\n60\tv6\n", "range", "r");
    char *err = ctl(1, "", NULL, "get", "r", "--ts", "25", NULL);
    cr_assert(strstr(err, "retention horizon 30"), "stderr: %s", err);
    free(err);
    CTL(0, "source: key\nversions: 4\nage: unlimited\nhorizon: 30\n", "policy", "r");
    CTL(0, "{\"versions\":4,\"age_us\":null,\"source\":\"key\",\"horizon\":30}\n", "--json",
        "policy", "r");
    err = ctl(2, "", NULL, "put", "r", "late", "--ts", "20", NULL);
    cr_assert(strstr(err, "horizon"), "a write below the horizon is refused: %s", err);
    free(err);
    CTL(0, "removes 0 versions\n", "retain", "r", "--clear");
    CTL(0, "source: server\nversions: all\nage: unlimited\nhorizon: 30\n", "policy", "r");
}

Test(tkvctl, mput_mget_and_scan, .init = setup, .fini = teardown)
{
    CTL(0, "10\n20\n30\n", "mput", "a", "10", "alpha", "b", "20", "beta", "c", "30", "gamma");
    free(ctl(0, "40\n50\n", "d\t40\tdelta\ne\t50\tepsilon with spaces\n", "mput", NULL));
    free(ctl(1, "a\t10\talpha\nnope\t-\t\ne\t50\tepsilon with spaces\n", NULL, "mget", "--ts", "60",
             "a", "nope", "e", NULL));
    CTL(0, "a\t10\talpha\nb\t20\tbeta\n", "mget", "--ts", "25", "a", "b");
    free(ctl(1,
             "{\"ts\":15,\"results\":[{\"key\":\"a\",\"found\":true,\"value\":\"alpha\",\"ts\":10,"
             "\"next\":null,\"expires\":null},{\"key\":\"b\",\"found\":false,\"reason\":"
             "\"before_first\",\"next\":20,\"at\":null}]}\n",
             NULL, "--json", "mget", "--ts", "15", "a", "b", NULL));
    char *err = ctl(2, "", NULL, "mput", "a", "10", NULL);
    cr_assert(strstr(err, "triples"), "%s", err);
    free(err);
    CTL(0, "a\nb\nc\n", "scan", "--count", "3");
    err = ctl(0, "a\nb\nc\nd\ne\n", NULL, "scan", "--count", "2", "--all", NULL);
    free(err);
    err = ctl(0, "a\nb\n", NULL, "scan", "--count", "2", NULL);
    cr_assert(strstr(err, "--cursor 'b'"), "%s", err);
    free(err);
    CTL(0, "c\nd\n", "scan", "--count", "2", "--cursor", "b");
    CTL(0, "{\"keys\":[\"d\",\"e\"],\"cursor\":null}\n", "--json", "scan", "--cursor", "c");
    CTL(0, "{\"keys\":[\"c\"],\"cursor\":null}\n", "--json", "scan", "--prefix", "c");
}

Test(tkvctl, json_for_binary_and_other_commands, .init = setup, .fini = teardown)
{
    CTL(0, "{\"ts\":1}\n", "--json", "put", "bin", "\xff\xfe", "--ts", "1");
    CTL(0,
        "{\"key\":\"bin\",\"found\":true,\"value_b64\":\"//4=\",\"ts\":1,\"next\":null,"
        "\"expires\":null}\n",
        "--json", "get", "bin");
    CTL(0,
        "{\"key\":\"bin\",\"versions\":[{\"ts\":1,\"value_b64\":\"//4=\",\"tombstone\":false,"
        "\"expires\":null}],\"truncated\":false}\n",
        "--json", "range", "bin");
    CTL(0, "{\"tombstone\":2}\n", "--json", "del", "bin", "--at", "2");
    CTL(0, "{\"removed\":2}\n", "--json", "del", "bin");
    CTL(0, "{\"pong\":true}\n", "--json", "ping");
    CTL(0, "{\"ts\":[7]}\n", "--json", "mput", "m", "7", "seven");
    char *err = ctl(0, NULL, NULL, "--json", "stats", NULL);
    free(err);
}

Test(tkvctl, every_command_has_help, .init = setup, .fini = teardown)
{
    static const char *cmds[] = {"put",    "get",  "range", "count", "del",  "retain",
                                 "policy", "mput", "mget",  "scan",  "ping", "stats"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *argv[] = {getenv("TKVCTL"), cmds[i], "--help", NULL};
        char *out, *err;
        cr_assert_eq(run_capture(argv, NULL, &out, &err), 0, "%s --help", cmds[i]);
        cr_assert(strncmp(out, "Usage: tkvctl ", 14) == 0, "%s --help: %s", cmds[i], out);
        cr_assert_gt(strlen(out), 40);
        free(out);
        free(err);
    }
}

Test(tkvctl, server_errors_name_their_status_once, .init = setup, .fini = teardown)
{
    CTL(0, "18446744073709551615\n", "put", "k", "last", "--ts", "18446744073709551615");
    char *err = ctl(2, "", NULL, "put", "k", "later", NULL);
    cr_assert(strstr(err, "tkvctl: OUT_OF_RANGE: the key"), "stderr: %s", err);
    cr_assert_null(strstr(err, "OUT_OF_RANGE: OUT_OF_RANGE"), "stderr: %s", err);
    free(err);
}

Test(tkvctl, wrong_argument_counts_show_real_usage, .init = setup, .fini = teardown)
{
    static const struct {
        const char *cmd, *extra, *usage;
    } cases[] = {
        {"stats", "extra", "usage: tkvctl stats ("},
        {"ping", "extra", "usage: tkvctl ping ("},
        {"policy", NULL, "usage: tkvctl policy KEY ("},
        {"get", NULL, "usage: tkvctl get KEY [--ts T"},
        {"scan", "extra", "usage: tkvctl scan [--prefix P]"},
        {"mget", NULL, "usage: tkvctl mget --ts T KEY..."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = ctl(2, "", NULL, cases[i].cmd, cases[i].extra, NULL);
        cr_assert(strstr(err, cases[i].usage), "%s: %s", cases[i].cmd, err);
        free(err);
    }
    char *err = ctl(2, "", NULL, "put", "k", "v", "w", NULL);
    cr_assert(strstr(err, "put: too many arguments; usage: tkvctl put KEY VALUE"), "%s", err);
    free(err);
}

/* A request bigger than tkvd's frame limit makes it close the connection
 * while tkvctl still writes; tkvctl knows the default and says so first. */
Test(tkvctl, requests_over_the_frame_limit_are_refused_before_sending, .init = setup,
     .fini = teardown)
{
    size_t n = 9u << 20;
    char *big = malloc(n + 16);
    memset(big, 'a', n);
    big[n] = '\0';
    char *err = ctl(2, "", big, "put", "k", "-", NULL);
    cr_assert(strstr(err, "frame limit of 8388608 bytes"), "stderr: %s", err);
    free(err);
    /* Two 5 MiB values: each fits, the MPUT does not. */
    memcpy(big, "a\t1\t", 4);
    memcpy(big + (5u << 20), "\nb\t2\t", 5);
    err = ctl(2, "", big, "mput", NULL);
    cr_assert(strstr(err, "mput: the request needs at least"), "stderr: %s", err);
    free(err);
    free(big);
    CTL(0, "", "scan");
}

Test(tkvctl, global_options_anywhere, .init = setup, .fini = teardown)
{
    CTL(0, "{\"ts\":5}\n", "put", "k", "five", "--ts", "5", "--json");
    CTL(0,
        "{\"key\":\"k\",\"found\":true,\"value\":\"five\",\"ts\":5,\"next\":null,"
        "\"expires\":null}\n",
        "get", "k", "--ts", "5", "--json");
    CTL(0, "five\n", "get", "k", "--ts=5", "--timeout=5000");
    CTL(0, "five\n", "get", "k", "--version", "1", "-t", "5000");
    const char *argv[] = {getenv("TKVCTL"), "get", "k", "--port", port, NULL};
    char *out, *err;
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 0, "stderr: %s", err);
    cr_assert_str_eq(out, "five\n");
    free(out);
    free(err);
    /* After "--", arguments until the command has its KEY and VALUE. */
    CTL(0, "1\n", "put", "--", "-dash", "v", "--ts", "1");
    CTL(0, "v\n", "get", "--", "-dash");
    CTL(0, "2\n", "put", "--", "--json", "dj", "--ts", "2");
    CTL(0, "dj\n", "get", "--", "--json");
    CTL(0, "3\n", "put", "neg", "-5", "--ts", "3");
    CTL(0, "-5\n", "get", "neg");
    free(ctl(1, "-dash\t1\tv\n--json\t2\tdj\n--ts\t-\t\n", NULL, "mget", "--", "-dash", "--json",
             "--ts", NULL));
    free(ctl(2, "", NULL, "get", "k", "--jsonx", NULL));
    free(ctl(2, "", NULL, "get", "k", "-p", NULL));
}

/* Prefixes every line of text with "copy:" (an escaped key starts each
 * line, so this renames the keys and nothing else). Caller frees. */
static char *rename_lines(const char *text)
{
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    char *out = malloc(strlen(text) + 5 * lines + 1), *w = out;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
        w += sprintf(w, "copy:");
        memcpy(w, p, n);
        w += n;
        p += n;
    }
    *w = '\0';
    return out;
}

/* Keys for argv cannot hold 0x00; values hold any byte. The fixed cases
 * are the ones that broke the unescaped format. */
#define RT_KEYS 48
static void random_data(test_rng *r, char keys[RT_KEYS][24], uint8_t vals[RT_KEYS][64],
                        size_t vlen[RT_KEYS])
{
    static const struct {
        const char *k, *v;
        size_t vn;
    } fixed[] = {
        {"empty", "", 0},    {"tab", "a\tb", 3},         {"nl", "line1\nline2\n", 12},
        {"nul", "\0x\0", 3}, {"bs", "\\x41\\t\\", 7},    {"k\tey\n", "\r\n\x7f\xff", 4},
        {"-", "-", 1},       {"utf8", "caf\xc3\xa9", 5}, {"\\x00", "\x80", 1},
    };
    size_t nf = sizeof fixed / sizeof fixed[0];
    for (size_t i = 0; i < RT_KEYS; i++) {
        if (i < nf) {
            strcpy(keys[i], fixed[i].k);
            memcpy(vals[i], fixed[i].v, fixed[i].vn);
            vlen[i] = fixed[i].vn;
            continue;
        }
        size_t kn = 1 + test_rng_below(r, 20);
        for (size_t k = 0; k < kn; k++)
            keys[i][k] = (char)(1 + test_rng_below(r, 255));
        snprintf(keys[i] + kn, 4, "%02zu", i); /* distinct */
        vlen[i] = test_rng_below(r, 64);
        for (size_t k = 0; k < vlen[i]; k++)
            vals[i][k] = (uint8_t)test_rng_below(r, 256);
    }
}

Test(tkvctl, mget_output_round_trips_through_mput, .init = setup, .fini = teardown)
{
    test_rng r = {test_seed("mget_mput_round_trip")};
    static char keys[RT_KEYS][24];
    static uint8_t vals[RT_KEYS][64];
    size_t vlen[RT_KEYS];
    random_data(&r, keys, vals, vlen);
    tkv_ctx *cx = tkvd_client(&d);
    for (size_t i = 0; i < RT_KEYS; i++)
        cr_assert_eq(
            tkv_put_ex(cx, keys[i], strlen(keys[i]), vals[i], vlen[i], 100 + i, 1, 0, NULL), TKV_OK,
            "%s", tkv_errstr(cx));
    const char *argv[RT_KEYS + 8] = {getenv("TKVCTL"), "-p", port, "mget", "--"};
    int n = 5;
    for (size_t i = 0; i < RT_KEYS; i++)
        argv[n++] = keys[i];
    argv[n] = NULL;
    char *out, *err;
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 0, "mget: %s", err);
    free(err);
    char *copy = rename_lines(out);
    free(out);
    free(ctl(0, NULL, copy, "mput", NULL));
    free(copy);
    for (size_t i = 0; i < RT_KEYS; i++) {
        char ck[32];
        snprintf(ck, sizeof ck, "copy:%s", keys[i]);
        tkv_version v;
        cr_assert_eq(tkv_get(cx, ck, strlen(ck), TKV_LATEST, &v), TKV_OK, "key %zu", i);
        cr_assert_eq(v.ts, 100 + i);
        cr_assert_eq(v.len, vlen[i], "key %zu: %zu bytes, want %zu", i, v.len, vlen[i]);
        cr_assert(memcmp(v.value, vals[i], vlen[i]) == 0, "key %zu: value differs", i);
    }
    tkv_free(cx);
}

Test(tkvctl, mput_lines_unescape_any_key_and_refuse_misses, .init = setup, .fini = teardown)
{
    free(ctl(0, "7\n", "z\\x00k\\\\\t7\tv\\x00\\n\n", "mput", NULL));
    tkv_ctx *cx = tkvd_client(&d);
    tkv_version v;
    cr_assert_eq(tkv_get(cx, "z\0k\\", 4, TKV_LATEST, &v), TKV_OK, "a key with 0x00");
    cr_assert_eq(v.len, 3);
    cr_assert(memcmp(v.value, "v\0\n", 3) == 0);
    /* A miss printed by mget never becomes a write. */
    CTL(0, "1\n", "put", "a", "x", "--ts", "1");
    char *out, *err;
    const char *argv[] = {getenv("TKVCTL"), "-p", port, "mget", "a", "missing", NULL};
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 1);
    cr_assert_str_eq(out, "a\t1\tx\nmissing\t-\t\n");
    free(err);
    err = ctl(2, "", out, "mput", NULL);
    cr_assert(strstr(err, "line 2 has TS '-'"), "stderr: %s", err);
    free(err);
    free(ctl(0, "1\n", out, "mput", "--skip-missing", NULL));
    free(out);
    cr_assert_eq(tkv_get(cx, "missing", 7, TKV_LATEST, &v), TKV_NOT_FOUND);
    free(ctl(2, "", NULL, "mput", "k", "-", "v", NULL));
    err = ctl(2, "", "k\t5\ta\\qb\n", "mput", NULL);
    cr_assert(strstr(err, "backslash"), "stderr: %s", err);
    free(err);
    free(ctl(2, "", "k\t5\ta\\x4\n", "mput", NULL));
    err = ctl(2, "", "k\t5\ta\tb\n", "mput", NULL);
    cr_assert(strstr(err, "more than two tabs"), "stderr: %s", err);
    free(err);
    cr_assert_eq(tkv_get(cx, "k", 1, TKV_LATEST, &v), TKV_NOT_FOUND);
    tkv_free(cx);
}

Test(tkvctl, iso_timestamps, .init = setup, .fini = teardown)
{
    CTL(0, "2026-01-31T12:00:00.250000Z\n", "put", "t", "a", "--ts", "2026-01-31T12:00:00.25Z",
        "--iso");
    CTL(0, "1769860800250000\n", "put", "t", "b", "--ts", "1769860800250000");
    CTL(0, "2026-01-31T12:00:00.250000Z\tb\n", "--iso", "range", "t");
    CTL(0, "t\t2026-01-31T12:00:00.250000Z\tb\n", "mget", "t", "--iso");
    CTL(0,
        "{\"key\":\"t\",\"found\":true,\"value\":\"b\",\"ts\":1769860800250000,"
        "\"ts_iso\":\"2026-01-31T12:00:00.250000Z\",\"next\":null,\"next_iso\":null,"
        "\"expires\":null,\"expires_iso\":null}\n",
        "get", "t", "--json", "--iso");
    CTL(0, "{\"ts\":[5],\"ts_iso\":[\"1970-01-01T00:00:00.000005Z\"]}\n", "--json", "--iso", "mput",
        "u", "5", "v");
    CTL(0, "{\"ts\":[18446744073709551615],\"ts_iso\":[null]}\n", "--json", "--iso", "mput", "u",
        "18446744073709551615", "v");
    CTL(0, "18446744073709551615\n", "--iso", "put", "u", "w", "--ts", "18446744073709551615");
    char *err = ctl(1, "", NULL, "--iso", "get", "t", "--ts", "2026-01-31", NULL);
    cr_assert(strstr(err, "at 2026-01-31T12:00:00.250000Z"), "stderr: %s", err);
    free(err);
    /* What mget prints always reads back, even a bare 10-digit time. */
    CTL(0, "1000000000\n", "put", "w", "x", "--ts", "1000000000us");
    CTL(0, "w\t1000000000us\tx\n", "mget", "w");
}
