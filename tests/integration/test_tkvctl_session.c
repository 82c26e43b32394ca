/*
 * test_tkvctl_session.c - tkvctl without a command against a real tkvd:
 * --pipe, the prompt's lines from a script and from a pseudo-terminal,
 * reconnection after a server restart, and --latency.
 *
 * Each test waits for what it expects to read (bounded), never for a
 * fixed time.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "harness.h"

#define WAIT_MS 20000

static tkvd d;
static char port[8];

static void setup(void)
{
    tkvd_start(&d, NULL);
    snprintf(port, sizeof port, "%u", d.port);
}

static void teardown(void) { tkvd_cleanup(&d); }

/* Runs tkvctl -p PORT ARGS... (NULL-terminated) with input on stdin;
 * returns the exit status, *out and *err malloc'd. */
static int ctl(const char *input, char **out, char **err, ...)
{
    const char *argv[16] = {getenv("TKVCTL"), "-p", port};
    int n = 3;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return run_capture(argv, input, out, err);
}

/* A growing text for building inputs and expected outputs. */
typedef struct text {
    char *s;
    size_t n, cap;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->n + (size_t)len + 1 > t->cap) {
        t->cap = (t->n + (size_t)len + 1) * 2;
        t->s = realloc(t->s, t->cap);
        cr_assert(t->s);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->n, (size_t)len + 1, fmt, ap);
    va_end(ap);
    t->n += (size_t)len;
}

/* What one-shot mode prints on stdout for ARGS... */
static char *one_shot(const char *arg, ...)
{
    const char *argv[16] = {getenv("TKVCTL"), "-p", port, arg};
    int n = 4;
    va_list ap;
    va_start(ap, arg);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char *out, *err;
    run_capture(argv, NULL, &out, &err);
    free(err);
    return out;
}

Test(session, pipe_many_lines_in_order, .init = setup, .fini = teardown, .timeout = 120)
{
    const int N = 2000; /* many times the window of 256 in flight */
    text in = {0}, want = {0};
    for (int i = 0; i < N; i++) {
        add(&in, "put k%d 'value %d, quoted' --ts %d\n", i, i, i + 1);
        add(&want, "%d\n", i + 1);
    }
    add(&in, "# a comment, then a blank line\n\n");
    add(&in, "put q \"say \\\"hi\\\"\" --ts 5\nput s it\\'s\\ a'\"'b --ts 5\n");
    add(&want, "5\n5\n");
    add(&in, "get k1 --ts yesterday\n"); /* refused before sending */
    add(&in, "put %01500d v\n", 0);      /* refused by the server: key too long */
    for (int i = 0; i < N; i += 7) {
        add(&in, "get k%d\n", i);
        add(&want, "value %d, quoted\n", i);
    }
    /* Commands that run alone keep their place among the pipelined ones. */
    add(&in, "range k3 --json\nmget --ts 2 k0 k1\nget q\nget s\ncount k9\nping\n");
    add(&want, "{\"key\":\"k3\",\"versions\":[{\"ts\":4,\"value\":\"value 3, quoted\","
               "\"tombstone\":false,\"expires\":null}],\"truncated\":false}\n"
               "k0\t1\tvalue 0, quoted\nk1\t2\tvalue 1, quoted\n"
               "say \"hi\"\nit's a\"b\n1\nPONG\n");
    char *out, *err;
    int rc = ctl(in.s, &out, &err, "--pipe", NULL);
    cr_assert_eq(rc, 2, "an error makes the exit status 2; stderr: %s", err);
    cr_assert_str_eq(out, want.s);
    int replies = N + 2 + (N + 6) / 7 + 6 + 1; /* the server's error is a reply too */
    char summary[64];
    snprintf(summary, sizeof summary, "replies: %d, errors: 2\n", replies);
    cr_assert(strstr(err, summary), "want '%s' in stderr: %s", summary, err);
    cr_assert(strstr(err, "invalid --ts 'yesterday'"), "stderr: %s", err);
    cr_assert(strstr(err, "key"), "the server's refusal: %s", err);
    free(out);
    free(err);

    /* The same output as one-shot mode, line for line. */
    char *get = one_shot("--json", "get", "k3", "--ts", "3", NULL);
    char *range = one_shot("range", "k5", "--from", "1", NULL);
    rc = ctl("get k3 --ts 3 --json\nrange k5 --from 1\n", &out, &err, "--pipe", NULL);
    cr_assert_eq(rc, 1, "a miss, no error: status 1; stderr: %s", err);
    text both = {0};
    add(&both, "%s%s", get, range);
    cr_assert_str_eq(out, both.s);
    cr_assert(!strstr(err, "not found"), "--json tells the miss on stdout: %s", err);
    cr_assert(strstr(err, "replies: 2, errors: 0\n"), "%s", err);
    free(get);
    free(range);
    free(both.s);
    free(out);
    free(err);

    cr_assert_eq(ctl("ping\n", &out, &err, "--pipe", NULL), 0);
    cr_assert_str_eq(out, "PONG\n");
    free(out);
    free(err);
    free(in.s);
    free(want.s);
}

