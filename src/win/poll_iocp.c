/*
 * poll_iocp.c - the Windows I/O layer (prototype): one I/O completion port.
 *
 * Completions, not readiness.  Linux tells the runtime "this fd is ready,
 * now make the system call" (epoll); Windows does the system call for us
 * and tells us when it is done (an I/O completion port).  Winsock has no
 * scalable readiness interface: select() is limited to 64 sockets per call
 * by default and scans them all, WSAPoll is select() again (and lost
 * connect failures until Windows 10 2004), WSAEventSelect needs one event
 * per socket and WaitForMultipleObjects takes at most 64.  Overlapped
 * operations completing on one port scale to any number of sockets, are
 * what every Windows server (IIS, libuv, .NET, Go's netpoll_windows.go)
 * uses, and fit a coroutine runtime better than they fit callbacks: the
 * operation's state lives on the parked coroutine's stack, which stays put
 * until the coroutine runs again.  So the Windows backend issues the
 * operation (AcceptEx, ConnectEx, WSARecv, WSASend, WSARecvFrom,
 * WSASendTo) and parks; the port's dispatch wakes it with the result.
 * There is no "try the call, park on EAGAIN" step as in io.c; the
 * readiness machinery (rseq/wseq, the drained-socket shortcut) has no
 * Windows counterpart except for may_fd_wait, below.
 *
 * Ownership of an OVERLAPPED.  An operation is a may__iocp_op whose first
 * field is the OVERLAPPED.  Its owner fills it and issues it; from the
 * moment an issuing call here returns 0 until the port's dispatch of its
 * completion, the OVERLAPPED, the op around it and its buffers belong to
 * the kernel: the owner must not free them, reuse them, or unwind the
 * stack frame they are in.  The invariant, which every rule below follows
 * from:
 *
 *     an operation that was issued is completed exactly once, and its
 *     completion is dequeued from the port exactly once, even when it was
 *     cancelled, even when its socket was closed, even when it finished
 *     at once.
 *
 * It is the IOCP analogue of waitq.c's "a waker that took the node off its
 * queue will wake it": there, a waiter whose wait failed must take its node
 * off the queue itself or wait for the wake it is owed; here, an owner that
 * gives up on an operation (deadline, may_cancel, may_fd_close) can only
 * *ask* the kernel to end it early (CancelIoEx) and must then wait for the
 * completion, which still comes, either with ERROR_OPERATION_ABORTED or
 * with the operation's real result if it finished first (a recv that
 * received data must hand that data over: dropping it would lose bytes
 * from the stream).  Only then is the OVERLAPPED the owner's again.  The
 * inflight field checks this: set at issue, cleared by the dispatch, and
 * an issue on an op still in flight aborts the process (the same class of
 * bug as a freed waiter node still queued).  To keep the invariant simple
 * there is one completion path: sockets are *not* put in
 * FILE_SKIP_COMPLETION_PORT_ON_SUCCESS mode, so an operation that
 * succeeds at once is still queued to the port and dispatched like any
 * other (a later optimisation can take the inline result, at the price of
 * a second path; wine's support for that mode was not checked).  Only an
 * issuing call that fails at once (WSA error other than WSA_IO_PENDING)
 * gives the op back at once, with its -errno.
 *
 * Behind the runtime's poller interface (internal.h's "poller" block,
 * today src/poll_epoll.c):
 *   may__poll_init/close   may__iocp_init/close: the port, the extension
 *                          functions, the AFD helper handle
 *   may__poll_wait(dl)     may__iocp_wait(dl, dispatch): the worker that
 *                          holds poller_busy dequeues up to 64 entries per
 *                          GetQueuedCompletionStatusEx; the port is
 *                          thread-safe, so no lock is held around it
 *   may__poll_wake         may__iocp_wake: PostQueuedCompletionStatus of a
 *                          NULL OVERLAPPED, merged by wake_pending as
 *                          poll_epoll.c merges eventfd writes
 *   may__poll_add(fd,tag)  may__iocp_associate: once per socket; the tag is
 *                          not needed, every completion carries its op
 *   may__poll_del, _gen    nothing to undo: closesocket dissociates; a new
 *                          port after may_shutdown needs every socket
 *                          associated again (a handle cannot be moved to
 *                          another port), so the generation stays
 *   may__io_ready(tag, io) replaced by the dispatch callback: it gets the
 *                          op, whose user field is the waiter's node
 * A parked coroutine's operation: io.c's Windows half puts a may__iocp_op
 * and a may__wnode on the coroutine's stack (op.user = &node), arms the
 * node, issues the op and parks with its deadline.  The dispatch claims
 * the node with the op's result (the grant) and wakes the parker, exactly
 * as may__io_ready claims and wakes io_waiter nodes today.  A coroutine
 * whose park ends by deadline or cancellation calls may__iocp_cancel and
 * parks again, ignoring deadline and cancellation, until the dispatch
 * wakes it (the "wait for the wake you are owed" branch of waitq.c); it
 * returns the op's result if that is a success, else its own reason
 * (-ETIMEDOUT, -ECANCELED; -EBADF when may_fd_close's generation bump
 * aborted it).  The wait on a cancelled operation is short: CancelIoEx on
 * a socket operation completes it at once on Windows and on wine.
 * Sockets are referred to as int fds by the public API: a SOCKET is a
 * kernel handle, whose value fits 32 bits by Windows' documented handle
 * rules, so io.c's per-fd table can be indexed by handle/4.
 *
 * Readiness for may_fd_wait: the AFD poll ioctl (IOCTL_AFD_POLL on a
 * helper handle opened on \Device\Afd, associated with the port), as
 * wepoll, libuv's uv_poll_t and Rust's mio do.  Why not the zero-byte
 * WSARecv that libuv uses for TCP reads: that reports only readability
 * (may_fd_wait also takes MAY_WRITE, and there is no zero-byte send that
 * waits for buffer space), it needs MSG_PEEK on datagram sockets (a zero-
 * byte read would consume and truncate the datagram), and it does not
 * report a listening socket's pending connection.  AFD poll reports
 * readable, writable, acceptable, hang-up, reset and connect failure, on
 * any socket, without consuming anything, one-shot per request, and is
 * cancelled by CancelIoEx like the rest.  Its cost is that it is
 * undocumented (ntdll's NtDeviceIoControlFile with a private layout),
 * which is why it is used for may_fd_wait only and every data path uses
 * the documented Winsock calls.  What cannot be supported: may_fd_wait on
 * a handle that is not a socket (pipes, consoles, files, events) returns
 * -ENOTSUP (Windows has no readiness for them: a pipe read is overlapped
 * ReadFile, a console is WaitForSingleObject; a CRT fd from _open is not
 * a handle at all).  may_fd_wait_ticket needs no ticket here: an AFD poll
 * is level-triggered (it completes at once if the socket is ready when
 * issued), so a readiness that came between the caller's EAGAIN and the
 * poll cannot be missed; the ticket is accepted and ignored.
 * A socket with a non-IFS layered provider (LSP) is polled through its
 * base handle (SIO_BASE_HANDLE), as wepoll does.
 *
 * Errors: every WSA* and ERROR_* code goes through may__win_errno, one
 * table, to the negative errno value the Linux call returns for the same
 * condition (mingw-w64's errno.h has the POSIX values; they differ
 * numerically from Linux but the names match, and the public API speaks
 * names).  Datagram sockets get SIO_UDP_CONNRESET off, so an ICMP port
 * unreachable does not fail the next WSARecvFrom with WSAECONNRESET on an
 * unconnected socket (Linux reports nothing there).
 *
 * Deadlines: GetQueuedCompletionStatusEx takes milliseconds; the wait
 * rounds up and, if it comes back early with nothing, waits again, so a
 * 0 return means the deadline has passed.  The system timer tick (15.6 ms
 * unless raised) makes timers coarse; a high-resolution waitable timer
 * bound to the port (NtAssociateWaitCompletionPacket, Windows 8+) is the
 * later fix, as Go does.
 *
 * Lock order: none.  The port is the only shared object and is
 * thread-safe; wake_pending is an Interlocked flag; an op is touched by
 * its owner before issue and after dispatch, and by the dispatcher between
 * the dequeue and the callback (the owner is parked then).
 */
