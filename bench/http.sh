#!/usr/bin/env bash
# bench/http.sh - HTTP/1.1 plaintext throughput of examples/http.c against
# three peers serving the same 13-byte "Hello, World!" at /plaintext:
#   go      Go net/http                       (bench/go/http)
#   goraw   a minimal raw Go server (net, a goroutine per connection,
#           hand-rolled parsing, one write per read)   (bench/go/httpraw)
#   nginx   Debian's nginx, `return 200` (bench/nginx/nginx.conf.in)
#   base    examples/http.c at git revision HTTP_BASE (default 2e0b3fc, the
#           self-contained server before libmay_http): the A/B of a change
# and a yardstick:
#   floor   bench/floor/floor.c: epoll, one recv and one send per
#           read, no parsing, a constant Date: the kernel's share alone
# measured with wrk.  Never part of the tests.
#
#   bench/http.sh                   every server, HTTP_ROUNDS rounds
#   bench/http.sh may nginx         a subset
#   HTTP_PERF=1 bench/http.sh       then count each server's system calls
#                                   per request and profile may (perf)
#
# CPUs: the servers are pinned with taskset to HTTP_SERVER_CPUS (default
# CPU 0) and get as many workers as CPUs there (may: MAY_WORKERS, Go:
# GOMAXPROCS, nginx: worker_processes); wrk is pinned to HTTP_WRK_CPUS
# (default: every other CPU) with one thread per CPU.  On the 2-CPU
# machine of docs/BENCHMARKS.md that is: server alone on CPU 0 with one
# worker, wrk -t1 alone on CPU 1, so the client never steals the server's
# CPU and the server's CPU time per request is comparable.  For the shared
# setup of the issue (wrk -t2, server with 2 workers, both on both CPUs):
# HTTP_SERVER_CPUS=0,1 HTTP_WRK_CPUS=0,1.  Everything listens on 127.0.0.1
# only.
#
# Each round starts every server in turn (the order rotates from round to
# round, so no server always goes first) and runs against /plaintext:
#   keep-alive  wrk -c64 -d5s --latency
#   pipelined   the same with bench/pipeline.lua, 16 requests per write
# each after a 1 s warm-up, every run under `timeout`.  Printed per run and
# as medians over the rounds: requests/s, latency p50/p99 (wrk --latency),
# the server's CPU time per request (utime+stime from /proc/PID/stat of the
# server and its children, i.e. nginx's master and workers, around the
# run), how busy the server and wrk were, and the ratios of may to each
# peer.  The machine may be shared: each run first waits for it to be quiet
# (bench/io_lib.sh: wait_quiet), measures the CPU other processes used
# meanwhile, and is repeated (BENCH_RETRIES, 2, times at most) when that
# was over BENCH_CLEAN_PCT (10) percent of a CPU; the cleanest try counts.
#
# Environment: HTTP_ROUNDS=3 HTTP_BENCH_SECS=5 HTTP_BENCH_CONNS=64
# HTTP_BENCH_DEPTH=16 HTTP_SERVER_CPUS=0 HTTP_WRK_CPUS HTTP_WRK_THREADS
# (default: the number of wrk CPUs) HTTP_PORT=18080 (peers: +1, +2, +3)
# HTTP_PERF=0 BENCH_BUILD_DIR=build/bench-http BENCH_RETRIES=2
# BENCH_CLEAN_PCT=10 BENCH_QUIET_WAIT=20 BENCH_QUIET_TOTAL=180.  Installs wrk, Go and
# nginx from Debian when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-http}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ROUNDS=${HTTP_ROUNDS:-3}
SECS=${HTTP_BENCH_SECS:-5}
CONNS=${HTTP_BENCH_CONNS:-64}
DEPTH=${HTTP_BENCH_DEPTH:-16}
PORT=${HTTP_PORT:-18080}
NCPU=$(nproc)
# shellcheck source=bench/io_lib.sh
. "$ROOT/bench/io_lib.sh"
SCPUS=${HTTP_SERVER_CPUS:-${HTTP_SERVER_CPU:-0}}
if [ -z "${HTTP_WRK_CPUS:-}" ]; then
    HTTP_WRK_CPUS=$(seq 0 $((NCPU - 1)) | grep -vxF -f <(echo "$SCPUS" | tr , '\n') | paste -sd, || true)
    [ -n "$HTTP_WRK_CPUS" ] || HTTP_WRK_CPUS=$SCPUS # a 1-CPU machine
