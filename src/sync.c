/*
 * sync.c - mutex, rwlock, condvar, semaphore, barrier, wait group, event,
 * once: blocking objects shared by coroutines and plain threads.
 *
 * Why one design for all.  Every object is a small atomic word for the
 * uncontended path plus a FIFO queue of waiter nodes under a short spinlock
 * for the contended one.  A waiter node lives on the waiter's own stack and
 * names the waiter's parker (internal.h), so a coroutine parks (its worker
 * runs others) and a thread sleeps on a futex through the same code.  No
 * object allocates after it is made.
 *
 * The waiter protocol (the same in chan.c):
 *
 *   waiter                                   waker
 *   may__wait_prepare(p)
 *   lock; publish node (state WAITING); unlock
 *   may__wait(p, deadline)                   lock; unlink node; fill in the
 *                                            grant; state = claimed; unlock
 *                                            may__wake(p, WTOKEN)
 *
 * Invariant: a node that a waker has unlinked WILL be woken, and the waker
 * may touch the parker until then, so its owner must not return (its stack
 * and perhaps its whole coroutine would go) before that wake.  A waiter whose
 * wait fails (deadline, cancellation) therefore takes the lock and looks: a
 * node still in the queue (state WAITING) is unlinked by the waiter itself,
 * which then returns the error; a node already claimed means a grant is on
 * its way, so the waiter waits for the wake ignoring cancellation and then
 * either keeps the grant (it really did get it: only for objects where that
 * is harmless) or passes it on as if it had never waited (mutex ownership,
 * a semaphore unit, a condvar signal).  A wake-up with the node still
 * WAITING is spurious and the waiter parks again.
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
 * held across may__wait.  may_cond_wait holds no lock of the condvar while
 * it takes the mutex.
 *
 * Memory ordering: the lock words use acquire on taking and release on
 * giving (a CAS or RMW each); a node's grant is written before state is
 * stored with release, read after the wake (the parker's acq_rel CAS makes
 * the waker's writes visible); everything else is under the queue lock.
 */
#include "internal.h"

#include <limits.h>
#include <sched.h>
#include <string.h>

#include "spin.h"

/* ---- waiter nodes and queues -------------------------------------------- */

enum {
    WN_WAITING = 0, /* queued; only the queue lock's holder may change it */
    WN_GRANTED = 1, /* claimed: the waiter got what it waited for */
    WN_WOKEN = 2,   /* claimed: woken to compete (mutex normal mode) */
};

typedef struct wnode {
    struct wnode *next, *prev;
    may__parker *p;
    _Atomic int state; /* WN_*: release by the waker, acquire by the waiter */
    int writer;        /* rwlock: a writer */
    int64_t since;     /* mutex: when it first queued */
} wnode;

typedef struct {
    wnode *head, *tail;
    size_t len;
} wqueue;

static void q_push(wqueue *q, wnode *n)
{
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->len++;
}

static void q_push_front(wqueue *q, wnode *n)
{
    n->prev = NULL;
    n->next = q->head;
    if (q->head)
        q->head->prev = n;
    else
        q->tail = n;
    q->head = n;
    q->len++;
}

static void q_unlink(wqueue *q, wnode *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    q->len--;
}

static wnode *q_pop(wqueue *q)
{
    wnode *n = q->head;
    if (n)
        q_unlink(q, n);
    return n;
}

/* Mark n claimed (it is off the queue; the queue lock is held).  The waker
 * must call wake_node(n) afterwards, once, without touching n in between
 * except to read it. */
static inline void claim(wnode *n, int how)
{
    /* release: the grant written before is visible to the woken waiter */
    atomic_store_explicit(&n->state, how, memory_order_release);
}

static inline void wake_node(may__parker *p)
{
    may__wake(p, MAY__P_WTOKEN);
}

/* Claimed nodes collected under a queue lock, woken after unlocking.  The
 * list is threaded through the nodes' next fields (they are off every
 * queue); the parker is read before the wake because the node may be gone
 * right after it. */
