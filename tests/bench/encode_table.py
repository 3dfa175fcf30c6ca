"""The rows of results/bench/encode.md from one run of encode_compare.py:
one row per engine that was measured, the strongest peer (the fastest engine
that is not lacos) first, then lacos int8, then the rest in the order they
ran; each engine that could not be measured is named on stderr with the
reason ("not measured: ENGINE: why"). The header above the table (how the
benchmark is run) is rewritten with the current text each time; the rows
already in the file and the notes below the marker are kept.

With PEAK_GOPS (one core's int8 multiply-accumulate peak, tests/bench/int8_peak.c)
and OPS (int8 operations per token of the model's linears), a last row gives the
ceiling: the tokens/s of an engine whose int8 products ran at that peak on every
thread and did nothing else (no attention, GELU, LayerNorm, quantisation).

usage: encode_table.py OUT.md DATE CPU THREADS SHAPE BxT LOAD RESULTS.jsonl [PEAK_GOPS OPS]"""
import json
import os
import sys

HEADER = """# Encode throughput: lacos vs the strongest peers

`make bench` (tests/bench/bench_encode.sh, tests/bench/encode_compare.py): random-weight checkpoints with the
exact shapes of the released models, one batch of token ids (B sequences x T tokens, no padding), mean pooling,
the same thread count for every engine. Each engine loads once, encodes once to warm up (those embeddings are
compared with PyTorch f32's: cosine per sentence, min / mean), then is timed over REPS encodes (the f32 engines
over F32_REPS, default REPS); tokens/s from the
median. The int8 engines are loaded side by side and timed in turns (one encode each per round, the first of a
round rotating), so the machine's other load falls on all of them alike; the f32 engines run one after the
other. ONNX Runtime runs BloomModel exported with torch.onnx and quantised with
onnxruntime.quantization.quantize_dynamic (s8 weights per output channel, u8 activations per tensor);
PyTorch quantize_dynamic quantises every nn.Linear (qint8, its oneDNN engine). llama.cpp (absent from
the earlier rows) is ggml-org/llama.cpp@0c1e57098 as vendored in the llama-cpp-python 0.3.36 sdist, built
from it for this CPU (GGML_NATIVE, CPU backend only; tests/bench/build_llamacpp.sh) and called through its C
API (tests/bench/encode_llamacpp.py): the GGUF comes from llama.cpp's own converter with `--outtype q8_0`
(Q8_0: int8 weights in blocks of 32 along the input dimension, an f16 scale per block; every weight matrix is
Q8_0, the token embedding too, norms and biases stay f32), and each product with those weights quantises its
activations to the same Q8 blocks of 32. One llama_decode encodes the batch, each sentence its own sequence id. llama.cpp's BLOOM
graph would multiply every token's hidden state by the 250880-row token embedding as well (the lm_head: 257M
multiply-adds a token against the 24 blocks' 302M in bloom-560m), which an encoder never uses: the engine
stops the graph after the final LayerNorm through llama.cpp's eval callback and mean-pools the token
embeddings itself (the same embeddings as llama.cpp's mean pooling to 6e-7).
"lacos int8 is" = lacos int8's tokens/s over the row's. The CPU column names oneDNN's instruction set for
lacos' int8 products. The "int8 ceiling" row (from 2026-12-06, night) is no engine: the tokens/s of one whose
int8 products (2 operations per weight of the blocks' linears per token) ran at one core's multiply-accumulate
peak on every thread (tests/bench/int8_peak.c: independent chains of AVX-512 VNNI's vpdpbusd, or AVX2's
multiply-adds, by the thread's CPU clock) and which did nothing else; its CPU s is those products' time at
that peak. No engine can pass it: its ratio to the strongest peer bounds what any int8 engine can gain here.
"CPU s" is the median process CPU time of one encode (with one thread, the work an engine does whatever else
runs; with more it also counts threads waiting for each other). The load column is the 1-minute load average
before the run: the machine is shared, and timings taken under load are noisier (the turns keep the comparison
fair, not the absolute numbers).

"""
COLUMNS = """| date | CPU | threads | model | B x T | engine | tok/s | lacos int8 is | cosine to f32 (min / mean) | CPU s | peak RSS | load |
|---|---|---|---|---|---|---|---|---|---|---|---|
"""
MARKER = "<!-- rows above -->"
TITLE = "# Encode throughput: lacos vs the strongest peers"


