/* Scheduler behaviour: yield fairness, work stealing observed, global-queue
 * work not starved, timers waking in order and never early. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#ifdef _WIN32
/* The affinity calls of Windows in the names the test uses on Linux: a
 * thread's affinity mask is read by setting it (the previous mask is the
 * answer) and putting it back. */
static int win_cpus_of_thread(void)
{
    DWORD_PTR proc, sys;
    ASSERT(GetProcessAffinityMask(GetCurrentProcess(), &proc, &sys));
    DWORD_PTR old = SetThreadAffinityMask(GetCurrentThread(), proc);
    ASSERT(old != 0);
    ASSERT(SetThreadAffinityMask(GetCurrentThread(), old) != 0);
    return __builtin_popcountll((unsigned long long)old);
}
static void win_pin_to(int cpu)
{
    (void)SetThreadAffinityMask(GetCurrentThread(), (DWORD_PTR)1 << cpu);
}
#define sched_getcpu() ((int)GetCurrentProcessorNumber())
#endif

/* --- yield fairness: N coroutines yielding in a loop on one worker each
 * make progress in lock step; none runs twice while another waits. */
#define NY 8
static _Atomic long counts[NY];
static _Atomic int stop_all, go;
static void *yielder(void *arg)
{
    int i = (int)(intptr_t)arg;
    while (!atomic_load(&go))
        may_yield();
    while (!atomic_load(&stop_all)) {
        atomic_fetch_add(&counts[i], 1);
        may_yield();
    }
    return NULL;
}

/* a looping yielder must not starve a coroutine readied from a thread */
static _Atomic int outside_ran;
static void *outside(void *arg)
{
    (void)arg;
    atomic_store(&outside_ran, 1);
    return NULL;
}

/* --- work stealing: one coroutine spawns busy children; every worker ends
 * up running some of them. */
static _Atomic int ran_on[64];
static void *busy(void *arg)
{
    (void)arg;
    int64_t end = may_now() + TEST_MS(2);
    while (may_now() < end)
        ;
    int w = may_worker_id();
    ASSERT_GE(w, 0);
    /* a spare standing in for a blocked worker has an index past the
     * workers' (under valgrind a thread waiting for its turn looks blocked) */
    if (w < 64)
        atomic_fetch_add(&ran_on[w], 1);
    return NULL;
}
static void *spawn_busy(void *arg)
{
    int n = (int)(intptr_t)arg;
    may_co_t **cs = calloc((size_t)n, sizeof *cs);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(may_spawn(&cs[i], busy, NULL, NULL), 0);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), MAY_DONE);
    free(cs);
    return NULL;
}

/* --- timers: coroutines sleeping on distinct deadlines wake in order,
 * never early, typically well under a millisecond late.  The deadlines are
 * fixed before the coroutines start; one that starts after its own deadline
 * (a loaded machine that did not run worker 0 for a second) cannot test
 * anything and says so instead of sleeping. */
