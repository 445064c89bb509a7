/* Condition variable: a producer/consumer queue driven by coroutines and
 * threads together (exact totals); timeouts return with the mutex held;
 * waiting with two different mutexes is -EINVAL; broadcast wakes all; a
 * signal with nobody waiting is lost; a cancelled waiter does not swallow
 * the signal meant for another (also when cancellation races the signal). */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static may_mutex_t *m, *m2;
static may_cond_t *c;

/* ---- bounded queue ------------------------------------------------------- */

enum { QCAP = 8 };
static long q[QCAP], qhead, qlen;
static may_cond_t *not_empty, *not_full;
static long per;
static _Atomic long consumed_sum, consumed_n;
static int producers_left;

static void *q_producer(void *arg)
{
    long base = (long)(intptr_t)arg * per;
    for (long i = 0; i < per; i++) {
        ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
        while (qlen == QCAP)
            ASSERT_EQ(may_cond_wait(not_full, m, MAY_FOREVER), 0);
        q[(qhead + qlen++) % QCAP] = base + i;
        may_cond_signal(not_empty);
        ASSERT_EQ(may_mutex_unlock(m), 0);
    }
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    if (--producers_left == 0)
        may_cond_broadcast(not_empty);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    return NULL;
}

static void *q_consumer(void *arg)
{
    (void)arg;
    for (;;) {
        ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
        while (qlen == 0 && producers_left > 0) {
            /* a deadline now and then: timeouts interleave with signals */
            int r = may_cond_wait(not_empty, m, may_deadline_in(200000));
            ASSERT(r == 0 || r == -ETIMEDOUT);
        }
        if (qlen == 0) {
            ASSERT_EQ(may_mutex_unlock(m), 0);
            return NULL;
        }
        long v = q[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
        may_cond_signal(not_full);
        ASSERT_EQ(may_mutex_unlock(m), 0);
        atomic_fetch_add(&consumed_sum, v);
        atomic_fetch_add(&consumed_n, 1);
    }
}

static void test_queue(void)
{
    enum { PCO = 6, PTH = 2, CCO = 6, CTH = 2 };
    per = test_scale(5000);
    ASSERT_EQ(may_cond_new(&not_empty), 0);
    ASSERT_EQ(may_cond_new(&not_full), 0);
    producers_left = PCO + PTH;
    may_co_t *co[PCO + CCO];
    pthread_t th[PTH + CTH];
    for (int i = 0; i < CCO; i++)
        ASSERT_EQ(may_spawn(&co[i], q_consumer, NULL, NULL), 0);
    for (int i = 0; i < CTH; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, q_consumer, NULL), 0);
    for (int i = 0; i < PCO; i++)
        ASSERT_EQ(may_spawn(&co[CCO + i], q_producer, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < PTH; i++)
        ASSERT_EQ(pthread_create(&th[CTH + i], NULL, q_producer, (void *)(intptr_t)(PCO + i)), 0);
    for (int i = 0; i < PCO + CCO; i++)
        ASSERT_EQ(may_join(co[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < PTH + CTH; i++)
        pthread_join(th[i], NULL);
    long n = (PCO + PTH) * per;
    ASSERT_EQ(atomic_load(&consumed_n), n);
    ASSERT_EQ(atomic_load(&consumed_sum), n * (n - 1) / 2);
    may_cond_free(not_empty);
    may_cond_free(not_full);
}

/* ---- timeouts, bad use ---------------------------------------------------- */

static void *timed_wait(void *arg)
{
    (void)arg;
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    int64_t t0 = may_now();
    ASSERT_EQ(may_cond_wait(c, m, may_deadline_in(TEST_MS(20))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(20));
    ASSERT_EQ(may_mutex_trylock(m), -EBUSY); /* held again, by us */
    ASSERT_EQ(may_cond_wait(c, m, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    return NULL;
}

static _Atomic int waiting;

static void *wait_once(void *arg)
{
    int64_t dl = (int64_t)(intptr_t)arg;
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    atomic_fetch_add(&waiting, 1);
    int r = may_cond_wait(c, m, dl ? may_deadline_in(dl) : MAY_FOREVER);
    ASSERT_EQ(may_mutex_trylock(m), -EBUSY); /* always returns with m held */
    ASSERT_EQ(may_mutex_unlock(m), 0);
    return (void *)(intptr_t)r;
}

static void wait_waiting(int n)
{
    while (atomic_load(&waiting) < n)
        usleep(500);
    /* it counted itself under m; once we can take m it is queued */
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    ASSERT_EQ(may_mutex_unlock(m), 0);
}

static void test_misc(void)
{
    may_co_t *co;
    pthread_t th;
    ASSERT_EQ(may_spawn(&co, timed_wait, NULL, NULL), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(pthread_create(&th, NULL, timed_wait, NULL), 0);
    pthread_join(th, NULL);

    /* two mutexes on one condvar */
    atomic_store(&waiting, 0);
    ASSERT_EQ(may_spawn(&co, wait_once, NULL, NULL), 0);
    wait_waiting(1);
    ASSERT_EQ(may_mutex_lock(m2, MAY_FOREVER), 0);
    ASSERT_EQ(may_cond_wait(c, m2, MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_mutex_trylock(m2), -EBUSY); /* left locked, untouched */
    ASSERT_EQ(may_mutex_unlock(m2), 0);
    may_cond_signal(c);
    void *r;
    ASSERT_EQ(may_join(co, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 0);
    /* with no waiters left the binding is gone */
    ASSERT_EQ(may_mutex_lock(m2, MAY_FOREVER), 0);
    ASSERT_EQ(may_cond_wait(c, m2, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_mutex_unlock(m2), 0);

    /* a signal with nobody waiting is lost */
    may_cond_signal(c);
    may_cond_broadcast(c);
    ASSERT_EQ(may_spawn(&co, wait_once, (void *)(intptr_t)TEST_MS(30), NULL), 0);
    ASSERT_EQ(may_join(co, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, -ETIMEDOUT);

    /* broadcast wakes everyone, coroutines and threads */
    enum { N = 12, T = 3 };
    may_co_t *cs[N];
    pthread_t ts[T];
    atomic_store(&waiting, 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_spawn(&cs[i], wait_once, NULL, NULL), 0);
    for (int i = 0; i < T; i++)
        ASSERT_EQ(pthread_create(&ts[i], NULL, wait_once, NULL), 0);
    wait_waiting(N + T);
    may_cond_broadcast(c);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(may_join(cs[i], &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(ts[i], &r);
        ASSERT_EQ((intptr_t)r, 0);
    }
}

/* ---- cancelled waiters --------------------------------------------------- */

static void test_cancel(void)
{
    /* A cancelled waiter (first in line) and a live one: one signal wakes
     * the live one. */
    may_co_t *a, *b;
    void *r;
    atomic_store(&waiting, 0);
    ASSERT_EQ(may_spawn(&a, wait_once, NULL, NULL), 0);
    wait_waiting(1);
    ASSERT_EQ(may_spawn(&b, wait_once, (void *)(intptr_t)TEST_MS(5000), NULL), 0);
    wait_waiting(2);
    ASSERT_EQ(may_cancel(a), 0);
    ASSERT_EQ(may_join(a, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);
    may_cond_signal(c);
    ASSERT_EQ(may_join(b, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 0);

    /* Racing: the signal may reach a just as it is cancelled; then a must
     * pass it on, so exactly one of them reports the signal and b always
     * wakes without another signal unless a kept it. */
    int rounds = (int)test_scale(300), kept = 0;
    for (int k = 0; k < rounds; k++) {
        atomic_store(&waiting, 0);
        ASSERT_EQ(may_spawn(&a, wait_once, NULL, NULL), 0);
        wait_waiting(1);
        ASSERT_EQ(may_spawn(&b, wait_once, (void *)(intptr_t)TEST_MS(5000), NULL), 0);
        wait_waiting(2);
        if (k % 2)
            usleep(k % 7 * 20);
        may_cancel(a);
        may_cond_signal(c);
        ASSERT_EQ(may_join(a, &r, MAY_FOREVER), MAY_CANCELED);
        intptr_t ra = (intptr_t)r;
        ASSERT(ra == 0 || ra == -ECANCELED);
        if (ra == 0) {
            kept++; /* a took the signal before it saw the cancel */
            may_cond_signal(c);
        }
        ASSERT_EQ(may_join(b, &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, 0);
    }
    (void)kept;
}

int main(void)
{
    ASSERT_EQ(may_mutex_new(&m), 0);
    ASSERT_EQ(may_mutex_new(&m2), 0);
    ASSERT_EQ(may_cond_new(NULL), -EINVAL);
    ASSERT_EQ(may_cond_new(&c), 0);
    test_queue();
    test_misc();
    test_cancel();
    may_cond_free(c);
    may_mutex_free(m);
    may_mutex_free(m2);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
