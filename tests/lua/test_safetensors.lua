-- test_safetensors.lua: lacos.safetensors from Lua: reading the reference
-- fixtures (tests/fixtures/safetensors), saving single files and shards,
-- option and argument errors; and, when the Python reference stack is
-- present (.venv-ref), the reference library reading lacos' files back.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local S = lacos.safetensors
local T = lacos.tensor

local fix = H.root .. "/tests/fixtures/safetensors"
local expected = json.read(fix .. "/expected.json")

local function values_match(name, t, exp)
  local flat = t:numel() > 0 and t:contiguous():view(t:numel()):double():table() or {}
  if t:dim() == 0 then flat = { t:item() } end
  local sum = 0
  for _, v in ipairs(flat) do sum = sum + v end
  H.near(sum, exp.sum, 1e-12 * math.max(1, math.abs(exp.sum)), name .. " sum")
  for i, v in ipairs(exp.first) do H.eq(flat[i], v, name .. " value " .. i) end
end

H.test("reads save_file's dtypes with values, shapes and metadata", function()
  local st = S.open(fix .. "/dtypes.safetensors")
  local exp = expected.files["dtypes.safetensors"].tensors
  local names = st:names()
  local n = 0
  for _ in pairs(exp) do n = n + 1 end
  H.eq(#names, n, "tensor count")
  H.eq(st:count(), n)
  for i = 2, #names do H.truthy(names[i - 1] < names[i], "names sorted") end
  for name, e in pairs(exp) do
    local info = st:info(name)
    H.eq(info.st_dtype, e.dtype, name)
    H.eq(info.dtype, e.dtype:lower(), name)
    H.same(info.shape, e.shape, 0, name .. " shape")
    H.eq(info.nbytes, e.nbytes, name .. " nbytes")
    H.eq(info.file, fix .. "/dtypes.safetensors")
    local t = st:get(name)
    H.eq(t.dtype, e.dtype:lower())
    values_match(name, t, e)
  end
  H.same(st:metadata(), { format = "pt" })
  H.truthy(st:has("h.0.w") and st:has("transformer.h.0.w") and st:has("transformer.f32"))
  H.eq(st:has("nope"), false)
  H.eq(st:info("nope"), nil)
  H.same(st:get("h.0.w"):table(), { -1.5, -0.5, 0.5, 1.5 })
  H.match(tostring(st), "safetensors%(.*dtypes.safetensors, 12 tensors%)")
end)

H.test("unsupported dtypes and ranks fail only when requested", function()
  local st = S.open(fix .. "/exotic.safetensors")
  H.eq(st:info("bool").dtype, nil)
  H.eq(st:info("bool").st_dtype, "BOOL")
  H.same(st:info("rank5").shape, { 1, 1, 2, 1, 2 })
  local err = H.raises("unsupported dtype BOOL for tensor \"bool\"", function() return st:get("bool") end)
  H.match(err, "exotic%.safetensors")
  H.raises("has 5 dimensions", function() return st:get("rank5") end)
  H.same(st:get("ok"):table(), { 1.5, -2 })
  H.same(st:metadata(), expected.files["exotic.safetensors"].metadata)
  H.raises("no tensor named \"missing\" (nor \"transformer.missing\")", function() return st:get("missing") end)
  H.raises("tensor name must be a string", function() return st:get(3) end)
end)

H.test("sharded directory written by huggingface_hub", function()
  local sh = expected.sharded
  local st = S.open(fix .. "/" .. sh.dir)
  H.eq(st:count(), #sh.order)
  for name, file in pairs(sh.weight_map) do
    H.eq(st:info(name).file, fix .. "/" .. sh.dir .. "/" .. file, name)
    values_match(name, st:get(name), sh.tensors[name])
  end
  H.eq(st:metadata().total_size, tostring(sh.total_size))
  H.eq(st:get("word_embeddings.weight").dtype, "f16")
end)

H.test("views outlive a freed checkpoint; a freed checkpoint refuses use", function()
  local st = S.open(fix .. "/dtypes.safetensors")
  local t = st:get("f32")
  local before = t:table()
  st:free()
  st:free()   -- twice is fine
  H.raises("freed", function() return st:names() end)
  H.same(t:table(), before)
  H.eq(tostring(st), "safetensors(freed)")
end)

H.test("save and reopen: map and list forms, metadata, every dtype", function()
  local path = H.tmp .. "/lua.safetensors"
  local tensors = {}
  for _, d in ipairs { "f32", "f16", "bf16", "i8", "i32", "u8", "i64", "f64" } do
    tensors["t_" .. d] = T.from({ { 1, 2, 3 }, { 4, 5, 6 } }, d)
  end
  S.save(path, tensors, { author = "lua", note = "ünïcode" })
  local st = S.open(path)
  for name, t in pairs(tensors) do
    local back = st:get(name)
    H.eq(back.dtype, t.dtype)
    H.same(back:table(), t:table(), 0, name)
  end
  H.same(st:metadata(), { author = "lua", note = "ünïcode" })
  st:free()
  -- a list of pairs keeps its order for sharding; any order gives the same single file
  local a, b = T.arange(0, 100, 1), T.arange(0, 100, 1, "f16")
  S.save(H.tmp .. "/pairs.safetensors", { { "b", b }, { "a", a } })
  S.save(H.tmp .. "/map.safetensors", { a = a, b = b })
  H.eq(H.read(H.tmp .. "/pairs.safetensors"), H.read(H.tmp .. "/map.safetensors"))
  local dir = H.tmp .. "/lua-shards"
  S.save_sharded(dir, { { "b", b }, { "a", a } }, { max_bytes = 450, metadata = { run = "1" } })
  H.truthy(H.exists(dir .. "/model-00001-of-00002.safetensors"))
  H.truthy(H.exists(dir .. "/model.safetensors.index.json"))
  local idx = json.read(dir .. "/model.safetensors.index.json")
  H.eq(idx.weight_map.b, "model-00001-of-00002.safetensors")
  H.eq(idx.weight_map.a, "model-00002-of-00002.safetensors")
  H.eq(idx.metadata.total_size, 600)
  H.eq(idx.metadata.run, "1")
  local sh = S.open(dir)
  H.same(sh:get("a"):table(), a:table())
  S.save_sharded(dir, { a = a, b = b })   -- default 5 GB: one file, shards removed
  H.truthy(H.exists(dir .. "/model.safetensors"))
  H.eq(H.exists(dir .. "/model-00001-of-00002.safetensors"), false)
  H.eq(H.exists(dir .. "/model.safetensors.index.json"), false)
end)

H.test("save refuses bad arguments with clear errors", function()
  local a = T.zeros({ 2 })
  local p = H.tmp .. "/bad.safetensors"
  H.raises("tensors must be a table", function() S.save(p, 5) end)
  H.raises("value for 'x' is a number, not a tensor", function() S.save(p, { x = 1 }) end)
  H.raises("tensor names must be strings", function() S.save(p, { [true] = a }) end)
  H.raises("entry 1 must be a {name, tensor} pair", function() S.save(p, { { a, "x" } }) end)
  H.raises("metadata 'k' must be a string, got number", function() S.save(p, { x = a }, { k = 1 }) end)
  H.raises("path must be a string", function() S.save(nil, { x = a }) end)
  H.raises("__metadata__", function() S.save(p, { __metadata__ = a }) end)
  H.raises("unknown option 'max'", function() S.save_sharded(H.tmp .. "/bad-dir", { x = a }, { max = 1 }) end)
  H.raises("max_bytes must be positive", function() S.save_sharded(H.tmp .. "/bad-dir", { x = a }, -5) end)
  local freed = T.zeros({ 2 })
  freed:free()
  H.raises("\"x\" was freed", function() S.save(p, { x = freed }) end)
  H.eq(H.exists(p), false)
  H.raises("No such file", function() S.open(H.tmp .. "/nothing-here") end)
  H.raises("path must be a string", function() S.open() end)
end)

local py = H.root .. "/.venv-ref/bin/python"
if not H.exists(py) then
  H.skip_test("the reference library reads lacos' files back", "no .venv-ref (the Python reference stack)")
else
  H.test("the reference library reads lacos' files back", function()
    local out = H.tmp .. "/resaved"
    os.execute("mkdir -p " .. out)
    local rc, o, e = H.sh(("%s run %s/tests/reference/safetensors_resave.lua %s %s"):format(H.lacos, H.root, fix, out))
    H.eq(rc, 0, "resave: " .. o .. e)
    local code = [[
import json, os, sys
import torch
from safetensors import safe_open
from safetensors.torch import load_file
fix, out = sys.argv[1], sys.argv[2]
def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))
a, b = load_file(os.path.join(fix, "dtypes.safetensors")), load_file(os.path.join(out, "dtypes.safetensors"))
assert a.keys() == b.keys() and all(same(a[k], b[k]) for k in a), "dtypes differ"
assert open(os.path.join(fix, "dtypes.safetensors"), "rb").read() == open(os.path.join(out, "dtypes.safetensors"), "rb").read()
with safe_open(os.path.join(out, "exotic_held.safetensors"), "pt") as f:
    meta = json.load(open(os.path.join(fix, "expected.json")))["files"]["exotic.safetensors"]["metadata"]
    assert f.metadata() == meta, f.metadata()
ref, ours = os.path.join(fix, "sharded"), os.path.join(out, "sharded")
assert sorted(os.listdir(ref)) == sorted(os.listdir(ours))
for f in os.listdir(ref):
    if f.endswith(".safetensors"):
        assert open(os.path.join(ref, f), "rb").read() == open(os.path.join(ours, f), "rb").read(), f
print("reference reads lacos' files: ok")
]]
    H.write(H.tmp .. "/check_reference.py", code)
    rc, o, e = H.sh(("%s %s/check_reference.py %s %s"):format(py, H.tmp, fix, out))
    H.eq(rc, 0, "python check: " .. o .. e)
    H.match(o, "reference reads lacos' files: ok")
  end)
end

H.done()