def row_lines(date, cpu, threads, shape, bt, load, rows, peak_gops=None, ops=None):
    ok = [r for r in rows if "tokens_per_s" in r]
    lacos = next((r for r in ok if r["engine"] == "lacos int8"), None)
    if lacos is None:
        raise ValueError("lacos int8 was not measured: no row has a ratio to it")
    peers = sorted((r for r in ok if not r["engine"].startswith("lacos")), key=lambda r: -r["tokens_per_s"])
    order = peers[:1] + [lacos] + [r for r in ok if r is not lacos and r not in peers[:1]]
    lines = []
    for r in order:
        if r["engine"] == "pytorch f32":
            cos = "reference"
        elif "cos_min" in r:
            cos = "%.5f / %.6f" % (r["cos_min"], r["cos_mean"])
        else:
            cos = "-"
        cs = "%.2f" % r["cpu_seconds"] if r.get("cpu_seconds") is not None else "-"
        lines.append("| %s | %s | %s | %s | %s | %s | %.0f | %.2fx | %s | %s | %.2f GiB | %s |" % (
            date, cpu, threads, shape, bt, r["engine"], r["tokens_per_s"], lacos["tokens_per_s"] / r["tokens_per_s"],
            cos, cs, r["peak_rss_bytes"] / 2**30, load))
    if peak_gops:
        tokens = 1
        for d in bt.split("x"):
            tokens *= int(d)
        tps = int(threads) * peak_gops * 1e9 / ops
        lines.append("| %s | %s | %s | %s | %s | int8 ceiling (%.0f GOP/s a core, products only) | %.0f | %.2fx | - | %.2f | - | %s |" % (
            date, cpu, threads, shape, bt, peak_gops, tps, lacos["tokens_per_s"] / tps, ops * tokens / (peak_gops * 1e9),
            load))
    return lines


def with_rows(text, lines):
    """The file's text with the current header and the new rows above the marker."""
    if MARKER not in text:
        text = HEADER + COLUMNS + MARKER + "\n\n" + text.replace(
            "# Encode throughput: lacos vs PyTorch", "## Earlier layout: lacos vs PyTorch f32 only", 1)
    elif text.startswith(TITLE) and COLUMNS in text:
        text = HEADER + COLUMNS + text[text.index(COLUMNS) + len(COLUMNS):]
    return text.replace(MARKER, "\n".join(lines) + "\n" + MARKER, 1)


def main():
    if len(sys.argv) not in (9, 11):
        sys.exit(__doc__)
    out, date, cpu, threads, shape, bt, load, results = sys.argv[1:9]
    try:
        peak_gops, ops = (float(sys.argv[9]), float(sys.argv[10])) if len(sys.argv) == 11 else (None, None)
        if peak_gops is not None and not (peak_gops > 0 and ops > 0):
            raise ValueError("must be positive")
    except ValueError as e:
        sys.exit(f"encode_table.py: PEAK_GOPS {sys.argv[9]!r} and OPS {sys.argv[10]!r}: {e}")
    rows = []
    with open(results) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    sys.exit(f"encode_table.py: {results}:{n}: not a JSON line ({e})")
    for r in rows:
        if "error" in r:
            print("not measured: %s: %s" % (r["engine"], r["error"]), file=sys.stderr)
    try:
        lines = row_lines(date, cpu, threads, shape, bt, load, rows, peak_gops, ops)
    except ValueError as e:
        sys.exit(f"encode_table.py: {results}: {e}")
    text = open(out).read() if os.path.exists(out) else ""
    with open(out + ".tmp", "w") as f:
        f.write(with_rows(text, lines))
    os.replace(out + ".tmp", out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
