/*
 * io.c - the reactor: waiting for file descriptor readiness.
 *
 * The model.  A coroutine (or thread) that wants to read or write an fd
 * tries the system call first on a non-blocking fd; only on EAGAIN does it
 * park, on the fd's waiter list, until the poller reports the fd ready in
 * that direction.  There is no poller thread: the worker that sleeps in the
 * poller (sched.c go_idle) dispatches events itself, and busy workers take
 * a zero-timeout look every 61 scheduling rounds while anything waits on an
 * fd (sched.c poll_nonblocking).  The poller backend (poll_epoll.c) only
 * knows tags; everything about waiters lives here.
 *
 * Per-fd state.  A table indexed by fd: a fixed array of chunk pointers,
 * chunks of 1024 entries made on demand (a CAS publishes one) and never
 * freed, so an event or a late waiter can never touch freed memory, and no
 * reference counting is needed.  An entry holds:
 *
 *   lock    a mutex; a leaf lock: nothing else is taken while it is held
 *           (wake-ups happen after it is released)
 *   gen     bumped by may_fd_close; an operation remembers the gen it
 *           started with and gets -EBADF when it finds another one, and the
 *           epoll tag carries it too, so an event from before a close never
 *           reaches the fd's next user
 *   reg     poller generation the fd is registered in (0: not registered;
 *           may_shutdown makes a new epoll set, so a stale value means
 *           "register again")
 *   rseq    event counters per direction, bumped on every readiness event.
 *   wseq    They replace a "ready" flag: an operation reads the counter
 *           *before* its system call and, after EAGAIN, parks only if the
 *           counter is unchanged (checked under the lock, where events bump
 *           it).  An edge that arrives between the EAGAIN and the park is
 *           therefore never lost, and no flag needs clearing.
 *   waiters a wait queue (waitq.h) of io_waiter nodes that live on the
 *           waiters' stacks (a parked coroutine's stack stays put)
 *
 * Drained sockets.  A read from a stream socket that returns less than it
 * asked for has emptied the socket's queue as of that call; data arriving
 * afterwards makes a new edge, which bumps rseq.  So the read records
 * drain_key(gen, s), s being rseq as read *before* its recv, and the next
 * may_tcp_read that still finds that key parks at once instead of making a
 * recv that can only say EAGAIN (one system call less per request in a
 * request/response protocol; nginx does the same).  s must be the value
 * from before the recv: an edge dispatched during the recv may be for data
 * that arrived after the recv had taken what was there.  Only stream
 * sockets (SO_TYPE, asked once per fd and close generation): a datagram or
 * seqpacket read is short by design.  Never once an event has reported a
 * hang-up or error (EPOLLRDHUP, HUP, ERR) for this fd: a short read can
 * leave an EOF or a reset queued that no later edge announces.  Nor once
 * one has reported TCP urgent data (EPOLLPRI): recv stops at the urgent
 * mark, so a read can come back short with in-band data queued behind the
 * mark, whose edge has already come (the next read would wait for the
 * deadline).  Urgent data is rare (telnet, FTP's abort), so the connection
 * simply loses the shortcut for good, as after a hang-up; that costs the
 * common path nothing, where asking the socket whether a short read
 * stopped at the mark (SIOCATMARK) would cost a system call per short
 * read, the very call the shortcut saves.  (If the flagging event is
 * dispatched after the read's snapshot, rseq has moved and the key no
 * longer matches; if before, the flag is set; the flag is stored before
 * the rseq bump that publishes it.)  Not for MAY_NOWAIT reads or
 * past deadlines, which must see data whose edge is still queued in the
 * kernel.  may_fd_wait(fd, MAY_READ) takes the same shortcut (no poll),
 * so a server can give its buffers back while a connection is idle and
 * wait for the next request without an extra system call.
 *
 * Registration is once per fd (and per poller generation): edge-triggered
 * EPOLLIN|EPOLLOUT|EPOLLRDHUP, tag = gen << 32 | fd.  An fd the poller
 * refuses (a regular file: EPERM) is marked never-waits; its operations
 * just run.  Registration also sets O_NONBLOCK.
 *
 * Waking.  The poller's may__io_ready takes the lock, bumps the counters,
 * unlinks every waiter interested in the fired directions and claims it
 * with the directions that fired (the grant, waitq.c), releases the lock
 * and wakes them.  A waiter that times out or is cancelled ends its wait by
 * the protocol of every wait queue (waitq.c): under the lock it unlinks
 * itself if it is still queued and returns its error; if a waker claimed
 * it meanwhile it waits (ignoring cancellation) for that wake-up, because
 * the node is on its stack and the waker will touch it, and returns what
 * the waker gave it.  Every waiter of a direction is woken (not one): with
 * edge triggering a woken waiter that finds nothing must not swallow the
 * only edge another waiter needed.
 *
 * Closing.  may_fd_close bumps gen, unregisters, unlinks every waiter with
 * result -EBADF and wakes them, then closes the fd; may_fd_forget does the
 * same but leaves the fd open (for the interposed close of libmay_hook).  Closing an fd with
 * close(2) while it is registered and then reusing the number is not
 * supported (the entry would still say "registered"): use may_fd_close.
 *
 * Memory ordering.  Entries, chunk pointers and counters are published
 * with release and read with acquire; everything else is under the entry
 * lock or travels with the parker's acq_rel wake.
 *
 * Rejected: one-shot registration per wait (an epoll_ctl per EAGAIN);
 * level triggering (an event per wait per poll round for busy fds); a
 * per-fd allocation freed on close (events racing the free need epochs or
 * reference counts, and the table costs 112 bytes per fd number).
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "select.h"
#include "sock.h"
#include "waitq.h"

#define CHUNK_BITS 10
#define CHUNK_SIZE (1 << CHUNK_BITS)
#define NCHUNKS 4096 /* fds below 4M */

