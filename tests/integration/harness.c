/*
 * harness.c - implements the tkvd test harness of harness.h.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "byteorder.h"

#define START_TIMEOUT_MS 20000

static const char *tkvd_path(void)
{
    /* TKVD_OVERRIDE swaps in another build of the server (e.g. one built
     * with ThreadSanitizer) under the same tests. */
    const char *p = getenv("TKVD_OVERRIDE");
    if (!p || !*p)
        p = getenv("TKVD");
    cr_assert(p && *p, "TKVD must name the tkvd binary (meson test sets it)");
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

char *tkvd_log(const tkvd *d)
{
    FILE *f = fopen(d->logfile, "r");
    char *buf = calloc(1, 1 << 20);
    if (f) {
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

/* Replaces each "{dir}" in s by the data directory (child process only:
 * the result is never freed). */
static char *expand_dir(const char *s, const char *dir)
{
    char *out = malloc(strlen(s) * 2 + 8 * strlen(dir) + 1), *o = out;
    while (*s) {
        if (strncmp(s, "{dir}", 5) == 0) {
            o = stpcpy(o, dir);
            s += 5;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

bool tkvd_wrapped(void)
{
    const char *w = getenv("TKVD_WRAPPER");
    return w && *w;
}

static void spawn(tkvd *d, const char *port)
{
    const char *argv[64];
    int n = 0;
    /* TKVD_WRAPPER runs the server under a tool, e.g. valgrind: its words
     * come first. */
    static char wrapper[1024];
    const char *w = getenv("TKVD_WRAPPER");
    if (w && *w) {
        snprintf(wrapper, sizeof wrapper, "%s", w);
        for (char *tok = strtok(wrapper, " "); tok && n < 16; tok = strtok(NULL, " "))
            argv[n++] = tok;
    }
    argv[n++] = tkvd_path();
    argv[n++] = "--data-dir";
    argv[n++] = d->dir;
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--port-file";
    argv[n++] = d->portfile;
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    for (int i = 0; d->args[i] && n < 62; i++)
        argv[n++] = d->args[i];
    argv[n] = NULL;
    unlink(d->portfile);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* A test that dies (a crash, Criterion's timeout) takes its server
         * with it, rather than leaving it running. (Servers are started from
         * the test's own thread, which lives as long as the test.) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(d->logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
        }
        for (int i = 0; d->env[i]; i++)
            putenv(expand_dir(d->env[i], d->dir));
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
}

/* Waits for the port file: tkvd writes it once it accepts connections.
 * Returns 0, or (retry_busy) -1 if tkvd exited because its port was taken
 * (said in its log past byte log_from). */
static int wait_ready_or_busy(tkvd *d, bool retry_busy, size_t log_from)
{
    for (int waited = 0; waited < START_TIMEOUT_MS; waited += 5) {
        FILE *f = fopen(d->portfile, "r");
        if (f) {
            unsigned port = 0;
            int ok = fscanf(f, "%u", &port);
            fclose(f);
            if (ok == 1 && port > 0) {
                d->port = (uint16_t)port;
                return 0;
            }
        }
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            char *log = tkvd_log(d);
            if (retry_busy && strlen(log) > log_from &&
                strstr(log + log_from, "Address already in use")) {
                free(log);
                return -1;
            }
            cr_assert_fail("tkvd exited during start-up (status %d):\n%s", status, log);
        }
        sleep_ms(5);
    }
    char *log = tkvd_log(d);
    cr_assert_fail("tkvd did not become ready:\n%s", log);
    return -1;
}

static void wait_ready(tkvd *d) { wait_ready_or_busy(d, false, 0); }

void tkvd_start(tkvd *d, const char *const *extra) { tkvd_start_env(d, extra, NULL); }

void tkvd_start_env(tkvd *d, const char *const *extra, const char *const *env)
{
    memset(d, 0, sizeof *d);
    int n = 0;
    for (; extra && extra[n] && n < 31; n++)
        d->args[n] = extra[n];
    d->args[n] = NULL;
    for (n = 0; env && env[n] && n < 7; n++)
        d->env[n] = env[n];
    d->env[n] = NULL;
    d->dir = tmpdir_make("it");
    snprintf(d->portfile, sizeof d->portfile, "%s/port", d->dir);
    snprintf(d->logfile, sizeof d->logfile, "%s/tkvd.log", d->dir);
    spawn(d, "0");
    wait_ready(d);
}

void tkvd_start_restored(tkvd *d, const char *const *extra, const char *backup)
{
    memset(d, 0, sizeof *d);
    int n = 0;
    for (; extra && extra[n] && n < 31; n++)
        d->args[n] = extra[n];
    d->args[n] = NULL;
    d->dir = tmpdir_make("it");
    snprintf(d->portfile, sizeof d->portfile, "%s/port", d->dir);
    snprintf(d->logfile, sizeof d->logfile, "%s/tkvd.log", d->dir);
    /* Before the server's own files: a restore wants an empty directory. */
    const char *argv[] = {tkvd_path(), "--restore", backup, "--data-dir", d->dir, NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_eq(rc, 0, "tkvd --restore %s: exit %d: %s", backup, rc, err);
    free(out);
    free(err);
    spawn(d, "0");
    wait_ready(d);
}

void tkvd_restart(tkvd *d)
{
    cr_assert_eq(d->pid, 0, "restart while running");
    char port[8];
    snprintf(port, sizeof port, "%u", d->port);
    /* The old port is free again only as far as this test knows: while the
     * server was down, any socket of a test running beside this one - a
     * client connection's local end - may have been given it. Those live
     * briefly: try again for a while. */
    for (int attempt = 0;; attempt++) {
        struct stat st;
        size_t from = stat(d->logfile, &st) == 0 ? (size_t)st.st_size : 0;
        spawn(d, port);
        if (wait_ready_or_busy(d, attempt < 100, from) == 0)
            return;
        sleep_ms(50);
    }
}

int tkvd_signal(tkvd *d, int sig)
{
    int status = 0;
    if (d->pid > 0) {
        kill(d->pid, sig);
        waitpid(d->pid, &status, 0);
        d->pid = 0;
    }
    return status;
}

void tkvd_stop(tkvd *d)
{
    int st = tkvd_signal(d, SIGTERM);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *log = tkvd_log(d);
        cr_assert_fail("tkvd did not exit cleanly (status %d):\n%s", st, log);
    }
}

/* Waits up to ms for the server to exit; returns its status or -1. */
static int wait_exit(tkvd *d, int ms)
{
    for (int waited = 0; waited <= ms; waited += 5) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            return status;
        }
        sleep_ms(5);
    }
    return -1;
}

/* What each thread of a server that does not stop is doing: name, state
 * and the kernel function it sleeps in, from /proc (no debugger needed). */
static void thread_states(pid_t pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    out[0] = '\0';
    DIR *dir = opendir(path);
    if (!dir)
        return;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char comm[64] = "?", wchan[64] = "?", stat[512] = "", f[400];
        char state = '?';
        snprintf(f, sizeof f, "%s/%s/comm", path, e->d_name);
        FILE *fp = fopen(f, "r");
        if (fp) {
            if (fgets(comm, sizeof comm, fp))
                comm[strcspn(comm, "\n")] = '\0';
            fclose(fp);
        }
        snprintf(f, sizeof f, "%s/%s/wchan", path, e->d_name);
        if ((fp = fopen(f, "r"))) {
            if (!fgets(wchan, sizeof wchan, fp))
                snprintf(wchan, sizeof wchan, "?");
            fclose(fp);
        }
        snprintf(f, sizeof f, "%s/%s/stat", path, e->d_name);
        if ((fp = fopen(f, "r"))) {
            if (fgets(stat, sizeof stat, fp)) {
                const char *rp = strrchr(stat, ')');
                if (rp && rp[1] == ' ')
                    state = rp[2];
            }
            fclose(fp);
        }
        size_t used = strlen(out);
        snprintf(out + used, n - used, "  thread %s %s: %c in %s\n", e->d_name, comm, state, wchan);
    }
    closedir(dir);
}

void tkvd_cleanup(tkvd *d)
{
    /* Every test ends with a clean shutdown, so that a memory checker
     * wrapping the server gets to report (and fail the test). */
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int st = wait_exit(d, 60000);
        if (st == -1) {
            static char threads[8192];
            thread_states(d->pid, threads, sizeof threads);
            tkvd_signal(d, SIGKILL);
            char *log = tkvd_log(d);
            size_t ll = strlen(log);
            cr_assert_fail("tkvd did not stop within 60 s of SIGTERM; its threads then:\n%s"
                           "the end of its log:\n%s",
                           threads, log + (ll > 4000 ? ll - 4000 : 0));
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            char *log = tkvd_log(d);
            cr_assert_fail("tkvd exited with status %d at the end of the test:\n%s", st, log);
        }
    }
    tmpdir_remove(d->dir);
    d->dir = NULL;
}

tkv_ctx *tkvd_client(const tkvd *d)
{
    tkv_ctx *c = tkv_connect("127.0.0.1", d->port, 10000);
    cr_assert_not_null(c);
    cr_assert_eq(tkv_err(c), TKV_EK_NONE, "connect: %s", tkv_errstr(c));
    return c;
}

int tkvd_raw(const tkvd *d)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(d->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        cr_assert_gt(w, 0, "send: %s", strerror(errno));
        b += w;
        n -= (size_t)w;
    }
}

