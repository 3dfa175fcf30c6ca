"""Writes tests/fixtures/optim: reference data for lacos' optimizers
(engine/optim.c), from bitsandbytes 0.50 (CPU backend), torch and an
independent NumPy model of the 8-bit update.

Dynamic maps
  map_signed.npy, map_unsigned.npy    bitsandbytes.functional.create_dynamic_map(signed=True/False)

Blockwise quantisation (q_<case>_*.npy), for random and crafted inputs:
  x            the input (f32)
  codes        bitsandbytes' reference backend (backends/default/ops.py:
               bucketize on the code midpoints = nearest code, ties to the
               lower code), reached with a CompositeExplicitAutograd redispatch
  codes_cpu    bitsandbytes' native CPU kernel (csrc/cpu_ops.cpp), which
               looks codes up in a 65,536-entry table over [-1, 1], so it is
               only nearest to within 1/65535 of the block's absmax
  absmax       per-block max |x| (identical in both)
  deq          bitsandbytes.functional.dequantize_blockwise(codes)
  meta         [is_signed, blocksize]

The fixture run also checks bitsandbytes' 50-step protocol (tests/test_optim.py,
re-synced every step) between the NumPy model and torch.optim.Adam/AdamW and
records the worst errors in manifest.json ("protocol").

Optimizer runs: one parameter of 4,100 elements (41x100: 8-bit states, a last
block of 4 elements) and one of 700 (7x100: under min_8bit_size, f32 states),
params randn*0.1, 50 steps of gradients randn*0.01 (bitsandbytes'
tests/test_optim.py protocol). cfg_<X>.npy = [lr, beta1, beta2, eps, wd].
  cfg A   lr 1e-3, betas 0.9/0.999, eps 1e-8, wd 0      (Adam8bit defaults)
  cfg B   lr 2e-3, betas 0.85/0.99, eps 1e-6, wd 0.05   + the injected
          gradient values in inject_B.npy ([step, tensor, flat index, value]:
          a block of zeros at step 1, NaN/+inf/-inf elements, a whole NaN block)
  cfg C   lr 1e-3, betas 0.9/0.999, eps 1e-8, wd 0.01   (torch AdamW defaults)

  kern_<cfg>_<step>_*   the update lacos implements (bitsandbytes' CUDA kernel
        kOptimizerStatic8bit2StateBlockwise / kOptimizer32bit2State order, see
        kernel_step_* below), written here in NumPy float32: large_p, large_c1,
        large_c2, large_a1, large_a2, small_p, small_m, small_v
  bnb_A_<step>_*        bitsandbytes.optim.Adam8bit on the CPU backend:
        large_p, large_m, large_v (dequantised), large_c1, large_c2, large_a1,
        large_a2 (raw state), small_p, small_m, small_v
  adam_A_50_*           torch.optim.Adam: large_p, large_m, large_v, small_*
  adamw_<cfg>_<step>_*  torch.optim.AdamW (cfg B without the injections)
"""
import json
import math
import os
import sys

import numpy as np
import torch

import bitsandbytes as bnb
import bitsandbytes.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "optim")
f32 = np.float32
BLOCK = 256
STEPS = 50
SHAPE_L, SHAPE_S = (41, 100), (7, 100)
CFG = {
    "A": [1e-3, 0.9, 0.999, 1e-8, 0.0],
    "B": [2e-3, 0.85, 0.99, 1e-6, 0.05],
    "C": [1e-3, 0.9, 0.999, 1e-8, 0.01],
}
manifest = {"files": {}}


def save(name, arr, what=""):
    arr = np.ascontiguousarray(arr)
    np.save(os.path.join(ROOT, name + ".npy"), arr)
    manifest["files"][name] = {"dtype": str(arr.dtype), "shape": list(arr.shape), "what": what}


# ---------------------------------------------------------------- maps

SMAP = F.create_dynamic_map(signed=True).numpy().astype(f32)
UMAP = F.create_dynamic_map(signed=False).numpy().astype(f32)
assert SMAP[127] == 0 and SMAP[255] == 1 and SMAP[0] == f32(-0.99296875)
assert UMAP[0] == 0 and UMAP[255] == 1
SMID = ((SMAP[:-1] + SMAP[1:]) * f32(0.5)).astype(f32)
UMID = ((UMAP[:-1] + UMAP[1:]) * f32(0.5)).astype(f32)

