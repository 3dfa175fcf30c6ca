-- lacos sts: evaluate a model (and adapter) on STS sets from the command
-- line: cosine similarity of pooled embeddings, Spearman and Pearson x100,
-- per set and language (pair); every score recorded in the results
-- database with what produced it.
local M = {}
local POOLINGS = require("lacos.bloom").pooling_list

M.spec = {
  name = "sts",
  usage = "lacos sts --model DIR [--adapter DIR] [--pooling MODE] [--quant f32|int8] [--int8-skip LIST]\n" ..
          "                 [--sets stsb:test,sick:test,... | --suite senteval|senteval_raw|mteb_en | --file FILE] [--json]",
  summary = "Evaluate a model on STS benchmarks (cosine Spearman x100).",
  description = "A set is NAME[:SPLIT[:SUBSET]] from the dataset registry (lacos data list), e.g. stsb:test, sick:test,\n" ..
                "sts17:test:en-de, stsb-multi-mt:test:de. --file scores any STSb-format or 'sentence1 TAB sentence2 TAB\n" ..
                "score' file. Sets with several subsets (STS12-16, STS17, stsb-multi-mt) report each subset and the\n" ..
                "concatenated 'all' score (SimCSE's rule; --aggregation mean|wmean for the others).",
  options = {
    { "--model", "DIR", "checkpoint directory (BLOOM, BERT, or a sentence-transformers directory)", required = true },
    { "--adapter", "DIR", "LoRA adapter (lacos' or PEFT's)" },
    { "--pooling", "MODE", "pooling (default: the model's)", choices = POOLINGS },
    { "--quant", "KIND", "weights in memory", default = "int8", choices = { "f32", "int8" } },
    require("lacos.bloom").int8_skip_option(),
    { "--threshold", "X", "LLM.int8 outlier threshold", type = "number", default = 0, min = 0 },
    { "--device", "NAME", "where the model runs", default = "cpu", choices = { "cpu", "cuda" } },
    { "--sets", "LIST", "comma-separated sets", default = "stsb:test" },
    { "--suite", "NAME", "a whole suite", choices = { "senteval", "senteval_raw", "mteb_en" } },
    { "--file", "FILE", "score a pairs file instead of registry sets" },
    { "--format", "FMT", "--file format", default = "auto", choices = { "auto", "stsb", "generic" } },
    { "--aggregation", "RULE", "subset aggregation", default = "all", choices = { "all", "mean", "wmean" } },
    { "--data", "DIR", "datasets root (default $LACOS_DATA or datasets/)" },
    { "--batch", "N", "sentences per forward pass", type = "integer", default = 64, min = 1 },
    { "--max-length", "N", "truncate sentences to N tokens", type = "integer", min = 1 },
    { "--force", nil, "allow a pooling other than the recorded one" },
    { "--json", nil, "print JSON" },
    { "--db", "FILE", "results database (default $LACOS_DB or results/lacos.db)" },
    { "--no-db", nil, "do not record the scores" },
    { "--threads", "N", "worker threads", type = "integer", min = 1 },
  },
  examples = {
    "lacos sts --model models/bloom-560m --sets stsb:test,sick:test",
    "lacos sts --model models/bloom-560m --adapter runs/lora --suite senteval",
    "lacos sts --model models/bloom-560m --file my-pairs.tsv --json",
    "lacos sts --model models/all-MiniLM-L6-v2 --quant f32 --suite senteval",
  },
}

