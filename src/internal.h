/*
 * internal.h - what the subsystems of libmay share.
 *
 * Memory layout of a coroutine (one mapping, or one slot of a dense slab):
 *
 *   low addresses                                          high addresses
 *   +------------+---------------------------------------+----------------+
 *   | guard page | stack: grows down from here <---------| struct may_co  |
 *   +------------+---------------------------------------+----------------+
 *   base         lo                                      hi=(char*)co     end
 *
 * The guard page is PROT_NONE in guarded mode and a "soft guard" (mapped,
 * never legitimately touched, checked to be still zero) in dense mode.  The
 * control block sits on top of the stack so that a parked coroutine's
 * resident memory is usually one page: its control block and its few
 * innermost frames share it.
 *
 * Lock order: the ranked table in src/lockrank.h (checked at run time in
 * builds with MAY_LOCKRANK).  No lock is ever held across a context switch.
 */
#ifndef MAY_INTERNAL_H
#define MAY_INTERNAL_H

#include "may.h"
#include "lockrank.h"
#include "plat.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define MAY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MAY_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MAY_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MAY_TSAN 1
#endif
#endif

#define MAY_LIKELY(x) __builtin_expect(!!(x), 1)
#define MAY_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MAY_NOINLINE __attribute__((noinline))
/* On a function of a hot path (spawn, join, park, the stack pool): its body
 * is inlined into every caller that sees it.  The library is built as one
 * translation unit (CMakeLists.txt, MAY_UNITY), so that includes callers in
 * other source files; a separate build calls it as usual.  Declared without
 * it in this header, so an external definition is still emitted. */
#define MAY_HOT_INLINE inline __attribute__((always_inline))
#ifdef _WIN32
#define MAY_HIDDEN /* a DLL exports only what is marked dllexport */
#else
#define MAY_HIDDEN __attribute__((visibility("hidden")))
#endif
#define MAY_CACHELINE 64

/* ---- context switch and the architecture layer (src/arch/) ------------- */

/* A saved execution context: only the stack pointer; everything else the
 * ABI makes callee-saved is pushed on the stack being left. */
typedef struct may__ctx {
    void *sp;
} may__ctx;

/* Save the current context in *from and resume *to; returns when someone
 * switches back to *from.  An ordinary call (it saves every callee-saved
 * register); the scheduler uses the inline may__ctx_jump (arch jump.h). */
void may__ctx_switch(may__ctx *from, may__ctx *to);

struct may__worker;
static inline struct may__worker *may__cur_worker(void);
/* may__ctx_jump, may__ctx_make, the saved-context layout MAY__FRAME_*,
 * MAY__TLS_IE_LOAD and cpu_relax: everything processor-specific. */
#include "arch/arch.h"

/* ---- stacks (src/stack.c) ---------------------------------------------- */

typedef struct may__stack {
    char *base;      /* start of the mapping (or slab slot) */
    size_t size;     /* whole size including guard page */
    char *lo;        /* lowest usable address (just above the guard) */
    char *fence;     /* faults in [fence, lo) are overflows of this stack */
    uint8_t guarded; /* 1: PROT_NONE guard page; 0: soft guard in a slab */
    uint8_t pooled;  /* 1: default size, may go back to a pool */
    uint8_t fresh;   /* 1: never handed out (its soft guard was never read) */
    uint8_t warm;    /* 1: its top page was populated ahead (may__stack_prewarm) */
    struct may__region *reg; /* guarded: the registry entry of its mapping */
#ifdef _WIN32
    char *tib_limit; /* StackLimit for a new context (src/win/stack_win.c) */
#endif
} may__stack;

#ifdef _WIN32
#include "win/win.h" /* Windows stacks and their overflow report */
#endif

/* Make *ctx run entry(arg) on stack st, its first frame below top.  On
 * Windows the TIB words of the stack go into the frame too: StackBase is
 * top, so that stack walks (exception dispatch, RtlCaptureStackBackTrace)
 * end at the context's outermost frame instead of reading the control
 * block above it as frames; DeallocationStack is the reservation. */
#ifdef _WIN32
#define MAY__CTX_MAKE(ctx, st, top, entry, arg)                                                   \
    may__win_ctx_make((may__win_ctx *)(ctx), (top), (top), (st)->tib_limit, (st)->base, (entry),  \
                      (arg))
