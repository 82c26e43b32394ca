/*
 * tkvd.c - the tkv server's command line: flags in, tkv_server_run() out.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "units.h"
#include "backup.h"
#include "engine.h"
#include "log.h"
#include "store.h"
#include "proto.h"
#include "restore.h"
#include "server.h"
#include "slowlog.h"
#include "sockopt.h"

/* The data directory as an absolute path, so the log and every message say
 * where the data really is; a relative --data-dir (or the default) is taken
 * from the directory tkvd was started in. */
static const char *absolute_dir(const char *dir, char *buf, size_t len)
{
    char cwd[PATH_MAX];
    if (dir[0] == '/' || !getcwd(cwd, sizeof cwd))
        return dir;
    while (dir[0] == '.' && dir[1] == '/')
        dir += 2;
    if (strcmp(dir, ".") == 0)
        dir = "";
    int n = snprintf(buf, len, "%s%s%s", cwd, dir[0] && strcmp(cwd, "/") ? "/" : "", dir);
    return n > 0 && (size_t)n < len ? buf : dir;
}

static void usage(FILE *f, const tkv_server_opts *d)
{
    char abs[PATH_MAX + 64];
    fprintf(f,
            "Usage: tkvd [OPTION]...\n"
            "tkv server: a time-versioned key-value store. Every PUT stores a new version of a\n"
            "key at a 64-bit timestamp; GET answers as of any time.\n"
            "\n"
            "Network:\n"
            "  --bind ADDR          listen address (default %s)\n"
            "  --port N             TCP port, 0 for any free port (default %u)\n"
            "  --port-file PATH     write the bound port to PATH once accepting connections\n"
            "  --max-clients N      connections served at once (default %u)\n"
            "  --timeout SECONDS    close clients idle that long, 0 for never (default 0)\n"
            "  --unix PATH          also listen on a Unix domain socket at PATH (a stale\n"
            "                       one is replaced; removed at a clean shutdown)\n"
            "  --unix-perm OCTAL    the socket file's permission bits (default 0700); the\n"
            "                       file system guards it: --protected-mode does not apply\n"
            "  --tcp-keepalive SECONDS\n"
            "                       TCP keepalive on client connections: a dead peer is\n"
            "                       dropped after about twice that (default 300; 0: off;\n"
            "                       at most 32767)\n"
            "\n"
            "Security:\n"
            "  --requirepass SECRET clients must send AUTH SECRET first (visible in ps:\n"
            "                       prefer --auth-file)\n"
            "  --auth-file PATH     read the secret from the first line of PATH\n"
            "  --protected-mode yes|no\n"
            "                       yes (default): refuse to listen on a non-loopback\n"
            "                       address unless a secret is set\n"
            "\n"
            "Limits:\n"
            "  --max-frame SIZE     largest request or reply frame (default %zu)\n"
            "  --max-key SIZE       longest key, at most 65535 (default %u)\n"
            "  --max-value SIZE     longest value (default %u)\n"
            "  --max-output SIZE    unread reply bytes after which a client is dropped\n"
            "                       (default %zu)\n"
            "  --max-pipeline N     requests served per connection per loop turn (default %u)\n"
            "  --max-batch N        items in one MPUT or MGET (default %u)\n"
            "\n"
            "Storage:\n"
            "  --data-dir DIR       data directory, created if missing; relative to the\n"
            "                       directory tkvd starts in (default ./%s, here\n"
            "                       %s)\n"
            "  --fsync MODE         always: sync every batch before replying (default);\n"
            "                       everysec: sync at least once a second;\n"
            "                       never: leave it to the operating system\n"
            "  --max-memory SIZE    budget of the in-memory index; cold keys are evicted\n"
            "                       from memory (never from disk) beyond it\n"
            "                       (default a quarter of RAM, here %zu)\n"
            "  --block-cache SIZE   LevelDB block cache (default 8mb)\n"
            "  --write-buffer SIZE  writes collect in memory (and tkv's log) up to this\n"
            "                       size, then go to LevelDB as chunks (default a\n"
            "                       quarter of --max-memory, 1mb-32mb; up to twice\n"
            "                       this is held while one is written)\n"
            "  --readers N          threads that read LevelDB, so requests for keys in\n"
            "                       memory never wait behind the disk; 0 reads on the\n"
            "                       event loop (default %u)\n"
            "  --reader-nice N      reader threads run N nice levels below the event\n"
            "                       loop (0-19, default %u): memory's answers go first\n"
            "  --compression MODE   snappy (default) or none: how LevelDB stores tables;\n"
            "                       none reads faster from disk, takes more space\n"
            "  --retain-versions N  keep at most N versions of every key (default all)\n"
            "  --retain-age DURATION\n"
            "                       keep no version older than DURATION (default all);\n"
            "                       the version current at the horizon always stays\n"
            "  --repair             run LevelDB's repair on --data-dir, then exit\n"
            "  --restore FILE       load a backup (tkvctl backup) into --data-dir, which\n"
            "                       must be empty or new, then exit; a damaged or\n"
            "                       truncated FILE is refused before anything is written\n"
            "\n",
            d->bind, d->port, d->max_clients, d->max_frame, d->max_key, d->max_value, d->max_output,
            d->max_pipeline, d->max_batch, d->engine.dir,
            absolute_dir(d->engine.dir, abs, sizeof abs), d->engine.max_memory, d->readers,
            d->reader_nice);
    fputs("Replication:\n"
          "  --replica-of HOST:PORT\n"
          "                       be a read-only replica of that primary (REPLICAOF at\n"
          "                       run time); it presents this server's secret; no: be\n"
          "                       a primary (undoes a config file's)\n"
          "  --repl-backlog SIZE  replication stream kept for replicas that reconnect\n"
          "                       (partial resync) (default 16mb)\n"
          "  --repl-timeout SECONDS\n"
          "                       drop a replication link silent that long (default 10)\n"
          "\n",
          stdout);
    /* Two strings: C99 promises no literal beyond 4095 bytes. */
    fputs("Cluster (see README.md):\n"
          "  --cluster ENDPOINTS  join a cluster whose map etcd holds: etcd's client URLs,\n"
          "                       comma-separated (http://127.0.0.1:2379,...)\n"
          "  --cluster-name NAME  the cluster, under /tkv/NAME/ in etcd (default tkv)\n"
          "  --announce HOST:PORT the address other nodes and clients reach this one at\n"
          "                       (default the --bind address and the port)\n"
          "  --cluster-timeout SECONDS\n"
          "                       a node silent that long (its etcd lease unrenewed) is\n"
          "                       gone: its shard's best replica takes over (default 5)\n"
          "  --cluster-map FILE   without etcd: serve as one node of a cluster whose\n"
          "                       shard map (JSON, see ARCHITECTURE.md) is FILE; keys of\n"
          "                       slots other nodes serve are answered MOVED\n"
          "  --node-id ID         with --cluster-map: this node's id among its \"nodes\"\n"
          "\n"
          "HTTP (off unless --http-port is given; see README.md):\n"
          "  --http-port N        serve /metrics, /healthz, /openapi.json and the JSON\n"
          "                       API /v1/kv/KEY on HTTP port N, 0 for any free port;\n"
          "                       off (the default) undoes a config file's\n"
          "  --http-bind ADDR     its listen address (default the --bind address); the\n"
          "                       protected-mode rule applies; with a secret, requests\n"
          "                       but /healthz need Authorization: Bearer SECRET\n"
          "  --http-port-file PATH\n"
          "                       write the bound HTTP port to PATH once serving\n"
          "Slow log (SLOWLOG):\n"
          "  --slowlog-slower-than US\n"
          "                       log requests taking at least US microseconds; 0 logs\n"
          "                       every request, a negative number none (default 10000)\n"
          "  --slowlog-max-len N  entries the slow log keeps, the oldest go first\n"
          "                       (default 128, at most 1000000)\n"
          "\n"
          "Other:\n"
          "  --log-level LEVEL    debug, info, warn or error (default info)\n"
          "  --log-file PATH      append the log to PATH instead of stderr; SIGHUP\n"
          "                       reopens it (for logrotate)\n"
          "  --config FILE        read flags from FILE, one a line: `name value`, or\n"
          "                       `name` alone (see tkvd(1)); the command line wins,\n"
          "                       also over the file's other of --requirepass and\n"
          "                       --auth-file, or of --cluster and --cluster-map\n"
          "  --help               show this help and exit\n"
          "  --version            show the version and exit\n"
          "\n"
          "SIZE takes a unit: 512kb, 64mb, 1g. DURATION takes units us, ms, s, m, h, d,\n"
          "w (7d, 1h30m). SIGINT or SIGTERM shut down cleanly; SIGHUP reopens the\n"
          "log file and never stops the server.\n",
          f);
}

