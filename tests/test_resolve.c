/* Name resolution without blocking a worker (may_resolve) and address
 * parsing (may_parse_host_port).  No test here needs DNS: "localhost" comes
 * from /etc/hosts, everything else is numeric or rejected before any
 * lookup. */
#include "test.h"
#ifndef _WIN32 /* may.h has Winsock there */
#include <arpa/inet.h>
#endif
#include <errno.h>
#ifndef _WIN32 /* may.h has Winsock there */
#include <netinet/in.h>
#endif
#include <pthread.h>
#ifndef _WIN32 /* may.h has Winsock there */
#include <sys/socket.h>
#endif

void may__offload_shutdown(void); /* internal: what may_shutdown calls */

static void parse_ok(const char *s, const char *host, const char *port)
{
    char h[64], p[16];
    memset(h, 'x', sizeof h);
    memset(p, 'x', sizeof p);
    int r = may_parse_host_port(s, h, sizeof h, p, sizeof p);
    if (r != 0 || strcmp(h, host) || strcmp(p, port)) {
        fprintf(stderr, "parse \"%s\": %d \"%s\" \"%s\"\n", s, r, r ? "" : h, r ? "" : p);
        abort();
    }
}

static void parse_err(const char *s, int err)
{
    char h[64], p[16];
    int r = may_parse_host_port(s, h, sizeof h, p, sizeof p);
    if (r != err) {
        fprintf(stderr, "parse \"%s\": %d, expected %d\n", s ? s : "(null)", r, err);
        abort();
    }
}

static void test_parse(void)
{
    parse_ok("localhost:80", "localhost", "80");
    parse_ok("127.0.0.1:8080", "127.0.0.1", "8080");
    parse_ok("[::1]:80", "::1", "80");
    parse_ok("[fe80::1%eth0]:443", "fe80::1%eth0", "443");
    parse_ok(":9000", "", "9000");
    parse_ok("[::]:1", "::", "1");
    parse_ok("example.com:http", "example.com", "http");

    parse_err(NULL, -EINVAL);
    parse_err("", -EINVAL);
    parse_err("localhost", -EINVAL);       /* no port */
    parse_err("localhost:", -EINVAL);      /* empty port */
    parse_err("::1:80", -EINVAL);          /* bare IPv6 */
    parse_err("[::1]", -EINVAL);           /* no port */
    parse_err("[::1]80", -EINVAL);         /* no colon */
    parse_err("[::1:80", -EINVAL);         /* no ] */
    parse_err("[]:80", -EINVAL);           /* empty brackets */
    parse_err("[[::1]]:80", -EINVAL);
    parse_err("a]:80", -EINVAL);
    parse_err("a[b:80", -EINVAL);
    parse_err("[::1]:80:81", -EINVAL);
    parse_err("[::1]:[80]", -EINVAL);

    /* buffers too small: -ENAMETOOLONG, room for the NUL counts */
    char h[4], p[3];
    ASSERT_EQ(may_parse_host_port("abc:12", h, sizeof h, p, sizeof p), 0);
    ASSERT_EQ(may_parse_host_port("abcd:12", h, sizeof h, p, sizeof p), -ENAMETOOLONG);
    ASSERT_EQ(may_parse_host_port("abc:123", h, sizeof h, p, sizeof p), -ENAMETOOLONG);
    ASSERT_EQ(may_parse_host_port("abc:12", NULL, 4, p, sizeof p), -EINVAL);
    ASSERT_EQ(may_parse_host_port("abc:12", h, 0, p, sizeof p), -EINVAL);
}

