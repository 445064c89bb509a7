#!/usr/bin/env bash
# bench/run_sync.sh - build and run the synchronisation and channel
# benchmarks against their Go peers; print medians and ratios as markdown.
#
#   bench/run_sync.sh                 every pair: pingpong chan mutex sieve
#                                     select timer
#   bench/run_sync.sh pingpong sieve  a subset
#
# Environment:
#   BENCH_RUNS=5                 runs per program (median reported)
#   BENCH_TIMEOUT=300            seconds before one run is killed
#   BENCH_BUILD_DIR=build/bench-sync
#   PINGPONG_N=2000000  CHAN_N=4000000  MUTEX_N=10000000  MUTEX_CO=1000
#   SIEVE_N=10000
#   SELECT_N=1000000  SELECT_CAP=0  SELECT_FIRE_N=500  SELECT_FIRE_US=100
#   TIMER_N=2000000  TIMER_ARMED=1000000
#
# pingpong runs twice: on one worker (GOMAXPROCS=1) and on two; the others
# use the default worker count on both sides (every allowed CPU).  Each
# program prints `RESULT <bench> <metric> <value> <unit>` lines; every raw
# output goes to $BENCH_BUILD_DIR/results.log.  See docs/BENCHMARKS.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-sync}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
RUNS=${BENCH_RUNS:-5}
TIMEOUT=${BENCH_TIMEOUT:-300}
PINGPONG_N=${PINGPONG_N:-2000000}
CHAN_N=${CHAN_N:-4000000}
MUTEX_N=${MUTEX_N:-10000000}
MUTEX_CO=${MUTEX_CO:-1000}
SIEVE_N=${SIEVE_N:-10000}
SELECT_N=${SELECT_N:-1000000}
SELECT_CAP=${SELECT_CAP:-0}
SELECT_FIRE_N=${SELECT_FIRE_N:-500}
SELECT_FIRE_US=${SELECT_FIRE_US:-100}
TIMER_N=${TIMER_N:-2000000}
TIMER_ARMED=${TIMER_ARMED:-1000000}
ALL="pingpong chan mutex sieve select timer"

die() { echo "run_sync.sh: $*" >&2; exit 1; }
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

benches=()
for a in "$@"; do
    case $a in
    -h | --help) usage 0 ;;
    pingpong | chan | mutex | sieve | select | timer) benches+=("$a") ;;
    *) echo "run_sync.sh: unknown benchmark '$a'" >&2; usage 2 ;;
    esac
done
[ ${#benches[@]} -eq 0 ] && read -ra benches <<<"$ALL"
command -v go >/dev/null 2>&1 || die "go not found (apt-get install golang-go)"

# ---------------------------------------------------------------- build ---
# The library comes from CMake; the benchmark programs are compiled here
# against libmay.a, so this works whether or not bench/CMakeLists.txt
# includes bench/sync.cmake.
echo "== building libmay (Release) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_EXAMPLES=OFF -DMAY_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target may_static >/dev/null || die "building libmay failed"
CC=${CC:-cc}
for b in "${benches[@]}"; do
    $CC -std=gnu11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$ROOT/include" \
        "$ROOT/bench/sync_$b.c" "$BUILD/libmay.a" -lpthread -o "$BUILD/bench_sync_$b" ||
        die "building bench/sync_$b.c failed"
done
echo "== building the Go peers with $(go version | cut -d' ' -f3)" >&2
mkdir -p "$BUILD/go"
for b in "${benches[@]}"; do
    (cd "$ROOT/bench/go/sync_$b" &&
        GO111MODULE=off GOFLAGS='' GOPATH=${GOPATH:-$BUILD/gopath} \
            GOCACHE=${GOCACHE:-$BUILD/go-cache} go build -o "$BUILD/go/sync_$b" .) ||
        die "building bench/go/sync_$b failed"
done

# ------------------------------------------------------------------ run ---
RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT
LOG=$BUILD/results.log
: >"$LOG"

# run_one <impl> <cmd...>: run once, file every RESULT value under
# $RES/<impl>.<bench>.<metric>, one value a line.
run_one() {
    local impl=$1
    shift
    local out rc=0
    out=$(timeout "$TIMEOUT" "$@" 2>&1) || rc=$?
    { echo "--- $impl: $*"; echo "$out"; echo "(exit $rc)"; } >>"$LOG"
    if [ $rc -ne 0 ]; then
        echo "   $impl $* FAILED (exit $rc), see $LOG" >&2
        return 0
    fi
    echo "$out" | awk '$1 == "RESULT" { print $2, $3, $4 }' |
        while read -r bench metric value; do
            echo "$value" >>"$RES/$impl.$bench.$metric"
        done
    printf '   %-3s %s\n' "$impl" "$(echo "$out" | awk '$1 == "RESULT" { printf "%s.%s=%s%s ", $2, $3, $4, $5 }')" >&2
}

# run_pair <bench> <args...>: RUNS runs of each side, alternating which
# goes first; both get the same arguments.
run_pair() {
    local b=$1 r
    shift
    for ((r = 1; r <= RUNS; r++)); do
        if ((r % 2)); then
            run_one c "$BUILD/bench_sync_$b" "$@"
            run_one go "$BUILD/go/sync_$b" "$@"
        else
            run_one go "$BUILD/go/sync_$b" "$@"
            run_one c "$BUILD/bench_sync_$b" "$@"
        fi
    done
}

median() {
    [ -s "$1" ] || { echo "-"; return; }
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.4g", m }'
}

ratio() {
    case "$1$2" in *-*) echo "-"; return ;; esac
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
}

for b in "${benches[@]}"; do
    case $b in
    pingpong)
        echo "== pingpong, 1 worker" >&2
        run_pair pingpong "$PINGPONG_N" 1
        echo "== pingpong, 2 workers" >&2
        run_pair pingpong "$PINGPONG_N" 2 ;;
    chan)
        echo "== chan" >&2
        run_pair chan "$CHAN_N" ;;
    mutex)
        echo "== mutex" >&2
        run_pair mutex "$MUTEX_N" "$MUTEX_CO" ;;
    sieve)
        echo "== sieve" >&2
        run_pair sieve "$SIEVE_N" ;;
    select)
        echo "== select" >&2
        run_pair select "$SELECT_N" "$SELECT_CAP" "$SELECT_FIRE_N" "$SELECT_FIRE_US" ;;
    timer)
        echo "== timer" >&2
        run_pair timer "$TIMER_N" "$TIMER_ARMED" ;;
    esac
