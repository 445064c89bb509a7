/*
 * win_iocp.c - the IOCP prototype (src/win/poll_iocp.c) on loopback, as a
 * standalone Windows program: cross-built with mingw-w64 and run under
 * wine64 (docs/WINDOWS_IO.md has the commands).  Not built by CMake.
 *
 * Part 1, single-threaded, main dispatches its own completions: error
 * table, deadline on the wait, wakes (merged, and from another thread),
 * connect refused, a recv cancelled with CancelIoEx and its OVERLAPPED
 * reused only after the completion is dequeued (and a child process that
 * reuses it too early must abort), readiness by AFD poll.
 * Part 2, threads as the runtime's workers: one poller thread dispatches
 * every completion and wakes the issuing thread (an event per thread, as
 * the runtime will wake a parked coroutine): a TCP echo with several
 * clients and many round trips, and a UDP echo.  Round-trip times are
 * printed, never asserted (wine's vary several-fold).
 *
 * Exit 0 when every check passed; a failed check prints both operands.
 */
#include "../../src/win/poll_iocp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks;

#define CHECK(c)                                                                   \
    do {                                                                           \
        checks++;                                                                  \
        if (!(c)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);  \
            exit(1);                                                               \
        }                                                                          \
    } while (0)
#define CHECK_EQ(a, b)                                                              \
    do {                                                                            \
        long long a_ = (long long)(a), b_ = (long long)(b);                         \
        checks++;                                                                   \
        if (a_ != b_) {                                                             \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,     \
                    __LINE__, #a, #b, a_, b_);                                      \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

#define MS 1000000LL

/* ---- helpers ------------------------------------------------------------ */

static SOCKET tcp_socket(void)
{
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(may__iocp_associate(s), 0);
    return s;
}

static SOCKET udp_socket(void)
{
    SOCKET s = WSASocketW(AF_INET, SOCK_DGRAM, IPPROTO_UDP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    CHECK(s != INVALID_SOCKET);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(may__iocp_associate(s), 0);
    return s;
}

static struct sockaddr_in local_addr(SOCKET s)
{
    struct sockaddr_in a;
    int len = sizeof a;
    CHECK_EQ(getsockname(s, (struct sockaddr *)&a, &len), 0);
    return a;
}

static SOCKET tcp_listener(void)
{
    SOCKET l = tcp_socket();
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 64), 0);
    return l;
}

/* Part 1: main dispatches; run the port until op's completion is dequeued. */
static int64_t pump(may__iocp_op *op, int issued)
{
    if (issued < 0)
        return issued;
    int64_t dl = may__iocp_now() + 10000 * MS;
    while (op->inflight) {
        CHECK(may__iocp_now() < dl); /* a completion that never comes */
        CHECK(may__iocp_wait(dl, NULL, NULL) >= 0);
    }
    return op->res;
}

/* A connected pair through a listener: *a accepted, *c connected. */
static void tcp_pair(SOCKET l, SOCKET *a, SOCKET *c)
{
    may__iocp_op ao = { 0 }, co = { 0 };
    CHECK_EQ(may__iocp_accept(&ao, l), 0);
    *c = tcp_socket();
    struct sockaddr_in to = local_addr(l);
    CHECK_EQ(may__iocp_connect(&co, *c, (struct sockaddr *)&to, sizeof to), 0);
    CHECK_EQ(pump(&co, 0), 0);
    int64_t r = pump(&ao, 0);
    CHECK(r >= 0);
    *a = (SOCKET)r;
    /* the accepted socket's peer is the connecting socket */
    struct sockaddr_storage lo, re;
    may__iocp_accept_addrs(&ao, &lo, &re);
    struct sockaddr_in cl = local_addr(*c);
    CHECK_EQ(re.ss_family, AF_INET);
    CHECK_EQ(((struct sockaddr_in *)&re)->sin_port, cl.sin_port);
    CHECK_EQ(((struct sockaddr_in *)&lo)->sin_port, to.sin_port);
    /* SO_UPDATE_CONNECT_CONTEXT ran: getpeername works */
    struct sockaddr_in pe;
    int pl = sizeof pe;
    CHECK_EQ(getpeername(*c, (struct sockaddr *)&pe, &pl), 0);
    CHECK_EQ(pe.sin_port, to.sin_port);
}

/* ---- part 1 ------------------------------------------------------------- */

static void test_errno_table(void)
{
    CHECK_EQ(may__win_errno(0), 0);
    CHECK_EQ(may__win_errno(WSAECONNREFUSED), -ECONNREFUSED);
    CHECK_EQ(may__win_errno(ERROR_CONNECTION_REFUSED), -ECONNREFUSED);
    CHECK_EQ(may__win_errno(WSAECONNRESET), -ECONNRESET);
    CHECK_EQ(may__win_errno(ERROR_NETNAME_DELETED), -ECONNRESET);
    CHECK_EQ(may__win_errno(WSAETIMEDOUT), -ETIMEDOUT);
    CHECK_EQ(may__win_errno(ERROR_SEM_TIMEOUT), -ETIMEDOUT);
    CHECK_EQ(may__win_errno(ERROR_OPERATION_ABORTED), -ECANCELED);
    CHECK_EQ(may__win_errno(WSA_OPERATION_ABORTED), -ECANCELED);
    CHECK_EQ(may__win_errno(WSAEADDRINUSE), -EADDRINUSE);
    CHECK_EQ(may__win_errno(WSAEMSGSIZE), -EMSGSIZE);
    CHECK_EQ(may__win_errno(WSAENOTSOCK), -ENOTSOCK);
    CHECK_EQ(may__win_errno(ERROR_NOT_FOUND), -ENOENT);
    CHECK_EQ(may__win_errno(12345678), -EIO);
}

static void test_deadline(void)
{
    CHECK_EQ(may__iocp_wait(0, NULL, NULL), 0); /* just look */
    int64_t t0 = may__iocp_now();
    CHECK_EQ(may__iocp_wait(t0 + 50 * MS, NULL, NULL), 0);
    int64_t el = may__iocp_now() - t0;
    CHECK(el >= 50 * MS); /* never before the deadline (the contract) */
    CHECK_EQ(may__iocp_wait(t0 - 1, NULL, NULL), 0); /* a past deadline */
    printf("deadline: a 50 ms wait returned after %.1f ms\n", el / 1e6);
}

static DWORD WINAPI waker(void *arg)
{
    Sleep((DWORD)(uintptr_t)arg);
    may__iocp_wake();
    return 0;
}

static void test_wake(void)
{
    /* wakes before the wait are merged into one packet, none lost */
    may__iocp_wake();
    may__iocp_wake();
    CHECK_EQ(may__iocp_wait(may__iocp_now() + 5000 * MS, NULL, NULL), 1);
    CHECK_EQ(may__iocp_wait(0, NULL, NULL), 0);
    /* from another thread, into a wait with no deadline */
    int64_t t0 = may__iocp_now();
    HANDLE th = CreateThread(NULL, 0, waker, (void *)(uintptr_t)20, 0, NULL);
    CHECK(th != NULL);
    CHECK_EQ(may__iocp_wait(-1, NULL, NULL), 1);
    printf("wake: a wait woken by another thread after %.1f ms (it slept 20 ms)\n",
           (may__iocp_now() - t0) / 1e6);
    WaitForSingleObject(th, INFINITE);
    CloseHandle(th);
    /* and a wake sent after the first was consumed is a new one */
    may__iocp_wake();
    CHECK_EQ(may__iocp_wait(may__iocp_now() + 5000 * MS, NULL, NULL), 1);
}

static void test_refused(void)
{
    /* a bound, not listening port: the SYN is answered by a reset */
    SOCKET b = tcp_socket();
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(b, (struct sockaddr *)&a, sizeof a), 0);
    struct sockaddr_in to = local_addr(b);
    SOCKET c = tcp_socket();
    may__iocp_op op = { 0 };
    int64_t t0 = may__iocp_now();
    CHECK_EQ(pump(&op, may__iocp_connect(&op, c, (struct sockaddr *)&to, sizeof to)),
             -ECONNREFUSED);
    printf("refused: ConnectEx failed with -ECONNREFUSED after %.1f ms (NTSTATUS %#lx)\n",
           (may__iocp_now() - t0) / 1e6, (unsigned long)op.ov.Internal);
    closesocket(c);
    closesocket(b);
}

