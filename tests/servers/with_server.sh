#!/usr/bin/env bash
# tests/servers/with_server.sh [-q] redis|postgres|mariadb [--] CMD [ARGS...]
#
# Starts a private server instance, runs CMD with MAY_TEST_* variables that
# say how to reach it, stops the server and removes its files, and exits
# with CMD's status.  Tests and benchmarks never depend on a server someone
# started by hand; this is how they get one (tests/servers/README.md).
#
# The instance lives in a fresh temporary directory (mktemp -d under
# MAY_TEST_SERVER_TMP, default /tmp) and listens on a Unix socket in it and
# on 127.0.0.1 at a free port, nowhere else.  Ports are drawn at random from
# 20000-32767 (below Linux's ephemeral range, so no test's port-0 socket can
# hold one) and skipped when /proc/net/tcp shows them taken; two wrappers
# that draw the same port race to bind it, the loser's server exits and it
# draws again.  Readiness is a real client check, polled every 50 ms for at
# most MAY_TEST_SERVER_TIMEOUT seconds (default 60): redis-cli PING,
# pg_isready, mariadb-admin ping.  The stop runs on every exit path (trap on
# EXIT, INT, TERM; a watchdog kills the server if the wrapper itself is
# SIGKILLed): the server's own shutdown signal (PostgreSQL: SIGINT, a fast
# shutdown; the others SIGTERM), a wait of MAY_TEST_SERVER_STOP seconds
# (default 20), then SIGKILL.
#
# As root the servers run as an unprivileged user (postgres, mysql, redis, or
# nobody when that one is missing) through setpriv; PostgreSQL refuses root.
# Not root, they run as the caller.
#
# Variables CMD gets (nesting wrappers gives CMD several servers):
#   redis:    MAY_TEST_REDIS_HOST (127.0.0.1) _PORT _SOCK (Unix socket path)
#             _URL (redis://127.0.0.1:PORT) _PID _DIR
#   postgres: MAY_TEST_PG_HOST (127.0.0.1) _PORT _SOCKDIR (the directory of
#             the socket, libpq's host= for it) _SOCK (the socket's path)
#             _USER (may_test, a superuser) _DB (may_test) _PASSWORD (empty:
#             trust authentication) _CONNINFO (libpq keyword string, TCP)
#             _CONNINFO_UNIX (same over the socket) _URL (postgres://...,
#             TCP, for pgx) _PID _DIR; and PGHOST PGPORT PGUSER PGDATABASE
#             (TCP) so psql and friends need no arguments
#   mariadb:  MAY_TEST_MARIADB_HOST (127.0.0.1) _PORT _SOCK _USER (may_test,
#             all privileges) _PASSWORD (may_test) _DB (may_test) _PID _DIR
#             (root@localhost has no password, socket or TCP)
#
# Exit status: CMD's; 77 when the server's programs are not installed
# (ctest SKIP_RETURN_CODE); 125 when the server could not be set up or
# started (its log is printed); 2 for a usage error.  -q: no progress lines.
# MAY_TEST_SERVER_KEEP=1 keeps the directory (logs, data) for a post-mortem.
# shellcheck disable=SC2317  # functions called from traps
set -uo pipefail

SKIP=77
SETUP_FAILED=125
QUIET=0
usage() {
    sed -n '2p' "$0" | sed 's/^# /usage: /' >&2
    exit 2
}
[[ ${1:-} == -q ]] && QUIET=1 && shift
KIND=${1:-}
[[ $KIND == -h || $KIND == --help ]] && {
    sed -n '2,/^# shellcheck/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
}
shift || usage
[[ ${1:-} == -- ]] && shift
(($# > 0)) || usage
case $KIND in
redis | postgres | mariadb) ;;
pg | postgresql) KIND=postgres ;;
mysql) KIND=mariadb ;;
*) usage ;;
esac

TIMEOUT=${MAY_TEST_SERVER_TIMEOUT:-60}
STOP_TIMEOUT=${MAY_TEST_SERVER_STOP:-20}
ME=with_server[$KIND]

