"""PEFT + torch on a BertModel, against lacos (tests/lua/test_bert.lua):
  load BASE ADAPTER IDS MASK          peft loads lacos' adapter; prints the max relative
                                      difference of the mean-pooled embeddings to
                                      ADAPTER/embeddings.npy (lacos')
  save BASE OUT IDS MASK              writes a PEFT adapter (query, key, value, dense;
                                      B random) to OUT with its mean-pooled embeddings
                                      OUT/embeddings.npy, for lacos to load
  grad BASE ADAPTER IDS MASK W OUT    one step's LoRA gradients of sum(mean-pooled · W)
                                      through peft + torch, one OUT/<name>.npy per tensor,
                                      named as lacos names them"""
import os
import sys

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import BertModel


def pooled(model, ids, mask):
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.to(h.dtype)
    return (h * m[:, :, None]).sum(1) / m.sum(1, keepdim=True)


mode, base_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
base = BertModel.from_pretrained(base_dir, dtype=torch.float32, add_pooling_layer=False).eval()
if mode == "load":
    adapter, ids, mask = sys.argv[3], np.load(sys.argv[4]), np.load(sys.argv[5])
    model = PeftModel.from_pretrained(base, adapter).eval()
    with torch.no_grad():
        emb = pooled(model, torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)).numpy()
    ours = np.load(adapter + "/embeddings.npy")
    print("max_rel_diff %.3e" % (np.abs(emb - ours).max() / np.abs(emb).max()))
elif mode == "save":
    out, ids, mask = sys.argv[3], np.load(sys.argv[4]), np.load(sys.argv[5])
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "key", "value", "dense"], init_lora_weights=False)
    model = get_peft_model(base, cfg).eval()
    model.save_pretrained(out)
    with torch.no_grad():
        emb = pooled(model, torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)).numpy()
    np.save(out + "/embeddings.npy", emb.astype(np.float32))
    print("saved")
elif mode == "grad":
    adapter, ids, mask, w, out = sys.argv[3], np.load(sys.argv[4]), np.load(sys.argv[5]), np.load(sys.argv[6]), sys.argv[7]
    model = PeftModel.from_pretrained(base, adapter, is_trainable=True).eval()   # eval: no dropout
    loss = (pooled(model, torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long))
            * torch.tensor(w)).sum()
    loss.backward()
    os.makedirs(out, exist_ok=True)
    n = 0
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        short = name.replace("base_model.model.", "").replace(".default", "")
        np.save(os.path.join(out, short + ".npy"), p.grad.numpy().astype(np.float32))
        n += 1
    print("grads %d" % n)
