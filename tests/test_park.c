/* park/unpark token semantics and timeouts; sleep accuracy; yield from a
 * thread; cancellation of park, sleep and join. */
#include "test.h"
#include <errno.h>
#include <unistd.h>

static void *token_first(void *arg)
{
    (void)arg;
    /* An unpark before the park: the park returns at once. */
    may_unpark(may_self());
    int64_t t0 = may_now();
    ASSERT_EQ(may_park(MAY_FOREVER), 0);
    ASSERT_LT(may_now() - t0, TEST_MS(100));
    /* Tokens do not accumulate. */
    may_unpark(may_self());
    may_unpark(may_self());
    ASSERT_EQ(may_park(MAY_FOREVER), 0);
    ASSERT_EQ(may_park(MAY_NOWAIT), -ETIMEDOUT);
    /* Timeout. */
    t0 = may_now();
    ASSERT_EQ(may_park(may_deadline_in(TEST_MS(20))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(20));
    /* A deadline in the past does not wait. */
    ASSERT_EQ(may_park(1), -ETIMEDOUT);
    return NULL;
}

static _Atomic int parked_flag;
static void *park_until_unparked(void *arg)
{
    (void)arg;
    atomic_store(&parked_flag, 1);
    int r = may_park(MAY_FOREVER);
    return (void *)(intptr_t)r;
}

static void *sleeper(void *arg)
{
    int64_t ns = (int64_t)(intptr_t)arg;
    int64_t t0 = may_now();
    ASSERT_EQ(may_sleep(ns), 0);
    int64_t late = may_now() - t0 - ns;
    ASSERT_GE(late, 0); /* never early */
    return (void *)(intptr_t)late;
}

static void *sleep_forever(void *arg)
{
    (void)arg;
    atomic_store(&parked_flag, 1);
    return (void *)(intptr_t)may_sleep_until(MAY_FOREVER);
}

static void *joiner(void *arg)
{
    may_co_t *target = arg;
    return (void *)(intptr_t)may_join(target, NULL, MAY_FOREVER);
}

static void *never_started(void *arg)
{
    *(int *)arg = 1;
    return (void *)7;
}

/* The child is pinned to our worker, so it cannot start before we block. */
static void *cancel_before_start(void *arg)
{
    (void)arg;
    int ran = 0;
    may_co_t *c;
    void *r = (void *)1;
    may_spawn_opts_t pin0 = { .flags = MAY_SPAWN_PINNED, .worker = 0 };
    ASSERT_EQ(may_spawn(&c, never_started, &ran, &pin0), 0);
    ASSERT_EQ(may_cancel(c), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(ran, 0);
    ASSERT(r == NULL);
    return NULL;
}

/* A wait whose deadline has already passed lets others run once: a retry
 * loop with an expired deadline does not starve the coroutine it waits for
 * (both are pinned to one worker). */
static _Atomic int setter_ran;
static void *setter(void *arg)
{
    (void)arg;
    atomic_store(&setter_ran, 1);
    return NULL;
}
static void *expired_loop(void *arg)
{
    (void)arg;
    may_co_t *s;
    may_spawn_opts_t pin0 = { .flags = MAY_SPAWN_PINNED, .worker = 0 };
    ASSERT_EQ(may_spawn(&s, setter, NULL, &pin0), 0);
    long spins = 0;
    while (!atomic_load(&setter_ran)) {
        ASSERT_EQ(may_park(1), -ETIMEDOUT);
        ASSERT_LT(++spins, 1000000);
    }
    ASSERT_EQ(may_join(s, NULL, MAY_FOREVER), MAY_DONE);
    return NULL;
}

static void *cancel_then_block(void *arg)
{
    (void)arg;
    may_cancel(may_self());
    ASSERT(may_cancelled());
    /* every following blocking call fails at once, even with a deadline */
    ASSERT_EQ(may_park(may_deadline_in(TEST_MS(1000))), -ECANCELED);
    ASSERT_EQ(may_sleep(TEST_MS(1000)), -ECANCELED);
    ASSERT_EQ(may_park(MAY_NOWAIT), -ECANCELED);
    return (void *)5;
}

static uint64_t may_stats_alive(void)
{
    may_stats_t st;
    may_stats(&st);
    return st.alive;
}

static void wait_flag(void)
{
    while (!atomic_load(&parked_flag))
        usleep(100);
    usleep(2000);
    atomic_store(&parked_flag, 0);
}

int main(void)
{
    may_co_t *c, *c2;
    void *r;
    ASSERT_EQ(may_spawn(&c, token_first, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);

    /* unpark from a plain thread wakes a parked coroutine */
    ASSERT_EQ(may_spawn(&c, park_until_unparked, NULL, NULL), 0);
    wait_flag();
    may_unpark(c);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 0);

    /* may_park from a thread is refused */
    ASSERT_EQ(may_park(MAY_NOWAIT), -EPERM);

    /* sleep accuracy: none early, typical lateness small */
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(may_spawn(&c, sleeper, (void *)(intptr_t)TEST_MS(10), NULL), 0);
        ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
        ASSERT_LT((intptr_t)r, TEST_MS(50));
    }

    /* cancel while parked */
    ASSERT_EQ(may_spawn(&c, park_until_unparked, NULL, NULL), 0);
    wait_flag();
    ASSERT_EQ(may_cancel(c), 0);
    ASSERT_EQ(may_cancel(c), 0); /* twice is harmless */
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);

    /* cancel while sleeping */
    ASSERT_EQ(may_spawn(&c, sleep_forever, NULL, NULL), 0);
    wait_flag();
    ASSERT_EQ(may_cancel(c), 0);
    ASSERT_EQ(may_join(c, &r, may_deadline_in(TEST_MS(5000))), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);

    /* cancel while joining: the joiner's join fails, the target lives on */
    ASSERT_EQ(may_spawn(&c, park_until_unparked, NULL, NULL), 0);
    wait_flag();
    ASSERT_EQ(may_spawn(&c2, joiner, c, NULL), 0);
    usleep(5000);
    ASSERT_EQ(may_cancel(c2), 0);
    ASSERT_EQ(may_join(c2, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, -ECANCELED);
    may_unpark(c);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);

    /* join with a deadline from a thread: times out, handle stays valid */
    ASSERT_EQ(may_spawn(&c, park_until_unparked, NULL, NULL), 0);
    wait_flag();
    int64_t t0 = may_now();
    ASSERT_EQ(may_join(c, NULL, may_deadline_in(TEST_MS(20))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(20));
    ASSERT_EQ(may_join(c, NULL, MAY_NOWAIT), -ETIMEDOUT);
    may_unpark(c);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);

    /* cancel before start: never runs */
    may_spawn_opts_t pin0 = { .flags = MAY_SPAWN_PINNED, .worker = 0 };
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(may_spawn(&c, cancel_before_start, NULL, &pin0), 0);
        ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    }
    /* cancel a finished coroutine: harmless, outcome unchanged */
    ASSERT_EQ(may_spawn(&c, sleeper, (void *)(intptr_t)0, NULL), 0);
    while (may_stats_alive() != 0)
        usleep(100);
    ASSERT_EQ(may_cancel(c), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);

    ASSERT_EQ(may_spawn(&c, expired_loop, NULL, &pin0), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);

    ASSERT_EQ(may_spawn(&c, cancel_then_block, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)r, 5);

    may_yield(); /* from a thread: harmless */
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
