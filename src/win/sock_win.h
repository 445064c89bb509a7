/*
 * sock_win.h - the Windows half of src/sock.h: Winsock calls made to
 * behave as the POSIX calls io.c and udp_unix.c were written for.
 *
 * Fds are handle values.  The public API speaks int fds; a Winsock SOCKET
 * is a kernel handle (UINT_PTR), and so are the pipes of may_process and
 * the files of may_file_open: every fd on Windows is a handle's value as
 * an int (below MAY__WIN_FD_LIMIT, 2^22, the size of io.c's fd table:
 * handle values are indexes into the process's handle table, far below
 * that in practice; one that is not is closed and reported as -EMFILE), one
 * name space in which a file never takes a socket's number.  0, 1 and 2
 * are the standard handles (no handle of ours has those values).  A fd
 * passed in is cast back to SOCKET; the calls here treat every int as a
 * socket first, and only may__sock_close falls back to CloseHandle
 * (may__win_fd_close, src/win/process_win.c) for a value Winsock does not
 * know (WSAENOTSOCK), so that may_fd_close closes a pipe or file as on
 * Linux.
 *
 * Errors.  Winsock reports through WSAGetLastError(), not errno; io.c's
 * may__errno_now() reads it on Windows and maps it through the one table
 * (may__win_errno, src/win/poll_iocp.c) to the errno value the Linux call
 * gives for the same condition.  The wrappers below that invent an error
 * (a connect in progress, a non-socket) set it with WSASetLastError so
 * that the same read finds it.  The read must come right after the failing
 * call: any Win32 call in between may clear the last error (TlsGetValue
 * does, and MinGW's __thread is emulated through it), which is why every
 * read here is in the line after the call.
 *
 * Differences kept small and documented in docs/WINDOWS_IO.md:
 *  - SOCK_NONBLOCK and SOCK_CLOEXEC are flags of this layer: FIONBIO after
 *    creation, WSA_FLAG_NO_HANDLE_INHERIT; accepted sockets get both.
 *  - A non-blocking connect says WSAEWOULDBLOCK; it is made EINPROGRESS.
 *  - No MSG_NOSIGNAL (Windows has no SIGPIPE) and no MSG_TRUNC: a datagram
 *    longer than the buffer fails with WSAEMSGSIZE after filling it, and
 *    its real length is not known; may__sock_recvfrom then returns n + 1,
 *    so "result > n means truncated" holds, but not "result is the length".
 *  - readv/writev are WSARecv/WSASend over at most MAY__SOCK_IOV_MAX
 *    buffers per call (a short transfer, which readv/writev may make).
 *  - No SO_REUSEADDR on listeners: on Windows it lets another socket bind
 *    the same port (Linux's meaning, rebinding over TIME_WAIT, is Windows'
 *    default); SO_REUSEPORT does not exist: -ENOTSUP.
 *  - Keep-alive times through SIO_KEEPALIVE_VALS.
 *  - UDP sockets get SIO_UDP_CONNRESET off: an ICMP port unreachable does
 *    not fail the next receive with WSAECONNRESET (Linux is silent).
 *  - Readiness now: WSAPoll with a zero timeout.
 */
#ifndef MAY_SOCK_WIN_H
#define MAY_SOCK_WIN_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mstcpip.h>
#include <mswsock.h>
#include <afunix.h>
#include <windows.h>

#include <errno.h>
#include <io.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* src/win/poll_iocp.c */
int may__win_errno(DWORD err); /* a Windows/Winsock error -> -errno */
int may__wsa_start(void);      /* WSAStartup once per process: 0 or -errno */

/* src/win/process_win.c: fds as handle values (see above) */
#define MAY__WIN_FD_LIMIT (1 << 22) /* io.c's fd table: NCHUNKS * CHUNK_SIZE */
HANDLE may__win_fd_handle(int fd);  /* the handle fd names (0-2: std), NULL: none */
int may__win_handle_fd(HANDLE h);   /* h as an fd, or -EMFILE */
DWORD may__win_fd_close(int fd);    /* CloseHandle (0-2: std): 0 or a Win32 error */

/* struct iovec and SHUT_*: include/may.h defines them on Windows. */

#define MSG_NOSIGNAL 0
#define SOCK_NONBLOCK 0x40000000 /* this layer's flags, never passed on */
#define SOCK_CLOEXEC 0x20000000
#define MAY__SOCK_IOV_MAX 64     /* WSABUFs per readv/writev (1 KiB of stack) */

static inline int may__sock_startup(void)
{
    return may__wsa_start();
}

