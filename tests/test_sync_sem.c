/* Semaphore: smoke and bad use; a limiter that never lets more than its
 * count in, with coroutines and threads; waiters served in FIFO order;
 * timeouts; cancelled waiters do not swallow a unit (also when the
 * cancellation races the post). */
#include "test.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

static may_sem_t *s;

static void test_smoke(void)
{
    ASSERT_EQ(may_sem_new(NULL, 0), -EINVAL);
    ASSERT_EQ(may_sem_new(&s, (unsigned)INT_MAX + 1u), -EINVAL);
    ASSERT_EQ(may_sem_new(&s, 2), 0);
    ASSERT_EQ(may_sem_value(s), 2);
    ASSERT_EQ(may_sem_trywait(s), 0);
    ASSERT_EQ(may_sem_wait(s, MAY_NOWAIT), 0);
    ASSERT_EQ(may_sem_value(s), 0);
    ASSERT_EQ(may_sem_trywait(s), -EAGAIN);
    ASSERT_EQ(may_sem_wait(s, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_sem_post(s), 0);
    ASSERT_EQ(may_sem_value(s), 1);
    ASSERT_EQ(may_sem_wait(s, MAY_FOREVER), 0);
    may_sem_free(s);
    ASSERT_EQ(may_sem_new(&s, INT_MAX), 0);
    ASSERT_EQ(may_sem_post(s), -EOVERFLOW);
    may_sem_free(s);
}

/* ---- limiter -------------------------------------------------------------- */

enum { LIMIT = 3 };
static _Atomic int inside, peak;
static long iters;

static void *limited(void *arg)
{
    (void)arg;
    for (long i = 0; i < iters; i++) {
        int r = may_sem_wait(s, i % 4 ? MAY_FOREVER : may_deadline_in(30000));
        if (r == -ETIMEDOUT) {
            may_yield();
            continue;
        }
        ASSERT_EQ(r, 0);
        int n = atomic_fetch_add(&inside, 1) + 1;
        ASSERT_LE(n, LIMIT);
        int p = atomic_load(&peak);
        while (n > p && !atomic_compare_exchange_weak(&peak, &p, n))
            ;
        if (i % 8 == 0)
            may_yield();
        atomic_fetch_sub(&inside, 1);
        ASSERT_EQ(may_sem_post(s), 0);
    }
    return NULL;
}

static void test_limiter(void)
{
    enum { CO = 50, TH = 3 };
    iters = test_scale(2000);
    ASSERT_EQ(may_sem_new(&s, LIMIT), 0);
    may_co_t *c[CO];
    pthread_t t[TH];
    for (int i = 0; i < CO; i++)
        ASSERT_EQ(may_spawn(&c[i], limited, NULL, NULL), 0);
    for (int i = 0; i < TH; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, limited, NULL), 0);
    for (int i = 0; i < CO; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < TH; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(may_sem_value(s), LIMIT);
    ASSERT_LE(atomic_load(&peak), LIMIT);
    may_sem_free(s);
}

/* ---- FIFO, timeouts, cancellation ----------------------------------------- */

static _Atomic int queued, order_next;

typedef struct {
    int64_t dl_ns; /* 0: forever */
    int order, result;
} waiter;

static void *wait_one(void *arg)
{
    waiter *w = arg;
    atomic_fetch_add(&queued, 1);
    w->result = may_sem_wait(s, w->dl_ns ? may_deadline_in(w->dl_ns) : MAY_FOREVER);
    if (w->result == 0)
        w->order = atomic_fetch_add(&order_next, 1);
    return NULL;
}

static int settle_us = 10000; /* time for a started waiter to queue */

static may_co_t *start(waiter *w, int64_t dl)
{
    memset(w, 0, sizeof *w);
    w->dl_ns = dl;
    w->order = -1;
    int before = atomic_load(&queued);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, wait_one, w, NULL), 0);
    while (atomic_load(&queued) == before)
        usleep(200);
    usleep(settle_us);
    return c;
}

static void test_fifo_cancel(void)
{
    ASSERT_EQ(may_sem_new(&s, 0), 0);
    /* FIFO: posts release waiters in the order they came */
    enum { N = 6 };
    waiter w[N];
    may_co_t *c[N];
    atomic_store(&order_next, 0);
    for (int i = 0; i < N; i++)
        c[i] = start(&w[i], 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(may_sem_post(s), 0);
        while (atomic_load(&order_next) <= i)
            usleep(200);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ(w[i].result, 0);
        ASSERT_EQ(w[i].order, i);
    }

    /* timeouts from a coroutine and a thread; no unit appears */
    waiter tw;
    may_co_t *tc = start(&tw, TEST_MS(20));
    ASSERT_EQ(may_join(tc, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(tw.result, -ETIMEDOUT);
    pthread_t th;
    tw.dl_ns = TEST_MS(20);
    ASSERT_EQ(pthread_create(&th, NULL, wait_one, &tw), 0);
    pthread_join(th, NULL);
    ASSERT_EQ(tw.result, -ETIMEDOUT);
    ASSERT_EQ(may_sem_value(s), 0);

    /* a cancelled waiter first in line: the unit goes to the next */
    waiter a, b;
    may_co_t *ca = start(&a, 0), *cb = start(&b, TEST_MS(5000));
    ASSERT_EQ(may_cancel(ca), 0);
    ASSERT_EQ(may_join(ca, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(a.result, -ECANCELED);
    ASSERT_EQ(may_sem_post(s), 0);
    ASSERT_EQ(may_join(cb, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(b.result, 0);
    ASSERT_EQ(may_sem_value(s), 0);

    /* racing: units are never lost or created */
    int rounds = (int)test_scale(300);
    settle_us = 500;
    for (int k = 0; k < rounds; k++) {
        ca = start(&a, 0);
        cb = start(&b, 0);
        if (k % 2)
            usleep(k % 7 * 20);
        may_cancel(ca);
        ASSERT_EQ(may_sem_post(s), 0);
        ASSERT_EQ(may_join(ca, NULL, MAY_FOREVER), MAY_CANCELED);
        ASSERT(a.result == 0 || a.result == -ECANCELED);
        if (a.result == 0)
            ASSERT_EQ(may_sem_post(s), 0); /* a kept the unit */
        ASSERT_EQ(may_join(cb, NULL, may_deadline_in(TEST_MS(5000))), MAY_DONE);
        ASSERT_EQ(b.result, 0);
        ASSERT_EQ(may_sem_value(s), 0);
    }
    may_sem_free(s);
}

int main(void)
{
    test_smoke();
    test_limiter();
    test_fifo_cancel();
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
