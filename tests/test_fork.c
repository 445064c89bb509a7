/* fork while the runtime runs (src/fork.c): the child's one thread is a
 * plain thread; calls that need the runtime fail with -ENOTRECOVERABLE
 * instead of hanging, calls that need none still work (generators, key
 * storage, sleeps, a mutex of its own, waking a coroutine copy, which
 * takes the scheduler's locks), and it can exec.  Forks come from a
 * coroutine and from the main thread while workers are busy spawning,
 * joining, passing messages and sleeping (so the runtime's locks are taken
 * all the time); the parent keeps working, and every child is reaped
 * within a timeout.  A child's may_fd_close of an inherited descriptor
 * does not unregister it in the parent.  A fork after may_shutdown: the
 * child may start a runtime of its own. */
#include "test.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the load: keeps every scheduler lock busy ------------------------- */

static _Atomic int stop;
static may_chan_t *ping;

static void *leaf(void *arg)
{
    return arg;
}

static void *churn(void *arg)
{
    long n = 0;
    while (!atomic_load(&stop)) {
        may_co_t *c;
        /* spawn + join: stack pool, run queues; a sleep: timers, idling */
        ASSERT_EQ(may_spawn(&c, leaf, arg, NULL), 0);
        ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
        int v = 1;
        if ((n++ & 1) == 0)
            ASSERT_EQ(may_chan_send(ping, &v, MAY_FOREVER), 0);
        else
            ASSERT_EQ(may_sleep(1000), 0);
    }
    return NULL;
}

static void *drain(void *arg)
{
    (void)arg;
    int v;
    while (may_chan_recv(ping, &v, MAY_FOREVER) == 0)
        ;
    return NULL;
}

/* ---- the child --------------------------------------------------------- */

static may_co_t *parked; /* a coroutine of the parent, parked for good */
static int pipe_rd = -1;  /* never written */

static void *gen_body(may_gen_t *g, void *arg)
{
    may_gen_yield(g, arg);
    return NULL;
}

/* The child's checks, then exec.  A failed check aborts the child. */
static _Noreturn void child(void)
{
    ASSERT(may_self() == NULL); /* a plain thread, even after a fork in a coroutine */
    ASSERT_EQ(may_worker_id(), -1);
    may_co_t *c = (may_co_t *)1;
    ASSERT_EQ(may_spawn(&c, leaf, NULL, NULL), -ENOTRECOVERABLE);
    ASSERT(c == NULL);
    ASSERT_EQ(may_go(leaf, NULL), -ENOTRECOVERABLE);
    ASSERT_EQ(may_start(), -ENOTRECOVERABLE);
    ASSERT_EQ(may_workers(), 0);
    ASSERT_EQ(may_join(parked, NULL, MAY_FOREVER), -ENOTRECOVERABLE);
    ASSERT_EQ(may_fd_wait(pipe_rd, MAY_READ, MAY_FOREVER), -ENOTRECOVERABLE);
    char b;
    ASSERT_EQ(may_read(pipe_rd, &b, 1, MAY_FOREVER), -ENOTRECOVERABLE);
    /* what needs no runtime works */
    ASSERT_EQ(may_sleep(1000), 0);
    may_mutex_t *m;
    ASSERT_EQ(may_mutex_new(&m), 0);
    ASSERT_EQ(may_mutex_lock(m, MAY_FOREVER), 0);
    ASSERT_EQ(may_mutex_unlock(m), 0);
    may_mutex_free(m);
    may_gen_t *g; /* a stack from the global pool: the stack lock */
    void *v;
    ASSERT_EQ(may_gen_new(&g, gen_body, (void *)7, 0), 0);
    ASSERT_EQ(may_gen_resume(g, &v), 1);
    ASSERT_PTR_EQ(v, 7);
    may_gen_free(g);
    may_key_t k; /* the key lock */
    ASSERT_EQ(may_key_create(&k, NULL), 0);
    ASSERT_EQ(may_setspecific(k, &k), 0);
    ASSERT_PTR_EQ(may_getspecific(k), &k);
    ASSERT_EQ(may_key_delete(k), 0);
    /* waking the copy of a parked coroutine queues it (the global queue
     * and idle locks), and nothing runs it */
    ASSERT_EQ(may_cancel(parked), 0);
    ASSERT_EQ(may_shutdown(), 0); /* nothing to stop */
    ASSERT_EQ(may_spawn(&c, leaf, NULL, NULL), -ENOTRECOVERABLE); /* still */
    execl("/bin/true", "true", (char *)NULL);
    _exit(99);
}

/* Wait for the child to end, for at most 30 s (then kill it and fail): a
 * pidfd if the kernel has one, else polling waitpid. */
