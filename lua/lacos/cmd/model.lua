-- lacos model: random-weight BLOOM checkpoints in the exact shapes of the
-- released models (or any config.json), for tests, demos and speed and memory
-- measurements where the real weights are not available.
local M = {}

M.spec = {
  name = "model",
  usage = "lacos model random NAME_OR_CONFIG.json --out DIR [--seed N] [--dtype f16|bf16|f32] [--tokenizer FILE.json]\n" ..
          "       lacos model info DIR_OR_NAME\n" ..
          "       lacos model list",
  summary = "Create random-weight BLOOM checkpoints and describe models.",
  description = "NAME is one of the released shapes (bloom-560m, bloom-1b1, bloom-1b7, bloom-3b, bloom-7b1) or the test\n" ..
                "ladder (tiny-xs, tiny-s, tiny-m, tiny-l); a path ending in .json is read as a BLOOM config.json.\n" ..
                "The checkpoint is written in the Hugging Face layout (config.json, model.safetensors or shards),\n" ..
                "one shard at a time, so a bloom-7b1 shape fits in memory.",
  options = {
    { "--out", "DIR", "output directory (random)" },
    { "--seed", "N", "random seed", type = "integer", default = 0 },
    { "--dtype", "TYPE", "weight dtype on disk", default = "f16", choices = { "f16", "bf16", "f32" } },
    { "--tokenizer", "FILE", "tokenizer.json to copy into the checkpoint" },
    { "--shard-size", "BYTES", "largest shard in bytes (default 5e9, the hub's)", type = "number" },
  },
  positional = { min = 1, max = 2, names = "a subcommand (random, info, list)" },
  examples = {
    "lacos model random bloom-560m --out models/bloom-560m-random --seed 1",
    "lacos model random tiny-s --out /tmp/tiny --tokenizer tokenizer.json",
    "lacos model info bloom-7b1",
  },
}

local function copy_file(src, dst)
  local f, err = io.open(src, "rb")
  if not f then error(("%s: %s"):format(src, err), 0) end
  local data = f:read("*a")
  f:close()
  local g, err2 = io.open(dst, "wb")
  if not g then error(("%s: %s"):format(dst, err2), 0) end
  g:write(data)
  g:close()
end

function M.run(opts)
  local bloom = require "lacos.bloom"
  local util = require "lacos.util"
  local sub = opts._[1]
  if sub == "list" then
    print(("%-12s %8s %6s %6s %8s %14s"):format("name", "hidden", "layers", "heads", "vocab", "parameters"))
    for _, name in ipairs(bloom.config_names()) do
      local c = bloom.config(name)
      print(("%-12s %8d %6d %6d %8d %14s"):format(name, c.hidden_size, c.n_layer, c.n_head, c.vocab_size,
        ("%.3f B"):format(bloom.param_count(name) / 1e9)))
    end
    return 0
  elseif sub == "info" then
    local what = opts._[2] or require("lacos.args").usage_error("model", "info needs a directory or a model name")
    local f = io.open(what .. "/config.json", "r")
    local cfg
    if f then f:close(); cfg = bloom.config(what .. "/config.json") else cfg = bloom.config(what) end
    local E = require "lacos.engine"
    print(("hidden %d, layers %d, heads %d, vocab %d, max length %d, %.3f B parameters"):format(
      cfg.hidden_size, cfg.n_layer, cfg.n_head, cfg.vocab_size, cfg.max_length, E.C.lacos_bloom_config_params(cfg) / 1e9))
    return 0
  elseif sub ~= "random" then
    require("lacos.args").usage_error("model", "unknown subcommand '%s' (random, info, list)", tostring(sub))
  end
  local name = opts._[2] or require("lacos.args").usage_error("model", "random needs a model name or a config.json")
  if not opts.out then require("lacos.args").usage_error("model", "random needs --out DIR") end
  local t0 = os.time()
  -- f32 storage keeps the exact random values; the int8 codes they come from
  -- make the saved checkpoint quantise back to the same int8 model.
  local m = bloom.random(name, { seed = opts.seed, quant = "int8", embedding_dtype = opts.dtype == "f32" and "f32" or opts.dtype })
  local cfg = m:config()
  io.stderr:write(("lacos: %s, %.3f B parameters, writing %s weights to %s\n"):format(name,
    require("lacos.engine").C.lacos_bloom_config_params(bloom.config(name)) / 1e9, opts.dtype, opts.out))
  local E = require "lacos.engine"
  E.check(E.C.lacos_bloom_save(m.ptr, opts.out, require("lacos.tensor").dtype_of(opts.dtype), opts.shard_size or 0))
  if opts.tokenizer then copy_file(opts.tokenizer, opts.out .. "/tokenizer.json") end
  require("lacos.json").write(opts.out .. "/lacos.json", {
    random = true, seed = opts.seed, shape = name, padding_side = "right",
    created_by = "lacos " .. require("lacos").version(),
  })
  io.stderr:write(("lacos: done in %ds (hidden %d, %d layers)\n"):format(os.time() - t0, cfg.hidden_size, cfg.n_layer))
  m:free()
  return 0
end

return M
