-- lacos.tokenizer: Hugging Face tokenizer.json (engine/tokenizer.c, wordpiece.c,
-- tokenizer_template.c), giving the ids of the tokenizers library: byte-level
-- BPE as BLOOM's, and WordPiece as BERT's (BertNormalizer, BertPreTokenizer,
-- [CLS] ... [SEP] templates, token type ids).
--
--   local tok = lacos.tokenizer.load("models/bloom-560m/tokenizer.json")
--   tok:encode("Hello world")                 --> {59414, 8876}
--   local ids, mask = tok:encode_batch({"a", "longer text"},
--                       {padding_side = "left", max_length = 512, truncation = true})
--   tok:decode({59414, 8876})                 --> "Hello world"
--   tok:vocab_size(), tok:token_to_id("Ġworld"), tok:id_to_token(8876)
--
--   local bert = lacos.tokenizer.load("models/all-MiniLM-L6-v2/tokenizer.json")
--   bert:encode("Hello, world!")              --> {101, 7592, 1010, 2088, 999, 102}
--   bert:encode("Hello", {special = false})   --> {7592}
--   local ids, mask, types = bert:encode_pairs({"a question"}, {"an answer"})
--   bert:model_type(), bert:special_count()  --> "WordPiece", 2
--
-- Ids are the tokenizer's own (0-based). encode adds the post-processor's
-- special tokens (none for BLOOM; [CLS] and [SEP] for BERT) and neither
-- truncates nor pads; encode_batch truncates and pads as the file's
-- "truncation" and "padding" sections say, unless options override them.
local E = require "lacos.engine"
local T = require "lacos.tensor"
local util = require "lacos.util"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}
local Tokenizer = {}
Tokenizer.__index = Tokenizer
M.Tokenizer = Tokenizer

local sides = { right = C.LACOS_TOKENIZER_RIGHT, left = C.LACOS_TOKENIZER_LEFT }
local side_names = { [sides.right] = "right", [sides.left] = "left" }

function M.load(path)
  if type(path) ~= "string" then error("lacos.tokenizer.load: expected a file name, got " .. type(path), 2) end
  local out = ffi.new("lacos_tokenizer*[1]")
  check(C.lacos_tokenizer_load(out, path))
  return setmetatable({ ptr = ffi.gc(out[0], C.lacos_tokenizer_free), path = path }, Tokenizer)
end

local function ptr(self)
  if self.ptr == nil then error("this tokenizer has been freed", 3) end
  return self.ptr
end

function Tokenizer:free()
  if self.ptr ~= nil then C.lacos_tokenizer_free(ffi.gc(self.ptr, nil)) end
  self.ptr = nil
end

function Tokenizer:vocab_size() return C.lacos_tokenizer_vocab_size(ptr(self)) end

