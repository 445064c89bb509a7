/* Generators yield values one at a time, from a thread and a coroutine. */
#include "test.h"
#include <errno.h>

static void *fib(may_gen_t *g, void *arg)
{
    long n = (long)(intptr_t)arg, a = 0, b = 1;
    for (long i = 0; i < n; i++) {
        may_gen_yield(g, (void *)(intptr_t)a);
        long t = a + b;
        a = b;
        b = t;
    }
    return (void *)(intptr_t)-1;
}

static void check_fib(void)
{
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, fib, (void *)10, 0), 0);
    long expect[] = { 0, 1, 1, 2, 3, 5, 8, 13, 21, 34 };
    void *v;
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(may_gen_resume(g, &v), 1);
        ASSERT_EQ((intptr_t)v, expect[i]);
    }
    ASSERT_EQ(may_gen_resume(g, &v), 0);
    ASSERT_EQ((intptr_t)v, -1);
    ASSERT_EQ(may_gen_resume(g, &v), -EINVAL);
    may_gen_free(g);
}

static void *in_co(void *arg)
{
    (void)arg;
    check_fib();
    /* an unfinished generator can be freed */
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, fib, (void *)1000, 0), 0);
    void *v;
    ASSERT_EQ(may_gen_resume(g, &v), 1);
    may_gen_free(g);
    return NULL;
}

int main(void)
{
    check_fib();
    may_co_t *cs[8];
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(may_spawn(&cs[i], in_co, NULL, NULL), 0);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(may_join(cs[i], MAY_FOREVER, NULL), MAY_DONE);
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, NULL, NULL, 0), -EINVAL);
    ASSERT_EQ(may_gen_new(NULL, fib, NULL, 0), -EINVAL);
    ASSERT_EQ(may_gen_resume(NULL, NULL), -EINVAL);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
