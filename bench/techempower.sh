#!/usr/bin/env bash
# bench/techempower.sh - TechEmpower's six test types with wrk against the
# may application (apps/techempower) and its peers, on a private PostgreSQL
# with TechEmpower's data.  Never part of the tests.
#
#   bench/techempower.sh                  every server, every test
#   bench/techempower.sh may go           a subset of the servers
#   TE_QUICK=1 bench/techempower.sh       one round of 3 s runs (~2 minutes)
#
# Servers (each serving 127.0.0.1 only):
#   may     apps/techempower (Release build of this tree)
#   go      bench/go/techempower: net/http, encoding/json, html/template,
#           pgx v4's pool with prepared statements (TechEmpower's go-std way)
#   goraw   bench/go/httpraw, raw Go (package net): plaintext only
#   nginx   Debian's nginx, `return 200` (bench/nginx/nginx.conf.in):
#           plaintext only
# Tests, as TechEmpower runs them (its Accept and Connection headers, wrk
# --latency --timeout 8):
#   plaintext-pipe  /plaintext, bench/pipeline.lua: 16 requests per write
#   plaintext       /plaintext, one request in flight per connection
#   json  db  queries (/queries?queries=20)  fortunes  updates (?queries=20)
#
# The database: apps/techempower/with_db.sh starts a private PostgreSQL 15
# (tests/servers/with_server.sh postgres), loads TechEmpower's World and
# Fortune tables and runs this script again inside it (--inner); both
# servers reach it over TCP (may: DATABASE_URL, its pool TE_DB_CONNS
# connections, default its workers; go: MAY_TEST_PG_URL, TE_POOL
# connections, default 4 x GOMAXPROCS).
#
# CPUs (2 vCPUs here): the server on TE_SERVER_CPUS (default CPU 1) with as
# many workers as CPUs there (may: MAY_WORKERS, Go: GOMAXPROCS, nginx:
# worker_processes), wrk on TE_WRK_CPUS (default CPU 0, one thread per
# CPU), PostgreSQL on TE_PG_CPUS (default CPU 0, with wrk: the server has
# its CPU to itself, so neither server loses CPU time to the database and
# its CPU per request is its own; TE_PG_CPUS= leaves PostgreSQL unpinned,
# on every CPU).  The postmaster and its backends are pinned with taskset;
# new backends inherit it.
#
# Order: each round takes each test in turn and runs every server on it
# back to back (the servers' order rotates from round to round); a server
# is started fresh for every run, so its peak RSS (VmHWM, summed over its
# processes: nginx's master and workers) is that test's.  Every run: the
# server starts and answers, a 1 s warm-up, a wait for the machine to be
# quiet (bench/io_lib.sh: wait_quiet), then wrk -c TE_CONNS -d TE_SECS
# under `timeout`, measuring around it, from /proc: the server's CPU
# (utime+stime of its processes), PostgreSQL's (the postmaster's, its live
# children's and its reaped children's), wrk's (bash `time`), each CPU's
# busy time, and the CPU others used meanwhile (a run where that was over
# BENCH_CLEAN_PCT, 10, percent of a CPU is repeated, BENCH_RETRIES, 1,
# times at most, and TE_RETRIES_TOTAL, 4 per round, times in all; the
# cleanest try counts).  On a quiet machine the default run takes about
# 7 minutes, TE_QUICK=1 about 2; a busy one adds the waits (at most
# BENCH_QUIET_TOTAL, here 120 s) and the repeats.
#
# Printed per run and as medians over the rounds: requests/s, p99 latency,
# server CPU per request (us), PostgreSQL CPU per request (us), peak RSS
# (MiB), how busy the server, PostgreSQL and wrk were (% of one CPU), what
# limits the figure, then the ratios may/peer per test and the issue's
# targets.  The limit, first that holds:
#   wrk         wrk used >= 85% of its CPUs
#   server      the server used >= 85% of its CPUs
#   postgres    PostgreSQL used >= 85% of its CPUs
#   server+pg   the server's CPUs were >= 90% busy and PostgreSQL shares
#               them and used >= 10% of a CPU (pg+server: PostgreSQL used
#               more of them than the server; without PostgreSQL there:
#               server)
#   wrk+pg      the same for wrk's CPUs (pg+wrk; or wrk)
#   cpu         every CPU was >= 90% busy
#   latency     no CPU was saturated: round trips, connections, the pool
# Runs with non-2xx answers or socket errors are flagged (errs column).
#
# Environment: TE_ROUNDS=3 TE_SECS=5 TE_CONNS=64 TE_DEPTH=16 TE_QUERIES=20
# TE_QUICK=0 (1: TE_ROUNDS=1 TE_SECS=3) TE_SERVER_CPUS=1 TE_WRK_CPUS=0
# TE_PG_CPUS=0 (empty: unpinned) TE_TFB_HEADERS=1 (0: wrk's bare requests, Host only, as
# bench/http.sh) TE_PORT=18180 (peers: +1, +2, +3) TE_TESTS (a subset of the
# tests, space-separated) TE_PERF=0 (1: after the rounds, perf record -g of
# the may app on each test) BENCH_BUILD_DIR=build/bench-te BENCH_RETRIES=1
# TE_RETRIES_TOTAL BENCH_CLEAN_PCT=10 BENCH_QUIET_WAIT=20
# BENCH_QUIET_TOTAL=120.  Installs
# wrk, Go and nginx from Debian when missing (scripts/deps.sh bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench-te}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
if [ "${TE_QUICK:-0}" = 1 ]; then
    : "${TE_ROUNDS:=1}" "${TE_SECS:=3}"
