#!/usr/bin/env bash
# apps/techempower/with_db.sh [-q] CMD [ARGS...] - start a private
# PostgreSQL 15 (tests/servers/with_server.sh postgres: a temporary
# directory, an unprivileged user, 127.0.0.1 at a free port, stopped and
# removed on every exit path), load TechEmpower's tables into it (db.sh),
# then run CMD with DATABASE_URL set to the server's libpq connection
# string (TCP) besides with_server.sh's MAY_TEST_PG_* and PG* variables.
#
# Exit status: CMD's; 77 when PostgreSQL is not installed; 125 when the
# server could not be started or loaded.  -q: no progress lines.
#
#   apps/techempower/with_db.sh build/debug/apps/techempower/techempower 8080
#   apps/techempower/with_db.sh psql -c 'SELECT count(*) FROM world'
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in
-h | --help)
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
--loaded) # inside the wrapper: load, then become CMD
    shift
    if ! "$HERE/db.sh"; then
        echo "with_db.sh: loading the TechEmpower tables failed" >&2
        exit 125
    fi
    export DATABASE_URL=$MAY_TEST_PG_CONNINFO
    exec "$@"
    ;;
esac
q=()
[[ ${1:-} == -q ]] && q=(-q) && shift
(($# > 0)) || {
    echo "usage: with_db.sh [-q] CMD [ARGS...]" >&2
    exit 2
}
exec bash "$HERE/../../tests/servers/with_server.sh" "${q[@]}" postgres -- \
    bash "$HERE/with_db.sh" --loaded "$@"
