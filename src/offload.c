/*
 * offload.c - a pool of helper threads for calls that can only block
 * (getaddrinfo, file I/O, libraries with no non-blocking API).  The name
 * resolution (src/resolve.c) and file calls (src/file.c) are built on it.
 *
 * Why.  A coroutine that calls getaddrinfo or pread blocks its worker: every
 * coroutine queued there waits too, and with one worker the whole runtime
 * stops.  The reactor cannot help (regular files are always "ready"; the
 * resolver has no descriptor to poll), so such a call is handed to a helper
 * thread and the caller parks (internal.h, "parker") until it is done; its
 * worker runs other coroutines meanwhile.  A plain thread uses the same pool
 * and sleeps on its futex, so a deadline means the same thing from both.
 * This is Go's answer for cgo/getaddrinfo (extra Ms) and tokio's
 * spawn_blocking; io_uring would avoid the threads for file I/O but not for
 * the resolver, and is a later optimisation behind the same calls.
 *
 * Bounds.  Helpers start on demand, one per job that finds no idle helper,
 * up to max_threads; a helper idle for IDLE_NS exits, so an idle runtime has
 * no helper threads and no wake-ups.  At most max_threads + max_queue jobs
 * are in flight (running, abandoned and still running, or queued); one more
 * fails at once with -EAGAIN rather than queueing without limit.
 *
 * A job and who owns it.  The job record is heap memory shared by the caller
 * and the helper, and the caller's waiter node (waitq.h: P.q is a wait
 * queue, and the protocol is every wait queue's, with one state more); its
 * state (under P.lock) says who frees it:
 *
 *   QUEUED     on P.q (the node's WAITING); the caller may still take it
 *              back (deadline, cancel) and then frees it: fn never runs
 *   RUNNING    a helper runs fn; both hold it (off the queue, not claimed:
 *              owed a wake only if the caller stays)
 *   DONE       fn returned and the helper has claimed the node (the grant);
 *              the caller owns the job (and the result) once woken
 *   ABANDONED  the caller gave up while fn ran; the helper owns the job and
 *              frees it (and calls the drop hook) when fn returns
 *
 * A caller whose wait fails takes P.lock and looks: QUEUED, it unlinks the
 * job and returns the error; RUNNING, it marks the job ABANDONED and returns
 * at once (unless the job is "uninterruptible": file I/O into the caller's
 * buffer, src/file.c, where it waits for the end instead); DONE, the helper has decided
 * to wake it, so it waits for that wake (ignoring cancellation: the wake is
 * certain and quick) and returns the result as a success.  After its return
 * nothing touches the caller's parker or memory: a helper reads the node's
 * parker under the lock and wakes it only if the job was not abandoned, and
 * the caller never returns between that decision and the wake.
 *
 * Idle helpers sit on a LIFO stack (the most recently busy helper is reused
 * first, so surplus helpers stay idle long enough to time out).  A helper is
 * woken by whoever pops it, with may__wake on its own thread parker, under
 * P.lock: a helper that timed out and finds itself still on the stack (under
 * the same lock) knows no wake is in flight and may exit and free itself.
 *
 * Exit and shutdown.  A helper that exits on its own (idle timeout, or above
 * a lowered max_threads) leaves itself as P.zombie and joins the previous
 * zombie, so at most one finished thread waits to be joined.
 * may__offload_shutdown sets P.stopping (new jobs get -EAGAIN), wakes the
 * idle helpers, and joins every helper: those still running a job (an
 * abandoned one included) finish it and drain the queue first.  So after
 * may_shutdown no helper thread runs library code (the library may be
 * unloaded) and nothing stays allocated; the cost is that shutdown waits for
 * abandoned calls still running.  The pool starts again on next use.
 *
 * Lock order: glibc's atfork lock -> P.lock (fork_prepare takes P.lock so a
 * child never inherits it held).  P.lock is otherwise a leaf, except that it
 * is held across pthread_create, malloc, and may__wake of a helper's thread
 * parker (a futex wake; no scheduler lock).  A helper wakes a coroutine caller (which
 * takes scheduler locks) only after dropping P.lock.  fn never runs under
 * any lock.
 *
 * Memory ordering: everything in P and the job's queue links, state and
 * parker are under P.lock.  The state is also read without the lock by a
 * woken caller: the helper stores the result and then claims the node with
 * DONE (release) before its wake, and may__wake/may__wait's acq_rel CAS on
 * the parker word orders them before the caller's load (acquire).  The helper reads fn's inputs
 * after taking P.lock, which the caller released after queueing the job.
 */
