-- test_pull: `lacos pull` against a loopback server shaped like the Hugging
-- Face hub (api/models/REPO/tree/REV listing with sizes, LFS SHA-256 and git
-- blob ids; REPO/resolve/REV/FILE downloads) serving a checkpoint generated
-- here: the pulled model embeds exactly like the original; a rerun keeps the
-- verified files; an interrupted weight download resumes with a Range
-- request; a corrupted weight file and a repository without safetensors are
-- refused with a clear message.
local H = require "harness"
local lacos = require "lacos"
local E = lacos.engine
local ffi, C = E.ffi, E.C
local json = require "lacos.json"

local function sh(cmd) local r = os.execute(cmd) return r == 0 or r == true end

local www = H.tmp .. "/hub"
local src = H.tmp .. "/pull-src"
sh(("rm -rf %q %q && mkdir -p %q"):format(www, src, www))
local rc, _, err = H.sh(("%s model random tiny-xs --out %s --seed 4 --dtype f32 --shard-size 600000 --tokenizer %s/datasets/tokenizers/bloomlike-32k.json")
  :format(H.lacos, src, H.root))
assert(rc == 0, err)

local function sha256(p) local h = ffi.new("char[65]"); E.check(C.lacos_sha256_file(p, h)) return ffi.string(h) end
local function blob(p) local h = ffi.new("char[41]"); E.check(C.lacos_git_blob_sha1_file(p, h)) return ffi.string(h) end
local function size(p) return lacos.data.file_size(p) end

