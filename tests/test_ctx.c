/* Contexts: a cancellation tree.  A context's cancel or deadline reaches
 * every coroutine under it (spawned with .ctx, or by a coroutine under
 * it), and every context below it; the reason can be read; escaping with
 * MAY_SPAWN_NO_CTX; the lifetime of handles. */
#include "test.h"

#include <errno.h>
#include <may.h>
#include <stdio.h>

static may_chan_t *never; /* nobody sends on it */

/* Block until cancelled; report what the blocked call returned. */
static void *blocker(void *arg)
{
    (void)arg;
    int v;
    int r = may_chan_recv(never, &v, MAY_FOREVER);
    return (void *)(intptr_t)r;
}

static void *sleeper(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)may_sleep(TEST_MS(60000));
}

static void t_cancel_reaches(void)
{
    may_ctx_t *ctx;
    ASSERT_EQ(may_ctx_new(&ctx, NULL, MAY_FOREVER), 0);
    ASSERT_EQ(may_ctx_err(ctx), 0);
    ASSERT_EQ(may_ctx_cause(ctx), 0);
    ASSERT_EQ(may_ctx_deadline(ctx), MAY_FOREVER);
    may_co_t *c[3];
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(may_spawn(&c[i], i ? blocker : sleeper, NULL, &(may_spawn_opts_t){ .ctx = ctx }), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_ctx_cancel(ctx, -ENOTCONN), 0);
    ASSERT_EQ(may_ctx_cancel(ctx, -EPIPE), -EALREADY);
    for (int i = 0; i < 3; i++) {
        void *r;
        ASSERT_EQ(may_join(c[i], &r, MAY_FOREVER), MAY_CANCELED);
        ASSERT_EQ((intptr_t)r, -ECANCELED);
    }
    ASSERT_EQ(may_ctx_err(ctx), -ECANCELED);
    ASSERT_EQ(may_ctx_cause(ctx), -ENOTCONN);
    may_ctx_free(ctx);
}

/* A deadline: blocked calls fail with -ECANCELED, and the context says
 * -ETIMEDOUT. */
static void *deadline_child(void *arg)
{
    (void)arg;
    int64_t t0 = may_now();
    int r = may_sleep(TEST_MS(60000));
    ASSERT_EQ(r, -ECANCELED);
    ASSERT_EQ(may_ctx_err(may_ctx_current()), -ETIMEDOUT);
    ASSERT_EQ(may_ctx_cause(may_ctx_current()), -ETIMEDOUT);
    ASSERT_LT(may_now() - t0, TEST_MS(30000));
    return NULL;
}

static void t_deadline(void)
{
    may_ctx_t *ctx;
    int64_t dl = may_now() + TEST_MS(30);
    ASSERT_EQ(may_ctx_new(&ctx, NULL, dl), 0);
    ASSERT_EQ(may_ctx_deadline(ctx), dl);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, deadline_child, NULL, &(may_spawn_opts_t){ .ctx = ctx }), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(may_ctx_wait(ctx, MAY_NOWAIT), 0);
    may_ctx_free(ctx);
    /* a deadline already passed: ended from the start */
    ASSERT_EQ(may_ctx_new(&ctx, NULL, 1), 0);
    ASSERT_EQ(may_ctx_err(ctx), -ETIMEDOUT);
    may_ctx_free(ctx);
}

/* Inheritance: what a coroutine under ctx spawns is under ctx too, unless
 * it asks not to be. */
static _Atomic int escaped_done;
static void *escaper(void *arg)
{
    (void)arg;
    ASSERT_PTR_EQ(may_ctx_current(), NULL);
    ASSERT_EQ(may_sleep(TEST_MS(50)), 0); /* not cancelled */
    atomic_store(&escaped_done, 1);
    return NULL;
}

static void *parent_co(void *arg)
{
    may_ctx_t *ctx = arg;
    ASSERT_PTR_EQ(may_ctx_current(), ctx);
    may_co_t *kid, *esc;
    ASSERT_EQ(may_spawn(&kid, blocker, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&esc, escaper, NULL, &(may_spawn_opts_t){ .flags = MAY_SPAWN_NO_CTX }), 0);
    may_go(blocker, NULL); /* detached, under ctx too */
    void *r;
    /* our own wait is cancelled, then the joins complete (they need not
     * wait once the children have ended) */
    int j = may_join(kid, &r, MAY_FOREVER);
    if (j == -ECANCELED) {
        while ((j = may_join(kid, &r, MAY_NOWAIT)) == -ECANCELED)
            may_yield();
    }
    ASSERT_EQ(j, MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);
    while ((j = may_join(esc, NULL, MAY_NOWAIT)) < 0)
        may_yield();
    ASSERT_EQ(j, MAY_DONE);
    return NULL;
}

