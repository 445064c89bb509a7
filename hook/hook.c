/*
 * hook.c - libmay_hook: blocking libc calls made cooperative inside
 * libmay coroutines (docs/HOOKS.md is the user's side of this essay).
 *
 * Why.  Third-party libraries (hiredis, libpq, libcurl, the MariaDB client)
 * call read, poll or nanosleep and block their thread; in a coroutine that
 * thread is a worker, and every coroutine queued on it waits too.  Linked
 * before libc (-lmay_hook, or LD_PRELOAD), this library defines those
 * symbols, so the dynamic linker binds the libraries' calls here; each hook
 * decides whether to make the plain call or to wait in libmay's reactor.
 *
 * The rule.  Only in a coroutine (may_self() != NULL).  On a plain thread,
 * in a worker's scheduler context, before the runtime starts and after it
 * stops, every call is the plain libc call, found once with
 * dlsym(RTLD_NEXT) (in a constructor; lazily if a call comes earlier).  In
 * a coroutine:
 *   - an fd the application made non-blocking passes straight through;
 *   - a socket or pipe it left blocking is switched to O_NONBLOCK
 *     underneath, on the first hooked call that touches it, and remembered
 *     so (fdtab.c): fcntl(F_GETFL) and ioctl(FIONBIO) keep showing and
 *     changing the application's view, and a call that says EAGAIN parks
 *     the coroutine on may_fd_wait until the fd is ready, the socket's
 *     SO_RCVTIMEO / SO_SNDTIMEO deadline (then EAGAIN, as the kernel says),
 *     cancellation (ECANCELED) or a close (EBADF).  Writes go on until every
 *     byte is written, as a blocking write does;
 *   - anything else (regular files, terminals, eventfds, the standard
 *     descriptors 0..2 when they are pipes, which other processes share) is
 *     never switched: the call runs between may_blocking_begin/end, so the
 *     runtime can hand the worker's queue to another thread.
 * A plain thread that uses a socket the hook switched gets blocking
 * behaviour back the plain way: on EAGAIN the hook waits in poll(2).
 *
 * Waiting.  Every wait is bracketed with may_lock_thread/may_unlock_thread,
 * so a hooked call that parks resumes on the OS thread it was called on:
 * the caller's &errno (which the compiler may have computed before the
 * call) is still its errno.  So is every may_blocking_begin/end pair: the
 * end gives the worker's place back, moving the coroutine, when a hand-off
 * took it meanwhile; locked, it stays on its thread.  poll/select on one socket or pipe wait on that
 * fd; on several, on a private epoll set made for the call (one
 * epoll_create1 and an epoll_ctl per fd: a call that has to wait costs
 * microseconds anyway).  An application's own epoll_wait waits for its
 * epoll fd to be readable, then asks epoll_wait with timeout 0.
 *
 * Recursion.  libmay itself calls read, poll, fcntl, close... and with this
 * library those calls come here.  They stay correct and cheap: libmay's fds
 * are O_NONBLOCK from the start (SOCK_NONBLOCK, or its own fcntl, which this
 * library records as the application's wish), so its calls pass through;
 * its poller, timer and futex paths run in scheduler context or on plain
 * threads (may_self() == NULL).  The one loop: may_fd_wait, called by a
 * hook for an fd the hook switched, asks fcntl(F_GETFL) and would see the
 * application's view (blocking) and set O_NONBLOCK "for the application".
 * So the hook notes the waiting coroutine in a thread-local (hook_inner)
 * while it is inside libmay, and fcntl from that coroutine then passes
 * straight through.  The note is only read synchronously, before libmay
 * parks; the thread lock makes it the same thread's when it is cleared.
 *
 * Cost.  The fast path of a call that need not wait is may_self() (a call
 * and a thread-pointer load), two loads in the fd table and the plain
 * call; bench/hook_cost.c measures it.
 *
 * Signals.  The fast path takes no lock and allocates nothing (the table
 * grows with mmap), so a handler may call the hooks.  But a handler that
 * interrupted a coroutine runs with may_self() == that coroutine, and a
 * call of its that has to wait must not park: the coroutine would park
 * with the handler's frame on its stack and the thread's signal mask
 * changed (the signal blocked for every coroutine the worker runs
 * meanwhile), and a nested wait could deadlock on state the interrupted
 * code holds.  So every handler is installed through a trampoline:
 * sigaction, signal, bsd_signal, ssignal, sysv_signal, sigset (glibc's
 * signal & kin call its internal sigaction, not the public symbol) give
 * the kernel one of four trampolines ([SA_SIGINFO or not][parity]), which
 * counts the handlers running on the thread (initial-exec TLS: no
 * allocation, async-signal-safe; errno untouched) around the call of the
 * application's handler, taken from a table of NSIG slots.  Installs
 * alternate the parity, so the slot of a trampoline the kernel may be
 * running is never rewritten, and the kernel's (handler, flags, mask)
 * still change atomically together.  A query translates a trampoline back
 * to the application's handler, so oldact and signal()'s result are the
 * application's own; whatever the kernel has that is not a trampoline
 * (SIG_DFL after SA_RESETHAND, a handler installed before the hooks were
 * loaded or by a raw system call) is returned as it is and keeps working.
 * The slow path of every hook that would park (io waits, poll, select,
 * epoll_wait, the sleeps, accept/connect, getaddrinfo's offload, and the
 * may_blocking_begin bracket, which may switch) checks the count first
 * (in_handler) and makes the plain call instead: the thread blocks, as it
 * would without the hooks; a switched fd waits in poll(2) as on a plain
 * thread.  The fast path never reads it.  A handler left by siglongjmp
 * leaves the count up: in_handler forgets handlers whose trampoline frame
 * the caller is no longer below (or that interrupted another coroutine).
 * close() of an fd registered with the reactor takes its entry lock
 * (may_fd_forget): do not close, from a handler, an fd in use.
 *
 * Locks: none of its own.  Memory ordering: see fdtab.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "may.h"
#include "fdtab.h"

#define HOOK_API __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- the real functions ------------------------------------------------- */

#define HOOK_REALS(X)                                                                    \
    X(read, ssize_t (*)(int, void *, size_t))                                           \
    X(readv, ssize_t (*)(int, const struct iovec *, int))                               \
    X(write, ssize_t (*)(int, const void *, size_t))                                    \
    X(writev, ssize_t (*)(int, const struct iovec *, int))                              \
    X(recv, ssize_t (*)(int, void *, size_t, int))                                      \
    X(recvfrom, ssize_t (*)(int, void *, size_t, int, struct sockaddr *, socklen_t *))  \
    X(recvmsg, ssize_t (*)(int, struct msghdr *, int))                                  \
    X(send, ssize_t (*)(int, const void *, size_t, int))                                \
    X(sendto, ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *,      \
                          socklen_t))                                                   \
    X(sendmsg, ssize_t (*)(int, const struct msghdr *, int))                            \
    X(accept, int (*)(int, struct sockaddr *, socklen_t *))                             \
    X(accept4, int (*)(int, struct sockaddr *, socklen_t *, int))                       \
    X(connect, int (*)(int, const struct sockaddr *, socklen_t))                        \
    X(poll, int (*)(struct pollfd *, nfds_t, int))                                      \
    X(ppoll, int (*)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *)) \
    X(select, int (*)(int, fd_set *, fd_set *, fd_set *, struct timeval *))             \
    X(epoll_wait, int (*)(int, struct epoll_event *, int, int))                         \
    X(epoll_pwait, int (*)(int, struct epoll_event *, int, int, const sigset_t *))      \
    X(sleep, unsigned (*)(unsigned))                                                    \
    X(usleep, int (*)(useconds_t))                                                      \
    X(nanosleep, int (*)(const struct timespec *, struct timespec *))                   \
    X(clock_nanosleep, int (*)(clockid_t, int, const struct timespec *, struct timespec *)) \
    X(close, int (*)(int))                                                              \
    X(fcntl, int (*)(int, int, ...))                                                    \
    X(fcntl64, int (*)(int, int, ...))                                                  \
    X(ioctl, int (*)(int, unsigned long, ...))                                          \
    X(setsockopt, int (*)(int, int, int, const void *, socklen_t))                      \
    X(socket, int (*)(int, int, int))                                                   \
    X(socketpair, int (*)(int, int, int, int *))                                        \
    X(pipe, int (*)(int *))                                                             \
    X(pipe2, int (*)(int *, int))                                                       \
    X(dup, int (*)(int))                                                                \
    X(dup2, int (*)(int, int))                                                          \
    X(dup3, int (*)(int, int, int))                                                     \
    X(getaddrinfo, int (*)(const char *, const char *, const struct addrinfo *,         \
                           struct addrinfo **))                                         \
    X(gethostbyname2_r, int (*)(const char *, int, struct hostent *, char *, size_t,    \
                                struct hostent **, int *))                             \
    X(pread, ssize_t (*)(int, void *, size_t, off_t))                                   \
    X(pread64, ssize_t (*)(int, void *, size_t, off64_t))                               \
    X(pwrite, ssize_t (*)(int, const void *, size_t, off_t))                            \
    X(pwrite64, ssize_t (*)(int, const void *, size_t, off64_t))                        \
    X(preadv, ssize_t (*)(int, const struct iovec *, int, off_t))                       \
    X(preadv64, ssize_t (*)(int, const struct iovec *, int, off64_t))                   \
    X(pwritev, ssize_t (*)(int, const struct iovec *, int, off_t))                      \
    X(pwritev64, ssize_t (*)(int, const struct iovec *, int, off64_t))                  \
    X(fsync, int (*)(int))                                                              \
    X(fdatasync, int (*)(int))                                                          \
    X(sigaction, int (*)(int, const struct sigaction *, struct sigaction *))            \
    X(__sigaction, int (*)(int, const struct sigaction *, struct sigaction *))          \
    X(signal, __sighandler_t (*)(int, __sighandler_t))                                  \
    X(bsd_signal, __sighandler_t (*)(int, __sighandler_t))                              \
    X(ssignal, __sighandler_t (*)(int, __sighandler_t))                                 \
    X(sysv_signal, __sighandler_t (*)(int, __sighandler_t))                             \
    X(__sysv_signal, __sighandler_t (*)(int, __sighandler_t))                           \
    X(sigset, __sighandler_t (*)(int, __sighandler_t))