static void reap(pid_t pid)
{
    int status = 0, done = 0;
#ifdef SYS_pidfd_open
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd p = { .fd = pfd, .events = POLLIN };
        int r;
        while ((r = poll(&p, 1, 30000)) < 0 && errno == EINTR)
            ;
        done = r == 1;
        close(pfd);
    } else
#endif
    {
        for (int i = 0; i < 30000 && !done; i++) {
            done = waitpid(pid, &status, WNOHANG) == pid;
            if (!done)
                usleep(1000);
        }
        if (done) {
            ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            return;
        }
    }
    if (!done) {
        fprintf(stderr, "child %d hangs\n", (int)pid);
        kill(pid, SIGKILL);
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(done);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "child status %#x\n", status);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void *fork_in_co(void *arg)
{
    (void)arg;
    may_yield(); /* let the load run on this worker too */
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0)
        child();
    return (void *)(intptr_t)pid;
}

static void *wait_readable(void *arg)
{
    return (void *)(intptr_t)may_fd_wait((int)(intptr_t)arg, MAY_READ,
                                         may_deadline_in(TEST_MS(5000)));
}

static void *park_forever(void *arg)
{
    (void)arg;
    ASSERT_EQ(may_park(MAY_FOREVER), -ECANCELED);
    return NULL;
}

int main(void)
{
    may_config_t cfg = { .workers = 2 };
    ASSERT_EQ(may_configure(&cfg), 0);
    int pfds[2];
    ASSERT_EQ(pipe(pfds), 0);
    pipe_rd = pfds[0];
    ASSERT_EQ(may_chan_new(&ping, sizeof(int), 4), 0);
    ASSERT_EQ(may_spawn(&parked, park_forever, NULL, NULL), 0);
    enum { LOAD = 6 };
    may_co_t *load[LOAD + 1];
    for (int i = 0; i < LOAD; i++)
        ASSERT_EQ(may_spawn(&load[i], churn, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&load[LOAD], drain, NULL, NULL), 0);

    long rounds = test_scale(20);
    for (long i = 0; i < rounds; i++) {
        /* from a coroutine */
        may_co_t *f;
        void *pid;
        ASSERT_EQ(may_spawn(&f, fork_in_co, NULL, NULL), 0);
        ASSERT_EQ(may_join(f, &pid, MAY_FOREVER), MAY_DONE);
        reap((pid_t)(intptr_t)pid);
        /* from the main thread, a plain thread */
        pid_t p = fork();
        ASSERT(p >= 0);
        if (p == 0)
            child();
        reap(p);
    }

    /* A child's may_fd_close of an inherited descriptor leaves the parent's
     * registration of it alone (the epoll set is shared across the fork:
     * the child's copy is closed at the fork, else the close would remove
     * the parent's entry and the parent's waiter would never wake). */
    int wp[2];
    ASSERT_EQ(pipe(wp), 0);
    ASSERT_EQ(may_fd_wait(wp[0], MAY_READ, MAY_NOWAIT), -ETIMEDOUT); /* registers it */
    pid_t cp = fork();
    ASSERT(cp >= 0);
    if (cp == 0) {
        ASSERT_EQ(may_fd_close(wp[0]), 0);
        _exit(0);
    }
    reap(cp);
    may_co_t *waiter;
    ASSERT_EQ(may_spawn(&waiter, wait_readable, (void *)(intptr_t)wp[0], NULL), 0);
    ASSERT_EQ(write(wp[1], "x", 1), 1);
    void *ready;
    ASSERT_EQ(may_join(waiter, &ready, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)ready, MAY_READ);
    ASSERT_EQ(may_fd_close(wp[0]), 0);
    close(wp[1]);

    /* the parent runs on */
    atomic_store(&stop, 1);
    for (int i = 0; i < LOAD; i++)
        ASSERT_EQ(may_join(load[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_chan_close(ping), 0);
    ASSERT_EQ(may_join(load[LOAD], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_cancel(parked), 0);
    ASSERT_EQ(may_join(parked, NULL, MAY_FOREVER), MAY_CANCELED);
    may_chan_free(ping);
    close(pfds[0]);
    close(pfds[1]);
    ASSERT_EQ(may_shutdown(), 0);

    /* a fork while the runtime is stopped is not special: the child starts
     * a runtime of its own */
    pid_t p = fork();
    ASSERT(p >= 0);
    if (p == 0) {
        may_co_t *c;
        void *r;
        ASSERT_EQ(may_spawn(&c, leaf, (void *)5, NULL), 0);
        ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
        ASSERT_PTR_EQ(r, 5);
        ASSERT_EQ(may_shutdown(), 0);
        _exit(0);
    }
    reap(p);
    printf("ok: %ld forks from a coroutine and %ld from a thread\n", rounds, rounds);
    return 0;
}
