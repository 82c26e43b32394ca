/*
 * tkvctl_args.c - tkvctl's command line: global options, the command, its
 * arguments and its own options, and the usage texts.
 *
 * Global options may appear anywhere, before or after the command, as with
 * git, kubectl and etcdctl: "tkvctl get k --ts 5 --json" is the same as
 * "tkvctl --json get k --ts 5". After the command, a word is an option only
 * if it is one of the command's own --options, a global long option
 * (--json, --host=H...) or exactly a global short one (-H -p -s -t -a); any
 * other word, "-5" or "-" included, is an argument.
 *
 * "--" makes the words after it arguments even if they look like options,
 * until the command has all the arguments it takes; options may follow
 * those. So "put -- --json v --ts 1" stores key "--json" at 1, and for
 * mput and mget, which take any number, everything after "--" is a key
 * or a triple. Strict POSIX "--" would be the same except that it refuses
 * the trailing options, which nobody could mean as arguments anyway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkvctl.h"
#include "units.h"

typedef enum {
    G_HOST,
    G_PORT,
    G_TIMEOUT,
    G_AUTH,
    G_MAXFRAME,
    G_JSON,
    G_ISO,
    G_TRACE,
    G_PIPE,
    G_LATENCY,
    G_LATENCY_COUNT,
    G_INTERVAL,
    G_ETCD,
    G_CLUSTER_NAME,
    G_SOCKET,
    G_CLUSTER,
} gopt_id;

static const struct gopt {
    const char *name;
    char letter; /* 0: long form only */
    bool takes;  /* takes a value */
    gopt_id id;
} gopts[] = {
    {"host", 'H', true, G_HOST},
    {"port", 'p', true, G_PORT},
    {"timeout", 't', true, G_TIMEOUT},
    {"auth", 'a', true, G_AUTH},
    {"max-frame", 0, true, G_MAXFRAME},
    {"json", 0, false, G_JSON},
    {"iso", 0, false, G_ISO},
    {"trace", 0, false, G_TRACE},
    {"pipe", 0, false, G_PIPE},
    {"latency", 0, false, G_LATENCY},
    {"latency-count", 0, true, G_LATENCY_COUNT},
    {"interval", 0, true, G_INTERVAL},
    {"etcd", 0, true, G_ETCD},
    {"cluster-name", 0, true, G_CLUSTER_NAME},
    {"cluster", 'c', false, G_CLUSTER},
    {"socket", 's', true, G_SOCKET},
};

#define N_GOPTS (sizeof gopts / sizeof gopts[0])

/* --pipe and --latency (which --latency-count implies) exclude each other. */
static int set_mode(cli *c, cli_mode m)
{
    if (c->mode != MODE_PROMPT && c->mode != m)
        return fail("give --pipe or --latency, not both");
    c->mode = m;
    return 0;
}

static int set_global(cli *c, gopt_id id, const char *v)
{
    uint64_t n;
    switch (id) {
    case G_PIPE: return set_mode(c, MODE_PIPE);
    case G_LATENCY: return set_mode(c, MODE_LATENCY);
    case G_LATENCY_COUNT:
        if (tkv_parse_uint(v, 1, UINT64_MAX, &n) < 0)
            return fail("invalid --latency-count '%s': expected a number of PINGs", v);
        c->latency_count = n;
        return set_mode(c, MODE_LATENCY);
    case G_INTERVAL:
        if (tkv_parse_uint(v, 0, 3600000, &n) < 0)
            return fail("invalid --interval '%s': expected milliseconds", v);
        c->interval_ms = (int)n;
        break;
    case G_HOST: c->host = v; break;
    case G_SOCKET: c->socket = v; break;
    case G_AUTH: c->secret = v; break;
    case G_JSON: c->json = true; break;
    case G_ISO: c->iso = true; break;
    case G_TRACE: c->trace = true; break;
    case G_ETCD: c->etcd = v; break;
    case G_CLUSTER_NAME: c->cluster_name = v; break;
    case G_CLUSTER: c->cluster = true; break;
    case G_PORT:
        if (tkv_parse_uint(v, 1, 65535, &n) < 0)
            return fail("invalid port '%s'", v);
        c->port = (uint16_t)n;
        break;
    case G_TIMEOUT:
        if (tkv_parse_uint(v, 0, 86400000, &n) < 0)
            return fail("invalid timeout '%s'", v);
        c->timeout_ms = (int)n;
        c->timeout_given = true;
        break;
    case G_MAXFRAME:
        if (tkv_parse_size(v, UINT32_MAX, &n) < 0 || n < 1024)
            return fail("invalid --max-frame '%s': expected a size such as 8mb", v);
        c->max_frame = n;
        break;
    }
    return 0;
}

