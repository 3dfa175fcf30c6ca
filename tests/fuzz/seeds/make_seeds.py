"""Writes the hand-made seeds of the fuzz targets other than safetensors
(make_safetensors_seeds.py does that one) into tests/fuzz/seeds/<target>/:
small inputs in each target's layout (tests/fuzz/fuzz_*.c) that reach the
rarer branches quickly: dataset files shaped like every dataset of
../shared/datasets/PITFALLS.md (BOM, CRLF, headers, quoting, blank gold
lines, triplets, filters), results databases of every schema version as
files and as SQL, small and edge-case tokenizer.json files, npy headers that
claim more than they hold, LoRA adapters and BLOOM configs with the wrong
shapes, checkpoints with and without valid hashes.

Run from the repository root after `make` (the results and checkpoint
seeds are written by build/lacos): python3 tests/fuzz/seeds/make_seeds.py
Standard library only (plus the zstd command for one checkpoint seed)."""
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
OUT = os.path.join(ROOT, "tests", "fuzz", "seeds")
SEP = b"\n\0SHARD\0\n"
LACOS = os.path.join(ROOT, "build", "lacos")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def ctl(*b):
    return bytes(b)


# ---------------------------------------------------------------- datasets
# control bytes (fuzz_datasets.h): c0 header|notrim<<2|skip_blank<<3|skip_unlabeled<<4|allow_empty<<5|truncate<<6|shortlines<<7
# c1 s1|s2<<3|s3<<6, c2 score|label<<3|kind<<6, c3 filter(7)|min<<3|max<<6, c4 range|subset|langs|key_score|key_s3|no_label|premise keys|bad header


def cols(s1, s2, s3=0):
    return s1 | s2 << 3 | s3 << 6


def lab(score=0, label=0, kind=0):
    return score | label << 3 | kind << 6


stsb = ("main-captions\tMSRvid\t2012test\t0001\t5.000\tA woman in a red coat is singing.\tA woman wearing a red coat is singing.\n"
        "main-news\theadlines\t2013\t0042\t0.6\t\"Quoted\" text stays.\t It has  spaces. \tsrc\tlicence\n"
        "main-forum\tdeft\t2014\t0100\t4\tShort.\tAlso short.\n")
write("tsv", "stsb", ctl(0, cols(6, 7), lab(5), 0, 1) + stsb.encode())
sick = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n1\tA kid is playing.\tA child plays.\t4.5\tENTAILMENT\r\n2\tA dog runs.\tNo dog runs.\t3.6\tcontradiction\r\n3\tX.\tY.\t1\tNEUTRAL"
write("tsv", "sick", ctl(1, cols(2, 3), lab(4, 5, 1), 0, 1 | 4) + sick.encode())
xnli = "The cat sat.\tA cat is sitting.\tentailment\nThe cat sat.\tA dog barks.\tcontradiction\nA man.\tA person.\tneutral\nThe cat sat.\tThe cat stood.\tcontradiction\n"
write("tsv", "xnli", ctl(0, cols(1, 2), lab(0, 3, 1), 0, 0) + xnli.encode())
msrp = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n1\t702876\t702977\tVelmira thanked her sister.\tCalling her the best guide.\r\n0\t2108705\t2108831\tOrlenko sold the bakery.\tOrlenko bought the bakery.\r\n"
write("tsv", "msrp", ctl(1, cols(4, 5), lab(0, 1, 2), 0, 0) + msrp.encode())
write("tsv", "triplets", ctl(0, cols(1, 2, 3), 0, 0, 0) + b"anchor one\tpositive one\tnegative one\nanchor two\tpositive two\tnegative two\n")
write("tsv", "filter", ctl(8, cols(2, 3), lab(4), 7 | 3 << 3, 0) + b"x\ta\tb\t1\ny\tc\td\t2\n\nx\te\tf\t3\n")
write("tsv", "blank-unlabeled", ctl(8 | 16 | 32, cols(1, 2), lab(0, 3, 1), 1 << 6, 2) + b"a\tb\t-\n\t\tentailment\n \n\tc\t\nd\te\tNeutral\n")
write("tsv", "long-line", ctl(128, cols(1, 2), 0, 0, 0) + b"short\tline\n" + b"x" * 100 + b"\tlong\n")
write("tsv", "int-labels", ctl(0, cols(1, 2), lab(0, 3, 3), 0, 0) + b"a\tb\t2\nc\td\t-7\ne\tf\t1e3\n")
write("tsv", "bad-utf8", ctl(0, cols(1, 2), 0, 0, 0) + b"caf\xc3\xa9\tok\n\xed\xa0\x80\tsurrogate\n")

