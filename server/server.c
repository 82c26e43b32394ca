/*
 * server.c - implements the tkvd reactor of server.h.
 *
 * One loop iteration, in libev's order:
 *   poll -> check (serve connections left over by the fairness cap)
 *        -> io (accept; connections read and serve; the writer's wake-up)
 *        -> prepare (hand the staged writes to the writer; send replies)
 * Writes are staged in the engine and written to LevelDB by its writer
 * thread one batch at a time (commit.c), while this thread goes on
 * serving. Replies that depend on staged writes wait in their connection
 * until the batch is written (conn.c); each commit here releases them, or
 * turns them into errors if the batch failed. Replies go out in one write
 * per connection per iteration, just before the loop sleeps.
 *
 * This file owns the listener, the loop's watchers, group commit, the
 * timers, signals and shutdown; everything about one client is in conn.c,
 * reached through the conn_hub embedded here.
 */
#include "server.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cluster.h"
#include "cmd.h"
#include "conn.h"
#include "http.h"
#include "latency.h"
#include "log.h"
#include "readers.h"
#include "replication.h"
#include "shardmap.h"
#include "sockopt.h"
#include "slowlog.h"
#include "usage.h"

#define SHUTDOWN_GRACE 5.0

/* listen(2)'s backlog: Redis's and nginx's default; the kernel caps it at
 * net.core.somaxconn, so asking for more than most systems allow costs
 * nothing. */
#define LISTEN_BACKLOG 511
/* Connections accepted per readiness event: drains a burst in few loop
 * turns without starving the clients already served. */
#define ACCEPT_BATCH 256
/* Descriptors kept for what is not a client (listeners, LevelDB's files,
 * the log, the spare descriptor) when fitting --max-clients to ulimit -n. */
#define FD_RESERVE 64
/* --fsync everysec promises at most a second of writes lost. */
#define SYNC_PERIOD 1.0
/* The engine's tick (retrying a failed store) and idle clients'
 * --timeout, whose unit is the second, need nothing finer. */
#define TICK_PERIOD 1.0

typedef struct tkv_srv {
    struct ev_loop *loop;
    tkv_server_opts o;
    tkv_engine *eng;
    tkv_dispatch disp;
    tkv_server_info info;
    tkv_auth auth;
    bool has_auth;
    int lfd;
    int ufd;       /* the --unix listener, or -1 */
    bool ufd_own;  /* this process made the socket file: removes it at exit */
    dev_t ufd_dev; /* the file bind() made: removed only while it is still */
    ino_t ufd_ino; /* there, never a newer server's socket at the same path */
    int spare_fd;  /* released to accept-and-close when out of descriptors */
    ev_io lio;
    ev_io uio; /* the --unix listener's watcher */
    ev_prepare prep;
    ev_check chk;
    ev_idle idl;
    ev_signal sigint, sigterm, sighup;
    ev_timer sync_timer, grace_timer, tick_timer, sweep_timer;
    ev_async written;     /* the writer finished a batch */
    conn_hub hub;         /* the connections; hub.stopping: shutdown has begun */
    tkv_repl *repl;       /* replicas and the link to a primary */
    tkv_cluster *cluster; /* --cluster: the etcd thread; NULL: not in a cluster */
    tkv_http *http;       /* --http-port: the HTTP front end; NULL: none */
    char *secret;         /* the shared secret, for AUTH to a primary */
    size_t secret_len;
    bool storage_failing; /* a commit failed and none has succeeded since */
    int sweep_waits;      /* sweep ticks skipped for want of a quiet moment */
} tkv_srv;

/* ---- accepting -------------------------------------------------------- */

/* Replies to a connection that is refused before it is served: best effort,
 * one non-blocking write, then close. */
static void refuse(int fd, tkv_status st, const char *msg)
{
    tkv_buf b;
    tkv_buf_init(&b);
    if (tkv_write_error(&b, st, msg) == 0) {
        ssize_t n = send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    tkv_buf_deinit(&b);
    close(fd);
}

/* Out of descriptors: free the spare, accept the waiting peer to tell it so,
 * and take the spare back. Without this the listener stays readable and the
 * loop spins. */
static void accept_emfile(tkv_srv *s, int lfd)
{
    if (s->spare_fd < 0)
        return;
    close(s->spare_fd);
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        s->info.conns_rejected++;
        refuse(fd, TKV_ST_BUSY, "server out of file descriptors");
    }
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    tkv_warn("out of file descriptors: refusing connections (raise ulimit -n?)");
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    tkv_srv *s = w->data;
    /* Both listeners come here; a Unix socket's peer needs no TCP options. */
    bool tcp = w == &s->lio;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(w->fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                accept_emfile(s, w->fd);
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                     errno != ECONNABORTED)
                tkv_warn("accept: %s", strerror(errno));
            return;
        }
        if (s->info.conns_current >= s->o.max_clients) {
            s->info.conns_rejected++;
            refuse(fd, TKV_ST_BUSY, "max number of clients reached");
            continue;
        }
        if (tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (s->o.tcp_keepalive > 0 && tkv_sock_keepalive(fd, (int)s->o.tcp_keepalive) < 0)
                tkv_warn("TCP keepalive: %s", strerror(errno));
        }
        if (!conn_new(&s->hub, fd, &sa))
            refuse(fd, TKV_ST_INTERNAL, "out of memory");
    }
}

