"""Writes tests/fixtures/minilm: what sentence-transformers and transformers
give for all-MiniLM-L6-v2 (models/all-MiniLM-L6-v2, `make models-minilm`),
for lacos' BERT model (issue 15) to be checked against. Nothing of the model
and none of the shared datasets' sentences is copied.

  sentences.json     12 invented sentences (English, French, German, Spanish,
                     Russian, Greek, Chinese, Japanese, Korean, Arabic, Hindi,
                     Turkish; one long enough to be cut at 256 tokens) and
                     for the batch of them as sentence-transformers
                     tokenizes it (truncation at max_seq_length 256, right
                     padding to the longest): input_ids, attention_mask,
                     token_type_ids; BertModel's last hidden state at the
                     first, second and last real token of each sentence, and
                     the mean, standard deviation and sha256 (of the f32
                     bytes) of each sentence's real rows; the whole last
                     hidden state of the shortest sentence; the mean-pooled
                     embeddings before and after the Normalize module, and
                     SentenceTransformer.encode's (f32, normalised).
  sts.json           sentence-transformers' Spearman and Pearson (x100) on
                     every English STS set lacos reads (28 sets and splits:
                     STS12-16, STS Benchmark, SICK, STS17 en-en,
                     stsb-multi-mt en, and the SentEval-tokenized copies),
                     per subset and aggregated (all = concatenated, mean,
                     wmean), with the number of pairs and lacos' digest of
                     each set: the pairs are dumped by lacos itself
                     (tests/reference/dump_sts_sets.lua, lacos.data.load), so
                     both sides score the same pairs. Embeddings:
                     SentenceTransformer.encode (batch 32); cosine in float64;
                     scipy.stats.spearmanr / pearsonr.
  stdir.json         variants of the sentence-transformers directory (each a
                     set of files replaced or deleted) and what
                     SentenceTransformer(dir) makes of each: the modules,
                     pooling mode, include_prompt, normalisation, maximum
                     length, embedding dimension, similarity function,
                     do_lower_case, and the embeddings of three invented
                     sentences - or the error it raises while loading or
                     encoding. lacos.sentence_transformers.describe must
                     read each the same way (tests/lua/test_stdir.lua).

    LACOS=build/lacos /work/venv-ref/bin/python tests/reference/make_minilm.py
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import scipy.stats
import torch

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "minilm")
DATA = os.environ.get("LACOS_TEST_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "datasets"))
MODEL = os.environ.get("LACOS_MINILM") or os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
LACOS = os.environ.get("LACOS") or os.path.join(ROOT, "build", "lacos")

from sentence_transformers import SentenceTransformer  # noqa: E402
import sentence_transformers  # noqa: E402
import transformers  # noqa: E402

SENTENCES = [
    "The cat sleeps on the warm windowsill while the rain keeps falling.",
    "Le petit garçon a mangé trois croissants avant l'école.",
    "Die Straßenbahn fährt heute wegen Bauarbeiten nicht über den Marktplatz.",
    "¿Dónde está la biblioteca más cercana a la estación?",
    "Вчера вечером мы долго гуляли по набережной.",
    "Η θάλασσα ήταν ήρεμη όλο το πρωί.",
    "我们明天早上八点在图书馆门口见面。",
    "駅の近くに新しいパン屋ができました。",
    "우리는 주말마다 공원에서 자전거를 탑니다.",
    "ذهبت إلى السوق لشراء الخضروات الطازجة.",
    "हम कल सुबह पहाड़ों की ओर यात्रा करेंगे।",
    # long enough to be cut at 256 tokens
    " ".join(["Istanbul'daki eski kütüphanede yüzlerce el yazması kitap özenle korunuyor ve araştırmacılar "
              "her gün yeni belgeler inceliyor."] * 12),
]
STDIR_SENTENCES = ["A man is playing a guitar.", "Eine Frau liest ein Buch im Park.", "Short."]


def f32_sha(a):
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def floats(a):
    return [float("%.9g" % x) for x in np.asarray(a, dtype=np.float64).ravel()]


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


# ---------------------------------------------------------------- 1. sentences

def sentences_fixture(model):
    feats = model.tokenize(SENTENCES)
    feats = {k: v for k, v in feats.items() if isinstance(v, torch.Tensor)}
    bert = model[0].auto_model
    with torch.no_grad():
        hidden = bert(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"],
                      token_type_ids=feats["token_type_ids"]).last_hidden_state.numpy()
        out = model.forward(dict(feats))
    mask = feats["attention_mask"].numpy()
    per = []
    for i in range(len(SENTENCES)):
        n = int(mask[i].sum())
        rows = hidden[i, :n]
        per.append({"n_tokens": n, "rows": {"0": floats(rows[0]), "1": floats(rows[1]), str(n - 1): floats(rows[n - 1])},
                    "mean": float(rows.astype(np.float64).mean()), "std": float(rows.astype(np.float64).std()),
                    "sha256": f32_sha(rows)})
    short = int(np.argmin(mask.sum(1)))
    n_short = int(mask[short].sum())
    # the mean pooling before Normalize: the Pooling module alone
    pooled = model[1]({"token_embeddings": torch.from_numpy(hidden), "attention_mask": feats["attention_mask"]})
    pooled = pooled["sentence_embedding"].detach().numpy()
    enc = model.encode(SENTENCES, convert_to_numpy=True)
    return {
        "sentences": SENTENCES, "max_seq_length": model.max_seq_length,
        "input_ids": feats["input_ids"].tolist(), "attention_mask": feats["attention_mask"].tolist(),
        "token_type_ids": feats["token_type_ids"].tolist(),
        "hidden_size": hidden.shape[2],
        "last_hidden": per,
        "shortest": {"index": short, "rows": [floats(hidden[short, j]) for j in range(n_short)]},
        "pooled": [floats(p) for p in pooled],
        "forward_embeddings": [floats(e) for e in out["sentence_embedding"].detach().numpy()],
        "encode": [floats(e) for e in enc],
        "encode_sha256": f32_sha(enc),
    }


# ---------------------------------------------------------------- 2. STS

def sts_fixture(model):
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "sts.json")
        subprocess.run([LACOS, "run", os.path.join(HERE, "dump_sts_sets.lua"), DATA, dump], check=True,
                       stdout=subprocess.DEVNULL)
        with open(dump, encoding="utf-8") as f:
            d = json.load(f)
    texts = sorted({s for st in d["sets"] for s in st["s1"] + st["s2"]})
    print(f"STS: {len(d['sets'])} sets, {len(texts)} distinct sentences to embed", flush=True)
    emb = model.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    index = {t: i for i, t in enumerate(texts)}
    out = []
    for st in d["sets"]:
        e1 = emb[[index[s] for s in st["s1"]]].astype(np.float64)
        e2 = emb[[index[s] for s in st["s2"]]].astype(np.float64)
        cos = (e1 * e2).sum(1) / (np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1))
        gold = np.array(st["gold"], dtype=np.float64)
        subs = []
        for u in st["subsets"]:
            a, n = u["first"] - 1, u["count"]
            sp = scipy.stats.spearmanr(cos[a:a + n], gold[a:a + n]).statistic if n >= 2 else float("nan")
            pe = scipy.stats.pearsonr(cos[a:a + n], gold[a:a + n]).statistic if n >= 2 else float("nan")
            subs.append({"name": u["name"], "n": n, "spearman": 100 * float(sp), "pearson": 100 * float(pe)})
        allsp = 100 * float(scipy.stats.spearmanr(cos, gold).statistic)
        allpe = 100 * float(scipy.stats.pearsonr(cos, gold).statistic)
        w = np.array([s["n"] for s in subs], dtype=np.float64)
        out.append({"dataset": st["id"], "split": st["split"], "subset": st.get("subset"), "text": st["text"],
                    "n": st["n"], "digest": st["digest"], "subsets": subs,
                    "all": {"spearman": allsp, "pearson": allpe},
                    "mean": {"spearman": float(np.mean([s["spearman"] for s in subs])),
                             "pearson": float(np.mean([s["pearson"] for s in subs]))},
                    "wmean": {"spearman": float(np.dot(w, [s["spearman"] for s in subs]) / w.sum()),
                              "pearson": float(np.dot(w, [s["pearson"] for s in subs]) / w.sum())}})
        print(f"  {st['id']:15} {st['split']:6} {st.get('subset') or '':6} {st['n']:6} pairs  Spearman {allsp:6.2f}", flush=True)
    return {"about": "sentence-transformers " + sentence_transformers.__version__ + ", all-MiniLM-L6-v2 "
                     "(SentenceTransformer.encode, batch 32, normalised embeddings); cosine in float64; scipy "
                     + scipy.__version__ + " spearmanr/pearsonr, x100; pairs as lacos.data.load reads them "
                     "(tests/reference/dump_sts_sets.lua, lacos " + d["lacos"] + ")",
            "sets": out}


# ---------------------------------------------------------------- 3. directory variants

POOL = "1_Pooling/config.json"
LEGACY = {"word_embedding_dimension": 384, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
          "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}


def legacy(**modes):
    c = dict(LEGACY)
    c.update(modes)
    return c


def modules(*kinds, types=None):
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize", "Dense": "2_Dense"}
    types = types or {}
    return [{"idx": i, "name": str(i), "path": paths.get(k, k), "type": types.get(k, f"sentence_transformers.models.{k}")}
            for i, k in enumerate(kinds)]


NEW_TYPES = {"Transformer": "sentence_transformers.base.modules.transformer.Transformer",
             "Pooling": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
             "Normalize": "sentence_transformers.base.modules.normalize.Normalize"}

# label, {relative path: JSON value (written) or None (deleted)}, and for the
# variants lacos refuses although sentence-transformers loads them, why.
VARIANTS = [
    ("as it is", {}, None),
    ("cls pooling (legacy keys)", {POOL: legacy(pooling_mode_cls_token=True)}, None),
    ("max pooling (legacy keys)", {POOL: legacy(pooling_mode_max_tokens=True)}, None),
    ("weightedmean pooling (legacy key)", {POOL: legacy(pooling_mode_weightedmean_tokens=True)}, None),
    ("lasttoken pooling (legacy key)", {POOL: legacy(pooling_mode_lasttoken=True)}, None),
    ("mean_sqrt_len_tokens pooling", {POOL: legacy(pooling_mode_mean_sqrt_len_tokens=True)}, None),
    ("no mode set: mean", {POOL: legacy()}, None),
    ("cls and mean concatenated (legacy keys)", {POOL: legacy(pooling_mode_cls_token=True, pooling_mode_mean_tokens=True)}, None),
    ("new keys: lasttoken, include_prompt false", {POOL: {"embedding_dimension": 384, "pooling_mode": "lasttoken",
                                                         "include_prompt": False}}, None),
    ("new keys: a list of one mode", {POOL: {"embedding_dimension": 384, "pooling_mode": ["weightedmean"]}}, None),
    ("no Normalize module", {"modules.json": modules("Transformer", "Pooling")}, None),
    ("sentence-transformers 6 type names", {"modules.json": modules("Transformer", "Pooling", "Normalize", types=NEW_TYPES)}, None),
    ("max_seq_length 128", {"sentence_bert_config.json": {"max_seq_length": 128, "do_lower_case": False}}, None),
    ("max_seq_length null", {"sentence_bert_config.json": {"max_seq_length": None, "do_lower_case": False}}, None),
    ("no sentence_bert_config.json", {"sentence_bert_config.json": None}, None),
    ("processor_kwargs.model_max_length 200", {"sentence_bert_config.json": {"processor_kwargs": {"model_max_length": 200}}}, None),
    ("do_lower_case true", {"sentence_bert_config.json": {"max_seq_length": 256, "do_lower_case": True}}, None),
    ("dot-product similarity", {"config_sentence_transformers.json": {"__version__": {"sentence_transformers": "2.0.0"},
                                                                       "similarity_fn_name": "dot"}}, None),
    ("a plain model directory (no modules.json)", {"modules.json": None}, None),
    ("a Dense module", {"modules.json": modules("Transformer", "Pooling", "Dense")}, None),
    ("a module of a custom package", {"modules.json": modules("Transformer", "Pooling",
                                                              types={"Pooling": "my_package.MyPooling"})}, None),
    ("pooling mode median", {POOL: {"embedding_dimension": 384, "pooling_mode": "median"}}, None),
    ("no Pooling config", {POOL: None}, None),
    ("modules.json that is not JSON", {"modules.json": "[{\"idx\": 0,"}, None),
    ("Normalize before Pooling", {"modules.json": modules("Transformer", "Normalize", "Pooling")}, None),
    ("embedding_dimension 512 for a 384-wide model", {POOL: legacy(word_embedding_dimension=512, pooling_mode_mean_tokens=True)},
     "differs from the model's hidden_size 384"),
    ("max_seq_length 1024 past the 512 positions", {"sentence_bert_config.json": {"max_seq_length": 1024}},
     "more than the model's max_position_embeddings 512"),
    ("a CrossEncoder directory", {"config_sentence_transformers.json": {"model_type": "CrossEncoder"}}, None),
]


def make_variant(base, patch, dest):
    os.makedirs(dest)
    for name in os.listdir(base):
        src = os.path.join(base, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, name))
        elif name.endswith(".safetensors"):
            os.symlink(src, os.path.join(dest, name))
        else:
            shutil.copy(src, os.path.join(dest, name))
    for rel, value in patch.items():
        path = os.path.join(dest, rel)
        if value is None:
            if os.path.exists(path):
                os.remove(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(value if isinstance(value, str) else json.dumps(value))


def st_view(path):
    try:
        m = SentenceTransformer(path, device="cpu")
        emb = m.encode(STDIR_SENTENCES, convert_to_numpy=True)
    except Exception as e:  # what the library refuses, loading or encoding
        return {"error": f"{type(e).__name__}: {e}"[:300]}
    pooling = next((mod for mod in m if type(mod).__name__ == "Pooling"), None)
    mode = pooling.pooling_mode if pooling is not None else None
    return {"modules": [type(mod).__name__ for mod in m],
            "pooling_modes": [mode] if isinstance(mode, str) else list(mode),
            "include_prompt": bool(pooling.include_prompt), "normalize": any(type(mod).__name__ == "Normalize" for mod in m),
            "max_seq_length": m.max_seq_length, "dimension": m.get_sentence_embedding_dimension(),
            "similarity": m.similarity_fn_name or "cosine", "do_lower_case": bool(getattr(m[0], "do_lower_case", False)),
            "embeddings": [floats(e) for e in emb]}


def stdir_fixture():
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, patch, refuses) in enumerate(VARIANTS):
            dest = os.path.join(tmp, f"v{k}")
            make_variant(MODEL, patch, dest)
            view = st_view(dest)
            print(f"  {label:50} {'error' if 'error' in view else view['pooling_modes']}", flush=True)
            entry = {"label": label, "patch": patch, "sentence_transformers": view}
            if refuses:
                entry["lacos_refuses"] = refuses
            out.append(entry)
    return {"about": "variants of all-MiniLM-L6-v2's directory: patch = files written (JSON values, or text) or deleted "
                     "(null); what SentenceTransformer(dir) (sentence-transformers " + sentence_transformers.__version__ +
                     ") makes of each, or its error; lacos_refuses: lacos refuses it on purpose (a directory that "
                     "contradicts itself), with this in the message",
            "sentences": STDIR_SENTENCES, "variants": out}


def main():
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        sys.exit(f"make_minilm.py: {MODEL} is missing (run make models-minilm)")
    if not os.path.isdir(DATA):
        sys.exit(f"make_minilm.py: datasets not found at {DATA} (set LACOS_TEST_DATA)")
    if not os.access(LACOS, os.X_OK):
        sys.exit(f"make_minilm.py: {LACOS} is missing (build lacos first, or set LACOS)")
    torch.manual_seed(0)
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    model = SentenceTransformer(MODEL, device="cpu")
    model.eval()
    versions = {"sentence_transformers": sentence_transformers.__version__, "transformers": transformers.__version__,
                "torch": torch.__version__}
    s = sentences_fixture(model)
    s["versions"] = versions
    write_json("sentences.json", s)
    print(f"sentences: {len(SENTENCES)}, tokens per sentence {[p['n_tokens'] for p in s['last_hidden']]}", flush=True)
    print("directory variants:", flush=True)
    write_json("stdir.json", stdir_fixture())
    sts = sts_fixture(model)
    sts["versions"] = versions
    write_json("sts.json", sts)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
