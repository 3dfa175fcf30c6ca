-- lacos model: random-weight BLOOM checkpoints in the exact shapes of the
-- released models (or any config.json), for tests, demos and speed and memory
-- measurements where the real weights are not available; and a base model
-- with a LoRA adapter merged in, written as a plain checkpoint or exported
-- as a sentence-transformers directory.
local M = {}

-- --out must be new or empty, or --force given: checked before any work, so a mistake costs no time.
local function check_out(opts)
  local E = require "lacos.engine"
  if E.C.lacos_dir_check_output(opts.out, opts.force and 1 or 0) ~= 0 then
    local msg = E.last_error()
    if msg:find("not empty", 1, true) then msg = msg .. " (--force replaces it)" end
    error(msg, 0)
  end
end

M.spec = {
  name = "model",
  usage = "lacos model random NAME_OR_CONFIG.json --out DIR [--seed N] [--dtype f16|bf16|f32] [--tokenizer FILE.json]\n" ..
          "       lacos model merge --model DIR --adapter DIR --out DIR [--dtype f16|bf16|f32] [--force]\n" ..
          "       lacos model export --model DIR [--adapter DIR] --out DIR [--format sentence-transformers]\n" ..
          "                          [--dtype f32|f16|bf16] [--pooling MODE] [--max-length N] [--force]\n" ..
          "       lacos model info DIR_OR_NAME\n" ..
          "       lacos model list",
  summary = "Create random-weight BLOOM checkpoints, merge LoRA adapters into their base, export sentence-transformers\n" ..
            "directories, describe models.",
  description = "NAME is one of the released shapes (bloom-560m, bloom-1b1, bloom-1b7, bloom-3b, bloom-7b1) or the test\n" ..
                "ladder (tiny-xs, tiny-s, tiny-m, tiny-l); a path ending in .json is read as a BLOOM config.json.\n" ..
                "The checkpoint is written in the Hugging Face layout (config.json, model.safetensors or shards),\n" ..
                "one shard at a time, so a bloom-7b1 shape fits in memory.\n\n" ..
                "merge adds the adapter's scaling·B·A to the base weights (PEFT's merge_and_unload) and writes a\n" ..
                "checkpoint transformers' BloomModel loads with no adapter: config.json, model.safetensors, the\n" ..
                "tokenizer files, lacos.json (pooling, what was merged). The base is read in f32 (--quant int8 merges\n" ..
                "into the int8-dequantised weights instead, in less memory). The output is built in DIR.tmp.<pid> and\n" ..
                "renamed into place; a non-empty --out is refused unless --force replaces it.\n\n" ..
                "export writes the model (with --adapter merged in, as merge does) as a sentence-transformers\n" ..
                "directory that SentenceTransformer(DIR) loads and that embeds as lacos does: the checkpoint, a\n" ..
                "tokenizer_config.json with lacos' padding side, modules.json (Transformer, Pooling), the pooling the\n" ..
                "model or adapter was trained with (1_Pooling/config.json: mean, weightedmean, lasttoken, cls, max\n" ..
                "or mean_sqrt_len_tokens), whether prompt tokens are pooled (include_prompt, as the source had it),\n" ..
                "sentence_bert_config.json (max_seq_length, do_lower_case) and README.md, a model card naming the\n" ..
                "base, the adapter (its sha256) and the training run (its uuid, from the adapter or the results\n" ..
                "database). Weights are f32 unless --dtype says otherwise: sentence-transformers computes in the\n" ..
                "weights' dtype, and lacos in f32. BLOOM and BERT models export (a BERT as transformers' BertModel,\n" ..
                "with the source's tokenizer files and pooler as they were, and its max_seq_length by default).\n" ..
                "--quant int8 exports the int8 weights dequantised, with a warning: they carry int8's rounding.",
  options = {
    { "--out", "DIR", "output directory (random, merge, export)" },
    { "--seed", "N", "random seed (random)", type = "integer", default = 0 },
    { "--dtype", "TYPE", "weight dtype on disk (random: f16; merge: the base checkpoint's; export: f32)",
      choices = { "f16", "bf16", "f32" } },
    { "--tokenizer", "FILE", "tokenizer.json to write with the checkpoint (random; default: lacos' bloomlike-32k, whose ids fit every shape)" },
    { "--shard-size", "BYTES", "largest shard in bytes (default 5e9, the hub's)", type = "number" },
    { "--model", "DIR", "base checkpoint directory (merge, export)" },
    { "--adapter", "DIR", "LoRA adapter directory, lacos' or PEFT's (merge; export: optional)" },
    { "--quant", "KIND", "how the base is held while merging (merge, export)", default = "f32", choices = { "f32", "int8" } },
    require("lacos.bloom").int8_skip_option(),
    { "--format", "NAME", "what export writes", default = "sentence-transformers", choices = { "sentence-transformers" } },
    { "--pooling", "MODE", "the pooling to record (export; default: the model's or adapter's)",
      choices = { "mean", "weightedmean", "lasttoken", "cls", "max", "mean_sqrt_len_tokens" } },
    { "--max-length", "N", "sentence_bert_config.json's max_seq_length (export; default: the model's limit)", type = "integer", min = 1 },
    { "--db", "FILE", "results database that names the adapter's training run (export; default $LACOS_DB or results/lacos.db)" },
    { "--force", nil, "replace a non-empty --out (random, merge, export)" },
  },
  positional = { min = 1, max = 2, names = "a subcommand (random, merge, export, info, list)" },
  examples = {
    "lacos model random bloom-560m --out models/bloom-560m-random --seed 1",
    "lacos model random tiny-s --out /tmp/tiny --tokenizer tokenizer.json",
    "lacos model merge --model models/bloom-560m --adapter runs/a/adapter --out models/bloom-560m-nli --dtype f16",
    "lacos model export --model models/bloom-560m --adapter runs/a/adapter --out models/bloom-560m-nli-st",
    "lacos model info bloom-7b1",
  },
}


