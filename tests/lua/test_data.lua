-- test_data.lua: lacos.data on the shared datasets (../shared/datasets through
-- LACOS_TEST_DATA): the sanity counts of PITFALLS.md, one check per pitfall,
-- sha256 of a few files against the folder READMEs, the registry (built-in
-- and local), read_pairs on user files, NLI triplets and option validation.
local H = require "harness"
local lacos = require "lacos"
local data = lacos.data

local D = H.data
local have_data = D and H.exists(D .. "/sts/stsb/sts-test.csv")
local function need_data() if not have_data then H.skip("LACOS_TEST_DATA (../shared/datasets) is not there") end end
if have_data then data.set_root(D) end

local function count(id, opts) local s = data.load(id, opts) local n = s:size() s:free() return n end

H.test("sanity counts of PITFALLS.md", function()
  need_data()
  H.eq(count("sts12"), 3108, "STS12")
  H.eq(count("sts13"), 1500, "STS13")
  H.eq(count("sts14"), 3750, "STS14")
  H.eq(count("sts15"), 3000, "STS15")
  H.eq(count("sts16"), 1186, "STS16")
  H.eq(count("stsb", { split = "train" }), 5749, "STSb train")
  H.eq(count("stsb", { split = "dev" }), 1500, "STSb dev")
  H.eq(count("stsb", { split = "test" }), 1379, "STSb test")
  H.eq(count("sick", { split = "test" }), 4927, "SICK test")
  H.eq(count("snli-infersent", { split = "dev" }), 9842, "SNLI dev")
  H.eq(count("snli-infersent", { split = "test" }), 9824, "SNLI test")
  H.eq(count("kornli-xnli", { split = "dev" }), 2490, "KorNLI dev")
  H.eq(count("kornli-xnli", { split = "test" }), 5010, "KorNLI test")
  H.eq(count("msrp", { split = "train" }), 3576, "MSRP train")
  H.eq(count("msrp", { split = "val" }), 500, "MSRP val")
  H.eq(count("msrp", { split = "test" }), 1725, "MSRP test")
  for _, l in ipairs { "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh" } do
    H.eq(count("xnli-dev", { lang = l }), 2490, "XNLI dev " .. l)
  end
  local s = data.load("sts17")
  H.eq(#s:subsets(), 7)
  for _, u in ipairs(s:subsets()) do H.eq(u.count, 250, "STS17 " .. u.name) end
  s:free()
  -- the SentEval-tokenized variants count the same
  H.eq(count("senteval-sts12"), 3108); H.eq(count("senteval-sts13"), 1500); H.eq(count("senteval-sts14"), 3750)
  H.eq(count("senteval-sts15"), 3000); H.eq(count("senteval-sts16"), 1186)
  H.eq(count("senteval-stsb", { split = "test" }), 1379); H.eq(count("senteval-sick", { split = "test" }), 4927)
end)

H.test("every registry split present here reads to its stated count", function()
  need_data()
  for _, set in ipairs(data.registry().sets) do
    if data.status(set).state == "present" then
      for name, sp in pairs(set.splits) do
        H.eq(count(set.id, { split = name }), sp.pairs, set.id .. "/" .. name)
      end
    end
  end
end)

H.test("stsb-multi-mt = STSb per language, same scores row by row", function()
  need_data()
  for _, split in ipairs { "train", "dev", "test" } do
    local ref = data.load("stsb", { split = split }):scores()
    for _, l in ipairs { "de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh" } do
      local s = data.load("stsb-multi-mt", { split = split, lang = l })
      H.eq(s:size(), #ref, l .. " " .. split)
      local sc = s:scores()
      for i = 1, #ref do if sc[i] ~= ref[i] then error(("%s %s row %d: %g vs %g"):format(l, split, i, sc[i], ref[i])) end end
      s:free()
    end
  end
  -- the CSV quoting: a German sentence with a comma inside quotes
  local de = data.load("stsb-multi-mt", { split = "test", lang = "de" })
  local s1, s2, score = de:get(1)
  H.eq(s1, "Ein Mädchen frisiert ihr Haar."); H.eq(s2, "Ein Mädchen bürstet sich die Haare."); H.eq(score, 2.5)
  local found = false
  for _, a, b in de:iter() do if b == "Ein Mann singt, während er Gitarre spielt." then found = true end end
  H.truthy(found, "a quoted field with a comma inside")
  -- en = STSb with leading/trailing spaces stripped; our default trim makes them equal
  local en, raw = data.load("stsb-multi-mt", { split = "train", lang = "en" }), data.load("stsb", { split = "train" })
  local same = 0
  for i = 1, raw:size() do
    local a1, a2 = en:get(i)
    local b1, b2 = raw:get(i)
    if a1 == b1 and a2 == b2 then same = same + 1 end
  end
  H.truthy(same >= raw:size() - 5, ("en = trimmed STSb (%d of %d rows equal)"):format(same, raw:size()))
end)

H.test("pitfall: quotes in TAB files are data (STSb, MSRP, KorNLI)", function()
  need_data()
  local function with_quote(s)
    local n = 0
    for i = 1, s:size() do
      local a, b = s:get(i)
      if a:find('"', 1, true) or b:find('"', 1, true) then n = n + 1 end
    end
    return n
  end
  H.eq(with_quote(data.load("stsb", { split = "train" })), 252, "STSb train lines with a quote")
  H.eq(with_quote(data.load("stsb", { split = "dev" })), 110)
  H.eq(with_quote(data.load("stsb", { split = "test" })), 50)
  H.eq(with_quote(data.load("msrp", { split = "train" })), 757, "MSRP train lines with a quote")
end)

H.test("pitfall: CRLF and BOM (SICK test, MSRP)", function()
  need_data()
  local s = data.load("sick", { split = "test" })
  local labels = { 0, 0, 0 }
  for i = 1, s:size() do local l = s:label(i) labels[l + 1] = labels[l + 1] + 1 end
  H.same(labels, { 1414, 2793, 720 }, 0)   -- entailment, neutral, contradiction: no "\r" left on the label
  local m = data.load("msrp", { split = "train" })
  local pos = 0
  for i = 1, m:size() do if m:label(i) == 1 then pos = pos + 1 end end
  H.eq(pos, 2407, "MSRP train paraphrases (BOM-prefixed header skipped)")
  local a, b = m:get(m:size())
  H.truthy(not b:find("\r", 1, true), "no CR in the last field")
end)

H.test("pitfall: last line without newline, 9-field STSb lines, SICK 1-5, SICK full column order", function()
  need_data()
  local full = data.load("sick", { split = "full" })
  H.eq(full:size(), 9840)
  local lo, hi = 10, -10
  for i = 1, full:size() do local v = full:score(i) lo = math.min(lo, v) hi = math.max(hi, v) end
  H.eq(lo, 1); H.eq(hi, 5)
  H.eq(full:label_name(1), "neutral")   -- column 4 of full/SICK.txt
  local s, n9 = data.load("stsb", { split = "test" }), 0
  H.eq(s:size(), 1379)
  -- the 284 nine-field lines still give sentence 2 = field 7
  local f = io.open(D .. "/sts/stsb/sts-test.csv", "rb")
  local i = 0
  for line in f:lines() do
    i = i + 1
    local fields = {}
    for x in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = x end
    if #fields == 9 then
      n9 = n9 + 1
      local _, b = s:get(i)
      H.eq(b, (fields[7]:gsub("^%s+", ""):gsub("%s+$", "")))
    end
  end
  f:close()
  H.eq(n9, 284)
end)

H.test("pitfall: blank gold = unscored (STS15, STS16)", function()
  need_data()
  local s = data.load("sts15")
  local lines, skipped = 0, 0
  for _, u in ipairs(s:subsets()) do lines = lines + u.lines skipped = skipped + u.skipped end
  H.eq(lines, 8500); H.eq(s:size(), 3000); H.eq(skipped, 5500)
  s = data.load("sts16")
  lines = 0
  for _, u in ipairs(s:subsets()) do lines = lines + u.lines end
  H.eq(lines, 9183); H.eq(s:size(), 1186)
  -- the answer-answer pair on input line k carries gold line k
  local u = s:subsets()[1]
  H.eq(u.name, "answer-answer")
  local g = {}
  for line in io.lines(D .. "/sts/sts16/test/STS2016.gs.answer-answer.txt") do g[#g + 1] = line end
  for i = u.first, u.first + u.count - 1 do H.eq(s:score(i), tonumber(g[s:line(i)])) end
end)

H.test("pitfall: STS17 column order and the track6 500/250 rule", function()
  need_data()
  local function arabic(t) return t:find("[\216-\219]") ~= nil end   -- UTF-8 lead bytes of U+0600..U+06FF
  local s = data.load("sts17", { track = "ar-en" })
  H.eq(s:size(), 250)
  H.eq(s:subsets()[1].name, "en-ar"); H.eq(s:subsets()[1].mteb, "en-ar")
  local ar1, ar2 = 0, 0
  for i = 1, 250 do local a, b = s:get(i) if arabic(a) then ar1 = ar1 + 1 end if arabic(b) then ar2 = ar2 + 1 end end
  H.truthy(ar1 < 10 and ar2 > 240, ("track2: column 1 English, column 2 Arabic (%d, %d)"):format(ar1, ar2))
  H.eq(select(1, s:languages(1)), "en")
  -- the same track by its other names
  H.eq(data.load("sts17", { track = "track2" }):size(), 250)
  H.eq(data.load("sts17", { subset = "en-ar" }):get(1), s:get(1))
  local t6 = data.load("sts17", { track = "track6" })
  H.eq(t6:size(), 250)
  local lines = {}
  for line in io.lines(D .. "/sts/sts17/STS2017.eval.v1.1/STS.input.track6.tr-en.txt") do lines[#lines + 1] = line end
  H.eq(#lines, 500)
  H.eq(t6:line(250), 250)
  H.eq(select(1, t6:get(250)), (lines[250]:match("^([^\t]*)"):gsub("^%s+", ""):gsub("%s+$", "")))
  H.eq(t6:subsets()[1].lines, 250)
  local ascii = 0
  for i = 1, 250 do local a = t6:get(i) if not a:find("[\128-\255]") then ascii = ascii + 1 end end
  H.truthy(ascii > 200, "track6 column 1 is English")
  local l1, l2 = t6:languages(1)
  H.eq(l1, "en"); H.eq(l2, "tr")
  -- track4b gold is integers 2..5
  local b = data.load("sts17", { track = "track4b" })
  for i = 1, b:size() do local v = b:score(i) if v ~= math.floor(v) or v < 2 or v > 5 then error("track4b score " .. v) end end
  -- lang selects by column languages
  H.eq(data.load("sts17", { lang = "en-tr" }):size(), 250)
  H.eq(data.load("sts17", { lang = "ar" }):size(), 500)
end)

H.test("pitfall: glob traps (STS.gs.ALL, LICENSE, attribution zip) are not read", function()
  need_data()
  local s = data.load("sts12")
  H.eq(s:size(), 3108)
  for _, u in ipairs(s:subsets()) do H.truthy(not u.source:find("ALL", 1, true), "STS.gs.ALL.txt is not an input") end
  local set = data.find("sts15")
  for _, sub in ipairs(set.splits.test.subsets) do
    H.truthy(not sub.input:find("LICENSE") and not sub.input:find("zip"), "sts15 inputs are the five .txt files")
  end
  H.eq(#data.load("sts13"):subsets(), 3, "STS13 without SMT")
end)

H.test("pitfall: score styles, SNLI trailing spaces, trim = false", function()
  need_data()
  local s = data.load("sts12")
  local u = s:subsets()[1]
  H.eq(u.name, "MSRpar")
  -- "4.000" style and "0.6" style both parse to the values the gold file prints
  local g = {}
  for line in io.lines(D .. "/sts/sts12/test/STS.gs.MSRpar.txt") do g[#g + 1] = tonumber(line) end
  for i = 1, u.count do H.eq(s:score(i), g[i]) end
  local n = data.load("snli-infersent", { split = "dev" })
  local a, b = n:get(1)
  H.eq(a, "Two women are embracing while holding to go packages .")
  H.eq(n:label_name(1), "neutral")
  local raw = data.load("snli-infersent", { split = "dev", trim = false })
  H.eq((raw:get(1)), "Two women are embracing while holding to go packages . ")
end)

H.test("XNLI dev is parallel: identical label sequence in all 15 languages and in KorNLI dev", function()
  need_data()
  local ref = data.load("xnli-dev", { lang = "en" }):labels()
  local c = { 0, 0, 0 }
  for _, l in ipairs(ref) do c[l + 1] = c[l + 1] + 1 end
  H.same(c, { 830, 830, 830 }, 0)
  for _, l in ipairs { "de", "zh", "sw" } do H.same(data.load("xnli-dev", { lang = l }):labels(), ref, 0, l) end
  H.same(data.load("kornli-xnli"):labels(), ref, 0, "ko")
end)

H.test("sha256 of a few files match the folder READMEs", function()
  need_data()
  local want = {
    ["sts/stsb/sts-test.csv"] = "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a",
    ["sts/sick/SICK_test_annotated.txt"] = "2b8aa806658d6fc23c6824c83776c2d4fee7556000817b5ec0f982861413b7d0",
    ["sts/sts17/STS2017.eval.v1.1/STS.input.track6.tr-en.txt"] = "3054157d3d25b0a15d49b474fd21138efe3e04a70c169e21e3045553d798069f",
    ["paraphrase/msrp/msr-para-train.tsv"] = "446b9a5fa4e8d526b99f1d635f036f89063749783f5d3464ee8c1879724d406d",
    ["nli/kornli-xnli/xnli.dev.ko.tsv"] = "821fb1c1c2e538ac2724a6132da36ffa379eb9a542ceb89243b3cf711377382c",
  }
  local by = {}
  for _, set in ipairs(data.registry().sets) do for _, f in ipairs(set.files) do by[f.path] = f end end
  for path, sha in pairs(want) do
    H.eq(data.sha256_file(D .. "/" .. path), sha, path)
    H.eq(by[path].sha256, sha, "registry entry for " .. path)
  end
  -- every present file of the registry matches (what `lacos data list --verify` does)
  for _, set in ipairs(data.registry().sets) do
    local st = data.status(set, { verify = true })
    if st.state ~= "missing" then H.eq(st.state, "present", set.id) H.eq(#st.bad_hash, 0, set.id) end
  end
end)

H.test("registry: built-in sets, absent training sets, local registry, validation", function()
  local reg = data.registry(H.tmp .. "/empty-root")
  for _, id in ipairs { "stsb", "sick", "sts12", "sts13", "sts14", "sts15", "sts16", "sts17", "stsb-multi-mt",
                        "senteval-sts12", "senteval-stsb", "senteval-sick", "snli-infersent", "xnli-dev", "kornli-xnli",
                        "msrp", "tatoeba", "allnli", "snli-1.0", "multinli-1.0", "simcse-nli" } do
    H.truthy(reg.by_id[id], "registry has " .. id)
  end
  for _, set in ipairs(reg.sets) do
    H.truthy(set.licence and set.homepage and #set.download > 0, set.id .. " has licence, homepage and a download")
    for _, f in ipairs(set.files) do H.truthy(not f.path:find("^/") and not f.path:find("%.%."), "relative path " .. f.path) end
  end
  H.eq(data.status("allnli", { data = H.tmp .. "/empty-root" }).state, "missing")
  -- a local registry adds a set and can override a built-in one
  local root = H.tmp .. "/local-root"
  os.execute("mkdir -p " .. root)
  H.write(root .. "/mine.tsv", "Ein Hund.\tA dog.\t4.5\nEine Katze.\tA car.\t0.5\n")
  H.write(root .. "/registry.local.json", [[{"sets": [{"id": "my-sts", "kind": "sts", "languages": ["de", "en"],
    "licence": "mine", "format": {"reader": "tsv", "columns": {"s1": 1, "s2": 2, "score": 3}, "min_fields": 3},
    "default_split": "test", "splits": {"test": {"pairs": 2, "subsets": [{"name": "de-en", "lang1": "de", "lang2": "en", "file": "mine.tsv"}]}},
    "files": [{"path": "mine.tsv"}]}]}]])
  local r2 = data.registry(root)
  H.eq(r2.by_id["my-sts"].origin, "local")
  local s = data.load("my-sts", { data = root })
  H.eq(s:size(), 2)
  H.eq(select(2, s:languages(2)), "en")
  H.eq(data.status("my-sts", { data = root }).state, "present")
  H.write(root .. "/registry.local.json", [[{"sets": [{"id": "bad one", "kind": "sts"}]}]])
  H.raises("registry.local.json: every set needs an id", data.registry, root)
  H.write(root .. "/registry.local.json", [[{"sets": [{"id": "x", "kind": "video", "format": {"reader": "tsv"}}]}]])
  H.raises("set 'x': kind must be", data.registry, root)
  H.write(root .. "/registry.local.json", [[{"sets": [{"id": "x", "kind": "sts", "format": {"reader": "gold"}, "splits": {"test": {"subsets": [{"file": "a"}]}}}]}]])
  H.raises("needs input and gold files", data.registry, root)
  H.write(root .. "/registry.local.json", "{not json")
  H.raises("registry.local.json:1: invalid JSON", data.registry, root)
  os.remove(root .. "/registry.local.json")
end)

H.test("load: option validation and missing files", function()
  H.raises("unknown dataset 'nope'", data.load, "nope")
  H.raises("unknown option 'splt'", data.load, "stsb", { splt = "test" })
  local empty = H.tmp .. "/empty-root"
  H.raises("file(s) missing under " .. empty, data.load, "stsb", { data = empty })
  H.raises("lacos data pull stsb", data.load, "stsb", { data = empty })
  need_data()
  H.raises("stsb: no split 'validation' (splits: dev, test, train)", data.load, "stsb", { split = "validation" })
  H.raises("no subset 'track9'", data.load, "sts17", { track = "track9" })
  H.raises("no subset matches lang 'xx'", data.load, "xnli-dev", { lang = "xx" })
  local s = data.load("stsb")
  H.raises("pair index 0 out of range 1..1379", function() return s:get(0) end)
  H.eq(tostring(s), "lacos pair set stsb/test: 1379 pairs in 1 subsets")
  s:free()
  H.raises("pair set was freed", function() return s:get(1) end)
end)

H.test("read_pairs: STSb-format and generic files from users, with and without header", function()
  local dir = H.tmp
  local stsb = "main-news\theadlines\t2015\t0001\t3.800\tUn hombre toca la guitarra.\tUn hombre canta.\n" ..
               "main-news\theadlines\t2015\t0002\t0.400\tEl gato duerme.\tLlueve mucho.\n"
  H.write(dir .. "/es.csv", stsb)
  H.write(dir .. "/es-h.csv", "genre\tfile\tyear\tsid\tscore\tsentence1\tsentence2\n" .. stsb)
  local s = data.read_pairs(dir .. "/es.csv", { format = "stsb", lang = "es" })
  H.eq(s:size(), 2); H.eq(s:score(1), 3.8); H.eq(select(1, s:languages(1)), "es")
  H.eq(data.read_pairs(dir .. "/es-h.csv", { format = "stsb", header = true }):size(), 2)
  H.eq(data.read_pairs(dir .. "/es-h.csv", { format = "stsb", header = "auto" }):size(), 2)
  H.eq(data.read_pairs(dir .. "/es.csv", { format = "stsb", header = "auto" }):size(), 2)
  H.raises("es-h.csv:1: field 5: 'score' is not a number", data.read_pairs, dir .. "/es-h.csv", { format = "stsb" })
  H.write(dir .. "/g.tsv", "a cat\ta dog\t2.5\r\nsun\tmoon\t1\n")
  local g = data.read_pairs(dir .. "/g.tsv")
  H.eq(g:size(), 2); H.eq(g:score(2), 1); H.eq(g.format, "generic")
  H.write(dir .. "/g-bad.tsv", "a cat\ta dog\t2.5\nonly two\tfields\n")
  H.raises("g-bad.tsv:2: expected at least 3 TAB-separated fields, found 2", data.read_pairs, dir .. "/g-bad.tsv")
  -- named columns through a header, any column order
  H.write(dir .. "/named.tsv", "score\tleft\tright\n4\tx\ty\n")
  local n = data.read_pairs(dir .. "/named.tsv", { columns = { s1 = "left", s2 = "right", score = "score" }, header = true })
  H.eq(n:get(1), "x"); H.eq(n:score(1), 4)
  H.raises("the header has no column 'sentence1'", data.read_pairs, dir .. "/named.tsv",
           { columns = { s1 = "sentence1", s2 = "right" }, header = true })
  H.raises("unknown format 'xml'", data.read_pairs, dir .. "/g.tsv", { format = "xml" })
  H.raises("unknown option 'heder'", data.read_pairs, dir .. "/g.tsv", { heder = true })
  H.raises("unknown column key 'sentence'", data.read_pairs, dir .. "/g.tsv", { columns = { sentence = 1 } })
  H.raises("header must be true, false", data.read_pairs, dir .. "/g.tsv", { header = "yes" })
  H.raises("format gold needs gold = PATH", data.read_pairs, dir .. "/g.tsv", { format = "gold" })
  -- the other published layouts by path
  H.write(dir .. "/snli.jsonl", '{"gold_label": "entailment", "sentence1": "A.", "sentence2": "B."}\n' ..
                                '{"gold_label": "-", "sentence1": "C.", "sentence2": "D."}\n')
  H.eq(data.read_pairs(dir .. "/snli.jsonl", { format = "jsonl" }):size(), 1)
  H.write(dir .. "/AllNLI.tsv", "split\tdataset\tfilename\tsentence1\tsentence2\tlabel\n" ..
                                "train\tSNLI\tf\tA \"quoted\" man.\tA person.\tentailment\n" ..
                                "dev\tMNLI\tf\tX.\tY.\tneutral\n")
  local a = data.read_pairs(dir .. "/AllNLI.tsv", { format = "allnli", filter = "train", columns = { s1 = "sentence1", s2 = "sentence2", label = "label", split = "split" } })
  H.eq(a:size(), 1); H.eq(a:get(1), 'A "quoted" man.'); H.eq(a:label_name(1), "entailment")
  H.write(dir .. "/simcse.csv", 'sent0,sent1,hard_neg\n"A man, tall.",A person.,Nobody.\n')
  local t = data.read_pairs(dir .. "/simcse.csv", { format = "simcse" })
  H.eq(select(3, t:triplet(1)), "Nobody."); H.truthy(t:has_negatives())
end)

H.test("nli_triplets: SimCSE-style and SBERT-style triplets, entailment pairs", function()
  need_data()
  local dev = data.load("snli-infersent", { split = "dev" })
  H.eq(data.nli_triplets(dev):size(), 2943, "premises with an entailment and a contradiction (README)")
  H.eq(data.nli_triplets("snli-infersent", { split = "test" }):size(), 2921)
  H.eq(data.nli_triplets("xnli-dev", { lang = "de" }):size(), 830)
  local e = data.nli_triplets(dev, { mode = "entailment" })
  H.eq(e:size(), 3329); H.truthy(not e:has_negatives())
  local sb = data.nli_triplets(dev, { mode = "sbert", seed = 1 })
  H.truthy(sb:size() >= 2 * 2943 and sb:size() % 2 == 0, "sbert mode: two triplets per qualifying sentence")
  local t = data.nli_triplets(dev)
  local a, p, n = t:triplet(1)
  H.truthy(a and p and n and a ~= p and p ~= n)
  -- the rows layout lacos.pairs uses
  local rows = t:rows()
  H.eq(#rows, 2943); H.eq(rows[1][1], a); H.eq(rows[1][3], n)
  H.raises("mode must be premise, sbert or entailment", data.nli_triplets, dev, { mode = "random" })
  H.raises("seed must be a non-negative whole number", data.nli_triplets, dev, { seed = -2 })
  H.raises("no NLI labels", data.nli_triplets, data.load("stsb"))
end)

H.test("reading all the shared data is fast", function()
  need_data()
  local t0 = os.clock()
  for _, set in ipairs(data.registry().sets) do
    if data.status(set).state == "present" then
      for name in pairs(set.splits) do data.load(set.id, { split = name }):free() end
    end
  end
  local dt = os.clock() - t0
  print(("# every present split of every set read in %.2f s"):format(dt))
  H.truthy(dt < 10, "under 10 s")
end)

-- Exit through lua_close so that finalizers free the engine memory the pair
-- sets hold (and cjson its buffer): LeakSanitizer under make SAN=1 cannot see
-- pointers kept only in the LuaJIT heap.
local exit = os.exit
os.exit = function(code) exit(code, true) end
H.done()
