-- lacos.tensor: Lua face of the engine's tensor type (engine/tensor.c).
--
-- Tensors live in engine memory. A tensor returned to Lua is freed when the
-- garbage collector drops it, but the collector cannot see engine memory, so
-- big tensors should be released with t:free() (and creation triggers a
-- collection when engine memory has grown, as torch7 did).
--
-- A Lua tensor is a lacos_tensor_ref (a struct holding the engine pointer,
-- t.t) with methods attached by ffi.metatype. Indexing is 1-based like the
-- rest of Lua (and torch7): t[i] of a 1-d tensor is a number, of an n-d
-- tensor a view of row i. Properties: t.dtype ("f32"), t.device ("cpu"),
-- t.ndim, t.shape (a table); t.t is the engine pointer for C calls.
local E = require "lacos.engine"
local ffi, C, check, out = E.ffi, E.C, E.check, E.out

local T = {}
local methods = {}
T.methods = methods

-- the values of engine/lacos.h's enums (lacos_dtype, lacos_device, ...)
local F32, F16, BF16, I8, I32, U8, I64, F64 = C.LACOS_F32, C.LACOS_F16, C.LACOS_BF16, C.LACOS_I8, C.LACOS_I32,
  C.LACOS_U8, C.LACOS_I64, C.LACOS_F64
local CPU, CUDA = C.LACOS_CPU, C.LACOS_CUDA
local RELEASED = C.LACOS_TENSOR_RELEASED
local dtype_ids = { f32 = F32, f16 = F16, bf16 = BF16, i8 = I8, i32 = I32, u8 = U8, i64 = I64, f64 = F64 }
local dtype_names = {}
for k, v in pairs(dtype_ids) do dtype_names[v] = k end
local device_ids = { cpu = CPU, cuda = CUDA }
local device_names = { [CPU] = "cpu", [CUDA] = "cuda" }
T.dtypes, T.devices = dtype_ids, device_ids

local elem_ptr = {
  [F32] = ffi.typeof("float*"), [F16] = ffi.typeof("uint16_t*"), [BF16] = ffi.typeof("uint16_t*"),
  [I8] = ffi.typeof("int8_t*"), [I32] = ffi.typeof("int32_t*"), [U8] = ffi.typeof("uint8_t*"),
  [I64] = ffi.typeof("int64_t*"), [F64] = ffi.typeof("double*"),
}
local direct = { [F32] = true, [I8] = true, [I32] = true, [U8] = true, [F64] = true }   -- readable without conversion
local integer = { [I8] = true, [I32] = true, [U8] = true, [I64] = true }

local function dtype_of(x, default)
  if x == nil then return default or F32 end
  if type(x) == "number" then return x end
  local id = dtype_ids[x]
  if not id then
    local n = C.lacos_dtype_from_name(tostring(x))
    if n < 0 then error("unknown dtype '" .. tostring(x) .. "' (use f32, f16, bf16, i8, i32, u8, i64, f64)", 3) end
    id = n
  end
  return id
end
T.dtype_of = dtype_of

-- GC pressure: collect when engine memory passes a soft limit that grows with use.
local soft_limit = 256 * 1024 * 1024
local function pressure()
  local used = C.lacos_memory_allocated(0)
  if used > soft_limit then
    collectgarbage("collect")
    used = C.lacos_memory_allocated(0)
    soft_limit = math.max(256 * 1024 * 1024, used * 1.4)
  end
end

local free_fn = C.lacos_tensor_free
local ref_ct = ffi.typeof("lacos_tensor_ref")
local function finalize(r) free_fn(r.t) end
-- Wraps an engine pointer the caller owns into a garbage-collected tensor.
local function own(p)
  local r = ref_ct(p)
  return ffi.gc(r, finalize)
end
T.own = own

-- Calls fn(outptr, ...) and returns the new owned tensor.
local function make(fn, ...)
  pressure()
  local o = out("lacos_tensor*")
  check(fn(o, ...))
  return own(o[0])
end
T.make = make

