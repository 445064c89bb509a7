/*
 * timer.c - deadlines of parked coroutines, timer and ticker objects, and
 * contexts' deadlines.
 *
 * 4-ary min-heaps of timer nodes (may__tnode) ordered by deadline, one per
 * worker (a shard, below), each under its spinlock.  A coroutine has at most one armed deadline (it can only wait
 * for one thing), so its node is embedded in struct may_co; a timer object
 * (may_timer_t) and a context embed theirs too.  Arming never allocates
 * except to grow the heap array, and disarming removes the node in
 * O(log n) through the index the node keeps (idx).  A cancelled sleep or a
 * stopped timer therefore frees its slot at once instead of leaving a
 * tombstone, and a stopped timer costs nothing: it is not in the heap.
 * While the array cannot grow, a small static spare heap takes new timers
 * (timer_idx then carries SPARE_TAG), so running out of memory never makes
 * a wait end early.
 *
 * Who runs timers: the worker sitting in the poller sleeps until the earliest
 * deadline (may__timers_next), and every worker checks for due timers when it
 * runs out of work and every 61 scheduling rounds.  Arming a deadline earlier
 * than the one the poller sleeps until wakes the poller.
 *
 * Firing happens under the shard's lock: a coroutine's node sets TIMEOUT on its
 * parker, which readies it if it is parked; a timer object's takes the
 * object's own spinlock (rank TOBJ, below TIMER), hands the firing to its
 * first waiter or keeps it pending, and a ticker's goes back into the heap
 * at its next period.  Because disarming takes the same lock, once it
 * returns the node can no longer fire, so a stale timeout can never reach a
 * later wait, and a stopped timer never delivers.  A context's deadline
 * (ctx.c) cancels a tree, which takes locks ranked above this one, so its
 * node is "deferred" (may__tdefer): it is taken out of the heap under the
 * lock and fired after the lock is released; its disarm waits for a fire
 * in progress to end (the firing flag), which keeps the same guarantee.
 *
 * Timer objects follow Go 1.23's time.Timer: one firing at most is kept
 * pending until taken (may_timer_wait, or a select's MAY_CASE_TIMER); a
 * ticker drops the ticks nobody takes; reset and stop discard a pending
 * firing, so no stale tick is seen after them.  A timer object lives in
 * the shard of the worker that made it, for good, so arming, re-arming
 * and stopping are serialised by that shard's lock, which also guards its
 * period and deadline; the object's spinlock (rank TOBJ) guards the
 * pending firing and the waiters, which the firing reaches from under the
 * shard's lock.
 *
 * Memory ordering: next_deadline is a relaxed hint; whoever acts on it takes
 * the lock and re-reads the heap.  The one exception is the poller's choice
 * of how long to sleep, which must not miss a new earlier deadline: that is
 * Dekker pair D5 (docs/ARCHITECTURE.md), fenced on both sides.
 */
#include "internal.h"

#include <limits.h>
#include <sched.h>

#include "select.h" /* MAY__STEP_*, also when not built as one unit */
#include "spin.h"
#include "waitq.h"

/* Entries carry their deadline, so sifting compares within the array and
 * touches a node only to update its index: control blocks are each on
 * their own page, and a heap of a million scattered ones was bound by cache
 * and TLB misses.  4-ary: half the levels of a binary heap. */
struct entry {
    int64_t deadline;
    may__tnode *n;
};
struct theap {
    struct entry *a;
    size_t len, cap;
    size_t tag; /* or'ed into the idx of the nodes in it */
};
/* A heap grows by doubling.  When it cannot grow (out of memory), timers
 * go to a small static spare heap instead: arming cannot fail, so a wait
 * never times out early (a spurious -ETIMEDOUT, or a sleep that returns at
 * once) because memory ran short.  Only when the spare is full too does a
 * timer fire at once. */
#define SPARE 64
#define SPARE_TAG ((size_t)1 << (sizeof(size_t) * 8 - 2))

/* One heap per worker (shard), as Go has one per P: a coroutine arms its
 * deadline in its worker's shard, a timer object or a context in the shard
 * of the worker that made it (shard 0 from a plain thread), so workers that
 * arm and stop timers at once do not share a lock or a cache line.  A
 * node remembers its shard (tn->shard); disarming takes that shard's lock
 * wherever it runs.  Every worker runs the due timers of every shard
 * (may__timers_run looks at each shard's published earliest deadline, one
 * relaxed load each, and locks only a shard with something due), and the
 * poller sleeps until the earliest of them all.  The lock is a spinlock:
 * held for a few hundred instructions at most (a sift, a firing's
 * hand-off), where a pthread mutex cost more in its calls than in the wait. */
