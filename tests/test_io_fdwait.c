/* may_fd_wait, may_read, may_write and may_fd_close on pipes: readiness,
 * timeout, cancellation and close while waiting (-EBADF, no hang), from
 * coroutines and plain threads. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

static int pfd[2];

/* On Windows, where only sockets are fds for these calls, the "pipes" are
 * loopback TCP pairs (test.h) and a write without the runtime is send(). */
static void mkpipe(void)
{
#ifdef _WIN32
    ASSERT_EQ(test_fd_pipe(pfd), 0);
#else
    ASSERT_EQ(pipe2(pfd, O_CLOEXEC), 0);
#endif
}

static void *wait_read_co(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)may_fd_wait(pfd[0], MAY_READ, MAY_FOREVER);
}

static void *delayed_writer(void *arg)
{
    (void)arg;
    may_sleep(TEST_MS(10));
    ASSERT_EQ(may_write(pfd[1], "x", 1, MAY_FOREVER), 1);
    return NULL;
}

static void test_ready_and_timeout(void)
{
    mkpipe();
    /* not ready: timeout, both MAY_NOWAIT and a real deadline */
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, MAY_NOWAIT), -ETIMEDOUT);
    int64_t t0 = may_now();
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, may_deadline_in(TEST_MS(20))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(20));
    ASSERT_EQ(may_fd_wait(pfd[1], MAY_WRITE, MAY_NOWAIT), MAY_WRITE);
    ASSERT_EQ(may_fd_wait(pfd[1], MAY_READ | MAY_WRITE, MAY_NOWAIT), MAY_WRITE);
    /* data already there (an edge from before the wait): ready at once */
    ASSERT_EQ(test_fd_write_raw(pfd[1], pfd[0], "a", 1), 1);
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, MAY_NOWAIT), MAY_READ);
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, MAY_FOREVER), MAY_READ);
    char c;
    ASSERT_EQ(may_read(pfd[0], &c, 1, MAY_NOWAIT), 1);
    ASSERT_EQ(may_read(pfd[0], &c, 1, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_read(pfd[0], &c, 1, may_deadline_in(TEST_MS(5))), -ETIMEDOUT);
    ASSERT_EQ(may_fd_wait(pfd[0], 0, MAY_NOWAIT), -EINVAL);
    ASSERT_EQ(may_fd_wait(-1, MAY_READ, MAY_NOWAIT), -EBADF);

    /* a coroutine waiting, woken by a write from a plain thread */
    may_co_t *co;
    ASSERT_EQ(may_spawn(&co, wait_read_co, NULL, NULL), 0);
    may_sleep(TEST_MS(10));
    ASSERT_EQ(test_fd_write_raw(pfd[1], pfd[0], "b", 1), 1);
    void *res;
    ASSERT_EQ(may_join(co, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, MAY_READ);
    ASSERT_EQ(may_read(pfd[0], &c, 1, MAY_NOWAIT), 1);
    ASSERT_EQ(c, 'b');

    /* the plain thread waiting, woken by a coroutine's write */
    ASSERT_EQ(may_spawn(&co, delayed_writer, NULL, NULL), 0);
    ASSERT_EQ(may_read(pfd[0], &c, 1, may_deadline_in(TEST_MS(3000))), 1);
    ASSERT_EQ(c, 'x');
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);

    /* EOF: readable, read gives 0 */
    ASSERT_EQ(may_fd_close(pfd[1]), 0);
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, may_deadline_in(TEST_MS(3000))), MAY_READ);
    ASSERT_EQ(may_read(pfd[0], &c, 1, MAY_FOREVER), 0);
    ASSERT_EQ(may_fd_close(pfd[0]), 0);
}

static void test_cancel(void)
{
    mkpipe();
    may_co_t *co;
    ASSERT_EQ(may_spawn(&co, wait_read_co, NULL, NULL), 0);
    /* cancel it in its wait, not before it starts (then it never runs):
     * under valgrind 10 ms was not always enough to get there */
    may_stats_t st;
    do {
        may_sleep(TEST_MS(1));
        ASSERT_EQ(may_stats(&st), 0);
    } while (st.fd_waiters == 0);
    ASSERT_EQ(may_cancel(co), 0);
    void *res;
    ASSERT_EQ(may_join(co, &res, may_deadline_in(TEST_MS(3000))), MAY_CANCELED);
    ASSERT_EQ((intptr_t)res, -ECANCELED);
    /* the fd still works for others */
    ASSERT_EQ(test_fd_write_raw(pfd[1], pfd[0], "z", 1), 1);
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, may_deadline_in(TEST_MS(3000))), MAY_READ);
    may_fd_close(pfd[0]);
    may_fd_close(pfd[1]);
}

static void *wait_read_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)may_fd_wait(pfd[0], MAY_READ, MAY_FOREVER);
}

static void test_close_while_waiting(void)
{
    mkpipe();
    enum { N = 4 };
    may_co_t *co[N];
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_spawn(&co[i], wait_read_co, NULL, NULL), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, wait_read_thread, NULL), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_fd_close(pfd[0]), 0);
    void *res;
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(may_join(co[i], &res, may_deadline_in(TEST_MS(3000))), MAY_DONE);
        ASSERT_EQ((intptr_t)res, -EBADF);
    }
    ASSERT_EQ(pthread_join(th, &res), 0);
    ASSERT_EQ((intptr_t)res, -EBADF);
    /* the fd number may come back: a fresh pipe works normally */
    mkpipe();
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_write(pfd[1], "q", 1, MAY_FOREVER), 1);
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, may_deadline_in(TEST_MS(3000))), MAY_READ);
    may_fd_close(pfd[0]);
    may_fd_close(pfd[1]);
    may_fd_close(pfd[1]); /* closed twice: -EBADF, no harm */
}

