/*
 * handoff.c - keeping N workers running while threads block: Go's hand-off
 * of a blocked thread's processor (sysmon's retake, handoffp), for a
 * runtime that cannot see every blocking call.
 *
 * The problem.  A coroutine that calls something blocking (a raw
 * nanosleep, a read of a regular file, a contended pthread mutex, a
 * third-party client library) holds its worker's thread in the kernel for
 * as long as the call lasts, and the coroutines queued on that worker wait
 * with it.  Go never has the problem because every system call goes
 * through entersyscall, which lets sysmon give the thread's processor (P)
 * to another thread.  Here most blocking calls are not ours to wrap.
 *
 * What moves.  Go moves the processor: the P struct, with its run queue,
 * is taken from the blocked M and given to another.  That is safe in Go
 * because the blocked M, on its way back, must pass exitsyscall, which
 * asks for its P again.  A thread returning from a call libmay never saw
 * passes no such gate: its coroutine simply goes on, and the first thing
 * it does may be a switch that pops the worker's queue as its owner.  So
 * here a worker (queues, stack pool, counters) stays with its thread for
 * the thread's life, and what moves is
 *
 *   - the worker's queued work that others may run: runnext, the ring and
 *     the unpinned part of the inbox, moved to the global queue through
 *     the same thief-safe paths stealing uses, and
 *   - its place among the N active workers: a spare worker (a sleeping
 *     thread of our own, or a new one) becomes active in its stead.
 *
 * The blocked worker becomes LENT.  When its thread comes back it goes on
 * running its coroutine (the runtime is one worker over N meanwhile),
 * until that coroutine switches: at its next switch after may_blocking_end
 * (which does not switch itself: the caller reads errno after it), else
 * within 61 switches (may__pick_fair) or when it runs dry (find_runnable).  Then,
 * on its own stack, it takes an active place back if one is free, or
 * queues what it has for others and becomes a SPARE.  A spare sleeps on
 * its futex and runs only coroutines locked to its thread (MAY_SPAWN_PINNED,
 * may_lock_thread: pinned means pinned to a thread, so thread-locals,
 * &errno and pthread_self() never change for them), until the monitor
 * makes it active again.  A spare made for a hand-off (index N or more)
 * with nothing locked to it leaves after spare_idle_ms asleep (config;
 * 10 s by default: its worker is DEAD, and may get a new thread later);
 * the first N never leave: an idle spare-born worker hands its active
 * place back to one of them that sits as a spare (may__place_back), so
 * after a burst of blocking calls the runtime returns to its N threads.
 * Workers are made up to max_threads (config; default 10 000, Go's limit)
 * and freed at shutdown, so a worker pointer stays valid for the runtime's
 * life and every loop over workers reads nall.
 *
 * Finding blocked threads (monitor.c calls may__handoff_check each tick).
 * A worker that made no progress for a tick while a coroutine held it is
 * handed off when
 *
 *   - its coroutine is between may_blocking_begin and _end (the call is
 *     known to block: one tick, 1 to 10 ms, Go's 20 us to 10 ms), or
 *   - for two ticks, and its thread is blocked inside a system call:
 *     /proc/self/task/TID/syscall names a system call only while the
 *     thread sleeps in one ("running" while it runs, -1 when it sleeps
 *     outside one, e.g. in a page fault).  A thread in a CPU loop is not
 *     handed off (its queue is stolen, and the loop reported, as before).
 *
 * One worker alone.  With one worker the queues skip read-modify-write
 * instructions (may__S.solo: no thief exists).  Before the first spare is
 * made the monitor clears solo for good, then fences, then checks that the
 * thread is inside a system call (or in a may_blocking bracket, whose end
 * fences: Dekker pair D9 in docs/ARCHITECTURE.md); the fast paths make no
 * system call, so the owner is in none of them, and the next one it enters
 * reads solo == 0.
 *
 * Roles and who changes them (may__worker.role):
 *
 *   ACTIVE -> LENT    the monitor (CAS), nactive - 1
 *   LENT -> ACTIVE    the worker's own thread, if nactive < N (CAS on it)
 *   LENT -> SPARE     the worker's own thread
 *   SPARE -> ACTIVE   the monitor (CAS), nactive + 1, then wakes it; or
 *                     a spare-born active worker with nothing to do, for
 *                     one of the first N, taking its place back
 *   ACTIVE -> SPARE   that spare-born worker itself (CAS), nactive - 1;
 *                     or, while it sleeps idle, a worker of the first N
 *                     coming back lent, which takes its place (CAS under
 *                     the idle lock, may__idle_take_spareborn)
 *   SPARE -> DEAD     the worker's own thread (CAS), then its thread ends
 *   DEAD -> ACTIVE    the monitor under threads_lock, after joining the
 *                     old thread, with a new thread
 *
 * Idle workers and the spinning count.  may__wakep (sched.c) picks a
 * worker off the idle list for outside work and counts it as spinning
 * (nspinning), and wakes nobody while the count is not 0; only active
 * workers take outside work.  So two rules: a worker on the idle list is
 * active, save for a moment (the monitor wakes a worker it hands off
 * idle, its coroutine's call having returned since the monitor looked:
 * it leaves the list; and one that it hands off on the way to sleep sees
 * its role before it sleeps); and a worker counted as spinning that finds
 * itself not active gives the count up and passes the wake on
 * (find_runnable), as one that finds no work does.  Without them a plain
 * thread's coroutine waited in the global queue for good while the
 * active workers idled (fuzz_http found it: a spare handed off idle,
 * picked by may__wakep, gone to sleep as a spare with the count at 1;
 * tests/test_handoff_wake.c).
 *
 * Memory ordering.  Roles are seq_cst; a spare's sleep is the idle
 * sleep's Dekker pair (it stores sleep_word = 1, fences, then reads its
 * role and inbox; the monitor stores the role, then sleep_word = 0, then
 * wakes the futex).  The hand-off of a worker that may be going idle is
 * pair D10 in docs/ARCHITECTURE.md (the monitor CASes the role, then
 * reads sleep_word; the idler stores sleep_word = 1, fences, then reads
 * its role).  nall is stored with release after workers[i] is set and
 * read with acquire by every loop over workers.
 *
 * Locks: threads_lock (rank THREADS) only for making workers and threads
 * and joining threads, by the monitor and by shutdown; the global queue's
 * and inboxes' own locks through the run queue's functions; the idle lock
 * to take an idle spare-born worker's place (may__idle_take_spareborn).
 */