/* ---- group commit ----------------------------------------------------- */

/* A batch failed: every reply that waits for it (or for the batch staged
 * after it, rolled back with it) becomes an error. */
static void batch_failed(tkv_srv *s)
{
    const char *why = tkv_engine_errmsg(s->eng);
    if (!tkv_engine_failing(s->eng)) {
        /* Not the disk: a multi-write request failed half-way. */
        tkv_warn("a write batch was rolled back: %s", why);
    } else if (!s->storage_failing) {
        tkv_error("storage write failed; writes get errors until it succeeds: %s", why);
        s->storage_failing = true;
    }
    conn_withdraw(&s->hub, why);
}

static void batch_written(tkv_srv *s)
{
    if (s->storage_failing)
        tkv_info("storage writes succeed again");
    s->storage_failing = false;
}

/* Collects a finished batch and starts the next, keeping the writer busy
 * while there is anything to write. */
static void tell_cluster(tkv_srv *s);

static void commit(tkv_srv *s)
{
    uint64_t failed;
    int rc = tkv_engine_commit_finish(s->eng, &failed);
    if (rc > 0) {
        batch_written(s);
        /* Its replies go now: if the next batch fails to start, only the
         * replies waiting for that one may be withdrawn. */
        conn_release(&s->hub, tkv_engine_settled_epoch(s->eng));
        /* Before the next batch starts: its frame is the engine's until
         * then. */
        tkv_repl_committed(s->repl);
        /* A replica's offset as it stands for a lead: current, not a
         * second old (a stale one could rank it below one holding less). */
        tell_cluster(s);
    } else if (rc < 0) {
        batch_failed(s);
        tkv_repl_rolled_back(s->repl);
    }
    if (tkv_engine_commit_start(s->eng, &failed) < 0) {
        batch_failed(s);
        tkv_repl_rolled_back(s->repl);
    }
    conn_release(&s->hub, tkv_engine_settled_epoch(s->eng));
}

/* Replication's settle hook (replication.h): the batches under way, written
 * and collected the usual way. Nothing new is staged meanwhile (the loop
 * is here), so it ends within a few rounds. */
static void settle(void *ctx)
{
    tkv_srv *s = ctx;
    for (int i = 0; i < 4 && tkv_engine_pending(s->eng); i++) {
        tkv_engine_wait(s->eng);
        commit(s);
    }
}

/* ---- the loop's watchers ---------------------------------------------- */

/* Once stopping, the loop ends when every batch is written and every reply
 * has gone out (or the grace timer gives up). */
static void maybe_finish(tkv_srv *s)
{
    if (!s->hub.stopping || tkv_engine_pending(s->eng) || conn_any_unsent(&s->hub))
        return;
    ev_break(s->loop, EVBREAK_ALL);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    tkv_srv *s = w->data;
    commit(s);
    /* Replication first: it takes every committed frame into the backlog
     * (the sweep's own commits too), which watchers then read. */
    bool streams = tkv_repl_prepare(s->repl);
    /* Watchers follow what is committed (a replica's included): after the
     * commit, so a batch's pushes leave in the turn its replies do. One
     * far behind keeps the loop awake until it has caught up. */
    streams |= conn_watch_feed(&s->hub);
    streams |= conn_stream_steps(&s->hub);
    conn_flush_pending(&s->hub);
    tkv_engine_maintain(s->eng);
    if (s->hub.back.n > 0 || streams)
        ev_idle_start(loop, &s->idl);
    else
        ev_idle_stop(loop, &s->idl);
    tkv_engine_idle(s->eng);
    maybe_finish(s);
}

static void on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    tkv_srv *s = w->data;
    conn_serve_backlog(&s->hub);
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    /* Only keeps the loop from blocking while a backlog exists. */
}

static void on_sync_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    tkv_srv *s = w->data;
    if (tkv_engine_sync(s->eng) < 0)
        tkv_error("periodic sync failed: %s", tkv_engine_errmsg(s->eng));
}

/* The writer finished a batch: send what waited for it, start the next. */
static void on_written(struct ev_loop *loop, ev_async *w, int revents)
{
    tkv_srv *s = w->data;
    commit(s);
    conn_flush_pending(&s->hub);
}

/* Runs on the writer thread. */
static void wake_loop(void *ctx)
{
    tkv_srv *s = ctx;
    ev_async_send(s->loop, &s->written);
}

