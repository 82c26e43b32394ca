/*
 * test_daemon.c - the server's life as an operator sees it: the data
 * directory lock held against offline tools (--repair on a live directory
 * must refuse and lose nothing), signals that must not stop the server
 * (SIGHUP reopens the log file), start-up messages that say where the
 * data is, --config files, and systemd's readiness protocol (sd_notify).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static tkvd d;

static void teardown(void) { tkvd_cleanup(&d); }

static void put_key(tkv_ctx *c, int i)
{
    char key[32], val[32];
    int kn = snprintf(key, sizeof key, "key%04d", i);
    int vn = snprintf(val, sizeof val, "value %d", i);
    cr_assert_eq(tkv_put(c, key, (size_t)kn, val, (size_t)vn, (uint64_t)i + 1, NULL), TKV_OK,
                 "put %s: %s", key, tkv_errstr(c));
}

static void expect_key(tkv_ctx *c, int i)
{
    char key[32], val[32];
    int kn = snprintf(key, sizeof key, "key%04d", i);
    int vn = snprintf(val, sizeof val, "value %d", i);
    tkv_version v;
    cr_assert_eq(tkv_get(c, key, (size_t)kn, TKV_LATEST, &v), TKV_OK, "get %s: %s", key,
                 tkv_errstr(c));
    cr_assert_eq(v.len, (size_t)vn);
    cr_assert_eq(memcmp(v.value, val, v.len), 0, "%s has the wrong value", key);
}

/* The bug: repair on a live directory moved the server's LevelDB log into
 * lost/, so writes acknowledged before and after it vanished on restart. */
Test(daemon, repair_refuses_a_live_directory_and_loses_nothing, .fini = teardown)
{
    tkvd_start(&d, NULL);
    tkv_ctx *c = tkvd_client(&d);
    for (int i = 0; i < 200; i++)
        put_key(c, i);

    const char *repair[] = {getenv("TKVD"), "--data-dir", d.dir, "--repair", NULL};
    char *out, *err;
    int rc = run_capture(repair, NULL, &out, &err);
    cr_assert_neq(rc, 0, "repair must refuse while tkvd runs; it said: %s", err);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %d", (int)d.pid);
    cr_assert(strstr(err, "in use"), "the refusal says why: %s", err);
    cr_assert(strstr(err, pid), "the refusal names the owner (%s): %s", pid, err);
    free(out);
    free(err);
    char lost[4300];
    snprintf(lost, sizeof lost, "%s/db/lost", d.dir);
    struct stat st;
    cr_assert_neq(stat(lost, &st), 0, "nothing was moved into %s", lost);

    for (int i = 200; i < 400; i++)
        put_key(c, i);
    tkv_free(c);
    tkvd_stop(&d);
    tkvd_restart(&d);
    c = tkvd_client(&d);
    for (int i = 0; i < 400; i++)
        expect_key(c, i);
    tkv_free(c);
}

Test(daemon, repair_of_a_directory_without_a_database_fails_clearly)
{
    char dir[] = "/tmp/tkv-repair-XXXXXX";
    cr_assert(mkdtemp(dir));
    const char *repair[] = {getenv("TKVD"), "--data-dir", dir, "--repair", NULL};
    char *out, *err;
    int rc = run_capture(repair, NULL, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "no database to repair") && strstr(err, dir), "stderr: %s", err);
    free(out);
    free(err);
    rmdir(dir);
}