static void test_cancel(SOCKET l)
{
    SOCKET a, c;
    tcp_pair(l, &a, &c);
    char buf[16];
    may__iocp_op op = { 0 };
    /* nothing to read: the recv is pending; cancel it */
    CHECK_EQ(may__iocp_recv(&op, c, buf, sizeof buf), 0);
    CHECK_EQ(may__iocp_wait(may__iocp_now() + 20 * MS, NULL, NULL), 0);
    CHECK_EQ(op.inflight, 1);
    CHECK_EQ(may__iocp_cancel(&op), 0);
    /* cancelled, but the OVERLAPPED is still the kernel's until dequeued */
    CHECK_EQ(op.inflight, 1);
    CHECK_EQ(pump(&op, 0), -ECANCELED);
    CHECK_EQ(op.inflight, 0);
    CHECK_EQ(may__iocp_cancel(&op), -ENOENT); /* nothing left to cancel */
    /* now it may be reused: the same op reads what comes next */
    may__iocp_op so = { 0 };
    CHECK_EQ(may__iocp_recv(&op, c, buf, sizeof buf), 0);
    CHECK_EQ(pump(&so, may__iocp_send(&so, a, "xyz", 3)), 3);
    CHECK_EQ(pump(&op, 0), 3);
    CHECK(memcmp(buf, "xyz", 3) == 0);
    /* a cancel that races with the data: either outcome is a completion,
     * and no byte is lost */
    CHECK_EQ(pump(&so, may__iocp_send(&so, a, "k", 1)), 1);
    Sleep(10); /* let the byte arrive (not a synchronisation: either way is checked) */
    CHECK_EQ(may__iocp_recv(&op, c, buf, sizeof buf), 0);
    int cr = may__iocp_cancel(&op);
    int64_t r = pump(&op, 0);
    printf("cancel race: cancel said %d, the recv completed with %lld\n", cr, (long long)r);
    if (r == -ECANCELED) {
        CHECK_EQ(pump(&op, may__iocp_recv(&op, c, buf, sizeof buf)), 1);
    } else {
        CHECK_EQ(r, 1);
    }
    CHECK_EQ(buf[0], 'k');
    /* an accept cancelled */
    may__iocp_op ao = { 0 };
    CHECK_EQ(may__iocp_accept(&ao, l), 0);
    CHECK_EQ(may__iocp_cancel(&ao), 0);
    CHECK_EQ(pump(&ao, 0), -ECANCELED);
    CHECK(ao.accepted == INVALID_SOCKET);
    /* closing the socket aborts what is in flight; the completion comes */
    CHECK_EQ(may__iocp_recv(&op, c, buf, sizeof buf), 0);
    closesocket(c);
    r = pump(&op, 0);
    printf("close: a recv in flight on a closed socket completed with %lld (NTSTATUS %#lx)\n",
           (long long)r, (unsigned long)op.ov.Internal);
    CHECK(r == -EBADF || r == -ECANCELED); /* wine, Windows */
    closesocket(a);
    printf("cancel: a pending recv and a pending accept cancelled with -ECANCELED; op reused after dequeue\n");
}

