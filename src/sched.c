/*
 * sched.c - the M:N scheduler proper: which coroutine a worker runs next,
 * switching to it, and what a worker does when it has nothing to run.
 *
 * The model.  N workers (one per allowed CPU by default) run coroutines,
 * each worker on a thread of its own.  Each worker owns a run queue: a
 * 256-slot ring that only the owner pushes to and that the owner and
 * thieves pop from with a CAS on head (Go's runq), plus a one-slot
 * "runnext" for the coroutine it just woke or spawned, which it runs next
 * for cache locality.  A global queue under a mutex takes work from plain
 * threads and ring overflow; a per-worker inbox takes coroutines that must
 * run on that worker (pinned, or spawned with a preferred worker).  A
 * worker that runs out of work checks, in order: global queue, inbox, due
 * timers, then steals half of another worker's ring; if all fail it goes
 * idle.
 *
 * The scheduler's files (their shared declarations: sched_impl.h):
 *
 *   sched.c      this file: picking, switching, yield, idling and waking,
 *                and the body of a worker's thread (may__worker_main)
 *   runq.c       the queues themselves: ring, runnext, inbox, global queue,
 *                and may__ready, which puts a coroutine on one of them
 *                (their fast paths inline in runq.h)
 *   monitor.c    the monitor thread, Go's sysmon: it wakes an idle worker
 *                for what busy workers cannot see (work queued behind a
 *                long-running coroutine, overdue timers, an empty poller)
 *   coroutine.c  a coroutine's life: spawn, end, join, detach, cancel
 *   start.c      starting and stopping the runtime: workers, threads,
 *                poller, monitor
 *   handoff.c    a worker whose thread blocks in the kernel: its queued
 *                work and its place go to a spare thread (Go's handoffp)
 *   stats.c      may_stats
 *
 * Switching.  A coroutine that blocks picks its successor itself and
 * switches straight to it (one switch, no trip through the scheduler's own
 * stack).  Whatever must happen after the old context is saved (marking it
 * parked, requeueing a yield, announcing its end) is a "hook" that the
 * resumed context runs first thing.  This is what makes park/unpark races
 * simple: the park is committed only when the coroutine's registers are
 * saved, so an unpark that sees PARKED can resume it on any worker at once.
 * Only when no successor is at hand does the coroutine switch to the
 * worker's own stack (g0), which may sleep.  The switch itself
 * (may__switch_from, may__pick_fast, may__run_hook) is inline in
 * sched_impl.h, since a coroutine's end (coroutine.c) runs it too.
 *
 * Fairness.  A yield puts the coroutine at the tail of the ring; every 61st
 * scheduling round takes from the global queue and the inbox first (so
 * outside work is not starved) and checks timers; runnext can be taken at
 * most 32 times in a row before the ring's head gets a turn.
 *
 * Idle.  An idle worker puts itself on the idle list and sleeps: the first
 * becomes the poller (may__poll_wait until the earliest timer), the others
 * futex_wait on their sleep_word.  Waking follows Go's "spinning" rule: when
 * work is queued and some worker is idle but none is spinning (looking for
 * work), one idle worker is woken and spins; a spinning worker that finds
 * work wakes another if it was the last spinner.  So a burst of work wakes
 * workers one by one and a quiet runtime makes no wake-ups at all.
 *
 * Lost wake-ups are excluded by Dekker pairs ("publish, then check the
 * other side", on both sides): a producer pushes then reads nidle; an idler
 * publishes itself on the idle list, fences, then re-checks every queue.  A
 * waker stores sleep_word = 0 then reads polling; the idler stores polling =
 * 1 then reads sleep_word.  A store then a load of another word is the one
 * reordering x86 does (store buffer) and AArch64 does more, so each side
 * has a full barrier between the two: a seq_cst fence, or a seq_cst
 * read-modify-write and a seq_cst load (ordered in C11's single total
 * order S).  A release store followed by a load is not enough, on either
 * machine.  docs/ARCHITECTURE.md ("Dekker pairs") lists every pair in the
 * tree, D1-D10, with both sides and the barrier of each.
 *
 * Locks: idle_lock (rank IDLE) guards the idle list and is taken alone
 * here; whoever readies a coroutine may hold an outer lock meanwhile (an
 * object's, the timer lock), never an inbox's or the global queue's, which
 * the run queue releases before anyone is woken.  No lock is held across a
 * switch.
 *
 * Rejected: a single global queue (contention, no locality); a dedicated
 * poller thread (a thread hop per I/O readiness); waking every idle worker
 * per spawn (thundering herd); switching always through g0 (twice the
 * switches per hand-off).
 */
