/*
 * timer.c - deadlines of parked coroutines.
 *
 * One 4-ary min-heap of coroutines ordered by deadline, under one mutex.
 * A coroutine has at most one armed timer (it can only wait for one thing),
 * so the heap node is embedded in struct may_co: arming never allocates
 * except to grow the heap array, and disarming removes the node in
 * O(log n) through the index the coroutine keeps (timer_idx).  A cancelled
 * sleep therefore frees its timer at once instead of leaving a tombstone.
 * While the array cannot grow, a small static spare heap takes new timers
 * (timer_idx then carries SPARE_TAG), so running out of memory never makes
 * a wait end early.
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
 * the lock and re-reads the heap.  The one exception is the poller's choice
 * of how long to sleep, which must not miss a new earlier deadline: that is
 * Dekker pair D5 (docs/ARCHITECTURE.md), fenced on both sides.
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
struct theap {
    struct entry *a;
    size_t len, cap;
    size_t tag; /* or'ed into the timer_idx of the coroutines in it */
};
/* The heap grows by doubling.  When it cannot grow (out of memory), timers
 * go to a small static spare heap instead: arming cannot fail, so a wait
 * never times out early (a spurious -ETIMEDOUT, or a sleep that returns at
 * once) because memory ran short.  Only when the spare is full too does a
 * timer fire at once. */
#define SPARE 64
#define SPARE_TAG ((size_t)1 << (sizeof(size_t) * 8 - 2))
static struct theap heap;
static struct entry spare_entries[SPARE];
static struct theap spare = { spare_entries, 0, SPARE, SPARE_TAG };
static _Atomic int64_t next_deadline = INT64_MAX;

#define ARITY 4

static inline void heap_set(struct theap *h, size_t i, struct entry e)
{
    h->a[i] = e;
    e.co->timer_idx = h->tag | i;
}

static void sift_up(struct theap *h, size_t i)
{
    struct entry e = h->a[i];
    while (i > 0) {
        size_t p = (i - 1) / ARITY;
        if (h->a[p].deadline <= e.deadline)
            break;
        heap_set(h, i, h->a[p]);
        i = p;
    }
    heap_set(h, i, e);
}

static void sift_down(struct theap *h, size_t i)
{
    struct entry e = h->a[i];
    for (;;) {
        size_t c = ARITY * i + 1, m = i;
        int64_t best = e.deadline;
        for (size_t k = c; k < c + ARITY && k < h->len; k++) {
            if (h->a[k].deadline < best) {
                m = k;
                best = h->a[k].deadline;
            }
        }
        if (m == i)
            break;
        heap_set(h, i, h->a[m]);
        i = m;
    }
    heap_set(h, i, e);
}

static void heap_remove(struct theap *h, size_t i)
{
    struct entry last = h->a[--h->len];
    h->a[i].co->timer_idx = SIZE_MAX;
    if (i < h->len) {
        heap_set(h, i, last);
        sift_down(h, i);
        sift_up(h, last.co->timer_idx & ~h->tag);
    }
}

static int64_t heap_min(const struct theap *h)
{
    return h->len ? h->a[0].deadline : INT64_MAX;
}

/* The heap whose earliest deadline is earliest (either when both are empty). */
static struct theap *first_heap(void)
{
    return heap_min(&spare) < heap_min(&heap) ? &spare : &heap;
}

static void publish_next(void)
{
    atomic_store_explicit(&next_deadline, heap_min(first_heap()), memory_order_relaxed);
}

void may__timer_arm(struct may_co *co, int64_t deadline)
{
    may__lock(&tlock, MAY__RANK_TIMER);
    struct theap *h = &heap;
    if (heap.len == heap.cap) {
        size_t ncap = heap.cap ? heap.cap * 2 : 256;
        struct entry *n = realloc(heap.a, ncap * sizeof *n);
        if (n) {
            heap.a = n;
            heap.cap = ncap;
        } else if (spare.len < spare.cap) {
            h = &spare;
        } else {
            /* Cannot arm: fire at once rather than sleep forever. */
            may__unlock(&tlock, MAY__RANK_TIMER);
            may__wake(&co->parker, MAY__P_TIMEOUT);
            return;
        }
    }
    heap_set(h, h->len++, (struct entry){ deadline, co });
    sift_up(h, h->len - 1);
    int earliest = first_heap()->a[0].co == co;
    publish_next();
    may__unlock(&tlock, MAY__RANK_TIMER);
    /* Dekker pair D5 (docs/ARCHITECTURE.md) with the poller's entry in
     * sched.c go_idle: next_deadline was stored above (relaxed, under the
     * lock), then this fence, then the load of poller_until; the poller
     * stores poller_until, fences, then loads next_deadline.  One of the
     * two sees the other's store, so the poller never sleeps past this
     * deadline.  Only a new earliest deadline needs the check (and the
     * fence): a later one is covered by the earlier timer's own arming. */
    if (earliest) {
        atomic_thread_fence(memory_order_seq_cst);
        if (deadline < atomic_load_explicit(&may__S.poller_until, memory_order_relaxed))
            may__poll_wake();
    }
}

void may__timer_disarm(struct may_co *co)
{
    may__lock(&tlock, MAY__RANK_TIMER);
    size_t idx = co->timer_idx;
    if (idx != SIZE_MAX) {
        if (idx & SPARE_TAG)
            heap_remove(&spare, idx & ~SPARE_TAG);
        else
            heap_remove(&heap, idx);
        publish_next();
    }
    may__unlock(&tlock, MAY__RANK_TIMER);
}

int may__timers_run(int64_t now)
{
    if (atomic_load_explicit(&next_deadline, memory_order_relaxed) > now)
        return 0;
    int n = 0;
    may__lock(&tlock, MAY__RANK_TIMER);
    for (;;) {
        struct theap *h = first_heap();
        if (!h->len || h->a[0].deadline > now)
            break;
        struct may_co *co = h->a[0].co;
        heap_remove(h, 0);
        may__wake(&co->parker, MAY__P_TIMEOUT);
        n++;
    }
    publish_next();
    may__unlock(&tlock, MAY__RANK_TIMER);
    return n;
}

int64_t may__timers_next(void)
{
    return atomic_load_explicit(&next_deadline, memory_order_relaxed);
}

/* Take (on) or release the timer lock: the fork handlers (src/fork.c). */
void may__timers_hold(int on)
{
    if (on)
        may__lock(&tlock, MAY__RANK_TIMER);
    else
        may__unlock(&tlock, MAY__RANK_TIMER);
}

uint64_t may__timers_count(void)
{
    may__lock(&tlock, MAY__RANK_TIMER);
    size_t n = heap.len + spare.len;
    may__unlock(&tlock, MAY__RANK_TIMER);
    return n;
}

void may__timers_shutdown(void)
{
    may__lock(&tlock, MAY__RANK_TIMER);
    free(heap.a);
    heap.a = NULL;
    heap.len = heap.cap = 0;
    spare.len = 0; /* empty already: no coroutine is alive */
    publish_next();
    may__unlock(&tlock, MAY__RANK_TIMER);
}
