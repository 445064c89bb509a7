/*
 * runtime.c - configuration, time, and ending coroutines from any depth
 * (may_exit, may_panic, cleanup handlers).
 *
 * may_exit and may_panic never unwind the C stack: there is nothing to
 * unwind to.  They run the cleanup handlers the coroutine pushed (newest
 * first), its coroutine-local destructors, and then switch away for good;
 * the stack is reclaimed by whoever joins (or at once if detached).  So a
 * panic ends one coroutine and every other coroutine runs on.  Called
 * inside a generator, they first leave every generator the coroutine is
 * running, innermost first, each after its own cleanup handlers (src/gen.c),
 * so the coroutine's handlers run on its own stack.
 */
#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t may_now(void)
{
    return may__now();
}

int64_t may_deadline_in(int64_t ns)
{
    if (ns < 0)
        return MAY_FOREVER;
    int64_t now = may__now();
    if (ns > INT64_MAX - now)
        return INT64_MAX;
    return now + ns;
}

int may_configure_sized(const may_config_t *ucfg, size_t size)
{
    if (!ucfg)
        return -EINVAL;
    may_config_t c, *cfg = &c;
    int r = may__abi_in(&c, sizeof c, ucfg, size, MAY__CONFIG_V1_SIZE);
    if (r < 0)
        return r;
    if (cfg->workers < 0 || cfg->workers > 1024)
        return -EINVAL;
    if (cfg->stack_size && (cfg->stack_size < 16384 || cfg->stack_size > ((size_t)1 << 30)))
        return -EINVAL;
    if (cfg->stack_mode < MAY_STACK_AUTO || cfg->stack_mode > MAY_STACK_DENSE)
        return -EINVAL;
    if (cfg->stack_pool > (1u << 20))
        return -EINVAL;
    pthread_mutex_lock(&may__S.start_lock);
    if (atomic_load(&may__S.state) != 0) {
        pthread_mutex_unlock(&may__S.start_lock);
        return -EBUSY;
    }
    may__S.cfg = *cfg;
    if (may__S.cfg.stack_size) {
        size_t pg = may__page_size();
        may__S.cfg.stack_size = (may__S.cfg.stack_size + pg - 1) & ~(pg - 1);
    }
    pthread_mutex_unlock(&may__S.start_lock);
    return 0;
}

void may__fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("may: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

uint64_t may_co_id(const may_co_t *co)
{
    return co ? co->id : 0;
}

const char *may_co_name(const may_co_t *co)
{
    return co ? co->name : "";
}

long may_co_stack_used(const may_co_t *co)
{
    if (!co)
        return -EINVAL;
    if (!co->track)
        return -ENOTSUP;
    size_t peak = atomic_load_explicit(&co->stack_peak, memory_order_relaxed);
    if (peak) /* it has ended: the figure taken at its end */
        return (long)peak;
    return (long)may__stack_used(&co->stack);
}

/* End the caller: the running generators first, innermost first (each runs
 * its cleanup handlers and hands the exit to its resumer, src/gen.c), then
 * the coroutine (its handlers and destructors, on its own stack), or the
 * plain thread. */
_Noreturn void may__exit_as(void *result, int kind)
{
    may__gen_exit(result, kind); /* returns only outside every generator */
    may_co_t *co = may__cur_co();
    if (!co) {
        if (kind == MAY_PANICKED)
            abort();
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
 * it is inside (src/gen.c says why), else its coroutine, else its thread. */
static __thread may_cleanup_t *thread_cleanup;

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
