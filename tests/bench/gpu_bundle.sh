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
# the MPI backend and, unless MPI=0, Debian's Open MPI runtime (mpirun, its
# components and libraries, ~8 MB packed) for the data-parallel checks
# (gpu_dist.sh uses the machine's own mpirun first); relocated with OPAL_PREFIX
[ -f "$BUILD/liblacos_mpi.so" ] && cp "$BUILD/liblacos_mpi.so" "$stage/build/"
if [ "${MPI:-1}" != 0 ] && [ -f "$BUILD/liblacos_mpi.so" ] && [ -x /usr/bin/orterun ]; then
  m=$stage/gpu-mpi
  mkdir -p "$m/bin" "$m/lib/x86_64-linux-gnu" "$m/share" "$m/libs"
  cp /usr/bin/orterun /usr/bin/orted "$m/bin/"
  cp -a /usr/lib/x86_64-linux-gnu/openmpi "$m/lib/x86_64-linux-gnu/"
  [ -d /usr/lib/x86_64-linux-gnu/pmix2 ] && cp -a /usr/lib/x86_64-linux-gnu/pmix2 "$m/lib/x86_64-linux-gnu/"
  cp -a /usr/share/openmpi "$m/share/"
  rm -rf "$m/lib/x86_64-linux-gnu/openmpi/include"
  for f in "$m/bin/orterun" "$BUILD/liblacos_mpi.so" $(find "$m/lib" -name '*.so*' -type f); do ldd "$f" 2>/dev/null; done |
    awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libresolv)\.so' |
    while read -r lib; do cp -L "$lib" "$m/libs/"; done
fi
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
XZ_OPT=-9 tar cJf "$BUILD/lacos-gpu.tar.xz" -C "$stage" build gpu-libs $([ -d "$stage/gpu-mpi" ] && echo gpu-mpi)
ls -la "$BUILD/lacos-gpu.tar.xz"
