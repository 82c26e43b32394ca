/*
 * etcd_proc.h - a private etcd for the cluster tests: one member on two
 * free loopback ports in a temporary directory, its output kept in a log
 * shown on failure, stopped by its pid.
 */
#ifndef TKV_TEST_ETCD_PROC_H
#define TKV_TEST_ETCD_PROC_H

#include <sys/types.h>

typedef struct etcd_proc {
    pid_t pid; /* 0: not running */
    char *dir;
    char url[64]; /* its client URL, http://127.0.0.1:PORT */
} etcd_proc;

/* A port free right now on 127.0.0.1 (the kernel's pick; another process
 * could take it before it is used). */
int free_port(void);

/* Starts etcd ($ETCD; the test fails, never skips, without it) and waits,
 * polling, until it answers a range request. */
void etcd_start(etcd_proc *e);

/* etcd's output so far (malloc'd). */
char *etcd_log(const etcd_proc *e);

/* SIGTERM, reaped, and the directory removed. Safe to call twice. */
void etcd_stop(etcd_proc *e);

#endif
