/* main.c: the `lacos` executable. It embeds LuaJIT and hands the command
   line to lua/lacos/cli.lua, which does all the dispatching. This is the
   only C file that knows about Lua; it is linked into the executable, not
   into liblacos.so.

   It also owns signals: the first SIGINT/SIGTERM/SIGUSR2 sets the engine's
   interrupt flag and arms a Lua hook that lets the Lua side decide (the REPL
   cancels the statement, a training loop stops at the next step boundary);
   a second one exits at once with status 130.

   And it bounds memory, so that a script that allocates without end gets a
   clear error instead of the machine's OOM killer. The Lua state allocates
   through a counting allocator that refuses to grow the Lua heap (tables,
   strings, ffi.new buffers) past a limit; LuaJIT turns the refusal into its
   "not enough memory" error, which lua/lacos/cli.lua reports with the limit
   and a non-zero exit. The limit comes from LACOS_MEMORY_LIMIT or
   `lacos --memory-limit SIZE` (bytes with an optional k/M/G/T suffix, a
   percentage of physical memory, or "off"). When given, it is a budget for
   the process: the engine's allocations are capped at it too
   (lacos_memory_set_limit), and the Lua heap may only grow while Lua heap +
   engine allocations stay below it. When not given, the Lua heap alone is
   capped at half the physical memory (or of the cgroup's limit, when lower),
   far above what scripts need, and the engine's allocations at 90% of it, so
   a script that makes tensors without end gets the engine's "would pass the
   memory limit" error rather than the OOM killer, while any model that fits
   in memory still loads. Not rlimits:
   RLIMIT_AS counts CUDA's and AddressSanitizer's address-space reservations
   and RLIMIT_DATA every copy-on-write mapping of a checkpoint, so either
   would fail a 7b1 model long before memory is short. Memory-mapped
   checkpoints and the libraries' own buffers (BLAS, oneDNN, SQLite) are not
   counted. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdint.h>
#include <stddef.h>
#include "lacos.h"

/* ---- an address-space limit (ulimit -v, RLIMIT_AS) ----

   OpenBLAS's constructor reserves a 128 MiB buffer for every OpenMP thread
   before main runs, and when mmap refuses one it retries forever (100% CPU,
   no message). So this runs earlier still, from the executable's
   .preinit_array (before any library's constructor; the libraries are
   mapped by then): under a finite RLIMIT_AS it starts the program again
   with OMP_NUM_THREADS lowered to the threads whose buffers fit (libgomp
   and OpenBLAS read it in their constructors), keeps malloc to two arenas
   (each thread's arena reserves 64 MiB of address space), and when not even
   one thread fits it stops with the limit and what is needed, instead of
   hanging. The engine caps later thread counts the same way (engine.c) and
   plans memory against what the limit leaves (lacos_memory_headroom). */
#define MIB 1048576.0
#define START_BYTES (32 * MIB)   /* the Lua state and the first allocations */

/* Threads whose address space fits in `room` bytes (beyond what is mapped):
   a 128 MiB BLAS buffer each and one more for the thread that calls BLAS
   (OpenBLAS takes it at the first product), an 8 MiB stack for each thread
   past the first and, past one thread, a second malloc arena (64 MiB);
   plus START_BYTES. */
static long threads_fitting(double room) {
  long k = 0;
  for (;;) {
    long n = k + 1;
    double need = START_BYTES + (n + 1) * 128 * MIB + (n - 1) * 8 * MIB + (n > 1 ? 64 * MIB : 0);
    if (need > room || n > 4096) return k;
    k = n;
  }
}

static double mapped_now(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0;
  if (f) { if (fscanf(f, "%ld", &pages) != 1) pages = 0; fclose(f); }
  return (double)pages * (double)sysconf(_SC_PAGE_SIZE);
}

