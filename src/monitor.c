/*
 * monitor.c - the monitor: one more thread, like Go's sysmon, that watches
 * for what the workers cannot see because they are busy.
 *
 * What it looks for:
 *
 *   - a worker that has run one coroutine for a whole tick (a CPU loop, or
 *     a call that blocks its thread) while coroutines wait in its ring, its
 *     runnext or the unpinned part of its inbox: an idle worker is woken to
 *     steal them;
 *   - a timer overdue by 2 ms, or fds waited on with nobody in the poller,
 *     at two ticks in a row: the poller left it to run work that keeps its
 *     thread, while the other workers sleep on their futexes.  An idle
 *     worker is woken; it runs the due timers, or finds nothing to run and
 *     takes the poller over.
 *
 *   - a worker blocked in the kernel with a coroutine on it (two ticks
 *     without progress and its thread inside a system call, or one tick
 *     inside may_blocking_begin/_end): handed off, its queued work and its
 *     place going to a spare thread (may__handoff_check, src/handoff.c);
 *
 *   - a coroutine that has held its worker for MAY_STUCK_REPORT_MS (read
 *     at start; default 10 ms, Go's sysmon's preemption threshold; 0 = off)
 *     without progress: it is reported on stderr, with its id, name and
 *     worker, how long so far, and what its thread does: running (a CPU
 *     loop) or blocked in the kernel (mon_thread_kind).
 *
 * Stuck reports.  Progress is a switch (n_switch) or a may_yield that
 * found nothing else to run (n_lone_yield): such a loop lets anything that
 * arrives run, so it is not stuck.  An episode starts at the tick that saw
 * progress last (mon_since, coarse clock: the duration is a lower bound, a
 * tick short at most).  Its first stuck tick samples the time and the
 * thread's CPU time (mon_t0, mon_cpu0), so the classification can weigh
 * the CPU time used over at least half the threshold besides the state
 * letter in /proc, which is a mere sample (valgrind runs one thread at a
 * time, so a looping thread waiting for its turn reads S: in test_stuck
 * under valgrind, without the CPU time, one run in three called a CPU loop
 * blocked).  An episode is reported once (mon_reported), and at most one
 * report a second is printed; the episodes held back meanwhile are counted
 * and the next report says how many.  All of it runs in the monitor and
 * only for a worker that made no progress for a tick: a syscall or two and
 * a /proc read per episode, nothing on the workers' paths but the count
 * of lone yields.  The id and name are read as may_stats reads them: under
 * the stack lock, racily, then the episode is checked again.  The report
 * needs the monitor, so a one-worker runtime makes none.
 *
 * Apart from a hand-off, it never moves work itself; it only wakes
 * workers, through the same may__wakep() as everything else.  A hand-off's
 * episode is not reported (mon_reported is set): the worker no longer
 * holds anyone up.  It also joins the threads of spares that left.
 *
 * Its cost.  It ticks every 1 ms, doubling the period after every 50 ticks
 * in a row that found nothing to do, up to 10 ms, and sleeps on a futex
 * (may__mon_word) while every worker is idle, so a quiet runtime still
 * makes no wake-ups.  A worker that leaves the idle list wakes it
 * (may__mon_kick, inline in sched_impl.h; "every worker" means every
 * active one: nidle >= nactive).  start.c starts it after the workers,
 * when there are two or more or the hand-off is on (with one worker and no
 * hand-off there is nobody to wake), and stops it before them.
 *
 * Memory ordering.  The monitor's sleep is Dekker pair D8
 * (docs/ARCHITECTURE.md): it stores may__mon_sleeping = 1, then loads
 * nidle; a worker decrements nidle, then loads may__mon_sleeping; seq_cst
 * on both sides, so at least one of them sees the other.  What it reads of
 * the workers (n_switch, sleep_word, the queues' lengths) it reads without
 * a lock and mostly relaxed: a stale value costs a tick, and each tick
 * looks again.  mon_switches, the episode fields (mon_since, mon_t0,
 * mon_cpu0, mon_reported), the report's rate limit and the tick counts in
 * mon_check are the monitor's own.  A worker's tid is stored with release
 * by its thread and loaded with acquire here (0: not started yet).
 *
 * Locks: none of its own; may__wakep takes the idle lock, and a stuck
 * report the stack lock (may__stacks_hold), alone.
 */