#include "internal.h"
#include "sched_impl.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

may__sched may__S = {
    .start_lock = PTHREAD_MUTEX_INITIALIZER,
    .gq_lock = PTHREAD_MUTEX_INITIALIZER,
    .idle_lock = PTHREAD_MUTEX_INITIALIZER,
    .threads_lock = PTHREAD_MUTEX_INITIALIZER,
    .poller_until = INT64_MIN,
};

/* The running worker (see may__cur_worker in internal.h). */
__thread may__worker *may__tls_w;
static __thread void *tls_fake; /* ASan fake stack of a thread's own stack */

int64_t may__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- waking idle workers ------------------------------------------------ */

static void idle_remove_locked(may__worker *w)
{
    MAY__ASSERT_HELD(MAY__RANK_IDLE, &may__S.idle_lock);
    may__worker **pp = &may__S.idle;
    while (*pp && *pp != w)
        pp = &(*pp)->idle_next;
    if (*pp) {
        *pp = w->idle_next;
        w->idle = 0;
        atomic_fetch_sub(&may__S.nidle, 1);
        may__mon_kick();
    }
}

/* Take an idle worker made for a hand-off (index N or more) off the idle
 * list, as a spare now (role ACTIVE -> SPARE), for a worker of the first N
 * to take its place (handoff.c).  The caller wakes it.  NULL if none. */
may__worker *may__idle_take_spareborn(void)
{
    may__worker *got = NULL;
    may__lock(&may__S.idle_lock, MAY__RANK_IDLE);
    for (may__worker *i = may__S.idle; i && !got; i = i->idle_next) {
        int r = MAY__ROLE_ACTIVE;
        if (i->index >= may__S.nworkers &&
            atomic_compare_exchange_strong(&i->role, &r, MAY__ROLE_SPARE))
            got = i;
    }
    if (got)
        idle_remove_locked(got);
    may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);
    return got;
}

/* Wake one idle worker to look for work, unless one is already looking. */
void may__wakep(void)
{
    if (atomic_load(&may__S.nidle) == 0)
        return;
    int zero = 0;
    if (!atomic_compare_exchange_strong(&may__S.nspinning, &zero, 1))
        return;
    /* Never the caller: a worker still on the idle list while it runs is the
     * poller handing out readiness (go_idle), and it looks for work itself
     * next.  Waking it would cost an eventfd write now and a read after its
     * next epoll_wait returns at once: two system calls per poll round,
     * measured at 0.2 per request of the HTTP example on one worker. */
    may__worker *self = may__cur_worker();
    may__lock(&may__S.idle_lock, MAY__RANK_IDLE);
    may__worker *pick = NULL;
    for (may__worker *i = may__S.idle; i; i = i->idle_next) {
        if (i == self)
            continue;
        pick = i;
        if (!atomic_load(&i->polling))
            break; /* prefer one that is not watching the poller */
    }
    if (!pick) {
        may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);
        atomic_fetch_sub(&may__S.nspinning, 1);
        return;
    }
    idle_remove_locked(pick);
    pick->spinning = 1; /* counted in nspinning by the CAS above */
    may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);
    may__wake_raw(pick);
}