/* The global option argv[*i] names, or NULL. Long forms may carry their
 * value after '=' (*inline_val); short ones glued to the letter ("-p7379")
 * only before the command (glued), where no argument can start with '-'. */
static const struct gopt *find_global(const char *s, bool glued, const char **inline_val)
{
    *inline_val = NULL;
    for (size_t k = 0; k < N_GOPTS; k++) {
        const struct gopt *g = &gopts[k];
        size_t n = strlen(g->name);
        if (s[0] == '-' && s[1] == '-' && strncmp(s + 2, g->name, n) == 0 &&
            (s[2 + n] == '\0' || (g->takes && s[2 + n] == '='))) {
            *inline_val = s[2 + n] ? s + 3 + n : NULL;
            return g;
        }
        if (g->letter && s[0] == '-' && s[1] == g->letter && (s[2] == '\0' || glued)) {
            *inline_val = s[2] ? s + 2 : NULL;
            return g;
        }
    }
    return NULL;
}

/* Applies argv[*i] if it is a global option (advancing *i past its value).
 * Returns 1 if it was, 0 if not, EXIT_ERROR after printing an error. */
static int take_global(cli *c, int argc, char **argv, int *i, bool glued)
{
    const char *val;
    const struct gopt *g = find_global(argv[*i], glued, &val);
    if (!g)
        return 0;
    if (g->takes && !val) {
        if (*i + 1 >= argc)
            return fail("option '%s' needs a value", argv[*i]);
        val = argv[++*i];
    }
    return set_global(c, g->id, val) ? EXIT_ERROR : 1;
}

/* Whether name is one of the space-separated words of list; *takes tells
 * if it is written "name=" (takes a value). */
