-- safetensors_resave.lua SRC DST: re-saves the safetensors fixtures of SRC
-- (tests/fixtures/safetensors) with lacos into DST, for make_safetensors.py
-- and the optional reference check in tests/lua/test_safetensors.lua to read
-- back with the Python safetensors library.
local lacos = require "lacos"
local json = require "lacos.json"
local S = lacos.safetensors
local src, dst = arg[1], arg[2]
assert(src and dst, "usage: lacos run safetensors_resave.lua SRC DST")

local st = S.open(src .. "/dtypes.safetensors")
S.save(dst .. "/dtypes.safetensors", st:tensors(), st:metadata())

local ex = S.open(src .. "/exotic.safetensors")
S.save(dst .. "/exotic_held.safetensors", { ok = ex:get("ok") }, ex:metadata())

local expected = json.read(src .. "/expected.json")
local sh = S.open(src .. "/" .. expected.sharded.dir)
local list = {}
for _, name in ipairs(expected.sharded.order) do list[#list + 1] = { name, sh:get(name) } end
S.save_sharded(dst .. "/sharded", list, { max_bytes = expected.sharded.max_shard_size })
print("resaved into " .. dst)
