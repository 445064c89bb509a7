/* test_lock_thread: may_lock_thread keeps a coroutine on its OS thread
 * across waits (Go's runtime.LockOSThread).
 *
 * The setup makes migration likely: on 2 workers, a coroutine pinned to
 * the sleeper's worker keeps that worker busy in 3 ms slices, so a sleeper
 * woken by its timer is usually run by the other worker.  An unlocked
 * sleeper must be seen to move at least once (else the setup proves
 * nothing); a locked one must never move, and must keep its &errno. */
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int stop;

static void *hog(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        int64_t end = may_now() + TEST_MS(3);
        while (may_now() < end)
            ;
        may_yield();
    }
    return NULL;
}

struct run {
    int lock;
    int moves;
    int errno_moves;
};

static void *sleeper(void *arg)
{
    struct run *r = arg;
    if (r->lock)
        ASSERT_EQ(may_lock_thread(), 0);
    pthread_t t0 = pthread_self();
    int *e0 = &errno;
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(may_sleep(TEST_MS(1)), 0);
        if (!pthread_equal(pthread_self(), t0)) {
            r->moves++;
            t0 = pthread_self();
        }
        if (&errno != e0) {
            r->errno_moves++;
            e0 = &errno;
        }
    }
    if (r->lock)
        ASSERT_EQ(may_unlock_thread(), 0);
    return NULL;
}

static void run_pref(struct run *r)
{
    atomic_store(&stop, 0);
    may_co_t *s, *h;
    ASSERT_EQ(may_spawn(&h, hog, NULL, &(may_spawn_opts_t){ .worker = 0,
                                                          .flags = MAY_SPAWN_PINNED }), 0);
    ASSERT_EQ(may_spawn(&s, sleeper, r, &(may_spawn_opts_t){ .worker = 0,
                                                           .flags = MAY_SPAWN_WORKER }), 0);
    ASSERT_EQ(may_join(s, NULL, -1), MAY_DONE);
    atomic_store(&stop, 1);
    ASSERT_EQ(may_join(h, NULL, -1), MAY_DONE);
}

static void *errors(void *arg)
{
    (void)arg;
    ASSERT_EQ(may_unlock_thread(), -EPERM);
    ASSERT_EQ(may_lock_thread(), 0);
    ASSERT_EQ(may_lock_thread(), 0);
    ASSERT_EQ(may_unlock_thread(), 0);
    ASSERT_EQ(may_unlock_thread(), 0);
    ASSERT_EQ(may_unlock_thread(), -EPERM);
    return NULL;
}

static void *pinned_stays(void *arg)
{
    (void)arg;
    pthread_t t0 = pthread_self();
    ASSERT_EQ(may_lock_thread(), 0);
    ASSERT_EQ(may_unlock_thread(), 0); /* still pinned by its spawn */
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(may_sleep(TEST_MS(1)), 0);
        ASSERT(pthread_equal(pthread_self(), t0));
    }
    return NULL;
}

int main(void)
{
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2 }), 0);
    ASSERT_EQ(may_lock_thread(), -EPERM);
    ASSERT_EQ(may_unlock_thread(), -EPERM);

    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, errors, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, -1), MAY_DONE);

    /* Pinned for life: may_unlock_thread does not unpin it. */
    atomic_store(&stop, 0);
    may_co_t *h;
    ASSERT_EQ(may_spawn(&h, hog, NULL, &(may_spawn_opts_t){ .worker = 0,
                                                          .flags = MAY_SPAWN_PINNED }), 0);
    ASSERT_EQ(may_spawn(&c, pinned_stays, NULL,
                        &(may_spawn_opts_t){ .worker = 0, .flags = MAY_SPAWN_PINNED }), 0);
    ASSERT_EQ(may_join(c, NULL, -1), MAY_DONE);
    atomic_store(&stop, 1);
    ASSERT_EQ(may_join(h, NULL, -1), MAY_DONE);

    /* Unlocked: the setup moves it (a few tries, as it is scheduling). */
    struct run un = { 0 };
    for (int i = 0; i < 5 && un.moves == 0; i++)
        run_pref(&un);
    printf("unlocked: %d moves, errno moved %d times\n", un.moves, un.errno_moves);
    ASSERT_GT(un.moves, 0);

    struct run lk = { .lock = 1 };
    for (int i = 0; i < 3; i++)
        run_pref(&lk);
    printf("locked: %d moves, errno moved %d times\n", lk.moves, lk.errno_moves);
    ASSERT_EQ(lk.moves, 0);
    ASSERT_EQ(lk.errno_moves, 0);
    ASSERT_EQ(may_shutdown(), 0);
    puts("test_lock_thread: ok");
    return 0;
}
