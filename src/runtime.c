/*
 * runtime.c - the runtime's small public calls that belong to no one
 * subsystem: time (may_now, may_deadline_in), the configuration
 * (may_configure, read when the runtime starts), a coroutine's identity and
 * stack use (may_co_id, may_co_name, may_co_stack_used), and may__fatal.
 * Ending a coroutine from any depth (may_exit, may_panic, cleanup handlers)
 * is src/exit.c.
 *
 * Lock order: may_configure takes start_lock (START in src/lockrank.h),
 * and writes may__S.cfg only while the runtime is stopped (the state is 0
 * under that lock, which start and shutdown hold while they change it), so
 * the start, under the same lock, and the workers it creates read a
 * configuration that no longer changes.
 *
 * Memory ordering: a coroutine's id and name are written at its spawn and
 * never change.  Its stack use is scanned from its stack (racily, for a
 * coroutine running elsewhere) or, once it has ended, read from stack_peak
 * (relaxed: a figure for display, stored once at its end).
 */
#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

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
    if (cfg->max_threads < 0 || cfg->max_threads > 100000 ||
        (cfg->max_threads && cfg->max_threads < cfg->workers))
        return -EINVAL;
    if (cfg->spare_idle_ms < -1)
        return -EINVAL;
    if (cfg->idle_spin_us < -1 || cfg->idle_spin_us > 1000000)
        return -EINVAL;
    may__lock(&may__S.start_lock, MAY__RANK_START);
    if (atomic_load(&may__S.state) != 0) {
        may__unlock(&may__S.start_lock, MAY__RANK_START);
        return -EBUSY;
    }
    may__S.cfg = *cfg;
    if (may__S.cfg.stack_size) {
        size_t pg = may__page_size();
        may__S.cfg.stack_size = (may__S.cfg.stack_size + pg - 1) & ~(pg - 1);
    }
    may__unlock(&may__S.start_lock, MAY__RANK_START);
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
