-- test_cuda_plan: the memory planner (lacos.train.plan) against the engine's
-- measured peak during one training step and optimizer step, with and without
-- activation checkpointing, on the CPU and on the GPU. The plan must cover the step (it is what
-- lacos.train refuses runs by), and the step holds at least the planned
-- activations (the batch is one allocation of that size).
-- The GPU cases are skipped without a usable GPU, never counted as passed.
local H = require "harness"
local lacos = require "lacos"
local C = lacos.engine.C

local gpu, why = lacos.cuda.available()
local TOK = H.root .. "/tests/fixtures/tokenizer/bloomlike-32k.json"

-- sentences of 70 to 90 words, so batches reach max_length (64 tokens)
local function sentences(n, seed)
  local words = { "the", "cat", "sat", "on", "a", "mat", "while", "rain", "fell", "over", "grey", "hills", "and",
                  "rivers", "ran", "to", "sea", "un", "chat", "dort" }
  local out = {}
  for i = 1, n do
    local w = {}
    for k = 1, 70 + (i * 7 + seed) % 20 do w[k] = words[(i * 13 + k * 7 + seed) % #words + 1] end
    out[i] = table.concat(w, " ")
  end
  return out
end

local function sync(device) if device == "cuda" then lacos.cuda.synchronize() end end

for _, case in ipairs { { "cpu", false }, { "cpu", true }, { "cuda", false }, { "cuda", true } } do
  local device, ckpt = case[1], case[2]
  local slot = device == "cuda" and 1 or 0
  H.test(("%s memory plan covers one training step, checkpointing %s"):format(device, ckpt and "on" or "off"), function()
    if device == "cuda" and not gpu then H.skip("no GPU: " .. why) end
    local m = lacos.bloom.random({ base = "tiny-xs", hidden_size = 512, n_head = 8, n_layer = 6, vocab_size = 32000 },
      { seed = 1, quant = "int8", device = device, tokenizer = TOK })
    m:add_lora { r = 8, alpha = 16, targets = { "query_key_value" } }
    m:set_checkpointing(ckpt)
    local rows = {}
    local a, p = sentences(8, 1), sentences(8, 2)
    for i = 1, 8 do rows[i] = { a[i], p[i] } end
    local data = lacos.pairs.from_list(rows)
    local opt = lacos.optim.adam8bit(m:trainable(), { lr = 1e-4 })
    local plan = lacos.train.plan(m, { texts = 16, max_length = 64, checkpointing = ckpt,
                                       optimizer_bytes = opt:state_bytes() })
    sync(device)
    C.lacos_memory_reset_peak(slot)
    local base = C.lacos_memory_allocated(slot)
    local st = { opts = { max_length = 64, pooling = "mean" }, model = m, data = data, loss = lacos.loss.mnrl { scale = 20 } }
    lacos.train.micro_step(st, { 1, 2, 3, 4, 5, 6, 7, 8 }, 1)
    opt:step(1e-4)
    sync(device)
    local used = tonumber(C.lacos_memory_peak(slot)) - tonumber(base)
    local planned = plan.activations + plan.scratch
    print(("#   one step on %s: measured %.1f MiB above the model, planned %.1f MiB (activations %.1f + scratch %.1f)")
      :format(device == "cuda" and lacos.cuda.info().name or "the CPU", used / 2 ^ 20, planned / 2 ^ 20, plan.activations / 2 ^ 20, plan.scratch / 2 ^ 20))
    H.truthy(used <= planned, ("the step used %.1f MiB, more than the %.1f MiB planned"):format(used / 2 ^ 20, planned / 2 ^ 20))
    -- the activations are one allocation of the planned size: the step holds at least that
    H.truthy(used >= plan.activations, ("the step (%.1f MiB) held less than the planned activations (%.1f MiB)")
      :format(used / 2 ^ 20, plan.activations / 2 ^ 20))
    m:free()
  end)
end

H.done()
