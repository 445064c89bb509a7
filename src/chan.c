/*
 * chan.c - channels (bounded, rendezvous, unbounded) and select.
 *
 * One implementation for every shape: a ring buffer of fixed-size elements,
 * a queue of blocked senders and one of blocked receivers, a closed flag, all
 * under one short spinlock.  Separate SPSC/MPSC variants were rejected: the
 * time of a channel operation between coroutines is dominated by the
 * park/wake and the context switch, not by the lock (uncontended, one
 * exchange), and one lock keeps close and select simple.  Capacity 0 has no
 * buffer at all; an unbounded channel grows its ring by doubling (it never
 * shrinks).
 *
 * Direct hand-off.  A sender that finds a receiver waiting copies its
 * element straight into the receiver's destination (named by the waiter
 * node) and wakes it; a receiver that finds the buffer full takes the head
 * and moves the first blocked sender's element into the freed slot; on a
 * rendezvous channel the receiver copies from the blocked sender.  So a
 * woken party never retries: its operation is complete when it wakes, and
 * the element is copied once (twice through a buffer).
 *
 * Invariants, under the lock: a blocked receiver implies an empty buffer; a
 * blocked sender implies a full buffer (capacity 0: always "full"); a closed
 * channel has no blocked party.
 *
 * Waiter nodes and the wait protocol are waitq.h's (read the essay in
 * waitq.c): a node lives on its waiter's stack; a waker that unlinks a
 * node completes it (copies the element, then claims it with DONE, or
 * CLOSED for -EPIPE) and wakes it after unlocking; a waiter whose wait
 * failed takes the lock and either unlinks its node itself (returning the
 * error) or, the node being claimed, waits for the wake that is due and
 * keeps the completed operation (it did happen: a receiver did get the
 * element).
 *
 * Select.  A select puts one node per case on the case's channel, all
 * pointing at one sel_waiter on its stack: the parker plus an atomic
 * `fired' (-1 pending, else the index of the case that happened, or
 * SEL_ABANDONED).  A waker that pops a node of a select claims it with a CAS
 * of fired -1 -> index; if the CAS fails that select is done elsewhere, the
 * node is stale and the waker drops it and looks at the next.  Exactly one
 * case of a select completes.  The selecting caller locks every channel of
 * the select (in address order, so two selects cannot deadlock), polls the
 * cases in a random order (fairness), and if none is ready enqueues all its
 * nodes before unlocking, so nobody can complete one of its cases while it
 * is still looking at the others.  On timeout or cancellation it CASes
 * fired -1 -> SEL_ABANDONED: success means no case can happen any more;
 * failure means one did, and it takes that one.  Afterwards it removes its
 * remaining nodes, one channel lock at a time; a node that a waker dropped
 * as stale is marked STALE (not WAITING: it is off its queue) and owed no
 * wake.
 *
 * sel_waiter is the general "waiter with a claimed flag": an I/O readiness
 * source or a coroutine's end could complete a select case the same way
 * (queue a node; the event claims it with the CAS, fills in the result and
 * wakes the parker).
 *
 * Lock order: channel locks in increasing address order (only select holds
 * more than one); a channel lock is otherwise a leaf, except that may__wake,
 * which takes scheduler locks, may run under it (it does not here: wakes
 * happen after unlocking).  Never held across may__wait.
 *
 * Memory ordering: the lock orders everything about the channel; the
 * element copied into a waiter's buffer is published by the node's claim
 * (waitq.c: a release store of its state) and the parker's acq_rel wake;
 * fired is CASed acq_rel.
 */
#include "internal.h"

#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "spin.h"
#include "waitq.h"

/* ---- waiter nodes ------------------------------------------------------- */

#define SEL_PENDING (-1)
#define SEL_ABANDONED (-2)

/* The shared part of a select's nodes. */
typedef struct sel_waiter {
    _Atomic int fired; /* SEL_PENDING, SEL_ABANDONED, or a case index */
} sel_waiter;

/* A node's grants (waitq.h), and the mark of a select's dropped node. */
enum {
    CN_DONE = 1,   /* the operation happened */
    CN_CLOSED = 2, /* it failed with -EPIPE: the channel was closed */
    CN_STALE = 3,  /* a select's node dropped by a waker (its select was
                      done elsewhere): off its queue and owed no wake */
};