#include "internal.h"
#include "sched_impl.h"

/* How long a spare made for a hand-off sleeps before it leaves (config
 * spare_idle_ms; -1: never). */
static int64_t spare_idle_ns(void)
{
    int ms = may__S.cfg.spare_idle_ms;
    return ms < 0 ? -1 : ms == 0 ? 10 * 1000000000LL : (int64_t)ms * 1000000;
}

/* ---- the bracket -------------------------------------------------------- */

/* The hook of a lone may_yield on a lent worker (sched.c): the coroutine
 * queues itself for the active workers, and the thread looks for its
 * place. */
void may__requeue_global_hook(may__worker *w, struct may_co *co)
{
    (void)w;
    may__gq_push(&co, 1);
    may__wakep();
}

void may_blocking_begin(void)
{
    may__worker *w = may__cur_worker();
    if (!w || !w->cur)
        return;
    if (w->cur->blocking_depth++ == 0)
        atomic_store_explicit(&w->blocking, 1, memory_order_release);
}

void may_blocking_end(void)
{
    may__worker *w = may__cur_worker();
    struct may_co *self = w ? w->cur : NULL;
    if (!self || self->blocking_depth == 0 || --self->blocking_depth > 0)
        return;
    atomic_store_explicit(&w->blocking, 0, memory_order_relaxed);
    /* Dekker pair D9: the store above, then the fast paths' loads of solo */
    atomic_thread_fence(memory_order_seq_cst);
    /* Handed off meanwhile: give the place back at the coroutine's next
     * switch (its tick says look now), not here.  Go's exitsyscall
     * reschedules the goroutine at once; a C caller reads errno (and its
     * thread-locals) after this call, so it must still be on its thread. */
    if (MAY_UNLIKELY(atomic_load_explicit(&w->role, memory_order_relaxed) != MAY__ROLE_ACTIVE))
        w->tick = 1;
}

/* ---- moving work ---------------------------------------------------------- */

/* Move what others may run of w's (runnext, ring, unpinned inbox) to the
 * global queue.  Any thread: the paths are the thieves'.  How many moved. */
static uint32_t drain_to_global(may__worker *w)
{
    struct may_co *batch[MAY__RUNQ_SIZE / 2];
    uint32_t n, moved = 0;
    while ((n = may__runq_grab(w, batch, 1)) > 0) {
        may__gq_push(batch, n);
        moved += n;
    }
    struct may_co *co;
    while (atomic_load_explicit(&w->inbox_free, memory_order_relaxed) &&
           (co = may__inbox_steal(w))) {
        may__gq_push(&co, 1);
        moved++;
    }
    return moved;
}

/* ---- threads ---------------------------------------------------------------- */

int may__worker_thread_start(may__worker *w)
{
    int e = pthread_create(&w->thread, NULL, may__worker_main, w);
    if (e)
        return -e;
    w->thread_live = 1;
    return 0;
}