fi
WORKERS=$(count_cpus "$SCPUS")
WRK_THREADS=${HTTP_WRK_THREADS:-$(count_cpus "$HTTP_WRK_CPUS")}
ALL_SERVERS=(may go goraw nginx floor base)
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=("${ALL_SERVERS[@]}")

die() { echo "http.sh: $*" >&2; exit 1; }

for s in "${SERVERS[@]}"; do
    case " ${ALL_SERVERS[*]} " in *" $s "*) ;; *) die "unknown server '$s' (${ALL_SERVERS[*]})" ;; esac
done

need wrk wrk
need go golang-go
case " ${SERVERS[*]} " in *" nginx "*) need_nginx ;; esac

echo "== building examples/http (Release) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_EXAMPLES=ON -DMAY_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$NCPU" --target http >/dev/null || die "building examples/http failed"
case " ${SERVERS[*]} " in *" base "*)
    rev=${HTTP_BASE:-2e0b3fc}
    echo "== building examples/http at $rev (Release) in $BUILD/base" >&2
    rm -rf "$BUILD/base-src" && mkdir -p "$BUILD/base-src"
    git -C "$ROOT" archive "$rev" | tar -x -C "$BUILD/base-src" || die "git archive $rev failed"
    cmake -S "$BUILD/base-src" -B "$BUILD/base" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
        -DMAY_BUILD_EXAMPLES=ON -DMAY_BUILD_BENCH=OFF >/dev/null
    cmake --build "$BUILD/base" -j"$NCPU" --target http >/dev/null || die "building $rev's examples/http failed"
    cp "$BUILD/base/examples/http" "$BUILD/http-base" ;;
esac
case " ${SERVERS[*]} " in *" floor "*)
    ${CC:-cc} -O2 -Wall -Wextra -pthread -o "$BUILD/floor" "$ROOT/bench/floor/floor.c" ||
        die "building bench/floor/floor.c failed" ;;
esac
echo "== building bench/go/http and bench/go/httpraw with $(go version | cut -d' ' -f3)" >&2
gobuild http "$BUILD/go-http"
gobuild httpraw "$BUILD/go-httpraw"

LOG=$BUILD/http-results.log
DATA=$BUILD/http-results.tsv # impl mode round rps p50 p99 ns/req other% server% wrk% (% of one CPU)
: >"$LOG"
: >"$DATA"
SPID=
WATCHDOG=
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
    true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# to_us "1.23ms" -> 1230 (wrk prints us, ms or s)
to_us() {
    awk -v v="$1" 'BEGIN {
        u = v; sub(/[0-9.]+/, "", u); n = v + 0
        if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1e6; else f = 0.001
        printf "%.0f", n * f }'
}

