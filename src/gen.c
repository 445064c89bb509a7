/*
 * gen.c - generators: asymmetric coroutines on the caller's thread.
 *
 * A generator has its own stack and context but no place in the scheduler:
 * may_gen_resume switches from the caller straight into it, may_gen_yield
 * switches straight back.  It works the same from a plain thread and from
 * inside a coroutine (then it runs on that coroutine's worker, as a nested
 * call would).  May's generator library plays this role under May itself.
 *
 * States: NEW -> (resume) RUNNING -> (yield) SUSPENDED -> ... -> DONE.
 * A generator is used by one caller at a time; resuming a running one (from
 * inside itself) is -EINVAL.
 *
 * The running generator.  Whoever resumes a generator records it as the
 * generator it now runs: a coroutine in its control block (gen_cur), a
 * plain thread in a thread-local; the one it ran before (an enclosing
 * generator, or none) is kept in the generator (outer) and put back when
 * the generator yields, returns or exits.  A coroutine that parks inside a
 * generator keeps the record in its control block, wherever it resumes.
 * The record is what makes the three things below find the generator:
 *
 * Cleanup handlers.  may_cleanup_push inside a generator pushes onto the
 * generator's own list (src/exit.c), never onto its resumer's: the nodes
 * live in the generator's frames, which may be freed while its resumer runs
 * on.  The handlers still pushed run newest first when the generator
 * returns (as a coroutine's do when it returns), and when an unfinished
 * generator is freed: may_gen_free runs them on the freeing caller's stack,
 * while the generator's stack is still mapped (the nodes and whatever they
 * point to in its frames are intact), and runs no other code of the
 * generator; like Python's close() running a generator's finally blocks.
 *
 * may_exit and may_panic inside a generator end the coroutine (or thread)
 * that resumed it, at whatever depth of nested generators: each generator
 * on the way runs its handlers, becomes DONE and switches to its resumer,
 * which goes on with the exit (may__gen_exit).  So the coroutine's own
 * handlers and destructors run on its own stack, and may free the
 * generators (their stacks are no longer in use).
 *
 * Overflow reports.  The SIGSEGV handler (src/overflow.c) asks for the running
 * generator (may__gen_running, async-signal-safe) and reports a fault below
 * its stack as a generator's overflow.
 */
#include "internal.h"
#include "san.h"

#include <string.h>

enum { G_NEW, G_RUNNING, G_SUSPENDED, G_DONE };

struct may_gen {
    may__ctx ctx;              /* the generator's saved context */
    may__ctx caller;           /* the resumer's saved context */
    may__stack stack;
    may_gen_fn_t fn;
    void *arg;
    void *xfer;                /* value passed across the switch */
    int state;
    int exit_kind;             /* -1, or MAY_DONE/MAY_PANICKED of an exit to carry on */
    may_cleanup_t *cleanup;    /* its cleanup handlers, newest first */
    struct may_gen *outer;     /* what its resumer was running before it */
    void *fake_gen, *fake_caller;       /* ASan fake stacks */
    const void *caller_bottom;          /* ASan: the resumer's stack */
    size_t caller_size;
    void *tsan_gen, *tsan_caller;       /* TSan fibers */
};

/* The running generator of a plain thread (a coroutine's is co->gen_cur).
 * Initial-exec, like may__tls_w: the SIGSEGV handler reads it, and such a
 * read must not go through __tls_get_addr (which may allocate). */
static __thread struct may_gen *thread_gen __attribute__((tls_model("initial-exec")));

/* Where the caller records its running generator.  The address stays valid
 * across switches: a coroutine's control block moves with it. */
static may_gen_t **gen_slot(void)
{
    may_co_t *co = may__cur_co();
    return co ? &co->gen_cur : &thread_gen;
}

may_gen_t *may__gen_running(void)
{
    return *gen_slot();
}

const may__stack *may__gen_stack(const may_gen_t *g)
{
    return &g->stack;
}

may_cleanup_t **may__gen_cleanups(void)
{
    may_gen_t *g = *gen_slot();
    return g ? &g->cleanup : NULL;
}

static void run_cleanups(may_gen_t *g)
{
    may__cleanups_run(&g->cleanup);
}

