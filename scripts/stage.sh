#!/usr/bin/env bash
# scripts/stage.sh STAGE - run one stage of `make test` (each also works alone).
#
# Stages:
#   debug     gcc RelWithDebInfo build in build/debug + ctest
#   clang     clang Release build with -Werror in build/clang (+ ctest)
#   asan      clang ASan+UBSan build in build/asan + ctest, MAY_TEST_SCALE=0.1
#   fuzz      clang ASan+UBSan libFuzzer binaries in build/fuzz, each run for
#             FUZZ_SECONDS (default 20) on a copy of its fuzz/corpus/<target>/
#   tsan      clang TSan build in build/tsan + ctest, MAY_TEST_SCALE=0.1
#   aarch64   gcc cross build in build/aarch64 + ctest under qemu, scale 0.05
#   valgrind  the build/debug tests under valgrind, MAY_TEST_SCALE=0.02
#   install   scripts/install-test.sh (install build/debug, build a consumer)
#   win       mingw-w64 cross build in build/win + ctest under wine64 and
#             scripts/win-test.sh, MAY_TEST_SCALE=0.1 (docs/WINDOWS.md)
#
# Environment knobs: JOBS (build jobs, default nproc), CTEST_JOBS (default 2),
# CC_DEBUG/CC_CLANG/CC_ASAN/CC_FUZZ/CC_TSAN (compilers), CLANG_CTEST=0|1 (run
# ctest in the clang stage, default 1), MAY_SAN_NO_ASLR=auto|1|0 (run sanitizer
# tests with ASLR off: see sanitizer_prefix), CTEST_ARGS (extra ctest
# arguments), FUZZ_SECONDS (per fuzz target, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}
CTEST_JOBS=${CTEST_JOBS:-2}
read -r -a CTEST_EXTRA <<<"${CTEST_ARGS:-}"
ARCH=$(uname -m)

STAGE=${1:?usage: $0 debug|clang|asan|fuzz|tsan|aarch64|valgrind|install|win}

banner() {
    printf '\n%s\n### %s\n%s\n' \
        "########################################################################" \
        "$*" \
        "########################################################################"
}

configure() { # dir cmake-args...
    local dir=$1
    shift
    cmake -S "$ROOT" -B "$dir" -Wno-dev "$@"
}

build() { # dir
    cmake --build "$1" -j"$JOBS"
}

run_ctest() { # dir [prefix-command...]; env set by the caller
    local dir=$1
    shift
    "$@" ctest --test-dir "$dir" --output-on-failure -j"$CTEST_JOBS" \
        "${CTEST_EXTRA[@]}"
}

# Sanitizer runtimes of clang 14 / gcc 12 assume at most 28 bits of mmap ASLR
# entropy; newer kernels/distros often use 32 (vm.mmap_rnd_bits), and then
# TSan dies with "FATAL: ThreadSanitizer: unexpected memory mapping" and ASan
# crashes or loops in "AddressSanitizer:DEADLYSIGNAL".  Running with ASLR off
# (setarch -R, no root needed) avoids both.  This probes a trivial threaded
# program built with the same compiler and flags, and prints the command
# prefix the tests need ("" when none).  MAY_SAN_NO_ASLR=1 forces setarch -R,
# =0 forbids it.
sanitizer_prefix() { # cc sanitize-flags workdir
    local cc=$1 flags=$2 dir=$3 bits mode=${MAY_SAN_NO_ASLR:-auto}
    local probe=$dir/san-probe
    mkdir -p "$dir"
    cat >"$probe.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
static int counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *arg)
{
    pthread_mutex_lock(&lock);
    counter++;
    pthread_mutex_unlock(&lock);
    return arg;
}
int main(void)
{
    pthread_t t;
    char *p = malloc(16);
    if (pthread_create(&t, NULL, work, NULL)) return 1;
    work(NULL);
    pthread_join(t, NULL);
    p[0] = 0;
    free(p);
    return counter == 2 ? 0 : 1;
}
EOF
    # shellcheck disable=SC2086  # flags may hold several words
    if ! "$cc" -g $flags -pthread "$probe.c" -o "$probe" >"$probe.log" 2>&1; then
        cat "$probe.log" >&2
        echo "stage: cannot build a trivial $cc $flags program" >&2
        return 1
    fi
    probe_ok() { # prefix...; 10 runs, since ASLR failures are random
        local _
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            "$@" timeout 20 "$probe" >"$probe.log" 2>&1 || return 1
        done
    }
    bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
    if [[ $mode == 0 ]]; then
        echo ""
        return 0
    fi
    if [[ $mode == auto ]] && ((bits <= 28)) && probe_ok; then
        echo ""
        return 0
    fi
    if probe_ok setarch "$ARCH" -R; then
        echo "note: vm.mmap_rnd_bits=$bits; running sanitizer tests with ASLR off (setarch $ARCH -R)" >&2
        echo "setarch $ARCH -R"
        return 0
    fi
    # setarch -R refused (e.g. a seccomp filter that blocks personality()).
    if [[ -w /proc/sys/vm/mmap_rnd_bits ]] && ((bits > 28)); then
        echo "note: setarch -R unusable; lowering vm.mmap_rnd_bits $bits -> 28" >&2
        echo 28 >/proc/sys/vm/mmap_rnd_bits
        if probe_ok; then
            echo ""
            return 0
        fi
    fi
    head -5 "$probe.log" >&2
    echo "stage: the $flags runtime cannot start here (vm.mmap_rnd_bits=$bits);" \
        "try: sysctl vm.mmap_rnd_bits=28" >&2
    return 1
}

