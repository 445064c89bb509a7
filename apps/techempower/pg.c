/* pg.c - a pipelined PostgreSQL pool for coroutines (pg.h).
 *
 * Why.  TechEmpower's database tests are won by how the database is
 * driven.  One connection per request coroutine (or a pool that lends a
 * connection for a whole request) pays a network round trip per query and
 * keeps PostgreSQL's backends waiting on the client; Rust's may_postgres
 * instead lets many coroutines' queries share a connection, pipelined.
 * This file does the same in C with libpq's pipeline mode (PostgreSQL 14+)
 * and libmay's fd wait: no thread blocks, and no interposition library
 * (libmay_hook) is needed, since libpq is only ever used non-blocking.
 *
 * The model.  A pool has K connections (K ~ the number of workers).  Each
 * is driven by two coroutines:
 *
 *   flusher  takes every job queued on the connection (a lock-free stack,
 *            taken whole), sends their queries with PQsendQueryPrepared in
 *            pipeline mode, a Sync where a segment ends (below), and
 *            flushes: one write for everything queued meanwhile.  While
 *            the socket is full it waits for MAY_WRITE.
 *   reader   waits for MAY_READ on PQsocket, PQconsumeInput, and hands the
 *            results to the jobs in the order they were sent (the server
 *            answers in order); it also (re)connects: a broken connection
 *            fails the jobs in flight with -ECONNRESET and is made again,
 *            with back-off, statements prepared again.
 *
 * A request coroutine builds a job (its queries, text parameters), takes a
 * slot (a semaphore of K * max_jobs: the checkout, with its deadline),
 * pushes the job on a connection's stack, unparks the flusher if the stack
 * was empty, and parks until the reader completes the job or its deadline
 * passes.  It never touches a PGconn; a connection's PGconn is touched only
 * by its two coroutines, under the connection's lock (a may_mutex: they
 * may run on different workers).
 *
 * Segments and transactions.  In pipeline mode every statement up to a
 * Sync runs in one implicit transaction, and an error aborts the rest of
 * that segment (PGRES_PIPELINE_ABORTED, -ECONNABORTED here).  libpq 15's
 * PQpipelineSync also flushes, so a Sync per job would be a write per job.
 * So: a job that writes (the bulk UPDATE of /updates) gets its own Sync,
 * its own transaction, as TechEmpower's rules ask ("a transaction should
 * only encapsulate a single iteration"); read-only jobs sent in the same
 * batch share one Sync, at most SEGMENT_MAX jobs (config .sync_per_job
 * gives every job its own).  A job completes at the Sync that ends its
 * segment, i.e. after the commit: an UPDATE is visible to every other
 * connection by the time its caller hears of it.
 *
 * Completion handshake.  A job's state goes PENDING -> DONE (the reader,
 * which then unparks the caller) or PENDING -> ABANDONED (the caller gave
 * up: deadline or cancellation); both sides CAS from PENDING, so exactly
 * one wins.  The job has two references, the caller's and the
 * connection's; the last to drop its own frees it.  The caller must not
 * end before the reader's may_unpark has reached it: it returns only
 * after consuming the token (a park that returns 0 with the state DONE),
 * or, when cancelled (a cancelled park consumes nothing), after seeing the
 * reader's reference gone.  An abandoned job's slot is returned by the
 * reader.  Every park here loops on the job's state, so a token from
 * elsewhere is harmless.
 *
 * Lock order: a connection's lock, then nothing (the job stack and job
 * states are atomics; may_unpark and may_sem_post take no lock of ours).
 *
 * fds.  libmay registers an fd on its first wait and must be told before
 * it is closed.  While connecting: may_fd_forget after every wait
 * (PQconnectPoll may close the socket and open another, which can get the
 * same number).  Once connected, the reader and the flusher wait on a
 * duplicate of libpq's socket (F_DUPFD_CLOEXEC) that this file owns,
 * c->sock, closed only by conn_teardown's may_fd_close: libpq closes its own
 * descriptor by itself when it sees the connection lost (PQconsumeInput on
 * end of file), and that number can go at once to a socket another
 * connection's reader is making, so forgetting it afterwards would
 * unregister the other connection's socket (TSan saw exactly that after
 * pg_terminate_backend), and a number libpq closed while registered would
 * leave libmay's entry saying "registered" for its next owner.  The
 * duplicate keeps the socket open until we close it, whatever libpq does.
 */
#include "pg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "may.h"

