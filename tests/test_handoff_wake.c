/* test_handoff_wake: no lost wake-up when hand-offs, idle workers and a
 * plain thread's spawns meet (src/handoff.c, src/sched.c: may__wakep and
 * the spinning count).
 *
 * The fuzz_http fuzzer (ASan, two busy cores) once left a coroutine that a
 * plain thread had spawned in the global queue for good, while every
 * worker idled.  The monitor had read that a worker made for an earlier
 * hand-off ran a coroutine, and before it looked at /proc the coroutine
 * ended and the worker went to sleep in the poller: the monitor found its
 * thread inside a system call and handed it off, idle as it was, while it
 * sat on the idle list.  A plain thread's may__wakep then picked it (it
 * counts the worker it picks as spinning, looking for work), but a worker
 * that is not active does not look at the global queue, and it did not
 * hand the "spinning" on: it went to sleep as a spare and left, and the
 * spinning count stayed at 1, so that every later may__wakep thought a
 * worker was already looking and woke nobody.
 *
 * That monitor was slow between its two looks (preempted, under ASan).
 * This test makes it slow there on purpose: it is linked with --wrap=open
 * (tests/CMakeLists.txt), and the monitor's open of
 * /proc/self/task/TID/syscall sleeps 0.5-2.5 ms first.  The load: one
 * worker, spares that leave after 2 ms asleep, a coroutine waiting on a
 * socket all along (so an idle worker goes straight to the poller), and
 * two plain threads that each spawn a coroutine and join it, over and
 * over.  For 50 ms the coroutines block their threads: one thread's in a
 * raw nanosleep of 20-40 ms (the worker it holds is handed off, and the
 * spares that take its place serve the other thread), the other's in one
 * of 1.5-4 ms (handed off after two ticks, often just as it returns) or
 * in may_blocking_begin / usleep / _end, with a pause of up to 2 ms after
 * each join, in which the worker idles in the poller.  Then for 50 ms
 * coroutines that do not block (socket calls with a child, spawns,
 * nothing): the spares leave, and a wake-up lost is not made up by the
 * next hand-off.  And so on.  Each join has a deadline of 2 s (10 s under
 * MAY_TEST_SCALE < 1), hundreds of times what a driver takes; one that
 * passes prints may_dump (with the scheduler's counts and each worker's
 * role) and fails.  Runs 3 s (MAY_TEST_SCALE shortens it, down to
 * 0.6 s).  Without the fix it failed 10 runs of 10, after 0.2-2.5 s, and
 * 5 of 5 under ASan (scale 0.1 and 1). */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#define PHASE_MS 50

static int64_t run_until;
static int join_deadline_ms;
static int quiet_fd[2]; /* a socketpair nobody writes to until the end */
static atomic_long drivers, monitor_delays;

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* ---- the monitor, slow between its looks ----------------------------------- */

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    size_t n = strlen(path);
    if (strncmp(path, "/proc/self/task/", 16) == 0 && n > 8 &&
        strcmp(path + n - 8, "/syscall") == 0) {
        static _Thread_local uint32_t seed = 0x2545f491u;
        struct timespec ts = { 0, 500000L + (long)(rnd(&seed) % 2000) * 1000L };
        nanosleep(&ts, NULL);
        atomic_fetch_add(&monitor_delays, 1);
    }
    return __real_open(path, flags, mode);
}

/* ---- the coroutines ----------------------------------------------------------- */

/* Waits on quiet_fd[0] until the end: a coroutine in the poller's set, so
 * an idle worker goes straight to the poller. */
static void *quiet_waiter(void *arg)
{
    (void)arg;
    char c;
    ASSERT_EQ(may_read(quiet_fd[0], &c, 1, MAY_FOREVER), 1);
    return NULL;
}

static void *echo(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16];
    ssize_t n;
    while ((n = may_read(fd, buf, sizeof buf, MAY_FOREVER)) > 0)
        ASSERT_EQ(may_write(fd, buf, (size_t)n, MAY_FOREVER), n);
    return NULL;
}

static void *quick(void *arg)
{
    (void)arg;
    return NULL;
}

/* arg: bit 0 set for a blocking driver, bit 1 for a long one, the rest
 * random. */