/* Ping-pong over two pipes between two coroutines. */
static int ab[2], ba[2];
static long rounds;

static void *ping(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        uint32_t v = (uint32_t)i, r;
        ASSERT_EQ(may_write(ab[1], &v, sizeof v, MAY_FOREVER), 4);
        ASSERT_EQ(may_read(ba[0], &r, sizeof r, MAY_FOREVER), 4);
        ASSERT_EQ(r, v + 1);
    }
    return NULL;
}

static void *pong(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        uint32_t v;
        ASSERT_EQ(may_read(ab[0], &v, sizeof v, MAY_FOREVER), 4);
        v++;
        ASSERT_EQ(may_write(ba[1], &v, sizeof v, MAY_FOREVER), 4);
    }
    return NULL;
}

static void test_pingpong(void)
{
    rounds = test_scale(20000);
#ifdef _WIN32
    ASSERT_EQ(test_fd_pipe(ab), 0);
    ASSERT_EQ(test_fd_pipe(ba), 0);
#else
    ASSERT_EQ(pipe2(ab, O_CLOEXEC), 0);
    ASSERT_EQ(pipe2(ba, O_CLOEXEC), 0);
#endif
    may_co_t *a, *b;
    ASSERT_EQ(may_spawn(&a, ping, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&b, pong, NULL, NULL), 0);
    ASSERT_EQ(may_join(a, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(b, NULL, MAY_FOREVER), MAY_DONE);
    may_fd_close(ab[0]);
    may_fd_close(ab[1]);
    may_fd_close(ba[0]);
    may_fd_close(ba[1]);
}

int main(void)
{
    test_ready_and_timeout();
    test_cancel();
    test_close_while_waiting();
    test_pingpong();
#ifdef _WIN32
    /* only sockets have readiness on Windows: may_fd_wait on a file or a
     * pipe (handle values, docs/WINDOWS.md) is -ENOTSUP; may_read and
     * may_write on them do the transfer (on the offload pool), and
     * may_fd_close closes them */
    char path[MAX_PATH + 32];
    int fd = test_tmp_mkstemp(path, "may-fdwait-XXXXXX");
    ASSERT_EQ(close(fd), 0);
    fd = may_file_open(path, O_RDWR | O_TRUNC, 0, MAY_FOREVER);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_write(fd, "hello", 5, MAY_FOREVER), 5);
    ASSERT_EQ(may_fd_wait(fd, MAY_READ, MAY_NOWAIT), -ENOTSUP);
    char buf[16] = "";
    ASSERT_EQ(may_read(fd, buf, sizeof buf, MAY_FOREVER), 0); /* at the end */
    ASSERT_EQ(may_file_read(fd, buf, sizeof buf, 0, MAY_FOREVER), 5);
    ASSERT(memcmp(buf, "hello", 5) == 0);
    ASSERT_EQ(may_fd_close(fd), 0);
    ASSERT_EQ(may_fd_close(fd), -EBADF);
    ASSERT_EQ(unlink(path), 0);
    HANDLE rd, wr;
    ASSERT(CreatePipe(&rd, &wr, NULL, 64));
    int cp[2] = { (int)(intptr_t)rd, (int)(intptr_t)wr };
    ASSERT_EQ(may_fd_wait(cp[0], MAY_READ, MAY_NOWAIT), -ENOTSUP);
    ASSERT_EQ(may_fd_wait(cp[1], MAY_WRITE, MAY_NOWAIT), -ENOTSUP);
    ASSERT_EQ(may_write(cp[1], "p", 1, MAY_FOREVER), 1);
    ASSERT_EQ(may_read(cp[0], buf, 1, may_deadline_in(TEST_MS(10000))), 1);
    ASSERT_EQ(buf[0], 'p');
    ASSERT_EQ(may_fd_close(cp[1]), 0);
    ASSERT_EQ(may_read(cp[0], buf, 1, MAY_FOREVER), 0); /* the writer has gone */
    ASSERT_EQ(may_fd_close(cp[0]), 0);
    /* a value that names no handle */
    ASSERT_EQ(may_fd_wait(0x3ffffc, MAY_READ, MAY_NOWAIT), -EBADF);
    ASSERT_EQ(may_read(0x3ffffc, buf, 1, MAY_NOWAIT), -EBADF);
    ASSERT_EQ(may_read(4001, buf, 1, MAY_NOWAIT), -EBADF); /* not a multiple of 4 */
    ASSERT_EQ(may_fd_close(0x3ffffc), -EBADF);
#else
    /* a regular file is always ready */
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_fd_wait(fd, MAY_READ, MAY_NOWAIT), MAY_READ);
    char buf[16];
    ASSERT_GT(may_read(fd, buf, sizeof buf, MAY_FOREVER), 0);
    ASSERT_EQ(may_fd_close(fd), 0);
#endif
    ASSERT_EQ(may_shutdown(), 0);
    /* after a shutdown the runtime (and its poller) comes back */
    mkpipe();
    ASSERT_EQ(may_write(pfd[1], "s", 1, MAY_FOREVER), 1);
    ASSERT_EQ(may_fd_wait(pfd[0], MAY_READ, may_deadline_in(TEST_MS(3000))), MAY_READ);
    may_fd_close(pfd[0]);
    may_fd_close(pfd[1]);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
