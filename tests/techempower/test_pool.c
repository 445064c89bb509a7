/* test_pool.c - apps/techempower/pg.c, the pipelined PostgreSQL pool,
 * against a real PostgreSQL 15 loaded with TechEmpower's tables (run under
 * apps/techempower/with_db.sh; without MAY_TEST_PG_CONNINFO it skips, 77).
 *
 * What it checks, each through pg.h only, with a plain blocking libpq
 * connection on the main thread as the independent witness:
 *   - routing: 200 coroutines on 2 connections ask for random rows, 1..20
 *     per job; every answer matches a snapshot of World taken before (a
 *     result handed to the wrong job, or out of order, would not);
 *   - pipelining: those jobs went out in far fewer batches than jobs, and
 *     read-only jobs shared Syncs (without pipelining, batches == jobs);
 *   - updates: concurrent bulk updates (overlapping ids, sorted) all
 *     succeed (no deadlock) and are in the table, read back by the witness;
 *   - fortunes: the 12 rows, the <script> one and the Japanese one;
 *   - errors: a missing row is -ENOENT; a job behind a row lock past its
 *     deadline is -ETIMEDOUT, then a checkout past its deadline is too
 *     (pool of 1 connection, 1 job); once the lock goes the pool works;
 *   - reconnect: the witness terminates the pool's backends; jobs fail
 *     with -ECONNRESET (or succeed) and, within 5 s, succeed again.
 */
#include <errno.h>
#include <libpq-fe.h>

#include "../test.h"
#include "pg.h"

#define NROWS 10000

static const char *conninfo;
static PGconn *witness;
static int32_t snapshot[NROWS + 1];

static PGresult *wexec(const char *sql)
{
    PGresult *r = PQexec(witness, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        fprintf(stderr, "witness: %s: %s", sql, PQerrorMessage(witness));
        abort();
    }
    return r;
}

