/*
 * sync.c - mutex, rwlock, condvar, semaphore, barrier, wait group, event,
 * once: blocking objects shared by coroutines and plain threads.
 *
 * Why one design for all.  Every object is a small atomic word for the
 * uncontended path plus a FIFO queue of waiter nodes under a short spinlock
 * for the contended one.  The queue, its nodes and the protocol of waking
 * and of giving up are waitq.h's (read the essay in waitq.c): a node lives
 * on the waiter's own stack and names the waiter's parker (internal.h), so
 * a coroutine parks (its worker runs others) and a thread sleeps on a futex
 * through the same code.  No object allocates after it is made.
 *
 * What is this file's own is what a grant means and what becomes of one
 * that arrives after the wait failed (a deadline, a cancellation; waitq.c:
 * the waiter then waits for the wake that is due).  A claimed node's state
 * says which grant it got:
 *
 *   WN_GRANTED  the waiter got what it waited for (the mutex in hand-off
 *               mode, read or write access, a unit, a signal, a completed
 *               round, a zero count, a fired event)
 *   WN_WOKEN    woken to compete for the mutex (normal mode)
 *
 * A late grant is kept where keeping it is harmless (the barrier's round,
 * the wait group's zero, the event: they happened) and otherwise passed on
 * as if the waiter had never waited (mutex ownership or the WOKEN baton, a
 * read or write lock, a semaphore unit, a condvar signal).
 *
 * The mutex (states of m->state, a bit set):
 *
 *   LOCKED    held
 *   WAITERS   the queue is not empty (changed only under the queue lock)
 *   WOKEN     a waiter was popped and woken to compete for the lock, so an
 *             unlock need not wake another; whoever clears it passes it on
 *   STARVING  hand-off mode: unlock passes ownership to the queue head and
 *             LOCKED never drops; implies LOCKED
 *
 * Uncontended lock and unlock are one CAS each (0 <-> LOCKED).  Normal mode
 * is Go's: unlock releases the lock and wakes the head waiter, which
 * competes with newcomers (throughput: the lock does not wait for a context
 * switch); a woken waiter that loses goes back to the head of the queue,
 * and once it has waited over 1 ms it sets STARVING, so unlock hands the
 * mutex to waiters in FIFO order until the queue is empty or a waiter got it
 * in under 1 ms.  Waiters set WAITERS with a CAS that requires LOCKED, so an
 * unlock either sees WAITERS (and takes the slow path, which takes the
 * queue lock) or happened before the waiter looked.
 *
 * The rwlock: state = WRITER | WWAIT | RWAIT | reader count.  Readers enter
 * with a CAS while neither WRITER nor WWAIT is set; a writer with a CAS
 * 0 -> WRITER.  WWAIT (writers queued, or the hand-off to one pending) stops
 * new readers; a write unlock admits every queued reader first, then the
 * last of them hands the lock to the next writer (phase-fair: neither side
 * starves).  Who gets the lock next is decided in rw_dispatch, always under
 * the queue lock.
 *
 * The semaphore and wait group pair a lock-free counter with a waiter count
 * in a Dekker pattern (seq_cst): the waiter counts itself then re-reads the
 * counter; the poster changes the counter then reads the waiter count, so
 * one of them sees the other.  Condvar, barrier and event keep everything
 * under their queue lock.
 *
 * Lock order: an object's queue lock is a leaf, except that may__wake may be
 * called under it (the scheduler's locks nest inside).  No queue lock is
 * held across a park.  may_cond_wait holds no lock of the condvar while it
 * takes the mutex.
 *
 * Memory ordering: the lock words use acquire on taking and release on
 * giving (a CAS or RMW each); a node's grant is published by its claim
 * (waitq.c); everything else is under the queue lock.
 */
#include "internal.h"

#include <limits.h>
#include <sched.h>
#include <string.h>

#include "select.h"
#include "spin.h"
#include "waitq.h"

/* The grants of a claimed node (the header says what each means). */
enum {
    WN_GRANTED = 1,
    WN_WOKEN = 2,
};

/* End a wait on n (queued on q, under lock) whose park failed, as waitq.c
 * says.  false: n is withdrawn (*nwait, if given, one less: the waiter
 * count of the semaphore and the wait group).  true: a waker had claimed n
 * meanwhile; its wake has come, and the caller keeps the grant or passes it
 * on as if it had never waited. */
static bool wait_abandon(spin_t *lock, may__waitq *q, may__wnode *n, _Atomic size_t *nwait)
{
    spin_lock(lock);
    if (may__waitq_abandon_locked(q, n)) {
        if (nwait)
            atomic_fetch_sub_explicit(nwait, 1, memory_order_relaxed);
        spin_unlock(lock);
        return false;
    }
    spin_unlock(lock);
    may__wnode_park_claimed(n);
    return true;
}

/* The whole wait of an object whose late grant is kept (barrier, wait
 * group, event: what the waiter waited for did happen, failure or not):
 * queue the caller (parker p) on q, whose lock the caller holds, release
 * the lock, and wait.  0 once granted (in time, or late: see
 * wait_abandon), or the wait's error. */