/* What the cluster thread needs to stand for a lead when the primary is
 * gone: the offset this node holds, and whether it may stand at all - a
 * replica, not in the middle of a full copy, that has received something
 * (offset 0 is a node that never synced, which must not win). */
static void tell_cluster(tkv_srv *s)
{
    if (!s->cluster)
        return;
    tkv_eng_repl r;
    tkv_engine_repl_get(s->eng, &r);
    tkv_cluster_set_repl(s->cluster, r.off,
                         tkv_repl_is_replica(s->repl) && tkv_repl_serving(s->repl) && r.off > 0);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    tkv_srv *s = w->data;
    tkv_engine_tick(s->eng);
    tell_cluster(s);
    /* Idle clients, including those stuck with unread replies, are closed;
     * not once stopping, when the grace timer decides. */
    if (!s->hub.stopping)
        conn_close_idle(&s->hub, ev_now(loop));
}

/* The sweep removes expired and retained versions a little at a time: a
 * bounded number of records every tenth of a second. A step runs between
 * batches and commits its own. Under a steady write load there may be no
 * moment between batches: after SWEEP_PATIENCE ticks the batches under way
 * are finished first (their replies released as usual), which stalls the
 * loop for their sync. */
#define SWEEP_BUDGET 5000
#define SWEEP_PATIENCE 10
#define SWEEP_PERIOD 0.1 /* short steps often, not a long pause now and then */

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    tkv_srv *s = w->data;
    /* A replica deletes what its primary's sweep deletes, no more. */
    if (s->hub.stopping || tkv_repl_is_replica(s->repl) || !tkv_engine_sweep_needed(s->eng))
        return;
    if (tkv_engine_pending(s->eng) && ++s->sweep_waits < SWEEP_PATIENCE)
        return;
    s->sweep_waits = 0;
    for (int i = 0; i < 3 && tkv_engine_pending(s->eng); i++) {
        tkv_engine_wait(s->eng);
        commit(s);
    }
    bool failing = tkv_engine_failing(s->eng);
    tkv_engine_sweep(s->eng, SWEEP_BUDGET);
    if (!failing && tkv_engine_failing(s->eng) && !s->storage_failing) {
        tkv_error("storage write failed (sweep); writes get errors until it succeeds: %s",
                  tkv_engine_errmsg(s->eng));
        s->storage_failing = true;
    }
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    tkv_warn("shutdown: clients did not read their last replies in time; closing");
    ev_break(loop, EVBREAK_ALL);
}

static void remove_unix_path(tkv_srv *s);

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    tkv_srv *s = w->data;
    if (s->hub.stopping)
        return;
    tkv_info("received %s, shutting down", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
    sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
    ev_io_stop(loop, &s->lio);
    close(s->lfd);
    s->lfd = -1;
    if (s->ufd >= 0) {
        ev_io_stop(loop, &s->uio);
        close(s->ufd);
        s->ufd = -1;
        /* Now, not after the grace: a server started meanwhile on the path
         * must find it free (and must not lose its socket to our exit). */
        remove_unix_path(s);
    }
    /* Serve every request already received, then stop reading. */
    conn_stop_all(&s->hub);
    ev_timer_start(loop, &s->grace_timer);
}

/* SIGHUP must not stop a server (a closed terminal, a careless kill -HUP):
 * as in most daemons it reopens the log file, for logrotate. */
static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    const char *path = tkv_log_path();
    if (!path) {
        tkv_info("received SIGHUP: ignored (no --log-file to reopen; SIGTERM stops tkvd)");
        return;
    }
    if (tkv_log_reopen() < 0)
        tkv_error("received SIGHUP: cannot reopen log file %s: %s; still logging to the old one",
                  path, strerror(errno));
    else
        tkv_info("received SIGHUP: reopened log file %s", path);
}

/* ---- the cluster map's way in ------------------------------------------- */

/* The one place a new cluster map reaches the reactor (cluster.c calls it
 * on the loop, with the map's JSON text and its etcd mod_revision, after
 * recording the revision for STATS). The map is checked whole; one that
 * breaks a rule is logged and the map before stays, so a bad write to
 * etcd cannot leave the node serving from half a map. */
/* The map names this node a shard's primary or one of its replicas: its
 * replication follows (REPLICAOF the primary, or NO ONE). A node named in
 * no shard keeps the role it has. */
