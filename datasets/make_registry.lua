-- make_registry.lua: writes datasets/registry.json, the catalogue of the
-- datasets lacos knows (what each set is, its files with size and sha256,
-- how to read it, where to download it).
--
--   lacos run datasets/make_registry.lua ../shared/datasets > datasets/registry.json
--
-- Sizes and sha256 of the sets that the shared data folder holds come from
-- the per-folder README.md tables there; everything else (readers, column
-- maps, download addresses, licences) is written out below. Download
-- addresses of the present sets are the pinned commits those READMEs name as
-- the source, so the bytes fetched are the bytes hashed. The sets that are
-- not in the shared folder (the NLI training sets) carry the addresses their
-- publishers give; no sha256 is published for them, so theirs is null and
-- `lacos data pull` asks for --sha256 or --no-verify.
--
-- Schema of a set (registry.json and <data root>/registry.local.json):
--   id, title, kind (sts | nli | pairs | bitext), languages, licence, homepage, notes
--   format = { reader = tsv | csv | gold | lines | jsonl, header = lines to skip,
--              columns = { s1, s2[, s3][, score][, label][, split] } (1-based numbers, or
--              header names when header = 1), min_fields, max_fields, score_range = {lo, hi},
--              labels = nli | binary | int, skip_unlabeled, keys = { s1, s2, label } (jsonl) }
--   default_split, splits = { NAME = { pairs = verified count | pairs_reported = upstream count,
--              format = (optional override), subsets = { { name, lang1, lang2, aliases, mteb,
--              file | input + gold | files = {s1, s2[, labels]}, filter = split value,
--              truncate_input } } } }
--   files = { { path (relative to the data root), bytes, sha256 (null when unknown) } }
--   download = { { url, path } (one file, checked against files) |
--                { url, archive = "tar.gz" | "zip", members = { [archive path] = path }, sha256 } |
--                { url, archive = "gz", path } }
local json = require "lacos.json"
local shared = assert(arg[1], "usage: make_registry.lua SHARED_DATASETS_DIR")

-- ---------------------------------------------------------------- README tables