static int queue_and_wait(spin_t *lock, may__waitq *q, may__parker *p, const char *what,
                          const void *obj, int64_t deadline, _Atomic size_t *nwait)
{
    may__wnode n;
    may__wnode_arm(&n, p);
    may__waitq_push(q, &n);
    spin_unlock(lock);
    may__wait_note(p, what, obj);
    int r = may__wnode_park(&n, deadline, 0);
    if (r < 0 && wait_abandon(lock, q, &n, nwait))
        r = 0;
    return r;
}

/* The body of every constructor here: a zeroed object of size bytes into
 * *out (out: the caller's `T **`).  0, -EINVAL (no out), -ENOMEM. */
static int obj_new(void *out, size_t size)
{
    if (!out)
        return -EINVAL;
    void *o = calloc(1, size);
    if (!o)
        return -ENOMEM;
    /* *(T **)out = o: every object pointer is a void * underneath (POSIX
     * requires it), and memcpy says so without an aliasing cast. */
    memcpy(out, &o, sizeof o);
    return 0;
}

/* Wait until *w == want: another thread is finishing its last few
 * instructions on an object that its waiters may free once they return
 * (the wait group's busy count, the event's fired word).  acquire: pairs
 * with that thread's release store or decrement, its last touch. */
static void settle(_Atomic int *w, int want)
{
    for (int i = 0; atomic_load_explicit(w, memory_order_acquire) != want; i++) {
        if (i < 64)
            cpu_relax();
        else
            sched_yield();
    }
}

/* Spinning only pays when someone else can release the lock meanwhile.
 * acquire: nworkers is written before the release store of state 2. */
static int spin_worth_it(void)
{
    return atomic_load_explicit(&may__S.state, memory_order_acquire) == 2 && may__S.nworkers > 1;
}

/* ========================================================================= */
/* Mutex                                                                     */
/* ========================================================================= */

enum {
    M_LOCKED = 1u << 0,
    M_WOKEN = 1u << 1,
    M_STARVING = 1u << 2,
    M_WAITERS = 1u << 3,
};

#define STARVE_NS 1000000 /* a waiter that waited this long switches to hand-off */
#define MUTEX_SPINS 4     /* spin rounds before queueing, as Go's sync.Mutex */

struct may_mutex {
    _Atomic uint32_t state; /* M_* */
    spin_t qlock;           /* protects q and the WAITERS bit */
    may__waitq q;
};

int may_mutex_new(may_mutex_t **out)
{
    return obj_new(out, sizeof **out);
}

void may_mutex_free(may_mutex_t *m)
{
    free(m);
}

int may_mutex_trylock(may_mutex_t *m)
{
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    while (!(s & M_LOCKED)) {
        if (atomic_compare_exchange_weak_explicit(&m->state, &s, s | M_LOCKED,
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
    return -EBUSY;
}

/* Pass on the WOKEN baton that the caller holds but will not use: if the
 * mutex is free, wake the next waiter to compete.  Queue lock held; adds
 * the node to wl. */
static void mutex_pass_woken_locked(may_mutex_t *m, may__wakelist *wl)
{
    uint32_t s = atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_WOKEN, memory_order_relaxed);
    if ((s & M_LOCKED) || !m->q.head)
        return; /* the holder's unlock will wake someone */
    may__wnode *n = may__waitq_pop(&m->q);
    atomic_fetch_or_explicit(&m->state, M_WOKEN, memory_order_relaxed);
    if (!m->q.head)
        atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_WAITERS, memory_order_relaxed);
    may__wakelist_add(wl, n, WN_WOKEN);
}

static MAY_NOINLINE void mutex_unlock_slow(may_mutex_t *m)
{
    may__wakelist wl = { NULL };
    spin_lock(&m->qlock);
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    if (s & M_STARVING) {
        may__wnode *n = may__waitq_pop(&m->q);
        if (n) {
            /* Hand-off: LOCKED stays set, ownership moves to n. */
            if (!m->q.head)
                atomic_fetch_and_explicit(&m->state, ~(uint32_t)(M_WAITERS | M_STARVING),
                                          memory_order_relaxed);
            may__wakelist_add(&wl, n, WN_GRANTED);
            spin_unlock(&m->qlock);
            may__wakelist_wake(&wl);
            return;
        }
        atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_STARVING, memory_order_relaxed);
    }
    /* release: pairs with the acquire of whoever takes the lock next */
    s = atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_LOCKED, memory_order_release);
    if (!(s & M_WOKEN) && m->q.head) {
        may__wnode *n = may__waitq_pop(&m->q);
        atomic_fetch_or_explicit(&m->state, M_WOKEN, memory_order_relaxed);
        if (!m->q.head)
            atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_WAITERS, memory_order_relaxed);
        may__wakelist_add(&wl, n, WN_WOKEN);
    }
    spin_unlock(&m->qlock);
    may__wakelist_wake(&wl);
}

