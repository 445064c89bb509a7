/*
 * win.h - the Windows x64 stacks and switch (issue 14): the
 * context switch (src/arch/x86_64/switch_win64.S, frame_win64.h) and the
 * guarded coroutine stacks with their overflow report (stack_win.c).
 *
 * The library uses them through src/stack.c (map_guarded's Windows half),
 * internal.h (MAY__CTX_MAKE) and src/win/plat_win.c; the API is
 * self-contained (may__win_ prefix, no internal.h), so scripts/win-test.sh
 * also builds them alone with the programs of tests/win/ (docs/WINDOWS.md).
 */
#ifndef MAY_WIN_WIN_H
#define MAY_WIN_WIN_H

#include <stddef.h>

#include "../arch/x86_64/frame_win64.h"

/* The reserved bytes below every stack's guard page, and the stack
 * guarantee (SetThreadStackGuarantee) of every thread that runs
 * coroutines: the room the system commits for the overflow handler when it
 * raises STATUS_STACK_OVERFLOW (stack_win.c says why it must be this). */
#define MAY__WIN_STACK_HEADROOM ((size_t)64 * 1024)

/* A coroutine stack (stack_win.c draws it).  Owned by its creator. */
typedef struct may__win_stack {
    char *alloc;       /* VirtualAlloc's reservation = DeallocationStack */
    size_t alloc_size; /* bytes reserved, a multiple of the page size */
    char *limit;       /* StackLimit at the start: the lowest committed byte */
    char *base;        /* StackBase: the top of the usable stack */
    size_t size;       /* usable bytes, base - (guard page + 1 page) */
} may__win_stack;

/* Reserve a stack of at least size usable bytes, commit its top commit
 * bytes (0: all of it) with the guard page below them, and record name
 * (a string that must outlive the stack) for the overflow report.
 * Returns 0 or -ENOMEM / -EINVAL. */
int may__win_stack_alloc(may__win_stack *s, size_t size, size_t commit, const char *name);

/* Name the stack that ends at base (a may__win_stack's base) for the
 * overflow report: name must outlive the stack's use under it. */
void may__win_stack_set_name(char *base, const char *name);

/* Release a stack that no context runs on any more. */
void may__win_stack_free(may__win_stack *s);

/* Make *ctx run entry(arg) on stack s at its first switch. */
void may__win_stack_ctx(const may__win_stack *s, may__win_ctx *ctx, void (*entry)(void *),
                        void *arg);

/* Once per thread that runs coroutines: raise its stack guarantee to
 * MAY__WIN_STACK_HEADROOM.  Returns 0 or -EINVAL (its own stack is too
 * small for that). */
int may__win_stack_thread_init(void);

/* Once per process (later calls do nothing): add the vectored exception
 * handler that reports a coroutine's stack overflow, by name, on stderr
 * and ends the process with STATUS_STACK_OVERFLOW.  Returns 0 or -ENOMEM. */
int may__win_overflow_install(void);

/* The name recorded for the stack the thread is running on now, or NULL
 * on a stack that is not one of ours (read through the TIB). */
const char *may__win_stack_current_name(void);

#endif
