/* Select: picks a ready case and reports it; a case not chosen consumes
 * nothing (receives and sends alike); fairness among ready cases; deadlines
 * and cancellation; closed channels; selects meeting each other on a
 * rendezvous channel; NULL channels and unused cases; many cases; and a
 * stress run where selecting senders and receivers (coroutines and threads)
 * race with timeouts and every message arrives exactly once. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static may_chan_t *mk(size_t cap)
{
    may_chan_t *c;
    ASSERT_EQ(may_chan_new(&c, sizeof(long), cap), 0);
    return c;
}

static void put(may_chan_t *c, long v)
{
    ASSERT_EQ(may_chan_trysend(c, &v), 0);
}

static void test_basic(void)
{
    may_chan_t *a = mk(4), *b = mk(4), *z = mk(0);
    long va = -1, vb = -1, vz = -1;
    may_select_case_t cs[3] = {
        { MAY_SELECT_RECV, a, &va, 99 },
        { MAY_SELECT_RECV, b, &vb, 99 },
        { MAY_SELECT_RECV, z, &vz, 99 },
    };
    /* nothing ready */
    ASSERT_EQ(may_select(cs, 3, MAY_NOWAIT), -ETIMEDOUT);
    int64_t t0 = may_now();
    ASSERT_EQ(may_select(cs, 3, may_deadline_in(TEST_MS(20))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(20));
    /* exactly the ready one */
    put(b, 7);
    ASSERT_EQ(may_select(cs, 3, MAY_NOWAIT), 1);
    ASSERT_EQ(vb, 7);
    ASSERT_EQ(cs[1].result, 0);
    ASSERT_EQ(va, -1);
    /* two ready: one is taken, the other stays */
    put(a, 1);
    put(b, 2);
    int i = may_select(cs, 3, MAY_FOREVER);
    ASSERT(i == 0 || i == 1);
    ASSERT_EQ(may_chan_len(a) + may_chan_len(b), 1);
    ASSERT_EQ(may_chan_len(i == 0 ? b : a), 1);
    int j = may_select(cs, 3, MAY_FOREVER);
    ASSERT_EQ(j, 1 - i);
    ASSERT_EQ(va, 1);
    ASSERT_EQ(vb, 2);

    /* send cases: only the one with room is taken, the full one unchanged */
    put(a, 10);
    put(a, 11);
    put(a, 12);
    put(a, 13); /* a is full */
    long s1 = 50, s2 = 60;
    may_select_case_t ss[3] = {
        { MAY_SELECT_SEND, a, &s1, 99 },
        { MAY_SELECT_SEND, b, &s2, 99 },
        { MAY_SELECT_SEND, z, &s2, 99 }, /* nobody receives */
    };
    ASSERT_EQ(may_select(ss, 3, MAY_NOWAIT), 1);
    ASSERT_EQ(may_chan_len(a), 4);
    ASSERT_EQ(may_chan_len(b), 1);
    long v;
    ASSERT_EQ(may_chan_tryrecv(b, &v), 0);
    ASSERT_EQ(v, 60);
    for (long k = 10; k < 14; k++) {
        ASSERT_EQ(may_chan_tryrecv(a, &v), 0);
        ASSERT_EQ(v, k);
    }

    /* a mix of send and receive cases */
    put(b, 5);
    may_select_case_t mix[2] = {
        { MAY_SELECT_SEND, z, &s1, 99 },
        { MAY_SELECT_RECV, b, &vb, 99 },
    };
    ASSERT_EQ(may_select(mix, 2, MAY_NOWAIT), 1);
    ASSERT_EQ(vb, 5);

    /* NULL channels and unused cases never fire; none at all times out */
    may_select_case_t nul[3] = {
        { MAY_SELECT_RECV, NULL, &v, 0 },
        { MAY_SELECT_NONE, a, &v, 0 },
        { MAY_SELECT_SEND, NULL, &v, 0 },
    };
    ASSERT_EQ(may_select(nul, 3, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_select(nul, 3, may_deadline_in(TEST_MS(5))), -ETIMEDOUT);
    ASSERT_EQ(may_select(NULL, 0, MAY_NOWAIT), -ETIMEDOUT);
    put(a, 3);
    nul[1].op = MAY_SELECT_RECV;
    ASSERT_EQ(may_select(nul, 3, MAY_NOWAIT), 1);
    ASSERT_EQ(v, 3);

    /* bad input */
    may_select_case_t bad[1] = { { 42, a, &v, 0 } };
    ASSERT_EQ(may_select(bad, 1, MAY_NOWAIT), -EINVAL);
    ASSERT_EQ(may_select(NULL, 2, MAY_NOWAIT), -EINVAL);
    may_select_case_t badsend[1] = { { MAY_SELECT_SEND, a, NULL, 0 } };
    ASSERT_EQ(may_select(badsend, 1, MAY_NOWAIT), -EINVAL);

    /* closed channels are ready, with -EPIPE; receives drain first */
    put(a, 8);
    ASSERT_EQ(may_chan_close(a), 0);
    may_select_case_t cl[2] = {
        { MAY_SELECT_RECV, a, &va, 99 },
        { MAY_SELECT_RECV, z, &vz, 99 },
    };
    ASSERT_EQ(may_select(cl, 2, MAY_FOREVER), 0);
    ASSERT_EQ(cl[0].result, 0);
    ASSERT_EQ(va, 8);
    ASSERT_EQ(may_select(cl, 2, MAY_FOREVER), 0);
    ASSERT_EQ(cl[0].result, -EPIPE);
    may_select_case_t cls[1] = { { MAY_SELECT_SEND, a, &s1, 99 } };
    ASSERT_EQ(may_select(cls, 1, MAY_FOREVER), 0);
    ASSERT_EQ(cls[0].result, -EPIPE);

    may_chan_free(a);
    may_chan_free(b);
    may_chan_free(z);
}

/* Every ready case gets its turn: over many rounds with all ready, each
 * is chosen a fair share of the time. */
static void test_fairness(void)
{
    enum { K = 4 };
    may_chan_t *c[K];
    may_select_case_t cs[K];
    long v;
    for (int i = 0; i < K; i++) {
        c[i] = mk(1);
        cs[i] = (may_select_case_t){ MAY_SELECT_RECV, c[i], &v, 0 };
    }
    int count[K] = { 0 };
    int rounds = 4000;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < K; i++)
            if (may_chan_len(c[i]) == 0)
                put(c[i], i);
        int i = may_select(cs, K, MAY_NOWAIT);
        ASSERT(i >= 0 && i < K);
        ASSERT_EQ(v, i);
        count[i]++;
    }
    for (int i = 0; i < K; i++) {
        ASSERT_GT(count[i], rounds / K / 2);
        may_chan_free(c[i]);
    }
}

