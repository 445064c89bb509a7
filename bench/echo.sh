#!/usr/bin/env bash
# bench/echo.sh - TCP echo round trips of examples/echo.c against its Go
# peer (bench/go/echo, a goroutine per connection), both driven by the same
# load generator, examples/echo_client.  Never part of the tests.
#
#   bench/echo.sh
#   ECHO_PERF=1 bench/echo.sh   then count each server's system calls per
#                               round trip and profile may (perf), 64 x 64 B
#   ECHO_BUFS="4096 16384 65536" ECHO_FLOOR=1 ECHO_CONNS=64 ECHO_LATENCY=0 \
#   ECHO_SERVER_CPUS=0 ECHO_CLIENT_CPUS=1 bench/echo.sh
#                               every server at three read buffer sizes,
#                               server on CPU 0 and client on CPU 1
#
# Read buffer: each server reads up to ECHO_BUF bytes at a time, the same for
# all of them (examples/echo.c is built with -DECHO_BUF=N, through CMake's
# MAY_ECHO_BUF; Go's peer and the floor take the size as an argument and
# FLOOR_BUF).  ECHO_BUFS, a list, runs every server at each size, all
# interleaved in every round (servers are then named may-16k, go-16k, ...).
#
# Throughput: each server gets ECHO_SERVER_WORKERS workers (may:
# MAY_WORKERS; Go: GOMAXPROCS; floor: threads), by default one per CPU it is
# pinned to, and listens on 127.0.0.1 only.  With 4 or more CPUs the server
# is pinned with taskset to CPUs 0,1 and the client to the others; with
# fewer, server and client share every CPU (the client's CPU competes with
# the server's, so round trips/s are the pair's; the server's CPU time per
# round trip is the figure to compare) unless ECHO_SERVER_CPUS /
# ECHO_CLIENT_CPUS say otherwise.  Runs, each after
# a 1 s warm-up: ECHO_CONNS (64 1000) connections x ECHO_SIZES (64 4096)
# bytes per message, ECHO_BENCH_SECS (5) seconds each.
#
# Latency (ECHO_LATENCY=1; 0 skips it): one connection, 64-byte messages,
# server (1 worker / GOMAXPROCS=1) and client (1 worker) both pinned to the
# same CPU (ECHO_LAT_CPU, default 0): a cross-CPU wake-up on a VM costs tens
# of microseconds and would swamp the difference.  Mean, p50 and p99 round
# trip from echo_client.
#
# ECHO_ROUNDS (3) rounds, each running every server in turn (the order
# rotates); printed per run and as medians: round trips/s, latency
# p50/p99 (and the mean for the latency case), the server's CPU time per
# round trip (utime+stime from /proc/PID/stat around the run), and how busy
# the server and the client were; then the ratios of may to Go at the same
# buffer size, as the median of the per-round ratios too, so that each
# ratio is taken under the same load.  The machine may be shared: each run
# first waits for it to be quiet (bench/io_lib.sh: wait_quiet), measures the
# CPU other processes used meanwhile, and is repeated (BENCH_RETRIES, 2,
# times at most) when that was over BENCH_CLEAN_PCT (10) percent of a CPU;
# the cleanest try counts.
#
# ECHO_FLOOR=1 adds a third server, bench/floor/floor.c in echo mode (one
# recv and one send per read on epoll, nothing else): the kernel's share of
# a round trip alone, as a yardstick for the other two.
#
# Environment: ECHO_ROUNDS=3 ECHO_BENCH_SECS=5 ECHO_BUFS (examples/echo.c's
# default) ECHO_CONNS="64 1000" ECHO_SIZES="64 4096" ECHO_LATENCY=1
# ECHO_SERVER_CPUS ECHO_CLIENT_CPUS ECHO_SERVER_WORKERS ECHO_LAT_CPU=0
# ECHO_PORT=19080 (the servers take consecutive ports from there)
# ECHO_FLOOR=0 ECHO_PERF=0 ECHO_PERF_SIZE=64 BENCH_BUILD_DIR=build/bench-echo
# BENCH_RETRIES=2 BENCH_CLEAN_PCT=10 BENCH_QUIET_WAIT=20
# BENCH_QUIET_TOTAL=180.  Installs Go when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-echo}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ROUNDS=${ECHO_ROUNDS:-3}
SECS=${ECHO_BENCH_SECS:-5}
PORT=${ECHO_PORT:-19080}
LCPU=${ECHO_LAT_CPU:-0}
NCPU=$(nproc)
# The example's own buffer size, from its source: the default of ECHO_BUFS.
DEFAULT_BUF=$(awk '$1 == "#define" && $2 == "ECHO_BUF" { print $3; exit }' "$ROOT/examples/echo.c")
read -r -a BUFS <<<"${ECHO_BUFS:-$DEFAULT_BUF}"
read -r -a CONNS <<<"${ECHO_CONNS:-64 1000}"
read -r -a SIZES <<<"${ECHO_SIZES:-64 4096}"
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
# One worker per server CPU by default: two workers on one CPU take turns,
# and may's idle spin then holds the CPU the other worker needs
# (docs/BENCHMARKS.md, "Echo: the read buffer").
SWORKERS=${ECHO_SERVER_WORKERS:-$(count_cpus "$SCPUS")}

