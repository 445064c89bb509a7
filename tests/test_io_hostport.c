/* "host:port" addresses: one grammar (may_parse_host_port) for every call
 * that takes one, and what the hosts mean.
 *   - "localhost" is loopback for listeners, UDP binds and connects, TCP and
 *     UDP alike: getsockname of a listener or a bind on "localhost:0" is a
 *     loopback address, never the wildcard (a listener on "localhost" used
 *     to bind 0.0.0.0 and be reachable from the network);
 *   - ":0" is still the wildcard for listen and bind, and loopback for
 *     connect;
 *   - connecting to "localhost:port" reaches a listener on 127.0.0.1, and
 *     one on [::1] too (the second address is tried after a refusal);
 *   - good and bad inputs give the same answer from the parser and from
 *     may_tcp_listen, may_tcp_connect, may_udp_bind and may_udp_connect
 *     ("::1:80" was accepted by may_tcp_listen and refused by may_udp_bind),
 *     and an overlong host is -ENAMETOOLONG everywhere. */
#include "test.h"
#ifndef _WIN32 /* may.h has Winsock there */
#include <arpa/inet.h>
#endif
#include <errno.h>
#ifndef _WIN32 /* may.h has Winsock there */
#include <netinet/in.h>
#include <sys/socket.h>
#endif
#include <unistd.h>

static struct sockaddr_storage local_addr(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ss;
}

static int is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return 0;
}

static void expect_loopback(int fd, const char *what)
{
    ASSERT_GE(fd, 0);
    struct sockaddr_storage ss = local_addr(fd);
    if (!test_is_loopback(&ss)) {
        char s[80] = "?";
        may_sockaddr_str(&ss, s, sizeof s);
        fprintf(stderr, "%s: bound to %s, not loopback\n", what, s);
        abort();
    }
}

/* ---- the grammar ----------------------------------------------------------- */

/* s is malformed: the parser and every call taking an address say err. */
static void bad_everywhere(const char *s, int err)
{
    char h[64], p[16];
    int r = may_parse_host_port(s, h, sizeof h, p, sizeof p);
    int l = may_tcp_listen(s, 1, 0);
    int c = may_tcp_connect(s, may_deadline_in(TEST_MS(2000)));
    int b = may_udp_bind(s);
    int u = may_udp_socket(AF_INET);
    ASSERT_GE(u, 0);
    int uc = s ? may_udp_connect(u, s) : err; /* NULL dissolves a UDP association */
    ASSERT_EQ(may_fd_close(u), 0);
    if (r != err || l != err || c != err || b != err || uc != err) {
        fprintf(stderr, "\"%s\": parse %d, listen %d, connect %d, udp bind %d, udp connect %d; "
                "expected %d from all\n", s ? s : "(null)", r, l, c, b, uc, err);
        abort();
    }
}

static void test_grammar(void)
{
    /* what the parser accepts is test_resolve's; here, that every call
     * refuses the same malformed strings with the same error */
    bad_everywhere(NULL, -EINVAL);
    bad_everywhere("", -EINVAL);
    bad_everywhere("localhost", -EINVAL);    /* missing port */
    bad_everywhere("localhost:", -EINVAL);   /* empty port */
    bad_everywhere(":", -EINVAL);            /* empty port, no host */
    bad_everywhere("::1:80", -EINVAL);       /* a bare IPv6 address: brackets needed */
    bad_everywhere("[::1]", -EINVAL);        /* missing port */
    bad_everywhere("[::1:80", -EINVAL);      /* no ] */
    bad_everywhere("[]:80", -EINVAL);        /* empty brackets */
    bad_everywhere("[::1]:80:81", -EINVAL);
    bad_everywhere("a]:80", -EINVAL);

    /* Hosts up to 1024 bytes (may_resolve's limit) reach the resolver; one
     * byte more is -ENAMETOOLONG from every call, as documented. */
    static char big[1100];
    memset(big, 'a', 1025);
    strcpy(big + 1025, ":80");
    bad_everywhere(big, -ENAMETOOLONG);
    char h[2048], p[16];
    ASSERT_EQ(may_parse_host_port(big, h, sizeof h, p, sizeof p), 0); /* it fits here */
    ASSERT_EQ(strlen(h), 1025);
    /* a port over 64 bytes, likewise */
    char bigport[80] = "localhost:";
    memset(bigport + strlen(bigport), '9', 65);
    bad_everywhere(bigport, -ENAMETOOLONG);
}

/* ---- what "localhost" and ":port" mean ------------------------------------ */