#define X(name, type) static __typeof__(type) real_##name;
HOOK_REALS(X)
#undef X

static int no_lock; /* MAY_HOOK_NO_LOCK_THREAD=1: the errno test's negative control */
static int no_sigtramp; /* MAY_HOOK_NO_SIGTRAMP=1: the signal test's negative control */
static void sig_fork_child(void);

/* Idempotent; racing callers store the same values.  dlsym takes the
 * loader's lock and may allocate: this runs from the constructor, or from
 * the first hooked call when it comes before the constructor (another
 * library's constructor), never later. */
static void resolve(void)
{
#define X(name, type) __atomic_store_n(&real_##name, (type)dlsym(RTLD_NEXT, #name), __ATOMIC_RELAXED);
    HOOK_REALS(X)
#undef X
}

#define REAL(name)                                                              \
    (likely(__atomic_load_n(&real_##name, __ATOMIC_RELAXED) != NULL) ? real_##name \
                                                                     : (resolve(), real_##name))

__attribute__((constructor(101))) static void hook_init(void)
{
    resolve();
    const char *s = getenv("MAY_HOOK_NO_LOCK_THREAD");
    no_lock = s && s[0] == '1';
    s = getenv("MAY_HOOK_NO_SIGTRAMP");
    no_sigtramp = s && s[0] == '1';
    pthread_atfork(NULL, NULL, sig_fork_child);
}

/* The coroutine inside libmay on behalf of a hook, on this thread (see the
 * essay, "Recursion"). */
static __thread may_co_t *hook_inner __attribute__((tls_model("initial-exec")));

static inline bool from_hook_inner(void)
{
    return unlikely(hook_inner != NULL) && hook_inner == may_self();
}

/* ---- signal handlers ---------------------------------------------------- */

/* Handlers running on this thread (see the essay, "Signals").  The
 * trampolines count them, and note for the innermost SIG_FRAMES the
 * trampoline's frame and the coroutine it interrupted, so that a handler
 * left by siglongjmp is found out (in_handler_slow).  Initial-exec: a
 * trampoline may run at any instruction, and must not allocate. */
#define SIG_FRAMES 8
typedef struct sig_tls {
    int depth;
    uintptr_t frame[SIG_FRAMES];
    may_co_t *co[SIG_FRAMES];
} sig_tls;
static __thread sig_tls hsig __attribute__((tls_model("initial-exec")));

static bool stack_has(const stack_t *ss, uintptr_t a)
{
    return !(ss->ss_flags & SS_DISABLE) && a >= (uintptr_t)ss->ss_sp &&
           a - (uintptr_t)ss->ss_sp < ss->ss_size;
}

/* depth > 0: is the caller, in coroutine co, still inside a handler?  A
 * recorded handler is, if it interrupted co and the caller's frame lies
 * below its trampoline's on the same stack (the alternate signal stack or
 * not); one that is not was left by siglongjmp, and is forgotten.  Beyond
 * SIG_FRAMES nested handlers: inside. */
static __attribute__((noinline)) bool in_handler_slow(may_co_t *co)
{
    int saved = errno;
    uintptr_t cur = (uintptr_t)__builtin_frame_address(0);
    stack_t ss;
    bool alt = sigaltstack(NULL, &ss) == 0;
    bool cur_alt = alt && stack_has(&ss, cur);
    int d = hsig.depth;
    bool in = false;
    for (; d > 0; d--) {
        if (d > SIG_FRAMES) {
            in = true;
            break;
        }
        uintptr_t f = hsig.frame[d - 1];
        if (hsig.co[d - 1] == co && (alt && stack_has(&ss, f)) == cur_alt && cur < f) {
            in = true;
            break;
        }
    }
    hsig.depth = d;
    errno = saved;
    return in;
}

/* Whether a hooked call of coroutine co is made by a signal handler that
 * interrupted it: then it must not park (it would park the coroutine with
 * the handler's frame on its stack and the thread's signal mask changed),
 * but block the thread as the plain call does.  Slow paths only. */
static inline bool in_handler(may_co_t *co)
{
    return unlikely(hsig.depth != 0) && in_handler_slow(co);
}

typedef void (*sig_plain_fn)(int);
typedef void (*sig_info_fn)(int, siginfo_t *, void *);

/* The application's handlers, by signal, kind (0 plain, 1 SA_SIGINFO) and
 * parity.  The kernel runs trampoline [kind][parity], which calls the
 * handler in that slot.  Installs alternate the parity, so a slot is never
 * rewritten while the kernel may run its trampoline: the kernel's (handler,
 * flags, mask) change together, and a signal delivered during an install
 * runs either the old handler with the old flags or the new with the new.
 * Written under sig_lock (release), read by the trampolines (acquire). */
static _Atomic uintptr_t sig_fn[NSIG][2][2];
static unsigned char sig_par[NSIG]; /* the parity of the last install, under sig_lock */
static atomic_flag sig_lock = ATOMIC_FLAG_INIT;

static inline int sig_enter(uintptr_t frame, may_co_t **inner)
{
    int d = hsig.depth;
    if (d < SIG_FRAMES) {
        hsig.frame[d] = frame;
        hsig.co[d] = may_self();
    }
    /* the interrupted code's note is not the handler's (restored below) */
    *inner = hook_inner;
    hook_inner = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    hsig.depth = d + 1;
    atomic_signal_fence(memory_order_seq_cst);
    return d;
}

static inline void sig_leave(int d, may_co_t *inner)
{
    atomic_signal_fence(memory_order_seq_cst);
    hsig.depth = d;
    hook_inner = inner;
}

/* Neither touches errno: the handler sees and leaves it as without them. */
#define SIG_TRAMPS(P)                                                                     \
    static void tramp_plain##P(int sig)                                                   \
    {                                                                                     \
        may_co_t *inner;                                                                  \
        int d = sig_enter((uintptr_t)__builtin_frame_address(0), &inner);                \
        uintptr_t f = atomic_load_explicit(&sig_fn[sig][0][P], memory_order_acquire);    \
        if (f)                                                                            \
            ((sig_plain_fn)f)(sig);                                                       \
        sig_leave(d, inner);                                                              \
    }                                                                                     \
    static void tramp_info##P(int sig, siginfo_t *si, void *uc)                           \
    {                                                                                     \
        may_co_t *inner;                                                                  \
        int d = sig_enter((uintptr_t)__builtin_frame_address(0), &inner);                \
        uintptr_t f = atomic_load_explicit(&sig_fn[sig][1][P], memory_order_acquire);    \
        if (f)                                                                            \
            ((sig_info_fn)f)(sig, si, uc);                                                \
        sig_leave(d, inner);                                                              \
    }
SIG_TRAMPS(0)
SIG_TRAMPS(1)
#undef SIG_TRAMPS

static uintptr_t tramp_of(int kind, int par)
{
    return kind ? (par ? (uintptr_t)tramp_info1 : (uintptr_t)tramp_info0)
                : (par ? (uintptr_t)tramp_plain1 : (uintptr_t)tramp_plain0);
}

/* A handler of the application's: not SIG_DFL, SIG_IGN, SIG_HOLD, SIG_ERR
 * nor a trampoline (handed back by a raw query and reinstalled). */
static bool user_handler(uintptr_t h)
{
    if (h == (uintptr_t)SIG_DFL || h == (uintptr_t)SIG_IGN || h == (uintptr_t)SIG_HOLD ||
        h == (uintptr_t)SIG_ERR)
        return false;
    for (int k = 0; k < 2; k++)
        for (int p = 0; p < 2; p++)
            if (h == tramp_of(k, p))
                return false;
    return true;
}

/* The kernel's handler h as the application knows it: a trampoline is the
 * handler that was in its slot (prev, read before the install). */
static uintptr_t untramp(uintptr_t h, uintptr_t prev[2][2])
{
    for (int k = 0; k < 2; k++)
        for (int p = 0; p < 2; p++)
            if (h == tramp_of(k, p))
                return prev[k][p];
    return h;
}

/* Installs are serialised, with every signal blocked (a handler of this
 * thread cannot come in while it holds the lock; one of another thread
 * spins until the holder, which runs on, lets go). */
static void sig_lock_take(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, old);
    while (atomic_flag_test_and_set_explicit(&sig_lock, memory_order_acquire))
        sched_yield();
}

static void sig_lock_drop(const sigset_t *old)
{
    atomic_flag_clear_explicit(&sig_lock, memory_order_release);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void sig_fork_child(void)
{
    atomic_flag_clear_explicit(&sig_lock, memory_order_relaxed);
}

/* The common part of every install: handler h (SIG_DFL... or the
 * application's, of kind) goes to the kernel through call(sig, tramp),
 * which returns the kernel's previous handler or SIG_ERR (*prevh). */
typedef struct sig_install {
    int sig, kind;   /* kind -1: not the application's handler (passed as is) */
    uintptr_t h;     /* the application's handler */
    uintptr_t prev[2][2];
    int par;
} sig_install;

static uintptr_t sig_begin(sig_install *si, sigset_t *old)
{
    sig_lock_take(old);
    for (int k = 0; k < 2; k++)
        for (int p = 0; p < 2; p++)
            si->prev[k][p] = atomic_load_explicit(&sig_fn[si->sig][k][p], memory_order_relaxed);
    if (si->kind < 0)
        return si->h;
    si->par = sig_par[si->sig] ^ 1;
    atomic_store_explicit(&sig_fn[si->sig][si->kind][si->par], si->h, memory_order_release);
    return tramp_of(si->kind, si->par);
}

static void sig_end(sig_install *si, bool ok, const sigset_t *old)
{
    if (si->kind >= 0) {
        if (ok)
            sig_par[si->sig] = (unsigned char)si->par;
        else
            atomic_store_explicit(&sig_fn[si->sig][si->kind][si->par],
                                  si->prev[si->kind][si->par], memory_order_relaxed);
    }
    sig_lock_drop(old);
}

static int sigaction_common(int (*rf)(int, const struct sigaction *, struct sigaction *), int sig,
                            const struct sigaction *act, struct sigaction *oact)
{
    if (no_sigtramp || sig <= 0 || sig >= NSIG)
        return rf(sig, act, oact);
    struct sigaction a;
    sig_install si = { .sig = sig, .kind = -1 };
    if (act) {
        a = *act; /* before the lock: a bad pointer faults here */
        si.h = (uintptr_t)a.sa_handler; /* the union: sa_sigaction too */
        if (user_handler(si.h))
            si.kind = (a.sa_flags & SA_SIGINFO) ? 1 : 0;
    }
    sigset_t old;
    uintptr_t h = sig_begin(&si, &old);
    if (act)
        a.sa_handler = (__sighandler_t)h;
    int r = rf(sig, act ? &a : NULL, oact);
    int err = errno;
    sig_end(&si, r == 0, &old);
    if (r == 0 && oact)
        oact->sa_handler = (__sighandler_t)untramp((uintptr_t)oact->sa_handler, si.prev);
    errno = err;
    return r;
}

HOOK_API int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    return sigaction_common(REAL(sigaction), sig, act, oact);
}

int __sigaction(int sig, const struct sigaction *act, struct sigaction *oact);
HOOK_API int __sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    return sigaction_common(REAL(__sigaction), sig, act, oact);
}

/* signal and its kin: libc's own, called with the trampoline, so the
 * flags are libc's (SA_RESTART, or siginterrupt's; SA_RESETHAND for
 * sysv_signal). */
static __sighandler_t signal_common(__sighandler_t (*rf)(int, __sighandler_t), int sig,
                                    __sighandler_t h)
{
    if (no_sigtramp || sig <= 0 || sig >= NSIG)
        return rf(sig, h);
    sig_install si = { .sig = sig, .kind = user_handler((uintptr_t)h) ? 0 : -1,
                       .h = (uintptr_t)h };
    sigset_t old;
    __sighandler_t r = rf(sig, (__sighandler_t)sig_begin(&si, &old));
    int err = errno;
    sig_end(&si, r != SIG_ERR, &old);
    if (r != SIG_ERR)
        r = (__sighandler_t)untramp((uintptr_t)r, si.prev);
    errno = err;
    return r;
}

#define SIGNAL_HOOK(name)                                                                 \
    HOOK_API __sighandler_t name(int sig, __sighandler_t h)                               \
    {                                                                                     \
        return signal_common(REAL(name), sig, h);                                        \
    }
SIGNAL_HOOK(signal)
SIGNAL_HOOK(bsd_signal)
SIGNAL_HOOK(ssignal)
SIGNAL_HOOK(sysv_signal)
SIGNAL_HOOK(__sysv_signal)
#undef SIGNAL_HOOK

/* sigset changes the thread's mask, which the install lock holds blocked:
 * done here as glibc does it, with the install through sigaction. */
HOOK_API __sighandler_t sigset(int sig, __sighandler_t disp)
{
    if (no_sigtramp)
        return REAL(sigset)(sig, disp);
    struct sigaction act, oact;
    sigset_t set, oset;
    if (sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    sigemptyset(&set);
    sigaddset(&set, sig);
    if (disp == SIG_HOLD) {
        if (pthread_sigmask(SIG_BLOCK, &set, &oset) != 0 ||
            sigaction_common(REAL(sigaction), sig, NULL, &oact) < 0)
            return SIG_ERR;
        return sigismember(&oset, sig) ? SIG_HOLD : oact.sa_handler;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    if (sigaction_common(REAL(sigaction), sig, &act, &oact) < 0 ||
        pthread_sigmask(SIG_UNBLOCK, &set, &oset) != 0)
        return SIG_ERR;
    return sigismember(&oset, sig) ? SIG_HOLD : oact.sa_handler;
}

/* ---- fd state ----------------------------------------------------------- */

static inline uint32_t st_load(hook_fd *e)
{
    return e ? atomic_load_explicit(&e->st, memory_order_relaxed) : 0;
}

static int64_t tv_ns(const struct timeval *tv)
{
    return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

/* First look at fd from a coroutine: what it is, what the application
 * asked for, and, for a blocking socket or pipe, O_NONBLOCK underneath.
 * errno is left as it was. */
static uint32_t classify(int fd, hook_fd *e)
{
    int saved = errno;
    uint32_t s = 0;
    struct stat sb;
    int fl;
    if (fstat(fd, &sb) < 0 || (fl = REAL(fcntl)(fd, F_GETFL)) < 0)
        goto out;
    s = HFD_KNOWN | ((fl & O_NONBLOCK) ? HFD_APPNB : 0);
    if (S_ISSOCK(sb.st_mode))
        s |= HFD_POLL | HFD_SOCK;
    else if (S_ISFIFO(sb.st_mode) && fd > 2)
        s |= HFD_POLL;
    else
        s |= HFD_FILE;
    if (s & HFD_SOCK) {
        struct timeval tv;
        socklen_t len = sizeof tv;
        if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0)
            atomic_store_explicit(&e->rcvtimeo, tv_ns(&tv), memory_order_relaxed);
        len = sizeof tv;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0)
            atomic_store_explicit(&e->sndtimeo, tv_ns(&tv), memory_order_relaxed);
    }
    if ((s & HFD_POLL) && !(fl & O_NONBLOCK)) {
        if (REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK) == 0)
            s |= HFD_OURS;
        else
            s = (s & ~(uint32_t)(HFD_POLL | HFD_SOCK)) | HFD_FILE;
    }
    uint32_t z = 0;
    if (!atomic_compare_exchange_strong_explicit(&e->st, &z, s, memory_order_relaxed,
                                                 memory_order_relaxed))
        s = z; /* another thread classified it first: same facts */
out:
    errno = saved;
    return s;
}

/* The state of fd for a coroutine's call (classifying it on first use);
 * 0: unknown (pass through). */
static inline uint32_t fd_state(int fd, hook_fd **ep)
{
    hook_fd *e = may__hook_fd(fd, 1);
    *ep = e;
    if (unlikely(!e))
        return 0;
    uint32_t st = atomic_load_explicit(&e->st, memory_order_relaxed);
    return likely(st != 0) ? st : classify(fd, e);
}

static inline bool coop(uint32_t st)
{
    return (st & HFD_COOP_MASK) == HFD_COOP;
}

static inline bool bracketed(uint32_t st)
{
    return (st & (HFD_FILE | HFD_APPNB)) == HFD_FILE;
}

/* A new descriptor (socket, accept, pipe...): forget what an earlier fd of
 * that number was.  nb: the application asked for O_NONBLOCK at creation. */
static void fd_fresh(int fd, bool nb, uint32_t kind)
{
    hook_fd *e = may__hook_fd(fd, 1);
    if (!e)
        return;
    atomic_store_explicit(&e->rcvtimeo, 0, memory_order_relaxed);
    atomic_store_explicit(&e->sndtimeo, 0, memory_order_relaxed);
    atomic_store_explicit(&e->st, nb ? (HFD_KNOWN | HFD_APPNB | kind) : 0, memory_order_relaxed);
}

/* newfd shares oldfd's open file description: the same facts. */
static void fd_copy(int oldfd, int newfd)
{
    hook_fd *o = may__hook_fd(oldfd, 0), *n = may__hook_fd(newfd, 1);
    if (!n)
        return;
    int64_t rt = o ? atomic_load_explicit(&o->rcvtimeo, memory_order_relaxed) : 0;
    int64_t wt = o ? atomic_load_explicit(&o->sndtimeo, memory_order_relaxed) : 0;
    atomic_store_explicit(&n->rcvtimeo, rt, memory_order_relaxed);
    atomic_store_explicit(&n->sndtimeo, wt, memory_order_relaxed);
    atomic_store_explicit(&n->st, st_load(o) & ~(uint32_t)HFD_REG, memory_order_relaxed);
}

static void fd_gone(int fd)
{
    hook_fd *e = may__hook_fd(fd, 0);
    if (e) {
        atomic_store_explicit(&e->st, 0, memory_order_relaxed);
        atomic_store_explicit(&e->rcvtimeo, 0, memory_order_relaxed);
        atomic_store_explicit(&e->sndtimeo, 0, memory_order_relaxed);
    }
    /* Waiters in libmay's reactor (a hook's or the application's own
     * may_read) wake with EBADF; no lock unless it was registered. */
    may_fd_forget(fd);
}

/* ---- waiting ------------------------------------------------------------ */

static inline void lock_thread(void)
{
    if (!no_lock)
        may_lock_thread();
}

static inline void unlock_thread(void)
{
    if (!no_lock)
        may_unlock_thread();
}

static int64_t deadline_after(int64_t ns)
{
    return ns > 0 ? may_deadline_in(ns) : MAY_FOREVER;
}

/* A coroutine waits for fd: >0 ready (a hint), -ETIMEDOUT, -ECANCELED,
 * -EBADF (closed meanwhile).  With a ticket (>= 0, taken before the call
 * that said EAGAIN), for readiness newer than it, without a poll(2). */
static int co_wait(int fd, int events, int64_t dl, int64_t ticket)
{
    lock_thread();
    hook_inner = may_self();
    int r = ticket >= 0 ? may_fd_wait_ticket(fd, events, ticket, dl)
                        : may_fd_wait(fd, events, dl);
    hook_inner = NULL;
    unlock_thread();
    return r;
}

/* Whether fd is a byte stream (asked once: SO_TYPE for a socket). */
static bool stream_fd(int fd, hook_fd *e)
{
    uint32_t st = st_load(e);
    if (!(st & HFD_TYPED)) {
        bool stream = true;
        if (st & HFD_SOCK) {
            int saved = errno, type = 0;
            socklen_t l = sizeof type;
            stream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_STREAM;
            errno = saved;
        }
        st = atomic_fetch_or_explicit(&e->st, HFD_TYPED | (stream ? HFD_STREAM : 0),
                                      memory_order_relaxed) |
             HFD_TYPED | (stream ? HFD_STREAM : 0);
    }
    return st & HFD_STREAM;
}

/* After a read of want bytes with ticket tk that returned r: note whether
 * it emptied the stream (libmay's may_read keeps the same note). */
static inline void note_read(int fd, hook_fd *e, int64_t tk, ssize_t r, size_t want)
{
    int64_t d = tk >= 0 && r > 0 && (size_t)r < want && stream_fd(fd, e) ? tk + 1 : 0;
    if (d != atomic_load_explicit(&e->drained, memory_order_relaxed))
        atomic_store_explicit(&e->drained, d, memory_order_relaxed);
}

/* The readiness ticket of a cooperative fd (state st) before a read
 * (libmay's registration may call fcntl: hook_inner cuts that loop).  -1
 * if none.  The first one registers fd, under the fd's reactor lock, which
 * the code a signal handler interrupted may hold: a handler takes none
 * then (HFD_REG: registered, the ticket is lock-free). */
static inline int64_t ticket_dir(may_co_t *co, int fd, int dir)
{
    int saved = errno;
    hook_inner = co;
    int64_t t = may_fd_ticket(fd, dir);
    hook_inner = NULL;
    errno = saved;
    return t;
}

static inline int64_t ticket_of(may_co_t *co, int fd)
{
    return ticket_dir(co, fd, MAY_READ);
}

static __attribute__((noinline, cold)) int64_t first_ticket(may_co_t *co, int fd, hook_fd *e)
{
    if (in_handler(co))
        return -1;
    int64_t t = ticket_of(co, fd);
    if (t >= 0)
        atomic_fetch_or_explicit(&e->st, HFD_REG, memory_order_relaxed);
    return t;
}

static inline int64_t read_ticket(may_co_t *co, int fd, hook_fd *e, uint32_t st)
{
    if (unlikely(!(st & HFD_REG)))
        return first_ticket(co, fd, e);
    return ticket_of(co, fd);
}

static int co_sleep_until(int64_t dl)
{
    lock_thread();
    int r = may_sleep_until(dl);
    unlock_thread();
    return r;
}

static int ms_until(int64_t dl)
{
    if (dl < 0)
        return -1;
    int64_t left = dl - may_now();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* A plain thread waits for fd in poll(2): 0 ready, -ETIMEDOUT, -EINTR. */
static int plain_wait(int fd, int events, int64_t dl)
{
    struct pollfd p = { .fd = fd,
                        .events = (short)(((events & MAY_READ) ? POLLIN : 0) |
                                          ((events & MAY_WRITE) ? POLLOUT : 0)) };
    for (;;) {
        int ms = ms_until(dl);
        if (ms == 0)
            return -ETIMEDOUT;
        int r = REAL(poll)(&p, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0)
            return -errno;
    }
}

static int wait_fd(may_co_t *co, hook_fd *e, int fd, int events, int64_t dl, int64_t ticket)
{
    if (!co)
        return plain_wait(fd, events, dl);
    if (!(st_load(e) & HFD_REG))
        atomic_fetch_or_explicit(&e->st, HFD_REG, memory_order_relaxed);
    int r = co_wait(fd, events, dl, ticket);
    return r > 0 ? 0 : r;
}

/* errno for a failed wait in a read or write: the kernel's EAGAIN for an
 * SO_*TIMEO timeout. */
static int wait_errno(int w)
{
    return w == -ETIMEDOUT ? EAGAIN : -w;
}

/* ---- reads and writes --------------------------------------------------- */

/* One operation, repeated by the slow path: call(fd, op, done) makes the
 * system call for what is left after done bytes. */
typedef struct io_op io_op;
struct io_op {
    ssize_t (*call)(int fd, io_op *op, size_t done);
    void *buf;
    size_t len;
    int flags;
    const struct sockaddr *addr;
    socklen_t alen;
    struct sockaddr *from;
    socklen_t *fromlen;
    const struct iovec *iov;
    int iovcnt;
    const struct msghdr *msg;
    int dir;  /* MAY_READ or MAY_WRITE */
    bool all; /* keep going until len bytes (blocking write, MSG_WAITALL) */
};

/* Bytes of an iovec array. */
static size_t iov_len(const struct iovec *iov, int n)
{
    size_t s = 0;
    for (int i = 0; i < n; i++)
        s += iov[i].iov_len;
    return s;
}

/* The rest of a vectored write after done bytes: its next segment. */
static bool iov_rest(const struct iovec *iov, int n, size_t done, const void **p, size_t *len)
{
    for (int i = 0; i < n; i++) {
        if (done < iov[i].iov_len) {
            *p = (const char *)iov[i].iov_base + done;
            *len = iov[i].iov_len - done;
            return true;
        }
        done -= iov[i].iov_len;
    }
    return false;
}

static ssize_t call_read(int fd, io_op *op, size_t done)
{
    (void)done;
    return REAL(read)(fd, op->buf, op->len);
}

static ssize_t call_readv(int fd, io_op *op, size_t done)
{
    (void)done;
    return REAL(readv)(fd, op->iov, op->iovcnt);
}

static ssize_t call_recvfrom(int fd, io_op *op, size_t done)
{
    socklen_t l0 = op->fromlen ? *op->fromlen : 0;
    ssize_t r = REAL(recvfrom)(fd, (char *)op->buf + done, op->len - done,
                               op->flags & ~MSG_WAITALL, op->from, op->fromlen);
    if (r < 0 && op->fromlen)
        *op->fromlen = l0;
    return r;
}

static ssize_t call_recvmsg(int fd, io_op *op, size_t done)
{
    (void)done;
    return REAL(recvmsg)(fd, (struct msghdr *)op->msg, op->flags);
}

static ssize_t call_write(int fd, io_op *op, size_t done)
{
    return REAL(write)(fd, (const char *)op->buf + done, op->len - done);
}

static ssize_t call_writev(int fd, io_op *op, size_t done)
{
    if (!done)
        return REAL(writev)(fd, op->iov, op->iovcnt);
    const void *p;
    size_t n;
    if (!iov_rest(op->iov, op->iovcnt, done, &p, &n))
        return 0;
    return REAL(write)(fd, p, n);
}

static ssize_t call_sendto(int fd, io_op *op, size_t done)
{
    return REAL(sendto)(fd, (const char *)op->buf + done, op->len - done, op->flags, op->addr,
                        op->alen);
}

static ssize_t call_sendmsg(int fd, io_op *op, size_t done)
{
    if (!done)
        return REAL(sendmsg)(fd, op->msg, op->flags);
    const void *p;
    size_t n;
    if (!iov_rest(op->msg->msg_iov, (int)op->msg->msg_iovlen, done, &p, &n))
        return 0;
    return REAL(send)(fd, p, n, op->flags);
}

/* After the first call said EAGAIN (done == 0), or wrote done bytes of an
 * op that must finish: wait and call again, as the blocking call would.
 * co NULL: a plain thread (poll(2)); e may then be NULL. */
static ssize_t io_slow(may_co_t *co, int fd, hook_fd *e, io_op *op, size_t done, int64_t ticket)
{
    if (co && in_handler(co))
        co = NULL; /* a signal handler's call blocks the thread, as the plain call */
    if (!co) {
        e = may__hook_fd(fd, 0);
        if (!coop(st_load(e))) {
            if (done)
                return (ssize_t)done;
            errno = EAGAIN;
            return -1;
        }
    }
    int64_t tmo = atomic_load_explicit(op->dir == MAY_READ ? &e->rcvtimeo : &e->sndtimeo,
                                       memory_order_relaxed);
    int64_t dl = deadline_after(tmo);
    bool wait = done == 0;
    for (;;) {
        if (wait) {
            int w = wait_fd(co, e, fd, op->dir, dl, ticket);
            ticket = -1; /* good for the first wait only */
            if (w < 0) {
                if (done)
                    return (ssize_t)done;
                errno = wait_errno(w);
                return -1;
            }
        }
        bool shortcut = co && op->dir == MAY_READ && op->len && !op->flags && !op->all;
        int64_t tk = shortcut ? read_ticket(co, fd, e, st_load(e)) : -1;
        ssize_t r = op->call(fd, op, done);
        if (shortcut)
            note_read(fd, e, tk, r, op->len);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait = true;
                ticket = tk;
                continue;
            }
            return done ? (ssize_t)done : -1;
        }
        done += (size_t)r;
        if (!op->all || r == 0 || done >= op->len)
            return (ssize_t)done;
        wait = false;
    }
}

/* The body of every read and write hook.  CALL is the plain call; ALL
 * whether it must transfer LEN bytes (a blocking write); op is filled only
 * on the slow path. */
#define HOOK_IO(fd, CALL, OPINIT, ALL, LEN, TICKET, RLEN)                               \
    do {                                                                                \
        may_co_t *co_ = may_self();                                                     \
        if (!co_) {                                                                     \
            ssize_t r_ = CALL;                                                          \
            if (likely(r_ >= 0 || errno != EAGAIN) ||                                   \
                likely(!coop(st_load(may__hook_fd(fd, 0)))))                            \
                return r_;                                                              \
            io_op op_ = OPINIT;                                                         \
            return io_slow(NULL, fd, NULL, &op_, 0, -1);                                \
        }                                                                               \
        hook_fd *e_;                                                                    \
        uint32_t st_ = fd_state(fd, &e_);                                               \
        if (likely(!coop(st_))) {                                                       \
            if (likely(!bracketed(st_)) || in_handler(co_))                             \
                return CALL;                                                            \
            lock_thread(); /* the errno rule, whatever the bracket does */             \
            may_blocking_begin();                                                       \
            ssize_t r_ = CALL;                                                          \
            int err_ = errno;                                                           \
            may_blocking_end();                                                         \
            unlock_thread();                                                            \
            errno = err_;                                                               \
            return r_;                                                                  \
        }                                                                               \
        int64_t tk_ = TICKET;                                                           \
        if ((RLEN) && tk_ >= 0 &&                                                       \
            tk_ + 1 == atomic_load_explicit(&e_->drained, memory_order_relaxed)) {      \
            /* emptied by the last read, nothing came since: wait first */             \
            io_op op_ = OPINIT;                                                         \
            return io_slow(co_, fd, e_, &op_, 0, tk_);                                  \
        }                                                                               \
        ssize_t r_ = CALL;                                                              \
        if (RLEN)                                                                       \
            note_read(fd, e_, tk_, r_, (RLEN));                                         \
        if (r_ >= 0) {                                                                  \
            if (likely(!(ALL) || r_ == 0 || (size_t)r_ >= (LEN)))                       \
                return r_;                                                              \
            io_op op_ = OPINIT;                                                         \
            return io_slow(co_, fd, e_, &op_, (size_t)r_, -1);                          \
        }                                                                               \
        if (errno != EAGAIN)                                                            \
            return r_;                                                                  \
        io_op op_ = OPINIT;                                                             \
        return io_slow(co_, fd, e_, &op_, 0, tk_);                                      \
    } while (0)

/* Whether a MSG_WAITALL receive must gather (stream sockets only). */
static bool waitall(int fd, int flags)
{
    if (!(flags & MSG_WAITALL))
        return false;
    int type = 0;
    socklen_t l = sizeof type;
    int saved = errno;
    bool s = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_STREAM;
    errno = saved;
    return s;
}

HOOK_API ssize_t read(int fd, void *buf, size_t n)
{
    HOOK_IO(fd, REAL(read)(fd, buf, n),
            ((io_op){ .call = call_read, .buf = buf, .len = n, .dir = MAY_READ }), false, SIZE_MAX, read_ticket(co_, fd, e_, st_), n);
}

HOOK_API ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    HOOK_IO(fd, REAL(readv)(fd, iov, cnt),
            ((io_op){ .call = call_readv, .iov = iov, .iovcnt = cnt, .dir = MAY_READ }), false, SIZE_MAX, read_ticket(co_, fd, e_, st_), 0);
}