/* A waiter: its node's grant (waitq.h) is the fired MAY__IO_* bits, or
 * -EBADF; events are the MAY__IO_* it wants (select.h: select queues the
 * same nodes). */
typedef may__io_waiter io_waiter;

typedef struct fd_ent {
    pthread_mutex_t lock;
    _Atomic uint32_t gen;  /* bumped by may_fd_close */
    _Atomic uint32_t reg;  /* poller generation registered in, 0: none */
    _Atomic uint32_t rseq; /* input readiness events */
    _Atomic uint32_t wseq; /* output readiness events */
    _Atomic int nopoll;    /* the poller refused it: never wait (relaxed;
                              written under lock before reg is published) */
    _Atomic uint64_t drained; /* drain_key of the last short stream read */
    _Atomic uint64_t kind;    /* gen << 2 | 1 stream socket, 2 other, 0 ? */
    _Atomic uint32_t noshort; /* gen + 1 once an event reported a hang-up,
                                 an error or urgent data: a short read no
                                 longer means drained */
    may__waitq waiters;    /* io_waiter nodes, under lock */
} fd_ent;

static fd_ent *_Atomic chunks[NCHUNKS];
_Atomic int may__io_waiters;

/* errno, read afresh.  Not inlined, on purpose: glibc declares
 * __errno_location const, so within one function the compiler may compute
 * errno's address once and use it again after a context switch, when the
 * coroutine may be running on another thread, whose errno is elsewhere.
 * (clang did so in may_tcp_accept: after an EMFILE and its back-off sleep,
 * the retry read the old thread's errno, took a stale EAGAIN for its own and
 * waited for an edge that had already come, for ever.)  Every errno read in
 * this file and in udp_unix.c goes through here. */
MAY_NOINLINE int may__errno_now(void)
{
#ifdef _WIN32
    return -may__win_errno((DWORD)WSAGetLastError()); /* src/win/sock_win.h */
#else
    return errno;
#endif
}

