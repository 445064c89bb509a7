/*
 * monitor.c - the monitor: one more thread, like Go's sysmon, that watches
 * for what the workers cannot see because they are busy.
 *
 * What it looks for:
 *
 *   - a worker that has run one coroutine for a whole tick (a CPU loop, or
 *     a call that blocks its thread) while coroutines wait in its ring, its
 *     runnext or the unpinned part of its inbox: an idle worker is woken to
 *     steal them;
 *   - a timer overdue by 2 ms, or fds waited on with nobody in the poller,
 *     at two ticks in a row: the poller left it to run work that keeps its
 *     thread, while the other workers sleep on their futexes.  An idle
 *     worker is woken; it runs the due timers, or finds nothing to run and
 *     takes the poller over.
 *
 * It never moves work itself; it only wakes workers, through the same
 * may__wakep() as everything else.  Nor does it hand a blocked worker's
 * queue to a new thread, as Go does with a processor stuck in a system
 * call: libmay starts no threads beyond its workers, so a worker blocked in
 * the kernel is lost for the duration (docs/CAVEATS.md).
 *
 * Its cost.  It ticks every 1 ms, doubling the period after every 50 ticks
 * in a row that found nothing to do, up to 10 ms, and sleeps on a futex
 * (may__mon_word) while every worker is idle, so a quiet runtime still
 * makes no wake-ups.  A worker that leaves the idle list wakes it
 * (may__mon_kick, inline in sched_impl.h).  start.c starts it after the
 * workers, only when there are two or more (with one there is nobody to
 * wake), and stops it before them.
 *
 * Memory ordering.  The monitor's sleep is Dekker pair D8
 * (docs/ARCHITECTURE.md): it stores may__mon_sleeping = 1, then loads
 * nidle; a worker decrements nidle, then loads may__mon_sleeping; seq_cst
 * on both sides, so at least one of them sees the other.  What it reads of
 * the workers (n_switch, sleep_word, the queues' lengths) it reads without
 * a lock and mostly relaxed: a stale value costs a tick, and each tick
 * looks again.  mon_switches and the tick counts in mon_check are the
 * monitor's own.
 *
 * Locks: none of its own; may__wakep takes the idle lock.
 */
#include "internal.h"
#include "sched_impl.h"

#include <pthread.h>

#define MON_TICK_NS 1000000LL
#define MON_TICK_MAX_NS 10000000LL

/* may__mon_word and may__mon_sleeping are declared in sched_impl.h, for
 * may__mon_kick. */
static pthread_t mon_thread;
static int mon_running;
_Atomic uint32_t may__mon_word;
_Atomic int may__mon_sleeping;

/* One look at the workers; nonzero if it woke one. */
static int mon_check(void)
{
    int n = may__S.nworkers;
    for (int i = 0; i < n; i++) {
        may__worker *w = may__S.workers[i];
        uint64_t sw = atomic_load_explicit(&w->n_switch, memory_order_relaxed);
        int same = sw == w->mon_switches;
        w->mon_switches = sw;
        /* Still in the coroutine it ran a tick ago, with work queued behind
         * it: let an idle worker steal that work (runnext and unpinned
         * inbox entries included). */
        if (same && atomic_load_explicit(&w->sleep_word, memory_order_relaxed) == 0 &&
            (may__runq_len(w) || atomic_load_explicit(&w->runnext, memory_order_relaxed) ||
             atomic_load_explicit(&w->inbox_free, memory_order_relaxed)) &&
            atomic_load(&may__S.nidle) > 0) {
            may__wakep();
            return 1;
        }
    }
    /* A timer overdue by 2 ms, or fds waited on with nobody in the poller,
     * at two ticks in a row: the poller left it to run work that keeps its
     * thread, and the other workers sleep on their futexes.  One of them
     * that wakes runs the due timers, or finds nothing to run and becomes
     * the poller.  (The coarse clock is enough for that, and reading the
     * precise one from here measurably disturbed timer lateness on the VM
     * this was tuned on.) */
    static int nopoll_ticks, overdue_ticks; /* the monitor's own */
    int64_t next = may__timers_next();
    int overdue = 0;
    if (next != INT64_MAX) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        overdue = next < (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - 2 * MON_TICK_NS;
    }
    int fd_unwatched = atomic_load_explicit(&may__io_waiters, memory_order_relaxed) > 0 &&
                       !atomic_load(&may__S.poller_busy);
    nopoll_ticks = fd_unwatched ? nopoll_ticks + 1 : 0;
    overdue_ticks = overdue ? overdue_ticks + 1 : 0;
    if (atomic_load(&may__S.nidle) > 0 && (overdue_ticks >= 2 || nopoll_ticks >= 2)) {
        nopoll_ticks = overdue_ticks = 0;
        may__wakep();
        return 1;
    }
    return 0;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "may-monitor");
    int n = may__S.nworkers;
    int64_t delay = MON_TICK_NS;
    int quiet = 0;
    while (!atomic_load(&may__S.stopping)) {
        if (atomic_load(&may__S.nidle) == n) {
            /* seq_cst: Dekker pair with may__mon_kick */
            atomic_store(&may__mon_sleeping, 1);
            if (atomic_load(&may__S.nidle) == n && !atomic_load(&may__S.stopping))
                may__futex(&may__mon_word, FUTEX_WAIT_PRIVATE, 0, NULL);
            atomic_store(&may__mon_sleeping, 0);
            atomic_store(&may__mon_word, 0);
            delay = MON_TICK_NS;
            quiet = 0;
            continue;
        }
        struct timespec ts = { .tv_sec = 0, .tv_nsec = delay };
        may__futex(&may__mon_word, FUTEX_WAIT_PRIVATE, 0, &ts);
        atomic_store(&may__mon_word, 0);
        if (atomic_load(&may__S.stopping))
            break;
        if (mon_check()) {
            delay = MON_TICK_NS;
            quiet = 0;
        } else if (++quiet >= 50 && delay < MON_TICK_MAX_NS) {
            delay = delay * 2 < MON_TICK_MAX_NS ? delay * 2 : MON_TICK_MAX_NS;
            quiet = 0;
        }
    }
    return NULL;
}

MAY_NOINLINE int may__monitor_start(void)
{
    atomic_store(&may__mon_word, 0);
    atomic_store(&may__mon_sleeping, 0);
    int e = pthread_create(&mon_thread, NULL, monitor_main, NULL);
    if (e)
        return -e;
    mon_running = 1;
    return 0;
}

MAY_NOINLINE void may__monitor_stop(void)
{
    if (mon_running) {
        atomic_store(&may__mon_word, 1);
        may__futex(&may__mon_word, FUTEX_WAKE_PRIVATE, 1, NULL);
        pthread_join(mon_thread, NULL);
        mon_running = 0;
    }
}
