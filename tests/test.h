/* test.h - a tiny assertion kit for the may test suite.
 *
 * Each test is its own executable run by ctest with a timeout; a failed
 * assertion prints both operands with file and line and aborts.
 * MAY_TEST_SCALE (environment, default 1.0) shrinks the big loops for slow
 * builds (sanitizers, valgrind, qemu): use test_scale(n). */
#ifndef MAY_TEST_H
#define MAY_TEST_H
#include "may.h" /* on Windows: winsock2.h first */
#ifndef _WIN32
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ASSERT(c)                                                              \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,         \
                    __LINE__, #c);                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define ASSERT_CMP(a, op, b)                                                   \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (!(a_ op b_)) {                                                     \
            fprintf(stderr, "%s:%d: assertion failed: %s %s %s (%lld vs %lld)\n", \
                    __FILE__, __LINE__, #a, #op, #b, a_, b_);                  \
            abort();                                                           \
        }                                                                      \
    } while (0)
#define ASSERT_EQ(a, b) ASSERT_CMP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP(a, >=, b)
#define ASSERT_PTR_EQ(a, b) ASSERT_EQ((intptr_t)(a), (intptr_t)(b))

static inline double test_scale_factor(void)
{
    const char *s = getenv("MAY_TEST_SCALE");
    double f = s ? atof(s) : 1.0;
    return f > 0 ? f : 1.0;
}
/* n scaled by MAY_TEST_SCALE, at least 1. */
static inline long test_scale(long n)
{
    long r = (long)((double)n * test_scale_factor());
    return r < 1 ? 1 : r;
}
#define TEST_MS(x) ((int64_t)(x) * 1000000LL)

#ifdef _WIN32
#include <fcntl.h>
#ifndef O_CLOEXEC /* the CRT's name for it */
#define O_CLOEXEC O_NOINHERIT
#endif
/* setenv/unsetenv for the tests on Windows (MinGW's CRT has _putenv, whose
 * environment getenv reads, and the library reads its variables with
 * getenv). */
static inline int setenv(const char *name, const char *value, int overwrite)
{
    if (!overwrite && getenv(name))
        return 0;
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);
    if (!s)
        return -1;
    snprintf(s, n, "%s=%s", name, value);
    int r = _putenv(s); /* copies the string */
    free(s);
    return r == 0 ? 0 : -1;
}
static inline int unsetenv(const char *name)
{
    return setenv(name, "", 1); /* "NAME=" removes it */
}
#endif

/* Whether an address is a loopback one (127/8 or ::1). */
static inline int test_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return 0;
}

/* Run fn twice: from the calling plain thread, then from a coroutine (the
 * calls under test must behave the same in both worlds). */
static inline void *test_run_in_co_(void *arg)
{
    void (*fn)(void) = (void (*)(void))arg;
    fn();
    return NULL;
}
static inline void test_run_both(void (*fn)(void))
{
    fn();
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, test_run_in_co_, (void *)fn, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
}

/* The smallest and largest of n counters (yield fairness checks). */
static inline void test_min_max(_Atomic long *c, int n, long *mn, long *mx)
{
    *mn = *mx = atomic_load(&c[0]);
    for (int i = 1; i < n; i++) {
        long v = atomic_load(&c[i]);
        *mn = v < *mn ? v : *mn;
        *mx = v > *mx ? v : *mx;
    }
}

/* A coroutine entry that recurses with 512-byte frames until its stack
 * overflows (tests/test_overflow.c, tests/test_caveats.c). */
static inline int test_recurse(int n)
{
    if (n < 0)
        return 0;
    volatile char pad[512];
    pad[0] = (char)n; /* volatile, and added after the call: no tail call */
    return test_recurse(n + 1) + pad[0];
}

static inline void *test_overflow_entry(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)test_recurse(0);
}

/* A connected loopback TCP pair (Nagle off): sv[0] the accepted end, sv[1]
 * the connecting one.  0 or -errno.  Works from a plain thread or a
 * coroutine. */
static inline int test_fd_tcp_pair(int sv[2])
{
    int l = may_tcp_listen("127.0.0.1:0", 4, 0);
    if (l < 0)
        return l;
    int port = may_tcp_local_port(l);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int64_t dl = may_deadline_in(TEST_MS(30000));
    int c = port < 0 ? port : may_tcp_connect(addr, dl);
    int a = c < 0 ? c : may_tcp_accept(l, NULL, dl);
    may_fd_close(l);
    if (a < 0) {
        if (c >= 0)
            may_fd_close(c);
        return a;
    }
    may_tcp_set_nodelay(a, true);
    may_tcp_set_nodelay(c, true);
    sv[0] = a;
    sv[1] = c;
    return 0;
}

/* Two connected fds for may_fd_wait / may_read / may_write: p[0] to read,
 * p[1] to write.  pipe(2) on Linux; on Windows, where only sockets are fds
 * for those calls (docs/WINDOWS_IO.md), a loopback TCP pair.  0 or -errno. */
static inline int test_fd_pipe(int p[2])
{
#ifdef _WIN32
    return test_fd_tcp_pair(p);
#else
    return pipe(p) == 0 ? 0 : -errno;
#endif
}

/* A connected stream socket pair: socketpair(AF_UNIX) on Linux, a loopback
 * TCP pair on Windows (no socketpair there).  0 or -errno. */
static inline int test_fd_socketpair(int sv[2])
{
#ifdef _WIN32
    return test_fd_tcp_pair(sv);
#else
    return socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 ? 0 : -errno;
#endif
}

/* write(2) on the write end wfd of test_fd_pipe without the runtime; on
 * Windows send(), then wait (WSAPoll, 10 s at most) until the read end rfd
 * is readable, as a pipe's is at once.  The bytes written or -1. */
static inline long test_fd_write_raw(int wfd, int rfd, const void *buf, size_t n)
{
#ifdef _WIN32
    int r = send((SOCKET)wfd, buf, (int)n, 0);
    WSAPOLLFD p = { .fd = (SOCKET)rfd, .events = POLLRDNORM };
    if (r > 0 && WSAPoll(&p, 1, 10000) != 1)
        return -1;
    return r;
#else
    (void)rfd;
    return (long)write(wfd, buf, n);
#endif
}

/* Close an fd of test_fd_pipe / test_fd_socketpair without the runtime, as
 * tests always did on Linux (close(2)); on Windows a socket is not a CRT
 * fd: closesocket. */
static inline int test_fd_close(int fd)
{
#ifdef _WIN32
    return closesocket((SOCKET)fd) == 0 ? 0 : -1;
#else
    return close(fd);
#endif
}

#ifdef _WIN32
/* Windows has no /tmp: make a new file in the temp directory, named name
 * (ending in XXXXXX, which mkstemp fills in), its path in path (at least
 * MAX_PATH + 32 bytes).  Returns the C runtime fd mkstemp opened. */
static inline int test_tmp_mkstemp(char *path, const char *name)
{
    DWORD k = GetTempPathA(MAX_PATH, path);
    ASSERT(k > 0 && k < MAX_PATH);
    strcat(path, name);
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    return fd;
}
#endif
#endif
