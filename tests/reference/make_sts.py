"""make_sts.py: scipy parity fixtures for lacos.sts (engine/sts.c).

Writes tests/fixtures/sts/cases.json: vectors x, y with scipy.stats.spearmanr,
scipy.stats.pearsonr and scipy.stats.rankdata(method="average") results.
Cases: random data with many ties, the gold scores of real STS files against
seeded random predictions (read from the shared datasets folder, plain
TAB/line parsing as PITFALLS.md describes), degenerate inputs (constant
vectors -> NaN, stored as null), n = 2, and badly scaled values.

    .venv-ref/bin/python tests/reference/make_sts.py
"""
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


def stsb_gold(split):
    return [float(l.split("\t")[4]) for l in lines(os.path.join(DATA, "sts", "stsb", f"sts-{split}.csv"))]


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
        for split in ("test", "dev"):
            g = stsb_gold(split)
            real.append(case(f"STSb {split} gold vs random", rng.normal(size=len(g)), g, {"dataset": "stsb", "split": split}))
        g = []
        for name in ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"):
            g += gold_file(f"sts/sts16/test/STS2016.gs.{name}.txt")
        real.append(case("STS16 gold (integers, many ties) vs random", rng.uniform(-1, 1, size=len(g)), g,
                         {"dataset": "sts16", "split": "test"}))
        g = gold_file("sts/sts17/STS2017.gs/STS.gs.track4b.es-en.txt")
        real.append(case("STS17 track4b gold (integers 2-5) vs random", rng.normal(size=len(g)), g,
                         {"dataset": "sts17", "subset": "en-es-wmt"}))
        sick = [float(l.split("\t")[3]) for l in lines(os.path.join(DATA, "sts", "sick", "SICK_test_annotated.txt"))[1:]]
        real.append(case("SICK test relatedness (1-5) vs gold + noise", np.array(sick) + rng.normal(scale=0.8, size=len(sick)),
                         sick, {"dataset": "sick", "split": "test"}))
    cases += real

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"generator": "tests/reference/make_sts.py", "scipy": scipy.__version__, "numpy": np.__version__,
                   "cases": cases}, f)
        f.write("\n")
    print(f"wrote {len(cases)} cases ({len(real)} from real gold files) to {OUT}/cases.json")


if __name__ == "__main__":
    main()
