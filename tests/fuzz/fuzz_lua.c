/* fuzz_lua.c: libFuzzer target for the Lua-facing option validation
   (lua/lacos/util.lua options(), lua/lacos/args.lua parse() with every
   command's spec, and the validating entry points of lacos.optim,
   lacos.sweep and lacos.results). It embeds LuaJIT, loads the lacos modules
   from the tree ($LACOS_ROOT or the current directory) with the engine this
   binary is linked with (ffi.C: the binary exports the engine's symbols),
   and hands each input to tests/fuzz/lua_options.lua, which decodes it into
   option tables and argv lists and checks the outcome. Only clean errors
   may come out: a Lua runtime error inside the validation, a broken
   contract (reported as "FINDING: ...") or a crash is a finding.
   tests/c/test_fuzz_lua.c replays the corpus in `make test`. */
#include "fuzz_common.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static lua_State *L;

/* The Lua modules are not compiled by clang, so libFuzzer would see no
   coverage of them; a line hook feeds it instead: each (previous line,
   line) pair of the interpreted Lua code bumps one of these counters,
   which libFuzzer reads as extra coverage (its __libfuzzer_extra_counters
   section). The JIT is off so every line runs through the hook. */
enum { LUA_COUNTERS = 1 << 16 };
__attribute__((section("__libfuzzer_extra_counters"), used)) static uint8_t lua_counters[LUA_COUNTERS];
static uintptr_t lua_prev_line;

static void line_hook(lua_State *S, lua_Debug *ar) {
  if (!lua_getinfo(S, "S", ar)) return;
  uintptr_t here = (uintptr_t)ar->source * 2654435761u + (uintptr_t)ar->currentline;
  uintptr_t edge = here ^ (lua_prev_line >> 1);
  lua_prev_line = here;
  lua_counters[(edge ^ (edge >> 17)) & (LUA_COUNTERS - 1)]++;
}

/* At exit the state goes first, so that its finalisers close what it holds
   (the scratch database) before LeakSanitizer looks. */
static void close_state(void) {
  if (L) lua_close(L);
  L = NULL;
  fuzz_remove_dir();
}

static void lua_fatal(const char *what) {
  fprintf(stderr, "fuzz_lua: %s: %s\n", what, lua_tostring(L, -1));
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_make_dir("lua");
  const char *root = getenv("LACOS_ROOT");
  if (!root || !*root) root = ".";
  setenv("LACOS_DB_TIMEOUT", "0", 1);
  L = luaL_newstate();
  FUZZ_REQUIRE(L != NULL);
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/tests/fuzz/?.lua", root, root, root);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_pushstring(L, root);
  lua_setglobal(L, "LACOS_HOME");
  /* lacos.engine loads the library named by LACOS_LIB with ffi.load; here
     the engine is part of this executable, which ffi.C already reaches. */
  const char *boot =
    "local ffi = require 'ffi'\n"
    "local load = ffi.load\n"
    "ffi.load = function(name, ...) if name == '@self' then return ffi.C end return load(name, ...) end\n"
    "LACOS_LIB = '@self'\n";
  if (luaL_dostring(L, boot)) lua_fatal("boot");
  lua_getglobal(L, "require");
  lua_pushstring(L, "lua_options");
  if (lua_pcall(L, 1, 1, 0)) lua_fatal("require lua_options");
  lua_getfield(L, -1, "init");
  lua_pushstring(L, fuzz_dir);
  if (lua_pcall(L, 1, 0, 0)) lua_fatal("lua_options.init");
  lua_setglobal(L, "FUZZ_HARNESS");
  if (luaL_dostring(L, "jit.off()")) lua_fatal("jit.off");
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
  atexit(close_state);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int top = lua_gettop(L);
  lua_getglobal(L, "FUZZ_HARNESS");
  lua_getfield(L, -1, "one");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0)) {
    const char *e = lua_tostring(L, -1);
    fprintf(stderr, "fuzz_lua: %s\n", e ? e : "(error object is not a string)");
    abort();
  }
  lua_settop(L, top);
  /* A full collection after every input: handles the input dropped (a
     database opened before a later option failed) are finalised now, so
     LeakSanitizer sees every engine allocation freed. */
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
