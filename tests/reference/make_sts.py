"""make_sts.py: scipy parity fixtures for lacos.sts (engine/sts.c).

Writes tests/fixtures/sts/cases.json: vectors x, y with scipy.stats.spearmanr,
scipy.stats.pearsonr and scipy.stats.rankdata(method="average") results.
Cases: random data with many ties, degenerate inputs (constant vectors -> NaN,
stored as null), n = 2, and badly scaled values - all stored in full.

And the gold scores of real STS files against predictions from a stated
generator, read from the shared datasets (LACOS_TEST_DATA or
../shared/datasets) with plain TAB/line parsing as PITFALLS.md describes. The
gold scores are not copied: a real case stores the files (path, sha256), the
number of pairs and the sha256 of the gold column as read here, the
prediction rule, and what scipy gave (Spearman, Pearson, the sha256 of both
rank vectors). tests/lua/test_sts.lua reads the gold through lacos.data at
test time, rebuilds the predictions and compares.

Predictions (the same arithmetic in tests/lua/test_sts.lua, exact in
doubles): Park-Miller minstd, s <- 48271 * s mod 2147483647 from the seed,
u = s / 2147483647;
  uniform      x_i = 2 * u - 1 (one draw per pair)
  gold+noise   x_i = g_i + scale * (((u1 + u2) + u3) + u4 - 2) (four draws)
Digests: sha256 of the values printed with "%.17g", one per line.

    .venv-ref/bin/python tests/reference/make_sts.py
"""
import hashlib
import json
import os
import warnings

import numpy as np
import scipy
import scipy.stats as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("LACOS_TEST_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "datasets")
OUT = os.path.join(ROOT, "tests", "fixtures", "sts")


def lines(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return [l[:-1] if l.endswith("\r") else l for l in out]


def minstd(seed, n):
    out, s = [], seed
    for _ in range(n):
        s = 48271 * s % 2147483647
        out.append(s / 2147483647)
    return out


def predictions(rule, gold):
    n = len(gold)
    if rule["kind"] == "uniform":
        return [2 * u - 1 for u in minstd(rule["seed"], n)]
    u = minstd(rule["seed"], 4 * n)
    return [g + rule["scale"] * ((((u[4 * i] + u[4 * i + 1]) + u[4 * i + 2]) + u[4 * i + 3]) - 2)
            for i, g in enumerate(gold)]


def values_sha256(values):
    return hashlib.sha256("".join("%.17g\n" % v for v in values).encode()).hexdigest()


def file_ref(rel):
    with open(os.path.join(DATA, rel), "rb") as f:
        return {"path": rel, "sha256": hashlib.sha256(f.read()).hexdigest()}


def stsb_gold(split):
    rel = f"sts/stsb/sts-{split}.csv"
    return [float(l.split("\t")[4]) for l in lines(os.path.join(DATA, rel))], [rel]


def gold_file(rel):
    return [float(l) for l in lines(os.path.join(DATA, rel)) if l.strip() != ""]


def num(v):
    v = float(v)
    return None if np.isnan(v) else v


def case(name, x, y, source=None):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp = st.spearmanr(x, y).statistic
        pr = st.pearsonr(x, y).statistic
    c = {"name": name, "x": x.tolist(), "y": y.tolist(), "spearman": num(sp), "pearson": num(pr),
         "rank_x": st.rankdata(x, method="average").tolist(), "rank_y": st.rankdata(y, method="average").tolist()}
    if source:
        c["source"] = source
    return c


def main():
    rng = np.random.default_rng(20240611)
    cases = []
    cases.append(case("random continuous n=50", rng.normal(size=50), rng.normal(size=50)))
    x = rng.integers(0, 6, size=300).astype(float)
    cases.append(case("integer ties 0..5 vs correlated noise n=300", x, x + rng.normal(scale=1.5, size=300)))
    cases.append(case("ties on both sides n=200", rng.integers(0, 4, size=200), rng.integers(0, 5, size=200)))
    cases.append(case("half-point scores vs rounded predictions", np.round(rng.uniform(0, 5, 400) * 2) / 2,
                      np.round(rng.uniform(-1, 1, 400), 2)))
    cases.append(case("n=2 increasing", [1.0, 2.0], [3.0, 7.5]))
    cases.append(case("n=2 decreasing", [1.0, 2.0], [0.5, -4.0]))
    cases.append(case("n=3 with a tie", [1.0, 1.0, 2.0], [0.1, 0.3, 0.2]))
    cases.append(case("constant x", [2.0] * 10, rng.normal(size=10)))
    cases.append(case("constant y", rng.normal(size=10), [0.5] * 10))
    cases.append(case("all tied but one", [1.0] * 9 + [2.0], list(range(10))))
    cases.append(case("exact negative", list(range(20)), [-3 * v + 1 for v in range(20)]))
    big = 1e8 + rng.normal(size=100)
    cases.append(case("large offset (cancellation)", big, big * 0.5 + rng.normal(scale=0.1, size=100)))
    cases.append(case("tiny scale", rng.normal(size=100) * 1e-200, rng.normal(size=100)))

    real = []
    if os.path.isdir(DATA):
        def real_case(name, gold, files, source, rule):
            x = predictions(rule, gold)
            c = case(name, x, gold)
            real.append({"name": name, "source": source, "files": [file_ref(f) for f in files],
                         "gold": {"n": len(gold), "sha256": values_sha256(gold)}, "predictions": rule,
                         "spearman": c["spearman"], "pearson": c["pearson"],
                         "rank_x_sha256": values_sha256(c["rank_x"]), "rank_y_sha256": values_sha256(c["rank_y"])})

        for split, seed in (("test", 0), ("dev", 1)):
            g, files = stsb_gold(split)
            real_case(f"STSb {split} gold vs uniform", g, files, {"dataset": "stsb", "split": split},
                      {"kind": "uniform", "seed": 20240611 + seed})
        g, files = [], []
        for name in ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"):
            files.append(f"sts/sts16/test/STS2016.gs.{name}.txt")
            g += gold_file(files[-1])
        real_case("STS16 gold (integers, many ties) vs uniform", g, files, {"dataset": "sts16", "split": "test"},
                  {"kind": "uniform", "seed": 20240613})
        rel = "sts/sts17/STS2017.gs/STS.gs.track4b.es-en.txt"
        real_case("STS17 track4b gold (integers 2-5) vs uniform", gold_file(rel), [rel],
                  {"dataset": "sts17", "subset": "en-es-wmt"}, {"kind": "uniform", "seed": 20240614})
        rel = "sts/sick/SICK_test_annotated.txt"
        sick = [float(l.split("\t")[3]) for l in lines(os.path.join(DATA, rel))[1:]]
        real_case("SICK test relatedness (1-5) vs gold + noise", sick, [rel], {"dataset": "sick", "split": "test"},
                  {"kind": "gold+noise", "seed": 20240615, "scale": 1.0})

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"generator": "tests/reference/make_sts.py", "scipy": scipy.__version__, "numpy": np.__version__,
                   "cases": cases, "real": real}, f)
        f.write("\n")
    print(f"wrote {len(cases)} stored cases and {len(real)} on real gold files to {OUT}/cases.json")


if __name__ == "__main__":
    main()
