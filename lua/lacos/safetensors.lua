-- lacos.safetensors: safetensors files and Hugging Face checkpoint
-- directories (engine/safetensors.c).
--
--   local st = lacos.safetensors.open("models/bloom-560m")   -- file, directory or index
--   for _, name in ipairs(st:names()) do print(name, st:info(name).dtype) end
--   local w = st:get("h.0.input_layernorm.weight")   -- "transformer." optional
--   st:metadata()                                    -- {format = "pt", ...}
--   lacos.safetensors.save("out.safetensors", {w = w}, {note = "hello"})
--   lacos.safetensors.save_sharded("ckpt", {w = w}, {max_bytes = 1e9})
--
-- Tensors from get() are zero-copy views on the mapped file in the file's
-- dtype; the mapping lives as long as any of them does, even after
-- st:free(). Writing to a view changes this process's copy only.
local E = require "lacos.engine"
local T = require "lacos.tensor"
local util = require "lacos.util"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}
local Checkpoint = {}
Checkpoint.__index = Checkpoint
M.Checkpoint = Checkpoint

local dtype_names = {}
for k, v in pairs(T.dtypes) do dtype_names[v] = k end

local function handle(st)
  local h = rawget(st, "h")
  if h == nil then error("safetensors checkpoint was freed", 3) end
  return h
end

-- Opens a .safetensors file, a model.safetensors.index.json or a checkpoint directory.
function M.open(path)
  if type(path) ~= "string" then error("safetensors.open: path must be a string, got " .. type(path), 2) end
  local o = E.out("lacos_safetensors*")
  check(C.lacos_safetensors_open(o, path))
  local h = ffi.gc(o[0], C.lacos_safetensors_free)
  return setmetatable({ h = h, path = path }, Checkpoint)
end

function Checkpoint:free()
  local h = rawget(self, "h")
  if h ~= nil then
    ffi.gc(h, nil)
    C.lacos_safetensors_free(h)
    self.h = nil
  end
end

function Checkpoint:count() return C.lacos_safetensors_count(handle(self)) end