HOOK_API ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                          socklen_t *fromlen)
{
    if (flags & MSG_DONTWAIT)
        return REAL(recvfrom)(fd, buf, n, flags, from, fromlen);
    HOOK_IO(fd, REAL(recvfrom)(fd, buf, n, flags, from, fromlen),
            ((io_op){ .call = call_recvfrom, .buf = buf, .len = n, .flags = flags, .from = from,
                      .fromlen = fromlen, .dir = MAY_READ, .all = waitall(fd, flags) }),
            waitall(fd, flags), n, read_ticket(co_, fd, e_, st_), flags ? 0 : n);
}

HOOK_API ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (flags & MSG_DONTWAIT)
        return REAL(recv)(fd, buf, n, flags);
    HOOK_IO(fd, REAL(recv)(fd, buf, n, flags),
            ((io_op){ .call = call_recvfrom, .buf = buf, .len = n, .flags = flags,
                      .dir = MAY_READ, .all = waitall(fd, flags) }),
            waitall(fd, flags), n, read_ticket(co_, fd, e_, st_), flags ? 0 : n);
}

HOOK_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (flags & MSG_DONTWAIT)
        return REAL(recvmsg)(fd, msg, flags);
    HOOK_IO(fd, REAL(recvmsg)(fd, msg, flags),
            ((io_op){ .call = call_recvmsg, .msg = msg, .flags = flags, .dir = MAY_READ }),
            false, SIZE_MAX, read_ticket(co_, fd, e_, st_), 0);
}

