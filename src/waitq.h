/*
 * waitq.h - the one wait queue: waiter nodes, the intrusive list they sit
 * on, claiming and waking them, and the ending of a wait that failed.
 *
 * Every blocking object (sync.c, chan.c, io.c, offload.c) is built from
 * these; the protocol, the node states and the memory ordering are
 * explained once, at the top of waitq.c.  In one line: a waker that has
 * taken a node off its queue *will* wake it, so a waiter whose wait failed
 * either takes its node off the queue itself, under the object's lock, or
 * waits for that wake before it returns.
 */
#ifndef MAY_WAITQ_H
#define MAY_WAITQ_H
#include "internal.h"

#include <stdbool.h>
#include <stddef.h>

/* A node's state.  WAITING means "on its queue, nobody has claimed it";
 * STALE marks a select's node that a waker dropped because its select was
 * done elsewhere (off its queue, owed no wake); every other value is the
 * object's own: what the waker granted (a lock, a unit, an element, the
 * fired I/O directions, an error), stored by the claim, and returned by
 * may__wnode_park_claimed. */
enum { MAY__WN_WAITING = 0, MAY__WN_STALE = -0x7fffffff };

/* The shared part of a select's nodes (src/select.c): one waiter with one
 * node per case, on as many queues.  fired: PENDING, ABANDONED (the select
 * gave up: no case may happen any more), or the index of the one case that
 * happened, set by whoever wins the CAS from PENDING. */
enum { MAY__SEL_PENDING = -1, MAY__SEL_ABANDONED = -2 };
typedef struct may__sel {
    _Atomic int fired;
} may__sel;

/* A waiter node: embedded in the waiter's own record (usually on its
 * stack; offload.c's jobs are on the heap), which the waiter keeps until
 * its wait has ended by this protocol.  Who touches what, when: see
 * waitq.c. */
typedef struct may__wnode {
    struct may__wnode *next, *prev; /* queue links; next also links a wake list */
    may__parker *p;                 /* whom to wake; set by may__wnode_arm */
    _Atomic int state;              /* MAY__WN_WAITING or the grant: release by the
                                       claim, acquire by the woken waiter */
    int idx;                        /* with sel: the case's index */
    may__sel *sel;                  /* NULL, or the select it is a case of: a
                                       waker claims it only by winning sel's CAS */
} may__wnode;

/* The record that holds node n as its field `member`. */
#define may__wnode_entry(n, type, member) \
    ((type *)(void *)((char *)(n) - offsetof(type, member)))

/* A FIFO of nodes, under the owning object's lock (which lock is the
 * object's business: a spinlock in sync.c and chan.c, a mutex in io.c and
 * offload.c).  Zeroed memory is an empty queue. */
typedef struct may__waitq {
    may__wnode *head, *tail;
    size_t len;
} may__waitq;

/* Nodes claimed under a lock, to be woken after it is released (a wake
 * may take scheduler locks).  Threaded through the nodes' next fields:
 * a claimed node is off every queue.  Start it as { NULL }. */
typedef struct may__wakelist {
    may__wnode *head;
} may__wakelist;

/* ---- the waiter's side, before queueing ---------------------------------- */

/* Make n ready to be queued for the parker p: not claimed, and no stale
 * wake token on p.  Before every push of n (a node may be queued again
 * after a claim, as the mutex's woken waiters are). */
static inline void may__wnode_arm(may__wnode *n, may__parker *p)
{
    n->p = p;
    n->sel = NULL;
    /* relaxed: the queue's lock publishes it with the node */
    atomic_store_explicit(&n->state, MAY__WN_WAITING, memory_order_relaxed);
    may__wait_prepare(p);
}

/* Whether p's coroutine is cancelled: a wait that would block fails at once
 * with -ECANCELED instead (a plain thread is never cancelled). */
static inline bool may__wait_cancelled(const may__parker *p)
{
    return p->co && atomic_load_explicit(&p->co->cancelled, memory_order_relaxed);
}

/* The error of a wait that cannot start (MAY_NOWAIT, or cancelled):
 * cancellation first. */
static inline int may__wait_nowait_error(const may__parker *p)
{
    return may__wait_cancelled(p) ? -ECANCELED : -ETIMEDOUT;
}

/* ---- the list (the queue's lock held) ------------------------------------ */

static inline void may__waitq_push(may__waitq *q, may__wnode *n)
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

static inline void may__waitq_push_front(may__waitq *q, may__wnode *n)
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

static inline void may__waitq_unlink(may__waitq *q, may__wnode *n)
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

/* The head, unlinked, or NULL. */
static inline may__wnode *may__waitq_pop(may__waitq *q)
{
    may__wnode *n = q->head;
    if (n)
        may__waitq_unlink(q, n);
    return n;
}

/* ---- the waker's side (the queue's lock held, n off the queue) ----------- */

