/*
 * test_async.c - libtkvclient's async API (tkv/async.h) in a libev loop
 * (tkv/adapters/libev.h) against the real tkvd: replies in order through
 * callbacks, callbacks that issue commands or free the context, a server
 * killed under pending requests, a refused connect; and the server's Unix
 * socket (--unix, --unix-perm) through the async, sync and tkvctl clients,
 * and TCP keepalive on both ends (read back from /proc/net/tcp) and its
 * range; a Unix socket's full backlog; a host's next address; and the
 * README's libev example when its writes fail.
 *
 * Callbacks only record what they saw; the assertions run after the loop,
 * so a failure never jumps out of libev.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "harness.h"
#include "tkv/adapters/libev.h"
#include "tkv/async.h"

static tkvd d;
static char *sockdir;
static char sockpath[512];

static void teardown(void)
{
    if (d.pid > 0)
        kill(d.pid, SIGCONT); /* a test that stopped it may have failed */
    tkvd_cleanup(&d);
    tmpdir_remove(sockdir);
    sockdir = NULL;
}

static void start_plain(void) { tkvd_start(&d, NULL); }

/* ---- a loop run, and what the callbacks saw ------------------------------------ */

enum { MAXCALLS = 20100 };

typedef struct run {
    struct ev_loop *loop;
    ev_timer guard;
    bool timed_out;
    int connects, connect_status;
    int disconnects, disconnect_status;
    tkv_errkind disconnect_err;
    char errstr[256];
    int calls[MAXCALLS]; /* how often each command's callback came */
    int replies, nulls;  /* callbacks with a reply / with NULL */
    int out_of_order;    /* a reply came for a later command than expected */
    int next;            /* the command expected next */
    int bad;             /* a reply that was not what was written */
    char bad_why[256];
} run;

static run R;

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    R.timed_out = true;
    ev_break(loop, EVBREAK_ALL);
}

static void on_connect(tkv_async *ac, int status)
{
    R.connects++;
    R.connect_status = status;
    snprintf(R.errstr, sizeof R.errstr, "%s", tkv_async_errstr(ac));
    if (status != TKV_OK)
        ev_break(R.loop, EVBREAK_ALL);
}

static void on_disconnect(tkv_async *ac, int status)
{
    R.disconnects++;
    R.disconnect_status = status;
    R.disconnect_err = tkv_async_err(ac);
    snprintf(R.errstr, sizeof R.errstr, "%s", tkv_async_errstr(ac));
    ev_break(R.loop, EVBREAK_ALL);
}

static void loop_init(void)
{
    memset(&R, 0, sizeof R);
    R.loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert(R.loop);
    ev_timer_init(&R.guard, on_guard, 30.0, 0.0);
    ev_timer_start(R.loop, &R.guard);
}

static void loop_run(void)
{
    ev_run(R.loop, 0);
    ev_timer_stop(R.loop, &R.guard);
    ev_loop_destroy(R.loop);
    cr_assert_not(R.timed_out, "the loop ran 30 s without finishing");
}

static tkv_async *attach(tkv_async *ac)
{
    cr_assert(ac);
    cr_assert_eq(tkv_async_err(ac), TKV_EK_NONE, "%s", tkv_async_errstr(ac));
    tkv_async_set_connect_cb(ac, on_connect);
    tkv_async_set_disconnect_cb(ac, on_disconnect);
    cr_assert_eq(tkv_libev_attach(R.loop, ac), TKV_OK);
    return ac;
}

static tkv_async *connect_tcp(void) { return attach(tkv_async_connect("127.0.0.1", d.port)); }

/* Counts a callback for command i and checks it comes in order. */
static void note(int i, const tkv_reply *r)
{
    cr_assert_lt(i, MAXCALLS);
    R.calls[i]++;
    if (i != R.next)
        R.out_of_order++;
    R.next = i + 1;
    if (r)
        R.replies++;
    else
        R.nulls++;
}

__attribute__((format(printf, 1, 2))) static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (R.bad++ == 0)
        vsnprintf(R.bad_why, sizeof R.bad_why, fmt, ap);
    va_end(ap);
}