#define NSHARDS 64
struct shard {
    spin_t lock;               /* rank TIMER; shards nest in address order
                                  only in may__timers_hold (fork) */
    struct theap heap, spare;  /* under lock */
    _Atomic int64_t next;      /* earliest deadline, INT64_MAX: none (relaxed) */
    struct entry spare_entries[SPARE];
} __attribute__((aligned(MAY_CACHELINE)));
static struct shard shards[NSHARDS];
static _Atomic int nshards_used; /* shards ever armed in: 0 .. this - 1 */

static inline void shard_lock(struct shard *sh)
{
    spin_lock_ranked(&sh->lock, MAY__RANK_TIMER);
}

static inline void shard_unlock(struct shard *sh)
{
    spin_unlock_ranked(&sh->lock, MAY__RANK_TIMER);
}

/* The shard for a node armed now from here: the worker's own. */
static inline int shard_here(void)
{
    int w = may_worker_id();
    return w < 0 ? 0 : w & (NSHARDS - 1);
}

/* Make shard i ready for use (its spare heap) and visible to the runners. */
static struct shard *shard_get(int i)
{
    struct shard *sh = &shards[i];
    int used = atomic_load_explicit(&nshards_used, memory_order_acquire);
    if (i >= used) {
        shard_lock(sh);
        if (!sh->spare.a) {
            sh->spare.a = sh->spare_entries;
            sh->spare.cap = SPARE;
            sh->spare.tag = SPARE_TAG;
            atomic_store_explicit(&sh->next, INT64_MAX, memory_order_relaxed);
        }
        shard_unlock(sh);
        /* release: the shard's setup before a runner looks at it */
        while (used <= i && !atomic_compare_exchange_weak_explicit(&nshards_used, &used, i + 1,
                                                                   memory_order_acq_rel,
                                                                   memory_order_acquire))
            ;
    }
    return sh;
}

#define ARITY 4

static inline void heap_set(struct theap *h, size_t i, struct entry e)
{
    h->a[i] = e;
    e.n->idx = h->tag | i;
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
    h->a[i].n->idx = SIZE_MAX;
    if (i < h->len) {
        heap_set(h, i, last);
        sift_down(h, i);
        sift_up(h, last.n->idx & ~h->tag);
    }
}

static int64_t heap_min(const struct theap *h)
{
    return h->len ? h->a[0].deadline : INT64_MAX;
}

/* The shard's heap whose earliest deadline is earliest. */
static struct theap *first_heap(struct shard *sh)
{
    return heap_min(&sh->spare) < heap_min(&sh->heap) ? &sh->spare : &sh->heap;
}

static void publish_next(struct shard *sh)
{
    atomic_store_explicit(&sh->next, heap_min(first_heap(sh)), memory_order_relaxed);
}

/* Put tn into sh at deadline (sh locked, tn in no heap).  Returns whether
 * it is the shard's earliest now, or -1 when it could not be armed at all
 * (no memory, spare full): the caller fires it at once rather than never. */
static int heap_insert(struct shard *sh, may__tnode *tn, int64_t deadline)
{
    MAY__ASSERT_HELD(MAY__RANK_TIMER, &sh->lock);
    struct theap *h = &sh->heap;
    if (h->len == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 256;
        struct entry *n = realloc(h->a, ncap * sizeof *n);
        if (n) {
            h->a = n;
            h->cap = ncap;
        } else if (sh->spare.len < sh->spare.cap) {
            h = &sh->spare;
        } else {
            return -1;
        }
    }
    heap_set(h, h->len++, (struct entry){ deadline, tn });
    sift_up(h, h->len - 1);
    int earliest = first_heap(sh)->a[0].n == tn;
    if (earliest)
        publish_next(sh);
    return earliest;
}

/* Take tn out of its heap in sh, if it is in one (sh locked).  Whether it
 * was. */
static int heap_take(struct shard *sh, may__tnode *tn)
{
    MAY__ASSERT_HELD(MAY__RANK_TIMER, &sh->lock);
    size_t idx = tn->idx;
    if (idx == SIZE_MAX)
        return 0;
    if (idx & SPARE_TAG)
        heap_remove(&sh->spare, idx & ~SPARE_TAG);
    else
        heap_remove(&sh->heap, idx);
    publish_next(sh);
    return 1;
}

/* After arming a new earliest deadline of a shard, its lock released: wake
 * the poller if it sleeps past it. */
