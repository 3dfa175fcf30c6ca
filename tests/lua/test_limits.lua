-- test_limits: the lacos executable bounds its memory. A script that
-- allocates without end gets a clear "out of memory" error naming the limit
-- and a non-zero exit, never the machine's OOM killer; the limit comes from
-- LACOS_MEMORY_LIMIT or --memory-limit, and when given also caps the
-- engine's allocations. (The loaders' own limits: tests/c/test_limits.c.)
local H = require "harness"
local ffi = require "ffi"

pcall(ffi.cdef, [[
struct lacos_rusage { long tv[4]; long ru_maxrss; long rest[14]; };
int getrusage(int who, struct lacos_rusage *usage);
]])
local function children_peak_mib()
  local ru = ffi.new("struct lacos_rusage")
  ffi.C.getrusage(-1, ru)   -- RUSAGE_CHILDREN: every waited-for descendant
  return tonumber(ru.ru_maxrss) / 1024
end

-- under valgrind (make check-valgrind) the heap grows slower and the
-- resident size is valgrind's: a smaller limit, no RSS bound
local small = os.getenv("LACOS_TEST_SMALL") == "1"
local limit_mib = small and 40 or 200

local grow = [[local t = {} while true do t[#t + 1] = ("x"):rep(4096) .. #t end]]

H.test("a script that allocates forever stops at the limit with a clear error", function()
  local t0 = os.time()
  local rc, out, err = H.sh(("LACOS_MEMORY_LIMIT=%dM %s -e '%s'"):format(limit_mib, H.lacos, grow))
  H.eq(rc, 1, "exit status (a kill by signal gives 128 + n)")
  H.match(err, ("out of memory: the Lua heap reached the memory limit of %d MiB"):format(limit_mib))
  H.match(err, "LACOS_MEMORY_LIMIT")
  H.truthy(not err:find("stack traceback", 1, true), "no traceback: " .. err)
  H.eq(out, "")
  if not small then
    local peak = children_peak_mib()
    print(("#   peak resident memory %.0f MiB under a %d MiB limit, %d s"):format(peak, limit_mib, os.time() - t0))
    H.truthy(peak < limit_mib + 150, ("peak resident memory %.0f MiB"):format(peak))
  end
end)

H.test("--memory-limit does the same for a script file", function()
  local script = H.write(H.tmp .. "/grow.lua", "local t = {}\nfor i = 1, 1e12 do t[i] = i end\n")
  local rc, _, err = H.sh(("%s --memory-limit %dM run %s"):format(H.lacos, limit_mib, script))
  H.eq(rc, 1)
  H.match(err, ("memory limit of %d MiB"):format(limit_mib))
  rc, _, err = H.sh(("%s --memory-limit=%dMiB %s"):format(H.lacos, limit_mib, script))
  H.eq(rc, 1)
  H.match(err, ("memory limit of %d MiB"):format(limit_mib))
end)

H.test("a script can catch the error, let go and carry on", function()
  local script = H.write(H.tmp .. "/recover.lua", [[
local ok, e = pcall(function() local t = {} while true do t[#t + 1] = ("y"):rep(4096) .. #t end end)
collectgarbage()
assert(not ok and e == "not enough memory", tostring(e))
local after = {}
for i = 1, 1000 do after[i] = tostring(i) end
print("recovered", #after)
]])
  local rc, out, err = H.sh(("LACOS_MEMORY_LIMIT=%dM %s run %s"):format(limit_mib, H.lacos, script))
  H.eq(rc, 0, err)
  H.match(out, "recovered\t1000")
end)

H.test("a given limit caps the engine's allocations too", function()
  local rc, _, err = H.sh(H.lacos .. [[ --memory-limit 64M -e 'local t = require("lacos").tensor.zeros({ 100000000 })']])
  H.eq(rc, 1)
  H.match(err, "would pass the memory limit of 64%.0 MiB")
  -- without a given limit the engine is capped at 90% of the physical memory: tensors made without end
  -- stop with the engine's error, not the OOM killer
  rc, _, err = H.sh("env -u LACOS_MEMORY_LIMIT " .. H.lacos .. [[ -e 'local T = require("lacos").tensor
local keep = {}
for i = 1, 100000 do keep[i] = T.empty({ 256 * 1024 * 1024 }, "u8") end']])
  H.eq(rc, 1, err)
  H.match(err, "would pass the memory limit of")
  rc, _, err = H.sh("env -u LACOS_MEMORY_LIMIT " .. H.lacos .. [[ -e 'local t = require("lacos").tensor.zeros({ 1000000 }) print(t:numel())']])
  H.eq(rc, 0, err)
end)

H.test("the default limit is half the physical memory; off removes it", function()
  local probe = [[-e 'local ffi = require "ffi" ffi.cdef "double lacos_cli_memory_limit(void);" print(ffi.C.lacos_cli_memory_limit())']]
  local rc, out, err = H.sh("env -u LACOS_MEMORY_LIMIT " .. H.lacos .. " " .. probe)
  H.eq(rc, 0, err)
  local limit = tonumber(out:match("[%d.e+]+"))
  local f = io.open("/proc/meminfo")
  local total = tonumber(f:read("*a"):match("MemTotal:%s*(%d+) kB")) * 1024
  f:close()
  H.truthy(limit and limit > 0 and limit <= total / 2 + 1, ("default limit %s, MemTotal %d"):format(tostring(limit), total))
  rc, out = H.sh("LACOS_MEMORY_LIMIT=off " .. H.lacos .. " " .. probe)
  H.eq(rc, 0)
  H.eq(tonumber(out:match("[%d.e+]+")), 0)
  rc, out = H.sh("LACOS_MEMORY_LIMIT=25% " .. H.lacos .. " " .. probe)
  H.eq(rc, 0)
  H.truthy(tonumber(out:match("[%d.e+]+")) <= total / 4 + 1)
end)

H.test("sizes that are not sizes are usage errors", function()
  local rc, _, err = H.sh("LACOS_MEMORY_LIMIT=banana " .. H.lacos .. " -e 'print(1)'")
  H.eq(rc, 2)
  H.match(err, "LACOS_MEMORY_LIMIT=banana is not a size")
  rc, _, err = H.sh(H.lacos .. " --memory-limit 12Q -e 'print(1)'")
  H.eq(rc, 2)
  H.match(err, "%-%-memory%-limit 12Q is not a size")
  rc, _, err = H.sh(H.lacos .. " --memory-limit")
  H.eq(rc, 2)
  H.match(err, "needs a size")
  rc, _, err = H.sh(H.lacos .. " --memory-limit 200% -e 'print(1)'")
  H.eq(rc, 2)
end)

H.test("a pairs file with a 256 MB line: lacos train stops at the line limit within a 64 MB budget", function()
  -- f:lines() would read the whole line before its length could be checked
  local path = H.tmp .. "/long-line.tsv"
  H.eq(os.execute(("printf 'a cat\\ta feline\\n' > %s && head -c 268435456 /dev/zero | tr '\\0' x >> %s && printf '\\tpos\\n' >> %s")
    :format(path, path, path)), 0)
  local rc, _, err = H.sh(("LACOS_MEMORY_LIMIT=64M %s train --model %s --pairs %s --out %s/long-run --steps 1 --no-db")
    :format(H.lacos, H.root .. "/tests/fixtures/bloom/tiny-a", path, H.tmp))
  os.remove(path)
  H.eq(rc, 1, err)
  H.match(err, "long%-line%.tsv:2: line of more than 1048576 bytes")
end)

H.done()
