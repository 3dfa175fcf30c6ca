"""Writes tests/fixtures/wordpiece: what the Hugging Face tokenizers library
gives for WordPiece tokenizers (BERT's pipeline), for lacos' tokenizer tests
(engine/wordpiece.c, tokenizer_template.c and tokenizer.c must give the same).

The real tokenizer is all-MiniLM-L6-v2's tokenizer.json, read from
models/all-MiniLM-L6-v2 (`make models-minilm`); it is not copied here. The
sentences are those of the shared datasets (LACOS_TEST_DATA or
../shared/datasets): every STS/NLI/paraphrase file cut as
tests/reference/make_tokenizer.py cuts them, plus every Tatoeba file (one
sentence a line, 112 languages and English).

  sources.json          the sentence files (path, size, sha256, how the
                        sentences are cut out).
  expected-minilm.json  per file: number of texts and ids and the sha256 of
                        the ids (each text's ids with [CLS]/[SEP], space-
                        separated, one line per text; no truncation or
                        padding), and the same one by one for its first 16
                        texts with their line and column. No sentence and no
                        id list is stored.
  cases-minilm.json     invented edge cases (CJK, accents, control and
                        format characters, whitespace of every kind, words
                        at and past max_input_chars_per_word, empty texts,
                        added tokens, punctuation, scripts with marks) and
                        random strings, as hex UTF-8, with ids, type ids and
                        decoded text; decoding of id lists; batches and pairs
                        under the file's truncation/padding, under
                        sentence-transformers' (256, longest) and others.
  unicode-minilm.json   every code point through the normalizer and the
                        pre-tokenizer: ranges removed, turned into a space,
                        spaced as Chinese, cut as whitespace or punctuation,
                        and the digest per 256-code-point block of the
                        others that change; "exempt" lists the code points
                        whose Unicode data the library takes from older
                        tables than Python's unicodedata (or that Python's
                        Unicode does not assign), where lacos follows
                        utf8proc instead.
  wp-small.json         a 6,000-token WordPiece tokenizer (BERT's pipeline)
                        trained here on a sample of the shared sentences.
  cases-variants.json   wp-small.json with other normalizers, pre-tokenizers,
                        model settings, post-processors and decoders (each
                        variant is the JSON to put in place of those
                        sections), the edge cases' ids and decoded text and
                        batches of pairs under each.
"""
import hashlib
import json
import os
import random
import sys
import unicodedata

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_tokenizer as mt  # noqa: E402  (the sentence sources and the digest)

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "wordpiece")
DATA = mt.DATA
MINILM = os.environ.get("LACOS_MINILM") or os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
LONG = 300   # texts longer than this (bytes) are checked through digests
digest = mt.digest


# ---------------------------------------------------------------- sources

def source_rules():
    rules = mt.source_rules()
    tatoeba = "bitext/tatoeba-v1"
    for name in sorted(os.listdir(os.path.join(DATA, tatoeba))):
        if name.startswith("tatoeba."):
            rules.append({"path": f"{tatoeba}/{name}", "format": "lines", "columns": [], "header": 0})
    return rules


def load_minilm():
    path = os.path.join(MINILM, "tokenizer.json")
    if not os.path.exists(path):
        sys.exit(f"make_wordpiece.py: {path} is missing (run make models-minilm)")
    tok = Tokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    return path, tok


# ---------------------------------------------------------------- edge cases