#else
#define MAY__CTX_MAKE(ctx, st, top, entry, arg) may__ctx_make((ctx), (top), (entry), (arg))
#endif

/* The stack registry: every mapping that holds coroutine stacks (a dense
 * slab of many, or one guarded stack), pooled or in use, is a region on a
 * list under the stack lock, so the debugging tools (may_dump, the gdb
 * extension) can find every coroutine: slot i of a region is a stack at
 * first + i * stride, and its control block sits at may__stack_co(). */
typedef struct may__region {
    struct may__region *next, *prev;
    char *first;   /* lowest slot */
    size_t stride; /* size of a slot */
    size_t count;  /* slots */
    char *map;     /* the whole mapping (a slab has a fence page below) */
    size_t maplen;
} may__region;
extern may__region *may__regions; /* read by gdb/may-gdb.py */

int may__stack_alloc(may__stack *st, size_t size);
/* An idle worker's spare time: populate the top pages of the fresh slab
 * slots next in line in the global pool (MADV_POPULATE_WRITE), so the
 * first touch of a new coroutine's stack need not fault on the spawner's
 * CPU.  Returns how many it populated (0: nothing to do). */
int may__stack_prewarm(void);
void may__stack_free(may__stack *st);
/* Nonzero if the soft guard of a dense stack was written. */
int may__stack_guard_hit(const may__stack *st);
size_t may__stack_used(const may__stack *st);
/* The stack size the reports give (may_dump, the end-of-coroutine line of
 * stack tracking): on Linux the whole size, guard page included; on
 * Windows the usable bytes, below the header down to the guard (what the
 * overflow report of src/win/stack_win.c says), since there st->size also
 * spans the overflow headroom and the guard page (docs/WINDOWS.md). */
static inline size_t may__stack_size(const may__stack *st)
{
#ifdef _WIN32
    return (size_t)((st->base + st->size) - st->lo);
#else
    return st->size;
#endif
}
void may__stack_fill_mark(may__stack *st, char *top);
void may__stacks_shutdown(void);
/* Call pre(ctx) (if not NULL), then fn on every live coroutine (control
 * block magic set), holding the stack lock, so no stack is unmapped
 * meanwhile.  With trylock (from a signal handler) -EBUSY when the lock is
 * taken.  Stops when fn returns nonzero.  Fields of a coroutine running
 * elsewhere are read racily. */
int may__stacks_foreach(void (*pre)(void *ctx), int (*fn)(struct may_co *co, void *ctx),
                        void *ctx, int trylock);
/* Take (1) or release (0) the stack lock: no stack is unmapped meanwhile. */
void may__stacks_hold(int on);
size_t may__page_size(void);
size_t may__default_stack_size(void);

/* ---- overflow reports (src/overflow.c) --------------------------------- */

/* Install the SIGSEGV/SIGBUS handler that reports an overflow (once per
 * process). */
void may__stack_segv_install(void);
/* Map the calling thread's alternate signal stack, where that handler runs
 * (a no-op if it has one); free it.  A plain thread's is freed at its exit. */
int may__altstack_setup(void);
void may__altstack_free(void);
/* Report the shallow overflow the allocator found in the soft guard of the
 * dense stack st (its last owner's), and abort. */
void may__overflow_report_reused(const may__stack *st);

/* ---- parker: the one blocking primitive (src/parker.c) ------------------ */

/*
 * Every blocked caller, coroutine or thread, waits on a parker: a 32-bit
 * word of flags.  Wakers set a flag; the waiter sleeps until a flag in its
 * mask is set.
 *
 *   PARKED   the owner is asleep (a coroutine off every queue, or a thread
 *            in futex_wait); whoever clears it must wake the owner
 *   UTOKEN   the user token of may_park/may_unpark
 *   WTOKEN   a wake-up for an internal wait (join, sync objects, I/O)
 *   TIMEOUT  the current wait's timer fired
 *   CANCEL   the coroutine was cancelled (sticky: every later wait ends)
 */
enum {
    MAY__P_PARKED = 1u << 0,
    MAY__P_UTOKEN = 1u << 1,
    MAY__P_WTOKEN = 1u << 2,
    MAY__P_TIMEOUT = 1u << 3,
    MAY__P_CANCEL = 1u << 4,
};

