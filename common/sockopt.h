/*
 * sockopt.h - socket options tkvd and libtkvclient both set, in one place
 * so that the two ends agree on what "keepalive N" means.
 */
#ifndef TKV_SOCKOPT_H
#define TKV_SOCKOPT_H

/* The largest idle time Linux takes (TCP_KEEPIDLE is capped at 32767 s):
 * both ends refuse more up front rather than fail at setsockopt(). */
#define TKV_KEEPALIVE_MAX 32767

/* TCP keepalive as Redis sets it (anetKeepAlive): the first probe after
 * `seconds` idle, then one every seconds/3, and the connection is dropped
 * after 3 unanswered probes - a dead peer is noticed in about twice the
 * idle time. seconds <= 0 turns keepalive off. 0, or -1 with errno. */
int tkv_sock_keepalive(int fd, int seconds);

#endif
