# shellcheck shell=bash
# bench/io_lib.sh - helpers shared by bench/http.sh, bench/echo.sh and
# bench/idle_conns.sh (sourced, not run).
#
# The machine these run on is often shared (builds, fuzzers), so every
# measured run also reports how much CPU *other* processes used meanwhile,
# and waits (at most BENCH_QUIET_WAIT seconds, default 20, and
# BENCH_QUIET_TOTAL, default 180, over the whole script) for the machine to
# go quiet before it starts.

HZ=$(getconf CLK_TCK)
TIMEFORMAT='%U %S' # bash `time`: user and system seconds of the children

# cpu_ticks pid: utime+stime of the process and its children (nginx's
# master and workers), fields 14 and 15 of /proc/PID/stat.
cpu_ticks() {
    local p t=0 v
    for p in "$1" $(pgrep -P "$1" || true); do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# rss_kib pid: VmRSS of the process and its children, KiB.
rss_kib() {
    local p t=0 v
    for p in "$1" $(pgrep -P "$1" || true); do
        v=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# sys_busy: busy ticks of the whole machine so far (user nice system irq
# softirq steal, summed over the CPUs).
sys_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# wait_quiet: wait until the machine's busy time over 0.5 s is below
# BENCH_QUIET_PCT (default 15) percent of one CPU, for at most
# BENCH_QUIET_WAIT seconds (default 20) per call and BENCH_QUIET_TOTAL
# (default 180) per script; says so when it gives up.
QUIET_WAITED=0
wait_quiet() {
    local limit=${BENCH_QUIET_WAIT:-20} pct=${BENCH_QUIET_PCT:-15} start=$SECONDS b0 b1 busy
    local left=$((${BENCH_QUIET_TOTAL:-180} - QUIET_WAITED))
    [ "$left" -lt "$limit" ] && limit=$left
    while :; do
        b0=$(sys_busy)
        sleep 0.5
        b1=$(sys_busy)
        busy=$(((b1 - b0) * 100 * 2 / HZ)) # percent of one CPU
        [ "$busy" -lt "$pct" ] && break
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            echo "   note: the machine is still busy (${busy}% of a CPU used by others); measuring anyway" >&2
            break
        fi
    done
    QUIET_WAITED=$((QUIET_WAITED + SECONDS - start))
}
# shellcheck disable=SC2034 # used by the scripts that source this
QUIET_MAX=$((${BENCH_QUIET_WAIT:-20} + 1)) # for the servers' lifetimes

# other_pct busy_ticks_delta own_ticks wall_seconds: CPU used by other
# processes during a run, in percent of one CPU.
other_pct() {
    awk -v b="$1" -v o="$2" -v s="$3" -v hz="$HZ" \
        'BEGIN { v = (b - o) * 100 / hz / s; if (v < 0) v = 0; printf "%.0f", v }'
}

median() { # reads numbers (one a line; others skipped), prints the median
    grep -E '^[0-9.]+$' | sort -n | awk '{ a[NR] = $1 }
        END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2];
              else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }

# apt_install pkg: install a Debian package (sudo when not root).  Where no
# policy-rc.d forbids it, Debian's nginx postinst starts the system-wide
# nginx (port 80, every address): stop that one again.
apt_install() {
    echo "${0##*/}: $1 not found, installing it" >&2
    local sudo=() had_pid=0
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    [ -e /run/nginx.pid ] && had_pid=1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >&2 ||
        { "${sudo[@]}" apt-get update >&2 &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >&2; }
    if [ "$1" = nginx ] && [ "$had_pid" = 0 ] && [ -e /run/nginx.pid ]; then
        echo "${0##*/}: stopping the nginx service the package started" >&2
        "${sudo[@]}" /usr/sbin/nginx -s quit >&2 || true
    fi
}

# need cmd pkg: install pkg when cmd is missing, or exit.
need() {
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
    command -v "$1" >/dev/null 2>&1 || { echo "${0##*/}: $1 is still missing" >&2; exit 1; }
}

# need_nginx: install nginx when missing; sets NGINX to its path.
need_nginx() {
    [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || apt_install nginx
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    [ -x "$NGINX" ] || { echo "${0##*/}: nginx is still missing" >&2; exit 1; }
}

# measure out_file cmd...: run one measured client command (after the
# caller's wait_quiet) against the server $SPID, its output in out_file.
# Fails when the command does; otherwise sets M_OUT (the output), M_SRV
# (server CPU ticks), M_CLI (client CPU ticks), M_OTHER (others' CPU, % of
# one CPU), M_SPCT and M_CPCT (server and client, % of one CPU).
# shellcheck disable=SC2034 # M_* are read by the scripts that source this
measure() {
    local tmp=$1 t0 t1 b0 b1 w0 wall
    shift
    t0=$(cpu_ticks "$SPID")
    b0=$(sys_busy)
    w0=$(date +%s.%N)
    { time "$@" >"$tmp" 2>&1; } 2>"$tmp.time" || return 1
    t1=$(cpu_ticks "$SPID")
    b1=$(sys_busy)
    M_OUT=$(cat "$tmp")
    M_SRV=$((t1 - t0))
    M_CLI=$(awk -v hz="$HZ" '{ printf "%.0f", ($1 + $2) * hz }' "$tmp.time")
    wall=$(awk -v a="$(date +%s.%N)" -v b="$w0" 'BEGIN { print a - b }')
    M_OTHER=$(other_pct $((b1 - b0)) $((M_SRV + M_CLI)) "$wall")
    M_SPCT=$(other_pct "$M_SRV" 0 "$wall")
    M_CPCT=$(other_pct "$M_CLI" 0 "$wall")
}

# count_cpus "0,2-3" -> 3
count_cpus() { echo "$1" | tr , '\n' | awk -F- '{ n += NF == 2 ? $2 - $1 + 1 : 1 } END { print n }'; }

# gobuild dir output: build bench/go/<dir> without modules or downloads
gobuild() {
    (cd "$ROOT/bench/go/$1" &&
        GO111MODULE=off GOFLAGS='' GOPATH=${GOPATH:-$BUILD/gopath} \
            GOCACHE=${GOCACHE:-$BUILD/go-cache} go build -o "$2" .) ||
        die "building bench/go/$1 failed"
}

# nginx_conf prefix port workers conns: write prefix/nginx.conf from
# bench/nginx/nginx.conf.in
nginx_conf() {
    mkdir -p "$1"
    sed -e "s|@PREFIX@|$1|g; s|@PORT@|$2|g; s|@WORKERS@|$3|g; s|@CONNS@|$4|g" \
        "$ROOT/bench/nginx/nginx.conf.in" >"$1/nginx.conf"
}

# port_of <impl>: the HTTP servers' ports, from $PORT up
port_of() {
    case $1 in may) echo "$PORT" ;; go) echo $((PORT + 1)) ;; goraw) echo $((PORT + 2)) ;; nginx) echo $((PORT + 3)) ;; floor) echo $((PORT + 4)) ;; base) echo $((PORT + 5)) ;; esac
}

