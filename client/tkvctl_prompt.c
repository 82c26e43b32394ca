/*
 * tkvctl_prompt.c - tkvctl without a command: a prompt, as redis-cli has.
 *
 * On a terminal, lines are read with libedit (its readline interface, the
 * part every libedit has): editing, history kept in a file, and completion
 * of command names and options. When standard input is not a terminal,
 * the same lines are read from it plainly, without a prompt or history, so
 * that "tkvctl < script" runs a script one command at a time (--pipe is
 * the fast way, without reconnection).
 *
 * Each line runs exactly as "tkvctl WORDS..." would (tkvctl_words.c), on
 * one connection kept for the session. When the server restarts, that
 * connection is dead but nothing says so until it is used: the command
 * that finds it dead (the server closed it, or reset it) connects again
 * and runs once more, after a line on stderr that says so. Only a
 * connection carried over from an earlier command is retried that way: a
 * server that restarted while the prompt sat idle never saw the command.
 * One that died while running it may see it twice (so does redis-cli), as
 * may a command of many requests (scan --all, restore) cut in the middle,
 * which then starts over. A connection that broke otherwise is dropped
 * after its command; the next one connects afresh.
 */
#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tkvctl.h"

#define HISTORY_LINES 1000

/* What completion offers. libedit's callbacks take no argument, so the
 * table is kept here for the session; there is only one. */
static const command *comp_cmds;
static size_t comp_ncmds;
static const command *comp_cmd; /* the line's command, for its options */
static const char *const builtins[] = {"help", "quit", "exit"};
#define N_BUILTINS (sizeof builtins / sizeof builtins[0])

static char *next_name(const char *text, int state)
{
    static size_t i, len;
    if (state == 0) {
        i = 0;
        len = strlen(text);
    }
    while (i < comp_ncmds + N_BUILTINS) {
        size_t k = i++;
        const char *name = k < comp_ncmds ? comp_cmds[k].name : builtins[k - comp_ncmds];
        if (strncmp(name, text, len) == 0)
            return strdup(name);
    }
    return NULL;
}

/* comp_cmd's --options (space-separated, "name=" if it takes a value),
 * then the global ones that make sense on a line. */
static char *next_option(const char *text, int state)
{
    static const char *p;
    static int global;
    static const char *const globals[] = {"json", "iso", "trace", "help", NULL};
    if (state == 0) {
        p = comp_cmd->options;
        global = 0;
    }
    char opt[OPT_NAME_MAX + 3];
    while (*p || globals[global]) {
        size_t n;
        if (*p) {
            n = strcspn(p, " ");
            snprintf(opt, sizeof opt, "--%.*s", (int)(n && p[n - 1] == '=' ? n - 1 : n), p);
            p += n + (p[n] == ' ');
        } else {
            snprintf(opt, sizeof opt, "--%s", globals[global++]);
        }
        if (strncmp(opt, text, strlen(text)) == 0)
            return strdup(opt);
    }
    return NULL;
}

/* The first word completes to a command, and so does the word after
 * "help"; a word starting with '-' after a command, to its options. */
static char **complete(const char *text, int start, int end)
{
    rl_attempted_completion_over = 1; /* never file names */
    char before[4096], *w[64];
    const char *why;
    if ((size_t)start >= sizeof before)
        return NULL;
    memcpy(before, rl_line_buffer, (size_t)start);
    before[start] = '\0';
    int n = split_words(before, w, 64, &why);
    if (n == 0 || (n == 1 && strcmp(w[0], "help") == 0))
        return rl_completion_matches(text, next_name);
    if (n < 1 || text[0] != '-')
        return NULL;
    for (size_t k = 0; k < comp_ncmds; k++) {
        if (strcmp(comp_cmds[k].name, w[0]) == 0) {
            comp_cmd = &comp_cmds[k];
            return rl_completion_matches(text, next_option);
        }
    }
    return NULL;
}

/* ~/.tkvctl_history, or $TKVCTL_HISTFILE (empty: no history file); none
 * without a home. */
static char *history_path(void)
{
    const char *env = getenv("TKVCTL_HISTFILE");
    if (env)
        return *env ? strdup(env) : NULL;
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    char *p;
    return asprintf(&p, "%s/.tkvctl_history", home) < 0 ? NULL : p;
}

static void print_help(const command *cmds, size_t ncmds, const char *name)
{
    if (name) {
        for (size_t k = 0; k < ncmds; k++) {
            if (strcmp(cmds[k].name, name) == 0) {
                printf("%s %s\n%s\n", cmds[k].name, cmds[k].usage, cmds[k].help);
                return;
            }
        }
        fail("help: no command '%s'", name);
        return;
    }
    puts("Commands (words are quoted as in a shell; 'help COMMAND' for details):");
    for (size_t k = 0; k < ncmds; k++)
        printf(cmds[k].usage[0] ? "  %-7s %s\n" : "  %s\n", cmds[k].name, cmds[k].usage);
    puts("  help [COMMAND]\n  quit");
}

