/* Timer and ticker objects (may_timer_*): Go 1.23 semantics (one pending
 * firing, discarded by reset and stop), return values, waiting with a
 * deadline and cancellation, plain threads, and many armed timers. */
#include "test.h"

#include <errno.h>
#include <may.h>
#include <stdio.h>
#include <stdlib.h>

static void t_basic(void)
{
    may_timer_t *t;
    ASSERT_EQ(may_timer_new(&t), 0);
    ASSERT_EQ(may_timer_stop(t), 0);
    ASSERT_EQ(may_timer_wait(t, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_timer_wait(t, may_now() + TEST_MS(20)), -ETIMEDOUT);
    int64_t t0 = may_now();
    ASSERT_EQ(may_timer_reset(t, t0 + TEST_MS(20), 0), 0);
    ASSERT_EQ(may_timer_reset(t, t0 + TEST_MS(30), 0), 1); /* was armed */
    ASSERT_EQ(may_timer_wait(t, MAY_FOREVER), 0);
    ASSERT_GE(may_now() - t0, TEST_MS(30));
    ASSERT_EQ(may_timer_wait(t, may_now() + TEST_MS(20)), -ETIMEDOUT); /* once */
    ASSERT_EQ(may_timer_stop(t), 0); /* fired and taken */
    /* fired, not taken: pending; stop discards it and says so */
    ASSERT_EQ(may_timer_reset(t, 0, 0), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_timer_stop(t), 1);
    ASSERT_EQ(may_timer_wait(t, may_now() + TEST_MS(20)), -ETIMEDOUT);
    /* reset discards it too */
    ASSERT_EQ(may_timer_reset(t, 0, 0), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_timer_reset(t, may_now() + TEST_MS(60000), 0), 1);
    ASSERT_EQ(may_timer_wait(t, may_now() + TEST_MS(20)), -ETIMEDOUT);
    ASSERT_EQ(may_timer_stop(t), 1);
    /* bad arguments */
    ASSERT_EQ(may_timer_reset(t, -1, 0), -EINVAL);
    ASSERT_EQ(may_timer_reset(t, 0, -1), -EINVAL);
    ASSERT_EQ(may_timer_reset(NULL, 0, 0), -EINVAL);
    ASSERT_EQ(may_timer_stop(NULL), -EINVAL);
    ASSERT_EQ(may_timer_wait(NULL, 0), -EINVAL);
    ASSERT_EQ(may_timer_new(NULL), -EINVAL);
    may_timer_free(t);
    may_timer_t *z = (may_timer_t *)1;
    ASSERT_EQ(may_ticker_new(&z, 0), -EINVAL);
    ASSERT_PTR_EQ(z, NULL);
    may_timer_free(NULL);
}

/* A ticker ticks on; ticks nobody takes are dropped, not queued. */
static void t_ticker(void)
{
    may_timer_t *t;
    ASSERT_EQ(may_ticker_new(&t, TEST_MS(5)), 0);
    int64_t t0 = may_now();
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(may_timer_wait(t, may_now() + TEST_MS(5000)), 0);
    ASSERT_GE(may_now() - t0, TEST_MS(20));
    may_sleep(TEST_MS(40)); /* about 8 ticks pass: one stays pending */
    int taken = 0;
    while (may_timer_wait(t, MAY_NOWAIT) == 0)
        taken++;
    ASSERT_GE(taken, 1);
    ASSERT_LE(taken, 2); /* dropped, not queued (one more may tick meanwhile) */
    ASSERT_EQ(may_timer_stop(t), 1);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_timer_wait(t, MAY_NOWAIT), -ETIMEDOUT); /* no stale tick */
    /* reset to a new period */
    ASSERT_EQ(may_timer_reset(t, may_now() + TEST_MS(2), TEST_MS(2)), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(may_timer_wait(t, may_now() + TEST_MS(5000)), 0);
    may_timer_free(t); /* armed: free stops it */
}

/* Several waiters: each firing goes to one of them. */
static may_timer_t *shared;
static _Atomic int got;
static void *waiter(void *arg)
{
    (void)arg;
    if (may_timer_wait(shared, may_now() + TEST_MS(10000)) == 0)
        atomic_fetch_add(&got, 1);
    return NULL;
}

static void t_waiters(void)
{
    ASSERT_EQ(may_timer_new(&shared), 0);
    may_co_t *c[4];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(may_spawn(&c[i], waiter, NULL, NULL), 0);
    may_sleep(TEST_MS(10));
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(may_timer_reset(shared, 0, 0), 0);
        while (atomic_load(&got) != i + 1)
            may_sleep(TEST_MS(1));
    }
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    may_timer_free(shared);
}

