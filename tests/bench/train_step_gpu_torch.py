"""Benchmark on the GPU: the training step of tests/bench/train_step_gpu.lua
in PyTorch + peft, one engine per run:
- bnb8: the paper's stack: BloomModel loaded in 8 bits
  (BitsAndBytesConfig(load_in_8bit=True), LLM.int8 with threshold 6.0, f16
  elsewhere), prepare_model_for_kbit_training, bitsandbytes' Adam8bit;
- bf16: what a user with an 80 GB GPU runs: BloomModel in torch.bfloat16,
  scaled_dot_product_attention when the installed transformers has it for
  BLOOM (else its eager attention, and the JSON says which ran and why),
  torch.optim.AdamW (fused on cuda, weight decay 0 as Adam8bit's).
Both: peft LoRA r=8 alpha=16 on query_key_value (peft keeps the adapter in
f32), mean pooling, MNRL with scale 20, clipping at 1.0, gradient
checkpointing when asked (as lacos). Same token ids. Median of STEPS timed
steps after one warm-up. One JSON line (with "error" when the stack cannot
run here, e.g. bitsandbytes missing). --device cpu runs the same step on
the CPU (a check of the script with a tiny model where there is no GPU;
GPU memory fields are then null).
usage: train_step_gpu_torch.py MODEL_DIR PAIRS STEPS IDS.npy MASK.npy [on|off] [--engine bnb8|bf16] [--device cuda|cpu]"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_bloom  # noqa: E402

ENGINES = {"bnb8": "pytorch + peft + bitsandbytes", "bf16": "pytorch bf16 + peft"}


def prepare(model, kind, device, ckpt):
    """The engine's training setup: checkpointing and its optimizer (a function of the parameters)."""
    import torch
    if kind == "bnb8":
        import bitsandbytes as bnb
        from peft import prepare_model_for_kbit_training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=ckpt)
        return model, lambda params: bnb.optim.Adam8bit(params, lr=2e-4), {"optimizer": "bitsandbytes Adam8bit"}
    if ckpt:
        # as prepare_model_for_kbit_training does for the 8-bit model: transformers' default
        # checkpointing, and embeddings output that requires a gradient (which reentrant
        # checkpointing, the default of older transformers, needs to reach the LoRA weights)
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    fused = device == "cuda"
    return model, lambda params: torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0, fused=fused), \
        {"optimizer": "torch.optim.AdamW(fused=%s, weight_decay=0)" % fused}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("pairs", type=int)
    ap.add_argument("steps", type=int)
    ap.add_argument("ids")
    ap.add_argument("mask")
    ap.add_argument("ckpt", nargs="?", default="on", choices=["on", "off"])
    ap.add_argument("--engine", default="bnb8", choices=sorted(ENGINES))
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    a = ap.parse_args()
    name, ckpt, dev = ENGINES[a.engine], a.ckpt != "off", a.device
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
        from peft import LoraConfig, get_peft_model
        if dev == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch sees no cuda device")
        cuda = dev == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t_load = time.perf_counter()
        model, info = torch_bloom.load(a.model_dir, a.engine, dev)
        model, make_opt, more = prepare(model, a.engine, dev, ckpt)
        info.update(more)
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=["query_key_value"]))
        t_load = time.perf_counter() - t_load
    except Exception as e:  # noqa: BLE001 - report any missing piece as data
        print(json.dumps({"impl": name, "engine": a.engine, "error": "%s: %s" % (type(e).__name__, e)}))
        return 0
    weights = torch.cuda.memory_allocated() if cuda else None
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_opt(params)
    ids = torch.tensor(np.load(a.ids), dtype=torch.long, device=dev)
    mask = torch.tensor(np.load(a.mask), dtype=torch.long, device=dev)
    B = a.pairs
    if ids.shape[0] != 2 * B:
        print(json.dumps({"impl": name, "engine": a.engine,
                          "error": "%s has %d rows, not 2 x %d pairs" % (a.ids, ids.shape[0], B)}))
        return 0
    losses = []

    def step():
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        m = mask.unsqueeze(-1).float()
        emb = (h * m).sum(1) / m.sum(1)
        x, y = F.normalize(emb[:B], dim=-1), F.normalize(emb[B:], dim=-1)
        loss = F.cross_entropy(x @ y.T * 20.0, torch.arange(B, device=dev))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if cuda:
            torch.cuda.synchronize()
        losses.append(float(loss.detach()))

    step()   # warm-up: kernel selection, the caching allocator's first blocks
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[(len(times) - 1) // 2]
    T = ids.shape[1]
    out = {"impl": name, "engine": a.engine, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
           "torch": torch.__version__, "seconds_per_step": med, "tokens_per_s": 2 * B * T / med,
           "checkpointing": ckpt, "load_seconds": t_load, "first_loss": losses[0], "last_loss": losses[-1],
           "lora_params": sum(p.numel() for p in params)}
    out.update(info)
    if cuda:
        fr, tot = torch.cuda.mem_get_info()
        out.update({"max_allocated_bytes": torch.cuda.max_memory_allocated(),
                    "max_reserved_bytes": torch.cuda.max_memory_reserved(), "weights_gpu_bytes": weights,
                    "device_used_bytes": tot - fr})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