#include "poll_iocp.h"

#include <mswsock.h>
#include <winternl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SIO_BASE_HANDLE
#define SIO_BASE_HANDLE _WSAIOR(IOC_WS2, 34)
#endif
#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif
#ifndef ERROR_HANDLES_CLOSED
#define ERROR_HANDLES_CLOSED 676L
#endif
#ifndef STATUS_CANCELLED
#define STATUS_CANCELLED ((NTSTATUS)0xC0000120L)
#endif
#ifndef STATUS_PENDING
#define STATUS_PENDING ((NTSTATUS)0x00000103L)
#endif

/* The AFD poll ioctl and its event bits (wepoll's afd.h). */
#define IOCP_IOCTL_AFD_POLL 0x00012024
#define IOCP_AFD_RECEIVE 0x0001
#define IOCP_AFD_RECEIVE_EXPEDITED 0x0002
#define IOCP_AFD_SEND 0x0004
#define IOCP_AFD_DISCONNECT 0x0008
#define IOCP_AFD_ABORT 0x0010
#define IOCP_AFD_LOCAL_CLOSE 0x0020
#define IOCP_AFD_ACCEPT 0x0080
#define IOCP_AFD_CONNECT_FAIL 0x0100

static HANDLE iocp_port;                 /* the port; NULL when closed */
static HANDLE iocp_afd;                  /* AFD helper handle (NULL: polls
                                            go on the socket's own handle) */