static int read_full(int fd, uint8_t *p, size_t n, int timeout_ms)
{
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return -1;
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

long raw_frame(int fd, uint8_t *buf, size_t cap)
{
    uint8_t h[4];
    if (read_full(fd, h, 4, 10000) < 0)
        return -1;
    uint32_t n = tkv_load_be32(h);
    cr_assert_leq(n, cap, "reply frame of %u bytes", n);
    if (read_full(fd, buf, n, 10000) < 0)
        return -1;
    return (long)n;
}

bool raw_wait_eof(int fd, int timeout_ms)
{
    uint8_t b[4096];
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return false;
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

int run_capture(const char *const *argv, const char *input, char **out, char **err)
{
    char *odir = tmpdir_make("run");
    char opath[4200], epath[4200], ipath[4200];
    snprintf(opath, sizeof opath, "%s/out", odir);
    snprintf(epath, sizeof epath, "%s/err", odir);
    snprintf(ipath, sizeof ipath, "%s/in", odir);
    FILE *in = fopen(ipath, "w");
    if (input)
        fputs(input, in);
    fclose(in);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int i = open(ipath, O_RDONLY), o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0644),
            e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(i, 0);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    int fo = open(opath, O_RDONLY), fe = open(epath, O_RDONLY);
    *out = slurp_fd(fo);
    *err = slurp_fd(fe);
    close(fo);
    close(fe);
    tmpdir_remove(odir);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void tkvd_put_zeros(const tkvd *d, const char *key, size_t len)
{
    tkv_ctx *c = tkvd_client(d);
    char *v = calloc(1, len ? len : 1);
    cr_assert(v);
    cr_assert_eq(tkv_put(c, key, strlen(key), v, len, 1, NULL), TKV_OK, "put %s: %s", key,
                 tkv_errstr(c));
    tkv_free(c);
    free(v);
}

uint64_t tkvd_stat(tkv_ctx *c, const char *name)
{
    const tkv_stat *s;
    size_t n;
    cr_assert_eq(tkv_stats(c, &s, &n), TKV_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0)
            return s[i].num;
    cr_assert_fail("STATS has no %s", name);
    return 0;
}
