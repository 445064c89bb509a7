/*
 * sched_impl.h - what the scheduler's own files share, and the rest of the
 * library does not need (that is in internal.h):
 *
 *   sched.c      the scheduler proper: picking, switching, idling, waking,
 *                the worker threads' loop
 *   runq.c       the run queues and may__ready (fast paths in runq.h)
 *   monitor.c    the monitor thread (Go's sysmon)
 *   coroutine.c  a coroutine's life: spawn, end, join, detach, cancel
 *   start.c      starting and stopping the runtime and its workers
 *   stats.c      may_stats
 *
 * The switch path is here, inline, because a yield, a park (sched.c) and a
 * coroutine's end (coroutine.c) all run it, and it must stay free of calls
 * in every build (docs/ARCHITECTURE.md, "One translation unit").  Named sched_impl.h, not
 * sched.h, which is the C library's.
 */
#ifndef MAY_SCHED_IMPL_H
#define MAY_SCHED_IMPL_H

#include "internal.h"
#include "runq.h"
#include "san.h"

#include "plat.h"

#include <time.h>

/* The per-worker counters have one writer, the worker's owner: a relaxed
 * load and store, no locked instruction; readers (may_stats, the monitor)
 * load them relaxed. */
#define STAT_ADD(x, d) \
    atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + (d), \
                          memory_order_relaxed)
#define STAT_INC(x) \
    atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + 1, \
                          memory_order_relaxed)

/* ---- sched.c ------------------------------------------------------------ */

/* Wake one idle worker to look for work, unless one is already looking. */
void may__wakep(void);
/* w has work in its inbox: wake it if it sleeps. */
void may__wake_worker(may__worker *w);
/* Every 61st round: outside work first, due timers and fd readiness.
 * MAY__CO_SIDELINE when the worker is not active: the caller switches to
 * g0 (may__pick_fast returns NULL), where find_runnable sees to it. */
MAY_NOINLINE struct may_co *may__pick_fair(may__worker *w);
#define MAY__CO_SIDELINE ((struct may_co *)1)
/* The hook of a yield: queue co at the tail of w's ring. */
void may__requeue_hook(may__worker *w, struct may_co *co);
/* The body of a worker's thread (start.c creates it): it runs coroutines
 * on that worker until the runtime stops. */
void *may__worker_main(void *arg);

/* An idle worker made for a hand-off, taken off the idle list as a spare
 * (handoff.c); the caller wakes it.  NULL if none. */
may__worker *may__idle_take_spareborn(void);
/* Wake w from its idle sleep, in the poller or on its futex.  w must be off
 * the idle list already (or the runtime stopping). */
static inline void may__wake_raw(may__worker *w)
{
    /* seq_cst: Dekker pair with the idler's store of polling / load of
     * sleep_word in go_idle(). */
    atomic_store(&w->sleep_word, 0);
    if (atomic_load(&w->polling))
        may__poll_wake();
    else
        may__futex_wake(&w->sleep_word, 1);
}

static inline void may__run_hook(may__worker *w)
{
    if (w->hook.fn == may__requeue_hook) { /* the yield hook, inlined */
        w->hook.fn = NULL;
        may__runq_push(w, w->hook.co);
    } else if (w->hook.fn) {
        may__hook h = w->hook;
        w->hook.fn = NULL;
        h.fn(w, h.co);
    }
}

static inline void *may__co_stack_bottom(struct may_co *co)
{
    return co->stack.lo;
}

static inline size_t may__co_stack_extent(struct may_co *co)
{
    return (size_t)((char *)co - co->stack.lo);
}

/* co (running on w) -> next, or -> g0 when next is NULL. */
static inline __attribute__((always_inline)) void may__switch_from(may__worker *w,
                                                                 struct may_co *self,
                                                                 struct may_co *next, int exiting)
{
    void **fake = exiting ? NULL : &self->asan_fake;
    if (next) {
        w->cur = next;
        STAT_INC(w->n_switch);
        san_begin(fake, may__co_stack_bottom(next), may__co_stack_extent(next), next->tsan_fiber);
        w = may__ctx_jump(&self->ctx, &next->ctx, w);
    } else {
        w->cur = NULL;
        san_begin(fake, w->asan_g0_bottom, w->asan_g0_size, w->tsan_g0_fiber);
        w = may__ctx_jump(&self->ctx, &w->sched_ctx, w);
    }
    /* Resumed, perhaps on another thread: w is the worker that resumed us. */
    san_end(self->asan_fake);
    may__run_hook(w);
}