typedef struct may__parker {
    _Atomic uint32_t word;
    struct may_co *co; /* NULL for a thread's parker */
} may__parker;

/* The caller's parker (its coroutine's, or its thread's). */
may__parker *may__self_parker(void);
/* Prepare an internal wait: clear a stale WTOKEN.  Call before publishing
 * the parker where a waker can find it. */
void may__wait_prepare(may__parker *p);
/* Internal wait: until WTOKEN (consumed, returns 0), -ETIMEDOUT or
 * -ECANCELED (coroutines only; pass ignore_cancel to wait regardless). */
int may__wait(may__parker *p, int64_t deadline, int ignore_cancel);
/* Set flag on p and wake its owner if it is parked. */
void may__wake(may__parker *p, uint32_t flag);
int may__park_common(may__parker *p, uint32_t mask, int64_t deadline);

/* ---- coroutines -------------------------------------------------------- */

/* A node of the timer heap (src/timer.c): a parked coroutine's deadline, a
 * timer object's next firing, a context's deadline. */
typedef struct may__tnode {
    size_t idx;                          /* index in the heap, or SIZE_MAX */
    void (*fire)(struct may__tnode *tn); /* NULL: a coroutine's (wake it);
                                            else run under the timer lock */
    int deferred;                        /* it is a may__tdefer's */
    int shard;                           /* the heap it is (was) in */
} may__tnode;

/* A node whose fire takes locks that rank above the timer lock (a
 * context's cancel): it runs after the timer lock is released, and
 * disarming waits for a fire in progress. */
typedef struct may__tdefer {
    may__tnode tn;
    struct may__tdefer *next; /* on the list of due ones (timer.c) */
    _Atomic int firing;       /* its fire runs now */
} may__tdefer;

/* struct may_co.magic while the coroutine exists (spawned, not yet freed). */
#define MAY__CO_MAGIC 0x6d6179636f21u /* "may co!" */

enum { MAY__JS_RUNNING = 0, MAY__JS_DONE = 1, MAY__JS_DETACHED = 2 };

struct may__worker;
struct may_scope;

struct may_co {
    may__ctx ctx;                /* saved context while not running */
    may__parker parker;          /* park word; parker.co == this */
    struct may_co *next;         /* link in the global queue / inboxes */
    may_fn_t fn;                 /* entry function */
    void *arg;                   /* its argument */
    void *result;                /* its result, once done */
    uint64_t id;                 /* unique, > 0 */
    may__stack stack;            /* the memory this struct lives in */
    _Atomic int join_state;      /* MAY__JS_* */
    _Atomic(may__parker *) joiner; /* who waits in may_join */
    may__parker *exit_joiner;    /* the joiner it took when it ended */
    _Atomic int cancelled;       /* may_cancel was called */
    int exit_kind;               /* MAY_DONE / MAY_CANCELED / MAY_PANICKED */
    int pinned;                  /* -1, or the only worker it may run on */
    int started;                 /* entry has been called */
    int track;                   /* stack-use tracking is on for it */
    uint32_t park_mask;          /* flags that end the current park */
    _Atomic size_t stack_peak;   /* track_stack: peak use, set at its end */
    may_cleanup_t *cleanup;      /* cleanup handler stack */
    struct may__cls_slot *cls;   /* coroutine-local values, lazily made (cls.c) */
    struct may_scope *scope;     /* the scope it was spawned into */
    struct may_co *scope_next;   /* sibling in that scope */
    struct may_scope *owned;     /* scopes this coroutine owns */
    void *asan_fake;             /* ASan fake-stack handle while switched out */
    void *tsan_fiber;            /* TSan fiber */
    struct may_gen *gen_cur;     /* innermost generator it runs now, if any (gen.c) */
    int lock_depth;              /* may_lock_thread nesting */
    int lock_pinned;             /* pinned was set by may_lock_thread */
    int blocking_depth;          /* may_blocking_begin nesting */
    struct may_ctx *mctx;        /* the context it runs under (ctx.c), or NULL */
    /* Spawn zeroes everything above this line in one go (keep that part
     * small enough for the compiler to use vector stores, not rep stos)
     * and sets the fields below one by one. */
    /* debugging (may_dump, gdb/may-gdb.py): written by the coroutine itself */
#ifdef _WIN32
    _Alignas(16) /* may__stack is a word longer there (zero_co_prefix) */
#endif
    _Atomic uint64_t magic;      /* MAY__CO_MAGIC from spawn until freed */
    const char *wait_what;       /* what its latest park waits for */
    const void *wait_obj;        /* and on which object (the fd itself for "fd ...") */
    may__tnode tn;               /* its node in the timer heap (timer.c); set
                                    by spawn (not zeroed) */
    struct may_co *ctx_next, *ctx_prev; /* on mctx's list, under the ctx lock */