int may_mutex_unlock(may_mutex_t *m)
{
    uint32_t s = M_LOCKED;
    /* release: pairs with the acquire CAS of the next locker */
    if (MAY_LIKELY(atomic_compare_exchange_strong_explicit(&m->state, &s, 0, memory_order_release,
                                                          memory_order_relaxed)))
        return 0;
    if (!(s & M_LOCKED))
        return -EPERM;
    mutex_unlock_slow(m);
    return 0;
}

/* Pass on the WOKEN baton (mutex_pass_woken_locked), taking the queue lock. */
static void mutex_pass_woken(may_mutex_t *m)
{
    may__wakelist wl = { NULL };
    spin_lock(&m->qlock);
    mutex_pass_woken_locked(m, &wl);
    spin_unlock(&m->qlock);
    may__wakelist_wake(&wl);
}

static MAY_NOINLINE int mutex_lock_slow(may_mutex_t *m, int64_t deadline, int ignore_cancel)
{
    may__parker *p = NULL;
    may__wnode n;
    int64_t since = 0; /* when it first queued */
    int woken = 0;     /* we hold the WOKEN baton */
    int spins = 0;
    for (;;) {
        uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
        if (!(s & M_LOCKED)) {
            uint32_t ns = (s | M_LOCKED) & ~(woken ? (uint32_t)M_WOKEN : 0u);
            /* acquire: pairs with the release in unlock */
            if (atomic_compare_exchange_weak_explicit(&m->state, &s, ns, memory_order_acquire,
                                                      memory_order_relaxed))
                return 0;
            continue;
        }
        if (!(s & M_STARVING) && spins < MUTEX_SPINS && spin_worth_it()) {
            spins++;
            for (int i = 0; i < 30; i++)
                cpu_relax();
            continue;
        }
        if (!p)
            p = may__self_parker();
        if (deadline == MAY_NOWAIT || (!ignore_cancel && may__wait_cancelled(p))) {
            if (woken)
                mutex_pass_woken(m);
            return ignore_cancel ? -ETIMEDOUT : may__wait_nowait_error(p);
        }
        int64_t now = 0;
        if (!since)
            since = now = may__now();
        else if (woken)
            now = may__now();
        spin_lock(&m->qlock);
        s = atomic_load_explicit(&m->state, memory_order_relaxed);
        int queued = 0;
        while (s & M_LOCKED) {
            uint32_t ns = s | M_WAITERS;
            if (woken) {
                ns &= ~(uint32_t)M_WOKEN;
                if (now - since > STARVE_NS)
                    ns |= M_STARVING;
            }
            if (atomic_compare_exchange_weak_explicit(&m->state, &s, ns, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                queued = 1;
                break;
            }
        }
        if (!queued) {
            spin_unlock(&m->qlock); /* it was released meanwhile: try again */
            continue;
        }
        may__wnode_arm(&n, p);
        if (woken)
            may__waitq_push_front(&m->q, &n); /* it keeps its place in line */
        else
            may__waitq_push(&m->q, &n);
        woken = 0;
        spin_unlock(&m->qlock);

        may__wait_note(p, "mutex", m);
        int r = may__wnode_park(&n, deadline, ignore_cancel);
        if (r < 0) {
            spin_lock(&m->qlock);
            if (may__waitq_abandon_locked(&m->q, &n)) {
                if (!m->q.head)
                    atomic_fetch_and_explicit(&m->state, ~(uint32_t)(M_WAITERS | M_STARVING),
                                              memory_order_relaxed);
                spin_unlock(&m->qlock);
                return r;
            }
            spin_unlock(&m->qlock);
            /* Pass on what we got, as if we had never waited. */
            if (may__wnode_park_claimed(&n) == WN_GRANTED)
                mutex_unlock_slow(m);
            else
                mutex_pass_woken(m);
            return r;
        }
        /* relaxed: may__wnode_park read it with acquire */
        if (atomic_load_explicit(&n.state, memory_order_relaxed) == WN_GRANTED) {
            /* Handed over in STARVING mode.  A short wait means the queue
             * moves well: back to normal mode. */
            if (may__now() - since < STARVE_NS)
                atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_STARVING, memory_order_relaxed);
            return 0;
        }
        woken = 1; /* compete for it */
        spins = 0;
    }
}

int may_mutex_lock(may_mutex_t *m, int64_t deadline)
{
    uint32_t s = 0;
    /* acquire: pairs with the release in unlock */
    if (MAY_LIKELY(atomic_compare_exchange_strong_explicit(&m->state, &s, M_LOCKED,
                                                          memory_order_acquire, memory_order_relaxed)))
        return 0;
    return mutex_lock_slow(m, deadline, 0);
}

/* ========================================================================= */
/* Reader-writer lock                                                        */
/* ========================================================================= */

#define RW_WRITER (1u << 31)
#define RW_WWAIT (1u << 30)  /* writers queued (or a hand-off to one due) */
#define RW_RWAIT (1u << 29)  /* readers queued */
#define RW_COUNT ((1u << 29) - 1)

struct may_rwlock {
    _Atomic uint32_t state;
    spin_t qlock; /* protects rq, wq and the WAIT bits */
    may__waitq rq, wq;
};

