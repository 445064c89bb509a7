/* Mutex: smoke and bad use; an exact counter under contention from
 * coroutines and threads together; timeouts from both; cancelled waiters
 * neither take the lock nor stall the hand-off chain (also when the
 * cancellation races the unlock); a waiter is not starved by a lock hog. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static may_mutex_t *m;

static void test_smoke(void)
{
    ASSERT_EQ(may_mutex_new(NULL), -EINVAL);
    ASSERT_EQ(may_mutex_new(&m), 0);
    ASSERT_EQ(may_mutex_unlock(m), -EPERM);
    ASSERT_EQ(may_mutex_trylock(m), 0);
    ASSERT_EQ(may_mutex_trylock(m), -EBUSY);
    ASSERT_EQ(may_mutex_lock(m, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    ASSERT_EQ(may_mutex_lock(m, MAY_NOWAIT), 0);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    ASSERT_EQ(may_mutex_unlock(m), -EPERM);
}

/* ---- lots and lots of increments ---------------------------------------- */

static long counter;
static long iters;

static void *incr(void *arg)
{
    int yield_every = (int)(intptr_t)arg;
    for (long i = 0; i < iters; i++) {
        ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
        long c = counter;
        if (yield_every && i % yield_every == 0)
            may_yield(); /* hold it across a switch now and then */
        counter = c + 1;
        ASSERT_EQ(may_mutex_unlock(m), 0);
    }
    return NULL;
}

static void *incr_timed(void *arg)
{
    (void)arg;
    long done = 0;
    while (done < iters) {
        int r = may_mutex_lock(m, may_deadline_in(2000));
        if (r == -ETIMEDOUT) {
            /* A deadline this short may have passed before the wait, and a
             * coroutine that never blocks starves the lock's holder (which
             * may have yielded): yield. */
            may_yield();
            continue;
        }
        ASSERT_EQ(r, 0);
        counter++;
        done++;
        ASSERT_EQ(may_mutex_unlock(m), 0);
    }
    return NULL;
}

