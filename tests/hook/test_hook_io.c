/* test_hook_io: read/write/recv/send and friends on blocking pipes and
 * socketpairs, in coroutines on ONE worker (see hook_test.h for the
 * pattern); the application's O_NONBLOCK, F_GETFL/F_SETFL and FIONBIO
 * views; SO_RCVTIMEO; close waking a reader; cancellation; plain threads;
 * calls before may_start; a signal handler's write. */
#include "hook_test.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

static int p[2], sp[2];

static void rescue_write(void *arg)
{
    int fd = *(int *)arg;
    (void)!write(fd, "r", 1);
}

/* ---- read / write on a pipe ------------------------------------------- */

static void *a_read(void *arg)
{
    (void)arg;
    char c = 0;
    ASSERT_EQ(read(p[0], &c, 1), 1);
    ASSERT_EQ(c, 'x');
    ASSERT_EQ(atomic_load(&b_ran), 1); /* B ran while A waited */
    return NULL;
}

static void *b_write(void *arg)
{
    (void)arg;
    b_start();
    ASSERT_EQ(write(p[1], "x", 1), 1);
    return NULL;
}

static void test_pipe_read(void)
{
    ASSERT_EQ(pipe(p), 0);
    rescue_t r;
    rescue_start(&r, rescue_write, &p[1]);
    run_pair(a_read, b_write, NULL);
    rescue_stop(&r);
    /* the application's view: still blocking; underneath: non-blocking */
    ASSERT_EQ(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    ASSERT_NE(raw_getfl(p[0]) & O_NONBLOCK, 0);
    close(p[0]);
    close(p[1]);
}

/* ---- a big write on a pipe: all of it, as a blocking write -------------- */

#define BIG (1 << 20)

static void rescue_drain(void *arg)
{
    (void)arg;
    static char sink[BIG];
    size_t got = 0;
    while (got < BIG) {
        ssize_t n = read(p[0], sink, sizeof sink);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
}

static void *a_bigwrite(void *arg)
{
    (void)arg;
    char *buf = calloc(1, BIG);
    ASSERT(buf);
    ASSERT_EQ(write(p[1], buf, BIG), BIG);
    free(buf);
    ASSERT_EQ(atomic_load(&b_ran), 1);
    return NULL;
}

static void *b_bigread(void *arg)
{
    (void)arg;
    b_start();
    char *buf = malloc(65536);
    size_t got = 0;
    while (got < BIG) {
        ssize_t n = read(p[0], buf, 65536);
        ASSERT_GT(n, 0);
        got += (size_t)n;
    }
    free(buf);
    return NULL;
}

static void test_big_write(void)
{
    ASSERT_EQ(pipe(p), 0);
    rescue_t r;
    rescue_start(&r, rescue_drain, NULL);
    run_pair(a_bigwrite, b_bigread, NULL);
    rescue_stop(&r);
    close(p[0]);
    close(p[1]);
}

/* ---- recv / send, readv / writev, recvmsg / sendmsg on a socketpair --- */

static void *a_recv(void *arg)
{
    int kind = *(int *)arg;
    char buf[8] = { 0 };
    ssize_t n;
    if (kind == 0) {
        n = recv(sp[0], buf, sizeof buf, 0);
    } else if (kind == 1) {
        struct iovec iov[2] = { { buf, 2 }, { buf + 2, 6 } };
        n = readv(sp[0], iov, 2);
    } else {
        struct iovec iov = { buf, sizeof buf };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        n = recvmsg(sp[0], &mh, 0);
    }
    ASSERT_EQ(n, 3);
    ASSERT_EQ(memcmp(buf, "abc", 3), 0);
    ASSERT_EQ(atomic_load(&b_ran), 1);
    return NULL;
}

static void *b_send(void *arg)
{
    int kind = *(int *)arg;
    b_start();
    if (kind == 0) {
        ASSERT_EQ(send(sp[1], "abc", 3, 0), 3);
    } else if (kind == 1) {
        struct iovec iov[2] = { { "a", 1 }, { "bc", 2 } };
        ASSERT_EQ(writev(sp[1], iov, 2), 3);
    } else {
        struct iovec iov = { "abc", 3 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ASSERT_EQ(sendmsg(sp[1], &mh, 0), 3);
    }
    return NULL;
}

static void rescue_send(void *arg)
{
    (void)arg;
    (void)!write(sp[1], "abc", 3);
}

static void test_socketpair(void)
{
    for (int kind = 0; kind < 3; kind++) {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        rescue_t r;
        rescue_start(&r, rescue_send, NULL);
        run_pair(a_recv, b_send, &kind);
        rescue_stop(&r);
        close(sp[0]);
        close(sp[1]);
    }
}

/* ---- the application's own O_NONBLOCK ---------------------------------- */

static void *nonblock_co(void *arg)
{
    (void)arg;
    char c;
    /* made non-blocking at creation */
    ASSERT_EQ(pipe2(p, O_NONBLOCK), 0);
    int64_t t0 = may_now();
    errno = 0;
    ASSERT_EQ(read(p[0], &c, 1), -1);
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_NE(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    close(p[0]);
    close(p[1]);
    /* made non-blocking with F_SETFL after the hooks switched it */
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(write(p[1], "y", 1), 1);
    ASSERT_EQ(read(p[0], &c, 1), 1); /* the hooks have seen it: blocking */
    ASSERT_EQ(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    int fl = fcntl(p[0], F_GETFL);
    ASSERT_EQ(fcntl(p[0], F_SETFL, fl | O_NONBLOCK), 0);
    ASSERT_NE(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    errno = 0;
    ASSERT_EQ(read(p[0], &c, 1), -1);
    ASSERT_EQ(errno, EAGAIN);
    /* back to blocking: the view follows, the fd stays non-blocking */
    ASSERT_EQ(fcntl(p[0], F_SETFL, fl), 0);
    ASSERT_EQ(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    ASSERT_NE(raw_getfl(p[0]) & O_NONBLOCK, 0);
    /* FIONBIO */
    int on = 1;
    ASSERT_EQ(ioctl(p[0], FIONBIO, &on), 0);
    ASSERT_NE(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    errno = 0;
    ASSERT_EQ(read(p[0], &c, 1), -1);
    ASSERT_EQ(errno, EAGAIN);
    on = 0;
    ASSERT_EQ(ioctl(p[0], FIONBIO, &on), 0);
    ASSERT_EQ(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    /* a dup shares the file description, and the view */
    int d = dup(p[0]);
    ASSERT_GE(d, 0);
    ASSERT_EQ(fcntl(d, F_GETFL) & O_NONBLOCK, 0);
    close(d);
    ASSERT_LT(ms_since(t0), 1000); /* none of it waited */
    close(p[0]);
    close(p[1]);
    return NULL;
}

static void test_nonblock(void)
{
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, nonblock_co, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
}

/* ---- SO_RCVTIMEO ------------------------------------------------------- */

static void *a_timeo(void *arg)
{
    (void)arg;
    struct timeval tv = { 0, 100000 }; /* 100 ms */
    ASSERT_EQ(setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    char c;
    int64_t t0 = may_now();
    errno = 0;
    ASSERT_EQ(recv(sp[0], &c, 1, 0), -1);
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_GE(ms_since(t0), 90);
    ASSERT_LT(ms_since(t0), 5000);
    ASSERT_EQ(atomic_load(&b_ran), 1);
    return NULL;
}

static void *b_note(void *arg)
{
    (void)arg;
    b_start();
    return NULL;
}

static void test_rcvtimeo(void)
{
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    run_pair(a_timeo, b_note, NULL);
    close(sp[0]);
    close(sp[1]);
}

/* ---- close wakes a reader ---------------------------------------------- */

static void *a_read_ebadf(void *arg)
{
    (void)arg;
    char c;
    errno = 0;
    ASSERT_EQ(read(p[0], &c, 1), -1);
    ASSERT_EQ(errno, EBADF);
    ASSERT_EQ(atomic_load(&b_ran), 1);
    return NULL;
}

static void *b_close(void *arg)
{
    (void)arg;
    b_start();
    ASSERT_EQ(close(p[0]), 0);
    return NULL;
}

static void rescue_close(void *arg)
{
    (void)arg;
    close(p[1]); /* A's read then sees EOF: not EBADF, so it fails */
}

static void test_close_wakes(void)
{
    ASSERT_EQ(pipe(p), 0);
    rescue_t r;
    rescue_start(&r, rescue_close, NULL);
    run_pair(a_read_ebadf, b_close, NULL);
    rescue_stop(&r);
    close(p[1]);
}

/* ---- cancellation ------------------------------------------------------ */

static void *read_forever(void *arg)
{
    (void)arg;
    char c;
    errno = 0;
    ssize_t n = read(p[0], &c, 1);
    ASSERT_EQ(n, -1);
    ASSERT_EQ(errno, ECANCELED);
    return NULL;
}

static void test_cancel(void)
{
    ASSERT_EQ(pipe(p), 0);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, read_forever, NULL, NULL), 0);
    struct timespec ts = { 0, 20000000 };
    nanosleep(&ts, NULL); /* a plain thread: the plain call */
    ASSERT_EQ(may_cancel(c), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_CANCELED);
    close(p[0]);
    close(p[1]);
}

/* ---- a plain thread on an fd the hooks switched ------------------------ */

static void *writer_later(void *arg)
{
    (void)arg;
    ASSERT_EQ(may_sleep(TEST_MS(50)), 0);
    ASSERT_EQ(write(p[1], "z", 1), 1);
    return NULL;
}

static void *touch(void *arg)
{
    (void)arg;
    char c;
    ASSERT_EQ(write(p[1], "t", 1), 1);
    ASSERT_EQ(read(p[0], &c, 1), 1); /* classifies p[0]: non-blocking underneath */
    return NULL;
}

static void test_plain_thread(void)
{
    ASSERT_EQ(pipe(p), 0);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, touch, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_NE(raw_getfl(p[0]) & O_NONBLOCK, 0);
    ASSERT_EQ(may_spawn(&c, writer_later, NULL, NULL), 0);
    char ch = 0;
    ASSERT_EQ(read(p[0], &ch, 1), 1); /* blocks this thread, as read(2) does */
    ASSERT_EQ(ch, 'z');
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    close(p[0]);
    close(p[1]);
}

/* ---- a signal handler's write ------------------------------------------ */

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    (void)!write(p[1], "s", 1);
    errno = saved;
}

static void *read_sig(void *arg)
{
    (void)arg;
    char c = 0;
    ASSERT_EQ(read(p[0], &c, 1), 1);
    ASSERT_EQ(c, 's');
    return NULL;
}

static void test_signal(void)
{
    ASSERT_EQ(pipe(p), 0);
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, read_sig, NULL, NULL), 0);
    struct timespec ts = { 0, 20000000 };
    nanosleep(&ts, NULL);
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0); /* any thread: a worker, or this one */
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    signal(SIGUSR1, SIG_DFL);
    close(p[0]);
    close(p[1]);
}

/* ---- before the runtime starts: plain calls ---------------------------- */

static void test_before_start(void)
{
    int q[2];
    ASSERT_EQ(pipe(q), 0);
    ASSERT_EQ(write(q[1], "b", 1), 1);
    char c;
    ASSERT_EQ(read(q[0], &c, 1), 1);
    ASSERT_EQ(fcntl(q[0], F_GETFL) & O_NONBLOCK, 0);
    ASSERT_EQ(raw_getfl(q[0]) & O_NONBLOCK, 0); /* untouched */
    ASSERT_EQ(usleep(1000), 0);
    close(q[0]);
    close(q[1]);
}

int main(void)
{
    alarm(60);
    test_before_start();
    one_worker();
    ASSERT_EQ(may_start(), 0);
    test_pipe_read();
    test_big_write();
    test_socketpair();
    test_nonblock();
    test_rcvtimeo();
    test_close_wakes();
    test_cancel();
    test_plain_thread();
    test_signal();
    ASSERT_EQ(may_shutdown(), 0);
    printf("test_hook_io: ok\n");
    return 0;
}