static void follow_map_role(tkv_srv *s, const tkv_shardmap *m)
{
    const char *primary = NULL;
    char host[300], err[320];
    tkv_shardmap_role role = tkv_shardmap_self_role(m, &primary);
    if (role == TKV_SM_PRIMARY && tkv_repl_is_replica(s->repl)) {
        if (tkv_repl_replicaof(s->repl, NULL, 0, err, sizeof err) < 0)
            tkv_error("cluster: cannot become the primary the map names: %s", err);
        else
            tkv_info("cluster: the map makes this node its shard's primary");
        return;
    }
    if (role != TKV_SM_REPLICA)
        return;
    const char *colon = strrchr(primary, ':');
    size_t hn = colon ? (size_t)(colon - primary) : 0;
    if (!colon || hn == 0 || hn >= sizeof host)
        return; /* the map's addresses were checked: HOST:PORT */
    if (primary[0] == '[' && hn > 2 && primary[hn - 1] == ']') { /* [v6]:port */
        primary++;
        hn -= 2;
    }
    memcpy(host, primary, hn);
    host[hn] = '\0';
    uint16_t port = (uint16_t)strtoul(colon + 1, NULL, 10);
    if (tkv_repl_follows(s->repl, host, port))
        return;
    if (tkv_repl_replicaof(s->repl, host, port, err, sizeof err) < 0)
        tkv_error("cluster: cannot follow %s as the map says: %s", primary, err);
    else
        tkv_info("cluster: the map makes this node a replica of %s", primary);
}

static void tkv_server_map_changed(void *ctx, const char *json, uint64_t revision)
{
    tkv_srv *s = ctx;
    char err[512];
    tkv_shardmap *m = tkv_shardmap_parse(json, strlen(json), revision,
                                         tkv_cluster_node_id(s->cluster), err, sizeof err);
    if (!m) {
        tkv_error("cluster map revision %llu refused (the map before stays): %s",
                  (unsigned long long)revision, err);
        return;
    }
    tkv_info("cluster map revision %llu installed: %u slot ranges%s", (unsigned long long)revision,
             tkv_shardmap_nranges(m),
             tkv_shardmap_self_known(m) ? "" : "; this node is not in it and serves no slot");
    tkv_dispatch_set_map(&s->disp, m);
    follow_map_role(s, m);
    tell_cluster(s);
}

/* --cluster: starts the cluster thread, which registers this node as
 * --announce (default: the bind address and the bound port). */
static int start_cluster(tkv_srv *s, uint16_t port)
{
    char addr[320], err[512];
    const char *announce = s->o.announce;
    if (!announce) {
        if (strcmp(s->o.bind, "0.0.0.0") == 0 || strcmp(s->o.bind, "::") == 0)
            tkv_warn("cluster: announcing the wildcard address %s, which no other host can "
                     "reach: set --announce HOST:PORT",
                     s->o.bind);
        bool v6 = strchr(s->o.bind, ':') != NULL;
        snprintf(addr, sizeof addr, "%s%s%s:%u", v6 ? "[" : "", s->o.bind, v6 ? "]" : "", port);
        announce = addr;
    }
    tkv_cluster_opts co = {.endpoints = s->o.cluster,
                           .name = s->o.cluster_name ? s->o.cluster_name : "tkv",
                           .announce = announce,
                           .data_dir = s->o.engine.dir,
                           .ttl = s->o.cluster_timeout,
                           .on_map = tkv_server_map_changed,
                           .ctx = s};
    if (!(s->cluster = tkv_cluster_start(s->loop, &co, err, sizeof err))) {
        tkv_error("cluster: %s", err);
        return -1;
    }
    s->disp.cluster = s->cluster;
    const char *saved = tkv_cluster_saved_map(s->cluster);
    if (saved) {
        tkv_info("cluster: starting from the map this node last saw, until etcd's arrives");
        tkv_server_map_changed(s, saved, 0);
    }
    return 0;
}

/* ---- start-up --------------------------------------------------------- */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127;
    }
    return false;
}

/* Resolves bind and listens on port (what: "" or " (HTTP)", for messages).
 * Protected mode refuses a non-loopback address without a secret, for
 * every port tkvd listens on. Returns the socket, or -1 (reason logged). */
static int listen_addr(const tkv_srv *s, const char *bind_addr, uint16_t port_no, const char *what)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char port[8];
    snprintf(port, sizeof port, "%u", port_no);
    struct addrinfo *res;
    int rc = getaddrinfo(bind_addr, port, &hints, &res);
    if (rc != 0) {
        tkv_error("cannot resolve bind address%s %s: %s", what, bind_addr, gai_strerror(rc));
        return -1;
    }
    if (s->o.protected_mode && !s->has_auth) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if (!is_loopback(ai->ai_addr)) {
                tkv_error("refusing to listen%s on %s: it is not a loopback address and no secret "
                          "is set. Set one with --requirepass or --auth-file, or pass "
                          "--protected-mode no if every host that can reach this address is "
                          "trusted",
                          what, bind_addr);
                freeaddrinfo(res);
                return -1;
            }
        }
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        tkv_error("cannot listen%s on %s port %u: %s", what, bind_addr, port_no, strerror(err));
        return -1;
    }
    return fd;
}

