/* Yield on a runtime with a single worker, where may_yield takes the ring's
 * head and queues itself at the tail in one step (no thieves):
 *   - round robin: NY unpinned coroutines yielding in a loop make progress
 *     in lock step;
 *   - a coroutine woken by a yielder (it goes to runnext) runs right after
 *     that yielder, before any other yielder: the one-step path must leave
 *     runnext to the general pick;
 *   - work from a plain thread (the global queue) is not starved by
 *     yields alone: the one-step path still counts the scheduling rounds
 *     after which a worker looks outside its ring. */
#include "test.h"

#include <unistd.h>

#define NY 8

static _Atomic long counts[NY];
static _Atomic int go, stop_all, waking = 1;
static _Atomic int last = -1;     /* the yielder that ran most recently */
static _Atomic long wakes_sent, wakes_right_after, wakes_seen;
static may_co_t *_Atomic sleeper_co;

static void *sleeper(void *arg)
{
    (void)arg;
    while (may_park(MAY_FOREVER) == 0 && !atomic_load(&stop_all)) {
        atomic_fetch_add(&wakes_seen, 1);
        /* woken by yielder 0, which then yielded: nobody ran in between */
        if (atomic_load(&last) == 0)
            atomic_fetch_add(&wakes_right_after, 1);
    }
    return NULL;
}

static void *yielder(void *arg)
{
    int i = (int)(intptr_t)arg;
    while (!atomic_load(&go))
        may_yield();
    while (!atomic_load(&stop_all)) {
        long n = atomic_fetch_add(&counts[i], 1);
        atomic_store(&last, i);
        if (i == 0 && n % 64 == 0 && atomic_load(&waking)) {
            atomic_fetch_add(&wakes_sent, 1);
            may_unpark(atomic_load(&sleeper_co));
        }
        may_yield();
    }
    return NULL;
}

static _Atomic int outside_ran;
static void *outside(void *arg)
{
    (void)arg;
    atomic_store(&outside_ran, 1);
    return NULL;
}

int main(void)
{
    may_config_t cfg = { .workers = 1 };
    ASSERT_EQ(may_configure(&cfg), 0);
    may_co_t *sl;
    ASSERT_EQ(may_spawn(&sl, sleeper, NULL, NULL), 0);
    atomic_store(&sleeper_co, sl);
    may_co_t *ys[NY];
    for (int i = 0; i < NY; i++)
        ASSERT_EQ(may_spawn(&ys[i], yielder, (void *)(intptr_t)i, NULL), 0);
    usleep(20000);
    atomic_store(&go, 1);
    usleep(50000);
    /* work from this plain thread gets to run among the yielders, with
     * nothing else but yields going on */
    atomic_store(&waking, 0);
    usleep(10000);
    may_co_t *oc;
    ASSERT_EQ(may_spawn(&oc, outside, NULL, NULL), 0);
    ASSERT_EQ(may_join(oc, NULL, may_deadline_in(TEST_MS(2000))), MAY_DONE);
    ASSERT_EQ(atomic_load(&outside_ran), 1);
    atomic_store(&stop_all, 1);
    for (int i = 0; i < NY; i++)
        ASSERT_EQ(may_join(ys[i], NULL, MAY_FOREVER), MAY_DONE);
    may_unpark(sl);
    ASSERT_EQ(may_join(sl, NULL, MAY_FOREVER), MAY_DONE);

    long mn, mx;
    test_min_max(counts, NY, &mn, &mx);
    long sent = atomic_load(&wakes_sent), seen = atomic_load(&wakes_seen),
         right = atomic_load(&wakes_right_after);
    printf("yield on one worker: min %ld max %ld; sleeper woken %ld times, ran %ld times, "
           "%ld of them right after its waker\n",
           mn, mx, sent, seen, right);
    ASSERT_GT(mn, 100);
    /* round robin; the sleeper and the outside coroutine take turns too */
    ASSERT_LE(mx - mn, 2);
    ASSERT_GT(seen, 10);
    /* every wake but the last few (stop_all) ran before the next yielder */
    ASSERT_GE(right, seen - 1);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