# http_serve <impl> <life seconds> <nginx worker_connections>: start an HTTP
# server pinned to $SCPUS with $WORKERS workers, logging to $LOG, and wait
# until it answers.  The servers end themselves after <life>; nginx, which
# has no lifetime argument, gets a watchdog.  Sets SPID (and WATCHDOG).
http_serve() {
    local impl=$1 life=$2 port
    port=$(port_of "$impl")
    case $impl in
    may) MAY_WORKERS=$WORKERS taskset -c "$SCPUS" "$BUILD/examples/http" "$port" "$life" >>"$LOG" 2>&1 & ;;
    base) MAY_WORKERS=$WORKERS taskset -c "$SCPUS" "$BUILD/http-base" "$port" "$life" >>"$LOG" 2>&1 & ;;
    go) GOMAXPROCS=$WORKERS taskset -c "$SCPUS" "$BUILD/go-http" "$port" "$life" >>"$LOG" 2>&1 & ;;
    goraw) GOMAXPROCS=$WORKERS taskset -c "$SCPUS" "$BUILD/go-httpraw" "$port" "$life" >>"$LOG" 2>&1 & ;;
    floor) FLOOR_WORKERS=$WORKERS taskset -c "$SCPUS" "$BUILD/floor" http "$port" "$life" >>"$LOG" 2>&1 & ;;
    nginx)
        nginx_conf "$BUILD/nginx" "$port" "$WORKERS" "$3"
        taskset -c "$SCPUS" "$NGINX" -p "$BUILD/nginx/" -e "$BUILD/nginx/error.log" \
            -c "$BUILD/nginx/nginx.conf" >>"$LOG" 2>&1 &
        ;;
    esac
    SPID=$!
    if [ "$impl" = nginx ]; then
        (sleep "$life"; kill -TERM "$SPID" 2>/dev/null) &
        WATCHDOG=$!
    fi
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/plaintext" && return 0
        sleep 0.05
    done
    die "$impl server did not come up on port $port"
}

# stop: end the server started last (SPID) and its watchdog, if any
stop() {
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
    if [ -n "${WATCHDOG:-}" ]; then
        kill "$WATCHDOG" 2>/dev/null || true
        wait "$WATCHDOG" 2>/dev/null || true
        WATCHDOG=
    fi
}

# syscall_counts <pid> <secs>: perf stat of the system calls the process makes
SYSCALLS=read,recvfrom,write,sendto,writev,epoll_wait,epoll_pwait,epoll_pwait2,futex,sched_yield,nanosleep,clock_nanosleep,clock_gettime
syscall_counts() {
    local ev=raw_syscalls:sys_enter s
    for s in ${SYSCALLS//,/ }; do ev+=,syscalls:sys_enter_$s; done
    perf stat -x, -e "$ev" -p "$1" -- sleep "$2" 2>&1 >/dev/null |
        awk -F, '$3 ~ /sys_enter/ { n = $3; sub(/.*sys_enter_?/, "", n); if (n == "") n = "all"; print n, $1 }'
}
