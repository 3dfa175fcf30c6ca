-- lacos.merge: folds database shards (the files a Slurm sweep's tasks write,
-- lua/lacos/slurm.lua) into the results database, shard by shard, each in
-- one transaction (lacos_db_merge_shard). Idempotent: a run already in the
-- database (by uuid) is not copied again. A shard that cannot be merged
-- (half-written, damaged, another schema version, another sweep's) is
-- reported and skipped; the others are merged.
--
--   local report = require("lacos.merge").merge({ "results/slurm/scale/shards" }, { db = "results/lacos.db" })
local util = require "lacos.util"
local json = require "lacos.json"

local M = {}

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

-- The shard files a path names: a file itself, or the *.db files of a folder.
local function shard_files(path)
  local kind = util.path_kind(path)
  if kind == "file" then return { path } end
  if kind ~= "directory" then error(("%s: no such file or folder"):format(path), 0) end
  local names, err = util.listdir(path)
  if not names then error(err, 0) end
  local out = {}
  for _, n in ipairs(names) do
    if n:match("%.db$") and util.path_kind(path .. "/" .. n) == "file" then out[#out + 1] = path .. "/" .. n end
  end
  return out
end

-- Every sweep folder's shards beside the database (<db folder>/slurm/*/shards),
-- each with the sweep name its jobs.json gives.
function M.default_sources(db_path)
  local root = dirname(db_path) .. "/slurm"
  local out = {}
  local names = util.is_dir(root) and util.listdir(root) or {}
  for _, n in ipairs(names) do
    local dir = root .. "/" .. n
    if util.is_dir(dir .. "/shards") then
      local name
      local f = io.open(dir .. "/jobs.json", "rb")
      if f then
        local ok, state = pcall(json.decode, f:read("*a"), dir .. "/jobs.json")
        f:close()
        if ok and type(state) == "table" then name = state.name end
      end
      out[#out + 1] = { path = dir .. "/shards", experiment = name }
    end
  end
  return out
end

-- Merges the shards named by paths (files or folders; default: every sweep's
-- beside the database) into opts.db. opts.experiment: refuse shards of any
-- other sweep. Prints a line per shard unless opts.quiet. Returns
-- { shards, merged, present, unfinished, refused = { { path, reason } }, db }.
function M.merge(paths, opts)
  opts = opts or {}
  local results = require "lacos.results"
  local db_path = util.abspath(opts.db or results.default_path())
  -- the database exists and has this lacos's schema before any shard goes in
  local db = results.open(db_path)
  db:close()
  local sources = {}
  if paths and #paths > 0 then
    for _, p in ipairs(paths) do sources[#sources + 1] = { path = p, experiment = opts.experiment } end
  else
    sources = M.default_sources(db_path)
    for _, s in ipairs(sources) do s.experiment = opts.experiment or s.experiment end
  end
  local out = opts.out or io.stderr
  local function say(fmt, ...) if not opts.quiet then out:write(fmt:format(...)) end end
  local rep = { shards = 0, merged = 0, present = 0, unfinished = 0, refused = {}, db = db_path }
  for _, src in ipairs(sources) do
    for _, file in ipairs(shard_files(src.path)) do
      rep.shards = rep.shards + 1
      local ok, r = pcall(results.merge_shard, db_path, file, src.experiment)
      if ok then
        rep.merged, rep.present, rep.unfinished = rep.merged + r.merged, rep.present + r.present, rep.unfinished + r.unfinished
        say("%s: %d run%s merged, %d there already%s\n", file, r.merged, r.merged == 1 and "" or "s", r.present,
            r.unfinished > 0 and (", %d still running (merged once finished)"):format(r.unfinished) or "")
      else
        rep.refused[#rep.refused + 1] = { path = file, reason = tostring(r) }
        say("skipped %s\n", tostring(r))
      end
    end
  end
  return rep
end

return M
