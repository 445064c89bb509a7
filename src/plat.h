/*
 * plat.h - the operating-system layer: the few primitives the runtime needs
 * from the kernel that POSIX does not give portably, one interface with a
 * Linux and a Windows half (docs/ARCHITECTURE.md, "The platform layer").
 *
 *   may__futex_wait(w, v, rel)   sleep while *w == v, at most rel ns
 *                                (-1: no limit); spurious returns allowed
 *   may__futex_wait_until(w, v, dl)  the same up to an absolute monotonic
 *                                deadline (-1: none)
 *   may__futex_wake(w, n)        wake up to n sleepers on w (INT_MAX: all)
 *   may__gettid()                the calling thread's kernel id (may_dump,
 *                                the monitor's "is it in a system call")
 *   may__plat_sleep_until(dl)    sleep the thread until the monotonic dl
 *   may__plat_set_thread_name(s) name the calling thread for debuggers
 *   may__plat_ncpu()             CPUs this process may run on
 *   may__plat_pin(i)             pin the calling thread to the i-th of them
 *                                (modulo their number)
 *   may__plat_thread_stack(&lo, &size)  the calling thread's own stack
 *                                (0 or -1)
 *   may__plat_thread_cpu_ns(t)   CPU time thread t has used, or -1
 *   may__aligned_alloc/free      cache-line aligned memory
 *   may__plat_block_signals(&old) / _restore(&old)  a thread made in
 *                                between takes no asynchronous signals
 *                                (nothing to do on Windows)
 *
 * Linux: the futex system call (private, and FUTEX_WAIT_BITSET on the
 * monotonic clock for absolute deadlines, so a clock step never stretches a
 * sleep).  Windows: WaitOnAddress / WakeByAddressSingle/All on the same
 * 32-bit word; it takes a relative timeout in milliseconds, so absolute
 * deadlines are turned into one (rounded up, never early) and the caller's
 * loop re-checks the clock, as every caller here already does.
 *
 * Everything else the runtime takes from the system is POSIX (threads,
 * mutexes, condition variables, thread-local keys, clock_gettime): on
 * Windows it comes from MinGW-w64's winpthreads, linked statically, which
 * maps them onto SRW locks, condition variables and Win32 threads.  The
 * stacks (src/stack.c, src/win/stack_win.c), the context switch
 * (src/arch/), and the poller (src/poll_epoll.c, src/win/poll_iocp.c) have
 * their own per-platform files behind their own interfaces.
 */
#ifndef MAY_PLAT_H
#define MAY_PLAT_H

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <windows.h>

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>

/* The monotonic clock in ns (internal.h's may__now reads it too). */
static inline int64_t may__plat_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void may__futex_wait(_Atomic uint32_t *w, uint32_t v, int64_t rel)
{
    DWORD ms = INFINITE;
    if (rel >= 0) {
        int64_t m = (rel + 999999) / 1000000;
        ms = m >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)m;
    }
    WaitOnAddress((volatile void *)w, &v, sizeof v, ms);
}

static inline void may__futex_wait_until(_Atomic uint32_t *w, uint32_t v, int64_t deadline)
{
    int64_t rel = -1;
    if (deadline >= 0) {
        rel = deadline - may__plat_now();
        if (rel < 0)
            rel = 0;
    }
    may__futex_wait(w, v, rel);
}

static inline void may__futex_wake(_Atomic uint32_t *w, int n)
{
    if (n == 1)
        WakeByAddressSingle((void *)w);
    else
        WakeByAddressAll((void *)w);
}

static inline int may__gettid(void)
{
    return (int)GetCurrentThreadId();
}

static inline void may__plat_sleep_until(int64_t deadline)
{
    /* winpthreads' clock_nanosleep does not take an absolute monotonic
     * time; sleep in rounded-up milliseconds until the clock says so */
    int64_t d;
    while ((d = deadline - may__plat_now()) > 0)
        Sleep((DWORD)((d + 999999) / 1000000 > 0x7fffffff ? 0x7fffffff : (d + 999999) / 1000000));
}

/* SetThreadDescription (Windows 10 1607 and later, looked up so that older
 * systems still load the library): winpthreads' pthread_setname_np names
 * the thread only for its own pthread_getname_np. */