local function parse_sets(list)
  local out = {}
  for item in list:gmatch("[^,%s]+") do
    local name, split, subset = item:match("^([^:]+):?([^:]*):?(.*)$")
    out[#out + 1] = { data = name, split = split ~= "" and split or nil, subset = subset ~= "" and subset or nil, label = item }
  end
  if #out == 0 then error("--sets names no set", 0) end
  return out
end

-- --format auto: the number of TAB-separated fields of the first non-blank
-- line tells an STSb-format file (7 or more: genre, file, year, id, score,
-- sentence1, sentence2[, source...]) from a generic one (sentence1,
-- sentence2, score). A header line is skipped when its score is not a number.
local function sniff_format(path)
  local f, err = io.open(path, "rb")
  if not f then error(("%s: %s"):format(path, (err or "cannot open"):gsub("^[^:]*: ", "")), 0) end
  local n, fields = 0, nil
  for line in f:lines() do
    n = n + 1
    line = line:gsub("\r$", "")
    if n == 1 then line = line:gsub("^\239\187\191", "") end
    if line:match("%S") then
      fields = 1
      for _ in line:gmatch("\t") do fields = fields + 1 end
      break
    end
    if n >= 1000 then break end
  end
  f:close()
  if not fields then error(("%s: no sentence pairs in the file"):format(path), 0) end
  if fields >= 7 then return "stsb" end
  if fields == 3 then return "generic" end
  error(("%s:%d: cannot tell the format: %d TAB-separated field%s; expected 3 (sentence1, sentence2, score) or " ..
         "STSb's 7 (genre, file, year, id, score, sentence1, sentence2); see --format"):format(path, n, fields,
         fields == 1 and "" or "s"), 0)
end

function M.run(opts)
  local lacos = require "lacos"
  local json = require "lacos.json"
  if opts.threads then lacos.threads(opts.threads) end
  local file_format = opts.file and (opts.format == "auto" and sniff_format(opts.file) or opts.format)
  -- The database first: a locked, read-only or foreign file fails before the
  -- evaluation rather than after it, with the scores lost.
  local db = not opts.no_db and lacos.results.open(opts.db) or nil
  local m = lacos.bloom.load(opts.model, { quant = opts.quant, threshold = opts.threshold, adapter = opts.adapter, cache = true,
                                           device = opts.device, int8_skip = lacos.bloom.skip_arg(opts.int8_skip) })
  -- the formats the model holds (an adapter's recorded list included), for the record
  local quantisation = m:quantisation()
  require("lacos.cmd.embed").check_pooling("sts", m, opts)
  local pooling = opts.pooling or m:pooling()
  local function encode(list)
    return m:encode(list, { pooling = pooling, batch = opts.batch, force = opts.force, max_length = opts.max_length,
                            truncation = opts.max_length ~= nil })
  end
  -- The input is read before the run starts (a malformed file records no
  -- run), and the run is started before the evaluation (a locked database
  -- fails now, not after the work); an error in between marks it failed.
  local inputs = {}
  if opts.file then
    inputs[1] = { label = opts.file, set = lacos.data.read_pairs(opts.file, { format = file_format, header = "auto" }) }
  elseif not opts.suite then
    for _, t in ipairs(parse_sets(opts.sets)) do
      inputs[#inputs + 1] = { label = t.label, set = lacos.data.load(t.data, { split = t.split, subset = t.subset, data = opts.data }) }
    end
  end
  -- git is asked about the lacos tree that ran (not the working directory)
  local util = require "lacos.util"
  local run = db and db:start_run { name = "sts " .. opts.model .. (opts.adapter and (" + " .. opts.adapter) or ""),
                                    workdir = lacos.engine.home,
                                    config = { model = opts.model, adapter = opts.adapter or "", pooling = pooling,
                                               quant = opts.quant, threshold = opts.threshold, sets = opts.file or opts.suite or opts.sets,
                                               int8_skip = m.int8_skip and table.concat(m.int8_skip, ",") or nil } }
  if run then
    -- where the inputs were, absolutely, and what the scored file held
    run:params { model_path = util.abspath(opts.model), adapter_path = opts.adapter and util.abspath(opts.adapter) or nil,
                 file_path = opts.file and util.abspath(opts.file) or nil,
                 file_sha256 = opts.file and lacos.data.sha256_file(opts.file) or nil }
  end
  local results = {}
  local function add(label, r)
    r.label = label
    results[#results + 1] = r
  end
  local evaluated, eval_err = pcall(function()
    if opts.suite then
      local s = lacos.sts.run_suite(opts.suite, encode, { data = opts.data })
      for _, r in ipairs(s.tasks) do add(r.task, r) end
      results.suite = { name = opts.suite, title = s.title, average = s.average }
    end
    local clock = require("lacos.train").clock
    for _, input in ipairs(inputs) do
      local t0 = clock()
      local r = lacos.sts.evaluate_set(input.set, encode, { aggregation = opts.aggregation })
      r.seconds = clock() - t0   -- recorded as a timing (MTEB's evaluation_time)
      add(input.label, r)
      if input.set.free then input.set:free() end
    end
  end)
  if not evaluated then
    if run then
      if type(eval_err) == "string" and eval_err:match("interrupted") then
        pcall(run.finish, run, "interrupted", "interrupted by a signal", "signal")
      else pcall(run.finish, run, "failed", tostring(eval_err), "error") end
    end
    error(eval_err, 0)
  end
  if run then
    for _, r in ipairs(results) do
      local function log(name, lang, n, sp, pe)
        run:sts { dataset = name, language = lang, split = r.split or "test", n = n, spearman = sp / 100, pearson = pe / 100,
                  pooling = pooling, text_variant = r.text or "raw", aggregation = r.aggregation or opts.aggregation,
                  similarity = "cosine", model = opts.model, adapter = opts.adapter, quantisation = quantisation,
                  dataset_sha256 = r.digest }
      end
      local name = r.task or r.dataset or r.label
      log(name, "all", r.n, r.main or r.spearman, r.pearson)
      if r.seconds then run:timing { phase = "sts:" .. name, n_items = r.n, avg_ns = r.seconds * 1e9, repetitions = 1 } end
      if r.subsets and #r.subsets > 1 then
        for _, u in ipairs(r.subsets) do
          local lang = u.lang2 and u.lang2 ~= u.lang1 and (u.lang1 .. "-" .. u.lang2) or u.lang1 or u.name
          log(name .. "/" .. u.name, lang, u.n, u.spearman, u.pearson)
        end
      end
    end
    run:finish("done")
    -- which run holds these scores (stderr: stdout stays the table or the JSON)
    io.stderr:write(("lacos sts: recorded as run %d in %s (lacos results show %d)\n"):format(run.id, util.abspath(db.path), run.id))
    db:close()
  end
  if opts.json then
    print(json.encode({ model = opts.model, adapter = opts.adapter, pooling = pooling, quant = opts.quant,
                        int8_skip = m.int8_skip, results = results,
                        suite = results.suite }, { indent = 2 }))
    return 0
  end
  print(("%-28s %7s %9s %9s  %s"):format("set", "pairs", "spearman", "pearson", "text"))
  for _, r in ipairs(results) do
    print(("%-28s %7d %9.2f %9.2f  %s"):format(r.label, r.n, r.main or r.spearman, r.pearson, r.text or "raw"))
    if r.subsets and #r.subsets > 1 then
      for _, u in ipairs(r.subsets) do
        print(("  %-26s %7d %9.2f %9.2f"):format(u.name, u.n, u.spearman, u.pearson))
      end
    end
  end
  if results.suite then print(("%-28s %7s %9.2f  (%s)"):format(results.suite.name .. " average", "", results.suite.average, results.suite.title)) end
  return 0
end

return M
