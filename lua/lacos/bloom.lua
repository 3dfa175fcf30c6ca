-- lacos.bloom: models of every family (engine/bloom.c: BLOOM; engine/bert.c:
-- BERT encoders) with their tokenizer. lacos.load is this module's load.
--
--   local m = lacos.bloom.load("models/bloom-560m", {quant = "int8", threshold = 0})
--   local m = lacos.load("models/all-MiniLM-L6-v2", {quant = "f32"})   -- a sentence-transformers
--     -- directory (or a plain BertModel one): config.json's model_type picks the family, and
--     -- lacos.sentence_transformers.describe the pooling, normalisation, length and lowercasing
--   local m = lacos.bloom.random("tiny-s", {seed = 1, quant = "int8"})
--   local e = m:encode({"a sentence", "another"}, {pooling = "weightedmean"})  -- (2, C) tensor
--   m:add_lora{r = 8, alpha = 16, targets = {"query_key_value"}}
--   m:trainable()  -- {name=, param=, grad=} for the optimizer
--   m:outliers()   -- LLM.int8 outlier columns per layer and linear (threshold > 0)
--   lacos.bloom.load(dir, {device = "cuda"})   -- on the GPU: the same calls; encode/forward return
--                                               -- host tensors, trainable() device tensors
--
-- A model remembers how it embeds (pooling, padding side, normalisation) in
-- lacos.json next to its weights or adapter; encode refuses a pooling that
-- differs from the recorded one unless asked to override it.
local E = require "lacos.engine"
local T = require "lacos.tensor"
local util = require "lacos.util"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}
local Model = {}
Model.__index = Model
M.Model = Model

M.poolings = { mean = C.LACOS_POOL_MEAN, weightedmean = C.LACOS_POOL_WEIGHTEDMEAN, lasttoken = C.LACOS_POOL_LASTTOKEN,
                cls = C.LACOS_POOL_CLS, max = C.LACOS_POOL_MAX, mean_sqrt_len_tokens = C.LACOS_POOL_MEAN_SQRT_LEN }
local pooling_names = {}
for name, v in pairs(M.poolings) do pooling_names[v] = name end
-- every pooling by name, in the engine's order (for option lists and messages)
M.pooling_list = {}
for v = 0, #pooling_names do M.pooling_list[#M.pooling_list + 1] = pooling_names[v] end
M.families = { bloom = C.LACOS_FAMILY_BLOOM, bert = C.LACOS_FAMILY_BERT }
local family_names = {}
for name, v in pairs(M.families) do family_names[v] = name end
M.quants = { f32 = C.LACOS_QUANT_F32, int8 = C.LACOS_QUANT_INT8 }

