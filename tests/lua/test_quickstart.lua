-- test_quickstart: experiments/quickstart.lua end to end, as a user runs it
-- (lacos run experiments/quickstart.lua --db FILE), then `lacos results
-- scale` and `lacos results plot` on its database; the plots must be valid
-- PNG (signature, IHDR with the image size, every chunk's CRC, IEND last)
-- and well-formed SVG (an XML document whose root element is <svg>).
-- make test runs it with fewer training and evaluation pairs; with
-- LACOS_TEST_LONG=1 (make check-long) it runs exactly what `make run` runs.
local H = require "harness"
local bit = require "bit"

local LONG = (os.getenv("LACOS_TEST_LONG") or "0") ~= "0"

-- ---------------------------------------------------------------- PNG

local crc_table = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do
    if bit.band(c, 1) ~= 0 then c = bit.bxor(0xEDB88320, bit.rshift(c, 1)) else c = bit.rshift(c, 1) end
  end
  crc_table[n] = c
end
local function crc32(s, i, j)
  local c = 0xFFFFFFFF
  for k = i, j do c = bit.bxor(crc_table[bit.band(bit.bxor(c, s:byte(k)), 0xFF)], bit.rshift(c, 8)) end
  return bit.tobit(bit.bxor(c, 0xFFFFFFFF))
end
local function u32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Returns width, height, chunk count; raises on anything that is not a whole, valid PNG.
local function check_png(path)
  local s = H.read(path)
  assert(s, path .. ": missing")
  assert(s:sub(1, 8) == "\137PNG\r\n\26\n", path .. ": no PNG signature")
  local pos, chunks, w, h, seen_end, idat = 9, 0, nil, nil, false, 0
  while pos <= #s do
    assert(not seen_end, path .. ": bytes after IEND")
    assert(pos + 11 <= #s, path .. ": truncated chunk header at byte " .. pos)
    local len, typ = u32(s, pos), s:sub(pos + 4, pos + 7)
    assert(typ:match("^%a%a%a%a$"), path .. ": bad chunk type at byte " .. pos)
    assert(pos + 11 + len <= #s, path .. ": chunk " .. typ .. " runs past the end of the file")
    local want = u32(s, pos + 8 + len)
    assert(bit.tobit(want) == crc32(s, pos + 4, pos + 7 + len), path .. ": CRC mismatch in chunk " .. typ)
    if chunks == 0 then
      assert(typ == "IHDR" and len == 13, path .. ": the first chunk is not IHDR")
      w, h = u32(s, pos + 8), u32(s, pos + 12)
      local depth, color = s:byte(pos + 16), s:byte(pos + 17)
      assert(({ [1] = 1, [2] = 1, [4] = 1, [8] = 1, [16] = 1 })[depth], path .. ": bad bit depth " .. depth)
      assert(({ [0] = 1, [2] = 1, [3] = 1, [4] = 1, [6] = 1 })[color], path .. ": bad colour type " .. color)
    end
    if typ == "IDAT" then idat = idat + 1 end
    if typ == "IEND" then seen_end = true end
    chunks = chunks + 1
    pos = pos + 12 + len
  end
  assert(seen_end, path .. ": no IEND chunk (truncated)")
  assert(idat > 0, path .. ": no image data")
  return w, h, chunks
end

-- ---------------------------------------------------------------- XML

-- Checks that text is one well-formed XML document (XML 1.0's syntax: prolog,
-- comments, processing instructions, a doctype without an internal subset,
-- elements with unique quoted attributes, CDATA, entity and character
-- references); returns the root element's name.
local function check_xml(text, where)
  local pos, n = 1, #text
  local NAME = "^[%a_:][%w_:%.%-]*"
  local function fail(msg)
    local line = select(2, text:sub(1, pos):gsub("\n", "")) + 1
    error(("%s:%d: not well-formed XML: %s"):format(where, line, msg), 0)
  end
  local function chardata(s)
    if s:find("<", 1, true) then fail("'<' in text") end
    for ref in s:gmatch("&([^;]*);?") do
      if not (ref == "amp" or ref == "lt" or ref == "gt" or ref == "quot" or ref == "apos"
              or ref:match("^#%d+$") or ref:match("^#x%x+$")) then
        fail("bad entity reference &" .. ref)
      end
    end
    for _ in s:gmatch("&[^;]*$") do fail("unterminated entity reference") end
  end
  local stack, root, after_root = {}, nil, false
  if text:sub(1, 5) == "<?xml" then
    local e = text:find("?>", 1, true) or fail("unterminated XML declaration")
    pos = e + 2
  end
  while pos <= n do
    local lt = text:find("<", pos, true)
    local chunk = text:sub(pos, (lt or n + 1) - 1)
    if #stack == 0 then
      if chunk:find("%S") then fail("text outside the root element") end
    else
      chardata(chunk)
    end
    if not lt then break end
    pos = lt
    if text:sub(pos, pos + 3) == "<!--" then
      local e = text:find("-->", pos + 4, true) or fail("unterminated comment")
      if text:sub(pos + 4, e - 1):find("--", 1, true) then fail("'--' inside a comment") end
      pos = e + 3
    elseif text:sub(pos, pos + 8) == "<![CDATA[" then
      if #stack == 0 then fail("CDATA outside the root element") end
      pos = (text:find("]]>", pos, true) or fail("unterminated CDATA section")) + 3
    elseif text:sub(pos, pos + 1) == "<?" then
      pos = (text:find("?>", pos, true) or fail("unterminated processing instruction")) + 2
    elseif text:sub(pos, pos + 8) == "<!DOCTYPE" then
      if root then fail("DOCTYPE after the root element") end
      local e = text:find(">", pos, true) or fail("unterminated DOCTYPE")
      if text:sub(pos, e):find("[", 1, true) then fail("internal DTD subsets are not expected in a plot") end
      pos = e + 1
    elseif text:sub(pos, pos + 1) == "</" then
      local name = text:match(NAME, pos + 2) or fail("bad end tag")
      local e = text:match("^%s*>()", pos + 2 + #name) or fail("bad end tag </" .. name)
      if stack[#stack] ~= name then fail(("</%s> closes <%s>"):format(name, tostring(stack[#stack]))) end
      stack[#stack] = nil
      if #stack == 0 then after_root = true end
      pos = e
    else
      local name = text:match(NAME, pos + 1) or fail("bad start tag")
      if after_root then fail("a second root element <" .. name .. ">") end
      root = root or name
      local p = pos + 1 + #name
      local attrs = {}
      while true do
        local ws, q = text:match("^(%s*)()", p)
        p = q
        local c = text:sub(p, p)
        if c == ">" then stack[#stack + 1] = name p = p + 1 break end
        if text:sub(p, p + 1) == "/>" then p = p + 2 if #stack == 0 then after_root = true end break end
        if ws == "" then fail("attributes of <" .. name .. "> must be separated by white space") end
        local an = text:match(NAME, p) or fail("bad attribute in <" .. name .. ">")
        if attrs[an] then fail(("attribute %s given twice in <%s>"):format(an, name)) end
        attrs[an] = true
        local qpos = text:match("^%s*=%s*()", p + #an) or fail(("attribute %s of <%s> has no value"):format(an, name))
        local quote = text:sub(qpos, qpos)
        if quote ~= '"' and quote ~= "'" then fail(("attribute %s of <%s> is not quoted"):format(an, name)) end
        local close = text:find(quote, qpos + 1, true) or fail("unterminated attribute value")
        chardata(text:sub(qpos + 1, close - 1))
        p = close + 1
      end
      pos = p
    end
  end
  if #stack > 0 then fail("unclosed <" .. stack[#stack] .. ">") end
  if not root then fail("no root element") end
  return root
end

-- ---------------------------------------------------------------- the run

if not H.data or not H.exists(H.data .. "/sts/stsb/sts-test.csv") then
  H.skip_test("quickstart end to end", "the shared datasets (LACOS_TEST_DATA) are not there")
  H.done()
end

H.test("the PNG and XML checks reject broken files", function()
  local bad = H.tmp .. "/qs-bad.png"
  H.write(bad, "\137PNG\r\n\26\n" .. "\0\0\0\13IHDR" .. ("\0"):rep(13) .. "\0\0\0\0")
  H.raises("CRC mismatch", check_png, bad)
  H.raises("not well-formed XML: </svg> closes <g>", check_xml, "<svg><g></svg>", "x.svg")
  H.raises("attribute a given twice", check_xml, "<svg a='1' a='2'/>", "x.svg")
  H.raises("a second root element", check_xml, "<svg/><svg/>", "x.svg")
  H.raises("bad entity reference", check_xml, "<svg>&nbsp;</svg>", "x.svg")
  H.eq(check_xml("<?xml version='1.0'?>\n<!-- c --><svg a=\"1\"><g/><![CDATA[<x>]]>&amp;&#38;</svg>\n", "x.svg"), "svg")
end)

local dir = H.tmp .. "/quickstart"
local db = dir .. "/qs.db"
os.execute(("rm -rf %q && mkdir -p %q"):format(dir, dir))
-- From its own folder: the sweep keeps its points under ./results/runs.
local args = LONG and "" or "--pairs 192 --eval-limit 64"
local cmd = ("cd %q && %q run %q --db %q --data %q %s"):format(dir, H.lacos, H.root .. "/experiments/quickstart.lua", db,
  H.data, args)

H.test("lacos run experiments/quickstart.lua --db FILE", function()
  local rc, out, err = H.sh(cmd)
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(out, "experiment 'quickstart': SYNTHETIC — random%-weight models, not BLOOM's weights, 2 done runs")
  H.match(out, "training pairs: 0 %(untrained%)\n")
  H.match(out, LONG and "training pairs: 2500\n" or "training pairs: 192\n")
  H.match(out, "STSBenchmark")
  local R = require("lacos").results
  local d = R.open(db, { readonly = true })
  local runs = d:runs { experiment = "quickstart" }
  H.eq(#runs, 2, "runs")
  for _, r in ipairs(runs) do H.eq(r.status, "done", "run " .. r.id) end
  local sts = d:query("SELECT count(*) AS n FROM sts_results WHERE step = -1")[1].n
  H.eq(sts, 14, "7 English STS sets for each of the 2 points")
  local losses = d:query("SELECT count(*) AS n FROM metrics WHERE key = 'loss'")[1].n
  H.truthy(losses > 0, "training losses logged")
  d:close()
end)

H.test("running it again skips both points and prints the same table", function()
  local rc, out, err = H.sh(cmd)
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(err, "already, skipped")
  H.match(out, "2 done runs")
end)

H.test("lacos results scale quickstart --db FILE", function()
  local rc, out, err = H.sh(("%q results scale quickstart --db %q"):format(H.lacos, db))
  H.eq(rc, 0, err)
  H.match(out, "training pairs: 0 %(untrained%)\n")
  H.match(out, "tiny%-xs")
  H.match(out, "SICK%-R")
  rc, out = H.sh(("%q results scale quickstart --db %q --csv"):format(H.lacos, db))
  H.eq(rc, 0)
  local lines = 0
  for _ in out:gmatch("[^\n]+") do lines = lines + 1 end
  H.eq(lines, 3, "a header and one row per point: " .. out)
end)

H.test("lacos results plot quickstart: valid PNG, SVG and PDF files", function()
  local plots = dir .. "/plots"
  local rc, out, err = H.sh(("%q results plot quickstart --db %q --out %q"):format(H.lacos, db, plots))
  H.eq(rc, 0, err)
  local png, svg, pdf = 0, 0, 0
  for path in out:gmatch("[^\n]+") do
    if path:match("%.png$") then
      local w, h, chunks = check_png(path)
      H.truthy(w >= 200 and w <= 10000 and h >= 150 and h <= 10000, ("%s: odd size %dx%d"):format(path, w, h))
      print(("#   %s: %dx%d, %d chunks, CRCs ok"):format(path:match("[^/]+$"), w, h, chunks))
      png = png + 1
    elseif path:match("%.svg$") then
      local text = H.read(path)
      H.eq(check_xml(text, path), "svg", path .. ": root element")
      H.match(text, "<svg[^>]*width=\"%d+\"[^>]*height=\"%d+\"")
      svg = svg + 1
    elseif path:match("%.pdf$") then
      H.eq(H.read(path):sub(1, 5), "%PDF-", path)
      pdf = pdf + 1
    elseif path:match("%.csv$") then
      H.match(H.read(path), "^figure,panel,series,baseline,x,y,std,n\n")
    else
      error("unexpected output line: " .. path)
    end
  end
  H.eq(png, 2, "PNG files (against parameters and against data)")
  H.eq(svg, 2, "SVG files")
  H.eq(pdf, 2, "PDF files")
end)

H.done()