static void expect_v4(const struct sockaddr_storage *ss, socklen_t len, const char *ip, int port)
{
    ASSERT_EQ(ss->ss_family, AF_INET);
    ASSERT_EQ(len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char buf[INET_ADDRSTRLEN];
    ASSERT(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
    if (strcmp(buf, ip)) {
        fprintf(stderr, "got %s, expected %s\n", buf, ip);
        abort();
    }
    ASSERT_EQ(ntohs(sin->sin_port), port);
}

static void *resolve_co(void *arg)
{
    (void)arg;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int64_t dl = may_deadline_in(TEST_MS(4000));

    /* numeric: at once, even with a deadline already past */
    ASSERT_EQ(may_resolve("127.0.0.1", "80", AF_UNSPEC, SOCK_STREAM, &ss, &len, MAY_NOWAIT), 0);
    expect_v4(&ss, len, "127.0.0.1", 80);
    ASSERT_EQ(may_resolve("::1", "443", AF_INET6, SOCK_STREAM, &ss, &len, MAY_NOWAIT), 0);
    ASSERT_EQ(ss.ss_family, AF_INET6);
    ASSERT_EQ(len, sizeof(struct sockaddr_in6));
    ASSERT(test_is_loopback(&ss));
    ASSERT_EQ(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 443);
    /* no host: the wildcard, for bind */
    ASSERT_EQ(may_resolve(NULL, "8080", AF_INET, SOCK_STREAM, &ss, &len, MAY_NOWAIT), 0);
    expect_v4(&ss, len, "0.0.0.0", 8080);
    ASSERT_EQ(may_resolve("", "8080", AF_INET, SOCK_STREAM, &ss, NULL, MAY_NOWAIT), 0);

    /* "localhost": a name, looked up on the pool */
    ASSERT_EQ(may_resolve("localhost", "80", AF_INET, SOCK_STREAM, &ss, &len, dl), 0);
    expect_v4(&ss, len, "127.0.0.1", 80);
    ASSERT_EQ(may_resolve("localhost", "80", AF_UNSPEC, SOCK_STREAM, &ss, &len, dl), 0);
    ASSERT(test_is_loopback(&ss));
    /* a name with MAY_NOWAIT cannot be looked up in time */
    ASSERT_EQ(may_resolve("localhost", "80", AF_INET, SOCK_STREAM, &ss, &len, MAY_NOWAIT),
              -ETIMEDOUT);

    /* errors as negative errno values */
#ifdef _WIN32 /* wine 8 passes Linux's EAI_ADDRFAMILY (-9) through: -EIO */
    ASSERT(may_resolve("127.0.0.1", "80", AF_INET6, SOCK_STREAM, &ss, &len, dl) < 0);
#else
    ASSERT_EQ(may_resolve("127.0.0.1", "80", AF_INET6, SOCK_STREAM, &ss, &len, dl), -ENODATA);
#endif
    ASSERT_EQ(may_resolve("127.0.0.1", "no-such-service-xyz", AF_INET, SOCK_STREAM, &ss, &len,
                          dl),
              -ENOENT);
    ASSERT_EQ(may_resolve("127.0.0.1", "80", AF_UNIX, SOCK_STREAM, &ss, &len, dl), -EINVAL);
    ASSERT_EQ(may_resolve("127.0.0.1", "80", AF_INET, SOCK_STREAM, NULL, &len, dl), -EINVAL);
    ASSERT_EQ(may_resolve(NULL, NULL, AF_INET, SOCK_STREAM, &ss, &len, dl), -EINVAL);
    char big[1100];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_EQ(may_resolve(big, "80", AF_INET, SOCK_STREAM, &ss, &len, dl), -ENAMETOOLONG);

    /* parse, then resolve */
    char h[64], p[16];
    ASSERT_EQ(may_parse_host_port("[::1]:80", h, sizeof h, p, sizeof p), 0);
    ASSERT_EQ(may_resolve(h, p, AF_UNSPEC, SOCK_STREAM, &ss, &len, dl), 0);
    ASSERT_EQ(ss.ss_family, AF_INET6);
    ASSERT(test_is_loopback(&ss));
    return NULL;
}

static void *cancel_co(void *arg)
{
    (void)arg;
    struct sockaddr_storage ss;
    return (void *)(intptr_t)may_resolve("localhost", "80", AF_INET, SOCK_STREAM, &ss, NULL,
                                         MAY_FOREVER);
}

static void *thread_resolve(void *arg)
{
    (void)arg;
    struct sockaddr_storage ss;
    socklen_t len;
    ASSERT_EQ(may_resolve("localhost", "7", AF_INET, SOCK_STREAM, &ss, &len,
                          may_deadline_in(TEST_MS(4000))),
              0);
    expect_v4(&ss, len, "127.0.0.1", 7);
    return NULL;
}

int main(void)
{
    test_parse();

    /* from a plain thread (the runtime need not run) */
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, thread_resolve, NULL), 0);
    pthread_join(t, NULL);

    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, resolve_co, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);

    /* cancelled: before, during or after the lookup; never a crash or leak */
    for (int i = 0; i < test_scale(20); i++) {
        void *res;
        ASSERT_EQ(may_spawn(&c, cancel_co, NULL, NULL), 0);
        if (i & 1)
            may_yield();
        may_cancel(c);
        int k = may_join(c, &res, MAY_FOREVER);
        /* the lookup may well have ended before the cancel came */
        ASSERT(k == MAY_CANCELED || k == MAY_DONE);
        ASSERT((intptr_t)res == 0 || (k == MAY_CANCELED && (intptr_t)res == -ECANCELED));
    }
    may__offload_shutdown();
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
