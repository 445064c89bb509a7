# Developer entry points for libmay (GNU make).  The build itself is CMake;
# the per-stage logic lives in scripts/stage.sh.
#
#   make run     Release build in build/release, run the demo
#   make test    every test stage below, in order, stopping at the first failure
#   make bench   benchmarks (bench/run.sh $(BENCH_ARGS), e.g. BENCH_ARGS=switch)
#   make clean   remove build/
#
# Single stages: make test-debug test-clang test-asan test-fuzz test-tsan
#                test-aarch64 test-valgrind test-install test-win
# Knobs (environment or make VAR=...): JOBS, CTEST_JOBS, CTEST_ARGS,
# CLANG_CTEST=0, MAY_SAN_NO_ASLR=1, FUZZ_SECONDS=20 (see scripts/stage.sh).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := test

BUILD ?= build
export BUILD := $(abspath $(BUILD))
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
export JOBS

STAGES := debug clang asan fuzz tsan aarch64 valgrind install win

.PHONY: all run test deps deps-bench bench clean $(addprefix test-,$(STAGES))

all: test

deps:
	@bash scripts/deps.sh

deps-bench:
	@bash scripts/deps.sh bench

run: deps
	cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD)/release -j$(JOBS)
	$(BUILD)/release/examples/demo

# Stages run in this order; make stops at the first failing one.
test: deps $(addprefix test-,$(STAGES))
	@echo
	@echo "### make test: all stages passed ($(STAGES))"

$(addprefix test-,$(STAGES)): test-%: deps
	@bash scripts/stage.sh $*

bench: deps-bench
	bash bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)