typedef struct {
    wnode *head;
} wakelist;

static void wl_add(wakelist *wl, wnode *n, int how)
{
    n->next = wl->head;
    wl->head = n;
    claim(n, how);
}

static void wl_wake(wakelist *wl)
{
    wnode *n = wl->head;
    while (n) {
        wnode *next = n->next;
        wake_node(n->p);
        n = next;
    }
}

/* Cancellation check before queueing: a cancelled coroutine fails at once. */
static inline int cancelled(may__parker *p)
{
    return p->co && atomic_load_explicit(&p->co->cancelled, memory_order_relaxed);
}

static void node_init(wnode *n, may__parker *p)
{
    n->p = p;
    atomic_store_explicit(&n->state, WN_WAITING, memory_order_relaxed);
}

/* Park until n is claimed (0) or the wait fails (<0: the node may or may not
 * have been claimed meanwhile; the caller sorts that out under its lock). */
static int park_node(wnode *n, int64_t deadline, int ignore_cancel)
{
    for (;;) {
        int r = may__wait(n->p, deadline, ignore_cancel);
        if (r < 0)
            return r;
        /* acquire: pairs with claim() */
        if (atomic_load_explicit(&n->state, memory_order_acquire) != WN_WAITING)
            return 0;
        /* spurious wake-up: park again */
    }
}

/* After a failed wait found n claimed: wait for the waker's wake, which is
 * certain to come; cancellation cannot cut this short. */
static int park_claimed(wnode *n)
{
    while (may__wait(n->p, MAY_FOREVER, 1) != 0)
        ;
    return atomic_load_explicit(&n->state, memory_order_acquire);
}

/* The error for a wait that cannot start: cancellation first. */
static int nowait_error(may__parker *p)
{
    return cancelled(p) ? -ECANCELED : -ETIMEDOUT;
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
    wqueue q;
};

int may_mutex_new(may_mutex_t **out)
{
    if (!out)
        return -EINVAL;
    may_mutex_t *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    *out = m;
    return 0;
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
static void mutex_pass_woken_locked(may_mutex_t *m, wakelist *wl)
{
    uint32_t s = atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_WOKEN, memory_order_relaxed);
    if ((s & M_LOCKED) || !m->q.head)
        return; /* the holder's unlock will wake someone */
    wnode *n = q_pop(&m->q);
    atomic_fetch_or_explicit(&m->state, M_WOKEN, memory_order_relaxed);
    if (!m->q.head)
        atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_WAITERS, memory_order_relaxed);
    wl_add(wl, n, WN_WOKEN);
}

static MAY_NOINLINE void mutex_unlock_slow(may_mutex_t *m)
{
    wakelist wl = { NULL };
    spin_lock(&m->qlock);
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    if (s & M_STARVING) {
        wnode *n = q_pop(&m->q);
        if (n) {
            /* Hand-off: LOCKED stays set, ownership moves to n. */
            if (!m->q.head)
                atomic_fetch_and_explicit(&m->state, ~(uint32_t)(M_WAITERS | M_STARVING),
                                          memory_order_relaxed);
            wl_add(&wl, n, WN_GRANTED);
            spin_unlock(&m->qlock);
            wl_wake(&wl);
            return;
        }
        atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_STARVING, memory_order_relaxed);
    }
    /* release: pairs with the acquire of whoever takes the lock next */
    s = atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_LOCKED, memory_order_release);
    if (!(s & M_WOKEN) && m->q.head) {
        wnode *n = q_pop(&m->q);
        atomic_fetch_or_explicit(&m->state, M_WOKEN, memory_order_relaxed);
        if (!m->q.head)
            atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_WAITERS, memory_order_relaxed);
        wl_add(&wl, n, WN_WOKEN);
    }
    spin_unlock(&m->qlock);
    wl_wake(&wl);
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

