/* The drained-socket shortcut of may_tcp_read (src/io.c): after a read
 * that came back short from a stream socket, the next read parks at once
 * instead of making a recv that can only fail with EAGAIN, until a new
 * readiness event arrives.  Checked here:
 *   - a request/response loop makes about one recv per request, not two
 *     (recv is wrapped with --wrap=recv and counted per fd), and a
 *     may_fd_wait(MAY_READ) before each read makes no poll (--wrap=poll);
 *   - data that arrives later is still read (no lost edge), also when it
 *     arrives while the reader is parked and when reads alternate with
 *     writes from another coroutine;
 *   - a seqpacket socket, where a short read does not mean empty, is never
 *     taken for drained;
 *   - a MAY_NOWAIT read still sees data whose event was not dispatched;
 *   - an EOF queued behind the data of a short read is still seen;
 *   - a read that stops at a TCP urgent mark (with data queued behind it)
 *     is not taken for drained;
 *   - two readers sharing a socket read every byte once and see the EOF. */
#include "test.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t __real_recv(int fd, void *buf, size_t n, int flags);
static _Atomic int count_fd = -1;
static atomic_long recvs, polls;

int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (n == 1 && fds[0].fd == atomic_load(&count_fd))
        atomic_fetch_add(&polls, 1);
    return __real_poll(fds, n, timeout);
}

ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags)
{
    if (fd == atomic_load(&count_fd))
        atomic_fetch_add(&recvs, 1);
    return __real_recv(fd, buf, n, flags);
}

#define MSG 64
static long rounds;

static int wait_first; /* the server waits with may_fd_wait before reading */

static void *echo_server(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        if (wait_first && may_fd_wait(fd, MAY_READ, may_deadline_in(5000000000LL)) < 0)
            break;
        ssize_t n = may_tcp_read(fd, buf, sizeof buf, may_deadline_in(5000000000LL));
        if (n <= 0)
            break;
        ASSERT_EQ(may_tcp_write_all(fd, buf, (size_t)n, MAY_FOREVER), n);
    }
    may_fd_close(fd);
    return NULL;
}

static void check_one_recv_per_request(void)
{
    int lfd = may_tcp_listen("127.0.0.1:0", 16, 0);
    ASSERT(lfd >= 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", may_tcp_local_port(lfd));
    int cfd = may_tcp_connect(addr, may_deadline_in(5000000000LL));
    ASSERT(cfd >= 0);
    int sfd = may_tcp_accept(lfd, NULL, may_deadline_in(5000000000LL));
    ASSERT(sfd >= 0);
    atomic_store(&recvs, 0);
    atomic_store(&polls, 0);
    atomic_store(&count_fd, sfd);
    may_co_t *srv;
    ASSERT_EQ(may_spawn(&srv, echo_server, (void *)(intptr_t)sfd, NULL), 0);
    char out[MSG], in[MSG];
    for (long i = 0; i < rounds; i++) {
        memset(out, (int)('a' + i % 26), sizeof out);
        ASSERT_EQ(may_tcp_write_all(cfd, out, sizeof out, MAY_FOREVER), MSG);
        ASSERT_EQ(may_tcp_read_full(cfd, in, sizeof in, may_deadline_in(5000000000LL)), MSG);
        ASSERT(memcmp(in, out, MSG) == 0);
    }
    may_fd_close(cfd);
    ASSERT_EQ(may_join(srv, NULL, MAY_FOREVER), MAY_DONE);
    atomic_store(&count_fd, -1);
    long n = atomic_load(&recvs), np = atomic_load(&polls);
    printf("%ld requests%s: %ld server recvs, %ld polls\n", rounds,
           wait_first ? " (may_fd_wait first)" : "", n, np);
    /* one per request, plus the EOF; without the shortcut 2 per request */
    ASSERT_LE(n, rounds + rounds / 4 + 2);
    /* may_fd_wait after a short read parks without poll(2); without the
     * shortcut it polls twice per request (not ready, then ready).  Some
     * polls remain where an edge is dispatched during the recv (the key
     * no longer matches): 28 of 100 rounds seen once under qemu, 28 of 50
     * once under valgrind, 44 of 50 another time.  Without the shortcut:
     * 2 per round.  So the slowed stages (a MAY_TEST_SCALE below 1:
     * valgrind, qemu, the sanitizers) check only that it is under 2 per
     * round, the native run that most rounds need no poll. */
    if (wait_first)
        ASSERT_LE(np, test_scale_factor() < 1 ? rounds + 2 : rounds * 3 / 4 + 2);
    may_fd_close(lfd);
}

static void check_wait_then_read(void)
{
    wait_first = 1;
    check_one_recv_per_request();
    wait_first = 0;
}

/* Reader parks after a short read; the writer sends more after a pause. */
static int pair[2];

static void *late_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) {
        ASSERT_EQ(may_sleep(i % 5 ? 0 : 200000), 0);
        ASSERT_EQ(may_tcp_write_all(pair[1], "xyz", 3, MAY_FOREVER), 3);
    }
    return NULL;
}