static void poke_poller(int64_t deadline)
{
    /* Dekker pair D5 (docs/ARCHITECTURE.md) with the poller's entry in
     * sched.c go_idle: the shard's next was stored (relaxed, under its
     * lock), then this fence, then the load of poller_until; the poller
     * stores poller_until, fences, then loads every shard's next
     * (may__timers_next).  One of the two sees the other's store, so the
     * poller never sleeps past this deadline.  Only a new earliest
     * deadline of its shard needs the check (and the fence): a later one
     * is covered by the earlier timer's own arming. */
    atomic_thread_fence(memory_order_seq_cst);
    if (deadline < atomic_load_explicit(&may__S.poller_until, memory_order_relaxed))
        may__poll_wake();
}

static void fire_node(may__tnode *tn);

void may__timer_arm(struct may_co *co, int64_t deadline)
{
    /* Written by the coroutine itself, read by its disarm: no one else
     * reads it (runners know their shard). */
    co->tn.shard = shard_here();
    struct shard *sh = shard_get(co->tn.shard);
    shard_lock(sh);
    int earliest = heap_insert(sh, &co->tn, deadline);
    shard_unlock(sh);
    if (earliest < 0)
        may__wake(&co->parker, MAY__P_TIMEOUT); /* fire at once rather than never */
    else if (earliest)
        poke_poller(deadline);
}

void may__timer_disarm(struct may_co *co)
{
    /* Always the lock, even when it fired: a runner fires under it, so
     * once we hold it no firing of this arming is still on its way. */
    struct shard *sh = &shards[co->tn.shard];
    shard_lock(sh);
    heap_take(sh, &co->tn);
    shard_unlock(sh);
}

/* Wait for a deferred node's fire in progress to end (no shard locked). */
static void defer_settle(may__tnode *tn)
{
    if (!tn->deferred)
        return;
    may__tdefer *d = (may__tdefer *)(void *)tn;
    /* acquire: pairs with the release that ends the fire in may__timers_run */
    for (int i = 0; atomic_load_explicit(&d->firing, memory_order_acquire); i++) {
        if (i < 64)
            cpu_relax();
        else
            sched_yield();
    }
}

/* The home shard of a node that is not a coroutine's: where it was made. */
void may__tnode_init(may__tnode *tn, void (*fire)(may__tnode *), int deferred)
{
    tn->idx = SIZE_MAX;
    tn->fire = fire;
    tn->deferred = deferred;
    tn->shard = shard_here();
    shard_get(tn->shard);
}

int may__tnode_arm(may__tnode *tn, int64_t deadline)
{
    struct shard *sh = &shards[tn->shard];
    shard_lock(sh);
    int was = heap_take(sh, tn);
    int earliest = heap_insert(sh, tn, deadline);
    if (earliest < 0 && !tn->deferred) {
        fire_node(tn); /* at once rather than never */
        earliest = 0;
    }
    shard_unlock(sh);
    if (earliest < 0) {
        defer_settle(tn);
        tn->fire(tn);
    } else if (earliest) {
        poke_poller(deadline);
    }
    return was;
}

int may__tnode_disarm(may__tnode *tn)
{
    struct shard *sh = &shards[tn->shard];
    shard_lock(sh);
    int was = heap_take(sh, tn);
    shard_unlock(sh);
    defer_settle(tn);
    return was;
}

/* Fire a node taken out of the heap (its shard locked, not deferred). */
static void fire_node(may__tnode *tn)
{
    if (MAY_LIKELY(!tn->fire))
        may__wake(&((struct may_co *)((char *)tn - offsetof(struct may_co, tn)))->parker,
                  MAY__P_TIMEOUT);
    else
        tn->fire(tn);
}

/* Run shard sh's due timers (its next is due). */
static int shard_run(struct shard *sh, int64_t now)
{
    int n = 0;
    may__tdefer *due = NULL;
    shard_lock(sh);
    for (;;) {
        struct theap *h = first_heap(sh);
        if (!h->len || h->a[0].deadline > now)
            break;
        may__tnode *tn = h->a[0].n;
        heap_remove(h, 0);
        if (MAY_UNLIKELY(tn->deferred)) {
            may__tdefer *d = (may__tdefer *)(void *)tn;
            /* relaxed: the release at the fire's end publishes it */
            atomic_store_explicit(&d->firing, 1, memory_order_relaxed);
            d->next = due;
            due = d;
        } else {
            fire_node(tn); /* a ticker goes back into the heap, later */
        }
        n++;
    }
    publish_next(sh);
    shard_unlock(sh);
    while (due) {
        may__tdefer *d = due;
        due = d->next;
        d->tn.fire(&d->tn);
        /* release: pairs with the acquire in defer_settle; our last touch */
        atomic_store_explicit(&d->firing, 0, memory_order_release);
    }
    return n;
}