die() { echo "echo.sh: $*" >&2; exit 1; }

need go golang-go

for b in "${BUFS[@]}"; do
    case $b in '' | *[!0-9]*) die "ECHO_BUFS: '$b' is not a size in bytes" ;; esac
    if [ "$b" -lt 1 ] || [ "$b" -gt 65536 ]; then die "ECHO_BUFS: $b is not in 1..65536"; fi
done
# One echo binary per buffer size (only examples/echo.c is rebuilt), then
# the default again, so that $BUILD/examples/echo is the example as it is.
echo "== building examples/echo (read buffer: ${BUFS[*]} bytes) and examples/echo_client (Release) in $BUILD" >&2
for b in "${BUFS[@]}" ""; do
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
        -DMAY_BUILD_EXAMPLES=ON -DMAY_BUILD_BENCH=OFF -DMAY_ECHO_BUF="$b" >/dev/null
    cmake --build "$BUILD" -j"$NCPU" --target echo echo_client >/dev/null ||
        die "building the examples failed"
    [ -n "$b" ] && cp "$BUILD/examples/echo" "$BUILD/echo-$b"
done
echo "== building bench/go/echo with $(go version | cut -d' ' -f3)" >&2
gobuild echo "$BUILD/go-echo"
CLIENT=$BUILD/examples/echo_client
KINDS=(may go)
if [ "${ECHO_FLOOR:-0}" = 1 ]; then
    ${CC:-cc} -O2 -Wall -Wextra -pthread -o "$BUILD/floor" "$ROOT/bench/floor/floor.c" ||
        die "building bench/floor/floor.c failed"
    KINDS+=(floor)
