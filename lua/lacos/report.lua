-- lacos.report: the paper-style views of a scaling sweep in the results
-- database — the table (rows: model; columns: the STS sets and their
-- average; one block per data amount) and the two plots (Spearman against
-- parameters, a line per data amount; against data amount, a line per
-- model), written with gnuplot as PNG and SVG.
--
-- It reads what experiments/scale.lua records for each done run: params
-- `model`, `model_params`, `n_pairs` (else `pairs`) and `synthetic`, and
-- final sts_results rows (step -1) keyed by dataset and language.
local json = require "lacos.json"

local M = {}

-- Canonical column order; anything else follows alphabetically.
local ORDER = { "STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark", "SICK-R" }
local ENGLISH7 = {}
for _, t in ipairs(ORDER) do ENGLISH7[t] = true end

-- English-only sets are named alone; the multilingual ones always carry their language.
local function task_key(dataset, language)
  if ENGLISH7[dataset] and (language == nil or language == "" or language == "en") then return dataset end
  if language and language ~= "" then return dataset .. " " .. language end
  return dataset
end

local function order_tasks(set)
  local rank = {}
  for i, t in ipairs(ORDER) do rank[t] = i end
  local list = {}
  for t in pairs(set) do list[#list + 1] = t end
  table.sort(list, function(a, b)
    local ra, rb = rank[a] or 1000, rank[b] or 1000
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  return list
end

-- Collects the sweep: { tasks = {...}, amounts = {...}, models = {...},
-- cell[pairs][model] = { params, synthetic, seeds, scores = {task = mean spearman×100}, avg, en_avg } }.
function M.collect(db, experiment)
  local runs = db:query([[
    SELECT r.id AS id,
           (SELECT value_text FROM params WHERE run_id = r.id AND key = 'model') AS model,
           (SELECT value_num FROM params WHERE run_id = r.id AND key = 'model_params') AS model_params,
           (SELECT coalesce((SELECT value_num FROM params WHERE run_id = r.id AND key = 'n_pairs'),
                            (SELECT coalesce(value_num, value_text) FROM params WHERE run_id = r.id AND key = 'pairs'))) AS pairs,
           (SELECT coalesce(value_num, CASE value_text WHEN 'true' THEN 1 ELSE 0 END)
              FROM params WHERE run_id = r.id AND key = 'synthetic') AS synthetic
      FROM runs r JOIN experiments e ON e.id = r.experiment_id
     WHERE e.name = ? AND r.status = 'done'
     ORDER BY r.id]], experiment)
  local out = { tasks = {}, amounts = {}, models = {}, cell = {}, experiment = experiment, runs = #runs, synthetic = false }
  local taskset, amountset, modelset = {}, {}, {}
  for _, r in ipairs(runs) do
    if r.model and r.pairs then
      local scores = db:query([[SELECT dataset, language, spearman FROM sts_results
                                 WHERE run_id = ? AND step = -1 ORDER BY id]], r.id)
      local amount = r.pairs
      out.cell[amount] = out.cell[amount] or {}
      local c = out.cell[amount][r.model]
      if not c then
        c = { params = r.model_params or 0, synthetic = r.synthetic == 1, seeds = 0, sum = {}, n = {} }
        out.cell[amount][r.model] = c
      end
      c.seeds = c.seeds + 1
      if r.synthetic == 1 then out.synthetic = true end
      for _, s in ipairs(scores) do
        local k = task_key(s.dataset, s.language)
        if type(s.spearman) == "number" and s.spearman == s.spearman then
          c.sum[k] = (c.sum[k] or 0) + 100 * s.spearman
          c.n[k] = (c.n[k] or 0) + 1
          taskset[k] = true
        end
      end
      amountset[amount] = true
      if not modelset[r.model] or modelset[r.model] < (r.model_params or 0) then modelset[r.model] = r.model_params or 0 end
    end
  end
  out.tasks = order_tasks(taskset)
  for a in pairs(amountset) do out.amounts[#out.amounts + 1] = a end
  table.sort(out.amounts, function(a, b)
    local na, nb = tonumber(a), tonumber(b)
    if na and nb then return na < nb end
    if na then return true end
    if nb then return false end
    return tostring(a) < tostring(b)
  end)
  for mname, p in pairs(modelset) do out.models[#out.models + 1] = { name = mname, params = p } end
  table.sort(out.models, function(a, b) if a.params ~= b.params then return a.params < b.params end return a.name < b.name end)
  for _, byamount in pairs(out.cell) do
    for _, c in pairs(byamount) do
      c.scores = {}
      local s, n, se, ne = 0, 0, 0, 0
      for _, t in ipairs(out.tasks) do
        if c.n[t] then
          c.scores[t] = c.sum[t] / c.n[t]
          s, n = s + c.scores[t], n + 1
          if ENGLISH7[t] then se, ne = se + c.scores[t], ne + 1 end
        end
      end
      c.avg = n > 0 and s / n or nil
      c.en_avg = ne == #ORDER and se / ne or nil
    end
  end
  return out
end

local function fmt(v) return v and ("%.2f"):format(v) or "-" end
local function human_params(p)
  if not p or p == 0 then return "?" end
  if p >= 1e9 then return ("%.2fB"):format(p / 1e9) end
  return ("%.1fM"):format(p / 1e6)
end

-- The table as text (aligned), or rows for CSV/JSON.
function M.table_rows(data)
  local cols = { "pairs", "model", "params", "seeds" }
  for _, t in ipairs(data.tasks) do cols[#cols + 1] = t end
  cols[#cols + 1] = "avg"
  cols[#cols + 1] = "en7_avg"
  local rows = {}
  for _, a in ipairs(data.amounts) do
    for _, m in ipairs(data.models) do
      local c = data.cell[a] and data.cell[a][m.name]
      if c then
        local r = { a, m.name, c.params, c.seeds }
        for _, t in ipairs(data.tasks) do r[#r + 1] = c.scores[t] end
        r[#r + 1] = c.avg
        r[#r + 1] = c.en_avg
        rows[#rows + 1] = r
      end
    end
  end
  return cols, rows
end

local function block(lines, data, amount, tasks, avg_label)
  if #tasks == 0 then return end
  local head = { "model", "params" }
  for _, t in ipairs(tasks) do head[#head + 1] = t end
  head[#head + 1] = avg_label
  local widths = {}
  for i, h in ipairs(head) do widths[i] = math.max(#h, i <= 2 and 12 or 6) end
  local hl = {}
  for i, h in ipairs(head) do hl[i] = ("%" .. (i <= 2 and "-" or "") .. widths[i] .. "s"):format(h) end
  lines[#lines + 1] = table.concat(hl, "  ")
  for _, m in ipairs(data.models) do
    local c = data.cell[amount] and data.cell[amount][m.name]
    if c then
      local r = { ("%-" .. widths[1] .. "s"):format(m.name), ("%-" .. widths[2] .. "s"):format(human_params(c.params)) }
      local sum, n = 0, 0
      for i, t in ipairs(tasks) do
        r[#r + 1] = ("%" .. widths[i + 2] .. "s"):format(fmt(c.scores[t]))
        if c.scores[t] then sum, n = sum + c.scores[t], n + 1 end
      end
      r[#r + 1] = ("%" .. widths[#head] .. "s"):format(fmt(n > 0 and sum / n or nil))
      lines[#lines + 1] = table.concat(r, "  ")
    end
  end
end

-- One block per data amount; within it the English sets (with their
-- average) and the multilingual ones (with theirs).
function M.format_table(data)
  local lines = {}
  lines[#lines + 1] = ("Spearman x100 (cosine) of experiment '%s', %d done runs%s"):format(data.experiment, data.runs,
    data.synthetic and " — SYNTHETIC: random-weight models, not BLOOM's weights" or "")
  if #data.amounts == 0 then
    lines[#lines + 1] = "(no finished runs with STS results yet)"
    return table.concat(lines, "\n")
  end
  local en, multi = {}, {}
  for _, t in ipairs(data.tasks) do
    if ENGLISH7[t] then en[#en + 1] = t else multi[#multi + 1] = t end
  end
  for _, a in ipairs(data.amounts) do
    lines[#lines + 1] = ""
    lines[#lines + 1] = ("training pairs: %s"):format(tostring(a))
    block(lines, data, a, en, "avg")
    if #en > 0 and #multi > 0 then lines[#lines + 1] = "" end
    block(lines, data, a, multi, "avg")
  end
  return table.concat(lines, "\n")
end

-- Writes <dir>/<experiment>_vs_params.{png,svg} and _vs_data.{png,svg}
-- through gnuplot; returns the list of files.
function M.plot(data, dir)
  if #data.amounts == 0 then error("nothing to plot: experiment '" .. data.experiment .. "' has no finished runs with STS results", 0) end
  os.execute(("mkdir -p %q"):format(dir))
  local function series_params()
    local blocks, titles = {}, {}
    for _, a in ipairs(data.amounts) do
      local pts = {}
      for _, m in ipairs(data.models) do
        local c = data.cell[a] and data.cell[a][m.name]
        if c and c.avg and c.params > 0 then pts[#pts + 1] = ("%.6g %.6g"):format(c.params, c.avg) end
      end
      if #pts > 0 then blocks[#blocks + 1] = table.concat(pts, "\n"); titles[#titles + 1] = ("%s pairs"):format(tostring(a)) end
    end
    return blocks, titles
  end
  -- A log axis has no 0: the untrained point sits a quarter of the smallest
  -- amount to the left, labelled 0.
  local smallest
  for _, a in ipairs(data.amounts) do
    local x = tonumber(a)
    if x and x > 0 and (not smallest or x < smallest) then smallest = x end
  end
  local zero_x = (smallest or 100) / 4
  local function series_data()
    local blocks, titles = {}, {}
    for _, m in ipairs(data.models) do
      local pts = {}
      for _, a in ipairs(data.amounts) do
        local c = data.cell[a] and data.cell[a][m.name]
        local x = tonumber(a)
        if x == 0 then x = zero_x end
        if c and c.avg and x then pts[#pts + 1] = ("%.6g %.6g"):format(x, c.avg) end
      end
      if #pts > 0 then blocks[#blocks + 1] = table.concat(pts, "\n"); titles[#titles + 1] = m.name end
    end
    return blocks, titles
  end
  local files = {}
  local note = data.synthetic and " (synthetic: random-weight models)" or ""
  local function render(name, xlabel, blocks, titles, extra)
    for _, term in ipairs { { "pngcairo size 900,600", "png" }, { "svg size 900,600", "svg" } } do
      local path = ("%s/%s_%s.%s"):format(dir, data.experiment, name, term[2])
      local script = { ("set terminal %s"):format(term[1]), ("set output %q"):format(path),
                       ("set title %q"):format("Average STS Spearman x100, " .. data.experiment .. note),
                       ("set xlabel %q"):format(xlabel), "set ylabel \"Spearman x100\"", "set logscale x", "set grid",
                       "set key outside right", extra or "" }
      local plots = {}
      for i, b in ipairs(blocks) do
        script[#script + 1] = ("$d%d << EOD\n%s\nEOD"):format(i, b)
        plots[#plots + 1] = ("$d%d with linespoints lw 2 title %q"):format(i, titles[i])
      end
      script[#script + 1] = "plot " .. table.concat(plots, ", ")
      local gp = path .. ".gp"
      local f = assert(io.open(gp, "w"))
      f:write(table.concat(script, "\n"), "\n")
      f:close()
      local ok = os.execute(("gnuplot %q 2>%q"):format(gp, gp .. ".err"))
      local ef = io.open(gp .. ".err")
      local err = ef and ef:read("*a") or ""
      if ef then ef:close() end
      os.remove(gp .. ".err")
      os.remove(gp)
      if not (ok == 0 or ok == true) then error("gnuplot failed for " .. path .. ": " .. err, 0) end
      files[#files + 1] = path
    end
  end
  local b1, t1 = series_params()
  if #b1 > 0 then render("vs_params", "parameters", b1, t1) end
  local b2, t2 = series_data()
  if #b2 > 0 then
    -- ticks at the amounts themselves, 0 labelled as untrained
    local ticks, hi = {}, zero_x
    for _, a in ipairs(data.amounts) do
      local x = tonumber(a)
      if x then
        ticks[#ticks + 1] = x == 0 and ('"untrained" %.6g'):format(zero_x) or ('"%d" %.6g'):format(x, x)
        if x > hi then hi = x end
      end
    end
    render("vs_data", "training pairs", b2, t2,
      ("set xtics (%s)\nset xrange [%.6g:%.6g]"):format(table.concat(ticks, ", "), zero_x / 1.6, hi * 1.6))
  end
  if #files == 0 then error("nothing to plot: no run recorded both model_params and a numeric pairs value", 0) end
  return files
end

-- MTEB-style JSON of one run's STS scores: one object per task with
-- per-subset scores and main_score (cosine_spearman, 0..1).
function M.mteb(db, run_id)
  local rows = db:query([[SELECT dataset, language, split, spearman, pearson, n_pairs FROM sts_results
                          WHERE run_id = ? AND step = -1 ORDER BY id]], run_id)
  local run = db:run(run_id)
  local tasks, order = {}, {}
  for _, r in ipairs(rows) do
    local t = tasks[r.dataset]
    if not t then
      t = { task_name = r.dataset, mteb_version = "lacos " .. require("lacos").version(), scores = {} }
      tasks[r.dataset] = t
      order[#order + 1] = r.dataset
    end
    t.scores[r.split] = t.scores[r.split] or {}
    table.insert(t.scores[r.split], {
      hf_subset = r.language or "default", languages = { r.language or "en" },
      cosine_spearman = r.spearman, cosine_pearson = r.pearson, main_score = r.spearman, n_pairs = r.n_pairs,
    })
  end
  local out = {}
  for i, name in ipairs(order) do out[i] = tasks[name] end
  return { run = run and run.uuid or run_id, results = out }
end

return M