void may__wake_worker(may__worker *w)
{
    /* seq_cst: the caller queued work for w before this load; w stores
     * sleep_word = 1 before it re-checks its inbox (go_idle).  A running
     * worker finds the work itself. */
    if (atomic_load(&w->sleep_word) == 0)
        return;
    may__lock(&may__S.idle_lock, MAY__RANK_IDLE);
    idle_remove_locked(w);
    may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);
    may__wake_raw(w);
}

/* ---- picking the next coroutine ----------------------------------------- */

/* A busy worker's look at fd readiness (io.c), when something waits on an
 * fd and no worker is in the poller: a zero-timeout poll under the same
 * poller_busy flag as the blocking one, so the two never overlap.  If an
 * idle worker failed to become the poller because we held the flag, it
 * sleeps on its futex; wake one so that it takes the poller over. */
static MAY_NOINLINE void poll_nonblocking(void)
{
    int zero = 0;
    if (!atomic_compare_exchange_strong(&may__S.poller_busy, &zero, 1))
        return;
    may__poll_wait(0);
    atomic_store(&may__S.poller_busy, 0);
    if (atomic_load(&may__S.nidle) > 0)
        may__wakep();
}

/* Every 61st round: outside work first, due timers and fd readiness. */
MAY_NOINLINE struct may_co *may__pick_fair(may__worker *w)
{
    struct may_co *co;
    w->tick = 61;
    /* a lent worker's thread is back, or a spare ran a locked coroutine:
     * to its own stack, to find its place (handoff.c) */
    if (MAY_UNLIKELY(atomic_load_explicit(&w->role, memory_order_relaxed) != MAY__ROLE_ACTIVE))
        return MAY__CO_SIDELINE;
    if ((co = may__inbox_pop(w)) || (co = may__gq_pop(w, 1)))
        return co;
    if (may__timers_next() != INT64_MAX)
        may__timers_run(may__now());
    if (atomic_load_explicit(&may__io_waiters, memory_order_relaxed) > 0 &&
        !atomic_load_explicit(&may__S.poller_busy, memory_order_relaxed))
        poll_nonblocking();
    return NULL;
}

static int work_available(void)
{
    if (atomic_load(&may__S.gq_len))
        return 1;
    may__worker *self = may__cur_worker();
    int nall = atomic_load_explicit(&may__S.nall, memory_order_acquire);
    for (int i = 0; i < nall; i++) {
        may__worker *v = may__S.workers[i];
        /* another worker's pinned coroutines are its own business: it is
         * woken for them (may__wake_worker) */
        if (may__runq_len(v) || atomic_load(&v->runnext) ||
            atomic_load(v == self ? &v->inbox_len : &v->inbox_free))
            return 1;
    }
    return may__timers_next() <= may__now();
}

static struct may_co *steal(may__worker *w)
{
    struct may_co *batch[MAY__RUNQ_SIZE / 2];
    int n = atomic_load_explicit(&may__S.nall, memory_order_acquire);
    for (int attempt = 0; attempt < 4; attempt++) {
        w->rand ^= w->rand << 13;
        w->rand ^= w->rand >> 7;
        w->rand ^= w->rand << 17;
        int start = (int)(w->rand % (uint64_t)n);
        for (int k = 0; k < n; k++) {
            may__worker *v = may__S.workers[(start + k) % n];
            if (v == w)
                continue;
            uint32_t got = may__runq_grab(v, batch, attempt == 3);
            if (got) {
                for (uint32_t i = 1; i < got; i++)
                    may__runq_push(w, batch[i]);
                atomic_fetch_add_explicit(&w->n_steal, got, memory_order_relaxed);
                return batch[0];
            }
            struct may_co *co;
            if (attempt == 3 && (co = may__inbox_steal(v))) {
                atomic_fetch_add_explicit(&w->n_steal, 1, memory_order_relaxed);
                return co;
            }
        }
    }
    return NULL;
}

static void stop_spinning(may__worker *w)
{
    if (!w->spinning)
        return;
    w->spinning = 0;
    /* The last spinner to find work wakes another: there may be more. */
    if (atomic_fetch_sub(&may__S.nspinning, 1) == 1)
        may__wakep();
}

