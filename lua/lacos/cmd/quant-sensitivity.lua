-- lacos quant-sensitivity: which linears cost an int8 model its closeness to
-- f32, measured by the engine itself on the caller's sentences: each linear
-- quantised alone (every other one kept in f32, int8_skip) ranks the
-- linears by the lowest per-sentence cosine of the embeddings to the f32
-- model's; then, from every linear in int8, the worst are kept in f32 one at
-- a time until the lowest cosine reaches the target: that list is the
-- --int8-skip to use. One load per linear and per greedy step (each
-- converts the checkpoint again; quick for a small encoder, long for a
-- billion-parameter BLOOM).
local M = {}

M.spec = {
  name = "quant-sensitivity",
  usage = "lacos quant-sensitivity --model DIR --sentences FILE [--target X] [--threshold X] [--batch N]",
  summary = "Rank a model's linears by what int8 costs each, and print the --int8-skip list that reaches a cosine target.",
  description = "FILE holds one sentence per line (UTF-8). The cosine is per sentence, between the int8 model's and the\n" ..
                "f32 model's embeddings (the model's pooling); the lowest over the sentences decides. BERT's query, key\n" ..
                "and value are one fused linear in lacos (encoder.layer.N.attention.self): they are measured and kept\n" ..
                "together.",
  options = {
    { "--model", "DIR", "checkpoint directory (BLOOM, BERT, or a sentence-transformers directory)", required = true },
    { "--sentences", "FILE", "sentences to measure on, one per line", required = true },
    { "--target", "X", "lowest cosine to reach", type = "number", default = 0.999, min = 0, max = 1 },
    { "--threshold", "X", "LLM.int8 outlier threshold of the int8 linears", type = "number", default = 0, min = 0 },
    { "--batch", "N", "sentences per forward pass", type = "integer", default = 32, min = 1 },
    { "--threads", "N", "worker threads", type = "integer", min = 1 },
  },
  examples = {
    "lacos quant-sensitivity --model models/all-MiniLM-L6-v2 --sentences sentences.txt",
    "lacos quant-sensitivity --model models/bloom-560m --sentences sentences.txt --threshold 6 --target 0.995",
  },
}

