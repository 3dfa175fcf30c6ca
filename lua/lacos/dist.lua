-- lacos.dist: the processes of a data-parallel job (engine/comm.c).
--
--   mpirun -np 4 lacos train ...           srun --mpi=pmix -n 8 lacos run script.lua
--
--   local dist = require "lacos.dist"
--   dist.env()              -- {rank=, size=, local_rank=, local_size=, launched=, source=} (loads nothing)
--   local comm = dist.open{timeout = 60}   -- the process's communicator (once per process)
--   comm:rank(), comm:size(), comm:local_rank(), comm:backend(), comm:host(r), comm:layout()
--   comm:allreduce{t1, t2}  comm:allgather(t) -> t, rows  comm:broadcast(t, root)  comm:barrier()
--   comm:allgather_strings(s) -> {s0, s1, ...}   comm:broadcast_string(s, root) -> s
--   dist.rank(), dist.size()  -- 0 and 1 without a launcher
--
-- A process started without a launcher is alone: dist.env().launched is
-- false, nothing is loaded and lacos.train runs exactly as before. Under a
-- launcher, lacos.train (through dist.trainer) splits each global batch
-- between the ranks, gathers the embeddings, computes the loss of the whole
-- batch on every rank, sums the gradients and steps identically everywhere
-- (see the README's "More than one GPU or machine").
local E = require "lacos.engine"
local T = require "lacos.tensor"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}

-- The launcher's view of this process, from its environment alone.
function M.env()
  local info = ffi.new("lacos_comm_env_info")
  check(C.lacos_comm_env(info))
  return { rank = info.rank, size = info.size, local_rank = info.local_rank, local_size = info.local_size,
           launched = info.launched ~= 0, source = ffi.string(info.source) }
end

local Comm = {}
Comm.__index = Comm
M.Comm = Comm
local current

local device_modes = { auto = C.LACOS_COMM_DEVICE_AUTO, host = C.LACOS_COMM_DEVICE_HOST, nccl = C.LACOS_COMM_DEVICE_NCCL }

