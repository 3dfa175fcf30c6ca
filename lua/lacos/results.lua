-- lacos.results: the results database (engine/results_*.c) from Lua.
--
--   local R = require "lacos.results"         (also lacos.results)
--   local db = R.open()                        -- $LACOS_DB or results/lacos.db
--   local exp = db:experiment{ name = "scale", axes = { lr = { 1e-4, 2e-4 } } }   -- records the running script
--   local run, started = db:start_run{ experiment = exp, config = cfg, seed = 1, reuse = true }
--   if started then
--     run:params{ lr = 2e-4, model = "bloom-560m" }
--     run:log(step, { loss = 0.31, lr = 1e-4 })
--     run:sts{ dataset = "stsb", language = "en", split = "test", n = 1379, spearman = 0.81, pearson = 0.80, pooling = "mean" }
--     run:artifact{ path = "out/adapter", kind = "adapter" }
--     run:finish("done")
--   end
--   for _, r in ipairs(db:runs{ status = "done", limit = 10 }) do print(r.id, r.sts_spearman) end
--   db:query("SELECT key, value_num FROM params WHERE run_id = ?", run.id)
--
-- Rows come back as Lua tables keyed by column name (NULL columns absent);
-- a metric stored as NaN (value NULL, is_finite 0) reads back as NaN.
local E = require "lacos.engine"
local json = require "lacos.json"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}
M.SCHEMA_VERSION = tonumber(C.LACOS_DB_SCHEMA_VERSION)

local STATUS = { queued = C.LACOS_RUN_QUEUED, running = C.LACOS_RUN_RUNNING, done = C.LACOS_RUN_DONE,
                 failed = C.LACOS_RUN_FAILED, interrupted = C.LACOS_RUN_INTERRUPTED, dead = C.LACOS_RUN_DEAD }
M.statuses = { "queued", "running", "done", "failed", "interrupted", "dead" }
local status_names = {}
for name, v in pairs(STATUS) do status_names[v] = name end

