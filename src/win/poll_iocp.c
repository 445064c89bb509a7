/*
 * poll_iocp.c - the poller backend for Windows: one I/O completion port,
 * socket readiness from AFD poll requests completing on it.
 *
 * The same calls as poll_epoll.c (internal.h's "poller" block) plus
 * may__poll_rearm, so io.c keeps one design on both systems: try the
 * system call on a non-blocking socket, and on EAGAIN park on the fd's
 * waiter list until the poller reports readiness through
 * may__io_ready(tag, MAY__IO_* bits).  TCP, UDP, Unix stream sockets,
 * may_fd_wait, tickets and select's FD cases are io.c's code on Windows
 * too; only this file and src/win/sock_win.h (the Winsock spelling of the
 * calls) differ.
 *
 * Why readiness and not completions.  Windows' native model is the
 * completion: issue WSARecv and learn when it is done.  The prototype of
 * this file did that (AcceptEx, ConnectEx, WSARecv, WSASend, ...) and it
 * worked, but it is a second I/O layer beside io.c: its own cancellation
 * protocol, buffers owned by the kernel until a completion is dequeued, a
 * Windows-only path for every call and for select.  Readiness needs none
 * of that, and Winsock does have a scalable readiness source underneath:
 * the AFD driver's poll ioctl (IOCTL_AFD_POLL), which select() and WSAPoll
 * are built on.  Issued on a helper handle opened on \Device\Afd and
 * associated with the port, a poll request completes on the port like any
 * overlapped operation when the socket becomes readable, writable,
 * acceptable, hung up, reset or its connect failed.  wepoll, libuv's
 * uv_poll_t and Rust's mio (hence tokio) are built on it; it is
 * undocumented but has been stable since Windows Vista.
 *
 * Edge-triggered emulation (mio's).  An AFD poll is one-shot and level-
 * triggered: it completes at once if the socket is ready, and then is
 * gone.  io.c expects edges: an event per change, none while nothing
 * changes.  So each socket has an interest (MAY__IO_R, MAY__IO_W): a poll
 * for it is in flight; when the poll completes, its events go to
 * may__io_ready and leave the interest; io.c puts a direction back with
 * may__poll_rearm(fd, dir) when an operation in that direction says EAGAIN
 * (or before it waits without trying: the drained-socket shortcut, the
 * may_fd_wait paths, select's FD cases, a ticket).  A poll issued then
 * completes at once if readiness came between the EAGAIN and the rearm
 * (level-triggered), so no wake-up is lost; io.c's rseq/wseq counters,
 * read before the system call, do the rest exactly as on Linux.  A socket
 * that keeps being ready (writable) is not reported again until someone
 * wanted it and was refused: no busy loop.  The cost is the ioctl per
 * EAGAIN (epoll's registration is once per fd) and a port round trip.
 *
 * Per-socket state (iocp_sock): a table indexed by fd / 4 (socket handles
 * are multiples of 4), in chunks made on demand and never freed, as io.c's
 * fd_ent table, because a poll in flight owns its IO_STATUS_BLOCK and
 * output buffer until its completion is dequeued: the memory must outlive
 * any close.  At most one poll per socket is in flight.  To change its
 * mask (a rearm for a direction it lacks) the poll is cancelled
 * (CancelIoEx) and re-issued with the new interest when its completion
 * (STATUS_CANCELLED, or real events if it won the race) is dequeued; the
 * block is never reissued before that.  may__poll_add records the tag and
 * the socket's base handle (SIO_BASE_HANDLE: under a layered provider the
 * poll must name the base socket) and polls for nothing yet; may__poll_del
 * clears the interest and cancels what is in flight; a completion that
 * belongs to an earlier registration (ptag != tag: the fd was closed and
 * its number reused) is dropped and, if the new registration wants
 * something, the poll is issued again for it.
 *
 * Locks: each iocp_sock has an SRW lock, a leaf: taken under io.c's entry
 * lock (may__poll_add and _del run under it) and never around
 * may__io_ready, which the dispatch calls after releasing it.
 *
 * Non-sockets: Windows has no readiness for pipes, consoles or files (fds
 * are handle values, sockets or not: sock_win.h), so io.c's registration
 * step fails for them with -ENOTSUP (sock_win.h's may__sock_nonblock):
 * may_fd_wait on them returns it, and may_read and may_write run
 * ReadFile/WriteFile on the offload pool instead (src/win/process_win.c).
 *
 * The wait.  Only the worker holding may__S.poller_busy calls
 * may__poll_wait (one static entry buffer serves every call).  It dequeues
 * up to 128 completions per GetQueuedCompletionStatusEx.  The timeout is
 * in milliseconds: a deadline is rounded up and, when the port returns
 * early with nothing (the system tick), waited for again, so the poller
 * never returns before its deadline.  Timers are as coarse as the tick
 * (15.6 ms unless raised); a high-resolution waitable timer associated with
 * the port (NtAssociateWaitCompletionPacket) is the later fix, as Go does.
 * The wake is a packet with no OVERLAPPED, posted at most once per wait
 * (wake_pending, as poll_epoll.c's eventfd writes).
 *
 * A new port after may_shutdown: may__poll_close cancels every poll in
 * flight and dequeues their completions (the blocks are the kernel's
 * until then), then closes the helper and the port; may__poll_init makes
 * new ones and bumps the generation, so io.c registers each fd again.
 * Sockets themselves are never associated with the port (the helper is),
 * so a socket outlives any number of ports.
 *
 * Errors: every WSA* and ERROR_* code goes through may__win_errno, one
 * table, to the negative errno value the Linux call returns for the same
 * condition (mingw-w64's errno.h has the POSIX names; their values differ
 * from Linux's, but the public API speaks names).
 *
 * Winsock is started once per process (may__wsa_start) and never cleaned
 * up: WSACleanup would invalidate sockets that outlive a may_shutdown.
 * Not from DllMain (a constructor): WSAStartup may load provider DLLs.
 */