/* Cancellation of a waiter; a firing it could not take goes to the next. */
static void *cancelled_waiter(void *arg)
{
    return (void *)(intptr_t)may_timer_wait(arg, MAY_FOREVER);
}

static void t_cancel(void)
{
    may_timer_t *t;
    ASSERT_EQ(may_timer_new(&t), 0);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, cancelled_waiter, t, NULL), 0);
    may_sleep(TEST_MS(10));
    may_cancel(c);
    void *r;
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);
    /* the race of a firing with timeouts: no firing is ever lost or doubled */
    for (int i = 0; i < test_scale(200); i++) {
        ASSERT_EQ(may_timer_reset(t, may_now() + 2000 * (i % 20), 0), 0);
        int w = may_timer_wait(t, may_now() + 2000 * (i % 17));
        if (w == -ETIMEDOUT)
            ASSERT_EQ(may_timer_wait(t, MAY_FOREVER), 0);
        else
            ASSERT_EQ(w, 0);
        ASSERT_EQ(may_timer_wait(t, MAY_NOWAIT), -ETIMEDOUT);
    }
    may_timer_free(t);
}

/* Many armed timers: made, armed with random deadlines, stopped; the
 * heap's count follows. */
static void t_many(void)
{
    long n = test_scale(200000);
    may_timer_t **ts = malloc((size_t)n * sizeof *ts);
    ASSERT(ts);
    may_stats_t st;
    ASSERT_EQ(may_stats(&st), 0);
    uint64_t base = st.timers;
    int64_t now = may_now();
    srand(1);
    for (long i = 0; i < n; i++) {
        ASSERT_EQ(may_timer_new(&ts[i]), 0);
        ASSERT_EQ(may_timer_reset(ts[i], now + TEST_MS(60000) + rand() % 1000000000, 0), 0);
    }
    ASSERT_EQ(may_stats(&st), 0);
    ASSERT_GE(st.timers, base + (uint64_t)n);
    for (long i = 0; i < n; i++)
        ASSERT_EQ(may_timer_stop(ts[i]), 1);
    ASSERT_EQ(may_stats(&st), 0);
    ASSERT_LE(st.timers, base + 16);
    for (long i = 0; i < n; i++)
        may_timer_free(ts[i]);
    free(ts);
}

/* may_shutdown stops armed timers; they work again after it. */
static void t_shutdown(void)
{
    may_timer_t *t;
    ASSERT_EQ(may_ticker_new(&t, TEST_MS(1000)), 0);
    while (may_shutdown() == -EBUSY)
        may_sleep(TEST_MS(1));
    ASSERT_EQ(may_timer_stop(t), 0);
    ASSERT_EQ(may_timer_reset(t, may_now() + TEST_MS(5), 0), 0);
    ASSERT_EQ(may_timer_wait(t, may_now() + TEST_MS(5000)), 0);
    may_timer_free(t);
}

int main(void)
{
    test_run_both(t_basic);
    test_run_both(t_ticker);
    t_waiters();
    t_cancel();
    t_many();
    t_shutdown();
    printf("ok\n");
    return 0;
}