static inline int may__sock_len(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

static inline int may__sock_open(int family, int type, int proto)
{
    if (may__wsa_start() < 0) {
        WSASetLastError(WSANOTINITIALISED);
        return -1;
    }
    DWORD fl = WSA_FLAG_OVERLAPPED | ((type & SOCK_CLOEXEC) ? WSA_FLAG_NO_HANDLE_INHERIT : 0);
    SOCKET s = WSASocketW(family, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), proto, NULL, 0, fl);
    if (s == INVALID_SOCKET)
        return -1;
    u_long one = 1;
    int e = 0;
    if ((type & SOCK_NONBLOCK) && ioctlsocket(s, FIONBIO, &one) != 0)
        e = WSAGetLastError();
    else if ((uintptr_t)s >= MAY__WIN_FD_LIMIT)
        e = WSAEMFILE; /* not representable as an int fd */
    if (e) {
        closesocket(s);
        WSASetLastError(e);
        return -1;
    }
    if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_DGRAM &&
        (family == AF_INET || family == AF_INET6)) {
        /* an ICMP port unreachable must not fail the next receive of an
         * unconnected socket (Linux reports nothing there) */
        BOOL off = FALSE;
        DWORD n;
        WSAIoctl(s, SIO_UDP_CONNRESET, &off, sizeof off, NULL, 0, &n, NULL, NULL);
    }
    return (int)s;
}

static inline int may__sock_close(int fd)
{
    if (closesocket((SOCKET)fd) == 0)
        return 0;
    int e = WSAGetLastError();
    /* WSANOTINITIALISED: Winsock never started, so no socket of ours */
    if (e != WSAENOTSOCK && e != WSANOTINITIALISED)
        return -1;
    DWORD w = may__win_fd_close(fd); /* a pipe, file or standard handle */
    if (w == 0)
        return 0;
    WSASetLastError((int)w);
    return -1;
}

/* 0 or -errno; -ENOTSUP for what is not a socket (no readiness on Windows
 * for pipes, files, consoles), -EBADF for a value that names no handle.
 * A handle that is not a socket (a pipe, a file) gets WSAEOPNOTSUPP under
 * wine (its FIONBIO is an ioctl on that handle), WSAENOTSOCK on Windows:
 * both mean "not a socket" (FIONBIO on a socket never says it). */
static inline int may__sock_nonblock(int fd)
{
    if (fd > 2 && (fd & 3))
        return -EBADF; /* no handle's value: the kernel would drop the bits */
    u_long one = 1;
    if (ioctlsocket((SOCKET)fd, FIONBIO, &one) == 0)
        return 0;
    int e = WSAGetLastError();
    if (e != WSAENOTSOCK && e != WSAEOPNOTSUPP)
        return may__win_errno((DWORD)e);
    return may__win_fd_handle(fd) ? -ENOTSUP : -EBADF;
}

static inline int may__sock_accept(int lfd, struct sockaddr *sa, socklen_t *len)
{
    SOCKET s = accept((SOCKET)lfd, sa, len);
    if (s == INVALID_SOCKET)
        return -1;
    u_long one = 1;
    int e = 0;
    if (ioctlsocket(s, FIONBIO, &one) != 0)
        e = WSAGetLastError();
    else if ((uintptr_t)s >= MAY__WIN_FD_LIMIT)
        e = WSAEMFILE;
    if (e) {
        closesocket(s);
        WSASetLastError(e);
        return -1;
    }
    SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0); /* close-on-exec */
    return (int)s;
}

static inline int may__sock_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (connect((SOCKET)fd, sa, len) == 0)
        return 0;
    if (WSAGetLastError() == WSAEWOULDBLOCK)
        WSASetLastError(WSAEINPROGRESS);
    return -1;
}

static inline int may__sock_setopt(int fd, int level, int name, const void *v, socklen_t len)
{
    return setsockopt((SOCKET)fd, level, name, (const char *)v, len);
}

static inline int may__sock_getopt(int fd, int level, int name, void *v, socklen_t *len)
{
    return getsockopt((SOCKET)fd, level, name, (char *)v, len);
}

static inline ssize_t may__sock_recv(int fd, void *buf, size_t n, int flags)
{
    return recv((SOCKET)fd, (char *)buf, may__sock_len(n), flags);
}

static inline ssize_t may__sock_send(int fd, const void *buf, size_t n, int flags)
{
    return send((SOCKET)fd, (const char *)buf, may__sock_len(n), flags);
}

static inline ssize_t may__sock_sendto(int fd, const void *buf, size_t n, int flags,
                                       const struct sockaddr *to, socklen_t tolen)
{
    return sendto((SOCKET)fd, (const char *)buf, may__sock_len(n), flags, to, tolen);
}

/* may_read / may_write: sockets only here (io_enter refuses the rest with
 * -ENOTSUP before this runs; io.c then hands them to may__win_fd_rw). */
static inline ssize_t may__sock_read(int fd, void *buf, size_t n)
{
    return may__sock_recv(fd, buf, n, 0);
}

static inline ssize_t may__sock_write(int fd, const void *buf, size_t n)
{
    return may__sock_send(fd, buf, n, 0);
}

static inline ssize_t may__sock_recvfrom(int fd, void *buf, size_t n, struct sockaddr *from,
                                         socklen_t *fromlen)
{
    int r = recvfrom((SOCKET)fd, (char *)buf, may__sock_len(n), 0, from, fromlen);
    if (r >= 0)
        return r;
    if (WSAGetLastError() == WSAEMSGSIZE) /* filled and cut: longer than n */
        return (ssize_t)may__sock_len(n) + 1;
    return -1;
}

