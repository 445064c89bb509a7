#!/usr/bin/env bash
# tests/servers/smoke.sh redis|postgres|mariadb - the ctest smoke test of
# with_server.sh for one server:
#   1. a client's trivial query over TCP and over the Unix socket succeeds
#      (redis-cli PING, psql 'select 1', mariadb 'select 1' as the test
#      user), and the wrapper exits 0;
#   2. a command that exits 3 makes the wrapper exit 3;
#   3. a wrapper sent SIGTERM while its command runs exits 143;
#   4. a wrapper killed with SIGKILL leaves the server to its watchdog
#      (3 and 4 for redis only, unless SMOKE_ALL=1);
# and after each, the server's process is gone, nothing listens on its port
# and its directory is removed.  Exit 77 (skip) when the wrapper skips.
# shellcheck disable=SC2016  # the $MAY_TEST_* in CHECK expand in the wrapped sh
set -uo pipefail
KIND=${1:?usage: $0 redis|postgres|mariadb}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$HERE/with_server.sh
INFO=$(mktemp)
trap 'rm -f "$INFO"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# The command each case runs: a client check, then its pid/port/dir to $INFO.
case $KIND in
redis)
    CHECK='[ "$(redis-cli -h "$MAY_TEST_REDIS_HOST" -p "$MAY_TEST_REDIS_PORT" ping)" = PONG ] &&
        [ "$(redis-cli -s "$MAY_TEST_REDIS_SOCK" ping)" = PONG ] &&
        echo "$MAY_TEST_REDIS_PID $MAY_TEST_REDIS_PORT $MAY_TEST_REDIS_DIR" >"$INFO"'
    ;;
postgres)
    CHECK='[ "$(psql -X -At "$MAY_TEST_PG_CONNINFO" -c "select 1")" = 1 ] &&
        [ "$(psql -X -At "$MAY_TEST_PG_CONNINFO_UNIX" -c "select current_user")" = may_test ] &&
        [ "$(psql -X -At -c "select current_database()")" = may_test ] &&
        echo "$MAY_TEST_PG_PID $MAY_TEST_PG_PORT $MAY_TEST_PG_DIR" >"$INFO"'
    ;;
mariadb)
    CHECK='m() { mariadb --no-defaults -u "$MAY_TEST_MARIADB_USER" -p"$MAY_TEST_MARIADB_PASSWORD" -N -B "$@"; }
        [ "$(m -h "$MAY_TEST_MARIADB_HOST" -P "$MAY_TEST_MARIADB_PORT" "$MAY_TEST_MARIADB_DB" -e "select 1")" = 1 ] &&
        [ "$(m -S "$MAY_TEST_MARIADB_SOCK" -e "select database()" "$MAY_TEST_MARIADB_DB")" = may_test ] &&
        echo "$MAY_TEST_MARIADB_PID $MAY_TEST_MARIADB_PORT $MAY_TEST_MARIADB_DIR" >"$INFO"'
    ;;
*) fail "unknown server $KIND" ;;
esac
export INFO

listening() { # port: a LISTEN socket on it (state 0A)
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

gone() { # case-name: the instance recorded in $INFO left nothing behind
    local pid port dir i
    read -r pid port dir <"$INFO" || fail "$1: the command did not record its server"
    for ((i = 0; i < 100; i++)); do # the SIGKILL case waits for the watchdog
        kill -0 "$pid" 2>/dev/null || listening "$port" || [[ -e $dir ]] || break
        sleep 0.1
    done
    ! kill -0 "$pid" 2>/dev/null || fail "$1: server pid $pid still runs"
    ! listening "$port" || fail "$1: something still listens on port $port"
    [[ ! -e $dir ]] || fail "$1: $dir still exists"
    : >"$INFO"
    echo "ok: $1 (server $pid, port $port: stopped and removed)"
}

ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
t0=$(ms)
bash "$W" "$KIND" -- sh -c "$CHECK"
rc=$?
((rc == 77)) && exit 77
((rc == 0)) || fail "client check: wrapper exited $rc"
echo "$KIND: start, check and stop took $(($(ms) - t0)) ms"
gone "client check"

bash "$W" -q "$KIND" -- sh -c "$CHECK && exit 3"
rc=$?
((rc == 3)) || fail "failing command: wrapper exited $rc, want 3"
gone "failing command (exit 3)"

# Cases 3 and 4 exercise the wrapper's signal paths, which are the same for
# every server (1 and 2 cover each server's own stop): redis, the fastest
# to start, runs them; the others set SMOKE_ALL=1 to run them too.
if [[ $KIND != redis && ${SMOKE_ALL:-0} != 1 ]]; then
    echo "$KIND: all cases passed (signal cases: see servers_redis)"
    exit 0
fi

# SIGTERM to the wrapper while its command runs.
bash "$W" -q "$KIND" -- sh -c "$CHECK && exec sleep 60" &
wpid=$!
for ((i = 0; i < 600; i++)); do
    [[ -s $INFO ]] && break
    sleep 0.1
done
kill -TERM "$wpid"
wait "$wpid"
rc=$?
((rc == 143)) || fail "SIGTERM: wrapper exited $rc, want 143"
gone "SIGTERM to the wrapper"

# SIGKILL: no trap runs; the watchdog stops the server and removes its
# directory.  (The orphaned sleep is killed here by its pid.)
bash "$W" -q "$KIND" -- sh -c "$CHECK && echo \$\$ >\"\$INFO.cmd\" && exec sleep 60" &
wpid=$!
for ((i = 0; i < 600; i++)); do
    [[ -s $INFO.cmd ]] && break
    sleep 0.1
done
kill -KILL "$wpid"
wait "$wpid" 2>/dev/null
kill "$(cat "$INFO.cmd")" 2>/dev/null
rm -f "$INFO.cmd"
gone "SIGKILL to the wrapper"
echo "$KIND: all cases passed"
