/* 1 000 000 coroutines alive at once (each parked), then released and
 * joined, on a stock vm.max_map_count: stacks beyond the guard-page budget
 * come from dense slabs. */
#include "test.h"
#include <errno.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND_H 1
#endif
#endif

static _Atomic long parked;
static void *parker(void *arg)
{
    atomic_fetch_add(&parked, 1);
    int r = may_park(MAY_FOREVER);
    return (void *)((intptr_t)arg + r);
}

static long read_max_map_count(void)
{
    long v = 0;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifdef __SANITIZE_THREAD__
#define UNDER_TSAN 1
#endif

int main(void)
{
    long n = test_scale(1000000);
#ifdef HAVE_VALGRIND_H
    /* valgrind's address-space map has a fixed number of segments */
    if (RUNNING_ON_VALGRIND && n > 5000)
        n = 5000;
#endif
#ifdef UNDER_TSAN
    /* TSan maps a shadow stack per fiber: one mapping each, so the stock
     * vm.max_map_count (with our guarded stacks) caps fibers far below a
     * million under TSan. */
    if (n > 5000)
        n = 5000;
#endif
    may_co_t **cs = malloc((size_t)n * sizeof *cs);
    ASSERT(cs);
    int64_t t0 = may_now();
    for (long i = 0; i < n; i++)
        ASSERT_EQ(may_spawn(&cs[i], parker, (void *)(intptr_t)i, NULL), 0);
    while (atomic_load(&parked) < n)
        may_sleep(TEST_MS(1));
    may_stats_t st;
    may_stats(&st);
    ASSERT_EQ((long)st.alive, n);
    for (long i = 0; i < n; i++)
        may_unpark(cs[i]);
    for (long i = 0; i < n; i++) {
        void *r;
        ASSERT_EQ(may_join(cs[i], &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, i);
    }
    int64_t t1 = may_now();
    printf("%ld coroutines alive at once, %.2f us each (max_map_count %ld)\n", n,
           (double)(t1 - t0) / 1000.0 / (double)n, read_max_map_count());
    free(cs);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
