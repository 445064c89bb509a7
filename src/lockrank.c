/*
 * lockrank.c - the checker behind src/lockrank.h (debug builds only).
 *
 * Each thread records the locks it holds, in the order it took them, in a
 * small array (a thread holds at most a handful: select's channels are the
 * most).  The checks read only the calling thread's own array, so they
 * need no lock and no atomics.  A coroutine that takes a lock releases it
 * before it can switch (no lock is held across a switch), so a per-thread
 * record is a per-coroutine one.
 */
#include "internal.h"

#ifdef MAY_LOCKRANK

#include <stdio.h>

#define MAX_HELD 128 /* the fork handler holds every timer shard */

static const char *const rank_names[] = {
    [MAY__RANK_NONE] = "none",       [MAY__RANK_START] = "start",
    [MAY__RANK_THREADS] = "threads", [MAY__RANK_CTX] = "ctx",
    [MAY__RANK_SCOPE] = "scope",     [MAY__RANK_KEY] = "key",
    [MAY__RANK_OBJECT] = "object",   [MAY__RANK_TIMER] = "timer",
    [MAY__RANK_TOBJ] = "timer object",
    [MAY__RANK_INBOX] = "inbox",     [MAY__RANK_GQ] = "global queue",
    [MAY__RANK_IDLE] = "idle",       [MAY__RANK_STACK] = "stack",
    [MAY__RANK_OFFLOAD] = "offload", [MAY__RANK_SIGNAL] = "signal",
};

/* TSan sees each coroutine as a fiber of its own, so two coroutines that
 * run one after the other on a thread look to it like two threads sharing
 * these thread-locals; they never overlap (no lock is held across a
 * switch), so its checks are off for the functions below. */
#define NO_TSAN __attribute__((no_sanitize("thread")))

static __thread struct {
    int rank;
    const void *lock;
} held[MAX_HELD];
static __thread int nheld;

NO_TSAN static _Noreturn void violation(const char *what, int rank, const void *lock)
{
    fprintf(stderr, "may: lock rank violation: %s %s lock %p; held:", what, rank_names[rank],
            lock);
    for (int i = 0; i < nheld; i++)
        fprintf(stderr, " %s %p", rank_names[held[i].rank], held[i].lock);
    fprintf(stderr, " (src/lockrank.h)\n");
    abort();
}

NO_TSAN void may__rank_acquire(int rank, const void *lock, int try)
{
    if (rank == MAY__RANK_SCOPE) {
        /* the one recursive lock: cancelling a scope's child cancels the
         * scopes that child owns, under the same lock */
        for (int i = 0; i < nheld; i++)
            if (held[i].lock == lock)
                goto record;
    }
    if (!try && nheld) {
        int top = held[nheld - 1].rank;
        const void *tl = held[nheld - 1].lock;
        /* strictly increasing rank; OBJECT locks also in address order,
         * and TIMER ones (the timer shards, all held only by the fork
         * handler, in address order) */
        if (top > rank || (top == rank && ((rank != MAY__RANK_OBJECT && rank != MAY__RANK_TIMER) ||
                                           tl >= lock)))
            violation("taking", rank, lock);
    }
record:
    if (nheld == MAX_HELD)
        violation("too many held when taking", rank, lock);
    held[nheld].rank = rank;
    held[nheld].lock = lock;
    nheld++;
}

NO_TSAN void may__rank_release(int rank, const void *lock)
{
    for (int i = nheld - 1; i >= 0; i--) {
        if (held[i].lock == lock) {
            for (; i < nheld - 1; i++)
                held[i] = held[i + 1];
            nheld--;
            return;
        }
    }
    violation("releasing (not held)", rank, lock);
}

NO_TSAN void may__rank_assert_held(int rank, const void *lock, const char *where)
{
    for (int i = 0; i < nheld; i++)
        if (held[i].lock == lock)
            return;
    fprintf(stderr, "%s: ", where);
    violation("expected to hold", rank, lock);
}

#endif
