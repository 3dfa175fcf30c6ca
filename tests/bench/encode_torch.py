"""Benchmark: encode throughput of the same checkpoint in PyTorch +
transformers (f32), same token ids, same thread count. One JSON line."""
import json
import resource
import sys
import time

import numpy as np
import torch
from transformers import BloomModel

d, threads, reps, ids_path, mask_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
torch.set_num_threads(threads)
t0 = time.perf_counter()
model = BloomModel.from_pretrained(d, dtype=torch.float32).eval()
load_s = time.perf_counter() - t0
ids = torch.tensor(np.load(ids_path), dtype=torch.long)
mask = torch.tensor(np.load(mask_path), dtype=torch.long)


def encode():
    with torch.inference_mode():
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)


encode()
times = []
for _ in range(reps):
    t1 = time.perf_counter()
    encode()
    times.append(time.perf_counter() - t1)
times.sort()
med = times[(len(times) - 1) // 2]
tokens = int(mask.sum())
print(json.dumps({"impl": "pytorch", "quant": "f32", "tokens_per_s": tokens / med, "seconds": med, "load_seconds": load_s,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "threads": threads,
                  "torch": torch.__version__}))
