-- lacos train: one training run without writing Lua — LoRA adapters on a
-- frozen (int8) BLOOM or BERT-family encoder with a Siamese objective: MNRL on (anchor, positive[,
-- hard negative]) pairs, CoSENT on scored pairs, or SBERT's softmax
-- classifier on NLI-labelled pairs.
local M = {}
local POOLINGS = require("lacos.bloom").pooling_list

M.spec = {
  name = "train",
  usage = "lacos train --model DIR --pairs FILE.tsv --out ADAPTER_DIR [options]",
  summary = "Train LoRA adapters on sentence pairs (MNRL with in-batch negatives, CoSENT, or the NLI softmax classifier).",
  description = "FILE is UTF-8, one example per line, in the layout the loss trains on:\n" ..
                "  --loss mnrl, mnrl-symmetric  anchor TAB positive [TAB hard-negative]\n" ..
                "  --loss cosent                sentence1 TAB sentence2 TAB score (any real number, higher = more similar)\n" ..
                "  --loss softmax               premise TAB hypothesis TAB label (entailment, neutral or contradiction)\n" ..
                "--format reads another layout instead: stsb (STS-B's sts-train.csv, score in field 5, sentences in\n" ..
                "6 and 7), sick, csv, allnli, jsonl (SNLI/MultiNLI), generic (s1 TAB s2 TAB score), nli (s1 TAB s2 TAB\n" ..
                "label), triplets, simcse. --targets names PEFT's modules: BLOOM query_key_value (the default), dense,\n" ..
                "dense_h_to_4h, dense_4h_to_h, or attn, mlp, all; BERT query, key, value (query,value the default),\n" ..
                "dense (all three dense linears), attention.output.dense, intermediate.dense, output.dense, or qkv, attn,\n" ..
                "mlp, all. --labels int takes whole-number labels 0..N-1 (with --num-labels N). The\n" ..
                "softmax classifier's weights are trained with the adapter and kept in the checkpoints, not in\n" ..
                "ADAPTER_DIR (as sentence-transformers drops them). Every option has a default,\n" ..
                "printed when the run starts. The adapter is saved in PEFT's format in ADAPTER_DIR (use it with\n" ..
                "lacos embed --adapter, lacos sts --adapter, or peft.PeftModel.from_pretrained). Checkpoints go to\n" ..
                "ADAPTER_DIR/checkpoints; running the same command again resumes from the newest one. A checkpoint\n" ..
                "made with other options (or data, or another lacos) is refused, naming the options that differ; an\n" ..
                "adapter already in ADAPTER_DIR is never overwritten by another run: to train it further (more\n" ..
                "epochs, say), start a new run from it with --init-adapter into another ADAPTER_DIR. One training at\n" ..
                "a time uses an ADAPTER_DIR (a lock naming the process and host; one left by a dead process is\n" ..
                "taken over). The first Ctrl-C finishes the current step, checkpoints and exits with status 130; a\n" ..
                "second exits at once.\n" ..
                "Under mpirun or srun --mpi=pmix (several processes, one per GPU) --batch-size is the global batch:\n" ..
                "each rank embeds its share, the loss takes every rank's sentences as negatives, gradients are\n" ..
                "summed, and rank 0 alone writes the database, checkpoints and adapter (README: \"More than one GPU\n" ..
                "or machine\"). The batch size must be a multiple of the number of ranks.",
  options = {
    { "--model", "DIR", "checkpoint directory (BLOOM, BERT, or a sentence-transformers directory)", required = true },
    { "--pairs", "FILE", "training pairs (TSV; the layout --loss needs, or --format)", required = true },
    { "--format", "NAME", "FILE's layout, when not the one --loss reads by default",
      choices = { "tsv", "stsb", "sick", "csv", "allnli", "jsonl", "generic", "nli", "pairs", "triplets", "simcse" } },
    { "--header", nil, "FILE's first line is a header (skipped)" },
    { "--labels", "KIND", "how labels are written (softmax)", default = "nli", choices = { "nli", "int", "binary" } },
    { "--out", "DIR", "where the adapter is saved", required = true },
    { "--quant", "KIND", "base weights in memory", default = "int8", choices = { "f32", "int8" } },
    require("lacos.bloom").int8_skip_option(),
    { "--threshold", "X", "LLM.int8 outlier threshold", type = "number", default = 0, min = 0 },
    { "--device", "NAME", "where the model trains (cuda: weights, activations, LoRA and optimizer state on the GPU)",
      default = "cpu", choices = { "cpu", "cuda" } },
    { "--r", "N", "LoRA rank", type = "integer", default = 8, min = 1 },
    { "--alpha", "X", "LoRA alpha (scaling alpha/r)", type = "number", default = 16, min = 0 },
    { "--dropout", "P", "LoRA dropout", type = "number", default = 0.05, min = 0, max = 0.99 },
    { "--targets", "LIST", "adapted linears, comma-separated (names above; default: PEFT's for the family)" },
    { "--loss", "NAME", "objective", default = "mnrl", choices = { "mnrl", "mnrl-symmetric", "cosent", "softmax" } },
    { "--scale", "X", "similarity scale (1/temperature; mnrl and cosent)", type = "number", default = 20, min = 0 },
    { "--num-labels", "N", "classes of the softmax classifier", type = "integer", default = 3, min = 2 },
    { "--optimizer", "NAME", "optimizer", default = "adam8bit", choices = { "adam8bit", "adamw" } },
    { "--lr", "X", "peak learning rate", type = "number", default = 2e-4, min = 0 },
    { "--weight-decay", "X", "decoupled weight decay", type = "number", default = 0, min = 0 },
    { "--batch-size", "N", "pairs per step (mnrl: in-batch negatives come from these)", type = "integer", default = 16, min = 2 },
    { "--mini-batch", "N", "GradCache chunk: sentences embedded at once (memory knob; same result)", type = "integer", min = 1 },
    { "--accumulation", "N", "batches whose mean gradient makes one update (adds no negatives)", type = "integer", default = 1, min = 1 },
    { "--epochs", "N", "passes over the pairs", type = "number", default = 1, min = 0 },
    { "--steps", "N", "stop after N updates (overrides --epochs)", type = "integer", min = 1 },
    { "--limit", "N", "use only the first N pairs", type = "integer", min = 2 },
    { "--warmup", "X", "warmup: a fraction of the steps (< 1) or a number of steps", type = "number", default = 0.1, min = 0 },
    { "--max-grad-norm", "X", "gradient clipping (0 = off)", type = "number", default = 1.0, min = 0 },
    { "--pooling", "MODE", "pooling (default: the model's: a sentence-transformers directory's, else weightedmean)",
      choices = POOLINGS },
    { "--max-length", "N", "truncate sentences to N tokens", type = "integer", default = 128, min = 1 },
    { "--seed", "N", "seed for data order, LoRA init and dropout", type = "integer", default = 42 },
    { "--checkpoint-every", "N", "checkpoint every N steps (0 = only at the end and on interrupt)", type = "integer", default = 100, min = 0 },
    { "--no-resume", nil, "start from scratch even if checkpoints exist (they are replaced; a finished adapter in ADAPTER_DIR is not)" },
    { "--init-adapter", "DIR", "start from this adapter's weights (a new run: to train a finished adapter further, into a new --out)" },
    { "--checkpointing", "MODE", "recompute activations in the backward pass (auto: on for hidden size >= 1536)", default = "auto",
      choices = { "auto", "on", "off" } },
    { "--exact-backward", nil, "f32 products for input gradients through int8 weights (slower)" },
    { "--log-every", "N", "log to the results database every N steps", type = "integer", default = 10, min = 1 },
    { "--db", "FILE", "results database (default $LACOS_DB or results/lacos.db)" },
    { "--no-db", nil, "do not record the run" },
    { "--threads", "N", "worker threads", type = "integer", min = 1 },
    { "--sync-check", "N", "several ranks: compare the ranks' parameters by hash every N steps (0 = at the start only)",
      type = "integer", default = 100, min = 0 },
    { "--comm-timeout", "S", "several ranks: seconds without a sign of life before a rank counts as dead",
      type = "number", default = 60, min = 0.1 },
  },
  examples = {
    "lacos train --model models/bloom-560m --pairs nli-pairs.tsv --out runs/bloom-560m-lora",
    "lacos train --model models/bloom-7b1 --pairs nli.tsv --out runs/7b1 --batch-size 64 --mini-batch 8",
    "lacos train --model models/bloom-560m --loss cosent --pairs sts-train.csv --format stsb --out runs/cosent",
    "lacos train --model models/bloom-560m --loss softmax --pairs nli-labelled.tsv --out runs/nli-softmax",
    "lacos train --model models/all-MiniLM-L6-v2 --pairs nli.tsv --targets query,key,value --quant f32 --out runs/minilm",
    "mpirun -np 4 lacos train --model models/bloom-7b1 --pairs nli.tsv --out runs/7b1 --device cuda --batch-size 256 --mini-batch 16",
  },
}

