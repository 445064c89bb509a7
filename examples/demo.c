/* demo - what `make run` shows: spawn a lot of coroutines, switch between
 * them, sleep on timers, and print what happened. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include "may.h"
#include "usage.h"

struct node { long num, size; };
static void *skynet(void *arg)
{
    struct node *n = arg;
    if (n->size == 1)
        return (void *)(intptr_t)n->num;
    struct node kids[10];
    may_co_t *cs[10];
    long step = n->size / 10, sum = 0;
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct node){ n->num + i * step, step };
        if (may_spawn(&cs[i], skynet, &kids[i], NULL) < 0)
            abort();
    }
    for (int i = 0; i < 10; i++) {
        void *r;
        may_join(cs[i], &r, MAY_FOREVER);
        sum += (intptr_t)r;
    }
    return (void *)(intptr_t)sum;
}

static long yields_per;
static void *yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < yields_per; i++)
        may_yield();
    return NULL;
}

static void *napper(void *arg)
{
    may_sleep((int64_t)(intptr_t)arg * 1000000);
    return NULL;
}

static const char usage[] =
    "usage: demo\n"
    "Spawns 1.1 million coroutines (skynet), switches between 100 coroutines,\n"
    "sleeps 100 000 on timers, and prints the times and statistics.\n"
    "The worker count is $MAY_WORKERS (default: every CPU allowed).\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 0, usage);
    printf("may demo: %d worker threads\n", may_workers());

    /* 1. skynet: 1 000 000 leaf coroutines in a 10-ary tree */
    struct node root = { 0, 1000000 };
    may_co_t *c;
    int64_t t0 = may_now();
    may_spawn(&c, skynet, &root, NULL);
    void *r;
    may_join(c, &r, MAY_FOREVER);
    int64_t t1 = may_now();
    printf("skynet: sum %" PRIdPTR " over 1111111 coroutines in %.1f ms\n", (intptr_t)r,
           (double)(t1 - t0) / 1e6);

    /* 2. switches: 100 coroutines yielding 100 000 times each */
    yields_per = 100000;
    may_stats_t before, after;
    may_stats(&before);
    may_co_t *ys[100];
    t0 = may_now();
    for (int i = 0; i < 100; i++)
        may_spawn(&ys[i], yielder, NULL, NULL);
    for (int i = 0; i < 100; i++)
        may_join(ys[i], NULL, MAY_FOREVER);
    t1 = may_now();
    may_stats(&after);
    double sw = (double)(after.switches - before.switches);
    printf("switches: %.0f in %.1f ms = %.1f million/s\n", sw, (double)(t1 - t0) / 1e6,
           sw / ((double)(t1 - t0) / 1e9) / 1e6);

    /* 3. timers: 100 000 coroutines sleeping 1..100 ms */
    int n = 100000;
    may_co_t **ns = malloc(sizeof *ns * (size_t)n);
    t0 = may_now();
    for (int i = 0; i < n; i++)
        may_spawn(&ns[i], napper, (void *)(intptr_t)(1 + i % 100), NULL);
    may_stats_t mid;
    may_stats(&mid);
    printf("  meanwhile: %" PRIu64 " alive, %" PRIu64 " parked, %" PRIu64 " runnable, %" PRIu64
           " running, %" PRIu64 " timers armed\n",
           mid.alive, mid.parked, mid.runnable, mid.running, mid.timers);
    for (int i = 0; i < n; i++)
        may_join(ns[i], NULL, MAY_FOREVER);
    t1 = may_now();
    free(ns);
    printf("timers: %d sleeping coroutines done in %.1f ms (longest sleep 100 ms)\n", n,
           (double)(t1 - t0) / 1e6);

    may_stats(&after);
    printf("stats: spawned %" PRIu64 ", switches %" PRIu64 ", steals %" PRIu64 ", alive %" PRIu64 "\n",
           after.spawned, after.switches, after.steals, after.alive);
    for (int i = 0; i < after.workers && i < 64; i++)
        printf("  worker %d: %" PRIu64 " switches, %" PRIu64 " spawns, %" PRIu64 " steals, %" PRIu64
               " sleeps\n",
               i, after.worker[i].switches, after.worker[i].spawns, after.worker[i].steals,
               after.worker[i].parks);
    return may_shutdown() == 0 ? 0 : 1;
}
