/*
 * tkvctl.c - the tkv command-line client, a thin layer over libtkvclient.
 *
 * Exit status: 0 success, 1 not found, 2 any error (one line on stderr).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tkv/client.h"

#define EXIT_NOTFOUND 1
#define EXIT_ERROR 2
#define DEFAULT_PORT 7379

typedef struct cli {
    const char *host;
    const char *secret; /* AUTH after connecting, if set */
    uint16_t port;
    int timeout_ms;
    bool trace;
    tkv_ctx *ctx;
} cli;

typedef struct command {
    const char *name;
    const char *args;
    const char *help;
    int (*run)(cli *c, int argc, char **argv);
} command;

#define N_COMMANDS 6
static const command commands[N_COMMANDS];

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tkvctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_ERROR;
}

static int server_fail(cli *c)
{
    return fail("%s", tkv_errstr(c->ctx));
}

static int parse_u64(const char *s, const char *what, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+')
        return fail("invalid %s '%s': expected an unsigned integer", what, s ? s : "");
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return fail("invalid %s '%s': expected an unsigned integer", what, s);
    *out = v;
    return 0;
}

static void trace_frame(void *arg, char dir, const uint8_t *f, size_t n)
{
    fprintf(stderr, "%c %zu bytes:", dir, n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", f[i]);
    fputc('\n', stderr);
}

static int connect_cli(cli *c)
{
    c->ctx = tkv_connect(c->host, c->port, c->timeout_ms);
    if (!c->ctx)
        return fail("out of memory");
    if (tkv_err(c->ctx) != TKV_EK_NONE)
        return fail("%s", tkv_errstr(c->ctx));
    if (c->trace)
        tkv_set_trace(c->ctx, trace_frame, NULL);
    if (c->secret && tkv_auth(c->ctx, c->secret, strlen(c->secret)) != TKV_OK)
        return fail("%s", tkv_errstr(c->ctx));
    return 0;
}

/* Reads all of standard input, for VALUE "-". */
static int read_stdin(char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    if (!buf)
        return fail("out of memory reading standard input");
    if (ferror(stdin)) {
        free(buf);
        return fail("cannot read standard input: %s", strerror(errno));
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Whether name is one of the space-separated words of list. */
static bool has_word(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; n && (p = strstr(p, name)) != NULL; p += n) {
        bool starts = p == list || p[-1] == ' ';
        bool ends = p[n] == '\0' || p[n] == ' ';
        if (starts && ends)
            return true;
    }
    return false;
}

/* Splits a command's arguments into positionals and the --name options it
 * allows (all take a value except --reverse). */
typedef struct args {
    char *pos[4];
    int npos;
    const char *ts, *from, *to, *limit;
    bool reverse;
} args;

static int parse_args(const command *cmd, int argc, char **argv, int maxpos, const char *allowed,
                      args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0) {
            for (i++; i < argc; i++) {
                if (a->npos >= maxpos)
                    return fail("%s: too many arguments (see tkvctl %s --help)", cmd->name,
                                cmd->name);
                a->pos[a->npos++] = argv[i];
            }
            break;
        }
        if (s[0] != '-' || s[1] != '-' || strcmp(s, "-") == 0) {
            if (a->npos >= maxpos)
                return fail("%s: too many arguments (see tkvctl %s --help)", cmd->name,
                            cmd->name);
            a->pos[a->npos++] = argv[i];
            continue;
        }
        const char *name = s + 2;
        if (!has_word(allowed, name))
            return fail("%s: unknown option '%s' (see tkvctl %s --help)", cmd->name, s,
                        cmd->name);
        if (strcmp(name, "reverse") == 0) {
            a->reverse = true;
            continue;
        }
        if (i + 1 >= argc)
            return fail("%s: option '%s' needs a value", cmd->name, s);
        const char *v = argv[++i];
        if (strcmp(name, "ts") == 0)
            a->ts = v;
        else if (strcmp(name, "from") == 0)
            a->from = v;
        else if (strcmp(name, "to") == 0)
            a->to = v;
        else if (strcmp(name, "limit") == 0)
            a->limit = v;
        else
            return fail("%s: unknown option '%s'", cmd->name, s);
    }
    return 0;
}

static int need(const command *cmd, const args *a, int n)
{
    if (a->npos != n)
        return fail("%s: expected %s (see tkvctl %s --help)", cmd->name, cmd->args, cmd->name);
    return 0;
}