static void check_late_data(void)
{
    ASSERT_EQ(may_unix_socketpair(SOCK_STREAM, pair), 0);
    may_co_t *w;
    ASSERT_EQ(may_spawn(&w, late_writer, NULL, NULL), 0);
    long got = 0;
    char buf[256];
    while (got < 150) {
        ssize_t n = may_tcp_read(pair[0], buf, sizeof buf, may_deadline_in(5000000000LL));
        ASSERT_GT(n, 0);
        got += n;
    }
    ASSERT_EQ(got, 150);
    ASSERT_EQ(may_join(w, NULL, MAY_FOREVER), MAY_DONE);
    may_fd_close(pair[0]);
    may_fd_close(pair[1]);
}

static void check_seqpacket(void)
{
    int sp[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    char buf[100];
    /* register it, and let the poller see both records arrive (one edge) */
    ASSERT_EQ(may_tcp_read(sp[0], buf, sizeof buf, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(write(sp[1], "aa", 2), 2);
    ASSERT_EQ(write(sp[1], "bbbb", 4), 4);
    ASSERT_EQ(may_sleep(20000000), 0);
    ASSERT_EQ(may_tcp_read(sp[0], buf, sizeof buf, may_deadline_in(2000000000LL)), 2);
    /* short, but the second record is queued: must not park */
    ASSERT_EQ(may_tcp_read(sp[0], buf, sizeof buf, may_deadline_in(2000000000LL)), 4);
    may_fd_close(sp[0]);
    close(sp[1]);
}

/* Data and the peer's FIN both queued and seen by the poller before the
 * read: the short read must not hide the EOF behind it. */
static void check_eof_after_data(void)
{
    int p[2];
    ASSERT_EQ(may_unix_socketpair(SOCK_STREAM, p), 0);
    char buf[100];
    ASSERT_EQ(may_tcp_read(p[0], buf, sizeof buf, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(write(p[1], "abc", 3), 3);
    ASSERT_EQ(shutdown(p[1], SHUT_WR), 0);
    ASSERT_EQ(may_sleep(20000000), 0);
    ASSERT_EQ(may_tcp_read(p[0], buf, sizeof buf, may_deadline_in(2000000000LL)), 3);
    ASSERT_EQ(may_tcp_read(p[0], buf, sizeof buf, may_deadline_in(2000000000LL)), 0);
    may_fd_close(p[0]);
    may_fd_close(p[1]);
}

/* TCP urgent data: recv stops at the urgent mark even when in-band data is
 * queued behind it, so that short read does not mean drained, and the edge
 * for the data behind the mark has already come.  The next read must make
 * its recv (the poller reports EPOLLPRI, which turns the shortcut off for
 * the connection), not wait for an edge that never comes. */
static void check_urgent_mark(void)
{
    int lfd = may_tcp_listen("127.0.0.1:0", 4, 0);
    ASSERT_GE(lfd, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", may_tcp_local_port(lfd));
    int c = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(c, 0);
    int s = may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(s, 0);
    may_fd_close(lfd);
    char buf[64];
    ASSERT_EQ(may_tcp_read(s, buf, sizeof buf, MAY_NOWAIT), -ETIMEDOUT); /* registered */
    ASSERT_EQ(send(c, "abc", 3, 0), 3);
    ASSERT_EQ(send(c, "!", 1, MSG_OOB), 1);
    ASSERT_EQ(send(c, "def", 3, 0), 3);
    /* Let the poller dispatch every edge before the first read's snapshot
     * of the event counter (nothing observable says it has; the hang needs
     * it, a pass does not). */
    ASSERT_EQ(may_sleep(TEST_MS(20)), 0);
    size_t got = 0;
    while (got < 6) {
        /* a regression waits for the deadline instead of reading "def" */
        ssize_t n = may_tcp_read(s, buf + got, sizeof buf - got, may_deadline_in(TEST_MS(2000)));
        ASSERT_GT(n, 0);
        got += (size_t)n;
    }
    ASSERT_EQ(got, 6);
    ASSERT(memcmp(buf, "abcdef", 6) == 0); /* the urgent byte is out of band */
    /* and the connection still works afterwards */
    ASSERT_EQ(may_tcp_write_all(c, "gh", 2, MAY_FOREVER), 2);
    ASSERT_EQ(may_tcp_read(s, buf, sizeof buf, may_deadline_in(TEST_MS(2000))), 2);
    may_fd_close(c);
    may_fd_close(s);
}

static void check_nowait(void)
{
    int p[2];
    ASSERT_EQ(may_unix_socketpair(SOCK_STREAM, p), 0);
    char buf[64];
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ(write(p[1], "q", 1), 1);
        ASSERT_EQ(may_tcp_read(p[0], buf, sizeof buf, may_deadline_in(2000000000LL)), 1);
        /* drained now; new data, and at once a read that may not wait */
        ASSERT_EQ(write(p[1], "rs", 2), 2);
        ASSERT_EQ(may_tcp_read(p[0], buf, sizeof buf, MAY_NOWAIT), 2);
    }
    may_fd_close(p[0]);
    may_fd_close(p[1]);
}

/* Two readers share one stream socket while a writer sends chunks of
 * random sizes with pauses, then shuts down: every byte is read exactly
 * once, nobody hangs, and both readers see the EOF.  Short reads are the
 * rule here, so the shortcut is taken and invalidated all the time. */
static int shared[2];
static atomic_long shared_got;
static long shared_total;

static void *shared_writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char buf[700];
    memset(buf, 'w', sizeof buf);
    long left = shared_total;
    while (left > 0) {
        seed = seed * 1103515245u + 12345u;
        long n = 1 + (long)((seed >> 8) % sizeof buf);
        if (n > left)
            n = left;
        ASSERT_EQ(may_tcp_write_all(shared[1], buf, (size_t)n, MAY_FOREVER), n);
        left -= n;
        if ((seed >> 20) % 8 == 0)
            ASSERT_EQ(may_sleep((int64_t)((seed >> 4) % 200) * 1000), 0);
    }
    ASSERT_EQ(may_tcp_shutdown(shared[1], SHUT_WR), 0);
    return NULL;
}

static void *shared_reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char buf[512];
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t want = 1 + (seed >> 8) % sizeof buf;
        ssize_t n = may_tcp_read(shared[0], buf, want, may_deadline_in(10000000000LL));
        ASSERT_GE(n, 0); /* no timeout: a lost wake-up would show here */
        if (n == 0)
            return NULL;
        atomic_fetch_add(&shared_got, n);
    }
}

static void check_shared_readers(void)
{
    ASSERT_EQ(may_unix_socketpair(SOCK_STREAM, shared), 0);
    shared_total = test_scale(400000);
    atomic_store(&shared_got, 0);
    may_co_t *w, *r1, *r2;
    ASSERT_EQ(may_spawn(&r1, shared_reader, (void *)1, NULL), 0);
    ASSERT_EQ(may_spawn(&r2, shared_reader, (void *)2, NULL), 0);
    ASSERT_EQ(may_spawn(&w, shared_writer, (void *)3, NULL), 0);
    ASSERT_EQ(may_join(w, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(r1, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(r2, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(atomic_load(&shared_got), shared_total);
    may_fd_close(shared[0]);
    may_fd_close(shared[1]);
}

int main(void)
{
    rounds = test_scale(2000);
    if (rounds < 50)
        rounds = 50;
    test_run_both(check_one_recv_per_request);
    test_run_both(check_wait_then_read);
    test_run_both(check_late_data);
    test_run_both(check_seqpacket);
    test_run_both(check_nowait);
    test_run_both(check_eof_after_data);
    test_run_both(check_urgent_mark);
    test_run_both(check_shared_readers);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