/* Handles help, quit and exit. Returns 1 if line was one of them (*quit
 * set for the last two), 0 if not. line is left as it was. */
static int builtin(const command *cmds, size_t ncmds, const char *line, bool *quit)
{
    char copy[256], *w[3];
    const char *why;
    if (strlen(line) >= sizeof copy)
        return 0;
    strcpy(copy, line);
    int n = split_words(copy, w, 3, &why);
    if (n < 1 || n > 2)
        return 0;
    if (strcmp(w[0], "quit") == 0 || strcmp(w[0], "exit") == 0) {
        *quit = n == 1;
        return n == 1;
    }
    if (strcmp(w[0], "help") != 0)
        return 0;
    print_help(cmds, ncmds, n == 2 ? w[1] : NULL);
    return 1;
}

/* Runs l's command on base's connection, again on a new one if that was
 * found lost. */
static int run_kept(cli *base, line_cmd *l)
{
    cli *c = &l->c;
    c->ctx = base->ctx;
    c->retry_lost = base->ctx != NULL;
    int rc = l->cmd->run(c, &l->a);
    if (c->lost) {
        if (c->socket)
            fprintf(stderr, "tkvctl: connection lost (%s); reconnecting to %s\n",
                    tkv_errstr(c->ctx), c->socket);
        else
            fprintf(stderr, "tkvctl: connection lost (%s); reconnecting to %s:%u\n",
                    tkv_errstr(c->ctx), c->host, c->port);
        tkv_free(c->ctx);
        c->ctx = NULL;
        c->retry_lost = c->lost = false;
        rc = l->cmd->run(c, &l->a);
    }
    base->ctx = c->ctx;
    if (base->ctx && conn_broken(base->ctx)) {
        tkv_free(base->ctx);
        base->ctx = NULL;
    }
    if (base->ctx) /* wait with no limit lifts it for its own call */
        tkv_set_timeout(base->ctx, base->timeout_ms);
    return rc;
}

/* One line: returns its exit status (0 for nothing to do). */
static int run_line(cli *base, const command *cmds, size_t ncmds, char *line, line_cmd *l,
                    bool *quit)
{
    if (builtin(cmds, ncmds, line, quit))
        return 0;
    int rc = parse_session_line(base, cmds, ncmds, line, l);
    if (rc == -1)
        rc = run_kept(base, l);
    fflush(stdout);
    return rc;
}

static void edit_begin(const command *cmds, size_t ncmds, const char *hist)
{
    comp_cmds = cmds;
    comp_ncmds = ncmds;
    rl_readline_name = "tkvctl";
    rl_attempted_completion_function = complete;
    using_history();
    stifle_history(HISTORY_LINES);
    if (hist)
        read_history(hist);
}

/* Writes the history now: the session may end by a signal. Values typed
 * at the prompt are data, so the file is the user's alone, as
 * redis-cli's is. */
static void save_history(const char *hist)
{
    mode_t old = umask(077);
    write_history(hist);
    umask(old);
    chmod(hist, 0600); /* also a file made before, with a laxer mask */
}

/* One line from the terminal (with editing) or from a script (without);
 * malloc'd without its newline, or NULL at the end. */
static char *next_line(bool tty, const char *prompt, const char *hist)
{
    if (tty) {
        char *line = readline(prompt);
        if (line && line[strspn(line, " \t")]) {
            add_history(line);
            if (hist)
                save_history(hist);
        }
        return line;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    return line;
}

int run_prompt(cli *c, const command *cmds, size_t ncmds)
{
    bool tty = isatty(STDIN_FILENO);
    line_cmd *l = malloc(sizeof *l);
    char *hist = tty ? history_path() : NULL, prompt[300];
    if (!l) {
        free(hist);
        return fail("out of memory");
    }
    if (c->socket)
        snprintf(prompt, sizeof prompt, "%s> ", c->socket);
    else
        snprintf(prompt, sizeof prompt, "%s:%u> ", c->host, c->port);
    keep_output_in_order();
    if (tty) {
        edit_begin(cmds, ncmds, hist);
        connect_cli(c); /* says at once if the server is not there; the prompt comes anyway */
    }
    /* A script's status is its worst command's (2 before 1); a person at
     * the prompt has seen each answer, and quitting is no failure. */
    int worst = 0;
    bool quit = false;
    char *line;
    while (!quit && (line = next_line(tty, prompt, hist)) != NULL) {
        int rc = run_line(c, cmds, ncmds, line, l, &quit);
        if (rc == EXIT_ERROR || (rc && !worst))
            worst = rc;
        free(line);
    }
    if (tty && !quit)
        putchar('\n'); /* after ^D, the shell's prompt starts on its own line */
    free(hist);
    free(l);
    return tty ? 0 : worst;
}