static void take_snapshot(void)
{
    PGresult *r = wexec("SELECT id, randomnumber FROM world");
    ASSERT_EQ(PQntuples(r), NROWS);
    for (int i = 0; i < NROWS; i++) {
        int id = atoi(PQgetvalue(r, i, 0));
        ASSERT(id >= 1 && id <= NROWS);
        snapshot[id] = atoi(PQgetvalue(r, i, 1));
    }
    PQclear(r);
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* ---- routing and pipelining ------------------------------------------ */

static te_pg_t *pool;
static _Atomic long checked;

static void *reader_co(void *arg)
{
    uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    te_world_t w[20];
    int rounds = (int)test_scale(20);
    for (int k = 0; k < rounds; k++) {
        int n = 1 + (int)(rnd(&seed) % 20);
        for (int i = 0; i < n; i++)
            w[i].id = 1 + (int32_t)(rnd(&seed) % NROWS);
        int r = te_pg_worlds(pool, w, n, may_deadline_in(TEST_MS(20000)));
        ASSERT_EQ(r, 0);
        for (int i = 0; i < n; i++)
            ASSERT_EQ(w[i].randomnumber, snapshot[w[i].id]);
        atomic_fetch_add(&checked, n);
    }
    return NULL;
}

/* n coroutines fn(i), or fn(arg) when arg is not NULL; joined. */
static void run_cos(int n, may_fn_t fn, void *arg)
{
    may_co_t **cos = calloc((size_t)n, sizeof *cos);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(may_spawn(&cos[i], fn, arg ? arg : (void *)(uintptr_t)i, NULL), 0);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(may_join(cos[i], NULL, MAY_FOREVER), MAY_DONE);
    free(cos);
}

/* The pool is for coroutines: run a plain function in one. */
static void *in_co(void *arg)
{
    ((void (*)(void))arg)();
    return NULL;
}

static void test_routing(void)
{
    take_snapshot();
    te_pg_stats_t before, after;
    te_pg_stats(pool, &before);
    int ncos = 200; /* (MAY_TEST_SCALE shortens their rounds) */
    run_cos(ncos, reader_co, NULL);
    te_pg_stats(pool, &after);
    long jobs = (long)(after.jobs - before.jobs);
    long batches = (long)(after.batches - before.batches);
    long syncs = (long)(after.syncs - before.syncs);
    printf("routing: %d coroutines, %ld jobs, %ld rows checked; %ld batches "
           "(%.1f jobs each), %ld syncs, %llu reads, up to %llu jobs in flight on a "
           "connection\n",
           ncos, jobs, (long)checked, batches, (double)jobs / (double)batches, syncs,
           (unsigned long long)(after.reads - before.reads),
           (unsigned long long)after.max_inflight);
    ASSERT_EQ(after.errors, before.errors);
    /* pipelining: many jobs in flight on one connection at once (one at a
     * time would be 1), sent in fewer writes than jobs, read-only jobs
     * sharing Syncs */
    ASSERT_GE(after.max_inflight, 10);
    ASSERT_LT(batches, jobs);
    ASSERT_LT(syncs, jobs);
}

/* ---- updates ----------------------------------------------------------- */

#define UPD_N 20
static te_world_t upd[64][UPD_N];

static int cmp_world(const void *a, const void *b)
{
    const te_world_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static void *updater_co(void *arg)
{
    int k = (int)(uintptr_t)arg;
    te_world_t *w = upd[k];
    /* ids overlap between coroutines (k*7 .. k*7+19, step 1): concurrent
     * updates lock rows in id order, so none may deadlock */
    for (int i = 0; i < UPD_N; i++) {
        w[i].id = 1 + k * 7 + i;
        w[i].randomnumber = 0;
    }
    int r = te_pg_worlds(pool, w, UPD_N, may_deadline_in(TEST_MS(20000)));
    ASSERT_EQ(r, 0);
    for (int i = 0; i < UPD_N; i++) {
        ASSERT(w[i].randomnumber >= 1 && w[i].randomnumber <= 10000);
        w[i].randomnumber = 1 + (k * 31 + i * 17) % 10000;
    }
    qsort(w, UPD_N, sizeof *w, cmp_world);
    r = te_pg_update(pool, w, UPD_N, may_deadline_in(TEST_MS(20000)));
    ASSERT_EQ(r, 0);
    return NULL;
}

static te_world_t one = { .id = 9999 };
static void update_one(void)
{
    ASSERT_EQ(te_pg_update(pool, &one, 1, may_deadline_in(TEST_MS(20000))), 0);
}

static void test_updates(void)
{
    run_cos(64, updater_co, NULL);
    /* the last writer of each id is unknown; but every id's value must be
     * one of the values written for it, and ids written once exactly it */
    take_snapshot();
    int exact = 0;
    for (int id = 1; id <= 1 + 63 * 7 + UPD_N - 1; id++) {
        int writers = 0, match = 0;
        for (int k = 0; k < 64; k++)
            for (int i = 0; i < UPD_N; i++)
                if (upd[k][i].id == id) {
                    writers++;
                    match |= upd[k][i].randomnumber == snapshot[id];
                }
        if (!writers)
            continue;
        ASSERT(match);
        exact += writers == 1;
    }
    ASSERT_GT(exact, 0);
    /* and one more, single, read back exactly */
    one.randomnumber = snapshot[9999] % 10000 + 1;
    run_cos(1, in_co, (void *)update_one);
    PGresult *r = wexec("SELECT randomnumber FROM world WHERE id = 9999");
    ASSERT_EQ(atoi(PQgetvalue(r, 0, 0)), one.randomnumber);
    PQclear(r);
    printf("updates: 64 x %d rows updated concurrently, read back\n", UPD_N);
}

/* ---- fortunes and errors ----------------------------------------------- */

static void test_fortunes(void)
{
    PGresult *res = NULL;
    ASSERT_EQ(te_pg_fortunes(pool, &res, may_deadline_in(TEST_MS(20000))), 0);
    ASSERT_EQ(PQntuples(res), 12);
    int seen = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        int id = atoi(PQgetvalue(res, i, 0));
        const char *m = PQgetvalue(res, i, 1);
        if (id == 11)
            seen += strcmp(m, "<script>alert(\"This should not be displayed in a browser "
                              "alert box.\");</script>") == 0;
        if (id == 12)
            seen += strcmp(m, "\xe3\x83\x95\xe3\x83\xac\xe3\x83\xbc\xe3\x83\xa0\xe3\x83\xaf"
                              "\xe3\x83\xbc\xe3\x82\xaf\xe3\x81\xae\xe3\x83\x99\xe3\x83\xb3"
                              "\xe3\x83\x81\xe3\x83\x9e\xe3\x83\xbc\xe3\x82\xaf") == 0;
    }
    ASSERT_EQ(seen, 2);
    PQclear(res);
}

static void test_missing(void)
{
    te_world_t w[3] = { { .id = 1 }, { .id = 0 }, { .id = 2 } };
    ASSERT_EQ(te_pg_worlds(pool, w, 3, may_deadline_in(TEST_MS(20000))), -ENOENT);
    ASSERT_EQ(te_pg_worlds(pool, w, 0, MAY_FOREVER), -EINVAL);
}

/* A row lock held by the witness stalls an update: its deadline passes
 * (-ETIMEDOUT), then, on a pool of one connection and one job, so does a
 * checkout; after the commit everything works again. */
static te_pg_t *tiny;
static void *stuck_co(void *arg)
{
    (void)arg;
    te_world_t w = { .id = 4242, .randomnumber = 7 };
    int64_t t0 = may_now();
    ASSERT_EQ(te_pg_update(tiny, &w, 1, may_deadline_in(TEST_MS(200))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(190));
    /* the abandoned job still holds the only slot: checkout times out */
    te_world_t r = { .id = 1 };
    t0 = may_now();
    ASSERT_EQ(te_pg_worlds(tiny, &r, 1, may_deadline_in(TEST_MS(100))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(90));
    return NULL;
}

static void *after_co(void *arg)
{
    (void)arg;
    te_world_t r = { .id = 4242 };
    ASSERT_EQ(te_pg_worlds(tiny, &r, 1, may_deadline_in(TEST_MS(20000))), 0);
    ASSERT_EQ(r.randomnumber, 7); /* the abandoned update went through */
    return NULL;
}

static void test_deadlines(void)
{
    char err[256];
    te_pg_config_t cfg = { .conninfo = conninfo, .conns = 1, .max_jobs = 1 };
    ASSERT_EQ(te_pg_open(&tiny, &cfg, err, sizeof err), 0);
    PQclear(wexec("BEGIN"));
    PQclear(wexec("UPDATE world SET randomnumber = 1 WHERE id = 4242"));
    run_cos(1, stuck_co, NULL);
    PQclear(wexec("COMMIT"));
    run_cos(1, after_co, NULL);
    te_pg_close(tiny);
    printf("deadlines: completion and checkout time out; the pool recovers\n");
}

/* ---- reconnect --------------------------------------------------------- */

static _Atomic int ok_after;
static void *reconnect_co(void *arg)
{
    (void)arg;
    te_world_t w = { .id = 77 };
    int64_t until = may_deadline_in(TEST_MS(5000));
    int r;
    while ((r = te_pg_worlds(pool, &w, 1, may_deadline_in(TEST_MS(2000)))) != 0) {
        ASSERT(r == -ECONNRESET || r == -ECONNABORTED || r == -EIO || r == -ETIMEDOUT);
        ASSERT_LT(may_now(), until);
        may_sleep(TEST_MS(10));
    }
    atomic_fetch_add(&ok_after, 1);
    return NULL;
}

static void test_reconnect(void)
{
    te_pg_stats_t before, after;
    te_pg_stats(pool, &before);
    PGresult *r = wexec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'techempower'");
    ASSERT_GE(atoi(PQgetvalue(r, 0, 0)), 2); /* (and maybe tiny's, exiting) */
    PQclear(r);
    run_cos(20, reconnect_co, NULL);
    ASSERT_EQ(ok_after, 20);
    te_pg_stats(pool, &after);
    ASSERT_GE(after.reconnects - before.reconnects, 1);
    printf("reconnect: %llu connections made again\n",
           (unsigned long long)(after.reconnects - before.reconnects));
}

int main(void)
{
    conninfo = getenv("MAY_TEST_PG_CONNINFO");
    if (!conninfo || !*conninfo) {
        printf("test_pool: skipped: no MAY_TEST_PG_CONNINFO "
               "(run under apps/techempower/with_db.sh)\n");
        return 77;
    }
    witness = PQconnectdb(conninfo);
    if (PQstatus(witness) != CONNECTION_OK) {
        fprintf(stderr, "witness: %s", PQerrorMessage(witness));
        return 1;
    }
    char err[256];
    te_pg_config_t cfg = { .conninfo = conninfo, .conns = 2 };
    int r = te_pg_open(&pool, &cfg, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, "te_pg_open: %d %s\n", r, err);
        return 1;
    }
    /* a bad conninfo fails with libpq's message */
    te_pg_t *bad;
    te_pg_config_t badcfg = { .conninfo = "host=127.0.0.1 port=1 connect_timeout=2", .conns = 1 };
    ASSERT(te_pg_open(&bad, &badcfg, err, sizeof err) < 0);
    ASSERT(strstr(err, "connect") != NULL);

    setvbuf(stdout, NULL, _IOLBF, 0);
    test_routing();
    run_cos(1, in_co, (void *)test_fortunes);
    run_cos(1, in_co, (void *)test_missing);
    test_updates();
    test_deadlines();
    test_reconnect();

    te_pg_close(pool);
    PQfinish(witness);
    ASSERT_EQ(may_shutdown(), 0);
    printf("test_pool: ok\n");
    return 0;
}
