/*
 * bench_spawn: spawn + join of N trivial coroutines (the entry returns at
 * once), from inside a coroutine, on the default number of workers.
 *   - one at a time: spawn, join, spawn, join, ...
 *   - in batches of 1000: spawn 1000, then join all 1000.
 * Reports ns per coroutine for each.
 *
 *   usage: bench_spawn [N]   (default 1,000,000)
 *
 * Peer: bench/go/spawn (go f() + sync.WaitGroup).
 */
#include "bench_common.h"

#define BATCH 1000

static long n_total;
static int64_t seq_ns, batch_ns;
static long batches;
static may_stats_t st_batch[2]; /* around the batch phase */

static void *nothing(void *arg)
{
    return arg;
}

static void *driver(void *arg)
{
    (void)arg;
    int64_t t0 = bench_now();
    for (long i = 0; i < n_total; i++) {
        may_co_t *co;
        BENCH_CHECK(may_spawn(&co, nothing, NULL, NULL));
        BENCH_CHECK(may_join(co, NULL, MAY_FOREVER));
    }
    seq_ns = bench_now() - t0;

    static may_co_t *cos[BATCH];
    batches = n_total / BATCH;
    may_stats(&st_batch[0]);
    t0 = bench_now();
    for (long b = 0; b < batches; b++) {
        for (int i = 0; i < BATCH; i++)
            BENCH_CHECK(may_spawn(&cos[i], nothing, NULL, NULL));
        for (int i = 0; i < BATCH; i++)
            BENCH_CHECK(may_join(cos[i], NULL, MAY_FOREVER));
    }
    batch_ns = bench_now() - t0;
    may_stats(&st_batch[1]);
    return NULL;
}

int main(int argc, char **argv)
{
    n_total = bench_arg_long(argc, argv, 1, "SPAWN_N", 1000000);
    if (n_total < BATCH) {
        fprintf(stderr, "N must be at least %d\n", BATCH);
        return 2;
    }
    BENCH_CHECK(may_start());
    may_co_t *d;
    BENCH_CHECK(may_spawn(&d, driver, NULL, NULL));
    BENCH_CHECK(may_join(d, NULL, MAY_FOREVER));

    long nb = batches * BATCH;
    printf("may spawn: %d worker(s): %ld one-at-a-time in %.3f ms, "
           "%ld in batches of %d in %.3f ms\n",
           may_workers(), n_total, seq_ns / 1e6, nb, BATCH, batch_ns / 1e6);
    /* Where the batch phase ran: children stolen by the other worker run
     * in parallel but cross caches (see docs/BENCHMARKS.md). */
    printf("may spawn: batch phase: %llu steals, switches per worker:",
           (unsigned long long)(st_batch[1].steals - st_batch[0].steals));
    for (int i = 0; i < st_batch[1].workers && i < 64; i++)
        printf(" %llu", (unsigned long long)(st_batch[1].worker[i].switches -
                                             st_batch[0].worker[i].switches));
    printf("\n");
    printf("RESULT spawn ns_per_spawn_join %.2f ns\n",
           (double)seq_ns / (double)n_total);
    printf("RESULT spawn ns_per_spawn_batch %.2f ns\n",
           (double)batch_ns / (double)nb);
    return 0;
}
