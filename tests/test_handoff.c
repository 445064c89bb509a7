/* test_handoff: a coroutine that blocks its thread in the kernel does not
 * cost the runtime a worker (src/handoff.c, docs/CAVEATS.md rule 1).
 *
 * On 2 workers, one coroutine blocks its thread for 300 ms in a call the
 * library never sees: nanosleep, a read of a pipe left blocking, a
 * contended pthread_mutex_lock; and once in may_blocking_begin/_end.
 * Meanwhile two counters (coroutines that spin 200 us slices and yield)
 * record how many of them run at once.  With the hand-off, another thread
 * takes the blocked worker's place, and both counters run at the same
 * time (2); without it (no_handoff) they share the one free worker and
 * never do (1).  This is not a timing: under one free worker the two can
 * only take turns.  A ticker's lateness is checked too (generously), and
 * may_stats' hand-off count.  Then: the thread that comes back gives its
 * place up (threads stay bounded), and the one-worker runtime hands off
 * too.
 *
 * On Windows the monitor hands a worker off only through
 * may_blocking_begin/_end (no /proc to see that a thread sleeps in a
 * system call, docs/WINDOWS.md): the bracketed case runs (Sleep), the
 * unbracketed ones are skipped, and the later parts bracket their Sleep. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#ifndef _WIN32
#include <sys/syscall.h>
#else /* (the pipe case is skipped on Windows) */
#define pipe(p) _pipe(p, 4096, _O_BINARY)
#endif
#include <time.h>
#include <unistd.h>

enum { HOW_NANOSLEEP, HOW_PIPE, HOW_MUTEX, HOW_BRACKET, HOW_N };
static const char *const how_name[] = { "nanosleep", "pipe read", "pthread mutex", "bracket" };

#define BLOCK_MS 300

static atomic_int in_block;   /* the blocker is inside its call */
static atomic_int stop;
static atomic_int running;    /* counters in a slice now */
static atomic_int max_running; /* most seen at once while in_block */
static atomic_long slices_in_block;

static void *counter(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        int now = atomic_fetch_add(&running, 1) + 1;
        int blocked = atomic_load(&in_block);
        if (blocked) {
            int m = atomic_load(&max_running);
            while (now > m && !atomic_compare_exchange_weak(&max_running, &m, now))
                ;
        }
        int64_t end = may_now() + 200000;
        while (may_now() < end) {
            /* look again during the slice: the other may have started */
            if (atomic_load(&in_block)) {
                int r = atomic_load(&running), m = atomic_load(&max_running);
                while (r > m && !atomic_compare_exchange_weak(&max_running, &m, r))
                    ;
            }
        }
        if (blocked)
            atomic_fetch_add(&slices_in_block, 1);
        atomic_fetch_sub(&running, 1);
        may_yield();
    }
    return NULL;
}

static atomic_long max_late_ns;

static void *ticker(void *arg)
{
    (void)arg;
    int64_t next = may_now();
    while (!atomic_load(&stop)) {
        next += TEST_MS(5);
        may_sleep_until(next);
        int64_t late = may_now() - next;
        long m = atomic_load(&max_late_ns);
        if (atomic_load(&in_block) && late > m)
            atomic_store(&max_late_ns, late);
    }
    return NULL;
}

static int pipefd[2];
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static atomic_int mutex_taken;

/* The plain thread on the other side: writes the pipe, or holds the mutex,
 * for BLOCK_MS. */
static void *other_side(void *arg)
{
    int how = (int)(intptr_t)arg;
    if (how == HOW_MUTEX) {
        pthread_mutex_lock(&held);
        atomic_store(&mutex_taken, 1);
        struct timespec ts = { 0, BLOCK_MS * 1000000L };
        nanosleep(&ts, NULL);
        pthread_mutex_unlock(&held);
    } else {
        struct timespec ts = { 0, BLOCK_MS * 1000000L };
        nanosleep(&ts, NULL);
        ASSERT_EQ(write(pipefd[1], "x", 1), 1);
    }
    return NULL;
}

