-- test_report: `lacos results scale`, `plot`, `curves` and `mteb` on a
-- results database filled through lacos.results with known numbers, so
-- every value printed or drawn can be checked against what was recorded:
-- which experiment they show, which runs they pool (only comparable ones),
-- seeds (distinct, mean ± std), the score scale, the recipe and the
-- conditions stated, baseline rows, the figures' data and files (checked,
-- renamed into place, no string reaching gnuplot unescaped) and MTEB's
-- result format. tests/lua/test_experiments.lua runs the same commands on
-- real runs.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local report = require "lacos.report"
local R = lacos.results

local dir = H.tmp .. "/report"
os.execute(("rm -rf %q && mkdir -p %q"):format(dir, dir))
local db_path = dir .. "/r.db"
local SHA = ("ab"):rep(32)

-- A finished run of a scale sweep: params as experiments/scale.lua records
-- them, one final STS row per { dataset, language, spearman, pearson }.
-- o: seed, eval_limit, baseline, recipe (a table of recipe params), metrics
-- ({ {step, loss, lr} }), text_variant, db (another database file).
local function add_run(experiment, model, amount, synthetic, scores, timings, o)
  o = o or {}
  local db = R.open(o.db or db_path)
  local seed = o.seed or 1
  local config = { model = model, pairs = amount, synthetic = synthetic, eval_limit = o.eval_limit or 300, baseline = o.baseline }
  for k, v in pairs(o.recipe or {}) do config[k] = v end
  local run = db:start_run { experiment = experiment, name = ("%s %s pairs=%d seed=%d"):format(experiment, model, amount, seed),
                             config = config, seed = seed, heartbeat = -1 }
  run:params { model = model, pairs = amount, synthetic = synthetic, n_pairs = amount,
               model_params = o.params or lacos.bloom.param_count(model), eval_limit = o.eval_limit or 300 }
  if o.baseline then run:params { baseline = true } end
  if amount > 0 then run:params(o.recipe or { lr = 0.005, r = 8, alpha = 16, targets = { "all" }, dropout = 0, epochs = 2,
                                              recipe = "not the paper's recipe: lr 0.005 (paper 0.0002)" }) end
  for _, s in ipairs(scores) do
    run:sts { dataset = s[1], language = s[2], split = s.split or "test", n = s.n or 300, spearman = s[3], pearson = s[4] or s[3],
              similarity = "cosine", pooling = "weightedmean", text_variant = o.text_variant or "raw", aggregation = "all",
              model = model, dataset_sha256 = SHA, quantisation = "int8" }
  end
  for phase, seconds in pairs(timings or {}) do run:timing { phase = phase, avg_ns = seconds * 1e9, n_items = 300 } end
  for _, m in ipairs(o.metrics or {}) do run:log(m[1], { loss = m[2], lr = m[3] }) end
  run:finish("done")
  local id = run.id
  db:close()
  return id
end

local SCORES = {
  { "STS12", "en", 0.25, 0.5 }, { "STSBenchmark", "en", 0.625, 0.75 },
  { "STS17", "en", 0.5, 0.375 }, { "STS17", "en-ar", 0.125, 0.0625 }, { "STS17", "en-es", 0.3, 0.2 },
  { "stsb-multi-mt", "de", 0.4375, 0.4 }, { "stsb-multi-mt", "ja", 0.2, 0.1 },
}
-- English and multilingual scores (two of each) shifted by d.
local function scores(d)
  return { { "STS12", "en", 0.25 + d }, { "STSBenchmark", "en", 0.625 + d }, { "STS17", "en-de", 0.5 + d }, { "stsb-multi-mt", "de", 0.3 + d } }
end