done

# Rows: bench-name metric unit peer-impl peer-bench description target-ratio
rows() {
    cat <<EOF
pingpong pingpong_w1 ns_per_roundtrip ns go pingpong_w1 unbuffered ping-pong, 1 worker / GOMAXPROCS=1 2
pingpong pingpong_w2 ns_per_roundtrip ns go pingpong_w2 unbuffered ping-pong, 2 workers / GOMAXPROCS=2 2
chan chan_4p4c ns_per_msg ns go chan_4p4c buffered (128) channel, 4 producers 4 consumers 1
mutex mutex_co ns_per_op ns go mutex_co contended mutex, $MUTEX_CO coroutines vs goroutines 1
mutex mutex_co ns_per_op ns c mutex_pthread contended mutex: may coroutines vs pthread_mutex threads -
mutex mutex_may_threads ns_per_op ns c mutex_pthread contended mutex between threads: may_mutex vs pthread_mutex -
sieve sieve ms ms go sieve prime sieve to prime #$SIEVE_N 1
select select_chans ns_per_select ns go select_chans select on 2 channels alone (the baseline) -
select select_deadline ns_per_select ns go select_after select on 2 channels + a timeout each round: MAY_CASE_DEADLINE vs time.After 2
select select_newtimer ns_per_select ns go select_after select on 2 channels + a timeout each round: a new may_timer vs time.After 2
select select_timer ns_per_select ns go select_reset select on 2 channels + a reused timer: may_timer_reset + MAY_CASE_TIMER vs Timer.Reset 2
select select_deadline ns_per_select ns go select_reset select on 2 channels + a timeout: MAY_CASE_DEADLINE vs a reused Timer.Reset 2
select select_fire ns_per_select ns go select_fire select on 2 silent channels + a ${SELECT_FIRE_US} us timeout that fires -
timer timer_create_stop ns_per_op ns go timer_create_stop timer create + stop, one coroutine vs time.NewTimer + Stop 2
timer timer_create_stop_par ns_per_op ns go timer_create_stop_par timer create + stop, one coroutine (goroutine) per worker 2
timer timer_reset_stop ns_per_op ns go timer_reset_stop timer reset + stop, one timer -
timer timer_armed_create ns_per_op ns go timer_armed_create create + arm with up to $TIMER_ARMED armed (random deadlines) -
timer timer_armed_stop ns_per_op ns go timer_armed_stop stop each of $TIMER_ARMED armed timers -
EOF
}

echo
echo "Runs: $RUNS each, medians.  $(nproc) CPUs, $(go version | cut -d' ' -f3)."
echo
echo "| benchmark | may | peer | peer value | peer/may | target |"
echo "|---|---:|---|---:|---:|---|"
while read -r b bench metric unit peer pbench rest; do
    [[ " ${benches[*]} " == *" $b "* ]] || continue
    target=${rest##* }
    desc=${rest% *}
    c=$(median "$RES/c.$bench.$metric")
    p=$(median "$RES/$peer.$pbench.$metric")
    r=$(ratio "$p" "$c")
    pname=Go
    [ "$peer" = c ] && pname=pthread_mutex
    t="-"
    if [ "$target" != "-" ] && [ "$r" != "-" ]; then
        t=$(awk -v r="$r" -v t="$target" 'BEGIN { print (r >= t) ? "met (>=" t "x)" : "NOT met (>=" t "x)" }')
    fi
    [ "$c" = "-" ] && c=FAILED
    [ "$p" = "-" ] && p=FAILED
    echo "| $desc | $c $unit | $pname | $p $unit | ${r}x | $t |"
done < <(rows)
echo
echo "peer/may above 1: may is faster."
