-- lua_options.lua: the Lua half of the fuzz_lua target (tests/fuzz/fuzz_lua.c).
-- It decodes a fuzz input into Lua values and feeds them to the Lua-facing
-- option validation:
--   mode 0  lacos.args.parse with the spec of a real command (argv strings)
--   mode 1  lacos.util.options with a decoded defaults table and options value
--   mode 2  lacos.optim.adamw / adam8bit options (no parameters: the call must
--           end in a clean error either way)
--   mode 3  lacos.sweep.new specs
--   mode 4  lacos.results: open, db:runs and db:find_run options (a scratch database)
-- A call may succeed or raise a clean error: a string naming the function
-- (or an args usage error). A Lua runtime error from inside the validation
-- ("attempt to index a nil value", "bad argument #1 to 'ipairs'", ...), a
-- result that breaks the documented contract or a crash is a finding: the
-- harness raises "FINDING: ..." and the C side aborts.
local M = {}

local args = require "lacos.args"
local util = require "lacos.util"

local COMMANDS = { "data", "embed", "model", "pull", "results", "sts", "tokenize", "train" }
local specs = {}

local WORDS = {
  "quant", "threshold", "device", "seed", "lr", "betas", "eps", "weight_decay", "min_8bit_size", "block_size",
  "optim_bits", "readonly", "create", "timeout", "status", "experiment", "limit", "config", "name", "axes", "order",
  "fixed", "validate", "estimate", "run", "script", "describe", "int8", "f32", "cpu", "cuda", "done", "running",
  "adamw", "adam8bit", "x", "", "1", "0x10", "inf", "-inf", "nan", "-1", "1e999", "0.5", "1e-3", "true", "--",
  "-h", "--help", "queued", "failed", "dead", "mean", "f16", "bf16", "int8_skip", "value", "h.0",
}
local NUMBERS = { 0, -1, 1, 0.5, 1e308, -1e308, math.huge, -math.huge, 0 / 0, 2 ^ 53, 2 ^ 31, -0.0, 1e-300, 256, 8, 4096 }

local db   -- scratch results database (mode 4)