def edge_texts(rng, n_random=700):
    t = [
        "", " ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "a\u180eb", "a\u200bb",
        "\ufeffhello", "soft\u00adhyphen", "private\ue000use", "\ufffdreplacement", "nul\x00char", "\x01\x02\x1f\x7f",
        "tab\there", "line\nbreak", "cr\rlf\r\n", "  leading and trailing  ", "many     spaces",
        "Hello, world!", "HELLO World", "Wait... what?!", "(a|b) [c] {d} <e>", "a.b,c;d:e!f?g", "$100 & 50% off #1",
        "e-mail: someone@example.com, url: https://example.org/path?q=1&x=2",
        "don't they'll I'm we've you're it's", "I do not know . Is n't it ? Yes ! We ' re here , they ' ve gone",
        "Ça va ? Très bien !", "naïve café résumé coöperate", "Ångström Øresund Æsir œuvre", "straße STRASSE ẞ",
        "İstanbul ılık IŞIK", "ΣΊΣΥΦΟΣ σοφός ς", "Ёлка ЁЖ", "e\u0301 a\u0300\u0301\u0302 n\u0303", "\u0301alone",
        "ﬁ ﬂ ＡＢＣ ｈｅｌｌｏ", "Ⅻ ⅻ ① ² ½", "Ǆ ǅ ǆ",
        "这是一个测试。", "漢字かな交じり文", "中文English混合", "\U00020000\U0002A6DF\U0002B820\U0002CEAF",
        "\uf900\ufa6a\U0002f800", "これはテストです。", "이것은 테스트입니다.", "한국어", "가",
        "Это тест.", "Αυτό είναι ένα τεστ.", "Bu bir testtir.", "Hii ni jaribio.", "Đây là một bài kiểm tra.",
        "مرحبا، عالم", "سلام۔ دنیا", "مَرْحَبًا", "नमस्ते। दुनिया", "क्षि", "নমস্কার", "สวัสดีครับ", "ສະບາຍດີ",
        "שָׁלוֹם", "გამარჯობა", "Բարեւ", "ሰላም", "សួស្តី", "မင်္ဂလာပါ",
        "«quoted» „German“ ‘single’ “double” ¿Qué? ¡Hola! — – … · •", "、。，・「」『』【】", "‐‑‒–—―",
        "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇩🇪", "I ❤️ Unicode 🎉🎉🎉", "🥰🫠", "☕ ♥ ★ ☺",
        "[CLS]", "[SEP] [PAD] [UNK] [MASK]", "x[CLS]y", "[cls] [sep]", "[CLS][CLS]", "[ CLS ]", "##", "##abc", "###",
        "123 4,567.89 3.14159 1/2 10^6", "0x1F 1e-9 -42", "C++ C# F#", "AT&T U.S.A. e.g. i.e.",
        ("a", 100), ("a", 101), ("é", 100), ("é", 101), ("漢", 3), ("ab", 60), ("supercalifragilistic", 5),
        ("x", 1000), ("word ", 200), (" ", 1000), ("\n", 300), ("漢字", 1500), ("🙂", 500), ("é", 3000),
        ("The quick brown fox jumps over the lazy dog. ", 40), ("[CLS]", 100), ("a\u0301", 400),
    ]
    t.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5000)))
    pieces = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") +
              list(" \t\n\r\u00a0\u3000\u2028\u180e\u200b\u0085\x00\x07\ufeff\u00ad\ue000\ufffd") +
              list(".,!?…。，、।۔،()|[]{}'\"-_/\\:;@#$%^&*+=~`<>«»¿¡—–") +
              list("éüßçñøåæœÉÜİıŞğ") + list("абвгдеёжзийклмнопрстуфхцчшщъыьэюяЁ") + list("αβγδεζηθΣσς") +
              list("你好世界中文字漢") + list("日本語のテスト") + list("한국어테스트") + list("अआइईउऊकखगघ्ंः") +
              list("ابتثجحخدذًٌٍَُِّْ") + list("กขคงัิีึื") + ["\u0301", "\u0308", "\u0327", "\u200d", "\ufe0f",
                                                        "😀", "👍", "🏽", "🇫", "🇷", "ﬁ", "Ⅻ", "\uf900"] +
              ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "##", " the", " and", "ing", "tion", "  ", "   "])
    for _ in range(n_random):
        n = rng.randint(0, 40)
        t.append("".join(rng.choice(pieces) for _ in range(n)))
    return t


