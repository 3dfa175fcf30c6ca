-- harness: the Lua test harness. Each test prints one TAP-style line
-- ("ok - name", "not ok - name", "ok - name # SKIP reason"); assertion
-- failures print "#" diagnostics. H.done() ends the file with its status.
local H = {}
local failures = 0

local function diag(msg)
  for line in tostring(msg):gmatch("[^\n]+") do print("#   " .. line) end
end

function H.test(name, fn)
  local ok, err = xpcall(fn, function(e)
    if type(e) == "table" and e.skip then return e end
    return debug.traceback(tostring(e), 2)
  end)
  if ok then print("ok - " .. name)
  elseif type(err) == "table" and err.skip then print("ok - " .. name .. " # SKIP " .. err.skip)
  else
    print("not ok - " .. name)
    diag(err)
    failures = failures + 1
  end
  io.stdout:flush()
end

-- Inside a test: stop it and report it skipped.
function H.skip(reason) error({ skip = reason }, 0) end
function H.skip_test(name, reason) print("ok - " .. name .. " # SKIP " .. reason) end

local function fmt(v) if type(v) == "string" then return string.format("%q", v) end return tostring(v) end

function H.eq(a, b, what)
  if a ~= b then error(("%sexpected %s, got %s"):format(what and (what .. ": ") or "", fmt(b), fmt(a)), 2) end
end
function H.near(a, b, tol, what)
  tol = tol or 1e-6
  if type(a) ~= "number" or type(b) ~= "number" or not (math.abs(a - b) <= tol) then
    error(("%sexpected %s within %g, got %s"):format(what and (what .. ": ") or "", fmt(b), tol, fmt(a)), 2)
  end
end
function H.truthy(v, what) if not v then error((what or "expected a true value") .. ", got " .. fmt(v), 2) end return v end
function H.match(s, pattern, what)
  if type(s) ~= "string" or not s:find(pattern) then
    error(("%sexpected a string matching %q, got %s"):format(what and (what .. ": ") or "", pattern, fmt(s)), 2)
  end
end
-- Asserts fn raises an error whose message contains `needle` (plain text).
function H.raises(needle, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error containing " .. fmt(needle) .. ", but the call succeeded", 2) end
  err = tostring(err)
  if needle and not err:find(needle, 1, true) then error("expected an error containing " .. fmt(needle) .. ", got " .. fmt(err), 2) end
  return err
end
-- Deep equality of tables of numbers within tol.
function H.same(a, b, tol, path)
  path = path or "value"
  tol = tol or 0
  if type(a) == "table" and type(b) == "table" then
    if #a ~= #b then error(("%s: length %d, expected %d"):format(path, #a, #b), 2) end
    for i = 1, #b do H.same(a[i], b[i], tol, path .. "[" .. i .. "]") end
    return
  end
  if type(a) == "number" and type(b) == "number" then
    if not (math.abs(a - b) <= tol) then error(("%s: %s, expected %s"):format(path, fmt(a), fmt(b)), 2) end
    return
  end
  if a ~= b then error(("%s: %s, expected %s"):format(path, fmt(a), fmt(b)), 2) end
end

-- Shell helpers for command-line tests run from Lua.
H.lacos = os.getenv("LACOS") or "build/lacos"
H.tmp = os.getenv("LACOS_TEST_TMP") or "/tmp"
H.data = os.getenv("LACOS_TEST_DATA")
H.root = os.getenv("LACOS_ROOT") or "."

-- Runs a shell command; returns exit status, stdout, stderr.
local sh_count = 0
function H.sh(cmd, stdin)
  sh_count = sh_count + 1
  local id = tostring({}):match("0x%x+") .. "." .. sh_count
  local o, e, i = H.tmp .. "/sh." .. id .. ".out", H.tmp .. "/sh." .. id .. ".err", H.tmp .. "/sh." .. id .. ".in"
  local redirect = ""
  if stdin then
    local f = assert(io.open(i, "wb")); f:write(stdin); f:close()
    redirect = " < " .. i
  else
    redirect = " < /dev/null"
  end
  local full = "(" .. cmd .. ")" .. redirect .. " > " .. o .. " 2> " .. e .. "; echo $? >> " .. o .. ".rc"
  os.execute(full)
  local function slurp(p) local f = io.open(p, "rb"); if not f then return "" end local s = f:read("*a"); f:close(); os.remove(p); return s end
  local rc = tonumber((slurp(o .. ".rc"):match("%d+")))
  local out, err = slurp(o), slurp(e)
  if stdin then os.remove(i) end
  return rc, out, err
end

function H.write(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end
function H.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
function H.exists(path) local f = io.open(path, "rb"); if f then f:close() return true end return false end
-- The n of a "SELECT count(*) AS n ..." query on a results database, opened read-only.
function H.count(db_path, sql, ...)
  local db = require("lacos.results").open(db_path, { readonly = true })
  local n = db:query(sql, ...)[1].n
  db:close()
  return n
end

function H.done()
  os.exit(failures == 0 and 0 or 1, true)   -- close the state so finalizers run (leak checks)
end

return H
