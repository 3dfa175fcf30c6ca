-- test_train: the training loop on a tiny random BLOOM — GradCache equals
-- the uncached step (loss and gradients), runs repeat bit for bit, a
-- resumed run continues exactly like an uninterrupted one, non-finite losses
-- are skipped and K in a row fail the run, batches never hold duplicates,
-- accumulation applies the mean gradient, activation checkpointing's
-- default, length bucketing, the progress bar, learning-rate schedule, bad
-- options. (The CoSENT and softmax losses in the loop: test_train_losses.)
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor
local ffi = require "ffi"

local F = require "train_fixture"
local model, sgd, dataset = F.model, F.sgd, F.dataset

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

H.test("accumulation applies the mean of its batches' gradients; the logged grad_norm is that mean's norm", function()
  local data = dataset(24)
  local lr, seed = 0.05, 5
  -- the two batches the loop takes for its first update
  local order = lacos.train.epoch_order(data, 1, seed, 4, true)
  local b1, pos, deferred = lacos.train.next_batch(data, order, 1, 4, true, {})
  local b2 = lacos.train.next_batch(data, order, pos, 4, true, deferred)
  -- by hand: each batch's gradient alone, their mean and its norm
  local ref = model()
  ref:set_fast_backward(false)
  local st = { opts = { max_length = 32, pooling = "mean" }, model = ref, data = data, loss = lacos.loss.mnrl { scale = 20 } }
  local params = ref:trainable()
  ref:zero_grad()
  lacos.train.micro_step(st, b1, 17)
  local g1 = {}
  for i, p in ipairs(params) do g1[i] = p.grad:clone() end
  ref:zero_grad()
  lacos.train.micro_step(st, b2, 18)
  local mean, sq = {}, 0
  for i, p in ipairs(params) do
    mean[i] = (g1[i] + p.grad) * 0.5
    sq = sq + mean[i]:norm() ^ 2
  end
  local norm = math.sqrt(sq)
  -- the loop, unclipped and clipped to half that norm: one SGD step along the (clipped) mean
  for _, clip in ipairs { 0, norm / 2 } do
    local m = model()
    local logged
    lacos.train { model = m, data = data, batch_size = 4, accumulation = 2, steps = 1, lr = lr, warmup = 0,
                  schedule = "constant", seed = seed, max_length = 32, quiet = true, pooling = "mean", progress = false,
                  max_grad_norm = clip, optimizer = sgd(m:trainable()),
                  on_step = function(s) logged = s.log[1].grad_norm end }
    H.near(logged, norm, 1e-5 * norm, "logged grad_norm (the norm of the mean, not of the sum " .. 2 * norm .. ")")
    local factor = clip > 0 and clip / norm or 1
    local worst, biggest = 0, 0
    for i, p in ipairs(m:trainable()) do
      local want = params[i].param - mean[i] * (lr * factor)
      worst = math.max(worst, p.param:maxdiff(want))
      biggest = math.max(biggest, (mean[i] * (lr * factor)):abs():max())
    end
    print(("#   clip %g: grad_norm %.6g (mean's %.6g); parameters within %.3g of p - lr*mean (largest update %.3g)")
      :format(clip, logged, norm, worst, biggest))
    H.truthy(worst <= 1e-6 * math.max(biggest, 1e-3), "parameters differ by " .. worst)
  end
end)

H.test("activation checkpointing: on by default from hidden size 1536; an explicit choice wins", function()
  local C = lacos.engine.C
  local big = lacos.bloom.random({ base = "tiny-xs", vocab_size = 512, hidden_size = 1536, n_head = 12, n_layer = 1 },
    { seed = 1, quant = "int8" })
  big.tokenizer = F.toy_tokenizer(512)
  big:add_lora { r = 2, targets = { "query_key_value" } }
  local small = model()
  local function train(m, extra)
    local spec = { model = m, data = dataset(8), batch_size = 2, steps = 1, quiet = true, progress = false,
                   max_length = 8, pooling = "mean", optimizer = sgd(m:trainable()) }
    for k, v in pairs(extra or {}) do spec[k] = v end
    local r = lacos.train(spec)
    H.eq(r.status, "done")
    H.eq(r.plan.checkpointing, C.lacos_bloom_get_checkpointing(m.ptr) ~= 0, "the plan and the engine agree")
    return r.plan.checkpointing
  end
  H.eq(train(big), true, "hidden 1536, nothing said")
  H.eq(train(small), false, "hidden 32, nothing said")
  H.eq(train(big, { checkpointing = false }), false, "hidden 1536, checkpointing = false")
  H.eq(train(small, { checkpointing = true }), true, "hidden 32, checkpointing = true")
  H.eq(train(small), false, "a call's option lasts for that call")
  small:set_checkpointing(true)
  H.eq(train(small), true, "model:set_checkpointing holds when the call does not say")
  H.eq(train(small, { checkpointing = false }), false, "and the call's option still wins")
  H.eq(lacos.train.checkpointing_default(lacos.bloom.config("bloom-560m")), false)   -- hidden 1024
  H.eq(lacos.train.checkpointing_default(lacos.bloom.config("bloom-1b1")), true)    -- hidden 1536
end)

