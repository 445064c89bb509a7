/*
 * bench_alive: N coroutines alive at once.  A driver coroutine (the
 * counterpart of Go's main goroutine) spawns N coroutines that each park;
 * once all of them have run up to their park, it unparks and joins every
 * one.  Reports the total time per
 * coroutine and the peak RSS (VmHWM) of the process.
 *
 *   usage: bench_alive [N]   (default 1,000,000; env ALIVE_N also works)
 *
 * Peer: bench/go/alive (goroutines blocked on a channel receive).
 */
#include <stdatomic.h>

#include "bench_common.h"

static atomic_long started;
static atomic_bool released;

static void *waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
    while (!atomic_load_explicit(&released, memory_order_acquire))
        may_park(MAY_FOREVER);
    return NULL;
}

/* Like Go's main goroutine, the driver is itself a coroutine. */
struct drive_args {
    long n;
    may_co_t **cos;
    int64_t t0, t1, t2;
    unsigned long long peak;
};

static void *drive(void *arg)
{
    struct drive_args *a = arg;
    a->t0 = bench_now();
    for (long i = 0; i < a->n; i++)
        BENCH_CHECK(may_spawn(&a->cos[i], waiter, NULL, NULL));
    while (atomic_load_explicit(&started, memory_order_relaxed) < a->n)
        may_sleep(1000000);
    a->t1 = bench_now();
    may_stats_t st;
    may_stats(&st);
    a->peak = st.alive;
    atomic_store_explicit(&released, true, memory_order_release);
    for (long i = 0; i < a->n; i++)
        may_unpark(a->cos[i]);
    for (long i = 0; i < a->n; i++)
        BENCH_CHECK(may_join(a->cos[i], NULL, MAY_FOREVER));
    a->t2 = bench_now();
    return NULL;
}

int main(int argc, char **argv)
{
    long n = bench_arg_long(argc, argv, 1, "ALIVE_N", 1000000);
    may_co_t **cos = malloc((size_t)(n > 0 ? n : 1) * sizeof *cos);
    if (cos == NULL) {
        perror("malloc");
        return 1;
    }
    BENCH_CHECK(may_start());
    may_co_t *d;
    struct drive_args a = { .n = n, .cos = cos };
    BENCH_CHECK(may_spawn(&d, drive, &a, NULL));
    BENCH_CHECK(may_join(d, NULL, MAY_FOREVER));
    free(cos);
    long hwm = bench_vmhwm_kib();
    printf("may alive: %ld coroutines on %d worker(s) (%llu alive at peak): "
           "spawn+park %.1f ms, release+join %.1f ms\n",
           n, may_workers(), (unsigned long long)a.peak, (a.t1 - a.t0) / 1e6,
           (a.t2 - a.t1) / 1e6);
    printf("RESULT alive ns_per_coroutine %.1f ns\n",
           n > 0 ? (double)(a.t2 - a.t0) / (double)n : 0.0);
    printf("RESULT alive peak_rss %.1f MB\n", hwm / 1024.0);
    return 0;
}
