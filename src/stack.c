/*
 * stack.c - coroutine stacks: mappings, guard pages, dense slabs, pools,
 * prewarming, the registry of mappings, and stack-use tracking.  An
 * overflow is reported by src/overflow.c (the SIGSEGV handler and the
 * report); this file finds the shallow ones (check_reused).
 *
 * Why two kinds of stack.  A PROT_NONE guard page below each stack is the
 * only way to catch an overflow the moment it happens, but every guarded
 * stack costs two kernel mappings (VMAs), and a stock Linux allows 65 530
 * per process (vm.max_map_count).  A million coroutines therefore cannot all
 * have hardware guards.  In MAY_STACK_AUTO mode (the default) stacks get a
 * guard page while the process stays well under the mapping limit (we read
 * the limit and budget half of it), and beyond that come from dense slabs:
 * one mapping holds 256 stacks, and each stack's lowest page is a "soft
 * guard" that is mapped but never legitimately used.  Fresh anonymous
 * memory reads as zero, so whenever a dense stack is handed out again, and
 * at shutdown, the allocator checks that the top of its soft guard is still
 * zero; if not, its last coroutine overflowed and the process is stopped
 * with the same report as a guard-page fault (src/overflow.c).  (Checking
 * at every end cost a second page fault per coroutine.)  The check reads
 * memory that was never written, so it costs no resident memory (the
 * kernel maps its shared zero page).  A deep overflow runs into the slab's PROT_NONE page
 * at the latest, writing through the stacks below it on the way.
 *
 * Pools.  Stacks of the default size are reused: each worker keeps up to
 * cfg.stack_pool of them (no lock: only the owner touches its pool), and a
 * global pool under stack_lock takes the overflow, without limit: guarded
 * stacks are bounded by the mapping budget anyway, and dense ones cannot be
 * unmapped singly.  Stacks move between the two in batches of half a
 * worker pool, so one lock is taken per ~cap/2 spawns or ends even when
 * one worker spawns and another frees (a batch of 1000 spawns had made
 * the lock the top cost).  Custom-sized stacks are
 * mapped and unmapped each time.  Dense slabs are never unmapped before
 * shutdown; their freed slots go to the global free list.
 *
 * Invariants: a stack is in at most one pool; a pooled stack's memory below
 * the control block may hold stale data (we never rely on it being zero,
 * except the soft guard, which an overflow would have reported).
 *
 * Lock order: stack_lock ranks last (STACK in src/lockrank.h): the
 * allocator takes no other lock under it, and may be called under any.
 * The prewarmer only tries it (an idle worker has better things to do than
 * wait).  The fork handlers (src/fork.c), may_stats and may_dump's walk
 * (may__stacks_foreach) hold it so that no stack is unmapped meanwhile.  A
 * worker's own pool takes no lock: only its owner touches it.
 *
 * Memory ordering: everything in the global pool and the registry is under
 * stack_lock.  The atomics outside it are relaxed, and nothing is
 * published through them: prewarm_pending (a hint that an idle worker may
 * find work here; the work itself is looked for under the lock),
 * prewarm_off (a one-way switch), guarded_maps (the mapping budget, which
 * racing spawns may overshoot by a few), page_sz (the same value from
 * every thread).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#ifdef _WIN32
#include "win/win.h"
#else
#include <sys/mman.h>
#include <unistd.h>
#endif

#ifdef MAY_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>) && !defined(_WIN32)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define MAY_VALGRIND 1
#endif
#endif

#define DENSE_PER_SLAB 256
#define SOFT_GUARD_CHECK 64 /* bytes at the top of the soft guard we check */

static _Atomic size_t page_sz; /* set on first use, by any thread (same value) */
static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;
static may__stack *gpool;          /* global pool of default-size stacks */
static size_t gpool_len, gpool_cap;
static _Atomic long guarded_maps;  /* guarded stacks now mapped */
/* Fresh slots in the global pool whose top page nobody populated yet
 * (stack_lock), and whether there are any: an idle spin looks at that
 * word, not at the lock (may__stack_prewarm). */
static size_t cold_slots;
static _Atomic int prewarm_pending;
/* Spawns are drawing on dense slabs and the global pool holds less than a
 * slab: an idle worker maps the next one ahead (stack_lock). */
static int grow_ahead;
static long guarded_budget = -1;   /* how many we allow (AUTO mode) */
/* Every mapping holding stacks (see may__region in internal.h).  Guarded
 * stacks are linked when mapped and unlinked when unmapped; dense slabs
 * stay until shutdown, which unmaps them from this list. */
