-- Benchmark engine: lacos encoding a fixed batch of token ids, driven over
-- stdin/stdout by tests/bench/encode_compare.py (the protocol every engine
-- of the encode benchmark speaks): load, one warm-up encode whose mean-pooled
-- embeddings go to EMB.npy, print {"event":"ready",...}; then one encode per
-- "run" line, answered with {"seconds":..., "cpu_seconds":...} (wall and
-- process CPU time); at "quit" or end of input
-- print {"event":"done","peak_rss_bytes":...} and exit.
-- usage: lacos run tests/bench/encode.lua MODEL_DIR QUANT IDS.npy MASK.npy EMB.npy
local lacos = require "lacos"
local json = require "lacos.json"
local clock = require("lacos.train").clock
local dir, quant, ids_path, mask_path, emb_path = arg[1], arg[2], arg[3], arg[4], arg[5]
local function say(t) io.stdout:write(json.encode(t), "\n") io.stdout:flush() end
local t0 = clock()
local m = lacos.bloom.load(dir, { quant = quant })
local load_s = clock() - t0
local ids, mask = lacos.tensor.load_npy(ids_path), lacos.tensor.load_npy(mask_path)
local e = m:encode_ids(ids, mask, { pooling = "mean" })   -- warm-up
e:save_npy(emb_path)
e:free()
say { event = "ready", impl = "lacos", quant = quant, load_seconds = load_s, threads = lacos.threads() }
for line in io.lines() do
  if line == "quit" then break end
  local t1, c1 = clock(), os.clock()
  m:encode_ids(ids, mask, { pooling = "mean" }):free()
  say { seconds = clock() - t1, cpu_seconds = os.clock() - c1 }
end
say { event = "done", peak_rss_bytes = lacos.memory().peak_rss }