/* A socket file already at path: removed only when nothing listens there
 * (ECONNREFUSED: a crash left it). A server that answers, or whose backlog
 * is full (EAGAIN), holds it; any other error (EACCES: another user's
 * socket) says nothing about it, so the start is refused with the reason
 * rather than risk removing a live server's socket. The probe does not
 * block: a blocking connect waits while the other server's backlog is full. */
static int clear_unix_path(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int err = rc == 0 ? 0 : errno;
    close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
        errno = EADDRINUSE;
        return -1;
    }
    if (err == ENOENT) /* removed meanwhile */
        return 0;
    if (err != ECONNREFUSED) {
        errno = err;
        return -1;
    }
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* The file bind() just made, opened without following a symlink: its
 * identity is recorded for remove_unix_path(), and if the umask took bits
 * --unix-perm grants they are added back through this descriptor, never by
 * a path that might meanwhile be a symlink. */
static int own_unix_path(tkv_srv *s, const char *path)
{
    int pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0)
        return -1;
    struct stat st;
    int rc = fstat(pfd, &st);
    if (rc == 0 && !S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        rc = -1;
    }
    if (rc == 0) {
        s->ufd_dev = st.st_dev;
        s->ufd_ino = st.st_ino;
        s->ufd_own = true;
    }
    if (rc == 0 && (st.st_mode & 07777) != s->o.unix_perm) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
        rc = chmod(proc, (mode_t)s->o.unix_perm);
    }
    close(pfd);
    return rc;
}

/* Removes --unix's file if it is still the one this server made: after a
 * shutdown began, a newer server may have replaced it. */
static void remove_unix_path(tkv_srv *s)
{
    if (!s->ufd_own)
        return;
    s->ufd_own = false;
    struct stat st;
    if (lstat(s->o.unix_path, &st) < 0) {
        if (errno != ENOENT)
            tkv_warn("cannot remove Unix socket %s: %s", s->o.unix_path, strerror(errno));
        return;
    }
    if (st.st_dev != s->ufd_dev || st.st_ino != s->ufd_ino) {
        tkv_info("Unix socket %s belongs to another server now: left in place", s->o.unix_path);
        return;
    }
    if (unlink(s->o.unix_path) < 0 && errno != ENOENT)
        tkv_warn("cannot remove Unix socket %s: %s", s->o.unix_path, strerror(errno));
}

/* Listens on --unix. The mode is set on the socket before bind(): Linux
 * gives the file bind() creates the socket's mode less the umask, so the
 * file never exists with wider permissions, and no chmod() by path (which
 * follows a symlink swapped in after bind) is needed. A umask() around
 * bind() would do too, but the umask is process-wide and LevelDB's threads
 * already create files. Nobody can connect before listen().
 * Protected mode has no say here: the file's permissions are the guard. */
