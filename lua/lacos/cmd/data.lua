-- lacos data: list, show and download datasets (lua/lacos/data.lua does the work).
local data = require "lacos.data"
local json = require "lacos.json"
local args = require "lacos.args"

local spec = {
  name = "data",
  usage = "lacos data list|show NAME|pull NAME [options]",
  summary = "List the datasets of the registry, show one, or download one with a sha256 check.",
  description = table.concat({
    "  list        every registry set: present / partial / missing / corrupt under the data root",
    "  show NAME   one set: files and their state, splits, languages, licence, download addresses",
    "  pull NAME   download NAME from its registry address(es), verify, unpack, install",
    "",
    "The data root is --data DIR, else $LACOS_DATA, else the datasets/ folder of lacos.",
    "Your own sets go in <data root>/registry.local.json (same schema as datasets/registry.json).",
    "LACOS_DATA_MIRROR=URL fetches every file from a mirror that serves a data root's layout:",
    "URL/sts/stsb/sts-test.csv for the root's sts/stsb/sts-test.csv (e.g. python3 -m http.server",
    "in a copy of a data root), each checked against the registry's size and sha256.",
  }, "\n"),
  options = {
    { "--data", "DIR", "data root" },
    { "--verify", nil, "list/show: also check every file's sha256 (slower)" },
    { "--json", nil, "list/show: print JSON instead of a table" },
    { "--url", "URL", "pull: fetch from URL instead of the registry address (sets with one download)" },
    { "--sha256", "HEX", "pull: expected sha256 of the download where the registry has none" },
    { "--no-verify", nil, "pull: accept a download no sha256 can check (its hash is printed and recorded)" },
    { "--force", nil, "pull: download again even when the files are present" },
  },
  positional = { min = 1, max = 2, names = "SUBCOMMAND [NAME]" },
  examples = {
    "lacos data list",
    "lacos data list --data ../shared/datasets --verify",
    "lacos data show sts17",
    "lacos data pull stsb",
    "lacos data pull allnli --no-verify",
  },
}

local function short(s, n)
  s = tostring(s or "")
  if #s <= n then return s end
  return s:sub(1, n - 3) .. "..."
end

local function langs_text(set)
  local l = set.languages or {}
  if #l > 6 then return #l .. " languages" end
  return table.concat(l, " ")
end

