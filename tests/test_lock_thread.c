/* test_lock_thread: may_lock_thread keeps a coroutine on its OS thread
 * across waits (Go's runtime.LockOSThread).
 *
 * The setup moves an unlocked coroutine every time: the mover parks, and a
 * coroutine pinned to the other worker unparks it, which readies it on
 * that worker.  So an unlocked mover must change threads every round (else
 * the setup proves nothing); a locked one must never change, and must keep
 * its &errno. */
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

/* pthread_self and __errno_location are declared const, so a compiler may
 * compute them once per function (the very hazard the lock is for): call
 * them through volatile pointers to see the thread we are on now. */
static pthread_t (*volatile self_fn)(void) = pthread_self;
#ifdef _WIN32
static int *(*volatile errno_fn)(void) = _errno; /* the CRT's errno */
#else
static int *(*volatile errno_fn)(void) = __errno_location;
#endif

static void *waker(void *arg)
{
    may_sleep(200000);
    may_unpark(arg);
    return NULL;
}

struct run {
    int lock;
    int moves;
    int errno_moves;
};

#define ROUNDS 20

static void *mover(void *arg)
{
    struct run *r = arg;
    if (r->lock)
        ASSERT_EQ(may_lock_thread(), 0);
    pthread_t t0 = self_fn();
    int *e0 = errno_fn();
    for (int i = 0; i < ROUNDS; i++) {
        int other = 1 - may_worker_id();
        may_co_t *w;
        ASSERT_EQ(may_spawn(&w, waker, may_self(),
                            &(may_spawn_opts_t){ .worker = other, .flags = MAY_SPAWN_PINNED }),
                  0);
        ASSERT_EQ(may_park(-1), 0);
        ASSERT_EQ(may_join(w, NULL, -1), MAY_DONE);
        if (!pthread_equal(self_fn(), t0)) {
            r->moves++;
            t0 = self_fn();
        }
        if (errno_fn() != e0) {
            r->errno_moves++;
            e0 = errno_fn();
        }
    }
    if (r->lock)
        ASSERT_EQ(may_unlock_thread(), 0);
    return NULL;
}

static void run_pref(struct run *r)
{
    may_co_t *s;
    ASSERT_EQ(may_spawn(&s, mover, r, NULL), 0);
    ASSERT_EQ(may_join(s, NULL, -1), MAY_DONE);
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
    pthread_t t0 = self_fn();
    ASSERT_EQ(may_lock_thread(), 0);
    ASSERT_EQ(may_unlock_thread(), 0); /* still pinned by its spawn */
    for (int i = 0; i < 20; i++) {
        may_co_t *w;
        ASSERT_EQ(may_spawn(&w, waker, may_self(),
                            &(may_spawn_opts_t){ .worker = 1, .flags = MAY_SPAWN_PINNED }),
                  0);
        ASSERT_EQ(may_park(-1), 0);
        ASSERT_EQ(may_join(w, NULL, -1), MAY_DONE);
        ASSERT(pthread_equal(self_fn(), t0));
    }
    return NULL;
}

int main(void)
{
    /* no hand-off: the mover picks "the other worker" as 1 - its own, so
     * it must never run on a spare (index 2 or more) */
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2, .no_handoff = true }), 0);
    ASSERT_EQ(may_lock_thread(), -EPERM);
    ASSERT_EQ(may_unlock_thread(), -EPERM);

    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, errors, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, -1), MAY_DONE);

    /* Pinned for life: may_unlock_thread does not unpin it. */
    ASSERT_EQ(may_spawn(&c, pinned_stays, NULL,
                        &(may_spawn_opts_t){ .worker = 0, .flags = MAY_SPAWN_PINNED }), 0);
    ASSERT_EQ(may_join(c, NULL, -1), MAY_DONE);

    /* Unlocked: the setup moves it (a few tries, as it is scheduling). */
    struct run un = { 0 };
    run_pref(&un);
    printf("unlocked: %d moves, errno moved %d times\n", un.moves, un.errno_moves);
    ASSERT_GE(un.moves, ROUNDS / 2); /* a thief may take it back first, rarely */

    struct run lk = { .lock = 1 };
    run_pref(&lk);
    printf("locked: %d moves, errno moved %d times\n", lk.moves, lk.errno_moves);
    ASSERT_EQ(lk.moves, 0);
    ASSERT_EQ(lk.errno_moves, 0);
    ASSERT_EQ(may_shutdown(), 0);
    puts("test_lock_thread: ok");
    return 0;
}
