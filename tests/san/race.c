/* A deliberate data race between two coroutines on two workers, for the
 * TSan build only (registered by tests/san.cmake), and two race-free
 * versions of the same program that must stay silent.
 *
 * Two coroutines, pinned to workers 0 and 1 so they run on two threads at
 * once, wait for each other (through relaxed atomics, which create no
 * happens-before edge that could hide the race), then each adds to one
 * counter in a loop:
 *
 *   san_race race    a plain int, no synchronisation: TSan must report
 *                    "data race" naming the coroutine's function
 *   san_race mutex   the same under a may_mutex (contended: coroutines park
 *                    and are woken across workers): no report, exit 0
 *   san_race chan    the counter is handed back and forth through a
 *                    rendezvous channel, touched only by its holder: no
 *                    report, exit 0
 *
 * The silent versions show that the fiber annotations (src/san.h) give
 * TSan the happens-before edges of parking and waking, so it makes no false
 * reports about memory a coroutine touches after switching threads.
 */
#include "../test.h"

static const char *mode;
static long iters;
static int counter;               /* the shared, plain variable */
static _Atomic int arrived[2];    /* relaxed only: no happens-before */
static may_mutex_t *lock;
static may_chan_t *baton;         /* chan mode: carries nothing but turns */

static __attribute__((noinline)) void racy_add(void)
{
    counter++;
}

static void *adder(void *arg)
{
    int me = (int)(intptr_t)arg;
    ASSERT_EQ(may_worker_id(), me);
    atomic_store_explicit(&arrived[me], 1, memory_order_relaxed);
    while (!atomic_load_explicit(&arrived[1 - me], memory_order_relaxed))
        ; /* both run from here on, on two threads */
    for (long i = 0; i < iters; i++) {
        if (strcmp(mode, "race") == 0) {
            racy_add();
        } else if (strcmp(mode, "mutex") == 0) {
            ASSERT_EQ(may_mutex_lock(lock, MAY_FOREVER), 0);
            counter++;
            ASSERT_EQ(may_mutex_unlock(lock), 0);
        } else {
            /* take the turn, add, pass it on (worker 0 starts) */
            if (me == 1 || i > 0)
                ASSERT_EQ(may_chan_recv(baton, NULL, MAY_FOREVER), 0);
            counter++;
            if (me == 0 || i + 1 < iters)
                ASSERT_EQ(may_chan_send(baton, NULL, MAY_FOREVER), 0);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "mutex";
    /* race: few adds, not scaled.  TSan drops a report when it can no
     * longer recover the earlier access's stack from its per-thread history
     * (history_size), and 20 000 adds each made that happen in about one
     * run in five; with 1 000, 50 runs out of 50 reported.
     * chan: a hand-over is a cross-worker wake-up each time, far slower
     * under TSan than a lock or an add. */
    if (strcmp(mode, "race") == 0)
        iters = 1000;
    else
        iters = test_scale(strcmp(mode, "chan") == 0 ? 2000 : 20000);
    may_config_t cfg = { .workers = 2 };
    ASSERT_EQ(may_configure(&cfg), 0);
    ASSERT_EQ(may_mutex_new(&lock), 0);
    ASSERT_EQ(may_chan_new(&baton, 0, 0), 0);
    may_co_t *co[2];
    for (int i = 0; i < 2; i++) {
        may_spawn_opts_t o = { .name = i ? "adder-1" : "adder-0", .worker = i,
                               .flags = MAY_SPAWN_PINNED };
        ASSERT_EQ(may_spawn(&co[i], adder, (void *)(intptr_t)i, &o), 0);
    }
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(may_join(co[i], NULL, MAY_FOREVER), MAY_DONE);
    printf("san_race %s: counter %d of %ld\n", mode, counter, 2 * iters);
    if (strcmp(mode, "race") != 0)
        ASSERT_EQ(counter, 2 * iters);
    may_chan_free(baton);
    may_mutex_free(lock);
    ASSERT_EQ(may_shutdown(), 0);
    return 0;
}
