/*
 * win_iocp.c - the Windows poller backend (src/win/poll_iocp.c) alone, as a
 * standalone Windows program: cross-built with mingw-w64 and run under
 * wine64 by scripts/win-test.sh (docs/WINDOWS_IO.md).
 *
 * It plays io.c's part: may__io_ready (defined here) counts the events per
 * tag as io.c's rseq/wseq do, and the test calls may__poll_add, _rearm,
 * _del and _wait as io.c and the scheduler do.  Part 1, single-threaded:
 * the error table, the wait's deadline and wakes, readiness on TCP (edges
 * only after a rearm, a rearm while ready reports at once, a mask change
 * in flight, hang-up, a refused connect, a listener, UDP), a fd number
 * reused while its old poll is in flight, non-sockets (-ENOTSUP), a new
 * port after close with polls in flight.  Part 2, threads as the runtime
 * runs them: one poller thread dispatching, two threads ping-ponging over
 * TCP with io.c's protocol (read the counter, try, on EAGAIN rearm and
 * wait for the counter to move), so that rearms race the dispatch.
 *
 * Exit 0 when every check passed; a failed check prints both operands.
 */
#include "../../src/internal.h"
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

/* ---- io.c's part --------------------------------------------------------- */

int64_t may__now(void)
{
    static LARGE_INTEGER f;
    LARGE_INTEGER c;
    if (f.QuadPart == 0)
        QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return c.QuadPart / f.QuadPart * 1000000000 + c.QuadPart % f.QuadPart * 1000000000 / f.QuadPart;
}

/* Events per tag: up to 16 tags, each with counters like rseq/wseq. */
typedef struct seen {
    uint64_t tag;
    _Atomic uint32_t r, w, hup, calls;
    _Atomic uint32_t last; /* the last io bits */
} seen;
static seen seens[16];
static _Atomic int nseen;

static seen *seen_for(uint64_t tag)
{
    for (int i = 0; i < nseen; i++)
        if (seens[i].tag == tag)
            return &seens[i];
    return NULL;
}

static seen *watch(uint64_t tag)
{
    seen *s = seen_for(tag);
    if (s)
        return s;
    CHECK(nseen < 16);
    s = &seens[nseen];
    memset(s, 0, sizeof *s);
    s->tag = tag;
    atomic_fetch_add(&nseen, 1);
    return s;
}

static _Atomic int unknown_tags;

void may__io_ready(uint64_t tag, uint32_t io)
{
    seen *s = seen_for(tag);
    if (!s) {
        atomic_fetch_add(&unknown_tags, 1);
        return;
    }
    atomic_store(&s->last, io);
    if (io & MAY__IO_HUP)
        atomic_fetch_add(&s->hup, 1);
    if (io & MAY__IO_R)
        atomic_fetch_add(&s->r, 1);
    if (io & MAY__IO_W)
        atomic_fetch_add(&s->w, 1);
    atomic_fetch_add(&s->calls, 1);
    WakeByAddressAll((void *)&s->calls);
}

/* Dispatch until s has more than `calls` calls, or `ms` pass (then 0). */
static int pump_until(seen *s, uint32_t calls, int64_t ms)
{
    int64_t dl = may__now() + ms * MS;
    while (atomic_load(&s->calls) <= calls) {
        if (may__now() >= dl)
            return 0;
        may__poll_wait(dl);
    }
    return 1;
}

/* Dispatch for ms: nothing must come for s. */
static void quiet(seen *s, int64_t ms)
{
    uint32_t c = atomic_load(&s->calls);
    CHECK_EQ(pump_until(s, c, ms), 0);
}

/* ---- sockets -------------------------------------------------------------- */