static void value_of(int i, char *buf, size_t cap) { snprintf(buf, cap, "value-%05d", i); }

/* ---- replies in order ------------------------------------------------------------ */

enum { N = 10000 };

static void put_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    (void)ac;
    int i = (int)(intptr_t)privdata;
    note(i, r);
    if (!r || r->status != TKV_OK || r->op != TKV_OP_PUT || r->ts != (uint64_t)i + 1)
        bad("PUT %d: no reply, an error or the wrong ts", i);
}

static void get_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    (void)ac;
    int i = (int)(intptr_t)privdata;
    note(i, r);
    char want[32];
    value_of(i - N, want, sizeof want);
    if (!r || r->status != TKV_OK || r->op != TKV_OP_GET ||
        r->version.ts != (uint64_t)(i - N) + 1 || r->version.len != strlen(want) ||
        memcmp(r->version.value, want, r->version.len) != 0)
        bad("GET %d: not the value written", i - N);
}

Test(async, ten_thousand_pipelined_puts_then_gets_come_back_in_order, .init = start_plain,
     .fini = teardown)
{
    loop_init();
    tkv_async *ac = connect_tcp();
    char key[32], val[32];
    /* All issued before the loop runs: sent as one pipeline. */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        value_of(i, val, sizeof val);
        cr_assert_eq(tkv_async_put(ac, key, strlen(key), val, strlen(val), (uint64_t)i + 1, put_cb,
                                   (void *)(intptr_t)i),
                     TKV_OK, "%s", tkv_async_errstr(ac));
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        cr_assert_eq(
            tkv_async_get(ac, key, strlen(key), TKV_LATEST, get_cb, (void *)(intptr_t)(N + i)),
            TKV_OK);
    }
    cr_assert_eq(tkv_async_pending(ac), 2 * N);
    /* Graceful: every reply pending still comes; nothing new is taken. */
    tkv_async_disconnect(ac);
    cr_assert_eq(tkv_async_ping(ac, NULL, NULL), TKV_ERR);
    cr_assert_eq(tkv_async_err(ac), TKV_EK_USAGE);
    loop_run();
    cr_assert_eq(R.connects, 1);
    cr_assert_eq(R.connect_status, TKV_OK);
    cr_assert_eq(R.replies, 2 * N, "%d replies, %d NULL", R.replies, R.nulls);
    cr_assert_eq(R.out_of_order, 0);
    cr_assert_eq(R.bad, 0, "%d bad replies, the first: %s", R.bad, R.bad_why);
    cr_assert_eq(R.disconnects, 1);
    cr_assert_eq(R.disconnect_status, TKV_OK, "%s", R.errstr);
}

/* ---- callbacks that issue commands, and free the context --------------------- */

enum { CHAIN = 100, AFTER_FREE = 3 };

static void chain_cb(tkv_async *ac, const tkv_reply *r, void *privdata);

static void orphan_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    (void)ac;
    note((int)(intptr_t)privdata, r);
    if (r)
        bad("command %d: a reply after tkv_async_free()", (int)(intptr_t)privdata);
}

static void chain_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    int i = (int)(intptr_t)privdata;
    note(i, r);
    if (!r || r->status != TKV_OK || r->ts != (uint64_t)i + 1) {
        bad("chain %d: no reply or an error", i);
        return;
    }
    if (i + 1 < CHAIN) {
        if (tkv_async_put(ac, "chain", 5, "x", 1, (uint64_t)i + 2, chain_cb,
                          (void *)(intptr_t)(i + 1)) != TKV_OK)
            bad("chain %d: the next command was refused", i);
        return;
    }
    /* The last: issue more, then free from inside the callback. Those get
     * NULL, once each, after this callback has returned. */
    for (int k = 0; k < AFTER_FREE; k++)
        tkv_async_ping(ac, orphan_cb, (void *)(intptr_t)(CHAIN + k));
    tkv_async_free(ac);
    if (R.nulls != 0)
        bad("callbacks ran inside the callback that freed (%d)", R.nulls);
}

