-- lacos.tokenizer: Hugging Face tokenizer.json byte-level BPE (engine/tokenizer.c),
-- giving the ids of the tokenizers library for BLOOM's tokenizer.
--
--   local tok = lacos.tokenizer.load("models/bloom-560m/tokenizer.json")
--   tok:encode("Hello world")                 --> {59414, 8876}
--   local ids, mask = tok:encode_batch({"a", "longer text"},
--                       {padding_side = "left", max_length = 512, truncation = true})
--   tok:decode({59414, 8876})                 --> "Hello world"
--   tok:vocab_size(), tok:token_to_id("Ġworld"), tok:id_to_token(8876)
--
-- Ids are the tokenizer's own (0-based). encode adds no BOS/EOS and neither
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

local sides = { right = 0, left = 1 }
local side_names = { [0] = "right", [1] = "left" }

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

local ids_out = ffi.new("const int32_t*[1]")
local off_out = ffi.new("const int32_t*[1]")
local n_out = ffi.new("int[1]")

local function check_text(text, fn)
  if type(text) ~= "string" then error(fn .. ": expected a string, got " .. type(text), 3) end
end

-- The ids of one text, as a table.
function Tokenizer:encode(text)
  check_text(text, "encode")
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

-- The ids of many texts at once (spread over the engine's threads): a list
-- of tables, or with {flat = true} the raw arrays (ids, offsets, n) valid
-- until the next call, for callers that stream them out.
function Tokenizer:encode_list(texts, opts)
  opts = util.options(opts, { flat = false }, "encode_list")
  local arr, lens, n = text_arrays(texts, "encode_list")
  check(C.lacos_tokenizer_encode_list(ptr(self), ids_out, off_out, arr, lens, n))
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

-- The file's batch settings as a table (see encode_batch).
function Tokenizer:batch_options()
  local o = ffi.new("lacos_tokenizer_batch_options")
  C.lacos_tokenizer_batch_options_init(ptr(self), o)
  return {
    max_length = o.max_length > 0 and o.max_length or nil, truncation = o.truncation == 1,
    truncation_side = side_names[o.truncation_side], pad_length = o.pad_length > 0 and o.pad_length or nil,
    pad_to_multiple_of = o.pad_to_multiple_of > 0 and o.pad_to_multiple_of or nil,
    padding_side = side_names[o.padding_side], pad_id = o.pad_id >= 0 and o.pad_id or nil,
  }
end

local function count_opt(v, name, min)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= math.floor(v) or v < min or v > 2147483647 then
    error(("encode_batch: %s must be a whole number of at least %d, got %s"):format(name, min, tostring(v)), 4)
  end
  return v
end

local function side_opt(v, name)
  if v == nil then return nil end
  local s = sides[v]
  if not s then error(("encode_batch: %s must be \"right\" or \"left\", got %s"):format(name, tostring(v)), 4) end
  return s
end

-- Token ids and attention mask of a list of texts as two (n, T) i32 tensors.
-- Options (each defaults to the tokenizer.json's padding/truncation sections):
--   padding_side "right"|"left", pad_id, pad_length (pad every row to at least
--   this, like padding Fixed; 0 = to the longest row), pad_to_multiple_of
--   (0 = none), max_length (0 = no limit), truncation (true: cut rows longer
--   than max_length; false: such a row is an error), truncation_side
--   "right"|"left" (which end is cut).
function Tokenizer:encode_batch(texts, opts)
  opts = util.options(opts, { padding_side = util.ANY, pad_id = util.ANY, pad_length = util.ANY,
                              pad_to_multiple_of = util.ANY, max_length = util.ANY, truncation = util.ANY,
                              truncation_side = util.ANY }, "encode_batch")
  local o = ffi.new("lacos_tokenizer_batch_options")
  C.lacos_tokenizer_batch_options_init(ptr(self), o)
  local v = side_opt(opts.padding_side, "padding_side"); if v then o.padding_side = v end
  v = side_opt(opts.truncation_side, "truncation_side"); if v then o.truncation_side = v end
  v = count_opt(opts.pad_id, "pad_id", 0); if v then o.pad_id = v end
  v = count_opt(opts.pad_length, "pad_length", 0); if v then o.pad_length = v end
  v = count_opt(opts.pad_to_multiple_of, "pad_to_multiple_of", 0); if v then o.pad_to_multiple_of = v end
  v = count_opt(opts.max_length, "max_length", 0); if v then o.max_length = v end
  if opts.truncation ~= nil then
    if type(opts.truncation) ~= "boolean" then
      error("encode_batch: truncation must be true or false, got " .. tostring(opts.truncation), 2)
    end
    o.truncation = opts.truncation and 1 or 0
    if opts.truncation and o.max_length == 0 then error("encode_batch: truncation = true needs a max_length", 2) end
  end
  local arr, lens, n = text_arrays(texts, "encode_batch")
  local ids_o, mask_o = E.out("lacos_tensor*"), ffi.new("lacos_tensor*[1]")
  check(C.lacos_tokenizer_encode_batch(ids_o, mask_o, ptr(self), arr, lens, n, o))
  local ids, mask = T.own(ids_o[0]), T.own(mask_o[0])
  return ids, mask
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
    if t.ndim ~= 1 or t.dtype ~= 4 or C.lacos_tensor_is_contiguous(t) == 0 then
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
