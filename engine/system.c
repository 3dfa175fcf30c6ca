/* system.c: what lacos asks of the operating system — paths, directory
   listings, child processes, clocks, terminals.

   Nothing here goes through a shell. A name from a user, a file or a results
   database reaches the system as the bytes it is: `$(...)`, backticks,
   quotes, newlines and a leading '-' mean nothing to mkdir(2), opendir(3) or
   posix_spawnp(3), whereas any string pasted into a shell command line is
   code (Lua's %q is not shell quoting). The Lua side uses these instead of
   os.execute and io.popen. */
#include "engine.h"
#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int lacos_path_kind(const char *path) {
  struct stat st;
  if (!path || stat(path, &st) != 0) return LACOS_PATH_NONE;
  if (S_ISREG(st.st_mode)) return LACOS_PATH_FILE;
  if (S_ISDIR(st.st_mode)) return LACOS_PATH_DIR;
  return LACOS_PATH_OTHER;
}

int lacos_dir_make(const char *dir) {
  if (!dir || !*dir) return fail(LACOS_EINVAL, "cannot create a directory with an empty name");
  TRY(mkdir_parents(dir));
  /* mkdir_parents accepts EEXIST for every component: say so when the last
     one is a file rather than a directory */
  if (lacos_path_kind(dir) != LACOS_PATH_DIR) return fail(LACOS_EIO, "%s: exists and is not a directory", dir);
  return LACOS_OK;
}

int lacos_path_absolute(char **out, const char *path) {
  *out = NULL;
  if (!path || !*path) return fail(LACOS_EINVAL, "an empty path has no absolute form");
  char real[PATH_MAX];
  if (realpath(path, real)) return meta_strdup(out, real, "absolute path");
  /* not there (yet): the parent's real path and the last name, else the
     working directory and the path as written */
  const char *slash = strrchr(path, '/');
  char base[PATH_MAX] = "";
  const char *rest = slash ? slash + 1 : path;
  bool have = false;
  if (slash && slash != path) {
    char parent[PATH_MAX];
    size_t n = (size_t)(slash - path);
    if (n < sizeof parent) {
      memcpy(parent, path, n);
      parent[n] = 0;
      have = realpath(parent, base) != NULL;
    }
  } else if (slash) have = true;   /* "/name": the root, base "" */
  else have = getcwd(base, sizeof base) != NULL;
  if (!have) {
    base[0] = 0;
    rest = path[0] == '/' ? path + 1 : path;
    if (path[0] != '/' && !getcwd(base, sizeof base)) return fail_errno("%s: cannot find the working directory", path);
  }
  size_t n = strlen(base) + strlen(rest) + 2;
  TRY(meta_alloc(out, n, "absolute path"));
  snprintf(*out, n, "%s/%s", base, rest);
  return LACOS_OK;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int lacos_dir_names(char **names, double *bytes, const char *dir) {
  *names = NULL;
  *bytes = 0;
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? fail(LACOS_ENOTFOUND, "%s: no such directory", dir)
                                 : fail_errno("%s: cannot list the directory", dir);
  char **list = NULL;
  size_t n = 0, cap = 0, total = 0;
  int s = LACOS_OK;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 32;
      if ((s = meta_realloc(&list, ncap * sizeof *list, "directory listing"))) break;
      cap = ncap;
    }
    if ((s = meta_strdup(&list[n], e->d_name, "directory listing"))) break;
    total += strlen(list[n]) + 1;
    n++;
    errno = 0;
  }
  if (!s && errno) s = fail_errno("%s: cannot list the directory", dir);
  closedir(d);
  if (!s) {
    if (n) qsort(list, n, sizeof *list, name_cmp);   /* an empty directory has no list (qsort's NULL is UB) */
    /* one buffer of NUL-terminated names: a name may hold any byte but NUL
       and '/', newlines included, so no other separator is safe */
    char *buf;
    s = mem_alloc(&buf, total ? total : 1, "directory listing");
    if (!s) {
      char *p = buf;
      for (size_t i = 0; i < n; i++) {
        size_t len = strlen(list[i]) + 1;
        memcpy(p, list[i], len);
        p += len;
      }
      *names = buf;
      *bytes = (double)total;
    }
  }
  for (size_t i = 0; i < n; i++) mem_free(list[i]);
  mem_free(list);
  return s;
}