-- Tensor names, sorted.
function Checkpoint:names()
  local h = handle(self)
  local out = {}
  for i = 0, C.lacos_safetensors_count(h) - 1 do out[#out + 1] = ffi.string(C.lacos_safetensors_name(h, i)) end
  return out
end

local function index_of(self, name, level)
  if type(name) ~= "string" then error("tensor name must be a string, got " .. type(name), level + 1) end
  local h = handle(self)
  local i = C.lacos_safetensors_find(h, name)
  if i == -2 then error(E.last_error(), 0) end
  return h, i
end

-- True when the checkpoint has the tensor (with or without "transformer.").
function Checkpoint:has(name)
  local _, i = index_of(self, name, 2)
  return i >= 0
end

-- {name=, dtype= ("f32", or nil when lacos cannot hold it), st_dtype= ("F32", "BOOL"),
--  shape= {...}, nbytes=, file=} or nil when absent.
local shape_buf = ffi.new("int64_t[8]")
local info_out = ffi.new("int[2]")
function Checkpoint:info(name)
  local h, i = index_of(self, name, 2)
  if i < 0 then return nil end
  check(C.lacos_safetensors_info(h, i, info_out, info_out + 1, shape_buf, 8))
  local ndim = info_out[1]
  local shape = {}
  if ndim > 8 then
    local big = ffi.new("int64_t[?]", ndim)
    check(C.lacos_safetensors_info(h, i, nil, nil, big, ndim))
    for d = 0, ndim - 1 do shape[d + 1] = tonumber(big[d]) end
  else
    for d = 0, ndim - 1 do shape[d + 1] = tonumber(shape_buf[d]) end
  end
  return {
    name = ffi.string(C.lacos_safetensors_name(h, i)),
    dtype = dtype_names[info_out[0]],
    st_dtype = ffi.string(C.lacos_safetensors_dtype_string(h, i)),
    shape = shape,
    nbytes = C.lacos_safetensors_nbytes(h, i),
    file = ffi.string(C.lacos_safetensors_file(h, i)),
  }
end

-- The tensor (a view on the mapped file); raises when absent or unsupported.
function Checkpoint:get(name)
  if type(name) ~= "string" then error("tensor name must be a string, got " .. type(name), 2) end
  return T.make(C.lacos_safetensors_get, handle(self), name)
end

-- Every tensor lacos can hold, as {name = tensor}.
function Checkpoint:tensors()
  local out = {}
  for _, name in ipairs(self:names()) do out[name] = self:get(name) end
  return out
end

-- The string metadata as a table.
function Checkpoint:metadata()
  local h = handle(self)
  local out = {}
  for i = 0, C.lacos_safetensors_metadata_count(h) - 1 do
    local k = C.lacos_safetensors_metadata_key(h, i)
    out[ffi.string(k)] = ffi.string(C.lacos_safetensors_metadata(h, k))
  end
  return out
end

function Checkpoint:__tostring()
  local h = rawget(self, "h")
  if h == nil then return "safetensors(freed)" end
  return ("safetensors(%s, %d tensors)"):format(ffi.string(C.lacos_safetensors_path(h)), C.lacos_safetensors_count(h))
end

-- ---------------------------------------------------------------- writing

-- tensors: {name = tensor, ...} (written in name order) or a list of
-- {name, tensor} pairs (the order matters for sharding). Returns the names
-- and tensor pointers as C arrays plus the Lua values that keep them alive.
local function tensor_arrays(tensors, where)
  if type(tensors) ~= "table" then error(where .. ": tensors must be a table of name = tensor", 3) end
  local list = {}
  if tensors[1] ~= nil then
    for i, pair in ipairs(tensors) do
      if type(pair) ~= "table" or type(pair[1]) ~= "string" or not T.is_tensor(pair[2]) then
        error(("%s: entry %d must be a {name, tensor} pair"):format(where, i), 3)
      end
      list[#list + 1] = pair
    end
    for k in pairs(tensors) do
      if type(k) ~= "number" then error(where .. ": mix of list entries and named tensors", 3) end
    end
  else
    for k, v in pairs(tensors) do
      if type(k) ~= "string" then error(where .. ": tensor names must be strings, got " .. type(k), 3) end
      if not T.is_tensor(v) then error(("%s: value for '%s' is a %s, not a tensor"):format(where, k, type(v)), 3) end
      list[#list + 1] = { k, v }
    end
    table.sort(list, function(a, b) return a[1] < b[1] end)
  end
  local n = #list
  local names = ffi.new("const char*[?]", math.max(n, 1))
  local ptrs = ffi.new("lacos_tensor*[?]", math.max(n, 1))
  for i, pair in ipairs(list) do
    names[i - 1] = pair[1]
    ptrs[i - 1] = pair[2].t
  end
  return n, names, ptrs, list
end

local function meta_arrays(meta, where)
  if meta == nil then return 0, nil, nil, nil end
  if type(meta) ~= "table" then error(where .. ": metadata must be a table of strings", 3) end
  local keys = {}
  for k, v in pairs(meta) do
    if type(k) ~= "string" then error(where .. ": metadata keys must be strings, got " .. type(k), 3) end
    if type(v) ~= "string" then error(("%s: metadata '%s' must be a string, got %s"):format(where, k, type(v)), 3) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local n = #keys
  local ks = ffi.new("const char*[?]", math.max(n, 1))
  local vs = ffi.new("const char*[?]", math.max(n, 1))
  for i, k in ipairs(keys) do ks[i - 1] = k; vs[i - 1] = meta[k] end
  return n, ks, vs, keys
end

-- Writes one .safetensors file atomically.
function M.save(path, tensors, metadata)
  if type(path) ~= "string" then error("safetensors.save: path must be a string", 2) end
  local n, names, ptrs, keep = tensor_arrays(tensors, "safetensors.save")
  local nm, ks, vs, keep2 = meta_arrays(metadata, "safetensors.save")
  check(C.lacos_safetensors_write(path, n, names, ptrs, nm, ks, vs))
  local _ = keep, keep2
  return path
end

-- Writes a checkpoint directory: shards of at most max_bytes (default the
-- hub's 5 GB) plus model.safetensors.index.json, or one model.safetensors.
-- opts: max_bytes (number) or a table {max_bytes =, metadata = {...}}.
function M.save_sharded(dir, tensors, opts)
  if type(dir) ~= "string" then error("safetensors.save_sharded: directory must be a string", 2) end
  if type(opts) == "number" then opts = { max_bytes = opts } end
  opts = util.options(opts, { max_bytes = 5e9, metadata = util.ANY }, "safetensors.save_sharded")
  if not (opts.max_bytes > 0) then error("safetensors.save_sharded: max_bytes must be positive", 2) end
  local n, names, ptrs, keep = tensor_arrays(tensors, "safetensors.save_sharded")
  local nm, ks, vs, keep2 = meta_arrays(opts.metadata, "safetensors.save_sharded")
  check(C.lacos_safetensors_write_sharded(dir, n, names, ptrs, opts.max_bytes, nm, ks, vs))
  local _ = keep, keep2
  return dir
end

return M