Test(session, pipe_messages_keep_their_place_with_2_to_1, .init = setup, .fini = teardown)
{
    const char *argv[] = {"/bin/sh",        "-c", "exec \"$0\" -p \"$1\" --pipe 2>&1",
                          getenv("TKVCTL"), port, NULL};
    char *out, *err;
    int rc = run_capture(argv,
                         "ping\nbogus\nget nope\nping\nget a --ts 5 --version 1\n"
                         "put a b --ts 3\n",
                         &out, &err);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert_str_eq(out, "PONG\n"
                          "tkvctl: unknown command 'bogus' (see tkvctl --help)\n"
                          "nope: not found (no such key)\n"
                          "PONG\n"
                          "tkvctl: get: give --ts or --version, not both\n"
                          "3\n"
                          "replies: 4, errors: 2\n");
    free(out);
    free(err);
}

Test(session, pipe_refuses_a_command_and_an_unreachable_server, .init = setup, .fini = teardown)
{
    char *out, *err;
    cr_assert_eq(ctl("", &out, &err, "--pipe", "get", "k", NULL), 2);
    cr_assert(strstr(err, "take no command"), "%s", err);
    free(out);
    free(err);
    /* Help would be printed at once, ahead of the replies still in flight. */
    cr_assert_eq(ctl("ping\nget --help\nping\n", &out, &err, "--pipe", NULL), 2);
    cr_assert_str_eq(out, "PONG\nPONG\n");
    cr_assert(strstr(err, "not for --pipe"), "%s", err);
    cr_assert(strstr(err, "replies: 2, errors: 1\n"), "%s", err);
    free(out);
    free(err);
    tkvd_stop(&d);
    cr_assert_eq(ctl("ping\n", &out, &err, "--pipe", NULL), 2);
    cr_assert(strstr(err, "cannot connect"), "%s", err);
    free(out);
    free(err);
}

Test(session, script_on_stdin_runs_like_the_prompt, .init = setup, .fini = teardown)
{
    const char *script = "put a 'x y' --ts 3\n"
                         "  get a   \n"
                         "get a --json\n"
                         "help count\n"
                         "get missing\n"
                         "put b - --ts 4\n"
                         "-p 1 ping\n"
                         "put 'unterminated\n"
                         "count a\n"
                         "quit\n"
                         "ping\n";
    char *out, *err;
    int rc = ctl(script, &out, &err, NULL);
    cr_assert_eq(rc, 2, "the worst line's status; stderr: %s", err);
    cr_assert_str_eq(out, "3\n"
                          "x y\n"
                          "{\"key\":\"a\",\"found\":true,\"value\":\"x y\",\"ts\":3,\"next\":null,"
                          "\"expires\":null}\n"
                          "count KEY [--from T] [--to T]\n"
                          "Prints how many versions KEY has in the range.\n"
                          "1\n");
    cr_assert(strstr(err, "missing: not found (no such key)"), "%s", err);
    cr_assert(strstr(err, "put: standard input holds the commands"), "%s", err);
    cr_assert(strstr(err, "-H, -p, -s, -a, -t and --max-frame are given when tkvctl starts"), "%s",
              err);
    cr_assert(strstr(err, "unterminated single quote"), "%s", err);
    free(out);
    free(err);

    rc = ctl("ping\nget a\n", &out, &err, NULL);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert_str_eq(out, "PONG\nx y\n");
    cr_assert_str_eq(err, "");
    free(out);
    free(err);
}

