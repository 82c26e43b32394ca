/*
 * tkvctl_words.c - one line of a prompt or --pipe session: its words and
 * the command they make.
 *
 * A line is split as a POSIX shell splits a simple command, so a value
 * with blanks or quotes is written at the prompt exactly as it would be
 * after "tkvctl put": 'iPhone 16', "say \"hi\"", it\'s. There is no
 * expansion ($, globs, ~) and no line continuation: what a shell would
 * expand stays as typed. The words then go through the same parser as
 * tkvctl's own arguments, so every command, option and error message is
 * the one-shot mode's.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tkvctl.h"

static bool blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* Copies one word from line[*r] to line[*w], unquoting; the output never
 * overtakes the input (each byte written consumed at least one), so the
 * line can be rewritten in place. Returns 0, or -1 with *why. */
static int take_word(char *line, size_t *r, size_t *w, const char **why)
{
    char quote = 0;
    for (;;) {
        char ch = line[*r];
        if (ch == '\0') {
            if (!quote)
                return 0;
            *why = quote == '\'' ? "unterminated single quote" : "unterminated double quote";
            return -1;
        }
        (*r)++;
        if (quote == '\'') {
            if (ch == '\'')
                quote = 0;
            else
                line[(*w)++] = ch;
        } else if (quote == '"') {
            if (ch == '"')
                quote = 0;
            else if (ch == '\\' && strchr("\\\"$`", line[*r]) && line[*r])
                line[(*w)++] = line[(*r)++];
            else
                line[(*w)++] = ch;
        } else if (blank(ch)) {
            return 0;
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
        } else if (ch == '\\') {
            if (line[*r] == '\0' || line[*r] == '\n') {
                *why = "a backslash ends the line (a command is one line)";
                return -1;
            }
            line[(*w)++] = line[(*r)++];
        } else {
            line[(*w)++] = ch;
        }
    }
}

int split_words(char *line, char **words, int max, const char **why)
{
    size_t r = 0, w = 0;
    int n = 0;
    for (;;) {
        while (blank(line[r]))
            r++;
        if (line[r] == '\0' || line[r] == '#')
            return n;
        if (n == max) {
            *why = "too many words";
            return -1;
        }
        size_t start = w;
        if (take_word(line, &r, &w, why) < 0)
            return -1;
        /* w <= r: at most the NUL that ended the line is written again. */
        line[w++] = '\0';
        words[n++] = line + start;
    }
}

void keep_output_in_order(void)
{
    struct stat so, se;
    if (fstat(STDOUT_FILENO, &so) == 0 && fstat(STDERR_FILENO, &se) == 0 &&
        so.st_dev == se.st_dev && so.st_ino == se.st_ino)
        setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Commands that would take standard input, which holds the session. */
static bool reads_stdin(const command *cmd, const args *a)
{
    const char *n = cmd->name;
    if (strcmp(n, "put") == 0)
        return strcmp(a->pos[1], "-") == 0;
    if (strcmp(n, "mput") == 0)
        return a->npos == 0;
    if (strcmp(n, "restore") == 0 || strcmp(n, "verify") == 0)
        return strcmp(a->pos[0], "-") == 0;
    return false;
}

/* Whether the words ask for help (anywhere before "--") or the version
 * (before the command; after it, --version is get's), which the parser
 * prints at once. */
static bool asks_help(char *const *w, int n)
{
    bool before_cmd = true;
    for (int k = 0; k < n && strcmp(w[k], "--") != 0; k++) {
        if (strcmp(w[k], "--help") == 0 || strcmp(w[k], "-h") == 0 ||
            (before_cmd && strcmp(w[k], "--version") == 0))
            return true;
        before_cmd = before_cmd && w[k][0] == '-';
    }
    return false;
}

int parse_session_line(const cli *base, const command *cmds, size_t ncmds, char *line, line_cmd *l)
{
    const char *why;
    int n = split_words(line, l->argv + 1, LINE_WORDS_MAX, &why);
    if (n < 0)
        return fail("%s", why);
    if (n == 0)
        return 0;
    /* --pipe prints replies late: text printed now would overtake them. */
    if (base->mode == MODE_PIPE && asks_help(l->argv + 1, n))
        return fail("--help and --version are for the prompt, not for --pipe");
    l->argv[0] = "tkvctl";
    l->argv[n + 1] = NULL;
    l->c = *base;
    int rc = parse_line(&l->c, cmds, ncmds, n + 1, l->argv, &l->cmd, &l->a);
    if (rc >= 0)
        return rc;
    const cli *c = &l->c;
    if (!l->cmd)
        return fail("no command on the line (see help)");
    if (c->host != base->host || c->port != base->port || c->socket != base->socket ||
        c->secret != base->secret || c->timeout_ms != base->timeout_ms ||
        c->max_frame != base->max_frame)
        return fail("-H, -p, -s, -a, -t and --max-frame are given when tkvctl starts");
    if (c->mode != base->mode || c->latency_count != base->latency_count ||
        c->interval_ms != base->interval_ms)
        return fail("--pipe and --latency are given when tkvctl starts");
    if (reads_stdin(l->cmd, &l->a))
        return fail("%s: standard input holds the commands here; give the data as arguments",
                    l->cmd->name);
    return -1;
}