static volatile LONG iocp_wake_pending;  /* a wake packet is queued */
static LPFN_ACCEPTEX iocp_acceptex;
static LPFN_CONNECTEX iocp_connectex;
static LPFN_GETACCEPTEXSOCKADDRS iocp_getacceptexsockaddrs;
static LARGE_INTEGER iocp_freq;

#define IOCP_WAKE_KEY ((ULONG_PTR)1)

int may__win_errno(DWORD err)
{
    switch (err) {
    case 0:
        return 0;
    case WSAECONNREFUSED:
    case ERROR_CONNECTION_REFUSED:
    case ERROR_PORT_UNREACHABLE:
        return -ECONNREFUSED;
    case WSAECONNRESET:
    case ERROR_NETNAME_DELETED: /* what WSARecv/AcceptEx report for a reset */
        return -ECONNRESET;
    case WSAECONNABORTED:
    case ERROR_CONNECTION_ABORTED:
    case ERROR_REQUEST_ABORTED:
        return -ECONNABORTED;
    case WSAETIMEDOUT:
    case ERROR_SEM_TIMEOUT: /* a connect that got no answer */
    case ERROR_TIMEOUT:
    case WAIT_TIMEOUT:
        return -ETIMEDOUT;
    case ERROR_OPERATION_ABORTED: /* = WSA_OPERATION_ABORTED: CancelIoEx */
        return -ECANCELED;
    case WSAEINTR:
        return -EINTR;
    case WSAEADDRINUSE:
    case ERROR_ADDRESS_ALREADY_ASSOCIATED:
        return -EADDRINUSE;
    case WSAEADDRNOTAVAIL:
        return -EADDRNOTAVAIL;
    case WSAENETUNREACH:
    case ERROR_NETWORK_UNREACHABLE:
        return -ENETUNREACH;
    case WSAEHOSTUNREACH:
    case ERROR_HOST_UNREACHABLE:
        return -EHOSTUNREACH;
    case WSAENETDOWN:
        return -ENETDOWN;
    case WSAENETRESET:
        return -ENETRESET;
    case WSAENOTCONN:
    case ERROR_CONNECTION_INVALID:
        return -ENOTCONN;
    case WSAEISCONN:
    case ERROR_CONNECTION_ACTIVE:
        return -EISCONN;
    case WSAESHUTDOWN:
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
        return -EPIPE;
    case WSAEMSGSIZE:
    case ERROR_MORE_DATA: /* a datagram larger than the buffer */
        return -EMSGSIZE;
    case WSAENOTSOCK:
        return -ENOTSOCK;
    case WSAEBADF:
    case ERROR_INVALID_HANDLE:
    case ERROR_HANDLES_CLOSED: /* wine: an operation in flight at closesocket
                                  (Windows says ERROR_OPERATION_ABORTED) */
        return -EBADF;
    case WSAEINVAL:
    case ERROR_INVALID_PARAMETER:
        return -EINVAL;
    case WSAEFAULT:
    case ERROR_NOACCESS:
        return -EFAULT;
    case WSAEWOULDBLOCK:
        return -EAGAIN;
    case WSAEINPROGRESS:
        return -EINPROGRESS;
    case WSAEALREADY:
        return -EALREADY;
    case WSAEDESTADDRREQ:
        return -EDESTADDRREQ;
    case WSAEPROTOTYPE:
        return -EPROTOTYPE;
    case WSAENOPROTOOPT:
        return -ENOPROTOOPT;
    case WSAEPROTONOSUPPORT:
    case WSAESOCKTNOSUPPORT:
        return -EPROTONOSUPPORT;
    case WSAEAFNOSUPPORT:
    case WSAEPFNOSUPPORT:
        return -EAFNOSUPPORT;
    case WSAEOPNOTSUPP:
        return -EOPNOTSUPP;
    case ERROR_NOT_SUPPORTED:
    case ERROR_INVALID_FUNCTION:
        return -ENOTSUP;
    case WSAEMFILE:
    case ERROR_TOO_MANY_OPEN_FILES:
        return -EMFILE;
    case WSAENOBUFS:
        return -ENOBUFS;
    case ERROR_NOT_ENOUGH_MEMORY: /* = WSA_NOT_ENOUGH_MEMORY */
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
        return -ENOMEM;
    case WSAEACCES:
    case ERROR_ACCESS_DENIED:
        return -EACCES;
    case ERROR_NOT_FOUND: /* CancelIoEx: nothing in flight */
        return -ENOENT;
    default:
        return -EIO;
    }
}

