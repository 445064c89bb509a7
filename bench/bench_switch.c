/*
 * bench_switch: two coroutines hand the worker to each other with may_yield
 * on a single worker thread.  Reports ns per hand-off.
 *
 *   usage: bench_switch [N]   (N = total hand-offs, default 10,000,000)
 *
 * Peer: bench/go/switch (runtime.Gosched, GOMAXPROCS=1).
 */
#include "bench_common.h"

static long per_co; /* yields each of the two coroutines makes */
static int64_t elapsed_ns;

static void *yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_co; i++)
        may_yield();
    return NULL;
}

/* Runs on the only worker: the two yielders cannot start before it blocks
 * in may_join, so from then on they alternate strictly. */
static void *driver(void *arg)
{
    (void)arg;
    may_co_t *a, *b;
    int64_t t0 = bench_now();
    BENCH_CHECK(may_spawn(&a, yielder, NULL, NULL));
    BENCH_CHECK(may_spawn(&b, yielder, NULL, NULL));
    BENCH_CHECK(may_join(a, NULL, MAY_FOREVER));
    BENCH_CHECK(may_join(b, NULL, MAY_FOREVER));
    elapsed_ns = bench_now() - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    long n = bench_arg_long(argc, argv, 1, "SWITCH_N", 10000000);
    per_co = n / 2;
    long total = 2 * per_co;
    if (total == 0) {
        fprintf(stderr, "N must be at least 2\n");
        return 2;
    }

    may_config_t cfg = {.workers = 1};
    BENCH_CHECK(may_configure(&cfg));

    may_stats_t st0, st1;
    may_co_t *d;
    BENCH_CHECK(may_start());
    may_stats(&st0);
    BENCH_CHECK(may_spawn(&d, driver, NULL, NULL));
    BENCH_CHECK(may_join(d, NULL, MAY_FOREVER));
    may_stats(&st1);

    printf("may switch: %ld hand-offs in %.3f ms on %d worker(s), "
           "%llu switches counted\n",
           total, elapsed_ns / 1e6, st1.workers,
           (unsigned long long)(st1.switches - st0.switches));
    printf("RESULT switch ns_per_switch %.2f ns\n",
           (double)elapsed_ns / (double)total);
    return 0;
}
