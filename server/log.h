/*
 * log.h - one-line log records on stderr: UTC time to the millisecond, the
 * level, the message. The reactor is single-threaded; so is logging.
 *
 * With a log file (tkvd --log-file), the file replaces stderr itself, so
 * whatever else writes to stderr lands there too; tkv_log_reopen() (SIGHUP)
 * opens the path anew after logrotate has moved the old file away.
 */
#ifndef TKV_LOG_H
#define TKV_LOG_H

typedef enum tkv_log_level {
    TKV_LOG_DEBUG,
    TKV_LOG_INFO,
    TKV_LOG_WARN,
    TKV_LOG_ERROR,
} tkv_log_level;

void tkv_log_set_level(tkv_log_level level);
/* Parses "debug", "info", "warn" or "error". Returns 0 or -1. */
int tkv_log_parse_level(const char *s, tkv_log_level *out);
/* Sends stderr to path (appending, created 0640 if missing) and remembers
 * it for tkv_log_reopen(). Returns 0, or -1 with errno set. */
int tkv_log_open(const char *path);
/* Opens the remembered path again. Returns 0 (also when there is no log
 * file: stderr stays as it is), or -1 with errno set and the old file kept. */
int tkv_log_reopen(void);
/* The log file's path, or NULL when logging to the inherited stderr. */
const char *tkv_log_path(void);
void tkv_log(tkv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tkv_debug(...) tkv_log(TKV_LOG_DEBUG, __VA_ARGS__)
#define tkv_info(...) tkv_log(TKV_LOG_INFO, __VA_ARGS__)
#define tkv_warn(...) tkv_log(TKV_LOG_WARN, __VA_ARGS__)
#define tkv_error(...) tkv_log(TKV_LOG_ERROR, __VA_ARGS__)

#endif