typedef struct cnode {
    may__wnode wn;   /* parker, queue links, state (CN_*) */
    sel_waiter *sel; /* NULL: a plain send/recv, claimed by unlinking */
    void *elem;      /* send: the source; recv: the destination or NULL */
    int idx;         /* case index (select) */
} cnode;

/* Pop the first node whose waiter we can claim; stale select nodes are
 * dropped on the way.  Channel lock held. */
static cnode *cq_claim(may__waitq *q)
{
    may__wnode *w;
    while ((w = may__waitq_pop(q))) {
        cnode *n = may__wnode_entry(w, cnode, wn);
        if (!n->sel)
            return n;
        int e = SEL_PENDING;
        /* acq_rel: exactly one completer per select */
        if (atomic_compare_exchange_strong_explicit(&n->sel->fired, &e, n->idx,
                                                    memory_order_acq_rel, memory_order_acquire))
            return n;
        /* relaxed: read by its select under this channel's lock */
        atomic_store_explicit(&n->wn.state, CN_STALE, memory_order_relaxed);
    }
    return NULL;
}

/* Wake the waiter an operation completed, if any (after unlocking). */
static inline void wake(may__parker *wk)
{
    if (wk)
        may__wake_claimed(wk);
}

/* What a completed node's operation returns. */
static inline int cnode_result(int grant)
{
    return grant == CN_CLOSED ? -EPIPE : 0;
}

/* ---- the channel -------------------------------------------------------- */

struct may_chan {
    spin_t lock;
    int closed;
    size_t esz;      /* element size */
    size_t cap;      /* capacity; MAY_CHAN_UNBOUNDED */
    size_t head;     /* ring: index of the oldest element */
    size_t len;      /* elements buffered */
    size_t slots;    /* ring size in elements (cap, or the grown size) */
    char *buf;       /* slots * esz bytes (NULL when esz or slots is 0) */
    may__waitq sendq, recvq;
};

static inline void copy_elem(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 0:
        return;
    case 4:
        memcpy(dst, src, 4);
        return;
    case 8:
        memcpy(dst, src, 8);
        return;
    case 16:
        memcpy(dst, src, 16);
        return;
    default:
        memcpy(dst, src, n);
    }
}

int may_chan_new(may_chan_t **out, size_t esz, size_t cap)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (esz > ((size_t)1 << 30))
        return -EINVAL;
    may_chan_t *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->esz = esz;
    ch->cap = cap;
    if (cap != MAY_CHAN_UNBOUNDED && cap > 0 && esz > 0) {
        if (cap > SIZE_MAX / esz) {
            free(ch);
            return -EINVAL;
        }
        ch->buf = malloc(cap * esz);
        if (!ch->buf) {
            free(ch);
            return -ENOMEM;
        }
    }
    ch->slots = cap == MAY_CHAN_UNBOUNDED ? 0 : cap;
    *out = ch;
    return 0;
}

void may_chan_free(may_chan_t *ch)
{
    if (!ch)
        return;
    free(ch->buf);
    free(ch);
}

/* Grow an unbounded channel's ring (full: len == slots).  Lock held. */
static int ring_grow(may_chan_t *ch)
{
    size_t nslots = ch->slots ? ch->slots * 2 : 16;
    if (nslots < ch->slots || nslots > SIZE_MAX / ch->esz)
        return -ENOMEM;
    char *nb = malloc(nslots * ch->esz);
    if (!nb)
        return -ENOMEM;
    /* unwrap: the oldest element goes to slot 0 */
    size_t first = ch->slots - ch->head;
    if (first > ch->len)
        first = ch->len;
    if (ch->len) {
        memcpy(nb, ch->buf + ch->head * ch->esz, first * ch->esz);
        memcpy(nb + first * ch->esz, ch->buf, (ch->len - first) * ch->esz);
    }
    free(ch->buf);
    ch->buf = nb;
    ch->head = 0;
    ch->slots = nslots;
    return 0;
}

