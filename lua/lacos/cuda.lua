-- lacos.cuda: the GPU as the engine sees it (engine/cuda.c).
--
--   lacos.cuda.available()   -- true, or false and the reason
--   lacos.cuda.info()        -- {name=, compute_capability=, multiprocessors=, free=, total=}
--   lacos.cuda.check_fit(bytes, "training")   -- raises "... needs X GiB of GPU memory, but ..." when it cannot fit
--
-- Models go to the GPU with lacos.bloom.load(dir, {device = "cuda"}) (or
-- random(..., {device = "cuda"})), tensors with t:to("cuda").
local E = require "lacos.engine"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}

-- Whether CUDA kernels were compiled into this lacos.
function M.compiled() return C.lacos_cuda_compiled() ~= 0 end

-- true when a device can be used; otherwise false and why.
function M.available()
  local why = ffi.new("char[400]")
  if C.lacos_cuda_available(why, 400) ~= 0 then return true end
  return false, ffi.string(why)
end

function M.info()
  local name = ffi.new("char[256]")
  local cc, sms, fr, tot = ffi.new("int[1]"), ffi.new("int[1]"), ffi.new("double[1]"), ffi.new("double[1]")
  check(C.lacos_cuda_info(name, 256, cc, sms, fr, tot))
  return { name = ffi.string(name), compute_capability = cc[0] / 10, multiprocessors = sms[0], free = fr[0],
           total = tot[0] }
end

-- Raises the planner's message when `bytes` more do not fit in free GPU memory.
function M.check_fit(bytes, what)
  check(C.lacos_cuda_check_fit(bytes, what or "this run"))
  return true
end

function M.synchronize() check(C.lacos_cuda_synchronize()) end

return M
