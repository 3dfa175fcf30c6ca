-- lacos tokenize: the token ids of each line of text, as the Hugging Face
-- tokenizers library gives them for a tokenizer.json (BLOOM's byte-level BPE,
-- BERT's WordPiece and the like).
local util = require "lacos.util"

local M = {}

M.spec = {
  name = "tokenize",
  usage = "lacos tokenize --tokenizer FILE.json [options] [TEXTFILE...]",
  summary = "Reads one text per line (from the TEXTFILEs, else stdin) and prints the token ids of each line,\n" ..
            "space-separated, one output line per input line.",
  description = "Lines end at \\n; one \\r before it is dropped. The tokenizer's post-processor adds its special\n" ..
                "tokens ([CLS] ... [SEP] for BERT; none for BLOOM) unless --no-special. With --decode the input\n" ..
                "lines are ids and the output is their text. Input that is not UTF-8 is an error that names the\n" ..
                "line; nothing is printed then. Work is spread over LACOS_THREADS threads.",
  options = {
    { "--tokenizer", "FILE", "tokenizer.json (Hugging Face format: byte-level BPE or WordPiece)", required = true },
    { "--tokens", nil, "print token strings (as in the vocabulary, e.g. Ġworld) instead of ids" },
    { "--count", nil, "print the number of tokens of each line" },
    { "--decode", nil, "read lines of ids (separated by spaces or commas) and print their text" },
    { "--skip-special", nil, "with --decode, leave out special tokens such as <s>" },
    { "--no-special", nil, "leave out the special tokens the tokenizer puts around a text ([CLS], [SEP])" },
    { "--max-length", "N", "a line of more than N tokens (special tokens included) is an error (or cut, with --truncate)",
      type = "integer", min = 1 },
    { "--truncate", nil, "cut lines longer than --max-length (the special tokens stay)" },
    { "--truncation-side", "SIDE", "which end --truncate cuts", choices = { "right", "left" }, default = "right" },
    { "--stats", nil, "print lines, tokens and tokens/s to stderr" },
  },
  positional = { min = 0, names = "TEXTFILE" },
  examples = {
    "echo 'Hello world' | lacos tokenize --tokenizer models/bloom-560m/tokenizer.json",
    "lacos tokenize --tokenizer tok.json --tokens < sentences.txt",
    "echo '59414 8876' | lacos tokenize --tokenizer tok.json --decode",
    "echo 'Hello, world!' | lacos tokenize --tokenizer models/all-MiniLM-L6-v2/tokenizer.json --tokens",
  },
}

local function read_all(path)
  local f, err = io.open(path, "rb")
  if not f then error(((err or path):gsub("^([^:]*): ", "%1: ")), 0) end
  local s = f:read("*a")
  f:close()
  if not s then error(path .. ": cannot read the file", 0) end
  return s
end

-- Splits text into lines: \n ends a line, one \r before it is dropped, a
-- last line without \n counts.
local function split_lines(text)
  local lines, pos, n = {}, 1, #text
  while pos <= n do
    local nl = text:find("\n", pos, true)
    local stop = (nl or n + 1) - 1
    if stop >= pos and text:byte(stop) == 13 then stop = stop - 1 end
    lines[#lines + 1] = text:sub(pos, stop)
    pos = (nl or n) + 1
  end
  return lines
end

local function decode_lines(tok, lines, skip)
  local out = {}
  for i, line in ipairs(lines) do
    local ids = {}
    for w in line:gmatch("[^%s,%[%]]+") do
      local v = tonumber(w)
      if not v or v ~= math.floor(v) then error(("line %d: '%s' is not a token id"):format(i, w), 0) end
      ids[#ids + 1] = v
    end
    local ok, text = pcall(tok.decode, tok, ids, { skip_special = skip })
    if not ok then error(("line %d: %s"):format(i, text), 0) end
    out[i] = text
  end
  return out
end

local function encode_lines(tok, lines, opts)
  -- the engine truncates, so that the special tokens stay around a cut text
  local ok, ids, off, n = pcall(tok.encode_list, tok, lines, { flat = true, special = not opts.no_special,
    max_length = opts.max_length, truncation = opts.truncate or false, truncation_side = opts.truncation_side })
  if not ok then
    local msg = tostring(ids)
    local line, k, max = msg:match("text (%d+) has (%d+) tokens, more than the maximum length (%d+)")
    if line then
      error(("line %s has %s tokens, more than --max-length %s (add --truncate to cut it)"):format(line, k, max), 0)
    end
    error((msg:gsub("^text (%d+):", "line %1:")), 0)
  end
  local out, names = {}, {}
  local total = 0
  for i = 0, n - 1 do
    local a, b = off[i], off[i + 1]
    total = total + (b - a)
    if opts.count then
      out[i + 1] = tostring(b - a)
    else
      local parts = {}
      for j = a, b - 1 do
        local id = ids[j]
        if opts.tokens then
          local s = names[id]
          if not s then s = tok:id_to_token(id) or "?" names[id] = s end
          parts[#parts + 1] = s
        else
          parts[#parts + 1] = id
        end
      end
      out[i + 1] = table.concat(parts, " ")
    end
  end
  return out, total
end


function M.run(opts)
  local lacos = require "lacos"
  -- options that contradict each other are usage errors (exit 2), like unknown ones
  local usage = require("lacos.args").usage_error
  if opts.decode and (opts.tokens or opts.count or opts.max_length or opts.truncate or opts.no_special) then
    usage("tokenize", "--decode reads ids; --tokens, --count, --no-special, --max-length and --truncate apply to text")
  end
  if opts.skip_special and not opts.decode then usage("tokenize", "--skip-special goes with --decode") end
  if opts.truncate and not opts.max_length then usage("tokenize", "--truncate needs --max-length") end
  local tok = lacos.tokenizer.load(opts.tokenizer)
  local now = require("lacos.util").clock   -- monotonic seconds, for --stats
  local function process(lines)
    if opts.decode then return decode_lines(tok, lines, opts.skip_special), 0 end
    return encode_lines(tok, lines, opts)
  end

  local interactive = #opts._ == 0 and util.isatty(0)
  local t0, n_lines, n_tokens = now(), 0, 0
  if interactive then
    -- One line at a time, answered as it comes.
    for line in io.stdin:lines() do
      local ok, out, k = pcall(process, split_lines(line .. "\n"))
      if ok then io.stdout:write((out[1] or ""), "\n") n_tokens = n_tokens + k
      else io.stderr:write("lacos tokenize: ", tostring(out), "\n") end
      io.stdout:flush()
      n_lines = n_lines + 1
    end
  else
    -- each TEXTFILE on its own, so an error names the file and its line;
    -- all are processed before anything is printed
    local sources = {}
    if #opts._ == 0 then sources[1] = { text = io.stdin:read("*a") or "" }
    else for i, p in ipairs(opts._) do sources[i] = { name = p, text = read_all(p) } end end
    local out = {}
    for _, src in ipairs(sources) do
      local lines = split_lines(src.text)
      local ok, o, k = pcall(process, lines)
      if not ok then error(src.name and (src.name .. ": " .. tostring(o)) or o, 0) end
      for _, l in ipairs(o) do out[#out + 1] = l end
      n_lines, n_tokens = n_lines + #lines, n_tokens + k
    end
    if #out > 0 then io.stdout:write(table.concat(out, "\n"), "\n") end
  end
  if opts.stats then
    local dt = now() - t0
    io.stderr:write(("%d lines, %d tokens in %.3f s (%.0f tokens/s, %d threads)\n"):format(
      n_lines, n_tokens, dt, dt > 0 and n_tokens / dt or 0, lacos.threads()))
  end
  tok:free()
  return 0
end

return M