static MAY_NOINLINE int mutex_lock_slow(may_mutex_t *m, int64_t deadline, int ignore_cancel)
{
    may__parker *p = NULL;
    wnode n;
    n.since = 0;
    int woken = 0; /* we hold the WOKEN baton */
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
        if (!p) {
            p = may__self_parker();
            node_init(&n, p);
        }
        if (deadline == MAY_NOWAIT || (!ignore_cancel && cancelled(p))) {
            int r = (!ignore_cancel && cancelled(p)) ? -ECANCELED : -ETIMEDOUT;
            if (woken) {
                wakelist wl = { NULL };
                spin_lock(&m->qlock);
                mutex_pass_woken_locked(m, &wl);
                spin_unlock(&m->qlock);
                wl_wake(&wl);
            }
            return r;
        }
        int64_t now = 0;
        if (!n.since)
            n.since = now = may__now();
        else if (woken)
            now = may__now();
        spin_lock(&m->qlock);
        s = atomic_load_explicit(&m->state, memory_order_relaxed);
        int queued = 0;
        while (s & M_LOCKED) {
            uint32_t ns = s | M_WAITERS;
            if (woken) {
                ns &= ~(uint32_t)M_WOKEN;
                if (now - n.since > STARVE_NS)
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
        may__wait_prepare(p);
        atomic_store_explicit(&n.state, WN_WAITING, memory_order_relaxed);
        if (woken)
            q_push_front(&m->q, &n); /* it keeps its place in line */
        else
            q_push(&m->q, &n);
        woken = 0;
        spin_unlock(&m->qlock);

        may__wait_note(n.p, "mutex", m);
        int r = park_node(&n, deadline, ignore_cancel);
        int how;
        if (r == 0) {
            how = atomic_load_explicit(&n.state, memory_order_relaxed);
        } else {
            spin_lock(&m->qlock);
            if (atomic_load_explicit(&n.state, memory_order_relaxed) == WN_WAITING) {
                q_unlink(&m->q, &n);
                if (!m->q.head)
                    atomic_fetch_and_explicit(&m->state, ~(uint32_t)(M_WAITERS | M_STARVING),
                                              memory_order_relaxed);
                spin_unlock(&m->qlock);
                return r;
            }
            spin_unlock(&m->qlock);
            how = park_claimed(&n);
            /* Pass on what we got, as if we had never waited. */
            if (how == WN_GRANTED) {
                mutex_unlock_slow(m);
            } else {
                wakelist wl = { NULL };
                spin_lock(&m->qlock);
                mutex_pass_woken_locked(m, &wl);
                spin_unlock(&m->qlock);
                wl_wake(&wl);
            }
            return r;
        }
        if (how == WN_GRANTED) {
            /* Handed over in STARVING mode.  A short wait means the queue
             * moves well: back to normal mode. */
            if (may__now() - n.since < STARVE_NS)
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
    wqueue rq, wq;
};

int may_rwlock_new(may_rwlock_t **out)
{
    if (!out)
        return -EINVAL;
    may_rwlock_t *rw = calloc(1, sizeof *rw);
    if (!rw)
        return -ENOMEM;
    *out = rw;
    return 0;
}

void may_rwlock_free(may_rwlock_t *rw)
{
    free(rw);
}

/* Decide who gets the lock next.  Queue lock held.  prefer_readers: a writer
 * just left, so the readers that queued behind it go first. */
static void rw_dispatch(may_rwlock_t *rw, int prefer_readers, wakelist *wl)
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
            wnode *n;
            while ((n = q_pop(&rw->rq)))
                wl_add(wl, n, WN_GRANTED);
        } else if (grant_writer) {
            wl_add(wl, q_pop(&rw->wq), WN_GRANTED);
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
    wakelist wl = { NULL };
    spin_lock(&rw->qlock);
    atomic_fetch_and_explicit(&rw->state, ~RW_WRITER, memory_order_release);
    rw_dispatch(rw, 1, &wl);
    spin_unlock(&rw->qlock);
    wl_wake(&wl);
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
        wakelist wl = { NULL };
        spin_lock(&rw->qlock);
        rw_dispatch(rw, 0, &wl);
        spin_unlock(&rw->qlock);
        wl_wake(&wl);
    }
    return 0;
}

static int rw_lock_slow(may_rwlock_t *rw, int writer, int64_t deadline)
{
    may__parker *p = may__self_parker();
    wnode n;
    node_init(&n, p);
    n.writer = writer;
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
        if (deadline == MAY_NOWAIT || cancelled(p)) {
            spin_unlock(&rw->qlock);
            return nowait_error(p);
        }
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, ns, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    may__wait_prepare(p);
    q_push(writer ? &rw->wq : &rw->rq, &n);
    spin_unlock(&rw->qlock);

    may__wait_note(n.p, writer ? "rwlock write" : "rwlock read", rw);
    int r = park_node(&n, deadline, 0);
    if (r == 0)
        return 0; /* granted: the dispatcher counted us in */
    wakelist wl = { NULL };
    spin_lock(&rw->qlock);
    if (atomic_load_explicit(&n.state, memory_order_relaxed) == WN_WAITING) {
        q_unlink(writer ? &rw->wq : &rw->rq, &n);
        if (!rw->wq.head)
            atomic_fetch_and_explicit(&rw->state, ~RW_WWAIT, memory_order_relaxed);
        if (!rw->rq.head)
            atomic_fetch_and_explicit(&rw->state, ~RW_RWAIT, memory_order_relaxed);
        /* A writer that gives up may unblock the readers queued behind it,
         * or a hand-off that was due to it. */
        if (writer)
            rw_dispatch(rw, 0, &wl);
        spin_unlock(&rw->qlock);
        wl_wake(&wl);
        return r;
    }
    spin_unlock(&rw->qlock);
    park_claimed(&n);
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
    wqueue q;
    may_mutex_t *m; /* the mutex of the current waiters (NULL: none) */
};

int may_cond_new(may_cond_t **out)
{
    if (!out)
        return -EINVAL;
    may_cond_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    *out = c;
    return 0;
}

void may_cond_free(may_cond_t *c)
{
    free(c);
}

/* Pop one waiter into wl.  Queue lock held. */
static void cond_pop_locked(may_cond_t *c, wakelist *wl)
{
    wnode *n = q_pop(&c->q);
    if (!n)
        return;
    atomic_store_explicit(&c->nwait, c->q.len, memory_order_relaxed);
    if (!c->q.head)
        c->m = NULL;
    wl_add(wl, n, WN_GRANTED);
}

int may_cond_wait(may_cond_t *c, may_mutex_t *m, int64_t deadline)
{
    if (!c || !m)
        return -EINVAL;
    may__parker *p = may__self_parker();
    wnode n;
    node_init(&n, p);
    spin_lock(&c->qlock);
    if (c->m && c->m != m) {
        spin_unlock(&c->qlock);
        return -EINVAL;
    }
    int r;
    if (deadline == MAY_NOWAIT || cancelled(p)) {
        /* Nothing to wait for, but keep the contract: m is unlocked and
         * locked again, letting others in. */
        spin_unlock(&c->qlock);
        r = nowait_error(p);
        may_mutex_unlock(m);
        goto relock;
    }
    c->m = m;
    may__wait_prepare(p);
    q_push(&c->q, &n);
    atomic_store_explicit(&c->nwait, c->q.len, memory_order_relaxed);
    spin_unlock(&c->qlock);
    /* Queued before the unlock: a signaller that takes m after us (or saw
     * our predicate change under m) sees us (release of the unlock). */
    may_mutex_unlock(m);

    may__wait_note(n.p, "cond", c);
    r = park_node(&n, deadline, 0);
    if (r < 0) {
        spin_lock(&c->qlock);
        if (atomic_load_explicit(&n.state, memory_order_relaxed) == WN_WAITING) {
            q_unlink(&c->q, &n);
            atomic_store_explicit(&c->nwait, c->q.len, memory_order_relaxed);
            if (!c->q.head)
                c->m = NULL;
            spin_unlock(&c->qlock);
        } else {
            spin_unlock(&c->qlock);
            park_claimed(&n);
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
    wakelist wl = { NULL };
    spin_lock(&c->qlock);
    cond_pop_locked(c, &wl);
    spin_unlock(&c->qlock);
    wl_wake(&wl);
}

void may_cond_broadcast(may_cond_t *c)
{
    if (atomic_load_explicit(&c->nwait, memory_order_acquire) == 0)
        return;
    wakelist wl = { NULL };
    spin_lock(&c->qlock);
    while (c->q.head)
        cond_pop_locked(c, &wl);
    spin_unlock(&c->qlock);
    wl_wake(&wl);
}

/* ========================================================================= */
/* Semaphore                                                                 */
/* ========================================================================= */

struct may_sem {
    _Atomic int value;    /* units available */
    _Atomic size_t nwait; /* waiters counted in (the Dekker half) */
    spin_t qlock;
    wqueue q;
};

int may_sem_new(may_sem_t **out, unsigned value)
{
    if (!out || value > INT_MAX)
        return -EINVAL;
    may_sem_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    atomic_store_explicit(&s->value, (int)value, memory_order_relaxed);
    *out = s;
    return 0;
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
static void sem_grant_locked(may_sem_t *s, wakelist *wl)
{
    while (s->q.head && sem_take(s) == 0) {
        wnode *n = q_pop(&s->q);
        atomic_fetch_sub_explicit(&s->nwait, 1, memory_order_relaxed);
        wl_add(wl, n, WN_GRANTED);
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
    wakelist wl = { NULL };
    spin_lock(&s->qlock);
    sem_grant_locked(s, &wl);
    spin_unlock(&s->qlock);
    wl_wake(&wl);
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
    wnode n;
    node_init(&n, p);
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
    if (deadline == MAY_NOWAIT || cancelled(p)) {
        atomic_fetch_sub(&s->nwait, 1);
        spin_unlock(&s->qlock);
        return nowait_error(p);
    }
    may__wait_prepare(p);
    q_push(&s->q, &n);
    /* A unit posted before we were queued is ours or the queue head's. */
    wakelist wl = { NULL };
    sem_grant_locked(s, &wl);
    spin_unlock(&s->qlock);
    wl_wake(&wl);

    may__wait_note(n.p, "semaphore", s);
    int r = park_node(&n, deadline, 0);
    if (r == 0)
        return 0;
    spin_lock(&s->qlock);
    if (atomic_load_explicit(&n.state, memory_order_relaxed) == WN_WAITING) {
        q_unlink(&s->q, &n);
        atomic_fetch_sub_explicit(&s->nwait, 1, memory_order_relaxed);
        spin_unlock(&s->qlock);
        return r;
    }
    spin_unlock(&s->qlock);
    park_claimed(&n);
    may_sem_post(s); /* the unit we got goes to the next one */
    return r;
}

/* ========================================================================= */
/* Barrier                                                                   */
/* ========================================================================= */

struct may_barrier {
    spin_t qlock;
    unsigned count;   /* parties per round */
    unsigned arrived; /* in the current round */
    wqueue q;
};

int may_barrier_new(may_barrier_t **out, unsigned count)
{
    if (!out || count == 0)
        return -EINVAL;
    may_barrier_t *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->count = count;
    *out = b;
    return 0;
}

void may_barrier_free(may_barrier_t *b)
{
    free(b);
}

int may_barrier_wait(may_barrier_t *b, int64_t deadline)
{
    may__parker *p = may__self_parker();
    wnode n;
    node_init(&n, p);
    spin_lock(&b->qlock);
    if (b->arrived + 1 == b->count) {
        /* The last to arrive leads and releases the round. */
        wakelist wl = { NULL };
        wnode *w;
        while ((w = q_pop(&b->q)))
            wl_add(&wl, w, WN_GRANTED);
        b->arrived = 0;
        spin_unlock(&b->qlock);
        wl_wake(&wl);
        return MAY_BARRIER_LEADER;
    }
    if (deadline == MAY_NOWAIT || cancelled(p)) {
        spin_unlock(&b->qlock);
        return nowait_error(p);
    }
    b->arrived++;
    may__wait_prepare(p);
    q_push(&b->q, &n);
    spin_unlock(&b->qlock);

    may__wait_note(n.p, "barrier", b);
    int r = park_node(&n, deadline, 0);
    if (r == 0)
        return 0;
    spin_lock(&b->qlock);
    if (atomic_load_explicit(&n.state, memory_order_relaxed) == WN_WAITING) {
        q_unlink(&b->q, &n);
        b->arrived--;
        spin_unlock(&b->qlock);
        return r;
    }
    spin_unlock(&b->qlock);
    park_claimed(&n);
    return 0; /* the round completed with us in it: that cannot be undone */
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
    wqueue q;
};

int may_wg_new(may_wg_t **out)
{
    if (!out)
        return -EINVAL;
    may_wg_t *wg = calloc(1, sizeof *wg);
    if (!wg)
        return -ENOMEM;
    *out = wg;
    return 0;
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
    wakelist wl = { NULL };
    if (atomic_load(&wg->nwait) != 0) {
        spin_lock(&wg->qlock);
        wnode *n;
        while ((n = q_pop(&wg->q))) {
            atomic_fetch_sub_explicit(&wg->nwait, 1, memory_order_relaxed);
            wl_add(&wl, n, WN_GRANTED);
        }
        spin_unlock(&wg->qlock);
    }
    /* release: our last touch of wg; the woken nodes live on the waiters'
     * stacks, and they return only after this wake */
    atomic_fetch_sub_explicit(&wg->busy, 1, memory_order_release);
    wl_wake(&wl);
    return 0;
}

/* A waiter saw the count at zero: wait until the done-er that took it
 * there has stopped touching wg (a few instructions, unless preempted). */
static void wg_settle(may_wg_t *wg)
{
    /* acquire: pairs with the release decrement in may_wg_add */
    for (int i = 0; atomic_load_explicit(&wg->busy, memory_order_acquire); i++) {
        if (i < 64)
            cpu_relax();
        else
            sched_yield();
    }
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
        wg_settle(wg);
        return 0;
    }
    may__parker *p = may__self_parker();
    wnode n;
    node_init(&n, p);
    spin_lock(&wg->qlock);
    atomic_fetch_add(&wg->nwait, 1); /* seq_cst, then re-read count */
    if (atomic_load(&wg->count) == 0) {
        atomic_fetch_sub(&wg->nwait, 1);
        spin_unlock(&wg->qlock);
        wg_settle(wg);
        return 0;
    }
    if (deadline == MAY_NOWAIT || cancelled(p)) {
        atomic_fetch_sub(&wg->nwait, 1);
        spin_unlock(&wg->qlock);
        return nowait_error(p);
    }
    may__wait_prepare(p);
    q_push(&wg->q, &n);
    spin_unlock(&wg->qlock);

    may__wait_note(n.p, "wait group", wg);
    int r = park_node(&n, deadline, 0);
    if (r == 0)
        return 0;
    spin_lock(&wg->qlock);
    if (atomic_load_explicit(&n.state, memory_order_relaxed) == WN_WAITING) {
        q_unlink(&wg->q, &n);
        atomic_fetch_sub_explicit(&wg->nwait, 1, memory_order_relaxed);
        spin_unlock(&wg->qlock);
        return r;
    }
    spin_unlock(&wg->qlock);
    park_claimed(&n);
    return 0; /* the count did reach zero */
}

/* ========================================================================= */
/* Event                                                                     */
/* ========================================================================= */

struct may_event {
    _Atomic int fired;
    spin_t qlock;
    wqueue q;
};

int may_event_new(may_event_t **out)
{
    if (!out)
        return -EINVAL;
    may_event_t *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    *out = e;
    return 0;
}

void may_event_free(may_event_t *e)
{
    free(e);
}

int may_event_fire(may_event_t *e)
{
    wakelist wl = { NULL };
    spin_lock(&e->qlock);
    if (atomic_load_explicit(&e->fired, memory_order_relaxed)) {
        spin_unlock(&e->qlock);
        return -EALREADY;
    }
    /* release: pairs with the acquire in wait / is_fired.  1: firing (we
     * still touch e); 2: fired, our last touch of e */
    atomic_store_explicit(&e->fired, 1, memory_order_release);
    wnode *n;
    while ((n = q_pop(&e->q)))
        wl_add(&wl, n, WN_GRANTED);
    spin_unlock(&e->qlock);
    atomic_store_explicit(&e->fired, 2, memory_order_release);
    /* the woken nodes live on the waiters' stacks; they return after this */
    wl_wake(&wl);
    return 0;
}

/* A waiter saw the event firing: wait until the firer has stopped touching
 * e, so e can be freed as soon as may_event_wait returns. */
static void event_settle(may_event_t *e)
{
    for (int i = 0; atomic_load_explicit(&e->fired, memory_order_acquire) != 2; i++) {
        if (i < 64)
            cpu_relax();
        else
            sched_yield();
    }
}

bool may_event_is_fired(may_event_t *e)
{
    return atomic_load_explicit(&e->fired, memory_order_acquire) != 0;
}

int may_event_wait(may_event_t *e, int64_t deadline)
{
    if (atomic_load_explicit(&e->fired, memory_order_acquire)) {
        event_settle(e);
        return 0;
    }
    may__parker *p = may__self_parker();
    wnode n;
    node_init(&n, p);
    spin_lock(&e->qlock);
    if (atomic_load_explicit(&e->fired, memory_order_relaxed)) {
        spin_unlock(&e->qlock);
        event_settle(e);
        return 0;
    }
    if (deadline == MAY_NOWAIT || cancelled(p)) {
        spin_unlock(&e->qlock);
        return nowait_error(p);
    }
    may__wait_prepare(p);
    q_push(&e->q, &n);
    spin_unlock(&e->qlock);

    may__wait_note(n.p, "event", e);
    int r = park_node(&n, deadline, 0);
    if (r == 0)
        return 0;
    spin_lock(&e->qlock);
    if (atomic_load_explicit(&n.state, memory_order_relaxed) == WN_WAITING) {
        q_unlink(&e->q, &n);
        spin_unlock(&e->qlock);
        return r;
    }
    spin_unlock(&e->qlock);
    park_claimed(&n);
    return 0; /* it fired */
}

/* ========================================================================= */
/* Once                                                                      */
/* ========================================================================= */

/* may_once_t is public (static initialisation), so its fields are plain
 * ints accessed with the __atomic builtins.  state: 0 not run, 1 running,
 * 2 done.  waiters: a singly linked stack of wnodes under lock. */
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
        wakelist wl = { NULL };
        once_lock(o);
        __atomic_store_n(&o->state, ONCE_DONE, __ATOMIC_RELEASE);
        wnode *n = o->waiters;
        o->waiters = NULL;
        while (n) {
            wnode *next = n->next;
            wl_add(&wl, n, WN_GRANTED);
            n = next;
        }
        once_unlock(o);
        wl_wake(&wl);
        return 0;
    }
    /* Running elsewhere: wait for it, without deadline or cancellation. */
    may__parker *p = may__self_parker();
    wnode n;
    node_init(&n, p);
    may__wait_prepare(p);
    n.next = o->waiters;
    o->waiters = &n;
    once_unlock(o);
    may__wait_note(n.p, "once", o);
    park_node(&n, MAY_FOREVER, 1);
    return 0;
}