HOOK_API ssize_t write(int fd, const void *buf, size_t n)
{
    HOOK_IO(fd, REAL(write)(fd, buf, n),
            ((io_op){ .call = call_write, .buf = (void *)buf, .len = n, .dir = MAY_WRITE,
                      .all = true }),
            true, n, -1, 0);
}

HOOK_API ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    HOOK_IO(fd, REAL(writev)(fd, iov, cnt),
            ((io_op){ .call = call_writev, .iov = iov, .iovcnt = cnt,
                      .len = iov_len(iov, cnt), .dir = MAY_WRITE, .all = true }),
            true, iov_len(iov, cnt), -1, 0);
}

HOOK_API ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
                        socklen_t tolen)
{
    if (flags & MSG_DONTWAIT)
        return REAL(sendto)(fd, buf, n, flags, to, tolen);
    HOOK_IO(fd, REAL(sendto)(fd, buf, n, flags, to, tolen),
            ((io_op){ .call = call_sendto, .buf = (void *)buf, .len = n, .flags = flags,
                      .addr = to, .alen = tolen, .dir = MAY_WRITE, .all = true }),
            true, n, -1, 0);
}

HOOK_API ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (flags & MSG_DONTWAIT)
        return REAL(send)(fd, buf, n, flags);
    HOOK_IO(fd, REAL(send)(fd, buf, n, flags),
            ((io_op){ .call = call_sendto, .buf = (void *)buf, .len = n, .flags = flags,
                      .dir = MAY_WRITE, .all = true }),
            true, n, -1, 0);
}