int may__timers_run(int64_t now)
{
    int n = 0, used = atomic_load_explicit(&nshards_used, memory_order_acquire);
    for (int i = 0; i < used; i++)
        if (atomic_load_explicit(&shards[i].next, memory_order_relaxed) <= now)
            n += shard_run(&shards[i], now);
    return n;
}

int64_t may__timers_next(void)
{
    int64_t m = INT64_MAX;
    int used = atomic_load_explicit(&nshards_used, memory_order_acquire);
    for (int i = 0; i < used; i++) {
        int64_t t = atomic_load_explicit(&shards[i].next, memory_order_relaxed);
        if (t < m)
            m = t;
    }
    return m;
}

/* Take (on) or release every shard's lock, in address order: the fork
 * handlers (src/fork.c). */
void may__timers_hold(int on)
{
    if (on) {
        for (int i = 0; i < NSHARDS; i++)
            shard_lock(&shards[i]);
    } else {
        for (int i = NSHARDS - 1; i >= 0; i--)
            shard_unlock(&shards[i]);
    }
}

uint64_t may__timers_count(void)
{
    uint64_t n = 0;
    int used = atomic_load_explicit(&nshards_used, memory_order_acquire);
    for (int i = 0; i < used; i++) {
        shard_lock(&shards[i]);
        n += shards[i].heap.len + shards[i].spare.len;
        shard_unlock(&shards[i]);
    }
    return n;
}

void may__timers_shutdown(void)
{
    int used = atomic_load_explicit(&nshards_used, memory_order_acquire);
    for (int s = 0; s < used; s++) {
        struct shard *sh = &shards[s];
        shard_lock(sh);
        /* No coroutine is alive, but timer objects and contexts may be
         * armed: they are stopped (their nodes leave the heap with it). */
        for (size_t i = 0; i < sh->heap.len; i++)
            sh->heap.a[i].n->idx = SIZE_MAX;
        for (size_t i = 0; i < sh->spare.len; i++)
            sh->spare.a[i].n->idx = SIZE_MAX;
        free(sh->heap.a);
        sh->heap.a = NULL;
        sh->heap.len = sh->heap.cap = 0;
        sh->spare.len = 0;
        publish_next(sh);
        shard_unlock(sh);
    }
}

/* ---- timer and ticker objects (may_timer_t) ------------------------------ */

struct may_timer {
    may__tnode tn;  /* in its home shard's heap while armed */
    int64_t period; /* ns between firings, 0: once (home shard's lock) */
    int64_t when;   /* the deadline it is armed for (home shard's lock) */
    spin_t lock;    /* rank TOBJ: pending and q */
    int pending;    /* a firing nobody has taken yet (0 or 1) */
    may__waitq q;   /* waiters for a firing (may_timer_wait, select) */
};

#define TIMER_GRANT 1

static inline may_timer_t *timer_of(may__tnode *tn)
{
    return (may_timer_t *)(void *)((char *)tn - offsetof(may_timer_t, tn));
}

/* Hand a firing to the first waiter, or keep it pending (t->lock held).
 * Returns the parker to wake once the lock is released, or NULL. */
static may__parker *timer_deliver_locked(may_timer_t *t)
{
    may__wnode *n = may__waitq_take(&t->q);
    if (n)
        return may__wnode_claim(n, TIMER_GRANT);
    t->pending = 1;
    return NULL;
}

/* The node's fire, under its shard's lock: deliver, and a ticker goes back into the
 * heap at its next period after now (ticks nobody could take are dropped,
 * as Go's ticker drops them). */
static void timer_fire(may__tnode *tn)
{
    may_timer_t *t = timer_of(tn);
    spin_lock_ranked(&t->lock, MAY__RANK_TOBJ);
    may__parker *wk = timer_deliver_locked(t);
    spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
    if (wk)
        may__wake_claimed(wk);
    if (t->period > 0) {
        int64_t now = may__now();
        int64_t next = t->when + t->period;
        if (next <= now)
            next += ((now - next) / t->period + 1) * t->period;
        t->when = next;
        if (heap_insert(&shards[tn->shard], tn, next) < 0) /* no memory: it stops */
            t->period = 0;
    }
}

