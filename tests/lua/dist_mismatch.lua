-- dist_mismatch: a lacos.train run whose rank 1 was started unlike rank 0
-- (tests/cli/test_dist_cli.sh): other data, another model, or another
-- option. lacos.train must stop every rank before the first step, naming
-- the difference.
--   mpirun -np 2 lacos run tests/lua/dist_mismatch.lua data|model|option|none OUT_DIR
local lacos = require "lacos"
local dist = require "lacos.dist"
local F = require "train_fixture"

local what, out = arg[1], arg[2]
local odd = dist.rank() == 1
local data = F.dataset(odd and what == "data" and 23 or 24)
local m = F.model(odd and what == "model" and 2 or 1, { quant = "f32" })
local r = lacos.train {
  model = m, data = data, batch_size = 4, steps = 3, lr = odd and what == "option" and 1e-3 or 5e-3, warmup = 0,
  seed = 3, max_length = 16, pooling = "mean", quiet = true, checkpoint_dir = out, checkpoint_every = 1,
}
print(("rank %d: %s after %d steps"):format(dist.rank(), r.status, r.steps))
