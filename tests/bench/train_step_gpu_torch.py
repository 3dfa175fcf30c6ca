"""Benchmark on the GPU: the same training step in PyTorch + peft +
bitsandbytes, the paper's stack: BloomModel loaded in 8 bits
(BitsAndBytesConfig(load_in_8bit=True), LLM.int8 with threshold 6.0, f16
elsewhere), peft LoRA r=8 alpha=16 on query_key_value, MNRL with scale 20,
clipping at 1.0, bitsandbytes' Adam8bit; gradient checkpointing when asked
(as lacos). Same token ids. One JSON line (with "error" when the stack
cannot run here, e.g. bitsandbytes missing).
usage: train_step_gpu_torch.py MODEL_DIR PAIRS STEPS IDS.npy MASK.npy [on|off]"""
import json
import sys
import time

d, B, steps, ids_path, mask_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ckpt = (sys.argv[6] if len(sys.argv) > 6 else "on") != "off"
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig, BloomModel
except Exception as e:  # noqa: BLE001 - report any missing piece as data
    print(json.dumps({"impl": "pytorch+peft+bitsandbytes", "error": "%s: %s" % (type(e).__name__, e)}))
    sys.exit(0)

torch.cuda.reset_peak_memory_stats()
t_load = time.perf_counter()
model = BloomModel.from_pretrained(d, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map={"": 0},
                                   dtype=torch.float16)
model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=ckpt)
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query_key_value"]))
t_load = time.perf_counter() - t_load
weights = torch.cuda.memory_allocated()
model.train()
params = [p for p in model.parameters() if p.requires_grad]
opt = bnb.optim.Adam8bit(params, lr=2e-4)
ids = torch.tensor(np.load(ids_path), dtype=torch.long, device="cuda")
mask = torch.tensor(np.load(mask_path), dtype=torch.long, device="cuda")
losses = []


def step():
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    m = mask.unsqueeze(-1).float()
    emb = (h * m).sum(1) / m.sum(1)
    a, p = F.normalize(emb[:B], dim=-1), F.normalize(emb[B:], dim=-1)
    loss = F.cross_entropy(a @ p.T * 20.0, torch.arange(B, device="cuda"))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad()
    torch.cuda.synchronize()
    losses.append(float(loss))


step()
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
times.sort()
med = times[(len(times) - 1) // 2]
T = ids.shape[1]
fr, tot = torch.cuda.mem_get_info()
print(json.dumps({"impl": "pytorch+peft+bitsandbytes", "device": torch.cuda.get_device_name(0),
                  "bitsandbytes": bnb.__version__, "torch": torch.__version__, "seconds_per_step": med,
                  "tokens_per_s": 2 * B * T / med, "max_allocated_bytes": torch.cuda.max_memory_allocated(),
                  "max_reserved_bytes": torch.cuda.max_memory_reserved(), "weights_gpu_bytes": weights,
                  "device_used_bytes": tot - fr, "checkpointing": ckpt, "load_seconds": t_load,
                  "first_loss": losses[0], "last_loss": losses[-1]}))
