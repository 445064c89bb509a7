/* test_hook_signal: hooked calls made by signal handlers, and the
 * trampolines libmay_hook installs every handler through (docs/HOOKS.md,
 * "Signals").
 *
 * The main case, on ONE worker: coroutine A is parked in a hooked read of
 * a blocking pipe p (switched to O_NONBLOCK underneath), a ticker T sleeps
 * 1 ms at a time, and coroutine C sends itself SIGUSR1.  The handler makes
 * a hooked call that has to wait 30 ms: a read of pipe q (a switched fd,
 * already registered with the reactor), a nanosleep, a poll of q.  When it
 * starts, a plain thread writes p (A could run now) and, 30 ms later, q.
 * The handler's call must block the thread, as the plain call would: no
 * other coroutine (A, T) runs on the handler's thread while it lasts;
 * afterwards C's signal mask and errno are as before, and A's read returns
 * its byte with SIGUSR1 unblocked.  Without the trampolines the hooks cannot
 * tell the handler from C, the call parks C inside the handler, and A and T
 * run on that thread with SIGUSR1 blocked.
 *
 * Negative control ("nosig", with MAY_HOOK_NO_SIGTRAMP=1: handlers are
 * installed as they are, test_hook_negative runs it): every variant must
 * see another coroutine run on the handler's thread during its call.
 *
 * Also: sigaction's oldact and signal()'s return value give back the
 * application's handlers (plain and SA_SIGINFO), never a trampoline;
 * SA_RESETHAND, SA_NODEFER, SA_SIGINFO's siginfo, errno through a handler;
 * a handler installed around the hooks (libc's own sigaction) keeps working
 * and round-trips; a coroutine whose handler left by siglongjmp parks
 * again in its next hooked wait; and libmay's own SIGSEGV handler still reports a
 * coroutine's stack overflow (on its alternate stack) with the hooks.
 *
 * Built with HOOK_TEST_HANDOFF (test_hook_signal_handoff): the same with
 * the hand-off of blocked workers on; a spare thread may then run A and T
 * meanwhile, but never on the handler's thread. */
#include "hook_test.h"

#include <dlfcn.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VG 1
#endif
#endif

/* X/Open's, not declared by glibc for _GNU_SOURCE; sigset is deprecated */
__sighandler_t bsd_signal(int sig, __sighandler_t h);
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static int nosig;
static int (*libc_sigaction)(int, const struct sigaction *, struct sigaction *);

static long tid(void)
{
    return (long)syscall(SYS_gettid);
}

/* What the kernel has for sig, past the hooks. */
static uintptr_t kernel_handler(int sig)
{
    struct sigaction k;
    ASSERT_EQ(libc_sigaction(sig, NULL, &k), 0);
    return (uintptr_t)k.sa_handler;
}

static bool blocked_now(int sig)
{
    sigset_t m;
    ASSERT_EQ(pthread_sigmask(SIG_BLOCK, NULL, &m), 0);
    return sigismember(&m, sig);
}

/* ---- a handler's call that has to wait ---------------------------------- */

enum { OP_READ, OP_SLEEP, OP_POLL, OPS };
static const char *const op_name[OPS] = { "read", "nanosleep", "poll" };
static int op;
static int p[2], q[2];
static atomic_int in_call, handled, handler_ok, overlap, mask_bad, stop_tick, on_alt;
static atomic_long call_tid;

/* Another coroutine runs on the handler's thread during its call. */
static void note_overlap(void)
{
    if (atomic_load(&in_call) && atomic_load(&call_tid) == tid())
        atomic_fetch_add(&overlap, 1);
}

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_store(&call_tid, tid());
    atomic_store(&in_call, 1);
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK))
        atomic_store(&on_alt, 1);
    char buf[16] = { 0 };
    switch (op) {
    case OP_READ:
        atomic_store(&handler_ok, read(q[0], buf, sizeof buf) == 1 && buf[0] == 'q');
        break;
    case OP_SLEEP: {
        struct timespec ts = { 0, 30000000 };
        atomic_store(&handler_ok, nanosleep(&ts, NULL) == 0);
        break;
    }
    case OP_POLL: {
        struct pollfd pf = { .fd = q[0], .events = POLLIN };
        int r = poll(&pf, 1, 10000);
        atomic_store(&handler_ok, r == 1 && (pf.revents & POLLIN) &&
                                      read(q[0], buf, sizeof buf) == 1 && buf[0] == 'q');
        break;
    }
    }
    atomic_store(&in_call, 0);
    atomic_store(&handled, 1);
    errno = saved;
}

