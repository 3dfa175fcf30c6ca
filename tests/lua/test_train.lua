-- test_train: the training loop on a tiny random BLOOM — GradCache equals
-- the uncached step (loss and gradients), runs repeat bit for bit, a
-- resumed run continues exactly like an uninterrupted one, non-finite losses
-- are skipped and K in a row fail the run, batches never hold duplicates,
-- learning-rate schedule, bad options.
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor
local ffi = require "ffi"

-- A whitespace tokenizer with stable ids, so these tests need no tokenizer file.
local function toy_tokenizer(vocab)
  local tok = {}
  function tok:encode_batch(list, opts)
    local rows, maxlen = {}, 1
    for i, s in ipairs(list) do
      local ids = {}
      for w in s:gmatch("%S+") do
        local h = 0
        for k = 1, #w do h = (h * 31 + w:byte(k)) % 1000003 end
        ids[#ids + 1] = 4 + h % (vocab - 4)
      end
      if opts and opts.max_length and #ids > opts.max_length then
        local cut = {}
        for k = 1, opts.max_length do cut[k] = ids[k] end
        ids = cut
      end
      rows[i] = ids
      if #ids > maxlen then maxlen = #ids end
    end
    local ids, mask = T.zeros({ #list, maxlen }, "i32"), T.zeros({ #list, maxlen }, "i32")
    local ip, mp = ids:data_ptr(), mask:data_ptr()
    for i, r in ipairs(rows) do
      for k, v in ipairs(r) do ip[(i - 1) * maxlen + k - 1] = v; mp[(i - 1) * maxlen + k - 1] = 1 end
      for k = #r + 1, maxlen do ip[(i - 1) * maxlen + k - 1] = 3 end
    end
    return ids, mask
  end
  return tok
end

local function model(seed)
  local m = lacos.bloom.random({ base = "tiny-xs", vocab_size = 512, hidden_size = 32, n_head = 4, n_layer = 2 },
    { seed = seed or 1, quant = "int8" })
  m.tokenizer = toy_tokenizer(512)
  m:add_lora { r = 4, alpha = 8, targets = { "all" }, seed = 2 }
  return m
end

-- Plain SGD, enough to exercise the loop (the real optimizers have their own tests).
local function sgd(params)
  local o = {}
  function o:step(lr) for _, p in ipairs(params) do p.param:sub_(p.grad * lr) end end
  function o:zero_grad() for _, p in ipairs(params) do p.grad:zero() end end
  function o:clip_grad_norm(max)
    local s = 0
    for _, p in ipairs(params) do s = s + p.grad:norm() ^ 2 end
    local n = math.sqrt(s)
    if n > max and n == n then for _, p in ipairs(params) do p.grad:mul_(max / n) end end
    return n
  end
  function o:state() return {} end
  function o:load_state() end
  return o
end

local words = { "cat", "dog", "bird", "fish", "tree", "car", "house", "river", "stone", "cloud", "rain", "sun" }
local function dataset(n)
  local rows = {}
  for i = 1, n do
    local a = words[(i - 1) % #words + 1] .. " " .. words[(i * 7) % #words + 1] .. " " .. i
    rows[i] = { a, a .. " again " .. words[(i * 5) % #words + 1] }
  end
  return lacos.pairs.from_list(rows)
end

H.test("GradCache gives the uncached loss and gradients", function()
  local m = model()
  local data = dataset(8)
  local st = { opts = { max_length = 32, pooling = "mean" }, model = m, data = data, loss = lacos.loss.mnrl { scale = 20 } }
  local idx = { 1, 2, 3, 4, 5, 6 }
  m:zero_grad()
  local l1 = lacos.train.micro_step(st, idx, 7)
  local g1 = {}
  for i, p in ipairs(m:trainable()) do g1[i] = p.grad:clone() end
  m:zero_grad()
  st.opts.mini_batch = 5   -- 12 texts in chunks of 5, 5, 2
  local l2 = lacos.train.micro_step(st, idx, 7)
  H.near(l2, l1, 1e-6, "loss")
  local worst = 0
  for i, p in ipairs(m:trainable()) do
    local scale = math.max(g1[i]:abs():max(), 1e-12)
    worst = math.max(worst, p.grad:maxdiff(g1[i]) / scale)
  end
  H.truthy(worst < 1e-4, "gradients differ by " .. worst)
end)

local function run(opts)
  local m = model()
  local spec = {
    model = m, data = dataset(24), batch_size = 4, steps = 6, lr = 0.05, warmup = 0, seed = 5,
    max_length = 32, quiet = true, pooling = "mean", progress = false,
    optimizer = sgd(m:trainable()),
  }
  for k, v in pairs(opts or {}) do spec[k] = v end
  return lacos.train(spec), m
end

H.test("a run repeats bit for bit", function()
  local a = run()
  local b = run()
  H.eq(a.status, "done")
  H.truthy(a.losses[1] ~= a.losses[6], "losses change as the adapter trains")
  print(("#   losses %.5f ... %.5f"):format(a.losses[1], a.losses[6]))
  H.eq(#a.losses, 6)
  for i = 1, 6 do H.eq(a.losses[i], b.losses[i], "loss " .. i) end
end)

H.test("a resumed run continues exactly", function()
  local dir = H.tmp .. "/resume-ckpt"
  os.execute("rm -rf " .. dir)
  local full = run()
  local first = run { steps = 6, checkpoint_dir = dir, checkpoint_every = 3, on_step = function(st)
    if st.step == 3 then lacos.engine.C.lacos_interrupt_request(1) end
  end }
  H.eq(first.status, "interrupted")
  H.eq(first.steps, 3)
  local rest = run { steps = 6, checkpoint_dir = dir, checkpoint_every = 3 }
  H.eq(rest.status, "done")
  H.eq(#rest.losses, 3)
  for i = 1, 3 do H.eq(rest.losses[i], full.losses[i + 3], "loss of step " .. (i + 3)) end
end)

H.test("non-finite losses are skipped, and K in a row fail the run", function()
  local bad = { kind = "mnrl", columns = "pairs", calls = 0 }
  local real = lacos.loss.mnrl { scale = 20 }
  function bad:compute(a, c)
    self.calls = self.calls + 1
    local v, da, dc = real:compute(a, c)
    if self.calls == 2 or self.calls >= 4 then return 0 / 0, da, dc end
    return v, da, dc
  end
  local r = run { loss = bad, steps = 10, max_nonfinite = 3 }
  H.eq(r.status, "failed")
  H.match(r.reason, "nonfinite")
  H.eq(r.steps, 6)        -- step 2 skipped and recovered; steps 4, 5, 6 in a row end it
  H.eq(r.skipped, 4)
  H.truthy(r.losses[2] ~= r.losses[2], "the skipped step's loss is recorded as NaN, not replaced")
end)

H.test("batches hold no duplicate texts", function()
  local rows = {}
  for i = 1, 12 do rows[i] = { "same anchor", "positive " .. i } end
  local data = lacos.pairs.from_list(rows)
  local order = lacos.train.epoch_order(data, 1, 1, 4, false)
  local idx, pos, deferred = lacos.train.next_batch(data, order, 1, 4, true, {})
  H.eq(#idx, 1, "only one example with the repeated anchor fits a batch")
  H.eq(#deferred, 11)
end)

H.test("learning-rate schedule: linear warmup then decay", function()
  H.near(lacos.train.lr_at(1, 100, 10, 1.0, "linear"), 0.1, 1e-12)
  H.near(lacos.train.lr_at(10, 100, 10, 1.0, "linear"), 1.0, 1e-12)
  H.near(lacos.train.lr_at(55, 100, 10, 1.0, "linear"), 0.5, 1e-12)
  H.near(lacos.train.lr_at(100, 100, 10, 1.0, "linear"), 0.0, 1e-12)
  H.near(lacos.train.lr_at(70, 100, 10, 1.0, "constant"), 1.0, 1e-12)
end)

H.test("the memory plan predicts the step's peak and refuses runs that cannot fit", function()
  local m = model()
  local data = dataset(16)
  local plan = lacos.train.plan(m, { texts = 8, max_length = 32, checkpointing = false })
  H.truthy(plan.activations_checkpointed < plan.activations_full, "checkpointing keeps less")
  -- measured: the engine's peak during one step of 4 pairs (8 texts) of at most 32 tokens
  local C = lacos.engine.C
  C.lacos_memory_reset_peak(0)
  local base = C.lacos_memory_allocated(0)
  local st = { opts = { max_length = 32, pooling = "mean" }, model = m, data = data, loss = lacos.loss.mnrl { scale = 20 } }
  lacos.train.micro_step(st, { 1, 2, 3, 4 }, 1)
  local used = C.lacos_memory_peak(0) - base
  print(("#   one step: measured %.0f KiB above the model, planned %.0f KiB of activations"):format(used / 1024, plan.activations / 1024))
  H.truthy(used <= plan.activations * 1.25 + 2 ^ 20, "the step used more than planned")
  -- a soft memory limit below the plan: refused before the first step, with the plan in the message
  lacos.memory_limit(C.lacos_memory_allocated(0) + 1024)
  local err = H.raises("more memory", lacos.train, { model = m, data = data, batch_size = 4, steps = 1, quiet = true,
                                                    optimizer = sgd(m:trainable()), max_length = 32 })
  lacos.memory_limit(0)
  H.match(err, "predicted peak")
end)

H.test("bad options are refused", function()
  local m = model()
  H.raises("unknown option 'lrate'", lacos.train, { model = m, data = dataset(4), lrate = 1 })
  H.raises("batch_size must be at least 2", lacos.train, { model = m, data = dataset(4), batch_size = 1 })
  H.raises("option 'model' is required", lacos.train, { data = dataset(4) })
  m:remove_lora()
  H.raises("no LoRA adapter", lacos.train, { model = m, data = dataset(4) })
end)

H.done()
