/*
 * stats.c - may_stats: counters of the scheduler, read while it runs.
 *
 * The counters cost the hot paths nothing shared: each worker counts its
 * switches, spawns, steals and sleeps (n_switch, n_spawn, n_steal, n_park)
 * and its spawns minus its ends (alive_delta) in its own fields, which only
 * the thread running it writes (STAT_ADD, sched_impl.h: a relaxed load and
 * store, no locked instruction); plain threads count in may__S (alive,
 * spawned) with atomic adds.  may_stats sums them.
 *
 * So a snapshot is not atomic: each counter is read once, relaxed, while
 * the workers run on, and the sums mix moments.  Two figures are exact when
 * the caller's own view is: alive, once every end the caller knows of
 * happened-before the call (a join gives that; may__co_alive), and spawned.
 * runnable is each ring's tail - head, read separately (a difference
 * beyond a ring's size means they were read at different times, and counts
 * 0), plus the inbox and runnext; running is the id of each worker's
 * current coroutine, read racily; parked is what is left of alive.
 *
 * Locks: the start lock, so that the workers cannot be freed by a shutdown
 * meanwhile, and the stack lock (may__stacks_hold) around the reads of the
 * running coroutines' ids: a coroutine that ended since may be freed, but
 * its stack cannot be unmapped while the lock is held.
 *
 * The caller's may_stats_t may be of another version than ours
 * (include/may.h, "Options structs"): may__abi_out copies what both know.
 */
#include "internal.h"
#include "sched_impl.h"

/* The id of the coroutine w runs now, read racily (w->cur is the owner's
 * plain field).  Called under the stack lock: a coroutine that ended since
 * may be freed, but its stack cannot be unmapped while we read it. */
__attribute__((no_sanitize("thread"))) static uint64_t stats_running_id(may__worker *w)
{
    struct may_co *cur = ((volatile may__worker *)w)->cur;
    return cur ? cur->id : 0;
}

static void stats_fill(may_stats_t *out);

int may_stats_sized(may_stats_t *uout, size_t size)
{
    if (!uout || size < MAY__STATS_V1_SIZE)
        return -EINVAL;
    if (size == sizeof *uout) {
        stats_fill(uout);
    } else { /* built against another version of the struct (include/may.h) */
        may_stats_t s;
        stats_fill(&s);
        may__abi_out(uout, size, &s, sizeof s);
    }
    return 0;
}

static void stats_fill(may_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->timers = may__timers_count();
    may__lock(&may__S.start_lock, MAY__RANK_START); /* the workers stay while we read */
    out->alive = (uint64_t)may__co_alive();
    out->spawned = atomic_load(&may__S.spawned);
    if (atomic_load_explicit(&may__S.state, memory_order_acquire) != 2) {
        may__unlock(&may__S.start_lock, MAY__RANK_START);
        return;
    }
    out->workers = may__S.nworkers;
    out->handoffs = atomic_load_explicit(&may__S.handoffs, memory_order_relaxed);
    may__stacks_hold(1);
    int nall = atomic_load_explicit(&may__S.nall, memory_order_acquire);
    for (int i = 0; i < nall; i++) {
        may__worker *w = may__S.workers[i];
        if (atomic_load_explicit(&w->role, memory_order_relaxed) != MAY__ROLE_DEAD)
            out->threads++;
        uint32_t h = atomic_load_explicit(&w->q.head, memory_order_relaxed);
        uint32_t t = atomic_load_explicit(&w->q.tail, memory_order_relaxed);
        may_worker_stats_t s = {
            .switches = atomic_load_explicit(&w->n_switch, memory_order_relaxed),
            .spawns = atomic_load_explicit(&w->n_spawn, memory_order_relaxed),
            .steals = atomic_load_explicit(&w->n_steal, memory_order_relaxed),
            .parks = atomic_load_explicit(&w->n_park, memory_order_relaxed),
            .runnable = (uint32_t)(t - h) <= MAY__RUNQ_SIZE ? (uint32_t)(t - h) : 0,
        };
        s.runnable += atomic_load_explicit(&w->inbox_len, memory_order_relaxed);
        if (atomic_load_explicit(&w->runnext, memory_order_relaxed))
            s.runnable++;
        s.running = stats_running_id(w);
        out->spawned += s.spawns;
        out->switches += s.switches;
        out->steals += s.steals;
        out->runnable += s.runnable;
        out->running += s.running != 0;
        if (i < 64)
            out->worker[i] = s;
    }
    may__stacks_hold(0);
    out->runnable += atomic_load_explicit(&may__S.gq_len, memory_order_relaxed);
    may__unlock(&may__S.start_lock, MAY__RANK_START);
    uint64_t busy = out->runnable + out->running;
    out->parked = out->alive > busy ? out->alive - busy : 0;
    int fw = atomic_load_explicit(&may__io_waiters, memory_order_relaxed);
    out->fd_waiters = fw > 0 ? (uint64_t)fw : 0;
}
