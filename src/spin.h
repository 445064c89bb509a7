/*
 * spin.h - the short spinlock of the sync objects and channels.
 *
 * A test-and-test-and-set lock held for a few dozen instructions, never
 * across a park.  Waiters back off exponentially (1, 2, 4, ... 64 pauses),
 * so the holder's critical section, usually on the same cache line, runs at
 * full speed; after a while they yield the CPU, since the holder may be a
 * preempted thread.  acquire on lock pairs with release on unlock.
 */
#ifndef MAY_SPIN_H
#define MAY_SPIN_H
#include "internal.h"

#include <sched.h>

typedef struct {
    _Atomic int v;
} spin_t;

static MAY_NOINLINE void spin_lock_slow(spin_t *l)
{
    /* Exponential backoff: waiting spinners keep off the cache line, so the
     * holder's critical section (usually on the same line) runs at full
     * speed. */
    unsigned backoff = 1;
    for (unsigned n = 0;; n++) {
        if (!atomic_load_explicit(&l->v, memory_order_relaxed) &&
            !atomic_exchange_explicit(&l->v, 1, memory_order_acquire))
            return;
        if (n < 16) {
            for (unsigned i = 0; i < backoff; i++)
                cpu_relax();
            if (backoff < 64)
                backoff <<= 1;
        } else {
            sched_yield();
        }
    }
}

/* With a rank other than OBJECT (src/lockrank.h): the timer objects'
 * locks, taken under the timer lock. */
static inline void spin_lock_ranked(spin_t *l, int rank)
{
    (void)rank;
    MAY__RANK_ACQUIRE(rank, l);
    /* acquire: pairs with the release in spin_unlock_ranked */
    if (MAY_LIKELY(!atomic_exchange_explicit(&l->v, 1, memory_order_acquire)))
        return;
    spin_lock_slow(l);
}

static inline void spin_unlock_ranked(spin_t *l, int rank)
{
    (void)rank;
    MAY__RANK_RELEASE(rank, l);
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

static inline void spin_lock(spin_t *l)
{
    MAY__RANK_ACQUIRE(MAY__RANK_OBJECT, l); /* src/lockrank.h */
    /* acquire: pairs with the release in spin_unlock */
    if (MAY_LIKELY(!atomic_exchange_explicit(&l->v, 1, memory_order_acquire)))
        return;
    spin_lock_slow(l);
}

static inline void spin_unlock(spin_t *l)
{
    MAY__RANK_RELEASE(MAY__RANK_OBJECT, l);
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

#endif
