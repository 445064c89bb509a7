/*
 * start.c - starting and stopping the runtime: the workers, their threads,
 * the poller and the monitor.
 *
 * The runtime starts lazily, on the first call that needs it
 * (may__ensure_started, from spawn and the I/O calls), or at may_start,
 * with the configuration may_configure left in may__S.cfg (else
 * MAY_WORKERS, else one worker per CPU in the affinity mask).  Starting
 * makes the workers, the poller, the SIGSEGV handler for stack overflows,
 * one thread per worker and, with two workers or more, the monitor; if a
 * step fails, what was made is stopped and freed, and the call returns
 * -errno.  may_shutdown stops and frees it all, from a plain thread only
 * (-EPERM on a worker), and refuses with -EBUSY while coroutines are alive;
 * after it the runtime may start again.
 *
 * States (may__S.state): 0 stopped, 2 running, MAY__STATE_FORKED in the
 * child of a fork made while it ran (src/fork.c), which can neither use nor
 * restart it.  Every change happens under start_lock (rank START, the
 * outermost lock), and may_stats and may_dump hold it to keep the workers
 * from being freed under them.  The fast path of may__ensure_started is one
 * acquire load of state, which pairs with the release store that ends a
 * start: a caller that sees 2 sees the workers, the poller and everything
 * else the start made.
 *
 * A worker is two things.  may__worker_new makes what the worker owns (its
 * run queue, runnext and inbox, its stack pool, its counters); the thread
 * that runs it is created by may__worker_thread_start (handoff.c) and runs
 * may__worker_main (sched.c), which sets the thread up (the thread-local
 * worker pointer, its name, its signal stack, its CPU affinity, its own
 * stack, g0, for the sanitizers) and runs the scheduler's loop on the
 * worker until the runtime stops.  The N workers made here keep their
 * threads for the runtime's life; the monitor makes spare workers, up to
 * max_threads, when threads block (src/handoff.c), and their threads may
 * leave and be made again.  The workers array has room for max_threads
 * from the start, so it never moves; nall counts the workers in it.
 *
 * Stopping: stopping is set, the monitor stops (so no spare is made
 * meanwhile), every worker is woken, spares too (the poller too) and its
 * thread joined; each worker thread empties its
 * stack pool on its way out (may__stack_pool_drain).  Then the poller, the
 * workers, the timers, the stacks and the global queue's ring are freed,
 * and, after start_lock is released (a job still running may call into the
 * runtime), the offload pool stops.
 */
#include "internal.h"
#include "sched_impl.h"

#include <sched.h>
#include <stdio.h>

static int default_workers(void)
{
    const char *e = getenv("MAY_WORKERS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v > 0 && v <= 1024)
            return (int)v;
    }
    return may__plat_ncpu();
}

/* What worker index owns: its queues, a stack pool of cap entries, its
 * counters; no thread yet.  NULL when out of memory. */
may__worker *may__worker_new(int index, size_t cap)
{
    may__worker *w = may__aligned_alloc(MAY_CACHELINE, (sizeof *w + MAY_CACHELINE - 1) &
                                                      ~(size_t)(MAY_CACHELINE - 1));
    if (!w)
        return NULL;
    memset(w, 0, sizeof *w);
    w->pool = calloc(cap, sizeof *w->pool);
    if (!w->pool) {
        may__aligned_free(w);
        return NULL;
    }
    w->index = index;
    w->rand = 0x9e3779b97f4a7c15ULL * (uint64_t)(index + 1);
    w->tick = 61;
    w->spin_ns = may__S.spin_max_ns;
    pthread_mutex_init(&w->inbox_lock, NULL);
    return w;
}

static void worker_free(may__worker *w)
{
    pthread_mutex_destroy(&w->inbox_lock);
    free(w->pool);
    may__aligned_free(w);
}

static void free_workers(void)
{
    int n = atomic_load(&may__S.nall);
    for (int i = 0; i < n; i++)
        worker_free(may__S.workers[i]);
    free(may__S.workers);
    may__S.workers = NULL;
    atomic_store(&may__S.nall, 0);
}

/* Stop every worker thread, spares too: the monitor first, so that no
 * spare is made meanwhile. */
static void stop_workers(void)
{
    atomic_store(&may__S.stopping, 1);
    may__monitor_stop();
    int n = atomic_load(&may__S.nall);
    for (int i = 0; i < n; i++)
        may__wake_raw(may__S.workers[i]);
    may__poll_wake();
    may__lock(&may__S.threads_lock, MAY__RANK_THREADS);
    for (int i = 0; i < n; i++) {
        may__worker *w = may__S.workers[i];
        if (w->thread_live) {
            pthread_join(w->thread, NULL);
            w->thread_live = 0;
        }
    }
    may__unlock(&may__S.threads_lock, MAY__RANK_THREADS);
}

