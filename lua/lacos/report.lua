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
  require("lacos.util").mkdir_p(dir)
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
  -- names from the database reach gnuplot only as literals it does not
  -- expand (util.gnuplot_string) and file names only as one component
  local util = require "lacos.util"
  local G = util.gnuplot_string
  local function render(name, xlabel, blocks, titles, extra)
    for _, term in ipairs { { "pngcairo size 900,600", "png" }, { "svg size 900,600", "svg" } } do
      local path = ("%s/%s_%s.%s"):format(dir, util.file_name(data.experiment), name, term[2])
      local script = { ("set terminal %s"):format(term[1]), ("set output %s"):format(G(path)),
                       ("set title %s"):format(G("Average STS Spearman x100, " .. data.experiment .. note)),
                       ("set xlabel %s"):format(G(xlabel)), "set ylabel \"Spearman x100\"", "set logscale x", "set grid",
                       "set key outside right", extra or "" }
      local plots = {}
      for i, b in ipairs(blocks) do
        script[#script + 1] = ("$d%d << EOD\n%s\nEOD"):format(i, b)
        plots[#plots + 1] = ("$d%d with linespoints lw 2 title %s"):format(i, G(titles[i]))
      end
      script[#script + 1] = "plot " .. table.concat(plots, ", ")
      local gp = path .. ".gp"
      util.write_file(gp, table.concat(script, "\n") .. "\n")
      local code = util.run({ "gnuplot", util.arg_path(gp) }, { stderr = gp .. ".err" })
      local ok = code == 0
      local ef = io.open(gp .. ".err")
      local err = ef and ef:read("*a") or ""
      if ef then ef:close() end
      os.remove(gp .. ".err")
      os.remove(gp)
      if not ok then error("gnuplot failed for " .. path .. ": " .. err, 0) end
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
