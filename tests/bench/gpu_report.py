"""The rows of the GPU benchmark tables, from the engines' JSON lines: one row
per engine, the strongest peer (the fastest engine that is not lacos) first,
then lacos, then the rest, with lacos' speed over each and the utilisation
of the GPU's dense int8 peak (model_flops.py). An engine that did not run
gets a row that says why. The rows go in above the table's marker; a file
without the marker gets this layout's header on top and its old text below.

usage: gpu_report.py train OUT DATE MODEL_DIR SHAPE PAIRS T CKPT RESULTS.jsonl
       gpu_report.py encode OUT DATE MODEL_DIR SHAPE B T RESULTS.jsonl
Prints the rows; exits 1 (writing nothing) when lacos has no result."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_flops  # noqa: E402

MARKER = "<!-- rows above -->"

TRAIN_HEADER = """# GPU training step: lacos vs PyTorch bf16 + peft and PyTorch + peft + bitsandbytes

`BENCH=gpu make bench` (tests/bench/bench_gpu.sh) on a machine with a GPU: one optimisation step = forward and
backward of 2·P sequences (P anchor/positive pairs) of T tokens, mean pooling, MNRL (scale 20), LoRA r=8
alpha=16 on query_key_value, clipping at 1.0; the same random-weight checkpoint, token ids and GPU in the same
run, one engine after the other; median of the timed steps after one warm-up; activation checkpointing on every
engine unless the ckpt column says off.
- lacos: int8 weights (cuBLASLt int8 GEMMs), int8 products for the input gradients, f32 activations, 8-bit Adam
  (tests/bench/train_step_gpu.lua).
- PyTorch bf16 + peft: BloomModel in torch.bfloat16, LoRA in f32 (peft's default), torch.optim.AdamW (fused,
  weight decay 0); scaled_dot_product_attention asked for (transformers 5.24 refuses it for BLOOM, whose
  attention adds ALiBi through baddbmm and has no SDPA path): the engine column names the attention that ran.
- PyTorch + peft + bitsandbytes: BloomModel in 8 bits (LLM.int8, threshold 6, f16 activations),
  prepare_model_for_kbit_training, bitsandbytes' Adam8bit: the paper's stack.