#define SEGMENT_MAX 64            /* read-only jobs sharing one Sync, at most */
#define DRAIN_STEP 256            /* results handed out between two yields */
#define STACK_SIZE (256 * 1024)   /* driver coroutines: libpq's connect path */
#define BACKOFF_MIN_NS 20000000LL /* reconnect back-off: 20 ms ... */
#define BACKOFF_MAX_NS 1000000000LL /* ... doubling up to 1 s */

enum { ST_DOWN, ST_UP, ST_BROKEN }; /* conn.state */
enum { JOB_PENDING, JOB_DONE, JOB_ABANDONED };

/* The prepared statements, the same on every connection. */
static const struct {
    const char *name, *sql;
} statements[] = {
    { "w", "SELECT id, randomnumber FROM world WHERE id = $1" },
    { "f", "SELECT id, message FROM fortune" },
    /* One statement for any count: two int4 arrays, zipped by unnest. */
    { "u", "UPDATE world SET randomnumber = v.r "
           "FROM unnest($1::int4[], $2::int4[]) AS v(id, r) WHERE world.id = v.id" },
};
#define NSTATEMENTS (sizeof statements / sizeof statements[0])

typedef struct query {
    const char *stmt;      /* prepared statement's name */
    int nparams;           /* 0..2 */
    const char *params[2]; /* text parameters */
    PGresult *res;         /* its result (TUPLES_OK or COMMAND_OK), or NULL */
    char buf[16];          /* room for one integer parameter */
} query_t;

typedef struct job {
    struct job *next; /* on the connection's stack, then its in-flight list */
    may_co_t *waiter; /* the caller, parked */
    _Atomic int state; /* JOB_* */
    _Atomic int refs; /* the caller's and the connection's */
    int err;          /* first error (negative errno), 0 if none */
    bool writes;      /* ends with its own Sync */
    bool sync_after;  /* a Sync was sent after its last query (flusher) */
    int nq;           /* queries */
    int rq;           /* queries whose results are all in (reader) */
    query_t q[];      /* then any extra bytes the caller asked for */
} job_t;

typedef struct conn {
    te_pg_t *pg;
    int idx;
    _Atomic int state;         /* ST_*; written under lock, read anywhere */
    _Atomic(job_t *) stack;    /* submitted, not yet taken by the flusher */
    may_mutex_t *lock;         /* guards everything below */
    PGconn *pc;
    int sock;                  /* PQsocket(pc) while up, else -1 */
    job_t *head, *tail;        /* in flight, in the order sent */
    job_t *cur;                /* first job whose results are not all in */
    unsigned inflight;         /* jobs from head to tail */
    bool got;                  /* cur's current query has its result */
    may_co_t *reader, *flusher;
    /* statistics (relaxed) */
    _Atomic uint64_t n_jobs, n_queries, n_syncs, n_batches, n_reads, n_reconnects, n_errors;
    _Atomic uint64_t max_inflight;
} conn_t;

struct te_pg {
    te_pg_config_t cfg;
    char *conninfo;
    may_sem_t *slots; /* checkout: K * max_jobs */
    _Atomic unsigned rr; /* round robin over connections */
    int nconns;
    conn_t conns[];
};

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* ---- jobs ------------------------------------------------------------ */

static job_t *job_new(int nq, size_t extra)
{
    job_t *j = calloc(1, sizeof *j + (size_t)nq * sizeof(query_t) + extra);
    if (j) {
        j->nq = nq;
        atomic_init(&j->state, JOB_PENDING);
        atomic_init(&j->refs, 2);
    }
    return j;
}

static void *job_extra(job_t *j)
{
    return &j->q[j->nq];
}

static void job_free(job_t *j)
{
    for (int i = 0; i < j->nq; i++)
        PQclear(j->q[i].res);
    free(j);
}

/* Drop one of the two references; the last frees. */
static void job_unref(job_t *j)
{
    /* acq_rel: the other side's reads and writes of j come before the free */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1)
        job_free(j);
}

/* Hand j back to its caller, and drop the connection's reference.  Called
 * by the connection's coroutines with the lock held, or with nobody else
 * left (close). */
static void job_complete(conn_t *c, job_t *j, int err)
{
    if (err && !j->err)
        j->err = err;
    atomic_fetch_add_explicit(&c->n_jobs, 1, memory_order_relaxed);
    if (j->err)
        atomic_fetch_add_explicit(&c->n_errors, 1, memory_order_relaxed);
    may_co_t *w = j->waiter;
    int expect = JOB_PENDING;
    /* acq_rel: publishes the results to the caller's acquire load of the
     * state; pairs with the caller's CAS to ABANDONED */
    if (atomic_compare_exchange_strong_explicit(&j->state, &expect, JOB_DONE,
                                                memory_order_acq_rel, memory_order_acquire)) {
        /* The caller returns only once it has consumed this token (or, if
         * cancelled, seen our reference go): w is alive until the unpark's
         * flag is set, and libmay's parker touches w after that only if w
         * was parked, when it cannot run before being resumed. */
        may_unpark(w);
    } else {
        /* ABANDONED: the caller has gone; its slot is ours to return */
        may_sem_post(c->pg->slots);
    }
    job_unref(j);
}