/* Non-blocking: runnext, ring, inbox, global queue.  Usable anywhere. */
static inline __attribute__((always_inline)) struct may_co *may__pick_fast(may__worker *w)
{
    struct may_co *co;
    if (MAY_UNLIKELY(--w->tick == 0) && (co = may__pick_fair(w)))
        return co == MAY__CO_SIDELINE ? NULL : co;
    if (atomic_load_explicit(&w->runnext, memory_order_relaxed) &&
        (w->runnext_streak < 32 || may__runq_len(w) == 0) && (co = may__runnext_take(w))) {
        w->runnext_streak++;
        return co;
    }
    w->runnext_streak = 0;
    if ((co = may__runq_pop(w)))
        return co;
    if ((co = may__inbox_pop(w)))
        return co;
    /* outside work is for active workers only (handoff.c) */
    if (MAY_UNLIKELY(atomic_load_explicit(&w->role, memory_order_relaxed) != MAY__ROLE_ACTIVE))
        return NULL;
    return may__gq_pop(w, MAY__RUNQ_SIZE / 2);
}

/* ---- handoff.c ---------------------------------------------------------- */

/* A new worker with index index and a stack pool of cap entries, role
 * ACTIVE, no thread yet (start.c).  NULL when out of memory. */
may__worker *may__worker_new(int index, size_t cap);
/* Create w's thread (threads_lock held, or at start).  0 or -errno. */
int may__worker_thread_start(may__worker *w);
/* w made no progress for ticks ticks while a coroutine held it: hand it
 * off if its thread is blocked (monitor).  Nonzero if it did. */
int may__handoff_check(may__worker *w, int ticks);
/* Join the threads of spares that left (monitor). */
void may__handoff_reap(void);
/* find_runnable of a worker that is not active: 1 run *out, 0 active now,
 * -1 end the thread. */
int may__sidelined(may__worker *w, struct may_co **out);
/* A spare-born active worker w found nothing to run: give its place back
 * to one of the first N that is a spare.  Nonzero if w is not active. */
int may__place_back(may__worker *w);
/* The hook that queues co on the global queue (a lent worker's coroutine
 * giving its place back). */
void may__requeue_global_hook(may__worker *w, struct may_co *co);

/* ---- monitor.c ---------------------------------------------------------- */

extern _Atomic uint32_t may__mon_word; /* the monitor's futex word: 1 = look again */
extern _Atomic int may__mon_sleeping;  /* asleep until a worker gets busy */

/* A worker has just left the idle list (nidle decremented): wake the
 * monitor if it sleeps because every worker was idle. */
static inline void may__mon_kick(void)
{
    /* seq_cst: Dekker pair with the monitor's store of mon_sleeping and
     * load of nidle; the caller has just decremented nidle */
    if (MAY_UNLIKELY(atomic_load(&may__mon_sleeping))) {
        atomic_store(&may__mon_word, 1);
        may__futex_wake(&may__mon_word, 1);
    }
}
/* Read /proc/self/task/TID/file into buf (NUL-terminated, at most cap - 1
 * bytes): its length, or 0 if /proc cannot tell. */
int may__task_read(int tid, const char *file, char *buf, size_t cap);
/* Start the monitor thread (start.c, with more than one worker).  0 or
 * -errno. */
int may__monitor_start(void);
/* Stop and join it, if it runs.  may__S.stopping is set. */
void may__monitor_stop(void);

/* ---- coroutine.c -------------------------------------------------------- */

/* Coroutines spawned and not ended.  Exact once every end the caller
 * knows of happened-before the call (joins give that). */
static inline int64_t may__co_alive(void)
{
    int64_t n = atomic_load(&may__S.alive);
    if (atomic_load_explicit(&may__S.state, memory_order_acquire) == 2)
        for (int i = 0, nall = atomic_load(&may__S.nall); i < nall; i++)
            n += atomic_load(&may__S.workers[i]->alive_delta);
    return n;
}

#endif
