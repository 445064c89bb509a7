/*
 * bench_idle: what an idle runtime costs.  After may_start(), one coroutine
 * parks for good; then, over the interval, another coroutine sleeps for the
 * whole interval (may_sleep, the runtime's timer) while the main thread
 * waits for it in may_join.  Reports the process's CPU time and the context
 * switches of all its threads (voluntary + involuntary) over the interval.
 *
 *   usage: bench_idle [seconds]   (default 10)
 *
 * Peer: bench/go/idle (a goroutine blocked on a channel, one in Accept, the
 * main goroutine in time.Sleep).
 */
#include <stdatomic.h>

#include "bench_common.h"

static atomic_bool done;

static void *parker(void *arg)
{
    (void)arg;
    while (!atomic_load(&done))
        may_park(MAY_FOREVER);
    return NULL;
}

static void *sleeper(void *arg)
{
    BENCH_CHECK(may_sleep(*(const int64_t *)arg));
    return NULL;
}

int main(int argc, char **argv)
{
    double secs = 10.0;
    if (argc > 1)
        secs = strtod(argv[1], NULL);
    int64_t interval = (int64_t)(secs * 1e9);

    BENCH_CHECK(may_start());
    may_co_t *p, *s;
    BENCH_CHECK(may_spawn(&p, parker, NULL, NULL));
    bench_sleep_ns(200000000); /* let start-up settle */

    int threads0, threads1;
    int64_t cs0 = bench_ctx_switches(&threads0);
    int64_t cpu0 = bench_cpu_ns();
    int64_t t0 = bench_now();
    BENCH_CHECK(may_spawn(&s, sleeper, &interval, NULL));
    BENCH_CHECK(may_join(s, NULL, MAY_FOREVER));
    int64_t el = bench_now() - t0;
    int64_t cpu1 = bench_cpu_ns();
    int64_t cs1 = bench_ctx_switches(&threads1);

    int workers = may_workers();
    atomic_store(&done, true);
    may_unpark(p);
    BENCH_CHECK(may_join(p, NULL, MAY_FOREVER));
    BENCH_CHECK(may_shutdown());

    printf("may idle: %.2f s, %d worker(s), %d threads\n", el / 1e9,
           workers, threads1 > threads0 ? threads1 : threads0);
    printf("RESULT idle cpu_ms %.2f ms\n", (cpu1 - cpu0) / 1e6);
    printf("RESULT idle wakeups %lld count\n", (long long)(cs1 - cs0));
    return 0;
}
