/*
 * fork.c - what the child of a fork(2) may do with libmay.
 *
 * fork copies the calling thread only.  A child of a process whose runtime
 * runs gets the memory of every worker, run queue, timer and coroutine,
 * and none of the threads that drive them: a coroutine it waited for never
 * ends, a spawn is never run, and a lock that a worker held at the fork
 * stays locked for good.  Rebuilding a runtime in the child (new workers,
 * a new poller, the descriptors re-registered, every coroutine copy either
 * dropped or revived) would be a second start path through every
 * subsystem, and most of what it would revive (coroutines in the middle of
 * a conversation on a shared socket) must not run twice anyway.
 *
 * The rule, POSIX's for a multithreaded process: the child of a fork made
 * while the runtime runs should only exec or _exit.  libmay makes that
 * safe and makes mistakes loud:
 *
 *   - The child's one thread is a plain thread: rt_fork_child clears the
 *     worker pointer, so a fork from inside a coroutine goes on (on that
 *     coroutine's stack) as a plain thread that the scheduler does not
 *     know, and no libmay call in it ever switches to a coroutine copy.
 *   - The runtime is marked forked (may__S.state == MAY__STATE_FORKED), and
 *     every call that needs it fails with -ENOTRECOVERABLE instead of
 *     hanging: everything that would start it (may__ensure_started, hence
 *     spawn, may_start, may_workers, the fd and socket calls), and a join
 *     that would wait for a coroutine (none of which can end in the child).
 *     may_shutdown has nothing to stop and returns 0; may_configure says
 *     -EBUSY.  The runtime stays unusable in the child for good.
 *   - The child closes its copies of the poller's epoll set and wake
 *     eventfd.  The epoll set is shared with the parent (fork duplicates the
 *     descriptor, not the set), so a child's may_fd_close would otherwise
 *     remove the parent's registration of that descriptor.
 *   - Every global lock of the runtime is consistent in the child: the
 *     prepare handler takes them all, in rank order (src/lockrank.h), so no
 *     other thread is inside one at the fork; the parent and the child
 *     each release them after.  So the exec path, plain libc calls, and the
 *     calls that need no runtime (time, generators, coroutine-local
 *     storage, may_sleep, sync objects and channels used by the child
 *     alone, may_cancel and wake-ups of coroutine copies, which just queue
 *     them) never block on a lock held by a thread that is gone.  The
 *     offload pool does the same for its own lock (src/offload.c).
 *
 * Not covered: a lock inside a sync object or channel and the
 * per-descriptor locks of src/io.c are not taken (there is one per object
 * and per fd), so a child that uses an object or fd another thread was
 * using at the fork may block on it, as with a pthread mutex; such a
 * child should exec.
 *
 * A fork while the runtime is stopped (never started, or after
 * may_shutdown) is not special: the child may start a runtime of its own.
 *
 * The handlers are registered the first time the runtime starts
 * (may__fork_guard, called by may__ensure_started before it takes the
 * start lock: glibc runs the prepare handlers under its own atfork lock,
 * which registering under the start lock would invert).
 *
 * Lock order in rt_fork_prepare: start_lock, threads_lock, the context
 * lock, the scope lock, key_lock,
 * the timer lock, then, while the
 * runtime runs, every worker's inbox lock (in index order; the rank
 * checker does not see these, as it forbids two locks of one rank, and
 * nothing else ever holds two inbox locks), the global queue's and the
 * idle lock, and last the stack lock: the order of src/lockrank.h.  Under
 * the start lock the state is 0 or 2, never in between (start and shutdown
 * hold that lock while they change it).
 */
#include "internal.h"

#include <pthread.h>

static pthread_once_t rt_atfork_once = PTHREAD_ONCE_INIT;
/* rt_fork_prepare found the runtime running and took the scheduler's locks;
 * read by the parent and child handlers of the same fork (same thread). */
static int ran_at_fork;

static void rt_fork_prepare(void)
{
    may__lock(&may__S.start_lock, MAY__RANK_START);
    may__lock(&may__S.threads_lock, MAY__RANK_THREADS);
    may__ctx_hold(1);
    may__scope_hold(1);
    may__cls_hold(1);
    ran_at_fork = atomic_load_explicit(&may__S.state, memory_order_relaxed) == 2;
    may__timers_hold(1);
    if (ran_at_fork) {
        for (int i = 0, n = atomic_load(&may__S.nall); i < n; i++)
            pthread_mutex_lock(&may__S.workers[i]->inbox_lock);
        may__lock(&may__S.gq_lock, MAY__RANK_GQ);
        may__lock(&may__S.idle_lock, MAY__RANK_IDLE);
    }
    may__stacks_hold(1);
}

/* Release what rt_fork_prepare took, in reverse (child: in the child). */
static void rt_release_all(int child)
{
    may__stacks_hold(0);
    if (ran_at_fork) {
        may__unlock(&may__S.idle_lock, MAY__RANK_IDLE);
        may__unlock(&may__S.gq_lock, MAY__RANK_GQ);
        for (int i = atomic_load(&may__S.nall) - 1; i >= 0; i--)
            pthread_mutex_unlock(&may__S.workers[i]->inbox_lock);
    }
    may__timers_hold(0);
    may__cls_hold(0);
    may__scope_hold(child ? -1 : 0);
    may__ctx_hold(0);
    may__unlock(&may__S.threads_lock, MAY__RANK_THREADS);
    may__unlock(&may__S.start_lock, MAY__RANK_START);
}

static void rt_fork_parent(void)
{
    rt_release_all(0);
}

/* In the child, on the thread that called fork (the only one). */
static void rt_fork_child(void)
{
    if (ran_at_fork) {
        /* relaxed: there is no other thread to order anything with */
        atomic_store_explicit(&may__S.state, MAY__STATE_FORKED, memory_order_relaxed);
        may__tls_w = NULL; /* from now on a plain thread, even on a coroutine's stack */
        may__poll_close();
    }
    /* The locks were taken by this very thread, whose copy this is, so
     * unlocking them is an ordinary unlock (and the rank checker's record
     * of them, a thread-local, was copied with it). */
    rt_release_all(1);
}

static void rt_atfork_register(void)
{
    pthread_atfork(rt_fork_prepare, rt_fork_parent, rt_fork_child);
}

int may__fork_guard(void)
{
    pthread_once(&rt_atfork_once, rt_atfork_register);
    /* relaxed: only the child's own rt_fork_child stored it */
    if (atomic_load_explicit(&may__S.state, memory_order_relaxed) == MAY__STATE_FORKED)
        return -ENOTRECOVERABLE;
    return 0;
}
