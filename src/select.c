/*
 * select.c - select over any event: channels, fds, deadlines, timers, a
 * coroutine's end, events and contexts (may_select_any, and may_select,
 * its channel-only form).
 *
 * Why not Go's way.  Go's selectgo locks every channel of the select at
 * once (in address order), polls the cases, and queues a node on each
 * while it still holds them all, so no case can become ready unseen.  That
 * works when every case is a channel and every lock is of one kind.  Here a
 * case may be an fd (a mutex in io.c), a timer (a spinlock taken under the
 * timer lock), a coroutine's end (a lock-free joiner slot), an event or a
 * context: no one order of all their locks exists.  So a select takes one
 * object's lock at a time, and claims a case that becomes ready while it is
 * half queued with the same CAS its wakers use:
 *
 *   loop:
 *     poll   (only when it must not wait, or starting over) each case, in
 *            a random order, under its object's lock; the first that can
 *            proceed is performed there and then (nothing of this select is
 *            queued anywhere, so no one else can complete one of its cases
 *            meanwhile)
 *     stop   if none was ready and it must not wait (MAY_NOWAIT, the
 *            deadline passed, the caller is cancelled)
 *     queue  a node per case, in a random order, under the object's lock,
 *            polling it again on the way (one lock round per case in all:
 *            the first case polled is performed at once if it can be);
 *            a case found ready once nodes are queued is claimed by the
 *            select itself, with the same CAS a waker uses (so no waker
 *            can complete another case), performed there, and the nodes
 *            queued so far withdrawn
 *     park   until a waker completes one case; or, on a timeout or a
 *            cancellation, give up the nodes and go round again (ready
 *            cases still win over the error, by the cancellation contract)
 *
 * One case happens.  The nodes share a may__sel whose `fired' goes from
 * PENDING to the index of the case that happened, by one CAS: a waker
 * takes a select's node only by winning it (may__wnode_take, waitq.h) and
 * drops the node as STALE otherwise; the select gives up by CASing PENDING
 * to ABANDONED, and when that CAS fails a case did happen: it waits for
 * that waker's wake (the waker may still read the node) and takes the case.
 * Giving up ends with each object's withdraw step, under its lock: a node
 * still queued is unlinked; a STALE one is already off its queue and owed
 * nothing.  Nodes live in the select's frame (or a malloc'd array for more
 * than SEL_STACK cases), and nobody touches them once the select returns.
 *
 * Fairness: the order is a fresh random permutation per call (a xorshift
 * seed per thread and call, stepped as an LCG per case), so among cases
 * ready together each is chosen with equal chance.  A select never meets itself: a channel's reg step ignores
 * the select's own nodes, so a select that sends and receives on one
 * channel waits for someone else, as in Go.
 *
 * Progress.  A select starts over only when a case it claimed could not
 * happen after all (its partner on a channel was a select done elsewhere
 * in between), or an fd turned ready between its poll and its queueing:
 * the next round's poll then performs whatever is ready.  Two selects that
 * are each other's only partners on rendezvous channels (tests:
 * test_select_any "select pairs") make progress: a select that finds the
 * other's node claims its own case and then the other's node, which can
 * fail only if the other was completed by someone else.
 *
 * Deadlines: the park's deadline is the earliest of the call's and of the
 * DEADLINE cases'; when it passes the select starts over, and the poll
 * finds the DEADLINE case ready (or the call's deadline past).
 *
 * Locks: one object lock at a time, never across a park (each object's
 * lock order is its own file's).  Memory ordering: fired is CASed acq_rel;
 * what a waker writes for the case (an element, a grant) is published by
 * the node's claim (release) and read after the wake (acquire).
 */
#include "internal.h"

#include <string.h>
#include <time.h>

#include "select.h"
#include "waitq.h"

#define SEL_STACK 16 /* cases handled without malloc */
/* A deadline further than this past the coarse clock has not passed (the
 * coarse clock lags the exact one by a tick, 1 to 10 ms, at most). */
#define SEL_COARSE_SLACK ((int64_t)50 * 1000000)

typedef union snode {
    may__wnode wn;
    may__cnode c;
    may__io_sel io;
} snode;

static __thread uint64_t sel_rng;

/* A random seed per select (xorshift64 per thread).  Not inlined: it
 * reads a thread-local, and the caller may park and resume elsewhere. */
static MAY_NOINLINE uint64_t sel_seed(void)
{
    uint64_t x = sel_rng;
    if (!x)
        x = (uint64_t)may__now() ^ (uint64_t)(uintptr_t)&sel_rng ^ 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sel_rng = x;
    return x;
}

/* A uniform index below m from the seed, stepped as an LCG (its high bits;
 * multiply-shift instead of a division). */