#include "../internal.h"
#include "poll_iocp.h"

#include <winternl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SIO_BASE_HANDLE
#define SIO_BASE_HANDLE _WSAIOR(IOC_WS2, 34)
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
/* asked with every poll: the socket failed or went away */
#define IOCP_AFD_ALWAYS (IOCP_AFD_ABORT | IOCP_AFD_LOCAL_CLOSE | IOCP_AFD_CONNECT_FAIL)

/* The poll's in/out buffer (the layout wepoll and libuv use; not in the
 * SDK headers), one socket per request. */
typedef struct iocp_afd_poll_info {
    LARGE_INTEGER timeout;  /* INT64_MAX: none; deadlines are io.c's */
    ULONG nhandles;         /* 1 */
    ULONG exclusive;        /* 0 */
    HANDLE handle;          /* the base socket */
    ULONG events;           /* in: IOCP_AFD_* wanted; out: what fired */
    NTSTATUS status;        /* out: per-handle status */
} iocp_afd_poll_info;

/* One socket's poll state (see "Per-socket state"). */
typedef struct iocp_sock {
    IO_STATUS_BLOCK iosb;      /* the poll's: the kernel's while inflight */
    iocp_afd_poll_info info;   /* likewise */
    SRWLOCK lock;              /* the rest; zero is an unlocked SRWLOCK */
    uint64_t tag;              /* io.c's tag of the registration */
    uint64_t ptag;             /* the tag the poll in flight was issued for */
    HANDLE base;               /* the base socket handle */
    uint32_t pgen;             /* poller generation registered in, 0: none */
    uint8_t live;              /* registered (poll_add, not yet poll_del) */
    uint8_t interest;          /* MAY__IO_R | MAY__IO_W to poll for */
    uint8_t pmask;             /* the mask of the poll in flight */
    uint8_t inflight;          /* a poll issued, completion not dequeued */
    uint8_t cancelled;         /* CancelIoEx asked for it */
} iocp_sock;

#define SOCK_CHUNK_BITS 10
#define SOCK_CHUNK_SIZE (1 << SOCK_CHUNK_BITS)
#define SOCK_NCHUNKS 4096 /* handles below 16M */

static iocp_sock *_Atomic iocp_socks[SOCK_NCHUNKS];
static HANDLE iocp_port;                /* the port; NULL when closed */
static HANDLE iocp_afd;                 /* the AFD helper on that port */
static _Atomic int iocp_wake_pending;   /* a wake packet is queued */
static _Atomic uint32_t iocp_gen;       /* ports made so far */
static _Atomic long iocp_inflight;      /* polls in flight (for close) */
static _Atomic int iocp_wsa;            /* 1: WSAStartup done */
static OVERLAPPED_ENTRY iocp_ents[128]; /* used only by the poller */