static inline void may__plat_set_thread_name(const char *name)
{
    typedef HRESULT(WINAPI * set_fn)(HANDLE, PCWSTR);
    static set_fn fn;
    static int looked;
    if (!looked) { /* racy but idempotent: every thread finds the same */
        HMODULE k = GetModuleHandleA("kernel32.dll");
        fn = k ? (set_fn)(void (*)(void))GetProcAddress(k, "SetThreadDescription") : NULL;
        looked = 1;
    }
    wchar_t w[32];
    int i = 0;
    for (; name[i] && i < 31; i++)
        w[i] = (wchar_t)(unsigned char)name[i];
    w[i] = 0;
    if (fn)
        fn(GetCurrentThread(), w);
    pthread_setname_np(pthread_self(), name);
}

static inline int may__plat_ncpu(void)
{
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    return n > 0 ? (int)n : 1;
}

static inline void may__plat_pin(int i)
{
    DWORD_PTR proc, sys;
    if (!GetProcessAffinityMask(GetCurrentProcess(), &proc, &sys) || proc == 0)
        return;
    int n = __builtin_popcountll((unsigned long long)proc), k = 0;
    for (int c = 0; c < 64; c++) {
        if (!(proc & ((DWORD_PTR)1 << c)))
            continue;
        if (k++ == i % n) {
            SetThreadAffinityMask(GetCurrentThread(), (DWORD_PTR)1 << c);
            return;
        }
    }
}

static inline int may__plat_thread_stack(void **lo, size_t *size)
{
    ULONG_PTR l, h;
    GetCurrentThreadStackLimits(&l, &h);
    *lo = (void *)l;
    *size = (size_t)(h - l);
    return 0;
}

static inline int64_t may__plat_thread_cpu_ns(pthread_t t)
{
    FILETIME c, e, k, u;
    if (!GetThreadTimes(pthread_gethandle(t), &c, &e, &k, &u))
        return -1;
    uint64_t v = ((uint64_t)k.dwHighDateTime << 32 | k.dwLowDateTime) +
                 ((uint64_t)u.dwHighDateTime << 32 | u.dwLowDateTime);
    return (int64_t)v * 100; /* 100 ns units */
}

static inline void *may__aligned_alloc(size_t align, size_t size)
{
    return _aligned_malloc(size, align);
}

static inline void may__aligned_free(void *p)
{
    _aligned_free(p);
}

typedef int may__plat_sigmask;
static inline void may__plat_block_signals(may__plat_sigmask *old)
{
    *old = 0;
}
static inline void may__plat_restore_signals(const may__plat_sigmask *old)
{
    (void)old;
}

/* POSIX names MinGW lacks, for code that is otherwise the same. */
#ifndef CLOCK_MONOTONIC_COARSE
#define CLOCK_MONOTONIC_COARSE CLOCK_MONOTONIC
#endif
#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#ifndef PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP
#define PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP PTHREAD_RECURSIVE_MUTEX_INITIALIZER
#endif

#else /* Linux */
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline void may__futex_wait(_Atomic uint32_t *w, uint32_t v, int64_t rel)
{
    struct timespec ts, *tsp = NULL;
    if (rel >= 0) {
        ts.tv_sec = rel / 1000000000;
        ts.tv_nsec = rel % 1000000000;
        tsp = &ts;
    }
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, tsp, NULL, 0);
}

static inline void may__futex_wait_until(_Atomic uint32_t *w, uint32_t v, int64_t deadline)
{
    struct timespec ts, *tsp = NULL;
    if (deadline >= 0) {
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        tsp = &ts;
    }
    syscall(SYS_futex, w, FUTEX_WAIT_BITSET_PRIVATE, v, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
}

static inline void may__futex_wake(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline int may__gettid(void)
{
    return (int)syscall(SYS_gettid);
}

static inline void may__plat_sleep_until(int64_t deadline)
{
    struct timespec ts = { .tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000 };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static inline void may__plat_set_thread_name(const char *name)
{
    pthread_setname_np(pthread_self(), name);
}

static inline int may__plat_ncpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static inline void may__plat_pin(int i)
{
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof all, &all) != 0)
        return;
    int k = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &all))
            continue;
        if (k++ == i % CPU_COUNT(&all)) {
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
}

static inline int may__plat_thread_stack(void **lo, size_t *size)
{
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return -1;
    pthread_attr_getstack(&attr, lo, size);
    pthread_attr_destroy(&attr);
    return 0;
}

static inline int64_t may__plat_thread_cpu_ns(pthread_t t)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(t, &cid) != 0 || clock_gettime(cid, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void *may__aligned_alloc(size_t align, size_t size)
{
    return aligned_alloc(align, size);
}

static inline void may__aligned_free(void *p)
{
    free(p);
}

typedef sigset_t may__plat_sigmask;
static inline void may__plat_block_signals(may__plat_sigmask *old)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
}
static inline void may__plat_restore_signals(const may__plat_sigmask *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}
#endif

#endif