static inline uint32_t sel_below(uint64_t *r, uint32_t m)
{
    *r = *r * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(((*r >> 32) * (uint64_t)m) >> 32);
}

/* Whether c can ever be ready (a NULL object, a negative fd or deadline:
 * never, as a nil channel in Go); -EINVAL for a malformed case. */
static int case_active(const may_case_t *c)
{
    switch (c->op) {
    case MAY_CASE_NONE:
        return 0;
    case MAY_CASE_RECV:
        return c->chan != NULL;
    case MAY_CASE_SEND:
        if (!c->chan)
            return 0;
        return may__chan_elem_ok(c->chan, c->elem) ? 1 : -EINVAL;
    case MAY_CASE_FD:
        if (!c->events || (c->events & ~(MAY_READ | MAY_WRITE)))
            return -EINVAL;
        return c->fd >= 0;
    case MAY_CASE_DEADLINE:
        return c->deadline >= 0;
    case MAY_CASE_TIMER:
        return c->timer != NULL;
    case MAY_CASE_EVENT:
        return c->event != NULL;
    case MAY_CASE_CTX:
        return c->ctx != NULL;
    case MAY_CASE_JOIN:
        if (!c->co)
            return 0;
        if (c->co == may_self() || atomic_load(&c->co->join_state) == MAY__JS_DETACHED ||
            c->co->scope)
            return -EINVAL;
        return 1;
    default:
        return -EINVAL;
    }
}

/* Whether deadline has passed.  *now caches the clock for one pass (0:
 * not read yet; -1: read the exact clock only).  Most deadlines are far
 * off: when the coarse clock (a few ns to read, a tick behind at most)
 * says so with room to spare, the exact clock is not read at all. */
static int deadline_passed(int64_t deadline, int64_t *now)
{
    if (*now <= 0) {
        if (*now == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
            int64_t coarse = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            if (deadline > coarse + SEL_COARSE_SLACK)
                return 0;
        }
        *now = may__now();
    }
    return *now >= deadline;
}

/* Perform c now if it can proceed: 1 with *res, else 0. */
static int case_poll(may_case_t *c, snode *nd, int64_t *now)
{
    int r;
    switch (c->op) {
    case MAY_CASE_RECV:
    case MAY_CASE_SEND:
        return may__chan_sel_poll(c->chan, c->elem, c->op == MAY_CASE_SEND, &c->result);
    case MAY_CASE_FD:
        r = may__io_sel_poll(c->fd, c->events, &nd->io);
        if (!r)
            return 0;
        c->result = r;
        return 1;
    case MAY_CASE_DEADLINE:
        if (!deadline_passed(c->deadline, now))
            return 0;
        c->result = 0;
        return 1;
    case MAY_CASE_TIMER:
        c->result = 0;
        return may__timer_sel_poll(c->timer);
    case MAY_CASE_EVENT:
        c->result = 0;
        return may__event_sel_poll(c->event);
    case MAY_CASE_CTX:
        if (!may__event_sel_poll(may__ctx_done(c->ctx)))
            return 0;
        c->result = may_ctx_err(c->ctx);
        return 1;
    case MAY_CASE_JOIN:
        return may__join_sel_poll(c->co, (void **)c->elem, &c->result);
    }
    return 0;
}

/* Poll c and queue its node in one go: a MAY__STEP_* (select.h), or
 * -errno.  perform: nothing of the select is queued yet, so a case that
 * can proceed is performed as case_poll would; without, it is claimed for
 * this select first (may__sel_claim_self). */
static int case_step(may_case_t *c, snode *nd, int perform, int64_t *now)
{
    int r;
    switch (c->op) {
    case MAY_CASE_RECV:
    case MAY_CASE_SEND:
        nd->c.elem = c->elem;
        return may__chan_sel_step(c->chan, &nd->c, c->op == MAY_CASE_SEND, perform, &c->result);
    case MAY_CASE_FD:
        if ((r = may__io_sel_poll(c->fd, c->events, &nd->io)) != 0) {
            if (!perform && !may__sel_claim_self(&nd->wn))
                return MAY__STEP_LOST;
            c->result = r;
            return MAY__STEP_DONE;
        }
        /* readiness since the poll: its events unknown, poll again */
        return may__io_sel_reg(&nd->io) ? MAY__STEP_RETRY : MAY__STEP_QUEUED;
    case MAY_CASE_DEADLINE:
        if (!deadline_passed(c->deadline, now))
            return MAY__STEP_QUEUED; /* nothing to queue: the park's deadline */
        if (!perform && !may__sel_claim_self(&nd->wn))
            return MAY__STEP_LOST;
        c->result = 0;
        return MAY__STEP_DONE;
    case MAY_CASE_TIMER:
        c->result = 0;
        return may__timer_sel_step(c->timer, &nd->wn, perform);
    case MAY_CASE_EVENT:
        c->result = 0;
        return may__event_sel_step(c->event, &nd->wn, perform);
    case MAY_CASE_CTX:
        r = may__event_sel_step(may__ctx_done(c->ctx), &nd->wn, perform);
        if (r == MAY__STEP_DONE)
            c->result = may_ctx_err(c->ctx);
        return r;
    case MAY_CASE_JOIN:
        if (perform && may__join_sel_poll(c->co, (void **)c->elem, &c->result))
            return MAY__STEP_DONE;
        if ((r = may__join_sel_reg(c->co, &nd->wn)) != 1)
            return r; /* queued (0), or -EINVAL */
        /* it has ended (and nothing is queued in its slot) */
        if (!perform && !may__sel_claim_self(&nd->wn))
            return MAY__STEP_LOST;
        return may__join_sel_poll(c->co, (void **)c->elem, &c->result) ? MAY__STEP_DONE
                                                                         : MAY__STEP_VOID;
    }
    return MAY__STEP_QUEUED;
}