/* Fail a list of jobs linked by next. */
static void fail_list(conn_t *c, job_t *j, int err)
{
    while (j) {
        job_t *next = j->next;
        job_complete(c, j, err);
        j = next;
    }
}

/* ---- results (lock held) -------------------------------------------- */

static int sql_error(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "40P01") == 0)
        return -EDEADLK;
    return -EIO;
}

/* Take the results libpq has parsed (at most limit; -1: all) and hand them
 * to their jobs.  0 when none is left, 1 when the limit stopped it, or
 * -EPROTO when the stream does not match what was sent (the connection is
 * then torn down). */
static int drain(conn_t *c, int limit)
{
    while (c->head && !PQisBusy(c->pc)) {
        if (limit-- == 0)
            return 1; /* more to take: the caller yields first */
        PGresult *r = PQgetResult(c->pc);
        job_t *j = c->cur;
        if (!r) {
            /* the end of the current query's results */
            if (!j || !c->got)
                return -EPROTO;
            c->got = false;
            if (++j->rq == j->nq)
                c->cur = j->next;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            /* complete the segment: every job up to the one the Sync
             * followed, all of whose results are in */
            for (;;) {
                job_t *h = c->head;
                if (!h || h == c->cur)
                    return -EPROTO;
                c->head = h->next;
                if (!c->head)
                    c->tail = NULL;
                c->inflight--;
                bool last = h->sync_after;
                job_complete(c, h, 0);
                if (last)
                    break;
            }
            continue;
        }
        if (!j || c->got) { /* one result per query is all we send for */
            PQclear(r);
            if (!j)
                return -EPROTO;
            continue;
        }
        c->got = true;
        query_t *q = &j->q[j->rq];
        switch (st) {
        case PGRES_TUPLES_OK:
        case PGRES_COMMAND_OK:
            q->res = r;
            break;
        case PGRES_PIPELINE_ABORTED:
            if (!j->err)
                j->err = -ECONNABORTED;
            PQclear(r);
            break;
        case PGRES_FATAL_ERROR:
            if (!j->err)
                j->err = sql_error(r);
            PQclear(r);
            break;
        default:
            if (!j->err)
                j->err = -EPROTO;
            PQclear(r);
            break;
        }
    }
    return 0;
}

/* ---- connecting ----------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *what, PGconn *pc)
{
    if (!err || !errlen)
        return;
    const char *msg = pc ? PQerrorMessage(pc) : "";
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    snprintf(err, errlen, "%s%s%.*s", what, n ? ": " : "", (int)n, msg);
}

/* Wait for fd like libpq asks, then forget it (PQconnectPoll may close it). */
static int connect_wait(int fd, int events, int64_t deadline)
{
    int r = may_fd_wait(fd, events, deadline);
    may_fd_forget(fd);
    return r < 0 ? r : 0;
}

/* Make c->pc: connect, pipeline mode, prepare.  Runs in the reader (or in
 * te_pg_open before the drivers exist), with nothing in flight. */
