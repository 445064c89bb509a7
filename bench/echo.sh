#!/usr/bin/env bash
# bench/echo.sh - TCP echo round trips of examples/echo.c against its Go
# peer (bench/go/echo, a goroutine per connection), both driven by the same
# load generator, examples/echo_client.  Never part of the tests.
#
#   bench/echo.sh
#   ECHO_PERF=1 bench/echo.sh   then count each server's system calls per
#                               round trip and profile may (perf), 64 x 64 B
#
# Throughput: each server gets 2 workers (may: MAY_WORKERS=2; Go:
# GOMAXPROCS=2) and listens on 127.0.0.1 only.  With 4 or more CPUs the
# server is pinned with taskset to CPUs 0,1 and the client to the others;
# with fewer, server and client share every CPU (the client's CPU competes
# with the server's, so round trips/s are the pair's; the server's CPU time
# per round trip is the figure to compare).  Runs, each after a 1 s
# warm-up: 64 and 1000 connections x 64-byte and 4 KiB messages,
# ECHO_BENCH_SECS (5) seconds each.
#
# Latency: one connection, 64-byte messages, server (1 worker /
# GOMAXPROCS=1) and client (1 worker) both pinned to the same CPU
# (ECHO_LAT_CPU, default 0): a cross-CPU wake-up on a VM costs tens of
# microseconds and would swamp the difference.  Mean, p50 and p99 round
# trip from echo_client.
#
# ECHO_ROUNDS (3) rounds, each running every server in turn (the order
# alternates); printed per run and as medians: round trips/s, latency
# p50/p99 (and the mean for the latency case), the server's CPU time per
# round trip (utime+stime from /proc/PID/stat around the run), and how busy
# the server and the client were.  The machine may be shared: each run first
# waits for it to be quiet (bench/io_lib.sh: wait_quiet), measures the CPU
# other processes used meanwhile, and is repeated (BENCH_RETRIES, 2, times
# at most) when that was over BENCH_CLEAN_PCT (10) percent of a CPU; the
# cleanest try counts.
#
# ECHO_FLOOR=1 adds a third server, bench/floor/floor.c in echo mode (one
# recv and one send per read on epoll, nothing else): the kernel's share of
# a round trip alone, as a yardstick for the other two.
#
# Environment: ECHO_ROUNDS=3 ECHO_BENCH_SECS=5 ECHO_SERVER_CPUS
# ECHO_CLIENT_CPUS ECHO_LAT_CPU=0 ECHO_PORT=19080 (Go: +1, floor: +2) ECHO_FLOOR=0
# BENCH_BUILD_DIR=build/bench-echo BENCH_RETRIES=2 BENCH_CLEAN_PCT=10
# BENCH_QUIET_WAIT=20 BENCH_QUIET_TOTAL=180.  Installs Go when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-echo}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ROUNDS=${ECHO_ROUNDS:-3}
SECS=${ECHO_BENCH_SECS:-5}
PORT=${ECHO_PORT:-19080}
LCPU=${ECHO_LAT_CPU:-0}
NCPU=$(nproc)
# shellcheck source=bench/io_lib.sh
. "$ROOT/bench/io_lib.sh"
if [ "$NCPU" -ge 4 ]; then
    SCPUS=${ECHO_SERVER_CPUS:-0,1}
    CCPUS=${ECHO_CLIENT_CPUS:-$(seq -s, 2 $((NCPU - 1)))}
else
    SCPUS=${ECHO_SERVER_CPUS:-$(seq -s, 0 $((NCPU - 1)))}
    CCPUS=${ECHO_CLIENT_CPUS:-$SCPUS}
fi
CWORKERS=$(count_cpus "$CCPUS")

die() { echo "echo.sh: $*" >&2; exit 1; }

need go golang-go

echo "== building examples/echo and examples/echo_client (Release) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_EXAMPLES=ON -DMAY_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$NCPU" --target echo echo_client >/dev/null ||
    die "building the examples failed"