local shape_buf = ffi.new("int64_t[4]")
local function shape_arg(...)
  local a = ...
  local n, src
  if type(a) == "table" then src, n = a, #a
  elseif type(a) == "cdata" and ffi.istype(ref_ct, a) then
    return a.t.ndim, a.t.shape
  else src, n = { ... }, select("#", ...) end
  if n > 4 then error("tensors have at most 4 dimensions, got " .. n, 3) end
  for i = 1, n do
    local v = src[i]
    if type(v) ~= "number" or v < 0 or v ~= math.floor(v) then
      error("bad size " .. tostring(v) .. " in dimension " .. i, 3)
    end
    shape_buf[i - 1] = v
  end
  return n, shape_buf
end

-- ---------------------------------------------------------------- creation

-- The dtype of a creation call, by name. zeros(2, 3) would otherwise read
-- the 3 as a dtype id and quietly make a 1-d i8 tensor.
local function creation_dtype(fname, dtype)
  if type(dtype) == "number" then
    error(("%s: the second argument is the dtype; give the shape as a table, %s({..., %s})"):format(
      fname, fname, tostring(dtype)), 3)
  end
  return dtype_of(dtype)
end

-- zeros({2, 3}[, dtype]): a new tensor of zeros (dtype "f32" unless given).
function T.zeros(shape, dtype)
  local dt = creation_dtype("zeros", dtype)
  local n, s = shape_arg(shape)
  return make(C.lacos_tensor_new, dt, 0, n, s)
end
-- empty(shape[, dtype]): uninitialised memory, for tensors that are written in full next.
function T.empty(shape, dtype)
  local dt = creation_dtype("empty", dtype)
  local n, s = shape_arg(shape)
  return make(C.lacos_tensor_empty, dt, 0, n, s)
end
-- full(shape, value[, dtype]), ones(shape[, dtype]): every element the same value.
function T.full(shape, value, dtype)
  if type(value) ~= "number" then error("full: the fill value must be a number", 2) end
  local dt = creation_dtype("full", dtype)
  local n, s = shape_arg(shape)
  return make(C.lacos_tensor_full, dt, n, s, value)
end
function T.ones(shape, dtype)
  local dt = creation_dtype("ones", dtype)
  local n, s = shape_arg(shape)
  return make(C.lacos_tensor_full, dt, n, s, 1)
end

