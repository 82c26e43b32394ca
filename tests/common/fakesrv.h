/*
 * fakesrv.h - a scripted stand-in for tkvd, for testing clients of
 * commands a real server cannot answer yet (or answers only in a setup
 * too heavy for a unit test, such as a primary with replicas).
 *
 * It listens on a free port of 127.0.0.1, takes one connection, and
 * answers each request frame with the next reply of its script (written
 * beforehand with protocol/reply.h's encoders, so the bytes are tkvd's),
 * after an optional delay. It keeps every request it got, for the test to
 * parse and check. A client that never connects, or stops sending, ends
 * the serving thread after a few seconds, never the test.
 */
#ifndef TKV_TEST_FAKESRV_H
#define TKV_TEST_FAKESRV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

#define FAKE_MAX 16

typedef struct fakesrv {
    int lfd;
    uint16_t port;
    pthread_t th;
    tkv_buf replies[FAKE_MAX]; /* whole frames, one per request */
    int delay_ms[FAKE_MAX];    /* before each reply */
    int n;                     /* replies scripted */
    tkv_buf got[FAKE_MAX];     /* each request's payload */
    int ngot;                  /* requests received */
    bool listening;            /* lfd is open */
    bool started;              /* the thread runs */
} fakesrv;

/* Prepares f and binds its port (f->port); script replies, then start. */
void fake_init(fakesrv *f);
/* The buffer for the next scripted reply: append one whole frame to it. */
tkv_buf *fake_reply(fakesrv *f, int delay_ms);
/* Starts serving the script on another thread. */
void fake_start(fakesrv *f);
/* Waits for the thread to end (the client closed, or gave up), frees
 * everything but the requests received; returns how many there were. */
int fake_finish(fakesrv *f);
/* Parses request i (asserting it parses) into *req; its spans point into
 * f, valid until fake_free. */
void fake_request(fakesrv *f, int i, tkv_req *req);
/* fake_finish, and frees the requests; a zeroed f is fine. */
void fake_free(fakesrv *f);

#endif
