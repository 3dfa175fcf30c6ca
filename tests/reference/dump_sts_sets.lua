-- dump_sts_sets.lua: every English STS set of the datasets registry as lacos
-- reads it (lacos.data.load: the pairs, gold scores and subsets lacos sts
-- evaluates), written as JSON for tests/reference/make_minilm.py, so that
-- sentence-transformers scores exactly the pairs lacos scores.
--
--   lacos run tests/reference/dump_sts_sets.lua DATA_ROOT OUT.json
--
-- English: the sets whose languages are en only (every split), STS17's
-- en-en track and stsb-multi-mt's en subset.
local lacos = require "lacos"
local json = require "lacos.json"
local data = lacos.data

local root, out = arg[1], arg[2]
assert(root and out, "usage: dump_sts_sets.lua DATA_ROOT OUT.json")

local picks = {}
for _, s in ipairs(data.registry(root).sets) do
  if s.kind == "sts" then
    local splits = {}
    for name in pairs(s.splits) do splits[#splits + 1] = name end
    table.sort(splits)
    local langs = table.concat(s.languages, ",")
    for _, split in ipairs(splits) do
      if langs == "en" then picks[#picks + 1] = { id = s.id, split = split }
      elseif s.id == "sts17" then picks[#picks + 1] = { id = s.id, split = split, subset = "en-en" }
      elseif s.id == "stsb-multi-mt" then picks[#picks + 1] = { id = s.id, split = split, subset = "en" } end
    end
  end
end

local sets = {}
for _, p in ipairs(picks) do
  local set = data.load(p.id, { split = p.split, subset = p.subset, data = root })
  local gold = {}
  local g, n = set:score_array()
  for i = 0, n - 1 do gold[i + 1] = g[i] end
  local subsets = {}
  for _, u in ipairs(set:subsets()) do subsets[#subsets + 1] = { name = u.name, first = u.first, count = u.count } end
  sets[#sets + 1] = { id = p.id, split = p.split, subset = p.subset, n = set.n, digest = set:digest(), text = set.text,
                      subsets = subsets, s1 = set:sentences(1), s2 = set:sentences(2), gold = gold }
  set:free()
end
json.write(out, { lacos = lacos.version(), data = root, sets = sets }, { indent = false })
print(("%d sets written to %s"):format(#sets, out))