function M.run(opts)
  local bloom = require "lacos.bloom"
  local util = require "lacos.util"
  local sub = opts._[1]
  if sub == "list" then
    print(("%-12s %8s %6s %6s %8s %11s"):format("name", "hidden", "layers", "heads", "vocab", "parameters"))
    for _, name in ipairs(bloom.config_names()) do
      local c = bloom.config(name)
      print(("%-12s %8d %6d %6d %8d %11s"):format(name, c.hidden_size, c.n_layer, c.n_head, c.vocab_size,
        util.params(bloom.param_count(name))))
    end
    return 0
  elseif sub == "info" then
    local what = opts._[2] or require("lacos.args").usage_error("model", "info needs a directory or a model name")
    local f = io.open(what .. "/config.json", "r")
    local cfg
    if f then f:close(); cfg = bloom.config(what .. "/config.json") else cfg = bloom.config(what) end
    local E = require "lacos.engine"
    local n = E.C.lacos_bloom_config_params(cfg)
    print(("hidden %d, layers %d, heads %d, vocab %d, max length %d, %s parameters (%s)"):format(
      cfg.hidden_size, cfg.n_layer, cfg.n_head, cfg.vocab_size, cfg.max_length, util.params(n), util.thousands(n)))
    return 0
  elseif sub == "export" then
    return M.export(opts)
  end
  if sub ~= "random" and sub ~= "merge" then
    local guess = require("lacos.args").suggest(tostring(sub), { "random", "merge", "export", "info", "list" })
    require("lacos.args").usage_error("model", "unknown subcommand '%s'%s (random, merge, export, info, list)", tostring(sub),
      guess and (" — did you mean '%s'?"):format(guess) or "")
  end
  if opts.pooling or opts.max_length or opts.db then
    require("lacos.args").usage_error("model", "--pooling, --max-length and --db belong to export, not %s", tostring(sub))
  end
  if sub == "merge" then return M.merge(opts) end
  if opts.model or opts.adapter then
    require("lacos.args").usage_error("model", "--model and --adapter belong to merge and export, not random")
  end
  opts.dtype = opts.dtype or "f16"
  local name = opts._[2] or require("lacos.args").usage_error("model", "random needs a model name or a config.json")
  if not opts.out then require("lacos.args").usage_error("model", "random needs --out DIR") end
  local E = require "lacos.engine"
  -- everything checked before the weights are made: a shape, the output
  -- directory (new or empty, or --force), a tokenizer that fits the shape
  local cfg = bloom.config(name)
  check_out(opts)
  -- the tokenizer written with the model, so embed, sts and train can use it:
  -- --tokenizer, else the one lacos ships for the synthetic ladder
  local bundled = not opts.tokenizer
  local tok_path = opts.tokenizer or (require("lacos.engine").home .. "/datasets/tokenizers/bloomlike-32k.json")
  local tok = require("lacos.tokenizer").load(tok_path)
  local vocab = tok:vocab_size()
  tok:free()
  if vocab > cfg.vocab_size then
    error(("%s: the tokenizer has %d ids, more than the %d of %s's vocabulary; give one that fits with --tokenizer")
      :format(tok_path, vocab, cfg.vocab_size, name), 0)
  end
  local t0 = util.clock()
  -- f32 storage keeps the exact random values; the int8 codes they come from
  -- make the saved checkpoint quantise back to the same int8 model.
  local m = bloom.random(name, { seed = opts.seed, quant = "int8", embedding_dtype = opts.dtype == "f32" and "f32" or opts.dtype })
  io.stderr:write(("lacos: %s, %s parameters, writing %s weights to %s\n"):format(name,
    util.params(E.C.lacos_bloom_config_params(cfg)), opts.dtype, opts.out))
  -- built under a temporary name (its parents created) and renamed into place
  local ok, err = pcall(util.build_dir, opts.out, opts.force, function(tmp)
    E.check(E.C.lacos_bloom_save(m.ptr, tmp, require("lacos.tensor").dtype_of(opts.dtype), opts.shard_size or 0))
    util.copy_file(tok_path, tmp .. "/tokenizer.json")
    require("lacos.json").write(tmp .. "/lacos.json", {
      random = true, seed = opts.seed, shape = name, padding_side = "right",
      tokenizer = bundled and "lacos' bloomlike-32k (trained like BLOOM's on the shared data; not BLOOM's own)" or tok_path,
      created_by = "lacos " .. require("lacos").version(),
    })
  end, "--force")
  m:free()
  if not ok then error(err, 0) end
  local c = cfg
  io.stderr:write(("lacos: done in %s (hidden %d, %d layers, tokenizer %s)\n"):format(util.duration(util.clock() - t0),
    c.hidden_size, c.n_layer, bundled and "bloomlike-32k" or tok_path))
  return 0
