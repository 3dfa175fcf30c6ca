"""Benchmark engine: ONNX Runtime (CPU execution provider) running the int8
model of tests/bench/export_onnx.py on the same batch of token ids. Speaks
the protocol of tests/bench/encode.lua (driven by encode_compare.py).

usage: encode_ort.py MODEL.onnx THREADS IDS.npy MASK.npy EMB.npy"""
import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort


def say(obj):
    print(json.dumps(obj), flush=True)


def main():
    path, threads, ids_path, mask_path, emb_path = sys.argv[1:6]
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t0 = time.perf_counter()
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    feed = {"input_ids": np.load(ids_path).astype(np.int64), "attention_mask": np.load(mask_path).astype(np.int64)}
    np.save(emb_path, session.run(None, feed)[0].astype(np.float32))
    say({"event": "ready", "impl": "onnxruntime", "quant": "int8", "load_seconds": load_s, "threads": int(threads),
         "onnxruntime": ort.__version__})
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        t1, c1 = time.perf_counter(), time.process_time()
        session.run(None, feed)
        say({"seconds": time.perf_counter() - t1, "cpu_seconds": time.process_time() - c1})
    say({"event": "done", "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


if __name__ == "__main__":
    main()