/* Append an element (room assured, or an unbounded channel).  Lock held. */
static int ring_put(may_chan_t *ch, const void *elem)
{
    if (ch->esz) {
        if (ch->len == ch->slots) {
            int r = ring_grow(ch);
            if (r < 0)
                return r;
        }
        size_t i = ch->head + ch->len;
        if (i >= ch->slots)
            i -= ch->slots;
        copy_elem(ch->buf + i * ch->esz, elem, ch->esz);
    }
    ch->len++;
    return 0;
}

/* Take the oldest element into elem (NULL: drop).  Lock held, len > 0. */
static void ring_take(may_chan_t *ch, void *elem)
{
    if (ch->esz) {
        if (elem)
            copy_elem(elem, ch->buf + ch->head * ch->esz, ch->esz);
        if (++ch->head == ch->slots)
            ch->head = 0;
    }
    ch->len--;
}

static inline int has_room(const may_chan_t *ch)
{
    return ch->cap == MAY_CHAN_UNBOUNDED || ch->len < ch->cap;
}

/* Send now if possible.  Lock held.  Returns 1 when the operation happened
 * (or failed for good), with its result in *res and the parker of the
 * waiter it completed, if any, in *wk, to be woken after unlocking; 0 when
 * it would have to wait. */
static int try_send_locked(may_chan_t *ch, const void *elem, int *res, may__parker **wk)
{
    if (ch->closed) {
        *res = -EPIPE;
        return 1;
    }
    cnode *r = cq_claim(&ch->recvq);
    if (r) {
        if (r->elem)
            copy_elem(r->elem, elem, ch->esz);
        *wk = may__wnode_claim(&r->wn, CN_DONE);
        *res = 0;
        return 1;
    }
    if (has_room(ch)) {
        *res = ring_put(ch, elem);
        return 1;
    }
    return 0;
}

/* Receive now if possible; as try_send_locked. */
static int try_recv_locked(may_chan_t *ch, void *elem, int *res, may__parker **wk)
{
    if (ch->len) {
        ring_take(ch, elem);
        cnode *s = cq_claim(&ch->sendq);
        if (s) {
            ring_put(ch, s->elem); /* the slot just freed: cannot fail */
            *wk = may__wnode_claim(&s->wn, CN_DONE);
        }
        *res = 0;
        return 1;
    }
    cnode *s = cq_claim(&ch->sendq);
    if (s) {
        if (elem)
            copy_elem(elem, s->elem, ch->esz);
        *wk = may__wnode_claim(&s->wn, CN_DONE);
        *res = 0;
        return 1;
    }
    if (ch->closed) {
        *res = -EPIPE;
        return 1;
    }
    return 0;
}

/* try_send_locked (send) or try_recv_locked. */
static inline int try_op_locked(may_chan_t *ch, void *elem, int send, int *res, may__parker **wk)
{
    return send ? try_send_locked(ch, elem, res, wk) : try_recv_locked(ch, elem, res, wk);
}

static int chan_op(may_chan_t *ch, void *elem, int64_t deadline, int send)
{
    may__parker *wk = NULL;
    int res;
    spin_lock(&ch->lock);
    int done = try_op_locked(ch, elem, send, &res, &wk);
    if (done) {
        spin_unlock(&ch->lock);
        wake(wk);
        return res;
    }
    may__parker *p = may__self_parker();
    if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
        spin_unlock(&ch->lock);
        return may__wait_nowait_error(p);
    }
    cnode n;
    n.sel = NULL;
    n.elem = elem;
    may__wnode_arm(&n.wn, p);
    may__waitq *q = send ? &ch->sendq : &ch->recvq;
    may__waitq_push(q, &n.wn);
    spin_unlock(&ch->lock);

    may__wait_note(p, send ? "chan send" : "chan recv", ch);
    int r = may__wnode_park(&n.wn, deadline, 0);
    if (r < 0) {
        spin_lock(&ch->lock);
        bool gone = may__waitq_abandon_locked(q, &n.wn);
        spin_unlock(&ch->lock);
        if (gone)
            return r;
        /* Completed meanwhile: the wake is due and the operation happened. */
        return cnode_result(may__wnode_park_claimed(&n.wn));
    }
    /* relaxed: may__wnode_park read it with acquire */
    return cnode_result(atomic_load_explicit(&n.wn.state, memory_order_relaxed));
}

