/* may_select_any: every kind of case, through the public API, from plain
 * threads and coroutines; exactly one case happens; fairness; a select
 * never meets itself; abandoned cases leave their objects as they were. */
#include "test.h"

#include <errno.h>
#include <may.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void t_deadline(void)
{
    may_chan_t *ch;
    ASSERT_EQ(may_chan_make(&ch, int, 0), 0);
    int v = 0;
    int64_t t0 = may_now();
    may_case_t cs[] = { may_case_recv(ch, &v), may_case_deadline(t0 + TEST_MS(30)),
                        may_case_deadline(t0 + TEST_MS(5000)) };
    ASSERT_EQ(may_select_any(cs, 3, MAY_FOREVER), 1);
    ASSERT_EQ(cs[1].result, 0);
    ASSERT_GE(may_now() - t0, TEST_MS(30));
    /* the call's own deadline first: -ETIMEDOUT */
    cs[1] = may_case_deadline(may_now() + TEST_MS(5000));
    ASSERT_EQ(may_select_any(cs, 3, may_now() + TEST_MS(20)), -ETIMEDOUT);
    /* a passed DEADLINE case is ready, even with MAY_NOWAIT */
    cs[2] = may_case_deadline(1);
    ASSERT_EQ(may_select_any(cs, 3, MAY_NOWAIT), 2);
    /* MAY_FOREVER as a case deadline: never ready */
    cs[2] = may_case_deadline(MAY_FOREVER);
    ASSERT_EQ(may_select_any(cs, 3, MAY_NOWAIT), -ETIMEDOUT);
    may_chan_free(ch);
}

static void t_timer(void)
{
    may_timer_t *t;
    may_chan_t *ch;
    ASSERT_EQ(may_timer_new(&t), 0);
    ASSERT_EQ(may_chan_make(&ch, int, 1), 0);
    int v;
    may_case_t cs[] = { may_case_recv(ch, &v), may_case_timer(t) };
    /* stopped: never fires */
    ASSERT_EQ(may_select_any(cs, 2, may_now() + TEST_MS(20)), -ETIMEDOUT);
    ASSERT_EQ(may_timer_reset(t, may_now() + TEST_MS(10), 0), 0);
    ASSERT_EQ(may_select_any(cs, 2, may_now() + TEST_MS(5000)), 1);
    /* taken: not again */
    ASSERT_EQ(may_select_any(cs, 2, may_now() + TEST_MS(30)), -ETIMEDOUT);
    /* a firing nobody took stays pending for the select */
    ASSERT_EQ(may_timer_reset(t, may_now(), 0), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_select_any(cs, 2, MAY_NOWAIT), 1);
    /* stop discards it */
    ASSERT_EQ(may_timer_reset(t, may_now(), 0), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_timer_stop(t), 1);
    ASSERT_EQ(may_select_any(cs, 2, may_now() + TEST_MS(30)), -ETIMEDOUT);
    /* the channel wins when it is ready first */
    int one = 1;
    ASSERT_EQ(may_chan_send(ch, &one, MAY_NOWAIT), 0);
    ASSERT_EQ(may_timer_reset(t, may_now() + TEST_MS(5000), 0), 0);
    ASSERT_EQ(may_select_any(cs, 2, MAY_FOREVER), 0);
    ASSERT_EQ(v, 1);
    ASSERT_EQ(may_timer_stop(t), 1);
    may_timer_free(t);
    may_chan_free(ch);
}

static void *writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_write(fd, "x", 1, MAY_FOREVER), 1);
    return NULL;
}

static void *closer(void *arg)
{
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_fd_close((int)(intptr_t)arg), 0);
    return NULL;
}

