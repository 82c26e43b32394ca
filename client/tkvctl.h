/*
 * tkvctl.h - what tkvctl's files share: tkvctl.c (the single-key commands,
 * the command table, main), tkvctl_args.c (the command line and usage),
 * tkvctl_multi.c (the commands over many keys, ping, stats),
 * tkvctl_repl.c (replication), and the modes without a command:
 * tkvctl_words.c (one line of words, for both of these), tkvctl_prompt.c
 * (the prompt), tkvctl_pipe.c (--pipe) and tkvctl_latency.c (--latency).
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

/* What tkvctl does when no command is given. */
typedef enum { MODE_PROMPT, MODE_PIPE, MODE_LATENCY } cli_mode;

typedef struct cli {
    const char *host;
    const char *secret; /* AUTH after connecting, if set */
    uint16_t port;
    const char *socket; /* -s: a Unix socket path, used instead of host and port */
    int timeout_ms;
    bool timeout_given; /* -t was on the command line */
    bool trace;
    bool json;
    bool iso;                 /* timestamps as ISO-8601 UTC (in JSON: also) */
    uint64_t max_frame;       /* the server's frame limit, as far as we know */
    const char *etcd;         /* --etcd: the cluster commands' etcd URLs */
    const char *cluster_name; /* --cluster-name */
    cli_mode mode;
    uint64_t latency_count; /* --latency: PINGs to send (0: until interrupted) */
    int interval_ms;        /* --latency: pause between PINGs */
    bool retry_lost;        /* the prompt retries a command whose connection
                               was lost: server_fail then says nothing... */
    bool lost;              /* ...and sets this instead */
    tkv_ctx *ctx;           /* connect_cli's connection, kept for every
                               command of a prompt or --pipe session */
    bool cluster;           /* -c: route by the cluster's map */
    tkv_cluster *cl;        /* -c: the cluster; ctx is then its node's, not ours */
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
 * Returns -1 to go on and run *cmd (NULL if the line names no command:
 * c->mode says what to do), else the exit status to end with (0 after
 * printing help or the version). */
int parse_line(cli *c, const command *cmds, size_t ncmds, int argc, char **argv,
               const command **cmd, args *a);
void print_usage(const command *cmds, size_t ncmds, FILE *f);

int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports the context's error. With c->retry_lost, a lost connection is
 * not reported but noted in c->lost, for the prompt to try again. */
int server_fail(cli *c);
const char *opt(const args *a, const char *name);
int parse_time(const char *s, const char *what, uint64_t *out);
int parse_count(const char *s, const char *what, uint64_t max, uint64_t *out);
/* Connects c->ctx unless it is already set (the prompt and --pipe keep
 * one connection); 0, or EXIT_ERROR with c->ctx NULL after a message. */
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

/* ---- the commands of one request and one reply -----------------------------
 * Each is split in two so that --pipe can keep many in flight and still
 * print exactly what one-shot mode prints. send checks the arguments,
 * connects (connect_cli) and appends the request: 0 when it did,
 * SENT_NOTHING when the answer needs no request (range --limit 0), else
 * the exit status after a message. show prints the reply to that request,
 * given the same args, and returns the exit status. */
#define SENT_NOTHING (-1)
typedef int (*send_fn)(cli *c, const args *a);
typedef int (*show_fn)(cli *c, const args *a, const tkv_reply *r);
typedef struct pipelined {
    int (*run)(cli *c, const args *a); /* the command table's entry */
    send_fn send;
    show_fn show;
} pipelined;

/* The halves of cmd, or NULL if it cannot be pipelined. */
const pipelined *find_pipelined(const command *cmd);
/* Reads the next reply and shows it (a server error as one-shot mode
 * reports it): the exit status. */
int show_reply(cli *c, const args *a, show_fn show);
/* send, then show its reply: the one-shot form. */
int run_sent(cli *c, const args *a, send_fn send, show_fn show);

int send_ping(cli *c, const args *a);
int show_ping(cli *c, const args *a, const tkv_reply *r);
int send_stats(cli *c, const args *a);
int show_stats(cli *c, const args *a, const tkv_reply *r);

/* tkvctl_words.c: a line of a prompt or --pipe session. */
#define LINE_WORDS_MAX (MAX_POS + 2 * MAX_OPTS + 8)
/* Splits line into words in place, as a POSIX shell would: blanks
 * separate, '...' keeps everything, "..." keeps all but \ \" \$ \` (a
 * backslash before those stands for them), a backslash outside quotes
 * keeps the next character, and # starts a comment. Returns the number
 * of words (at most max), or -1 with *why set. */
int split_words(char *line, char **words, int max, const char **why);

/* One line's command, parsed against the session's settings. */
typedef struct line_cmd {
    cli c; /* the session's settings, with this line's --json etc. */
    const command *cmd;
    args a;                         /* points into the line */
    char *argv[LINE_WORDS_MAX + 2]; /* "tkvctl", the words, NULL */
} line_cmd;

/* Splits and parses line (modified in place; it must outlive l) as
 * tkvctl's arguments after the program name, with base's settings.
 * Returns -1 when l->cmd is ready to run; 0 for a line with nothing to run
 * (blank, a comment, or help printed); else EXIT_ERROR after a message:
 * a line may not change the connection (-H, -p, -s, -a, -t, --max-frame), ask
 * for --pipe or --latency, or read standard input (which holds the lines);
 * in --pipe, nor ask for --help. */
int parse_session_line(const cli *base, const command *cmds, size_t ncmds, char *line, line_cmd *l);
/* Makes stdout line-buffered if it goes where stderr goes (2>&1), so a
 * session's output and messages reach the file in the order they come. */
void keep_output_in_order(void);
/* Whether a context's error means the connection is gone. */
bool conn_broken(const tkv_ctx *ctx);

/* The modes without a command; each returns the exit status. */
int run_prompt(cli *c, const command *cmds, size_t ncmds);
int run_pipe(cli *c, const command *cmds, size_t ncmds);
int run_latency(cli *c);

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
/* tkvctl_watch.c: the change feed. */
int run_watch(cli *c, const args *a);

/* tkvctl_etcd.c: the cluster's admin commands, which talk to etcd (not to
 * a tkvd): cluster nodes | create | info. */
int run_cluster_admin(cli *c, const args *a);

/* tkvctl_migrate.c: cluster migrate | add-node | remove-node | rebalance,
 * moving slots between shards live (etcd's map and the nodes). */
struct tkv_etcd;
int run_cluster_move(cli *c, const args *a, struct tkv_etcd *e);

/* tkvctl_cluster.c: cluster mode and the cluster commands. */
/* With -c and a single-key command: connects to the cluster through
 * -H/-p and points c->ctx at the node serving the key (connect_cli then
 * keeps it). Returns 0, or EXIT_ERROR after saying why. */
int cluster_route(cli *c, const command *cmd, const args *a);
/* cluster SUBCOMMAND: shards here, the rest run_cluster_admin(). */
int run_cluster(cli *c, const args *a);

/* tkvctl_slowlog.c: slowlog get [N] | len | reset, one request each. */
int send_slowlog(cli *c, const args *a);
int show_slowlog(cli *c, const args *a, const tkv_reply *r);
int run_slowlog(cli *c, const args *a);

#endif