Test(async, a_callback_issues_the_next_command_and_may_free_the_context, .init = start_plain,
     .fini = teardown)
{
    loop_init();
    tkv_async *ac = connect_tcp();
    cr_assert_eq(tkv_async_put(ac, "chain", 5, "x", 1, 1, chain_cb, (void *)(intptr_t)0), TKV_OK);
    loop_run();
    cr_assert_eq(R.bad, 0, "%s", R.bad_why);
    cr_assert_eq(R.replies, CHAIN);
    cr_assert_eq(R.nulls, AFTER_FREE);
    for (int i = 0; i < CHAIN + AFTER_FREE; i++)
        cr_assert_eq(R.calls[i], 1, "callback %d ran %d times", i, R.calls[i]);
    cr_assert_eq(R.out_of_order, 0);
    cr_assert_eq(R.disconnects, 1);
    cr_assert_eq(R.disconnect_status, TKV_OK);
    /* The server saw every write of the chain. */
    tkv_ctx *c = tkvd_client(&d);
    uint64_t n = 0;
    cr_assert_eq(tkv_count(c, "chain", 5, 0, TKV_LATEST, &n), TKV_OK);
    cr_assert_eq(n, CHAIN);
    tkv_free(c);
}

/* ---- the server goes away ----------------------------------------------------- */

enum { BEFORE_KILL = 1000, AFTER_KILL = 5 };

static tkv_async *kill_ac;
static bool killed;

static void kill_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    (void)ac;
    int i = (int)(intptr_t)privdata;
    note(i, r);
    if (r && R.nulls > 0)
        bad("command %d: a reply after a NULL", i);
}

/* The server is stopped (SIGSTOP) from the start: the requests reach its
 * socket but no reply can come. Once every request has left (the context
 * no longer wants to write), the server dies with all of them in flight. */
static void on_kill_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    if (killed || R.connects == 0 || (tkv_async_wants(kill_ac) & TKV_ASYNC_WRITE))
        return;
    killed = true;
    ev_timer_stop(loop, w);
    tkvd_signal(&d, SIGKILL);
    for (int k = 0; k < AFTER_KILL; k++)
        if (tkv_async_ping(kill_ac, kill_cb, (void *)(intptr_t)(BEFORE_KILL + k)) != TKV_OK)
            bad("command %d was refused", BEFORE_KILL + k);
}

Test(async, a_killed_server_fails_every_pending_callback_exactly_once, .init = start_plain,
     .fini = teardown)
{
    cr_assert_eq(kill(d.pid, SIGSTOP), 0); /* tkvd_signal() would wait for an exit */
    loop_init();
    kill_ac = connect_tcp();
    killed = false;
    for (int i = 0; i < BEFORE_KILL; i++)
        cr_assert_eq(tkv_async_get(kill_ac, "nokey", 5, TKV_LATEST, kill_cb, (void *)(intptr_t)i),
                     TKV_OK);
    ev_timer poll_timer;
    ev_timer_init(&poll_timer, on_kill_poll, 0.005, 0.005); /* a poll interval, not a wait */
    ev_timer_start(R.loop, &poll_timer);
    loop_run();
    cr_assert(killed, "the requests never left");
    cr_assert_eq(R.bad, 0, "%s", R.bad_why);
    for (int i = 0; i < BEFORE_KILL + AFTER_KILL; i++)
        cr_assert_eq(R.calls[i], 1, "callback %d ran %d times", i, R.calls[i]);
    cr_assert_eq(R.out_of_order, 0);
    /* Nothing was answered: every request was still in flight. */
    cr_assert_eq(R.replies, 0);
    cr_assert_eq(R.nulls, BEFORE_KILL + AFTER_KILL);
    cr_assert_eq(R.disconnects, 1);
    cr_assert_eq(R.disconnect_status, TKV_ERR);
    cr_assert(R.disconnect_err == TKV_EK_EOF || R.disconnect_err == TKV_EK_IO, "%d: %s",
              R.disconnect_err, R.errstr);
}

/* ---- a refused connect -------------------------------------------------------------- */

/* A port nothing listens on: bound (so no one else takes it) but never
 * listened on. */
static uint16_t closed_port(int *keep)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *keep = fd;
    return ntohs(sa.sin_port);
}

static void ping_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    (void)ac;
    note((int)(intptr_t)privdata, r);
}