static void *blocker(void *arg)
{
    int how = (int)(intptr_t)arg;
    struct timespec ts = { 0, BLOCK_MS * 1000000L };
    char c;
    atomic_store(&in_block, 1);
    switch (how) {
    case HOW_NANOSLEEP:
        ASSERT_EQ(nanosleep(&ts, NULL), 0);
        break;
    case HOW_PIPE:
        ASSERT_EQ(read(pipefd[0], &c, 1), 1);
        break;
    case HOW_MUTEX:
        pthread_mutex_lock(&held);
        pthread_mutex_unlock(&held);
        break;
    case HOW_BRACKET: {
        /* may_blocking_end does not switch, though the worker was handed
         * off meanwhile: the thread and errno after it are the call's */
#ifdef _WIN32
        (void)ts;
        long tid = (long)GetCurrentThreadId();
        may_blocking_begin();
        Sleep(BLOCK_MS);
        errno = EBADF; /* as the failed call would leave it */
        may_blocking_end();
        int e = errno;
        ASSERT_EQ((long)GetCurrentThreadId(), tid);
#else
        long tid = syscall(SYS_gettid);
        may_blocking_begin();
        ASSERT_EQ(nanosleep(&ts, NULL), 0);
        ASSERT_EQ(close(-1), -1); /* errno = EBADF */
        may_blocking_end();
        int e = errno;
        ASSERT_EQ(syscall(SYS_gettid), tid);
#endif
        ASSERT_EQ(e, EBADF);
        break;
    }
    }
    atomic_store(&in_block, 0);
    return NULL;
}

struct result {
    int max_running;
    long slices;
    long max_late_ms;
    uint64_t handoffs;
    int threads;
};

static struct result run(int how, int workers, bool no_handoff)
{
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = workers, .no_handoff = no_handoff }), 0);
    ASSERT_EQ(may_start(), 0);
    atomic_store(&stop, 0);
    atomic_store(&max_running, 0);
    atomic_store(&slices_in_block, 0);
    atomic_store(&max_late_ns, 0);
    atomic_store(&mutex_taken, 0);
    pthread_t th;
    if (how == HOW_PIPE)
        ASSERT_EQ(pipe(pipefd), 0); /* blocking: the library never touches it */
    if (how == HOW_PIPE || how == HOW_MUTEX) {
        ASSERT_EQ(pthread_create(&th, NULL, other_side, (void *)(intptr_t)how), 0);
        while (how == HOW_MUTEX && !atomic_load(&mutex_taken))
            sched_yield();
    }
    may_co_t *c[2], *t, *b;
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(may_spawn(&c[i], counter, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&t, ticker, NULL, NULL), 0);
    may_sleep(TEST_MS(20)); /* let them spread */
    ASSERT_EQ(may_spawn(&b, blocker, (void *)(intptr_t)how, NULL), 0);
    ASSERT_EQ(may_join(b, NULL, -1), MAY_DONE);
    may_stats_t st;
    ASSERT_EQ(may_stats(&st), 0);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(may_join(c[i], NULL, -1), MAY_DONE);
    ASSERT_EQ(may_join(t, NULL, -1), MAY_DONE);
    if (how == HOW_PIPE || how == HOW_MUTEX)
        pthread_join(th, NULL);
    if (how == HOW_PIPE) {
        close(pipefd[0]);
        close(pipefd[1]);
    }
    struct result r = {
        .max_running = atomic_load(&max_running),
        .slices = atomic_load(&slices_in_block),
        .max_late_ms = atomic_load(&max_late_ns) / 1000000,
        .handoffs = st.handoffs,
        .threads = st.threads,
    };
    ASSERT_EQ(may_shutdown(), 0);
    return r;
}

/* After a hand-off, many more: the threads that come back give their
 * places up, so the runtime does not grow a thread per blocking call. */
static void *short_block(void *arg)
{
    (void)arg;
#ifdef _WIN32 /* seen by the monitor only when bracketed */
    may_blocking_begin();
    Sleep(30);
    may_blocking_end();
#else
    struct timespec ts = { 0, 30 * 1000000L };
    nanosleep(&ts, NULL);
#endif
    return NULL;
}

/* Where a coroutine ran: 1 while the blocker was inside its call, 2 after. */
static void *mark_when(void *arg)
{
    atomic_store((atomic_int *)arg, atomic_load(&in_block) ? 1 : 2);
    return NULL;
}

#ifdef _WIN32
#define HOW_ONE HOW_BRACKET
#else
#define HOW_ONE HOW_NANOSLEEP
#endif

