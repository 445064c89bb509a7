/*
 * sched.c - the M:N scheduler.
 *
 * The model.  N worker threads (one per allowed CPU by default) run
 * coroutines.  Each worker owns a run queue: a 256-slot ring that only the
 * owner pushes to and that the owner and thieves pop from with a CAS on
 * head (Go's runq), plus a one-slot "runnext" for the coroutine it just woke
 * or spawned, which it runs next for cache locality.  A global queue under a
 * mutex takes work from plain threads and ring overflow; a per-worker inbox
 * takes coroutines that must run on that worker (pinned, or spawned with a
 * preferred worker).  A worker that runs out of work checks, in order:
 * global queue, inbox, due timers, then steals half of another worker's
 * ring; if all fail it goes idle.
 *
 * Switching.  A coroutine that blocks picks its successor itself and
 * switches straight to it (one switch, no trip through the scheduler's own
 * stack).  Whatever must happen after the old context is saved (marking it
 * parked, requeueing a yield, announcing its end) is a "hook" that the
 * resumed context runs first thing.  This is what makes park/unpark races
 * simple: the park is committed only when the coroutine's registers are
 * saved, so an unpark that sees PARKED can resume it on any worker at once.
 * Only when no successor is at hand does the coroutine switch to the
 * worker's own stack (g0), which may sleep.
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
 * The monitor.  One more thread, like Go's sysmon, watches for what the
 * workers cannot see because they are busy: a worker that has run one
 * coroutine for a whole tick (a CPU loop, or a call that blocks the thread)
 * while coroutines wait in its queue gets an idle worker woken to steal
 * them; and when timers are armed or fds are waited on but no worker sits
 * in the poller (the poller left it to run work), an idle worker is woken to
 * take the poller over.  It ticks every 1 ms, backing off to 10 ms while it
 * finds nothing to do, and sleeps on a futex while every worker is idle, so
 * a quiet runtime still makes no wake-ups.  It never moves work itself; it
 * only wakes workers, through the same wakep() as everything else.
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
 * tree, D1-D8, with both sides and the barrier of each.
 *
 * Rejected: a single global queue (contention, no locality); a dedicated
 * poller thread (a thread hop per I/O readiness); waking every idle worker
 * per spawn (thundering herd); switching always through g0 (twice the
 * switches per hand-off).
 */
#include "internal.h"
#include "san.h"
#include "waitq.h"

#include <limits.h>
#include <stddef.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

may__sched may__S = {
    .start_lock = PTHREAD_MUTEX_INITIALIZER,
    .gq_lock = PTHREAD_MUTEX_INITIALIZER,
    .idle_lock = PTHREAD_MUTEX_INITIALIZER,
    .poller_until = INT64_MIN,
};

/* The running worker (see may__cur_worker in internal.h). */
__thread may__worker *may__tls_w;
static __thread void *tls_fake; /* ASan fake stack of a thread's own stack */


#define STAT_ADD(x, d) \
    atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + (d), \
                          memory_order_relaxed)
#define STAT_INC(x) \
    atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + 1, \
                          memory_order_relaxed)

int64_t may__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* ---- run queues --------------------------------------------------------- */

/* The global queue holds pointers in a ring (no pointer chasing through
 * the coroutines, whose control blocks are each on their own page); if the
 * ring cannot grow, an intrusive list through co->next takes the rest.
 * gq_lock held. */
static int gq_ring_reserve(uint32_t n)
{
    MAY__ASSERT_HELD(MAY__RANK_GQ, &may__S.gq_lock);
    if (may__S.gq_rcount + n <= may__S.gq_cap)
        return 1;
    uint32_t ncap = may__S.gq_cap ? may__S.gq_cap : 256;
    while (ncap < may__S.gq_rcount + n)
        ncap *= 2;
    struct may_co **r = malloc((size_t)ncap * sizeof *r);
    if (!r)
        return 0;
    for (uint32_t i = 0; i < may__S.gq_rcount; i++)
        r[i] = may__S.gq_ring[(may__S.gq_rhead + i) % may__S.gq_cap];
    free(may__S.gq_ring);
    may__S.gq_ring = r;
    may__S.gq_cap = ncap;
    may__S.gq_rhead = 0;
    return 1;
}

static void gq_push_array(struct may_co **cos, uint32_t n)
{
    may__lock(&may__S.gq_lock, MAY__RANK_GQ);
    if (!may__S.gq_head && gq_ring_reserve(n)) {
        for (uint32_t i = 0; i < n; i++)
            may__S.gq_ring[(may__S.gq_rhead + may__S.gq_rcount + i) % may__S.gq_cap] = cos[i];
        may__S.gq_rcount += n;
    } else {
        for (uint32_t i = 0; i < n; i++) {
            cos[i]->next = NULL;
            if (may__S.gq_tail)
                may__S.gq_tail->next = cos[i];
            else
                may__S.gq_head = cos[i];
            may__S.gq_tail = cos[i];
        }
    }
    /* seq_cst: a producer pushes, then reads nidle (see go_idle) */
    atomic_fetch_add_explicit(&may__S.gq_len, n, memory_order_seq_cst);
    may__unlock(&may__S.gq_lock, MAY__RANK_GQ);
}

/* The ring is full: move half of it and co to the global queue. */
static MAY_NOINLINE __attribute__((cold)) int runq_push_slow(may__worker *w, struct may_co *co,
                                                            uint32_t h)
{
    may__runq *q = &w->q;
    uint32_t n = MAY__RUNQ_SIZE / 2;
    struct may_co *batch[MAY__RUNQ_SIZE / 2];
    for (uint32_t i = 0; i < n; i++)
        batch[i] = atomic_load_explicit(&q->buf[(h + i) % MAY__RUNQ_SIZE], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&q->head, &h, h + n, memory_order_release,
                                                 memory_order_relaxed))
        return 0; /* a thief took some; there is room now */
    gq_push_array(batch, n);
    gq_push_array(&co, 1);
    return 1;
}

