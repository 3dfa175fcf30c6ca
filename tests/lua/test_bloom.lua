-- test_bloom.lua: lacos.bloom from Lua on a tiny random checkpoint:
-- load(dir, {quant, threshold}) against f32, encode's internal sorting and
-- batching (the same embeddings whatever the batch size and input order),
-- and the LLM.int8 outlier counts (model:outliers()) on a checkpoint with
-- planted outlier features (tests/lua/outliers_fixture.lua).
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor

local dir = H.tmp .. "/bloom-lua"
local tok = H.root .. "/datasets/tokenizers/bloomlike-32k.json"
local rc, _, err = H.sh(("mkdir -p %s && %s model random tiny-xs --out %s/m --seed 1 --tokenizer %s"):format(dir, H.lacos, dir, tok))
if rc ~= 0 then
  print("not ok - a tiny-xs checkpoint to test with")
  print((err:gsub("[^\n]+", "#   %0")))
  H.done()
end
local plain = dir .. "/m"
local planted = require("outliers_fixture").plant(plain, dir .. "/planted")

local sentences = {
  "A cat sits on the mat.", "Un chat est assis sur le tapis.", "x", "",
  "The weather is nice today, isn't it?", "Ein Hund läuft im Park und spielt mit einem Ball.",
  "short one", "A cat sits on the mat.",
  "A much longer sentence with many more tokens than the others in this list, so that batches need padding.",
}

-- The smallest cosine between row i of a and row i of b; the empty
-- sentence (no tokens, a zero vector) must be zero in both instead.
local function worst_cosine(a, b)
  local c = a:cosine(b)
  local m = 1
  for i = 1, a:size(1) do
    if sentences[i] == "" then
      H.eq(a[i]:abs():max() + b[i]:abs():max(), 0, "the empty sentence")
    else
      m = math.min(m, c[i][i])
    end
  end
  return m
end

