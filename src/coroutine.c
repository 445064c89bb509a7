/*
 * coroutine.c - a coroutine's life: spawn, end, join or detach, cancel.
 *
 * Spawn.  A coroutine is one stack from the stack pool with its control
 * block (struct may_co) at the top (may__stack_co; internal.h draws the
 * layout).  may_spawn zeroes the first part of the control block with
 * vector stores, sets the rest field by field, makes the initial context
 * (entry: co_entry), publishes the magic word that tells may_dump and the
 * gdb extension the coroutine exists, counts it and queues it: in the
 * spawning worker's runnext (may__ready), or in the inbox of the worker it
 * was asked to run on.  Ids come in blocks of 4096 per worker and the live
 * count is per worker (alive_delta), so that workers spawning at once never
 * share a counter's cache line (a shared atomic counter made batched spawns
 * 2.3x slower on two workers); a plain thread counts in may__S.
 *
 * End.  A coroutine ends by returning, by may_exit or by may_panic (exit.c),
 * all in may__co_finish: its cleanup handlers run newest first, then its
 * coroutine-local destructors, and the scopes it owns are closed; then it
 * switches away for good, and a hook run on the other side (finish_hook)
 * publishes the end.  A coroutine cancelled before it started never runs
 * its function, and ends MAY_CANCELED.
 *
 * Join.  Two words hand a coroutine's end over to its joiner:
 *
 *   joiner      NULL: nobody joins yet; a parker: the joiner's, which waits
 *               on it; (parker *)1: it ended with no joiner; (parker *)2:
 *               it ended and took the joiner's parker, to wake it
 *   join_state  MAY__JS_RUNNING; MAY__JS_DONE: ended, and the joiner may
 *               free it; MAY__JS_DETACHED: it frees itself at its end
 *
 * The joiner and the ending coroutine each CAS the joiner word (seq_cst),
 * so one of them decides: either the joiner's parker is there first and the
 * ending coroutine takes it, or the word says the coroutine has ended and
 * the joiner need not wait.  The ending coroutine takes the joiner's parker
 * before it publishes DONE, and touches only that parker afterwards, which
 * the joiner keeps until the wake arrives (may__wait_claimed): once DONE is
 * visible the joiner may free the stack, control block included (a race
 * TSan found in the first version).  When the joiner is a coroutine parked
 * in that join, and may run on this worker, the ending coroutine claims its
 * wake-up (it clears PARKED itself, so no one else can resume it) and
 * switches straight to it; finish_direct_hook publishes DONE on the
 * joiner's side.  A spawn-then-join thus costs two switches and no trip
 * through the scheduler.  may_join returns how it ended (MAY_DONE,
 * MAY_CANCELED, MAY_PANICKED) and frees it, or fails and leaves the handle
 * valid (-ETIMEDOUT; -ECANCELED when the caller is cancelled).  may_detach
 * either frees an ended coroutine at once or lets it free itself.
 *
 * Memory ordering.  DONE is published by a seq_cst CAS of join_state
 * (finish_hook; a failed CAS means DETACHED, and the coroutine frees
 * itself), or by a release store when the joiner is the one running
 * (finish_direct_hook); the joiner's seq_cst load of join_state then sees
 * the result and exit kind written before.  The magic word is stored with
 * release after every field may_dump reads.  cancelled is sticky and set by
 * an exchange, so only the first may_cancel wakes the coroutine.
 *
 * Locks: none of its own.  Spawning takes the start lock the first time
 * (may__ensure_started), the stack pool's lock when the worker's own pool
 * is empty, and an inbox lock for a chosen worker; cancelling and ending
 * take the scope lock of the scopes involved.
 */
#include "internal.h"
#include "sched_impl.h"
#include "select.h"
#include "waitq.h"

