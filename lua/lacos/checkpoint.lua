-- lacos.checkpoint: training checkpoints (engine/checkpoint.c) — LoRA
-- weights, optimizer state, trainable loss parameters and the loop's state,
-- saved atomically and verified by hash when read back.
local E = require "lacos.engine"
local T = require "lacos.tensor"
local json = require "lacos.json"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}
M.keep = 2

local function collect(model, optimizer, loss)
  local names, tensors = {}, {}
  -- tensors of a CUDA model (LoRA, optimizer state) are saved from a host copy
  local function add(name, t)
    names[#names + 1] = name
    tensors[#tensors + 1] = t:device_name() == "cpu" and t or t:to("cpu")
  end
  for _, p in ipairs(model:trainable()) do add("lora." .. p.name, p.param) end
  if loss and loss.parameters then
    for _, p in ipairs(loss:parameters()) do add("loss." .. p.name, p.param) end
  end
  if optimizer and optimizer.state then
    local st = optimizer:state()
    local keys = {}
    for k in pairs(st) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do add("optim." .. k, st[k]) end
  end
  return names, tensors
end

-- Writes <dir>/ckpt-<step>; records it as an artifact of `run` when given;
-- keeps the M.keep newest checkpoints.
function M.save(dir, step, model, optimizer, loss, state, run)
  local names, tensors = collect(model, optimizer, loss)
  local n = #names
  local cn = ffi.new("const char*[?]", n)
  local ct = ffi.new("lacos_tensor*[?]", n)
  for i = 1, n do cn[i - 1] = names[i]; ct[i - 1] = tensors[i].t end
  state = state or {}
  state.format = "lacos-train-state"
  state.lacos = require("lacos").version()
  check(C.lacos_checkpoint_save(dir, step, n, cn, ct, json.encode(state)))
  check(C.lacos_checkpoint_prune(dir, M.keep))
  local path = ("%s/ckpt-%08d"):format(dir, step)
  if run and run.artifact then
    pcall(run.artifact, run, { path = path .. "/tensors.safetensors.zst", kind = "checkpoint", step = step })
  end
  return path
end

-- Opens and verifies a checkpoint (sizes and hashes, then its state.json);
-- raises if it is torn or corrupted. Returns the handle and the state table.
local function open_verified(path)
  local out = ffi.new("lacos_checkpoint*[1]")
  local status = C.lacos_checkpoint_open(out, path)
  if status == C.LACOS_EUNSUPPORTED then
    -- not broken: written by a newer lacos. Skipping it would start over and
    -- prune it, so this is an error, like a results database from a newer lacos.
    error(setmetatable({ unsupported = true, message = E.last_error() .. "; it was written by a newer lacos: upgrade lacos to resume from it" },
                       { __tostring = function(e) return e.message end }), 0)
  end
  check(status)
  local ck = ffi.gc(out[0], C.lacos_checkpoint_free)
  local state = json.decode(ffi.string(C.lacos_checkpoint_state(ck)), path .. "/state.json")
  if type(state) ~= "table" then error(path .. "/state.json: not a JSON object", 0) end
  -- a NaN or infinity in the weights or the optimizer state would carry on
  -- into every later step and embedding: such a checkpoint is refused
  local st = C.lacos_checkpoint_tensors(ck)
  local count = ffi.new("double[1]")
  for i = 0, C.lacos_safetensors_count(st) - 1 do
    local name = ffi.string(C.lacos_safetensors_name(st, i))
    local t = T.make(C.lacos_safetensors_get, st, name)
    check(C.lacos_tensor_count_nonfinite(t.t, count))
    t:free()
    if count[0] > 0 then
      error(("%s: tensor %s has %d non-finite values (NaN or infinity)"):format(path, name, count[0]), 0)
    end
  end
  return ck, state
end

-- Loads a verified checkpoint into the model, optimizer and loss. Every
-- name and shape is checked before anything is copied, so a checkpoint made
-- with other options leaves the model as it was.
local function apply(ck, path, model, optimizer, loss)
  local st = C.lacos_checkpoint_tensors(ck)
  local function get(name) return T.make(C.lacos_safetensors_get, st, name) end
  local function has(name) return C.lacos_safetensors_find(st, name) >= 0 end
  local copies = {}
  local function want(key, p)
    if not has(key) then error(("%s: the checkpoint has no %s (was it made with another adapter?)"):format(path, key), 0) end
    local t = get(key)
    if table.concat(t:size(), "x") ~= table.concat(p.param:size(), "x") then
      error(("%s: %s has shape %s, the model's adapter %s"):format(path, key, table.concat(t:size(), "x"),
        table.concat(p.param:size(), "x")), 0)
    end
    copies[#copies + 1] = { p.param, t }
  end
  for _, p in ipairs(model:trainable()) do want("lora." .. p.name, p) end
  if loss and loss.parameters then
    for _, p in ipairs(loss:parameters()) do want("loss." .. p.name, p) end
  end
  if optimizer and optimizer.load_state then
    local tbl = {}
    for i = 0, C.lacos_safetensors_count(st) - 1 do
      local name = ffi.string(C.lacos_safetensors_name(st, i))
      if name:sub(1, 6) == "optim." then tbl[name:sub(7)] = get(name):clone() end
    end
    local ok, err = pcall(optimizer.load_state, optimizer, tbl)   -- all or nothing
    if not ok then error(("%s: the optimizer state does not fit this run: %s"):format(path, tostring(err)), 0) end
  end
  for _, c in ipairs(copies) do c[1]:copy(c[2]) end
end

-- Restores a checkpoint into the model, optimizer and loss; returns its state table.
function M.restore(path, model, optimizer, loss)
  local ck, state = open_verified(path)
  apply(ck, path, model, optimizer, loss)
  C.lacos_checkpoint_free(ffi.gc(ck, nil))
  state.path = path
  return state
end

-- The newest checkpoint under dir that verifies, restored; nil when none.
-- Broken ones (torn, corrupted, holding NaN) are reported and skipped. One
-- that verifies but was made with other options is an error: resuming from
-- it would continue another run (silently wrong numbers), and starting over
-- would prune it, deleting that run's checkpoints without asking.
-- expect.fingerprint (lacos.train's) must equal the one stored with the
-- checkpoint; the error lists every entry that differs, by expect.names.
function M.load_latest(dir, model, optimizer, loss, expect)
  local buf = ffi.new("char[4096]")
  local step = ffi.new("int[1]")
  local i = 0
  while C.lacos_checkpoint_find(dir, i, buf, 4096, step) == 0 do
    local path = ffi.string(buf)
    local ok, ck, state = pcall(open_verified, path)
    if not ok and type(ck) == "table" and ck.unsupported then
      error(ck.message .. ", or start over in another directory", 0)
    end
    if ok and expect and expect.fingerprint then
      local have = state.fingerprint
      local diffs = type(have) == "table" and require("lacos.train").fingerprint_diff(have, expect.fingerprint, expect.names)
      if not diffs or #diffs > 0 then
        C.lacos_checkpoint_free(ffi.gc(ck, nil))
        local what = diffs and ("was made with other options: " .. table.concat(diffs, "; "))
                     or "holds no record of the options it was made with (an older lacos wrote it)"
        error(("%s %s. Resuming would continue another run. Resume with the options it was made with; to train its " ..
               "adapter further, start a new run from it in another directory (lacos train --init-adapter DIR); or " ..
               "start over here (resume = false, lacos train --no-resume, which replaces these checkpoints)")
              :format(path, what), 0)
      end
    end
    if ok then
      local applied, err = pcall(apply, ck, path, model, optimizer, loss)
      C.lacos_checkpoint_free(ffi.gc(ck, nil))
      if not applied then
        error(("%s; resume with the options it was made with, or start over in another directory " ..
               "(or with resume = false, lacos train --no-resume, which replaces these checkpoints)"):format(tostring(err)), 0)
      end
      state.path = path
      return state
    end
    io.stderr:write(("lacos: skipping checkpoint %s: %s\n"):format(path, tostring(ck)))
    i = i + 1
  end
  C.lacos_error_clear()
  return nil
end

return M