static void t_fd(void)
{
    int p[2];
    ASSERT_EQ(test_fd_pipe(p), 0);
    may_case_t cs[] = { may_case_fd(p[0], MAY_READ), may_case_deadline(may_now() + TEST_MS(5000)) };
    ASSERT_EQ(may_select_any(cs, 2, MAY_NOWAIT), -ETIMEDOUT);
    may_co_t *w;
    ASSERT_EQ(may_spawn(&w, writer, (void *)(intptr_t)p[1], NULL), 0);
    ASSERT_EQ(may_select_any(cs, 2, MAY_FOREVER), 0);
    ASSERT_EQ(cs[0].result, MAY_READ);
    ASSERT_EQ(may_join(w, NULL, MAY_FOREVER), MAY_DONE);
    char c;
    ASSERT_EQ(may_read(p[0], &c, 1, MAY_FOREVER), 1);
    /* writable at once */
    cs[0] = may_case_fd(p[1], MAY_WRITE);
    ASSERT_EQ(may_select_any(cs, 1, MAY_NOWAIT), 0);
    ASSERT_EQ(cs[0].result, MAY_WRITE);
    /* bad events: -EINVAL; a negative fd: never ready */
    cs[0] = may_case_fd(p[0], 0);
    ASSERT_EQ(may_select_any(cs, 1, MAY_NOWAIT), -EINVAL);
    cs[0] = may_case_fd(-1, MAY_READ);
    ASSERT_EQ(may_select_any(cs, 1, MAY_NOWAIT), -ETIMEDOUT);
    /* closed while waiting: -EBADF as the case's result */
    may_co_t *cl;
    ASSERT_EQ(may_spawn(&cl, closer, (void *)(intptr_t)p[0], NULL), 0);
    cs[0] = may_case_fd(p[0], MAY_READ);
    ASSERT_EQ(may_select_any(cs, 2, MAY_FOREVER), 0);
    ASSERT_EQ(cs[0].result, -EBADF);
    ASSERT_EQ(may_join(cl, NULL, MAY_FOREVER), MAY_DONE);
    may_fd_close(p[1]);
}

static void *ret42(void *arg)
{
    may_sleep((int64_t)(intptr_t)arg);
    return (void *)42;
}

