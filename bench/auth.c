/*
 * auth.c - implements the AUTH handshake of auth.h.
 *
 * The handshake is blocking (poll() on the non-blocking socket), once per
 * connection while the run opens: it is not part of any measurement, and
 * doing it before the loop starts keeps the engine's pipeline accounting
 * free of a request that is no operation of the workload.
 */
#include "auth.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"

#define AUTH_READ_WANT 4096

/* Waits until fd is ready for `events`. Returns 0, or -1 with err set. */
static int wait_for(int fd, short events, int timeout_ms, char *err, size_t errlen)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        snprintf(err, errlen, "AUTH: %s", n == 0 ? "no reply in time" : strerror(errno));
        return -1;
    }
}

static int send_all(int fd, const uint8_t *p, size_t len, int timeout_ms, char *err, size_t errlen)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_for(fd, POLLOUT, timeout_ms, err, errlen) < 0)
                return -1;
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "AUTH: send: %s", strerror(errno));
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads until the reader holds the whole reply; returns its verdict. */
static int read_verdict(int fd, const bench_driver *drv, bench_reader *rd, int timeout_ms,
                        char *err, size_t errlen)
{
    for (;;) {
        bench_reply cls;
        bench_text msg = {NULL, 0};
        int rc = drv->auth_reply(rd, &cls, &msg, err, errlen);
        if (rc < 0)
            return -1;
        if (rc > 0 && cls == REPLY_OK)
            return 0;
        if (rc > 0) {
            int len = msg.len > 200 ? 200 : (int)msg.len;
            snprintf(err, errlen, "AUTH refused: %.*s", len,
                     msg.ptr ? (const char *)msg.ptr : "(no message)");
            return -1;
        }
        uint8_t *p;
        size_t avail;
        if (drv->reader_space(rd, AUTH_READ_WANT, &p, &avail) < 0 || avail == 0) {
            snprintf(err, errlen, "AUTH: %s", avail == 0 ? "reply too large" : "out of memory");
            return -1;
        }
        ssize_t n = recv(fd, p, avail, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_for(fd, POLLIN, timeout_ms, err, errlen) < 0)
                return -1;
            continue;
        }
        if (n <= 0) {
            snprintf(err, errlen, "AUTH: %s",
                     n == 0 ? "the server closed the connection" : strerror(errno));
            return -1;
        }
        drv->reader_commit(rd, (size_t)n);
    }
}

int bench_auth(int fd, const bench_driver *drv, const char *secret, size_t max_reply,
               int timeout_ms, char *err, size_t errlen)
{
    tkv_buf out = {0};
    bench_reader rd;
    drv->reader_init(&rd, max_reply);
    int rc = drv->encode_auth(&out, (const uint8_t *)secret, strlen(secret));
    if (rc < 0)
        snprintf(err, errlen, "AUTH: out of memory");
    else
        rc = send_all(fd, out.data, out.len, timeout_ms, err, errlen);
    if (rc == 0)
        rc = read_verdict(fd, drv, &rd, timeout_ms, err, errlen);
    tkv_buf_deinit(&out);
    drv->reader_deinit(&rd);
    return rc;
}
