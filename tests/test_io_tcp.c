/* TCP over loopback: concurrent reader and writer on one socket, read
 * deadline, refused connect, peer reset, half-close, IPv6, peek, vectored
 * I/O, addresses, and calls from a plain thread. */
#include "test.h"

#include <errno.h>
#ifndef _WIN32 /* may.h has Winsock there */
#include <netinet/in.h>
#endif
#include <pthread.h>
#include <stdint.h>
#ifndef _WIN32 /* may.h has Winsock there */
#include <sys/socket.h>
#include <sys/uio.h>
#endif
#include <unistd.h>

static char addr[64];

static int listen_any(const char *hp)
{
    int lfd = may_tcp_listen(hp, 64, 0);
    ASSERT_GE(lfd, 0);
    return lfd;
}

static void connect_pair(int lfd, const char *host, int *c, int *s)
{
    snprintf(addr, sizeof addr, "%s:%d", host, may_tcp_local_port(lfd));
    *c = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(*c, 0);
    *s = may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(*s, 0);
}

/* ---- one coroutine reads while another writes the same socket ---------- */

static int cfd;
static long total;

static void *echo_side(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    for (;;) {
        ssize_t n = may_tcp_read(fd, buf, sizeof buf, may_deadline_in(TEST_MS(5000)));
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        ASSERT_EQ(may_tcp_write_all(fd, buf, (size_t)n, MAY_FOREVER), n);
    }
    may_tcp_close(fd);
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    unsigned char buf[1000];
    for (long sent = 0; sent < total;) {
        size_t n = sizeof buf;
        if ((long)n > total - sent)
            n = (size_t)(total - sent);
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)((sent + (long)i) * 7);
        ASSERT_EQ(may_tcp_write_all(cfd, buf, n, MAY_FOREVER), n);
        sent += (long)n;
    }
    ASSERT_EQ(may_tcp_shutdown(cfd, SHUT_WR), 0);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    unsigned char buf[1500];
    long got = 0;
    for (;;) {
        ssize_t n = may_tcp_read(cfd, buf, sizeof buf, may_deadline_in(TEST_MS(5000)));
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            ASSERT_EQ(buf[i], (unsigned char)((got + i) * 7));
        got += n;
    }
    ASSERT_EQ(got, total);
    return NULL;
}

