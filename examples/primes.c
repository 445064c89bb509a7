/* primes - the concurrent prime sieve: a generator coroutine sends 2, 3, 4,
 * ... down a channel; each prime found gets a filter coroutine that passes
 * on only the numbers it does not divide, so the chain grows one filter per
 * prime.  Prints the first N primes (argv[1], default 100).
 *
 * Shutdown: closing the last channel makes the last filter's send fail; a
 * filter that fails closes both its channels, so the failure runs up the
 * chain to the generator.  The scope then joins every coroutine. */
#include <stdio.h>
#include <stdlib.h>
#include "may.h"
#include "usage.h"

typedef struct {
    may_chan_t *in, *out;
    long prime;
} filter_t;

static void *generate(void *arg)
{
    may_chan_t *out = arg;
    for (long i = 2; may_chan_send(out, &i, MAY_FOREVER) == 0; i++)
        ;
    return NULL;
}

static void *filter(void *arg)
{
    filter_t *f = arg;
    long v;
    while (may_chan_recv(f->in, &v, MAY_FOREVER) == 0)
        if (v % f->prime != 0 && may_chan_send(f->out, &v, MAY_FOREVER) != 0)
            break;
    may_chan_close(f->in); /* -EPIPE if already closed: fine */
    may_chan_close(f->out);
    return NULL;
}

static const char usage[] =
    "usage: primes [n]\n"
    "Prints the first n primes (default 100) from a chain of filter coroutines.\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 1, usage);
    long n = argc > 1 ? usage_long(argv[1], 1, 1000000, usage) : 100;
    may_scope_t *scope;
    filter_t *f = calloc((size_t)n, sizeof *f);
    may_chan_t *first;
    if (!f || may_scope_new(&scope) != 0 || may_chan_make(&first, long, 0) != 0)
        return 1;
    may_scope_spawn(scope, generate, first, NULL);
    may_chan_t *ch = first;
    for (long i = 0; i < n; i++) {
        long p;
        if (may_chan_recv(ch, &p, MAY_FOREVER) != 0)
            return 1;
        printf("%ld%c", p, i + 1 == n || (i + 1) % 10 == 0 ? '\n' : ' ');
        f[i] = (filter_t){ .in = ch, .prime = p };
        if (may_chan_make(&f[i].out, long, 0) != 0)
            return 1;
        may_scope_spawn(scope, filter, &f[i], NULL);
        ch = f[i].out;
    }
    may_chan_close(ch);
    may_scope_wait(scope, MAY_FOREVER);
    may_scope_free(scope);
    may_chan_free(first);
    for (long i = 0; i < n; i++)
        may_chan_free(f[i].out);
    free(f);
    return 0;
}