local function pairs_text(set)
  local parts = {}
  for _, c in ipairs(data.pair_counts(set)) do
    if c.pairs then parts[#parts + 1] = ("%s %d%s"):format(c.split, c.pairs, c.reported and "*" or "") end
  end
  return table.concat(parts, ", ")
end

local function list(opts, root)
  local reg = data.registry(root)
  local rows, corrupt = {}, 0
  for _, s in ipairs(reg.sets) do
    local st = data.status(s, { data = root, verify = opts.verify })
    if st.state == "corrupt" then corrupt = corrupt + 1 end
    rows[#rows + 1] = { set = s, st = st }
  end
  if opts.json then
    local out = { root = root, registry = reg.files, sets = {} }
    for _, r in ipairs(rows) do
      out.sets[#out.sets + 1] = { id = r.set.id, kind = r.set.kind, state = r.st.state, files_present = r.st.present,
                                  files = r.st.total, languages = r.set.languages, licence = r.set.licence,
                                  pairs = data.pair_counts(r.set), origin = r.set.origin,
                                  bad_hash = opts.verify and r.st.bad_hash or nil }
    end
    io.write(json.encode(out, { indent = 2 }), "\n")
  else
    print(("data root: %s"):format(root))
    local fmt = "%-15s %-6s %-8s %-7s %-40s %-14s %s"
    print(fmt:format("NAME", "KIND", "STATUS", "FILES", "PAIRS", "LANGUAGES", "LICENCE"))
    for _, r in ipairs(rows) do
      local s = r.set
      print(fmt:format(s.id .. (s.origin == "local" and "+" or ""), s.kind, r.st.state, ("%d/%d"):format(r.st.present, r.st.total),
        short(pairs_text(s), 40), short(langs_text(s), 14), short(s.licence, 40)))
    end
    print("* = count reported upstream, not checked here; + = from registry.local.json")
    if opts.verify then print(corrupt == 0 and "every present file matches its sha256" or (corrupt .. " set(s) corrupt: see lacos data show NAME --verify")) end
  end
  return corrupt > 0 and 1 or 0
end

local function show(name, opts, root)
  local set = data.find(name, root)
  local st = data.status(set, { data = root, verify = opts.verify })
  if opts.json then
    io.write(json.encode({ set = set, status = st, root = root }, { indent = 2 }), "\n")
    return st.state == "corrupt" and 1 or 0
  end
  local bad = {}
  for _, p in ipairs(st.missing) do bad[p] = "missing" end
  for _, p in ipairs(st.wrong_size) do bad[p] = "wrong size" end
  for _, p in ipairs(st.bad_hash) do bad[p] = "SHA256 MISMATCH" end
  print(("%s: %s"):format(set.id, set.title or ""))
  print(("  kind %s, status %s (%d of %d files) under %s"):format(set.kind, st.state, st.present, st.total, root))
  print(("  languages: %s"):format(table.concat(set.languages or {}, " ")))
  print(("  licence: %s"):format(set.licence or "?"))
  if set.homepage then print(("  homepage: %s"):format(set.homepage)) end
  print(("  reader: %s; registry: %s"):format(set.format.reader, set.registry))
  print("  splits:")
  local names = {}
  for k in pairs(set.splits) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local sp = set.splits[k]
    local subs = {}
    for _, u in ipairs(sp.subsets) do
      local l = u.lang1 and u.lang1 ~= json.null and (u.lang1 ~= (u.lang2 or u.lang1) and (" " .. u.lang1 .. "/" .. u.lang2) or "") or ""
      subs[#subs + 1] = u.name .. l .. (u.filter and (" [" .. tostring(u.split or "split") .. "=" .. u.filter .. "]") or "")
    end
    local count = sp.pairs or sp.pairs_reported
    print(("    %-14s %s pairs%s%s: %s"):format(k, tostring(count), sp.pairs == nil and " (reported upstream)" or "",
      k == set.default_split and " (default)" or "", short(table.concat(subs, ", "), 300)))
  end
  print("  files:")
  for _, f in ipairs(set.files) do
    local state = bad[f.path] or (opts.verify and (f.sha256 ~= json.null and "sha256 ok" or "present (no sha256 known)") or "present")
    print(("    %-60s %10s  %s"):format(f.path, f.bytes ~= json.null and tostring(f.bytes) or "?", state))
  end
  print("  download:")
  for _, d in ipairs(set.download) do
    local what = d.archive and d.archive ~= json.null and (d.archive .. " archive") or "file"
    local h = (d.sha256 and d.sha256 ~= json.null) and ("sha256 " .. d.sha256)
      or (d.archive and d.archive ~= json.null and "members checked against the file table" or nil)
    if not h then
      local f
      for _, x in ipairs(set.files) do if x.path == d.path then f = x end end
      h = f and f.sha256 ~= json.null and "sha256 from the file table" or "no sha256 published"
    end
    print(("    %s (%s; %s)"):format(d.url, what, h))
  end
  for _, n in ipairs(set.notes or {}) do print("  note: " .. n) end
  local rec = data.root(root) .. "/.lacos/pulled/" .. set.id .. ".json"
  if data.file_size(rec) then print("  pulled: see " .. rec) end
  return st.state == "corrupt" and 1 or 0
end

local function pull(name, opts, root)
  local rec = data.pull(name, { data = root, url = opts.url, sha256 = opts.sha256, no_verify = opts.no_verify,
                                force = opts.force })
  for _, s in ipairs(rec.sources) do
    if s.skipped then print(("%s: %s (%s)"):format(name, s.skipped, s.url))
    else print(("%s: fetched %s: %d bytes, sha256 %s, verified by %s"):format(name, s.url, s.bytes, s.sha256, s.verified)) end
  end
  print(("%s: %s under %s"):format(name, rec.state, rec.root))
  return rec.state == "present" and 0 or 1
end

local function run(opts)
  local sub, name = opts._[1], opts._[2]
  local root = data.root(opts.data)
  if opts.data then data.set_root(opts.data) end
  local for_pull = { url = true, sha256 = true, no_verify = true, force = true }
  for k in pairs(for_pull) do
    if opts[k] and sub ~= "pull" then args.usage_error("data", "--%s is an option of 'pull'", (k:gsub("_", "-"))) end
  end
  if (opts.verify or opts.json) and sub == "pull" then args.usage_error("data", "--verify and --json are options of list and show") end
  if sub == "list" then
    if name then args.usage_error("data", "list takes no NAME") end
    return list(opts, root)
  elseif sub == "show" or sub == "pull" then
    if not name then args.usage_error("data", "%s needs a dataset NAME (see lacos data list)", sub) end
    if sub == "show" then return show(name, opts, root) end
    return pull(name, opts, root)
  end
  local guess = args.suggest(tostring(sub), { "list", "show", "pull" })
  args.usage_error("data", "unknown subcommand '%s'%s (list, show, pull)", tostring(sub),
    guess and (" — did you mean '%s'?"):format(guess) or "")
end

return { spec = spec, run = run }