/* ---- errors, Winsock ----------------------------------------------------- */

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
    case WSAENOTSOCK: /* fds are sockets on Windows (docs/WINDOWS.md): no socket, */
    case WSAEBADF:     /* no fd, as for -1 on Linux */
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
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_NAME:
        return -ENOENT;
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS:
        return -EEXIST;
    case ERROR_SHARING_VIOLATION: /* opened elsewhere without sharing */
    case ERROR_LOCK_VIOLATION:
        return -EBUSY;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
        return -ENOSPC;
    case ERROR_FILENAME_EXCED_RANGE:
        return -ENAMETOOLONG;
    case ERROR_WRITE_PROTECT:
        return -EROFS;
    case ERROR_DIR_NOT_EMPTY:
        return -ENOTEMPTY;
    case ERROR_NEGATIVE_SEEK:
    case ERROR_NO_UNICODE_TRANSLATION:
        return -EINVAL;
    default:
        return -EIO;
    }
}

int may__wsa_start(void)
{
    /* acquire: pairs with the release below (Winsock is up) */
    if (atomic_load_explicit(&iocp_wsa, memory_order_acquire))
        return 0;
    WSADATA wd;
    int r = WSAStartup(MAKEWORD(2, 2), &wd); /* thread-safe; a second count is harmless */
    if (r != 0)
        return may__win_errno((DWORD)r);
    atomic_store_explicit(&iocp_wsa, 1, memory_order_release);
    return 0;
}

/* ---- per-socket poll state ----------------------------------------------- */

static iocp_sock *sock_get(int fd, int create)
{
    if (fd <= 0 || (fd & 3))
        return NULL; /* not a socket handle */
    unsigned i = (unsigned)fd >> 2;
    if (i >= (unsigned)SOCK_NCHUNKS * SOCK_CHUNK_SIZE)
        return NULL;
    _Atomic(iocp_sock *) *slot = &iocp_socks[i >> SOCK_CHUNK_BITS];
    /* acquire: pairs with the release CAS below */
    iocp_sock *c = atomic_load_explicit(slot, memory_order_acquire);
    if (!c) {
        if (!create)
            return NULL;
        /* zeroed: unlocked SRW locks, nothing registered or in flight */
        iocp_sock *n = calloc(SOCK_CHUNK_SIZE, sizeof *n);
        if (!n)
            return NULL;
        if (atomic_compare_exchange_strong_explicit(slot, &c, n, memory_order_acq_rel,
                                                    memory_order_acquire))
            c = n;
        else
            free(n);
    }
    return &c[i & (SOCK_CHUNK_SIZE - 1)];
}

static ULONG afd_mask(int interest)
{
    ULONG m = IOCP_AFD_ALWAYS;
    if (interest & MAY__IO_R)
        m |= IOCP_AFD_RECEIVE | IOCP_AFD_ACCEPT | IOCP_AFD_DISCONNECT | IOCP_AFD_RECEIVE_EXPEDITED;
    if (interest & MAY__IO_W)
        m |= IOCP_AFD_SEND;
    return m;
}

/* Issue a poll for s->interest; under s->lock, with none in flight.  0, or
 * -1 when it failed at once (no completion will come). */
static int sock_issue(iocp_sock *s)
{
    s->info.timeout.QuadPart = INT64_MAX;
    s->info.nhandles = 1;
    s->info.exclusive = 0;
    s->info.handle = s->base;
    s->info.events = afd_mask(s->interest);
    s->info.status = 0;
    s->iosb.Status = STATUS_PENDING;
    s->iosb.Information = 0;
    /* ApcContext = &s->iosb: what the port hands back as lpOverlapped.  A
     * poll that is satisfied at once is queued to the port too (the helper
     * is not in skip-on-success mode): one completion path. */
    NTSTATUS st = NtDeviceIoControlFile(iocp_afd, NULL, NULL, &s->iosb, &s->iosb,
                                        IOCP_IOCTL_AFD_POLL, &s->info, sizeof s->info, &s->info,
                                        sizeof s->info);
    if (st != STATUS_PENDING && st < 0)
        return -1;
    s->inflight = 1;
    s->cancelled = 0;
    s->pmask = s->interest;
    s->ptag = s->tag;
    atomic_fetch_add_explicit(&iocp_inflight, 1, memory_order_relaxed);
    return 0;
}

static void sock_cancel(iocp_sock *s)
{
    if (s->inflight && !s->cancelled) {
        /* ERROR_NOT_FOUND: it completed and its completion is queued */
        CancelIoEx(iocp_afd, (OVERLAPPED *)(void *)&s->iosb);
        s->cancelled = 1;
    }
}