/* Leave the generator for good (it returned or exits): back to the
 * resumer, which sees state DONE.  NULL for ASan's fake stack: this context
 * never resumes, so ASan may free it. */
static _Noreturn void gen_leave(may_gen_t *g)
{
    g->state = G_DONE;
    san_begin(NULL, g->caller_bottom, g->caller_size, g->tsan_caller);
    may__ctx_switch(&g->ctx, &g->caller);
    __builtin_unreachable();
}

static void gen_entry(void *arg)
{
    may_gen_t *g = arg;
    san_end_from(NULL, &g->caller_bottom, &g->caller_size);
    void *r = g->fn(g, g->arg);
    run_cleanups(g); /* pushed and never popped: they run as it returns */
    g->xfer = r;
    gen_leave(g);
}

void may__gen_exit(void *result, int kind)
{
    may_gen_t *g = *gen_slot();
    if (!g)
        return;
    run_cleanups(g);
    g->xfer = result;
    g->exit_kind = kind;
    gen_leave(g); /* may_gen_resume goes on with the exit */
}

int may_gen_new(may_gen_t **out, may_gen_fn_t fn, void *arg, size_t stack_size)
{
    if (!out || !fn)
        return -EINVAL;
    *out = NULL;
    if (stack_size && (stack_size < 16384 || stack_size > ((size_t)1 << 30)))
        return -EINVAL;
    may_gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    int r = may__stack_alloc(&g->stack, stack_size);
    if (r < 0) {
        free(g);
        return r;
    }
    /* A reused dense stack still holds its last coroutine's control block
     * at the top: make it no longer claim this stack, so a shallow overflow
     * of the generator found later is not blamed on that coroutine
     * (may__overflow_report_reused, src/overflow.c). */
    may__stack_co(g->stack.base, g->stack.size)->stack.base = NULL;
    if (!may__cur_worker())
        may__altstack_setup(); /* so an overflow can be reported */
    may__stack_segv_install();
    g->fn = fn;
    g->arg = arg;
    g->state = G_NEW;
    g->exit_kind = -1;
    MAY__CTX_MAKE(&g->ctx, &g->stack, g->stack.base + g->stack.size, gen_entry, g);
    g->tsan_gen = san_fiber_new();
    *out = g;
    return 0;
}

int may_gen_resume(may_gen_t *g, void **value)
{
    if (!g || g->state == G_DONE || g->state == G_RUNNING)
        return -EINVAL;
    may_gen_t **slot = gen_slot();
    g->outer = *slot;
    *slot = g;
    g->state = G_RUNNING;
    g->tsan_caller = san_fiber_cur();
    san_begin(&g->fake_caller, g->stack.lo, (size_t)(g->stack.base + g->stack.size - g->stack.lo),
              g->tsan_gen);
    may__ctx_switch(&g->caller, &g->ctx);
    san_end(g->fake_caller);
    *slot = g->outer;
    g->outer = NULL;
    if (MAY_UNLIKELY(g->exit_kind >= 0))
        may__exit_as(g->xfer, g->exit_kind); /* it called may_exit or may_panic */
    if (value)
        *value = g->xfer;
    return g->state == G_DONE ? 0 : 1;
}

void may_gen_yield(may_gen_t *g, void *value)
{
    if (!g || g->state != G_RUNNING)
        may__fatal("may_gen_yield outside its generator");
    g->xfer = value;
    g->state = G_SUSPENDED;
    san_begin(&g->fake_gen, g->caller_bottom, g->caller_size, g->tsan_caller);
    may__ctx_switch(&g->ctx, &g->caller);
    san_end_from(g->fake_gen, &g->caller_bottom, &g->caller_size);
}

void may_gen_free(may_gen_t *g)
{
    if (!g)
        return;
    if (g->state == G_RUNNING)
        may__fatal("may_gen_free of a running generator");
    /* Unfinished: run the handlers it still has, here, before its stack
     * goes; DONE first, so one that tries to resume it gets -EINVAL. */
    g->state = G_DONE;
    run_cleanups(g);
    san_fiber_free(g->tsan_gen);
    may__stack_free(&g->stack);
    free(g);
}
