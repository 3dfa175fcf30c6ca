"""Writes tests/fixtures/bloom: tiny random BLOOM checkpoints saved by
transformers, each with a BLOOM-configured tokenizer.json, and the reference
outputs lacos must reproduce from text.

Checkpoints (all random, seeded; vocab_size = the tokenizer's vocabulary):
  tiny-a       BloomModel, f32, h=32, 4 heads, 2 layers, no "transformer." prefix
  tiny-b       BloomForCausalLM, f32, h=48, 12 heads (ALiBi's non-power-of-two
               branch), 3 layers, "transformer." prefix, tied LM head omitted
  tiny-bf16    tiny-a's weights stored in bfloat16
  tiny-f16     tiny-a's weights stored in float16
  tiny-sharded tiny-b split into several shards with model.safetensors.index.json
               (same weights as tiny-b, so tiny-b's reference outputs are its own:
               the generator checks that transformers gives identical states)

tokenizer.json: byte-level BPE in BLOOM's exact configuration
(make_tokenizer.bloom_like: no normalizer, BLOOM's Split regex + ByteLevel, all
256 byte characters, <unk> <s> </s> <pad> at 0-3), trained on the invented
text below to a few hundred tokens, no padding section (as BLOOM's file).

For each checkpoint with its own reference: the sentences of manifest.json
(invented; Latin with accents, Cyrillic, CJK, Arabic, emoji; unequal lengths)
tokenized by the tokenizers library with padding on the right and on the left
(pad id 3), every hidden state of transformers' BloomModel
(output_hidden_states) and the pooled embeddings (mean, weightedmean,
lasttoken), as .npy files:
  ids_<side>.npy mask_<side>.npy (B,T) int32, hidden_<side>.npy (L+1,B,T,C),
  pooled_<mode>_<side>.npy (B,C); manifest.json describes them.

LoRA (peft) on lora-a (vocab 256, no tokenizer), all four linears, r=4,
alpha=8: the adapter as PEFT saves it (with random non-zero A and B), the
embeddings with the adapter, and the gradients of loss = sum(w * mean-pooled
embeddings) with respect to every lora_A / lora_B, computed by torch autograd,
on random token ids.
"""
import copy
import json
import os
import shutil
import sys

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import BloomConfig, BloomForCausalLM, BloomModel

from make_tokenizer import bloom_like

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "bloom")

# The batch the checkpoints are compared on: invented sentences in several
# scripts, all of different token lengths (12, 11, 10, 9, 4, 2). Some
# characters (👍, the skin-tone modifier 🏽, Ж, 猫) are not in TOKENIZER_TEXT,
# so they stay single bytes.
SENTENCES = [
    "Zoë's café: déjà vu!",
    "Привет, Жора!",
    "東京は雨。我喜欢猫",
    "مرحبا بالعالم",
    "Fête 🎉👍🏽 ok",
    "Hi",
]

# Invented text the tokenizer learns its merges from.
TOKENIZER_TEXT = [
    "The café is open. The café is closed. Déjà vu at the café.",
    "Zoë and Chloé meet at the façade; naïve résumé, élan, fiancée.",
    "A cat sits on the mat. A dog sits on the log. The cat and the dog.",
    "Привет, мир! Как дела? Хорошо, спасибо. Привет, друг.",
    "Москва и Петербург. Дела идут хорошо. Как ты?",
    "東京は晴れです。京都は雨です。東京と京都。",
    "我喜欢你。我喜欢茶。你喜欢什么？",
    "مرحبا بك في العالم. العالم كبير. مرحبا مرحبا.",
    "السلام عليكم. شكرا جزيلا. بالعالم العربي.",
    "Fête de la musique, fête nationale, bonne fête !",
    "ok ok, okay. Hi there, hi again. Hello world, hello there.",
    "Ça va ? Très bien, merci. À bientôt, où êtes-vous ?",
    "Party 🎉 time 🎉, fête 🎉!",
    "Zoë's déjà vu.",
]


def pool(hidden, mask, mode):
    """lacos' pooling: mean, weightedmean with weights 1..L counted from the
    first real token (equal to sentence-transformers' for right padding), and
    the last position whose mask is 1."""
    h = hidden.astype(np.float64)
    m = mask.astype(np.float64)
    if mode == "mean":
        w = m
    elif mode == "weightedmean":
        w = np.cumsum(m, axis=1) * m
    elif mode == "lasttoken":
        w = np.zeros_like(m)
        for b in range(m.shape[0]):
            idx = np.nonzero(m[b])[0]
            if len(idx):
                w[b, idx[-1]] = 1
    else:
        raise ValueError(mode)
    tot = np.maximum(w.sum(axis=1, keepdims=True), 1e-9)
    return ((h * w[:, :, None]).sum(axis=1) / tot).astype(np.float32)


