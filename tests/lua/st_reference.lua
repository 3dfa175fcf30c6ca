-- st_reference: sentence-transformers itself, for the export tests
-- (test_stexport.lua, test_bertexport.lua): runs
-- tests/reference/check_st_export.py over directories in one Python
-- process and compares its embeddings with lacos'.
local H = require "harness"
local T = require("lacos").tensor
local J = require "lacos.json"

local M = {}

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local calls = 0

-- SentenceTransformer(dir).encode(sentences[, prompt = opts.prompt]) for each
-- of dirs, with python (the reference virtualenv's) and the files under
-- opts.work; returns {[dir] = {emb =, ids =, types =, line =}} (the script's
-- outputs: embeddings, token ids, token type ids, its line about the model).
function M.run(python, dirs, sentences, opts)
  calls = calls + 1
  local sj = ("%s/sentences-%d.json"):format(opts.work, calls)
  H.write(sj, J.encode(sentences))
  local args = {}
  for i, d in ipairs(dirs) do args[#args + 1] = q(d) .. " " .. q(("%s/ref-%d-%d"):format(opts.work, calls, i)) end
  local rc, out, err = H.sh(("%s %s/tests/reference/check_st_export.py %s%s %s"):format(python, H.root,
    opts.prompt and ("--prompt " .. q(opts.prompt) .. " ") or "", q(sj), table.concat(args, " ")))
  H.eq(rc, 0, "the reference script (" .. err:sub(-800) .. ")")
  local res = {}
  for i, d in ipairs(dirs) do
    local line = out:match("[^\n]*" .. d:gsub("%p", "%%%0") .. " modules [^\n]*")
    H.truthy(line, "a line for " .. d .. " in: " .. out)
    local prefix = ("%s/ref-%d-%d"):format(opts.work, calls, i)
    res[d] = { emb = T.load_npy(prefix .. ".npy"), ids = J.read(prefix .. ".ids.json"),
               types = J.read(prefix .. ".types.json"), line = line }
  end
  return res
end

-- Asserts sentence-transformers' embeddings (theirs) equal lacos' (ours) within tol, printing the difference.
function M.compare(what, ours, theirs, tol)
  H.eq(theirs:size(1), ours:size(1), what .. ": rows")
  local diff = theirs:maxdiff(ours)
  print(("# %s: SentenceTransformer.encode vs lacos: max abs difference %.3g over %d sentences (tolerance %g; largest |x| %.3g)")
    :format(what, diff, ours:size(1), tol, ours:abs():max()))
  H.truthy(diff <= tol, what .. ": embeddings differ by " .. diff)
end

return M
