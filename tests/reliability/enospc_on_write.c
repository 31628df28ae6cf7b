/* Test-only LD_PRELOAD shim: a disk that fills up. Writes to files whose path starts with one of the
 * colon-separated prefixes in ENOSPC_UNDER succeed until ENOSPC_BUDGET bytes (per process) have been
 * written to such files; after that they fail with ENOSPC, as on a full filesystem. Every other
 * write, and every other call, is forwarded unchanged. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long long written = 0;

static int under_full_disk(int fd) {
    const char *prefixes = getenv("ENOSPC_UNDER");
    if (!prefixes || !*prefixes) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    const char *start = prefixes;
    while (*start) {
        const char *end = strchr(start, ':');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (len && strncmp(path, start, len) == 0) return 1;
        if (!end) break;
        start = end + 1;
    }
    return 0;
}

/* 0: go ahead (the bytes are counted), -1: the disk is full. */
static int take(int fd, size_t count) {
    if (!under_full_disk(fd)) return 0;
    const char *text = getenv("ENOSPC_BUDGET");
    long long budget = text ? atoll(text) : 0;
    pthread_mutex_lock(&lock);
    int full = written + (long long)count > budget;
    if (!full) written += (long long)count;
    pthread_mutex_unlock(&lock);
    if (full) errno = ENOSPC;
    return full ? -1 : 0;
}

ssize_t write(int fd, const void *buf, size_t count) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "write");
    return take(fd, count) ? -1 : real(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite");
    return take(fd, count) ? -1 : real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite64");
    return take(fd, count) ? -1 : real(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    static ssize_t (*real)(int, const struct iovec *, int);
    if (!real) real = dlsym(RTLD_NEXT, "writev");
    size_t count = 0;
    for (int i = 0; i < iovcnt; i++) count += iov[i].iov_len;
    return take(fd, count) ? -1 : real(fd, iov, iovcnt);
}
