/*
 * select.h - what src/select.c needs from each kind of object it waits on.
 *
 * What select needs of each kind of object, each step under the object's
 * own lock:
 *   poll      (nothing of the select is queued anywhere): perform the case
 *             now if it can be, and say so (1), else 0;
 *   step      poll and queue in one go: with perform (nothing of the select
 *             queued yet) as poll, and if the case cannot proceed, queue its
 *             node; without (nodes queued elsewhere already), a case
 *             that can proceed is claimed for the select itself (its CAS,
 *             may__sel_claim_self) and performed, or the node is queued;
 *   withdraw  take the node off its queue if a waker has not (a node a
 *             waker dropped is STALE, owed no wake).
 * The step's answers are the MAY__STEP_* below.
 * fds and a coroutine's end have a separate reg step (0 queued, 1 ready,
 * or -errno) instead of step; select.c claims them itself.
 * A waker claims a select's node only through may__wnode_take (waitq.h),
 * so exactly one case of a select happens.  The essay is in select.c.
 */
#ifndef MAY_SELECT_H
#define MAY_SELECT_H
#include "internal.h"
#include "waitq.h"

/* What a select's step (poll and queue in one go) answers. */
enum {
    MAY__STEP_QUEUED = 0, /* not ready: the case's node is queued */
    MAY__STEP_DONE = 1,   /* performed (claimed by the select itself when
                             nodes were queued already) */
    MAY__STEP_RETRY = 2,  /* turned ready where it cannot be claimed: start over */
    MAY__STEP_VOID = 3,   /* claimed, but it could not happen after all:
                             start over */
    MAY__STEP_LOST = 4,   /* a waker completed another case first */
};

/* A channel's waiter node (chan.c). */
typedef struct may__cnode {
    may__wnode wn; /* state: CN_* grants of chan.c */
    void *elem;    /* send: the source; recv: the destination or NULL */
} may__cnode;

/* An fd's waiter node (io.c). */
typedef struct may__io_waiter {
    may__wnode wn; /* its grant: the fired MAY__IO_* bits, or -EBADF */
    int events;    /* MAY__IO_* wanted */
} may__io_waiter;

/* What select keeps for an fd case between its poll and its reg. */
typedef struct may__io_sel {
    may__io_waiter w;
    void *ent;      /* io.c's fd entry */
    uint32_t gen, rs, ws;
} may__io_sel;

/* chan.c: 1 with *res when done (poll) or ready (reg), else 0. */
int may__chan_sel_poll(may_chan_t *ch, void *elem, int send, int *res);
int may__chan_sel_step(may_chan_t *ch, may__cnode *n, int send, int perform, int *res);
void may__chan_sel_withdraw(may_chan_t *ch, may__cnode *n, int send);
int may__chan_sel_result(int grant);
bool may__chan_elem_ok(const may_chan_t *ch, const void *elem);
/* the channel-only may_select's fast path (chan.c, all locks at once) */

/* io.c: poll returns the ready MAY_* bits (> 0), 0, or -errno (-EBADF...). */
int may__io_sel_poll(int fd, int events, may__io_sel *st);
int may__io_sel_reg(may__io_sel *st);
void may__io_sel_withdraw(may__io_sel *st);

/* timer.c */
int may__timer_sel_poll(may_timer_t *t);
int may__timer_sel_step(may_timer_t *t, may__wnode *n, int perform);
void may__timer_sel_withdraw(may_timer_t *t, may__wnode *n);

/* sync.c (events; a context's done is an event) */
int may__event_sel_poll(may_event_t *e);
int may__event_sel_step(may_event_t *e, may__wnode *n, int perform);
void may__event_sel_withdraw(may_event_t *e, may__wnode *n);

/* coroutine.c (a coroutine's end, through its joiner slot) */
int may__join_sel_poll(may_co_t *co, void **result, int *res);
int may__join_sel_reg(may_co_t *co, may__wnode *n);
void may__join_sel_withdraw(may_co_t *co, may__wnode *n);
int may__join_sel_reap(may_co_t *co, void **result);

/* ctx.c */
may_event_t *may__ctx_done(may_ctx_t *ctx);

#endif
