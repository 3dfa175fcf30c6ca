-- lacos.cli: the `lacos` command line. main.c calls main(argv) and exits
-- with what it returns.
--
--   lacos                      the REPL
--   lacos run FILE.lua [args]  run a script (arg as in luajit)
--   lacos FILE.lua [args]      the same
--   lacos -e 'code'            run a chunk of code
--   lacos -i FILE.lua          run a script, then the REPL with its globals
--   lacos -l MODULE            require a module first
--   lacos COMMAND [--help]     a lacos command (see `lacos --help`)
local M = {}

-- Commands, in the order --help lists them; each lives in lua/lacos/cmd/<name>.lua
-- and returns { spec = <lacos.args spec>, run = function(opts) -> exit code }.
-- Commands whose module is not present are not offered.
M.commands = {
  { "run", "run a Lua script: lacos run FILE.lua [args...]" },
  { "repl", "open the interactive REPL" },
  { "tokenize", "print the token ids of each line of stdin" },
  { "embed", "embed sentences (one per line) into a .npy file" },
  { "model", "create random-weight BLOOM checkpoints (lacos model random)" },
  { "pull", "download a checkpoint from the Hugging Face hub" },
  { "train", "train LoRA adapters on sentence pairs" },
  { "sts", "evaluate a model on STS benchmarks" },
  { "quant-sensitivity", "rank a model's linears by what int8 costs each; the --int8-skip list for a cosine target" },
  { "data", "list and download datasets" },
  { "results", "list, show, compare and query runs in the results database" },
  { "sweep", "follow or cancel a sweep submitted to Slurm (lacos sweep status|cancel NAME)" },
}

local function module_present(name)
  if name == "run" or name == "repl" then return true end
  local home = LACOS_HOME or require("lacos.engine").home
  local f = io.open(home .. "/lua/lacos/cmd/" .. name .. ".lua", "r")
  if f then f:close() return true end
  return false
end

local function have_command(name)
  for _, c in ipairs(M.commands) do if c[1] == name and module_present(name) then return c end end
end

