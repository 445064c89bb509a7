#!/usr/bin/env bash
# scripts/valgrind.sh [BUILD_DIR] - run the ctest test executables of a build
# (default build/debug) under valgrind memcheck, VALGRIND_JOBS (default 2) at
# a time.  A test fails on any memcheck error, a definite leak, a non-zero
# exit or a timeout (VALGRIND_TIMEOUT seconds, default 300).
#
# VALGRIND_TESTS / VALGRIND_EXCLUDE: ctest -R / -E regexes selecting tests
# (VALGRIND_EXCLUDE defaults to ^example_|^test_fault$|^real_|^servers_: test_fault forks a
# child per fault-injection point, each of which would run under valgrind
# too; the asan stage checks its children for leaks instead).
# VALGRIND_ARGS: extra valgrind arguments.  scripts/valgrind.supp is used as
# a suppression file when it exists.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(cd "${1:-$ROOT/build/debug}" && pwd)
JOBS=${VALGRIND_JOBS:-2}
TIMEOUT=${VALGRIND_TIMEOUT:-300}
export MAY_TEST_SCALE=${MAY_TEST_SCALE:-0.02}

VG=(valgrind -q --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite --show-leak-kinds=definite
    --fair-sched=yes --num-callers=30)
[[ -f $ROOT/scripts/valgrind.supp ]] && VG+=(--suppressions="$ROOT/scripts/valgrind.supp")
read -r -a extra <<<"${VALGRIND_ARGS:-}"
VG+=("${extra[@]}")

sel=()
[[ -n ${VALGRIND_TESTS:-} ]] && sel+=(-R "$VALGRIND_TESTS")
# The example_* tests run programs with arguments (test name != program
# name), and so do the real_* proofs (tests/real/: under the server
# wrapper); the other stages cover them.  The servers_* smoke tests
# (tests/servers/) are shell scripts.
sel+=(-E "${VALGRIND_EXCLUDE:-^example_|^test_fault\$|^real_|^servers_}")
# "  Test  #3: test_chan" -> test_chan (test name == executable name).
mapfile -t names < <(ctest --test-dir "$DIR" -N "${sel[@]}" |
    sed -n 's/^ *Test *#[0-9]*: *//p')
if ((${#names[@]} == 0)); then
    echo "valgrind: no tests found in $DIR" >&2
    exit 1
fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

run_one() { # name
    local name=$1 exe t0=$SECONDS rc=0
    exe=$(find "$DIR" -type f -perm -u+x -name "$name" -print -quit)
    if [[ -z $exe ]]; then
        echo "no executable for $name" >"$logdir/$name.log"
        return 1
    fi
    (cd "$(dirname "$exe")" && timeout -k 10 "$TIMEOUT" "${VG[@]}" "$exe") \
        >"$logdir/$name.log" 2>&1 || rc=$?
    echo "$((SECONDS - t0))" >"$logdir/$name.time"
    return "$rc"
}

failed=()
report() { # name rc
    local name=$1 rc=$2 t
    t=$(cat "$logdir/$name.time" 2>/dev/null || echo "?")
    if ((rc == 0)); then
        printf '    valgrind %-32s Passed  %4s s\n' "$name" "$t"
    else
        case $rc in
        99) why="memcheck errors" ;;
        124 | 137) why="timeout" ;;
        *) why="exit $rc" ;;
        esac
        printf '    valgrind %-32s ***Failed (%s) %4s s\n' "$name" "$why" "$t"
        sed 's/^/        /' "$logdir/$name.log"
        failed+=("$name")
    fi
}

# A small job pool: at most $JOBS tests at a time, reported as they end.
declare -A pid_of=()
for name in "${names[@]}"; do
    while ((${#pid_of[@]} >= JOBS)); do
        wait -n -p done_pid "${!pid_of[@]}" && rc=0 || rc=$?
        report "${pid_of[$done_pid]}" "$rc"
        unset "pid_of[$done_pid]"
    done
    run_one "$name" &
    pid_of[$!]=$name
done
while ((${#pid_of[@]})); do
    wait -n -p done_pid "${!pid_of[@]}" && rc=0 || rc=$?
    report "${pid_of[$done_pid]}" "$rc"
    unset "pid_of[$done_pid]"
done

n=${#names[@]}
nf=${#failed[@]}
echo
echo "valgrind: $(((n - nf) * 100 / n))% tests passed, $nf tests failed out of $n"
if ((nf)); then
    printf 'valgrind: failed: %s\n' "${failed[*]}"
    exit 1
fi
