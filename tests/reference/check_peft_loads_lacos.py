"""Loads an adapter saved by lacos with peft.PeftModel.from_pretrained on
the fixture base model and prints the max relative difference between the
embeddings peft computes and the ones lacos wrote (embeddings.npy in the
adapter directory). Used by tests/lua/test_peft_interop.lua when the
reference virtualenv exists."""
import sys

import numpy as np
import torch
from peft import PeftModel
from transformers import BloomModel

base_dir, adapter_dir, ids_path, mask_path = sys.argv[1:5]
base = BloomModel.from_pretrained(base_dir, dtype=torch.float32).eval()
model = PeftModel.from_pretrained(base, adapter_dir).eval()
ids = torch.tensor(np.load(ids_path), dtype=torch.long)
mask = torch.tensor(np.load(mask_path), dtype=torch.long)
with torch.no_grad():
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state
m = mask.float()
emb = ((h * m[:, :, None]).sum(1) / m.sum(1, keepdim=True)).numpy()
ours = np.load(adapter_dir + "/embeddings.npy")
print("max_rel_diff %.3e" % (np.abs(emb - ours).max() / np.abs(emb).max()))
