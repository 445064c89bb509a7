#!/usr/bin/env bash
# bench/echo.sh - TCP echo round trips of examples/echo.c against its Go
# peer (bench/go/echo, a goroutine per connection), both driven by the same
# load generator, examples/echo_client.  Never part of the tests.
#
#   bench/echo.sh
#
# Each server gets 2 workers (may: MAY_WORKERS=2; Go: GOMAXPROCS=2) and
# listens on 127.0.0.1 only.  With 4 or more CPUs the server is pinned with
# taskset to CPUs 0,1 and the client to the others; with fewer, server and
# client share every CPU (a noisier measurement: the client's CPU competes).
# Runs, each after a 1 s warm-up: 64 and 1000 connections x 64-byte and
# 4 KiB messages, ECHO_BENCH_SECS (5) seconds each.  Printed: round trips/s,
# latency p50/p99 (from echo_client), and the server's CPU time per round
# trip (utime+stime from /proc/PID/stat around the run).
#
# Environment: ECHO_BENCH_SECS=5 ECHO_SERVER_CPUS ECHO_CLIENT_CPUS
# ECHO_PORT=19080 (Go: +1) BENCH_BUILD_DIR=build/bench-echo.  Installs Go
# when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-echo}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SECS=${ECHO_BENCH_SECS:-5}
PORT=${ECHO_PORT:-19080}
NCPU=$(nproc)
if [ "$NCPU" -ge 4 ]; then
    SCPUS=${ECHO_SERVER_CPUS:-0,1}
    CCPUS=${ECHO_CLIENT_CPUS:-$(seq -s, 2 $((NCPU - 1)))}
else
    SCPUS=${ECHO_SERVER_CPUS:-$(seq -s, 0 $((NCPU - 1)))}
    CCPUS=${ECHO_CLIENT_CPUS:-$SCPUS}
fi
CWORKERS=$(echo "$CCPUS" | tr , '\n' | wc -l)
HZ=$(getconf CLK_TCK)

die() { echo "echo.sh: $*" >&2; exit 1; }

if ! command -v go >/dev/null 2>&1; then
    echo "echo.sh: go not found, installing golang-go" >&2
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y golang-go >&2 ||
        { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y golang-go >&2; }
    command -v go >/dev/null 2>&1 || die "go is still missing"
fi

echo "== building examples/echo and examples/echo_client (Release) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_EXAMPLES=ON -DMAY_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$NCPU" --target echo echo_client >/dev/null ||
    die "building the examples failed"
echo "== building bench/go/echo with $(go version | cut -d' ' -f3)" >&2
(cd "$ROOT/bench/go/echo" &&
    GO111MODULE=off GOFLAGS='' GOPATH=${GOPATH:-$BUILD/gopath} \
        GOCACHE=${GOCACHE:-$BUILD/go-cache} go build -o "$BUILD/go-echo" .) ||
    die "building bench/go/echo failed"
CLIENT=$BUILD/examples/echo_client

LOG=$BUILD/echo-results.log
: >"$LOG"
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; true; }
trap cleanup EXIT

cpu_ticks() { # pid: utime+stime (fields 14, 15; the name may hold spaces)
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

client() { # port conns size secs
    MAY_WORKERS=$CWORKERS timeout $(($4 + 60)) taskset -c "$CCPUS" \
        "$CLIENT" "127.0.0.1:$1" "$2" "$3" "$4"
}

ROWS=()
run() { # impl port conns size
    local impl=$1 port=$2 conns=$3 size=$4 out t0 t1 rts rps p50 p99 ns
    client "$port" "$conns" "$size" 1 >/dev/null 2>&1 || true # warm-up
    t0=$(cpu_ticks "$SPID")
    out=$(client "$port" "$conns" "$size" "$SECS" 2>&1) || die "echo_client failed against $impl: $out"
    t1=$(cpu_ticks "$SPID")
    { echo "--- $impl c=$conns size=$size"; echo "$out"; echo "server cpu ticks: $((t1 - t0)) (HZ $HZ)"; } >>"$LOG"
    rts=$(echo "$out" | awk '$1 == "round_trips" { print $2 }')
    rps=$(echo "$out" | awk '$1 == "round_trips" { print $4 }')
    p50=$(echo "$out" | awk '$1 == "latency_us" { print $3 }')
    p99=$(echo "$out" | awk '$1 == "latency_us" { print $7 }')
    ns=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$rts" 'BEGIN { printf "%.0f", t * 1e9 / hz / n }')
    printf '   %-4s c=%-5s %5s B  %9s rt/s  p50 %6s us  p99 %6s us  server CPU %6s ns/rt\n' \
        "$impl" "$conns" "$size" "$rps" "$p50" "$p99" "$ns" >&2
    ROWS+=("| $impl | $conns | $size | $rps | $p50 | $p99 | $ns |")
}

serve() { # impl port cmd...
    local impl=$1 port=$2
    shift 2
    taskset -c "$SCPUS" "$@" "127.0.0.1:$port" $((8 * (SECS + 2) + 60)) >>"$LOG" 2>&1 &
    SPID=$!
    local i
    for i in $(seq 100); do
        "$CLIENT" "127.0.0.1:$port" 1 1 0.01 >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "$impl server did not come up on port $port"
}

stop() {
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
}

bench() { # impl port
    local c s
    for c in 64 1000; do
        for s in 64 4096; do
            run "$1" "$2" "$c" "$s"
        done
    done
}

echo "== server on CPU(s) $SCPUS (2 workers), client on CPU(s) $CCPUS ($CWORKERS workers), ${SECS}s per run ($NCPU CPUs)" >&2
MAY_WORKERS=2 serve may "$PORT" "$BUILD/examples/echo"
bench may "$PORT"
stop
GOMAXPROCS=2 serve go $((PORT + 1)) "$BUILD/go-echo"
bench go $((PORT + 1))
stop

echo
echo "| server | connections | message (bytes) | round trips/s | p50 (us) | p99 (us) | server CPU (ns/round trip) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "(raw client output: $LOG)"
