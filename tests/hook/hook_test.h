/* hook_test.h - what the libmay_hook tests share (tests/hook/).
 *
 * The pattern of most of them, on ONE worker: coroutine A makes a hooked
 * call that must wait; coroutine B starts 10 ms later (may_sleep, not
 * hooked), notes that it ran, and then does what ends A's wait.  With the
 * hooks A parks and B runs; without them A holds the only worker, B never
 * runs, and a plain "rescue" thread ends A's wait after RESCUE_MS so the
 * test fails at once (A sees b_ran == 0) instead of hanging. */
#ifndef HOOK_TEST_H
#define HOOK_TEST_H
#include "../test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RESCUE_MS 1500

static atomic_int b_ran;

/* The tests run with the hand-off of a blocked worker's queue to a spare
 * thread (docs/CAVEATS.md rule 1) off, so that the hooks alone must keep
 * the worker free and the builds without them fail; built with
 * HOOK_TEST_HANDOFF=1 (the *_handoff executables), with it on: the hooks
 * must work the same with it. */
#ifndef HOOK_TEST_HANDOFF
#define HOOK_TEST_HANDOFF 0
#endif

/* One worker. */
static inline void one_worker(void)
{
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 1, .no_handoff = !HOOK_TEST_HANDOFF }),
              0);
}

/* The kernel's flags, past the hooks' view. */
static inline int raw_getfl(int fd)
{
    return (int)syscall(SYS_fcntl, fd, F_GETFL);
}

static inline int64_t ms_since(int64_t t0)
{
    return (may_now() - t0) / 1000000;
}

/* Run a and b as coroutines (b started second), join both. */
static inline void run_pair(may_fn_t a, may_fn_t b, void *arg)
{
    atomic_store(&b_ran, 0);
    may_co_t *ca, *cb;
    ASSERT_EQ(may_spawn(&ca, a, arg, NULL), 0);
    ASSERT_EQ(may_spawn(&cb, b, arg, NULL), 0);
    ASSERT_EQ(may_join(ca, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(cb, NULL, MAY_FOREVER), MAY_DONE);
}

/* B's start: wait 10 ms (so A is in its call), then note that B runs. */
static inline void b_start(void)
{
    ASSERT_EQ(may_sleep(TEST_MS(10)), 0);
    atomic_store(&b_ran, 1);
}

typedef struct rescue {
    pthread_t t;
    void (*fn)(void *);
    void *arg;
    atomic_int done;
} rescue_t;

static inline void *rescue_main(void *p)
{
    rescue_t *r = p;
    for (int i = 0; i < RESCUE_MS && !atomic_load(&r->done); i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&r->done) && !atomic_load(&b_ran)) {
        fprintf(stderr, "rescue: B never ran: the worker is blocked\n");
        r->fn(r->arg);
    }
    return NULL;
}

/* A plain thread that calls fn(arg) after RESCUE_MS unless B ran. */
static inline void rescue_start(rescue_t *r, void (*fn)(void *), void *arg)
{
    r->fn = fn;
    r->arg = arg;
    atomic_store(&r->done, 0);
    ASSERT_EQ(pthread_create(&r->t, NULL, rescue_main, r), 0);
}

static inline void rescue_stop(rescue_t *r)
{
    atomic_store(&r->done, 1);
    pthread_join(r->t, NULL);
}
#endif