/* Owner only. */
static inline void runq_push(may__worker *w, struct may_co *co)
{
    may__runq *q = &w->q;
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (MAY_LIKELY(t - h < MAY__RUNQ_SIZE)) {
            atomic_store_explicit(&q->buf[t % MAY__RUNQ_SIZE], co, memory_order_relaxed);
            /* release: pairs with the acquire of tail in runq_grab */
            atomic_store_explicit(&q->tail, t + 1, memory_order_release);
            return;
        }
        if (runq_push_slow(w, co, h))
            return;
    }
}

/* Owner only.  With a single worker there are no thieves, and the ring can
 * be used without read-modify-write instructions. */
static inline struct may_co *runq_pop(may__worker *w)
{
    may__runq *q = &w->q;
    if (may__S.nworkers == 1) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
        if (h == atomic_load_explicit(&q->tail, memory_order_relaxed))
            return NULL;
        struct may_co *co = atomic_load_explicit(&q->buf[h % MAY__RUNQ_SIZE], memory_order_relaxed);
        atomic_store_explicit(&q->head, h + 1, memory_order_relaxed);
        return co;
    }
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (t == h)
            return NULL;
        struct may_co *co = atomic_load_explicit(&q->buf[h % MAY__RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_release,
                                                  memory_order_relaxed))
            return co;
    }
}

static uint32_t runq_len(may__worker *w)
{
    uint32_t h = atomic_load_explicit(&w->q.head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&w->q.tail, memory_order_acquire);
    return t - h;
}

/* Take half of victim's ring into batch.  Any thread. */
static uint32_t runq_grab(may__worker *v, struct may_co **batch, int take_next)
{
    may__runq *q = &v->q;
    for (;;) {
        /* acquire: pairs with the release stores of head and tail */
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
        uint32_t n = t - h;
        n = n - n / 2;
        if (n == 0) {
            if (take_next) {
                struct may_co *co = atomic_load_explicit(&v->runnext, memory_order_acquire);
                if (co && atomic_compare_exchange_strong(&v->runnext, &co, NULL)) {
                    batch[0] = co;
                    return 1;
                }
            }
            return 0;
        }
        if (n > MAY__RUNQ_SIZE / 2)
            continue; /* h and t were read at different times */
        for (uint32_t i = 0; i < n; i++)
            batch[i] = atomic_load_explicit(&q->buf[(h + i) % MAY__RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&q->head, &h, h + n, memory_order_acq_rel,
                                                    memory_order_relaxed))
            return n;
    }
}

static MAY_NOINLINE struct may_co *gq_pop_locked(may__worker *w, uint32_t max);
static inline struct may_co *gq_pop(may__worker *w, uint32_t max)
{
    if (atomic_load_explicit(&may__S.gq_len, memory_order_relaxed) == 0)
        return NULL;
    return gq_pop_locked(w, max);
}

static MAY_NOINLINE struct may_co *gq_pop_locked(may__worker *w, uint32_t max)
{
    struct may_co *got[MAY__RUNQ_SIZE / 2];
    uint32_t taken = 0;
    may__lock(&may__S.gq_lock, MAY__RANK_GQ);
    uint32_t len = atomic_load_explicit(&may__S.gq_len, memory_order_relaxed);
    uint32_t n = len / (uint32_t)may__S.nworkers + 1;
    if (n > max)
        n = max;
    if (n > MAY__RUNQ_SIZE / 2)
        n = MAY__RUNQ_SIZE / 2;
    while (taken < n && may__S.gq_rcount) {
        got[taken++] = may__S.gq_ring[may__S.gq_rhead];
        may__S.gq_rhead = (may__S.gq_rhead + 1) % may__S.gq_cap;
        may__S.gq_rcount--;
    }
    while (taken < n && may__S.gq_head) {
        got[taken++] = may__S.gq_head;
        may__S.gq_head = may__S.gq_head->next;
        if (!may__S.gq_head)
            may__S.gq_tail = NULL;
    }
    atomic_fetch_sub_explicit(&may__S.gq_len, taken, memory_order_relaxed);
    may__unlock(&may__S.gq_lock, MAY__RANK_GQ);
    for (uint32_t i = 1; i < taken; i++)
        runq_push(w, got[i]);
    return taken ? got[0] : NULL;
}

static void inbox_push(may__worker *w, struct may_co *co)
{
    may__lock(&w->inbox_lock, MAY__RANK_INBOX);
    co->next = NULL;
    if (w->inbox_tail)
        w->inbox_tail->next = co;
    else
        w->inbox_head = co;
    w->inbox_tail = co;
    if (co->pinned < 0)
        atomic_fetch_add_explicit(&w->inbox_free, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&w->inbox_len, 1, memory_order_seq_cst);
    may__unlock(&w->inbox_lock, MAY__RANK_INBOX);
}

static MAY_NOINLINE struct may_co *inbox_pop_locked(may__worker *w);
static inline struct may_co *inbox_pop(may__worker *w)
{
    if (atomic_load_explicit(&w->inbox_len, memory_order_relaxed) == 0)
        return NULL;
    return inbox_pop_locked(w);
}