local function read_sentences(path)
  local f, err = io.open(path, "rb")
  if not f then error(("%s: %s"):format(path, (err or "cannot open"):gsub("^[^:]*: ", "")), 0) end
  local bad_utf8 = require("lacos.pairs").bad_utf8
  local list, n = {}, 0
  for line in f:lines() do
    n = n + 1
    line = line:gsub("\r$", "")
    local at = bad_utf8(line)
    if at then f:close(); error(("%s:%d: invalid UTF-8 at byte %d"):format(path, n, at - 1), 0) end
    if line:match("%S") then list[#list + 1] = line end
  end
  f:close()
  if #list == 0 then error(("%s: no sentences (one per line)"):format(path), 0) end
  return list
end

-- The per-sentence cosines of two (n, d) embedding tensors: lowest and mean.
local function closeness(a, b)
  local ffi = require "ffi"
  local pa, pb = ffi.cast("float*", a.t.data), ffi.cast("float*", b.t.data)
  local n, d = a:size(1), a:size(2)
  local lo, sum = 1, 0
  for i = 0, n - 1 do
    local dot, na, nb = 0, 0, 0
    for k = 0, d - 1 do
      local x, y = pa[i * d + k], pb[i * d + k]
      dot, na, nb = dot + x * y, na + x * x, nb + y * y
    end
    -- two zero vectors (the empty sentence) are the same embedding
    local c = (na > 0 and nb > 0) and dot / math.sqrt(na * nb) or ((na == 0 and nb == 0) and 1 or 0)
    lo, sum = math.min(lo, c), sum + c
  end
  return lo, sum / n
end

-- The measurement as data: { linears = {names}, all_int8 = {lowest, mean, bytes}, f32_bytes,
-- alone = { {name, lowest, mean}, ... worst first }, greedy = { {name, lowest, mean, bytes}, ... },
-- skip = {names}, reached = bool }.
function M.measure(dir, sentences, opts)
  local bloom = require "lacos.bloom"
  opts = opts or {}
  local function embed(m)
    local e = m:encode(sentences, { batch = opts.batch or 32 })
    return e
  end
  local f32 = bloom.load(dir, { quant = "f32" })
  local ref = embed(f32)
  local out = { f32_bytes = f32:weight_bytes(), linears = {} }
  for _, l in ipairs(f32:linears()) do out.linears[#out.linears + 1] = l.name end
  f32:free()
  local function trial(skip)
    local m = bloom.load(dir, { quant = "int8", threshold = opts.threshold or 0, int8_skip = #skip > 0 and skip or nil })
    local lo, mean = closeness(embed(m), ref)
    local bytes = m:weight_bytes()
    m:free()
    collectgarbage()
    return lo, mean, bytes
  end
  local lo, mean, bytes = trial({})
  out.all_int8 = { lowest = lo, mean = mean, bytes = bytes }
  out.alone = {}
  for i, name in ipairs(out.linears) do
    local others = {}
    for j, n in ipairs(out.linears) do if j ~= i then others[#others + 1] = n end end
    local l, mn = trial(others)
    out.alone[#out.alone + 1] = { name = name, lowest = l, mean = mn }
  end
  table.sort(out.alone, function(a, b) return a.lowest < b.lowest end)
  out.greedy, out.skip = {}, {}
  out.reached = lo >= (opts.target or 0.999)
  for _, r in ipairs(out.alone) do
    if out.reached then break end
    out.skip[#out.skip + 1] = r.name
    local l, mn, b = trial(out.skip)
    out.greedy[#out.greedy + 1] = { name = r.name, lowest = l, mean = mn, bytes = b }
    out.reached = l >= (opts.target or 0.999)
  end
  return out
end

function M.run(opts)
  local lacos = require "lacos"
  if opts.threads then lacos.threads(opts.threads) end
  local sentences = read_sentences(opts.sentences)
  local r = M.measure(opts.model, sentences, { target = opts.target, threshold = opts.threshold, batch = opts.batch })
  local mb = function(b) return ("%.1f MB"):format(b / 1e6) end
  print(("%s: %d sentences, %d linears, LLM.int8 threshold %g; every linear int8: lowest cosine %.5f (mean %.5f), " ..
         "weights %s; f32: %s"):format(opts.model, #sentences, #r.linears, opts.threshold, r.all_int8.lowest,
         r.all_int8.mean, mb(r.all_int8.bytes), mb(r.f32_bytes)))
  print("\nquantised alone (the others f32), worst first:")
  print(("%4s  %-48s %13s %10s"):format("rank", "linear", "lowest cosine", "mean"))
  for i, a in ipairs(r.alone) do print(("%4d  %-48s %13.6f %10.6f"):format(i, a.name, a.lowest, a.mean)) end
  print(("\nkept in f32, worst first, until the lowest cosine reaches %g:"):format(opts.target))
  if #r.greedy == 0 then print("  (none needed: every linear in int8 reaches it)") end
  for i, g in ipairs(r.greedy) do
    print(("%4d  + %-46s %13.6f %10.6f  %s"):format(i, g.name, g.lowest, g.mean, mb(g.bytes)))
  end
  if r.reached then
    local last = r.greedy[#r.greedy]
    print(("\n--int8-skip %s\n  (%d of %d linears in f32: lowest cosine %.5f, weights %s)"):format(
      #r.skip > 0 and table.concat(r.skip, ",") or "none", #r.skip, #r.linears,
      last and last.lowest or r.all_int8.lowest, mb(last and last.bytes or r.all_int8.bytes)))
    return 0
  end
  io.stderr:write(("lacos quant-sensitivity: the target %g is not reached\n"):format(opts.target))
  return 1
end

return M