echo "== building bench/go/echo with $(go version | cut -d' ' -f3)" >&2
gobuild echo "$BUILD/go-echo"
CLIENT=$BUILD/examples/echo_client
IMPLS=(may go)
if [ "${ECHO_FLOOR:-0}" = 1 ]; then
    ${CC:-cc} -O2 -Wall -Wextra -pthread -o "$BUILD/floor" "$ROOT/bench/floor/floor.c" ||
        die "building bench/floor/floor.c failed"
    IMPLS+=(floor)
fi

LOG=$BUILD/echo-results.log
DATA=$BUILD/echo-results.tsv # impl conns size round rps p50 p99 mean ns/rt other% server% client% (% of one CPU)
: >"$LOG"
: >"$DATA"
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# client cpus workers port conns size secs: echo_client pinned, bounded
client() {
    MAY_WORKERS=$2 timeout $(($6 + 60)) taskset -c "$1" "$CLIENT" "127.0.0.1:$3" "$4" "$5" "$6"
}

# field <output> <key>: the value after the key on the latency line
field() { echo "$1" | awk -v k="$2" '$1 == "latency_us" { for (i = 2; i < NF; i += 2) if ($i == k) print $(i + 1) }'; }

# run impl port conns size round ccpus cworkers.  A run during which other
# processes used more than BENCH_CLEAN_PCT (10) percent of a CPU is
# repeated, BENCH_RETRIES (2) times at most; the one with the least foreign
# load is kept.
run() {
    local impl=$1 port=$2 conns=$3 size=$4 round=$5 ccpus=$6 cw=$7
    local out rts rps p50 p99 mean ns other spct cpct
    local try best=999999 row=
    for ((try = 0; try <= ${BENCH_RETRIES:-2}; try++)); do
        client "$ccpus" "$cw" "$port" "$conns" "$size" 1 >/dev/null 2>&1 || true # warm-up
        wait_quiet
        measure "$BUILD/client.out" client "$ccpus" "$cw" "$port" "$conns" "$size" "$SECS" ||
            die "echo_client failed against $impl: $(cat "$BUILD/client.out")"
        out=$M_OUT other=$M_OTHER spct=$M_SPCT cpct=$M_CPCT
        { echo "--- round $round: $impl c=$conns size=$size client on $ccpus (try $((try + 1)))"; echo "$out"
          echo "server cpu ticks: $M_SRV, client cpu ticks: $M_CLI, others: $other% of a CPU (HZ $HZ)"; } >>"$LOG"
        rts=$(echo "$out" | awk '$1 == "round_trips" { print $2 }')
        rps=$(echo "$out" | awk '$1 == "round_trips" { print $4 }')
        p50=$(field "$out" p50)
        p99=$(field "$out" p99)
        mean=$(field "$out" mean)
        ns=$(awk -v t="$M_SRV" -v hz="$HZ" -v n="$rts" 'BEGIN { printf "%.0f", t * 1e9 / hz / n }')
        printf '   round %d  %-4s c=%-5s %5s B  %9s rt/s  p50 %7s us  p99 %7s us  mean %7s us  server CPU %6s ns/rt  (CPU busy: server %s%%, client %s%%, others %s%%)\n' \
            "$round" "$impl" "$conns" "$size" "$rps" "$p50" "$p99" "$mean" "$ns" "$spct" "$cpct" "$other" >&2
        if [ "$other" -lt "$best" ]; then
            best=$other
            row=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$impl" "$conns" "$size" "$round" "$rps" \
                "$p50" "$p99" "$mean" "$ns" "$other" "$spct" "$cpct")
        fi
        [ "$other" -le "${BENCH_CLEAN_PCT:-10}" ] && break
        [ "$try" -lt "${BENCH_RETRIES:-2}" ] && echo "   (others used $other% of a CPU: again)" >&2
    done
    echo "$row" >>"$DATA"
}

# serve impl port cpus workers
serve() {
    local impl=$1 port=$2 cpus=$3 workers=$4 life=$((4 * (${BENCH_RETRIES:-2} + 1) * (SECS + 2 + QUIET_MAX) + 60))
    case $impl in
    may) MAY_WORKERS=$workers taskset -c "$cpus" "$BUILD/examples/echo" "127.0.0.1:$port" "$life" >>"$LOG" 2>&1 & ;;
    go) GOMAXPROCS=$workers taskset -c "$cpus" "$BUILD/go-echo" "127.0.0.1:$port" "$life" >>"$LOG" 2>&1 & ;;
    floor) FLOOR_WORKERS=$workers taskset -c "$cpus" "$BUILD/floor" echo "$port" "$life" >>"$LOG" 2>&1 & ;;
    esac
    SPID=$!
    for _ in $(seq 100); do
        "$CLIENT" "127.0.0.1:$port" 1 1 0.01 >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "$impl server did not come up on port $port"
}

