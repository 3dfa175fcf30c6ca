#!/usr/bin/env bash
# tests/bench/encode_table.py, the writer of results/bench/encode.md's rows:
# an engine that could not be measured (llama.cpp not built, say) is named on
# stderr with its reason and leaves no row, the others still get theirs;
# rows go above the marker, earlier rows and notes stay; a run without lacos
# int8 (every ratio is to it) writes nothing and says why. Needs only python3.
source "$(dirname "$0")/lib.sh"
PY=$(command -v python3 || true)
if [ -z "$PY" ]; then skip "encode_table.py" "no python3"; finish; fi
W=$TMP/bench_table; mkdir -p "$W"
table() { run_cmd "$PY" tests/bench/encode_table.py "$W/encode.md" 2026-12-06 "TestCPU" 2 bloom-560m 16x64 0.50 "$1"; }
GiB=1073741824
cat > "$W/run1.jsonl" <<J
{"engine": "pytorch f32", "tokens_per_s": 200.0, "cpu_seconds": 9.0, "peak_rss_bytes": $((4 * GiB))}
{"engine": "lacos int8", "tokens_per_s": 1000.0, "cpu_seconds": 2.0, "peak_rss_bytes": $((GiB / 2)), "cos_min": 0.99997, "cos_mean": 0.999973}
{"engine": "onnxruntime int8", "tokens_per_s": 800.0, "cpu_seconds": 2.5, "peak_rss_bytes": $GiB, "cos_min": 0.99996, "cos_mean": 0.999967}
{"engine": "pytorch dynamic int8", "tokens_per_s": 900.0, "cpu_seconds": null, "peak_rss_bytes": $((5 * GiB)), "cos_min": 0.99984, "cos_mean": 0.999858}
{"engine": "llama.cpp q8_0", "error": "llama-cpp-python is not installed (No module named 'llama_cpp'); make bench builds it"}
J
table "$W/run1.jsonl"
expect "a failed engine is named with its reason" 0 "not measured: llama.cpp q8_0: llama-cpp-python is not installed"
t=$(cat "$W/encode.md" 2>/dev/null)
rows=$(grep -c '^| 2026-12-06 | TestCPU' <<<"$t")
if [ "$rows" = 4 ] && ! grep -q 'llama.cpp q8_0 |' <<<"$t"; then ok "one row per measured engine, none for the failed one"
else not_ok "one row per measured engine, none for the failed one" "$rows rows" "$t"; fi
# strongest peer (pytorch dynamic int8, the fastest non-lacos) first, then lacos, then the rest as they ran
order=$(grep '^| 2026-12-06 | TestCPU' <<<"$t" | cut -d'|' -f7 | tr -d ' ' | paste -sd,)
if [ "$order" = "pytorchdynamicint8,lacosint8,pytorchf32,onnxruntimeint8" ]; then ok "the strongest peer's row first, lacos int8 second"
else not_ok "the strongest peer's row first, lacos int8 second" "order: $order"; fi
line=$(grep '| onnxruntime int8 |' <<<"$t")
if grep -qF '| 800 | 1.25x | 0.99996 / 0.999967 | 2.50 | 1.00 GiB | 0.50 |' <<<"$line"; then ok "a row's ratio, cosine, CPU s, RSS and load"
else not_ok "a row's ratio, cosine, CPU s, RSS and load" "$line"; fi
if grep -qF '| pytorch dynamic int8 | 900 | 1.11x | 0.99984 / 0.999858 | - |' <<<"$t"; then ok "no CPU time: a dash"
else not_ok "no CPU time: a dash" "$t"; fi
if grep -q '^# Encode throughput: lacos vs the strongest peers' <<<"$t" && grep -q 'llama.cpp' <<<"$(sed -n '1,/^| date/p' <<<"$t")"; then
  ok "a new file gets the header, which says what llama.cpp runs"
