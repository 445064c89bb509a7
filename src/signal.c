/*
 * signal.c - signals for coroutines and threads: watchers, as Go's
 * signal.Notify and libuv's uv_signal (docs/SIGNALS.md).
 *
 * Why.  A signal handler may run on any thread, at any instruction: on a
 * worker in the middle of a context switch, inside malloc, holding a lock
 * of the runtime.  It can call almost nothing (no lock, no malloc, no
 * wake-up of a coroutine, which takes the run queue's lock), so "wake the
 * coroutine that waits for SIGTERM" cannot happen in the handler itself.
 * It has to be turned into an ordinary event first, delivered by ordinary
 * code.
 *
 * The design: a handler, a self-pipe, a dispatcher thread, channels.
 *
 *   handler (any thread)          dispatcher thread "may-signal"
 *   --------------------          ---------------------------------------
 *   sig_pending[sig] += 1         read(pipe)       (blocks; all signals
 *   write(pipe, 1 byte)           lock sig_lock     blocked in this thread)
 *   (errno saved and restored)    for each sig: n = exchange(pending, 0)
 *                                   each watcher of sig: trysend sig, n
 *                                   times, into its channel; the sends
 *                                   that find it full count as dropped
 *                                 unlock; exit if asked to stop
 *
 * A watcher is a set of signals and a channel of int with capacity queue:
 * each delivery is one element, so a delivery made while nobody waits stays
 * in the channel (up to queue of them; more are dropped and counted, as
 * Go drops on a full channel), several coroutines may wait on one watcher
 * (each delivery goes to one of them), and may_select takes the channel
 * as it takes any other.  Every watcher of a signal gets every delivery of
 * it.  Waiting is may_chan_recv: deadlines, cancellation and plain threads
 * come with it.
 *
 * The handler is installed (sigaction, SA_RESTART | SA_ONSTACK) when the
 * first watcher of a signal comes, and the disposition it replaced is put
 * back when the last one of that signal is freed.  SA_ONSTACK: workers
 * have alternate signal stacks (src/overflow.c), and a handler that lands
 * on a coroutine near the end of its stack should not overflow it (the
 * kernel's signal frame alone is 1-3 KiB with AVX-512 state, more with
 * AMX); the handler's own frame is a few words.  Under valgrind alone the
 * flag is left out (see may_signal_new).  The dispatcher
 * starts with the first watcher of any signal and is stopped and joined
 * when the last watcher is freed; a later first watcher starts a new one.
 *
 * The handler is async-signal-safe and touches nothing that belongs to a
 * thread: one atomic add on a global counter, one write(2) to the pipe's
 * non-blocking write end (a full pipe is fine: bytes are already waiting,
 * and the count carries the number), errno saved and restored.  It never
 * re-raises and never looks at the watchers: a signal that comes after the
 * last watcher of it was unlinked but before the old disposition is back
 * is counted, and the dispatcher, finding no watcher, drops it.  So no
 * signal ever meets a default action the program did not have.
 *
 * Why a pipe and not signalfd.  signalfd reads only signals that are
 * blocked, and a process-directed signal goes to any thread that has it
 * unblocked: so it must be blocked in every thread of the process, the
 * user's threads made before the watcher (we cannot reach their masks) and
 * after it (they inherit the mask of whoever made them), the runtime's
 * workers, spares and offload helpers, and the threads of every library.
 * One thread that has it unblocked takes the signal with its old
 * disposition, and a blocked mask leaks into children (posix_spawn, exec)
 * unless each spawner resets it.  A handler works whatever the masks are.
 *
 * Why a thread and not a coroutine.  A dispatcher coroutine parked on the
 * pipe would count as alive, so may_shutdown would refuse (-EBUSY) while
 * any watcher exists, and a program that only uses threads would start the
 * runtime for it.  A plain thread costs one mostly idle stack, and channel
 * sends from a plain thread are ordinary (docs/SYNC.md).
 *
 * The pipe.  Made once (pipe2, O_CLOEXEC both ends, O_NONBLOCK on the write
 * end, so the handler never blocks) and never closed while this process
 * lives: a handler may be running on another thread when the last watcher
 * is freed, and closing the pipe under it could let its write land on an
 * unrelated descriptor that reused the number.  Two descriptors after the
 * first watcher, for the life of the process.
 *
 * Fork.  The child of a fork has the handler installed (a signal to it
 * before its exec writes a byte into the pipe it shares with the parent:
 * the parent's dispatcher wakes, finds its own counts at zero, and does
 * nothing) and no dispatcher.  A child forked while watchers existed gets
 * -ENOTRECOVERABLE from may_signal_new (it should exec; exec resets every
 * caught signal to its default), and its may_signal_free only releases
 * memory.  A child forked while no watcher existed may make its own: the
 * first one gives it a pipe of its own (sig_pipe_pid), since a dispatcher
 * in each process reading one shared pipe would steal each other's bytes.
 *
 * SIGPIPE.  libmay's socket calls send with MSG_NOSIGNAL and return -EPIPE;
 * may_write on a pipe or a socket raises SIGPIPE as write(2) does, which
 * by default kills the process.  A program that writes to pipes ignores
 * SIGPIPE (signal(SIGPIPE, SIG_IGN)) or watches it, which turns it into an
 * event and makes the write return -EPIPE.
 *
 * Invariants, under sig_lock:
 *   - sig_nwatch[sig] is the number of linked watchers whose set has sig;
 *     it is non-zero exactly while our handler is sig's disposition, and
 *     sig_old[sig] then holds the disposition to restore.
 *   - sig_disp is SIG_NONE (no dispatcher thread), SIG_RUNNING (one runs,
 *     and sig_stop is 0) or SIG_STOPPING (the last free asked it to stop
 *     and is joining it outside the lock; may_signal_new waits on
 *     sig_cond until it is SIG_NONE, so one dispatcher at most reads the
 *     pipe: two could take each other's stop byte).
 *   - A watcher is linked (sig_list) only with its handlers installed and
 *     a dispatcher running.  The dispatcher sends only to linked watchers,
 *     so a watcher unlinked under the lock gets nothing more, and its
 *     channel can be closed and freed after.
 *
 * Lock order: sig_lock has rank SIGNAL (src/lockrank.h), after KEY and
 * before OBJECT: the dispatcher sends into channels (OBJECT, and the
 * wake-ups under it) while it holds sig_lock.  new and free hold it across
 * sigaction and pthread_create, and new may wait on sig_cond under it;
 * free joins the dispatcher after releasing it (the dispatcher needs it to
 * finish its round).
 *
 * Memory ordering.  sig_pending[] and sig_wfd are seq_cst.  The handler
 * adds to sig_pending[sig] and then writes the pipe; the dispatcher reads
 * the pipe and then exchanges sig_pending[sig] with 0: the pipe, a kernel
 * object with its own lock, orders the add before the exchange (and tells
 * TSan so: it models a pipe's write and read as a release and an acquire).
 * A count added after an exchange leaves its byte in the pipe, so the next
 * round sees it.  sig_wfd is stored before any handler that reads it is
 * installed (sigaction is a system call; the handler runs after it).
 * sig_owner_pid is read without the lock by new and free (a fork child's
 * check, made before it touches a lock a vanished thread may hold): a
 * relaxed load suffices, since it is compared with getpid() only.
 * A watcher's dropped count is a relaxed counter (a statistic).
 */
