"""Writes tests/fuzz/seeds/safetensors/: tiny hand-made inputs that reach the
loader's rarer branches quickly (the fixtures are all well-formed):
misaligned data, holes, overlaps, both spellings of a name, sub-byte and
unsupported dtypes, high ranks, metadata edge cases, and packed sharded
checkpoints (INDEX SEP SHARD1 SEP SHARD2, as fuzz_safetensors.c reads them)
with a tensor in two shards or a missing shard. Standard library only."""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")
SEP = b"\n\0SHARD\0\n"


def st(header, data=b"", pad=True):
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def t(dtype, shape, b, e):
    return {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}


seeds = {
    "misaligned": st({"a": t("F32", [2], 0, 8), "b": t("U8", [1], 8, 9)}, bytes(range(9)), pad=False),
    "hole": st({"a": t("F32", [1], 0, 4), "b": t("F32", [1], 8, 12)}, bytes(12)),
    "overlap": st({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, bytes(12)),
    "trailing": st({"a": t("U8", [2], 0, 2)}, bytes(3)),
    "ambiguous": st({"h.w": t("U8", [1], 0, 1), "transformer.h.w": t("U8", [1], 1, 2)}, b"xy"),
    "subbyte": st({"q": t("F4", [4], 0, 2), "r": t("F6_E2M3", [4], 2, 5), "s": t("F4", [3], 5, 7)}, bytes(7)),
    "unsupported": st({"b": t("BOOL", [2], 0, 2), "c": t("C64", [1], 2, 10), "f": t("F8_E8M0", [1], 10, 11)}, bytes(11)),
    "rank6": st({"a": t("F32", [1, 1, 1, 1, 2, 1], 0, 8), "z": t("F64", [], 8, 16)}, bytes(16)),
    "zero_dims": st({"e": t("F16", [0, 4611686018427387904], 0, 0), "o": t("I64", [1], 0, 8)}, bytes(8)),
    "meta": st({"__metadata__": {"format": "pt", "": "", "k\u00e9y": "v\u2713"}, "x": t("BF16", [1], 0, 2)}, b"\x80?"),
    "meta_null": st({"__metadata__": None, "x": t("I8", [2], 0, 2)}, b"\x80\x7f"),
    "empty": st({}),
    "all_held": st({"a": t("F64", [1], 0, 8), "b": t("I64", [1], 8, 16), "c": t("F32", [1], 16, 20),
                    "d": t("I32", [1], 20, 24), "e": t("BF16", [1], 24, 26), "f": t("F16", [1], 26, 28),
                    "g": t("I8", [1], 28, 29), "h": t("U8", [1], 29, 30)}, bytes(range(30))),
}

shard1 = st({"x": t("U8", [2], 0, 2)}, b"ab")
shard2 = st({"y": t("U8", [1], 0, 1), "transformer.x": t("U8", [1], 1, 2)}, b"cd")
shard2_dup = st({"y": t("U8", [1], 0, 1), "x": t("U8", [1], 1, 2)}, b"cd")
A, B = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


def index(wm, meta=None):
    return json.dumps({"metadata": meta or {"total_size": 4}, "weight_map": wm}, indent=2).encode()


seeds["packed_ok"] = index({"x": A, "y": B}) + SEP + shard1 + SEP + st({"y": t("U8", [1], 0, 1)}, b"c")
seeds["packed_prefix_both"] = index({"x": A, "y": B, "transformer.x": B}) + SEP + shard1 + SEP + shard2
seeds["packed_two_shards"] = index({"x": A, "y": B}) + SEP + shard1 + SEP + shard2_dup
seeds["packed_missing_shard"] = index({"x": A, "y": "model-00003-of-00003.safetensors"}) + SEP + shard1
seeds["packed_wrong_shard"] = index({"x": B, "y": A}) + SEP + shard1 + SEP + shard2
seeds["packed_meta"] = index({"x": A}, {"total_size": 2, "note": "n", "skip": [1]}) + SEP + shard1

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {OUT}")