static bool allowed(const char *list, const char *name, size_t n, bool *takes)
{
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool v = len > 0 && p[len - 1] == '=';
        if (len - v == n && strncmp(p, name, n) == 0) {
            *takes = v;
            return true;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

/* Takes argv[*i] as one of cmd's --options if it is one ("--ts 5" or
 * "--ts=5"). Returns 1 if so, 0 if not, EXIT_ERROR after an error. */
static int take_cmd_opt(const command *cmd, int argc, char **argv, int *i, args *a)
{
    const char *s = argv[*i];
    if (s[0] != '-' || s[1] != '-')
        return 0;
    const char *eq = strchr(s, '=');
    size_t n = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
    bool takes;
    if (!allowed(cmd->options, s + 2, n, &takes))
        return 0;
    if (a->nopts == MAX_OPTS)
        return fail("%s: too many options", cmd->name);
    if (eq && !takes)
        return fail("%s: option '--%.*s' takes no value", cmd->name, (int)n, s + 2);
    if (takes && !eq && *i + 1 >= argc)
        return fail("%s: option '%s' needs a value", cmd->name, s);
    memcpy(a->names[a->nopts], s + 2, n); /* n < OPT_NAME_MAX: allowed() matched it */
    a->names[a->nopts][n] = '\0';
    a->values[a->nopts++] = eq ? eq + 1 : takes ? argv[++*i] : "";
    return 1;
}

static int add_pos(const command *cmd, args *a, const char *s)
{
    if (a->npos >= MAX_POS)
        return fail("%s: too many arguments", cmd->name);
    a->pos[a->npos++] = s;
    return 0;
}

static int check_count(const command *cmd, const args *a)
{
    if (a->npos >= cmd->min_pos && a->npos <= cmd->max_pos)
        return 0;
    return fail("%s: %s; usage: tkvctl %s%s%s (see tkvctl %s --help)", cmd->name,
                a->npos < cmd->min_pos ? "missing arguments" : "too many arguments", cmd->name,
                cmd->usage[0] ? " " : "", cmd->usage, cmd->name);
}

/* The words after the command name (argv[start] onwards). */
static int parse_cmd_words(cli *c, const command *cmd, int argc, char **argv, int start, args *a)
{
    bool verbatim = false; /* after "--", until the arguments are complete */
    for (int i = start; i < argc; i++) {
        const char *s = argv[i];
        if (verbatim && a->npos >= cmd->max_pos)
            verbatim = false;
        if (!verbatim && strcmp(s, "--") == 0) {
            verbatim = true;
            continue;
        }
        int rc = verbatim ? 0 : take_cmd_opt(cmd, argc, argv, &i, a);
        if (rc == 0 && !verbatim) /* the command's own names come first: get --version */
            rc = take_global(c, argc, argv, &i, false);
        if (rc == 1)
            continue;
        if (rc)
            return rc;
        if (!verbatim && s[0] == '-' && s[1] == '-')
            return fail("%s: unknown option '%s' (see tkvctl %s --help; an argument that "
                        "begins with '-' goes after '--')",
                        cmd->name, s, cmd->name);
        if (add_pos(cmd, a, s))
            return EXIT_ERROR;
    }
    return check_count(cmd, a);
}

/* "COMMAND --help" anywhere before "--" shows the command's help. */
static bool wants_help(int argc, char **argv, int start)
{
    for (int k = start; k < argc && strcmp(argv[k], "--") != 0; k++)
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0)
            return true;
    return false;
}

int parse_line(cli *c, const command *cmds, size_t ncmds, int argc, char **argv,
               const command **cmd, args *a)
{
    memset(a, 0, sizeof *a);
    int i = 1;
    for (; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0) { /* the command follows, even if it looks like an option */
            i++;
            break;
        }
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            print_usage(cmds, ncmds, stdout);
            return 0;
        }
        if (strcmp(s, "--version") == 0) {
            printf("tkvctl %s\n", TKV_VERSION_STRING);
            return 0;
        }
        int rc = take_global(c, argc, argv, &i, true);
        if (rc > 1)
            return rc;
        if (rc == 0 && s[0] == '-' && s[1])
            return fail("unknown option '%s' (see tkvctl --help)", s);
        if (rc == 0)
            break;
    }
    if (i >= argc) {
        *cmd = NULL; /* the prompt, --pipe or --latency */
        return -1;
    }
    for (size_t k = 0; k < ncmds; k++) {
        if (strcmp(cmds[k].name, argv[i]) != 0)
            continue;
        *cmd = &cmds[k];
        if (wants_help(argc, argv, i + 1)) {
            printf("Usage: tkvctl %s %s\n%s\n", cmds[k].name, cmds[k].usage, cmds[k].help);
            return 0;
        }
        return parse_cmd_words(c, *cmd, argc, argv, i + 1, a) ? EXIT_ERROR : -1;
    }
    return fail("unknown command '%s' (see tkvctl --help)", argv[i]);
}