void lacos_text_free(char *text) { mem_free(text); }

/* Redirects fd to path in the child (opened there, after the fork). */
static int redirect(posix_spawn_file_actions_t *fa, int fd, const char *path, int flags) {
  return posix_spawn_file_actions_addopen(fa, fd, path, flags, 0666);
}

int lacos_process_run(int *exit_code, const char *const *argv, const char *stdin_path, const char *stdout_path,
                      const char *stderr_path) {
  *exit_code = -1;
  if (!argv || !argv[0] || !*argv[0]) return fail(LACOS_EINVAL, "no program to run");
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0) return fail(LACOS_ENOMEM, "%s: cannot prepare to start it", argv[0]);
  int e = 0;
  if (stdin_path) e = redirect(&fa, 0, stdin_path, O_RDONLY);
  if (!e && stdout_path) e = redirect(&fa, 1, stdout_path, O_WRONLY | O_CREAT | O_TRUNC);
  if (!e && stderr_path) e = redirect(&fa, 2, stderr_path, O_WRONLY | O_CREAT | O_TRUNC);
  if (e) { posix_spawn_file_actions_destroy(&fa); return fail(LACOS_ENOMEM, "%s: cannot prepare to start it", argv[0]); }
  /* The child gets default signal handling: it must not inherit an ignored
     SIGINT or SIGPIPE from us. */
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGUSR2);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  e = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (e) {
    errno = e;
    if (e == ENOENT) return fail(LACOS_ENOTFOUND, "%s: program not found (is it installed and on PATH?)", argv[0]);
    return fail_errno("%s: cannot start it", argv[0]);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return fail_errno("%s: cannot wait for it", argv[0]);
  /* glibc's posix_spawnp reports a failed open of a redirection (or a failed
     exec) as exit status 127 from the child */
  if (WIFEXITED(st)) *exit_code = WEXITSTATUS(st);
  else if (WIFSIGNALED(st)) *exit_code = 128 + WTERMSIG(st);
  return LACOS_OK;
}

