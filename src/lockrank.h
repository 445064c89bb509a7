/*
 * lockrank.h - the lock order, as a ranked table, checked in debug builds.
 *
 * Every lock of the runtime has a rank.  A thread may take a lock only while
 * every lock it holds has a lower rank: a cycle of waits (a deadlock) then
 * cannot form.  The one exception is OBJECT: select holds several channel
 * locks at once, so locks of that rank may nest in increasing address order
 * (src/chan.c sorts them).  A trylock can never wait, so it may break the
 * order (the dump handler and the stack prewarmer use that); it is recorded
 * as held all the same.
 *
 * The table (outer first), and why each nests where it does:
 *
 *   START    sched start_lock: start, shutdown, configure; may_stats and
 *            may_dump hold it while they read the workers and the stacks
 *   THREADS  sched threads_lock: the monitor making a spare worker and its
 *            thread, joining the thread of one that left (handoff.c)
 *   CTX      ctx.c ctx_lock: the context tree and the coroutines under
 *            each context; cancelling a context cancels them (SCOPE) and
 *            fires its event (OBJECT)
 *   SCOPE    scope.c: a scope's children; cancelling them wakes them.
 *            Recursive: cancelling a child cancels the scopes it owns
 *   KEY      cls.c key_lock: key create and delete (a leaf)
 *   SIGNAL   signal.c sig_lock: the signal watchers and dispositions; the
 *            dispatcher sends into watchers' channels (OBJECT) under it
 *   OBJECT   the spinlock of a sync object or channel (src/spin.h) and the
 *            per-fd entry lock of io.c: a waker takes a waiter off the
 *            object's queue and may wake it (may__wake) before it unlocks
 *   TIMER    a timer.c shard's lock (one heap per worker): timers fire
 *            under it, readying coroutines; shards nest only in address
 *            order (the fork handler holds them all)
 *   TOBJ     a timer object's spinlock (timer.c): its firing, taken and
 *            woken from under the timer lock
 *   INBOX    a worker's inbox_lock (readying a pinned coroutine)
 *   GQ       the global run queue's lock (readying from a plain thread)
 *   IDLE     sched idle_lock: the idle list (wakep, go_idle)
 *   STACK    stack.c stack_lock: the global stack pool, slabs, the list
 *            of live coroutines that may_dump walks
 *   OFFLOAD  offload.c P.lock: the pool's queue, a leaf (a helper wakes
 *            a coroutine caller only after releasing it)
 *
 * No lock is ever held across a context switch: a coroutine may resume on
 * another thread, which would hold it then, and the thread it left could
 * take it again.
 *
 * With MAY_LOCKRANK defined (CMake option MAY_LOCKRANK, on in the test
 * stages' debug, ASan and TSan builds) each thread keeps the locks it holds
 * in a small array, MAY__LOCK checks the order and MAY__ASSERT_HELD checks
 * a function's "lock held" precondition; a violation prints both locks and
 * aborts.  Without it the macros are the plain pthread calls.
 */
#ifndef MAY_LOCKRANK_H
#define MAY_LOCKRANK_H

#include <pthread.h>

enum may__rank {
    MAY__RANK_NONE = 0,
    MAY__RANK_START,
    MAY__RANK_THREADS,
    MAY__RANK_CTX,
    MAY__RANK_SCOPE,
    MAY__RANK_KEY,
    MAY__RANK_SIGNAL,
    MAY__RANK_OBJECT,
    MAY__RANK_TIMER,
    MAY__RANK_TOBJ,
    MAY__RANK_INBOX,
    MAY__RANK_GQ,
    MAY__RANK_IDLE,
    MAY__RANK_STACK,
    MAY__RANK_OFFLOAD,
};

#ifdef MAY_LOCKRANK
void may__rank_acquire(int rank, const void *lock, int try);
void may__rank_release(int rank, const void *lock);
void may__rank_assert_held(int rank, const void *lock, const char *where);
#define MAY__RANK_ACQUIRE(rank, lock) may__rank_acquire((rank), (lock), 0)
#define MAY__RANK_RELEASE(rank, lock) may__rank_release((rank), (lock))
#define MAY__ASSERT_HELD(rank, lock) may__rank_assert_held((rank), (lock), __func__)
#else
#define MAY__RANK_ACQUIRE(rank, lock) ((void)0)
#define MAY__RANK_RELEASE(rank, lock) ((void)0)
#define MAY__ASSERT_HELD(rank, lock) ((void)0)
#endif

/* pthread mutexes of the runtime: lock, unlock, trylock (0 or an error
 * number, as pthread_mutex_trylock) with their rank. */
static inline void may__lock(pthread_mutex_t *m, int rank)
{
    MAY__RANK_ACQUIRE(rank, m);
    (void)rank;
    pthread_mutex_lock(m);
}

static inline void may__unlock(pthread_mutex_t *m, int rank)
{
    MAY__RANK_RELEASE(rank, m);
    (void)rank;
    pthread_mutex_unlock(m);
}

static inline int may__trylock(pthread_mutex_t *m, int rank)
{
    int e = pthread_mutex_trylock(m);
#ifdef MAY_LOCKRANK
    if (e == 0)
        may__rank_acquire(rank, m, 1);
#endif
    (void)rank;
    return e;
}

#endif