def text_of(item):
    return item[0] * item[1] if isinstance(item, tuple) else item


def edge_cases(tok, texts):
    cases = []
    for item in texts:
        text = text_of(item)
        enc = tok.encode(text)
        raw = text.encode("utf-8")
        dec = tok.decode(enc.ids, skip_special_tokens=False).encode("utf-8")
        skip = tok.decode(enc.ids, skip_special_tokens=True).encode("utf-8")
        nospecial = tok.encode(text, add_special_tokens=False).ids
        if len(raw) <= LONG:
            case = {"hex": raw.hex(), "ids": enc.ids, "decoded_hex": dec.hex(), "decoded_skip_hex": skip.hex()}
            if nospecial != enc.ids[1:-1]:
                case["ids_nospecial"] = nospecial
        else:
            case = {"n_ids": len(enc.ids), "ids_sha256": digest([enc.ids]), "nospecial_sha256": digest([nospecial]),
                    "decoded_sha256": hashlib.sha256(dec).hexdigest(), "decoded_skip_sha256": hashlib.sha256(skip).hexdigest()}
            if isinstance(item, tuple):
                case["unit_hex"], case["times"] = item[0].encode("utf-8").hex(), item[1]
            else:
                case["hex"] = raw.hex()
        cases.append(case)
    return cases


def decode_cases(tok, rng):
    vocab = tok.get_vocab_size(with_added_tokens=True)
    out = []
    picks = ["[CLS]", "[SEP]", "[PAD]", "[UNK]", ".", ",", "?", "!", "'", "n", "##t", "t", "s", "m", "ve", "re", "do",
             "not", "##s", "##ing", "the", "a", "##a", "##"]
    picks = [tok.token_to_id(p) for p in picks if tok.token_to_id(p) is not None]
    for k in range(400):
        n = rng.randint(1, 8)
        if k % 2:
            ids = [rng.choice(picks) for _ in range(n)]
        else:
            ids = [rng.randrange(vocab) for _ in range(n)]
        ids = [i for i in ids if tok.id_to_token(i) is not None]
        out.append({"ids": ids, "hex": tok.decode(ids, skip_special_tokens=False).encode("utf-8").hex(),
                    "skip_hex": tok.decode(ids, skip_special_tokens=True).encode("utf-8").hex()})
    tokens = [{"id": i, "token": tok.id_to_token(i)} for i in list(range(0, 1100, 7)) + [vocab - 1]]
    return out, tokens


def batch_configs(path, texts, pairs, labels=None):
    """encode_batch (and pairs) under the file's settings and overrides.
    Each config: padding and truncation arguments as given to the library
    (None: leave the file's), whether special tokens are added, and for each
    of singles and pairs the ids, attention masks and type ids, or the error."""
    configs = [
        ("file", None, None, True),
        ("sentence-transformers: 256 tokens, longest first, pad to the longest", {"direction": "right", "pad_id": 0,
         "pad_token": "[PAD]"}, {"max_length": 256, "strategy": "longest_first", "direction": "right"}, True),
        ("truncate right at 12, pad to the longest", {"direction": "right", "pad_id": 0, "pad_token": "[PAD]"},
         {"max_length": 12}, True),
        ("truncate left at 9, pad left to a multiple of 8, pad type 1", {"direction": "left", "pad_id": 0, "pad_token": "[PAD]",
         "pad_to_multiple_of": 8, "pad_type_id": 1}, {"max_length": 9, "direction": "left"}, True),
        ("no special tokens, truncate at 7, fixed 10", {"direction": "right", "pad_id": 0, "pad_token": "[PAD]", "length": 10},
         {"max_length": 7}, False),
        ("only_first at 14", {"direction": "right", "pad_id": 0, "pad_token": "[PAD]"}, {"max_length": 14, "strategy": "only_first"}, True),
        ("only_second at 14", {"direction": "right", "pad_id": 0, "pad_token": "[PAD]"}, {"max_length": 14, "strategy": "only_second"}, True),
        ("longest_first at 11, left side", {"direction": "right", "pad_id": 0, "pad_token": "[PAD]"},
         {"max_length": 11, "strategy": "longest_first", "direction": "left"}, True),
        ("longest_first at 3", {"direction": "right", "pad_id": 0, "pad_token": "[PAD]"}, {"max_length": 3}, True),
    ]
    out = []
    for label, pad, trunc, special in configs:
        if labels is not None and label not in labels:
            continue
        tok = Tokenizer.from_file(path)
        if pad is not None:
            tok.enable_padding(**pad)
        if trunc is not None:
            tok.enable_truncation(**trunc)
        entry = {"label": label, "padding": pad, "truncation": trunc, "add_special": special}
        for kind, inputs in (("single", texts), ("pair", pairs)):
            try:
                encs = tok.encode_batch(inputs, add_special_tokens=special)
                entry[kind] = {"ids": [e.ids for e in encs], "mask": [e.attention_mask for e in encs],
                               "type_ids": [e.type_ids for e in encs]}
            except Exception as e:   # the library refuses: lacos must too
                entry[kind] = {"error": str(e)}
        out.append(entry)
    return out


