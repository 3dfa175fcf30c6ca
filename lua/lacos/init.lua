-- lacos: the Lua API. `local lacos = require "lacos"` gives the engine's
-- objects as submodules, loaded on first use:
--   lacos.tensor   tensors (zeros, rand, from, ...)
--   lacos.results  the results database
--   lacos.safetensors  safetensors files and checkpoint directories (open, save, save_sharded)
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
-- Sets a soft cap (bytes) on engine allocations; past it allocations fail cleanly.
function lacos.memory_limit(bytes, device)
  local d = (device == "cuda") and 1 or 0
  if bytes then C.lacos_memory_set_limit(d, bytes) end
  return C.lacos_memory_get_limit(d)
end
lacos.engine = E

-- Submodules load lazily so that `require "lacos"` stays cheap.
local submodules = {
  tensor = "lacos.tensor", results = "lacos.results", repl = "lacos.repl", util = "lacos.util",
  args = "lacos.args", safetensors = "lacos.safetensors",
}
lacos.submodules = submodules
setmetatable(lacos, {
  __index = function(t, k)
    local name = submodules[k]
    if not name then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})

return lacos