static _Atomic long wake_seq;
static long *woke_at;
static int64_t *lateness;
static bool *armed;
static int64_t base_deadline;
static void *timed(void *arg)
{
    long i = (long)(intptr_t)arg;
    int64_t dl = base_deadline + i * 20000; /* 20 us apart */
    armed[i] = may_now() < dl;
    if (!armed[i])
        return NULL;
    ASSERT_EQ(may_sleep_until(dl), 0);
    int64_t now = may_now();
    ASSERT_GE(now, dl); /* never early */
    lateness[i] = now - dl;
    woke_at[i] = atomic_fetch_add(&wake_seq, 1);
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The machine's own lateness, for comparison: a plain thread on worker 0's
 * CPU sleeping to absolute deadlines 1 ms apart (clock_nanosleep) while
 * the coroutines sleep.  On a loaded CI machine the OS wakes that thread
 * late too, and the runtime cannot do better than the OS. */
typedef struct {
    int cpu;
    _Atomic int stop;
    int64_t late[4096];
    int n;
} os_ref_t;

static void *os_ref_main(void *arg)
{
    os_ref_t *r = arg;
#ifdef _WIN32
    win_pin_to(r->cpu);
#else
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(r->cpu, &one);
    (void)sched_setaffinity(0, sizeof one, &one);
#endif
    int64_t dl = may_now() + TEST_MS(1);
    while (!atomic_load(&r->stop) && r->n < 4096) {
#ifdef _WIN32 /* winpthreads' CLOCK_MONOTONIC is not may_now's clock: sleep
                * the time left, relative */
        int64_t left = dl - may_now();
        if (left > 0) {
            struct timespec ts = { .tv_sec = left / 1000000000, .tv_nsec = left % 1000000000 };
            nanosleep(&ts, NULL);
        }
#else
        struct timespec ts = { .tv_sec = dl / 1000000000, .tv_nsec = dl % 1000000000 };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
#endif
        r->late[r->n++] = may_now() - dl;
        dl += TEST_MS(1);
    }
    return NULL;
}

static void *cpu_of_worker(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)sched_getcpu();
}

/* one run of the timer check; false when the machine was too loaded for
 * its lateness figure to mean anything */
static bool timer_attempt(long n)
{
    os_ref_t *ref = calloc(1, sizeof *ref);
    ASSERT(ref != NULL);
    may_co_t *wc;
    void *cpu;
    may_spawn_opts_t pw = { .flags = MAY_SPAWN_PINNED, .worker = 0 };
    ASSERT_EQ(may_spawn(&wc, cpu_of_worker, NULL, &pw), 0);
    ASSERT_EQ(may_join(wc, &cpu, MAY_FOREVER), MAY_DONE);
    ref->cpu = (int)(intptr_t)cpu;
    pthread_t rt;
    ASSERT_EQ(pthread_create(&rt, NULL, os_ref_main, ref), 0);
    woke_at = calloc((size_t)n, sizeof *woke_at);
    lateness = calloc((size_t)n, sizeof *lateness);
    armed = calloc((size_t)n, sizeof *armed);
    may_co_t **cs = calloc((size_t)n, sizeof *cs);
    atomic_store(&wake_seq, 0);
    base_deadline = may_now() + TEST_MS(500) + n * 50000;
    /* spawn in a scrambled order so the heap sees random inserts */
    for (long k = 0; k < n; k++) {
        long i = (k * 7919) % n;
        may_spawn_opts_t p0 = { .flags = MAY_SPAWN_PINNED, .worker = 0 };
        ASSERT_EQ(may_spawn(&cs[i], timed, (void *)(intptr_t)i, &p0), 0);
    }
    for (long i = 0; i < n; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), MAY_DONE);
    atomic_store(&ref->stop, 1);
    ASSERT_EQ(pthread_join(rt, NULL), 0);
    qsort(ref->late, (size_t)ref->n, sizeof ref->late[0], cmp64);
    int64_t os_median = ref->n ? ref->late[ref->n / 2] : 0;
    free(ref);
    /* among the coroutines that armed their timer, wake order is deadline
     * order; lateness is gathered from them alone */
    long m = 0, prev = -1;
    for (long i = 0; i < n; i++) {
        if (!armed[i])
            continue;
        ASSERT_LT(prev, woke_at[i]);
        prev = woke_at[i];
        lateness[m++] = lateness[i];
    }
    bool ok = m > n * 9 / 10;
    if (m > 0) {
        qsort(lateness, (size_t)m, sizeof *lateness, cmp64);
        int64_t median = lateness[m / 2], p99 = lateness[m * 99 / 100];
        printf("timers: %ld of %ld sleepers armed, in order, lateness median %lld us, p99 %lld "
               "us, max %lld us (a plain thread on that CPU meanwhile: median %lld us)\n",
               m, n, (long long)median / 1000, (long long)p99 / 1000,
               (long long)lateness[m - 1] / 1000, (long long)os_median / 1000);
        /* typical lateness is a few microseconds alone; allow for a loaded
         * 2-CPU machine running other tests, and never ask for better than
         * the OS gave a plain thread on the same CPU at the same time */
        int64_t bound = test_scale_factor() < 1 ? TEST_MS(50) : TEST_MS(3);
        if (bound < 4 * os_median + TEST_MS(1))
            bound = 4 * os_median + TEST_MS(1);
        ok = ok && median < bound;
    }
    free(woke_at);
    free(lateness);
    free(armed);
    free(cs);
    return ok;
}