static MAY_NOINLINE struct may_co *inbox_pop_locked(may__worker *w)
{
    may__lock(&w->inbox_lock, MAY__RANK_INBOX);
    struct may_co *co = w->inbox_head;
    if (co) {
        w->inbox_head = co->next;
        if (!w->inbox_head)
            w->inbox_tail = NULL;
        if (co->pinned < 0)
            atomic_fetch_sub_explicit(&w->inbox_free, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&w->inbox_len, 1, memory_order_relaxed);
    }
    may__unlock(&w->inbox_lock, MAY__RANK_INBOX);
    return co;
}

/* A thief's take from v's inbox: the first coroutine that is not pinned
 * (spawned with MAY_SPAWN_WORKER and not started yet).  trylock: a busy
 * inbox is not worth waiting for. */
static MAY_NOINLINE struct may_co *inbox_steal(may__worker *v)
{
    if (atomic_load_explicit(&v->inbox_free, memory_order_relaxed) == 0 ||
        may__trylock(&v->inbox_lock, MAY__RANK_INBOX) != 0)
        return NULL;
    struct may_co *prev = NULL, *co = v->inbox_head;
    while (co && co->pinned >= 0) {
        prev = co;
        co = co->next;
    }
    if (co) {
        if (prev)
            prev->next = co->next;
        else
            v->inbox_head = co->next;
        if (v->inbox_tail == co)
            v->inbox_tail = prev;
        atomic_fetch_sub_explicit(&v->inbox_free, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&v->inbox_len, 1, memory_order_relaxed);
    }
    may__unlock(&v->inbox_lock, MAY__RANK_INBOX);
    return co;
}

/* ---- waking idle workers ------------------------------------------------ */

static void wake_raw(may__worker *w)
{
    /* seq_cst: Dekker pair with the idler's store of polling / load of
     * sleep_word in go_idle(). */
    atomic_store(&w->sleep_word, 0);
    if (atomic_load(&w->polling))
        may__poll_wake();
    else
        futex(&w->sleep_word, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* The monitor (see the top of this file): it sleeps on mon_word while every
 * worker is idle, and a worker leaving the idle list wakes it. */
static pthread_t mon_thread;
static int mon_running;
static _Atomic uint32_t mon_word;  /* futex word: 1 = look again */
static _Atomic int mon_sleeping;   /* asleep until a worker gets busy */

static void mon_kick(void)
{
    /* seq_cst: Dekker pair with the monitor's store of mon_sleeping and
     * load of nidle; the caller has just decremented nidle */
    if (MAY_UNLIKELY(atomic_load(&mon_sleeping))) {
        atomic_store(&mon_word, 1);
        futex(&mon_word, FUTEX_WAKE_PRIVATE, 1, NULL);
    }
}

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
        mon_kick();
    }
}

/* Wake one idle worker to look for work, unless one is already looking. */
static void wakep(void)
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
    wake_raw(pick);
}

static void wake_worker(may__worker *w)
{
    /* seq_cst: the caller queued work for w before this load; w stores
     * sleep_word = 1 before it re-checks its inbox (go_idle).  A running
     * worker finds the work itself. */
    if (atomic_load(&w->sleep_word) == 0)
        return;
    may__lock(&may__S.idle_lock, MAY__RANK_IDLE);
    idle_remove_locked(w);
    may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);
    wake_raw(w);
}

/* ---- making coroutines runnable ----------------------------------------- */

MAY_HOT_INLINE void may__ready(struct may_co *co)
{
    may__ready_ex(co, 1);
}

/* lifo: put co in runnext (it runs next, for locality); else at the tail,
 * keeping the order of a batch (timers fire in deadline order). */
MAY_HOT_INLINE void may__ready_ex(struct may_co *co, int lifo)
{
    if (MAY_UNLIKELY(co->pinned >= 0)) {
        may__worker *pw = may__S.workers[co->pinned];
        inbox_push(pw, co);
        if (may__cur_worker() != pw)
            wake_worker(pw);
        return;
    }
    may__worker *w = may__cur_worker();
    if (w) {
        struct may_co *old = co;
        if (lifo) {
            /* Only this worker moves runnext from NULL to a coroutine;
             * thieves only take it (non-NULL to NULL).  So an empty slot
             * is filled with a release store, no locked instruction; a
             * full one is swapped, as a thief may be taking it. */
            old = atomic_load_explicit(&w->runnext, memory_order_relaxed);
            if (!old) {
                atomic_store_explicit(&w->runnext, co, memory_order_release);
                return;
            }
            /* seq_cst: Dekker pair D1 (docs/ARCHITECTURE.md): this
             * exchange is the producer's barrier; the same instruction as
             * acq_rel on x86 (xchg) and AArch64 (swpal) */
            if (!(old = atomic_exchange_explicit(&w->runnext, co, memory_order_seq_cst)))
                return;
        }
        runq_push(w, old);
        /* Dekker pair D1: the ring push, then the idle count.  Without the
         * exchange above (a FIFO ready, e.g. a timer), the push is a release
         * store and needs a full fence before the load; with it, an idler
         * that misses the ring finds runnext full instead. */
        if (!lifo)
            atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&may__S.nidle) > 0)
            wakep();
        return;
    }
    gq_push_array(&co, 1);
    wakep();
}

/* ---- picking the next coroutine ----------------------------------------- */

/* Non-blocking: runnext, ring, inbox, global queue.  Usable anywhere. */
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
        wakep();
}

/* Every 61st round: outside work first, due timers and fd readiness. */
static MAY_NOINLINE struct may_co *pick_fair(may__worker *w)
{
    struct may_co *co;
    w->tick = 61;
    if ((co = inbox_pop(w)) || (co = gq_pop(w, 1)))
        return co;
    if (may__timers_next() != INT64_MAX)
        may__timers_run(may__now());
    if (atomic_load_explicit(&may__io_waiters, memory_order_relaxed) > 0 &&
        !atomic_load_explicit(&may__S.poller_busy, memory_order_relaxed))
        poll_nonblocking();
    return NULL;
}