#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static MAY_HOT_INLINE void co_free(struct may_co *co)
{
    may__stack st = co->stack; /* co lives inside st */
    atomic_store_explicit(&co->magic, 0, memory_order_relaxed); /* gone for may_dump */
    san_fiber_free(co->tsan_fiber);
    free(co->cls);
    may__stack_free(&st);
}

static void finish_hook(may__worker *w, struct may_co *co)
{
    /* Before DONE is visible: whoever joins may call may_shutdown next. */
    STAT_ADD(w->alive_delta, -1);
    /* may__co_finish took the joiner slot before we publish DONE: once DONE
     * is visible the joiner may free co, so after the CAS we touch only the
     * joiner's parker (which it keeps until our wake arrives). */
    may__parker *j = co->exit_joiner;
    int js = MAY__JS_RUNNING;
    if (atomic_compare_exchange_strong(&co->join_state, &js, MAY__JS_DONE)) {
        if (j)
            may__wake(j, MAY__P_WTOKEN);
    } else {
        co_free(co); /* detached: nobody else holds it */
    }
}

/* co ended and switched straight to its joiner, which it had claimed (see
 * may__co_finish); runs first thing in the joiner's context. */
static void finish_direct_hook(may__worker *w, struct may_co *co)
{
    STAT_ADD(w->alive_delta, -1);
    /* A plain store, not a CAS: the joiner is running (it is us), and its
     * wait finds the token that may__co_finish left with the claim.  The
     * only other writer of join_state is may_detach, which refuses a handle
     * whose joiner slot is set; one racing with this join (a caller bug)
     * loses to it, and the join frees co as usual. */
    atomic_store_explicit(&co->join_state, MAY__JS_DONE, memory_order_release);
}

/* A select waiting for a coroutine's end (MAY_CASE_JOIN) puts its case's
 * node in the joiner slot, tagged with bit 0 (nodes are aligned; the
 * sentinel 1 is not a node). */
#define JOINER_IS_SEL(j) (((uintptr_t)(j) & 1) && (j) != (may__parker *)1)
#define JOINER_SEL(n) ((may__parker *)((uintptr_t)(n) | 1))

/* The ending coroutine took a select's node from the joiner slot: claim it
 * for that select (then its parker is the joiner to wake, as any joiner's),
 * or find the select done elsewhere: mark the node STALE, our last touch of
 * it (the select's withdraw waits for that mark), and wake nobody. */
static MAY_NOINLINE may__parker *join_sel_claim(may__parker *j)
{
    may__wnode *n = (may__wnode *)((uintptr_t)j & ~(uintptr_t)1);
    if (may__wnode_take(n))
        return may__wnode_claim(n, 1);
    /* release: pairs with the acquire in may__join_sel_withdraw */
    atomic_store_explicit(&n->state, MAY__WN_STALE, memory_order_release);
    return NULL;
}

