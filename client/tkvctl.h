/*
 * tkvctl.h - what tkvctl's two files share: tkvctl.c (options, the
 * single-key commands, main) and tkvctl_multi.c (the commands over many
 * keys, ping, stats).
 */
#ifndef TKV_TKVCTL_H
#define TKV_TKVCTL_H

#include <stdbool.h>
#include <stdint.h>

#include "jsonout.h"
#include "tkv/client.h"

#define EXIT_NOTFOUND 1
#define EXIT_ERROR 2
#define DEFAULT_PORT 7379
#define MAX_POS 4096

typedef struct cli {
    const char *host;
    const char *secret; /* AUTH after connecting, if set */
    uint16_t port;
    int timeout_ms;
    bool trace;
    bool json;
    tkv_ctx *ctx;
} cli;

/* A command's arguments: positionals, and --name [value] options. */
typedef struct args {
    const char *pos[MAX_POS];
    int npos;
    const char *names[12];
    const char *values[12];
    int nopts;
} args;

typedef struct command {
    const char *name;
    const char *usage;
    const char *help;
    const char *options; /* space-separated; a trailing '=' takes a value */
    int min_pos, max_pos;
    int (*run)(cli *c, const args *a);
} command;

int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int server_fail(cli *c);
const char *opt(const args *a, const char *name);
uint64_t now_us(void);
int parse_time(const char *s, const char *what, uint64_t *out);
int parse_count(const char *s, const char *what, uint64_t max, uint64_t *out);
int connect_cli(cli *c);
void explain_miss(const char *key, const tkv_version *v);
void json_answer(json_out *j, const tkv_version *v);

int run_mput(cli *c, const args *a);
int run_mget(cli *c, const args *a);
int run_scan(cli *c, const args *a);
int run_ping(cli *c, const args *a);
int run_stats(cli *c, const args *a);

#endif
