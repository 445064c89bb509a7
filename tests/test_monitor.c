/* The monitor (src/monitor.c): what busy workers cannot see is noticed.
 *  1. A coroutine spawned just before its parent starts a long CPU loop sits
 *     in the parent worker's runnext; the idle worker is woken to steal it,
 *     so it runs during the loop, not after.
 *  2. When the worker that was the poller leaves it to run a coroutine that
 *     blocks its thread, timers must still fire: an idle worker is woken to
 *     take the poller over, so a ticker on it keeps ticking.
 *  3. A coroutine spawned with MAY_SPAWN_WORKER for a worker that is busy in
 *     a CPU loop waits in that worker's inbox; another worker steals it.
 * Without the monitor, (1) never runs the child during the loop and (2)
 * stalls the ticker for whole windows; without inbox stealing (3) runs the
 * child only after the loop. */
#include "test.h"

#include <time.h>

static atomic_int child_ran;
static atomic_llong child_at;

static void *child(void *arg)
{
    (void)arg;
    atomic_store(&child_at, (long long)may_now());
    atomic_store(&child_ran, 1);
    return NULL;
}

static void *hog(void *arg)
{
    int64_t loop_ns = (int64_t)(intptr_t)arg;
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, child, NULL, NULL), 0);
    int64_t start = may_now();
    while (may_now() - start < loop_ns && !atomic_load(&child_ran))
        ; /* a CPU loop: never yields */
    int ran_during = atomic_load(&child_ran);
    int64_t after = ran_during ? atomic_load(&child_at) - start : -1;
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    return (void *)(intptr_t)(ran_during ? after : -1);
}

static atomic_int looping;

static void *looper(void *arg)
{
    int64_t loop_ns = (int64_t)(intptr_t)arg;
    atomic_store(&looping, 1);
    int64_t start = may_now();
    while (may_now() - start < loop_ns && !atomic_load(&child_ran))
        ;
    atomic_store(&looping, 0);
    return NULL;
}

static atomic_long ticks;
static atomic_int stop;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        atomic_fetch_add(&ticks, 1);
        may_sleep(TEST_MS(1));
    }
    return NULL;
}

static void *blocker(void *arg)
{
    int windows = (int)(intptr_t)arg;
    long worst = -1;
    for (int i = 0; i < windows; i++) {
        may_sleep(TEST_MS(20)); /* let worker 0 become the poller again */
        long t0 = atomic_load(&ticks);
        struct timespec ts = { 0, 100 * 1000000 };
        nanosleep(&ts, NULL); /* blocks worker 0's thread */
        long d = atomic_load(&ticks) - t0;
        if (worst < 0 || d < worst)
            worst = d;
    }
    return (void *)(intptr_t)worst;
}

int main(void)
{
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2 }), 0);
    may_spawn_opts_t on0 = { .worker = 0, .flags = MAY_SPAWN_PINNED };
    may_spawn_opts_t on1 = { .worker = 1, .flags = MAY_SPAWN_PINNED };

    /* 1: a lone child behind a CPU loop (500 ms at most) */
    for (int i = 0; i < 5; i++) {
        atomic_store(&child_ran, 0);
        may_co_t *h;
        void *r;
        ASSERT_EQ(may_spawn(&h, hog, (void *)(intptr_t)TEST_MS(500), &on0), 0);
        ASSERT_EQ(may_join(h, &r, MAY_FOREVER), MAY_DONE);
        long long after = (long long)(intptr_t)r;
        printf("child behind a CPU loop ran after %.1f ms\n", (double)after / 1e6);
        ASSERT_GE(after, 0); /* it ran during the loop */
        ASSERT_LT(after, TEST_MS(400));
    }

    /* 3: a MAY_SPAWN_WORKER child for a worker busy in a loop */
    for (int i = 0; i < 3; i++) {
        atomic_store(&child_ran, 0);
        may_co_t *h, *c;
        ASSERT_EQ(may_spawn(&h, looper, (void *)(intptr_t)TEST_MS(500), &on0), 0);
        while (!atomic_load(&looping))
            ;
        int64_t t0 = may_now();
        ASSERT_EQ(may_spawn(&c, child, NULL,
                            &(may_spawn_opts_t){ .worker = 0, .flags = MAY_SPAWN_WORKER }), 0);
        ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
        int64_t after = atomic_load(&child_at) - t0;
        ASSERT_EQ(may_join(h, NULL, MAY_FOREVER), MAY_DONE);
        printf("MAY_SPAWN_WORKER child of a busy worker ran after %.1f ms\n",
               (double)after / 1e6);
        ASSERT_LT(after, TEST_MS(400)); /* during the 500 ms loop */
    }

    /* 2: timers while the old poller's thread is blocked */
    int windows = (int)test_scale(10) < 4 ? 4 : (int)test_scale(10);
    may_co_t *t, *b;
    void *worst;
    ASSERT_EQ(may_spawn(&t, ticker, NULL, &on1), 0);
    ASSERT_EQ(may_spawn(&b, blocker, (void *)(intptr_t)windows, &on0), 0);
    ASSERT_EQ(may_join(b, &worst, MAY_FOREVER), MAY_DONE);
    atomic_store(&stop, 1);
    ASSERT_EQ(may_join(t, NULL, MAY_FOREVER), MAY_DONE);
    printf("ticker on worker 1: at least %ld ticks in each of %d 100 ms windows "
           "while worker 0's thread was blocked\n",
           (long)(intptr_t)worst, windows);
    ASSERT_GE((long)(intptr_t)worst, 5);

    ASSERT_EQ(may_shutdown(), 0);
    printf("test_monitor: ok\n");
    return 0;
}
