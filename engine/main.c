/* main.c: the `lacos` executable. It embeds LuaJIT and hands the command
   line to lua/lacos/cli.lua, which does all the dispatching. This is the
   only C file that knows about Lua; it is linked into the executable, not
   into liblacos.so.

   It also owns signals: the first SIGINT/SIGTERM sets the engine's
   interrupt flag and arms a Lua hook that lets the Lua side decide (the REPL
   cancels the statement, a training loop stops at the next step boundary);
   a second one exits at once with status 130. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdint.h>
#include <stddef.h>
#include "lacos.h"

static lua_State *main_state;
static volatile sig_atomic_t signals_seen;

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
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

static void on_signal(int sig) {
  signals_seen++;
  if (signals_seen > 1) {
    static const char msg[] = "\nlacos: second interrupt, exiting now\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(130);
  }
  lacos_interrupt_request(sig == SIGTERM ? 2 : 1);
  if (main_state) lua_sethook(main_state, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Lets the Lua side re-arm after it has dealt with an interrupt (the REPL
   clears it after cancelling a statement). Exported for ffi.C. */
__attribute__((visibility("default"))) void lacos_cli_signals_reset(void) {
  signals_seen = 0;
  lacos_interrupt_clear();
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* The tree holding lua/ and engine/lacos.h: $LACOS_HOME, else the build
   layout (<repo>/build/lacos), else the installed one (<prefix>/bin/lacos
   with <prefix>/share/lacos). */
static void find_home(const char *exe_dir, char *home, size_t n) {
  const char *env = getenv("LACOS_HOME");
  if (env && *env) { snprintf(home, n, "%s", env); return; }
  char probe[PATH_MAX + 64];
  snprintf(probe, sizeof probe, "%s/../lua/lacos/init.lua", exe_dir);
  if (file_exists(probe)) { snprintf(home, n, "%s/..", exe_dir); }
  else snprintf(home, n, "%s/../share/lacos", exe_dir);
  char resolved[PATH_MAX];
  if (realpath(home, resolved)) snprintf(home, n, "%s", resolved);
}

static void find_lib(const char *exe_dir, char *lib, size_t n) {
  const char *env = getenv("LACOS_LIB");
  if (env && *env) { snprintf(lib, n, "%s", env); return; }
  snprintf(lib, n, "%s/liblacos.so", exe_dir);
  if (!file_exists(lib)) snprintf(lib, n, "%s/../lib/liblacos.so", exe_dir);
  char resolved[PATH_MAX];
  if (realpath(lib, resolved)) snprintf(lib, n, "%s", resolved);
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
  if (status != 0) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "lacos: %s\n", msg ? msg : "(error object is not a string)");
    code = 1;
  } else {
    code = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  }
  fflush(stdout);
  main_state = NULL;
  lua_close(L);
  return code;
}
