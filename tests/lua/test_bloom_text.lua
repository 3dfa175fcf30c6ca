-- test_bloom_text.lua: the user's path, text → tokenizer → ids → hidden
-- states → pooled embeddings, against the tokenizers library and
-- transformers' BloomModel (tests/fixtures/bloom, written by
-- tests/reference/make_bloom.py). lacos.bloom.load(dir) picks up the
-- checkpoint's tokenizer.json; the fixture's sentences (Latin with accents,
-- Cyrillic, CJK, Arabic, emoji; unequal lengths) padded on the right and on
-- the left give exactly the stored ids and mask; every hidden state is within
-- 1e-4 relative of transformers' (max abs difference over the real tokens /
-- max abs value); model:encode, which sorts and pads the sentences its own
-- way, gives the pooled embeddings of every mode within 1e-4; int8 at
-- thresholds 0 and 6 stays at cosine >= 0.999 to them. Checkpoints: 4 heads,
-- 12 heads with the "transformer." prefix, sharded, bf16, f16.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local T = lacos.tensor
local ffi = require "ffi"

local fix = H.root .. "/tests/fixtures/bloom/"
local manifest = json.read(fix .. "manifest.json")
local sentences = manifest.sentences
local poolings = { "mean", "weightedmean", "lasttoken" }

-- A float pointer to t's data, and the tensor that holds it (keep it alive).
local function f32(t)
  local c = t:contiguous()
  return ffi.cast("const float*", c:data_ptr()), c
end

-- max |a-b| / max |b| over the rows (or, for (L,B,T,C) states, the positions
-- whose mask is 1).
local function rel(a, b, mask)
  H.same(a:size(), b:size(), 0, "shape")
  local x, xa = f32(a)
  local y, yb = f32(b)
  local C = a:size(a:dim())
  local mc = mask and mask:contiguous()
  local m = mc and ffi.cast("const int32_t*", mc:data_ptr())
  local rows = a:numel() / C
  local bt = mask and mask:numel()
  local md, mx = 0, 0
  for r = 0, rows - 1 do
    if not m or m[r % bt] ~= 0 then
      for c = 0, C - 1 do
        local k = r * C + c
        md = math.max(md, math.abs(x[k] - y[k]))
        mx = math.max(mx, math.abs(y[k]))
      end
    end
  end
  local _ = { xa, yb, mc }   -- alive until here
  return md / mx
end

local function min_cosine(a, b)
  local x, xa = f32(a)
  local y, yb = f32(b)
  local n, d = a:size(1), a:size(2)
  local worst = 1
  for i = 0, n - 1 do
    local s, nx, ny = 0, 0, 0
    for k = i * d, i * d + d - 1 do s = s + x[k] * y[k]; nx = nx + x[k] * x[k]; ny = ny + y[k] * y[k] end
    worst = math.min(worst, s / math.sqrt(nx * ny))
  end
  local _ = { xa, yb }
  return worst
end

H.test("the fixture's batch: several scripts, every row a different length", function()
  H.truthy(#sentences >= 6, "sentences")
  local all = table.concat(sentences)
  for _, piece in ipairs { "é", "Ж", "猫", "م", "👍" } do H.truthy(all:find(piece, 1, true), "a sentence with " .. piece) end
  local seen = {}
  for _, n in ipairs(manifest.tokens_per_sentence) do
    H.truthy(not seen[n], "lengths differ")
    seen[n] = true
  end
end)

for _, case in ipairs(manifest.cases) do
  if case.tokenizer then
    local dir, ref = fix .. case.dir, fix .. case.reference .. "/"
    local label = case.dir .. " (" .. case.dtype .. ", " .. case.n_head .. " heads)"

    H.test(label .. ": ids, hidden states and embeddings from text equal transformers'", function()
      local m = lacos.bloom.load(dir, { quant = "f32" })
      H.truthy(m.tokenizer, "tokenizer.json loaded with the checkpoint")
      H.eq(m.tokenizer:vocab_size(), m:config().vocab_size, "the tokenizer's vocabulary is the model's")
      local worst_h, worst_p = 0, 0
      for _, side in ipairs(case.cases) do
        local ids, mask = m:tokenize(sentences, { padding_side = side })
        local want_ids, want_mask = T.load_npy(ref .. "ids_" .. side .. ".npy"), T.load_npy(ref .. "mask_" .. side .. ".npy")
        H.same(ids:table(), want_ids:table(), 0, side .. "-padded ids")
        H.same(mask:table(), want_mask:table(), 0, side .. "-padded mask")
        local hidden = m:forward(ids, mask, { all_layers = true })
        local r = rel(hidden, T.load_npy(ref .. "hidden_" .. side .. ".npy"), want_mask)
        print(("# %s %s-padded: every hidden state within %.2e relative"):format(case.dir, side, r))
        H.truthy(r < 1e-4, side .. "-padded hidden states within 1e-4, got " .. r)
        worst_h = math.max(worst_h, r)
        for _, p in ipairs(poolings) do
          local want = T.load_npy(ref .. "pooled_" .. p .. "_" .. side .. ".npy")
          local ri = rel(m:encode_ids(ids, mask, { pooling = p }), want)
          local re = rel(m:encode(sentences, { pooling = p }), want)
          H.truthy(ri < 1e-4 and re < 1e-4, ("%s %s-padded: encode_ids %.2e, encode %.2e"):format(p, side, ri, re))
          worst_p = math.max(worst_p, ri, re)
        end
      end
      print(("# %s: pooled embeddings (mean, weightedmean, lasttoken) within %.2e relative"):format(case.dir, worst_p))
      m:free()
    end)

    H.test(label .. ": int8 embeddings from text at thresholds 0 and 6", function()
      for _, th in ipairs { 0, 6 } do
        local q = lacos.bloom.load(dir, { quant = "int8", threshold = th })
        local worst = 1
        for _, p in ipairs(poolings) do
          worst = math.min(worst, min_cosine(q:encode(sentences, { pooling = p }), T.load_npy(ref .. "pooled_" .. p .. "_right.npy")))
        end
        print(("# %s int8 threshold %d: min cosine to transformers' f32 %.7f (1 - cosine %.1e)"):format(case.dir, th, worst, 1 - worst))
        H.truthy(worst >= 0.999, "cosine >= 0.999, got " .. worst)
        q:free()
      end
    end)
  end
end

collectgarbage()
collectgarbage()
H.done()