have_tests() { # dir: ctest finds at least one test
    ctest --test-dir "$1" -N 2>/dev/null | grep '^Total Tests: [1-9]' >/dev/null
}

start=$SECONDS
case "$STAGE" in
debug)
    banner "[debug] gcc RelWithDebInfo build (build/debug) + ctest"
    configure "$BUILD/debug" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER="${CC_DEBUG:-gcc}"
    build "$BUILD/debug"
    run_ctest "$BUILD/debug"
    ;;
clang)
    banner "[clang] clang Release build with -Werror (build/clang)" \
        "$([[ ${CLANG_CTEST:-1} == 1 ]] && echo "+ ctest MAY_TEST_SCALE=${CLANG_SCALE:-0.5}")"
    configure "$BUILD/clang" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_COMPILER="${CC_CLANG:-clang}" -DCMAKE_C_FLAGS="-Werror" \
        -DMAY_BUILD_BENCH=OFF -DMAY_SERVERS_SMOKE=OFF
    build "$BUILD/clang"
    if [[ ${CLANG_CTEST:-1} == 1 ]]; then
        MAY_TEST_SCALE=${CLANG_SCALE:-0.5} run_ctest "$BUILD/clang"
    fi
    ;;
asan)
    banner "[asan] ${CC_ASAN:-clang} ASan+UBSan build (build/asan) + ctest, MAY_TEST_SCALE=0.1"
    cc=${CC_ASAN:-clang}
    configure "$BUILD/asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER="$cc" -DMAY_SANITIZE=address -DMAY_BUILD_BENCH=OFF -DMAY_LOCKRANK=ON
    build "$BUILD/asan"
    pfx=$(sanitizer_prefix "$cc" -fsanitize=address,undefined "$BUILD/asan")
    read -r -a prefix <<<"$pfx"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    MAY_TEST_SCALE=0.1 run_ctest "$BUILD/asan" "${prefix[@]}"
    ;;
