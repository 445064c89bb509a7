#!/usr/bin/env bash
# bench/run.sh - build and run the may benchmarks against their Go peers.
#
#   bench/run.sh                      all pairs: switch spawn alive skynet idle
#   bench/run.sh switch skynet        a subset
#   bench/run.sh scaling              skynet at 1, 2, 4, 8, 16 workers
#
# Environment:
#   BENCH_RUNS=5          runs per program (median reported)
#   BENCH_WORKERS="1 2 4 8 16"   worker counts for `scaling`
#   BENCH_TIMEOUT=300     seconds before one run is killed
#   BENCH_BUILD_DIR=build/bench
#   SWITCH_N=10000000  SPAWN_N=1000000  ALIVE_N=1000000  IDLE_SECS=10
#
# Each program prints `RESULT <bench> <metric> <value> <unit>` lines; every
# raw output goes to $BENCH_BUILD_DIR/results.log.  See docs/BENCHMARKS.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
RUNS=${BENCH_RUNS:-5}
TIMEOUT=${BENCH_TIMEOUT:-300}
SWITCH_N=${SWITCH_N:-10000000}
SPAWN_N=${SPAWN_N:-1000000}
ALIVE_N=${ALIVE_N:-1000000}
IDLE_SECS=${IDLE_SECS:-10}
SCALING_WORKERS=${BENCH_WORKERS:-1 2 4 8 16}
ALL_BENCHES="switch spawn alive skynet idle"

die() { echo "run.sh: $*" >&2; exit 1; }
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

mode=pairs
benches=()
for a in "$@"; do
    case $a in
    -h | --help) usage 0 ;;
    scaling) mode=scaling ;;
    switch | spawn | alive | skynet | idle) benches+=("$a") ;;
    *) echo "run.sh: unknown benchmark '$a'" >&2; usage 2 ;;
    esac
done
if [ ${#benches[@]} -eq 0 ]; then
    if [ $mode = scaling ]; then benches=(skynet); else read -ra benches <<<"$ALL_BENCHES"; fi
fi
[ $mode = scaling ] && benches=(skynet)

# ---------------------------------------------------------------- build ---
ensure_go() {
    command -v go >/dev/null 2>&1 && return 0
    echo "run.sh: go not found, installing golang-go" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y golang-go >&2 || { apt-get update >&2 && apt-get install -y golang-go >&2; }
    else
        sudo apt-get install -y golang-go >&2
    fi
    command -v go >/dev/null 2>&1 || die "go is still missing"
}

build() {
    echo "== building the library (Release) in $BUILD" >&2
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
        -DMAY_BUILD_TESTS=OFF -DMAY_BUILD_EXAMPLES=OFF -DMAY_BUILD_BENCH=ON >/dev/null
    local targets=()
    for b in "${benches[@]}"; do targets+=(--target "bench_$b"); done
    cmake --build "$BUILD" -j"$(nproc)" "${targets[@]}" >/dev/null ||
        die "building the C benchmarks failed (cmake --build $BUILD)"

    ensure_go
    echo "== building the Go peers with $(go version | cut -d' ' -f3)" >&2
    mkdir -p "$BUILD/go"
    for b in "${benches[@]}"; do
        (cd "$ROOT/bench/go/$b" &&
            GO111MODULE=off GOFLAGS='' GOPATH=${GOPATH:-$BUILD/gopath} \
                GOCACHE=${GOCACHE:-$BUILD/go-cache} go build -o "$BUILD/go/$b" .) ||
            die "building bench/go/$b failed"
    done
}

cbin() { echo "$BUILD/bench/bench_$1"; }
gobin() { echo "$BUILD/go/$1"; }

# Arguments each benchmark gets (the same for C and Go).
bench_args() {
    case $1 in
    switch) echo "$SWITCH_N" ;;
    spawn) echo "$SPAWN_N" ;;
    alive) echo "$ALIVE_N" ;;
    skynet) echo "" ;;
    idle) echo "$IDLE_SECS" ;;
    esac
}

# ------------------------------------------------------------------ run ---
RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT
LOG=$BUILD/results.log

# run_one <impl> <tag> <cmd...>: run once, file every RESULT value under
# $RES/<impl>.<tag>.<bench>.<metric>, one value a line.
run_one() {
    local impl=$1 tag=$2
    shift 2
    local out rc=0
    out=$(timeout "$TIMEOUT" "$@" 2>&1) || rc=$?
    { echo "--- $impl $tag: $*"; echo "$out"; echo "(exit $rc)"; } >>"$LOG"
    if [ $rc -ne 0 ]; then
        echo "   $impl $* FAILED (exit $rc), see $LOG" >&2
        return 0
    fi
    echo "$out" | awk '$1 == "RESULT" { print $2, $3, $4 }' |
        while read -r bench metric value; do
            echo "$value" >>"$RES/$impl.$tag.$bench.$metric"
        done
    printf '   %-3s %s\n' "$impl" "$(echo "$out" | awk '$1 == "RESULT" { printf "%s=%s%s ", $3, $4, $5 }')" >&2
}

