/*
 * server.h - the tkvd reactor: one libev loop that accepts connections,
 * reads pipelined requests, runs them through the dispatcher, commits the
 * writes of each loop iteration as one LevelDB batch, and only then sends
 * that iteration's replies.
 *
 * tkvd.c turns command-line flags into tkv_server_opts and calls
 * tkv_server_run(); everything else lives in the server library.
 */
#ifndef TKV_SERVER_H
#define TKV_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* Reader threads by default: enough to keep a disk busy while the loop
 * serves, few enough to leave the loop a core on a small machine. */
#define TKV_DEFAULT_READERS 2
#define TKV_DEFAULT_READER_NICE 10

typedef struct tkv_server_opts {
    const char *bind;      /* listen address (IPv4 or IPv6 literal or name) */
    uint16_t port;         /* 0: any free port */
    const char *port_file; /* if set, the bound port is written here when ready */
    uint32_t max_clients;  /* connections served at once */
    size_t max_frame;      /* largest request or reply payload */
    uint32_t max_key;
    uint32_t max_value;
    size_t max_output;           /* unsent reply bytes that get a client dropped */
    size_t output_high_water;    /* unsent bytes above which a client's input waits */
    uint32_t max_pipeline;       /* requests per connection per loop iteration */
    double idle_timeout;         /* seconds without traffic before a client is closed; 0: never */
    const char *requirepass;     /* shared secret, or NULL */
    const char *auth_file;       /* file holding the secret, or NULL */
    bool protected_mode;         /* refuse non-loopback addresses without a secret */
    uint32_t max_batch;          /* items in one MPUT or MGET */
    uint32_t readers;            /* threads reading LevelDB; 0: the loop reads it */
    uint32_t reader_nice;        /* how much nicer than the loop they run (0-19) */
    const char *replica_of_host; /* --replica-of: the primary, or NULL */
    uint16_t replica_of_port;
    size_t repl_backlog;         /* bytes of replication stream kept */
    double repl_timeout;         /* seconds of silence before a link drops */
    const char *cluster;         /* --cluster: etcd endpoints, or NULL: no cluster */
    const char *cluster_name;    /* --cluster-name */
    const char *announce;        /* --announce HOST:PORT, or NULL: bind:port */
    double cluster_timeout;      /* --cluster-timeout: seconds; 0: TKV_CLUSTER_TTL */
    tkv_engine_opts engine;      /* engine.fsync is the --fsync mode */
    int64_t slowlog_slower_than; /* microseconds; < 0: log nothing (slowlog.h) */
    uint32_t slowlog_max_len;    /* entries the slow log keeps */

    /* A cluster node with a fixed map (no etcd). */
    const char *cluster_map; /* --cluster-map: the shard map file, or NULL */
    const char *node_id;     /* --node-id: this node's id in the map */

    /* The HTTP front end (http.h). */
    int32_t http_port;          /* --http-port: -1 off (the default), 0 any free port */
    const char *http_bind;      /* --http-bind, or NULL: the --bind address */
    const char *http_port_file; /* if set, the bound HTTP port is written here */
    /* A Unix domain socket, served besides TCP. */
    const char *unix_path;  /* --unix: its path, or NULL: none */
    uint32_t unix_perm;     /* --unix-perm: the file's mode bits */
    uint32_t tcp_keepalive; /* --tcp-keepalive: idle seconds before probes; 0: off */
} tkv_server_opts;

/* The longest --unix path: sun_path holds 108 bytes with the NUL. */
#define TKV_UNIX_PATH_MAX 108

/* Fills o with the defaults tkvd documents in --help. */
void tkv_server_defaults(tkv_server_opts *o);

/* Runs until SIGINT or SIGTERM. Returns the process exit status: 0 after a
 * clean shutdown, 1 if the server could not start (reason logged). */
int tkv_server_run(const tkv_server_opts *o);

/* A quarter of physical memory: the default --max-memory. */
size_t tkv_default_max_memory(void);

/* The engine's sync modes (engine.h) by their --fsync names. */
const char *tkv_fsync_name(tkv_sync_mode m);
/* Parses "always", "everysec" or "never". Returns 0 or -1. */
int tkv_fsync_parse(const char *s, tkv_sync_mode *out);

#endif
