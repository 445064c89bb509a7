#!/usr/bin/env bash
# bench/http_cg.sh [REV] - server instructions per request of examples/http.c
# at HEAD's working tree and at git revision REV (default 2e0b3fc, the
# self-contained server before libmay_http), counted by callgrind: one
# worker, the server under valgrind --tool=callgrind, counters zeroed once
# it answers, then a deterministic load (bench/http_cg/pipeline_client.py:
# 4 connections, keep-alive one request at a time, and 16-deep pipelining),
# then dumped.  Instruction counts do not depend on the machine's load, so
# this A/B works on a busy 2-CPU machine where timings do not.
#   CG_ROUNDS (keep-alive rounds per connection, default 2000; pipelined
#   runs ROUNDS/8 rounds of 16).  Prints Ir/request for both and the ratio.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REV=${1:-2e0b3fc}
BUILD=$ROOT/build/bench-cg
ROUNDS=${CG_ROUNDS:-2000}
PORT=${CG_PORT:-18190}
mkdir -p "$BUILD"
command -v valgrind >/dev/null || { echo "http_cg: needs valgrind" >&2; exit 1; }

echo "== building examples/http (RelWithDebInfo) here and at $REV" >&2
cmake -S "$ROOT" -B "$BUILD/head" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD/head" -j"$(nproc)" --target http >/dev/null
rm -rf "$BUILD/base-src" && mkdir -p "$BUILD/base-src"
git -C "${CG_GIT:-$ROOT}" archive "$REV" | tar -x -C "$BUILD/base-src"
cmake -S "$BUILD/base-src" -B "$BUILD/base" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD/base" -j"$(nproc)" --target http >/dev/null

SPID=
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; true' EXIT

# measure <binary> <depth> <rounds>: Ir per request
measure() {
    local bin=$1 depth=$2 rounds=$3 out=$BUILD/cg.out.$$ n ir
    rm -f "$out".*
    MAY_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$out.%p" "$bin" "$PORT" 600 \
        >/dev/null 2>"$BUILD/cg.log" &
    SPID=$!
    for _ in $(seq 600); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/plaintext" && break
        sleep 0.1
    done
    callgrind_control -z "$SPID" >/dev/null
    n=$(python3 "$ROOT/bench/http_cg/pipeline_client.py" "$PORT" 4 "$rounds" "$depth")
    callgrind_control -d "$SPID" >/dev/null
    sleep 0.5
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
    ir=$(for f in "$out".*.*; do grep -h '^summary:\|^totals:' "$f" | awk '{ print $2 }' | head -1; done |
        sort -n | tail -1)
    rm -f "$out".*
    awk -v i="$ir" -v n="$n" 'BEGIN { printf "%.0f", i / n }'
}

for mode in keep-alive pipelined; do
    if [ "$mode" = pipelined ]; then d=16 r=$((ROUNDS / 8)); else d=1 r=$ROUNDS; fi
    h=$(measure "$BUILD/head/examples/http" $d $r)
    b=$(measure "$BUILD/base/examples/http" $d $r)
    h2=$(measure "$BUILD/head/examples/http" $d $r)
    b2=$(measure "$BUILD/base/examples/http" $d $r)
    awk -v m=$mode -v h="$h" -v b="$b" -v h2="$h2" -v b2="$b2" -v rev="$REV" 'BEGIN {
        printf "%-10s  head %6d %6d Ir/req   %s %6d %6d Ir/req   head/%s %.3f\n", m, h, h2, rev, b, b2, rev, (h + h2) / (b + b2) }'
done