HOOK_API ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (flags & MSG_DONTWAIT)
        return REAL(sendmsg)(fd, msg, flags);
    HOOK_IO(fd, REAL(sendmsg)(fd, msg, flags),
            ((io_op){ .call = call_sendmsg, .msg = msg, .flags = flags,
                      .len = iov_len(msg->msg_iov, (int)msg->msg_iovlen), .dir = MAY_WRITE,
                      .all = true }),
            true, iov_len(msg->msg_iov, (int)msg->msg_iovlen), -1, 0);
}

/* _FORTIFY_SOURCE turns read/recv/poll with a known buffer size into these
 * (Debian builds its libraries so). */
extern void __chk_fail(void) __attribute__((noreturn));

HOOK_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return read(fd, buf, n);
}

HOOK_API ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen)
        __chk_fail();
    return recv(fd, buf, n, flags);
}

HOOK_API ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                                struct sockaddr *from, socklen_t *fromlen)
{
    if (n > buflen)
        __chk_fail();
    return recvfrom(fd, buf, n, flags, from, fromlen);
}

/* ---- positioned I/O and syncs: files ------------------------------------ */

/* pread, pwrite, preadv, pwritev, fsync, fdatasync: on anything but a
 * socket or pipe (which these refuse at once, ESPIPE or EINVAL), the call
 * may block in the kernel (a disk, NFS): in a coroutine it runs between
 * may_blocking_begin/end, as read and write of files do.  Otherwise, and
 * in a signal handler, the plain call. */
