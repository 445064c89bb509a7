/* test_hook_net: accept on a blocking listener, connect with a blocking
 * socket, a blocking TCP exchange, a refused connect (ECONNREFUSED) and
 * getaddrinfo("localhost") in coroutines on ONE worker, none of which
 * holds the worker (B runs while A waits).  Without the hooks accept
 * holds the only worker, and the test fails.  getaddrinfo and
 * gethostbyname run on the offload pool; a local lookup is too fast to
 * show the worker free meanwhile, so their results are what is checked. */
#include "hook_test.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

static int lfd;
static struct sockaddr_in addr;

static void *a_accept(void *arg)
{
    (void)arg;
    int c = accept(lfd, NULL, NULL);
    ASSERT_GE(c, 0);
    ASSERT_EQ(atomic_load(&b_ran), 1);
    char buf[5] = { 0 };
    ASSERT_EQ(recv(c, buf, 4, MSG_WAITALL), 4); /* sent in two pieces */
    ASSERT_EQ(memcmp(buf, "ping", 4), 0);
    ASSERT_EQ(send(c, "pong", 4, 0), 4);
    ASSERT_EQ(close(c), 0);
    return NULL;
}

static void *b_connect(void *arg)
{
    (void)arg;
    b_start();
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(s, 0);
    ASSERT_EQ(connect(s, (struct sockaddr *)&addr, sizeof addr), 0);
    ASSERT_EQ(fcntl(s, F_GETFL) & O_NONBLOCK, 0);
    ASSERT_EQ(write(s, "pi", 2), 2);
    ASSERT_EQ(may_sleep(TEST_MS(5)), 0);
    ASSERT_EQ(write(s, "ng", 2), 2);
    char buf[5] = { 0 };
    ASSERT_EQ(read(s, buf, 4), 4);
    ASSERT_EQ(memcmp(buf, "pong", 4), 0);
    ASSERT_EQ(read(s, buf, 4), 0); /* EOF */
    ASSERT_EQ(close(s), 0);
    return NULL;
}

static void rescue_connect(void *arg)
{
    (void)arg;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    (void)!connect(s, (struct sockaddr *)&addr, sizeof addr);
    (void)!write(s, "ping", 4);
}

static void *refused(void *arg)
{
    (void)arg;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = addr;
    a.sin_port = 0;
    /* a port nobody listens on: bind one, do not listen */
    int t = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(bind(t, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    ASSERT_EQ(getsockname(t, (struct sockaddr *)&a, &l), 0);
    errno = 0;
    ASSERT_EQ(connect(s, (struct sockaddr *)&a, sizeof a), -1);
    ASSERT_EQ(errno, ECONNREFUSED);
    close(s);
    close(t);
    return NULL;
}

static void *resolve(void *arg)
{
    (void)arg;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    ASSERT_EQ(getaddrinfo("localhost", "80", &hints, &res), 0);
    ASSERT(res != NULL);
    int loop = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        loop |= test_is_loopback((struct sockaddr_storage *)ai->ai_addr);
    ASSERT(loop);
    freeaddrinfo(res);
    ASSERT_EQ(getaddrinfo("no-such-host.invalid", NULL, &hints, &res) != 0, 1);
    struct hostent *h = gethostbyname("localhost");
    ASSERT(h != NULL && h->h_addrtype == AF_INET);
    return NULL;
}

int main(void)
{
    alarm(60);
    one_worker();
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(lfd, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(lfd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t l = sizeof addr;
    ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&addr, &l), 0);
    ASSERT_EQ(listen(lfd, 16), 0);
    rescue_t r;
    rescue_start(&r, rescue_connect, NULL);
    run_pair(a_accept, b_connect, NULL);
    rescue_stop(&r);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, refused, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_spawn(&c, resolve, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    close(lfd);
    ASSERT_EQ(may_shutdown(), 0);
    printf("test_hook_net: ok\n");
    return 0;
}
