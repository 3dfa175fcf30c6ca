"""Fixtures for lacos' safetensors reader and writer (tests/fixtures/safetensors/).

Written by the reference libraries themselves:
  dtypes.safetensors   safetensors.torch.save_file: F32, F16, BF16, I8, U8, I32, I64, F64,
                       a 0-d scalar, an empty (0, 3) tensor, a rank-4 tensor and a
                       "transformer."-prefixed name; metadata {"format": "pt"} (one key,
                       so the bytes do not depend on Rust's HashMap order)
  exotic.safetensors   dtypes lacos recognises but does not hold (BOOL, I16, U16, U32, U64,
                       F8_E4M3, F8_E5M2, C64), a rank-5 tensor, a readable F32 tensor and
                       three metadata keys (one with non-ASCII text, one empty); Rust's HashMap
                       orders those keys at random, so this file's bytes change from
                       run to run (its content does not)
  sharded/             huggingface_hub.save_torch_state_dict with max_shard_size 3000 bytes:
                       an oversize tensor in its own shard, placed where the hub places it
  expected.json        per tensor: dtype, shape, byte count and (for the dtypes lacos holds)
                       sum, first and last values; the sharded order, limit, weight_map

Then, when LACOS names a built lacos executable (make fixtures sets it), the reverse:
lacos re-saves every fixture (tests/reference/safetensors_resave.lua) and this script
checks with the reference library that
  - lacos' single-file bytes equal save_file's for dtypes.safetensors,
  - safetensors.torch.load_file reads back every tensor and the metadata exactly,
  - lacos' save_sharded of the hub's tensors (same order, same limit) gives the same
    shard files, byte for byte, and the same weight_map and total_size.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import safetensors
from safetensors.torch import save_file, load_file
import huggingface_hub
from huggingface_hub import save_torch_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "safetensors")
HELD = {"F32", "F16", "BF16", "I8", "U8", "I32", "I64", "F64"}
DTYPE_NAME = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int8: "I8",
    torch.uint8: "U8", torch.int32: "I32", torch.int64: "I64", torch.float64: "F64",
    torch.bool: "BOOL", torch.int16: "I16", torch.uint16: "U16", torch.uint32: "U32",
    torch.uint64: "U64", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
    torch.complex64: "C64",
}
SHARD_LIMIT = 3000


def stats(t):
    d = {"dtype": DTYPE_NAME[t.dtype], "shape": list(t.shape),
         "nbytes": t.numel() * t.element_size()}
    if d["dtype"] in HELD:
        v = t.to(torch.float64).flatten()
        d["sum"] = float(v.sum()) if v.numel() else 0.0
        d["first"] = [float(x) for x in v[:4]]
        d["last"] = float(v[-1]) if v.numel() else None
    return d


def dtypes_tensors(g):
    return {
        "f32": torch.randn(2, 3, generator=g),
        "f16": torch.randn(5, generator=g).to(torch.float16),
        "bf16": torch.randn(2, 2, 3, generator=g).to(torch.bfloat16),
        "i8": torch.randint(-128, 128, (3, 4), generator=g, dtype=torch.int8),
        "u8": torch.randint(0, 256, (7,), generator=g, dtype=torch.uint8),
        "i32": torch.randint(-2**31, 2**31 - 1, (2, 2), generator=g, dtype=torch.int32),
        "i64": torch.tensor([-(2**40) - 3, 7, 2**50 + 1], dtype=torch.int64),
        "f64": torch.tensor([1.0 / 3.0, -2.5e-300], dtype=torch.float64),
        "scalar": torch.tensor(3.25, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "rank4": torch.randn(1, 2, 3, 2, generator=g),
        "transformer.h.0.w": torch.arange(4, dtype=torch.float32) - 1.5,
    }


def exotic_tensors(g):
    return {
        "bool": torch.tensor([True, False, True]),
        "i16": torch.tensor([-3, 300], dtype=torch.int16),
        "u16": torch.tensor([1, 65535], dtype=torch.uint16),
        "u32": torch.tensor([7], dtype=torch.uint32),
        "u64": torch.tensor([9], dtype=torch.uint64),
        "f8_e4m3": torch.tensor([0.5, -1.0], dtype=torch.float32).to(torch.float8_e4m3fn),
        "f8_e5m2": torch.tensor([2.0], dtype=torch.float32).to(torch.float8_e5m2),
        "c64": torch.tensor([1 + 2j], dtype=torch.complex64),
        "rank5": torch.randn(1, 1, 2, 1, 2, generator=g),
        "ok": torch.tensor([1.5, -2.0], dtype=torch.float32),
    }


def sharded_tensors(g):
    # order matters: the hub splits greedily in this order
    return [
        ("transformer.word_embeddings.weight", torch.randn(64, 16, generator=g).to(torch.float16)),
        ("transformer.h.0.w", torch.randn(16, 16, generator=g)),
        ("transformer.h.0.b", torch.randn(16, generator=g)),
        ("transformer.h.1.w", torch.randn(16, 16, generator=g).to(torch.bfloat16)),
        ("big", torch.randn(40, 40, generator=g)),               # 6400 bytes > limit: own shard
        ("transformer.h.1.b", torch.randint(-5, 5, (16,), generator=g, dtype=torch.int8)),
        ("transformer.ln_f.weight", torch.randn(16, generator=g)),
    ]


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    expected = {"generator": "tests/reference/make_safetensors.py", "torch": torch.__version__,
                "safetensors": safetensors.__version__, "huggingface_hub": huggingface_hub.__version__,
                "files": {}}

    dt = dtypes_tensors(g)
    save_file(dt, os.path.join(OUT, "dtypes.safetensors"), metadata={"format": "pt"})
    expected["files"]["dtypes.safetensors"] = {"metadata": {"format": "pt"},
                                               "tensors": {k: stats(v) for k, v in dt.items()}}

    ex = exotic_tensors(g)
    meta = {"format": "pt", "note": "ünïcode ✓", "empty": ""}
    save_file(ex, os.path.join(OUT, "exotic.safetensors"), metadata=meta)
    expected["files"]["exotic.safetensors"] = {"metadata": meta, "tensors": {k: stats(v) for k, v in ex.items()}}

    sh = sharded_tensors(g)
    sdir = os.path.join(OUT, "sharded")
    os.makedirs(sdir, exist_ok=True)
    for f in os.listdir(sdir):
        os.remove(os.path.join(sdir, f))
    save_torch_state_dict(dict(sh), sdir, max_shard_size=SHARD_LIMIT)
    with open(os.path.join(sdir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    expected["sharded"] = {"dir": "sharded", "max_shard_size": SHARD_LIMIT, "order": [k for k, _ in sh],
                           "weight_map": index["weight_map"], "total_size": index["metadata"]["total_size"],
                           "files": sorted(os.listdir(sdir)),
                           "tensors": {k: stats(v) for k, v in sh}}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print("wrote", OUT, sorted(os.listdir(OUT)), "shards:", expected["sharded"]["files"])

    lacos = os.environ.get("LACOS")
    if not lacos or not os.access(lacos, os.X_OK):
        print("LACOS not set to an executable: skipping the lacos -> reference checks")
        return
    check_lacos_output(lacos, expected, dt, ex, sh)


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8),
                                                                      b.reshape(-1).view(torch.uint8))


def check_lacos_output(lacos, expected, dt, ex, sh):
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(ROOT, "tests", "reference", "safetensors_resave.lua")
        r = subprocess.run([lacos, "run", script, OUT, tmp], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("lacos resave failed:\n" + r.stdout + r.stderr)
        # 1. byte-identical single file
        a = open(os.path.join(OUT, "dtypes.safetensors"), "rb").read()
        b = open(os.path.join(tmp, "dtypes.safetensors"), "rb").read()
        assert a == b, "lacos' dtypes.safetensors differs from save_file's bytes"
        # 2. the reference reads lacos' files back exactly
        back = load_file(os.path.join(tmp, "dtypes.safetensors"))
        assert set(back) == set(dt) and all(same(back[k], dt[k]) for k in dt), "dtypes read back differ"
        with safetensors.safe_open(os.path.join(tmp, "exotic_held.safetensors"), "pt") as f:
            assert f.metadata() == expected["files"]["exotic.safetensors"]["metadata"], f.metadata()
            assert list(f.keys()) == ["ok"] and same(f.get_tensor("ok"), ex["ok"])
        # 3. sharded: same files, same bytes, same index contents
        ours, ref = os.path.join(tmp, "sharded"), os.path.join(OUT, "sharded")
        assert sorted(os.listdir(ours)) == sorted(os.listdir(ref)), (os.listdir(ours), os.listdir(ref))
        for f in os.listdir(ref):
            if f.endswith(".safetensors"):
                assert open(os.path.join(ours, f), "rb").read() == open(os.path.join(ref, f), "rb").read(), f
        io, ir = (json.load(open(os.path.join(d, "model.safetensors.index.json"))) for d in (ours, ref))
        assert io["weight_map"] == ir["weight_map"] and io["metadata"]["total_size"] == ir["metadata"]["total_size"]
        full = {}
        for f in os.listdir(ours):
            if f.endswith(".safetensors"):
                full.update(load_file(os.path.join(ours, f)))
        assert all(same(full[k], v) for k, v in sh)
        print("lacos -> reference: dtypes.safetensors byte-identical, read back exactly; "
              f"{len(os.listdir(ours)) - 1} shards byte-identical to huggingface_hub's; index equal")


if __name__ == "__main__":
    main()