int may_timer_new(may_timer_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int r = may__ensure_started(); /* the workers run the heap */
    if (r < 0)
        return r;
    may_timer_t *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    may__tnode_init(&t->tn, timer_fire, 0);
    *out = t;
    return 0;
}

int may_ticker_new(may_timer_t **out, int64_t period)
{
    if (period <= 0) {
        if (out)
            *out = NULL;
        return -EINVAL;
    }
    int r = may_timer_new(out);
    if (r == 0)
        may_timer_reset(*out, may_deadline_in(period), period);
    return r;
}

/* Disarm t and discard its pending firing (its shard locked); whether
 * either was there. */
static int timer_stop_locked(may_timer_t *t)
{
    int was = heap_take(&shards[t->tn.shard], &t->tn);
    spin_lock_ranked(&t->lock, MAY__RANK_TOBJ);
    was |= t->pending;
    t->pending = 0;
    spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
    return was;
}

int may_timer_reset(may_timer_t *t, int64_t deadline, int64_t period)
{
    if (!t || deadline < 0 || period < 0)
        return -EINVAL;
    int r = may__ensure_started(); /* again, after a may_shutdown */
    if (r < 0)
        return r;
    struct shard *sh = &shards[t->tn.shard];
    shard_lock(sh);
    int was = timer_stop_locked(t);
    t->period = period;
    t->when = deadline;
    int earliest = heap_insert(sh, &t->tn, deadline);
    if (earliest < 0) {
        timer_fire(&t->tn); /* no memory: fire at once rather than never */
        earliest = 0;
    }
    shard_unlock(sh);
    if (earliest)
        poke_poller(deadline);
    return was;
}

int may_timer_stop(may_timer_t *t)
{
    if (!t)
        return -EINVAL;
    struct shard *sh = &shards[t->tn.shard];
    shard_lock(sh);
    int was = timer_stop_locked(t);
    shard_unlock(sh);
    return was;
}

/* Take the pending firing (t->lock held): 1 if there was one. */
static inline int timer_take_locked(may_timer_t *t)
{
    if (!t->pending)
        return 0;
    t->pending = 0;
    return 1;
}

int may_timer_wait(may_timer_t *t, int64_t deadline)
{
    if (!t)
        return -EINVAL;
    may__parker *p = may__self_parker();
    spin_lock_ranked(&t->lock, MAY__RANK_TOBJ);
    if (timer_take_locked(t)) {
        spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
        return 0;
    }
    if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
        spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
        return may__wait_nowait_error(p);
    }
    may__wnode n;
    may__wnode_arm(&n, p);
    may__waitq_push(&t->q, &n);
    spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
    may__wait_note(p, "timer", t);
    int r = may__wnode_park(&n, deadline, 0);
    if (r == 0)
        return 0;
    spin_lock_ranked(&t->lock, MAY__RANK_TOBJ);
    bool gone = may__waitq_abandon_locked(&t->q, &n);
    spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
    if (gone)
        return r;
    /* A firing reached us after the wait failed: pass it on, as if we had
     * never waited (to the next waiter, or pending). */
    may__wnode_park_claimed(&n);
    spin_lock_ranked(&t->lock, MAY__RANK_TOBJ);
    may__parker *wk = timer_deliver_locked(t);
    spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
    if (wk)
        may__wake_claimed(wk);
    return r;
}

void may_timer_free(may_timer_t *t)
{
    if (!t)
        return;
    struct shard *sh = &shards[t->tn.shard];
    shard_lock(sh);
    heap_take(sh, &t->tn);
    shard_unlock(sh);
    free(t);
}

/* ---- select's side (src/select.c) ---------------------------------------- */

int may__timer_sel_poll(may_timer_t *t)
{
    spin_lock_ranked(&t->lock, MAY__RANK_TOBJ);
    int r = timer_take_locked(t);
    spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
    return r;
}

int may__timer_sel_step(may_timer_t *t, may__wnode *n, int perform)
{
    spin_lock_ranked(&t->lock, MAY__RANK_TOBJ);
    int r = MAY__STEP_QUEUED;
    if (t->pending)
        r = perform || may__sel_claim_self(n) ? timer_take_locked(t) : MAY__STEP_LOST;
    else
        may__waitq_push(&t->q, n);
    spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
    return r;
}

void may__timer_sel_withdraw(may_timer_t *t, may__wnode *n)
{
    spin_lock_ranked(&t->lock, MAY__RANK_TOBJ);
    may__waitq_abandon_locked(&t->q, n);
    spin_unlock_ranked(&t->lock, MAY__RANK_TOBJ);
}
