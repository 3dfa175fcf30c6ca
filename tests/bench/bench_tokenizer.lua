-- bench_tokenizer.lua: lacos' tokenizer speed on a file of sentences (one per
-- line). Prints one line "lacos <tokens> <seconds-first> <seconds-best> <threads>".
--   lacos run tests/bench/bench_tokenizer.lua TOKENIZER.json SENTENCES.txt [REPEATS]
local lacos = require "lacos"
local now = require("lacos.util").clock

local tok_path, text_path, repeats = arg[1], arg[2], tonumber(arg[3] or "5")
local lines = {}
for l in io.lines(text_path) do lines[#lines + 1] = l end
local tok = lacos.tokenizer.load(tok_path)
local first, best, tokens
for r = 1, repeats do
  local t0 = now()
  local _, off, n = tok:encode_list(lines, { flat = true })
  local dt = now() - t0
  tokens = off[n]
  if r == 1 then first = dt end
  if not best or dt < best then best = dt end
end
print(("lacos %d %.6f %.6f %d"):format(tokens, first, best, lacos.threads()))
