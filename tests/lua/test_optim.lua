-- The optimizers' Lua face (lua/lacos/optim.lua); the numerics are tested
-- against bitsandbytes and torch in tests/c/test_optim.c.
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor
local optim = lacos.optim

local function params(seed, sizes)
  local list = {}
  for i, n in ipairs(sizes) do
    list[i] = { name = "w" .. i, param = T.randn(n, { seed = seed + i, std = 0.1 }), grad = T.zeros(n) }
  end
  return list
end

local function set_grads(list, seed)
  for i, e in ipairs(list) do e.grad:copy(T.randn(e.grad:size(), { seed = seed * 100 + i, std = 0.01 })) end
end

local function same(a, b) return a:maxdiff(b) == 0 end

H.test("adam8bit steps, keeps 8-bit state for large tensors, f32 for small", function()
  local list = params(1, { { 64, 100 }, { 300 } })
  local opt = optim.adam8bit(list, { lr = 2e-4 })
  local before = list[1].param:clone()
  set_grads(list, 1)
  opt:step()
  H.eq(opt:steps(), 1)
  H.truthy(list[1].param:maxdiff(before) > 0, "the parameter moved")
  local st, names = opt:state()
  H.same(names, { "w1.state1", "w1.state2", "w1.absmax1", "w1.absmax2", "w2.state1", "w2.state2", "step" })
  H.eq(st["w1.state1"]:type(), "u8")
  H.same(st["w1.state1"]:size(), { 64, 100 })
  H.same(st["w1.absmax1"]:size(), { 25 })
  H.eq(st["w2.state1"]:type(), "f32")
  H.eq(st.step:item(), 1)
  H.eq(opt:state_bytes(), 2 * 6400 + 8 * 25 + 8 * 300)
  H.near(opt:bytes_per_param(), (2 * 6400 + 8 * 25 + 8 * 300) / 6700, 1e-12)
  H.match(opt:describe(), "^Adam8bit %(lr 0.0002, betas 0.9/0.999, eps 1e%-08, weight decay 0%): 2 tensors, 6700 parameters")
  local m, v = opt:moments("w1")
  H.same(m:size(), { 64, 100 })
  H.truthy(v:min() >= 0, "second moment is non-negative")
end)

H.test("adamw keeps 8 bytes per parameter", function()
  local list = params(2, { 1000 })
  local opt = optim.adamw(list)
  H.eq(opt:bytes_per_param(), 8)
  H.eq(opt:config().weight_decay, 0.01)
  H.match(opt:describe(), "^AdamW")
end)

H.test("state round trip continues bit-identically", function()
  for _, kind in ipairs { "adam8bit", "adamw" } do
    local a, b = params(3, { 5000, 100 }), params(3, { 5000, 100 })
    local oa, ob = optim[kind](a, { weight_decay = 0.05 }), optim[kind](b, { weight_decay = 0.05 })
    for s = 1, 3 do set_grads(a, s); oa:step() end
    local saved = {}
    for k, t in pairs(oa:state()) do saved[k] = t:clone() end
    for i = 1, 2 do b[i].param:copy(a[i].param) end
    ob:load_state(saved)
    H.eq(ob:steps(), 3)
    for s = 4, 6 do set_grads(a, s); oa:step(5e-4); set_grads(b, s); ob:step(5e-4) end
    for i = 1, 2 do H.truthy(same(a[i].param, b[i].param), kind .. ": resumed parameter " .. i .. " is identical") end
    local sa, sb = oa:state(), ob:state()
    for k, t in pairs(sa) do H.truthy(same(t:to("f64"), sb[k]:to("f64")), kind .. ": state " .. k) end
  end
end)

H.test("load_state rejects incomplete or mismatched state", function()
  local list = params(4, { 5000 })
  local opt = optim.adam8bit(list)
  set_grads(list, 1)
  opt:step()
  local st = opt:state()
  local partial = {}
  for k, t in pairs(st) do if k ~= "step" then partial[k] = t end end
  H.raises("entry 'step' is missing", function() opt:load_state(partial) end)
  partial.step = st.step
  partial["w9.state1"] = st["w1.state1"]
  H.raises("unknown entry 'w9.state1'", function() opt:load_state(partial) end)
  partial["w9.state1"] = nil
  partial["w1.state1"] = st["w1.state1"]:to("f32")
  H.raises("expected dtype u8", function() opt:load_state(partial) end)
  partial["w1.state1"] = 5
  H.raises("'w1.state1' is not a tensor", function() opt:load_state(partial) end)
  H.raises("expects a table", function() opt:load_state(nil) end)
end)

H.test("clip_grad_norm returns the norm before clipping", function()
  local list = { { name = "a", param = T.zeros({ 2 }), grad = T.from({ 3, 0 }) },
                 { name = "b", param = T.zeros({ 1 }), grad = T.from({ 4 }) } }
  local opt = optim.adamw(list)
  H.eq(opt:grad_norm(), 5)
  H.eq(opt:clip_grad_norm(math.huge), 5)   -- only measures (lacos.train passes it without max_grad_norm)
  H.eq(opt:clip_grad_norm(10), 5)
  H.eq(list[1].grad:get(1), 3)
  H.eq(opt:clip_grad_norm(1), 5)
  H.near(opt:grad_norm(), 1, 1e-6)
  list[2].grad:set(0 / 0, 1)
  local n = opt:clip_grad_norm(1)
  H.truthy(n ~= n, "a NaN norm is reported")
  H.raises("max_norm must be a positive number", function() opt:clip_grad_norm(0) end)
  opt:zero_grad()
  H.eq(opt:grad_norm(), 0)
end)

