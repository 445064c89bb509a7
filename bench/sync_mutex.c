/*
 * sync_mutex: many coroutines increment one counter under a may_mutex_t;
 * the same with plain threads and a pthread_mutex_t, and with plain threads
 * and a may_mutex_t.  Reports ns per lock+increment+unlock (wall time /
 * increments).
 *
 *   usage: sync_mutex [N [C [T]]]   (N increments in all, default
 *          10,000,000; C coroutines, default 1000; T threads, default the
 *          number of may workers)
 *
 * Peer: bench/go/sync_mutex (sync.Mutex, C goroutines) for the coroutine
 * figure.
 */
#include "bench_common.h"

#include <pthread.h>

static may_mutex_t *mu;
static pthread_mutex_t pmu = PTHREAD_MUTEX_INITIALIZER;
static long per;
static long counter;

static void *co_incr(void *arg)
{
    (void)arg;
    for (long i = 0; i < per; i++) {
        may_mutex_lock(mu, MAY_FOREVER);
        counter++;
        may_mutex_unlock(mu);
    }
    return NULL;
}

static void *pthread_incr(void *arg)
{
    (void)arg;
    for (long i = 0; i < per; i++) {
        pthread_mutex_lock(&pmu);
        counter++;
        pthread_mutex_unlock(&pmu);
    }
    return NULL;
}

static double run_threads(int t, void *(*fn)(void *))
{
    pthread_t th[256];
    counter = 0;
    int64_t t0 = bench_now();
    for (int i = 0; i < t; i++)
        if (pthread_create(&th[i], NULL, fn, NULL) != 0)
            exit(1);
    for (int i = 0; i < t; i++)
        pthread_join(th[i], NULL);
    int64_t el = bench_now() - t0;
    if (counter != per * t) {
        fprintf(stderr, "bad count\n");
        exit(1);
    }
    return (double)el / (double)counter;
}

int main(int argc, char **argv)
{
    long n = bench_arg_long(argc, argv, 1, "MUTEX_N", 10000000);
    long c = bench_arg_long(argc, argv, 2, "MUTEX_CO", 1000);
    BENCH_CHECK(may_mutex_new(&mu));
    BENCH_CHECK(may_start());
    long t = bench_arg_long(argc, argv, 3, NULL, may_workers());
    if (c < 1 || t < 1 || t > 256) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }

    per = n / c;
    may_co_t **cs = malloc((size_t)c * sizeof *cs);
    counter = 0;
    int64_t t0 = bench_now();
    for (long i = 0; i < c; i++)
        BENCH_CHECK(may_spawn(&cs[i], co_incr, NULL, NULL));
    for (long i = 0; i < c; i++)
        BENCH_CHECK(may_join(cs[i], NULL, MAY_FOREVER));
    int64_t el = bench_now() - t0;
    if (counter != per * c) {
        fprintf(stderr, "bad count\n");
        return 1;
    }
    double co_ns = (double)el / (double)counter;
    free(cs);

    per = n / t;
    double pt_ns = run_threads((int)t, pthread_incr);
    double mt_ns = run_threads((int)t, co_incr);

    printf("may mutex: %ld coroutines on %d workers %.2f ns/op; %ld threads: "
           "pthread_mutex %.2f ns/op, may_mutex %.2f ns/op\n",
           c, may_workers(), co_ns, t, pt_ns, mt_ns);
    printf("RESULT mutex_co ns_per_op %.2f ns\n", co_ns);
    printf("RESULT mutex_pthread ns_per_op %.2f ns\n", pt_ns);
    printf("RESULT mutex_may_threads ns_per_op %.2f ns\n", mt_ns);
    may_mutex_free(mu);
    return 0;
}
