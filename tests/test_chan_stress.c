/* Channels under load: many producers and consumers, coroutines and threads
 * together, every capacity shape; every message is delivered exactly once
 * and each producer's messages arrive in order.  Variants race short
 * deadlines and cancellations against deliveries: a waiter that gives up
 * must never lose or duplicate a message. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

enum { MODE_FOREVER, MODE_DEADLINE, MODE_TRY };

typedef struct {
    size_t cap;
    int prod_co, prod_th, cons_co, cons_th;
    int cancellers; /* extra consumer coroutines cancelled midway */
    long per;       /* messages per producer */
    int mode;       /* how consumers and producers wait */
} config;

static config cfg;
static may_chan_t *ch;
static _Atomic unsigned char *seen;
static _Atomic long received;

static int send_one(long v)
{
    for (;;) {
        int r;
        switch (cfg.mode) {
        case MODE_DEADLINE:
            r = may_chan_send(ch, &v, may_deadline_in(20000));
            break;
        case MODE_TRY:
            r = may_chan_trysend(ch, &v);
            if (r == -EAGAIN) {
                may_yield();
                r = -ETIMEDOUT;
            }
            break;
        default:
            r = may_chan_send(ch, &v, MAY_FOREVER);
        }
        if (r != -ETIMEDOUT)
            return r;
        may_yield();
    }
}

static void *producer(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (long i = 0; i < cfg.per; i++)
        ASSERT_EQ(send_one(id * cfg.per + i), 0);
    return NULL;
}

static void note(long v, long *last)
{
    long nprod = cfg.prod_co + cfg.prod_th;
    ASSERT_GE(v, 0);
    ASSERT_LT(v, nprod * cfg.per);
    long p = v / cfg.per;
    ASSERT_GT(v, last[p]); /* per-producer FIFO */
    last[p] = v;
    ASSERT_EQ(atomic_fetch_add(&seen[v], 1), 0);
    atomic_fetch_add(&received, 1);
}

static void *consumer(void *arg)
{
    (void)arg;
    long nprod = cfg.prod_co + cfg.prod_th;
    long *last = malloc((size_t)nprod * sizeof *last);
    for (long i = 0; i < nprod; i++)
        last[i] = -1;
    long got = 0;
    for (;;) {
        long v = -1;
        int r;
        switch (cfg.mode) {
        case MODE_DEADLINE:
            r = may_chan_recv(ch, &v, may_deadline_in(15000));
            break;
        case MODE_TRY:
            r = may_chan_tryrecv(ch, &v);
            if (r == -EAGAIN) {
                may_yield();
                continue;
            }
            break;
        default:
            r = may_chan_recv(ch, &v, MAY_FOREVER);
        }
        if (r == -ETIMEDOUT) {
            may_yield(); /* the deadline may pass before the wait: let others run */
            continue;
        }
        if (r == -EPIPE)
            break;
        if (r == -ECANCELED)
            break;
        ASSERT_EQ(r, 0);
        note(v, last);
        got++;
    }
    free(last);
    return (void *)(intptr_t)got;
}

static void run(config c)
{
    cfg = c;
    long nprod = c.prod_co + c.prod_th;
    long total = nprod * c.per;
    seen = calloc((size_t)total, 1);
    atomic_store(&received, 0);
    ASSERT_EQ(may_chan_new(&ch, sizeof(long), c.cap), 0);

    may_co_t *pco[64], *cco[64], *xco[64];
    pthread_t pth[8], cth[8];
    for (int i = 0; i < c.cons_co; i++)
        ASSERT_EQ(may_spawn(&cco[i], consumer, NULL, NULL), 0);
    for (int i = 0; i < c.cons_th; i++)
        ASSERT_EQ(pthread_create(&cth[i], NULL, consumer, NULL), 0);
    for (int i = 0; i < c.cancellers; i++)
        ASSERT_EQ(may_spawn(&xco[i], consumer, NULL, NULL), 0);
    for (int i = 0; i < c.prod_co; i++)
        ASSERT_EQ(may_spawn(&pco[i], producer, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < c.prod_th; i++)
        ASSERT_EQ(pthread_create(&pth[i], NULL, producer, (void *)(intptr_t)(c.prod_co + i)), 0);

    /* cancel the extra consumers while messages flow */
    for (int i = 0; i < c.cancellers; i++) {
        while (atomic_load(&received) < total * (i + 1) / (c.cancellers + 2))
            usleep(200);
        ASSERT_EQ(may_cancel(xco[i]), 0);
    }

    for (int i = 0; i < c.prod_co; i++)
        ASSERT_EQ(may_join(pco[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < c.prod_th; i++)
        pthread_join(pth[i], NULL);
    ASSERT_EQ(may_chan_close(ch), 0);

    long sum = 0;
    void *r;
    for (int i = 0; i < c.cons_co; i++) {
        ASSERT_EQ(may_join(cco[i], &r, MAY_FOREVER), MAY_DONE);
        sum += (intptr_t)r;
    }
    for (int i = 0; i < c.cons_th; i++) {
        pthread_join(cth[i], &r);
        sum += (intptr_t)r;
    }
    for (int i = 0; i < c.cancellers; i++) {
        int k = may_join(xco[i], &r, MAY_FOREVER);
        ASSERT(k == MAY_CANCELED || k == MAY_DONE);
        sum += (intptr_t)r;
    }
    ASSERT_EQ(sum, total);
    ASSERT_EQ(atomic_load(&received), total);
    for (long i = 0; i < total; i++)
        ASSERT_EQ(atomic_load(&seen[i]), 1);
    ASSERT_EQ(may_chan_len(ch), 0);
    may_chan_free(ch);
    free((void *)seen);
}

int main(void)
{
    long per = test_scale(20000);
    size_t caps[] = { 0, 1, 64, MAY_CHAN_UNBOUNDED };
    for (int i = 0; i < 4; i++) {
        /* coroutines only, then mixed with threads */
        run((config){ .cap = caps[i], .prod_co = 8, .cons_co = 8, .per = per });
        run((config){ .cap = caps[i], .prod_co = 3, .prod_th = 2, .cons_co = 3, .cons_th = 2,
                      .per = per / 2 });
        /* deadlines race deliveries */
        run((config){ .cap = caps[i], .prod_co = 4, .prod_th = 1, .cons_co = 4, .cons_th = 1,
                      .per = per / 4, .mode = MODE_DEADLINE });
        /* cancellations race deliveries */
        run((config){ .cap = caps[i], .prod_co = 4, .prod_th = 1, .cons_co = 2, .cons_th = 1,
                      .cancellers = 6, .per = per / 2 });
    }
    /* non-blocking only */
    run((config){ .cap = 16, .prod_co = 4, .prod_th = 1, .cons_co = 4, .cons_th = 1,
                  .per = per / 4, .mode = MODE_TRY });
    /* many coroutines on one channel */
    run((config){ .cap = 0, .prod_co = 64, .cons_co = 64, .per = per / 32 });
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