static void test_duplex(int lfd)
{
    total = test_scale(4 << 20);
    int s;
    connect_pair(lfd, "127.0.0.1", &cfd, &s);
    may_co_t *e, *w, *r;
    ASSERT_EQ(may_spawn(&e, echo_side, (void *)(intptr_t)s, NULL), 0);
    ASSERT_EQ(may_spawn(&r, reader, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&w, writer, NULL, NULL), 0);
    ASSERT_EQ(may_join(w, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(r, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(e, NULL, MAY_FOREVER), MAY_DONE);
    may_tcp_close(cfd);
}

/* ---- errors -------------------------------------------------------------- */

static void *refused_co(void *arg)
{
    return (void *)(intptr_t)may_tcp_connect(arg, may_deadline_in(TEST_MS(3000)));
}

static void test_errors(int lfd)
{
    int c, s;
    char buf[64];
    /* read deadline */
    connect_pair(lfd, "127.0.0.1", &c, &s);
    int64_t t0 = may_now();
    ASSERT_EQ(may_tcp_read(c, buf, sizeof buf, may_deadline_in(TEST_MS(30))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(30));
    /* peek leaves the data */
    ASSERT_EQ(may_tcp_write_all(s, "peekaboo", 8, MAY_FOREVER), 8);
    ASSERT_EQ(may_tcp_peek(c, buf, 4, may_deadline_in(TEST_MS(3000))), 4);
    ASSERT(memcmp(buf, "peek", 4) == 0);
    ASSERT_EQ(may_tcp_read_full(c, buf, 8, may_deadline_in(TEST_MS(3000))), 8);
    ASSERT(memcmp(buf, "peekaboo", 8) == 0);
    /* vectored */
    struct iovec out[2] = { { "abc", 3 }, { "defg", 4 } };
    ASSERT_EQ(may_tcp_writev(s, out, 2, MAY_FOREVER), 7);
    char x[3], y[4];
    struct iovec in[2] = { { x, 3 }, { y, 4 } };
    ssize_t got = 0;
    while (got < 7) {
        ssize_t n = may_tcp_readv(c, in, 2, may_deadline_in(TEST_MS(3000)));
        ASSERT_GT(n, 0);
        got += n;
        if (got < 7) { /* rare: a split delivery; finish with a plain read */
            ASSERT_EQ(may_tcp_read_full(c, buf, (size_t)(7 - got), MAY_FOREVER), 7 - got);
            got = 7;
            memcpy(y, "defg", 4);
            memcpy(x, "abc", 3);
        }
    }
    ASSERT(memcmp(x, "abc", 3) == 0 && memcmp(y, "defg", 4) == 0);
    /* options and addresses */
    ASSERT_EQ(may_tcp_set_nodelay(c, true), 0);
    ASSERT_EQ(may_tcp_set_keepalive(c, true, 30), 0);
    char la[64], pa[64];
    ASSERT_GT(may_tcp_local_addr(s, la, sizeof la), 0);
    ASSERT_GT(may_tcp_peer_addr(c, pa, sizeof pa), 0);
    ASSERT(strcmp(la, pa) == 0);
    ASSERT(strncmp(pa, "127.0.0.1:", 10) == 0);
    ASSERT_EQ(may_tcp_peer_addr(c, pa, 4), -ENOSPC);

    /* half-close: shutdown write, the peer reads 0 but can still answer */
    ASSERT_EQ(may_tcp_write_all(c, "hello", 5, MAY_FOREVER), 5);
    ASSERT_EQ(may_tcp_shutdown(c, SHUT_WR), 0);
    ASSERT_EQ(may_tcp_read_full(s, buf, sizeof buf, may_deadline_in(TEST_MS(3000))), 5);
    ASSERT_EQ(may_tcp_read(s, buf, sizeof buf, may_deadline_in(TEST_MS(3000))), 0);
    ASSERT_EQ(may_tcp_write_all(s, "bye", 3, MAY_FOREVER), 3);
    ASSERT_EQ(may_tcp_close(s), 0);
    ASSERT_EQ(may_tcp_read_full(c, buf, sizeof buf, may_deadline_in(TEST_MS(3000))), 3);
    ASSERT_EQ(may_tcp_write(c, "x", 1, MAY_FOREVER), -EPIPE);
    ASSERT_EQ(may_tcp_close(c), 0);

    /* peer reset: a zero linger close sends RST */
    connect_pair(lfd, "127.0.0.1", &c, &s);
    struct linger lg = { 1, 0 };
    ASSERT_EQ(setsockopt(s, SOL_SOCKET, SO_LINGER, (void *)&lg, sizeof lg), 0);
    ASSERT_EQ(may_tcp_close(s), 0);
#ifdef _WIN32
    /* wine 8.0 closes a zero-linger socket with a FIN, not a reset (a plain
     * Winsock program sees the same; docs/WINDOWS.md): either answer */
    ssize_t rr = may_tcp_read(c, buf, sizeof buf, may_deadline_in(TEST_MS(3000)));
    ASSERT(rr == -ECONNRESET || rr == 0);
#else
    ASSERT_EQ(may_tcp_read(c, buf, sizeof buf, may_deadline_in(TEST_MS(3000))), -ECONNRESET);
#endif
    ASSERT_EQ(may_tcp_close(c), 0);

    /* refused: a port nobody listens on (from a coroutine and a thread) */
    int l2 = listen_any("127.0.0.1:0");
    char a2[64];
    snprintf(a2, sizeof a2, "127.0.0.1:%d", may_tcp_local_port(l2));
    ASSERT_EQ(may_tcp_close(l2), 0);
    ASSERT_EQ(may_tcp_connect(a2, may_deadline_in(TEST_MS(3000))), -ECONNREFUSED);
    may_co_t *co;
    void *res;
    ASSERT_EQ(may_spawn(&co, refused_co, a2, NULL), 0);
    ASSERT_EQ(may_join(co, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, -ECONNREFUSED);

    /* bad addresses */
    ASSERT_EQ(may_tcp_listen("no-port", 1, 0), -EINVAL);
    ASSERT_EQ(may_tcp_listen("[::1:80", 1, 0), -EINVAL);
    /* a name that cannot resolve (.invalid never does): a clear error */
    ASSERT_LT(may_tcp_connect("example.invalid:80", MAY_NOWAIT), 0);
    /* accept with nothing pending */
    ASSERT_EQ(may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(10))), -ETIMEDOUT);
}

/* ---- IPv6 and ":port" ---------------------------------------------------- */

static void test_ipv6(void)
{
#ifdef _WIN32
    /* Windows has no SO_REUSEPORT: the flag is refused (docs/WINDOWS.md) */
    ASSERT_EQ(may_tcp_listen("[::1]:0", 16, MAY_TCP_REUSEPORT), -ENOTSUP);
    int lfd = may_tcp_listen("[::1]:0", 16, 0);
#else
    int lfd = may_tcp_listen("[::1]:0", 16, MAY_TCP_REUSEPORT);
#endif
    if (lfd == -EADDRNOTAVAIL || lfd == -EAFNOSUPPORT) {
        printf("skip: no IPv6 loopback\n");
        return;
    }
    ASSERT_GE(lfd, 0);
    int c, s;
    connect_pair(lfd, "[::1]", &c, &s);
    char pa[64];
    ASSERT_GT(may_tcp_peer_addr(c, pa, sizeof pa), 0);
    ASSERT(strncmp(pa, "[::1]:", 6) == 0);
    struct sockaddr_storage ss;
    ASSERT_EQ(may_tcp_write_all(c, "six", 3, MAY_FOREVER), 3);
    ASSERT_EQ(may_tcp_read_full(s, pa, 3, MAY_FOREVER), 3);
    ASSERT(memcmp(pa, "six", 3) == 0);
    may_tcp_close(c);
    may_tcp_close(s);
    may_tcp_close(lfd);
    /* ":port": the wildcard, reachable over IPv4 and IPv6 */
    lfd = may_tcp_listen(":0", 16, 0);
    ASSERT_GE(lfd, 0);
    connect_pair(lfd, "127.0.0.1", &c, &s);
    may_tcp_close(c);
    may_tcp_close(s);
    snprintf(addr, sizeof addr, "[::1]:%d", may_tcp_local_port(lfd));
    c = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(c, 0);
    s = may_tcp_accept(lfd, &ss, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(s, 0);
    ASSERT_EQ(ss.ss_family, AF_INET6);
    ASSERT_GT(may_sockaddr_str(&ss, pa, sizeof pa), 0);
    may_tcp_close(c);
    may_tcp_close(s);
    may_tcp_close(lfd);
}

/* ---- a plain thread as client, many coroutines as server ----------------- */

static void *server_conn(void *arg)
{
    return echo_side(arg);
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (int i = 0; i < 3; i++) {
        int fd = may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(5000)));
        ASSERT_GE(fd, 0);
        ASSERT_EQ(may_go(server_conn, (void *)(intptr_t)fd), 0);
    }
    return NULL;
}

static void *thread_client(void *arg)
{
    (void)arg;
    int fd = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(fd, 0);
    for (long i = 0; i < test_scale(1000); i++) {
        char b[8];
        ASSERT_EQ(may_tcp_write_all(fd, "roundtrp", 8, MAY_FOREVER), 8);
        ASSERT_EQ(may_tcp_read_full(fd, b, 8, may_deadline_in(TEST_MS(3000))), 8);
        ASSERT(memcmp(b, "roundtrp", 8) == 0);
    }
    may_tcp_close(fd);
    return NULL;
}

static void test_threads(int lfd)
{
    snprintf(addr, sizeof addr, "127.0.0.1:%d", may_tcp_local_port(lfd));
    may_co_t *a;
    ASSERT_EQ(may_spawn(&a, acceptor, (void *)(intptr_t)lfd, NULL), 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, thread_client, NULL), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    ASSERT_EQ(may_join(a, NULL, MAY_FOREVER), MAY_DONE);
}

int main(void)
{
    int lfd = listen_any("127.0.0.1:0");
    test_duplex(lfd);
    test_errors(lfd);
    test_ipv6();
    test_threads(lfd);
    may_tcp_close(lfd);
    int64_t end = may_deadline_in(TEST_MS(3000));
    may_stats_t st;
    do {
        may_stats(&st);
        if (st.alive == 0)
            break;
        may_sleep(TEST_MS(1));
    } while (may_now() < end);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
