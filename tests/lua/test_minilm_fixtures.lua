-- The reference values for lacos' BERT model (tests/fixtures/minilm, written
-- by tests/reference/make_minilm.py from sentence-transformers) still
-- describe what lacos reads: each STS expectation names a set, split and
-- subset that lacos.data loads with the same number of pairs, the same
-- subsets and the same digest (the pairs sentence-transformers scored were
-- dumped by lacos itself); the sentences' fixture is internally consistent
-- (one row of ids per sentence, normalised encode embeddings of the model's
-- width). Skipped without the shared datasets.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"

local dir = H.root .. "/tests/fixtures/minilm/"
local data = os.getenv("LACOS_TEST_DATA")

H.test("sentences.json: ids, masks and embeddings fit together", function()
  local fx = json.read(dir .. "sentences.json")
  H.eq(#fx.sentences, 12)
  H.eq(#fx.input_ids, 12)
  H.eq(#fx.encode, 12)
  for i = 1, 12 do
    H.eq(#fx.input_ids[i], #fx.input_ids[1], "padded to one length")
    local real = 0
    for _, m in ipairs(fx.attention_mask[i]) do real = real + m end
    H.eq(real, fx.last_hidden[i].n_tokens, "sentence " .. i)
    H.eq(#fx.encode[i], fx.hidden_size)
    local s2 = 0
    for _, x in ipairs(fx.encode[i]) do s2 = s2 + x * x end
    H.near(math.sqrt(s2), 1, 1e-5, "encode gives normalised embeddings")
  end
  H.eq(fx.max_seq_length, 256)
end)

if data and io.open(data .. "/README.md", "rb") then
  H.test("sts.json: every expectation is a set lacos reads, with the same pairs", function()
    local fx = json.read(dir .. "sts.json")
    H.eq(#fx.sets, 28)
    for _, e in ipairs(fx.sets) do
      local subset = e.subset ~= json.null and e.subset or nil
      local set = lacos.data.load(e.dataset, { split = e.split, subset = subset, data = data })
      local what = ("%s/%s%s"):format(e.dataset, e.split, subset and ("/" .. subset) or "")
      H.eq(set.n, e.n, what .. " pairs")
      H.eq(set:digest(), e.digest, what .. " digest")
      local subs = set:subsets()
      H.eq(#subs, #e.subsets, what .. " subsets")
      for k, u in ipairs(subs) do
        H.eq(u.name, e.subsets[k].name, what)
        H.eq(u.count, e.subsets[k].n, what .. " " .. u.name)
      end
      H.truthy(e.all.spearman > 50 and e.all.spearman < 100, what .. ": a Spearman x100")
      set:free()
    end
  end)
else
  H.skip_test("sts.json: every expectation is a set lacos reads, with the same pairs",
              "the shared datasets are not there (LACOS_TEST_DATA)")
end

H.done()
