/*
 * http_int.h - what the files of tkvd's HTTP face share (http.c carries
 * requests to the loop; http_kv.c is the JSON API; http_metrics.c renders
 * /metrics), private to the server library.
 */
#ifndef TKV_HTTP_INT_H
#define TKV_HTTP_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>

#include "buf.h"
#include "http.h"
#include "proto.h"
#include "reply.h"

/* One HTTP request's state across libmicrohttpd's calls. */
typedef struct tkv_http_req {
    tkv_buf body;   /* PUT: the value so far */
    bool keep_body; /* a PUT of /v1/kv/KEY, authorized: its body is the value */
    bool too_big;   /* the body passed --max-value: 413 */
    bool answered;  /* a response was queued */
} tkv_http_req;

/* What a request does with the server's OK or NOT_FOUND reply: queue the
 * response. rep's spans are valid during the call only. */
typedef enum MHD_Result (*tkv_http_on_reply)(struct MHD_Connection *c, const tkv_req *req,
                                             const tkv_rep *rep, void *ctx);

/* Runs req on a channel to the loop (blocking this HTTP thread) and hands
 * the reply to then; answers an error status itself (503 if the loop could
 * not be reached, else the status that fits the server's error). */
enum MHD_Result tkv_http_call(tkv_http *h, struct MHD_Connection *c, const tkv_req *req,
                              tkv_http_on_reply then, void *ctx);

/* Queues j (consumed; NULL: out of memory, a 500) as a JSON response. */
enum MHD_Result tkv_http_send_json(struct MHD_Connection *c, unsigned status, json_t *j);
/* Queues {"error": msg, "code": status}. */
enum MHD_Result tkv_http_error(struct MHD_Connection *c, unsigned status, const char *msg);

/* Queues a 405 {"error": msg, ...} with `Allow: allow`. */
enum MHD_Result tkv_http_not_allowed(struct MHD_Connection *c, const char *allow, const char *msg);

/* /v1/kv/...: path is the URL after "/v1/kv/", still percent-encoded. */
enum MHD_Result tkv_http_kv(tkv_http *h, struct MHD_Connection *c, const char *method,
                            const char *path, uint32_t max_key, const tkv_http_req *r);

/* Appends a STATS reply (rep, decoded) as Prometheus text exposition
 * format 0.0.4 to b. Returns 0, or -1 if out of memory. */
int tkv_http_metrics(tkv_buf *b, const tkv_rep *rep);

#endif