-- lay the checkpoint out as the hub serves it
local function publish(repo, files, opts)
  opts = opts or {}
  local tree = {}
  sh(("mkdir -p %q %q"):format(www .. "/api/models/" .. repo .. "/tree", www .. "/" .. repo .. "/resolve/main"))
  for _, f in ipairs(files) do
    local p = src .. "/" .. f
    sh(("cp %q %q"):format(p, www .. "/" .. repo .. "/resolve/main/" .. f))
    local e = { type = "file", path = f, size = size(p), oid = blob(p) }
    if f:match("%.safetensors$") then e.lfs = { oid = sha256(p), size = size(p), pointerSize = 134 } end
    tree[#tree + 1] = e
  end
  tree[#tree + 1] = { type = "file", path = "README.md", size = 10, oid = "0" }     -- ignored
  tree[#tree + 1] = { type = "directory", path = "onnx", size = 0, oid = "0" }       -- ignored
  H.write(www .. "/api/models/" .. repo .. "/tree/main", json.encode(tree))
end

local shards = {}
for f in io.popen("ls " .. src):lines() do if f:match("%.safetensors$") or f:match("%.json$") then shards[#shards + 1] = f end end
publish("test/tiny", shards)

-- the server (tests/lua/httpd.lua)
local portfile, logfile, pidfile = H.tmp .. "/hub.port", H.tmp .. "/hub.log", H.tmp .. "/hub.pid"
sh(("%s run %s/tests/lua/httpd.lua %s %s %s 120 >/dev/null 2>&1 & echo $! > %s"):format(H.lacos, H.root, www, portfile, logfile, pidfile))
local port
for _ = 1, 200 do
  local s = H.read(portfile)
  if s then port = tonumber(s:match("%d+")) break end
  sh("sleep 0.05")
end
assert(port, "the test HTTP server did not start")
local endpoint = "http://127.0.0.1:" .. port

local out = H.tmp .. "/pulled"
local function pull(repo, dir)
  return H.sh(("%s pull %s --endpoint %s --out %s"):format(H.lacos, repo, endpoint, dir or out))
end

H.test("pull fetches a checkpoint that embeds like the original", function()
  local code, o, e = pull("test/tiny")
  H.eq(code, 0, "exit status (" .. e .. ")")
  H.match(e, "verified")
  H.truthy(H.exists(out .. "/model.safetensors.index.json"), "sharded weights with their index")
  H.truthy(not H.exists(out .. "/README.md"), "only what lacos reads is fetched")
  local a = lacos.bloom.load(src, { quant = "f32" })
  local b = lacos.bloom.load(out, { quant = "f32" })
  local ea = a:encode({ "a test sentence", "une phrase" }, { pooling = "mean" })
  local eb = b:encode({ "a test sentence", "une phrase" }, { pooling = "mean" })
  H.eq(ea:maxdiff(eb), 0)
end)

H.test("a rerun keeps verified files", function()
  local before = #(H.read(logfile) or "")
  local code, _, e = pull("test/tiny")
  H.eq(code, 0, e)
  H.match(e, "present, verified")
  local log = (H.read(logfile) or ""):sub(before + 1)
  H.truthy(not log:find("resolve"), "no file was downloaded again: " .. log)
end)

H.test("an interrupted weight download resumes with a Range request", function()
  local dir = H.tmp .. "/pulled-resume"
  sh(("mkdir -p %q"):format(dir))
  local f = shards[1]:match("safetensors") and shards[1] or "model-00001-of-00002.safetensors"
  for _, s in ipairs(shards) do if s:match("%.safetensors$") then f = s break end end
  local full = H.read(src .. "/" .. f)
  H.write(dir .. "/" .. f .. ".part", full:sub(1, math.floor(#full / 2)))
  local before = #(H.read(logfile) or "")
  local code, _, e = pull("test/tiny", dir)
  H.eq(code, 0, e)
  local log = (H.read(logfile) or ""):sub(before + 1)
  H.match(log, "bytes=" .. math.floor(#full / 2) .. "%-", "server log: " .. log)
  H.eq(H.read(dir .. "/" .. f), full)
end)

H.test("corrupted weights are refused and removed", function()
  publish("test/bad", shards)
  -- serve different bytes than the listing's hash
  local first
  for _, s in ipairs(shards) do if s:match("%.safetensors$") then first = s break end end
  local p = www .. "/test/bad/resolve/main/" .. first
  local data = H.read(p)
  H.write(p, data:sub(1, 100) .. string.char((data:byte(101) + 1) % 256) .. data:sub(102))
  local dir = H.tmp .. "/pulled-bad"
  local code, o, e = pull("test/bad", dir)
  H.truthy(code ~= 0, "a corrupted download must fail")
  H.match(e, "sha256")
  H.truthy(not H.exists(dir .. "/" .. first), "the corrupted file is not left in place")
end)

H.test("a repository without safetensors is refused", function()
  sh(("mkdir -p %q"):format(www .. "/api/models/test/bin/tree"))
  H.write(www .. "/api/models/test/bin/tree/main", json.encode { { type = "file", path = "pytorch_model.bin", size = 5, oid = "x" } })
  local code, _, e = pull("test/bin", H.tmp .. "/pulled-bin")
  H.eq(code, 1)
  H.match(e, "no safetensors weights")
  code, _, e = H.sh(("%s pull not-a-repo --endpoint %s"):format(H.lacos, endpoint))
  H.truthy(code ~= 0)
  H.match(e, "not a hub repository name")
  code, _, e = pull("test/missing", H.tmp .. "/pulled-missing")
  H.truthy(code ~= 0)
  H.match(e, "404")
end)

H.test("pull of a sentence-transformers repository: modules.json and its modules' folders", function()
  -- laid out as the hub serves it: tree/main lists the root (here tree/main/index.json,
  -- the server's folder index), tree/main/1_Pooling the Pooling module's folder
  local repo = "sentence-transformers/tiny-st"
  local files = { "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json" }
  local function write_st(rel, v) H.write(src .. "/" .. rel, json.encode(v)) end
  sh(("mkdir -p %q"):format(src .. "/1_Pooling"))
  write_st("modules.json", {
    { idx = 0, name = "0", path = "", type = "sentence_transformers.models.Transformer" },
    { idx = 1, name = "1", path = "1_Pooling", type = "sentence_transformers.models.Pooling" },
    { idx = 2, name = "2", path = "2_Normalize", type = "sentence_transformers.models.Normalize" } })
  write_st("sentence_bert_config.json", { max_seq_length = 128, do_lower_case = false })
  write_st("config_sentence_transformers.json", { __version__ = { sentence_transformers = "6.2.0" } })
  write_st("1_Pooling/config.json", { embedding_dimension = json.read(src .. "/config.json").hidden_size, pooling_mode = "weightedmean" })
  local api = www .. "/api/models/" .. repo .. "/tree/main"
  sh(("mkdir -p %q %q"):format(api, www .. "/" .. repo .. "/resolve/main/1_Pooling"))
  local root, pool = {}, {}
  for _, f in ipairs(shards) do files[#files + 1] = f end
  for _, f in ipairs(files) do
    local p = src .. "/" .. f
    sh(("cp %q %q"):format(p, www .. "/" .. repo .. "/resolve/main/" .. f))
    local e = { type = "file", path = f, size = size(p), oid = blob(p) }
    if f:match("%.safetensors$") then e.lfs = { oid = sha256(p), size = size(p), pointerSize = 134 } end
    if f:find("/", 1, true) then pool[#pool + 1] = e else root[#root + 1] = e end
  end
  root[#root + 1] = { type = "directory", path = "1_Pooling", size = 0, oid = "0" }
  root[#root + 1] = { type = "directory", path = "onnx", size = 0, oid = "0" }             -- not a module: not listed
  root[#root + 1] = { type = "file", path = "pytorch_model.bin", size = 10, oid = "0" }    -- not read by lacos
  H.write(api .. "/index.json", json.encode(root))
  H.write(api .. "/1_Pooling", json.encode(pool))
  local dir = H.tmp .. "/pulled-st"
  local before = #(H.read(logfile) or "")
  local code, _, e = pull(repo, dir)
  H.eq(code, 0, "exit status (" .. e .. ")")
  for _, f in ipairs(files) do
    if f ~= "lacos.json" then H.eq(H.read(dir .. "/" .. f), H.read(src .. "/" .. f), f) end   -- pull writes its own
  end
  H.truthy(not H.exists(dir .. "/pytorch_model.bin") and not H.exists(dir .. "/onnx"), "only what lacos reads")
  H.truthy(not H.exists(dir .. "/2_Normalize"), "a module folder the hub does not have is not made up")
  local log = (H.read(logfile) or ""):sub(before + 1)
  H.match(log, "tree/main/1_Pooling", "the Pooling folder is listed")
  H.truthy(not log:find("tree/main/onnx", 1, true), "folders that are not modules are not listed")
  local d = lacos.sentence_transformers.describe(dir)
  H.eq(d.pooling, "weightedmean")
  H.eq(d.normalize, true)
  H.eq(d.max_length, 128)
  H.eq(d.model_type, "bloom")
  -- a rerun keeps everything; a module path that leaves the repository is refused
  code, _, e = pull(repo, dir)
  H.eq(code, 0, e)
  H.match(e, "1_Pooling/config.json%s+present, verified")
  write_st("modules.json", { { idx = 0, name = "0", path = "../../x", type = "sentence_transformers.models.Transformer" } })
  sh(("cp %q %q"):format(src .. "/modules.json", www .. "/" .. repo .. "/resolve/main/modules.json"))
  local r = root
  for _, ent in ipairs(r) do if ent.path == "modules.json" then ent.size, ent.oid = size(src .. "/modules.json"), blob(src .. "/modules.json") end end
  H.write(api .. "/index.json", json.encode(r))
  code, _, e = pull(repo, H.tmp .. "/pulled-st-bad")
  H.eq(code, 1, e)
  H.match(e, "module 1 has the path '%.%./%.%./x', which is not a folder of the repository")
end)

sh("kill " .. (H.read(pidfile) or ""):match("%d+") .. " 2>/dev/null")
H.done()