fi
ROUNDS=${TE_ROUNDS:-3}
SECS=${TE_SECS:-5}
CONNS=${TE_CONNS:-64}
DEPTH=${TE_DEPTH:-16}
QUERIES=${TE_QUERIES:-20}
PORT=${TE_PORT:-18180}
SCPUS=${TE_SERVER_CPUS:-1}
WCPUS=${TE_WRK_CPUS:-0}
PCPUS=${TE_PG_CPUS-0}
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || { SCPUS=0 WCPUS=0; } # a 1-CPU machine: everything on CPU 0
export BENCH_RETRIES=${BENCH_RETRIES:-1} BENCH_QUIET_TOTAL=${BENCH_QUIET_TOTAL:-120}
# shellcheck source=bench/io_lib.sh
. "$ROOT/bench/io_lib.sh"
WORKERS=$(count_cpus "$SCPUS")
WRK_THREADS=$(count_cpus "$WCPUS")
ALL_SERVERS=(may go goraw nginx)
ALL_TESTS=(plaintext-pipe plaintext json db queries fortunes updates)
WITH_DB=$ROOT/apps/techempower/with_db.sh

die() {
    echo "techempower.sh: $*" >&2
    exit 1
}

# TechEmpower's request headers (toolset/benchmark/test_types): Accept by
# test type, keep-alive.
accept_of() {
    case $1 in
    plaintext*) echo 'text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7' ;;
    fortunes) echo 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' ;;
    *) echo 'application/json,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7' ;;
    esac
}
path_of() {
    case $1 in
    plaintext*) echo /plaintext ;;
    queries | updates) echo "/$1?queries=$QUERIES" ;;
    *) echo "/$1" ;;
    esac
}
serves() { # server test: does this server take part in this test?
    case $1 in goraw | nginx) [[ $2 == plaintext* ]] ;; *) true ;; esac
}
port_of() {
    case $1 in may) echo "$PORT" ;; go) echo $((PORT + 1)) ;; goraw) echo $((PORT + 2)) ;; nginx) echo $((PORT + 3)) ;; esac
}