static int spare_pool_cap(void)
{
    return may__S.cfg.stack_pool ? (int)may__S.cfg.stack_pool : 256;
}

/* Make a worker active in place of a lent one: a sleeping spare, else a
 * dead one or a new one with a new thread.  Monitor only.  0 or -errno. */
static int activate_spare(void)
{
    int nall = atomic_load_explicit(&may__S.nall, memory_order_acquire);
    for (int i = 0; i < nall; i++) {
        may__worker *w = may__S.workers[i];
        int r = MAY__ROLE_SPARE;
        if (atomic_compare_exchange_strong(&w->role, &r, MAY__ROLE_ACTIVE)) {
            atomic_fetch_add(&may__S.nactive, 1);
            may__wake_raw(w);
            return 0;
        }
    }
    int ret = -EAGAIN;
    may__lock(&may__S.threads_lock, MAY__RANK_THREADS);
    may__worker *w = NULL;
    for (int i = 0; i < nall && !w; i++)
        if (atomic_load(&may__S.workers[i]->role) == MAY__ROLE_DEAD)
            w = may__S.workers[i];
    if (w) {
        if (w->thread_live) {
            pthread_join(w->thread, NULL);
            w->thread_live = 0;
        }
    } else if (nall < may__S.max_threads) {
        w = may__worker_new(nall, (size_t)spare_pool_cap());
        if (!w) {
            ret = -ENOMEM;
            goto out;
        }
        atomic_store(&w->role, MAY__ROLE_DEAD);
        may__S.workers[nall] = w;
        /* release: loops over workers read workers[i] after nall */
        atomic_store_explicit(&may__S.nall, nall + 1, memory_order_release);
    } else {
        goto out; /* at the limit: the worker stays lost for now */
    }
    atomic_store(&w->role, MAY__ROLE_ACTIVE);
    atomic_fetch_add(&may__S.nactive, 1);
    ret = may__worker_thread_start(w);
    if (ret < 0) {
        atomic_fetch_sub(&may__S.nactive, 1);
        atomic_store(&w->role, MAY__ROLE_DEAD);
    }
out:
    may__unlock(&may__S.threads_lock, MAY__RANK_THREADS);
    return ret;
}

/* Join the threads of workers that left (monitor, each busy tick). */
void may__handoff_reap(void)
{
    int nall = atomic_load_explicit(&may__S.nall, memory_order_acquire);
    for (int i = may__S.nworkers; i < nall; i++) {
        may__worker *w = may__S.workers[i];
        if (atomic_load_explicit(&w->role, memory_order_relaxed) != MAY__ROLE_DEAD ||
            !w->thread_live)
            continue;
        may__lock(&may__S.threads_lock, MAY__RANK_THREADS);
        if (atomic_load(&w->role) == MAY__ROLE_DEAD && w->thread_live) {
            pthread_join(w->thread, NULL);
            w->thread_live = 0;
        }
        may__unlock(&may__S.threads_lock, MAY__RANK_THREADS);
    }
}

/* ---- the monitor's side -------------------------------------------------- */

/* Whether thread tid sleeps inside a system call now: the first field of
 * /proc/self/task/TID/syscall is its number then ("running" while it
 * runs, -1 while it sleeps outside one). */
static int in_syscall(int tid)
{
    char buf[32];
    return may__task_read(tid, "syscall", buf, sizeof buf) && buf[0] >= '0' && buf[0] <= '9';
}

/* w, active, made no progress for `ticks` ticks in a row while a coroutine
 * held it: hand it off if its thread is blocked.  Monitor only.  Nonzero
 * if it did. */
int may__handoff_check(may__worker *w, int ticks)
{
    if (!may__S.handoff)
        return 0;
    int bracket = atomic_load_explicit(&w->blocking, memory_order_relaxed);
    if (!bracket && ticks < 2)
        return 0;
    if (may__solo()) {
        /* for good: a thief will exist from now on */
        __atomic_store_n(&may__S.solo, 0, __ATOMIC_SEQ_CST);
    }
    /* Dekker pair D9: solo is clear before the owner is looked at */
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load(&w->blocking) &&
        !in_syscall(atomic_load_explicit(&w->tid, memory_order_acquire)))
        return 0;
    int r = MAY__ROLE_ACTIVE;
    if (!atomic_compare_exchange_strong(&w->role, &r, MAY__ROLE_LENT))
        return 0;
    atomic_fetch_sub(&may__S.nactive, 1);
    atomic_fetch_add_explicit(&may__S.handoffs, 1, memory_order_relaxed);
    uint32_t moved = drain_to_global(w);
    if (activate_spare() < 0 && moved)
        may__wakep(); /* no spare: at least let idle workers have it */
    /* Its coroutine's call may have returned since we looked, and the
     * worker gone idle: a worker that is not active must not sleep on the
     * idle list, where may__wakep would pick it for outside work that it
     * does not take (and nidle would count it among the active ones).
     * Wake it: it leaves the list, and in may__sidelined takes a place
     * that is free or becomes a spare.  (After activate_spare, so that the
     * spare has the place.)  Dekker pair D10: the role's CAS, then
     * sleep_word (seq_cst, in may__wake_worker); the idler stores
     * sleep_word = 1, fences, then reads its role (go_idle). */
    may__wake_worker(w);
    return 1;
}

