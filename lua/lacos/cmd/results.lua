-- lacos results: list, show, compare and query runs in the results database.
--
-- Subcommands live in the `sub` table below, each { usage, options (the
-- option keys it accepts), run = function(db, opts, args, out) }, so later
-- ones (scale, plot) are one more entry. Output goes through one printer
-- that writes an aligned table, CSV (--csv) or JSON (--json).
local json = require "lacos.json"
local util = require "lacos.util"
local args_mod = require "lacos.args"

local M = {}

-- ---------------------------------------------------------------- values and printers

local function is_nonfinite(v) return type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) end

-- Text for tables and CSV: integers without fraction, other numbers in the
-- shortest form that reads back (CSV) or 6 significant digits (tables).
local function num_text(v, exact)
  if v ~= v then return "NaN" end
  if v == math.huge then return "Infinity" end
  if v == -math.huge then return "-Infinity" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  if not exact then return ("%.6g"):format(v) end
  for prec = 15, 17 do
    local s = ("%." .. prec .. "g"):format(v)
    if tonumber(s) == v then return s end
  end
  return ("%.17g"):format(v)
end

local function cell_text(v, exact)
  if v == nil or v == json.null then return "" end
  if type(v) == "number" then return num_text(v, exact) end
  if type(v) == "boolean" then return v and "true" or "false" end
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

-- JSON cannot hold NaN or infinities: they become the strings "NaN",
-- "Infinity", "-Infinity" (never null, which would hide them).
local function json_value(v)
  if v == nil then return json.null end
  if is_nonfinite(v) then return num_text(v) end
  if type(v) == "table" and v ~= json.null then
    local t = {}
    for k, x in pairs(v) do t[k] = json_value(x) end
    return t
  end
  return v
end

local function csv_field(s)
  if s:find('[",\r\n]') or s:match("^%s") or s:match("%s$") then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- A result set: columns (names), rows (lists of values in column order).
