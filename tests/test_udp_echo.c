/* The UDP echo example (examples/udp_echo.c) in-process: three server
 * coroutines on one socket; eight coroutine clients and a plain thread, each
 * on its own socket, send numbered datagrams of varied sizes, up to the
 * largest a UDP datagram can be, one at a time, and each must get its own
 * datagrams back, whole, within a deadline.  Then the scope cancels and joins the servers. */
#define UDP_ECHO_NO_MAIN
#include "../examples/udp_echo.c"
#include "test.h"

#ifndef _WIN32 /* Windows: Winsock, from may.h */
#include <netinet/in.h>
#endif
#include <pthread.h>

static char server[32];
static long rounds;

/* The payload of a client's i-th datagram: 1..2000 bytes, and for client 0
 * every 8th one 65507 bytes, the most an IPv4 UDP datagram holds (only one
 * client sends those, so the datagrams in flight, at most one per client,
 * fit the server socket's default receive buffer and none is dropped).  The
 * bytes name the client and the round, so an echo of someone else's
 * datagram, an old one or a cut one cannot pass. */
static size_t fill(char *buf, unsigned client, long i)
{
    size_t len = client == 0 && i % 8 == 7 ? 65507 : 1 + (size_t)((i * 7919 + client * 131) % 2000);
    for (size_t k = 0; k < len; k++)
        buf[k] = (char)(client * 31 + (unsigned)i * 7 + k);
    return len;
}

static void client_rounds(unsigned client)
{
    int fd = may_udp_socket(AF_INET);
    ASSERT_GE(fd, 0);
    /* connected: only the server's datagrams reach this socket */
    ASSERT_EQ(may_udp_connect(fd, server), 0);
    char *out = malloc(65536), *in = malloc(65536);
    ASSERT(out && in);
    for (long i = 0; i < rounds; i++) {
        size_t len = fill(out, client, i);
        ASSERT_EQ(may_udp_send(fd, out, len, may_deadline_in(TEST_MS(3000))), len);
        /* Loopback drops a datagram only when the receiver's buffer is full,
         * which one datagram in flight per client cannot fill: no retries. */
        ssize_t n = may_udp_recv(fd, in, 65536, may_deadline_in(TEST_MS(5000)));
        ASSERT_EQ(n, len);
        ASSERT(memcmp(in, out, len) == 0);
    }
    free(out);
    free(in);
    ASSERT_EQ(may_fd_close(fd), 0);
}

static void *client_co(void *arg)
{
    client_rounds((unsigned)(uintptr_t)arg);
    return NULL;
}

static void *client_thread(void *arg)
{
    client_rounds((unsigned)(uintptr_t)arg);
    return NULL;
}

int main(void)
{
    rounds = test_scale(500);
    int fd = may_udp_bind("127.0.0.1:0");
    ASSERT_GE(fd, 0);
    int port = may_tcp_local_port(fd);
    ASSERT_GT(port, 0);
    snprintf(server, sizeof server, "127.0.0.1:%d", port);

    enum { NSERVERS = 3, NCLIENTS = 8 };
    may_scope_t *scope;
    ASSERT_EQ(may_scope_new(&scope), 0);
    for (int i = 0; i < NSERVERS; i++)
        ASSERT_EQ(may_scope_spawn(scope, udp_echo_serve, (void *)(intptr_t)fd, NULL), 0);

    may_co_t *cl[NCLIENTS];
    for (unsigned i = 0; i < NCLIENTS; i++)
        ASSERT_EQ(may_spawn(&cl[i], client_co, (void *)(uintptr_t)i, NULL), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, client_thread, (void *)(uintptr_t)NCLIENTS), 0);
    for (int i = 0; i < NCLIENTS; i++)
        ASSERT_EQ(may_join(cl[i], NULL, may_deadline_in(TEST_MS(60000))), MAY_DONE);
    ASSERT_EQ(pthread_join(th, NULL), 0);

    /* The servers wait in may_udp_recvfrom: the scope cancels them. */
    ASSERT_EQ(may_scope_wait(scope, MAY_NOWAIT), -ETIMEDOUT);
    may_scope_free(scope);
    may_stats_t st;
    may_stats(&st);
    ASSERT_EQ(st.alive, 0);
    ASSERT_EQ(may_fd_close(fd), 0);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok: %d clients x %ld datagrams\n", NCLIENTS + 1, rounds);
    return 0;
}
