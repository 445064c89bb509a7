/*
 * sync_select: one coroutine selects over two channels and a timeout, in
 * the shapes Go programs write, while two producer coroutines send on the
 * two channels.  Reports ns per select (wall time of the consumer's loop /
 * selects).  The timeout is one minute, so it never fires; what is measured
 * is the select plus whatever the timeout costs to set up and drop:
 *
 *   select_deadline  a MAY_CASE_DEADLINE of now + 1 min each round: no
 *                    object (the idiomatic translation of Go's
 *                    `case <-time.After(d)`)
 *   select_newtimer  a new may_timer_t armed each round, dropped after (the
 *                    literal translation of time.After)
 *   select_timer     one may_timer_t, may_timer_reset to now + 1 min each
 *                    round, MAY_CASE_TIMER (Go: one Timer, t.Reset(d))
 *   select_chans     no timeout case: the two channels alone (the baseline:
 *                    what the timeout adds is the difference)
 *   select_fire      nothing is sent: each select ends on its deadline case,
 *                    FIRE_US microseconds after it began (the latency of a
 *                    timeout that fires; FIRE_N rounds)
 *
 *   usage: sync_select [N [CAP [FIRE_N [FIRE_US]]]]
 *          N selects per variant (default 1,000,000), CAP the channels'
 *          capacity (default 0: unbuffered), FIRE_N rounds of select_fire
 *          (default 500), FIRE_US its timeout (default 100)
 *
 * SELECT_ONLY=<name> runs that variant alone (for profiling).
 *
 * Workers: may's default (MAY_WORKERS or every allowed CPU), as Go's
 * GOMAXPROCS.  Peer: bench/go/sync_select (same arguments; its metrics are
 * select_chans, select_after, select_reset and select_fire).
 */
#include "bench_common.h"

#define TIMEOUT_NS ((int64_t)60 * 1000000000) /* never fires */

enum { V_DEADLINE, V_NEWTIMER, V_TIMER, V_FIRE, V_CHANS, NVARIANTS };
static const char *const names[NVARIANTS] = {
    "select_deadline", "select_newtimer", "select_timer", "select_fire", "select_chans",
};

static may_chan_t *chans[2];
static long per; /* values each producer sends */

struct consumer {
    int variant;
    long rounds;
    int64_t fire_ns;
    long long sum;
    int64_t elapsed;
};

