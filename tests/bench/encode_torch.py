"""Benchmark engine: PyTorch + transformers BloomModel encoding the same batch
of token ids, f32 or with torch.ao.quantization.quantize_dynamic (int8
weights per output channel of every nn.Linear, activations quantised per
tensor at run time, PyTorch's oneDNN quantized engine); on a GPU
(ENCODE_DEVICE=cuda) also bf16 or bitsandbytes' LLM.int8 (bnb8), loaded as
tests/bench/torch_bloom.py says. Speaks the protocol of
tests/bench/encode.lua (driven by encode_compare.py, encode_gpu_compare.py);
on cuda each encode ends with the device synchronised and the "done" line
adds peak_gpu_bytes (max_memory_allocated) and device_used_bytes.

usage: [ENCODE_DEVICE=cpu|cuda] encode_torch.py MODEL_DIR f32|dynamic|bf16|bnb8 THREADS IDS.npy MASK.npy EMB.npy"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_bloom  # noqa: E402


def say(obj):
    print(json.dumps(obj), flush=True)


def main():
    d, quant, threads, ids_path, mask_path, emb_path = sys.argv[1:7]
    device = os.environ.get("ENCODE_DEVICE", "cpu")
    cuda = device == "cuda"
    torch.set_num_threads(int(threads))
    # the f32 reference is f32 throughout: no TF32 in its products on the GPU
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    try:
        model, info = torch_bloom.load(d, "f32" if quant == "dynamic" else quant, device)
    except Exception as e:  # noqa: BLE001 - the driver reports why this engine did not start
        say({"event": "error", "error": "%s: %s" % (type(e).__name__, e)})
        return 1
    model.eval()
    if quant == "dynamic":
        torch.backends.quantized.engine = "onednn"
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    load_s = time.perf_counter() - t0
    ids = torch.tensor(np.load(ids_path), dtype=torch.long, device=device)
    mask = torch.tensor(np.load(mask_path), dtype=torch.long, device=device)

    def encode():
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            m = mask.unsqueeze(-1).float()
            e = ((h * m).sum(1) / m.sum(1)).cpu()   # on the host, as lacos returns it
        return e

    np.save(emb_path, encode().numpy().astype(np.float32))
    say(dict(info, event="ready", impl="pytorch", quant=quant, device=device, load_seconds=load_s,
             threads=int(threads), torch=torch.__version__,
             engine=torch.backends.quantized.engine if quant == "dynamic" else None,
             device_name=torch.cuda.get_device_name(0) if cuda else None))
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        t1, c1 = time.perf_counter(), time.process_time()
        encode()
        say({"seconds": time.perf_counter() - t1, "cpu_seconds": time.process_time() - c1})
    done = {"event": "done", "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if cuda:
        fr, tot = torch.cuda.mem_get_info()
        done.update(peak_gpu_bytes=torch.cuda.max_memory_allocated(), device_used_bytes=tot - fr)
    say(done)


if __name__ == "__main__":
    sys.exit(main())
