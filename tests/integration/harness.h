/*
 * harness.h - starts the real tkvd for integration tests: a fresh temporary
 * data directory, a free port (tkvd --port 0 writes the port it bound to a
 * file the harness waits for), stderr captured to a log shown on failure.
 * Restarts reuse the directory and the port.
 */
#ifndef TKV_TEST_HARNESS_H
#define TKV_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tkv/client.h"

typedef struct tkvd {
    pid_t pid;
    uint16_t port;
    char *dir;
    char portfile[4200];
    char logfile[4200];
    const char *args[32]; /* extra arguments, NULL-terminated */
    const char *env[8];   /* extra NAME=VALUE environment, NULL-terminated */
} tkvd;

/* Starts tkvd with extra arguments (NULL-terminated list, may be NULL) in a
 * new data directory. Aborts the test on failure. */
void tkvd_start(tkvd *d, const char *const *extra);
/* Like tkvd_start, with extra environment entries (NAME=VALUE) for the
 * server process; "{dir}" in a value stands for the data directory. */
void tkvd_start_env(tkvd *d, const char *const *extra, const char *const *env);

/* Like tkvd_start, on a new data directory first filled by
 * `tkvd --restore backup` (asserted to succeed). */
void tkvd_start_restored(tkvd *d, const char *const *extra, const char *backup);

/* True when TKVD_WRAPPER runs every server under a tool (valgrind): there
 * the threads run one at a time, each server start costs a second, and a
 * test that repeats what others already check under the tool is skipped. */
bool tkvd_wrapped(void);
/* Starts again on the same directory and port; the previous process must
 * be gone. */
void tkvd_restart(tkvd *d);
/* Sends sig and reaps the process; returns its wait status. */
int tkvd_signal(tkvd *d, int sig);
/* SIGTERM, and asserts a clean exit 0. */
void tkvd_stop(tkvd *d);
/* Stops if running and removes the directory. */
void tkvd_cleanup(tkvd *d);
/* A connected client context with a 10 s timeout; asserts success. */
tkv_ctx *tkvd_client(const tkvd *d);
/* Stores a value of len zero bytes under key at ts 1; asserts success. */
void tkvd_put_zeros(const tkvd *d, const char *key, size_t len);
/* A numeric STATS field; asserts that STATS answers and has it. */
uint64_t tkvd_stat(tkv_ctx *c, const char *name);
/* A raw blocking TCP socket to the server. */
int tkvd_raw(const tkvd *d);
/* The server's log so far (malloc'd). */
char *tkvd_log(const tkvd *d);

/* Raw socket helpers: write all bytes; read one whole frame (payload into
 * buf, returns its length, or -1 on EOF/error/timeout). */
void raw_send(int fd, const void *p, size_t n);
long raw_frame(int fd, uint8_t *buf, size_t cap);
/* Reads until EOF; returns true if the peer closed within the timeout. */
bool raw_wait_eof(int fd, int timeout_ms);

/* Runs a program, feeding `input` (may be NULL) on stdin; captures stdout
 * and stderr (malloc'd, NUL-terminated); returns the exit status. */
int run_capture(const char *const *argv, const char *input, char **out, char **err);

#endif