Test(daemon, a_file_as_data_directory_is_named_in_the_error)
{
    char path[] = "/tmp/tkv-notadir-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    const char *argv[] = {getenv("TKVD"), "--data-dir", path, "--port", "0", NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    unlink(path);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, path), "the message names the path: %s", err);
    cr_assert(strstr(err, "Not a directory"), "and says what is wrong: %s", err);
    free(out);
    free(err);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void wait_for_text(const char *path, const char *needle)
{
    for (int waited = 0; waited < 10000; waited += 10) {
        if (file_contains(path, needle))
            return;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    cr_assert_fail("%s never said '%s'", path, needle);
}

Test(daemon, sighup_reopens_the_log_file_and_never_stops_the_server, .fini = teardown)
{
    static char logpath[4300], rotated[4300];
    char tmpl[] = "/tmp/tkv-log-XXXXXX";
    cr_assert(mkdtemp(tmpl));
    snprintf(logpath, sizeof logpath, "%s/tkvd.log", tmpl);
    snprintf(rotated, sizeof rotated, "%s/tkvd.log.1", tmpl);
    const char *args[] = {"--log-file", logpath, NULL};
    tkvd_start(&d, args);
    wait_for_text(logpath, "listening on");

    /* logrotate: move the file away, then HUP. */
    cr_assert_eq(rename(logpath, rotated), 0);
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    wait_for_text(logpath, "reopened log file");
    cr_assert(!file_contains(rotated, "reopened"), "the old file got no new lines");

    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_ping(c), TKV_OK, "the server still serves after SIGHUP: %s", tkv_errstr(c));
    put_key(c, 1);
    expect_key(c, 1);
    tkv_free(c);
    tkvd_stop(&d);
    cr_assert(file_contains(logpath, "shutdown complete"), "the rest of the log follows");
    unlink(logpath);
    unlink(rotated);
    rmdir(tmpl);
}

Test(daemon, sighup_without_a_log_file_is_logged_and_ignored, .fini = teardown)
{
    tkvd_start(&d, NULL);
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    wait_for_text(d.logfile, "received SIGHUP");
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    tkv_free(c);
    tkvd_stop(&d);
}

/* Where data goes depends on the directory tkvd was started in: --help and
 * the start-up log say the absolute path. */
Test(daemon, help_and_start_up_log_name_the_absolute_data_directory, .fini = teardown)
{
    char cwd[PATH_MAX];
    cr_assert(getcwd(cwd, sizeof cwd));
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s/tkv-data", cwd);
    const char *help[] = {getenv("TKVD"), "--help", NULL};
    char *out, *err;
    cr_assert_eq(run_capture(help, NULL, &out, &err), 0);
    cr_assert(strstr(out, want), "--help names %s:\n%s", want, out);
    free(out);
    free(err);

    /* Criterion runs each test in its own process: the chdir stays here. */
    char tmpl[] = "/tmp/tkv-cwd-XXXXXX";
    cr_assert(mkdtemp(tmpl));
    cr_assert_eq(chdir(tmpl), 0);
    const char *args[] = {"--data-dir", "./rel-data", NULL};
    tkvd_start(&d, args);
    char needle[4300];
    snprintf(needle, sizeof needle, "data in %s/rel-data ", tmpl);
    wait_for_text(d.logfile, needle);
    tkvd_stop(&d);
    char rm[4400];
    snprintf(rm, sizeof rm, "rm -rf '%s'", tmpl);
    cr_assert_eq(system(rm), 0);
}

/* A SCAN page holds a key and the cursor, which repeats one: tkvd refuses a
 * --max-key that two of cannot fit --max-frame (a page could otherwise end
 * empty, which says "done" while keys remain), and serves the longest key
 * a frame can take. */
Test(daemon, max_key_must_fit_twice_in_a_frame, .fini = teardown)
{
    const char *argv[] = {getenv("TKVD"), "--max-frame", "1kb",    "--max-key", "900",
                          "--max-value",  "512",         "--port", "0",         NULL};
    char *out, *err;
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 2);
    cr_assert(strstr(err, "twice --max-key"), "stderr: %s", err);
    free(out);
    free(err);

    const char *args[] = {"--max-frame", "1kb", "--max-key", "448", "--max-value", "512", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    char longkey[448];
    memset(longkey, 'm', sizeof longkey);
    cr_assert_eq(tkv_put(c, "a", 1, "1", 1, 1, NULL), TKV_OK);
    cr_assert_eq(tkv_put(c, longkey, sizeof longkey, "2", 1, 1, NULL), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_put(c, "z", 1, "3", 1, 1, NULL), TKV_OK);
    tkv_bytes cursor = {NULL, 0};
    size_t seen = 0;
    for (int page = 0; page < 10; page++) {
        const tkv_bytes *keys;
        size_t n;
        tkv_bytes next;
        cr_assert_eq(tkv_scan(c, NULL, 0, cursor, 100, &keys, &n, &next), TKV_OK, "%s",
                     tkv_errstr(c));
        cr_assert(n > 0 || next.ptr == NULL, "a page without keys must be the last");
        seen += n;
        if (!next.ptr)
            break;
        static char keep[448];
        memcpy(keep, next.ptr, next.len);
        cursor = (tkv_bytes){keep, next.len};
    }
    cr_assert_eq(seen, 3, "every key listed, the longest included");
    tkv_free(c);
}

/* ---- --config ------------------------------------------------------------ */

static char conf_dir[64];

static const char *write_conf(const char *text)
{
    static char path[128];
    if (!conf_dir[0]) {
        snprintf(conf_dir, sizeof conf_dir, "/tmp/tkv-conf-XXXXXX");
        cr_assert(mkdtemp(conf_dir));
    }
    snprintf(path, sizeof path, "%s/tkvd.conf", conf_dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static void conf_teardown(void)
{
    tkvd_cleanup(&d);
    if (conf_dir[0]) {
        char rm[128];
        snprintf(rm, sizeof rm, "rm -rf '%s'", conf_dir);
        cr_assert_eq(system(rm), 0);
    }
}

/* The harness gives --port 0 and --log-level debug on the command line:
 * they win over the file's port and log-level, wherever --config stands. */
Test(daemon, config_file_sets_flags_and_the_command_line_wins, .fini = conf_teardown)
{
    const char *path = write_conf("# tkvd.conf\n"
                                  "\n"
                                  "  max-clients 7   # a comment after a value\n"
                                  "log-level error\r\n"
                                  "requirepass \"two \\\"quoted\\\" words\"\n"
                                  "port 1\n"
                                  "\tfsync\t'never'\n");
    const char *args[] = {"--config", path, NULL};
    tkvd_start(&d, args);
    cr_assert_neq(d.port, 1, "--port 0 on the command line wins over the file");
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 1, NULL), TKV_ERR);
    cr_assert_eq(tkv_server_code(c), TKV_SC_AUTH_REQUIRED, "the file's secret applies");
    const char *secret = "two \"quoted\" words";
    cr_assert_eq(tkv_auth(c, secret, strlen(secret)), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkvd_stat(c, "max_clients"), 7);
    tkv_free(c);
    char *log = tkvd_log(&d);
    cr_assert(strstr(log, "listening on"), "--log-level debug wins over the file's error:\n%s",
              log);
    cr_assert(strstr(log, "fsync never"), "the file's fsync applies:\n%s", log);
    free(log);
    tkvd_stop(&d);
}

Test(daemon, config_errors_name_the_file_and_line, .fini = conf_teardown)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"port 7379\nnosuch 1\n", ":2: unknown option 'nosuch'"},
        {"\n# c\nport banana\n", ":3: invalid value 'banana' for port"},
        {"max-cl 5\n", ":1: unknown option 'max-cl'"},
        {"--port 5\n", ":1: unknown option '--port'"},
        {"port=5\n", ":1: unknown option 'port=5'"},
        {"bind\n", ":1: 'bind' needs a value"},
        {"repair\n", ":1: 'repair' is an action"},
        {"config /etc/x\n", ":1: 'config' is an action"},
        {"bind 127.0.0.1 ::1\n", ":1: more than one value"},
        {"requirepass \"open\n", ":1: unterminated quote"},
        {"requirepass \"\"\n", ":1: invalid value '' for requirepass"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = write_conf(cases[i].text);
        const char *argv[] = {getenv("TKVD"), "--config", path, "--port", "0", NULL};
        char *out, *err;
        int rc = run_capture(argv, NULL, &out, &err);
        cr_assert_eq(rc, 2, "'%s': exit %d, stderr %s", cases[i].text, rc, err);
        cr_assert(strstr(err, path) && strstr(err, cases[i].want), "'%s': want %s, got: %s",
                  cases[i].text, cases[i].want, err);
        free(out);
        free(err);
    }
    const char *argv[] = {getenv("TKVD"), "--config", "/nonexistent/tkvd.conf", NULL};
    char *out, *err;
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 1);
    cr_assert(strstr(err, "cannot read config file /nonexistent/tkvd.conf"), "%s", err);
    free(out);
    free(err);
}