Test(async, a_refused_connect_is_reported_to_the_connect_callback)
{
    int keep;
    uint16_t port = closed_port(&keep);
    loop_init();
    tkv_async *ac = attach(tkv_async_connect("127.0.0.1", port));
    cr_assert_eq(tkv_async_ping(ac, ping_cb, (void *)(intptr_t)0), TKV_OK);
    loop_run();
    close(keep);
    cr_assert_eq(R.connects, 1);
    cr_assert_eq(R.connect_status, TKV_ERR);
    cr_assert(strstr(R.errstr, "refused"), "%s", R.errstr);
    cr_assert_eq(R.calls[0], 1);
    cr_assert_eq(R.nulls, 1);
    cr_assert_eq(R.disconnects, 0, "a connection never made is not disconnected");
}

Test(async, a_missing_unix_socket_is_reported_to_the_connect_callback)
{
    loop_init();
    attach(tkv_async_connect_unix("/nonexistent/tkv.sock"));
    loop_run();
    cr_assert_eq(R.connects, 1);
    cr_assert_eq(R.connect_status, TKV_ERR);
    cr_assert(strstr(R.errstr, "/nonexistent/tkv.sock"), "%s", R.errstr);
}

/* ---- server errors --------------------------------------------------------------- */

static tkv_errkind err_kind;
static int err_code;

static void err_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    note((int)(intptr_t)privdata, r);
    if (r && r->status == TKV_ERR) {
        err_kind = tkv_async_err(ac);
        err_code = tkv_async_server_code(ac);
    }
    if (r && (int)(intptr_t)privdata == 1 && r->status != TKV_OK)
        bad("the PING after an error failed (%d)", r->status);
    if ((int)(intptr_t)privdata == 1)
        tkv_async_disconnect(ac);
}

Test(async, a_server_error_goes_to_its_callback_and_the_connection_goes_on, .init = start_plain,
     .fini = teardown)
{
    loop_init();
    tkv_async *ac = connect_tcp();
    static char longkey[4096];
    memset(longkey, 'k', sizeof longkey); /* over the default --max-key */
    cr_assert_eq(tkv_async_put(ac, longkey, sizeof longkey, "v", 1, 1, err_cb, (void *)(intptr_t)0),
                 TKV_OK);
    cr_assert_eq(tkv_async_ping(ac, err_cb, (void *)(intptr_t)1), TKV_OK);
    loop_run();
    cr_assert_eq(R.bad, 0, "%s", R.bad_why);
    cr_assert_eq(R.replies, 2);
    cr_assert_eq(err_kind, TKV_EK_SERVER);
    cr_assert_neq(err_code, 0);
    cr_assert_eq(R.disconnect_status, TKV_OK);
}

/* ---- the Unix socket ---------------------------------------------------------------- */

static void start_unix(const char *perm)
{
    sockdir = tmpdir_make("sock");
    snprintf(sockpath, sizeof sockpath, "%s/tkv.sock", sockdir);
    const char *args[] = {"--unix", sockpath, perm ? "--unix-perm" : NULL, perm, NULL};
    tkvd_start(&d, args);
}

static void start_unix_default(void) { start_unix(NULL); }

static mode_t sock_mode(void)
{
    struct stat st;
    cr_assert_eq(stat(sockpath, &st), 0, "%s: %s", sockpath, strerror(errno));
    cr_assert(S_ISSOCK(st.st_mode));
    return st.st_mode & 07777;
}

