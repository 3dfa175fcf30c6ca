"""How the PyTorch engines of the benchmarks load BloomModel, one place for
the training step (train_step_gpu_torch.py) and encoding (encode_torch.py):
- "f32", "bf16": the checkpoint in that dtype. bf16 asks for
  scaled_dot_product_attention, the attention an 80 GB GPU user picks;
  transformers refuses it for a model class without that path (BLOOM in
  transformers 5.24 has none: its attention adds ALiBi through baddbmm),
  and then the model runs its eager attention and the returned info says so
  (attention, sdpa_refused) rather than claiming SDPA.
- "bnb8": bitsandbytes' LLM.int8 (BitsAndBytesConfig(load_in_8bit=True),
  outlier threshold 6.0, f16 elsewhere), the paper's stack; cuda only.
On cuda the weights load straight onto GPU 0."""


def load(d, kind, device):
    """(model, info): info names what ran (attention, bitsandbytes' version)."""
    import torch
    from transformers import BloomModel
    where = {"device_map": {"": 0}} if device == "cuda" else {}
    info = {}
    if kind == "bnb8":
        if device != "cuda":
            raise RuntimeError("bitsandbytes' LLM.int8 runs on cuda only here")
        import bitsandbytes as bnb
        from transformers import BitsAndBytesConfig
        model = BloomModel.from_pretrained(d, quantization_config=BitsAndBytesConfig(load_in_8bit=True),
                                           dtype=torch.float16, **where)
        info["bitsandbytes"] = bnb.__version__
    elif kind in ("f32", "bf16"):
        dtype = torch.float32 if kind == "f32" else torch.bfloat16
        model = None
        if kind == "bf16":
            try:
                model = BloomModel.from_pretrained(d, dtype=dtype, attn_implementation="sdpa", **where)
            except ValueError as e:
                info["sdpa_refused"] = str(e).split(". ")[0]
        if model is None:
            model = BloomModel.from_pretrained(d, dtype=dtype, **where)
    else:
        raise ValueError("unknown kind %r (f32, bf16 or bnb8)" % kind)
    info["attention"] = model.config._attn_implementation
    return model, info
