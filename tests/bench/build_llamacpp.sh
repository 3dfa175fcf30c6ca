#!/usr/bin/env bash
# Builds llama.cpp for make bench from the llama-cpp-python sdist pinned (with
# its sha256) in tests/bench/requirements-llamacpp.txt: downloads the sdist
# into DIR, unpacks it (DIR/src is its vendor/llama.cpp, whose converter
# tests/bench/convert_gguf.py runs), and pip-installs that same file into the
# virtualenv, compiled for this CPU (GGML_NATIVE), CPU backend only (no CUDA,
# no curl, no multimodal library), unless that version is installed already
# (the benchmark records llama.cpp's own list of the CPU features it was built
# with). The build log is DIR/build.log.
#
# usage: build_llamacpp.sh VENV_PY REQUIREMENTS DIR
set -euo pipefail
py=$1 req=$2 dir=$3
version=$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' "$req")
[ -n "$version" ] || { echo "lacos: llama.cpp: $req pins no llama-cpp-python==VERSION" >&2; exit 1; }
mkdir -p "$dir"
log="$dir/build.log"
: > "$log"
"$py" -m pip download -q --no-deps --no-binary llama-cpp-python -r "$req" -d "$dir/sdist" >> "$log" 2>&1 \
  || { echo "lacos: llama.cpp: could not download the sdist pinned in $req (see $log)" >&2; exit 1; }
sdist="$dir/sdist/llama_cpp_python-$version.tar.gz"
rm -rf "$dir/unpacked"; mkdir -p "$dir/unpacked"
tar xzf "$sdist" -C "$dir/unpacked"
ln -sfn "unpacked/llama_cpp_python-$version/vendor/llama.cpp" "$dir/src"
[ -f "$dir/src/convert_hf_to_gguf.py" ] || { echo "lacos: llama.cpp: $sdist has no vendor/llama.cpp/convert_hf_to_gguf.py" >&2; exit 1; }
if "$py" -c "import sys, llama_cpp; sys.exit(llama_cpp.__version__ != sys.argv[1])" "$version" 2>/dev/null; then
  echo "lacos: llama-cpp-python $version is installed already" >&2
  exit 0
fi
echo "lacos: building llama.cpp from $sdist (several minutes; log: $log)" >&2
CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
  "$py" -m pip install -v --no-cache-dir "$sdist" >> "$log" 2>&1 \
  || { echo "lacos: llama.cpp: the build failed (see $log)" >&2; exit 1; }
"$py" -c "import llama_cpp" >> "$log" 2>&1 \
  || { echo "lacos: llama.cpp: built but llama_cpp does not import (see $log)" >&2; exit 1; }