static void test_counter(void)
{
    enum { CO = 200, TH = 4, TIMED = 20 };
    iters = test_scale(2000);
    counter = 0;
    may_co_t *co[CO + TIMED];
    pthread_t th[TH];
    for (int i = 0; i < CO; i++)
        ASSERT_EQ(may_spawn(&co[i], incr, (void *)(intptr_t)(i % 3 == 0 ? 97 : 0), NULL), 0);
    for (int i = 0; i < TIMED; i++)
        ASSERT_EQ(may_spawn(&co[CO + i], incr_timed, NULL, NULL), 0);
    for (int i = 0; i < TH; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, i % 2 ? incr_timed : incr, NULL), 0);
    for (int i = 0; i < CO + TIMED; i++)
        ASSERT_EQ(may_join(co[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < TH; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(counter, (CO + TH + TIMED) * iters);
    ASSERT_EQ(may_mutex_trylock(m), 0);
    ASSERT_EQ(may_mutex_unlock(m), 0);
}

/* ---- timeouts ------------------------------------------------------------ */

static void *lock_timeout(void *arg)
{
    (void)arg;
    int64_t t0 = may_now();
    ASSERT_EQ(may_mutex_lock(m, may_deadline_in(TEST_MS(30))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(30));
    ASSERT_EQ(may_mutex_lock(m, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_mutex_trylock(m), -EBUSY);
    return NULL;
}

static void test_timeouts(void)
{
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    may_co_t *co;
    pthread_t th;
    ASSERT_EQ(may_spawn(&co, lock_timeout, NULL, NULL), 0);
    ASSERT_EQ(pthread_create(&th, NULL, lock_timeout, NULL), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    pthread_join(th, NULL);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    /* timed-out waiters left nothing behind */
    ASSERT_EQ(may_mutex_trylock(m), 0);
    ASSERT_EQ(may_mutex_unlock(m), 0);
}

/* ---- cancellation -------------------------------------------------------- */

static _Atomic int queued, holders;

static void *lock_hold_unlock(void *arg)
{
    int64_t hold_ns = (int64_t)(intptr_t)arg;
    atomic_fetch_add(&queued, 1);
    int r = may_mutex_lock(m, MAY_FOREVER);
    if (r < 0)
        return (void *)(intptr_t)r;
    ASSERT_EQ(atomic_fetch_add(&holders, 1), 0); /* mutual exclusion */
    if (hold_ns)
        may_sleep(hold_ns);
    atomic_fetch_sub(&holders, 1);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    return NULL;
}

static void *self_cancel_lock(void *arg)
{
    (void)arg;
    may_cancel(may_self());
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), -ECANCELED); /* it is held */
    ASSERT_EQ(may_mutex_lock(m, MAY_NOWAIT), -ECANCELED);
    return NULL;
}

static void test_cancel(void)
{
    enum { N = 10 };
    /* Waiters queued behind a held lock; every other one is cancelled
     * while queued: the rest still get it, one by one, and then it is
     * free. */
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    atomic_store(&queued, 0);
    may_co_t *co[N];
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_spawn(&co[i], lock_hold_unlock, (void *)(intptr_t)100000, NULL), 0);
    while (atomic_load(&queued) < N)
        usleep(1000);
    usleep(20000);
    for (int i = 0; i < N; i += 2)
        may_cancel(co[i]);
    for (int i = 0; i < N; i += 2) {
        void *r;
        ASSERT_EQ(may_join(co[i], &r, MAY_FOREVER), MAY_CANCELED);
        ASSERT_EQ((intptr_t)r, -ECANCELED);
    }
    ASSERT_EQ(may_mutex_unlock(m), 0);
    for (int i = 1; i < N; i += 2)
        ASSERT_EQ(may_join(co[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_mutex_trylock(m), 0);
    ASSERT_EQ(may_mutex_unlock(m), 0);

    may_co_t *c;
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    ASSERT_EQ(may_spawn(&c, self_cancel_lock, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(may_mutex_unlock(m), 0);

    /* Cancellation racing the unlock: whether the cancelled waiter got the
     * lock (and released it) or withdrew, the other waiter always gets it
     * and the lock ends free. */
    int rounds = (int)test_scale(300);
    int got_by_cancelled = 0;
    for (int k = 0; k < rounds; k++) {
        ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
        atomic_store(&queued, 0);
        may_co_t *a, *b;
        ASSERT_EQ(may_spawn(&a, lock_hold_unlock, NULL, NULL), 0);
        while (atomic_load(&queued) < 1)
            may_yield();
        ASSERT_EQ(may_spawn(&b, lock_hold_unlock, NULL, NULL), 0);
        while (atomic_load(&queued) < 2)
            may_yield();
        usleep(k % 5 * 50);
        may_cancel(a);
        ASSERT_EQ(may_mutex_unlock(m), 0);
        void *r;
        int ka = may_join(a, &r, MAY_FOREVER);
        ASSERT(ka == MAY_CANCELED);
        if ((intptr_t)r == 0)
            got_by_cancelled++;
        else
            ASSERT_EQ((intptr_t)r, -ECANCELED);
        ASSERT_EQ(may_join(b, &r, may_deadline_in(TEST_MS(5000))), MAY_DONE);
        ASSERT_EQ((intptr_t)r, 0);
        ASSERT_EQ(may_mutex_trylock(m), 0);
        ASSERT_EQ(may_mutex_unlock(m), 0);
    }
    (void)got_by_cancelled;
}

/* ---- FIFO ---------------------------------------------------------------- */

static _Atomic int fifo_next;

static void *fifo_waiter(void *arg)
{
    int *order = arg;
    atomic_fetch_add(&queued, 1);
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    *order = atomic_fetch_add(&fifo_next, 1);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    return NULL;
}

static void test_fifo(void)
{
    /* Waiters that queued one after the other get the lock in that order
     * (nobody barges in here). */
    enum { N = 6 };
    int order[N];
    may_co_t *co[N];
    pthread_t th[2];
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    atomic_store(&fifo_next, 0);
    for (int i = 0; i < N; i++) {
        atomic_store(&queued, 0);
        if (i == 2 || i == 4)
            ASSERT_EQ(pthread_create(&th[i / 2 - 1], NULL, fifo_waiter, &order[i]), 0);
        else
            ASSERT_EQ(may_spawn(&co[i], fifo_waiter, &order[i], NULL), 0);
        while (atomic_load(&queued) == 0)
            usleep(200);
        usleep(10000); /* let it queue */
    }
    ASSERT_EQ(may_mutex_unlock(m), 0);
    for (int i = 0; i < N; i++) {
        if (i == 2 || i == 4)
            pthread_join(th[i / 2 - 1], NULL);
        else
            ASSERT_EQ(may_join(co[i], NULL, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ(order[i], i);
    }
}

/* ---- no starvation ------------------------------------------------------- */

static _Atomic int stop;

static void *hog(void *arg)
{
    (void)arg;
    long n = 0;
    while (!atomic_load(&stop)) {
        ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
        for (volatile int i = 0; i < 50; i++)
            ;
        ASSERT_EQ(may_mutex_unlock(m), 0);
        n++;
    }
    return (void *)(intptr_t)n;
}

static void *latecomer(void *arg)
{
    (void)arg;
    int64_t worst = 0;
    for (int i = 0; i < 20; i++) {
        int64_t t0 = may_now();
        ASSERT_EQ(may_mutex_lock(m, may_deadline_in(TEST_MS(3000))), 0);
        int64_t t = may_now() - t0;
        if (t > worst)
            worst = t;
        ASSERT_EQ(may_mutex_unlock(m), 0);
        usleep(500);
    }
    return (void *)(intptr_t)worst;
}

static void test_no_starvation(void)
{
    /* Two threads hammer the lock; a third thread and a coroutine still
     * get it every time, well within the deadline. */
    atomic_store(&stop, 0);
    pthread_t h[2], l;
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&h[i], NULL, hog, NULL), 0);
    may_co_t *c;
    ASSERT_EQ(pthread_create(&l, NULL, latecomer, NULL), 0);
    ASSERT_EQ(may_spawn(&c, latecomer, NULL, NULL), 0);
    void *worst;
    pthread_join(l, &worst);
    ASSERT_LT((intptr_t)worst, TEST_MS(1000));
    ASSERT_EQ(may_join(c, &worst, MAY_FOREVER), MAY_DONE);
    ASSERT_LT((intptr_t)worst, TEST_MS(1000));
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(h[i], NULL);
}

int main(void)
{
    test_smoke();
    test_counter();
    test_timeouts();
    test_cancel();
    test_fifo();
    test_no_starvation();
    may_mutex_free(m);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
