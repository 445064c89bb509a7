/*
 * poll_iocp.h - the Windows I/O layer (prototype): one I/O completion port,
 * overlapped socket operations owned by the caller, their completions
 * dispatched to a callback.  The design, the ownership rules of an
 * OVERLAPPED and how this sits behind the runtime's poller interface are
 * explained at the top of poll_iocp.c.
 *
 * Not built by the Linux library; tests/win/win_iocp.c cross-builds it with
 * mingw-w64 (docs/WINDOWS_IO.md).
 */
#ifndef MAY_POLL_IOCP_H
#define MAY_POLL_IOCP_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <stdint.h>

/* What an operation is; the dispatcher needs it to finish the operation
 * (accept and connect update the socket's context, poll reads its own
 * output). */
enum {
    MAY__IOCP_ACCEPT = 1,
    MAY__IOCP_CONNECT,
    MAY__IOCP_RECV,
    MAY__IOCP_SEND,
    MAY__IOCP_RECVFROM,
    MAY__IOCP_SENDTO,
    MAY__IOCP_POLL,
};

/* The readiness bits of may__iocp_poll: the same values as MAY_READ and
 * MAY_WRITE in include/may.h, plus a hang-up/error bit reported with them
 * (as io.c's MAY__IO_HUP). */
enum { MAY__IOCP_R = 1, MAY__IOCP_W = 2, MAY__IOCP_HUP = 4 };

/* The AFD poll ioctl's in/out buffer (the layout wepoll and libuv use; not
 * in the SDK headers).  One socket per request here. */
typedef struct may__afd_poll_info {
    LARGE_INTEGER timeout;  /* INT64_MAX: none; the deadline is ours */
    ULONG nhandles;         /* 1 */
    ULONG exclusive;        /* 0 */
    HANDLE handle;          /* the base socket */
    ULONG events;           /* in: AFD_POLL_* wanted; out: what fired */
    LONG status;            /* out: per-handle NTSTATUS */
} may__afd_poll_info;

/*
 * One overlapped operation.  The caller owns it (on a parked coroutine's
 * stack, later; on a thread's stack in the test) and must keep it, and its
 * buffers, alive and untouched from the issuing call that returned 0 until
 * the completion has been dispatched (inflight back to 0): see "Ownership" in
 * poll_iocp.c.  ov must stay the first field (the dispatcher gets &ov back
 * from the port and casts).
 */
typedef struct may__iocp_op {
    OVERLAPPED ov;          /* the kernel's from issue to dequeue */
    int kind;               /* MAY__IOCP_* */
    SOCKET s;               /* the socket the operation is on */
    volatile LONG inflight; /* 1 from issue until dispatch (Interlocked*,
                               full barriers); issuing an op still in
                               flight is a bug and aborts */
    int64_t res;            /* after dispatch: bytes, the accepted socket,
                               the fired MAY__IOCP_* bits, or -errno */
    void *user;             /* the caller's (whom to wake) */
    WSABUF buf;             /* recv/send buffer (caller's memory) */
    DWORD flags;            /* WSARecv flags (in/out) */
    SOCKET accepted;        /* accept: the socket AcceptEx fills */
    struct sockaddr_storage addr; /* recvfrom: the sender; sendto: the peer */
    INT addrlen;            /* its length (recvfrom: in/out) */
    /* accept: GetAcceptExSockaddrs's buffer (local, then remote, each
     * sizeof(sockaddr_storage) + 16 as AcceptEx requires) */
    char acceptbuf[2 * (sizeof(struct sockaddr_storage) + 16)];
    may__afd_poll_info poll; /* poll: the request and its answer */
} may__iocp_op;

/* The port: create it (and load the extension functions); close it.
 * 0 or -errno. */
int may__iocp_init(void);
void may__iocp_close(void);

/* Associate socket s with the port (once per socket, before its first
 * operation).  0 or -errno. */
int may__iocp_associate(SOCKET s);

/* Issue an operation.  0: in flight, its completion will be dispatched
 * exactly once (even after a cancel, even when it completed at once);
 * -errno: it failed at once, no completion will come and op is the
 * caller's again. */
/* accept: res is the new socket, already associated with the port and
 * with SO_UPDATE_ACCEPT_CONTEXT done (so getpeername and shutdown work). */
int may__iocp_accept(may__iocp_op *op, SOCKET lsock);
/* connect: binds the wildcard first if s is not bound (ConnectEx needs it);
 * SO_UPDATE_CONNECT_CONTEXT is done at dispatch. */
int may__iocp_connect(may__iocp_op *op, SOCKET s, const struct sockaddr *sa, int salen);
int may__iocp_recv(may__iocp_op *op, SOCKET s, void *buf, size_t n);
int may__iocp_send(may__iocp_op *op, SOCKET s, const void *buf, size_t n);
int may__iocp_recvfrom(may__iocp_op *op, SOCKET s, void *buf, size_t n);
int may__iocp_sendto(may__iocp_op *op, SOCKET s, const void *buf, size_t n,
                     const struct sockaddr *sa, int salen);
/* Readiness of a socket (MAY__IOCP_R | MAY__IOCP_W): one-shot; res is the
 * fired subset, with MAY__IOCP_HUP on a hang-up or error.  -ENOTSUP for a
 * handle that is not a socket. */
int may__iocp_poll(may__iocp_op *op, SOCKET s, int events);

/* After an accept's dispatch with res >= 0: the local and remote address
 * (either may be NULL). */
void may__iocp_accept_addrs(may__iocp_op *op, struct sockaddr_storage *local,
                            struct sockaddr_storage *remote);

/* Ask the kernel to end op early.  0: asked (the completion, with
 * -ECANCELED or with the result if it won the race, will still be
 * dispatched); -ENOENT: nothing to cancel (it has completed and its
 * completion is queued or dispatched).  Either way op stays the kernel's
 * until dispatched. */
int may__iocp_cancel(may__iocp_op *op);

/* Dequeue completions until the deadline (absolute ns on
 * may__iocp_now's clock; -1: forever; 0: just look), dispatching each
 * operation's to cb(op, arg) after op->res is set.  Returns the number of
 * entries dequeued (operations and wakes) once there was at least one, 0
 * at the deadline (never before it), or -errno. */
typedef void (*may__iocp_cb)(may__iocp_op *op, void *arg);
int may__iocp_wait(int64_t deadline, may__iocp_cb cb, void *arg);

/* Make a may__iocp_wait in progress (or the next one) return: from any
 * thread; wakes sent before the waiter dequeues one are merged. */
void may__iocp_wake(void);

/* may__poll_name's answer: "iocp+afd", or "iocp" when the AFD helper
 * could not be opened (polls then go on the socket's own handle). */
const char *may__iocp_name(void);

/* Monotonic clock, ns (QueryPerformanceCounter). */
int64_t may__iocp_now(void);

/* Windows and Winsock error codes -> the negative errno value libmay's
 * Linux calls return for the same condition (-EIO for what has none). */
int may__win_errno(DWORD err);

#endif