int may_chan_send(may_chan_t *ch, const void *elem, int64_t deadline)
{
    if (!ch || (!elem && ch->esz))
        return -EINVAL;
    return chan_op(ch, (void *)elem, deadline, 1);
}

int may_chan_recv(may_chan_t *ch, void *elem, int64_t deadline)
{
    if (!ch)
        return -EINVAL;
    return chan_op(ch, elem, deadline, 0);
}

/* may_chan_trysend (send) and may_chan_tryrecv. */
static int chan_try(may_chan_t *ch, void *elem, int send)
{
    may__parker *wk = NULL;
    int res;
    spin_lock(&ch->lock);
    int done = try_op_locked(ch, elem, send, &res, &wk);
    spin_unlock(&ch->lock);
    wake(wk);
    return done ? res : -EAGAIN;
}

int may_chan_trysend(may_chan_t *ch, const void *elem)
{
    if (!ch || (!elem && ch->esz))
        return -EINVAL;
    return chan_try(ch, (void *)elem, 1);
}

int may_chan_tryrecv(may_chan_t *ch, void *elem)
{
    if (!ch)
        return -EINVAL;
    return chan_try(ch, elem, 0);
}

int may_chan_close(may_chan_t *ch)
{
    if (!ch)
        return -EINVAL;
    spin_lock(&ch->lock);
    if (ch->closed) {
        spin_unlock(&ch->lock);
        return -EPIPE;
    }
    ch->closed = 1;
    /* Everyone blocked fails with -EPIPE (a blocked receiver means the
     * buffer is empty); they are woken after unlocking. */
    may__wakelist wl = { NULL };
    cnode *n;
    while ((n = cq_claim(&ch->recvq)) || (n = cq_claim(&ch->sendq)))
        may__wakelist_add(&wl, &n->wn, CN_CLOSED);
    spin_unlock(&ch->lock);
    may__wakelist_wake(&wl);
    return 0;
}

bool may_chan_is_closed(may_chan_t *ch)
{
    spin_lock(&ch->lock);
    bool c = ch->closed;
    spin_unlock(&ch->lock);
    return c;
}

size_t may_chan_len(may_chan_t *ch)
{
    spin_lock(&ch->lock);
    size_t n = ch->len;
    spin_unlock(&ch->lock);
    return n;
}

size_t may_chan_cap(may_chan_t *ch)
{
    return ch->cap;
}

/* ---- select ------------------------------------------------------------- */

#define SEL_STACK 16 /* cases handled without malloc */

static __thread uint64_t sel_rng;

/* Not inlined: it reads a thread-local, and the caller may park. */
static MAY_NOINLINE uint32_t sel_rand(void)
{
    uint64_t x = sel_rng;
    if (!x)
        x = (uint64_t)may__now() ^ (uint64_t)(uintptr_t)&sel_rng ^ 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sel_rng = x;
    return (uint32_t)(x >> 32);
}

static void lock_all(may_chan_t **chans, size_t k)
{
    for (size_t i = 0; i < k; i++)
        spin_lock(&chans[i]->lock);
}

static void unlock_all(may_chan_t **chans, size_t k)
{
    for (size_t i = k; i-- > 0;)
        spin_unlock(&chans[i]->lock);
}

