/*
 * timer.c - deadlines of parked coroutines.
 *
 * One 4-ary min-heap of coroutines ordered by deadline, under one mutex.
 * A coroutine has at most one armed timer (it can only wait for one thing),
 * so the heap node is embedded in struct may_co: arming never allocates
 * except to grow the heap array, and disarming removes the node in
 * O(log n) through the index the coroutine keeps (timer_idx).  A cancelled
 * sleep therefore frees its timer at once instead of leaving a tombstone.
 *
 * Who runs timers: the worker sitting in the poller sleeps until the earliest
 * deadline (may__timers_next), and every worker checks for due timers when it
 * runs out of work and every 61 scheduling rounds.  Arming a deadline earlier
 * than the one the poller sleeps until wakes the poller.
 *
 * Firing happens under the lock: the timer sets TIMEOUT on the coroutine's
 * parker, which readies it if it is parked.  Because may__timer_disarm takes
 * the same lock, once disarm returns the timer can no longer fire, so a
 * stale timeout can never reach a later wait.
 *
 * Memory ordering: next_deadline is a relaxed hint; whoever acts on it takes
 * the lock and re-reads the heap.
 */
#include "internal.h"

#include <limits.h>

static pthread_mutex_t tlock = PTHREAD_MUTEX_INITIALIZER;
/* Entries carry their deadline, so sifting compares within the array and
 * touches a coroutine only to update its index: control blocks are each on
 * their own page, and a heap of a million scattered ones was bound by cache
 * and TLB misses.  4-ary: half the levels of a binary heap. */
struct entry {
    int64_t deadline;
    struct may_co *co;
};
static struct entry *heap;
static size_t heap_len, heap_cap;
static _Atomic int64_t next_deadline = INT64_MAX;

#define ARITY 4

static inline void heap_set(size_t i, struct entry e)
{
    heap[i] = e;
    e.co->timer_idx = i;
}

static void sift_up(size_t i)
{
    struct entry e = heap[i];
    while (i > 0) {
        size_t p = (i - 1) / ARITY;
        if (heap[p].deadline <= e.deadline)
            break;
        heap_set(i, heap[p]);
        i = p;
    }
    heap_set(i, e);
}

static void sift_down(size_t i)
{
    struct entry e = heap[i];
    for (;;) {
        size_t c = ARITY * i + 1, m = i;
        int64_t best = e.deadline;
        for (size_t k = c; k < c + ARITY && k < heap_len; k++) {
            if (heap[k].deadline < best) {
                m = k;
                best = heap[k].deadline;
            }
        }
        if (m == i)
            break;
        heap_set(i, heap[m]);
        i = m;
    }
    heap_set(i, e);
}

static void heap_remove(size_t i)
{
    struct entry last = heap[--heap_len];
    heap[i].co->timer_idx = SIZE_MAX;
    if (i < heap_len) {
        heap_set(i, last);
        sift_down(i);
        sift_up(last.co->timer_idx);
    }
}

static void publish_next(void)
{
    atomic_store_explicit(&next_deadline, heap_len ? heap[0].deadline : INT64_MAX,
                          memory_order_relaxed);
}

void may__timer_arm(struct may_co *co, int64_t deadline)
{
    pthread_mutex_lock(&tlock);
    if (heap_len == heap_cap) {
        size_t ncap = heap_cap ? heap_cap * 2 : 256;
        struct entry *n = realloc(heap, ncap * sizeof *n);
        if (!n) {
            /* Cannot arm: fire at once rather than sleep forever. */
            pthread_mutex_unlock(&tlock);
            may__wake(&co->parker, MAY__P_TIMEOUT);
            return;
        }
        heap = n;
        heap_cap = ncap;
    }
    heap_set(heap_len++, (struct entry){ deadline, co });
    sift_up(heap_len - 1);
    int earliest = heap[0].co == co;
    publish_next();
    pthread_mutex_unlock(&tlock);
    if (earliest &&
        deadline < atomic_load_explicit(&may__S.poller_until, memory_order_seq_cst))
        may__poll_wake();
}

void may__timer_disarm(struct may_co *co)
{
    pthread_mutex_lock(&tlock);
    if (co->timer_idx != SIZE_MAX) {
        heap_remove(co->timer_idx);
        publish_next();
    }
    pthread_mutex_unlock(&tlock);
}

int may__timers_run(int64_t now)
{
    if (atomic_load_explicit(&next_deadline, memory_order_relaxed) > now)
        return 0;
    int n = 0;
    pthread_mutex_lock(&tlock);
    while (heap_len && heap[0].deadline <= now) {
        struct may_co *co = heap[0].co;
        heap_remove(0);
        may__wake(&co->parker, MAY__P_TIMEOUT);
        n++;
    }
    publish_next();
    pthread_mutex_unlock(&tlock);
    return n;
}

int64_t may__timers_next(void)
{
    return atomic_load_explicit(&next_deadline, memory_order_relaxed);
}

uint64_t may__timers_count(void)
{
    pthread_mutex_lock(&tlock);
    size_t n = heap_len;
    pthread_mutex_unlock(&tlock);
    return n;
}

void may__timers_shutdown(void)
{
    pthread_mutex_lock(&tlock);
    free(heap);
    heap = NULL;
    heap_len = heap_cap = 0;
    publish_next();
    pthread_mutex_unlock(&tlock);
}
