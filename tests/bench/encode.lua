-- Benchmark engine: lacos encoding a fixed batch of token ids, driven over
-- stdin/stdout by tests/bench/encode_compare.py (the protocol every engine
-- of the encode benchmark speaks): load, one warm-up encode whose mean-pooled
-- embeddings go to EMB.npy, print {"event":"ready",...}; then one encode per
-- "run" line, answered with {"seconds":..., "cpu_seconds":...} (wall and
-- process CPU time); at "quit" or end of input
-- print {"event":"done","peak_rss_bytes":...} and exit. With ENCODE_DEVICE=cuda
-- the model is on the GPU (encode_ids returns host tensors, so each timed
-- encode includes the copy back and ends with the device done), and "done"
-- adds peak_gpu_bytes (the engine's own peak) and device_used_bytes.
-- usage: [ENCODE_DEVICE=cpu|cuda] lacos run tests/bench/encode.lua MODEL_DIR QUANT IDS.npy MASK.npy EMB.npy
local lacos = require "lacos"
local json = require "lacos.json"
local clock = require("lacos.train").clock
local dir, quant, ids_path, mask_path, emb_path = arg[1], arg[2], arg[3], arg[4], arg[5]
local function say(t) io.stdout:write(json.encode(t), "\n") io.stdout:flush() end
local device = os.getenv("ENCODE_DEVICE") or "cpu"
local cuda0 = device == "cuda" and lacos.cuda.info()   -- before the model: the context alone
local t0 = clock()
local m = lacos.bloom.load(dir, { quant = quant, device = device })
local load_s = clock() - t0
local ids, mask = lacos.tensor.load_npy(ids_path), lacos.tensor.load_npy(mask_path)
local e = m:encode_ids(ids, mask, { pooling = "mean" })   -- warm-up
e:save_npy(emb_path)
e:free()
say { event = "ready", impl = "lacos", quant = quant, device = device, load_seconds = load_s, threads = lacos.threads(),
      device_name = cuda0 and cuda0.name or nil }
for line in io.lines() do
  if line == "quit" then break end
  local t1, c1 = clock(), os.clock()
  m:encode_ids(ids, mask, { pooling = "mean" }):free()
  say { seconds = clock() - t1, cpu_seconds = os.clock() - c1 }
end
local done = { event = "done", peak_rss_bytes = lacos.memory().peak_rss }
if cuda0 then
  -- lacos hands memory back to CUDA as it goes: the device's use at the peak is the
  -- context (in use before the model) plus the engine's peak (as train_step_gpu.lua)
  done.peak_gpu_bytes = lacos.memory("cuda").peak
  done.device_used_bytes = (cuda0.total - cuda0.free) + done.peak_gpu_bytes
end
say(done)
