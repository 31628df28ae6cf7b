/* Test-only LD_PRELOAD shim: any process that opens a path containing "segfault-on-open" dies with
 * SIGSEGV, exactly like a slide library crashing inside its decoder. Everything else is forwarded. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void die_if_poisoned(const char *path) {
    if (path && strstr(path, "segfault-on-open")) raise(SIGSEGV);
}

#define FORWARD_OPEN(name, ...)                                                   \
    int name(const char *path, int flags, ...) {                                  \
        mode_t mode = 0;                                                          \
        if (flags & (O_CREAT | O_TMPFILE)) {                                      \
            va_list args; va_start(args, flags); mode = va_arg(args, mode_t); va_end(args); \
        }                                                                         \
        die_if_poisoned(path);                                                    \
        int (*real)(const char *, int, ...) = dlsym(RTLD_NEXT, #name);            \
        return real(path, flags, mode);                                           \
    }
FORWARD_OPEN(open)
FORWARD_OPEN(open64)

#define FORWARD_OPENAT(name)                                                      \
    int name(int dirfd, const char *path, int flags, ...) {                       \
        mode_t mode = 0;                                                          \
        if (flags & (O_CREAT | O_TMPFILE)) {                                      \
            va_list args; va_start(args, flags); mode = va_arg(args, mode_t); va_end(args); \
        }                                                                         \
        die_if_poisoned(path);                                                    \
        int (*real)(int, const char *, int, ...) = dlsym(RTLD_NEXT, #name);       \
        return real(dirfd, path, flags, mode);                                    \
    }
FORWARD_OPENAT(openat)
FORWARD_OPENAT(openat64)

FILE *fopen(const char *path, const char *mode) {
    die_if_poisoned(path);
    FILE *(*real)(const char *, const char *) = dlsym(RTLD_NEXT, "fopen");
    return real(path, mode);
}
FILE *fopen64(const char *path, const char *mode) {
    die_if_poisoned(path);
    FILE *(*real)(const char *, const char *) = dlsym(RTLD_NEXT, "fopen64");
    return real(path, mode);
}
