/* full_shim.c: an LD_PRELOAD library for tests/cli/test_faults.sh that
   makes one chosen file behave as if the disk were full. A file opened for
   writing whose path contains $LACOS_TEST_FULL is opened as /dev/full
   instead, so every write to it fails with ENOSPC exactly as on a full disk
   (fopen and open, the calls lacos and its libraries make). Nothing else
   changes. Built by the test with `cc -shared -fPIC`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hit(const char *path, int writing) {
  const char *want = getenv("LACOS_TEST_FULL");
  return writing && want && *want && path && strstr(path, want) != NULL;
}

FILE *fopen(const char *path, const char *mode) {
  static FILE *(*real)(const char *, const char *);
  if (!real) real = (FILE *(*)(const char *, const char *))dlsym(RTLD_NEXT, "fopen");
  int writing = mode && (strchr(mode, 'w') || strchr(mode, 'a') || strchr(mode, '+'));
  return real(hit(path, writing) ? "/dev/full" : path, mode);
}

FILE *fopen64(const char *path, const char *mode) { return fopen(path, mode); }

static int opened(const char *name, int dirfd, const char *path, int flags, mode_t mode) {
  int writing = (flags & O_ACCMODE) != O_RDONLY;
  if (hit(path, writing)) { path = "/dev/full"; flags &= ~(O_CREAT | O_EXCL | O_TRUNC); }
  if (dirfd == -1) {
    static int (*real)(const char *, int, ...);
    if (!real) real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, name);
    return real(path, flags, mode);
  }
  static int (*realat)(int, const char *, int, ...);
  if (!realat) realat = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
  return realat(dirfd, path, flags, mode);
}

static mode_t mode_arg(int flags, va_list ap) { return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0; }

int open(const char *path, int flags, ...) {
  va_list ap; va_start(ap, flags); mode_t m = mode_arg(flags, ap); va_end(ap);
  return opened("open", -1, path, flags, m);
}
int open64(const char *path, int flags, ...) {
  va_list ap; va_start(ap, flags); mode_t m = mode_arg(flags, ap); va_end(ap);
  return opened("open64", -1, path, flags, m);
}
int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap; va_start(ap, flags); mode_t m = mode_arg(flags, ap); va_end(ap);
  return opened("openat", dirfd, path, flags, m);
}