_Noreturn void may__co_finish(struct may_co *co, void *result, int kind)
{
    may__cleanups_run(&co->cleanup);
    if (co->cls)
        may__cls_run_destructors(co->cls);
    if (co->owned)
        may__scope_owner_exit(co);
    if (co->mctx)
        may__ctx_detach(co);
    if (kind == MAY_DONE && atomic_load(&co->cancelled))
        kind = MAY_CANCELED;
    co->result = result;
    co->exit_kind = kind;
    if (MAY_UNLIKELY(co->lock_pinned)) { /* ended inside may_lock_thread */
        co->lock_pinned = 0;
        atomic_fetch_sub_explicit(&may__S.workers[co->pinned]->npinned, 1, memory_order_relaxed);
    }
    if (MAY_UNLIKELY(co->track)) {
        /* measured before printing: the printing itself uses this stack */
        size_t used = may__stack_used(&co->stack);
        /* relaxed: may_co_stack_used may read it from anywhere, any time */
        atomic_store_explicit(&co->stack_peak, used, memory_order_relaxed);
        fprintf(stderr, "may: coroutine %llu \"%s\" ended: stack size = %zu, used size = %zu\n",
                (unsigned long long)co->id, co->name, may__stack_size(&co->stack), used);
    }
    may__worker *w = may__cur_worker();
    /* Take the joiner slot (seq_cst: pairs with the joiner's CAS of joiner
     * then load of join_state).  If the joiner is a coroutine parked in
     * that join, claim its wake-up by clearing PARKED ourselves: then no
     * one else can resume it, and we switch straight to it instead of
     * through the scheduler; the hook publishes DONE on its side. */
    may__parker *j = atomic_load(&co->joiner);
    /* (parker *)1: ended with no joiner; (parker *)2: ended, joiner taken */
    while (!atomic_compare_exchange_weak(&co->joiner, &j,
                                         j ? (may__parker *)2 : (may__parker *)1))
        ;
    if (MAY_UNLIKELY(JOINER_IS_SEL(j)))
        j = join_sel_claim(j);
    co->exit_joiner = j;
    if (j && j->co && (j->co->pinned < 0 || j->co->pinned == w->index)) {
        uint32_t v = atomic_load_explicit(&j->word, memory_order_acquire);
        /* The same CAS leaves the wake token for the joiner's wait: it can
         * look only after it runs again, and it runs finish_direct_hook
         * (which publishes DONE) before it looks. */
        if ((v & MAY__P_PARKED) &&
            atomic_compare_exchange_strong_explicit(
                &j->word, &v, (v & ~(uint32_t)MAY__P_PARKED) | MAY__P_WTOKEN,
                memory_order_acq_rel, memory_order_relaxed)) {
            w->hook = (may__hook){ finish_direct_hook, co };
            may__switch_from(w, co, j->co, 1);
            __builtin_unreachable();
        }
    }
    w->hook = (may__hook){ finish_hook, co };
    may__switch_from(w, co, may__pick_fast(w), 1);
    __builtin_unreachable();
}

static void co_entry(void *arg)
{
    struct may_co *co = arg;
    may__worker *w = may__cur_worker();
    san_end(NULL);
    may__run_hook(w);
    if (atomic_load_explicit(&co->cancelled, memory_order_relaxed))
        may__co_finish(co, NULL, MAY_CANCELED);
    co->started = 1;
    may__co_finish(co, co->fn(co->arg), MAY_DONE);
}

/* Zero a control block up to its debugging fields with 16-byte stores.  A
 * memset or a compound literal of this size becomes rep stos, whose
 * start-up cost was several percent of a spawn+join. */
typedef long long may__v16 __attribute__((vector_size(16), may_alias));
static inline __attribute__((always_inline)) void zero_co_prefix(struct may_co *co)
{
    _Static_assert(offsetof(struct may_co, magic) % 16 == 0, "magic not 16-aligned");
    may__v16 *p = (may__v16 *)co, z = { 0, 0 };
    for (size_t i = 0; i < offsetof(struct may_co, magic) / 16; i++) {
        p[i] = z;
        __asm__("" : : "r"(p) : "memory"); /* not a memset to the compiler */
    }
}

/* Put a coroutine being spawned under its context (ctx.c): the one given,
 * else its spawner's unless MAY_SPAWN_NO_CTX.  Out of line: the common
 * spawn has none. */
static MAY_NOINLINE void spawn_ctx(struct may_co *co, const may_spawn_opts_t *opts,
                                   may__worker *w)
{
    struct may_ctx *mc = opts->ctx;
    if (!mc && !(opts->flags & MAY_SPAWN_NO_CTX))
        mc = w->cur->mctx;
    if (mc)
        may__ctx_attach(mc, co);
}