# --- inner: run under the database wrapper ---------------------------------
if [ "${1:-}" = --inner ]; then
    shift
    SERVERS=("$@")
    read -r -a TESTS <<<"${TE_TESTS:-${ALL_TESTS[*]}}"
    LOG=$BUILD/te-results.log
    DATA=$BUILD/te-results.tsv
    : >"$LOG"
    : >"$DATA"
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    SPID='' WATCHDOG=''
    # shellcheck disable=SC2317 # called from the trap
    cleanup() {
        [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
        [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
        true
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    # The database, as the wrapper describes it.
    PG_PID=${MAY_TEST_PG_PID:-}
    [ -n "$PG_PID" ] && [ -d "/proc/$PG_PID" ] || die "no PostgreSQL pid from the wrapper"
    GO_DB_URL=$MAY_TEST_PG_URL
    if [ -n "$PCPUS" ]; then
        for p in "$PG_PID" $(pgrep -P "$PG_PID" || true); do taskset -a -p -c "$PCPUS" "$p" >/dev/null; done
    fi
    PG_NCPU=$NCPU PG_WITH_S=1 PG_WITH_W=1
    if [ -n "$PCPUS" ]; then
        PG_NCPU=$(count_cpus "$PCPUS")
        cpu_list() { echo "$1" | tr , '\n' | awk -F- '{ for (i = $1; i <= (NF == 2 ? $2 : $1); i++) print i }'; }
        shares() { [ -n "$(comm -12 <(cpu_list "$1" | sort) <(cpu_list "$2" | sort))" ]; }
        shares "$PCPUS" "$SCPUS" || PG_WITH_S=0
        shares "$PCPUS" "$WCPUS" || PG_WITH_W=0
    fi

    # pg_ticks: utime+stime of the postmaster, of its live children, and
    # (cutime+cstime) of the children it has reaped.
    pg_ticks() {
        local p t v
        t=$(sed 's/.*) //' "/proc/$PG_PID/stat" | awk '{ print $12 + $13 + $14 + $15 }')
        for p in $(pgrep -P "$PG_PID" || true); do
            v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=0
            t=$((t + ${v:-0}))
        done
        echo "$t"
    }
    # cpu_busy_list: busy ticks of every CPU, "cpu0 cpu1 ...".
    cpu_busy_list() { awk '$1 ~ /^cpu[0-9]+$/ { printf "%d ", $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
    # set_busy "b0 list" "b1 list" cpus wall: percent busy of that CPU set
    set_busy() {
        awk -v a="$1" -v b="$2" -v set="$3" -v w="$4" -v hz="$HZ" -v n="$NCPU" 'BEGIN {
            split(a, x, " "); split(b, y, " ")
            if (set == "") for (i = 0; i < n; i++) in_set[i] = 1
            else { k = split(set, parts, ",")
                for (j = 1; j <= k; j++) { if (split(parts[j], r, "-") == 2) for (i = r[1]; i <= r[2]; i++) in_set[i] = 1
                                            else in_set[parts[j]] = 1 } }
            c = 0; t = 0
            for (i in in_set) { c++; t += y[i + 1] - x[i + 1] }
            printf "%.0f", t * 100 / hz / w / c }'
    }
    # hwm_kib pid: VmHWM of the process and its children, KiB.
    hwm_kib() {
        local p t=0 v
        for p in "$1" $(pgrep -P "$1" || true); do
            v=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$p/status" 2>/dev/null) || v=0
            t=$((t + ${v:-0}))
        done
        echo "$t"
    }
    to_us() { # "1.23ms" -> 1230 (wrk prints us, ms or s)
        awk -v v="$1" 'BEGIN { u = v; sub(/[0-9.]+/, "", u); n = v + 0
            if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1e6; else f = 0.001
            printf "%.0f", n * f }'
    }

    # serve server: start it pinned, wait until it answers /plaintext.
    # Lifetime: long enough for a run and its retries; stop() ends it.
    serve() {
        local s=$1 port life=$((2 * (BENCH_RETRIES + 1) * (SECS + 3 + QUIET_MAX) + 60))
        port=$(port_of "$s")
        case $s in
        may) # the command line of apps/techempower/README.md
            MAY_WORKERS=$WORKERS taskset -c "$SCPUS" "${MAY_CMD[@]}" >>"$LOG" 2>&1 & ;;
        go) TE_DB_URL=$GO_DB_URL GOMAXPROCS=$WORKERS taskset -c "$SCPUS" "$BUILD/go-te" "$port" "$life" >>"$LOG" 2>&1 & ;;
        goraw) GOMAXPROCS=$WORKERS taskset -c "$SCPUS" "$BUILD/go-httpraw" "$port" "$life" >>"$LOG" 2>&1 & ;;
        nginx)
            nginx_conf "$BUILD/nginx" "$port" "$WORKERS" 4096
            taskset -c "$SCPUS" "$NGINX" -p "$BUILD/nginx/" -e "$BUILD/nginx/error.log" \
                -c "$BUILD/nginx/nginx.conf" >>"$LOG" 2>&1 &
            ;;
        esac
        SPID=$!
        if [ "$s" = nginx ] || [ "$s" = may ]; then
            (sleep "$life"; kill -TERM "$SPID" 2>/dev/null) &
            WATCHDOG=$!
        fi
        for _ in $(seq 200); do
            curl -s -o /dev/null "http://127.0.0.1:$port/plaintext" && return 0
            kill -0 "$SPID" 2>/dev/null || break
            sleep 0.05
        done
        die "$s did not come up on port $port (log: $LOG)"
    }
    stop() {
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
        SPID=
        if [ -n "$WATCHDOG" ]; then
            kill "$WATCHDOG" 2>/dev/null || true
            wait "$WATCHDOG" 2>/dev/null || true
            WATCHDOG=
        fi
    }

    wrk_run() { # secs test url
        local extra=()
        [ "$2" = plaintext-pipe ] && extra=(-s "$ROOT/bench/pipeline.lua")
        local hdrs=()
        [ "${TE_TFB_HEADERS:-1}" = 1 ] && hdrs=(-H "Accept: $(accept_of "$2")" -H 'Connection: keep-alive')
        timeout $(($1 + 30)) taskset -c "$WCPUS" wrk -t"$WRK_THREADS" -c"$CONNS" -d"$1s" --timeout 8 \
            --latency "${hdrs[@]}" "${extra[@]}" "$3" ${extra:+-- "$DEPTH"}
    }

    # limit_of srv% pg% wrk% busy(S) busy(W) busy(all): srv%, pg% and
    # wrk% in % of one CPU, the busy() figures in % of their CPU set
    limit_of() {
        awk -v s="$1" -v p="$2" -v w="$3" -v bs="$4" -v bw="$5" -v ball="$6" -v ns="$WORKERS" \
            -v np="$PG_NCPU" -v nw="$WRK_THREADS" -v ps="$PG_WITH_S" -v pw="$PG_WITH_W" 'BEGIN {
            if (w >= 85 * nw) print "wrk"
            else if (s >= 85 * ns) print "server"
            else if (p >= 85 * np) print "postgres"
            else if (bs >= 90) print (ps && p >= 10 ? (s >= p ? "server+pg" : "pg+server") : "server")
            else if (bw >= 90) print (pw && p >= 10 ? (w >= p ? "wrk+pg" : "pg+wrk") : "wrk")
            else if (ball >= 90) print "cpu"
            else print "latency" }'
    }

    # run server test round: one measured run, retried while others were busy
    run() {
        local s=$1 t=$2 r=$3 url try best=999999 row='' out reqs rps p99 errs
        local s0 s1 g0 g1 b0 b1 c0 c1 w0 wall cli srv pg other spct gpct cpct bs bw ball lim rss
        url=http://127.0.0.1:$(port_of "$s")$(path_of "$t")
        for ((try = 0; try <= BENCH_RETRIES; try++)); do
            serve "$s"
            wrk_run 1 "$t" "$url" >/dev/null 2>&1 || true # warm-up: caches, the pool's connections
            wait_quiet
            s0=$(cpu_ticks "$SPID") g0=$(pg_ticks) b0=$(sys_busy) c0=$(cpu_busy_list) w0=$(date +%s.%N)
            { time wrk_run "$SECS" "$t" "$url" >"$BUILD/wrk.out" 2>&1; } 2>"$BUILD/wrk.time" ||
                die "wrk failed against $s $t: $(cat "$BUILD/wrk.out")"
            s1=$(cpu_ticks "$SPID") g1=$(pg_ticks) b1=$(sys_busy) c1=$(cpu_busy_list)
            wall=$(awk -v a="$(date +%s.%N)" -v b="$w0" 'BEGIN { print a - b }')
            rss=$(hwm_kib "$SPID")
            stop
            out=$(cat "$BUILD/wrk.out")
            cli=$(awk -v hz="$HZ" '{ printf "%.0f", ($1 + $2) * hz }' "$BUILD/wrk.time")
            srv=$((s1 - s0)) pg=$((g1 - g0))
            other=$(other_pct $((b1 - b0)) $((srv + pg + cli)) "$wall")
            spct=$(other_pct "$srv" 0 "$wall") gpct=$(other_pct "$pg" 0 "$wall") cpct=$(other_pct "$cli" 0 "$wall")
            bs=$(set_busy "$c0" "$c1" "$SCPUS" "$wall")
            bw=$(set_busy "$c0" "$c1" "$WCPUS" "$wall") ball=$(set_busy "$c0" "$c1" "" "$wall")
            lim=$(limit_of "$spct" "$gpct" "$cpct" "$bs" "$bw" "$ball")
            { echo "--- round $r: $s $t (try $((try + 1)))"; echo "$out"
              echo "ticks: server $srv postgres $pg wrk $cli; others $other% of a CPU; busy: server CPUs $bs% wrk CPUs $bw% all $ball%; VmHWM $rss KiB"; } >>"$LOG"
            reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
            rps=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
            p99=$(to_us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
            [ "$p99" = 0 ] && p99=n/a # wrk's histogram sometimes prints 0 when pipelining
            errs=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                END { print n + 0 }')
            [ -n "$reqs" ] && [ "$reqs" -gt 0 ] || die "$s $t: no requests: $out"
            local sus pus
            sus=$(awk -v t="$srv" -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
            pus=$(awk -v t="$pg" -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
            printf '  r%d %-5s %-14s %8s req/s  p99 %7s us  server %7s us/req  pg %7s us/req  RSS %6.1f MiB  busy: server %3s%% pg %3s%% wrk %3s%% (CPUs: server %s%% all %s%%)  others %s%%  -> %s%s\n' \
                "$r" "$s" "$t" "$rps" "$p99" "$sus" "$pus" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
                "$spct" "$gpct" "$cpct" "$bs" "$ball" "$other" "$lim" "$([ "$errs" -gt 0 ] && echo "  ERRORS: $errs")" >&2
            if [ "$other" -lt "$best" ]; then
                best=$other
                row=$(printf '%s\t' "$s" "$t" "$r" "$rps" "$p99" "$sus" "$pus" "$rss" "$spct" "$gpct" "$cpct" "$ball" \
                    "$other" "$lim" "$errs")
            fi
            [ "$other" -le "${BENCH_CLEAN_PCT:-10}" ] && break
            [ "$RETRIES_LEFT" -gt 0 ] || break
            if [ "$try" -lt "$BENCH_RETRIES" ]; then
                RETRIES_LEFT=$((RETRIES_LEFT - 1))
                echo "   (others used $other% of a CPU: again)" >&2
            fi
        done
        echo "${row%$'\t'}" >>"$DATA"
    }

    RETRIES_LEFT=${TE_RETRIES_TOTAL:-$((ROUNDS * 4))}

    # The may app's command line (apps/techempower/README.md): PORT, the
    # database from DATABASE_URL (with_db.sh sets it).
    MAY_CMD=("$BUILD/apps/techempower/techempower" "$(port_of may)")

    echo "== PostgreSQL $(postgres --version 2>/dev/null | awk '{ print $3 }') (pid $PG_PID, CPUs ${PCPUS:-all});" \
        "server on CPU(s) $SCPUS ($WORKERS worker(s)); wrk -t$WRK_THREADS -c$CONNS -d${SECS}s on CPU(s) $WCPUS;" \
        "$ROUNDS round(s); servers: ${SERVERS[*]}; tests: ${TESTS[*]}" >&2
    n=${#SERVERS[@]}
    for ((r = 1; r <= ROUNDS; r++)); do
        for t in "${TESTS[@]}"; do
            for ((k = 0; k < n; k++)); do
                s=${SERVERS[$(((k + r - 1) % n))]}
                serves "$s" "$t" && run "$s" "$t" "$r"
            done
        done
    done

    med() { # server test column (4 rps 5 p99 6 us 7 pg-us 8 rss 9 srv% 10 pg% 11 wrk% 12 all% 13 other%)
        awk -F'\t' -v s="$1" -v t="$2" -v c="$3" '$1 == s && $2 == t { print $c }' "$DATA" |
            grep -E '^[0-9.]+$' | sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"
                else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
    }
    lims() { # server test: the limits seen, most frequent first, e.g. "postgres" or "postgres 2/3"
        awk -F'\t' -v s="$1" -v t="$2" '$1 == s && $2 == t { n++; c[$14]++ }
            END { for (l in c) if (c[l] > best) { best = c[l]; b = l }
                  if (n == 0) print "n/a"; else if (best == n) print b; else printf "%s %d/%d\n", b, best, n }' "$DATA"
    }
    errsum() { awk -F'\t' -v s="$1" -v t="$2" '$1 == s && $2 == t { n += $15 } END { print n + 0 }' "$DATA"; }
    fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "n/a") print v; else printf "%.*f\n", d, v }'; }

    echo
    echo "Medians of $ROUNDS round(s) of ${SECS} s; server on CPU(s) $SCPUS ($WORKERS worker(s)), wrk -t$WRK_THREADS" \
        "-c$CONNS on CPU(s) $WCPUS, PostgreSQL on CPU(s) ${PCPUS:-all}; queries=$QUERIES, pipeline depth $DEPTH."
    echo
    echo "| test | server | requests/s | p99 (ms) | server CPU (us/req) | PostgreSQL CPU (us/req) | peak RSS (MiB) | busy: server / PG / wrk (% of a CPU) | limit | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---|---|---:|"
    for t in "${TESTS[@]}"; do
        for s in "${SERVERS[@]}"; do
            serves "$s" "$t" || continue
            echo "| $t | $s | $(fmt "$(med "$s" "$t" 4)" 0) | $(fmt "$(awk -v v="$(med "$s" "$t" 5)" 'BEGIN { if (v == "n/a") print v; else print v / 1000 }')" 2) |" \
                "$(fmt "$(med "$s" "$t" 6)" 2) | $(fmt "$(med "$s" "$t" 7)" 2) | $(fmt "$(awk -v v="$(med "$s" "$t" 8)" 'BEGIN { if (v == "n/a") print v; else print v / 1024 }')" 1) |" \
                "$(med "$s" "$t" 9) / $(med "$s" "$t" 10) / $(med "$s" "$t" 11) | $(lims "$s" "$t") | $(errsum "$s" "$t") |"
        done
    done
    if [[ " ${SERVERS[*]} " == *" may "* ]]; then
        # target: test peer kind(rps|cpu) bound
        target() {
            local t=$1 p=$2 kind=$3 bound=$4 a b v
            [[ " ${SERVERS[*]} " == *" $p "* ]] && [[ " ${TESTS[*]} " == *" $t "* ]] || return 0
            if [ "$kind" = rps ]; then a=$(med may "$t" 4) b=$(med "$p" "$t" 4); else a=$(med may "$t" 6) b=$(med "$p" "$t" 6); fi
            v=$(ratio "$a" "$b")
            awk -v v="$v" -v b="$bound" -v k="$kind" -v t="$t" -v p="$p" 'BEGIN {
                ok = (v == "n/a") ? "n/a" : (k == "rps" ? (v + 0 >= b ? "met" : "MISSED") : (v + 0 <= b ? "met" : "MISSED"))
                printf "| %s | %s | %s %s %s | %s | %s |\n", t, p, (k == "rps" ? "req/s may/peer" : "CPU/req may/peer"),
                       (k == "rps" ? ">=" : "<="), b, v, ok }'
        }
        echo
        echo "| test | peer | requests/s may/peer | server CPU/request may/peer | p99 may/peer |"
        echo "|---|---|---:|---:|---:|"
        for t in "${TESTS[@]}"; do
            for p in "${SERVERS[@]}"; do
                [ "$p" = may ] && continue
                serves "$p" "$t" || continue
                echo "| $t | $p | $(ratio "$(med may "$t" 4)" "$(med "$p" "$t" 4)") | $(ratio "$(med may "$t" 6)" "$(med "$p" "$t" 6)") |" \
                    "$(ratio "$(med may "$t" 5)" "$(med "$p" "$t" 5)") |"
            done
        done
        echo
        echo "Targets of issue 12:"
        echo
        echo "| test | peer | target | ratio | |"
        echo "|---|---|---|---:|---|"
        for t in db queries fortunes updates; do target "$t" go rps 3; done
        for t in json plaintext plaintext-pipe; do target "$t" go rps 1; done
        for t in "${ALL_TESTS[@]}"; do target "$t" go cpu 0.6; done
        target plaintext-pipe goraw cpu 0.7
    fi
    echo
    echo "Other processes used a median of $(cut -f13 "$DATA" | median)% and at most $(cut -f13 "$DATA" | sort -n | tail -1)% of a CPU during the runs."
    echo "(raw wrk output: $LOG; one line per run: $DATA)"

    if [ "${TE_PERF:-0}" = 1 ] && [[ " ${SERVERS[*]} " == *" may "* ]]; then
        command -v perf >/dev/null 2>&1 || die "TE_PERF=1 needs perf (Debian: linux-perf)"
        for t in "${TESTS[@]}"; do
            url=http://127.0.0.1:$PORT$(path_of "$t")
            serve may
            wrk_run 1 "$t" "$url" >/dev/null 2>&1 || true
            perf record -F 2000 -g -o "$BUILD/perf-te-$t.data" -p "$SPID" -- sleep "$SECS" >/dev/null 2>&1 &
            ppid=$!
            wrk_run "$SECS" "$t" "$url" >/dev/null 2>&1 || true
            wait "$ppid" || true
            stop
            echo
            echo "== perf: may, $t (perf report -i $BUILD/perf-te-$t.data)"
            perf report -i "$BUILD/perf-te-$t.data" --no-children --percent-limit 1.5 --stdio -g none 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -25
            perf report -i "$BUILD/perf-te-$t.data" --no-children --sort dso --stdio -g none 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -8
        done
    fi
    exit 0
fi

# --- outer: build, then run under the database wrapper ---------------------
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=("${ALL_SERVERS[@]}")
for s in "${SERVERS[@]}"; do
    case " ${ALL_SERVERS[*]} " in *" $s "*) ;; *) die "unknown server '$s' (${ALL_SERVERS[*]})" ;; esac
