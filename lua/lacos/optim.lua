-- lacos.optim: optimizers over a model's trainable tensors (engine/optim.c).
--
--   local opt = lacos.optim.adam8bit(model:trainable(), {lr = 2e-4, weight_decay = 0})
--   local opt = lacos.optim.adamw(params, {lr = 1e-4, weight_decay = 0.01})
--   opt:zero_grad()
--   ... forward, backward ...
--   local norm = opt:clip_grad_norm(1.0)   -- norm before clipping (non-finite: reported, no clipping)
--   opt:step(schedule(i))                  -- the step's lr (nil: the configured one)
--   opt:state_bytes(), opt:bytes_per_param(), opt:describe()
--   local st = opt:state()                 -- {["<param>.state1"] = tensor, ..., step = tensor}
--   opt:load_state(st)                     -- all entries, validated, all or nothing
--
-- params is a list of {name = string, param = f32 tensor, grad = f32 tensor}
-- (what model:trainable() and loss:parameters() return; lacos.optim.params(a, b)
-- joins such lists). adam8bit is bitsandbytes' Adam8bit (the CUDA kernel's
-- update; see engine/optim.c), adamw is torch.optim.AdamW.
local E = require "lacos.engine"
local T = require "lacos.tensor"
local util = require "lacos.util"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}
local Optim = {}
Optim.__index = Optim
M.Optim = Optim

local kinds = { adamw = C.LACOS_OPTIM_ADAMW, adam8bit = C.LACOS_OPTIM_ADAM8BIT }
local kind_names = { [kinds.adamw] = "AdamW", [kinds.adam8bit] = "Adam8bit" }

