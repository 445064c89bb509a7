/* ticker - a time.After-style select with a ticker.  A worker coroutine
 * counts the primes below N while the main thread selects over three
 * things: a ticker firing every 100 ms (print the progress), the worker's
 * result channel (print it, done) and an overall deadline
 * (MAY_CASE_DEADLINE, Go's `case <-time.After(d)`: cancel the worker, give
 * up).  The ticker is stopped at the end. */
#include <stdatomic.h>
#include <stdio.h>
#include "may.h"
#include "usage.h"

static long limit;
static _Atomic long reached; /* progress; relaxed: only printed */

static void *count_primes(void *arg)
{
    long count = 0;
    for (long n = 2; n < limit; n++) {
        long d = 2;
        while (d * d <= n && n % d != 0)
            d++;
        count += d * d > n;
        if (n % 8192 == 0) { /* a long computation lets others run now and then */
            atomic_store_explicit(&reached, n, memory_order_relaxed);
            may_yield();
            if (may_cancelled())
                return NULL;
        }
    }
    may_chan_send(arg, &count, MAY_FOREVER); /* capacity 1: never waits */
    return NULL;
}

static const char usage[] =
    "usage: ticker [n [seconds]]\n"
    "Counts the primes below n (default 3000000) in a coroutine, printing its\n"
    "progress every 100 ms; gives up after seconds (default 10).\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 2, usage);
    limit = argc > 1 ? usage_long(argv[1], 2, 1000000000, usage) : 3000000;
    double secs = argc > 2 ? usage_positive(argv[2], 3600, usage) : 10;
    may_chan_t *result;
    may_timer_t *tick;
    may_co_t *worker;
    if (may_chan_make(&result, long, 1) != 0 || may_ticker_new(&tick, 100000000) != 0 ||
        may_spawn(&worker, count_primes, result, NULL) != 0)
        return 1;
    int64_t start = may_now();
    long count;
    may_case_t cases[] = {
        may_case_timer(tick),
        may_case_recv(result, &count),
        may_case_deadline(start + (int64_t)(secs * 1e9)),
    };
    int i;
    while ((i = may_select_any(cases, 3, MAY_FOREVER)) == 0)
        printf("%5.1f s: %3.0f%%\n", (may_now() - start) / 1e9,
               100.0 * atomic_load_explicit(&reached, memory_order_relaxed) / limit);
    if (i == 1)
        printf("%ld primes below %ld\n", count, limit);
    else {
        printf("no result after %g s: cancelled\n", secs);
        may_cancel(worker);
    }
    may_timer_stop(tick);
    may_join(worker, NULL, MAY_FOREVER);
    may_timer_free(tick);
    may_chan_free(result);
    printf("ticker: done in %.1f s\n", (may_now() - start) / 1e9);
    return i == 1 ? 0 : 1;
}
