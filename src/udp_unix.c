/*
 * udp_unix.c - UDP and Unix-domain sockets on the reactor of io.c.
 *
 * Why a separate file.  io.c owns the per-fd waiter table and the one loop
 * that matters, "try the system call; on EAGAIN park until the fd's event
 * counter moves" (io_do, exported as may__io_do in internal.h).  Everything
 * here is a system call wrapped in that loop plus address handling, so no
 * new waiting machinery exists and every guarantee of io.c carries over:
 * no lost edges, -EBADF when may_fd_close runs while we wait, -ECANCELED
 * winning over the deadline, plain threads served by the same code.
 *
 * Invariants.
 *   - Every fd made here is non-blocking and close-on-exec from birth
 *     (SOCK_NONBLOCK | SOCK_CLOEXEC); the poller registration is lazy (first
 *     operation), as for TCP, except socketpair, which registers both ends
 *     at once so that an error shows at creation.
 *   - A datagram is one system call: receives use MSG_TRUNC, so the result
 *     is the datagram's real length and a caller detects truncation by
 *     result > n (the kernel has already dropped the tail).
 *   - Sends use MSG_NOSIGNAL: no SIGPIPE from anything in this file.
 *   - Unix paths are checked before any socket exists: strlen(path) must
 *     fit sun_path with its NUL (-ENAMETOOLONG), "@name" is the abstract
 *     namespace (no NUL, the length says where the name ends).
 *
 * Two places where readiness cannot be trusted, and what we do instead:
 *   - Unix stream connect to a listener whose backlog is full fails with
 *     EAGAIN without starting anything: there is no "connect completed"
 *     event to wait for.  We retry the connect after a sleep (1 ms doubling
 *     to 64 ms) until the deadline.
 *   - Unix datagram sendto on an *unconnected* socket to a receiver whose
 *     queue is full fails with EAGAIN and the kernel registers no wake-up
 *     for the sender (it does so only for a connected sender, see
 *     unix_dgram_peer_wake_me).  We wait for writability (which covers the
 *     sender's own buffer, and does get events) in slices of 1 ms doubling
 *     to 64 ms, retrying after each slice, until the deadline.
 *
 * Rejected: a separate "datagram waiter" kind in io.c (the generic loop
 * already fits); SO_REUSEADDR on UDP by default (it silently lets two
 * sockets share a port); unlinking socket files on close (the fd does not
 * know its path, and removing a file the caller did not expect to lose is
 * worse than leaving one: the caller unlinks).
 */
#include "internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sock.h"

#define RETRY_MIN 1000000LL   /* 1 ms */
#define RETRY_MAX 64000000LL  /* 64 ms */

typedef struct dg_args {
    void *buf;
    size_t len;
    const struct sockaddr *to; /* send: destination, NULL when connected */
    socklen_t tolen;
    struct sockaddr *from; /* receive: sender (NULL: not wanted) */
    socklen_t fromcap;     /* in: capacity of from */
    socklen_t fromlen;     /* out: its length */
} dg_args;

static ssize_t fn_sendto(int fd, void *c)
{
    dg_args *a = c;
    ssize_t n = may__sock_sendto(fd, a->buf, a->len, MSG_NOSIGNAL, a->to, a->tolen);
    return n >= 0 ? n : -(ssize_t)may__errno_now();
}

static ssize_t fn_recvfrom(int fd, void *c)
{
    dg_args *a = c;
    socklen_t l = a->fromcap;
    ssize_t n = may__sock_recvfrom(fd, a->buf, a->len, a->from, a->from ? &l : NULL);
    if (n < 0)
        return -(ssize_t)may__errno_now();
    a->fromlen = a->from ? l : 0;
    return n;
}

/* ---- UDP ----------------------------------------------------------------- */