enum {
    OPT_BIND = 256,
    OPT_PORT,
    OPT_PORT_FILE,
    OPT_MAX_CLIENTS,
    OPT_MAX_FRAME,
    OPT_MAX_KEY,
    OPT_MAX_VALUE,
    OPT_MAX_OUTPUT,
    OPT_MAX_PIPELINE,
    OPT_DATA_DIR,
    OPT_FSYNC,
    OPT_BLOCK_CACHE,
    OPT_WRITE_BUFFER,
    OPT_REPAIR,
    OPT_LOG_LEVEL,
    OPT_HELP,
    OPT_VERSION,
    OPT_CONFIG,
    OPT_MAX_MEMORY,
    OPT_TIMEOUT,
    OPT_REQUIREPASS,
    OPT_AUTH_FILE,
    OPT_PROTECTED,
    OPT_MAX_BATCH,
    OPT_RETAIN_VERSIONS,
    OPT_RETAIN_AGE,
    OPT_COMPRESSION,
    OPT_LOG_FILE,
    OPT_READERS,
    OPT_READER_NICE,
    OPT_RESTORE,
    OPT_REPLICA_OF,
    OPT_REPL_BACKLOG,
    OPT_REPL_TIMEOUT,
    OPT_CLUSTER,
    OPT_CLUSTER_NAME,
    OPT_ANNOUNCE,
    OPT_CLUSTER_MAP,
    OPT_NODE_ID,
    OPT_CLUSTER_TIMEOUT,
    OPT_HTTP_PORT,
    OPT_HTTP_BIND,
    OPT_HTTP_PORT_FILE,
    OPT_UNIX,
    OPT_UNIX_PERM,
    OPT_TCP_KEEPALIVE,
    OPT_SLOWLOG_SLOWER_THAN,
    OPT_SLOWLOG_MAX_LEN,
};