static void fit_address_space(int argc, char **argv, char **envp) {
  (void)argc;
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
  double limit = (double)rl.rlim_cur, used = mapped_now();
  long fit = threads_fitting(limit - used);
  if (fit < 1) {
    char msg[400];
    double need = used + 2 * 128 * MIB + START_BYTES;
    int n = snprintf(msg, sizeof msg, "lacos: the address-space limit (ulimit -v) of %.0f MiB is too small to start: "
                     "the libraries take %.0f MiB and OpenBLAS's buffers (two of 128 MiB for one thread) and the first "
                     "allocations %.0f MiB more; raise it to at least %.0f MiB (ulimit -v %.0f) or remove it\n",
                     limit / MIB, used / MIB, (2 * 128 * MIB + START_BYTES) / MIB, need / MIB + 1, (need / MIB + 1) * 1024);
    ssize_t w = write(2, msg, n > 0 && n < (int)sizeof msg ? (size_t)n : strlen(msg));
    (void)w;
    _exit(1);
  }
  mallopt(M_ARENA_MAX, 2);
  const char *omp = NULL, *spin = NULL, *policy = NULL;
  int n = 0;
  for (; envp && envp[n]; n++) {
    if (!strncmp(envp[n], "OMP_NUM_THREADS=", 16)) omp = envp[n] + 16;
    if (!strncmp(envp[n], "GOMP_SPINCOUNT=", 15)) spin = envp[n];
    if (!strncmp(envp[n], "OMP_WAIT_POLICY=", 16)) policy = envp[n];
  }
  long want = omp && *omp ? strtol(omp, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
  if (want < 1) want = 1;
  if (want <= fit || n > 1000) return;
  /* setenv here would not last (the C library resets environ to the
     original array before the other libraries' constructors run): start
     again at once with OMP_NUM_THREADS in the environment itself (and
     main.c's GOMP_SPINCOUNT, saving it its own re-exec) */
  static char *env[1024];
  static char threads[48];
  snprintf(threads, sizeof threads, "OMP_NUM_THREADS=%ld", fit);
  int k = 0;
  for (int i = 0; i < n; i++) if (strncmp(envp[i], "OMP_NUM_THREADS=", 16) != 0) env[k++] = envp[i];
  env[k++] = threads;
  if (!spin && !policy) env[k++] = (char *)"GOMP_SPINCOUNT=20000";
  env[k] = NULL;
  execve("/proc/self/exe", argv, env);
  /* exec failed: go on, and let the engine cap what it can */
}
__attribute__((section(".preinit_array"), used)) static void (*const preinit_fit_address_space)(int, char **, char **) =
    fit_address_space;

static lua_State *main_state;
static volatile sig_atomic_t signals_seen;

/* ---- the Lua heap limit (see the top comment) ---- */

static lua_Alloc base_alloc;
static void *base_ud;
static size_t lua_heap;            /* bytes the Lua state holds through us */
static double memory_limit;        /* 0 = none */
static int limit_explicit;         /* given by the user: a budget shared with the engine */
static int limit_grace;            /* after a refusal: room for the error's own handling */
static unsigned long limit_refusals;
enum { GRACE_BYTES = 8 << 20 };

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr == NULL) osize = 0;
  if (nsize > osize && memory_limit > 0) {
    double total = (double)lua_heap + (double)(nsize - osize);
    if (limit_explicit) total += lacos_memory_allocated(LACOS_CPU);
    if (total > memory_limit + (limit_grace ? GRACE_BYTES : 0)) {
      limit_refusals++;
      limit_grace = 1;
      return NULL;   /* LuaJIT raises "not enough memory"; frees never come here */
    }
    if (limit_grace && total < memory_limit) limit_grace = 0;
  }
  void *p = base_alloc(base_ud, ptr, osize, nsize);
  if (p || nsize == 0) lua_heap = lua_heap - osize + nsize;
  return p;
}

/* Physical memory, or the cgroup's limit when it is lower (containers,
   Slurm jobs: the limit of the process's own group or of one above it). */
static double physical_memory(void) {
  double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
  double cg = lacos_memory_cgroup_limit();
  return cg > 0 && cg < phys ? cg : phys;
}

/* "200M", "1.5GiB", "8g", "123456", "25%", "off" -> bytes (0 = no limit); -1 if unreadable,
   -2 for a size of zero (which would allow nothing: "off" is the way to say no limit). */
