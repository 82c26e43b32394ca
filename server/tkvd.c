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
            "  --readers N          threads that read LevelDB, so requests for keys in\n"
            "                       memory never wait behind the disk; 0 reads on the\n"
            "                       event loop (default %u)\n"
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
            "\n"
            "Replication:\n"
            "  --replica-of HOST:PORT\n"
            "                       be a read-only replica of that primary (REPLICAOF at\n"
            "                       run time); it presents this server's secret\n"
            "  --repl-backlog SIZE  replication stream kept for replicas that reconnect\n"
            "                       (partial resync) (default 16mb)\n"
            "  --repl-timeout SECONDS\n"
            "                       drop a replication link silent that long (default 10)\n"
            "\n",
            d->bind, d->port, d->max_clients, d->max_frame, d->max_key, d->max_value, d->max_output,
            d->max_pipeline, d->max_batch, d->engine.dir,
            absolute_dir(d->engine.dir, abs, sizeof abs), d->engine.max_memory, d->readers);
    /* Two strings: C99 promises no literal beyond 4095 bytes. */
    fputs("Cluster (in progress: see README.md):\n"
          "  --cluster ENDPOINTS  join a cluster whose map etcd holds: etcd's client URLs,\n"
          "                       comma-separated (http://127.0.0.1:2379,...)\n"
          "  --cluster-name NAME  the cluster, under /tkv/NAME/ in etcd (default tkv)\n"
          "  --announce HOST:PORT the address other nodes and clients reach this one at\n"
          "                       (default the --bind address and the port)\n"
          "  --cluster-map FILE   without etcd: serve as one node of a cluster whose\n"
          "                       shard map (JSON, see ARCHITECTURE.md) is FILE; keys of\n"
          "                       slots other nodes serve are answered MOVED\n"
          "  --node-id ID         with --cluster-map: this node's id among its \"nodes\"\n"
          "\n"
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
    OPT_REPAIR,
    OPT_LOG_LEVEL,
    OPT_HELP,
    OPT_VERSION,
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
    OPT_RESTORE,
    OPT_REPLICA_OF,
    OPT_REPL_BACKLOG,
    OPT_REPL_TIMEOUT,
    OPT_CLUSTER,
    OPT_CLUSTER_NAME,
    OPT_ANNOUNCE,
    OPT_CLUSTER_MAP,
    OPT_NODE_ID,
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
    {"replica-of", required_argument, NULL, OPT_REPLICA_OF},
    {"repl-backlog", required_argument, NULL, OPT_REPL_BACKLOG},
    {"repl-timeout", required_argument, NULL, OPT_REPL_TIMEOUT},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"cluster-name", required_argument, NULL, OPT_CLUSTER_NAME},
    {"announce", required_argument, NULL, OPT_ANNOUNCE},
    {"cluster-map", required_argument, NULL, OPT_CLUSTER_MAP},
    {"node-id", required_argument, NULL, OPT_NODE_ID},
    {"slowlog-slower-than", required_argument, NULL, OPT_SLOWLOG_SLOWER_THAN},
    {"slowlog-max-len", required_argument, NULL, OPT_SLOWLOG_MAX_LEN},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int bad(const char *flag, const char *value, const char *expect)
{
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
         * works too. */
        static char host[256];
        const char *colon = strrchr(arg, ':');
        if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof host ||
            tkv_parse_uint(colon + 1, 1, 65535, &v) < 0)
            return bad("replica-of", arg, "HOST:PORT");
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
    case OPT_NODE_ID:
        if (!arg[0])
            return bad("node-id", arg, "a node id from the cluster map");
        o->node_id = arg;
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

int main(int argc, char **argv)
{
    tkv_server_opts o;
    tkv_server_defaults(&o);
    offline_job job = {0};
    const char *log_file = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        int rc = apply(opt, optarg, &o, &job, &log_file);
        if (rc >= 0)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "tkvd: unexpected argument '%s'\nTry 'tkvd --help'.\n", argv[optind]);
        return 2;
    }
    int rc = check(&o);
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
