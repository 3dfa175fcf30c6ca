-- lacos.sentence_transformers.describe: sentence-transformers directories
-- read as SentenceTransformer(dir) reads them. all-MiniLM-L6-v2 as it is and
-- 28 variants of it (tests/fixtures/minilm/stdir.json: files replaced or
-- deleted, and what sentence-transformers made of each: modules, pooling,
-- include_prompt, normalisation, maximum length, dimension, similarity,
-- do_lower_case, or its error) - skipped without models/all-MiniLM-L6-v2;
-- then broken and unusual directories built from small files here, each
-- refused with the file and the cause.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local st = require "lacos.sentence_transformers"

local minilm = os.getenv("LACOS_MINILM") or (H.root .. "/models/all-MiniLM-L6-v2")
local have_model = io.open(minilm .. "/config.json", "rb") ~= nil
local why = minilm .. " is absent (make models-minilm fetches all-MiniLM-L6-v2)"

local function sh(cmd) local r = os.execute(cmd) return r == 0 or r == true end
local function write(path, v)
  sh(("mkdir -p %q"):format(path:match("^(.*)/[^/]*$")))
  H.write(path, type(v) == "string" and v or json.encode(v))
end

-- A copy of the model directory's small files (describe reads no weights)
-- with a patch applied: {relative path = JSON value or text, or json.null to delete}.
local n_dirs = 0
local function variant(base, patch)
  n_dirs = n_dirs + 1
  local dir = ("%s/stdir-%d"):format(H.tmp, n_dirs)
  sh(("rm -rf %q && mkdir -p %q && cd %q && find . \\( -name '*.json' -o -name '*.txt' \\) -exec cp --parents {} %q \\;")
    :format(dir, dir, base, dir))
  for rel, v in pairs(patch or {}) do
    if v == json.null then os.remove(dir .. "/" .. rel) else write(dir .. "/" .. rel, v) end
  end
  return dir
end

