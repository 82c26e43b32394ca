/*
 * test_security.c - authentication, protected mode and idle timeouts
 * against the real tkvd.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static tkvd d;

static void teardown(void) { tkvd_cleanup(&d); }

static void start_with_secret(void)
{
    const char *args[] = {"--requirepass", "open sesame", NULL};
    tkvd_start(&d, args);
}

Test(security, commands_wait_for_auth, .init = start_with_secret, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_ping(c), TKV_OK, "PING is allowed before AUTH");
    tkv_version v;
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 1, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_AUTH_REQUIRED, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_get(c, "k", 1, 1, &v), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_AUTH_REQUIRED);
    cr_assert_eq(tkv_auth(c, "open sesamE", 11), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_AUTH_FAILED);
    cr_assert_eq(tkv_auth(c, "open", 4), TKV_ERR, "a prefix of the secret is not the secret");
    cr_assert_eq(tkv_auth(c, "open sesame", 11), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 1, NULL), TKV_OK);
    /* Once authenticated, full-size frames are accepted. */
    size_t n = 100000;
    char *big = calloc(1, n);
    cr_assert_eq(tkv_put(c, "big", 3, big, n, 1, NULL), TKV_OK, "%s", tkv_errstr(c));
    free(big);
    tkv_free(c);
}

Test(security, frames_before_auth_are_small, .init = start_with_secret, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    size_t n = 4096;
    char *v = calloc(1, n);
    cr_assert_eq(tkv_put(c, "k", 1, v, n, 1, NULL), TKV_ERR);
    cr_assert(tkv_server_code(c) == TKV_SC_TOO_LARGE, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_ping(c), TKV_ERR, "the connection is closed after an oversize frame");
    free(v);
    tkv_free(c);
}

Test(security, secret_from_a_file_and_tkvctl_from_the_environment, .fini = teardown)
{
    char path[] = "/tmp/tkv-secret-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "from a file\n", 12), 12);
    close(fd);
    const char *args[] = {"--auth-file", path, NULL};
    tkvd_start(&d, args);
    unlink(path);
    char port[8];
    snprintf(port, sizeof port, "%u", d.port);
    const char *put[] = {getenv("TKVCTL"), "-p", port, "put", "k", "v", "--ts", "3", NULL};
    char *out, *err;
    cr_assert_eq(run_capture(put, NULL, &out, &err), 2, "no secret: refused");
    cr_assert(strstr(err, "AUTH_REQUIRED"), "%s", err);
    free(out);
    free(err);
    setenv("TKV_AUTH", "from a file", 1);
    cr_assert_eq(run_capture(put, NULL, &out, &err), 0, "%s", err);
    cr_assert_str_eq(out, "3\n");
    unsetenv("TKV_AUTH");
    free(out);
    free(err);
}

Test(security, protected_mode_refuses_public_addresses_without_a_secret, .fini = teardown)
{
    tkvd_start(&d, NULL); /* only to own a data directory */
    tkvd_stop(&d);
    const char *argv[] = {getenv("TKVD"), "--data-dir", d.dir, "--bind",
                          "0.0.0.0",      "--port",     "0",   NULL};
    char *out, *err;
    cr_assert_neq(run_capture(argv, NULL, &out, &err), 0);
    cr_assert(strstr(err, "not a loopback address"), "%s", err);
    cr_assert(strstr(err, "--protected-mode no"), "the message names the way out: %s", err);
    free(out);
    free(err);
    const char *args[] = {"--bind", "0.0.0.0", "--protected-mode", "no", NULL};
    tkvd_cleanup(&d);
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_ping(c), TKV_OK);
    tkv_free(c);
    tkvd_cleanup(&d);
    const char *args2[] = {"--bind", "0.0.0.0", "--requirepass", "x", NULL};
    tkvd_start(&d, args2);
    c = tkvd_client(&d);
    cr_assert_eq(tkv_auth(c, "x", 1), TKV_OK);
    tkv_free(c);
}

Test(security, idle_clients_are_closed, .fini = teardown, .timeout = 30)
{
    const char *args[] = {"--timeout", "1", NULL};
    tkvd_start(&d, args);
    int idle = tkvd_raw(&d);
    tkv_ctx *busy = tkvd_client(&d);
    /* The busy client keeps talking while the idle one is dropped. */
    bool closed = false;
    for (int i = 0; i < 400 && !closed; i++) {
        cr_assert_eq(tkv_ping(busy), TKV_OK, "%s", tkv_errstr(busy));
        closed = raw_wait_eof(idle, 10);
    }
    cr_assert(closed, "the idle connection was not closed");
    cr_assert_eq(tkv_ping(busy), TKV_OK);
    close(idle);
    tkv_free(busy);
}