static const struct option long_opts[] = {
    {"bind", required_argument, NULL, OPT_BIND},
    {"port", required_argument, NULL, OPT_PORT},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
    {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
    {"max-key", required_argument, NULL, OPT_MAX_KEY},
    {"max-value", required_argument, NULL, OPT_MAX_VALUE},
    {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
    {"max-pipeline", required_argument, NULL, OPT_MAX_PIPELINE},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"block-cache", required_argument, NULL, OPT_BLOCK_CACHE},
    {"write-buffer", required_argument, NULL, OPT_WRITE_BUFFER},
    {"compression", required_argument, NULL, OPT_COMPRESSION},
    {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"requirepass", required_argument, NULL, OPT_REQUIREPASS},
    {"auth-file", required_argument, NULL, OPT_AUTH_FILE},
    {"protected-mode", required_argument, NULL, OPT_PROTECTED},
    {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
    {"retain-versions", required_argument, NULL, OPT_RETAIN_VERSIONS},
    {"retain-age", required_argument, NULL, OPT_RETAIN_AGE},
    {"repair", no_argument, NULL, OPT_REPAIR},
    {"restore", required_argument, NULL, OPT_RESTORE},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"readers", required_argument, NULL, OPT_READERS},
    {"reader-nice", required_argument, NULL, OPT_READER_NICE},
    {"replica-of", required_argument, NULL, OPT_REPLICA_OF},
    {"repl-backlog", required_argument, NULL, OPT_REPL_BACKLOG},
    {"repl-timeout", required_argument, NULL, OPT_REPL_TIMEOUT},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"cluster-name", required_argument, NULL, OPT_CLUSTER_NAME},
    {"announce", required_argument, NULL, OPT_ANNOUNCE},
    {"cluster-map", required_argument, NULL, OPT_CLUSTER_MAP},
    {"node-id", required_argument, NULL, OPT_NODE_ID},
    {"cluster-timeout", required_argument, NULL, OPT_CLUSTER_TIMEOUT},
    {"http-port", required_argument, NULL, OPT_HTTP_PORT},
    {"http-bind", required_argument, NULL, OPT_HTTP_BIND},
    {"http-port-file", required_argument, NULL, OPT_HTTP_PORT_FILE},
    {"unix", required_argument, NULL, OPT_UNIX},
    {"unix-perm", required_argument, NULL, OPT_UNIX_PERM},
    {"tcp-keepalive", required_argument, NULL, OPT_TCP_KEEPALIVE},
    {"slowlog-slower-than", required_argument, NULL, OPT_SLOWLOG_SLOWER_THAN},
    {"slowlog-max-len", required_argument, NULL, OPT_SLOWLOG_MAX_LEN},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"config", required_argument, NULL, OPT_CONFIG},
    {NULL, 0, NULL, 0},
};

