#!/usr/bin/env bash
# For a session with a lent GPU machine, which has CUDA and PyTorch but not
# lacos' Debian libraries and no package registry: packs this machine's
# CUDA build (build/: lacos, liblacos.so, the C test programs) and every
# shared library they load that is not part of glibc into
# build/lacos-gpu.tar.xz (about 25 MB), which a device run takes along with
# carry: ["build/lacos-gpu.tar.xz"]. There, in the repository root:
#   tar xJf build/lacos-gpu.tar.xz && export LD_LIBRARY_PATH=$PWD/gpu-libs
#   BUILD=build T=cuda bash tests/run.sh          # the op harness and parity tests on the GPU
#   BUILD=build BENCH=gpu VENV_PY=python3 bash tests/bench/run.sh   # the training benchmark
# (bitsandbytes is not in the device image: carry its wheel as the device
# README explains, or the PyTorch column says it is missing.)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
[ -x "$BUILD/lacos" ] && [ -x "$BUILD/tests/test_cuda_ops" ] && [ -x "$BUILD/tests/bench_cuda_ops" ] ||
  { echo "gpu_bundle: build first: make && make $BUILD/tests/test_cuda_ops $BUILD/tests/bench_cuda_ops"; exit 1; }
"$BUILD/lacos" -e 'assert(require("lacos").cuda.compiled(), "this build has no CUDA kernels (nvcc missing or NO_CUDA set)")'
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/build/tests" "$stage/gpu-libs"
cp "$BUILD/lacos" "$BUILD/liblacos.so" "$stage/build/"
# the test programs, not the compiler's dependency files (.d) beside them
# (those named by TESTS, a shell pattern: the CUDA ones by default, so the
# bundle and the working tree stay under the device's 64 MiB)
tests=$(find "$BUILD/tests" -maxdepth 1 \( -name "${TESTS:-test_cuda_*}" -o -name 'bench_*' \) -type f -executable)
cp $tests "$stage/build/tests/"
# every library outside glibc's own set, resolved on this machine
for f in "$BUILD/lacos" "$BUILD/liblacos.so" $tests; do ldd "$f"; done |
  awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libresolv|liblacos)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/gpu-libs/"; done
# and the Lua C modules lacos requires (lua-cjson), which no ldd shows
mkdir -p "$stage/gpu-libs/lua"
cp -L "$(dpkg -L lua-cjson | grep -m1 '/5\.1/cjson\.so$')" "$stage/gpu-libs/lua/"
XZ_OPT=-9 tar cJf "$BUILD/lacos-gpu.tar.xz" -C "$stage" build gpu-libs
ls -la "$BUILD/lacos-gpu.tar.xz"
