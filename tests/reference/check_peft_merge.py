"""Compares a checkpoint merged by lacos (lacos model merge / Model:save)
with peft's own merge: PeftModel.from_pretrained(base, adapter)
.merge_and_unload() on transformers' BloomModel. The merged directory is
loaded by BloomModel.from_pretrained with dtype="auto" (so its config.json
must name the dtype it was written in) and must load with no missing,
unexpected or mismatched keys. Prints one line of measurements for
tests/lua/test_lora_merge.lua, for each (adapter, merged directory) pair:

  MERGED_DIR dtype D keys N only N missing N unexpected N mismatched N weight_max_abs X hidden_max_rel X

only: weights in one state dict but not the other; weight_max_abs: largest |ours - peft's| over every weight (in f32);
hidden_max_rel: largest |difference| of every layer's hidden states
(output_hidden_states, the given ids and attention mask) over the largest
|peft's hidden state|."""
import sys

import numpy as np
import torch
from peft import PeftModel
from transformers import BloomModel

base_dir, ids_path, mask_path = sys.argv[1:4]
pairs = sys.argv[4:]   # adapter_dir merged_dir, repeated: one line printed per pair
ids = torch.tensor(np.load(ids_path), dtype=torch.long)
mask = torch.tensor(np.load(mask_path), dtype=torch.long)
m = mask[:, :, None].float()   # padded positions are not compared: neither model defines them

for adapter_dir, merged_dir in zip(pairs[0::2], pairs[1::2]):
    base = BloomModel.from_pretrained(base_dir, dtype=torch.float32).eval()
    ref = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().eval()
    ours, info = BloomModel.from_pretrained(merged_dir, dtype="auto", output_loading_info=True)
    ours = ours.eval()
    dtype = str(next(ours.parameters()).dtype).replace("torch.", "")
    rs, os_ = ref.state_dict(), ours.state_dict()
    keys = sorted(set(rs) & set(os_))
    wmax = max(float((os_[k].float() - rs[k].float()).abs().max()) for k in keys)
    with torch.no_grad():
        hr = ref(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        ho = ours.float()(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    num = max(float(((a - b).abs() * m).max()) for a, b in zip(ho, hr))
    den = max(float((b.abs() * m).max()) for b in hr)
    print("%s dtype %s keys %d only %d missing %d unexpected %d mismatched %d weight_max_abs %.3e hidden_max_rel %.3e" % (
        merged_dir, dtype, len(keys), len(set(rs) ^ set(os_)), len(info["missing_keys"]), len(info["unexpected_keys"]),
        len(info["mismatched_keys"]), wmax, num / den), flush=True)
