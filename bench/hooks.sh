#!/usr/bin/env bash
# bench/hooks.sh - unmodified blocking client libraries in coroutines
# (libmay_hook) against Go and redis-benchmark, on private servers
# (tests/servers/with_server.sh).  Never part of the tests.
#
#   bench/hooks.sh              redis and postgres
#   bench/hooks.sh redis        one of them
#
# redis: 64 connections, SET key:<c> xxx / GET key:<c> in turn, one
# request in flight per connection, HOOKS_REDIS_N (200000) requests a run:
#   may        bench/hooks/redis_bench.c: hiredis's synchronous API
#              (redisCommand) in 64 coroutines on the default workers
#   go         bench/go/redigo: redigo in 64 goroutines (GOMAXPROCS: all)
#   redis-bm   redis-benchmark -c 64 -t set,get (its own event loop)
# postgres: 64 connections, HOOKS_PG_N (100000) queries a run, each query
# prepared once per connection:
#   may        bench/hooks/pq_bench.c: libpq's PQexecPrepared in 64 coroutines
#   go         bench/go/pgx: pgx v4 (its statement cache) in 64 goroutines
# for select1 (SELECT 1) and lookup (SELECT v FROM kv WHERE k = $1 on a
# 10 000-row table).
#
# Each round runs every client once, in an order that rotates from round to
# round (HOOKS_ROUNDS, default 5); printed per run and as medians:
# requests/s, the client's CPU per request (user+system of the client
# process, bash `time`, start-up and connecting included) and the server's
# (utime+stime of redis-server; of the postmaster, its live children and
# its reaped ones, from /proc/PID/stat, around the run).  Client and server
# share the machine's CPUs: on a 2-vCPU machine every client competes with
# the server, so requests/s is bounded by the sum of both, and client CPU
# per request is the figure to compare.  Every run first waits for the
# machine to be quiet (bench/io_lib.sh) and reports what others used.
#
# Environment: HOOKS_ROUNDS=5 HOOKS_REDIS_N=200000 HOOKS_PG_N=100000
# HOOKS_CONNS=64 BENCH_BUILD_DIR=build/bench-hooks.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-hooks}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ROUNDS=${HOOKS_ROUNDS:-5}
CONNS=${HOOKS_CONNS:-64}
REDIS_N=${HOOKS_REDIS_N:-200000}
PG_N=${HOOKS_PG_N:-100000}
WRAP=$ROOT/tests/servers/with_server.sh
# shellcheck source=bench/io_lib.sh
. "$ROOT/bench/io_lib.sh"
die() {
    echo "hooks.sh: $*" >&2
    exit 1
}