local function readme_files(folder)
  local f = assert(io.open(shared .. "/" .. folder .. "/README.md"))
  local files = {}
  for line in f:lines() do
    local name, bytes, lines, rows, sha = line:match("^| ([^|]-) | (%d+) | (%d+) | (%d*) | `(%x+)` |$")
    if name then
      files[#files + 1] = { path = folder .. "/" .. name, bytes = tonumber(bytes), lines = tonumber(lines),
                            sha256 = sha }
    end
  end
  f:close()
  assert(#files > 0, "no file table in " .. folder .. "/README.md")
  return files
end

local function file_index(files)
  local t = {}
  for _, f in ipairs(files) do t[f.path] = f end
  return t
end

-- keeps only the files whose path matches one of the patterns
local function select_files(files, patterns)
  local out = {}
  for _, f in ipairs(files) do
    for _, p in ipairs(patterns) do
      if f.path:match(p) then out[#out + 1] = f break end
    end
  end
  return out
end

local function gh(repo, commit, path)
  return ("https://raw.githubusercontent.com/%s/%s/%s"):format(repo, commit, path)
end

-- one raw download per file: remote path = prefix .. (local name after strip)
local function raw_sources(files, repo, commit, map)
  local out = {}
  for _, f in ipairs(files) do
    local remote = map(f.path)
    if remote then
      out[#out + 1] = { url = gh(repo, commit, remote), path = f.path }
    end
  end
  return out
end

local SYN = { "amao0o0/SynWMD", "59042a92e862db58bd01e47914345d2f52d2a4a3" }
local BRM = { "brmson/dataset-sts", "e1d3375f5b3bc24f21aa4e46f96eb379e9fc1081" }
local EDU = { "eduardofv/sts_eval", "b4cd273eb2c6cc0de34ebeffebd12ebf155ecff6" }

local sets = {}
local function add(s) sets[#sets + 1] = s end

local NLI_LABELS = "nli"

-- ---------------------------------------------------------------- STSb
do
  local files = readme_files("sts/stsb")
  local members = {}
  for _, f in ipairs(files) do members["stsbenchmark/" .. f.path:match("[^/]+$")] = f.path end
  add {
    id = "stsb", title = "STS Benchmark (original release)", kind = "sts", languages = { "en" },
    licence = "scores CC BY-SA 4.0; sentence text per source (MSR corpora: Microsoft Research terms)",
    homepage = "https://ixa2.si.ehu.eus/stswiki/index.php/STSbenchmark",
    format = { reader = "tsv", columns = { s1 = 6, s2 = 7, score = 5 }, min_fields = 7, max_fields = 9, score_range = { 0, 5 } },
    default_split = "test",
    splits = {
      train = { pairs = 5749, subsets = { { name = "train", file = "sts/stsb/sts-train.csv" } } },
      dev = { pairs = 1500, subsets = { { name = "dev", file = "sts/stsb/sts-dev.csv" } } },
      test = { pairs = 1379, subsets = { { name = "test", file = "sts/stsb/sts-test.csv" } } },
    },
    files = files,
    download = { { url = gh(EDU[1], EDU[2], "data/sources/Stsbenchmark.tar.gz"), archive = "tar.gz", members = members } },
    notes = { "Lines have 7 fields, or 9 with two attribution fields after sentence2; fields 5-7 are used.",
              "Dev and test each hold 125 STS17 track5 (en-en) pairs; STSb train overlaps STS12-16 test sets." },
  }
end

-- ---------------------------------------------------------------- SICK
do
  local files = readme_files("sts/sick")
  local sources = raw_sources(files, BRM[1], BRM[2], function(p)
    local name = p:match("^sts/sick/([^/]+)$")
    return name and ("data/sts/sick2014/" .. name)
  end)
  sources[#sources + 1] = { url = gh("kkalouli/SICK-processing", "0848f4aec60870122a4ca18de08ba0e25f6f9a75", "SICK.txt"),
                            path = "sts/sick/full/SICK.txt" }
  add {
    id = "sick", title = "SICK relatedness (SICK-R) and entailment, SemEval-2014 files", kind = "sts", languages = { "en" },
    licence = "CC BY-NC-SA 3.0", homepage = "https://zenodo.org/record/2787612",
    format = { reader = "tsv", header = 1, columns = { s1 = 2, s2 = 3, score = 4, label = 5 }, labels = NLI_LABELS,
               min_fields = 5, max_fields = 5, score_range = { 1, 5 } },
    default_split = "test",
    splits = {
      train = { pairs = 4500, subsets = { { name = "train", file = "sts/sick/SICK_train.txt" } } },
      trial = { pairs = 500, subsets = { { name = "trial", file = "sts/sick/SICK_trial.txt" } } },
      test = { pairs = 4927, subsets = { { name = "test", file = "sts/sick/SICK_test_annotated.txt" } } },
      all = { pairs = 9927, subsets = { { name = "train", file = "sts/sick/SICK_train.txt" },
                                         { name = "trial", file = "sts/sick/SICK_trial.txt" },
                                         { name = "test", file = "sts/sick/SICK_test_annotated.txt" } } },
      full = { pairs = 9840, format = { reader = "tsv", header = 1, columns = { s1 = 2, s2 = 3, score = 5, label = 4 },
                                         labels = NLI_LABELS, min_fields = 12, max_fields = 12, score_range = { 1, 5 } },
               subsets = { { name = "full", file = "sts/sick/full/SICK.txt" } } },
    },
    files = files, download = sources,
    notes = { "Relatedness is 1-5, not 0-5.",
              "SentEval/SimCSE SICK-R = split test (4,927 pairs); MTEB SICK-R scores all 9,927 (split all).",
              "full/SICK.txt orders the label and relatedness columns the other way round and holds 9,840 pairs." },
  }
end

-- ---------------------------------------------------------------- STS12-16
local function gold_set(id, year, folder, subsets, counts, extra)
  local files = readme_files(folder)
  local idx = file_index(files)
  local splits = {}
  for split, list in pairs(subsets) do
    local subs, total = {}, 0
    for _, name in ipairs(list) do
      local input = ("%s/%s/%s"):format(folder, split, extra.input_name(name))
      local gold = ("%s/%s/%s"):format(folder, split, extra.gold_name(name))
      assert(idx[input], "missing " .. input)
      assert(idx[gold], "missing " .. gold)
      subs[#subs + 1] = { name = name, input = input, gold = gold }
    end
    splits[split] = { pairs = counts[split], subsets = subs }
  end
  add {
    id = id, title = ("STS %d (English), gold-standard test%s"):format(year, subsets.train and " and train" or ""),
    kind = "sts", languages = { "en" }, licence = extra.licence, homepage = extra.homepage,
    format = { reader = "gold", columns = { s1 = 1, s2 = 2 }, min_fields = extra.min_fields or 2,
               max_fields = extra.max_fields or 2, score_range = { 0, 5 } },
    default_split = "test", splits = splits, files = files, download = extra.download(files),
    notes = extra.notes,
  }
end

do
  local members = {}
  local files = readme_files("sts/sts12")
  local train, test = { }, { }
  for _, f in ipairs(files) do
    local split, name = f.path:match("^sts/sts12/(%a+)/(.+)$")
    if split == "train" then train["STS2012-train/" .. name] = f.path else test["STS2012-test/" .. name] = f.path end
  end
  gold_set("sts12", 2012, "sts/sts12",
    { test = { "MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews" },
      train = { "MSRpar", "MSRvid", "SMTeuroparl" } },
    { test = 3108, train = 2234 },
    { input_name = function(n) return "STS.input." .. n .. ".txt" end, gold_name = function(n) return "STS.gs." .. n .. ".txt" end,
      licence = "MSRpar/MSRvid: Microsoft Research licence terms; other sets per source (see 00-readme.txt)",
      homepage = "https://www.cs.york.ac.uk/semeval-2012/task6/",
      download = function()
        return { { url = gh(SYN[1], SYN[2], "data/downstream/STS/STS14-en-test/sts2012-train.tgz"), archive = "tar.gz", members = train },
                 { url = gh(SYN[1], SYN[2], "data/downstream/STS/STS14-en-test/sts2012-test.tgz"), archive = "tar.gz", members = test } }
      end,
      notes = { "test/STS.gs.ALL.txt concatenates the five test gold files and is not read (it would double STS12).",
                "SentEval/SimCSE STS12 = the 5 test sets, 3,108 pairs." } })
end

do
  local files = readme_files("sts/sts13")
  local members = {}
  for _, f in ipairs(files) do members["test-gs/" .. f.path:match("[^/]+$")] = f.path end
  gold_set("sts13", 2013, "sts/sts13", { test = { "FNWN", "headlines", "OnWN" } }, { test = 1500 },
    { input_name = function(n) return "STS.input." .. n .. ".txt" end, gold_name = function(n) return "STS.gs." .. n .. ".txt" end,
      licence = "per source (see 00-readme.txt); the SMT input is LDC-only and absent",
      homepage = "https://aclanthology.org/S13-1004/",
      download = function()
        return { { url = gh(SYN[1], SYN[2], "data/downstream/STS/STS14-en-test/sts2013-test.tgz"), archive = "tar.gz", members = members } }
      end,
      notes = { "SMT has gold scores but no input (LDC only): skipped, as SentEval and SimCSE do." } })
end

do
  gold_set("sts14", 2014, "sts/sts14", { test = { "deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news" } },
    { test = 3750 },
    { input_name = function(n) return "STS.input." .. n .. ".txt" end, gold_name = function(n) return "STS.gs." .. n .. ".txt" end,
      licence = "per source (see 00-readme.txt)", homepage = "https://alt.qcri.org/semeval2014/task10/",
      download = function(files)
        return raw_sources(files, SYN[1], SYN[2], function(p)
          return "data/downstream/STS/STS14-en-test/sts-en-test-gs-2014/" .. p:match("^sts/sts14/test/(.+)$")
        end)
      end })
end

do
  gold_set("sts15", 2015, "sts/sts15", { test = { "answers-forums", "answers-students", "belief", "headlines", "images" } },
    { test = 3000 },
    { input_name = function(n) return "STS.input." .. n .. ".txt" end, gold_name = function(n) return "STS.gs." .. n .. ".txt" end,
      licence = "answers-forums: StackExchange CC BY-SA 3.0 with attribution (files travel with it); others per source",
      homepage = "https://alt.qcri.org/semeval2015/task2/",
      download = function(files)
        return raw_sources(files, SYN[1], SYN[2], function(p)
          return "data/downstream/STS/STS15-en-test/test_evaluation_task2a/" .. p:match("^sts/sts15/test/(.+)$")
        end)
      end,
      notes = { "Blank gold lines are unscored pairs: 8,500 input lines, 3,000 scored.",
                "STS.input.answers-forums.LICENSE and STS.answers-forums.zip are attribution files, not data." } })
end

do
  gold_set("sts16", 2016, "sts/sts16", { test = { "answer-answer", "headlines", "plagiarism", "postediting", "question-question" } },
    { test = 1186 },
    { input_name = function(n) return "STS2016.input." .. n .. ".txt" end, gold_name = function(n) return "STS2016.gs." .. n .. ".txt" end,
      min_fields = 4, max_fields = 4,
      licence = "per source: StackExchange CC BY-SA 3.0 with attribution, EAMT11, see test/LICENSE.txt",
      homepage = "https://alt.qcri.org/semeval2016/task1/",
      download = function(files)
        return raw_sources(files, SYN[1], SYN[2], function(p)
          return "data/downstream/STS/STS16-en-test/sts2016-english-with-gs-v1.0/" .. p:match("^sts/sts16/test/(.+)$")
        end)
      end,
      notes = { "Inputs have 4 fields; fields 3-4 are source notes systems must not use.",
                "Blank gold lines are unscored pairs: 9,183 input lines, 1,186 scored." } })
end

-- ---------------------------------------------------------------- STS17
do
  local files = readme_files("sts/sts17")
  local ev, gs = {}, {}
  for _, f in ipairs(files) do
    local dir, name = f.path:match("^sts/sts17/([^/]+)/(.+)$")
    if dir == "STS2017.eval.v1.1" then ev["STS2017.eval.v1.1/" .. name] = f.path else gs["STS2017.gs/" .. name] = f.path end
  end
  local tracks = {
    { "track1.ar-ar", "ar-ar", "ar", "ar", "ar-ar" },
    { "track2.ar-en", "en-ar", "en", "ar", "en-ar" },
    { "track3.es-es", "es-es", "es", "es", "es-es" },
    { "track4a.es-en", "es-en", "es", "en", "es-en" },
    { "track4b.es-en", "en-es-wmt", "en", "es", nil },
    { "track5.en-en", "en-en", "en", "en", "en-en" },
    { "track6.tr-en", "en-tr", "en", "tr", "en-tr" },
  }
  local subs = {}
  for _, t in ipairs(tracks) do
    local tag = t[1]:match("^track%w+%.(.+)$")
    local aliases = { t[1]:match("^(track%w+)"), t[1] }
    -- the file-name language tag too, unless another track is named that way (4b's "es-en" is 4a)
    local taken = false
    for _, u in ipairs(tracks) do if u[2] == tag then taken = true end end
    if tag ~= t[2] and not taken then aliases[#aliases + 1] = tag end
    local s = { name = t[2], lang1 = t[3], lang2 = t[4], mteb = t[5], aliases = aliases,
                input = "sts/sts17/STS2017.eval.v1.1/STS.input." .. t[1] .. ".txt",
                gold = "sts/sts17/STS2017.gs/STS.gs." .. t[1] .. ".txt" }
    if t[1] == "track6.tr-en" then s.truncate_input = true end
    subs[#subs + 1] = s
  end
  add {
    id = "sts17", title = "SemEval-2017 STS, monolingual and cross-lingual tracks", kind = "sts",
    languages = { "ar", "en", "es", "tr" }, licence = "CC BY-SA 4.0 (tracks 1-4a, 5, 6 from SNLI; 4b WMT news commentary)",
    homepage = "https://alt.qcri.org/semeval2017/task1/",
    format = { reader = "gold", columns = { s1 = 1, s2 = 2 }, min_fields = 2, max_fields = 2, score_range = { 0, 5 } },
    default_split = "test",
    splits = { test = { pairs = 1750, subsets = subs } },
    files = files,
    download = { { url = gh(EDU[1], EDU[2], "data/sources/Sts2017.eval.v1.1.zip"), archive = "zip", members = ev },
                 { url = gh(EDU[1], EDU[2], "data/sources/Sts2017.gs.zip"), archive = "zip", members = gs } },
    notes = { "Subsets are named by column language order, which differs from the file names for tracks 2, 4b and 6 (en first); the MTEB STS17 config is given as mteb.",
              "track6.tr-en has 500 input lines and 250 gold lines: the first 250 inputs are scored (as yaushian/mSimCSE eval/evaluation_xsts.py does).",
              "track5.en-en = the 125 track5 rows of STSb dev + the 125 of STSb test." },
  }
end

-- ---------------------------------------------------------------- stsb-multi-mt
do
  local files = readme_files("sts/stsb-multi-mt")
  local langs = { "de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh" }
  local splits = {}
  for _, split in ipairs { "train", "dev", "test" } do
    local subs = {}
    for _, l in ipairs(langs) do
      subs[#subs + 1] = { name = l, lang1 = l, lang2 = l, file = ("sts/stsb-multi-mt/stsb-%s-%s.csv"):format(l, split) }
    end
    splits[split] = { pairs = ({ train = 5749, dev = 1500, test = 1379 })[split] * #langs, subsets = subs }
  end
  add {
    id = "stsb-multi-mt", title = "STSb machine-translated (DeepL) into 10 languages, plus English", kind = "sts",
    languages = langs, licence = "as STS Benchmark (scores CC BY-SA 4.0, text per source)",
    homepage = "https://github.com/PhilipMay/stsb-multi-mt",
    format = { reader = "csv", columns = { s1 = 1, s2 = 2, score = 3 }, min_fields = 3, max_fields = 3, score_range = { 0, 5 } },
    default_split = "test", splits = splits, files = files,
    download = raw_sources(files, "PhilipMay/stsb-multi-mt", "30de0dec4ee199b7f42351d3f1a0b19592955385", function(p)
      local name = p:match("^sts/stsb%-multi%-mt/(.+)$")
      return name == "LICENSE" and "LICENSE" or ("data/" .. name)
    end),
    notes = { "RFC 4180 CSV with CRLF line ends; row i of every language is row i of STSb (same scores).",
              "Pick one language with lang = \"de\"; the per-split pair count is per language x 11." },
  }
end

-- ---------------------------------------------------------------- SentEval-tokenized variants
do
  local files = readme_files("sts/senteval-tokenized")
  local dir = "sts/senteval-tokenized"
  local function files_of(prefix)
    local out = {}
    for _, f in ipairs(files) do if f.path:sub(1, #dir + 1 + #prefix) == dir .. "/" .. prefix then out[#out + 1] = f end end
    return out
  end
  local function syn(folder)
    return function(fs)
      return raw_sources(fs, SYN[1], SYN[2], function(p)
        return "data/downstream/STS/" .. folder .. "/" .. p:match("[^/]+$")
      end)
    end
  end
  local years = {
    { "senteval-sts12", "STS12-en-test", { "MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews" }, 3108 },
    { "senteval-sts13", "STS13-en-test", { "FNWN", "headlines", "OnWN" }, 1500 },
    { "senteval-sts14", "STS14-en-test", { "deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news" }, 3750 },
    { "senteval-sts15", "STS15-en-test", { "answers-forums", "answers-students", "belief", "headlines", "images" }, 3000 },
    { "senteval-sts16", "STS16-en-test", { "answer-answer", "headlines", "plagiarism", "postediting", "question-question" }, 1186 },
  }
  for _, y in ipairs(years) do
    local subs = {}
    for _, n in ipairs(y[3]) do
      subs[#subs + 1] = { name = n, input = ("%s/%s/STS.input.%s.txt"):format(dir, y[2], n),
                          gold = ("%s/%s/STS.gs.%s.txt"):format(dir, y[2], n) }
    end
    local fs = files_of(y[2] .. "/")
    add {
      id = y[1], title = y[2]:gsub("%-en%-test", "") .. " as SentEval preprocesses it (Moses-tokenized, lowercased)",
      kind = "sts", languages = { "en" }, licence = "as the original release", derived_from = y[1]:gsub("senteval%-", ""),
      homepage = "https://github.com/facebookresearch/SentEval",
      format = { reader = "gold", columns = { s1 = 1, s2 = 2 }, min_fields = 2, max_fields = 2, score_range = { 0, 5 } },
      default_split = "test", splits = { test = { pairs = y[4], subsets = subs } }, files = fs, download = syn(y[2])(fs),
      notes = { "SentEval/SimCSE-style numbers use this text; MTEB uses the raw originals." },
    }
  end
  local fs = files_of("STSBenchmark/")
  add {
    id = "senteval-stsb", title = "STS Benchmark as SentEval preprocesses it (Moses-tokenized, lowercased)", kind = "sts",
    languages = { "en" }, licence = "as the original release", derived_from = "stsb", homepage = "https://github.com/facebookresearch/SentEval",
    format = { reader = "tsv", columns = { s1 = 6, s2 = 7, score = 5 }, min_fields = 7, max_fields = 7, score_range = { 0, 5 } },
    default_split = "test",
    splits = {
      train = { pairs = 5749, subsets = { { name = "train", file = dir .. "/STSBenchmark/sts-train.csv" } } },
      dev = { pairs = 1500, subsets = { { name = "dev", file = dir .. "/STSBenchmark/sts-dev.csv" } } },
      test = { pairs = 1379, subsets = { { name = "test", file = dir .. "/STSBenchmark/sts-test.csv" } } },
    },
    files = fs, download = syn("STSBenchmark")(fs),
  }
  fs = files_of("SICK/")
  add {
    id = "senteval-sick", title = "SICK as SentEval ships it (tokenized)", kind = "sts", languages = { "en" },
    licence = "CC BY-NC-SA 3.0", derived_from = "sick", homepage = "https://github.com/facebookresearch/SentEval",
    format = { reader = "tsv", header = 1, columns = { s1 = 2, s2 = 3, score = 4, label = 5 }, labels = NLI_LABELS,
               min_fields = 5, max_fields = 5, score_range = { 1, 5 } },
    default_split = "test",
    splits = {
      train = { pairs = 4500, subsets = { { name = "train", file = dir .. "/SICK/SICK_train.txt" } } },
      test = { pairs = 4927, subsets = { { name = "test", file = dir .. "/SICK/SICK_test_annotated.txt" } } },
    },
    files = fs,
    download = raw_sources(fs, "yan-soares/research_embeddings_fine_tuning", "045c5e94572a60c6bd7173e152c897f6b694c5a8",
      function(p) return "data/downstream/SICK/" .. p:match("[^/]+$") end),
  }
end

-- ---------------------------------------------------------------- NLI present
do
  local files = readme_files("nli/snli-infersent")
  add {
    id = "snli-infersent", title = "SNLI 1.0 dev and test in the InferSent/SentEval format (PTB-tokenized)", kind = "nli",
    languages = { "en" }, licence = "CC BY-SA 4.0", homepage = "https://nlp.stanford.edu/projects/snli/",
    format = { reader = "lines", labels = NLI_LABELS },
    default_split = "dev",
    splits = {
      dev = { pairs = 9842, subsets = { { name = "dev", files = { "nli/snli-infersent/s1.dev", "nli/snli-infersent/s2.dev", "nli/snli-infersent/labels.dev" } } } },
      test = { pairs = 9824, subsets = { { name = "test", files = { "nli/snli-infersent/s1.test", "nli/snli-infersent/s2.test", "nli/snli-infersent/labels.test" } } } },
    },
    files = files,
    download = raw_sources(files, "OanaMariaCamburu/e-SNLI", "7b585a3f077fdea899780eb0473940522ae44a2e",
      function(p) return "dataset/eSNLI/" .. p:match("[^/]+$") end),
    notes = { "Every line ends with a space (trimmed on reading).", "The train split (550k pairs) is not in this set: see snli-1.0 / allnli." },
  }
end

do
  local files = readme_files("nli/xnli-dev")
  local langs = { "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh" }
  local subs = {}
  for _, l in ipairs(langs) do subs[#subs + 1] = { name = l, lang1 = l, lang2 = l, file = "nli/xnli-dev/dev-" .. l .. ".tsv" } end
  add {
    id = "xnli-dev", title = "XNLI development set, 15 languages", kind = "nli", languages = langs,
    licence = "CC BY-NC 4.0 (XNLI)", homepage = "https://github.com/facebookresearch/XNLI",
    format = { reader = "tsv", columns = { s1 = 1, s2 = 2, label = 3 }, labels = NLI_LABELS, min_fields = 3, max_fields = 3 },
    default_split = "dev", splits = { dev = { pairs = 2490 * #langs, subsets = subs } }, files = files,
    download = raw_sources(files, "GautamGupta17/MESH", "68f82e29e71a4e425069ff398a61387c24c0f30d",
      function(p) return "data/xnli/" .. p:match("[^/]+$") end),
    notes = { "Line i is the same example in every language (parallel); pick one with lang = \"de\"." },
  }
end

do
  local files = readme_files("nli/kornli-xnli")
  add {
    id = "kornli-xnli", title = "KorNLI: XNLI dev and test in Korean", kind = "nli", languages = { "ko" },
    licence = "CC BY-SA 4.0 (KorNLU); XNLI upstream CC BY-NC 4.0", homepage = "https://github.com/kakaobrain/KorNLUDatasets",
    format = { reader = "tsv", header = 1, columns = { s1 = 1, s2 = 2, label = 3 }, labels = NLI_LABELS, min_fields = 3, max_fields = 3 },
    default_split = "dev",
    splits = {
      dev = { pairs = 2490, subsets = { { name = "dev", lang1 = "ko", lang2 = "ko", file = "nli/kornli-xnli/xnli.dev.ko.tsv" } } },
      test = { pairs = 5010, subsets = { { name = "test", lang1 = "ko", lang2 = "ko", file = "nli/kornli-xnli/xnli.test.ko.tsv" } } },
    },
    files = files,
    download = raw_sources(files, "kakaobrain/KorNLUDatasets", "0df0fe7d496eb61b092e022e238c2230b29f1cbc", function(p)
      local name = p:match("[^/]+$")
      return name == "LICENSE" and "LICENSE" or ("KorNLI/" .. name)
    end),
  }
end

do
  local files = readme_files("paraphrase/msrp")
  add {
    id = "msrp", title = "Microsoft Research Paraphrase Corpus (brmson train/val split)", kind = "pairs", languages = { "en" },
    licence = "Microsoft Research Shared Source Licence (non-commercial research)",
    homepage = "https://www.microsoft.com/en-us/download/details.aspx?id=52398",
    format = { reader = "tsv", header = 1, columns = { s1 = 4, s2 = 5, label = 1 }, labels = "binary", min_fields = 5, max_fields = 5 },
    default_split = "test",
    splits = {
      train = { pairs = 3576, subsets = { { name = "train", file = "paraphrase/msrp/msr-para-train.tsv" } } },
      val = { pairs = 500, subsets = { { name = "val", file = "paraphrase/msrp/msr-para-val.tsv" } } },
      test = { pairs = 1725, subsets = { { name = "test", file = "paraphrase/msrp/msr-para-test.tsv" } } },
    },
    files = files,
    download = raw_sources(files, BRM[1], BRM[2], function(p) return "data/para/msr/" .. p:match("[^/]+$") end),
    notes = { "label 1 = paraphrase. Do not train on the test part when evaluating STS12 MSRpar." },
  }
end

do
  local files = readme_files("bitext/tatoeba-v1")
  local subs, total = {}, 0
  for _, f in ipairs(files) do
    local l = f.path:match("tatoeba%.(%a+)%-eng%.%a+$")
    if l and f.path:match("%.eng$") == nil then
      local eng = file_index(files)[("bitext/tatoeba-v1/tatoeba.%s-eng.eng"):format(l)]
      subs[#subs + 1] = { name = l .. "-eng", lang1 = l, lang2 = "eng",
                          files = { f.path, ("bitext/tatoeba-v1/tatoeba.%s-eng.eng"):format(l) } }
      total = total + f.lines
      assert(eng.lines == f.lines)
    end
  end
  table.sort(subs, function(a, b) return a.name < b.name end)
  local langs = {}
  for _, s in ipairs(subs) do langs[#langs + 1] = s.lang1 end
  add {
    id = "tatoeba", title = "LASER Tatoeba test set, 112 languages paired with English", kind = "bitext", languages = langs,
    licence = "Tatoeba terms of use (https://tatoeba.org/eng/terms_of_use)",
    homepage = "https://github.com/facebookresearch/LASER/tree/main/data/tatoeba/v1",
    format = { reader = "lines" },
    default_split = "test", splits = { test = { pairs = total, subsets = subs } }, files = files,
    download = raw_sources(files, "yaushian/mSimCSE", "2a0430b25ff70367e564510c15a0dbb5aba275e1",
      function(p) return "data/tatoeba/v1/" .. p:match("[^/]+$") end),
    notes = { "Subsets are ISO 639-3 codes (e.g. deu-eng); the English side differs per pair." },
  }
end

-- ---------------------------------------------------------------- absent training sets
add {
  id = "snli-1.0", title = "SNLI 1.0 (train, dev, test), JSON lines", kind = "nli", languages = { "en" },
  licence = "CC BY-SA 4.0", homepage = "https://nlp.stanford.edu/projects/snli/",
  format = { reader = "jsonl", keys = { s1 = "sentence1", s2 = "sentence2", label = "gold_label" }, labels = NLI_LABELS,
             skip_unlabeled = true },
  default_split = "train",
  splits = {
    train = { pairs_reported = 549367, subsets = { { name = "train", file = "nli/snli-1.0/snli_1.0_train.jsonl" } } },
    dev = { pairs_reported = 9842, subsets = { { name = "dev", file = "nli/snli-1.0/snli_1.0_dev.jsonl" } } },
    test = { pairs_reported = 9824, subsets = { { name = "test", file = "nli/snli-1.0/snli_1.0_test.jsonl" } } },
  },
  files = {
    { path = "nli/snli-1.0/snli_1.0_train.jsonl", sha256 = json.null, bytes = json.null },
    { path = "nli/snli-1.0/snli_1.0_dev.jsonl", sha256 = json.null, bytes = json.null },
    { path = "nli/snli-1.0/snli_1.0_test.jsonl", sha256 = json.null, bytes = json.null },
  },
  download = { { url = "https://nlp.stanford.edu/projects/snli/snli_1.0.zip", sha256 = json.null, archive = "zip",
                 members = { ["snli_1.0/snli_1.0_train.jsonl"] = "nli/snli-1.0/snli_1.0_train.jsonl",
                             ["snli_1.0/snli_1.0_dev.jsonl"] = "nli/snli-1.0/snli_1.0_dev.jsonl",
                             ["snli_1.0/snli_1.0_test.jsonl"] = "nli/snli-1.0/snli_1.0_test.jsonl" } } },
  notes = { "Not in the shared data folder. Stanford publishes no checksum: pull with --sha256 HEX or --no-verify, and record the printed hash.",
            "Pairs whose gold_label is \"-\" (no annotator consensus) are skipped: 550,152 -> 549,367 train, 10,000 -> 9,842 dev, 10,000 -> 9,824 test (reported counts, not checked here).",
            "Also on Hugging Face as stanfordnlp/snli (parquet, not read by lacos)." },
}

add {
  id = "multinli-1.0", title = "MultiNLI 1.0 (train, dev matched, dev mismatched), JSON lines", kind = "nli", languages = { "en" },
  licence = "mostly OANC/CC BY-SA; see the corpus paper's data statement", homepage = "https://cims.nyu.edu/~sbowman/multinli/",
  format = { reader = "jsonl", keys = { s1 = "sentence1", s2 = "sentence2", label = "gold_label" }, labels = NLI_LABELS,
             skip_unlabeled = true },
  default_split = "train",
  splits = {
    train = { pairs_reported = 392702, subsets = { { name = "train", file = "nli/multinli-1.0/multinli_1.0_train.jsonl" } } },
    dev_matched = { pairs_reported = 9815, subsets = { { name = "dev_matched", file = "nli/multinli-1.0/multinli_1.0_dev_matched.jsonl" } } },
    dev_mismatched = { pairs_reported = 9832, subsets = { { name = "dev_mismatched", file = "nli/multinli-1.0/multinli_1.0_dev_mismatched.jsonl" } } },
  },
  files = {
    { path = "nli/multinli-1.0/multinli_1.0_train.jsonl", sha256 = json.null, bytes = json.null },
    { path = "nli/multinli-1.0/multinli_1.0_dev_matched.jsonl", sha256 = json.null, bytes = json.null },
    { path = "nli/multinli-1.0/multinli_1.0_dev_mismatched.jsonl", sha256 = json.null, bytes = json.null },
  },
  download = { { url = "https://cims.nyu.edu/~sbowman/multinli/multinli_1.0.zip", sha256 = json.null, archive = "zip",
                 members = { ["multinli_1.0/multinli_1.0_train.jsonl"] = "nli/multinli-1.0/multinli_1.0_train.jsonl",
                             ["multinli_1.0/multinli_1.0_dev_matched.jsonl"] = "nli/multinli-1.0/multinli_1.0_dev_matched.jsonl",
                             ["multinli_1.0/multinli_1.0_dev_mismatched.jsonl"] = "nli/multinli-1.0/multinli_1.0_dev_mismatched.jsonl" } } },
  notes = { "Not in the shared data folder. NYU publishes no checksum: pull with --sha256 HEX or --no-verify.",
            "Also on Hugging Face as nyu-mll/multi_nli (parquet, not read by lacos)." },
}

add {
  id = "allnli", title = "AllNLI = SNLI + MultiNLI as sentence-transformers distributes it (AllNLI.tsv.gz)", kind = "nli",
  languages = { "en" }, licence = "as SNLI (CC BY-SA 4.0) and MultiNLI",
  homepage = "https://huggingface.co/datasets/sentence-transformers/all-nli",
  format = { reader = "tsv", header = 1, columns = { split = "split", s1 = "sentence1", s2 = "sentence2", label = "label" },
             labels = NLI_LABELS, min_fields = 6, split_filter = true },
  default_split = "train",
  splits = {
    train = { pairs_reported = 942069, subsets = { { name = "train", file = "nli/allnli/AllNLI.tsv", filter = "train" } } },
    dev = { pairs_reported = 19657, subsets = { { name = "dev", file = "nli/allnli/AllNLI.tsv", filter = "dev" } } },
    test = { pairs_reported = 19656, subsets = { { name = "test", file = "nli/allnli/AllNLI.tsv", filter = "test" } } },
  },
  files = { { path = "nli/allnli/AllNLI.tsv", sha256 = json.null, bytes = json.null } },
  download = { { url = "https://sbert.net/datasets/AllNLI.tsv.gz", sha256 = json.null, archive = "gz", path = "nli/allnli/AllNLI.tsv" } },
  notes = { "Not in the shared data folder. No published checksum: pull with --sha256 HEX or --no-verify.",
            "Columns: split, dataset, filename, sentence1, sentence2, label (header line; TAB only, no quoting).",
            "Hugging Face sentence-transformers/all-nli holds the same data as parquet: pair (anchor, positive) train 314,315 = the entailment pairs (lacos.data.nli_triplets mode \"entailment\"), triplet train 557,850 = the SBERT recipe (mode \"sbert\"), pair-class 942,069.",
            "Dedup against STS17 before reporting STS17 (tracks 1-4a, 5, 6 come from SNLI)." },
}

add {
  id = "simcse-nli", title = "SimCSE supervised NLI triplets (premise, entailment, contradiction)", kind = "nli",
  languages = { "en" }, licence = "as SNLI and MultiNLI", homepage = "https://github.com/princeton-nlp/SimCSE",
  format = { reader = "csv", header = 1, columns = { s1 = "sent0", s2 = "sent1", s3 = "hard_neg" }, min_fields = 3 },
  default_split = "train",
  splits = { train = { pairs_reported = 275601, subsets = { { name = "train", file = "nli/simcse/nli_for_simcse.csv" } } } },
  files = { { path = "nli/simcse/nli_for_simcse.csv", sha256 = json.null, bytes = json.null } },
  download = { { url = "https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/d0065b9a050f8aa53170ab639f5a1f3c643fa9ef/nli_for_simcse.csv",
                 sha256 = json.null, path = "nli/simcse/nli_for_simcse.csv" } },
  notes = { "Not in the shared data folder. The file is stored in Git LFS on Hugging Face; no checksum is published on the page: pull with --sha256 HEX or --no-verify.",
            "Rows are ready-made triplets: s1 = premise, s2 = entailment, s3 = contradiction (hard negative). The Hugging Face viewer reports about 276k rows." },
}

-- ---------------------------------------------------------------- output
local out = {
  format = "lacos-datasets", version = 1,
  about = "Datasets lacos knows: files relative to the data root (--data DIR, LACOS_DATA, default datasets/), " ..
          "sizes and sha256, reader and column map, download addresses. Generated by datasets/make_registry.lua; " ..
          "add your own sets in <data root>/registry.local.json (same schema).",
  sets = sets,
}
for _, s in ipairs(sets) do
  for _, f in ipairs(s.files) do f.lines = nil end
  for _, d in ipairs(s.download) do
    -- an archive's own hash is unknown unless given; its members are checked against files
    if d.archive and d.sha256 == nil then d.sha256 = json.null end
  end
end
-- cjson escapes "/" as "\\/"; both are valid JSON, the plain one reads better
io.write((json.encode(out, { indent = 2 }):gsub("\\/", "/")), "\n")
