#!/usr/bin/env bash
# bench/idle_conns.sh - memory of idle HTTP keep-alive connections: the
# server's RSS with IDLE_CONNS (10 000) connections open, each after one
# request, for examples/http.c and its peers (Go net/http, the raw Go
# server bench/go/httpraw, nginx).  Never part of the tests.
#
#   bench/idle_conns.sh              every server
#   bench/idle_conns.sh may go       a subset
#
# Per server and round: start it (pinned like bench/http.sh: IDLE_SERVER_CPUS,
# default CPU 0, with as many workers as CPUs there), make one request
# (curl), read its RSS (VmRSS from /proc/PID/status; nginx: master + workers)
# as the baseline; then bench/go/idleconns opens IDLE_CONNS connections
# (64 dials in flight), makes one GET /plaintext on each and holds them;
# IDLE_SETTLE (2) seconds later the RSS is read again.  Then the client makes
# a second request on every connection (to check none was dropped) and
# closes them all.  Printed: baseline and loaded RSS, and (loaded -
# baseline) / connections, medians over IDLE_ROUNDS rounds.  Kernel socket
# buffers are not in RSS and not counted.
#
# RLIMIT_NOFILE is raised to the hard limit (server and client each need
# IDLE_CONNS + a few descriptors).
#
# Environment: IDLE_CONNS=10000 IDLE_ROUNDS=3 IDLE_SETTLE=2
# IDLE_SERVER_CPUS=0 IDLE_CLIENT_CPUS (default: the other CPUs)
# IDLE_PORT=18180 (peers +1, +2, +3) BENCH_BUILD_DIR=build/bench-idle.
# Installs Go and nginx when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-idle}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
N=${IDLE_CONNS:-10000}
ROUNDS=${IDLE_ROUNDS:-3}
SETTLE=${IDLE_SETTLE:-2}
PORT=${IDLE_PORT:-18180}
NCPU=$(nproc)
# shellcheck source=bench/io_lib.sh
. "$ROOT/bench/io_lib.sh"
SCPUS=${IDLE_SERVER_CPUS:-0}
if [ -z "${IDLE_CLIENT_CPUS:-}" ]; then
    IDLE_CLIENT_CPUS=$(seq 0 $((NCPU - 1)) | grep -vxF -f <(echo "$SCPUS" | tr , '\n') | paste -sd, || true)
    [ -n "$IDLE_CLIENT_CPUS" ] || IDLE_CLIENT_CPUS=$SCPUS
fi
WORKERS=$(count_cpus "$SCPUS")
ALL_SERVERS=(may go goraw nginx)
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=("${ALL_SERVERS[@]}")

die() { echo "idle_conns.sh: $*" >&2; exit 1; }

for s in "${SERVERS[@]}"; do
    case " ${ALL_SERVERS[*]} " in *" $s "*) ;; *) die "unknown server '$s' (${ALL_SERVERS[*]})" ;; esac
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((N + 64)) ] ||
    die "RLIMIT_NOFILE is $(ulimit -n) (hard $(ulimit -Hn)); $N connections need $((N + 64))"

need go golang-go
case " ${SERVERS[*]} " in *" nginx "*) need_nginx ;; esac

echo "== building examples/http (Release) and the Go programs in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_EXAMPLES=ON -DMAY_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$NCPU" --target http >/dev/null || die "building examples/http failed"
gobuild http "$BUILD/go-http"
gobuild httpraw "$BUILD/go-httpraw"
gobuild idleconns "$BUILD/go-idleconns"