# run_pair <tag> <bench> <C args> <Go args>: RUNS runs of each, alternating
# which goes first.
run_pair() {
    local tag=$1 b=$2 cargs=$3 goargs=$4 r
    for ((r = 1; r <= RUNS; r++)); do
        # shellcheck disable=SC2086
        if ((r % 2)); then
            run_one c "$tag" "$(cbin "$b")" $cargs
            run_one go "$tag" "$(gobin "$b")" $goargs
        else
            run_one go "$tag" "$(gobin "$b")" $goargs
            run_one c "$tag" "$(cbin "$b")" $cargs
        fi
    done
}

# median <file>: median of the values in file, or "-" when there are none.
median() {
    [ -s "$1" ] || { echo "-"; return; }
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
        if (m == int(m) && m < 1e6) printf "%d", m; else printf "%.4g", m }'
}

# ratio <a> <b>: a / b with two decimals, or "-".
ratio() {
    case "$1$2" in *-*) echo "-"; return ;; esac
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
}

# Metric table: bench metric unit kind threshold target-text.
#   speed: lower is better, ratio = Go/C, met when ratio >= threshold
#   mem:   ratio = C/Go, met when ratio <= threshold
#   abs:   met when the C value <= threshold
#   rinfo: ratio = Go/C, no target (the issue's spawn target is the
#          one-at-a-time figure, whose Go peer the issue quotes: 188 ns)
#   info:  no target
metrics() {
    cat <<EOF
switch ns_per_switch ns speed 5 >=5x faster than Go
spawn ns_per_spawn_join ns speed 3 >=3x faster than Go
spawn ns_per_spawn_batch ns rinfo 0 none (extra figure)
alive ns_per_coroutine ns speed 1 faster than Go
alive peak_rss MB mem 1.7 <=1.7x Go's RSS
skynet ms ms speed 1 faster than Go
idle cpu_ms ms info 0 ~0
idle wakeups count abs $IDLE_SECS ~0 (<=1 per second)
EOF
}

report_pairs() {
    echo
    echo "Runs: $RUNS each, medians.  $(nproc) CPUs, $(go version | cut -d' ' -f3)."
    echo
    echo "| benchmark | metric | may (C) | Go | ratio | target | met |"
    echo "|---|---|---:|---:|---:|---|---|"
    local b metric unit kind thr target
    while read -r b metric unit kind thr target; do
        [[ " ${benches[*]} " == *" $b "* ]] || continue
        local c g r="-" met="-"
        c=$(median "$RES/c.main.$b.$metric")
        g=$(median "$RES/go.main.$b.$metric")
        case $kind in
        rinfo)
            r=$(ratio "$g" "$c")
            [ "$r" != "-" ] && r="${r}x" ;;
        speed)
            r=$(ratio "$g" "$c")
            [ "$r" != "-" ] && { met=$(awk -v r="$r" -v t="$thr" 'BEGIN { print (r >= t) ? "yes" : "NO" }'); r="${r}x"; } ;;
        mem)
            r=$(ratio "$c" "$g")
            [ "$r" != "-" ] && { met=$(awk -v r="$r" -v t="$thr" 'BEGIN { print (r <= t) ? "yes" : "NO" }'); r="${r}x"; } ;;
        abs)
            [ "$c" != "-" ] && met=$(awk -v c="$c" -v t="$thr" 'BEGIN { print (c <= t) ? "yes" : "NO" }') ;;
        esac
        [ "$c" = "-" ] && c="FAILED"
        [ "$g" = "-" ] && g="FAILED"
        echo "| $b | $metric ($unit) | $c | $g | $r | $target | $met |"
    done < <(metrics)
    echo
    echo "ratio: Go/C for times (above 1: may is faster); C/Go for peak RSS (below 1: may uses less)."
}

report_scaling() {
    echo
    echo "skynet scaling, runs: $RUNS each, medians (ms).  $(nproc) CPUs, $(go version | cut -d' ' -f3)."
    echo
    echo "| workers | may (C) ms | Go ms | Go/C |"
    echo "|---:|---:|---:|---:|"
    local w
    for w in $SCALING_WORKERS; do
        local c g
        c=$(median "$RES/c.w$w.skynet.ms")
        g=$(median "$RES/go.w$w.skynet.ms")
        echo "| $w | $c | $g | $(ratio "$g" "$c") |"
    done
}

build
mkdir -p "$BUILD"
: >"$LOG"
if [ $mode = scaling ]; then
    for w in $SCALING_WORKERS; do
        echo "== skynet, $w worker(s)" >&2
        run_pair "w$w" skynet "$w" "$w"
    done
    report_scaling
else
    for b in "${benches[@]}"; do
        echo "== $b" >&2
        args=$(bench_args "$b")
        run_pair main "$b" "$args" "$args"
    done
    report_pairs
fi
