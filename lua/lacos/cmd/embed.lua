-- lacos embed: sentence embeddings from the command line. Reads one
-- sentence per line from stdin, writes a float32 .npy of shape [n, hidden]
-- (or tab-separated rows with --out - --tsv).
local M = {}
local POOLINGS = require("lacos.bloom").pooling_list

M.spec = {
  name = "embed",
  usage = "lacos embed --model DIR [--adapter DIR] [--pooling " .. table.concat(POOLINGS, "|") .. "]\n" ..
          "                   [--quant f32|int8] [--int8-skip LIST]" ..
           " [--threshold X] [--device cpu|cuda] [--batch N] --out FILE.npy | --out - --tsv",
  summary = "Embed sentences (one per line on stdin) with a BLOOM or BERT-family model.",
  description = "The pooling recorded with the model or adapter (lacos.json), or a sentence-transformers directory's\n" ..
                "(1_Pooling/config.json), is used unless --pooling overrides it;\n" ..
                "asking for a different pooling than the model was trained with needs --force. Lines are read as\n" ..
                "UTF-8 with a trailing CR removed; an empty line embeds the empty string.",
  options = {
    { "--model", "DIR", "checkpoint directory (config.json, weights, tokenizer.json; BLOOM, BERT, or a sentence-transformers directory)",
      required = true },
    { "--adapter", "DIR", "LoRA adapter directory (lacos' or PEFT's)" },
    { "--pooling", "MODE", "pooling (default: the model's)", choices = POOLINGS },
    { "--quant", "KIND", "weight format in memory", default = "int8", choices = { "f32", "int8" } },
    require("lacos.bloom").int8_skip_option(),
    { "--threshold", "X", "LLM.int8 outlier threshold (0 = off, 6 = the usual)", type = "number", default = 0, min = 0 },
    { "--device", "NAME", "where the model runs", default = "cpu", choices = { "cpu", "cuda" } },
    { "--batch", "N", "sentences per forward pass", type = "integer", default = 32, min = 1 },
    { "--max-length", "N", "truncate sentences to N tokens (default: refuse longer than the model's limit)", type = "integer", min = 1 },
    { "--out", "FILE", ".npy output, or - for stdout (with --tsv)", required = true },
    { "--tsv", nil, "write tab-separated values instead of .npy" },
    { "--force", nil, "allow a pooling other than the recorded one" },
    { "--threads", "N", "worker threads", type = "integer", min = 1 },
  },
  examples = {
    "printf 'a cat\\nun chat\\n' | lacos embed --model models/bloom-560m --out emb.npy",
    "lacos embed --model models/bloom-560m --adapter runs/lora --out - --tsv < sentences.txt",
    "lacos embed --model models/all-MiniLM-L6-v2 --quant f32 --out e.npy < sentences.txt",
  },
}

-- A --pooling other than the one the model or adapter was trained with
-- needs --force: a usage error that names the options (exit 2).
function M.check_pooling(command, m, opts)
  local recorded = m.meta and m.meta.pooling
  if opts.pooling and recorded and opts.pooling ~= recorded and not opts.force then
    require("lacos.args").usage_error(command, "%s was trained with %s pooling; --pooling %s needs --force",
      opts.adapter or opts.model, recorded, opts.pooling)
  end
end

function M.run(opts)
  local lacos = require "lacos"
  if opts.threads then lacos.threads(opts.threads) end
  -- contradicting options are usage errors (exit 2)
  local usage = require("lacos.args").usage_error
  if opts.tsv and opts.out ~= "-" then usage("embed", "--tsv writes to stdout: use --out -") end
  if not opts.tsv and opts.out == "-" then usage("embed", "--out - needs --tsv (a .npy file cannot go to a terminal)") end
  local util = require "lacos.util"
  if util.isatty(0) then
    -- typed at a terminal: say what is expected rather than wait in silence
    io.stderr:write("lacos embed: reading sentences from the terminal, one per line; Ctrl-D ends the input " ..
                    "(or give them on stdin: lacos embed ... < sentences.txt)\n")
  end
  local lines = {}
  local bad_utf8 = require("lacos.pairs").bad_utf8
  for line in io.stdin:lines() do
    line = line:gsub("\r$", "")
    local at = bad_utf8(line)
    -- checked here so that the message names the input line (as lacos tokenize's does)
    if at then error(("line %d: invalid UTF-8 at byte %d (0x%02x)"):format(#lines + 1, at - 1, line:byte(at)), 0) end
    lines[#lines + 1] = line
  end
  if #lines == 0 then
    error("stdin: no sentences to embed (expected one sentence per line on stdin; an empty line embeds the empty string)", 0)
  end
  local m = lacos.bloom.load(opts.model, { quant = opts.quant, threshold = opts.threshold, adapter = opts.adapter,
                                           device = opts.device, int8_skip = lacos.bloom.skip_arg(opts.int8_skip) })
  M.check_pooling("embed", m, opts)
  local emb = m:encode(lines, { pooling = opts.pooling, batch = opts.batch, force = opts.force,
                                max_length = opts.max_length, truncation = opts.max_length ~= nil })
  if opts.tsv then
    local n, d = emb:size(1), emb:size(2)
    local p = emb:data_ptr()
    local out = io.stdout
    for i = 0, n - 1 do
      local row = {}
      for k = 0, d - 1 do row[k + 1] = ("%.7g"):format(p[i * d + k]) end
      out:write(table.concat(row, "\t"), "\n")
    end
  else
    emb:save_npy(opts.out)
    io.stderr:write(("lacos: wrote %d x %d embeddings (%s pooling) to %s\n"):format(emb:size(1), emb:size(2),
      opts.pooling or m:pooling(), opts.out))
  end
  return 0
end

return M