/* ---- blocking selects woken by others ----------------------------------- */

static may_chan_t *ca, *cb, *cz;
static _Atomic int ready;

static void *select_recv_blocking(void *arg)
{
    (void)arg;
    long va = -1, vb = -1;
    may_select_case_t cs[2] = {
        { MAY_SELECT_RECV, ca, &va, 99 },
        { MAY_SELECT_RECV, cb, &vb, 99 },
    };
    atomic_fetch_add(&ready, 1);
    int i = may_select(cs, 2, may_deadline_in(TEST_MS(10000)));
    ASSERT_EQ(i, 1);
    ASSERT_EQ(vb, 42);
    ASSERT_EQ(va, -1);
    return NULL;
}

static void *select_send_blocking(void *arg)
{
    long v = (long)(intptr_t)arg;
    may_select_case_t cs[2] = {
        { MAY_SELECT_SEND, ca, &v, 99 },
        { MAY_SELECT_SEND, cz, &v, 99 },
    };
    atomic_fetch_add(&ready, 1);
    return (void *)(intptr_t)may_select(cs, 2, may_deadline_in(TEST_MS(10000)));
}

static void *select_recv_z(void *arg)
{
    (void)arg;
    long v = -1;
    may_select_case_t cs[2] = {
        { MAY_SELECT_RECV, cz, &v, 99 },
        { MAY_SELECT_RECV, cb, &v, 99 },
    };
    atomic_fetch_add(&ready, 1);
    int i = may_select(cs, 2, may_deadline_in(TEST_MS(10000)));
    ASSERT_EQ(i, 0);
    return (void *)(intptr_t)v;
}

static void *select_forever_cancelled(void *arg)
{
    (void)arg;
    long v;
    may_select_case_t cs[2] = {
        { MAY_SELECT_RECV, cz, &v, 99 },
        { MAY_SELECT_SEND, cz, &v, 99 },
    };
    atomic_fetch_add(&ready, 1);
    return (void *)(intptr_t)may_select(cs, 2, MAY_FOREVER);
}

static void wait_ready(int n)
{
    while (atomic_load(&ready) < n)
        usleep(1000);
    usleep(20000);
}

