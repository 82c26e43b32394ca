/*
 * fakesrv.c - implements fakesrv.h with blocking sockets and poll(): one
 * connection, one thread, nothing clever.
 */
#include "fakesrv.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "byteorder.h"

/* How long the thread waits for the client to connect or to send. */
#define IDLE_MS 5000

void fake_init(fakesrv *f)
{
    memset(f, 0, sizeof *f);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(f->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(f->lfd, 1), 0);
    cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    f->listening = true;
}

tkv_buf *fake_reply(fakesrv *f, int delay_ms)
{
    cr_assert_lt(f->n, FAKE_MAX);
    f->delay_ms[f->n] = delay_ms;
    return &f->replies[f->n++];
}

static bool wait_in(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, IDLE_MS) == 1;
}

/* Reads exactly n bytes; false on EOF, error or idleness. */
static bool read_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        if (!wait_in(fd))
            return false;
        ssize_t got = read(fd, p, n);
        if (got <= 0)
            return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

static bool read_request(int fd, tkv_buf *out)
{
    uint8_t h[4];
    if (!read_all(fd, h, sizeof h))
        return false;
    uint32_t len = tkv_load_be32(h);
    if (len > (1u << 20) || tkv_buf_reserve(out, len) < 0)
        return false;
    if (!read_all(fd, out->data, len))
        return false;
    out->len = len;
    return true;
}

static void *serve(void *arg)
{
    fakesrv *f = arg;
    if (!wait_in(f->lfd))
        return NULL;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    for (int i = 0; i < f->n && read_request(fd, &f->got[i]); i++) {
        f->ngot = i + 1;
        struct timespec d = {f->delay_ms[i] / 1000, (long)(f->delay_ms[i] % 1000) * 1000000};
        nanosleep(&d, NULL);
        if (send(fd, f->replies[i].data, f->replies[i].len, MSG_NOSIGNAL) < 0)
            break;
    }
    /* Until the client closes: a reply it was not meant to get never comes. */
    uint8_t sink[256];
    while (wait_in(fd) && read(fd, sink, sizeof sink) > 0)
        ;
    close(fd);
    return NULL;
}

void fake_start(fakesrv *f)
{
    cr_assert_eq(pthread_create(&f->th, NULL, serve, f), 0);
    f->started = true;
}

int fake_finish(fakesrv *f)
{
    if (f->started)
        pthread_join(f->th, NULL);
    f->started = false;
    if (f->listening)
        close(f->lfd);
    f->listening = false;
    for (int i = 0; i < f->n; i++)
        tkv_buf_deinit(&f->replies[i]);
    f->n = 0;
    return f->ngot;
}

void fake_request(fakesrv *f, int i, tkv_req *req)
{
    cr_assert_lt(i, f->ngot, "request %d was not received", i);
    static const tkv_limits lim = {.max_key = 1024, .max_value = 1u << 20};
    char err[128];
    tkv_status st = tkv_req_parse(f->got[i].data, f->got[i].len, &lim, req, err, sizeof err);
    cr_assert_eq(st, TKV_ST_OK, "request %d: %s", i, err);
}

void fake_free(fakesrv *f)
{
    fake_finish(f);
    for (int i = 0; i < FAKE_MAX; i++)
        tkv_buf_deinit(&f->got[i]);
}