#include "internal.h"
#include "waitq.h"

#include <limits.h>
#include <signal.h>

#define IDLE_NS (10LL * 1000000000) /* an idle helper exits after this */
#define DEFAULT_THREADS 64
#define DEFAULT_QUEUE 1024
#define MAX_THREADS 4096

/* The job's state is its node's (QUEUED is MAY__WN_WAITING, DONE the grant). */
enum { J_QUEUED = MAY__WN_WAITING, J_RUNNING, J_DONE, J_ABANDONED };

typedef void (*drop_fn)(void *arg, void *result, bool ran);

typedef struct job {
    may__wnode wn;           /* links in P.q while QUEUED; the caller's parker;
                                state J_*: written under P.lock, DONE with
                                release (the claim) */
    void *(*fn)(void *);     /* the call */
    void *arg;               /* its argument */
    void *result;            /* what fn returned, once DONE */
    drop_fn drop;            /* run when the caller gave up (may be NULL) */
    int uninterruptible;     /* once RUNNING, the caller waits for the end */
} job;

typedef struct helper {
    struct helper *next;      /* in P.all */
    struct helper *idle_next; /* in P.idle while idle */
    pthread_t thread;
    may__parker parker;       /* a thread parker (co == NULL) */
    int idle;                 /* on P.idle; whoever clears it wakes parker */
} helper;

static struct {
    pthread_mutex_t lock;
    int inited;              /* defaults read from the environment */
    int max_threads, max_queue;
    int nthreads;            /* helpers on P.all */
    int njobs;               /* queued + running (abandoned included) */
    int stopping;            /* may__offload_shutdown is in progress */
    may__waitq q;            /* FIFO of QUEUED jobs */
    helper *all;             /* every helper not yet exited */
    helper *idle;            /* idle helpers, most recently idle first */
    helper *zombie;          /* exited on its own, not yet joined */
} P = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- queue and configuration (P.lock must be held) ---------------------- */

static int env_threads(void)
{
    const char *s = getenv("MAY_OFFLOAD_THREADS");
    if (!s || !*s)
        return DEFAULT_THREADS;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > MAX_THREADS)
        return DEFAULT_THREADS;
    return (int)v;
}

/* fork: the child has none of the helpers, so it starts with an empty pool
 * (the records are freed; queued jobs belonged to threads it lacks). */
/* Raw calls, unseen by the rank checker: the atfork handlers hold every
 * lock at once, and whether this one runs before or after the runtime's
 * (src/fork.c) depends on which registered first.  That is safe because
 * P.lock is a leaf: no thread holding it waits for another lock. */
#ifndef _WIN32 /* no fork on Windows */
static void fork_prepare(void)
{
    pthread_mutex_lock(&P.lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&P.lock);
}

static void fork_child(void)
{
    while (P.all) {
        helper *h = P.all;
        P.all = h->next;
        free(h);
    }
    free(P.zombie);
    P.zombie = NULL;
    P.idle = NULL;
    P.q = (may__waitq){ NULL, NULL, 0 };
    P.nthreads = P.njobs = P.stopping = 0;
    pthread_mutex_init(&P.lock, NULL);
}
#endif

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_register(void)
{
#ifndef _WIN32
    pthread_atfork(fork_prepare, fork_parent, fork_child);
#endif
}

/* Not under P.lock: fork runs fork_prepare under glibc's atfork lock, so
 * registering under P.lock would invert that order. */
static void atfork_once_init(void)
{
    pthread_once(&atfork_once, atfork_register);
}

static void init_locked(void)
{
    if (P.inited)
        return;
    P.inited = 1;
    P.max_threads = env_threads();
    P.max_queue = DEFAULT_QUEUE;
}

/* Wake an idle helper (P.lock held; see the essay for why under it). */
static void wake_idle_locked(helper *h)
{
    h->idle = 0;
    may__wake(&h->parker, MAY__P_WTOKEN);
}

static void helper_idle_remove_locked(helper *h)
{
    helper **pp = &P.idle;
    while (*pp != h)
        pp = &(*pp)->idle_next;
    *pp = h->idle_next;
    h->idle = 0;
}

static void all_remove_locked(helper *h)
{
    helper **pp = &P.all;
    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    P.nthreads--;
}