/* ---- the worker's side ------------------------------------------------------ */

/* w, a spare made for a hand-off and active now, found nothing to run: if
 * one of the first N sits as a spare (its thread came back while w held
 * its place), w gives the place back to it and becomes a spare itself, so
 * that the threads made for blocked ones can leave.  On w's g0.  Nonzero
 * if w is no longer active. */
int may__place_back(may__worker *w)
{
    int n = may__S.nworkers, found = 0;
    for (int i = 0; i < n && !found; i++)
        found = atomic_load_explicit(&may__S.workers[i]->role, memory_order_relaxed) ==
                MAY__ROLE_SPARE;
    if (!found)
        return 0;
    int r = MAY__ROLE_ACTIVE;
    if (!atomic_compare_exchange_strong(&w->role, &r, MAY__ROLE_SPARE))
        return 1; /* the monitor lent it meanwhile */
    atomic_fetch_sub(&may__S.nactive, 1);
    for (int i = 0; i < n; i++) {
        may__worker *o = may__S.workers[i];
        r = MAY__ROLE_SPARE;
        if (atomic_compare_exchange_strong(&o->role, &r, MAY__ROLE_ACTIVE)) {
            atomic_fetch_add(&may__S.nactive, 1);
            may__wake_raw(o);
            return 1;
        }
    }
    /* it was made active meanwhile: keep the place (unless the monitor
     * made w active again itself) */
    r = MAY__ROLE_SPARE;
    if (atomic_compare_exchange_strong(&w->role, &r, MAY__ROLE_ACTIVE))
        atomic_fetch_add(&may__S.nactive, 1);
    return 0;
}

/* On g0 of a worker that is not active (find_runnable).  1: run *out;
 * 0: the worker is active now, look for work as usual; -1: the thread
 * should end (the runtime stops, or the spare leaves). */
int may__sidelined(may__worker *w, struct may_co **out)
{
    int64_t since = may__now();
    for (;;) {
        if (atomic_load(&may__S.stopping))
            return -1;
        int role = atomic_load(&w->role);
        if (role == MAY__ROLE_ACTIVE)
            return 0;
        if (role == MAY__ROLE_LENT) {
            /* back from the blocking call: take a free place, if any */
            int a = atomic_load(&may__S.nactive);
            while (a < may__S.nworkers)
                if (atomic_compare_exchange_weak(&may__S.nactive, &a, a + 1)) {
                    atomic_store(&w->role, MAY__ROLE_ACTIVE);
                    may__mon_kick();
                    return 0;
                }
            /* One of the first N: take the place of an idle spare-born
             * worker, which becomes the spare (and may leave) instead. */
            may__worker *sb = w->index < may__S.nworkers ? may__idle_take_spareborn() : NULL;
            if (sb) {
                atomic_store(&w->role, MAY__ROLE_ACTIVE);
                may__wake_raw(sb);
                return 0;
            }
            atomic_store(&w->role, MAY__ROLE_SPARE);
            since = may__now();
        }
        /* A spare: what others may run goes to them; what only this
         * thread may run, it runs. */
        if (drain_to_global(w) && atomic_load(&may__S.nidle) > 0)
            may__wakep();
        struct may_co *co = may__inbox_pop(w);
        if (co) {
            *out = co;
            return 1;
        }
        atomic_store(&w->sleep_word, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&w->role) != MAY__ROLE_SPARE || atomic_load(&w->inbox_len) ||
            atomic_load(&may__S.stopping)) {
            atomic_store(&w->sleep_word, 0);
            continue;
        }
        int64_t idle_ns = spare_idle_ns();
        int may_leave =
            idle_ns >= 0 && w->index >= may__S.nworkers && atomic_load(&w->npinned) == 0;
        int64_t left = idle_ns - (may__now() - since);
        if (may_leave && left <= 0) {
            int r = MAY__ROLE_SPARE;
            if (atomic_compare_exchange_strong(&w->role, &r, MAY__ROLE_DEAD)) {
                atomic_store(&w->sleep_word, 0);
                return -1;
            }
            continue;
        }
        STAT_INC(w->n_park);
        may__futex_wait(&w->sleep_word, 1, may_leave ? left : -1);
        atomic_store(&w->sleep_word, 0);
    }
}