if have_model then
  H.test("all-MiniLM-L6-v2: mean pooling, normalised, 256 tokens, its WordPiece tokenizer", function()
    local d = st.describe(minilm)
    H.eq(d.kind, "sentence-transformers")
    H.eq(d.model_type, "bert")
    H.eq(d.pooling, "mean")
    H.eq(d.normalize, true)
    H.eq(d.max_length, 256)
    H.match(d.max_length_from, "sentence_bert_config.json max_seq_length")
    H.eq(d.dimension, 384)
    H.eq(d.hidden_size, 384)
    H.eq(d.include_prompt, true)
    H.eq(d.similarity, "cosine")
    H.eq(d.do_lower_case, false)
    H.eq(#d.modules, 3)
    H.eq(d.truncation_side, "right")
    H.eq(d.padding, "longest")
    local tok = lacos.tokenizer.load(d.tokenizer)
    H.eq(tok:model_type(), "WordPiece")
    H.eq(tok:special_count(), 2)
  end)

  H.test("all-MiniLM-L6-v2: encode_options tokenize as sentence-transformers does (12 sentences, one cut at 256)", function()
    local d = st.describe(minilm)
    local fx = json.read(H.root .. "/tests/fixtures/minilm/sentences.json")
    local tok = lacos.tokenizer.load(d.tokenizer)
    local ids, mask, types = tok:encode_batch(fx.sentences, d.encode_options)
    H.eq(ids.shape[1], #fx.input_ids)
    H.eq(ids.shape[2], #fx.input_ids[1])
    H.eq(ids.shape[2], 256, "the longest sentence is cut at max_seq_length")
    for i = 1, #fx.input_ids do
      for j = 1, ids.shape[2] do
        if ids[i][j] ~= fx.input_ids[i][j] or mask[i][j] ~= fx.attention_mask[i][j] or types[i][j] ~= fx.token_type_ids[i][j] then
          error(("sentence %d position %d: id %d mask %d type %d, sentence-transformers %d %d %d"):format(i, j, ids[i][j],
            mask[i][j], types[i][j], fx.input_ids[i][j], fx.attention_mask[i][j], fx.token_type_ids[i][j]))
        end
      end
    end
  end)

  H.test("28 directory variants read as sentence-transformers reads them", function()
    local fx = json.read(H.root .. "/tests/fixtures/minilm/stdir.json")
    H.eq(#fx.variants, 28, "variants in the fixture")
    local bad = {}
    for i, v in ipairs(fx.variants) do
      local dir = variant(minilm, v.patch)
      local ok, d = pcall(st.describe, dir)
      local want = v.sentence_transformers
      local problem
      if v.lacos_refuses then
        if ok then problem = "lacos should refuse it (" .. v.lacos_refuses .. ")"
        elseif not tostring(d):find(v.lacos_refuses, 1, true) then problem = "refused, but with: " .. tostring(d) end
      elseif want.error then
        if ok then problem = "sentence-transformers refuses it (" .. want.error .. "), lacos does not" end
      elseif not ok then
        problem = "refused: " .. tostring(d)
      else
        local got = { pooling_modes = table.concat(d.pooling_modes, ","), include_prompt = d.include_prompt,
                      normalize = d.normalize, max_seq_length = d.max_length, dimension = d.dimension * #d.pooling_modes,
                      similarity = d.similarity, do_lower_case = d.do_lower_case }
        local kinds = {}
        for k, m in ipairs(d.modules) do kinds[k] = m.kind end
        got.modules = table.concat(kinds, ",")
        -- normalised: what the embeddings sentence-transformers gave are (a
        -- Normalize module before the Pooling is there but does nothing)
        local unit = true
        for _, e in ipairs(want.embeddings) do
          local s2 = 0
          for _, x in ipairs(e) do s2 = s2 + x * x end
          unit = unit and math.abs(math.sqrt(s2) - 1) < 1e-4
        end
        local exp = { pooling_modes = table.concat(want.pooling_modes, ","), include_prompt = want.include_prompt,
                      normalize = unit, max_seq_length = want.max_seq_length, dimension = want.dimension,
                      similarity = want.similarity, do_lower_case = want.do_lower_case, modules = table.concat(want.modules, ",") }
        for k, e in pairs(exp) do
          if got[k] ~= e then problem = ("%s is %s, sentence-transformers says %s"):format(k, tostring(got[k]), tostring(e)) end
        end
        if not problem and (d.pooling == nil) ~= (#want.pooling_modes > 1) then problem = "pooling should be the single mode" end
      end
      if problem then bad[#bad + 1] = ("variant %d (%s): %s"):format(i, v.label, problem) end
    end
    if #bad > 0 then error(table.concat(bad, "\n")) end
  end)
else
  H.skip_test("all-MiniLM-L6-v2: mean pooling, normalised, 256 tokens, its WordPiece tokenizer", why)
  H.skip_test("all-MiniLM-L6-v2: encode_options tokenize as sentence-transformers does (12 sentences, one cut at 256)", why)
  H.skip_test("28 directory variants read as sentence-transformers reads them", why)
end

-- ---------------------------------------------------------------- small directories

local base = H.tmp .. "/stdir-base"
local CONFIG = { model_type = "bert", architectures = { "BertModel" }, hidden_size = 32, max_position_embeddings = 64,
                 num_hidden_layers = 2, num_attention_heads = 4, intermediate_size = 64, vocab_size = 6000 }
write(base .. "/config.json", CONFIG)
sh(("cp %q %q"):format(H.root .. "/tests/fixtures/wordpiece/wp-small.json", base .. "/tokenizer.json"))
write(base .. "/modules.json", {
  { idx = 0, name = "0", path = "", type = "sentence_transformers.models.Transformer" },
  { idx = 1, name = "1", path = "1_Pooling", type = "sentence_transformers.models.Pooling" },
  { idx = 2, name = "2", path = "2_Normalize", type = "sentence_transformers.models.Normalize" } })
write(base .. "/1_Pooling/config.json", { word_embedding_dimension = 32, pooling_mode_mean_tokens = true })
write(base .. "/sentence_bert_config.json", { max_seq_length = 48, do_lower_case = true })

H.test("a small directory: the description and where each value comes from", function()
  local d = st.describe(base .. "/")
  H.eq(d.dir, base)
  H.eq(d.pooling, "mean")
  H.eq(d.max_length, 48)
  H.eq(d.do_lower_case, true)
  H.eq(d.tokenizer, base .. "/tokenizer.json")
  H.eq(d.config.num_hidden_layers, 2)
  H.eq(d.saved_as, nil)
  H.eq(st.describe(variant(base, { ["config_sentence_transformers.json"] = { model_type = "CrossEncoder" } })).saved_as, "CrossEncoder")
  -- the length falls back to tokenizer_config.json, capped by the positions
  local v = variant(base, { ["sentence_bert_config.json"] = json.null, ["tokenizer_config.json"] = { model_max_length = 1e30 } })
  d = st.describe(v)
  H.eq(d.max_length, 64)
  H.match(d.max_length_from, "config.json max_position_embeddings")
  v = variant(base, { ["sentence_bert_config.json"] = json.null, ["tokenizer_config.json"] = { model_max_length = 40 } })
  H.eq(st.describe(v).max_length, 40)
  -- an old layout: the Transformer in its own folder
  v = H.tmp .. "/stdir-old"
  sh(("rm -rf %q && mkdir -p %q/0_BERT %q/1_Pooling"):format(v, v, v))
  sh(("cp %q/config.json %q/tokenizer.json %q/sentence_bert_config.json %q/0_BERT/"):format(base, base, base, v))
  sh(("cp %q/1_Pooling/config.json %q/1_Pooling/"):format(base, v))
  write(v .. "/modules.json", { { idx = 0, name = "0", path = "0_BERT", type = "sentence_transformers.models.BERT" } })
  H.raises('has the type "sentence_transformers.models.BERT", which lacos does not run', st.describe, v)
  write(v .. "/modules.json", { { idx = 0, name = "0", path = "0_BERT", type = "sentence_transformers.models.Transformer" },
                                { idx = 1, name = "1", path = "1_Pooling", type = "sentence_transformers.models.Pooling" } })
  d = st.describe(v)
  H.eq(d.tokenizer, v .. "/0_BERT/tokenizer.json")
  H.eq(d.normalize, false)
  -- a plain model directory
  v = variant(base, { ["modules.json"] = json.null, ["1_Pooling/config.json"] = json.null })
  d = st.describe(v)
  H.eq(d.kind, "transformers")
  H.eq(d.pooling, "mean")
  H.eq(d.normalize, false)
  H.eq(d.dimension, 32)
  H.eq(d.max_length, 64)
end)

H.test("broken directories are refused with the file and the cause", function()
  local cases = {
    { nil, "no such directory", H.tmp .. "/no-such-dir" },
    { { ["modules.json"] = json.null, ["config.json"] = json.null }, "neither a sentence-transformers directory (modules.json) nor a model directory" },
    { { ["modules.json"] = '[{"idx": 0,' }, "modules.json:1: invalid JSON" },
    { { ["modules.json"] = { a = 1 } }, "modules.json: must be a list of modules" },
    { { ["modules.json"] = {} }, "modules.json: lists no modules" },
    { { ["modules.json"] = { { name = "0", path = "" } } }, 'modules.json: module 1: "type" must be a string' },
    { { ["modules.json"] = { { name = "0", path = "../../etc", type = "sentence_transformers.models.Transformer" } } },
      "modules.json: module 1 (0): the path '../../etc' leaves the directory" },
    { { ["modules.json"] = { { name = "0", path = "/etc", type = "sentence_transformers.models.Transformer" } } }, "leaves the directory" },
    { { ["modules.json"] = { { name = "0", path = "", type = "sentence_transformers.models.Transformer" },
                             { name = "1", path = "1_Pooling", type = "sentence_transformers.models.Pooling" },
                             { name = "2", path = "2_Dense", type = "sentence_transformers.models.Dense" } } },
      'module 3 (2) has the type "sentence_transformers.models.Dense", which lacos does not run' },
    { { ["modules.json"] = { { name = "0", path = "", type = "sentence_transformers.models.Transformer" },
                             { name = "1", path = "1_Pooling", type = "custom.Pooling" } } }, 'has the type "custom.Pooling"' },
    { { ["modules.json"] = { { name = "0", path = "", type = "sentence_transformers.models.Transformer" } } },
      "the modules are Transformer; lacos runs one Transformer, then one Pooling" },
    { { ["modules.json"] = { { name = "0", path = "", type = "sentence_transformers.models.Transformer" },
                             { name = "1", path = "", type = "sentence_transformers.models.Transformer" },
                             { name = "2", path = "1_Pooling", type = "sentence_transformers.models.Pooling" } } },
      "the modules are Transformer → Transformer → Pooling" },
    { { ["1_Pooling/config.json"] = json.null }, "1_Pooling/config.json: missing" },
    { { ["2_Normalize/config.json"] = { module_input_name = "token_embeddings" },
        ["modules.json"] = { { name = "0", path = "", type = "sentence_transformers.models.Transformer" },
                             { name = "1", path = "2_Normalize", type = "sentence_transformers.models.Normalize" },
                             { name = "2", path = "1_Pooling", type = "sentence_transformers.models.Pooling" } } },
      "2_Normalize/config.json: this Normalize module normalises the token embeddings before the pooling" },
    { { ["1_Pooling/config.json"] = "{oops" }, "1_Pooling/config.json:1: invalid JSON" },
    { { ["1_Pooling/config.json"] = { word_embedding_dimension = 32, pooling_mode = 7 } }, "pooling_mode must be a mode or a list" },
    { { ["1_Pooling/config.json"] = { word_embedding_dimension = 32, pooling_mode = "median" } },
      "pooling mode 'median' is not one of cls, max, mean" },
    { { ["1_Pooling/config.json"] = { pooling_mode = "mean" } }, "embedding_dimension (or word_embedding_dimension) is missing" },
    { { ["1_Pooling/config.json"] = { embedding_dimension = 32, include_prompt = "no" } }, "include_prompt must be true or false" },
    { { ["1_Pooling/config.json"] = { embedding_dimension = 64 } }, "embedding_dimension 64 differs from the model's hidden_size 32" },
    { { ["sentence_bert_config.json"] = "[" }, "sentence_bert_config.json:1: invalid JSON" },
    { { ["sentence_bert_config.json"] = { max_seq_length = -3 } }, "max_seq_length must be a whole number of at least 1, found -3" },
    { { ["sentence_bert_config.json"] = { max_seq_length = "long" } }, "max_seq_length must be a whole number" },
    { { ["sentence_bert_config.json"] = { max_seq_length = 100 } }, "the maximum length 100 is more than the model's max_position_embeddings 64" },
    { { ["sentence_bert_config.json"] = { transformer_task = "text-generation" } }, 'transformer_task is "text-generation"' },
    { { ["sentence_bert_config.json"] = { do_lower_case = "yes" } }, "do_lower_case must be true or false" },
    { { ["config.json"] = json.null }, "config.json: missing" },
    { { ["config.json"] = { hidden_size = 32 } }, "config.json: model_type is missing" },
    { { ["tokenizer.json"] = json.null, ["vocab.txt"] = "[PAD]\n[UNK]\n" }, "tokenizer.json: missing; lacos reads tokenizer.json (this directory has only vocab.txt" },
    { { ["tokenizer.json"] = json.null }, "tokenizer.json: missing" },
  }
  for i, c in ipairs(cases) do
    local dir = c[3] or variant(base, c[1])
    local ok, err = pcall(st.describe, dir)
    if ok then error(("case %d (%s): describe did not refuse it"):format(i, c[2])) end
    err = tostring(err)
    if not err:find(c[2], 1, true) then error(("case %d: expected %q in %q"):format(i, c[2], err)) end
    if not err:find(dir, 1, true) then error(("case %d: the message does not name the directory: %s"):format(i, err)) end
  end
  H.raises("describe: expected a directory name", st.describe, 42)
end)

H.done()
