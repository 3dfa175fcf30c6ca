"""Loads directories written by `lacos model export` with sentence-transformers
itself and embeds sentences with them, for tests/lua/test_stexport.lua.

usage: check_st_export.py SENTENCES.json DIR OUT_PREFIX [DIR OUT_PREFIX ...]

For each DIR: SentenceTransformer(DIR, device="cpu").encode(sentences) goes
to OUT_PREFIX.npy (float32, one row per sentence, the input order; batches of
4 so that sentences of different lengths pad one another), the ids its
tokenizer gives each sentence (no padding) to OUT_PREFIX.ids.json, and one
line is printed:

  DIR modules Transformer,Pooling[,Normalize] pooling MODE dim N max_seq_length N padding_side SIDE dtype D
"""
import json
import sys

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

sentences = json.load(open(sys.argv[1], encoding="utf-8"))
args = sys.argv[2:]
torch.manual_seed(0)
for d, prefix in zip(args[0::2], args[1::2]):
    model = SentenceTransformer(d, device="cpu")
    model.eval()
    kinds = [type(m).__name__ for m in model]
    pool = model[1]
    mode = getattr(pool, "pooling_mode", None) or pool.get_pooling_mode_str()
    if isinstance(mode, (list, tuple)):
        mode = "+".join(mode)
    emb = model.encode(sentences, batch_size=4, convert_to_numpy=True)
    np.save(prefix + ".npy", emb.astype(np.float32))
    tok = model.tokenizer
    ids = [tok(s, add_special_tokens=True)["input_ids"] for s in sentences]
    json.dump(ids, open(prefix + ".ids.json", "w"))
    dtype = str(next(model[0].parameters()).dtype).replace("torch.", "")
    print(f"{d} modules {','.join(kinds)} pooling {mode} dim {emb.shape[1]} max_seq_length {model.max_seq_length} "
          f"padding_side {tok.padding_side} dtype {dtype}", flush=True)