int may_rwlock_new(may_rwlock_t **out)
{
    return obj_new(out, sizeof **out);
}

void may_rwlock_free(may_rwlock_t *rw)
{
    free(rw);
}

/* Decide who gets the lock next.  Queue lock held.  prefer_readers: a writer
 * just left, so the readers that queued behind it go first. */
static void rw_dispatch(may_rwlock_t *rw, int prefer_readers, may__wakelist *wl)
{
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    for (;;) {
        if (s & RW_WRITER)
            return;
        uint32_t ns;
        int admit_readers = 0, grant_writer = 0;
        if (s & RW_COUNT) {
            /* Readers hold it: queued readers may join unless a writer
             * waits (they only wait because of it). */
            if (rw->wq.head || !rw->rq.head)
                return;
            admit_readers = 1;
        } else if (rw->rq.head && (prefer_readers || !rw->wq.head)) {
            admit_readers = 1;
        } else if (rw->wq.head) {
            grant_writer = 1;
        }
        if (admit_readers) {
            if ((s & RW_COUNT) + rw->rq.len > RW_COUNT)
                return; /* cannot happen with sane use */
            ns = (s & RW_COUNT) + (uint32_t)rw->rq.len;
            if (rw->wq.head)
                ns |= RW_WWAIT;
        } else if (grant_writer) {
            ns = RW_WRITER;
            if (rw->wq.len > 1)
                ns |= RW_WWAIT;
            if (rw->rq.head)
                ns |= RW_RWAIT;
        } else {
            ns = 0;
        }
        /* acq_rel: acquire what the leaving holder released, release to
         * the woken ones (they also synchronise through their wake) */
        if (!atomic_compare_exchange_weak_explicit(&rw->state, &s, ns, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        if (admit_readers) {
            may__wnode *n;
            while ((n = may__waitq_pop(&rw->rq)))
                may__wakelist_add(wl, n, WN_GRANTED);
        } else if (grant_writer) {
            may__wakelist_add(wl, may__waitq_pop(&rw->wq), WN_GRANTED);
        }
        return;
    }
}

int may_rwlock_tryrdlock(may_rwlock_t *rw)
{
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    while (!(s & (RW_WRITER | RW_WWAIT)) && (s & RW_COUNT) < RW_COUNT) {
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, s + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    }
    return -EBUSY;
}

int may_rwlock_trywrlock(may_rwlock_t *rw)
{
    uint32_t s = 0;
    if (atomic_compare_exchange_strong_explicit(&rw->state, &s, RW_WRITER, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    return -EBUSY;
}

int may_rwlock_wrunlock(may_rwlock_t *rw)
{
    uint32_t s = RW_WRITER;
    if (MAY_LIKELY(atomic_compare_exchange_strong_explicit(&rw->state, &s, 0, memory_order_release,
                                                          memory_order_relaxed)))
        return 0;
    if (!(s & RW_WRITER))
        return -EPERM;
    may__wakelist wl = { NULL };
    spin_lock(&rw->qlock);
    atomic_fetch_and_explicit(&rw->state, ~RW_WRITER, memory_order_release);
    rw_dispatch(rw, 1, &wl);
    spin_unlock(&rw->qlock);
    may__wakelist_wake(&wl);
    return 0;
}

int may_rwlock_rdunlock(may_rwlock_t *rw)
{
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    for (;;) {
        if ((s & RW_WRITER) || !(s & RW_COUNT))
            return -EPERM;
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, s - 1, memory_order_release,
                                                  memory_order_relaxed))
            break;
    }
    if ((s & RW_COUNT) == 1 && (s & RW_WWAIT)) {
        /* The last reader out hands the lock to the waiting writer. */
        may__wakelist wl = { NULL };
        spin_lock(&rw->qlock);
        rw_dispatch(rw, 0, &wl);
        spin_unlock(&rw->qlock);
        may__wakelist_wake(&wl);
    }
    return 0;
}

static int rw_lock_slow(may_rwlock_t *rw, int writer, int64_t deadline)
{
    may__parker *p = may__self_parker();
    may__wnode n;
    spin_lock(&rw->qlock);
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    for (;;) {
        uint32_t ns;
        if (writer) {
            if (s == 0 || (s == RW_RWAIT && !rw->rq.head)) {
                if (atomic_compare_exchange_weak_explicit(&rw->state, &s, RW_WRITER,
                                                          memory_order_acquire,
                                                          memory_order_relaxed))
                    goto got_it;
                continue;
            }
            ns = s | RW_WWAIT;
        } else {
            if (!(s & (RW_WRITER | RW_WWAIT))) {
                if (atomic_compare_exchange_weak_explicit(&rw->state, &s, s + 1,
                                                          memory_order_acquire,
                                                          memory_order_relaxed))
                    goto got_it;
                continue;
            }
            ns = s | RW_RWAIT;
        }
        if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
            spin_unlock(&rw->qlock);
            return may__wait_nowait_error(p);
        }
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, ns, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    may__waitq *q = writer ? &rw->wq : &rw->rq;
    may__wnode_arm(&n, p);
    may__waitq_push(q, &n);
    spin_unlock(&rw->qlock);

    may__wait_note(p, writer ? "rwlock write" : "rwlock read", rw);
    int r = may__wnode_park(&n, deadline, 0);
    if (r == 0)
        return 0; /* granted: the dispatcher counted us in */
    may__wakelist wl = { NULL };
    spin_lock(&rw->qlock);
    if (may__waitq_abandon_locked(q, &n)) {
        if (!rw->wq.head)
            atomic_fetch_and_explicit(&rw->state, ~RW_WWAIT, memory_order_relaxed);
        if (!rw->rq.head)
            atomic_fetch_and_explicit(&rw->state, ~RW_RWAIT, memory_order_relaxed);
        /* A writer that gives up may unblock the readers queued behind it,
         * or a hand-off that was due to it. */
        if (writer)
            rw_dispatch(rw, 0, &wl);
        spin_unlock(&rw->qlock);
        may__wakelist_wake(&wl);
        return r;
    }
    spin_unlock(&rw->qlock);
    may__wnode_park_claimed(&n);
    /* Granted after all: give it back as if we had never waited. */
    if (writer)
        may_rwlock_wrunlock(rw);
    else
        may_rwlock_rdunlock(rw);
    return r;
got_it:
    spin_unlock(&rw->qlock);
    return 0;
}

int may_rwlock_rdlock(may_rwlock_t *rw, int64_t deadline)
{
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    if (MAY_LIKELY(!(s & (RW_WRITER | RW_WWAIT)) && (s & RW_COUNT) < RW_COUNT) &&
        atomic_compare_exchange_strong_explicit(&rw->state, &s, s + 1, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    return rw_lock_slow(rw, 0, deadline);
}

int may_rwlock_wrlock(may_rwlock_t *rw, int64_t deadline)
{
    uint32_t s = 0;
    if (MAY_LIKELY(atomic_compare_exchange_strong_explicit(&rw->state, &s, RW_WRITER,
                                                          memory_order_acquire, memory_order_relaxed)))
        return 0;
    return rw_lock_slow(rw, 1, deadline);
}

/* ========================================================================= */
/* Condition variable                                                        */
/* ========================================================================= */

struct may_cond {
    _Atomic size_t nwait; /* == q.len; read without the lock by signal */
    spin_t qlock;
    may__waitq q;
    may_mutex_t *m; /* the mutex of the current waiters (NULL: none) */
};

int may_cond_new(may_cond_t **out)
{
    return obj_new(out, sizeof **out);
}

void may_cond_free(may_cond_t *c)
{
    free(c);
}

/* A waiter has left the queue (popped or given up).  Queue lock held. */
static void cond_left_locked(may_cond_t *c)
{
    atomic_store_explicit(&c->nwait, c->q.len, memory_order_relaxed);
    if (!c->q.head)
        c->m = NULL;
}

/* Pop one waiter into wl.  Queue lock held. */
static void cond_pop_locked(may_cond_t *c, may__wakelist *wl)
{
    may__wnode *n = may__waitq_pop(&c->q);
    if (!n)
        return;
    cond_left_locked(c);
    may__wakelist_add(wl, n, WN_GRANTED);
}

int may_cond_wait(may_cond_t *c, may_mutex_t *m, int64_t deadline)
{
    if (!c || !m)
        return -EINVAL;
    may__parker *p = may__self_parker();
    may__wnode n;
    spin_lock(&c->qlock);
    if (c->m && c->m != m) {
        spin_unlock(&c->qlock);
        return -EINVAL;
    }
    int r;
    if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
        /* Nothing to wait for, but keep the contract: m is unlocked and
         * locked again, letting others in. */
        spin_unlock(&c->qlock);
        r = may__wait_nowait_error(p);
        may_mutex_unlock(m);
        goto relock;
    }
    c->m = m;
    may__wnode_arm(&n, p);
    may__waitq_push(&c->q, &n);
    atomic_store_explicit(&c->nwait, c->q.len, memory_order_relaxed);
    spin_unlock(&c->qlock);
    /* Queued before the unlock: a signaller that takes m after us (or saw
     * our predicate change under m) sees us (release of the unlock). */
    may_mutex_unlock(m);

    may__wait_note(p, "cond", c);
    r = may__wnode_park(&n, deadline, 0);
    if (r < 0) {
        spin_lock(&c->qlock);
        if (may__waitq_abandon_locked(&c->q, &n)) {
            cond_left_locked(c);
            spin_unlock(&c->qlock);
        } else {
            spin_unlock(&c->qlock);
            may__wnode_park_claimed(&n);
            /* We were signalled but are leaving with an error: the signal
             * goes to the next waiter, as if we had never waited. */
            may_cond_signal(c);
        }
    }
relock:
    /* The caller must hold m again whatever happened: no deadline, no
     * cancellation. */
    if (may_mutex_trylock(m) != 0)
        mutex_lock_slow(m, MAY_FOREVER, 1);
    return r;
}

void may_cond_signal(may_cond_t *c)
{
    /* acquire: a waiter queued itself before unlocking the mutex that the
     * signaller's caller then took (or that ordered its predicate change) */
    if (atomic_load_explicit(&c->nwait, memory_order_acquire) == 0)
        return;
    may__wakelist wl = { NULL };
    spin_lock(&c->qlock);
    cond_pop_locked(c, &wl);
    spin_unlock(&c->qlock);
    may__wakelist_wake(&wl);
}

void may_cond_broadcast(may_cond_t *c)
{
    if (atomic_load_explicit(&c->nwait, memory_order_acquire) == 0)
        return;
    may__wakelist wl = { NULL };
    spin_lock(&c->qlock);
    while (c->q.head)
        cond_pop_locked(c, &wl);
    spin_unlock(&c->qlock);
    may__wakelist_wake(&wl);
}

/* ========================================================================= */
/* Semaphore                                                                 */
/* ========================================================================= */

struct may_sem {
    _Atomic int value;    /* units available */
    _Atomic size_t nwait; /* waiters counted in (the Dekker half) */
    spin_t qlock;
    may__waitq q;
};

int may_sem_new(may_sem_t **out, unsigned value)
{
    if (value > INT_MAX)
        return -EINVAL;
    int r = obj_new(out, sizeof **out);
    if (r == 0)
        atomic_store_explicit(&(*out)->value, (int)value, memory_order_relaxed);
    return r;
}

void may_sem_free(may_sem_t *s)
{
    free(s);
}

static int sem_take(may_sem_t *s)
{
    int v = atomic_load_explicit(&s->value, memory_order_relaxed);
    while (v > 0) {
        if (atomic_compare_exchange_weak_explicit(&s->value, &v, v - 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    }
    return -EAGAIN;
}

int may_sem_trywait(may_sem_t *s)
{
    return sem_take(s);
}

/* Give queued waiters the units there are.  Queue lock held. */
static void sem_grant_locked(may_sem_t *s, may__wakelist *wl)
{
    while (s->q.head && sem_take(s) == 0) {
        may__wnode *n = may__waitq_pop(&s->q);
        atomic_fetch_sub_explicit(&s->nwait, 1, memory_order_relaxed);
        may__wakelist_add(wl, n, WN_GRANTED);
    }
}

int may_sem_post(may_sem_t *s)
{
    int v = atomic_load_explicit(&s->value, memory_order_relaxed);
    do {
        if (v == INT_MAX)
            return -EOVERFLOW;
        /* seq_cst: Dekker pair D6 with the waiter's nwait increment (a
         * seq_cst RMW, then a seq_cst load: ordered in S) */
    } while (!atomic_compare_exchange_weak(&s->value, &v, v + 1));
    if (atomic_load(&s->nwait) == 0)
        return 0;
    may__wakelist wl = { NULL };
    spin_lock(&s->qlock);
    sem_grant_locked(s, &wl);
    spin_unlock(&s->qlock);
    may__wakelist_wake(&wl);
    return 0;
}

int may_sem_value(may_sem_t *s)
{
    return atomic_load_explicit(&s->value, memory_order_relaxed);
}

int may_sem_wait(may_sem_t *s, int64_t deadline)
{
    /* Fast path only while nobody queues, so waiters are served FIFO. */
    if (MAY_LIKELY(atomic_load_explicit(&s->nwait, memory_order_relaxed) == 0) && sem_take(s) == 0)
        return 0;
    may__parker *p = may__self_parker();
    may__wnode n;
    spin_lock(&s->qlock);
    /* Dekker pair D6 (docs/ARCHITECTURE.md) with may_sem_post: count
     * ourselves in, fence, then re-read value (sem_take's loads are
     * relaxed: the fence orders them after the increment). */
    atomic_fetch_add(&s->nwait, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (!s->q.head && sem_take(s) == 0) {
        atomic_fetch_sub(&s->nwait, 1);
        spin_unlock(&s->qlock);
        return 0;
    }
    if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
        atomic_fetch_sub(&s->nwait, 1);
        spin_unlock(&s->qlock);
        return may__wait_nowait_error(p);
    }
    may__wnode_arm(&n, p);
    may__waitq_push(&s->q, &n);
    /* A unit posted before we were queued is ours or the queue head's. */
    may__wakelist wl = { NULL };
    sem_grant_locked(s, &wl);
    spin_unlock(&s->qlock);
    may__wakelist_wake(&wl);

    may__wait_note(p, "semaphore", s);
    int r = may__wnode_park(&n, deadline, 0);
    if (r < 0 && wait_abandon(&s->qlock, &s->q, &n, &s->nwait))
        may_sem_post(s); /* the unit we got goes to the next one */
    return r;
}

/* ========================================================================= */
/* Barrier                                                                   */
/* ========================================================================= */

struct may_barrier {
    spin_t qlock;
    unsigned count; /* parties per round */
    may__waitq q;   /* the others arrived in this round (q.len of them) */
};

int may_barrier_new(may_barrier_t **out, unsigned count)
{
    if (count == 0)
        return -EINVAL;
    int r = obj_new(out, sizeof **out);
    if (r == 0)
        (*out)->count = count;
    return r;
}

void may_barrier_free(may_barrier_t *b)
{
    free(b);
}

int may_barrier_wait(may_barrier_t *b, int64_t deadline)
{
    may__parker *p = may__self_parker();
    spin_lock(&b->qlock);
    if (b->q.len + 1 == b->count) {
        /* The last to arrive leads and releases the round. */
        may__wakelist wl = { NULL };
        may__waitq_claim_all(&b->q, &wl, WN_GRANTED);
        spin_unlock(&b->qlock);
        may__wakelist_wake(&wl);
        return MAY_BARRIER_LEADER;
    }
    if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
        spin_unlock(&b->qlock);
        return may__wait_nowait_error(p);
    }
    /* A late grant: the round completed with us in it, which cannot be
     * undone. */
    return queue_and_wait(&b->qlock, &b->q, p, "barrier", b, deadline, NULL);
}

/* ========================================================================= */
/* Wait group                                                                */
/* ========================================================================= */

struct may_wg {
    _Atomic long count;
    _Atomic size_t nwait; /* Dekker half, as in the semaphore */
    _Atomic int busy;     /* done-ers that took the count to zero and still
                             touch the group: waiters returning on a zero
                             count wait for it, so the group can be freed
                             as soon as may_wg_wait returns */
    spin_t qlock;
    may__waitq q;
};

int may_wg_new(may_wg_t **out)
{
    return obj_new(out, sizeof **out);
}

void may_wg_free(may_wg_t *wg)
{
    free(wg);
}

int may_wg_add(may_wg_t *wg, long delta)
{
    long v = atomic_load_explicit(&wg->count, memory_order_relaxed);
    int zeroing;
    for (;;) {
        if ((delta < 0 && v + delta < 0) || (delta > 0 && v > LONG_MAX - delta))
            return -EINVAL;
        /* Taking the count to zero: announce it first (seq_cst, before the
         * CAS that a waiter may read the zero from). */
        zeroing = delta != 0 && v + delta == 0;
        if (zeroing)
            atomic_fetch_add(&wg->busy, 1);
        /* seq_cst: Dekker pair with the waiter's nwait increment; release
         * of the done-er's work to the waiters */
        if (atomic_compare_exchange_weak(&wg->count, &v, v + delta))
            break;
        if (zeroing)
            atomic_fetch_sub(&wg->busy, 1);
    }
    if (!zeroing)
        return 0;
    may__wakelist wl = { NULL };
    if (atomic_load(&wg->nwait) != 0) {
        spin_lock(&wg->qlock);
        may__waitq_claim_all(&wg->q, &wl, WN_GRANTED);
        /* relaxed: nwait counts the queued waiters, under the lock */
        atomic_store_explicit(&wg->nwait, 0, memory_order_relaxed);
        spin_unlock(&wg->qlock);
    }
    /* release: our last touch of wg; the woken nodes live on the waiters'
     * stacks, and they return only after this wake */
    atomic_fetch_sub_explicit(&wg->busy, 1, memory_order_release);
    may__wakelist_wake(&wl);
    return 0;
}

int may_wg_done(may_wg_t *wg)
{
    return may_wg_add(wg, -1);
}

int may_wg_wait(may_wg_t *wg, int64_t deadline)
{
    /* seq_cst: what the done-ers did before their done, and the busy
     * count announced before the zero */
    if (atomic_load(&wg->count) == 0) {
        settle(&wg->busy, 0); /* the done-er that took it to zero is done */
        return 0;
    }
    may__parker *p = may__self_parker();
    spin_lock(&wg->qlock);
    atomic_fetch_add(&wg->nwait, 1); /* seq_cst, then re-read count */
    if (atomic_load(&wg->count) == 0) {
        atomic_fetch_sub(&wg->nwait, 1);
        spin_unlock(&wg->qlock);
        settle(&wg->busy, 0); /* the done-er that took it to zero is done */
        return 0;
    }
    if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
        atomic_fetch_sub(&wg->nwait, 1);
        spin_unlock(&wg->qlock);
        return may__wait_nowait_error(p);
    }
    /* A late grant: the count did reach zero. */
    return queue_and_wait(&wg->qlock, &wg->q, p, "wait group", wg, deadline, &wg->nwait);
}

/* ========================================================================= */
/* Event                                                                     */
/* ========================================================================= */

struct may_event {
    _Atomic int fired;
    spin_t qlock;
    may__waitq q;
};

int may_event_new(may_event_t **out)
{
    return obj_new(out, sizeof **out);
}

void may_event_free(may_event_t *e)
{
    free(e);
}

int may_event_fire(may_event_t *e)
{
    may__wakelist wl = { NULL };
    spin_lock(&e->qlock);
    if (atomic_load_explicit(&e->fired, memory_order_relaxed)) {
        spin_unlock(&e->qlock);
        return -EALREADY;
    }
    /* release: pairs with the acquire in wait / is_fired.  1: firing (we
     * still touch e); 2: fired, our last touch of e */
    atomic_store_explicit(&e->fired, 1, memory_order_release);
    may__waitq_claim_all(&e->q, &wl, WN_GRANTED);
    spin_unlock(&e->qlock);
    atomic_store_explicit(&e->fired, 2, memory_order_release);
    /* the woken nodes live on the waiters' stacks; they return after this */
    may__wakelist_wake(&wl);
    return 0;
}

bool may_event_is_fired(may_event_t *e)
{
    return atomic_load_explicit(&e->fired, memory_order_acquire) != 0;
}

int may_event_wait(may_event_t *e, int64_t deadline)
{
    if (atomic_load_explicit(&e->fired, memory_order_acquire)) {
        settle(&e->fired, 2); /* the firer is done with e */
        return 0;
    }
    may__parker *p = may__self_parker();
    spin_lock(&e->qlock);
    if (atomic_load_explicit(&e->fired, memory_order_relaxed)) {
        spin_unlock(&e->qlock);
        settle(&e->fired, 2); /* the firer is done with e */
        return 0;
    }
    if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
        spin_unlock(&e->qlock);
        return may__wait_nowait_error(p);
    }
    /* A late grant: it did fire. */
    return queue_and_wait(&e->qlock, &e->q, p, "event", e, deadline, NULL);
}

/* select's side (src/select.c): an event case is ready once fired. */
int may__event_sel_poll(may_event_t *e)
{
    if (!atomic_load_explicit(&e->fired, memory_order_acquire))
        return 0;
    settle(&e->fired, 2); /* the firer is done with e */
    return 1;
}

int may__event_sel_step(may_event_t *e, may__wnode *n, int perform)
{
    if (!may__event_sel_poll(e)) {
        spin_lock(&e->qlock);
        int ready = atomic_load_explicit(&e->fired, memory_order_relaxed) != 0;
        if (!ready)
            may__waitq_push(&e->q, n);
        spin_unlock(&e->qlock);
        if (!ready)
            return MAY__STEP_QUEUED;
        settle(&e->fired, 2); /* the firer is done with e */
    }
    return perform || may__sel_claim_self(n) ? MAY__STEP_DONE : MAY__STEP_LOST;
}

void may__event_sel_withdraw(may_event_t *e, may__wnode *n)
{
    spin_lock(&e->qlock);
    may__waitq_abandon_locked(&e->q, n);
    spin_unlock(&e->qlock);
}

/* ========================================================================= */
/* Once                                                                      */
/* ========================================================================= */

/* may_once_t is public (static initialisation), so its fields are plain
 * ints accessed with the __atomic builtins.  state: 0 not run, 1 running,
 * 2 done.  waiters: a stack of waiter nodes (waitq.h), linked through next,
 * under lock (the public struct has room for one pointer, not a
 * may__waitq; nobody leaves it early, so it needs no unlink). */
enum { ONCE_NEW = 0, ONCE_RUNNING = 1, ONCE_DONE = 2 };

static void once_lock(may_once_t *o)
{
    for (unsigned n = 0;; n++) {
        if (!__atomic_load_n(&o->lock, __ATOMIC_RELAXED) &&
            !__atomic_exchange_n(&o->lock, 1, __ATOMIC_ACQUIRE))
            return;
        if (n < 64)
            cpu_relax();
        else
            sched_yield();
    }
}

static void once_unlock(may_once_t *o)
{
    __atomic_store_n(&o->lock, 0, __ATOMIC_RELEASE);
}

int may_once(may_once_t *o, void (*fn)(void *), void *arg)
{
    if (!o || !fn)
        return -EINVAL;
    /* acquire: pairs with the release store of DONE, so fn's effects show */
    if (MAY_LIKELY(__atomic_load_n(&o->state, __ATOMIC_ACQUIRE) == ONCE_DONE))
        return 0;
    once_lock(o);
    int st = __atomic_load_n(&o->state, __ATOMIC_RELAXED);
    if (st == ONCE_DONE) {
        once_unlock(o);
        return 0;
    }
    if (st == ONCE_NEW) {
        __atomic_store_n(&o->state, ONCE_RUNNING, __ATOMIC_RELAXED);
        once_unlock(o);
        fn(arg);
        may__wakelist wl = { NULL };
        once_lock(o);
        __atomic_store_n(&o->state, ONCE_DONE, __ATOMIC_RELEASE);
        may__wnode *n = o->waiters;
        o->waiters = NULL;
        while (n) {
            may__wnode *next = n->next;
            may__wakelist_add(&wl, n, WN_GRANTED);
            n = next;
        }
        once_unlock(o);
        may__wakelist_wake(&wl);
        return 0;
    }
    /* Running elsewhere: wait for it, without deadline or cancellation. */
    may__parker *p = may__self_parker();
    may__wnode n;
    may__wnode_arm(&n, p);
    n.next = o->waiters;
    o->waiters = &n;
    once_unlock(o);
    may__wait_note(p, "once", o);
    may__wnode_park(&n, MAY_FOREVER, 1);
    return 0;
}
