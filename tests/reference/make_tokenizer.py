"""Writes tests/fixtures/tokenizer: tokenizer.json files built with the
Hugging Face tokenizers library and the ids it gives, for lacos' tokenizer
tests (engine/tokenizer.c must give the same ids).

BLOOM's own tokenizer.json cannot be downloaded here, so the tokenizers are
trained on the shared datasets (LACOS_TEST_DATA or ../shared/datasets) with
BLOOM's exact configuration: no normalizer; pre-tokenizer Sequence[Split(
Regex(" ?[^(\\s|[.,!?…。，、।۔،])]+"), Isolated, invert false), ByteLevel(
add_prefix_space false, trim_offsets true, use_regex false)]; ByteLevel
post-processor and decoder; BPE without unk token; special tokens <unk> <s>
</s> <pad> at ids 0-3.

  bloomlike-32k.json   32,000 tokens, all 256 byte characters, trained on every
                       STS/NLI sentence and the Tatoeba lines (many languages).
  added-small.json     1,000 tokens, BLOOM's pre-tokenizer, unk_token with
                       fuse_unk (the alphabet is only what the training text has),
                       added tokens of every kind (special and not, normalized
                       or not, single_word, lstrip, rstrip, overlapping
                       contents), and padding + truncation sections.
  gpt2-small.json      GPT-2 style: ByteLevel(add_prefix_space, use_regex) alone,
                       merges in the legacy "a b" form, characters missing from
                       the vocabulary dropped (no unk token).
  gpt2-fallback.json   gpt2-small with byte_fallback (<0xXX> tokens added),
                       ignore_merges and a Split(String) pre-tokenizer step.

Expected values:
  sources.json         the sentence files of the shared datasets (path, size,
                       sha256) and how the sentences are cut out of them.
  expected-bloomlike.json  per file: number of texts and tokens and the sha256 of
                       the ids (each text's ids space-separated, one line per
                       text) under bloomlike-32k, and the same per text for its
                       first 16 texts with where they are (index among the file's
                       texts, line, column), so that a difference points at a
                       text. Neither the sentences nor their ids (which would
                       decode back to them) are stored: the shared datasets stay
                       out of the repository, the tests cut the texts out of
                       them at test time.
  cases-<name>.json    per tokenizer: edge cases and random strings (hex UTF-8)
                       with ids, tokens and decoded text; decode cases; for
                       added-small, batches with padding/truncation settings.
  whitespace.json      the code points BLOOM's Split regex treats as delimiters
                       (every code point checked through the tokenizers library).
"""
import csv
import hashlib
import io
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
DATA = os.environ.get("LACOS_TEST_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "datasets"))

BLOOM_REGEX = " ?[^(\\s|[.,!?…。，、।۔،])]+"
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
LONG = 300   # texts longer than this (bytes) are checked through digests

# ---------------------------------------------------------------- sentence sources

# Every file with sentence text in the STS, NLI and paraphrase folders, with
# the rule that cuts the sentences out of it (see PITFALLS.md). Formats:
#   tsv   split on \n, strip one \r, skip `header` lines, split on TAB only,
#         take the listed 1-based columns that exist on the line
#   lines every line is a sentence (after the same \n / \r handling)
#   csv   RFC 4180 (quotes, doubled quotes, CRLF), the listed columns
# A leading UTF-8 BOM is dropped; a last line without \n counts. Sentences are
# taken line by line, column by column, in file order.
def source_rules():
    rules = []

    def add(path, fmt, columns=None, header=0):
        rules.append({"path": path, "format": fmt, "columns": columns or [], "header": header})

    for split in ("train", "dev", "test"):
        add(f"sts/stsb/sts-{split}.csv", "tsv", [6, 7])
    for name in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"):
        add(f"sts/sick/{name}", "tsv", [2, 3], header=1)
    add("sts/sick/full/SICK.txt", "tsv", [2, 3, 8, 9], header=1)
    for folder in ("sts/sts12/train", "sts/sts12/test", "sts/sts13/test", "sts/sts14/test", "sts/sts15/test",
                   "sts/sts16/test", "sts/sts17/STS2017.eval.v1.1"):
        for name in sorted(os.listdir(os.path.join(DATA, folder))):
            if ".input." in name and name.endswith(".txt"):
                add(f"{folder}/{name}", "tsv", [1, 2])
    for name in sorted(os.listdir(os.path.join(DATA, "sts/stsb-multi-mt"))):
        if name.endswith(".csv"):
            add(f"sts/stsb-multi-mt/{name}", "csv", [1, 2])
    st = "sts/senteval-tokenized"
    for split in ("train", "dev", "test"):
        add(f"{st}/STSBenchmark/sts-{split}.csv", "tsv", [6, 7])
    for name in ("SICK_train.txt", "SICK_test_annotated.txt"):
        add(f"{st}/SICK/{name}", "tsv", [2, 3], header=1)
    for folder in sorted(os.listdir(os.path.join(DATA, st))):
        if folder.startswith("STS1"):
            for name in sorted(os.listdir(os.path.join(DATA, st, folder))):
                if name.startswith("STS.input."):
                    add(f"{st}/{folder}/{name}", "tsv", [1, 2])
    for name in ("s1.dev", "s2.dev", "s1.test", "s2.test"):
        add(f"nli/snli-infersent/{name}", "lines")
    for name in sorted(os.listdir(os.path.join(DATA, "nli/xnli-dev"))):
        if name.endswith(".tsv"):
            add(f"nli/xnli-dev/{name}", "tsv", [1, 2])
    for name in ("xnli.dev.ko.tsv", "xnli.test.ko.tsv"):
        add(f"nli/kornli-xnli/{name}", "tsv", [1, 2], header=1)
    for name in ("msr-para-train.tsv", "msr-para-val.tsv", "msr-para-test.tsv"):
        add(f"paraphrase/msrp/{name}", "tsv", [4, 5], header=1)
    return rules


def split_lines(data):
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [l[:-1] if l.endswith(b"\r") else l for l in lines]


def csv_records(data):
    """RFC 4180, written out so that the C test can do exactly the same.
    Returns (fields, line the record starts on) pairs."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    records, fields, field = [], [], bytearray()
    i, n = 0, len(data)
    at_start = True
    line, start_line = 1, None
    while i < n:
        c = data[i:i + 1]
        if start_line is None:
            start_line = line
        if at_start and c == b'"':
            at_start = False
            i += 1
            while i < n:
                if data[i:i + 1] == b'"':
                    if data[i + 1:i + 2] == b'"':
                        field += b'"'
                        i += 2
                        continue
                    i += 1
                    break
                if data[i:i + 1] == b"\n":
                    line += 1
                field += data[i:i + 1]
                i += 1
            continue
        at_start = False
        if c == b",":
            fields.append(bytes(field)); field = bytearray(); at_start = True
        elif c == b"\n" or (c == b"\r" and data[i + 1:i + 2] == b"\n"):
            fields.append(bytes(field)); field = bytearray(); at_start = True
            records.append((fields, start_line)); fields = []
            start_line = None
            line += 1
            i += 2 if c == b"\r" else 1
            continue
        else:
            field += c
        i += 1
    if fields or field or not at_start:
        fields.append(bytes(field))
        records.append((fields, start_line))
    return records


def sentences(rule):
    """The texts of a file as (text, line, column): line 1-based in the file
    (header lines counted; for CSV the line the record starts on), column the
    1-based field."""
    data = open(os.path.join(DATA, rule["path"]), "rb").read()
    out = []
    if rule["format"] == "csv":
        recs = csv_records(data)
        ref = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        assert [[f.decode("utf-8") for f in r] for r, _ in recs] == ref, rule["path"]
        for r, line in recs:
            for c in rule["columns"]:
                if c <= len(r):
                    out.append((r[c - 1], line, c))
        return out
    lines = split_lines(data)
    for k in range(rule["header"], len(lines)):
        l = lines[k]
        if rule["format"] == "lines":
            out.append((l, k + 1, 1))
            continue
        f = l.split(b"\t")
        for c in rule["columns"]:
            if c <= len(f):
                out.append((f[c - 1], k + 1, c))
    return out


def digest(id_lists):
    h = hashlib.sha256()
    for ids in id_lists:
        h.update((" ".join(map(str, ids)) + "\n").encode())
    return h.hexdigest()


# ---------------------------------------------------------------- tokenizers

def bloom_pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(BLOOM_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def bloom_like(texts, vocab_size, full_alphabet, unk=None):
    tok = Tokenizer(models.BPE(unk_token=unk, fuse_unk=unk is not None))
    tok.pre_tokenizer = bloom_pre_tokenizer()
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIALS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if full_alphabet else [])
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def gpt2_like(texts, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=[AddedToken("<|endoftext|>", special=True, normalized=False)])
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save(tok_or_json, name):
    path = os.path.join(OUT, name)
    text = tok_or_json if isinstance(tok_or_json, str) else tok_or_json.to_str(pretty=False)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Tokenizer.from_file(path)


# ---------------------------------------------------------------- edge cases

def edge_texts(rng):
    t = [
        "", " ", "  ", "\t", "\n", "\r\n", "a\n\nb", "   hello   world   ", "\u00a0", "\u3000 x", "x\u2028y",
        "a\u180eb", "a\x85b", "a\u200bb", "\ufeffhello", "  leading", "trailing  ", "tabs\t\tand\tmore",
        "Hello world", " Hello world", "Hello, world!", "Wait... what?!", "(a|b) [c] {d}", "a|b|c", "…", "。，、",
        "नमस्ते। दुनिया", "سلام۔ دنیا", "مرحبا، عالم", "Ça va ? Très bien !", "l'été", "don't they'll I'm",
        "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇩🇪", "I ❤️ Unicode 🎉🎉🎉", "e\u0301", "\u00c5 A\u030a", "क्षि", "\u1100\u1161",
        "n\u0303o\u0308", "a\u0300\u0301\u0302\u0303\u0304", "ﬁ ﬂ ＡＢＣ",
        "a\x00b", "\x01\x02\x1f\x7f", "\U0010ffff", "\ue000", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "<s>hello</s>", "<pad><pad>", "<unk>", "x<s>y", "< s>", "</s></s>", "<s><s>", "<|endoftext|>",
        "Это тест.", "Αυτό είναι ένα τεστ.", "这是一个测试。", "これはテストです。", "이것은 테스트입니다.",
        "นี่คือการทดสอบ", "Bu bir testtir.", "Hii ni jaribio.", "Đây là một bài kiểm tra.",
        ("a", 10000), ("supercalifragilistic", 50), ("1234567890", 200), (" ", 5000), ("\n", 300),
        ("漢字", 1500), ("🙂", 500), ("é", 3000), ("ab", 4000), (" cd", 1000), ("e\u0301", 2000),
        ("The quick brown fox jumps over the lazy dog. ", 40), ("<s>", 300),
    ]
    t.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5000)))
    # Random strings over a mixed alphabet: letters of several scripts, digits,
    # whitespace of every kind, the regex's punctuation, marks, emoji, specials.
    pieces = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") +
              list(" \t\n\r\u00a0\u3000\u2028\u180e\u200b\u0085") + list(".,!?…。，、।۔،()|[]{}'\"-_/\\:;@#$%^&*+=~`<>") +
              list("éüßçñøåæœÉÜ") + list("абвгдеёжзийклмнопрстуфхцчшщъыьэюя") + list("αβγδεζηθ") +
              list("你好世界中文字漢") + list("日本語のテスト") + list("한국어테스트") + list("अआइईउऊकखगघ") +
              list("ابتثجحخدذ") + list("กขคง") + ["\u0301", "\u0308", "\u200d", "\ufe0f", "😀", "👍", "🏽", "🇫", "🇷"] +
              ["<s>", "</s>", "<pad>", "<unk>", " the", " and", "ing", "tion", "  ", "   "])
    for _ in range(700):
        n = rng.randint(0, 40)
        t.append("".join(rng.choice(pieces) for _ in range(n)))
    return t


def edge_cases(tok, texts, name):
    cases = []
    for item in texts:
        text = item[0] * item[1] if isinstance(item, tuple) else item
        enc = tok.encode(text)
        raw = text.encode("utf-8")
        dec = tok.decode(enc.ids, skip_special_tokens=False).encode("utf-8")
        skip = tok.decode(enc.ids, skip_special_tokens=True).encode("utf-8")
        if len(raw) <= LONG:
            case = {"hex": raw.hex(), "ids": enc.ids}
            if dec != raw:   # absent: decoding gives the text back
                case["decoded_hex"] = dec.hex()
            if skip != dec:
                case["decoded_skip_hex"] = skip.hex()
        else:
            # Long texts: the text is rebuilt from `repeat`, the ids and the
            # decoded text are checked through their digests.
            case = {"n_ids": len(enc.ids),
                    "ids_sha256": digest([enc.ids]), "decoded_sha256": hashlib.sha256(dec).hexdigest(),
                    "decoded_skip_sha256": hashlib.sha256(skip).hexdigest()}
            if isinstance(item, tuple):
                case["unit_hex"], case["times"] = item[0].encode("utf-8").hex(), item[1]
            else:
                case["hex"] = raw.hex()
        cases.append(case)
    # Decoding alone: single tokens (partial UTF-8 becomes U+FFFD), token runs.
    rng = random.Random(7)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    decode = []
    for _ in range(300):
        ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 6))]
        ids = [i for i in ids if tok.id_to_token(i) is not None]
        decode.append({"ids": ids, "hex": tok.decode(ids, skip_special_tokens=False).encode("utf-8").hex(),
                       "skip_hex": tok.decode(ids, skip_special_tokens=True).encode("utf-8").hex()})
    tokens = []
    for i in list(range(0, min(vocab, 300))) + [vocab - 1]:
        tokens.append({"id": i, "token": tok.id_to_token(i)})
    return {"tokenizer": name, "vocab_size": vocab, "cases": cases, "decode": decode, "tokens": tokens}


def batch_cases(path, texts):
    """encode_batch under the file's padding/truncation and under overrides."""
    out = []
    configs = [
        ("file", None, None),
        ("right, longest, no truncation", {"direction": "right", "pad_id": 3, "pad_token": "<pad>"}, None),
        ("left, fixed 40, multiple of 8", {"direction": "left", "pad_id": 3, "pad_token": "<pad>", "length": 40,
                                           "pad_to_multiple_of": 8}, None),
        ("right, longest, truncate left at 7", {"direction": "right", "pad_id": 0, "pad_token": "<unk>"},
         {"max_length": 7, "direction": "left"}),
        ("left, multiple of 16, truncate right at 12", {"direction": "left", "pad_id": 3, "pad_token": "<pad>",
                                                        "pad_to_multiple_of": 16}, {"max_length": 12, "direction": "right"}),
    ]
    for label, pad, trunc in configs:
        tok = Tokenizer.from_file(path)
        if pad is not None:
            tok.enable_padding(**pad)
        if trunc is not None:
            tok.enable_truncation(**trunc)
        elif pad is not None:
            tok.no_truncation()
        encs = tok.encode_batch(texts)
        out.append({"label": label, "padding": pad, "truncation": trunc,
                    "ids": [e.ids for e in encs], "mask": [e.attention_mask for e in encs]})
    return out


def whitespace_points():
    sp = pre_tokenizers.Split(Regex(BLOOM_REGEX), behavior="isolated", invert=False)
    seps = []
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        if len(sp.pre_tokenize_str("a" + chr(c) + "a")) != 1:
            seps.append(c)
    return seps


def main():
    os.makedirs(OUT, exist_ok=True)
    if not os.path.isdir(DATA):
        sys.exit(f"make_tokenizer.py: datasets not found at {DATA} (set LACOS_TEST_DATA)")
    rules = source_rules()
    per_file = []
    corpus = []
    for r in rules:
        data = open(os.path.join(DATA, r["path"]), "rb").read()
        r["bytes"] = len(data)
        r["sha256"] = hashlib.sha256(data).hexdigest()
        refs = sentences(r)
        s = [x.decode("utf-8") for x, _, _ in refs]
        per_file.append((s, refs))
        corpus.extend(s)
    tatoeba = os.path.join(DATA, "bitext", "tatoeba-v1")
    for name in sorted(os.listdir(tatoeba)):
        if name.startswith("tatoeba."):
            corpus.extend(x.decode("utf-8") for x in split_lines(open(os.path.join(tatoeba, name), "rb").read()))
    print(f"{len(rules)} files, {sum(len(s) for s, _ in per_file)} sentences; training on {len(corpus)} texts", flush=True)
    rng = random.Random(1234)

    with open(os.path.join(OUT, "sources.json"), "w") as f:
        json.dump({"about": "sentence files of the shared datasets and the rules that cut them out "
                            "(tests/reference/make_tokenizer.py)", "files": rules}, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # 1. BLOOM-like, 32k.
    big = save(bloom_like(corpus, 32000, True), "bloomlike-32k.json")
    expected = {}
    total_tokens = 0
    for r, (s, refs) in zip(rules, per_file):
        ids = [e.ids for e in big.encode_batch(s, add_special_tokens=True)]
        n_tok = sum(map(len, ids))
        total_tokens += n_tok
        first = [{"index": i + 1, "line": refs[i][1], "column": refs[i][2], "n_ids": len(ids[i]), "sha256": digest([ids[i]])}
                 for i in range(min(16, len(s)))]
        expected[r["path"]] = {"texts": len(s), "tokens": n_tok, "sha256": digest(ids), "first": first}
    print(f"bloomlike-32k: vocab {big.get_vocab_size()}, {total_tokens} tokens over all files", flush=True)
    with open(os.path.join(OUT, "expected-bloomlike.json"), "w") as f:
        head = {"tokenizer": "bloomlike-32k.json", "digest": "sha256 of each text's ids, space-separated, one line "
                "per text", "first": "the file's first texts one by one: index among its texts, line (1-based, "
                "header counted; CSV: where the record starts), column (1-based field), number and digest of "
                "their ids"}
        f.write(json.dumps(head, indent=1)[:-2] + ',\n "files": {\n')   # one line per file
        f.write(",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in expected.items()))
        f.write("\n }\n}\n")
    texts = edge_texts(random.Random(99))
    with open(os.path.join(OUT, "cases-bloomlike.json"), "w") as f:
        json.dump(edge_cases(big, texts, "bloomlike-32k.json"), f)

    # 2. Small, added tokens of every kind, padding and truncation.
    small_corpus = rng.sample(corpus, 20000)
    small = bloom_like(small_corpus, 1000, False, unk="<unk>")
    small.add_special_tokens([AddedToken("<|sep|>", special=True, normalized=False),
                              AddedToken("[MASK]", special=True, normalized=False, lstrip=True, rstrip=True)])
    small.add_tokens([AddedToken("hello world", normalized=True), AddedToken("NEW", normalized=True),
                      AddedToken("NEWS", normalized=False), AddedToken("wo", single_word=True, normalized=True),
                      AddedToken("é", normalized=False), AddedToken(" the end", normalized=False, rstrip=True),
                      AddedToken("xyz", normalized=True, lstrip=True, single_word=True)])
    small.enable_padding(direction="left", pad_id=3, pad_token="<pad>", pad_to_multiple_of=4)
    small.enable_truncation(max_length=24, direction="right")
    small_path = os.path.join(OUT, "added-small.json")
    save(small, "added-small.json")
    raw = Tokenizer.from_file(small_path)
    raw.no_padding()
    raw.no_truncation()
    extra = ["hello world and hello worlds", "NEWS about NEW things, NEWSNEW", "two words wo wo. swo wot",
             "[MASK]", "a  [MASK]  b", "x [MASK]y", "café élan é", "the end  the end.", " the end", "xyz xyzw axyz  xyz",
             "<|sep|>a<|sep|>", "<s> hello </s>", "hello world<s>", "ünknown çhars ✓ ✓ ✓"]
    small_texts = texts + extra
    cases = edge_cases(raw, small_texts, "added-small.json")
    batch_texts = extra + [t for t in small_texts[:60] if isinstance(t, str)] + ["x" * 90, ""]
    cases["batches"] = {"texts_hex": [t.encode("utf-8").hex() for t in batch_texts],
                        "configs": batch_cases(small_path, batch_texts)}
    with open(os.path.join(OUT, "cases-added.json"), "w") as f:
        json.dump(cases, f)

    # 3. GPT-2 style with legacy merges and a partial alphabet.
    g = gpt2_like(small_corpus, 2000)
    j = json.loads(g.to_str())
    j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    gs = save(json.dumps(j, ensure_ascii=False), "gpt2-small.json")
    with open(os.path.join(OUT, "cases-gpt2.json"), "w") as f:
        json.dump(edge_cases(gs, texts, "gpt2-small.json"), f)

    # 4. gpt2-small with byte fallback, ignore_merges and a String split.
    next_id = max(j["model"]["vocab"].values()) + 1
    for tok_ in list(j["added_tokens"]):
        next_id = max(next_id, tok_["id"] + 1)
    for b in range(256):
        name = f"<0x{b:02X}>"
        if name not in j["model"]["vocab"]:
            j["model"]["vocab"][name] = next_id
            next_id += 1
    j["model"]["byte_fallback"] = True
    j["model"]["ignore_merges"] = True
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "--"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[0-9]"}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[.!?]+"}, "behavior": "Contiguous", "invert": True},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    gf = save(json.dumps(j, ensure_ascii=False), "gpt2-fallback.json")
    with open(os.path.join(OUT, "cases-fallback.json"), "w") as f:
        json.dump(edge_cases(gf, texts + ["a--b--c", "x 1 22 333 y", "one. two!! three?!", "end..."], "gpt2-fallback.json"), f)

    with open(os.path.join(OUT, "whitespace.json"), "w") as f:
        json.dump({"about": "code points c for which BLOOM's Split regex cuts 'a' + chr(c) + 'a' (tokenizers "
                            "library, Oniguruma)", "points": whitespace_points()}, f)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
