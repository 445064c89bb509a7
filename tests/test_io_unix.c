/* Unix-domain sockets in a temporary directory: stream echo (coroutine and
 * thread clients), accept deadline, connect errors, path length limits,
 * datagrams from bound, unbound and abstract senders, truncation, a sender
 * outpacing a slow receiver (full queue), socketpairs between a coroutine
 * and a plain thread, -EPIPE on a closed peer. */
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char spath[128];

static void path_in(char *out, size_t n, const char *name)
{
    ASSERT_LT(snprintf(out, n, "%s/%s", dir, name), (int)n);
}

/* ---- stream echo -------------------------------------------------------- */

static long rounds;

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    for (;;) {
        ssize_t n = may_read(fd, buf, sizeof buf, may_deadline_in(TEST_MS(3000)));
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        ASSERT_EQ(may_tcp_write_all(fd, buf, (size_t)n, MAY_FOREVER), n);
    }
    ASSERT_EQ(may_fd_close(fd), 0);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (int i = 0; i < 4; i++) {
        int fd = may_unix_accept(lfd, may_deadline_in(TEST_MS(3000)));
        ASSERT_GE(fd, 0);
        ASSERT_EQ(may_go(echo_conn, (void *)(intptr_t)fd), 0);
    }
    return NULL;
}