done
for t in ${TE_TESTS:-}; do
    case " ${ALL_TESTS[*]} " in *" $t "*) ;; *) die "unknown test '$t' (${ALL_TESTS[*]})" ;; esac
done
need wrk wrk
need go golang-go
case " ${SERVERS[*]} " in *" nginx "*) need_nginx ;; esac
mkdir -p "$BUILD"

if [[ " ${SERVERS[*]} " == *" may "* ]]; then
    echo "== building apps/techempower (Release) in $BUILD" >&2
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMAY_BUILD_TESTS=OFF -DMAY_BUILD_EXAMPLES=OFF \
        -DMAY_BUILD_BENCH=OFF -Wno-dev >"$BUILD/cmake.log" 2>&1 || { cat "$BUILD/cmake.log" >&2; die "cmake failed"; }
    cmake --build "$BUILD" -j"$NCPU" --target techempower >/dev/null || die "building apps/techempower failed"
fi
echo "== building bench/go/techempower and bench/go/httpraw with $(go version | cut -d' ' -f3)" >&2
# Debian's Go libraries (pgx v4) live in /usr/share/gocode: GOPATH mode, offline.
GOPATH=/usr/share/gocode gobuild techempower "$BUILD/go-te"
gobuild httpraw "$BUILD/go-httpraw"

[ -f "$WITH_DB" ] || die "$WITH_DB is missing"
exec bash "$WITH_DB" bash "$0" --inner "${SERVERS[@]}"
