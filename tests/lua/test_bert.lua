-- The BERT family (engine/bert.c) against its references:
-- - a tiny random BERT: the LoRA gradients of the training backward (the
--   post-LN block backward of every layer, bidirectional attention, the
--   erf GELU, each pooling mode) against central finite differences of the
--   inference forward;
-- - all-MiniLM-L6-v2 (models/, `make models-minilm`) against the
--   sentence-transformers fixture (tests/fixtures/minilm): hidden states and
--   encode embeddings in f32, int8 cosines, STS Spearman (stsb test here;
--   every English set with LACOS_TEST_LONG=1, i.e. make check-long);
-- - LoRA adapters against PEFT + torch (reference virtualenv): PEFT loads
--   lacos' adapter, lacos loads PEFT's, one step's gradients agree.
-- Parts are skipped, saying why, without the model, the data or the venv.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local T = lacos.tensor
local ffi = require "ffi"

local model_dir = H.root .. "/models/all-MiniLM-L6-v2"
local have_model = H.exists(model_dir .. "/model.safetensors")
local venv = os.getenv("VENV") or (H.exists(H.root .. "/.venv-ref/bin/python") and (H.root .. "/.venv-ref") or nil)
local py = venv and (venv .. "/bin/python") or nil
local no_model = "models/all-MiniLM-L6-v2 is absent (make models-minilm)"

-- ---------------------------------------------------------------- tiny random BERT

local function tiny(quant)
  return lacos.bloom.random({ base = "tiny-xs", family = "bert", vocab_size = 50, hidden_size = 16, n_layer = 2,
                              n_head = 4, intermediate_size = 24, max_length = 12 },
                            { seed = 3, quant = quant or "f32", embedding_dtype = "f32" })
end

local function batch()
  local ids = T.from({ { 2, 7, 9, 11, 4, 3 }, { 2, 30, 8, 3, 0, 0 } }, "i32")
  local mask = T.from({ { 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 0, 0 } }, "i32")
  return ids, mask
end