static void *client(void *arg)
{
    (void)arg;
    int fd = may_unix_connect(spath, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(fd, 0);
    char msg[32], buf[32];
    for (long i = 0; i < rounds; i++) {
        int len = snprintf(msg, sizeof msg, "line %ld", i);
        ASSERT_EQ(may_write(fd, msg, (size_t)len, MAY_FOREVER), len);
        ASSERT_EQ(may_tcp_read_full(fd, buf, (size_t)len, may_deadline_in(TEST_MS(3000))), len);
        ASSERT(memcmp(buf, msg, (size_t)len) == 0);
    }
    ASSERT_EQ(may_fd_close(fd), 0);
    return NULL;
}

static void test_stream(void)
{
    rounds = test_scale(200);
    path_in(spath, sizeof spath, "stream.sock");
    int lfd = may_unix_listen(spath, 16);
    ASSERT_GE(lfd, 0);
    ASSERT_EQ(may_unix_listen(spath, 16), -EADDRINUSE);
    may_co_t *a, *c[3];
    ASSERT_EQ(may_spawn(&a, acceptor, (void *)(intptr_t)lfd, NULL), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(may_spawn(&c[i], client, NULL, NULL), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, client, NULL), 0);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(a, NULL, MAY_FOREVER), MAY_DONE);

    /* accept deadline */
    int64_t t0 = may_now();
    ASSERT_EQ(may_unix_accept(lfd, may_deadline_in(TEST_MS(50))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(50));
    ASSERT_EQ(may_unix_accept(lfd, MAY_NOWAIT), -ETIMEDOUT);

    /* the socket file outlives the listener: nobody listens */
    ASSERT_EQ(may_fd_close(lfd), 0);
    ASSERT_EQ(may_unix_connect(spath, may_deadline_in(TEST_MS(1000))), -ECONNREFUSED);
    ASSERT_EQ(unlink(spath), 0);
    ASSERT_EQ(may_unix_connect(spath, may_deadline_in(TEST_MS(1000))), -ENOENT);
}

/* ---- path limits ---------------------------------------------------------- */

static void test_paths(void)
{
    char p[300];
    size_t base = strlen(dir) + 1;
    /* 107 bytes: the longest path that fits */
    snprintf(p, sizeof p, "%s/", dir);
    memset(p + base, 'a', 107 - base);
    p[107] = '\0';
    int fd = may_unix_dgram_bind(p);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_unix_sendto(fd, "x", 1, p, MAY_FOREVER), 1);
    char from[MAY_UNIX_ADDR_MAX], c;
    ASSERT_EQ(may_unix_recvfrom(fd, &c, 1, from, sizeof from, may_deadline_in(TEST_MS(1000))), 1);
    ASSERT(strcmp(from, p) == 0);
    /* a short from buffer: cut, NUL-terminated */
    ASSERT_EQ(may_unix_sendto(fd, "x", 1, p, MAY_FOREVER), 1);
    char shortb[8];
    ASSERT_EQ(may_unix_recvfrom(fd, &c, 1, shortb, sizeof shortb, MAY_FOREVER), 1);
    ASSERT_EQ(strlen(shortb), 7);
    ASSERT(strncmp(shortb, p, 7) == 0);
    ASSERT_EQ(may_fd_close(fd), 0);
    ASSERT_EQ(unlink(p), 0);
    /* 108 and more: too long, before any file appears */
    p[107] = 'a';
    p[108] = '\0';
    ASSERT_EQ(may_unix_listen(p, 1), -ENAMETOOLONG);
    ASSERT_EQ(may_unix_dgram_bind(p), -ENAMETOOLONG);
    ASSERT_EQ(may_unix_connect(p, MAY_FOREVER), -ENAMETOOLONG);
    memset(p + base, 'b', 250 - base);
    p[250] = '\0';
    ASSERT_EQ(may_unix_connect(p, MAY_FOREVER), -ENAMETOOLONG);
    fd = may_unix_dgram_socket();
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_unix_sendto(fd, "x", 1, p, MAY_FOREVER), -ENAMETOOLONG);
    ASSERT_EQ(may_unix_sendto(fd, "x", 1, "", MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_unix_sendto(fd, "x", 1, "@", MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_fd_close(fd), 0);
    ASSERT_EQ(may_unix_listen(NULL, 1), -EINVAL);
}

/* ---- datagrams ------------------------------------------------------------ */

static char rpath[128];

static void test_dgram(void)
{
    char spath2[128], from[MAY_UNIX_ADDR_MAX], buf[64];
    path_in(rpath, sizeof rpath, "r.sock");
    path_in(spath2, sizeof spath2, "s.sock");
    int r = may_unix_dgram_bind(rpath);
    int s = may_unix_dgram_bind(spath2);
    int u = may_unix_dgram_socket();
    ASSERT_GE(r, 0);
    ASSERT_GE(s, 0);
    ASSERT_GE(u, 0);

    /* bound sender: its path comes along, and a reply reaches it */
    ASSERT_EQ(may_unix_sendto(s, "hello", 5, rpath, MAY_FOREVER), 5);
    ASSERT_EQ(may_unix_recvfrom(r, buf, sizeof buf, from, sizeof from,
                                may_deadline_in(TEST_MS(1000))), 5);
    ASSERT(memcmp(buf, "hello", 5) == 0);
    ASSERT(strcmp(from, spath2) == 0);
    ASSERT_EQ(may_unix_sendto(r, "back", 4, from, MAY_FOREVER), 4);
    ASSERT_EQ(may_unix_recvfrom(s, buf, sizeof buf, NULL, 0, may_deadline_in(TEST_MS(1000))), 4);

    /* unbound sender: empty path */
    ASSERT_EQ(may_unix_sendto(u, "anon", 4, rpath, MAY_FOREVER), 4);
    strcpy(from, "junk");
    ASSERT_EQ(may_unix_recvfrom(r, buf, sizeof buf, from, sizeof from,
                                may_deadline_in(TEST_MS(1000))), 4);
    ASSERT_EQ(from[0], '\0');

    /* truncation: the full length comes back */
    char big[300];
    memset(big, 'z', sizeof big);
    ASSERT_EQ(may_unix_sendto(u, big, sizeof big, rpath, MAY_FOREVER), 300);
    ASSERT_EQ(may_unix_recvfrom(r, buf, 10, NULL, 0, may_deadline_in(TEST_MS(1000))), 300);
    ASSERT_EQ(may_unix_recvfrom(r, buf, 10, NULL, 0, MAY_NOWAIT), -ETIMEDOUT);

    /* receive deadline */
    int64_t t0 = may_now();
    ASSERT_EQ(may_unix_recvfrom(r, buf, sizeof buf, from, sizeof from,
                                may_deadline_in(TEST_MS(50))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(50));

    /* nobody there */
    char gone[128];
    path_in(gone, sizeof gone, "gone.sock");
    ASSERT_EQ(may_unix_sendto(u, "x", 1, gone, MAY_FOREVER), -ENOENT);

    /* abstract namespace */
    char abs[64];
    snprintf(abs, sizeof abs, "@may-test-%d", (int)getpid());
    int a = may_unix_dgram_bind(abs);
    ASSERT_GE(a, 0);
    ASSERT_EQ(may_unix_sendto(a, "ab", 2, rpath, MAY_FOREVER), 2);
    ASSERT_EQ(may_unix_recvfrom(r, buf, sizeof buf, from, sizeof from,
                                may_deadline_in(TEST_MS(1000))), 2);
    ASSERT(strcmp(from, abs) == 0);
    ASSERT_EQ(may_unix_sendto(r, "ba", 2, abs, MAY_FOREVER), 2);
    ASSERT_EQ(may_unix_recvfrom(a, buf, sizeof buf, NULL, 0, may_deadline_in(TEST_MS(1000))), 2);
    ASSERT_EQ(may_fd_close(a), 0);

    ASSERT_EQ(may_fd_close(s), 0);
    ASSERT_EQ(may_fd_close(u), 0);
    ASSERT_EQ(unlink(spath2), 0);
    /* r stays for test_flood */
    ASSERT_EQ(may_fd_close(r), 0);
}

/* An unbound sender outpaces a receiver that starts late: the receiver's
 * queue fills (EAGAIN with no wake-up for the sender), and every datagram
 * still arrives, in order. */
static long flood_n;

static void *flood_sender(void *arg)
{
    (void)arg;
    int u = may_unix_dgram_socket();
    ASSERT_GE(u, 0);
    for (long i = 0; i < flood_n; i++) {
        uint32_t v = (uint32_t)i;
        ASSERT_EQ(may_unix_sendto(u, &v, sizeof v, rpath, may_deadline_in(TEST_MS(3000))),
                  sizeof v);
    }
    ASSERT_EQ(may_fd_close(u), 0);
    return NULL;
}

static void *flood_receiver(void *arg)
{
    int r = (int)(intptr_t)arg;
    may_sleep(TEST_MS(30)); /* let the queue fill */
    for (long i = 0; i < flood_n; i++) {
        uint32_t v;
        ASSERT_EQ(may_unix_recvfrom(r, &v, sizeof v, NULL, 0, may_deadline_in(TEST_MS(3000))),
                  sizeof v);
        ASSERT_EQ(v, (uint32_t)i);
    }
    return NULL;
}

static void test_flood(void)
{
    flood_n = test_scale(300);
    if (flood_n < 40)
        flood_n = 40; /* more than the default queue length (10) */
    int r = may_unix_dgram_bind(rpath);
    ASSERT_EQ(r, -EADDRINUSE); /* the file is still there */
    ASSERT_EQ(unlink(rpath), 0);
    r = may_unix_dgram_bind(rpath);
    ASSERT_GE(r, 0);
    may_co_t *s, *c;
    ASSERT_EQ(may_spawn(&c, flood_receiver, (void *)(intptr_t)r, NULL), 0);
    ASSERT_EQ(may_spawn(&s, flood_sender, NULL, NULL), 0);
    ASSERT_EQ(may_join(s, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    /* a cancelled sender waiting on a full queue */
    int u = may_unix_dgram_socket();
    ASSERT_GE(u, 0);
    ssize_t n;
    while ((n = may_unix_sendto(u, "f", 1, rpath, MAY_NOWAIT)) == 1)
        ;
    ASSERT_EQ(n, -ETIMEDOUT);
    int64_t t0 = may_now();
    ASSERT_EQ(may_unix_sendto(u, "f", 1, rpath, may_deadline_in(TEST_MS(30))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(30));
    ASSERT_EQ(may_fd_close(u), 0);
    ASSERT_EQ(may_fd_close(r), 0);
    ASSERT_EQ(unlink(rpath), 0);
}

/* ---- socketpair: coroutine <-> thread ------------------------------------- */

static void *pp_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (long i = 0; i < rounds; i++) {
        uint64_t v;
        ASSERT_EQ(may_read(fd, &v, sizeof v, may_deadline_in(TEST_MS(3000))), sizeof v);
        ASSERT_EQ(v, (uint64_t)i * 2);
        v++;
        ASSERT_EQ(may_write(fd, &v, sizeof v, MAY_FOREVER), sizeof v);
    }
    return NULL;
}

static void *pp_co(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (long i = 0; i < rounds; i++) {
        uint64_t v = (uint64_t)i * 2;
        ASSERT_EQ(may_write(fd, &v, sizeof v, MAY_FOREVER), sizeof v);
        ASSERT_EQ(may_read(fd, &v, sizeof v, may_deadline_in(TEST_MS(3000))), sizeof v);
        ASSERT_EQ(v, (uint64_t)i * 2 + 1);
    }
    return NULL;
}

static void test_socketpair(void)
{
    rounds = test_scale(2000);
    int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
    for (int t = 0; t < 3; t++) {
        int fds[2];
        ASSERT_EQ(may_unix_socketpair(types[t], fds), 0);
        pthread_t th;
        may_co_t *co;
        ASSERT_EQ(pthread_create(&th, NULL, pp_thread, (void *)(intptr_t)fds[1]), 0);
        ASSERT_EQ(may_spawn(&co, pp_co, (void *)(intptr_t)fds[0], NULL), 0);
        ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ(pthread_join(th, NULL), 0);
        if (types[t] == SOCK_DGRAM) {
            /* boundaries kept, truncation reported */
            ASSERT_EQ(may_write(fds[0], "abcdef", 6, MAY_FOREVER), 6);
            char b[4];
            ASSERT_EQ(may_unix_recvfrom(fds[1], b, 3, NULL, 0, MAY_FOREVER), 6);
        }
        ASSERT_EQ(may_fd_close(fds[1]), 0);
        if (types[t] == SOCK_STREAM) {
            /* the peer is gone: -EPIPE, no SIGPIPE; EOF on read */
            ASSERT_EQ(may_tcp_write(fds[0], "x", 1, MAY_FOREVER), -EPIPE);
            char b;
            ASSERT_EQ(may_read(fds[0], &b, 1, MAY_FOREVER), 0);
        }
        ASSERT_EQ(may_fd_close(fds[0]), 0);
    }
    int fds[2];
    ASSERT_LT(may_unix_socketpair(12345, fds), 0);
}

int main(void)
{
    strcpy(dir, "/tmp/may-unix-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    test_stream();
    test_paths();
    test_dgram();
    test_flood();
    test_socketpair();
    ASSERT_EQ(rmdir(dir), 0); /* every socket file was removed */
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
