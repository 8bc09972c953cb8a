# Thin front end to CMake. `make` builds, `make test` builds and runs every
# test (optimized build, then an ASan+UBSan build), `make run` runs the main
# job. Set WERROR=1 to turn warnings into errors (CI does).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
WERROR     ?= 0
CMAKE_FLAGS = -DORION_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF)

.PHONY: all build test test-fast test-asan test-fuzz asan run bench clean fuzz fuzz-smoke

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORION_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# Every test: the optimized build, a short fuzzing run, then the sanitizer build.
test: test-fast test-fuzz test-asan

# A short fuzzing run of every parser (longer runs: make fuzz-smoke FUZZ_SECONDS=600)
test-fuzz:
	$(MAKE) fuzz-smoke FUZZ_SECONDS=15

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS)

# The main job: the shared embedding service on the default model (the
# Universal Sentence Encoder lite, converted from its npm package), two
# client processes using it, then text generation with the real stories260K
# model from ../shared (scripts/run-main.sh says what each step shows).
SHARED ?= ../shared
run: build
	sh scripts/run-main.sh $(BUILD) $(SHARED)

bench: build
	./$(BUILD)/orion bench kernels --threads $(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# ---- fuzzing (clang's libFuzzer) ----------------------------------------------
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 20
FUZZERS       = gguf safetensors json sentencepiece request wordpiece tfjs image

fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORION_FUZZ=ON -DBUILD_TESTING=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Runs each fuzzer for FUZZ_SECONDS over its seed corpus (a copy, so the
# checked-in seeds stay small). Any crash fails the target; crash inputs are
# left in $(FUZZ_BUILD)/crashes for replay.
fuzz-smoke: fuzz
	sh scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZERS)
