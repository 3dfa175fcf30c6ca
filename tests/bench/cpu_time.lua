-- Benchmark: process CPU time (all threads) and wall time of an encode and
-- of one training step, on a checkpoint, over fixed random token ids. For
-- comparing two builds of lacos on a shared machine, where wall time follows
-- the neighbours' load but CPU time mostly does not. One JSON line.
-- usage: lacos run tests/bench/cpu_time.lua MODEL_DIR B T REPS
--   encode: B sequences of T tokens, int8 weights, mean pooling;
--   step:   B/2 anchor/positive pairs (MNRL, scale 20), LoRA r=8 on
--           query_key_value, 8-bit Adam, clipping at 1.0, int8 products
--           for input gradients (tests/bench/train_step.lua's step).
-- Each is run once to warm up, then REPS times; the medians are printed.
local lacos = require "lacos"
local json = require "lacos.json"
local util = require "lacos.util"
local dir, B, T, reps = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
assert(dir and B and T and reps and B % 2 == 0, "usage: cpu_time.lua MODEL_DIR B T REPS (B even)")
local ids = lacos.tensor.rand({ B, T }, { seed = 8, lo = 4, hi = 30000 }):to("i32")
local mask = lacos.tensor.ones({ B, T }, "i32")

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end
-- median CPU and wall seconds of f over reps runs after one warm-up
local function time(f)
  f()
  local cpu, wall = {}, {}
  for r = 1, reps do
    local c0, w0 = util.cpu_clock(), util.clock()
    f()
    cpu[r], wall[r] = util.cpu_clock() - c0, util.clock() - w0
  end
  return median(cpu), median(wall)
end

local m = lacos.bloom.load(dir, { quant = "int8" })
local enc_cpu, enc_wall = time(function() m:encode_ids(ids, mask, { pooling = "mean" }):free() end)

m:add_lora { r = 8, alpha = 16, targets = { "query_key_value" } }
m:set_fast_backward(true)
local opt = lacos.optim.adam8bit(m:trainable(), { lr = 2e-4 })
local loss = lacos.loss.mnrl { scale = 20 }
local P = B / 2
local step_cpu, step_wall = time(function()
  local emb, batch = m:forward_train(ids, mask, "mean", 0)
  local A = emb:narrow(1, 1, P):contiguous()
  local Q = emb:narrow(1, P + 1, P):contiguous()
  local _, dA, dQ = loss:compute(A, Q)
  m:backward(batch, lacos.tensor.cat({ dA, dQ }, 1))
  opt:clip_grad_norm(1.0)
  opt:step(2e-4)
  opt:zero_grad()
end)
print(json.encode { encode_cpu_s = enc_cpu, encode_wall_s = enc_wall, step_cpu_s = step_cpu, step_wall_s = step_wall,
                    B = B, T = T, reps = reps, threads = lacos.threads() })
