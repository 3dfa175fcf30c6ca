/* system.c: what lacos asks of the operating system — paths, directory
   listings, child processes, clocks, terminals.

   Nothing here goes through a shell. A name from a user, a file or a results
   database reaches the system as the bytes it is: `$(...)`, backticks,
   quotes, newlines and a leading '-' mean nothing to mkdir(2), opendir(3) or
   posix_spawnp(3), whereas any string pasted into a shell command line is
   code (Lua's %q is not shell quoting). The Lua side uses these instead of
   os.execute and io.popen. */
#include "engine.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int lacos_path_kind(const char *path) {
  struct stat st;
  if (!path || stat(path, &st) != 0) return 0;
  if (S_ISREG(st.st_mode)) return 1;
  if (S_ISDIR(st.st_mode)) return 2;
  return 3;
}

int lacos_dir_make(const char *dir) {
  if (!dir || !*dir) return fail(LACOS_EINVAL, "cannot create a directory with an empty name");
  TRY(mkdir_parents(dir));
  /* mkdir_parents accepts EEXIST for every component: say so when the last
     one is a file rather than a directory */
  if (lacos_path_kind(dir) != 2) return fail(LACOS_EIO, "%s: exists and is not a directory", dir);
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
      char **grown = realloc(list, ncap * sizeof *grown);
      if (!grown) { s = fail(LACOS_ENOMEM, "%s: out of memory listing the directory", dir); break; }
      list = grown;
      cap = ncap;
    }
    if (!(list[n] = strdup(e->d_name))) { s = fail(LACOS_ENOMEM, "%s: out of memory listing the directory", dir); break; }
    total += strlen(list[n]) + 1;
    n++;
    errno = 0;
  }
  if (!s && errno) s = fail_errno("%s: cannot list the directory", dir);
  closedir(d);
  if (!s) {
    if (n > 1) qsort(list, n, sizeof *list, name_cmp);   /* an empty folder: list is NULL, which qsort must not get */
    /* one buffer of NUL-terminated names: a name may hold any byte but NUL
       and '/', newlines included, so no other separator is safe */
    char *buf = malloc(total ? total : 1);
    if (!buf) s = fail(LACOS_ENOMEM, "%s: out of memory listing the directory", dir);
    else {
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
  for (size_t i = 0; i < n; i++) free(list[i]);
  free(list);
  return s;
}

void lacos_text_free(char *text) { free(text); }

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

int lacos_path_absolute(char **out, const char *path) {
  *out = NULL;
  if (!path || !*path) return fail(LACOS_EINVAL, "lacos_path_absolute: an empty path");
  if (path[0] == '/') {
    *out = strdup(path);
    return *out ? LACOS_OK : fail(LACOS_ENOMEM, "out of memory");
  }
  char *cwd = getcwd(NULL, 0);
  if (!cwd) return fail_errno("%s: cannot make it absolute: the current directory", path);
  size_t n = strlen(cwd), m = strlen(path);
  *out = malloc(n + 1 + m + 1);
  if (!*out) { free(cwd); return fail(LACOS_ENOMEM, "out of memory"); }
  memcpy(*out, cwd, n);
  size_t k = n;
  if (k == 0 || (*out)[k - 1] != '/') (*out)[k++] = '/';
  /* "./x" is "x" */
  while (path[0] == '.' && path[1] == '/') { path += 2; while (*path == '/') path++; }
  memcpy(*out + k, path, strlen(path) + 1);
  if (strcmp(path, ".") == 0 || !*path) (*out)[k > 1 ? k - 1 : k] = 0;
  free(cwd);
  return LACOS_OK;
}

int lacos_sleep(double seconds) {
  double end = lacos_clock_monotonic() + (seconds > 0 ? seconds : 0);
  for (;;) {
    if (lacos_interrupt_pending()) return 1;
    double left = end - lacos_clock_monotonic();
    if (left <= 0) return 0;
    if (left > 0.05) left = 0.05;
    struct timespec ts = { 0, (long)(left * 1e9) };
    nanosleep(&ts, NULL);
  }
}

void lacos_stdin_clear_error(void) { clearerr(stdin); }
