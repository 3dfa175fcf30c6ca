"""Loads directories written by `lacos model export` with sentence-transformers
itself and embeds sentences with them, for tests/lua/test_stexport.lua.

usage: check_st_export.py [--prompt TEXT] SENTENCES.json DIR OUT_PREFIX [DIR OUT_PREFIX ...]

For each DIR: SentenceTransformer(DIR, device="cpu").encode(sentences) goes
to OUT_PREFIX.npy (float32, one row per sentence, the input order; batches of
4 so that sentences of different lengths pad one another), the ids its
tokenizer gives each sentence (no padding) to OUT_PREFIX.ids.json, the
token type ids of the batch it encodes them in (the features its Transformer
module is given: one text per row, padded) to OUT_PREFIX.types.json, and one
line is printed:

  DIR modules Transformer,Pooling[,Normalize] pooling MODE dim N max_seq_length N padding_side SIDE dtype D
      include_prompt BOOL prompt_length N

With --prompt, encode(sentences, prompt=TEXT): sentence-transformers puts
TEXT before each sentence and, where the Pooling's include_prompt is false,
leaves the prompt's tokens (prompt_length of them) out of the pooling.
"""
import json
import sys

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

argv = sys.argv[1:]
prompt = None
if argv[0] == "--prompt":
    prompt, argv = argv[1], argv[2:]
sentences = json.load(open(argv[0], encoding="utf-8"))
args = argv[1:]
torch.manual_seed(0)
for d, prefix in zip(args[0::2], args[1::2]):
    model = SentenceTransformer(d, device="cpu")
    model.eval()
    kinds = [type(m).__name__ for m in model]
    pool = model[1]
    mode = getattr(pool, "pooling_mode", None) or pool.get_pooling_mode_str()
    if isinstance(mode, (list, tuple)):
        mode = "+".join(mode)
    emb = model.encode(sentences, batch_size=4, convert_to_numpy=True, prompt=prompt)
    np.save(prefix + ".npy", emb.astype(np.float32))
    tok = model.tokenizer
    texts = [prompt + s for s in sentences] if prompt else sentences
    ids = [tok(s, add_special_tokens=True)["input_ids"] for s in texts]
    json.dump(ids, open(prefix + ".ids.json", "w"))
    features = model.preprocess(texts)
    types = features["token_type_ids"].tolist() if "token_type_ids" in features else None
    json.dump(types, open(prefix + ".types.json", "w"))
    prompt_length = model[0]._get_prompt_length(prompt) if prompt else 0
    dtype = str(next(model[0].parameters()).dtype).replace("torch.", "")
    print(f"{d} modules {','.join(kinds)} pooling {mode} dim {emb.shape[1]} max_seq_length {model.max_seq_length} "
          f"padding_side {tok.padding_side} dtype {dtype} include_prompt {pool.include_prompt} "
          f"prompt_length {prompt_length}", flush=True)
