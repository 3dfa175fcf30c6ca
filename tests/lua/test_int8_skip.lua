-- test_int8_skip.lua: int8 models with named linears kept in f32
-- (load/random option int8_skip, engine/int8_skip.c) on the tiny BLOOM
-- checkpoint tests/fixtures/bloom/tiny-b and tiny random models:
-- - a skipped linear holds exactly what an f32 load holds, every other
--   weight exactly what a plain int8 load holds (mixing changes nothing
--   else), and the model reports each linear's format;
-- - the memory: the planner's bytes equal what the model allocates, and
--   f32 costs 3 bytes more per weight minus the row scales;
-- - bad input: a pattern naming no linear, an empty one, a skip list with
--   quant f32, wrong types;
-- - the int8 cache keeps one file per skip list and reads back the same model;
-- - LoRA over a mixed model: a training step, merge, save, reload;
--   the adapter records the list and a load with it takes the same formats.
local H = require "harness"
local lacos = require "lacos"
local ffi = require "ffi"
local C = lacos.engine.C

local dir = H.root .. "/tests/fixtures/bloom/tiny-b"
local SKIP = { "h.1.self_attention.query_key_value", "dense_4h_to_h" }

local function identical(a, b)
  a, b = a:contiguous(), b:contiguous()
  return a:nbytes() == b:nbytes() and ffi.string(a.t.data, a:nbytes()) == ffi.string(b.t.data, b:nbytes())
end

-- The engine's linear a checkpoint weight belongs to ("h.1.mlp.dense_4h_to_h.weight" -> its module).
local function is_skipped(m, name)
  for _, l in ipairs(m:linears()) do
    if name == l.name .. ".weight" then return l.quant == "f32" end
  end
  return false
end

