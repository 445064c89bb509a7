/*
 * bench_skynet: the skynet benchmark.  A 10-ary tree of coroutines with
 * 1,000,000 leaves; each leaf returns its number (through the join result),
 * each parent spawns its 10 children, joins them and returns the sum.
 * Reports the wall time in ms.
 *
 *   usage: bench_skynet [workers]   (default: $MAY_WORKERS, else all CPUs)
 *
 * Peer: bench/go/skynet (the classic channel version).
 */
#include "bench_common.h"

#define FANOUT 10
#define LEAVES 1000000L

typedef struct node {
    long num, size;
} node_t;

static void *skynet(void *arg)
{
    const node_t *nd = arg;
    if (nd->size == 1)
        return (void *)(intptr_t)nd->num;
    node_t kids[FANOUT];
    may_co_t *co[FANOUT];
    long sub = nd->size / FANOUT;
    for (int i = 0; i < FANOUT; i++) {
        kids[i].num = nd->num + i * sub;
        kids[i].size = sub;
        BENCH_CHECK(may_spawn(&co[i], skynet, &kids[i], NULL));
    }
    intptr_t sum = 0;
    for (int i = 0; i < FANOUT; i++) {
        void *r;
        BENCH_CHECK(may_join(co[i], &r, MAY_FOREVER));
        sum += (intptr_t)r;
    }
    return (void *)sum;
}

int main(int argc, char **argv)
{
    long workers = bench_arg_long(argc, argv, 1, NULL, 0);
    may_config_t cfg = {.workers = (int)workers};
    BENCH_CHECK(may_configure(&cfg));
    BENCH_CHECK(may_start());

    node_t root = {.num = 0, .size = LEAVES};
    may_co_t *co;
    void *r;
    int64_t t0 = bench_now();
    BENCH_CHECK(may_spawn(&co, skynet, &root, NULL));
    BENCH_CHECK(may_join(co, &r, MAY_FOREVER));
    int64_t el = bench_now() - t0;

    intptr_t sum = (intptr_t)r;
    if (sum != (intptr_t)(LEAVES * (LEAVES - 1) / 2)) {
        fprintf(stderr, "skynet: wrong sum %lld\n", (long long)sum);
        return 1;
    }
    printf("may skynet: sum %lld with %d worker(s) in %.3f ms\n",
           (long long)sum, may_workers(), el / 1e6);
    printf("RESULT skynet ms %.2f ms\n", el / 1e6);
    return 0;
}
