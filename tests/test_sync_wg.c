/* Wait group: waiters (coroutines and threads) are released when the count
 * reaches zero and not before; wait on zero returns at once; bad deltas;
 * timeouts; a cancelled waiter leaves the others waiting correctly; reuse
 * after the waits returned. */
#include "test.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

static may_wg_t *wg;
static _Atomic long work_done;
static _Atomic int waiting;

static void *worker(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        atomic_fetch_add(&work_done, 1);
        if (i % 64 == 0)
            may_yield();
    }
    ASSERT_EQ(may_wg_done(wg), 0);
    return NULL;
}

static long expected;

static void *waiter(void *arg)
{
    int64_t dl = (int64_t)(intptr_t)arg;
    atomic_fetch_add(&waiting, 1);
    int r = may_wg_wait(wg, dl ? may_deadline_in(dl) : MAY_FOREVER);
    if (r == 0)
        ASSERT_EQ(atomic_load(&work_done), expected); /* all done first */
    return (void *)(intptr_t)r;
}

static void test_release(void)
{
    enum { WCO = 100, WTH = 3, OCO = 5, OTH = 2, PER = 500 };
    atomic_store(&work_done, 0);
    expected = (WCO + WTH) * (long)PER;
    ASSERT_EQ(may_wg_add(wg, WCO + WTH), 0);
    may_co_t *w[WCO], *o[OCO];
    pthread_t wt[WTH], ot[OTH];
    for (int i = 0; i < OCO; i++)
        ASSERT_EQ(may_spawn(&o[i], waiter, NULL, NULL), 0);
    for (int i = 0; i < OTH; i++)
        ASSERT_EQ(pthread_create(&ot[i], NULL, waiter, NULL), 0);
    for (int i = 0; i < WCO; i++)
        ASSERT_EQ(may_spawn(&w[i], worker, (void *)(intptr_t)PER, NULL), 0);
    for (int i = 0; i < WTH; i++)
        ASSERT_EQ(pthread_create(&wt[i], NULL, worker, (void *)(intptr_t)PER), 0);
    ASSERT_EQ(may_wg_wait(wg, MAY_FOREVER), 0);
    ASSERT_EQ(atomic_load(&work_done), expected);
    void *r;
    for (int i = 0; i < OCO; i++) {
        ASSERT_EQ(may_join(o[i], &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, 0);
    }
    for (int i = 0; i < OTH; i++) {
        pthread_join(ot[i], &r);
        ASSERT_EQ((intptr_t)r, 0);
    }
    for (int i = 0; i < WCO; i++)
        ASSERT_EQ(may_join(w[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < WTH; i++)
        pthread_join(wt[i], NULL);
}

static void test_misc(void)
{
    ASSERT_EQ(may_wg_new(NULL), -EINVAL);
    ASSERT_EQ(may_wg_wait(wg, MAY_NOWAIT), 0); /* zero: at once */
    ASSERT_EQ(may_wg_done(wg), -EINVAL);       /* would go negative */
    ASSERT_EQ(may_wg_add(wg, -3), -EINVAL);
    ASSERT_EQ(may_wg_add(wg, 2), 0);
    ASSERT_EQ(may_wg_add(wg, LONG_MAX), -EINVAL);
    ASSERT_EQ(may_wg_wait(wg, MAY_NOWAIT), -ETIMEDOUT);

    /* timeouts from a coroutine and a thread */
    may_co_t *c;
    void *r;
    ASSERT_EQ(may_spawn(&c, waiter, (void *)(intptr_t)TEST_MS(20), NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, -ETIMEDOUT);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, waiter, (void *)(intptr_t)TEST_MS(20)), 0);
    pthread_join(t, &r);
    ASSERT_EQ((intptr_t)r, -ETIMEDOUT);

    /* one waiter cancelled; the other is still released */
    may_co_t *a, *b;
    atomic_store(&waiting, 0);
    ASSERT_EQ(may_spawn(&a, waiter, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&b, waiter, NULL, NULL), 0);
    while (atomic_load(&waiting) < 2)
        usleep(500);
    usleep(10000);
    ASSERT_EQ(may_cancel(a), 0);
    ASSERT_EQ(may_join(a, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);
    ASSERT_EQ(may_join(b, NULL, MAY_NOWAIT), -ETIMEDOUT); /* still waiting */
    atomic_store(&work_done, 0);
    expected = 0;
    ASSERT_EQ(may_wg_done(wg), 0);
    ASSERT_EQ(may_join(b, NULL, MAY_NOWAIT), -ETIMEDOUT); /* one left */
    ASSERT_EQ(may_wg_add(wg, -1), 0);
    ASSERT_EQ(may_join(b, &r, may_deadline_in(TEST_MS(5000))), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 0);
}

/* As for events: the waiter frees the group as soon as its wait returns,
 * while the done-er that took the count to zero may still be inside
 * may_wg_done. */
static void *done_it(void *arg)
{
    may_wg_done(arg);
    return NULL;
}

static void test_free_after_wait(void)
{
    long n = test_scale(20000);
    for (long i = 0; i < n; i++) {
        may_wg_t *g;
        ASSERT_EQ(may_wg_new(&g), 0);
        ASSERT_EQ(may_wg_add(g, 1), 0);
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, done_it, g), 0);
        ASSERT_EQ(may_wg_wait(g, MAY_FOREVER), 0);
        may_wg_free(g);
        pthread_join(t, NULL);
    }
}

int main(void)
{
    test_free_after_wait();
    ASSERT_EQ(may_wg_new(&wg), 0);
    test_release();
    test_misc();
    test_release(); /* reusable */
    may_wg_free(wg);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