#define HOOK_FILE(fd, CALL)                                                               \
    do {                                                                                  \
        may_co_t *co_ = may_self();                                                       \
        if (!co_)                                                                         \
            return CALL;                                                                  \
        hook_fd *e_;                                                                      \
        if (likely(!(fd_state(fd, &e_) & HFD_FILE)) || in_handler(co_))                 \
            return CALL;                                                                  \
        lock_thread(); /* the errno rule, whatever the bracket does */             \
        may_blocking_begin();                                                             \
        __typeof__(CALL) r_ = CALL;                                                       \
        int err_ = errno;                                                                 \
        may_blocking_end();                                                               \
        unlock_thread();                                                                  \
        errno = err_;                                                                     \
        return r_;                                                                        \
    } while (0)

HOOK_API ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    HOOK_FILE(fd, REAL(pread)(fd, buf, n, off));
}

HOOK_API ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    HOOK_FILE(fd, REAL(pread64)(fd, buf, n, off));
}

HOOK_API ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    HOOK_FILE(fd, REAL(pwrite)(fd, buf, n, off));
}

HOOK_API ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    HOOK_FILE(fd, REAL(pwrite64)(fd, buf, n, off));
}

HOOK_API ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    HOOK_FILE(fd, REAL(preadv)(fd, iov, cnt, off));
}

HOOK_API ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    HOOK_FILE(fd, REAL(preadv64)(fd, iov, cnt, off));
}

HOOK_API ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    HOOK_FILE(fd, REAL(pwritev)(fd, iov, cnt, off));
}

HOOK_API ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    HOOK_FILE(fd, REAL(pwritev64)(fd, iov, cnt, off));
}

HOOK_API int fsync(int fd)
{
    HOOK_FILE(fd, REAL(fsync)(fd));
}

HOOK_API int fdatasync(int fd)
{
    HOOK_FILE(fd, REAL(fdatasync)(fd));
}

HOOK_API ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return pread(fd, buf, n, off);
}

HOOK_API ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return pread64(fd, buf, n, off);
}

/* ---- accept and connect ------------------------------------------------- */

static int accept_common(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    may_co_t *co = may_self();
    hook_fd *e = NULL;
    if (co)
        fd_state(fd, &e);
    socklen_t l0 = len ? *len : 0;
    int64_t dl = 0;
    for (;;) {
        int r = REAL(accept4)(fd, sa, len, flags);
        if (r >= 0) {
            fd_fresh(r, flags & SOCK_NONBLOCK, HFD_POLL | HFD_SOCK);
            return r;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (co && in_handler(co))
            co = NULL;
        if (!co)
            e = may__hook_fd(fd, 0);
        if (!coop(st_load(e)))
            return -1;
        if (!dl)
            dl = deadline_after(atomic_load_explicit(&e->rcvtimeo, memory_order_relaxed));
        int w = wait_fd(co, e, fd, MAY_READ, dl, -1);
        if (w < 0) {
            errno = wait_errno(w);
            return -1;
        }
        if (len)
            *len = l0;
    }
}

HOOK_API int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    return accept_common(fd, sa, len, 0);
}

HOOK_API int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    return accept_common(fd, sa, len, flags);
}

HOOK_API int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    may_co_t *co = may_self();
    hook_fd *e = NULL;
    uint32_t st = co ? fd_state(fd, &e) : 0;
    int r = REAL(connect)(fd, sa, len);
    if (r == 0 || (errno != EINPROGRESS && errno != EAGAIN))
        return r;
    if (co && in_handler(co))
        co = NULL;
    if (!co) {
        e = may__hook_fd(fd, 0);
        st = st_load(e);
    }
    if (!coop(st))
        return r;
    int64_t dl = deadline_after(atomic_load_explicit(&e->sndtimeo, memory_order_relaxed));
    /* A Unix socket whose listener's backlog is full says EAGAIN and sends
     * no wake-up: retry with a sleep from 1 ms doubling to 64 ms. */
    for (int64_t backoff = 1000000; errno == EAGAIN;) {
        int64_t until = may_deadline_in(backoff);
        if (dl >= 0 && until > dl)
            until = dl;
        if (co) {
            if (co_sleep_until(until) < 0) {
                errno = ECANCELED;
                return -1;
            }
        } else {
            struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)backoff };
            REAL(nanosleep)(&ts, NULL);
        }
        if (dl >= 0 && may_now() >= dl) {
            errno = EAGAIN;
            return -1;
        }
        if (backoff < 64000000)
            backoff *= 2;
        r = REAL(connect)(fd, sa, len);
        if (r == 0)
            return 0;
        if (errno != EAGAIN && errno != EINPROGRESS)
            return -1;
    }
    int w = wait_fd(co, e, fd, MAY_WRITE, dl, -1);
    if (w < 0) {
        errno = w == -ETIMEDOUT ? EINPROGRESS : -w; /* the kernel's, for SO_SNDTIMEO */
        return -1;
    }
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        return -1;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* ---- poll, select, epoll ------------------------------------------------ */

#define POLL_READ (POLLIN | POLLRDNORM | POLLRDBAND | POLLRDHUP)
#define POLL_WRITE (POLLOUT | POLLWRNORM | POLLWRBAND)

/* Wait until one of fds may be ready: 0 (look again), -ETIMEDOUT,
 * -ECANCELED. */
static int co_wait_many(const struct pollfd *fds, nfds_t n, int64_t dl)
{
    if (n == 1 && fds[0].fd >= 0 && !(fds[0].events & POLLPRI)) {
        hook_fd *e;
        uint32_t st = fd_state(fds[0].fd, &e);
        if (st & HFD_POLL) {
            int ev = ((fds[0].events & POLL_READ) ? MAY_READ : 0) |
                     ((fds[0].events & POLL_WRITE) ? MAY_WRITE : 0);
            int r = wait_fd(may_self(), e, fds[0].fd, ev ? ev : MAY_READ, dl, -1);
            return r == -EBADF ? 0 : r;
        }
    }
    int ep = -1, added = 0;
    for (nfds_t i = 0; i < n; i++) {
        if (fds[i].fd < 0)
            continue;
        if (ep < 0 && (ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
            /* no epoll set: look again in 1 ms */
            int64_t until = may_deadline_in(1000000);
            int r = co_sleep_until(dl >= 0 && dl < until ? dl : until);
            return r < 0 ? r : 0;
        }
        uint32_t want = (uint32_t)fds[i].events &
                        (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP | EPOLLRDNORM | EPOLLRDBAND |
                         EPOLLWRNORM | EPOLLWRBAND);
        for (nfds_t j = 0; j < i; j++) /* an fd listed twice: the union */
            if (fds[j].fd == fds[i].fd)
                want |= (uint32_t)fds[j].events & (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP);
        struct epoll_event ev = { .events = want };
        int op = EPOLL_CTL_ADD;
        if (epoll_ctl(ep, op, fds[i].fd, &ev) < 0 &&
            (errno != EEXIST || epoll_ctl(ep, EPOLL_CTL_MOD, fds[i].fd, &ev) < 0)) {
            /* EPERM (a regular file: always ready), EBADF (poll reports
             * POLLNVAL): the caller's poll sees it at once */
            added = -1;
            break;
        }
        added++;
    }
    int r;
    if (added < 0)
        r = 0;
    else if (added == 0) {
        r = co_sleep_until(dl);
        r = r < 0 ? r : -ETIMEDOUT;
    } else {
        r = co_wait(ep, MAY_READ, dl, -1);
        r = r > 0 || r == -EBADF ? 0 : r;
    }
    if (ep >= 0) {
        may_fd_forget(ep);
        REAL(close)(ep);
    }
    return r;
}

static int64_t deadline_ms(int ms)
{
    return ms < 0 ? MAY_FOREVER : may_deadline_in((int64_t)ms * 1000000);
}

static int64_t deadline_ts(const struct timespec *ts)
{
    if (!ts)
        return MAY_FOREVER;
    return may_deadline_in((int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec);
}

/* poll and ppoll in a coroutine, after a first look found nothing. */
static int poll_wait(struct pollfd *fds, nfds_t n, int64_t dl, bool pp, const sigset_t *mask)
{
    static const struct timespec zero;
    for (;;) {
        int w = co_wait_many(fds, n, dl);
        if (w == -ECANCELED) {
            errno = ECANCELED;
            return -1;
        }
        int r = pp ? REAL(ppoll)(fds, n, &zero, mask) : REAL(poll)(fds, n, 0);
        if (r != 0 || w == -ETIMEDOUT)
            return r;
        if (dl >= 0 && may_now() >= dl)
            return 0;
    }
}

/* One fd, one direction, registered already (libpq's and the MariaDB
 * client's wait for their socket): a ticket before the first look, so that
 * the wait needs neither may_fd_wait's own look nor one after it (one
 * poll(2) per wait instead of three).  -1 if that does not apply. */
static int64_t poll_ticket(may_co_t *co, const struct pollfd *p, int *dir)
{
    /* POLLERR and POLLHUP are reported whether asked or not (libpq asks) */
    short ev = p->events & ~(POLLERR | POLLHUP);
    if (p->fd < 0 || (ev != POLLIN && ev != POLLOUT) || in_handler(co))
        return -1;
    hook_fd *e;
    uint32_t st = fd_state(p->fd, &e);
    if ((st & (HFD_POLL | HFD_REG)) != (HFD_POLL | HFD_REG))
        return -1;
    *dir = ev == POLLIN ? MAY_READ : MAY_WRITE;
    return ticket_dir(co, p->fd, *dir);
}

HOOK_API int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    may_co_t *co;
    if (timeout == 0 || !(co = may_self()) || from_hook_inner())
        return REAL(poll)(fds, n, timeout);
    int64_t dl = deadline_ms(timeout);
    int dir = 0;
    int64_t tk = n == 1 ? poll_ticket(co, &fds[0], &dir) : -1;
    /* The look stays even when the last read emptied the socket: a reply
     * that came meanwhile is found at once, where a wait would last until
     * the poller next runs (tried: libpq's SELECT 1 lost a quarter of its
     * rate, with more context switches) */
    int r = REAL(poll)(fds, n, 0);
    if (r != 0)
        return r;
    if (in_handler(co))
        return REAL(poll)(fds, n, timeout);
    if (tk >= 0) {
        /* readiness newer than the look that saw none: ready */
        int w = co_wait(fds[0].fd, dir, dl, tk);
        if (w > 0) {
            fds[0].revents = dir == MAY_READ ? POLLIN : POLLOUT;
            return 1;
        }
        if (w == -ETIMEDOUT)
            return 0;
        if (w == -ECANCELED) {
            errno = ECANCELED;
            return -1;
        }
        return REAL(poll)(fds, n, 0); /* closed meanwhile: POLLNVAL */
    }
    return poll_wait(fds, n, dl, false, NULL);
}

HOOK_API int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    may_co_t *co;
    if ((ts && !ts->tv_sec && !ts->tv_nsec) || !(co = may_self()) || from_hook_inner() ||
        (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)))
        return REAL(ppoll)(fds, n, ts, mask);
    static const struct timespec zero;
    int64_t dl = deadline_ts(ts);
    int r = REAL(ppoll)(fds, n, &zero, mask);
    if (r != 0)
        return r;
    if (in_handler(co))
        return REAL(ppoll)(fds, n, ts, mask);
    return poll_wait(fds, n, dl, true, mask);
}

