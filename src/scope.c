/*
 * scope.c - structured concurrency.
 *
 * A scope holds the handles of the coroutines spawned into it, in a list
 * under one global recursive lock (scope_lock; cancellation walks scopes
 * recursively: cancelling a child cancels the scopes it owns).  The owner
 * (the coroutine that made the scope) keeps a list of its scopes, so
 * may_cancel(owner) reaches every child.  A child stays on the list until it
 * has ended; only then is it unlinked and its handle released, so a cancel
 * can always reach a running child.
 *
 * Invariant: after may_scope_wait returns 0.. or -ECANCELED, or after
 * may_scope_free, no child spawned before the call is still running.
 */
#include "internal.h"

#include <string.h>

struct may_scope {
    may_co_t *owner;          /* NULL when made on a plain thread */
    may_co_t *children;       /* not yet joined, newest first */
    int panicked;             /* children that panicked, since last wait */
    struct may_scope *sib;    /* next scope of the same owner */
};

static pthread_mutex_t scope_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

/* The fork handlers (src/fork.c): take (1) or release (0) the scope lock;
 * in the child, -1 releases it by making it anew, since the lock is
 * recursive and a recursive mutex records its owner's thread id, which the
 * child's thread does not have (an unlock there fails with EPERM and
 * leaves it held). */
void may__scope_hold(int on)
{
    if (on > 0) {
        may__lock(&scope_lock, MAY__RANK_SCOPE);
    } else if (on == 0) {
        may__unlock(&scope_lock, MAY__RANK_SCOPE);
    } else {
        /* The unlock fails here (EPERM), but tools that watch the lock
         * (the rank checker, TSan) learn that it is no longer held; then
         * pthread_mutex_init makes it anew. */
        may__unlock(&scope_lock, MAY__RANK_SCOPE);
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&scope_lock, &a);
        pthread_mutexattr_destroy(&a);
    }
}

int may_scope_new(may_scope_t **out)
{
    if (!out)
        return -EINVAL;
    may_scope_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->owner = may__cur_co();
    if (s->owner) {
        may__lock(&scope_lock, MAY__RANK_SCOPE);
        s->sib = s->owner->owned;
        s->owner->owned = s;
        may__unlock(&scope_lock, MAY__RANK_SCOPE);
    }
    *out = s;
    return 0;
}

int may_scope_spawn_sized(may_scope_t *s, may_fn_t fn, void *arg, const may_spawn_opts_t *opts,
                          size_t opts_size)
{
    if (!s || !fn)
        return -EINVAL;
    may_spawn_opts_t o = { 0 };
    if (opts) {
        int r = may__abi_in(&o, sizeof o, opts, opts_size, MAY__SPAWN_OPTS_V1_SIZE);
        if (r < 0)
            return r;
    }
    if (o.flags & MAY_SPAWN_DETACHED)
        return -EINVAL;
    if (s->owner && atomic_load(&s->owner->cancelled))
        return -ECANCELED;
    may_co_t *co;
    int r = may_spawn(&co, fn, arg, &o);
    if (r < 0)
        return r;
    may__lock(&scope_lock, MAY__RANK_SCOPE);
    co->scope = s;
    co->scope_next = s->children;
    s->children = co;
    /* The owner may have been cancelled while we spawned. */
    if (s->owner && atomic_load(&s->owner->cancelled))
        may_cancel(co);
    may__unlock(&scope_lock, MAY__RANK_SCOPE);
    return 0;
}

static void cancel_children_locked(may_scope_t *s)
{
    for (may_co_t *c = s->children; c; c = c->scope_next)
        may_cancel(c);
}

void may__scope_child_cancel_owned(may_co_t *co)
{
    may__lock(&scope_lock, MAY__RANK_SCOPE);
    for (may_scope_t *s = co->owned; s; s = s->sib)
        cancel_children_locked(s);
    may__unlock(&scope_lock, MAY__RANK_SCOPE);
}

/* Join children until none is left or the wait fails. */
static int join_all(may_scope_t *s, int64_t deadline, int ignore_cancel)
{
    for (;;) {
        may__lock(&scope_lock, MAY__RANK_SCOPE);
        may_co_t *c = s->children;
        /* Join the oldest first: walk to the end of the list. */
        while (c && c->scope_next)
            c = c->scope_next;
        may__unlock(&scope_lock, MAY__RANK_SCOPE);
        if (!c)
            return 0;
        int r = may__join_wait(c, deadline, ignore_cancel);
        if (r < 0)
            return r;
        may__lock(&scope_lock, MAY__RANK_SCOPE);
        may_co_t **pp = &s->children;
        while (*pp != c)
            pp = &(*pp)->scope_next;
        *pp = c->scope_next;
        may__unlock(&scope_lock, MAY__RANK_SCOPE);
        if (may__join_reap(c, NULL) == MAY_PANICKED)
            s->panicked++;
    }
}

int may_scope_wait(may_scope_t *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    int r = join_all(s, deadline, 0);
    if (r == -ECANCELED) {
        may__lock(&scope_lock, MAY__RANK_SCOPE);
        cancel_children_locked(s);
        may__unlock(&scope_lock, MAY__RANK_SCOPE);
        r = join_all(s, deadline, 1);
        if (r == 0)
            r = -ECANCELED;
    }
    if (r < 0)
        return r;
    if (may_cancelled())
        return -ECANCELED; /* every child ended, but the caller was cancelled */
    r = s->panicked;
    s->panicked = 0;
    return r;
}

void may_scope_free(may_scope_t *s)
{
    if (!s)
        return;
    may__lock(&scope_lock, MAY__RANK_SCOPE);
    cancel_children_locked(s);
    may__unlock(&scope_lock, MAY__RANK_SCOPE);
    join_all(s, MAY_FOREVER, 1);
    if (s->owner) {
        may__lock(&scope_lock, MAY__RANK_SCOPE);
        may_scope_t **pp = &s->owner->owned;
        while (*pp && *pp != s)
            pp = &(*pp)->sib;
        if (*pp)
            *pp = s->sib;
        may__unlock(&scope_lock, MAY__RANK_SCOPE);
    }
    free(s);
}

void may__scope_owner_exit(may_co_t *co)
{
    may__lock(&scope_lock, MAY__RANK_SCOPE);
    for (may_scope_t *s = co->owned; s; s = s->sib)
        s->owner = NULL;
    co->owned = NULL;
    may__unlock(&scope_lock, MAY__RANK_SCOPE);
}