#include "internal.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SIG_VALGRIND 1
#endif
#endif

struct may_signal {
    may_chan_t *ch;           /* the queue: a channel of int, capacity queue */
    _Atomic uint64_t dropped; /* deliveries that found the queue full */
    sigset_t set;             /* the signals it watches */
    struct may_signal *next, *prev; /* sig_list, under sig_lock */
};

enum { SIG_NONE, SIG_RUNNING, SIG_STOPPING };

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sig_cond = PTHREAD_COND_INITIALIZER; /* sig_disp left STOPPING */
static struct may_signal *sig_list;      /* every linked watcher */
static unsigned sig_nwatch[NSIG];        /* linked watchers of each signal */
static struct sigaction sig_old[NSIG];   /* disposition before the first watcher */
static int sig_disp = SIG_NONE;          /* the dispatcher's state */
static int sig_stop;                     /* the dispatcher should exit */
static pthread_t sig_thread;             /* the dispatcher, while not SIG_NONE */
static _Atomic int sig_owner_pid;        /* the process sig_disp belongs to, 0: none */
static int sig_rfd = -1;                 /* the pipe's read end (blocking) */
static _Atomic int sig_wfd = -1;         /* the pipe's write end (non-blocking) */
static int sig_pipe_pid;                 /* the process that made the pipe */
static _Atomic unsigned sig_pending[NSIG]; /* counted by the handler */