static double parse_size(const char *text) {
  if (!text) return -1;
  while (*text == ' ') text++;
  if (!strcmp(text, "off") || !strcmp(text, "none")) return 0;
  if (!((*text >= '0' && *text <= '9') || *text == '.')) return -1;   /* no sign, hex or inf: a size */
  char *end;
  double v = strtod(text, &end);
  if (end != text && v == 0) return -2;
  if (end == text || !(v > 0) || v > 1e18) return -1;
  while (*end == ' ') end++;
  double mult = 1;
  switch (*end) {
  case 0: break;
  case '%': if (end[1] || v > 100) return -1; return physical_memory() * v / 100;
  case 'k': case 'K': mult = 1024.0; end++; break;
  case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
  case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
  case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
  case 'b': case 'B': break;
  default: return -1;
  }
  if (*end == 'i') end++;
  if (*end == 'B' || *end == 'b') end++;
  if (*end) return -1;
  return v * mult < 1 ? -1 : v * mult;
}

/* For lua/lacos/cli.lua (ffi.C): --memory-limit, and the error report. */
__attribute__((visibility("default"))) int lacos_cli_memory_limit_set(const char *text) {
  double v = parse_size(text);
  if (v < 0) return (int)v;
  memory_limit = v;
  limit_explicit = v > 0;
  lacos_memory_set_limit(LACOS_CPU, v);
  return 0;
}
__attribute__((visibility("default"))) double lacos_cli_memory_limit(void) { return memory_limit; }
__attribute__((visibility("default"))) int lacos_cli_memory_limit_explicit(void) { return limit_explicit; }
__attribute__((visibility("default"))) double lacos_cli_lua_heap(void) { return (double)lua_heap; }
__attribute__((visibility("default"))) double lacos_cli_memory_refusals(void) { return (double)limit_refusals; }

/* The REPL's promise that a first Ctrl-C is never silent: while it runs a
   statement (lacos_cli_interrupt_notice(1)), a first interrupt that the Lua
   hook has not answered within 1.5 s — the statement is in JIT-compiled
   code, which never calls hooks, or in a long engine call — gets a line
   from a watchdog thread saying that the next Ctrl-C quits. */
static volatile sig_atomic_t hook_answered, notice_wanted;
static sem_t notice_sem;
static int notice_ready;

static void *notice_main(void *arg) {
  (void)arg;
  for (;;) {
    while (sem_wait(&notice_sem) != 0) {}
    struct timespec ts = { 1, 500000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    if (notice_wanted && signals_seen == 1 && !hook_answered) {
      static const char msg[] = "\nlacos: the statement is still running (compiled Lua code or a long engine call cannot be "
                                "stopped at once); press Ctrl-C again to quit lacos (this session will be lost)\n";
      ssize_t w = write(2, msg, sizeof msg - 1);
      (void)w;
    }
  }
  return NULL;
}

/* Exported for ffi.C: the REPL turns the notice on around each statement. */
__attribute__((visibility("default"))) void lacos_cli_interrupt_notice(int on) {
  if (on && !notice_ready) {
    pthread_t t;
    if (sem_init(&notice_sem, 0, 0) == 0 && pthread_create(&t, NULL, notice_main, NULL) == 0) {
      pthread_detach(t);
      notice_ready = 1;
    }
  }
  notice_wanted = on != 0;
}

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  hook_answered = 1;
  lua_sethook(L, NULL, 0, 0);
  /* The Lua side decides what an interrupt means right now. */
  lua_getglobal(L, "LACOS_ON_INTERRUPT");
  if (lua_isfunction(L, -1)) {
    lua_call(L, 0, 0);   /* may raise "interrupted" */
    return;
  }
  lua_pop(L, 1);
  luaL_error(L, "interrupted");
}

/* One interrupt can arrive twice: `timeout` signals its child and then its
   whole process group, and a shell's kill may race a terminal's. Deliveries
   within 50 ms of the first count as that one (no hand presses Ctrl-C twice
   that fast); clock_gettime is async-signal-safe. */
