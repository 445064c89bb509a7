/*
 * sync_chan: 4 producer and 4 consumer coroutines share one buffered
 * channel of capacity 128.  Reports ns per message (wall time / messages).
 *
 *   usage: sync_chan [N]   (N messages in all, default 4,000,000)
 *
 * Workers: may's default (MAY_WORKERS or every allowed CPU), as Go's
 * GOMAXPROCS.  Peer: bench/go/sync_chan.
 */
#include "bench_common.h"

enum { PRODUCERS = 4, CONSUMERS = 4, CAPACITY = 128 };

static may_chan_t *ch;
static long per;
static long long sums[CONSUMERS];

static void *producer(void *arg)
{
    long p = (long)(intptr_t)arg;
    for (long i = 0; i < per; i++) {
        long long v = p * per + i;
        BENCH_CHECK(may_chan_send(ch, &v, MAY_FOREVER));
    }
    return NULL;
}

static void *consumer(void *arg)
{
    long c = (long)(intptr_t)arg;
    long long v, s = 0;
    while (may_chan_recv(ch, &v, MAY_FOREVER) == 0)
        s += v;
    sums[c] = s;
    return NULL;
}

int main(int argc, char **argv)
{
    long n = bench_arg_long(argc, argv, 1, "CHAN_N", 4000000);
    per = n / PRODUCERS;
    BENCH_CHECK(may_chan_new(&ch, sizeof(long long), CAPACITY));
    BENCH_CHECK(may_start());
    may_co_t *p[PRODUCERS], *c[CONSUMERS];
    int64_t t0 = bench_now();
    for (int i = 0; i < CONSUMERS; i++)
        BENCH_CHECK(may_spawn(&c[i], consumer, (void *)(intptr_t)i, NULL));
    for (int i = 0; i < PRODUCERS; i++)
        BENCH_CHECK(may_spawn(&p[i], producer, (void *)(intptr_t)i, NULL));
    for (int i = 0; i < PRODUCERS; i++)
        BENCH_CHECK(may_join(p[i], NULL, MAY_FOREVER));
    BENCH_CHECK(may_chan_close(ch));
    for (int i = 0; i < CONSUMERS; i++)
        BENCH_CHECK(may_join(c[i], NULL, MAY_FOREVER));
    int64_t el = bench_now() - t0;
    long long m = (long long)per * PRODUCERS, total = 0;
    for (int i = 0; i < CONSUMERS; i++)
        total += sums[i];
    if (total != m * (m - 1) / 2) {
        fprintf(stderr, "bad sum\n");
        return 1;
    }
    printf("may chan: %lld messages in %.3f ms on %d workers\n", m, el / 1e6, may_workers());
    printf("RESULT chan_4p4c ns_per_msg %.2f ns\n", (double)el / (double)m);
    may_chan_free(ch);
    return 0;
}
