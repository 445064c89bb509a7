/*
 * sock.h - the socket calls of io.c and udp_unix.c, one name for both
 * systems.
 *
 * On Linux every name here is the POSIX call itself (a macro, or a static
 * inline of the same few lines io.c had), so the Linux build runs exactly
 * the code it ran before.  On Windows the same names are Winsock calls
 * made to behave as the POSIX ones (src/win/sock_win.h): a socket is
 * non-blocking and not inherited when asked with SOCK_NONBLOCK and
 * SOCK_CLOEXEC, a non-blocking connect says EINPROGRESS, a datagram longer
 * than the buffer says its length is more than the buffer, and an error is
 * read with may__errno_now() (io.c) on both systems: errno on Linux,
 * WSAGetLastError() mapped through poll_iocp.c's table on Windows.
 *
 * Conventions, as the POSIX calls: -1 (or a negative SOCKET cast to int)
 * and the error in may__errno_now(), except where a comment says "-errno"
 * (the result is the negative errno value itself).
 */
#ifndef MAY_SOCK_H
#define MAY_SOCK_H

#ifdef _WIN32
#include "win/sock_win.h"
#else
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define may__sock_open socket
#define may__sock_close close
#define may__sock_connect connect
#define may__sock_setopt setsockopt
#define may__sock_getopt getsockopt
#define may__sock_recv recv
#define may__sock_send send
#define may__sock_sendto sendto
#define may__sock_read read
#define may__sock_write write
#define may__sock_readv readv
#define may__sock_socketpair socketpair
#define may__sock_if_index if_nametoindex

/* Winsock needs starting before its first call; nothing to do here. */
static inline int may__sock_startup(void)
{
    return 0;
}

/* Make fd non-blocking (once, at registration).  0 or -errno. */
static inline int may__sock_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    return 0;
}

/* accept, the new socket non-blocking and close-on-exec. */
static inline int may__sock_accept(int lfd, struct sockaddr *sa, socklen_t *len)
{
    return accept4(lfd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/* writev without SIGPIPE. */
static inline ssize_t may__sock_writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

/* recvfrom of one datagram: its real length, also when longer than n. */
static inline ssize_t may__sock_recvfrom(int fd, void *buf, size_t n, struct sockaddr *from,
                                         socklen_t *fromlen)
{
    return recvfrom(fd, buf, n, MSG_TRUNC, from, fromlen);
}

/* Readiness of fd now, without waiting: MAY_READ | MAY_WRITE bits (both
 * asked on a hang-up or error), 0, or -errno (-EBADF: not open). */
static inline int may__sock_poll(int fd, int events)
{
    struct pollfd pfd = { .fd = fd,
                          .events = (short)(((events & MAY_READ) ? POLLIN : 0) |
                                            ((events & MAY_WRITE) ? POLLOUT : 0)) };
    int n;
    while ((n = poll(&pfd, 1, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0;
    if (pfd.revents & POLLNVAL)
        return -EBADF;
    if (pfd.revents & (POLLERR | POLLHUP))
        return events;
    return ((pfd.revents & POLLIN) ? MAY_READ : 0) | ((pfd.revents & POLLOUT) ? MAY_WRITE : 0);
}

/* The pending error of a socket (a non-blocking connect's result): 0, the
 * errno value, or -1 (getsockopt failed; the error in may__errno_now()). */
static inline int may__sock_error(int fd)
{
    int err = 0;
    socklen_t el = sizeof err;
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 ? -1 : err;
}

/* A listener's address reuse: SO_REUSEADDR, and SO_REUSEPORT if asked.
 * 0 or -1. */
static inline int may__sock_reuse(int fd, int reuseport)
{
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        return -1;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        return -1;
    return 0;
}

/* Keep-alive probes after idle_s seconds idle, then every idle_s.  0 or -1. */
static inline int may__sock_keepidle(int fd, int idle_s)
{
    if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle_s, sizeof idle_s) < 0)
        return -1;
    return 0;
}

/* The socket's address family, or -1. */
static inline int may__sock_family(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return ss.ss_family;
}

/* Dissolve a datagram socket's association.  0 or -1. */
static inline int may__sock_unconnect(int fd)
{
    struct sockaddr sa = { .sa_family = AF_UNSPEC };
    return connect(fd, &sa, sizeof sa);
}
#endif

#endif