    char name[32];
};

/* Where the control block of the stack [base, base + size) lives: at the
 * top, lowered by a "colour" of 0 to 15 cache lines that a hash of the
 * stack's address picks.  Without it every control block and every parked
 * coroutine's top frames sit at the same offset within a page, so they all
 * compete for the same few sets of the L1 and L2 caches (1000 coroutines
 * in flight could not stay cached), and a switch's stores to one stack
 * alias, in their low 12 address bits, the loads from the next.  At most
 * 960 bytes, so a parked coroutine still fits its top page.  gdb/may-gdb.py
 * computes the same address. */
static inline struct may_co *may__stack_co(char *base, size_t size)
{
    /* Fibonacci hashing of the page number: its top 4 bits */
    uint64_t h = ((uint64_t)(uintptr_t)base >> 12) * 0x9E3779B97F4A7C15ull;
    size_t colour = (size_t)(h >> 60);
    return (struct may_co *)((uintptr_t)(base + size - sizeof(struct may_co) - colour * 64) &
                             ~(uintptr_t)63);
}

/* Record what a wait on p is for (shown by may_dump and gdb); call before
 * may__wait.  Only coroutines record it. */
static inline void may__wait_note(may__parker *p, const char *what, const void *obj)
{
    if (p->co) {
        p->co->wait_what = what;
        p->co->wait_obj = obj;
    }
}

/* ---- growable public structs (include/may.h, "Options structs") -------- */

/* The size of each struct in its first version: the end of its last field
 * then.  A caller's size below it is -EINVAL.  Never change these when a
 * field is added. */
#define MAY__CONFIG_V1_SIZE (offsetof(may_config_t, track_stack) + sizeof(bool))
#define MAY__SPAWN_OPTS_V1_SIZE (offsetof(may_spawn_opts_t, flags) + sizeof(unsigned))
#define MAY__STATS_V1_SIZE (offsetof(may_stats_t, fd_waiters) + sizeof(uint64_t))

/* Bring in a caller's struct of n bytes as the library's own of dsz bytes:
 * the fields the caller does not know are zero.  0, -EINVAL (n below the
 * first version's min), -E2BIG (the caller set bytes past dsz: fields of a
 * newer library than this one). */
static inline int may__abi_in(void *dst, size_t dsz, const void *src, size_t n, size_t min)
{
    if (n < min)
        return -EINVAL;
    if (n > dsz) {
        for (size_t i = dsz; i < n; i++)
            if (((const unsigned char *)src)[i])
                return -E2BIG;
        n = dsz;
    }
    memcpy(dst, src, n);
    memset((char *)dst + n, 0, dsz - n);
    return 0;
}

/* Hand out the library's struct src (dsz bytes) into a caller's of n bytes:
 * as much as it has room for, and zeros past the fields we know. */
static inline void may__abi_out(void *dst, size_t n, const void *src, size_t dsz)
{
    memcpy(dst, src, n < dsz ? n : dsz);
    if (n > dsz)
        memset((char *)dst + dsz, 0, n - dsz);
}

/* ---- the worker and scheduler ------------------------------------------ */

/* src/sched.c (picking, switching, idling), src/runq.c (the queues, ready),
 * src/monitor.c, src/coroutine.c (spawn, end, join), src/start.c (start,
 * shutdown, the worker threads), src/stats.c; what only those files share
 * is in src/sched_impl.h. */

#define MAY__RUNQ_SIZE 256

typedef struct may__runq {
    _Atomic uint32_t head; /* consumers CAS it (owner and stealers) */
    char pad0[MAY_CACHELINE - sizeof(uint32_t)];
    _Atomic uint32_t tail; /* only the owner stores it */
    char pad1[MAY_CACHELINE - sizeof(uint32_t)];
    struct may_co *_Atomic buf[MAY__RUNQ_SIZE];
} may__runq;