int64_t may__iocp_now(void)
{
    LARGE_INTEGER c;
    QueryPerformanceCounter(&c);
    /* split so that c * 1e9 does not overflow */
    int64_t f = iocp_freq.QuadPart;
    return c.QuadPart / f * 1000000000 + c.QuadPart % f * 1000000000 / f;
}

static int iocp_load_ext(SOCKET s, GUID guid, void *fn, size_t fnsize)
{
    DWORD n;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, fn, (DWORD)fnsize,
                 &n, NULL, NULL) != 0)
        return may__win_errno((DWORD)WSAGetLastError());
    return 0;
}

/* The AFD helper: any name under \Device\Afd opens the AFD driver. */
static HANDLE iocp_open_afd(void)
{
    static WCHAR name[] = L"\\Device\\Afd\\May";
    UNICODE_STRING us = { sizeof name - sizeof(WCHAR), sizeof name, name };
    OBJECT_ATTRIBUTES oa;
    memset(&oa, 0, sizeof oa);
    oa.Length = sizeof oa;
    oa.ObjectName = &us;
    IO_STATUS_BLOCK iosb;
    HANDLE h = NULL;
    NTSTATUS st = NtCreateFile(&h, SYNCHRONIZE, &oa, &iosb, NULL, 0,
                               FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN, 0, NULL, 0);
    if (st < 0)
        return NULL;
    if (CreateIoCompletionPort(h, iocp_port, 0, 0) == NULL) {
        CloseHandle(h);
        return NULL;
    }
    SetFileCompletionNotificationModes(h, FILE_SKIP_SET_EVENT_ON_HANDLE);
    return h;
}

