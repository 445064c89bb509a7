/* pg.h - a pipelined PostgreSQL connection pool for coroutines, on libpq
 * and libmay's fd wait (apps/techempower; pg.c has the design).
 *
 * Many coroutines' queries travel over few connections: a request is a
 * "job" (one or more queries) handed to one connection's driver, which
 * sends every job queued meanwhile in libpq's pipeline mode, flushes once,
 * and hands each job its results as they arrive, in order.  The caller
 * only waits; it never touches a PGconn.
 *
 * Errors are negative errno values: -ETIMEDOUT (the deadline passed while
 * waiting for a slot, a connection or the answer), -ECANCELED (the caller
 * was cancelled), -ECONNRESET (the connection broke under the job; it
 * reconnects by itself), -ECONNABORTED (an earlier query of the same
 * pipeline segment failed, so the server skipped this one), -EDEADLK
 * (PostgreSQL broke a deadlock, SQLSTATE 40P01), -EIO (any other SQL
 * error), -ENOENT (no such row), -EPROTO (an answer of an unexpected
 * shape), -ENOMEM, -EPERM (not called from a coroutine).  Deadlines are
 * absolute may_now() nanoseconds, as everywhere in libmay.
 */
#ifndef TE_PG_H
#define TE_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct te_pg te_pg_t;

typedef struct te_pg_config {
    const char *conninfo;       /* libpq connection string or URI (required) */
    int conns;                  /* connections [may_workers()] */
    int64_t connect_timeout_ms; /* each connection attempt [5 000] */
    unsigned max_jobs;          /* jobs queued or in flight per connection;
                                   beyond, callers wait (checkout) [1 024] */
    bool sync_per_job;          /* a Sync after every job; otherwise read-only
                                   jobs sent together share one [false] */
} te_pg_config_t;

/* Connect every connection (prepare the statements, enter pipeline mode)
 * and start their drivers.  From a coroutine or a plain thread.  0 or
 * -errno, with libpq's message in err. */
int te_pg_open(te_pg_t **pg, const te_pg_config_t *cfg, char *err, size_t errlen);
/* Stop the drivers and close the connections; jobs still waiting fail
 * with -ECANCELED.  Nobody may submit during or after it. */
void te_pg_close(te_pg_t *pg);

typedef struct te_world {
    int32_t id;
    int32_t randomnumber;
} te_world_t;

/* n (1..) rows of World, each by its own prepared SELECT, pipelined:
 * w[i].id in, w[i].randomnumber out.  0 or -errno. */
int te_pg_worlds(te_pg_t *pg, te_world_t *w, int n, int64_t deadline);
/* Set randomnumber of the n rows w[i].id (distinct ids; sorted by id, so
 * that concurrent updates lock rows in one order) in ONE statement, its own
 * transaction.  0 or -errno. */
int te_pg_update(te_pg_t *pg, const te_world_t *w, int n, int64_t deadline);
/* Every row of Fortune (id, message; no ORDER BY), in *res, which the
 * caller PQclear()s.  0 or -errno. */
int te_pg_fortunes(te_pg_t *pg, PGresult **res, int64_t deadline);

typedef struct te_pg_stats {
    uint64_t jobs;       /* jobs answered (or failed) */
    uint64_t queries;    /* queries sent */
    uint64_t syncs;      /* Sync messages sent (pipeline segments) */
    uint64_t batches;    /* times a driver took queued jobs and sent them */
    uint64_t reads;      /* PQconsumeInput calls after a readiness wait */
    uint64_t reconnects; /* connections made again after a failure */
    uint64_t errors;     /* jobs that failed */
    uint64_t max_inflight; /* most jobs in flight on one connection at once */
} te_pg_stats_t;
void te_pg_stats(te_pg_t *pg, te_pg_stats_t *out);

#endif /* TE_PG_H */