H.test("skipped linears hold the f32 load's weights, the others the int8 load's, bit for bit", function()
  local f32 = lacos.bloom.load(dir, { quant = "f32" })
  local q8 = lacos.bloom.load(dir, { quant = "int8" })
  local mix = lacos.bloom.load(dir, { quant = "int8", int8_skip = SKIP })
  local formats = {}
  for _, l in ipairs(mix:linears()) do formats[#formats + 1] = l.name .. "=" .. l.quant end
  H.eq(table.concat(formats, " "), "h.0.self_attention.query_key_value=int8 h.0.self_attention.dense=int8 " ..
    "h.0.mlp.dense_h_to_4h=int8 h.0.mlp.dense_4h_to_h=f32 h.1.self_attention.query_key_value=f32 " ..
    "h.1.self_attention.dense=int8 h.1.mlp.dense_h_to_4h=int8 h.1.mlp.dense_4h_to_h=f32 " ..
    "h.2.self_attention.query_key_value=int8 h.2.self_attention.dense=int8 h.2.mlp.dense_h_to_4h=int8 " ..
    "h.2.mlp.dense_4h_to_h=f32")
  local skipped, kept = 0, 0
  for _, name in ipairs(mix:weight_names()) do
    local w = mix:weight(name)
    if is_skipped(mix, name) then
      skipped = skipped + 1
      H.truthy(identical(w, f32:weight(name)), name .. " equals the f32 load's")
      H.truthy(not identical(w, q8:weight(name)), name .. " is not the int8 load's")
    else
      kept = kept + 1
      H.truthy(identical(w, q8:weight(name)), name .. " equals the int8 load's")
    end
  end
  H.eq(skipped, 4)
  H.truthy(kept > 20, "every other weight compared")
  -- the passes follow: closer to f32 than plain int8, and no other change
  local ids = lacos.tensor.from({ { 5, 9, 100, 3, 7, 11 }, { 20, 30, 40, 50, 0, 0 } }, "i32")
  local mask = lacos.tensor.from({ { 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 0, 0 } }, "i32")
  local ref = f32:forward(ids, mask)
  local d_mix, d_q8 = mix:forward(ids, mask):maxdiff(ref), q8:forward(ids, mask):maxdiff(ref)
  print(("#   hidden states vs f32: max |diff| %.3g with 4 of 12 linears f32, %.3g all int8"):format(d_mix, d_q8))
  H.truthy(d_mix < d_q8, "fewer int8 linears, closer to f32")
  H.match(tostring(mix), "int8 with 4 of 12 linears in f32 %(int8_skip h.1.self_attention.query_key_value,dense_4h_to_h%)")
  H.eq(mix:quantisation(), "int8 int8_skip=h.1.self_attention.query_key_value,dense_4h_to_h")
  H.eq(q8:quantisation(), "int8")
end)

H.test("memory: the planner counts each linear in its format, as the model allocates it", function()
  local cfg = lacos.bloom.config("tiny-s")
  local function plan(quant, skip)
    local o = ffi.new("lacos_bloom_options")
    C.lacos_bloom_options_init(o)
    o.quant = lacos.bloom.quants[quant]
    local text = skip and table.concat(skip, ",")
    if text then o.int8_skip = text end
    local b = ffi.new("double[1]")
    lacos.engine.check(C.lacos_bloom_plan_weight_bytes(b, cfg, o))
    return b[0]
  end
  local h, L = cfg.hidden_size, cfg.n_layer
  local q8, f32, mix = plan("int8"), plan("f32"), plan("int8", { "mlp" })
  -- f32: 4 bytes a weight, no row scales; "mlp" keeps both feed-forward linears (h x 4h each) of every block
  H.eq(f32 - q8, L * (3 * 12 * h * h - 4 * 9 * h))
  H.eq(mix - q8, L * (3 * 8 * h * h - 4 * 5 * h))
  -- what the model holds: the planner's bytes plus the embedding table, and beside int8 codes what the
  -- CPU's packing keeps (oneDNN's column sums, 4 bytes an input and output, and a header of oneDNN's memory
  -- descriptors; none without VNNI): c[4] inputs + outputs (in units of h) and c[5] int8 linears a block
  for _, c in ipairs { { "int8", nil, q8, 16, 4 }, { "f32", nil, f32, 0, 0 }, { "int8", { "mlp" }, mix, 6, 2 } } do
    local m = lacos.bloom.random("tiny-s", { seed = 1, quant = c[1], int8_skip = c[2], embedding_dtype = "f32" })
    local extra = m:weight_bytes() - 4 * cfg.vocab_size * h - c[3]
    H.truthy(extra >= 0 and extra <= L * (4 * c[4] * h + c[5] * 4096),
             ("%s %s: holds %d bytes more than planned"):format(c[1], tostring(c[2]), extra))
    m:free()
  end
  -- the experiments' planner takes the point's list (and judges it as the load would)
  local X = lacos.experiment
  local point = { model = "tiny-s", synthetic = true, quant = "int8" }
  H.eq(X.memory_weights(point), q8)
  point.int8_skip = { "mlp" }
  H.eq(X.memory_weights(point), mix)
  point.int8_skip = { "mlpx" }
  H.raises('int8_skip pattern "mlpx" names none', X.memory_weights, point)
end)

H.test("bad skip lists are refused with the pattern and the model's linear names", function()
  local err = H.raises('pattern "query" names none of the model\'s linears', lacos.bloom.load, dir,
                       { quant = "int8", int8_skip = { "dense", "query" } })
  H.match(err, "h%.N%.{self_attention%.query_key_value, self_attention%.dense, mlp%.dense_h_to_4h, mlp%.dense_4h_to_h} for N in 0%.%.2")
  -- a component run, not a substring: "h.1" is block 1, "4h_to_h" is no name
  H.raises('"4h_to_h" names none', lacos.bloom.load, dir, { quant = "int8", int8_skip = "4h_to_h" })
  H.raises('"h.3" names none', lacos.bloom.load, dir, { quant = "int8", int8_skip = "h.3" })
  H.raises("pattern 2 is empty", lacos.bloom.load, dir, { quant = "int8", int8_skip = "dense,,mlp" })
  H.raises("pattern 1 is empty", lacos.bloom.load, dir, { quant = "int8", int8_skip = { " " } })
  H.raises("quant is f32", lacos.bloom.load, dir, { quant = "f32", int8_skip = { "dense" } })
  H.raises("quant is f32", lacos.bloom.random, "tiny-xs", { quant = "f32", int8_skip = "mlp" })
  H.raises("int8_skip[2] must be a string", lacos.bloom.load, dir, { quant = "int8", int8_skip = { "dense", 3 } })
  H.raises("holds a comma", lacos.bloom.load, dir, { quant = "int8", int8_skip = { "dense,mlp" } })
  H.raises("int8_skip must be a list", lacos.bloom.load, dir, { quant = "int8", int8_skip = 7 })
  -- an empty list (or false) is no list; the "transformer." prefix of BloomForCausalLM's names is accepted
  H.eq(lacos.bloom.load(dir, { quant = "int8", int8_skip = {} }):quantisation(), "int8")
  local m = lacos.bloom.load(dir, { quant = "int8", int8_skip = "transformer.h.2.mlp" })
  local f32 = 0
  for _, l in ipairs(m:linears()) do if l.quant == "f32" then f32 = f32 + 1 end end
  H.eq(f32, 2)
end)

