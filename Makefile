# sid — build with `make`, test with `make test`, benchmark with `make bench`.
CC       ?= cc
# No -march: the binary runs on any CPU of its architecture. The CPU kernels (src/ops/cpu/) are
# compiled once per instruction set below and chosen at run time (src/ops/cpu_dispatch.c).
OPT      ?= -O3
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers -fopenmp \
            -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp -I/usr/include/cjson
LDLIBS   += -llapacke -lopenblas -lcjson -lpng -ljpeg -lz -lm -fopenmp
BUILD    ?= build

# Optional parts, probed once and reported.
NVCC     := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
MPICC    := $(shell command -v mpicc 2>/dev/null)
ifneq ($(NVCC),)
HAVE_CUDA := yes ($(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))
else
HAVE_CUDA := no
endif
HAVE_MPI := $(if $(MPICC),yes,no)

SRC_LIB  := $(wildcard src/core/*.c src/dist/dist.c src/ops/*.c src/ops/guard/*.c src/io/*.c src/models/*.c src/train/*.c src/data/*.c src/eval/*.c src/diffusion/*.c src/teacher/*.c src/pipeline/*.c src/sid/*.c)
OBJ_LIB  := $(SRC_LIB:%.c=$(BUILD)/%.o)

# The CPU kernels, once per instruction set, each op renamed sid_<op>_<isa> (src/ops/cpu/isa_names.h).
# The flags must match what src/ops/cpu_dispatch.c checks before it picks a variant.
# -fno-trapping-math lets GCC if-convert float compares (clamps, max, ReLU-like selects) so those
# loops vectorise without AVX-512 masks; no kernel relies on floating-point exceptions.
ifeq ($(firstword $(subst -, ,$(shell $(CC) -dumpmachine))),x86_64)
CPU_ISAS         := sse2 avx2 avx512
else
CPU_ISAS         := generic
endif
ISA_FLAGS_sse2    :=
ISA_FLAGS_generic :=
ISA_FLAGS_avx2    := -mavx2 -mfma -ffp-contract=fast
ISA_FLAGS_avx512  := -ffp-contract=fast -mavx2 -mfma -mavx512f -mavx512bw -mavx512cd -mavx512dq -mavx512vl -mprefer-vector-width=512
SRC_CPU  := $(wildcard src/ops/cpu/*.c)
OBJ_LIB  += $(foreach i,$(CPU_ISAS),$(SRC_CPU:src/ops/cpu/%.c=$(BUILD)/src/ops/cpu/$(i)/%.o))
define cpu_isa_rule
$(BUILD)/src/ops/cpu/$(1)/%.o: src/ops/cpu/%.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(ISA_FLAGS_$(1)) -fno-trapping-math -Wno-psabi -DSID_CPU_ISA=$(1) -include src/ops/cpu/isa_names.h -MMD -MP -c $$< -o $$@
endef
$(foreach i,$(CPU_ISAS),$(eval $(call cpu_isa_rule,$(i))))

# The CUDA backend is compiled whenever nvcc exists (it links here; it runs where a GPU is).
# SID_CUDA=0 leaves it out.
SID_CUDA ?= $(if $(NVCC),1,0)
ifeq ($(SID_CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCCFLAGS ?= -O3 -std=c++17 -gencode arch=compute_80,code=sm_80 -gencode 'arch=compute_90,code=[sm_90,compute_90]' \
             -Xcompiler -fopenmp,-Wall
CFLAGS   += -DSID_HAVE_CUDA
SRC_CU   := $(wildcard src/ops/cuda/*.cu)
OBJ_LIB  += $(SRC_CU:%.cu=$(BUILD)/%.o)
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif
# MPI (data parallelism, src/dist/) is compiled in whenever mpicc exists; SID_MPI=0 leaves it out
# (sid then runs as one process). NCCL joins it when the CUDA backend is built too.
SID_MPI  ?= $(if $(MPICC),1,0)
ifeq ($(SID_MPI),1)
CFLAGS   += -DSID_HAVE_MPI $(shell $(MPICC) --showme:compile)
LDLIBS   += $(shell $(MPICC) --showme:link)
ifeq ($(SID_CUDA),1)
CFLAGS   += -DSID_HAVE_NCCL -I$(CUDA_HOME)/include
OBJ_LIB  += $(BUILD)/src/dist/nccl.o
LDLIBS   += -lnccl
endif
endif
LIB      := $(BUILD)/libsid.a
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(filter-out tests/harness.c tests/op_check.c,$(wildcard tests/test_*.c)))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

.PHONY: sweep all test test-build check bench asan clean probe demo teacher teacher-table
.SECONDARY:
all: probe $(BUILD)/sid

probe:
	@echo "sid build: cc=$(CC) cpu-isas="$(CPU_ISAS)" openblas=yes cjson=yes libpng=yes lapacke=yes cuda=$(HAVE_CUDA) cuda-backend=$(if $(filter 1,$(SID_CUDA)),built,off) mpi=$(if $(filter 1,$(SID_MPI)),built,off)"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Isrc -MMD -MP -c $< -o $@

$(LIB): $(OBJ_LIB)
	@rm -f $@
	ar rcs $@ $^

CLI_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard src/cli/*.c))
$(BUILD)/sid: $(CLI_OBJ) $(LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/harness.o $(BUILD)/tests/op_check.o $(LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# Each test program prints its own "N passed, N failed" line; the last line sums them.
test: $(TESTS) $(BUILD)/sid
	@SID_BIN=$(BUILD)/sid bash tests/run_all.sh $(TESTS) tests/cli.sh
test-build: $(TESTS) $(BUILD)/sid

# What CI runs: the suite, then the suite again under the sanitizers. The builds use every core
# (a plain `make check` would compile serially); the tests themselves run one program at a time.
NPROC    := $(shell nproc 2>/dev/null || echo 2)
check:
	@$(MAKE) --no-print-directory -j$(NPROC) test-build
	@$(MAKE) --no-print-directory test
	@$(MAKE) --no-print-directory asan

bench: $(BENCHES)
	@. bench/isa_env.sh; for b in $(filter-out %/bench_unet %/bench_eval,$(BENCHES)); do $$b || exit 1; done
	@BUILD=$(BUILD) bash bench/unet_vs_torch.sh
	@BUILD=$(BUILD) bash bench/sid_vs_torch.sh
	@BUILD=$(BUILD) bash bench/eval_vs_torch.sh
	@BUILD=$(BUILD) bash bench/dist_scaling.sh

# AddressSanitizer + UBSan build of the whole test suite, in its own build folder; undefined behaviour
# stops the program (a report alone would not fail the suite).
ASAN_MAKE = SID_ASAN=1 $(MAKE) --no-print-directory SID_CUDA=0 SID_MPI=0 BUILD=build-asan \
            OPT="-O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
            LDLIBS="-llapacke -lopenblas -lcjson -lpng -ljpeg -lz -lm -fopenmp -fsanitize=address,undefined"
asan:
	@$(ASAN_MAKE) -j$(NPROC) test-build
	@$(ASAN_MAKE) test

# The main job: distil the shipped teacher with SiD-LSG and write out/demo/report.md.
demo:
	@./scripts/setup.sh
	@$(MAKE) --no-print-directory all
	@SID_BIN=$(BUILD)/sid bash scripts/demo.sh

# The guidance sweep (kappa 1, 1.5, 2, 3, 4.5 at the demo's settings, next to the teacher, on the panel): docs/sweep.md.
sweep: $(BUILD)/sid
	SID_BIN=$(BUILD)/sid bash scripts/sweep.sh

# The built-in teacher: `make teacher` retrains models/teacher from scratch (hours on 2 cores; the
# exact command is the one the shipped teacher was trained with), `make teacher-table` measures it.
teacher: $(BUILD)/sid
	./$(BUILD)/sid train-teacher --out models/teacher --steps 4500 --batch 64 --warmup 300 --snapshot-every 250 --keep-snapshots

teacher-table: $(BUILD)/sid
	SID_BIN=$(BUILD)/sid bash scripts/teacher_table.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(OBJ_LIB:.o=.d) $(TESTS:%=%.d) $(CLI_OBJ:.o=.d) $(BENCHES:%=%.d)

# ---------------------------------------------------------------- fuzzing (docs/hardening.md)
# fuzz/fuzz_<name>.c are libFuzzer harnesses. `make fuzz FUZZ_SECONDS=N` builds the library and
# each harness with clang (-fsanitize=fuzzer,address,undefined) in build-fuzz/ and runs each for N
# seconds on a copy of its corpus tests/data/fuzz/<name>/ (new inputs go to build-fuzz/corpus/,
# crashes to build-fuzz/crashes/), printing libFuzzer's final statistics. The same harnesses,
# built with -DSID_FUZZ_REPLAY, are linked into tests/test_fuzz_replay, which `make test` and
# `make asan` run over the committed corpora.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC     := $(wildcard fuzz/fuzz_*.c)
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_REPLAY_OBJ := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz-replay/%.o)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

$(BUILD)/fuzz-replay/%.o: fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I. -DSID_FUZZ_REPLAY -MMD -MP -c $< -o $@

$(BUILD)/tests/test_fuzz_replay: $(BUILD)/tests/test_fuzz_replay.o $(FUZZ_REPLAY_OBJ) $(BUILD)/tests/harness.o $(LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

.PHONY: fuzz fuzz-build
fuzz-build:
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang (Debian: apt-get install clang libomp-dev)"; exit 1; }
	$(MAKE) --no-print-directory SID_CUDA=0 SID_MPI=0 BUILD=build-fuzz CC=$(FUZZ_CC) \
	        OPT="-O1 -gline-tables-only -fsanitize=fuzzer-no-link $(FUZZ_SAN)" build-fuzz/libsid.a
	@for n in $(FUZZ_NAMES); do \
	    echo "$(FUZZ_CC) fuzz/fuzz_$$n.c -> build-fuzz/fuzz_$$n"; \
	    $(FUZZ_CC) -O1 -g -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -fsanitize=fuzzer $(FUZZ_SAN) \
	        -I. -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp -I/usr/include/cjson \
	        fuzz/fuzz_$$n.c build-fuzz/libsid.a -o build-fuzz/fuzz_$$n \
	        -llapacke -lopenblas -lcjson -lpng -ljpeg -lz -lm || exit 1; \
	done

fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do \
	    mkdir -p build-fuzz/corpus/$$n build-fuzz/crashes/$$n; \
	    cp tests/data/fuzz/$$n/* build-fuzz/corpus/$$n/; \
	    echo "== fuzz_$$n: $(FUZZ_SECONDS) s, corpus tests/data/fuzz/$$n"; \
	    OMP_NUM_THREADS=1 ./build-fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -max_len=65536 -rss_limit_mb=2048 -timeout=10 -artifact_prefix=build-fuzz/crashes/$$n/ \
	        build-fuzz/corpus/$$n 2>&1 | grep -E '^(#[0-9]+[[:space:]]+DONE|stat::|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' \
	        || true; \
	    ls build-fuzz/crashes/$$n | grep -q . && { echo "fuzz_$$n: crashes in build-fuzz/crashes/$$n"; exit 1; }; \
	done; echo "fuzz: no crashes"

-include $(FUZZ_REPLAY_OBJ:.o=.d)