static void test_blocking(void)
{
    ca = mk(0);
    cb = mk(2);
    cz = mk(0);
    /* a coroutine and a thread selecting; values arrive on b only */
    may_co_t *co;
    pthread_t th;
    atomic_store(&ready, 0);
    ASSERT_EQ(may_spawn(&co, select_recv_blocking, NULL, NULL), 0);
    ASSERT_EQ(pthread_create(&th, NULL, select_recv_blocking, NULL), 0);
    wait_ready(2);
    put(cb, 42);
    put(cb, 42);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    pthread_join(th, NULL);
    /* both were withdrawn from a: nobody receives there now */
    long v = 1;
    ASSERT_EQ(may_chan_trysend(ca, &v), -EAGAIN);

    /* select meets select on a rendezvous channel */
    atomic_store(&ready, 0);
    may_co_t *s, *r;
    ASSERT_EQ(may_spawn(&r, select_recv_z, NULL, NULL), 0);
    wait_ready(1);
    ASSERT_EQ(may_spawn(&s, select_send_blocking, (void *)77, NULL), 0);
    void *res;
    ASSERT_EQ(may_join(s, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, 1); /* the cz case */
    ASSERT_EQ(may_join(r, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, 77);
    ASSERT_EQ(may_chan_tryrecv(ca, &v), -EAGAIN); /* the ca send did not happen */

    /* a select sending to a blocked plain receiver; other way round */
    atomic_store(&ready, 0);
    ASSERT_EQ(may_spawn(&s, select_send_blocking, (void *)78, NULL), 0);
    wait_ready(1);
    ASSERT_EQ(may_chan_recv(cz, &v, may_deadline_in(TEST_MS(5000))), 0);
    ASSERT_EQ(v, 78);
    ASSERT_EQ(may_join(s, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, 1);

    /* cancellation of a blocked select withdraws every case */
    atomic_store(&ready, 0);
    ASSERT_EQ(may_spawn(&s, select_forever_cancelled, NULL, NULL), 0);
    wait_ready(1);
    ASSERT_EQ(may_cancel(s), 0);
    ASSERT_EQ(may_join(s, &res, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)res, -ECANCELED);
    ASSERT_EQ(may_chan_trysend(cz, &v), -EAGAIN);
    ASSERT_EQ(may_chan_tryrecv(cz, &v), -EAGAIN);

    /* close wakes a blocked select with -EPIPE on that case */
    atomic_store(&ready, 0);
    ASSERT_EQ(may_spawn(&s, select_forever_cancelled, NULL, NULL), 0);
    wait_ready(1);
    ASSERT_EQ(may_chan_close(cz), 0);
    ASSERT_EQ(may_join(s, &res, MAY_FOREVER), MAY_DONE);
    ASSERT((intptr_t)res == 0 || (intptr_t)res == 1);

    may_chan_free(ca);
    may_chan_free(cb);
    may_chan_free(cz);
}

/* Many cases (past the on-stack limit), with duplicates of one channel. */
static void test_many(void)
{
    enum { K = 40 };
    may_chan_t *c[K / 2];
    may_select_case_t cs[K];
    long v[K];
    for (int i = 0; i < K / 2; i++)
        c[i] = mk(1);
    for (int i = 0; i < K; i++)
        cs[i] = (may_select_case_t){ MAY_SELECT_RECV, c[i % (K / 2)], &v[i], 0 };
    ASSERT_EQ(may_select(cs, K, MAY_NOWAIT), -ETIMEDOUT);
    put(c[13], 5);
    int i = may_select(cs, K, MAY_FOREVER);
    ASSERT(i == 13 || i == 13 + K / 2);
    ASSERT_EQ(v[i], 5);
    for (int k = 0; k < K / 2; k++)
        ASSERT_EQ(may_chan_len(c[k]), 0);
    for (int k = 0; k < K / 2; k++)
        may_chan_free(c[k]);
}

/* ---- stress -------------------------------------------------------------- */

enum { NCH = 3 };
static may_chan_t *sc[NCH];
static long per;
static _Atomic unsigned char *seen;
static _Atomic long sent_on[NCH], recv_on[NCH];

/* Sends each value through a select over all channels, with a short
 * deadline so that timeouts race completions. */
static void *sel_producer(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (long k = 0; k < per; k++) {
        long v = id * per + k;
        may_select_case_t cs[NCH];
        for (int i = 0; i < NCH; i++)
            cs[i] = (may_select_case_t){ MAY_SELECT_SEND, sc[i], &v, 99 };
        int r;
        while ((r = may_select(cs, NCH, may_deadline_in(20000 + k % 7 * 10000))) == -ETIMEDOUT)
            may_yield(); /* the deadline may pass before the wait */
        ASSERT(r >= 0 && r < NCH);
        ASSERT_EQ(cs[r].result, 0);
        atomic_fetch_add(&sent_on[r], 1);
    }
    return NULL;
}

static void *sel_consumer(void *arg)
{
    (void)arg;
    long got = 0;
    int open = NCH;
    may_chan_t *mine[NCH];
    memcpy(mine, sc, sizeof mine);
    while (open) {
        long v = -1;
        may_select_case_t cs[NCH];
        for (int i = 0; i < NCH; i++)
            cs[i] = (may_select_case_t){ MAY_SELECT_RECV, mine[i], &v, 99 };
        int r = may_select(cs, NCH, may_deadline_in(30000));
        if (r == -ETIMEDOUT) {
            may_yield();
            continue;
        }
        ASSERT(r >= 0 && r < NCH);
        if (cs[r].result == -EPIPE) {
            mine[r] = NULL; /* drop the closed channel */
            open--;
            continue;
        }
        ASSERT_EQ(cs[r].result, 0);
        ASSERT_EQ(atomic_fetch_add(&seen[v], 1), 0);
        atomic_fetch_add(&recv_on[r], 1);
        got++;
    }
    return (void *)(intptr_t)got;
}

/* A plain receiver on one channel, to mix select and non-select parties. */
static void *plain_consumer(void *arg)
{
    int i = (int)(intptr_t)arg;
    long got = 0, v;
    int r;
    while ((r = may_chan_recv(sc[i], &v, may_deadline_in(25000))) != -EPIPE) {
        if (r == -ETIMEDOUT) {
            may_yield();
            continue;
        }
        ASSERT_EQ(r, 0);
        ASSERT_EQ(atomic_fetch_add(&seen[v], 1), 0);
        atomic_fetch_add(&recv_on[i], 1);
        got++;
    }
    return (void *)(intptr_t)got;
}

static void test_stress(size_t cap)
{
    enum { PCO = 6, PTH = 2, CCO = 5, CTH = 1, PLAIN = NCH };
    per = test_scale(6000);
    long total = (PCO + PTH) * per;
    seen = calloc((size_t)total, 1);
    for (int i = 0; i < NCH; i++) {
        sc[i] = mk(cap);
        atomic_store(&sent_on[i], 0);
        atomic_store(&recv_on[i], 0);
    }
    may_co_t *pc[PCO], *cc[CCO + PLAIN];
    pthread_t pt[PTH], ct[CTH];
    for (int i = 0; i < CCO; i++)
        ASSERT_EQ(may_spawn(&cc[i], sel_consumer, NULL, NULL), 0);
    for (int i = 0; i < PLAIN; i++)
        ASSERT_EQ(may_spawn(&cc[CCO + i], plain_consumer, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < CTH; i++)
        ASSERT_EQ(pthread_create(&ct[i], NULL, sel_consumer, NULL), 0);
    for (int i = 0; i < PCO; i++)
        ASSERT_EQ(may_spawn(&pc[i], sel_producer, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < PTH; i++)
        ASSERT_EQ(pthread_create(&pt[i], NULL, sel_producer, (void *)(intptr_t)(PCO + i)), 0);
    for (int i = 0; i < PCO; i++)
        ASSERT_EQ(may_join(pc[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < PTH; i++)
        pthread_join(pt[i], NULL);
    for (int i = 0; i < NCH; i++)
        ASSERT_EQ(may_chan_close(sc[i]), 0);
    long sum = 0;
    void *r;
    for (int i = 0; i < CCO + PLAIN; i++) {
        ASSERT_EQ(may_join(cc[i], &r, MAY_FOREVER), MAY_DONE);
        sum += (intptr_t)r;
    }
    for (int i = 0; i < CTH; i++) {
        pthread_join(ct[i], &r);
        sum += (intptr_t)r;
    }
    ASSERT_EQ(sum, total);
    for (long i = 0; i < total; i++)
        ASSERT_EQ(atomic_load(&seen[i]), 1);
    /* only the chosen case of each select took effect */
    for (int i = 0; i < NCH; i++) {
        ASSERT_EQ(atomic_load(&sent_on[i]), atomic_load(&recv_on[i]));
        may_chan_free(sc[i]);
    }
    free((void *)seen);
}

int main(void)
{
    test_basic();
    test_fairness();
    test_blocking();
    test_many();
    test_stress(0);
    test_stress(2);
    test_stress(MAY_CHAN_UNBOUNDED);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
