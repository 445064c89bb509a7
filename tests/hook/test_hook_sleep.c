/* test_hook_sleep: sleep, usleep, nanosleep and clock_nanosleep in 100
 * coroutines on ONE worker finish together (about one sleep, not 100), and
 * a cancelled sleeper gets ECANCELED.  Without the hooks each sleep holds
 * the worker: 100 x 30 ms = 3 s, and the bound below fails. */
#include "hook_test.h"

#define N 100
#define SLEEP_MS 30

static atomic_int done;

static void *sleeper(void *arg)
{
    int kind = (int)(intptr_t)arg;
    switch (kind) {
    case 0:
        ASSERT_EQ(usleep(SLEEP_MS * 1000), 0);
        break;
    case 1: {
        struct timespec ts = { 0, SLEEP_MS * 1000000L }, rem;
        ASSERT_EQ(nanosleep(&ts, &rem), 0);
        break;
    }
    case 2: {
        struct timespec ts = { 0, SLEEP_MS * 1000000L };
        ASSERT_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0);
        break;
    }
    default: {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        now.tv_nsec += SLEEP_MS * 1000000L;
        if (now.tv_nsec >= 1000000000) {
            now.tv_sec++;
            now.tv_nsec -= 1000000000;
        }
        ASSERT_EQ(clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &now, NULL), 0);
    }
    }
    atomic_fetch_add(&done, 1);
    return NULL;
}

static void *sleep_1s(void *arg)
{
    (void)arg;
    ASSERT_EQ(sleep(1), 0);
    return NULL;
}

static void *cancelled_sleep(void *arg)
{
    (void)arg;
    struct timespec ts = { 100, 0 }, rem = { 0, 0 };
    errno = 0;
    ASSERT_EQ(nanosleep(&ts, &rem), -1);
    ASSERT_EQ(errno, ECANCELED);
    ASSERT_GT(rem.tv_sec, 90);
    errno = 0;
    ASSERT_GT(sleep(100), 90); /* the seconds left, errno ECANCELED */
    ASSERT_EQ(errno, ECANCELED);
    ASSERT_EQ(usleep(100000), -1);
    ASSERT_EQ(errno, ECANCELED);
    return NULL;
}

int main(void)
{
    alarm(60);
    one_worker();
    for (int kind = 0; kind < 4; kind++) {
        atomic_store(&done, 0);
        may_co_t *c[N];
        int64_t t0 = may_now();
        for (int i = 0; i < N; i++)
            ASSERT_EQ(may_spawn(&c[i], sleeper, (void *)(intptr_t)kind, NULL), 0);
        for (int i = 0; i < N; i++)
            ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
        int64_t ms = ms_since(t0);
        printf("kind %d: %d sleeps of %d ms in %" PRId64 " ms\n", kind, N, SLEEP_MS, ms);
        ASSERT_EQ(atomic_load(&done), N);
        ASSERT_GE(ms, SLEEP_MS - 1);
        ASSERT_LT(ms, N * SLEEP_MS / 4); /* serially: N * SLEEP_MS */
    }
    /* sleep(1) in 10 coroutines: ~1 s, not 10 */
    may_co_t *c[10];
    int64_t t0 = may_now();
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(may_spawn(&c[i], sleep_1s, NULL, NULL), 0);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_LT(ms_since(t0), 5000);
    /* cancellation */
    may_co_t *s;
    ASSERT_EQ(may_spawn(&s, cancelled_sleep, NULL, NULL), 0);
    ASSERT_EQ(may_sleep(TEST_MS(20)), 0);
    ASSERT_EQ(may_cancel(s), 0);
    ASSERT_EQ(may_join(s, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(may_shutdown(), 0);
    printf("test_hook_sleep: ok\n");
    return 0;
}
