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
  -- an empty directory: no names (UBSan once caught qsort given its NULL list)
  util.mkdir_p(base .. "/empty-dir")
  H.same(util.listdir(base .. "/empty-dir"), {})
end)

H.test("sleep and capture", function()
  H.eq(util.sleep(0), false)
  local rc, out, err = util.capture({ "sh", "-c", 'printf "%s" "$1"; printf e >&2; exit 3', "sh", "it's $(x)" })
  H.eq(rc, 3); H.eq(out, "it's $(x)"); H.eq(err, "e")
end)

H.test("abspath: real paths, parents of new ones, the working directory", function()
  local real = util.abspath(base)
  H.eq(real:sub(1, 1), "/")
  H.eq(util.abspath(base .. "/../" .. base:match("[^/]+$")), real, "'..' resolved")
  H.eq(util.abspath(base .. "/not-yet"), real .. "/not-yet", "a new name under an existing parent")
  H.eq(util.abspath("/nonexistent-lacos/a/b"), "/nonexistent-lacos/a/b")
  local cwd = util.abspath(".")
  H.eq(util.abspath("nonexistent-lacos-x/y"), cwd .. "/nonexistent-lacos-x/y")
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

H.test("write_file: whole files under hostile names, replaced atomically; failures name the file", function()
  for _, name in ipairs(HOSTILE) do
    local p = base .. "/w-" .. name
    util.write_file(p, "first")
    util.write_file(p, "second\0with a NUL")
    H.eq(H.read(p), "second\0with a NUL", name)
  end
  H.eq(util.exists(canary), false, "nothing ran")
  local names = util.listdir(base)
  for _, n in ipairs(names) do H.truthy(not n:find(".tmp.", 1, true), "no temporary left: " .. n) end
  H.raises(base .. "/no/such/dir/f.json: cannot create the output file: No such file or directory",
           util.write_file, base .. "/no/such/dir/f.json", "x")
  H.raises("empty name", util.write_file, "", "x")
  -- a temporary that a process which is gone left beside the file is removed; a live one's is kept
  local dead = 999999999
  H.write(base .. "/w-x.tmp." .. dead, "stale")
  H.write(base .. "/w-x.tmp.1", "init's")   -- pid 1 runs
  util.write_file(base .. "/w-x", "new")
  H.eq(util.exists(base .. "/w-x.tmp." .. dead), false, "a dead process's temporary is removed")
  H.eq(util.exists(base .. "/w-x.tmp.1"), true, "a live process's temporary is kept")
  os.remove(base .. "/w-x.tmp.1")
  -- json.write goes through it
  require("lacos.json").write(base .. "/j.json", { a = 1 })
  H.eq(H.read(base .. "/j.json"), '{\n  "a": 1\n}\n')
  H.raises("nodir/j.json: cannot create the output file", require("lacos.json").write, base .. "/nodir/j.json", {})
end)

H.test("gnuplot_string, printable and file_name", function()
  H.eq(util.gnuplot_string("plain"), "'plain'")
  H.eq(util.gnuplot_string("it's `x` $(y) @m"), "'it''s `x` $(y) @m'")
  H.eq(util.gnuplot_string("a\nb\tc"), [['a'."\012".'b'."\011".'c']])
  H.eq(util.gnuplot_string(""), "''")
  H.eq(util.printable("run \27[31mred\27[0m"), [[run \x1b[31mred\x1b[0m]])
  H.eq(util.printable("a\nb\rc\td\127"), [[a\nb\rc\td\x7f]])
  H.eq(util.printable("C1 \194\155[2J and é, 中, 🙂"), [[C1 \xc2\x9b[2J and é, 中, 🙂]])
  H.eq(util.printable("bad \255 byte"), [[bad \xff byte]])
  H.eq(util.printable("two\nlines", { newlines = true }), "two\nlines")
  H.eq(util.file_name("../../etc/x"), ".._.._etc_x")
  H.eq(util.file_name(".."), "_..")
  H.eq(util.file_name("a\nb"), "a_b")
end)

H.test("lock_dir: one holder at a time, re-entrant in a process, released", function()
  local d = base .. "/locked"
  local a = util.lock_dir(d)
  local b = util.lock_dir(d)   -- this process again: counted
  H.truthy(util.exists(d .. "/.lacos-lock"), "the lock file")
  H.match(H.read(d .. "/.lacos-lock"), "^pid %d+ host ")
  local rc, _, err = H.sh(("%s -e %q"):format(H.lacos, ("require('lacos.util').lock_dir(%q)"):format(d)))
  H.truthy(rc ~= 0, "another process is refused")
  H.match(err, "another lacos is using this directory %(pid %d+ host [^ ]+ holds ")
  b:release()
  H.truthy(util.exists(d .. "/.lacos-lock"), "held while a count remains")
  a:release()
  H.eq(util.exists(d .. "/.lacos-lock"), false, "released: the file is removed")
  rc = H.sh(("%s -e %q"):format(H.lacos, ("require('lacos.util').lock_dir(%q)"):format(d)))
  H.eq(rc, 0, "then free")
end)

os.execute("rm -rf '" .. base .. "'")
H.done()