end

local function readable(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function M.merge(opts)
  local usage = require("lacos.args").usage_error
  if opts._[2] then usage("model", "merge takes no positional argument (got '%s')", opts._[2]) end
  if not opts.model then usage("model", "merge needs --model DIR (the base checkpoint)") end
  if not opts.adapter then usage("model", "merge needs --adapter DIR") end
  if not opts.out then usage("model", "merge needs --out DIR") end
  if opts.tokenizer then usage("model", "--tokenizer belongs to random; merge copies the base's tokenizer files") end
  -- everything that can be checked before the base is read, so a mistake costs no time and leaves nothing behind
  for _, f in ipairs { opts.model .. "/config.json", opts.adapter .. "/adapter_config.json",
                       opts.adapter .. "/adapter_model.safetensors" } do
    if not readable(f) then error(f .. ": no such file", 0) end
  end
  check_out(opts)
  local dtype = opts.dtype
  if not dtype then
    local st = require("lacos.safetensors").open(opts.model)
    local info = st:info("h.0.self_attention.query_key_value.weight")
    dtype = info and info.dtype or "f32"
    st:free()
  end
  local t0 = os.time()
  local bloom = require "lacos.bloom"
  local m = bloom.load(opts.model, { quant = opts.quant, int8_skip = bloom.skip_arg(opts.int8_skip) })
  m:load_lora(opts.adapter)
  m:merge_lora()
  m:save(opts.out, { dtype = dtype, force = opts.force, shard_size = opts.shard_size or 0 })
  local cfg, lora = m:config(), m.lora
  io.stderr:write(("lacos: merged %s (r %d, alpha %g, %s) into %s (%d layers, %s base), wrote %s weights to %s in %ds\n"):format(
    opts.adapter, lora.r, lora.alpha, table.concat(lora.targets, ","), opts.model, cfg.n_layer, m:quantisation(), dtype,
    opts.out, os.time() - t0))
  m:free()
  return 0
end

function M.export(opts)
  local usage = require("lacos.args").usage_error
  if opts._[2] then usage("model", "export takes no positional argument (got '%s')", opts._[2]) end
  if not opts.model then usage("model", "export needs --model DIR (the base checkpoint)") end
  if not opts.out then usage("model", "export needs --out DIR") end
  if opts.tokenizer then usage("model", "--tokenizer belongs to random; export writes the model's tokenizer") end
  -- what can be checked before the base is read: a mistake costs no time and leaves nothing behind
  local files = { opts.model .. "/config.json" }
  if opts.adapter then
    files[2], files[3] = opts.adapter .. "/adapter_config.json", opts.adapter .. "/adapter_model.safetensors"
  end
  for _, f in ipairs(files) do
    if not readable(f) then error(f .. ": no such file", 0) end
  end
  check_out(opts)
  local t0 = require("lacos.util").clock()
  local export = require "lacos.export"
  local m = export.load(opts.model, { quant = opts.quant, adapter = opts.adapter,
                                      int8_skip = require("lacos.bloom").skip_arg(opts.int8_skip) })
  local ok, r = pcall(export.sentence_transformers, m, opts.out, { dtype = opts.dtype or "f32", pooling = opts.pooling,
    max_length = opts.max_length, force = opts.force, shard_size = opts.shard_size or 0, db = opts.db, force_hint = "--force" })
  m:free()
  if not ok then error(r, 0) end
  for _, w in ipairs(r.warnings) do io.stderr:write("lacos: warning: " .. w .. "\n") end
  io.stderr:write(("lacos: exported %s%s as a sentence-transformers directory %s (%s pooling%s, max_seq_length %d, %s weights%s) in %s\n")
    :format(opts.model, opts.adapter and (" + " .. opts.adapter) or "", opts.out, r.pooling, r.normalize and ", normalised" or "",
            r.max_length, r.dtype, r.run and (", run " .. r.run) or "", require("lacos.util").duration(require("lacos.util").clock() - t0)))
  return 0
end

return M
