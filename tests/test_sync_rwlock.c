/* Reader-writer lock: smoke and bad use; the priority rules (a waiting
 * writer blocks new readers; a write unlock admits the waiting readers
 * before the next writer); cancelled readers and writers neither keep the
 * lock nor block others; timeouts from coroutines and threads; a stress run
 * where readers check an invariant that writers maintain. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static may_rwlock_t *rw;

static void test_smoke(void)
{
    ASSERT_EQ(may_rwlock_new(NULL), -EINVAL);
    ASSERT_EQ(may_rwlock_new(&rw), 0);
    ASSERT_EQ(may_rwlock_rdunlock(rw), -EPERM);
    ASSERT_EQ(may_rwlock_wrunlock(rw), -EPERM);
    ASSERT_EQ(may_rwlock_tryrdlock(rw), 0);
    ASSERT_EQ(may_rwlock_rdlock(rw, MAY_NOWAIT), 0); /* shared */
    ASSERT_EQ(may_rwlock_trywrlock(rw), -EBUSY);
    ASSERT_EQ(may_rwlock_wrlock(rw, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_rwlock_wrunlock(rw), -EPERM);
    ASSERT_EQ(may_rwlock_rdunlock(rw), 0);
    ASSERT_EQ(may_rwlock_rdunlock(rw), 0);
    ASSERT_EQ(may_rwlock_rdunlock(rw), -EPERM);
    ASSERT_EQ(may_rwlock_trywrlock(rw), 0);
    ASSERT_EQ(may_rwlock_tryrdlock(rw), -EBUSY);
    ASSERT_EQ(may_rwlock_trywrlock(rw), -EBUSY);
    ASSERT_EQ(may_rwlock_rdlock(rw, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_rwlock_rdunlock(rw), -EPERM);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
    ASSERT_EQ(may_rwlock_wrlock(rw, MAY_FOREVER), 0);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
}

/* ---- priority ------------------------------------------------------------ */

static _Atomic int seq, queued;

typedef struct {
    int writer;
    int order; /* out: when it got the lock */
    int result;
} party;

static void *take(void *arg)
{
    party *p = arg;
    atomic_fetch_add(&queued, 1);
    int r = p->writer ? may_rwlock_wrlock(rw, may_deadline_in(TEST_MS(10000)))
                      : may_rwlock_rdlock(rw, may_deadline_in(TEST_MS(10000)));
    p->result = r;
    if (r < 0)
        return NULL;
    p->order = atomic_fetch_add(&seq, 1);
    may_sleep(TEST_MS(5));
    if (p->writer)
        ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
    else
        ASSERT_EQ(may_rwlock_rdunlock(rw), 0);
    return NULL;
}

static may_co_t *start(party *p, int writer)
{
    memset(p, 0, sizeof *p);
    p->writer = writer;
    p->order = -1;
    int before = atomic_load(&queued);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, take, p, NULL), 0);
    while (atomic_load(&queued) == before)
        usleep(500);
    usleep(20000); /* let it queue */
    return c;
}