static void case_withdraw(may_case_t *c, snode *nd)
{
    switch (c->op) {
    case MAY_CASE_RECV:
    case MAY_CASE_SEND:
        may__chan_sel_withdraw(c->chan, &nd->c, c->op == MAY_CASE_SEND);
        return;
    case MAY_CASE_FD:
        may__io_sel_withdraw(&nd->io);
        return;
    case MAY_CASE_TIMER:
        may__timer_sel_withdraw(c->timer, &nd->wn);
        return;
    case MAY_CASE_EVENT:
        may__event_sel_withdraw(c->event, &nd->wn);
        return;
    case MAY_CASE_CTX:
        may__event_sel_withdraw(may__ctx_done(c->ctx), &nd->wn);
        return;
    case MAY_CASE_JOIN:
        may__join_sel_withdraw(c->co, &nd->wn);
        return;
    }
}

/* The result of the case a waker completed with grant. */
static int case_result(may_case_t *c, int grant)
{
    switch (c->op) {
    case MAY_CASE_RECV:
    case MAY_CASE_SEND:
        return may__chan_sel_result(grant);
    case MAY_CASE_FD:
        return grant;
    case MAY_CASE_CTX:
        return may_ctx_err(c->ctx);
    case MAY_CASE_JOIN:
        return may__join_sel_reap(c->co, (void **)c->elem);
    }
    return 0;
}

/* Give up: no case may happen any more (-1), unless one did already, by a
 * waker's CAS; then wait for that waker's wake (it may still read the
 * node) and return the case's index. */
static int sel_give_up(may__sel *sel, may__parker *p)
{
    int e = MAY__SEL_PENDING;
    if (atomic_compare_exchange_strong_explicit(&sel->fired, &e, MAY__SEL_ABANDONED,
                                                memory_order_acq_rel, memory_order_acquire))
        return -1;
    may__wait_claimed(p);
    return e;
}