def batch_inputs(texts):
    short = [text_of(t) for t in texts if not isinstance(t, tuple) and 0 < len(t) < 120][:40]
    singles = short + ["x " * 90, "", "word " * 300]
    pairs = [(short[i], short[-1 - i]) for i in range(20)] + [("", "only the second"), ("only the first", ""),
                                                               ("a " * 50, "b"), ("c", "d " * 50)]
    return singles, pairs


# ---------------------------------------------------------------- every code point

def ranges(points):
    out, start, prev = [], None, None
    for c in points:
        if start is None:
            start = prev = c
        elif c == prev + 1:
            prev = c
        else:
            out.append([start, prev])
            start = prev = c
    if start is not None:
        out.append([start, prev])
    return out


def is_chinese(c):
    return (0x4E00 <= c <= 0x9FFF or 0x3400 <= c <= 0x4DBF or 0x20000 <= c <= 0x2A6DF or 0x2A700 <= c <= 0x2B73F or
            0x2B740 <= c <= 0x2B81F or 0x2B920 <= c <= 0x2CEAF or 0xF900 <= c <= 0xFAFF or 0x2F800 <= c <= 0x2FA1F)


def model_normalize(c):
    """BertNormalizer (clean, chinese, strip accents, lowercase) written out
    with Python's unicodedata: what the library would give with that Unicode."""
    ch = chr(c)
    cat = unicodedata.category(ch)
    if c == 0 or c == 0xFFFD or (cat in ("Cc", "Cf", "Co") and ch not in "\t\n\r"):
        return ""
    if is_white_space(c):
        return " "
    s = f" {ch} " if is_chinese(c) else ch
    s = "".join(x for x in unicodedata.normalize("NFD", s) if unicodedata.category(x) != "Mn")
    return "".join(x.lower() for x in s)


def is_white_space(c):
    return (9 <= c <= 13 or c == 32 or c == 0x85 or c == 0xA0 or c == 0x1680 or 0x2000 <= c <= 0x200A or
            c in (0x2028, 0x2029, 0x202F, 0x205F, 0x3000))