/* A child with pipes on stdin, stdout and stderr. */
typedef struct child {
    pid_t pid;
    int in, out, err;
} child;

static child spawn(const char *const *argv)
{
    child k = {0};
    int pi[2], po[2], pe[2];
    /* Close-on-exec: a tkvd the test restarts must not hold tkvctl's stdin
     * open, or closing it would never reach tkvctl as the end. */
    cr_assert(pipe2(pi, O_CLOEXEC) == 0 && pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0);
    k.pid = fork();
    cr_assert_neq(k.pid, -1);
    if (k.pid == 0) {
        dup2(pi[0], 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pi[0]);
    close(po[1]);
    close(pe[1]);
    k.in = pi[1];
    k.out = po[0];
    k.err = pe[0];
    return k;
}

/* Reads fd into *buf (NUL-terminated, growing) until it holds want;
 * false at EOF or after WAIT_MS. */
static bool read_until(int fd, text *buf, const char *want)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (buf->s && strstr(buf->s, want))
            return true;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left =
            WAIT_MS - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return false;
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof chunk - 1);
        if (n <= 0)
            return false;
        chunk[n] = '\0';
        add(buf, "%s", chunk);
    }
}

static void say(int fd, const char *line)
{
    size_t n = strlen(line);
    cr_assert_eq(write(fd, line, n), (ssize_t)n);
}

