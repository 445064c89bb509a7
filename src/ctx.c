/*
 * ctx.c - contexts: a cancellation tree, as Go's context package.
 *
 * Why.  A scope cancels the children it owns when its owner is cancelled;
 * a server needs more: a request's deadline that reaches every coroutine
 * the request started (owned or detached), a reason that code can read,
 * and cancelling a subtree of work without cancelling the coroutine that
 * asks for it.  Contexts give that; scopes stay what they are (ownership
 * and joining), and the two nest: a coroutine cancelled through its
 * context cancels its scopes' children as any cancelled coroutine does.
 *
 * Model.  A context has a parent (or none), children, and the coroutines
 * that run under it (spawned with .ctx, or by a coroutine under it).  It
 * ends once, by may_ctx_cancel, by its deadline (a timer node in the
 * runtime's heap), or by its parent ending; ending marks err and cause in
 * the whole subtree, fires each context's done event (what may_ctx_wait
 * and a select's MAY_CASE_CTX wait for) and cancels every coroutine under
 * it with may_cancel.  A coroutine spawned under an ended context is
 * cancelled before it starts (so it never runs, as may_cancel's contract
 * says).  Effective deadline: the earlier of its own and its parent's; a
 * child arms its own timer only when its deadline is earlier than the
 * parent's (the parent's timer reaches it through the tree otherwise).
 *
 * Lifetime.  refs counts the handle, the children and the coroutines; the
 * memory goes when it drops to zero, which unlinks the context from its
 * parent (dropping the parent's ref, and so on up).  may_ctx_free ends the
 * context first, as Go's `defer cancel()`, and disarms its timer, waiting
 * for a fire in progress (the timer's fire takes ctx_lock, so free must
 * not hold it while disarming).
 *
 * Invariants (ctx_lock): err != 0 implies err != 0 in every descendant; a
 * coroutine is on exactly the list of the context in its mctx until it
 * ends (may__ctx_detach, from may__co_finish after its cleanup handlers,
 * which may still ask may_ctx_current).
 *
 * Lock order: ctx_lock (rank CTX) is outside the scope locks (may_cancel
 * takes them) and the objects' (the done event's spinlock); the timer's
 * fire runs after the timer lock is released (a deferred node, timer.c).
 * One lock for every tree: contexts are made and ended per request, not
 * per operation, and a cancellation walks a subtree under it; a lock per
 * context, as Go has, is the step if it ever shows in a profile.
 *
 * Memory ordering: err is stored with release after cause, read with
 * acquire by may_ctx_err / may_ctx_cause without the lock.
 */
#include "internal.h"

#include "select.h"

struct may_ctx {
    may__tdefer dl;         /* its own deadline's timer node (timer.c) */
    struct may_ctx *parent; /* holds a ref of the parent */
    struct may_ctx *child;  /* first child */
    struct may_ctx *next, *prev; /* siblings */
    struct may_co *cos;     /* coroutines under it (co->ctx_next/prev) */
    may_event_t *done;      /* fired when it ends */
    _Atomic int err;        /* 0, -ECANCELED, -ETIMEDOUT */
    int cause;              /* written before err */
    int64_t deadline;       /* effective deadline, MAY_FOREVER: none */
    long refs;              /* handle + children + coroutines */
};

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

may_event_t *may__ctx_done(may_ctx_t *ctx)
{
    return ctx->done;
}

/* End ctx's subtree with err and cause (ctx_lock held); the events fire
 * and the coroutines are cancelled under it (their ranks are inner). */
static void ctx_end_locked(may_ctx_t *ctx, int err, int cause)
{
    MAY__ASSERT_HELD(MAY__RANK_CTX, &ctx_lock);
    may_ctx_t *c = ctx;
    for (;;) {
        if (!atomic_load_explicit(&c->err, memory_order_relaxed)) {
            c->cause = cause;
            /* release: pairs with the acquire in may_ctx_err / cause */
            atomic_store_explicit(&c->err, err, memory_order_release);
            may_event_fire(c->done);
            for (struct may_co *co = c->cos; co; co = co->ctx_next)
                may_cancel(co);
        }
        /* next in pre-order, within ctx's subtree */
        if (c->child) {
            c = c->child;
            continue;
        }
        while (c != ctx && !c->next)
            c = c->parent;
        if (c == ctx)
            return;
        c = c->next;
    }
}

/* Drop one ref (ctx_lock held); free what reaches zero, up the tree. */
static void ctx_unref_locked(may_ctx_t *ctx)
{
    while (ctx && --ctx->refs == 0) {
        may_ctx_t *parent = ctx->parent;
        if (parent) {
            if (ctx->prev)
                ctx->prev->next = ctx->next;
            else
                parent->child = ctx->next;
            if (ctx->next)
                ctx->next->prev = ctx->prev;
        }
        may_event_free(ctx->done);
        free(ctx);
        ctx = parent;
    }
}

/* The deadline's fire (timer.c, deferred: the timer lock is released). */
static void ctx_deadline_fire(may__tnode *tn)
{
    may_ctx_t *ctx = (may_ctx_t *)(void *)((char *)tn - offsetof(may_ctx_t, dl.tn));
    may__lock(&ctx_lock, MAY__RANK_CTX);
    ctx_end_locked(ctx, -ETIMEDOUT, -ETIMEDOUT);
    may__unlock(&ctx_lock, MAY__RANK_CTX);
}