/* iov as at most MAY__SOCK_IOV_MAX WSABUFs (each at most INT_MAX bytes,
 * the last one cut there): how many. */
static inline DWORD may__sock_wsabufs(WSABUF *b, const struct iovec *iov, int iovcnt)
{
    DWORD k = 0;
    for (int i = 0; i < iovcnt && k < MAY__SOCK_IOV_MAX; i++) {
        b[k].buf = (char *)iov[i].iov_base;
        b[k].len = (ULONG)may__sock_len(iov[i].iov_len);
        k++;
        if (iov[i].iov_len > INT_MAX)
            break;
    }
    return k;
}

static inline ssize_t may__sock_readv(int fd, const struct iovec *iov, int iovcnt)
{
    WSABUF b[MAY__SOCK_IOV_MAX];
    DWORD got = 0, flags = 0;
    if (iovcnt < 0) {
        WSASetLastError(WSAEINVAL);
        return -1;
    }
    DWORD k = may__sock_wsabufs(b, iov, iovcnt);
    if (WSARecv((SOCKET)fd, b, k, &got, &flags, NULL, NULL) != 0)
        return -1;
    return got;
}

static inline ssize_t may__sock_writev(int fd, const struct iovec *iov, int iovcnt)
{
    WSABUF b[MAY__SOCK_IOV_MAX];
    DWORD sent = 0;
    if (iovcnt < 0) {
        WSASetLastError(WSAEINVAL);
        return -1;
    }
    DWORD k = may__sock_wsabufs(b, iov, iovcnt);
    if (WSASend((SOCKET)fd, b, k, &sent, 0, NULL, NULL) != 0)
        return -1;
    return sent;
}

/* As sock.h's Linux version; -ENOTSUP for what is not a socket. */
static inline int may__sock_poll(int fd, int events)
{
    WSAPOLLFD p = { .fd = (SOCKET)fd,
                    .events = (SHORT)(((events & MAY_READ) ? POLLRDNORM : 0) |
                                      ((events & MAY_WRITE) ? POLLWRNORM : 0)) };
    int n = WSAPoll(&p, 1, 0);
    if (n < 0) {
        int e = WSAGetLastError();
        return e == WSAENOTSOCK ? -ENOTSUP : may__win_errno((DWORD)e);
    }
    if (n == 0)
        return 0;
    if (p.revents & POLLNVAL)
        return -EBADF;
    if (p.revents & (POLLERR | POLLHUP))
        return events;
    return ((p.revents & (POLLRDNORM | POLLRDBAND)) ? MAY_READ : 0) |
           ((p.revents & POLLWRNORM) ? MAY_WRITE : 0);
}

/* SO_ERROR holds a Winsock code: returned as its errno value. */
static inline int may__sock_error(int fd)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt((SOCKET)fd, SOL_SOCKET, SO_ERROR, (char *)&err, &el) != 0)
        return -1;
    return -may__win_errno((DWORD)err);
}

static inline int may__sock_reuse(int fd, int reuseport)
{
    (void)fd;
    if (reuseport) {
        WSASetLastError(ERROR_NOT_SUPPORTED); /* -ENOTSUP */
        return -1;
    }
    return 0;
}

static inline int may__sock_keepidle(int fd, int idle_s)
{
    ULONG ms = idle_s > (int)(ULONG_MAX / 1000) ? ULONG_MAX : (ULONG)idle_s * 1000;
    struct tcp_keepalive ka = { .onoff = 1, .keepalivetime = ms, .keepaliveinterval = ms };
    DWORD n;
    return WSAIoctl((SOCKET)fd, SIO_KEEPALIVE_VALS, &ka, sizeof ka, NULL, 0, &n, NULL, NULL) == 0
               ? 0
               : -1;
}

/* The socket's address family, or -1: from its protocol info, because
 * Winsock's getsockname fails on a socket not yet bound (Linux's gives the
 * family and a zero address). */
static inline int may__sock_family(int fd)
{
    WSAPROTOCOL_INFOW pi;
    socklen_t len = sizeof pi;
    if (getsockopt((SOCKET)fd, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi, &len) != 0)
        return -1;
    return pi.iAddressFamily;
}

/* Winsock dissolves the association on a connect to the zero address of
 * the socket's family (AF_UNSPEC is refused). */
static inline int may__sock_unconnect(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname((SOCKET)fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    int family = ss.ss_family;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = (ADDRESS_FAMILY)family;
    len = family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                             : (socklen_t)sizeof(struct sockaddr_in);
    return connect((SOCKET)fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -1;
}

/* Interface names are not looked up (that needs iphlpapi); an index in
 * digits or an address works as on Linux. */
static inline unsigned may__sock_if_index(const char *name)
{
    (void)name;
    return 0;
}

#endif