static int reap(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(session, reconnects_after_a_server_restart, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *argv[] = {getenv("TKVCTL"), "-p", port, NULL};
    child k = spawn(argv);
    text out = {0}, err = {0};
    say(k.in, "put r one --ts 1\n");
    cr_assert(read_until(k.out, &out, "1\n"), "stdout: %s", out.s);
    tkvd_stop(&d);
    tkvd_restart(&d);
    say(k.in, "get r\n");
    cr_assert(read_until(k.out, &out, "1\none\n"), "stdout: %s", out.s);
    cr_assert(read_until(k.err, &err, "reconnecting to 127.0.0.1:"), "stderr: %s", err.s);
    cr_assert(strstr(err.s, "connection lost"), "%s", err.s);
    /* The new connection is kept: the next command says nothing more. */
    say(k.in, "get r --json\n");
    cr_assert(read_until(k.out, &out, "\"value\":\"one\""), "stdout: %s", out.s);
    close(k.in);
    cr_assert_eq(reap(k.pid), 0);
    read_until(k.err, &err, "\x01"); /* to EOF */
    cr_assert_eq(strstr(strstr(err.s, "reconnecting") + 1, "reconnecting"), NULL,
                 "one reconnection: %s", err.s);
    close(k.out);
    close(k.err);
    free(out.s);
    free(err.s);
}

Test(session, pipe_answers_while_its_input_pauses, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *argv[] = {getenv("TKVCTL"), "-p", port, "--pipe", NULL};
    child k = spawn(argv);
    text out = {0}, err = {0};
    /* Each reply comes while the input is still open: tkvctl does not hold
     * it back for more lines that would fill its window. */
    say(k.in, "put w 'first value' --ts 1\n");
    cr_assert(read_until(k.out, &out, "1\n"), "stdout: %s", out.s);
    say(k.in, "get w\nget w --ts 0\n");
    cr_assert(read_until(k.out, &out, "1\nfirst value\n"), "stdout: %s", out.s);
    cr_assert(read_until(k.err, &err, "w: not found"), "stderr: %s", err.s);
    close(k.in);
    cr_assert_eq(reap(k.pid), 1, "a miss, no error");
    cr_assert(read_until(k.err, &err, "replies: 3, errors: 0\n"), "stderr: %s", err.s);
    close(k.out);
    close(k.err);
    free(out.s);
    free(err.s);
}

Test(session, prompt_on_a_terminal, .init = setup, .fini = teardown, .timeout = 60)
{
    char *dir = tmpdir_make("hist");
    char hist[4200], env[4300];
    snprintf(hist, sizeof hist, "%s/history", dir);
    snprintf(env, sizeof env, "TKVCTL_HISTFILE=%s", hist);
    int fd;
    pid_t pid = forkpty(&fd, NULL, NULL, NULL);
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        putenv(env);
        putenv("TERM=dumb");
        execl(getenv("TKVCTL"), "tkvctl", "-p", port, (char *)NULL);
        _exit(127);
    }
    char prompt[32];
    snprintf(prompt, sizeof prompt, "127.0.0.1:%s> ", port);
    text t = {0};
    cr_assert(read_until(fd, &t, prompt), "the prompt: %s", t.s);
    say(fd, "put p 'a b' --ts 9\r");
    cr_assert(read_until(fd, &t, "\r\n9\r\n"), "put's answer: %s", t.s);
    /* "ra" completes to "range". */
    say(fd, "ra\t p\r");
    cr_assert(read_until(fd, &t, "9\ta b\r\n"), "range's answer: %s", t.s);
    /* "--ve" completes to get's "--version". */
    t.n = 0;
    t.s[0] = '\0';
    say(fd, "get p --ve\t-1\r"); /* completion adds the blank */
    cr_assert(read_until(fd, &t, "--version -1\r\na b\r\n"), "get's answer: %s", t.s);
    say(fd, "help del\r");
    cr_assert(read_until(fd, &t, "del KEY [--at T]\r\n"), "help: %s", t.s);
    say(fd, "quit\r");
    cr_assert_eq(reap(pid), 0);
    close(fd);
    struct stat st;
    cr_assert_eq(stat(hist, &st), 0, "the history file %s", hist);
    cr_assert_eq(st.st_mode & 0777, 0600, "the user's alone: %o", st.st_mode & 0777);
    FILE *f = fopen(hist, "r");
    cr_assert(f, "the history file %s", hist);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    /* libedit's file format writes a blank as \040. */
    cr_assert(strstr(buf, "range\\040"), "history: %s", buf);
    cr_assert(strstr(buf, "help\\040del"), "history: %s", buf);
    tmpdir_remove(dir);
    free(t.s);
}

Test(session, latency_counts_and_reports, .init = setup, .fini = teardown, .timeout = 60)
{
    char *out, *err;
    int rc = ctl(NULL, &out, &err, "--latency-count", "50", "--interval", "0", NULL);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    double mn, avg, mx, p99;
    unsigned long samples;
    char end;
    cr_assert_eq(sscanf(out, "min: %lf, avg: %lf, max: %lf, p99: %lf ms (%lu samples)%c", &mn, &avg,
                        &mx, &p99, &samples, &end),
                 6, "stdout: %s", out);
    cr_assert_eq(samples, 50);
    cr_assert_eq(end, '\n');
    cr_assert(mn > 0 && mn <= avg && avg <= mx && mn <= p99 && p99 <= mx, "%s", out);
    cr_assert(mx < 10000, "a loopback PING under 10 s: %s", out);
    free(out);
    free(err);

    rc = ctl(NULL, &out, &err, "--latency", "--latency-count", "3", "--json", NULL);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert(strncmp(out, "{\"samples\":3,\"min_us\":", 22) == 0, "%s", out);
    cr_assert(strstr(out, "\"p99_us\":"), "%s", out);
    free(out);
    free(err);

    tkvd_stop(&d);
    cr_assert_eq(ctl(NULL, &out, &err, "--latency-count", "3", NULL), 2);
    cr_assert(strstr(err, "cannot connect"), "%s", err);
    free(out);
    free(err);
}