int may_ctx_new(may_ctx_t **out, may_ctx_t *parent, int64_t deadline)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (deadline < -1)
        return -EINVAL;
    int r = may__ensure_started(); /* the workers run the deadline's timer */
    if (r < 0)
        return r;
    may_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return -ENOMEM;
    if ((r = may_event_new(&ctx->done)) < 0) {
        free(ctx);
        return r;
    }
    may__tnode_init(&ctx->dl.tn, ctx_deadline_fire, 1);
    ctx->refs = 1;
    int arm = deadline >= 0;
    may__lock(&ctx_lock, MAY__RANK_CTX);
    ctx->deadline = deadline;
    if (parent) {
        ctx->parent = parent;
        parent->refs++;
        ctx->next = parent->child;
        if (parent->child)
            parent->child->prev = ctx;
        parent->child = ctx;
        if (parent->deadline >= 0 && (deadline < 0 || parent->deadline <= deadline)) {
            ctx->deadline = parent->deadline;
            arm = 0; /* the parent's timer ends it */
        }
        int perr = atomic_load_explicit(&parent->err, memory_order_relaxed);
        if (perr) {
            ctx_end_locked(ctx, perr, parent->cause);
            arm = 0;
        }
    }
    if (arm && deadline <= may__now()) { /* passed already: ended from the start */
        ctx_end_locked(ctx, -ETIMEDOUT, -ETIMEDOUT);
        arm = 0;
    }
    may__unlock(&ctx_lock, MAY__RANK_CTX);
    if (arm)
        may__tnode_arm(&ctx->dl.tn, deadline);
    *out = ctx;
    return 0;
}

int may_ctx_cancel(may_ctx_t *ctx, int cause)
{
    if (!ctx)
        return -EINVAL;
    may__lock(&ctx_lock, MAY__RANK_CTX);
    int r = -EALREADY;
    if (!atomic_load_explicit(&ctx->err, memory_order_relaxed)) {
        ctx_end_locked(ctx, -ECANCELED, cause ? cause : -ECANCELED);
        r = 0;
    }
    may__unlock(&ctx_lock, MAY__RANK_CTX);
    return r;
}

int may_ctx_err(const may_ctx_t *ctx)
{
    if (!ctx)
        return -EINVAL;
    /* acquire: pairs with the release in ctx_end_locked */
    return atomic_load_explicit(&ctx->err, memory_order_acquire);
}

int may_ctx_cause(const may_ctx_t *ctx)
{
    if (!ctx)
        return -EINVAL;
    /* acquire: pairs with the release in ctx_end_locked; cause before it */
    if (!atomic_load_explicit(&ctx->err, memory_order_acquire))
        return 0;
    return ctx->cause;
}

int64_t may_ctx_deadline(const may_ctx_t *ctx)
{
    if (!ctx)
        return -EINVAL;
    return ctx->deadline; /* set before the handle was returned, never changed */
}

int may_ctx_wait(may_ctx_t *ctx, int64_t deadline)
{
    if (!ctx)
        return -EINVAL;
    return may_event_wait(ctx->done, deadline);
}

may_ctx_t *may_ctx_current(void)
{
    struct may_co *co = may__cur_co();
    return co ? co->mctx : NULL;
}

void may_ctx_free(may_ctx_t *ctx)
{
    if (!ctx)
        return;
    may__lock(&ctx_lock, MAY__RANK_CTX);
    if (!atomic_load_explicit(&ctx->err, memory_order_relaxed))
        ctx_end_locked(ctx, -ECANCELED, -ECANCELED);
    may__unlock(&ctx_lock, MAY__RANK_CTX);
    may__tnode_disarm(&ctx->dl.tn); /* waits out a fire in progress */
    may__lock(&ctx_lock, MAY__RANK_CTX);
    ctx_unref_locked(ctx);
    may__unlock(&ctx_lock, MAY__RANK_CTX);
}

MAY_NOINLINE void may__ctx_attach(may_ctx_t *ctx, struct may_co *co)
{
    may__lock(&ctx_lock, MAY__RANK_CTX);
    co->mctx = ctx;
    ctx->refs++;
    co->ctx_prev = NULL;
    co->ctx_next = ctx->cos;
    if (ctx->cos)
        ctx->cos->ctx_prev = co;
    ctx->cos = co;
    if (atomic_load_explicit(&ctx->err, memory_order_relaxed))
        atomic_store(&co->cancelled, 1); /* not started: it never runs */
    may__unlock(&ctx_lock, MAY__RANK_CTX);
}

MAY_NOINLINE void may__ctx_detach(struct may_co *co)
{
    may_ctx_t *ctx = co->mctx;
    may__lock(&ctx_lock, MAY__RANK_CTX);
    if (co->ctx_prev)
        co->ctx_prev->ctx_next = co->ctx_next;
    else
        ctx->cos = co->ctx_next;
    if (co->ctx_next)
        co->ctx_next->ctx_prev = co->ctx_prev;
    ctx_unref_locked(ctx);
    may__unlock(&ctx_lock, MAY__RANK_CTX);
    co->mctx = NULL;
}

void may__ctx_hold(int on)
{
    if (on)
        may__lock(&ctx_lock, MAY__RANK_CTX);
    else
        may__unlock(&ctx_lock, MAY__RANK_CTX);
}