static double clock_seconds(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double lacos_clock_monotonic(void) { return clock_seconds(CLOCK_MONOTONIC); }
double lacos_clock_process(void) { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }
double lacos_clock_wall(void) { return clock_seconds(CLOCK_REALTIME); }

int lacos_terminal_is(int fd) { return isatty(fd) == 1; }

void lacos_stdin_clear_error(void) { clearerr(stdin); }

/* ---- directory locks ---- */

/* The lock of a directory is its file ".lacos-lock", held with flock(2):
   the kernel drops it when the holder exits or is killed, so a lock left by
   a dead process is free again and the next taker rewrites the holder's
   line ("pid 123 host node7"). A file system without flock (ENOLCK, some
   network mounts) falls back to that line: a live pid of this host, or any
   other host, holds it; a pid of this host that is gone does not. */

static void lock_path(char *out, size_t n, const char *dir) { snprintf(out, n, "%s/.lacos-lock", dir); }

static void this_host(char *host, size_t n) {
  if (gethostname(host, n) != 0) snprintf(host, n, "?");
  host[n - 1] = 0;
}

/* Reads the holder's line into text (cap bytes); "" when empty. */
static void read_holder(int fd, char *text, size_t cap) {
  ssize_t got = pread(fd, text, cap - 1, 0);
  if (got < 0) got = 0;
  text[got] = 0;
  char *nl = strchr(text, '\n');
  if (nl) *nl = 0;
}

int lacos_dir_lock(int *handle, const char *dir, char *previous, int cap) {
  *handle = -1;
  if (previous && cap > 0) previous[0] = 0;
  if (!dir || !*dir) return fail(LACOS_EINVAL, "cannot lock a directory with an empty name");
  TRY(lacos_dir_make(dir));
  char path[4200], host[256], held[512], me[400];
  if (strlen(dir) > 4000) return fail(LACOS_EINVAL, "%s: path too long", dir);
  lock_path(path, sizeof path, dir);
  this_host(host, sizeof host);
  snprintf(me, sizeof me, "pid %ld host %s\n", (long)getpid(), host);
  for (int attempt = 0; attempt < 8; attempt++) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return fail_errno("%s: cannot create the lock file", path);
    read_holder(fd, held, sizeof held);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      if (e == EWOULDBLOCK || e == EINTR) {
        close(fd);
        return fail(LACOS_ESTATE, "%s: another lacos is using this directory (%s holds %s); wait for it to finish "
                    "or choose another directory", dir, held[0] ? held : "a process", path);
      }
      if (e != ENOLCK && e != EOPNOTSUPP && e != ENOSYS) {
        errno = e;
        int s = fail_errno("%s: cannot lock", path);
        close(fd);
        return s;
      }
      /* no flock here: judge by the line */
      long pid = 0;
      char other[256] = "";
      if (held[0] && sscanf(held, "pid %ld host %255s", &pid, other) == 2) {
        int same_host = strcmp(other, host) == 0;
        if (!same_host || (pid != (long)getpid() && !(kill((pid_t)pid, 0) != 0 && errno == ESRCH))) {
          close(fd);
          return fail(LACOS_ESTATE, "%s: another lacos is using this directory (%s holds %s%s); wait for it to finish "
                      "or choose another directory", dir, held, path,
                      same_host ? "" : "; if that process is gone, remove the lock file");
        }
      }
    }
    /* the file locked must still be the one at the path: a holder that
       released in between unlinked it, and a lock on an unlinked file holds
       nothing */
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) { close(fd); continue; }
    read_holder(fd, held, sizeof held);
    if (previous && cap > 0 && held[0]) snprintf(previous, (size_t)cap, "%s", held);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, me, strlen(me), 0) != (ssize_t)strlen(me)) {
      int s = fail_errno("%s: cannot write the lock file", path);
      close(fd);
      return s;
    }
    *handle = fd;
    return LACOS_OK;
  }
  return fail(LACOS_ESTATE, "%s: the lock file keeps changing; another lacos is taking and releasing it", path);
}

void lacos_dir_unlock(int handle, const char *dir) {
  if (handle < 0) return;
  char path[4200];
  lock_path(path, sizeof path, dir);
  /* unlinked while still held, so nobody takes a lock on a file about to go */
  struct stat a, b;
  if (fstat(handle, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) unlink(path);
  close(handle);
}

/* ---- memory limits of the process: RLIMIT_AS and the cgroup ---- */

void blas_reserve(void) {
  static int done;
  if (done) return;
  done = 1;
  /* OpenBLAS takes another 128 MiB buffer at its first product past its
     small-matrix path (besides one per OpenMP thread taken at start-up):
     taken now, so that what an address-space limit leaves is measured after
     it (main.c left room for it) */
  enum { N = 256 };
  float *a;
  if (mem_calloc(&a, (size_t)N * N * 3, sizeof *a, "BLAS buffer probe")) return;   /* best effort */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, a + N * N, N, 0.0f, a + 2 * N * N, N);
  mem_free(a);
}

double lacos_memory_address_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  return (double)rl.rlim_cur;
}

/* Bytes of address space this process has mapped now (/proc/self/statm). */
static double address_space_used(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0;
  if (f) { if (fscanf(f, "%ld", &pages) != 1) pages = 0; fclose(f); }
  return (double)pages * (double)sysconf(_SC_PAGE_SIZE);
}

static double read_number_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[64];
  double v = -1;
  if (fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9') v = strtod(buf, NULL);   /* "max" reads as none */
  fclose(f);
  return v;
}

static double stat_field(const char *path, const char *key) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  size_t n = strlen(key);
  double v = 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, n) && line[n] == ' ') { v = strtod(line + n + 1, NULL); break; }
  fclose(f);
  return v;
}

/* The directory of this process's memory cgroup and whether it is a v2
   (unified) one: from /proc/self/cgroup, under the mount point (a cgroup
   namespace shows "/" there, and its mount is the group itself). */
