#!/usr/bin/env bash
# apps/techempower/db.sh [CONNINFO] - load TechEmpower's tables and rows
# (create.sql: World, 10 000 rows; Fortune, 12 rows; each also as the
# quoted "World" and "Fortune") into a running PostgreSQL.
#
# CONNINFO is a libpq connection string or URI; without it, the first set
# of DATABASE_URL and MAY_TEST_PG_CONNINFO (what
# tests/servers/with_server.sh postgres exports), else libpq's PGHOST,
# PGPORT, PGUSER and PGDATABASE.  Existing tables of those names are
# replaced.  Exit status: 0, or psql's (1, 2, 3) on failure.
#
# Normally run through apps/techempower/with_db.sh, which starts a private
# server, loads it with this script and runs a command.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac
CONN=${1:-${DATABASE_URL:-${MAY_TEST_PG_CONNINFO:-}}}
args=(-X -q -v ON_ERROR_STOP=1 -f "$HERE/create.sql")
if [[ -n $CONN ]]; then
    exec psql "${args[@]}" -d "$CONN" >/dev/null
else
    exec psql "${args[@]}" >/dev/null
fi