static double first_signal_at;
static volatile sig_atomic_t last_signal;
static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_signal(int sig) {
  double t = monotonic_seconds();
  if (signals_seen == 1 && t - first_signal_at < 0.05) return;
  if (signals_seen == 0) first_signal_at = t;
  signals_seen++;
  if (signals_seen > 1) {
    static const char msg[] = "\nlacos: second interrupt, exiting now\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(130);
  }
  last_signal = sig;
  lacos_interrupt_request(sig == SIGTERM || sig == SIGUSR2 ? 2 : 1);
  hook_answered = 0;
  if (main_state) lua_sethook(main_state, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  if (notice_ready && notice_wanted) sem_post(&notice_sem);   /* async-signal-safe */
}

/* Lets the Lua side re-arm after it has dealt with an interrupt (the REPL
   clears it after cancelling a statement). Exported for ffi.C. */
__attribute__((visibility("default"))) void lacos_cli_signals_reset(void) {
  signals_seen = 0;
  lacos_interrupt_clear();
}

__attribute__((visibility("default"))) int lacos_cli_last_signal(void) { return last_signal; }

/* From here on SIGINT, SIGTERM and SIGUSR2 are ignored: a Slurm task that
   has saved everything and asked to be requeued is then sent SIGTERM by
   Slurm, which must not read as a second interrupt. */
__attribute__((visibility("default"))) void lacos_cli_signals_ignore(void) {
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* out = a followed by b; an empty string when it does not fit (a path that
   long names nothing, and the caller then reports what it cannot find). */
static void path_cat(char *out, size_t n, const char *a, const char *b) {
  if (snprintf(out, n, "%s%s", a, b) >= (int)n) out[0] = 0;
}

/* The tree holding lua/ and engine/lacos.h: $LACOS_HOME, else the build
   layout (<repo>/build/lacos), else the installed one (<prefix>/bin/lacos
   with <prefix>/share/lacos). */
static void find_home(const char *exe_dir, char *home, size_t n) {
  const char *env = getenv("LACOS_HOME");
  if (env && *env) { path_cat(home, n, env, ""); return; }
  char probe[PATH_MAX + 64];
  path_cat(probe, sizeof probe, exe_dir, "/../lua/lacos/init.lua");
  if (file_exists(probe)) path_cat(home, n, exe_dir, "/..");
  else path_cat(home, n, exe_dir, "/../share/lacos");
  char resolved[PATH_MAX];
  if (realpath(home, resolved)) path_cat(home, n, resolved, "");
}

static void find_lib(const char *exe_dir, char *lib, size_t n) {
  const char *env = getenv("LACOS_LIB");
  if (env && *env) { path_cat(lib, n, env, ""); return; }
  path_cat(lib, n, exe_dir, "/liblacos.so");
  if (!file_exists(lib)) path_cat(lib, n, exe_dir, "/../lib/liblacos.so");
  char resolved[PATH_MAX];
  if (realpath(lib, resolved)) path_cat(lib, n, resolved, "");
}

/* Output to stdout is buffered, so a full disk, /dev/full or a closed
   descriptor shows only when the buffer is written: checked once at exit,
   as coreutils' close_stdout does, so that `lacos embed --out - --tsv >
   /dev/full` fails with the cause instead of exiting 0 with the output cut
   short. A reader that went away (EPIPE, with SIGPIPE ignored) is not an
   error worth a message. Returns the exit status to use. */
static int check_stdout(int code) {
  int earlier = ferror(stdout);
  errno = 0;
  int failed = fflush(stdout) != 0;
  int err = failed ? errno : 0;
  if (!earlier && !failed) return code;
  if (err == EPIPE) return code ? code : 1;
  if (err) fprintf(stderr, "lacos: write error on standard output: %s\n", strerror(err));
  else fprintf(stderr, "lacos: write error on standard output (output is incomplete)\n");
  return code ? code : 1;
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = "(error object is not a string)";
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv) {
  char exe[PATH_MAX], exe_dir[PATH_MAX], home[PATH_MAX], lib[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) snprintf(exe, sizeof exe, "%s", argv[0]);
  else exe[len] = 0;

  /* libgomp's idle threads spin for a long time between parallel regions
     (GOMP_SPINCOUNT 300,000 by default); when another process wants the same
     cores, every region then waits for a descheduled spinner and the engine
     slows down many times over. A short spin costs nothing measurable on an
     idle machine. libgomp reads its settings before main runs, so the setting
     takes effect through one re-exec; an explicit OMP_WAIT_POLICY or
     GOMP_SPINCOUNT from the user is left alone. */
  if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT") && len > 0) {
    setenv("GOMP_SPINCOUNT", "20000", 1);
    execv(exe, argv);
    /* exec failed: go on with the defaults */
  }
  char scratch[PATH_MAX];
  snprintf(scratch, sizeof scratch, "%s", exe);
  snprintf(exe_dir, sizeof exe_dir, "%s", dirname(scratch));
  find_home(exe_dir, home, sizeof home);
  find_lib(exe_dir, lib, sizeof lib);

  char init[PATH_MAX + 32];
  snprintf(init, sizeof init, "%s/lua/lacos/init.lua", home);
  if (!file_exists(init)) {
    fprintf(stderr, "lacos: cannot find the Lua modules (looked for %s); set LACOS_HOME to the lacos tree\n", init);
    return 1;
  }

  lua_State *L = luaL_newstate();
  if (!L) { fprintf(stderr, "lacos: cannot create a Lua state (out of memory)\n"); return 1; }
  /* count from here on what the state holds already */
  base_alloc = lua_getallocf(L, &base_ud);
  lua_heap = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_setallocf(L, limited_alloc, NULL);
  /* under ulimit -v, what the address space leaves: lacos_memory_headroom
     makes OpenBLAS take its buffer for products now, while the room
     fit_address_space kept for it is still there (later it could spin) */
  double as_left = lacos_memory_address_limit() > 0 ? lacos_memory_headroom(NULL) : 0;
  const char *env_limit = getenv("LACOS_MEMORY_LIMIT");
  if (env_limit && *env_limit) {
    int bad = lacos_cli_memory_limit_set(env_limit);
    if (bad == -2) {
      fprintf(stderr, "lacos: LACOS_MEMORY_LIMIT=%s would leave no memory at all; for no limit say off\n", env_limit);
      lua_close(L);
      return 2;
    }
    if (bad != 0) {
      fprintf(stderr, "lacos: LACOS_MEMORY_LIMIT=%s is not a size (try 8G, 500M, 50%% or off)\n", env_limit);
      lua_close(L);
      return 2;
    }
  } else {
    memory_limit = physical_memory() / 2;
    double engine_limit = physical_memory() * 0.9;
    /* ... which bounds both: an allocation past it is the engine's "would
       pass the memory limit" error, not a NULL inside a library */
    if (as_left > 0) {
      double left = as_left;
      if (left < 16 * MIB) left = 16 * MIB;
      if (left / 2 < memory_limit) memory_limit = left / 2;
      if (left * 0.9 < engine_limit) engine_limit = left * 0.9;
    }
    lacos_memory_set_limit(LACOS_CPU, engine_limit);
  }
  luaL_openlibs(L);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", home, home, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
  lua_pushstring(L, home); lua_setglobal(L, "LACOS_HOME");
  lua_pushstring(L, lib); lua_setglobal(L, "LACOS_LIB");
  lua_pushstring(L, exe); lua_setglobal(L, "LACOS_EXE");

  main_state = L;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);   /* Slurm's signal before a time limit (sbatch --signal=B:USR2@120) */

  lua_pushcfunction(L, traceback);
  lua_getglobal(L, "require");
  lua_pushstring(L, "lacos.cli");
  int status = lua_pcall(L, 1, 1, -3);
  if (status == 0) {
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (int i = 1; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, i); }
    status = lua_pcall(L, 1, 1, -4);
  }
  int code = 0;
  if (status == LUA_ERRMEM) {
    /* the report itself could not be made in Lua: say it from here */
    fprintf(stderr, "lacos: out of memory: the Lua heap reached %s%.0f MiB (set LACOS_MEMORY_LIMIT or --memory-limit)\n",
            limit_explicit ? "the memory limit of " : "its default limit of ", memory_limit / 1048576.0);
    code = 1;
  } else if (status != 0) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "lacos: %s\n", msg ? msg : "(error object is not a string)");
    code = 1;
  } else {
    code = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  }
  main_state = NULL;
  /* an interrupt hook still armed would fire inside the finalizers lua_close
     runs and cut them short (an open run or database never closed) */
  lua_sethook(L, NULL, 0, 0);
  lua_close(L);
  return check_stdout(code);
}
