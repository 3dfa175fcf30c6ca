/* fileio.c: whole-file reads with a size cap, and atomic file replacement
   (temporary + fsync + rename + directory fsync) so that an interrupted
   write never leaves a torn output behind. */
#include "engine.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <dirent.h>
#include <stdio.h>
#include <signal.h>
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
  char *buf;
  if (mem_alloc(&buf, cap, "file contents")) { fclose(f); return fail_context("%s", path); }
  for (;;) {
    size_t got = fread(buf + n, 1, cap - 1 - n, f);
    n += got;
    if (n < cap - 1) break;
    /* The file grew while we read (or is a pipe): keep going up to the cap. */
    int c = fgetc(f);
    if (c == EOF) break;
    if (cap - 1 >= max_bytes) { mem_free(buf); fclose(f); return fail(LACOS_ELIMIT, "%s: file exceeds the size limit", path); }
    size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
    if (mem_realloc(&buf, ncap, "file contents")) { mem_free(buf); fclose(f); return fail_context("%s", path); }
    cap = ncap;
    buf[n++] = (char)c;
  }
  if (ferror(f)) { mem_free(buf); fclose(f); return fail_errno("%s: read failed", path); }
  fclose(f);
  buf[n] = 0;
  *out = buf;
  if (len) *len = n;
  return LACOS_OK;
}

/* ---- a FILE that writes into counted memory ---- */

static ssize_t mem_stream_write(void *cookie, const char *buf, size_t n) {
  mem_stream *ms = cookie;
  if (ms->n + n > ms->cap) {
    size_t cap = ms->cap ? ms->cap * 2 : 4096;
    while (cap < ms->n + n) cap *= 2;
    if (mem_realloc(&ms->p, cap, "an in-memory file")) { errno = ENOMEM; return -1; }
    ms->cap = cap;
  }
  memcpy(ms->p + ms->n, buf, n);
  ms->n += n;
  return (ssize_t)n;
}

int mem_stream_open(FILE **f, mem_stream *ms) {
  memset(ms, 0, sizeof *ms);
  cookie_io_functions_t io = { .write = mem_stream_write };
  *f = fopencookie(ms, "w", io);
  if (!*f) return fail_errno("cannot open an in-memory file");
  setvbuf(*f, NULL, _IONBF, 0);   /* a failed write shows at fwrite, not at a later flush */
  return LACOS_OK;
}

int fsync_dir_of(const char *path) {
  char *copy;
  TRY(meta_strdup(&copy, path, "a path"));
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
  mem_free(copy);
  if (fd < 0) return LACOS_OK;   /* best effort: some file systems refuse */
  fsync(fd);
  close(fd);
  return LACOS_OK;
}

/* ---- temporaries of processes that are gone ---- */

/* The pid in "<base>.tmp.<pid>" or "<base>.tmp.<pid>.old.<pid>", or 0 when
   name is not a temporary of base. */
static long temp_pid(const char *name, const char *base) {
  size_t n = strlen(base);
  if (strncmp(name, base, n) != 0 || strncmp(name + n, ".tmp.", 5) != 0) return 0;
  const char *p = name + n + 5;
  long pid = 0;
  if (*p < '1' || *p > '9') return 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    pid = pid * 10 + (*p - '0');
    if (pid > 1L << 30) return 0;
  }
  if (*p && strncmp(p, ".old.", 5) != 0) return 0;
  return pid;
}

/* A process of this host that no longer exists (EPERM: it exists, as
   another user). */
static bool pid_gone(long pid) { return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH; }

void remove_stale_temps(const char *path) {
  char dir[4096];
  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return;
  size_t len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/') dir[--len] = 0;
  char *slash = strrchr(dir, '/');
  const char *base;
  if (!slash) { base = dir; } else { *slash = 0; base = slash + 1; }
  char base_copy[4096];
  snprintf(base_copy, sizeof base_copy, "%s", base);
  const char *where = slash ? (dir[0] ? dir : "/") : ".";
  if (!base_copy[0]) return;
  DIR *d = opendir(where);
  if (!d) return;
  struct dirent *e;
  char victim[8300];
  while ((e = readdir(d))) {
    long pid = temp_pid(e->d_name, base_copy);
    if (pid == 0 || pid == (long)getpid() || !pid_gone(pid)) continue;
    if (snprintf(victim, sizeof victim, "%s/%s", where, e->d_name) >= (int)sizeof victim) continue;
    remove_tree(victim);   /* best effort: a leftover is only disk space */
  }
  closedir(d);
}

int atomic_file_open(atomic_file *af, const char *path) {
  memset(af, 0, sizeof *af);
  remove_stale_temps(path);
  size_t n = strlen(path) + 32;
  int st = meta_strdup(&af->path, path, "an output file name");
  if (!st) st = meta_alloc(&af->tmp, n, "an output file name");
  if (st) { atomic_file_abort(af); return st; }
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
  mem_free(af->path); mem_free(af->tmp);
  af->path = af->tmp = NULL;
  return s;
}

void atomic_file_abort(atomic_file *af) {
  if (af->f) fclose(af->f);
  if (af->tmp) unlink(af->tmp);
  mem_free(af->path); mem_free(af->tmp);
  memset(af, 0, sizeof *af);
}

