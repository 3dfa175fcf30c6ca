-- Benchmark: data-parallel training steps through lacos.train (all-gather of
-- the embeddings, global MNRL loss, all-reduce of the LoRA gradients) on a
-- random-weight BLOOM of a released shape, and what the communication cost:
-- bytes per step and the share of the step spent inside collectives. Run
-- alone or under mpirun; rank 0 prints one JSON line.
-- usage: lacos run tests/bench/dist_step.lua SHAPE GLOBAL_PAIRS T STEPS DEVICE [TOKENIZER]
local lacos = require "lacos"
local dist = require "lacos.dist"
local json = require "lacos.json"
local shape, B, T, steps, device, tok = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5] or "cpu", arg[6]
local m = lacos.bloom.random(shape, { seed = 1, quant = "int8", device = device, tokenizer = tok })
m:add_lora { r = 8, alpha = 16, targets = { "query_key_value" }, seed = 1 }
-- sentences of exactly T tokens (whole words of the tokenizer), all distinct
local words = { "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "by", "river" }
local rows = {}
for i = 1, B * (steps + 1) do
  local a, p = { "pair " .. i }, { "match " .. i }
  for k = 1, T do a[#a + 1] = words[(i * 7 + k) % #words + 1]; p[#p + 1] = words[(i * 5 + 3 * k) % #words + 1] end
  rows[i] = { table.concat(a, " "), table.concat(p, " ") }
end
local data = lacos.pairs.from_list(rows)
local warm = lacos.train { model = m, data = data, batch_size = B, steps = 1, lr = 2e-4, warmup = 0, max_length = T,
                           quiet = true, progress = false, sync_check = 0, length_bucketing = false }
local r = lacos.train { model = m, data = data, batch_size = B, steps = steps, lr = 2e-4, warmup = 0, max_length = T,
                        quiet = true, progress = false, sync_check = 0, length_bucketing = false }
local lora_bytes = m:lora_params() * 4
if dist.rank() == 0 then
  local c = r.comm or { bytes = 0, seconds = 0, calls = 0, backend = "self (one process)" }
  print(json.encode {
    shape = shape, ranks = r.world_size, global_pairs = B, tokens = T, device = device, steps = #r.losses,
    seconds_per_step = r.seconds / #r.losses, comm_bytes_per_step = c.bytes / #r.losses,
    lora_gradient_bytes = lora_bytes, comm_seconds_per_step = c.seconds / #r.losses,
    comm_share = c.seconds / r.seconds, backend = c.backend, threads = lacos.threads(),
    first_loss = warm.losses[1], last_loss = r.losses[#r.losses],
  })
end
