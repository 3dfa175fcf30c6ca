"""Encode benchmark on the GPU: the engines of encode_compare.py's protocol
with their models on "cuda" (ENCODE_DEVICE=cuda), each encoding the same
batch of token ids from the same checkpoint; one JSON line per engine
(tokens/s from the median of REPS timed encodes after one warm-up, peak GPU
memory, cosine of each sentence's embedding to PyTorch f32's).

PyTorch f32 (the reference; TF32 off) runs first and alone: its f32 copy of
a bloom-7b1 is 28 GB. Then lacos int8, PyTorch bf16 and PyTorch +
bitsandbytes LLM.int8 are loaded side by side (about 35 GB together for
bloom-7b1) and timed in turns, one encode each per round, the first of a
round rotating, as on the CPU: the GPU runs one engine at a time, the
others wait on their stdin.

The GPU machine's Python runs with its own libraries and lacos with the
bundle's (tests/bench/gpu_session.sh): LACOS_LD_LIBRARY_PATH, when set, is
the LD_LIBRARY_PATH lacos is started with.

usage: encode_gpu_compare.py LACOS MODEL_DIR REPS IDS.npy MASK.npy WORKDIR
(F32_REPS in the environment: timed encodes of the reference, default 1;
ENCODE_DEVICE=cpu: the same on the CPU, where bitsandbytes reports an error)"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from encode_compare import Engine, cosines, in_turns  # noqa: E402


def main():
    lacos, model, reps, ids, mask, work = sys.argv[1:7]
    reps = int(reps)
    py = sys.executable
    # ENCODE_DEVICE=cpu runs the same engines on the CPU: a check of this driver where there is no GPU
    env = dict(os.environ, ENCODE_DEVICE=os.environ.get("ENCODE_DEVICE", "cuda"))
    lacos_env = dict(env)
    if os.environ.get("LACOS_LD_LIBRARY_PATH"):
        lacos_env["LD_LIBRARY_PATH"] = os.environ["LACOS_LD_LIBRARY_PATH"]
    os.makedirs(work, exist_ok=True)

    def emb(name):
        return os.path.join(work, name.replace(" ", "_").replace("+", "") + ".npy")

    torch_engine = os.path.join(HERE, "encode_torch.py")
    commands = {
        "pytorch f32": ([py, torch_engine, model, "f32", "1", ids, mask], env),
        "lacos int8": ([lacos, "run", os.path.join(HERE, "encode.lua"), model, "int8", ids, mask], lacos_env),
        "pytorch bf16": ([py, torch_engine, model, "bf16", "1", ids, mask], env),
        "pytorch + bitsandbytes int8": ([py, torch_engine, model, "bnb8", "1", ids, mask], env),
    }
    done = []

    def start(name):
        cmd, e = commands[name]
        try:
            return Engine(name, cmd + [emb(name)], e, emb(name))
        except (RuntimeError, OSError, ValueError) as err:
            print(json.dumps({"engine": name, "error": str(err)}), flush=True)
            return None

    ref = start("pytorch f32")
    if ref:
        for _ in range(int(os.environ.get("F32_REPS", 1))):
            ref.run()
        ref.finish()
        done.append(ref)
    group = [e for e in (start(n) for n in ("lacos int8", "pytorch bf16", "pytorch + bitsandbytes int8")) if e]
    in_turns(group, reps)
    done += group

    tokens = int(np.load(mask).sum())
    ref_emb = np.load(emb("pytorch f32")) if ref else None
    for e in done:
        out = {"engine": e.name, "tokens_per_s": tokens / float(np.median(e.times)), "seconds": e.times,
               "tokens": tokens, "load_seconds": e.ready.get("load_seconds"),
               "peak_gpu_bytes": e.info.get("peak_gpu_bytes"), "device_used_bytes": e.info.get("device_used_bytes"),
               "device": e.ready.get("device_name") or e.ready.get("device")}
        for k in ("torch", "attention", "sdpa_refused", "bitsandbytes"):
            if e.ready.get(k) is not None:
                out[k] = e.ready[k]
        if ref_emb is not None:
            out["cos_min"], out["cos_mean"] = cosines(e.emb, ref_emb)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