static inline struct may_co *take_runnext(may__worker *w)
{
    if (may__S.nworkers == 1) { /* no thieves */
        struct may_co *co = atomic_load_explicit(&w->runnext, memory_order_relaxed);
        atomic_store_explicit(&w->runnext, NULL, memory_order_relaxed);
        return co;
    }
    /* acquire: pairs with the thief's CAS in runq_grab */
    return atomic_exchange_explicit(&w->runnext, NULL, memory_order_acquire);
}

/* Non-blocking: runnext, ring, inbox, global queue.  Usable anywhere. */
static inline __attribute__((always_inline)) struct may_co *pick_fast(may__worker *w)
{
    struct may_co *co;
    if (MAY_UNLIKELY(--w->tick == 0) && (co = pick_fair(w)))
        return co;
    if (atomic_load_explicit(&w->runnext, memory_order_relaxed) &&
        (w->runnext_streak < 32 || runq_len(w) == 0) && (co = take_runnext(w))) {
        w->runnext_streak++;
        return co;
    }
    w->runnext_streak = 0;
    if ((co = runq_pop(w)))
        return co;
    if ((co = inbox_pop(w)))
        return co;
    return gq_pop(w, MAY__RUNQ_SIZE / 2);
}

static int work_available(void)
{
    if (atomic_load(&may__S.gq_len))
        return 1;
    may__worker *self = may__cur_worker();
    for (int i = 0; i < may__S.nworkers; i++) {
        may__worker *v = may__S.workers[i];
        /* another worker's pinned coroutines are its own business: it is
         * woken for them (wake_worker) */
        if (runq_len(v) || atomic_load(&v->runnext) ||
            atomic_load(v == self ? &v->inbox_len : &v->inbox_free))
            return 1;
    }
    return may__timers_next() <= may__now();
}

static struct may_co *steal(may__worker *w)
{
    struct may_co *batch[MAY__RUNQ_SIZE / 2];
    int n = may__S.nworkers;
    for (int attempt = 0; attempt < 4; attempt++) {
        w->rand ^= w->rand << 13;
        w->rand ^= w->rand >> 7;
        w->rand ^= w->rand << 17;
        int start = (int)(w->rand % (uint64_t)n);
        for (int k = 0; k < n; k++) {
            may__worker *v = may__S.workers[(start + k) % n];
            if (v == w)
                continue;
            uint32_t got = runq_grab(v, batch, attempt == 3);
            if (got) {
                for (uint32_t i = 1; i < got; i++)
                    runq_push(w, batch[i]);
                atomic_fetch_add_explicit(&w->n_steal, got, memory_order_relaxed);
                return batch[0];
            }
            struct may_co *co;
            if (attempt == 3 && (co = inbox_steal(v))) {
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
        wakep();
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
     * sleep_word == 0) has its work seen here. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!work_available() && !atomic_load(&may__S.stopping)) {
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
        } else {
            STAT_INC(w->n_park);
            while (atomic_load(&w->sleep_word) == 1 && !atomic_load(&may__S.stopping))
                futex(&w->sleep_word, FUTEX_WAIT_PRIVATE, 1, NULL);
        }
    }
    may__lock(&may__S.idle_lock, MAY__RANK_IDLE);
    if (w->idle)
        idle_remove_locked(w);
    may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);
    atomic_store(&w->sleep_word, 0); /* running again (see wake_worker) */
}

#define IDLE_SPIN_NS 50000

static int spin_for_work(void)
{
    int64_t end = may__now() + IDLE_SPIN_NS;
    do {
        if (may__stack_prewarm() > 0) { /* spare time put to use */
            if (work_available())
                return 1;
            continue;
        }
        for (int i = 0; i < 64; i++)
            cpu_relax();
        if (work_available())
            return 1;
    } while (may__now() < end && !atomic_load_explicit(&may__S.stopping, memory_order_relaxed));
    return 0;
}

/* On g0: find something to run, sleeping if there is nothing.  NULL when
 * the runtime is stopping. */
static struct may_co *find_runnable(may__worker *w)
{
    for (;;) {
        if (MAY_UNLIKELY(atomic_load_explicit(&may__S.stopping, memory_order_acquire)))
            return NULL;
        struct may_co *co = pick_fast(w);
        if (!co && may__timers_next() != INT64_MAX && may__timers_run(may__now()))
            co = pick_fast(w);
        if (!co && may__S.nworkers > 1) {
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
         * and a futex sleep and wake-up costs far more than that. */
        if (may__S.nworkers > 1 && spin_for_work())
            continue;
        go_idle(w);
    }
}

/* ---- the monitor -------------------------------------------------------- */

#define MON_TICK_NS 1000000LL
#define MON_TICK_MAX_NS 10000000LL

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
            (runq_len(w) || atomic_load_explicit(&w->runnext, memory_order_relaxed) ||
             atomic_load_explicit(&w->inbox_free, memory_order_relaxed)) &&
            atomic_load(&may__S.nidle) > 0) {
            wakep();
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
        wakep();
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
            /* seq_cst: Dekker pair with mon_kick */
            atomic_store(&mon_sleeping, 1);
            if (atomic_load(&may__S.nidle) == n && !atomic_load(&may__S.stopping))
                futex(&mon_word, FUTEX_WAIT_PRIVATE, 0, NULL);
            atomic_store(&mon_sleeping, 0);
            atomic_store(&mon_word, 0);
            delay = MON_TICK_NS;
            quiet = 0;
            continue;
        }
        struct timespec ts = { .tv_sec = 0, .tv_nsec = delay };
        futex(&mon_word, FUTEX_WAIT_PRIVATE, 0, &ts);
        atomic_store(&mon_word, 0);
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

