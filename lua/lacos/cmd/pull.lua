-- lacos pull: a checkpoint from the Hugging Face hub into models/ (BLOOM's,
-- and sentence-transformers directories such as all-MiniLM-L6-v2's).
-- The hub's file list (api/models/REPO/tree/REVISION) gives each file's size
-- and hash: SHA-256 for LFS files (the weights), git's blob SHA-1 for the
-- small ones. Every file is downloaded resumably (a .part file continued with
-- a Range request) and checked before it is moved into place; files already
-- present and correct are kept. A repository with a modules.json is a
-- sentence-transformers directory: modules.json is fetched first, and the
-- folders it names (1_Pooling/ ...) are listed (tree/REVISION/FOLDER) and
-- their configuration and safetensors files fetched too.
local M = {}

M.spec = {
  name = "pull",
  usage = "lacos pull REPO [--revision REV] [--out DIR] [--endpoint URL]",
  summary = "Download a checkpoint (safetensors weights, config, tokenizer) from the Hugging Face hub.",
  description = "REPO is e.g. bigscience/bloom-560m. Files go to models/<name> unless --out says otherwise. The endpoint\n" ..
                "is $HF_ENDPOINT or https://huggingface.co. Only what lacos reads is fetched: config.json,\n" ..
                "tokenizer.json (and its small companions) and the safetensors weights with their index; for a\n" ..
                "sentence-transformers repository also modules.json, sentence_bert_config.json and the folders of its\n" ..
                "modules (1_Pooling/config.json, ...). Interrupted downloads resume; a file whose size or hash differs\n" ..
                "from what the hub reports is refused and removed.",
  options = {
    { "--revision", "REV", "branch, tag or commit", default = "main" },
    { "--out", "DIR", "target directory (default models/<name>)" },
    { "--endpoint", "URL", "hub address (default $HF_ENDPOINT or https://huggingface.co)" },
  },
  positional = { min = 1, max = 1, names = "REPO" },
  examples = { "lacos pull bigscience/bloom-560m", "lacos pull bigscience/bloom-7b1 --out /data/models/bloom-7b1",
               "lacos pull sentence-transformers/all-MiniLM-L6-v2" },
}

local WANTED = {
  ["config.json"] = true, ["tokenizer.json"] = true, ["tokenizer_config.json"] = true,
  ["special_tokens_map.json"] = true, ["model.safetensors.index.json"] = true,
  -- sentence-transformers (the module list, the Transformer module's settings
  -- under each name sentence-transformers has used, the version record)
  ["modules.json"] = true, ["config_sentence_transformers.json"] = true, ["sentence_bert_config.json"] = true,
  ["sentence_roberta_config.json"] = true, ["sentence_distilbert_config.json"] = true,
  ["sentence_camembert_config.json"] = true, ["sentence_albert_config.json"] = true,
  ["sentence_xlm-roberta_config.json"] = true, ["sentence_xlnet_config.json"] = true,
}

local function exists(p) return require("lacos.util").exists(p) end

function M.run(opts)
  local lacos = require "lacos"
  local json = require "lacos.json"
  local E = lacos.engine
  local ffi, C = E.ffi, E.C
  local repo = opts._[1]
  if not repo:match("^[%w._-]+/[%w._-]+$") then error(("'%s' is not a hub repository name (owner/name)"):format(repo), 0) end
  local endpoint = (opts.endpoint or os.getenv("HF_ENDPOINT") or "https://huggingface.co"):gsub("/+$", "")
  local out = opts.out or ("models/" .. repo:match("/(.+)$"))
  local o = ffi.new("lacos_download_options")
  C.lacos_download_options_init(o)
  -- A file list (the repository's root, or one folder) through a temporary
  -- file: the target directory is only created once the hub has answered
  -- with something to fetch, so a wrong name or an unreachable hub leaves
  -- nothing behind.
  local function list(folder)
    local listing = os.tmpname()
    os.remove(listing)
    listing = listing .. "-lacos-tree.json"
    local api = ("%s/api/models/%s/tree/%s%s"):format(endpoint, repo, opts.revision, folder and ("/" .. folder) or "")
    local got, err = pcall(E.check, C.lacos_download(api, listing, -1, nil, o, nil, nil))
    if not got then os.remove(listing); os.remove(listing .. ".part"); error(err, 0) end
    local read_ok, tree = pcall(json.read, listing)
    os.remove(listing)
    if not read_ok then error(("%s: the answer is not JSON (%s)"):format(api, tostring(tree):gsub("^[^:]*: ", "")), 0) end
    if type(tree) ~= "table" then error(api .. ": unexpected answer (not a list of files)", 0) end
    return tree
  end
  local tree = list(nil)
  local files, has_weights, dirs, modules_entry = {}, false, {}, nil
  for _, e in ipairs(tree) do
    if type(e) == "table" and e.type == "file" and type(e.path) == "string" then
      local want = WANTED[e.path] or e.path:match("^model[%w%-]*%.safetensors$")
      if want and not e.path:find("/", 1, true) then
        if e.path == "modules.json" then modules_entry = e   -- fetched first, below
        else files[#files + 1] = e end
        if e.path:match("%.safetensors$") then has_weights = true end
      end
    elseif type(e) == "table" and e.type == "directory" and type(e.path) == "string" then
      dirs[e.path] = true
    end
  end
  if not has_weights then
    error(("%s@%s has no safetensors weights (lacos reads model.safetensors or model-*-of-*.safetensors)"):format(repo, opts.revision), 0)
  end
  require("lacos.util").mkdir_p(out)
  local sha = ffi.new("char[65]")
  local sha1 = ffi.new("char[41]")
  local function fetch(f)
    local dest = out .. "/" .. f.path
    local url = ("%s/%s/resolve/%s/%s"):format(endpoint, repo, opts.revision, f.path)
    local lfs = type(f.lfs) == "table" and f.lfs or nil
    local want_sha256 = lfs and lfs.oid or nil
    local function ok_already()
      if not exists(dest) then return false end
      local size = require("lacos.data").file_size(dest)
      if size ~= f.size then return false end
      if want_sha256 then
        E.check(C.lacos_sha256_file(dest, sha))
        return ffi.string(sha) == want_sha256
      end
      E.check(C.lacos_git_blob_sha1_file(dest, sha1))
      return ffi.string(sha1) == f.oid
    end
    if ok_already() then
      io.stderr:write(("  %-40s present, verified\n"):format(f.path))
    else
      E.check(C.lacos_download(url, dest, f.size, want_sha256, o, nil, nil))
      if not want_sha256 then
        E.check(C.lacos_git_blob_sha1_file(dest, sha1))
        if f.oid and ffi.string(sha1) ~= f.oid then
          os.remove(dest)
          error(("%s: git blob id %s differs from the hub's %s (removed)"):format(dest, ffi.string(sha1), f.oid), 0)
        end
      end
      io.stderr:write(("  %-40s %s, verified\n"):format(f.path, require("lacos.util").bytes(f.size)))
    end
  end
  -- A sentence-transformers repository: its modules.json names the folders
  -- of the modules (the Pooling module's 1_Pooling, ...); their settings and
  -- weights come along. Folders the hub does not have (a Normalize module
  -- has no files) are skipped, as sentence-transformers does.
  if modules_entry then
    fetch(modules_entry)
    local ok_m, modules = pcall(json.read, out .. "/modules.json")
    if not ok_m then error(tostring(modules), 0) end
    if type(modules) ~= "table" then error(out .. "/modules.json: not a list of modules", 0) end
    for i, m in ipairs(modules) do
      local p = type(m) == "table" and m.path
      if type(p) == "string" and p ~= "" then
        if p:find("%.%.") or p:sub(1, 1) == "/" or not p:match("^[%w._/-]+$") then
          error(("%s/modules.json: module %d has the path '%s', which is not a folder of the repository"):format(out, i, p), 0)
        end
        if dirs[p] then
          for _, e in ipairs(list(p)) do
            if type(e) == "table" and e.type == "file" and type(e.path) == "string" and
               e.path:sub(1, #p + 1) == p .. "/" and not e.path:find("/", #p + 2, true) and
               (e.path:match("%.json$") or e.path:match("%.safetensors$")) then
              files[#files + 1] = e
            end
          end
          local made_sub = os.execute(("mkdir -p %q 2>/dev/null"):format(out .. "/" .. p))
          if made_sub ~= 0 and made_sub ~= true then error(("%s/%s: cannot create the directory"):format(out, p), 0) end
        end
      end
    end
  end
  table.sort(files, function(a, b) return a.size < b.size end)
  local total = modules_entry and modules_entry.size or 0
  for _, f in ipairs(files) do total = total + f.size end
  io.stderr:write(("lacos pull: %s@%s, %d files, %s, into %s\n"):format(repo, opts.revision,
    #files + (modules_entry and 1 or 0), require("lacos.util").bytes(total), out))
  for _, f in ipairs(files) do fetch(f) end
  json.write(out .. "/lacos.json", { source = repo, revision = opts.revision, endpoint = endpoint,
                                     pulled_by = "lacos " .. lacos.version(), padding_side = "right" })
  io.stderr:write(("lacos pull: done; use it with --model %s\n"):format(out))
  return 0
end

return M
