-- Benchmark: the transport alone. An all-reduce (sum) of N floats, the
-- size of a LoRA gradient, and an all-gather of embedding rows, between the
-- ranks of an mpirun job; rank 0 prints one JSON line with the median time
-- and the algorithm bandwidth (bytes reduced per second).
-- usage: mpirun -np W lacos run tests/bench/dist_allreduce.lua FLOATS ROWS DIM REPS [cpu|cuda]
local lacos = require "lacos"
local dist = require "lacos.dist"
local json = require "lacos.json"
local T = lacos.tensor
local n, rows, dim, reps, device = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5] or "cpu"
local comm = dist.open()
local g = T.rand({ n }, { seed = comm:rank() })
if device == "cuda" then
  dist.bind_device()
  g = g:to("cuda")
end
local e = T.rand({ rows, dim }, { seed = 10 + comm:rank() })
local clock = lacos.train.clock
local function median(f)
  local t = {}
  f()   -- warm-up
  for i = 1, reps do
    comm:barrier()
    local t0 = clock()
    f()
    if device == "cuda" then lacos.cuda.synchronize() end
    t[i] = clock() - t0
  end
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end
local t_reduce = median(function() comm:allreduce { g } end)
local t_gather = median(function() local x = comm:allgather(e) x:free() end)
if comm:rank() == 0 then
  print(json.encode { ranks = comm:size(), backend = comm:backend(), device = device, floats = n,
                      allreduce_seconds = t_reduce, allreduce_gb_per_s = 4 * n / t_reduce / 1e9,
                      gather_rows_per_rank = rows, dim = dim, allgather_seconds = t_gather,
                      allgather_gb_per_s = 4 * rows * dim * comm:size() / t_gather / 1e9 })
end
