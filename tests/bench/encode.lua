-- Benchmark: encode throughput of a checkpoint in lacos (tokens/s over a
-- fixed batch of token ids), printed as one JSON line.
-- usage: lacos run tests/bench/encode.lua MODEL_DIR QUANT B T REPS IDS.npy MASK.npy
local lacos = require "lacos"
local json = require "lacos.json"
local clock = require("lacos.train").clock
local dir, quant, B, T, reps, ids_path, mask_path = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]), arg[6], arg[7]
local t0 = clock()
local m = lacos.bloom.load(dir, { quant = quant })
local load_s = clock() - t0
local ids, mask = lacos.tensor.load_npy(ids_path), lacos.tensor.load_npy(mask_path)
local e = m:encode_ids(ids, mask, { pooling = "mean" })   -- warm-up
e:free()
local times = {}
for r = 1, reps do
  local t1 = clock()
  local emb = m:encode_ids(ids, mask, { pooling = "mean" })
  times[r] = clock() - t1
  emb:free()
end
table.sort(times)
local med = times[math.floor((#times + 1) / 2)]
local tokens = 0
local mp = mask:data_ptr()
for i = 0, mask:numel() - 1 do tokens = tokens + mp[i] end
print(json.encode { impl = "lacos", quant = quant, tokens_per_s = tokens / med, seconds = med, load_seconds = load_s,
                    peak_rss_bytes = lacos.memory().peak_rss, threads = lacos.threads(), B = B, T = T })
