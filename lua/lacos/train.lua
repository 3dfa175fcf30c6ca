-- lacos.train: the training loop — LoRA on a frozen BLOOM with a Siamese
-- contrastive objective (the LACoS-BLOOM recipe).
--
--   local result = lacos.train{
--     model = m,                          -- lacos.bloom model with a LoRA adapter
--     data = lacos.pairs.read("nli.tsv"), -- (anchor, positive[, negative]) examples
--     loss = lacos.loss.mnrl{scale = 20},
--     optimizer = lacos.optim.adam8bit(m:trainable(), {lr = 2e-4}),
--     batch_size = 16, epochs = 1, warmup = 0.1, max_grad_norm = 1.0,
--     seed = 42, checkpoint_dir = "runs/x", checkpoint_every = 100, run = db_run,
--   }
--
-- The data's kind must be what the loss consumes (lacos.pairs): pairs for
-- MNRL, scored pairs for CoSENT (loss:compute(u, v, scores)), labelled pairs
-- for the softmax classifier (loss:compute(u, v, labels)), whose weights the
-- optimizer trains with the LoRA parameters.
--
-- Each step embeds the batch's first sentences, second sentences and hard
-- negatives in one forward pass (or, with mini_batch, GradCache: embed
-- everything without keeping activations, take the loss and its gradient for
-- the whole batch, then re-embed chunk by chunk with activations and
-- back-propagate each chunk's slice — the same loss and gradients as the
-- uncached step, in the memory of one chunk; any of the three losses). In-batch
-- negatives come from the step's own batch: gradient accumulation adds
-- steps, not negatives. An update with accumulation k applies the mean of
-- its k micro-steps' gradients (each loss divided by k, as transformers'
-- Trainer does), so clipping and the logged gradient norm do not depend on k.
--
-- Determinism: data order, LoRA dropout masks and every random choice derive
-- from `seed` and the step number, so a run repeats bit for bit on the CPU
-- and a resumed run continues exactly as an uninterrupted one. Dropout masks
-- are keyed by each sentence's row in the step's batch, so GradCache chunks
-- and the ranks of a job draw the masks of the whole batch.
--
-- Under a launcher (mpirun, srun: lacos.dist) batch_size is the global
-- batch: rank r embeds rows [r·B/W, (r+1)·B/W) of the same seeded batch, the
-- embeddings are all-gathered, every rank takes the loss of the whole batch
-- (every other rank's positives are negatives too), the gradients are summed
-- across ranks, clipped on their global norm and every rank applies the same
-- update. The parameters are compared by hash every sync_check steps. Rank 0
-- alone writes checkpoints and the run's log; a signal stops every rank at
-- the same step boundary.
local E = require "lacos.engine"
local T = require "lacos.tensor"
local util = require "lacos.util"
local ffi, C = E.ffi, E.C

local M = {}

local defaults = {
  model = util.REQUIRED, data = util.REQUIRED, loss = util.ANY, optimizer = util.ANY,
  lr = 2e-4, batch_size = 16, mini_batch = util.ANY, epochs = 1, steps = util.ANY,
  warmup = 0.1, schedule = "linear", max_grad_norm = 1.0, accumulation = 1,
  seed = 42, pooling = util.ANY, max_length = 128, length_bucketing = true, no_duplicates = util.ANY,
  log_every = 10, run = util.ANY, checkpoint_dir = util.ANY, checkpoint_every = 0, resume = true,
  max_nonfinite = 5, progress = util.ANY, on_step = util.ANY, eval = util.ANY, eval_every = 0,
  checkpointing = util.ANY, fast_backward = false, quiet = false, comm_timeout = util.ANY, sync_check = 100,
  print_every = util.ANY, fingerprint = util.ANY, option_names = util.ANY,
}

local clock = util.clock
M.clock = clock

-- Activation checkpointing unless told otherwise: on for models of hidden
-- size >= 1536 (bloom-1b7 and up), where activations outgrow the rest.
function M.checkpointing_default(cfg) return cfg.hidden_size >= 1536 end

-- Learning rate at step s (1-based) of total with `warm` warmup steps:
-- linear warmup from 0, then linear decay to 0 (transformers'
-- get_linear_schedule_with_warmup), or constant after warmup.
function M.lr_at(s, total, warm, base, kind)
  if warm > 0 and s <= warm then return base * s / warm end
  if kind == "constant" then return base end
  if total <= warm then return base end
  return base * math.max(0, (total - s) / (total - warm))
end

-- The order of examples in an epoch: a seeded shuffle, then (bucketing)
-- windows of 50 batches sorted by anchor length so that a batch pads little,
-- with the batches themselves shuffled again.
function M.epoch_order(data, epoch, seed, batch, bucketing)
  local n = data:size()
  local order = {}
  for i = 1, n do order[i] = i end
  local stream = seed * 1000003 + epoch
  for i = n, 2, -1 do
    local j = 1 + math.floor(C.lacos_random_uniform(stream, i) * i)
    order[i], order[j] = order[j], order[i]
  end
  if not bucketing or n <= batch then return order end
  local window = batch * 50
  for w0 = 1, n, window do
    local w1 = math.min(n, w0 + window - 1)
    local slice = {}
    for i = w0, w1 do slice[#slice + 1] = order[i] end
    table.sort(slice, function(a, b)
      local la, lb = #(data.rows[a][1]), #(data.rows[b][1])
      if la ~= lb then return la < lb end
      return a < b
    end)
    for i = w0, w1 do order[i] = slice[i - w0 + 1] end
  end
  -- shuffle whole batches so lengths do not rise through the epoch
  local nb = math.ceil(n / batch)
  local border = {}
  for i = 1, nb do border[i] = i end
  for i = nb, 2, -1 do
    local j = 1 + math.floor(C.lacos_random_uniform(stream + 7, i) * i)
    border[i], border[j] = border[j], border[i]
  end
  local out = {}
  for _, b in ipairs(border) do
    for i = (b - 1) * batch + 1, math.min(n, b * batch) do out[#out + 1] = order[i] end
  end
  return out
end

-- Takes the next batch from order starting at pos, skipping examples whose
-- texts already appear in the batch (a duplicate would be a false negative);
-- skipped examples are kept for the following batches. Returns the indices
-- and the new position.
function M.next_batch(data, order, pos, batch, no_duplicates, deferred)
  local picked, seen = {}, {}
  local function try(i)
    local a, p, n = data:get(i)
    if no_duplicates and (seen[a] or seen[p] or (n and seen[n])) then return false end
    picked[#picked + 1] = i
    seen[a], seen[p] = true, true
    if n then seen[n] = true end
    return true
  end
  local keep = {}
  for _, i in ipairs(deferred) do
    if #picked < batch and try(i) then else keep[#keep + 1] = i end
  end
  while #picked < batch and pos <= #order do
    local i = order[pos]
    pos = pos + 1
    if not try(i) then keep[#keep + 1] = i end
  end
  return picked, pos, keep
end

local function progress_line(state, total, loss, tps, eta)
  local width = 30
  local frac = total > 0 and state.step / total or 0
  local filled = math.floor(frac * width + 0.5)
  return ("\r[%s%s] %d/%d loss %.4f %6.0f tok/s ETA %s "):format(("#"):rep(filled), ("."):rep(width - filled),
    state.step, total, loss, tps, eta)
end

-- Whole seconds as 1h02m, 3m05s or 12s.
local function fmt_duration(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%dh%02dm"):format(math.floor(s / 3600), math.floor((s % 3600) / 60)) end
  if s >= 60 then return ("%dm%02ds"):format(math.floor(s / 60), s % 60) end
  return ("%ds"):format(s)
end

-- The line a batch log (no terminal) gets every print_every steps.
local function plain_line(step, total, loss, lr, tps, elapsed, eta)
  return ("lacos: step %d/%d loss %.4f lr %.3g %.0f tok/s elapsed %s ETA %s\n"):format(step, total, loss, lr, tps,
    fmt_duration(elapsed), fmt_duration(eta))
end
M.plain_line = plain_line

local function fmt_eta(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s)
  if s >= 3600 then return ("%dh%02dm"):format(math.floor(s / 3600), math.floor((s % 3600) / 60)) end
  return ("%dm%02ds"):format(math.floor(s / 60), s % 60)
end

-- Embeds a list of texts in training mode; returns embeddings and the batch
-- handle. keys: each text's row in the step's global batch, which keys its
-- dropout masks (so a chunk or a rank's share gets the masks of the whole).
local function embed_train(model, texts, opts, stream, keys)
  local ids, mask = model:tokenize(texts, { max_length = opts.max_length, truncation = true })
  local emb, batch = model:forward_train(ids, mask, opts.pooling, stream, keys)
  local tokens = 0
  local m = ffi.cast("int32_t*", mask.t.data)
  for i = 0, mask:numel() - 1 do tokens = tokens + m[i] end
  ids:free(); mask:free()
  return emb, batch, tokens
end

-- One optimisation micro-step over the examples `idx` (the global batch):
-- adds `weight` (1 by default) times its gradient into the parameters'
-- gradients; returns the loss and the tokens embedded here.
--
-- With several ranks (st.dist) each rank embeds its share of the batch's
-- rows (anchors, positives and negatives of those examples), the
-- embeddings of the whole batch are all-gathered, every rank computes the
-- loss of the whole batch and its gradient, and back-propagates only the
-- rows it embedded; the ranks' gradients then add up to the gradient of one
-- process (lacos.dist, Trainer:reduce).
local function micro_step(st, idx, stream, weight)
  local opts, model, data, loss = st.opts, st.model, st.data, st.loss
  local D = st.dist
  weight = weight or 1
  local anchors, positives, negatives, targets = {}, {}, {}, nil
  if data.kind and data.kind ~= "pairs" then targets = {} end
  for k, i in ipairs(idx) do
    local a, p, n, y = data:get(i)
    anchors[k], positives[k] = a, p
    if n then negatives[#negatives + 1] = n end
    if targets then targets[k] = y end
  end
  local B = #idx
  local cols = { anchors, positives }
  if #negatives > 0 then cols[3] = negatives end
  local lo, hi = 1, B
  if D then lo, hi = D:rows(B) end
  -- this rank's texts, column by column, and their rows in the global batch
  local texts, keys = {}, {}
  for c, list in ipairs(cols) do
    for k = lo, hi do texts[#texts + 1] = list[k]; keys[#keys + 1] = (c - 1) * B + k - 1 end
  end
  -- the loss and its gradient for the whole batch; returns the gradient of
  -- this rank's rows (nil when the loss is not finite)
  local function loss_grad(emb)
    local all = D and D:gather(emb, B, #cols) or emb
    local A = all:narrow(1, 1, B):contiguous()
    local Cand = all:narrow(1, B + 1, (#cols - 1) * B):contiguous()
    if D then all:free() end
    local value, dA, dC
    if targets then value, dA, dC = loss:compute(A, Cand, targets, weight)
    else value, dA, dC = loss:compute(A, Cand) end
    A:free(); Cand:free()
    if value ~= value or value == math.huge or value == -math.huge then return value, nil end
    local d = T.cat({ dA, dC }, 1)
    dA:free(); dC:free()
    if D then
      local mine = D:local_rows(d, B, #cols)
      d:free()
      d = mine
    end
    if weight ~= 1 then d:mul_(weight) end
    return value, d
  end
  local total_tokens = 0
  if #texts == 0 then
    -- a global batch smaller than the ranks: nothing here, the collectives all the same
    local value, d = loss_grad(T.empty({ 0, model:config().hidden_size }))
    if d then d:free() end
    return value, 0
  end
  local chunk = opts.mini_batch
  if not chunk or chunk >= #texts then
    local emb, batch, tokens = embed_train(model, texts, opts, stream, keys)
    total_tokens = tokens
    local value, d = loss_grad(emb)
    if not d then
      C.lacos_bloom_batch_free(ffi.gc(batch, nil))
      emb:free()
      return value, total_tokens
    end
    model:backward(batch, d)
    emb:free(); d:free()
    return value, total_tokens
  end
  -- GradCache: embeddings of every chunk without keeping activations ...
  local function slice(list, s0, s1)
    local out = {}
    for k = s0, s1 do out[#out + 1] = list[k] end
    return out
  end
  local parts = {}
  for s0 = 1, #texts, chunk do
    local s1 = math.min(#texts, s0 + chunk - 1)
    local emb, batch, tokens = embed_train(model, slice(texts, s0, s1), opts, stream, slice(keys, s0, s1))
    C.lacos_bloom_batch_free(ffi.gc(batch, nil))
    total_tokens = total_tokens + tokens
    parts[#parts + 1] = emb
  end
  local all = T.cat(parts, 1)
  for _, p in ipairs(parts) do p:free() end
  local value, d = loss_grad(all)
  all:free()
  if not d then return value, total_tokens end
  -- ... then each chunk again with activations (the same dropout masks: the
  -- same stream and keys), back-propagating its slice.
  for s0 = 1, #texts, chunk do
    local s1 = math.min(#texts, s0 + chunk - 1)
    local emb, batch = embed_train(model, slice(texts, s0, s1), opts, stream, slice(keys, s0, s1))
    local dslice = d:narrow(1, s0, s1 - s0 + 1):contiguous()
    model:backward(batch, dslice)
    emb:free(); dslice:free()
  end
  d:free()
  return value, total_tokens
end
M.micro_step = micro_step

local function is_finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- The per-step log travels in checkpoints so that a resumed run's database
-- record holds every step, not only those after the checkpoint (the killed
-- run's own rows may never have been flushed). JSON has no NaN: non-finite
-- values go as strings and come back as numbers.
local function log_value(x)
  if x ~= x then return "NaN" end
  if x == math.huge then return "Infinity" end
  if x == -math.huge then return "-Infinity" end
  return x
end
local function log_number(v)
  if type(v) == "number" then return v end
  if v == "Infinity" then return math.huge elseif v == "-Infinity" then return -math.huge end
  return 0 / 0
end
local function encode_log(log, n)
  local out = { loss = {}, lr = {}, grad_norm = {} }
  for i = 1, n do
    local e = log[i]
    if not e then return nil end   -- a gap (should not happen): record nothing rather than a wrong series
    out.loss[i], out.lr[i], out.grad_norm[i] = log_value(e.loss), log_value(e.lr), log_value(e.grad_norm)
  end
  return out
end
local function decode_log(saved, n)
  if type(saved) ~= "table" or type(saved.loss) ~= "table" or #saved.loss ~= n
     or type(saved.lr) ~= "table" or #saved.lr ~= n or type(saved.grad_norm) ~= "table" or #saved.grad_norm ~= n then
    return nil
  end
  local log = {}
  for i = 1, n do
    log[i] = { step = i, loss = log_number(saved.loss[i]), lr = log_number(saved.lr[i]), grad_norm = log_number(saved.grad_norm[i]) }
  end
  return log
end

-- The memory plan of a run: weights, LoRA parameters and gradients,
-- optimizer state, and the activations of one step (or one GradCache chunk)
-- of `texts` sequences of `max_length` tokens, with and without activation
-- checkpointing. The activation figure is the batch allocation the engine
-- makes (engine/bloom_train.c), so it is an upper bound for shorter batches.
-- Both devices add the int8 products' scratch of the widest linear
-- (quantised rows, int32 products, scaled gradients: about 45 bytes per token
-- and hidden unit as the buffers grow, more on a CPU without VNNI; the
-- engine counts it). A model on "cuda" is planned against the GPU's free
-- memory, with the device's own scratch added too: one linear's transposed
-- codes, 64 MiB of dequantised weight rows, cuBLASLt's 32 MiB workspace and
-- attention's gathered heads and score blocks (at most 256 MiB, or one head's
-- if that is more: kernels/attention.cu).
function M.plan(model, opts)
  local bloom = require "lacos.bloom"
  local cfg = model:config()
  local device = model.device == "cuda" and "cuda" or "cpu"
  local ccfg = ffi.new("lacos_bloom_config")
  E.check(C.lacos_bloom_get_config(model.ptr, ccfg))
  local texts = opts.texts
  local r = model.lora and model.lora.r or 8
  local targets = bloom.target_bits(model.lora and model.lora.targets, cfg.family)
  local lora = C.lacos_lora_param_count(model.ptr) * 4 * 2
  local act_ckpt = C.lacos_bloom_train_activation_bytes(ccfg, texts, opts.max_length, r, targets, 1)
  local act_full = C.lacos_bloom_train_activation_bytes(ccfg, texts, opts.max_length, r, targets, 0)
  local plan = { weights = model:weight_bytes(), lora = lora, optimizer = opts.optimizer_bytes or 0,
                 activations_checkpointed = act_ckpt, activations_full = act_full,
                 checkpointing = opts.checkpointing }
  plan.activations = opts.checkpointing and act_ckpt or act_full
  plan.device = device
  plan.scratch = C.lacos_bloom_train_scratch_bytes(ccfg, texts, opts.max_length,
                                                  C.lacos_bloom_get_fast_backward(model.ptr))
  if device == "cuda" then
    local T = opts.max_length
    local per_head = (7 * T * (cfg.hidden_size / cfg.n_head) + T * T) * 4
    local attention = math.max(per_head, math.min(256 * 2 ^ 20, texts * cfg.n_head * per_head))
    plan.scratch = plan.scratch + 16 * cfg.hidden_size ^ 2 + 96 * 2 ^ 20 + attention
  end
  plan.total = plan.weights + plan.lora + plan.optimizer + plan.activations + plan.scratch
  plan.available = C.lacos_memory_available(device == "cuda" and C.LACOS_CUDA or C.LACOS_CPU)
  -- the training memory the model already holds from earlier steps is the
  -- first the activations reuse (engine/bloom_train.c): it is not needed again
  if plan.available > 0 then plan.available = plan.available + C.lacos_bloom_train_workspace_bytes(model.ptr) end
  return plan
end

function M.format_plan(p)
  local b = util.bytes
  local gpu = p.device == "cuda"
  return ("predicted peak%s %s = weights %s + LoRA %s + optimizer %s + activations %s (%s; %s with, %s without checkpointing)%s; %s available%s")
    :format(gpu and " GPU memory" or "", b(p.total), b(p.weights), b(p.lora), b(p.optimizer), b(p.activations),
            p.checkpointing and "checkpointing on" or "checkpointing off", b(p.activations_checkpointed),
            b(p.activations_full), (gpu and " + GPU scratch " or " + scratch ") .. b(p.scratch),
            p.available > 0 and b(p.available) or "unknown", gpu and " on the GPU" or "")
end

-- How each kind of data is made, for the message when data and loss do not fit.
local MAKE = {
  pairs = 'lacos.pairs.read(path) (anchor TAB positive [TAB negative]) or lacos.data.nli_triplets(...):to_pairs()',
  scored = 'lacos.pairs.read(path, {kind = "scored"}) (sentence1 TAB sentence2 TAB score) or ' ..
           'lacos.data.load("stsb", {split = "train"}):to_pairs("scored")',
  labelled = 'lacos.pairs.read(path, {kind = "labelled"}) (premise TAB hypothesis TAB label) or ' ..
             'lacos.data.nli_pairs("snli-infersent", {split = "dev"})',
}

-- Refuses data that the loss cannot train on, a classifier of the wrong
-- width or with too few labels, and an optimizer that would leave the
-- loss's own parameters untrained. Raises with a message naming the data.
function M.check_fit(model, data, loss, optimizer)
  local P = require "lacos.pairs"
  local want = loss.columns or "pairs"
  local have = data.kind or "pairs"
  local what = loss.describe and loss:describe() or tostring(loss.kind)
  if not P.DESCRIBE[want] then error(("the loss %s consumes '%s' data, which lacos.train does not know"):format(what, tostring(want)), 0) end
  if want ~= have then
    local held = data.describe and data:describe() or P.DESCRIBE[have] or have
    error(("the loss %s trains on %s but the data (%s) holds %s; make it with %s"):format(
      what, P.DESCRIBE[want], tostring(data.source or "data"), held, MAKE[want]), 0)
  end
  if want ~= "pairs" and data:has_negatives() then
    error(("the loss %s takes no hard negatives but the data (%s) has them"):format(what, tostring(data.source or "data")), 0)
  end
  if want ~= "pairs" then
    for i = 1, data:size() do
      local y = data:target(i)
      if type(y) ~= "number" or y ~= y then
        error(("example %d of %s has no %s"):format(i, tostring(data.source or "data"), want == "scored" and "score" or "label"), 0)
      end
      if want == "labelled" and loss.n_labels and y >= loss.n_labels then
        error(("example %d of %s has label %d but the classifier has %d labels (0..%d); make it with labels = %d or more"):format(
          i, tostring(data.source or "data"), y, loss.n_labels, loss.n_labels - 1, y + 1), 0)
      end
    end
  end
  if loss.dim and loss.dim ~= model:config().hidden_size then
    error(("the loss %s is %d wide but the model's embeddings are %d wide; make it with dim = %d"):format(
      what, loss.dim, model:config().hidden_size, model:config().hidden_size), 0)
  end
  if loss.parameters and model.device == "cuda" then
    -- the loss runs on the host, and one optimizer holds parameters of one device
    error(("the loss %s has its own weights, trained on the CPU only; train with a CPU model (lacos train --device cpu)")
      :format(what), 0)
  end
  if loss.parameters and optimizer and type(optimizer.params) == "table" then
    local held = {}
    for _, p in ipairs(optimizer.params) do held[p.param] = true end
    for _, p in ipairs(loss:parameters()) do
      if not held[p.param] then
        error(("the optimizer does not hold the loss's %s, which would never be trained; make it with " ..
               "lacos.optim.adam8bit(lacos.optim.params(model:trainable(), loss:parameters()), ...)"):format(p.name), 0)
      end
    end
  end
end

-- ---------------------------------------------------------------- the fingerprint of a run

local function sha256_text(text)
  local hex = ffi.new("char[65]")
  E.check(C.lacos_sha256_buffer(text, #text, hex))
  return ffi.string(hex)
end

-- What the base model is: its config and, for a checkpoint directory, its
-- config.json, the names and sizes of its weight files and their first and
-- last 64 KiB (two models of one shape differ there; reading a 14 GB file
-- whole at every resume would not pay); for a random model, its name and seed.
local function model_identity(model)
  local parts = { require("lacos.json").encode(model:config()) }
  if model.dir then
    parts[#parts + 1] = "dir"
    local names = util.listdir(model.dir) or {}
    for _, name in ipairs(names) do
      if name == "config.json" or name:match("%.safetensors$") or name == "model.safetensors.index.json" then
        local f = io.open(model.dir .. "/" .. name, "rb")
        if f then
          local size = f:seek("end")
          f:seek("set", 0)
          local head = f:read(65536) or ""
          f:seek("set", math.max(0, size - 65536))
          local tail = f:read(65536) or ""
          f:close()
          parts[#parts + 1] = ("%s %d %s %s"):format(name, size, sha256_text(head), sha256_text(tail))
        end
      end
    end
  else
    parts[#parts + 1] = ("random %s seed %s"):format(tostring(model.name), tostring(model.seed))
  end
  return sha256_text(table.concat(parts, "\n"))
end

-- The starting weights of everything the run trains (the adapter's
-- initialisation: its seed, or an adapter it starts from; the loss's own
-- parameters), as one SHA-256.
local function initial_weights(model, loss)
  local params = model:trainable()
  if loss and loss.parameters then for _, p in ipairs(loss:parameters()) do params[#params + 1] = p end end
  local hexes = {}
  for _, p in ipairs(params) do
    local t = p.param
    if t:device_name() ~= "cpu" then t = t:to("cpu") end
    t = t:contiguous()
    local hex = ffi.new("char[65]")
    E.check(C.lacos_sha256_buffer(t.t.data, C.lacos_tensor_nbytes(t.t), hex))
    hexes[#hexes + 1] = p.name .. " " .. ffi.string(hex)
  end
  return sha256_text(table.concat(hexes, "\n"))
end

-- The order in which a mismatch lists the entries, and what each is when
-- no caller names it (lacos train passes its option names).
M.FINGERPRINT_KEYS = {
  "lacos", "model", "quant", "int8_skip", "threshold", "device", "data", "pairs", "lora_init", "r", "alpha", "dropout", "targets",
  "rslora", "loss", "optimizer", "weight_decay", "lr", "schedule", "warmup", "epochs", "steps", "total_steps",
  "batch_size", "accumulation", "max_grad_norm", "seed", "pooling", "max_length", "length_bucketing",
  "no_duplicates", "fast_backward", "max_nonfinite",
}

-- Everything that changes what a run computes, as a flat table of strings
-- and numbers stored with each checkpoint: a checkpoint is only resumed by
-- a run with the same fingerprint. Memory and speed knobs (mini_batch,
-- checkpointing, threads, log and checkpoint intervals) are left out: they
-- do not change the numbers. opts.fingerprint adds the caller's own entries.
function M.fingerprint(opts, model, data, loss, optimizer, total)
  local lora = model.lora or {}
  local oc = optimizer and optimizer.config and optimizer:config() or {}
  local fp = {
    lacos = require("lacos").version(),
    model = model_identity(model), quant = tostring(model.quant), threshold = model.threshold or 0,
    -- (only with a list: a plain int8 run keeps the fingerprint it always had)
    int8_skip = model.int8_skip and table.concat(model.int8_skip, ",") or nil,
    device = model.device or "cpu",
    data = data:digest(), pairs = data:size(),
    lora_init = initial_weights(model, loss),
    r = lora.r, alpha = lora.alpha, dropout = lora.dropout,
    targets = type(lora.targets) == "table" and table.concat(lora.targets, ",") or tostring(lora.targets),
    rslora = tostring(lora.rslora or false),
    loss = loss.describe and loss:describe() or tostring(loss.kind),
    optimizer = ("%s betas %s/%s eps %s"):format(tostring(oc.kind or optimizer and optimizer.kind),
      tostring(oc.betas and oc.betas[1]), tostring(oc.betas and oc.betas[2]), tostring(oc.eps)),
    weight_decay = oc.weight_decay or 0,
    lr = opts.lr, schedule = opts.schedule, warmup = opts.warmup,
    epochs = opts.steps and "unused (steps given)" or opts.epochs, steps = opts.steps or "from epochs",
    total_steps = total, batch_size = opts.batch_size, accumulation = opts.accumulation,
    max_grad_norm = opts.max_grad_norm, seed = opts.seed, pooling = opts.pooling, max_length = opts.max_length,
    length_bucketing = tostring(opts.length_bucketing), no_duplicates = tostring(opts.no_duplicates),
    fast_backward = tostring(opts.fast_backward), max_nonfinite = opts.max_nonfinite,
  }
  for k, v in pairs(opts.fingerprint or {}) do fp[k] = v end
  return fp
end

-- The entries of two fingerprints that differ, as "NAME THERE there, NOW
-- now" phrases in a stable order; names maps keys to what the user calls
-- them (option names). Empty when they agree.
function M.fingerprint_diff(there, now, names)
  local keys, seen = {}, {}
  for _, k in ipairs(M.FINGERPRINT_KEYS) do keys[#keys + 1] = k; seen[k] = true end
  local extra = {}
  for k in pairs(there) do if not seen[k] then extra[#extra + 1] = k; seen[k] = true end end
  for k in pairs(now) do if not seen[k] then extra[#extra + 1] = k; seen[k] = true end end
  table.sort(extra)
  for _, k in ipairs(extra) do keys[#keys + 1] = k end
  local function show(v)
    if v == nil then return "(none)" end
    if type(v) == "number" then return ("%.10g"):format(v) end
    v = tostring(v)
    if v:match("^%x+$") and #v == 64 then return v:sub(1, 12) .. "…" end   -- a SHA-256
    return v
  end
  local diffs = {}
  for _, k in ipairs(keys) do
    local a, b = there[k], now[k]
    if not (a == b or (type(a) == "number" and type(b) == "number" and ("%.17g"):format(a) == ("%.17g"):format(b))) then
      diffs[#diffs + 1] = ("%s %s there, %s now"):format(names and names[k] or k, show(a), show(b))
    end
  end
  return diffs
end

function M.run(spec)
  local opts = util.options(spec, defaults, "lacos.train")
  local model, data = opts.model, opts.data
  if type(data) ~= "table" or not data.size then error("lacos.train: data must be a pairs dataset (lacos.pairs)", 2) end
  local in_batch = (data.kind or "pairs") == "pairs"
  if data:size() < 2 then
    error(("lacos.train: need at least 2 examples (%s)"):format(in_batch and "in-batch negatives" or "a batch of pairs"), 2)
  end
  if not model.lora then error("lacos.train: the model has no LoRA adapter (model:add_lora{...})", 2) end
  if opts.batch_size < 2 then
    error(("lacos.train: batch_size must be at least 2 (%s)"):format(in_batch and "in-batch negatives" or "a batch of pairs"), 2)
  end
  if opts.accumulation < 1 then error("lacos.train: accumulation must be at least 1", 2) end
  if type(opts.epochs) ~= "number" or not (opts.epochs > 0) or opts.epochs == math.huge then
    error(("lacos.train: epochs must be a number more than 0, got %s"):format(tostring(opts.epochs)), 2)
  end
  if opts.steps ~= nil and (type(opts.steps) ~= "number" or opts.steps < 1 or opts.steps ~= math.floor(opts.steps)) then
    error(("lacos.train: steps must be a whole number of at least 1, got %s"):format(tostring(opts.steps)), 2)
  end
  if opts.mini_batch ~= nil and (type(opts.mini_batch) ~= "number" or opts.mini_batch < 1) then
    error("lacos.train: mini_batch must be a positive number", 2)
  end
  if opts.schedule ~= "linear" and opts.schedule ~= "constant" then
    error("lacos.train: schedule must be 'linear' or 'constant'", 2)
  end
  if type(opts.sync_check) ~= "number" or opts.sync_check < 0 or opts.sync_check ~= math.floor(opts.sync_check) then
    error("lacos.train: sync_check must be a whole number of steps >= 0 (0: never)", 2)
  end
  if opts.comm_timeout ~= nil and (type(opts.comm_timeout) ~= "number" or not (opts.comm_timeout > 0)) then
    error("lacos.train: comm_timeout must be a number of seconds > 0", 2)
  end
  -- the other processes of the job, when a launcher started several
  local dist = require "lacos.dist"
  local D = dist.trainer(opts)
  if D then
    local err = dist.check_world(opts.batch_size, D.size)
    if err then error("lacos.train: " .. err, 2) end
    if not D.root then
      -- the others log nothing but errors; rank 0 records the run
      opts.quiet, opts.progress, opts.run = true, false, nil
    end
  end
  opts.pooling = opts.pooling or model:pooling()
  if require("lacos.bloom").poolings[opts.pooling] == nil then error("lacos.train: unknown pooling " .. tostring(opts.pooling), 2) end
  local loss = opts.loss or require("lacos.loss").mnrl { scale = 20 }
  local optimizer = opts.optimizer
  do
    local ok, err = pcall(M.check_fit, model, data, loss, optimizer)
    if not ok then error("lacos.train: " .. tostring(err), 2) end
  end
  if opts.no_duplicates == nil then opts.no_duplicates = (loss.columns or "pairs") == "pairs" end
  if not optimizer then
    local params = model:trainable()
    if loss.parameters then for _, p in ipairs(loss:parameters()) do params[#params + 1] = p end end
    optimizer = require("lacos.optim").adam8bit(params, { lr = opts.lr })
  end
  -- activation checkpointing: this call's option, else what model:set_checkpointing
  -- chose, else the default for the model's size
  local checkpointing = opts.checkpointing
  if checkpointing == nil then checkpointing = model.checkpointing end
  if checkpointing == nil then checkpointing = M.checkpointing_default(model:config()) end
  E.check(C.lacos_bloom_set_checkpointing(model.ptr, checkpointing and 1 or 0))
  model:set_fast_backward(opts.fast_backward)

  -- the memory plan, checked before the first step
  local plan
  do
    local per_text = data:has_negatives() and 3 or 2
    local share = per_text * opts.batch_size / (D and D.size or 1)   -- this rank's sentences per micro-step
    local texts = opts.mini_batch and math.min(opts.mini_batch, share) or share
    plan = M.plan(model, { texts = texts, max_length = opts.max_length,
                                 optimizer_bytes = optimizer.state_bytes and optimizer:state_bytes() or 0,
                                 checkpointing = C.lacos_bloom_get_checkpointing(model.ptr) ~= 0 })
    if not opts.quiet then io.stderr:write("lacos: " .. M.format_plan(plan) .. "\n") end
    local needed = plan.total - plan.weights   -- the weights are already in memory
    if plan.available > 0 and needed > plan.available then
      error(("lacos.train: this run needs about %s more memory but only %s is available (%s); use checkpointing, " ..
             "a smaller batch_size or max_length, or mini_batch (GradCache)"):format(util.bytes(needed), util.bytes(plan.available),
             M.format_plan(plan)), 2)
    end
  end
  local n = data:size()
  local per_epoch = math.ceil(n / opts.batch_size)
  local total = opts.steps or per_epoch * opts.epochs
  local warm = opts.warmup < 1 and math.floor(total * opts.warmup + 0.5) or opts.warmup
  local st = { opts = opts, model = model, data = data, loss = loss, optimizer = optimizer,
               step = 0, epoch = 1, pos = 1, deferred = {}, nonfinite = 0, skipped = 0,
               losses = {}, tokens = 0, log = {}, dist = D, rank = D and D.rank or 0, world_size = D and D.size or 1 }
  local ckpt = opts.checkpoint_dir and require("lacos.checkpoint") or nil
  local last_loss = 0
  local fingerprint = ckpt and M.fingerprint(opts, model, data, loss, optimizer, total) or nil
  local lock
  if ckpt and (not D or D.root) then
    -- a path that cannot hold checkpoints fails now, not at the first checkpoint
    E.check(C.lacos_checkpoint_dir_prepare(opts.checkpoint_dir))
    -- one training at a time into a checkpoint directory: another would
    -- delete this one's temporaries or resume from its checkpoints (the
    -- root rank holds it for all the ranks of a data-parallel run)
    lock = util.lock_dir(opts.checkpoint_dir)
  end
  local function release() if lock then lock:release(); lock = nil end end
  if ckpt and opts.resume then
    local loaded, state = pcall(ckpt.load_latest, opts.checkpoint_dir, model, optimizer, loss,
                                { fingerprint = fingerprint, names = opts.option_names })
    if not loaded then release(); error(state, 0) end
    if state then
      st.step, st.epoch, st.pos, st.deferred = state.step, state.epoch, state.pos, state.deferred or {}
      -- (the fingerprint covers the data; this guards a state that lies about it)
      local function bad_index(i) return type(i) ~= "number" or i < 1 or i > data:size() or i ~= math.floor(i) end
      local bad = type(st.pos) ~= "number" or type(st.epoch) ~= "number" or type(st.deferred) ~= "table"
      for _, i in ipairs(type(st.deferred) == "table" and st.deferred or {}) do if bad_index(i) then bad = true end end
      if bad then
        release()
        error(("%s: its data position does not fit these %d examples; start over with resume = false (lacos train --no-resume)")
          :format(state.path, data:size()), 0)
      end
      st.nonfinite, st.skipped = state.nonfinite or 0, state.skipped or 0
      st.log = decode_log(state.log, st.step) or {}
      if st.log[st.step] then last_loss = st.log[st.step].loss end
      if opts.run and #st.log == st.step then
        -- the steps before the checkpoint, so this run's record is complete
        for i = 1, st.step do
          local e = st.log[i]
          opts.run:log(i, { loss = e.loss, lr = e.lr, grad_norm = e.grad_norm })
        end
      end
      if not opts.quiet then io.stderr:write(("lacos: resumed from step %d (%s)\n"):format(st.step, state.path)) end
    end
  end
  st.start_step = st.step
  if D then
    -- Every rank must start from the same options, data, model and
    -- checkpoint, with the same parameters: checked before the first step.
    D:check_same(dist.train_fingerprint(opts, model, data, loss, optimizer, st.step), "options, data, model or checkpoint")
    D:sync_check(optimizer, loss, st.step)
  end
  local comm0 = D and D.comm:stats()
  local order = M.epoch_order(data, st.epoch, opts.seed, opts.batch_size, opts.length_bucketing)
  local show = opts.progress
  if show == nil then show = util.isatty(2) and not opts.quiet end
  -- without a terminal (a batch job's log, a pipe): a plain line every print_every steps instead of the bar
  local plain = not show and not opts.quiet and not util.isatty(2)
  local print_every = opts.print_every or opts.log_every
  local t_start, tok_window, t_window = clock(), 0, clock()
  local print_tokens, print_t = 0, clock()
  local status, reason = "done", nil
  local pending_log = {}

  local saved_step = st.start_step > 0 and st.start_step or nil
  local function save_checkpoint()
    -- once per step: the end of a run whose last step was just checkpointed
    -- would otherwise replace that checkpoint with an identical one
    if not ckpt or saved_step == st.step or (D and not D.root) then return end
    ckpt.save(opts.checkpoint_dir, st.step, model, optimizer, loss, {
      step = st.step, epoch = st.epoch, pos = st.pos, deferred = st.deferred, seed = opts.seed,
      nonfinite = st.nonfinite, skipped = st.skipped, total = total, log = encode_log(st.log, st.step),
      fingerprint = fingerprint,
    }, opts.run)
    saved_step = st.step
  end

  -- Ctrl-C / SIGTERM: the loop polls the interrupt flag at each step
  -- boundary, so the signal's Lua hook must not raise in the middle of a
  -- step (an update applied but not counted would make the checkpoint lie);
  -- it is made quiet for the loop and restored after. The engine itself may
  -- still stop inside a step (the tokenizer checks the flag): that step is
  -- then undone (data position restored, gradients dropped) before the
  -- checkpoint, so a resumed run continues exactly.
  local function interrupted_error(e)
    return type(e) == "string" and (e == "interrupted" or e:match(": interrupted$") ~= nil or e:match("^interrupted") ~= nil)
  end
  local function train_loop()
  while st.step < total do
    if D then
      -- the ranks agreed on it when they summed the last step's gradients
      if st.stop_signal then status, reason = "interrupted", "signal" break end
    elseif C.lacos_interrupt_pending() ~= 0 then status, reason = "interrupted", "signal" break end
    local before = { epoch = st.epoch, pos = st.pos, deferred = st.deferred, order = order }
    if st.pos > #order and #st.deferred == 0 then
      st.epoch = st.epoch + 1
      st.pos = 1
      order = M.epoch_order(data, st.epoch, opts.seed, opts.batch_size, opts.length_bucketing)
    end
    local step = st.step + 1
    local lr = M.lr_at(step, total, warm, opts.lr, opts.schedule)
    local step_loss, step_tokens, ok = 0, 0, true
    local stepped, step_err = pcall(function()
    for micro = 1, opts.accumulation do
      local idx
      idx, st.pos, st.deferred = M.next_batch(data, order, st.pos, opts.batch_size, opts.no_duplicates, st.deferred)
      if #idx < 2 then
        -- the epoch's tail is too small for in-batch negatives: start the next epoch
        st.epoch = st.epoch + 1
        st.pos, st.deferred = 1, {}
        order = M.epoch_order(data, st.epoch, opts.seed, opts.batch_size, opts.length_bucketing)
        idx, st.pos, st.deferred = M.next_batch(data, order, st.pos, opts.batch_size, opts.no_duplicates, st.deferred)
      end
      local stream = step * 16 + micro   -- dropout masks: a function of the step
      local value, tokens = micro_step(st, idx, stream, 1 / opts.accumulation)
      step_tokens = step_tokens + tokens
      if not is_finite(value) then ok = false; step_loss = value; break end
      step_loss = step_loss + value / opts.accumulation
    end
    end)
    if not stepped then
      if not interrupted_error(step_err) then error(step_err, 0) end
      st.epoch, st.pos, st.deferred, order = before.epoch, before.pos, before.deferred, before.order
      optimizer:zero_grad()
      if loss.dW then loss.dW:zero(); loss.db:zero() end
      status, reason = "interrupted", "signal"
      break
    end
    if D then
      -- one message: every rank's gradients, whether a signal came, tokens
      local sums = D:reduce(optimizer, loss, { C.lacos_interrupt_held() ~= 0 and 1 or 0, step_tokens })
      if sums[1] > 0 then st.stop_signal = true end
      step_tokens = sums[2]
    end
    st.tokens = st.tokens + step_tokens
    tok_window = tok_window + step_tokens
    print_tokens = print_tokens + step_tokens
    local gnorm = 0 / 0
    if ok then
      gnorm = optimizer:clip_grad_norm(opts.max_grad_norm and opts.max_grad_norm > 0 and opts.max_grad_norm or math.huge)
      if not is_finite(gnorm) then ok = false end
    end
    if ok then
      optimizer:step(lr)
      st.nonfinite = 0
    else
      st.nonfinite = st.nonfinite + 1
      st.skipped = st.skipped + 1
      if not opts.quiet then
        io.stderr:write(("\nlacos: step %d: non-finite %s, update skipped (%d in a row)\n"):format(
          step, is_finite(step_loss) and "gradient norm" or "loss", st.nonfinite))
      end
    end
    optimizer:zero_grad()
    if loss.dW then loss.dW:zero(); loss.db:zero() end
    st.step = step
    last_loss = step_loss
    if D and opts.sync_check > 0 and step % opts.sync_check == 0 then D:sync_check(optimizer, loss, step) end
    st.losses[#st.losses + 1] = step_loss
    pending_log[#pending_log + 1] = { step = step, loss = step_loss, lr = lr, grad_norm = gnorm }
    st.log[step] = pending_log[#pending_log]
    local now_t = clock()
    local tps = tok_window / math.max(now_t - t_window, 1e-9)
    if opts.run and (step % opts.log_every == 0 or step == total) then
      for _, e in ipairs(pending_log) do
        opts.run:log(e.step, { loss = e.loss, lr = e.lr, grad_norm = e.grad_norm })
      end
      opts.run:log(step, { tokens_per_s = tps })
      pending_log = {}
      t_window, tok_window = now_t, 0
    elseif step % opts.log_every == 0 then
      t_window, tok_window = now_t, 0
    end
    if show then
      local elapsed = now_t - t_start
      local eta = elapsed / math.max(step - (st.start_step or 0), 1) * (total - step)
      io.stderr:write(progress_line(st, total, step_loss, tps, fmt_eta(eta)))
    elseif plain and (step % print_every == 0 or step == total) then
      local elapsed = now_t - t_start
      local eta = elapsed / math.max(step - (st.start_step or 0), 1) * (total - step)
      io.stderr:write(plain_line(step, total, step_loss, lr, print_tokens / math.max(now_t - print_t, 1e-9), elapsed, eta))
      print_tokens, print_t = 0, now_t
    end
    if opts.on_step then opts.on_step(st) end
    if opts.eval and opts.eval_every > 0 and step % opts.eval_every == 0 and (not D or D.root) then opts.eval(st) end
    if st.nonfinite >= opts.max_nonfinite then
      status, reason = "failed", ("nonfinite: %d consecutive steps had a non-finite loss or gradient"):format(st.nonfinite)
      break
    end
    if ckpt and opts.checkpoint_every > 0 and step % opts.checkpoint_every == 0 then save_checkpoint() end
  end
  end
  local prev_hook = rawget(_G, "LACOS_ON_INTERRUPT")
  _G.LACOS_ON_INTERRUPT = function() end
  -- with several ranks a signal waits for the step boundary the ranks agree on
  if D then C.lacos_interrupt_hold(1) end
  local looped, loop_err = pcall(train_loop)
  if D then C.lacos_interrupt_hold(0) end
  _G.LACOS_ON_INTERRUPT = prev_hook
  if not looped then
    -- an interrupt between steps (in an eval or on_step callback) leaves a
    -- consistent state: checkpoint it like one seen at the step boundary
    if not interrupted_error(loop_err) then release(); error(loop_err, 0) end
    status, reason = "interrupted", "signal"
  end
  if show then io.stderr:write("\n") end
  if opts.run and #pending_log > 0 then
    for _, e in ipairs(pending_log) do opts.run:log(e.step, { loss = e.loss, lr = e.lr, grad_norm = e.grad_norm }) end
  end
  if status == "interrupted" or (ckpt and status == "done") then
    local saved, err = pcall(save_checkpoint)
    if not saved then release(); error(err, 0) end
  end
  release()
  if status == "interrupted" then C.lacos_interrupt_clear() end
  local comm
  if D then
    local s = D.comm:stats()
    comm = { calls = s.calls - comm0.calls, bytes = s.bytes - comm0.bytes, seconds = s.seconds - comm0.seconds,
             backend = D.comm:backend(), layout = D.comm:layout() }
  end
  return { status = status, reason = reason, steps = st.step, total = total, loss = last_loss, losses = st.losses,
           skipped = st.skipped, tokens = st.tokens, seconds = clock() - t_start, optimizer = optimizer, plan = plan,
           world_size = D and D.size or 1, rank = D and D.rank or 0, comm = comm }
end

setmetatable(M, { __call = function(_, spec) return M.run(spec) end })
return M
