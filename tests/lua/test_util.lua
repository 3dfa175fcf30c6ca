-- test_util.lua: lacos.util's files, directories and programs (engine/system.c)
-- take names as names: no shell ever sees them, so $(...), backticks,
-- quotes, newlines and a leading '-' create, list and pass exactly what
-- they spell, and nothing runs.
local H = require "harness"
local util = require "lacos.util"

local base = H.tmp .. "/util"
os.execute("rm -rf '" .. base .. "'")
util.mkdir_p(base)
-- A shell would create this file in the working directory.
local canary = "lacos-test-pwned"
os.remove(canary)

-- Names that a shell would read as code or options.
local HOSTILE = {
  "m$(touch " .. canary .. ")",
  "b`touch " .. canary .. "`",
  "q'\"; touch " .. canary .. "; echo '",
  "new\nline",
  "-rf",
  "sp ace",
}

H.test("mkdir_p creates hostile names as plain directories, nested", function()
  for _, name in ipairs(HOSTILE) do
    local dir = base .. "/" .. name .. "/sub"
    util.mkdir_p(dir)
    H.truthy(util.is_dir(dir), "created " .. name)
    util.mkdir_p(dir)   -- an existing directory is fine
  end
  H.eq(util.exists(canary), false, "nothing ran")
end)

H.test("listdir returns every name, newlines included, sorted", function()
  local names = util.listdir(base)
  local want = {}
  for _, n in ipairs(HOSTILE) do want[#want + 1] = n end
  table.sort(want)
  H.eq(#names, #want, "count")
  for i = 1, #want do H.eq(names[i], want[i], "name " .. i) end
  local none, err = util.listdir(base .. "/missing")
  H.eq(none, nil)
  H.match(err, "missing: no such directory")
  -- an empty folder (a sweep's shards before any task ran): no names, and no NULL list sorted (UBSan under make SAN=1)
  util.mkdir_p(base .. "/empty")
  H.eq(#util.listdir(base .. "/empty"), 0)
end)

H.test("absolute paths, sleep and capture", function()
  H.eq(util.absolute("/a/b"), "/a/b")
  local here = util.absolute(".")
  H.eq(here:sub(1, 1), "/")
  H.eq(util.absolute("x/y"), here .. "/x/y")
  H.eq(util.absolute("./x"), here .. "/x")
  H.eq(util.sleep(0), false)
  local rc, out, err = util.capture({ "sh", "-c", 'printf "%s" "$1"; printf e >&2; exit 3', "sh", "it's $(x)" })
  H.eq(rc, 3); H.eq(out, "it's $(x)"); H.eq(err, "e")
end)

H.test("mkdir_p over a file is an error naming it", function()
  local f = base .. "/afile"
  H.write(f, "x")
  H.raises(f .. ": exists and is not a directory", util.mkdir_p, f)
  H.raises("cannot create the directory", util.mkdir_p, f .. "/below")
  H.raises("empty name", util.mkdir_p, "")
  os.remove(f)
end)

H.test("path_kind tells files, directories and nothing apart", function()
  H.eq(util.path_kind(base), "directory")
  H.write(base .. "/k", "1")
  H.eq(util.path_kind(base .. "/k"), "file")
  H.eq(util.path_kind(base .. "/nothing"), false)
  H.eq(util.path_kind("/dev/null"), "other")
  os.remove(base .. "/k")
end)

H.test("run passes each argument as one word and reports the exit status", function()
  local out = base .. "/printf.out"
  local args = { "printf", "[%s]\\n" }
  for _, n in ipairs(HOSTILE) do args[#args + 1] = n end
  H.eq(util.run(args, { stdout = out }), 0)
  local want = {}
  for _, n in ipairs(HOSTILE) do want[#want + 1] = "[" .. n .. "]" end
  H.eq(H.read(out), table.concat(want, "\n") .. "\n")
  H.eq(util.exists(canary), false, "nothing ran")
  H.eq(util.run { "sh", "-c", "exit 3" }, 3)
  H.eq(util.run { "sh", "-c", "kill -TERM $$" }, 128 + 15)
end)

H.test("run redirects stdin and stderr to files with hostile names", function()
  local dir = base .. "/" .. HOSTILE[1]
  H.write(dir .. "/in", "hello\n")
  H.eq(util.run({ "cat" }, { stdin = dir .. "/in", stdout = dir .. "/out" }), 0)
  H.eq(H.read(dir .. "/out"), "hello\n")
  H.eq(util.run({ "ls", "--", base .. "/nothing-here" }, { stderr = dir .. "/err" }) ~= 0, true)
  H.match(H.read(dir .. "/err"), "nothing%-here")
end)

H.test("run names a program that is not there", function()
  H.raises("no-such-program-xyz: program not found", util.run, { "no-such-program-xyz" })
  H.raises("no program to run", util.run, {})
end)

H.test("arg_path keeps a leading '-' from reading as an option", function()
  H.eq(util.arg_path("-rf"), "./-rf")
  H.eq(util.arg_path("/abs/-x"), "/abs/-x")
  H.eq(util.arg_path("plain"), "plain")
end)

H.test("clocks move forward", function()
  local a, c = util.clock(), util.cpu_clock()
  local x = 0
  for i = 1, 2e6 do x = x + i % 7 end
  H.truthy(util.clock() > a, "monotonic")
  H.truthy(util.cpu_clock() >= c, "cpu")
  H.truthy(math.abs(util.wall_clock() - os.time()) < 5, "wall clock near os.time")
end)

os.execute("rm -rf '" .. base .. "'")
H.done()