say() { ((QUIET)) || echo "$ME: $*" >&2; }
die() { # status message
    echo "$ME: $2" >&2
    exit "$1"
}
now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}
elapsed() { # start_ms -> "1.234"
    local d=$(($(now_ms) - $1))
    printf '%d.%03d' $((d / 1000)) $((d % 1000))
}

# --- programs --------------------------------------------------------------
need() { # program... : all on PATH or skip
    local p
    for p; do
        command -v "$p" >/dev/null 2>&1 ||
            die $SKIP "SKIP: $p not found (install with scripts/deps.sh)"
    done
}
case $KIND in
redis)
    need redis-server redis-cli
    SRV_USER=redis
    ;;
postgres)
    PG_BIN=${MAY_TEST_PG_BINDIR:-}
    if [[ -z $PG_BIN ]]; then
        for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
            [[ -x $d/postgres ]] && PG_BIN=$d && break
        done
    fi
    [[ -n $PG_BIN && -x $PG_BIN/postgres ]] ||
        die $SKIP "SKIP: PostgreSQL server not found (install postgresql-15 with scripts/deps.sh)"
    PATH=$PG_BIN:$PATH
    need postgres initdb pg_isready psql
    SRV_USER=postgres
    ;;
mariadb)
    PATH=$PATH:/usr/sbin
    need mariadbd mariadb-install-db mariadb-admin mariadb
    SRV_USER=mysql
    ;;
esac

# --- the directory and the user -------------------------------------------
TOP=${MAY_TEST_SERVER_TMP:-/tmp}
DIR=$(mktemp -d "$TOP/may-$KIND.XXXXXXXX") || die $SETUP_FAILED "cannot create a directory in $TOP"
chmod 755 "$DIR"
LOG=$DIR/server.log
AS=() # command prefix that runs the server as the unprivileged user
if ((EUID == 0)); then
    id -u "$SRV_USER" >/dev/null 2>&1 || SRV_USER=nobody
    command -v setpriv >/dev/null 2>&1 || die $SKIP "SKIP: root, and no setpriv to drop privileges"
    AS=(setpriv --reuid="$SRV_USER" --regid="$(id -g "$SRV_USER")" --init-groups --)
    mkdir "$DIR/run"
    chown "$SRV_USER:" "$DIR/run"
else
    mkdir "$DIR/run"
fi
RUN=$DIR/run # the server's own: data, socket, pid file, log

SRV_PID=
WATCHDOG=
STOPPED=0

