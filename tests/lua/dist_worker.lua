-- dist_worker: the training runs that tests/lua/test_dist.lua compares, run
-- the same way as one process (lacos run) and as a job of two ranks
-- (mpirun -np 2 lacos run). Every case trains a tiny random BLOOM a few steps
-- and rank 0 writes, per case, the loss of every step, the gradient the
-- optimizer received at the first step (summed over the ranks, before
-- clipping), the adapter at the end and (8-bit Adam) the optimizer's codes.
--
--   lacos run tests/lua/dist_worker.lua OUT.lua [case-name-pattern]
local lacos = require "lacos"
local dist = require "lacos.dist"
local F = require "train_fixture"
local T = lacos.tensor
local ffi = require "ffi"

local out_path, only = arg[1], arg[2]
assert(out_path, "usage: dist_worker.lua OUT.lua [pattern]")

-- Every case: a loss, data, quantisation, GradCache chunk, accumulation, optimizer.
local cases = {}
local function case(name, c) c.name = name; cases[#cases + 1] = c end
for _, quant in ipairs { "f32", "int8" } do
  for _, loss in ipairs { "mnrl", "mnrl-symmetric", "mnrl-negatives", "cosent", "softmax" } do
    case(("%s %s"):format(loss, quant), { loss = loss, quant = quant })
    case(("%s %s GradCache"):format(loss, quant), { loss = loss, quant = quant, mini_batch = 3 })
    case(("%s %s accumulation"):format(loss, quant), { loss = loss, quant = quant, accumulation = 2 })
  end
end
case("mnrl int8 adam8bit", { loss = "mnrl", quant = "int8", optimizer = "adam8bit" })
case("cosent f32 adam8bit GradCache", { loss = "cosent", quant = "f32", optimizer = "adam8bit", mini_batch = 3 })
case("mnrl f32 dropout", { loss = "mnrl", quant = "f32", dropout = 0.2 })
case("mnrl f32 dropout GradCache", { loss = "mnrl", quant = "f32", dropout = 0.2, mini_batch = 3 })
case("mnrl f32 tail batch", { loss = "mnrl", quant = "f32", pairs = 18, steps = 5 })

local function dataset(c)
  local n = c.pairs or 24
  if c.loss == "cosent" then return F.scored(n) end
  if c.loss == "softmax" then return F.labelled(n) end
  local d = F.dataset(n)
  if c.loss == "mnrl-negatives" then
    local rows = {}
    for i = 1, d:size() do
      local a, p = d:get(i)
      rows[i] = { a, p, F.words[(i * 3) % #F.words + 1] .. " elsewhere " .. (n - i) }
    end
    d = lacos.pairs.from_list(rows)
  end
  return d
end

local function run(c)
  local m = F.model(1, { quant = c.quant, dropout = c.dropout or 0 })
  local loss
  if c.loss == "cosent" then loss = lacos.loss.cosent { scale = 20 }
  elseif c.loss == "softmax" then loss = lacos.loss.softmax { dim = 32, labels = 3, seed = 4 }
  else loss = lacos.loss.mnrl { scale = 20, symmetric = c.loss == "mnrl-symmetric" } end
  local params = lacos.optim.params(m:trainable(), loss.parameters and loss:parameters() or {})
  local opt = c.optimizer == "adam8bit" and lacos.optim.adam8bit(params, { lr = 5e-3, min_8bit_size = 0 })
    or lacos.optim.adamw(params, { lr = 5e-3, weight_decay = 0.01 })
  -- the optimizer as lacos.train sees it, recording the first gradient it gets
  local first_grad
  local spy = setmetatable({}, { __index = opt })
  function spy:clip_grad_norm(max)
    if not first_grad then
      first_grad = {}
      for i, p in ipairs(opt.params) do first_grad[i] = p.grad:to("cpu"):clone():table() end
    end
    return opt:clip_grad_norm(max)
  end
  local r = lacos.train {
    model = m, data = dataset(c), loss = loss, optimizer = spy, batch_size = 6, steps = c.steps or 3, lr = 5e-3,
    warmup = 0, seed = 11, max_length = 16, mini_batch = c.mini_batch, accumulation = c.accumulation or 1,
    pooling = "mean", quiet = true, progress = false, max_grad_norm = 1.0, sync_check = 1,
  }
  local adapter = {}
  for i, p in ipairs(opt.params) do adapter[i] = p.param:to("cpu"):table() end
  local codes
  if c.optimizer == "adam8bit" then
    codes = {}
    local st, names = opt:state()
    table.sort(names)
    for _, k in ipairs(names) do
      if st[k]:type() == "u8" then codes[k] = st[k]:to("cpu"):table() end
    end
  end
  return { losses = r.losses, grad = first_grad, adapter = adapter, codes = codes, world_size = r.world_size,
           comm = r.comm, seconds = r.seconds }
end

local results = {}
for _, c in ipairs(cases) do
  if not only or c.name:find(only, 1, true) then results[c.name] = run(c) end
end

if dist.rank() == 0 then
  -- a Lua chunk that returns the results table
  local function ser(v, out)
    local t = type(v)
    if t == "number" then out[#out + 1] = ("%.17g"):format(v)
    elseif t == "string" then out[#out + 1] = ("%q"):format(v)
    elseif t == "boolean" then out[#out + 1] = tostring(v)
    elseif t == "table" then
      out[#out + 1] = "{"
      for k, x in pairs(v) do
        out[#out + 1] = type(k) == "number" and ("[%d]="):format(k) or ("[%q]="):format(k)
        ser(x, out)
        out[#out + 1] = ","
      end
      out[#out + 1] = "}"
    else out[#out + 1] = "nil" end
  end
  local out = { "return " }
  ser(results, out)
  local f = assert(io.open(out_path, "w"))
  f:write(table.concat(out))
  f:close()
end