def st_weightedmean(hidden, mask):
    """sentence-transformers' own weightedmean (arange weights over the padded
    tensor) - used to show it equals lacos' for right padding."""
    T = hidden.shape[1]
    w = np.arange(1, T + 1, dtype=np.float64)[None, :] * mask
    return ((hidden * w[:, :, None]).sum(axis=1) / w.sum(axis=1, keepdims=True)).astype(np.float32)


def random_batches(vocab, rng):
    """Random token ids (3 rows of 7, 4 and 2 real tokens), padded right and left: the LoRA case."""
    T = 7
    ids = rng.integers(4, vocab, size=(3, T)).astype(np.int32)
    right = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5], dtype=np.int32)
    left = right[:, ::-1].copy()
    ids_left = np.zeros_like(ids)
    ids_right = ids.copy()
    for b in range(3):
        n = right[b].sum()
        ids_right[b, n:] = 3  # pad id
        ids_left[b, : T - n] = 3
        ids_left[b, T - n:] = ids[b, :n]
    return {"right": (ids_right, right), "left": (ids_left, left)}


def run(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long), output_hidden_states=True)
    return np.stack([h.float().numpy() for h in out.hidden_states])


def save_case(name, model, cfg, batches, tok_path, manifest, base_model=None, dtype=None, shard=None,
              same_as=None):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    kwargs = {"safe_serialization": True}
    if shard:
        kwargs["max_shard_size"] = shard
    to_save = model if dtype is None else model.to(dtype)
    to_save.save_pretrained(d, **kwargs)
    shutil.copy(tok_path, os.path.join(d, "tokenizer.json"))
    base = base_model if base_model is not None else model
    base = base.float()
    entry = {"dir": name, "hidden_size": cfg.hidden_size, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
             "vocab_size": cfg.vocab_size, "dtype": str(dtype or torch.float32).replace("torch.", ""),
             "tokenizer": "tokenizer.json", "reference": same_as or name, "cases": []}
    # The reference runs on the stored weights (bf16 / f16 rounding included).
    ref = BloomModel.from_pretrained(d, dtype=torch.float32) if dtype is not None or shard else base
    for side, (ids, mask) in batches.items():
        hs = run(ref, ids, mask)
        if same_as:
            # Nothing stored: the other checkpoint's files are this one's reference.
            want = np.load(os.path.join(ROOT, same_as, f"hidden_{side}.npy"))
            assert np.array_equal(hs, want), f"{name} differs from {same_as}"
        else:
            np.save(os.path.join(d, f"ids_{side}.npy"), ids)
            np.save(os.path.join(d, f"mask_{side}.npy"), mask)
            np.save(os.path.join(d, f"hidden_{side}.npy"), hs)
            for mode in ("mean", "weightedmean", "lasttoken"):
                np.save(os.path.join(d, f"pooled_{mode}_{side}.npy"), pool(hs[-1], mask, mode))
        if side == "right":
            assert np.allclose(st_weightedmean(hs[-1], mask), pool(hs[-1], mask, "weightedmean"), atol=1e-6)
        entry["cases"].append(side)
    manifest.append(entry)


def lora_case(manifest):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(7)
    cfg = BloomConfig(vocab_size=256, hidden_size=32, n_layer=2, n_head=4, layer_norm_epsilon=1e-5)
    base = BloomModel(cfg).eval()
    d = os.path.join(ROOT, "lora-a")
    shutil.rmtree(d, ignore_errors=True)
    base.save_pretrained(os.path.join(d, "base"), safe_serialization=True)
    lc = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                    target_modules=["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"])
    pm = get_peft_model(base, lc)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    pm.save_pretrained(os.path.join(d, "adapter"))
    rng = np.random.default_rng(5)
    ids, mask = random_batches(256, rng)["right"]
    w = rng.standard_normal((3, 32)).astype(np.float32)
    pm.train()  # dropout is 0: identical to eval, but grads flow
    out = pm(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask, dtype=torch.long))
    hidden = out.last_hidden_state
    m = torch.tensor(mask, dtype=torch.float32)
    emb = (hidden * m[:, :, None]).sum(1) / m.sum(1, keepdim=True)
    loss = (emb * torch.tensor(w)).sum()
    loss.backward()
    np.save(os.path.join(d, "ids.npy"), ids)
    np.save(os.path.join(d, "mask.npy"), mask)
    np.save(os.path.join(d, "weights.npy"), w)
    np.save(os.path.join(d, "embeddings.npy"), emb.detach().numpy())
    grads = {}
    for n, p in pm.named_parameters():
        if "lora_" in n:
            # base_model.model.h.0.self_attention.query_key_value.lora_A.default.weight
            key = n.replace("base_model.model.", "").replace(".default", "")
            grads[key] = p.grad.detach().numpy().copy()
    from safetensors.numpy import save_file
    save_file(grads, os.path.join(d, "grads.safetensors"))
    # The same adapter with lacos' semantics for pooled outputs without the adapter, too.
    with pm.disable_adapter():
        with torch.no_grad():
            h0 = pm(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask, dtype=torch.long)).last_hidden_state
    emb0 = (h0 * m[:, :, None]).sum(1) / m.sum(1, keepdim=True)
    np.save(os.path.join(d, "embeddings_base.npy"), emb0.numpy())
    manifest.append({"dir": "lora-a", "lora": True, "loss": float(loss.item())})