port_of() { case $1 in may) echo "$PORT" ;; go) echo $((PORT + 1)) ;; floor) echo $((PORT + 2)) ;; esac; }

echo "== $ROUNDS rounds; throughput: server on CPU(s) $SCPUS (2 workers), client on CPU(s) $CCPUS" \
    "($CWORKERS workers), ${SECS}s per run; latency: 1 connection, server and client on CPU $LCPU ($NCPU CPUs)" >&2
NI=${#IMPLS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < NI; k++)); do
        impl=${IMPLS[$(((k + r - 1) % NI))]}
        serve "$impl" "$(port_of "$impl")" "$SCPUS" 2
        for c in 64 1000; do
            for s in 64 4096; do
                run "$impl" "$(port_of "$impl")" "$c" "$s" "$r" "$CCPUS" "$CWORKERS"
            done
        done
        stop
    done
    for ((k = 0; k < NI; k++)); do
        impl=${IMPLS[$(((k + r) % NI))]}
        serve "$impl" "$(port_of "$impl")" "$LCPU" 1
        run "$impl" "$(port_of "$impl")" 1 64 "$r" "$LCPU" 1
        stop
    done
done

if [ "${ECHO_PERF:-0}" = 1 ]; then
    # After the rounds, not in the tables: one more 64 x 64 B run of each
    # server under `perf stat` (system calls per round trip), and one of
    # may under `perf record -g`.
    command -v perf >/dev/null 2>&1 || die "ECHO_PERF=1 needs perf (Debian: linux-perf)"
    echo >&2
    echo "== system calls per round trip (perf stat, ${SECS}s): 64 connections x 64 B, and 1 connection on CPU $LCPU" >&2
    for impl in "${IMPLS[@]}"; do
        for c in 64 1; do
            if [ "$c" = 64 ]; then
                set -- "$SCPUS" 2 "$CCPUS" "$CWORKERS"
            else
                set -- "$LCPU" 1 "$LCPU" 1
            fi
            serve "$impl" "$(port_of "$impl")" "$1" "$2"
            client "$3" "$4" "$(port_of "$impl")" "$c" 64 1 >/dev/null 2>&1 || true
            wait_quiet
            syscall_counts "$SPID" "$SECS.6" >"$BUILD/syscalls-$impl-$c.txt" &
            ppid=$!
            sleep 0.2
            out=$(client "$3" "$4" "$(port_of "$impl")" "$c" 64 "$SECS" 2>&1) || true
            wait "$ppid" || true
            stop
            rts=$(echo "$out" | awk '$1 == "round_trips" { print $2 }')
            if [ -z "$rts" ] || [ "$rts" -le 0 ]; then continue; fi
            echo "   $impl c=$c ($rts round trips): $(awk -v n="$rts" '$2 > 0 { printf "%s %.2f  ", $1, $2 / n }' "$BUILD/syscalls-$impl-$c.txt")" >&2
        done
    done
    serve may "$PORT" "$SCPUS" 2
    client "$CCPUS" "$CWORKERS" "$PORT" 64 64 1 >/dev/null 2>&1 || true
    wait_quiet
    perf record -g -o "$BUILD/perf-echo-64.data" -p "$SPID" -- sleep "$SECS" >/dev/null 2>&1 &
    ppid=$!
    client "$CCPUS" "$CWORKERS" "$PORT" 64 64 "$SECS" >/dev/null 2>&1 || true
    wait "$ppid" || true
    stop
    echo "== perf: may, 64 connections x 64 B (perf report -i $BUILD/perf-echo-64.data)" >&2
    perf report -i "$BUILD/perf-echo-64.data" --no-children --percent-limit 1 --stdio \
        -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 >&2
    perf report -i "$BUILD/perf-echo-64.data" --no-children --sort dso --stdio \
        -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8 >&2
fi

[ -s "$DATA" ] || exit 0 # ECHO_ROUNDS=0: only the profiles

pratio() { # conns size column: median over the rounds of may/go in that round
    awk -F'\t' -v c="$1" -v s="$2" -v k="$3" '$2 == c && $3 == s && $1 == "may" { a[$4] = $k }
        $2 == c && $3 == s && $1 == "go" { b[$4] = $k }
        END { for (r in a) if ((r in b) && a[r] + 0 > 0 && b[r] + 0 > 0) printf "%.4f\n", a[r] / b[r] }' "$DATA" |
        sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2];
                                             else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() { # impl conns size column(5 rps, 6 p50, 7 p99, 8 mean, 9 ns, 10 others%, 11 server%, 12 client%)
    awk -F'\t' -v i="$1" -v c="$2" -v s="$3" -v k="$4" '$1 == i && $2 == c && $3 == s { print $k }' "$DATA" | median
}
medf() { # like med, keeping one decimal
    awk -F'\t' -v i="$1" -v c="$2" -v s="$3" -v k="$4" '$1 == i && $2 == c && $3 == s { print $k }' "$DATA" |
        sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2];
                                             else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

echo
echo "Medians of $ROUNDS rounds.  Throughput: server on CPU(s) $SCPUS with 2 workers, client on CPU(s) $CCPUS"
echo
echo "| server | connections | message (bytes) | round trips/s | p50 (us) | p99 (us) | server CPU (ns/round trip) | server busy (% of a CPU) | client busy (%) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in 64 1000; do
    for s in 64 4096; do
        for impl in "${IMPLS[@]}"; do
            echo "| $impl | $c | $s | $(med $impl $c $s 5) | $(medf $impl $c $s 6) | $(medf $impl $c $s 7) | $(med $impl $c $s 9) | $(med $impl $c $s 11) | $(med $impl $c $s 12) |"
        done
    done
done
echo
echo "| connections | message | round trips/s may/Go | (per round) | server CPU per round trip may/Go | (per round) |"
echo "|---:|---:|---:|---:|---:|---:|"
for c in 64 1000; do
    for s in 64 4096; do
        echo "| $c | $s | $(ratio "$(med may $c $s 5)" "$(med go $c $s 5)") | $(pratio $c $s 5) |" \
            "$(ratio "$(med may $c $s 9)" "$(med go $c $s 9)") | $(pratio $c $s 9) |"
    done
done
echo
echo "(ratios of the medians, and in brackets the median of the ratios within each round)"
case " ${IMPLS[*]} " in *" floor "*)
    echo
    echo "floor/Go server CPU per round trip (the kernel's share alone):" \
        "$(for c in 64 1000; do for s in 64 4096; do printf '%sx%s B %s  ' $c $s "$(ratio "$(med floor $c $s 9)" "$(med go $c $s 9)")"; done; done)" ;;
esac
echo
echo "Latency: 1 connection, 64-byte messages, server (1 worker) and client both on CPU $LCPU"
echo
echo "| server | round trips/s | mean (us) | p50 (us) | p99 (us) | server CPU (ns/round trip) |"
echo "|---|---:|---:|---:|---:|---:|"
for impl in "${IMPLS[@]}"; do
    echo "| $impl | $(med $impl 1 64 5) | $(medf $impl 1 64 8) | $(medf $impl 1 64 6) | $(medf $impl 1 64 7) | $(med $impl 1 64 9) |"
done
echo
echo "may/Go mean latency: $(ratio "$(medf may 1 64 8)" "$(medf go 1 64 8)") (per round: $(pratio 1 64 8)), p50: $(ratio "$(medf may 1 64 6)" "$(medf go 1 64 6)"), p99: $(ratio "$(medf may 1 64 7)" "$(medf go 1 64 7)"), server CPU per round trip: $(ratio "$(med may 1 64 9)" "$(med go 1 64 9)")"
echo
echo "Other processes used a median of $(cut -f10 "$DATA" | median)% and at most $(cut -f10 "$DATA" | sort -n | tail -1)% of a CPU during the runs."
echo "(raw client output: $LOG; one line per run: $DATA)"