-- What lacos.train's fingerprint entries are called on this command line,
-- for the message that refuses a checkpoint made with other options.
M.OPTION_NAMES = {
  lacos = "the lacos version", model = "--model (its weights)", quant = "--quant", int8_skip = "--int8-skip", threshold = "--threshold",
  device = "--device", data = "--pairs (the pairs read: --pairs, --format, --header, --labels, --limit)",
  pairs = "the number of pairs (--pairs, --limit)", lora_init = "the adapter's starting weights (--seed, --init-adapter)",
  r = "--r", alpha = "--alpha", dropout = "--dropout", targets = "--targets", rslora = "rsLoRA",
  loss = "--loss/--scale/--num-labels", optimizer = "--optimizer", weight_decay = "--weight-decay", lr = "--lr",
  schedule = "the schedule", warmup = "--warmup", epochs = "--epochs", steps = "--steps",
  total_steps = "the number of steps (--epochs, --steps, --batch-size, --pairs)", batch_size = "--batch-size",
  accumulation = "--accumulation", max_grad_norm = "--max-grad-norm", seed = "--seed", pooling = "--pooling",
  max_length = "--max-length", length_bucketing = "length bucketing", no_duplicates = "duplicate filtering",
  fast_backward = "--exact-backward", max_nonfinite = "the non-finite step limit",
}

