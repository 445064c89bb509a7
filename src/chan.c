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
 * Select (src/select.c) queues one node per case, all of one select,
 * marked with its may__sel; a waker that pops such a node claims it only
 * by winning the select's CAS (may__wnode_take, waitq.h), else it drops
 * the node as STALE and looks at the next.  So exactly one case of a
 * select completes.  The three steps select needs from a channel are at
 * the end of this file: poll (perform now), reg (say it became ready, or
 * queue the node), withdraw.
 *
 * Lock order: a channel lock is a leaf (select holds one at a time), except that may__wake,
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

#include "select.h"
#include "spin.h"
#include "waitq.h"

/* ---- waiter nodes ------------------------------------------------------- */

/* A node's grants (waitq.h). */
enum {
    CN_DONE = 1,   /* the operation happened */
    CN_CLOSED = 2, /* it failed with -EPIPE: the channel was closed */
};

typedef may__cnode cnode;

/* Pop the first node whose waiter we can claim; stale select nodes are
 * dropped on the way.  Channel lock held. */
static inline cnode *cq_claim(may__waitq *q)
{
    may__wnode *w = may__waitq_take(q);
    return w ? may__wnode_entry(w, cnode, wn) : NULL;
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

/* ---- select's side (src/select.c) ---------------------------------------- */

int may__chan_sel_poll(may_chan_t *ch, void *elem, int send, int *res)
{
    may__parker *wk = NULL;
    spin_lock(&ch->lock);
    int done = try_op_locked(ch, elem, send, res, &wk);
    spin_unlock(&ch->lock);
    wake(wk);
    return done;
}

/* Whether q holds a node some waker could claim other than self's own
 * (a select never meets itself): a plain one, or one of a select that is
 * still pending.  Channel lock held. */
static int cq_has_peer(const may__waitq *q, const may__sel *self)
{
    for (const may__wnode *w = q->head; w; w = w->next) {
        if (!w->sel)
            return 1;
        /* relaxed: a hint; the claim itself is the CAS */
        if (w->sel != self &&
            atomic_load_explicit(&w->sel->fired, memory_order_relaxed) == MAY__SEL_PENDING)
            return 1;
    }
    return 0;
}

int may__chan_sel_step(may_chan_t *ch, cnode *n, int send, int perform, int *res)
{
    may__parker *wk = NULL;
    spin_lock(&ch->lock);
    if (perform) {
        if (try_op_locked(ch, n->elem, send, res, &wk))
            goto done;
    } else if (send ? ch->closed || has_room(ch) || cq_has_peer(&ch->recvq, n->wn.sel)
                    : ch->len || ch->closed || cq_has_peer(&ch->sendq, n->wn.sel)) {
        /* Ready, with nodes of this select queued elsewhere: the select
         * claims this case for itself, then performs it (its own nodes met
         * on the way are dropped as stale: its fired is taken) */
        if (!may__sel_claim_self(&n->wn)) {
            spin_unlock(&ch->lock);
            return MAY__STEP_LOST;
        }
        if (try_op_locked(ch, n->elem, send, res, &wk))
            goto done;
        spin_unlock(&ch->lock);
        return MAY__STEP_VOID; /* the partner was a select done elsewhere */
    }
    may__waitq_push(send ? &ch->sendq : &ch->recvq, &n->wn);
    spin_unlock(&ch->lock);
    return MAY__STEP_QUEUED;
done:
    spin_unlock(&ch->lock);
    wake(wk);
    return MAY__STEP_DONE;
}

void may__chan_sel_withdraw(may_chan_t *ch, cnode *n, int send)
{
    spin_lock(&ch->lock);
    may__waitq_abandon_locked(send ? &ch->sendq : &ch->recvq, &n->wn);
    spin_unlock(&ch->lock);
}

int may__chan_sel_result(int grant)
{
    return cnode_result(grant);
}

bool may__chan_elem_ok(const may_chan_t *ch, const void *elem)
{
    return elem || !ch->esz;
}