/* An atomic that is not lock-free is a lock: not for a handler. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler needs lock-free atomics");

/* The handler: async-signal-safe, no thread's state touched.  The byte is
 * static, so even an instrumented write(2) interceptor reads no stack. */
static void sig_handler(int sig)
{
    static const char byte = 0;
    int saved = errno;
    if (sig > 0 && sig < NSIG)
        atomic_fetch_add(&sig_pending[sig], 1); /* seq_cst; the pipe orders it (top) */
    int fd = atomic_load(&sig_wfd);
    if (fd >= 0) {
        ssize_t r = write(fd, &byte, 1); /* EAGAIN: the pipe is full of wake-ups */
        (void)r;
    }
    errno = saved;
}

/* Under sig_lock: hand every counted signal to its watchers. */
static void sig_deliver_locked(void)
{
    MAY__ASSERT_HELD(MAY__RANK_SIGNAL, &sig_lock);
    for (int sig = 1; sig < NSIG; sig++) {
        if (!atomic_load_explicit(&sig_pending[sig], memory_order_relaxed))
            continue;
        unsigned n = atomic_exchange(&sig_pending[sig], 0); /* seq_cst: after our read */
        if (!n || !sig_nwatch[sig])
            continue; /* no watcher any more: dropped, never re-raised */
        for (struct may_signal *w = sig_list; w; w = w->next) {
            if (!sigismember(&w->set, sig))
                continue;
            for (unsigned i = 0; i < n; i++) {
                if (may_chan_trysend(w->ch, &sig) < 0) {
                    /* relaxed: a statistic */
                    atomic_fetch_add_explicit(&w->dropped, n - i, memory_order_relaxed);
                    break;
                }
            }
        }
    }
}

static void *sig_dispatch(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the handler runs elsewhere */
    pthread_setname_np(pthread_self(), "may-signal");
    for (;;) {
        char buf[64];
        ssize_t r = read(sig_rfd, buf, sizeof buf);
        (void)r; /* a byte, EINTR: either way, look at the counts */
        may__lock(&sig_lock, MAY__RANK_SIGNAL);
        sig_deliver_locked();
        int stop = sig_stop;
        may__unlock(&sig_lock, MAY__RANK_SIGNAL);
        if (stop)
            return NULL;
    }
}

/* Under sig_lock: the pipe of this process, made on first use.  0 or
 * -errno. */
static int sig_pipe_locked(void)
{
    int pid = (int)getpid();
    if (sig_rfd >= 0 && sig_pipe_pid == pid)
        return 0;
    if (sig_rfd >= 0) {
        /* A fork child with no watcher: its copy of the parent's pipe.  No
         * handler of ours is installed here, so none can be writing it. */
        close(atomic_exchange(&sig_wfd, -1));
        close(sig_rfd);
        sig_rfd = -1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    if (fcntl(p[1], F_SETFL, O_NONBLOCK) != 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return -e;
    }
    sig_rfd = p[0];
    sig_pipe_pid = pid;
    atomic_store(&sig_wfd, p[1]); /* seq_cst: before any sigaction below */
    return 0;
}

/* A signal libmay refuses to watch: KILL and STOP cannot be caught, and
 * the synchronous faults are the program's own bug (SEGV, BUS are the
 * overflow reporter's, src/overflow.c), not events to wait for. */
static bool sig_refused(int sig)
{
    return sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV ||
           sig == SIGBUS || sig == SIGILL || sig == SIGFPE;
}

/* The child of a fork made while watchers existed: the dispatcher is gone
 * and sig_lock may be held by it for good. */
static bool sig_forked(void)
{
    int owner = atomic_load_explicit(&sig_owner_pid, memory_order_relaxed);
    return owner != 0 && owner != (int)getpid();
}

/* Under sig_lock: put back the disposition of every signal of set that no
 * linked watcher has (after a failed new: the ones it installed). */
static void sig_restore_unwatched_locked(const sigset_t *set)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(set, sig) == 1 && !sig_nwatch[sig])
            sigaction(sig, &sig_old[sig], NULL);
}