-- A fixed pseudo-random fill (no dependence on Lua's math.random state).
local function fill(t, seed, scale)
  local p, n = ffi.cast("float*", t.t.data), t:numel()
  local x = seed
  for i = 0, n - 1 do
    x = (x * 1103515245 + 12345) % 2147483648
    p[i] = scale * (x / 1073741824 - 1)
  end
end

H.test("tiny BERT: LoRA gradients of the block backward equal finite differences (mean, cls, max)", function()
  local m = tiny()
  m:add_lora { r = 3, alpha = 6, targets = { "query", "key", "value", "dense" } }
  local tr = m:trainable()
  for i, t in ipairs(tr) do fill(t.param, 17 + i, 0.3) end   -- B ≠ 0, so every path carries gradient
  local ids, mask = batch()
  local W = T.empty({ 2, 16 }, "f32")
  fill(W, 5, 1)
  local wp = ffi.cast("float*", W.t.data)
  for _, pooling in ipairs { "mean", "cls", "max" } do
    local function loss()
      local e = m:encode_ids(ids, mask, { pooling = pooling, force = true })
      local p, s = ffi.cast("float*", e.t.data), 0
      for k = 0, 31 do s = s + p[k] * wp[k] end
      return s
    end
    m:zero_grad()
    local _, b = m:forward_train(ids, mask, pooling, 0)
    m:backward(b, W)
    local worst, checked = 0, 0
    for _, t in ipairs(tr) do
      local p, g = ffi.cast("float*", t.param.t.data), ffi.cast("float*", t.grad.t.data)
      local n = t.param:numel()
      for _, k in ipairs { 0, math.floor(n / 3), math.floor(2 * n / 3), n - 1 } do
        local keep, eps = p[k], 1e-2
        p[k] = keep + eps; local up = loss()
        p[k] = keep - eps; local down = loss()
        p[k] = keep
        local fd = (up - down) / (2 * eps)
        local err = math.abs(fd - g[k]) / math.max(1e-2, math.abs(fd))
        if err > worst then worst = err end
        checked = checked + 1
      end
    end
    print(("# %s pooling: %d LoRA gradient entries, worst relative error %.2e"):format(pooling, checked, worst))
    H.truthy(worst < 2e-2, pooling .. ": worst relative error " .. worst)
  end
end)

H.test("tiny BERT: int8 follows f32, an adapter saves and loads, targets are named", function()
  local f, q = tiny("f32"), tiny("int8")
  local ids, mask = batch()
  local a, b = f:encode_ids(ids, mask, { pooling = "mean", force = true }), q:encode_ids(ids, mask, { pooling = "mean", force = true })
  local pa, pb = ffi.cast("float*", a.t.data), ffi.cast("float*", b.t.data)
  for r = 0, 1 do
    local d, na, nb = 0, 0, 0
    for k = 0, 15 do d = d + pa[r * 16 + k] * pb[r * 16 + k]; na = na + pa[r * 16 + k] ^ 2; nb = nb + pb[r * 16 + k] ^ 2 end
    H.truthy(d / math.sqrt(na * nb) > 0.999, "int8 cosine")
  end
  f:add_lora { r = 2, targets = { "value", "output.dense" } }
  for i, t in ipairs(f:trainable()) do fill(t.param, 40 + i, 0.2) end
  local dir = H.tmp .. "/bert-adapter"
  f:save_lora(dir)
  local cfg = json.read(dir .. "/adapter_config.json")
  H.eq(cfg.auto_mapping.base_model_class, "BertModel")
  -- output.dense alone cannot be a suffix (it would match attention.output.dense): each block's full name
  H.eq(cfg.target_modules[1], "value")
  H.eq(cfg.target_modules[2], "encoder.layer.0.output.dense")
  local e1 = f:encode_ids(ids, mask, { pooling = "mean", force = true })
  local g = tiny("f32")
  g:load_lora(dir)
  H.same(g.lora.targets, { "value", "output.dense" })
  local e2 = g:encode_ids(ids, mask, { pooling = "mean", force = true })
  local p1, p2 = ffi.cast("float*", e1.t.data), ffi.cast("float*", e2.t.data)
  for k = 0, e1:numel() - 1 do H.eq(p1[k], p2[k], "embedding element " .. k) end
  H.raises("unknown LoRA target 'query_key_value' for BERT", function() g:add_lora { targets = { "query_key_value" } } end)
  H.raises("name linears a BERT block has", function()
    local c = ffi.new("lacos_lora_config")
    lacos.engine.C.lacos_lora_config_init(c)
    lacos.engine.check(lacos.engine.C.lacos_lora_attach(g.ptr, c))   -- query_key_value's bit
  end)
end)

-- ---------------------------------------------------------------- all-MiniLM-L6-v2

local fx = json.read(H.root .. "/tests/fixtures/minilm/sentences.json")
-- The linears int8 keeps in f32 to reach cosine 0.999 (results/minilm.md: the
-- ten that tests/reference/int8_sensitivity.py finds cost most; lacos fuses
-- query, key and value, so the five values keep their layer's query and key
-- in f32 too).
local MINILM_SKIP = { "layer.1.attention.self.value", "layer.2.attention.self.value", "layer.3.attention.self.value",
                      "layer.4.attention.self.value", "layer.5.attention.self.value", "layer.0.output.dense",
                      "layer.1.output.dense", "layer.2.output.dense", "layer.3.output.dense",
                      "layer.4.intermediate.dense" }

local function cosines(t, ref)
  local p, out = ffi.cast("float*", t.t.data), {}
  local C = #ref[1]
  local maxd = 0
  for i, row in ipairs(ref) do
    local d, a, b = 0, 0, 0
    for c = 1, C do
      local x = p[(i - 1) * C + c - 1]
      maxd = math.max(maxd, math.abs(x - row[c]))
      d, a, b = d + x * row[c], a + x * x, b + row[c] * row[c]
    end
    out[i] = d / math.sqrt(a * b)
  end
  return out, maxd
end

if have_model then
  H.test("all-MiniLM-L6-v2 f32: hidden states and encode equal sentence-transformers within 1e-5", function()
    local m = lacos.load(model_dir, { quant = "f32" })
    H.eq(m:family(), "bert")
    H.eq(m:pooling(), "mean")
    H.truthy(m:normalizes(), "a Normalize module")
    local ids, mask = m:tokenize(fx.sentences)
    for i = 1, #fx.sentences do
      local ip = ids:data_ptr()
      for t = 0, fx.last_hidden[i].n_tokens - 1 do H.eq(ip[(i - 1) * ids:size(2) + t], fx.input_ids[i][t + 1]) end
    end
    local h = m:forward(ids, mask)
    local hp, Tn, worst = h:data_ptr(), ids:size(2), 0
    for i, lh in ipairs(fx.last_hidden) do
      for r, row in pairs(lh.rows) do
        for c = 1, #row do worst = math.max(worst, math.abs(hp[((i - 1) * Tn + tonumber(r)) * 384 + c - 1] - row[c])) end
      end
    end
    local _, enc = cosines(m:encode(fx.sentences), fx.encode)
    local _, pooled = cosines(m:encode(fx.sentences, { normalize = false }), fx.pooled)
    print(("# max |diff|: hidden %.2e, encode %.2e, unnormalised pooled %.2e"):format(worst, enc, pooled))
    H.truthy(worst < 1e-4 and enc < 1e-5 and pooled < 1e-5, "parity")
  end)

  H.test("all-MiniLM-L6-v2 int8: cosine to sentence-transformers per sentence", function()
    -- LLM.int8 with row-wise weight codes loses more on this small model
    -- than the issue's 0.999 target: an exact emulation of the same
    -- quantisation in torch gives the same cosines (weights alone: 0.9988
    -- at worst). Measured, and held here: 0.993 without outlier columns,
    -- 0.998 with the usual threshold 6.
    for _, case in ipairs { { 0, 0.993 }, { 6, 0.998 } } do
      local m = lacos.load(model_dir, { quant = "int8", threshold = case[1] })
      local cs = cosines(m:encode(fx.sentences), fx.encode)
      local lo = 1
      for _, c in ipairs(cs) do lo = math.min(lo, c) end
      print(("# int8 threshold %g: lowest cosine %.5f"):format(case[1], lo))
      H.truthy(lo >= case[2], "lowest cosine " .. lo)
      m:free()
    end
  end)

  H.test("all-MiniLM-L6-v2 int8 with the sensitive linears in f32 (int8_skip): cosine >= 0.999 per sentence", function()
    for _, threshold in ipairs { 0, 6 } do
      local m = lacos.load(model_dir, { quant = "int8", threshold = threshold, int8_skip = MINILM_SKIP })
      local f32 = 0
      for _, l in ipairs(m:linears()) do if l.quant == "f32" then f32 = f32 + 1 end end
      H.eq(f32, 10, "ten of the 24 engine linears in f32")
      local cs = cosines(m:encode(fx.sentences), fx.encode)
      local lo = 1
      for _, c in ipairs(cs) do lo = math.min(lo, c) end
      print(("# int8 + int8_skip, threshold %g: lowest cosine %.5f, weights %.1f MB"):format(threshold, lo,
        m:weight_bytes() / 1e6))
      H.truthy(lo >= 0.999, "lowest cosine " .. lo)
      m:free()
    end
  end)
else
  H.skip_test("all-MiniLM-L6-v2 f32: hidden states and encode equal sentence-transformers within 1e-5", no_model)
  H.skip_test("all-MiniLM-L6-v2 int8: cosine to sentence-transformers per sentence", no_model)
  H.skip_test("all-MiniLM-L6-v2 int8 with the sensitive linears in f32 (int8_skip): cosine >= 0.999 per sentence", no_model)
end

-- STS: stsb test here; every English set of the fixture with LACOS_TEST_LONG.
local data = os.getenv("LACOS_TEST_DATA")
if have_model and data and H.exists(data .. "/README.md") then
  H.test("all-MiniLM-L6-v2: STS Spearman equals sentence-transformers' (f32 0.01, int8 0.5 points)", function()
    local sts = json.read(H.root .. "/tests/fixtures/minilm/sts.json")
    local long = os.getenv("LACOS_TEST_LONG") == "1"
    local quants = long and { "f32", "int8", "int8+skip" } or { "f32" }
    for _, q in ipairs(quants) do
      local m = lacos.load(model_dir, { quant = q == "f32" and "f32" or "int8",
                                        int8_skip = q == "int8+skip" and MINILM_SKIP or nil })
      -- every sentence encoded once over all the sets (SICK's splits are in
      -- sick all and full, stsb-multi-mt en is STSb): an embedding per
      -- distinct sentence, kept as its bytes
      local seen = {}
      local function encode(list)
        local fresh, queued = {}, {}
        for _, s in ipairs(list) do
          if not seen[s] and not queued[s] then queued[s] = true; fresh[#fresh + 1] = s end
        end
        if #fresh > 0 then
          local e = m:encode(fresh, { batch = 64 })
          local p, d = ffi.cast("float*", e.t.data), e:size(2)
          for i, s in ipairs(fresh) do seen[s] = ffi.string(p + (i - 1) * d, 4 * d) end
          e:free()
        end
        local d = m:config().hidden_size
        local out = T.empty({ #list, d }, "f32")
        local dst = ffi.cast("char*", out.t.data)
        for i, s in ipairs(list) do ffi.copy(dst + (i - 1) * 4 * d, seen[s], 4 * d) end
        return out
      end
      for _, e in ipairs(sts.sets) do
        if long or (e.dataset == "stsb" and e.split == "test") then
          local subset = e.subset ~= json.null and e.subset or nil
          local set = lacos.data.load(e.dataset, { split = e.split, subset = subset, data = data })
          local r = lacos.sts.evaluate_set(set, encode, { aggregation = "all" })
          local got = r.main or r.spearman
          print(("# %s %s/%s%s: %.3f (sentence-transformers %.3f)"):format(q, e.dataset, e.split,
            subset and ("/" .. subset) or "", got, e.all.spearman))
          H.near(got, e.all.spearman, q == "f32" and 0.01 or 0.5, q .. " " .. e.dataset .. "/" .. e.split)
          set:free()
        end
      end
      m:free()
    end
  end)
else
  H.skip_test("all-MiniLM-L6-v2: STS Spearman equals sentence-transformers' (f32 0.01, int8 0.5 points)",
              have_model and "the shared datasets are not there (LACOS_TEST_DATA)" or no_model)
end

-- PEFT both ways, and one step's gradients
if have_model and py then
  H.test("all-MiniLM-L6-v2 LoRA: PEFT loads lacos' adapter, lacos loads PEFT's, gradients agree", function()
    local m = lacos.load(model_dir, { quant = "f32" })
    local ids, mask = m:tokenize({ fx.sentences[1], fx.sentences[3], fx.sentences[12]:sub(1, 60) })
    local dir = H.tmp .. "/minilm-peft"
    os.execute("mkdir -p " .. dir)
    ids:save_npy(dir .. "/ids.npy")
    mask:save_npy(dir .. "/mask.npy")
    -- lacos → PEFT
    m:add_lora { r = 4, alpha = 8, targets = { "query", "key", "value", "dense" }, seed = 1 }
    for i, t in ipairs(m:trainable()) do if t.name:match("lora_B") then fill(t.param, 60 + i, 0.05) end end
    m:save_lora(dir .. "/ours")
    m:encode_ids(ids, mask, { pooling = "mean", force = true }):save_npy(dir .. "/ours/embeddings.npy")
    local rc, so, se = H.sh(("%s %s/tests/reference/check_peft_bert.py load %s %s/ours %s/ids.npy %s/mask.npy"):format(
      py, H.root, model_dir, dir, dir, dir))
    H.eq(rc, 0, "peft load (" .. se:sub(-400) .. ")")
    local d = tonumber(so:match("max_rel_diff (%S+)"))
    print("# PEFT on lacos' adapter: max relative difference " .. tostring(d))
    H.truthy(d and d < 1e-5, "peft vs lacos " .. tostring(d))
    -- one step's gradients of sum(pooled · W)
    local W = T.empty({ 3, 384 }, "f32")
    fill(W, 9, 1)
    W:save_npy(dir .. "/w.npy")
    m:zero_grad()
    local _, b = m:forward_train(ids, mask, "mean", 0)
    m:backward(b, W)
    rc, so, se = H.sh(("%s %s/tests/reference/check_peft_bert.py grad %s %s/ours %s/ids.npy %s/mask.npy %s/w.npy %s/grads"):format(
      py, H.root, model_dir, dir, dir, dir, dir, dir))
    H.eq(rc, 0, "peft grad (" .. se:sub(-400) .. ")")
    local worst, n = 0, 0
    for _, t in ipairs(m:trainable()) do
      local ref = T.load_npy(dir .. "/grads/" .. t.name .. ".npy")
      local p, q = ffi.cast("float*", t.grad.t.data), ffi.cast("float*", ref.t.data)
      local num, den = 0, 0
      for k = 0, ref:numel() - 1 do num = math.max(num, math.abs(p[k] - q[k])); den = math.max(den, math.abs(q[k])) end
      worst = math.max(worst, num / math.max(den, 1e-12))
      n = n + 1
    end
    print(("# one step's LoRA gradients vs peft + torch: %d tensors, worst max-relative difference %.2e"):format(n, worst))
    H.eq(n, 6 * 6 * 2)
    H.truthy(worst < 1e-4, "gradients " .. worst)
    -- PEFT → lacos
    rc, so, se = H.sh(("%s %s/tests/reference/check_peft_bert.py save %s %s/theirs %s/ids.npy %s/mask.npy"):format(
      py, H.root, model_dir, dir, dir, dir))
    H.eq(rc, 0, "peft save (" .. se:sub(-400) .. ")")
    local g = lacos.load(model_dir, { quant = "f32" })
    g:load_lora(dir .. "/theirs")
    H.same(g.lora.targets, { "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense" })
    local ours = g:encode_ids(ids, mask, { pooling = "mean", force = true })
    local theirs = T.load_npy(dir .. "/theirs/embeddings.npy")
    local a, bb = ffi.cast("float*", ours.t.data), ffi.cast("float*", theirs.t.data)
    local num, den = 0, 0
    for k = 0, theirs:numel() - 1 do num = math.max(num, math.abs(a[k] - bb[k])); den = math.max(den, math.abs(bb[k])) end
    print(("# lacos on PEFT's adapter: max relative difference %.2e"):format(num / den))
    H.truthy(num / den < 1e-5, "lacos vs peft " .. num / den)
  end)
else
  H.skip_test("all-MiniLM-L6-v2 LoRA: PEFT loads lacos' adapter, lacos loads PEFT's, gradients agree",
              have_model and "no reference virtualenv (VENV=/work/venv-ref or .venv-ref)" or no_model)
end

H.done()