static int run_put(cli *c, int argc, char **argv)
{
    args a;
    const command *cmd = &commands[0];
    if (parse_args(cmd, argc, argv, 2, "ts", &a) || need(cmd, &a, 2))
        return EXIT_ERROR;
    uint64_t ts = 0, out;
    if (a.ts && parse_u64(a.ts, "--ts", &ts))
        return EXIT_ERROR;
    char *val = a.pos[1];
    size_t vlen = strlen(val);
    bool from_stdin = strcmp(val, "-") == 0;
    if (from_stdin && read_stdin(&val, &vlen))
        return EXIT_ERROR;
    int rc = connect_cli(c);
    if (rc == 0)
        rc = a.ts ? tkv_put(c->ctx, a.pos[0], strlen(a.pos[0]), val, vlen, ts, &out)
                  : tkv_put_now(c->ctx, a.pos[0], strlen(a.pos[0]), val, vlen, &out);
    if (from_stdin)
        free(val);
    if (rc == EXIT_ERROR)
        return rc;
    if (rc != TKV_OK)
        return server_fail(c);
    printf("%" PRIu64 "\n", out);
    return 0;
}

static void explain_miss(const char *key, const tkv_version *v)
{
    if (v->miss == TKV_MISS_NO_KEY)
        fprintf(stderr, "%s: not found (no such key)\n", key);
    else if (v->has_next)
        fprintf(stderr, "%s: not found (its first version is at %" PRIu64 ")\n", key, v->next);
    else
        fprintf(stderr, "%s: not found\n", key);
}

static int run_get(cli *c, int argc, char **argv)
{
    args a;
    const command *cmd = &commands[1];
    if (parse_args(cmd, argc, argv, 1, "ts", &a) || need(cmd, &a, 1))
        return EXIT_ERROR;
    uint64_t ts = TKV_LATEST;
    if (a.ts && parse_u64(a.ts, "--ts", &ts))
        return EXIT_ERROR;
    if (connect_cli(c))
        return EXIT_ERROR;
    tkv_version v;
    int rc = tkv_get(c->ctx, a.pos[0], strlen(a.pos[0]), ts, &v);
    if (rc == TKV_NOT_FOUND) {
        explain_miss(a.pos[0], &v);
        return EXIT_NOTFOUND;
    }
    if (rc != TKV_OK)
        return server_fail(c);
    fwrite(v.value, 1, v.len, stdout);
    putchar('\n');
    return 0;
}

static int run_range(cli *c, int argc, char **argv)
{
    args a;
    const command *cmd = &commands[2];
    if (parse_args(cmd, argc, argv, 1, "from to limit reverse", &a) || need(cmd, &a, 1))
        return EXIT_ERROR;
    tkv_range_opts o = {.reverse = a.reverse};
    if ((a.from && parse_u64(a.from, "--from", &o.from)) ||
        (a.to && parse_u64(a.to, "--to", &o.to)) ||
        (a.limit && parse_u64(a.limit, "--limit", &o.limit)))
        return EXIT_ERROR;
    o.to_set = a.to != NULL;
    if (a.limit && o.limit == 0)
        return 0;
    if (connect_cli(c))
        return EXIT_ERROR;
    const tkv_entry *e;
    size_t n;
    int truncated;
    if (tkv_range(c->ctx, a.pos[0], strlen(a.pos[0]), &o, &e, &n, &truncated) != TKV_OK)
        return server_fail(c);
    for (size_t i = 0; i < n; i++) {
        printf("%" PRIu64 "\t", e[i].ts);
        fwrite(e[i].value, 1, e[i].len, stdout);
        putchar('\n');
    }
    if (truncated)
        fprintf(stderr, "tkvctl: reply truncated at the server's frame limit; continue with "
                        "--%s %" PRIu64 "\n",
                a.reverse ? "to" : "from", n ? (a.reverse ? e[n - 1].ts - 1 : e[n - 1].ts + 1)
                                             : o.from);
    return 0;
}

static int run_del(cli *c, int argc, char **argv)
{
    args a;
    const command *cmd = &commands[3];
    if (parse_args(cmd, argc, argv, 1, "", &a) || need(cmd, &a, 1) || connect_cli(c))
        return EXIT_ERROR;
    uint64_t removed;
    if (tkv_del(c->ctx, a.pos[0], strlen(a.pos[0]), &removed) != TKV_OK)
        return server_fail(c);
    printf("%" PRIu64 "\n", removed);
    return 0;
}

static int run_ping(cli *c, int argc, char **argv)
{
    args a;
    const command *cmd = &commands[4];
    if (parse_args(cmd, argc, argv, 0, "", &a) || connect_cli(c))
        return EXIT_ERROR;
    if (tkv_ping(c->ctx) != TKV_OK)
        return server_fail(c);
    puts("PONG");
    return 0;
}

static int run_stats(cli *c, int argc, char **argv)
{
    args a;
    const command *cmd = &commands[5];
    if (parse_args(cmd, argc, argv, 0, "", &a) || connect_cli(c))
        return EXIT_ERROR;
    const tkv_stat *s;
    size_t n;
    if (tkv_stats(c->ctx, &s, &n) != TKV_OK)
        return server_fail(c);
    for (size_t i = 0; i < n; i++) {
        if (!s[i].is_str)
            printf("%s: %" PRIu64 "\n", s[i].name, s[i].num);
        else if (!strchr(s[i].str, '\n'))
            printf("%s: %s\n", s[i].name, s[i].str);
        else
            printf("%s: |\n  %s\n", s[i].name, s[i].str);
    }
    return 0;
}