int may__iocp_init(void)
{
    WSADATA wd;
    int r = WSAStartup(MAKEWORD(2, 2), &wd);
    if (r != 0)
        return may__win_errno((DWORD)r);
    QueryPerformanceFrequency(&iocp_freq);
    iocp_port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (iocp_port == NULL) {
        r = may__win_errno(GetLastError());
        goto out_cleanup;
    }
    /* The extension functions, from an IPv4 TCP socket: the same provider
     * (MSAFD Tcpip) serves IPv6.  libuv loads them per family; so will the
     * runtime if a non-IFS provider ever differs. */
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET) {
        r = may__win_errno((DWORD)WSAGetLastError());
        goto out_close_port;
    }
    GUID ga = WSAID_ACCEPTEX, gc = WSAID_CONNECTEX, gs = WSAID_GETACCEPTEXSOCKADDRS;
    r = iocp_load_ext(s, ga, &iocp_acceptex, sizeof iocp_acceptex);
    if (r == 0)
        r = iocp_load_ext(s, gc, &iocp_connectex, sizeof iocp_connectex);
    if (r == 0)
        r = iocp_load_ext(s, gs, &iocp_getacceptexsockaddrs, sizeof iocp_getacceptexsockaddrs);
    closesocket(s);
    if (r != 0)
        goto out_close_port;
    iocp_afd = iocp_open_afd(); /* NULL is fine: polls use the socket */
    InterlockedExchange(&iocp_wake_pending, 0);
    return 0;
out_close_port:
    CloseHandle(iocp_port);
    iocp_port = NULL;
out_cleanup:
    WSACleanup();
    return r;
}

void may__iocp_close(void)
{
    if (iocp_afd != NULL)
        CloseHandle(iocp_afd);
    if (iocp_port != NULL)
        CloseHandle(iocp_port);
    iocp_afd = iocp_port = NULL;
    WSACleanup();
}

const char *may__iocp_name(void)
{
    return iocp_afd != NULL ? "iocp+afd" : "iocp";
}

int may__iocp_associate(SOCKET s)
{
    if (CreateIoCompletionPort((HANDLE)s, iocp_port, 0, 0) == NULL)
        return may__win_errno(GetLastError());
    /* No event to set per completion; completions still go to the port. */
    SetFileCompletionNotificationModes((HANDLE)s, FILE_SKIP_SET_EVENT_ON_HANDLE);
    int type = 0, len = sizeof type;
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0 && type == SOCK_DGRAM) {
        BOOL off = FALSE;
        DWORD n;
        /* best effort: Linux-like silence about ICMP errors */
        WSAIoctl(s, SIO_UDP_CONNRESET, &off, sizeof off, NULL, 0, &n, NULL, NULL);
    }
    return 0;
}

/* Mark op in flight; abort on reuse of an op whose completion is owed. */
static void iocp_begin(may__iocp_op *op, int kind, SOCKET s)
{
    if (InterlockedExchange(&op->inflight, 1) != 0) {
        fprintf(stderr, "may: IOCP operation %p reissued before its completion was dequeued\n",
                (void *)op);
        abort();
    }
    memset(&op->ov, 0, sizeof op->ov);
    op->kind = kind;
    op->s = s;
    op->res = 0;
}

/* After an issuing call: 0 if the completion will come, else give op back. */
static int iocp_issued(may__iocp_op *op, int rc_ok, DWORD err)
{
    if (rc_ok || err == WSA_IO_PENDING || err == ERROR_IO_PENDING)
        return 0;
    InterlockedExchange(&op->inflight, 0); /* full barrier: op is the owner's */
    return may__win_errno(err);
}

int may__iocp_accept(may__iocp_op *op, SOCKET lsock)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (getsockname(lsock, (struct sockaddr *)&ss, &len) != 0)
        return may__win_errno((DWORD)WSAGetLastError());
    SOCKET a = WSASocketW(ss.ss_family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (a == INVALID_SOCKET)
        return may__win_errno((DWORD)WSAGetLastError());
    iocp_begin(op, MAY__IOCP_ACCEPT, lsock);
    op->accepted = a;
    DWORD n;
    const DWORD alen = sizeof(struct sockaddr_storage) + 16;
    BOOL ok = iocp_acceptex(lsock, a, op->acceptbuf, 0, alen, alen, &n, &op->ov);
    int r = iocp_issued(op, ok, ok ? 0 : (DWORD)WSAGetLastError());
    if (r != 0) {
        closesocket(a);
        op->accepted = INVALID_SOCKET;
    }
    return r;
}

