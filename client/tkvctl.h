/*
 * tkvctl.h - what tkvctl's files share: tkvctl.c (the single-key commands,
 * the command table, main), tkvctl_args.c (the command line and usage) and
 * tkvctl_multi.c (the commands over many keys, ping, stats) and
 * tkvctl_repl.c (replication).
 */
#ifndef TKV_TKVCTL_H
#define TKV_TKVCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "jsonout.h"
#include "tkv/client.h"

#define EXIT_NOTFOUND 1
#define EXIT_ERROR 2
#define DEFAULT_PORT 7379
#define MAX_POS 4096
#define MAX_OPTS 12
#define OPT_NAME_MAX 32

typedef struct cli {
    const char *host;
    const char *secret; /* AUTH after connecting, if set */
    uint16_t port;
    int timeout_ms;
    bool trace;
    bool json;
    bool iso;                 /* timestamps as ISO-8601 UTC (in JSON: also) */
    uint64_t max_frame;       /* the server's frame limit, as far as we know */
    const char *etcd;         /* --etcd: the cluster commands' etcd URLs */
    const char *cluster_name; /* --cluster-name */
    tkv_ctx *ctx;
} cli;

/* A command's arguments: positionals, and --name [value] options. */
typedef struct args {
    const char *pos[MAX_POS];
    int npos;
    char names[MAX_OPTS][OPT_NAME_MAX];
    const char *values[MAX_OPTS];
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

/* Parses the whole command line into c (global options), *cmd and a.
 * Returns -1 to go on and run *cmd, else the exit status to end with (0
 * after printing help or the version). */
int parse_line(cli *c, const command *cmds, size_t ncmds, int argc, char **argv,
               const command **cmd, args *a);
void print_usage(const command *cmds, size_t ncmds, FILE *f);

int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int server_fail(cli *c);
const char *opt(const args *a, const char *name);
int parse_time(const char *s, const char *what, uint64_t *out);
int parse_count(const char *s, const char *what, uint64_t max, uint64_t *out);
int connect_cli(cli *c);
/* The fewest bytes a PUT or an MPUT item adds beyond its key and value (a
 * few MessagePack headers): a request this size or more cannot be smaller. */
#define PUT_OVERHEAD 4u
/* Refuses (message, EXIT_ERROR) a request of bytes or more that cannot fit
 * c->max_frame: tkvd would close the connection mid-send, and the reason
 * would be lost as "connection reset". Returns 0 if it may fit. */
int check_frame(const cli *c, const char *what, uint64_t bytes);
void explain_miss(const cli *c, const char *key, const tkv_version *v);
void json_answer(const cli *c, json_out *j, const tkv_version *v);

/* A timestamp as tkvctl prints it into buf (TS_TEXT_MAX bytes): ISO-8601
 * UTC with --iso (a number past the year 9999), else microseconds. With
 * reparse, a number that tkv_parse_time would refuse as ambiguous gets its
 * unit ("1000000000us"), so the text always reads back as the same time. */
#define TS_TEXT_MAX 40
const char *ts_text(const cli *c, uint64_t ts, bool reparse, char *buf);
/* The JSON field name (null if !has) and, with --iso, name_iso beside it. */
void json_ts(const cli *c, json_out *j, const char *name, bool has, uint64_t ts);

/* tkvctl_lines.c: mget's and mput's escaped KEY<TAB>TS<TAB>VALUE lines. */
void line_write_bytes(FILE *f, const void *p, size_t n);
/* Unescapes s[0..*len) in place, setting *len. Returns 0, or -1 for a
 * backslash that starts no escape. */
int line_unescape(char *s, size_t *len);

int run_mput(cli *c, const args *a);
int run_mget(cli *c, const args *a);
int run_scan(cli *c, const args *a);
int run_ping(cli *c, const args *a);
int run_stats(cli *c, const args *a);

/* tkvctl_backup.c: the commands over the whole store. */
int run_digest(cli *c, const args *a);
int run_backup(cli *c, const args *a);
int run_verify(cli *c, const args *a);
int run_restore(cli *c, const args *a);

/* tkvctl_repl.c: replication. The parsers check a command's positionals
 * (as parse_line left them) and print why they refuse: EXIT_ERROR. */
int parse_replicaof(const args *a, const char **host, uint16_t *port); /* host NULL: NO ONE */
int parse_wait(const args *a, uint64_t *n, uint64_t *timeout_ms);
int run_replicaof(cli *c, const args *a);
int run_role(cli *c, const args *a);
int run_wait(cli *c, const args *a);

/* tkvctl_cluster.c: the cluster's admin commands, which talk to etcd (not
 * to a tkvd): cluster nodes | create | info. */
int run_cluster(cli *c, const args *a);

#endif