static int listen_unix(tkv_srv *s)
{
    const char *path = s->o.unix_path;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof sa.sun_path) {
        tkv_error("Unix socket path %s is too long (at most %zu bytes)", path,
                  sizeof sa.sun_path - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, len);
    if (clear_unix_path(path, &sa) < 0) {
        tkv_error("cannot use Unix socket %s: %s", path,
                  errno == EADDRINUSE ? "a server is listening there"
                  : errno == EEXIST   ? "a file that is not a socket is there"
                                      : strerror(errno));
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || fchmod(fd, (mode_t)s->o.unix_perm) < 0 ||
        bind(fd, (const struct sockaddr *)&sa, sizeof sa) < 0) {
        tkv_error("cannot listen on Unix socket %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    s->ufd = fd;
    if (own_unix_path(s, path) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        tkv_error("cannot listen on Unix socket %s: %s", path, strerror(errno));
        return -1;
    }
    tkv_info("listening on Unix socket %s (mode %04o)", path, (unsigned)s->o.unix_perm);
    return 0;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return 0;
    if (sa.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static int write_port_file(const char *path, uint16_t port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

static void init_watchers(tkv_srv *s)
{
    struct ev_loop *loop = s->loop;
    ev_io_init(&s->lio, on_accept, s->lfd, EV_READ);
    if (s->ufd >= 0) {
        ev_io_init(&s->uio, on_accept, s->ufd, EV_READ);
        s->uio.data = s;
        ev_io_start(loop, &s->uio);
    }
    ev_prepare_init(&s->prep, on_prepare);
    ev_check_init(&s->chk, on_check);
    ev_idle_init(&s->idl, on_idle);
    ev_signal_init(&s->sigint, on_signal, SIGINT);
    ev_signal_init(&s->sigterm, on_signal, SIGTERM);
    ev_signal_init(&s->sighup, on_sighup, SIGHUP);
    ev_timer_init(&s->sync_timer, on_sync_timer, SYNC_PERIOD, SYNC_PERIOD);
    ev_timer_init(&s->grace_timer, on_grace, SHUTDOWN_GRACE, 0.0);
    ev_timer_init(&s->tick_timer, on_tick, TICK_PERIOD, TICK_PERIOD);
    ev_timer_init(&s->sweep_timer, on_sweep, SWEEP_PERIOD, SWEEP_PERIOD);
    ev_async_init(&s->written, on_written);
    s->lio.data = s->prep.data = s->chk.data = s->idl.data = s;
    s->sigint.data = s->sigterm.data = s->sighup.data = s->sync_timer.data = s->grace_timer.data =
        s;
    s->tick_timer.data = s->sweep_timer.data = s->written.data = s;
    ev_io_start(loop, &s->lio);
    ev_prepare_start(loop, &s->prep);
    ev_check_start(loop, &s->chk);
    ev_signal_start(loop, &s->sigint);
    ev_signal_start(loop, &s->sigterm);
    ev_signal_start(loop, &s->sighup);
    ev_timer_start(loop, &s->tick_timer);
    ev_timer_start(loop, &s->sweep_timer);
    ev_async_start(loop, &s->written);
    if (s->o.engine.fsync == TKV_SYNC_EVERYSEC)
        ev_timer_start(loop, &s->sync_timer);
}

static void shutdown_all(tkv_srv *s)
{
    if (tkv_engine_commit(s->eng) < 0)
        tkv_error("final write failed: %s", tkv_engine_errmsg(s->eng));
    /* A start that failed before replication was set up (a port or a
     * Unix socket in use) has none to tell. */
    if (s->repl)
        tkv_repl_committed(s->repl); /* the last frames go to the replicas, if they can */
    conn_close_all(&s->hub);
    tkv_repl_free(s->repl); /* its copies' dumps hold the store */
    s->repl = NULL;
    /* Loads still running read the store: it closes after them. */
    tkv_readers_stop(s->hub.readers);
    s->hub.readers = NULL;
    if (s->o.engine.fsync != TKV_SYNC_NEVER && tkv_engine_sync(s->eng) < 0)
        tkv_error("final sync failed: %s", tkv_engine_errmsg(s->eng));
    tkv_engine_close(s->eng);
    s->eng = NULL;
}

static int setup_auth(tkv_srv *s)
{
    char err[512];
    size_t len = 0;
    char *secret = NULL;
    if (s->o.auth_file) {
        secret = tkv_auth_read_file(s->o.auth_file, &len, err, sizeof err);
        if (!secret) {
            tkv_error("%s", err);
            return -1;
        }
    } else if (s->o.requirepass) {
        len = strlen(s->o.requirepass);
        secret = strdup(s->o.requirepass);
    }
    if (!secret)
        return 0;
    if (len > TKV_AUTH_MAX_SECRET) {
        tkv_error("the secret is longer than %u bytes", TKV_AUTH_MAX_SECRET);
        free(secret);
        return -1;
    }
    int rc = tkv_auth_init(&s->auth, secret, len);
    /* Kept: a replica presents it to its primary. */
    s->secret = secret;
    s->secret_len = len;
    if (rc < 0) {
        tkv_error("no randomness available to protect the secret");
        return -1;
    }
    s->has_auth = true;
    return 0;
}

/* Every client needs a descriptor: raise the soft limit as far as the hard
 * limit allows, and serve fewer clients if even that is not enough. */
static void fit_descriptors(tkv_srv *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)s->o.max_clients + FD_RESERVE;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want && rl.rlim_cur > FD_RESERVE) {
        tkv_warn("only %llu file descriptors available: serving at most %llu clients "
                 "(raise ulimit -n for %u)",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)(rl.rlim_cur - FD_RESERVE),
                 s->o.max_clients);
        s->o.max_clients = (uint32_t)(rl.rlim_cur - FD_RESERVE);
    }
}

/* --cluster-map: a fixed cluster without etcd (and the tests' clusters).
 * A map from etcd takes the same way in (tkv_server_map_changed). Unlike
 * a map from etcd, a file that does not name this node is refused: it is
 * a typo, not a node waiting to be added. */
static int load_static_map(tkv_srv *s)
{
    char err[512];
    tkv_shardmap *m = tkv_shardmap_load(s->o.cluster_map, 0, s->o.node_id, err, sizeof err);
    if (!m) {
        tkv_error("--cluster-map %s", err);
        return -1;
    }
    if (!tkv_shardmap_self_known(m)) {
        tkv_error("--cluster-map %s: node \"%s\" is not in its \"nodes\"", s->o.cluster_map,
                  s->o.node_id);
        tkv_shardmap_free(m);
        return -1;
    }
    tkv_dispatch_set_map(&s->disp, m);
    tkv_info("cluster map %s: this is node %s (%u slot ranges)", s->o.cluster_map, s->o.node_id,
             tkv_shardmap_nranges(m));
    return 0;
}

/* --http-port: the HTTP front end, on --http-bind (default --bind). */
static int start_http(tkv_srv *s)
{
    char err[256];
    const char *addr = s->o.http_bind ? s->o.http_bind : s->o.bind;
    int fd = listen_addr(s, addr, (uint16_t)s->o.http_port, " (HTTP)");
    if (fd < 0)
        return -1;
    uint16_t port = bound_port(fd);
    tkv_http_opts ho = {.fd = fd,
                        .hub = &s->hub,
                        .auth = s->has_auth ? &s->auth : NULL,
                        .max_key = s->o.max_key,
                        .max_value = s->o.max_value,
                        .max_frame = s->o.max_frame};
    if (!(s->http = tkv_http_start(s->loop, &ho, err, sizeof err))) {
        tkv_error("HTTP: %s", err);
        return -1;
    }
    tkv_info("HTTP on %s port %u (/metrics, /healthz, /v1/kv/, /openapi.json)", addr, port);
    if (s->o.http_port_file && write_port_file(s->o.http_port_file, port) < 0) {
        tkv_error("cannot write HTTP port file %s: %s", s->o.http_port_file, strerror(errno));
        return -1;
    }
    return 0;
}

static int start(tkv_srv *s)
{
    char err[512];
    if (setup_auth(s) < 0)
        return -1;
    fit_descriptors(s);
    tkv_engine_opts eo = s->o.engine;
    eo.writer_thread = true;
    eo.repl_feed = true;
    eo.on_written = wake_loop;
    eo.on_written_ctx = s;
    if (tkv_engine_open(&eo, &s->eng, err, sizeof err) < 0) {
        tkv_error("%s", err);
        return -1;
    }
    if ((s->lfd = listen_addr(s, s->o.bind, s->o.port, "")) < 0 ||
        (s->o.unix_path && listen_unix(s) < 0))
        return -1;
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s->disp = (tkv_dispatch){
        .eng = s->eng,
        .lim = {.max_key = s->o.max_key, .max_value = s->o.max_value, .max_batch = s->o.max_batch},
        .max_reply = s->o.max_frame,
        .auth = s->has_auth ? &s->auth : NULL,
        .info = &s->info,
        .lat = tkv_latency_new(),
        .slow = tkv_slowlog_new(s->o.slowlog_slower_than, s->o.slowlog_max_len)};
    if (!s->disp.lat || !s->disp.slow) {
        tkv_error("out of memory");
        return -1;
    }
    /* After the engine opened it: the directory exists. */
    if (!(s->info.du = tkv_du_start(s->o.engine.dir)))
        tkv_warn("cannot start the disk usage thread: STATS shows disk_bytes 0");
    s->hub = (conn_hub){.loop = s->loop, .o = &s->o, .disp = &s->disp, .info = &s->info};
    if (s->o.cluster_map && load_static_map(s) < 0)
        return -1;
    tkv_repl_opts ro = {.backlog = s->o.repl_backlog,
                        .timeout = s->o.repl_timeout > 0 ? s->o.repl_timeout : 10.0,
                        .secret = s->secret,
                        .secret_len = s->secret_len,
                        .max_frame = 1u << 30, /* a primary's batch can be large: it is trusted */
                        .output_high = s->o.output_high_water,
                        .wait_done = conn_repl_wait_done,
                        .settle = settle,
                        .ctx = s,
                        .conns = &s->info.conns_current};
    if (!(s->repl = tkv_repl_new(s->loop, s->eng, &ro))) {
        tkv_error("out of memory");
        return -1;
    }
    s->disp.repl = s->hub.repl = s->repl;
    if (s->o.replica_of_host) {
        char why[320];
        if (tkv_repl_replicaof(s->repl, s->o.replica_of_host, s->o.replica_of_port, why,
                               sizeof why) < 0) {
            tkv_error("%s", why);
            return -1;
        }
    }
    if (s->o.readers > 0 &&
        !(s->hub.readers = tkv_readers_start(s->loop, s->eng, s->o.readers, s->o.reader_nice,
                                             conn_load_done, &s->hub)))
        tkv_warn("cannot start reader threads: requests read LevelDB on the loop thread");
    s->info.start_us = tkv_engine_now(s->eng); /* the clock STATS reads uptime on */
    s->info.max_clients = s->o.max_clients;
    s->info.fsync = tkv_fsync_name(s->o.engine.fsync);
    init_watchers(s);
    uint16_t port = bound_port(s->lfd);
    tkv_engine_stats es;
    tkv_engine_stats_get(s->eng, &es);
    tkv_info("tkvd %s listening on %s port %u, data in %s (%llu keys, %llu versions), "
             "fsync %s, max-memory %zu bytes, %u reader threads",
             TKV_VERSION_STRING, s->o.bind, port, s->o.engine.dir, (unsigned long long)es.keys,
             (unsigned long long)es.versions, tkv_fsync_name(s->o.engine.fsync),
             s->o.engine.max_memory, s->hub.readers ? s->o.readers : 0);
    if (s->o.cluster && start_cluster(s, port) < 0)
        return -1;
    if (s->o.http_port >= 0 && start_http(s) < 0)
        return -1;
    if (s->o.port_file && write_port_file(s->o.port_file, port) < 0) {
        tkv_error("cannot write port file %s: %s", s->o.port_file, strerror(errno));
        return -1;
    }
    /* systemd's Type=notify: ready once the socket accepts, as the port
     * file. Without NOTIFY_SOCKET sd_notify does nothing; it sends one
     * datagram, so it never waits on the loop's time. */
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s port %u\nMAINPID=%lu", s->o.bind, port,
               (unsigned long)getpid());
    return 0;
}

int tkv_server_run(const tkv_server_opts *o)
{
    tkv_srv s = {.o = *o, .lfd = -1, .ufd = -1, .spare_fd = -1};
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT, SIGTERM and SIGHUP are blocked in every thread - this one
     * first, so every thread started from here on (ours, LevelDB's,
     * libmicrohttpd's) inherits the mask - and the loop reads them from a
     * signalfd (EVFLAG_SIGNALFD). So no helper thread is ever picked to run
     * a handler: under ThreadSanitizer, which defers a handler until its
     * thread leaves a blocking call, a SIGTERM given to an idle thread once
     * went unhandled for a minute. Blocked and pending, they also wait out
     * the opening of a large store; SIGHUP's default action is restored so
     * that it is kept pending rather than discarded. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGHUP, SIG_DFL);
    s.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);
    if (!s.loop) {
        tkv_error("cannot initialise the event loop");
        return 1;
    }
    int rc = 0;
    if (start(&s) == 0) {
        ev_run(s.loop, 0);
    } else {
        rc = 1;
    }
    /* Before the connections close: HTTP requests still waiting on theirs
     * get 503, and its threads are joined. */
    tkv_http_stop(s.http);
    s.http = NULL;
    /* First: its lease is revoked, so the node leaves the cluster's list
     * now, before the store is closed. */
    tkv_cluster_stop(s.cluster);
    s.disp.cluster = NULL;
    if (s.eng)
        shutdown_all(&s);
    tkv_dispatch_set_map(&s.disp, NULL);
    tkv_du_stop(s.info.du);
    tkv_latency_free(s.disp.lat);
    tkv_slowlog_free(s.disp.slow);
    if (s.lfd >= 0)
        close(s.lfd);
    if (s.ufd >= 0)
        close(s.ufd);
    remove_unix_path(&s);
    if (s.secret) {
        explicit_bzero(s.secret, s.secret_len);
        free(s.secret);
    }
    if (s.spare_fd >= 0)
        close(s.spare_fd);
    if (rc == 0)
        tkv_info("shutdown complete");
    return rc;
}