void may__iocp_accept_addrs(may__iocp_op *op, struct sockaddr_storage *local,
                            struct sockaddr_storage *remote)
{
    struct sockaddr *l = NULL, *rm = NULL;
    int ll = 0, rl = 0;
    const DWORD alen = sizeof(struct sockaddr_storage) + 16;
    iocp_getacceptexsockaddrs(op->acceptbuf, 0, alen, alen, &l, &ll, &rm, &rl);
    if (local != NULL && l != NULL)
        memcpy(local, l, (size_t)ll < sizeof *local ? (size_t)ll : sizeof *local);
    if (remote != NULL && rm != NULL)
        memcpy(remote, rm, (size_t)rl < sizeof *remote ? (size_t)rl : sizeof *remote);
}

int may__iocp_connect(may__iocp_op *op, SOCKET s, const struct sockaddr *sa, int salen)
{
    /* ConnectEx wants a bound socket; bind the wildcard if it is not. */
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (getsockname(s, (struct sockaddr *)&ss, &len) != 0) {
        memset(&ss, 0, sizeof ss);
        ss.ss_family = sa->sa_family;
        len = sa->sa_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                        : (int)sizeof(struct sockaddr_in);
        if (bind(s, (struct sockaddr *)&ss, len) != 0)
            return may__win_errno((DWORD)WSAGetLastError());
    }
    iocp_begin(op, MAY__IOCP_CONNECT, s);
    BOOL ok = iocp_connectex(s, sa, salen, NULL, 0, NULL, &op->ov);
    return iocp_issued(op, ok, ok ? 0 : (DWORD)WSAGetLastError());
}

int may__iocp_recv(may__iocp_op *op, SOCKET s, void *buf, size_t n)
{
    iocp_begin(op, MAY__IOCP_RECV, s);
    op->buf.buf = buf;
    op->buf.len = n > MAXLONG ? MAXLONG : (ULONG)n;
    op->flags = 0;
    int rc = WSARecv(s, &op->buf, 1, NULL, &op->flags, &op->ov, NULL);
    return iocp_issued(op, rc == 0, rc == 0 ? 0 : (DWORD)WSAGetLastError());
}

int may__iocp_send(may__iocp_op *op, SOCKET s, const void *buf, size_t n)
{
    iocp_begin(op, MAY__IOCP_SEND, s);
    op->buf.buf = (char *)buf; /* WSABUF is not const; WSASend does not write */
    op->buf.len = n > MAXLONG ? MAXLONG : (ULONG)n;
    int rc = WSASend(s, &op->buf, 1, NULL, 0, &op->ov, NULL);
    return iocp_issued(op, rc == 0, rc == 0 ? 0 : (DWORD)WSAGetLastError());
}

int may__iocp_recvfrom(may__iocp_op *op, SOCKET s, void *buf, size_t n)
{
    iocp_begin(op, MAY__IOCP_RECVFROM, s);
    op->buf.buf = buf;
    op->buf.len = n > MAXLONG ? MAXLONG : (ULONG)n;
    op->flags = 0;
    op->addrlen = sizeof op->addr;
    int rc = WSARecvFrom(s, &op->buf, 1, NULL, &op->flags, (struct sockaddr *)&op->addr,
                         &op->addrlen, &op->ov, NULL);
    return iocp_issued(op, rc == 0, rc == 0 ? 0 : (DWORD)WSAGetLastError());
}

int may__iocp_sendto(may__iocp_op *op, SOCKET s, const void *buf, size_t n,
                     const struct sockaddr *sa, int salen)
{
    if (salen < 0 || (size_t)salen > sizeof op->addr)
        return -EINVAL;
    iocp_begin(op, MAY__IOCP_SENDTO, s);
    op->buf.buf = (char *)buf;
    op->buf.len = n > MAXLONG ? MAXLONG : (ULONG)n;
    memcpy(&op->addr, sa, (size_t)salen); /* the kernel may read it late */
    op->addrlen = salen;
    int rc = WSASendTo(s, &op->buf, 1, NULL, 0, (struct sockaddr *)&op->addr, op->addrlen,
                       &op->ov, NULL);
    return iocp_issued(op, rc == 0, rc == 0 ? 0 : (DWORD)WSAGetLastError());
}