int may_offload_config(int max_threads, int max_queue)
{
    if (max_threads < 0 || max_threads > MAX_THREADS || max_queue < 0 || max_queue > INT_MAX / 2)
        return -EINVAL;
    atfork_once_init();
    may__lock(&P.lock, MAY__RANK_OFFLOAD);
    init_locked();
    P.max_threads = max_threads ? max_threads : env_threads();
    P.max_queue = max_queue ? max_queue : DEFAULT_QUEUE;
    /* Idle helpers above the new maximum exit once woken. */
    while (P.idle && P.nthreads > P.max_threads) {
        helper *h = P.idle;
        P.idle = h->idle_next;
        wake_idle_locked(h);
    }
    may__unlock(&P.lock, MAY__RANK_OFFLOAD);
    return 0;
}

/* ---- helper threads ----------------------------------------------------- */

/* Run one job taken off the queue; called and returns with P.lock held. */
static void run_job(job *j)
{
    atomic_store_explicit(&j->wn.state, J_RUNNING, memory_order_relaxed);
    may__unlock(&P.lock, MAY__RANK_OFFLOAD);
    void *res = j->fn(j->arg);
    may__lock(&P.lock, MAY__RANK_OFFLOAD);
    P.njobs--;
    if (atomic_load_explicit(&j->wn.state, memory_order_relaxed) == J_ABANDONED) {
        may__unlock(&P.lock, MAY__RANK_OFFLOAD);
        if (j->drop)
            j->drop(j->arg, res, true);
        free(j);
    } else {
        j->result = res;
        /* release (the claim): pairs with the caller's acquire load after
         * its wake */
        may__parker *p = may__wnode_claim(&j->wn, J_DONE);
        may__unlock(&P.lock, MAY__RANK_OFFLOAD);
        /* From here the caller owns j; we touch only its parker, which it
         * keeps until this wake arrives. */
        may__wake_claimed(p);
    }
    may__lock(&P.lock, MAY__RANK_OFFLOAD);
}

static void *helper_main(void *arg)
{
    helper *h = arg;
    may__plat_set_thread_name("may-offload");
    may__lock(&P.lock, MAY__RANK_OFFLOAD);
    int timed_out = 0;
    for (;;) {
        may__wnode *n = may__waitq_pop(&P.q);
        if (n) {
            run_job(may__wnode_entry(n, job, wn));
            timed_out = 0;
            continue;
        }
        if (P.stopping || timed_out || P.nthreads > P.max_threads)
            break;
        may__wait_prepare(&h->parker); /* a stale wake from an earlier pop */
        h->idle = 1;
        h->idle_next = P.idle;
        P.idle = h;
        int64_t until = may__now() + IDLE_NS;
        while (h->idle) {
            may__unlock(&P.lock, MAY__RANK_OFFLOAD);
            int r = may__wait(&h->parker, until, 1);
            may__lock(&P.lock, MAY__RANK_OFFLOAD);
            if (h->idle && r == -ETIMEDOUT) {
                helper_idle_remove_locked(h); /* nobody popped us: no wake in flight */
                timed_out = 1;
            }
        }
    }
    if (P.stopping) {
        /* may__offload_shutdown joins us and frees h */
        may__unlock(&P.lock, MAY__RANK_OFFLOAD);
        return NULL;
    }
    all_remove_locked(h);
    helper *z = P.zombie;
    P.zombie = h;
    may__unlock(&P.lock, MAY__RANK_OFFLOAD);
    if (z) {
        pthread_join(z->thread, NULL);
        free(z);
    }
    return NULL;
}

/* Start one more helper.  P.lock must be held: the new thread blocks on it
 * until h is on P.all, and shutdown never sees a half-made helper. */
static int spawn_helper_locked(void)
{
    helper *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    /* Helpers take no asynchronous signals: those belong to the program's
     * own threads. */
    may__plat_sigmask old;
    may__plat_block_signals(&old);
    int e = pthread_create(&h->thread, NULL, helper_main, h);
    may__plat_restore_signals(&old);
    if (e) {
        free(h);
        return -e;
    }
    h->next = P.all;
    P.all = h;
    P.nthreads++;
    return 0;
}

void may__offload_shutdown(void)
{
    may__lock(&P.lock, MAY__RANK_OFFLOAD);
    if (P.stopping) { /* another shutdown is in progress */
        may__unlock(&P.lock, MAY__RANK_OFFLOAD);
        return;
    }
    P.stopping = 1;
    while (P.idle) {
        helper *h = P.idle;
        P.idle = h->idle_next;
        wake_idle_locked(h);
    }
    /* P.all and P.zombie change no more: helpers seeing stopping exit
     * without unlinking, and no helper starts while stopping. */
    helper *list = P.all, *z = P.zombie;
    may__unlock(&P.lock, MAY__RANK_OFFLOAD);
    while (list) {
        helper *h = list;
        list = h->next;
        pthread_join(h->thread, NULL);
        free(h);
    }
    if (z) {
        pthread_join(z->thread, NULL);
        free(z);
    }
    may__lock(&P.lock, MAY__RANK_OFFLOAD);
    P.all = NULL;
    P.zombie = NULL;
    P.nthreads = 0;
    P.stopping = 0;
    may__unlock(&P.lock, MAY__RANK_OFFLOAD);
}