/* ---- switching ---------------------------------------------------------- */

static void requeue_hook(may__worker *w, struct may_co *co);
static inline void runq_push(may__worker *w, struct may_co *co);

static inline void run_hook(may__worker *w)
{
    if (w->hook.fn == requeue_hook) { /* the yield hook, inlined */
        w->hook.fn = NULL;
        runq_push(w, w->hook.co);
    } else if (w->hook.fn) {
        may__hook h = w->hook;
        w->hook.fn = NULL;
        h.fn(w, h.co);
    }
}

static inline void *stack_bottom(struct may_co *co)
{
    return co->stack.lo;
}

static inline size_t stack_extent(struct may_co *co)
{
    return (size_t)((char *)co - co->stack.lo);
}

/* g0 -> co.  Returns when some coroutine switches back to g0. */
static void run_co(may__worker *w, struct may_co *co)
{
    w->cur = co;
    STAT_INC(w->n_switch);
    san_begin(&tls_fake, stack_bottom(co), stack_extent(co), co->tsan_fiber);
    (void)may__ctx_jump(&w->sched_ctx, &co->ctx, w);
    san_end(tls_fake);
    w->cur = NULL;
    run_hook(w);
}

/* co (running on w) -> next, or -> g0 when next is NULL. */
static inline __attribute__((always_inline)) void switch_from(may__worker *w, struct may_co *self,
                                                            struct may_co *next, int exiting)
{
    void **fake = exiting ? NULL : &self->asan_fake;
    if (next) {
        w->cur = next;
        STAT_INC(w->n_switch);
        san_begin(fake, stack_bottom(next), stack_extent(next), next->tsan_fiber);
        w = may__ctx_jump(&self->ctx, &next->ctx, w);
    } else {
        w->cur = NULL;
        san_begin(fake, w->asan_g0_bottom, w->asan_g0_size, w->tsan_g0_fiber);
        w = may__ctx_jump(&self->ctx, &w->sched_ctx, w);
    }
    /* Resumed, perhaps on another thread: w is the worker that resumed us. */
    san_end(self->asan_fake);
    run_hook(w);
}

MAY_HOT_INLINE void may__switch_out(may__worker *w, may__hook hook)
{
    struct may_co *self = w->cur;
    w->hook = hook;
    switch_from(w, self, pick_fast(w), 0);
}

static void requeue_hook(may__worker *w, struct may_co *co)
{
    runq_push(w, co);
}

void may_yield(void)
{
    may__worker *w = may__cur_worker();
    if (!w || !w->cur) {
        sched_yield();
        return;
    }
    struct may_co *self = w->cur;
    if (may__S.nworkers == 1 && self->pinned < 0 && MAY_LIKELY(w->tick > 1) &&
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
            switch_from(w, self, next, 0);
            return;
        }
    }
    struct may_co *next = pick_fast(w);
    if (!next)
        return; /* nothing else to run here */
    if (self->pinned >= 0) {
        w->hook = (may__hook){ .fn = NULL };
        inbox_push(w, self);
    } else if (may__S.nworkers == 1) {
        /* No thieves: nothing can take self off this worker's ring before
         * the switch below is done, so queue it now and skip the hook. */
        w->hook.fn = NULL;
        runq_push(w, self);
    } else {
        w->hook = (may__hook){ requeue_hook, self };
    }
    switch_from(w, self, next, 0);
}

/* ---- coroutine life cycle ----------------------------------------------- */

static MAY_HOT_INLINE void co_free(struct may_co *co)
{
    may__stack st = co->stack; /* co lives inside st */
    atomic_store_explicit(&co->magic, 0, memory_order_relaxed); /* gone for may_dump */
    san_fiber_free(co->tsan_fiber);
    free(co->cls);
    may__stack_free(&st);
}

static void finish_hook(may__worker *w, struct may_co *co)
{
    /* Before DONE is visible: whoever joins may call may_shutdown next. */
    STAT_ADD(w->alive_delta, -1);
    /* may__co_finish took the joiner slot before we publish DONE: once DONE
     * is visible the joiner may free co, so after the CAS we touch only the
     * joiner's parker (which it keeps until our wake arrives). */
    may__parker *j = co->exit_joiner;
    int js = MAY__JS_RUNNING;
    if (atomic_compare_exchange_strong(&co->join_state, &js, MAY__JS_DONE)) {
        if (j)
            may__wake(j, MAY__P_WTOKEN);
    } else {
        co_free(co); /* detached: nobody else holds it */
    }
}

/* co ended and switched straight to its joiner, which it had claimed (see
 * may__co_finish); runs first thing in the joiner's context. */
static void finish_direct_hook(may__worker *w, struct may_co *co)
{
    STAT_ADD(w->alive_delta, -1);
    /* A plain store, not a CAS: the joiner is running (it is us), and its
     * wait finds the token that may__co_finish left with the claim.  The
     * only other writer of join_state is may_detach, which refuses a handle
     * whose joiner slot is set; one racing with this join (a caller bug)
     * loses to it, and the join frees co as usual. */
    atomic_store_explicit(&co->join_state, MAY__JS_DONE, memory_order_release);
}

