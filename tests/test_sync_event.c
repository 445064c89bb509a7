/* One-shot event and once: waiters (coroutines and threads) released by a
 * fire, and later waits return at once; firing twice; timeouts; a
 * cancelled waiter does not keep the others from waking.  may_once runs its
 * function exactly once while many coroutines and threads race for it, and
 * nobody returns before it finished. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static may_event_t *ev;
static _Atomic int waiting;

static void *wait_ev(void *arg)
{
    int64_t dl = (int64_t)(intptr_t)arg;
    atomic_fetch_add(&waiting, 1);
    return (void *)(intptr_t)may_event_wait(ev, dl ? may_deadline_in(dl) : MAY_FOREVER);
}

static void test_event(void)
{
    ASSERT_EQ(may_event_new(NULL), -EINVAL);
    ASSERT_EQ(may_event_new(&ev), 0);
    ASSERT(!may_event_is_fired(ev));
    ASSERT_EQ(may_event_wait(ev, MAY_NOWAIT), -ETIMEDOUT);

    void *r;
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, wait_ev, (void *)(intptr_t)TEST_MS(20), NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, -ETIMEDOUT);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, wait_ev, (void *)(intptr_t)TEST_MS(20)), 0);
    pthread_join(t, &r);
    ASSERT_EQ((intptr_t)r, -ETIMEDOUT);

    enum { N = 20, T = 3 };
    may_co_t *cs[N];
    pthread_t ts[T];
    atomic_store(&waiting, 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_spawn(&cs[i], wait_ev, NULL, NULL), 0);
    for (int i = 0; i < T; i++)
        ASSERT_EQ(pthread_create(&ts[i], NULL, wait_ev, NULL), 0);
    while (atomic_load(&waiting) < N + T)
        usleep(500);
    usleep(20000);
    for (int i = 0; i < N; i += 3)
        ASSERT_EQ(may_cancel(cs[i]), 0);
    for (int i = 0; i < N; i += 3) {
        ASSERT_EQ(may_join(cs[i], &r, MAY_FOREVER), MAY_CANCELED);
        ASSERT_EQ((intptr_t)r, -ECANCELED);
    }
    ASSERT_EQ(may_event_fire(ev), 0);
    ASSERT(may_event_is_fired(ev));
    ASSERT_EQ(may_event_fire(ev), -EALREADY);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            continue;
        ASSERT_EQ(may_join(cs[i], &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(ts[i], &r);
        ASSERT_EQ((intptr_t)r, 0);
    }
    ASSERT_EQ(may_event_wait(ev, MAY_NOWAIT), 0);
    ASSERT_EQ(may_event_wait(ev, MAY_FOREVER), 0);
    may_event_free(ev);
}

/* ---- once ----------------------------------------------------------------- */

static may_once_t once = MAY_ONCE_INIT;
static _Atomic int runs, finished;

static void init_fn(void *arg)
{
    ASSERT_EQ((intptr_t)arg, 7);
    atomic_fetch_add(&runs, 1);
    if (may_in_coroutine())
        may_sleep(TEST_MS(30)); /* others pile up meanwhile */
    else
        usleep(30000);
    atomic_store(&finished, 1);
}

static void *call_once(void *arg)
{
    (void)arg;
    ASSERT_EQ(may_once(&once, init_fn, (void *)7), 0);
    ASSERT_EQ(atomic_load(&finished), 1);
    return NULL;
}

static void test_once(void)
{
    enum { N = 100, T = 4 };
    may_co_t *cs[N];
    pthread_t ts[T];
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_spawn(&cs[i], call_once, NULL, NULL), 0);
    for (int i = 0; i < T; i++)
        ASSERT_EQ(pthread_create(&ts[i], NULL, call_once, NULL), 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), MAY_DONE);
    for (int i = 0; i < T; i++)
        pthread_join(ts[i], NULL);
    ASSERT_EQ(atomic_load(&runs), 1);
    call_once(NULL);
    ASSERT_EQ(atomic_load(&runs), 1);
    ASSERT_EQ(may_once(NULL, init_fn, NULL), -EINVAL);
}

/* The waiter frees the event as soon as its wait returns, while the firer
 * may still be inside may_event_fire: the fire must not touch the event
 * after a waiter can return (ASan and valgrind would see the use after
 * free).  The firer is a plain thread, so it truly runs in parallel. */
static void *fire_it(void *arg)
{
    may_event_fire(arg);
    return NULL;
}

static void test_free_after_wait(void)
{
    long n = test_scale(20000);
    for (long i = 0; i < n; i++) {
        may_event_t *e;
        ASSERT_EQ(may_event_new(&e), 0);
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, fire_it, e), 0);
        ASSERT_EQ(may_event_wait(e, MAY_FOREVER), 0);
        may_event_free(e);
        pthread_join(t, NULL);
    }
}

int main(void)
{
    test_event();
    test_once();
    test_free_after_wait();
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