int may_spawn_sized(may_co_t **out, may_fn_t fn, void *arg, const may_spawn_opts_t *opts,
                    size_t opts_size)
{
    static const may_spawn_opts_t defaults = { 0 };
    may_spawn_opts_t copy;
    if (out)
        *out = NULL;
    if (!opts) {
        opts = &defaults;
    } else if (MAY_UNLIKELY(opts_size != sizeof *opts)) {
        /* built against another version of the struct (include/may.h) */
        int r = may__abi_in(&copy, sizeof copy, opts, opts_size, MAY__SPAWN_OPTS_V1_SIZE);
        if (r < 0)
            return r;
        opts = &copy;
    }
    if (!fn)
        return -EINVAL;
    if (!(opts->flags & MAY_SPAWN_DETACHED) && !out)
        return -EINVAL;
    if (opts->stack_size && (opts->stack_size < 16384 || opts->stack_size > ((size_t)1 << 30)))
        return -EINVAL;
    int r;
    if (MAY_UNLIKELY(atomic_load_explicit(&may__S.state, memory_order_acquire) != 2) &&
        (r = may__ensure_started()) < 0)
        return r;
    int target = -1;
    if (opts->flags & (MAY_SPAWN_WORKER | MAY_SPAWN_PINNED)) {
        if (opts->worker < 0 || opts->worker >= may__S.nworkers)
            return -EINVAL;
        target = opts->worker;
    }
    may__stack st;
    r = may__stack_alloc(&st, opts->stack_size);
    if (r < 0)
        return r;
    struct may_co *co = may__stack_co(st.base, st.size);
    /* Only the part before the debugging fields and the name, so that the
     * compiler uses plain vector stores rather than rep stos, whose
     * start-up cost showed in the spawn benchmark. */
    zero_co_prefix(co);
    co->stack = st;
    co->fn = fn;
    co->arg = arg;
    co->wait_what = NULL;
    co->wait_obj = NULL;
    co->parker.co = co;
    may__worker *w = may__cur_worker();
    if (w) {
        /* ids come in blocks, so workers do not share a counter's line */
        if (MAY_UNLIKELY(w->id_next == w->id_end)) {
            w->id_next = atomic_fetch_add_explicit(&may__S.next_id, 4096, memory_order_relaxed) + 1;
            w->id_end = w->id_next + 4096;
        }
        co->id = w->id_next++;
    } else {
        co->id = atomic_fetch_add_explicit(&may__S.next_id, 1, memory_order_relaxed) + 1;
    }
    co->tn.idx = SIZE_MAX;
    co->tn.fire = NULL;
    co->tn.deferred = 0;
    co->pinned = (opts->flags & MAY_SPAWN_PINNED) ? target : -1;
    if (opts->flags & MAY_SPAWN_DETACHED)
        atomic_store_explicit(&co->join_state, MAY__JS_DETACHED, memory_order_relaxed);
    size_t namelen = 0;
    if (opts->name) {
        namelen = strnlen(opts->name, sizeof co->name - 1);
        memcpy(co->name, opts->name, namelen);
    }
    co->name[namelen] = 0;
#ifdef _WIN32
    may__win_stack_set_name(co->stack.base + co->stack.size, co->name); /* src/win/stack_win.c */
#endif
    char *top = (char *)((uintptr_t)co & ~(uintptr_t)15);
    if (MAY_UNLIKELY(may__S.cfg.track_stack || (opts->flags & MAY_SPAWN_TRACK_STACK))) {
        co->track = 1;
        may__stack_fill_mark(&co->stack, top);
    }
    MAY__CTX_MAKE(&co->ctx, &co->stack, top, co_entry, co);
    co->tsan_fiber = san_fiber_new();
    /* co->mctx: NULL, zeroed above; a context given, or the spawner's */
    if (MAY_UNLIKELY(opts->ctx != NULL) || (w && w->cur && MAY_UNLIKELY(w->cur->mctx != NULL)))
        spawn_ctx(co, opts, w);
    /* release: may_dump reads the fields above once it sees the magic */
    atomic_store_explicit(&co->magic, MAY__CO_MAGIC, memory_order_release);
    if (w) {
        STAT_ADD(w->alive_delta, 1);
        STAT_INC(w->n_spawn);
    } else {
        atomic_fetch_add(&may__S.alive, 1);
        atomic_fetch_add_explicit(&may__S.spawned, 1, memory_order_relaxed);
    }
    if (out)
        *out = co;
    if (target >= 0) {
        may__worker *tw = may__S.workers[target];
        may__inbox_push(tw, co);
        if (tw != w)
            may__wake_worker(tw);
        /* MAY_SPAWN_WORKER is a preference, not a pin: if tw has been lent
         * (handoff.c) its thread may stay blocked, and the monitor sleeps
         * while every active worker is idle, so wake an idle one to steal
         * the coroutine.  A hand-off after this load drains it itself
         * (drain_to_global): seq_cst, the push then this load against the
         * monitor's role CAS then its drain. */
        if (co->pinned < 0 && atomic_load(&tw->role) != MAY__ROLE_ACTIVE)
            may__wakep();
    } else {
        may__ready(co);
    }
    return 0;
}

