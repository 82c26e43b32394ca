/*
 * etcd_proc.c - implements etcd_proc.h.
 */
#include "etcd_proc.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"
#include "tmpdir.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

char *etcd_log(const etcd_proc *e)
{
    char path[4200], *out = NULL;
    snprintf(path, sizeof path, "%s/etcd.log", e->dir ? e->dir : ".");
    FILE *f = fopen(path, "r");
    if (f) {
        out = calloc(1, 1 << 16);
        if (out && fread(out, 1, (1 << 16) - 1, f) == 0)
            out[0] = '\0';
        fclose(f);
    }
    return out ? out : strdup("(no etcd log)");
}

void etcd_start(etcd_proc *e)
{
    const char *bin = getenv("ETCD");
    if (!bin || access(bin, X_OK) != 0)
        cr_assert_fail("etcd is not installed (ETCD=%s): run scripts/setup, which installs "
                       "etcd-server; these tests do not skip without it",
                       bin ? bin : "(unset)");
    e->dir = tmpdir_make("etcd");
    int cport = free_port(), pport = free_port();
    char data[4200], log[4200], purl[64], initial[96];
    snprintf(data, sizeof data, "%s/data", e->dir);
    snprintf(log, sizeof log, "%s/etcd.log", e->dir);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", cport);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", pport);
    snprintf(initial, sizeof initial, "default=%s", purl);
    e->pid = fork();
    cr_assert(e->pid >= 0);
    if (e->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* if the test dies, etcd goes with it */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "--data-dir", data, "--listen-client-urls", e->url,
              "--advertise-client-urls", e->url, "--listen-peer-urls", purl,
              "--initial-advertise-peer-urls", purl, "--initial-cluster", initial, "--name",
              "default", (char *)NULL);
        _exit(127);
    }
    char err[256];
    tkv_etcd *c = tkv_etcd_new(e->url, 200, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    double deadline = now_s() + 30;
    for (;;) {
        tkv_etcd_kvs kvs;
        if (tkv_etcd_get(c, "x", 1, false, &kvs, err, sizeof err) == 0) {
            tkv_etcd_kvs_free(&kvs);
            break;
        }
        int st;
        if (waitpid(e->pid, &st, WNOHANG) == e->pid) {
            e->pid = 0;
            cr_assert_fail("etcd exited (status %d):\n%s", st, etcd_log(e));
        }
        cr_assert(now_s() < deadline, "etcd did not answer within 30 s: %s\n%s", err, etcd_log(e));
        usleep(50 * 1000); /* a poll interval */
    }
    tkv_etcd_free(c);
}

void etcd_stop(etcd_proc *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
    tmpdir_remove(e->dir);
    e->dir = NULL;
}
