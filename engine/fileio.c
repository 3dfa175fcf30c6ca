/* fileio.c: whole-file reads with a size cap, and atomic file replacement
   (temporary + fsync + rename + directory fsync) so that an interrupted
   write never leaves a torn output behind. */
#include "engine.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max_bytes, char **out, size_t *len) {
  *out = NULL;
  if (len) *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return fail_errno("%s", path);
  struct stat st;
  if (fstat(fileno(f), &st) != 0) { fclose(f); return fail_errno("%s", path); }
  if (S_ISDIR(st.st_mode)) { fclose(f); return fail(LACOS_EIO, "%s: is a directory, expected a file", path); }
  if ((size_t)st.st_size > max_bytes) {
    fclose(f);
    return fail(LACOS_ELIMIT, "%s: file is %.1f MiB, more than the %.1f MiB allowed for it",
                path, st.st_size / 1048576.0, max_bytes / 1048576.0);
  }
  size_t cap = (size_t)st.st_size + 1, n = 0;
  char *buf = malloc(cap);
  if (!buf) { fclose(f); return fail(LACOS_ENOMEM, "%s: out of memory reading the file", path); }
  for (;;) {
    size_t got = fread(buf + n, 1, cap - 1 - n, f);
    n += got;
    if (n < cap - 1) break;
    /* The file grew while we read (or is a pipe): keep going up to the cap. */
    int c = fgetc(f);
    if (c == EOF) break;
    if (cap - 1 >= max_bytes) { free(buf); fclose(f); return fail(LACOS_ELIMIT, "%s: file exceeds the size limit", path); }
    size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
    char *nb = realloc(buf, ncap);
    if (!nb) { free(buf); fclose(f); return fail(LACOS_ENOMEM, "%s: out of memory reading the file", path); }
    buf = nb; cap = ncap;
    buf[n++] = (char)c;
  }
  if (ferror(f)) { free(buf); fclose(f); return fail_errno("%s: read failed", path); }
  fclose(f);
  buf[n] = 0;
  *out = buf;
  if (len) *len = n;
  return LACOS_OK;
}

int fsync_dir_of(const char *path) {
  char *copy = strdup(path);
  if (!copy) return fail(LACOS_ENOMEM, "out of memory");
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
  free(copy);
  if (fd < 0) return LACOS_OK;   /* best effort: some file systems refuse */
  fsync(fd);
  close(fd);
  return LACOS_OK;
}

int atomic_file_open(atomic_file *af, const char *path) {
  memset(af, 0, sizeof *af);
  size_t n = strlen(path) + 32;
  af->path = strdup(path);
  af->tmp = malloc(n);
  if (!af->path || !af->tmp) { atomic_file_abort(af); return fail(LACOS_ENOMEM, "out of memory"); }
  snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
  af->f = fopen(af->tmp, "wb");
  if (!af->f) {
    int s = fail_errno("%s: cannot create the output file", path);
    atomic_file_abort(af);
    return s;
  }
  return LACOS_OK;
}

int atomic_file_commit(atomic_file *af) {
  int s = LACOS_OK;
  if (fflush(af->f) != 0 || ferror(af->f)) s = fail_errno("%s: write failed", af->path);
  if (!s && fsync(fileno(af->f)) != 0 && errno != EINVAL) s = fail_errno("%s: fsync failed", af->path);
  if (fclose(af->f) != 0 && !s) s = fail_errno("%s: close failed", af->path);
  af->f = NULL;
  if (!s && rename(af->tmp, af->path) != 0) s = fail_errno("%s: cannot move the finished file into place", af->path);
  if (!s) fsync_dir_of(af->path);
  if (s) unlink(af->tmp);
  free(af->path); free(af->tmp);
  af->path = af->tmp = NULL;
  return s;
}

void atomic_file_abort(atomic_file *af) {
  if (af->f) fclose(af->f);
  if (af->tmp) unlink(af->tmp);
  free(af->path); free(af->tmp);
  memset(af, 0, sizeof *af);
}

int mkdir_parents(const char *dir) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return fail(LACOS_EINVAL, "%s: path too long", dir);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return fail_errno("%s: cannot create the directory", tmp);
      *p = '/';
    }
  if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return fail_errno("%s: cannot create the directory", tmp);
  return LACOS_OK;
}
