/* pq_bench.c - Debian's unmodified libpq, synchronous API, in coroutines
 * on the default workers, linked with libmay_hook: the client side of
 * bench/hooks.sh (docs/BENCHMARKS.md, "Blocking libraries through
 * libmay_hook").  Never part of the tests.
 *
 *   bench_hooks_pq CONNINFO select1|lookup [conns [queries]]
 *
 * conns coroutines (default 64) each open a connection (PQconnectdb),
 * prepare the query once (PQprepare) and run it (PQexecPrepared, one query
 * in flight per connection) until queries (default 100000) have run in
 * all; every result is checked.  select1: SELECT 1.  lookup: SELECT v FROM
 * kv WHERE k = $1, a primary-key lookup of one row in the 10 000-row table
 * bench/hooks.sh creates (v is 'v' || k).  Prints
 * "requests N seconds S rps R".  Its peer is bench/go/pgx, which pgx's
 * statement cache makes run the same prepared statements. */
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "may.h"

static const char *conninfo;
static bool lookup;
static long per_conn;
static atomic_long errors;

static void *conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    PGconn *pc = PQconnectdb(conninfo);
    if (PQstatus(pc) != CONNECTION_OK) {
        fprintf(stderr, "pq_bench: connect: %s", PQerrorMessage(pc));
        atomic_fetch_add(&errors, per_conn);
        PQfinish(pc);
        return NULL;
    }
    PGresult *res = PQprepare(pc, "q", lookup ? "SELECT v FROM kv WHERE k = $1" : "SELECT 1",
                              lookup ? 1 : 0, NULL);
    long todo = per_conn;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pq_bench: prepare: %s", PQerrorMessage(pc));
        atomic_fetch_add(&errors, per_conn);
        todo = 0;
    }
    PQclear(res);
    for (long i = 0; i < todo; i++) {
        char k[16], want[16];
        int key = (int)((c * 7919L + i) % 10000) + 1;
        snprintf(k, sizeof k, "%d", key);
        if (lookup)
            snprintf(want, sizeof want, "v%d", key);
        else
            strcpy(want, "1");
        const char *params[1] = { k };
        res = PQexecPrepared(pc, "q", lookup ? 1 : 0, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
            strcmp(PQgetvalue(res, 0, 0), want) != 0)
            atomic_fetch_add(&errors, 1);
        PQclear(res);
    }
    PQfinish(pc);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[2], "select1") && strcmp(argv[2], "lookup"))) {
        fprintf(stderr, "usage: bench_hooks_pq CONNINFO select1|lookup [conns [queries]]\n");
        return 2;
    }
    conninfo = argv[1];
    lookup = strcmp(argv[2], "lookup") == 0;
    int conns = argc > 3 ? atoi(argv[3]) : 64;
    long queries = argc > 4 ? atol(argv[4]) : 100000;
    if (conns < 1 || queries < 1)
        return 2;
    per_conn = (queries + conns - 1) / conns;
    may_co_t **co = calloc((size_t)conns, sizeof *co);
    if (!co)
        return 1;
    int64_t t0 = may_now();
    for (int c = 0; c < conns; c++)
        if (may_spawn(&co[c], conn, (void *)(intptr_t)c, &(may_spawn_opts_t){ .name = "conn" }) < 0)
            return 1;
    for (int c = 0; c < conns; c++)
        may_join(co[c], NULL, MAY_FOREVER);
    double s = (double)(may_now() - t0) / 1e9;
    long n = per_conn * conns;
    printf("requests %ld seconds %.3f rps %.0f errors %ld\n", n, s, (double)n / s,
           atomic_load(&errors));
    free(co);
    return atomic_load(&errors) ? 1 : may_shutdown() < 0;
}
