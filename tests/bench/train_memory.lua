-- Benchmark: peak resident memory of one full training step on a random
-- int8 model of a released shape, generated straight into int8 (no f32 copy,
-- no checkpoint on disk): LoRA r=8 on query_key_value, 8 pairs x 64 tokens,
-- MNRL, 8-bit Adam, activation checkpointing on. One JSON line.
-- usage: lacos run tests/bench/train_memory.lua SHAPE [PAIRS] [T]
local lacos = require "lacos"
local json = require "lacos.json"
local clock = require("lacos.train").clock
local shape, P, T = arg[1] or "bloom-7b1", tonumber(arg[2] or 8), tonumber(arg[3] or 64)
local t0 = clock()
local m = lacos.bloom.random(shape, { seed = 1, quant = "int8", embedding_dtype = "f16" })
local gen_s = clock() - t0
m:add_lora { r = 8, alpha = 16, targets = { "query_key_value" } }
m:set_checkpointing(true)
m:set_fast_backward(true)
local opt = lacos.optim.adam8bit(m:trainable(), { lr = 2e-4 })
local loss = lacos.loss.mnrl { scale = 20 }
local ids = lacos.tensor.rand({ 2 * P, T }, { seed = 2, lo = 4, hi = 30000 }):to("i32")
local mask = lacos.tensor.ones({ 2 * P, T }, "i32")
local cfg = m:config()
-- the memory planner's prediction, as lacos.train checks it before a run
local predicted = lacos.train.plan(m, { texts = 2 * P, max_length = T, checkpointing = true,
                                        optimizer_bytes = opt:state_bytes() }).total
local t1 = clock()
local emb, batch = m:forward_train(ids, mask, "weightedmean", 1)
local v, dA, dP = loss:compute(emb:narrow(1, 1, P):contiguous(), emb:narrow(1, P + 1, P):contiguous())
m:backward(batch, lacos.tensor.cat({ dA, dP }, 1))
opt:clip_grad_norm(1.0)
opt:step(2e-4)
local step_s = clock() - t1
local nonzero = 0
for _, p in ipairs(m:trainable()) do if p.name:match("lora_B") and p.param:abs():max() > 0 then nonzero = nonzero + 1 end end
print(json.encode { shape = shape, pairs = P, T = T, loss = v, generate_seconds = gen_s, step_seconds = step_s,
                    peak_rss_bytes = lacos.memory().peak_rss, engine_peak_bytes = lacos.memory().peak,
                    predicted_bytes = predicted, weight_bytes = m:weight_bytes(),
                    optimizer_state_bytes = opt:state_bytes(), lora_params = m:lora_params(),
                    lora_B_nonzero = nonzero, hidden = cfg.hidden_size })
