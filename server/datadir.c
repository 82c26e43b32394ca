/*
 * datadir.c - implements datadir.h.
 */
#include "datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void tkv_datadir_err(char *err, size_t errlen, const char *what, const char *detail)
{
    snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

int tkv_datadir_make(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    char what[600];
    snprintf(what, sizeof what, "cannot create directory %s", path);
    tkv_datadir_err(err, errlen, what, strerror(errno));
    return -1;
}

int tkv_datadir_lock(const char *dir, int *lock_fd, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tkvd.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        char what[4200];
        snprintf(what, sizeof what, "cannot open lock file %s", path);
        tkv_datadir_err(err, errlen, what,
                        errno == ENOTDIR ? "Not a directory (is --data-dir a file?)"
                                         : strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen,
                 "data directory %s is in use by another tkvd (pid %s); stop it or "
                 "choose another --data-dir",
                 dir, pid[0] ? pid : "unknown");
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* The pid is only informative; the lock is what counts. */
    }
    *lock_fd = fd;
    return 0;
}