/* IPv6: AcceptEx and ConnectEx on ::1 (the accept socket takes the
 * listener's family; ConnectEx binds the IPv6 wildcard). */
static void test_ipv6(void)
{
    SOCKET l = WSASocketW(AF_INET6, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    CHECK(l != INVALID_SOCKET);
    CHECK_EQ(may__iocp_associate(l), 0);
    struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0) {
        printf("ipv6: no ::1 here (%d), skipped\n", WSAGetLastError());
        closesocket(l);
        return;
    }
    CHECK_EQ(listen(l, 4), 0);
    int len = sizeof a;
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    SOCKET c = WSASocketW(AF_INET6, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    CHECK(c != INVALID_SOCKET);
    CHECK_EQ(may__iocp_associate(c), 0);
    may__iocp_op ao = { 0 }, co = { 0 }, so = { 0 };
    CHECK_EQ(may__iocp_accept(&ao, l), 0);
    CHECK_EQ(pump(&co, may__iocp_connect(&co, c, (struct sockaddr *)&a, sizeof a)), 0);
    int64_t r = pump(&ao, 0);
    CHECK(r >= 0);
    SOCKET s = (SOCKET)r;
    struct sockaddr_storage re;
    may__iocp_accept_addrs(&ao, NULL, &re);
    CHECK_EQ(re.ss_family, AF_INET6);
    char buf[8];
    CHECK_EQ(pump(&so, may__iocp_send(&so, c, "six", 3)), 3);
    CHECK_EQ(pump(&so, may__iocp_recv(&so, s, buf, sizeof buf)), 3);
    CHECK(memcmp(buf, "six", 3) == 0);
    closesocket(s);
    closesocket(c);
    closesocket(l);
    printf("ipv6: accept, connect, send, recv on ::1\n");
}

/* The child: reuse an op whose completion is owed.  Must abort (exit 3). */
static int child_reuse(void)
{
    CHECK_EQ(may__iocp_init(), 0);
    SOCKET l = tcp_listener(), a, c;
    tcp_pair(l, &a, &c);
    char buf[4];
    may__iocp_op op = { 0 };
    CHECK_EQ(may__iocp_recv(&op, c, buf, sizeof buf), 0);
    CHECK_EQ(may__iocp_cancel(&op), 0);
    fflush(stdout);
    may__iocp_recv(&op, c, buf, sizeof buf); /* the bug: aborts */
    return 0;
}

static void test_reuse_aborts(const char *self)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "\"%s\" reuse", self);
    printf("reuse: a child reissues an op still in flight; its abort message follows\n");
    STARTUPINFOA si = { .cb = sizeof si };
    PROCESS_INFORMATION pi;
    CHECK(CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi));
    CHECK_EQ(WaitForSingleObject(pi.hProcess, 30000), WAIT_OBJECT_0);
    DWORD code = 0;
    CHECK(GetExitCodeProcess(pi.hProcess, &code));
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    CHECK_EQ(code, 3); /* abort() */
    printf("reuse: reissuing an op before its completion was dequeued aborted the child\n");
}