static HANDLE iocp_poll_handle(may__iocp_op *op)
{
    return iocp_afd != NULL ? iocp_afd : (HANDLE)op->s;
}

int may__iocp_poll(may__iocp_op *op, SOCKET s, int events)
{
    if ((events & ~(MAY__IOCP_R | MAY__IOCP_W)) != 0 || events == 0)
        return -EINVAL;
    int type, len = sizeof type;
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, (char *)&type, &len) != 0) {
        DWORD e = (DWORD)WSAGetLastError();
        /* no readiness for pipes, consoles, files: see the essay */
        return e == WSAENOTSOCK ? -ENOTSUP : may__win_errno(e);
    }
    SOCKET base = s;
    DWORD n;
    if (WSAIoctl(s, SIO_BASE_HANDLE, NULL, 0, &base, sizeof base, &n, NULL, NULL) != 0)
        base = s;
    iocp_begin(op, MAY__IOCP_POLL, s);
    ULONG want = IOCP_AFD_ABORT | IOCP_AFD_CONNECT_FAIL | IOCP_AFD_LOCAL_CLOSE;
    if (events & MAY__IOCP_R)
        want |= IOCP_AFD_RECEIVE | IOCP_AFD_ACCEPT | IOCP_AFD_DISCONNECT |
                IOCP_AFD_RECEIVE_EXPEDITED;
    if (events & MAY__IOCP_W)
        want |= IOCP_AFD_SEND;
    op->poll.timeout.QuadPart = INT64_MAX;
    op->poll.nhandles = 1;
    op->poll.exclusive = 0;
    op->poll.handle = (HANDLE)base;
    op->poll.events = want;
    op->poll.status = 0;
    op->flags = (DWORD)events; /* what was asked, for the dispatch */
    IO_STATUS_BLOCK *iosb = (IO_STATUS_BLOCK *)(void *)&op->ov; /* Internal, InternalHigh */
    iosb->Status = STATUS_PENDING;
    /* ApcContext = &op->ov: what the port hands back */
    NTSTATUS st = NtDeviceIoControlFile(iocp_poll_handle(op), NULL, NULL, &op->ov, iosb,
                                        IOCP_IOCTL_AFD_POLL, &op->poll, sizeof op->poll,
                                        &op->poll, sizeof op->poll);
    if (st == STATUS_PENDING || st >= 0)
        return 0; /* success at once is queued to the port too */
    InterlockedExchange(&op->inflight, 0);
    return may__win_errno(RtlNtStatusToDosError(st));
}

int may__iocp_cancel(may__iocp_op *op)
{
    HANDLE h = op->kind == MAY__IOCP_POLL ? iocp_poll_handle(op) : (HANDLE)op->s;
    if (CancelIoEx(h, &op->ov))
        return 0;
    return may__win_errno(GetLastError()); /* -ENOENT: already completed */
}