H.test("load(dir, {quant = 'int8', threshold = 6}) embeds like f32", function()
  for _, d in ipairs { plain, planted } do
    local f32 = lacos.bloom.load(d, { quant = "f32" })
    H.eq(f32.quant, "f32")
    local ref = f32:encode(sentences)
    H.same(ref.shape, { #sentences, 64 })
    local cos = {}
    for _, th in ipairs { 0, 6 } do
      local m = lacos.bloom.load(d, { quant = "int8", threshold = th })
      H.eq(m.quant, "int8"); H.eq(m.threshold, th)
      H.truthy(m:weight_bytes() < f32:weight_bytes(), "int8 weights are smaller")
      cos[th] = worst_cosine(m:encode(sentences), ref)
      H.truthy(cos[th] >= 0.999, ("%s threshold %g: cosine to f32 %.7f"):format(d, th, cos[th]))
    end
    print(("#   %s: int8 vs f32, smallest cosine %.7f (threshold 0), %.7f (threshold 6)"):format(
      d == plain and "random" or "planted outliers", cos[0], cos[6]))
    if d == planted then
      H.truthy(cos[6] > cos[0], "the outlier columns in f32 bring int8 closer to f32")
      H.truthy(1 - cos[6] < (1 - cos[0]) / 10, "at least 10x closer")
    end
  end
  H.raises("lacos.bloom.load: quant must be 'f32' or 'int8', got 'int4'", lacos.bloom.load, plain, { quant = "int4" })
  H.raises("lacos.bloom.load: threshold must be a number >= 0", lacos.bloom.load, plain, { threshold = -1 })
  H.raises("unknown option 'treshold'", lacos.bloom.load, plain, { treshold = 6 })
end)

H.test("encode: the same embeddings whatever the batch size and the order of the sentences", function()
  local reversed, shuffled = {}, {}
  for i = #sentences, 1, -1 do reversed[#reversed + 1] = sentences[i] end
  local perm = { 5, 9, 1, 7, 3, 8, 2, 6, 4 }
  for i, j in ipairs(perm) do shuffled[i] = sentences[j] end
  for _, opts in ipairs { { quant = "int8", threshold = 0 }, { quant = "int8", threshold = 6 }, { quant = "f32" } } do
    local m = lacos.bloom.load(planted, opts)
    for _, pooling in ipairs { "weightedmean", "mean", "lasttoken" } do
      local ref = m:encode(sentences, { batch = 32, pooling = pooling })
      local scale = ref:abs():max()
      local worst = 0
      for _, b in ipairs { 1, 2, 3, 4, 8 } do
        worst = math.max(worst, m:encode(sentences, { batch = b, pooling = pooling }):maxdiff(ref))
      end
      for _, case in ipairs { { reversed, function(i) return #sentences - i + 1 end }, { shuffled, function(i) return perm[i] end } } do
        local e = m:encode(case[1], { batch = 3, pooling = pooling })
        for i = 1, #sentences do worst = math.max(worst, e[i]:maxdiff(ref[case[2](i)])) end
      end
      -- the repeated sentence gets the same row wherever it is
      worst = math.max(worst, ref[1]:maxdiff(ref[8]))
      print(("#   %s threshold %s, %s: largest difference %.3g (largest value %.3g)"):format(
        opts.quant, tostring(opts.threshold or 0), pooling, worst, scale))
      H.truthy(worst <= 1e-5 * scale, ("%s %s: embeddings differ by %g"):format(opts.quant, pooling, worst))
    end
  end
  local m = lacos.bloom.load(plain)
  H.same(m:encode({}).shape, { 0, 64 })
  H.same(m:encode("one sentence").shape, { 1, 64 })
  H.raises("encode: option 'batch' must be", function() return m:encode(sentences, { batch = "x" }) end)
end)

H.test("model:outliers(): planted large activations are counted, threshold 0 counts none", function()
  local function counts(m) return m:outliers() end
  local m6 = lacos.bloom.load(planted, { quant = "int8", threshold = 6 })
  m6:encode(sentences, { batch = 4 })
  local o = counts(m6)
  H.eq(#o, 2, "one table per layer")
  for _, name in ipairs(lacos.bloom.linear_names) do
    H.truthy(o[1][name] > 0, "layer 1 " .. name .. ": " .. tostring(o[1][name]))
    H.eq(o[2][name], 0, "layer 2 " .. name .. " (nothing planted)")
  end
  print(("#   planted, threshold 6: layer 1 qkv %d, dense %d, h_to_4h %d, 4h_to_h %d; layer 2 all 0"):format(
    o[1].query_key_value, o[1].dense, o[1].dense_h_to_4h, o[1].dense_4h_to_h))
  -- one planted feature per linear, and nothing else of this model comes near 6
  for _, name in ipairs(lacos.bloom.linear_names) do H.eq(o[1][name], 1, name) end
  o[1].dense = 99
  H.eq(m6:outliers()[1].dense, 1, "a copy: the caller cannot change the record")

  -- forward reports its own pass
  local ids, mask = m6:tokenize({ "A cat sits on the mat." })
  m6:forward(ids, mask)
  H.eq(m6:outliers()[1].query_key_value, 1)

  -- A higher threshold that only some sentences reach: encode reports the
  -- largest count of its batches, and one batch over all of them counts
  -- every column any sentence reached (at least as many).
  local m40 = lacos.bloom.load(planted, { quant = "int8", threshold = 40 })
  local largest, varies = {}, {}
  for i, s in ipairs(sentences) do
    m40:encode({ s })
    for _, name in ipairs(lacos.bloom.linear_names) do
      local v = m40:outliers()[1][name]
      if i > 1 and v ~= largest[name] then varies[name] = true end
      largest[name] = math.max(largest[name] or 0, v)
    end
  end
  H.truthy(varies.query_key_value, "threshold 40 is reached by some sentences only")
  m40:encode(sentences, { batch = 1 })
  local per_batch = m40:outliers()[1]
  m40:encode(sentences, { batch = 32 })
  local one_batch = m40:outliers()[1]
  for _, name in ipairs(lacos.bloom.linear_names) do
    H.eq(per_batch[name], largest[name], name .. ": the largest over batches of one")
    H.truthy(one_batch[name] >= largest[name], name .. ": one batch of all")
  end

  local m0 = lacos.bloom.load(planted, { quant = "int8", threshold = 0 })
  m0:encode(sentences)
  for l = 1, 2 do
    for _, name in ipairs(lacos.bloom.linear_names) do H.eq(m0:outliers()[l][name], 0, "threshold 0") end
  end
  local f = lacos.bloom.load(planted, { quant = "f32", threshold = 6 })
  f:encode(sentences)
  for _, name in ipairs(lacos.bloom.linear_names) do H.eq(f:outliers()[1][name], 0, "an f32 model has none") end
  local p = lacos.bloom.load(plain, { quant = "int8", threshold = 6 })
  p:encode(sentences)
  for l = 1, 2 do
    for _, name in ipairs(lacos.bloom.linear_names) do H.eq(p:outliers()[l][name], 0, "the random model, nothing planted") end
  end
end)

H.done()