_Noreturn void may__co_finish(struct may_co *co, void *result, int kind)
{
    while (co->cleanup) {
        may_cleanup_t *c = co->cleanup;
        co->cleanup = c->next;
        c->fn(c->arg);
    }
    if (co->cls)
        may__cls_run_destructors(co->cls);
    if (co->owned)
        may__scope_owner_exit(co);
    if (kind == MAY_DONE && atomic_load(&co->cancelled))
        kind = MAY_CANCELED;
    co->result = result;
    co->exit_kind = kind;
    if (MAY_UNLIKELY(co->track)) {
        /* measured before printing: the printing itself uses this stack */
        size_t used = may__stack_used(&co->stack);
        /* relaxed: may_co_stack_used may read it from anywhere, any time */
        atomic_store_explicit(&co->stack_peak, used, memory_order_relaxed);
        fprintf(stderr, "may: coroutine %llu \"%s\" ended: stack size = %zu, used size = %zu\n",
                (unsigned long long)co->id, co->name, co->stack.size, used);
    }
    may__worker *w = may__cur_worker();
    /* Take the joiner slot (seq_cst: pairs with the joiner's CAS of joiner
     * then load of join_state).  If the joiner is a coroutine parked in
     * that join, claim its wake-up by clearing PARKED ourselves: then no
     * one else can resume it, and we switch straight to it instead of
     * through the scheduler; the hook publishes DONE on its side. */
    may__parker *j = atomic_load(&co->joiner);
    /* (parker *)1: ended with no joiner; (parker *)2: ended, joiner taken */
    while (!atomic_compare_exchange_weak(&co->joiner, &j,
                                         j ? (may__parker *)2 : (may__parker *)1))
        ;
    co->exit_joiner = j;
    if (j && j->co && (j->co->pinned < 0 || j->co->pinned == w->index)) {
        uint32_t v = atomic_load_explicit(&j->word, memory_order_acquire);
        /* The same CAS leaves the wake token for the joiner's wait: it can
         * look only after it runs again, and it runs finish_direct_hook
         * (which publishes DONE) before it looks. */
        if ((v & MAY__P_PARKED) &&
            atomic_compare_exchange_strong_explicit(
                &j->word, &v, (v & ~(uint32_t)MAY__P_PARKED) | MAY__P_WTOKEN,
                memory_order_acq_rel, memory_order_relaxed)) {
            w->hook = (may__hook){ finish_direct_hook, co };
            switch_from(w, co, j->co, 1);
            __builtin_unreachable();
        }
    }
    w->hook = (may__hook){ finish_hook, co };
    switch_from(w, co, pick_fast(w), 1);
    __builtin_unreachable();
}

static void co_entry(void *arg)
{
    struct may_co *co = arg;
    may__worker *w = may__cur_worker();
    san_end(NULL);
    run_hook(w);
    if (atomic_load_explicit(&co->cancelled, memory_order_relaxed))
        may__co_finish(co, NULL, MAY_CANCELED);
    co->started = 1;
    may__co_finish(co, co->fn(co->arg), MAY_DONE);
}

/* Zero a control block up to its debugging fields with 16-byte stores.  A
 * memset or a compound literal of this size becomes rep stos, whose
 * start-up cost was several percent of a spawn+join. */
typedef long long may__v16 __attribute__((vector_size(16), may_alias));
static inline __attribute__((always_inline)) void zero_co_prefix(struct may_co *co)
{
    _Static_assert(offsetof(struct may_co, magic) % 16 == 0, "magic not 16-aligned");
    may__v16 *p = (may__v16 *)co, z = { 0, 0 };
    for (size_t i = 0; i < offsetof(struct may_co, magic) / 16; i++) {
        p[i] = z;
        __asm__("" : : "r"(p) : "memory"); /* not a memset to the compiler */
    }
}

