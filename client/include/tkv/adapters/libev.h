/*
 * tkv/adapters/libev.h - runs a tkv_async context (tkv/async.h) in a libev
 * loop. Header-only, as hiredis's adapters/libev.h: include it, link
 * libev, and call tkv_libev_attach() once per context, before running
 * the loop. The adapter's state is freed by the context's cleanup hook,
 * when the context goes.
 */
#ifndef TKV_ADAPTERS_LIBEV_H
#define TKV_ADAPTERS_LIBEV_H

#include <ev.h>
#include <stdlib.h>

#include "tkv/async.h"

/* Builds of libev with EV_MULTIPLICITY=0 have one loop and no loop
 * argument: EV_P/EV_A (ev.h's own macros) hide the difference, and
 * TKV_LIBEV_A(e) passes the loop kept in e where there is one. */
typedef struct tkv_libev {
#if EV_MULTIPLICITY
    struct ev_loop *loop;
#define TKV_LIBEV_A(e) (e)->loop,
#else
#define TKV_LIBEV_A(e)
#endif
    tkv_async *ac;
    ev_io rev, wev;
} tkv_libev;

static inline void tkv_libev_on_read(EV_P_ ev_io *w, int revents)
{
#if EV_MULTIPLICITY
    (void)EV_A;
#endif
    (void)revents;
    tkv_async_handle_read(((tkv_libev *)w->data)->ac);
}

static inline void tkv_libev_on_write(EV_P_ ev_io *w, int revents)
{
#if EV_MULTIPLICITY
    (void)EV_A;
#endif
    (void)revents;
    tkv_async_handle_write(((tkv_libev *)w->data)->ac);
}

/* ev_io_set() each time: while connecting, the context may replace the
 * socket under the same descriptor number (the host's next address), and
 * libev registers it again only for a watcher set anew. */
static inline void tkv_libev_add_read(void *p)
{
    tkv_libev *e = (tkv_libev *)p;
    ev_io_set(&e->rev, tkv_async_fd(e->ac), EV_READ);
    ev_io_start(TKV_LIBEV_A(e) & e->rev);
}

static inline void tkv_libev_del_read(void *p)
{
    tkv_libev *e = (tkv_libev *)p;
    ev_io_stop(TKV_LIBEV_A(e) & e->rev);
}

static inline void tkv_libev_add_write(void *p)
{
    tkv_libev *e = (tkv_libev *)p;
    ev_io_set(&e->wev, tkv_async_fd(e->ac), EV_WRITE);
    ev_io_start(TKV_LIBEV_A(e) & e->wev);
}

static inline void tkv_libev_del_write(void *p)
{
    tkv_libev *e = (tkv_libev *)p;
    ev_io_stop(TKV_LIBEV_A(e) & e->wev);
}

static inline void tkv_libev_cleanup(void *p)
{
    tkv_libev *e = (tkv_libev *)p;
    ev_io_stop(TKV_LIBEV_A(e) & e->rev);
    ev_io_stop(TKV_LIBEV_A(e) & e->wev);
    free(e);
}

/* Attaches ac to loop (no loop argument with EV_MULTIPLICITY=0: call
 * tkv_libev_attach(EV_DEFAULT_ ac) to be portable). TKV_OK, or TKV_ERR: a
 * context without a socket (its connect failed at once), one attached
 * already, or no memory. */
static inline int tkv_libev_attach(EV_P_ tkv_async *ac)
{
    int fd = tkv_async_fd(ac);
    if (fd < 0)
        return TKV_ERR;
    tkv_libev *e = (tkv_libev *)calloc(1, sizeof *e);
    if (!e)
        return TKV_ERR;
#if EV_MULTIPLICITY
    e->loop = EV_A;
#endif
    e->ac = ac;
    ev_io_init(&e->rev, tkv_libev_on_read, fd, EV_READ);
    ev_io_init(&e->wev, tkv_libev_on_write, fd, EV_WRITE);
    e->rev.data = e->wev.data = e;
    tkv_async_hooks hooks = {.data = e,
                             .add_read = tkv_libev_add_read,
                             .del_read = tkv_libev_del_read,
                             .add_write = tkv_libev_add_write,
                             .del_write = tkv_libev_del_write,
                             .cleanup = tkv_libev_cleanup};
    if (tkv_async_set_hooks(ac, &hooks) != TKV_OK) {
        free(e);
        return TKV_ERR;
    }
    return TKV_OK;
}

#endif