static int handoff_wanted(void)
{
    if (may__S.cfg.no_handoff)
        return 0;
    const char *e = getenv("MAY_HANDOFF");
    return !(e && strcmp(e, "0") == 0);
}

/* The idle spin's upper bound: config, then $MAY_IDLE_SPIN_US, then 50 us. */
static int64_t spin_max_ns(void)
{
    int us = may__S.cfg.idle_spin_us;
    const char *e = getenv("MAY_IDLE_SPIN_US");
    if (us == 0 && e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == '\0' && v >= -1 && v <= 1000000)
            us = (int)v;
    }
    return us < 0 ? 0 : us == 0 ? 50000 : (int64_t)us * 1000;
}

int may__ensure_started(void)
{
    if (MAY_LIKELY(atomic_load_explicit(&may__S.state, memory_order_acquire) == 2))
        return 0;
    if (may__fork_guard() < 0) /* atfork handlers, once; a forked child (src/fork.c) */
        return -ENOTRECOVERABLE;
    may__lock(&may__S.start_lock, MAY__RANK_START);
    if (atomic_load(&may__S.state) == 2) {
        may__unlock(&may__S.start_lock, MAY__RANK_START);
        return 0;
    }
    int r = -ENOMEM;
    int n = may__S.cfg.workers > 0 ? may__S.cfg.workers : default_workers();
    size_t cap = may__S.cfg.stack_pool ? may__S.cfg.stack_pool : 256;
    atomic_store(&may__S.stopping, 0);
    atomic_store(&may__S.nidle, 0);
    atomic_store(&may__S.nspinning, 0);
    atomic_store(&may__S.poller_busy, 0);
    atomic_store(&may__S.poller_until, INT64_MIN);
    may__S.idle = NULL;
    may__S.handoff = handoff_wanted();
    may__S.spin_max_ns = spin_max_ns();
    may__S.max_threads = may__S.handoff ? (may__S.cfg.max_threads ? may__S.cfg.max_threads : 10000)
                                        : n;
    if (may__S.max_threads < n)
        may__S.max_threads = n;
    may__S.solo = n == 1;
    atomic_store(&may__S.handoffs, 0);
    atomic_store(&may__S.nall, 0);
    may__S.workers = calloc((size_t)may__S.max_threads, sizeof *may__S.workers);
    if (!may__S.workers)
        goto out_unlock;
    for (int made = 0; made < n; made++) {
        may__worker *w = may__worker_new(made, cap);
        if (!w)
            goto out_free;
        may__S.workers[made] = w;
        atomic_store(&may__S.nall, made + 1);
    }
    may__S.nworkers = n;
    atomic_store(&may__S.nactive, n);
    r = may__poll_init();
    if (r < 0)
        goto out_free;
    may__stack_segv_install();
    for (int i = 0; i < n; i++) {
        r = may__worker_thread_start(may__S.workers[i]);
        if (r < 0)
            goto out_stop;
    }
    /* with one worker and no hand-off there is nobody to wake or watch */
    if (n > 1 || may__S.handoff) {
        r = may__monitor_start();
        if (r < 0)
            goto out_stop;
    }
    atomic_store_explicit(&may__S.state, 2, memory_order_release);
    may__unlock(&may__S.start_lock, MAY__RANK_START);
    return 0;
out_stop:
    stop_workers();
    may__poll_close();
out_free:
    free_workers();
    may__S.nworkers = 0;
out_unlock:
    may__unlock(&may__S.start_lock, MAY__RANK_START);
    return r;
}

int may_start(void)
{
    return may__ensure_started();
}

int may_workers(void)
{
    if (may__ensure_started() < 0)
        return 0;
    return may__S.nworkers;
}

int may_worker_id(void)
{
    may__worker *w = may__cur_worker();
    return w ? w->index : -1;
}

int may_shutdown(void)
{
    if (may__cur_worker())
        return -EPERM;
    may__lock(&may__S.start_lock, MAY__RANK_START);
    if (atomic_load(&may__S.state) != 2) {
        may__unlock(&may__S.start_lock, MAY__RANK_START);
        may__offload_shutdown(); /* plain threads can use the pool alone */
        return 0;
    }
    if (may__co_alive() != 0) {
        may__unlock(&may__S.start_lock, MAY__RANK_START);
        return -EBUSY;
    }
    stop_workers();
    may__poll_close();
    /* fold the per-worker counts in before the workers go (the sum is 0) */
    atomic_store(&may__S.alive, may__co_alive());
    free_workers();
    may__S.nworkers = 0;
    may__timers_shutdown();
    may__stacks_shutdown();
    free(may__S.gq_ring);
    may__S.gq_ring = NULL;
    may__S.gq_cap = may__S.gq_rhead = may__S.gq_rcount = 0;
    atomic_store(&may__S.state, 0);
    may__unlock(&may__S.start_lock, MAY__RANK_START);
    /* outside start_lock: a job still running may call into the runtime */
    may__offload_shutdown();
    return 0;
}