static void go_idle(may__worker *w)
{
    atomic_store(&w->sleep_word, 1);
    may__lock(&may__S.idle_lock, MAY__RANK_IDLE);
    w->idle_next = may__S.idle;
    may__S.idle = w;
    w->idle = 1;
    atomic_fetch_add(&may__S.nidle, 1);
    may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);

    /* Dekker pairs D1-D3 (docs/ARCHITECTURE.md): the idler's side.  Its
     * stores (nidle, sleep_word) are ordered before the re-check of every
     * queue by this fence, so a producer that read nidle == 0 (or
     * sleep_word == 0) has its work seen here.  And D10: a worker handed
     * off since find_runnable looked at its role (the monitor saw its
     * coroutine's blocking call just before it returned) must not sleep on
     * the idle list, where may__wakep would pick it for work it does not
     * take (outside work is for active workers); either its role reads
     * LENT here, or the monitor reads sleep_word == 1 and wakes it. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!work_available() && !atomic_load(&may__S.stopping) &&
        atomic_load(&w->role) == MAY__ROLE_ACTIVE) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&may__S.poller_busy, &zero, 1)) {
            atomic_store(&w->polling, 1);
            /* Dekker pair D5 with may__timer_arm: publish that a poller is
             * about to sleep, fence, then read the next deadline.  An armer
             * either reads poller_until (INT64_MAX or the dl below) and
             * wakes us, or its deadline is in the dl we read. */
            atomic_store(&may__S.poller_until, INT64_MAX);
            atomic_thread_fence(memory_order_seq_cst);
            int64_t dl = may__timers_next();
            atomic_store(&may__S.poller_until, dl);
            if (atomic_load(&w->sleep_word) == 1 && !work_available()) {
                STAT_INC(w->n_park);
                may__poll_wait(dl);
            }
            atomic_store(&may__S.poller_until, INT64_MIN);
            atomic_store(&w->polling, 0);
            atomic_store(&may__S.poller_busy, 0);
            /* Made a spare, or handed off, while it polled (handoff.c):
             * it will not come back to poll, and an idle worker may have
             * found the poller taken and gone to sleep on its futex
             * meanwhile.  Wake one to take the poller over. */
            if (MAY_UNLIKELY(atomic_load(&w->role) != MAY__ROLE_ACTIVE) &&
                atomic_load(&may__S.nidle) > 0)
                may__wakep();
        } else {
            STAT_INC(w->n_park);
            while (atomic_load(&w->sleep_word) == 1 && !atomic_load(&may__S.stopping))
                may__futex_wait(&w->sleep_word, 1, -1);
        }
    }
    may__lock(&may__S.idle_lock, MAY__RANK_IDLE);
    if (w->idle)
        idle_remove_locked(w);
    may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);
    atomic_store(&w->sleep_word, 0); /* running again (see may__wake_worker) */
}

#define IDLE_SPIN_MIN_NS 2000

/* Spin up to w->spin_ns for work to appear.  The length adapts: a spin that
 * finds work doubles it (up to may__S.spin_max_ns: config idle_spin_us,
 * 50 us by default, 0 for no spin at all), one that finds none halves it
 * (down to IDLE_SPIN_MIN_NS).  Work handed between workers within
 * microseconds (spawns, channel hand-offs) keeps it long; work that comes
 * from the kernel, for which a spinner only burns the CPU a server on the
 * same machine may need, makes it short.  (With the full 50 us every time,
 * a hiredis client in 64 coroutines spent a quarter of its CPU here.) */