int may_select_any(may_case_t *cases, size_t n, int64_t deadline)
{
    if (!cases && n)
        return -EINVAL;
    if (n > (size_t)INT32_MAX)
        return -EINVAL;
    uint32_t order_s[SEL_STACK];
    snode nodes_s[SEL_STACK];
    uint32_t *order = order_s;
    snode *nodes = nodes_s;
    void *heap = NULL;
    if (n > SEL_STACK) {
        heap = malloc(n * (sizeof *order + sizeof *nodes));
        if (!heap)
            return -ENOMEM;
        nodes = heap;
        order = (uint32_t *)(nodes + n);
    }

    /* The active cases in a random order (Fisher-Yates, inside out); the
     * park's deadline: the earliest of the call's and the DEADLINE cases'. */
    size_t k = 0;
    int64_t park_dl = deadline;
    int ret = 0;
    uint64_t rnd = sel_seed();
    for (size_t i = 0; i < n; i++) {
        int a = case_active(&cases[i]);
        if (a < 0) {
            ret = a;
            goto out;
        }
        if (!a)
            continue;
        size_t j = sel_below(&rnd, (uint32_t)(k + 1));
        order[k] = order[j];
        order[j] = (uint32_t)i;
        k++;
        if (cases[i].op == MAY_CASE_DEADLINE &&
            (park_dl < 0 || cases[i].deadline < park_dl))
            park_dl = cases[i].deadline == 0 ? 1 : cases[i].deadline;
    }

    may__parker *p = may__self_parker();
    may__sel sel;
    int timed_out = 0, again = 0;
    for (;;) {
        /* Without waiting (MAY_NOWAIT, cancelled, the deadline passed),
         * or starting over: a poll alone first. */
        int64_t now = timed_out ? -1 : 0;
        int stop = deadline == MAY_NOWAIT || may__wait_cancelled(p) ||
                   (timed_out && deadline > 0 && may__now() >= deadline);
        if (stop || again) {
            for (size_t j = 0; j < k; j++) {
                uint32_t i = order[j];
                if (case_poll(&cases[i], &nodes[i], &now)) {
                    ret = (int)i;
                    goto out;
                }
            }
            if (stop) {
                ret = may__wait_nowait_error(p);
                goto out;
            }
        }

        /* Poll and queue: each case under its object's lock once; the
         * first one ready is performed while nothing is queued yet. */
        atomic_store_explicit(&sel.fired, MAY__SEL_PENDING, memory_order_relaxed);
        /* Once, before any node can be seen: a per-node arm would clear
         * the wake of a case claimed while later ones are being queued. */
        may__wait_prepare(p);
        size_t nreg = 0;
        int r = 0;
        for (; nreg < k; nreg++) {
            uint32_t i = order[nreg];
            may__wnode *w = &nodes[i].wn;
            w->p = p;
            w->sel = &sel;
            w->idx = (int)i;
            /* relaxed: the object's lock publishes it with the node */
            atomic_store_explicit(&w->state, MAY__WN_WAITING, memory_order_relaxed);
            if ((r = case_step(&cases[i], &nodes[i], nreg == 0, &now)) != MAY__STEP_QUEUED)
                break;
        }
        if (r == MAY__STEP_DONE || r == MAY__STEP_VOID) {
            /* The select claimed a case itself (or, nothing queued yet,
             * performed one): no waker can complete another, and the
             * nodes queued so far are withdrawn (or dropped as stale). */
            for (size_t j = 0; j < nreg; j++)
                case_withdraw(&cases[order[j]], &nodes[order[j]]);
            if (r == MAY__STEP_DONE) {
                ret = (int)order[nreg];
                goto out;
            }
            again = 1; /* it could not happen after all: start over */
            continue;
        }
        int fired;
        if (r == MAY__STEP_LOST) {
            /* A waker completed a queued case first: its wake is due. */
            fired = atomic_load_explicit(&sel.fired, memory_order_acquire);
            may__wait_claimed(p);
        } else {
            if (r == MAY__STEP_QUEUED) {
                may__wait_note(p, "select", NULL);
                r = may__wait(p, park_dl, 0);
            } else if (r == MAY__STEP_RETRY) {
                r = -EAGAIN;
            }
            /* acquire: pairs with the winner's CAS, then with its claim
             * (waitq.c); a woken select whose case is claimed is done */
            if (r != 0 || (fired = atomic_load_explicit(&sel.fired, memory_order_acquire)) < 0 ||
                atomic_load_explicit(&nodes[fired].wn.state, memory_order_acquire) ==
                    MAY__WN_WAITING)
                fired = sel_give_up(&sel, p); /* timeout, cancel, start over, stray wake */
        }
        /* Withdraw the nodes queued (none can be claimed any more). */
        for (size_t j = 0; j < nreg; j++) {
            uint32_t i = order[j];
            if ((int)i != fired)
                case_withdraw(&cases[i], &nodes[i]);
        }
        if (fired >= 0) {
            /* acquire: pairs with the claim; the wake has come */
            int grant = atomic_load_explicit(&nodes[fired].wn.state, memory_order_acquire);
            cases[fired].result = case_result(&cases[fired], grant);
            ret = fired;
            goto out;
        }
        if (r < 0 && r != -EAGAIN && r != -ETIMEDOUT && r != -ECANCELED) {
            ret = r; /* a reg step's error (a JOIN someone else joins) */
            goto out;
        }
        if (r == -ETIMEDOUT)
            timed_out = 1;
        again = 1;
    }
out:
    free(heap);
    return ret;
}

int may_select(may_select_case_t *cases, size_t n, int64_t deadline)
{
    if (!cases && n)
        return -EINVAL;
    may_case_t cs_s[SEL_STACK];
    may_case_t *cs = cs_s;
    if (n > SEL_STACK) {
        if (n > SIZE_MAX / sizeof *cs || !(cs = malloc(n * sizeof *cs)))
            return -ENOMEM;
    }
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        int op = cases[i].op;
        if (op != MAY_SELECT_NONE && op != MAY_SELECT_RECV && op != MAY_SELECT_SEND) {
            ret = -EINVAL;
            goto out;
        }
        /* MAY_SELECT_* and MAY_CASE_* agree on NONE, RECV and SEND */
        cs[i] = (may_case_t){ .op = op, .chan = cases[i].chan, .elem = cases[i].elem };
    }
    ret = may_select_any(cs, n, deadline);
    if (ret >= 0)
        cases[ret].result = cs[ret].result;
out:
    if (cs != cs_s)
        free(cs);
    return ret;
}