csv = ('A kite is rising fast.,A paper kite is rising fast.,5.0\r\n'
       '"A man, a plan","He said ""hi""",3.8\r\n'
       '"Line one\r\nline two",plain,0\r\n')
write("csv", "stsb-multi-mt", ctl(0, cols(1, 2), lab(3), 0, 1) + csv.encode())
write("csv", "simcse-nli", ctl(1, cols(1, 2, 3), 0, 0, 0) + b'sent0,sent1,hard_neg\n"a, b",c,"d ""e"""\nf,g,h\n')
write("csv", "broken-quotes", ctl(0, cols(1, 2), 0, 0, 0) + b'"open,quote\nnever,closed\n')
write("csv", "quote-after", ctl(0, cols(1, 2), 0, 0, 0) + b'"a"b,c\n')
write("csv", "labels", ctl(8, cols(2, 3), lab(0, 1, 1), 7, 0) + b'x,premise,hypothesis,x\nentailment,p,h,y\ncontradiction,p2,h2,x\n\n')

write("gold", "sts12", ctl(0, 0, 0, 0, 1) + b"A man is playing.\tA man plays.\nDogs.\tCats.\nOne.\tTwo.\n" + SEP + b"4.000\n0.6\n2.400000\n")
write("gold", "sts15-blank", ctl(0, 0, 0, 0, 1) + b"a\tb\nc\td\ne\tf\n" + SEP + b"5\n\n1\n")
write("gold", "sts16-4fields", ctl(0, 0, 0, 1 << 6, 0) + b"a\tb\tsrc\tnote\nc\td\tsrc\tnote\n" + SEP + b"3\n4\n")
write("gold", "sts17-track6", ctl(64, 0, 0, 0, 4) + b"en1\ttr1\nen2\ttr2\nen3\ttr3\nen4\ttr4\n" + SEP + b"2.4\n3.0\n")
write("gold", "misaligned", ctl(0, 0, 0, 0, 0) + b"a\tb\n" + SEP + b"1\n2\n3\n")
write("gold", "bad-score", ctl(0, 0, 0, 0, 1) + b"a\tb\nc\td\n" + SEP + b"7\nx\n")

write("lines", "snli", ctl(0, 0, lab(0, 0, 1), 0, 0) + b"A cook tastes the soup . \nA cook tastes the soup . \nKids play . \n" + SEP +
      b"The cook is dancing . \nA cook eats . \nChildren are outside . \n" + SEP + b"contradiction\nentailment\nneutral\n")
write("lines", "tatoeba", ctl(0, 0, 0, 0, 4) + b"Hello.\nThank you.\n" + SEP + b"Hallo.\nDanke.\n")
write("lines", "uneven", ctl(8, 0, 0, 0, 0) + b"a\nb\n\n" + SEP + b"c\n\n")
write("lines", "unlabeled", ctl(16, 0, lab(0, 0, 1), 0, 0) + b"p\nq\n" + SEP + b"h\ni\n" + SEP + b"-\nENTAILMENT\n")

snli = ('{"annotator_labels": ["neutral"], "captionID": "0000000001.jpg#0", "gold_label": "neutral", "pairID": "0000000001.jpg#0r1n", '
        '"sentence1": "A cyclist in a yellow vest rides past an old mill.", "sentence2": "The cyclist is racing for a prize."}\n'
        '{"gold_label": "contradiction", "sentence1": "A cyclist in a yellow vest rides past an old mill.", "sentence2": "The cyclist is asleep at home."}\n'
        '{"gold_label": "entailment", "sentence1": "A cyclist in a yellow vest rides past an old mill.", "sentence2": "Someone is outside."}\n'
        '{"gold_label": "-", "sentence1": "a", "sentence2": "b"}\n')
