/* may_panic and may_exit end a coroutine from any depth, run its cleanup
 * handlers newest first, and every other coroutine runs on. */
#include "test.h"
#include <errno.h>
#include <pthread.h>

static char order[16];
static _Atomic int norder;
static void note(void *arg)
{
    int i = atomic_fetch_add(&norder, 1);
    if (i < (int)sizeof order)
        order[i] = (char)(intptr_t)arg;
}

static void deep(int n)
{
    if (n < 0)
        return;
    if (n == 0)
        may_panic("boom %d", 42);
    deep(n - 1);
}

static void *panicker(void *arg)
{
    (void)arg;
    may_cleanup_t a, b, c;
    may_cleanup_push(&a, note, (void *)'a');
    may_cleanup_push(&b, note, (void *)'b');
    may_cleanup_push(&c, note, (void *)'c');
    may_cleanup_pop(true); /* runs c now */
    deep(20);
    return (void *)1;
}

static void exit_deep(int n)
{
    if (n < 0)
        return;
    if (n == 0)
        may_exit((void *)99);
    exit_deep(n - 1);
}

static void *exiter(void *arg)
{
    (void)arg;
    may_cleanup_t a;
    may_cleanup_push(&a, note, (void *)'x');
    exit_deep(10);
    return NULL;
}

static void *bystander(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        may_yield();
    return (void *)7;
}

/* A plain thread's handlers run at its may_exit, newest first, as
 * pthread_exit runs pthread_cleanup_push's. */
static void *thread_exiter(void *arg)
{
    (void)arg;
    may_cleanup_t n1, n2;
    may_cleanup_push(&n1, note, (void *)(intptr_t)'1');
    may_cleanup_push(&n2, note, (void *)(intptr_t)'2');
    may_exit((void *)5);
}

int main(void)
{
    may_co_t *c, *b;
    void *r;
    ASSERT_EQ(may_spawn(&b, bystander, NULL, NULL), 0);
    may_spawn_opts_t o = { .name = "doomed" };
    ASSERT_EQ(may_spawn(&c, panicker, NULL, &o), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_PANICKED);
    ASSERT(r == NULL);
    ASSERT_EQ(norder, 3);
    ASSERT(memcmp(order, "cba", 3) == 0);
    ASSERT_EQ(may_join(b, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 7);

    norder = 0;
    ASSERT_EQ(may_spawn(&c, exiter, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 99);
    ASSERT_EQ(norder, 1);
    ASSERT_EQ(order[0], 'x');

    norder = 0;
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, thread_exiter, NULL), 0);
    ASSERT_EQ(pthread_join(t, &r), 0);
    ASSERT_EQ((intptr_t)r, 5);
    ASSERT_EQ(norder, 2);
    ASSERT(memcmp(order, "21", 2) == 0);

    /* many panics do not disturb the runtime */
    may_co_t *cs[100];
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(may_spawn(&cs[i], i % 2 ? panicker : bystander, NULL, NULL), 0);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), i % 2 ? MAY_PANICKED : MAY_DONE);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