static void *driver(void *arg)
{
    uint32_t r = (uint32_t)(uintptr_t)arg;
    int blocking = r & 1, is_long = r & 2;
    r >>= 2;
    if (blocking && is_long) { /* holds a thread while the others come and go */
        struct timespec ts = { 0, 20000000L + (long)(r % 20000) * 1000L };
        nanosleep(&ts, NULL);
        return NULL;
    }
    switch (blocking ? (r % 4 == 0) : 2 + r % 3) {
    case 0: { /* a raw blocking call: handed off after two ticks */
        struct timespec ts = { 0, 1500000L + (long)((r >> 8) % 2500) * 1000L };
        nanosleep(&ts, NULL);
        break;
    }
    case 1: /* a blocking call in the bracket: handed off after one */
        may_blocking_begin();
        usleep(500 + (r >> 8) % 2500);
        may_blocking_end();
        break;
    case 2: { /* socket system calls and the poller */
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        may_co_t *e;
        ASSERT_EQ(may_spawn(&e, echo, (void *)(intptr_t)sv[1], NULL), 0);
        char buf[8];
        for (int i = 0; i < 3; i++) {
            ASSERT_EQ(may_write(sv[0], "ping", 4, MAY_FOREVER), 4);
            ASSERT_EQ(may_read(sv[0], buf, 4, MAY_FOREVER), 4);
        }
        shutdown(sv[0], SHUT_WR);
        ASSERT_EQ(may_join(e, NULL, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ(may_fd_close(sv[0]), 0);
        ASSERT_EQ(may_fd_close(sv[1]), 0);
        break;
    }
    case 3: { /* spawns from the worker */
        may_co_t *c[3];
        for (int i = 0; i < 3; i++)
            ASSERT_EQ(may_spawn(&c[i], quick, NULL, NULL), 0);
        for (int i = 0; i < 3; i++)
            ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
        break;
    }
    default:
        break;
    }
    return NULL;
}

/* A plain thread's loop: spawn a driver, join it, again until run_until;
 * blocking drivers in the even phases, others in the odd ones. */
static void *plain(void *arg)
{
    uint32_t seed = (uint32_t)(uintptr_t)arg;
    int long_ones = seed == 0x9e3779b9u;
    long n = 0;
    int64_t t0 = may_now();
    while (may_now() < run_until) {
        uint32_t r = rnd(&seed) & ~3u;
        if ((may_now() - t0) / TEST_MS(PHASE_MS) % 2 == 0)
            r |= long_ones ? 3 : 1;
        may_co_t *c;
        ASSERT_EQ(may_spawn(&c, driver, (void *)(uintptr_t)r,
                            &(may_spawn_opts_t){ .name = "driver" }),
                  0);
        int rc = may_join(c, NULL, may_deadline_in(TEST_MS(join_deadline_ms)));
        static atomic_int dumped;
        if (rc == -ETIMEDOUT && !atomic_exchange(&dumped, 1)) {
            fprintf(stderr,
                    "test_handoff_wake: a driver spawned from a plain thread did not end in "
                    "%d ms (spawn %ld of this thread): a lost wake-up\n",
                    join_deadline_ms, n + 1);
            may_dump(stderr);
        }
        ASSERT_EQ(rc, MAY_DONE);
        n++;
        if ((r & 3) == 1) { /* leave the worker idle a while: in the poller */
            struct timespec ts = { 0, (long)(rnd(&seed) % 2000) * 1000L };
            nanosleep(&ts, NULL);
        }
    }
    atomic_fetch_add(&drivers, n);
    return NULL;
}

int main(void)
{
    /* No stuck reports: the long drivers block their threads on purpose,
     * at times on a worker lent meanwhile, which is not handed off again */
    setenv("MAY_STUCK_REPORT_MS", "0", 0);
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 1, .spare_idle_ms = 2 }), 0);
    ASSERT_EQ(may_start(), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, quiet_fd), 0);
    may_co_t *q;
    ASSERT_EQ(may_spawn(&q, quiet_waiter, NULL, &(may_spawn_opts_t){ .name = "quiet" }), 0);

    join_deadline_ms = test_scale_factor() < 1 ? 10000 : 2000;
    long ms = test_scale(3000);
    run_until = may_now() + TEST_MS(ms < 600 ? 600 : ms);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, plain, (void *)(uintptr_t)0x9e3779b9u), 0);
    plain((void *)(uintptr_t)0x85ebca6bu);
    ASSERT_EQ(pthread_join(th, NULL), 0);

    ASSERT_EQ(write(quiet_fd[1], "x", 1), 1);
    ASSERT_EQ(may_join(q, NULL, MAY_FOREVER), MAY_DONE);
    may_stats_t st;
    ASSERT_EQ(may_stats(&st), 0);
    printf("test_handoff_wake: %ld drivers from 2 plain threads, %llu hand-offs, %ld slow "
           "looks at /proc, %d threads at the end\n",
           atomic_load(&drivers), (unsigned long long)st.handoffs, atomic_load(&monitor_delays),
           st.threads);
    ASSERT_GT(st.handoffs, 0);
    ASSERT_GT(atomic_load(&monitor_delays), 0); /* the wrapper is in place */
    ASSERT_EQ(may_fd_close(quiet_fd[0]), 0);
    ASSERT_EQ(close(quiet_fd[1]), 0);
    ASSERT_EQ(may_shutdown(), 0);
    puts("test_handoff_wake: ok");
    return 0;
}
