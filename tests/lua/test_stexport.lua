-- test_stexport: a BLOOM model with a trained LoRA adapter, exported as a
-- sentence-transformers directory (lacos model export, lacos.export), read
-- back by lacos' own reader (lacos.sentence_transformers.describe) and, in
-- the reference virtualenv, by SentenceTransformer(dir) itself, whose
-- encode must equal lacos' embeddings within 1e-5 (f32) for each pooling:
-- mean, weightedmean and lasttoken (right padding, and left padding for
-- last-token pooling), and with a Normalize module when the model
-- normalises. The checkpoint is tiny-xs with random f32 weights and lacos'
-- bloomlike-32k tokenizer; each adapter is trained by lacos train (3 steps
-- of MNRL on multilingual pairs, LoRA on every linear) with that pooling.
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor
local J = require "lacos.json"
local st = lacos.sentence_transformers
local stref = require "st_reference"

local py = H.root .. "/.venv-ref/bin/python"
local D = H.tmp .. "/stexport"
local POOLINGS = { "mean", "weightedmean", "lasttoken" }

local function sh_ok(cmd, what)
  local rc, out, err = H.sh(cmd)
  if rc ~= 0 then error(("%s failed (exit %d): %s%s"):format(what, rc, out, err), 0) end
  return out, err
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Sentences in many scripts and lengths (1 to ~30 tokens), so that a batch pads.
local sentences = {
  "A man is playing a guitar on the street.", "Un homme joue de la guitare.", "Die Katze schläft.",
  "Hoy está lloviendo mucho en Madrid y no tengo paraguas, así que me quedo en casa leyendo un libro.",
  "我喜欢在早上喝绿茶。", "駅はどこですか？", "Книга лежит на столе.", "أنا أتعلم العربية منذ سنتين.",
  "पानी 100 डिग्री पर उबलता है।", "ok", "Η θάλασσα είναι ήρεμη σήμερα.", "Bugün hava çok güzel, parka gidelim mi?",
  "한국어는 재미있어요.", "Kiswahili ni lugha nzuri.", "🙂 emoji and ASCII mixed: 3.14 + 2 = 5.14",
}
-- and the first lines of a few of the shared Tatoeba sets, when the data is here
if H.data then
  for _, lang in ipairs { "ara", "cmn", "deu", "fra", "hin", "jpn", "rus", "tha" } do
    local f = io.open(("%s/bitext/tatoeba-v1/tatoeba.%s-eng.%s"):format(H.data, lang, lang), "rb")
    if f then
      for _ = 1, 2 do
        local line = f:read("*l")
        if line and line ~= "" then sentences[#sentences + 1] = (line:gsub("\r$", "")) end
      end
      f:close()
    end
  end
end

local pairs_tsv = {
  { "A man is playing a guitar.", "Un homme joue de la guitare." }, { "The cat sleeps on the sofa.", "Die Katze schläft auf dem Sofa." },
  { "It is raining today.", "Hoy está lloviendo." }, { "I like green tea.", "我喜欢绿茶。" },
  { "Where is the station?", "駅はどこですか？" }, { "The book is on the table.", "Книга лежит на столе." },
  { "She reads a newspaper.", "Ella lee un periódico." }, { "We are going home.", "Wir gehen nach Hause." },
  { "The children play football.", "Les enfants jouent au football." }, { "Open the window, please.", "Apri la finestra, per favore." },
  { "The sun is very hot.", "太阳很热。" }, { "My brother is a doctor.", "Mi hermano es médico." },
  { "The train is late.", "Der Zug hat Verspätung." }, { "I am learning Arabic.", "أنا أتعلم العربية." },
  { "Water boils at 100 degrees.", "पानी 100 डिग्री पर उबलता है।" }, { "The shop closes at six.", "Магазин закрывается в шесть." },
}

-- the base, the adapters (one per pooling) and their exports, made once
local base, db = D .. "/base", D .. "/runs.db"
local function adapter(p) return D .. "/adapter-" .. p end
local function export_dir(p) return D .. "/st-" .. p end
do
  os.execute("mkdir -p " .. q(D))
  local lines = {}
  for _, p in ipairs(pairs_tsv) do lines[#lines + 1] = p[1] .. "\t" .. p[2] end
  H.write(D .. "/pairs.tsv", table.concat(lines, "\n") .. "\n")
  sh_ok(("%s model random tiny-xs --out %s --dtype f32 --seed 11"):format(H.lacos, q(base)), "lacos model random")
  for _, p in ipairs(POOLINGS) do
    sh_ok(("%s train --model %s --pairs %s --out %s --quant f32 --pooling %s --steps 3 --batch-size 8 --lr 0.01 " ..
           "--targets all --r 4 --alpha 8 --dropout 0 --seed 3 --checkpoint-every 0 --db %s")
      :format(H.lacos, q(base), q(D .. "/pairs.tsv"), q(adapter(p)), p, q(db)), "lacos train --pooling " .. p)
    sh_ok(("%s model export --model %s --adapter %s --out %s --db %s"):format(H.lacos, q(base), q(adapter(p)),
          q(export_dir(p)), q(db)), "lacos model export (" .. p .. ")")
  end
end

-- lacos' own embeddings: the base in f32 with the adapter attached (not merged)
local function lacos_embeddings(p, opts)
  local m = lacos.bloom.load(base, { quant = "f32", adapter = adapter(p) })
  if opts and opts.padding_side then m.meta.padding_side = opts.padding_side end
  local e = m:encode(sentences, { batch = 4 })
  return e, m
end

H.test("the export holds what sentence-transformers reads, and lacos' reader describes it as the model embeds", function()
  for _, p in ipairs(POOLINGS) do
    local dir = export_dir(p)
    for _, f in ipairs { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "modules.json",
                         "1_Pooling/config.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                         "lacos.json", "README.md" } do
      H.truthy(H.exists(dir .. "/" .. f), p .. ": " .. f .. " written")
    end
    local d = st.describe(dir)
    H.eq(d.kind, "sentence-transformers", p .. ": kind")
    H.eq(d.model_type, "bloom", p .. ": model_type")
    H.eq(d.pooling, p, p .. ": the pooling the adapter was trained with")
    H.eq(d.normalize, false, p .. ": no Normalize module (lacos does not normalise BLOOM embeddings)")
    H.eq(d.dimension, 64, p .. ": embedding dimension")
    H.eq(d.max_length, 2048, p .. ": max_seq_length is the model's limit")
    H.eq(d.padding_side, "right", p .. ": padding side")
    H.eq(d.do_lower_case, false, p .. ": do_lower_case")
    H.eq(#d.modules, 2, p .. ": Transformer and Pooling")
    local tc = J.decode(H.read(dir .. "/tokenizer_config.json"))
    H.eq(tc.pad_token, "<pad>", p .. ": the pad token (config.json's pad_token_id 3)")
    local pc = J.decode(H.read(dir .. "/1_Pooling/config.json"))
    H.eq(pc.word_embedding_dimension, 64, p .. ": the Pooling config in the keys every sentence-transformers reads")
    -- the model card names the run that trained the adapter, as the database knows it
    local card = H.read(dir .. "/README.md")
    local R = lacos.results.open(db, { readonly = true })
    local run = R:query("SELECT r.uuid FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE a.path = ?",
                        require("lacos.util").abspath(adapter(p) .. "/adapter_model.safetensors"))[1]
    R:close()
    H.truthy(run, p .. ": the database records the training run")
    H.truthy(card:find("training run: " .. run.uuid, 1, true), p .. ": the card names run " .. run.uuid)
    local hex = require("ffi").new("char[65]")
    lacos.engine.check(lacos.engine.C.lacos_sha256_file(adapter(p) .. "/adapter_model.safetensors", hex))
    local sha = require("ffi").string(hex)
    H.truthy(card:find(sha, 1, true), p .. ": the card names the adapter's sha256")
    H.truthy(card:find("pooling | `" .. p .. "`", 1, true), p .. ": the card names the pooling")
  end
end)

H.test("lacos loads the export back and embeds as base + adapter (f32, relative 1e-6)", function()
  for _, p in ipairs(POOLINGS) do
    local want, m = lacos_embeddings(p)
    -- the adapter was trained: the export is not the base
    m:remove_lora()
    local plain = m:encode(sentences, { batch = 4, pooling = p, force = true })
    local moved = plain:maxdiff(want)
    H.truthy(moved > 1e-3, p .. ": the trained adapter moves the embeddings (by " .. moved .. ")")
    local back = lacos.bloom.load(export_dir(p), { quant = "f32" })
    H.eq(back:pooling(), p, p .. ": lacos.json records the pooling")
    local r = back:encode(sentences, { batch = 4 }):maxdiff(want) / want:abs():max()
    print(("# %s: the export through lacos vs base + adapter: max relative difference %.3g"):format(p, r))
    H.truthy(r <= 1e-6, p .. ": differs by " .. r)
  end
end)

-- SentenceTransformer(dir).encode over the sentences for each dir: {[dir] = {emb =, ids =, line =}}
local function sentence_transformers(dirs) return stref.run(py, dirs, sentences, { work = D }) end
local compare = stref.compare

H.test("SentenceTransformer(dir).encode equals lacos' embeddings within 1e-5 (f32), each pooling", function()
  if not H.exists(py) then H.skip("no reference virtualenv (.venv-ref -> /work/venv-ref, or make venv)") end
  local dirs = {}
  for i, p in ipairs(POOLINGS) do dirs[i] = export_dir(p) end
  -- left padding with last-token pooling (a decoder's usual set-up), through the Lua API
  local left_m = select(2, lacos_embeddings("lasttoken", { padding_side = "left" }))
  local left = D .. "/st-lasttoken-left"
  lacos.export.sentence_transformers(left_m, left, { db = db })
  H.eq(st.describe(left).padding_side, "left", "the reader sees the left padding")
  dirs[#dirs + 1] = left
  -- a model that normalises (as BERT-family sentence-transformers models do): a Normalize module
  local norm_m = select(2, lacos_embeddings("mean"))
  local spec = norm_m.embedding_spec
  norm_m.embedding_spec = function(self) local s = spec(self); s.normalize = true; return s end
  local norm = D .. "/st-mean-normalize"
  lacos.export.sentence_transformers(norm_m, norm, { db = db })
  H.eq(st.describe(norm).normalize, true, "the reader sees the Normalize module")
  dirs[#dirs + 1] = norm
  local ref = sentence_transformers(dirs)
  local tok = lacos.tokenizer.load(base .. "/tokenizer.json")
  for i, p in ipairs(POOLINGS) do
    local r = ref[dirs[i]]
    H.match(r.line, "modules Transformer,Pooling pooling " .. p .. " dim 64 max_seq_length 2048 padding_side right dtype float32",
            p .. ": what sentence-transformers built")
    for k, s in ipairs(sentences) do H.same(r.ids[k], tok:encode(s), nil, ("%s: ids of sentence %d"):format(p, k)) end
    compare(p, lacos_embeddings(p), r.emb, 1e-5)
  end
  H.match(ref[left].line, "pooling lasttoken .* padding_side left dtype float32", "left padding: what sentence-transformers built")
  compare("lasttoken, left padding", lacos_embeddings("lasttoken", { padding_side = "left" }), ref[left].emb, 1e-5)
  H.match(ref[norm].line, "modules Transformer,Pooling,Normalize pooling mean", "normalised: what sentence-transformers built")
  -- sentence-transformers' Normalize: each row over its L2 norm
  local unit = lacos_embeddings("mean"):normalize()
  compare("mean, normalised", unit, ref[norm].emb, 1e-5)
end)

H.done()