int may_spawn_sized(may_co_t **out, may_fn_t fn, void *arg, const may_spawn_opts_t *opts,
                    size_t opts_size)
{
    static const may_spawn_opts_t defaults = { 0 };
    may_spawn_opts_t copy;
    if (out)
        *out = NULL;
    if (!opts) {
        opts = &defaults;
    } else if (MAY_UNLIKELY(opts_size != sizeof *opts)) {
        /* built against another version of the struct (include/may.h) */
        int r = may__abi_in(&copy, sizeof copy, opts, opts_size, MAY__SPAWN_OPTS_V1_SIZE);
        if (r < 0)
            return r;
        opts = &copy;
    }
    if (!fn)
        return -EINVAL;
    if (!(opts->flags & MAY_SPAWN_DETACHED) && !out)
        return -EINVAL;
    if (opts->stack_size && (opts->stack_size < 16384 || opts->stack_size > ((size_t)1 << 30)))
        return -EINVAL;
    int r;
    if (MAY_UNLIKELY(atomic_load_explicit(&may__S.state, memory_order_acquire) != 2) &&
        (r = may__ensure_started()) < 0)
        return r;
    int target = -1;
    if (opts->flags & (MAY_SPAWN_WORKER | MAY_SPAWN_PINNED)) {
        if (opts->worker < 0 || opts->worker >= may__S.nworkers)
            return -EINVAL;
        target = opts->worker;
    }
    may__stack st;
    r = may__stack_alloc(&st, opts->stack_size);
    if (r < 0)
        return r;
    struct may_co *co = may__stack_co(st.base, st.size);
    /* Only the part before the debugging fields and the name, so that the
     * compiler uses plain vector stores rather than rep stos, whose
     * start-up cost showed in the spawn benchmark. */
    zero_co_prefix(co);
    co->stack = st;
    co->fn = fn;
    co->arg = arg;
    co->wait_what = NULL;
    co->wait_obj = NULL;
    co->parker.co = co;
    may__worker *w = may__cur_worker();
    if (w) {
        /* ids come in blocks, so workers do not share a counter's line */
        if (MAY_UNLIKELY(w->id_next == w->id_end)) {
            w->id_next = atomic_fetch_add_explicit(&may__S.next_id, 4096, memory_order_relaxed) + 1;
            w->id_end = w->id_next + 4096;
        }
        co->id = w->id_next++;
    } else {
        co->id = atomic_fetch_add_explicit(&may__S.next_id, 1, memory_order_relaxed) + 1;
    }
    co->timer_idx = SIZE_MAX;
    co->pinned = (opts->flags & MAY_SPAWN_PINNED) ? target : -1;
    if (opts->flags & MAY_SPAWN_DETACHED)
        atomic_store_explicit(&co->join_state, MAY__JS_DETACHED, memory_order_relaxed);
    size_t namelen = 0;
    if (opts->name) {
        namelen = strnlen(opts->name, sizeof co->name - 1);
        memcpy(co->name, opts->name, namelen);
    }
    co->name[namelen] = 0;
    char *top = (char *)((uintptr_t)co & ~(uintptr_t)15);
    if (MAY_UNLIKELY(may__S.cfg.track_stack || (opts->flags & MAY_SPAWN_TRACK_STACK))) {
        co->track = 1;
        may__stack_fill_mark(&co->stack, top);
    }
    may__ctx_make(&co->ctx, top, co_entry, co);
    co->tsan_fiber = san_fiber_new();
    /* release: may_dump reads the fields above once it sees the magic */
    atomic_store_explicit(&co->magic, MAY__CO_MAGIC, memory_order_release);
    if (w) {
        STAT_ADD(w->alive_delta, 1);
        STAT_INC(w->n_spawn);
    } else {
        atomic_fetch_add(&may__S.alive, 1);
        atomic_fetch_add_explicit(&may__S.spawned, 1, memory_order_relaxed);
    }
    if (out)
        *out = co;
    if (target >= 0) {
        may__worker *tw = may__S.workers[target];
        inbox_push(tw, co);
        if (tw != w)
            wake_worker(tw);
    } else {
        may__ready(co);
    }
    return 0;
}

int may_go(may_fn_t fn, void *arg)
{
    may_spawn_opts_t o = { .flags = MAY_SPAWN_DETACHED };
    return may_spawn(NULL, fn, arg, &o);
}

/* Wait until co has ended, without releasing it.  0 when it has. */
MAY_HOT_INLINE int may__join_wait(may_co_t *co, int64_t deadline, int ignore_cancel)
{
    if (atomic_load(&co->join_state) == MAY__JS_DONE)
        return 0;
    if (MAY_UNLIKELY(atomic_load_explicit(&may__S.state, memory_order_relaxed) == MAY__STATE_FORKED))
        return -ENOTRECOVERABLE; /* nothing ends in a forked child (src/fork.c) */
    may__parker *p = may__self_parker();
    may__wait_prepare(p);
    may__parker *expect = NULL;
    if (!atomic_compare_exchange_strong(&co->joiner, &expect, p)) {
        if (expect != (may__parker *)1)
            return -EINVAL; /* someone else is joining */
        /* It is ending right now: DONE follows within a few instructions. */
        while (atomic_load(&co->join_state) != MAY__JS_DONE)
            sched_yield();
        return 0;
    }
    int woken = 0;
    for (;;) {
        /* seq_cst: pairs with finish_hook's CAS of join_state */
        if (atomic_load(&co->join_state) == MAY__JS_DONE)
            break;
        may__wait_note(p, "join", co);
        int r = may__wait(p, deadline, ignore_cancel);
        if (r == 0) {
            woken = 1; /* only the ending coroutine knows our parker */
            continue;
        }
        expect = p;
        if (atomic_compare_exchange_strong(&co->joiner, &expect, NULL))
            return r;
        break; /* it ended and took our parker */
    }
    /* It has taken our parker (a claim by CAS, waitq.c) and wakes it after
     * publishing DONE: wait for that wake, so nothing touches our parker
     * after we return. */
    if (!woken)
        may__wait_claimed(p);
    return 0;
}

MAY_HOT_INLINE int may__join_reap(may_co_t *co, void **result)
{
    int kind = co->exit_kind;
    if (result)
        *result = co->result;
    co_free(co);
    return kind;
}

int may_join(may_co_t *co, void **result, int64_t deadline)
{
    if (!co)
        return -EINVAL;
    if (co == may__cur_co())
        return -EDEADLK;
    if (atomic_load(&co->join_state) == MAY__JS_DETACHED)
        return -EINVAL;
    int r = may__join_wait(co, deadline, 0);
    if (r < 0)
        return r;
    return may__join_reap(co, result);
}

int may_detach(may_co_t *co)
{
    if (!co)
        return -EINVAL;
    may__parker *j = atomic_load(&co->joiner);
    if (j && j != (may__parker *)1)
        return -EINVAL; /* being joined (or its joiner was taken at its end) */
    int js = MAY__JS_RUNNING;
    if (atomic_compare_exchange_strong(&co->join_state, &js, MAY__JS_DETACHED))
        return 0; /* it will free itself */
    if (js == MAY__JS_DONE) {
        co_free(co);
        return 0;
    }
    return -EINVAL;
}

int may_cancel(may_co_t *co)
{
    if (!co)
        return -EINVAL;
    if (atomic_exchange(&co->cancelled, 1) == 0) {
        may__wake(&co->parker, MAY__P_CANCEL);
        /* co->owned is read under the scope lock: the owner may be adding
         * or freeing a scope right now. */
        may__scope_child_cancel_owned(co);
    }
    return 0;
}

