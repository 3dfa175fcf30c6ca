"""Encode benchmark driver: every engine encodes the same batch of token ids
from the same random-weight checkpoint with the same thread count, and
prints one JSON line per engine (tokens/s from the median of REPS timed
encodes after one warm-up, the median process CPU time of an encode, peak
RSS, cosine of each sentence's embedding to PyTorch f32's).

The int8 engines (lacos, ONNX Runtime, PyTorch quantize_dynamic, llama.cpp
Q8_0) are loaded side by side and timed in turns, one encode each per round,
the first of a round rotating, so that whatever else the machine does falls
on all of them alike. The f32 engines (PyTorch, whose embeddings are the
reference, then lacos) run one after the other: together they would hold two
f32 copies of the model. Each engine is a process speaking the protocol of
tests/bench/encode.lua.

usage: encode_compare.py LACOS MODEL_DIR ONNX_MODEL GGUF_MODEL THREADS REPS IDS.npy MASK.npy WORKDIR
(F32_REPS in the environment: timed encodes of the f32 engines, default REPS)"""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class Engine:
    def __init__(self, name, cmd, env, emb):
        self.name, self.emb, self.times, self.cpu, self.info = name, emb, [], [], {}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.ready = self.read()
        if self.ready.get("event") == "error":
            self.proc.wait()
            raise RuntimeError(self.ready["error"])
        if self.ready.get("event") != "ready":
            raise RuntimeError(f"{name}: did not start: {self.ready}")

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: exited (status {self.proc.wait()})")
        return json.loads(line)

    def run(self):
        self.proc.stdin.write("run\n")
        r = self.read()
        self.times.append(r["seconds"])
        self.cpu.append(r.get("cpu_seconds"))

    def finish(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.info = self.read()
        self.proc.wait()


def in_turns(group, reps):
    """reps rounds of one encode per engine, the first of a round rotating, so
    that whatever else the machine does falls on all of them alike; then
    each engine finishes."""
    for r in range(reps):
        for k in range(len(group)):
            group[(r + k) % len(group)].run()
    for e in group:
        e.finish()


def cosines(emb_path, ref):
    """(min, mean) over the sentences of each embedding's cosine to ref's row."""
    x, ref = np.load(emb_path).astype(np.float64), np.asarray(ref, dtype=np.float64)
    cos = (x * ref).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(ref, axis=1))
    return float(cos.min()), float(cos.mean())


def main():
    lacos, model, onnx, gguf, threads, reps, ids, mask, work = sys.argv[1:10]
    reps = int(reps)
    py = sys.executable
    env = dict(os.environ, LACOS_THREADS=threads, OMP_NUM_THREADS=threads)
    os.makedirs(work, exist_ok=True)

    def emb(name):
        return os.path.join(work, name.replace(" ", "_") + ".npy")

    commands = {
        "pytorch f32": [py, os.path.join(HERE, "encode_torch.py"), model, "f32", threads, ids, mask],
        "lacos f32": [lacos, "run", os.path.join(HERE, "encode.lua"), model, "f32", ids, mask],
        "lacos int8": [lacos, "run", os.path.join(HERE, "encode.lua"), model, "int8", ids, mask],
        "onnxruntime int8": [py, os.path.join(HERE, "encode_ort.py"), onnx, threads, ids, mask],
        "pytorch dynamic int8": [py, os.path.join(HERE, "encode_torch.py"), model, "dynamic", threads, ids, mask],
        "llama.cpp q8_0": [py, os.path.join(HERE, "encode_llamacpp.py"), gguf, threads, ids, mask],
    }
    done = []

    def start(name):
        try:
            return Engine(name, commands[name] + [emb(name)], env, emb(name))
        except (RuntimeError, OSError, ValueError) as e:
            print(json.dumps({"engine": name, "error": str(e)}), flush=True)
            return None

    # the f32 engines are there for the reference embeddings and scale; on a
    # busy machine F32_REPS (default REPS) times fewer of their slow encodes
    f32_reps = int(os.environ.get("F32_REPS", reps))
    for name in ("pytorch f32", "lacos f32"):   # one at a time
        e = start(name)
        if e:
            for _ in range(f32_reps):
                e.run()
            e.finish()
            done.append(e)
    group = [e for e in (start(n) for n in ("lacos int8", "onnxruntime int8", "pytorch dynamic int8",
                                                 "llama.cpp q8_0")) if e]
    in_turns(group, reps)
    done += group

    tokens = int(np.load(mask).sum())
    ref = np.load(emb("pytorch f32")) if os.path.exists(emb("pytorch f32")) else None
    for e in done:
        out = {"engine": e.name, "tokens_per_s": tokens / float(np.median(e.times)), "seconds": e.times,
               "cpu_seconds": float(np.median(e.cpu)) if None not in e.cpu else None,
               "load_seconds": e.ready.get("load_seconds"), "peak_rss_bytes": e.info.get("peak_rss_bytes"),
               "threads": e.ready.get("threads")}
        for k in ("torch", "onnxruntime", "llama_cpp_python", "llama_cpp_system", "lm_head"):
            if e.ready.get(k) is not None:
                out[k] = e.ready[k]
        if e.ready.get("engine"):
            out["quantized_engine"] = e.ready["engine"]
        if ref is not None:
            out["cos_min"], out["cos_mean"] = cosines(e.emb, ref)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