int may_go(may_fn_t fn, void *arg)
{
    may_spawn_opts_t o = { .flags = MAY_SPAWN_DETACHED };
    return may_spawn(NULL, fn, arg, &o);
}

/* Wait until co has ended, without releasing it.  0 when it has. */
MAY_HOT_INLINE int may__join_wait(may_co_t *co, int64_t deadline, int ignore_cancel)
{
    if (atomic_load(&co->join_state) == MAY__JS_DONE)
        return 0;
    if (MAY_UNLIKELY(atomic_load_explicit(&may__S.state, memory_order_relaxed) == MAY__STATE_FORKED))
        return -ENOTRECOVERABLE; /* nothing ends in a forked child (src/fork.c) */
    may__parker *p = may__self_parker();
    may__wait_prepare(p);
    may__parker *expect = NULL;
    if (!atomic_compare_exchange_strong(&co->joiner, &expect, p)) {
        if (expect != (may__parker *)1)
            return -EINVAL; /* someone else is joining */
        /* It is ending right now: DONE follows within a few instructions. */
        while (atomic_load(&co->join_state) != MAY__JS_DONE)
            sched_yield();
        return 0;
    }
    int woken = 0;
    for (;;) {
        /* seq_cst: pairs with finish_hook's CAS of join_state */
        if (atomic_load(&co->join_state) == MAY__JS_DONE)
            break;
        may__wait_note(p, "join", co);
        int r = may__wait(p, deadline, ignore_cancel);
        if (r == 0) {
            woken = 1; /* only the ending coroutine knows our parker */
            continue;
        }
        expect = p;
        if (atomic_compare_exchange_strong(&co->joiner, &expect, NULL))
            return r;
        break; /* it ended and took our parker */
    }
    /* It has taken our parker (a claim by CAS, waitq.c) and wakes it after
     * publishing DONE: wait for that wake, so nothing touches our parker
     * after we return. */
    if (!woken)
        may__wait_claimed(p);
    return 0;
}

MAY_HOT_INLINE int may__join_reap(may_co_t *co, void **result)
{
    int kind = co->exit_kind;
    if (result)
        *result = co->result;
    co_free(co);
    return kind;
}

int may_join(may_co_t *co, void **result, int64_t deadline)
{
    if (!co)
        return -EINVAL;
    if (co == may__cur_co())
        return -EDEADLK;
    if (atomic_load(&co->join_state) == MAY__JS_DETACHED)
        return -EINVAL;
    int r = may__join_wait(co, deadline, 0);
    if (r < 0)
        return r;
    return may__join_reap(co, result);
}

/* ---- select's side (src/select.c): MAY_CASE_JOIN ------------------------ */

/* The end of a coroutine that is ending now (its joiner slot says so):
 * DONE follows within a few instructions. */
static void join_settle(may_co_t *co)
{
    while (atomic_load(&co->join_state) != MAY__JS_DONE)
        sched_yield();
}