static void *reader_a(void *arg)
{
    (void)arg;
    char c = 0;
    ASSERT_EQ(read(p[0], &c, 1), 1);
    ASSERT_EQ(c, 'p');
    note_overlap();
    if (blocked_now(SIGUSR1))
        atomic_fetch_add(&mask_bad, 1);
    return NULL;
}

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_tick)) {
        ASSERT_EQ(may_sleep(TEST_MS(1)), 0);
        note_overlap();
        if (atomic_load(&in_call) && blocked_now(SIGUSR1))
            atomic_fetch_add(&mask_bad, 1);
    }
    return NULL;
}

static void *signaller_c(void *arg)
{
    (void)arg;
    ASSERT_EQ(may_sleep(TEST_MS(10)), 0); /* A is parked in its read */
    ASSERT(!blocked_now(SIGUSR1));
    stack_t ss;
    ASSERT_EQ(sigaltstack(NULL, &ss), 0);
    ASSERT(!(ss.ss_flags & SS_DISABLE)); /* workers have one */
    errno = ERANGE;
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR1), 0); /* the handler runs here */
    ASSERT_EQ(errno, ERANGE);
    ASSERT(atomic_load(&handled));
    ASSERT(!blocked_now(SIGUSR1));
    return NULL;
}

/* Plain thread: once the handler is in its call, make A's pipe readable,
 * and 30 ms later the handler's. */
static void *filler(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000 && !atomic_load(&in_call); i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(write(p[1], "p", 1), 1);
    struct timespec ts = { 0, 30000000 };
    nanosleep(&ts, NULL);
    ASSERT_EQ(write(q[1], "q", 1), 1);
    return NULL;
}

static void *prime_q(void *arg)
{
    (void)arg;
    char buf[16];
    /* a short read: registers q with the reactor and notes it emptied */
    ASSERT_EQ(write(q[1], "x", 1), 1);
    ASSERT_EQ(read(q[0], buf, sizeof buf), 1);
    return NULL;
}