Test(async, unix_socket_serves_the_async_sync_and_tkvctl_clients, .init = start_unix_default,
     .fini = teardown)
{
    cr_assert_eq(sock_mode(), 0700, "mode %o", sock_mode());

    tkv_ctx *c = tkv_connect_unix(sockpath, 10000);
    cr_assert(c);
    cr_assert_eq(tkv_err(c), TKV_EK_NONE, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_put(c, "u", 1, "via-sync", 8, 1, NULL), TKV_OK, "%s", tkv_errstr(c));
    /* Re-dialled at the same path. */
    cr_assert_eq(tkv_reconnect(c), TKV_OK, "%s", tkv_errstr(c));
    tkv_version v;
    cr_assert_eq(tkv_get(c, "u", 1, TKV_LATEST, &v), TKV_OK);
    cr_assert_eq(v.len, 8);

    loop_init();
    tkv_async *ac = attach(tkv_async_connect_unix(sockpath));
    cr_assert_eq(tkv_async_put(ac, "u", 1, "via-async", 9, 2, put_cb, (void *)(intptr_t)1), TKV_OK);
    tkv_async_disconnect(ac);
    loop_run();
    cr_assert_eq(R.connect_status, TKV_OK, "%s", R.errstr);
    cr_assert_eq(R.replies, 1);
    cr_assert_eq(R.bad, 0, "%s", R.bad_why);

    const char *argv[] = {getenv("TKVCTL"), "-s", sockpath, "get", "u", NULL};
    char *out, *err;
    cr_assert_eq(run_capture(argv, NULL, &out, &err), 0, "%s", err);
    cr_assert_str_eq(out, "via-async\n");
    free(out);
    free(err);
    tkv_free(c);

    tkvd_stop(&d);
    cr_assert_neq(access(sockpath, F_OK), 0, "the socket file outlived the server");
}

static void start_unix_over_stale(void)
{
    /* A socket file nobody listens on, as a crash leaves it. */
    sockdir = tmpdir_make("sock");
    snprintf(sockpath, sizeof sockpath, "%s/tkv.sock", sockdir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, sockpath, strlen(sockpath) + 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    const char *args[] = {"--unix", sockpath, "--unix-perm", "660", NULL};
    tkvd_start(&d, args);
}

Test(async, unix_socket_replaces_a_stale_one_and_takes_its_mode, .init = start_unix_over_stale,
     .fini = teardown)
{
    cr_assert_eq(sock_mode(), 0660, "mode %o", sock_mode());
    tkv_ctx *c = tkv_connect_unix(sockpath, 10000);
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    tkv_free(c);
}

/* ---- TCP keepalive ------------------------------------------------------------------- */

/* The keepalive timer of the established loopback connection whose local
 * (or remote) port is port, from /proc/net/tcp: seconds until the next
 * probe, or -1 if the socket has no keepalive timer running. */
static double keepalive_timer(uint16_t port, bool local)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    cr_assert(f);
    char line[512];
    double found = -2;
    while (fgets(line, sizeof line, f)) {
        unsigned lport, rport, st, tr;
        unsigned long when;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %*x:%*x %x:%lx", &lport, &rport, &st, &tr,
                   &when) != 5)
            continue;
        if (st != 1 || (local ? lport : rport) != port)
            continue;
        found = tr == 2 ? (double)when / (double)sysconf(_SC_CLK_TCK) : -1;
    }
    fclose(f);
    cr_assert_neq(found, -2, "no established connection on port %u", port);
    return found;
}

Test(async, tcp_keepalive_is_set_on_both_ends, .init = start_plain, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_ping(c), TKV_OK);
    /* The server's side: --tcp-keepalive's default, 300 s. */
    double s = keepalive_timer(d.port, true);
    cr_assert(s > 200 && s <= 300, "server keepalive timer %.1f s", s);
    /* The client's side: off until asked for. */
    cr_assert_eq(keepalive_timer(d.port, false), -1);
    cr_assert_eq(tkv_set_keepalive(c, 7), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_ping(c), TKV_OK);
    double k = keepalive_timer(d.port, false);
    cr_assert(k > 0 && k <= 7, "client keepalive timer %.1f s", k);
    tkv_free(c);
}

static void start_no_keepalive(void)
{
    const char *args[] = {"--tcp-keepalive", "0", NULL};
    tkvd_start(&d, args);
}

Test(async, tcp_keepalive_zero_turns_it_off, .init = start_no_keepalive, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_ping(c), TKV_OK);
    cr_assert_eq(keepalive_timer(d.port, true), -1);
    tkv_free(c);
}

/* ---- reconnecting (the sync context) ------------------------------------------------ */

