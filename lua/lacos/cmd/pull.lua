-- lacos pull: a BLOOM checkpoint from the Hugging Face hub into models/.
-- The hub's file list (api/models/REPO/tree/REVISION) gives each file's size
-- and hash: SHA-256 for LFS files (the weights), git's blob SHA-1 for the
-- small ones. Every file is downloaded resumably (a .part file continued with
-- a Range request) and checked before it is moved into place; files already
-- present and correct are kept.
local M = {}

M.spec = {
  name = "pull",
  usage = "lacos pull REPO [--revision REV] [--out DIR] [--endpoint URL]",
  summary = "Download a checkpoint (safetensors weights, config, tokenizer) from the Hugging Face hub.",
  description = "REPO is e.g. bigscience/bloom-560m. Files go to models/<name> unless --out says otherwise. The endpoint\n" ..
                "is $HF_ENDPOINT or https://huggingface.co. Only what lacos reads is fetched: config.json,\n" ..
                "tokenizer.json (and its small companions) and the safetensors weights with their index. Interrupted\n" ..
                "downloads resume; a file whose size or hash differs from what the hub reports is refused and removed.",
  options = {
    { "--revision", "REV", "branch, tag or commit", default = "main" },
    { "--out", "DIR", "target directory (default models/<name>)" },
    { "--endpoint", "URL", "hub address (default $HF_ENDPOINT or https://huggingface.co)" },
  },
  positional = { min = 1, max = 1, names = "REPO" },
  examples = { "lacos pull bigscience/bloom-560m", "lacos pull bigscience/bloom-7b1 --out /data/models/bloom-7b1" },
}

local WANTED = {
  ["config.json"] = true, ["tokenizer.json"] = true, ["tokenizer_config.json"] = true,
  ["special_tokens_map.json"] = true, ["model.safetensors.index.json"] = true,
}

local function exists(p) local f = io.open(p, "rb") if f then f:close() return true end return false end

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
  -- The file list goes to a temporary file: the target directory is only
  -- created once the hub has answered with something to fetch, so a wrong
  -- name or an unreachable hub leaves nothing behind.
  local listing = os.tmpname()
  os.remove(listing)
  listing = listing .. "-lacos-tree.json"
  local api = ("%s/api/models/%s/tree/%s"):format(endpoint, repo, opts.revision)
  local got, err = pcall(E.check, C.lacos_download(api, listing, -1, nil, o, nil, nil))
  if not got then os.remove(listing); os.remove(listing .. ".part"); error(err, 0) end
  local read_ok, tree = pcall(json.read, listing)
  os.remove(listing)
  if not read_ok then error(("%s: the answer is not JSON (%s)"):format(api, tostring(tree):gsub("^[^:]*: ", "")), 0) end
  if type(tree) ~= "table" then error(api .. ": unexpected answer (not a list of files)", 0) end
  local files, has_weights = {}, false
  for _, e in ipairs(tree) do
    if type(e) == "table" and e.type == "file" and type(e.path) == "string" then
      local want = WANTED[e.path] or e.path:match("^model[%w%-]*%.safetensors$")
      if want and not e.path:find("/", 1, true) then
        files[#files + 1] = e
        if e.path:match("%.safetensors$") then has_weights = true end
      end
    end
  end
  if not has_weights then
    error(("%s@%s has no safetensors weights (lacos reads model.safetensors or model-*-of-*.safetensors)"):format(repo, opts.revision), 0)
  end
  table.sort(files, function(a, b) return a.size < b.size end)
  require("lacos.util").mkdir_p(out)
  local total = 0
  for _, f in ipairs(files) do total = total + f.size end
  io.stderr:write(("lacos pull: %s@%s, %d files, %s, into %s\n"):format(repo, opts.revision, #files,
    require("lacos.util").bytes(total), out))
  local sha = ffi.new("char[65]")
  local sha1 = ffi.new("char[41]")
  for _, f in ipairs(files) do
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
  json.write(out .. "/lacos.json", { source = repo, revision = opts.revision, endpoint = endpoint,
                                     pulled_by = "lacos " .. lacos.version(), padding_side = "right" })
  io.stderr:write(("lacos pull: done; use it with --model %s\n"):format(out))
  return 0
end

return M
