-- test_peft_interop: an adapter trained and saved by lacos loads in peft
-- (PeftModel.from_pretrained on transformers' BloomModel) and gives the same
-- embeddings. Needs the reference virtualenv (make venv); skipped without it.
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor

local py = H.root .. "/.venv-ref/bin/python"
local fix = H.root .. "/tests/fixtures/bloom/lora-a"

H.test("peft loads an adapter saved by lacos", function()
  if not H.exists(py) then H.skip("no reference virtualenv (.venv-ref; make venv)") end
  local m = lacos.bloom.load(fix .. "/base", { quant = "f32" })
  m:add_lora { r = 4, alpha = 8, targets = { "all" }, seed = 3 }
  -- move B away from zero so the adapter changes the output
  for _, p in ipairs(m:trainable()) do
    if p.name:match("lora_B") then p.param:copy(T.randn(p.param:size(), { seed = #p.name, std = 0.1 })) end
  end
  local out = H.tmp .. "/lacos-adapter"
  m:save_lora(out, { base_model = fix .. "/base" })
  local ids, mask = T.load_npy(fix .. "/ids.npy"), T.load_npy(fix .. "/mask.npy")
  m:encode_ids(ids, mask, { pooling = "mean" }):save_npy(out .. "/embeddings.npy")
  local rc, so, se = H.sh(("%s %s/tests/reference/check_peft_loads_lacos.py %s/base %s %s/ids.npy %s/mask.npy"):format(
    py, H.root, fix, out, fix, fix))
  H.eq(rc, 0, "reference script exit status (" .. se:sub(-400) .. ")")
  local d = tonumber(so:match("max_rel_diff (%S+)"))
  H.truthy(d, "reference script output: " .. so)
  H.truthy(d < 1e-5, "peft's embeddings differ from lacos' by " .. tostring(d))
end)

H.done()