-- A string as one shell word (the test's own shell must not run what a name holds).
local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function lacos_results(args, db, env)
  return H.sh(("%s%q results %s --db %q"):format(env or "", H.lacos, args, db or db_path))
end

H.test("results scale without a scale sweep says how to make one", function()
  R.open(db_path):close()
  local rc, out, err = lacos_results("scale")
  H.eq(rc, 1, "exit status")
  H.eq(out, "")
  H.match(err, "no scale sweep yet %(no runs of experiment 'scale' or 'scale%-synthetic'%): lacos run experiments/scale.lua runs one")
end)

local synth_trained
H.test("results scale shows the synthetic sweep by default, and says so", function()
  add_run("scale-synthetic", "tiny-xs", 0, true, SCORES, { ["sts:STS12"] = 1.5 })
  synth_trained = add_run("scale-synthetic", "tiny-xs", 64, true, SCORES, { ["sts:STS12"] = 1.5, ["sts:STS17"] = 2.25 })
  local rc, out, err = lacos_results("scale")
  H.eq(rc, 0, err)
  H.match(err, "^lacos results: experiment 'scale%-synthetic': the SYNTHETIC ladder %(random%-weight models, not BLOOM's weights%), the scale sweep run last\n$")
  H.match(out, "^experiment 'scale%-synthetic': SYNTHETIC — random%-weight models, not BLOOM's weights, 2 done runs\n")
  H.match(out, "training pairs: 64\n")
  H.match(out, "\ntiny%-xs +2%.2M +1 +25%.00 +62%.50 +43%.75\n")   -- STS12, STSBenchmark and their average (x100)
  -- named explicitly: the same table, no note
  local rc2, out2, err2 = lacos_results("scale scale-synthetic")
  H.eq(rc2, 0); H.eq(out2, out); H.eq(err2, "")
  -- an experiment that does not exist is an error that lists those that do
  rc, out, err = lacos_results("scale scale")
  H.eq(rc, 1)
  H.match(err, "no experiment 'scale' %(there is: scale%-synthetic%)")
end)

H.test("results scale states the evaluation conditions, the recipe and the headline", function()
  local rc, out = lacos_results("scale scale-synthetic")
  H.eq(rc, 0)
  H.match(out, "\nevaluated: cosine Spearman x100 on the test splits of 2 English sets %+ 5 multilingual tracks; " ..
               "first 300 pairs of each; raw text; aggregation all; weightedmean pooling; int8 weights\n")
  H.match(out, "\ntrained: LoRA r 8, alpha 16 on all, dropout 0, lr 0%.005, 2 epochs; not the paper's recipe: lr 0%.005 %(paper 0%.0002%)\n")
  H.match(out, "'en avg' %(the mean over the English sets%) is the headline score")
  H.match(out, "model +params +n +STS17 en +STS17 en%-ar +STS17 en%-es +stsb%-multi%-mt de +stsb%-multi%-mt ja +multi avg\n")
end)

H.test("results scale picks the scale sweep with the newest run", function()
  add_run("scale", "tiny-s", 1000, false, SCORES)
  local rc, out, err = lacos_results("scale")
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale': the released BLOOM checkpoints, the scale sweep run last; 'scale%-synthetic' is there too %(lacos results scale scale%-synthetic%)")
  H.match(out, "^experiment 'scale': released checkpoints, 1 done run\n")
  add_run("scale-synthetic", "tiny-s", 128, true, SCORES)
  rc, out, err = lacos_results("scale")
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale%-synthetic': the SYNTHETIC ladder")
  H.match(out, "^experiment 'scale%-synthetic': SYNTHETIC — random%-weight models, not BLOOM's weights, 3 done runs")
  rc, out = lacos_results("scale scale")
  H.eq(rc, 0)
  H.match(out, "^experiment 'scale': released checkpoints, 1 done run\n")
end)

H.test("results scale --json: one document, the rows with the recorded values", function()
  local rc, out, err = lacos_results("scale --json")
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale%-synthetic'")   -- the note stays off stdout
  local doc = json.decode(out, "scale --json")
  H.eq(doc.experiment, "scale-synthetic")
  H.eq(doc.synthetic, true)
  H.eq(doc.done_runs, 3)
  H.match(doc.metric, "^cosine Spearman x100")
  H.eq(#doc.groups, 1)
  local g = doc.groups[1]
  H.eq(#g.rows, 3, "rows (pairs x model)")
  local row
  for _, r in ipairs(g.rows) do if r.pairs == 64 then row = r end end
  H.truthy(row, "the 64-pair row")
  H.eq(row.model, "tiny-xs")
  H.eq(row.params, lacos.bloom.param_count("tiny-xs"))
  H.eq(row.n, 1)
  H.near(row.scores.STS12.mean, 25, 1e-9); H.eq(row.scores.STS12.std, json.null); H.eq(row.scores.STS12.n, 1)
  H.near(row.scores.STSBenchmark.mean, 62.5, 1e-9)
  H.near(row.scores["STS17 en"].mean, 50, 1e-9); H.near(row.scores["STS17 en-ar"].mean, 12.5, 1e-9)
  H.near(row.scores["stsb-multi-mt de"].mean, 43.75, 1e-9)
  H.near(row.en_avg.mean, (25 + 62.5) / 2, 1e-9)
  H.near(row.multi_avg.mean, (50 + 12.5 + 30 + 43.75 + 20) / 5, 1e-9)
  H.eq(g.conditions.pairs_per_set, 300)
  H.eq(g.tasks[1].task, "STS12"); H.eq(g.tasks[1].family, "en")
  -- the CSV has a column per task and its std
  rc, out = lacos_results("scale --csv")
  H.eq(rc, 0)
  H.match(out, "^group,pairs,model,params,baseline,n,seeds,runs,STS12,STS12 std,STSBenchmark,STSBenchmark std,")
  H.match(out, "\n1,64,tiny%-xs,2197376,false,1,1,%d+,25,,62%.5,,50,,12%.5,,30,,43%.75,,20,,43%.75,,31%.25,\n")
end)

-- A separate database per scenario below: the numbers are chosen so every
-- mean and std can be written down.
H.test("runs evaluated under different conditions are never pooled; what differs is said", function()
  local db = dir .. "/limits.db"
  add_run("scale-synthetic", "tiny-xs", 0, true, scores(0), nil, { db = db, eval_limit = 100 })
  add_run("scale-synthetic", "tiny-xs", 0, true, scores(0.1), nil, { db = db, eval_limit = 50 })
  add_run("scale-synthetic", "tiny-s", 0, true, scores(0.2), nil, { db = db, eval_limit = 50 })
  local rc, out, err = lacos_results("scale scale-synthetic", db)
  H.eq(rc, 0, err)
  H.match(out, "\n2 groups of runs evaluated or trained differently, shown apart, never pooled; they differ in: pairs_per_set %(50 | 100%)\n")
  H.match(out, "== group 1 of 2 %(the newest runs%) ==\nevaluated: [^\n]*first 50 pairs of each")
  H.match(out, "== group 2 of 2 ==\nevaluated: [^\n]*first 100 pairs of each")
  -- tiny-xs at 0 pairs appears once per group with its own numbers, never averaged across them
  H.match(out, "group 1 of 2.-\ntiny%-xs +2%.2M +1 +35%.00 +72%.50 +53%.75\n.-group 2 of 2.-\ntiny%-xs +2%.2M +1 +25%.00 +62%.50 +43%.75\n")
  rc, out = lacos_results("scale scale-synthetic --group 2", db)
  H.eq(rc, 0)
  H.truthy(not out:find("tiny-s ", 1, true), "group 2 has no tiny-s run")
  H.truthy(out:find("== group 2 of 2 ==", 1, true) and not out:find("group 1 of 2", 1, true), "one group shown")
  rc, out = lacos_results("scale scale-synthetic --conditions", db)
  H.eq(rc, 0)
  H.match(out, "group 1: 2 runs, runs 2,3\n")
  H.match(out, "\n  %* pairs_per_set +50\n")
  H.match(out, "\n    text_variant +raw\n")
  rc, out, err = lacos_results("scale scale-synthetic --group 3", db)
  H.eq(rc, 1)
  H.match(err, "no group 3: experiment 'scale%-synthetic' has 2 groups of comparable runs")
  -- the text variant and the recipe separate runs too
  add_run("scale-synthetic", "tiny-xs", 0, true, scores(0), nil, { db = db, eval_limit = 50, text_variant = "senteval" })
  add_run("scale-synthetic", "tiny-xs", 10, true, scores(0), nil, { db = db, eval_limit = 50, recipe = { lr = 0.1 } })
  add_run("scale-synthetic", "tiny-xs", 10, true, scores(0), nil, { db = db, eval_limit = 50, recipe = { lr = 0.2 } })
  local data = report.collect(R.open(db, { readonly = true }), "scale-synthetic")
  H.eq(#data.groups, 4)
  local diffs = {}
  for _, d in ipairs(report.differences(data)) do diffs[d.key] = d.values end
  H.truthy(diffs.text_variant and diffs.pairs_per_set and diffs["recipe.lr"], "text variant, limit and lr differ")
  -- the untrained runs join both recipe groups evaluated like them
  local with_lr = 0
  for _, g in ipairs(data.groups) do
    if g.recipe then
      with_lr = with_lr + 1
      H.truthy(g.cell[0] and g.cell[0]["tiny-xs"], "untrained tiny-xs beside the lr " .. tostring(g.recipe.lr) .. " runs")
      H.eq(#g.amounts, 2)
    end
  end
  H.eq(with_lr, 2)
end)

H.test("seeds: distinct seeds count, a seed run twice counts once, mean ± std (n)", function()
  local db = dir .. "/seeds.db"
  add_run("scale-synthetic", "tiny-xs", 20, true, scores(0), nil, { db = db, seed = 1 })
  add_run("scale-synthetic", "tiny-xs", 20, true, scores(-0.5), nil, { db = db, seed = 2 })   -- replaced below
  add_run("scale-synthetic", "tiny-xs", 20, true, scores(0.1), nil, { db = db, seed = 2 })
  local R2 = R.open(db)
  -- the same seed again (a rerun with another config text): the newest of seed 2 counts
  local run = R2:start_run { experiment = "scale-synthetic", config = { again = true }, seed = 2, heartbeat = -1 }
  run:params { model = "tiny-xs", pairs = 20, n_pairs = 20, synthetic = true, model_params = lacos.bloom.param_count("tiny-xs"),
               eval_limit = 300, lr = 0.005, r = 8, alpha = 16, targets = { "all" }, dropout = 0, epochs = 2,
               recipe = "not the paper's recipe: lr 0.005 (paper 0.0002)" }
  for _, sc in ipairs(scores(0.1)) do
    run:sts { dataset = sc[1], language = sc[2], split = "test", n = 300, spearman = sc[3], pearson = sc[3], similarity = "cosine",
              pooling = "weightedmean", text_variant = "raw", aggregation = "all", dataset_sha256 = SHA, quantisation = "int8" }
  end
  run:finish("done")
  R2:close()
  local data = report.collect(R.open(db, { readonly = true }), "scale-synthetic")
  H.eq(#data.groups, 1)
  local g = data.groups[1]
  H.eq(g.repeated, 2, "two earlier runs of seed 2")
  local c = g.cell[20]["tiny-xs"]
  H.same(c.seeds, { 1, 2 })
  H.eq(c.scores.STS12.n, 2)
  H.near(c.scores.STS12.mean, 30, 1e-9)
  H.near(c.scores.STS12.std, math.sqrt(50), 1e-9)
  H.near(c.en.mean, (25 + 62.5 + 35 + 72.5) / 4, 1e-9)
  H.near(c.en.std, math.sqrt(50), 1e-9)
  -- the figure's error bar is that std, at the mean
  local en = report.figure_data(data, g)[1].panels[1]
  H.eq(en.series[1].title, "20 pairs")
  H.near(en.series[1].points[1].y, c.en.mean, 1e-9)
  H.near(en.series[1].points[1].err, math.sqrt(50), 1e-9)
  H.eq(en.series[1].points[1].n, 2)
  local rc, out = lacos_results("scale", db)
  H.eq(rc, 0)
  H.match(out, "\ntiny%-xs +2%.2M +2 +30%.00 ± 7%.07 +67%.50 ± 7%.07 +48%.75 ± 7%.07\n")
  H.match(out, "a cell is the mean ± sample std over its n seeds")
  H.match(out, "%(2 repeated runs of a seed already run: the newest run of each seed counts%)")
end)

H.test("baseline runs are rows and lines of their own", function()
  local db = dir .. "/baseline.db"
  add_run("scale-synthetic", "tiny-xs", 0, true, scores(0), nil, { db = db })
  add_run("scale-synthetic", "tiny-s", 0, true, scores(0.05), nil, { db = db })
  add_run("scale-synthetic", "tiny-xs", 40, true, scores(0.02), nil, { db = db })
  add_run("scale-synthetic", "tiny-m", 0, true, scores(0.2), nil, { db = db, baseline = true })
  local rc, out = lacos_results("scale", db)
  H.eq(rc, 0)
  H.match(out, "\ntiny%-m %(baseline%) +%d+%.%dM +1 +45%.00 +82%.50 +63%.75\n")
  local data = report.collect(R.open(db, { readonly = true }), "scale-synthetic")
  local g = data.groups[1]
  H.eq(#g.models, 3)
  H.eq(g.models[3].baseline, true, "the baseline comes last")
  local figs = report.figure_data(data, g)
  H.eq(#figs, 2)
  local vs_params, vs_data = figs[1], figs[2]
  H.eq(vs_params.name, "vs_params")
  -- x ticks: the sweep's models at their sizes, named; the baseline is not one of them
  H.eq(#vs_params.xtics, 2)
  H.eq(vs_params.xtics[1].label, "tiny-xs"); H.eq(vs_params.xtics[1].x, lacos.bloom.param_count("tiny-xs"))
  H.eq(vs_params.xtics[1].sub, "2.2M")
  local en = vs_params.panels[1]
  H.eq(en.family, "en"); H.eq(en.title, "English STS (avg of 2)")
  local titles = {}
  for _, s in ipairs(en.series) do titles[#titles + 1] = s.title end
  H.same(titles, { "untrained", "tiny-m (baseline), untrained", "40 pairs" })
  local base = en.series[2]
  H.eq(base.baseline, true)
  H.near(base.points[1].y, 63.75, 1e-9); H.near(base.points[2].y, 63.75, 1e-9)
  H.eq(base.points[1].x, vs_params.xrange[1]); H.eq(base.points[2].x, vs_params.xrange[2])
  -- a missing point breaks the line: tiny-s has no 40-pair run
  local trained = en.series[3]
  H.near(trained.points[1].y, (27 + 64.5) / 2, 1e-9)
  H.eq(trained.points[2], false)
  -- against data: a line per model (the baseline, with one amount, across the figure)
  local dt = {}
  for _, s in ipairs(vs_data.panels[2].series) do dt[s.title] = s end
  H.truthy(dt["tiny-m (baseline)"] and dt["tiny-m (baseline)"].baseline)
  H.eq(#dt["tiny-m (baseline)"].points, 2)
  H.near(dt["tiny-xs"].points[1].y, 40, 1e-9)                      -- multilingual average, untrained
  H.eq(dt["tiny-xs"].points[1].x, 10, "0 pairs sits at a quarter of the smallest amount")
  H.eq(vs_data.xtics[1].label, "0"); H.eq(vs_data.xtics[1].sub, "untrained")
  -- honest y axis: at least 20 points, on multiples of 5
  H.eq(vs_params.yrange[2] - vs_params.yrange[1] >= 20, true)
  H.eq(vs_params.yrange[1] % 5, 0)
  -- the legend (the baseline among its entries) sits above the panels: two columns of short entries in two rows
  local lay = report.legend_layout(vs_params)
  H.eq(lay.cols, 2); H.eq(lay.rows, 2)
  H.truthy(lay.top <= 0.905 - 2 * 0.027 - 0.07, "the panels start below the legend's two rows: " .. lay.top)
  -- a baseline labelled at length (all-MiniLM-L6-v2's, as experiments/scale.lua names it) takes a column to
  -- itself: three rows, and the panels move down below them, titles and all
  local long = { panels = { { series = { { title = "untrained" },
    { title = "all-MiniLM-L6-v2 (baseline, mean pooling, f32 weights), untrained", baseline = true }, { title = "200 pairs" } } } } }
  local lay3 = report.legend_layout(long)
  H.eq(lay3.cols, 1); H.eq(lay3.rows, 3)
  H.truthy(lay3.top < lay.top, "a third row moves the panels down")
  local script = table.concat(report._figure_script(vs_params, { "caption" }, "title"), "\n")
  H.match(script, "margins 0%.06,0%.98,[%d.]+," .. ("%.3f"):format(lay.top):gsub("%.", "%%."), "the panels' top margin")
  H.match(script, "horizontal maxcols 2 ", "the key's columns")
end)

H.test("y axes span at least 20 points and hold every error bar", function()
  local lo, hi = report.y_range { 47.5, 47.6 }
  H.eq(lo, 35); H.eq(hi, 60)
  lo, hi = report.y_range { -3, 91 }
  H.eq(lo, -5); H.eq(hi, 95)
  lo, hi = report.y_range { 99.9, 99.95 }
  H.eq(hi, 100)
end)

local PNG_MAGIC = "\137PNG\r\n\26\n"
local function check_figure(path)
  local body = H.read(path)
  H.truthy(body and #body > 0, path .. " is not empty")
  if path:match("%.png$") then H.eq(body:sub(1, 8), PNG_MAGIC, path) end
  if path:match("%.pdf$") then H.eq(body:sub(1, 4), "%PDF", path) end
  if path:match("%.svg$") then H.truthy(body:find("<svg", 1, true), path) end
  return body
end

H.test("results plot: both figures as PNG, SVG and PDF with the points as CSV", function()
  local plots = dir .. "/plots"
  local rc, out, err = lacos_results("plot --out " .. plots)
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale%-synthetic'")
  for _, fig in ipairs { "vs_params", "vs_data" } do
    for _, ext in ipairs { "png", "svg", "pdf", "csv" } do
      local f = ("%s/scale-synthetic_%s.%s"):format(plots, fig, ext)
      H.truthy(out:find(f .. "\n", 1, true), f .. " in the output: " .. out)
      if ext ~= "csv" then check_figure(f) end
    end
  end
  local svg = H.read(plots .. "/scale-synthetic_vs_params.svg")
  local words = {}
  for t in svg:gmatch("<text[^>]*>([^<]*)</text>") do words[#words + 1] = t end
  local caption = table.concat(words, " ")
  H.truthy(caption:find("first 300 pairs of each", 1, true) and caption:find("int8 weights", 1, true) and caption:find("SYNTHETIC", 1, true),
           "the caption states the evaluation conditions: " .. caption)
  H.truthy(svg:find("English STS (avg of 2)", 1, true) and svg:find("multilingual STS (avg of 5)", 1, true), "two panels")
  H.truthy(svg:find(">tiny-xs<", 1, true), "models named at their points")
  local csv = H.read(plots .. "/scale-synthetic_vs_params.csv")
  H.match(csv, "^figure,panel,series,baseline,x,y,std,n\n")
  H.match(csv, "\nvs_params,en,64 pairs,false,2197376,43%.75,0,1\n")
  -- no temporary file or script left behind
  for _, name in ipairs(require("lacos.util").listdir(plots)) do
    H.truthy(not name:find("tmp", 1, true) and not name:match("%.gp$"), "left behind: " .. name)
  end
end)

-- A stand-in gnuplot that misbehaves as told.
local function fake_gnuplot(behaviour)
  local bin = dir .. "/fakebin-" .. behaviour
  os.execute(("mkdir -p %q"):format(bin))
  local body = ({
    fail = "#!/bin/sh\necho 'line 7: unknown terminal' >&2\nexit 1\n",
    empty = "#!/bin/sh\nexit 0\n",
    junk = "#!/bin/sh\necho 'not an image'\nexit 0\n",
  })[behaviour]
  H.write(bin .. "/gnuplot", body)
  os.execute(("chmod +x %q"):format(bin .. "/gnuplot"))
  return ("PATH=%q:$PATH "):format(bin)
end

H.test("results plot never leaves an empty or broken figure: gnuplot's failures are errors", function()
  for _, b in ipairs { "fail", "empty", "junk" } do
    local plots = dir .. "/plots-" .. b
    local rc, out, err = lacos_results("plot --out " .. plots, nil, fake_gnuplot(b))
    H.eq(rc, 1, b .. ": exit status")
    H.eq(out, "", b)
    local why = ({ fail = "gnuplot exited with status 1: line 7: unknown terminal", empty = "gnuplot wrote nothing",
                   junk = "gnuplot's output is not a PNG file" })[b]
    H.truthy(err:find(plots .. "/scale-synthetic_vs_params.png: " .. why, 1, true), b .. ": " .. err)
    H.same(require("lacos.util").listdir(plots), {}, b .. ": nothing left in the directory")
  end
end)

H.test("no name from the database reaches gnuplot unescaped", function()
  local db = dir .. "/evil.db"
  local marker = dir .. "/pwned"
  local names = { ("x`touch %s-1`"):format(marker), ("y$(touch %s-2)"):format(marker), "it's \"quoted\" @macro \\n",
                  ("two\nlines`touch %s-3`"):format(marker) }
  local experiment = ("evil`touch %s-4`'$(touch %s-5)"):format(marker, marker)
  for i, name in ipairs(names) do
    add_run(experiment, name, 0, true, scores(i / 100), nil, { db = db, params = 1e6 * i })
    add_run(experiment, name, 8, true, scores(i / 50), nil, { db = db, params = 1e6 * i,
      metrics = { { 1, 2.0, 1e-3 }, { 2, 1.5, 5e-4 } }, recipe = { lr = 0.001, targets = "q'`touch " .. marker .. "-6`" } })
  end
  local rc, out, err = lacos_results(("plot %s --out %q"):format(shq(experiment), dir .. "/evil"), db)
  H.eq(rc, 0, err)
  rc, out, err = lacos_results(("curves --experiment %s --out %q"):format(shq(experiment), dir .. "/evil"), db)
  H.eq(rc, 0, err)
  for i = 1, 6 do H.truthy(not H.exists(marker .. "-" .. i), "a command in a name ran (" .. i .. ")") end
  -- the names are drawn as they are written (the newline as a space)
  local svg = H.read(dir .. "/evil/" .. experiment:gsub("/", "_") .. "_vs_data.svg")
  H.truthy(svg and svg:find("it&#39;s &quot;quoted&quot; @macro \\n", 1, true) or svg:find("it's \"quoted\" @macro \\n", 1, true),
           "the quoted name in the legend")
  H.truthy(svg:find("two lines`touch", 1, true), "the newline became a space")
  -- every user string is a single-quoted gnuplot literal: no double quote around one
  H.eq(report.gp_string("a'b`c`\nd"), "'a''b`c` d'")
end)

H.test("results curves: loss and learning rate per step, from the logged metrics", function()
  local db = dir .. "/curves.db"
  local a = add_run("scale-synthetic", "tiny-xs", 8, true, scores(0), nil,
                    { db = db, metrics = { { 1, 2.5, 1e-3 }, { 2, 0 / 0, 2e-3 }, { 3, 1.25, 1.5e-3 } } })
  local b = add_run("scale-synthetic", "tiny-s", 8, true, scores(0), nil, { db = db, metrics = { { 1, 3, 1e-3 }, { 2, 2, 5e-4 } } })
  local rc, out, err = lacos_results(("curves %d %d --csv"):format(a, b), db)
  H.eq(rc, 0, err)
  H.eq(out, ("run,step,loss,lr\n%d,1,2.5,0.001\n%d,2,NaN,0.002\n%d,3,1.25,0.0015\n%d,1,3,0.001\n%d,2,2,0.0005\n")
    :format(a, a, a, b, b))
  local out_dir = dir .. "/curves"
  rc, out, err = lacos_results(("curves %d %d --out %q"):format(a, b, out_dir), db)
  H.eq(rc, 0, err)
  for _, ext in ipairs { "png", "svg", "pdf" } do
    local f = ("%s/curves_run%d-%d.%s"):format(out_dir, a, b, ext)
    H.truthy(out:find(f, 1, true), f)
    check_figure(f)
  end
  H.match(err, "1 logged loss is not finite %(NaN or infinite%): left out of the figure")
  rc, out, err = lacos_results("curves --experiment scale-synthetic --csv", db)
  H.eq(rc, 0, err)
  H.eq(select(2, out:gsub("\n", "")), 6, "both runs of the sweep")
  rc, out, err = lacos_results("curves", db)
  H.eq(rc, 2)
  H.match(err, "curves needs runs")
  rc, out, err = lacos_results("curves 999", db)
  H.eq(rc, 1)
  H.match(err, "no run '999'")
end)

H.test("results list: the headline score x100 and what it averages; human durations", function()
  local db = dir .. "/seeds.db"
  local rc, out = lacos_results("list", db)
  H.eq(rc, 0)
  H.match(out, "^id +experiment +name +status +seed +model +score +score_of +started_at +duration\n")
  H.match(out, "\n *1 +scale%-synthetic .- 43%.75 +en avg of 2 .- %d+ ms\n")
  H.match(out, "score: cosine Spearman x100, the mean over the run's final test scores of the English sets")
  rc, out = lacos_results("list --json", db)
  local rows = json.decode(out)
  H.near(rows[1].score, 53.75, 1e-9); H.eq(rows[1].score_of, "en avg of 2")
  H.near(rows[1].multi_avg, 50, 1e-9); H.eq(rows[1].n_multi, 2)
  H.near(rows[1].sts_spearman, 0.4, 1e-9, "run_summary's columns stay as stored")
end)

H.test("results show: correlations x100, timings in human units", function()
  local rc, out = lacos_results("show " .. synth_trained)
  H.eq(rc, 0)
  H.match(out, "sts %(cosine correlations x100; step %-1 = final%)\n")
  H.match(out, "\nSTS12 +en +test +%-1 +300 +25%.00 +50%.00 ")
  H.match(out, "\nsts:STS17 +%-1 +%d +300 +2%.3 s\n")
  H.match(out, "\n  duration +%d+ ms\n")
end)

local function by_task(doc)
  local t = {}
  for _, r in ipairs(doc.results) do t[r.task_name] = r end
  return t
end
local function subset(task, split, name)
  for _, e in ipairs(task.scores[split] or {}) do if e.hf_subset == name then return e end end
end

H.test("results mteb RUN: MTEB's result format with the run's values", function()
  local report = require "lacos.report"
  H.eq(report._epoch("1970-01-01T00:00:00Z"), 0)
  H.eq(report._epoch("2000-03-01T00:00:00.500Z"), 951868800.5)
  local rc, out, err = lacos_results("mteb " .. synth_trained)
  H.eq(rc, 0, err)
  local doc = json.decode(out, "mteb")
  local db = R.open(db_path, { readonly = true })
  local run = db:run(synth_trained)
  db:close()
  H.eq(doc.run, run.uuid)
  H.eq(doc.lacos.run_id, synth_trained)
  H.eq(doc.lacos.model, "tiny-xs")
  H.eq(doc.lacos.eval_limit, 300)
  local tasks = by_task(doc)
  H.eq(#doc.results, 4, "tasks")
  for _, name in ipairs { "STS12", "STSBenchmark", "STS17", "STSBenchmarkMultilingualSTS" } do
    local t = tasks[name]
    H.truthy(t, name)
    H.eq(t.task_name, name)
    H.eq(t.mteb_version, json.null, name .. ": MTEB did not run")
    H.eq(t.dataset_revision, "sha256:" .. SHA, name)
    H.eq(t.kg_co2_emissions, json.null)
    H.near(t.date, report._epoch(run.ended_at), 1e-6, name .. " date")
    H.eq(#t.scores.test >= 1, true)
    for _, e in ipairs(t.scores.test) do
      H.eq(type(e.hf_subset), "string"); H.eq(type(e.languages), "table")
      H.eq(e.main_score, e.cosine_spearman, name .. ": the main score is cosine Spearman")
      H.eq(e.spearman, e.cosine_spearman); H.eq(e.pearson, e.cosine_pearson)
      H.eq(e.manhattan_spearman, nil, "no distances lacos did not compute")
      H.eq(e.n_pairs, 300)
      H.eq(e.dataset_sha256, SHA)
    end
  end
  local e = subset(tasks.STS12, "test", "default")
  H.eq(e.main_score, 0.25); H.eq(e.cosine_pearson, 0.5)
  H.same(e.languages, { "eng-Latn" })
  H.eq(tasks.STS12.evaluation_time, 1.5)
  H.eq(tasks.STSBenchmark.evaluation_time, json.null, "no timing recorded: null, not a guess")
  H.eq(tasks.STS17.evaluation_time, 2.25)
  e = subset(tasks.STS17, "test", "en-en")
  H.eq(e.main_score, 0.5); H.same(e.languages, { "eng-Latn" })
  e = subset(tasks.STS17, "test", "en-ar")
  H.eq(e.main_score, 0.125); H.eq(e.cosine_pearson, 0.0625); H.same(e.languages, { "eng-Latn", "ara-Arab" })
  H.eq(#tasks.STS17.scores.test, 2, "STS17 subsets (the WMT en-es track is not MTEB's)")
  e = subset(tasks.STSBenchmarkMultilingualSTS, "test", "de")
  H.eq(e.main_score, 0.4375); H.same(e.languages, { "deu-Latn" })
  H.eq(#tasks.STSBenchmarkMultilingualSTS.scores.test, 1, "stsb-multi-mt subsets (ja is not in MTEB's)")
  local skipped = {}
  for _, s in ipairs(doc.lacos.skipped) do skipped[s.dataset .. " " .. s.language] = s.reason end
  H.eq(skipped["STS17 en-es"], "'en-es' is not one of MTEB's STS17 subsets")
  H.eq(skipped["stsb-multi-mt ja"], "'ja' is not one of MTEB's STSBenchmarkMultilingualSTS subsets")
end)

H.test("results mteb RUN --out DIR: one <task>.json per task, as MTEB lays them out", function()
  local out_dir = dir .. "/mteb"
  local rc, out, err = lacos_results(("mteb %d --out %q"):format(synth_trained, out_dir))
  H.eq(rc, 0, err)
  local _, whole = lacos_results("mteb " .. synth_trained)
  local tasks = by_task(json.decode(whole))
  local files = 0
  for path in out:gmatch("[^\n]+") do
    local t = json.read(path)
    H.eq(path, out_dir .. "/" .. t.task_name .. ".json")
    H.eq(json.encode(t), json.encode(tasks[t.task_name]), path)
    files = files + 1
  end
  H.eq(files, 4)
end)

H.test("results mteb maps `lacos sts` set names and skips what MTEB does not score", function()
  local db = R.open(db_path)
  local run = db:start_run { name = "sts models/x", config = { sets = "stsb:test,sts17:test,sts12:test" } }
  local function sts(dataset, language, sp, split)
    run:sts { dataset = dataset, language = language, split = split or "test", n = 100, spearman = sp, pearson = sp / 2,
              similarity = "cosine", aggregation = "all", text_variant = "raw" }
  end
  sts("stsb", "all", 0.8); sts("stsb", "all", 0.7, "dev")
  sts("sts17", "all", 0.6); sts("sts17/ar-ar", "ar", 0.55); sts("sts17/en-es-wmt", "en-es", 0.1)
  sts("sts12", "all", 0.4); sts("sts12/MSRpar", "en", 0.3)
  sts("my-pairs.tsv", "all", 0.9)
  run:timing { phase = "sts:stsb", avg_ns = 4e9 }
  run:finish("done")
  local id = run.id
  local empty = db:start_run { name = "no sts" }
  empty:finish("done")
  local empty_id = empty.id
  db:close()
  local rc, out, err = lacos_results("mteb " .. id)
  H.eq(rc, 0, err)
  local doc = json.decode(out)
  local tasks = by_task(doc)
  H.eq(subset(tasks.STSBenchmark, "test", "default").main_score, 0.8)
  H.eq(subset(tasks.STSBenchmark, "validation", "default").main_score, 0.7, "STSb's dev split is MTEB's validation")
  H.eq(tasks.STSBenchmark.evaluation_time, 4)
  H.eq(subset(tasks.STS17, "test", "ar-ar").main_score, 0.55)
  H.eq(#tasks.STS17.scores.test, 1)
  H.eq(subset(tasks.STS12, "test", "default").main_score, 0.4, "the whole set, not its MSRpar part")
  H.eq(tasks.STS12.dataset_revision, "unknown: lacos recorded no checksum of the data")
  local reasons = {}
  for _, s in ipairs(doc.lacos.skipped) do reasons[s.dataset] = s.reason end
  H.eq(reasons["sts17"], "the STS17 subsets taken together, which MTEB does not score")
  H.eq(reasons["sts17/en-es-wmt"], "'en-es-wmt' is not one of MTEB's STS17 subsets")
  H.eq(reasons["sts12/MSRpar"], "one part of STS12, which MTEB scores whole")
  H.eq(reasons["my-pairs.tsv"], "not one of MTEB's STS tasks")
  rc, out, err = lacos_results("mteb " .. empty_id)
  H.eq(rc, 1)
  H.match(err, "run " .. empty_id .. " has no final STS results to export")
  rc, out, err = lacos_results("mteb 999")
  H.eq(rc, 1)
  H.match(err, "no run '999'")
end)

H.done()