/* "FILE:LINE" while a line of a --config file is applied, so that every
 * complaint about a value names where it was written. */
static char conf_where[PATH_MAX + 32];

static int bad(const char *flag, const char *value, const char *expect)
{
    if (conf_where[0])
        fprintf(stderr, "tkvd: %s: invalid value '%s' for %s: expected %s\n", conf_where, value,
                flag, expect);
    else
        fprintf(stderr, "tkvd: invalid value '%s' for --%s: expected %s\n", value, flag, expect);
    return 2;
}

/* Applies one option. Returns -1 to go on, or an exit status. */
/* What tkvd does instead of serving, if anything. */
typedef struct offline_job {
    bool repair;
    const char *restore; /* a backup file */
} offline_job;

static int apply(int opt, const char *arg, tkv_server_opts *o, offline_job *job,
                 const char **log_file)
{
    uint64_t v;
    tkv_log_level lvl;
    switch (opt) {
    case OPT_BIND: o->bind = arg; break;
    case OPT_PORT:
        if (tkv_parse_uint(arg, 0, 65535, &v) < 0)
            return bad("port", arg, "a port number 0-65535");
        o->port = (uint16_t)v;
        break;
    case OPT_PORT_FILE: o->port_file = arg; break;
    case OPT_MAX_CLIENTS:
        if (tkv_parse_uint(arg, 1, 1000000, &v) < 0)
            return bad("max-clients", arg, "a number 1-1000000");
        o->max_clients = (uint32_t)v;
        break;
    case OPT_MAX_FRAME:
        if (tkv_parse_size(arg, TKV_FRAME_MAX_LIMIT, &v) < 0 || v < 1024)
            return bad("max-frame", arg, "a size from 1kb to 4gb-1");
        o->max_frame = v;
        break;
    case OPT_MAX_KEY:
        if (tkv_parse_size(arg, TKV_KEY_MAX_LIMIT, &v) < 0 || v < 1)
            return bad("max-key", arg, "a size from 1 to 65535");
        o->max_key = (uint32_t)v;
        break;
    case OPT_MAX_VALUE:
        if (tkv_parse_size(arg, TKV_FRAME_MAX_LIMIT, &v) < 0)
            return bad("max-value", arg, "a size below 4gb");
        o->max_value = (uint32_t)v;
        break;
    case OPT_MAX_OUTPUT:
        if (tkv_parse_size(arg, UINT64_MAX, &v) < 0 || v < 1024)
            return bad("max-output", arg, "a size of at least 1kb");
        o->max_output = v;
        break;
    case OPT_MAX_PIPELINE:
        if (tkv_parse_uint(arg, 1, 1000000, &v) < 0)
            return bad("max-pipeline", arg, "a number 1-1000000");
        o->max_pipeline = (uint32_t)v;
        break;
    case OPT_DATA_DIR: o->engine.dir = arg; break;
    case OPT_FSYNC:
        if (tkv_fsync_parse(arg, &o->engine.fsync) < 0)
            return bad("fsync", arg, "always, everysec or never");
        break;
    case OPT_BLOCK_CACHE:
        if (tkv_parse_size(arg, UINT64_MAX, &v) < 0)
            return bad("block-cache", arg, "a size such as 64mb");
        o->engine.block_cache = v;
        break;
    case OPT_WRITE_BUFFER:
        if (tkv_parse_size(arg, (uint64_t)1 << 40, &v) < 0 || v < 4096)
            return bad("write-buffer", arg, "a size of at least 4kb, such as 32mb");
        o->engine.write_buffer = v;
        break;
    case OPT_COMPRESSION:
        if (strcmp(arg, "snappy") == 0)
            o->engine.no_compression = false;
        else if (strcmp(arg, "none") == 0)
            o->engine.no_compression = true;
        else
            return bad("compression", arg, "snappy or none");
        break;
    case OPT_MAX_MEMORY:
        if (tkv_parse_size(arg, UINT64_MAX, &v) < 0 || v < 64 * 1024)
            return bad("max-memory", arg, "a size of at least 64kb, such as 512mb");
        o->engine.max_memory = v;
        break;
    case OPT_TIMEOUT:
        if (tkv_parse_uint(arg, 0, 100000000, &v) < 0)
            return bad("timeout", arg, "a number of seconds, 0 for never");
        o->idle_timeout = (double)v;
        break;
    case OPT_REQUIREPASS:
        if (!*arg)
            return bad("requirepass", arg, "a non-empty secret");
        o->requirepass = arg;
        break;
    case OPT_AUTH_FILE: o->auth_file = arg; break;
    case OPT_PROTECTED:
        if (strcmp(arg, "yes") != 0 && strcmp(arg, "no") != 0)
            return bad("protected-mode", arg, "yes or no");
        o->protected_mode = strcmp(arg, "yes") == 0;
        break;
    case OPT_READERS:
        if (tkv_parse_uint(arg, 0, 64, &v) < 0)
            return bad("readers", arg, "a number of threads 0-64");
        o->readers = (uint32_t)v;
        break;
    case OPT_READER_NICE:
        if (tkv_parse_uint(arg, 0, 19, &v) < 0)
            return bad("reader-nice", arg, "a nice increment 0-19");
        o->reader_nice = (uint32_t)v;
        break;
    case OPT_MAX_BATCH:
        if (tkv_parse_uint(arg, 1, 1000000, &v) < 0)
            return bad("max-batch", arg, "a number 1-1000000");
        o->max_batch = (uint32_t)v;
        break;
    case OPT_RETAIN_VERSIONS:
        if (tkv_parse_uint(arg, 1, UINT32_MAX, &v) < 0)
            return bad("retain-versions", arg, "a number of versions, at least 1");
        o->engine.retain.versions = (uint32_t)v;
        break;
    case OPT_RETAIN_AGE:
        if (tkv_parse_duration(arg, &v) < 0 || v == 0)
            return bad("retain-age", arg, "a duration such as 7d or 12h");
        o->engine.retain.age_us = v;
        break;
    case OPT_REPLICA_OF: {
        /* HOST:PORT; the last colon splits, so an IPv6 literal in brackets
         * works too. "no" undoes a config file's: a primary. */
        static char host[256];
        if (strcmp(arg, "no") == 0) {
            o->replica_of_host = NULL;
            o->replica_of_port = 0;
            break;
        }
        const char *colon = strrchr(arg, ':');
        if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof host ||
            tkv_parse_uint(colon + 1, 1, 65535, &v) < 0)
            return bad("replica-of", arg, "HOST:PORT, or no");
        size_t n = (size_t)(colon - arg);
        if (arg[0] == '[' && n > 2 && arg[n - 1] == ']') {
            arg++;
            n -= 2;
        }
        memcpy(host, arg, n);
        host[n] = '\0';
        o->replica_of_host = host;
        o->replica_of_port = (uint16_t)v;
        break;
    }
    case OPT_REPL_BACKLOG:
        if (tkv_parse_size(arg, UINT64_MAX, &v) < 0 || v < 16 * 1024)
            return bad("repl-backlog", arg, "a size of at least 16kb");
        o->repl_backlog = v;
        break;
    case OPT_REPL_TIMEOUT:
        if (tkv_parse_uint(arg, 1, 100000, &v) < 0)
            return bad("repl-timeout", arg, "a number of seconds, at least 1");
        o->repl_timeout = (double)v;
        break;
    case OPT_CLUSTER:
        if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)
            return bad("cluster", arg, "etcd URLs such as http://127.0.0.1:2379, comma-separated");
        o->cluster = arg;
        break;
    case OPT_CLUSTER_NAME:
        /* It becomes part of etcd keys: no '/' to break the layout. */
        if (!*arg || strlen(arg) > 64 ||
            strspn(arg, "abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(arg))
            return bad("cluster-name", arg, "1-64 letters, digits, '-', '_' or '.'");
        o->cluster_name = arg;
        break;
    case OPT_ANNOUNCE: {
        const char *colon = strrchr(arg, ':');
        if (!colon || colon == arg || strlen(arg) > 300 ||
            tkv_parse_uint(colon + 1, 1, 65535, &v) < 0)
            return bad("announce", arg, "HOST:PORT");
        o->announce = arg;
        break;
    }
    case OPT_CLUSTER_MAP: o->cluster_map = arg; break;
    case OPT_CLUSTER_TIMEOUT:
        /* etcd refuses leases shorter than about two seconds. */
        if (tkv_parse_uint(arg, 2, 3600, &v) < 0)
            return bad("cluster-timeout", arg, "a number of seconds, 2 to 3600");
        o->cluster_timeout = (double)v;
        break;
    case OPT_NODE_ID:
        if (!arg[0])
            return bad("node-id", arg, "a node id from the cluster map");
        o->node_id = arg;
        break;
    case OPT_HTTP_PORT:
        /* "off" undoes a config file's http-port. */
        if (strcmp(arg, "off") == 0) {
            o->http_port = -1;
            break;
        }
        if (tkv_parse_uint(arg, 0, 65535, &v) < 0)
            return bad("http-port", arg, "a port number 0-65535, or off");
        o->http_port = (int32_t)v;
        break;
    case OPT_HTTP_BIND: o->http_bind = arg; break;
    case OPT_HTTP_PORT_FILE: o->http_port_file = arg; break;
    case OPT_UNIX:
        if (!arg[0] || strlen(arg) >= TKV_UNIX_PATH_MAX)
            return bad("unix", arg, "a socket path of 1 to 107 bytes");
        o->unix_path = arg;
        break;
    case OPT_UNIX_PERM: {
        char *end;
        errno = 0;
        unsigned long m = strtoul(arg, &end, 8);
        if (errno || end == arg || *end || m > 0777)
            return bad("unix-perm", arg, "octal permission bits 0-0777 (0700, 770)");
        o->unix_perm = (uint32_t)m;
        break;
    }
    case OPT_TCP_KEEPALIVE:
        /* Linux caps TCP_KEEPIDLE at 32767: more would fail on every accept. */
        if (tkv_parse_uint(arg, 0, TKV_KEEPALIVE_MAX, &v) < 0)
            return bad("tcp-keepalive", arg, "seconds 0-32767 (0: off)");
        o->tcp_keepalive = (uint32_t)v;
        break;
    case OPT_SLOWLOG_SLOWER_THAN:
        /* Redis's convention: any negative number turns the log off. */
        if (tkv_parse_uint(arg[0] == '-' ? arg + 1 : arg, 0, INT64_MAX, &v) < 0)
            return bad("slowlog-slower-than", arg, "microseconds, or a negative number for none");
        o->slowlog_slower_than = arg[0] == '-' && v > 0 ? -1 : (int64_t)v;
        break;
    case OPT_SLOWLOG_MAX_LEN:
        if (tkv_parse_uint(arg, 0, TKV_SLOWLOG_MAX_LEN_LIMIT, &v) < 0)
            return bad("slowlog-max-len", arg, "a number 0-1000000");
        o->slowlog_max_len = (uint32_t)v;
        break;
    case OPT_REPAIR: job->repair = true; break;
    case OPT_RESTORE: job->restore = arg; break;
    case OPT_LOG_FILE: *log_file = arg; break;
    case OPT_LOG_LEVEL:
        if (tkv_log_parse_level(arg, &lvl) < 0)
            return bad("log-level", arg, "debug, info, warn or error");
        tkv_log_set_level(lvl);
        break;
    case OPT_HELP: {
        tkv_server_opts d;
        tkv_server_defaults(&d);
        usage(stdout, &d);
        return 0;
    }
    case OPT_VERSION: printf("tkvd %s\n", TKV_VERSION_STRING); return 0;
    default: fprintf(stderr, "Try 'tkvd --help' for more information.\n"); return 2;
    }
    return -1;
}

