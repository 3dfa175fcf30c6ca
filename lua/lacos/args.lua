-- lacos.args: command-line option parsing for lacos commands.
--
-- A command declares its options once; the same table gives parsing,
-- validation (types, choices, required), defaults and the --help text.
--   { name = "embed", summary = "...", usage = "...",
--     options = { { "--model", "DIR", "checkpoint directory", required = true },
--                 { "--quant", "KIND", "f32 or int8", default = "int8", choices = { "f32", "int8" } },
--                 { "--tsv", nil, "print tab-separated values" },              -- a flag
--                 { "--threshold", "X", "outlier threshold", type = "number" } },
--     positional = { min = 0, max = 1, names = "FILE" } }
-- parse() returns a table keyed by option name without dashes (dashes inside
-- become underscores), with positional arguments in opts._ .
local M = {}

local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(e) return e.message end
M.UsageError = UsageError

function M.usage_error(cmd, fmt, ...)
  error(setmetatable({ message = fmt:format(...), command = cmd }, UsageError), 0)
end

function M.is_usage_error(e) return getmetatable(e) == UsageError end

-- The edit distance of two strings (insertions, deletions, substitutions,
-- and swaps of two neighbours).
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then v = math.min(v, d[i - 2][j - 2] + 1) end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

-- The candidate closest to a mistyped word, when close enough to be what
-- was meant (at most a third of its letters off, and never more than 3),
-- or one the word begins: nil otherwise.
function M.suggest(word, candidates)
  if type(word) ~= "string" or word == "" then return nil end
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = distance(word:lower(), c:lower())
    if not best_d or d < best_d then best, best_d = c, d end
  end
  if best and best_d <= math.min(3, math.max(1, math.floor(#word / 3))) then return best end
  for _, c in ipairs(candidates) do
    if #word >= 3 and c:sub(1, #word) == word then return c end
  end
  return nil
end

-- " (did you mean X?)" or "".
function M.did_you_mean(word, candidates)
  local s = M.suggest(word, candidates)
  return s and (" (did you mean %s?)"):format(s) or ""
end

local function key_of(flag) return (flag:gsub("^%-%-", ""):gsub("%-", "_")) end

function M.help(spec)
  local lines = { "usage: " .. (spec.usage or ("lacos " .. spec.name .. " [options]")), "" }
  if spec.summary then lines[#lines + 1] = spec.summary; lines[#lines + 1] = "" end
  if spec.description then lines[#lines + 1] = spec.description; lines[#lines + 1] = "" end
  if spec.options and #spec.options > 0 then
    lines[#lines + 1] = "options:"
    local width = 0
    local heads = {}
    for i, o in ipairs(spec.options) do
      heads[i] = "  " .. o[1] .. (o[2] and (" " .. o[2]) or "")
      if #heads[i] > width then width = #heads[i] end
    end
    for i, o in ipairs(spec.options) do
      local text = o[3] or ""
      if o.choices then text = text .. " (" .. table.concat(o.choices, "|") .. ")" end
      if o.default ~= nil then text = text .. " [default: " .. tostring(o.default) .. "]" end
      if o.required then text = text .. " (required)" end
      lines[#lines + 1] = heads[i] .. (" "):rep(width - #heads[i] + 2) .. text
    end
    lines[#lines + 1] = "  --help" .. (" "):rep(width - 8 + 2) .. "show this help"
  end
  if spec.examples then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "examples:"
    for _, e in ipairs(spec.examples) do lines[#lines + 1] = "  " .. e end
  end
  return table.concat(lines, "\n")
end

local function convert(spec, o, raw)
  local name = spec.name
  if o.type == "number" or o.type == "integer" then
    local v = tonumber(raw)
    -- tonumber accepts "inf" and "nan": neither is a usable count or rate
    -- (fuzz_lua found --limit inf taken as a whole number)
    if not v or v ~= v or v == math.huge or v == -math.huge then M.usage_error(name, "%s expects a number, got '%s'", o[1], raw) end
    if o.type == "integer" and v ~= math.floor(v) then M.usage_error(name, "%s expects a whole number, got '%s'", o[1], raw) end
    if o.min and v < o.min then M.usage_error(name, "%s must be at least %s, got %s", o[1], tostring(o.min), raw) end
    if o.max and v > o.max then M.usage_error(name, "%s must be at most %s, got %s", o[1], tostring(o.max), raw) end
    return v
  end
  if o.choices then
    local ok = false
    for _, c in ipairs(o.choices) do if c == raw then ok = true end end
    if not ok then M.usage_error(name, "%s must be one of %s, got '%s'", o[1], table.concat(o.choices, ", "), raw) end
  end
  return raw
end

-- Returns opts, or opts = nil and the help text when --help was given.
function M.parse(spec, argv)
  local byflag = {}
  for _, o in ipairs(spec.options or {}) do byflag[o[1]] = o end
  local opts, pos = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then return nil, M.help(spec) end
    if a == "--" then
      for j = i + 1, #argv do pos[#pos + 1] = argv[j] end
      break
    end
    if a:sub(1, 2) == "--" and #a > 2 then
      local flag, val = a:match("^(%-%-[^=]+)=(.*)$")
      flag = flag or a
      local o = byflag[flag]
      if not o then
        local flags = { "--help" }
        for _, x in ipairs(spec.options or {}) do flags[#flags + 1] = x[1] end
        M.usage_error(spec.name, "unknown option %s%s", flag, M.did_you_mean(flag, flags))
      end
      local key = key_of(flag)
      if o[2] then
        if not val then
          i = i + 1
          val = argv[i]
          if val == nil then M.usage_error(spec.name, "%s needs a value (%s)", flag, o[2]) end
        end
        local v = convert(spec, o, val)
        if o.multiple then opts[key] = opts[key] or {}; table.insert(opts[key], v) else opts[key] = v end
      else
        if val then M.usage_error(spec.name, "%s takes no value", flag) end
        opts[key] = true
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  for _, o in ipairs(spec.options or {}) do
    local key = key_of(o[1])
    if opts[key] == nil then
      if o.required then M.usage_error(spec.name, "missing required option %s", o[1]) end
      if o.default ~= nil then opts[key] = o.default end
      if not o[2] and opts[key] == nil then opts[key] = false end
    end
  end
  local p = spec.positional or { min = 0, max = 0 }
  if #pos < (p.min or 0) then M.usage_error(spec.name, "missing %s", p.names or "argument") end
  if p.max and #pos > p.max then M.usage_error(spec.name, "unexpected argument '%s'", pos[(p.max or 0) + 1]) end
  opts._ = pos
  return opts
end

return M
