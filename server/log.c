/*
 * log.c - implements the stderr logger of log.h. Each record is formatted
 * into one buffer and written with a single write(2), so records from a
 * crashing process are not interleaved mid-line.
 */
#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static tkv_log_level min_level = TKV_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};
static const char *log_path;

const char *tkv_log_path(void) { return log_path; }

/* dup2 swaps the file under STDERR_FILENO atomically: a record written by
 * another thread meanwhile goes wholly to the old file or the new one. */
static int point_stderr_at(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (fd != STDERR_FILENO) {
        int rc = dup2(fd, STDERR_FILENO);
        close(fd);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int tkv_log_open(const char *path)
{
    if (point_stderr_at(path) < 0)
        return -1;
    log_path = path;
    return 0;
}

int tkv_log_reopen(void) { return log_path ? point_stderr_at(log_path) : 0; }

void tkv_log_set_level(tkv_log_level level) { min_level = level; }

int tkv_log_parse_level(const char *s, tkv_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (tkv_log_level)i;
            return 0;
        }
    }
    return -1;
}

void tkv_log(tkv_log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[1024];
    uint64_t us = tkv_clock_realtime_us();
    time_t sec = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ [%s] ", (int)(us % 1000000u / 1000u),
                          names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
