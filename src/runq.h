/*
 * runq.h - the run queues' fast paths, inline in every caller: a worker's
 * ring (push, pop, length, a thief's grab), its runnext slot, and the looks
 * at the global queue and the inbox that skip their locks while they are
 * empty.  What the queues are, who may touch which end, and their memory
 * ordering: the top of runq.c, which also holds the slow paths.
 *
 * Everything here belongs to one worker (in Go's terms, to the processor,
 * not to the thread that runs it); "owner" means the thread running that
 * worker now.
 */
#ifndef MAY_RUNQ_H
#define MAY_RUNQ_H

#include "internal.h"

/* runq.c */
/* The ring is full: move half of it and co to the global queue.  0 when a
 * thief took some meanwhile (there is room now). */
MAY_NOINLINE __attribute__((cold)) int may__runq_push_slow(may__worker *w, struct may_co *co,
                                                           uint32_t h);
/* Take up to max from the global queue: the first is returned, the rest go
 * onto w's ring.  NULL if it was empty. */
MAY_NOINLINE struct may_co *may__gq_pop_locked(may__worker *w, uint32_t max);
/* Queue n coroutines on the global queue (any thread; no wake-up). */
void may__gq_push(struct may_co **cos, uint32_t n);
/* Take the head of w's inbox (owner only).  NULL if empty. */
MAY_NOINLINE struct may_co *may__inbox_pop_locked(may__worker *w);
/* A thief's take from v's inbox: its first unpinned coroutine, or NULL. */
MAY_NOINLINE struct may_co *may__inbox_steal(may__worker *v);

/* Owner only. */
static inline void may__runq_push(may__worker *w, struct may_co *co)
{
    may__runq *q = &w->q;
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (MAY_LIKELY(t - h < MAY__RUNQ_SIZE)) {
            atomic_store_explicit(&q->buf[t % MAY__RUNQ_SIZE], co, memory_order_relaxed);
            /* release: pairs with the acquire of tail in may__runq_grab */
            atomic_store_explicit(&q->tail, t + 1, memory_order_release);
            return;
        }
        if (may__runq_push_slow(w, co, h))
            return;
    }
}

/* Owner only.  With a single worker there are no thieves, and the ring can
 * be used without read-modify-write instructions. */
static inline struct may_co *may__runq_pop(may__worker *w)
{
    may__runq *q = &w->q;
    if (may__solo()) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
        if (h == atomic_load_explicit(&q->tail, memory_order_relaxed))
            return NULL;
        struct may_co *co = atomic_load_explicit(&q->buf[h % MAY__RUNQ_SIZE], memory_order_relaxed);
        atomic_store_explicit(&q->head, h + 1, memory_order_relaxed);
        return co;
    }
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (t == h)
            return NULL;
        struct may_co *co = atomic_load_explicit(&q->buf[h % MAY__RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_release,
                                                  memory_order_relaxed))
            return co;
    }
}

static inline uint32_t may__runq_len(may__worker *w)
{
    uint32_t h = atomic_load_explicit(&w->q.head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&w->q.tail, memory_order_acquire);
    return t - h;
}

/* Take half of victim's ring into batch.  Any thread. */
static inline uint32_t may__runq_grab(may__worker *v, struct may_co **batch, int take_next)
{
    may__runq *q = &v->q;
    for (;;) {
        /* acquire: pairs with the release stores of head and tail */
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
        uint32_t n = t - h;
        n = n - n / 2;
        if (n == 0) {
            if (take_next) {
                struct may_co *co = atomic_load_explicit(&v->runnext, memory_order_acquire);
                if (co && atomic_compare_exchange_strong(&v->runnext, &co, NULL)) {
                    batch[0] = co;
                    return 1;
                }
            }
            return 0;
        }
        if (n > MAY__RUNQ_SIZE / 2)
            continue; /* h and t were read at different times */
        for (uint32_t i = 0; i < n; i++)
            batch[i] = atomic_load_explicit(&q->buf[(h + i) % MAY__RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&q->head, &h, h + n, memory_order_acq_rel,
                                                    memory_order_relaxed))
            return n;
    }
}

/* Owner only: empty runnext and return what it held. */
static inline struct may_co *may__runnext_take(may__worker *w)
{
    if (may__solo()) { /* no thieves */
        struct may_co *co = atomic_load_explicit(&w->runnext, memory_order_relaxed);
        atomic_store_explicit(&w->runnext, NULL, memory_order_relaxed);
        return co;
    }
    /* acquire: pairs with the thief's CAS in may__runq_grab */
    return atomic_exchange_explicit(&w->runnext, NULL, memory_order_acquire);
}

static inline struct may_co *may__gq_pop(may__worker *w, uint32_t max)
{
    if (atomic_load_explicit(&may__S.gq_len, memory_order_relaxed) == 0)
        return NULL;
    return may__gq_pop_locked(w, max);
}

/* Any thread. */
static inline void may__inbox_push(may__worker *w, struct may_co *co)
{
    may__lock(&w->inbox_lock, MAY__RANK_INBOX);
    co->next = NULL;
    if (w->inbox_tail)
        w->inbox_tail->next = co;
    else
        w->inbox_head = co;
    w->inbox_tail = co;
    /* seq_cst: the producer's side of Dekker pair D3 (docs/ARCHITECTURE.md):
     * the caller then reads the owner's sleep_word (may__wake_worker) */
    if (co->pinned < 0)
        atomic_fetch_add_explicit(&w->inbox_free, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&w->inbox_len, 1, memory_order_seq_cst);
    may__unlock(&w->inbox_lock, MAY__RANK_INBOX);
}

/* Owner only. */
static inline struct may_co *may__inbox_pop(may__worker *w)
{
    if (atomic_load_explicit(&w->inbox_len, memory_order_relaxed) == 0)
        return NULL;
    return may__inbox_pop_locked(w);
}

#endif