-- The byte lengths of examples' anchors, per batch of `batch` in `order`.
local function batch_lengths(data, order, batch)
  local out = {}
  for b0 = 1, #order, batch do
    local lens = {}
    for i = b0, math.min(#order, b0 + batch - 1) do lens[#lens + 1] = #data.rows[order[i]][1] end
    table.sort(lens)
    out[#out + 1] = lens
  end
  return out
end

H.test("length bucketing: a batch holds similar lengths, batches come shuffled, the order is fixed by the seed", function()
  local rows = {}
  for i = 1, 200 do
    local k = (i * 37) % 23 + 1
    rows[i] = { ("word "):rep(k) .. i, "positive " .. i }
  end
  local data = lacos.pairs.from_list(rows)
  local E = lacos.train.epoch_order
  local a, b = E(data, 1, 7, 4, true), E(data, 1, 7, 4, true)
  H.same(a, b, 0, "the same seed and epoch")
  local seen = {}
  for _, i in ipairs(a) do seen[i] = (seen[i] or 0) + 1 end
  for i = 1, 200 do H.eq(seen[i], 1, "example " .. i .. " once in the epoch") end
  local function differs(x, y) for i = 1, #x do if x[i] ~= y[i] then return true end end return false end
  H.truthy(differs(a, E(data, 1, 8, 4, true)), "another seed, another order")
  H.truthy(differs(a, E(data, 2, 7, 4, true)), "another epoch, another order")
  -- 200 examples are one window of 50 batches: sorted by length, then cut,
  -- so two batches' length ranges never overlap
  local bl = batch_lengths(data, a, 4)
  local spread, plain = 0, 0
  for i, x in ipairs(bl) do
    spread = spread + x[#x] - x[1]
    for j = i + 1, #bl do
      local y = bl[j]
      H.truthy(x[#x] <= y[1] or y[#y] <= x[1], ("batches %d and %d overlap in length"):format(i, j))
    end
  end
  for _, x in ipairs(batch_lengths(data, E(data, 1, 7, 4, false), 4)) do plain = plain + x[#x] - x[1] end
  print(("#   summed length spread within batches: %d bucketed, %d shuffled only"):format(spread, plain))
  H.truthy(spread * 10 < plain, "bucketing groups lengths")
  -- the batches themselves are shuffled: lengths do not rise through the epoch
  local rises = true
  for i = 2, #bl do if bl[i][1] < bl[i - 1][1] then rises = false end end
  H.truthy(not rises, "batches come in length order")
end)

-- A script that trains 6 steps with the default progress setting.
local function progress_script()
  return H.write(H.tmp .. "/train_progress.lua", [[
local lacos = require "lacos"
local F = require "train_fixture"
print("STDOUT-MARK")
local m = F.model()
local r = lacos.train { model = m, data = F.dataset(24), batch_size = 4, steps = 6, lr = 0.05, warmup = 0, seed = 5,
                        max_length = 32, pooling = "mean", optimizer = F.sgd(m:trainable()) }
print("status " .. r.status)
]])
end
local function exe()
  local l = H.lacos
  if l:sub(1, 1) ~= "/" then l = H.root .. "/" .. l end
  return l
end

H.test("the progress bar: drawn on a terminal (stderr) with loss, tokens/s and ETA", function()
  local ok_pty, P = pcall(require, "pty")
  if not ok_pty then H.skip("no pty driver: " .. tostring(P)) end
  local script = progress_script()
  -- only stderr reaches the terminal: stdout goes to /dev/null
  local p, err = P.spawn({ "/bin/sh", "-c", ("exec '%s' run '%s' >/dev/null"):format(exe(), script) },
                         { TERM = "xterm", NO_COLOR = "1" })
  if not p then H.skip("cannot open a pseudo-terminal here: " .. tostring(err)) end
  local status = p:wait(120)
  while p:pump(0.2) do end
  local raw = p.out
  p:close()
  H.eq(status, 0, "exit status; the terminal showed:\n" .. P.plain(raw))
  local draws = select(2, raw:gsub("\r%[", ""))
  H.truthy(draws >= 6, "one redraw per step, saw " .. draws)
  H.truthy(raw:find("] 1/6 loss", 1, true), "step 1 drawn")
  local screen = P.plain(raw)
  H.match(screen, "%[" .. ("#"):rep(30) .. "%] 6/6 loss %d+%.%d%d%d%d +%d+ tok/s ETA %dm%d%ds", "the last drawing")
  H.truthy(not screen:find("STDOUT-MARK", 1, true), "stdout did not reach the terminal")
  print("#   " .. screen:match("[^\n]*6/6 loss[^\n]*"))
end)

H.test("without a terminal: no bar, a plain line every log_every steps (a batch job's log)", function()
  local script = progress_script()
  local rc, out, err = H.sh(("'%s' run '%s'"):format(exe(), script))
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(out, "STDOUT%-MARK\nstatus done")
  H.truthy(not err:find("\r", 1, true) and not err:find("[#", 1, true), "no progress bar on a file: " .. err)
  H.match(err, "predicted peak")   -- not quiet: the memory plan is still said
  -- log_every is 10 and the run 6 steps: one line, at the last step
  local lines = {}
  for l in err:gmatch("lacos: step [^\n]*") do lines[#lines + 1] = l end
  H.eq(#lines, 1, "progress lines: " .. err)
  H.match(lines[1], "^lacos: step 6/6 loss [%d.]+ lr [%d.e-]+ %d+ tok/s elapsed %d+s ETA 0s$")
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
  -- the model keeps the step's activation memory for the next step; the plan counts it as available
  local held = C.lacos_bloom_train_workspace_bytes(m.ptr)
  H.truthy(held > 0 and held <= plan.activations, "the model keeps one batch's memory")
  -- the collector stays off between reading the allocation and the plan: a
  -- tensor's finalizer freeing memory in between would move "available"
  collectgarbage("collect")
  collectgarbage("stop")
  lacos.memory_limit(C.lacos_memory_allocated(0) + 2 ^ 20)   -- below the free memory: available is exact
  local again = lacos.train.plan(m, { texts = 8, max_length = 32, checkpointing = false })
  collectgarbage("restart")
  lacos.memory_limit(0)
  H.eq(again.available, 2 ^ 20 + held, "the held memory counts as available")
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