fi
# The servers: a kind at a buffer size each, named by the kind alone when
# there is one size.  name_of kind buf; kind_of / buf_of name; port_of name.
name_of() { if [ ${#BUFS[@]} = 1 ]; then echo "$1"; else echo "$1-$(($2 / 1024))k"; fi; }
IMPLS=()
declare -A KIND_OF BUF_OF PORT_OF
for b in "${BUFS[@]}"; do
    [ "$b" -ge 1024 ] || [ ${#BUFS[@]} = 1 ] || die "ECHO_BUFS: with several sizes, each is at least 1024"
    for k in "${KINDS[@]}"; do
        n=$(name_of "$k" "$b")
        PORT_OF[$n]=$((PORT + ${#IMPLS[@]}))
        KIND_OF[$n]=$k BUF_OF[$n]=$b
        IMPLS+=("$n")
    done
done
port_of() { echo "${PORT_OF[$1]}"; }

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
    local impl=$1 port=$2 cpus=$3 workers=$4 buf=${BUF_OF[$1]}
    local life=$(((${#CONNS[@]} * ${#SIZES[@]} + 1) * (${BENCH_RETRIES:-2} + 1) * (SECS + 2 + QUIET_MAX) + 60))
    case ${KIND_OF[$impl]} in
    may) MAY_WORKERS=$workers taskset -c "$cpus" "$BUILD/echo-$buf" "127.0.0.1:$port" "$life" >>"$LOG" 2>&1 & ;;
    go) GOMAXPROCS=$workers taskset -c "$cpus" "$BUILD/go-echo" "127.0.0.1:$port" "$life" "$buf" >>"$LOG" 2>&1 & ;;
    floor) FLOOR_BUF=$buf FLOOR_WORKERS=$workers taskset -c "$cpus" "$BUILD/floor" echo "$port" "$life" >>"$LOG" 2>&1 & ;;
    esac
    SPID=$!
    for _ in $(seq 100); do
        "$CLIENT" "127.0.0.1:$port" 1 1 0.01 >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "$impl server did not come up on port $port"
}

echo "== $ROUNDS rounds of ${IMPLS[*]}; throughput: server on CPU(s) $SCPUS ($SWORKERS workers)," \
    "client on CPU(s) $CCPUS ($CWORKERS workers), ${SECS}s per run$([ "${ECHO_LATENCY:-1}" = 1 ] &&
        echo "; latency: 1 connection, server and client on CPU $LCPU") ($NCPU CPUs)" >&2
NI=${#IMPLS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < NI; k++)); do
        impl=${IMPLS[$(((k + r - 1) % NI))]}
        serve "$impl" "$(port_of "$impl")" "$SCPUS" "$SWORKERS"
        for c in "${CONNS[@]}"; do
            for s in "${SIZES[@]}"; do
                run "$impl" "$(port_of "$impl")" "$c" "$s" "$r" "$CCPUS" "$CWORKERS"
            done
        done
        stop
    done
    [ "${ECHO_LATENCY:-1}" = 1 ] || continue
    for ((k = 0; k < NI; k++)); do
        impl=${IMPLS[$(((k + r) % NI))]}
        serve "$impl" "$(port_of "$impl")" "$LCPU" 1
        run "$impl" "$(port_of "$impl")" 1 64 "$r" "$LCPU" 1
        stop
    done
done

if [ "${ECHO_PERF:-0}" = 1 ]; then
    # After the rounds, not in the tables: one more 64 x ECHO_PERF_SIZE run
    # of each server under `perf stat` (system calls per round trip), and
    # one of each may server under `perf record -g`.
    command -v perf >/dev/null 2>&1 || die "ECHO_PERF=1 needs perf (Debian: linux-perf)"
    PS=${ECHO_PERF_SIZE:-64}
    echo >&2
    echo "== system calls per round trip (perf stat, ${SECS}s): 64 connections x $PS B, and 1 connection on CPU $LCPU" >&2
    for impl in "${IMPLS[@]}"; do
        for c in 64 1; do
            if [ "$c" = 64 ]; then
                set -- "$SCPUS" "$SWORKERS" "$CCPUS" "$CWORKERS"
            else
                set -- "$LCPU" 1 "$LCPU" 1
            fi
            serve "$impl" "$(port_of "$impl")" "$1" "$2"
            client "$3" "$4" "$(port_of "$impl")" "$c" "$PS" 1 >/dev/null 2>&1 || true
            wait_quiet
            syscall_counts "$SPID" "$SECS.6" >"$BUILD/syscalls-$impl-$c.txt" &
            ppid=$!
            sleep 0.2
            out=$(client "$3" "$4" "$(port_of "$impl")" "$c" "$PS" "$SECS" 2>&1) || true
            wait "$ppid" || true
            stop
            rts=$(echo "$out" | awk '$1 == "round_trips" { print $2 }')
            if [ -z "$rts" ] || [ "$rts" -le 0 ]; then continue; fi
            echo "   $impl c=$c ($rts round trips): $(awk -v n="$rts" '$2 > 0 { printf "%s %.2f  ", $1, $2 / n }' "$BUILD/syscalls-$impl-$c.txt")" >&2
        done
    done
    for impl in "${IMPLS[@]}"; do
        [ "${KIND_OF[$impl]}" = may ] || continue
        serve "$impl" "$(port_of "$impl")" "$SCPUS" "$SWORKERS"
        client "$CCPUS" "$CWORKERS" "$(port_of "$impl")" 64 "$PS" 1 >/dev/null 2>&1 || true
        wait_quiet
        perf record -g -o "$BUILD/perf-$impl-$PS.data" -p "$SPID" -- sleep "$SECS" >/dev/null 2>&1 &
        ppid=$!
        client "$CCPUS" "$CWORKERS" "$(port_of "$impl")" 64 "$PS" "$SECS" >/dev/null 2>&1 || true
        wait "$ppid" || true
        stop
        echo "== perf: $impl, 64 connections x $PS B (perf report -i $BUILD/perf-$impl-$PS.data)" >&2
        perf report -i "$BUILD/perf-$impl-$PS.data" --no-children --percent-limit 1 --stdio \
            -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 >&2
        perf report -i "$BUILD/perf-$impl-$PS.data" --no-children --sort dso --stdio \
            -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8 >&2
    done
fi

[ -s "$DATA" ] || exit 0 # ECHO_ROUNDS=0: only the profiles

pratio() { # implA implB conns size column: median over the rounds of A/B in that round
    awk -F'\t' -v x="$1" -v y="$2" -v c="$3" -v s="$4" -v k="$5" '$2 == c && $3 == s && $1 == x { a[$4] = $k }
        $2 == c && $3 == s && $1 == y { b[$4] = $k }
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
# both A B c s col: "ratio of the medians (median of the per-round ratios)"
both() { echo "$(ratio "$(med "$1" "$3" "$4" "$5")" "$(med "$2" "$3" "$4" "$5")") ($(pratio "$@"))"; }

echo
echo "Medians of $ROUNDS rounds.  Throughput: server on CPU(s) $SCPUS with $SWORKERS workers, client on CPU(s) $CCPUS;" \
    "read buffer ${BUFS[*]} bytes"
echo
echo "| server | connections | message (bytes) | round trips/s | p50 (us) | p99 (us) | server CPU (ns/round trip) | server busy (% of a CPU) | client busy (%) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in "${CONNS[@]}"; do
    for s in "${SIZES[@]}"; do
        for impl in "${IMPLS[@]}"; do
            echo "| $impl | $c | $s | $(med "$impl" "$c" "$s" 5) | $(medf "$impl" "$c" "$s" 6) | $(medf "$impl" "$c" "$s" 7) | $(med "$impl" "$c" "$s" 9) | $(med "$impl" "$c" "$s" 11) | $(med "$impl" "$c" "$s" 12) |"
        done
    done
done
echo
echo "Against Go at the same buffer size: ratio of the medians (median of the ratios within each round)"
echo
echo "| server | connections | message | round trips/s vs Go | server CPU per round trip vs Go |"
echo "|---|---:|---:|---:|---:|"
for b in "${BUFS[@]}"; do
    go=$(name_of go "$b")
    for k in "${KINDS[@]}"; do
        [ "$k" = go ] && continue
        impl=$(name_of "$k" "$b")
        for c in "${CONNS[@]}"; do
            for s in "${SIZES[@]}"; do
                echo "| $impl | $c | $s | $(both "$impl" "$go" "$c" "$s" 5) | $(both "$impl" "$go" "$c" "$s" 9) |"
            done
        done
    done
done
if [ ${#BUFS[@]} -gt 1 ]; then
    echo
    echo "Each server against itself with a ${BUFS[0]}-byte buffer (same rounds)"
    echo
    echo "| server | connections | message | round trips/s | server CPU per round trip |"
    echo "|---|---:|---:|---:|---:|"
    for b in "${BUFS[@]:1}"; do
        for k in "${KINDS[@]}"; do
            impl=$(name_of "$k" "$b") base=$(name_of "$k" "${BUFS[0]}")
            for c in "${CONNS[@]}"; do
                for s in "${SIZES[@]}"; do
                    echo "| $impl | $c | $s | $(both "$impl" "$base" "$c" "$s" 5) | $(both "$impl" "$base" "$c" "$s" 9) |"
                done
            done
        done
    done
fi
if [ "${ECHO_LATENCY:-1}" = 1 ]; then
    echo
    echo "Latency: 1 connection, 64-byte messages, server (1 worker) and client both on CPU $LCPU"
    echo
    echo "| server | round trips/s | mean (us) | p50 (us) | p99 (us) | server CPU (ns/round trip) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for impl in "${IMPLS[@]}"; do
        echo "| $impl | $(med "$impl" 1 64 5) | $(medf "$impl" 1 64 8) | $(medf "$impl" 1 64 6) | $(medf "$impl" 1 64 7) | $(med "$impl" 1 64 9) |"
    done
    for b in "${BUFS[@]}"; do
        may=$(name_of may "$b") go=$(name_of go "$b")
        echo
        echo "$may/$go mean latency: $(ratio "$(medf "$may" 1 64 8)" "$(medf "$go" 1 64 8)") (per round: $(pratio "$may" "$go" 1 64 8)), p50: $(ratio "$(medf "$may" 1 64 6)" "$(medf "$go" 1 64 6)"), p99: $(ratio "$(medf "$may" 1 64 7)" "$(medf "$go" 1 64 7)"), server CPU per round trip: $(ratio "$(med "$may" 1 64 9)" "$(med "$go" 1 64 9)")"
    done
fi
echo
echo "Other processes used a median of $(cut -f10 "$DATA" | median)% and at most $(cut -f10 "$DATA" | sort -n | tail -1)% of a CPU during the runs."
echo "(raw client output: $LOG; one line per run: $DATA)"
