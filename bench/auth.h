/*
 * auth.h - the AUTH handshake tkv-bench performs on each new connection
 * before the event loop takes it over.
 */
#ifndef TKV_BENCH_AUTH_H
#define TKV_BENCH_AUTH_H

#include <stddef.h>

#include "driver.h"

/* Sends AUTH with `secret` on the connected, non-blocking socket fd and
 * waits for the reply, giving up after timeout_ms without progress. The
 * reply is read with a reader of its own (max_reply bytes at most), so
 * nothing of the handshake is left in the connection's state. Returns 0 if
 * the server accepted the secret, or -1 with a message in err: refused (the
 * server's own words), no reply in time, the connection closed, or a
 * malformed reply. */
int bench_auth(int fd, const bench_driver *drv, const char *secret, size_t max_reply,
               int timeout_ms, char *err, size_t errlen);

#endif