# ---------------------------------------------------------------- quantisation

QOP = torch.ops.bitsandbytes.quantize_blockwise.default
DEFAULT_KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.CompositeExplicitAutograd)


def quant_case(name, x, signed, blocksize=BLOCK):
    code = torch.from_numpy((SMAP if signed else UMAP).copy())
    xt = torch.from_numpy(x)
    codes, absmax = QOP.redispatch(DEFAULT_KEYS, xt, code, blocksize)
    codes_cpu, absmax_cpu = QOP(xt, code.clone(), blocksize)
    assert torch.equal(absmax, absmax_cpu)
    deq = F.dequantize_blockwise(codes, absmax=absmax, code=code, blocksize=blocksize)
    save(f"q_{name}_x", x, "input")
    save(f"q_{name}_codes", codes.numpy(), "codes, bitsandbytes reference backend")
    save(f"q_{name}_codes_cpu", codes_cpu.numpy(), "codes, bitsandbytes native CPU (LUT)")
    save(f"q_{name}_absmax", absmax.numpy(), "per-block absmax")
    save(f"q_{name}_deq", deq.numpy(), "dequantize_blockwise(codes)")
    save(f"q_{name}_meta", np.array([1 if signed else 0, blocksize], dtype=np.int32), "[is_signed, blocksize]")


def crafted():
    """Edge cases for the signed map: a zero block, exact codes, exact
    midpoints (ties), values far below the smallest code, a partial block."""
    parts = [np.zeros(BLOCK, f32)]
    parts.append(SMAP.copy())                                 # absmax 1: every code exactly
    mids = SMID.copy()
    mids[-1] = 1.0                                            # keep absmax 1 so x/absmax is exact
    parts.append(np.concatenate([mids, [f32(-1.0)]]).astype(f32))
    rng = np.random.default_rng(7)
    tiny = (rng.standard_normal(BLOCK) * 1e-8).astype(f32)
    tiny[17] = 1.0
    parts.append(tiny)
    parts.append((rng.standard_normal(100) * 3).astype(f32))  # partial block
    return np.concatenate(parts).astype(f32)


def quantisation():
    rng = np.random.default_rng(1234)
    quant_case("signed", rng.standard_normal(3000).astype(f32), True)
    quant_case("unsigned", (rng.standard_normal(3000) ** 2).astype(f32), False)
    quant_case("crafted", crafted(), True)
    quant_case("signed_b64", (rng.standard_normal(1000) * 0.01).astype(f32), True, 64)


# ---------------------------------------------------------------- the 8-bit update in NumPy

def scalars(cfg, t):
    lr, b1, b2, eps, wd = (f32(v) for v in cfg)
    c1 = f32(1.0 - math.pow(float(b1), t))
    c2 = f32(math.sqrt(1.0 - math.pow(float(b2), t)))
    return dict(lr=lr, b1=b1, b2=b2, wd=wd, omb1=f32(1) - b1, omb2=f32(1) - b2,
                step_size=(f32(-lr) * c2) / c1, eps_c2=c2 * eps, decay=f32(1) - lr * wd)


def nearest(x, mid):
    # number of midpoints strictly below x: nearest code, ties to the lower one
    return np.searchsorted(mid, x, side="left")