/* ---- --config FILE --------------------------------------------------------
 *
 * A config file holds long flags, one a line, Redis style:
 *
 *     # comment
 *     port 7379
 *     data-dir /var/lib/tkv
 *     requirepass "two words"
 *
 * Each line goes through getopt_long with the very table of the command
 * line, as `--name value`, so every flag works in a file with no code of its
 * own. The file is applied first and the command line after it, so a flag
 * given on the command line wins wherever --config stands. Values are one
 * word, or quoted: "..." (with \" and \\) or '...' (literal). */

/* Actions rather than settings: in a file they would make every start of a
 * service repair, restore or print help instead of serving. */
static const char *const not_in_file[] = {"config", "help", "version", "repair", "restore"};

#define CONF_MAX (1u << 20) /* a config file is small: refuse anything bigger */

/* Splits a line in place into its name and value (NULL when the flag stands
 * alone; *name NULL for a blank or comment line). Returns NULL, or what is
 * wrong with the line. */
static const char *conf_split(char *p, char **name, char **value)
{
    *name = *value = NULL;
    p += strspn(p, " \t");
    if (!*p || *p == '#')
        return NULL;
    *name = p;
    p += strcspn(p, " \t");
    if (*p)
        *p++ = '\0';
    p += strspn(p, " \t");
    if (!*p || *p == '#')
        return NULL;
    char *out = p;
    *value = p;
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        for (; *p != q; *out++ = *p++) {
            if (!*p)
                return "unterminated quote";
            if (q == '"' && p[0] == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
        }
        p++;
    } else {
        p += strcspn(p, " \t");
        out = p;
    }
    p += strspn(p, " \t");
    if (*p && *p != '#')
        return "more than one value (quote a value that has spaces)";
    *out = '\0';
    return NULL;
}