function Tokenizer:token_to_id(s)
  if type(s) ~= "string" then error("token_to_id: expected a string, got " .. type(s), 2) end
  local id = C.lacos_tokenizer_token_to_id(ptr(self), s, #s)
  if id < 0 then return nil end
  return id
end

local len_out = ffi.new("double[1]")
function Tokenizer:id_to_token(id)
  if type(id) ~= "number" then error("id_to_token: expected a number, got " .. type(id), 2) end
  local p = C.lacos_tokenizer_id_to_token(ptr(self), id, len_out)
  if p == nil then return nil end
  return ffi.string(p, len_out[0])
end

function Tokenizer:is_special(id) return C.lacos_tokenizer_is_special(ptr(self), id) == 1 end

-- "BPE" or "WordPiece".
function Tokenizer:model_type() return ffi.string(C.lacos_tokenizer_model_type(ptr(self))) end

-- How many special tokens encode puts around one text (or a pair, with pair = true).
function Tokenizer:special_count(pair) return C.lacos_tokenizer_special_count(ptr(self), pair and 1 or 0) end

local ids_out = ffi.new("const int32_t*[1]")
local off_out = ffi.new("const int32_t*[1]")
local n_out = ffi.new("int[1]")

local function check_text(text, fn)
  if type(text) ~= "string" then error(fn .. ": expected a string, got " .. type(text), 3) end
end

-- The ids of one text, as a table; {special = false} leaves out the
-- post-processor's special tokens.
function Tokenizer:encode(text, opts)
  check_text(text, "encode")
  opts = util.options(opts, { special = true }, "encode")
  if not opts.special then return self:encode_list({ text }, { special = false })[1] end
  check(C.lacos_tokenizer_encode(ptr(self), ids_out, n_out, text, #text))
  local p, n, t = ids_out[0], n_out[0], {}
  for i = 1, n do t[i] = p[i - 1] end
  return t
end

local function text_arrays(texts, fn)
  if type(texts) ~= "table" then error(fn .. ": expected a list of strings, got " .. type(texts), 3) end
  local n = #texts
  local arr = ffi.new("const char*[?]", n > 0 and n or 1)
  local lens = ffi.new("double[?]", n > 0 and n or 1)
  for i = 1, n do
    local s = texts[i]
    if type(s) ~= "string" then error(("%s: item %d is a %s, not a string"):format(fn, i, type(s)), 3) end
    arr[i - 1] = s
    lens[i - 1] = #s
  end
  return arr, lens, n
end

local batch_options

-- The ids of many texts at once (spread over the engine's threads): a list
-- of tables, or with {flat = true} the raw arrays (ids, offsets, n) valid
-- until the next call, for callers that stream them out. Special tokens as
-- encode ({special = false}: none); with max_length = N a longer text is an
-- error, or is cut to N ids (special tokens kept) with truncation = true, at
-- truncation_side "right" (default) or "left".
function Tokenizer:encode_list(texts, opts)
  opts = util.options(opts, { flat = false, special = true, max_length = util.ANY, truncation = util.ANY,
                              truncation_side = util.ANY }, "encode_list")
  local arr, lens, n = text_arrays(texts, "encode_list")
  local o = batch_options(self, { max_length = opts.max_length or 0, truncation = opts.truncation or false,
                                  truncation_side = opts.truncation_side, special = opts.special }, "encode_list")
  check(C.lacos_tokenizer_encode_list_opt(ptr(self), ids_out, off_out, arr, lens, n, o))
  local ids, off = ids_out[0], off_out[0]
  if opts.flat then return ids, off, n end
  local out = {}
  for i = 0, n - 1 do
    local t = {}
    for j = off[i], off[i + 1] - 1 do t[#t + 1] = ids[j] end
    out[i + 1] = t
  end
  return out
end

local strategies = { longest_first = C.LACOS_TOKENIZER_LONGEST_FIRST, only_first = C.LACOS_TOKENIZER_ONLY_FIRST,
                     only_second = C.LACOS_TOKENIZER_ONLY_SECOND }
local strategy_names = {}
for name, v in pairs(strategies) do strategy_names[v] = name end

-- The file's batch settings as a table (see encode_batch).
function Tokenizer:batch_options()
  local o = ffi.new("lacos_tokenizer_batch_options")
  C.lacos_tokenizer_batch_options_init(ptr(self), o)
  return {
    max_length = o.max_length > 0 and o.max_length or nil, truncation = o.truncation == 1,
    truncation_side = side_names[o.truncation_side], pad_length = o.pad_length > 0 and o.pad_length or nil,
    pad_to_multiple_of = o.pad_to_multiple_of > 0 and o.pad_to_multiple_of or nil,
    padding_side = side_names[o.padding_side], pad_id = o.pad_id >= 0 and o.pad_id or nil,
    pad_type_id = o.pad_type_id, truncation_strategy = strategy_names[o.truncation_strategy], special = o.add_special == 1,
  }
end

local function count_opt(v, name, min, fn)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= math.floor(v) or v < min or v > 2147483647 then
    error(("%s: %s must be a whole number of at least %d, got %s"):format(fn, name, min, tostring(v)), 4)
  end
  return v
end

local function side_opt(v, name, fn)
  if v == nil then return nil end
  local s = sides[v]
  if not s then error(("%s: %s must be \"right\" or \"left\", got %s"):format(fn, name, tostring(v)), 4) end
  return s
end

-- The engine's options struct from the file's settings and opts (see encode_batch).
function batch_options(self, opts, fn)
  local o = ffi.new("lacos_tokenizer_batch_options")
  C.lacos_tokenizer_batch_options_init(ptr(self), o)
  local v = side_opt(opts.padding_side, "padding_side", fn); if v then o.padding_side = v end
  v = side_opt(opts.truncation_side, "truncation_side", fn); if v then o.truncation_side = v end
  v = count_opt(opts.pad_id, "pad_id", 0, fn); if v then o.pad_id = v end
  v = count_opt(opts.pad_type_id, "pad_type_id", 0, fn); if v then o.pad_type_id = v end
  v = count_opt(opts.pad_length, "pad_length", 0, fn); if v then o.pad_length = v end
  v = count_opt(opts.pad_to_multiple_of, "pad_to_multiple_of", 0, fn); if v then o.pad_to_multiple_of = v end
  v = count_opt(opts.max_length, "max_length", 0, fn); if v then o.max_length = v end
  if opts.truncation_strategy ~= nil then
    local st = strategies[opts.truncation_strategy]
    if not st then
      error(("%s: truncation_strategy must be \"longest_first\", \"only_first\" or \"only_second\", got %s"):format(
        fn, tostring(opts.truncation_strategy)), 3)
    end
    o.truncation_strategy = st
  end
  if opts.special ~= nil then
    if type(opts.special) ~= "boolean" then error(fn .. ": special must be true or false, got " .. tostring(opts.special), 3) end
    o.add_special = opts.special and 1 or 0
  end
  if opts.truncation ~= nil then
    if type(opts.truncation) ~= "boolean" then
      error(fn .. ": truncation must be true or false, got " .. tostring(opts.truncation), 3)
    end
    o.truncation = opts.truncation and 1 or 0
    if opts.truncation and o.max_length == 0 then error(fn .. ": truncation = true needs a max_length", 3) end
  end
  return o
end

local batch_keys = { padding_side = util.ANY, pad_id = util.ANY, pad_type_id = util.ANY, pad_length = util.ANY,
                     pad_to_multiple_of = util.ANY, max_length = util.ANY, truncation = util.ANY,
                     truncation_side = util.ANY, truncation_strategy = util.ANY, special = util.ANY }

-- Token ids, attention mask and token type ids of a list of texts as three
-- (n, T) i32 tensors. Options (each defaults to the tokenizer.json's
-- padding/truncation sections):
--   padding_side "right"|"left", pad_id, pad_type_id, pad_length (pad every
--   row to at least this, like padding Fixed; 0 = to the longest row),
--   pad_to_multiple_of (0 = none), max_length (0 = no limit; special tokens
--   count), truncation (true: cut rows longer than max_length; false: such a
--   row is an error), truncation_side "right"|"left" (which end is cut),
--   truncation_strategy "longest_first"|"only_first"|"only_second" (pairs),
--   special (false: no [CLS]/[SEP] or other post-processor tokens).
function Tokenizer:encode_batch(texts, opts)
  opts = util.options(opts, batch_keys, "encode_batch")
  local o = batch_options(self, opts, "encode_batch")
  local arr, lens, n = text_arrays(texts, "encode_batch")
  local ids_o, mask_o, types_o = E.out("lacos_tensor*"), ffi.new("lacos_tensor*[1]"), ffi.new("lacos_tensor*[1]")
  check(C.lacos_tokenizer_encode_pairs(ids_o, mask_o, types_o, ptr(self), arr, lens, nil, nil, n, o))
  return T.own(ids_o[0]), T.own(mask_o[0]), T.own(types_o[0])
end

-- encode_batch of pairs: first[i] with second[i] in the post-processor's
-- pair template ([CLS] A [SEP] B [SEP] for BERT, type ids 0 then 1).
function Tokenizer:encode_pairs(first, second, opts)
  opts = util.options(opts, batch_keys, "encode_pairs")
  local o = batch_options(self, opts, "encode_pairs")
  local a, al, n = text_arrays(first, "encode_pairs")
  local b, bl, m = text_arrays(second, "encode_pairs")
  if n ~= m then error(("encode_pairs: %d first texts but %d second texts"):format(n, m), 2) end
  local ids_o, mask_o, types_o = E.out("lacos_tensor*"), ffi.new("lacos_tensor*[1]"), ffi.new("lacos_tensor*[1]")
  check(C.lacos_tokenizer_encode_pairs(ids_o, mask_o, types_o, ptr(self), a, al, b, bl, n, o))
  return T.own(ids_o[0]), T.own(mask_o[0]), T.own(types_o[0])
end

-- Text of a list of ids (a table, or a 1-d i32 tensor). skip_special (default
-- true, as the tokenizers library) leaves out special tokens.
function Tokenizer:decode(ids, opts)
  opts = util.options(opts, { skip_special = true }, "decode")
  local n, buf
  if type(ids) == "table" then
    n = #ids
    buf = ffi.new("int32_t[?]", n > 0 and n or 1)
    for i = 1, n do
      local v = ids[i]
      if type(v) ~= "number" or v ~= math.floor(v) then error(("decode: item %d is not a whole number"):format(i), 2) end
      if v < -2147483648 or v > 2147483647 then error(("decode: id %s at position %d is out of range"):format(tostring(v), i), 2) end
      buf[i - 1] = v
    end
  elseif type(ids) == "cdata" and ids.t ~= nil then
    local t = ids.t
    if t.ndim ~= 1 or t.dtype ~= C.LACOS_I32 or C.lacos_tensor_is_contiguous(t) == 0 then
      error("decode: a tensor of ids must be 1-d, i32 and contiguous", 2)
    end
    n, buf = tonumber(t.shape[0]), ffi.cast("int32_t*", t.data)
  else
    error("decode: expected a list of ids, got " .. type(ids), 2)
  end
  local text, len = ffi.new("const char*[1]"), ffi.new("double[1]")
  check(C.lacos_tokenizer_decode(ptr(self), text, len, buf, n, opts.skip_special and 1 or 0))
  return ffi.string(text[0], len[0])
end

Tokenizer.__tostring = function(self)
  if self.ptr == nil then return "lacos.tokenizer (freed)" end
  return ("lacos.tokenizer %s (%d ids)"):format(self.path, self:vocab_size())
end

return M
