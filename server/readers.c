/*
 * readers.c - implements readers.h: a fixed pool of threads, one queue of
 * loads to run and one of loads run, each under the pool's mutex; the loop
 * is woken by an ev_async, which libev coalesces, so a burst of finished
 * loads costs one wake-up.
 */
#include "readers.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

struct tkv_reader_job {
    tkv_eng_load *l;
    void *cookie;
    tkv_reader_job *next;
};

struct tkv_readers {
    struct ev_loop *loop;
    tkv_engine *e;
    tkv_readers_done_fn done;
    void *ctx;
    ev_async wake;
    pthread_t *th;
    unsigned n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tkv_reader_job *todo, *todo_tail; /* FIFO: loads to run */
    tkv_reader_job *ran;              /* loads run, for the loop */
    bool quit;
    unsigned pending; /* loop thread only */
    int nice;         /* added to the readers' nice value */
};

static void *reader_main(void *arg)
{
    tkv_readers *r = arg;
    pthread_setname_np(pthread_self(), "tkv-reader");
    if (r->nice > 0) {
        /* Below the loop: on a machine with fewer cores than runnable
         * threads, the loop - which answers everything memory holds - runs
         * first, and a disk read waits instead of a memory read. Linux
         * sets a thread's own nice value this way; raising it needs no
         * privilege, and if it fails the reader runs at the loop's. */
        int cur = getpriority(PRIO_PROCESS, (id_t)gettid());
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), cur + r->nice);
    }
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->quit && !r->todo)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->quit)
            break;
        tkv_reader_job *j = r->todo;
        r->todo = j->next;
        if (!r->todo)
            r->todo_tail = NULL;
        pthread_mutex_unlock(&r->mu);
        tkv_engine_load_run(r->e, j->l);
        pthread_mutex_lock(&r->mu);
        j->next = r->ran;
        r->ran = j;
        ev_async_send(r->loop, &r->wake);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    tkv_readers *r = w->data;
    pthread_mutex_lock(&r->mu);
    tkv_reader_job *j = r->ran;
    r->ran = NULL;
    pthread_mutex_unlock(&r->mu);
    /* The list is newest first; hand back oldest first. */
    tkv_reader_job *rev = NULL;
    while (j) {
        tkv_reader_job *next = j->next;
        j->next = rev;
        rev = j;
        j = next;
    }
    while (rev) {
        tkv_reader_job *next = rev->next;
        r->pending--;
        r->done(r->ctx, rev->l, rev->cookie);
        free(rev);
        rev = next;
    }
}

tkv_readers *tkv_readers_start(struct ev_loop *loop, tkv_engine *e, unsigned n, int nice,
                               tkv_readers_done_fn done, void *ctx)
{
    if (n == 0)
        return NULL;
    tkv_readers *r = calloc(1, sizeof *r);
    if (!r || !(r->th = calloc(n, sizeof *r->th))) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->e = e;
    r->nice = nice;
    r->done = done;
    r->ctx = ctx;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    ev_async_init(&r->wake, on_wake);
    r->wake.data = r;
    ev_async_start(loop, &r->wake);
    for (; r->n < n; r->n++)
        if (pthread_create(&r->th[r->n], NULL, reader_main, r) != 0)
            break;
    if (r->n == 0) {
        tkv_readers_stop(r);
        return NULL;
    }
    return r;
}

tkv_reader_job *tkv_readers_submit(tkv_readers *r, tkv_eng_load *l, void *cookie)
{
    tkv_reader_job *j = malloc(sizeof *j);
    if (!j)
        return NULL;
    *j = (tkv_reader_job){.l = l, .cookie = cookie};
    pthread_mutex_lock(&r->mu);
    if (r->todo_tail)
        r->todo_tail->next = j;
    else
        r->todo = j;
    r->todo_tail = j;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    r->pending++;
    return j;
}

void tkv_readers_forget(tkv_reader_job *j) { j->cookie = NULL; }

unsigned tkv_readers_pending(const tkv_readers *r) { return r ? r->pending : 0; }

static void free_jobs(tkv_readers *r, tkv_reader_job *j)
{
    while (j) {
        tkv_reader_job *next = j->next;
        tkv_engine_load_free(r->e, j->l);
        free(j);
        j = next;
    }
}

void tkv_readers_stop(tkv_readers *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (unsigned i = 0; i < r->n; i++)
        pthread_join(r->th[i], NULL);
    free_jobs(r, r->todo);
    free_jobs(r, r->ran);
    ev_async_stop(r->loop, &r->wake);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->th);
    free(r);
}
