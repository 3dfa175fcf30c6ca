-- lacos.help: documentation looked up where it is written. For an engine C
-- function (lacos_tensor_matmul) it is the comment block before its
-- declaration in engine/lacos.h, with the declaration; for a Lua function
-- the `--` lines before its definition in the source file (found through
-- debug.getinfo), with the definition line; for a module its opening comment
-- and the list of its functions. The REPL's `?name` prints lookup(name).
--
--   help.lookup("lacos.tensor.zeros")  -> text or nil, reason
--   help.lookup("lacos_tensor_matmul")
--   help.of(value [, name])            -> text for a value already in hand
local M = {}

local function read_lines(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local lines = {}
  for l in f:lines() do lines[#lines + 1] = l end
  f:close()
  return lines
end

local cache = {}
local function lines_of(path)
  local l = cache[path]
  if l == nil then l = read_lines(path) or false cache[path] = l end
  return l or nil
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- ---------------------------------------------------------------- C functions

local function header_path()
  local ok, E = pcall(require, "lacos.engine")
  if ok and E.header then return E.header end
  return ((rawget(_G, "LACOS_HOME") or ".") .. "/engine/lacos.h")
end

-- The text of a /* ... */ block ending on line `last` (going back to its start),
-- without the comment markers; nil if line `last` does not end a comment.
local function c_comment_before(lines, last)
  if not lines[last] or not lines[last]:find("%*/%s*$") then return nil end
  local first = last
  while first >= 1 and not lines[first]:find("/%*") do first = first - 1 end
  if first < 1 then return nil end
  local out = {}
  for i = first, last do
    local l = lines[i]
    if i == first then l = l:gsub("^.-/%*+", "") end
    if i == last then l = l:gsub("%*+/%s*$", "") end
    l = l:gsub("^%s*%*?%s?", ""):gsub("%s+$", "")
    out[#out + 1] = l
  end
  while out[1] and not out[1]:find("%S") do table.remove(out, 1) end
  while out[#out] and not out[#out]:find("%S") do table.remove(out) end
  if #out == 0 then return nil end
  -- Common leading indentation of the continuation lines goes.
  return table.concat(out, "\n"), first
end

-- Whether line l ends a comment block (not a declaration with a trailing comment).
local function ends_comment(l)
  if not l:find("%*/%s*$") then return false end
  local before = l:match("^(.-)/%*")
  return not (before and before:find(";"))
end

local function is_declaration(l)
  return l:find("^%s*[%w_][%w_%s%*]-%s%*?[%w_]+%(") ~= nil or l:find("^%s+[%w_].*[,;%)]%s*$") ~= nil
end

-- help for an engine function: its comment block (or the one heading the
-- group of declarations it belongs to), the declaration, the section.
function M.c_function(name)
  local path = header_path()
  local lines = lines_of(path)
  if not lines then return nil, "cannot read " .. path end
  local at
  for i, l in ipairs(lines) do
    if l:find("[%s%*]" .. name .. "%s*%(") and not l:find("^%s*/?%*") then at = i break end
  end
  if not at then return nil end
  -- The declaration runs to the line ending with ';'.
  local stop = at
  while stop < #lines and not lines[stop]:find(";") do stop = stop + 1 end
  local decl = {}
  for i = at, stop do decl[#decl + 1] = lines[i] end
  -- Its comment: right above it, or above the run of declarations it is in.
  local doc
  local j = at - 1
  while j >= 1 do
    local l = lines[j]
    if ends_comment(l) then
      if l:find("^%s*/%*%s*=====") then break end   -- a section marker is not documentation
      doc = c_comment_before(lines, j)
      break
    end
    if not l:find("%S") then break end
    if not is_declaration(l) and not l:find("^%s*typedef") and not l:find("^%s*enum") then break end
    j = j - 1
  end
  local section
  for i = at, 1, -1 do
    local s = lines[i]:match("^/%*%s*=====%s*(.-)%s*=====")
    if s then section = s break end
  end
  local out = { ("%s  (C, %s:%d%s)"):format(name, "engine/lacos.h", at, section and (", section: " .. section) or "") }
  if doc then out[#out + 1] = doc end
  out[#out + 1] = table.concat(decl, "\n")
  return table.concat(out, "\n")
end

-- ---------------------------------------------------------------- Lua functions

local function source_path(src)
  if type(src) ~= "string" or src:sub(1, 1) ~= "@" then return nil end
  return src:sub(2)
end

local function short(path)
  local home = rawget(_G, "LACOS_HOME")
  if home and path:sub(1, #home + 1) == home .. "/" then return path:sub(#home + 2) end
  return path
end

-- The `--` comment lines right above line `at` (stopping at a blank or code line).
local function lua_comment_before(lines, at)
  local out = {}
  local j = at - 1
  while j >= 1 do
    local c = lines[j]:match("^%s*%-%-+%s?(.*)$")
    if not c or lines[j]:find("^%s*%-%-%[%[") then break end
    table.insert(out, 1, c)
    j = j - 1
  end
  if #out == 0 then return nil end
  return table.concat(out, "\n")
end

-- The signature part of a definition line: up to the parameter list's ')'.
local function signature(line)
  local s = line:match("^%s*(.-function[^(]*%b())")
  return s or trim(line)
end

local BUILTIN_LIBS = { "string", "table", "math", "io", "os", "coroutine", "debug", "package", "bit", "jit", "ffi" }

local function builtin_name(f)
  for k, v in pairs(_G) do if v == f and type(k) == "string" then return k end end
  for _, lib in ipairs(BUILTIN_LIBS) do
    local t = rawget(_G, lib) or package.loaded[lib]
    if type(t) == "table" then
      for k, v in pairs(t) do if v == f then return lib .. "." .. k end end
    end
  end
end

function M.lua_function(f, name)
  local info = debug.getinfo(f, "S")
  if info.what == "C" then
    local b = builtin_name(f)
    if b then
      local lua_ref = b:match("^bit%.") and "https://bitop.luajit.org/api.html" or
        b:match("^jit%.") and "https://luajit.org/ext_jit.html" or
        b:match("^ffi%.") and "https://luajit.org/ext_ffi_api.html" or
        ("https://www.lua.org/manual/5.1/manual.html#pdf-" .. b)
      return ("%s: a built-in function of LuaJIT (see %s)"):format(b, lua_ref)
    end
    return (name or "this") .. ": a built-in function (no source to show)"
  end
  local path = source_path(info.source)
  local where = path and ("%s:%d"):format(short(path), info.linedefined) or (info.short_src .. ":" .. info.linedefined)
  local lines = path and lines_of(path)
  if not lines or not lines[info.linedefined] then
    return ("%s  (Lua, %s)\nno source file to read the documentation from"):format(name or "function", where)
  end
  local def = lines[info.linedefined]
  local out = { ("%s  (Lua, %s)"):format(name or "function", where) }
  local doc = lua_comment_before(lines, info.linedefined)
  out[#out + 1] = doc or "(no comment above the definition)"
  out[#out + 1] = signature(def)
  -- The engine functions it calls, for `?lacos_...`.
  local calls, seen = {}, {}
  for i = info.linedefined, math.min(info.lastlinedefined, #lines) do
    for c in lines[i]:gmatch("C%.(lacos_[%w_]+)") do
      if not seen[c] then seen[c] = true calls[#calls + 1] = c end
    end
  end
  if #calls > 0 then out[#out + 1] = "engine calls: " .. table.concat(calls, ", ") .. "  (?name for each)" end
  return table.concat(out, "\n")
end

-- ---------------------------------------------------------------- modules

local function module_name(t)
  for k, v in pairs(package.loaded) do if v == t and type(k) == "string" then return k end end
end

local function module_file(t, modname)
  if modname then
    local p = package.searchpath and package.searchpath(modname, package.path)
    if p then return p end
  end
  for _, v in pairs(t) do
    if type(v) == "function" then
      local info = debug.getinfo(v, "S")
      local p = source_path(info.source)
      if p then return p end
    end
  end
end

-- "label: a, b, c" folded at 78 columns.
local function wrap(label, words)
  local lines, cur = {}, label
  for i, w in ipairs(words) do
    local piece = w .. (i < #words and "," or "")
    if #cur + #piece + 1 > 78 and cur ~= label then
      lines[#lines + 1] = cur
      cur = (" "):rep(#label) .. piece
    else
      cur = cur .. (cur == label and "" or " ") .. piece
    end
  end
  lines[#lines + 1] = cur
  return table.concat(lines, "\n")
end

function M.module(t, name)
  local modname = module_name(t)
  local out = { ("%s  (table%s)"):format(name or modname or "table", modname and (", module " .. modname) or "") }
  local path = module_file(t, modname)
  local lines = path and lines_of(path)
  if lines and modname then
    local head = {}
    for _, l in ipairs(lines) do
      local c = l:match("^%-%-+%s?(.*)$")
      if not c then break end
      head[#head + 1] = c
    end
    if #head > 0 then out[#out + 1] = table.concat(head, "\n") end
  end
  local fns, others = {}, {}
  for k, v in pairs(t) do
    if type(k) == "string" then
      if type(v) == "function" then fns[#fns + 1] = k else others[#others + 1] = k end
    end
  end
  local sub = t == package.loaded.lacos and t.submodules or rawget(t, "submodules")
  if type(sub) == "table" then for k in pairs(sub) do if rawget(t, k) == nil then others[#others + 1] = k end end end
  table.sort(fns)
  table.sort(others)
  if #fns > 0 then out[#out + 1] = wrap("functions: ", fns) end
  if #others > 0 then out[#out + 1] = wrap("fields: ", others) end
  return table.concat(out, "\n")
end

-- ---------------------------------------------------------------- lookup

-- Evaluates a dotted name (a.b.c, with a:b for a method) without running code
-- other than index metamethods; returns the value (or nil) and whether the
-- path was well-formed.
function M.resolve(name, env)
  env = env or _G
  if not name:match("^[%a_][%w_]*[%w_%.:]*$") or name:find("[%.:][%.:]") or name:find("[%.:]$") then return nil, false end
  local v = env
  for part in name:gmatch("[^%.:]+") do
    if v == nil then return nil, true end
    local ok, r = pcall(function() return v[part] end)
    if not ok then return nil, true end
    v = r
  end
  return v, true
end

function M.of(v, name)
  local tv = type(v)
  if tv == "function" then return M.lua_function(v, name) end
  if tv == "table" then return M.module(v, name) end
  if tv == "cdata" then
    local pretty = require "lacos.pretty"
    if pretty.is_tensor(v) then
      return (name or "value") .. ": a lacos tensor; its methods: " ..
        (function() local ks = {} for k in pairs(require("lacos.tensor").methods) do ks[#ks + 1] = k end table.sort(ks) return table.concat(ks, ", ") end)() ..
        "\nproperties: dtype, device, ndim, shape; ?lacos.tensor for the module"
    end
    return (name or "value") .. ": " .. tostring(v)
  end
  return ("%s: a %s (%s)"):format(name or "value", tv, require("lacos.pretty").format(v))
end

function M.lookup(name, env)
  name = trim(name or "")
  if name == "" then return nil, "no name given" end
  local v, well_formed = M.resolve(name, env)
  if not well_formed then return nil, ("'%s' is not a name (use ?a.b.c)"):format(name) end
  if v ~= nil then
    -- An engine function reached through the FFI namespace (lacos.engine.C.lacos_x).
    if type(v) == "cdata" then
      local last = name:match("([%w_]+)$")
      if last:match("^lacos_") then
        local t = M.c_function(last)
        if t then return t end
      end
    end
    return M.of(v, name)
  end
  local last = name:match("([%w_]+)$")
  if last and last:match("^lacos_") then
    local t, err = M.c_function(last)
    if t then return t end
    if err then return nil, err end
    return nil, ("no engine function %s in engine/lacos.h"):format(last)
  end
  return nil, ("%s is nil (not defined)"):format(name)
end

return M