-- LoRA target names (PEFT's module names, short or with their parent) and presets.
local QKV, DENSE, H_TO_4H, _4H_TO_H = C.LACOS_LORA_QKV, C.LACOS_LORA_DENSE, C.LACOS_LORA_H_TO_4H, C.LACOS_LORA_4H_TO_H
M.targets = {
  query_key_value = QKV, ["self_attention.query_key_value"] = QKV,
  dense = DENSE, ["self_attention.dense"] = DENSE,
  dense_h_to_4h = H_TO_4H, ["mlp.dense_h_to_4h"] = H_TO_4H,
  dense_4h_to_h = _4H_TO_H, ["mlp.dense_4h_to_h"] = _4H_TO_H,
}
local ATTN, MLP = bit.bor(QKV, DENSE), bit.bor(H_TO_4H, _4H_TO_H)
M.target_presets = { attn = ATTN, mlp = MLP, all = bit.bor(ATTN, MLP), ["attn+mlp"] = bit.bor(ATTN, MLP) }
local target_bit_names = { [QKV] = "query_key_value", [DENSE] = "dense", [H_TO_4H] = "dense_h_to_4h",
                           [_4H_TO_H] = "dense_4h_to_h" }
-- BERT's: PEFT's module names; "dense" is all three dense linears of a
-- block, as PEFT's suffix match takes it.
local QUERY, KEY, VALUE = C.LACOS_LORA_QUERY, C.LACOS_LORA_KEY, C.LACOS_LORA_VALUE
local BERT_QKV, BERT_DENSE = bit.bor(QUERY, KEY, VALUE), bit.bor(DENSE, H_TO_4H, _4H_TO_H)
M.bert_targets = {
  query = QUERY, ["attention.self.query"] = QUERY, key = KEY, ["attention.self.key"] = KEY,
  value = VALUE, ["attention.self.value"] = VALUE, dense = BERT_DENSE, ["attention.output.dense"] = DENSE,
  ["intermediate.dense"] = H_TO_4H, ["output.dense"] = _4H_TO_H,
}
M.bert_target_presets = { attn = bit.bor(BERT_QKV, DENSE), mlp = MLP, all = bit.bor(BERT_QKV, BERT_DENSE),
                          ["attn+mlp"] = bit.bor(BERT_QKV, BERT_DENSE), qkv = BERT_QKV }
local bert_bit_names = { [QUERY] = "query", [KEY] = "key", [VALUE] = "value", [DENSE] = "attention.output.dense",
                         [H_TO_4H] = "intermediate.dense", [_4H_TO_H] = "output.dense" }
-- PEFT's default targets for each family
M.default_targets = { bloom = { "query_key_value" }, bert = { "query", "value" } }

local function target_bits(targets, family)
  family = family or "bloom"
  if targets == nil then targets = M.default_targets[family] end
  if type(targets) == "string" then targets = { targets } end
  if type(targets) ~= "table" then error("targets must be a list of module names", 3) end
  local names, presets = M.targets, M.target_presets
  if family == "bert" then names, presets = M.bert_targets, M.bert_target_presets end
  local bits = 0
  for _, name in ipairs(targets) do
    local b = names[name] or presets[name]
    if not b then
      local valid = family == "bert" and { "query", "key", "value", "dense", "attention.output.dense",
                                           "intermediate.dense", "output.dense", "attn", "mlp", "qkv", "all" }
                    or { "query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "attn", "mlp", "all" }
      error(("unknown LoRA target '%s' for %s (valid: %s)"):format(tostring(name), family == "bert" and "BERT" or
        "BLOOM (it has no q_proj/v_proj)", table.concat(valid, ", ")), 3)
    end
    bits = bit.bor(bits, b)
  end
  return bits
end
M.target_bits = target_bits

function M.target_names(bits, family)
  local names = {}
  if family == "bert" then
    for _, b in ipairs { QUERY, KEY, VALUE, DENSE, H_TO_4H, _4H_TO_H } do
      if bit.band(bits, b) ~= 0 then names[#names + 1] = bert_bit_names[b] end
    end
    return names
  end
  for _, b in ipairs { QKV, DENSE, H_TO_4H, _4H_TO_H } do if bit.band(bits, b) ~= 0 then names[#names + 1] = target_bit_names[b] end end
  return names
end

local function config_table(cfg)
  return { vocab_size = cfg.vocab_size, hidden_size = cfg.hidden_size, n_layer = cfg.n_layer, n_head = cfg.n_head,
           layer_norm_epsilon = cfg.layer_norm_epsilon, max_length = cfg.max_length,
           bos_token_id = cfg.bos_token_id, eos_token_id = cfg.eos_token_id, pad_token_id = cfg.pad_token_id,
           family = family_names[cfg.family], intermediate_size = cfg.intermediate_size,
           type_vocab_size = cfg.type_vocab_size, gelu_exact = cfg.gelu_exact ~= 0 }
end

-- A named shape (bloom-560m ... bloom-7b1, tiny-xs ... tiny-l) or a table of config fields.
function M.config(name_or_table)
  local cfg = ffi.new("lacos_bloom_config")
  if type(name_or_table) == "string" then
    if name_or_table:match("%.json$") then check(C.lacos_bloom_config_read(cfg, name_or_table))
    else check(C.lacos_bloom_config_named(cfg, name_or_table)) end
  elseif type(name_or_table) == "table" then
    local base = name_or_table.base or "tiny-xs"
    check(C.lacos_bloom_config_named(cfg, base))
    for k, v in pairs(name_or_table) do
      if k ~= "base" then
        local ok = pcall(function() return cfg[k] end)
        if not ok then error("unknown model config field '" .. tostring(k) .. "'", 2) end
        if k == "family" then
          v = M.families[v] or error(("unknown model family '%s' (bloom, bert)"):format(tostring(v)), 2)
        elseif k == "gelu_exact" and type(v) == "boolean" then v = v and 1 or 0 end
        cfg[k] = v
      end
    end
    -- a BERT made from a table: the BertConfig defaults for what it leaves out
    if cfg.family == M.families.bert then
      if name_or_table.type_vocab_size == nil then cfg.type_vocab_size = 2 end
      if name_or_table.max_length == nil then cfg.max_length = 512 end
      if name_or_table.intermediate_size == nil then cfg.intermediate_size = 4 * cfg.hidden_size end
      if name_or_table.gelu_exact == nil then cfg.gelu_exact = 1 end
      if name_or_table.layer_norm_epsilon == nil then cfg.layer_norm_epsilon = 1e-12 end
    end
  else
    error("config: expected a model name or a table of fields", 2)
  end
  return cfg
end
function M.config_names()
  local names = {}
  for n in ffi.string(C.lacos_bloom_config_names()):gmatch("[^;]+") do names[#names + 1] = n end
  return names
end
function M.param_count(name_or_table) return C.lacos_bloom_config_params(M.config(name_or_table)) end

-- int8_skip as a list of patterns: nil (none), a string of comma-separated
-- patterns, or a list of strings; an empty list is none. The patterns are
-- the engine's to judge (engine/int8_skip.c): one naming no linear, or an
-- empty one, is an error there, with the model's linear names.
function M.skip_list(v, where)
  if v == nil or v == false then return nil end
  local list = {}
  if type(v) == "string" then
    for p in (v .. ","):gmatch("([^,]*),") do list[#list + 1] = p:match("^%s*(.-)%s*$") end
  elseif type(v) == "table" then
    for i, p in ipairs(v) do
      if type(p) ~= "string" then error(("%s: int8_skip[%d] must be a string, got %s"):format(where, i, type(p)), 3) end
      if p:find(",", 1, true) then error(("%s: int8_skip[%d] '%s' holds a comma: give one pattern an entry"):format(where, i, p), 3) end
      list[i] = p:match("^%s*(.-)%s*$")
    end
    if #list == 0 then return nil end
  else
    error(("%s: int8_skip must be a list of module-name patterns or a comma-separated string, got %s"):format(where, type(v)), 3)
  end
  return list
end

-- The command-line option every command that takes --quant has, and its
-- value as load's int8_skip ("none": explicitly none, false).
function M.int8_skip_option()
  return { "--int8-skip", "LIST", "int8: linears kept in f32, comma-separated module names or their last components " ..
           "(value, layer.0.output.dense; none: no list; default: an --adapter's recorded list)" }
end
function M.skip_arg(s)
  if s == "none" then return false end
  return s
end

local function model_options(opts, where)
  local o = ffi.new("lacos_bloom_options")
  C.lacos_bloom_options_init(o)
  if opts.quant ~= nil then
    local q = M.quants[opts.quant]
    if not q then error(where .. ": quant must be 'f32' or 'int8', got '" .. tostring(opts.quant) .. "'", 3) end
    o.quant = q
  end
  if opts.threshold ~= nil then
    if type(opts.threshold) ~= "number" or opts.threshold < 0 then error(where .. ": threshold must be a number >= 0", 3) end
    o.threshold = opts.threshold
  end
  if opts.device ~= nil then
    local d = T.devices[opts.device]
    if not d then error(where .. ": device must be 'cpu' or 'cuda'", 3) end
    o.device = d
    -- a rank of a job takes its own GPU before the model goes there
    if opts.device == "cuda" then require("lacos.dist").bind_device() end
  end
  if opts.embedding_dtype ~= nil then o.embedding_dtype = T.dtype_of(opts.embedding_dtype) end
  if opts.cache then o.cache = 1 end
  -- the string the struct points to: the caller keeps it alive over the call
  local skip = M.skip_list(opts.int8_skip, where)
  local skip_text = skip and table.concat(skip, ",")
  if skip_text then o.int8_skip = skip_text end
  return o, skip, skip_text
end

local function wrap(ptr, fields)
  local self = setmetatable(fields or {}, Model)
  self.ptr = ffi.gc(ptr, C.lacos_bloom_free)
  return self
end

local function read_json(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return require("lacos.json").decode(s, path)
end

-- config.json's model_type, or nil without a readable one.
local function model_type(dir)
  local ok, cfg = pcall(read_json, dir .. "/config.json")
  return ok and type(cfg) == "table" and cfg.model_type or nil
end

-- A sentence-transformers (or plain BERT) directory as sentence-transformers
-- reads it (lacos.sentence_transformers.describe), refusing what lacos does
-- not run; nil for a directory that is neither (a BLOOM checkpoint).
local function describe(dir)
  local f = io.open(dir .. "/modules.json", "rb")
  if f then f:close() end
  if not (f or model_type(dir) == "bert") then return nil end
  local st = require("lacos.sentence_transformers").describe(dir)
  if #st.pooling_modes ~= 1 then
    error(("%s: the pooling concatenates %d modes (%s); lacos pools with one"):format(dir, #st.pooling_modes,
      table.concat(st.pooling_modes, ", ")), 0)
  end
  if st.modules[1].path ~= "" then
    error(("%s: the Transformer module lives in %s/; lacos loads a model whose weights are in the directory itself")
      :format(dir, st.modules[1].path), 0)
  end
  return st
end

-- The pooling a checkpoint directory embeds with when nothing overrides it
-- (what Model:pooling() of the loaded model says), without loading weights:
-- lacos.json's, a sentence-transformers directory's, else weightedmean.
function M.dir_pooling(dir)
  dir = dir:gsub("(.)/+$", "%1")
  local meta = read_json(dir .. "/lacos.json") or {}
  local st = describe(dir)
  return meta.pooling or (st and st.pooling) or "weightedmean"
end

-- Loads a checkpoint directory: config.json, weights, tokenizer.json, and
-- lacos.json (pooling and padding side) when lacos wrote it. A BERT
-- directory (a sentence-transformers one, or a plain BertModel) is read as
-- sentence-transformers reads it (lacos.sentence_transformers.describe):
-- its pooling, normalisation, maximum length and lowercasing hold for
-- encode; modules sentence-transformers would run that lacos does not are
-- refused by name. A BERT embeds every token with token type 0, as
-- sentence-transformers' tokenizer types every token of a single text
-- (engine/bert.c; pairs are not encoded).
function M.load(dir, opts)
  opts = util.options(opts, { quant = "int8", threshold = 0.0, device = "cpu", tokenizer = util.ANY,
                              pooling = util.ANY, adapter = util.ANY, cache = false, int8_skip = util.ANY },
                      "lacos.bloom.load")
  if type(dir) ~= "string" then error("load: expected a model directory, got " .. type(dir), 2) end
  dir = dir:gsub("(.)/+$", "%1")
  local st = describe(dir)
  -- an adapter trained over an int8 base with linears kept in f32 runs over
  -- the same formats unless the caller says otherwise (int8_skip = false: none)
  if opts.int8_skip == nil and opts.adapter and (opts.quant or "int8") == "int8" then
    local meta = read_json(opts.adapter .. "/lacos.json")
    if meta and meta.quant == "int8" and type(meta.int8_skip) == "table" then opts.int8_skip = meta.int8_skip end
  end
  local o, skip, skip_text = model_options(opts, "lacos.bloom.load")
  local out = ffi.new("lacos_bloom*[1]")
  check(C.lacos_bloom_load(out, dir, o))
  local self = wrap(out[0], { dir = dir, quant = opts.quant, threshold = opts.threshold, device = opts.device, st = st,
                              int8_skip = skip, int8_skip_text = skip_text })
  self.meta = read_json(dir .. "/lacos.json") or {}
  local tok = opts.tokenizer or (st and st.tokenizer) or (dir .. "/tokenizer.json")
  local f = io.open(tok, "rb")
  if f then f:close(); self.tokenizer = require("lacos.tokenizer").load(tok); self.tokenizer_path = tok end
  if opts.adapter then self:load_lora(opts.adapter) end
  if opts.pooling then self.pooling_override = opts.pooling end
  return self
end

-- Random weights in the exact shape of a named model or a config table;
-- quant = "int8" generates straight into int8.
function M.random(name_or_config, opts)
  opts = util.options(opts, { seed = 0, quant = "int8", threshold = 0.0, device = "cpu", embedding_dtype = "f16",
                              tokenizer = util.ANY, int8_skip = util.ANY }, "lacos.bloom.random")
  local cfg = M.config(name_or_config)
  local o, skip, skip_text = model_options(opts, "lacos.bloom.random")
  local out = ffi.new("lacos_bloom*[1]")
  check(C.lacos_bloom_random(out, cfg, opts.seed, o))
  local self = wrap(out[0], { quant = opts.quant, threshold = opts.threshold, meta = {}, device = opts.device,
                              name = type(name_or_config) == "string" and name_or_config or nil, seed = opts.seed,
                              int8_skip = skip, int8_skip_text = skip_text })
  if opts.tokenizer then
    self.tokenizer = type(opts.tokenizer) == "string" and require("lacos.tokenizer").load(opts.tokenizer) or opts.tokenizer
    if type(opts.tokenizer) == "string" then self.tokenizer_path = opts.tokenizer end
  end
  return self
end

function Model:config()
  local cfg = ffi.new("lacos_bloom_config")
  check(C.lacos_bloom_get_config(self.ptr, cfg))
  return config_table(cfg)
end
function Model:weight_bytes() return C.lacos_bloom_weight_bytes(self.ptr) end
-- The engine's linears with the format each holds: { {name =, quant = "int8"|"f32"}, ... },
-- block by block (BERT's fused query, key and value: one entry, "encoder.layer.N.attention.self").
function Model:linears()
  local list = {}
  for i = 0, C.lacos_bloom_linear_count(self.ptr) - 1 do
    list[#list + 1] = { name = ffi.string(C.lacos_bloom_linear_name(self.ptr, i)),
                        quant = C.lacos_bloom_linear_quant(self.ptr, i) == C.LACOS_QUANT_F32 and "f32" or "int8" }
  end
  return list
end
-- How the weights are held, in one word for results and provenance: "f32",
-- "int8", or with a skip list "int8 int8_skip=p1,p2" (the patterns as given).
function M.quant_label(quant, skip)
  if skip and #skip > 0 then return ("%s int8_skip=%s"):format(quant, table.concat(skip, ",")) end
  return quant
end
function Model:quantisation() return M.quant_label(self.quant, self.int8_skip) end
-- "bloom" or "bert"
function Model:family() return self:config().family end
function Model:free()
  if self.ptr ~= nil then C.lacos_bloom_free(ffi.gc(self.ptr, nil)) end
  self.ptr = nil
end

-- The recorded pooling (lacos.json), the sentence-transformers directory's,
-- or the default for BLOOM: weightedmean.
function Model:pooling()
  return self.pooling_override or self.meta.pooling or (self.st and self.st.pooling) or "weightedmean"
end
function Model:padding_side() return self.meta.padding_side or "right" end
-- Whether encode returns unit vectors (a Normalize module, or lacos.json's normalize).
function Model:normalizes()
  if self.meta.normalize ~= nil then return self.meta.normalize == true end
  return self.st ~= nil and self.st.normalize == true
end

local function check_pooling(self, requested)
  local recorded = self.meta.pooling
  local p = requested or self:pooling()
  if M.poolings[p] == nil then
    error(("unknown pooling '%s' (%s)"):format(tostring(p), table.concat(M.pooling_list, ", ")), 3)
  end
  if recorded and requested and requested ~= recorded and not self.allow_pooling_change then
    error(("this model was trained with pooling '%s'; asked for '%s' (pass force = true to override)"):format(recorded, requested), 3)
  end
  return p
end

-- ---------------------------------------------------------------- LLM.int8 outliers

M.linear_names = { "query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h" }   -- the engine's order
local counts_buf = ffi.new("int[4]")

-- The engine's counts for its last forward pass, one table per layer.
local function engine_outliers(self)
  local out = {}
  for l = 1, self:config().n_layer do
    check(C.lacos_bloom_outliers(self.ptr, l - 1, counts_buf))
    local row = {}
    for k, name in ipairs(M.linear_names) do row[name] = counts_buf[k - 1] end
    out[l] = row
  end
  return out
end

-- LLM.int8 outlier feature columns (a column with any |x| >= threshold,
-- multiplied in f32) per layer and linear:
--   { {query_key_value = n, dense = n, dense_h_to_4h = n, dense_4h_to_h = n}, ... }   -- layer 1 first
-- After encode, the largest count any of its batches saw (the engine keeps
-- only the last forward pass's, and encode runs one per batch); after
-- forward, encode_ids or forward_train, that pass's. All 0 with threshold 0
-- or an f32 model.
function Model:outliers()
  if not self.encode_outliers then return engine_outliers(self) end
  local copy = {}
  for l, row in ipairs(self.encode_outliers) do
    copy[l] = {}
    for k, v in pairs(row) do copy[l][k] = v end
  end
  return copy
end

-- Hidden states for token ids: (B,T,C), or with all_layers (L+1,B,T,C).
function Model:forward(ids, mask, opts)
  opts = util.options(opts, { all_layers = false }, "forward")
  self.encode_outliers = nil
  return T.make(C.lacos_bloom_forward, self.ptr, ids.t, mask.t, opts.all_layers and 1 or 0)
end

function Model:encode_ids(ids, mask, opts)
  opts = util.options(opts, { pooling = util.ANY, force = false }, "encode_ids")
  if opts.force then self.allow_pooling_change = true end
  local p = check_pooling(self, opts.pooling)
  self.allow_pooling_change = nil
  self.encode_outliers = nil
  return T.make(C.lacos_bloom_encode, self.ptr, ids.t, mask.t, M.poolings[p])
end

-- Tokenizes a batch of sentences into (ids, mask) with the model's padding side.
-- Sentences longer than the model accepts are an error naming the
-- sentence (its 1-based index in `sentences`, or opts.indices[i]) unless
-- truncation is on.
function Model:tokenize(sentences, opts)
  if not self.tokenizer then
    -- a checkpoint directory without one is a problem with the files, named as such (no Lua position)
    if self.dir then error(("%s: no tokenizer.json in the model directory (copy the model's tokenizer.json there)"):format(self.dir), 0) end
    error("this model has no tokenizer (load one with {tokenizer = path})", 3)
  end
  opts = opts or {}
  local eo = { padding_side = opts.padding_side or self:padding_side(), max_length = opts.max_length,
               truncation = opts.truncation }
  if self.st then
    -- sentence-transformers' call: cut on the right at max_seq_length, pad to the longest
    eo = {}
    for k, v in pairs(self.st.encode_options) do eo[k] = v end
    if opts.max_length then eo.max_length = math.min(opts.max_length, eo.max_length) end
    if self.st.do_lower_case then
      local low = {}
      for i, s in ipairs(sentences) do low[i] = M.lower(s) end
      sentences = low
    end
  end
  local ids, mask = self.tokenizer:encode_batch(sentences, eo)
  local limit = self:config().max_length
  if ids:size(2) > limit then
    local mp = mask:data_ptr()
    local T = ids:size(2)
    for i = 1, #sentences do
      local n = 0
      for t = 0, T - 1 do n = n + mp[(i - 1) * T + t] end
      if n > limit then
        ids:free(); mask:free()
        error(("sentence %d has %d tokens, more than the model's limit of %d (truncate with max_length / --max-length)")
          :format(opts.indices and opts.indices[i] or i, n, limit), 0)
      end
    end
  end
  return ids, mask
end

-- Unicode lowercase (engine: utf8proc's simple case mapping), for do_lower_case.
function M.lower(s)
  local cap = 2 * #s + 4
  local buf, n = ffi.new("char[?]", cap), ffi.new("double[1]")
  check(C.lacos_text_lower(s, #s, buf, cap, n))
  return ffi.string(buf, n[0])
end

-- Each row of an (n, C) f32 tensor scaled to unit length (sentence-transformers'
-- Normalize: x / max(‖x‖, 1e-12)), in place.
local function normalize_rows(t)
  local n, c = t:size(1), t:size(2)
  local p = ffi.cast("float*", t.t.data)
  for i = 0, n - 1 do
    local s = 0
    for k = 0, c - 1 do local v = p[i * c + k]; s = s + v * v end
    local inv = 1 / math.max(math.sqrt(s), 1e-12)
    for k = 0, c - 1 do p[i * c + k] = p[i * c + k] * inv end
  end
end
M.normalize_rows = normalize_rows

-- How many tokens of every text a prompt takes for the pooling to leave
-- out, as sentence-transformers measures it: the prompt tokenized alone,
-- special tokens and all, less a trailing special token ([SEP]); so with
-- BERT's template [CLS] and the prompt's tokens. (The text's own tokens
-- are counted from there even where the prompt and the text join into
-- another tokenization: sentence-transformers does the same.)
function Model:prompt_length(prompt)
  local ids, mask = self:tokenize({ prompt }, { max_length = nil })
  local n, ip, mp = 0, ids:data_ptr(), mask:data_ptr()
  local last
  for t = 0, ids:size(2) - 1 do
    if mp[t] ~= 0 then n = n + 1; last = ip[t] end
  end
  ids:free(); mask:free()
  if last and self.tokenizer:is_special(last) then n = n - 1 end
  return n
end

-- Embeds sentences (a list of strings) in batches; returns an (n, C) f32 tensor.
-- Sentences are sorted by length within the call so batches pad little,
-- and a repeated sentence is encoded once; the output keeps the input
-- order (progress counts the distinct sentences). A sentence-transformers directory's
-- settings apply: its truncation, lowercasing and (normalize ~= false) its
-- Normalize module. prompt: a text put before every sentence, as
-- sentence-transformers' encode(prompt=...) does; its tokens are pooled
-- with the text's unless include_prompt is false (default: the directory's
-- Pooling config), when they are attended to but left out of the pooling.
function Model:encode(sentences, opts)
  opts = util.options(opts, { pooling = util.ANY, batch = 32, max_length = util.ANY, truncation = false,
                              force = false, progress = util.ANY, normalize = util.ANY, prompt = util.ANY,
                              include_prompt = util.ANY }, "encode")
  if type(sentences) == "string" then sentences = { sentences } end
  local skip = 0
  if opts.prompt then
    if type(opts.prompt) ~= "string" then error("encode: prompt must be a string", 2) end
    local include = opts.include_prompt
    if include == nil then include = not (self.st and self.st.include_prompt == false) end
    if not include then skip = self:prompt_length(opts.prompt) end
    local with = {}
    for i, s in ipairs(sentences) do with[i] = opts.prompt .. s end
    sentences = with
  end
  if opts.force then self.allow_pooling_change = true end
  local p = check_pooling(self, opts.pooling)
  self.allow_pooling_change = nil
  local n = #sentences
  local C_ = self:config().hidden_size
  self.encode_outliers = nil
  local out = T.empty({ n, C_ }, "f32")
  if n == 0 then return out end
  -- a sentence that comes again is encoded once (STS sets repeat many), at
  -- its first place; the others copy its row
  local first, order = {}, {}
  for i = 1, n do
    local s = sentences[i]
    if not first[s] then first[s] = i; order[#order + 1] = i end
  end
  local unique = #order
  table.sort(order, function(a, b)
    local la, lb = #sentences[a], #sentences[b]
    if la ~= lb then return la < lb end
    return a < b
  end)
  local dst = ffi.cast("float*", out.t.data)
  local seen = nil   -- outlier counts, the largest over the batches
  for start = 1, unique, opts.batch do
    local stop = math.min(unique, start + opts.batch - 1)
    local chunk = {}
    for i = start, stop do chunk[#chunk + 1] = sentences[order[i]] end
    local indices = {}
    for i = start, stop do indices[#indices + 1] = order[i] end
    local ids, mask = self:tokenize(chunk, { max_length = opts.max_length, truncation = opts.truncation,
                                             indices = indices })
    local emb = T.make(C.lacos_bloom_encode_prompt, self.ptr, ids.t, mask.t, M.poolings[p], skip)
    local counts = engine_outliers(self)
    if seen then
      for l, row in ipairs(counts) do
        for k, v in pairs(row) do if v > seen[l][k] then seen[l][k] = v end end
      end
    else seen = counts end
    local src = ffi.cast("float*", emb.t.data)
    for k = 1, #chunk do
      ffi.copy(dst + (order[start + k - 1] - 1) * C_, src + (k - 1) * C_, 4 * C_)
    end
    emb:free(); ids:free(); mask:free()
    if opts.progress then opts.progress(stop, unique) end
    if C.lacos_interrupt_pending() ~= 0 then error("interrupted", 0) end
  end
  if unique < n then
    for i = 1, n do
      local f = first[sentences[i]]
      if f ~= i then ffi.copy(dst + (i - 1) * C_, dst + (f - 1) * C_, 4 * C_) end
    end
  end
  self.encode_outliers = seen
  local norm = opts.normalize
  if norm == nil then norm = self:normalizes() end
  if norm then normalize_rows(out) end
  return out
end

-- ---------------------------------------------------------------- LoRA

function Model:add_lora(opts)
  opts = util.options(opts, { r = 8, alpha = 8.0, dropout = 0.0, targets = util.ANY, rslora = false, seed = 0 },
                      "add_lora")
  local c = ffi.new("lacos_lora_config")
  C.lacos_lora_config_init(c)
  c.r = opts.r
  c.alpha = opts.alpha
  c.dropout = opts.dropout
  c.targets = target_bits(opts.targets, self:family())
  c.use_rslora = opts.rslora and 1 or 0
  c.seed = opts.seed
  check(C.lacos_lora_attach(self.ptr, c))
  self.lora = { r = opts.r, alpha = opts.alpha, dropout = opts.dropout, targets = M.target_names(c.targets, self:family()),
                rslora = opts.rslora }
  return self
end

-- Saves the adapter in PEFT's format (adapter_config.json +
-- adapter_model.safetensors) plus lacos.json (pooling, padding side).
function Model:save_lora(dir, opts)
  opts = opts or {}
  check(C.lacos_lora_save(self.ptr, dir, opts.base_model or self.dir or self.name))
  require("lacos.json").write(dir .. "/lacos.json", {
    pooling = opts.pooling or self:pooling(), padding_side = self:padding_side(), normalize = self:normalizes(),
    base_model = opts.base_model or self.dir or self.name, quant = self.quant, int8_skip = self.int8_skip,
    lacos = require("lacos").version(), trained = opts.trained, init_adapter = opts.init_adapter,
  })
end

-- Attaches an adapter saved by lacos or PEFT; its lacos.json (if any) sets the pooling.
function Model:load_lora(dir)
  check(C.lacos_lora_load(self.ptr, dir))
  local c = ffi.new("lacos_lora_config")
  check(C.lacos_lora_get_config(self.ptr, c))
  self.lora = { r = c.r, alpha = c.alpha, dropout = c.dropout, targets = M.target_names(c.targets, self:family()),
                rslora = c.use_rslora ~= 0 }
  local meta = read_json(dir .. "/lacos.json")
  if meta then
    for _, k in ipairs { "pooling", "padding_side", "normalize" } do if meta[k] ~= nil then self.meta[k] = meta[k] end end
  end
  self.adapter = dir
  return self
end

function Model:remove_lora() check(C.lacos_lora_detach(self.ptr)); self.lora = nil end

-- Merges the adapter into an f32 copy of the adapted base weights (PEFT's
-- W + scaling·B·A). The model itself (int8 or f32) does not change and
-- keeps applying the adapter; m:weight() and m:save() give the merged
-- weights. unmerge_lora() subtracts the delta again. Both return the model.
function Model:merge_lora() check(C.lacos_lora_merge(self.ptr)); return self end
function Model:unmerge_lora() check(C.lacos_lora_unmerge(self.ptr)); return self end
function Model:lora_merged() return C.lacos_lora_merge_state(self.ptr) == 1 end
function Model:lora_enabled(on) check(C.lacos_lora_set_enabled(self.ptr, on and 1 or 0)) end
function Model:lora_params() return C.lacos_lora_param_count(self.ptr) end

-- Trainable tensors (views on the model's LoRA memory) with their gradients,
-- named as PEFT names them.
function Model:trainable()
  local list = {}
  local n = C.lacos_lora_slot_count(self.ptr)
  local layer, target = ffi.new("int[1]"), ffi.new("int[1]")
  for s = 0, n - 1 do
    check(C.lacos_lora_slot_info(self.ptr, s, layer, target))
    local name = C.lacos_lora_module_name(self.ptr, layer[0], target[0])
    if name == nil then error(E.last_error(), 2) end
    local base = ffi.string(name)
    for which, part in ipairs { "lora_A", "lora_B" } do
      list[#list + 1] = {
        name = base .. "." .. part .. ".weight",
        param = T.make(C.lacos_lora_tensor, self.ptr, s, which - 1),
        grad = T.make(C.lacos_lora_tensor, self.ptr, s, which + 1),
        model = self,   -- keeps the model (and the memory the views share) alive
      }
    end
  end
  return list
end
function Model:zero_grad() check(C.lacos_lora_zero_grad(self.ptr)) end

-- ---------------------------------------------------------------- training passes

-- Activation checkpointing for training passes. Once set here it holds for
-- lacos.train calls that do not say (their default follows the model's size).
function Model:set_checkpointing(on)
  check(C.lacos_bloom_set_checkpointing(self.ptr, on and 1 or 0))
  self.checkpointing = on and true or false
end
function Model:set_fast_backward(on) check(C.lacos_bloom_set_fast_backward(self.ptr, on and 1 or 0)) end

-- Forward keeping activations; returns embeddings and a batch handle for
-- backward. keys (a list of whole numbers, one per row; nil: the row
-- index) key the rows' LoRA dropout masks (lacos_bloom_forward_train_rows).
function Model:forward_train(ids, mask, pooling, stream, keys)
  self.encode_outliers = nil
  local b = ffi.new("lacos_bloom_batch*[1]")
  local karr = nil
  if keys then
    karr = ffi.new("int64_t[?]", math.max(#keys, 1))
    for i, k in ipairs(keys) do karr[i - 1] = k end
  end
  local emb = T.make(C.lacos_bloom_forward_train_rows, b, self.ptr, ids.t, mask.t, M.poolings[pooling], stream or 0, karr)
  local batch = ffi.gc(b[0], C.lacos_bloom_batch_free)
  return emb, batch
end
function Model:backward(batch, d_emb)
  check(C.lacos_bloom_backward(self.ptr, batch, d_emb.t))
  C.lacos_bloom_batch_free(ffi.gc(batch, nil))
end

function Model:weight(name) return T.make(C.lacos_bloom_weight, self.ptr, name) end


local exists = util.exists

-- Writes the model as a Hugging Face BLOOM checkpoint into dir, an empty
-- directory the caller made (Model:save and lacos.export build theirs under
-- a temporary name): config.json (the source checkpoint's, with its dtype
-- set), model.safetensors (or shards past shard_size bytes) in dtype f32,
-- f16 or bf16 under the names of bloom_layout.c, the tokenizer files when
-- the model has them, and lacos.json (pooling, padding side, what was
-- merged). A model with a LoRA adapter writes merged (merge_lora() first);
-- an int8 model writes its dequantised weights.
local save_dtypes = { f32 = true, f16 = true, bf16 = true }
local function check_savable(self, dtype)
  if not save_dtypes[dtype] then error(("save: dtype must be f32, f16 or bf16, got '%s'"):format(tostring(dtype)), 3) end
  if self.lora and not self:lora_merged() then
    error("save: the model has a LoRA adapter that is not merged; call merge_lora() first (or remove_lora() to save the base alone)", 3)
  end
end
-- BertModel's pooler (a tanh dense layer over [CLS], for next-sentence
-- prediction) is in most BERT checkpoints but no sentence embedding uses it,
-- so the engine does not hold it. A BERT checkpoint written from a source
-- that has one carries it over unchanged (in the written dtype), so that
-- transformers finds every weight it expects and initialises none at random.
local pooler_names = { "pooler.dense.weight", "pooler.dense.bias" }
local function carry_pooler(self, dir, dtype, shard_size)
  if not self.dir then return end
  local S = require "lacos.safetensors"
  local ok, src = pcall(S.open, self.dir)
  if not ok then return end
  local extra = {}
  for _, n in ipairs(pooler_names) do
    local name = src:has(n) and n or (src:has("bert." .. n) and "bert." .. n)
    if name then extra[#extra + 1] = { n, src:get(name):to(dtype) } end
  end
  src:free()
  if #extra == 0 then return end
  if #extra ~= #pooler_names then
    error(("%s: the checkpoint has %s but not the rest of the pooler (%s)"):format(self.dir, extra[1][1],
      table.concat(pooler_names, ", ")), 0)
  end
  -- the engine's files are read back (mapped) and written again with the
  -- pooler among them, sharded as before
  local out = S.open(dir)
  local list = {}
  for _, n in ipairs(out:names()) do list[#list + 1] = { n, out:get(n) } end
  out:free()
  for _, p in ipairs(extra) do list[#list + 1] = p end
  local names, err = util.listdir(dir)
  if not names then error(err, 0) end
  for _, f in ipairs(names) do
    if f:match("^model.*%.safetensors$") or f == "model.safetensors.index.json" then os.remove(dir .. "/" .. f) end
  end
  S.save_sharded(dir, list, { max_bytes = shard_size > 0 and shard_size or 5e9, metadata = { format = "pt" } })
end

-- The tokenizer files a checkpoint directory may hold beside tokenizer.json
-- (copied byte for byte: transformers' AutoTokenizer reads them).
local tokenizer_files = { "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "added_tokens.json" }

function Model:write_checkpoint(dir, opts)
  opts = util.options(opts, { dtype = "f32", shard_size = 0 }, "write_checkpoint")
  check_savable(self, opts.dtype)
  check(C.lacos_bloom_save(self.ptr, dir, T.dtype_of(opts.dtype), opts.shard_size))
  if self:family() == "bert" then carry_pooler(self, dir, opts.dtype, opts.shard_size) end
  if self.tokenizer_path then util.copy_file(self.tokenizer_path, dir .. "/tokenizer.json") end
  for _, name in ipairs(tokenizer_files) do
    if self.dir and exists(self.dir .. "/" .. name) then util.copy_file(self.dir .. "/" .. name, dir .. "/" .. name) end
  end
  -- a pooling is recorded only when one was (an adapter's, an override): recording the default would refuse others
  local meta = { pooling = self.pooling_override or self.meta.pooling, padding_side = self:padding_side(),
                 normalize = self:normalizes(), created_by = "lacos " .. require("lacos").version(), dtype = opts.dtype }
  if self.quant == "int8" then meta.dequantised_from = "int8" end
  if self.lora then
    meta.merged = { base = self.dir or self.name, adapter = self.adapter, base_quant = self:quantisation(), r = self.lora.r,
                    alpha = self.lora.alpha, rslora = self.lora.rslora, targets = self.lora.targets }
  end
  require("lacos.json").write(dir .. "/lacos.json", meta)
end

-- Saves the model as a checkpoint directory (write_checkpoint) that
-- transformers' BloomModel.from_pretrained loads. The directory is written
-- under a temporary name and renamed into place; an existing non-empty one
-- is refused unless force = true (then replaced whole).
function Model:save(dir, opts)
  opts = util.options(opts, { dtype = "f32", shard_size = 0, force = false }, "save")
  if type(dir) ~= "string" or dir == "" then error("save: expected a directory path", 2) end
  check_savable(self, opts.dtype)
  return util.build_dir(dir, opts.force, function(tmp)
    self:write_checkpoint(tmp, { dtype = opts.dtype, shard_size = opts.shard_size })
  end, "force = true")
end

-- How this model embeds, for lacos.export (each model family answers the
-- same questions): the network's Hugging Face model_type and class, the pooling and
-- the poolings the family has (pooling_recorded: the one the model or its
-- adapter was trained with, when recorded), the padding side, normalisation, the
-- longest input the network takes (max_length) and the one it embeds by
-- default (max_seq_length), lower-casing, the width, the token that pads,
-- whether prompt tokens are pooled (include_prompt), and whether the
-- source's tokenizer_config.json is kept as it is. (encode never normalises
-- a BLOOM embedding; the cosine does that downstream.)
function Model:embedding_spec()
  local cfg = self:config()
  local pad
  if self.tokenizer and cfg.pad_token_id >= 0 and cfg.pad_token_id < self.tokenizer:vocab_size() then
    pad = self.tokenizer:id_to_token(cfg.pad_token_id)
  end
  local spec = { family = "bloom", model_type = "bloom", architecture = "BloomModel", pooling = self:pooling(),
           pooling_recorded = self.meta.pooling, poolings = { unpack(M.pooling_list) },
           padding_side = self:padding_side(), normalize = false, max_length = cfg.max_length,
           max_seq_length = cfg.max_length, do_lower_case = false, hidden_size = cfg.hidden_size, pad_token = pad,
           include_prompt = true, base = self.dir or self.name, adapter = self.adapter, lora = self.lora,
           quant = self:quantisation(), tokenizer_path = self.tokenizer_path, dir = self.dir }
  if self:family() == "bert" then
    -- a BertModel as sentence-transformers ran it: the source directory's
    -- length, lower-casing, prompts and tokenizer config (its WordPiece
    -- special tokens), right padding as BERT's position ids assume
    local st = self.st or {}
    spec.family, spec.model_type, spec.architecture = "bert", "bert", "BertModel"
    spec.normalize, spec.padding_side = self:normalizes(), "right"
    spec.max_seq_length = st.max_length or cfg.max_length
    spec.do_lower_case = st.do_lower_case or false
    spec.include_prompt = st.include_prompt ~= false
    spec.prompts, spec.default_prompt_name, spec.similarity = st.prompts, st.default_prompt_name, st.similarity
    spec.keep_tokenizer_config = true
    if self.tokenizer then
      spec.special_tokens = {}
      for key, tok in pairs { unk_token = "[UNK]", sep_token = "[SEP]", cls_token = "[CLS]", mask_token = "[MASK]" } do
        if self.tokenizer:token_to_id(tok) then spec.special_tokens[key] = tok end
      end
    end
  end
  return spec
end
function Model:weight_names()
  local names = {}
  for i = 0, C.lacos_bloom_weight_count(self.ptr) - 1 do names[#names + 1] = ffi.string(C.lacos_bloom_weight_name(self.ptr, i)) end
  return names
end

function M.pooling_name(id) return pooling_names[id] end

-- What a model is, in one line (the REPL prints this, not its fields):
-- lacos.bloom tiny-xs (random weights): 2.2M parameters (hidden 64, 2 layers, 2 heads), int8 on cpu,
-- tokenizer 32,768 ids, weightedmean pooling, LoRA r 8 alpha 16 on query_key_value (8,192 trainable)
function Model:__tostring()
  if self.ptr == nil then return "lacos model (freed)" end
  local cfg = self:config()
  local what = self.dir or self.name or "model"
  local kind = self.dir and "" or " (random weights)"
  local parts = { ("lacos.%s %s%s: %s parameters (hidden %d, %d layers, %d heads)"):format(cfg.family, what, kind,
    util.params(M.param_count(cfg)), cfg.hidden_size, cfg.n_layer, cfg.n_head) }
  local f32 = ""
  if self.int8_skip then
    local n, all = 0, self:linears()
    for _, l in ipairs(all) do if l.quant == "f32" then n = n + 1 end end
    f32 = (" with %d of %d linears in f32 (int8_skip %s)"):format(n, #all, table.concat(self.int8_skip, ","))
  end
  parts[#parts + 1] = ("%s%s%s on %s"):format(self.quant or "?", f32,
    (self.threshold or 0) > 0 and (" (outlier threshold %g)"):format(self.threshold) or "", self.device or "cpu")
  parts[#parts + 1] = self.tokenizer and ("tokenizer %s ids"):format(util.thousands(self.tokenizer:vocab_size())) or "no tokenizer"
  parts[#parts + 1] = self:pooling() .. " pooling" .. (self.meta and self.meta.pooling and " (recorded)" or "")
  if self.lora then
    local l = self.lora
    parts[#parts + 1] = ("LoRA r %d alpha %g on %s (%s trainable)%s"):format(l.r, l.alpha, table.concat(l.targets or {}, ","),
      util.thousands(self:lora_params()), self.adapter and (" from " .. self.adapter) or "")
  end
  return table.concat(parts, ", ")
end

return M
