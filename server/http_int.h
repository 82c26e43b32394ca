/*
 * http_int.h - what http.c shares with http_metrics.c (and the unit test),
 * private to the server library.
 */
#ifndef TKV_HTTP_INT_H
#define TKV_HTTP_INT_H

#include "buf.h"
#include "reply.h"

/* Appends a STATS reply (rep, decoded) as Prometheus text exposition
 * format 0.0.4 to b. Returns 0, or -1 if out of memory. */
int tkv_http_metrics(tkv_buf *b, const tkv_rep *rep);

#endif