function M.usage()
  local lines = {
    "lacos " .. require("lacos").version() .. ": BLOOM sentence embeddings with int8 weights, LoRA and 8-bit Adam",
    "",
    "usage:",
    "  lacos                        open the REPL",
    "  lacos run FILE.lua [args]    run a script (also: lacos FILE.lua [args])",
    "  lacos -e 'code'              run a chunk of Lua",
    "  lacos -i FILE.lua [args]     run a script, then open the REPL with its globals",
    "  lacos -l MODULE ...          require MODULE before anything else",
    "  lacos COMMAND [options]      run a command (lacos COMMAND --help for its options)",
    "  lacos --memory-limit SIZE ...  cap the memory of what follows (see below)",
    "  lacos --version, --help",
    "",
    "commands:",
  }
  for _, c in ipairs(M.commands) do
    if module_present(c[1]) then lines[#lines + 1] = ("  %-10s %s"):format(c[1], c[2]) end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "environment: LACOS_DB (results database, default results/lacos.db), LACOS_DATA (datasets),"
  lines[#lines + 1] = "             LACOS_THREADS (worker threads), LACOS_HOME (the lacos tree),"
  lines[#lines + 1] = "             LACOS_MEMORY_LIMIT (as --memory-limit: 8G, 500M, 50%, off; default: the Lua heap"
  lines[#lines + 1] = "             may use half the physical memory)"
  return table.concat(lines, "\n")
end

local function traceback(e)
  if type(e) ~= "string" then
    if type(e) == "table" and getmetatable(e) and getmetatable(e).__tostring then return e end
    e = tostring(e)
  end
  return debug.traceback(e, 2)
end
M.traceback = traceback

-- The memory limit lives in main.c (a counting allocator under the Lua
-- state); these reach it. Absent when the modules run in another host.
local ffi = require "ffi"
require "lacos.engine"   -- declares them (engine/lacos.h)
local function cli_c(name)
  local ok, f = pcall(function() return ffi.C[name] end)
  return ok and f or nil
end

-- LuaJIT's message for a refused allocation, turned into one that says
-- which limit was reached and how to change it. The garbage (often the very
-- table that grew too large) is collected first, so the report has room.
local function memory_message(e)
  if e ~= "not enough memory" and not (type(e) == "string" and e:match("^not enough memory\n")) then return nil end
  collectgarbage()
  collectgarbage()
  local limit, explicit, refusals = cli_c("lacos_cli_memory_limit"), cli_c("lacos_cli_memory_limit_explicit"),
                                    cli_c("lacos_cli_memory_refusals")
  if not (limit and refusals) or refusals() == 0 then return "lacos: out of memory" end
  return ("lacos: out of memory: the Lua heap reached %s %.0f MiB; raise it with LACOS_MEMORY_LIMIT or "
          .. "lacos --memory-limit SIZE (e.g. 8G, 75%%, off)"):format(
          explicit() ~= 0 and "the memory limit of" or "its default limit (half the physical memory) of", limit() / 1048576)
end
M.memory_message = memory_message

local function is_interrupt(e)
  return type(e) == "string" and (e:match("^interrupted") or e:match("^[^\n]*: interrupted\n") or e:match("^[^\n]*: interrupted$"))
end

-- The handler for scripts and -e chunks (see util.user_traceback): a bug in
-- the user's Lua code is "file:line: message" and a traceback of that code's
-- frames (the main chunk's too); an error about the input, which the engine
-- or lacos reports without a Lua position (a missing file, a corrupted
-- database, ...), is its message, as the commands print it, and the script
-- line that led to it.
local function script_traceback(e)
  if type(e) ~= "string" then
    if type(e) == "table" and getmetatable(e) and getmetatable(e).__tostring then return e end
    return ("(error object is a %s value: %s)"):format(type(e), tostring(e))
  end
  if is_interrupt(e) then return e end
  local tb = require("lacos.util").user_traceback(e, 2, { where = true, chunk = true })
  return tb   -- not a tail call: the frame count above depends on this frame
end

-- A failure of one process of a job (mpirun, srun): lacos.dist tells the
-- other ranks, so that they stop waiting for this one, and names the rank
-- in the message. A usage error, which every rank meets alike, is printed by
-- rank 0 alone. Returns the message to print, or nil for none.
local function job_failure(e, usage)
  local dist = package.loaded["lacos.dist"]
  if type(dist) ~= "table" then return e end
  local env = dist.env()
  if not env.launched then return e end
  -- this process is on its way out: a launcher's SIGTERM (it stops the other
  -- ranks once one has failed) must not cut the report short
  _G.LACOS_ON_INTERRUPT = function() end
  local comm = dist.current()
  if not comm or comm:size() <= 1 then
    if usage and env.rank ~= 0 then return nil end
    return e
  end
  local msg = dist.on_error(usage and e.message or e)
  if usage or msg == nil then return comm:rank() == 0 and e or nil end
  if is_interrupt(e) then return e end
  return msg
end

-- Runs a chunk with the traceback handler; returns an exit status.
function M.call(fn, ...)
  local args = { n = select("#", ...), ... }
  local ok, e = xpcall(function() return fn(unpack(args, 1, args.n)) end, script_traceback)
  if ok then return 0 end
  local usage = package.loaded["lacos.args"] and package.loaded["lacos.args"].is_usage_error(e)
  e = job_failure(e, usage)
  if e == nil then return usage and 2 or 1 end
  -- a script's own options (lacos.args): exit 2, as for the commands. Not
  -- required here: after an out-of-memory error loading a module would fail,
  -- and a usage error can only come from lacos.args already loaded.
  local cmdline = package.loaded["lacos.args"]
  if cmdline and cmdline.is_usage_error(e) then
    io.stderr:write(("%s: %s\n"):format(e.command or "lacos", e.message))
    return 2
  end
  if is_interrupt(e) then io.stderr:write("lacos: interrupted\n") return 130 end
  local mem = memory_message(e)
  if mem then io.stderr:write(mem, "\n") return 1 end
  io.stderr:write(tostring(e), "\n")
  return 1
end

-- Where a script named on the command line is: the path as given when it
-- exists, else (a relative path) the same path in the lacos tree or its
-- installed share/lacos, else there under experiments/ — so
-- `lacos run experiments/scale.lua`, `lacos run scale.lua` and `lacos run
-- scale` work from any directory. nil and the places tried when none has it.
function M.find_script(path)
  local util = require "lacos.util"
  if util.exists(path) then return path end   -- (a directory is reported as one by the loader)
  if path:sub(1, 1) == "/" then return nil, { path } end
  local home = LACOS_HOME or require("lacos.engine").home
  local tried = { path }
  local names = { path }
  if not path:match("%.lua$") then names[2] = path .. ".lua" end
  for _, name in ipairs(names) do
    for _, p in ipairs { home .. "/" .. name, home .. "/experiments/" .. name } do
      if util.path_kind(p) == "file" then return p end
      tried[#tried + 1] = p
    end
  end
  return nil, tried
end

function M.run_file(path, args)
  local found, tried = M.find_script(path)
  if not found then
    io.stderr:write(("lacos: cannot open %s: no such file (looked at %s)\n"):format(path, table.concat(tried, ", ")))
    return 1
  end
  path = found
  local chunk, err = loadfile(path)
  if not chunk then
    io.stderr:write(err, "\n")   -- "path:line: message"
    return 1
  end
  local a = { [0] = path, [-1] = LACOS_EXE or "lacos" }
  for i, v in ipairs(args) do a[i] = v end
  _G.arg = a
  return M.call(chunk, unpack(args))
end

local function repl(opts)
  return require("lacos.repl").start(opts or {})
end

-- Runs a lacos command with its own option parsing and error reporting.
function M.command(name, argv)
  local args = require "lacos.args"
  local mod = require("lacos.cmd." .. name)
  local code
  local ok, e = xpcall(function()
    local opts, help = args.parse(mod.spec, argv)
    if not opts then io.stdout:write(help, "\n") code = 0 return end
    code = mod.run(opts) or 0
  end, function(e) if args.is_usage_error(e) then return e end return traceback(e) end)
  if ok then return code end
  local usage = args.is_usage_error(e)
  e = job_failure(e, usage)
  if e == nil then return usage and 2 or 1 end
  if args.is_usage_error(e) then
    io.stderr:write(("lacos %s: %s\nsee 'lacos %s --help'\n"):format(name, e.message, name))
    return 2
  end
  if is_interrupt(e) then io.stderr:write("lacos: interrupted\n") return 130 end
  local mem = memory_message(e)
  if mem then io.stderr:write(mem, "\n") return 1 end
  -- Engine and validation errors already say what and where; drop the traceback
  -- unless LACOS_DEBUG asks for it.
  local msg = tostring(e)
  if not os.getenv("LACOS_DEBUG") then msg = msg:gsub("\nstack traceback:.*$", "") end
  io.stderr:write(("lacos %s: %s\n"):format(name, msg))
  return 1
end

function M.main(argv)
  _G.LACOS_ON_INTERRUPT = function() error("interrupted", 0) end
  local i = 1
  local interactive, ran = false, false
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then print(M.usage()) return 0
    elseif a == "--version" or a == "-v" then
      print("lacos " .. require("lacos").version())
      print(require("lacos").build_info())
      return 0
    elseif a == "-e" then
      local code = argv[i + 1]
      if not code then io.stderr:write("lacos: -e needs a chunk of code\n") return 2 end
      local chunk, err = loadstring(code, "=(command line)")
      if not chunk then io.stderr:write(err, "\n") return 1 end
      local st = M.call(chunk)
      if st ~= 0 then return st end
      ran = true
      i = i + 2
    elseif a == "-l" then
      local name = argv[i + 1]
      if not name then io.stderr:write("lacos: -l needs a module name\n") return 2 end
      -- require's own message names the module and where it looked
      local ok, mod = pcall(require, name)
      if not ok then io.stderr:write(("lacos: -l %s: %s\n"):format(name, tostring(mod))) return 1 end
      _G[name:match("[^.]+$")] = mod
      i = i + 2
    elseif a == "-i" then
      interactive = true
      i = i + 1
    elseif a == "--memory-limit" or a:match("^%-%-memory%-limit=") then
      local v = a:match("^%-%-memory%-limit=(.*)$") or argv[i + 1]
      local set = cli_c("lacos_cli_memory_limit_set")
      if not v then io.stderr:write("lacos: --memory-limit needs a size (e.g. 8G, 500M, 50%, off)\n") return 2 end
      if not set then io.stderr:write("lacos: --memory-limit is not available in this host\n") return 2 end
      local bad = set(v)
      if bad == -2 then
        io.stderr:write(("lacos: --memory-limit %s would leave no memory at all; for no limit say off\n"):format(v))
        return 2
      elseif bad ~= 0 then
        io.stderr:write(("lacos: --memory-limit %s is not a size (e.g. 8G, 500M, 50%%, off)\n"):format(v))
        return 2
      end
      i = i + (a:find("=", 1, true) and 1 or 2)
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local flags = { "--help", "--version", "--memory-limit", "-e", "-i", "-l", "-h", "-v" }
      io.stderr:write(("lacos: unknown option %s%s\nsee 'lacos --help'\n"):format(a,
        require("lacos.args").did_you_mean(a:match("^[^=]*"), flags)))
      return 2
    else
      break
    end
  end
  local rest = { unpack(argv, i) }
  local first = rest[1]
  if first == nil then
    if ran and not interactive then return 0 end
    return repl()
  end
  if first == "run" then
    local path = rest[2]
    if path == "--help" or path == "-h" then
      print("usage: lacos run FILE.lua [args...]\n\nRuns a Lua script with the lacos modules available (require \"lacos\").\n" ..
            "The script sees its arguments in `arg` (arg[0] is the script) and in `...`.")
      return 0
    end
    if not path then io.stderr:write("lacos run: missing script\nsee 'lacos run --help'\n") return 2 end
    local st = M.run_file(path, { unpack(rest, 3) })
    if st == 0 and interactive then return repl() end
    return st
  end
  if first == "repl" then
    if rest[2] == "--help" or rest[2] == "-h" then print(require("lacos.cmd.repl").help) return 0 end
    return repl()
  end
  if have_command(first) then return M.command(first, { unpack(rest, 2) }) end
  local probe = io.open(first, "r")
  if probe then probe:close() end
  if first:match("%.lua$") or probe then
    local st = M.run_file(first, { unpack(rest, 2) })
    if st == 0 and interactive then return repl() end
    return st
  end
  local names = {}
  for _, c in ipairs(M.commands) do if module_present(c[1]) then names[#names + 1] = c[1] end end
  local guess = require("lacos.args").suggest(first, names)
  io.stderr:write(("lacos: unknown command '%s'%s\nsee 'lacos --help'\n"):format(first,
    guess and (" (did you mean '%s'?)"):format(guess) or ""))
  return 2
end

return M