/* ---- submitting and waiting --------------------------------------------- */

/* Wait for a claimed job's wake-up (see the essay): certain to come. */
static void wait_done(job *j)
{
    while (may__wnode_park_claimed(&j->wn) != J_DONE)
        ;
}

/* may_offload_ex, and the uninterruptible jobs of src/file.c (internal.h). */
int may__offload(void *(*fn)(void *), void *arg, void **result, drop_fn drop, int uninterruptible,
                 int64_t deadline)
{
    int r;
    if (!fn) {
        r = -EINVAL;
        goto out_drop;
    }
    may__parker *p = may__self_parker();
    if (may__wait_cancelled(p)) {
        r = -ECANCELED;
        goto out_drop;
    }
    if (deadline >= 0 && deadline <= may__now()) {
        r = -ETIMEDOUT; /* it cannot start in time */
        goto out_drop;
    }
    job *j = malloc(sizeof *j);
    if (!j) {
        r = -ENOMEM;
        goto out_drop;
    }
    *j = (job){ .fn = fn, .arg = arg, .drop = drop, .uninterruptible = uninterruptible };
    may__wnode_arm(&j->wn, p); /* J_QUEUED */

    atfork_once_init();
    may__lock(&P.lock, MAY__RANK_OFFLOAD);
    init_locked();
    if (P.stopping || P.njobs >= P.max_threads + P.max_queue) {
        r = -EAGAIN;
        goto out_unlock;
    }
    may__waitq_push(&P.q, &j->wn);
    P.njobs++;
    if (P.idle) {
        helper *h = P.idle;
        P.idle = h->idle_next;
        wake_idle_locked(h);
    } else if (P.nthreads < P.max_threads) {
        r = spawn_helper_locked();
        if (r < 0 && P.nthreads == 0) {
            /* nobody could ever run it; with helpers left, it waits */
            may__waitq_unlink(&P.q, &j->wn);
            P.njobs--;
            r = r == -ENOMEM ? r : -EAGAIN;
            goto out_unlock;
        }
    }
    may__unlock(&P.lock, MAY__RANK_OFFLOAD);

    may__wait_note(p, "offload", (const void *)j);
    for (;;) {
        r = may__wnode_park(&j->wn, deadline, 0);
        if (r == 0) {
            /* relaxed: may__wnode_park read it with acquire */
            if (atomic_load_explicit(&j->wn.state, memory_order_relaxed) == J_DONE)
                break;
            continue; /* RUNNING: not ours (cannot happen: only run_job wakes p) */
        }
        may__lock(&P.lock, MAY__RANK_OFFLOAD);
        if (may__waitq_abandon_locked(&P.q, &j->wn)) {
            P.njobs--;
            goto out_unlock; /* it was QUEUED: fn never runs */
        }
        if (atomic_load_explicit(&j->wn.state, memory_order_relaxed) == J_RUNNING &&
            !uninterruptible) {
            atomic_store_explicit(&j->wn.state, J_ABANDONED, memory_order_relaxed);
            may__unlock(&P.lock, MAY__RANK_OFFLOAD);
            return r; /* the helper frees j and calls drop */
        }
        may__unlock(&P.lock, MAY__RANK_OFFLOAD);
        /* DONE: the wake is on its way; RUNNING and uninterruptible: the
         * caller's buffer is in use, so wait for the end. */
        wait_done(j);
        break;
    }
    if (result)
        *result = j->result;
    free(j);
    return 0;

out_unlock:
    may__unlock(&P.lock, MAY__RANK_OFFLOAD);
    free(j);
out_drop:
    if (drop)
        drop(arg, NULL, false);
    return r;
}

int may_offload(void *(*fn)(void *), void *arg, void **result, int64_t deadline)
{
    return may__offload(fn, arg, result, NULL, 0, deadline);
}

int may_offload_ex(void *(*fn)(void *), void *arg, void **result,
                   void (*drop)(void *arg, void *result, bool ran), int64_t deadline)
{
    return may__offload(fn, arg, result, drop, 0, deadline);
}