local function print_table(out, cols, rows, tty, drop_empty)
  if drop_empty and #rows > 0 then
    -- Columns empty in every row only add noise in a terminal.
    local keep = {}
    for j = 1, #cols do
      for _, r in ipairs(rows) do if r[j] ~= nil and r[j] ~= json.null and r[j] ~= "" then keep[#keep + 1] = j break end end
    end
    local c2, r2 = {}, {}
    for k, j in ipairs(keep) do c2[k] = cols[j] end
    for i, r in ipairs(rows) do r2[i] = {}; for k, j in ipairs(keep) do r2[i][k] = r[j] end end
    cols, rows = c2, r2
  end
  local widths, numeric = {}, {}
  local text = {}
  for j, c in ipairs(cols) do widths[j] = #c; numeric[j] = true end
  for i, r in ipairs(rows) do
    text[i] = {}
    for j = 1, #cols do
      local v = r[j]
      -- names come from files and databases: their control characters (an
      -- ANSI escape in a run name) are shown escaped, never sent to the terminal
      local s = util.printable((cell_text(v, false):gsub("\t", " ")))
      if tty and #s > 60 then s = s:sub(1, 57) .. "..." end
      text[i][j] = s
      -- numbers, and numbers formatted for people (25.00, 1.5 s, 3.2 MiB), align right
      if v ~= nil and v ~= json.null and type(v) ~= "number" and not (type(v) == "string" and v:match("^%-?%d[%d.]* ?%a*$")) then
        numeric[j] = false
      end
      if #s > widths[j] then widths[j] = #s end
    end
  end
  local function line(cells)
    local parts = {}
    for j = 1, #cols do
      local s = cells[j]
      local pad = (" "):rep(widths[j] - #s)
      parts[j] = numeric[j] and (pad .. s) or (j < #cols and (s .. pad) or s)
    end
    out:write((table.concat(parts, "  "):gsub("%s+$", "")), "\n")
  end
  line(cols)
  local dashes = {}
  for j = 1, #cols do dashes[j] = ("-"):rep(widths[j]) end
  out:write(table.concat(dashes, "  "), "\n")
  for i = 1, #rows do line(text[i]) end
  if #rows == 0 then out:write("(no rows)\n") end
end

local function print_csv(out, cols, rows)
  local head = {}
  for j, c in ipairs(cols) do head[j] = csv_field(c) end
  out:write(table.concat(head, ","), "\n")
  for _, r in ipairs(rows) do
    local f = {}
    for j = 1, #cols do f[j] = csv_field(cell_text(r[j], true)) end
    out:write(table.concat(f, ","), "\n")
  end
end

local function print_json(out, value)
  out:write(json.encode(json_value(value), { indent = 2 }), "\n")
end

-- Rows as objects keyed by column name (for --json).
local function as_objects(cols, rows)
  local list = {}
  for i, r in ipairs(rows) do
    local o = {}
    for j, c in ipairs(cols) do
      local v = r[j]
      if v == nil then v = json.null end
      o[c] = v
    end
    list[i] = o
  end
  return list
end

local function emit(out, opts, cols, rows, drop_empty)
  if opts.json then print_json(out, as_objects(cols, rows))
  elseif opts.csv then print_csv(out, cols, rows)
  else print_table(out, cols, rows, util.isatty(1), drop_empty) end
end

-- Row tables (keyed by column) to lists in column order.
local function to_lists(cols, rows)
  local lists = {}
  for i, r in ipairs(rows) do
    local l = {}
    for j, c in ipairs(cols) do l[j] = r[c] end
    lists[i] = l
  end
  return lists
end

-- ---------------------------------------------------------------- subcommands

local sub = {}
M.subcommands = sub

local LIST_COLS = { "id", "experiment", "name", "status", "seed", "model", "loss", "score", "score_of", "started_at",
                    "duration" }

-- A list row for a person: the score with two decimals, the duration in
-- human units (CSV and JSON keep every column of run_list as stored).
local function human_list_row(r)
  local l = {}
  for j, c in ipairs(LIST_COLS) do
    if c == "score" then l[j] = r.score and ("%.2f"):format(r.score) or nil
    elseif c == "duration" then l[j] = r.duration_s and util.duration(r.duration_s) or nil
    else l[j] = r[c] end
  end
  return l
end

sub.list = {
  usage = "lacos results [list] [--status S] [--experiment NAME] [--limit N] [--all]",
  summary = "runs, newest first (status 'dead' = running with no heartbeat for 60 s)",
  options = { status = true, experiment = true, limit = true, all = true },
  max_args = 0,
  run = function(db, opts, _, out)
    local limit = opts.all and 0 or (opts.limit or 50)
    local rows, cols = db:runs{ status = opts.status, experiment = opts.experiment, limit = limit }
    if opts.json or opts.csv then emit(out, opts, cols, to_lists(cols, rows)) return 0 end
    if #rows == 0 then
      out:write(("no runs in %s%s\n"):format(db.path, (opts.status or opts.experiment) and " matching the filters" or ""))
      return 0
    end
    local lists = {}
    for i, r in ipairs(rows) do lists[i] = human_list_row(r) end
    emit(out, opts, LIST_COLS, lists, true)
    local any = false
    for _, r in ipairs(rows) do if r.score then any = true end end
    if any then
      out:write("score: cosine Spearman x100, the mean over the run's final test scores of the English sets\n" ..
                "       (the scale table's 'en avg'), else of the multilingual ones; score_of says which\n")
    end
    return 0
  end,
}

local function need_run(db, ref)
  local r = db:run(ref)
  if not r then error(("%s: no run '%s' (give an id, a uuid or its prefix, or a run name)"):format(db.path, ref), 0) end
  return r
end

local RUN_FIELDS = {
  "id", "uuid", "experiment", "experiment_id", "name", "status", "stored_status", "exit_reason", "error", "seed",
  "config_json", "config_sha256", "parent_run_id", "script_sha256", "git_commit", "git_dirty", "host", "pid", "cpu",
  "gpu", "threads", "lacos_version", "lacos_build", "created_at", "started_at", "ended_at", "heartbeat_at", "duration_s",
}
local STS_COLS = { "dataset", "language", "split", "step", "n_pairs", "spearman", "pearson", "similarity", "pooling",
                   "text_variant", "aggregation", "model", "adapter", "quantisation", "dtype", "batch_size" }
local TIMING_COLS = { "phase", "step", "device", "threads", "repetitions", "n_items", "n_tokens", "avg_ns", "stddev_ns",
                      "peak_bytes", "optimizer_state_bytes" }
local ARTIFACT_COLS = { "kind", "step", "bytes", "sha256", "path", "created_at" }
local METRIC_COLS = { "key", "step", "last", "min", "max", "rows", "nonfinite" }

local function metric_rows(r)
  local rows = {}
  for _, k in ipairs(r.metric_keys) do
    local m = r.metrics[k]
    rows[#rows + 1] = { k, m.step, m.last, m.min, m.max, m.rows, m.nonfinite }
  end
  return rows
end

sub.show = {
  usage = "lacos results show RUN",
  summary = "everything about one run: provenance, params, final metrics, STS, timings, artifacts, tags",
  options = {},
  min_args = 1, max_args = 1,
  run = function(db, opts, a, out)
    local r = need_run(db, a[1])
    if opts.json then
      local o = {}
      for _, f in ipairs(RUN_FIELDS) do o[f] = r[f] == nil and json.null or r[f] end
      o.config = r.config
      o.params = r.params
      o.metrics = {}
      for _, k in ipairs(r.metric_keys) do
        local m = r.metrics[k]
        o.metrics[k] = { step = m.step, last = m.last, min = m.min, max = m.max, rows = m.rows, nonfinite = m.nonfinite }
      end
      o.sts, o.timings, o.artifacts, o.tags = r.sts, r.timings, r.artifacts, r.tags
      print_json(out, o)
      return 0
    end
    if opts.csv then
      local rows = {}
      for _, f in ipairs(RUN_FIELDS) do if r[f] ~= nil then rows[#rows + 1] = { "run", f, r[f] } end end
      for _, k in ipairs(r.param_keys) do rows[#rows + 1] = { "param", k, r.params[k] } end
      for _, k in ipairs(r.metric_keys) do rows[#rows + 1] = { "metric", k, r.metrics[k].last } end
      for _, s in ipairs(r.sts) do
        local key = ("%s/%s/%s@%d"):format(s.dataset, s.language or "", s.split, s.step)
        rows[#rows + 1] = { "sts_spearman", key, s.spearman }
        rows[#rows + 1] = { "sts_pearson", key, s.pearson }
      end
      for _, t in ipairs(r.timings) do rows[#rows + 1] = { "timing_avg_ns", ("%s@%d"):format(t.phase, t.step), t.avg_ns } end
      for _, x in ipairs(r.artifacts) do rows[#rows + 1] = { "artifact", x.kind, x.path } end
      local tk = {}
      for k in pairs(r.tags) do tk[#tk + 1] = k end
      table.sort(tk)
      for _, k in ipairs(tk) do rows[#rows + 1] = { "tag", k, r.tags[k] } end
      print_csv(out, { "section", "key", "value" }, rows)
      return 0
    end
    local tty = util.isatty(1)
    out:write(("run %d  %s\n"):format(r.id, r.uuid))
    local info = {}
    local function add(k, v) if v ~= nil and v ~= "" then info[#info + 1] = { k, v } end end
    add("experiment", r.experiment and ("%s (id %d)"):format(r.experiment, r.experiment_id))
    add("name", r.name)
    add("status", r.status .. (r.stored_status ~= r.status and (" (stored: " .. r.stored_status .. ")") or ""))
    add("exit reason", r.exit_reason)
    add("error", r.error)
    add("seed", r.seed)
    add("config", r.config_json)
    add("config sha256", r.config_sha256)
    add("parent run", r.parent_run_id)
    add("script sha256", r.script_sha256)
    add("git", r.git_commit and (r.git_commit .. (r.git_dirty and " (dirty)" or "")))
    add("host", r.host and ("%s (pid %s)"):format(r.host, cell_text(r.pid)))
    add("cpu", r.cpu and (r.cpu .. (r.threads and (", %d threads"):format(r.threads) or "")))
    add("gpu", r.gpu)
    add("lacos", r.lacos_version)
    add("created", r.created_at)
    add("started", r.started_at)
    add("ended", r.ended_at)
    add("heartbeat", r.heartbeat_at)
    add("duration", r.duration_s and util.duration(r.duration_s))
    local w = 0
    for _, kv in ipairs(info) do if #kv[1] > w then w = #kv[1] end end
    for _, kv in ipairs(info) do out:write(("  %-" .. w .. "s  %s\n"):format(kv[1], util.printable(cell_text(kv[2])))) end
    local function section(title, cols, rows)
      if #rows == 0 then return end
      out:write("\n", title, "\n")
      print_table(out, cols, rows, tty, true)
    end
    local prows = {}
    for _, k in ipairs(r.param_keys) do prows[#prows + 1] = { k, r.params[k] } end
    section("params", { "key", "value" }, prows)
    section("metrics (last value; min and max over finite values)", METRIC_COLS, metric_rows(r))
    local sts_rows = to_lists(STS_COLS, r.sts)
    for _, l in ipairs(sts_rows) do   -- Spearman and Pearson x100, as every human output shows them
      for j, c in ipairs(STS_COLS) do
        if (c == "spearman" or c == "pearson") and type(l[j]) == "number" then l[j] = ("%.2f"):format(100 * l[j]) end
      end
    end
    local sts_cols = {}
    for j, c in ipairs(STS_COLS) do sts_cols[j] = (c == "spearman" or c == "pearson") and (c .. " x100") or c end
    section("sts (cosine correlations x100; step -1 = final)", sts_cols, sts_rows)
    local trows = {}
    for i, t in ipairs(r.timings) do
      local l = {}
      for j, c in ipairs(TIMING_COLS) do
        local v = t[c]
        if (c == "avg_ns" or c == "stddev_ns") and type(v) == "number" then v = util.duration(v / 1e9)
        elseif (c == "peak_bytes" or c == "optimizer_state_bytes") and type(v) == "number" then v = util.bytes(v) end
        l[j] = v
      end
      trows[i] = l
    end
    local tcols = {}
    for j, c in ipairs(TIMING_COLS) do tcols[j] = ({ avg_ns = "avg", stddev_ns = "stddev", peak_bytes = "peak", optimizer_state_bytes = "optimizer state" })[c] or c end
    section("timings", tcols, trows)
    section("artifacts", ARTIFACT_COLS, to_lists(ARTIFACT_COLS, r.artifacts))
    local trows, tk = {}, {}
    for k in pairs(r.tags) do tk[#tk + 1] = k end
    table.sort(tk)
    for _, k in ipairs(tk) do trows[#trows + 1] = { k, r.tags[k] } end
    section("tags", { "key", "value" }, trows)
    return 0
  end,
}

local function same(a, b)
  if a == nil or b == nil then return a == b end
  if a ~= a and b ~= b then return true end   -- NaN
  return a == b
end

sub.compare = {
  usage = "lacos results compare RUN RUN [RUN...] [--all]",
  summary = "runs side by side: params that differ (--all: every param), final metrics, final STS scores",
  options = { all = true },
  min_args = 2,
  run = function(db, opts, a, out)
    local runs = {}
    for i, ref in ipairs(a) do runs[i] = need_run(db, ref) end
    local rows = {}   -- { section, key, values... }
    local function row(section, key, getter)
      local vals = {}
      for i, r in ipairs(runs) do vals[i] = getter(r) end
      rows[#rows + 1] = { section = section, key = key, values = vals }
    end
    for _, f in ipairs { "experiment", "name", "status", "seed", "config_sha256", "git_commit", "duration_s" } do
      row("run", f, function(r) return r[f] end)
    end
    local function union(field)
      local keys, seen = {}, {}
      for _, r in ipairs(runs) do
        for _, k in ipairs(r[field]) do if not seen[k] then seen[k] = true; keys[#keys + 1] = k end end
      end
      table.sort(keys)
      return keys
    end
    local nsame = 0
    for _, k in ipairs(union("param_keys")) do
      local v1, differs = runs[1].params[k], false
      for i = 2, #runs do if not same(runs[i].params[k], v1) then differs = true end end
      if differs or opts.all then row("param", k, function(r) return r.params[k] end) else nsame = nsame + 1 end
    end
    for _, k in ipairs(union("metric_keys")) do
      row("metric", k, function(r) return r.metrics[k] and r.metrics[k].last end)
    end
    -- Final STS scores keyed by dataset/language/split (the newest row of each).
    local sts_keys, seen = {}, {}
    local finals = {}
    for i, r in ipairs(runs) do
      finals[i] = {}
      for _, s in ipairs(r.sts) do
        if s.step == -1 then
          local k = ("%s/%s/%s"):format(s.dataset, s.language or "-", s.split)
          finals[i][k] = s
          if not seen[k] then seen[k] = true; sts_keys[#sts_keys + 1] = k end
        end
      end
    end
    table.sort(sts_keys)
    for _, k in ipairs(sts_keys) do
      local idx = {}
      for i, r in ipairs(runs) do idx[r] = i end
      row("sts_spearman", k, function(r) local s = finals[idx[r]][k] return s and s.spearman end)
      rows[#rows].x100 = true
    end
    if opts.json then
      local o = { runs = {}, rows = {} }
      for i, r in ipairs(runs) do o.runs[i] = { id = r.id, uuid = r.uuid, name = r.name or json.null } end
      for i, x in ipairs(rows) do
        local vals = {}
        for j = 1, #runs do vals[j] = x.values[j] == nil and json.null or x.values[j] end
        o.rows[i] = { section = x.section, key = x.key, values = vals }
      end
      print_json(out, o)
      return 0
    end
    local cols = { "section", "key" }
    for _, r in ipairs(runs) do cols[#cols + 1] = "run " .. ("%d"):format(r.id) end
    local lists = {}
    for i, x in ipairs(rows) do
      local l = { x.section, x.key }
      for j = 1, #runs do l[j + 2] = x.values[j] end
      lists[i] = l
    end
    if opts.csv then print_csv(out, cols, lists) return 0 end
    for i, l in ipairs(lists) do   -- a hash prefix is enough to tell configs apart on screen
      if l[2] == "config_sha256" then for j = 3, #l do if type(l[j]) == "string" then l[j] = l[j]:sub(1, 12) end end end
      if l[2] == "duration_s" then l[2] = "duration"; for j = 3, #l do if type(l[j]) == "number" then l[j] = util.duration(l[j]) end end end
      if rows[i].x100 then   -- Spearman x100 on screen, as everywhere a person reads it
        l[1] = "sts_spearman_x100"
        for j = 3, #l do if type(l[j]) == "number" then l[j] = ("%.2f"):format(100 * l[j]) end end
      end
    end
    print_table(out, cols, lists, util.isatty(1))
    if nsame > 0 then out:write(("(%d param%s equal in all runs not shown; --all shows them)\n"):format(nsame, nsame == 1 and "" or "s")) end
    return 0
  end,
}

sub.sql = {
  usage = 'lacos results sql "SELECT ..." [VALUE...]',
  summary = "a read-only query (VALUEs bind to ? in order; numbers as numbers)",
  options = {},
  min_args = 1,
  run = function(db, opts, a, out)
    local values = {}
    for i = 2, #a do values[i - 1] = tonumber(a[i]) or a[i] end
    local rows, cols = db:query(a[1], unpack(values, 1, #a - 1))
    emit(out, opts, cols, to_lists(cols, rows))
    return 0
  end,
}

-- The experiment a scale/plot command shows; when chosen by default, a note
-- on stderr says which (stdout stays the table, CSV or JSON).
local function scale_experiment(db, name)
  local chosen, note = require("lacos.report").resolve_experiment(db, name)
  if note then io.stderr:write("lacos results: ", util.printable(note), "\n") end
  return chosen
end

local function group_option(data, opts)
  if opts.group and not data.groups[opts.group] then
    error(("no group %d: experiment '%s' has %d group%s of comparable runs"):format(opts.group, data.experiment,
      #data.groups, #data.groups == 1 and "" or "s"), 0)
  end
  return opts.group
end

sub.scale = {
  usage = "lacos results scale [EXPERIMENT] [--group N] [--conditions]",
  summary = "the paper-style table of a scaling sweep (default: the newest of 'scale' and 'scale-synthetic'): a block per " ..
            "data amount, rows model, columns STS sets, mean ± std over seeds; runs evaluated or trained differently are " ..
            "shown apart (--conditions: what each group's conditions are, differences marked)",
  options = { group = true, conditions = true },
  max_args = 1,
  run = function(db, opts, a, out)
    local report = require "lacos.report"
    local data = report.collect(db, scale_experiment(db, a[1]))
    local group = group_option(data, opts)
    if opts.conditions then
      if opts.json then print_json(out, report.document(data, { group = group })) return 0 end
      out:write(report.format_conditions(data), "\n")
      return 0
    end
    if opts.json then
      print_json(out, report.document(data, { group = group }))
    elseif opts.csv then
      local cols, rows = report.table_rows(data, { group = group })
      emit(out, opts, cols, rows)
    else
      out:write(util.printable(report.format_table(data, { group = group }), { newlines = true }), "\n")
    end
    return 0
  end,
}

sub.plot = {
  usage = "lacos results plot [EXPERIMENT] [--group N] [--out DIR]",
  summary = "the figures of a scaling sweep (default as for scale; its newest group of comparable runs, or --group N) " ..
            "into results/: English and multilingual averages against model size and against training pairs, " ..
            "PNG, SVG and PDF, with the points drawn as CSV",
  options = { out = true, group = true },
  max_args = 1,
  run = function(db, opts, a, out)
    local report = require "lacos.report"
    local data = report.collect(db, scale_experiment(db, a[1]))
    local group = group_option(data, opts)
    if #data.groups > 1 and not group then
      io.stderr:write(("lacos results: %d groups of runs evaluated or trained differently: plotting group 1 (the newest " ..
                       "runs); lacos results scale shows what differs, --group N plots another\n"):format(#data.groups))
    end
    local files = report.plot(data, opts.out or "results", { group = group })
    for _, f in ipairs(files) do out:write(util.printable(f), "\n") end
    return 0
  end,
}

sub.curves = {
  usage = "lacos results curves RUN... | --experiment NAME [--out DIR]",
  summary = "training curves: loss and learning rate per step of runs (or every done run of a sweep), " ..
            "as a figure (PNG, SVG, PDF and the points as CSV) in results/, or the points with --csv/--json",
  options = { out = true, experiment = true },
  min_args = 0,
  run = function(db, opts, a, out)
    local report = require "lacos.report"
    local ids, title = {}, nil
    if opts.experiment then
      if #a > 0 then args_mod.usage_error("results", "curves: give runs or --experiment, not both") end
      for _, r in ipairs(db:query([[SELECT DISTINCT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id
                                    JOIN train_curves c ON c.run_id = r.id WHERE e.name = ? AND r.status = 'done' ORDER BY r.id]],
                                  opts.experiment)) do ids[#ids + 1] = r.id end
      if #ids == 0 then
        error(("%s: experiment '%s' has no done run with logged training steps"):format(db.path, opts.experiment), 0)
      end
      title = "experiment " .. opts.experiment
    else
      if #a == 0 then args_mod.usage_error("results", "curves needs runs (ids, uuids or names) or --experiment NAME") end
      for _, ref in ipairs(a) do ids[#ids + 1] = need_run(db, ref).id end
      title = "run" .. (#ids > 1 and "s " or " ") .. table.concat(ids, ", ")
    end
    local curves = report.curves(db, ids)
    if opts.json or opts.csv then
      local cols, rows = { "run", "step", "loss", "lr" }, {}
      for _, r in ipairs(curves.runs) do
        for _, p in ipairs(r.points) do rows[#rows + 1] = { r.id, p.step, p.loss, p.lr } end
      end
      emit(out, opts, cols, rows)
      return 0
    end
    local dir = opts.out or "results"
    util.mkdir_p(dir)
    local stem = opts.experiment and ("curves_" .. opts.experiment:gsub("[/%c]", "_")) or ("curves_run" .. table.concat(ids, "-"))
    if #stem > 120 then stem = stem:sub(1, 120) end
    local files, nonfinite = report.plot_curves(curves, dir .. "/" .. stem, { title = title })
    for _, f in ipairs(files) do out:write(f, "\n") end
    if nonfinite > 0 then
      io.stderr:write(("lacos results: %d logged loss%s not finite (NaN or infinite): left out of the figure, the line breaks there\n")
        :format(nonfinite, nonfinite == 1 and " is" or "es are"))
    end
    return 0
  end,
}

sub.mteb = {
  usage = "lacos results mteb RUN [--out DIR]",
  summary = "a run's final STS scores in MTEB's result format (a task per object; --out DIR writes DIR/<task>.json as MTEB does)",
  options = { out = true },
  min_args = 1,
  max_args = 1,
  run = function(db, opts, a, out)
    local id = db:resolve(a[1])
    if not id then error(("%s: no run '%s' (give an id, a uuid or its prefix, or a run name)"):format(db.path, a[1]), 0) end
    local doc = require("lacos.report").mteb(db, id)
    if opts.out then
      require("lacos.util").mkdir_p(opts.out)
      for _, t in ipairs(doc.results) do
        local path = ("%s/%s.json"):format(opts.out, t.task_name)
        json.write(path, json_value(t))
        out:write(util.printable(path), "\n")
      end
      if #doc.results == 0 then io.stderr:write("lacos results: run ", tostring(id), " has no scores on MTEB's STS tasks\n") end
      return 0
    end
    print_json(out, doc)
    return 0
  end,
}

sub.merge = {
  usage = "lacos results merge [SHARD|DIR ...] [--experiment NAME]",
  summary = "fold Slurm tasks' database shards into the database (default: every sweep's, beside it); idempotent",
  options = { experiment = true },
  writes = true,
  run = function(db, opts, a)
    local path = db.path
    db:close()
    local rep = require("lacos.merge").merge(a, { db = path, experiment = opts.experiment })
    io.stderr:write(("merged %d run%s from %d shard%s into %s (%d there already, %d still running)%s\n"):format(
      rep.merged, rep.merged == 1 and "" or "s", rep.shards, rep.shards == 1 and "" or "s", rep.db, rep.present,
      rep.unfinished, #rep.refused > 0 and ("; %d shard%s skipped"):format(#rep.refused, #rep.refused == 1 and "" or "s") or ""))
    return #rep.refused > 0 and 1 or 0
  end,
}

M.order = { "list", "show", "compare", "sql", "scale", "plot", "curves", "mteb", "merge" }

-- ---------------------------------------------------------------- command

local function description()
  local lines = { "subcommands:" }
  for _, name in ipairs(M.order) do
    lines[#lines + 1] = "  " .. sub[name].usage
    lines[#lines + 1] = "      " .. sub[name].summary
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "The database is $LACOS_DB or results/lacos.db unless --db names one. It is plain SQLite:"
  lines[#lines + 1] = "tables experiments, scripts, runs, params (value_num or value_text), metrics (is_finite = 0"
  lines[#lines + 1] = "for NaN/inf), sts_results (correlations -1..1), timings, artifacts, tags; views run_summary,"
  lines[#lines + 1] = "run_list, run_scores and sts_final (scores: Spearman x100), run_points, train_curves."
  lines[#lines + 1] = "People read Spearman x100 everywhere; CSV and JSON keep spearman/pearson as stored (-1..1)."
  lines[#lines + 1] = "RUN is an id, a uuid (or a unique prefix of one) or a run name (the newest with it)."
  return table.concat(lines, "\n")
end

M.spec = {
  name = "results",
  usage = "lacos results [list|show|compare|sql|scale|plot|curves|mteb|merge] [ARGS...] [options]",
  summary = "List, show, compare and query runs in the results database.",
  description = description(),
  options = {
    { "--db", "FILE", "results database (default: $LACOS_DB or results/lacos.db)" },
    { "--csv", nil, "print CSV" },
    { "--json", nil, "print JSON" },
    { "--status", "S", "list: only runs with this status", choices = { "queued", "running", "done", "failed", "interrupted", "dead" } },
    { "--experiment", "NAME", "list: only runs of this experiment; curves: every done run of it; merge: refuse shards of another sweep" },
    { "--limit", "N", "list: at most N runs (default 50)", type = "integer", min = 1 },
    { "--all", nil, "list: every run; compare: also params equal in all runs" },
    { "--out", "DIR", "plot, curves: where the figures go (default results); mteb: write a JSON file per task there" },
    { "--group", "N", "scale, plot: only group N of comparable runs (1 = the newest)", type = "integer", min = 1 },
    { "--conditions", nil, "scale: every evaluation condition and recipe field of each group, differences marked" },
  },
  positional = { min = 0, names = "SUBCOMMAND ARGS" },
  examples = {
    "lacos results",
    "lacos results list --status done --experiment scale --limit 20",
    "lacos results show 12",
    "lacos results compare 12 13 14",
    "lacos results sql \"SELECT run_id, spearman FROM sts_results WHERE dataset = ? ORDER BY spearman DESC\" stsb --csv",
    "lacos results scale",
    "lacos results plot --out results",
    "lacos results scale scale-synthetic --json",
    "lacos results curves 12 13 --out results",
    "lacos results curves --experiment scale-synthetic",
    "lacos results mteb 12 --out mteb-results",
    "lacos results merge",
  },
}

local OPTION_FLAGS = { status = "--status", experiment = "--experiment", limit = "--limit", all = "--all", out = "--out",
                       group = "--group", conditions = "--conditions" }

function M.run(opts)
  local a = opts._ or {}
  local name = a[1]
  local rest = {}
  if name == nil or not sub[name] then
    if name ~= nil and not (name:match("^%d+$")) then
      local names = table.concat(M.order, ", ")
      local guess = args_mod.suggest(name, M.order)
      args_mod.usage_error("results", "unknown subcommand '%s'%s (%s)", name,
        guess and (" — did you mean '%s'?"):format(guess) or "", names)
    end
    if name ~= nil then args_mod.usage_error("results", "to see run %s, use 'lacos results show %s'", name, name) end
    name = "list"
  else
    for i = 2, #a do rest[#rest + 1] = a[i] end
  end
  local s = sub[name]
  for key, flag in pairs(OPTION_FLAGS) do
    if opts[key] ~= nil and opts[key] ~= false and not s.options[key] then
      args_mod.usage_error("results", "%s does not apply to 'results %s'", flag, name)
    end
  end
  if opts.csv and opts.json then args_mod.usage_error("results", "choose one of --csv and --json") end
  if #rest < (s.min_args or 0) then args_mod.usage_error("results", "missing arguments: %s", s.usage) end
  if s.max_args and #rest > s.max_args then args_mod.usage_error("results", "unexpected argument '%s': %s", rest[s.max_args + 1], s.usage) end
  local db = require("lacos.results").open(opts.db, { readonly = not s.writes })
  local ok, code = pcall(s.run, db, opts, rest, io.stdout)
  db:close()
  if not ok then error(code, 0) end
  return code
end

return M
