"""Model FLOPs per token of a BLOOM pass, and the GPU peaks they are read
against: the arithmetic behind the utilisation columns of the GPU benchmark
tables (gpu_report.py).

Counted: every matrix product, a multiply-add as 2 operations (an int8
product's ops as FLOPs). Not counted: layernorms, GELU, softmax, residuals,
embedding lookups, pooling and the loss (a few per cent of a block's time on
the GPU, no tensor-core work). Per token, with h = hidden size, L layers,
T = sequence length, r = LoRA rank on query_key_value:
- the four linears of a block hold 12 h^2 weights (query_key_value 3 h^2,
  dense h^2, dense_h_to_4h and dense_4h_to_h 4 h^2 each): forward 24 h^2;
- attention: scores Q K^T and their product with V, T x head_dim per head
  and token each: forward 4 T h (the full T x T square: the engines compute
  it whole, the causal mask is applied to it);
- LoRA on query_key_value: A (r x h) then B (3h x r): forward 8 r h.
Training with the base frozen needs, after the forward, only the input
gradient of each base linear (24 h^2; its weight gradient is never formed),
the attention's four backward products (8 T h) and LoRA's input gradient and
two weight gradients (16 r h). The first block's input gradient is counted
as every other block's, for every engine (one that leaves part of it out
does 1/L less of the backward than counted).
"model" FLOPs are what the step needs; activation checkpointing recomputes
each block's forward once more before its backward, which "hardware"
FLOPs add (the model and hardware FLOPs utilisation, MFU and HFU, of
the PaLM paper, Chowdhery et al. 2022)."""
import json
import os

# Dense (no 2:4 sparsity) int8 tensor-core peaks in TOPS, from NVIDIA's
# datasheets, which print the sparse figure (twice the dense) for INT8:
# H100 SXM 3,958 and H100 PCIe 3,026 (H100 Tensor Core GPU datasheet),
# H200 3,958 (H200 product page: the same GH100 compute as H100 SXM),
# A100 1,248 (A100 datasheet, SXM and PCIe). Keys: the device name CUDA reports.
INT8_DENSE_TOPS = {
    "NVIDIA H100 80GB HBM3": 1979.0,
    "NVIDIA H200": 1979.0,
    "NVIDIA H100 PCIe": 1513.0,
    "NVIDIA A100-SXM4-80GB": 624.0,
    "NVIDIA A100-SXM4-40GB": 624.0,
    "NVIDIA A100 80GB PCIe": 624.0,
    "NVIDIA A100-PCIE-40GB": 624.0,
}


def int8_peak_tops(device):
    """The GPU's dense int8 peak in TOPS, or None for a GPU not listed
    (PEAK_INT8_TOPS in the environment overrides the table)."""
    if os.environ.get("PEAK_INT8_TOPS"):
        return float(os.environ["PEAK_INT8_TOPS"])
    return INT8_DENSE_TOPS.get(device)


def read_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    return {"h": cfg["hidden_size"], "L": cfg.get("n_layer", cfg.get("num_hidden_layers"))}


def per_token(cfg, T, r=0, training=False, recompute=False):
    """FLOPs per token of one pass over sequences of T tokens: a forward
    (encoding), or a training step (forward and backward, frozen base,
    LoRA rank r on query_key_value); recompute adds the forward that
    activation checkpointing runs again."""
    h, L = cfg["h"], cfg["L"]
    linear, attention, lora = 24 * h * h, 4 * T * h, 8 * r * h
    forward = linear + attention + lora
    if not training:
        return L * forward
    backward = linear + 2 * attention + 2 * lora
    return L * (forward + backward + (forward if recompute else 0))


def utilisation(tokens_per_s, flops_per_token, peak_tops):
    """The share of the peak the measured rate of work is, or None without a peak."""
    if not peak_tops or not tokens_per_s:
        return None
    return tokens_per_s * flops_per_token / (peak_tops * 1e12)
