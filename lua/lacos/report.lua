-- lacos.report: the paper-style views of a scaling sweep in the results
-- database — the table (rows: model; columns: the STS sets and their
-- averages; one block per amount of training data), the figures (the
-- English and the multilingual average against model size, a line per data
-- amount; against data amount, a line per model; PNG, SVG and PDF through
-- gnuplot) and the training curves of runs (loss and learning rate per
-- step).
--
-- What it knows of the database comes from the report views of
-- engine/results_views.c (run_points, sts_final, train_curves): which runs
-- are points of a sweep, their evaluation conditions and training recipe,
-- which sets are English. Here only the grouping and the statistics:
--
--   * Runs are pooled only when comparable: the same evaluation conditions
--     (sets, pairs per set, text variant, aggregation, similarity, pooling,
--     quantisation, the data's sha256) and, for trained runs, the same
--     recipe. Each such group is its own table and figure; untrained runs
--     and baseline runs (param `baseline` true) join every recipe group
--     evaluated under their conditions. A baseline embeds its own way (a
--     sentence-transformers model's pooling, f32 weights): it joins every
--     group scored alike apart from pooling and quantisation, and its row
--     and line say how it differs ("(baseline, mean pooling, f32 weights)").
--   * Within a group, a point (model, amount) has one run per distinct
--     seed — the newest when a seed ran twice — and its cells are the mean,
--     the sample standard deviation and the number n of seeds. Averages are
--     taken per seed, then over seeds.
--   * Scores are cosine Spearman x100 on the test splits.
local json = require "lacos.json"
local util = require "lacos.util"

local M = {}

-- ---------------------------------------------------------------- statistics

-- Mean, sample standard deviation (nil for one value) and count of a list.
local function stats(values)
  local n = #values
  if n == 0 then return nil end
  local s = 0
  for _, v in ipairs(values) do s = s + v end
  local mean = s / n
  local std
  if n > 1 then
    local q = 0
    for _, v in ipairs(values) do q = q + (v - mean) ^ 2 end
    std = math.sqrt(q / (n - 1))
  end
  return { mean = mean, std = std, n = n }
end
M._stats = stats

local FAMILY_RANK = { en = 1, multi = 2, other = 3 }
M.FAMILY_TITLE = { en = "English STS", multi = "multilingual STS", other = "other STS sets" }

-- ---------------------------------------------------------------- collect

local POINTS_SQL = [[
  SELECT run_id, seed, model, model_params, pairs, pairs_asked, synthetic, baseline, conditions, recipe
    FROM run_points WHERE experiment = ? AND status = 'done' ORDER BY run_id]]
local SCORES_SQL = [[
  SELECT f.run_id, f.task, f.family, f.task_order, f.score
    FROM sts_final f JOIN run_points p ON p.run_id = f.run_id
   WHERE p.experiment = ? AND p.status = 'done' AND f.split = 'test' ORDER BY f.run_id, f.sts_id]]

-- Conditions that say how a model embeds rather than how it is scored, as
-- a baseline's row names them when they are not its group's.
local OWN_CONDITION = {
  pooling = function(v) return tostring(v) .. " pooling" end,
  quantisation = function(v) return tostring(v) .. " weights" end,
}

local function amount_label(a, asked)
  if a == 0 then return "0 (untrained)" end
  local n = type(a) == "number" and util.thousands(a) or tostring(a)
  if asked == "all" then return ("all (%s)"):format(n) end
  return n
end

-- One group of comparable runs: its tasks (ordered), amounts, models and
-- cells.
local function build_group(runs, conditions_text, recipe_text)
  local g = {
    conditions = json.decode(conditions_text, "run_points.conditions"), conditions_text = conditions_text,
    recipe = recipe_text and json.decode(recipe_text, "run_points.recipe") or nil, recipe_text = recipe_text,
    tasks = {}, family_tasks = { en = {}, multi = {}, other = {} }, amounts = {}, amount_labels = {}, models = {},
    cell = {}, runs = 0, run_ids = {}, newest = 0, seeds = {}, repeated = 0,
  }
  -- the newest run of each (model, baseline, amount, seed)
  table.sort(runs, function(a, b) return a.run_id < b.run_id end)
  local latest, order = {}, {}
  for _, p in ipairs(runs) do
    local key = table.concat({ p.model, tostring(p.baseline), tostring(p.pairs), tostring(p.seed) }, "\0")
    if latest[key] then g.repeated = g.repeated + 1 else order[#order + 1] = key end
    latest[key] = p
  end
  local taskinfo = {}
  for _, key in ipairs(order) do
    for _, s in ipairs(latest[key].scores) do
      if not taskinfo[s.task] then taskinfo[s.task] = { name = s.task, family = s.family, order = s.task_order } end
    end
  end
  for _, t in pairs(taskinfo) do g.tasks[#g.tasks + 1] = t end
  table.sort(g.tasks, function(a, b)
    if a.family ~= b.family then return (FAMILY_RANK[a.family] or 9) < (FAMILY_RANK[b.family] or 9) end
    if a.order ~= b.order then return a.order < b.order end
    return a.name < b.name
  end)
  for _, t in ipairs(g.tasks) do table.insert(g.family_tasks[t.family] or g.family_tasks.other, t.name) end

  local amountset, modelset, seedset = {}, {}, {}
  local raw = {}   -- cell -> { task = {values}, en = {values}, multi = {values}, other = {values} }
  for _, key in ipairs(order) do
    local p = latest[key]
    g.runs = g.runs + 1
    g.run_ids[#g.run_ids + 1] = p.run_id
    if p.run_id > g.newest then g.newest = p.run_id end
    local a = p.pairs
    amountset[a] = true
    if p.pairs_asked == "all" or not g.amount_labels[a] then g.amount_labels[a] = amount_label(a, p.pairs_asked) end
    local mkey = p.model .. (p.baseline and "\0baseline" or "")
    if not modelset[mkey] then
      local label = p.model .. (p.baseline and (" (baseline" .. (p.own and (", " .. p.own) or "") .. ")") or "")
      modelset[mkey] = { name = p.model, params = p.model_params, baseline = p.baseline, key = mkey, label = label, own = p.own }
    end
    if p.seed ~= nil then seedset[p.seed] = true end
    g.cell[a] = g.cell[a] or {}
    local c = g.cell[a][mkey]
    if not c then
      c = { model = p.model, params = p.model_params, baseline = p.baseline, seeds = {}, runs = {}, scores = {} }
      g.cell[a][mkey] = c
      raw[c] = { tasks = {} }
    end
    c.seeds[#c.seeds + 1] = p.seed
    c.runs[#c.runs + 1] = p.run_id
    local got = {}
    for _, s in ipairs(p.scores) do
      if type(s.score) == "number" and s.score == s.score then got[s.task] = s.score end
    end
    local r = raw[c]
    for task, v in pairs(got) do
      r.tasks[task] = r.tasks[task] or {}
      table.insert(r.tasks[task], v)
    end
    -- a seed's average over the family's sets, only when it has them all
    for family, list in pairs(g.family_tasks) do
      if #list > 0 then
        local sum, all = 0, true
        for _, t in ipairs(list) do if got[t] then sum = sum + got[t] else all = false end end
        r[family] = r[family] or {}
        if all then table.insert(r[family], sum / #list) end
      end
    end
  end
  for c, r in pairs(raw) do
    for task, values in pairs(r.tasks) do c.scores[task] = stats(values) end
    for family in pairs(g.family_tasks) do c[family] = r[family] and stats(r[family]) or nil end
  end
  for a in pairs(amountset) do g.amounts[#g.amounts + 1] = a end
  table.sort(g.amounts, function(x, y)
    local nx, ny = tonumber(x), tonumber(y)
    if nx and ny then return nx < ny end
    if nx or ny then return nx ~= nil end
    return tostring(x) < tostring(y)
  end)
  for _, m in pairs(modelset) do g.models[#g.models + 1] = m end
  table.sort(g.models, function(x, y)
    if x.baseline ~= y.baseline then return not x.baseline end
    if (x.params or 0) ~= (y.params or 0) then return (x.params or 0) < (y.params or 0) end
    return x.name < y.name
  end)
  for s in pairs(seedset) do g.seeds[#g.seeds + 1] = s end
  table.sort(g.seeds)
  return g
end

-- Collects the done runs of an experiment: { experiment, synthetic, runs,
-- ignored (done runs without model, pairs or scores), groups = { newest
-- first: { index, conditions, recipe, tasks, family_tasks, amounts,
-- amount_labels, models, cell[amount][model key] = { model, params,
-- baseline, seeds, runs, scores[task] = {mean, std, n}, en, multi, other
-- (averages as {mean, std, n}) } } } }.
function M.collect(db, experiment)
  local points = db:query(POINTS_SQL, experiment)
  local by_run = {}
  for _, s in ipairs(db:query(SCORES_SQL, experiment)) do
    by_run[s.run_id] = by_run[s.run_id] or {}
    table.insert(by_run[s.run_id], s)
  end
  local out = { experiment = experiment, synthetic = false, runs = 0, ignored = 0, groups = {} }
  local evals, eval_order, baselines = {}, {}, {}
  local function eval_of(conditions)
    local e = evals[conditions]
    if not e then
      e = { conditions = conditions, recipes = {}, recipe_order = {}, shared = {} }
      evals[conditions] = e
      eval_order[#eval_order + 1] = e
    end
    return e
  end
  for _, p in ipairs(points) do
    if p.model ~= nil and type(p.pairs) == "number" and by_run[p.run_id] then
      out.runs = out.runs + 1
      if p.synthetic == 1 then out.synthetic = true end
      p.model = tostring(p.model)
      p.scores = by_run[p.run_id]
      p.baseline = p.baseline == 1
      if p.baseline then
        baselines[#baselines + 1] = p   -- placed below, once every group is known
      elseif p.recipe then
        local e = eval_of(p.conditions)
        if not e.recipes[p.recipe] then
          e.recipes[p.recipe] = {}
          e.recipe_order[#e.recipe_order + 1] = p.recipe
        end
        table.insert(e.recipes[p.recipe], p)
      else
        -- untrained: it belongs with every recipe evaluated this way
        table.insert(eval_of(p.conditions).shared, p)
      end
    else
      out.ignored = out.ignored + 1
    end
  end
  -- A baseline joins every group scored as it was (the same sets, pairs,
  -- text, aggregation, similarity and data), whatever pooling and weights
  -- the group's models used; its own, where they differ, go with its name.
  -- Scored like no group, it is a group of its own.
  for _, b in ipairs(baselines) do
    local mine = json.decode(b.conditions, "run_points.conditions")
    local placed = false
    for _, e in ipairs(eval_order) do
      local theirs = json.decode(e.conditions, "run_points.conditions")
      local same, own, keys = true, {}, {}
      for k in pairs(mine) do keys[#keys + 1] = k end
      for k in pairs(theirs) do if mine[k] == nil then keys[#keys + 1] = k end end
      table.sort(keys)
      for _, k in ipairs(keys) do
        if mine[k] ~= theirs[k] and OWN_CONDITION[k] then
          own[#own + 1] = OWN_CONDITION[k](mine[k])
        elseif mine[k] ~= theirs[k] then
          same = false
        end
      end
      if same then
        local q = {}
        for k, v in pairs(b) do q[k] = v end
        q.own = #own > 0 and table.concat(own, ", ") or nil
        table.insert(e.shared, q)
        placed = true
      end
    end
    if not placed then table.insert(eval_of(b.conditions).shared, b) end
  end
  for _, e in ipairs(eval_order) do
    if #e.recipe_order == 0 then
      out.groups[#out.groups + 1] = build_group(e.shared, e.conditions, nil)
    else
      for _, recipe in ipairs(e.recipe_order) do
        local runs = {}
        for _, p in ipairs(e.recipes[recipe]) do runs[#runs + 1] = p end
        for _, p in ipairs(e.shared) do runs[#runs + 1] = p end
        out.groups[#out.groups + 1] = build_group(runs, e.conditions, recipe)
      end
    end
  end
  table.sort(out.groups, function(a, b) return a.newest > b.newest end)
  for i, g in ipairs(out.groups) do g.index = i end
  return out
end

-- ---------------------------------------------------------------- conditions in words

local function count_word(n, one, many) return ("%d %s"):format(n, n == 1 and one or (many or one .. "s")) end

-- The evaluation conditions of a group as short phrases.
function M.describe_conditions(g)
  local c = g.conditions
  local parts = {}
  local nen, nmulti, nother = #g.family_tasks.en, #g.family_tasks.multi, #g.family_tasks.other
  local sets = {}
  if nen > 0 then sets[#sets + 1] = count_word(nen, "English set") end
  if nmulti > 0 then sets[#sets + 1] = count_word(nmulti, "multilingual track") end
  if nother > 0 then sets[#sets + 1] = count_word(nother, "other set") end
  parts[#parts + 1] = "test splits of " .. table.concat(sets, " + ")
  local per = tonumber(c.pairs_per_set) or 0
  parts[#parts + 1] = per > 0 and ("first %s pairs of each"):format(util.thousands(per)) or "every pair"
  if c.text_variant ~= nil and c.text_variant ~= json.null then parts[#parts + 1] = c.text_variant .. " text" end
  if c.aggregation ~= nil and c.aggregation ~= json.null then parts[#parts + 1] = "aggregation " .. c.aggregation end
  if c.pooling ~= nil and c.pooling ~= json.null then parts[#parts + 1] = c.pooling .. " pooling" end
  if c.quantisation ~= nil and c.quantisation ~= json.null then parts[#parts + 1] = c.quantisation .. " weights" end
  return parts
end

-- The recipe of a group's trained runs in words (nil when it has none).
function M.describe_recipe(g)
  local r = g.recipe
  if not r then return nil end
  local function v(k) local x = r[k] if x == nil or x == json.null then return nil end return x end
  local targets = v("targets")
  if type(targets) == "string" and targets:match("^%[") then
    local ok, list = pcall(json.decode, targets)
    if ok and type(list) == "table" then targets = table.concat(list, ",") end
  end
  local parts = {}
  if v("r") or v("alpha") or targets then
    local lora = { "LoRA" }
    if v("r") then lora[#lora + 1] = "r " .. tostring(v("r")) .. (v("alpha") and "," or "") end
    if v("alpha") then lora[#lora + 1] = "alpha " .. tostring(v("alpha")) end
    if targets then lora[#lora + 1] = "on " .. tostring(targets) end
    parts[#parts + 1] = table.concat(lora, " ")
  end
  if v("dropout") then parts[#parts + 1] = "dropout " .. tostring(v("dropout")) end
  if v("lr") then parts[#parts + 1] = "lr " .. tostring(v("lr")) end
  if v("epochs") then parts[#parts + 1] = count_word(v("epochs"), "epoch") end
  if v("batch_size") then parts[#parts + 1] = "batch " .. tostring(v("batch_size")) end
  if v("max_length") then parts[#parts + 1] = "max length " .. tostring(v("max_length")) end
  if v("loss") then parts[#parts + 1] = "loss " .. tostring(v("loss")) end
  local text = #parts > 0 and table.concat(parts, ", ") or "a recipe the runs did not record"
  if v("training_data") then text = text .. "; data: " .. tostring(v("training_data")) end
  if v("recipe") then text = text .. "; " .. tostring(v("recipe")) end
  return text
end

-- What differs between the groups: { key, values (one per group) } for
-- every condition or recipe field that is not the same in all of them.
function M.differences(data)
  local groups = data.groups
  if #groups < 2 then return {} end
  local keys, seen = {}, {}
  local function add(prefix, t)
    for k in pairs(t or {}) do
      local name = prefix .. k
      if not seen[name] then seen[name] = true; keys[#keys + 1] = name end
    end
  end
  for _, g in ipairs(groups) do add("", g.conditions); add("recipe.", g.recipe) end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local vals, differ = {}, false
    for i, g in ipairs(groups) do
      local field = k:match("^recipe%.(.+)$")
      local v
      if field then v = g.recipe and g.recipe[field] else v = g.conditions[k] end
      if v == nil or v == json.null then v = "-" end
      vals[i] = tostring(v)
      if vals[i] ~= vals[1] then differ = true end
    end
    if differ then out[#out + 1] = { key = k, values = vals } end
  end
  return out
end

-- ---------------------------------------------------------------- the table

local function fmt_stat(st)
  if not st then return "-" end
  if st.std then return ("%.2f ± %.2f"):format(st.mean, st.std) end
  return ("%.2f"):format(st.mean)
end

-- Display width of a string (UTF-8 characters, so "±" counts once).
local function width(s) return #s:gsub("[\128-\191]", "") end
local function pad(s, w, left)
  local fill = (" "):rep(math.max(0, w - width(s)))
  return left and (s .. fill) or (fill .. s)
end

local AVG_LABEL = { en = "en avg", multi = "multi avg", other = "avg" }

local function block(lines, g, amount, family)
  local tasks = g.family_tasks[family]
  if #tasks == 0 then return end
  local head = { "model", "params", "n" }
  for _, t in ipairs(tasks) do head[#head + 1] = t end
  head[#head + 1] = AVG_LABEL[family]
  local rows = {}
  for _, m in ipairs(g.models) do
    local c = g.cell[amount] and g.cell[amount][m.key]
    if c then
      local r = { m.label, util.params(c.params), tostring(#c.seeds) }
      for _, t in ipairs(tasks) do r[#r + 1] = fmt_stat(c.scores[t]) end
      r[#r + 1] = fmt_stat(c[family])
      rows[#rows + 1] = r
    end
  end
  if #rows == 0 then return end
  local widths = {}
  for i, h in ipairs(head) do widths[i] = width(h) end
  for _, r in ipairs(rows) do for i, v in ipairs(r) do widths[i] = math.max(widths[i], width(v)) end end
  local function line(cells)
    local out = {}
    for i, v in ipairs(cells) do out[i] = pad(v, widths[i], i <= 2) end
    lines[#lines + 1] = (table.concat(out, "  "):gsub("%s+$", ""))
  end
  line(head)
  for _, r in ipairs(rows) do line(r) end
end

-- The header lines of a group: what was measured, how, and how trained.
function M.group_header(data, g)
  local lines = {}
  lines[#lines + 1] = ("evaluated: cosine Spearman x100 on the %s"):format(table.concat(M.describe_conditions(g), "; "))
  local recipe = M.describe_recipe(g)
  if recipe then lines[#lines + 1] = "trained: " .. recipe end
  local nseeds = #g.seeds
  lines[#lines + 1] = ("%s (seed%s %s); a cell is the mean%s over its n seeds; 'en avg' (the mean over the English sets)"
    .. " is the headline score, as in lacos results list"):format(count_word(g.runs, "run"), nseeds == 1 and "" or "s",
    table.concat(g.seeds, ","), nseeds > 1 and " ± sample std" or "")
  if g.repeated > 0 then
    lines[#lines + 1] = ("(%s of a seed already run: the newest run of each seed counts)"):format(count_word(g.repeated, "repeated run"))
  end
  return lines
end

-- The table as text: a header naming the experiment, then each group of
-- comparable runs with its conditions and one block per data amount.
function M.format_table(data, opts)
  opts = opts or {}
  local lines = {}
  lines[#lines + 1] = ("experiment '%s': %s, %s"):format(data.experiment,
    data.synthetic and "SYNTHETIC — random-weight models, not BLOOM's weights" or "released checkpoints",
    count_word(data.runs, "done run"))
  if data.ignored > 0 then
    lines[#lines + 1] = ("(%s without a model, a number of training pairs or final test scores left out)"):format(
      count_word(data.ignored, "done run"))
  end
  if #data.groups == 0 then
    lines[#lines + 1] = "(no finished runs with STS results yet)"
    return table.concat(lines, "\n")
  end
  local groups = data.groups
  if #groups > 1 and not opts.group then
    local diffs = M.differences(data)
    local names = {}
    for _, d in ipairs(diffs) do
      local shown = {}
      for i, v in ipairs(d.values) do shown[i] = #v > 40 and (v:sub(1, 37) .. "...") or v end   -- --conditions has them whole
      names[#names + 1] = ("%s (%s)"):format(d.key, table.concat(shown, " | "))
    end
    lines[#lines + 1] = ("%d groups of runs evaluated or trained differently, shown apart, never pooled; they differ in: %s"):format(
      #groups, table.concat(names, "; "))
    lines[#lines + 1] = "(lacos results scale --group N shows one; --conditions lists every condition of each)"
  end
  for _, g in ipairs(groups) do
    if not opts.group or g.index == opts.group then
      lines[#lines + 1] = ""
      if #groups > 1 then lines[#lines + 1] = ("== group %d of %d%s =="):format(g.index, #groups, g.index == 1 and " (the newest runs)" or "") end
      for _, l in ipairs(M.group_header(data, g)) do lines[#lines + 1] = l end
      for _, a in ipairs(g.amounts) do
        lines[#lines + 1] = ""
        lines[#lines + 1] = "training pairs: " .. g.amount_labels[a]
        local first = true
        for _, family in ipairs { "en", "multi", "other" } do
          if #g.family_tasks[family] > 0 then
            if not first then lines[#lines + 1] = "" end
            first = false
            block(lines, g, a, family)
          end
        end
      end
    end
  end
  return table.concat(lines, "\n")
end

-- Every condition of every group, one line each (--conditions): the
-- differing ones marked with '*'.
function M.format_conditions(data)
  local lines = {}
  local differ = {}
  for _, d in ipairs(M.differences(data)) do differ[d.key] = true end
  for _, g in ipairs(data.groups) do
    lines[#lines + 1] = ("group %d: %s, runs %s"):format(g.index, count_word(g.runs, "run"), table.concat(g.run_ids, ","))
    local keys = {}
    for k in pairs(g.conditions) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = g.conditions[k]
      lines[#lines + 1] = ("  %s %-16s %s"):format(differ[k] and "*" or " ", k, v == json.null and "-" or tostring(v))
    end
    keys = {}
    for k in pairs(g.recipe or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = g.recipe[k]
      lines[#lines + 1] = ("  %s %-16s %s"):format(differ["recipe." .. k] and "*" or " ", "recipe." .. k, v == json.null and "-" or tostring(v))
    end
    if not g.recipe then lines[#lines + 1] = "    (no trained runs: no recipe)" end
  end
  return table.concat(lines, "\n")
end

-- The rows as flat records (CSV, JSON): one per group, amount and model.
function M.table_rows(data, opts)
  opts = opts or {}
  local tasks, seen = {}, {}
  for _, g in ipairs(data.groups) do
    if not opts.group or g.index == opts.group then
      for _, t in ipairs(g.tasks) do if not seen[t.name] then seen[t.name] = true; tasks[#tasks + 1] = t.name end end
    end
  end
  local cols = { "group", "pairs", "model", "params", "baseline", "n", "seeds", "runs" }
  for _, t in ipairs(tasks) do cols[#cols + 1] = t; cols[#cols + 1] = t .. " std" end
  for _, f in ipairs { "en_avg", "multi_avg" } do cols[#cols + 1] = f; cols[#cols + 1] = f .. " std" end
  local rows = {}
  for _, g in ipairs(data.groups) do
    if not opts.group or g.index == opts.group then
      for _, a in ipairs(g.amounts) do
        for _, m in ipairs(g.models) do
          local c = g.cell[a] and g.cell[a][m.key]
          if c then
            -- explicit indices: an absent value (nil) must keep its column
            local r = { g.index, a, m.name, c.params, m.baseline, #c.seeds, table.concat(c.seeds, " "), table.concat(c.runs, " ") }
            local k = #r
            local function put(st) r[k + 1], r[k + 2] = st and st.mean, st and st.std; k = k + 2 end
            for _, t in ipairs(tasks) do put(c.scores[t]) end
            for _, f in ipairs { "en", "multi" } do put(c[f]) end
            rows[#rows + 1] = r
          end
        end
      end
    end
  end
  return cols, rows
end

-- The whole report as one JSON-ready document.
function M.document(data, opts)
  opts = opts or {}
  local function st(x) return x and { mean = x.mean, std = x.std or json.null, n = x.n } or json.null end
  local doc = { experiment = data.experiment, synthetic = data.synthetic, done_runs = data.runs,
                metric = "cosine Spearman x100 on the test splits; mean, sample std and n over distinct seeds",
                headline = "en_avg: the mean over the English sets", groups = {} }
  for _, g in ipairs(data.groups) do
    if not opts.group or g.index == opts.group then
      local rows = {}
      for _, a in ipairs(g.amounts) do
        for _, m in ipairs(g.models) do
          local c = g.cell[a] and g.cell[a][m.key]
          if c then
            local scores = {}
            for _, t in ipairs(g.tasks) do scores[t.name] = st(c.scores[t.name]) end
            rows[#rows + 1] = { pairs = a, pairs_label = g.amount_labels[a], model = m.name, params = c.params or json.null,
                                baseline = m.baseline, baseline_own = m.own, n = #c.seeds, seeds = c.seeds, runs = c.runs, scores = scores,
                                en_avg = st(c.en), multi_avg = st(c.multi) }
          end
        end
      end
      local tasks = {}
      for i, t in ipairs(g.tasks) do tasks[i] = { task = t.name, family = t.family } end
      doc.groups[#doc.groups + 1] = { group = g.index, conditions = g.conditions, recipe = g.recipe or json.null,
                                      described = { evaluated = M.describe_conditions(g), trained = M.describe_recipe(g) or json.null },
                                      runs = g.run_ids, tasks = tasks, rows = rows }
    end
  end
  if #data.groups > 1 then
    doc.differences = {}
    for _, d in ipairs(M.differences(data)) do doc.differences[#doc.differences + 1] = { key = d.key, values = d.values } end
  end
  return doc
end

-- ---------------------------------------------------------------- gnuplot

-- A string as a gnuplot single-quoted literal: gnuplot expands backticks
-- (running a shell command) and escapes in double-quoted strings, not in
-- single-quoted ones, where '' is a quote. Control characters (a newline
-- would end the command) become spaces here (lacos.util.gnuplot_string,
-- the shared helper, would keep them as escapes outside the quotes).
local function gp_string(s)
  -- (one line per label: control characters become spaces first)
  return require("lacos.util").gnuplot_string((tostring(s):gsub("%c", " ")))
end
M.gp_string = gp_string

local TERMINALS = {
  png = { "pngcairo size 1400,620 font 'sans,11' noenhanced", "\137PNG\r\n\26\n" },
  svg = { "svg size 1400,620 font 'sans,11' noenhanced background '#ffffff'", "<svg" },
  pdf = { "pdfcairo size 11in,4.9in font 'sans,9' noenhanced linewidth 0.7", "%PDF" },
}
M.FORMATS = { "png", "svg", "pdf" }

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local tmp_counter = 0
-- Renders one figure: the gnuplot script (lines, no terminal or output)
-- run once per format, each written to a temporary name beside the target
-- (gnuplot's stdout), checked — gnuplot's exit status 0, a file that is not
-- empty and starts as the format does — and renamed into place. Returns
-- the paths.
local function render(script, base, formats)
  local files = {}
  for _, fmt in ipairs(formats) do
    local path = base .. "." .. fmt
    tmp_counter = tmp_counter + 1
    local tmp = ("%s.tmp-%d-%d"):format(path, math.floor(util.clock() * 1000) % 1000000, tmp_counter)
    local gp, err_path = tmp .. ".gp", tmp .. ".err"
    local f, ferr = io.open(gp, "wb")
    if not f then error(("%s: cannot write the figure's gnuplot script: %s"):format(path, ferr), 0) end
    f:write("set terminal ", TERMINALS[fmt][1], "\n", table.concat(script, "\n"), "\n")
    f:close()
    local ok, code = pcall(util.run, { "gnuplot", util.arg_path(gp) }, { stdout = tmp, stderr = err_path })
    local err = read_all(err_path) or ""
    os.remove(err_path)
    os.remove(gp)
    if not ok then
      os.remove(tmp)
      error(("%s: cannot run gnuplot (%s); install it (Debian: apt-get install gnuplot-nox)"):format(path, tostring(code)), 0)
    end
    local body = read_all(tmp) or ""
    local why
    if code ~= 0 then why = ("gnuplot exited with status %d"):format(code)
    elseif #body == 0 then why = "gnuplot wrote nothing"
    elseif not body:find(TERMINALS[fmt][2], 1, true) or (fmt ~= "svg" and body:sub(1, #TERMINALS[fmt][2]) ~= TERMINALS[fmt][2]) then
      why = "gnuplot's output is not a " .. fmt:upper() .. " file"
    end
    if why then
      os.remove(tmp)
      error(("%s: %s%s"):format(path, why, err ~= "" and (": " .. err:gsub("%s+$", "")) or ""), 0)
    end
    local renamed, rerr = os.rename(tmp, path)
    if not renamed then os.remove(tmp); error(("%s: %s"):format(path, tostring(rerr)), 0) end
    files[#files + 1] = path
  end
  return files
end
M._render = render

-- ---------------------------------------------------------------- figures

-- Honest y limits: everything drawn (error bars too) fits, the axis spans
-- at least 20 points (a difference of 0.1 stays small), on multiples of 5
-- within -100..100.
function M.y_range(values)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do if v < lo then lo = v end if v > hi then hi = v end end
  if lo > hi then return 0, 100 end
  if hi - lo < 20 then
    local mid = (lo + hi) / 2
    lo, hi = mid - 10, mid + 10
  end
  lo, hi = math.floor(lo / 5) * 5, math.ceil(hi / 5) * 5
  if lo < -100 then lo = -100 end
  if hi > 100 then hi = 100 end
  return lo, hi
end

local COLOURS = { "#1b6ca8", "#d1495b", "#2a9d55", "#e08e0b", "#7b4ea3", "#3b9ab2", "#8c564b", "#c2185b" }

-- The data a figure is drawn from, for a group: two figures, each with a
-- panel per family that has scores (English, multilingual), each panel
-- with its series (title, points { x, y, err, n, label }, baseline flag)
-- and the x ticks. Points are where a cell has that family's average; a
-- missing cell breaks its line.
function M.figure_data(data, g)
  local families = {}
  for _, f in ipairs { "en", "multi" } do if #g.family_tasks[f] > 0 then families[#families + 1] = f end end
  local plain, baselines = {}, {}
  for _, m in ipairs(g.models) do
    if m.baseline then baselines[#baselines + 1] = m elseif m.params and m.params > 0 then plain[#plain + 1] = m end
  end
  local function point(c, family, x)
    local st = c and c[family]
    if not st then return false end
    return { x = x, y = st.mean, err = st.std or 0, n = st.n }
  end
  -- against model size: a line per amount; a baseline is a horizontal line
  local vs_params = { name = "vs_params", xlabel = "model parameters (log scale)", log = true, panels = {}, xtics = {} }
  local lo, hi = math.huge, 0
  for _, m in ipairs(plain) do
    vs_params.xtics[#vs_params.xtics + 1] = { label = m.name, sub = util.params(m.params), x = m.params }
    lo, hi = math.min(lo, m.params), math.max(hi, m.params)
  end
  vs_params.xrange = #plain > 0 and { lo / 1.6, hi * 1.6 } or nil
  -- against data amount: 0 sits a quarter of the smallest amount to the left
  local smallest, largest
  for _, a in ipairs(g.amounts) do
    if a > 0 then smallest = smallest and math.min(smallest, a) or a; largest = largest and math.max(largest, a) or a end
  end
  local zero_x = (smallest or 400) / 4
  local function ax(a) return a == 0 and zero_x or a end
  local vs_data = { name = "vs_data", xlabel = "training pairs (log scale)", log = true, panels = {}, xtics = {} }
  for _, a in ipairs(g.amounts) do
    vs_data.xtics[#vs_data.xtics + 1] = { label = a == 0 and "0" or util.thousands(a),
                                          sub = a == 0 and "untrained" or (g.amount_labels[a]:match("^all") and "all" or nil), x = ax(a) }
  end
  vs_data.xrange = { zero_x / 1.6, (largest or zero_x) * 1.6 }
  for _, family in ipairs(families) do
    local title = ("%s (avg of %d)"):format(M.FAMILY_TITLE[family], #g.family_tasks[family])
    local p1 = { family = family, title = title, series = {} }
    for i, a in ipairs(g.amounts) do
      local s = { title = g.amount_labels[a] .. " pairs", colour = COLOURS[(i - 1) % #COLOURS + 1], points = {} }
      if a == 0 then s.title = "untrained" end
      local any = false
      for _, m in ipairs(plain) do
        local pt = point(g.cell[a] and g.cell[a][m.key], family, m.params)
        s.points[#s.points + 1] = pt
        if pt then any = true end
      end
      if any then p1.series[#p1.series + 1] = s end
      for _, b in ipairs(baselines) do
        local pt = point(g.cell[a] and g.cell[a][b.key], family, nil)
        if pt and vs_params.xrange then
          p1.series[#p1.series + 1] = { title = ("%s, %s"):format(b.label, a == 0 and "untrained" or (g.amount_labels[a] .. " pairs")),
                                        colour = s.colour, baseline = true,
                                        points = { { x = vs_params.xrange[1], y = pt.y, err = pt.err, n = pt.n },
                                                   { x = vs_params.xrange[2], y = pt.y, err = pt.err, n = pt.n } } }
        end
      end
    end
    vs_params.panels[#vs_params.panels + 1] = p1
    local p2 = { family = family, title = title, series = {} }
    for i, m in ipairs(g.models) do
      local s = { title = m.label, colour = m.baseline and "#000000" or COLOURS[(i - 1) % #COLOURS + 1],
                  baseline = m.baseline, points = {} }
      local any, count = false, 0
      for _, a in ipairs(g.amounts) do
        local pt = point(g.cell[a] and g.cell[a][m.key], family, ax(a))
        s.points[#s.points + 1] = pt
        if pt then any = true; count = count + 1 end
      end
      if m.baseline and count == 1 then   -- one amount: a horizontal line across the figure
        for _, pt in ipairs(s.points) do
          if pt then s.points = { { x = vs_data.xrange[1], y = pt.y, err = pt.err, n = pt.n }, { x = vs_data.xrange[2], y = pt.y, err = pt.err, n = pt.n } } break end
        end
      end
      if any then p2.series[#p2.series + 1] = s end
    end
    vs_data.panels[#vs_data.panels + 1] = p2
  end
  local ys = {}
  for _, fig in ipairs { vs_params, vs_data } do
    for _, p in ipairs(fig.panels) do
      for _, s in ipairs(p.series) do
        for _, pt in ipairs(s.points) do if pt then ys[#ys + 1] = pt.y - pt.err; ys[#ys + 1] = pt.y + pt.err end end
      end
    end
  end
  local ylo, yhi = M.y_range(ys)
  for _, fig in ipairs { vs_params, vs_data } do fig.yrange = { ylo, yhi } end
  local figs = {}
  if #plain > 0 and #families > 0 then figs[#figs + 1] = vs_params end
  if #g.amounts > 0 and #families > 0 then figs[#figs + 1] = vs_data end
  return figs
end

-- The caption of a group's figures: what was measured and how, in lines.
function M.caption(data, g)
  local lines = {}
  lines[1] = ("%s%s: cosine Spearman x100 on the %s."):format(data.experiment,
    data.synthetic and " (SYNTHETIC: random-weight models, not BLOOM's weights)" or "", table.concat(M.describe_conditions(g), ", "))
  local recipe = M.describe_recipe(g)
  lines[2] = ("Points: mean over %s%s.%s"):format(count_word(#g.seeds, "seed"), #g.seeds > 1 and ", error bars ± sample std" or "",
    recipe and (" Trained: " .. recipe .. ".") or "")
  return lines
end

-- Wraps text into lines of at most n characters.
local function wrap(text, n)
  local out, cur = {}, ""
  for word in text:gmatch("%S+") do
    if cur ~= "" and width(cur) + 1 + width(word) > n then out[#out + 1] = cur; cur = word
    else cur = cur == "" and word or (cur .. " " .. word) end
  end
  if cur ~= "" then out[#out + 1] = cur end
  return out
end

local function num(v) return ("%.10g"):format(v) end

-- The legend's layout: as many columns as its longest entry leaves room
-- for (gnuplot fits the key's columns to the first panel, about 85
-- characters of its font wide), the rows that makes, and the top of the
-- panels below it, so that neither a long entry (a baseline's label names
-- the model, its pooling and weights) nor a third row runs into the
-- panels' titles.
local LEGEND_TOP, LEGEND_ROW, LEGEND_CHARS = 0.905, 0.027, 85
function M.legend_layout(fig)
  local n, longest = 0, 0
  for _, series in ipairs(fig.panels[1] and fig.panels[1].series or {}) do
    n = n + 1
    longest = math.max(longest, width(series.title))
  end
  local cols = math.max(1, math.min(n, math.floor(LEGEND_CHARS / (longest + 8))))
  local rows = math.max(1, math.ceil(n / cols))
  return { cols = cols, rows = rows, top = math.min(0.80, LEGEND_TOP - rows * LEGEND_ROW - 0.075) }
end

-- The gnuplot script of one figure (without terminal).
local function figure_script(fig, caption, title)
  local s = {}
  local cap = {}
  for _, l in ipairs(caption) do for _, w in ipairs(wrap(l, 180)) do cap[#cap + 1] = w end end
  local bottom = 0.16 + 0.04 * #cap
  local legend = M.legend_layout(fig)
  s[#s + 1] = "set encoding utf8"
  s[#s + 1] = "NL = \"\\n\""
  s[#s + 1] = ("set multiplot layout 1,%d title %s font ',13' margins 0.06,0.98,%.3f,%.3f spacing 0.07,0.1"):format(
    #fig.panels, gp_string(title or ""), bottom, legend.top)
  for i, l in ipairs(cap) do
    s[#s + 1] = ("set label %d %s at screen 0.01, screen %.3f left font ',10'"):format(100 + i, gp_string(l), 0.015 + 0.04 * (#cap - i))
  end
  s[#s + 1] = "set grid ytics lc rgb '#dddddd'"
  s[#s + 1] = "set border 3"
  s[#s + 1] = "set tics nomirror"
  if fig.log then s[#s + 1] = "set logscale x" end
  if fig.xrange then s[#s + 1] = ("set xrange [%s:%s]"):format(num(fig.xrange[1]), num(fig.xrange[2])) end
  s[#s + 1] = ("set yrange [%s:%s]"):format(num(fig.yrange[1]), num(fig.yrange[2]))
  local tics = {}
  for _, t in ipairs(fig.xtics) do
    local label = t.label
    if width(label) > 16 then label = label:sub(1, 15):gsub("[\192-\255][\128-\191]*$", "") .. "…" end   -- the table has it whole
    tics[#tics + 1] = ("%s%s %s"):format(gp_string(label), t.sub and (".NL." .. gp_string(t.sub)) or "", num(t.x))
  end
  s[#s + 1] = ("set xtics (%s)"):format(table.concat(tics, ", "))
  s[#s + 1] = "set mxtics 1"
  s[#s + 1] = ("set xlabel %s offset 0,-0.6"):format(gp_string(fig.xlabel))
  s[#s + 1] = "set ylabel 'Spearman x100'"
  -- one legend for both panels (they draw the same series), above them, where it hides no point
  s[#s + 1] = ("set key at screen 0.5, screen %.3f center top horizontal maxcols %d samplen 2 font ',10' width 1"):format(
    LEGEND_TOP, legend.cols)
  for pi, panel in ipairs(fig.panels) do
    if pi == 2 then s[#s + 1] = "unset key" end
    s[#s + 1] = ("set title %s"):format(gp_string(panel.title))
    local plots = {}
    for si, series in ipairs(panel.series) do
      local name = ("$p%ds%d"):format(pi, si)
      local rows = {}
      for _, pt in ipairs(series.points) do
        if pt then rows[#rows + 1] = ("%s %s %s"):format(num(pt.x), num(pt.y), num(pt.err)) else rows[#rows + 1] = "" end
      end
      s[#s + 1] = ("%s << EOD\n%s\nEOD"):format(name, table.concat(rows, "\n"))
      local style = series.baseline and ("with lines dt 2 lw 2 lc rgb '%s'"):format(series.colour)
                    or ("with yerrorlines lw 2 pt 7 ps 0.8 lc rgb '%s'"):format(series.colour)
      plots[#plots + 1] = ("%s using 1:2%s %s title %s"):format(name, series.baseline and "" or ":3", style, gp_string(series.title))
    end
    if #plots == 0 then plots[1] = "NaN notitle" end
    s[#s + 1] = "plot " .. table.concat(plots, ", \\\n     ")
    if pi == 1 then s[#s + 1] = "unset label" end
  end
  s[#s + 1] = "unset multiplot"
  return s
end
M._figure_script = figure_script

-- The points of a figure as CSV (figure, panel, series, x, y, std, n).
local function figure_csv(fig)
  local lines = { "figure,panel,series,baseline,x,y,std,n" }
  local function q(v) v = tostring(v) if v:find('[",\r\n]') then return '"' .. v:gsub('"', '""') .. '"' end return v end
  for _, p in ipairs(fig.panels) do
    for _, s in ipairs(p.series) do
      for _, pt in ipairs(s.points) do
        if pt then
          lines[#lines + 1] = table.concat({ fig.name, q(p.family), q(s.title), s.baseline and "true" or "false", num(pt.x),
                                             num(pt.y), num(pt.err), tostring(pt.n or "") }, ",")
        end
      end
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Writes the figures of a group into dir: <stem>_vs_params.{png,svg,pdf}
-- and <stem>_vs_data.{...}, each with a .csv of the points drawn. Returns
-- the list of files.
function M.plot(data, dir, opts)
  opts = opts or {}
  if #data.groups == 0 then
    error("nothing to plot: experiment '" .. data.experiment .. "' has no finished runs with STS results", 0)
  end
  local g = data.groups[opts.group or 1]
  if not g then error(("no group %d: experiment '%s' has %d (lacos results scale lists them)"):format(opts.group, data.experiment, #data.groups), 0) end
  util.mkdir_p(dir)
  local stem = (opts.stem or data.experiment):gsub("[/%c]", "_")
  if opts.group and opts.group > 1 then stem = stem .. "_group" .. opts.group end
  local figs = M.figure_data(data, g)
  if #figs == 0 then error("nothing to plot: no run recorded a model size and an English or multilingual average", 0) end
  local caption = M.caption(data, g)
  local files = {}
  for _, fig in ipairs(figs) do
    local base = dir .. "/" .. stem .. "_" .. fig.name
    local title = ("%s: STS against %s"):format(data.experiment, fig.name == "vs_params" and "model size" or "training pairs")
    for _, f in ipairs(render(figure_script(fig, caption, title), base, opts.formats or M.FORMATS)) do files[#files + 1] = f end
    local csv = base .. ".csv"
    local f, err = io.open(csv .. ".tmp", "wb")
    if not f then error(("%s: %s"):format(csv, tostring(err)), 0) end
    f:write(figure_csv(fig))
    f:close()
    assert(os.rename(csv .. ".tmp", csv))
    files[#files + 1] = csv
  end
  return files
end

-- ---------------------------------------------------------------- training curves

-- The logged loss and learning rate per step of runs (ids): { runs = {
-- { id, name, experiment, points = { {step, loss, lr} }, nonfinite } } }.
function M.curves(db, ids)
  local out = { runs = {} }
  for _, id in ipairs(ids) do
    local r = db:query([[SELECT r.id, r.name, r.status, e.name AS experiment FROM runs r
                          LEFT JOIN experiments e ON e.id = r.experiment_id WHERE r.id = ?]], id)[1]
    local pts, nonfinite = {}, 0
    for row in db:each("SELECT step, loss, loss_nonfinite, lr FROM train_curves WHERE run_id = ? ORDER BY step", id) do
      if row.loss_nonfinite == 1 then nonfinite = nonfinite + 1 end
      pts[#pts + 1] = { step = row.step, loss = row.loss_nonfinite == 1 and (0 / 0) or row.loss, lr = row.lr }
    end
    out.runs[#out.runs + 1] = { id = r.id, name = r.name, status = r.status, experiment = r.experiment, points = pts, nonfinite = nonfinite }
  end
  return out
end

-- Writes the curves figure (loss above, learning rate below, a line per
-- run) as <base>.{png,svg,pdf} plus <base>.csv; returns the files.
function M.plot_curves(curves, base, opts)
  opts = opts or {}
  local s = { "set encoding utf8", "set multiplot layout 2,1 margins 0.08,0.74,0.10,0.93 spacing 0.06,0.08",
              "set grid lc rgb '#dddddd'", "set border 3", "set tics nomirror", "set key outside right top font ',10'" }
  local nonfinite, drawn = 0, 0
  for _, r in ipairs(curves.runs) do nonfinite = nonfinite + r.nonfinite end
  for pi, what in ipairs { { key = "loss", label = "training loss" }, { key = "lr", label = "learning rate" } } do
    s[#s + 1] = ("set title %s"):format(gp_string(pi == 1 and ("Training curves: " .. (opts.title or "")) or ""))
    s[#s + 1] = ("set ylabel %s"):format(gp_string(what.label))
    s[#s + 1] = pi == 2 and "set xlabel 'step'" or "unset xlabel"
    s[#s + 1] = pi == 2 and "set format y '%.1e'" or "set format y '%g'"
    if pi == 2 then s[#s + 1] = "unset key" end   -- the same runs: one legend
    local plots = {}
    for i, r in ipairs(curves.runs) do
      local rows = {}
      for _, p in ipairs(r.points) do
        local v = p[what.key]
        if type(v) == "number" and v == v then rows[#rows + 1] = ("%s %s"):format(num(p.step), num(v)); drawn = drawn + 1
        else rows[#rows + 1] = "" end   -- a non-finite or missing value breaks the line
      end
      local name = ("$c%dr%d"):format(pi, i)
      s[#s + 1] = ("%s << EOD\n%s\nEOD"):format(name, table.concat(rows, "\n"))
      plots[#plots + 1] = ("%s using 1:2 with lines lw 2 lc rgb '%s' title %s"):format(name, COLOURS[(i - 1) % #COLOURS + 1],
        gp_string(("run %d %s"):format(r.id, r.name or "")))
    end
    s[#s + 1] = "plot " .. table.concat(plots, ", \\\n     ")
  end
  s[#s + 1] = "unset multiplot"
  if drawn == 0 then error("nothing to draw: the runs logged no loss or learning rate (lacos results show RUN lists their metrics)", 0) end
  local files = render(s, base, opts.formats or M.FORMATS)
  local lines = { "run,step,loss,lr" }
  for _, r in ipairs(curves.runs) do
    for _, p in ipairs(r.points) do
      local function v(x) if x == nil then return "" end if x ~= x then return "NaN" end return num(x) end
      lines[#lines + 1] = ("%d,%s,%s,%s"):format(r.id, num(p.step), v(p.loss), v(p.lr))
    end
  end
  local f = assert(io.open(base .. ".csv.tmp", "wb"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  assert(os.rename(base .. ".csv.tmp", base .. ".csv"))
  files[#files + 1] = base .. ".csv"
  return files, nonfinite
end

-- ---------------------------------------------------------------- which sweep

-- experiments/scale.lua records the released checkpoints' sweep as "scale"
-- and the synthetic ladder's as "scale-synthetic".
M.SCALE_EXPERIMENTS = { "scale", "scale-synthetic" }

-- The experiment `lacos results scale` / `plot` show. A name given is used
-- as it is (an error, listing what there is, if no such experiment exists);
-- without one, the scale sweep with the newest run. Returns the name and a
-- note saying which one was chosen and why (nil when the name was given).
function M.resolve_experiment(db, name)
  if name then
    if not db:query("SELECT id FROM experiments WHERE name = ?", name)[1] then
      local names = {}
      for _, r in ipairs(db:query("SELECT name FROM experiments ORDER BY name")) do names[#names + 1] = require("lacos.util").printable(r.name) end
      error(("%s: no experiment '%s' (there %s: %s)"):format(db.path, name, #names == 1 and "is" or "are",
        #names > 0 and table.concat(names, ", ") or "none yet"), 0)
    end
    return name, nil
  end
  local rows = db:query([[SELECT e.name AS name, max(r.id) AS newest, count(r.id) AS runs
                            FROM experiments e JOIN runs r ON r.experiment_id = e.id
                           WHERE e.name IN (?, ?) GROUP BY e.name ORDER BY newest DESC]], unpack(M.SCALE_EXPERIMENTS))
  if #rows == 0 then
    error(("%s: no scale sweep yet (no runs of experiment 'scale' or 'scale-synthetic'): " ..
           "lacos run experiments/scale.lua runs one; lacos results list shows what there is"):format(db.path), 0)
  end
  local pick = rows[1]
  local what = pick.name == "scale-synthetic" and "the SYNTHETIC ladder (random-weight models, not BLOOM's weights)"
               or "the released BLOOM checkpoints"
  local other = rows[2] and ("; '%s' is there too (lacos results scale %s)"):format(rows[2].name, rows[2].name) or ""
  return pick.name, ("experiment '%s': %s, the scale sweep run last%s"):format(pick.name, what, other)
end

-- ---------------------------------------------------------------- MTEB

-- MTEB's STS tasks among what lacos evaluates, keyed by the dataset names
-- lacos records (the experiments' task names, `lacos sts`'s set ids).
local MTEB_TASK = {
  STS12 = "STS12", sts12 = "STS12", STS13 = "STS13", sts13 = "STS13", STS14 = "STS14", sts14 = "STS14",
  STS15 = "STS15", sts15 = "STS15", STS16 = "STS16", sts16 = "STS16",
  STSBenchmark = "STSBenchmark", stsb = "STSBenchmark", ["SICK-R"] = "SICK-R", sick = "SICK-R",
  STS17 = "STS17", sts17 = "STS17",
  ["stsb-multi-mt"] = "STSBenchmarkMultilingualSTS", STSBenchmarkMultilingualSTS = "STSBenchmarkMultilingualSTS",
}
-- The hf_subsets of MTEB's multilingual tasks (MTEB's task metadata).
local MTEB_SUBSETS = {
  STS17 = { "ko-ko", "ar-ar", "en-ar", "en-de", "en-en", "en-tr", "es-en", "es-es", "fr-en", "it-en", "nl-en" },
  STSBenchmarkMultilingualSTS = { "en", "de", "es", "fr", "it", "nl", "pl", "pt", "ru", "zh" },
}
-- ISO 639-1 codes as MTEB writes languages: ISO 639-3 and ISO 15924 script.
local MTEB_LANG = {
  en = "eng-Latn", de = "deu-Latn", es = "spa-Latn", fr = "fra-Latn", it = "ita-Latn", nl = "nld-Latn",
  pl = "pol-Latn", pt = "por-Latn", ru = "rus-Cyrl", zh = "cmn-Hans", ar = "ara-Arab", ko = "kor-Hang",
  tr = "tur-Latn", ja = "jpn-Jpan",
}
M.MTEB_LANG = MTEB_LANG

-- Seconds since 1970 of the database's UTC times (2026-12-04T18:51:15.292Z).
local function epoch(iso)
  local y, mo, d, h, mi, sec = tostring(iso):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d%.]+)")
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y, mo = y - 1, mo + 12 end   -- days from the civil date, March-based year
  local days = 365 * y + math.floor(y / 4) - math.floor(y / 100) + math.floor(y / 400) + math.floor((153 * (mo - 3) + 2) / 5)
               + tonumber(d) - 719469
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end
M._epoch = epoch

-- Where one sts_results row goes in MTEB's layout: task, split, hf_subset,
-- languages; or nil and why it has no place there.
local function mteb_place(row)
  local base, part = row.dataset:match("^(.-)/(.+)$")
  base = base or row.dataset
  local task = MTEB_TASK[base]
  if not task then return nil, "not one of MTEB's STS tasks" end
  if row.similarity and row.similarity ~= "cosine" then return nil, "similarity " .. row.similarity .. ", MTEB's main score is cosine" end
  local split = row.split
  if task == "STSBenchmark" and split == "dev" then split = "validation" end   -- MTEB's name for STSb's dev split
  local subsets = MTEB_SUBSETS[task]
  if not subsets then
    if part then return nil, "one part of " .. task .. ", which MTEB scores whole" end
    return { task = task, split = split, subset = "default", languages = { "eng-Latn" } }
  end
  local lang = part or row.language
  if not lang or lang == "all" then return nil, "the " .. task .. " subsets taken together, which MTEB does not score" end
  if task == "STS17" and not lang:find("-", 1, true) then lang = lang .. "-" .. lang end   -- monolingual tracks
  local known = false
  for _, s in ipairs(subsets) do if s == lang then known = true end end
  if not known then return nil, ("'%s' is not one of MTEB's %s subsets"):format(lang, task) end
  local languages = {}
  for code in lang:gmatch("[^-]+") do
    local l = MTEB_LANG[code] or code
    if languages[#languages] ~= l then languages[#languages + 1] = l end
  end
  return { task = task, split = split, subset = lang, languages = languages }
end

-- One run's final STS scores as MTEB result objects, one per task, in the
-- layout MTEB writes to <task_name>.json (mteb.TaskResult): dataset_revision,
-- task_name, mteb_version, scores = { split = { {main_score, hf_subset,
-- languages, ...} } }, evaluation_time, kg_co2_emissions, date. Honest about
-- what produced them: lacos computed cosine similarity only, so pearson and
-- spearman (MTEB's "the model's similarity") are the cosine ones and no
-- manhattan or euclidean scores are claimed; mteb_version is null (MTEB did
-- not run) and dataset_revision is the sha256 of the files lacos read, not
-- MTEB's Hugging Face revision. Each score also carries n_pairs (fewer than
-- the task has when the run evaluated a prefix) and dataset_sha256; rows
-- with no place in MTEB's tasks are listed under lacos.skipped.
function M.mteb(db, run_id)
  local run = db:run(run_id)
  if not run then error(("%s: no run '%s'"):format(db.path, tostring(run_id)), 0) end
  local rows = db:query([[SELECT * FROM sts_results WHERE run_id = ? AND step = -1 ORDER BY id]], run.id)
  if #rows == 0 then error(("%s: run %d has no final STS results to export"):format(db.path, run.id), 0) end
  local timing = {}
  for _, t in ipairs(run.timings) do
    local name = t.phase:match("^sts:(.+)$")
    if name and t.avg_ns then timing[name] = (timing[name] or 0) + t.avg_ns / 1e9 end
  end
  local tasks, order, skipped = {}, {}, {}
  local variants, aggregations = {}, {}
  for _, r in ipairs(rows) do
    local place, why = mteb_place(r)
    if not place then
      skipped[#skipped + 1] = { dataset = r.dataset, language = r.language or json.null, split = r.split, reason = why }
    else
      local t = tasks[place.task]
      if not t then
        t = { task_name = place.task, mteb_version = json.null, scores = {}, evaluation_time = json.null,
              kg_co2_emissions = json.null, date = epoch(run.ended_at) or json.null, digests = {}, entries = {} }
        tasks[place.task] = t
        order[#order + 1] = place.task
      end
      local base = r.dataset:match("^(.-)/") or r.dataset
      if timing[base] and t.evaluation_time == json.null then t.evaluation_time = timing[base] end
      local entry = {
        main_score = r.spearman, cosine_spearman = r.spearman, cosine_pearson = r.pearson,
        spearman = r.spearman, pearson = r.pearson,
        hf_subset = place.subset, languages = place.languages, n_pairs = r.n_pairs,
        dataset_sha256 = r.dataset_sha256 or json.null,
      }
      -- a later evaluation of the same subset replaces an earlier one
      local key = place.split .. "|" .. place.subset
      if t.entries[key] then
        local list = t.scores[place.split]
        for i, e in ipairs(list) do if e == t.entries[key] then list[i] = entry end end
      else
        t.scores[place.split] = t.scores[place.split] or {}
        table.insert(t.scores[place.split], entry)
      end
      t.entries[key] = entry
      if r.dataset_sha256 then t.digests[r.dataset_sha256] = true end
      variants[r.text_variant or "raw"] = true
      aggregations[r.aggregation or "all"] = true
    end
  end
  local out = {}
  for i, name in ipairs(order) do
    local t = tasks[name]
    local digests = {}
    for d in pairs(t.digests) do digests[#digests + 1] = d end
    t.dataset_revision = #digests == 1 and ("sha256:" .. digests[1])
                         or #digests == 0 and "unknown: lacos recorded no checksum of the data"
                         or "sha256 of each subset's files: see dataset_sha256 in scores"
    t.digests, t.entries = nil, nil
    out[i] = t
  end
  local function keys(set) local l = {} for k in pairs(set) do l[#l + 1] = k end table.sort(l) return l end
  return {
    run = run.uuid,
    lacos = {
      run_id = run.id, run_uuid = run.uuid, run_name = run.name or json.null, experiment = run.experiment or json.null,
      lacos_version = run.lacos_version or json.null, model = run.params.model or json.null,
      eval_limit = run.params.eval_limit or json.null, similarity = "cosine",
      text_variants = keys(variants), aggregations = keys(aggregations),
      note = "computed by lacos from its own copies of the datasets, not by MTEB; n_pairs says how many pairs were scored",
      skipped = skipped,
    },
    results = out,
  }
end

return M