/* with pin_workers, worker i runs on exactly one CPU */
static void *affinity_of_worker(void *arg)
{
    (void)arg;
#ifdef _WIN32
    return (void *)(intptr_t)win_cpus_of_thread();
#else
    cpu_set_t set;
    ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    return (void *)(intptr_t)CPU_COUNT(&set);
#endif
}

int main(void)
{
    may_config_t cfg = { .workers = 2, .pin_workers = true };
    ASSERT_EQ(may_configure(&cfg), 0);
    ASSERT_EQ(may_workers(), 2);
    for (int wk = 0; wk < 2; wk++) {
        may_co_t *ac;
        void *cnt;
        may_spawn_opts_t po = { .flags = MAY_SPAWN_PINNED, .worker = wk };
        ASSERT_EQ(may_spawn(&ac, affinity_of_worker, NULL, &po), 0);
        ASSERT_EQ(may_join(ac, &cnt, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)cnt, 1); /* pinned to one CPU */
    }

    /* fairness on one worker (pinned) */
    may_co_t *ys[NY];
    for (int i = 0; i < NY; i++) {
        may_spawn_opts_t o = { .flags = MAY_SPAWN_PINNED, .worker = 0 };
        ASSERT_EQ(may_spawn(&ys[i], yielder, (void *)(intptr_t)i, &o), 0);
    }
    usleep(20000);
    atomic_store(&go, 1);
    usleep(50000);
    /* work from a plain thread still gets to run */
    may_co_t *oc;
    ASSERT_EQ(may_spawn(&oc, outside, NULL, NULL), 0);
    ASSERT_EQ(may_join(oc, NULL, may_deadline_in(TEST_MS(2000))), MAY_DONE);
    ASSERT_EQ(atomic_load(&outside_ran), 1);
    atomic_store(&stop_all, 1);
    for (int i = 0; i < NY; i++)
        ASSERT_EQ(may_join(ys[i], NULL, MAY_FOREVER), MAY_DONE);
    long mn, mx;
    test_min_max(counts, NY, &mn, &mx);
    printf("yield fairness: min %ld max %ld\n", mn, mx);
    ASSERT_GT(mn, 100);
    ASSERT_LE(mx - mn, 2); /* round robin: counts differ by at most a lap */

    /* stealing: every worker ran coroutines spawned by one */
    may_co_t *sp;
    may_spawn_opts_t o0 = { .flags = MAY_SPAWN_WORKER, .worker = 0 };
    ASSERT_EQ(may_spawn(&sp, spawn_busy, (void *)200, &o0), 0);
    ASSERT_EQ(may_join(sp, NULL, MAY_FOREVER), MAY_DONE);
    for (int w = 0; w < 2; w++)
        ASSERT_GT(atomic_load(&ran_on[w]), 0);
    may_stats_t st;
    may_stats(&st);
    ASSERT_GT(st.steals, 0);

    /* timers in order: all on worker 0, so wake order is observable.  The
     * order and never-early checks hold in every attempt; lateness depends on
     * the machine's load (CI runs other tests beside this one, and worker 0 is
     * pinned to one CPU), so one quiet attempt in three must show it. */
    long n = test_scale(20000);
    bool timely = false;
    for (int attempt = 0; attempt < 3 && !timely; attempt++)
        timely = timer_attempt(n);
    ASSERT(timely);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
