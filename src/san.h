/*
 * san.h - telling ASan and TSan about stack switches.
 *
 * ASan keeps per-stack state (fake stacks for use-after-return, the bounds
 * used to tell stack from heap); TSan keeps a per-thread vector clock and
 * shadow stack.  A user-space switch changes the stack under both, so each
 * switch is bracketed: san_begin() right before may__ctx_switch names the
 * stack being entered, san_end() right after it (in the resumed context)
 * completes the hand-over.  A context leaving for good passes fake == NULL so
 * ASan frees its fake stack.  Without sanitizers these compile to nothing.
 */
#ifndef MAY_SAN_H
#define MAY_SAN_H
#include "internal.h"

#ifdef MAY_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef MAY_TSAN
#include <sanitizer/tsan_interface.h>
#endif

static inline void san_begin(void **fake_save, const void *bottom, size_t size, void *tsan_fiber)
{
#ifdef MAY_ASAN
    __sanitizer_start_switch_fiber(fake_save, bottom, size);
#else
    (void)fake_save, (void)bottom, (void)size;
#endif
#ifdef MAY_TSAN
    __tsan_switch_to_fiber(tsan_fiber, 0);
#else
    (void)tsan_fiber;
#endif
}

static inline void san_end(void *fake)
{
#ifdef MAY_ASAN
    const void *ob;
    size_t os;
    __sanitizer_finish_switch_fiber(fake, &ob, &os);
#else
    (void)fake;
#endif
}

/* san_end, also reporting the stack we came from. */
static inline void san_end_from(void *fake, const void **bottom, size_t *size)
{
#ifdef MAY_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

static inline void *san_fiber_new(void)
{
#ifdef MAY_TSAN
    return __tsan_create_fiber(0);
#else
    return NULL;
#endif
}

static inline void san_fiber_free(void *f)
{
#ifdef MAY_TSAN
    if (f)
        __tsan_destroy_fiber(f);
#else
    (void)f;
#endif
}

static inline void *san_fiber_cur(void)
{
#ifdef MAY_TSAN
    return __tsan_get_current_fiber();
#else
    return NULL;
#endif
}
#endif
