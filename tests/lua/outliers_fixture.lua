-- outliers_fixture: a copy of a BLOOM checkpoint with LLM.int8 outlier
-- features planted in its first layer (h.0), the way a few hidden features
-- of the released BLOOM models are far larger than the rest. For every
-- token, one input feature of each of the layer's four linears lands far
-- above the usual threshold of 6:
--   query_key_value  input_layernorm.weight[6] = 40 (LayerNorm output ~ N(0, 1) x 40)
--   dense            the value bias of head 1, dimension 1, = 30 (the attention
--                    output is a weighted mean of values, so ~30)
--   dense_h_to_4h    post_attention_layernorm.weight[8] = 40
--   dense_4h_to_h    dense_h_to_4h.bias[12] = 30 (GELU(~30) ~ 30)
-- The other layers are left as they are. Used by tests/lua/test_bloom.lua
-- and tests/cli/test_model_cli.sh (lacos -e "require('outliers_fixture').plant(src, dst)").
local M = {}

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function run(cmd)
  local r = os.execute(cmd)
  if not (r == 0 or r == true) then error("failed: " .. cmd, 2) end
end

-- Writes dst (config.json, tokenizer.json when present, model.safetensors)
-- from the checkpoint directory src.
function M.plant(src, dst)
  local lacos = require "lacos"
  local cfg = lacos.bloom.config(src .. "/config.json")
  local hd = cfg.hidden_size / cfg.n_head
  run("rm -rf " .. sh_quote(dst) .. " && mkdir -p " .. sh_quote(dst) .. " && cp " .. sh_quote(src .. "/config.json") .. " " ..
      sh_quote(dst .. "/"))
  local tok = io.open(src .. "/tokenizer.json", "rb")
  if tok then
    tok:close()
    run("cp " .. sh_quote(src .. "/tokenizer.json") .. " " .. sh_quote(dst .. "/"))
  end
  local st = lacos.safetensors.open(src)
  local ts = st:tensors()
  local function set(name, i, v)
    local key = ts[name] and name or ("transformer." .. name)
    local t = ts[key]:float()   -- a copy: the file's views stay untouched
    t[i] = v
    ts[key] = t
  end
  set("h.0.input_layernorm.weight", 6, 40)
  -- BLOOM's fused qkv rows are per head [q (hd), k (hd), v (hd)]: head 1's first value row is 2 hd + 1
  set("h.0.self_attention.query_key_value.bias", 2 * hd + 1, 30)
  set("h.0.post_attention_layernorm.weight", 8, 40)
  set("h.0.mlp.dense_h_to_4h.bias", 12, 30)
  lacos.safetensors.save(dst .. "/model.safetensors", ts, { format = "pt" })
  st:free()
  return dst
end

return M
