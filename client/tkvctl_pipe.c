/*
 * tkvctl_pipe.c - tkvctl --pipe: commands from standard input, one per
 * line (the prompt's syntax, tkvctl_words.c), sent pipelined over one
 * connection, their replies printed in order as one-shot mode prints them.
 *
 * The commands of one request and one reply (put, get, range, count, del,
 * retain, policy, ping, stats) are kept in flight: each line is sent as it
 * is read, and the oldest reply is read and printed once PIPE_WINDOW
 * requests, or PIPE_WINDOW_BYTES of their lines, are outstanding. The
 * window bounds tkvctl's memory whatever the input's length. Large
 * replies need no bound of their own: tkvd stops reading a connection
 * whose unread replies pass its high water, and libtkvclient takes in
 * replies while its writes wait, so neither side stalls the other (300
 * GETs of a 1 MB value in flight kept tkvctl under 4 MB).
 *
 * When the input pauses (nothing more to read at once, as from a script
 * that computes its next line), every reply in flight is read and printed
 * first, so output never waits on input that may be slow to come. The
 * other commands stream, loop or continue (backup, scan --all, mget,
 * mput, restore): their line waits for the replies before it, then runs
 * alone on the same connection.
 *
 * Every message comes in its line's place, also with 2>&1 (pipe_line).
 * A lost connection ends the run: what is still unanswered counts
 * as failed, and nothing is retried (tkvctl cannot know which of those
 * requests the server applied).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tkvctl.h"
#include "grow.h"

/* 256 in flight: loading 100k PUTs into a local tkvd took 4.7 s with 64,
 * 1.1 s with 256 and 1.0 s with 1024 (tkvd serves 128 of a connection's
 * requests per loop turn and commits each turn's writes together). */
#define PIPE_WINDOW 256
#define PIPE_WINDOW_BYTES (1u << 20)
#define SLOT_POS 2 /* the most positionals of a command in halves[] */

/* A request in flight: its line, and what its reply's show needs - the
 * line's settings and its arguments, which point into the line. A whole
 * line_cmd is 70 KiB (room for mput's thousands of words); this is 600
 * bytes. */
typedef struct slot {
    char *line;
    size_t bytes;
    show_fn show;
    cli c;
    int npos, nopts;
    const char *pos[SLOT_POS];
    char names[MAX_OPTS][OPT_NAME_MAX];
    const char *values[MAX_OPTS];
} slot;

typedef struct pipe_run {
    cli *base;
    line_cmd *parsed; /* the line being read */
    args shown;       /* a slot's arguments, unpacked for its show */
    slot *ring;       /* PIPE_WINDOW slots; n in flight from head */
    size_t head, n, bytes;
    uint64_t replies, errors; /* what the summary line says */
    uint64_t unanswered;      /* sent, but the connection was lost first */
    int worst;                /* the exit status: 2 before 1 before 0 */
    bool lost;                /* the connection is gone: stop */
} pipe_run;

static void account(pipe_run *p, int rc, bool answered)
{
    p->replies += answered;
    p->errors += rc == EXIT_ERROR;
    if (rc == EXIT_ERROR || (rc && !p->worst))
        p->worst = rc;
}

/* Reads and prints the oldest reply, then frees its slot. */
static void show_oldest(pipe_run *p)
{
    slot *s = &p->ring[p->head];
    if (p->lost) {
        account(p, EXIT_ERROR, false);
        p->unanswered++;
    } else {
        args *a = &p->shown;
        a->npos = s->npos;
        memcpy(a->pos, s->pos, sizeof s->pos);
        a->nopts = s->nopts;
        memcpy(a->names, s->names, sizeof s->names);
        memcpy(a->values, s->values, sizeof s->values);
        s->c.ctx = p->base->ctx;
        int rc = show_reply(&s->c, a, s->show);
        p->lost = conn_broken(p->base->ctx);
        account(p, rc, !p->lost);
    }
    free(s->line);
    s->line = NULL;
    p->bytes -= s->bytes;
    p->head = (p->head + 1) % PIPE_WINDOW;
    p->n--;
}

static void drain(pipe_run *p)
{
    while (p->n > 0)
        show_oldest(p);
}

/* Keeps a sent line in the next slot. */
static void keep(pipe_run *p, const line_cmd *l, show_fn show, char *line, size_t len)
{
    slot *s = &p->ring[(p->head + p->n) % PIPE_WINDOW];
    s->line = line;
    s->bytes = len;
    s->show = show;
    s->c = l->c;
    s->npos = l->a.npos;
    memcpy(s->pos, l->a.pos, (size_t)l->a.npos * sizeof *s->pos);
    s->nopts = l->a.nopts;
    memcpy(s->names, l->a.names, sizeof s->names);
    memcpy(s->values, l->a.values, sizeof s->values);
    p->n++;
    p->bytes += len;
}

/* What became of a line in prepare(). */
typedef enum { LINE_DONE, LINE_ALONE, LINE_SENT } line_fate;

/* Parses the line and, if its command is one kept in flight, sends it.
 * Returns the line's status so far. */
static int prepare(pipe_run *p, const command *cmds, size_t ncmds, char *line,
                   const pipelined **half, line_fate *fate)
{
    line_cmd *l = p->parsed;
    *fate = LINE_DONE;
    int rc = parse_session_line(p->base, cmds, ncmds, line, l);
    if (rc >= 0)
        return rc;
    *half = find_pipelined(l->cmd);
    l->c.ctx = p->base->ctx;
    if (!*half || l->a.npos > SLOT_POS) {
        *fate = LINE_ALONE;
        return 0;
    }
    rc = (*half)->send(&l->c, &l->a);
    if (rc == 0)
        *fate = LINE_SENT;
    return rc == SENT_NOTHING ? 0 : rc;
}

