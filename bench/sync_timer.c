/*
 * sync_timer: the cost of timer objects that never fire.  Reports ns per
 * operation:
 *
 *   timer_create_stop      may_timer_new + may_timer_reset(now + 1 min) +
 *                          may_timer_stop + may_timer_free in a loop, one
 *                          coroutine (Go: time.NewTimer(time.Minute); Stop())
 *   timer_create_stop_par  the same from one coroutine per worker at once,
 *                          N in all; wall time / N
 *   timer_reset_stop       one timer: may_timer_reset + may_timer_stop
 *   timer_armed_create     ARMED timers created and armed one after the
 *                          other, deadlines random between one and two
 *                          minutes ahead (none fires during the run), all
 *                          left armed; per timer
 *   timer_armed_stop       then each stopped, in creation order; per timer
 *                          (may_timer_free afterwards is not timed)
 *
 *   usage: sync_timer [N [ARMED]]   (N operations per loop, default
 *                                    2,000,000; ARMED default 1,000,000)
 *
 * Workers: may's default (MAY_WORKERS or every allowed CPU), as Go's
 * GOMAXPROCS.  Peer: bench/go/sync_timer (same arguments, same metrics).
 */
#include "bench_common.h"

#define TIMEOUT_NS ((int64_t)60 * 1000000000) /* never fires */

struct job {
    long n;
    int64_t elapsed;
};

static void *create_stop(void *arg)
{
    struct job *j = arg;
    int64_t t0 = bench_now();
    for (long i = 0; i < j->n; i++) {
        may_timer_t *t;
        BENCH_CHECK(may_timer_new(&t));
        BENCH_CHECK(may_timer_reset(t, may_deadline_in(TIMEOUT_NS), 0));
        if (may_timer_stop(t) != 1) {
            fprintf(stderr, "may_timer_stop: the timer was not armed\n");
            exit(1);
        }
        may_timer_free(t);
    }
    j->elapsed = bench_now() - t0;
    return NULL;
}

static void *reset_stop(void *arg)
{
    struct job *j = arg;
    may_timer_t *t;
    BENCH_CHECK(may_timer_new(&t));
    int64_t t0 = bench_now();
    for (long i = 0; i < j->n; i++) {
        BENCH_CHECK(may_timer_reset(t, may_deadline_in(TIMEOUT_NS), 0));
        BENCH_CHECK(may_timer_stop(t));
    }
    j->elapsed = bench_now() - t0;
    may_timer_free(t);
    return NULL;
}

/* The same generator as the Go peer's, so both arm the same deadlines. */
static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct armed {
    long n;
    int64_t create, stop;
};

static void *armed(void *arg)
{
    struct armed *a = arg;
    may_timer_t **ts = malloc((size_t)a->n * sizeof *ts);
    if (ts == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint64_t seed = 88172645463325252u;
    int64_t t0 = bench_now();
    for (long i = 0; i < a->n; i++) {
        BENCH_CHECK(may_timer_new(&ts[i]));
        int64_t d = TIMEOUT_NS + (int64_t)(xorshift(&seed) % (uint64_t)TIMEOUT_NS);
        BENCH_CHECK(may_timer_reset(ts[i], may_deadline_in(d), 0));
    }
    int64_t t1 = bench_now();
    may_stats_t st;
    BENCH_CHECK(may_stats(&st));
    printf("  %llu timers armed in the runtime\n", (unsigned long long)st.timers);
    int64_t t2 = bench_now();
    long stopped = 0;
    for (long i = 0; i < a->n; i++)
        stopped += may_timer_stop(ts[i]);
    int64_t t3 = bench_now();
    if (stopped != a->n) {
        fprintf(stderr, "stopped %ld armed timers of %ld\n", stopped, a->n);
        exit(1);
    }
    for (long i = 0; i < a->n; i++)
        may_timer_free(ts[i]);
    free(ts);
    a->create = t1 - t0;
    a->stop = t3 - t2;
    return NULL;
}

static int64_t run_one(void *(*fn)(void *), struct job *j)
{
    may_co_t *co;
    BENCH_CHECK(may_spawn(&co, fn, j, NULL));
    BENCH_CHECK(may_join(co, NULL, MAY_FOREVER));
    return j->elapsed;
}

int main(int argc, char **argv)
{
    long n = bench_arg_long(argc, argv, 1, "TIMER_N", 2000000);
    long narmed = bench_arg_long(argc, argv, 2, "TIMER_ARMED", 1000000);
    if (n == 0 || narmed == 0) {
        fprintf(stderr, "usage: sync_timer [N [ARMED]] (both > 0)\n");
        return 2;
    }
    BENCH_CHECK(may_start());
    int g = may_workers();
    printf("%d workers\n", g);

    struct job j = { .n = n };
    int64_t el = run_one(create_stop, &j);
    printf("may create+stop: %ld in %.3f ms\n", n, el / 1e6);
    printf("RESULT timer_create_stop ns_per_op %.2f ns\n", (double)el / (double)n);

    struct job *js = calloc((size_t)g, sizeof *js);
    may_co_t **cos = calloc((size_t)g, sizeof *cos);
    if (js == NULL || cos == NULL)
        return 1;
    int64_t t0 = bench_now();
    for (int i = 0; i < g; i++) {
        js[i].n = n / g;
        BENCH_CHECK(may_spawn(&cos[i], create_stop, &js[i], NULL));
    }
    for (int i = 0; i < g; i++)
        BENCH_CHECK(may_join(cos[i], NULL, MAY_FOREVER));
    el = bench_now() - t0;
    long total = n / g * g;
    printf("may create+stop in %d coroutines: %ld in %.3f ms\n", g, total, el / 1e6);
    printf("RESULT timer_create_stop_par ns_per_op %.2f ns\n", (double)el / (double)total);
    free(js);
    free(cos);

    el = run_one(reset_stop, &j);
    printf("may reset+stop: %ld in %.3f ms\n", n, el / 1e6);
    printf("RESULT timer_reset_stop ns_per_op %.2f ns\n", (double)el / (double)n);

    struct armed a = { .n = narmed };
    may_co_t *co;
    BENCH_CHECK(may_spawn(&co, armed, &a, NULL));
    BENCH_CHECK(may_join(co, NULL, MAY_FOREVER));
    printf("may %ld armed timers: created in %.3f ms, stopped in %.3f ms\n", narmed,
           a.create / 1e6, a.stop / 1e6);
    printf("RESULT timer_armed_create ns_per_op %.2f ns\n", (double)a.create / (double)narmed);
    printf("RESULT timer_armed_stop ns_per_op %.2f ns\n", (double)a.stop / (double)narmed);
    printf("peak RSS %ld KiB\n", bench_vmhwm_kib());
    return 0;
}
