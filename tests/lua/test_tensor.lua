-- test_tensor.lua: lacos.tensor (lua/lacos/tensor.lua over engine/tensor.c
-- and engine/cpu/) as a user meets it: creation, 1-based indexing and
-- assignment, views that share storage, conversions with their rounding,
-- broadcasting arithmetic, comparisons, reductions, matmul and cosine
-- against hand-computed results, .npy files, printing, engine memory
-- accounting, and the errors for bad shapes and indices.
local H = require "harness"
local lacos = require "lacos"
local T = lacos.tensor

local function flat(t) return t:contiguous():view(t:numel()):double():table() end

-- ---------------------------------------------------------------- creation

H.test("zeros, ones, full, empty: shape, dtype, device, values", function()
  local z = T.zeros({ 2, 3 })
  H.same(z.shape, { 2, 3 })
  H.eq(z.dtype, "f32"); H.eq(z.device, "cpu"); H.eq(z.ndim, 2); H.eq(z:numel(), 6); H.eq(#z, 2)
  H.same(z:table(), { { 0, 0, 0 }, { 0, 0, 0 } })
  local o = T.ones({ 2, 2 }, "i32")
  H.eq(o.dtype, "i32")
  H.same(o:table(), { { 1, 1 }, { 1, 1 } })
  H.same(T.full({ 3 }, -2.5, "f64"):table(), { -2.5, -2.5, -2.5 })
  H.same(T.zeros(4):size(), { 4 }, 0, "a number is a 1-d shape")
  H.same(T.empty({ 0, 5 }):size(), { 0, 5 })
  local s = T.zeros({})
  H.eq(s.ndim, 0); H.eq(s:numel(), 1); H.eq(s:item(), 0)
  H.eq(T.full({}, 7):item(), 7)
  s:fill(2)
  H.eq(s:item(), 2)
  H.eq((s + 1).ndim, 0, "0-d op scalar stays 0-d")
  s:add_(3)
  H.eq(s:item(), 5)
  for _, dt in ipairs { "f32", "f16", "bf16", "i8", "i32", "u8", "i64", "f64" } do
    H.eq(T.ones({ 2 }, dt).dtype, dt)
    H.same(T.ones({ 2 }, dt):table(), { 1, 1 }, 0, dt)
  end
end)

H.test("rand and randn: reproducible from the seed, in this process and another", function()
  local a, b = T.rand({ 50, 40 }, { seed = 7 }), T.rand({ 50, 40 }, { seed = 7 })
  H.eq(a:maxdiff(b), 0, "same seed, same numbers")
  H.eq(T.rand({ 50, 40 }, 7):maxdiff(a), 0, "a number is the seed")
  H.truthy(T.rand({ 50, 40 }, { seed = 8 }):maxdiff(a) > 0.5, "another seed, other numbers")
  H.truthy(a:min() >= 0 and a:max() < 1, "uniform in [0, 1)")
  local r = T.rand({ 1000 }, { seed = 1, lo = -2, hi = 3 })
  H.truthy(r:min() >= -2 and r:max() < 3 and r:max() > 2.9 and r:min() < -1.9, "uniform in [lo, hi)")
  local n = T.randn({ 100000 }, { seed = 3 })
  H.near(n:mean(), 0, 0.02, "randn mean")
  H.near(n:std(), 1, 0.02, "randn std")
  local g = T.randn({ 20000 }, { seed = 3, mean = 5, std = 0.5, dtype = "f64" })
  H.eq(g.dtype, "f64")
  H.near(g:mean(), 5, 0.02); H.near(g:std(), 0.5, 0.01)
  -- another process draws the same numbers (a counter-based generator, no global state)
  local here = T.randn({ 3, 4 }, { seed = 11 })
  local rc, out, err = H.sh(H.lacos .. [[ -e 'local t = require("lacos").tensor.randn({3, 4}, {seed = 11})
    for _, v in ipairs(t:view(12):double():table()) do io.write(("%.9g "):format(v)) end']])
  H.eq(rc, 0, err)
  local i = 0
  for v in out:gmatch("%S+") do
    i = i + 1
    H.eq(tonumber(v), tonumber(("%.9g"):format(flat(here)[i])), "value " .. i)
  end
  H.eq(i, 12)
end)

H.test("from a nested table; arange", function()
  local t = T.from { { 1, 2, 3 }, { 4, 5, 6 } }
  H.same(t.shape, { 2, 3 }); H.eq(t.dtype, "f32")
  H.same(t:table(), { { 1, 2, 3 }, { 4, 5, 6 } })
  local c = T({ { { 1 }, { 2 } }, { { 3 }, { 4 } } }, "i64")
  H.same(c.shape, { 2, 2, 1 }); H.eq(c.dtype, "i64")
  H.same(T.from({}):size(), { 0 })
  H.same(T.arange(5):table(), { 0, 1, 2, 3, 4 })
  H.same(T.arange(1, 2, 0.25):table(), { 1, 1.25, 1.5, 1.75 })
  H.same(T.arange(5, 0, -2):table(), { 5, 3, 1 })
  H.same(T.arange(3, 3):size(), { 0 })
  H.eq(T.arange(0, 4, 1, "i32").dtype, "i32")
  H.raises("ragged table (level 2 has 1 entries, expected 2)", T.from, { { 1, 2 }, { 3 } })
  H.raises("entry 2 is a string, not a number", T.from, { 1, "x" })
  H.raises("step must be non-zero", T.arange, 0, 1, 0)
end)

-- ---------------------------------------------------------------- indexing and views

H.test("1-based indexing and assignment: t[i], t[i][j], negative indices, rows", function()
  local a = T.from { { 1, 2, 3 }, { 4, 5, 6 } }
  H.eq(a[1][1], 1); H.eq(a[2][3], 6); H.eq(a[-1][-1], 6); H.eq(a[-2][1], 1)
  H.eq(a:get(2, 1), 4)
  local row = a[2]
  H.same(row.shape, { 3 })
  H.same(row:table(), { 4, 5, 6 })
  a[2][3] = 60
  H.eq(a:get(2, 3), 60)
  a:set(-7, 1, 2)
  H.eq(a[1][2], -7)
  a[1] = 9                      -- a number fills the row
  H.same(a:table(), { { 9, 9, 9 }, { 4, 5, 60 } })
  a[2] = { 7, 8, 9 }            -- a table is copied into it
  H.same(a:table(), { { 9, 9, 9 }, { 7, 8, 9 } })
  local v = T.arange(4)
  v[4] = 2.5
  H.same(v:table(), { 0, 1, 2, 2.5 })
  local h = T.zeros({ 3 }, "f16")   -- element access converts
  h[2] = 0.1
  H.eq(h[2], 0.0999755859375)
end)

H.test("narrow, slice, select and T() are views: writes through them reach the base", function()
  local x = T.arange(12):view(3, 4)   -- rows {0 1 2 3} {4 5 6 7} {8 9 10 11}
  H.same(x:narrow(2, 2, 2):table(), { { 1, 2 }, { 5, 6 }, { 9, 10 } })
  H.same(x:narrow(1, 3, 1):table(), { { 8, 9, 10, 11 } })
  H.same(x:slice(2, 2, -1):table(), { { 1, 2, 3 }, { 5, 6, 7 }, { 9, 10, 11 } })
  H.same(x:slice(1, 1, 3, 2):table(), { { 0, 1, 2, 3 }, { 8, 9, 10, 11 } })
  H.same(x:slice(1, 3, 2):size(), { 0, 4 }, 0, "last before first: empty")
  H.same(x:select(2, 3):table(), { 2, 6, 10 })
  H.same(x:select(1, -1):table(), { 8, 9, 10, 11 })
  local xt = x:T()
  H.same(xt.shape, { 4, 3 })
  H.eq(xt:is_contiguous(), false)
  H.same(xt:table(), { { 0, 4, 8 }, { 1, 5, 9 }, { 2, 6, 10 }, { 3, 7, 11 } })
  H.same(x:transpose(1, 2):table(), xt:table())

  x:narrow(1, 2, 1):fill(-1)
  H.same(x[2]:table(), { -1, -1, -1, -1 }, 0, "narrow")
  x:select(2, 1):fill(100)
  H.same(flat(x:select(2, 1)), { 100, 100, 100 }, 0, "select")
  x:slice(2, 2, 4, 2)[3][2] = 55
  H.eq(x[3][4], 55, "slice with a step")
  xt[4][1] = 42
  H.eq(x[1][4], 42, "T()")
  x[3][3] = 77
  H.eq(xt[3][3], 77, "the base's writes reach the view")
  local base = T.zeros({ 4 })
  local v = base:view(2, 2)
  v[2][1] = 3
  H.same(base:table(), { 0, 0, 3, 0 }, 0, "view")
  H.same(T.from({ 1, 2 }):unsqueeze(2).shape, { 2, 1 })
  H.same(T.from({ 1, 2 }):unsqueeze(1):expand(3, 2):table(), { { 1, 2 }, { 1, 2 }, { 1, 2 } })
end)

H.test(":contiguous copies a strided view, and is the same storage when already contiguous", function()
  local x = T.arange(6):view(2, 3)
  local c = x:T():contiguous()
  H.eq(c:is_contiguous(), true)
  H.same(c:table(), { { 0, 3 }, { 1, 4 }, { 2, 5 } })
  H.same(c:stride(), { 2, 1 })
  c[1][1] = 99
  H.eq(x[1][1], 0, "a copy: writes stay in the copy")
  local same = x:contiguous()
  same[1][1] = 5
  H.eq(x[1][1], 5, "already contiguous: shares the storage")
  local r = x:T():reshape(6)
  H.same(r:table(), { 5, 3, 1, 4, 2, 5 })
end)

-- ---------------------------------------------------------------- conversions

H.test(":to converts with round-to-nearest-even and saturation", function()
  local src = T.from { 0.1, 1 / 3, 1000.7, 2049, 2051, 65519, 65520, 6e-8, 1e-8 }
  -- f16: 11 significant bits; 65504 is the largest, 65520 (the halfway point to 2^16) overflows
  local h = src:to("f16"):double():table()
  H.eq(h[7], math.huge, "65520 overflows f16")
  h[7] = 0
  H.same(h, { 0.0999755859375, 0.333251953125, 1000.5, 2048, 2052, 65504, 0, 2 ^ -24, 0 })
  -- bf16: 8 significant bits (spacing 2 from 256, 4 from 512, 512 from 65536)
  H.same(T.from({ 0.1, 257, 259, 1000.7, 70000, -128.5 }):to("bf16"):double():table(),
         { 0.10009765625, 256, 260, 1000, 70144, -128 })
  -- integers: nearest, ties to even, clamped to the range; NaN becomes 0
  H.same(T.from({ 2.5, 3.5, -2.5, -0.5, 127.4, 200, -300, 0 / 0 }):to("i8"):table(), { 2, 4, -2, 0, 127, 127, -128, 0 })
  H.same(T.from({ 2.5, -3.5, 1e10, -1e10, 123456.5 }, "f64"):to("i32"):table(), { 2, -4, 2147483647, -2147483648, 123456 })
  H.same(T.from({ -1, 255.5, 300 }):to("u8"):table(), { 0, 255, 255 })
  for _, dt in ipairs { "f16", "bf16", "i8", "i32" } do
    local t = src:to(dt)
    H.eq(t.dtype, dt); H.same(t.shape, { 9 })
    H.eq(t:to("f32").dtype, "f32")
  end
  H.same(T.from({ 1, 2 }, "i32"):float():table(), { 1, 2 })
  H.eq(T.from({ 1 }):double().dtype, "f64")
  local strided = T.arange(6):view(2, 3):T():to("f16")   -- a strided source
  H.same(strided:table(), { { 0, 3 }, { 1, 4 }, { 2, 5 } })
end)

-- ---------------------------------------------------------------- arithmetic

H.test("broadcasting arithmetic, scalars, in-place forms, unary functions", function()
  local a = T.from { { 1, 2, 3 }, { 4, 5, 6 } }
  H.same((a + T.from { 10, 20, 30 }):table(), { { 11, 22, 33 }, { 14, 25, 36 } })
  H.same((a * T.from { { 2 }, { 3 } }):table(), { { 2, 4, 6 }, { 12, 15, 18 } })
  H.same((T.from { { 1 }, { 2 } } + T.from { { 10, 20, 30 } }):table(), { { 11, 21, 31 }, { 12, 22, 32 } }, 0, "(2,1) + (1,3)")
  H.same((a - 1):table(), { { 0, 1, 2 }, { 3, 4, 5 } })
  H.same((12 / a):table(), { { 12, 6, 4 }, { 3, 2.4, 2 } }, 1e-6)
  H.same((2 - a):table(), { { 1, 0, -1 }, { -2, -3, -4 } })
  H.same((a ^ 2):table(), { { 1, 4, 9 }, { 16, 25, 36 } })
  H.same((-a)[1]:table(), { -1, -2, -3 })
  H.same((a + { 1, 1, 1 })[2]:table(), { 5, 6, 7 }, 0, "a table operand")
  H.same(a:maximum(T.from { 3, 3, 3 }):table(), { { 3, 3, 3 }, { 4, 5, 6 } })
  H.same(a:minimum(2):table(), { { 1, 2, 2 }, { 2, 2, 2 } })
  H.eq((T.ones({ 2 }, "i32") + T.ones({ 2 }, "i32")).dtype, "f32", "integer operands give f32")
  H.eq((T.ones({ 2 }, "f64") + 1).dtype, "f64")
  local b = T.from { 1, 2, 3 }
  b:add_(T.from { 1, 1, 1 }):mul_(2):sub_(1):div_(T.from { 1, 3, 7 })
  H.same(b:table(), { 3, 5 / 3, 1 }, 1e-6)
  H.same(T.from({ 0, 1 }):exp():table(), { 1, math.exp(1) }, 1e-6)
  H.same(T.from({ -1, 4 }):abs():sqrt():table(), { 1, 2 })
  H.same(T.from({ -1, 0, 1 }):gelu():table(), { -0.158808, 0, 0.841192 }, 1e-6)   -- BLOOM's tanh GELU
  H.same(T.from({ 1, 0 / 0, 1 / 0 }):isfinite():table(), { 1, 0, 0 })
end)

H.test("comparisons give 0/1 tensors and broadcast", function()
  local a = T.from { { 1, 2, 3 }, { 4, 5, 6 } }
  H.same(a:gt(3):table(), { { 0, 0, 0 }, { 1, 1, 1 } })
  H.same(a:le(T.from { 1, 5, 3 }):table(), { { 1, 1, 1 }, { 0, 1, 0 } })
  H.same(a:eq(T.from { { 2 }, { 6 } }):table(), { { 0, 1, 0 }, { 0, 0, 1 } })
  H.same(a:ne(2)[1]:table(), { 1, 0, 1 })
  H.same(a:lt(2):table(), { { 1, 0, 0 }, { 0, 0, 0 } })
  H.same(a:ge(a):table(), { { 1, 1, 1 }, { 1, 1, 1 } })
  H.eq(a:gt(3):sum(), 3)
end)

H.test("reductions, whole and by dimension (1-based, negatives from the end, keepdim)", function()
  local a = T.from { { 1, 2, 3 }, { 4, 5, 6 } }
  H.eq(a:sum(), 21); H.eq(a:mean(), 3.5); H.eq(a:max(), 6); H.eq(a:min(), 1)
  H.eq(a:argmax(), 6, "1-based index into the flattened tensor"); H.eq(a:argmin(), 1)
  -- accumulated in double, stored in the input's f32
  H.near(a:norm(), math.sqrt(91), 1e-6)
  H.near(a:var(), 3.5, 1e-6, "unbiased (n - 1), as torch")
  H.near(a:std(), math.sqrt(3.5), 1e-6)
  H.eq(T.from({ 1, 2 }, "f64"):norm(), math.sqrt(5), "f64 keeps double")
  H.same(a:sum(1):table(), { 5, 7, 9 })
  H.same(a:sum(2):table(), { 6, 15 })
  H.same(a:sum(-1):table(), { 6, 15 })
  H.same(a:sum(2, true).shape, { 2, 1 })
  H.same(a:mean(1):table(), { 2.5, 3.5, 4.5 })
  H.same(a:max(1):table(), { 4, 5, 6 })
  H.same(a:min(2):table(), { 1, 4 })
  local am = T.from({ { 3, 9, 1 }, { 7, 0, 7 } }):argmax(2)
  H.eq(am.dtype, "i64"); H.same(am:table(), { 2, 1 }, 0, "1-based, the first of ties")
  H.same(T.from({ { 3, 9, 1 }, { 7, 0, 7 } }):argmin(1):table(), { 1, 2, 1 })
  H.same(a:var(2):table(), { 1, 1 })
  H.same(T.from({ { 3, 4 }, { 6, 8 } }):norm(2):table(), { 5, 10 })
  H.same(a:T():sum(1):table(), { 6, 15 }, 0, "a strided view")
end)

H.test("matmul against hand-computed products; cosine", function()
  local A = T.from { { 1, 2 }, { 3, 4 }, { 5, 6 } }
  local B = T.from { { 7, 8, 9 }, { 10, 11, 12 } }
  H.same(A:matmul(B):table(), { { 27, 30, 33 }, { 61, 68, 75 }, { 95, 106, 117 } })
  H.same(A:T():mm(A):table(), { { 35, 44 }, { 44, 56 } }, 0, "a transposed view as operand")
  H.same(A:matmul(B):T():table(), B:T():matmul(A:T()):table())
  local batch = T.from { { { 1, 0 }, { 0, 1 } }, { { 2, 0 }, { 0, 3 } } }
  H.same(batch:matmul(T.from { { 1, 2 }, { 3, 4 } }):table(), { { { 1, 2 }, { 3, 4 } }, { { 2, 4 }, { 9, 12 } } })
  H.eq(T.from({ { 1 } }, "f64"):mm(T.from { { 2 } }).dtype, "f64")
  local c = T.from({ { 1, 0 }, { 0, 1 }, { 1, 1 } }):cosine(T.from { { 1, 0 }, { 3, 4 } })
  H.same(c.shape, { 3, 2 })
  H.same(c:table(), { { 1, 0.6 }, { 0, 0.8 }, { 1 / math.sqrt(2), 7 / (5 * math.sqrt(2)) } }, 1e-6)
  local n = T.from({ { 3, 4 } }):normalize()
  H.same(n:table(), { { 0.6, 0.8 } }, 1e-7)
end)

-- ---------------------------------------------------------------- files and printing

H.test("save_npy / load_npy round trip in every NumPy dtype", function()
  local dir = H.tmp
  local cases = {
    { T.randn({ 3, 4 }, { seed = 1 }), "<f4", "(3, 4)" },
    { T.randn({ 2, 3, 2 }, { seed = 2, dtype = "f64" }), "<f8", "(2, 3, 2)" },
    { T.from({ 0.5, -1.25, 65504 }):to("f16"), "<f2", "(3,)" },
    { T.from({ -128, 0, 127 }, "i8"), "|i1", "(3,)" },
    { T.from({ { 1, -2 }, { 2147483647, -7 } }, "i32"), "<i4", "(2, 2)" },
    { T.from({ 0, 255 }, "u8"), "|u1", "(2,)" },
    { T.from({ 1, -2, 4e15 }, "i64"), "<i8", "(3,)" },
  }
  for i, c in ipairs(cases) do
    local t, descr, shape = c[1], c[2], c[3]
    local path = ("%s/t%d.npy"):format(dir, i)
    t:save_npy(path)
    local bytes = H.read(path)
    H.eq(bytes:sub(1, 6), "\147NUMPY", "magic")
    H.match(bytes, "'descr': '" .. descr:gsub("%p", "%%%0") .. "'")
    H.match(bytes, "'shape': " .. shape:gsub("%p", "%%%0"))
    local back = T.load_npy(path)
    H.eq(back.dtype, t.dtype); H.same(back.shape, t.shape)
    H.eq(back:maxdiff(t), 0, t.dtype)
  end
  local view = T.arange(12):view(3, 4):T()   -- a strided view is written in its logical order
  view:save_npy(dir .. "/view.npy")
  H.same(T.load_npy(dir .. "/view.npy"):table(), view:table())
  H.raises("NumPy has no bf16 dtype", function() T.zeros({ 2 }, "bf16"):save_npy(dir .. "/b.npy") end)
  H.raises(dir .. "/none.npy: No such file or directory", T.load_npy, dir .. "/none.npy")
  H.write(dir .. "/junk.npy", "not numpy at all")
  H.raises("junk.npy: not a NumPy .npy file", T.load_npy, dir .. "/junk.npy")
  local good = H.read(dir .. "/t1.npy")
  H.write(dir .. "/short.npy", good:sub(1, #good - 8))
  H.raises("short.npy: file is shorter than its header says", T.load_npy, dir .. "/short.npy")
end)

H.test("printing: shape, dtype, device, values, and a truncated view of large tensors", function()
  local s = tostring(T.from { { 1, 2.5 }, { -3, 4 } })
  H.eq(s, "lacos.tensor f32 cpu (2, 2)\n[[ 1.0000  2.5000],\n [-3.0000  4.0000]]")
  H.eq(tostring(T.from({ 1, 2, 3 }, "i32")), "lacos.tensor i32 cpu (3)\n[1 2 3]")
  H.eq(tostring(T.full({}, 7)), "lacos.tensor f32 cpu ()\n7.0000")
  H.eq(tostring(T.zeros({ 0, 3 })), "lacos.tensor f32 cpu (0, 3)\n[]")
  H.match(tostring(T.from({ 1e-6, 123456 })), "%[1%.0000e%-06 1%.2346e%+05%]")
  local big = T.arange(600):view(20, 30)
  local text = tostring(big)
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  H.eq(lines[1], "lacos.tensor f32 cpu (20, 30)")
  H.eq(#lines, 8, "3 rows, ..., 3 rows")
  H.eq(lines[5], " ...,")
  H.match(lines[2], "^%[%[  0%.0000   1%.0000   2%.0000 %.%.%.  27%.0000  28%.0000  29%.0000%],$")
  H.match(lines[8], "597%.0000 598%.0000 599%.0000%]%]$")
  H.truthy(not text:find("300.0000", 1, true), "the middle is left out")
  local t = T.zeros({ 2 })
  t:free()
  H.eq(tostring(t), "lacos.tensor [freed]")
end)

-- ---------------------------------------------------------------- memory

H.test("lacos.memory() counts engine bytes and returns to its value after :free()", function()
  collectgarbage("collect"); collectgarbage("collect")
  local before = lacos.memory().allocated
  H.eq(type(before), "number")
  local big = T.zeros({ 1000, 1000 })
  H.eq(lacos.memory().allocated - before, 4e6, "1000 x 1000 f32")
  local view = big:narrow(1, 1, 10)
  H.eq(lacos.memory().allocated - before, 4e6, "a view allocates nothing")
  local half = big:to("f16")
  H.eq(lacos.memory().allocated - before, 6e6, "plus 1000 x 1000 f16")
  H.truthy(lacos.memory().peak >= before + 6e6, "peak")
  half:free()
  big:free()
  H.eq(lacos.memory().allocated - before, 4e6, "the view keeps the storage alive")
  H.eq(view:sum(), 0)
  view:free()
  H.eq(lacos.memory().allocated, before, "back to the previous value")
  H.truthy(big:is_freed())
  H.raises("tensor was freed", function() return big:sum() end)
  big:free()   -- twice is harmless
  -- dropped tensors go back when the garbage collector runs
  local function make() local x = T.ones({ 256, 256 }) return x:sum() end
  H.eq(make(), 65536)
  collectgarbage("collect"); collectgarbage("collect")
  H.eq(lacos.memory().allocated, before, "collected")
  local m = lacos.memory()
  for _, k in ipairs { "allocated", "peak", "mapped", "rss", "peak_rss" } do H.eq(type(m[k]), "number", k) end
end)

-- ---------------------------------------------------------------- errors

H.test("bad shapes: a clear message, no crash", function()
  H.raises("bad size -1 in dimension 2", T.zeros, { 2, -1 })
  H.raises("bad size 1.5 in dimension 1", T.zeros, { 1.5 })
  H.raises("tensors have at most 4 dimensions, got 5", T.zeros, { 1, 1, 1, 1, 1 })
  H.raises("zeros: the second argument is the dtype; give the shape as a table", T.zeros, 2, 3)
  H.raises("unknown dtype 'f17'", function() return T.zeros({ 2 }):to("f17") end)
  local a = T.from { { 1, 2, 3 }, { 4, 5, 6 } }
  H.raises("view: shape has 4 elements, tensor has 6", function() return a:view(4) end)
  H.raises("view: tensor is not contiguous (call :contiguous() first)", function() return a:T():view(6) end)
  H.raises("shapes (2, 3) and (3, 2) do not broadcast", function() return a + T.zeros({ 3, 2 }) end)
  H.raises("a tensor of shape (2) does not broadcast to (3)", function() a[1] = { 1, 2 } end)
  H.raises("matmul: inner sizes differ (3 vs 2) for shapes (2, 3) and (2, 3)", function() return a:mm(a) end)
  H.raises("matmul: operands must be 2-d or 3-d, got 1-d and 1-d", function() return T.zeros({ 3 }):mm(T.zeros({ 3 })) end)
  H.raises("cosine: expected (n, d) and (m, d) tensors, got (2, 3) and (2, 2)", function() return a:cosine(T.zeros({ 2, 2 })) end)
  H.raises("T: expected a 2-d tensor, got 1-d", function() return T.zeros({ 3 }):T() end)
  H.raises("item: tensor has 6 elements, expected 1", function() return a:item() end)
  H.raises("cannot take this reduction of an empty dimension", function() return T.zeros({ 0 }):max() end)
  H.raises("unsqueeze: the tensor already has 4 dimensions", function() return T.zeros({ 1, 1, 1, 1 }):unsqueeze(1) end)
end)

H.test("out-of-range indices and dimensions: 1-based messages, no wrap-around", function()
  local a = T.from { { 1, 2, 3 }, { 4, 5, 6 } }
  -- the message starts at the line of the user's code that indexed
  local err = H.raises("t[i]: index 3 out of range for dimension 1 of size 2", function() local r = a[3] return r end)
  H.match(err, "^[^:]*test_tensor%.lua:%d+: ")
  H.raises("t[i]: index 0 out of range for dimension 1 of size 2", function() local r = a[0] return r end)
  H.raises("t[i]: index -3 out of range for dimension 1 of size 2", function() local r = a[-3] return r end)
  H.raises("t[i]: index 4 out of range for dimension 1 of size 3", function() local r = a[1][4] return r end)
  H.raises("t[i]: the index must be an integer, got 1.5", function() local r = a[1.5] return r end)
  H.raises("t[i]: index 3 out of range for dimension 1 of size 2", function() a[3] = 1 end)
  H.raises("t[i]: index 0 out of range for dimension 1 of size 3", function() a[1][0] = 1 end)
  H.raises("t[i] = v: v must be a number, got a string", function() a[1][1] = "x" end)
  H.raises("cannot index a 0-d tensor", function() local r = T.zeros({})[1] return r end)
  H.raises("index 3 out of range for dimension 1 of size 2", function() return a:get(3, 1) end)
  H.raises("get: expected 2 indices, got 1", function() return a:get(1) end)
  H.raises("index 4 out of range for dimension 2 of size 3", function() return a:set(0, 1, 4) end)
  H.raises("select: index 0 out of range for dimension 1 of size 2", function() local r = a:select(1, 0) return r end)
  H.raises("select: dimension 3 out of range for a 2-d tensor (1..2)", function() local r = a:select(3, 1) return r end)
  H.raises("narrow: start 3, length 2 goes outside dimension 2 of size 3", function() local r = a:narrow(2, 3, 2) return r end)
  H.raises("narrow: start 0, length 1 goes outside dimension 2 of size 3", function() local r = a:narrow(2, 0, 1) return r end)
  H.raises("narrow: dimension 0 out of range for a 2-d tensor (1..2)", function() local r = a:narrow(0, 1, 1) return r end)
  H.raises("slice: bounds 0..2 are outside dimension 2 of size 3", function() local r = a:slice(2, 0, 2) return r end)
  H.raises("slice: bounds 2..4 are outside dimension 2 of size 3", function() local r = a:slice(2, 2, 4) return r end)
  H.raises("slice: step must be a positive integer, got 0", function() local r = a:slice(2, 1, 3, 0) return r end)
  H.raises("transpose: dimension 3 out of range for a 2-d tensor (1..2)", function() local r = a:transpose(1, 3) return r end)
  H.raises("dimension 3 out of range for a 2-d tensor", function() return a:sum(3) end)
  H.raises("size: dimension 0 out of range for a 2-d tensor", function() return a:size(0) end)
  H.same(a:table(), { { 1, 2, 3 }, { 4, 5, 6 } }, 0, "nothing was written")
end)

H.done()