int main(void)
{
    for (int how = 0; how < HOW_N; how++) {
#ifdef _WIN32
        if (how != HOW_BRACKET) {
            printf("skip: %s without may_blocking_begin/end (Windows has no /proc to see a "
                   "thread blocked in a system call: no hand-off)\n",
                   how_name[how]);
            continue;
        }
#endif
        struct result on = run(how, 2, false);
        printf("%-13s hand-off on:  at once %d, %ld slices, ticker late %ld ms, %llu hand-offs, "
               "%d threads\n",
               how_name[how], on.max_running, on.slices, on.max_late_ms,
               (unsigned long long)on.handoffs, on.threads);
        struct result off = run(how, 2, true);
        printf("%-13s hand-off off: at once %d, %ld slices, ticker late %ld ms, %llu hand-offs, "
               "%d threads\n",
               how_name[how], off.max_running, off.slices, off.max_late_ms,
               (unsigned long long)off.handoffs, off.threads);
        ASSERT_EQ(on.max_running, 2);
        ASSERT_GE(on.handoffs, 1);
        ASSERT_GE(on.threads, 3);
        /* ~10 ms on a quiet machine (the test runs alone: RUN_SERIAL);
         * sanitizers and valgrind (scale < 1) are slower */
        ASSERT_LT(on.max_late_ms, test_scale_factor() < 1 ? 400 : 100);
        ASSERT_EQ(off.max_running, 1);
        ASSERT_EQ(off.handoffs, 0);
        ASSERT_EQ(off.threads, 2);
    }

    /* One worker: the blocked worker's queue goes to a spare. */
    struct result one = run(HOW_ONE, 1, false);
    printf("one worker:   at once %d, %ld slices, %llu hand-offs, %d threads\n", one.max_running,
           one.slices, (unsigned long long)one.handoffs, one.threads);
    ASSERT_GE(one.handoffs, 1);
    ASSERT_GT(one.slices, 0); /* the counters ran while the only worker blocked */

    /* Repeated blocking calls: threads stay bounded. */
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2 }), 0);
    for (int round = 0; round < 5; round++) {
        may_co_t *cs[4];
        for (int i = 0; i < 4; i++)
            ASSERT_EQ(may_spawn(&cs[i], short_block, NULL, NULL), 0);
        for (int i = 0; i < 4; i++)
            ASSERT_EQ(may_join(cs[i], NULL, -1), MAY_DONE);
    }
    may_stats_t st;
    ASSERT_EQ(may_stats(&st), 0);
    printf("20 blocking calls, 4 at a time: %llu hand-offs, %d threads\n",
           (unsigned long long)st.handoffs, st.threads);
    ASSERT_LE(st.threads, 2 + 4 + 1);
    ASSERT_EQ(may_shutdown(), 0);

    /* Spares leave after spare_idle_ms with nothing to do. */
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2, .spare_idle_ms = 50 }), 0);
    may_co_t *cs[3];
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(may_spawn(&cs[i], short_block, NULL, NULL), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(may_join(cs[i], NULL, -1), MAY_DONE);
    ASSERT_EQ(may_stats(&st), 0);
    int peak = st.threads;
    int64_t until = may_now() + TEST_MS(5000);
    while (st.threads > 2 && may_now() < until) {
        may_sleep(TEST_MS(20));
        ASSERT_EQ(may_stats(&st), 0);
    }
    printf("spares: %d threads after the blocking calls, %d once idle\n", peak, st.threads);
    ASSERT_GT(peak, 2);
    ASSERT_EQ(st.threads, 2);
    ASSERT_EQ(may_shutdown(), 0);

    /* A MAY_SPAWN_WORKER coroutine for a worker that is lent already: an
     * idle worker steals it while the lent thread is still blocked.  (The
     * monitor sleeps then, every active worker being idle, so the spawn
     * itself must wake one; before it did, the coroutine waited in the
     * lent worker's inbox for the blocking call to end.) */
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2 }), 0);
    {
        may_co_t *b, *c;
        atomic_int where = 0;
        atomic_store(&in_block, 0);
        ASSERT_EQ(may_stats(&st), 0);
        uint64_t h0 = st.handoffs;
        ASSERT_EQ(may_spawn(&b, blocker, (void *)(intptr_t)HOW_BRACKET,
                            &(may_spawn_opts_t){ .worker = 0, .flags = MAY_SPAWN_PINNED }),
                  0);
        int64_t until = may_now() + TEST_MS(BLOCK_MS);
        do {
            may_sleep(TEST_MS(1));
            ASSERT_EQ(may_stats(&st), 0);
        } while ((st.handoffs == h0 || !atomic_load(&in_block)) && may_now() < until);
        ASSERT_GT(st.handoffs, h0);
        may_sleep(TEST_MS(20)); /* every active worker idle, the monitor asleep */
        ASSERT_EQ(may_spawn(&c, mark_when, &where,
                            &(may_spawn_opts_t){ .worker = 0, .flags = MAY_SPAWN_WORKER }),
                  0);
        ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ(may_join(b, NULL, MAY_FOREVER), MAY_DONE);
        printf("MAY_SPAWN_WORKER for a lent worker: ran %s the blocking call\n",
               atomic_load(&where) == 1 ? "during" : "after");
        ASSERT_EQ(atomic_load(&where), 1);
    }
    ASSERT_EQ(may_shutdown(), 0);

    /* Bad configuration. */
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 4, .max_threads = 2 }), -EINVAL);
    ASSERT_EQ(may_configure(&(may_config_t){ .max_threads = -1 }), -EINVAL);
    ASSERT_EQ(may_configure(&(may_config_t){ .spare_idle_ms = -2 }), -EINVAL);
    puts("test_handoff: ok");
    return 0;
}
