#!/usr/bin/env bash
# bench/http.sh - HTTP/1.1 throughput of examples/http.c against its Go
# net/http peer (bench/go/http), measured with wrk.  Never part of the tests.
#
#   bench/http.sh
#
# Each server runs pinned with taskset to one CPU (HTTP_SERVER_CPU, default
# 0; so may has 1 worker and Go GOMAXPROCS=1), wrk to the others, both on
# 127.0.0.1 only.  Two runs per server, against /plaintext:
#   keep-alive  wrk -t1 -c64 -d5s
#   pipelined   the same with bench/pipeline.lua, 16 requests per write
# Printed: requests/s, mean and p99 latency, and the server's CPU time per
# request (utime+stime from /proc/PID/stat around the run).
#
# Environment: HTTP_BENCH_SECS=5 HTTP_BENCH_CONNS=64 HTTP_BENCH_DEPTH=16
# HTTP_SERVER_CPU=0 HTTP_WRK_CPUS (default: every other CPU, or the same
# one on a 1-CPU machine) HTTP_PORT=18080 (Go: +1)
# BENCH_BUILD_DIR=build/bench-http.  Installs wrk (and Go) when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-http}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SECS=${HTTP_BENCH_SECS:-5}
CONNS=${HTTP_BENCH_CONNS:-64}
DEPTH=${HTTP_BENCH_DEPTH:-16}
PORT=${HTTP_PORT:-18080}
SCPU=${HTTP_SERVER_CPU:-0}
NCPU=$(nproc)
if [ -z "${HTTP_WRK_CPUS:-}" ]; then
    if [ "$NCPU" -gt 1 ]; then
        HTTP_WRK_CPUS=$(seq -s, 0 $((NCPU - 1)) | tr , '\n' | grep -vx "$SCPU" | paste -sd,)
    else
        HTTP_WRK_CPUS=$SCPU
    fi
fi
HZ=$(getconf CLK_TCK)

die() { echo "http.sh: $*" >&2; exit 1; }

apt_install() { # pkg
    echo "http.sh: $1 not found, installing it" >&2
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y "$1" >&2 ||
        { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y "$1" >&2; }
}
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v wrk >/dev/null 2>&1 || die "wrk is still missing"
command -v go >/dev/null 2>&1 || apt_install golang-go
command -v go >/dev/null 2>&1 || die "go is still missing"

echo "== building examples/http (Release) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_EXAMPLES=ON -DMAY_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$NCPU" --target http >/dev/null || die "building examples/http failed"
echo "== building bench/go/http with $(go version | cut -d' ' -f3)" >&2
(cd "$ROOT/bench/go/http" &&
    GO111MODULE=off GOFLAGS='' GOPATH=${GOPATH:-$BUILD/gopath} \
        GOCACHE=${GOCACHE:-$BUILD/go-cache} go build -o "$BUILD/go-http" .) ||
    die "building bench/go/http failed"

LOG=$BUILD/http-results.log
: >"$LOG"
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; true; }
trap cleanup EXIT

cpu_ticks() { # pid: utime+stime (fields 14, 15; the name may hold spaces)
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# to_us "1.23ms" -> 1230
to_us() {
    awk -v v="$1" 'BEGIN {
        u = v; sub(/[0-9.]+/, "", u); n = v + 0
        if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1e6; else f = 0.001
        printf "%.0f", n * f }'
}

ROWS=()
# run <impl> <mode> <port>: one wrk run against a server already up
run() {
    local impl=$1 mode=$2 port=$3 url extra=() out t0 t1 reqs rps avg p99 ns
    url=http://127.0.0.1:$port/plaintext
    [ "$mode" = pipelined ] && extra=(-s "$ROOT/bench/pipeline.lua")
    # warm-up, not measured
    timeout 30 taskset -c "$HTTP_WRK_CPUS" wrk -t1 -c"$CONNS" -d1s "${extra[@]}" "$url" \
        ${extra:+-- "$DEPTH"} >/dev/null 2>&1 || true
    t0=$(cpu_ticks "$SPID")
    out=$(timeout $((SECS + 30)) taskset -c "$HTTP_WRK_CPUS" wrk -t1 -c"$CONNS" -d"${SECS}s" \
        --latency "${extra[@]}" "$url" ${extra:+-- "$DEPTH"} 2>&1) ||
        die "wrk failed against $impl: $out"
    t1=$(cpu_ticks "$SPID")
    { echo "--- $impl $mode"; echo "$out"; echo "server cpu ticks: $((t1 - t0)) (HZ $HZ)"; } >>"$LOG"
    reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
    avg=$(to_us "$(echo "$out" | awk '$1 == "Latency" { print $2; exit }')")
    p99=$(to_us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
    [ "$p99" = 0 ] && p99=n/a # wrk's histogram sometimes prints 0 when pipelining
    if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then
        echo "   note: $(echo "$out" | grep 'Non-2xx\|Socket errors')" >&2
    fi
    ns=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.0f", t * 1e9 / hz / n }')
    printf '   %-4s %-10s %9s req/s  latency avg %6s us  p99 %6s us  server CPU %5s ns/req\n' \
        "$impl" "$mode" "$rps" "$avg" "$p99" "$ns" >&2
    ROWS+=("| $impl | $mode | $rps | $avg | $p99 | $ns |")
}

# serve <impl> <port> <cmd...>: start the server pinned, wait until it answers
serve() {
    local impl=$1 port=$2
    shift 2
    taskset -c "$SCPU" "$@" "$port" $((4 * (SECS + 1) + 60)) >>"$LOG" 2>&1 &
    SPID=$!
    local i
    for i in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/plaintext" && return 0
        sleep 0.05
    done
    die "$impl server did not come up on port $port"
}

stop() {
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
}

echo "== wrk -t1 -c$CONNS -d${SECS}s, server on CPU $SCPU, wrk on CPU(s) $HTTP_WRK_CPUS ($NCPU CPUs)" >&2
serve may "$PORT" "$BUILD/examples/http"
run may keep-alive "$PORT"
run may pipelined "$PORT"
stop
serve go $((PORT + 1)) "$BUILD/go-http"
run go keep-alive $((PORT + 1))
run go pipelined $((PORT + 1))
stop

echo
echo "| server | mode | requests/s | latency avg (us) | p99 (us) | server CPU (ns/request) |"
echo "|---|---|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "(raw wrk output: $LOG)"