static void test_poll(SOCKET l)
{
    SOCKET a, c;
    tcp_pair(l, &a, &c);
    may__iocp_op p = { 0 }, so = { 0 };
    /* a connected socket with room to send is writable */
    CHECK_EQ(pump(&p, may__iocp_poll(&p, c, MAY__IOCP_W)), MAY__IOCP_W);
    /* nothing to read: the poll stays pending past a deadline */
    CHECK_EQ(may__iocp_poll(&p, c, MAY__IOCP_R), 0);
    CHECK_EQ(may__iocp_wait(may__iocp_now() + 30 * MS, NULL, NULL), 0);
    CHECK_EQ(p.inflight, 1);
    /* data comes: readable, and nothing was consumed */
    CHECK_EQ(pump(&so, may__iocp_send(&so, a, "q", 1)), 1);
    CHECK_EQ(pump(&p, 0), MAY__IOCP_R);
    /* level-triggered: polled again with the byte still queued, ready at once */
    CHECK_EQ(pump(&p, may__iocp_poll(&p, c, MAY__IOCP_R)), MAY__IOCP_R);
    CHECK_EQ(pump(&p, may__iocp_poll(&p, c, MAY__IOCP_R | MAY__IOCP_W)),
             MAY__IOCP_R | MAY__IOCP_W);
    char ch = 0;
    CHECK_EQ(pump(&so, may__iocp_recv(&so, c, &ch, 1)), 1);
    CHECK_EQ(ch, 'q');
    /* a pending poll cancelled, as a deadline or may_cancel will */
    CHECK_EQ(may__iocp_poll(&p, c, MAY__IOCP_R), 0);
    CHECK_EQ(may__iocp_cancel(&p), 0);
    CHECK_EQ(pump(&p, 0), -ECANCELED);
    /* a listener with a connection queued is readable */
    SOCKET c2 = tcp_socket();
    struct sockaddr_in to = local_addr(l);
    CHECK_EQ(may__iocp_poll(&p, l, MAY__IOCP_R), 0);
    CHECK_EQ(pump(&so, may__iocp_connect(&so, c2, (struct sockaddr *)&to, sizeof to)), 0);
    CHECK_EQ(pump(&p, 0), MAY__IOCP_R);
    may__iocp_op ao = { 0 };
    int64_t r = pump(&ao, may__iocp_accept(&ao, l));
    CHECK(r >= 0);
    closesocket((SOCKET)r);
    closesocket(c2);
    /* the peer closes: readable, with a hang-up */
    CHECK_EQ(may__iocp_poll(&p, c, MAY__IOCP_R), 0);
    closesocket(a);
    r = pump(&p, 0);
    printf("poll: peer closed -> %lld (R=1 W=2 HUP=4)\n", (long long)r);
    CHECK(r > 0 && (r & MAY__IOCP_R));
    CHECK_EQ(pump(&so, may__iocp_recv(&so, c, &ch, 1)), 0); /* EOF */
    closesocket(c);
    /* no readiness for what is not a socket */
    HANDLE rd, wr;
    CHECK(CreatePipe(&rd, &wr, NULL, 0));
    CHECK_EQ(may__iocp_poll(&p, (SOCKET)rd, MAY__IOCP_R), -ENOTSUP);
    CHECK_EQ(p.inflight, 0);
    CloseHandle(rd);
    CloseHandle(wr);
    CHECK_EQ(may__iocp_poll(&p, c, 0), -EINVAL);
    printf("poll (%s): writable, readable, cancelled, acceptable, hang-up; a pipe: -ENOTSUP\n",
           may__iocp_name());
}