typedef struct may__hook {
    void (*fn)(struct may__worker *w, struct may_co *co);
    struct may_co *co;
} may__hook;

/* A worker's role (may__worker.role; src/handoff.c has the whole story).
 * ACTIVE workers are the runtime's N processors; a LENT one's thread was
 * found blocked in the kernel and its share of the N handed to a SPARE; a
 * SPARE's thread sleeps until it is made ACTIVE, running only coroutines
 * locked to it meanwhile; a DEAD one has no thread (it left after a while
 * as a spare) and may be given a new one. */
enum { MAY__ROLE_ACTIVE = 0, MAY__ROLE_LENT = 1, MAY__ROLE_SPARE = 2, MAY__ROLE_DEAD = 3 };

/* A worker: a thread of the runtime's and what it owns (q, runnext, the
 * inbox, the stack pool, the counters).  The two stay together for the
 * thread's life: what moves when a thread blocks is the worker's queued
 * work and its place among the N active ones (src/handoff.c says why). */
typedef struct may__worker {
    may__runq q;
    struct may_co *_Atomic runnext; /* next to run, ahead of q */
    int index;
    pthread_t thread;
    may__ctx sched_ctx;             /* the worker's own stack (g0) */
    struct may_co *cur;             /* running coroutine, NULL in g0 */
    may__hook hook;                 /* run by whoever resumes next */
    uint32_t tick;                  /* schedule count, for fairness */
    uint32_t runnext_streak;        /* consecutive picks from runnext */
    uint64_t rand;                  /* xorshift state for stealing */
    int spinning;                   /* counted in sched.nspinning */
    int64_t spin_ns;                /* how long it spins before it sleeps (sched.c) */
    /* idle sleep */
    _Atomic uint32_t sleep_word;    /* 1: asleep or going to; 0: woken */
    _Atomic int polling;            /* blocked in the poller */
    struct may__worker *idle_next;  /* link in sched.idle */
    int idle;                       /* on sched.idle (idle_lock held) */
    /* private queue: pinned coroutines and hand-ins from other threads */
    pthread_mutex_t inbox_lock;
    struct may_co *inbox_head, *inbox_tail;
    _Atomic uint32_t inbox_len;
    _Atomic uint32_t inbox_free;    /* of those, not pinned: thieves may take them */
    /* stack pool */
    may__stack *pool;
    size_t pool_len;
    /* sanitizers */
    void *asan_g0_bottom;
    size_t asan_g0_size;
    void *tsan_g0_fiber;
    /* coroutines spawned here minus coroutines ended here (owner-written;
     * may be negative; the sum over workers plus sched.alive is exact) */
    _Atomic int64_t alive_delta;
    uint64_t id_next, id_end;       /* a block of coroutine ids */
    /* stats: written by the owner, read relaxed by may_stats */
    _Atomic uint64_t n_switch, n_spawn, n_steal, n_park;
    /* may_yield calls that found nothing else to run, so did not switch:
     * owner-written like the stats; the monitor counts them as progress */
    _Atomic uint64_t n_lone_yield;
    /* The kernel's id of the thread that runs this worker (gettid), for the
     * monitor's look at /proc/self/task/TID/stat; 0 until the thread has
     * started.  Release store in may__worker_main, acquire load in
     * monitor.c. */
    _Atomic int tid;
    /* Nonzero while its coroutine is between may_blocking_begin and _end:
     * written by the thread running the worker, read by the monitor. */
    _Atomic int blocking;
    _Atomic int role;               /* MAY__ROLE_* (src/handoff.c) */
    _Atomic int npinned;            /* coroutines locked to its thread by may_lock_thread */
    int thread_live;                /* a thread was created and not joined yet
                                       (threads_lock) */
    int mon_same;                   /* the monitor's: ticks in a row without progress */
    /* the monitor's own (monitor.c): n_switch + n_lone_yield at its last
     * tick, and the episode of one coroutine holding this worker */
    uint64_t mon_switches;
    int64_t mon_since;              /* when the monitor last saw progress */
    int64_t mon_t0, mon_cpu0;       /* first stuck tick: time, thread CPU time */
    int mon_reported;               /* the episode was reported (or suppressed) */
} may__worker;