Test(async, tkv_reconnect_dials_again_after_a_server_restart, .init = start_plain, .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_set_keepalive(c, 60), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_put(c, "r", 1, "1", 1, 1, NULL), TKV_OK);
    tkvd_stop(&d);
    tkvd_restart(&d);
    /* Not by itself: the broken connection is reported, and it sticks. */
    cr_assert_eq(tkv_ping(c), TKV_ERR);
    tkv_errkind k = tkv_err(c);
    cr_assert(k == TKV_EK_EOF || k == TKV_EK_IO, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_ping(c), TKV_ERR);
    cr_assert_eq(tkv_err(c), k);
    cr_assert_eq(tkv_reconnect(c), TKV_OK, "%s", tkv_errstr(c));
    tkv_version v;
    cr_assert_eq(tkv_get(c, "r", 1, TKV_LATEST, &v), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(v.ts, 1);
    /* The keepalive asked for holds on the new connection too. */
    double t = keepalive_timer(d.port, false);
    cr_assert(t > 0 && t <= 60, "client keepalive timer %.1f s", t);
    tkv_free(c);
}

/* ---- a request the server refuses outright ------------------------------------------- */

static void start_small_frames(void)
{
    const char *args[] = {"--max-frame", "64kb", "--max-value", "60kb", NULL};
    tkvd_start(&d, args);
}

static void big_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    note((int)(intptr_t)privdata, r);
    if (r && r->status == TKV_ERR) {
        err_kind = tkv_async_err(ac);
        err_code = tkv_async_server_code(ac);
    }
}

Test(async, an_oversize_request_gets_the_servers_answer_then_the_disconnect,
     .init = start_small_frames, .fini = teardown)
{
    enum { BIG = 20 * 1024 * 1024 };
    char *big = calloc(1, BIG);
    cr_assert(big);
    /* Whether the client is still sending when the server closes depends
     * on timing: a few rounds see both orders. */
    for (int round = 0; round < 4; round++) {
        loop_init();
        err_kind = TKV_EK_NONE;
        err_code = 0;
        tkv_async *ac = connect_tcp();
        cr_assert_eq(tkv_async_put(ac, "k", 1, big, BIG, 1, big_cb, (void *)(intptr_t)0), TKV_OK);
        loop_run();
        cr_assert_eq(R.calls[0], 1);
        cr_assert_eq(R.replies, 1, "round %d: the answer was lost (%s)", round, R.errstr);
        cr_assert_eq(err_kind, TKV_EK_SERVER);
        cr_assert_eq(err_code, TKV_SC_TOO_LARGE);
        cr_assert_eq(R.disconnects, 1);
        cr_assert_eq(R.disconnect_status, TKV_ERR);
    }
    free(big);
}

Test(async, unix_socket_of_a_running_server_is_not_taken, .init = start_unix_default,
     .fini = teardown)
{
    char datadir[600];
    snprintf(datadir, sizeof datadir, "%s/other-data", sockdir);
    /* Bounded: a second server that did start would otherwise run on. */
    const char *argv[] = {"/usr/bin/timeout", "20",    getenv("TKVD"), "--port", "0",
                          "--data-dir",       datadir, "--unix",       sockpath, NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "a server is listening there"), "%s", err);
    free(out);
    free(err);
    /* The first server's socket is still there and still answers. */
    tkv_ctx *c = tkv_connect_unix(sockpath, 10000);
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    tkv_free(c);
}

/* ---- keepalive's range --------------------------------------------------------------- */

static void disconnect_after_ping(tkv_async *ac, int i)
{
    cr_assert_eq(tkv_async_ping(ac, ping_cb, (void *)(intptr_t)i), TKV_OK, "%s",
                 tkv_async_errstr(ac));
    tkv_async_disconnect(ac);
}

/* Linux refuses TCP_KEEPIDLE above 32767: such a value is a usage error
 * up front, and neither the connection nor the setting changes. */
