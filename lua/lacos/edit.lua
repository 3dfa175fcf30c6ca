-- lacos.edit: line editing for the REPL through libedit (BSD licence, the
-- Debian libedit2 package), loaded at run time with ffi.load and used through
-- its readline-compatible API: readline(), add_history(), read_history() /
-- write_history(), and tab completion through rl_attempted_completion_function.
--
-- libedit reads ~/.editrc (or $EDITRC); rl_readline_name is set to the
-- application name so lines prefixed "lacos:" there apply only to lacos.
--
--   local edit = require "lacos.edit"
--   local ed, err = edit.open{ name = "lacos", history = path, complete = fn }
--   local line = ed:readline("lacos> ")   -- nil at end of input (Ctrl-D)
--   ed:add_history(line)                  -- and rewrites the history file
--
-- complete(text) receives the word before the cursor (words break at spaces,
-- brackets, ',', ';' and '=') and returns a list of replacements for it and
-- the character to append after a single match.
local ffi = require "ffi"

local M = {}

local function cdef(s) pcall(ffi.cdef, s) end
cdef "char *readline(const char *prompt);"
cdef "int add_history(const char *line);"
cdef "int read_history(const char *path);"
cdef "int write_history(const char *path);"
cdef "void stifle_history(int max);"
cdef "int rl_initialize(void);"
cdef "typedef char **lacos_rl_completion_func(const char *text, int start, int end);"
cdef "extern lacos_rl_completion_func *rl_attempted_completion_function;"
cdef "extern int rl_attempted_completion_over;"
cdef "extern int rl_completion_append_character;"
cdef "extern const char *rl_readline_name;"
cdef "extern const char *rl_basic_word_break_characters;"
cdef "extern const char *rl_completer_word_break_characters;"
cdef "void *malloc(size_t n);"
cdef "void *calloc(size_t n, size_t size);"
cdef "void free(void *p);"
cdef "char *setlocale(int category, const char *locale);"
local LC_CTYPE = 0   -- glibc

-- Words for completion break at these only: operators such as '-' and '/'
-- occur in file names, so lacos.complete splits at them itself.
local BREAKS = " \t\n()[]{},;="