/* What a completed poll reports, as MAY__IO_* bits. */
static uint32_t sock_events(const iocp_sock *s)
{
    NTSTATUS st = s->iosb.Status;
    if (st == STATUS_CANCELLED)
        return 0;
    if (st < 0) /* the poll failed: let the waiters' own calls find out */
        return MAY__IO_R | MAY__IO_W | MAY__IO_HUP;
    if (s->info.nhandles < 1)
        return 0;
    ULONG ev = s->info.events;
    uint32_t io = 0;
    if (ev & (IOCP_AFD_RECEIVE | IOCP_AFD_ACCEPT))
        io |= MAY__IO_R;
    if (ev & IOCP_AFD_RECEIVE_EXPEDITED) /* TCP urgent data (EPOLLPRI) */
        io |= MAY__IO_R | MAY__IO_URG;
    if (ev & IOCP_AFD_SEND)
        io |= MAY__IO_W;
    if (ev & IOCP_AFD_DISCONNECT) /* the peer's FIN: EOF after the data */
        io |= MAY__IO_R | MAY__IO_HUP;
    if (ev & IOCP_AFD_ALWAYS) /* reset, failed connect, closed */
        io |= MAY__IO_R | MAY__IO_W | MAY__IO_HUP;
    return io;
}

/* A dequeued poll completion: deliver its events to io.c, poll again for
 * what is still wanted. */
static void sock_done(iocp_sock *s)
{
    uint32_t io = 0;
    uint64_t tag = 0;
    AcquireSRWLockExclusive(&s->lock);
    s->inflight = 0;
    atomic_fetch_sub_explicit(&iocp_inflight, 1, memory_order_relaxed);
    if (s->live && s->pgen == may__poll_gen()) {
        if (s->ptag == s->tag) { /* else: for a closed fd whose number was reused */
            io = sock_events(s);
            s->interest &= (uint8_t)~(io & (MAY__IO_R | MAY__IO_W));
        }
        if (s->interest && sock_issue(s) < 0) {
            io |= s->interest | MAY__IO_HUP; /* the waiters retry and see why */
            s->interest = 0;
        }
        tag = s->tag;
    }
    ReleaseSRWLockExclusive(&s->lock);
    if (io)
        may__io_ready(tag, io);
}

int may__poll_add(int fd, uint64_t tag)
{
    iocp_sock *s = sock_get(fd, 1);
    if (!s)
        return fd <= 0 || (fd & 3) ? -ENOTSUP : -ENOMEM;
    /* A socket?  (wine answers SIO_BASE_HANDLE for a pipe too.) */
    int type, len = sizeof type;
    if (getsockopt((SOCKET)fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len) != 0) {
        int e = WSAGetLastError();
        return e == WSAENOTSOCK ? -ENOTSUP : may__win_errno((DWORD)e);
    }
    SOCKET base = (SOCKET)fd;
    DWORD n;
    if (WSAIoctl((SOCKET)fd, SIO_BASE_HANDLE, NULL, 0, &base, sizeof base, &n, NULL, NULL) != 0)
        base = (SOCKET)fd; /* a provider without a base handle */
    uint32_t gen = may__poll_gen();
    AcquireSRWLockExclusive(&s->lock);
    if (s->pgen != gen)
        s->inflight = 0; /* a poll of a closed port: done (may__poll_close) */
    s->tag = tag;
    s->base = (HANDLE)base;
    s->pgen = gen;
    s->live = 1;
    s->interest = 0; /* nothing until io.c asks (may__poll_rearm) */
    sock_cancel(s);  /* a poll for the number's previous socket */
    ReleaseSRWLockExclusive(&s->lock);
    return 0;
}

int may__poll_del(int fd)
{
    iocp_sock *s = sock_get(fd, 0);
    if (!s)
        return 0;
    AcquireSRWLockExclusive(&s->lock);
    s->live = 0;
    s->interest = 0;
    sock_cancel(s);
    ReleaseSRWLockExclusive(&s->lock);
    return 0;
}

void may__poll_rearm(int fd, int dir)
{
    iocp_sock *s = sock_get(fd, 0);
    if (!s)
        return;
    uint32_t io = 0;
    uint64_t tag = 0;
    AcquireSRWLockExclusive(&s->lock);
    if (s->live && s->pgen == may__poll_gen()) {
        s->interest |= (uint8_t)(dir & (MAY__IO_R | MAY__IO_W));
        if (!s->inflight) {
            if (sock_issue(s) < 0) {
                io = s->interest | MAY__IO_HUP;
                tag = s->tag;
                s->interest = 0;
            }
        } else if ((s->pmask & s->interest) != s->interest) {
            sock_cancel(s); /* re-issued with the new interest when it is dequeued */
        }
    }
    ReleaseSRWLockExclusive(&s->lock);
    if (io)
        may__io_ready(tag, io);
}

long may__iocp_inflight(void)
{
    return atomic_load_explicit(&iocp_inflight, memory_order_relaxed);
}