static int conn_connect(conn_t *c, char *err, size_t errlen)
{
    te_pg_t *pg = c->pg;
    int64_t deadline = may_deadline_in(pg->cfg.connect_timeout_ms * 1000000);
    static const char *const keys[] = { "dbname", "fallback_application_name", NULL };
    const char *const vals[] = { pg->conninfo, "techempower", NULL };
    int r;

    /* Resolving a host name blocks in getaddrinfo: bracket it. */
    may_blocking_begin();
    PGconn *pc = PQconnectStartParams(keys, vals, 1);
    may_blocking_end();
    if (!pc) {
        set_err(err, errlen, "out of memory", NULL);
        return -ENOMEM;
    }
    if (PQstatus(pc) == CONNECTION_BAD) {
        set_err(err, errlen, "connect", pc);
        r = -ECONNREFUSED;
        goto out_finish;
    }
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
    while (ps != PGRES_POLLING_OK) {
        if (ps == PGRES_POLLING_FAILED) {
            set_err(err, errlen, "connect", pc);
            r = -ECONNREFUSED;
            goto out_finish;
        }
        r = connect_wait(PQsocket(pc), ps == PGRES_POLLING_READING ? MAY_READ : MAY_WRITE,
                         deadline);
        if (r < 0) {
            set_err(err, errlen, r == -ETIMEDOUT ? "connect: timed out" : "connect: wait", NULL);
            goto out_finish;
        }
        may_blocking_begin();
        ps = PQconnectPoll(pc);
        may_blocking_end();
    }
    PQsetNoticeProcessor(pc, quiet_notices, NULL);
    if (PQsetnonblocking(pc, 1) != 0 || !PQenterPipelineMode(pc)) {
        set_err(err, errlen, "pipeline mode", pc);
        r = -EPROTO;
        goto out_finish;
    }
    for (size_t i = 0; i < NSTATEMENTS; i++) {
        if (!PQsendPrepare(pc, statements[i].name, statements[i].sql, 0, NULL)) {
            set_err(err, errlen, "prepare", pc);
            r = -EIO;
            goto out_finish;
        }
    }
    if (!PQpipelineSync(pc)) {
        set_err(err, errlen, "prepare", pc);
        r = -EIO;
        goto out_finish;
    }
    int sock = PQsocket(pc);
    while ((r = PQflush(pc)) == 1) {
        if ((r = connect_wait(sock, MAY_WRITE | MAY_READ, deadline)) < 0)
            goto out_timeout;
        if (!PQconsumeInput(pc))
            break;
    }
    if (r < 0) {
        set_err(err, errlen, "prepare: send", pc);
        r = -ECONNRESET;
        goto out_finish;
    }
    /* NSTATEMENTS x (COMMAND_OK, NULL), then the Sync */
    size_t done = 0;
    bool got = false;
    for (;;) {
        while (!PQisBusy(pc)) {
            PGresult *res = PQgetResult(pc);
            if (!res) {
                if (!got) {
                    set_err(err, errlen, "prepare: unexpected end of results", NULL);
                    r = -EPROTO;
                    goto out_finish;
                }
                got = false;
                done++;
                continue;
            }
            ExecStatusType st = PQresultStatus(res);
            if (st == PGRES_PIPELINE_SYNC && done == NSTATEMENTS) {
                PQclear(res);
                goto prepared;
            }
            if (st != PGRES_COMMAND_OK || got) {
                if (err && errlen)
                    snprintf(err, errlen, "prepare %s: %s", statements[done].name,
                             PQresultErrorMessage(res));
                PQclear(res);
                r = -EIO;
                goto out_finish;
            }
            got = true;
            PQclear(res);
        }
        if ((r = connect_wait(sock, MAY_READ, deadline)) < 0)
            goto out_timeout;
        if (!PQconsumeInput(pc)) {
            set_err(err, errlen, "prepare: read", pc);
            r = -ECONNRESET;
            goto out_finish;
        }
    }
prepared:;
    /* the descriptor the drivers wait on: ours, not libpq's (above) */
    int own = fcntl(sock, F_DUPFD_CLOEXEC, 3);
    if (own < 0) {
        r = -errno;
        set_err(err, errlen, "dup", NULL);
        goto out_finish;
    }
    c->pc = pc;
    c->sock = own;
    c->got = false;
    return 0;

out_timeout:
    set_err(err, errlen, r == -ETIMEDOUT ? "prepare: timed out" : "prepare: wait", NULL);
out_finish:
    if (PQsocket(pc) >= 0)
        may_fd_forget(PQsocket(pc));
    PQfinish(pc);
    return r;
}

/* Lock held: fail everything in flight, close the PGconn, state DOWN. */
static void conn_teardown(conn_t *c, int err)
{
    atomic_store_explicit(&c->state, ST_DOWN, memory_order_release);
    job_t *list = c->head;
    c->head = c->tail = c->cur = NULL;
    c->inflight = 0;
    c->got = false;
    fail_list(c, list, err);
    if (c->sock >= 0)
        may_fd_close(c->sock); /* ours; wakes the flusher if it waits on it */
    if (c->pc)
        PQfinish(c->pc);
    c->pc = NULL;
    c->sock = -1;
}

/* ---- the driver coroutines ------------------------------------------- */