(tests/bench/train_step_gpu_torch.py.) "lacos is": the row's s/step over lacos'. MFU and HFU: tokens/s times
FLOPs per token over the GPU's dense int8 peak (H100 SXM and H200 1,979 TOPS, NVIDIA's datasheets' 3,958 with
2:4 sparsity halved; tests/bench/model_flops.py says what is counted): MFU counts what the step needs (forward,
input gradients of the frozen weights, LoRA's gradients: 24.4 GFLOP per token for bloom-7b1 at T=128), HFU adds
the forward that checkpointing recomputes (36.5 GFLOP). The bf16 engine's own ceiling is its bf16 peak, half the
int8 one. GPU memory: lacos' own allocations at their peak (its planner's prediction in brackets) and PyTorch's
max_memory_allocated; "device used" adds the CUDA context (lacos: context + engine peak; PyTorch: what the
device had in use after the steps, its caching allocator's reserve included).

| date | GPU | model | P x T | ckpt | engine | s/step | tokens/s | lacos is | MFU | HFU | peak GPU | device used | loss first → last |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""

ENCODE_HEADER = """# GPU encoding: lacos vs PyTorch bf16 and PyTorch + bitsandbytes

`BENCH=gpu make bench` (tests/bench/bench_gpu_encode.sh, tests/bench/encode_gpu_compare.py) on a machine with a
GPU: every engine encodes the same batch of B sequences x T tokens (no padding, mean pooling) from the same
random-weight checkpoint; embeddings come back to the host in every timed encode. PyTorch f32 (TF32 off) runs
first and alone and is the reference for every engine's cosine (per sentence, min / mean); then lacos int8
(cuBLASLt int8 GEMMs, f32 activations), PyTorch bf16 (scaled_dot_product_attention asked for, the engine column
names what transformers ran) and PyTorch + bitsandbytes (LLM.int8, threshold 6, f16) are loaded side by side
and timed in turns, one encode each per round, the first rotating; tokens/s from the median of the timed
encodes. "lacos int8 is": lacos' tokens/s over the row's. MFU: tokens/s times the forward's FLOPs per token over
the GPU's dense int8 peak (1,979 TOPS on H100 SXM and H200; tests/bench/model_flops.py; 12.1 GFLOP per token for
bloom-7b1 at T=128). Peak GPU: lacos' own allocations at their peak, PyTorch's max_memory_allocated; device used
adds the process's CUDA context (PyTorch: with its caching allocator's reserve).

| date | GPU | model | B x T | engine | tok/s | lacos int8 is | MFU | cosine to f32 (min / mean) | peak GPU | device used |
|---|---|---|---|---|---|---|---|---|---|---|
"""


def gib(b):
    return "%.2f GiB" % (b / 2**30) if b is not None else "-"


def pct(x):
    return "%.1f%%" % (100 * x) if x is not None else "-"


def order(rows, speed, is_lacos):
    """lacos and its peers: the fastest peer first, then lacos, then the others in their order."""
    ok = [r for r in rows if speed(r) is not None]
    lacos = next((r for r in ok if is_lacos(r)), None)
    peers = sorted((r for r in ok if not is_lacos(r)), key=speed, reverse=True)
    first = peers[:1]
    return lacos, first + [lacos] + [r for r in ok if r is not lacos and r not in first]


def insert(out, header, lines, old_title=None, new_title=None):
    """lines above the marker of OUT; a file without one gets header on top, its old title (if it
    starts with old_title) turned into new_title."""
    text = open(out).read() if os.path.exists(out) else ""
    if MARKER not in text:
        if old_title and text.startswith(old_title + "\n"):
            text = new_title + text[len(old_title):]
        text = header + MARKER + "\n" + ("\n" + text if text else "")
    text = text.replace(MARKER, "\n".join(lines) + "\n" + MARKER, 1)
    with open(out, "w") as f:
        f.write(text)


def engine_label(r):
    name = r.get("impl") if r.get("impl") != "lacos" else "lacos int8"
    if r.get("attention") and name.startswith("pytorch bf16"):
        name += ", %s attention" % r["attention"]
    return name


def train(out, date, model_dir, shape, pairs, T, ckpt, results):
    rows = [json.loads(line) for line in open(results) if line.strip()]
    lacos, ranked = order(rows, lambda r: r.get("tokens_per_s"), lambda r: r.get("impl") == "lacos")
    if lacos is None:
        err = next((r.get("error") for r in rows if r.get("impl") == "lacos"), "no lacos line")
        print("gpu_report: lacos failed: %s" % err, file=sys.stderr)
        return 1
    cfg = model_flops.read_config(model_dir)
    T, pairs = int(T), int(pairs)
    model = model_flops.per_token(cfg, T, r=8, training=True)
    hardware = model_flops.per_token(cfg, T, r=8, training=True, recompute=ckpt != "off")
    gpu = lacos.get("device")
    peak = model_flops.int8_peak_tops(gpu)
    lines = []
    for r in ranked:
        mem = gib(r.get("engine_peak_gpu_bytes", r.get("max_allocated_bytes")))
        if r.get("planned_peak_bytes") is not None:
            mem += " (planned %s)" % gib(r["planned_peak_bytes"])
        loss = "%.4f → %.4f" % (r["first_loss"], r["last_loss"]) if r.get("first_loss") is not None else "-"
        lines.append("| %s | %s | %s | %dx%d | %s | %s | %.3f | %.0f | %.2fx | %s | %s | %s | %s | %s |" % (
            date, r.get("device") or gpu, shape, pairs, T, ckpt, engine_label(r), r["seconds_per_step"],
            r["tokens_per_s"], r["seconds_per_step"] / lacos["seconds_per_step"],
            pct(model_flops.utilisation(r["tokens_per_s"], model, peak)),
            pct(model_flops.utilisation(r["tokens_per_s"], hardware, peak)), mem, gib(r.get("device_used_bytes")), loss))
    for r in rows:
        if r.get("tokens_per_s") is None:
            lines.append("| %s | %s | %s | %dx%d | %s | %s: not measured (%s) | - | - | - | - | - | - | - | - |" % (
                date, gpu, shape, pairs, T, ckpt, engine_label(r), r.get("error", "no result")))
    for r in rows:
        if r.get("sdpa_refused"):
            print("note: %s: transformers refused SDPA: %s" % (engine_label(r), r["sdpa_refused"]))
    insert(out, TRAIN_HEADER, lines, "# GPU training step: lacos vs PyTorch + peft + bitsandbytes",
           "## Earlier layout: lacos vs PyTorch + peft + bitsandbytes, one row per run")
    print("\n".join(lines))
    return 0


def encode(out, date, model_dir, shape, B, T, results):
    rows = [json.loads(line) for line in open(results) if line.strip()]
    lacos, ranked = order(rows, lambda r: r.get("tokens_per_s"), lambda r: r["engine"] == "lacos int8")
    if lacos is None:
        err = next((r.get("error") for r in rows if r["engine"] == "lacos int8"), "no lacos line")
        print("gpu_report: lacos failed: %s" % err, file=sys.stderr)
        return 1
    T = int(T)
    flops = model_flops.per_token(model_flops.read_config(model_dir), T)
    gpu = lacos.get("device")
    peak = model_flops.int8_peak_tops(gpu)
    lines = []
    for r in ranked:
        name = r["engine"] + (", %s attention" % r["attention"] if r["engine"] == "pytorch bf16" and r.get("attention") else "")
        cos = "reference" if r["engine"] == "pytorch f32" else \
            "%.5f / %.6f" % (r["cos_min"], r["cos_mean"]) if "cos_min" in r else "-"
        lines.append("| %s | %s | %s | %sx%d | %s | %.0f | %.2fx | %s | %s | %s | %s |" % (
            date, r.get("device") or gpu, shape, B, T, name, r["tokens_per_s"],
            lacos["tokens_per_s"] / r["tokens_per_s"], pct(model_flops.utilisation(r["tokens_per_s"], flops, peak)),
            cos, gib(r.get("peak_gpu_bytes")), gib(r.get("device_used_bytes"))))
    for r in rows:
        if r.get("tokens_per_s") is None:
            lines.append("| %s | %s | %s | %sx%d | %s: not measured (%s) | - | - | - | - | - | - |" % (
                date, gpu, shape, B, T, r["engine"], r.get("error", "no result")))
    insert(out, ENCODE_HEADER, lines)
    print("\n".join(lines))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "train" and len(argv) == 10:
        return train(*argv[2:])
    if len(argv) >= 2 and argv[1] == "encode" and len(argv) == 9:
        return encode(*argv[2:])
    print(__doc__.split("\n\n")[-1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
