/*
 * exit.c - ending a coroutine from any depth: may_exit, may_panic, and the
 * cleanup handlers they run.
 *
 * may_exit and may_panic never unwind the C stack: there is nothing to
 * unwind to.  They run the cleanup handlers the coroutine pushed (newest
 * first), its coroutine-local destructors, and then switch away for good;
 * the stack is reclaimed by whoever joins (or at once if detached).  So a
 * panic ends one coroutine and every other coroutine runs on.  Called
 * inside a generator, they first leave every generator the coroutine is
 * running, innermost first, each after its own cleanup handlers (src/gen.c),
 * so the coroutine's handlers run on its own stack.  The end itself (the
 * destructors, the joiner, freeing the stack) is may__co_finish's, in the
 * coroutine's life cycle.  On a plain thread may_exit is pthread_exit and
 * may_panic aborts.
 *
 * Cleanup handlers, like pthread_cleanup_push/pop, are nodes in the
 * caller's frames, linked newest first onto the list of whatever the
 * caller is running: the innermost generator (its own list, so handlers
 * pushed inside a generator run with it and never dangle on its resumer's
 * list), else the coroutine, else the thread (a thread-local).
 *
 * Lock order and memory ordering: no lock, no atomics.  Each list is only
 * ever touched by the code running on it: a coroutine's list by that
 * coroutine (on whichever worker it runs; it reads it through may__cur_co,
 * never through a cached thread-local), a generator's by whoever runs it,
 * a thread's by that thread.
 */
#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

/* End the caller: the running generators first, innermost first (each runs
 * its cleanup handlers and hands the exit to its resumer, src/gen.c), then
 * the coroutine (its handlers and destructors, on its own stack), or the
 * plain thread. */
static __thread may_cleanup_t *thread_cleanup;

/* Run and unlink the handlers of a list, newest first: a coroutine's as it
 * ends, a generator's as it returns or is freed, a thread's at may_exit. */
void may__cleanups_run(may_cleanup_t **head)
{
    while (*head) {
        may_cleanup_t *c = *head;
        *head = c->next;
        c->fn(c->arg);
    }
}

_Noreturn void may__exit_as(void *result, int kind)
{
    may__gen_exit(result, kind); /* returns only outside every generator */
    may_co_t *co = may__cur_co();
    if (!co) {
        if (kind == MAY_PANICKED)
            abort();
        may__cleanups_run(&thread_cleanup); /* as pthread_exit runs its own */
        pthread_exit(result);
    }
    may__co_finish(co, result, kind);
}

_Noreturn void may_exit(void *result)
{
    may__exit_as(result, MAY_DONE);
}

_Noreturn void may_panic(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "(null)", ap);
    va_end(ap);
    may_co_t *co = may__cur_co();
    if (!co) {
        fprintf(stderr, "may: thread panicked: %s\n", msg);
        abort();
    }
    fprintf(stderr, "may: coroutine %llu \"%s\" panicked: %s\n", (unsigned long long)co->id,
            co->name, msg);
    may__exit_as(NULL, MAY_PANICKED);
}

/* Cleanup handlers go onto the list of what the caller runs: the generator
 * it is inside (src/gen.c says why), else its coroutine, else its thread
 * (thread_cleanup, above). */

static may_cleanup_t **cleanup_list(void)
{
    may_cleanup_t **head = may__gen_cleanups();
    if (head)
        return head;
    may_co_t *co = may__cur_co();
    return co ? &co->cleanup : &thread_cleanup;
}

void may_cleanup_push(may_cleanup_t *node, void (*fn)(void *), void *arg)
{
    may_cleanup_t **head = cleanup_list();
    node->fn = fn;
    node->arg = arg;
    node->next = *head;
    *head = node;
}

void may_cleanup_pop(bool execute)
{
    may_cleanup_t **head = cleanup_list();
    may_cleanup_t *n = *head;
    if (!n)
        return;
    *head = n->next;
    if (execute)
        n->fn(n->arg);
}
