/*
 * sync_sieve: the concurrent prime sieve, a chain of filter coroutines
 * joined by unbuffered channels, up to the Nth prime.  Reports the time to
 * find it.
 *
 *   usage: sync_sieve [N]   (default 10,000; prints the Nth prime)
 *
 * Workers: may's default, as Go's GOMAXPROCS.  Peer: bench/go/sync_sieve.
 * Like the Go program it leaves the chain running and exits.
 */
#include "bench_common.h"

#include <unistd.h>

typedef struct {
    may_chan_t *in, *out;
    long prime;
} filter_arg;

static void *generate(void *arg)
{
    may_chan_t *ch = arg;
    for (long i = 2;; i++)
        if (may_chan_send(ch, &i, MAY_FOREVER) < 0)
            return NULL;
}

static void *filter(void *arg)
{
    filter_arg *f = arg;
    long v;
    while (may_chan_recv(f->in, &v, MAY_FOREVER) == 0)
        if (v % f->prime != 0 && may_chan_send(f->out, &v, MAY_FOREVER) < 0)
            break;
    return NULL;
}

int main(int argc, char **argv)
{
    long n = bench_arg_long(argc, argv, 1, "SIEVE_N", 10000);
    BENCH_CHECK(may_start());
    filter_arg *args = calloc((size_t)n, sizeof *args);
    int64_t t0 = bench_now();
    may_chan_t *ch;
    BENCH_CHECK(may_chan_new(&ch, sizeof(long), 0));
    BENCH_CHECK(may_go(generate, ch));
    long prime = 0;
    for (long i = 0; i < n; i++) {
        BENCH_CHECK(may_chan_recv(ch, &prime, MAY_FOREVER));
        filter_arg *f = &args[i];
        f->in = ch;
        f->prime = prime;
        BENCH_CHECK(may_chan_new(&f->out, sizeof(long), 0));
        BENCH_CHECK(may_go(filter, f));
        ch = f->out;
    }
    int64_t el = bench_now() - t0;
    printf("may sieve: prime #%ld is %ld, %.3f ms on %d workers\n", n, prime, el / 1e6,
           may_workers());
    printf("RESULT sieve ms %.2f ms\n", el / 1e6);
    fflush(stdout);
    _exit(0); /* the chain is still running, as in the Go program */
}