/* may__S.solo, read in the fast paths (a plain load; handoff.c clears it
 * with a seq_cst store and a fence). */
static inline int may__solo(void);

/* may__S.state in the child of a fork made while the runtime ran: it
 * cannot be used there, nor started again (src/fork.c). */
#define MAY__STATE_FORKED 4

typedef struct may__sched {
    int nworkers;                   /* N: the active workers wanted */
    may__worker **workers;          /* [0, nall): workers 0..N-1, then spares */
    _Atomic int nall;               /* workers made (only grows until shutdown;
                                       release store after workers[i] is set) */
    _Atomic int nactive;            /* workers in role ACTIVE */
    int max_threads;                /* the bound on nall */
    /* Nonzero while one worker is all there is: no thief can touch its
     * queues, so they skip read-modify-write instructions.  Cleared for
     * good (until shutdown) before a second worker is made. */
    int solo;
    int handoff;                    /* hand-off of blocked workers is on */
    pthread_mutex_t threads_lock;   /* making and joining threads (rank THREADS) */
    _Atomic uint64_t handoffs;      /* hand-offs made */
    _Atomic int state; /* 0 stopped, 1 starting, 2 running, 3 stopping,
                          MAY__STATE_FORKED */
    pthread_mutex_t start_lock;
    may_config_t cfg;
    int64_t spin_max_ns;            /* idle spin's longest (cfg.idle_spin_us), 0: none */
    _Atomic int stopping;
    /* global run queue (work from plain threads, overflow) */
    pthread_mutex_t gq_lock;
    struct may_co **gq_ring;        /* ring of pointers, grown by doubling */
    uint32_t gq_cap, gq_rhead, gq_rcount;
    struct may_co *gq_head, *gq_tail; /* overflow list if the ring cannot grow */
    _Atomic uint32_t gq_len;
    /* idle workers */
    pthread_mutex_t idle_lock;
    may__worker *idle;
    _Atomic int nidle;
    _Atomic int nspinning;
    _Atomic int poller_busy;        /* a worker is (about to be) in the poller */
    _Atomic int64_t poller_until;   /* the poller's wake-up deadline */
    /* counters */
    _Atomic uint64_t next_id;
    _Atomic int64_t alive;          /* spawned from plain threads (see alive_delta) */
    _Atomic uint64_t spawned;       /* spawned from plain threads */
} may__sched;

extern may__sched may__S;

static inline int may__solo(void)
{
#ifdef MAY_TSAN
    return __atomic_load_n(&may__S.solo, __ATOMIC_RELAXED);
#else
    /* A plain load, so the compiler can compare in memory (cmpl $0): an
     * atomic one costs an instruction more on every yield.  It races with
     * the monitor's one store by design (handoff.c, Dekker pair D9). */
    return may__S.solo == 1;
#endif
}

/* The running worker, or NULL on a plain thread.  Set only by the worker
 * thread itself (worker_main); read only through may__cur_worker(). */
extern __thread may__worker *may__tls_w __attribute__((tls_model("initial-exec")));

/* The running worker, read afresh.  A compiler takes a thread-local
 * variable's address to be fixed for the length of a function: GCC and
 * Clang compute it once from the thread pointer and reuse it, even across
 * an asm statement that clobbers memory.  A coroutine may resume on another
 * thread after any switch, and would then read the old thread's variable.
 * So the read is a volatile asm that loads the thread pointer itself each
 * time, plus the variable's offset, which the initial-exec model makes the
 * same in every thread.  Being inline (no call), it lets the compiler inline
 * freely across the library's sources without that hazard. */
#ifdef _WIN32
/* On Windows the worker lives in a TLS slot of the TEB (TlsAlloc'd before
 * main, src/win/stack_win.c; one of the first 64, whose values sit in the
 * TEB at 0x1480): a gs-relative load, fresh on every read for the same
 * reason as below.  MinGW's __thread is emulated (a call per access). */
extern unsigned long may__tls_w_slot;
static inline __attribute__((always_inline)) may__worker *may__cur_worker(void)
{
    may__worker *v;
    __asm__ volatile("movq %%gs:0x1480(,%1,8), %0" : "=r"(v) : "r"((uint64_t)may__tls_w_slot));
    return v;
}
#define MAY__TLS_W_SET(w) may__win_tls_w_set(w)
void may__win_tls_w_set(may__worker *w);
#else
static inline __attribute__((always_inline)) may__worker *may__cur_worker(void)
{
    return (may__worker *)MAY__TLS_IE_LOAD(may__tls_w); /* src/arch/<arch>/cpu.h */
}
#define MAY__TLS_W_SET(w) (may__tls_w = (w))
#endif