/* Applies one `name value` through getopt_long. Returns -1 to go on, or an
 * exit status after saying what is wrong. */
static int conf_apply(char *name, char *value, tkv_server_opts *o, offline_job *job,
                      const char **log_file)
{
    for (size_t i = 0; i < sizeof not_in_file / sizeof *not_in_file; i++) {
        if (strcmp(name, not_in_file[i]) == 0) {
            fprintf(stderr,
                    "tkvd: %s: '%s' is an action, not a setting: give --%s on the "
                    "command line\n",
                    conf_where, name, name);
            return 2;
        }
    }
    char flag[128];
    int n = snprintf(flag, sizeof flag, "--%s", name);
    /* '=' would smuggle a value into the name; getopt's prefixes are for
     * typing, a file spells names out (checked below). */
    if (n < 0 || (size_t)n >= sizeof flag || name[0] == '-' || strchr(name, '=')) {
        fprintf(stderr, "tkvd: %s: unknown option '%s'\n", conf_where, name);
        return 2;
    }
    static char prog[] = "tkvd";
    char *argv[] = {prog, flag, value, NULL};
    int argc = value ? 3 : 2, idx = -1;
    optind = 0; /* glibc: start a new scan */
    opterr = 0;
    int opt = getopt_long(argc, argv, ":", long_opts, &idx);
    if (opt == '?' || (opt != ':' && (idx < 0 || strcmp(long_opts[idx].name, name) != 0))) {
        fprintf(stderr, "tkvd: %s: unknown option '%s'\n", conf_where, name);
        return 2;
    }
    if (opt == ':') {
        fprintf(stderr, "tkvd: %s: '%s' needs a value\n", conf_where, name);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "tkvd: %s: '%s' takes no value\n", conf_where, name);
        return 2;
    }
    return apply(opt, optarg, o, job, log_file);
}

