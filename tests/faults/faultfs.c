/*
 * faultfs.c - an LD_PRELOAD shim that makes writes fail as on a full disk.
 *
 * While the file named by TKV_FAULT_TRIGGER exists, write(2), pwrite(2),
 * writev(2) and fsync/fdatasync on any descriptor whose path starts with
 * one of the colon-separated prefixes in TKV_FAULT_PATHS fail: writes with
 * ENOSPC, syncs with EIO. Other descriptors (the log on stderr, sockets)
 * are untouched. Tests create and delete the trigger to make the "disk"
 * fill up and recover while tkvd runs.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*sync_fn)(int);

static bool path_matches(const char *path)
{
    const char *list = getenv("TKV_FAULT_PATHS");
    if (!list)
        return false;
    while (*list) {
        const char *end = strchr(list, ':');
        size_t n = end ? (size_t)(end - list) : strlen(list);
        if (n > 0 && strncmp(path, list, n) == 0)
            return true;
        if (!end)
            break;
        list = end + 1;
    }
    return false;
}

static bool armed(int fd)
{
    const char *trigger = getenv("TKV_FAULT_TRIGGER");
    if (!trigger || access(trigger, F_OK) != 0)
        return false;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    return path_matches(path);
}

/* dlsym returns an object pointer; copy it into a function pointer the way
 * POSIX allows, without an ISO C cast. */
static void real(const char *name, void *fnptr, size_t size)
{
    void *p = dlsym(RTLD_NEXT, name);
    memcpy(fnptr, &p, size);
}

#define REAL(fn, name) (real(name, &fn, sizeof fn), fn)

ssize_t write(int fd, const void *buf, size_t n)
{
    if (armed(fd)) {
        errno = ENOSPC;
        return -1;
    }
    write_fn f;
    return REAL(f, "write")(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (armed(fd)) {
        errno = ENOSPC;
        return -1;
    }
    pwrite_fn f;
    return REAL(f, "pwrite")(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (armed(fd)) {
        errno = ENOSPC;
        return -1;
    }
    writev_fn f;
    return REAL(f, "writev")(fd, iov, cnt);
}

int fsync(int fd)
{
    if (armed(fd)) {
        errno = EIO;
        return -1;
    }
    sync_fn f;
    return REAL(f, "fsync")(fd);
}

int fdatasync(int fd)
{
    if (armed(fd)) {
        errno = EIO;
        return -1;
    }
    sync_fn f;
    return REAL(f, "fdatasync")(fd);
}
