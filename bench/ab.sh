#!/usr/bin/env bash
# bench/ab.sh - interleaved A/B of libmay's own benchmarks between two commits.
#
#   bench/ab.sh [BASE [NEW]]     BASE defaults to HEAD~1, NEW to HEAD
#
# Builds each commit (Release) in a worktree under $AB_DIR (default
# build/ab), then runs every benchmark of both builds in turn, A B A B ...
# (the first of each pair alternating), AB_RUNS times (default 7), and
# prints the median of each side and NEW/BASE.  Both builds see the same
# machine at nearly the same moment, so a neighbour's load falls on both.
#
# Environment: AB_RUNS=7, AB_DIR=build/ab, AB_BENCHES (default: switch spawn
# skynet pingpong1 pingpong2 chan mutex sieve), SWITCH_N, SPAWN_N,
# PINGPONG_N (sizes; the defaults keep one run to a second or two),
# AB_WRAP (a command prefix for every run, e.g. "taskset -c 0").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${1:-HEAD~1}
NEW=${2:-HEAD}
RUNS=${AB_RUNS:-7}
DIR=${AB_DIR:-$ROOT/build/ab}
BENCHES=${AB_BENCHES:-switch spawn skynet pingpong1 pingpong2 chan mutex sieve}
SWITCH_N=${SWITCH_N:-5000000}
SPAWN_N=${SPAWN_N:-500000}

case ${1:-} in -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

build_rev() { # rev dir
    local rev=$1 d=$2 sha
    sha=$(git -C "$ROOT" rev-parse --verify "$rev^{commit}")
    if [ ! -d "$d/src" ] || [ "$(git -C "$d/src" rev-parse HEAD 2>/dev/null)" != "$sha" ]; then
        rm -rf "$d"
        git -C "$ROOT" worktree prune
        git -C "$ROOT" worktree add --detach -f "$d/src" "$sha" >/dev/null
    fi
    cmake -S "$d/src" -B "$d/b" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
        -DMAY_BUILD_EXAMPLES=OFF -Wno-dev >/dev/null
    cmake --build "$d/b" -j"$(nproc)" >/dev/null
    # the sync benchmarks are built by bench/run_sync.sh in the tree itself
    for b in pingpong chan mutex sieve; do
        [ -f "$d/src/bench/sync_$b.c" ] || continue
        cc -std=gnu11 -O2 -D_GNU_SOURCE -I"$d/src/include" -I"$d/src/bench" "$d/src/bench/sync_$b.c" "$d/b/libmay.a" \
            -lpthread -o "$d/b/bench_sync_$b"
    done
}

cmd_of() { # dir bench -> command line
    local b=$2
    case $b in
    switch) echo "$1/b/bench/bench_switch $SWITCH_N" ;;
    spawn) echo "$1/b/bench/bench_spawn $SPAWN_N" ;;
    skynet) echo "$1/b/bench/bench_skynet" ;;
    pingpong1) echo "$1/b/bench_sync_pingpong ${PINGPONG_N:-1000000} 1" ;;
    pingpong2) echo "$1/b/bench_sync_pingpong ${PINGPONG_N:-1000000} 2" ;;
    *) echo "$1/b/bench_sync_$b" ;;
    esac
}

echo "ab: building $BASE and $NEW" >&2
build_rev "$BASE" "$DIR/a"
build_rev "$NEW" "$DIR/b"
RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT

run_one() { # side dir bench
    local out
    # shellcheck disable=SC2046
    out=$(timeout 300 ${AB_WRAP:-} $(cmd_of "$2" "$3") 2>&1) || { echo "ab: $1 $3 failed" >&2; return 0; }
    echo "$out" | awk -v s="$1" '$1 == "RESULT" { print s, $2 "." $3, $4, $5 }' >>"$RES/all"
}

for ((r = 1; r <= RUNS; r++)); do
    for b in $BENCHES; do
        if ((r % 2)); then
            run_one A "$DIR/a" "$b"
            run_one B "$DIR/b" "$b"
        else
            run_one B "$DIR/b" "$b"
            run_one A "$DIR/a" "$b"
        fi
    done
    echo "ab: round $r of $RUNS done" >&2
done

printf '%-34s %12s %12s %8s\n' "benchmark (median of $RUNS)" "$BASE" "$NEW" "new/base"
awk '{ print $2, $4 }' "$RES/all" | sort -u | while read -r key unit; do
    a=$(awk -v k="$key" '$1 == "A" && $2 == k { print $3 }' "$RES/all" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    b=$(awk -v k="$key" '$1 == "B" && $2 == k { print $3 }' "$RES/all" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    printf '%-34s %12.4g %12.4g %8.3f\n' "$key ($unit)" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { print (a > 0) ? b / a : 0 }')"
done