write("jsonl", "snli", ctl(16, 0, lab(0, 0, 1), 0, 0) + snli.encode())
write("jsonl", "scored", ctl(0, 0, 0, 0, 1 | 8 | 32) + b'{"sentence1": "a", "sentence2": "b", "score": 4.2}\n{"sentence1": "c", "sentence2": "d", "score": "3"}\n')
write("jsonl", "triplets", ctl(0, 0, 0, 0, 16 | 32 | 64) + b'{"premise": "a", "hypothesis": "b", "s3": "c"}\n{"premise": "\\u00e9", "hypothesis": "\\ud83d\\ude42", "s3": "x"}\n')
write("jsonl", "int-labels", ctl(8, 0, lab(0, 0, 2), 0, 0) + b'{"sentence1": "a", "sentence2": "b", "gold_label": 1}\n\n{"sentence1": "a", "sentence2": "b", "gold_label": 5}\n')
write("jsonl", "odd", ctl(0, 0, 0, 0, 0) + b'[1, 2]\n{"sentence1": null, "sentence2": "x"}\n{"sentence1": "a\\u0000b", "sentence2": "x"}\n')

# ---------------------------------------------------------------- npy


def npy(descr, shape, data=b"", version=1, fortran="False", extra=""):
    sh = "(" + "".join("%d, " % d for d in shape).rstrip(" ") + ")" if len(shape) != 1 else "(%d,)" % shape[0]
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, %s}" % (descr, fortran, sh, extra)
    pre = 10 if version == 1 else 12
    pad = (64 - (pre + len(h) + 1) % 64) % 64
    h = (h + " " * pad + "\n").encode()
    hl = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + hl + h + data


write("npy", "f4-2x3", npy("<f4", [2, 3], struct.pack("<6f", 1, 2, 3, 4, 5, 6)))
write("npy", "scalar", npy("<f8", [], struct.pack("<d", 3.5)))
write("npy", "v2-i8", npy("|i1", [4], b"\x01\x02\xff\x80", version=2))
write("npy", "v3-u1", npy("|u1", [2, 2], b"\x01\x02\x03\x04", version=3))
write("npy", "huge-claim", npy("<f4", [1 << 40], b"\0" * 16))
write("npy", "huge-4d", npy("<f8", [1 << 20, 1 << 20, 1 << 20, 1 << 20], b"\0" * 8))
write("npy", "fortran", npy("<f4", [2, 2], b"\0" * 16, fortran="True"))
write("npy", "five-dims", npy("<i4", [1, 1, 1, 1, 1], b"\0" * 4))
write("npy", "big-endian", npy(">f4", [1], b"\0" * 4))
write("npy", "zero", npy("<i8", [0, 3]))
write("npy", "short", npy("<f2", [8], b"\0" * 6))

# ---------------------------------------------------------------- tokenizer


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


B2U = bytes_to_unicode()
vocab = {B2U[b]: i for i, b in enumerate(range(256))}
merges = []
for word in ["he", "hel", "hell", "hello", " w", " wo", " wor", " worl", " world", "th", "the", " t", " th", " the"]:
    u = "".join(B2U[b] for b in word.encode())
    left, right = u[:-1], u[-1]
    if left in vocab:
        merges.append([left, right])
        vocab[u] = len(vocab)