Test(async, keepalive_out_of_range_is_refused_and_the_connection_goes_on, .init = start_plain,
     .fini = teardown)
{
    tkv_ctx *c = tkvd_client(&d);
    cr_assert_eq(tkv_set_keepalive(c, 60), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_set_keepalive(c, 40000), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_USAGE, "%s", tkv_errstr(c));
    cr_assert(strstr(tkv_errstr(c), "32767"), "%s", tkv_errstr(c));
    cr_assert_eq(tkv_set_keepalive(c, -1), TKV_ERR);
    cr_assert_eq(tkv_err(c), TKV_EK_USAGE, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    double t = keepalive_timer(d.port, false);
    cr_assert(t > 0 && t <= 60, "client keepalive timer %.1f s", t);
    /* The 60 s kept, not the refused value: reconnecting works and keeps it. */
    cr_assert_eq(tkv_reconnect(c), TKV_OK, "%s", tkv_errstr(c));
    t = keepalive_timer(d.port, false);
    cr_assert(t > 0 && t <= 60, "client keepalive timer %.1f s", t);
    cr_assert_eq(tkv_set_keepalive(c, 32767), TKV_OK, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    tkv_free(c);

    loop_init();
    tkv_async *ac = connect_tcp();
    cr_assert_eq(tkv_async_set_keepalive(ac, 40000), TKV_ERR);
    cr_assert_eq(tkv_async_err(ac), TKV_EK_USAGE, "%s", tkv_async_errstr(ac));
    disconnect_after_ping(ac, 0);
    loop_run();
    cr_assert_eq(R.replies, 1, "%s", R.errstr);
    cr_assert_eq(R.disconnects, 1);
    cr_assert_eq(R.disconnect_status, TKV_OK, "%s", R.errstr);
}

Test(async, tkvd_refuses_a_tcp_keepalive_linux_cannot_set)
{
    /* Bounded: a server that did start would otherwise run on. */
    const char *argv[] = {"/usr/bin/timeout",
                          "20",
                          getenv("TKVD"),
                          "--port",
                          "0",
                          "--data-dir",
                          "/nonexistent/tkv-data",
                          "--tcp-keepalive",
                          "40000",
                          NULL};
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert(rc != 0 && rc != 124, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "0-32767"), "%s", err);
    free(out);
    free(err);
}

/* ---- a Unix socket whose server's backlog is full --------------------------------------- */

enum { MAX_HELD = 8192 };
static int held[MAX_HELD];
static int nheld;

/* Stops the server and fills its backlog: the next connect gets EAGAIN. */
static void fill_backlog(void)
{
    cr_assert_eq(kill(d.pid, SIGSTOP), 0); /* tkvd_signal() would wait for an exit */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(sockpath), sizeof sa.sun_path);
    memcpy(sa.sun_path, sockpath, strlen(sockpath));
    for (nheld = 0; nheld < MAX_HELD; nheld++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            int e = errno;
            close(fd);
            cr_assert_eq(e, EAGAIN, "connect: %s", strerror(e));
            return;
        }
        held[nheld] = fd;
    }
    cr_assert_fail("the backlog never filled");
}

static void release_backlog(void)
{
    kill(d.pid, SIGCONT);
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    nheld = 0;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *resume_later(void *arg)
{
    (void)arg;
    /* The delay is the point: the connect must wait for the server. */
    struct timespec t = {.tv_nsec = 200 * 1000 * 1000};
    nanosleep(&t, NULL);
    kill(d.pid, SIGCONT);
    return NULL;
}

Test(async, a_full_unix_backlog_is_waited_out_until_the_timeout, .init = start_unix_default,
     .fini = teardown)
{
    fill_backlog();
    /* Never taken: a timeout, after the timeout. */
    double t0 = now_ms();
    tkv_ctx *c = tkv_connect_unix(sockpath, 300);
    double took = now_ms() - t0;
    cr_assert_eq(tkv_err(c), TKV_EK_TIMEOUT, "%s", tkv_errstr(c));
    cr_assert(strstr(tkv_errstr(c), sockpath), "%s", tkv_errstr(c));
    cr_assert(took >= 290 && took < 5000, "gave up after %.0f ms", took);
    tkv_free(c);
    /* The async context has no timer: it says why, at once. */
    loop_init();
    attach(tkv_async_connect_unix(sockpath));
    loop_run();
    cr_assert_eq(R.connect_status, TKV_ERR);
    cr_assert(strstr(R.errstr, "backlog is full"), "%s", R.errstr);
    /* Taken once the server accepts again, within the timeout. */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, resume_later, NULL), 0);
    c = tkv_connect_unix(sockpath, 10000);
    pthread_join(th, NULL);
    cr_assert_eq(tkv_err(c), TKV_EK_NONE, "%s", tkv_errstr(c));
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    tkv_free(c);
    release_backlog();
}

