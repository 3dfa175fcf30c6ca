-- test_train_losses: CoSENT and SBERT's softmax classifier in the training
-- loop, as sentence-transformers trains them — scored and labelled pairs
-- from lists, files and the dataset readers; data that does not fit the loss
-- refused; the training step's gradient equal to finite differences and to
-- the uncached step under GradCache (the classifier's own gradients too);
-- accumulation's weight reaching the classifier; a short run with each loss
-- lowering it on a tiny model.
local H = require "harness"
local lacos = require "lacos"
local F = require "train_fixture"
local T = lacos.tensor
local ffi = require "ffi"

-- ------------------------------------------------------------------ data

H.test("scored and labelled pairs from lists", function()
  local s = lacos.pairs.from_list({ { "a cat", "a kitten", 4.5 }, { "a car", "the sky", 0 } }, { kind = "scored" })
  H.eq(s.kind, "scored")
  H.eq(s:size(), 2)
  local a, b, n, y = s:get(1)
  H.eq(a, "a cat"); H.eq(b, "a kitten"); H.eq(n, nil); H.eq(y, 4.5)
  H.eq(s:target(2), 0)
  H.eq(s:take(1):target(1), 4.5)
  H.eq(s:take(1).kind, "scored")
  local l = lacos.pairs.from_list({ { "p", "h", "entailment" }, { "p", "h2", "Contradiction" }, { "q", "r", 1 } },
                                  { kind = "labelled", source = "mine" })
  H.same({ l:target(1), l:target(2), l:target(3) }, { 0, 2, 1 })
  H.eq(l.source, "mine")
  -- the digest sees scores and labels
  local s2 = lacos.pairs.from_list({ { "a cat", "a kitten", 4.0 }, { "a car", "the sky", 0 } }, { kind = "scored" })
  H.truthy(s:digest() ~= s2:digest(), "another score, another digest")
  H.eq(F.dataset(4):digest(), lacos.pairs.from_list(F.dataset(4).rows):digest(), "pairs digests as before")
  H.raises("example 2 must be {sentence1, sentence2, score} with a finite number as score, got string",
    lacos.pairs.from_list, { { "a", "b", 1 }, { "c", "d", "high" } }, { kind = "scored" })
  H.raises("finite number as score, got nan", lacos.pairs.from_list, { { "a", "b", 0 / 0 } }, { kind = "scored" })
  H.raises("mine: example 1: label 'maybe' is not entailment, neutral, contradiction or a whole number >= 0",
    lacos.pairs.from_list, { { "a", "b", "maybe" } }, { kind = "labelled", source = "mine" })
  H.raises("label -1 is not", lacos.pairs.from_list, { { "a", "b", -1 } }, { kind = "labelled" })
  H.raises("kind must be pairs, scored or labelled, got 'triples'", lacos.pairs.from_list, {}, { kind = "triples" })
  H.raises("unknown option 'knd'", lacos.pairs.from_list, {}, { knd = "scored" })
end)

H.test("scored and labelled pairs from files; errors name file:line", function()
  local sc = H.write(H.tmp .. "/scored.tsv", "a cat sits\ta cat is sitting\t4.5\nthe sky\ta dog runs\t0.5\n")
  local d = lacos.pairs.read(sc, { kind = "scored" })
  H.eq(d.kind, "scored"); H.eq(d:size(), 2); H.eq(d:target(1), 4.5); H.eq(d:target(2), 0.5)
  H.eq(d.source, sc)
  local hd = H.write(H.tmp .. "/scored-h.tsv", "sentence1\tsentence2\tscore\na\tb\t1\nc\td\t2\n")
  H.eq(lacos.pairs.read(hd, { kind = "scored", header = true }):size(), 2)
  H.raises("scored-h.tsv:1:", lacos.pairs.read, hd, { kind = "scored" })
  local nli = H.write(H.tmp .. "/nli.tsv", "a man sleeps\ta person rests\tentailment\na man sleeps\ta man runs\tcontradiction\n" ..
                                          "a man sleeps\tit is night\tneutral\n")
  local l = lacos.pairs.read(nli, { kind = "labelled" })
  H.same({ l:target(1), l:target(2), l:target(3) }, { 0, 2, 1 })
  local bad = H.write(H.tmp .. "/nli-bad.tsv", "a\tb\tentailment\nc\td\tmaybe\n")
  H.raises("nli-bad.tsv:2: label 'maybe' is not entailment, neutral or contradiction", lacos.pairs.read, bad, { kind = "labelled" })
  local ints = H.write(H.tmp .. "/nli-int.tsv", "a\tb\t0\nc\td\t4\n")
  H.eq(lacos.pairs.read(ints, { kind = "labelled", labels = "int" }):target(2), 4)
  local badscore = H.write(H.tmp .. "/scored-bad.tsv", "a\tb\t1\nc\td\thigh\n")
  H.raises("scored-bad.tsv:2:", lacos.pairs.read, badscore, { kind = "scored" })
  -- a pairs file is not a scored one
  local pr = H.write(H.tmp .. "/pairs2.tsv", "a\tb\nc\td\n")
  H.raises("pairs2.tsv:1:", lacos.pairs.read, pr, { kind = "scored" })
  H.raises("kind must be pairs, scored or labelled", lacos.pairs.read, pr, { kind = "nli" })
  H.raises("nli.tsv: the nli layout holds labelled pairs (premise, hypothesis, label), not (anchor, positive) pairs",
    lacos.pairs.read, nli, { format = "nli" })
  H.eq(lacos.pairs.read(pr, { format = "pairs" }):size(), 2)
  H.raises("unknown option 'kinds'", lacos.pairs.read, pr, { kinds = "scored" })
  -- pair sets from lacos.data: a set without scores is not scored data
  local set = lacos.data.read_pairs(pr, { format = "pairs" })
  H.raises("pairs2.tsv:1: pair 1 has no score", set.to_pairs, set, "scored")
  H.raises("pair 1 has no label", set.to_pairs, set, "labelled")
end)

H.test("STS-B's train split as scored pairs; SNLI as labelled pairs (shared data)", function()
  if not H.data or not H.exists(H.data .. "/sts/stsb/sts-train.csv") then H.skip("no shared datasets") end
  local sts = lacos.pairs.read(H.data .. "/sts/stsb/sts-train.csv", { kind = "scored", format = "stsb" })
  H.eq(sts:size(), 5749)   -- PITFALLS.md §2.1
  local a, b, _, y = sts:get(1)
  -- the first pair as the file has it (its 6th, 7th and 5th TAB fields), not copied into this test
  local first = io.open(H.data .. "/sts/stsb/sts-train.csv"):read("*l")
  local f = {}
  for x in (first .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = x end
  H.eq(a, f[6]); H.eq(b, f[7]); H.eq(y, tonumber(f[5]))
  local reg = lacos.data.load("stsb", { split = "train", data = H.data }):to_pairs("scored")
  H.eq(reg:size(), 5749); H.eq(reg:target(2), 3.8)
  if not H.exists(H.data .. "/nli/snli-infersent/s1.dev") then H.skip("no SNLI") end
  local nli = lacos.data.nli_pairs("snli-infersent", { split = "dev", data = H.data })
  H.eq(nli.kind, "labelled")
  H.eq(nli:size(), 9842)
  local counts = { [0] = 0, 0, 0 }
  for i = 1, nli:size() do counts[nli:target(i)] = counts[nli:target(i)] + 1 end
  print(("#   snli dev: %d entailment, %d neutral, %d contradiction"):format(counts[0], counts[1], counts[2]))
  H.truthy(counts[0] > 3000 and counts[1] > 3000 and counts[2] > 3000, "all three labels")
  H.raises("expected a pair set or a dataset id", lacos.data.nli_pairs, 42)
end)

-- ------------------------------------------------------------------ data and loss must fit

H.test("data that does not fit the loss is refused, with what to do", function()
  local m = F.model()
  local opt = F.sgd(m:trainable())
  local base = { model = m, batch_size = 4, steps = 1, quiet = true, progress = false, max_length = 16, pooling = "mean" }
  local function spec(t) local s = {} for k, v in pairs(base) do s[k] = v end for k, v in pairs(t) do s[k] = v end return s end
  H.raises("the loss CoSENT (scale 20) trains on scored pairs (sentence1, sentence2, score) but the data (pairs) holds " ..
           "(anchor, positive) pairs; make it with lacos.pairs.read(path, {kind = \"scored\"})",
    lacos.train, spec { data = F.dataset(8), loss = lacos.loss.cosent {}, optimizer = opt })
  H.raises("the loss MNRL (scale 20) trains on (anchor, positive) pairs but the data (scored fixture) holds scored pairs",
    lacos.train, spec { data = F.scored(8), optimizer = opt })
  local sm = lacos.loss.softmax { dim = 32 }
  local both = F.sgd(lacos.optim.params(m:trainable(), sm:parameters()))
  H.raises("the loss softmax classifier over 3 labels trains on labelled pairs (premise, hypothesis, label) but the data " ..
           "(scored fixture) holds scored pairs", lacos.train, spec { data = F.scored(8), loss = sm, optimizer = both })
  H.raises("holds (anchor, positive, hard negative) triplets", lacos.train,
    spec { data = lacos.pairs.from_list { { "a", "b", "c" }, { "d", "e", "f" } }, loss = sm, optimizer = both })
  H.raises("is 64 wide but the model's embeddings are 32 wide; make it with dim = 32", lacos.train,
    spec { data = F.labelled(8), loss = lacos.loss.softmax { dim = 64 }, optimizer = opt })
  local two = lacos.loss.softmax { dim = 32, labels = 2 }
  H.raises("example 3 of labelled fixture has label 2 but the classifier has 2 labels (0..1)", lacos.train,
    spec { data = F.labelled(8), loss = two, optimizer = F.sgd(lacos.optim.params(m:trainable(), two:parameters())) })
  H.raises("the optimizer does not hold the loss's classifier.weight, which would never be trained", lacos.train,
    spec { data = F.labelled(8), loss = sm, optimizer = opt })
  H.raises("the optimizer does not hold", lacos.train,
    spec { data = F.labelled(8), loss = sm, optimizer = lacos.optim.adamw(m:trainable(), { lr = 1e-3 }) })
  H.raises("need at least 2 examples (a batch of pairs)", lacos.train,
    spec { data = F.scored(1), loss = lacos.loss.cosent {}, optimizer = opt })
  -- a model on the GPU (its device as lacos.train sees it): the classifier stays on the CPU
  local on_gpu = setmetatable({ device = "cuda" }, { __index = m })
  H.raises("the loss softmax classifier over 3 labels has its own weights, trained on the CPU only", lacos.train.check_fit,
    on_gpu, F.labelled(8), sm, both)
  lacos.train.check_fit(on_gpu, F.scored(8), lacos.loss.cosent {}, opt)   -- CoSENT has no weights of its own
  H.raises("lacos.loss.softmax: dim must be a positive whole number", lacos.loss.softmax, { dim = 0 })
  H.raises("lacos.loss.softmax: labels must be a whole number >= 2", lacos.loss.softmax, { dim = 8, labels = 1 })
end)

-- ------------------------------------------------------------------ gradients of the step

local function grads(m, loss)
  local out = {}
  for i, p in ipairs(m:trainable()) do out[i] = p.grad:clone() end
  if loss.parameters then
    for _, p in ipairs(loss:parameters()) do out[#out + 1] = p.grad:clone() end
  end
  return out
end
local function zero(m, loss)
  m:zero_grad()
  if loss.parameters then for _, p in ipairs(loss:parameters()) do p.grad:zero() end end
end

local cases = {
  { name = "CoSENT", data = F.scored, loss = function() return lacos.loss.cosent { scale = 20 } end },
  { name = "softmax", data = F.labelled, loss = function() return lacos.loss.softmax { dim = 32, seed = 3 } end },
}

for _, case in ipairs(cases) do
  H.test(case.name .. ": GradCache gives the uncached loss and gradients (the classifier's too)", function()
    local m = F.model()
    local loss = case.loss()
    local st = { opts = { max_length = 32, pooling = "mean" }, model = m, data = case.data(12), loss = loss }
    local idx = { 1, 2, 3, 4, 5, 6, 7 }
    zero(m, loss)
    local l1 = lacos.train.micro_step(st, idx, 7)
    local g1 = grads(m, loss)
    zero(m, loss)
    st.opts.mini_batch = 3   -- 14 texts in chunks of 3 (the last of 2)
    local l2 = lacos.train.micro_step(st, idx, 7)
    local g2 = grads(m, loss)
    H.near(l2, l1, 1e-6 * math.abs(l1), "loss")
    local worst = 0
    for i = 1, #g1 do
      local scale = math.max(g1[i]:abs():max(), 1e-12)
      worst = math.max(worst, g2[i]:maxdiff(g1[i]) / scale)
    end
    print(("#   loss %.6f; gradients within %.2g relative"):format(l1, worst))
    H.truthy(worst < 1e-4, "gradients differ by " .. worst)
  end)

  H.test(case.name .. ": the training step's gradient equals finite differences", function()
    -- f32 weights and exact backward: the loss is smooth in every parameter
    local m = F.model(1, { quant = "f32" })
    m:set_fast_backward(false)
    local loss = case.loss()
    local st = { opts = { max_length = 32, pooling = "mean" }, model = m, data = case.data(9), loss = loss }
    local idx = { 1, 2, 3, 4, 5, 6 }
    -- move lora_B off zero so that lora_A's gradient is not zero too
    for i, p in ipairs(m:trainable()) do
      if p.name:match("lora_B") then p.param:add_(T.rand(p.param:size(), { seed = 10 + i, lo = -0.3, hi = 0.3 })) end
    end
    zero(m, loss)
    lacos.train.micro_step(st, idx, 5)
    local params = m:trainable()
    if loss.parameters then for _, p in ipairs(loss:parameters()) do params[#params + 1] = p end end
    local g = grads(m, loss)
    -- per tensor, the entry with the largest gradient
    local checked, worst = 0, 0
    for i, p in ipairs(params) do
      local n = p.param:numel()
      local gp, pp = ffi.cast("float*", g[i]:data_ptr()), ffi.cast("float*", p.param:data_ptr())
      local best, at = 0, nil
      for k = 0, n - 1 do if math.abs(gp[k]) > best then best, at = math.abs(gp[k]), k end end
      if at and (i % 3 == 1 or p.name:match("classifier")) then   -- a third of the LoRA tensors, and the classifier
        local eps = 1e-2 * math.max(math.abs(pp[at]), 0.1)
        local x0 = pp[at]
        pp[at] = x0 + eps; zero(m, loss); local lp = lacos.train.micro_step(st, idx, 5)
        pp[at] = x0 - eps; zero(m, loss); local lm = lacos.train.micro_step(st, idx, 5)
        pp[at] = x0
        local fd = (lp - lm) / (2 * eps)
        local rel = math.abs(fd - gp[at]) / math.max(math.abs(gp[at]), 1e-4)
        worst = math.max(worst, rel)
        checked = checked + 1
        if rel > 2e-2 then error(("%s[%d]: gradient %.6g, finite difference %.6g"):format(p.name, at, gp[at], fd)) end
      end
    end
    print(("#   %d parameters: gradient within %.2g relative of the central difference"):format(checked, worst))
    H.truthy(checked >= 4, "checked " .. checked)
  end)

  H.test(case.name .. ": a micro-step's weight scales every gradient, the classifier's included", function()
    local m = F.model()
    local loss = case.loss()
    local st = { opts = { max_length = 32, pooling = "mean" }, model = m, data = case.data(8), loss = loss }
    zero(m, loss)
    local l1 = lacos.train.micro_step(st, { 1, 2, 3, 4 }, 3)
    local g1 = grads(m, loss)
    zero(m, loss)
    local l2 = lacos.train.micro_step(st, { 1, 2, 3, 4 }, 3, 0.25)
    local g2 = grads(m, loss)
    H.eq(l2, l1, "the loss itself is not weighted")
    for i = 1, #g1 do H.eq(g2[i]:maxdiff(g1[i] * 0.25), 0, "gradient " .. i) end
  end)
end

-- ------------------------------------------------------------------ training lowers the loss

-- The loss over the whole dataset, LoRA dropout off (the fixture's adapters have none).
local function full_loss(m, data, loss)
  local st = { opts = { max_length = 32, pooling = "mean" }, model = m, data = data, loss = loss }
  local idx = {}
  for i = 1, data:size() do idx[i] = i end
  local v = lacos.train.micro_step(st, idx, 1)
  zero(m, loss)
  return v
end

H.test("a short run with each loss lowers it on a tiny model", function()
  local runs = {
    { name = "mnrl", data = F.dataset(24), loss = lacos.loss.mnrl { scale = 20 } },
    { name = "cosent", data = F.scored(24), loss = lacos.loss.cosent { scale = 20 } },
    { name = "softmax", data = F.labelled(24), loss = lacos.loss.softmax { dim = 32, seed = 3 } },
  }
  for _, r in ipairs(runs) do
    local m = F.model()
    local before = full_loss(m, r.data, r.loss)
    local res = lacos.train { model = m, data = r.data, loss = r.loss, batch_size = 8, epochs = 8, lr = 1e-2, warmup = 0.1,
                              seed = 3, max_length = 32, pooling = "mean", quiet = true, progress = false,
                              mini_batch = r.name == "cosent" and 5 or nil,
                              optimizer = lacos.optim.adamw(lacos.optim.params(m:trainable(),
                                r.loss.parameters and r.loss:parameters() or {}), { lr = 1e-2 }) }
    H.eq(res.status, "done")
    local after = full_loss(m, r.data, r.loss)
    print(("#   %-8s %d steps: loss over the data %.4f -> %.4f"):format(r.name, res.steps, before, after))
    H.truthy(after < 0.8 * before, r.name .. ": the loss did not fall enough")
  end
end)

H.test("softmax: the classifier is checkpointed and a resumed run continues exactly", function()
  local dir = H.tmp .. "/softmax-ckpt"
  os.execute("rm -rf " .. dir)
  local function go(extra)
    local m = F.model()
    local loss = lacos.loss.softmax { dim = 32, seed = 3 }
    local spec = { model = m, data = F.labelled(24), loss = loss, batch_size = 4, steps = 6, lr = 0.05, warmup = 0, seed = 5,
                   max_length = 32, quiet = true, pooling = "mean", progress = false,
                   optimizer = F.sgd(lacos.optim.params(m:trainable(), loss:parameters())) }
    for k, v in pairs(extra or {}) do spec[k] = v end
    return lacos.train(spec), loss
  end
  local full, lfull = go()
  local first = go { checkpoint_dir = dir, checkpoint_every = 3, on_step = function(st)
    if st.step == 3 then lacos.engine.C.lacos_interrupt_request(1) end
  end }
  H.eq(first.status, "interrupted")
  local rest, lrest = go { checkpoint_dir = dir, checkpoint_every = 3 }
  H.eq(#rest.losses, 3)
  for i = 1, 3 do H.eq(rest.losses[i], full.losses[i + 3], "loss of step " .. (i + 3)) end
  H.eq(lrest.W:maxdiff(lfull.W), 0, "the classifier's weight")
end)

H.done()
