-- test_dist: data-parallel training equals one process. tests/lua/dist_worker.lua
-- trains a tiny random BLOOM (f32 and int8) with every loss (MNRL, symmetric,
-- with hard negatives, CoSENT, the softmax classifier), plain, with GradCache
-- and with accumulation, AdamW and 8-bit Adam, LoRA dropout on, and a data
-- set whose last batch is short; once as one process and once as two ranks
-- under mpirun. Same global batch, so:
--   loss of every step       relative 1e-6 (f32), 1e-4 (int8: a rounding flip of one int8 code moves it ~1e-5)
--   gradient at step 1       relative (L2) 1e-5: the sum over the ranks is the single-process gradient
--   adapter after 3 AdamW steps  max |difference| 1e-4
--   8-bit Adam codes         within one quantisation code
-- and the LoRA dropout masks do not depend on the ranks or GradCache chunks.
-- Skipped (not passed) without mpirun or without the MPI backend (a build
-- without libopenmpi-dev).
local H = require "harness"
local lacos = require "lacos"
local util = require "lacos.util"

local tmp = os.getenv("LACOS_TEST_TMP") or "/tmp"
local exe = os.getenv("LACOS") or LACOS_EXE
local names = { "mpirun available", "two ranks equal one process: loss, gradient, adapter, 8-bit codes",
                "dropout masks do not depend on ranks or GradCache", "the comm backend and world size are reported",
                "bytes moved per step", "one rank through the distributed path changes nothing" }

local function skip_all(why)
  for _, n in ipairs(names) do H.skip_test(n, why) end
  H.done()
  os.exit(0)
end

local libdir = (LACOS_LIB or ""):match("^(.*)/[^/]*$") or "."
if not util.exists(libdir .. "/liblacos_mpi.so") then skip_all("this lacos was built without MPI (no liblacos_mpi.so)") end
local probe = util.run({ "sh", "-c", "command -v mpirun >/dev/null 2>&1" })
if probe ~= 0 then skip_all("no mpirun (apt-get install openmpi-bin)") end
H.test(names[1], function() end)

-- mpirun as the tests use it: any user (root too), more ranks than cores,
-- TCP (if used) on loopback only
local function mpirun(np, argv)
  local cmd = { "timeout", "600", "mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "btl_tcp_if_include", "lo",
                "-np", tostring(np) }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  return cmd
end