static const command commands[N_COMMANDS] = {
    {"put", "KEY VALUE [--ts TS]",
     "Stores VALUE as a new version of KEY and prints its timestamp. Without --ts the\n"
     "server's clock is used (microseconds, always after the key's newest version).\n"
     "A version already at TS is replaced. VALUE '-' reads the value from stdin.",
     run_put},
    {"get", "KEY [--ts TS]",
     "Prints the value of KEY as of TS: the version with the largest timestamp <= TS\n"
     "(the newest without --ts). Exit status 1 if there is none.",
     run_get},
    {"range", "KEY [--from TS] [--to TS] [--limit N] [--reverse]",
     "Prints the versions of KEY with FROM <= timestamp <= TO, one per line as\n"
     "TIMESTAMP<TAB>VALUE, oldest first (newest first with --reverse), at most N.",
     run_range},
    {"del", "KEY", "Removes every version of KEY and prints how many there were.", run_del},
    {"ping", "", "Checks that the server answers; prints PONG.", run_ping},
    {"stats", "", "Prints the server's statistics, one 'name: value' per line.", run_stats},
};


static void usage(FILE *f)
{
    fprintf(f,
            "Usage: tkvctl [-H HOST] [-p PORT] [-t MS] [--trace] COMMAND [ARG]...\n"
            "Client for tkvd, the time-versioned key-value server.\n\n"
            "Options:\n"
            "  -H, --host HOST     server host (default $TKV_HOST or 127.0.0.1)\n"
            "  -p, --port PORT     server port (default $TKV_PORT or %d)\n"
            "  -t, --timeout MS    give up after MS milliseconds without progress (default 10000)\n"
            "  -a, --auth SECRET   authenticate with SECRET (default $TKV_AUTH; prefer the\n"
            "                      variable: arguments are visible to other users in ps)\n"
            "      --trace         show every request and reply frame in hex on stderr\n"
            "  -h, --help          show this help\n"
            "      --version       show the version\n\n"
            "Commands:\n",
            DEFAULT_PORT);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].args);
    fprintf(f, "\nRun 'tkvctl COMMAND --help' for details. Timestamps are unsigned 64-bit\n"
               "integers, by convention microseconds since the Unix epoch.\n"
               "Exit status: 0 success, 1 not found, 2 error.\n");
}

static int parse_globals(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 't'}, {"trace", no_argument, NULL, 'T'},
        {"auth", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    uint64_t v;
    while ((opt = getopt_long(argc, argv, "+H:p:t:a:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'H': c->host = optarg; break;
        case 'p':
            if (parse_u64(optarg, "port", &v) || v == 0 || v > 65535)
                return v > 65535 || v == 0 ? fail("invalid port '%s'", optarg) : EXIT_ERROR;
            c->port = (uint16_t)v;
            break;
        case 't':
            if (parse_u64(optarg, "timeout", &v) || v > 86400000)
                return EXIT_ERROR;
            c->timeout_ms = (int)v;
            break;
        case 'T': c->trace = true; break;
        case 'a': c->secret = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("tkvctl %s\n", TKV_VERSION_STRING); return 0;
        default: fprintf(stderr, "Try 'tkvctl --help'.\n"); return EXIT_ERROR;
        }
    }
    return -1;
}

static void env_defaults(cli *c)
{
    const char *h = getenv("TKV_HOST"), *p = getenv("TKV_PORT");
    c->host = h && *h ? h : "127.0.0.1";
    c->port = DEFAULT_PORT;
    if (p && *p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (!*end && v > 0 && v <= 65535)
            c->port = (uint16_t)v;
    }
    c->timeout_ms = 10000;
    const char *a = getenv("TKV_AUTH");
    c->secret = a && *a ? a : NULL;
}

int main(int argc, char **argv)
{
    cli c = {0};
    env_defaults(&c);
    int rc = parse_globals(&c, argc, argv);
    if (rc >= 0)
        return rc;
    if (optind >= argc) {
        usage(stderr);
        return EXIT_ERROR;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        for (int k = optind + 1; k < argc && strcmp(argv[k], "--") != 0; k++) {
            if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
                printf("Usage: tkvctl %s %s\n%s\n", commands[i].name, commands[i].args,
                       commands[i].help);
                return 0;
            }
        }
        rc = commands[i].run(&c, argc - optind, argv + optind);
        fflush(stdout);
        tkv_free(c.ctx);
        return rc;
    }
    return fail("unknown command '%s' (see tkvctl --help)", name);
}