static int cgroup_memory_dir(char *dir, size_t n, int *v2, size_t *base_len) {
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (!f) return 0;
  char line[4096], v1path[4096] = "", v2path[4096] = "";
  int have_v1 = 0, have_v2 = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2) continue;
    *c2 = 0;
    const char *controllers = c1 + 1, *path = c2 + 1;
    if (!strcmp(line, "0") && !*controllers) { snprintf(v2path, sizeof v2path, "%s", path); have_v2 = 1; continue; }
    /* v1: "N:memory:/path" or "N:cpu,memory:/path" */
    char list[256];
    snprintf(list, sizeof list, ",%s,", controllers);
    if (strstr(list, ",memory,")) { snprintf(v1path, sizeof v1path, "%s", path); have_v1 = 1; }
  }
  fclose(f);
  const char *base, *path;
  if (have_v1 && lacos_path_kind("/sys/fs/cgroup/memory/memory.limit_in_bytes") == LACOS_PATH_FILE) { base = "/sys/fs/cgroup/memory"; path = v1path; *v2 = 0; }
  else if (have_v2 && lacos_path_kind("/sys/fs/cgroup/cgroup.controllers") == 1) { base = "/sys/fs/cgroup"; path = v2path; *v2 = 1; }
  else return 0;
  *base_len = strlen(base);
  if (snprintf(dir, n, "%s%s", base, strcmp(path, "/") ? path : "") >= (int)n || lacos_path_kind(dir) != 2)
    snprintf(dir, n, "%s", base);   /* the group is not under this mount (another namespace): the mount's own */
  return 1;
}

/* Walks from the process's memory cgroup up to the root of the hierarchy:
   each group's limit holds for everything below it (Slurm limits the job,
   its steps and tasks are groups inside). *limit = the smallest limit (0:
   none); returns the least room left under any of them (its limit less
   what the group uses, reclaimable page cache counted as free), 0 when no
   group has a limit. */
static double cgroup_room(double *limit) {
  char dir[4200], path[4300];
  int v2;
  size_t base_len;
  *limit = 0;
  if (!cgroup_memory_dir(dir, sizeof dir, &v2, &base_len)) return 0;
  double room = 0;
  for (;;) {
    snprintf(path, sizeof path, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    double lim = read_number_file(path);
    if (lim > 0 && lim < 1e18) {   /* v1 writes "no limit" as a huge number, v2 as "max" */
      snprintf(path, sizeof path, "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
      double used = read_number_file(path);
      snprintf(path, sizeof path, "%s/memory.stat", dir);
      double cache = stat_field(path, v2 ? "inactive_file" : "total_inactive_file");
      double left = lim - (used > 0 ? used : 0) + cache;
      if (left < 1) left = 1;
      if (room == 0 || left < room) room = left;
      if (*limit == 0 || lim < *limit) *limit = lim;
    }
    if (strlen(dir) <= base_len) break;
    char *slash = strrchr(dir, '/');
    if (!slash || (size_t)(slash - dir) < base_len) break;
    *slash = 0;
  }
  return room;
}

double lacos_memory_cgroup_limit(void) {
  double limit;
  cgroup_room(&limit);
  return limit;
}

static double cgroup_headroom(void) {
  double limit;
  return cgroup_room(&limit);
}

double lacos_memory_headroom(int *why) {
  double best = 0;
  int src = 0;
  double as = lacos_memory_address_limit();
  if (as > 0) {
    blas_reserve();   /* its 128 MiB come out of the limit sooner or later: now, so they count */
    double left = as - address_space_used();
    best = left > 1 ? left : 1;
    src = 1;
  }
  double cg = cgroup_headroom();
  if (cg > 0 && (best == 0 || cg < best)) { best = cg; src = 2; }
  if (why) *why = src;
  return best;
}

int address_space_thread_cap(int have) {
  double as = lacos_memory_address_limit();
  if (as <= 0) return 1 << 30;
  blas_reserve();
  /* each thread more: its 128 MiB BLAS buffer and an 8 MiB stack, and 32 MiB kept for work */
  double room = as - address_space_used() - 32.0 * 1048576;
  int more = room > 0 ? (int)(room / (136.0 * 1048576)) : 0;
  return (have > 0 ? have : 1) + more;
}