H.test("the int8 cache keeps one file per skip list and reads back the same model", function()
  local cache = H.tmp .. "/int8-skip-cache"
  ffi.cdef [[ int setenv(const char *name, const char *value, int overwrite); int unsetenv(const char *name); ]]
  ffi.C.setenv("LACOS_CACHE", cache, 1)
  local ok, err = pcall(function()
    local function path(skip)
      local o = ffi.new("lacos_bloom_options")
      C.lacos_bloom_options_init(o)
      if skip then o.int8_skip = skip end
      local buf = ffi.new("char[4096]")
      lacos.engine.check(C.lacos_bloom_cache_path(dir, o, buf, 4096))
      return ffi.string(buf)
    end
    local plain, a, b = path(nil), path("dense_4h_to_h"), path("self_attention.dense")
    H.truthy(plain ~= a and a ~= b and plain ~= b, "three lists, three caches")
    H.eq(path("h.0.mlp.dense_4h_to_h,h.1.mlp.dense_4h_to_h,h.2.mlp.dense_4h_to_h"), a, "keyed by the formats, not the spelling")
    local ids = lacos.tensor.from({ { 5, 9, 100, 3 } }, "i32")
    local mask = lacos.tensor.from({ { 1, 1, 1, 1 } }, "i32")
    for _, skip in ipairs { false, "dense_4h_to_h", "self_attention.dense" } do
      local fresh = lacos.bloom.load(dir, { quant = "int8", int8_skip = skip })
      local written = lacos.bloom.load(dir, { quant = "int8", int8_skip = skip, cache = true })
      H.truthy(H.exists(path(skip or nil)), "the cache of " .. tostring(skip))
      local read = lacos.bloom.load(dir, { quant = "int8", int8_skip = skip, cache = true })
      local e = fresh:forward(ids, mask)
      H.eq(written:forward(ids, mask):maxdiff(e), 0, tostring(skip))
      H.eq(read:forward(ids, mask):maxdiff(e), 0, tostring(skip) .. " from the cache")
      for _, name in ipairs(fresh:weight_names()) do
        H.truthy(identical(read:weight(name), fresh:weight(name)), name .. " from the cache of " .. tostring(skip))
      end
    end
  end)
  ffi.C.unsetenv("LACOS_CACHE")
  if not ok then error(err, 0) end
end)

