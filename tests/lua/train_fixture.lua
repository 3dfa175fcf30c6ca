-- train_fixture: what the training tests share — a whitespace tokenizer with
-- stable ids (no tokenizer file needed), a tiny random BLOOM with LoRA on
-- every linear, plain SGD (enough to exercise the loop; the real optimizers
-- have their own tests) and small datasets of each kind lacos.pairs knows.
local lacos = require "lacos"
local T = lacos.tensor

local F = {}

function F.toy_tokenizer(vocab)
  local tok = {}
  function tok:encode_batch(list, opts)
    local rows, maxlen = {}, 1
    for i, s in ipairs(list) do
      local ids = {}
      for w in s:gmatch("%S+") do
        local h = 0
        for k = 1, #w do h = (h * 31 + w:byte(k)) % 1000003 end
        ids[#ids + 1] = 4 + h % (vocab - 4)
      end
      if opts and opts.max_length and #ids > opts.max_length then
        local cut = {}
        for k = 1, opts.max_length do cut[k] = ids[k] end
        ids = cut
      end
      rows[i] = ids
      if #ids > maxlen then maxlen = #ids end
    end
    local ids, mask = T.zeros({ #list, maxlen }, "i32"), T.zeros({ #list, maxlen }, "i32")
    local ip, mp = ids:data_ptr(), mask:data_ptr()
    for i, r in ipairs(rows) do
      for k, v in ipairs(r) do ip[(i - 1) * maxlen + k - 1] = v; mp[(i - 1) * maxlen + k - 1] = 1 end
      for k = #r + 1, maxlen do ip[(i - 1) * maxlen + k - 1] = 3 end
    end
    return ids, mask
  end
  return tok
end

-- opts: seed, quant ("int8"), hidden (32), layers (2), heads (4), dropout (0), targets ({"all"}).
function F.model(seed, opts)
  opts = opts or {}
  local m = lacos.bloom.random({ base = "tiny-xs", vocab_size = 512, hidden_size = opts.hidden or 32,
                                 n_head = opts.heads or 4, n_layer = opts.layers or 2 },
    { seed = seed or 1, quant = opts.quant or "int8" })
  m.tokenizer = F.toy_tokenizer(512)
  m:add_lora { r = 4, alpha = 8, targets = opts.targets or { "all" }, seed = 2, dropout = opts.dropout or 0 }
  return m
end

function F.sgd(params)
  local o = { params = params }
  function o:step(lr) for _, p in ipairs(params) do p.param:sub_(p.grad * lr) end end
  function o:zero_grad() for _, p in ipairs(params) do p.grad:zero() end end
  function o:clip_grad_norm(max)
    local s = 0
    for _, p in ipairs(params) do s = s + p.grad:norm() ^ 2 end
    local n = math.sqrt(s)
    if n > max and n == n then for _, p in ipairs(params) do p.grad:mul_(max / n) end end
    return n
  end
  function o:state() return {} end
  function o:load_state() end
  return o
end

local words = { "cat", "dog", "bird", "fish", "tree", "car", "house", "river", "stone", "cloud", "rain", "sun" }
F.words = words

-- (anchor, positive) pairs
function F.dataset(n)
  local rows = {}
  for i = 1, n do
    local a = words[(i - 1) % #words + 1] .. " " .. words[(i * 7) % #words + 1] .. " " .. i
    rows[i] = { a, a .. " again " .. words[(i * 5) % #words + 1] }
  end
  return lacos.pairs.from_list(rows)
end

-- Sentence pairs whose relation follows from their words: the second
-- sentence repeats the first (score 5, entailment), shares one word
-- (score 2.5, neutral) or none (score 0, contradiction).
local function related(n)
  local out = {}
  for i = 1, n do
    local a, b, c = words[(i - 1) % #words + 1], words[(i * 5) % #words + 1], words[(i * 7 + 3) % #words + 1]
    local s1 = a .. " and " .. b .. " " .. i
    local kind = (i - 1) % 3
    local s2
    if kind == 0 then s2 = b .. " and " .. a .. " " .. i
    elseif kind == 1 then s2 = a .. " near " .. c
    else s2 = words[(i * 11 + 6) % #words + 1] == a and "nothing here" or (words[(i * 11 + 6) % #words + 1] .. " far away") end
    out[i] = { s1, s2, kind }
  end
  return out
end

function F.scored(n)
  local rows = {}
  for i, r in ipairs(related(n)) do rows[i] = { r[1], r[2], ({ [0] = 5, 2.5, 0 })[r[3]] } end
  return lacos.pairs.from_list(rows, { kind = "scored", source = "scored fixture" })
end

function F.labelled(n)
  local rows = {}
  for i, r in ipairs(related(n)) do rows[i] = { r[1], r[2], r[3] } end
  return lacos.pairs.from_list(rows, { kind = "labelled", source = "labelled fixture" })
end

return F
