/*
 * async_libev.c - libtkvclient's async API in a libev loop: writes three
 * versions of a key, then reads each back from the callback of the write
 * before it, and disconnects once every PUT has had its reply, whatever
 * the outcome (a failed PUT must not leave the loop running for ever).
 * Exits 0 if everything succeeded, 1 if anything failed. Usage:
 * tkv-example-async-libev [HOST PORT | -s SOCKET]. Built with the project;
 * see README.md.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tkv/adapters/libev.h>
#include <tkv/async.h>

static const char key[] = "price:widget";

enum { PUTS = 3 };
static int puts_answered; /* PUT callbacks so far, successful or not */
static int failures;      /* commands that did not succeed */

static void on_get(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    uint64_t asof = (uint64_t)(uintptr_t)privdata;
    if (!r || r->status == TKV_ERR) {
        printf("GET as of %" PRIu64 ": error: %s\n", asof, tkv_async_errstr(ac));
        failures++;
    } else if (r->status == TKV_NOT_FOUND)
        printf("GET as of %" PRIu64 ": not found\n", asof);
    else
        printf("GET as of %" PRIu64 ": %.*s (ts %" PRIu64 ")\n", asof, (int)r->version.len,
               (const char *)r->version.value, r->version.ts);
}

static void on_put(tkv_async *ac, const tkv_reply *r, void *privdata)
{
    (void)privdata;
    if (!r || r->status != TKV_OK) {
        printf("PUT: error: %s\n", tkv_async_errstr(ac));
        failures++;
    } else {
        /* A callback may issue the next command: read the version just written. */
        tkv_async_get(ac, key, strlen(key), r->ts, on_get, (void *)(uintptr_t)r->ts);
    }
    /* Counted, not keyed on the last PUT's success: the loop ends even if
     * that one fails. */
    if (++puts_answered == PUTS)
        tkv_async_disconnect(ac); /* after the replies still pending */
}

static void on_connect(tkv_async *ac, int status)
{
    if (status != TKV_OK)
        fprintf(stderr, "connect: %s\n", tkv_async_errstr(ac));
}

static void on_disconnect(tkv_async *ac, int status)
{
    if (status != TKV_OK)
        fprintf(stderr, "disconnected: %s\n", tkv_async_errstr(ac));
    *(int *)tkv_async_data(ac) = status;
}

int main(int argc, char **argv)
{
    tkv_async *ac;
    if (argc > 2 && strcmp(argv[1], "-s") == 0)
        ac = tkv_async_connect_unix(argv[2]);
    else
        ac = tkv_async_connect(argc > 1 ? argv[1] : "127.0.0.1",
                               argc > 2 ? (uint16_t)atoi(argv[2]) : 7379);
    if (!ac || tkv_async_err(ac) != TKV_EK_NONE) {
        fprintf(stderr, "connect: %s\n", tkv_async_errstr(ac));
        tkv_async_free(ac);
        return 2;
    }
    int status = TKV_ERR;
    tkv_async_set_data(ac, &status);
    tkv_async_set_connect_cb(ac, on_connect);
    tkv_async_set_disconnect_cb(ac, on_disconnect);
    struct ev_loop *loop = EV_DEFAULT;
    if (tkv_libev_attach(loop, ac) != TKV_OK) {
        tkv_async_free(ac);
        return 2;
    }
    /* Queued now, sent in one write once the connection is up. */
    tkv_async_put(ac, key, strlen(key), "9.99", 4, 1000, on_put, NULL);
    tkv_async_put(ac, key, strlen(key), "10.49", 5, 2000, on_put, NULL);
    tkv_async_put(ac, key, strlen(key), "8.99", 4, 3000, on_put, NULL);
    ev_run(loop, 0); /* returns when the context is gone: no watcher left */
    return status == TKV_OK && failures == 0 ? 0 : 1;
}