-- Options other libraries take that lacos does not implement: accepted only
-- at the value that changes nothing, otherwise a clear error (bitsandbytes
-- silently ignores some of these: bitsandbytes-foundation/bitsandbytes#1261).
local fixed = {
  amsgrad = { false, "AMSGrad is not supported" },
  maximize = { false, "maximize is not supported (negate the loss)" },
  percentile_clipping = { 100, "percentile clipping is not implemented (use opt:clip_grad_norm)" },
  max_unorm = { 0, "max_unorm (update-norm clipping) is not implemented" },
  skip_zeros = { false, "skip_zeros is not implemented" },
  is_paged = { false, "paged optimizers are not implemented" },
  foreach = { false, "foreach is a torch implementation switch" },
  fused = { false, "fused is a torch implementation switch" },
  capturable = { false, "capturable is a torch implementation switch" },
  differentiable = { false, "differentiable is a torch implementation switch" },
  nesterov = { false, "Nesterov momentum is not supported" },
}

local defaults = {
  adam8bit = { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.0, min_8bit_size = 4096,
               block_size = 256, optim_bits = 8 },
  adamw = { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01 },
}

local function check_options(kind, opts)
  local where = "lacos.optim." .. kind
  if opts ~= nil and type(opts) ~= "table" then error(where .. ": options must be a table", 4) end
  local rest = {}
  for k, v in pairs(opts or {}) do
    local f = fixed[k]
    if f then
      if v ~= f[1] and not (v == nil) then error(("%s: %s (%s = %s)"):format(where, f[2], k, tostring(v)), 4) end
    elseif kind == "adam8bit" and k == "optim_bits" and v ~= 8 then
      error(where .. ": optim_bits must be 8 (Adam8bit always keeps 8-bit states; lacos.optim.adamw keeps f32 states)", 4)
    elseif kind == "adam8bit" and k == "block_size" and v ~= 256 then
      error(where .. ": block_size must be 256 (bitsandbytes' Adam8bit block)", 4)
    elseif kind == "adamw" and (k == "optim_bits" or k == "min_8bit_size" or k == "block_size") then
      error(("%s: %s applies to lacos.optim.adam8bit only (AdamW keeps f32 states)"):format(where, k), 4)
    else
      rest[k] = v
    end
  end
  local o = util.options(rest, defaults[kind], where, 3)
  local b = o.betas
  if type(b) ~= "table" or #b ~= 2 or type(b[1]) ~= "number" or type(b[2]) ~= "number" then
    error(where .. ": betas must be a table of two numbers, e.g. {0.9, 0.999}", 4)
  end
  return o
end

-- Joins parameter lists: lacos.optim.params(model:trainable(), loss:parameters()).
function M.params(...)
  local all = {}
  for i = 1, select("#", ...) do
    local list = select(i, ...)
    if type(list) ~= "table" then error("lacos.optim.params: argument " .. i .. " is not a list", 2) end
    for _, e in ipairs(list) do all[#all + 1] = e end
  end
  return all
end

local function new(kind, params, opts)
  local where = "lacos.optim." .. kind
  local o = check_options(kind, opts)
  if type(params) ~= "table" then error(where .. ": params must be a list of {name=, param=, grad=}", 3) end
  local cfg = ffi.new("lacos_optim_config")
  C.lacos_optim_config_init(cfg, kinds[kind])
  cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay = o.lr, o.betas[1], o.betas[2], o.eps, o.weight_decay
  if kind == "adam8bit" then
    if o.min_8bit_size < 0 or o.min_8bit_size ~= math.floor(o.min_8bit_size) or o.min_8bit_size > 2 ^ 31 - 1 then
      error(where .. ": min_8bit_size must be a non-negative integer", 3)
    end
    cfg.min_8bit_size = o.min_8bit_size
  end
  local out = E.out("lacos_optim*")
  -- the engine checks the numbers (lr, betas, eps, weight_decay); its
  -- message gets the function's name like the checks above
  if C.lacos_optim_new(out, cfg) ~= 0 then error(where .. ": " .. E.last_error(), 3) end
  local self = setmetatable({ ptr = ffi.gc(out[0], C.lacos_optim_free), kind = kind, options = o, params = {} }, Optim)
  if #params == 0 then error(where .. ": no parameters to optimise", 3) end
  for i, e in ipairs(params) do
    if type(e) ~= "table" or type(e.name) ~= "string" or not T.is_tensor(e.param) or not T.is_tensor(e.grad) then
      error(("%s: params[%d] must be {name = string, param = tensor, grad = tensor}"):format(where, i), 3)
    end
    check(C.lacos_optim_add(self.ptr, e.name, e.param.t, e.grad.t))
    self.params[i] = e   -- keeps the tensors (and whatever owns their memory) alive
  end
  return self
end

function M.adam8bit(params, opts) return new("adam8bit", params, opts) end
function M.adamw(params, opts) return new("adamw", params, opts) end

local function live(self)
  if self.ptr == nil then error("optimizer was freed", 3) end
  return self.ptr
end

-- One update. lr: this step's learning rate (>= 0; nil takes the configured lr).
function Optim:step(lr)
  if lr ~= nil and (type(lr) ~= "number" or lr < 0 or lr ~= lr) then
    error("optimizer step: lr must be a number >= 0 (nil for the configured lr), got " .. tostring(lr), 2)
  end
  check(C.lacos_optim_step(live(self), lr or -1))
end
function Optim:zero_grad() check(C.lacos_optim_zero_grad(live(self))) end

local norm_out = ffi.new("double[1]")
function Optim:grad_norm()
  check(C.lacos_optim_grad_norm(live(self), norm_out))
  return norm_out[0]
end
-- Scales the gradients so their global L2 norm is at most max_norm (torch's
-- clip_grad_norm_; math.huge only measures); returns the norm before. A
-- NaN/inf norm is returned and nothing is scaled: the caller decides whether
-- to skip the step.
function Optim:clip_grad_norm(max_norm)
  if type(max_norm) ~= "number" then error("clip_grad_norm: max_norm must be a number", 2) end
  check(C.lacos_optim_clip_grad_norm(live(self), max_norm, norm_out))
  return norm_out[0]
end

function Optim:steps() return C.lacos_optim_step_count(live(self)) end
-- NaN/inf gradient elements seen by the last step (their moments were reset, their parameters kept).
function Optim:nonfinite() return C.lacos_optim_nonfinite(live(self)) end
function Optim:numel() return C.lacos_optim_numel(live(self)) end
function Optim:state_bytes() return C.lacos_optim_state_bytes(live(self)) end
function Optim:bytes_per_param() return self:state_bytes() / self:numel() end

function Optim:config()
  local c = ffi.new("lacos_optim_config")
  check(C.lacos_optim_get_config(live(self), c))
  return { kind = self.kind, lr = c.lr, betas = { c.beta1, c.beta2 }, eps = c.eps, weight_decay = c.weight_decay,
           min_8bit_size = self.kind == "adam8bit" and c.min_8bit_size or nil }
end

local function count(n)
  if n >= 1e9 then return ("%.2f G"):format(n / 1e9) end
  if n >= 1e6 then return ("%.2f M"):format(n / 1e6) end
  if n >= 1e4 then return ("%.1f k"):format(n / 1e3) end
  return ("%d"):format(n)
end

function Optim:describe()
  local c = self:config()
  return ("%s (lr %g, betas %g/%g, eps %g, weight decay %g): %d tensors, %s parameters, state %s (%.2f bytes/param)")
    :format(kind_names[kinds[self.kind]], c.lr, c.betas[1], c.betas[2], c.eps, c.weight_decay,
            C.lacos_optim_param_count(live(self)), count(self:numel()), util.bytes(self:state_bytes()),
            self:bytes_per_param())
end

local count_out = ffi.new("int[1]")
-- Names of the state entries in order ("<param>.state1", ..., "step").
function Optim:state_names()
  check(C.lacos_optim_state_count(live(self), count_out))
  local names = {}
  for i = 0, count_out[0] - 1 do names[i + 1] = ffi.string(C.lacos_optim_state_name(self.ptr, i)) end
  return names
end

-- The state as {name = tensor}: views of the live state (save or clone them
-- before the next step) and a fresh "step" tensor (i64).
function Optim:state()
  local names = self:state_names()
  local st = {}
  for i, name in ipairs(names) do st[name] = T.make(C.lacos_optim_state_tensor, self.ptr, i - 1) end
  return st, names
end

-- Restores a state saved from an optimizer over the same parameters: every
-- entry present, dtypes and shapes as expected; all or nothing.
function Optim:load_state(tbl)
  if type(tbl) ~= "table" then error("load_state: expects a table of name = tensor", 2) end
  local keys = {}
  for k, v in pairs(tbl) do
    if type(k) ~= "string" then error("load_state: keys must be state names, got a " .. type(k), 2) end
    if not T.is_tensor(v) then error("load_state: '" .. k .. "' is not a tensor", 2) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local n = #keys
  local names = ffi.new("const char*[?]", math.max(n, 1))
  local tensors = ffi.new("lacos_tensor*[?]", math.max(n, 1))
  for i, k in ipairs(keys) do names[i - 1] = k; tensors[i - 1] = tbl[k].t end
  check(C.lacos_optim_state_load(live(self), n, names, tensors))
end

-- A parameter's first and second moments as f32 tensors (dequantised copies).
function Optim:moments(name)
  local m, v = E.out("lacos_tensor*"), ffi.new("lacos_tensor*[1]")
  check(C.lacos_optim_moments(m, v, live(self), name))
  return T.own(m[0]), T.own(v[0])
end

function Optim:free()
  if self.ptr ~= nil then C.lacos_optim_free(ffi.gc(self.ptr, nil)) end
  self.ptr = nil
  self.params = {}
end

-- bitsandbytes' dynamic maps and blockwise quantisation, for inspection.
function M.dynamic_map(signed)
  local p = C.lacos_optim_dynamic_map(signed and 1 or 0)
  local t = {}
  for i = 0, 255 do t[i + 1] = p[i] end
  return t
end
function M.quantize(x, opts)
  opts = util.options(opts, { signed = true, block_size = 256 }, "lacos.optim.quantize")
  local codes, absmax = E.out("lacos_tensor*"), ffi.new("lacos_tensor*[1]")
  check(C.lacos_optim_quantize(codes, absmax, x.t, opts.signed and 1 or 0, opts.block_size))
  return T.own(codes[0]), T.own(absmax[0])
end
function M.dequantize(codes, absmax, opts)
  opts = util.options(opts, { signed = true, block_size = 256 }, "lacos.optim.dequantize")
  return T.make(C.lacos_optim_dequantize, codes.t, absmax.t, opts.signed and 1 or 0, opts.block_size)
end

return M
