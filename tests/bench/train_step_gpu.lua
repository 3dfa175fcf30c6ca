-- Benchmark on the GPU: one training step of tests/bench/train_step.lua's
-- recipe (LoRA r=8 alpha=16 on query_key_value, MNRL over in-batch
-- negatives, clipping, 8-bit Adam) with the model on device "cuda", timed
-- over fixed token ids, with the GPU memory it took. One JSON line.
-- usage: lacos run tests/bench/train_step_gpu.lua MODEL_DIR PAIRS T STEPS IDS.npy MASK.npy [checkpointing on|off]
local lacos = require "lacos"
local json = require "lacos.json"
local clock = require("lacos.train").clock
local dir, pairs_n, T, steps, ids_path, mask_path, ckpt = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5], arg[6], arg[7]
local ok, why = lacos.cuda.available()
if not ok then print(json.encode { impl = "lacos", error = why }) return end
local info0 = lacos.cuda.info()
local t_load = clock()
local m = lacos.bloom.load(dir, { quant = "int8", device = "cuda" })
t_load = clock() - t_load
local weights = lacos.memory("cuda").allocated
m:add_lora { r = 8, alpha = 16, targets = { "query_key_value" } }
m:set_checkpointing(ckpt ~= "off")
m:set_fast_backward(true)
local opt = lacos.optim.adam8bit(m:trainable(), { lr = 2e-4 })
local loss = lacos.loss.mnrl { scale = 20 }
local ids, mask = lacos.tensor.load_npy(ids_path), lacos.tensor.load_npy(mask_path)
local B = pairs_n
-- what lacos.train would predict and check before the first step
local plan = lacos.train.plan(m, { texts = 2 * B, max_length = T, checkpointing = ckpt ~= "off",
                                   optimizer_bytes = opt:state_bytes() })
io.stderr:write("lacos: " .. lacos.train.format_plan(plan) .. "\n")
local losses = {}
local function step(s)
  local emb, batch = m:forward_train(ids, mask, "mean", 0)
  local A = emb:narrow(1, 1, B):contiguous()
  local P = emb:narrow(1, B + 1, B):contiguous()
  local v, dA, dP = loss:compute(A, P)
  m:backward(batch, lacos.tensor.cat({ dA, dP }, 1))
  opt:clip_grad_norm(1.0)
  opt:step(2e-4)
  opt:zero_grad()
  lacos.cuda.synchronize()
  losses[#losses + 1] = v
  return v
end
step(0)   -- warm-up (cuBLASLt's first heuristics, the scratch buffers)
local times = {}
for s = 1, steps do
  local t0 = clock()
  step(s)
  times[s] = clock() - t0
end
table.sort(times)
local med = times[math.floor((#times + 1) / 2)]
local info1 = lacos.cuda.info()
print(json.encode { impl = "lacos", device = info0.name, seconds_per_step = med, tokens_per_s = 2 * B * T / med,
                    engine_peak_gpu_bytes = lacos.memory("cuda").peak, weights_gpu_bytes = weights,
                    -- lacos returns memory to CUDA as it goes, so the device's use at the peak is the
                    -- context (in use before the model) plus the engine's peak, not what is in use at the end
                    device_used_bytes = (info0.total - info0.free) + lacos.memory("cuda").peak,
                    device_used_end_bytes = info1.total - info1.free, device_used_before_bytes = info0.total - info0.free,
                    optimizer_state_bytes = opt:state_bytes(), lora_params = m:lora_params(),
                    planned_peak_bytes = plan.total, checkpointing = ckpt ~= "off", load_seconds = t_load, first_loss = losses[1], last_loss = losses[#losses] })
