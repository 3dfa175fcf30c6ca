-- lacos.sentence_transformers: reads a sentence-transformers directory (or a
-- plain Hugging Face model directory) the way SentenceTransformer(dir) does,
-- and describes how it embeds: which files hold the network and the
-- tokenizer, the pooling, normalisation and the maximum length. Model
-- loaders use the description; nothing is loaded here.
--
--   local st = require "lacos.sentence_transformers"
--   local d = st.describe("models/all-MiniLM-L6-v2")
--   d.pooling, d.normalize, d.max_length, d.model_type   --> "mean", true, 256, "bert"
--
-- What it follows (sentence-transformers 6; the older names load the same):
-- - modules.json: a list of {idx, name, path, type}; lacos runs the modules
--   Transformer (first), Pooling (one) and Normalize (a Normalize before
--   the Pooling does nothing: what it normalises does not exist yet).
--   A type is known by its class name under sentence_transformers. (the old
--   sentence_transformers.models.Pooling, the new
--   sentence_transformers.sentence_transformer.modules.pooling.Pooling, ...);
--   any other module (Dense, LayerNorm, a custom class) is refused by name.
--   Paths stay inside the directory.
-- - the Transformer's folder (path "" = the directory itself): config.json,
--   tokenizer.json, and sentence_bert_config.json (or the legacy
--   sentence_<model>_config.json names): max_seq_length, do_lower_case,
--   processor_kwargs.model_max_length (sentence-transformers 6's way of
--   saving the length), transformer_task (feature-extraction only).
-- - the Pooling folder's config.json: pooling_mode (a mode or a list) or the
--   legacy pooling_mode_*_tokens booleans (in their fixed order; none set =
--   mean), embedding_dimension (or word_embedding_dimension), include_prompt.
-- - config_sentence_transformers.json: model_type (saved_as: a directory
--   saved by a CrossEncoder loads as a SentenceTransformer too), similarity_fn_name, prompts.
-- - without modules.json, a plain model directory (config.json): what
--   sentence-transformers builds for it, Transformer + mean Pooling, no
--   Normalize, the length from tokenizer_config.json's model_max_length
--   capped by max_position_embeddings.
-- The length: max_seq_length when set (sentence-transformers gives it to
-- the tokenizer as model_max_length), else processor_kwargs.model_max_length,
-- else tokenizer_config.json's model_max_length capped by the config's
-- max_position_embeddings, else max_position_embeddings. Texts are cut on
-- the right to that many tokens, [CLS] and [SEP] included, and padded on
-- the side tokenizer_config.json's padding_side names (the right when it
-- names none) to the longest of the batch (the tokenizer call of
-- sentence-transformers' Transformer: padding=True, truncation="longest_first").
-- Errors name the file and the cause.
local json = require "lacos.json"

local M = {}

M.pooling_modes = { cls = true, max = true, mean = true, mean_sqrt_len_tokens = true, weightedmean = true, lasttoken = true }
-- The legacy boolean keys, in the order sentence-transformers concatenates them.
local legacy_modes = {
  { "pooling_mode_cls_token", "cls" }, { "pooling_mode_max_tokens", "max" }, { "pooling_mode_mean_tokens", "mean" },
  { "pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens" }, { "pooling_mode_weightedmean_tokens", "weightedmean" },
  { "pooling_mode_lasttoken", "lasttoken" },
}
local transformer_configs = { "sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
  "sentence_camembert_config.json", "sentence_albert_config.json", "sentence_xlm-roberta_config.json",
  "sentence_xlnet_config.json" }
local known = { Transformer = true, Pooling = true, Normalize = true }

local function fail(path, fmt, ...) error(path .. ": " .. fmt:format(...), 0) end

local util = require "lacos.util"
local is_dir = util.is_dir
-- A regular file (a folder opens with io.open too, so that is no test).
local function exists(path) return util.path_kind(path) == "file" end

-- A JSON object from path; nil when the file is absent.
local function read_object(path, optional)
  if not exists(path) then
    if optional then return nil end
    fail(path, "missing")
  end
  local v = json.read(path)
  if type(v) ~= "table" or (next(v) ~= nil and v[1] ~= nil) or v == json.null then fail(path, "not a JSON object") end
  return v
end

local function join(dir, path) return path == "" and dir or (dir .. "/" .. path) end

local function opt_int(v, path, key, min)
  if v == nil or v == json.null then return nil end
  if type(v) ~= "number" or v ~= math.floor(v) or v < min or v > 2 ^ 31 - 1 then
    fail(path, "%s must be a whole number of at least %d, found %s", key, min, tostring(v))
  end
  return v
end

local function opt_bool(v, path, key, def)
  if v == nil or v == json.null then return def end
  if type(v) ~= "boolean" then fail(path, "%s must be true or false, found %s", key, tostring(v)) end
  return v
end

-- The module kind of a modules.json type: the class name of a
-- sentence_transformers. class lacos runs, or nil.
local function module_kind(type_name)
  if type(type_name) ~= "string" or not type_name:match("^sentence_transformers%.") then return nil end
  local class = type_name:match("([%w_]+)$")
  return known[class] and class or nil
end

local function read_modules(dir)
  local path = dir .. "/modules.json"
  local list = json.read(path)
  if type(list) ~= "table" or list == json.null or (next(list) ~= nil and list[1] == nil) then
    fail(path, "must be a list of modules")
  end
  if #list == 0 then fail(path, "lists no modules") end
  local mods = {}
  for i, m in ipairs(list) do
    if type(m) ~= "table" then fail(path, "module %d must be an object", i) end
    for _, k in ipairs { "name", "path", "type" } do
      if type(m[k]) ~= "string" then fail(path, "module %d: \"%s\" must be a string", i, k) end
    end
    local p = m.path
    if p:sub(1, 1) == "/" or p:find("\\", 1, true) or ("/" .. p .. "/"):find("/%.%./") or p:find("%z") then
      fail(path, "module %d (%s): the path '%s' leaves the directory", i, m.name, p)
    end
    local kind = module_kind(m.type)
    if not kind then
      fail(path, "module %d (%s) has the type \"%s\", which lacos does not run (it runs sentence-transformers' Transformer, " ..
           "Pooling and Normalize)", i, m.name, m.type)
    end
    mods[i] = { name = m.name, path = p, type = m.type, kind = kind }
  end
  -- the Transformer first, one Pooling, Normalize modules anywhere after the Transformer
  local order, n_pool, n_tr = {}, 0, 0
  for i, m in ipairs(mods) do
    order[i] = m.kind
    if m.kind == "Pooling" then n_pool = n_pool + 1 end
    if m.kind == "Transformer" then n_tr = n_tr + 1 end
  end
  if mods[1].kind ~= "Transformer" or n_tr ~= 1 or n_pool ~= 1 then
    fail(path, "the modules are %s; lacos runs one Transformer, then one Pooling (and Normalize modules)",
         table.concat(order, " → "))
  end
  return mods
end

-- Whether the Normalize modules change the sentence embedding. Normalize
-- L2-normalises its module_input_name feature (default sentence_embedding)
-- into module_output_name (default the same) and does nothing when that
-- feature does not exist yet: before the Pooling, the sentence embedding
-- does not exist. Normalising token embeddings before pooling would change
-- the pooling's input; lacos does not run that.
local function normalizes(dir, mods)
  local pooled, out = false, false
  for _, m in ipairs(mods) do
    if m.kind == "Pooling" then pooled = true end
    if m.kind == "Normalize" then
      local cpath = join(dir, m.path) .. "/config.json"
      local c = read_object(cpath, true) or {}
      local input = c.module_input_name
      if input == nil or input == json.null then input = "sentence_embedding" end
      local output = c.module_output_name
      if output == nil or output == json.null then output = input end
      if not pooled and input == "token_embeddings" and output == "token_embeddings" then
        fail(cpath, "this Normalize module normalises the token embeddings before the pooling; lacos does not run that")
      end
      if pooled and input == "sentence_embedding" and output == "sentence_embedding" then out = true end
    end
  end
  return out
end

-- sentence_bert_config.json (or a legacy name) of the Transformer's folder.
local function read_transformer_config(tdir)
  for _, name in ipairs(transformer_configs) do
    local path = tdir .. "/" .. name
    local c = read_object(path, true)
    if c then return c, path end
  end
  return {}, nil
end

local function read_pooling(pdir)
  local path = pdir .. "/config.json"
  local c = read_object(path)
  local modes
  local pm = c.pooling_mode
  if pm ~= nil and pm ~= json.null then
    if type(pm) == "string" then modes = { pm }
    elseif type(pm) == "table" and #pm > 0 then modes = pm
    else fail(path, "pooling_mode must be a mode or a list of modes") end
  else
    modes = {}
    for _, lm in ipairs(legacy_modes) do
      if opt_bool(c[lm[1]], path, lm[1], false) then modes[#modes + 1] = lm[2] end
    end
    if #modes == 0 then modes = { "mean" } end   -- sentence-transformers' default
  end
  for _, m in ipairs(modes) do
    if type(m) ~= "string" or not M.pooling_modes[m] then
      fail(path, "pooling mode '%s' is not one of cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken", tostring(m))
    end
  end
  local dim = c.embedding_dimension
  if dim == nil or dim == json.null then dim = c.word_embedding_dimension end
  dim = opt_int(dim, path, "embedding_dimension", 1)
  if not dim then fail(path, "embedding_dimension (or word_embedding_dimension) is missing") end
  return { modes = modes, dimension = dim, include_prompt = opt_bool(c.include_prompt, path, "include_prompt", true), path = path }
end

-- The Transformer module's folder: network config, tokenizer, length.
local plain

local function read_transformer(d, tdir, st_config)
  local cpath = tdir .. "/config.json"
  local cfg = read_object(cpath)
  if type(cfg.model_type) ~= "string" then fail(cpath, "model_type is missing") end
  d.config_path, d.config, d.model_type = cpath, cfg, cfg.model_type
  d.architectures = type(cfg.architectures) == "table" and cfg.architectures or {}
  local tok = tdir .. "/tokenizer.json"
  if not exists(tok) then
    if exists(tdir .. "/vocab.txt") then
      fail(tok, "missing; lacos reads tokenizer.json (this directory has only vocab.txt, the slow tokenizer's file)")
    end
    fail(tok, "missing")
  end
  d.tokenizer = tok
  local mpe = opt_int(cfg.max_position_embeddings, cpath, "max_position_embeddings", 1)
  local tc_path = tdir .. "/tokenizer_config.json"
  local tc = read_object(tc_path, true) or {}
  -- the tokenizer pads on the side its config names (a decoder's last-token
  -- pooling often pads on the left), on the right by default
  if tc.padding_side ~= nil and tc.padding_side ~= json.null then
    if tc.padding_side ~= "left" and tc.padding_side ~= "right" then
      fail(tc_path, "padding_side must be \"left\" or \"right\", found %s", tostring(tc.padding_side))
    end
    d.padding_side = tc.padding_side
  end
  local tok_max = type(tc.model_max_length) == "number" and tc.model_max_length >= 1 and tc.model_max_length < 1e9 and
                  math.floor(tc.model_max_length) or nil
  local sc, sc_path = st_config or {}, d.transformer_config_path
  local mx = sc_path and opt_int(sc.max_seq_length, sc_path, "max_seq_length", 1)
  local pk = sc_path and sc.processor_kwargs
  if mx then
    d.max_length, d.max_length_from = mx, sc_path .. " max_seq_length"
  elseif type(pk) == "table" and pk.model_max_length ~= nil and pk.model_max_length ~= json.null then
    d.max_length = opt_int(pk.model_max_length, sc_path, "processor_kwargs.model_max_length", 1)
    d.max_length_from = sc_path .. " processor_kwargs.model_max_length"
  elseif tok_max then
    d.max_length = mpe and math.min(tok_max, mpe) or tok_max
    d.max_length_from = tc_path .. " model_max_length" .. (mpe and tok_max > mpe and (", capped by " .. cpath .. " max_position_embeddings") or "")
  elseif mpe then
    d.max_length, d.max_length_from = mpe, cpath .. " max_position_embeddings"
  else
    fail(cpath, "no maximum length: neither max_seq_length, tokenizer_config.json's model_max_length nor max_position_embeddings")
  end
  if mpe and d.max_length > mpe then
    fail(d.max_length_from:match("^(%S+)"), "the maximum length %d is more than the model's max_position_embeddings %d (%s)",
         d.max_length, mpe, cpath)
  end
  d.do_lower_case = sc_path and opt_bool(sc.do_lower_case, sc_path, "do_lower_case", false) or false
  if sc_path and sc.transformer_task ~= nil and sc.transformer_task ~= json.null and sc.transformer_task ~= "feature-extraction" then
    fail(sc_path, "transformer_task is \"%s\"; a sentence embedding model's Transformer does feature-extraction",
         tostring(sc.transformer_task))
  end
  d.hidden_size = opt_int(cfg.hidden_size, cpath, "hidden_size", 1)
  -- the options of lacos.tokenizer's encode_batch that tokenize as sentence-transformers does
  d.encode_options = { max_length = d.max_length, truncation = true, truncation_side = "right",
                       truncation_strategy = "longest_first", pad_length = 0, pad_to_multiple_of = 0,
                       padding_side = d.padding_side, special = true }
end

-- What SentenceTransformer(dir) builds for a plain model directory:
-- Transformer + mean Pooling, no Normalize, no sentence_bert_config.json.
function plain(d, dir)
  d.kind = "transformers"
  d.modules = { { name = "0", path = "", type = "sentence_transformers.models.Transformer", kind = "Transformer" },
                { name = "1", path = "", type = "sentence_transformers.models.Pooling", kind = "Pooling" } }
  read_transformer(d, dir, nil)
  d.pooling_modes, d.include_prompt, d.normalize = { "mean" }, true, false
  d.dimension = d.hidden_size
  d.pooling = "mean"
  return d
end

-- The description of a model directory (see the top of this file for the fields' sources):
--   dir, kind ("sentence-transformers" or "transformers"), modules (name, path, type, kind),
--   model_type, architectures, config (config.json's table), config_path, hidden_size,
--   tokenizer (tokenizer.json's path), max_length, max_length_from, truncation_side "right",
--   padding "longest", padding_side (tokenizer_config.json's, else "right"), do_lower_case,
--   pooling (the mode, or nil when several), pooling_modes, include_prompt, dimension,
--   normalize, similarity ("cosine", "dot", ...), prompts, default_prompt_name,
--   encode_options (for tokenizer:encode_batch: sentence-transformers' truncation and padding),
--   saved_as (config_sentence_transformers.json's model_type, when it has one).
function M.describe(dir)
  if type(dir) ~= "string" then error("describe: expected a directory name, got " .. type(dir), 2) end
  dir = dir:gsub("/+$", "")
  if not is_dir(dir) then fail(dir, "no such directory") end
  local d = { dir = dir, truncation_side = "right", padding = "longest", padding_side = "right", similarity = "cosine" }
  local has_modules = exists(dir .. "/modules.json")
  if not has_modules then
    if not exists(dir .. "/config.json") then
      fail(dir, "neither a sentence-transformers directory (modules.json) nor a model directory (config.json)")
    end
    return plain(d, dir)
  end
  d.kind = "sentence-transformers"
  local cst_path = dir .. "/config_sentence_transformers.json"
  local cst = read_object(cst_path, true)
  if cst and type(cst.model_type) == "string" then d.saved_as = cst.model_type end
  if d.saved_as and d.saved_as ~= "SentenceTransformer" then
    -- saved by a CrossEncoder, SparseEncoder, ...: SentenceTransformer(dir)
    -- converts it, building its default modules as for a plain model
    -- directory and ignoring the saved ones and their settings
    return plain(d, dir)
  end
  if cst then
    if type(cst.similarity_fn_name) == "string" then d.similarity = cst.similarity_fn_name end
    if type(cst.prompts) == "table" then d.prompts = cst.prompts end
    if type(cst.default_prompt_name) == "string" then d.default_prompt_name = cst.default_prompt_name end
  end
  d.modules = read_modules(dir)
  local tdir = join(dir, d.modules[1].path)
  if not is_dir(tdir) then fail(tdir, "the Transformer module's folder is missing") end
  local sc, sc_path = read_transformer_config(tdir)
  d.transformer_config_path = sc_path
  read_transformer(d, tdir, sc)
  local pool_mod
  for _, m in ipairs(d.modules) do if m.kind == "Pooling" then pool_mod = m end end
  local pool = read_pooling(join(dir, pool_mod.path))
  d.pooling_modes, d.include_prompt, d.dimension = pool.modes, pool.include_prompt, pool.dimension
  d.pooling = #pool.modes == 1 and pool.modes[1] or nil
  if d.hidden_size and d.dimension ~= d.hidden_size then
    fail(pool.path, "embedding_dimension %d differs from the model's hidden_size %d (%s)", d.dimension, d.hidden_size, d.config_path)
  end
  d.normalize = normalizes(dir, d.modules)
  return d
end

return M