static void t_inherit(void)
{
    may_ctx_t *ctx;
    ASSERT_EQ(may_ctx_new(&ctx, NULL, MAY_FOREVER), 0);
    may_co_t *p;
    ASSERT_EQ(may_spawn(&p, parent_co, ctx, &(may_spawn_opts_t){ .ctx = ctx }), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_ctx_cancel(ctx, 0), 0);
    ASSERT_EQ(may_ctx_cause(ctx), -ECANCELED);
    ASSERT_EQ(may_join(p, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(atomic_load(&escaped_done), 1);
    may_ctx_free(ctx); /* the detached child may still hold it: fine */
}

/* The tree: a child's cancel stays below it; a parent's reaches every
 * descendant; deadlines are the earlier of the two. */
static void t_tree(void)
{
    may_ctx_t *root, *a, *b, *a1;
    ASSERT_EQ(may_ctx_new(&root, NULL, may_now() + TEST_MS(60000)), 0);
    ASSERT_EQ(may_ctx_new(&a, root, MAY_FOREVER), 0);
    ASSERT_EQ(may_ctx_new(&b, root, may_now() + TEST_MS(120000)), 0);
    ASSERT_EQ(may_ctx_new(&a1, a, may_now() + TEST_MS(1000)), 0);
    ASSERT_EQ(may_ctx_deadline(a), may_ctx_deadline(root));
    ASSERT_EQ(may_ctx_deadline(b), may_ctx_deadline(root));
    ASSERT_LT(may_ctx_deadline(a1), may_ctx_deadline(root));
    may_co_t *ca1;
    ASSERT_EQ(may_spawn(&ca1, blocker, NULL, &(may_spawn_opts_t){ .ctx = a1 }), 0);
    ASSERT_EQ(may_ctx_cancel(a, -EIO), 0);
    ASSERT_EQ(may_ctx_err(a1), -ECANCELED);
    ASSERT_EQ(may_ctx_cause(a1), -EIO);
    ASSERT_EQ(may_ctx_err(root), 0);
    ASSERT_EQ(may_ctx_err(b), 0);
    ASSERT_EQ(may_join(ca1, NULL, MAY_FOREVER), MAY_CANCELED);
    /* made under an ended parent: ended */
    may_ctx_t *late;
    ASSERT_EQ(may_ctx_new(&late, a, MAY_FOREVER), 0);
    ASSERT_EQ(may_ctx_err(late), -ECANCELED);
    ASSERT_EQ(may_ctx_cause(late), -EIO);
    /* spawned under an ended context: never runs */
    may_co_t *never_runs;
    ASSERT_EQ(may_spawn(&never_runs, escaper, NULL, &(may_spawn_opts_t){ .ctx = late }), 0);
    void *r = (void *)1;
    ASSERT_EQ(may_join(never_runs, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_PTR_EQ(r, NULL);
    /* freeing the root ends b; b stays a valid handle until freed */
    may_ctx_free(root);
    ASSERT_EQ(may_ctx_err(b), -ECANCELED);
    ASSERT_EQ(may_ctx_wait(b, MAY_FOREVER), 0);
    may_ctx_free(late);
    may_ctx_free(a1);
    may_ctx_free(a);
    may_ctx_free(b);
}

/* A child's own earlier deadline ends only its subtree. */
static void t_child_deadline(void)
{
    may_ctx_t *root, *kid;
    ASSERT_EQ(may_ctx_new(&root, NULL, MAY_FOREVER), 0);
    ASSERT_EQ(may_ctx_new(&kid, root, may_now() + TEST_MS(20)), 0);
    ASSERT_EQ(may_ctx_wait(kid, may_now() + TEST_MS(10000)), 0);
    ASSERT_EQ(may_ctx_err(kid), -ETIMEDOUT);
    ASSERT_EQ(may_ctx_err(root), 0);
    ASSERT_EQ(may_ctx_wait(root, may_now() + TEST_MS(10)), -ETIMEDOUT);
    may_ctx_free(kid);
    may_ctx_free(root);
    ASSERT_EQ(may_ctx_new(NULL, NULL, 0), -EINVAL);
    ASSERT_EQ(may_ctx_cancel(NULL, 0), -EINVAL);
    ASSERT_EQ(may_ctx_err(NULL), -EINVAL);
    may_ctx_free(NULL);
}

/* Many contexts made, cancelled and freed from many coroutines at once,
 * some by their deadlines, with coroutines under them. */
static void *churn(void *arg)
{
    may_ctx_t *parent = arg;
    for (int i = 0; i < test_scale(200); i++) {
        may_ctx_t *c;
        ASSERT_EQ(may_ctx_new(&c, parent, i % 2 ? may_now() + 100000 : MAY_FOREVER), 0);
        may_co_t *k;
        ASSERT_EQ(may_spawn(&k, blocker, NULL, &(may_spawn_opts_t){ .ctx = c }), 0);
        if (i % 3 == 0)
            may_ctx_cancel(c, -EIO);
        else if (i % 2 == 0)
            may_ctx_free(c), c = NULL;
        if (c && may_ctx_wait(c, MAY_FOREVER) != 0)
            ASSERT(0);
        ASSERT_EQ(may_join(k, NULL, MAY_FOREVER), MAY_CANCELED);
        may_ctx_free(c);
    }
    return NULL;
}

static void t_churn(void)
{
    may_ctx_t *root;
    ASSERT_EQ(may_ctx_new(&root, NULL, MAY_FOREVER), 0);
    may_co_t *c[8];
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(may_spawn(&c[i], churn, i % 2 ? root : NULL, NULL), 0);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    may_ctx_free(root);
}

int main(void)
{
    ASSERT_EQ(may_chan_make(&never, int, 0), 0);
    t_cancel_reaches();
    t_deadline();
    t_inherit();
    t_tree();
    t_child_deadline();
    t_churn();
    /* every coroutine has ended: the runtime can stop */
    while (may_shutdown() == -EBUSY)
        may_sleep(TEST_MS(1));
    may_chan_free(never);
    printf("ok\n");
    return 0;
}
