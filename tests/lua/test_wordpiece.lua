-- WordPiece tokenizers through the Lua API (lacos.tokenizer) against the
-- tokenizers library (tests/fixtures/wordpiece, written by
-- tests/reference/make_wordpiece.py): ids with and without special tokens,
-- decoding, batches and pairs with token type ids under the library's
-- settings (each option of encode_batch/encode_pairs as the reference set
-- it), for all-MiniLM-L6-v2's tokenizer.json (skipped without
-- models/all-MiniLM-L6-v2) and for the small trained tokenizer; the option
-- checks. The engine-level checks (every sentence of the shared data, every
-- code point, 16 variants, bad files) are in tests/c/test_wordpiece.c.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"

local dir = H.root .. "/tests/fixtures/wordpiece/"
local minilm = (os.getenv("LACOS_MINILM") or (H.root .. "/models/all-MiniLM-L6-v2")) .. "/tokenizer.json"

local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
local function show(s) return (("%q"):format(#s > 60 and s:sub(1, 60) .. "..." or s)) end
local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end
local function row(t, i)
  local out = {}
  for j = 1, t.shape[2] do out[j] = t[i][j] end
  return out
end

-- Options for encode_batch / encode_pairs as the reference set them on the library.
local function options(cfg)
  local o = { special = cfg.add_special }
  local pad, tr = cfg.padding, cfg.truncation
  if type(pad) == "table" then
    o.padding_side, o.pad_id = pad.direction, pad.pad_id
    o.pad_length = type(pad.length) == "number" and pad.length or 0
    o.pad_to_multiple_of = type(pad.pad_to_multiple_of) == "number" and pad.pad_to_multiple_of or 0
    o.pad_type_id = type(pad.pad_type_id) == "number" and pad.pad_type_id or 0
  end
  if type(tr) == "table" then
    o.max_length, o.truncation = tr.max_length, true
    o.truncation_strategy = type(tr.strategy) == "string" and tr.strategy or "longest_first"
    o.truncation_side = type(tr.direction) == "string" and tr.direction or "right"
  end
  return o
end

local function check_tokenizer(name, path, fx)
  local tok
  H.test(name .. ": edge cases, with and without special tokens, decoded", function()
    tok = lacos.tokenizer.load(path)
    H.eq(tok:model_type(), "WordPiece")
    H.eq(tok:special_count(), fx.special_count[1])
    H.eq(tok:special_count(true), fx.special_count[2])
    local bad = {}
    for i, c in ipairs(fx.cases) do
      if c.ids then
        local text = unhex(c.hex)
        local ids = tok:encode(text)
        local plain = tok:encode(text, { special = false })
        local want_plain = c.ids_nospecial or { unpack(c.ids, 2, #c.ids - 1) }
        local ok = same_list(ids, c.ids) and same_list(plain, want_plain) and
                   tok:decode(ids, { skip_special = false }) == unhex(c.decoded_hex) and tok:decode(ids) == unhex(c.decoded_skip_hex)
        if not ok then bad[#bad + 1] = ("case %d %s: %s, expected %s"):format(i, show(text), table.concat(ids, " "), table.concat(c.ids, " ")) end
      end
    end
    if #bad > 0 then error(#bad .. " cases differ:\n" .. table.concat(bad, "\n", 1, math.min(#bad, 5))) end
  end)

  H.test(name .. ": batches and pairs (ids, attention mask, token type ids) under the library's settings", function()
    if not tok then H.skip("the tokenizer did not load") end
    local texts, firsts, seconds = {}, {}, {}
    for i, h in ipairs(fx.batches.texts_hex) do texts[i] = unhex(h) end
    for i, p in ipairs(fx.batches.pairs_hex) do firsts[i], seconds[i] = unhex(p[1]), unhex(p[2]) end
    local checked = 0
    for _, cfg in ipairs(fx.batches.configs) do
      local o = options(cfg)
      for _, kind in ipairs { "single", "pair" } do
        local want = cfg[kind]
        local ok, ids, mask, types
        if kind == "single" then ok, ids, mask, types = pcall(tok.encode_batch, tok, texts, o)
        else ok, ids, mask, types = pcall(tok.encode_pairs, tok, firsts, seconds, o) end
        if want.error then
          H.truthy(not ok, ("%s, %s: the library refused (%s)"):format(cfg.label, kind, want.error))
        else
          H.truthy(ok, ("%s, %s: %s"):format(cfg.label, kind, tostring(ids)))
          local ragged = type(cfg.padding) ~= "table" and (o.pad_length or 0) == 0
          for i = 1, #want.ids do
            local got = { row(ids, i), row(mask, i), row(types, i) }
            for f, field in ipairs { "ids", "mask", "type_ids" } do
              local w = want[field][i]
              local g = got[f]
              if ragged and #g > #w then g = { unpack(g, 1, #w) } end   -- the library does not pad here
              if not same_list(g, w) then
                error(("%s, %s row %d: %s %s, expected %s"):format(cfg.label, kind, i, field, table.concat(g, " "), table.concat(w, " ")))
              end
            end
          end
          checked = checked + #want.ids
        end
      end
    end
    H.truthy(checked > 100, "rows checked: " .. checked)
  end)
  return function() return tok end
end

local wp = json.read(dir .. "cases-variants.json").variants[1]
local small = check_tokenizer("wp-small.json", dir .. "wp-small.json", wp)

if io.open(minilm, "rb") then
  check_tokenizer("all-MiniLM-L6-v2", minilm, json.read(dir .. "cases-minilm.json"))
else
  local why = minilm .. " is absent (make models-minilm fetches all-MiniLM-L6-v2)"
  H.skip_test("all-MiniLM-L6-v2: edge cases, with and without special tokens, decoded", why)
  H.skip_test("all-MiniLM-L6-v2: batches and pairs (ids, attention mask, token type ids) under the library's settings", why)
end

H.test("options of encode_batch, encode_pairs and encode_list are checked", function()
  local tok = small()
  H.raises("truncation_strategy must be", tok.encode_batch, tok, { "a" }, { truncation_strategy = "shortest" })
  H.raises("special must be true or false", tok.encode_batch, tok, { "a" }, { special = 1 })
  H.raises("pad_type_id must be a whole number", tok.encode_pairs, tok, { "a" }, { "b" }, { pad_type_id = -1 })
  H.raises("encode_pairs: 2 first texts but 1 second texts", tok.encode_pairs, tok, { "a", "b" }, { "c" })
  H.raises("max_length 1 leaves no room for the 2 special tokens", tok.encode_batch, tok, { "a b c" }, { max_length = 1, truncation = true })
  H.raises("text 1 has 5 tokens, more than the maximum length 4", tok.encode_list, tok, { "a b c" }, { max_length = 4 })
  H.raises("truncation only_second needs pairs", tok.encode_batch, tok, { "a b c d e" }, { max_length = 4, truncation = true,
    truncation_strategy = "only_second" })
  local cut = tok:encode_list({ "a b c d e" }, { max_length = 4, truncation = true, truncation_side = "left" })[1]
  local full = tok:encode("a b c d e")
  H.same(cut, { full[1], full[5], full[6], full[7] })
  local o = tok:batch_options()
  H.eq(o.special, true)
  H.eq(o.truncation_strategy, "longest_first")
  H.eq(o.pad_id, 0)   -- no padding section: [PAD]
end)

H.done()
