-- test_bertexport: BERT-family models exported as sentence-transformers
-- directories (lacos model export, lacos.export with the bert family).
-- - a tiny random BERT (lacos model random over a BertModel config.json,
--   the WordPiece fixture tokenizer; no real model needed): the file holds
--   transformers' BertModel names with query, key and value split back out
--   of the engine's fused [Q;K;V] bit for bit; lacos loads each export back
--   and embeds as the source; each pooling mode (mean, cls, max,
--   mean_sqrt_len_tokens, weightedmean, lasttoken), a trained LoRA adapter
--   merged in, and an int8-held model (exported dequantised, with a warning);
-- - all-MiniLM-L6-v2 (models/, make models-minilm): exported as it is, its
--   weights, pooler and tokenizer files equal the source's;
-- - in the reference virtualenv: SentenceTransformer(dir).encode of each
--   export equals lacos' embeddings within 1e-5 (and, for MiniLM, the
--   original directory's own SentenceTransformer encode), with the same
--   token ids, and token type ids 0 on every token of a single text (what
--   the engine's BERT embeds with); a LoRA fine-tune of MiniLM exported
--   equals lacos' embeddings of base + adapter.
-- - include_prompt = false (a copy of each tiny export and of MiniLM with
--   its Pooling config changed): encode(prompt=...) leaves the prompt's
--   tokens out of the pooling as SentenceTransformer.encode(prompt=...) does,
--   within 1e-5, each pooling mode; an export keeps include_prompt false.
-- Parts needing the venv or the model are skipped, saying why.
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor
local J = require "lacos.json"
local st = lacos.sentence_transformers
local stref = require "st_reference"

local venv = os.getenv("VENV") or (H.exists(H.root .. "/.venv-ref/bin/python") and (H.root .. "/.venv-ref") or nil)
local py = venv and H.exists(venv .. "/bin/python") and (venv .. "/bin/python") or nil
local no_venv = "no reference virtualenv (.venv-ref -> /work/venv-ref, VENV=, or make venv)"
local minilm = H.root .. "/models/all-MiniLM-L6-v2"
local have_minilm = H.exists(minilm .. "/model.safetensors")
local no_minilm = "models/all-MiniLM-L6-v2 is absent (make models-minilm)"
local D = H.tmp .. "/bertexport"
local POOLINGS = { "mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken" }

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function sh_ok(cmd, what)
  local rc, out, err = H.sh(cmd)
  if rc ~= 0 then error(("%s failed (exit %d): %s%s"):format(what, rc, out, err), 0) end
  return out, err
end

-- the multilingual sentences of the MiniLM fixture (one cut at 256 tokens), and short ones that pad
local sentences = J.read(H.root .. "/tests/fixtures/minilm/sentences.json").sentences
for _, s in ipairs { "ok", "Kiswahili ni lugha nzuri.", "🙂 emoji and ASCII mixed: 3.14 + 2 = 5.14" } do
  sentences[#sentences + 1] = s
end
local pairs_tsv = {
  "A man is playing a guitar.\tA person plays an instrument.", "A woman is slicing an onion.\tSomeone is cutting a vegetable.",
  "Two dogs run across a field.\tAnimals are running outside.", "A child is reading a book.\tA kid looks at pages.",
  "The train leaves at noon.\tA train departs midday.", "A chef cooks pasta.\tSomeone prepares food.",
  "Die Katze schläft.\tThe cat is asleep.", "Il pleut aujourd'hui.\tIt is raining today.",
}

-- the tiny BERT, an adapter trained on it with cls pooling, and the exports
local base, adapter = D .. "/tiny", D .. "/tiny-adapter"
local function export_dir(p) return D .. "/st-" .. p end
do
  os.execute("rm -rf " .. q(D) .. " && mkdir -p " .. q(D))
  H.write(D .. "/config.json", J.encode { model_type = "bert", architectures = { "BertModel" }, vocab_size = 6000,
    hidden_size = 32, num_hidden_layers = 2, num_attention_heads = 4, intermediate_size = 48,
    max_position_embeddings = 64, type_vocab_size = 2, layer_norm_eps = 1e-12, hidden_act = "gelu", pad_token_id = 0 })
  H.write(D .. "/pairs.tsv", table.concat(pairs_tsv, "\n") .. "\n")
  sh_ok(("%s model random %s --out %s --dtype f32 --seed 5 --tokenizer %s"):format(H.lacos, q(D .. "/config.json"), q(base),
        q(H.root .. "/tests/fixtures/wordpiece/wp-small.json")), "lacos model random (BERT)")
  for _, p in ipairs(POOLINGS) do
    sh_ok(("%s model export --model %s --out %s --pooling %s"):format(H.lacos, q(base), q(export_dir(p)), p), "export " .. p)
  end
  sh_ok(("%s train --model %s --pairs %s --out %s --quant f32 --pooling cls --steps 3 --batch-size 4 --lr 0.02 " ..
         "--targets all --r 4 --alpha 8 --dropout 0 --seed 3 --checkpoint-every 0 --no-db")
    :format(H.lacos, q(base), q(D .. "/pairs.tsv"), q(adapter)), "lacos train (tiny BERT, cls)")
  sh_ok(("%s model export --model %s --adapter %s --out %s"):format(H.lacos, q(base), q(adapter), q(D .. "/st-adapter")),
        "export with the adapter")
end
-- MiniLM's: exported as it is, and a LoRA fine-tune of it (3 steps, every linear) exported merged
local minilm_run = D .. "/minilm-lora"
local minilm_export_says
if have_minilm then
  minilm_export_says = select(2, sh_ok(("%s model export --model %s --out %s"):format(H.lacos, q(minilm), q(D .. "/minilm")),
                                       "export of MiniLM"))
  sh_ok(("%s train --model %s --pairs %s --out %s --quant f32 --steps 3 --batch-size 4 --lr 0.005 --targets all " ..
         "--r 4 --alpha 8 --dropout 0 --seed 2 --max-length 32 --checkpoint-every 0 --no-db")
    :format(H.lacos, q(minilm), q(D .. "/pairs.tsv"), q(minilm_run)), "lacos train on MiniLM")
  sh_ok(("%s model export --model %s --adapter %s --out %s"):format(H.lacos, q(minilm), q(minilm_run), q(D .. "/minilm-lora-st")),
        "export of MiniLM + adapter")
end

H.test("tiny BERT: the export holds BertModel's tensors, query, key and value split out of [Q;K;V] bit for bit", function()
  local src, out = lacos.safetensors.open(base), lacos.safetensors.open(export_dir("mean"))
  H.same(out:names(), src:names(), nil, "the same tensor names as the source checkpoint")
  local n = 0
  for _, name in ipairs(src:names()) do
    local a, b = out:get(name), src:get(name)
    H.eq(a:maxdiff(b), 0, name)
    n = n + 1
  end
  H.truthy(out:has("encoder.layer.1.attention.self.key.weight"), "BertModel's own names")
  H.truthy(not out:has("encoder.layer.0.attention.self.query_key_value.weight"), "no fused tensor")
  print(("# %d tensors equal the source's"):format(n))
  local cfg = J.read(export_dir("mean") .. "/config.json")
  H.eq(cfg.model_type, "bert")
  H.eq(cfg.architectures[1], "BertModel")
  for k, v in pairs { hidden_size = 32, num_hidden_layers = 2, num_attention_heads = 4, intermediate_size = 48,
                      max_position_embeddings = 64, type_vocab_size = 2, vocab_size = 6000, hidden_act = "gelu" } do
    H.eq(cfg[k], v, "config.json " .. k)
  end
end)

H.test("tiny BERT: each pooling mode is recorded, read back by lacos' reader, and lacos embeds the export as the source", function()
  local m = lacos.load(base, { quant = "f32" })
  for _, p in ipairs(POOLINGS) do
    local dir = export_dir(p)
    local d = st.describe(dir)
    H.eq(d.kind, "sentence-transformers", p)
    H.eq(d.model_type, "bert", p)
    H.eq(d.pooling, p, p .. ": pooling")
    H.eq(d.include_prompt, true, p .. ": include_prompt")
    H.eq(d.normalize, false, p .. ": the source normalises nothing")
    H.eq(d.max_length, 64, p .. ": max_seq_length is the source's")
    H.eq(d.dimension, 32, p)
    local tc = J.read(dir .. "/tokenizer_config.json")
    H.eq(tc.pad_token, "[PAD]", p .. ": pad token")
    H.eq(tc.sep_token, "[SEP]", p .. ": the special tokens of the WordPiece template")
    local want = m:encode(sentences, { pooling = p, batch = 4, truncation = true, max_length = 64 })
    local got = lacos.load(dir, { quant = "f32" }):encode(sentences, { batch = 4 })
    H.eq(got:maxdiff(want), 0, p .. ": lacos embeds the export as the source")
  end
end)

H.test("tiny BERT + adapter: merged into the export, its recorded pooling kept, another refused", function()
  local m = lacos.load(base, { quant = "f32", adapter = adapter })
  local want = m:encode(sentences, { batch = 4, truncation = true, max_length = 64 })
  m:remove_lora()
  local plain = m:encode(sentences, { batch = 4, truncation = true, max_length = 64 })
  H.truthy(plain:maxdiff(want) > 1e-4, "the trained adapter moves the embeddings (by " .. plain:maxdiff(want) .. ")")
  local back = lacos.load(D .. "/st-adapter", { quant = "f32" })
  H.eq(back:pooling(), "cls")
  local r = back:encode(sentences, { batch = 4 }):maxdiff(want) / want:abs():max()
  print(("# tiny BERT + adapter, export through lacos vs base + adapter: max relative difference %.3g"):format(r))
  H.truthy(r <= 1e-6, "differs by " .. r)
  local m2 = lacos.load(base, { quant = "f32", adapter = adapter })
  H.raises("was trained with cls pooling; exported with mean", lacos.export.sentence_transformers, m2, D .. "/refused",
           { pooling = "mean" })
  H.truthy(not H.exists(D .. "/refused/modules.json"), "nothing written")
end)

-- (of the merged export: the random base's weights are int8 codes already, and would round to themselves)
H.test("tiny BERT held in int8: exported dequantised, with a warning, the card saying so", function()
  local src = D .. "/st-adapter"
  local m = lacos.load(src, { quant = "int8" })
  local r = lacos.export.sentence_transformers(m, D .. "/st-int8", {})
  H.eq(#r.warnings, 1, "one warning")
  H.match(r.warnings[1], "held in int8: the export's weights are its int8 weights dequantised")
  H.match(H.read(D .. "/st-int8/README.md"), "dequantised from the int8 model")
  H.eq(J.read(D .. "/st-int8/lacos.json").dequantised_from, "int8")
  local out = lacos.safetensors.open(D .. "/st-int8")
  local name = "encoder.layer.0.attention.self.value.weight"
  H.eq(out:get(name):maxdiff(m:weight(name)), 0, "the file holds the int8 weights dequantised")
  H.truthy(out:get(name):maxdiff(lacos.safetensors.open(src):get(name)) > 0, "which are not the source's")
  local rc, _, err = H.sh(("%s model export --model %s --quant int8 --out %s"):format(H.lacos, q(src), q(D .. "/st-int8-cli")))
  H.eq(rc, 0, err)
  H.match(err, "lacos: warning: .*held in int8", "the command line prints the warning")
end)

local function sentence_transformers(dirs, prompt)
  return stref.run(py, dirs, sentences, { work = D, prompt = prompt })
end
local compare = stref.compare

-- SentenceTransformer(dir).encode of every export here with no prompt, in one Python process (made once)
local ref_cache
local function reference()
  if ref_cache then return ref_cache end
  local dirs = {}
  for i, p in ipairs(POOLINGS) do dirs[i] = export_dir(p) end
  dirs[#dirs + 1] = D .. "/st-adapter"
  if H.exists(D .. "/st-int8/modules.json") then dirs[#dirs + 1] = D .. "/st-int8" end
  if have_minilm then
    for _, d in ipairs { minilm, D .. "/minilm", D .. "/minilm-lora-st" } do
      if H.exists(d .. "/modules.json") then dirs[#dirs + 1] = d end
    end
  end
  ref_cache = sentence_transformers(dirs)
  return ref_cache
end

-- token type ids of a batch of single texts: none at all (BertModel then
-- takes its zeros) or every one 0, the type the engine embeds every token with
local function all_type_zero(types, what)
  if types == nil or types == J.null then return end
  for i, row in ipairs(types) do
    for k, v in ipairs(row) do H.eq(v, 0, ("%s: token type of sentence %d token %d"):format(what, i, k)) end
  end
end

H.test("tiny BERT: SentenceTransformer(dir).encode equals lacos' embeddings within 1e-5, each pooling, adapter, int8", function()
  if not py then H.skip(no_venv) end
  local ref = reference()
  local m = lacos.load(base, { quant = "f32" })
  local tok = lacos.tokenizer.load(base .. "/tokenizer.json")
  for i, p in ipairs(POOLINGS) do
    local r = ref[export_dir(p)]
    H.match(r.line, "modules Transformer,Pooling pooling " .. p .. " dim 32 max_seq_length 64 padding_side right dtype float32",
            p .. ": what sentence-transformers built")
    for k, s in ipairs(sentences) do H.same(r.ids[k], tok:encode(s), nil, ("%s: ids of sentence %d"):format(p, k)) end
    all_type_zero(r.types, p)
    compare("tiny BERT, " .. p, m:encode(sentences, { pooling = p, batch = 4, truncation = true, max_length = 64 }), r.emb, 1e-5)
  end
  local ma = lacos.load(base, { quant = "f32", adapter = adapter })
  compare("tiny BERT + adapter (cls)", ma:encode(sentences, { batch = 4, truncation = true, max_length = 64 }),
          ref[D .. "/st-adapter"].emb, 1e-5)
  -- the int8 export against lacos reading the same dequantised weights in f32
  H.truthy(ref[D .. "/st-int8"], "the int8 export of the test before")
  compare("tiny BERT int8, dequantised", lacos.load(D .. "/st-int8", { quant = "f32" }):encode(sentences, { batch = 4 }),
          ref[D .. "/st-int8"].emb, 1e-5)
end)

H.test("all-MiniLM-L6-v2 exported as it is: the source's weights bit for bit, its pooler and tokenizer files byte for byte", function()
  if not have_minilm then H.skip(no_minilm) end
  local out = D .. "/minilm"
  H.match(minilm_export_says, "mean pooling, normalised, max_seq_length 256, f32 weights")
  for _, f in ipairs { "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json" } do
    H.eq(H.read(out .. "/" .. f), H.read(minilm .. "/" .. f), f .. " is the source's")
  end
  H.eq(J.read(out .. "/sentence_bert_config.json").max_seq_length, 256)
  H.eq(J.read(out .. "/sentence_bert_config.json").do_lower_case, false)
  local d = st.describe(out)
  H.eq(d.normalize, true, "a Normalize module, as the source has")
  H.eq(#d.modules, 3)
  local a, b = lacos.safetensors.open(out), lacos.safetensors.open(minilm)
  local n = 0
  for _, name in ipairs(a:names()) do
    H.eq(a:get(name):maxdiff(b:get(name)), 0, name)
    n = n + 1
  end
  H.truthy(a:has("pooler.dense.weight") and a:has("pooler.dense.bias"), "the pooler carried over")
  -- the source's only other tensor is the position_ids buffer transformers makes itself
  for _, name in ipairs(b:names()) do
    H.truthy(a:has(name) or name == "embeddings.position_ids", name .. " is in the export")
  end
  print(("# %d tensors equal the source's"):format(n))
end)

H.test("all-MiniLM-L6-v2: SentenceTransformer(export) equals SentenceTransformer(original) and lacos within 1e-5", function()
  if not have_minilm then H.skip(no_minilm) end
  if not py then H.skip(no_venv) end
  local out = D .. "/minilm"
  local ref = reference()
  local orig, ours = ref[minilm], ref[out]
  H.match(ours.line, "modules Transformer,Pooling,Normalize pooling mean dim 384 max_seq_length 256 padding_side right")
  for k in ipairs(sentences) do H.same(ours.ids[k], orig.ids[k], nil, "ids of sentence " .. k) end
  H.truthy(type(orig.types) == "table", "BERT's tokenizer gives token type ids")
  all_type_zero(orig.types, "all-MiniLM-L6-v2")
  compare("MiniLM export vs the original in sentence-transformers", orig.emb, ours.emb, 1e-5)
  compare("MiniLM export vs lacos", lacos.load(minilm, { quant = "f32" }):encode(sentences, { batch = 4 }), ours.emb, 1e-5)
end)

H.test("all-MiniLM-L6-v2 + a LoRA fine-tune: SentenceTransformer(export) equals lacos' base + adapter within 1e-5", function()
  if not have_minilm then H.skip(no_minilm) end
  local out = D .. "/minilm-lora-st"
  local m = lacos.load(minilm, { quant = "f32", adapter = minilm_run })
  local want = m:encode(sentences, { batch = 4 })
  m:remove_lora()
  local moved = m:encode(sentences, { batch = 4 }):maxdiff(want)
  H.truthy(moved > 1e-4, "the adapter moves the embeddings (by " .. moved .. ")")
  local back = lacos.load(out, { quant = "f32" }):encode(sentences, { batch = 4 })
  H.truthy(back:maxdiff(want) <= 1e-5, "lacos reads the export as base + adapter (" .. back:maxdiff(want) .. ")")
  if not py then H.skip(no_venv) end
  compare("MiniLM + LoRA export", want, reference()[out].emb, 1e-5)
end)

-- A copy of dir (its files linked, not copied) whose Pooling config says include_prompt = false.
local function without_prompt(dir, name)
  local out = D .. "/" .. name
  sh_ok(("rm -rf %s && mkdir -p %s/1_Pooling"):format(q(out), q(out)), "mkdir " .. out)
  local abs = require("lacos.util").abspath(dir)
  for _, f in ipairs(require("lacos.util").listdir(dir)) do
    if f ~= "1_Pooling" then sh_ok(("ln -s %s %s"):format(q(abs .. "/" .. f), q(out .. "/" .. f)), "ln -s " .. f) end
  end
  local pc = J.read(dir .. "/1_Pooling/config.json")
  pc.include_prompt = false
  J.write(out .. "/1_Pooling/config.json", pc)
  return out
end
local PROMPT = "query: find the sentence like "

H.test("include_prompt = false: read from the Pooling config, the prompt measured as sentence-transformers does", function()
  local dir = without_prompt(export_dir("mean"), "np-mean")
  H.eq(st.describe(dir).include_prompt, false)
  local m = lacos.load(dir, { quant = "f32" })
  local tok = lacos.tokenizer.load(base .. "/tokenizer.json")
  local ids = tok:encode(PROMPT)
  H.eq(tok:id_to_token(ids[#ids]), "[SEP]", "the prompt alone ends with [SEP]")
  H.eq(m:prompt_length(PROMPT), #ids - 1, "[CLS] and the prompt's tokens, not the [SEP]")
  local plain = m:encode(sentences, { batch = 4, prompt = PROMPT, include_prompt = true })
  local left_out = m:encode(sentences, { batch = 4, prompt = PROMPT })
  H.truthy(plain:maxdiff(left_out) > 1e-3, "leaving the prompt out of the pooling changes the embeddings")
  local E = lacos.engine
  local ids_t, mask_t = m:tokenize({ "ok" })
  H.raises("prompt_tokens must be >= 0, got -1", T.make, E.C.lacos_bloom_encode_prompt, m.ptr, ids_t.t, mask_t.t, 0, -1)
  -- a prompt at least as long as the text leaves nothing to pool: zeros, not NaN
  local none = T.make(E.C.lacos_bloom_encode_prompt, m.ptr, ids_t.t, mask_t.t, 0, ids_t:size(2))
  H.eq(none:abs():max(), 0, "nothing pooled")
  -- the export of a model that leaves prompts out says so
  local re = lacos.export.sentence_transformers(m, D .. "/np-mean-export", {})
  H.eq(re.pooling, "mean")
  H.eq(st.describe(D .. "/np-mean-export").include_prompt, false, "the export keeps include_prompt false")
  H.match(H.read(D .. "/np-mean-export/README.md"), "not pooled %(include_prompt false%)")
end)

H.test("include_prompt = false: SentenceTransformer.encode(prompt=...) equals lacos within 1e-5, each pooling, and MiniLM", function()
  if not py then H.skip(no_venv) end
  local dirs, models = {}, {}
  for _, p in ipairs(POOLINGS) do
    local d = without_prompt(export_dir(p), "np-" .. p)
    dirs[#dirs + 1], models[d] = d, p
  end
  local mini
  if have_minilm then
    mini = without_prompt(minilm, "np-minilm")
    dirs[#dirs + 1] = mini
  end
  local ref = sentence_transformers(dirs, PROMPT)
  for _, d in ipairs(dirs) do
    local r = ref[d]
    H.match(r.line, "include_prompt False prompt_length %d+", d)
    local m = lacos.load(d, { quant = "f32" })
    local n = tonumber(r.line:match("prompt_length (%d+)"))
    H.eq(m:prompt_length(PROMPT), n, d .. ": the prompt's length")
    local ours = m:encode(sentences, { batch = 4, prompt = PROMPT })
    compare(("include_prompt false, %s, prompt of %d tokens"):format(models[d] and ("tiny BERT " .. models[d]) or "MiniLM", n),
            ours, r.emb, 1e-5)
    if models[d] ~= "lasttoken" then
      local with = m:encode(sentences, { batch = 4, prompt = PROMPT, include_prompt = true })
      H.truthy(with:maxdiff(r.emb) > 1e-3, d .. ": pooling the prompt too would differ from sentence-transformers")
    end
  end
  if not mini then H.skip(no_minilm .. " (the tiny BERT's six poolings passed)") end
end)

H.done()