bool may_cancelled(void)
{
    may_co_t *co = may__cur_co();
    return co && atomic_load_explicit(&co->cancelled, memory_order_relaxed);
}

may_co_t *may_self(void)
{
    return may__cur_co();
}

bool may_in_coroutine(void)
{
    return may__cur_co() != NULL;
}

int may_worker_id(void)
{
    may__worker *w = may__cur_worker();
    return w ? w->index : -1;
}

/* ---- workers ------------------------------------------------------------ */

void may__stack_pool_drain(may__worker *w);

static void *worker_main(void *arg)
{
    may__worker *w = arg;
    may__tls_w = w;
    /* may__cur_worker reads it in asm the compiler cannot see through */
    __asm__ volatile("" ::: "memory");
    char name[16];
    snprintf(name, sizeof name, "may-worker-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    may__altstack_setup();
    if (may__S.cfg.pin_workers) {
        cpu_set_t all, one;
        if (sched_getaffinity(0, sizeof all, &all) == 0) {
            int k = 0;
            for (int c = 0; c < CPU_SETSIZE; c++) {
                if (!CPU_ISSET(c, &all))
                    continue;
                if (k++ == w->index % CPU_COUNT(&all)) {
                    CPU_ZERO(&one);
                    CPU_SET(c, &one);
                    sched_setaffinity(0, sizeof one, &one);
                    break;
                }
            }
        }
    }
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &w->asan_g0_bottom, &w->asan_g0_size);
        pthread_attr_destroy(&attr);
    }
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
    may__tls_w = NULL;
    return NULL;
}

static int default_workers(void)
{
    const char *e = getenv("MAY_WORKERS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v > 0 && v <= 1024)
            return (int)v;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void free_workers(int n)
{
    for (int i = 0; i < n; i++) {
        may__worker *w = may__S.workers[i];
        pthread_mutex_destroy(&w->inbox_lock);
        free(w->pool);
        free(w);
    }
    free(may__S.workers);
    may__S.workers = NULL;
}

static void stop_workers(int started)
{
    atomic_store(&may__S.stopping, 1);
    if (mon_running) {
        atomic_store(&mon_word, 1);
        futex(&mon_word, FUTEX_WAKE_PRIVATE, 1, NULL);
        pthread_join(mon_thread, NULL);
        mon_running = 0;
    }
    for (int i = 0; i < started; i++)
        wake_raw(may__S.workers[i]);
    may__poll_wake();
    for (int i = 0; i < started; i++)
        pthread_join(may__S.workers[i]->thread, NULL);
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
    may__S.workers = calloc((size_t)n, sizeof *may__S.workers);
    if (!may__S.workers)
        goto out_unlock;
    int made = 0;
    for (; made < n; made++) {
        may__worker *w = aligned_alloc(MAY_CACHELINE, (sizeof *w + MAY_CACHELINE - 1) &
                                                          ~(size_t)(MAY_CACHELINE - 1));
        if (!w)
            goto out_free;
        memset(w, 0, sizeof *w);
        w->pool = calloc(cap, sizeof *w->pool);
        if (!w->pool) {
            free(w);
            goto out_free;
        }
        w->index = made;
        w->rand = 0x9e3779b97f4a7c15ULL * (uint64_t)(made + 1);
        w->tick = 61;
        pthread_mutex_init(&w->inbox_lock, NULL);
        may__S.workers[made] = w;
    }
    may__S.nworkers = n;
    r = may__poll_init();
    if (r < 0)
        goto out_free;
    may__stack_segv_install();
    int started = 0;
    for (; started < n; started++) {
        int e = pthread_create(&may__S.workers[started]->thread, NULL, worker_main,
                               may__S.workers[started]);
        if (e) {
            r = -e;
            goto out_stop;
        }
    }
    if (n > 1) { /* with one worker there is nobody to wake */
        atomic_store(&mon_word, 0);
        atomic_store(&mon_sleeping, 0);
        int e = pthread_create(&mon_thread, NULL, monitor_main, NULL);
        if (e) {
            r = -e;
            goto out_stop;
        }
        mon_running = 1;
    }
    atomic_store_explicit(&may__S.state, 2, memory_order_release);
    may__unlock(&may__S.start_lock, MAY__RANK_START);
    return 0;
out_stop:
    stop_workers(started);
    may__poll_close();
out_free:
    free_workers(made);
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

/* Coroutines spawned and not ended.  Exact once every end the caller
 * knows of happened-before the call (joins give that). */
static int64_t total_alive(void)
{
    int64_t n = atomic_load(&may__S.alive);
    if (atomic_load_explicit(&may__S.state, memory_order_acquire) == 2)
        for (int i = 0; i < may__S.nworkers; i++)
            n += atomic_load(&may__S.workers[i]->alive_delta);
    return n;
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
    if (total_alive() != 0) {
        may__unlock(&may__S.start_lock, MAY__RANK_START);
        return -EBUSY;
    }
    stop_workers(may__S.nworkers);
    may__poll_close();
    /* fold the per-worker counts in before the workers go (the sum is 0) */
    atomic_store(&may__S.alive, total_alive());
    free_workers(may__S.nworkers);
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
    out->alive = (uint64_t)total_alive();
    out->spawned = atomic_load(&may__S.spawned);
    if (atomic_load_explicit(&may__S.state, memory_order_acquire) != 2) {
        may__unlock(&may__S.start_lock, MAY__RANK_START);
        return;
    }
    out->workers = may__S.nworkers;
    may__stacks_hold(1);
    for (int i = 0; i < may__S.nworkers; i++) {
        may__worker *w = may__S.workers[i];
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