static void t_join(void)
{
    may_co_t *c;
    void *res = NULL;
    ASSERT_EQ(may_spawn(&c, ret42, (void *)(intptr_t)TEST_MS(20), NULL), 0);
    may_case_t cs[] = { may_case_join(c, &res), may_case_deadline(may_now() + TEST_MS(5000)) };
    ASSERT_EQ(may_select_any(cs, 2, MAY_FOREVER), 0);
    ASSERT_EQ(cs[0].result, MAY_DONE);
    ASSERT_PTR_EQ(res, 42);
    /* abandoned: the coroutine can still be joined (and selected) after */
    ASSERT_EQ(may_spawn(&c, ret42, (void *)(intptr_t)TEST_MS(60), NULL), 0);
    cs[0] = may_case_join(c, &res);
    cs[1] = may_case_deadline(may_now() + TEST_MS(10));
    ASSERT_EQ(may_select_any(cs, 2, MAY_FOREVER), 1);
    ASSERT_EQ(may_select_any(cs, 1, MAY_NOWAIT), -ETIMEDOUT);
    res = NULL;
    ASSERT_EQ(may_join(c, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_PTR_EQ(res, 42);
    /* ended already: ready at once */
    ASSERT_EQ(may_spawn(&c, ret42, (void *)0, NULL), 0);
    may_sleep(TEST_MS(20));
    cs[0] = may_case_join(c, NULL);
    ASSERT_EQ(may_select_any(cs, 1, MAY_NOWAIT), 0);
    ASSERT_EQ(cs[0].result, MAY_DONE);
    /* a detached one (still running: its handle is valid): -EINVAL */
    may_co_t *kid;
    ASSERT_EQ(may_spawn(&kid, ret42, (void *)(intptr_t)TEST_MS(300), NULL), 0);
    ASSERT_EQ(may_detach(kid), 0);
    cs[0] = may_case_join(kid, NULL);
    ASSERT_EQ(may_select_any(cs, 1, MAY_NOWAIT), -EINVAL);
    /* self: -EINVAL */
    if (may_self()) {
        cs[0] = may_case_join(may_self(), NULL);
        ASSERT_EQ(may_select_any(cs, 1, MAY_NOWAIT), -EINVAL);
    }
}

/* A coroutine that ends while a select is abandoning its JOIN case: the
 * race between the withdraw and the end, many times. */
static void t_join_race(void)
{
    for (int i = 0; i < test_scale(300); i++) {
        may_co_t *c;
        void *res = NULL;
        ASSERT_EQ(may_spawn(&c, ret42, (void *)(intptr_t)(i % 3 ? 1000 * (i % 50) : 0), NULL), 0);
        may_case_t cs[] = { may_case_join(c, &res), may_case_deadline(may_now() + 1000 * (i % 40)) };
        int r = may_select_any(cs, 2, MAY_FOREVER);
        ASSERT(r == 0 || r == 1);
        if (r == 1) {
            ASSERT_EQ(may_join(c, &res, MAY_FOREVER), MAY_DONE);
        } else {
            ASSERT_EQ(cs[0].result, MAY_DONE);
        }
        ASSERT_PTR_EQ(res, 42);
    }
}

static void *fire_later(void *arg)
{
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_event_fire(arg), 0);
    return NULL;
}

static void t_event_ctx(void)
{
    may_event_t *e;
    ASSERT_EQ(may_event_new(&e), 0);
    may_ctx_t *ctx;
    ASSERT_EQ(may_ctx_new(&ctx, NULL, may_now() + TEST_MS(200)), 0);
    may_case_t cs[] = { may_case_event(e), may_case_ctx(ctx) };
    may_co_t *f;
    ASSERT_EQ(may_spawn(&f, fire_later, e, NULL), 0);
    ASSERT_EQ(may_select_any(cs, 2, MAY_FOREVER), 0);
    ASSERT_EQ(may_join(f, NULL, MAY_FOREVER), MAY_DONE);
    /* fired stays ready */
    ASSERT_EQ(may_select_any(cs, 1, MAY_NOWAIT), 0);
    /* the context's deadline */
    ASSERT_EQ(may_select_any(&cs[1], 1, MAY_FOREVER), 0);
    ASSERT_EQ(cs[1].result, -ETIMEDOUT);
    may_ctx_free(ctx);
    ASSERT_EQ(may_ctx_new(&ctx, NULL, MAY_FOREVER), 0);
    cs[1] = may_case_ctx(ctx);
    ASSERT_EQ(may_select_any(&cs[1], 1, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_ctx_cancel(ctx, -EPIPE), 0);
    ASSERT_EQ(may_select_any(&cs[1], 1, MAY_NOWAIT), 0);
    ASSERT_EQ(cs[1].result, -ECANCELED);
    ASSERT_EQ(may_ctx_cause(ctx), -EPIPE);
    may_ctx_free(ctx);
    may_event_free(e);
}

/* Two ready channels: each chosen about half the time. */
static void t_fair(void)
{
    may_chan_t *a, *b;
    ASSERT_EQ(may_chan_make(&a, int, 1), 0);
    ASSERT_EQ(may_chan_make(&b, int, 1), 0);
    int n[2] = { 0, 0 }, v = 7, x;
    may_timer_t *t;
    ASSERT_EQ(may_timer_new(&t), 0);
    for (int i = 0; i < 2000; i++) {
        may_chan_trysend(a, &v);
        may_chan_trysend(b, &v);
        may_case_t cs[] = { may_case_recv(a, &x), may_case_recv(b, &x), may_case_timer(t) };
        int r = may_select_any(cs, 3, MAY_NOWAIT);
        ASSERT(r == 0 || r == 1);
        n[r]++;
    }
    ASSERT_GT(n[0], 800);
    ASSERT_GT(n[1], 800);
    may_timer_free(t);
    may_chan_free(a);
    may_chan_free(b);
}

/* A select that sends and receives on one rendezvous channel waits for
 * someone else. */
static void t_self(void)
{
    may_chan_t *ch;
    ASSERT_EQ(may_chan_make(&ch, int, 0), 0);
    int out = 5, in = 0;
    may_case_t cs[] = { may_case_send(ch, &out), may_case_recv(ch, &in) };
    ASSERT_EQ(may_select_any(cs, 2, may_now() + TEST_MS(20)), -ETIMEDOUT);
    ASSERT_EQ(may_select_any(cs, 2, MAY_NOWAIT), -ETIMEDOUT);
    may_chan_free(ch);
}

/* Exactly one case happens: producers send N values over two channels,
 * consumers select over both and a short ticker; every value arrives
 * once, and no timer firing is taken twice. */
#define PRODUCERS 4
#define CONSUMERS 4
static may_chan_t *sa, *sb;
static _Atomic long received, sum_in, ticks;
static long per_producer;

static void *producer(void *arg)
{
    long base = (long)(intptr_t)arg * per_producer;
    for (long i = 0; i < per_producer; i++) {
        long v = base + i + 1;
        may_case_t cs[] = { may_case_send(sa, &v), may_case_send(sb, &v) };
        ASSERT(may_select_any(cs, 2, MAY_FOREVER) >= 0);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    may_timer_t *t;
    ASSERT_EQ(may_ticker_new(&t, 200000), 0);
    /* A closed channel's case becomes a nil one (Go's idiom): sb is
     * buffered, so it may still hold values when sa reports -EPIPE. */
    may_chan_t *from[2] = { sa, sb };
    while (from[0] || from[1]) {
        long v;
        may_case_t cs[] = { may_case_recv(from[0], &v), may_case_recv(from[1], &v), may_case_timer(t) };
        int r = may_select_any(cs, 3, MAY_FOREVER);
        ASSERT(r >= 0);
        if (r == 2) {
            atomic_fetch_add(&ticks, 1);
            continue;
        }
        if (cs[r].result == -EPIPE) {
            from[r] = NULL;
            continue;
        }
        atomic_fetch_add(&received, 1);
        atomic_fetch_add(&sum_in, v);
    }
    may_timer_free(t);
    return NULL;
}

static void t_stress(void)
{
    per_producer = test_scale(20000);
    ASSERT_EQ(may_chan_make(&sa, long, 0), 0);
    ASSERT_EQ(may_chan_make(&sb, long, 4), 0);
    may_co_t *p[PRODUCERS], *c[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        ASSERT_EQ(may_spawn(&c[i], consumer, NULL, NULL), 0);
    for (int i = 0; i < PRODUCERS; i++)
        ASSERT_EQ(may_spawn(&p[i], producer, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < PRODUCERS; i++)
        ASSERT_EQ(may_join(p[i], NULL, MAY_FOREVER), MAY_DONE);
    may_chan_close(sa);
    may_chan_close(sb);
    for (int i = 0; i < CONSUMERS; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    long n = PRODUCERS * per_producer;
    ASSERT_EQ(atomic_load(&received), n);
    ASSERT_EQ(atomic_load(&sum_in), n * (n + 1) / 2);
    may_chan_free(sa);
    may_chan_free(sb);
}

/* Selects meeting selects on rendezvous channels, each also waiting on a
 * timer that never fires: every exchange needs one side queued and the
 * other finding it, the case where a select can start over.  Both must
 * make progress. */
static may_chan_t *ra, *rb;
static void *sel_peer(void *arg)
{
    int side = (int)(intptr_t)arg;
    may_timer_t *t;
    ASSERT_EQ(may_timer_new(&t), 0);
    long v = side, got = 0, n = test_scale(20000);
    for (long i = 0; i < n; i++) {
        may_case_t cs[] = { side ? may_case_send(ra, &v) : may_case_recv(ra, &got),
                            side ? may_case_recv(rb, &got) : may_case_send(rb, &v),
                            may_case_timer(t) };
        int r = may_select_any(cs, 3, may_now() + TEST_MS(10000));
        ASSERT(r == 0 || r == 1);
    }
    may_timer_free(t);
    return NULL;
}

static void t_select_pairs(void)
{
    ASSERT_EQ(may_chan_make(&ra, long, 0), 0);
    ASSERT_EQ(may_chan_make(&rb, long, 0), 0);
    may_co_t *a, *b;
    int64_t t0 = may_now();
    ASSERT_EQ(may_spawn(&a, sel_peer, (void *)0, NULL), 0);
    ASSERT_EQ(may_spawn(&b, sel_peer, (void *)1, NULL), 0);
    ASSERT_EQ(may_join(a, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(b, NULL, MAY_FOREVER), MAY_DONE);
    printf("select pairs: %ld exchanges in %.1f ms\n", test_scale(20000),
           (may_now() - t0) / 1e6);
    may_chan_free(ra);
    may_chan_free(rb);
}

/* Cancellation: a waiting select fails with -ECANCELED; a ready case
 * still wins over it. */
static void *sel_forever(void *arg)
{
    may_timer_t *t = arg;
    may_case_t cs[] = { may_case_timer(t), may_case_deadline(MAY_FOREVER) };
    int r = may_select_any(cs, 2, MAY_FOREVER);
    ASSERT_EQ(r, -ECANCELED);
    /* cancelled for good, but a ready case completes */
    ASSERT_EQ(may_timer_reset(t, 0, 0), 0);
    while (may_select_any(cs, 1, MAY_NOWAIT) != 0)
        may_yield();
    return NULL;
}

static void t_cancel(void)
{
    may_timer_t *t;
    ASSERT_EQ(may_timer_new(&t), 0);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, sel_forever, t, NULL), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_cancel(c), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_CANCELED);
    may_timer_free(t);
}

/* The old channel-only may_select still works through the new engine. */
static void t_compat(void)
{
    may_chan_t *ch;
    ASSERT_EQ(may_chan_make(&ch, int, 1), 0);
    int v = 3, x = 0;
    ASSERT_EQ(may_chan_send(ch, &v, MAY_NOWAIT), 0);
    may_select_case_t cs[] = { { MAY_SELECT_SEND, ch, &v, 0 }, { MAY_SELECT_RECV, ch, &x, 0 } };
    ASSERT_EQ(may_select(cs, 2, MAY_FOREVER), 1);
    ASSERT_EQ(x, 3);
    cs[0].op = 9;
    ASSERT_EQ(may_select(cs, 2, MAY_FOREVER), -EINVAL);
    may_case_t bad = { .op = 99 };
    ASSERT_EQ(may_select_any(&bad, 1, MAY_NOWAIT), -EINVAL);
    ASSERT_EQ(may_select_any(NULL, 1, MAY_NOWAIT), -EINVAL);
    ASSERT_EQ(may_select_any(NULL, 0, MAY_NOWAIT), -ETIMEDOUT);
    may_chan_free(ch);
}

/* More cases than fit on the stack. */
static void t_many(void)
{
    enum { N = 40 };
    may_chan_t *ch[N];
    may_case_t cs[N];
    int v = 1, x;
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(may_chan_make(&ch[i], int, 1), 0);
        cs[i] = may_case_recv(ch[i], &x);
    }
    ASSERT_EQ(may_chan_send(ch[33], &v, MAY_NOWAIT), 0);
    ASSERT_EQ(may_select_any(cs, N, MAY_FOREVER), 33);
    for (int i = 0; i < N; i++)
        may_chan_free(ch[i]);
}

int main(void)
{
    test_run_both(t_deadline);
    test_run_both(t_timer);
    test_run_both(t_fd);
    test_run_both(t_join);
    test_run_both(t_join_race);
    test_run_both(t_event_ctx);
    test_run_both(t_fair);
    test_run_both(t_self);
    test_run_both(t_compat);
    test_run_both(t_many);
    t_stress();
    t_select_pairs();
    t_cancel();
    printf("ok\n");
    return 0;
}
