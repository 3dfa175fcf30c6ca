"""ONNX Runtime's side of the encode benchmark: BloomModel (f32) from a
checkpoint exported with torch.onnx, mean pooling included, then quantised
with onnxruntime.quantization.quantize_dynamic (s8 weights per output
channel, activations quantised per tensor at run time). The int8 model is
what a user of ONNX Runtime would run on a CPU.

usage: export_onnx.py MODEL_DIR OUT_DIR
writes OUT_DIR/model.onnx (+ model.onnx.data), the int8 model; skips the
work when it is there (delete OUT_DIR to redo it). Memory: see below; the
f32 export (OUT_DIR.f32) is kept until the quantisation has succeeded."""
import os
import shutil
import sys
import time

import torch
from transformers import BloomModel


class Encoder(torch.nn.Module):
    """input_ids, attention_mask (B,T) -> mean-pooled last hidden state (B,C)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        h = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        w = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1)


def main():
    model_dir, out_dir = sys.argv[1], sys.argv[2]
    final = os.path.join(out_dir, "model.onnx")
    if os.path.exists(final):
        print(f"{final}: already there")
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out_dir + ".f32"
    f32 = os.path.join(tmp, "model.onnx")
    t0 = time.time()
    if not os.path.exists(os.path.join(tmp, "exported")):   # a finished f32 export is kept until quantised
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        model = BloomModel.from_pretrained(model_dir, dtype=torch.float32).eval()
        ids = torch.randint(4, 30000, (2, 8))
        mask = torch.ones(2, 8, dtype=torch.long)
        # The TorchScript exporter (dynamo=False): plain MatMul nodes against
        # weight initializers, which quantize_dynamic turns into int8 products.
        torch.onnx.export(Encoder(model), (ids, mask), f32, input_names=["input_ids", "attention_mask"],
                          output_names=["embeddings"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "B", 1: "T"}, "attention_mask": {0: "B", 1: "T"},
                                        "embeddings": {0: "B"}})
        del model
        open(os.path.join(tmp, "exported"), "w").close()
    t1 = time.time()
    # quantize_dynamic holds about three copies of the f32 model at its peak
    # (it reloads the model once more for shape inference): ~7 GB for
    # bloom-560m, ~21 GB for bloom-1b7.
    part = out_dir + ".part"
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    quantize_dynamic(f32, os.path.join(part, "model.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                     use_external_data_format=True)
    shutil.rmtree(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(part, out_dir)
    print(f"{final}: exported in {t1 - t0:.0f} s, quantised in {time.time() - t1:.0f} s")


if __name__ == "__main__":
    main()
