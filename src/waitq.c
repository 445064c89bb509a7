/*
 * waitq.c - the wait-queue protocol that every blocking object follows.
 *
 * Why one.  A mutex, a semaphore, a channel, an fd and an offloaded call
 * all block the same way: the waiter puts a node naming its parker on the
 * object's queue and parks; a waker takes the node off, records what it
 * grants, and wakes the parker.  The hard part is the wait that fails (a
 * deadline, a cancellation) while a waker is at work: written out in every
 * object it was a dozen copies of the same few lines, and one copy wrong is
 * a lost wake-up or a use after free.  So the protocol lives here, as Go's
 * sudog and semaRoot serve its channels, mutexes and select alike, and the
 * objects keep only what is theirs: who gets woken, and with what.
 *
 * The protocol:
 *
 *   waiter                                   waker
 *   may__wnode_arm(n, p)
 *   lock; may__waitq_push(q, n); unlock
 *   may__wnode_park(n, deadline)             lock; n = may__waitq_pop(q);
 *                                            record the grant (elements, ...);
 *                                            may__wakelist_add(&wl, n, grant);
 *                                            unlock
 *                                            may__wakelist_wake(&wl)
 *
 * Invariant: a waker that has taken a waiter off a wait list *will* wake
 * it; a waiter that times out or is cancelled removes itself under the
 * object's lock, or, if it was already taken, waits for the wake (ignoring
 * cancellation) before returning.  That ending, for a failed park:
 *
 *   lock
 *   if (may__waitq_abandon_locked(q, n)) { the object's bookkeeping; unlock;
 *                                          return the error }
 *   unlock
 *   grant = may__wnode_park_claimed(n)       keep the grant, or pass it on
 *                                            as if it had never waited
 *
 * This is what lets a node live on its waiter's stack and a parker in a
 * coroutine's control block, which a join frees: nobody touches either
 * after the waiter returns.  Whether a grant that arrives after the failure
 * is kept (a channel's element did move; a barrier's round did complete) or
 * passed on (a mutex, a semaphore unit, a condvar signal) is the object's
 * decision; the protocol only makes sure the waiter knows it got one.
 *
 * Node states (the field state):
 *
 *   WAITING   on its queue; only the holder of the queue's lock changes that,
 *             by unlinking it (a waker claims it; the waiter abandons it)
 *   grant     any other value, chosen by the object: claimed, off the queue,
 *             and owed exactly one wake.  (Two objects use a non-WAITING
 *             value for something else too: chan.c marks a select's node
 *             that a waker dropped, whose select was done elsewhere, STALE,
 *             which is owed no wake; offload.c's RUNNING job is off the
 *             queue and is owed a wake only if its caller stays.  Both say
 *             so where they do it.)
 *
 * Who may touch a node when.  The waiter owns it until the push; then the
 * holder of the queue's lock may read and unlink it; a waker that claimed
 * it may read it (its parker, its link on a wake list) until it has woken
 * it, and the waiter may read it; after the wake only the waiter, which may
 * then free it or push it again (may__wnode_arm first).  A wake list is
 * walked after the lock is released, reading each node's link and parker
 * before waking it.
 *
 * No stray wake tokens.  A waiter returns from may__wnode_park with 0 only
 * when its node is claimed, and re-parks on a wake that finds it WAITING.
 * The waker's wake is the last thing it does with the node, so the waiter
 * must not return before that wake when it has consumed none: hence
 * may__wnode_park_claimed, never a bare "the state says claimed, return".
 * may__wnode_arm clears a token left over from an earlier wait before the
 * node can be seen, though by this protocol none is ever left.
 *
 * Claims that are not a pop.  A select has one node per case but is one
 * waiter: its cases are claimed by a CAS on a shared `fired' word before
 * the node's own claim (chan.c), and a joiner is claimed by the ending
 * coroutine's CAS on the joiner slot (coroutine.c).  There the waiter gives up
 * with a CAS of its own, and when that CAS finds it claimed it waits with
 * may__wait_claimed, the parker-only form of may__wnode_park_claimed.
 *
 * Memory ordering.  The grant and whatever the waker wrote into the
 * waiter's record are published by the claim's release store of state,
 * which pairs with the acquire load in may__wnode_park and
 * may__wnode_park_claimed; the parker's acq_rel CAS in may__wake orders
 * them too.  Under the queue's lock (may__waitq_abandon_locked) the state
 * is read relaxed: every claim is made under that lock.
 *
 * Lock order: a queue's lock is the object's, and a leaf, except that
 * may__wake (scheduler locks) may be called under it; this file takes no
 * lock.  No lock is held across a park.
 *
 * Rejected: passing the object's lock (and its bookkeeping on abandon) as
 * callbacks, so one call could do the whole ending; the objects' locks are
 * of two kinds and every object has its own bookkeeping, and the
 * "decide under your lock, then park outside it" split reads as plainly
 * at the call site and costs nothing.
 */
#include "waitq.h"

MAY_HOT_INLINE int may__wnode_park(may__wnode *n, int64_t deadline, int ignore_cancel)
{
    for (;;) {
        int r = may__wait(n->p, deadline, ignore_cancel);
        if (r < 0)
            return r;
        /* acquire: pairs with the release in may__wnode_claim */
        if (atomic_load_explicit(&n->state, memory_order_acquire) != MAY__WN_WAITING)
            return 0;
        /* a wake that was not for n: park again */
    }
}

/* The two below are the cold ending of a wait that raced its waker: kept
 * out of line, so that the hot paths that inline may__wnode_park stay
 * small. */
MAY_NOINLINE void may__wait_claimed(may__parker *p)
{
    while (may__wait(p, MAY_FOREVER, 1) != 0)
        ;
}

MAY_NOINLINE int may__wnode_park_claimed(may__wnode *n)
{
    may__wait_claimed(n->p);
    /* acquire: pairs with the release in may__wnode_claim */
    return atomic_load_explicit(&n->state, memory_order_acquire);
}