/* ---- the port ------------------------------------------------------------ */

/* The AFD helper: any name under \Device\Afd opens the AFD driver. */
static int iocp_open_afd(HANDLE port, HANDLE *out)
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
        return may__win_errno(RtlNtStatusToDosError(st));
    if (CreateIoCompletionPort(h, port, 0, 0) == NULL) {
        int r = may__win_errno(GetLastError());
        CloseHandle(h);
        return r;
    }
    SetFileCompletionNotificationModes(h, FILE_SKIP_SET_EVENT_ON_HANDLE);
    *out = h;
    return 0;
}

int may__poll_init(void)
{
    int r = may__wsa_start();
    if (r < 0)
        return r;
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (port == NULL)
        return may__win_errno(GetLastError());
    HANDLE afd = NULL;
    r = iocp_open_afd(port, &afd);
    if (r < 0) {
        CloseHandle(port);
        return r;
    }
    iocp_port = port;
    iocp_afd = afd;
    atomic_store(&iocp_wake_pending, 0);
    atomic_store(&iocp_inflight, 0);
    /* release: a socket registered after reading this generation polls
     * on this port */
    atomic_fetch_add_explicit(&iocp_gen, 1, memory_order_release);
    return 0;
}

void may__poll_close(void)
{
    if (iocp_port == NULL)
        return;
    /* Every poll in flight owns its socket's block until its completion
     * is dequeued: cancel them all and dequeue (2 s at most; closing the
     * helper ends whatever is left). */
    if (atomic_load(&iocp_inflight) > 0) {
        CancelIoEx(iocp_afd, NULL);
        int64_t until = may__now() + 2000000000LL;
        while (atomic_load(&iocp_inflight) > 0 && may__now() < until) {
            ULONG n = 0;
            if (!GetQueuedCompletionStatusEx(iocp_port, iocp_ents, 128, &n, 100, FALSE))
                continue;
            for (ULONG i = 0; i < n; i++) {
                iocp_sock *s = (iocp_sock *)(void *)iocp_ents[i].lpOverlapped;
                if (s == NULL)
                    continue; /* a wake */
                AcquireSRWLockExclusive(&s->lock);
                s->inflight = 0;
                ReleaseSRWLockExclusive(&s->lock);
                atomic_fetch_sub(&iocp_inflight, 1);
            }
        }
    }
    CloseHandle(iocp_afd);
    CloseHandle(iocp_port);
    iocp_afd = iocp_port = NULL;
}

void may__poll_wait(int64_t deadline)
{
    const ULONG max = (ULONG)(sizeof iocp_ents / sizeof iocp_ents[0]);
    for (;;) {
        DWORD ms;
        if (deadline == INT64_MAX) {
            ms = INFINITE;
        } else {
            int64_t d = deadline <= 0 ? 0 : deadline - may__now();
            if (d <= 0)
                ms = 0;
            else if (d >= (int64_t)(INFINITE - 1) * 1000000)
                ms = INFINITE - 1;
            else
                ms = (DWORD)((d + 999999) / 1000000); /* round up: never early */
        }
        ULONG n = 0;
        if (!GetQueuedCompletionStatusEx(iocp_port, iocp_ents, max, &n, ms, FALSE)) {
            /* the tick can end a wait a little early: wait the rest */
            if (ms != 0 && ms != INFINITE && GetLastError() == WAIT_TIMEOUT &&
                may__now() < deadline)
                continue;
            return;
        }
        for (ULONG i = 0; i < n; i++) {
            if (iocp_ents[i].lpOverlapped == NULL) {
                /* seq_cst, as poll_epoll.c's: a waker that saw 1 and
                 * posted nothing did so before this store, and what it
                 * stored before waking is visible once this wait returns;
                 * a wake after it posts a new packet */
                atomic_store(&iocp_wake_pending, 0);
                continue;
            }
            sock_done((iocp_sock *)(void *)iocp_ents[i].lpOverlapped);
        }
        return;
    }
}

void may__poll_wake(void)
{
    /* One packet per wait is enough; skip it if one is queued. */
    if (atomic_exchange(&iocp_wake_pending, 1))
        return;
    if (!PostQueuedCompletionStatus(iocp_port, 0, 0, NULL))
        atomic_store(&iocp_wake_pending, 0);
}

uint32_t may__poll_gen(void)
{
    /* acquire: pairs with the release in may__poll_init */
    return atomic_load_explicit(&iocp_gen, memory_order_acquire);
}

const char *may__poll_name(void)
{
    return "iocp+afd";
}