static int udp_bind_one(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = may__sock_open(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -may__errno_now();
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        /* the unspecified address receives IPv4 too (dual stack) */
        int v6only = !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
        may__sock_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    if (bind(fd, (const struct sockaddr *)ss, len) < 0) {
        int r = -may__errno_now();
        may__sock_close(fd);
        return r;
    }
    return fd;
}

/* Addresses as for TCP (may__host_port_addrs): "localhost" is loopback,
 * ":port" the wildcard, and the next address is tried only when this one's
 * family is unavailable. */
int may_udp_bind(const char *host_port)
{
    may__addrs a;
    int r = may__host_port_addrs(host_port, AF_UNSPEC, SOCK_DGRAM, true, &a, MAY_FOREVER);
    if (r < 0)
        return r;
    for (int i = 0; i < a.n; i++) {
        r = udp_bind_one(&a.addr[i], a.len[i]);
        if (r != -EAFNOSUPPORT && r != -EADDRNOTAVAIL)
            break;
    }
    return r;
}

int may_udp_socket(int family)
{
    if (family != AF_INET && family != AF_INET6)
        return -EAFNOSUPPORT;
    int fd = may__sock_open(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd >= 0 ? fd : -may__errno_now();
}

/* An IPv4 address as the IPv4-mapped IPv6 address ::ffff:a.b.c.d. */
static void udp_map_v4(struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in s4;
    memcpy(&s4, ss, sizeof s4);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    memset(s6, 0, sizeof *s6);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = s4.sin_port;
    s6->sin6_addr.s6_addr[10] = 0xff;
    s6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s6->sin6_addr.s6_addr[12], &s4.sin_addr, 4);
    *len = sizeof *s6;
}

int may_udp_connect(int fd, const char *host_port)
{
    if (!host_port) /* connect to AF_UNSPEC (Windows: the zero address) */
        return may__sock_unconnect(fd) == 0 ? 0 : -may__errno_now();
    int family = may__sock_family(fd);
    if (family < 0)
        return -may__errno_now();
    if (family != AF_INET && family != AF_INET6)
        return -EAFNOSUPPORT;
    /* An IPv6 socket takes IPv4 peers too, through their mapped addresses,
     * so a dual-stack socket connected to "localhost" reaches a peer bound
     * to "localhost" (127.0.0.1); a v6-only socket refuses the mapped
     * address (ENETUNREACH) and goes on to ::1. */
    may__addrs a;
    int r = may__host_port_addrs(host_port, family == AF_INET ? AF_INET : AF_UNSPEC, SOCK_DGRAM,
                                 false, &a, MAY_FOREVER);
    if (r < 0)
        return r;
    for (int i = 0; i < a.n; i++) {
        if (family == AF_INET6 && a.addr[i].ss_family == AF_INET)
            udp_map_v4(&a.addr[i], &a.len[i]);
        while ((r = may__sock_connect(fd, (struct sockaddr *)&a.addr[i], a.len[i])) < 0 &&
               may__errno_now() == EINTR)
            ;
        if (r == 0)
            return 0;
        r = -may__errno_now();
    }
    return r;
}

ssize_t may_udp_sendto(int fd, const void *buf, size_t n, const struct sockaddr *to,
                       socklen_t tolen, int64_t deadline)
{
    dg_args a = { .buf = (void *)buf, .len = n, .to = to, .tolen = to ? tolen : 0 };
    return may__io_do(fd, MAY__IO_W, deadline, fn_sendto, &a);
}

ssize_t may_udp_recvfrom(int fd, void *buf, size_t n, struct sockaddr_storage *from,
                         socklen_t *fromlen, int64_t deadline)
{
    dg_args a = { .buf = buf, .len = n, .from = (struct sockaddr *)from,
                  .fromcap = from ? (socklen_t)sizeof *from : 0 };
    ssize_t r = may__io_do(fd, MAY__IO_R, deadline, fn_recvfrom, &a);
    if (r >= 0 && fromlen)
        *fromlen = a.fromlen;
    return r;
}

ssize_t may_udp_send(int fd, const void *buf, size_t n, int64_t deadline)
{
    return may_udp_sendto(fd, buf, n, NULL, 0, deadline);
}

ssize_t may_udp_recv(int fd, void *buf, size_t n, int64_t deadline)
{
    return may_udp_recvfrom(fd, buf, n, NULL, NULL, deadline);
}

int may_udp_set_broadcast(int fd, bool on)
{
    int v = on;
    return may__sock_setopt(fd, SOL_SOCKET, SO_BROADCAST, &v, sizeof v) == 0 ? 0 : -may__errno_now();
}

/* An interface name or (digits) index: the index, or 0. */
static unsigned iface_index(const char *iface)
{
    char *end;
    unsigned long v = strtoul(iface, &end, 10);
    if (*end == '\0' && end != iface)
        return v <= 0xffffffffUL ? (unsigned)v : 0;
    return may__sock_if_index(iface); /* if_nametoindex; Windows: none */
}

static int mcast(int fd, const char *group, const char *iface, int join)
{
    if (!group)
        return -EINVAL;
    int have_if = iface && *iface;
    struct in_addr g4;
    struct in6_addr g6;
    if (inet_pton(AF_INET, group, &g4) == 1) {
        if (!IN_MULTICAST(ntohl(g4.s_addr)))
            return -EINVAL;
#ifdef _WIN32
        /* no ip_mreqn: an index goes in imr_interface as 0.0.0.index */
        struct ip_mreq m = { .imr_multiaddr = g4 };
        if (have_if && inet_pton(AF_INET, iface, &m.imr_interface) != 1) {
            unsigned idx = iface_index(iface);
            if (!idx)
                return -ENODEV;
            m.imr_interface.s_addr = htonl(idx);
        }
#else
        struct ip_mreqn m = { .imr_multiaddr = g4 };
        if (have_if && inet_pton(AF_INET, iface, &m.imr_address) != 1) {
            unsigned idx = iface_index(iface);
            if (!idx)
                return -ENODEV;
            m.imr_ifindex = (int)idx;
        }
#endif
        return may__sock_setopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m,
                          sizeof m) == 0 ? 0 : -may__errno_now();
    }
    if (inet_pton(AF_INET6, group, &g6) == 1) {
        if (!IN6_IS_ADDR_MULTICAST(&g6))
            return -EINVAL;
        struct ipv6_mreq m = { .ipv6mr_multiaddr = g6 };
        if (have_if && !(m.ipv6mr_interface = iface_index(iface)))
            return -ENODEV;
        return may__sock_setopt(fd, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP,
                          &m, sizeof m) == 0 ? 0 : -may__errno_now();
    }
    return -EINVAL;
}

