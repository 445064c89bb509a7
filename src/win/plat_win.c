/*
 * plat_win.c - the Windows half of the platform layer's glue (src/plat.h
 * has the primitives): the worker's TLS slot, and what src/overflow.c and
 * src/fork.c provide on Linux.
 *
 * The worker's TLS slot.  may__cur_worker (internal.h) must read the
 * running thread's worker afresh after every switch, without a call: on
 * Linux an initial-exec variable read through %fs.  MinGW's __thread is
 * emulated (a call into libgcc per access, whose result the compiler may
 * reuse across a switch), so the worker lives in a TlsAlloc slot instead,
 * read through %gs from the TEB's TlsSlots array, which holds the first 64
 * slots.  The slot is allocated by a constructor, before main and before
 * any thread of ours exists; a slot number of 64 or more (a program that
 * used up the first 64 before us) cannot be read that way and stops the
 * process with a message.
 *
 * Overflows.  The vectored handler of src/win/stack_win.c reports a
 * coroutine's stack overflow with its name (may__win_stack_set_name at
 * spawn); each worker raises its thread's stack guarantee so the system
 * commits room for that handler (may__altstack_setup's counterpart).
 * There are no dense stacks on Windows, so no soft guard to find written.
 *
 * fork: does not exist on Windows; may__fork_guard has nothing to guard.
 */
#include "../internal.h"
#include "win.h"

#include <stdio.h>

unsigned long may__tls_w_slot;

__attribute__((constructor)) static void win_tls_init(void)
{
    DWORD s = TlsAlloc();
    if (s == TLS_OUT_OF_INDEXES || s >= 64) {
        fprintf(stderr, "may: no TLS slot among the first 64 (got %lu); cannot start\n",
                (unsigned long)s);
        abort();
    }
    may__tls_w_slot = s;
}

void may__win_tls_w_set(may__worker *w)
{
    TlsSetValue(may__tls_w_slot, w);
}

void may__stack_segv_install(void)
{
    (void)may__win_overflow_install();
}

int may__altstack_setup(void)
{
    return may__win_stack_thread_init();
}

void may__altstack_free(void)
{
}

void may__overflow_report_reused(const may__stack *st)
{
    (void)st; /* only dense stacks have a soft guard; Windows has none */
}

int may__fork_guard(void)
{
    return 0;
}