/* ---- part 2: a poller thread and worker threads ------------------------- */

static volatile LONG stop_poller;

static void wake_owner(may__iocp_op *op, void *arg)
{
    (void)arg;
    SetEvent((HANDLE)op->user); /* the owner sleeps until this */
}

static DWORD WINAPI poller_main(void *arg)
{
    (void)arg;
    while (!InterlockedCompareExchange(&stop_poller, 0, 0))
        CHECK(may__iocp_wait(-1, wake_owner, NULL) >= 0);
    return 0;
}

/* Issue, then sleep until the poller dispatches the completion. */
static int64_t await(may__iocp_op *op, int issued)
{
    if (issued < 0)
        return issued;
    CHECK_EQ(WaitForSingleObject((HANDLE)op->user, 30000), WAIT_OBJECT_0);
    CHECK_EQ(op->inflight, 0);
    return op->res;
}

static void op_init(may__iocp_op *op)
{
    memset(op, 0, sizeof *op);
    op->user = CreateEventW(NULL, FALSE, FALSE, NULL); /* auto-reset */
    CHECK(op->user != NULL);
}

static void op_fini(may__iocp_op *op)
{
    CloseHandle((HANDLE)op->user);
}

static int send_all(may__iocp_op *op, SOCKET s, const char *p, size_t n)
{
    while (n > 0) {
        int64_t r = await(op, may__iocp_send(op, s, p, n));
        if (r <= 0)
            return r < 0 ? (int)r : -EIO;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int recv_full(may__iocp_op *op, SOCKET s, char *p, size_t n)
{
    while (n > 0) {
        int64_t r = await(op, may__iocp_recv(op, s, p, n));
        if (r <= 0)
            return r < 0 ? (int)r : -EIO; /* EOF inside a message */
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

#define NCLIENTS 4
#define ROUNDS 300
#define BIG (16 * 1024)

static DWORD WINAPI echo_conn(void *arg)
{
    SOCKET s = (SOCKET)arg;
    may__iocp_op op;
    op_init(&op);
    static __thread char buf[BIG];
    for (;;) {
        int64_t r = await(&op, may__iocp_recv(&op, s, buf, sizeof buf));
        CHECK(r >= 0);
        if (r == 0)
            break;
        CHECK_EQ(send_all(&op, s, buf, (size_t)r), 0);
    }
    op_fini(&op);
    closesocket(s);
    return 0;
}

static DWORD WINAPI acceptor(void *arg)
{
    SOCKET l = (SOCKET)arg;
    may__iocp_op op;
    op_init(&op);
    HANDLE th[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        int64_t r = await(&op, may__iocp_accept(&op, l));
        CHECK(r >= 0);
        th[i] = CreateThread(NULL, 0, echo_conn, (void *)(SOCKET)r, 0, NULL);
        CHECK(th[i] != NULL);
    }
    WaitForMultipleObjects(NCLIENTS, th, TRUE, INFINITE);
    for (int i = 0; i < NCLIENTS; i++)
        CloseHandle(th[i]);
    op_fini(&op);
    return 0;
}

static struct sockaddr_in echo_to;
static double client_rtt_us[NCLIENTS];

static DWORD WINAPI client(void *arg)
{
    int id = (int)(uintptr_t)arg;
    may__iocp_op op;
    op_init(&op);
    SOCKET s = tcp_socket();
    CHECK_EQ(await(&op, may__iocp_connect(&op, s, (struct sockaddr *)&echo_to, sizeof echo_to)),
             0);
    char out[64], in[64];
    int64_t t0 = may__iocp_now();
    for (int i = 0; i < ROUNDS; i++) {
        memset(out, 'a' + (i + id) % 26, sizeof out);
        memcpy(out, &i, sizeof i);
        CHECK_EQ(send_all(&op, s, out, sizeof out), 0);
        CHECK_EQ(recv_full(&op, s, in, sizeof in), 0);
        CHECK(memcmp(in, out, sizeof in) == 0);
    }
    client_rtt_us[id] = (may__iocp_now() - t0) / 1e3 / ROUNDS;
    /* bigger messages: short reads and writes happen; recv_full joins them */
    static __thread char bo[BIG], bi[BIG];
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < BIG; k++)
            bo[k] = (char)(k * 7 + i + id);
        CHECK_EQ(send_all(&op, s, bo, BIG), 0);
        CHECK_EQ(recv_full(&op, s, bi, BIG), 0);
        CHECK(memcmp(bi, bo, BIG) == 0);
    }
    CHECK_EQ(shutdown(s, SD_SEND), 0);
    CHECK_EQ(await(&op, may__iocp_recv(&op, s, in, sizeof in)), 0); /* the echo's EOF */
    closesocket(s);
    op_fini(&op);
    return 0;
}

static void test_tcp_echo(void)
{
    SOCKET l = tcp_listener();
    echo_to = local_addr(l);
    HANDLE th[NCLIENTS + 1];
    th[0] = CreateThread(NULL, 0, acceptor, (void *)l, 0, NULL);
    CHECK(th[0] != NULL);
    int64_t t0 = may__iocp_now();
    for (int i = 0; i < NCLIENTS; i++) {
        th[i + 1] = CreateThread(NULL, 0, client, (void *)(uintptr_t)i, 0, NULL);
        CHECK(th[i + 1] != NULL);
    }
    CHECK_EQ(WaitForMultipleObjects(NCLIENTS + 1, th, TRUE, 60000), WAIT_OBJECT_0);
    for (int i = 0; i <= NCLIENTS; i++)
        CloseHandle(th[i]);
    closesocket(l);
    printf("tcp echo: %d clients x %d round trips of 64 B + 8 x 16 KiB, %.0f ms in all; "
           "mean round trip per client (us):",
           NCLIENTS, ROUNDS, (may__iocp_now() - t0) / 1e6);
    for (int i = 0; i < NCLIENTS; i++)
        printf(" %.0f", client_rtt_us[i]);
    printf("\n");
}

static DWORD WINAPI udp_server(void *arg)
{
    SOCKET s = (SOCKET)arg;
    may__iocp_op op;
    op_init(&op);
    char buf[512];
    for (;;) {
        int64_t r = await(&op, may__iocp_recvfrom(&op, s, buf, sizeof buf));
        CHECK(r >= 0);
        if (r == 4 && memcmp(buf, "quit", 4) == 0)
            break;
        struct sockaddr_storage from = op.addr;
        int fl = op.addrlen;
        CHECK_EQ(await(&op, may__iocp_sendto(&op, s, buf, (size_t)r, (struct sockaddr *)&from, fl)),
                 r);
    }
    op_fini(&op);
    return 0;
}

static void test_udp_echo(void)
{
    SOCKET srv = udp_socket(), cl = udp_socket();
    struct sockaddr_in to = local_addr(srv);
    HANDLE th = CreateThread(NULL, 0, udp_server, (void *)srv, 0, NULL);
    CHECK(th != NULL);
    may__iocp_op op;
    op_init(&op);
    enum { N = 200 };
    char out[100], in[200];
    int64_t t0 = may__iocp_now();
    for (int i = 0; i < N; i++) {
        int len = 1 + i % (int)sizeof out;
        memset(out, 'A' + i % 26, (size_t)len);
        CHECK_EQ(await(&op, may__iocp_sendto(&op, cl, out, (size_t)len, (struct sockaddr *)&to,
                                             sizeof to)),
                 len);
        CHECK_EQ(await(&op, may__iocp_recvfrom(&op, cl, in, sizeof in)), len);
        CHECK(memcmp(in, out, (size_t)len) == 0);
        CHECK_EQ(((struct sockaddr_in *)&op.addr)->sin_port, to.sin_port);
    }
    double rtt = (may__iocp_now() - t0) / 1e3 / N;
    CHECK_EQ(await(&op, may__iocp_sendto(&op, cl, "quit", 4, (struct sockaddr *)&to, sizeof to)),
             4);
    CHECK_EQ(WaitForSingleObject(th, 30000), WAIT_OBJECT_0);
    CloseHandle(th);
    op_fini(&op);
    closesocket(cl);
    closesocket(srv);
    printf("udp echo: %d round trips, mean %.0f us\n", N, rtt);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "reuse") == 0)
        return child_reuse();
    CHECK_EQ(may__iocp_init(), 0);
    printf("backend: %s\n", may__iocp_name());

    test_errno_table();
    test_deadline();
    test_wake();
    test_refused();
    SOCKET l = tcp_listener();
    test_cancel(l);
    test_poll(l);
    closesocket(l);
    test_ipv6();
    test_reuse_aborts(argv[0]);

    HANDLE poller = CreateThread(NULL, 0, poller_main, NULL, 0, NULL);
    CHECK(poller != NULL);
    test_tcp_echo();
    test_udp_echo();
    InterlockedExchange(&stop_poller, 1);
    may__iocp_wake();
    CHECK_EQ(WaitForSingleObject(poller, 30000), WAIT_OBJECT_0);
    CloseHandle(poller);

    may__iocp_close();
    printf("win_iocp: all %d checks passed\n", checks);
    return 0;
}