may__region *may__regions;

static void region_link(may__region *r) /* stack_lock held */
{
    MAY__ASSERT_HELD(MAY__RANK_STACK, &stack_lock);
    r->prev = NULL;
    r->next = may__regions;
    if (may__regions)
        may__regions->prev = r;
    may__regions = r;
}

static void region_unlink(may__region *r) /* stack_lock held */
{
    MAY__ASSERT_HELD(MAY__RANK_STACK, &stack_lock);
    if (r->prev)
        r->prev->next = r->next;
    else
        may__regions = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

size_t may__page_size(void)
{
    size_t p = atomic_load_explicit(&page_sz, memory_order_relaxed);
    if (!p) {
#ifdef _WIN32
        SYSTEM_INFO si;
        GetSystemInfo(&si);
        p = si.dwPageSize;
#else
        p = (size_t)sysconf(_SC_PAGESIZE);
#endif
        atomic_store_explicit(&page_sz, p, memory_order_relaxed);
    }
    return p;
}

size_t may__default_stack_size(void)
{
    return may__S.cfg.stack_size ? may__S.cfg.stack_size : 64 * 1024;
}

__attribute__((unused)) static long read_max_map_count(void) /* not on Windows */
{
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

__attribute__((unused)) static void register_stack(may__stack *st) /* not on Windows */
{
#ifdef MAY_VALGRIND
    (void)VALGRIND_STACK_REGISTER(st->lo, st->base + st->size);
#else
    (void)st;
#endif
}

#ifdef _WIN32
/* Windows: every stack is guarded (no mapping limit to budget), reserved
 * by src/win/stack_win.c with its top two pages committed and a PAGE_GUARD
 * page below, so it grows as a thread's stack does, and with headroom
 * below for the overflow report.  The stack is [base, base + size): its
 * top is stack_win.c's header, the TIB's StackBase; the control block
 * sits right below it as on Linux. */
static int map_guarded(may__stack *st, size_t size)
{
    size_t pg = may__page_size();
    may__win_stack ws;
    int r = may__win_stack_alloc(&ws, size - pg, 2 * pg, NULL);
    if (r != 0)
        return r;
    may__region *reg = malloc(sizeof *reg);
    if (!reg) {
        may__win_stack_free(&ws);
        return -ENOMEM;
    }
    st->base = ws.alloc;
    st->size = (size_t)(ws.base - ws.alloc);
    st->lo = ws.base - ws.size;
    st->fence = ws.alloc;
    st->guarded = 1;
    st->tib_limit = ws.limit;
    *reg = (may__region){ .first = st->base, .stride = st->size, .count = 1, .map = ws.alloc,
                          .maplen = ws.alloc_size };
    st->reg = reg;
    may__lock(&stack_lock, MAY__RANK_STACK);
    region_link(reg);
    may__unlock(&stack_lock, MAY__RANK_STACK);
    atomic_fetch_add_explicit(&guarded_maps, 1, memory_order_relaxed);
    return 0;
}

static void stack_unmap_mem(char *p, size_t len)
{
    (void)len;
    VirtualFree(p, 0, MEM_RELEASE);
}

static int grow_dense(size_t size, int at_bottom)
{
    (void)size, (void)at_bottom;
    return -ENOMEM; /* not reached: use_guard() is always 1 */
}

static int use_guard(void)
{
    return 1;
}
#else
static void stack_unmap_mem(char *p, size_t len)
{
    munmap(p, len);
}

static int map_guarded(may__stack *st, size_t size)
{
    size_t pg = may__page_size();
    char *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    if (mprotect(p + pg, size - pg, PROT_READ | PROT_WRITE) != 0) {
        munmap(p, size);
        return -ENOMEM;
    }
    may__region *reg = malloc(sizeof *reg);
    if (!reg) {
        munmap(p, size);
        return -ENOMEM;
    }
    *reg = (may__region){ .first = p, .stride = size, .count = 1, .map = p, .maplen = size };
    may__lock(&stack_lock, MAY__RANK_STACK);
    region_link(reg);
    may__unlock(&stack_lock, MAY__RANK_STACK);
    st->base = p;
    st->size = size;
    st->lo = p + pg;
    st->fence = p - 65536; /* a big frame can jump over a guard page */
    st->guarded = 1;
    st->reg = reg;
    atomic_fetch_add_explicit(&guarded_maps, 1, memory_order_relaxed);
    register_stack(st);
    return 0;
}

/* Called with stack_lock held: add a slab of dense stacks to gpool, on
 * top (handed out next), or at the bottom (after the slots already there:
 * a slab mapped ahead, see may__stack_prewarm). */
static int grow_dense(size_t size, int at_bottom)
{
    MAY__ASSERT_HELD(MAY__RANK_STACK, &stack_lock);
    /* One PROT_NONE page at the bottom of the slab: an overflow that runs
     * through the soft guards below it faults there at the latest. */
    size_t pg = may__page_size();
    size_t len = size * DENSE_PER_SLAB + pg;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    if (mprotect(p, pg, PROT_NONE) != 0)
        goto out_unmap;
    may__region *sl = malloc(sizeof *sl);
    if (!sl)
        goto out_unmap;
    char *first = p + pg;
    if (gpool_len + DENSE_PER_SLAB > gpool_cap) {
        size_t ncap = gpool_cap ? gpool_cap * 2 : 1024;
        while (ncap < gpool_len + DENSE_PER_SLAB)
            ncap *= 2;
        may__stack *n = realloc(gpool, ncap * sizeof *n);
        if (!n)
            goto out_free;
        gpool = n;
        gpool_cap = ncap;
    }
    *sl = (may__region){ .first = p + pg, .stride = size, .count = DENSE_PER_SLAB,
                         .map = p, .maplen = len };
    region_link(sl);
    size_t at = gpool_len;
    if (at_bottom) {
        memmove(gpool + DENSE_PER_SLAB, gpool, gpool_len * sizeof *gpool);
        at = 0;
    }
    gpool_len += DENSE_PER_SLAB;
    /* In reverse so the lowest slot is handed out first. */
    for (int i = DENSE_PER_SLAB - 1; i >= 0; i--) {
        may__stack *st = &gpool[at++];
        st->base = first + (size_t)i * size;
        st->size = size;
        st->lo = st->base + pg;
        st->fence = p;
        st->guarded = 0;
        st->reg = NULL;
        st->fresh = 1;
        st->warm = 0;
        st->pooled = 1;
        register_stack(st);
    }
    cold_slots += DENSE_PER_SLAB;
    atomic_store_explicit(&prewarm_pending, 1, memory_order_relaxed);
    return 0;
out_free:
    free(sl);
out_unmap:
    munmap(p, len);
    return -ENOMEM;
}

static int use_guard(void)
{
    int mode = may__S.cfg.stack_mode;
    if (mode == MAY_STACK_GUARD)
        return 1;
    if (mode == MAY_STACK_DENSE)
        return 0;
    if (guarded_budget < 0)
        guarded_budget = (read_max_map_count() / 2 - 2048) / 2;
    return atomic_load_explicit(&guarded_maps, memory_order_relaxed) < guarded_budget;
}
#endif

static int stack_alloc(may__stack *st, size_t size);
static MAY_NOINLINE int stack_alloc_global(may__stack *st, size_t size);
static void check_reused(const may__stack *st);

MAY_HOT_INLINE int may__stack_alloc(may__stack *st, size_t size)
{
    int r = stack_alloc(st, size);
    if (r == 0) {
        check_reused(st);
        st->fresh = 0;
    }
#ifdef MAY_ASAN
    /* A reused stack still carries the poisoned redzones of the frames of
     * its previous owner: clear them, or ASan reports false errors. */
    if (r == 0)
        __asan_unpoison_memory_region(st->lo, (size_t)(st->base + st->size - st->lo));
#endif
#ifdef MAY_VALGRIND
    /* Likewise valgrind marks a dead stack's popped frames inaccessible. */
    if (r == 0)
        (void)VALGRIND_MAKE_MEM_UNDEFINED(st->lo, (size_t)(st->base + st->size - st->lo));
#endif
    return r;
}

static MAY_HOT_INLINE int stack_alloc(may__stack *st, size_t size)
{
    size_t pg = may__page_size();
    size_t def = may__default_stack_size();
    if (size == 0)
        size = def;
    size = (size + pg - 1) & ~(pg - 1);
    if (size != def) {
        int r = map_guarded(st, size);
        st->pooled = 0;
        return r;
    }
    may__worker *w = may__cur_worker();
    if (MAY_LIKELY(w && w->pool_len)) {
        *st = w->pool[--w->pool_len];
        return 0;
    }
    return stack_alloc_global(st, size);
}

/* How many free stacks a worker keeps. */
static size_t pool_cap(void)
{
    return may__S.cfg.stack_pool ? may__S.cfg.stack_pool : 256;
}

/* Pre-faulting fresh stacks on idle CPUs.  A burst of spawns takes new slab
 * slots, and the first touch of each (the control block, at the top) costs
 * a page fault on the spawner's CPU: about 1.5 us on the VM of
 * docs/BENCHMARKS.md, most of a spawn into fresh memory.  An idle worker
 * that spins for work calls may__stack_prewarm while cold_slots says there
 * are fresh slots nobody populated: it marks up to PREWARM_BATCH of them
 * among the next 2 x pool_cap() in line in the global pool (a worker's pool refill takes pool_cap() / 2 from
 * there) and populates their top pages with MADV_POPULATE_WRITE, outside
 * the lock.  That call never changes memory contents, so it may race with
 * the slot being handed out and written meanwhile; dense slabs stay mapped
 * until shutdown, after the workers stopped.  Resident memory grows only
 * by pages a spawn would touch next anyway.  Kernels without
 * MADV_POPULATE_WRITE (before 5.14) answer EINVAL, and prewarming stops.
 *
 * A steady burst drains the global pool slab by slab, and the spawner would
 * map each new slab itself when the pool ran dry, leaving the idle worker
 * nothing to warm meanwhile.  So once spawns draw on dense slabs and the
 * pool holds less than a slab, grow_ahead asks the idle worker to map the
 * next slab first, below the slots still in the pool (which go first), and
 * warm it while those are handed out.  Measured with 1,000,000 coroutines
 * alive at once on 2 workers: see docs/BENCHMARKS.md. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PREWARM_BATCH 16
static _Atomic int prewarm_off;

/* k slots leave the global pool (stack_lock held): count the cold ones */
static void cold_leave(const may__stack *st, size_t k)
{
    for (size_t i = 0; i < k; i++)
        cold_slots -= st[i].fresh && !st[i].warm && !st[i].guarded;
    if (cold_slots == 0 && !grow_ahead)
        atomic_store_explicit(&prewarm_pending, 0, memory_order_relaxed);
}

int may__stack_prewarm(void)
{
    if (!atomic_load_explicit(&prewarm_pending, memory_order_relaxed) ||
        atomic_load_explicit(&prewarm_off, memory_order_relaxed))
        return 0;
    char *tops[PREWARM_BATCH];
    int n = 0;
    if (may__trylock(&stack_lock, MAY__RANK_STACK) != 0)
        return 0;
    if (grow_ahead) {
        grow_ahead = 0;
        if (gpool_len < DENSE_PER_SLAB && !use_guard())
            (void)grow_dense(may__default_stack_size(), 1); /* on failure: mapped on demand */
    }
    size_t window = 2 * pool_cap(), pg = may__page_size();
    for (size_t i = gpool_len; i > 0 && gpool_len - i < window && n < PREWARM_BATCH; i--) {
        may__stack *st = &gpool[i - 1];
        if (st->fresh && !st->warm && !st->guarded) {
            st->warm = 1;
            tops[n++] = st->base + st->size - pg;
        }
    }
    cold_slots -= (size_t)n;
    if (cold_slots == 0 && !grow_ahead)
        atomic_store_explicit(&prewarm_pending, 0, memory_order_relaxed);
    may__unlock(&stack_lock, MAY__RANK_STACK);
    for (int i = 0; i < n; i++) {
#ifdef _WIN32
        (void)tops; /* no dense slots on Windows: n is 0 */
#else
        if (madvise(tops[i], pg, MADV_POPULATE_WRITE) != 0 && errno == EINVAL) {
            atomic_store_explicit(&prewarm_off, 1, memory_order_relaxed);
            break;
        }
#endif
    }
    return n;
}

/* stack_lock held, after slots left the global pool: ask for the next
 * slab ahead if the pool runs low while new stacks come from slabs. */
static void want_grow_ahead(void)
{
    if (gpool_len < DENSE_PER_SLAB && !grow_ahead && !use_guard() &&
        !atomic_load_explicit(&prewarm_off, memory_order_relaxed)) {
        grow_ahead = 1;
        atomic_store_explicit(&prewarm_pending, 1, memory_order_relaxed);
    }
}

/* The worker's own pool is empty: the global pool, or new memory. */
static MAY_NOINLINE int stack_alloc_global(may__stack *st, size_t size)
{
    may__worker *w = may__cur_worker();
    may__lock(&stack_lock, MAY__RANK_STACK);
    if (gpool_len) {
        *st = gpool[--gpool_len];
        cold_leave(st, 1);
        if (w) { /* refill half the worker's pool (it is empty) */
            size_t k = pool_cap() / 2;
            if (k > gpool_len)
                k = gpool_len;
            gpool_len -= k;
            cold_leave(gpool + gpool_len, k);
            memcpy(w->pool, gpool + gpool_len, k * sizeof *gpool);
            w->pool_len = k;
        }
        want_grow_ahead();
        may__unlock(&stack_lock, MAY__RANK_STACK);
        return 0;
    }
    int r;
    if (use_guard()) {
        may__unlock(&stack_lock, MAY__RANK_STACK);
        r = map_guarded(st, size);
        st->pooled = 1;
        return r;
    }
    r = grow_dense(size, 0);
    if (r == 0) {
        *st = gpool[--gpool_len];
        cold_leave(st, 1);
        want_grow_ahead();
    }
    may__unlock(&stack_lock, MAY__RANK_STACK);
    return r;
}

/* Unmap a guarded stack (locked: the caller holds stack_lock).  Valgrind's
 * stack ids are not kept; it tolerates stale registrations. */
static void unmap_stack(may__stack *st, int locked)
{
    if (!locked)
        may__lock(&stack_lock, MAY__RANK_STACK);
    region_unlink(st->reg);
    if (!locked)
        may__unlock(&stack_lock, MAY__RANK_STACK);
    free(st->reg);
    stack_unmap_mem(st->base, st->size);
    atomic_fetch_sub_explicit(&guarded_maps, 1, memory_order_relaxed);
}

static MAY_NOINLINE void stack_free_global(may__stack *st);

MAY_HOT_INLINE void may__stack_free(may__stack *st)
{
    if (!st->pooled) {
        unmap_stack(st, 0);
        return;
    }
    may__worker *w = may__cur_worker();
    if (MAY_LIKELY(w && w->pool_len < pool_cap())) {
        w->pool[w->pool_len++] = *st;
        return;
    }
    stack_free_global(st);
}

static MAY_NOINLINE void stack_free_global(may__stack *st)
{
    /* The global pool keeps everything: dense slots cannot be unmapped one
     * by one, and guarded stacks are bounded by the mapping budget.  A
     * worker whose pool is full hands over the upper half of it too. */
    may__worker *w = may__cur_worker();
    size_t keep = pool_cap() / 2, move = w && w->pool_len > keep ? w->pool_len - keep : 0;
    may__lock(&stack_lock, MAY__RANK_STACK);
    if (gpool_len + move + 1 > gpool_cap) {
        size_t ncap = gpool_cap ? gpool_cap * 2 : 1024;
        while (ncap < gpool_len + move + 1)
            ncap *= 2;
        may__stack *n = realloc(gpool, ncap * sizeof *n);
        if (!n) {
            may__unlock(&stack_lock, MAY__RANK_STACK);
            if (st->guarded)
                unmap_stack(st, 0);
            /* A dense slot we cannot record is lost until shutdown. */
            return;
        }
        gpool = n;
        gpool_cap = ncap;
    }
    if (move) {
        w->pool_len = keep;
        memcpy(gpool + gpool_len, w->pool + keep, move * sizeof *gpool);
        gpool_len += move;
    }
    gpool[gpool_len++] = *st;
    may__unlock(&stack_lock, MAY__RANK_STACK);
}

/* Empty a stopping worker's pool (may_shutdown: its thread is about to
 * exit).  Nothing goes back to the global pool: each stack is checked for
 * a shallow overflow one last time, a guarded one is unmapped, and a dense
 * slot is just dropped, because may__stacks_shutdown, which runs after every
 * worker has stopped, unmaps it with its slab. */
void may__stack_pool_drain(may__worker *w);
void may__stack_pool_drain(may__worker *w)
{
    while (w->pool_len) {
        may__stack st = w->pool[--w->pool_len];
        check_reused(&st);
        if (st.guarded && st.pooled)
            unmap_stack(&st, 0);
        /* dense slots are unmapped with their slab */
    }
}

void may__stacks_shutdown(void)
{
    may__lock(&stack_lock, MAY__RANK_STACK);
    for (size_t i = 0; i < gpool_len; i++) {
        check_reused(&gpool[i]);
        if (gpool[i].guarded)
            unmap_stack(&gpool[i], 1);
    }
    free(gpool);
    gpool = NULL;
    gpool_len = gpool_cap = 0;
    cold_slots = 0;
    grow_ahead = 0;
    atomic_store_explicit(&prewarm_pending, 0, memory_order_relaxed);
    while (may__regions) { /* the dense slabs */
        may__region *r = may__regions;
        region_unlink(r);
        stack_unmap_mem(r->map, r->maplen);
        free(r);
    }
    guarded_budget = -1;
    may__unlock(&stack_lock, MAY__RANK_STACK);
}

void may__stacks_hold(int on)
{
    if (on)
        may__lock(&stack_lock, MAY__RANK_STACK);
    else
        may__unlock(&stack_lock, MAY__RANK_STACK);
}

int may__stacks_foreach(void (*pre)(void *ctx), int (*fn)(struct may_co *co, void *ctx),
                        void *ctx, int trylock)
{
    if (trylock) {
        if (may__trylock(&stack_lock, MAY__RANK_STACK) != 0)
            return -EBUSY;
    } else {
        may__lock(&stack_lock, MAY__RANK_STACK);
    }
    if (pre)
        pre(ctx);
    int stop = 0;
    for (may__region *r = may__regions; r && !stop; r = r->next) {
        for (size_t i = 0; i < r->count && !stop; i++) {
            struct may_co *co = may__stack_co(r->first + i * r->stride, r->stride);
            if (atomic_load_explicit(&co->magic, memory_order_acquire) == MAY__CO_MAGIC)
                stop = fn(co, ctx);
        }
    }
    may__unlock(&stack_lock, MAY__RANK_STACK);
    return 0;
}

int may__stack_guard_hit(const may__stack *st)
{
    if (st->guarded)
        return 0;
    const uint64_t *p = (const uint64_t *)(st->lo - SOFT_GUARD_CHECK);
    uint64_t acc = 0;
    for (size_t i = 0; i < SOFT_GUARD_CHECK / sizeof *p; i++)
        acc |= p[i];
    return acc != 0;
}

/* Stack-use tracking: fill the unused stack with a pattern at start. */
#define MARK 0x6d61796d61796d61ULL /* "maymaymay" */
void may__stack_fill_mark(may__stack *st, char *top)
{
#ifdef _WIN32
    /* Only the top of a Windows stack is committed (map_guarded): commit
     * the rest before marking it, and keep a guard page below it. */
    size_t pg = may__page_size();
    if (!VirtualAlloc(st->lo, (size_t)(top - st->lo), MEM_COMMIT, PAGE_READWRITE) ||
        !VirtualAlloc(st->lo - pg, pg, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD))
        return; /* no tracking: may__stack_used reads what the mark left */
#endif
    uint64_t *p = (uint64_t *)st->lo;
    uint64_t *e = (uint64_t *)(((uintptr_t)top - 256) & ~(uintptr_t)7);
    while (p < e)
        *p++ = MARK;
}

/* Not instrumented by ASan: the scan reads the whole stack, including the
 * redzones of live frames when a coroutine asks about itself. */
__attribute__((no_sanitize("address"))) size_t may__stack_used(const may__stack *st)
{
    const uint64_t *p = (const uint64_t *)st->lo;
    const uint64_t *e = (const uint64_t *)(st->base + st->size);
#ifdef MAY_VALGRIND
    /* The scan reads below the stack pointer on purpose (that is where the
     * untouched marks are), which memcheck would report. */
    VALGRIND_DISABLE_ERROR_REPORTING;
#endif
    while (p < e && *p == MARK)
        p++;
    size_t used = (size_t)((const char *)e - (const char *)p);
#ifdef MAY_VALGRIND
    VALGRIND_ENABLE_ERROR_REPORTING;
    (void)VALGRIND_MAKE_MEM_DEFINED(&used, sizeof used); /* derived from that scan */
#endif
    return used;
}

/* A dense stack that has been used: is its soft guard still zero?  Checked
 * when the stack is handed out again and at shutdown, not when its
 * coroutine ends: the first read of a never-touched soft guard is a page
 * fault, which would double the faults of a short-lived coroutine.  The
 * previous owner's control block is still at the top of the slot, so the
 * report can name it. */
static MAY_HOT_INLINE void check_reused(const may__stack *st)
{
    if (st->guarded || st->fresh || !may__stack_guard_hit(st))
        return;
    may__overflow_report_reused(st); /* src/overflow.c */
}
