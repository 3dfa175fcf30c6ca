"""Benchmark: the same training step in PyTorch + peft (f32 BloomModel, LoRA
r=8 alpha=16 on query_key_value, MNRL with scale 20, bitsandbytes' 8-bit
Adam on the CPU when it runs there, else torch AdamW), same token ids and
threads. One JSON line."""
import json
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import BloomModel

d, B, threads, steps, ids_path, mask_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
torch.set_num_threads(threads)
model = BloomModel.from_pretrained(d, dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query_key_value"]))
model.train()
params = [p for p in model.parameters() if p.requires_grad]
opt_name = "torch.optim.AdamW"
try:
    import bitsandbytes as bnb
    opt = bnb.optim.Adam8bit(params, lr=2e-4)
    # probe one step on a copy to be sure the CPU path works
    opt_name = "bitsandbytes.optim.Adam8bit (CPU)"
except Exception:
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
ids = torch.tensor(np.load(ids_path), dtype=torch.long)
mask = torch.tensor(np.load(mask_path), dtype=torch.long)


def step():
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    emb = (h * m).sum(1) / m.sum(1)
    a, p = F.normalize(emb[:B], dim=-1), F.normalize(emb[B:], dim=-1)
    loss = F.cross_entropy(a @ p.T * 20.0, torch.arange(B))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad()
    return float(loss)


try:
    step()
except Exception as e:  # the 8-bit optimizer may not run on this CPU build
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
    opt_name = "torch.optim.AdamW (bitsandbytes failed: %s)" % type(e).__name__
    step()
times, cpu = [], []
for _ in range(steps):
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)   # process CPU time, all threads
times.sort()
med = times[(len(times) - 1) // 2]
T = ids.shape[1]
print(json.dumps({"impl": "pytorch+peft", "optimizer": opt_name, "seconds_per_step": med, "step_seconds": times, "step_cpu_seconds": cpu,
                  "tokens_per_s": 2 * B * T / med,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "threads": threads}))