def tokenizer(d):
    """The checkpoints' tokenizer.json, trained on TOKENIZER_TEXT, and the
    sentence batches it gives with padding on either side."""
    os.makedirs(d, exist_ok=True)
    tok = bloom_like(TOKENIZER_TEXT, 384, True)
    path = os.path.join(d, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(tok.to_str(pretty=False))
    tok = Tokenizer.from_file(path)
    assert tok.padding is None and tok.truncation is None
    one_by_one = [tok.encode(s).ids for s in SENTENCES]
    out = {}
    for side in ("right", "left"):
        tok.enable_padding(direction=side, pad_id=3, pad_token="<pad>")
        enc = tok.encode_batch(SENTENCES)
        ids = np.array([e.ids for e in enc], dtype=np.int32)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int32)
        for row, m, want in zip(ids, mask, one_by_one):
            assert row[m == 1].tolist() == want
        out[side] = (ids, mask)
    lengths = [len(x) for x in one_by_one]
    assert len(set(lengths)) == len(lengths), "unequal lengths, so every row but one is padded"
    return path, tok.get_vocab_size(with_added_tokens=True), out, lengths


def main():
    os.makedirs(ROOT, exist_ok=True)
    tmp = os.path.join(ROOT, ".tokenizer")
    tok_path, vocab, text_batches, lengths = tokenizer(tmp)
    torch.manual_seed(0)
    manifest = []
    cfg_a = BloomConfig(vocab_size=vocab, hidden_size=32, n_layer=2, n_head=4, layer_norm_epsilon=1e-5)
    a = BloomModel(cfg_a).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases so every parameter is exercised
        for n, p in a.named_parameters():
            if n.endswith("bias") or "layernorm" in n or "ln_f" in n:
                p.add_(torch.randn_like(p) * 0.05)
    save_case("tiny-a", a, cfg_a, text_batches, tok_path, manifest)
    save_case("tiny-bf16", copy.deepcopy(a), cfg_a, text_batches, tok_path, manifest, dtype=torch.bfloat16)
    save_case("tiny-f16", copy.deepcopy(a), cfg_a, text_batches, tok_path, manifest, dtype=torch.float16)
    cfg_b = BloomConfig(vocab_size=vocab, hidden_size=48, n_layer=3, n_head=12, layer_norm_epsilon=1e-5)
    b = BloomForCausalLM(cfg_b).eval()
    with torch.no_grad():
        for n, p in b.named_parameters():
            if n.endswith("bias") or "layernorm" in n or "ln_f" in n:
                p.add_(torch.randn_like(p) * 0.05)
    save_case("tiny-b", b, cfg_b, text_batches, tok_path, manifest, base_model=b.transformer)
    save_case("tiny-sharded", b, cfg_b, text_batches, tok_path, manifest, base_model=b.transformer, shard="40KB",
              same_as="tiny-b")
    shutil.rmtree(tmp)
    lora_case(manifest)
    import tokenizers
    with open(os.path.join(ROOT, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/reference/make_bloom.py", "torch": torch.__version__,
                   "transformers": __import__("transformers").__version__, "tokenizers": tokenizers.__version__,
                   "sentences": SENTENCES, "tokens_per_sentence": lengths, "pad_id": 3, "cases": manifest},
                  f, indent=2, ensure_ascii=False)
        f.write("\n")
    print("wrote", ROOT, f"(vocabulary {vocab}, tokens per sentence {lengths})")


if __name__ == "__main__":
    sys.exit(main())
