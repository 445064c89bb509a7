/*
 * sync_pingpong: two coroutines bounce a long over two unbuffered
 * (rendezvous) channels.  Reports ns per round trip (two channel hand-offs,
 * two context switches).
 *
 *   usage: sync_pingpong [N [WORKERS]]   (N round trips, default 2,000,000;
 *                                         WORKERS default 1)
 *
 * Peer: bench/go/sync_pingpong (same arguments; WORKERS = GOMAXPROCS).
 */
#include "bench_common.h"

static may_chan_t *ping, *pong;
static long n;

static void *echo(void *arg)
{
    (void)arg;
    long v;
    while (may_chan_recv(ping, &v, MAY_FOREVER) == 0) {
        v++;
        BENCH_CHECK(may_chan_send(pong, &v, MAY_FOREVER));
    }
    return NULL;
}

static void *driver(void *arg)
{
    int64_t *elapsed = arg;
    may_co_t *e;
    BENCH_CHECK(may_spawn(&e, echo, NULL, NULL));
    long v = 0;
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        BENCH_CHECK(may_chan_send(ping, &v, MAY_FOREVER));
        BENCH_CHECK(may_chan_recv(pong, &v, MAY_FOREVER));
    }
    *elapsed = bench_now() - t0;
    may_chan_close(ping);
    BENCH_CHECK(may_join(e, NULL, MAY_FOREVER));
    if (v != n) {
        fprintf(stderr, "lost a message: %ld != %ld\n", v, n);
        exit(1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    n = bench_arg_long(argc, argv, 1, "PINGPONG_N", 2000000);
    int workers = (int)bench_arg_long(argc, argv, 2, NULL, 1);
    may_config_t cfg = { .workers = workers };
    BENCH_CHECK(may_configure(&cfg));
    BENCH_CHECK(may_chan_new(&ping, sizeof(long), 0));
    BENCH_CHECK(may_chan_new(&pong, sizeof(long), 0));
    int64_t elapsed = 0;
    may_co_t *d;
    BENCH_CHECK(may_spawn(&d, driver, &elapsed, NULL));
    BENCH_CHECK(may_join(d, NULL, MAY_FOREVER));
    printf("may pingpong: %ld round trips in %.3f ms on %d worker(s)\n", n, elapsed / 1e6,
           may_workers());
    printf("RESULT pingpong_w%d ns_per_roundtrip %.2f ns\n", workers, (double)elapsed / (double)n);
    may_chan_free(ping);
    may_chan_free(pong);
    return 0;
}
