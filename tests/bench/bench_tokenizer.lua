-- bench_tokenizer.lua: lacos' tokenizer speed on a file of sentences (one per
-- line). Prints one line "lacos <tokens> <seconds-first> <seconds-best> <threads>".
--   lacos run tests/bench/bench_tokenizer.lua TOKENIZER.json SENTENCES.txt [REPEATS]
local lacos = require "lacos"
local ffi = require "ffi"
pcall(ffi.cdef, [[
  typedef struct lacos_bench_timespec { long tv_sec; long tv_nsec; } lacos_bench_timespec;
  int lacos_bench_clock_gettime(int clock, lacos_bench_timespec *ts) __asm__("clock_gettime");
]])
local ts = ffi.new("lacos_bench_timespec")
local function now() ffi.C.lacos_bench_clock_gettime(1, ts) return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9 end

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