/* Writes len bytes (NULs too) as conf_dir/name; returns its path. */
static const char *write_bytes(const char *name, const char *data, size_t len)
{
    static char path[2][128];
    static int turn;
    write_conf(""); /* makes conf_dir */
    char *p = path[turn++ % 2];
    snprintf(p, sizeof path[0], "%s/%s", conf_dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return p;
}

/* A NUL used to end the file silently there: every line after it was
 * dropped. --version makes a tkvd that took the file anyway exit at once
 * (0) rather than serve. */
Test(daemon, config_with_a_nul_byte_is_refused, .fini = conf_teardown)
{
    static const struct {
        const char text[40];
        size_t len;
        const char *want;
    } cases[] = {
        {"port 0\n\0nosuch 1\n", 18, ":2: NUL byte"},
        {"port 0\nlog-level error\0junk\nport 1\n", 36, ":2: NUL byte"},
        {"\0", 1, ":1: NUL byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = write_bytes("nul.conf", cases[i].text, cases[i].len);
        const char *argv[] = {getenv("TKVD"), "--config", path, "--version", NULL};
        char *out, *err;
        int rc = run_capture(argv, NULL, &out, &err);
        cr_assert_eq(rc, 2, "case %zu: exit %d, stderr %s", i, rc, err);
        cr_assert(strstr(err, path) && strstr(err, cases[i].want), "case %zu: want %s, got: %s", i,
                  cases[i].want, err);
        free(out);
        free(err);
    }
}

/* One of a pair given on the command line replaces the file's other: the
 * command line wins even where the server would prefer the other. */
Test(daemon, command_line_secret_replaces_the_files_other_kind, .fini = conf_teardown)
{
    const char *secret_file = write_bytes("secret", "file-secret\n", 12);
    char text[256];
    snprintf(text, sizeof text, "auth-file %s\n", secret_file);
    const char *path = write_conf(text);
    const char *args[] = {"--config", path, "--requirepass", "cli-secret", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_auth(c, "file-secret", 11), TKV_ERR, "the file's auth-file is replaced");
    tkv_free(c);
    c = tkvd_client(&d);
    cr_assert_eq(tkv_auth(c, "cli-secret", 10), TKV_OK, "--requirepass wins: %s", tkv_errstr(c));
    tkv_free(c);
    tkvd_stop(&d);
    tkvd_cleanup(&d);

    /* And the other way round. */
    const char *cli_file = write_bytes("cli-secret", "cli-file-secret\n", 16);
    path = write_conf("requirepass file-secret\n");
    const char *args2[] = {"--config", path, "--auth-file", cli_file, NULL};
    tkvd_start(&d, args2);
    c = tkvd_client(&d);
    cr_assert_eq(tkv_auth(c, "file-secret", 11), TKV_ERR, "the file's requirepass is replaced");
    tkv_free(c);
    c = tkvd_client(&d);
    cr_assert_eq(tkv_auth(c, "cli-file-secret", 15), TKV_OK, "--auth-file wins: %s", tkv_errstr(c));
    tkv_free(c);
    tkvd_stop(&d);
}

Test(daemon, command_line_cluster_map_replaces_the_files_cluster, .fini = conf_teardown)
{
    static const char map[] = "{\"slots\": [[0, 16383, \"s1\"]], \"shards\": {\"s1\": "
                              "{\"primary\": \"n1\"}}, \"nodes\": {\"n1\": \"127.0.0.1:7001\"}}";
    const char *map_path = write_bytes("map.json", map, sizeof map - 1);
    const char *path = write_conf("cluster http://127.0.0.1:9\n");
    const char *args[] = {"--config", path, "--cluster-map", map_path, "--node-id", "n1", NULL};
    tkvd_start(&d, args);
    char *log = tkvd_log(&d);
    cr_assert(strstr(log, "this is node n1"), "the command line's map is served:\n%s", log);
    free(log);
    tkvd_stop(&d);

    /* Both on the command line are still refused. */
    const char *argv[] = {getenv("TKVD"),
                          "--cluster",
                          "http://127.0.0.1:9",
                          "--cluster-map",
                          map_path,
                          "--node-id",
                          "n1",
                          "--port",
                          "0",
                          NULL};
    char *out, *err;
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 2, "%s", err);
    cr_assert(strstr(err, "give one"), "%s", err);
    free(out);
    free(err);
}

/* replica-of no and http-port off undo a file's. */
Test(daemon, command_line_undoes_the_files_replica_of_and_http_port, .fini = conf_teardown)
{
    char http_port_file[160], text[400];
    write_conf("");
    snprintf(http_port_file, sizeof http_port_file, "%s/http.port", conf_dir);
    snprintf(text, sizeof text, "replica-of 127.0.0.1:9\nhttp-port 0\nhttp-port-file %s\n",
             http_port_file);
    const char *path = write_conf(text);
    const char *args[] = {"--config", path, "--replica-of", "no", "--http-port", "off", NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_put(c, "k", 1, "v", 1, 1, NULL), TKV_OK, "a primary takes writes: %s",
                 tkv_errstr(c));
    tkv_free(c);
    /* tkvd writes the HTTP port file before the main one, which the
     * harness waited for. */
    cr_assert_neq(access(http_port_file, F_OK), 0, "HTTP is off");
    tkvd_stop(&d);
}

/* The example shipped (and installed as the default config) is all
 * comments: a server started with it serves with the defaults. */
Test(daemon, the_example_config_starts_a_server, .fini = teardown)
{
    char path[PATH_MAX];
    const char *md = getenv("TKV_PROTOCOL_MD"); /* in the source root */
    cr_assert(md);
    snprintf(path, sizeof path, "%.*s/server/tkvd.conf.example", (int)(strrchr(md, '/') - md), md);
    const char *args[] = {"--config", path, NULL};
    tkvd_start(&d, args);
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkvd_stat(c, "max_clients"), 10000);
    tkv_free(c);
    tkvd_stop(&d);
}

