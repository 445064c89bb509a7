/* A million coroutines sleeping on distinct deadlines wake in deadline
 * order, none early, typical lateness under a millisecond.  All run on
 * worker 0 (pinned), so the order of wake-ups is observable. */
#include "test.h"
#include <errno.h>

static long n;
static int64_t base;
static int64_t spacing;
static _Atomic long ready_count, seq;
static long *order;
static int32_t *late_us;

static void *sleeper(void *arg)
{
    long i = (long)(intptr_t)arg;
    atomic_fetch_add(&ready_count, 1);
    ASSERT_EQ(may_park(MAY_FOREVER), 0); /* until the deadlines are known */
    int64_t dl = base + i * spacing;
    ASSERT_LT(may_now(), dl); /* the set-up left room: armed in time */
    ASSERT_EQ(may_sleep_until(dl), 0);
    int64_t now = may_now();
    ASSERT_GE(now, dl); /* never early */
    order[i] = atomic_fetch_add(&seq, 1);
    int64_t l = (now - dl) / 1000;
    late_us[i] = (int32_t)(l > INT32_MAX ? INT32_MAX : l);
    return NULL;
}

static int cmp32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VG 1
#endif
#endif

/* One run: spawn, arm, wake, check order and earliness; the median
 * lateness in microseconds. */
static int32_t run_once(void)
{
    atomic_store(&ready_count, 0);
    atomic_store(&seq, 0);
    may_co_t **cs = malloc((size_t)n * sizeof *cs);
    order = malloc((size_t)n * sizeof *order);
    late_us = malloc((size_t)n * sizeof *late_us);
    ASSERT(cs && order && late_us);
    may_spawn_opts_t pin0 = { .flags = MAY_SPAWN_PINNED, .worker = 0 };
    for (long k = 0; k < n; k++) {
        long i = (k * 7919) % n; /* spawn in scrambled order: random inserts */
        ASSERT_EQ(may_spawn(&cs[i], sleeper, (void *)(intptr_t)i, &pin0), 0);
    }
    while (atomic_load(&ready_count) < n)
        may_sleep(TEST_MS(1));
    may_sleep(TEST_MS(10));
    base = may_now() + TEST_MS(500) + n * 3000; /* room to unpark them all */
    int64_t t0 = may_now();
    for (long i = 0; i < n; i++)
        may_unpark(cs[i]);
    printf("unparked %ld in %lld ms\n", n, (long long)(may_now() - t0) / 1000000);
    /* join only once all have woken, so joining does not load worker 0 */
    may_sleep_until(base + n * spacing + TEST_MS(100));
    for (long i = 0; i < n; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), MAY_DONE);
    for (long i = 1; i < n; i++)
        ASSERT_LT(order[i - 1], order[i]);
    qsort(late_us, (size_t)n, sizeof *late_us, cmp32);
    printf("%ld sleepers, %lld us apart: woke in order, none early; lateness median %d us, "
           "p99 %d us, max %d us\n",
           n, (long long)spacing / 1000, late_us[n / 2], late_us[n * 99 / 100], late_us[n - 1]);
    int32_t median = late_us[n / 2];
    free(cs);
    free(order);
    free(late_us);
    return median;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* the figures reach the log even on failure */
    n = test_scale(1000000);
#if defined(__SANITIZE_THREAD__)
    n = n > 5000 ? 5000 : n; /* a mapping per TSan fiber */
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    n = n > 5000 ? 5000 : n;
#endif
#endif
#ifdef HAVE_VG
    if (RUNNING_ON_VALGRIND && n > 5000)
        n = 5000;
#endif
    /* 10 us apart: a million deadlines over 10 s, all fired and run by
     * one worker.  Right after a big build this VM ran that worker at a
     * third of its usual speed (4 us apart then fell behind by a second;
     * alone it kept a 1 us median at 2 us apart), so leave it room.  Slow
     * builds (smaller scale) spread fewer sleepers over the same time. */
    spacing = (int64_t)(10000 / test_scale_factor());
    int32_t median = run_once();
    /* The median is a property of the scheduler, but a VM can stall a
     * worker for a second now and then (seen right after a big build, on
     * first touch of gigabytes); one more run tells that from a regression,
     * which fails both. */
    if (median >= (test_scale_factor() < 1 ? 50000 : 1000)) {
        printf("median lateness %d us: running once more\n", median);
        median = run_once();
    }
    ASSERT_LT(median, test_scale_factor() < 1 ? 50000 : 1000);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