# --- inner: run under the wrappers, with the servers' variables ------------
# srv_ticks pid: CPU ticks of a server: its own, its live children's, and
# (fields 16 and 17) those of children it has reaped (PostgreSQL backends).
srv_ticks() {
    local p t v
    t=$(sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 + $14 + $15 }')
    for p in $(pgrep -P "$1" || true); do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

RESULTS=$BUILD/results.txt
# run1 group client spid requests cmd...: one measured run; appends
# "group client rps cli_us srv_us other%" to $RESULTS.
run1() {
    local group=$1 client=$2 spid=$3 n=$4 tmp=$BUILD/run.out s0 s1 b0 b1 w0 wall cli rps
    shift 4
    wait_quiet
    s0=$(srv_ticks "$spid")
    b0=$(sys_busy)
    w0=$(date +%s.%N)
    { time "$@" >"$tmp" 2>&1; } 2>"$tmp.time" || {
        cat "$tmp" >&2
        die "$group $client failed"
    }
    wall=$(awk -v a="$(date +%s.%N)" -v b="$w0" 'BEGIN { print a - b }')
    sleep 0.3 # PostgreSQL reaps the backends of the closed connections
    s1=$(srv_ticks "$spid")
    b1=$(sys_busy)
    cli=$(awk -v hz="$HZ" '{ printf "%.0f", ($1 + $2) * hz }' "$tmp.time")
    if [[ $client == redis-bm ]]; then
        # "SET","96153.85",... and "GET",...: n/2 requests each
        rps=$(awk -F'"' -v n="$n" '$2 == "SET" || $2 == "GET" { t += (n / 2) / $4 }
            END { if (t > 0) printf "%.0f", n / t; else print "n/a" }' "$tmp")
    else
        rps=$(awk '$1 == "requests" { print $6 }' "$tmp")
        [[ $(awk '$1 == "requests" { print $8 }' "$tmp") == 0 ]] || die "$group $client: errors: $(cat "$tmp")"
    fi
    local other cli_us srv_us
    other=$(other_pct $((b1 - b0)) $((s1 - s0 + cli)) "$wall")
    cli_us=$(awk -v t="$cli" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    srv_us=$(awk -v t=$((s1 - s0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    printf '  %-16s %-9s %9s req/s   client %6s us/req   server %6s us/req   others %3s%%\n' \
        "$group" "$client" "$rps" "$cli_us" "$srv_us" "$other"
    echo "$group $client $rps $cli_us $srv_us $other" >>"$RESULTS"
}

# rotate i words...: the words rotated left by i
rotate() {
    local i=$1
    shift
    local a=("$@") n=$# k
    for ((k = 0; k < n; k++)); do printf '%s ' "${a[$(((k + i) % n))]}"; done
}

inner_redis() {
    local h=$MAY_TEST_REDIS_HOST p=$MAY_TEST_REDIS_PORT pid=$MAY_TEST_REDIS_PID r c
    echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $CONNS connections, $REDIS_N requests a run (SET/GET), $ROUNDS rounds"
    for ((r = 0; r < ROUNDS; r++)); do
        for c in $(rotate "$r" may go redis-bm); do
            case $c in
            may) run1 redis "$c" "$pid" "$REDIS_N" "$BUILD/bench/hooks/bench_hooks_redis" "$h" "$p" "$CONNS" "$REDIS_N" ;;
            go) run1 redis "$c" "$pid" "$REDIS_N" "$BUILD/go/redigo" "$h" "$p" "$CONNS" "$REDIS_N" ;;
            redis-bm) run1 redis "$c" "$pid" "$REDIS_N" redis-benchmark -h "$h" -p "$p" -c "$CONNS" \
                -n $((REDIS_N / 2)) -t set,get --csv ;;
            esac
        done
    done
}

inner_pg() {
    local r c q pid=$MAY_TEST_PG_PID
    psql -X -q -v ON_ERROR_STOP=1 -c "CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL);
        INSERT INTO kv SELECT k, 'v' || k FROM generate_series(1, 10000) k; ANALYZE kv;" >/dev/null
    echo "PostgreSQL $(postgres --version | awk '{ print $3 }'), $CONNS connections, $PG_N queries a run, $ROUNDS rounds"
    for q in select1 lookup; do
        for ((r = 0; r < ROUNDS; r++)); do
            for c in $(rotate "$r" may go); do
                case $c in
                may) run1 "pg-$q" "$c" "$pid" "$PG_N" "$BUILD/bench/hooks/bench_hooks_pq" \
                    "$MAY_TEST_PG_CONNINFO" "$q" "$CONNS" "$PG_N" ;;
                go) run1 "pg-$q" "$c" "$pid" "$PG_N" "$BUILD/go/pgx" "$MAY_TEST_PG_URL" "$q" "$CONNS" "$PG_N" ;;
                esac
            done
        done
    done
}

summary() {
    echo
    echo "medians over $ROUNDS rounds (client/server CPU in microseconds per request):"
    printf '  %-12s %-9s %10s %10s %10s %14s\n' group client req/s client-us server-us "client vs go"
    local g c
    for g in $(awk '{ print $1 }' "$RESULTS" | sort -u); do
        local go_cli
        go_cli=$(awk -v g="$g" '$1 == g && $2 == "go" { print $4 }' "$RESULTS" | median)
        for c in may go redis-bm; do
            grep -q "^$g $c " "$RESULTS" || continue
            local rps cli srv
            rps=$(awk -v g="$g" -v c="$c" '$1 == g && $2 == c { print $3 }' "$RESULTS" | median)
            cli=$(awk -v g="$g" -v c="$c" '$1 == g && $2 == c { print $4 }' "$RESULTS" | sort -n |
                awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
            srv=$(awk -v g="$g" -v c="$c" '$1 == g && $2 == c { print $5 }' "$RESULTS" | sort -n |
                awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
            printf '  %-12s %-9s %10s %10s %10s %14s\n' "$g" "$c" "$rps" "$cli" "$srv" \
                "$(ratio "$cli" "$go_cli")x"
        done
    done
}

if [[ ${1:-} == --inner ]]; then
    shift
    : >"$RESULTS"
    for k in "$@"; do
        case $k in
        redis) inner_redis ;;
        postgres) inner_pg ;;
        esac
    done
    summary
    exit 0
fi

# --- outer: build, then run under the wrappers ------------------------------
KINDS=("$@")
((${#KINDS[@]})) || KINDS=(redis postgres)
for k in "${KINDS[@]}"; do
    [[ $k == redis || $k == postgres ]] || die "unknown server '$k' (redis, postgres)"
done
need go golang-go
need redis-benchmark redis-tools
echo "building (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF \
    -DMAY_BUILD_EXAMPLES=OFF -Wno-dev >"$BUILD.cmake.log" 2>&1 || {
    cat "$BUILD.cmake.log"
    die "cmake failed"
}
cmake --build "$BUILD" -j"$(nproc)" --target bench_hooks_redis bench_hooks_pq >/dev/null ||
    die "build failed (hiredis, libpq and hook/ are needed: scripts/deps.sh bench)"
mkdir -p "$BUILD/go"
for g in redigo pgx; do
    # Debian's Go libraries live in /usr/share/gocode: GOPATH mode, offline.
    (cd "$ROOT/bench/go/$g" && GO111MODULE=off GOFLAGS='' GOPATH=/usr/share/gocode \
        GOCACHE=${GOCACHE:-$BUILD/go-cache} go build -o "$BUILD/go/$g" .) ||
        die "building bench/go/$g failed (golang-github-gomodule-redigo-dev, golang-github-jackc-pgx-v4-dev)"
done
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')); clients and servers share them"
cmd=(bash "$ROOT/bench/hooks.sh" --inner "${KINDS[@]}")
for k in "${KINDS[@]}"; do
    cmd=(bash "$WRAP" -q "$k" -- "${cmd[@]}")
done
"${cmd[@]}"
