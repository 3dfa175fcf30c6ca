# int8_sensitivity.py: which linears of all-MiniLM-L6-v2 cost the int8
# cosine, in a torch emulation of lacos' int8 linears (weights and
# activations quantised per row, symmetric absmax to 127; with a threshold,
# LLM.int8's outlier columns kept in f32). Measured on the 12 sentences of
# tests/fixtures/minilm and the first 300 STSb test sentences: the lowest
# cosine to f32 with every linear quantised, with weights only, with one
# linear alone, one kind alone, all but one kind, all but one layer, and the
# linears kept in f32 (worst first) until the lowest cosine reaches 0.999.
# Results and reading: results/minilm.md.
#   .venv-ref/bin/python -u tests/reference/int8_sensitivity.py . ../shared/datasets
import json, sys, torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads(1)
root, data = sys.argv[1], sys.argv[2]
fix = json.load(open(root + "/tests/fixtures/minilm/sentences.json"))
sents = list(fix["sentences"])
# plus STSb test sentences (raw)
lines = open(data + "/sts/stsb/sts-test.csv", encoding="utf-8").read().split("\n")
extra = []
for l in lines:
    f = l.split("\t")
    if len(f) >= 7: extra += [f[5].strip(), f[6].strip()]
sents += extra[:300]
m = SentenceTransformer(root + "/models/all-MiniLM-L6-v2", device="cpu")
bert = m[0].auto_model
ref = m.encode(sents, batch_size=64, convert_to_tensor=True)

def q_rows(x):  # symmetric absmax per row, int8 codes, dequantised
    s = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / 127
    return torch.round(x / s).clamp(-127, 127) * s

class Q(torch.nn.Module):
    def __init__(self, lin, mode, thr):
        super().__init__(); self.lin = lin; self.mode = mode; self.thr = thr
        self.wq = q_rows(lin.weight.data)
    def forward(self, x):
        W = self.wq
        if self.mode == "w":
            return torch.nn.functional.linear(x, W, self.lin.bias)
        if self.thr > 0:
            flat = x.reshape(-1, x.shape[-1])
            cols = (flat.abs() > self.thr).any(dim=0)
            xo = x.clone(); xo[..., ~cols] = 0
            xi = x.clone(); xi[..., cols] = 0
            return torch.nn.functional.linear(q_rows(xi), W * (~cols).float(), None) + \
                   torch.nn.functional.linear(xo, self.lin.weight.data * cols.float(), None) + self.lin.bias
        return torch.nn.functional.linear(q_rows(x), W, self.lin.bias)

names = []
for i, layer in enumerate(bert.encoder.layer):
    for kind, path in [("query", "attention.self.query"), ("key", "attention.self.key"), ("value", "attention.self.value"),
                       ("attention.output.dense", "attention.output.dense"), ("intermediate.dense", "intermediate.dense"),
                       ("output.dense", "output.dense")]:
        names.append((i, kind, path))

def get(layer, path):
    o = layer
    for p in path.split("."): o = getattr(o, p)
    return o
def setm(layer, path, v):
    parts = path.split("."); o = layer
    for p in parts[:-1]: o = getattr(o, p)
    setattr(o, parts[-1], v)

def run(quantised, mode="wa", thr=0.0):
    saved = []
    for (i, kind, path) in quantised:
        L = bert.encoder.layer[i]; lin = get(L, path); saved.append((L, path, lin)); setm(L, path, Q(lin, mode, thr))
    e = m.encode(sents, batch_size=64, convert_to_tensor=True)
    for (L, path, lin) in saved: setm(L, path, lin)
    cos = torch.nn.functional.cosine_similarity(e, ref)
    return cos.min().item(), cos[:12].min().item(), cos.mean().item()

for thr in [0.0, 6.0]:
    print(f"== all linears, threshold {thr}: min {run(names, thr=thr)}")
print("== weights only:", run(names, mode="w"))
print("== one linear at a time (quantised alone): min cosine over all, over the 12 fixture sentences")
res = []
for n in names:
    r = run([n]); res.append((r[0], n)); print(n[0], n[1], "%.6f %.6f" % (r[0], r[1]))
print("== one kind (all 6 layers) alone")
kinds = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
for k in kinds:
    print(k, "%.6f %.6f" % run([n for n in names if n[1] == k])[:2])
print("== everything but one kind")
for k in kinds:
    print("all but", k, "%.6f %.6f" % run([n for n in names if n[1] != k])[:2])
print("== everything but one layer")
for i in range(6):
    print("all but layer", i, "%.6f %.6f" % run([n for n in names if n[0] != i])[:2])
res.sort()
print("== greedy: keep the worst single linears in f32 until >= 0.999")
keep = []
for r, n in res:
    keep.append(n)
    rest = [x for x in names if x not in keep]
    a = run(rest)
    print("keep", [(k[0], k[1]) for k in keep], "%.6f %.6f" % a[:2])
    if a[0] >= 0.999: break