/* The config file's text: the options keep pointers into it, so it lives
 * as long as the process. */
static char *conf_text;

/* Reads path whole into conf_text and applies its lines in order. Returns
 * -1 to go on, or an exit status. */
static int conf_load(const char *path, tkv_server_opts *o, offline_job *job, const char **log_file)
{
    FILE *f = fopen(path, "r");
    char *buf = f ? malloc(CONF_MAX + 1) : NULL;
    size_t len = buf ? fread(buf, 1, CONF_MAX + 1, f) : 0;
    int err = f && ferror(f);
    if (!f || !buf || err || len > CONF_MAX) {
        fprintf(stderr, "tkvd: cannot read config file %s: %s\n", path,
                !f || err ? strerror(errno)
                : !buf    ? "out of memory"
                          : "larger than 1mb");
        if (f)
            fclose(f);
        free(buf);
        return 1;
    }
    fclose(f);
    buf[len] = '\0';
    conf_text = buf;
    unsigned line = 0;
    /* Bounded by len, not by a NUL: one in the file would otherwise end it
     * silently there, dropping every line after it. */
    for (char *p = buf, *end = buf + len, *next; p < end; p = next) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        next = nl ? nl + 1 : end;
        size_t n = (size_t)((nl ? nl : end) - p);
        snprintf(conf_where, sizeof conf_where, "%s:%u", path, line);
        if (memchr(p, '\0', n)) {
            fprintf(stderr, "tkvd: %s: NUL byte\n", conf_where);
            return 2;
        }
        p[n] = '\0';
        if (n && p[n - 1] == '\r')
            p[n - 1] = '\0';
        char *name, *value;
        const char *why = conf_split(p, &name, &value);
        if (why) {
            fprintf(stderr, "tkvd: %s: %s\n", conf_where, why);
            return 2;
        }
        int rc = name ? conf_apply(name, value, o, job, log_file) : -1;
        if (rc >= 0)
            return rc;
    }
    conf_where[0] = '\0';
    return -1;
}

