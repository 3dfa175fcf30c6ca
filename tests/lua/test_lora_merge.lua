-- test_lora_merge: LoRA merged into a copy of the base weights and exported
-- as a plain checkpoint (engine/lora.c, Model:merge_lora / :save).
-- On the fixture of tests/reference/make_bloom.py (4 heads, 2 layers, PEFT's
-- adapter on all four linears, r 4, alpha 8):
--   - lora_A starts inside PEFT's Kaiming-uniform bound, lora_B at zero;
--   - the merged checkpoint equals base + scaling·B·A computed here from the
--     adapter file (query_key_value rows in the checkpoint's order), and
--     loaded back in f32 it embeds as the base with the adapter attached;
--   - merge then unmerge gives the base weights back (f32 and int8 models;
--     the int8 model's own weights and outputs never change);
--   - with the reference virtualenv, transformers' BloomModel loading the
--     merged directory equals peft's merge_and_unload;
--   - misuse and bad input fail with a clear message and leave no output.
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor
local J = require "lacos.json"

local fix = H.root .. "/tests/fixtures/bloom/lora-a"
local py = H.root .. "/.venv-ref/bin/python"
local QKV = "h.0.self_attention.query_key_value.weight"

local function base(quant) return lacos.bloom.load(fix .. "/base", { quant = quant or "f32" }) end
local function ids_mask() return T.load_npy(fix .. "/ids.npy"), T.load_npy(fix .. "/mask.npy") end
local function rel(a, b) return a:maxdiff(b) / b:abs():max() end

-- a lacos adapter whose B is not zero (a fresh one would merge to nothing)
local function trained_adapter(m, opts)
  m:add_lora(opts)
  for _, p in ipairs(m:trainable()) do
    if p.name:match("lora_B") then p.param:copy(T.randn(p.param:size(), { seed = #p.name, std = 0.1 })) end
  end
  return m
end

H.test("lora_A starts within PEFT's Kaiming-uniform bound 1/sqrt(fan_in), lora_B at zero", function()
  -- torch.nn.init.kaiming_uniform_(A, a=sqrt(5)): gain sqrt(2/(1+5)), bound gain·sqrt(3/fan_in) = 1/sqrt(fan_in),
  -- fan_in = A.size(1) = the linear's input features (dense_4h_to_h: 4·hidden, so half the others' bound)
  for _, seed in ipairs { 0, 7 } do
    local m = base()
    m:add_lora { r = 16, alpha = 16, targets = { "all" }, seed = seed }
    local checked = 0
    for _, p in ipairs(m:trainable()) do
      if p.name:match("lora_A") then
        local fan_in = p.param:size(2)
        local bound = 1 / math.sqrt(fan_in)
        local amax = p.param:abs():max()
        -- one f32 rounding of bound·(2u−1) may land on bound's f32 value
        H.truthy(amax <= bound * (1 + 2 ^ -23), ("%s: max |a| %.9g over the bound %.9g"):format(p.name, amax, bound))
        H.truthy(amax >= 0.9 * bound, ("%s: max |a| %.4g is far inside the bound %.4g (wrong fan_in?)"):format(p.name, amax, bound))
        -- uniform on (−bound, bound): E[a²] = bound²/3; 512+ samples put the estimate within 15%
        local ms = (p.param * p.param):mean()
        H.near(ms / (bound * bound / 3), 1, 0.15, p.name .. ": mean square over bound²/3")
        checked = checked + 1
      else
        H.eq(p.param:abs():max(), 0, p.name .. " starts at zero")
      end
    end
    H.eq(checked, 8, "lora_A tensors checked")
  end
  local a, b = base(), base()
  a:add_lora { r = 4, seed = 1 }
  b:add_lora { r = 4, seed = 2 }
  H.truthy(a:trainable()[1].param:maxdiff(b:trainable()[1].param) > 0, "the seed changes A")
end)

H.test("merged weights are base + scaling·B·A in the checkpoint's row order; reloaded they embed as the adapter", function()
  local m = base()
  local ids, mask = ids_mask()
  local before = {}
  for _, name in ipairs(m:weight_names()) do before[name] = m:weight(name) end
  m:load_lora(fix .. "/adapter")
  local with_adapter = m:encode_ids(ids, mask, { pooling = "mean" })
  m:merge_lora()
  H.truthy(m:lora_merged(), "merge state")
  H.eq(m:encode_ids(ids, mask, { pooling = "mean" }):maxdiff(with_adapter), 0, "merging leaves the model's forward pass alone")
  local out = H.tmp .. "/merged-f32"
  m:save(out, { dtype = "f32" })
  for _, f in ipairs { "config.json", "model.safetensors", "lacos.json" } do H.truthy(H.exists(out .. "/" .. f), f .. " written") end
  -- independently of the engine: delta from PEFT's file (lora_B rows already interleaved like the base's)
  local ad = lacos.safetensors.open(fix .. "/adapter/adapter_model.safetensors")
  local st = lacos.safetensors.open(out)
  local scaling, worst, n = 8 / 4, 0, 0
  for _, name in ipairs(m:weight_names()) do
    local got = st:get(name)
    local mod = name:match("^(h%.%d+%..+)%.weight$")
    local want = before[name]
    if mod and ad:has("base_model.model." .. mod .. ".lora_A.weight") then
      local A = ad:get("base_model.model." .. mod .. ".lora_A.weight"):float()
      local B = ad:get("base_model.model." .. mod .. ".lora_B.weight"):float()
      want = want + B:matmul(A) * scaling
      n = n + 1
    end
    worst = math.max(worst, got:float():maxdiff(want))
  end
  H.eq(n, 8, "adapted weights found")
  print(("# merged checkpoint vs base + scaling·B·A from the adapter file: max abs difference %.3g"):format(worst))
  H.truthy(worst <= 1e-6, "merged weights differ from base + scaling·B·A by " .. worst)
  -- the merged directory loads as a plain model and embeds as base + adapter did
  local back = lacos.bloom.load(out, { quant = "f32" })
  H.truthy(not back.lora, "no adapter on the merged model")
  local e = back:encode_ids(ids, mask, { pooling = "mean" })
  local r = rel(e, with_adapter)
  print(("# merged f32 checkpoint vs f32 base + adapter: max relative difference %.3g (tolerance 1e-6)"):format(r))
  H.truthy(r <= 1e-6, "embeddings differ by " .. r)
  local r_peft = rel(e, T.load_npy(fix .. "/embeddings.npy"))
  print(("# merged f32 checkpoint vs peft's embeddings with the adapter: %.3g (tolerance 1e-4)"):format(r_peft))
  H.truthy(r_peft <= 1e-4, "embeddings differ from peft's by " .. r_peft)
  local meta = J.decode(H.read(out .. "/lacos.json"))
  H.eq(meta.merged.r, 4, "lacos.json records the merged adapter")
  H.eq(meta.merged.adapter, fix .. "/adapter", "lacos.json names the adapter")
  local cfg = J.decode(H.read(out .. "/config.json"))
  H.eq(cfg.dtype, "float32", "config.json names the weights' dtype")
  H.eq(cfg.pad_token_id, J.null, "the base's config.json is kept (its null pad_token_id too)")
  -- f16: the same within f16's rounding
  m:save(H.tmp .. "/merged-f16", { dtype = "f16" })
  H.eq(lacos.safetensors.open(H.tmp .. "/merged-f16"):info(QKV).dtype, "f16", "f16 weights")
  H.eq(J.decode(H.read(H.tmp .. "/merged-f16/config.json")).dtype, "float16", "f16 config dtype")
  local r16 = rel(lacos.bloom.load(H.tmp .. "/merged-f16", { quant = "f32" }):encode_ids(ids, mask, { pooling = "mean" }), with_adapter)
  print(("# merged f16 checkpoint vs f32 base + adapter: max relative difference %.3g (tolerance 2e-3)"):format(r16))
  H.truthy(r16 <= 2e-3, "f16 embeddings differ by " .. r16)
end)

H.test("merge then unmerge restores the base weights; the int8 base is never touched", function()
  for _, quant in ipairs { "f32", "int8" } do
    local m = trained_adapter(base(quant), { r = 4, alpha = 16, targets = { "all" }, seed = 5, rslora = true })
    local ids, mask = ids_mask()
    local names = m:weight_names()
    local w0 = {}
    for _, name in ipairs(names) do w0[name] = m:weight(name) end
    local e0 = m:encode_ids(ids, mask, { pooling = "mean" })
    m:merge_lora()
    H.truthy(m:weight(QKV):maxdiff(w0[QKV]) > 1e-2, quant .. ": the merge moves query_key_value")
    H.eq(m:encode_ids(ids, mask, { pooling = "mean" }):maxdiff(e0), 0, quant .. ": outputs unchanged by merge")
    m:unmerge_lora()
    H.truthy(not m:lora_merged(), "unmerged")
    local worst = 0
    for _, name in ipairs(names) do worst = math.max(worst, m:weight(name):maxdiff(w0[name])) end
    print(("# %s model, merge + unmerge: max abs error on the base weights %.3g (tolerance 1e-6)"):format(quant, worst))
    H.truthy(worst <= 1e-6, quant .. ": unmerge left an error of " .. worst)
    H.eq(m:encode_ids(ids, mask, { pooling = "mean" }):maxdiff(e0), 0, quant .. ": outputs unchanged by unmerge")
    -- merging again adds the same delta again
    local merged1 = (m:merge_lora()):weight(QKV)
    m:unmerge_lora():merge_lora()
    H.truthy(m:weight(QKV):maxdiff(merged1) <= 1e-6, "a second merge gives the same weights")
  end
end)

H.test("merge state is enforced: no adapter, twice, unmerged save, adapter changed after merging", function()
  local m = base()
  H.raises("no LoRA adapter to merge", function() m:merge_lora() end)
  trained_adapter(m, { r = 2, targets = { "query_key_value" } })
  H.raises("not merged", function() m:unmerge_lora() end)
  H.raises("not merged; call merge_lora() first", function() m:save(H.tmp .. "/never") end)
  H.truthy(not H.exists(H.tmp .. "/never/config.json"), "nothing written")
  m:merge_lora()
  H.raises("already merged", function() m:merge_lora() end)
  -- training after the merge: the copy no longer matches the adapter
  local B = m:trainable()[2].param
  B:copy(B * 2)
  H.raises("changed after it was merged", function() m:save(H.tmp .. "/stale") end)
  H.raises("changed after it was merged", function() m:weight(QKV) end)
  m:unmerge_lora():merge_lora()
  m:save(H.tmp .. "/fresh")
  H.truthy(H.exists(H.tmp .. "/fresh/model.safetensors"), "saved after merging again")
  m:remove_lora()
  H.eq(m:weight(QKV):maxdiff(base():weight(QKV)), 0, "removing the adapter drops the merged copy")
end)

H.test("bad input: another model's adapter, missing adapter files, an existing output", function()
  local other = trained_adapter(lacos.bloom.random("tiny-xs", { quant = "f32", seed = 1 }), { r = 4, targets = { "all" } })
  other:save_lora(H.tmp .. "/tiny-xs-adapter")
  local m = base()
  local err = H.raises("adapter_model.safetensors", function() m:load_lora(H.tmp .. "/tiny-xs-adapter") end)
  H.match(err, "has shape %(4, %d+%), expected %(4, %d+%): the adapter was made for a model of another shape")
  H.truthy(not m.lora, "no adapter left attached")
  os.execute("mkdir -p " .. H.tmp .. "/no-weights && cp " .. fix .. "/adapter/adapter_config.json " .. H.tmp .. "/no-weights/")
  H.raises("no-weights/adapter_model.safetensors", function() m:load_lora(H.tmp .. "/no-weights") end)
  H.raises("nowhere/adapter_config.json", function() m:load_lora(H.tmp .. "/nowhere") end)
  -- an existing, non-empty output directory is refused and left as it was
  local out = H.tmp .. "/occupied"
  os.execute("mkdir -p " .. out)
  H.write(out .. "/keep.txt", "mine")
  m:load_lora(fix .. "/adapter")
  m:merge_lora()
  H.raises("occupied: exists and is not empty (force = true replaces it)", function() m:save(out) end)
  H.eq(H.read(out .. "/keep.txt"), "mine", "the existing directory is untouched")
  H.truthy(not H.exists(out .. "/config.json"), "no partial output")
  local rc, leftovers = H.sh("ls -d " .. out .. ".tmp.* 2>/dev/null | wc -l")
  H.eq(tonumber(leftovers), 0, "no temporary directory left behind")
  m:save(out, { force = true })
  H.truthy(not H.exists(out .. "/keep.txt"), "force replaces the directory whole")
  H.truthy(H.exists(out .. "/model.safetensors"), "force wrote the checkpoint")
  H.raises("dtype must be f32, f16 or bf16", function() m:save(H.tmp .. "/x", { dtype = "i8" }) end)
end)

H.test("transformers loads the merged directory as peft's merge_and_unload", function()
  if not H.exists(py) then H.skip("no reference virtualenv (.venv-ref; make venv)") end
  -- peft's own adapter through the command, f32 and f16; a lacos adapter (rsLoRA) through Model:save
  local cmd = ("%s model merge --model %s/base --adapter %s/adapter --out %s --dtype %s")
  for _, d in ipairs { "f32", "f16" } do
    local rc, _, err = H.sh(cmd:format(H.lacos, fix, fix, H.tmp .. "/peft-merged-" .. d, d))
    H.eq(rc, 0, "lacos model merge (" .. err .. ")")
  end
  local m = trained_adapter(base(), { r = 4, alpha = 8, targets = { "all" }, seed = 9, rslora = true })
  m:save_lora(H.tmp .. "/lacos-adapter", { base_model = fix .. "/base" })
  m:merge_lora():save(H.tmp .. "/lacos-merged", { dtype = "f32" })
  local rc, so, se = H.sh(("%s %s/tests/reference/check_peft_merge.py %s/base %s/ids.npy %s/mask.npy %s %s %s %s %s %s"):format(
    py, H.root, fix, fix, fix, fix .. "/adapter", H.tmp .. "/peft-merged-f32", fix .. "/adapter", H.tmp .. "/peft-merged-f16",
    H.tmp .. "/lacos-adapter", H.tmp .. "/lacos-merged"))
  H.eq(rc, 0, "reference script exit status (" .. se:sub(-600) .. ")")
  local cases = { ["peft-merged-f32"] = { "float32", 1e-6, 1e-5 }, ["peft-merged-f16"] = { "float16", 1e-3, 2e-3 },
                  ["lacos-merged"] = { "float32", 1e-6, 1e-5 } }
  local seen = 0
  for line in so:gmatch("[^\n]+") do
    local dir, dtype, only, miss, unexp, mism, wmax, hrel = line:match(
      "/([%w%-]+) dtype (%S+) keys %d+ only (%d+) missing (%d+) unexpected (%d+) mismatched (%d+) weight_max_abs (%S+) hidden_max_rel (%S+)")
    if dir then
      local c = H.truthy(cases[dir], "unexpected line " .. line)
      print(("# %s: transformers vs peft merge_and_unload: weights max abs %s (tolerance %g), hidden states max rel %s (tolerance %g)")
        :format(dir, wmax, c[2], hrel, c[3]))
      H.eq(dtype, c[1], dir .. ": dtype transformers loads with dtype='auto'")
      H.eq(only + miss + unexp + mism, 0, dir .. ": every weight loads, none missing or extra")
      H.truthy(tonumber(wmax) <= c[2], dir .. ": weights differ by " .. wmax)
      H.truthy(tonumber(hrel) <= c[3], dir .. ": hidden states differ by " .. hrel)
      seen = seen + 1
    end
  end
  H.eq(seen, 3, "reference lines (" .. so .. ")")
end)

H.done()