/* Turn a dequeued completion into op->res. */
static void iocp_finish(may__iocp_op *op, DWORD bytes)
{
    NTSTATUS st = (NTSTATUS)op->ov.Internal;
    if (op->kind == MAY__IOCP_POLL) {
        if (st < 0) {
            op->res = may__win_errno(RtlNtStatusToDosError(st));
            return;
        }
        ULONG ev = op->poll.nhandles == 1 ? op->poll.events : 0;
        int asked = (int)op->flags, got = 0;
        if (ev & IOCP_AFD_LOCAL_CLOSE) {
            op->res = -EBADF; /* closed while polled */
            return;
        }
        if (ev & (IOCP_AFD_RECEIVE | IOCP_AFD_ACCEPT | IOCP_AFD_RECEIVE_EXPEDITED))
            got |= MAY__IOCP_R;
        if (ev & IOCP_AFD_SEND)
            got |= MAY__IOCP_W;
        if (ev & IOCP_AFD_DISCONNECT)
            got |= MAY__IOCP_R | MAY__IOCP_HUP;
        if (ev & (IOCP_AFD_ABORT | IOCP_AFD_CONNECT_FAIL))
            got |= MAY__IOCP_R | MAY__IOCP_W | MAY__IOCP_HUP;
        op->res = (got & asked) | (got & MAY__IOCP_HUP);
        return;
    }
    if (st < 0) {
        /* The NTSTATUS mapped by ntdll, not WSAGetOverlappedResult: that
         * needs the socket, which may_fd_close may have closed by now
         * (and then says WSAENOTSOCK).  Winsock's own mapping only for a
         * status ntdll does not know. */
        DWORD e = RtlNtStatusToDosError(st), n, fl;
        if (e == ERROR_MR_MID_NOT_FOUND && !WSAGetOverlappedResult(op->s, &op->ov, &n, FALSE, &fl))
            e = (DWORD)WSAGetLastError();
        op->res = may__win_errno(e);
        if (op->kind == MAY__IOCP_ACCEPT) {
            closesocket(op->accepted);
            op->accepted = INVALID_SOCKET;
        }
        return;
    }
    switch (op->kind) {
    case MAY__IOCP_ACCEPT: {
        SOCKET l = op->s;
        if (setsockopt(op->accepted, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&l, sizeof l) != 0
            || may__iocp_associate(op->accepted) != 0) {
            op->res = may__win_errno((DWORD)WSAGetLastError());
            closesocket(op->accepted);
            op->accepted = INVALID_SOCKET;
            return;
        }
        op->res = (int64_t)op->accepted;
        return;
    }
    case MAY__IOCP_CONNECT:
        /* getpeername, shutdown and friends work only after this */
        if (setsockopt(op->s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) != 0) {
            op->res = may__win_errno((DWORD)WSAGetLastError());
            return;
        }
        op->res = 0;
        return;
    default:
        op->res = bytes;
        return;
    }
}

int may__iocp_wait(int64_t deadline, may__iocp_cb cb, void *arg)
{
    OVERLAPPED_ENTRY ents[64];
    for (;;) {
        DWORD ms;
        if (deadline < 0) {
            ms = INFINITE;
        } else {
            int64_t d = deadline - may__iocp_now();
            if (d <= 0)
                ms = 0;
            else if (d >= (int64_t)(INFINITE - 1) * 1000000)
                ms = INFINITE - 1;
            else
                ms = (DWORD)((d + 999999) / 1000000); /* round up: never early */
        }
        ULONG n = 0;
        if (!GetQueuedCompletionStatusEx(iocp_port, ents, 64, &n, ms, FALSE)) {
            DWORD e = GetLastError();
            if (e != WAIT_TIMEOUT)
                return may__win_errno(e);
            if (ms == 0 || (deadline >= 0 && may__iocp_now() >= deadline))
                return 0;
            continue; /* the tick woke us early: wait the rest */
        }
        for (ULONG i = 0; i < n; i++) {
            if (ents[i].lpOverlapped == NULL) {
                /* full barrier, pairs with the exchange in may__iocp_wake:
                 * a waker that saw 1 and skipped its packet did so before
                 * this reset, so what it stored before waking is visible
                 * to our caller once this wait returns; a wake after the
                 * reset posts a new packet */
                InterlockedExchange(&iocp_wake_pending, 0);
                continue;
            }
            may__iocp_op *op = (may__iocp_op *)(void *)ents[i].lpOverlapped;
            iocp_finish(op, ents[i].dwNumberOfBytesTransferred);
            /* full barrier: res is published before the op is the owner's;
             * the owner is parked until cb wakes it, so cb may read op */
            InterlockedExchange(&op->inflight, 0);
            if (cb != NULL)
                cb(op, arg);
        }
        return (int)n;
    }
}

void may__iocp_wake(void)
{
    /* One packet per wait is enough; skip it if one is queued. */
    if (InterlockedExchange(&iocp_wake_pending, 1) != 0)
        return;
    if (!PostQueuedCompletionStatus(iocp_port, 0, IOCP_WAKE_KEY, NULL))
        InterlockedExchange(&iocp_wake_pending, 0);
}