static void test_tcp(void)
{
    /* the listener on "localhost" is on loopback, whatever the case */
    int lfd = may_tcp_listen("localhost:0", 16, 0);
    expect_loopback(lfd, "may_tcp_listen(\"localhost:0\")");
    int l2 = may_tcp_listen("LocalHost.:0", 16, 0);
    expect_loopback(l2, "may_tcp_listen(\"LocalHost.:0\")");
    ASSERT_EQ(may_fd_close(l2), 0);

    /* connect to it by name, and with ":port" (this host) */
    char hp[64];
    int port = may_tcp_local_port(lfd);
    snprintf(hp, sizeof hp, "localhost:%d", port);
    int c = may_tcp_connect(hp, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(c, 0);
    int s = may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(s, 0);
    ASSERT_EQ(may_tcp_write_all(c, "hi", 2, MAY_FOREVER), 2);
    char buf[4];
    ASSERT_EQ(may_tcp_read_full(s, buf, 2, may_deadline_in(TEST_MS(3000))), 2);
    ASSERT(memcmp(buf, "hi", 2) == 0);
    ASSERT_EQ(may_fd_close(c), 0);
    ASSERT_EQ(may_fd_close(s), 0);
    snprintf(hp, sizeof hp, ":%d", port);
    c = may_tcp_connect(hp, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(c, 0);
    s = may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(s, 0);
    ASSERT_EQ(may_fd_close(c), 0);
    ASSERT_EQ(may_fd_close(s), 0);
    ASSERT_EQ(may_fd_close(lfd), 0);

    /* ":0" is still every interface */
    lfd = may_tcp_listen(":0", 16, 0);
    ASSERT_GE(lfd, 0);
    struct sockaddr_storage ss = local_addr(lfd);
    ASSERT(is_wildcard(&ss));
    ASSERT_EQ(may_fd_close(lfd), 0);

    /* a listener on [::1] only: "localhost" finds it after 127.0.0.1 refuses */
    lfd = may_tcp_listen("[::1]:0", 16, 0);
    if (lfd == -EADDRNOTAVAIL || lfd == -EAFNOSUPPORT) {
        printf("no IPv6 loopback: the [::1] fallback is not checked\n");
        return;
    }
    ASSERT_GE(lfd, 0);
    snprintf(hp, sizeof hp, "localhost:%d", may_tcp_local_port(lfd));
    c = may_tcp_connect(hp, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(c, 0);
    s = may_tcp_accept(lfd, &ss, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(s, 0);
    ASSERT_EQ(ss.ss_family, AF_INET6);
    ASSERT_EQ(may_fd_close(c), 0);
    ASSERT_EQ(may_fd_close(s), 0);
    ASSERT_EQ(may_fd_close(lfd), 0);
}

/* b, connected to "localhost:<a's port>" (or ":port"), reaches a. */
static void udp_reaches(int a, int b, const char *host)
{
    char hp[64], buf[8];
    snprintf(hp, sizeof hp, "%s:%d", host, may_tcp_local_port(a));
    ASSERT_EQ(may_udp_connect(b, hp), 0);
    ASSERT_EQ(may_udp_send(b, "ping", 4, MAY_FOREVER), 4);
    ASSERT_EQ(may_udp_recv(a, buf, sizeof buf, may_deadline_in(TEST_MS(2000))), 4);
    ASSERT(memcmp(buf, "ping", 4) == 0);
}

static void test_udp(void)
{
    int a = may_udp_bind("localhost:0");
    expect_loopback(a, "may_udp_bind(\"localhost:0\")");
    int b4 = may_udp_socket(AF_INET);
    ASSERT_GE(b4, 0);
    udp_reaches(a, b4, "localhost");
    udp_reaches(a, b4, "");
    /* a dual-stack socket (":0" is [::] where there is IPv6) reaches the
     * IPv4 loopback through its mapped address */
    int b6 = may_udp_bind(":0");
    ASSERT_GE(b6, 0);
    struct sockaddr_storage ss = local_addr(b6);
    ASSERT(is_wildcard(&ss));
    udp_reaches(a, b6, "localhost");
    udp_reaches(a, b6, "");
    ASSERT_EQ(may_fd_close(b4), 0);
    ASSERT_EQ(may_fd_close(b6), 0);
    ASSERT_EQ(may_fd_close(a), 0);
}

int main(void)
{
    test_run_both(test_grammar);
    test_run_both(test_tcp);
    test_run_both(test_udp);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
