# A thin front for CMake: `make`, `make test`, `make run`, `make bench`.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE ?= cmake
# Extra configure options, e.g. CMAKE_ARGS=-DTG_WERROR=ON (as CI builds).
CMAKE_ARGS ?=

.PHONY: all build test test-asan test-tsan fuzz run bench bench-dist install clean deps format

all: build

$(BUILD)/Makefile:
	@command -v $(CMAKE) >/dev/null || $(MAKE) --no-print-directory deps
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: $(BUILD)/Makefile
	$(CMAKE) --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan:
	$(CMAKE) -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTG_SANITIZE=ON $(CMAKE_ARGS)
	$(CMAKE) --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# The whole suite under ThreadSanitizer (the loop pool, concurrent models, per-thread
# state); tsan_canary proves the checker is on. halt_on_error: a race fails its test.
TSAN_BUILD ?= build-tsan
test-tsan:
	$(CMAKE) -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTG_SANITIZE_THREAD=ON $(CMAKE_ARGS)
	$(CMAKE) --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer on every input format (fuzz/), FUZZ_SECONDS each, in a clang build of its own.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= safetensors idx npy csv spec model config opgraph
fuzz:
	@command -v clang >/dev/null || { echo "make fuzz needs clang and its fuzzer runtime: make deps" >&2; exit 1; }
	CC=clang $(CMAKE) -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTG_FUZZ=ON -DTG_BUILD_TESTS=OFF $(CMAKE_ARGS)
	$(CMAKE) --build $(FUZZ_BUILD) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	./fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The main job: an MLP on Fashion-MNIST, with its model, history and plot in $(BUILD)/run/.
RUN_ARGS ?= --data fashion-mnist --model mlp:500 --epochs 10 --validation-split 0.1
run: deps build
	@mkdir -p $(BUILD)/run
	cd $(BUILD)/run && ../tapegrad fit $(RUN_ARGS)

bench: build
	./tools/bench.sh $(BUILD)

# Data-parallel training's cost (bench/bench_dist.c, docs/distributed.md): the gradients'
# allreduce and a Fashion-MNIST epoch per step, under mpirun with each count of
# BENCH_DIST_RANKS (Open MPI's mpirun: make deps installs it).
# With several ranks, each TAPEGRAD_BUCKET_MB of BENCH_DIST_BUCKETS (0: the blocking
# allreduce after the backward pass; 25: DDP's default, one bucket for this MLP).
BENCH_DIST_RANKS ?= 1 2
BENCH_DIST_BUCKETS ?= 0 25 4
# Extra arguments of bench_dist, e.g. BENCH_DIST_ARGS="--part mlp --mode eager" (the fits'
# step eagerly instead of traced).
BENCH_DIST_ARGS ?=
bench-dist: build
	@command -v mpirun >/dev/null || { echo "make bench-dist needs mpirun: make deps" >&2; exit 1; }
	@for np in $(BENCH_DIST_RANKS); do \
		for mb in $$( [ $$np -gt 1 ] && echo $(BENCH_DIST_BUCKETS) || echo 25 ); do \
			echo "---- $$np ranks, TAPEGRAD_BUCKET_MB=$$mb"; \
			TAPEGRAD_BUCKET_MB=$$mb mpirun $$( [ "$$(id -u)" -eq 0 ] && echo --allow-run-as-root ) --oversubscribe \
				-x TAPEGRAD_BUCKET_MB -np $$np $(BUILD)/bench_dist $(BENCH_DIST_ARGS) || exit 1; \
		done; \
	done

install: build
	$(CMAKE) --install $(BUILD)

# Lays out every C file as .clang-format says (CI checks it with tools/format.sh --check).
format:
	./tools/format.sh

# Debian packages the build and the main job use (needs root; prints the command otherwise).
deps:
	@./tools/install-deps.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