function M.init(scratch)
  for _, name in ipairs(COMMANDS) do
    local ok, mod = pcall(require, "lacos.cmd." .. name)
    if ok and type(mod) == "table" and mod.spec then specs[#specs + 1] = mod.spec end
  end
  assert(#specs > 0, "no command specs found")
  db = require("lacos.results").open(scratch .. "/options.db")
  -- everything the modes load lazily, loaded now: module-level allocations
  -- (cjson's buffer, say) would otherwise look like a leak of the first input
  for _, m in ipairs { "lacos.optim", "lacos.sweep", "lacos.json", "lacos.tensor" } do require(m) end
  db:runs({})
  db:find_run({ config = { lr = 1 } })
end

-- a byte reader over the input
local function reader(s)
  local pos = 0
  local r = {}
  function r.byte()
    pos = pos + 1
    return s:byte(pos) or 0
  end
  function r.left() return #s - pos end
  function r.bytes(n)
    local t = s:sub(pos + 1, pos + n)
    pos = pos + n
    return t
  end
  return r
end

local function word(r) return WORDS[r.byte() % #WORDS + 1] end

local value
local function key(r)
  local b = r.byte() % 8
  if b < 5 then return word(r) end
  if b == 5 then return r.byte() % 4 + 1 end      -- array-like keys
  if b == 6 then
    local n = NUMBERS[r.byte() % #NUMBERS + 1]
    if n ~= n then return true end   -- NaN cannot be a key
    return n
  end
  return { }                                      -- a table as a key
end

function value(r, depth)
  local b = r.byte() % 16
  if b == 0 then return nil
  elseif b == 1 then return false
  elseif b == 2 then return true
  elseif b == 3 then return r.byte() - 128
  elseif b == 4 then return NUMBERS[r.byte() % #NUMBERS + 1]
  elseif b == 5 then return r.bytes(r.byte() % 12)
  elseif b == 6 or b == 15 then return word(r)
  elseif b == 7 or b == 8 then
    local t = {}
    if depth > 3 then return t end
    for _ = 1, r.byte() % 6 do
      local k = b == 8 and #t + 1 or key(r)
      local v = value(r, depth + 1)
      if k ~= nil and k == k then t[k] = v end
    end
    return t
  elseif b == 9 then return util.REQUIRED
  elseif b == 10 then return util.ANY
  elseif b == 11 then return function() return 1 end
  elseif b == 12 then return require("ffi").new("int[1]")
  elseif b == 13 then return coroutine.create(function() end)
  else return io.stdout end
end

-- a table the decoder made (not a shared sentinel: writing into util.ANY
-- would change every later input)
local function fresh(t) return type(t) == "table" and getmetatable(t) == nil end

local BAD = { "attempt to", "bad argument", "table index is", "stack overflow", "invalid key to", "invalid option" }

local function finding(fmt, ...)
  error("FINDING: " .. fmt:format(...), 0)
end

-- A clean error: a usage error, or a string that is not a Lua runtime error.
local function check_error(e, where)
  if args.is_usage_error(e) then
    if type(e.message) ~= "string" or e.message == "" then finding("usage error without a message") end
    return
  end
  if type(e) ~= "string" then finding("error object of type %s from %s", type(e), where) end
  for _, bad in ipairs(BAD) do
    if e:find(bad, 1, true) then finding("Lua runtime error from %s: %s", where, e) end
  end
  if where and not e:find(where, 1, true) then finding("error from %s does not say where: %s", where, e) end
end

local function call(where, fn, ...)
  local res = { pcall(fn, ...) }
  if not res[1] then check_error(res[2], where) return nil end
  return unpack(res, 2, table.maxn(res))
end

-- ------------------------------------------------------------ mode 0: args.parse

local function key_of(flag) return (flag:gsub("^%-%-", ""):gsub("%-", "_")) end

local function fuzz_args(r)
  local spec = specs[r.byte() % #specs + 1]
  local argv = {}
  local n = r.byte() % 8
  for i = 1, n do
    local b = r.byte() % 6
    if b <= 2 and spec.options and #spec.options > 0 then
      local o = spec.options[r.byte() % #spec.options + 1]
      if b == 2 then argv[i] = o[1] .. "=" .. word(r) else argv[i] = o[1] end
    elseif b == 3 then argv[i] = word(r)
    elseif b == 4 then argv[i] = r.bytes(r.byte() % 10)
    else argv[i] = "--" .. word(r) end
  end
  local ok, opts, help = pcall(args.parse, spec, argv)
  if not ok then
    if not args.is_usage_error(opts) then finding("args.parse(%s) raised a non-usage error: %s", spec.name, tostring(opts)) end
    if opts.command ~= spec.name then finding("usage error names command %s, not %s", tostring(opts.command), spec.name) end
    return
  end
  if opts == nil then
    if type(help) ~= "string" or not help:find("usage:", 1, true) then finding("--help gave no help text") end
    return
  end
  if type(opts._) ~= "table" then finding("no positional list") end
  local p = spec.positional or { min = 0, max = 0 }
  if #opts._ < (p.min or 0) or (p.max and #opts._ > p.max) then finding("%d positional arguments accepted", #opts._) end
  for _, o in ipairs(spec.options or {}) do
    local k = key_of(o[1])
    local v = opts[k]
    if o.required and v == nil then finding("required option %s missing", o[1]) end
    local vals = (o.multiple and type(v) == "table") and v or { v }
    for _, x in ipairs(vals) do
      if o.type == "number" or o.type == "integer" then
        if type(x) ~= "number" then finding("%s gave a %s", o[1], type(x)) end
        if x ~= x or x == math.huge or x == -math.huge then finding("%s accepted the non-finite number %s", o[1], tostring(x)) end
        if o.type == "integer" and x ~= math.floor(x) then finding("%s accepted the fraction %s", o[1], tostring(x)) end
        if o.min and x < o.min then finding("%s accepted %s below its minimum", o[1], tostring(x)) end
        if o.max and x > o.max then finding("%s accepted %s above its maximum", o[1], tostring(x)) end
      elseif o.choices and x ~= o.default then
        local found = false
        for _, c in ipairs(o.choices) do if c == x then found = true end end
        if not found then finding("%s accepted '%s' outside its choices", o[1], tostring(x)) end
      elseif not o[2] and type(x) ~= "boolean" then
        finding("flag %s gave a %s", o[1], type(x))
      end
    end
  end
end

-- ------------------------------------------------------------ mode 1: util.options

local function fuzz_util(r)
  local defaults = {}
  for _ = 1, r.byte() % 6 do
    local k = word(r)
    local v = value(r, 2)
    if v ~= nil then defaults[k] = v end
  end
  local opts = value(r, 0)
  local ok, out = pcall(util.options, opts, defaults, "fuzzwhere")
  if not ok then check_error(out, "fuzzwhere") return end
  if type(out) ~= "table" then finding("options returned a %s", type(out)) end
  if type(opts) ~= "table" and opts ~= nil then finding("options accepted a %s as the options table", type(opts)) end
  for k, d in pairs(defaults) do
    local v = out[k]
    if d == util.REQUIRED and v == nil then finding("required option %s missing", tostring(k)) end
    if d ~= util.REQUIRED and d ~= util.ANY then
      if v == nil and type(d) ~= "boolean" then finding("option %s lost its default", tostring(k)) end
      if v ~= nil and type(v) ~= type(d) then finding("option %s has type %s, default %s", tostring(k), type(v), type(d)) end
    end
    if v == util.REQUIRED then finding("the REQUIRED marker leaked into the result") end
  end
  for k, v in pairs(out) do
    if defaults[k] == nil then finding("unknown option %s accepted", tostring(k)) end
    if opts and opts[k] ~= nil and not (v == opts[k] or (v ~= v and opts[k] ~= opts[k])) then
      finding("option %s changed value", tostring(k))
    end
  end
end

-- ------------------------------------------------------------ modes 2-4: real modules

local function fuzz_optim(r)
  local optim = require "lacos.optim"
  local kind = r.byte() % 2 == 0 and "adamw" or "adam8bit"
  local opts = value(r, 0)
  if r.byte() % 4 == 0 and fresh(opts) then opts.betas = value(r, 1) end
  local ok, e = pcall(optim[kind], {}, opts)
  if ok then finding("lacos.optim.%s accepted an empty parameter list", kind) end
  check_error(e, "lacos.optim." .. kind)
end

local function fuzz_sweep(r)
  local sweep = require "lacos.sweep"
  local spec = value(r, 0)
  if fresh(spec) and r.byte() % 2 == 0 then
    spec.name = value(r, 1)
    spec.axes = value(r, 1)
    spec.run = function() end
    if r.byte() % 2 == 0 then spec.order = value(r, 1) end
    if r.byte() % 2 == 0 then spec.fixed = value(r, 1) end
  end
  call("lacos.sweep.new", sweep.new, spec)
end

local function fuzz_results(r)
  local b = r.byte() % 3
  local opts = value(r, 0)
  -- engine errors (a bad timeout, say) name the file rather than the function
  if b == 0 then
    local h = call(nil, require("lacos.results").open, db.path, opts)
    if h then h:close() end
  elseif b == 1 then
    call(nil, db.runs, db, opts)
  else
    call(nil, db.find_run, db, opts)
  end
end

local MODES = { [0] = fuzz_args, fuzz_util, fuzz_optim, fuzz_sweep, fuzz_results }

function M.one(input)
  local r = reader(input)
  MODES[r.byte() % 5](r)
end

return M