static SOCKET nb_socket(int type)
{
    SOCKET s = WSASocketW(AF_INET, type, type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP, NULL,
                          0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    CHECK(s != INVALID_SOCKET);
    u_long one = 1;
    CHECK_EQ(ioctlsocket(s, FIONBIO, &one), 0);
    return s;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((u_short)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int port_of(SOCKET s)
{
    struct sockaddr_in a;
    int len = sizeof a;
    CHECK_EQ(getsockname(s, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static SOCKET listener(void)
{
    SOCKET l = nb_socket(SOCK_STREAM);
    struct sockaddr_in a = loopback(0);
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 64), 0);
    return l;
}

/* A tag as io.c makes them (close generation, fd); handle values are
 * reused after closesocket, so every registration here takes a new
 * generation. */
static uint32_t next_gen = 1;

static uint64_t tag_of(SOCKET s)
{
    return (uint64_t)next_gen++ << 32 | (uint32_t)s;
}

/* A registered, connected pair: *c connected to *a (accepted). */
static void tcp_pair(SOCKET l, SOCKET *a, SOCKET *c, seen **sa, seen **sc)
{
    *c = nb_socket(SOCK_STREAM);
    *sc = watch(tag_of(*c));
    CHECK_EQ(may__poll_add((int)*c, (*sc)->tag), 0);
    struct sockaddr_in to = loopback(port_of(l));
    int r = connect(*c, (struct sockaddr *)&to, sizeof to);
    CHECK(r == 0 || WSAGetLastError() == WSAEWOULDBLOCK);
    /* the connect's completion is writability */
    uint32_t calls = atomic_load(&(*sc)->calls);
    may__poll_rearm((int)*c, MAY__IO_W);
    CHECK(pump_until(*sc, calls, 5000));
    CHECK(atomic_load(&(*sc)->last) & MAY__IO_W);
    CHECK(!(atomic_load(&(*sc)->last) & MAY__IO_HUP));
    int64_t dl = may__now() + 5000 * MS;
    while ((*a = accept(l, NULL, NULL)) == INVALID_SOCKET) {
        CHECK_EQ(WSAGetLastError(), WSAEWOULDBLOCK);
        CHECK(may__now() < dl);
        Sleep(1);
    }
    u_long one = 1;
    CHECK_EQ(ioctlsocket(*a, FIONBIO, &one), 0);
    *sa = watch(tag_of(*a));
    CHECK_EQ(may__poll_add((int)*a, (*sa)->tag), 0);
}

/* ---- part 1 ---------------------------------------------------------------- */

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
    CHECK_EQ(may__win_errno(WSAEADDRINUSE), -EADDRINUSE);
    CHECK_EQ(may__win_errno(WSAEMSGSIZE), -EMSGSIZE);
    CHECK_EQ(may__win_errno(WSAENOTSOCK), -EBADF); /* sockets are the fds */
    CHECK_EQ(may__win_errno(WSAEWOULDBLOCK), -EAGAIN);
    CHECK_EQ(may__win_errno(WSAEINPROGRESS), -EINPROGRESS);
    CHECK_EQ(may__win_errno(ERROR_NOT_SUPPORTED), -ENOTSUP);
    CHECK_EQ(may__win_errno(ERROR_NOT_FOUND), -ENOENT);
    CHECK_EQ(may__win_errno(12345678), -EIO);
}

static void test_deadline(void)
{
    int64_t t0 = may__now();
    may__poll_wait(0); /* just look */
    may__poll_wait(t0 - 1); /* a past deadline */
    CHECK(may__now() - t0 < 20 * MS);
    t0 = may__now();
    may__poll_wait(t0 + 50 * MS);
    int64_t el = may__now() - t0;
    CHECK(el >= 50 * MS); /* never before the deadline (the contract) */
    printf("deadline: a 50 ms wait returned after %.1f ms\n", el / 1e6);
}

static DWORD WINAPI waker(void *arg)
{
    Sleep((DWORD)(uintptr_t)arg);
    may__poll_wake();
    return 0;
}

static void test_wake(void)
{
    /* wakes before the wait are merged into one packet, none lost */
    may__poll_wake();
    may__poll_wake();
    int64_t t0 = may__now();
    may__poll_wait(t0 + 5000 * MS);
    CHECK(may__now() - t0 < 1000 * MS);
    t0 = may__now();
    may__poll_wait(t0 + 30 * MS); /* no second packet */
    CHECK(may__now() - t0 >= 30 * MS);
    /* from another thread, into a wait with no deadline */
    t0 = may__now();
    HANDLE th = CreateThread(NULL, 0, waker, (void *)(uintptr_t)20, 0, NULL);
    CHECK(th != NULL);
    may__poll_wait(INT64_MAX);
    printf("wake: a wait woken by another thread after %.1f ms (it slept 20 ms)\n",
           (may__now() - t0) / 1e6);
    WaitForSingleObject(th, INFINITE);
    CloseHandle(th);
}

static void test_tcp(SOCKET l)
{
    SOCKET a, c;
    seen *sa, *sc;
    tcp_pair(l, &a, &c, &sa, &sc);
    char buf[64];

    /* nothing to read: a rearmed poll stays in flight, nothing comes */
    CHECK_EQ(recv(a, buf, sizeof buf, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEWOULDBLOCK);
    may__poll_rearm((int)a, MAY__IO_R);
    quiet(sa, 30);
    CHECK_EQ(may__iocp_inflight(), 1);
    /* data: one read event */
    uint32_t calls = atomic_load(&sa->calls), r0 = atomic_load(&sa->r);
    CHECK_EQ(send(c, "x", 1, 0), 1);
    CHECK(pump_until(sa, calls, 5000));
    CHECK_EQ(atomic_load(&sa->r), r0 + 1);
    CHECK_EQ(atomic_load(&sa->last), MAY__IO_R);
    /* an edge: still readable, but not reported again until rearmed */
    quiet(sa, 30);
    CHECK_EQ(may__iocp_inflight(), 0);
    /* a rearm while ready reports at once (the poll is level-triggered):
     * readiness that came between an EAGAIN and the rearm is not lost */
    calls = atomic_load(&sa->calls);
    may__poll_rearm((int)a, MAY__IO_R);
    CHECK(pump_until(sa, calls, 5000));
    CHECK_EQ(recv(a, buf, sizeof buf, 0), 1);
    CHECK_EQ(recv(a, buf, sizeof buf, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEWOULDBLOCK);

    /* a mask change in flight: R pending, then W asked: cancelled and
     * re-issued for R|W; W comes at once, R stays polled */
    may__poll_rearm((int)a, MAY__IO_R);
    quiet(sa, 20);
    calls = atomic_load(&sa->calls);
    uint32_t w0 = atomic_load(&sa->w);
    r0 = atomic_load(&sa->r);
    may__poll_rearm((int)a, MAY__IO_W);
    CHECK(pump_until(sa, calls, 5000));
    CHECK_EQ(atomic_load(&sa->w), w0 + 1);
    CHECK_EQ(atomic_load(&sa->r), r0);
    CHECK_EQ(may__iocp_inflight(), 1); /* R still wanted */
    calls = atomic_load(&sa->calls);
    CHECK_EQ(send(c, "y", 1, 0), 1);
    CHECK(pump_until(sa, calls, 5000));
    CHECK_EQ(atomic_load(&sa->r), r0 + 1);
    CHECK_EQ(recv(a, buf, sizeof buf, 0), 1);
    CHECK_EQ(buf[0], 'y');

    /* the peer closes: read and hang-up */
    may__poll_rearm((int)a, MAY__IO_R);
    calls = atomic_load(&sa->calls);
    CHECK_EQ(may__poll_del((int)c), 0);
    closesocket(c);
    CHECK(pump_until(sa, calls, 5000));
    CHECK((atomic_load(&sa->last) & (MAY__IO_R | MAY__IO_HUP)) == (MAY__IO_R | MAY__IO_HUP));
    CHECK_EQ(recv(a, buf, sizeof buf, 0), 0); /* EOF */
    CHECK_EQ(may__poll_del((int)a), 0);
    closesocket(a);
    /* c's poll, if one was left, was cancelled: drained, nothing delivered */
    int64_t dl = may__now() + 5000 * MS;
    while (may__iocp_inflight() > 0 && may__now() < dl)
        may__poll_wait(may__now() + 10 * MS);
    CHECK_EQ(may__iocp_inflight(), 0);
    printf("tcp: an edge per rearm, a rearm while ready reports at once, a mask change in "
           "flight, hang-up\n");
}

static void test_refused(void)
{
    SOCKET p = nb_socket(SOCK_STREAM);
    struct sockaddr_in a = loopback(0);
    CHECK_EQ(bind(p, (struct sockaddr *)&a, sizeof a), 0);
    struct sockaddr_in to = loopback(port_of(p));
    closesocket(p); /* a port with no listener */
    SOCKET c = nb_socket(SOCK_STREAM);
    seen *sc = watch(tag_of(c));
    CHECK_EQ(may__poll_add((int)c, sc->tag), 0);
    int r = connect(c, (struct sockaddr *)&to, sizeof to);
    CHECK(r == SOCKET_ERROR && WSAGetLastError() == WSAEWOULDBLOCK);
    int64_t t0 = may__now();
    may__poll_rearm((int)c, MAY__IO_W);
    CHECK(pump_until(sc, 0, 10000));
    CHECK((atomic_load(&sc->last) & (MAY__IO_W | MAY__IO_HUP)) == (MAY__IO_W | MAY__IO_HUP));
    int err = 0, el = sizeof err;
    CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_ERROR, (char *)&err, &el), 0);
    CHECK_EQ(may__win_errno((DWORD)err), -ECONNREFUSED);
    printf("refused: reported as W|HUP after %.1f ms, SO_ERROR -ECONNREFUSED\n",
           (may__now() - t0) / 1e6);
    may__poll_del((int)c);
    closesocket(c);
}

static void test_listener_udp(SOCKET l)
{
    /* a listener is readable when a connection is pending */
    seen *sl = watch(tag_of(l));
    CHECK_EQ(may__poll_add((int)l, sl->tag), 0);
    may__poll_rearm((int)l, MAY__IO_R);
    quiet(sl, 20);
    SOCKET c = nb_socket(SOCK_STREAM);
    struct sockaddr_in to = loopback(port_of(l));
    connect(c, (struct sockaddr *)&to, sizeof to);
    CHECK(pump_until(sl, 0, 5000));
    CHECK(atomic_load(&sl->last) & MAY__IO_R);
    SOCKET a = accept(l, NULL, NULL);
    CHECK(a != INVALID_SOCKET);
    closesocket(a);
    closesocket(c);
    may__poll_del((int)l);

    /* UDP: a datagram makes the socket readable */
    SOCKET u = nb_socket(SOCK_DGRAM), v = nb_socket(SOCK_DGRAM);
    struct sockaddr_in ua = loopback(0);
    CHECK_EQ(bind(u, (struct sockaddr *)&ua, sizeof ua), 0);
    seen *su = watch(tag_of(u));
    CHECK_EQ(may__poll_add((int)u, su->tag), 0);
    may__poll_rearm((int)u, MAY__IO_R);
    quiet(su, 20);
    ua = loopback(port_of(u));
    CHECK_EQ(sendto(v, "dgram", 5, 0, (struct sockaddr *)&ua, sizeof ua), 5);
    CHECK(pump_until(su, 0, 5000));
    CHECK_EQ(atomic_load(&su->last), MAY__IO_R);
    char buf[3];
    /* longer than the buffer: filled, WSAEMSGSIZE (sock_win.h's n + 1) */
    CHECK_EQ(recvfrom(u, buf, sizeof buf, 0, NULL, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEMSGSIZE);
    CHECK(memcmp(buf, "dgr", 3) == 0);
    may__poll_del((int)u);
    closesocket(u);
    closesocket(v);
    printf("listener and udp: a pending connection and a datagram reported as R\n");
}

/* A fd number whose old poll is still in flight is registered again (the
 * socket was closed and Windows gave the handle value to a new one): the
 * old completion reaches neither tag, and the new registration polls. */
static void test_reuse(SOCKET l)
{
    SOCKET a, c;
    seen *sa, *sc;
    tcp_pair(l, &a, &c, &sa, &sc);
    may__poll_rearm((int)a, MAY__IO_R); /* in flight */
    seen *s2 = watch(tag_of(a));      /* the number's next life */
    CHECK_EQ(may__poll_add((int)a, s2->tag), 0);
    uint32_t calls = atomic_load(&sa->calls);
    CHECK_EQ(send(c, "z", 1, 0), 1);
    quiet(s2, 30); /* the old poll was cancelled, the new one asks nothing */
    CHECK_EQ(atomic_load(&sa->calls), calls);
    CHECK_EQ(may__iocp_inflight(), 0);
    may__poll_rearm((int)a, MAY__IO_R);
    CHECK(pump_until(s2, 0, 5000));
    CHECK_EQ(atomic_load(&s2->last), MAY__IO_R);
    CHECK_EQ(atomic_load(&sa->calls), calls);

    /* not sockets: a pipe's handle, a CRT-like small number */
    HANDLE rd, wr;
    CHECK(CreatePipe(&rd, &wr, NULL, 0));
    CHECK_EQ(may__poll_add((int)(uintptr_t)rd, 1), -ENOTSUP);
    CHECK_EQ(may__poll_add(3, 1), -ENOTSUP);
    may__poll_rearm(3, MAY__IO_R); /* nothing registered: nothing done */
    CloseHandle(rd);
    CloseHandle(wr);

    /* a new port while a poll is in flight: close drains it */
    may__poll_rearm((int)c, MAY__IO_R);
    CHECK_EQ(may__iocp_inflight(), 1);
    uint32_t g = may__poll_gen();
    may__poll_close();
    CHECK_EQ(may__iocp_inflight(), 0);
    CHECK_EQ(may__poll_init(), 0);
    CHECK_EQ(may__poll_gen(), g + 1);
    may__poll_rearm((int)c, MAY__IO_R); /* registered in the old port: ignored */
    CHECK_EQ(may__iocp_inflight(), 0);
    seen *s3 = watch(tag_of(c));
    CHECK_EQ(may__poll_add((int)c, s3->tag), 0);
    may__poll_rearm((int)c, MAY__IO_R);
    calls = atomic_load(&s3->calls);
    CHECK_EQ(send(a, "n", 1, 0), 1);
    CHECK(pump_until(s3, calls, 5000));
    CHECK_EQ(atomic_load(&s3->last), MAY__IO_R);
    may__poll_del((int)a);
    may__poll_del((int)c);
    closesocket(a);
    closesocket(c);
    CHECK_EQ(atomic_load(&unknown_tags), 0);
    printf("reuse: a stale completion dropped; non-sockets -ENOTSUP; a new port after close\n");
}

/* ---- part 2: threads -------------------------------------------------------- */

static _Atomic int stop;

static DWORD WINAPI poller(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        may__poll_wait(INT64_MAX);
    return 0;
}

typedef struct side {
    SOCKET s;
    seen *se;
    int rounds, first;
    int64_t waits;
} side;

/* io.c's read: the counter before the call; on EAGAIN rearm and wait for
 * it to move. */
static void read_one(side *d, char *ch)
{
    for (;;) {
        uint32_t s = atomic_load(&d->se->r);
        int n = recv(d->s, ch, 1, 0);
        if (n == 1)
            return;
        CHECK(n == SOCKET_ERROR && WSAGetLastError() == WSAEWOULDBLOCK);
        may__poll_rearm((int)d->s, MAY__IO_R);
        int64_t dl = may__now() + 5000 * MS;
        uint32_t calls;
        while (atomic_load(&d->se->r) == s) {
            CHECK(may__now() < dl); /* a lost wake-up */
            calls = atomic_load(&d->se->calls);
            if (atomic_load(&d->se->r) == s)
                WaitOnAddress((void *)&d->se->calls, &calls, sizeof calls, 100);
        }
        d->waits++;
    }
}

static DWORD WINAPI pinger(void *arg)
{
    side *d = arg;
    char ch = 'p';
    for (int i = 0; i < d->rounds; i++) {
        if (!d->first || i > 0)
            read_one(d, &ch);
        CHECK_EQ(send(d->s, &ch, 1, 0), 1);
    }
    if (!d->first)
        return 0;
    read_one(d, &ch);
    return 0;
}

static void test_threads(SOCKET l)
{
    SOCKET a, c;
    seen *sa, *sc;
    tcp_pair(l, &a, &c, &sa, &sc);
    HANDLE p = CreateThread(NULL, 0, poller, NULL, 0, NULL);
    side d1 = { .s = c, .se = sc, .rounds = 2000, .first = 1 };
    side d2 = { .s = a, .se = sa, .rounds = 2000 };
    int64_t t0 = may__now();
    HANDLE t1 = CreateThread(NULL, 0, pinger, &d1, 0, NULL);
    HANDLE t2 = CreateThread(NULL, 0, pinger, &d2, 0, NULL);
    WaitForSingleObject(t1, INFINITE);
    WaitForSingleObject(t2, INFINITE);
    int64_t el = may__now() - t0;
    atomic_store(&stop, 1);
    may__poll_wake();
    WaitForSingleObject(p, INFINITE);
    CloseHandle(p);
    CloseHandle(t1);
    CloseHandle(t2);
    printf("threads: 2000 round trips, %lld + %lld waits on a rearmed poll, mean %.0f us\n",
           (long long)d1.waits, (long long)d2.waits, el / 2000 / 1e3);
    may__poll_del((int)a);
    may__poll_del((int)c);
    closesocket(a);
    closesocket(c);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    test_errno_table();
    CHECK_EQ(may__poll_init(), 0);
    CHECK_EQ(may__poll_gen(), 1);
    printf("backend: %s\n", may__poll_name());
    test_deadline();
    test_wake();
    SOCKET l = listener();
    test_tcp(l);
    test_refused();
    test_listener_udp(l);
    test_reuse(l);
    test_threads(l);
    closesocket(l);
    may__poll_close();
    printf("win_iocp: all %d checks passed\n", checks);
    return 0;
}