def kernel_step_8bit(st, g, t, cfg):
    """kOptimizerStatic8bit2StateBlockwise for one tensor, float32 throughout."""
    s = scalars(cfg, t)
    p, c1, c2, a1, a2 = st["p"], st["c1"], st["c2"], st["a1"], st["a2"]
    n = p.size
    blk = np.arange(n) // BLOCK
    starts = np.arange(0, n, BLOCK)
    fin = np.isfinite(g)
    gz = np.where(fin, g, f32(0)).astype(f32)
    m = SMAP[c1] * a1[blk]
    v = UMAP[c2] * a2[blk]
    v = v * s["b2"] + (s["omb2"] * gz) * gz
    m = m * s["b1"] + s["omb1"] * gz
    m = np.where(fin, m, f32(0)).astype(f32)
    v = np.where(fin, v, f32(0)).astype(f32)
    a1 = np.maximum.reduceat(np.abs(m), starts).astype(f32)
    a2 = np.maximum.reduceat(np.abs(v), starts).astype(f32)
    upd = p + s["step_size"] * (m / (np.sqrt(v) + s["eps_c2"]))
    if s["wd"] > 0:
        upd = upd * s["decay"]
    p = np.where(fin, upd, p).astype(f32)
    inv1 = np.where(a1 > 0, f32(1) / np.where(a1 > 0, a1, f32(1)), f32(0)).astype(f32)
    inv2 = np.where(a2 > 0, f32(1) / np.where(a2 > 0, a2, f32(1)), f32(0)).astype(f32)
    q1 = nearest(m * inv1[blk], SMID).astype(np.int32)
    q1 = np.where(a1[blk] > 0, q1, 127)            # an all-zero block stores the code of 0
    q2 = nearest(v * inv2[blk], UMID).astype(np.int32)
    q2 = np.where(a2[blk] > 0, q2, 0)
    flip = np.signbit(SMAP[q1]) != np.signbit(m)     # momentum keeps its sign
    q1 = np.where(flip, np.where(m > 0, q1 + 1, q1 - 1), q1)
    st.update(p=p, c1=q1.astype(np.uint8), c2=q2.astype(np.uint8), a1=a1, a2=a2)
    return int((~fin).sum())


def kernel_step_32bit(st, g, t, cfg):
    """kOptimizer32bit2State (Adam) for one tensor, plus the 8-bit kernel's
    rule for non-finite gradients."""
    s = scalars(cfg, t)
    p, m, v = st["p"], st["m"], st["v"]
    fin = np.isfinite(g)
    gz = np.where(fin, g, f32(0)).astype(f32)
    m2 = m * s["b1"] + s["omb1"] * gz
    v2 = v * s["b2"] + s["omb2"] * (gz * gz)
    upd = p + s["step_size"] * (m2 / (np.sqrt(v2) + s["eps_c2"]))
    if s["wd"] > 0:
        upd = upd * s["decay"]
    st.update(p=np.where(fin, upd, p).astype(f32), m=np.where(fin, m2, f32(0)).astype(f32),
              v=np.where(fin, v2, f32(0)).astype(f32))


