/* The echo example (examples/echo.c) in-process: coroutine clients and a
 * plain thread make round trips to its server, which is then cancelled. */
#define ECHO_NO_MAIN
#include "../examples/echo.c"
#include "test.h"

#include <pthread.h>

static int port;
static long rounds;

static void client_rounds(void)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int fd = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(fd, 0);
    for (long i = 0; i < rounds; i++) {
        char out[64], in[64];
        int n = snprintf(out, sizeof out, "message %ld from %p", i, (void *)&fd);
        ASSERT_EQ(may_tcp_write_all(fd, out, (size_t)n, MAY_FOREVER), n);
        ASSERT_EQ(may_tcp_read_full(fd, in, (size_t)n, may_deadline_in(TEST_MS(3000))), n);
        ASSERT(memcmp(in, out, (size_t)n) == 0);
    }
    ASSERT_EQ(may_tcp_close(fd), 0);
}

static void *client_co(void *arg)
{
    (void)arg;
    client_rounds();
    return NULL;
}

static void *client_thread(void *arg)
{
    (void)arg;
    client_rounds();
    return NULL;
}

int main(void)
{
    rounds = test_scale(2000);
    int lfd = may_tcp_listen("127.0.0.1:0", 128, 0);
    ASSERT_GE(lfd, 0);
    port = may_tcp_local_port(lfd);
    ASSERT_GT(port, 0);
    may_co_t *srv;
    ASSERT_EQ(may_spawn(&srv, echo_serve, (void *)(intptr_t)lfd, NULL), 0);
    enum { NCLIENTS = 8 };
    may_co_t *cl[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++)
        ASSERT_EQ(may_spawn(&cl[i], client_co, NULL, NULL), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, client_thread, NULL), 0);
    for (int i = 0; i < NCLIENTS; i++)
        ASSERT_EQ(may_join(cl[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(may_cancel(srv), 0);
    ASSERT_EQ(may_join(srv, NULL, may_deadline_in(TEST_MS(3000))), MAY_CANCELED);
    ASSERT_EQ(may_tcp_close(lfd), 0);
    /* the connection coroutines end once their clients closed */
    int64_t end = may_deadline_in(TEST_MS(3000));
    may_stats_t st;
    do {
        may_stats(&st);
        if (st.alive == 0)
            break;
        may_sleep(TEST_MS(1));
    } while (may_now() < end);
    ASSERT_EQ(st.alive, 0);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