int may_signal_new(may_signal_t **out, const int *sigs, size_t n, size_t queue)
{
    if (!out || !sigs || n == 0 || queue == MAY_CHAN_UNBOUNDED)
        return -EINVAL;
    struct may_signal *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    sigemptyset(&s->set);
    for (size_t i = 0; i < n; i++) {
        struct sigaction q;
        /* sigaction also refuses the C library's own signals (glibc's 32
         * and 33, under SIGRTMIN) */
        if (sig_refused(sigs[i]) || sigaction(sigs[i], NULL, &q) != 0) {
            free(s);
            return -EINVAL;
        }
        sigaddset(&s->set, sigs[i]);
    }
    int r = may_chan_new(&s->ch, sizeof(int), queue ? queue : 16);
    if (r < 0) {
        free(s);
        return r;
    }
    if (sig_forked()) {
        r = -ENOTRECOVERABLE;
        goto out_free;
    }

    may__lock(&sig_lock, MAY__RANK_SIGNAL);
    while (sig_disp == SIG_STOPPING) /* the last free is joining the old one */
        pthread_cond_wait(&sig_cond, &sig_lock);
    if ((r = sig_pipe_locked()) < 0)
        goto out_unlock;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_handler;
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
#ifdef SIG_VALGRIND
    /* valgrind (3.19) reports false invalid writes on coroutine stacks
     * after a handler that makes a system call ran on an alternate stack
     * while a coroutine's stack was the current one: under valgrind the
     * frame goes on the interrupted stack instead. */
    if (RUNNING_ON_VALGRIND)
        sa.sa_flags = SA_RESTART;
#endif
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(&s->set, sig) != 1 || sig_nwatch[sig])
            continue;
        /* counts left from an earlier watcher predate this one */
        atomic_store(&sig_pending[sig], 0);
        if (sigaction(sig, &sa, &sig_old[sig]) != 0) {
            r = -errno;
            /* undo the ones installed before sig (in order, below it) */
            sigset_t done = s->set;
            for (int k = sig; k < NSIG; k++)
                sigdelset(&done, k);
            sig_restore_unwatched_locked(&done);
            goto out_unlock;
        }
    }
    if (sig_disp == SIG_NONE) {
        int e = pthread_create(&sig_thread, NULL, sig_dispatch, NULL);
        if (e) {
            r = -e;
            sig_restore_unwatched_locked(&s->set);
            goto out_unlock;
        }
        sig_disp = SIG_RUNNING;
        atomic_store_explicit(&sig_owner_pid, (int)getpid(), memory_order_relaxed);
    }
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&s->set, sig) == 1)
            sig_nwatch[sig]++;
    s->next = sig_list;
    if (sig_list)
        sig_list->prev = s;
    sig_list = s;
    may__unlock(&sig_lock, MAY__RANK_SIGNAL);
    *out = s;
    return 0;

out_unlock:
    may__unlock(&sig_lock, MAY__RANK_SIGNAL);
out_free:
    may_chan_free(s->ch);
    free(s);
    return r;
}

int may_signal_wait(may_signal_t *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    int sig;
    int r = may_chan_recv(s->ch, &sig, deadline);
    return r < 0 ? r : sig;
}

may_chan_t *may_signal_chan(may_signal_t *s)
{
    return s ? s->ch : NULL;
}

uint64_t may_signal_dropped(may_signal_t *s)
{
    return s ? atomic_load_explicit(&s->dropped, memory_order_relaxed) : 0;
}

void may_signal_free(may_signal_t *s)
{
    if (!s)
        return;
    if (sig_forked())
        goto out_free; /* a fork child: nothing to restore it could reach */
    may__lock(&sig_lock, MAY__RANK_SIGNAL);
    if (s->prev)
        s->prev->next = s->next;
    else
        sig_list = s->next;
    if (s->next)
        s->next->prev = s->prev;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&s->set, sig) == 1 && --sig_nwatch[sig] == 0)
            sigaction(sig, &sig_old[sig], NULL); /* a late one is counted, dropped */
    bool last = !sig_list;
    pthread_t th = sig_thread;
    if (last) {
        sig_stop = 1;
        sig_disp = SIG_STOPPING;
    }
    may__unlock(&sig_lock, MAY__RANK_SIGNAL);
    if (last) {
        static const char byte = 1;
        ssize_t w = write(atomic_load(&sig_wfd), &byte, 1); /* EAGAIN: it has bytes */
        (void)w;
        pthread_join(th, NULL);
        may__lock(&sig_lock, MAY__RANK_SIGNAL);
        sig_stop = 0;
        sig_disp = SIG_NONE;
        atomic_store_explicit(&sig_owner_pid, 0, memory_order_relaxed);
        pthread_cond_broadcast(&sig_cond);
        may__unlock(&sig_lock, MAY__RANK_SIGNAL);
    }
out_free:
    may_chan_close(s->ch);
    may_chan_free(s->ch);
    free(s);
}