/* ---- a host with several addresses (the async connect) --------------------------------- */

static void break_cb(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    (void)ac;
    note((int)(intptr_t)privdata, r);
    ev_break(R.loop, EVBREAK_ONE);
}

/* A name whose first address (::1) refuses and whose second (127.0.0.1) is
 * the server's: /etc/hosts is replaced by a bind mount in a mount namespace
 * of this test's own process (Criterion runs each test in its own). */
Test(async, the_async_connect_tries_a_hosts_next_address, .init = start_plain, .fini = teardown)
{
    if (unshare(CLONE_NEWNS) < 0)
        cr_skip_test("no mount namespace here: %s", strerror(errno));
    cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
    sockdir = tmpdir_make("hosts");
    char hosts[600];
    snprintf(hosts, sizeof hosts, "%s/hosts", sockdir);
    FILE *f = fopen(hosts, "w");
    cr_assert(f);
    fputs("::1 tkv-two-addrs\n127.0.0.1 tkv-two-addrs\n", f);
    cr_assert_eq(fclose(f), 0);
    if (mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) < 0)
        cr_skip_test("cannot bind-mount /etc/hosts: %s", strerror(errno));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    cr_assert_eq(getaddrinfo("tkv-two-addrs", NULL, &hints, &res), 0);
    int first = res->ai_family;
    bool two = res->ai_next != NULL;
    freeaddrinfo(res);
    cr_assert(first == AF_INET6 && two, "the resolver does not list ::1 first");

    loop_init();
    tkv_async *ac = attach(tkv_async_connect("tkv-two-addrs", d.port));
    /* Asked for while connecting to ::1: it must hold on 127.0.0.1's socket. */
    cr_assert_eq(tkv_async_set_keepalive(ac, 30), TKV_OK, "%s", tkv_async_errstr(ac));
    cr_assert_eq(tkv_async_ping(ac, break_cb, (void *)(intptr_t)0), TKV_OK);
    ev_run(R.loop, 0);
    cr_assert_eq(R.connect_status, TKV_OK, "%s", R.errstr);
    cr_assert_eq(R.replies, 1, "%s", R.errstr);
    double t = keepalive_timer(d.port, false);
    cr_assert(t > 0 && t <= 30, "client keepalive timer %.1f s", t);
    disconnect_after_ping(ac, 1);
    loop_run();
    cr_assert_eq(R.replies, 2, "%s", R.errstr);
    cr_assert_eq(R.disconnect_status, TKV_OK, "%s", R.errstr);
    /* The blocking dial agrees. */
    tkv_ctx *c = tkv_connect("tkv-two-addrs", d.port, 10000);
    cr_assert_eq(tkv_ping(c), TKV_OK, "%s", tkv_errstr(c));
    tkv_free(c);
}

/* ---- the README's example ----------------------------------------------------------------- */

static void start_tiny_values(void)
{
    const char *args[] = {"--max-value", "3", NULL};
    tkvd_start(&d, args);
}

/* Every PUT refused (values of 4 bytes and more): the example must still
 * end, and say it failed. */
Test(async, the_libev_example_ends_when_its_puts_fail, .init = start_tiny_values, .fini = teardown)
{
    char port[8];
    snprintf(port, sizeof port, "%u", d.port);
    const char *argv[] = {"/usr/bin/timeout", "20", getenv("TKV_EXAMPLE_ASYNC_LIBEV"),
                          "127.0.0.1",        port, NULL};
    cr_assert(argv[2], "TKV_EXAMPLE_ASYNC_LIBEV is not set");
    char *out, *err;
    int rc = run_capture(argv, NULL, &out, &err);
    cr_assert_eq(rc, 1, "exit %d: %s%s", rc, out, err);
    cr_assert(strstr(out, "PUT: error"), "%s", out);
    free(out);
    free(err);
}