#include "internal.h"
#include "sched_impl.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MON_TICK_NS 1000000LL
#define MON_TICK_MAX_NS 10000000LL

/* may__mon_word and may__mon_sleeping are declared in sched_impl.h, for
 * may__mon_kick. */
static pthread_t mon_thread;
static int mon_running;
_Atomic uint32_t may__mon_word;
_Atomic int may__mon_sleeping;

/* ---- stuck reports -------------------------------------------------------- */

/* Set by may__monitor_start from MAY_STUCK_REPORT_MS; 0 = no reports.  The
 * rest is the rate limit's state.  All of it is the monitor's own. */
static int64_t stuck_ns;
static int64_t report_last; /* when the last report was printed (coarse clock) */
static int reported_any;    /* report_last is valid */
static unsigned report_suppressed; /* episodes left unreported since then */

static int64_t clock_ns(clockid_t clk)
{
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The CPU time w's thread has used, or -1 if the kernel will not say. */
static int64_t thread_cpu_ns(may__worker *w)
{
    return may__plat_thread_cpu_ns(w->thread);
}

int may__task_read(int tid, const char *file, char *buf, size_t cap)
{
    if (tid <= 0 || cap < 2)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/%s", tid, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return (int)n;
}

/* The state letter of thread tid in /proc/self/task/TID/stat (R running or
 * runnable, S sleeping, D in uninterruptible wait, ...), or 0 if /proc
 * cannot tell.  The letter follows the last ')' (the thread's name, in
 * parentheses, may itself hold one). */
static char thread_state(int tid)
{
    char buf[512];
    if (!may__task_read(tid, "stat", buf, sizeof buf))
        return 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

enum { MON_UNKNOWN, MON_RUNNING, MON_BLOCKED };

/* What w's thread is doing while one coroutine holds it: running (a CPU
 * loop) or blocked in the kernel.  share is the thread's CPU time over
 * wall time since the episode's first stuck tick (-1: unknown).  The state
 * letter is a sample, and a looping thread can be caught off the CPU (a
 * page fault shows D; valgrind runs one thread at a time, so while the
 * monitor reads, every other thread waits in the kernel for its turn): a
 * thread that used a quarter of the time or more counts as running too.
 * The hand-off of issue 11 is to reuse this. */
static int mon_thread_kind(may__worker *w, double share)
{
    /* acquire: pairs with the release store in may__worker_main */
    char c = thread_state(atomic_load_explicit(&w->tid, memory_order_acquire));
    if (c == 'R' || share >= 0.25)
        return MON_RUNNING;
    if (c == 'S' || c == 'D')
        return MON_BLOCKED;
    return MON_UNKNOWN;
}

/* w's progress count: a switch, or a yield that found nothing else to run. */
static uint64_t mon_progress(may__worker *w)
{
    return atomic_load_explicit(&w->n_switch, memory_order_relaxed) +
           atomic_load_explicit(&w->n_lone_yield, memory_order_relaxed);
}

/* The coroutine w runs now, or NULL in its own stack (idle, polling,
 * looking for work).  w->cur is the owner's plain field: read racily. */
__attribute__((no_sanitize("thread"))) static struct may_co *mon_cur(may__worker *w)
{
    return ((volatile may__worker *)w)->cur;
}

/* Copy the id and name of the coroutine w runs, if it is still the one of
 * the episode whose progress count is sw.  Called under the stack lock,
 * as may_stats and may_dump read: the coroutine may have ended since and
 * its control block been freed, or reused by another coroutine, but its
 * stack cannot be unmapped meanwhile.  So the fields are read racily, then
 * the episode is checked again: if w switched meanwhile (n_switch counts
 * every switch to a coroutine, from g0 too), what was read is discarded. */
__attribute__((no_sanitize("address", "thread", "undefined"), noinline)) static int
mon_read_co(may__worker *w, uint64_t sw, uint64_t *id, char *name, size_t cap)
{
    struct may_co *co = mon_cur(w);
    if (!co || atomic_load_explicit(&co->magic, memory_order_acquire) != MAY__CO_MAGIC)
        return 0;
    *id = ((volatile struct may_co *)co)->id;
    const volatile char *src = ((volatile struct may_co *)co)->name;
    size_t i = 0;
    for (; i + 1 < cap && i < sizeof co->name && src[i]; i++) {
        char c = src[i];
        name[i] = c >= 0x20 && c < 0x7f && c != '"' ? c : '?';
    }
    name[i] = 0;
    /* acquire: the reads above are done before these loads look again */
    atomic_thread_fence(memory_order_acquire);
    return mon_cur(w) == co && mon_progress(w) == sw;
}

/* Report the episode of w (progress count sw), held for held_ns, whose
 * thread is of kind k, unless the rate limit (one report a second) holds
 * it back: then it is counted, and the next report says how many. */
static void mon_report(may__worker *w, uint64_t sw, int64_t now, int64_t held_ns, int k)
{
    if (reported_any && now - report_last < 1000000000) {
        report_suppressed++;
        return;
    }
    uint64_t id;
    char name[32];
    may__stacks_hold(1);
    int ok = mon_read_co(w, sw, &id, name, sizeof name);
    may__stacks_hold(0);
    if (!ok)
        return; /* it moved on meanwhile: not stuck after all */
    char more[64] = "";
    if (report_suppressed)
        snprintf(more, sizeof more, " (%u more not reported)", report_suppressed);
    const char *what =
        k == MON_RUNNING ? "its thread is running: a CPU loop? yield in long loops, or offload" :
        k == MON_BLOCKED ? "its thread is blocked in a system call: a blocking call? use "
                           "may_offload, the may_ I/O calls or libmay_hook" :
#ifdef _WIN32
                           "its thread's state is unknown (its CPU time says too little)";
#else
                           "its thread's state is unknown (/proc/self/task unreadable)";
#endif
    fprintf(stderr, "may: coroutine %llu \"%s\" has held worker %d for %lld ms: %s%s\n",
            (unsigned long long)id, name, w->index, (long long)(held_ns / 1000000), what, more);
    reported_any = 1;
    report_last = now;
    report_suppressed = 0;
}

/* w has made no progress since the last tick, at now (coarse clock), and
 * its episode was not reported yet.  Nonzero to ask for a short next tick
 * (the CPU share wants a longer sample first). */
static int mon_stuck(may__worker *w, uint64_t sw, int64_t now)
{
    if (!mon_cur(w)) { /* in its own stack: not a coroutine's doing */
        w->mon_since = now;
        w->mon_t0 = 0;
        return 0;
    }
    if (w->mon_t0 == 0) { /* the episode's first stuck tick */
        w->mon_t0 = clock_ns(CLOCK_MONOTONIC);
        w->mon_cpu0 = thread_cpu_ns(w);
    }
    if (now - w->mon_since < stuck_ns)
        return 0;
    int64_t t = clock_ns(CLOCK_MONOTONIC);
    int64_t span = t - w->mon_t0;
    int64_t min_span = stuck_ns / 2 > MON_TICK_NS ? stuck_ns / 2 : MON_TICK_NS;
    if (span < min_span)
        return 1;
    int64_t cpu = thread_cpu_ns(w);
    double share = cpu >= 0 && w->mon_cpu0 >= 0 ? (double)(cpu - w->mon_cpu0) / (double)span : -1;
    mon_report(w, sw, now, now - w->mon_since, mon_thread_kind(w, share));
    w->mon_reported = 1;
    return 0;
}

/* One look at the workers; nonzero if it woke one, or wants a short tick. */
static int mon_check(void)
{
    int n = atomic_load_explicit(&may__S.nall, memory_order_acquire);
    int64_t now = clock_ns(CLOCK_MONOTONIC_COARSE);
    int busy = 0;
    if (n > may__S.nworkers)
        may__handoff_reap();
    for (int i = 0; i < n; i++) {
        may__worker *w = may__S.workers[i];
        uint64_t sw = mon_progress(w);
        int same = sw == w->mon_switches;
        w->mon_switches = sw;
        if (!same) { /* a new episode, if it lasts */
            w->mon_since = now;
            w->mon_t0 = 0;
            w->mon_reported = 0;
            w->mon_same = 0;
        } else {
            w->mon_same++;
            /* Blocked in the kernel with a coroutine on it: its queue and
             * its place go to another thread (handoff.c). */
            if (mon_cur(w) &&
                atomic_load_explicit(&w->role, memory_order_relaxed) == MAY__ROLE_ACTIVE &&
                may__handoff_check(w, w->mon_same)) {
                busy = 1;
                w->mon_reported = 1; /* handed off, so not reported */
            }
            if (stuck_ns && !w->mon_reported)
                busy |= mon_stuck(w, sw, now);
        }
        /* Still in the coroutine it ran a tick ago, with work queued behind
         * it: let an idle worker steal that work (runnext and unpinned
         * inbox entries included). */
        if (same && atomic_load_explicit(&w->sleep_word, memory_order_relaxed) == 0 &&
            (may__runq_len(w) || atomic_load_explicit(&w->runnext, memory_order_relaxed) ||
             atomic_load_explicit(&w->inbox_free, memory_order_relaxed)) &&
            atomic_load(&may__S.nidle) > 0) {
            may__wakep();
            return 1;
        }
    }
    /* A timer overdue by 2 ms, or fds waited on with nobody in the poller,
     * at two ticks in a row: the poller left it to run work that keeps its
     * thread, and the other workers sleep on their futexes.  One of them
     * that wakes runs the due timers, or finds nothing to run and becomes
     * the poller.  (The coarse clock is enough for that, and reading the
     * precise one from here measurably disturbed timer lateness on the VM
     * this was tuned on.) */
    static int nopoll_ticks, overdue_ticks; /* the monitor's own */
    int64_t next = may__timers_next();
    int overdue = next != INT64_MAX && next < now - 2 * MON_TICK_NS;
    int fd_unwatched = atomic_load_explicit(&may__io_waiters, memory_order_relaxed) > 0 &&
                       !atomic_load(&may__S.poller_busy);
    nopoll_ticks = fd_unwatched ? nopoll_ticks + 1 : 0;
    overdue_ticks = overdue ? overdue_ticks + 1 : 0;
    if (atomic_load(&may__S.nidle) > 0 && (overdue_ticks >= 2 || nopoll_ticks >= 2)) {
        nopoll_ticks = overdue_ticks = 0;
        may__wakep();
        return 1;
    }
    return busy;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    may__plat_set_thread_name("may-monitor");
    int64_t delay = MON_TICK_NS;
    int quiet = 0;
    while (!atomic_load(&may__S.stopping)) {
        /* Every active worker idle: nothing to watch.  (A lent one may
         * still block; when its thread comes back it takes an active place
         * or becomes a spare, and either way needs no watching.) */
        if (atomic_load(&may__S.nidle) >= atomic_load(&may__S.nactive)) {
            /* seq_cst: Dekker pair with may__mon_kick */
            atomic_store(&may__mon_sleeping, 1);
            if (atomic_load(&may__S.nidle) >= atomic_load(&may__S.nactive) &&
                !atomic_load(&may__S.stopping))
                may__futex_wait(&may__mon_word, 0, -1);
            atomic_store(&may__mon_sleeping, 0);
            atomic_store(&may__mon_word, 0);
            delay = MON_TICK_NS;
            quiet = 0;
            continue;
        }
        may__futex_wait(&may__mon_word, 0, delay);
        atomic_store(&may__mon_word, 0);
        if (atomic_load(&may__S.stopping))
            break;
        if (mon_check()) {
            delay = MON_TICK_NS;
            quiet = 0;
        } else if (++quiet >= 50 && delay < MON_TICK_MAX_NS) {
            delay = delay * 2 < MON_TICK_MAX_NS ? delay * 2 : MON_TICK_MAX_NS;
            quiet = 0;
        }
    }
    return NULL;
}

MAY_NOINLINE int may__monitor_start(void)
{
    /* MAY_STUCK_REPORT_MS: the threshold of stuck reports, 0 = none */
    stuck_ns = 10 * 1000000LL;
    const char *env = getenv("MAY_STUCK_REPORT_MS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == 0 && v >= 0 && v <= 3600 * 1000)
            stuck_ns = (int64_t)v * 1000000;
    }
    reported_any = 0;
    report_suppressed = 0;
    atomic_store(&may__mon_word, 0);
    atomic_store(&may__mon_sleeping, 0);
    int e = pthread_create(&mon_thread, NULL, monitor_main, NULL);
    if (e)
        return -e;
    mon_running = 1;
    return 0;
}

MAY_NOINLINE void may__monitor_stop(void)
{
    if (mon_running) {
        atomic_store(&may__mon_word, 1);
        may__futex_wake(&may__mon_word, 1);
        pthread_join(mon_thread, NULL);
        mon_running = 0;
    }
}
