/*
 * runq.c - the run queues: where runnable coroutines wait for a worker.
 *
 * Each worker owns three queues, and one more is shared:
 *
 *   the ring       256 slots (may__runq, Go's runq).  Only the owner pushes,
 *                  at the tail; the owner pops at the head and thieves take
 *                  half of it at once (may__runq_grab), each with a CAS on
 *                  head.  When it is full, the owner moves half of it, and
 *                  the coroutine it was pushing, to the global queue
 *                  (may__runq_push_slow), so a push never fails.  With a
 *                  single worker there are no thieves, and the owner's pop
 *                  and runnext need no read-modify-write.
 *   runnext        one slot ahead of the ring: the coroutine the worker just
 *                  woke or spawned, run next for cache locality.  Only the
 *                  owner fills it (NULL to a coroutine: may__ready_ex in
 *                  sched.c); the owner empties it with an exchange and a
 *                  thief with a CAS, and a thief only on its last attempt.
 *   the inbox      a list under inbox_lock, for coroutines handed to this
 *                  worker: pinned ones, which only it may run, and ones
 *                  spawned with MAY_SPAWN_WORKER, which a thief may take
 *                  while they wait (may__inbox_steal, with a trylock: a busy
 *                  inbox is not worth waiting for).  inbox_len counts the
 *                  list, inbox_free the entries a thief may take.
 *   the global queue  under gq_lock: work from plain threads and from full
 *                  rings.  A growable ring of pointers, so that taking a
 *                  batch does not walk through control blocks that each sit
 *                  on their own page; if the ring cannot grow, an intrusive
 *                  list through co->next takes the rest, so running out of
 *                  memory never loses a coroutine.  A worker takes its share
 *                  (len / nworkers + 1, at most half a ring), runs the first
 *                  and queues the rest on its ring.
 *
 * Making a coroutine runnable (may__ready_ex, at the end of this file)
 * picks its queue: a pinned coroutine goes to its worker's inbox, and that
 * worker is woken if it sleeps; on a worker, into runnext (lifo: the
 * coroutine it displaces goes to the ring's tail) or at the ring's tail
 * (a batch keeps its order: timers fire in deadline order); on a plain
 * thread, into the global queue.  Then, if a worker is idle, one is woken
 * to look (may__wakep, sched.c), except after filling an empty runnext,
 * which this worker runs next anyway (the monitor hands it over if this
 * worker stays busy).
 *
 * Which queue a worker looks at when (runnext at most 32 times in a row,
 * outside work every 61st round, stealing) is the scheduler's policy, in
 * sched.c; this file and runq.h are the mechanism.
 *
 * Memory ordering.  The ring's slots are relaxed atomics: the owner's
 * release store of tail publishes the slot written before it (pairs with
 * the acquire loads of tail by thieves and may__runq_len), and a pop's or
 * a grab's CAS of head (release) tells the owner that the slots read before
 * it may be written again (pairs with the acquire load of head in
 * may__runq_push).  A thief reads head and tail at different times, so a
 * count above half a ring only means they disagree, and it reads again.
 * gq_len, inbox_len and inbox_free are read without the lock, relaxed, only
 * to skip taking it when a queue is empty; the scheduler's idle path reads
 * them seq_cst after its fence.  Their seq_cst increments, and
 * may__ready_ex's exchange of runnext or fence after a ring push, are the
 * producer's side of Dekker pairs D1-D3 (docs/ARCHITECTURE.md): a producer
 * queues, then looks for a worker to wake.
 *
 * Locks: gq_lock (rank GQ) and each inbox_lock (rank INBOX) are taken one
 * at a time here, and nothing else is taken under them; whoever readies a
 * coroutine may hold an outer one meanwhile (an object's lock, the timer
 * lock: src/lockrank.h).
 */
#include "internal.h"
#include "runq.h"
#include "sched_impl.h"

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

void may__gq_push(struct may_co **cos, uint32_t n)
{
    gq_push_array(cos, n);
}

MAY_NOINLINE __attribute__((cold)) int may__runq_push_slow(may__worker *w, struct may_co *co,
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

MAY_NOINLINE struct may_co *may__gq_pop_locked(may__worker *w, uint32_t max)
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
        may__runq_push(w, got[i]);
    return taken ? got[0] : NULL;
}

MAY_NOINLINE struct may_co *may__inbox_pop_locked(may__worker *w)
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
MAY_NOINLINE struct may_co *may__inbox_steal(may__worker *v)
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
        may__inbox_push(pw, co);
        if (may__cur_worker() != pw)
            may__wake_worker(pw);
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
        may__runq_push(w, old);
        /* Dekker pair D1: the ring push, then the idle count.  Without the
         * exchange above (a FIFO ready, e.g. a timer), the push is a release
         * store and needs a full fence before the load; with it, an idler
         * that misses the ring finds runnext full instead. */
        if (!lifo)
            atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&may__S.nidle) > 0)
            may__wakep();
        return;
    }
    gq_push_array(&co, 1);
    may__wakep();
}
