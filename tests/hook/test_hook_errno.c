/* test_hook_errno: errno is right after a hooked call that parked, for
 * code compiled at -O2 that took &errno before the call (errno_probe.c).
 *
 * On 2 workers, a hog pinned to worker 0 keeps it busy in 3 ms slices, so a
 * coroutine of worker 0 that parks is usually resumed by worker 1 (as in
 * test_lock_thread).  The probe's read on an empty blocking pipe parks;
 * the main thread closes the fd 5 ms later (a wake-up from a plain thread
 * is taken by whichever worker is free), so the read fails with EBADF, and the probe reads errno through its old pointer.  The hooks
 * lock the coroutine to its thread across the wait, so the pointer is
 * still its errno: every round must give EBADF and never move.
 *
 * Negative control ("nolock" argument, with MAY_HOOK_NO_LOCK_THREAD=1,
 * which makes the hooks skip may_lock_thread): the coroutine moves, and
 * then the old pointer reads the old thread's errno: at least one round
 * must read something other than EBADF (if no round moved, the setup
 * proved nothing and the run says so and passes). */
#include "hook_test.h"

int errno_probe_read(int fd, long *before, long *after);

#define ROUNDS 50

static atomic_int stop;
static int p[2];

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

struct round {
    int err, moved;
};

static void *probe(void *arg)
{
    struct round *r = arg;
    long a, b;
    r->err = errno_probe_read(p[0], &a, &b);
    r->moved = a != b;
    return NULL;
}

int main(int argc, char **argv)
{
    alarm(60);
    int nolock = argc > 1 && strcmp(argv[1], "nolock") == 0;
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2, .no_handoff = !HOOK_TEST_HANDOFF }), 0);
    may_co_t *h;
    ASSERT_EQ(may_spawn(&h, hog, NULL, &(may_spawn_opts_t){ .worker = 0,
                                                          .flags = MAY_SPAWN_PINNED }), 0);
    int moves = 0, wrong = 0;
    for (int i = 0; i < ROUNDS; i++) {
        ASSERT_EQ(pipe(p), 0);
        struct round r = { -1, 0 };
        may_co_t *a;
        ASSERT_EQ(may_spawn(&a, probe, &r, &(may_spawn_opts_t){ .worker = 0,
                                                              .flags = MAY_SPAWN_WORKER }), 0);
        ASSERT_EQ(may_sleep(TEST_MS(5)), 0);
        ASSERT_EQ(close(p[0]), 0);
        ASSERT_EQ(may_join(a, NULL, MAY_FOREVER), MAY_DONE);
        close(p[1]);
        moves += r.moved;
        wrong += r.err != EBADF;
    }
    atomic_store(&stop, 1);
    ASSERT_EQ(may_join(h, NULL, MAY_FOREVER), MAY_DONE);
    printf("%s: %d rounds, %d moved thread, %d read a wrong errno\n",
           nolock ? "without the thread lock" : "with the thread lock", ROUNDS, moves, wrong);
    if (!nolock) {
        ASSERT_EQ(moves, 0);
        ASSERT_EQ(wrong, 0);
    } else if (moves == 0) {
        printf("no round moved: the negative control proves nothing here\n");
    } else {
        ASSERT_GT(wrong, 0);
    }
    ASSERT_EQ(may_shutdown(), 0);
    printf("test_hook_errno: ok\n");
    return 0;
}