void print_usage(const command *cmds, size_t ncmds, FILE *f)
{
    fprintf(f,
            "Usage: tkvctl [OPTION]... COMMAND [ARG]... [OPTION]...\n"
            "       tkvctl [OPTION]...             an interactive prompt\n"
            "       tkvctl [OPTION]... --pipe      commands from standard input, pipelined\n"
            "       tkvctl [OPTION]... --latency   PING round trips\n"
            "Client for tkvd, the time-versioned key-value server.\n\n"
            "Options (anywhere on the line; after '--' words are arguments until the\n"
            "command has all it takes):\n"
            "  -H, --host HOST     server host (default $TKV_HOST or 127.0.0.1)\n"
            "  -p, --port PORT     server port (default $TKV_PORT or %d)\n"
            "  -s, --socket PATH   connect to the server's Unix socket (tkvd --unix PATH)\n"
            "                      instead of -H and -p\n"
            "  -a, --auth SECRET   authenticate with SECRET (default $TKV_AUTH; prefer the\n"
            "                      variable: arguments are visible to other users in ps)\n"
            "  -t, --timeout MS    give up after MS milliseconds without progress (default 10000)\n"
            "      --max-frame SIZE  the server's --max-frame, if not the default 8mb: larger\n"
            "                      requests are refused before sending\n"
            "      --json          print one JSON object per reply\n"
            "      --iso           print timestamps as ISO-8601 UTC with microseconds (with\n"
            "                      --json: an extra NAME_iso field beside each one)\n"
            "      --trace         show every request and reply frame in hex on stderr\n"
            "      --pipe          read commands from standard input, one per line as at the\n"
            "                      prompt, send them pipelined over one connection, print\n"
            "                      the replies in order, then 'replies: N, errors: M' on\n"
            "                      stderr; exit status 2 if any failed, else 1 if any\n"
            "                      was not found\n"
            "      --latency       PING again and again; print the round trip's min, avg,\n"
            "                      max and p99 in ms when interrupted (live on a terminal)\n"
            "      --latency-count N  --latency that stops after N PINGs\n"
            "      --interval MS   pause between --latency's PINGs (default 10)\n"
            "      --etcd URLS     the cluster commands: etcd's client URLs, comma-separated\n"
            "                      (default $TKV_ETCD)\n"
            "      --cluster-name NAME  the cluster commands: which cluster (default tkv)\n"
            "  -c, --cluster       cluster mode: -H/-p name any node; single-key commands\n"
            "                      go to the node serving the key's slot, mget and mput\n"
            "                      are split by slot (atomic and one snapshot per slot)\n"
            "  -h, --help          show this help\n"
            "      --version       show the version\n\n"
            "Commands:\n",
            DEFAULT_PORT);
    for (size_t i = 0; i < ncmds; i++)
        fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].usage);
    fprintf(f, "\nRun 'tkvctl COMMAND --help' for details.\n"
               "Without a command, tkvctl reads commands at a prompt (127.0.0.1:7379>) with\n"
               "line editing, history in ~/.tkvctl_history ($TKVCTL_HISTFILE; empty: none),\n"
               "completion and 'help [COMMAND]'; words are quoted as in a shell. If standard\n"
               "input is not a terminal, it reads its lines the same way, without a prompt.\n"
               "A command that finds the connection lost (a server restart) reconnects once.\n"
               "Times T: now; -5m or +1h (from now); ISO-8601 such as 2026-01-31 or\n"
               "2026-01-31T12:00:00.5+01:00 (a real date; without a zone it is UTC); seconds,\n"
               "milliseconds or microseconds since the Unix epoch with their unit (1700000000s,\n"
               "1700000000000ms, 5us); or a bare number of microseconds, except that one of 10\n"
               "or 13 digits (epoch seconds or ms of 2001-2286) is refused: give its unit.\n"
               "Durations D: 30s, 15m, 2h, 7d, 1h30m, or microseconds.\n"
               "Exit status: 0 success, 1 not found (wait: fewer replicas than asked), 2 error\n"
               "(a write refused by a read-only replica included: the message names its\n"
               "primary).\n");
}