else not_ok "a new file gets the header, which says what llama.cpp runs" "$(head -5 <<<"$t")"; fi

# a second run: its rows after the first run's, above the marker; the notes below stay
printf '\nnotes that must stay\n' >> "$W/encode.md"
sed -i 's/^`make bench`.*/an outdated header line/' "$W/encode.md"
sed 's/"tokens_per_s": 800.0/"tokens_per_s": 1250.0/' "$W/run1.jsonl" | grep -v llama.cpp > "$W/run2.jsonl"
table "$W/run2.jsonl"
expect "a second run" 0 ""
t=$(cat "$W/encode.md")
rows=$(grep -n '^| 2026-12-06 | TestCPU' <<<"$t" | cut -d: -f1 | paste -sd' ')
marker=$(grep -n '<!-- rows above -->' <<<"$t" | cut -d: -f1)
first_new=$(grep -n '| onnxruntime int8 | 1250 |' <<<"$t" | cut -d: -f1)
if [ "$(wc -w <<<"$rows")" = 8 ] && [ "${first_new:-0}" -gt "$(cut -d' ' -f4 <<<"$rows")" ] && [ "$marker" -gt "${first_new:-999999}" ] \
   && grep -q '^notes that must stay$' <<<"$t"; then ok "new rows after the earlier ones, above the marker; notes kept"
else not_ok "new rows after the earlier ones, above the marker; notes kept" "rows at $rows, new at $first_new, marker $marker" "$t"; fi
if ! grep -q 'an outdated header line' <<<"$t" && [ "$(grep -c '^| date |' <<<"$t")" = 1 ]; then ok "the header is rewritten with the current text, once"
else not_ok "the header is rewritten with the current text, once" "$(head -8 <<<"$t")"; fi

# without lacos int8 there is no ratio: nothing written, a reason
cp "$W/encode.md" "$W/before.md"
grep -v '"lacos int8"' "$W/run1.jsonl" > "$W/run3.jsonl"
table "$W/run3.jsonl"
expect "no lacos int8 row: a clear error" 1 "run3.jsonl: lacos int8 was not measured"
if cmp -s "$W/encode.md" "$W/before.md"; then ok "no lacos int8 row: the file is untouched"
else not_ok "no lacos int8 row: the file is untouched"; fi
# the ceiling row: 2 threads x 450 GOP/s over 6.04e8 operations a token (bloom-560m's linears)
run_cmd "$PY" tests/bench/encode_table.py "$W/ceiling.md" 2026-12-06 "TestCPU" 2 bloom-560m 16x64 0.50 "$W/run1.jsonl" \
  450 604372992
expect "with a peak: a ceiling row" 0 "int8 ceiling"
line=$(grep '| int8 ceiling' "$W/ceiling.md")
# 2·450e9/604372992 = 1489 tok/s; lacos 1000/1489 = 0.67x; 16·64 tokens at 450e9 op/s: 1.38 s
if grep -qF '| int8 ceiling (450 GOP/s a core, products only) | 1489 | 0.67x | - | 1.38 | - | 0.50 |' <<<"$line" \
   && [ "$(grep -n '| int8 ceiling' "$W/ceiling.md" | cut -d: -f1)" -gt "$(grep -n '| pytorch dynamic int8' "$W/ceiling.md" | cut -d: -f1)" ]; then
  ok "the ceiling row: products alone at the peak on every thread, last"
else not_ok "the ceiling row: products alone at the peak on every thread, last" "$line"; fi
run_cmd "$PY" tests/bench/encode_table.py "$W/ceiling.md" 2026-12-06 "TestCPU" 2 bloom-560m 16x64 0.50 "$W/run1.jsonl" 0 604372992
expect "a zero peak: refused" 1 "must be positive"
echo '{"engine": "lacos int8", "tokens_' > "$W/run4.jsonl"
table "$W/run4.jsonl"
expect "a broken results line: file and line named" 1 "run4.jsonl:1: not a JSON line"
finish