-- opts: a seed, or {seed =, dtype =, and the distribution's parameters}.
local function rand_opts(opts)
  if opts == nil then return {} end
  if type(opts) == "number" then return { seed = opts } end
  if type(opts) ~= "table" then error("rand: options must be a seed or a table", 3) end
  return opts
end
function T.rand(shape, opts)  -- uniform [lo, hi), default [0, 1)
  opts = rand_opts(opts)
  local dt = dtype_of(opts.dtype)
  local n, s = shape_arg(shape)
  return make(C.lacos_tensor_rand, dt, n, s, opts.seed or 0, 0, opts.lo or 0, opts.hi or 1)
end
function T.randn(shape, opts)
  opts = rand_opts(opts)
  local dt = dtype_of(opts.dtype)
  local n, s = shape_arg(shape)
  return make(C.lacos_tensor_rand, dt, n, s, opts.seed or 0, 1, opts.mean or 0, opts.std or 1)
end
function T.arange(a, b, step, dtype)
  if b == nil then a, b = 0, a end
  return make(C.lacos_tensor_arange, dtype_of(dtype), a, b, step or 1)
end

-- T.from{{1,2},{3,4}}: a tensor from a (nested) Lua table of numbers.
function T.from(tbl, dtype)
  if type(tbl) == "cdata" then return tbl:clone() end
  if type(tbl) ~= "table" then error("tensor.from expects a (nested) table of numbers", 2) end
  local shape, probe = {}, tbl
  while type(probe) == "table" do
    shape[#shape + 1] = #probe
    probe = probe[1]
    if #shape > 4 then error("tensor.from: more than 4 levels of nesting", 2) end
  end
  local total = 1
  for _, d in ipairs(shape) do total = total * d end
  local buf = ffi.new("double[?]", math.max(total, 1))
  local k = 0
  -- Returns a message for the first entry that does not fit the shape.
  local function walk(t, depth)
    if #t ~= shape[depth] then return ("ragged table (level %d has %d entries, expected %d)"):format(depth, #t, shape[depth]) end
    for i = 1, #t do
      local v = t[i]
      if depth < #shape then
        if type(v) ~= "table" then return ("ragged table (a %s where a table was expected at level %d)"):format(type(v), depth + 1) end
        local bad = walk(v, depth + 1)
        if bad then return bad end
      else
        if type(v) ~= "number" then return "entry " .. i .. " is a " .. type(v) .. ", not a number" end
        buf[k] = v
        k = k + 1
      end
    end
  end
  local bad = walk(tbl, 1)
  if bad then error("tensor.from: " .. bad, 2) end
  local n, s = shape_arg(shape)
  return make(C.lacos_tensor_from_buffer, dtype_of(dtype), n, s, buf, F64)
end

function T.load_npy(path) return make(C.lacos_tensor_load_npy, path) end

function T.cat(list, dim)
  local n = #list
  local arr = ffi.new("lacos_tensor*[?]", n)
  for i = 1, n do arr[i - 1] = list[i].t end
  return make(C.lacos_tensor_cat, arr, n, (dim or 1) - 1)
end

function T.is_tensor(x) return type(x) == "cdata" and ffi.istype(ref_ct, x) end

-- ---------------------------------------------------------------- queries
-- Methods take the ref r; r.t is the engine's lacos_tensor*.

local function live(r)
  local t = r.t
  if bit.band(t.flags, RELEASED) ~= 0 then error("tensor was freed", 3) end
  return t
end

function methods.dim(r) return r.t.ndim end
function methods.numel(r) return tonumber(C.lacos_tensor_numel(r.t)) end
function methods.type(r) return dtype_names[r.t.dtype] end
function methods.device_name(r) return device_names[r.t.device] or "?" end
function methods.is_contiguous(r) return C.lacos_tensor_is_contiguous(r.t) ~= 0 end
function methods.nbytes(r) return C.lacos_tensor_nbytes(r.t) end
function methods.is_freed(r) return bit.band(r.t.flags, RELEASED) ~= 0 end
function methods.size(r, d)
  local t = r.t
  if d then
    if d < 0 then d = t.ndim + d + 1 end
    if d < 1 or d > t.ndim then error("size: dimension " .. d .. " out of range for a " .. t.ndim .. "-d tensor", 2) end
    return tonumber(t.shape[d - 1])
  end
  local s = {}
  for i = 0, t.ndim - 1 do s[i + 1] = tonumber(t.shape[i]) end
  return s
end
function methods.stride(r)
  local s = {}
  for i = 0, r.t.ndim - 1 do s[i + 1] = tonumber(r.t.stride[i]) end
  return s
end
-- The raw data pointer, typed for the dtype (CPU tensors only).
function methods.data_ptr(r)
  local t = live(r)
  if t.device ~= CPU then error("data_ptr: tensor is on cuda; call :to('cpu') first", 2) end
  return ffi.cast(elem_ptr[t.dtype], t.data)
end

local idx_buf = ffi.new("int64_t[4]")
local val_buf = ffi.new("double[1]")

local function offset_of(t, idx, n)
  local off = 0
  for d = 0, n - 1 do
    local i = idx[d + 1]
    local size = tonumber(t.shape[d])
    if type(i) ~= "number" then error("index " .. (d + 1) .. " is not a number", 3) end
    if i < 0 then i = size + i + 1 end
    if i < 1 or i > size or i ~= math.floor(i) then
      error(("index %s out of range for dimension %d of size %d"):format(tostring(idx[d + 1]), d + 1, size), 3)
    end
    off = off + (i - 1) * tonumber(t.stride[d])
  end
  return off
end

-- t:get(i, j, ...) and t:set(value, i, j, ...) with 1-based indices (negative count from the end).
function methods.get(r, ...)
  local t = live(r)
  local idx = { ... }
  if #idx ~= t.ndim then error("get: expected " .. t.ndim .. " indices, got " .. #idx, 2) end
  local off = offset_of(t, idx, t.ndim)
  if direct[t.dtype] and t.device == CPU then return tonumber(ffi.cast(elem_ptr[t.dtype], t.data)[off]) end
  for d = 1, t.ndim do idx_buf[d - 1] = (idx[d] < 0 and tonumber(t.shape[d - 1]) + idx[d] or idx[d] - 1) end
  check(C.lacos_tensor_get(t, idx_buf, val_buf))
  return val_buf[0]
end
function methods.set(r, v, ...)
  local t = live(r)
  local idx = { ... }
  if #idx ~= t.ndim then error("set: expected " .. t.ndim .. " indices, got " .. #idx, 2) end
  if type(v) ~= "number" then error("set: value must be a number", 2) end
  offset_of(t, idx, t.ndim)   -- range check with Lua-style messages
  for d = 1, t.ndim do idx_buf[d - 1] = (idx[d] < 0 and tonumber(t.shape[d - 1]) + idx[d] or idx[d] - 1) end
  check(C.lacos_tensor_set(t, idx_buf, v))
  return r
end
function methods.item(r)
  local n = methods.numel(r)
  if n ~= 1 then error("item: tensor has " .. n .. " elements, expected 1", 2) end
  check(C.lacos_tensor_read_f64(r.t, val_buf, 1))
  return val_buf[0]
end

-- Nested Lua table of the values.
function methods.table(r)
  local t = live(r)
  local n = methods.numel(r)
  local buf = ffi.new("double[?]", math.max(n, 1))
  check(C.lacos_tensor_read_f64(t, buf, n))
  if t.ndim == 0 then return buf[0] end
  local k = 0
  local function build(d)
    local out_t = {}
    for i = 1, tonumber(t.shape[d]) do
      if d == t.ndim - 1 then out_t[i] = buf[k]; k = k + 1 else out_t[i] = build(d + 1) end
    end
    return out_t
  end
  return build(0)
end

-- ---------------------------------------------------------------- views

function methods.view(r, ...) local n, s = shape_arg(...) return make(C.lacos_tensor_view, r.t, n, s) end
function methods.reshape(r, ...)
  if C.lacos_tensor_is_contiguous(r.t) == 0 then r = methods.contiguous(r) end
  return methods.view(r, ...)
end
-- The engine counts dimensions and indices from 0; these check them in the
-- API's 1-based terms first, so a message never names a 0-based dimension.
-- dim_arg: a dimension (negatives count from the end; `extra` allows one
-- past the last, for unsqueeze) -> the 0-based dimension.
local function dim_arg(t, fname, dim, extra)
  local n = t.ndim + (extra or 0)
  if type(dim) ~= "number" or dim ~= math.floor(dim) then
    error(("%s: the dimension must be an integer, got %s"):format(fname, tostring(dim)), 3)
  end
  local d = dim < 0 and n + dim + 1 or dim
  if d < 1 or d > n then
    error(("%s: dimension %d out of range for a %d-d tensor (1..%d)"):format(fname, dim, t.ndim, n), 3)
  end
  return d - 1
end
-- index_arg: a 1-based index along 0-based dimension d (negatives count
-- from the end) -> the 0-based index.
local function index_arg(t, fname, d, i)
  local size = tonumber(t.shape[d])
  if type(i) ~= "number" or i ~= math.floor(i) then
    error(("%s: the index must be an integer, got %s"):format(fname, tostring(i)), 3)
  end
  local j = i < 0 and size + i + 1 or i
  if j < 1 or j > size then
    error(("%s: index %d out of range for dimension %d of size %d"):format(fname, i, d + 1, size), 3)
  end
  return j - 1
end

-- narrow(dim, start, length), 1-based like torch7: rows start .. start+length-1,
-- all inside the dimension.
function methods.narrow(r, dim, start, len)
  local t = live(r)
  local d = dim_arg(t, "narrow", dim)
  local size = tonumber(t.shape[d])
  if type(start) ~= "number" or type(len) ~= "number" or start ~= math.floor(start) or len ~= math.floor(len) then
    error("narrow: start and length must be integers", 2)
  end
  if start < 1 or len < 0 or start + len - 1 > size then
    error(("narrow: start %d, length %d goes outside dimension %d of size %d"):format(start, len, dim, size), 2)
  end
  return make(C.lacos_tensor_slice, t, d, start - 1, start - 1 + len, 1)
end
-- slice(dim, first, last[, step]): inclusive 1-based bounds, negatives
-- counting from the end (-1 is the last); last < first gives an empty view.
function methods.slice(r, dim, first, last, step)
  local t = live(r)
  local d = dim_arg(t, "slice", dim)
  local size = tonumber(t.shape[d])
  local f, l = first or 1, last or size
  if type(f) ~= "number" or type(l) ~= "number" or f ~= math.floor(f) or l ~= math.floor(l) then
    error("slice: bounds must be integers", 2)
  end
  if f < 0 then f = size + f + 1 end
  if l < 0 then l = size + l + 1 end
  if f < 1 or f > size + 1 or l < 0 or l > size then
    error(("slice: bounds %s..%s are outside dimension %d of size %d"):format(tostring(first or 1), tostring(last or size), dim, size), 2)
  end
  step = step or 1
  if type(step) ~= "number" or step < 1 or step ~= math.floor(step) then
    error("slice: step must be a positive integer, got " .. tostring(step), 2)
  end
  return make(C.lacos_tensor_slice, t, d, f - 1, math.max(l, f - 1), step)
end
-- select(dim, i): the view at index i of dim, one dimension fewer.
function methods.select(r, dim, i)
  local t = live(r)
  local d = dim_arg(t, "select", dim)
  return make(C.lacos_tensor_select, t, d, index_arg(t, "select", d, i))
end
function methods.transpose(r, a, b)
  local t = live(r)
  return make(C.lacos_tensor_transpose, t, dim_arg(t, "transpose", a or 1), dim_arg(t, "transpose", b or 2))
end
-- The transpose of a matrix (a view).
function methods.T(r)
  local t = live(r)
  if t.ndim ~= 2 then error(("T: expected a 2-d tensor, got %d-d (use :transpose(a, b))"):format(t.ndim), 2) end
  return make(C.lacos_tensor_transpose, t, 0, 1)
end
function methods.unsqueeze(r, d)
  local t = live(r)
  if t.ndim >= 4 then error("unsqueeze: the tensor already has 4 dimensions", 2) end
  return make(C.lacos_tensor_unsqueeze, t, dim_arg(t, "unsqueeze", d, 1))
end
function methods.expand(r, ...) local n, s = shape_arg(...) return make(C.lacos_tensor_expand, r.t, n, s) end

-- ---------------------------------------------------------------- copies

function methods.contiguous(r) return make(C.lacos_tensor_contiguous, r.t) end
function methods.clone(r) return make(C.lacos_tensor_clone, r.t) end
-- to("f16") converts the dtype, to("cpu"/"cuda") moves between devices.
function methods.to(r, what)
  if device_ids[what] then return make(C.lacos_tensor_to_device, r.t, device_ids[what]) end
  return make(C.lacos_tensor_to_dtype, r.t, dtype_of(what))
end
function methods.float(r) return methods.to(r, "f32") end
function methods.double(r) return methods.to(r, "f64") end
function methods.copy(r, src)
  if type(src) == "number" then check(C.lacos_tensor_fill(r.t, src))
  elseif type(src) == "table" then local s = T.from(src); check(C.lacos_tensor_copy(r.t, s.t)); s:free()
  else check(C.lacos_tensor_copy(r.t, src.t)) end
  return r
end
function methods.fill(r, v) check(C.lacos_tensor_fill(r.t, v)) return r end
function methods.zero(r) return methods.fill(r, 0) end
function methods.save_npy(r, path) check(C.lacos_tensor_save_npy(r.t, path)) return r end
-- Releases the engine memory now; the tensor becomes empty and unusable.
function methods.free(r) C.lacos_tensor_release(r.t) end

-- ---------------------------------------------------------------- arithmetic

local BIN = { add = C.LACOS_ADD, sub = C.LACOS_SUB, mul = C.LACOS_MUL, div = C.LACOS_DIV, maximum = C.LACOS_MAX,
              minimum = C.LACOS_MIN, pow = C.LACOS_POW, eq = C.LACOS_EQ, ne = C.LACOS_NE, lt = C.LACOS_LT,
              le = C.LACOS_LE, gt = C.LACOS_GT, ge = C.LACOS_GE }
local UN = { neg = C.LACOS_NEG, abs = C.LACOS_ABS, exp = C.LACOS_EXP, log = C.LACOS_LOG, sqrt = C.LACOS_SQRT,
             tanh = C.LACOS_TANH, sigmoid = C.LACOS_SIGMOID, relu = C.LACOS_RELU, gelu = C.LACOS_GELU_TANH,
             square = C.LACOS_SQUARE, isfinite = C.LACOS_ISFINITE }
local ARGMAX, ARGMIN = C.LACOS_ARGMAX, C.LACOS_ARGMIN

local function binary(a, b, op)
  if type(a) == "number" then return make(C.lacos_tensor_scalar, b.t, a, op, 1) end
  if type(b) == "number" then return make(C.lacos_tensor_scalar, a.t, b, op, 0) end
  if type(b) == "table" then b = T.from(b) end
  return make(C.lacos_tensor_binary, a.t, b.t, op)
end
for name, op in pairs(BIN) do
  methods[name] = function(a, b) return binary(a, b, op) end
end
-- In-place forms: t:add_(u) etc.
for _, name in ipairs { "add", "sub", "mul", "div" } do
  methods[name .. "_"] = function(a, b)
    if type(b) == "number" then b = T.full({}, b, a.t.dtype == F64 and "f64" or "f32") end
    check(C.lacos_tensor_binary_(a.t, b.t, BIN[name]))
    return a
  end
end
for name, op in pairs(UN) do
  methods[name] = function(a) return make(C.lacos_tensor_unary, a.t, op) end
end

-- Reductions: with no dimension the scalar result, with one a tensor
-- (keepdim keeps it as size 1). arg-reductions give 1-based i64 indices.
local function reducer(op)
  return function(r, dim, keepdim)
    if dim == nil then
      local res = make(C.lacos_tensor_reduce, r.t, op, -1, 0)
      local v = methods.item(res)
      res:free()
      if op == ARGMAX or op == ARGMIN then v = v + 1 end
      return v
    end
    local t = live(r)
    if dim < 0 then dim = t.ndim + dim + 1 end
    if dim < 1 or dim > t.ndim then error("dimension " .. dim .. " out of range for a " .. t.ndim .. "-d tensor", 2) end
    local res = make(C.lacos_tensor_reduce, t, op, dim - 1, keepdim and 1 or 0)
    if op == ARGMAX or op == ARGMIN then
      local one = make(C.lacos_tensor_scalar, res.t, 1, BIN.add, 0)
      res:free()
      local idx = methods.to(one, "i64")
      one:free()
      return idx
    end
    return res
  end
end
for name, op in pairs { sum = C.LACOS_SUM, mean = C.LACOS_MEAN, max = C.LACOS_RMAX, min = C.LACOS_RMIN, argmax = ARGMAX,
                        argmin = ARGMIN, norm = C.LACOS_NORM2, var = C.LACOS_VAR, std = C.LACOS_STD } do
  methods[name] = reducer(op)
end

function methods.matmul(a, b) return make(C.lacos_tensor_matmul, a.t, b.t) end
methods.mm = methods.matmul
function methods.normalize(r, eps) return make(C.lacos_tensor_normalize, r.t, eps or 1e-12) end
function methods.cosine(a, b) return make(C.lacos_tensor_cosine, a.t, b.t) end
function methods.maxdiff(a, b)
  local v = ffi.new("double[1]")
  check(C.lacos_tensor_maxdiff(a.t, b.t, v))
  return v[0]
end
function methods.allclose(a, b, tol) return methods.maxdiff(a, b) <= (tol or 1e-6) end

-- ---------------------------------------------------------------- printing

local function fmt_value(v, is_int)
  if is_int then return string.format("%d", v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
  local a = math.abs(v)
  if a ~= 0 and (a >= 1e5 or a < 1e-4) then return string.format("%.4e", v) end
  return string.format("%.4f", v)
end

-- Shape, dtype and device, then the values with at most `edge` leading and
-- trailing entries per dimension (like NumPy's summarised printing).
function T.format(r, edge)
  edge = edge or 3
  local t = r.t
  if methods.is_freed(r) then return "lacos.tensor [freed]" end
  local header = ("lacos.tensor %s %s (%s)"):format(methods.type(r), methods.device_name(r),
    table.concat(methods.size(r), ", "))
  if t.device ~= CPU then return header end
  local is_int = integer[t.dtype] == true
  if t.ndim == 0 then return header .. "\n" .. fmt_value(methods.item(r), is_int) end
  if methods.numel(r) == 0 then return header .. "\n[]" end
  local width = 0
  local function pick(size)
    local idx = {}
    if size <= 2 * edge + 1 then for i = 1, size do idx[#idx + 1] = i end
    else
      for i = 1, edge do idx[#idx + 1] = i end
      idx[#idx + 1] = false
      for i = size - edge + 1, size do idx[#idx + 1] = i end
    end
    return idx
  end
  local index = {}
  local function render(d)
    local parts = {}
    for _, i in ipairs(pick(tonumber(t.shape[d - 1]))) do
      if not i then parts[#parts + 1] = "..."
      else
        index[d] = i
        if d == t.ndim then
          local s = fmt_value(methods.get(r, unpack(index, 1, t.ndim)), is_int)
          if #s > width then width = #s end
          parts[#parts + 1] = s
        else
          parts[#parts + 1] = render(d + 1)
        end
      end
    end
    return parts
  end
  local tree = render(1)
  local function join(parts, d, indent)
    local s = {}
    if d == t.ndim then
      for i, p in ipairs(parts) do s[i] = p == "..." and "..." or (" "):rep(width - #p) .. p end
      return "[" .. table.concat(s, " ") .. "]"
    end
    for i, p in ipairs(parts) do s[i] = p == "..." and "..." or join(p, d + 1, indent .. " ") end
    return "[" .. table.concat(s, ",\n" .. indent .. " ") .. "]"
  end
  return header .. "\n" .. join(tree, 1, "")
end

-- ---------------------------------------------------------------- metatype

local props = {
  dtype = function(r) return dtype_names[r.t.dtype] end,
  device = function(r) return device_names[r.t.device] end,
  ndim = function(r) return r.t.ndim end,
  shape = function(r) return methods.size(r) end,
}

local mt = {}
mt.__index = function(r, k)
  if type(k) == "number" then
    local t = live(r)
    if t.ndim == 0 then error("cannot index a 0-d tensor (use :item())", 2) end
    local i = index_arg(t, "t[i]", 0, k) + 1
    if t.ndim == 1 then return methods.get(r, i) end
    return make(C.lacos_tensor_select, t, 0, i - 1)
  end
  local m = methods[k]
  if m ~= nil then return m end
  local p = props[k]
  if p then return p(r) end
  error("lacos.tensor has no method or property '" .. tostring(k) .. "'", 2)
end
mt.__newindex = function(r, k, v)
  if type(k) ~= "number" then error("cannot set '" .. tostring(k) .. "' on a tensor", 2) end
  local t = live(r)
  if t.ndim == 0 then error("cannot index a 0-d tensor (use :fill(v))", 2) end
  local i = index_arg(t, "t[i]", 0, k) + 1
  if t.ndim == 1 then
    if type(v) ~= "number" then error("t[i] = v: v must be a number, got a " .. type(v), 2) end
    methods.set(r, v, i)
    return
  end
  local row = make(C.lacos_tensor_select, t, 0, i - 1)
  methods.copy(row, v)
  row:free()
end
mt.__tostring = function(r) return T.format(r) end
mt.__len = function(r) return r.t.ndim > 0 and tonumber(r.t.shape[0]) or 0 end
mt.__add = function(a, b) return binary(a, b, BIN.add) end
mt.__sub = function(a, b) return binary(a, b, BIN.sub) end
mt.__mul = function(a, b) return binary(a, b, BIN.mul) end
mt.__div = function(a, b) return binary(a, b, BIN.div) end
mt.__pow = function(a, b) return binary(a, b, BIN.pow) end
mt.__unm = function(a) return make(C.lacos_tensor_unary, a.t, UN.neg) end
T.ctype = ffi.metatype(ref_ct, mt)

-- Bytes the engine holds on a device, its peak, mapped file bytes and the process RSS.
function T.memory(device)
  local d = device_ids[device or "cpu"] or CPU
  return { allocated = C.lacos_memory_allocated(d), peak = C.lacos_memory_peak(d), mapped = C.lacos_memory_mapped(),
           peak_rss = C.lacos_memory_peak_rss(), rss = C.lacos_memory_current_rss() }
end

setmetatable(T, { __call = function(_, x, dtype) return T.from(x, dtype) end })
return T