int lacos_file_write(const char *path, const void *data, double nbytes) {
  if (!path || !*path) return fail(LACOS_EINVAL, "cannot write a file with an empty name");
  if (!(nbytes >= 0) || (nbytes > 0 && !data)) return fail(LACOS_EINVAL, "%s: invalid data to write", path);
  atomic_file af;
  TRY(atomic_file_open(&af, path));
  size_t n = (size_t)nbytes;
  if (n && fwrite(data, 1, n, af.f) != n) {
    int s = fail_errno("%s: write failed", path);
    atomic_file_abort(&af);
    return s;
  }
  return atomic_file_commit(&af);
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

/* ---- output directories ---- */

int remove_tree(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return errno == ENOENT ? LACOS_OK : fail_errno("%s: cannot remove", path);
  if (!S_ISDIR(sb.st_mode)) return unlink(path) == 0 ? LACOS_OK : fail_errno("%s: cannot remove", path);
  DIR *d = opendir(path);
  if (!d) return fail_errno("%s: cannot remove", path);
  struct dirent *e;
  char sub[4096];
  int s = LACOS_OK;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub) { s = fail(LACOS_EINVAL, "%s: path too long", path); continue; }
    int r = remove_tree(sub);
    if (r && !s) s = r;
  }
  closedir(d);
  if (s) return s;
  return rmdir(path) == 0 ? LACOS_OK : fail_errno("%s: cannot remove", path);
}

enum { DIR_MISSING, DIR_EMPTY, DIR_FULL, DIR_NOT_A_DIR };
/* What dir is, in *kind (a DIR_* value). */
static int dir_kind(int *kind, const char *dir) {
  struct stat sb;
  *kind = DIR_MISSING;
  if (stat(dir, &sb) != 0) return errno == ENOENT ? LACOS_OK : fail_errno("%s", dir);
  if (!S_ISDIR(sb.st_mode)) { *kind = DIR_NOT_A_DIR; return LACOS_OK; }
  DIR *d = opendir(dir);
  if (!d) return fail_errno("%s: cannot read the directory", dir);
  struct dirent *e;
  *kind = DIR_EMPTY;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { *kind = DIR_FULL; break; }
  closedir(d);
  return LACOS_OK;
}

int lacos_dir_check_output(const char *dir, int replace) {
  if (!dir || !*dir) return fail(LACOS_EINVAL, "output directory: empty path");
  int kind;
  TRY(dir_kind(&kind, dir));
  if (kind == DIR_NOT_A_DIR) return fail(LACOS_ESTATE, "%s: exists and is not a directory", dir);
  if (kind == DIR_FULL && !replace) return fail(LACOS_ESTATE, "%s: exists and is not empty", dir);
  return LACOS_OK;
}

int lacos_dir_temp(char *path, int cap, const char *dir) {
  if (!dir || !*dir) return fail(LACOS_EINVAL, "output directory: empty path");
  char parent[4096];
  if (snprintf(parent, sizeof parent, "%s", dir) >= (int)sizeof parent) return fail(LACOS_EINVAL, "%s: path too long", dir);
  size_t n = strlen(parent);
  while (n > 1 && parent[n - 1] == '/') parent[--n] = 0;   /* "out/" names "out" */
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) { *slash = 0; TRY(mkdir_parents(parent)); *slash = '/'; }
  if (snprintf(path, (size_t)cap, "%s.tmp.%ld", parent, (long)getpid()) >= cap) return fail(LACOS_EINVAL, "%s: path too long", dir);
  remove_stale_temps(parent);   /* "<dir>.tmp.<pid>" of a killed run (a whole model, for a merge) */
  TRY(remove_tree(path));
  if (mkdir(path, 0777) != 0) return fail_errno("%s: cannot create the directory", path);
  return LACOS_OK;
}

static void fsync_path(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

int lacos_dir_commit(const char *tmp, const char *dir, int replace) {
  TRY(lacos_dir_check_output(dir, replace));
  DIR *d = opendir(tmp);
  if (!d) return fail_errno("%s", tmp);
  struct dirent *e;
  char p[4400];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
    fsync_path(p, O_RDONLY);
  }
  closedir(d);
  fsync_path(tmp, O_RDONLY | O_DIRECTORY);
  int kind;
  TRY(dir_kind(&kind, dir));
  if (kind == DIR_FULL) {
    /* one atomic exchange: the old directory is never gone before the new one is there */
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
      fsync_dir_of(dir);
      remove_tree(tmp);   /* now the old directory; a leftover is only disk space */
      return LACOS_OK;
    }
    if (errno != EINVAL && errno != ENOSYS) return fail_errno("%s: cannot move the new directory into place", dir);
    /* a file system without RENAME_EXCHANGE: move the old one aside first */
    char old[4300];
    snprintf(old, sizeof old, "%s.old.%ld", tmp, (long)getpid());
    if (rename(dir, old) != 0) return fail_errno("%s: cannot move the old directory aside", dir);
    if (rename(tmp, dir) != 0) {
      int s = fail_errno("%s: cannot move the new directory into place", dir);
      rename(old, dir);
      return s;
    }
    fsync_dir_of(dir);
    remove_tree(old);
    return LACOS_OK;
  }
  if (rename(tmp, dir) != 0) return fail_errno("%s: cannot move the new directory into place", dir);
  fsync_dir_of(dir);
  return LACOS_OK;
}

int lacos_dir_remove(const char *path) {
  if (!path || !*path) return fail(LACOS_EINVAL, "remove: empty path");
  return remove_tree(path);
}