-- The process's communicator, opened on first use. opts: timeout (seconds
-- of silence before a peer counts as dead; default $LACOS_COMM_TIMEOUT or
-- 60), device ("auto", "host", "nccl"; default $LACOS_COMM_DEVICE or auto),
-- backend ("auto", "self", "mpi").
function M.open(opts)
  opts = opts or {}
  if current then
    if opts.timeout then current:set_timeout(opts.timeout) end
    return current
  end
  local o = ffi.new("lacos_comm_options")
  C.lacos_comm_options_init(o)
  local timeout = opts.timeout or tonumber(os.getenv("LACOS_COMM_TIMEOUT") or "")
  if timeout then o.timeout = timeout end
  local dev = opts.device or os.getenv("LACOS_COMM_DEVICE")
  if dev and dev ~= "" then
    if not device_modes[dev] then error(("lacos.dist: device must be auto, host or nccl, got '%s'"):format(dev), 2) end
    o.device_mode = device_modes[dev]
  end
  if opts.backend then ffi.copy(o.backend, opts.backend, math.min(#opts.backend, 15)) end
  local out = ffi.new("lacos_comm*[1]")
  check(C.lacos_comm_open(out, o))
  current = setmetatable({ ptr = ffi.gc(out[0], C.lacos_comm_free) }, Comm)
  return current
end

-- The communicator if one is open (nil otherwise).
function M.current() return current end

-- This process's rank and the job's size: from the open communicator, else
-- from the launcher's environment.
function M.rank() if current then return current:rank() end return M.env().rank end
function M.size()
  if current then return current:size() end
  local e = M.env()
  return e.size > 0 and e.size or 1
end

-- True when this process is one of several (a launcher started it).
function M.launched() return (current and current:size() > 1) or M.env().launched end

function Comm:rank() return C.lacos_comm_rank(self.ptr) end
function Comm:size() return C.lacos_comm_size(self.ptr) end
function Comm:local_rank() return C.lacos_comm_local_rank(self.ptr) end
function Comm:local_size() return C.lacos_comm_local_size(self.ptr) end
function Comm:backend() return ffi.string(C.lacos_comm_backend(self.ptr)) end
function Comm:host(r) return ffi.string(C.lacos_comm_host(self.ptr, r or self:rank())) end
function Comm:pid(r) return C.lacos_comm_pid(self.ptr, r or self:rank()) end
function Comm:set_timeout(s) check(C.lacos_comm_set_timeout(self.ptr, s)) end
function Comm:abort(why) C.lacos_comm_abort(self.ptr, why or "failed") end
function Comm:check_peers() check(C.lacos_comm_check_peers(self.ptr)) end
function Comm:prepare_device() check(C.lacos_comm_prepare_device(self.ptr)) end
function Comm:barrier() check(C.lacos_comm_barrier(self.ptr)) end
-- "rank 1 (host a, pid 123)"
function Comm:who(r)
  r = r or self:rank()
  return ("rank %d (host %s, pid %d)"):format(r, self:host(r), self:pid(r))
end

-- How the ranks sit on hosts: "1 host × 2 ranks", "2 hosts × 4 ranks",
-- "3 hosts (a: 4, b: 4, c: 2 ranks)".
function Comm:layout()
  local order, count = {}, {}
  for r = 0, self:size() - 1 do
    local h = self:host(r)
    if not count[h] then order[#order + 1] = h; count[h] = 0 end
    count[h] = count[h] + 1
  end
  local same = true
  for _, h in ipairs(order) do if count[h] ~= count[order[1]] then same = false end end
  local hosts = #order == 1 and "1 host" or (#order .. " hosts")
  if same then return ("%s × %d rank%s"):format(hosts, count[order[1]], count[order[1]] == 1 and "" or "s") end
  local parts = {}
  for _, h in ipairs(order) do parts[#parts + 1] = ("%s: %d"):format(h, count[h]) end
  return ("%s (%s ranks)"):format(hosts, table.concat(parts, ", "))
end

-- In place: each tensor becomes the sum over the ranks (one message).
function Comm:allreduce(list)
  local n = #list
  if n == 0 then return list end
  local arr = ffi.new("lacos_tensor*[?]", n)
  for i = 1, n do arr[i - 1] = list[i].t end
  check(C.lacos_comm_allreduce_sum(self.ptr, n, arr))
  return list
end

-- The ranks' tensors stacked along dimension 1 in rank order, and each
-- rank's row count (a Lua list, rank 0 first).
function Comm:allgather(t)
  local W = self:size()
  local rows = ffi.new("int64_t[?]", W)
  local g = T.make(C.lacos_comm_allgather, self.ptr, t.t, rows)
  local counts = {}
  for r = 1, W do counts[r] = tonumber(rows[r - 1]) end
  return g, counts
end

function Comm:broadcast(t, root)
  check(C.lacos_comm_broadcast(self.ptr, t.t, root or 0))
  return t
end

local function bytes_tensor(s)
  local t = T.empty({ #s }, "u8")
  if #s > 0 then ffi.copy(t.t.data, s, #s) end
  return t
end

-- Every rank's string, in rank order.
function Comm:allgather_strings(s)
  local t = bytes_tensor(s)
  local g, rows = self:allgather(t)
  t:free()
  local out, off = {}, 0
  local p = ffi.cast("const char*", g.t.data)
  for r = 1, #rows do
    out[r] = rows[r] > 0 and ffi.string(p + off, rows[r]) or ""
    off = off + rows[r]
  end
  g:free()
  return out
end

-- root's string on every rank.
function Comm:broadcast_string(s, root)
  root = root or 0
  local n = T.from({ self:rank() == root and #s or 0 }, "i64")
  self:broadcast(n, root)
  local len = tonumber(n:item())
  n:free()
  local t = T.empty({ len }, "u8")
  if self:rank() == root and len > 0 then ffi.copy(t.t.data, s, len) end
  self:broadcast(t, root)
  local out = len > 0 and ffi.string(t.t.data, len) or ""
  t:free()
  return out
end

-- Calls, payload bytes and seconds spent in collectives since open.
function Comm:stats()
  local c, b, s = ffi.new("double[1]"), ffi.new("double[1]"), ffi.new("double[1]")
  C.lacos_comm_stats(self.ptr, c, b, s)
  return { calls = c[0], bytes = b[0], seconds = s[0] }
end

-- ---------------------------------------------------------------- errors

-- Called by the command line (lacos.cli) when a command or script fails:
-- under a launcher, the other ranks are told (they stop waiting and report
-- it) and the message gets this rank's name. Returns the message to print.
--
-- A failure every rank raised together (M.agreed: a verdict the ranks
-- reached in one collective, such as mismatched options) needs no telling:
-- the job ends cleanly and rank 0 alone prints it (nil for the others).
function M.on_error(msg)
  if not current or current:size() <= 1 then return msg end
  if M.agreed then return current:rank() == 0 and msg or nil end
  local text = tostring(msg)
  current:abort(text:gsub("\nstack traceback:.*$", ""))
  if current:rank() == 0 then return msg end
  return ("[%s] %s"):format(current:who(), text)
end

-- Every rank says what (if anything) stops it before the work starts; if
-- any rank has a reason, every rank gets the same one (the lowest rank's,
-- naming that rank when it is not rank 0) and the failure counts as agreed.
-- nil when no rank objects.
function Comm:first_error(err)
  local all = self:allgather_strings(err or "")
  for r, e in ipairs(all) do
    if e ~= "" then
      M.agreed = true
      if r == 1 then return e end
      return ("%s: %s"):format(self:who(r - 1), e)
    end
  end
  return nil
end

-- ---------------------------------------------------------------- GPUs

-- Picks this rank's GPU before a model goes to the device: the local rank's
-- when the host shows at least as many GPUs as it has ranks; one GPU for
-- every rank of the host only with LACOS_SHARE_GPU=1 (a test set-up: the
-- gradients then go through host memory, NCCL refusing two ranks on one
-- GPU). Nothing happens without a launcher.
function M.bind_device(usage_error)
  if not M.launched() then return end
  local comm = M.open()
  if comm:size() <= 1 then return end
  local n = C.lacos_cuda_device_count()
  local lr, ls = comm:local_rank(), comm:local_size()
  local share = (os.getenv("LACOS_SHARE_GPU") or "") == "1"
  local fail = usage_error or function(msg) error(msg, 0) end
  if n < 1 then
    local ok, why = require("lacos.cuda").available()
    return fail(("%s has no usable GPU: %s"):format(comm:who(), why or "none visible"))
  end
  if n >= ls then check(C.lacos_cuda_select(lr))
  elseif share then
    check(C.lacos_cuda_select(lr % n))
    M.shared_gpu = true
  else
    local vis = os.getenv("CUDA_VISIBLE_DEVICES")
    return fail(("%d ranks run on host %s but it shows %d GPU%s%s: --device cuda needs one GPU per rank (mpirun -np at most " ..
          "the GPUs per host, or srun --gpus-per-task=1); LACOS_SHARE_GPU=1 lets ranks share one for testing")
      :format(ls, comm:host(), n, n == 1 and "" or "s", vis and (" (CUDA_VISIBLE_DEVICES=" .. vis .. ")") or ""))
  end
end

-- ---------------------------------------------------------------- sweeps

-- A run record that records nothing: what the ranks other than 0 hold in a
-- sweep (rank 0 alone writes the database).
local NullRun = {}
for _, name in ipairs { "param", "params", "metric", "log", "flush", "heartbeat", "tag", "tags", "sts", "timing",
                        "artifact", "finish", "free" } do
  NullRun[name] = function() end
end
function M.null_run() return setmetatable({ null = true }, { __index = NullRun }) end

-- The job a sweep runs in, or nil for a process that is alone. Rank 0 claims
-- each point in the database; :decide(run, started) gives every rank its
-- decision (started or not) and the run to record into (rank 0's own, a
-- null run elsewhere).
function M.job()
  if not M.launched() then return nil end
  local comm = M.open()
  if comm:size() <= 1 then return nil end
  local job = { comm = comm, root = comm:rank() == 0 }
  function job:decide(run, started)
    local said = comm:broadcast_string(self.root and (started and "run" or "skip") or "", 0)
    if self.root then return run, started end
    return M.null_run(), said == "run"
  end
  return job
end

-- ---------------------------------------------------------------- training

-- Rows [lo, hi] (1-based, inclusive; hi < lo: none) of a global batch of n
-- that rank r of W takes: [r·n/W, (r+1)·n/W) in 0-based terms.
function M.share(n, r, W)
  return math.floor(r * n / W) + 1, math.floor((r + 1) * n / W)
end

-- nil when a global batch of B pairs splits evenly among W ranks, else why not.
function M.check_world(B, W)
  if W > B then
    return ("%d ranks but a global batch of %d pairs: every rank needs at least one pair of each batch (batch size " ..
            "at least the number of ranks)"):format(W, B)
  end
  if B % W ~= 0 then
    local up = math.ceil(B / W) * W
    return ("the global batch of %d pairs does not split evenly among %d ranks: use a batch size that is a multiple " ..
            "of %d (%d or %d), or another number of ranks"):format(B, W, W, up - W > 0 and up - W or up, up)
  end
  return nil
end

local Trainer = {}
Trainer.__index = Trainer
M.Trainer = Trainer

-- The distributed side of a lacos.train run, or nil for a process that is
-- alone. opts: the lacos.train options (comm_timeout, sync_check).
-- LACOS_DIST=1 takes the distributed path even alone (one rank): a check
-- that it changes nothing, and the way to exercise NCCL with one GPU
-- (LACOS_COMM_DEVICE=nccl).
function M.trainer(opts)
  local forced = os.getenv("LACOS_DIST") == "1"
  if not M.launched() and not forced then return nil end
  local comm = M.open { timeout = opts.comm_timeout }
  if comm:size() <= 1 and not forced then return nil end
  return setmetatable({ comm = comm, rank = comm:rank(), size = comm:size(), root = comm:rank() == 0 }, Trainer)
end

-- This rank's rows of a global batch of n.
function Trainer:rows(n) return M.share(n, self.rank, self.size) end

-- The global batch's embeddings from every rank's local ones. A rank holds
-- ncols blocks (anchors, positives[, negatives]) of its rows each; the
-- result is the global [anchors; positives; negatives] of n rows each.
function Trainer:gather(emb, n, ncols)
  local g, counts = self.comm:allgather(emb)
  local parts, offsets, off = {}, {}, 0
  for r = 1, self.size do offsets[r] = off; off = off + counts[r] end
  for c = 0, ncols - 1 do
    for r = 1, self.size do
      local lo, hi = M.share(n, r - 1, self.size)
      local cnt = hi - lo + 1
      if counts[r] ~= cnt * ncols then
        error(("the all-gather brought %d rows from rank %d, expected %d"):format(counts[r], r - 1, cnt * ncols), 0)
      end
      if cnt > 0 then parts[#parts + 1] = g:narrow(1, offsets[r] + c * cnt + 1, cnt) end
    end
  end
  local all = T.cat(parts, 1)
  g:free()
  return all
end

-- This rank's rows of the global batch's gradient (the layout of gather).
function Trainer:local_rows(d, n, ncols)
  local lo, hi = self:rows(n)
  local cnt = hi - lo + 1
  if cnt <= 0 then return T.empty({ 0, d:size(2) }) end
  local parts = {}
  for c = 0, ncols - 1 do parts[#parts + 1] = d:narrow(1, c * n + lo, cnt) end
  return T.cat(parts, 1)
end

-- Sums the gradients over the ranks so that every rank holds the
-- single-process gradient of the mean loss over the global batch: each
-- rank's LoRA gradients come from the loss of the whole batch
-- back-propagated through its own rows only, so their SUM is the gradient
-- (not their mean: that would be 1/W of it). The classifier's gradients are
-- computed from the gathered embeddings identically on every rank: rank 0's
-- copy is kept (the others add zeros). `flags` (a list of numbers) is summed
-- in the same message; the sums are returned.
function Trainer:reduce(optimizer, loss, flags)
  local grads, host = {}, {}
  for _, p in ipairs(optimizer.params) do
    if p.model then grads[#grads + 1] = p.grad
    else
      if not self.root then p.grad:zero() end
      host[#host + 1] = p.grad
    end
  end
  local f = T.from(flags, "f32")
  local device = grads[1] and grads[1]:device_name() ~= "cpu"
  if device then
    self.comm:allreduce(grads)
    host[#host + 1] = f
    self.comm:allreduce(host)
  else
    for _, g in ipairs(host) do grads[#grads + 1] = g end
    grads[#grads + 1] = f
    self.comm:allreduce(grads)
  end
  local out = {}
  for i = 1, #flags do out[i] = f:get(i) end
  f:free()
  return out
end

-- A SHA-256 of the trainable parameters, the loss's and the optimizer's
-- state (host copies of device tensors).
function M.state_hash(optimizer, loss)
  local hex = ffi.new("char[65]")
  local parts = {}
  local function add(t)
    local h = t:device_name() == "cpu" and t or t:to("cpu")
    local c = h:is_contiguous() and h or h:contiguous()
    check(C.lacos_sha256_buffer(c.t.data, c:nbytes(), hex))
    parts[#parts + 1] = ffi.string(hex)
  end
  for _, p in ipairs(optimizer.params) do add(p.param) end
  if optimizer.state then
    local st, names = optimizer:state()
    table.sort(names)
    for _, k in ipairs(names) do add(st[k]) end
  end
  local s = table.concat(parts, "\n")
  check(C.lacos_sha256_buffer(s, #s, hex))
  return ffi.string(hex)
end

-- Every rank's parameters and optimizer state must be identical (the same
-- gradients, the same updates): compared by hash, a difference is an error.
function Trainer:sync_check(optimizer, loss, step)
  local hashes = self.comm:allgather_strings(M.state_hash(optimizer, loss))
  for r = 2, #hashes do
    if hashes[r] ~= hashes[1] then
      error(("the ranks' parameters differ after step %d: %s has %s…, rank 0 %s… (non-deterministic arithmetic or a " ..
             "rank that was not in step; the run cannot go on)"):format(step, self.comm:who(r - 1), hashes[r]:sub(1, 12),
             hashes[1]:sub(1, 12)), 0)
    end
  end
end

-- Canonical text of a fingerprint table (sorted keys, %.17g numbers).
local function canon(v)
  local t = type(v)
  if t == "number" then
    -- the shortest text that reads back as the same number
    for digits = 15, 17 do
      local s = ("%." .. digits .. "g"):format(v)
      if tonumber(s) == v then return s end
    end
  end
  if t == "string" then return ("%q"):format(v) end
  if t ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. canon(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
M.canon = canon

-- Stops every rank, before anything is computed, when the ranks were not
-- started alike: fp is {name = value} (options, data and model digests);
-- the first name whose value differs from rank 0's is named with both
-- values. Every rank raises the same message.
function Comm:check_same(fp, what)
  local keys = {}
  for k in pairs(fp) do keys[#keys + 1] = k end
  table.sort(keys)
  local lines = {}
  for _, k in ipairs(keys) do lines[#lines + 1] = k .. "\t" .. canon(fp[k]) end
  local all = self:allgather_strings(table.concat(lines, "\n"))
  local function parse(s)
    local t = {}
    for line in (s .. "\n"):gmatch("([^\n]*)\n") do
      local k, v = line:match("^([^\t]*)\t(.*)$")
      if k then t[k] = v end
    end
    return t
  end
  local ref = parse(all[1])
  for r = 2, #all do
    if all[r] ~= all[1] then
      local other = parse(all[r])
      local names = {}
      for k in pairs(ref) do names[k] = true end
      for k in pairs(other) do names[k] = true end
      local sorted = {}
      for k in pairs(names) do sorted[#sorted + 1] = k end
      table.sort(sorted)
      for _, k in ipairs(sorted) do
        if ref[k] ~= other[k] then
          local function show(v) if v == nil then return "(not set)" end return (#v > 120 and v:sub(1, 117) .. "..." or v) end
          M.agreed = true   -- every rank reaches this verdict from the same strings
          error(("the ranks were not started alike (%s): %s has %s = %s, rank 0 (host %s) has %s; start every rank " ..
                 "with the same command, data and model"):format(what or "options", self:who(r - 1), k, show(other[k]),
                 self:host(0), show(ref[k])), 0)
        end
      end
    end
  end
end
function Trainer:check_same(fp, what) return self.comm:check_same(fp, what) end

-- What must be the same on every rank of a lacos.train run: the options
-- that shape the numbers, the loss, the optimizer, the data, the model and
-- the step it resumed from.
local TRAIN_OPTIONS = { "lr", "batch_size", "mini_batch", "epochs", "steps", "warmup", "schedule", "max_grad_norm",
                        "accumulation", "seed", "pooling", "max_length", "length_bucketing", "no_duplicates",
                        "checkpoint_dir", "checkpoint_every", "resume", "max_nonfinite", "fast_backward", "sync_check",
                        "log_every", "eval_every" }
function M.train_fingerprint(opts, model, data, loss, optimizer, step)
  local fp = M.model_fingerprint(model)
  for _, k in ipairs(TRAIN_OPTIONS) do fp["option " .. k] = canon(opts[k]) end
  fp["option checkpointing"] = tostring(C.lacos_bloom_get_checkpointing(model.ptr) ~= 0)
  fp.device = tostring(model.device)
  fp.loss = loss.describe and loss:describe() or tostring(loss.kind)
  fp.optimizer = canon(optimizer.config and optimizer:config() or {})
  fp.data = ("%s: %d %s, sha256 %s"):format(tostring(data.source), data:size(), tostring(data.kind or "pairs"),
                                            data.digest and data:digest() or "?")
  fp["resumed from step"] = tostring(step)
  fp.lacos = ffi.string(C.lacos_version())
  return fp
end

-- A fingerprint of a model's weights as loaded: its directory's files
-- (names, sizes, and a SHA-256 of 64 KiB windows at 18 evenly spaced places
-- of each: the safetensors header and samples of every region; a full hash
-- of a 14 GB checkpoint would take each rank a minute), or the name, seed
-- and quantisation of a random one, with the config and LoRA settings.
function M.model_fingerprint(model)
  local fp = { config = canon(model:config()), quant = tostring(model.quant), threshold = tostring(model.threshold),
               int8_skip = model.int8_skip and table.concat(model.int8_skip, ",") or "none",
               lora = canon(model.lora or {}) }
  if model.dir then
    local util = require "lacos.util"
    local names = util.listdir(model.dir) or {}
    table.sort(names)
    local hex = ffi.new("char[65]")
    local parts = {}
    for _, name in ipairs(names) do
      if name:match("%.safetensors$") or name:match("%.bin$") or name == "config.json" then
        local f = io.open(model.dir .. "/" .. name, "rb")
        if f then
          local size = f:seek("end")
          local chunks = {}
          local window = 65536
          for i = 0, 17 do
            local at = size <= window and 0 or math.floor((size - window) * i / 17)
            f:seek("set", at)
            chunks[#chunks + 1] = f:read(window) or ""
            if size <= window then break end
          end
          f:close()
          local s = table.concat(chunks)
          check(C.lacos_sha256_buffer(s, #s, hex))
          parts[#parts + 1] = ("%s %d %s"):format(name, size, ffi.string(hex))
        end
      end
    end
    fp.weights = table.concat(parts, "; ")
  else
    fp.weights = ("random %s, seed %s"):format(model.name or "model of the config above", tostring(model.seed))
  end
  return fp
end

return M
