-- test_download.lua: lacos_download (engine/download.c) and lacos.data.pull
-- against a loopback HTTP server (tests/lua/httpd.lua): full download,
-- resume after a dropped connection, a server that ignores Range, wrong
-- sha256, 404, connection refused, size mismatches, redirects; then pulls of
-- raw files, .gz, .tar.gz and .zip sources from a local registry and of real
-- registry sets (kornli-xnli, stsb) from a mirror of a data root
-- (LACOS_DATA_MIRROR: ../shared/datasets served as it is), with a sha256
-- mismatch refused and a dropped connection resumed.
local H = require "harness"
local lacos = require "lacos"
local data = lacos.data
local E = lacos.engine
local ffi, C = E.ffi, E.C
local bit = require "bit"

local function sh(cmd) local r = os.execute(cmd) return r == 0 or r == true end
local function sleep(s) sh("sleep " .. s) end

-- ---------------------------------------------------------------- server

local servers = {}
local function start_server(root)
  local tag = tostring(#servers + 1)
  local portfile, logfile, pidfile = H.tmp .. "/httpd" .. tag .. ".port", H.tmp .. "/httpd" .. tag .. ".log", H.tmp .. "/httpd" .. tag .. ".pid"
  os.remove(portfile)
  sh(("%s run %s/tests/lua/httpd.lua %s %s %s 120 >/dev/null 2>&1 & echo $! > %s"):format(
    H.lacos, H.root, root, portfile, logfile, pidfile))
  local port
  for _ = 1, 200 do
    local s = H.read(portfile)
    if s then port = tonumber(s:match("%d+")) break end
    sleep(0.05)
  end
  assert(port, "the test HTTP server did not start")
  local pid = tonumber(H.read(pidfile):match("%d+"))
  local srv = { port = port, pid = pid, log = logfile, base = "http://127.0.0.1:" .. port }
  servers[#servers + 1] = srv
  return srv
end
local function stop_servers()
  for _, s in ipairs(servers) do sh("kill " .. s.pid .. " 2>/dev/null") end
end
local function log_lines(srv)
  local t = {}
  for line in (H.read(srv.log) or ""):gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

local www = H.tmp .. "/www"
sh("mkdir -p " .. www)
-- a 300,000-byte file of varied bytes
local chunks = {}
for i = 1, 3000 do chunks[i] = ("%05d-"):format(i) .. ("abcdefghijklmnopqrstuvwxyz0123456789"):rep(3):sub(1, 94) end
local body = table.concat(chunks)
assert(#body == 300000)
H.write(www .. "/f.bin", body)
local body_sha = data.sha256_file(www .. "/f.bin")

local srv = start_server(www)

local function dl(url, dest, bytes, sha)
  local o = ffi.new("lacos_download_options")
  C.lacos_download_options_init(o)
  o.progress = 0
  o.connect_timeout_s = 5
  o.stall_timeout_s = 10
  local hex, got = ffi.new("char[65]"), ffi.new("double[1]")
  local st = C.lacos_download(url, dest, bytes or -1, sha, o, hex, got)
  return st, E.last_error(), ffi.string(hex), got[0]
end

local out = H.tmp .. "/dl"
sh("mkdir -p " .. out)

H.test("full download: size, sha256, atomic rename", function()
  local st, err, hex, got = dl(srv.base .. "/f.bin", out .. "/a.bin", 300000, body_sha)
  H.eq(st, 0, err)
  H.eq(hex, body_sha); H.eq(got, 300000)
  H.eq(H.read(out .. "/a.bin"), body)
  H.truthy(not H.exists(out .. "/a.bin.part"), "no .part left behind")
  -- unknown size and hash also work, and report what arrived
  st, err, hex = dl(srv.base .. "/f.bin", out .. "/a2.bin")
  H.eq(st, 0, err); H.eq(hex, body_sha)
end)

H.test("resume after a dropped connection uses a Range request", function()
  local url = srv.base .. "/cutonce/100000/f.bin"
  local st, err = dl(url, out .. "/r.bin", 300000, body_sha)
  H.eq(st, 3, err)
  H.match(err, "ended early after 100000 bytes")
  H.match(err, "run again to resume")
  H.eq(data.file_size(out .. "/r.bin.part"), 100000)
  H.truthy(not H.exists(out .. "/r.bin"), "no partial file at the destination")
  st, err = dl(url, out .. "/r.bin", 300000, body_sha)
  H.eq(st, 0, err)
  H.eq(H.read(out .. "/r.bin"), body)
  local log = log_lines(srv)
  H.eq(log[#log], "GET /cutonce/100000/f.bin bytes=100000-")
end)

H.test("a server that ignores Range restarts the file", function()
  H.write(out .. "/n.bin.part", ("X"):rep(5000))   -- stale bytes that must not survive
  local st, err, hex = dl(srv.base .. "/norange/f.bin", out .. "/n.bin", 300000, body_sha)
  H.eq(st, 0, err)
  H.eq(hex, body_sha)
  local log = log_lines(srv)
  H.eq(log[#log], "GET /norange/f.bin bytes=5000-")
end)

H.test("a complete .part of unknown size: 416, then a fresh download", function()
  H.write(out .. "/c.bin.part", body)
  local st, err, hex = dl(srv.base .. "/f.bin", out .. "/c.bin")
  H.eq(st, 0, err); H.eq(hex, body_sha)
  local log = log_lines(srv)
  H.eq(log[#log - 1], "GET /f.bin bytes=300000-")
  H.eq(log[#log], "GET /f.bin -")
end)

H.test("wrong sha256: error, the partial download is removed", function()
  local st, err, hex = dl(srv.base .. "/f.bin", out .. "/w.bin", 300000, ("0"):rep(64))
  H.eq(st, 4, err)
  H.match(err, "sha256 mismatch: expected 0000")
  H.match(err, body_sha, "the message shows what arrived")
  H.eq(hex, body_sha)
  H.truthy(not H.exists(out .. "/w.bin.part") and not H.exists(out .. "/w.bin"), "nothing left behind")
  st, err = dl(srv.base .. "/f.bin", out .. "/w.bin", -1, "not-a-hash")
  H.eq(st, 1); H.match(err, "64 lowercase hex digits")
end)

H.test("HTTP errors, refused connections, bad URLs", function()
  local st, err = dl(srv.base .. "/missing.bin", out .. "/m.bin")
  H.eq(st, 5, err)
  H.match(err, "HTTP error 404")
  H.match(err, srv.base .. "/missing.bin", "the message names the URL")
  H.truthy(not H.exists(out .. "/m.bin.part"), "no empty .part")
  st, err = dl(srv.base .. "/status/500/x", out .. "/m.bin")
  H.eq(st, 3); H.match(err, "HTTP error 500")
  st, err = dl("http://127.0.0.1:1/f.bin", out .. "/m.bin")
  H.eq(st, 3, err); H.match(err, "cannot connect")
  st, err = dl("ftp://127.0.0.1/f.bin", out .. "/m.bin")
  H.truthy(st ~= 0); H.match(err, "ftp://127.0.0.1/f.bin")
  st, err = dl(srv.base .. "/f.bin", "/nonexistent-dir/x.bin")
  H.truthy(st ~= 0); H.truthy(err:find("/nonexistent-dir/x.bin.part", 1, true), err)
end)

H.test("size mismatches: too short keeps the .part, too long removes it", function()
  local st, err = dl(srv.base .. "/f.bin", out .. "/s.bin", 400000)
  H.eq(st, 3, err); H.match(err, "got 300000 of 400000 bytes")
  H.eq(data.file_size(out .. "/s.bin.part"), 300000)
  os.remove(out .. "/s.bin.part")
  st, err = dl(srv.base .. "/f.bin", out .. "/t.bin", 1000)
  H.eq(st, 4, err); H.match(err, "expected 1000; the download was removed")
  H.truthy(not H.exists(out .. "/t.bin.part"))
end)

H.test("an interrupt (Ctrl-C) stops the transfer and keeps the .part", function()
  C.lacos_interrupt_request(1)
  local st, err = dl(srv.base .. "/f.bin", out .. "/i.bin", 300000, body_sha)
  C.lacos_interrupt_clear()
  H.eq(st, 8, err)
  H.match(err, "interrupted; run again to resume")
  H.truthy(not H.exists(out .. "/i.bin"))
  st, err = dl(srv.base .. "/f.bin", out .. "/i.bin", 300000, body_sha)
  H.eq(st, 0, err)
end)

H.test("redirects are followed", function()
  local st, err, hex = dl(srv.base .. "/redirect/f.bin", out .. "/d.bin", 300000, body_sha)
  H.eq(st, 0, err); H.eq(hex, body_sha)
end)

-- ---------------------------------------------------------------- pull from a local registry

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = bit.band(c, 1) ~= 0 and bit.bxor(0xEDB88320, bit.rshift(c, 1)) or bit.rshift(c, 1) end
  crc_table[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = bit.bxor(crc_table[bit.band(bit.bxor(c, s:byte(i)), 0xFF)], bit.rshift(c, 8)) end
  return bit.bxor(c, 0xFFFFFFFF)
end
local function le(n, bytes)
  local t = {}
  for i = 1, bytes do t[i] = string.char(bit.band(bit.rshift(n, 8 * (i - 1)), 0xFF)) end
  return table.concat(t)
end
-- A zip archive with stored (uncompressed) members, enough for unzip.
local function zip(members)
  local parts, central, offset = {}, {}, 0
  for _, m in ipairs(members) do
    local name, content = m[1], m[2]
    local crc = crc32(content)
    local head = "PK\3\4" .. le(20, 2) .. le(0, 2) .. le(0, 2) .. le(0, 2) .. le(0x21, 2) .. le(crc, 4) ..
                 le(#content, 4) .. le(#content, 4) .. le(#name, 2) .. le(0, 2) .. name
    central[#central + 1] = "PK\1\2" .. le(20, 2) .. le(20, 2) .. le(0, 2) .. le(0, 2) .. le(0, 2) .. le(0x21, 2) ..
                            le(crc, 4) .. le(#content, 4) .. le(#content, 4) .. le(#name, 2) .. le(0, 2) .. le(0, 2) ..
                            le(0, 2) .. le(0, 2) .. le(0, 4) .. le(offset, 4) .. name
    parts[#parts + 1] = head .. content
    offset = offset + #head + #content
  end
  local cd = table.concat(central)
  return table.concat(parts) .. cd .. "PK\5\6" .. le(0, 2) .. le(0, 2) .. le(#members, 2) .. le(#members, 2) ..
         le(#cd, 4) .. le(offset, 4) .. le(0, 2)
end

local reg_root = H.tmp .. "/pull-root"
local src = www .. "/src"
sh("mkdir -p " .. reg_root .. " " .. src .. "/pkg")
local a_tsv = "Ein Hund.\tA dog.\t4.5\nEine Katze.\tA car.\t0.5\n"
local b_tsv = "Sol.\tSun.\t5\nLuna.\tSea.\t1\n"
H.write(src .. "/a.tsv", a_tsv)
H.write(src .. "/pkg/b.tsv", b_tsv)
H.write(src .. "/pkg/README", "not installed\n")
sh(("cd %s && tar -czf %s/pkg.tar.gz pkg && gzip -c a.tsv > %s/a.tsv.gz"):format(src, src, src))
H.write(src .. "/pkg.zip", zip { { "pkg/b.tsv", b_tsv }, { "pkg/README", "x" } })
local a_sha = data.sha256_file(src .. "/a.tsv")
local b_sha = data.sha256_file(src .. "/pkg/b.tsv")

local function write_registry(sets)
  local json = require "lacos.json"
  json.write(reg_root .. "/registry.local.json", { sets = sets })
end
local function sts_set(id, files, download)
  return { id = id, kind = "sts", licence = "test", languages = { "de", "en" },
           format = { reader = "tsv", columns = { s1 = 1, s2 = 2, score = 3 } }, default_split = "test",
           splits = { test = { pairs = 2, subsets = { { name = "x", file = files[1].path } } } },
           files = files, download = download }
end

H.test("pull: raw file, gz, tar.gz and zip sources with sha256 checks, recorded", function()
  local M = srv.base .. "/redirect"   -- the registry's addresses, through a redirect for good measure
  write_registry {
    sts_set("t-raw", { { path = "t/raw/a.tsv", bytes = #a_tsv, sha256 = a_sha } }, { { url = M .. "/src/a.tsv", path = "t/raw/a.tsv" } }),
    sts_set("t-gz", { { path = "t/gz/a.tsv", bytes = #a_tsv, sha256 = a_sha } }, { { url = M .. "/src/a.tsv.gz", archive = "gz", path = "t/gz/a.tsv" } }),
    sts_set("t-tgz", { { path = "t/tgz/b.tsv", bytes = #b_tsv, sha256 = b_sha } },
            { { url = M .. "/src/pkg.tar.gz", archive = "tar.gz", members = { ["pkg/b.tsv"] = "t/tgz/b.tsv" } } }),
    sts_set("t-zip", { { path = "t/zip/b.tsv", bytes = #b_tsv, sha256 = b_sha } },
            { { url = M .. "/src/pkg.zip", archive = "zip", members = { ["pkg/b.tsv"] = "t/zip/b.tsv" } } }),
  }
  for _, id in ipairs { "t-raw", "t-gz", "t-tgz", "t-zip" } do
    local rec = data.pull(id, { data = reg_root, progress = false, log = function() end })
    H.eq(rec.state, "present", id)
    H.eq(data.load(id, { data = reg_root }):size(), 2, id)
    local saved = require("lacos.json").read(reg_root .. "/.lacos/pulled/" .. id .. ".json")
    H.eq(saved.id, id)
    H.match(saved.sources[1].url, "^" .. srv.base:gsub("%p", "%%%0"))
    H.truthy(saved.sources[1].verified == "sha256" or saved.sources[1].verified == "member sha256", id .. " verified")
  end
  H.truthy(not H.exists(reg_root .. "/t/tgz/pkg/README") and not H.exists(reg_root .. "/.lacos/staging/t-tgz"),
           "only the named members are installed; staging is cleaned")
  -- a second pull fetches nothing
  local before = #log_lines(srv)
  local rec = data.pull("t-tgz", { data = reg_root, progress = false, log = function() end })
  H.eq(rec.sources[1].skipped, "already present")
  H.eq(#log_lines(srv), before)
end)

H.test("pull: a bad member or a wrong file is refused and not installed", function()
  write_registry {
    sts_set("t-bad", { { path = "t/bad/b.tsv", bytes = #b_tsv, sha256 = a_sha } },
            { { url = srv.base .. "/src/pkg.tar.gz", archive = "tar.gz", members = { ["pkg/b.tsv"] = "t/bad/b.tsv" } } }),
    sts_set("t-nomember", { { path = "t/nm/b.tsv", sha256 = b_sha } },
            { { url = srv.base .. "/src/pkg.zip", archive = "zip", members = { ["pkg/c.tsv"] = "t/nm/b.tsv" } } }),
    sts_set("t-404", { { path = "t/404/a.tsv", sha256 = a_sha } }, { { url = srv.base .. "/src/nothing.tsv", path = "t/404/a.tsv" } }),
  }
  H.raises("sha256 " .. b_sha .. ", the registry says " .. a_sha, data.pull, "t-bad",
           { data = reg_root, progress = false, log = function() end })
  H.truthy(not H.exists(reg_root .. "/t/bad/b.tsv"), "not installed")
  H.raises("has no member pkg/c.tsv", data.pull, "t-nomember", { data = reg_root, progress = false, log = function() end })
  H.raises("HTTP error 404", data.pull, "t-404", { data = reg_root, progress = false, log = function() end })
  H.raises("unknown dataset", data.pull, "t-none", { data = reg_root })
end)

H.test("pull without a known sha256: refuse and print the hash; --sha256 reuses the download; --no-verify accepts", function()
  write_registry {
    sts_set("t-nohash", { { path = "t/nohash/a.tsv" } }, { { url = srv.base .. "/src/a.tsv", path = "t/nohash/a.tsv" } }),
  }
  local opts = { data = reg_root, progress = false, log = function() end }
  local err = H.raises("no sha256 is known for " .. srv.base .. "/src/a.tsv", data.pull, "t-nohash", opts)
  H.truthy(err:find("sha256 " .. a_sha, 1, true), err)
  H.truthy(err:find("run again with --sha256 " .. a_sha, 1, true), err)
  H.truthy(not H.exists(reg_root .. "/t/nohash/a.tsv"), "refused: not installed")
  local before = #log_lines(srv)
  H.raises("sha256 mismatch", data.pull, "t-nohash",
           { data = reg_root, progress = false, log = function() end, sha256 = ("1"):rep(64) })
  local rec = data.pull("t-nohash", { data = reg_root, progress = false, log = function() end, sha256 = a_sha })
  H.eq(rec.state, "present"); H.eq(rec.sources[1].verified, "sha256")
  H.eq(#log_lines(srv), before + 1, "the wrong hash fetched once more; the right one reused the staged file")
  os.remove(reg_root .. "/t/nohash/a.tsv")
  rec = data.pull("t-nohash", { data = reg_root, progress = false, log = function() end, no_verify = true })
  H.eq(rec.sources[1].verified, "none (--no-verify)"); H.eq(rec.sources[1].sha256, a_sha)
  H.raises("64 hex digits", data.pull, "t-nohash", { data = reg_root, sha256 = "abc" })
  H.raises("unknown option 'verify'", data.pull, "t-nohash", { verify = false })
end)

-- ---------------------------------------------------------------- real registry sets

H.test("pull real registry sets from a mirror of a data root (../shared/datasets as it is): kornli-xnli, stsb", function()
  local D = H.data
  if not (D and H.exists(D .. "/sts/stsb/sts-test.csv")) then H.skip("LACOS_TEST_DATA is not there") end
  local root = H.tmp .. "/real-root"
  sh("mkdir -p " .. root)
  local m = start_server(D)
  local quiet = { data = root, mirror = m.base, progress = false, log = function() end }
  for _, id in ipairs { "kornli-xnli", "stsb" } do
    local rec = data.pull(id, quiet)
    H.eq(rec.state, "present", id)
    local st = data.status(id, { data = root, verify = true })
    H.eq(st.state, "present", id); H.eq(#st.bad_hash, 0)
    for _, s in ipairs(rec.sources) do H.eq(s.verified, "sha256", s.url) end
  end
  H.eq(data.load("stsb", { data = root, split = "train" }):size(), 5749)
  H.eq(data.load("kornli-xnli", { data = root, split = "test" }):size(), 5010)
  -- the data root's own paths are what is asked for, one request per file
  local log = log_lines(m)
  H.eq(#log, #data.find("kornli-xnli").files + #data.find("stsb").files)
  local asked = {}
  for _, l in ipairs(log) do asked[l] = true end
  H.truthy(asked["GET /sts/stsb/sts-test.csv -"], "GET /sts/stsb/sts-test.csv in: " .. table.concat(log, "; "))
  H.truthy(not H.exists(root .. "/.lacos/staging"), "staging is cleaned")
  -- a dropped connection: the .part file stays, and the next pull resumes it with a Range request
  os.remove(root .. "/sts/stsb/sts-train.csv")
  local cut = { data = root, mirror = m.base .. "/cutonce/100000", progress = false, log = function() end }
  H.raises("stsb: ", data.pull, "stsb", cut)
  H.truthy(not H.exists(root .. "/sts/stsb/sts-train.csv"), "a partial file is never installed")
  local rec = data.pull("stsb", cut)
  H.eq(rec.state, "present")
  local ranged = false
  for _, l in ipairs(log_lines(m)) do if l:find("sts%-train%.csv bytes=100000%-") then ranged = true end end
  H.truthy(ranged, "the second pull resumed at byte 100000: " .. table.concat(log_lines(m), "; "))
  -- a mirror whose file is not the registry's is refused, nothing installed
  local bad = H.tmp .. "/bad-mirror"
  sh(("mkdir -p %s/sts/sick && printf 'x\\ty\\t1\\n' > %s/sts/sick/SICK_test_annotated.txt"):format(bad, bad))
  local mb = start_server(bad)
  H.raises("sick: ", data.pull, "sick", { data = root, mirror = mb.base, progress = false, log = function() end })
  H.truthy(not H.exists(root .. "/sts/sick/SICK_test_annotated.txt"), "a mismatching file is not installed")
end)

stop_servers()
-- Exit through lua_close so that finalizers free the engine memory the pair
-- sets hold (and cjson its buffer): LeakSanitizer under make SAN=1 cannot see
-- pointers kept only in the LuaJIT heap.
local exit = os.exit
os.exit = function(code) exit(code, true) end
H.done()