H.test("non-finite gradients are counted and leave the parameter alone", function()
  local list = params(5, { 5000 })
  local opt = optim.adam8bit(list)
  set_grads(list, 1)
  list[1].grad:set(1 / 0, 7)
  list[1].grad:set(0 / 0, 8)
  local p7 = list[1].param:get(7)
  opt:step()
  H.eq(opt:nonfinite(), 2)
  H.eq(list[1].param:get(7), p7)
end)

H.test("options that would be ignored are rejected", function()
  local list = params(6, { 10 })
  H.raises("AMSGrad is not supported", function() optim.adam8bit(list, { amsgrad = true }) end)
  optim.adam8bit(list, { amsgrad = false })
  H.raises("optim_bits must be 8", function() optim.adam8bit(list, { optim_bits = 32 }) end)
  H.raises("percentile clipping is not implemented", function() optim.adam8bit(list, { percentile_clipping = 5 }) end)
  H.raises("paged optimizers", function() optim.adam8bit(list, { is_paged = true }) end)
  H.raises("block_size must be 256", function() optim.adam8bit(list, { block_size = 128 }) end)
  H.raises("applies to lacos.optim.adam8bit only", function() optim.adamw(list, { min_8bit_size = 10 }) end)
  H.raises("applies to lacos.optim.adam8bit only", function() optim.adamw(list, { optim_bits = 8 }) end)
  H.raises("unknown option 'momentum'", function() optim.adamw(list, { momentum = 0.9 }) end)
  H.raises("option 'betas' must be a table", function() optim.adamw(list, { betas = 0.9 }) end)
  H.raises("betas must be a table of two numbers", function() optim.adamw(list, { betas = { 0.9 } }) end)
  H.raises("invalid beta2", function() optim.adamw(list, { betas = { 0.9, 1.0 } }) end)
  H.raises("invalid learning rate", function() optim.adamw(list, { lr = -1 }) end)
  H.raises("invalid weight_decay", function() optim.adam8bit(list, { weight_decay = -0.1 }) end)
  H.raises("min_8bit_size must be a non-negative integer", function() optim.adam8bit(list, { min_8bit_size = 1.5 }) end)
  H.raises("option 'lr' must be a number", function() optim.adamw(list, { lr = "big" }) end)
end)

H.test("bad parameter lists are rejected", function()
  H.raises("no parameters to optimise", function() optim.adamw({}) end)
  H.raises("params must be a list", function() optim.adamw(nil) end)
  H.raises("params[1] must be {name = string, param = tensor, grad = tensor}",
           function() optim.adamw({ { name = "x", param = T.zeros({ 3 }) } }) end)
  local p, g = T.zeros({ 3 }), T.zeros({ 4 })
  H.raises("x: gradient shape (4) differs from the parameter's (3)",
           function() optim.adamw({ { name = "x", param = p, grad = g } }) end)
  local list = params(7, { 10 })
  H.raises("already registered", function() optim.adamw(optim.params(list, list)) end)
  local opt = optim.adamw(list)
  H.raises("lr must be a number >= 0", function() opt:step(-1) end)
  H.raises("lr must be a number >= 0", function() opt:step(0 / 0) end)
  opt:free()
  H.raises("optimizer was freed", function() opt:step() end)
end)

H.test("a zero learning rate moves nothing but the moments", function()
  local list = params(8, { 5000 })
  local opt = optim.adam8bit(list, { weight_decay = 0.1 })
  local before = list[1].param:clone()
  set_grads(list, 1)
  opt:step(0)
  H.truthy(same(list[1].param, before), "parameter unchanged")
  local _, v = opt:moments("w1")
  H.truthy(v:max() > 0, "moments updated")
end)

H.test("optimises a model's LoRA adapters and a loss's classifier together", function()
  local m = require("lacos.bloom").random("tiny-xs", { seed = 3, quant = "f32" })
  m:add_lora { r = 4, alpha = 8, targets = "attn" }
  local loss = require("lacos.loss").softmax { dim = m:config().hidden_size, seed = 1 }
  local all = optim.params(m:trainable(), loss:parameters())
  -- tiny-xs adapters have 256 to 768 elements: with min_8bit_size 512 the
  -- QKV lora_B tensors get 8-bit states and the rest f32 states.
  local opt = optim.adam8bit(all, { lr = 1e-3, min_8bit_size = 512 })
  local big = 0
  for _, e in ipairs(all) do if e.param:numel() >= 512 then big = big + 1 end end
  H.truthy(big > 0 and big < #all, "both kinds of state")
  H.eq(#opt:state_names(), 1 + 2 * #all + 2 * big)
  for _, e in ipairs(all) do e.grad:fill(0.01) end
  local b = m:trainable()[2].param:clone()   -- lora_B starts at zero
  opt:step()
  H.truthy(m:trainable()[2].param:maxdiff(b) > 0, "lora_B moved")
  opt:zero_grad()
  H.eq(opt:grad_norm(), 0)
end)

H.test("quantisation helpers follow bitsandbytes' maps", function()
  local sm, um = optim.dynamic_map(true), optim.dynamic_map(false)
  H.eq(#sm, 256)
  H.eq(sm[128], 0)          -- code 127
  H.eq(sm[256], 1)
  H.near(sm[1], -0.99296875, 1e-7)
  H.eq(um[1], 0)
  local x = T.from({ 0.5, -1, 0.25, 0 })
  local codes, absmax = optim.quantize(x, { block_size = 64 })
  H.eq(absmax:get(1), 1)
  H.eq(codes:get(2), 0)    -- -1 is nearest to -0.99296875
  local back = optim.dequantize(codes, absmax, { block_size = 64 })
  H.truthy(back:maxdiff(x) < 0.01, "dequantised within a code step")
  H.raises("power of two", function() optim.quantize(x, { block_size = 100 }) end)
end)

H.done()