local one, two = tmp .. "/dist-one.lua", tmp .. "/dist-two.lua"
local worker = (os.getenv("LACOS_ROOT") or ".") .. "/tests/lua/dist_worker.lua"
local log1, log2 = tmp .. "/dist-one.log", tmp .. "/dist-two.log"
local rc1 = util.run({ "timeout", "600", exe, "run", worker, one }, { stdout = log1, stderr = log1 })
local rc2 = util.run(mpirun(2, { exe, "run", worker, two }), { stdout = log2, stderr = log2 })
local function tail(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s:sub(-3000)
end

local function flat(t, out)
  out = out or {}
  for _, v in ipairs(t or {}) do if type(v) == "table" then flat(v, out) else out[#out + 1] = v end end
  return out
end

H.test(names[2], function()
  H.eq(rc1, 0, "one process exit status\n" .. tail(log1))
  H.eq(rc2, 0, "two ranks exit status\n" .. tail(log2))
  local a, b = dofile(one), dofile(two)
  local cases, worst = {}, { loss = 0, grad = 0, adapter = 0 }
  for name in pairs(a) do cases[#cases + 1] = name end
  table.sort(cases)
  H.truthy(#cases >= 30, "cases run: " .. #cases)
  for _, name in ipairs(cases) do
    local x, y = a[name], b[name]
    H.truthy(y, name .. ": no two-rank result")
    H.eq(x.world_size, 1, name .. ": one process")
    H.eq(y.world_size, 2, name .. ": two ranks")
    H.eq(#y.losses, #x.losses, name .. ": steps")
    local tol = name:find("int8") and 1e-4 or 1e-6
    for i = 1, #x.losses do
      local rel = math.abs(x.losses[i] - y.losses[i]) / math.max(math.abs(x.losses[i]), 1e-12)
      worst.loss = math.max(worst.loss, rel)
      H.truthy(rel <= tol, ("%s: loss of step %d: %.9g vs %.9g (relative %.2e > %g)"):format(name, i, x.losses[i], y.losses[i], rel, tol))
    end
    local gx, gy = flat(x.grad), flat(y.grad)
    H.eq(#gy, #gx, name .. ": gradient size")
    local num, den = 0, 0
    for i = 1, #gx do num = num + (gx[i] - gy[i]) ^ 2; den = den + gx[i] ^ 2 end
    local grel = math.sqrt(num / den)
    worst.grad = math.max(worst.grad, grel)
    H.truthy(den > 0 and grel <= 1e-5, ("%s: gradient differs by %.2e (relative L2)"):format(name, grel))
    local px, py = flat(x.adapter), flat(y.adapter)
    local dp = 0
    for i = 1, #px do dp = math.max(dp, math.abs(px[i] - py[i])) end
    worst.adapter = math.max(worst.adapter, dp)
    H.truthy(dp <= 1e-4, ("%s: adapter differs by %.2e"):format(name, dp))
    if x.codes then
      local n = 0
      for k, v in pairs(x.codes) do
        local ca, cb = flat(v), flat(y.codes[k])
        for i = 1, #ca do
          local d = math.abs(ca[i] - cb[i])
          H.truthy(d <= 1, ("%s: %s code %d differs by %d"):format(name, k, i, d))
          n = n + 1
        end
      end
      H.truthy(n > 0, name .. ": 8-bit codes compared")
    end
  end
  print(("#   %d cases; worst: loss %.2e, gradient %.2e, adapter %.2e"):format(#cases, worst.loss, worst.grad, worst.adapter))
end)

H.test(names[3], function()
  local a, b = dofile(one), dofile(two)
  local plain, drop, drop_gc = a["mnrl f32"], a["mnrl f32 dropout"], a["mnrl f32 dropout GradCache"]
  -- the masks matter (the adapter's B starts at zero, so from the second step on)...
  H.truthy(math.abs(drop.losses[3] - plain.losses[3]) > 1e-6, "dropout 0.2 changed nothing")
  -- ...and are the same in chunks and on two ranks
  for i = 1, #drop.losses do
    H.near(drop_gc.losses[i], drop.losses[i], 1e-6 * math.abs(drop.losses[i]), "GradCache, step " .. i)
    H.near(b["mnrl f32 dropout"].losses[i], drop.losses[i], 1e-6 * math.abs(drop.losses[i]), "two ranks, step " .. i)
    H.near(b["mnrl f32 dropout GradCache"].losses[i], drop.losses[i], 1e-6 * math.abs(drop.losses[i]), "two ranks with GradCache, step " .. i)
  end
end)

H.test(names[4], function()
  local b = dofile(two)
  local c = b["mnrl f32"].comm
  H.truthy(c, "no comm record")
  H.match(c.backend, "^mpi")
  H.eq(c.layout, "1 host × 2 ranks")
end)

H.test(names[5], function()
  -- per step: one all-reduce of every gradient plus flags, and one all-gather
  -- of the batch's embeddings; the gradients dominate
  local b = dofile(two)
  local r = b["mnrl f32"]
  local grads = #flat(r.grad) * 4
  local per_step = r.comm.bytes / #r.losses
  local gather = 12 * 32 * 4   -- 6 pairs, 2 sentences, 32 floats
  H.truthy(per_step >= grads + gather and per_step < grads + gather + 4096,
    ("%.0f bytes per step; gradients %d, embeddings %d"):format(per_step, grads, gather))
end)

H.test(names[6], function()
  -- LACOS_DIST=1 alone: the gather, the row split and the reduction with one
  -- rank (the self backend) must give the plain loop's bits
  local forced = tmp .. "/dist-forced.lua"
  local log = tmp .. "/dist-forced.log"
  local rc = util.run({ "env", "LACOS_DIST=1", "timeout", "600", exe, "run", worker, forced, "f32" },
                      { stdout = log, stderr = log })
  H.eq(rc, 0, "exit status\n" .. tail(log))
  local a, f = dofile(one), dofile(forced)
  local n = 0
  for name, r in pairs(f) do
    n = n + 1
    H.eq(r.world_size, 1, name .. ": world size")
    H.match(r.comm and r.comm.backend or "", "^self", name .. ": backend")
    for i, v in ipairs(r.losses) do H.eq(v, a[name].losses[i], ("%s: loss of step %d"):format(name, i)) end
    local pa, pb = flat(a[name].adapter), flat(r.adapter)
    for i = 1, #pa do if pa[i] ~= pb[i] then error(("%s: adapter element %d differs"):format(name, i)) end end
  end
  H.truthy(n >= 15, "cases: " .. n)
end)

H.done()
