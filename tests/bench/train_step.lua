-- Benchmark: one training step (LoRA r=8 on query_key_value + MNRL with
-- in-batch negatives + 8-bit Adam + clipping) on a checkpoint, timed over
-- fixed token ids. One JSON line (wall and process CPU seconds per step).
-- usage: lacos run tests/bench/train_step.lua MODEL_DIR PAIRS T STEPS IDS.npy MASK.npy [checkpointing]
local lacos = require "lacos"
local json = require "lacos.json"
local clock = require("lacos.train").clock
local dir, pairs_n, T, steps, ids_path, mask_path, ckpt = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5], arg[6], arg[7]
local m = lacos.bloom.load(dir, { quant = "int8" })
m:add_lora { r = 8, alpha = 16, targets = { "query_key_value" } }
m:set_checkpointing(ckpt == "on")
m:set_fast_backward(true)
local opt = lacos.optim.adam8bit(m:trainable(), { lr = 2e-4 })
local loss = lacos.loss.mnrl { scale = 20 }
local ids, mask = lacos.tensor.load_npy(ids_path), lacos.tensor.load_npy(mask_path)
local B = pairs_n
local function step(s)
  local emb, batch = m:forward_train(ids, mask, "mean", 0)
  local A = emb:narrow(1, 1, B):contiguous()
  local P = emb:narrow(1, B + 1, B):contiguous()
  local v, dA, dP = loss:compute(A, P)
  m:backward(batch, lacos.tensor.cat({ dA, dP }, 1))
  opt:clip_grad_norm(1.0)
  opt:step(2e-4)
  opt:zero_grad()
  return v
end
step(0)   -- warm-up
local times, cpu = {}, {}
for s = 1, steps do
  local t0, c0 = clock(), os.clock()
  step(s)
  times[s], cpu[s] = clock() - t0, os.clock() - c0   -- wall, and process CPU time (all threads)
end
table.sort(times)
local med = times[math.floor((#times + 1) / 2)]
print(json.encode { impl = "lacos", seconds_per_step = med, step_seconds = times, step_cpu_seconds = cpu, tokens_per_s = 2 * B * T / med,
                    peak_rss_bytes = lacos.memory().peak_rss, optimizer_state_bytes = opt:state_bytes(),
                    lora_params = m:lora_params(), checkpointing = ckpt == "on", threads = lacos.threads() })