static int spin_for_work(may__worker *w)
{
    int64_t end = may__now() + w->spin_ns;
    do {
        if (may__stack_prewarm() > 0) { /* spare time put to use */
            if (work_available())
                goto found;
            continue;
        }
        for (int i = 0; i < 64; i++)
            cpu_relax();
        if (work_available())
            goto found;
    } while (may__now() < end && !atomic_load_explicit(&may__S.stopping, memory_order_relaxed));
    w->spin_ns = w->spin_ns / 2 > IDLE_SPIN_MIN_NS ? w->spin_ns / 2 : IDLE_SPIN_MIN_NS;
    if (w->spin_ns > may__S.spin_max_ns)
        w->spin_ns = may__S.spin_max_ns;
    return 0;
found:
    w->spin_ns = w->spin_ns * 2 < may__S.spin_max_ns ? w->spin_ns * 2 : may__S.spin_max_ns;
    return 1;
}

/* On g0: find something to run, sleeping if there is nothing.  NULL when
 * the runtime is stopping. */
static struct may_co *find_runnable(may__worker *w)
{
    for (;;) {
        if (MAY_UNLIKELY(atomic_load_explicit(&may__S.stopping, memory_order_acquire)))
            return NULL;
        struct may_co *co;
        if (MAY_UNLIKELY(atomic_load_explicit(&w->role, memory_order_relaxed) != MAY__ROLE_ACTIVE)) {
            /* Woken by may__wakep as its spinning worker, and handed off
             * before it looked (src/handoff.c): it will not take the
             * outside work it was woken for, so it passes the wake on.
             * Kept, the count would stay at 1 while this thread sleeps as
             * a spare, or leaves, and no may__wakep would wake anyone
             * again (it wakes only when nobody spins): a coroutine queued
             * by a plain thread would wait for good while every active
             * worker idles. */
            stop_spinning(w);
            int r = may__sidelined(w, &co);
            if (r < 0)
                return NULL;
            if (r > 0)
                return co;
        }
        co = may__pick_fast(w);
        if (!co && may__timers_next() != INT64_MAX && may__timers_run(may__now()))
            co = may__pick_fast(w);
        int many = atomic_load_explicit(&may__S.nall, memory_order_relaxed) > 1;
        if (!co && many) {
            if (!w->spinning &&
                2 * atomic_load(&may__S.nspinning) < may__S.nworkers - atomic_load(&may__S.nidle)) {
                w->spinning = 1;
                atomic_fetch_add(&may__S.nspinning, 1);
            }
            if (w->spinning)
                co = steal(w);
        }
        if (co) {
            stop_spinning(w);
            return co;
        }
        if (w->spinning) {
            w->spinning = 0;
            atomic_fetch_sub(&may__S.nspinning, 1);
            if (work_available())
                continue;
        }
        /* Spin a little before sleeping: work often arrives within
         * microseconds (a spawning or waking coroutine on another worker),
         * and a futex sleep and wake-up costs far more than that.  Not
         * when coroutines wait for fds and nobody watches the poller: what
         * they wait for comes from the kernel, which only the poller hears,
         * so this worker goes idle at once and becomes the poller. */
        if (many && may__S.spin_max_ns > 0 &&
            !(atomic_load_explicit(&may__io_waiters, memory_order_relaxed) > 0 &&
              !atomic_load_explicit(&may__S.poller_busy, memory_order_relaxed)) &&
            spin_for_work(w))
            continue;
        if (MAY_UNLIKELY(w->index >= may__S.nworkers) && may__place_back(w))
            continue;
        go_idle(w);
    }
}

/* ---- switching ---------------------------------------------------------- */

/* g0 -> co.  Returns when some coroutine switches back to g0. */
static void run_co(may__worker *w, struct may_co *co)
{
    w->cur = co;
    STAT_INC(w->n_switch);
    san_begin(&tls_fake, may__co_stack_bottom(co), may__co_stack_extent(co), co->tsan_fiber);
    (void)may__ctx_jump(&w->sched_ctx, &co->ctx, w);
    san_end(tls_fake);
    w->cur = NULL;
    may__run_hook(w);
}

MAY_HOT_INLINE void may__switch_out(may__worker *w, may__hook hook)
{
    struct may_co *self = w->cur;
    w->hook = hook;
    may__switch_from(w, self, may__pick_fast(w), 0);
}