/* One line, owned by the run from here on.
 *
 * fail() writes to stderr. glibc documents the standard streams as
 * variables a program may set, so while the line is parsed and sent,
 * stderr is a memory stream: a line refused then is reported after the
 * replies to the lines before it, in its place, as one-shot mode would. */
static void pipe_line(pipe_run *p, const command *cmds, size_t ncmds, char *line, size_t len)
{
    if (p->n == PIPE_WINDOW)
        show_oldest(p);
    const pipelined *half = NULL;
    line_fate fate;
    char *held = NULL;
    size_t held_len = 0;
    FILE *err = stderr, *mem = open_memstream(&held, &held_len);
    if (mem)
        stderr = mem;
    int rc = prepare(p, cmds, ncmds, line, &half, &fate);
    if (mem) {
        stderr = err;
        fclose(mem);
    }
    if (held_len > 0) {
        if (rc != 0)
            drain(p);
        fflush(stdout);
        fwrite(held, 1, held_len, stderr);
    }
    free(held);
    line_cmd *l = p->parsed;
    if (fate == LINE_ALONE) {
        drain(p);
        rc = p->lost ? EXIT_ERROR : l->cmd->run(&l->c, &l->a);
        p->lost = p->lost || conn_broken(p->base->ctx);
        tkv_set_timeout(p->base->ctx, p->base->timeout_ms); /* as wait may have set it */
        account(p, rc, !p->lost);
    } else if (fate == LINE_DONE) {
        /* An append refused for a broken connection is a lost one too. */
        p->lost = p->lost || conn_broken(p->base->ctx);
        if (rc)
            account(p, rc, false);
    } else {
        keep(p, l, half->show, line, len);
        while (p->n > 1 && p->bytes > PIPE_WINDOW_BYTES)
            show_oldest(p);
        return;
    }
    free(line);
}

#define READ_FIRST 65536 /* the input buffer's first size; it grows for longer lines */

/* Standard input read by hand rather than with stdio, whose buffer cannot
 * be asked whether it still holds a line: that is how a pause is seen. */
typedef struct reader {
    char *buf;
    size_t start, end, cap; /* unread bytes are buf[start..end) */
    bool eof;
    bool failed; /* a read error or no memory, reported */
} reader;

/* Whether a line can be had without waiting. */
static bool line_ready(const reader *r)
{
    if (memchr(r->buf + r->start, '\n', r->end - r->start) || r->eof)
        return true;
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

/* Reads what standard input has (waiting for some): 0, or -1 on error. */
static int fill(reader *r)
{
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
    r->failed = r->end == r->cap && tkv_grow(&r->buf, &r->cap, r->cap + 1, 1, READ_FIRST) < 0;
    if (r->failed)
        return fail("out of memory");
    ssize_t n;
    do
        n = read(STDIN_FILENO, r->buf + r->end, r->cap - r->end);
    while (n < 0 && errno == EINTR);
    r->failed = n < 0;
    if (r->failed)
        return fail("cannot read standard input: %s", strerror(errno));
    r->eof = n == 0;
    r->end += (size_t)n;
    return 0;
}

/* The next line without its newline (malloc'd, its length in *len), or
 * NULL at the end of the input (or after an error, reported). */
static char *next_line(reader *r, size_t *len)
{
    for (;;) {
        char *at = r->buf + r->start, *nl = memchr(at, '\n', r->end - r->start);
        if (nl || (r->eof && r->end > r->start)) {
            *len = nl ? (size_t)(nl - at) : r->end - r->start;
            char *line = strndup(at, *len);
            r->start += *len + (nl != NULL);
            r->failed = line == NULL;
            if (r->failed)
                fail("out of memory");
            return line;
        }
        if (r->eof || fill(r) < 0)
            return NULL;
    }
}

int run_pipe(cli *c, const command *cmds, size_t ncmds)
{
    if (connect_cli(c))
        return EXIT_ERROR;
    pipe_run *p = calloc(1, sizeof *p);
    slot *ring = calloc(PIPE_WINDOW, sizeof *ring);
    line_cmd *parsed = malloc(sizeof *parsed);
    reader in = {.buf = malloc(READ_FIRST), .cap = READ_FIRST}; /* never NULL: memchr's */
    if (!p || !ring || !parsed || !in.buf) {
        free(p);
        free(ring);
        free(parsed);
        free(in.buf);
        return fail("out of memory");
    }
    *p = (pipe_run){.base = c, .parsed = parsed, .ring = ring};
    keep_output_in_order();
    char *line;
    size_t len;
    while (!p->lost) {
        if (!line_ready(&in)) {
            drain(p);
            fflush(stdout);
        }
        if ((line = next_line(&in, &len)) == NULL)
            break;
        pipe_line(p, cmds, ncmds, line, len); /* a slot owns line now, or it was freed */
    }
    drain(p);
    free(in.buf);
    if (in.failed)
        p->worst = EXIT_ERROR;
    if (p->lost)
        fail("the connection was lost; %llu command%s sent got no reply, the rest of the input "
             "was not read",
             (unsigned long long)p->unanswered, p->unanswered == 1 ? "" : "s");
    fflush(stdout);
    fprintf(stderr, "replies: %llu, errors: %llu\n", (unsigned long long)p->replies,
            (unsigned long long)p->errors);
    int rc = p->worst;
    free(ring);
    free(parsed);
    free(p);
    return rc;
}