static void *producer(void *arg)
{
    may_chan_t *ch = arg;
    for (long i = 0; i < per; i++) {
        long long v = i;
        BENCH_CHECK(may_chan_send(ch, &v, MAY_FOREVER));
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct consumer *c = arg;
    may_timer_t *t = NULL;
    long long v = 0, sum = 0;
    may_case_t cases[3] = { may_case_recv(chans[0], &v), may_case_recv(chans[1], &v) };
    int timeout_case = c->variant == V_FIRE ? 2 : -1; /* the case that may win */
    if (c->variant == V_TIMER)
        BENCH_CHECK(may_timer_new(&t));
    int64_t t0 = bench_now();
    for (long i = 0; i < c->rounds; i++) {
        switch (c->variant) {
        case V_DEADLINE:
            cases[2] = may_case_deadline(may_deadline_in(TIMEOUT_NS));
            break;
        case V_NEWTIMER:
            BENCH_CHECK(may_timer_new(&t));
            BENCH_CHECK(may_timer_reset(t, may_deadline_in(TIMEOUT_NS), 0));
            cases[2] = may_case_timer(t);
            break;
        case V_TIMER:
            BENCH_CHECK(may_timer_reset(t, may_deadline_in(TIMEOUT_NS), 0));
            cases[2] = may_case_timer(t);
            break;
        case V_FIRE:
            cases[2] = may_case_deadline(may_deadline_in(c->fire_ns));
            break;
        case V_CHANS:
            break;
        }
        int k = may_select_any(cases, c->variant == V_CHANS ? 2 : 3, MAY_FOREVER);
        BENCH_CHECK(k);
        if ((k == 2) != (timeout_case == 2)) {
            fprintf(stderr, "%s: round %ld chose case %d\n", names[c->variant], i, k);
            exit(1);
        }
        if (k < 2)
            sum += v;
        if (c->variant == V_NEWTIMER) {
            may_timer_free(t); /* as a time.After nobody waits for any more */
            t = NULL;
        }
    }
    c->elapsed = bench_now() - t0;
    c->sum = sum;
    if (t != NULL)
        may_timer_free(t);
    return NULL;
}

/* One variant: fresh channels, two producers (none for V_FIRE), one
 * consumer; prints its RESULT line. */
static void run(int variant, long rounds, size_t cap, int64_t fire_ns)
{
    const char *only = getenv("SELECT_ONLY");
    if (only != NULL && strcmp(only, names[variant]) != 0)
        return;
    for (int i = 0; i < 2; i++)
        BENCH_CHECK(may_chan_new(&chans[i], sizeof(long long), cap));
    struct consumer c = { .variant = variant, .rounds = rounds, .fire_ns = fire_ns };
    may_co_t *p[2] = { NULL, NULL }, *co;
    per = variant == V_FIRE ? 0 : rounds / 2;
    BENCH_CHECK(may_spawn(&co, consumer, &c, NULL));
    for (int i = 0; i < 2 && per > 0; i++)
        BENCH_CHECK(may_spawn(&p[i], producer, chans[i], NULL));
    BENCH_CHECK(may_join(co, NULL, MAY_FOREVER));
    for (int i = 0; i < 2 && per > 0; i++)
        BENCH_CHECK(may_join(p[i], NULL, MAY_FOREVER));
    long long want = per > 0 ? 2 * ((long long)per * (per - 1) / 2) : 0;
    if (c.sum != want) {
        fprintf(stderr, "%s: bad sum %lld, want %lld\n", names[variant], c.sum, want);
        exit(1);
    }
    double ns = (double)c.elapsed / (double)rounds;
    printf("may %s: %ld selects in %.3f ms (cap %zu)\n", names[variant], rounds,
           c.elapsed / 1e6, cap);
    if (variant == V_FIRE)
        printf("  timeout %.1f us, %.1f us late on average\n", fire_ns / 1e3,
               (ns - (double)fire_ns) / 1e3);
    printf("RESULT %s ns_per_select %.2f ns\n", names[variant], ns);
    for (int i = 0; i < 2; i++)
        may_chan_free(chans[i]);
}

int main(int argc, char **argv)
{
    long n = bench_arg_long(argc, argv, 1, "SELECT_N", 1000000);
    long cap = bench_arg_long(argc, argv, 2, "SELECT_CAP", 0);
    long fire_n = bench_arg_long(argc, argv, 3, "SELECT_FIRE_N", 500);
    long fire_us = bench_arg_long(argc, argv, 4, "SELECT_FIRE_US", 100);
    n -= n % 2; /* two producers, n / 2 each */
    if (n == 0 || fire_n == 0 || fire_us == 0) {
        fprintf(stderr, "usage: sync_select [N [CAP [FIRE_N [FIRE_US]]]] (N, FIRE_N, FIRE_US > 0)\n");
        return 2;
    }
    BENCH_CHECK(may_start());
    printf("%d workers\n", may_workers());
    /* The order of the Go peer, which runs time.After last (its timers
     * stay armed and weigh on what runs after). */
    run(V_CHANS, n, (size_t)cap, 0);
    run(V_TIMER, n, (size_t)cap, 0);
    run(V_FIRE, fire_n, (size_t)cap, (int64_t)fire_us * 1000);
    run(V_DEADLINE, n, (size_t)cap, 0);
    run(V_NEWTIMER, n, (size_t)cap, 0);
    printf("peak RSS %ld KiB\n", bench_vmhwm_kib());
    return 0;
}