int may__join_sel_poll(may_co_t *co, void **result, int *res)
{
    if (atomic_load(&co->join_state) != MAY__JS_DONE) {
        if (atomic_load(&co->joiner) != (may__parker *)1)
            return 0;
        join_settle(co);
    }
    *res = may__join_reap(co, result);
    return 1;
}

int may__join_sel_reg(may_co_t *co, may__wnode *n)
{
    may__parker *expect = NULL;
    /* seq_cst: pairs with may__co_finish's CAS, as a joiner's */
    if (atomic_compare_exchange_strong(&co->joiner, &expect, JOINER_SEL(n)))
        return 0;
    return expect == (may__parker *)1 ? 1 : -EINVAL;
}

void may__join_sel_withdraw(may_co_t *co, may__wnode *n)
{
    may__parker *expect = JOINER_SEL(n);
    if (atomic_compare_exchange_strong(&co->joiner, &expect, NULL))
        return;
    /* It ended and took the node: wait until it has marked it (it is not
     * ours to claim: another case of the select happened), then leave the
     * slot as "ended with no joiner", so that a may_join can follow. */
    for (int i = 0; atomic_load_explicit(&n->state, memory_order_acquire) == MAY__WN_WAITING; i++) {
        if (i < 64)
            cpu_relax();
        else
            sched_yield();
    }
    expect = (may__parker *)2;
    atomic_compare_exchange_strong(&co->joiner, &expect, (may__parker *)1);
}

int may__join_sel_reap(may_co_t *co, void **result)
{
    join_settle(co);
    return may__join_reap(co, result);
}

int may_detach(may_co_t *co)
{
    if (!co)
        return -EINVAL;
    may__parker *j = atomic_load(&co->joiner);
    if (j && j != (may__parker *)1)
        return -EINVAL; /* being joined (or its joiner was taken at its end) */
    int js = MAY__JS_RUNNING;
    if (atomic_compare_exchange_strong(&co->join_state, &js, MAY__JS_DETACHED))
        return 0; /* it will free itself */
    if (js == MAY__JS_DONE) {
        co_free(co);
        return 0;
    }
    return -EINVAL;
}

int may_cancel(may_co_t *co)
{
    if (!co)
        return -EINVAL;
    if (atomic_exchange(&co->cancelled, 1) == 0) {
        may__wake(&co->parker, MAY__P_CANCEL);
        /* co->owned is read under the scope lock: the owner may be adding
         * or freeing a scope right now. */
        may__scope_child_cancel_owned(co);
    }
    return 0;
}

bool may_cancelled(void)
{
    may_co_t *co = may__cur_co();
    return co && atomic_load_explicit(&co->cancelled, memory_order_relaxed);
}

may_co_t *may_self(void)
{
    return may__cur_co();
}

int may_lock_thread(void)
{
    may__worker *w = may__cur_worker();
    struct may_co *co = w ? w->cur : NULL;
    if (!co)
        return -EPERM;
    if (co->lock_depth++ == 0 && co->pinned < 0) {
        /* Only the coroutine itself changes pinned, and only while it runs:
         * whoever readies it later reads it after the park that published
         * it (the parker's acq_rel CAS). */
        co->pinned = w->index;
        co->lock_pinned = 1;
        /* a spare with coroutines locked to it stays (handoff.c) */
        atomic_fetch_add_explicit(&w->npinned, 1, memory_order_relaxed);
    }
    return 0;
}

int may_unlock_thread(void)
{
    struct may_co *co = may__cur_co();
    if (!co || co->lock_depth == 0)
        return -EPERM;
    if (--co->lock_depth == 0 && co->lock_pinned) {
        co->lock_pinned = 0;
        atomic_fetch_sub_explicit(&may__S.workers[co->pinned]->npinned, 1, memory_order_relaxed);
        co->pinned = -1;
    }
    return 0;
}

bool may_in_coroutine(void)
{
    return may__cur_co() != NULL;
}