added = [{"id": len(vocab), "content": "<pad>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
         {"id": len(vocab) + 1, "content": "</s>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False, "special": True},
         {"id": len(vocab) + 2, "content": "word", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True, "special": False}]
bloom_pre = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": " ?[^(\\s|[.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c])]+"}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
tok = {"version": "1.0", "truncation": {"direction": "Left", "max_length": 8, "strategy": "LongestFirst", "stride": 0},
       "padding": {"strategy": {"Fixed": 6}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": len(vocab), "pad_type_id": 0, "pad_token": "<pad>"},
       "added_tokens": added, "normalizer": None, "pre_tokenizer": bloom_pre, "post_processor": None,
       "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                 "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": merges}}
text = json.dumps(tok, ensure_ascii=False).encode()
write("tokenizer", "tiny-bloomlike", text + SEP + "hello world, the </s> word<pad> héllo".encode())
tok2 = json.loads(text)
tok2["model"]["merges"] = [" ".join(m) for m in merges]
tok2["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
tok2["truncation"] = None
tok2["padding"] = {"strategy": "BatchLongest", "direction": "Left", "pad_to_multiple_of": 4, "pad_id": len(vocab), "pad_type_id": 0, "pad_token": "<pad>"}
write("tokenizer", "tiny-gpt2", json.dumps(tok2).encode() + SEP + b"the world")
tok3 = json.loads(text)
tok3["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"String": "--"}, "behavior": "Removed", "invert": False},
    {"type": "Split", "pattern": {"Regex": "(?i)[a-z]+|\\p{N}|\\s+(?!\\S)|[^\\s\\p{L}\\p{N}]+"}, "behavior": "MergedWithNext", "invert": True},
    {"type": "Split", "pattern": {"Regex": "\\w\\h[[:alpha:]]"}, "behavior": "Contiguous", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}
tok3["normalizer"] = {"type": "Sequence", "normalizers": []}
tok3["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
write("tokenizer", "tiny-splits", json.dumps(tok3).encode() + SEP + b"a--b 12 x\t\ty hello")
tok4 = json.loads(text)
tok4["model"]["vocab"] = {"a": 0, "b": 1, "ab": 1}
tok4["model"]["merges"] = [["a", "b"], ["ab", "c"]]
tok4["added_tokens"] = [{"id": 5, "content": "a", "special": False}]
write("tokenizer", "conflicts", json.dumps(tok4).encode() + SEP + b"abab")

# WordPiece (BERT's pipeline): BertNormalizer, BertPreTokenizer, a [CLS]/[SEP]
# template, the WordPiece decoder, padding and truncation, a normalized added
# token; and a second one with a Sequence of normalizers, BertProcessing,
# another continuing prefix, short words and no decoder.
wp_vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "wor", "##ld",
                                        "##s", "the", "a", "##b", "cafe", ",", "!", "\u4e2d", "\u6587"])}
wp_added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])]
wp_added.append({"id": len(wp_vocab), "content": "Hello World", "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": True, "special": False})
wp = {"version": "1.0", "truncation": {"direction": "Right", "max_length": 10, "strategy": "LongestFirst", "stride": 0},
      "padding": {"strategy": {"Fixed": 12}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0, "pad_type_id": 0,
                  "pad_token": "[PAD]"},
      "added_tokens": wp_added,
      "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
      "pre_tokenizer": {"type": "BertPreTokenizer"},
      "post_processor": {"type": "TemplateProcessing",
                         "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                         "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                  {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                                  {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                         "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                            "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
      "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                "vocab": wp_vocab}}
write("tokenizer", "tiny-wordpiece", json.dumps(wp, ensure_ascii=False).encode() + SEP +
      "Hello World, worlds! Café [MASK] 中文 ab\x00\u200b\tthe".encode())
wp2 = json.loads(json.dumps(wp))
wp2["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]}
wp2["post_processor"] = {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}
wp2["decoder"] = None
wp2["truncation"] = None
wp2["padding"] = None
wp2["model"]["continuing_subword_prefix"] = "@@"
wp2["model"]["max_input_chars_per_word"] = 5
wp2["model"]["vocab"] = {("@@" + t[2:] if t.startswith("##") else t): i for t, i in wp_vocab.items()}
write("tokenizer", "tiny-wordpiece-seq", json.dumps(wp2, ensure_ascii=False).encode() + SEP + "worlds wor@@ld Ab supercafe".encode())

# ---------------------------------------------------------------- safetensors helpers


def st_file(tensors, meta=None):
    """tensors: list of (name, dtype, shape, data bytes)."""
    h, off, blob = {}, 0, b""
    for name, dt, shape, data in tensors:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    if meta:
        h["__metadata__"] = meta
    hb = json.dumps(h, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + blob


def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", None)
    out = []
    for name, v in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        s, e = v["data_offsets"]
        out.append((name, v["dtype"], v["shape"], b[8 + n + s:8 + n + e]))
    return out, meta


# ---------------------------------------------------------------- lora

fx = os.path.join(ROOT, "tests", "fixtures", "bloom", "lora-a")
acfg = json.load(open(os.path.join(fx, "adapter", "adapter_config.json")))
ats, ameta = read_st(os.path.join(fx, "adapter", "adapter_model.safetensors"))


def f32_to_f16_bytes(data):
    import array
    a = array.array("f")
    a.frombytes(data)
    return struct.pack("<%de" % len(a), *a)


def lora(name, cfg, tensors):
    write("lora", name, json.dumps(cfg).encode() + SEP + st_file(tensors))


qkv_only = dict(acfg, target_modules=["query_key_value"], lora_alpha=16, use_rslora=True)
lora("qkv-rslora", qkv_only, [t for t in ats if "query_key_value" in t[0]])
lora("f16", dict(acfg, target_modules=["dense"]), [(n, "F16", s, f32_to_f16_bytes(d)) for n, dt, s, d in ats if ".dense.lora" in n])
lora("missing-b", dict(acfg, target_modules=["dense"]), [t for t in ats if ".dense.lora_A" in t[0]])
lora("wrong-rank", dict(acfg, r=2, target_modules=["dense"]), [t for t in ats if ".dense.lora" in t[0]])
lora("extra-layer", dict(acfg, target_modules=["dense"]), [t for t in ats if ".dense.lora" in t[0]] +
     [("base_model.model.h.7.self_attention.dense.lora_A.weight", "F32", [4, 32], b"\0" * 512)])
lora("huge-rank", dict(acfg, r=4294967300, target_modules=["dense"]), [t for t in ats if ".dense.lora" in t[0]])
lora("regex-targets", dict(acfg, target_modules=".*dense.*"), ats[:2])
lora("i8", dict(acfg, target_modules=["dense"]), [(n, "I8", s, d[:len(d) // 4]) for n, dt, s, d in ats if ".dense.lora" in n])

# ---------------------------------------------------------------- bloom

bfx = os.path.join(ROOT, "tests", "fixtures", "bloom", "tiny-a")
bcfg = json.load(open(os.path.join(bfx, "config.json")))
bts, bmeta = read_st(os.path.join(bfx, "model.safetensors"))
small = [t for t in bts]


def bloom(name, c, cfg, tensors=None):
    data = bytes([c]) + json.dumps(cfg).encode()
    if tensors is not None:
        data += SEP + st_file(tensors, bmeta)
    write("bloom", name, data)


bloom("aliases", 0, {"model_type": "bloom", "vocab_size": 256, "n_embed": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "max_position_embeddings": 64, "pad_token_id": None, "layer_norm_epsilon": 1e-5})
bloom("huge-config", 0, dict(bcfg, vocab_size=10000000, hidden_size=65536, n_layer=1000, n_head=64), small)
bloom("big-config", 1, dict(bcfg, vocab_size=250880, hidden_size=4096, n_layer=30, n_head=32),
      [("word_embeddings.weight", "F16", [2, 2], b"\0" * 8)])
bloom("prefixed", 4, bcfg, [("transformer." + n, dt, s, d) for n, dt, s, d in small])
bloom("f16", 5, bcfg, [(n, "F16", s, f32_to_f16_bytes(d)) if dt == "F32" else (n, dt, s, d) for n, dt, s, d in small])
bloom("post-ln", 0, dict(bcfg, apply_residual_connection_post_layernorm=True))
bloom("llama", 0, dict(bcfg, model_type="llama"))

# ---------------------------------------------------------------- checkpoint


def ckpt_packed(c, manifest, state, image):
    return bytes([c]) + manifest + SEP + state + SEP + image


tmp = tempfile.mkdtemp()
try:
    if os.path.exists(LACOS):
        script = os.path.join(tmp, "ck.lua")
        with open(script, "w") as f:
            f.write("""
local E = require "lacos.engine"
local T = require "lacos.tensor"
local ffi, C = E.ffi, E.C
local a = T.arange(0, 6, 1):view({2, 3})
local b = T.full({4}, 2.5)
local names = ffi.new("const char*[2]", {"lora.A", "optim.step"})
local ts = ffi.new("lacos_tensor*[2]", {a.t, b.t})
E.check(C.lacos_checkpoint_save(arg[1], 7, 2, names, ts, '{"step": 7, "position": 3, "seed": 1}'))
""")
        subprocess.run([LACOS, "run", script, tmp], check=True)
        d = os.path.join(tmp, "ckpt-00000007")
        man = open(os.path.join(d, "manifest.json"), "rb").read()
        state = open(os.path.join(d, "state.json"), "rb").read()
        z = open(os.path.join(d, "tensors.safetensors.zst"), "rb").read()
        write("checkpoint", "lacos-written", ckpt_packed(0, man, state, z))
        write("checkpoint", "lacos-written-fixed", ckpt_packed(1, man, state, z))
        write("checkpoint", "tampered", ckpt_packed(0, man, state.replace(b"7", b"8"), z))
        write("checkpoint", "version-2", ckpt_packed(1, man.replace(b'"version": 1', b'"version": 2'), state, z))
        write("checkpoint", "raw-size-lie", ckpt_packed(5, man, state, st_file([("x", "F32", [2], b"\0" * 8)])))
        write("checkpoint", "not-zstd", ckpt_packed(1, man, state, b"\x28\xb5\x2f\xfd garbage"))
        img = st_file([("a", "F32", [1 << 30], b"")])
        if shutil.which("zstd"):
            zz = subprocess.run(["zstd", "-q", "-c", "--no-check"], input=img, stdout=subprocess.PIPE, check=True).stdout
            write("checkpoint", "huge-claim", ckpt_packed(1, man, state, zz))
            stream = subprocess.run(["zstd", "-q", "-c"], input=b"\0" * 100, stdout=subprocess.PIPE, check=True).stdout
            write("checkpoint", "zstd-frame", ckpt_packed(1, man, state, stream))
    write("checkpoint", "bad-json", ckpt_packed(0, b'{"format": "lacos-checkpoint", "version": 1, "files": {', b"{}", b""))
    write("checkpoint", "no-files", ckpt_packed(1, b'{"format": "lacos-checkpoint", "version": 1}', b"{}", b""))
    write("checkpoint", "state-not-json", ckpt_packed(3, b'{"format": "lacos-checkpoint", "version": 1, "files": {"state.json": {}, "tensors.safetensors.zst": {}}}',
                                                      b"not json", st_file([("b", "U8", [3], b"abc")])))

    # ------------------------------------------------------------ results
    src = open(os.path.join(ROOT, "engine", "results.c")).read()

    def c_string(name):
        m = re.search(r"static const char \*const %s =\n(.*?);\n" % name, src, re.S)
        return "".join(json.loads('"' + s + '"') for s in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))

    v1 = c_string("MIGRATION_1")
    v1_rows = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
INSERT INTO schema_version VALUES (1, '2024-01-01T00:00:00Z');
INSERT INTO experiments (id, name, created_at) VALUES (1, 'exp', '2024-01-01T00:00:00Z');
INSERT INTO runs (id, uuid, experiment_id, name, status, config_json, config_sha256, seed, created_at, started_at, heartbeat_at)
  VALUES (1, '0123abcd-0000-4000-8000-000000000001', 1, 'r1', 'running', '{"lr":0.001}', 'abc', 1,
          '2024-01-01T00:00:00Z', '2024-01-01T00:00:01Z', '2024-01-01T00:00:02Z');
INSERT INTO params VALUES (1, 'lr', '0.001'), (1, 'model', 'bloom-560m'), (1, 'pairs', '1e5');
INSERT INTO metrics VALUES (1, 1, 'loss', 0.5, 1.0), (1, 2, 'loss', NULL, 2.0);
INSERT INTO sts VALUES (1, 'stsb', 'en', 'test', 1379, 0.8, 0.79, 'mean', '2024-01-01T00:00:03Z');
INSERT INTO tags VALUES (1, 'note', NULL);
"""
    write("results", "v1-sql", b"\1" + (v1 + v1_rows).encode())
    write("results", "v1-sql-log", b"\5" + (v1 + v1_rows).encode())
    write("results", "v1-sql-readonly", b"\3" + (v1 + v1_rows).encode())
    write("results", "v1-dangling", b"\1" + (v1 + v1_rows.replace("VALUES (1, 'lr'", "VALUES (9, 'lr'")).encode())
    write("results", "foreign", b"\1CREATE TABLE t (x); INSERT INTO t VALUES (1);")
    write("results", "newer", b"\1CREATE TABLE schema_version (version INTEGER, applied_at TEXT); INSERT INTO schema_version VALUES (3, 'x');")
    write("results", "odd-version", b"\1CREATE TABLE schema_version (version TEXT); INSERT INTO schema_version VALUES ('one');")
    write("results", "empty", b"\0")
    write("results", "not-sqlite", b"\0This is not a database file at all, just text.\n" * 4)
    if os.path.exists(LACOS):
        db = os.path.join(tmp, "v2.db")
        script = os.path.join(tmp, "db.lua")
        with open(script, "w") as f:
            f.write("""
local results = require "lacos.results"
local db = results.open(arg[1])
local exp = db:experiment({ name = "sweep", axes = { lr = { 1, 2 } } })
local run = db:start_run({ experiment = exp, config = { lr = 1 }, seed = 3, name = "point" })
run:param("model", "tiny-xs")
run:metric(1, "loss", 0.75)
run:metric(2, "loss", 0 / 0)
run:sts({ dataset = "stsb", language = "en", split = "test", spearman = 0.52, pearson = 0.5, n = 1379 })
run:timing({ phase = "train_step", avg_ns = 1e6 })
run:tag("note", "seed")
run:finish("done")
db:close()
""")
        subprocess.run([LACOS, "run", script, db], check=True)
        con = sqlite3.connect(db)
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("PRAGMA page_size=512")
        con.execute("VACUUM")
        dump = "\n".join(con.iterdump())
        con.close()
        write("results", "v2-file", b"\0" + open(db, "rb").read())
        write("results", "v2-file-log", b"\4" + open(db, "rb").read())
        write("results", "v2-sql", b"\1" + dump.encode())
        write("results", "v2-sql-log", b"\5" + dump.encode())
        # NULLs and odd types where lacos writes none
        write("results", "v2-odd-rows", b"\5" + (dump + """
INSERT INTO runs (id, uuid, status, config_json, config_sha256, created_at) VALUES (2, 'x', 'dead', '{}', '', 'yesterday');
UPDATE sts_results SET spearman = NULL, n_pairs = NULL;
INSERT INTO metrics VALUES (1, 'loss', 3, NULL, 0, 1e300);
""").encode())
finally:
    shutil.rmtree(tmp)

# ---------------------------------------------------------------- lua options
# mode byte (0 args, 1 util.options, 2 optim, 3 sweep, 4 results), then the decoder's bytes
write("lua", "args-train", bytes([0, 7, 5, 0, 1, 2, 1, 3, 30, 3, 41, 4, 5]) + b"--steps")
write("lua", "args-help", bytes([0, 0, 1, 3, 54]))
write("lua", "util-required", bytes([1, 3, 3, 9, 7, 4, 1, 6, 7, 2, 6, 4, 4, 7, 3, 3, 6, 1]))
write("lua", "optim-betas", bytes([2, 0, 7, 2, 6, 5, 8, 2, 4, 3, 4, 0, 0]))
write("lua", "sweep", bytes([3, 7, 3, 6, 19, 6, 0, 6, 20, 7, 1, 6, 4, 8, 2, 4, 1, 4, 2, 0]))
write("lua", "results-runs", bytes([4, 1, 7, 2, 6, 14, 4, 6, 6, 15, 6, 30]))
print("seeds written to", OUT)