static fd_ent *ent_get(int fd, int create)
{
    if (fd < 0 || fd >= NCHUNKS * CHUNK_SIZE)
        return NULL;
    _Atomic(fd_ent *) *slot = &chunks[fd >> CHUNK_BITS];
    /* acquire: pairs with the release CAS below (the mutexes are made) */
    fd_ent *c = atomic_load_explicit(slot, memory_order_acquire);
    if (!c) {
        if (!create)
            return NULL;
        fd_ent *n = calloc(CHUNK_SIZE, sizeof *n);
        if (!n)
            return NULL;
        for (int i = 0; i < CHUNK_SIZE; i++)
            pthread_mutex_init(&n[i].lock, NULL);
        if (atomic_compare_exchange_strong_explicit(slot, &c, n, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            c = n;
        } else {
            for (int i = 0; i < CHUNK_SIZE; i++)
                pthread_mutex_destroy(&n[i].lock);
            free(n);
        }
    }
    return &c[fd & (CHUNK_SIZE - 1)];
}

static uint64_t make_tag(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

/* may__io_waiters counts the nodes on every fd's queue (relaxed: a hint). */
static void io_waiters_add(long n)
{
    atomic_fetch_add_explicit(&may__io_waiters, (int)n, memory_order_relaxed);
}

void may__io_ready(uint64_t tag, uint32_t io)
{
    int fd = (int)(uint32_t)tag;
    fd_ent *e = ent_get(fd, 0);
    if (!e || !io)
        return;
    may__wakelist wl = { NULL };
    may__lock(&e->lock, MAY__RANK_OBJECT);
    if (atomic_load_explicit(&e->gen, memory_order_relaxed) != (uint32_t)(tag >> 32)) {
        may__unlock(&e->lock, MAY__RANK_OBJECT); /* an event from before a close */
        return;
    }
    if (io & (MAY__IO_HUP | MAY__IO_URG)) /* published by the rseq bump below */
        atomic_store_explicit(&e->noshort, (uint32_t)(tag >> 32) + 1, memory_order_relaxed);
    /* release: pairs with the acquire load before an operation's syscall */
    if (io & MAY__IO_R)
        atomic_fetch_add_explicit(&e->rseq, 1, memory_order_release);
    if (io & MAY__IO_W)
        atomic_fetch_add_explicit(&e->wseq, 1, memory_order_release);
    for (may__wnode *n = e->waiters.head, *next; n; n = next) {
        next = n->next;
        int fired = may__wnode_entry(n, io_waiter, wn)->events & (int)io;
        if (!fired)
            continue;
        may__waitq_unlink(&e->waiters, n);
        io_waiters_add(-1);
        if (may__wnode_take(n)) /* not a select's done elsewhere */
            may__wakelist_add(&wl, n, fired);
    }
    may__unlock(&e->lock, MAY__RANK_OBJECT);
    may__wakelist_wake(&wl);
}

/* Look fd up, registering it with the poller if it is not yet: 0 with *ep
 * and *genp set, or -errno. */
static int io_enter(int fd, fd_ent **ep, uint32_t *genp)
{
    if (fd < 0)
        return -EBADF;
    int r = may__ensure_started();
    if (r < 0)
        return r;
    fd_ent *e = ent_get(fd, 1);
    if (!e)
        return fd >= NCHUNKS * CHUNK_SIZE ? -EMFILE : -ENOMEM;
    uint32_t pg = may__poll_gen();
    /* Fast path: registered in this poller, and no close in between. */
    uint32_t g = atomic_load_explicit(&e->gen, memory_order_acquire);
    if (atomic_load_explicit(&e->reg, memory_order_acquire) == pg &&
        atomic_load_explicit(&e->gen, memory_order_acquire) == g) {
        *ep = e;
        *genp = g;
        return 0;
    }
    may__lock(&e->lock, MAY__RANK_OBJECT);
    g = atomic_load_explicit(&e->gen, memory_order_relaxed);
    if (atomic_load_explicit(&e->reg, memory_order_relaxed) != pg) {
        r = may__sock_nonblock(fd);
        if (r < 0)
            goto out_unlock;
        r = may__poll_add(fd, make_tag(fd, g));
        if (r < 0 && r != -EPERM) /* EPERM: regular files, always "ready" */
            goto out_unlock;
        atomic_store_explicit(&e->nopoll, r == -EPERM, memory_order_relaxed);
        atomic_store_explicit(&e->reg, pg, memory_order_release);
    }
    r = 0;
    *ep = e;
    *genp = g;
out_unlock:
    may__unlock(&e->lock, MAY__RANK_OBJECT);
    return r;
}

/* Park until an event in one of the directions in `events` newer than the
 * counters rs/ws (read before the failed syscall), the deadline, cancel or
 * close.  Returns the fired MAY__IO_* bits, -ETIMEDOUT, -ECANCELED, -EBADF. */
static int io_wait(int fd, fd_ent *e, uint32_t gen, int events, uint32_t rs, uint32_t ws,
                   int64_t deadline)
{
    may__parker *p = may__self_parker();
    static const char *const what[4] = { "fd", "fd read", "fd write", "fd read/write" };
    io_waiter w = { .events = events };
    int fired = 0;
    may__wnode_arm(&w.wn, p);
    may__lock(&e->lock, MAY__RANK_OBJECT);
    if (atomic_load_explicit(&e->gen, memory_order_relaxed) != gen) {
        may__unlock(&e->lock, MAY__RANK_OBJECT);
        return -EBADF;
    }
    if (atomic_load_explicit(&e->nopoll, memory_order_relaxed)) {
        may__unlock(&e->lock, MAY__RANK_OBJECT);
        return events;
    }
    if ((events & MAY__IO_R) && atomic_load_explicit(&e->rseq, memory_order_relaxed) != rs)
        fired |= MAY__IO_R;
    if ((events & MAY__IO_W) && atomic_load_explicit(&e->wseq, memory_order_relaxed) != ws)
        fired |= MAY__IO_W;
    if (fired || deadline == MAY_NOWAIT) {
        may__unlock(&e->lock, MAY__RANK_OBJECT);
        return fired ? fired : may__wait_nowait_error(p);
    }
    may__waitq_push(&e->waiters, &w.wn);
    io_waiters_add(1);
    may__unlock(&e->lock, MAY__RANK_OBJECT);

    may__wait_note(p, what[events & 3], (const void *)(intptr_t)fd);
    int r = may__wnode_park(&w.wn, deadline, 0);
    if (r == 0) /* relaxed: may__wnode_park read it with acquire */
        return atomic_load_explicit(&w.wn.state, memory_order_relaxed);
    may__lock(&e->lock, MAY__RANK_OBJECT);
    if (may__waitq_abandon_locked(&e->waiters, &w.wn)) {
        io_waiters_add(-1);
        may__unlock(&e->lock, MAY__RANK_OBJECT);
        return r;
    }
    may__unlock(&e->lock, MAY__RANK_OBJECT);
    /* A waker claimed us and will wake us: wait for it, the node is ours. */
    return may__wnode_park_claimed(&w.wn);
}

static int64_t neg_errno(void)
{
    return -(int64_t)may__errno_now();
}

/* ---- generic readiness --------------------------------------------------- */

static inline uint64_t drain_key(uint32_t gen, uint32_t s)
{
    return ((uint64_t)gen << 32 | s) + 1; /* 0: none */
}

/* Whether fd is a stream socket (asked once per close generation). */
static int is_stream(int fd, fd_ent *e, uint32_t gen)
{
    uint64_t k = atomic_load_explicit(&e->kind, memory_order_relaxed);
    if ((k >> 2) != gen || !(k & 3)) {
        int type = 0;
        socklen_t len = sizeof type;
        int stream = may__sock_getopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
                     type == SOCK_STREAM;
        k = (uint64_t)gen << 2 | (stream ? 1 : 2);
        atomic_store_explicit(&e->kind, k, memory_order_relaxed);
    }
    return (k & 3) == 1;
}

/* The drained-socket shortcut applies: the last short stream read saw the
 * socket empty after event s, none came since, no hang-up, error or urgent
 * data was reported, and the caller may wait.  (noshort is read relaxed:
 * the caller's acquire load of rseq, which gave s, pairs with the release
 * bump that followed its store in may__io_ready.) */
static int drained(fd_ent *e, uint32_t gen, uint32_t s, int64_t deadline)
{
    return atomic_load_explicit(&e->drained, memory_order_relaxed) == drain_key(gen, s) &&
           atomic_load_explicit(&e->noshort, memory_order_relaxed) != gen + 1 &&
           (deadline < 0 || (deadline != MAY_NOWAIT && deadline > may__now()));
}

int may_fd_wait(int fd, int events, int64_t deadline)
{
    if (!events || (events & ~(MAY_READ | MAY_WRITE)))
        return -EINVAL;
    fd_ent *e;
    uint32_t gen;
    int r = io_enter(fd, &e, &gen);
    if (r < 0)
        return r;
    for (;;) {
        /* acquire: pairs with the release bump in may__io_ready */
        uint32_t rs = atomic_load_explicit(&e->rseq, memory_order_acquire);
        uint32_t ws = atomic_load_explicit(&e->wseq, memory_order_acquire);
        if (events == MAY_READ && drained(e, gen, rs, deadline)) {
            may__poll_rearm(fd, events);
            return io_wait(fd, e, gen, events, rs, ws, deadline); /* no poll */
        }
        r = may__sock_poll(fd, events);
        if (r != 0)
            return r;
        may__poll_rearm(fd, events);
        r = io_wait(fd, e, gen, events, rs, ws, deadline);
        if (r < 0)
            return r;
    }
}

/* ---- select's side (src/select.c) ---------------------------------------- */

/* As may_fd_wait's first look, keeping what the reg step needs. */
int may__io_sel_poll(int fd, int events, may__io_sel *st)
{
    fd_ent *e;
    int r = io_enter(fd, &e, &st->gen);
    if (r < 0)
        return r;
    st->ent = e;
    st->w.events = events;
    /* acquire: pairs with the release bump in may__io_ready */
    st->rs = atomic_load_explicit(&e->rseq, memory_order_acquire);
    st->ws = atomic_load_explicit(&e->wseq, memory_order_acquire);
    if (atomic_load_explicit(&e->nopoll, memory_order_relaxed))
        return events; /* a regular file: always ready */
    r = may__sock_poll(fd, events);
    if (r == 0)
        may__poll_rearm(fd, events); /* the reg step waits next */
    return r;
}

/* Queue st's node unless an event came since the poll (then 1: ready). */
int may__io_sel_reg(may__io_sel *st)
{
    fd_ent *e = st->ent;
    int ready = 0;
    may__lock(&e->lock, MAY__RANK_OBJECT);
    if (atomic_load_explicit(&e->gen, memory_order_relaxed) != st->gen)
        ready = 1; /* closed: the poll says -EBADF */
    else if ((st->w.events & MAY__IO_R) &&
             atomic_load_explicit(&e->rseq, memory_order_relaxed) != st->rs)
        ready = 1;
    else if ((st->w.events & MAY__IO_W) &&
             atomic_load_explicit(&e->wseq, memory_order_relaxed) != st->ws)
        ready = 1;
    if (!ready) {
        may__waitq_push(&e->waiters, &st->w.wn);
        io_waiters_add(1);
    }
    may__unlock(&e->lock, MAY__RANK_OBJECT);
    return ready;
}

void may__io_sel_withdraw(may__io_sel *st)
{
    fd_ent *e = st->ent;
    may__lock(&e->lock, MAY__RANK_OBJECT);
    if (may__waitq_abandon_locked(&e->waiters, &st->w.wn))
        io_waiters_add(-1);
    may__unlock(&e->lock, MAY__RANK_OBJECT);
}

/* A ticket: the close generation (31 bits) and the direction's readiness
 * count, read with acquire as may_fd_wait reads them. */
int64_t may_fd_ticket(int fd, int events)
{
    if (events != MAY_READ && events != MAY_WRITE)
        return -EINVAL;
    fd_ent *e;
    uint32_t gen;
    int r = io_enter(fd, &e, &gen);
    if (r < 0)
        return r;
    uint32_t s = atomic_load_explicit(events == MAY_READ ? &e->rseq : &e->wseq,
                                      memory_order_acquire);
    return (int64_t)(gen & 0x7fffffffu) << 32 | s;
}

int may_fd_wait_ticket(int fd, int events, int64_t ticket, int64_t deadline)
{
    if ((events != MAY_READ && events != MAY_WRITE) || ticket < 0)
        return -EINVAL;
    fd_ent *e;
    uint32_t gen;
    int r = io_enter(fd, &e, &gen);
    if (r < 0)
        return r;
    if ((uint32_t)(ticket >> 32) != (gen & 0x7fffffffu))
        return -EBADF; /* closed since (and the number reused) */
    uint32_t s = (uint32_t)ticket;
    uint32_t rs = events == MAY_READ ? s : atomic_load_explicit(&e->rseq, memory_order_acquire);
    uint32_t ws = events == MAY_WRITE ? s : atomic_load_explicit(&e->wseq, memory_order_acquire);
    may__poll_rearm(fd, events);
    r = io_wait(fd, e, gen, events, rs, ws, deadline);
    return r < 0 ? r : (r & events ? r & events : events);
}

/* Bump gen, unregister, and claim every waiter with -EBADF into wl (woken
 * by the caller after the close, so none retries on the old fd). */
static void fd_forget(int fd, may__wakelist *wl)
{
    fd_ent *e = ent_get(fd, 0);
    if (e) {
        may__lock(&e->lock, MAY__RANK_OBJECT);
        atomic_fetch_add_explicit(&e->gen, 1, memory_order_release);
        if (atomic_load_explicit(&e->reg, memory_order_relaxed) &&
            atomic_load_explicit(&e->reg, memory_order_relaxed) == may__poll_gen() &&
            !atomic_load_explicit(&e->nopoll, memory_order_relaxed))
            may__poll_del(fd);
        atomic_store_explicit(&e->reg, 0, memory_order_release);
        atomic_store_explicit(&e->nopoll, 0, memory_order_relaxed);
        io_waiters_add(-(long)e->waiters.len);
        may__waitq_claim_all(&e->waiters, wl, -EBADF);
        may__unlock(&e->lock, MAY__RANK_OBJECT);
    }
}

int may_fd_forget(int fd)
{
    if (fd < 0)
        return -EBADF;
    /* Never registered (or forgotten already): nothing waits on it, as a
     * wait registers first (io_enter).  acquire: pairs with the release
     * store of reg in io_enter. */
    fd_ent *e = ent_get(fd, 0);
    if (!e || atomic_load_explicit(&e->reg, memory_order_acquire) == 0)
        return 0;
    may__wakelist wl = { NULL };
    fd_forget(fd, &wl);
    may__wakelist_wake(&wl);
    return 0;
}

int may_fd_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    may__wakelist wl = { NULL };
    fd_forget(fd, &wl);
    /* close(2) of a socket with SO_LINGER set waits for the peer: a call
     * known to block, so the worker is handed off if it lasts (errno read
     * before the bracket's end, which may switch) */
    may_blocking_begin();
    int r = may__sock_close(fd) == 0 || may__errno_now() == EINTR ? 0 : -may__errno_now();
    may_blocking_end();
    may__wakelist_wake(&wl);
    return r;
}

/* One operation: run fn until it does not say EAGAIN, parking in between.
 * dir is MAY__IO_R or MAY__IO_W. */
typedef ssize_t (*io_fn)(int fd, void *ctx);

/* want > 0 (reads only): the call asks for want bytes and consumes what it
 * gets, so the drained-socket shortcut applies (see the essay). */
static ssize_t io_do_ex(int fd, int dir, int64_t deadline, io_fn fn, void *ctx, size_t want)
{
    fd_ent *e;
    uint32_t gen;
    int r = io_enter(fd, &e, &gen);
    if (r < 0)
        return r;
    _Atomic uint32_t *seq = dir == MAY__IO_R ? &e->rseq : &e->wseq;
    for (;;) {
        /* acquire: pairs with the release bump in may__io_ready */
        uint32_t s = atomic_load_explicit(seq, memory_order_acquire);
        if (want && drained(e, gen, s, deadline)) {
            may__poll_rearm(fd, dir);
            r = io_wait(fd, e, gen, dir, s, s, deadline);
            if (r < 0)
                return r;
            continue; /* an event came: the counter moved on */
        }
        ssize_t n = fn(fd, ctx);
        if (want && n > 0 && (size_t)n < want && is_stream(fd, e, gen))
            atomic_store_explicit(&e->drained, drain_key(gen, s), memory_order_relaxed);
        if (n >= 0)
            return n;
        if (n == -EINTR)
            continue;
        if (n != -EAGAIN && n != -EWOULDBLOCK)
            return n;
        if (atomic_load_explicit(&e->nopoll, memory_order_relaxed))
            return n;
        may__poll_rearm(fd, dir);
        r = io_wait(fd, e, gen, dir, s, s, deadline);
        if (r < 0)
            return r;
    }
}

static ssize_t io_do(int fd, int dir, int64_t deadline, io_fn fn, void *ctx)
{
    return io_do_ex(fd, dir, deadline, fn, ctx, 0);
}

/* For the other socket kinds (src/udp_unix.c): see internal.h. */
ssize_t may__io_do(int fd, int dir, int64_t deadline, may__io_fn fn, void *ctx)
{
    return io_do(fd, dir, deadline, fn, ctx);
}

int may__io_register(int fd)
{
    fd_ent *e;
    uint32_t gen;
    return io_enter(fd, &e, &gen);
}

typedef struct io_args {
    void *buf;
    size_t len;
    const struct iovec *iov;
    int iovcnt;
    int flags;
} io_args;

static ssize_t fn_read(int fd, void *c)
{
    io_args *a = c;
    ssize_t n = may__sock_read(fd, a->buf, a->len);
    return n >= 0 ? n : neg_errno();
}

static ssize_t fn_write(int fd, void *c)
{
    io_args *a = c;
    ssize_t n = may__sock_write(fd, a->buf, a->len);
    return n >= 0 ? n : neg_errno();
}

static ssize_t fn_recv(int fd, void *c)
{
    io_args *a = c;
    ssize_t n = may__sock_recv(fd, a->buf, a->len, a->flags);
    return n >= 0 ? n : neg_errno();
}

static ssize_t fn_send(int fd, void *c)
{
    io_args *a = c;
    ssize_t n = may__sock_send(fd, a->buf, a->len, MSG_NOSIGNAL | a->flags);
    return n >= 0 ? n : neg_errno();
}

static ssize_t fn_readv(int fd, void *c)
{
    io_args *a = c;
    ssize_t n = may__sock_readv(fd, a->iov, a->iovcnt);
    return n >= 0 ? n : neg_errno();
}

static ssize_t fn_writev(int fd, void *c)
{
    io_args *a = c;
    ssize_t n = may__sock_writev(fd, a->iov, a->iovcnt);
    return n >= 0 ? n : neg_errno();
}

#ifdef _WIN32
/* Not a socket (io_enter says -ENOTSUP): a pipe, file or console handle
 * (0, 1, 2: the standard handles), read or written on the offload pool
 * (src/win/process_win.c). */
ssize_t may__win_fd_rw(int fd, void *buf, size_t n, int wr, int64_t deadline);
#define IO_NOT_SOCK(r, fd, buf, n, wr, dl) ((r) == -ENOTSUP ? may__win_fd_rw(fd, buf, n, wr, dl) : (r))
#else
#define IO_NOT_SOCK(r, fd, buf, n, wr, dl) (r)
#endif

ssize_t may_read(int fd, void *buf, size_t n, int64_t deadline)
{
    io_args a = { .buf = buf, .len = n };
    ssize_t r = io_do(fd, MAY__IO_R, deadline, fn_read, &a);
    return IO_NOT_SOCK(r, fd, buf, n, 0, deadline);
}

ssize_t may_write(int fd, const void *buf, size_t n, int64_t deadline)
{
    io_args a = { .buf = (void *)buf, .len = n };
    ssize_t r = io_do(fd, MAY__IO_W, deadline, fn_write, &a);
    return IO_NOT_SOCK(r, fd, (void *)buf, n, 1, deadline);
}

/* ---- TCP ----------------------------------------------------------------- */

static int listen_on(const struct sockaddr *sa, socklen_t len, int backlog, int flags)
{
    int fd = may__sock_open(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -may__errno_now();
    int one = 1, zero = 0;
    if (may__sock_reuse(fd, flags & MAY_TCP_REUSEPORT) < 0) /* SO_REUSEADDR, SO_REUSEPORT */
        goto out_close;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        /* the unspecified address listens on IPv4 too (dual stack) */
        int v6only = !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
        may__sock_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? &one : &zero, sizeof one);
    }
    if (bind(fd, sa, len) < 0 || listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
        goto out_close;
    return fd;
out_close:;
    int r = -may__errno_now();
    may__sock_close(fd);
    return r;
}

/* Addresses come from may__host_port_addrs (src/resolve.c): the one parser
 * and the one meaning of "localhost" and ":port" for TCP and UDP alike. */
int may_tcp_listen(const char *host_port, int backlog, int flags)
{
    if (flags & ~MAY_TCP_REUSEPORT)
        return -EINVAL;
    may__addrs a;
    int r = may__host_port_addrs(host_port, AF_UNSPEC, SOCK_STREAM, true, &a, MAY_FOREVER);
    if (r < 0)
        return r;
    /* The next address only when this one's family is unavailable: a
     * listener on "localhost" whose 127.0.0.1 port is taken must fail, not
     * quietly listen on ::1 alone. */
    for (int i = 0; i < a.n; i++) {
        r = listen_on((struct sockaddr *)&a.addr[i], a.len[i], backlog, flags);
        if (r != -EAFNOSUPPORT && r != -EADDRNOTAVAIL)
            break;
    }
    return r;
}

#define ACCEPT_BACKOFF_MIN 1000000LL    /* 1 ms */
#define ACCEPT_BACKOFF_MAX 100000000LL  /* 100 ms */

int may_tcp_accept(int lfd, struct sockaddr_storage *peer, int64_t deadline)
{
    fd_ent *e;
    uint32_t gen;
    int r = io_enter(lfd, &e, &gen);
    if (r < 0)
        return r;
    int64_t backoff = ACCEPT_BACKOFF_MIN;
    for (;;) {
        uint32_t s = atomic_load_explicit(&e->rseq, memory_order_acquire);
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = may__sock_accept(lfd, (struct sockaddr *)(peer ? peer : &ss), &len);
        if (fd >= 0)
            return fd;
        int err = may__errno_now();
        switch (err) {
        case EINTR:
        case ECONNABORTED:
            continue;
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            may__poll_rearm(lfd, MAY__IO_R);
            r = io_wait(lfd, e, gen, MAY__IO_R, s, s, deadline);
            if (r < 0)
                return r;
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM: {
            /* Out of descriptors: the pending connection stays queued and
             * the fd stays readable, so waiting for readiness would spin.
             * Sleep with a growing backoff until the deadline instead. */
            int64_t now = may__now();
            if (deadline == MAY_NOWAIT || (deadline > 0 && now >= deadline))
                return -err;
            int64_t until = now + backoff;
            if (deadline > 0 && until > deadline)
                until = deadline;
            if (may_sleep_until(until) == -ECANCELED)
                return -ECANCELED;
            backoff = backoff * 2 > ACCEPT_BACKOFF_MAX ? ACCEPT_BACKOFF_MAX : backoff * 2;
            continue;
        }
        default:
            return -err;
        }
    }
}

static int connect_one(const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int fd = may__sock_open(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -may__errno_now();
    int r;
    while ((r = may__sock_connect(fd, sa, len)) < 0 && may__errno_now() == EINTR)
        ;
    if (r < 0 && may__errno_now() != EINPROGRESS) {
        r = -may__errno_now();
        goto out_close;
    }
    if (r < 0) {
        r = may_fd_wait(fd, MAY_WRITE, deadline);
        if (r < 0)
            goto out_close;
        int err = may__sock_error(fd);
        if (err < 0)
            err = may__errno_now();
        if (err) {
            r = -err;
            goto out_close;
        }
    }
    return fd;
out_close:
    may_fd_close(fd);
    return r;
}

int may_tcp_connect(const char *host_port, int64_t deadline)
{
    may__addrs a;
    int r = may__host_port_addrs(host_port, AF_UNSPEC, SOCK_STREAM, false, &a, deadline);
    if (r < 0)
        return r;
    /* Each address in turn ("localhost": 127.0.0.1, then ::1 for a server
     * listening on IPv6 loopback only). */
    for (int i = 0; i < a.n; i++) {
        r = connect_one((struct sockaddr *)&a.addr[i], a.len[i], deadline);
        if (r >= 0 || r == -ETIMEDOUT || r == -ECANCELED)
            break;
    }
    return r;
}

ssize_t may_tcp_read(int fd, void *buf, size_t n, int64_t deadline)
{
    io_args a = { .buf = buf, .len = n };
    return io_do_ex(fd, MAY__IO_R, deadline, fn_recv, &a, n); /* drained shortcut */
}

ssize_t may_tcp_write(int fd, const void *buf, size_t n, int64_t deadline)
{
    io_args a = { .buf = (void *)buf, .len = n };
    return io_do(fd, MAY__IO_W, deadline, fn_send, &a);
}

ssize_t may_tcp_peek(int fd, void *buf, size_t n, int64_t deadline)
{
    io_args a = { .buf = buf, .len = n, .flags = MSG_PEEK };
    return io_do(fd, MAY__IO_R, deadline, fn_recv, &a);
}

ssize_t may_tcp_read_full(int fd, void *buf, size_t n, int64_t deadline)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = may_tcp_read(fd, (char *)buf + done, n - done, deadline);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

ssize_t may_tcp_write_all(int fd, const void *buf, size_t n, int64_t deadline)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = may_tcp_write(fd, (const char *)buf + done, n - done, deadline);
        if (r < 0)
            return r;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

ssize_t may_tcp_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    io_args a = { .iov = iov, .iovcnt = iovcnt };
    return io_do(fd, MAY__IO_R, deadline, fn_readv, &a);
}

ssize_t may_tcp_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    io_args a = { .iov = iov, .iovcnt = iovcnt };
    return io_do(fd, MAY__IO_W, deadline, fn_writev, &a);
}

