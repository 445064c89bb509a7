/* Scopes: waiting joins all children; cancelling the owner cancels them;
 * a child's panic is reported. */
#include "test.h"
#include <errno.h>
#include <unistd.h>

static _Atomic int done;
static void *child_ok(void *arg)
{
    may_sleep(TEST_MS(1) * (intptr_t)arg);
    atomic_fetch_add(&done, 1);
    return NULL;
}
static void *child_panic(void *arg)
{
    (void)arg;
    may_panic("child failed");
}
static void *child_forever(void *arg)
{
    (void)arg;
    int r = may_sleep_until(MAY_FOREVER);
    ASSERT_EQ(r, -ECANCELED);
    atomic_fetch_add(&done, 1);
    return NULL;
}

static void *owner(void *arg)
{
    int n = (int)(intptr_t)arg;
    may_scope_t *s;
    ASSERT_EQ(may_scope_new(&s), 0);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(may_scope_spawn(s, child_forever, NULL, NULL), 0);
    int r = may_scope_wait(s, MAY_FOREVER);
    may_scope_free(s);
    return (void *)(intptr_t)r;
}

static void *nested_owner(void *arg)
{
    (void)arg;
    may_scope_t *s;
    ASSERT_EQ(may_scope_new(&s), 0);
    ASSERT_EQ(may_scope_spawn(s, owner, (void *)3, NULL), 0);
    ASSERT_EQ(may_scope_spawn(s, child_forever, NULL, NULL), 0);
    int r = may_scope_wait(s, MAY_FOREVER);
    may_scope_free(s);
    return (void *)(intptr_t)r;
}

int main(void)
{
    may_scope_t *s;
    ASSERT_EQ(may_scope_new(&s), 0);
    for (int i = 0; i < 20; i++)
        ASSERT_EQ(may_scope_spawn(s, child_ok, (void *)(intptr_t)(i % 5), NULL), 0);
    ASSERT_EQ(may_scope_spawn(s, child_panic, NULL, NULL), 0);
    ASSERT_EQ(may_scope_spawn(s, child_panic, NULL, NULL), 0);
    ASSERT_EQ(may_scope_wait(s, MAY_FOREVER), 2); /* two panicked */
    ASSERT_EQ(atomic_load(&done), 20);
    ASSERT_EQ(may_scope_wait(s, MAY_FOREVER), 0); /* nothing left */

    /* deadline: children stay */
    ASSERT_EQ(may_scope_spawn(s, child_ok, (void *)50, NULL), 0);
    ASSERT_EQ(may_scope_wait(s, may_deadline_in(TEST_MS(5))), -ETIMEDOUT);
    ASSERT_EQ(may_scope_wait(s, MAY_FOREVER), 0);
    ASSERT_EQ(atomic_load(&done), 21);
    may_scope_free(s);

    /* cancelling the owner cancels its children (and grandchildren) */
    atomic_store(&done, 0);
    may_co_t *o;
    ASSERT_EQ(may_spawn(&o, nested_owner, NULL, NULL), 0);
    usleep(20000);
    ASSERT_EQ(may_cancel(o), 0);
    void *r;
    ASSERT_EQ(may_join(o, &r, may_deadline_in(TEST_MS(5000))), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);
    ASSERT_EQ(atomic_load(&done), 4);

    /* free cancels and joins what is left */
    ASSERT_EQ(may_scope_new(&s), 0);
    atomic_store(&done, 0);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(may_scope_spawn(s, child_forever, NULL, NULL), 0);
    usleep(20000); /* let them start: a child cancelled before it starts never runs */
    may_scope_free(s);
    ASSERT_EQ(atomic_load(&done), 10);

    ASSERT_EQ(may_scope_spawn(NULL, child_ok, NULL, NULL), -EINVAL);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