static void test_handler_call(int which)
{
    op = which;
    atomic_store(&in_call, 0);
    atomic_store(&handled, 0);
    atomic_store(&handler_ok, 0);
    atomic_store(&overlap, 0);
    atomic_store(&mask_bad, 0);
    atomic_store(&stop_tick, 0);
    atomic_store(&on_alt, 0);
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(pipe(q), 0);
    may_co_t *pq, *a, *t, *c;
    ASSERT_EQ(may_spawn(&pq, prime_q, NULL, NULL), 0);
    ASSERT_EQ(may_join(pq, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(raw_getfl(q[0]) & O_NONBLOCK, O_NONBLOCK); /* switched */
    pthread_t f;
    ASSERT_EQ(pthread_create(&f, NULL, filler, NULL), 0);
    ASSERT_EQ(may_spawn(&a, reader_a, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&t, ticker, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&c, signaller_c, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(a, NULL, MAY_FOREVER), MAY_DONE);
    atomic_store(&stop_tick, 1);
    ASSERT_EQ(may_join(t, NULL, MAY_FOREVER), MAY_DONE);
    pthread_join(f, NULL);
    printf("handler's %s%s: ok %d, coroutines run on its thread meanwhile %d, with SIGUSR1 "
           "blocked %d\n",
           op_name[which], atomic_load(&on_alt) ? " (alternate stack)" : "",
           atomic_load(&handler_ok), atomic_load(&overlap), atomic_load(&mask_bad));
    ASSERT(atomic_load(&handler_ok));
    if (nosig) {
        ASSERT_GT(atomic_load(&overlap), 0); /* the handler parked */
    } else {
        ASSERT_EQ(atomic_load(&overlap), 0);
        ASSERT_EQ(atomic_load(&mask_bad), 0);
    }
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

/* ---- what sigaction and signal give back -------------------------------- */

static atomic_int plain_runs, info_runs, info_value, info_code, reset_runs, nest_runs,
    nest_max;

static void h_plain(int sig)
{
    (void)sig;
    atomic_fetch_add(&plain_runs, 1);
}

static void h_info(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    atomic_fetch_add(&info_runs, 1);
    if (si->si_signo == sig) {
        atomic_store(&info_value, si->si_value.sival_int);
        atomic_store(&info_code, si->si_code);
    }
}

static void test_round_trip(void)
{
    struct sigaction sa = { .sa_handler = h_plain, .sa_flags = SA_RESTART }, o;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    ASSERT_EQ(sigaction(SIGUSR2, &sa, &o), 0);
    ASSERT_PTR_EQ(o.sa_handler, SIG_DFL);
    if (!nosig)
        ASSERT_NE(kernel_handler(SIGUSR2), (uintptr_t)h_plain); /* a trampoline */
    ASSERT_EQ(sigaction(SIGUSR2, NULL, &o), 0);
    ASSERT_PTR_EQ(o.sa_handler, h_plain);
    ASSERT(o.sa_flags & SA_RESTART);
    ASSERT(!(o.sa_flags & SA_SIGINFO));
    ASSERT(sigismember(&o.sa_mask, SIGUSR1));
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
    ASSERT_EQ(atomic_load(&plain_runs), 1);

    /* SA_SIGINFO: the application's handler back, and its siginfo */
    struct sigaction si = { .sa_sigaction = h_info, .sa_flags = SA_SIGINFO };
    sigemptyset(&si.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR2, &si, &o), 0);
    ASSERT_PTR_EQ(o.sa_handler, h_plain);
    ASSERT(!(o.sa_flags & SA_SIGINFO));
    ASSERT_EQ(sigaction(SIGUSR2, NULL, &o), 0);
    ASSERT_PTR_EQ(o.sa_sigaction, h_info);
    ASSERT(o.sa_flags & SA_SIGINFO);
    ASSERT_EQ(pthread_sigqueue(pthread_self(), SIGUSR2, (union sigval){ .sival_int = 42 }), 0);
    /* delivered on the way back from the system call; valgrind, which
     * queues it, a little later */
    for (int i = 0; i < 5000 && !atomic_load(&info_runs); i++)
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    ASSERT_EQ(atomic_load(&info_runs), 1);
    ASSERT_EQ(atomic_load(&info_value), 42);
    ASSERT_EQ(atomic_load(&info_code), SI_QUEUE);
    /* the same oact as act */
    o = sa;
    int (*volatile sa_fn)(int, const struct sigaction *, struct sigaction *) = sigaction;
    ASSERT_EQ(sa_fn(SIGUSR2, &o, &o), 0);
    ASSERT_PTR_EQ(o.sa_sigaction, h_info);

    /* signal and its kin */
    ASSERT_PTR_EQ(signal(SIGUSR2, (__sighandler_t)(void (*)(void))h_info), h_plain);
    ASSERT_PTR_EQ(signal(SIGUSR2, h_plain), (__sighandler_t)(void (*)(void))h_info);
    ASSERT_PTR_EQ(bsd_signal(SIGUSR2, SIG_IGN), h_plain);
    ASSERT_PTR_EQ(sysv_signal(SIGUSR2, h_plain), SIG_IGN);
    ASSERT_PTR_EQ(ssignal(SIGUSR2, h_plain), h_plain);
    ASSERT_PTR_EQ(signal(SIGUSR2, SIG_DFL), h_plain);
    ASSERT_PTR_EQ(signal(0, h_plain), SIG_ERR);
    ASSERT_EQ(errno, EINVAL);
    struct sigaction bad = { .sa_handler = h_plain };
    ASSERT_EQ(sigaction(SIGKILL, &bad, NULL), -1);
    ASSERT_EQ(errno, EINVAL);
    ASSERT_EQ(sigaction(NSIG + 5, NULL, &o), -1);
    ASSERT_EQ(errno, EINVAL);
    /* sigset: SIG_HOLD, then the handler */
    ASSERT_PTR_EQ(sigset(SIGUSR2, h_plain), SIG_DFL);
    ASSERT_PTR_EQ(sigset(SIGUSR2, SIG_HOLD), h_plain);
    ASSERT(blocked_now(SIGUSR2));
    ASSERT_PTR_EQ(sigset(SIGUSR2, h_plain), SIG_HOLD);
    ASSERT(!blocked_now(SIGUSR2));
    atomic_store(&plain_runs, 0);
    ASSERT_EQ(raise(SIGUSR2), 0);
    ASSERT_EQ(atomic_load(&plain_runs), 1);
    ASSERT_PTR_EQ(signal(SIGUSR2, SIG_DFL), h_plain);
}

static void h_reset(int sig)
{
    (void)sig;
    atomic_fetch_add(&reset_runs, 1);
}

static atomic_int depth_now;

static void h_nest(int sig)
{
    int d = atomic_fetch_add(&depth_now, 1) + 1;
    if (d > atomic_load(&nest_max))
        atomic_store(&nest_max, d);
    if (atomic_fetch_add(&nest_runs, 1) == 0)
        pthread_kill(pthread_self(), sig); /* SA_NODEFER: runs nested, now */
    atomic_fetch_sub(&depth_now, 1);
}

static void test_flags(void)
{
    /* SA_RESETHAND: runs once, then the kernel's default, which a query
     * shows */
    struct sigaction sa = { .sa_handler = h_reset, .sa_flags = SA_RESETHAND }, o;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
    ASSERT_EQ(atomic_load(&reset_runs), 1);
    ASSERT_EQ(sigaction(SIGUSR2, NULL, &o), 0);
    ASSERT_PTR_EQ(o.sa_handler, SIG_DFL);
    /* sysv_signal: SA_RESETHAND too */
    ASSERT_PTR_EQ(sysv_signal(SIGUSR2, h_reset), SIG_DFL);
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
    ASSERT_EQ(atomic_load(&reset_runs), 2);
    ASSERT_PTR_EQ(signal(SIGUSR2, SIG_IGN), SIG_DFL);

    /* SA_NODEFER: the handler nests */
    struct sigaction nd = { .sa_handler = h_nest, .sa_flags = SA_NODEFER };
    sigemptyset(&nd.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR2, &nd, NULL), 0);
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
    ASSERT_EQ(atomic_load(&nest_runs), 2);
    ASSERT_EQ(atomic_load(&nest_max), 2);
    ASSERT(!blocked_now(SIGUSR2));
    ASSERT_PTR_EQ(signal(SIGUSR2, SIG_DFL), h_nest);
}

/* errno: the handler sees the interrupted code's, and what it leaves is
 * what that code sees (the trampoline touches neither). */
static atomic_int errno_seen;

static void h_errno(int sig)
{
    (void)sig;
    atomic_store(&errno_seen, errno);
    errno = EIO;
}

static void test_errno(void)
{
    ASSERT_PTR_EQ(signal(SIGUSR2, h_errno), SIG_DFL);
    errno = ERANGE;
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
    ASSERT_EQ(atomic_load(&errno_seen), ERANGE);
    ASSERT_EQ(errno, EIO);
    ASSERT_PTR_EQ(signal(SIGUSR2, SIG_DFL), h_errno);
}

/* A handler put in place around the hooks (libc's sigaction: as by code
 * that ran before the hooks were loaded): a query returns it as it is, it
 * runs, and reinstalled through the hooks it still does. */
static void test_foreign(void)
{
    struct sigaction sa = { .sa_handler = h_plain }, o;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(libc_sigaction(SIGUSR2, &sa, NULL), 0);
    ASSERT_EQ(sigaction(SIGUSR2, NULL, &o), 0);
    ASSERT_PTR_EQ(o.sa_handler, h_plain);
    atomic_store(&plain_runs, 0);
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
    ASSERT_EQ(atomic_load(&plain_runs), 1);
    struct sigaction o2;
    ASSERT_EQ(sigaction(SIGUSR2, &o, &o2), 0); /* save-and-restore, as libraries do */
    ASSERT_PTR_EQ(o2.sa_handler, h_plain);
    if (!nosig)
        ASSERT_NE(kernel_handler(SIGUSR2), (uintptr_t)h_plain);
    ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
    ASSERT_EQ(atomic_load(&plain_runs), 2);
    ASSERT_PTR_EQ(signal(SIGUSR2, SIG_DFL), h_plain);
}

/* ---- a handler left by siglongjmp --------------------------------------- */

/* The count of handlers stays up; the hooks must notice that the caller is
 * no longer in the handler, and park again: coroutine B, on the same
 * worker, runs and writes what C reads.  If C's read blocked the thread, B
 * could not run (one worker, hand-off off), and the rescue thread writes
 * after RESCUE_MS. */
static sigjmp_buf jump_env;
static int jp[2];

static void h_jump(int sig)
{
    (void)sig;
    siglongjmp(jump_env, 1);
}

static void *jump_c(void *arg)
{
    (void)arg;
    if (sigsetjmp(jump_env, 1) == 0) {
        pthread_kill(pthread_self(), SIGUSR2);
        ASSERT(0); /* the handler jumps back */
    }
    ASSERT(!blocked_now(SIGUSR2));
    char c = 0;
    ASSERT_EQ(read(jp[0], &c, 1), 1);
    ASSERT_EQ(c, 'b');
    ASSERT_EQ(atomic_load(&b_ran), 1);
    return NULL;
}

static void *jump_b(void *arg)
{
    (void)arg;
    b_start();
    ASSERT_EQ(write(jp[1], "b", 1), 1);
    return NULL;
}

static void jump_rescue(void *arg)
{
    (void)arg;
    (void)!write(jp[1], "r", 1);
}

static void test_longjmp(void)
{
    ASSERT_EQ(pipe(jp), 0);
    ASSERT_PTR_EQ(signal(SIGUSR2, h_jump), SIG_DFL);
    rescue_t r;
    rescue_start(&r, jump_rescue, NULL);
    run_pair(jump_c, jump_b, NULL);
    rescue_stop(&r);
    ASSERT_PTR_EQ(signal(SIGUSR2, SIG_DFL), h_jump);
    close(jp[0]);
    close(jp[1]);
}

/* ---- libmay's SIGSEGV handler, with the hooks ---------------------------- */

static void *noop(void *arg)
{
    return arg;
}

static void test_overflow(void)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    fflush(stdout);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        may_config_t cfg = { .stack_mode = MAY_STACK_GUARD, .workers = 1 };
        may_configure(&cfg);
        may_co_t *c;
        may_spawn(&c, noop, NULL, NULL); /* starts the runtime: its handler is in */
        may_join(c, NULL, MAY_FOREVER);
        struct sigaction o;
        sigaction(SIGSEGV, NULL, &o);
        uintptr_t k = kernel_handler(SIGSEGV);
        fprintf(stderr, "trampoline %d onstack %d\n", k != (uintptr_t)o.sa_handler,
                !!(o.sa_flags & SA_ONSTACK));
        may_spawn_opts_t opts = { .name = "deep-hooked" };
        may_spawn(&c, test_overflow_entry, NULL, &opts);
        may_join(c, NULL, MAY_FOREVER);
        _exit(0); /* not reached if the overflow is caught */
    }
    close(pipefd[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while ((r = read(pipefd[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(pipefd[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    printf("overflow child: status %#x, said: %s", status, buf);
    ASSERT(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    ASSERT(strstr(buf, "stack overflow in coroutine") != NULL);
    ASSERT(strstr(buf, "deep-hooked") != NULL);
    ASSERT(strstr(buf, "onstack 1") != NULL);
    if (!nosig)
        ASSERT(strstr(buf, "trampoline 1") != NULL);
}

int main(int argc, char **argv)
{
    alarm(120);
    nosig = argc > 1 && strcmp(argv[1], "nosig") == 0;
    if (nosig) {
        const char *e = getenv("MAY_HOOK_NO_SIGTRAMP");
        ASSERT(e && e[0] == '1');
    }
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    ASSERT(libc != NULL);
    libc_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(
        libc, "sigaction");
    ASSERT(libc_sigaction != NULL);
    ASSERT(libc_sigaction != sigaction); /* sigaction is the hook's */
    if (!nosig)
        test_overflow(); /* first: its child starts a runtime of its own */

    one_worker();
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    for (int i = 0; i < OPS; i++)
        test_handler_call(i);
    /* on the worker's alternate signal stack (not under valgrind: back from
     * the alternate stack to a coroutine's, with or without the hooks, it
     * takes the coroutine's stack for invalid memory) */
    int vg = 0;
#ifdef HAVE_VG
    vg = RUNNING_ON_VALGRIND;
#endif
    if (!vg) {
        sa.sa_flags = SA_ONSTACK;
        ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
        test_handler_call(OP_READ);
        ASSERT(atomic_load(&on_alt));
    }
    ASSERT_PTR_EQ(signal(SIGUSR1, SIG_DFL), on_usr1);
    if (nosig) {
        printf("test_hook_signal nosig: ok\n");
        return 0;
    }
    test_round_trip();
    test_flags();
    test_errno();
    test_foreign();
    test_longjmp();
    printf("test_hook_signal: ok\n");
    return 0;
}