wrk_run() { # secs url extra...: wrk pinned, bounded in time
    local secs=$1 url=$2
    shift 2
    local extra=()
    [ $# -gt 0 ] && extra=(-s "$ROOT/bench/pipeline.lua")
    timeout $((secs + 30)) taskset -c "$HTTP_WRK_CPUS" wrk -t"$WRK_THREADS" -c"$CONNS" \
        -d"${secs}s" --latency "${extra[@]}" "$url" ${extra:+-- "$DEPTH"}
}

# run <impl> <mode> <port> <round>: one wrk run against a server already
# up.  A run during which other processes used more than BENCH_CLEAN_PCT
# (10) percent of a CPU is repeated, BENCH_RETRIES (2) times at most; the
# one with the least foreign load is kept.
run() {
    local impl=$1 mode=$2 port=$3 round=$4 url extra=() out reqs rps p50 p99 ns
    local other spct cpct try best=999999 row=
    url=http://127.0.0.1:$port/plaintext
    [ "$mode" = pipelined ] && extra=(pipe)
    for ((try = 0; try <= ${BENCH_RETRIES:-2}; try++)); do
        wrk_run 1 "$url" "${extra[@]}" >/dev/null 2>&1 || true # warm-up, not measured
        wait_quiet
        measure "$BUILD/wrk.out" wrk_run "$SECS" "$url" "${extra[@]}" ||
            die "wrk failed against $impl: $(cat "$BUILD/wrk.out")"
        out=$M_OUT other=$M_OTHER spct=$M_SPCT cpct=$M_CPCT
        { echo "--- round $round: $impl $mode (try $((try + 1)))"; echo "$out"
          echo "server cpu ticks: $M_SRV, wrk cpu ticks: $M_CLI, others: $other% of a CPU (HZ $HZ)"; } >>"$LOG"
        reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
        rps=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
        p50=$(to_us "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
        p99=$(to_us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
        [ "$p50" = 0 ] && p50=n/a # wrk's histogram sometimes prints 0 when pipelining
        [ "$p99" = 0 ] && p99=n/a
        if grep 'Non-2xx\|Socket errors' <<<"$out" >/dev/null; then
            echo "   note: $impl $mode: $(echo "$out" | grep 'Non-2xx\|Socket errors' | tr -s ' ')" >&2
        fi
        ns=$(awk -v t="$M_SRV" -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.0f", t * 1e9 / hz / n }')
        printf '   round %d  %-5s %-10s %9s req/s  p50 %6s us  p99 %6s us  server CPU %5s ns/req  (CPU busy: server %s%%, wrk %s%%, others %s%%)\n' \
            "$round" "$impl" "$mode" "$rps" "$p50" "$p99" "$ns" "$spct" "$cpct" "$other" >&2
        if [ "$other" -lt "$best" ]; then
            best=$other
            row=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$impl" "$mode" "$round" "$rps" "$p50" "$p99" "$ns" \
                "$other" "$spct" "$cpct")
        fi
        [ "$other" -le "${BENCH_CLEAN_PCT:-10}" ] && break
        [ "$try" -lt "${BENCH_RETRIES:-2}" ] && echo "   (others used $other% of a CPU: again)" >&2
    done
    echo "$row" >>"$DATA"
}

# serve <impl>: start the server pinned, wait until it answers
serve() {
    # seconds: the servers end themselves
    http_serve "$1" $((2 * (${BENCH_RETRIES:-2} + 1) * (SECS + 2 + QUIET_MAX) + 120)) 4096
}

pratio() { # peer mode column: median over the rounds of may/peer in that round
    awk -F'\t' -v i="$1" -v m="$2" -v c="$3" '$2 == m && $1 == "may" { a[$3] = $c }
        $2 == m && $1 == i { b[$3] = $c }
        END { for (r in a) if ((r in b) && a[r] + 0 > 0 && b[r] + 0 > 0) printf "%.4f\n", a[r] / b[r] }' "$DATA" |
        sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2];
                                             else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() { # impl mode column(4 rps, 5 p50, 6 p99, 7 ns, 8 others%, 9 server%, 10 wrk%)
    awk -F'\t' -v i="$1" -v m="$2" -v c="$3" '$1 == i && $2 == m { print $c }' "$DATA" | median
}

echo "== ${SERVERS[*]}: $ROUNDS rounds of wrk -t$WRK_THREADS -c$CONNS -d${SECS}s (keep-alive, pipelined x$DEPTH);" \
    "server on CPU(s) $SCPUS with $WORKERS worker(s), wrk on CPU(s) $HTTP_WRK_CPUS ($NCPU CPUs)" >&2
n=${#SERVERS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
        impl=${SERVERS[$(((k + r - 1) % n))]}
        serve "$impl"
        run "$impl" keep-alive "$(port_of "$impl")" "$r"
        run "$impl" pipelined "$(port_of "$impl")" "$r"
        stop
    done
done

if [ "${HTTP_PERF:-0}" = 1 ]; then
    # After the rounds, not in the tables: one more keep-alive run of each
    # server under `perf stat` (system calls per request), and a keep-alive
    # and a pipelined run of may under `perf record -g` (where its CPU goes).
    command -v perf >/dev/null 2>&1 || die "HTTP_PERF=1 needs perf (Debian: linux-perf)"
    echo >&2
    echo "== system calls per keep-alive request (perf stat -e syscalls:sys_enter_*, ${SECS}s)" >&2
    for impl in "${SERVERS[@]}"; do
        serve "$impl"
        url=http://127.0.0.1:$(port_of "$impl")/plaintext
        wrk_run 1 "$url" >/dev/null 2>&1 || true
        wait_quiet
        pids=$(echo "$SPID" "$(pgrep -P "$SPID" || true)" | tr ' \n' ,, | sed 's/,*$//')
        syscall_counts "$pids" "$SECS.6" >"$BUILD/syscalls-$impl.txt" &
        ppid=$!
        sleep 0.2
        out=$(wrk_run "$SECS" "$url" 2>&1) || true
        wait "$ppid" || true
        stop
        reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
        if [ -z "$reqs" ] || [ "$reqs" -le 0 ]; then continue; fi
        # perf counts from 0.2 s before wrk starts to 0.4 s after it ends: all its requests
        echo "   $impl ($reqs requests): $(awk -v n="$reqs" '$2 > 0 { printf "%s %.2f  ", $1, $2 / n }' "$BUILD/syscalls-$impl.txt")" >&2
    done
    case " ${SERVERS[*]} " in *" may "*)
        for mode in keep-alive pipelined; do
            extra=()
            [ "$mode" = pipelined ] && extra=(pipe)
            serve may
            wrk_run 1 "http://127.0.0.1:$PORT/plaintext" "${extra[@]}" >/dev/null 2>&1 || true
            wait_quiet
            perf record -g -o "$BUILD/perf-http-$mode.data" -p "$SPID" -- sleep "$SECS" >/dev/null 2>&1 &
            ppid=$!
            wrk_run "$SECS" "http://127.0.0.1:$PORT/plaintext" "${extra[@]}" >/dev/null 2>&1 || true
            wait "$ppid" || true
            stop
            echo "== perf: may, $mode (perf report -i $BUILD/perf-http-$mode.data)" >&2
            perf report -i "$BUILD/perf-http-$mode.data" --no-children --percent-limit 1 --stdio \
                -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 >&2
            perf report -i "$BUILD/perf-http-$mode.data" --no-children --sort dso --stdio \
                -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8 >&2
        done
        ;;
    esac
fi

[ -s "$DATA" ] || exit 0 # HTTP_ROUNDS=0: only the profiles

echo
echo "Medians of $ROUNDS rounds; server on CPU(s) $SCPUS ($WORKERS worker(s)), wrk -t$WRK_THREADS -c$CONNS on CPU(s) $HTTP_WRK_CPUS"
echo
echo "| server | mode | requests/s | p50 (us) | p99 (us) | server CPU (ns/request) | server busy (% of a CPU) | wrk busy (%) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for mode in keep-alive pipelined; do
    for impl in "${SERVERS[@]}"; do
        echo "| $impl | $mode | $(med "$impl" $mode 4) | $(med "$impl" $mode 5) | $(med "$impl" $mode 6) | $(med "$impl" $mode 7) | $(med "$impl" $mode 9) | $(med "$impl" $mode 10) |"
    done
done
case " ${SERVERS[*]} " in *" may "*)
    echo
    echo "| may vs | mode | req/s may/peer | (per round) | CPU/request may/peer | (per round) |"
    echo "|---|---|---:|---:|---:|---:|"
    for mode in keep-alive pipelined; do
        for impl in "${SERVERS[@]}"; do
            [ "$impl" = may ] && continue
            echo "| $impl | $mode | $(ratio "$(med may $mode 4)" "$(med "$impl" $mode 4)") | $(pratio "$impl" $mode 4) |" \
                "$(ratio "$(med may $mode 7)" "$(med "$impl" $mode 7)") | $(pratio "$impl" $mode 7) |"
        done
    done
    echo
    echo "(ratios of the medians, and in brackets the median of the ratios within each round)"
    ;;
esac
echo
echo "Other processes used a median of $(cut -f8 "$DATA" | median)% and at most $(cut -f8 "$DATA" | sort -n | tail -1)% of a CPU during the runs."
echo "(raw wrk output: $LOG; one line per run: $DATA)"