HOOK_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return poll(fds, n, timeout);
}

HOOK_API int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                         const sigset_t *mask, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return ppoll(fds, n, ts, mask);
}

HOOK_API int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    may_co_t *co;
    if ((tv && !tv->tv_sec && !tv->tv_usec) || !(co = may_self()) || nfds < 0 ||
        nfds > FD_SETSIZE || (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)))
        return REAL(select)(nfds, rd, wr, ex, tv);
    int64_t dl = tv ? may_deadline_in(tv_ns(tv)) : MAY_FOREVER;
    fd_set r0, w0, e0;
    if (rd)
        r0 = *rd;
    if (wr)
        w0 = *wr;
    if (ex)
        e0 = *ex;
    struct pollfd small[64], *pfd = NULL;
    nfds_t np = 0;
    int r;
    for (;;) {
        struct timeval z = { 0, 0 };
        r = REAL(select)(nfds, rd, wr, ex, &z);
        if (r != 0)
            break;
        if (dl >= 0 && may_now() >= dl)
            break;
        if (!pfd && in_handler(co)) { /* the plain call, with the sets as they came */
            if (rd)
                *rd = r0;
            if (wr)
                *wr = w0;
            if (ex)
                *ex = e0;
            return REAL(select)(nfds, rd, wr, ex, tv);
        }
        if (!pfd) { /* the sets as a poll list, made once */
            nfds_t cnt = 0;
            for (int fd = 0; fd < nfds; fd++)
                cnt += (rd && FD_ISSET(fd, &r0)) || (wr && FD_ISSET(fd, &w0)) ||
                       (ex && FD_ISSET(fd, &e0));
            pfd = cnt <= 64 ? small : malloc(cnt * sizeof *pfd);
            if (!pfd) {
                errno = ENOMEM;
                return -1;
            }
            for (int fd = 0; fd < nfds; fd++) {
                short ev = (short)(((rd && FD_ISSET(fd, &r0)) ? POLLIN : 0) |
                                   ((wr && FD_ISSET(fd, &w0)) ? POLLOUT : 0) |
                                   ((ex && FD_ISSET(fd, &e0)) ? POLLPRI : 0));
                if (ev)
                    pfd[np++] = (struct pollfd){ .fd = fd, .events = ev };
            }
        }
        int w = co_wait_many(pfd, np, dl);
        if (w == -ECANCELED) {
            errno = ECANCELED;
            r = -1;
            break;
        }
        if (rd)
            *rd = r0;
        if (wr)
            *wr = w0;
        if (ex)
            *ex = e0;
    }
    if (pfd && pfd != small) {
        int saved = errno;
        free(pfd);
        errno = saved;
    }
    if (tv) { /* Linux leaves the time not slept */
        int64_t left = dl - may_now();
        if (left < 0)
            left = 0;
        tv->tv_sec = left / 1000000000;
        tv->tv_usec = (left % 1000000000) / 1000;
    }
    return r;
}

static int epoll_common(int epfd, struct epoll_event *ev, int max, int timeout, bool pw,
                        const sigset_t *mask)
{
    int64_t dl = deadline_ms(timeout);
    for (;;) {
        int r = pw ? REAL(epoll_pwait)(epfd, ev, max, 0, mask) : REAL(epoll_wait)(epfd, ev, max, 0);
        if (r != 0)
            return r;
        if (dl >= 0 && may_now() >= dl)
            return 0;
        if (in_handler(may_self()))
            return pw ? REAL(epoll_pwait)(epfd, ev, max, ms_until(dl), mask)
                      : REAL(epoll_wait)(epfd, ev, max, ms_until(dl));
        int w = co_wait(epfd, MAY_READ, dl, -1);
        if (w == -ECANCELED || w == -EBADF) {
            errno = -w;
            return -1;
        }
    }
}

HOOK_API int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    if (timeout == 0 || !may_self() || from_hook_inner())
        return REAL(epoll_wait)(epfd, ev, max, timeout);
    return epoll_common(epfd, ev, max, timeout, false, NULL);
}

HOOK_API int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
                         const sigset_t *mask)
{
    if (timeout == 0 || !may_self() || from_hook_inner())
        return REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
    return epoll_common(epfd, ev, max, timeout, true, mask);
}

/* ---- sleeping ----------------------------------------------------------- */

/* Sleep the coroutine until dl (monotonic): 0, or the ns left when
 * cancelled (-1 if none were). */
static int64_t co_sleep_left(int64_t dl)
{
    if (dl < 1)
        dl = 1; /* not MAY_NOWAIT / MAY_FOREVER: the past */
    if (co_sleep_until(dl) == 0)
        return 0;
    int64_t left = dl - may_now();
    return left > 0 ? left : 1;
}

/* Whether a sleep or a lookup is the plain call: not in a coroutine, or in
 * a signal handler that interrupted one. */
static inline bool plain_call(void)
{
    may_co_t *co = may_self();
    return !co || in_handler(co);
}

HOOK_API unsigned sleep(unsigned s)
{
    if (plain_call())
        return REAL(sleep)(s);
    int64_t left = co_sleep_left(may_deadline_in((int64_t)s * 1000000000));
    if (!left)
        return 0;
    errno = ECANCELED;
    return (unsigned)((left + 999999999) / 1000000000);
}

HOOK_API int usleep(useconds_t us)
{
    if (plain_call())
        return REAL(usleep)(us);
    if (co_sleep_left(may_deadline_in((int64_t)us * 1000))) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

static void ns_ts(int64_t ns, struct timespec *ts)
{
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

static bool ts_bad(const struct timespec *ts)
{
    return ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0;
}

HOOK_API int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!req || ts_bad(req) || plain_call())
        return REAL(nanosleep)(req, rem);
    int64_t left = co_sleep_left(deadline_ts(req));
    if (!left)
        return 0;
    if (rem)
        ns_ts(left, rem);
    errno = ECANCELED;
    return -1;
}

HOOK_API int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                             struct timespec *rem)
{
    if (!req || ts_bad(req) ||
        (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME && clk != CLOCK_BOOTTIME) ||
        plain_call())
        return REAL(clock_nanosleep)(clk, flags, req, rem);
    int64_t ns = (int64_t)req->tv_sec * 1000000000 + req->tv_nsec, dl;
    if (flags & TIMER_ABSTIME) {
        struct timespec now;
        clock_gettime(clk, &now);
        int64_t n = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
        dl = may_deadline_in(ns > n ? ns - n : 0);
    } else {
        dl = may_deadline_in(ns);
    }
    int64_t left = co_sleep_left(dl);
    if (!left)
        return 0;
    if (rem && !(flags & TIMER_ABSTIME))
        ns_ts(left, rem);
    return ECANCELED; /* clock_nanosleep returns its error */
}

/* ---- descriptors: close, fcntl, ioctl, setsockopt, creation ------------ */

HOOK_API int close(int fd)
{
    fd_gone(fd);
    return REAL(close)(fd);
}

static void set_appnb(hook_fd *e, bool nb)
{
    if (nb)
        atomic_fetch_or_explicit(&e->st, HFD_APPNB, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&e->st, ~(uint32_t)HFD_APPNB, memory_order_relaxed);
}

