#!/usr/bin/env bash
# scripts/win-test.sh - cross-build tests/win/ for Windows x64 with mingw-w64
# and run them under wine (issue 14; docs/WINDOWS.md).
#
# Needs `bash scripts/deps.sh windows` (gcc-mingw-w64-x86-64, wine64).  The
# win stage of `make test` runs it (scripts/stage.sh win).  Builds into
# $BUILD/win-tests (default build/win-tests), then runs each test with a
# timeout (WIN_TIMEOUT, 120 s) under scripts/wine-run.sh (a private prefix,
# one wineserver, torn down on every exit path; the win stage runs this
# script inside its own), prints PASS/FAIL per test and exits non-zero if
# any failed.
#
# win_overflow must die: it passes when it exits with STATUS_STACK_OVERFLOW
# (a shell under wine sees 253, the low byte of 0xC00000FD) and its stderr
# names the coroutine.  It runs twice: on a lazily committed stack (no
# argument) and on one committed in full ("full"; reported as
# win_overflow_full).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CC=${MINGW_CC:-x86_64-w64-mingw32-gcc}
BUILD=${BUILD:-build}
OUT=$BUILD/win-tests
TIMEOUT=${WIN_TIMEOUT:-120}
for tool in "$CC" wine wineserver; do
    command -v "$tool" >/dev/null || {
        echo "win-test: $tool not found; run: bash scripts/deps.sh windows" >&2
        exit 2
    }
done

mkdir -p "$OUT"
CFLAGS=(-std=c11 -O2 -g -Wall -Wextra -Werror)
# Each test and what it links besides itself.  Every tests/win/win_*.c must
# have a line here: a new one without fails the build, not the run.
sources() {
    case "$1" in
    win_switch) echo tests/win/win_regs.S src/win/stack_win.c src/arch/x86_64/switch_win64.S ;;
    win_jump) echo -DWIN_REGS_TARGET=win_jump_switch tests/win/win_regs.S src/win/stack_win.c src/arch/x86_64/switch_win64.S ;;
    win_seh | win_chkstk | win_overflow) echo src/win/stack_win.c src/arch/x86_64/switch_win64.S ;;
    win_iocp) echo -std=gnu11 -Iinclude -Isrc -DMAY_BUILDING src/win/poll_iocp.c -lws2_32 -lmswsock -lntdll -lsynchronization ;;
    *) return 1 ;;
    esac
}
TESTS=()
for src in tests/win/win_*.c; do
    t=$(basename "$src" .c)
    if ! extra=$(sources "$t"); then
        echo "win-test: $t is not in scripts/win-test.sh's table of sources" >&2
        exit 1
    fi
    if [[ ${1:-} != --run-only ]]; then
        # shellcheck disable=SC2086 # the table's words
        "$CC" "${CFLAGS[@]}" -o "$OUT/$t.exe" "$src" $extra
    fi
    TESTS+=("$t")
done
[[ ${1:-} == --run-only ]] || echo "win-test: built ${#TESTS[@]} tests in $OUT with $("$CC" -dumpversion)"

# The wine part runs under scripts/wine-run.sh (a private prefix and one
# wineserver), unless this already runs under it (the win stage).
if [[ ${MAY_WINE_READY:-} != 1 ]]; then
    exec env BUILD="$BUILD" bash scripts/wine-run.sh bash "$0" --run-only
fi

fail=0
RUNS=()
for t in "${TESTS[@]}"; do
    RUNS+=("$t")
    [[ $t == win_overflow ]] && RUNS+=("win_overflow full")
done
for run in "${RUNS[@]}"; do
    read -r t arg <<<"$run"
    name=$t${arg:+_$arg}
    log=$OUT/$name.log
    set +e
    # shellcheck disable=SC2086 # arg: none or one word
    timeout "$TIMEOUT" wine "$OUT/$t.exe" $arg >"$log" 2>&1
    rc=$?
    set -e
    ok=0
    if [[ $t == win_overflow ]]; then
        [[ $rc == 253 ]] && grep -q 'stack overflow in coroutine "deep-recursor"' "$log" && ok=1
    else
        [[ $rc == 0 ]] && ok=1
    fi
    if ((ok)); then
        echo "PASS $name"
    else
        echo "FAIL $name (exit $rc)"
        fail=1
    fi
    sed 's/^/    /' "$log"
done
if ((fail)); then
    echo "win-test: FAILED" >&2
    exit 1
fi
echo "win-test: all ${#RUNS[@]} runs of ${#TESTS[@]} tests passed"
