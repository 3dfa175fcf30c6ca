"""Benchmark engine: PyTorch + transformers BloomModel encoding the same batch
of token ids, f32 or with torch.ao.quantization.quantize_dynamic (int8
weights per output channel of every nn.Linear, activations quantised per
tensor at run time, PyTorch's oneDNN quantized engine). Speaks the protocol
of tests/bench/encode.lua (driven by encode_compare.py).

usage: encode_torch.py MODEL_DIR f32|dynamic THREADS IDS.npy MASK.npy EMB.npy"""
import json
import resource
import sys
import time

import numpy as np
import torch
from transformers import BloomModel


def say(obj):
    print(json.dumps(obj), flush=True)


def main():
    d, quant, threads, ids_path, mask_path, emb_path = sys.argv[1:7]
    torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    model = BloomModel.from_pretrained(d, dtype=torch.float32).eval()
    if quant == "dynamic":
        torch.backends.quantized.engine = "onednn"
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    load_s = time.perf_counter() - t0
    ids = torch.tensor(np.load(ids_path), dtype=torch.long)
    mask = torch.tensor(np.load(mask_path), dtype=torch.long)

    def encode():
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            return (h * m).sum(1) / m.sum(1)

    np.save(emb_path, encode().numpy().astype(np.float32))
    say({"event": "ready", "impl": "pytorch", "quant": quant, "load_seconds": load_s, "threads": int(threads),
         "torch": torch.__version__, "engine": torch.backends.quantized.engine if quant == "dynamic" else None})
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        t1, c1 = time.perf_counter(), time.process_time()
        encode()
        say({"seconds": time.perf_counter() - t1, "cpu_seconds": time.process_time() - c1})
    say({"event": "done", "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


if __name__ == "__main__":
    main()