fuzz)
    # Every fuzz/corpus/<target>/ has a libFuzzer binary fuzz/fuzz_<target>
    # (fuzz/README.md).  Each runs on a copy of its corpus, so CI never
    # writes into the repository; any crash, leak, timeout or invariant
    # failure fails the stage and leaves the input in build/fuzz/run/<target>/.
    secs=${FUZZ_SECONDS:-20}
    cc=${CC_FUZZ:-clang}
    banner "[fuzz] $cc ASan+UBSan libFuzzer binaries (build/fuzz), $secs s per target"
    configure "$BUILD/fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER="$cc" -DMAY_SANITIZE=address -DMAY_BUILD_FUZZERS=ON \
        -DMAY_BUILD_BENCH=OFF -DMAY_BUILD_EXAMPLES=OFF
    targets=()
    for d in "$ROOT"/fuzz/corpus/*/; do
        targets+=("$(basename "$d")")
    done
    cmake --build "$BUILD/fuzz" -j"$JOBS" --target "${targets[@]/#/fuzz_}"
    pfx=$(sanitizer_prefix "$cc" -fsanitize=address,undefined "$BUILD/fuzz")
    read -r -a prefix <<<"$pfx"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    for t in "${targets[@]}"; do
        run=$BUILD/fuzz/run/$t
        rm -rf "$run"
        mkdir -p "$run/corpus"
        cp -R "$ROOT/fuzz/corpus/$t/." "$run/corpus/"
        echo "fuzz: fuzz_$t, $secs s, on a copy of fuzz/corpus/$t ($(find "$run/corpus" -type f | wc -l) inputs)"
        if ! (cd "$run" && "${prefix[@]}" "$BUILD/fuzz/fuzz/fuzz_$t" -max_total_time="$secs" \
            -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$run/" \
            corpus >"$run/log" 2>&1); then
            tail -n 80 "$run/log"
            echo "stage: fuzz_$t failed; its input is in $run/ (crash-*, leak-*," \
                "timeout-*, oom-*); replay it with $BUILD/fuzz/fuzz/fuzz_$t FILE" >&2
            exit 1
        fi
        grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
            "$run/log" | sed 's/^/    /'
    done
    ;;
tsan)
    banner "[tsan] ${CC_TSAN:-clang} TSan build (build/tsan) + ctest, MAY_TEST_SCALE=0.1"
    cc=${CC_TSAN:-clang}
    configure "$BUILD/tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER="$cc" -DMAY_SANITIZE=thread -DMAY_BUILD_BENCH=OFF -DMAY_LOCKRANK=ON
    build "$BUILD/tsan"
    pfx=$(sanitizer_prefix "$cc" -fsanitize=thread "$BUILD/tsan")
    read -r -a prefix <<<"$pfx"
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
    MAY_TEST_SCALE=0.1 run_ctest "$BUILD/tsan" "${prefix[@]}"
    ;;
aarch64)
    banner "[aarch64] cross build (build/aarch64) + ctest under qemu-aarch64, MAY_TEST_SCALE=0.05"
    configure "$BUILD/aarch64" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-aarch64.cmake" \
        -DMAY_BUILD_BENCH=OFF
    build "$BUILD/aarch64"
    MAY_TEST_SCALE=0.05 run_ctest "$BUILD/aarch64"
    ;;
valgrind)
    banner "[valgrind] build/debug tests under valgrind, MAY_TEST_SCALE=0.02"
    if ! have_tests "$BUILD/debug"; then
        configure "$BUILD/debug" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DCMAKE_C_COMPILER="${CC_DEBUG:-gcc}"
    fi
    build "$BUILD/debug"
    MAY_TEST_SCALE=0.02 bash "$ROOT/scripts/valgrind.sh" "$BUILD/debug"
    ;;
win)
    # Windows x64 (docs/WINDOWS.md): mingw-w64 cross build, the tests that
    # apply on Windows (tests/win/tests.cmake) run by ctest through wine
    # (the toolchain file's emulator), then the platform layer's own
    # programs (scripts/win-test.sh).  Correctness only: wine's timing says
    # nothing about Windows.  Scale 0.1 as in the sanitizer stages.
    banner "[win] mingw-w64 build (build/win) + ctest under wine64, MAY_TEST_SCALE=0.1"
    bash "$ROOT/scripts/deps.sh" windows
    configure "$BUILD/win" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-mingw64.cmake" \
        -DMAY_BUILD_BENCH=OFF
    build "$BUILD/win"
    # the library with clang targeting MinGW too (a native clang user's
    # build: cmake/toolchain-mingw64-clang.cmake), compiled, not run
    configure "$BUILD/win-clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-mingw64-clang.cmake" \
        -DMAY_BUILD_TESTS=OFF -DMAY_BUILD_EXAMPLES=OFF -DMAY_BUILD_BENCH=OFF
    cmake --build "$BUILD/win-clang" -j"$JOBS" --target may_static may_shared
    # one wine for both: ctest's programs, then win-test.sh's
    MAY_TEST_SCALE=0.1 bash "$ROOT/scripts/wine-run.sh" bash -c \
        'ctest --test-dir "$1" --output-on-failure -j"$2" "${@:4}" && BUILD=$3 bash scripts/win-test.sh' \
        win-stage "$BUILD/win" "$CTEST_JOBS" "$BUILD" "${CTEST_EXTRA[@]}"
    ;;
install)
    banner "[install] install build/debug, build and run a consumer (cmake + pkg-config)"
    bash "$ROOT/scripts/install-test.sh" "$BUILD/debug"
    ;;
*)
    echo "unknown stage: $STAGE" >&2
    exit 2
    ;;
esac
echo "### [$STAGE] OK in $((SECONDS - start)) s"
