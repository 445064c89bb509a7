/* 100 MB (scaled by MAY_TEST_SCALE) through a loopback TCP connection
 * between two coroutines, checked by a checksum computed on both sides. */
#include "test.h"

#include <stdint.h>

static int cfd, sfd;
static long total;
static uint64_t sum_out, sum_in;

static uint64_t mix(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL; /* FNV-1a */
    return h;
}

static void *sender(void *arg)
{
    (void)arg;
    static unsigned char buf[65536];
    uint64_t x = 88172645463325252ULL, h = 0xcbf29ce484222325ULL;
    for (long sent = 0; sent < total;) {
        size_t n = sizeof buf;
        if ((long)n > total - sent)
            n = (size_t)(total - sent);
        for (size_t i = 0; i < n; i += 8) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(buf + i, &x, n - i < 8 ? n - i : 8);
        }
        h = mix(h, buf, n);
        ASSERT_EQ(may_tcp_write_all(cfd, buf, n, MAY_FOREVER), n);
        sent += (long)n;
    }
    sum_out = h;
    ASSERT_EQ(may_tcp_shutdown(cfd, 1 /* SHUT_WR */), 0);
    return NULL;
}

static void *receiver(void *arg)
{
    (void)arg;
    static unsigned char buf[50000];
    uint64_t h = 0xcbf29ce484222325ULL;
    long got = 0;
    for (;;) {
        ssize_t n = may_tcp_read(sfd, buf, sizeof buf, may_deadline_in(TEST_MS(10000)));
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        h = mix(h, buf, (size_t)n);
        got += n;
    }
    ASSERT_EQ(got, total);
    sum_in = h;
    return NULL;
}

int main(void)
{
    total = test_scale(100L << 20);
    int lfd = may_tcp_listen("127.0.0.1:0", 4, 0);
    ASSERT_GE(lfd, 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", may_tcp_local_port(lfd));
    cfd = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(cfd, 0);
    sfd = may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(sfd, 0);
    int64_t t0 = may_now();
    may_co_t *s, *r;
    ASSERT_EQ(may_spawn(&r, receiver, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&s, sender, NULL, NULL), 0);
    ASSERT_EQ(may_join(s, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(r, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT(sum_in == sum_out);
    double secs = (double)(may_now() - t0) / 1e9;
    printf("%ld bytes in %.3f s (%.0f MB/s)\n", total, secs, (double)total / secs / 1e6);
    may_tcp_close(cfd);
    may_tcp_close(sfd);
    may_tcp_close(lfd);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
