/* Barrier: many rounds with coroutines and threads, exactly one leader per
 * round and nobody leaves a round before everyone arrived; a waiter that
 * times out or is cancelled is withdrawn from its round. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

enum { CO = 14, TH = 2, PARTIES = CO + TH };

static may_barrier_t *b;
static long rounds;
static _Atomic int *leaders, *arrived;

static void *party(void *arg)
{
    (void)arg;
    for (long r = 0; r < rounds; r++) {
        atomic_fetch_add(&arrived[r], 1);
        int k = may_barrier_wait(b, MAY_FOREVER);
        ASSERT(k == 0 || k == MAY_BARRIER_LEADER);
        /* nobody passes before all arrived */
        ASSERT_EQ(atomic_load(&arrived[r]), PARTIES);
        if (k == MAY_BARRIER_LEADER)
            atomic_fetch_add(&leaders[r], 1);
    }
    return NULL;
}

static void test_rounds(void)
{
    rounds = test_scale(300);
    leaders = calloc((size_t)rounds, sizeof *leaders);
    arrived = calloc((size_t)rounds, sizeof *arrived);
    ASSERT_EQ(may_barrier_new(&b, PARTIES), 0);
    may_co_t *c[CO];
    pthread_t t[TH];
    for (int i = 0; i < CO; i++)
        ASSERT_EQ(may_spawn(&c[i], party, NULL, NULL), 0);
    for (int i = 0; i < TH; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, party, NULL), 0);
    for (int i = 0; i < CO; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < TH; i++)
        pthread_join(t[i], NULL);
    for (long r = 0; r < rounds; r++)
        ASSERT_EQ(atomic_load(&leaders[r]), 1);
    may_barrier_free(b);
    free((void *)leaders);
    free((void *)arrived);
}

static _Atomic int started;

static void *wait_dl(void *arg)
{
    int64_t dl = (int64_t)(intptr_t)arg;
    atomic_fetch_add(&started, 1);
    return (void *)(intptr_t)may_barrier_wait(b, dl ? may_deadline_in(dl) : MAY_FOREVER);
}

static void test_withdraw(void)
{
    ASSERT_EQ(may_barrier_new(NULL, 2), -EINVAL);
    ASSERT_EQ(may_barrier_new(&b, 0), -EINVAL);
    ASSERT_EQ(may_barrier_new(&b, 1), 0);
    ASSERT_EQ(may_barrier_wait(b, MAY_NOWAIT), MAY_BARRIER_LEADER); /* alone */
    may_barrier_free(b);

    ASSERT_EQ(may_barrier_new(&b, 2), 0);
    ASSERT_EQ(may_barrier_wait(b, MAY_NOWAIT), -ETIMEDOUT);
    /* a coroutine and a thread time out: neither counts as arrived */
    may_co_t *c;
    void *r;
    ASSERT_EQ(may_spawn(&c, wait_dl, (void *)(intptr_t)TEST_MS(20), NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, -ETIMEDOUT);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, wait_dl, (void *)(intptr_t)TEST_MS(20)), 0);
    pthread_join(t, &r);
    ASSERT_EQ((intptr_t)r, -ETIMEDOUT);
    /* a cancelled one neither */
    atomic_store(&started, 0);
    ASSERT_EQ(may_spawn(&c, wait_dl, NULL, NULL), 0);
    while (atomic_load(&started) < 1)
        usleep(500);
    usleep(10000);
    ASSERT_EQ(may_cancel(c), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);
    /* so a fresh pair still needs both to pass: the first waits... */
    may_co_t *c1;
    atomic_store(&started, 0);
    ASSERT_EQ(may_spawn(&c1, wait_dl, NULL, NULL), 0);
    while (atomic_load(&started) < 1)
        usleep(500);
    usleep(20000);
    ASSERT_EQ(may_join(c1, NULL, MAY_NOWAIT), -ETIMEDOUT);
    /* ...until the second comes, and exactly one of them leads */
    int k = may_barrier_wait(b, may_deadline_in(TEST_MS(5000)));
    ASSERT_EQ(may_join(c1, &r, MAY_FOREVER), MAY_DONE);
    ASSERT(k == 0 || k == MAY_BARRIER_LEADER);
    ASSERT_EQ(k + (intptr_t)r, MAY_BARRIER_LEADER);
    may_barrier_free(b);
}

int main(void)
{
    test_rounds();
    test_withdraw();
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