static void test_priority(void)
{
    party w, r2, w2, r3, r4;
    atomic_store(&seq, 0);
    /* A reader holds it; a writer waits; a new reader must wait too. */
    ASSERT_EQ(may_rwlock_rdlock(rw, MAY_FOREVER), 0);
    may_co_t *cw = start(&w, 1);
    ASSERT_EQ(may_rwlock_tryrdlock(rw), -EBUSY);
    ASSERT_EQ(may_rwlock_rdlock(rw, may_deadline_in(TEST_MS(5))), -ETIMEDOUT);
    may_co_t *cr2 = start(&r2, 0);
    ASSERT_EQ(r2.order, -1);
    ASSERT_EQ(may_rwlock_rdunlock(rw), 0);
    ASSERT_EQ(may_join(cw, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(cr2, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(w.order, 0); /* the writer first */
    ASSERT_EQ(r2.order, 1);

    /* A writer holds it; a writer then two readers queue.  On unlock the
     * readers (who queued later) go before the second writer. */
    atomic_store(&seq, 0);
    ASSERT_EQ(may_rwlock_wrlock(rw, MAY_FOREVER), 0);
    may_co_t *cw2 = start(&w2, 1);
    may_co_t *cr3 = start(&r3, 0);
    may_co_t *cr4 = start(&r4, 0);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
    ASSERT_EQ(may_join(cw2, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(cr3, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(cr4, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_LT(r3.order, 2);
    ASSERT_LT(r4.order, 2);
    ASSERT_EQ(w2.order, 2);
    ASSERT_EQ(may_rwlock_trywrlock(rw), 0);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
}

/* ---- cancellation and timeouts ------------------------------------------- */

static void test_cancel(void)
{
    party w, r2, r3;
    /* Reader holds; writer waits; reader r2 waits behind the writer.
     * Cancelling the writer lets r2 in at once (the reader still holds). */
    ASSERT_EQ(may_rwlock_rdlock(rw, MAY_FOREVER), 0);
    may_co_t *cw = start(&w, 1);
    may_co_t *cr2 = start(&r2, 0);
    ASSERT_EQ(may_cancel(cw), 0);
    ASSERT_EQ(may_join(cw, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(w.result, -ECANCELED);
    ASSERT_EQ(may_join(cr2, NULL, may_deadline_in(TEST_MS(3000))), MAY_DONE);
    ASSERT_EQ(r2.result, 0);
    ASSERT_EQ(may_rwlock_tryrdlock(rw), 0); /* no writer waits any more */
    ASSERT_EQ(may_rwlock_rdunlock(rw), 0);
    ASSERT_EQ(may_rwlock_rdunlock(rw), 0);

    /* Writer holds; a reader waits and is cancelled: the lock ends free. */
    ASSERT_EQ(may_rwlock_wrlock(rw, MAY_FOREVER), 0);
    may_co_t *cr3 = start(&r3, 0);
    ASSERT_EQ(may_cancel(cr3), 0);
    ASSERT_EQ(may_join(cr3, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(r3.result, -ECANCELED);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
    ASSERT_EQ(may_rwlock_trywrlock(rw), 0);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);

    /* Cancellation racing the hand-off: the other waiter always gets it. */
    int rounds = (int)test_scale(200);
    for (int k = 0; k < rounds; k++) {
        party a, b;
        int rd = k % 2; /* which side is cancelled */
        ASSERT_EQ(may_rwlock_wrlock(rw, MAY_FOREVER), 0);
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        a.writer = !rd;
        b.writer = 1;
        atomic_store(&queued, 0);
        may_co_t *ca, *cb;
        ASSERT_EQ(may_spawn(&ca, take, &a, NULL), 0);
        ASSERT_EQ(may_spawn(&cb, take, &b, NULL), 0);
        while (atomic_load(&queued) < 2)
            may_yield();
        usleep(k % 5 * 40);
        may_cancel(ca);
        ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
        ASSERT_EQ(may_join(ca, NULL, MAY_FOREVER), MAY_CANCELED);
        ASSERT(a.result == 0 || a.result == -ECANCELED);
        ASSERT_EQ(may_join(cb, NULL, may_deadline_in(TEST_MS(5000))), MAY_DONE);
        ASSERT_EQ(b.result, 0);
        ASSERT_EQ(may_rwlock_trywrlock(rw), 0);
        ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
    }
}

static void *timeouts(void *arg)
{
    (void)arg;
    int64_t t0 = may_now();
    ASSERT_EQ(may_rwlock_wrlock(rw, may_deadline_in(TEST_MS(20))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(20));
    t0 = may_now();
    ASSERT_EQ(may_rwlock_rdlock(rw, may_deadline_in(TEST_MS(20))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(20));
    return NULL;
}

static void test_timeouts(void)
{
    ASSERT_EQ(may_rwlock_wrlock(rw, MAY_FOREVER), 0);
    may_co_t *c;
    pthread_t t;
    ASSERT_EQ(may_spawn(&c, timeouts, NULL, NULL), 0);
    ASSERT_EQ(pthread_create(&t, NULL, timeouts, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    pthread_join(t, NULL);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
    ASSERT_EQ(may_rwlock_trywrlock(rw), 0);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
}

/* ---- stress -------------------------------------------------------------- */

static long a_val, b_val; /* writers keep a == b */
static long iters;
static _Atomic int readers_in, writers_in;

static void *stress_writer(void *arg)
{
    (void)arg;
    for (long i = 0; i < iters; i++) {
        int r = may_rwlock_wrlock(rw, i % 3 ? MAY_FOREVER : may_deadline_in(50000));
        if (r == -ETIMEDOUT) {
            i--;
            may_yield();
            continue;
        }
        ASSERT_EQ(r, 0);
        ASSERT_EQ(atomic_fetch_add(&writers_in, 1), 0);
        ASSERT_EQ(atomic_load(&readers_in), 0);
        a_val++;
        if (i % 16 == 0)
            may_yield();
        b_val++;
        atomic_fetch_sub(&writers_in, 1);
        ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
    }
    return NULL;
}

static void *stress_reader(void *arg)
{
    (void)arg;
    for (long i = 0; i < iters * 4; i++) {
        int r = may_rwlock_rdlock(rw, i % 3 ? MAY_FOREVER : may_deadline_in(50000));
        if (r == -ETIMEDOUT) {
            may_yield();
            continue;
        }
        ASSERT_EQ(r, 0);
        atomic_fetch_add(&readers_in, 1);
        ASSERT_EQ(atomic_load(&writers_in), 0);
        ASSERT_EQ(a_val, b_val);
        if (i % 16 == 0)
            may_yield();
        atomic_fetch_sub(&readers_in, 1);
        ASSERT_EQ(may_rwlock_rdunlock(rw), 0);
    }
    return NULL;
}

static void test_stress(void)
{
    enum { WCO = 8, RCO = 24, WTH = 1, RTH = 2 };
    iters = test_scale(3000);
    may_co_t *c[WCO + RCO];
    pthread_t t[WTH + RTH];
    for (int i = 0; i < WCO + RCO; i++)
        ASSERT_EQ(may_spawn(&c[i], i < WCO ? stress_writer : stress_reader, NULL, NULL), 0);
    for (int i = 0; i < WTH + RTH; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, i < WTH ? stress_writer : stress_reader, NULL), 0);
    for (int i = 0; i < WCO + RCO; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < WTH + RTH; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(a_val, (WCO + WTH) * iters);
    ASSERT_EQ(b_val, a_val);
    ASSERT_EQ(may_rwlock_trywrlock(rw), 0);
    ASSERT_EQ(may_rwlock_wrunlock(rw), 0);
}

int main(void)
{
    test_smoke();
    test_priority();
    test_cancel();
    test_timeouts();
    test_stress();
    may_rwlock_free(rw);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