H.test("LoRA over a mixed model: a training step, merge, save, reload; the adapter records the list", function()
  local skip = { "h.0", "dense_h_to_4h" }
  local m = lacos.bloom.load(dir, { quant = "int8", int8_skip = skip })
  m:add_lora { r = 4, alpha = 8, targets = { "all" }, seed = 3 }
  local ids = lacos.tensor.from({ { 5, 9, 100, 3, 7, 11 }, { 20, 30, 40, 50, 60, 0 } }, "i32")
  local mask = lacos.tensor.from({ { 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1, 0 } }, "i32")
  local opt = lacos.optim.adamw(m:trainable(), { lr = 1e-2 })
  for step = 1, 2 do
    m:zero_grad()
    local emb, batch = m:forward_train(ids, mask, "weightedmean", step)
    m:backward(batch, lacos.tensor.full(emb.shape, 0.5, "f32"))
    local g = 0
    for _, p in ipairs(m:trainable()) do g = g + p.grad:abs():sum() end
    H.truthy(g > 0 and g < math.huge, "finite, non-zero LoRA gradients through f32 and int8 linears: " .. g)
    opt:step()
  end
  -- merge: the base stays as loaded, the export copies get base + delta
  local before = {}
  for _, name in ipairs(m:weight_names()) do before[name] = m:weight(name) end
  m:merge_lora()
  local changed = 0
  for _, name in ipairs(m:weight_names()) do
    if name:match("%.weight$") and not identical(m:weight(name), before[name]) then changed = changed + 1 end
  end
  H.eq(changed, 12, "every adapted linear's merged weight differs from its base")
  local out = H.tmp .. "/int8-skip-merged"
  m:save(out, { dtype = "f32", force = true })
  local back = lacos.bloom.load(out, { quant = "f32" })
  for _, name in ipairs(m:weight_names()) do
    H.truthy(identical(back:weight(name), m:weight(name)), name .. " as saved")
  end
  -- the saved checkpoint loaded int8 with the same list: skipped linears exact, the others requantised
  local again = lacos.bloom.load(out, { quant = "int8", int8_skip = skip })
  H.truthy(identical(again:weight("h.0.self_attention.dense.weight"), m:weight("h.0.self_attention.dense.weight")), "f32 kept")
  H.truthy(identical(again:weight("h.2.mlp.dense_h_to_4h.weight"), m:weight("h.2.mlp.dense_h_to_4h.weight")), "f32 kept")
  H.truthy(not identical(again:weight("h.2.mlp.dense_4h_to_h.weight"), m:weight("h.2.mlp.dense_4h_to_h.weight")),
           "int8 requantised")
  H.eq(require("lacos.json").read(out .. "/lacos.json").merged.base_quant, "int8 int8_skip=h.0,dense_h_to_4h")
  m:unmerge_lora()
  -- the adapter's lacos.json names the list; a load with the adapter takes it unless told otherwise
  local adir = H.tmp .. "/int8-skip-adapter"
  os.execute("rm -rf " .. adir .. " && mkdir -p " .. adir)
  m:save_lora(adir)
  H.same(require("lacos.json").read(adir .. "/lacos.json").int8_skip, skip)
  local e = m:encode_ids(ids, mask, { pooling = "weightedmean" })
  local with = lacos.bloom.load(dir, { quant = "int8", adapter = adir })
  H.same(with.int8_skip, skip)
  H.eq(with:encode_ids(ids, mask, { pooling = "weightedmean" }):maxdiff(e), 0, "the same formats, the same embeddings")
  H.eq(lacos.bloom.load(dir, { quant = "int8", adapter = adir, int8_skip = false }):quantisation(), "int8")
  H.eq(lacos.bloom.load(dir, { quant = "f32", adapter = adir }):quantisation(), "f32")
end)

H.test("the training fingerprint names the skip list (a resume with another is refused)", function()
  local train = lacos.train
  local a = lacos.bloom.random("tiny-xs", { seed = 1, quant = "int8", int8_skip = "mlp" })
  local b = lacos.bloom.random("tiny-xs", { seed = 1, quant = "int8" })
  H.eq(a.int8_skip[1], "mlp")
  local diffs = train.fingerprint_diff({ int8_skip = "mlp" }, { int8_skip = nil }, { int8_skip = "--int8-skip" })
  H.eq(diffs[1], "--int8-skip mlp there, (none) now")
  local data = { digest = function() return "d" end, size = function() return 2 end }
  local loss = { kind = "mnrl" }
  local fa = train.fingerprint({}, a, data, loss, nil, 1)
  local fb = train.fingerprint({}, b, data, loss, nil, 1)
  H.eq(fa.int8_skip, "mlp")
  H.eq(fb.int8_skip, nil, "a plain int8 run keeps the fingerprint it always had")
end)

H.done()