def model_pre(c):
    if is_white_space(c):
        return "space"
    if (c < 128 and chr(c) in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") or unicodedata.category(chr(c)).startswith("P"):
        return "punct"
    return "word"


def unicode_sweep(tok):
    norm, pre = tok.normalizer, tok.pre_tokenizer
    kinds = {"removed": [], "space": [], "chinese": [], "ws": [], "punct": []}
    exempt, blocks = [], {}
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        ch = chr(c)
        out = norm.normalize_str(ch)
        n = len(pre.pre_tokenize_str("a" + ch + "a"))
        p = {1: "word", 2: "space", 3: "punct"}[n]
        if out != model_normalize(c) or p != model_pre(c) or unicodedata.category(ch) == "Cn":
            exempt.append(c)
            continue
        if p == "space":
            kinds["ws"].append(c)
        elif p == "punct":
            kinds["punct"].append(c)
        if out == ch:
            continue
        if out == "":
            kinds["removed"].append(c)
        elif out == " ":
            kinds["space"].append(c)
        elif out == f" {ch} ":
            kinds["chinese"].append(c)
        else:
            b = blocks.setdefault(c >> 8, [])
            b.append(f"{c} {out.encode('utf-8').hex()}\n")
    mapped = {str(b): {"n": len(lines), "sha256": hashlib.sha256("".join(lines).encode()).hexdigest()}
              for b, lines in sorted(blocks.items())}
    return {"about": "every code point (surrogates left out) through all-MiniLM-L6-v2's normalizer and pre-tokenizer "
                     "(tokenizers " + __import__("tokenizers").__version__ + "); ranges are inclusive; mapped: per block "
                     "of 256 code points, the sha256 of the lines 'cp hex(UTF-8 of the output)\\n' of the code points "
                     "the normalizer changes otherwise, in order; exempt code points are left out of everything",
            "unicode_python": unicodedata.unidata_version,
            "exempt_about": "code points where the library differs from BertNormalizer/BertPreTokenizer written with "
                            "Python's unicodedata, or that Python's Unicode leaves unassigned: the library's "
                            "unicode_categories tables are older",
            "exempt": ranges(exempt), "n_exempt": len(exempt),
            **{k: ranges(v) for k, v in kinds.items()}, "mapped": mapped}


# ---------------------------------------------------------------- variants

def small_tokenizer(corpus):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # the alphabet capped, so that most of the vocabulary is subwords ("##ing")
    trainer = trainers.WordPieceTrainer(vocab_size=6000, min_frequency=2, show_progress=False, limit_alphabet=1500,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(corpus, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return tok


def variants(base):
    """Each variant: the sections of wp-small.json to replace (a JSON object
    per top-level key; "model" entries are merged into the model)."""
    j = json.loads(base.to_str())
    vocab = j["model"]["vocab"]
    cls, sep, mask = vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"]
    bert = lambda **kw: {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                         "strip_accents": None, "lowercase": True, **kw}
    return [
        ("cased", {"normalizer": bert(lowercase=False)}),
        ("cased, strip accents", {"normalizer": bert(lowercase=False, strip_accents=True)}),
        ("lowercase, keep accents", {"normalizer": bert(strip_accents=False)}),
        ("no clean_text, no Chinese spacing", {"normalizer": bert(clean_text=False, handle_chinese_chars=False)}),
        ("no normalizer, no pre-tokenizer, no decoder, short words",
         {"normalizer": None, "pre_tokenizer": None, "decoder": None, "model": {"max_input_chars_per_word": 6}}),
        ("sentence-transformers do_lower_case: Sequence[Lowercase, BertNormalizer(cased)]",
         {"normalizer": {"type": "Sequence", "normalizers": [{"type": "Lowercase"}, bert(lowercase=False)]}}),
        ("NFD, StripAccents, Lowercase", {"normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]}}),
        ("StripAccents without NFD", {"normalizer": {"type": "StripAccents"}}),
        ("prefix @@, WordPiece decoder without cleanup",
         {"rename_prefix": ["##", "@@"], "model": {"continuing_subword_prefix": "@@"},
          "decoder": {"type": "WordPiece", "prefix": "@@", "cleanup": False}}),
        ("BertProcessing", {"post_processor": {"type": "BertProcessing", "sep": ["[SEP]", sep], "cls": ["[CLS]", cls]}}),
        ("template with a two-id token, B first in pairs, no post-processor pair types",
         {"post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                        {"SpecialToken": {"id": "[SEP]", "type_id": 2}}],
                             "pair": [{"Sequence": {"id": "B", "type_id": 3}}, {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                             "special_tokens": {"<s>": {"id": "<s>", "ids": [cls, mask], "tokens": ["[CLS]", "[MASK]"]},
                                                "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]}}}}),
        ("no post-processor", {"post_processor": None}),
        ("Sequence of ByteLevel and TemplateProcessing post-processors",
         {"post_processor": {"type": "Sequence", "processors": [
             {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
             json.loads(base.to_str())["post_processor"]]}}),
        ("added tokens: normalized, lstrip/rstrip, single_word",
         {"added_tokens": j["added_tokens"] + [
             {"id": len(vocab), "content": "hello world", "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": True, "special": False},
             {"id": len(vocab) + 1, "content": "<MASK>", "single_word": False, "lstrip": True, "rstrip": True,
              "normalized": False, "special": True},
             {"id": len(vocab) + 2, "content": "ÉCOLE", "single_word": True, "lstrip": False, "rstrip": False,
              "normalized": True, "special": False},
             {"id": len(vocab) + 3, "content": "漢字", "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": False}]}),
        ("file truncation 10 only_second and fixed padding 16 left, pad type 2",
         {"truncation": {"direction": "Right", "max_length": 10, "strategy": "OnlySecond", "stride": 0},
          "padding": {"strategy": {"Fixed": 16}, "direction": "Left", "pad_to_multiple_of": None, "pad_id": 0,
                      "pad_type_id": 2, "pad_token": "[PAD]"}}),
    ]


def apply_variant(base_json, patch):
    """"model" is merged into the model; "rename_prefix": [old, new] renames
    the vocabulary's continuation tokens (old + x becomes new + x); any other
    key replaces that section."""
    j = json.loads(base_json)
    for k, v in patch.items():
        if k == "model":
            j["model"].update(v)
        elif k == "rename_prefix":
            old, new = v
            j["model"]["vocab"] = {(new + t[len(old):] if t.startswith(old) else t): i for t, i in j["model"]["vocab"].items()}
        else:
            j[k] = v
    return json.dumps(j, ensure_ascii=False)


# ---------------------------------------------------------------- main

VARIANT_CONFIGS = {"file", "truncate left at 9, pad left to a multiple of 8, pad type 1",
                   "no special tokens, truncate at 7, fixed 10", "only_second at 14", "longest_first at 11, left side"}

def write_json(name, obj, compact=False):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    if not os.path.isdir(DATA):
        sys.exit(f"make_wordpiece.py: datasets not found at {DATA} (set LACOS_TEST_DATA)")
    path, tok = load_minilm()
    tok_sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    rules = source_rules()
    per_file = []
    for r in rules:
        data = open(os.path.join(DATA, r["path"]), "rb").read()
        r["bytes"] = len(data)
        r["sha256"] = hashlib.sha256(data).hexdigest()
        refs = mt.sentences(r)
        per_file.append(([x.decode("utf-8") for x, _, _ in refs], refs))
    write_json("sources.json", {"about": "sentence files of the shared datasets and the rules that cut them out "
                                         "(tests/reference/make_wordpiece.py; the rules of make_tokenizer.py plus "
                                         "Tatoeba)", "files": rules})

    # 1. all-MiniLM-L6-v2 on every sentence
    expected, total_texts, total_ids = {}, 0, 0
    for r, (s, refs) in zip(rules, per_file):
        ids = [e.ids for e in tok.encode_batch(s, add_special_tokens=True)]
        first = [{"index": i + 1, "line": refs[i][1], "column": refs[i][2], "n_ids": len(ids[i]), "sha256": digest([ids[i]])}
                 for i in range(min(16, len(s)))]
        expected[r["path"]] = {"texts": len(s), "tokens": sum(map(len, ids)), "sha256": digest(ids), "first": first}
        total_texts += len(s)
        total_ids += sum(map(len, ids))
    print(f"all-MiniLM-L6-v2: {len(rules)} files, {total_texts} texts, {total_ids} ids", flush=True)
    with open(os.path.join(OUT, "expected-minilm.json"), "w") as f:
        head = {"tokenizer": "all-MiniLM-L6-v2/tokenizer.json", "tokenizer_sha256": tok_sha,
                "tokenizers_version": __import__("tokenizers").__version__,
                "digest": "sha256 of each text's ids with [CLS] and [SEP], space-separated, one line per text",
                "first": "the file's first texts one by one: index among its texts, line (1-based, header counted; "
                         "CSV: where the record starts), column (1-based field), number and digest of their ids"}
        f.write(json.dumps(head, indent=1)[:-2] + ',\n "files": {\n')
        f.write(",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in expected.items()))
        f.write("\n }\n}\n")

    # 2. edge cases, decoding, batches
    texts = edge_texts(random.Random(15))
    singles, pairs = batch_inputs(texts)
    dec, tokens = decode_cases(tok, random.Random(16))
    write_json("cases-minilm.json", {
        "tokenizer": "all-MiniLM-L6-v2/tokenizer.json", "tokenizer_sha256": tok_sha,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "special_count": [tok.num_special_tokens_to_add(False), tok.num_special_tokens_to_add(True)],
        "cases": edge_cases(tok, texts), "decode": dec, "tokens": tokens,
        "batches": {"texts_hex": [t.encode("utf-8").hex() for t in singles],
                    "pairs_hex": [[a.encode("utf-8").hex(), b.encode("utf-8").hex()] for a, b in pairs],
                    "configs": batch_configs(path, singles, pairs)}}, compact=True)

    # 3. every code point
    sweep = unicode_sweep(tok)
    print(f"unicode: {sweep['n_exempt']} code points exempt", flush=True)
    write_json("unicode-minilm.json", sweep)

    # 4. variants of a small trained tokenizer
    corpus = [x for s, _ in per_file for x in s]
    small = small_tokenizer(random.Random(1234).sample(corpus, 30000))
    small_path = os.path.join(OUT, "wp-small.json")
    with open(small_path, "w", encoding="utf-8") as f:
        f.write(small.to_str(pretty=False))
    base_json = open(small_path, encoding="utf-8").read()
    out = []
    vtexts = edge_texts(random.Random(15), 60) + ["hello world and hello worlds", "HELLO WORLD", "a <MASK> b", "x  <MASK>  y", "école ÉCOLE écoles",
                      "l'ÉCOLE", "漢字です", "préfixe@@ @@x ##x"]
    for label, patch in [("wp-small.json as it is", {})] + variants(small):
        vj = apply_variant(base_json, patch)
        vpath = os.path.join(OUT, ".variant.json")
        with open(vpath, "w", encoding="utf-8") as f:
            f.write(vj)
        vt = Tokenizer.from_file(vpath)
        vt.no_truncation()
        vt.no_padding()
        d, _ = decode_cases(vt, random.Random(17))
        vs, vp = batch_inputs(vtexts)
        vs, vp = vs[:16] + vs[-3:], vp[:8] + vp[-4:]
        out.append({"label": label, "patch": patch, "cases": edge_cases(vt, vtexts), "decode": d[:60],
                    "special_count": [vt.num_special_tokens_to_add(False), vt.num_special_tokens_to_add(True)],
                    "batches": {"texts_hex": [t.encode("utf-8").hex() for t in vs],
                                "pairs_hex": [[a.encode("utf-8").hex(), b.encode("utf-8").hex()] for a, b in vp],
                                "configs": batch_configs(vpath, vs, vp, VARIANT_CONFIGS)}})
        os.remove(vpath)
    write_json("cases-variants.json", {"base": "wp-small.json", "variants": out}, compact=True)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