int may_tcp_shutdown(int fd, int how)
{
    return shutdown(fd, how) == 0 ? 0 : -may__errno_now();
}

int may_tcp_close(int fd)
{
    return may_fd_close(fd);
}

int may_tcp_set_nodelay(int fd, bool on)
{
    int v = on;
    return may__sock_setopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) == 0 ? 0 : -may__errno_now();
}

int may_tcp_set_keepalive(int fd, bool on, int idle_s)
{
    int v = on;
    if (may__sock_setopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v) < 0)
        return -may__errno_now();
    if (on && idle_s > 0 && may__sock_keepidle(fd, idle_s) < 0) /* TCP_KEEPIDLE, _KEEPINTVL */
        return -may__errno_now();
    return 0;
}

int may_sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t n)
{
    char host[INET6_ADDRSTRLEN];
    int port, len;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        port = ntohs(s4->sin_port);
        len = snprintf(buf, n, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        port = ntohs(s6->sin6_port);
        len = snprintf(buf, n, "[%s]:%d", host, port);
    } else {
        return -EAFNOSUPPORT;
    }
    return len < 0 || (size_t)len >= n ? -ENOSPC : len;
}

int may_tcp_local_addr(int fd, char *buf, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -may__errno_now();
    return may_sockaddr_str(&ss, buf, n);
}

int may_tcp_peer_addr(int fd, char *buf, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return -may__errno_now();
    return may_sockaddr_str(&ss, buf, n);
}

int may_tcp_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -may__errno_now();
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}