static int fcntl_common(int (*rf)(int, int, ...), int fd, int cmd, void *arg)
{
    if (from_hook_inner())
        return rf(fd, cmd, arg);
    switch (cmd) {
    case F_GETFL: {
        int r = rf(fd, cmd);
        if (r >= 0 && (st_load(may__hook_fd(fd, 0)) & (HFD_OURS | HFD_APPNB)) == HFD_OURS)
            r &= ~O_NONBLOCK; /* the application's view */
        return r;
    }
    case F_SETFL: {
        int fl = (int)(intptr_t)arg;
        hook_fd *e = may__hook_fd(fd, 0);
        uint32_t st = st_load(e);
        if (st & HFD_POLL) { /* stays non-blocking underneath */
            int r = rf(fd, F_SETFL, fl | O_NONBLOCK);
            if (r == 0) {
                atomic_fetch_or_explicit(&e->st, HFD_OURS, memory_order_relaxed);
                set_appnb(e, fl & O_NONBLOCK);
            }
            return r;
        }
        int r = rf(fd, F_SETFL, fl);
        if (r == 0 && (st & HFD_KNOWN))
            set_appnb(e, fl & O_NONBLOCK);
        return r;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int r = rf(fd, cmd, arg);
        if (r >= 0)
            fd_copy(fd, r);
        return r;
    }
    default:
        return rf(fd, cmd, arg);
    }
}

HOOK_API int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(REAL(fcntl), fd, cmd, arg);
}

HOOK_API int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(REAL(fcntl64), fd, cmd, arg);
}

HOOK_API int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (req != FIONBIO || !arg || from_hook_inner())
        return REAL(ioctl)(fd, req, arg);
    bool on = *(int *)arg != 0;
    hook_fd *e = may__hook_fd(fd, 0);
    uint32_t st = st_load(e);
    if (st & HFD_POLL) {
        int one = 1;
        int r = REAL(ioctl)(fd, FIONBIO, &one);
        if (r == 0) {
            atomic_fetch_or_explicit(&e->st, HFD_OURS, memory_order_relaxed);
            set_appnb(e, on);
        }
        return r;
    }
    int r = REAL(ioctl)(fd, req, arg);
    if (r == 0 && (st & HFD_KNOWN))
        set_appnb(e, on);
    return r;
}

HOOK_API int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    int r = REAL(setsockopt)(fd, level, name, val, len);
    if (r == 0 && level == SOL_SOCKET && len >= sizeof(struct timeval) &&
        (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
        hook_fd *e = may__hook_fd(fd, 1);
        if (e)
            atomic_store_explicit(name == SO_RCVTIMEO ? &e->rcvtimeo : &e->sndtimeo,
                                  tv_ns(val), memory_order_relaxed);
    }
    return r;
}

HOOK_API int socket(int domain, int type, int proto)
{
    int r = REAL(socket)(domain, type, proto);
    if (r >= 0)
        fd_fresh(r, type & SOCK_NONBLOCK, HFD_POLL | HFD_SOCK);
    return r;
}

HOOK_API int socketpair(int domain, int type, int proto, int sv[2])
{
    int r = REAL(socketpair)(domain, type, proto, sv);
    if (r == 0) {
        fd_fresh(sv[0], type & SOCK_NONBLOCK, HFD_POLL | HFD_SOCK);
        fd_fresh(sv[1], type & SOCK_NONBLOCK, HFD_POLL | HFD_SOCK);
    }
    return r;
}

HOOK_API int pipe2(int fds[2], int flags)
{
    int r = REAL(pipe2)(fds, flags);
    if (r == 0) {
        fd_fresh(fds[0], flags & O_NONBLOCK, fds[0] > 2 ? HFD_POLL : HFD_FILE);
        fd_fresh(fds[1], flags & O_NONBLOCK, fds[1] > 2 ? HFD_POLL : HFD_FILE);
    }
    return r;
}

HOOK_API int pipe(int fds[2])
{
    return pipe2(fds, 0);
}

HOOK_API int dup(int fd)
{
    int r = REAL(dup)(fd);
    if (r >= 0)
        fd_copy(fd, r);
    return r;
}

HOOK_API int dup3(int oldfd, int newfd, int flags)
{
    if (oldfd != newfd)
        fd_gone(newfd); /* dup3 closes it */
    int r = REAL(dup3)(oldfd, newfd, flags);
    if (r >= 0)
        fd_copy(oldfd, r);
    return r;
}

HOOK_API int dup2(int oldfd, int newfd)
{
    if (oldfd != newfd)
        fd_gone(newfd);
    int r = REAL(dup2)(oldfd, newfd);
    if (r >= 0 && oldfd != newfd)
        fd_copy(oldfd, r);
    return r;
}

/* ---- name resolution ---------------------------------------------------- */

/* getaddrinfo runs on libmay's offload pool (may_offload_ex): the worker
 * runs other coroutines meanwhile.  The job owns copies of its arguments,
 * so a call abandoned by cancellation can run on to its end safely. */
typedef struct gai_job {
    char *node, *service;
    struct addrinfo hints;
    bool has_hints;
    struct addrinfo *res;
    int rc, err;
} gai_job;

static void *gai_run(void *arg)
{
    gai_job *j = arg;
    j->rc = REAL(getaddrinfo)(j->node, j->service, j->has_hints ? &j->hints : NULL, &j->res);
    j->err = errno;
    return j;
}

static void gai_free(gai_job *j)
{
    free(j->node);
    free(j->service);
    free(j);
}

static void gai_drop(void *arg, void *result, bool ran)
{
    (void)result;
    gai_job *j = arg;
    if (ran && j->rc == 0 && j->res)
        freeaddrinfo(j->res);
    gai_free(j);
}

HOOK_API int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                         struct addrinfo **res)
{
    if (plain_call())
        return REAL(getaddrinfo)(node, service, hints, res);
    gai_job *j = calloc(1, sizeof *j);
    if (!j)
        return EAI_MEMORY;
    if ((node && !(j->node = strdup(node))) || (service && !(j->service = strdup(service)))) {
        gai_free(j);
        return EAI_MEMORY;
    }
    if (hints) {
        j->hints = *hints;
        j->hints.ai_addr = NULL;
        j->hints.ai_canonname = NULL;
        j->hints.ai_next = NULL;
        j->has_hints = true;
    }
    lock_thread();
    int r = may_offload_ex(gai_run, j, NULL, gai_drop, MAY_FOREVER);
    unlock_thread();
    if (r == 0) {
        int rc = j->rc;
        *res = j->res;
        if (rc == EAI_SYSTEM)
            errno = j->err;
        gai_free(j);
        return rc;
    }
    if (r == -EAGAIN)
        return EAI_AGAIN;
    if (r == -ENOMEM)
        return EAI_MEMORY;
    errno = -r; /* ECANCELED */
    return EAI_SYSTEM;
}

/* gethostbyname and gethostbyname2: gethostbyname2_r on the pool, into a
 * buffer of the calling thread's (glibc's own is one for the process),
 * valid until the thread's next such call, freed when the thread exits. */
typedef struct hbn_job {
    struct hostent h, *out;
    int af, err, rc;
    char *name;
    char buf[8192];
} hbn_job;

static pthread_key_t hbn_key;
static pthread_once_t hbn_once = PTHREAD_ONCE_INIT;

static void hbn_free(void *p)
{
    hbn_job *j = p;
    free(j->name);
    free(j);
}

static void hbn_key_make(void)
{
    pthread_key_create(&hbn_key, hbn_free);
}

static void *hbn_run(void *arg)
{
    hbn_job *j = arg;
    j->rc = REAL(gethostbyname2_r)(j->name, j->af, &j->h, j->buf, sizeof j->buf, &j->out,
                                   &j->err);
    return j;
}

static void hbn_drop(void *arg, void *result, bool ran)
{
    (void)result;
    (void)ran;
    hbn_free(arg);
}

static struct hostent *hbn(const char *name, int af)
{
    hbn_job *j = calloc(1, sizeof *j);
    if (!j || !(j->name = strdup(name))) {
        free(j);
        h_errno = NO_RECOVERY;
        return NULL;
    }
    j->af = af;
    lock_thread();
    int r = may_offload_ex(hbn_run, j, NULL, hbn_drop, MAY_FOREVER);
    unlock_thread();
    if (r < 0) {
        h_errno = r == -EAGAIN ? TRY_AGAIN : NO_RECOVERY;
        errno = -r;
        return NULL;
    }
    if (!j->out) {
        h_errno = j->err;
        hbn_drop(j, NULL, true);
        return NULL;
    }
    pthread_once(&hbn_once, hbn_key_make);
    hbn_job *last = pthread_getspecific(hbn_key);
    if (last)
        hbn_free(last);
    pthread_setspecific(hbn_key, j);
    return j->out;
}

HOOK_API struct hostent *gethostbyname(const char *name)
{
    static struct hostent *(*rf)(const char *);
    if (!name || plain_call()) {
        if (!rf)
            rf = (struct hostent * (*)(const char *)) dlsym(RTLD_NEXT, "gethostbyname");
        return rf(name);
    }
    return hbn(name, AF_INET);
}

HOOK_API struct hostent *gethostbyname2(const char *name, int af)
{
    static struct hostent *(*rf)(const char *, int);
    if (!name || plain_call()) {
        if (!rf)
            rf = (struct hostent * (*)(const char *, int)) dlsym(RTLD_NEXT, "gethostbyname2");
        return rf(name, af);
    }
    return hbn(name, af);
}