int may_select(may_select_case_t *cases, size_t n, int64_t deadline)
{
    if (!cases && n)
        return -EINVAL;
    if (n > (size_t)INT32_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int op = cases[i].op;
        if (op != MAY_SELECT_NONE && op != MAY_SELECT_RECV && op != MAY_SELECT_SEND)
            return -EINVAL;
        if (op == MAY_SELECT_SEND && cases[i].chan && !cases[i].elem && cases[i].chan->esz)
            return -EINVAL;
    }

    uint32_t order_s[SEL_STACK];
    may_chan_t *chans_s[SEL_STACK];
    cnode nodes_s[SEL_STACK];
    uint32_t *order = order_s;
    may_chan_t **chans = chans_s;
    cnode *nodes = nodes_s;
    void *heap = NULL;
    if (n > SEL_STACK) {
        heap = malloc(n * (sizeof *order + sizeof *chans + sizeof *nodes));
        if (!heap)
            return -ENOMEM;
        nodes = heap;
        chans = (may_chan_t **)(nodes + n);
        order = (uint32_t *)(chans + n);
    }

    /* Poll order: the active cases, randomly permuted (Fisher-Yates).
     * Lock order: their channels sorted by address, without duplicates. */
    size_t k = 0, nch = 0;
    for (size_t i = 0; i < n; i++) {
        if (cases[i].op == MAY_SELECT_NONE || !cases[i].chan)
            continue;
        size_t j = sel_rand() % (uint32_t)(k + 1);
        order[k] = order[j];
        order[j] = (uint32_t)i;
        k++;
        may_chan_t *c = cases[i].chan;
        size_t at = nch;
        while (at > 0 && (uintptr_t)chans[at - 1] > (uintptr_t)c)
            at--;
        if (at > 0 && chans[at - 1] == c)
            continue;
        memmove(&chans[at + 1], &chans[at], (nch - at) * sizeof *chans);
        chans[at] = c;
        nch++;
    }

    int ret = 0;
    may__parker *p = may__self_parker();
    lock_all(chans, nch);
    for (size_t j = 0; j < k; j++) {
        uint32_t i = order[j];
        may_select_case_t *c = &cases[i];
        may__parker *wk = NULL;
        int res;
        int done = try_op_locked(c->chan, c->elem, c->op == MAY_SELECT_SEND, &res, &wk);
        if (done) {
            unlock_all(chans, nch);
            wake(wk);
            c->result = res;
            ret = (int)i;
            goto out;
        }
    }
    if (deadline == MAY_NOWAIT || may__wait_cancelled(p)) {
        unlock_all(chans, nch);
        ret = may__wait_nowait_error(p);
        goto out;
    }
    sel_waiter sw;
    atomic_store_explicit(&sw.fired, SEL_PENDING, memory_order_relaxed);
    for (size_t j = 0; j < k; j++) {
        uint32_t i = order[j];
        cnode *nd = &nodes[i];
        nd->sel = &sw;
        nd->elem = cases[i].elem;
        nd->idx = (int)i;
        may__wnode_arm(&nd->wn, p);
        may_chan_t *ch = cases[i].chan;
        may__waitq_push(cases[i].op == MAY_SELECT_SEND ? &ch->sendq : &ch->recvq, &nd->wn);
    }
    unlock_all(chans, nch);

    int fired, grant = 0;
    may__wait_note(p, "select", NULL);
    for (;;) {
        int r = may__wait(p, deadline, 0);
        if (r == 0) {
            fired = atomic_load_explicit(&sw.fired, memory_order_acquire);
            /* acquire: pairs with the claim (waitq.c) */
            if (fired >= 0 &&
                (grant = atomic_load_explicit(&nodes[fired].wn.state, memory_order_acquire)))
                break;
            continue; /* spurious */
        }
        int e = SEL_PENDING;
        if (atomic_compare_exchange_strong_explicit(&sw.fired, &e, SEL_ABANDONED,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            fired = -1;
            ret = r;
            break;
        }
        /* A case fired meanwhile: its wake is due, and it happened. */
        fired = e;
        grant = may__wnode_park_claimed(&nodes[fired].wn);
        break;
    }
    /* Withdraw the nodes still queued (no waker can claim them now, so a
     * node that is not WAITING any more is stale: owed no wake). */
    for (size_t j = 0; j < k; j++) {
        uint32_t i = order[j];
        if ((int)i == fired)
            continue;
        may_chan_t *ch = cases[i].chan;
        spin_lock(&ch->lock);
        may__waitq_abandon_locked(cases[i].op == MAY_SELECT_SEND ? &ch->sendq : &ch->recvq,
                                  &nodes[i].wn);
        spin_unlock(&ch->lock);
    }
    if (fired >= 0) {
        cases[fired].result = cnode_result(grant);
        ret = fired;
    }
out:
    free(heap);
    return ret;
}