/* ---- sd_notify ------------------------------------------------------------ */

/* Receives one datagram (NUL-terminated into buf); asserts one comes
 * within 10 s. */
static void notify_recv(int fd, char *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap - 1, 0);
    cr_assert(n > 0, "no notification within 10 s: %s", strerror(errno));
    buf[n] = '\0';
}

/* systemd's Type=notify without systemd: a datagram socket named by
 * NOTIFY_SOCKET stands in for it. */
Test(daemon, notifies_ready_when_serving_and_stopping_on_sigterm, .fini = conf_teardown)
{
    write_conf("");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", conf_dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    struct timeval tv = {.tv_sec = 10};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    char env[160];
    snprintf(env, sizeof env, "NOTIFY_SOCKET=%s", sa.sun_path);
    const char *envs[] = {env, NULL};
    tkvd_start_env(&d, NULL, envs);

    char msg[512], want[64];
    notify_recv(fd, msg, sizeof msg);
    cr_assert(strstr(msg, "READY=1"), "the first notification is READY=1: %s", msg);
    snprintf(want, sizeof want, "MAINPID=%d", (int)d.pid);
    cr_assert(strstr(msg, want), "it names the main pid (%s): %s", want, msg);
    snprintf(want, sizeof want, "port %u", d.port);
    cr_assert(strstr(msg, "STATUS=serving") && strstr(msg, want), "and the port: %s", msg);
    /* Ready means ready: a client is served right away. */
    tkv_ctx *c = tkv_connect("127.0.0.1", d.port, 1000);
    cr_assert(c && tkv_ping(c) == TKV_OK, "a connection works at READY=1");
    tkv_free(c);

    int status = tkvd_signal(&d, SIGTERM);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    notify_recv(fd, msg, sizeof msg);
    cr_assert(strstr(msg, "STOPPING=1"), "SIGTERM says STOPPING=1: %s", msg);
    close(fd);
}