LOG=$BUILD/idle-results.log
DATA=$BUILD/idle-results.tsv # impl round base_kib loaded_kib per_conn_bytes alive
: >"$LOG"
: >"$DATA"
SPID=
CPID=
WATCHDOG=
cleanup() {
    [ -n "$CPID" ] && kill "$CPID" 2>/dev/null
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
    true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LIFE=$((SETTLE + 120)) # seconds: the servers end themselves (nginx: a watchdog)
# nginx closes idle keep-alive connections to make room once fewer than 1/16
# of worker_connections are free: keep 1/8 spare
serve() { http_serve "$1" "$LIFE" $((N + N / 8 + 256)); }

run() { # impl round
    local impl=$1 round=$2 port base loaded per out alive ready
    port=$(port_of "$impl")
    serve "$impl"
    sleep 0.3
    base=$(rss_kib "$SPID")
    out=$BUILD/idleconns.out
    # no `timeout` around it (it would not pass SIGUSR1 on): the client
    # bounds itself (10 s per dial or request, LIFE - 10 s of holding)
    taskset -c "$IDLE_CLIENT_CPUS" "$BUILD/go-idleconns" "127.0.0.1:$port" "$N" $((LIFE - 10)) >"$out" 2>&1 &
    CPID=$!
    for _ in $(seq 600); do # 60 s at most
        grep -q '^READY' "$out" 2>/dev/null && break
        kill -0 "$CPID" 2>/dev/null || break
        sleep 0.1
    done
    ready=$(grep '^READY' "$out" || true)
    [ -n "$ready" ] || die "the client did not connect to $impl: $(cat "$out")"
    sleep "$SETTLE"
    loaded=$(rss_kib "$SPID")
    kill -USR1 "$CPID" 2>/dev/null || true
    wait "$CPID" || true
    CPID=
    alive=$(awk '$1 == "ALIVE" { print $2 }' "$out")
    stop
    per=$(awk -v b="$base" -v l="$loaded" -v n="$N" 'BEGIN { printf "%.0f", (l - b) * 1024 / n }')
    { echo "--- round $round: $impl"; cat "$out"; echo "rss baseline $base KiB, with connections $loaded KiB"; } >>"$LOG"
    printf '   round %d  %-5s %s; RSS %6.1f MiB idle, %6.1f MiB with %d connections: %5d bytes/connection; %s of them still served\n' \
        "$round" "$impl" "${ready#READY }" "$(awk -v k="$base" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$loaded" 'BEGIN { print k / 1024 }')" "$N" "$per" "${alive:-?}" >&2
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$impl" "$round" "$base" "$loaded" "$per" "${alive:-0}" >>"$DATA"
}

echo "== ${SERVERS[*]}: $N idle keep-alive connections, $ROUNDS rounds; server on CPU(s) $SCPUS" \
    "($WORKERS worker(s)), client on CPU(s) $IDLE_CLIENT_CPUS; RLIMIT_NOFILE $(ulimit -n)" >&2
n=${#SERVERS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
        run "${SERVERS[$(((k + r - 1) % n))]}" "$r"
    done
done

med() { awk -F'\t' -v i="$1" -v c="$2" '$1 == i { print $c }' "$DATA" | median; }
mib() { awk -v k="$1" 'BEGIN { if (k == "n/a") print k; else printf "%.1f", k / 1024 }'; }

echo
echo "Medians of $ROUNDS rounds; $N connections; server on CPU(s) $SCPUS ($WORKERS worker(s))"
echo
echo "| server | RSS idle (MiB) | RSS with $N connections (MiB) | bytes per connection | connections still served |"
echo "|---|---:|---:|---:|---:|"
for impl in "${SERVERS[@]}"; do
    echo "| $impl | $(mib "$(med "$impl" 3)") | $(mib "$(med "$impl" 4)") | $(med "$impl" 5) | $(med "$impl" 6) |"
done
case " ${SERVERS[*]} " in *" may "*)
    echo
    echo "| may vs | RSS with connections, may/peer | bytes per connection, may/peer |"
    echo "|---|---:|---:|"
    for impl in "${SERVERS[@]}"; do
        [ "$impl" = may ] && continue
        echo "| $impl | $(ratio "$(med may 4)" "$(med "$impl" 4)") | $(ratio "$(med may 5)" "$(med "$impl" 5)") |"
    done
    ;;
esac
echo
echo "(client output: $LOG; one line per run: $DATA)"
