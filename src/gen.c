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
    void *fake_gen, *fake_caller;       /* ASan fake stacks */
    const void *caller_bottom;          /* ASan: the resumer's stack */
    size_t caller_size;
    void *tsan_gen, *tsan_caller;       /* TSan fibers */
};

static void gen_entry(void *arg)
{
    may_gen_t *g = arg;
    san_end_from(NULL, &g->caller_bottom, &g->caller_size);
    void *r = g->fn(g, g->arg);
    g->xfer = r;
    g->state = G_DONE;
    san_begin(NULL, g->caller_bottom, g->caller_size, g->tsan_caller);
    may__ctx_switch(&g->ctx, &g->caller);
    __builtin_unreachable();
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
    if (!may__cur_worker())
        may__altstack_setup(); /* so an overflow can be reported */
    may__stack_segv_install();
    g->fn = fn;
    g->arg = arg;
    g->state = G_NEW;
    may__ctx_make(&g->ctx, g->stack.base + g->stack.size, gen_entry, g);
    g->tsan_gen = san_fiber_new();
    *out = g;
    return 0;
}

int may_gen_resume(may_gen_t *g, void **value)
{
    if (!g || g->state == G_DONE || g->state == G_RUNNING)
        return -EINVAL;
    g->state = G_RUNNING;
    g->tsan_caller = san_fiber_cur();
    san_begin(&g->fake_caller, g->stack.lo, (size_t)(g->stack.base + g->stack.size - g->stack.lo),
              g->tsan_gen);
    may__ctx_switch(&g->caller, &g->ctx);
    san_end(g->fake_caller);
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
    san_fiber_free(g->tsan_gen);
    may__stack_free(&g->stack);
    free(g);
}
