/* real_pq.c - Debian's unmodified libpq, synchronous API (PQconnectdb,
 * PQexec), from 100 coroutines on one worker (tests/real/real.h has the
 * harness).
 *
 * Each coroutine opens its own connection and runs
 * SELECT pg_sleep(0.1), <i>, and checks that its row is its own.
 *
 * The server: MAY_TEST_PG_CONNINFO (a libpq connection string), as
 * tests/servers/with_server.sh postgres exports it, or else libpq's own
 * PGHOST (a socket directory or a host) with PGPORT, PGUSER, PGDATABASE;
 * neither set: skip (77). */
#include <libpq-fe.h>

#include "real.h"

static const char *conninfo;

static int request(int i, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(conninfo);
    int rc = -1;
    if (!c || PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "connect: %s", c ? PQerrorMessage(c) : "out of memory");
        goto out_finish;
    }
    char q[64], want[16];
    snprintf(q, sizeof q, "SELECT pg_sleep(0.1), %d", i);
    snprintf(want, sizeof want, "%d", i);
    int64_t t0 = may_now();
    PGresult *res = PQexec(c, q);
    int64_t ms = (may_now() - t0) / 1000000;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: %s", q, PQerrorMessage(c));
    } else if (PQntuples(res) != 1 || PQnfields(res) != 2 ||
               strcmp(PQgetvalue(res, 0, 1), want) != 0) {
        snprintf(err, errlen, "%s: got %d rows, '%s'", q, PQntuples(res),
                 PQntuples(res) > 0 && PQnfields(res) > 1 ? PQgetvalue(res, 0, 1) : "");
    } else if (ms < REAL_REQUEST_MS * 9 / 10) {
        snprintf(err, errlen, "%s: answered after %lld ms", q, (long long)ms);
    } else {
        rc = 0;
    }
    PQclear(res);
out_finish:
    PQfinish(c);
    return rc;
}

int main(int argc, char **argv)
{
    conninfo = real_env("MAY_TEST_PG_CONNINFO", NULL);
    if (!conninfo && !real_env("PGHOST", NULL)) {
        printf("real_pq: skipped: no MAY_TEST_PG_CONNINFO or PGHOST "
               "(run under tests/servers/with_server.sh postgres)\n");
        return REAL_SKIP;
    }
    if (!conninfo)
        conninfo = "";
    return real_main(argc, argv, "real_pq", request);
}
