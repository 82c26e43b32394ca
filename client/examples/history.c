/*
 * history.c - a small libtkvclient program: records a price history and
 * reads it back as of several times. Built with the project; see README.md.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tkv/client.h>

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    uint16_t port = argc > 2 ? (uint16_t)atoi(argv[2]) : 7379;
    tkv_ctx *c = tkv_connect(host, port, 5000);
    if (!c || tkv_err(c) != TKV_EK_NONE) {
        fprintf(stderr, "connect: %s\n", tkv_errstr(c));
        tkv_free(c);
        return 2;
    }
    /* Three versions of one key, at explicit times. */
    const char *key = "price:widget";
    tkv_put(c, key, strlen(key), "9.99", 4, 1000, NULL);
    tkv_put(c, key, strlen(key), "10.49", 5, 2000, NULL);
    tkv_put(c, key, strlen(key), "8.99", 4, 3000, NULL);

    /* What was the price as of each time? */
    uint64_t times[] = {500, 1000, 2500, TKV_LATEST};
    for (size_t i = 0; i < 4; i++) {
        tkv_version v;
        int rc = tkv_get(c, key, strlen(key), times[i], &v);
        if (rc == TKV_OK)
            printf("as of %" PRIu64 ": %.*s (since %" PRIu64 ")\n", times[i], (int)v.len,
                   (const char *)v.value, v.ts);
        else if (rc == TKV_NOT_FOUND)
            printf("as of %" PRIu64 ": no price yet\n", times[i]);
        else
            fprintf(stderr, "get: %s\n", tkv_errstr(c));
    }

    /* Pipelining: queue many requests, then read the replies in order. */
    for (uint64_t t = 4000; t < 4100; t++)
        tkv_append_put(c, key, strlen(key), "9.49", 4, t);
    for (int i = 0; i < 100; i++) {
        tkv_reply r;
        if (tkv_read_reply(c, &r) != TKV_OK)
            fprintf(stderr, "put: %s\n", tkv_errstr(c));
    }

    const tkv_entry *e;
    size_t n;
    tkv_range_opts o = {.limit = 3, .reverse = 1};
    if (tkv_range(c, key, strlen(key), &o, &e, &n, NULL) == TKV_OK)
        for (size_t i = 0; i < n; i++)
            printf("%" PRIu64 "\t%.*s\n", e[i].ts, (int)e[i].len, (const char *)e[i].value);
    tkv_free(c);
    return 0;
}
