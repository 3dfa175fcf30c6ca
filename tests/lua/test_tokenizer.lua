-- Tokenizer through the Lua API against the tokenizers library
-- (tests/fixtures/tokenizer, written by tests/reference/make_tokenizer.py):
-- edge cases and random strings for four tokenizer.json files, decoding,
-- token lookups, batches with padding/truncation, the option checks, and
-- BLOOM's own golden case when LACOS_BLOOM_TOKENIZER points at the real file.
-- The sentences of the shared datasets are checked by tests/c/test_tokenizer.c
-- (read from LACOS_TEST_DATA at test time).
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local ffi = require "ffi"
local C = lacos.engine.C

local dir = H.root .. "/tests/fixtures/tokenizer/"

local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
local function sha256(s)
  local hex = ffi.new("char[65]")
  assert(C.lacos_sha256_buffer(s, #s, hex) == 0)
  return ffi.string(hex)
end
local function ids_digest(ids) return sha256(table.concat(ids, " ") .. "\n") end
local function show(s) return (("%q"):format(#s > 80 and s:sub(1, 80) .. "..." or s)) end
local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local files = {
  { "bloomlike-32k.json", "cases-bloomlike.json" },
  { "added-small.json", "cases-added.json" },
  { "gpt2-small.json", "cases-gpt2.json" },
  { "gpt2-fallback.json", "cases-fallback.json" },
}

for _, f in ipairs(files) do
  local tok = lacos.tokenizer.load(dir .. f[1])
  local fx = json.read(dir .. f[2])

  H.test(f[1] .. ": ids, decoded text of edge cases and random strings", function()
    local bad = {}
    for i, c in ipairs(fx.cases) do
      local text = c.hex and unhex(c.hex) or unhex(c.unit_hex):rep(c.times)
      local ids = tok:encode(text)
      local ok
      if c.ids then ok = same_list(ids, c.ids) else ok = #ids == c.n_ids and ids_digest(ids) == c.ids_sha256 end
      local dec, dec_skip = tok:decode(ids, { skip_special = false }), tok:decode(ids)
      if c.ids then
        local want = c.decoded_hex and unhex(c.decoded_hex) or text
        local want_skip = c.decoded_skip_hex and unhex(c.decoded_skip_hex) or want
        ok = ok and dec == want and dec_skip == want_skip
      else
        ok = ok and sha256(dec) == c.decoded_sha256 and sha256(dec_skip) == c.decoded_skip_sha256
      end
      if not ok then
        bad[#bad + 1] = ("case %d %s: ids %s, expected %s"):format(i, show(text), table.concat(ids, " "):sub(1, 120),
          c.ids and table.concat(c.ids, " "):sub(1, 120) or (c.n_ids .. " ids"))
      end
    end
    if #bad > 0 then error(#bad .. " of " .. #fx.cases .. " cases differ:\n" .. table.concat(bad, "\n", 1, math.min(#bad, 8))) end
  end)

  H.test(f[1] .. ": decoding id lists, with and without special tokens", function()
    for i, d in ipairs(fx.decode) do
      H.eq(tok:decode(d.ids, { skip_special = false }), unhex(d.hex), "decode case " .. i)
      H.eq(tok:decode(d.ids), unhex(d.skip_hex), "decode case " .. i .. " (skip special)")
    end
  end)

  H.test(f[1] .. ": vocabulary size and token lookups", function()
    H.eq(tok:vocab_size(), fx.vocab_size)
    for _, t in ipairs(fx.tokens) do
      if t.token == json.null then H.eq(tok:id_to_token(t.id), nil, "id " .. t.id)
      else
        H.eq(tok:id_to_token(t.id), t.token, "id " .. t.id)
        H.eq(tok:token_to_id(t.token), t.id, "token " .. t.token)
      end
    end
    H.eq(tok:token_to_id("definitely not a token \1"), nil)
    H.eq(tok:id_to_token(-1), nil)
    H.eq(tok:id_to_token(tok:vocab_size()), nil)
  end)

  H.test(f[1] .. ": encode_list equals encode", function()
    local texts = {}
    for i = 1, 300 do local c = fx.cases[i] if c and c.hex then texts[#texts + 1] = unhex(c.hex) end end
    local all = tok:encode_list(texts)
    H.eq(#all, #texts)
    for i, t in ipairs(texts) do H.truthy(same_list(all[i], tok:encode(t)), "text " .. i) end
  end)

  if fx.batches then
    H.test(f[1] .. ": encode_batch with the file's and overridden padding/truncation", function()
      local texts = {}
      for i, h in ipairs(fx.batches.texts_hex) do texts[i] = unhex(h) end
      for _, cfg in ipairs(fx.batches.configs) do
        local opts
        if cfg.padding ~= json.null then
          local p = cfg.padding
          opts = { padding_side = p.direction, pad_id = p.pad_id, pad_length = p.length or 0,
                   pad_to_multiple_of = p.pad_to_multiple_of or 0, truncation = false, max_length = 0 }
          if cfg.truncation ~= json.null then
            opts.truncation, opts.max_length, opts.truncation_side = true, cfg.truncation.max_length, cfg.truncation.direction
          end
        end
        local ids, mask = tok:encode_batch(texts, opts)
        -- tokenizers leaves a row longer than a Fixed length as it is; lacos
        -- pads every row to the longest, rounded up to the multiple (a tensor
        -- is rectangular).
        local T = 0
        for _, r in ipairs(cfg.ids) do if #r > T then T = #r end end
        local mult = opts and opts.pad_to_multiple_of or 4
        if mult > 0 and T % mult ~= 0 then T = T + mult - T % mult end
        H.eq(ids.shape[1], #texts, cfg.label)
        H.eq(ids.shape[2], T, cfg.label .. ": padded length")
        local left = (opts and opts.padding_side or "left") == "left"
        local pad_id = opts and opts.pad_id or 3
        local got_ids, got_mask = ids:table(), mask:table()
        for i = 1, #texts do
          local r, m = cfg.ids[i], cfg.mask[i]
          while #r < T do
            if left then table.insert(r, 1, pad_id) table.insert(m, 1, 0) else r[#r + 1] = pad_id m[#m + 1] = 0 end
          end
          H.truthy(same_list(got_ids[i], r), ("%s: row %d ids %s, expected %s"):format(cfg.label, i,
            table.concat(got_ids[i], " "), table.concat(r, " ")))
          H.truthy(same_list(got_mask[i], m), cfg.label .. ": row " .. i .. " mask")
        end
      end
    end)

    H.test(f[1] .. ": the file's batch settings", function()
      local o = tok:batch_options()
      H.eq(o.max_length, 24); H.eq(o.truncation, true); H.eq(o.truncation_side, "right")
      H.eq(o.padding_side, "left"); H.eq(o.pad_to_multiple_of, 4); H.eq(o.pad_id, 3); H.eq(o.pad_length, nil)
    end)
  end
  tok:free()
end

H.test("BLOOM's spelling of known pieces", function()
  local tok = lacos.tokenizer.load(dir .. "bloomlike-32k.json")
  local ids = tok:encode(" world")
  H.eq(#ids, 1)
  H.eq(tok:id_to_token(ids[1]), "Ġworld")
  H.eq(tok:token_to_id("Ġworld"), ids[1])
  -- No BOS/EOS is added; specials in the text are split out as themselves.
  H.same(tok:encode("<s>"), { 1 })
  H.same(tok:encode("</s><pad><unk>"), { 2, 3, 0 })
  H.truthy(tok:is_special(1) and not tok:is_special(ids[1]))
  H.eq(tok:decode({ 1, ids[1], 2 }), " world")
  H.eq(tok:decode({ 1, ids[1], 2 }, { skip_special = false }), "<s> world</s>")
  H.same(tok:encode(""), {})
end)

H.test("golden case of the real BLOOM tokenizer (LACOS_BLOOM_TOKENIZER)", function()
  -- transformers' BloomTokenizerFast docstring: "Hello world" -> [59414, 8876],
  -- " Hello world" -> [86153, 8876] with bigscience/bloom's tokenizer.json.
  local path = os.getenv("LACOS_BLOOM_TOKENIZER")
  if not path or path == "" then H.skip("set LACOS_BLOOM_TOKENIZER to BLOOM's tokenizer.json to run it") end
  local tok = lacos.tokenizer.load(path)
  H.eq(tok:vocab_size(), 250680)
  H.same(tok:encode("Hello world"), { 59414, 8876 })
  H.same(tok:encode(" Hello world"), { 86153, 8876 })
  H.eq(tok:decode({ 59414, 8876 }), "Hello world")
  H.eq(tok:token_to_id("<pad>"), 3)
end)

H.test("errors: bad arguments, bad options, bad ids, freed tokenizer", function()
  local tok = lacos.tokenizer.load(dir .. "bloomlike-32k.json")
  H.raises("No such file", lacos.tokenizer.load, H.tmp .. "/missing/tokenizer.json")
  H.raises("expected a file name", lacos.tokenizer.load, 42)
  H.raises("expected a string", tok.encode, tok, 5)
  H.raises("invalid UTF-8 at byte 1", tok.encode, tok, "a\255")
  H.raises("item 2 is a number", tok.encode_batch, tok, { "a", 7 })
  H.raises("text 2: invalid UTF-8", tok.encode_batch, tok, { "a", "\192\175" })
  H.raises("unknown option 'paddingside'", tok.encode_batch, tok, { "a" }, { paddingside = "left" })
  H.raises("padding_side must be \"right\" or \"left\"", tok.encode_batch, tok, { "a" }, { padding_side = "middle" })
  H.raises("max_length must be a whole number", tok.encode_batch, tok, { "a" }, { max_length = 2.5 })
  H.raises("truncation = true needs a max_length", tok.encode_batch, tok, { "a" }, { truncation = true })
  H.raises("more than the maximum length 2", tok.encode_batch, tok, { "one two three" }, { max_length = 2 })
  H.raises("is not a token", tok.decode, tok, { 1, 10 ^ 6 })
  H.raises("not a whole number", tok.decode, tok, { 1.5 })
  H.raises("unknown option", tok.decode, tok, { 1 }, { skip = true })
  local ids, mask = tok:encode_batch({ "one two three", "x" }, { max_length = 2, truncation = true, padding_side = "left" })
  H.eq(ids.shape[2], 2)
  H.same(mask:table(), { { 1, 1 }, { 0, 1 } })
  H.eq(tok:decode(ids[1]:contiguous()), tok:decode({ tok:encode("one two three")[1], tok:encode("one two three")[2] }))
  tok:free()
  H.raises("freed", tok.encode, tok, "a")
  tok:free()   -- twice is fine
end)

-- Release engine objects before the exit (H.done does not close the Lua state).
collectgarbage()
collectgarbage()
H.done()