/* The hook of a yield (may__run_hook inlines it). */
void may__requeue_hook(may__worker *w, struct may_co *co)
{
    may__runq_push(w, co);
}

void may_yield(void)
{
    may__worker *w = may__cur_worker();
    if (!w || !w->cur) {
        sched_yield();
        return;
    }
    struct may_co *self = w->cur;
    if (may__solo() && self->pinned < 0 && MAY_LIKELY(w->tick > 1) &&
        !atomic_load_explicit(&w->runnext, memory_order_relaxed)) {
        /* One worker, so no thieves, and nothing in runnext: take the
         * ring's head and put self at its tail in one go.  The ring's
         * length does not change, so it cannot overflow, and nothing can
         * take self off it before the switch below is done. */
        may__runq *q = &w->q;
        uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (h != t) {
            struct may_co *next =
                atomic_load_explicit(&q->buf[h % MAY__RUNQ_SIZE], memory_order_relaxed);
            atomic_store_explicit(&q->buf[t % MAY__RUNQ_SIZE], self, memory_order_relaxed);
            atomic_store_explicit(&q->head, h + 1, memory_order_relaxed);
            atomic_store_explicit(&q->tail, t + 1, memory_order_relaxed);
            w->tick--;
            w->runnext_streak = 0;
            may__switch_from(w, self, next, 0);
            return;
        }
    }
    struct may_co *next = may__pick_fast(w);
    if (!next) {
        if (MAY_UNLIKELY(atomic_load_explicit(&w->role, memory_order_relaxed) !=
                         MAY__ROLE_ACTIVE) &&
            self->pinned < 0) {
            /* a lent worker's thread: queue self for the active workers
             * and find this thread's place (handoff.c) */
            w->hook = (may__hook){ may__requeue_global_hook, self };
            may__switch_from(w, self, NULL, 0);
            return;
        }
        /* Nothing else to run here.  Counted, so that the monitor sees a
         * coroutine that yields alone as making progress, not as stuck. */
        STAT_INC(w->n_lone_yield);
        return;
    }
    if (self->pinned >= 0) {
        w->hook = (may__hook){ .fn = NULL };
        may__inbox_push(w, self);
    } else if (may__solo()) {
        /* No thieves: nothing can take self off this worker's ring before
         * the switch below is done, so queue it now and skip the hook. */
        w->hook.fn = NULL;
        may__runq_push(w, self);
    } else {
        w->hook = (may__hook){ may__requeue_hook, self };
    }
    may__switch_from(w, self, next, 0);
}

/* ---- the worker thread -------------------------------------------------- */

void may__stack_pool_drain(may__worker *w);

/* The thread of worker w, which start.c creates: set the thread up (the
 * thread-local worker pointer, its name, its signal stack, its CPU, the
 * bounds of its own stack for the sanitizers), run coroutines on w until
 * the runtime stops (Go's schedule loop), and leave. */
void *may__worker_main(void *arg)
{
    may__worker *w = arg;
    MAY__TLS_W_SET(w);
    /* may__cur_worker reads it in asm the compiler cannot see through */
    __asm__ volatile("" ::: "memory");
    /* release: pairs with the monitor's acquire load (monitor.c) */
    atomic_store_explicit(&w->tid, may__gettid(), memory_order_release);
    char name[16];
    snprintf(name, sizeof name, "may-worker-%d", w->index);
    may__plat_set_thread_name(name);
    may__altstack_setup();
    if (may__S.cfg.pin_workers)
        may__plat_pin(w->index);
    (void)may__plat_thread_stack(&w->asan_g0_bottom, &w->asan_g0_size);
    w->tsan_g0_fiber = san_fiber_cur();
    for (;;) {
        struct may_co *co = find_runnable(w);
        if (!co)
            break;
        run_co(w, co);
    }
    may__stack_pool_drain(w);
    may__altstack_free();
    __asm__ volatile("" ::: "memory");
    MAY__TLS_W_SET(NULL);
    return NULL;
}