local lib, load_err
local function load_lib()
  if lib or load_err then return lib, load_err end
  local want = os.getenv("LACOS_LIBEDIT")
  local names = want and want ~= "" and { want } or { "edit", "libedit.so.2" }
  local errs = {}
  for _, n in ipairs(names) do
    local ok, l = pcall(ffi.load, n)
    if ok then
      -- A library of that name without the readline API is not libedit.
      local has = pcall(function() return l.readline and l.rl_attempted_completion_function end)
      if has then
        -- Keep libedit mapped until the process ends: its editing state lives
        -- in its static variables, and unmapped when lua_close collects the
        -- library, every block it holds would look leaked to a leak checker.
        -- (dlopen of the loaded library with RTLD_NOLOAD | RTLD_NODELETE.)
        pcall(ffi.cdef, "void *dlopen(const char *file, int mode);")
        for _, so in ipairs(n == "edit" and { "libedit.so", "libedit.so.2" } or { n }) do
          if ffi.C.dlopen(so, 0x1 + 0x4 + 0x1000) ~= nil then break end
        end
        lib = l
        return lib
      end
      errs[#errs + 1] = n .. ": no readline API"
    else
      errs[#errs + 1] = tostring(l)
    end
  end
  load_err = table.concat(errs, "; ")
  return nil, load_err
end

-- The objects libedit keeps pointers to must stay referenced for the life of
-- the process: the name, the break characters and the one callback.
local keep = {}
local completer          -- the Lua function behind the callback
local callback           -- the FFI callback, created once

local charpp = ffi.typeof("char **")
local function cstrdup(s)
  local p = ffi.cast("char *", ffi.C.malloc(#s + 1))
  if p == nil then return nil end
  ffi.copy(p, s, #s)   -- ffi.copy of a string also writes the terminating NUL
  p[#s] = 0
  return p
end

local function common_prefix(list)
  local p = list[1]
  for i = 2, #list do
    local s = list[i]
    local n = 0
    while n < #p and n < #s and p:byte(n + 1) == s:byte(n + 1) do n = n + 1 end
    p = p:sub(1, n)
  end
  return p
end

-- Builds the NULL-terminated, malloc'ed array libedit expects (and frees):
-- [0] replaces the word, [1..n] are listed when there are several. One slot
-- more than needed stays NULL, since libedit peeks at [2].
local function match_array(list, text)
  local n = #list
  local arr = ffi.cast(charpp, ffi.C.calloc(n + 3, ffi.sizeof("char *")))
  if arr == nil then return nil end
  local head = n == 1 and list[1] or common_prefix(list)
  if #head < #text then head = text end
  arr[0] = cstrdup(head)
  if n > 1 then for i = 1, n do arr[i] = cstrdup(list[i]) end end
  return arr
end

local function on_complete(text_p, start, stop)
  local ok, arr = pcall(function()
    lib.rl_attempted_completion_over = 1   -- never fall back to libedit's file names
    lib.rl_completion_append_character = 0
    if not completer then return nil end
    local text = ffi.string(text_p)
    local list, append = completer(text)
    if not list or #list == 0 then return nil end
    if #list == 1 and append and append ~= "" then lib.rl_completion_append_character = append:byte() end
    return match_array(list, text)
  end)
  if ok and arr then return arr end
  return nil
end
-- The callback runs inside readline(), itself called from interpreted code
-- (see readline below), never from a compiled trace.

-- Failures (no permission) show up later, when the history is written, harmlessly.
local function mkdir_p(dir) pcall(require("lacos.util").mkdir_p, dir) end
M.mkdir_p = mkdir_p

-- The history file: $LACOS_HISTORY, else $XDG_STATE_HOME/lacos/history when
-- XDG_STATE_HOME is set (an absolute path), else ~/.lacos_history. Returns
-- nil when there is nowhere to keep it (LACOS_HISTORY set to empty).
function M.history_path()
  local p = os.getenv("LACOS_HISTORY")
  if p then return p ~= "" and p or nil end
  local xdg = os.getenv("XDG_STATE_HOME")
  if xdg and xdg:sub(1, 1) == "/" then return xdg:gsub("/+$", "") .. "/lacos/history" end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home:gsub("/+$", "") .. "/.lacos_history" end
  return nil
end

local Editor = {}
Editor.__index = Editor

-- open{ name, history, complete, max_history }: returns an editor, or nil
-- and the reason libedit could not be loaded.
function M.open(opts)
  opts = opts or {}
  local l, err = load_lib()
  if not l then return nil, err end
  -- libedit decodes keys with the C library's multibyte functions: without a
  -- UTF-8 LC_CTYPE it drops every non-ASCII character. Only LC_CTYPE changes
  -- (number formatting stays in the C locale).
  local loc = ffi.C.setlocale(LC_CTYPE, "")
  local locname = loc ~= nil and ffi.string(loc) or "C"
  if locname == "C" or locname == "POSIX" then ffi.C.setlocale(LC_CTYPE, "C.UTF-8") end
  local name = opts.name or "lacos"
  keep.name = ffi.new("char[?]", #name + 1, name)
  keep.breaks = ffi.new("char[?]", #BREAKS + 1, BREAKS)
  l.rl_readline_name = keep.name
  l.rl_initialize()
  l.rl_basic_word_break_characters = keep.breaks
  l.rl_completer_word_break_characters = keep.breaks
  completer = opts.complete
  if not callback then
    callback = ffi.cast("lacos_rl_completion_func *", on_complete)
    keep.callback = callback
  end
  l.rl_attempted_completion_function = callback
  local self = setmetatable({ history = opts.history, last = nil }, Editor)
  l.stifle_history(opts.max_history or 1000)
  if self.history then
    local dir = self.history:match("^(.*)/[^/]*$")
    if dir and dir ~= "" then mkdir_p(dir) end
    l.read_history(self.history)   -- a missing file is fine: it is created on the first write
  end
  return self
end

-- Reads one line with editing; nil at end of input.
function Editor:readline(prompt)
  io.stdout:flush()
  local p = lib.readline(prompt)
  if p == nil then return nil end
  local s = ffi.string(p)
  ffi.C.free(p)
  return s
end
-- readline() may call back into Lua (completion): keep it out of traces.
jit.off(Editor.readline)

-- Adds a line to the history (not blank lines, not a repeat of the last one)
-- and rewrites the history file; write failures are ignored.
function Editor:add_history(line)
  if not line:find("%S") or line == self.last then return end
  self.last = line
  lib.add_history(line)
  if self.history then lib.write_history(self.history) end
end

function M.available()
  local l, err = load_lib()
  return l ~= nil, err
end

return M
