-- lacos.export: a lacos model (with its LoRA adapter merged in) written as
-- a sentence-transformers directory that SentenceTransformer(dir) loads and
-- that embeds as lacos does.
--
--   local m = lacos.bloom.load("models/bloom-560m", {quant = "f32", adapter = "runs/nli"})
--   lacos.export.sentence_transformers(m, "models/bloom-560m-nli-st", {dtype = "f32"})
--   lacos.export.load("models/bloom-560m", {adapter = "runs/nli"})   -- the family by config.json's model_type
--
-- The directory (built under a temporary name, renamed into place whole):
--   config.json, model.safetensors     the merged network in the Hugging Face names transformers' AutoModel loads
--   tokenizer.json, tokenizer_config.json  the model's tokenizer; the config sets the padding side, the pad
--                                      token and model_max_length, so AutoTokenizer pads and cuts as lacos does
--                                      (a BERT source's own tokenizer_config.json, special_tokens_map.json and
--                                      vocab.txt are copied as they are)
--   modules.json                       Transformer → Pooling (→ Normalize when the model normalises)
--   1_Pooling/config.json              the model's pooling (mean, weightedmean, lasttoken, cls, max,
--                                      mean_sqrt_len_tokens) and include_prompt
--   sentence_bert_config.json          max_seq_length, do_lower_case
--   config_sentence_transformers.json  similarity cosine
--   lacos.json, README.md              what lacos records, and a model card with the provenance
--
-- A model family takes part by answering two calls on its model objects:
--   m:write_checkpoint(dir, {dtype =, shard_size =})   the Hugging Face checkpoint (weights named by the
--                                                      family's layout file, config.json, tokenizer files)
--   m:embedding_spec()   { family, model_type, architecture, pooling, pooling_recorded, poolings, padding_side,
--                          normalize, max_length, max_seq_length, do_lower_case, hidden_size, pad_token,
--                          include_prompt, base, adapter, lora, quant, tokenizer_path, dir, and optionally
--                          keep_tokenizer_config, special_tokens, prompts, default_prompt_name, similarity }
-- and, when it trains LoRA, m.lora, m:lora_merged(), m:merge_lora(), m:unmerge_lora(). M.families maps
-- config.json's model_type to the family's loader (lacos.bloom.load for bloom and bert: a BERT is
-- written as transformers' BertModel, its fused [Q;K;V] split back into query, key and value).
-- A model held in int8 is exported dequantised, with a warning (the result's warnings).
local util = require "lacos.util"
local json = require "lacos.json"
local E = require "lacos.engine"
local ffi, C = E.ffi, E.C

local M = {}

M.formats = { "sentence-transformers" }
M.dtypes = { f32 = true, f16 = true, bf16 = true }

-- model_type → a function(dir, opts) that loads the family's model (opts: quant, adapter).
M.families = {
  bloom = function(dir, opts) return require("lacos.bloom").load(dir, opts) end,
  bert = function(dir, opts) return require("lacos.bloom").load(dir, opts) end,
}

-- What each pooling does, for the model card.
local pooling_words = {
  mean = "the mean of the token embeddings",
  weightedmean = "the mean of the token embeddings weighted by position 1, 2, ... from the first token (SGPT)",
  lasttoken = "the embedding of the last token",
  cls = "the embedding of the first ([CLS]) token",
  max = "the largest value of each feature over the tokens",
  mean_sqrt_len_tokens = "the sum of the token embeddings divided by the square root of their number",
}

local function fail(fmt, ...) error(fmt:format(...), 0) end

local function sha256_file(path)
  local hex = ffi.new("char[65]")
  E.check(C.lacos_sha256_file(path, hex))
  return ffi.string(hex)
end

-- Loads the model of a checkpoint directory through its family.
function M.load(dir, opts)
  if type(dir) ~= "string" or dir == "" then error("lacos.export.load: expected a model directory", 2) end
  local cpath = dir .. "/config.json"
  if not util.exists(cpath) then fail("%s: no such file (a model directory holds config.json)", cpath) end
  local cfg = json.read(cpath)
  local mt = type(cfg) == "table" and cfg.model_type
  if type(mt) ~= "string" then fail("%s: model_type is missing", cpath) end
  local load = M.families[mt]
  if not load then
    local known = {}
    for k in pairs(M.families) do known[#known + 1] = k end
    table.sort(known)
    fail("%s: model_type is \"%s\"; lacos exports %s models", cpath, mt, table.concat(known, ", "))
  end
  return load(dir, opts)
end

-- The training run that made an adapter, its settings and its file's hash:
-- the run's uuid as the adapter's lacos.json records it, else the newest
-- run in the results database whose adapter artifact has the same sha256.
local function adapter_provenance(adapter, db_path)
  local p = { dir = adapter }
  local file = adapter .. "/adapter_model.safetensors"
  if util.exists(file) then p.sha256 = sha256_file(file) end
  local meta = util.exists(adapter .. "/lacos.json") and json.read(adapter .. "/lacos.json") or {}
  if type(meta.trained) == "table" then
    p.trained = meta.trained
    if type(meta.trained.run) == "string" then p.run, p.run_from = meta.trained.run, adapter .. "/lacos.json" end
  end
  if type(meta.base_model) == "string" then p.base_model = meta.base_model end
  if not p.run and p.sha256 then
    local path = db_path or require("lacos.results").default_path()
    if util.exists(path) then
      local ok, db = pcall(require("lacos.results").open, path, { readonly = true, create = false })
      if ok then
        local qok, rows = pcall(db.query, db, "SELECT r.uuid AS uuid FROM artifacts a JOIN runs r ON r.id = a.run_id " ..
                                "WHERE a.kind = 'adapter' AND a.sha256 = ? ORDER BY a.id DESC LIMIT 1", p.sha256)
        if qok and rows[1] then p.run, p.run_from = rows[1].uuid, path end
        db:close()
      end
    end
  end
  return p
end

-- A tokenizer_config.json that makes AutoTokenizer encode as lacos does:
-- the model's (when it has one) with the padding side, the pad token and the
-- length set. Empty tables are dropped: the JSON reader cannot tell [] from
-- {}, and an empty entry means its default either way.
local function tokenizer_config(tmp, spec, max_length)
  local path = tmp .. "/tokenizer_config.json"
  -- a BERT source's own config already tokenizes as sentence-transformers
  -- ran it (right padding, its special tokens): kept byte for byte
  if spec.keep_tokenizer_config and util.exists(path) then return end
  local tc = util.exists(path) and json.read(path) or {}
  if type(tc) ~= "table" then fail("%s: not a JSON object", path) end
  for k, v in pairs(tc) do if type(v) == "table" and v ~= json.null and next(v) == nil then tc[k] = nil end end
  tc.tokenizer_class = tc.tokenizer_class or "PreTrainedTokenizerFast"
  tc.padding_side = spec.padding_side
  tc.truncation_side = "right"
  tc.model_max_length = max_length
  if tc.pad_token == nil and spec.pad_token then tc.pad_token = spec.pad_token end
  if tc.clean_up_tokenization_spaces == nil then tc.clean_up_tokenization_spaces = false end
  if tc.do_lower_case == nil and spec.do_lower_case then tc.do_lower_case = true end
  -- the special tokens a prompt's length is measured without (sentence-transformers drops a trailing one)
  for k, v in pairs(spec.special_tokens or {}) do if tc[k] == nil then tc[k] = v end end
  json.write(path, tc)
end

-- The Pooling module's config in the boolean keys that every
-- sentence-transformers since 2.2 reads (6 converts them to its pooling_mode;
-- 5 and older know only these).
local legacy_keys = { cls = "pooling_mode_cls_token", max = "pooling_mode_max_tokens", mean = "pooling_mode_mean_tokens",
  mean_sqrt_len_tokens = "pooling_mode_mean_sqrt_len_tokens", weightedmean = "pooling_mode_weightedmean_tokens",
  lasttoken = "pooling_mode_lasttoken" }
local function pooling_config(pooling, dimension, include_prompt)
  local c = { word_embedding_dimension = dimension, include_prompt = include_prompt }
  for mode, key in pairs(legacy_keys) do c[key] = mode == pooling end
  return c
end

local function card(out, spec, info)
  local P = function(s) return util.printable(tostring(s)) end
  local name = out:gsub("/+$", ""):match("([^/]+)$") or out
  local L = {
    "---",
    "library_name: sentence-transformers",
    "pipeline_tag: sentence-similarity",
    "tags:",
    "- sentence-transformers",
    "- feature-extraction",
    "- lacos",
    "---",
    "",
    "# " .. P(name),
    "",
    ("A sentence-embedding model exported by lacos %s as a sentence-transformers directory%s."):format(
      info.version, spec.lora and ", with its LoRA adapter merged into the weights" or ""),
    "",
    "## Use",
    "",
    "```python",
    "from sentence_transformers import SentenceTransformer",
    ("model = SentenceTransformer(%q)"):format(P(out)),
    'embeddings = model.encode(["a sentence", "une phrase"])',
    "```",
    "",
    ("lacos reads it as a plain checkpoint: `lacos embed --model %s --quant f32 --out e.npy < sentences.txt`."):format(P(out)),
    "",
    "## How it embeds",
    "",
    "| | |",
    "|---|---|",
    ("| network | %s (`%s`), hidden size %d, weights %s |"):format(spec.architecture, spec.model_type, spec.hidden_size, info.dtype),
    ("| pooling | `%s`: %s |"):format(info.pooling, pooling_words[info.pooling] or info.pooling),
    ("| normalised | %s |"):format(spec.normalize and "yes (unit length)" or "no (compare with the cosine)"),
    ("| max_seq_length | %d tokens (sentence-transformers cuts longer inputs to this; lacos embed does with --max-length %d) |")
      :format(info.max_length, info.max_length),
    ("| padding side | %s |"):format(spec.padding_side),
    ("| prompt tokens | %s |"):format(spec.include_prompt ~= false and "pooled with the text" or
      "attended to but not pooled (include_prompt false)"),
    "",
    "## Provenance",
    "",
    ("- base model: %s"):format(P(spec.base or "(unknown)")),
  }
  local a = info.adapter
  if a then
    local l = spec.lora
    L[#L + 1] = ("- adapter: %s (adapter_model.safetensors sha256 %s), LoRA r %d, alpha %g%s on %s, merged into the %s base")
      :format(P(a.dir), a.sha256 or "?", l.r, l.alpha, l.rslora and " (rsLoRA)" or "", table.concat(l.targets or {}, ", "),
              tostring(spec.quant))
    if a.run then L[#L + 1] = ("- training run: %s (from %s)"):format(P(a.run), P(a.run_from))
    else L[#L + 1] = "- training run: not recorded (neither the adapter's lacos.json nor the results database names one)" end
    local t = a.trained
    if type(t) == "table" and t.steps then
      L[#L + 1] = ("- trained: %s steps on %s pairs, final loss %s"):format(tostring(t.steps), tostring(t.pairs),
        type(t.loss) == "number" and ("%.4f"):format(t.loss) or tostring(t.loss))
    end
  else
    L[#L + 1] = "- adapter: none (the base weights as they are)"
  end
  if info.dequantised then
    L[#L + 1] = "- weights: dequantised from the int8 model lacos held (they carry its rounding; not the source's exact weights)"
  end
  L[#L + 1] = ("- exported by: lacos %s, %s"):format(info.version, info.date)
  L[#L + 1] = ("- model.safetensors sha256: %s"):format(info.weights_sha256 or "(sharded; see model.safetensors.index.json)")
  L[#L + 1] = ""
  return table.concat(L, "\n")
end

-- Writes m as a sentence-transformers directory at out. opts:
--   dtype ("f32")       weights on disk: f32 (sentence-transformers then computes as lacos does, in f32), f16, bf16
--   pooling             the pooling to record; one that differs from the model's recorded pooling is refused
--   max_length          sentence_bert_config.json's max_seq_length (default: the model's longest input)
--   force               replace a non-empty out
--   shard_size          largest weight file in bytes (0: one file)
--   db                  the results database that names the adapter's training run (default $LACOS_DB ...)
--   force_hint          how the caller's user says force, for the message refusing a non-empty out
-- A model with an unmerged adapter is merged for the export and unmerged
-- after. Returns a table: out, pooling, normalize, max_length, dtype, run.
function M.sentence_transformers(m, out, opts)
  opts = util.options(opts, { dtype = "f32", pooling = util.ANY, max_length = util.ANY, force = false, shard_size = 0,
                              db = util.ANY, force_hint = "force = true" }, "lacos.export.sentence_transformers")
  if type(out) ~= "string" or out == "" then error("lacos.export: expected an output directory", 2) end
  if type(m) ~= "table" or type(m.embedding_spec) ~= "function" or type(m.write_checkpoint) ~= "function" then
    error("lacos.export: expected a lacos model (its family answers embedding_spec and write_checkpoint)", 2)
  end
  if not M.dtypes[opts.dtype] then fail("lacos.export: dtype must be f32, f16 or bf16, got '%s'", tostring(opts.dtype)) end
  local spec = m:embedding_spec()
  local pooling = spec.pooling
  if opts.pooling then
    local offered = false
    for _, p in ipairs(spec.poolings) do offered = offered or p == opts.pooling end
    if not offered then
      fail("lacos.export: pooling '%s' is not one a %s model has (%s)", tostring(opts.pooling), spec.family,
           table.concat(spec.poolings, ", "))
    end
    if spec.pooling_recorded and opts.pooling ~= spec.pooling_recorded then
      fail("%s was trained with %s pooling; exported with %s it would embed otherwise than it was trained to",
           tostring(spec.adapter or spec.base), spec.pooling_recorded, opts.pooling)
    end
    pooling = opts.pooling
  end
  if not require("lacos.sentence_transformers").pooling_modes[pooling] then
    fail("lacos.export: sentence-transformers has no pooling '%s'", tostring(pooling))
  end
  local max_length = opts.max_length or spec.max_seq_length or spec.max_length
  if type(max_length) ~= "number" or max_length < 1 or max_length ~= math.floor(max_length) or max_length > spec.max_length then
    fail("max_length must be a whole number from 1 to the model's %d, got %s", spec.max_length, tostring(max_length))
  end
  if not spec.tokenizer_path then
    fail("%s: the model has no tokenizer.json; a sentence-transformers directory needs one", tostring(spec.dir or spec.base))
  end
  local info = { version = require("lacos").version(), date = os.date("!%Y-%m-%d %H:%M:%S UTC"), dtype = opts.dtype,
                 pooling = pooling, max_length = max_length }
  local warnings = {}
  if spec.quant and spec.quant:match("^int8") then
    -- the int8 codes dequantised: the rounding is baked into the weights,
    -- and sentence-transformers computes with them in floating point (not
    -- as lacos' int8 products do), so the export embeds like neither
    warnings[1] = ("%s was held in int8: the export's weights are its int8 weights dequantised, and embed close to, not "
      .. "as, the original (load with --quant f32 to export the weights exactly)"):format(tostring(spec.base))
    info.dequantised = true
  end
  if spec.adapter then info.adapter = adapter_provenance(spec.adapter, opts.db) end
  local merged_here = spec.lora and not m:lora_merged()
  if merged_here then m:merge_lora() end
  local ok, err = pcall(util.build_dir, out, opts.force, function(tmp)
    m:write_checkpoint(tmp, { dtype = opts.dtype, shard_size = opts.shard_size })
    if not util.exists(tmp .. "/tokenizer.json") then fail("%s: the model's tokenizer was not written", tmp) end
    -- the pooling the export records wins over the checkpoint's (lacos embed reads lacos.json)
    local lj = json.read(tmp .. "/lacos.json")
    lj.pooling, lj.normalize = pooling, spec.normalize
    lj.export = { format = "sentence-transformers", max_seq_length = max_length }
    json.write(tmp .. "/lacos.json", lj)
    tokenizer_config(tmp, spec, max_length)
    local modules = {
      { idx = 0, name = "0", path = "", type = "sentence_transformers.models.Transformer" },
      { idx = 1, name = "1", path = "1_Pooling", type = "sentence_transformers.models.Pooling" },
    }
    util.mkdir_p(tmp .. "/1_Pooling")
    json.write(tmp .. "/1_Pooling/config.json", pooling_config(pooling, spec.hidden_size, spec.include_prompt ~= false))
    if spec.normalize then
      -- sentence-transformers' Normalize keeps no settings: its folder is empty
      modules[3] = { idx = 2, name = "2", path = "2_Normalize", type = "sentence_transformers.models.Normalize" }
      util.mkdir_p(tmp .. "/2_Normalize")
    end
    json.write(tmp .. "/modules.json", modules)
    json.write(tmp .. "/sentence_bert_config.json", { max_seq_length = max_length, do_lower_case = spec.do_lower_case })
    json.write(tmp .. "/config_sentence_transformers.json", { model_type = "SentenceTransformer",
      similarity_fn_name = spec.similarity or "cosine", prompts = spec.prompts and next(spec.prompts) and spec.prompts or nil, default_prompt_name = spec.default_prompt_name,
      __version__ = { lacos = info.version } })
    if util.exists(tmp .. "/model.safetensors") then info.weights_sha256 = sha256_file(tmp .. "/model.safetensors") end
    util.write_file(tmp .. "/README.md", card(out, spec, info))
  end, opts.force_hint)
  if merged_here then m:unmerge_lora() end
  if not ok then error(err, 0) end
  return { out = out, pooling = pooling, normalize = spec.normalize, max_length = max_length, dtype = opts.dtype,
           run = info.adapter and info.adapter.run, format = "sentence-transformers", warnings = warnings }
end

return M