local function split_list(s)
  local out = {}
  for item in s:gmatch("[^,%s]+") do out[#out + 1] = item end
  return out
end

-- Column names a header line of a pairs file is made of.
local HEADER_NAMES = {}
for w in ([[anchor positive negative hard_negative hard_neg neg pos sentence sentence1 sentence2 sentence3 sentence_1
  sentence_2 sentence_3 sentence_a sentence_b premise hypothesis label gold_label score similarity text text1 text2 text_a
  text_b query document question answer s1 s2 s3 sent0 sent1 sent2]]):gmatch("%S+") do HEADER_NAMES[w] = true end

-- The first non-blank line of a TAB-separated file when it reads as a
-- header (every field a short name, one of them a usual column name):
-- its fields and line number; nil otherwise.
local function header_line(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = 0
  for line in require("lacos.util").bounded_lines(f, 65536) do
    n = n + 1
    if not line or n > 100 then break end
    line = line:gsub("\r$", "")
    if n == 1 then line = line:gsub("^\239\187\191", "") end
    if line:match("%S") then
      f:close()
      local fields, known, names = {}, false, true
      for field in (line .. "\t"):gmatch("([^\t]*)\t") do
        fields[#fields + 1] = field
        if not field:match("^%a[%w_ %-]*$") or #field > 32 then names = false end
        if HEADER_NAMES[field:lower():gsub("[ %-]", "_")] then known = true end
      end
      if names and known and #fields >= 2 then return fields, n end
      return nil
    end
  end
  f:close()
  return nil
end

function M.run(opts)
  local lacos = require "lacos"
  local util = require "lacos.util"
  -- a run of no steps is a mistake, not "nothing to do"
  if opts.epochs <= 0 then require("lacos.args").usage_error("train", "--epochs must be more than 0, got %s", tostring(opts.epochs)) end
  if opts.init_adapter and opts.init_adapter == opts.out then
    require("lacos.args").usage_error("train", "--init-adapter and --out name the same directory: the new run goes into another --out")
  end
  local adapter_file = opts.out .. "/adapter_model.safetensors"
  if opts.threads then lacos.threads(opts.threads) end
  -- Several processes (a launcher started this one): the usage errors every
  -- rank finds alike come before anything starts; then the ranks must have
  -- been given the same options.
  local dist, args = require "lacos.dist", require "lacos.args"
  local env = dist.env()
  local comm
  if env.launched then
    -- every rank settles its usage errors in one collective, so that all
    -- stop together (a rank leaving first makes mpirun kill the others
    -- mid-sentence)
    comm = dist.open { timeout = opts.comm_timeout }
    local err = dist.check_world(opts.batch_size, comm:size())
    if not err and opts.device == "cuda" and comm:size() > 1 then
      dist.bind_device(function(msg) err = msg end)
    end
    if comm:size() > 1 then err = comm:first_error(err) end
    if err then args.usage_error("train", "%s", err) end
    if comm:size() == 1 then comm = nil end
  end
  if comm then
    local given = {}
    -- (a host's thread count is its own business: it changes no number)
    for k, v in pairs(opts) do if k ~= "threads" then given["--" .. k:gsub("_", "-")] = v end end
    comm:check_same(given, "command-line options")
  end
  local root = not comm or comm:rank() == 0
  local kind = (opts.loss == "cosent" and "scored") or (opts.loss == "softmax" and "labelled") or "pairs"
  local format = opts.format ~= "tsv" and opts.format or nil
  -- A header line in a plain TAB-separated file would train as an example
  -- (or fail on its score): a scored file's is skipped as lacos sts --file
  -- does (its score is not a number), any other is refused unless --header
  -- says so.
  local plain = { generic = true, nli = true, pairs = true, triplets = true }
  if not opts.header and (not format or plain[format]) then
    local names, line = header_line(opts.pairs)
    if names then
      local quoted = table.concat(names, ", ")
      if kind == "scored" and not tonumber(names[3] or "") then
        io.stderr:write(("lacos train: %s:%d is a header line (%s): skipped\n"):format(opts.pairs, line, quoted))
        opts.header = true
      else
        require("lacos.args").usage_error("train", "%s:%d looks like a header line (%s), not an example: pass --header to skip it",
          opts.pairs, line, quoted)
      end
    end
  end
  local read_ok, data = pcall(lacos.pairs.read, opts.pairs, { kind = kind, format = format, header = opts.header or nil,
                                                                labels = kind == "labelled" and opts.labels or nil })
  if not read_ok then
    -- a malformed line may be a file in another loss's layout: say which one this loss reads
    local layout = ({ scored = "sentence1 TAB sentence2 TAB score", labelled = "premise TAB hypothesis TAB label" })[kind]
    if layout and not format and tostring(data):match("fields") then
      data = ("%s (--loss %s reads '%s' lines; --format for other layouts)"):format(tostring(data), opts.loss, layout)
    end
    error(data, 0)
  end
  if opts.limit then data = data:take(opts.limit) end
  if data:size() < 2 then
    -- said here with the file's name (lacos.train would report its own line)
    error(("%s: %d example%s; training needs at least 2 (%s)")
      :format(opts.pairs, data:size(), data:size() == 1 and "" or "s",
              kind == "pairs" and "the other examples of a batch are the negatives" or "a batch of pairs"), 0)
  end
  local m = lacos.bloom.load(opts.model, { quant = opts.quant, threshold = opts.threshold, device = opts.device,
                                           int8_skip = lacos.bloom.skip_arg(opts.int8_skip) })
  if not m.tokenizer then error(opts.model .. ": no tokenizer.json in the model directory", 0) end
  local cfg = m:config()
  -- the family's defaults, settled before anything records the options
  opts.pooling = opts.pooling or m:pooling()
  opts.targets = opts.targets or table.concat(lacos.bloom.default_targets[cfg.family], ",")
  local start_from
  if opts.init_adapter then
    -- the adapter's weights, into an adapter made with this command's options
    m:load_lora(opts.init_adapter)
    start_from = {}
    for _, p in ipairs(m:trainable()) do start_from[p.name] = p.param:clone() end
    m:remove_lora()
  end
  m:add_lora { r = opts.r, alpha = opts.alpha, dropout = opts.dropout, targets = split_list(opts.targets), seed = opts.seed }
  if start_from then
    local n = 0
    for _, p in ipairs(m:trainable()) do
      local w = start_from[p.name]
      if not w then
        error(("%s: the adapter has no %s (it adapts other layers than --targets %s)"):format(opts.init_adapter, p.name, opts.targets), 0)
      end
      if table.concat(w:size(), "x") ~= table.concat(p.param:size(), "x") then
        error(("%s: %s has shape %s, --r %d needs %s (the adapter's rank differs)"):format(opts.init_adapter, p.name,
          table.concat(w:size(), "x"), opts.r, table.concat(p.param:size(), "x")), 0)
      end
      p.param:copy(w)
      n = n + 1
    end
    local have = 0
    for _ in pairs(start_from) do have = have + 1 end
    if have ~= n then
      error(("%s: the adapter adapts more layers than --targets %s"):format(opts.init_adapter, opts.targets), 0)
    end
  end
  m.meta.pooling = opts.pooling
  local ckpt_mode = opts.checkpointing
  if ckpt_mode == "auto" then ckpt_mode = lacos.train.checkpointing_default(cfg) and "on" or "off" end
  local loss
  if opts.loss == "cosent" then loss = lacos.loss.cosent { scale = opts.scale }
  elseif opts.loss == "softmax" then loss = lacos.loss.softmax { dim = cfg.hidden_size, labels = opts.num_labels, seed = opts.seed }
  else loss = lacos.loss.mnrl { scale = opts.scale, symmetric = opts.loss == "mnrl-symmetric" } end
  -- data that the loss cannot use (labels past --num-labels, say) is refused now, naming the file
  do
    local ok, err = pcall(lacos.train.check_fit, m, data, loss, nil)
    if not ok then
      err = tostring(err):gsub("make it with labels = (%d+) or more", "use --num-labels %1 or more")
      error(("%s: %s"):format(opts.pairs, err), 0)
    end
  end
  -- the classifier's weight and bias (softmax) train with the adapter
  local params = lacos.optim.params(m:trainable(), loss.parameters and loss:parameters() or {})
  local optimizer = opts.optimizer == "adamw"
    and lacos.optim.adamw(params, { lr = opts.lr, weight_decay = opts.weight_decay })
    or lacos.optim.adam8bit(params, { lr = opts.lr, weight_decay = opts.weight_decay })
  local settings = {
    model = opts.model, pairs = opts.pairs, n_pairs = data:size(), out = opts.out, quant = opts.quant,
    int8_skip = m.int8_skip and table.concat(m.int8_skip, ",") or nil,
    -- (only when they say something: a plain MNRL run keeps the settings it always had)
    format = opts.format, header = opts.header or nil, data_kind = kind ~= "pairs" and kind or nil,
    num_labels = kind == "labelled" and opts.num_labels or nil, labels = kind == "labelled" and opts.labels or nil,
    threshold = opts.threshold, r = opts.r, alpha = opts.alpha, dropout = opts.dropout, targets = opts.targets,
    loss = opts.loss, scale = opts.scale, optimizer = opts.optimizer, lr = opts.lr, weight_decay = opts.weight_decay,
    batch_size = opts.batch_size, mini_batch = opts.mini_batch or "none", accumulation = opts.accumulation,
    epochs = opts.epochs, steps = opts.steps or "from epochs", warmup = opts.warmup, max_grad_norm = opts.max_grad_norm,
    pooling = opts.pooling, max_length = opts.max_length, seed = opts.seed, checkpointing = ckpt_mode,
    backward = opts.exact_backward and "exact" or "int8 products", checkpoint_every = opts.checkpoint_every,
    device = opts.device, init_adapter = opts.init_adapter,
    -- the job: how many processes, where, and how they talk
    world_size = comm and comm:size() or 1, rank_layout = comm and comm:layout() or "1 host × 1 rank",
  }
  if comm and opts.device == "cuda" then comm:prepare_device() end   -- NCCL, or host staging: the backend says which
  settings.backend = comm and comm:backend() or "self"
  if comm then settings.sync_check = opts.sync_check; settings.comm_timeout = opts.comm_timeout end
  local keys = {}
  for k in pairs(settings) do keys[#keys + 1] = k end
  table.sort(keys)
  if root then
    if comm then
      io.stderr:write(("lacos train: %d ranks (%s), backend %s\n"):format(comm:size(), settings.rank_layout, settings.backend))
    else
      io.stderr:write("lacos train:\n")
    end
    for _, k in ipairs(keys) do io.stderr:write(("  %-16s %s\n"):format(k, tostring(settings[k]))) end
    io.stderr:write(("  LoRA parameters  %d; optimizer state %s\n"):format(m:lora_params(), require("lacos.util").bytes(optimizer:state_bytes())))
  end
  -- One training at a time into --out (its checkpoint directory holds the
  -- lock; rank 0 holds it for a data-parallel job): taken before anything is
  -- written or recorded, and released (with the directories made for it
  -- when they stayed empty: no partial output on an error) whatever happens.
  local made_out = root and not util.is_dir(opts.out)
  local made_ckpt = root and not util.is_dir(opts.out .. "/checkpoints")
  local lock = root and util.lock_dir(opts.out .. "/checkpoints") or nil
  local done, code = pcall(function()
    -- An adapter already here is the output of an earlier run (and maybe an
    -- artifact in a results database): a run with other options must not
    -- overwrite it. The same run's own checkpoints are there when it is a
    -- resume of this very training (the fingerprint decides that).
    if root and util.exists(adapter_file) then
      local has_ckpt = false
      for _, name in ipairs(util.listdir(opts.out .. "/checkpoints") or {}) do
        if name:match("^ckpt%-%d+$") then has_ckpt = true end
      end
      if opts.no_resume or not has_ckpt then
        error(("%s already holds a trained adapter (%s)%s; another run never overwrites it: train into another --out, " ..
               "or start a new run from it with --init-adapter %s --out NEW_DIR")
              :format(opts.out, adapter_file, opts.no_resume and " and --no-resume would replace it" or
                      " and no checkpoint of the run that made it", opts.out), 0)
      end
    end
    local db, run
    local already_done = false
    if not opts.no_db and root then
      db = lacos.results.open(opts.db)
      -- The same command again is the same (config, seed) point, claimed
      -- atomically: a rerun after a kill marks the killed run dead at once, two
      -- processes never train into one --out together, and rerunning a finished
      -- training (one killed between its end and its exit, say) records no
      -- second done run. --no-resume always starts a new run.
      -- git is asked about the lacos tree that runs (not the working directory)
      local run_spec = { name = "train " .. opts.out, config = settings, seed = opts.seed, reuse = not opts.no_resume,
                         workdir = lacos.engine.home }
      local started
      local claimed, e = pcall(function()
        run, started = db:start_run(run_spec)
        if not started and run.status == "running" then
          error(("%s: run %d is already training with these options into %s (its process is alive); wait for it " ..
                 "or choose another --out"):format(db.path, run.id, opts.out), 0)
        end
      end)
      if not claimed then db:close(); error(e, 0) end
      if not started then
        if util.exists(adapter_file) then
          io.stderr:write(("lacos train: nothing to do: already done as run %d of %s; the adapter is in %s\n")
            :format(run.id, db.path, opts.out))
          db:close()
          already_done = true
        else
          run_spec.reuse = false   -- done, but its adapter is gone: train (resume) again as a new run
          run = db:start_run(run_spec)
        end
      end
    end
    -- rank 0 alone read the database: the others learn what it decided
    if comm then already_done = comm:broadcast_string(already_done and "done" or "train", 0) == "done" end
    if already_done then return 0 end
    if run then
      -- what the training read, and where everything was, absolutely
      run:params { pairs_sha256 = lacos.data.sha256_file(opts.pairs), pairs_path = util.abspath(opts.pairs),
                   model_path = util.abspath(opts.model), out_path = util.abspath(opts.out) }
    end
    -- (checkpoints written before an error stay: the same command resumes them)
    local ok, result = pcall(lacos.train, {
      model = m, data = data, loss = loss, optimizer = optimizer, lr = opts.lr, batch_size = opts.batch_size,
      mini_batch = opts.mini_batch, accumulation = opts.accumulation, epochs = opts.epochs, steps = opts.steps,
      warmup = opts.warmup, max_grad_norm = opts.max_grad_norm, seed = opts.seed, pooling = opts.pooling,
      max_length = opts.max_length, checkpoint_dir = opts.out .. "/checkpoints", checkpoint_every = opts.checkpoint_every,
      resume = not opts.no_resume, checkpointing = ckpt_mode == "on", fast_backward = not opts.exact_backward,
      log_every = opts.log_every, run = run, sync_check = opts.sync_check, comm_timeout = opts.comm_timeout,
      option_names = M.OPTION_NAMES,
    })
    if not ok then
      local interrupted = type(result) == "string" and result:match("interrupted") ~= nil
      if run then
        if interrupted then pcall(run.finish, run, "interrupted", "interrupted by a signal", "signal")
        else pcall(run.finish, run, "failed", tostring(result), "error") end
      end
      error(result, 0)
    end
    -- (an adapter already saved by this very training, killed before it
    -- exited, stays as it is: nothing was trained since; but a kill between
    -- the engine's adapter files and lacos.json, written after them, saves again)
    local resaved = not (#result.losses == 0 and util.exists(adapter_file) and util.exists(opts.out .. "/lacos.json"))
    if result.status == "done" and root and resaved then
      local saved, e = pcall(m.save_lora, m, opts.out, { trained = { steps = result.steps, pairs = data:size(), loss = result.loss,
                                                                     run = run and run.uuid or nil },
                                                         init_adapter = opts.init_adapter })
      if not saved then
        if run then pcall(run.finish, run, "failed", tostring(e), "error") end
        error(e, 0)
      end
    end
    if result.status == "done" and run then run:artifact { path = adapter_file, kind = "adapter" } end
    local interrupted = result.status == "interrupted"
    local comm_line
    if result.comm and #result.losses > 0 then
      -- what the job's communication cost, per step and as a share of the time
      local per_step = result.comm.bytes / #result.losses
      local share = result.comm.seconds / math.max(result.seconds, 1e-9)
      comm_line = ("lacos train: communication: %s per step over %s, %.1f%% of the time in collectives\n"):format(
        util.bytes(per_step), result.comm.backend, 100 * share)
      if run then run:log(result.steps, { comm_bytes_per_step = per_step, comm_share = share }) end
    end
    if not root then
      if db then db:close() end
      if result.status == "interrupted" then return 130 end
      return result.status == "done" and 0 or 1
    end
    if comm_line then io.stderr:write(comm_line) end
    if run then
      run:finish(result.status, interrupted and "interrupted by a signal" or result.reason,
                 interrupted and "signal" or (result.reason and result.reason:match("^(%w+):")) or nil)
    end
    if db then db:close() end
    if result.status == "done" and #result.losses == 0 then
      io.stderr:write(("lacos train: nothing to do: the checkpoints already reach step %d of %d; adapter in %s\n"):format(
        result.steps, result.total, opts.out))
      return 0
    end
    local tail
    if result.status == "done" then tail = ", adapter in " .. opts.out
    elseif interrupted then tail = ("; checkpoint at step %d: the same command resumes it"):format(result.steps)
    else tail = result.reason and (": " .. result.reason) or "" end
    io.stderr:write(("lacos train: %s after %d of %d steps (last loss %.4f, %.0f tokens/s)%s\n"):format(
      result.status, result.steps, result.total, result.loss, result.tokens / math.max(result.seconds, 1e-9), tail))
    if result.status == "interrupted" then return 130 end
    return result.status == "done" and 0 or 1
  end)
  if lock then lock:release() end
  if made_ckpt then os.remove(opts.out .. "/checkpoints") end   -- only removes empty ones
  if made_out then os.remove(opts.out) end
  if not done then error(code, 0) end
  return code
end

return M