/* The running coroutine, or NULL on a plain thread. */
static inline __attribute__((always_inline)) may_co_t *may__cur_co(void)
{
    may__worker *w = may__cur_worker();
    return w ? w->cur : NULL;
}
/* Start the runtime if it is not running (start.c).  0 or -errno. */
int may__ensure_started(void);
/* Make co runnable (it must be off every queue and not running). */
void may__ready(struct may_co *co);
void may__ready_ex(struct may_co *co, int lifo);
/* Switch the running coroutine out.  hook runs after the switch, on the
 * context resumed next (it commits the park, requeues a yield, etc.). */
void may__switch_out(may__worker *w, may__hook hook);
int64_t may__now(void);
/* errno, read afresh after a possible switch (src/io.c says why). */
int may__errno_now(void);

/* ---- timers (src/timer.c) ---------------------------------------------- */

void may__timer_arm(struct may_co *co, int64_t deadline);
/* Disarm co's timer; after it returns the timer can no longer fire. */
void may__timer_disarm(struct may_co *co);
/* The same for any node: arm (re-arm) tn at deadline; disarm it, and once
 * that returns its fire neither runs nor will.  arm returns whether it was
 * armed before. */
/* A node that is not a coroutine's: fire runs under the heap's lock (or,
 * deferred, after it); its heap is the calling worker's. */
void may__tnode_init(may__tnode *tn, void (*fire)(may__tnode *), int deferred);
int may__tnode_arm(may__tnode *tn, int64_t deadline);
int may__tnode_disarm(may__tnode *tn);
/* Fire due timers; returns how many coroutines it readied. */
int may__timers_run(int64_t now);
/* Earliest armed deadline or INT64_MAX (relaxed; may be stale). */
int64_t may__timers_next(void);
uint64_t may__timers_count(void);
void may__timers_shutdown(void);

/* ---- poller (src/poll_epoll.c): one backend behind these calls -------- */

int may__poll_init(void);
void may__poll_close(void);
/* Block until an event, the deadline (INT64_MAX: none) or a wake. */
void may__poll_wait(int64_t deadline);
/* Interrupt a may__poll_wait in progress (or the next one). */
void may__poll_wake(void);
const char *may__poll_name(void);
/* Register fd for edge-triggered input and output readiness; events are
 * reported as may__io_ready(tag, ...).  0 or -errno (-EPERM: not pollable). */
int may__poll_add(int fd, uint64_t tag);
/* Unregister fd.  0 or -errno. */
int may__poll_del(int fd);
/* Generation of the poller instance (> 0 once initialised; a new one after
 * may_shutdown): registrations from an older generation are gone. */
uint32_t may__poll_gen(void);
/* io.c calls this when an operation on fd in direction dir (MAY__IO_R/W)
 * said EAGAIN, or before it waits without trying: a backend whose
 * readiness is one-shot (Windows: AFD poll on the completion port,
 * src/win/poll_iocp.c) polls for dir again, so that the next change of
 * readiness is reported as an edge would be.  epoll is edge-triggered for
 * good: nothing to do, and no call on Linux. */
#ifdef _WIN32
void may__poll_rearm(int fd, int dir);
#else
static inline void may__poll_rearm(int fd, int dir)
{
    (void)fd;
    (void)dir;
}
#endif

/* ---- I/O readiness (src/io.c) ------------------------------------------ */

enum { MAY__IO_R = 1, MAY__IO_W = 2,
       MAY__IO_HUP = 4, /* with R: the event reports a hang-up or error (EOF or a
                           reset may be queued behind the data) */
       MAY__IO_URG = 8  /* with R: TCP urgent data came (reads stop at its mark,
                           with in-band data queued behind it) */ };
/* Called by the poller for each fd event (io: MAY__IO_* bits). */
void may__io_ready(uint64_t tag, uint32_t io);
/* Coroutines and threads parked on fd readiness (relaxed; a hint for the
 * scheduler's non-blocking poll). */