/* Options from the config file (if --config names one), then from the
 * command line. Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, tkv_server_opts *o, offline_job *job,
                      const char **log_file)
{
    const char *config = NULL;
    int opt;
    opterr = 0; /* the second pass reports what is wrong */
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (opt != OPT_CONFIG)
            continue;
        if (config) {
            fprintf(stderr, "tkvd: --config given twice\n");
            return 2;
        }
        config = optarg;
    }
    if (config) {
        int rc = conf_load(config, o, job, log_file);
        if (rc >= 0)
            return rc;
    }
    optind = 0;
    opterr = 1;
    /* Pairs of which the server uses one (it prefers auth-file to
     * requirepass, and refuses cluster with cluster-map): one given here
     * replaces the file's other, so the command line wins. Only the file's
     * value is cleared: both given here are treated as before. */
    const tkv_server_opts file = *o;
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_REQUIREPASS:
            if (o->auth_file == file.auth_file)
                o->auth_file = NULL;
            break;
        case OPT_AUTH_FILE:
            if (o->requirepass == file.requirepass)
                o->requirepass = NULL;
            break;
        case OPT_CLUSTER:
            if (o->cluster_map == file.cluster_map)
                o->cluster_map = NULL;
            if (o->node_id == file.node_id)
                o->node_id = NULL;
            break;
        case OPT_CLUSTER_MAP:
        case OPT_NODE_ID:
            if (o->cluster == file.cluster)
                o->cluster = NULL;
            break;
        default: break;
        }
        int rc = opt == OPT_CONFIG ? -1 : apply(opt, optarg, o, job, log_file);
        if (rc >= 0)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "tkvd: unexpected argument '%s'\nTry 'tkvd --help'.\n", argv[optind]);
        return 2;
    }
    return -1;
}

static int check(const tkv_server_opts *o)
{
    /* A SCAN reply holds at least one key and the cursor, which repeats a
     * key: two of the longest must fit one frame. */
    if (o->max_value > o->max_frame - TKV_REPLY_SLACK ||
        2 * (uint64_t)o->max_key > o->max_frame - 2 * TKV_REPLY_SLACK) {
        fprintf(stderr,
                "tkvd: --max-value, and twice --max-key, must leave room in --max-frame (%zu)\n",
                o->max_frame);
        return 2;
    }
    if (!o->cluster_map != !o->node_id) {
        fprintf(stderr, "tkvd: --cluster-map and --node-id go together\n");
        return 2;
    }
    if (o->cluster_map && o->cluster) {
        fprintf(stderr, "tkvd: --cluster-map is a map without etcd; --cluster takes it from "
                        "etcd: give one\n");
        return 2;
    }
    return -1;
}

static int restore(const tkv_server_opts *o, const char *file)
{
    char err[1024];
    tkv_restore_info r;
    if (tkv_restore_offline(&o->engine, file, o->max_key, o->max_value, &r, err, sizeof err) < 0) {
        tkv_error("restore: %s", err);
        return 1;
    }
    char hex[2 * TKV_SHA256_LEN + 1];
    tkv_bk_hex(r.digest, hex);
    tkv_info("restored %llu keys and %llu versions from %s into %s", (unsigned long long)r.keys,
             (unsigned long long)r.versions, file, o->engine.dir);
    tkv_info("backup taken at %llu; its digest (tkvctl digest --at %lluus): %s",
             (unsigned long long)r.at, (unsigned long long)r.at, hex);
    return 0;
}

static int run(int argc, char **argv)
{
    tkv_server_opts o;
    tkv_server_defaults(&o);
    offline_job job = {0};
    const char *log_file = NULL;
    int rc = parse_args(argc, argv, &o, &job, &log_file);
    if (rc >= 0)
        return rc;
    rc = check(&o);
    if (rc >= 0)
        return rc;
    char abs[PATH_MAX + 64];
    o.engine.dir = absolute_dir(o.engine.dir, abs, sizeof abs);
    if (log_file && tkv_log_open(log_file) < 0) {
        fprintf(stderr, "tkvd: cannot open log file %s: %s\n", log_file, strerror(errno));
        return 1;
    }
    if (!tkv_store_is_persistent())
        tkv_warn("THIS tkvd USES THE MEMORY STORE (-Dstore=memory), FOR TESTS ONLY: NO DATA "
                 "OUTLIVES IT");
    if (job.restore && job.repair) {
        fprintf(stderr, "tkvd: --restore and --repair do not go together\n");
        return 2;
    }
    if (job.restore)
        return restore(&o, job.restore);
    if (job.repair) {
        char err[512];
        if (tkv_engine_repair(o.engine.dir, err, sizeof err) < 0) {
            tkv_error("%s", err);
            return 1;
        }
        tkv_info("repaired the database in %s", o.engine.dir);
        return 0;
    }
    return tkv_server_run(&o);
}

int main(int argc, char **argv)
{
    int rc = run(argc, argv);
    free(conf_text); /* the options pointed into it until now */
    return rc;
}
