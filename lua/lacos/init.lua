-- lacos: the Lua API. `local lacos = require "lacos"` gives the engine's
-- objects as submodules, loaded on first use:
--   lacos.tensor      tensors (zeros, rand, from, ...)
--   lacos.bloom       BLOOM models: load, random, encode, LoRA
--   lacos.loss        training objectives (mnrl, cosent, softmax)
--   lacos.train       the training loop (lacos.train{...})
--   lacos.pairs       (anchor, positive[, negative]) training data
--   lacos.checkpoint  run checkpoints
--   lacos.safetensors safetensors files and checkpoint directories (open, save, save_sharded)
--   lacos.results     the results database
--   lacos.data        datasets: registry, readers, downloads
--   lacos.sts         STS metrics: cosine scores, Spearman, Pearson, aggregation
--   lacos.tokenizer   Hugging Face tokenizer.json (BLOOM's byte-level BPE, BERT's WordPiece)
--   lacos.sentence_transformers  sentence-transformers directories: modules, pooling, length
--   lacos.export      a merged model written as a sentence-transformers directory
--   lacos.optim       AdamW and 8-bit Adam
--   lacos.sweep       grids of runs in the results database
--   lacos.cuda        the GPU: availability, device, memory planner check
-- and helpers for the engine as a whole (version, threads, memory).
local E = require "lacos.engine"
local ffi, C = E.ffi, E.C

local lacos = {}

function lacos.version() return ffi.string(C.lacos_version()) end
function lacos.build_info() return ffi.string(C.lacos_build_info()) end
function lacos.threads(n)
  if n then E.check(C.lacos_threads_set(n)) end
  return C.lacos_threads_get()
end
function lacos.memory(device) return require("lacos.tensor").memory(device) end
-- A model directory of any family (BLOOM, BERT; a sentence-transformers
-- directory too): lacos.bloom.load, which dispatches on config.json's model_type.
function lacos.load(dir, opts) return require("lacos.bloom").load(dir, opts) end
-- Sets a soft cap (bytes) on engine allocations; past it allocations fail cleanly.
function lacos.memory_limit(bytes, device)
  local d = (device == "cuda") and 1 or 0
  if bytes then C.lacos_memory_set_limit(d, bytes) end
  return C.lacos_memory_get_limit(d)
end
lacos.engine = E

-- Submodules load lazily, on first use of lacos.<name>, from
-- lua/lacos/<name>.lua, so that `require "lacos"` stays cheap and a new
-- module needs no registration here.
-- name -> module of every submodule present (for completion and help), found
-- by listing this directory the first time lacos.submodules is read.
local function list_submodules()
  local dir = debug.getinfo(1, "S").source:gsub("^@", ""):gsub("/init%.lua$", "")
  local names = {}
  for _, f in ipairs(require("lacos.util").listdir(dir) or {}) do
    local n = f:match("^([%w_]+)%.lua$")
    if n and n ~= "init" then names[n] = "lacos." .. n end
  end
  return names
end

setmetatable(lacos, {
  __index = function(t, k)
    if k == "submodules" then
      local names = list_submodules()
      rawset(t, k, names)
      return names
    end
    if type(k) ~= "string" or not k:match("^[%w_]+$") then return nil end
    if not package.searchpath("lacos." .. k, package.path) then return nil end
    local m = require("lacos." .. k)
    rawset(t, k, m)
    return m
  end,
})

return lacos