def kernel_run(cfg, p0L, p0S, gL, gS, inject, snaps, tag):
    nL = p0L.size
    nb = -(-nL // BLOCK)
    L = dict(p=p0L.reshape(-1).copy(), c1=np.zeros(nL, np.uint8), c2=np.zeros(nL, np.uint8),
             a1=np.zeros(nb, f32), a2=np.zeros(nb, f32))
    S = dict(p=p0S.reshape(-1).copy(), m=np.zeros(p0S.size, f32), v=np.zeros(p0S.size, f32))
    bad = 0
    for t in range(1, STEPS + 1):
        gl = gL[t - 1].reshape(-1).copy()
        gs = gS[t - 1].reshape(-1).copy()
        for step, which, idx, val in inject:
            if int(step) == t:
                (gl if int(which) == 0 else gs)[int(idx)] = f32(val)
        bad += kernel_step_8bit(L, gl, t, cfg)
        kernel_step_32bit(S, gs, t, cfg)
        if t in snaps:
            pre = f"kern_{tag}_{t}_"
            save(pre + "large_p", L["p"].reshape(SHAPE_L), "param")
            save(pre + "large_c1", L["c1"].reshape(SHAPE_L), "state1 codes (signed map)")
            save(pre + "large_c2", L["c2"].reshape(SHAPE_L), "state2 codes (unsigned map)")
            save(pre + "large_a1", L["a1"], "absmax1")
            save(pre + "large_a2", L["a2"], "absmax2")
            save(pre + "small_p", S["p"].reshape(SHAPE_S), "param")
            save(pre + "small_m", S["m"].reshape(SHAPE_S), "state1 (f32)")
            save(pre + "small_v", S["v"].reshape(SHAPE_S), "state2 (f32)")
    return bad


def injections():
    rows = []
    for i in range(3 * BLOCK, 4 * BLOCK):       # step 1: a block of exact zeros (absmax 0)
        rows.append([1, 0, i, 0.0])
    rows += [[3, 0, 5, np.nan], [3, 0, 300, np.inf], [3, 0, 301, -np.inf],
             [3, 1, 10, np.nan], [3, 1, 11, np.inf]]
    for i in range(5 * BLOCK, 6 * BLOCK):       # step 10: a whole block non-finite
        rows.append([10, 0, i, np.nan])
    for i in range(100, 121):
        rows.append([10, 1, i, np.nan])
    rows.append([20, 0, 4097, -np.inf])         # the partial last block
    return np.array(rows, dtype=np.float64)


# ---------------------------------------------------------------- bitsandbytes and torch

def snapshot_torch(prefix, pL, pS, states):
    save(prefix + "large_p", pL.detach().numpy().copy(), "param")
    save(prefix + "small_p", pS.detach().numpy().copy(), "param")
    for name, p in (("large", pL), ("small", pS)):
        m, v = states(p)
        save(f"{prefix}{name}_m", m, "first moment (f32, dequantised where 8-bit)")
        save(f"{prefix}{name}_v", v, "second moment (f32, dequantised where 8-bit)")


def run_torch(make_opt, p0L, p0S, gL, gS, snaps, prefix, states):
    pL = torch.nn.Parameter(torch.from_numpy(p0L.copy()))
    pS = torch.nn.Parameter(torch.from_numpy(p0S.copy()))
    opt = make_opt([pL, pS])
    for t in range(1, STEPS + 1):
        pL.grad = torch.from_numpy(gL[t - 1].copy())
        pS.grad = torch.from_numpy(gS[t - 1].copy())
        opt.step()
        if t in snaps:
            snapshot_torch(f"{prefix}_{t}_", pL, pS, lambda p: states(opt, p))
            if states is bnb_states:
                bnb_codes(f"{prefix}_{t}_large_", opt, pL)


def torch_states(opt, p):
    st = opt.state[p]
    return st["exp_avg"].numpy().copy(), st["exp_avg_sq"].numpy().copy()


def bnb_codes(prefix, opt, p):
    st = opt.state[p]
    save(prefix + "c1", st["state1"].numpy().copy(), "state1 codes")
    save(prefix + "c2", st["state2"].numpy().copy(), "state2 codes")
    save(prefix + "a1", st["absmax1"].numpy().copy(), "absmax1")
    save(prefix + "a2", st["absmax2"].numpy().copy(), "absmax2")


def bnb_states(opt, p):
    st = opt.state[p]
    if st["state1"].dtype == torch.uint8:
        m = F.dequantize_blockwise(st["state1"], absmax=st["absmax1"], code=st["qmap1"], blocksize=BLOCK)
        v = F.dequantize_blockwise(st["state2"], absmax=st["absmax2"], code=st["qmap2"], blocksize=BLOCK)
        return m.numpy().copy(), v.numpy().copy()
    return st["state1"].numpy().copy(), st["state2"].numpy().copy()


def protocol(cfg_key, torch_make, shape, seed):
    """bitsandbytes' tests/test_optim.py::test_optimizer8bit against the NumPy
    model of the kernel: 50 steps; after each, < 20 state elements outside
    atol 3e-3 / rtol 1e-3, parameter mean abs error < 6e-5 and mean relative
    error < 6e-4; then the f32 side takes the 8-bit side's dequantised states
    and the 8-bit side takes the f32 side's parameter (the upstream re-sync)."""
    cfg = CFG[cfg_key]
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    nb = -(-n // BLOCK)
    p0 = (rng.standard_normal(n) * 0.1).astype(f32)
    st = dict(p=p0.copy(), c1=np.zeros(n, np.uint8), c2=np.zeros(n, np.uint8),
              a1=np.zeros(nb, f32), a2=np.zeros(nb, f32))
    p1 = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = torch_make([p1], cfg)
    blk = np.arange(n) // BLOCK
    worst = dict(err=0.0, rel=0.0, not_close=0)
    for t in range(1, STEPS + 1):
        g = (rng.standard_normal(n) * 0.01).astype(f32)
        p1.grad = torch.from_numpy(g.copy())
        opt.step()
        kernel_step_8bit(st, g, t, cfg)
        m = SMAP[st["c1"]] * st["a1"][blk]
        v = UMAP[st["c2"]] * st["a2"][blk]
        for name, s in (("exp_avg", m), ("exp_avg_sq", v)):
            nc = int((~np.isclose(opt.state[p1][name].numpy(), s, atol=3e-3, rtol=1e-3)).sum())
            assert nc < 20, (cfg_key, t, name, nc)
            worst["not_close"] = max(worst["not_close"], nc)
        pt = p1.detach().numpy()
        err = np.abs(pt - st["p"])
        rel = err / (np.abs(pt) + 1e-9)
        assert err.mean() < 6e-5 and rel.mean() < 6e-4, (cfg_key, t, err.mean(), rel.mean())
        worst["err"] = max(worst["err"], float(err.mean()))
        worst["rel"] = max(worst["rel"], float(rel.mean()))
        st["p"] = pt.copy()
        opt.state[p1]["exp_avg"].copy_(torch.from_numpy(m))
        opt.state[p1]["exp_avg_sq"].copy_(torch.from_numpy(v))
    manifest.setdefault("protocol", {})[f"{cfg_key} {shape}"] = worst


def main():
    os.makedirs(ROOT, exist_ok=True)
    for f in os.listdir(ROOT):
        if f.endswith(".npy"):
            os.remove(os.path.join(ROOT, f))
    torch.set_num_threads(1)
    save("map_signed", SMAP, "create_dynamic_map(signed=True)")
    save("map_unsigned", UMAP, "create_dynamic_map(signed=False)")
    quantisation()

    rng = np.random.default_rng(2024)
    p0L = (rng.standard_normal(SHAPE_L) * 0.1).astype(f32)
    p0S = (rng.standard_normal(SHAPE_S) * 0.1).astype(f32)
    gL = (rng.standard_normal((STEPS,) + SHAPE_L) * 0.01).astype(f32)
    gS = (rng.standard_normal((STEPS,) + SHAPE_S) * 0.01).astype(f32)
    save("p0_large", p0L, "initial param, randn*0.1")
    save("p0_small", p0S, "initial param, randn*0.1")
    save("grads_large", gL, "gradient of each step, randn*0.01")
    save("grads_small", gS, "gradient of each step, randn*0.01")
    for k, c in CFG.items():
        save(f"cfg_{k}", np.array(c, dtype=np.float64), "[lr, beta1, beta2, eps, weight_decay]")
    inject = injections()
    save("inject_B", inject, "[step, tensor (0 large, 1 small), flat index, value] overriding grads in cfg B")

    kernel_run(CFG["A"], p0L, p0S, gL, gS, [], {1, 50}, "A")
    bad = kernel_run(CFG["B"], p0L, p0S, gL, gS, inject, {1, 50}, "B")
    manifest["kernel_B_nonfinite_large"] = bad

    lr, b1, b2, eps, wd = CFG["A"]
    run_torch(lambda ps: bnb.optim.Adam8bit(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd),
              p0L, p0S, gL, gS, {1, 50}, "bnb_A", bnb_states)
    run_torch(lambda ps: torch.optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps),
              p0L, p0S, gL, gS, {50}, "adam_A", torch_states)
    for k, snaps in (("C", {1, 50}), ("B", {50})):
        lr, b1, b2, eps, wd = CFG[k]
        run_torch(lambda ps: torch.optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd),
                  p0L, p0S, gL, gS, snaps, f"adamw_{k}", torch_states)

    adam = lambda ps, c: torch.optim.Adam(ps, lr=c[0], betas=(c[1], c[2]), eps=c[3])
    adamw = lambda ps, c: torch.optim.AdamW(ps, lr=c[0], betas=(c[1], c[2]), eps=c[3], weight_decay=c[4])
    protocol("A", adam, (1024, 1024), 11)
    protocol("A", adam, (1024, 33), 12)
    protocol("C", adamw, (1024, 33), 13)

    manifest["versions"] = {"bitsandbytes": bnb.__version__, "torch": torch.__version__, "numpy": np.__version__}
    with open(os.path.join(ROOT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(ROOT, f)) for f in os.listdir(ROOT))
    print(f"tests/fixtures/optim: {len(manifest['files'])} arrays, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    sys.exit(main())
