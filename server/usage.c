/*
 * usage.c - implements usage.h: /proc/self/statm, and the thread that
 * walks the data directory.
 */
#include "usage.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"

/* A total this old is walked again when next read. */
#define DU_MAX_AGE_US 1000000u
/* LevelDB's directory is flat; the limit only stops a symlink-free but
 * pathological tree from using the thread's stack up. */
#define DU_MAX_DEPTH 16

struct tkv_du {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool want;                /* under mu: a walk is asked for */
    bool stop;                /* under mu: the thread is to end */
    _Atomic uint64_t bytes;   /* the last walk's total */
    _Atomic uint64_t done_us; /* monotonic time the last walk ended; 0: none yet */
    char *dir;
};

uint64_t tkv_usage_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    unsigned long long size, resident;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

/* The size of the regular files under the directory dfd (which this
 * closes); symlinks are not followed. */
static uint64_t walk(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    uint64_t total = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed since readdir (LevelDB compacts) */
        if (S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode) && depth < DU_MAX_DEPTH) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub >= 0)
                total += walk(sub, depth + 1);
        }
    }
    closedir(d);
    return total;
}

static void *du_main(void *arg)
{
    tkv_du *du = arg;
    for (;;) {
        pthread_mutex_lock(&du->mu);
        while (!du->want && !du->stop)
            pthread_cond_wait(&du->cv, &du->mu);
        bool stop = du->stop;
        du->want = false;
        pthread_mutex_unlock(&du->mu);
        if (stop)
            return NULL;
        int fd = open(du->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        atomic_store(&du->bytes, fd >= 0 ? walk(fd, 0) : 0);
        atomic_store(&du->done_us, tkv_clock_mono_us());
    }
}

tkv_du *tkv_du_start(const char *dir)
{
    tkv_du *du = calloc(1, sizeof *du);
    if (!du || !(du->dir = strdup(dir))) {
        free(du);
        return NULL;
    }
    pthread_mutex_init(&du->mu, NULL);
    pthread_cond_init(&du->cv, NULL);
    du->want = true;
    if (pthread_create(&du->thread, NULL, du_main, du) != 0) {
        pthread_mutex_destroy(&du->mu);
        pthread_cond_destroy(&du->cv);
        free(du->dir);
        free(du);
        return NULL;
    }
    return du;
}

uint64_t tkv_du_bytes(tkv_du *du)
{
    uint64_t done = atomic_load(&du->done_us);
    if (done != 0 && tkv_clock_mono_us() - done > DU_MAX_AGE_US) {
        /* The thread holds mu only to look at the flags, never across a
         * walk: this lock does not wait for the disk. */
        pthread_mutex_lock(&du->mu);
        du->want = true;
        pthread_cond_signal(&du->cv);
        pthread_mutex_unlock(&du->mu);
    }
    return atomic_load(&du->bytes);
}

void tkv_du_stop(tkv_du *du)
{
    if (!du)
        return;
    pthread_mutex_lock(&du->mu);
    du->stop = true;
    pthread_cond_signal(&du->cv);
    pthread_mutex_unlock(&du->mu);
    pthread_join(du->thread, NULL);
    pthread_mutex_destroy(&du->mu);
    pthread_cond_destroy(&du->cv);
    free(du->dir);
    free(du);
}