int may_udp_join_multicast(int fd, const char *group, const char *iface)
{
    return mcast(fd, group, iface, 1);
}

int may_udp_leave_multicast(int fd, const char *group, const char *iface)
{
    return mcast(fd, group, iface, 0);
}

/* ---- Unix-domain --------------------------------------------------------- */

/* path ("/file" or "@abstract") into *sa: 0 with *len set, -EINVAL, or
 * -ENAMETOOLONG. */
static int unix_addr(const char *path, struct sockaddr_un *sa, socklen_t *len)
{
    if (!path || !*path || (path[0] == '@' && !path[1]))
        return -EINVAL;
    size_t n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (path[0] == '@') {
        /* abstract: a NUL, then the name; the length delimits it */
        if (n - 1 > sizeof sa->sun_path - 1)
            return -ENAMETOOLONG;
        memcpy(sa->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        if (n >= sizeof sa->sun_path)
            return -ENAMETOOLONG;
        memcpy(sa->sun_path, path, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

static int unix_bound(int type, const char *path, int backlog)
{
    struct sockaddr_un sa;
    socklen_t len;
    int r = unix_addr(path, &sa, &len);
    if (r < 0)
        return r;
    int fd = may__sock_open(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -may__errno_now();
    if (bind(fd, (struct sockaddr *)&sa, len) < 0 ||
        (type == SOCK_STREAM && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)) {
        r = -may__errno_now();
        may__sock_close(fd);
        return r;
    }
    return fd;
}

int may_unix_listen(const char *path, int backlog)
{
    return unix_bound(SOCK_STREAM, path, backlog);
}

int may_unix_accept(int lfd, int64_t deadline)
{
    /* accept4 knows no families: io.c's loop, EMFILE backoff included */
    return may_tcp_accept(lfd, NULL, deadline);
}

/* Sleep for *backoff (doubling it, up to RETRY_MAX) but not past deadline:
 * 0, -ETIMEDOUT (deadline reached) or -ECANCELED. */
static int retry_sleep(int64_t *backoff, int64_t deadline)
{
    int64_t now = may_now();
    if (deadline == MAY_NOWAIT || (deadline > 0 && now >= deadline))
        return -ETIMEDOUT;
    int64_t until = now + *backoff;
    if (deadline > 0 && until > deadline)
        until = deadline;
    if (may_sleep_until(until) == -ECANCELED)
        return -ECANCELED;
    *backoff = *backoff * 2 > RETRY_MAX ? RETRY_MAX : *backoff * 2;
    return 0;
}

int may_unix_connect(const char *path, int64_t deadline)
{
    struct sockaddr_un sa;
    socklen_t len;
    int r = unix_addr(path, &sa, &len);
    if (r < 0)
        return r;
    int fd = may__sock_open(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -may__errno_now();
    int64_t backoff = RETRY_MIN;
    for (;;) {
        if (may__sock_connect(fd, (struct sockaddr *)&sa, len) == 0)
            return fd;
        int err = may__errno_now();
        if (err == EINTR)
            continue;
        if (err == EAGAIN) { /* backlog full: nothing started, try again */
            if ((r = retry_sleep(&backoff, deadline)) < 0)
                break;
            continue;
        }
        if (err != EINPROGRESS) {
            r = -err;
            break;
        }
        if ((r = may_fd_wait(fd, MAY_WRITE, deadline)) < 0)
            break;
        if ((err = may__sock_error(fd)) < 0)
            err = may__errno_now();
        if (!err)
            return fd;
        r = -err;
        break;
    }
    may_fd_close(fd);
    return r;
}

#ifdef _WIN32
/* Windows' AF_UNIX has stream sockets only: no datagrams, no socketpair. */
int may_unix_dgram_bind(const char *path)
{
    (void)path;
    return -ENOTSUP;
}

int may_unix_dgram_socket(void)
{
    return -ENOTSUP;
}

ssize_t may_unix_sendto(int fd, const void *buf, size_t n, const char *path, int64_t deadline)
{
    (void)fd, (void)buf, (void)n, (void)path, (void)deadline;
    return -ENOTSUP;
}

ssize_t may_unix_recvfrom(int fd, void *buf, size_t n, char *from_path, size_t from_len,
                          int64_t deadline)
{
    (void)fd, (void)buf, (void)n, (void)from_path, (void)from_len, (void)deadline;
    return -ENOTSUP;
}

int may_unix_socketpair(int type, int fds[2])
{
    (void)type, (void)fds;
    return -ENOTSUP;
}
#else
/* The path of an address the kernel returned, into out (cut to outlen). */
static void unix_path(const struct sockaddr_un *sa, socklen_t len, char *out, size_t outlen)
{
    if (!out || !outlen)
        return;
    size_t off = offsetof(struct sockaddr_un, sun_path), k = 0;
    char tmp[MAY_UNIX_ADDR_MAX];
    if (len > off) {
        size_t max = (size_t)len - off;
        if (max > sizeof sa->sun_path)
            max = sizeof sa->sun_path;
        if (sa->sun_path[0] == '\0') {
            tmp[k++] = '@';
            for (size_t i = 1; i < max && sa->sun_path[i]; i++)
                tmp[k++] = sa->sun_path[i];
        } else {
            for (size_t i = 0; i < max && sa->sun_path[i]; i++)
                tmp[k++] = sa->sun_path[i];
        }
    }
    if (k >= outlen)
        k = outlen - 1;
    memcpy(out, tmp, k);
    out[k] = '\0';
}

int may_unix_dgram_bind(const char *path)
{
    return unix_bound(SOCK_DGRAM, path, 0);
}

int may_unix_dgram_socket(void)
{
    int fd = may__sock_open(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd >= 0 ? fd : -may__errno_now();
}

ssize_t may_unix_sendto(int fd, const void *buf, size_t n, const char *path, int64_t deadline)
{
    struct sockaddr_un sa;
    socklen_t len;
    int r = unix_addr(path, &sa, &len);
    if (r < 0)
        return r;
    dg_args a = { .buf = (void *)buf, .len = n, .to = (struct sockaddr *)&sa, .tolen = len };
    int64_t backoff = RETRY_MIN;
    for (;;) {
        /* Wait in slices: a full receiver queue sends us no wake-up. */
        int64_t until = deadline;
        if (deadline != MAY_NOWAIT) {
            int64_t t = may_now() + backoff;
            if (deadline == MAY_FOREVER || t < deadline)
                until = t;
        }
        ssize_t s = may__io_do(fd, MAY__IO_W, until, fn_sendto, &a);
        if (s != -ETIMEDOUT || until == deadline)
            return s;
        backoff = backoff * 2 > RETRY_MAX ? RETRY_MAX : backoff * 2;
    }
}

ssize_t may_unix_recvfrom(int fd, void *buf, size_t n, char *from_path, size_t from_len,
                          int64_t deadline)
{
    struct sockaddr_un sa;
    dg_args a = { .buf = buf, .len = n, .from = from_path ? (struct sockaddr *)&sa : NULL,
                  .fromcap = from_path ? (socklen_t)sizeof sa : 0 };
    ssize_t r = may__io_do(fd, MAY__IO_R, deadline, fn_recvfrom, &a);
    if (r >= 0 && from_path)
        unix_path(&sa, a.fromlen, from_path, from_len);
    return r;
}

int may_unix_socketpair(int type, int fds[2])
{
    if (!fds)
        return -EINVAL;
    int sv[2];
    if (may__sock_socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -may__errno_now();
    int r = may__io_register(sv[0]);
    if (r == 0)
        r = may__io_register(sv[1]);
    if (r < 0) {
        may_fd_close(sv[0]);
        may_fd_close(sv[1]);
        return r;
    }
    fds[0] = sv[0];
    fds[1] = sv[1];
    return 0;
}
#endif