-- Validates an options table: spec maps key -> "string"|"number"|"boolean"|
-- "table"|"any" (a "|" list allowed), required keys end with "!".
local function options(opts, spec, where)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error(("%s: expected a table of options, got %s"):format(where, type(opts)), 3) end
  local valid = {}
  for k in pairs(spec) do valid[#valid + 1] = k end
  table.sort(valid)
  for k, v in pairs(opts) do
    local t = spec[k]
    if not t then
      error(("%s: unknown option '%s' (valid: %s)"):format(where, tostring(k), table.concat(valid, ", ")), 3)
    end
    local types = t:gsub("!$", "")
    if types ~= "any" then
      local ok = false
      for ty in types:gmatch("[^|]+") do if type(v) == ty then ok = true end end
      if not ok then error(("%s: option '%s' must be a %s, got %s"):format(where, k, types:gsub("|", " or "), type(v)), 3) end
    end
  end
  for k, t in pairs(spec) do
    if t:sub(-1) == "!" and opts[k] == nil then error(("%s: option '%s' is required"):format(where, k), 3) end
  end
  return opts
end
M._options = options

local function whole(v, what, where)
  if v ~= nil and (type(v) ~= "number" or v ~= math.floor(v) or v ~= v or math.abs(v) >= 2 ^ 53) then
    error(("%s: %s must be a whole number, got %s"):format(where, what, tostring(v)), 3)
  end
  return v
end

-- The canonical JSON text and SHA-256 of a value (a table, or JSON text).
-- Keys sorted, numbers in one stable form: {b=1, a=1e-4} and {a=0.0001, b=1.0}
-- give the same text and hash.
local canon_out = ffi.new("char*[1]")
local sha_buf = ffi.new("char[65]")
function M.canonical(value)
  local text = value
  if type(value) == "table" then
    text = next(value) == nil and "{}" or json.encode(value)
  elseif type(value) ~= "string" then
    text = json.encode(value)
  end
  check(C.lacos_db_canonical_json(canon_out, sha_buf, text))
  local s = ffi.string(canon_out[0])
  C.lacos_db_text_free(canon_out[0])
  return s, ffi.string(sha_buf)
end

function M.default_path()
  local e = os.getenv("LACOS_DB")
  if e and e ~= "" then return e end
  return "results/lacos.db"
end

-- ---------------------------------------------------------------- queries

local Db, Run = {}, {}
Db.__index, Run.__index = Db, Run

local function db_handle(self)
  if not self._h then error(("%s: the database is closed"):format(self.path), 3) end
  return self._h
end

local function bind_all(q, where, ...)
  local n = select("#", ...)
  local want = C.lacos_db_query_params(q)
  if n ~= want then
    error(("%s: the query has %d parameter%s, %d value%s given"):format(where, want, want == 1 and "" or "s", n, n == 1 and "" or "s"), 3)
  end
  for i = 1, n do
    local v = select(i, ...)
    if v == nil or v == json.null then check(C.lacos_db_query_bind_null(q, i))
    elseif type(v) == "number" then check(C.lacos_db_query_bind_num(q, i, v))
    elseif type(v) == "boolean" then check(C.lacos_db_query_bind_num(q, i, v and 1 or 0))
    else check(C.lacos_db_query_bind_text(q, i, tostring(v))) end
  end
end

local has_row = ffi.new("int[1]")
local qout = ffi.new("lacos_db_query*[1]")

-- Prepares a read-only query; returns an iterator over rows and the column names.
local function prepare(self, sql, ...)
  local h = db_handle(self)
  if type(sql) ~= "string" then error("db:query: the query must be a string", 3) end
  check(C.lacos_db_query_prepare(qout, h, sql))
  local q = ffi.gc(qout[0], C.lacos_db_query_free)
  bind_all(q, self.path, ...)
  local ncol = C.lacos_db_query_columns(q)
  local cols = {}
  for i = 0, ncol - 1 do cols[i + 1] = ffi.string(C.lacos_db_query_column_name(q, i)) end
  local done = false
  local function next_row()
    if done then return nil end
    check(C.lacos_db_query_step(has_row, q))
    if has_row[0] == 0 then
      done = true
      ffi.gc(q, nil)
      C.lacos_db_query_free(q)
      return nil
    end
    local row = {}
    for i = 0, ncol - 1 do
      local t = C.lacos_db_query_column_type(q, i)
      if t == C.LACOS_DB_INTEGER or t == C.LACOS_DB_REAL then row[cols[i + 1]] = C.lacos_db_query_column_num(q, i)
      elseif t == C.LACOS_DB_TEXT or t == C.LACOS_DB_BLOB then
        row[cols[i + 1]] = ffi.string(C.lacos_db_query_column_text(q, i), C.lacos_db_query_column_bytes(q, i))
      end
    end
    return row
  end
  return next_row, cols
end

-- All rows of a read-only query as a list of tables, and the column names.
-- Parameters bind to ? in order (nil or json.null for NULL).
function Db:query(sql, ...)
  local it, cols = prepare(self, sql, ...)
  local rows = {}
  for row in it do rows[#rows + 1] = row end
  return rows, cols
end

-- An iterator over the rows (for big results): for row in db:each(sql, ...) do ... end
function Db:each(sql, ...)
  local it = prepare(self, sql, ...)
  return it
end

local function first(self, sql, ...)
  local it = prepare(self, sql, ...)
  local row = it()
  if row then while it() do end end
  return row
end

-- ---------------------------------------------------------------- open and close

function M.open(path, opts)
  if type(path) == "table" and opts == nil then opts, path = path, nil end
  if path ~= nil and type(path) ~= "string" then error("lacos.results.open: path must be a string", 2) end
  opts = options(opts, { readonly = "boolean", create = "boolean", timeout = "number", journal = "string" }, "lacos.results.open")
  if opts.journal ~= nil and opts.journal ~= "wal" and opts.journal ~= "rollback" then
    error(("lacos.results.open: journal must be 'wal' or 'rollback', got '%s'"):format(opts.journal), 2)
  end
  local flags = 0
  if opts.readonly then flags = flags + tonumber(C.LACOS_DB_READONLY) end
  -- a shard of a Slurm task, on a network filesystem: no WAL (lacos.merge)
  if opts.journal == "rollback" then flags = flags + tonumber(C.LACOS_DB_ROLLBACK) end
  if opts.create == false then flags = flags + tonumber(C.LACOS_DB_NOCREATE) end
  local o = ffi.new("lacos_db*[1]")
  check(C.lacos_db_open(o, path, flags))
  local h = ffi.gc(o[0], C.lacos_db_close)
  if opts.timeout then check(C.lacos_db_set_timeout(h, opts.timeout)) end
  return setmetatable({ _h = h, path = ffi.string(C.lacos_db_path(h)), readonly = opts.readonly or false,
                        schema_version = C.lacos_db_schema_version(h) }, Db)
end

-- Folds the finished runs of a shard (another results database, written by
-- one Slurm task) into the database at db_path; see lacos_db_merge_shard.
-- Returns { merged, present, unfinished, schema_version, experiment }, or
-- raises with the reason the shard was refused (the database unchanged).
function M.merge_shard(db_path, shard_path, experiment)
  local r = ffi.new("lacos_merge_report")
  check(C.lacos_db_merge_shard(r, db_path, shard_path, experiment))
  return { merged = r.merged, present = r.present, unfinished = r.unfinished, schema_version = r.schema_version,
           experiment = ffi.string(r.experiment) }
end

-- The runs of a shard as shard_runs' JSON describes them (a list of
-- tables), read without writing to the file.
function M.shard_runs(shard_path)
  local out = ffi.new("char *[1]")
  check(C.lacos_db_shard_runs(out, shard_path))
  local text = ffi.string(out[0])
  C.lacos_text_free(out[0])
  return json.decode(text, shard_path)
end

function Db:close()
  if self._h then
    local h = self._h
    self._h = nil
    ffi.gc(h, nil)
    C.lacos_db_close(h)
  end
end

function Db:__tostring() return ("lacos.results db %s%s"):format(self.path, self._h and "" or " (closed)") end

function Db:set_timeout(seconds) check(C.lacos_db_set_timeout(db_handle(self), seconds)) end

-- Running runs whose heartbeat is older than `seconds` (default 60) become dead.
function Db:mark_dead(seconds)
  local n = ffi.new("int[1]")
  check(C.lacos_db_mark_dead(n, db_handle(self), seconds or 60))
  return n[0]
end

-- ---------------------------------------------------------------- experiments

local function running_script()
  local a = rawget(_G, "arg")
  local p = type(a) == "table" and a[0]
  if type(p) == "string" and p:match("%.lua$") then
    local f = io.open(p, "rb")
    if f then f:close() return p end
  end
end

-- Get-or-create an experiment (a sweep) by name. script: the Lua file to
-- record (default: the running script when there is one; false for none);
-- axes: the declared sweep axes (a table, stored as canonical JSON).
function Db:experiment(opts)
  if type(opts) == "string" then opts = { name = opts } end
  opts = options(opts, { name = "string", script = "string|boolean", axes = "table|string" }, "db:experiment")
  local script = opts.script
  if script == nil or script == true then script = running_script() elseif script == false then script = nil end
  local name = opts.name or (script and script:match("([^/]+)%.lua$"))
  if not name then error("db:experiment: option 'name' is required (no running script to name it after)", 2) end
  local axes = opts.axes and M.canonical(opts.axes) or nil
  local id = ffi.new("double[1]")
  check(C.lacos_db_experiment(id, db_handle(self), name, script, axes))
  return { id = id[0], name = name, script = script }
end

local function experiment_id(self, e, where)
  if e == nil then return 0 end
  if type(e) == "table" then
    if type(e.id) ~= "number" then error(where .. ": option 'experiment' must be an experiment, a name or an id", 3) end
    return e.id
  end
  if type(e) == "number" then return whole(e, "experiment", where) end
  if type(e) == "string" then return self:experiment{ name = e, script = false }.id end
  error(where .. ": option 'experiment' must be an experiment, a name or an id", 3)
end

-- ---------------------------------------------------------------- runs

local RUN_OPTS = {
  experiment = "table|string|number", name = "string", config = "table|string", seed = "number",
  reuse = "boolean", parent = "number", workdir = "string", heartbeat = "number",
  flush_rows = "number", flush_seconds = "number",
}

local function run_options(self, opts, where)
  local o = ffi.new("lacos_run_options")
  C.lacos_run_options_init(o)
  o.experiment_id = experiment_id(self, opts.experiment, where)
  local keep = {}
  if opts.name then o.name = opts.name; keep[#keep + 1] = opts.name end
  if opts.config ~= nil then
    local text = type(opts.config) == "table" and (next(opts.config) == nil and "{}" or json.encode(opts.config)) or opts.config
    keep[#keep + 1] = text
    o.config_json = text
  end
  if opts.seed ~= nil then o.seed = whole(opts.seed, "seed", where); o.has_seed = 1 end
  if opts.reuse then o.reuse = 1 end
  if opts.parent then o.parent_run_id = whole(opts.parent, "parent", where) end
  if opts.workdir then o.workdir = opts.workdir; keep[#keep + 1] = opts.workdir end
  if opts.heartbeat then o.heartbeat_seconds = opts.heartbeat end
  if opts.flush_rows then o.flush_rows = whole(opts.flush_rows, "flush_rows", where) end
  if opts.flush_seconds then o.flush_seconds = opts.flush_seconds end
  return o, keep
end

-- Starts a run. With reuse = true the (experiment, config, seed) point is
-- claimed atomically: if a run for it is done, or running elsewhere, that
-- run comes back with started = false (skip the point); otherwise this call
-- starts one (started = true). heartbeat: seconds between heartbeats
-- (default 10, negative for none); flush_rows/flush_seconds: metric batching.
function Db:start_run(opts)
  opts = options(opts, RUN_OPTS, "db:start_run")
  local o, keep = run_options(self, opts, "db:start_run")
  local out, started = ffi.new("lacos_run*[1]"), ffi.new("int[1]")
  check(C.lacos_run_start(out, started, db_handle(self), o))
  local _ = keep
  local h = ffi.gc(out[0], C.lacos_run_free)
  local run = setmetatable({ _h = h, _db = self, id = C.lacos_run_id(h), uuid = ffi.string(C.lacos_run_uuid(h)),
                             started = started[0] == 1 }, Run)
  run.status = status_names[C.lacos_run_get_status(h)]
  return run, run.started
end

-- Adds a queued run for a sweep point unless an equivalent one is queued,
-- running or done; returns its id and whether it was created.
function Db:enqueue(opts)
  local spec = {}
  for k, v in pairs(RUN_OPTS) do spec[k] = v end
  spec.reuse, spec.heartbeat, spec.flush_rows, spec.flush_seconds = nil, nil, nil, nil
  opts = options(opts, spec, "db:enqueue")
  local o, keep = run_options(self, opts, "db:enqueue")
  local id, created = ffi.new("double[1]"), ffi.new("int[1]")
  check(C.lacos_db_enqueue(id, created, db_handle(self), o))
  local _ = keep
  return id[0], created[0] == 1
end

local function run_handle(self)
  if not self._h then error(("run %d: the handle was freed"):format(self.id), 3) end
  return self._h
end

function Run:__tostring() return ("lacos.results run %d (%s)"):format(self.id, self.status or "?") end

local function encode_param(v, key)
  if type(v) == "number" then return v end
  if type(v) == "string" then return v end
  if type(v) == "boolean" then return v and "true" or "false" end
  if type(v) == "table" then return (M.canonical(v)) end
  error(("run:params: param '%s' must be a number, string, boolean or table, got %s"):format(tostring(key), type(v)), 4)
end

function Run:param(key, value)
  local h = run_handle(self)
  if type(key) ~= "string" then error("run:param: the key must be a string", 2) end
  local v = encode_param(value, key)
  if type(v) == "number" then check(C.lacos_run_param_num(h, key, v)) else check(C.lacos_run_param_text(h, key, v)) end
end

-- Typed params: numbers stay numbers (so 1e-4 < 0.0037 in SQL), strings
-- and booleans text, tables canonical JSON. A param cannot change value.
function Run:params(t)
  if type(t) ~= "table" then error("run:params: expected a table of params", 2) end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("run:params: param keys must be strings, got " .. type(k), 2) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for _, k in ipairs(keys) do self:param(k, t[k]) end
end

function Run:metric(step, key, value)
  if type(value) ~= "number" then error(("run:log: metric '%s' must be a number, got %s"):format(tostring(key), type(value)), 2) end
  check(C.lacos_run_metric(run_handle(self), step, key, value))
end

-- Logs metrics for a step: run:log(step, {loss = 0.3, lr = 1e-4}). NaN and
-- ±inf are stored as such (is_finite = 0).
function Run:log(step, t)
  if type(step) ~= "number" then error("run:log: the step must be a number", 2) end
  if type(t) ~= "table" then error("run:log: expected a table of metrics", 2) end
  local h = run_handle(self)
  for k, v in pairs(t) do
    if type(k) ~= "string" then error("run:log: metric names must be strings", 2) end
    if type(v) ~= "number" then error(("run:log: metric '%s' must be a number, got %s"):format(k, type(v)), 2) end
    check(C.lacos_run_metric(h, step, k, v))
  end
end

function Run:flush() check(C.lacos_run_flush(run_handle(self))) end
function Run:heartbeat() check(C.lacos_run_heartbeat(run_handle(self))) end

function Run:tag(key, value)
  if type(key) ~= "string" then error("run:tag: the key must be a string", 2) end
  check(C.lacos_run_tag(run_handle(self), key, value ~= nil and tostring(value) or nil))
end
function Run:tags(t)
  if type(t) ~= "table" then error("run:tags: expected a table", 2) end
  for k, v in pairs(t) do self:tag(k, v) end
end

local STS_OPTS = {
  dataset = "string!", language = "string", split = "string!", step = "number", n = "number",
  spearman = "number", pearson = "number", similarity = "string", pooling = "string",
  text_variant = "string", aggregation = "string", model = "string", adapter = "string",
  quantisation = "string", dtype = "string", batch_size = "number", dataset_sha256 = "string",
}

-- One STS score and everything that moves it (correlations raw, -1..1).
function Run:sts(opts)
  opts = options(opts, STS_OPTS, "run:sts")
  local r = ffi.new("lacos_sts_record")
  C.lacos_sts_record_init(r)
  local keep = {}
  for k, v in pairs(opts) do
    if type(v) == "string" then keep[#keep + 1] = v end
    if k == "n" then r.n_pairs = v else r[k] = v end
  end
  check(C.lacos_run_sts(run_handle(self), r))
  local _ = keep
end

local TIMING_OPTS = {
  phase = "string!", device = "string", step = "number", threads = "number", repetitions = "number",
  n_items = "number", n_tokens = "number", avg_ns = "number", stddev_ns = "number", peak_bytes = "number",
  optimizer_state_bytes = "number",
}

function Run:timing(opts)
  opts = options(opts, TIMING_OPTS, "run:timing")
  local t = ffi.new("lacos_timing_record")
  C.lacos_timing_record_init(t)
  local keep = {}
  for k, v in pairs(opts) do
    if type(v) == "string" then keep[#keep + 1] = v end
    t[k] = v
  end
  check(C.lacos_run_timing(run_handle(self), t))
  local _ = keep
end

-- Records a file or directory already in place (its absolute path);
-- returns its sha256 and size.
function Run:artifact(opts)
  opts = options(opts, { path = "string!", kind = "string!", step = "number" }, "run:artifact")
  local sha, bytes = ffi.new("char[65]"), ffi.new("double[1]")
  -- recorded absolutely: the row must name the file wherever it is read from
  local path = require("lacos.util").abspath(opts.path)
  check(C.lacos_run_artifact(sha, bytes, run_handle(self), opts.kind, path, opts.step or -1))
  return ffi.string(sha), bytes[0]
end

-- run:finish("done" | "failed" | "interrupted" [, message [, reason]])
function Run:finish(status, message, reason)
  status = status or "done"
  local code = STATUS[status]
  if not code or (status ~= "done" and status ~= "failed" and status ~= "interrupted") then
    error(("run:finish: status must be done, failed or interrupted, got %s"):format(tostring(status)), 2)
  end
  if message ~= nil and type(message) ~= "string" then message = tostring(message) end
  check(C.lacos_run_finish(run_handle(self), code, reason, message))
  self.status = status
end

-- Frees the handle now (an unfinished run ends as failed, reason abandoned).
function Run:free()
  if self._h then
    local h = self._h
    self._h = nil
    ffi.gc(h, nil)
    C.lacos_run_free(h)
  end
end

-- ---------------------------------------------------------------- reading runs

local function nan_if_nonfinite(value, is_finite)
  if value == nil and is_finite == 0 then return 0 / 0 end
  return value
end

-- One row per run, newest first: run_summary's columns and the headline
-- score of run_scores (score, score_of, en_avg, n_en, multi_avg, n_multi;
-- Spearman x100). opts: status, experiment (name or id), limit (default
-- 100; 0 = all).
function Db:runs(opts)
  opts = options(opts, { status = "string", experiment = "string|number", limit = "number" }, "db:runs")
  if opts.status and not STATUS[opts.status] then
    error(("db:runs: unknown status '%s' (valid: %s)"):format(opts.status, table.concat(M.statuses, ", ")), 2)
  end
  local where, args = {}, {}
  if opts.status then where[#where + 1] = "status = ?"; args[#args + 1] = opts.status end
  if type(opts.experiment) == "number" then where[#where + 1] = "experiment_id = ?"; args[#args + 1] = opts.experiment
  elseif opts.experiment then where[#where + 1] = "experiment = ?"; args[#args + 1] = opts.experiment end
  local limit = opts.limit or 100
  whole(limit, "limit", "db:runs")
  local sql = "SELECT * FROM run_list" .. (#where > 0 and (" WHERE " .. table.concat(where, " AND ")) or "") ..
              " ORDER BY id DESC" .. (limit > 0 and (" LIMIT " .. ("%d"):format(limit)) or "")
  local rows, cols = self:query(sql, unpack(args))
  return rows, cols
end

-- Resolves a run reference: an id (number or digits), a uuid, a unique
-- uuid prefix (at least 4 characters), or a run name (the newest with it).
-- Digits name an id first; when no run has that id they may still begin a
-- uuid (one in 40 eight-character prefixes is all digits) or be a name.
function Db:resolve(ref)
  if type(ref) == "number" or (type(ref) == "string" and ref:match("^%d+$")) then
    local id = tonumber(ref)
    local row = first(self, "SELECT id FROM runs WHERE id = ?", id)
    if row or type(ref) == "number" then return row and row.id or nil end
  end
  if type(ref) ~= "string" or ref == "" then error("db:run: expected a run id, uuid or name", 3) end
  local row = first(self, "SELECT id FROM runs WHERE uuid = ?", ref)
  if row then return row.id end
  if #ref >= 4 and ref:match("^[0-9a-f-]+$") then
    local rows = self:query("SELECT id FROM runs WHERE uuid LIKE ? || '%' LIMIT 2", ref)
    if #rows > 1 then error(("%s: run '%s' is ambiguous: several uuids start with it"):format(self.path, ref), 3) end
    if #rows == 1 then return rows[1].id end
  end
  row = first(self, "SELECT id FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1", ref)
  return row and row.id or nil
end

-- Everything about one run: the runs row (status as run_summary sees it,
-- config decoded), params, metric summaries (last value, min, max, rows,
-- non-finite count), STS results, timings, artifacts, tags. nil if unknown.
function Db:run(ref)
  local id = self:resolve(ref)
  if not id then return nil end
  local r = first(self, [[SELECT r.*, e.name AS experiment, s.status AS effective_status, s.duration_s
    FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id JOIN run_summary s ON s.id = r.id WHERE r.id = ?]], id)
  r.stored_status, r.status, r.effective_status = r.status, r.effective_status, nil
  r.config = r.config_json and json.decode(r.config_json, "runs.config_json") or {}
  if r.git_dirty ~= nil then r.git_dirty = r.git_dirty == 1 end
  r.params, r.param_keys = {}, {}
  for p in self:each("SELECT key, value_num, value_text FROM params WHERE run_id = ? ORDER BY key", id) do
    r.params[p.key] = p.value_num or p.value_text
    r.param_keys[#r.param_keys + 1] = p.key
  end
  r.metrics, r.metric_keys = {}, {}
  local summaries = self:query([[SELECT key, count(*) AS rows, sum(is_finite = 0) AS nonfinite,
      min(CASE WHEN is_finite THEN value END) AS min, max(CASE WHEN is_finite THEN value END) AS max
    FROM metrics WHERE run_id = ? GROUP BY key ORDER BY key]], id)
  for _, m in ipairs(summaries) do
    local last = first(self, "SELECT step, value, is_finite FROM metrics WHERE run_id = ? AND key = ? ORDER BY step DESC, rowid DESC LIMIT 1", id, m.key)
    m.step = last.step
    m.last = nan_if_nonfinite(last.value, last.is_finite)
    r.metrics[m.key] = m
    r.metric_keys[#r.metric_keys + 1] = m.key
  end
  r.sts = self:query("SELECT * FROM sts_results WHERE run_id = ? ORDER BY id", id)
  r.timings = self:query("SELECT * FROM timings WHERE run_id = ? ORDER BY id", id)
  r.artifacts = self:query("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", id)
  r.tags = {}
  for t in self:each("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key", id) do r.tags[t.key] = t.value or json.null end
  return r
end

-- The time series of one metric: a list of {step, value, wall_time} (NaN for NaN).
function Db:metrics(ref, key)
  local id = self:resolve(ref)
  if not id then error(("%s: no run '%s'"):format(self.path, tostring(ref)), 2) end
  if type(key) ~= "string" then error("db:metrics: the metric name must be a string", 2) end
  local out = {}
  for m in self:each("SELECT step, value, is_finite, wall_time FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, rowid", id, key) do
    out[#out + 1] = { step = m.step, value = nan_if_nonfinite(m.value, m.is_finite), wall_time = m.wall_time }
  end
  return out
end

-- The newest run (run_summary row) for an (experiment, config, seed) point, or nil.
function Db:find_run(opts)
  opts = options(opts, { experiment = "table|string|number", config = "table|string", seed = "number", status = "string" }, "db:find_run")
  local _, sha = M.canonical(opts.config or {})
  local where, args = { "r.config_sha256 = ?" }, { sha }
  local e = opts.experiment
  if type(e) == "table" then e = e.id end
  if type(e) == "number" then where[#where + 1] = "r.experiment_id = ?"; args[#args + 1] = e
  elseif type(e) == "string" then where[#where + 1] = "r.experiment_id = (SELECT id FROM experiments WHERE name = ?)"; args[#args + 1] = e
  else where[#where + 1] = "r.experiment_id IS NULL" end
  if opts.seed ~= nil then where[#where + 1] = "r.seed = ?"; args[#args + 1] = whole(opts.seed, "seed", "db:find_run")
  else where[#where + 1] = "r.seed IS NULL" end
  if opts.status then where[#where + 1] = "s.status = ?"; args[#args + 1] = opts.status end
  return first(self, "SELECT s.* FROM runs r JOIN run_summary s ON s.id = r.id WHERE " .. table.concat(where, " AND ") ..
                     " ORDER BY r.id DESC LIMIT 1", unpack(args))
end

return M