void tkv_server_defaults(tkv_server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bind = "127.0.0.1";
    o->port = 7379;
    o->max_clients = 10000;
    o->max_frame = TKV_DEFAULT_MAX_FRAME;
    o->slowlog_slower_than = TKV_SLOWLOG_DEFAULT_SLOWER_THAN;
    o->slowlog_max_len = TKV_SLOWLOG_DEFAULT_MAX_LEN;
    o->max_key = TKV_DEFAULT_MAX_KEY;
    o->max_value = TKV_DEFAULT_MAX_VALUE;
    o->max_output = 64u * 1024 * 1024;
    o->output_high_water = 1024u * 1024;
    o->max_pipeline = 128;
    o->protected_mode = true;
    o->unix_perm = 0700;
    o->tcp_keepalive = 300;
    o->max_batch = TKV_DEFAULT_MAX_BATCH;
    o->readers = TKV_DEFAULT_READERS;
    o->reader_nice = TKV_DEFAULT_READER_NICE;
    o->engine.fsync = TKV_SYNC_ALWAYS;
    o->engine.dir = "tkv-data";
    o->engine.max_memory = tkv_default_max_memory();
    o->repl_backlog = 16u * 1024 * 1024;
    o->repl_timeout = 10.0;
    o->http_port = -1;
}

size_t tkv_default_max_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0)
        return (size_t)1 << 30;
    return (size_t)pages * (size_t)size / 4;
}

const char *tkv_fsync_name(tkv_sync_mode m)
{
    switch (m) {
    case TKV_SYNC_ALWAYS: return "always";
    case TKV_SYNC_EVERYSEC: return "everysec";
    default: return "never";
    }
}

int tkv_fsync_parse(const char *str, tkv_sync_mode *out)
{
    static const tkv_sync_mode modes[] = {TKV_SYNC_ALWAYS, TKV_SYNC_EVERYSEC, TKV_SYNC_NEVER};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(str, tkv_fsync_name(modes[i])) == 0) {
            *out = modes[i];
            return 0;
        }
    }
    return -1;
}