stop_server() {
    [[ -n $SRV_PID ]] || return 0
    local pid=$SRV_PID sig=TERM t0 i
    SRV_PID=
    [[ $KIND == postgres ]] && sig=INT # smart shutdown (TERM) waits for clients
    t0=$(now_ms)
    kill -"$sig" "$pid" 2>/dev/null
    for ((i = 0; i < STOP_TIMEOUT * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$ME: server $pid still running after ${STOP_TIMEOUT}s, SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    say "stopped in $(elapsed "$t0") s"
}

cleanup() {
    ((STOPPED)) && return
    STOPPED=1
    if [[ -n $WATCHDOG ]]; then
        kill "$WATCHDOG" 2>/dev/null
        wait "$WATCHDOG" 2>/dev/null
    fi
    stop_server
    if [[ ${MAY_TEST_SERVER_KEEP:-0} == 1 ]]; then
        echo "$ME: kept $DIR" >&2
    else
        rm -rf "$DIR"
    fi
}
CMD_PID=
on_signal() { # signal-name status
    [[ -n $CMD_PID ]] && kill -"$1" "$CMD_PID" 2>/dev/null
    cleanup
    trap - "$1"
    exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

# Run as the server's user, in $DIR (initdb wants a readable cwd).
as_srv() { (cd "$DIR" && "${AS[@]}" "$@"); }

show_log() {
    local f
    for f in "$LOG" "$RUN"/*.err "$RUN"/setup.log; do
        [[ -s $f ]] || continue
        echo "--- $f (first and last 20 lines)" >&2
        if (($(wc -l <"$f") > 40)); then
            head -n 20 "$f" >&2
            echo "[...]" >&2
            tail -n 20 "$f" >&2
        else
            cat "$f" >&2
        fi
    done
}

# --- ports ------------------------------------------------------------------
port_taken() { # port: some socket on this machine has it (TCP, v4 or v6)
    local hex
    hex=$(printf ':%04X ' "$1")
    grep -qi -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
pick_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
        port_taken "$p" || {
            echo "$p"
            return 0
        }
    done
    return 1
}

# --- per server: prepare once, start (per port), ready check, env ----------
prepare() {
    case $KIND in
    redis) ;;
    postgres)
        as_srv initdb -D "$RUN/data" -U may_test --auth=trust -E UTF8 --locale=C \
            --no-sync --no-instructions >"$RUN/setup.log" 2>&1
        ;;
    mariadb)
        # A user for the tests, made during the bootstrap.
        cat >"$DIR/users.sql" <<'EOF'
FLUSH PRIVILEGES;
CREATE DATABASE may_test;
CREATE USER 'may_test'@'localhost' IDENTIFIED BY 'may_test';
CREATE USER 'may_test'@'127.0.0.1' IDENTIFIED BY 'may_test';
GRANT ALL PRIVILEGES ON *.* TO 'may_test'@'localhost' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'may_test'@'127.0.0.1' WITH GRANT OPTION;
EOF
        chmod 644 "$DIR/users.sql"
        as_srv mkdir "$RUN/tmp"
        as_srv mariadb-install-db --no-defaults --datadir="$RUN/data" --tmpdir="$RUN/tmp" \
            --auth-root-authentication-method=normal --skip-test-db \
            --skip-name-resolve --extra-file="$DIR/users.sql" \
            --innodb-log-file-size=8M --innodb-buffer-pool-size=16M \
            >"$RUN/setup.log" 2>&1
        ;;
    esac
}

start() { # port: start in the background, set SRV_PID
    local port=$1
    : >"$LOG"
    case $KIND in
    redis)
        SOCK=$RUN/redis.sock
        (cd "$DIR" && exec "${AS[@]}" redis-server --port "$port" --bind 127.0.0.1 \
            --unixsocket "$SOCK" --unixsocketperm 777 --save '' --appendonly no \
            --daemonize no --dir "$RUN" --logfile '' --protected-mode no) \
            >"$LOG" 2>&1 </dev/null &
        ;;
    postgres)
        SOCK=$RUN/.s.PGSQL.$port
        (cd "$DIR" && exec "${AS[@]}" postgres -D "$RUN/data" -p "$port" -k "$RUN" \
            -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
            -c full_page_writes=off -c max_connections=200 -c logging_collector=off) \
            >"$LOG" 2>&1 </dev/null &
        ;;
    mariadb)
        SOCK=$RUN/mysqld.sock
        (cd "$DIR" && exec "${AS[@]}" mariadbd --no-defaults --datadir="$RUN/data" \
            --tmpdir="$RUN/tmp" \
            --socket="$SOCK" --port="$port" --bind-address=127.0.0.1 \
            --skip-networking=0 --skip-name-resolve --pid-file="$RUN/mysqld.pid" \
            --innodb-log-file-size=8M --innodb-buffer-pool-size=16M \
            --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
            --max-connections=500 --skip-log-bin) \
            >>"$LOG" 2>&1 </dev/null &
        ;;
    esac
    SRV_PID=$!
}

ready() { # port: one readiness probe
    case $KIND in
    redis) [[ $(redis-cli -s "$SOCK" ping 2>/dev/null) == PONG ]] ;;
    postgres) pg_isready -q -h 127.0.0.1 -p "$1" -t 1 ;;
    mariadb) mariadb-admin --no-defaults -S "$SOCK" -u root ping >/dev/null 2>&1 ;;
    esac
}

after_ready() { # port: one-time setup on the running server
    case $KIND in
    postgres)
        psql -X -q -h "$RUN" -p "$1" -U may_test -d postgres -v ON_ERROR_STOP=1 \
            -c 'CREATE DATABASE may_test' >>"$RUN/setup.log" 2>&1
        ;;
    *) ;;
    esac
}

export_env() { # port
    local port=$1
    case $KIND in
    redis)
        export MAY_TEST_REDIS_HOST=127.0.0.1 MAY_TEST_REDIS_PORT=$port \
            MAY_TEST_REDIS_SOCK=$SOCK MAY_TEST_REDIS_URL=redis://127.0.0.1:$port \
            MAY_TEST_REDIS_PID=$SRV_PID MAY_TEST_REDIS_DIR=$DIR
        ;;
    postgres)
        export MAY_TEST_PG_HOST=127.0.0.1 MAY_TEST_PG_PORT=$port \
            MAY_TEST_PG_SOCKDIR=$RUN MAY_TEST_PG_SOCK=$SOCK \
            MAY_TEST_PG_USER=may_test MAY_TEST_PG_DB=may_test MAY_TEST_PG_PASSWORD='' \
            MAY_TEST_PG_CONNINFO="host=127.0.0.1 port=$port user=may_test dbname=may_test sslmode=disable" \
            MAY_TEST_PG_CONNINFO_UNIX="host=$RUN port=$port user=may_test dbname=may_test" \
            MAY_TEST_PG_URL="postgres://may_test@127.0.0.1:$port/may_test?sslmode=disable" \
            MAY_TEST_PG_PID=$SRV_PID MAY_TEST_PG_DIR=$DIR \
            PGHOST=127.0.0.1 PGPORT=$port PGUSER=may_test PGDATABASE=may_test
        ;;
    mariadb)
        export MAY_TEST_MARIADB_HOST=127.0.0.1 MAY_TEST_MARIADB_PORT=$port \
            MAY_TEST_MARIADB_SOCK=$SOCK MAY_TEST_MARIADB_USER=may_test \
            MAY_TEST_MARIADB_PASSWORD=may_test MAY_TEST_MARIADB_DB=may_test \
            MAY_TEST_MARIADB_PID=$SRV_PID MAY_TEST_MARIADB_DIR=$DIR
        ;;
    esac
}

# --- go ---------------------------------------------------------------------
t0=$(now_ms)
if ! prepare; then
    show_log
    die $SETUP_FAILED "setting up the $KIND instance failed"
fi
t_prep=$(elapsed "$t0")

# Stops the server and removes the directory should this shell die without
# running its traps (SIGKILL, e.g. a ctest timeout).  Its output goes to
# /dev/null so that it never holds the caller's pipes open.
watchdog() { # parent server-pid dir
    trap - EXIT INT TERM HUP
    while kill -0 "$1" 2>/dev/null; do sleep 1; done
    SRV_PID=$2
    stop_server
    [[ ${MAY_TEST_SERVER_KEEP:-0} == 1 ]] || rm -rf "$3"
}

PORT=
for attempt in 1 2 3 4 5 6; do
    port=$(pick_port) || die $SETUP_FAILED "no free port found"
    t1=$(now_ms)
    start "$port"
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    ok=0
    while (($(now_ms) < deadline)); do
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            break # died: a port someone took meanwhile, most likely
        fi
        if ready "$port"; then
            ok=1
            break
        fi
        sleep 0.05
    done
    if ((ok)); then
        PORT=$port
        break
    fi
    if kill -0 "$SRV_PID" 2>/dev/null; then
        show_log
        die $SETUP_FAILED "not ready after ${TIMEOUT}s (port $port)"
    fi
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=
    say "server exited before it was ready (port $port, attempt $attempt)"
    if ((attempt == 6)); then
        show_log
        die $SETUP_FAILED "the server did not start"
    fi
done
watchdog $$ "$SRV_PID" "$DIR" >/dev/null 2>&1 </dev/null &
WATCHDOG=$!
if ! after_ready "$PORT"; then
    show_log
    die $SETUP_FAILED "setting up the running $KIND instance failed"
fi
export_env "$PORT"
say "ready on 127.0.0.1:$PORT and $SOCK (pid $SRV_PID), set up in $t_prep s, started in $(elapsed "$t1") s"

# CMD runs in the background so that a signal to this shell is handled (and
# passed on) at once; stdin stays the caller's.
if { exec 3<&0; } 2>/dev/null; then
    "$@" <&3 3<&- &
    CMD_PID=$!
    exec 3<&-
else # no stdin at all
    "$@" </dev/null &
    CMD_PID=$!
fi
wait "$CMD_PID"
rc=$?
CMD_PID=
exit "$rc"
