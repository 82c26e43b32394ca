/*
 * test_tkvctl.c - the tkvctl binary against a real tkvd: outputs, exit
 * statuses, stdin values, help and usage errors.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
