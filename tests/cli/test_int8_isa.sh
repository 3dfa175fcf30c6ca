#!/usr/bin/env bash
# test_int8_isa.sh: the int8 GEMM on CPUs without VNNI. oneDNN's s8·s8 GEMM
# saturates int16 pair sums there (AVX2, AVX-512 before VNNI); linear.c
# splits the operand instead. ONEDNN_MAX_CPU_ISA makes oneDNN behave as on
# such a CPU, so the int8 layer and gradient tests run again under it and
# must still match the integer reference exactly.
source "$(dirname "$0")/lib.sh"
BIN=${BUILD:-build}/tests
for isa in AVX2 AVX512_CORE; do
  for t in test_layers test_bloom_grad; do
    if [ ! -x "$BIN/$t" ]; then not_ok "$t under ONEDNN_MAX_CPU_ISA=$isa" "missing $BIN/$t"; continue; fi
    run_cmd env ONEDNN_MAX_CPU_ISA=$isa ${VALGRIND:-} "$BIN/$t"
    expect "$t under ONEDNN_MAX_CPU_ISA=$isa (no VNNI): int8 results exact" 0 ""
    if [ "$t" = test_layers ]; then
      grep -qE "int8 linear vs integer reference: max abs difference [0-9.]+e-(0[6-9]|[1-9][0-9])" <<<"$OUT$ERR" \
        && ok "int8 linear equals the integer reference under $isa" \
        || not_ok "int8 linear equals the integer reference under $isa" "$(grep 'integer reference' <<<"$OUT$ERR")"
    fi
  done
done
# The memory planner counts the larger scratch of the split products there.
run_cmd env ONEDNN_MAX_CPU_ISA=AVX2 LUA_PATH="${LACOS_ROOT:-.}/tests/lua/?.lua;;" "$LACOS" run "${LACOS_ROOT:-.}/tests/lua/test_cuda_plan.lua"
expect "the CPU memory plan covers a step under ONEDNN_MAX_CPU_ISA=AVX2" 0 "ok - cpu memory plan covers one training step, checkpointing on"
grep -q "not ok - cpu" <<<"$OUT" && not_ok "no CPU plan case fails under AVX2" "$OUT" || ok "no CPU plan case fails under AVX2"
finish