/* Whether a waker that took n off its queue may claim it: always for a
 * plain node; for a select's node only by winning its select's CAS (then
 * this case is the one that happens).  Losing it, the select is done
 * elsewhere: n is marked STALE, is owed no wake, and the waker goes on to
 * the next node.  acq_rel: exactly one case of a select happens, and the
 * winner sees what the select wrote before it queued its nodes. */
static inline bool may__wnode_take(may__wnode *n)
{
    if (MAY_LIKELY(!n->sel))
        return true;
    int e = MAY__SEL_PENDING;
    if (atomic_compare_exchange_strong_explicit(&n->sel->fired, &e, n->idx,
                                                memory_order_acq_rel, memory_order_acquire))
        return true;
    /* relaxed: read by its select under this queue's lock */
    atomic_store_explicit(&n->state, MAY__WN_STALE, memory_order_relaxed);
    return false;
}

/* A select claiming one of its own cases (n's, not queued) for itself:
 * true when it won its CAS, so that case is the one that happens; false
 * when a waker completed another of its cases first. */
static inline bool may__sel_claim_self(may__wnode *n)
{
    int e = MAY__SEL_PENDING;
    /* acq_rel: as a waker's CAS (may__wnode_take) */
    return atomic_compare_exchange_strong_explicit(&n->sel->fired, &e, n->idx,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/* The first node of q that may be claimed (may__wnode_take), unlinked, or
 * NULL; stale select nodes are dropped on the way. */
static inline may__wnode *may__waitq_take(may__waitq *q)
{
    may__wnode *n;
    while ((n = q->head)) {
        may__waitq_unlink(q, n);
        if (may__wnode_take(n))
            return n;
    }
    return NULL;
}

/* Claim n with grant (!= MAY__WN_WAITING): from here on the waker owes n
 * exactly one wake, and may read n (not write it) until that wake.  Returns
 * the parker to wake with may__wake_claimed once the lock is released (a
 * waker of one node; a waker of several uses a wake list). */
static inline may__parker *may__wnode_claim(may__wnode *n, int grant)
{
    may__parker *p = n->p;
    /* release: pairs with the acquire in may__wnode_park and
     * may__wnode_park_claimed; publishes what the waker wrote into the
     * waiter's record (an element, a result) before the claim */
    atomic_store_explicit(&n->state, grant, memory_order_release);
    return p;
}

/* Send the wake owed to a claimed node, given its parker. */
static inline void may__wake_claimed(may__parker *p)
{
    may__wake(p, MAY__P_WTOKEN);
}

/* Claim n and add it to wl, to be woken by may__wakelist_wake. */
static inline void may__wakelist_add(may__wakelist *wl, may__wnode *n, int grant)
{
    n->next = wl->head;
    wl->head = n;
    may__wnode_claim(n, grant);
}

/* Wake every node of wl; call it after releasing the queue's lock.  A node
 * may be gone once woken, so its link and parker are read before. */
static inline void may__wakelist_wake(may__wakelist *wl)
{
    may__wnode *n = wl->head;
    while (n) {
        may__wnode *next = n->next;
        may__wake_claimed(n->p);
        n = next;
    }
}

/* Claim every node of q with grant and add it to wl (q's lock held). */
static inline void may__waitq_claim_all(may__waitq *q, may__wakelist *wl, int grant)
{
    may__wnode *n;
    while ((n = may__waitq_take(q)))
        may__wakelist_add(wl, n, grant);
}

/* ---- the waiter's side, waiting and giving up ---------------------------- */

/* Park until n is claimed: 0; or until the wait fails: -ETIMEDOUT or
 * -ECANCELED (the latter not with ignore_cancel), after which n may or may
 * not have been claimed meanwhile, and the waiter must end its wait with
 * may__waitq_abandon_locked. */
int may__wnode_park(may__wnode *n, int64_t deadline, int ignore_cancel);

/* The ending of a failed wait: with the queue's lock held, the waiter
 * decides.  true: n was still waiting and is now off q, so nobody will
 * wake it: the waiter returns its error (after whatever its object does
 * under the lock when a waiter leaves).  false: a waker claimed n and owes
 * it a wake: the waiter releases the lock and calls may__wnode_park_claimed,
 * then keeps the grant or passes it on as if it had never waited. */
static inline bool may__waitq_abandon_locked(may__waitq *q, may__wnode *n)
{
    /* relaxed: every claim is made under the lock we hold */
    if (atomic_load_explicit(&n->state, memory_order_relaxed) != MAY__WN_WAITING)
        return false;
    may__waitq_unlink(q, n);
    return true;
}

/* Wait for the wake that the waker that claimed n owes it, ignoring the
 * deadline and cancellation (it is certain to come, and soon); returns the
 * grant. */
int may__wnode_park_claimed(may__wnode *n);

/* The same for a waiter that was claimed some other way than through a
 * node (the joiner slot of coroutine.c, select's fired word in chan.c): wait
 * for the wake its claimer owes p. */
void may__wait_claimed(may__parker *p);

#endif