static void *reader_main(void *arg)
{
    conn_t *c = arg;
    int64_t backoff = BACKOFF_MIN_NS;
    for (;;) {
        if (atomic_load_explicit(&c->state, memory_order_acquire) != ST_UP) {
            if (c->pc) {
                /* broken by the flusher while this reader was not waiting
                 * (between drain steps): tear down first (c->pc is written
                 * only by this coroutine while it runs) */
                if (may_mutex_lock(c->lock, MAY_FOREVER) < 0)
                    break;
                conn_teardown(c, -ECONNRESET);
                may_mutex_unlock(c->lock);
            }
            /* (re)connect; nothing is in flight (teardown failed it) */
            char err[256];
            int r = conn_connect(c, err, sizeof err);
            if (r == -ECANCELED || may_cancelled())
                break;
            if (r < 0) {
                if (may_sleep(backoff) == -ECANCELED)
                    break;
                backoff = backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_NS;
            atomic_fetch_add_explicit(&c->n_reconnects, 1, memory_order_relaxed);
            if (may_mutex_lock(c->lock, MAY_FOREVER) < 0) {
                may_fd_close(c->sock);
                PQfinish(c->pc);
                c->pc = NULL;
                c->sock = -1;
                break;
            }
            atomic_store_explicit(&c->state, ST_UP, memory_order_release);
            may_mutex_unlock(c->lock);
            may_unpark(c->flusher); /* jobs may have been pushed meanwhile */
        }
        int r = may_fd_wait(c->sock, MAY_READ, MAY_FOREVER);
        if (r == -ECANCELED)
            break;
        if (may_mutex_lock(c->lock, MAY_FOREVER) < 0)
            break;
        if (atomic_load_explicit(&c->state, memory_order_relaxed) != ST_UP || r < 0) {
            conn_teardown(c, -ECONNRESET);
        } else {
            atomic_fetch_add_explicit(&c->n_reads, 1, memory_order_relaxed);
            if (!PQconsumeInput(c->pc)) {
                conn_teardown(c, -ECONNRESET);
            } else {
                /* a big read can hold thousands of results: hand them out
                 * DRAIN_STEP at a time, letting the woken callers run */
                while ((r = drain(c, DRAIN_STEP)) == 1) {
                    may_mutex_unlock(c->lock);
                    may_yield();
                    if (may_mutex_lock(c->lock, MAY_FOREVER) < 0)
                        goto out;
                    if (atomic_load_explicit(&c->state, memory_order_relaxed) != ST_UP)
                        break;
                }
                if (r < 0)
                    conn_teardown(c, -EPROTO);
            }
        }
        may_mutex_unlock(c->lock);
    }
out:
    /* cancelled (te_pg_close: the flusher has ended already) */
    if (may_mutex_lock(c->lock, MAY_NOWAIT) == 0) {
        conn_teardown(c, -ECANCELED);
        may_mutex_unlock(c->lock);
    }
    return NULL;
}

/* Lock held, state UP: send one job's queries (and a Sync if seg says so). */
static bool send_job(conn_t *c, job_t *j, bool sync)
{
    j->next = NULL;
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    if (!c->cur)
        c->cur = j;
    if (++c->inflight > atomic_load_explicit(&c->max_inflight, memory_order_relaxed))
        atomic_store_explicit(&c->max_inflight, c->inflight, memory_order_relaxed);
    for (int i = 0; i < j->nq; i++) {
        query_t *q = &j->q[i];
        if (!PQsendQueryPrepared(c->pc, q->stmt, q->nparams, q->params, NULL, NULL, 0))
            return false;
    }
    atomic_fetch_add_explicit(&c->n_queries, (uint64_t)j->nq, memory_order_relaxed);
    if (sync) {
        j->sync_after = true;
        atomic_fetch_add_explicit(&c->n_syncs, 1, memory_order_relaxed);
        if (!PQpipelineSync(c->pc))
            return false;
    }
    return true;
}

/* Lock held: the send path failed; let the reader tear down and reconnect.
 * Jobs not yet sent (rest) fail here. */
static void conn_broken(conn_t *c, job_t *rest)
{
    atomic_store_explicit(&c->state, ST_BROKEN, memory_order_release);
    fail_list(c, rest, -ECONNRESET);
    if (c->sock >= 0)
        may_fd_forget(c->sock); /* wakes the reader with -EBADF */
}

static void *flusher_main(void *arg)
{
    conn_t *c = arg;
    te_pg_t *pg = c->pg;
    for (;;) {
        /* acquire: pairs with the release CAS of exec_job's push */
        job_t *list = atomic_exchange_explicit(&c->stack, NULL, memory_order_acquire);
        if (!list) {
            if (may_park(MAY_FOREVER) == -ECANCELED)
                break;
            /* woken by the first job pushed on an empty stack: let the
             * coroutines runnable now push theirs too (one pass of the run
             * queue, nothing when idle), then send them all in one write */
            may_yield();
            continue;
        }
        /* the stack is newest first: reverse it into submission order */
        job_t *fifo = NULL;
        while (list) {
            job_t *next = list->next;
            list->next = fifo;
            fifo = list;
            list = next;
        }
        if (may_mutex_lock(c->lock, MAY_FOREVER) < 0) {
            fail_list(c, fifo, -ECANCELED);
            break;
        }
        if (atomic_load_explicit(&c->state, memory_order_relaxed) != ST_UP) {
            fail_list(c, fifo, -ECONNRESET);
            may_mutex_unlock(c->lock);
            continue;
        }
        atomic_fetch_add_explicit(&c->n_batches, 1, memory_order_relaxed);
        int seg = 0;
        bool ok = true;
        while (fifo) {
            job_t *j = fifo;
            fifo = j->next;
            /* a Sync after a writing job, before one, at the end of the
             * batch, or after SEGMENT_MAX read-only jobs */
            bool sync = j->writes || !fifo || fifo->writes || pg->cfg.sync_per_job ||
                        ++seg >= SEGMENT_MAX;
            if (sync)
                seg = 0;
            if (!send_job(c, j, sync)) {
                ok = false;
                conn_broken(c, fifo);
                break;
            }
        }
        /* the ticket before the flush: a wait after it sees any readiness
         * that came since, and -EBADF once teardown has closed c->sock */
        int sock = c->sock;
        int64_t t = ok ? may_fd_ticket(sock, MAY_WRITE) : -1;
        int r = ok ? PQflush(c->pc) : -1;
        /* sending may have read input too (libpq reads when the socket is
         * full): hand out what it parsed */
        if (ok && r >= 0 && drain(c, -1) < 0)
            r = -1;
        if (ok && r < 0)
            conn_broken(c, NULL);
        may_mutex_unlock(c->lock);
        while (r == 1) {
            /* the socket is full: wait, the reader keeps reading */
            int w = t >= 0 ? may_fd_wait_ticket(sock, MAY_WRITE, t, MAY_FOREVER)
                           : may_fd_wait(sock, MAY_WRITE, MAY_FOREVER);
            if (w == -ECANCELED)
                goto out;
            if (may_mutex_lock(c->lock, MAY_FOREVER) < 0)
                goto out;
            if (atomic_load_explicit(&c->state, memory_order_relaxed) != ST_UP ||
                c->sock != sock) {
                r = 0; /* torn down meanwhile: its jobs have failed */
            } else {
                t = may_fd_ticket(sock, MAY_WRITE);
                r = PQflush(c->pc);
                if (r >= 0 && drain(c, -1) < 0)
                    r = -1;
                if (r < 0)
                    conn_broken(c, NULL);
            }
            may_mutex_unlock(c->lock);
        }
    }
out:
    /* whatever is still stacked fails (te_pg_close) */
    fail_list(c, atomic_exchange_explicit(&c->stack, NULL, memory_order_acquire), -ECANCELED);
    return NULL;
}

/* ---- submitting ----------------------------------------------------- */

/* Pick an UP connection, round robin, waiting (checkout) until deadline. */
static conn_t *pick(te_pg_t *pg, int64_t deadline, int *err)
{
    for (;;) {
        unsigned start = atomic_fetch_add_explicit(&pg->rr, 1, memory_order_relaxed);
        for (int i = 0; i < pg->nconns; i++) {
            conn_t *c = &pg->conns[(start + (unsigned)i) % (unsigned)pg->nconns];
            if (atomic_load_explicit(&c->state, memory_order_acquire) == ST_UP)
                return c;
        }
        /* every connection is (re)connecting: poll for one */
        int64_t now = may_now();
        if (deadline != MAY_FOREVER && now >= deadline) {
            *err = -ETIMEDOUT;
            return NULL;
        }
        int64_t until = now + 2000000;
        if (deadline != MAY_FOREVER && deadline < until)
            until = deadline;
        if (may_sleep_until(until) == -ECANCELED) {
            *err = -ECANCELED;
            return NULL;
        }
    }
}

/* Submit job j and wait for it.  0: j is done (its err and results to
 * read, then job_unref).  -errno: j is no longer the caller's. */
static int exec_job(te_pg_t *pg, job_t *j, int64_t deadline)
{
    int r;
    j->waiter = may_self();
    if (!j->waiter) {
        r = -EPERM;
        goto out_free;
    }
    if ((r = may_sem_wait(pg->slots, deadline)) < 0)
        goto out_free;
    conn_t *c = pick(pg, deadline, &r);
    if (!c) {
        may_sem_post(pg->slots);
        goto out_free;
    }
    job_t *top = atomic_load_explicit(&c->stack, memory_order_relaxed);
    do
        j->next = top;
    /* release: publishes the job to the flusher's acquire exchange */
    while (!atomic_compare_exchange_weak_explicit(&c->stack, &top, j, memory_order_release,
                                                  memory_order_relaxed));
    if (!top)
        may_unpark(c->flusher); /* it may be parked on an empty stack */
    /* Wait for the reader's token: the job is done once the state says so
     * AND the token is consumed (job_complete's comment says why). */
    for (;;) {
        r = may_park(deadline);
        if (atomic_load_explicit(&j->state, memory_order_acquire) == JOB_DONE) {
            if (r == 0)
                break;
            if (r == -ETIMEDOUT) { /* done just now: its token is on the way */
                deadline = MAY_FOREVER;
                continue;
            }
            /* cancelled (no token can be consumed now): wait until the
             * reader dropped its reference, after its unpark */
            while (atomic_load_explicit(&j->refs, memory_order_acquire) > 1)
                may_yield();
            break;
        }
        if (r < 0) {
            int expect = JOB_PENDING;
            if (atomic_compare_exchange_strong_explicit(&j->state, &expect, JOB_ABANDONED,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                job_unref(j); /* the connection's reference frees it */
                return r;
            }
        }
        /* r == 0 and not done: a token from elsewhere; wait on */
    }
    may_sem_post(pg->slots);
    return 0;

out_free:
    job_free(j); /* never submitted: both references are ours */
    return r;
}

/* exec_job, then the job's own error: 0 (j is the caller's: job_unref) or
 * -errno (j is gone). */
static int run(te_pg_t *pg, job_t *j, int64_t deadline)
{
    int r = exec_job(pg, j, deadline);
    if (r == 0 && j->err) {
        r = j->err;
        job_unref(j);
    }
    return r;
}

/* ---- the queries ---------------------------------------------------- */

/* v in decimal at out (room for 12 bytes), NUL-terminated: its length. */
static size_t fmt_int(char *out, int32_t v)
{
    char tmp[12];
    size_t n = 0, len = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

int te_pg_worlds(te_pg_t *pg, te_world_t *w, int n, int64_t deadline)
{
    if (n < 1)
        return -EINVAL;
    job_t *j = job_new(n, 0);
    if (!j)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        query_t *q = &j->q[i];
        q->stmt = "w";
        q->nparams = 1;
        fmt_int(q->buf, w[i].id);
        q->params[0] = q->buf;
    }
    int r = run(pg, j, deadline);
    if (r < 0)
        return r;
    for (int i = 0; i < n && r == 0; i++) {
        PGresult *res = j->q[i].res;
        if (!res || PQnfields(res) != 2)
            r = -EPROTO;
        else if (PQntuples(res) != 1)
            r = -ENOENT;
        else
            w[i].randomnumber = (int32_t)strtol(PQgetvalue(res, 0, 1), NULL, 10);
    }
    job_unref(j);
    return r;
}

int te_pg_update(te_pg_t *pg, const te_world_t *w, int n, int64_t deadline)
{
    if (n < 1)
        return -EINVAL;
    size_t cap = (size_t)n * 12 + 3; /* "{" + n x "-2147483648," + "}" */
    job_t *j = job_new(1, 2 * cap);
    if (!j)
        return -ENOMEM;
    j->writes = true;
    char *ids = job_extra(j), *nums = ids + cap;
    size_t a = 0, b = 0;
    ids[a++] = '{';
    nums[b++] = '{';
    for (int i = 0; i < n; i++) {
        if (i) {
            ids[a++] = ',';
            nums[b++] = ',';
        }
        a += fmt_int(ids + a, w[i].id);
        b += fmt_int(nums + b, w[i].randomnumber);
    }
    memcpy(ids + a, "}", 2);
    memcpy(nums + b, "}", 2);
    query_t *q = &j->q[0];
    q->stmt = "u";
    q->nparams = 2;
    q->params[0] = ids;
    q->params[1] = nums;
    int r = run(pg, j, deadline);
    if (r == 0)
        job_unref(j);
    return r;
}

int te_pg_fortunes(te_pg_t *pg, PGresult **res, int64_t deadline)
{
    job_t *j = job_new(1, 0);
    if (!j)
        return -ENOMEM;
    j->q[0].stmt = "f";
    int r = run(pg, j, deadline);
    if (r < 0)
        return r;
    if (!j->q[0].res || PQnfields(j->q[0].res) != 2) {
        r = -EPROTO;
    } else {
        *res = j->q[0].res;
        j->q[0].res = NULL;
    }
    job_unref(j);
    return r;
}

/* ---- the pool ------------------------------------------------------- */

int te_pg_open(te_pg_t **out, const te_pg_config_t *cfg, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!cfg || !cfg->conninfo)
        return -EINVAL;
    int n = cfg->conns > 0 ? cfg->conns : may_workers();
    if (n < 1)
        n = 1;
    te_pg_t *pg = calloc(1, sizeof *pg + (size_t)n * sizeof(conn_t));
    if (!pg)
        return -ENOMEM;
    pg->cfg = *cfg;
    if (pg->cfg.connect_timeout_ms <= 0)
        pg->cfg.connect_timeout_ms = 5000;
    if (pg->cfg.max_jobs == 0)
        pg->cfg.max_jobs = 1024;
    pg->nconns = n;
    int r = -ENOMEM;
    pg->conninfo = strdup(cfg->conninfo);
    if (!pg->conninfo || may_sem_new(&pg->slots, (unsigned)n * pg->cfg.max_jobs) < 0)
        goto out_free;
    pg->cfg.conninfo = pg->conninfo;
    int made = 0;
    for (; made < n; made++) {
        conn_t *c = &pg->conns[made];
        c->pg = pg;
        c->idx = made;
        c->sock = -1;
        atomic_init(&c->state, ST_DOWN);
        atomic_init(&c->stack, NULL);
        if ((r = may_mutex_new(&c->lock)) < 0)
            goto out_close;
        if ((r = conn_connect(c, err, errlen)) < 0) {
            may_mutex_free(c->lock);
            goto out_close;
        }
        atomic_store(&c->state, ST_UP);
        int w = may_workers();
        may_spawn_opts_t o = { .name = "te_pg_flusher", .stack_size = STACK_SIZE,
                               .worker = w > 0 ? made % w : 0, .flags = MAY_SPAWN_WORKER };
        if ((r = may_spawn(&c->flusher, flusher_main, c, &o)) < 0)
            goto out_conn;
        o.name = "te_pg_reader";
        if ((r = may_spawn(&c->reader, reader_main, c, &o)) < 0) {
            may_cancel(c->flusher);
            may_join(c->flusher, NULL, MAY_FOREVER);
            goto out_conn;
        }
    }
    *out = pg;
    return 0;

out_conn:
    may_fd_close(pg->conns[made].sock);
    PQfinish(pg->conns[made].pc);
    may_mutex_free(pg->conns[made].lock);
out_close:
    pg->nconns = made;
    te_pg_close(pg);
    return r;
out_free:
    if (pg->slots)
        may_sem_free(pg->slots);
    free(pg->conninfo);
    free(pg);
    return r;
}

void te_pg_close(te_pg_t *pg)
{
    if (!pg)
        return;
    for (int i = 0; i < pg->nconns; i++) {
        may_cancel(pg->conns[i].flusher);
        may_join(pg->conns[i].flusher, NULL, MAY_FOREVER);
    }
    for (int i = 0; i < pg->nconns; i++) {
        conn_t *c = &pg->conns[i];
        may_cancel(c->reader);
        may_join(c->reader, NULL, MAY_FOREVER);
        /* the reader tore down unless it could not take the lock */
        if (c->pc) {
            conn_teardown(c, -ECANCELED);
        }
        may_mutex_free(c->lock);
    }
    may_sem_free(pg->slots);
    free(pg->conninfo);
    free(pg);
}

void te_pg_stats(te_pg_t *pg, te_pg_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < pg->nconns; i++) {
        conn_t *c = &pg->conns[i];
        out->jobs += atomic_load_explicit(&c->n_jobs, memory_order_relaxed);
        out->queries += atomic_load_explicit(&c->n_queries, memory_order_relaxed);
        out->syncs += atomic_load_explicit(&c->n_syncs, memory_order_relaxed);
        out->batches += atomic_load_explicit(&c->n_batches, memory_order_relaxed);
        out->reads += atomic_load_explicit(&c->n_reads, memory_order_relaxed);
        out->reconnects += atomic_load_explicit(&c->n_reconnects, memory_order_relaxed);
        out->errors += atomic_load_explicit(&c->n_errors, memory_order_relaxed);
        uint64_t m = atomic_load_explicit(&c->max_inflight, memory_order_relaxed);
        out->max_inflight = m > out->max_inflight ? m : out->max_inflight;
    }
}