extern _Atomic int may__io_waiters;
/* One operation on fd for the socket kinds outside io.c (src/udp_unix.c):
 * run fn(fd, ctx) (a system call returning >= 0 or -errno) until it says
 * something other than -EAGAIN/-EINTR, parking on readiness in direction
 * dir (MAY__IO_R or MAY__IO_W) in between.  Its result, or -ETIMEDOUT,
 * -ECANCELED, -EBADF (closed by may_fd_close). */
typedef ssize_t (*may__io_fn)(int fd, void *ctx);
ssize_t may__io_do(int fd, int dir, int64_t deadline, may__io_fn fn, void *ctx);
/* Register fd with the poller now (sets O_NONBLOCK).  0 or -errno. */
int may__io_register(int fd);

int may__join_wait(may_co_t *co, int64_t deadline, int ignore_cancel);
int may__join_reap(may_co_t *co, void **result);

/* ---- the offload pool (src/offload.c) --------------------------------- */

/* Stop and join the offload helpers; safe to repeat. */
void may__offload_shutdown(void);
/* may_offload_ex (drop may be NULL).  With uninterruptible set, a caller
 * whose wait fails while fn runs waits for fn's end and returns its result
 * instead of abandoning the job: for fn that uses the caller's memory (the
 * file calls, src/file.c). */
int may__offload(void *(*fn)(void *), void *arg, void **result,
                 void (*drop)(void *arg, void *result, bool ran), int uninterruptible,
                 int64_t deadline);

/* ---- addresses (src/resolve.c) ----------------------------------------- */

/* "host:port" (may_parse_host_port's grammar) as the socket addresses to
 * try, in order.  "localhost" is loopback without a lookup
 * (127.0.0.1, then ::1); ":port" is the wildcard when passive (listen,
 * bind: [::], then 0.0.0.0), else loopback like "localhost"; a literal is
 * itself; a name is may_resolve's first address.  family AF_INET or
 * AF_INET6 keeps that family only.  0 with out->n >= 1, or -errno (the
 * parser's, may_resolve's). */
typedef struct may__addrs {
    int n;
    socklen_t len[2];
    struct sockaddr_storage addr[2];
} may__addrs;
int may__host_port_addrs(const char *hp, int family, int socktype, bool passive, may__addrs *out,
                         int64_t deadline);

/* ---- misc -------------------------------------------------------------- */

struct may__cls_slot;
void may__cls_run_destructors(struct may__cls_slot *cls);
/* Take (1) or release (0) the key lock (src/fork.c). */
void may__cls_hold(int on);
void may__scope_hold(int on);
void may__timers_hold(int on);
/* Register the fork handlers (once); -ENOTRECOVERABLE in the child of a
 * fork made while the runtime ran (src/fork.c).  Not under any lock. */
int may__fork_guard(void);
void may__scope_child_cancel_owned(struct may_co *co);
/* ctx.c: put co (being spawned) under ctx, cancelled at once if ctx has
 * ended; take an ending co off its context. */
void may__ctx_attach(struct may_ctx *ctx, struct may_co *co);
void may__ctx_detach(struct may_co *co);
/* Take (1) or release (0) the context lock: the fork handlers (fork.c). */
void may__ctx_hold(int on);
void may__scope_owner_exit(struct may_co *co);
_Noreturn void may__co_finish(struct may_co *co, void *result, int kind);
/* End the caller with result and kind (MAY_DONE, MAY_PANICKED): may_exit
 * and may_panic after its message (src/exit.c). */
_Noreturn void may__exit_as(void *result, int kind);

/* ---- generators (src/gen.c) -------------------------------------------- */

/* The generator the caller is running (innermost), or NULL.  Safe in a
 * signal handler. */
struct may_gen *may__gen_running(void);
const may__stack *may__gen_stack(const struct may_gen *g);
/* The cleanup list of the generator the caller is running, or NULL. */
may_cleanup_t **may__gen_cleanups(void);
/* Run the handlers of a list, newest first, unlinking each (src/exit.c). */
void may__cleanups_run(may_cleanup_t **head);
/* Inside a generator: run its cleanup handlers, and leave it for good to
 * its resumer, which carries on with may__exit_as(result, kind).  Returns
 * (doing nothing) outside every generator. */
void may__gen_exit(void *result, int kind);
void may__fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));


#endif
